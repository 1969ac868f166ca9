/*
 * data.c - `dynrec data synth` writes a synthetic dataset folder; `dynrec data stats` prints a
 * dataset's statistics and its load report (or one JSON object).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* ------------------------------------------------------------------ data synth */

static const char *synth_help =
    "usage: dynrec data synth --out DIR [options]\n"
    "  --seed S             random seed (1)\n"
    "  --users N            users (2000)\n"
    "  --items M            items (1500)\n"
    "  --events E           interactions (100000)\n"
    "  --genres G           latent genres (16)\n"
    "  --latent-dim D       dimension of the true item latent (32)\n"
    "  --drift P            probability that a user's taste drifts once (0.3)\n"
    "  --new-items F        fraction of items born during the timeline (0.15)\n"
    "  --zipf Z             popularity long-tail exponent (1.0)\n"
    "  --taste-conc C       Dirichlet concentration of user tastes (0.3)\n"
    "  --repeat P           probability an event stays in the user's last genre (0.5)\n"
    "  --t-start T          UNIX seconds of the first event (1600000000)\n"
    "  --t-step S           mean seconds between events (60)\n"
    "  --dim-visual D, --dim-audio D, --dim-text D        feature dimensions (0 = none)\n"
    "  --noise-visual S, --noise-audio S, --noise-text S  feature noise\n"
    "  --missing-visual R, --missing-audio R, --missing-text R  missing rates in [0,1]\n"
    "Writes DIR in dynrec's dataset folder format (docs/FORMATS.md, docs/SYNTH.md).\n";

/* One row per numeric flag of `data synth`: the value is parsed as `kind` into `at`. */
typedef struct synth_flag {
    const char *name;
    char kind; /* 'u': uint32, 'z': size_t, 'U': uint64, 'i': int64, 'd': double */
    void *at;
} synth_flag;

static int set_flag(const synth_flag *f, const char *v) {
    uint64_t u;
    double d;
    switch (f->kind) {
    case 'u':
        if (cli_parse_u64(v, &u) || u > UINT32_MAX) return -1;
        *(uint32_t *)f->at = (uint32_t)u;
        return 0;
    case 'z':
        if (cli_parse_u64(v, &u) || u > SIZE_MAX) return -1;
        *(size_t *)f->at = (size_t)u;
        return 0;
    case 'U':
        if (cli_parse_u64(v, &u)) return -1;
        *(uint64_t *)f->at = u;
        return 0;
    case 'i':
        if (cli_parse_double(v, &d) || d != floor(d) || fabs(d) > 9e18) return -1;
        *(int64_t *)f->at = (int64_t)d;
        return 0;
    default:
        if (cli_parse_double(v, &d)) return -1;
        *(double *)f->at = d;
        return 0;
    }
}

int cli_cmd_data_synth(int argc, char **argv) {
    dr_synth_params p = dr_synth_default_params();
    const char *out = NULL;
    const synth_flag flags[] = {
        {"--seed", 'U', &p.seed},          {"--users", 'u', &p.n_users},
        {"--items", 'u', &p.n_items},      {"--events", 'z', &p.n_events},
        {"--genres", 'u', &p.n_genres},    {"--latent-dim", 'u', &p.latent_dim},
        {"--drift", 'd', &p.drift_prob},   {"--new-items", 'd', &p.new_item_frac},
        {"--zipf", 'd', &p.zipf},          {"--taste-conc", 'd', &p.taste_conc},
        {"--repeat", 'd', &p.repeat_prob}, {"--t-start", 'i', &p.t_start},
        {"--t-step", 'i', &p.t_step},
        {"--dim-visual", 'u', &p.mod_dim[0]},   {"--dim-audio", 'u', &p.mod_dim[1]},
        {"--dim-text", 'u', &p.mod_dim[2]},     {"--noise-visual", 'd', &p.mod_noise[0]},
        {"--noise-audio", 'd', &p.mod_noise[1]}, {"--noise-text", 'd', &p.mod_noise[2]},
        {"--missing-visual", 'd', &p.mod_missing[0]},
        {"--missing-audio", 'd', &p.mod_missing[1]},
        {"--missing-text", 'd', &p.mod_missing[2]},
    };
    cli_opts o = {argc, argv, 0};
    for (o.i = 0; o.i < argc; o.i++) {
        const char *a = argv[o.i], *v;
        int err = 0;
        if (cli_is_help(a)) {
            fputs(synth_help, stdout);
            return 0;
        }
        if ((v = cli_opt_value(&o, "--out", &err))) {
            out = v;
            continue;
        }
        size_t k = 0;
        for (; k < sizeof flags / sizeof flags[0] && !err; k++) {
            if (!(v = cli_opt_value(&o, flags[k].name, &err))) continue;
            if (set_flag(&flags[k], v)) return cli_usage_error("bad %s '%s'", flags[k].name, v);
            break;
        }
        if (err) return err;
        if (k == sizeof flags / sizeof flags[0]) return cli_usage_error("data synth: unknown option '%s'", a);
    }
    if (!out) return cli_usage_error("data synth: --out DIR is required");
    dr_error e = {0};
    dr_dataset *ds = NULL;
    double t0 = (double)clock() / CLOCKS_PER_SEC;
    dr_status s = dr_synth_generate(&p, &ds, &e);
    if (s != DR_OK) return cli_die(s, &e);
    s = dr_dataset_save(ds, out, &e);
    if (s != DR_OK) {
        dr_dataset_free(ds);
        return cli_die(s, &e);
    }
    fprintf(stderr, "synth: %u users, %u items, %zu interactions -> %s (%.2f s cpu)\n",
            dr_dataset_n_users(ds), dr_dataset_n_items(ds), dr_dataset_n_events(ds), out,
            (double)clock() / CLOCKS_PER_SEC - t0);
    dr_dataset_free(ds);
    return 0;
}

