/*
 * bench_ann.c - two-stage retrieval (src/ann.c) against the exact scan (dr__topk_scan), one
 * thread, top-10 with a 20-item history excluded, on synthetic clustered catalogues
 * (dr__ann_synth_items, d = 64) of the sizes given.
 *
 * Per size: the exact answers of a tuning query set and a measured query set (other seeds);
 * the index built (wall time, BENCH_ANN_THREADS threads, default 2; BENCH_ANN_M and
 * BENCH_ANN_EFC override M and ef_construction); candidates C and ef
 * chosen on the tuning set only (the fastest median among the grid points whose mean
 * recall@10 there is >= 0.97); then on the measured set, exact and two-stage requests
 * alternated one by one: p50/p99 latency, answers/s (1 / mean), recall@10 of two-stage
 * against exact (ann.recall@10: |two-stage top-10 & exact top-10| / 10, mean; no protocol of
 * PROTOCOL.md covers it), memory per item (the latent table, the index), peak RSS.
 * A size whose table and index do not fit in the memory available (/proc/meminfo) is skipped
 * with a message.
 * Usage: bench_ann [sizes, comma-separated (14411,100000,1000000)] [measured queries (2000)]
 */
#include <stdatomic.h>

#include "ann.h"
#include "bench.h"
#include "rng.h"
#include "topk.h"

#define D 64
#define K 10
#define HIST 20
#define TUNE 300
#define GOAL 0.97

static double mem_available_gib(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb / 1048576.0;
}

typedef struct {
    float *z, *q;
    uint32_t *hist, *truth;
    size_t nq;
} qset;

/* exact answers of the queries (and their latencies when lat is not NULL) */
static int exact(const float *z, uint32_t n, qset *s, dr_topk_scratch *ts) {
    dr_error err = {0};
    for (size_t j = 0; j < s->nq; j++) {
        uint32_t got = 0;
        float sc[K];
        if (dr__topk_scan(z, n, D, s->q + j * D, s->hist + j * HIST, HIST, K, ts, s->truth + j * K, sc,
                          &got, &err) != DR_OK || got != K) {
            fprintf(stderr, "exact: %s\n", err.msg);
            return 1;
        }
    }
    return 0;
}

static double recall(const uint32_t *got, const uint32_t *truth) {
    int hit = 0;
    for (int a = 0; a < K; a++)
        for (int b = 0; b < K; b++) hit += got[a] == truth[b];
    return hit / (double)K;
}

static int make_queries(qset *s, size_t nq, uint32_t n, uint64_t stream) {
    s->nq = nq;
    s->q = malloc(nq * D * sizeof *s->q);
    s->hist = malloc(nq * HIST * sizeof *s->hist);
    s->truth = malloc(nq * K * sizeof *s->truth);
    if (!s->q || !s->hist || !s->truth) return 1;
    dr__ann_synth_queries(s->q, nq, n, D, 7, stream);
    dr_rng r;
    dr__rng_seed(&r, 11, stream);
    for (size_t k = 0; k < nq * HIST; k++) s->hist[k] = (uint32_t)dr__rng_below(&r, n);
    return 0;
}

