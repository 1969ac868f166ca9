/*
 * bench_topk.c - latency of exact top-10 (src/scan.c + src/topk.c) on one thread, warm
 * scratch, d = 64, each request with its own user vector and a 50-item history excluded.
 * Catalogues of 14,411 (amazon-mtv), 10^5 and 10^6 random items. Per catalogue, in one run and
 * alternated round by round (so a load change on the machine hits every row alike):
 *   sgemv        OpenBLAS sgemv + the selection (the offline paths before the scan)
 *   f32/VARIANT  the fixed-order scan of the f32 table, each kernel the CPU has
 *   bf16/VARIANT the scan of the bf16 copy + exact f32 rescoring (the same answers)
 *   read f32 / read bf16  a plain read (a sum of 64-bit words, the widest loads the CPU has,
 *                4 accumulators) of the same bytes: the memory-read bound
 * p50/p99 over all requests of a row; ratio = row's p50 / the p50 of reading its bytes.
 * The answers of every row are checked equal to the portable f32 ones (the hash covers them).
 * Usage: bench_topk [requests per row at 14,411 items] [sizes, comma-separated]
 *   (defaults 2000 and 14411,100000,1000000; a larger catalogue gets requests x 12,500 / n,
 *   at least 5, e.g. `bench_topk 2000 10000000` for the 10^7 row: 2.6 GB f32 + 1.3 GB bf16).
 */
#include <cblas.h>
#include <math.h>

#include "bench.h"
#include "rng.h"
#include "scan.h"
#include "topk.h"

#define D 64
#define K 10
#define HIST 50
#define POOL 256   /* distinct request vectors and histories, cycled */
#define ROUNDS 5   /* rounds of alternation */
#define MAXROWS 16

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
__attribute__((target("avx2"))) static uint64_t read_avx2(const void *p, size_t bytes) {
    const __m256i *v = p;
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    size_t n = bytes / 128, i;
    for (i = 0; i < n; i++) {
        a = _mm256_add_epi64(a, _mm256_loadu_si256(v + 4 * i));
        b = _mm256_add_epi64(b, _mm256_loadu_si256(v + 4 * i + 1));
        c = _mm256_add_epi64(c, _mm256_loadu_si256(v + 4 * i + 2));
        d = _mm256_add_epi64(d, _mm256_loadu_si256(v + 4 * i + 3));
    }
    a = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
    uint64_t o[4];
    _mm256_storeu_si256((__m256i *)o, a);
    return o[0] + o[1] + o[2] + o[3];
}

__attribute__((target("avx512f"))) static uint64_t read_avx512(const void *p, size_t bytes) {
    const char *v = p;
    __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
    size_t n = bytes / 256, i;
    for (i = 0; i < n; i++) {
        a = _mm512_add_epi64(a, _mm512_loadu_si512((const void *)(v + 256 * i)));
        b = _mm512_add_epi64(b, _mm512_loadu_si512((const void *)(v + 256 * i + 64)));
        c = _mm512_add_epi64(c, _mm512_loadu_si512((const void *)(v + 256 * i + 128)));
        d = _mm512_add_epi64(d, _mm512_loadu_si512((const void *)(v + 256 * i + 192)));
    }
    return (uint64_t)_mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a, b), _mm512_add_epi64(c, d)));
}
#endif

/* the memory-read bound: every byte of the table read once, summed as 64-bit words */
static uint64_t read_bytes(const void *p, size_t bytes) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx512f")) return read_avx512(p, bytes);
    if (__builtin_cpu_supports("avx2")) return read_avx2(p, bytes);
#endif
    const uint64_t *w = p;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= bytes / 8; i += 4) s0 += w[i], s1 += w[i + 1], s2 += w[i + 2], s3 += w[i + 3];
    return s0 + s1 + s2 + s3;
}

typedef struct row {
    char name[32];
    int kind;    /* 0 sgemv, 1 f32 scan, 2 bf16 scan, 3 read f32, 4 read bf16 */
    int variant;
    double *lat;
    size_t n;
} row;

static volatile uint64_t sink;