/* ------------------------------------------------------------------ data stats */

static const char *stats_help =
    "usage: dynrec data stats --data PATH [--format F] [--json]\n"
    "  --data PATH      dataset folder or file (formats: see docs/FORMATS.md)\n"
    "  --format F       auto|delimited|movielens|amazon-csv|amazon-json|tiktok|dynrec\n"
    "  --delimiter C, --header yes|no, --cols U,I[,T[,W]], --meta PATH, --strict\n"
    "Prints users, items, interactions, time span and the P-STREAM T0.\n";

/* Modality m's name and dimension, and for how many of the n items it is present. */
static size_t modality_present(const dr_dataset *ds, int m, uint32_t n, const char **name,
                               uint32_t *dim) {
    const uint8_t *present;
    dr_dataset_modality(ds, m, name, dim, NULL, &present);
    size_t np = 0;
    for (uint32_t i = 0; i < n; i++) np += present[i];
    return np;
}

int cli_cmd_data_stats(int argc, char **argv) {
    cli_load_opts l = cli_load_defaults();
    int json = 0;
    cli_opts o = {argc, argv, 0};
    for (o.i = 0; o.i < argc; o.i++) {
        if (cli_is_help(argv[o.i])) {
            fputs(stats_help, stdout);
            return 0;
        }
        if (!strcmp(argv[o.i], "--json")) { json = 1; continue; }
        int r = cli_load_opt(&o, &l);
        if (r < 0) return 2;
        if (r == 0) return cli_usage_error("data stats: unknown option '%s'", argv[o.i]);
    }
    dr_dataset *ds = NULL;
    double start = cli_now();
    int rc = cli_load(&l, &ds);
    if (rc) return rc;
    double t = cli_now() - start;
    dr_dataset_stats st;
    dr_status s = dr_dataset_get_stats(ds, &st);
    if (s != DR_OK) {
        dr_dataset_free(ds);
        return cli_die(s, NULL);
    }
    char tmin[64], tmax[64], t0[64];
    cli_fmt_time(tmin, sizeof tmin, st.t_min, st.has_time ? st.time_scale : 0);
    cli_fmt_time(tmax, sizeof tmax, st.t_max, st.has_time ? st.time_scale : 0);
    cli_fmt_time(t0, sizeof t0, st.t0, st.has_time ? st.time_scale : 0);
    const dr_load_report *r = dr_dataset_report(ds);
    size_t skipped = cli_n_skipped(r);
    if (json) {
        printf("{\"dataset\":");
        cli_json_str(stdout, dr_dataset_name(ds));
        printf(",\"users\":%u,\"items\":%u,\"interactions\":%zu,\"density\":%.6g,"
               "\"user_len\":{\"min\":%u,\"median\":%u,\"max\":%u},"
               "\"has_time\":%s,\"time_scale\":%g,\"t_min\":%lld,\"t_max\":%lld,"
               "\"t0\":%lld,\"pre_t0\":%zu,\"given_split\":%s,\"titled_items\":%zu,"
               "\"attributes\":%zu,\"modalities\":[",
               st.n_users, st.n_items, st.n_events, st.density, st.min_user_len,
               st.median_user_len, st.max_user_len, st.has_time ? "true" : "false",
               st.time_scale, (long long)st.t_min, (long long)st.t_max, (long long)st.t0,
               st.n_pre_t0, st.has_given_split ? "true" : "false", st.n_titled_items,
               st.n_attrs);
        for (int m = 0; m < st.n_modalities; m++) {
            const char *name;
            uint32_t dim;
            size_t np = modality_present(ds, m, st.n_items, &name, &dim);
            printf("%s{\"name\":", m ? "," : "");
            cli_json_str(stdout, name);
            printf(",\"dim\":%u,\"present\":%zu}", dim, np);
        }
        printf("],\"rows_read\":%zu,\"rows_skipped\":%zu,\"load_seconds\":%.4f}\n", r->rows_read,
               skipped, t);
    } else {
        printf("dataset        %s\n", dr_dataset_name(ds));
        printf("users          %u\n", st.n_users);
        printf("items          %u\n", st.n_items);
        printf("interactions   %zu\n", st.n_events);
        printf("density        %.6f\n", st.density);
        printf("per user       min %u, median %u, max %u\n", st.min_user_len,
               st.median_user_len, st.max_user_len);
        if (st.has_time) {
            printf("time span      %s .. %s (UTC)\n", tmin, tmax);
            printf("T0 (P-STREAM)  %s (raw %lld), %zu interactions before it (%.1f%%)\n", t0,
                   (long long)st.t0, st.n_pre_t0, 100.0 * (double)st.n_pre_t0 / (double)st.n_events);
        } else {
            printf("time span      none: %s\n", cli_no_time_note(&st));
        }
        printf("given split    %s\n", st.has_given_split ? "yes" : "no");
        printf("titles         %zu items\n", st.n_titled_items);
        printf("attributes     %zu distinct\n", st.n_attrs);
        for (int m = 0; m < st.n_modalities; m++) {
            const char *name;
            uint32_t dim;
            size_t np = modality_present(ds, m, st.n_items, &name, &dim);
            printf("modality       %s: %u dims, present for %zu of %u items\n", name, dim, np,
                   st.n_items);
        }
        printf("rows           %zu read, %zu skipped\n", r->rows_read, skipped);
        printf("load time      %.3f s\n", t);
    }
    dr_dataset_free(ds);
    return 0;
}
