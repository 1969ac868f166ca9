/*
 * index.c - `dynrec index`: builds the approximate index of two-stage retrieval over a
 * checkpoint's item latents and writes it beside the checkpoint (dr_index_build; docs/FORMATS.md).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *index_help =
    "usage: dynrec index --model M.drm [--out M.drm.ann] [--m 32] [--ef-construction 200]\n"
    "                    [--ef 128] [--candidates 100] [--threads 1] [--seed 42]\n"
    "  Builds an HNSW graph (hnswlib) over the checkpoint's item latents by inner product and\n"
    "  writes it to M.drm.ann with the checkpoint's hash. `dynrec serve --model M.drm` uses it\n"
    "  for two-stage retrieval when the catalogue is large (--ann, docs/ARCHITECTURE.md).\n"
    "  --m N                links per node (more: better recall, more memory, slower build)\n"
    "  --ef-construction N  candidate list while building\n"
    "  --ef N               candidate list while searching (the server's default; --ann-ef)\n"
    "  --candidates N       approximate candidates rescored per request (--ann-candidates)\n"
    "  --threads N          build threads; 1 writes the same file every time, more are faster\n"
    "                       but the graph depends on the threads' timing\n";

static int u32_opt(const char *name, const char *v, uint32_t lo, uint32_t hi, uint32_t *out) {
    uint64_t n;
    if (cli_parse_u64(v, &n) || n < lo || n > hi) return cli_usage_error("bad %s '%s' (%u..%u)", name, v, lo, hi);
    *out = (uint32_t)n;
    return 0;
}

int cli_cmd_index(int argc, char **argv) {
    dr_index_params p = dr_index_default_params();
    cli_opts o = {argc, argv, 0};
    for (o.i = 0; o.i < argc; o.i++) {
        const char *a = argv[o.i], *v;
        int err = 0, rc = 0;
        uint32_t t = 1;
        if (cli_is_help(a)) {
            fputs(index_help, stdout);
            return 0;
        }
        if ((v = cli_opt_value(&o, "--model", &err))) { p.model_path = v; continue; }
        if ((v = cli_opt_value(&o, "--out", &err))) { p.out = v; continue; }
        if ((v = cli_opt_value(&o, "--m", &err))) { rc = u32_opt("--m", v, 2, 128, &p.M); }
        else if ((v = cli_opt_value(&o, "--ef-construction", &err))) { rc = u32_opt("--ef-construction", v, 1, 100000, &p.ef_construction); }
        else if ((v = cli_opt_value(&o, "--ef", &err))) { rc = u32_opt("--ef", v, 1, 100000, &p.ef_search); }
        else if ((v = cli_opt_value(&o, "--candidates", &err))) { rc = u32_opt("--candidates", v, 1, 65536, &p.candidates); }
        else if ((v = cli_opt_value(&o, "--threads", &err))) { rc = u32_opt("--threads", v, 1, 256, &t); p.threads = (int)t; }
        else if ((v = cli_opt_value(&o, "--seed", &err))) {
            if (cli_parse_u64(v, &p.seed)) return cli_usage_error("bad --seed '%s'", v);
        } else {
            if (err) return err;
            return cli_usage_error("index: unknown option '%s'", a);
        }
        if (rc) return rc;
    }
    if (!p.model_path) return cli_usage_error("index: --model is required");
    dr_index_result r;
    dr_error e = {0};
    dr_status s = dr_index_build(&p, &r, &e);
    if (s != DR_OK) return cli_die(s, &e);
    fprintf(stderr, "index: %u items, d %u, M %u, ef_construction %u, built in %.2f s, %.1f bytes/item in memory, "
            "checkpoint %s -> %s%s\n", r.items, r.dim, p.M, p.ef_construction, r.seconds,
            r.items ? (double)r.bytes / r.items : 0.0, r.hash, p.out ? p.out : p.model_path, p.out ? "" : ".ann");
    return 0;
}