static int run(uint32_t n, size_t requests, uint64_t *hash) {
    dr_rng r;
    dr__rng_seed(&r, 20240601, n);
    float *item = malloc((size_t)n * D * sizeof *item), *scores = malloc((size_t)n * sizeof *scores);
    float *hs = malloc((size_t)POOL * D * sizeof *hs);
    uint32_t *hist = malloc((size_t)POOL * HIST * sizeof *hist);
    uint32_t *want = malloc((size_t)POOL * K * sizeof *want);
    dr_topk_scratch *s = NULL;
    dr_scan_bf16 *t = NULL;
    dr_error err = {0};
    if (!item || !scores || !hs || !hist || !want) return 1;
    for (size_t k = 0; k < (size_t)n * D; k++) item[k] = (float)(dr__rng_normal(&r) * 0.1);
    for (size_t k = 0; k < (size_t)POOL * D; k++) hs[k] = (float)dr__rng_normal(&r);
    for (size_t k = 0; k < (size_t)POOL * HIST; k++) hist[k] = (uint32_t)dr__rng_below(&r, n);
    if (dr__topk_scratch_create(n, K, &s, &err) != DR_OK || dr__bf16_create(n, D, &t, &err) != DR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    dr__bf16_set_rows(t, item, D, 0, n);
    row rows[MAXROWS];
    int nr = 0;
    rows[nr++] = (row){"sgemv", 0, 0, NULL, 0};
    for (int v = 0; v < DR_SCAN_N; v++)
        if (dr__scan_supported(v)) {
            rows[nr] = (row){"", 1, v, NULL, 0};
            snprintf(rows[nr++].name, 32, "f32_%s", dr__scan_variant_name(v));
            rows[nr] = (row){"", 2, v, NULL, 0};
            snprintf(rows[nr++].name, 32, "bf16_%s", dr__scan_variant_name(v));
        }
    rows[nr++] = (row){"read_f32", 3, 0, NULL, 0};
    rows[nr++] = (row){"read_bf16", 4, 0, NULL, 0};
    /* the reference answers: portable f32 */
    dr__scan_force(DR_SCAN_PORTABLE, NULL);
    uint32_t ids[K], n_out = 0;
    float sc[K];
    for (size_t p = 0; p < POOL && p < requests; p++)
        if (dr__topk_scan(item, n, D, hs + p * D, hist + p * HIST, HIST, K, s, want + p * K, sc,
                          &n_out, &err) != DR_OK)
            return 1;
    size_t per_round = (requests + ROUNDS - 1) / ROUNDS;
    for (int j = 0; j < nr; j++)
        if (!(rows[j].lat = malloc(per_round * ROUNDS * sizeof(double)))) return 1;
    uint64_t allocs = dr__alloc_count();
    for (int round = 0; round < ROUNDS; round++)
        for (int j = 0; j < nr; j++) {
            row *w = &rows[j];
            /* the portable kernel is ~10x slower: fewer requests, same rounds */
            size_t q_n = w->variant == DR_SCAN_PORTABLE && w->kind ? (per_round + 9) / 10 : per_round;
            if (w->kind == 1 || w->kind == 2) dr__scan_force(w->variant, NULL);
            for (size_t q = 0; q < q_n; q++) {
                size_t p = (round * per_round + q) % POOL;
                const float *h = hs + p * D;
                const uint32_t *hi = hist + p * HIST;
                dr_status st = DR_OK;
                double t0 = bench_now();
                switch (w->kind) {
                case 0:
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, D, 1.0f, item, D, h, 1, 0.0f,
                                scores, 1);
                    st = dr__topk_select(scores, n, hi, HIST, K, s, ids, sc, &n_out, &err);
                    break;
                case 1: st = dr__topk_scan(item, n, D, h, hi, HIST, K, s, ids, sc, &n_out, &err); break;
                case 2:
                    st = dr__topk_scan_bf16(t, item, n, D, h, hi, HIST, K, s, ids, sc, &n_out, &err);
                    break;
                case 3: sink += read_bytes(item, (size_t)n * D * sizeof *item); break;
                default: sink += read_bytes(t->q, dr__bf16_bytes(t)); break;
                }
                w->lat[w->n++] = bench_now() - t0;
                if (st != DR_OK) {
                    fprintf(stderr, "%s request %zu: %s\n", w->name, q, err.msg);
                    return 1;
                }
                if ((w->kind == 1 || w->kind == 2) && p < requests &&
                    memcmp(ids, want + p * K, sizeof ids) != 0) {
                    fprintf(stderr, "%s: request %zu answers differ from portable f32\n", w->name, p);
                    return 1;
                }
                if (w->kind == 2 && round == 0 && q < POOL) *hash = bench_hash(*hash, ids, sizeof ids);
            }
        }
    allocs = dr__alloc_count() - allocs;
    dr__scan_force(-1, NULL);
    double p50[MAXROWS];
    for (int j = 0; j < nr; j++) {
        qsort(rows[j].lat, rows[j].n, sizeof(double), bench_dbl_cmp);
        p50[j] = bench_quantile_sorted(rows[j].lat, rows[j].n, 0.50);
    }
    double bf32 = p50[nr - 2], bb16 = p50[nr - 1];
    for (int j = 0; j < nr; j++) {
        row *w = &rows[j];
        double bound = w->kind == 2 || w->kind == 4 ? bb16 : bf32;
        printf("topk_n%u_d%d_k%d_%s_p50 %.2f us\n", n, D, K, w->name, 1e6 * p50[j]);
        printf("topk_n%u_d%d_k%d_%s_p99 %.2f us\n", n, D, K, w->name,
               1e6 * bench_quantile_sorted(w->lat, w->n, 0.99));
        if (w->kind < 3) printf("topk_n%u_%s_over_read_bound %.2f ratio\n", n, w->name, p50[j] / bound);
        free(w->lat);
    }
    uint64_t p1, p2, full;
    dr__topk_bf16_counts(s, &p1, &p2, &full);
    printf("topk_n%u_bf16_answers pass1 %llu pass2 %llu f32 %llu\n", n, (unsigned long long)p1,
           (unsigned long long)p2, (unsigned long long)full);
    printf("topk_n%u_bytes_per_item f32 %d bf16 %u (scan reads bf16; both kept: %u)\n", n,
           D * 4, t->dp * 2, D * 4 + t->dp * 2);
    printf("topk_n%u_allocs_per_request %.3f allocs\n", n, (double)allocs / (double)(requests * nr));
    dr__bf16_free(t);
    dr__topk_scratch_free(s);
    free(item);
    free(scores);
    free(hs);
    free(hist);
    free(want);
    return 0;
}

