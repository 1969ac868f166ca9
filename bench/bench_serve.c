/*
 * bench_serve.c - the recommendation handler of the server without sockets: GET
 * /v1/users/{u}/recommendations?k=10 through dr__routes_handle (routing, base latent, adapter
 * user side, exact top-k over the published z', JSON) on one thread, for the checkpoint's users
 * in a fixed stride order. What `dynrec serve` spends per answer minus libmicrohttpd and the
 * network stack (bench/server_load.sh measures those with wrk).
 * Usage: bench_serve [MODEL.drm] [requests] [ANSWERS] (default /tmp/amz_mf.drm, 20000; skipped
 * when the model is missing: bench/server_load.sh says how to train it; ANSWERS: write every
 * user's answer there, one per line, to compare builds). Prints the median over 5 runs
 * of the mean time per request, p50/p99 of single requests and a hash of every answer.
 */
#include <cblas.h>

#include "bench.h"
#include "model.h"
#include "serve_routes.h"
#include "serve_core.h"

#define RUNS 5

static const char *k10(void *ud, const char *name) {
    (void)ud;
    return strcmp(name, "k") == 0 ? "10" : NULL;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/tmp/amz_mf.drm";
    size_t requests = argc > 2 ? (size_t)strtoull(argv[2], NULL, 10) : 20000;
    if (requests < 1) requests = 1;
    bench_header("serve");
    if (access(path, R_OK) != 0) {
        printf("# skipped: %s not present (bench/server_load.sh trains it)\n", path);
        return 0;
    }
    dr_error err = {0};
    dr_model *m = NULL;
    dr_srv *s = NULL;
    dr_routes *r = NULL;
    dr_routes_worker *w = NULL;
    char dir[] = "/tmp/dynrec-bench-serve-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    dr_srv_params p = dr__srv_default_params();
    p.data_dir = dir;
    p.durable = 0;
    dr_routes_params rp = {NULL, 0, 1 << 20, NULL, 0, NULL, NULL};
    if (dr_model_load(path, &m, &err) != DR_OK || dr__srv_open(m, &p, &s, &err) != DR_OK ||
        dr__routes_create(s, &rp, &r, &err) != DR_OK || dr__routes_worker_create(r, &w, &err) != DR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    uint32_t nu = dr_model_n_users(m);
    printf("# model %s: %u users, %u items, latent %u; one thread, k=10, %zu requests x %d runs\n",
           path, nu, dr_model_n_items(m), dr_model_latent_dim(m), requests, RUNS);
    char(*paths)[300] = malloc((size_t)nu * sizeof *paths);
    double *lat = malloc(requests * sizeof *lat), mean[RUNS];
    if (!paths || !lat) return 1;
    for (uint32_t u = 0; u < nu; u++)
        snprintf(paths[u], sizeof paths[u], "/v1/users/%s/recommendations", dr_model_user_id(m, u));
    if (argc > 3) { /* every user's answer, for comparing builds */
        FILE *f = fopen(argv[3], "w");
        if (!f) return 1;
        for (uint32_t u = 0; u < nu; u++) {
            dr_route_req rq = {"GET", paths[u], k10, NULL, NULL, NULL, 0, NULL};
            dr_route_resp resp;
            dr__routes_handle(r, w, &rq, &resp);
            fprintf(f, "%.*s\n", (int)resp.len, resp.body);
        }
        fclose(f);
    }
    uint64_t hash = 0, allocs = 0;
    for (int run = 0; run <= RUNS; run++) { /* run 0 warms up and hashes */
        uint64_t a0 = dr__alloc_count();
        double t_all = bench_now();
        for (size_t q = 0; q < requests; q++) {
            dr_route_req rq = {"GET", paths[(q * 7919) % nu], k10, NULL, NULL, NULL, 0, NULL};
            dr_route_resp resp;
            double t0 = bench_now();
            dr__routes_handle(r, w, &rq, &resp);
            lat[q] = bench_now() - t0;
            if (resp.status != 200) {
                fprintf(stderr, "%s: %d %.*s\n", rq.path, resp.status, (int)resp.len, resp.body);
                return 1;
            }
            if (run == 0) hash = bench_hash(hash, resp.body, resp.len);
        }
        t_all = bench_now() - t_all;
        if (run) mean[run - 1] = t_all / (double)requests;
        else allocs = dr__alloc_count() - a0;
    }
    qsort(lat, requests, sizeof *lat, bench_dbl_cmp);
    printf("serve_recs_k10_mean %.2f us (median of %d runs)\n", 1e6 * bench_median(mean, RUNS), RUNS);
    printf("serve_recs_k10_p50 %.2f us (last run)\n", 1e6 * bench_quantile_sorted(lat, requests, 0.50));
    printf("serve_recs_k10_p99 %.2f us (last run)\n", 1e6 * bench_quantile_sorted(lat, requests, 0.99));
    printf("serve_recs_allocs_per_request %.3f allocs (warm-up run)\n", (double)allocs / (double)requests);
    printf("serve_output_hash %016llx hash\n", (unsigned long long)hash);
    dr__routes_worker_free(w);
    dr__routes_free(r);
    dr__srv_close(s);
    dr_model_free(m);
    free(paths);
    free(lat);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) != 0;
}
