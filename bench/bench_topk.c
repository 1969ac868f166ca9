/*
 * bench_topk.c - serving latency of exact top-10 (src/topk.c): one cblas_sgemv over the item
 * table (n, d = 50) + history-excluded selection, one thread, warm scratch.
 * Catalogues: 14,411 items (amazon-mtv) and 100,000 items. Each request has its own user
 * vector and a 50-item history; latency per request is measured with a monotonic clock;
 * p50/p99 over >= 10,000 requests. A hash of all returned ids fingerprints the answers.
 * Usage: bench_topk [requests] (default 20000).
 */
#include <cblas.h>

#include "bench.h"
#include "rng.h"
#include "topk.h"

#define D 50
#define K 10
#define HIST 50
#define POOL 1024 /* distinct request vectors and histories, cycled */

static int run(uint32_t n, size_t requests, uint64_t *hash) {
    dr_rng r;
    dr__rng_seed(&r, 20240601, n);
    float *item = malloc((size_t)n * D * sizeof *item);
    float *bias = malloc((size_t)n * sizeof *bias);
    float *hs = malloc((size_t)POOL * D * sizeof *hs);
    uint32_t *hist = malloc((size_t)POOL * HIST * sizeof *hist);
    double *lat = malloc(requests * sizeof *lat);
    dr_topk_scratch *s = NULL;
    dr_error err = {0};
    if (!item || !bias || !hs || !hist || !lat) return 1;
    for (size_t k = 0; k < (size_t)n * D; k++) item[k] = (float)(dr__rng_normal(&r) * 0.1);
    for (uint32_t i = 0; i < n; i++) bias[i] = (float)(dr__rng_normal(&r) * 0.01);
    for (size_t k = 0; k < (size_t)POOL * D; k++) hs[k] = (float)dr__rng_normal(&r);
    for (size_t k = 0; k < (size_t)POOL * HIST; k++) hist[k] = (uint32_t)dr__rng_below(&r, n);
    if (dr__topk_scratch_create(n, K, &s, &err) != DR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    uint32_t ids[K], n_out = 0;
    float sc[K];
    for (size_t q = 0; q < 200; q++) /* warm-up */
        dr__topk_dot(item, bias, n, D, hs + (q % POOL) * D, hist + (q % POOL) * HIST, HIST, K, s,
                    ids, sc, &n_out, NULL);
    uint64_t allocs = dr__alloc_count();
    double t_all = bench_now();
    for (size_t q = 0; q < requests; q++) {
        size_t p = q % POOL;
        double t0 = bench_now();
        dr_status st = dr__topk_dot(item, bias, n, D, hs + p * D, hist + p * HIST, HIST, K, s, ids,
                                   sc, &n_out, &err);
        lat[q] = bench_now() - t0;
        if (st != DR_OK || n_out != K) {
            fprintf(stderr, "request %zu: %s\n", q, err.msg);
            return 1;
        }
        if (q < POOL) *hash = bench_hash(*hash, ids, sizeof ids);
    }
    t_all = bench_now() - t_all;
    allocs = dr__alloc_count() - allocs;
    qsort(lat, requests, sizeof *lat, bench_dbl_cmp);
    printf("topk_n%u_d%u_k%u_p50 %.2f us\n", n, D, K, 1e6 * bench_quantile_sorted(lat, requests, 0.50));
    printf("topk_n%u_d%u_k%u_p99 %.2f us\n", n, D, K, 1e6 * bench_quantile_sorted(lat, requests, 0.99));
    printf("topk_n%u_d%u_k%u_rps %.0f requests/s\n", n, D, K, (double)requests / t_all);
    printf("topk_n%u_allocs_per_request %.3f allocs\n", n, (double)allocs / (double)requests);
    dr__topk_scratch_free(s);
    free(item);
    free(bias);
    free(hs);
    free(hist);
    free(lat);
    return 0;
}

int main(int argc, char **argv) {
    size_t requests = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 20000;
    if (requests < 1) requests = 1;
    openblas_set_num_threads(1);
    bench_header("topk");
    printf("# one thread (OpenBLAS single-threaded), d=%d, top-%d, history %d excluded, %zu requests\n",
           D, K, HIST, requests);
    uint64_t hash = 0;
    if (run(14411, requests, &hash) || run(100000, requests, &hash)) return 1;
    printf("topk_output_hash %016llx hash\n", (unsigned long long)hash);
    return 0;
}
