/*
 * fuzz_http.c - libFuzzer target for the HTTP request handlers (src/serve_routes.c) over a live
 * serving core (src/serve_core.c) with a small BPR-MF model trained on synthetic data at start.
 * Input: "METHOD PATH[?QUERY]\n" then "AUTHORIZATION\n" (may be empty) then the body bytes.
 * The routes are driven exactly as serve_http.c drives them, without sockets; the log is written
 * without fsync; live statistics are on (every event sampled, one second folded per input). Every response must be a status in 200..599 with a body; ASan/UBSan catch
 * the rest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "serve_routes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct {
    char dir[256];
    dr_model *m;
    dr_srv *srv;
    dr_routes *r;
    dr_routes_worker *w;
    dr_stats *st;
} F;

static void cleanup(void) {
    dr__routes_worker_free(F.w);
    dr__routes_free(F.r);
    dr__srv_close(F.srv);
    dr__stats_free(F.st);
    dr_model_free(F.m);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", F.dir);
    if (F.dir[0] && system(cmd) != 0) fprintf(stderr, "fuzz_http: cannot remove %s\n", F.dir);
}

static int setup(void) {
    const char *t = getenv("TMPDIR");
    snprintf(F.dir, sizeof F.dir, "%s/dynrec-fuzz-http-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(F.dir)) return -1;
    atexit(cleanup);
    dr_synth_params sp = dr_synth_default_params();
    sp.n_users = 60;
    sp.n_items = 50;
    sp.n_events = 1500;
    dr_dataset *ds = NULL;
    dr_split *split = NULL;
    dr_model *fit = NULL;
    dr_model_params mp = dr_model_default_params();
    mp.name = "mf";
    mp.dim = 4;
    mp.epochs = 2;
    mp.threads = 1;
    char path[512], state[512];
    snprintf(path, sizeof path, "%s/m.drm", F.dir);
    snprintf(state, sizeof state, "%s/state", F.dir);
    int ok = dr_synth_generate(&sp, &ds, NULL) == DR_OK &&
             dr_split_create(ds, DR_SPLIT_LOO, &split, NULL) == DR_OK &&
             dr_model_fit(ds, split, &mp, &fit, NULL) == DR_OK &&
             dr_model_save(fit, ds, split, path, NULL) == DR_OK && dr_model_load(path, &F.m, NULL) == DR_OK;
    dr_model_free(fit);
    dr_split_free(split);
    dr_dataset_free(ds);
    if (!ok) return -1;
    dr_srv_params p = dr__srv_default_params();
    p.data_dir = state;
    p.durable = 0;
    p.max_new_items = 50;
    p.max_new_users = 100;
    p.snapshot_every = 200;
    p.adapter.window.capacity = 64;
    p.adapter.g_batch = 8;
    dr_routes_params rp = {"key", 1, 1 << 16, F.m, 0, NULL, NULL};
    dr_stats_params tp = dr__stats_default_params(); /* live statistics, every event sampled */
    tp.thread = 0;
    tp.quality_rate = 1;
    if (dr__stats_create(&tp, &F.st, NULL) != DR_OK) return -1;
    p.stats = F.st;
    if (dr__srv_open(F.m, &p, &F.srv, NULL) != DR_OK || dr__routes_create(F.srv, &rp, &F.r, NULL) != DR_OK ||
        dr__routes_worker_create(F.r, &F.w, NULL) != DR_OK)
        return -1;
    dr__routes_set_stats(F.r, F.st);
    return 0;
}

typedef struct query {
    const char *q;
    char val[256];
} query;

/* name=value from a query string "a=1&b=2" (no decoding: MHD decodes before serve_routes.c). */
static const char *get_arg(void *ud, const char *name) {
    query *q = ud;
    size_t n = strlen(name);
    for (const char *p = q->q; p && *p;) {
        const char *amp = strchr(p, '&'), *end = amp ? amp : p + strlen(p);
        if ((size_t)(end - p) > n && !strncmp(p, name, n) && p[n] == '=') {
            size_t len = (size_t)(end - p) - n - 1;
            if (len >= sizeof q->val) len = sizeof q->val - 1;
            memcpy(q->val, p + n + 1, len);
            q->val[len] = 0;
            return q->val;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready = 0;
    if (!ready) {
        if (setup() != 0) {
            fprintf(stderr, "fuzz_http: setup failed\n");
            abort();
        }
        ready = 1;
    }
    static int64_t second = 1000; /* each input folds one second of the live statistics */
    dr__stats_tick(F.st, second++);
    char line1[2048], line2[512];
    size_t at = 0, k = 0;
    while (at < size && data[at] != '\n' && k + 1 < sizeof line1) line1[k++] = (char)data[at++];
    line1[k] = 0;
    if (at < size) at++;
    k = 0;
    while (at < size && data[at] != '\n' && k + 1 < sizeof line2) line2[k++] = (char)data[at++];
    line2[k] = 0;
    if (at < size) at++;
    char *sp = strchr(line1, ' ');
    if (!sp) return 0;
    *sp = 0;
    char *path = sp + 1;
    query q = {NULL, {0}};
    char *qm = strchr(path, '?');
    if (qm) {
        *qm = 0;
        q.q = qm + 1;
    }
    if (size - at > dr__routes_max_body(F.r)) return 0; /* serve_http.c answers 413 before serve_routes.c */
    dr_route_req rq = {line1, path, get_arg, &q, line2[0] ? line2 : NULL, (const char *)data + at, size - at, NULL};
    dr_route_resp resp;
    dr__routes_handle(F.r, F.w, &rq, &resp);
    if (resp.status < 200 || resp.status > 599 || !resp.body || !resp.len) abort();
    return 0;
}