int main(int argc, char **argv) {
    size_t requests = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 2000;
    if (requests < ROUNDS) requests = ROUNDS;
    openblas_set_num_threads(1);
    bench_header("topk");
    printf("# one thread (OpenBLAS single-threaded), d=%d, top-%d, history %d excluded, rows "
           "alternated over %d rounds; default kernel %s\n", D, K, HIST, ROUNDS,
           dr__scan_variant_name(dr__scan_variant()));
    uint64_t hash = 0;
    const char *sizes = argc > 2 ? argv[2] : "14411,100000,1000000";
    uint32_t ns[MAXROWS];
    int nn = 0;
    for (const char *c = sizes; *c; nn++) { /* every size checked before any is run */
        char *end;
        unsigned long long n = strtoull(c, &end, 10);
        if (nn == MAXROWS || end == c || !n || n > DR_MAX_ROWS || (*end && *end != ',')) {
            fprintf(stderr, "bench_topk: sizes '%s': expected at most %d item counts 1..%u, "
                    "comma-separated\n", sizes, MAXROWS, (unsigned)DR_MAX_ROWS);
            return 2;
        }
        ns[nn] = (uint32_t)n;
        c = *end ? end + 1 : end;
    }
    for (int j = 0; j < nn; j++) {
        size_t r = ns[j] <= 14411 ? requests : (size_t)((double)requests * 12500.0 / ns[j]);
        if (ns[j] == 100000 && r < 2 * ROUNDS) r = 2 * ROUNDS;
        if (r < ROUNDS) r = ROUNDS;
        if (run(ns[j], r, &hash)) return 1;
    }
    printf("topk_output_hash %016llx hash\n", (unsigned long long)hash);
    return 0;
}