static int run(uint32_t n, size_t nq, uint64_t *hash) {
    double need = ((double)n * D * 4 + (double)n * 520) / 1073741824.0 + 0.5;
    double avail = mem_available_gib();
    if (need > 0.8 * avail) {
        printf("# n=%u skipped: needs about %.1f GiB, %.1f GiB available\n", n, need, avail);
        return 0;
    }
    int threads = getenv("BENCH_ANN_THREADS") ? atoi(getenv("BENCH_ANN_THREADS")) : 2;
    float *z = malloc((size_t)n * D * sizeof *z);
    if (!z) return 1;
    double t0 = bench_now();
    dr__ann_synth_items(z, n, D, 7);
    printf("ann.n%u.synth_seconds %.2f s\n", n, bench_now() - t0);
    qset tune, meas;
    if (make_queries(&tune, TUNE, n, 1) || make_queries(&meas, nq, n, 2)) return 1;
    dr_topk_scratch *ts = NULL;
    dr_ann_scratch *as = NULL;
    dr_ann *a = NULL;
    dr_error err = {0};
    if (dr__topk_scratch_create(n, K, &ts, &err) != DR_OK || exact(z, n, &tune, ts) || exact(z, n, &meas, ts)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double rss0 = bench_peak_rss_mib();
    dr_ann_params p = dr__ann_default_params();
    p.threads = threads;
    if (getenv("BENCH_ANN_M")) p.M = (uint32_t)atoi(getenv("BENCH_ANN_M"));
    if (getenv("BENCH_ANN_EFC")) p.ef_construction = (uint32_t)atoi(getenv("BENCH_ANN_EFC"));
    if (dr__ann_build(z, n, D, 0, &p, &a, &err) != DR_OK) {
        fprintf(stderr, "build: %s\n", err.msg);
        return 1;
    }
    printf("ann.n%u.build_seconds %.2f s (M %u, ef_construction %u, %d threads)\n", n,
           dr__ann_build_seconds(a), p.M, p.ef_construction, threads);
    printf("ann.n%u.bytes_per_item.table %.1f B\n", n, (double)D * 4);
    printf("ann.n%u.bytes_per_item.index %.1f B\n", n, (double)dr__ann_bytes(a) / n);
    if (dr__ann_scratch_create(2048 + HIST, D, K, &as, &err) != DR_OK) return 1;
    /* tuning set only: the fastest (C, ef) whose recall there is >= GOAL */
    static const uint32_t Cs[] = {10, 20, 40, 80, 160, 320}, efs[] = {16, 32, 64, 128, 256, 512};
    uint32_t bestC = 0, bestef = 0;
    double best = 1e30;
    uint32_t got[K];
    float sc[K];
    double *lat = malloc((nq > TUNE ? nq : TUNE) * 2 * sizeof *lat);
    for (size_t ci = 0; ci < sizeof Cs / sizeof *Cs; ci++)
        for (size_t ei = 0; ei < sizeof efs / sizeof *efs; ei++) {
            uint32_t C = Cs[ci], ef = efs[ei];
            if (ef < C) continue;
            dr__ann_set_ef(a, ef);
            double rec = 0;
            for (size_t j = 0; j < TUNE; j++) {
                uint32_t m = 0;
                double t = bench_now();
                if (dr__ann_topk(a, C, z, n, D, tune.q + j * D, NULL, 0, 0, 0, tune.hist + j * HIST, HIST, K, as,
                                 got, sc, &m, &err) != DR_OK) {
                    fprintf(stderr, "two-stage: %s\n", err.msg);
                    return 1;
                }
                lat[j] = bench_now() - t;
                rec += recall(got, tune.truth + j * K);
            }
            rec /= TUNE;
            double med = bench_median(lat, TUNE);
            printf("# tune n=%u C=%u ef=%u recall@10 %.4f p50 %.1f us\n", n, C, ef, rec, med * 1e6);
            if (rec >= GOAL && med < best) {
                best = med;
                bestC = C;
                bestef = ef;
            }
        }
    if (!bestC) {
        bestC = 320;
        bestef = 512;
        printf("# n=%u: no grid point reached recall %.2f on the tuning set; using C=%u ef=%u\n", n, GOAL, bestC, bestef);
    }
    dr__ann_set_ef(a, bestef);
    printf("ann.n%u.chosen C=%u ef=%u\n", n, bestC, bestef);
    /* measured set: exact and two-stage alternated */
    double *le = lat, *l2 = lat + nq, rec = 0, te = 0, t2 = 0;
    uint32_t eg[K];
    for (size_t j = 0; j < nq; j++) {
        uint32_t m = 0;
        double t = bench_now();
        dr__topk_scan(z, n, D, meas.q + j * D, meas.hist + j * HIST, HIST, K, ts, eg, sc, &m, &err);
        le[j] = bench_now() - t;
        te += le[j];
        t = bench_now();
        if (dr__ann_topk(a, bestC, z, n, D, meas.q + j * D, NULL, 0, 0, 0, meas.hist + j * HIST, HIST, K, as, got,
                         sc, &m, &err) != DR_OK) {
            fprintf(stderr, "two-stage: %s\n", err.msg);
            return 1;
        }
        l2[j] = bench_now() - t;
        t2 += l2[j];
        rec += recall(got, eg);
        *hash = bench_hash(*hash, got, sizeof got);
    }
    qsort(le, nq, sizeof *le, bench_dbl_cmp);
    qsort(l2, nq, sizeof *l2, bench_dbl_cmp);
    printf("ann.n%u.exact.p50 %.1f us\nann.n%u.exact.p99 %.1f us\nann.n%u.exact.answers_per_s %.0f 1/s\n", n,
           bench_quantile_sorted(le, nq, 0.5) * 1e6, n, bench_quantile_sorted(le, nq, 0.99) * 1e6, n, nq / te);
    printf("ann.n%u.two_stage.p50 %.1f us\nann.n%u.two_stage.p99 %.1f us\nann.n%u.two_stage.answers_per_s %.0f 1/s\n",
           n, bench_quantile_sorted(l2, nq, 0.5) * 1e6, n, bench_quantile_sorted(l2, nq, 0.99) * 1e6, n, nq / t2);
    printf("ann.n%u.ratio_p50 %.2f x (exact / two-stage)\n", n,
           bench_quantile_sorted(le, nq, 0.5) / bench_quantile_sorted(l2, nq, 0.5));
    printf("ann.n%u.recall@10 %.4f (two-stage vs exact, %zu measured queries)\n", n, rec / nq, nq);
    printf("ann.n%u.peak_rss %.0f MiB (before the index %.0f MiB)\n", n, bench_peak_rss_mib(), rss0);
    fflush(stdout);
    free(lat);
    dr__ann_scratch_free(as);
    dr__ann_free(a);
    dr__topk_scratch_free(ts);
    free(z);
    free(tune.q), free(tune.hist), free(tune.truth), free(meas.q), free(meas.hist), free(meas.truth);
    return 0;
}

int main(int argc, char **argv) {
    bench_header("ann");
    const char *sizes = argc > 1 ? argv[1] : "14411,100000,1000000";
    size_t nq = argc > 2 ? (size_t)atol(argv[2]) : 2000;
    printf("# one thread per request, d %d, top-%d, %d-item history; machine shared and loaded\n", D, K, HIST);
    uint64_t hash = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", sizes);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","))
        if (run((uint32_t)atol(tok), nq, &hash)) return 1;
    printf("ann.answers_hash %016llx\n", (unsigned long long)hash);
    return 0;
}
