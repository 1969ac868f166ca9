/* test_topk.c - exact top-k (src/topk.c) and the scan (src/scan.c) against slow twins (double
 * loop + full sort; the portable kernel for every other kernel the CPU has), ties, k beyond the
 * candidates, NaN, errors, the bf16 path's answers against the f32 ones, and no allocation on
 * the hot path. */
#include "testutil.h"
#include "oom.h"

#include <cblas.h>
#include <math.h>

#include "rng.h"
#include "scan.h"
#include "topk.h"

typedef struct cand {
    float s;
    uint32_t i;
} cand;

static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Slow twin: scores by a double loop, every candidate sorted. Returns the count. */
static uint32_t naive(const float *scores, uint32_t n, const uint32_t *ex, size_t n_ex, uint32_t k,
                      uint32_t *items, float *sc) {
    uint8_t *is_ex = calloc(n + 1, 1);
    cand *c = malloc((n + 1) * sizeof *c);
    for (size_t e = 0; e < n_ex; e++) is_ex[ex[e]] = 1;
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++)
        if (!is_ex[i]) c[m++] = (cand){isnan(scores[i]) ? -INFINITY : scores[i], i};
    qsort(c, m, sizeof *c, cand_cmp);
    uint32_t r = DR_MIN(m, k);
    for (uint32_t j = 0; j < r; j++) {
        items[j] = c[j].i;
        sc[j] = c[j].s;
    }
    free(is_ex);
    free(c);
    return r;
}

static void naive_scores(const float *item, const float *bias, uint32_t n, uint32_t d,
                         const float *h, float *out) {
    for (uint32_t i = 0; i < n; i++) {
        double acc = bias ? bias[i] : 0.0;
        for (uint32_t c = 0; c < d; c++) acc += (double)item[(size_t)i * d + c] * h[c];
        out[i] = (float)acc;
    }
}

/* Integer-valued data: every summation order gives the same float, so the whole pipeline
 * (scan scores and selection) must match the slow twin exactly, with many ties. A bias is an
 * extra column of the table with 1 in h (mf's latent view). */
static void test_exact_with_ties(void **state) {
    (void)state;
    dr_rng r;
    dr__rng_seed(&r, 1, 0);
    const uint32_t sizes[] = {1, 2, 7, 64, 65, 300, 1000};
    dr_topk_scratch *s = NULL;
    assert_ok(dr__topk_scratch_create(1000, 1100, &s, &e_));
    for (size_t t = 0; t < DR_ARRAY_LEN(sizes); t++) {
        uint32_t n = sizes[t], d = 1 + (uint32_t)dr__rng_below(&r, 9);
        float *item = malloc((size_t)n * (d + 1) * sizeof *item), *bias = malloc(n * sizeof *bias);
        float *item1 = malloc((size_t)n * (d + 1) * sizeof *item1);
        float h[16], *ref = malloc(n * sizeof *ref);
        for (size_t k = 0; k < (size_t)n * d; k++) item[k] = (float)dr__rng_below(&r, 5) - 2.0f;
        for (uint32_t i = 0; i < n; i++) bias[i] = (float)dr__rng_below(&r, 3);
        for (uint32_t c = 0; c < d; c++) h[c] = (float)dr__rng_below(&r, 5) - 2.0f;
        h[d] = 1.0f;
        for (uint32_t i = 0; i < n; i++) {
            memcpy(item1 + (size_t)i * (d + 1), item + (size_t)i * d, d * sizeof *item);
            item1[(size_t)i * (d + 1) + d] = bias[i];
        }
        uint32_t ex[64];
        size_t n_ex = dr__rng_below(&r, DR_MIN(n, 40u) + 1);
        for (size_t e = 0; e < n_ex; e++) ex[e] = (uint32_t)dr__rng_below(&r, n); /* repeats */
        const uint32_t ks[] = {0, 1, 3, 10, n / 2, n - (uint32_t)DR_MIN(n_ex, n), n, n + 5};
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            naive_scores(item, with_bias ? bias : NULL, n, d, h, ref);
            for (size_t kk = 0; kk < DR_ARRAY_LEN(ks); kk++) {
                uint32_t k = ks[kk], got_n = 99, want_i[1100], got_i[1100];
                float want_s[1100], got_s[1100];
                uint32_t want_n = naive(ref, n, ex, n_ex, k, want_i, want_s);
                assert_ok(dr__topk_scan(with_bias ? item1 : item, n, d + (uint32_t)with_bias, h,
                                        ex, n_ex, k, s, got_i, got_s, &got_n, &e_));
                if (got_n != want_n) fail_msg("n=%u k=%u: %u results, want %u", n, k, got_n, want_n);
                assert_memory_equal(got_i, want_i, want_n * sizeof *got_i);
                assert_memory_equal(got_s, want_s, want_n * sizeof *got_s);
                assert_memory_equal(dr__topk_last_scores(s), ref, n * sizeof *ref);
            }
        }
        free(item);
        free(item1);
        free(bias);
        free(ref);
    }
    dr__topk_scratch_free(s);
}

/* Real-valued data: scan scores are close to the double loop and to sgemv's; the selection on
 * them is exactly the full sort of the same scores. */
static void test_random_floats(void **state) {
    (void)state;
    dr_rng r;
    dr__rng_seed(&r, 2, 0);
    const uint32_t n = 5000, d = 50, K = 20;
    float *item = malloc((size_t)n * d * sizeof *item);
    float *ref = malloc(n * sizeof *ref), *scan = malloc(n * sizeof *scan), h[50];
    float *blas = malloc(n * sizeof *blas);
    for (size_t k = 0; k < (size_t)n * d; k++) item[k] = (float)dr__rng_normal(&r);
    dr_topk_scratch *s = NULL;
    assert_ok(dr__topk_scratch_create(n, K, &s, &e_));
    for (int req = 0; req < 50; req++) {
        for (uint32_t c = 0; c < d; c++) h[c] = (float)dr__rng_normal(&r);
        uint32_t ex[200];
        size_t n_ex = dr__rng_below(&r, 200);
        for (size_t e = 0; e < n_ex; e++) ex[e] = (uint32_t)dr__rng_below(&r, n);
        uint32_t got_i[20], want_i[20], got_n;
        float got_s[20], want_s[20];
        assert_ok(dr__topk_scan(item, n, d, h, ex, n_ex, K, s, got_i, got_s, &got_n, &e_));
        naive_scores(item, NULL, n, d, h, ref);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)d, 1.0f, item, (int)d, h, 1, 0.0f,
                    blas, 1);
        memcpy(scan, dr__topk_last_scores(s), n * sizeof *scan);
        for (uint32_t i = 0; i < n; i++) {
            assert_true(fabsf(scan[i] - ref[i]) < 1e-3f);
            assert_true(fabsf(scan[i] - blas[i]) < 1e-3f);
        }
        uint32_t want_n = naive(scan, n, ex, n_ex, K, want_i, want_s);
        assert_int_equal(got_n, want_n);
        assert_memory_equal(got_i, want_i, K * sizeof *got_i);
        assert_memory_equal(got_s, want_s, K * sizeof *got_s);
        /* select alone on the same vector */
        uint32_t sel_n;
        assert_ok(dr__topk_select(scan, n, ex, n_ex, K, s, got_i, NULL, &sel_n, &e_));
        assert_memory_equal(got_i, want_i, K * sizeof *got_i);
    }
    free(item);
    free(ref);
    free(scan);
    free(blas);
    dr__topk_scratch_free(s);
}

static void test_nan_and_all_excluded(void **state) {
    (void)state;
    dr_topk_scratch *s = NULL;
    assert_ok(dr__topk_scratch_create(8, 8, &s, &e_));
    float sc[8] = {1, NAN, 3, 3, -INFINITY, NAN, 2, 3};
    uint32_t it[8], n_out, want_i[8];
    float out[8], want_s[8];
    for (uint32_t k = 0; k <= 8; k++) {
        assert_ok(dr__topk_select(sc, 8, NULL, 0, k, s, it, out, &n_out, &e_));
        uint32_t wn = naive(sc, 8, NULL, 0, k, want_i, want_s);
        assert_int_equal(n_out, wn);
        assert_memory_equal(it, want_i, wn * sizeof *it);
    }
    assert_ok(dr__topk_select(sc, 8, NULL, 0, 4, s, it, out, &n_out, &e_));
    assert_int_equal(it[0], 2);
    assert_int_equal(it[1], 3);
    assert_int_equal(it[2], 7);
    assert_int_equal(it[3], 6);
    uint32_t all[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    assert_ok(dr__topk_select(sc, 8, all, 8, 5, s, it, out, &n_out, &e_));
    assert_int_equal(n_out, 0);
    assert_ok(dr__topk_select(sc, 0, NULL, 0, 5, s, it, out, &n_out, &e_));
    assert_int_equal(n_out, 0);
    dr__topk_scratch_free(s);
}

static dr_status scratch_call(void *ud, dr_error *err) {
    return dr__topk_scratch_create(100, 10, (dr_topk_scratch **)ud, err);
}

static void scratch_free(void *ud) {
    dr__topk_scratch_free(*(dr_topk_scratch **)ud);
    *(dr_topk_scratch **)ud = NULL;
}

static void test_errors(void **state) {
    (void)state;
    dr_topk_scratch *s = NULL;
    assert_ok(dr__topk_scratch_create(10, 3, &s, &e_));
    float item[20] = {0}, h[2] = {1, 1}, sc[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    uint32_t it[10], n_out;
    dr_error e = {0};
    assert_int_equal(dr__topk_select(sc, 10, NULL, 0, 4, s, it, NULL, &n_out, &e), DR_ARG);
    assert_int_equal(dr__topk_select(sc, 11, NULL, 0, 3, s, it, NULL, &n_out, &e), DR_ARG);
    assert_int_equal(dr__topk_scan(item, 10, 0, h, NULL, 0, 3, s, it, NULL, &n_out, &e), DR_ARG);
    assert_int_equal(dr__topk_scan_bf16(NULL, item, 10, 0, h, NULL, 0, 3, s, it, NULL, &n_out, &e),
                     DR_ARG);
    uint32_t bad[2] = {9, 10};
    assert_int_equal(dr__topk_select(sc, 10, bad, 2, 3, s, it, NULL, &n_out, &e), DR_RANGE);
    assert_non_null(strstr(e.msg, "excluded item 10"));
    /* the failed call left no exclusion behind */
    assert_ok(dr__topk_select(sc, 10, NULL, 0, 3, s, it, NULL, &n_out, &e_));
    assert_int_equal(it[0], 9);
    assert_int_equal(it[2], 7);
    dr__topk_scratch_free(NULL);
    dr__topk_scratch_free(s);
    /* OOM while creating */
    s = NULL;
    dr_oom_case c = {.name = "dr__topk_scratch_create", .call = scratch_call,
                     .cleanup = scratch_free, .ud = &s, .out = (void **)&s};
    assert_true(dr_oom_check(&c) > 0);
}

static void test_no_alloc_hot_path(void **state) {
    (void)state;
    const uint32_t n = 14411, d = 50;
    dr_rng r;
    dr__rng_seed(&r, 3, 0);
    float *item = malloc((size_t)n * d * sizeof *item), h[50];
    for (size_t k = 0; k < (size_t)n * d; k++) item[k] = (float)dr__rng_normal(&r);
    uint32_t ex[50], it[10], n_out;
    float sc[10];
    dr_topk_scratch *s = NULL;
    assert_ok(dr__topk_scratch_create(n, 10, &s, &e_));
    for (uint32_t c = 0; c < d; c++) h[c] = (float)dr__rng_normal(&r);
    for (int e = 0; e < 50; e++) ex[e] = (uint32_t)dr__rng_below(&r, n);
    dr_scan_bf16 *t = NULL;
    assert_ok(dr__bf16_create(n, d, &t, &e_));
    dr__bf16_set_rows(t, item, d, 0, n);
    assert_ok(dr__topk_scan(item, n, d, h, ex, 50, 10, s, it, sc, &n_out, &e_)); /* warm-up */
    uint64_t before = dr__alloc_count();
    for (int req = 0; req < 1000; req++) {
        h[req % d] += 0.01f;
        ex[req % 50] = (uint32_t)dr__rng_below(&r, n);
        dr_status st = req % 2 ? dr__topk_scan(item, n, d, h, ex, 50, 10, s, it, sc, &n_out, NULL)
                               : dr__topk_scan_bf16(t, item, n, d, h, ex, 50, 10, s, it, sc,
                                                    &n_out, NULL);
        assert_int_equal(st, DR_OK);
        assert_int_equal(n_out, 10);
    }
    assert_int_equal(dr__alloc_count(), before);
    dr__bf16_free(t);
    dr__topk_scratch_free(s);
    free(item);
}

/* A table of n rows of d: normal values, every 7th row larger, duplicate rows (exact ties)
 * and rows one ulp apart. */
static void fill_table(dr_rng *r, float *item, uint32_t n, uint32_t d) {
    for (size_t k = 0; k < (size_t)n * d; k++)
        item[k] = (float)(dr__rng_normal(r) * (k / d % 7 == 0 ? 3.0 : 0.3));
    for (uint32_t i = 1; i < n; i++) {
        if (i % 5 == 0) memcpy(item + (size_t)i * d, item + (size_t)(i - 1) * d, d * sizeof *item);
        if (i % 11 == 0) {
            memcpy(item + (size_t)i * d, item + (size_t)(i - 1) * d, d * sizeof *item);
            item[(size_t)i * d] = nextafterf(item[(size_t)i * d], INFINITY);
        }
    }
}

/* Every kernel the CPU has gives the portable kernel's bits, f32 and bf16, on row tails
 * (n % 4) and column tails (d % 16); the selection over the scan is the exact one (naive);
 * against sgemv the k-th best scores agree within rounding at every rank. */
static void test_scan(void **state) {
    (void)state;
    dr_rng r;
    dr__rng_seed(&r, 77, 0);
    const uint32_t ns[] = {1, 3, 7, 203, 5003, 14411};
    const uint32_t ds[] = {1, 4, 8, 12, 15, 16, 17, 31, 50, 64, 68, 100};
    const uint32_t ks[] = {1, 10, 50};
    int checked[DR_SCAN_N] = {0};
    for (size_t a = 0; a < DR_ARRAY_LEN(ns); a++)
        for (size_t b = 0; b < DR_ARRAY_LEN(ds); b++) {
            uint32_t n = ns[a], d = ds[b];
            float *item = malloc((size_t)n * d * sizeof *item), h[128], hp[128] = {0};
            float *fast = malloc(n * sizeof *fast), *port = malloc(n * sizeof *port);
            float *bport = malloc(n * sizeof *bport);
            dr_topk_scratch *s = NULL;
            dr_scan_bf16 *t = NULL;
            assert_ok(dr__topk_scratch_create(n, 50, &s, &e_));
            assert_ok(dr__bf16_create(n, d, &t, &e_));
            for (int req = 0; req < 3; req++) {
                fill_table(&r, item, n, d);
                dr__bf16_reset_bounds(t);
                dr__bf16_set_rows(t, item, d, 0, n);
                for (uint32_t c = 0; c < d; c++) hp[c] = h[c] = (float)dr__rng_normal(&r);
                dr__scan_f32_v(DR_SCAN_PORTABLE, item, n, d, h, port);
                dr__scan_bf16_v(DR_SCAN_PORTABLE, t, n, hp, bport);
                for (int v = 1; v < DR_SCAN_N; v++) {
                    if (!dr__scan_supported(v)) continue;
                    checked[v] = 1;
                    dr__scan_f32_v(v, item, n, d, h, fast);
                    if (memcmp(fast, port, n * sizeof *fast) != 0)
                        fail_msg("%s f32 kernel differs from portable at n %u d %u",
                                 dr__scan_variant_name(v), n, d);
                    dr__scan_bf16_v(v, t, n, hp, fast);
                    if (memcmp(fast, bport, n * sizeof *fast) != 0)
                        fail_msg("%s bf16 kernel differs from portable at n %u d %u",
                                 dr__scan_variant_name(v), n, d);
                }
                /* the bf16 scores are within the margin of the f32 ones */
                double hn = 0;
                for (uint32_t c = 0; c < d; c++) hn += (double)h[c] * h[c];
                double M = dr__bf16_margin(t, sqrt(hn));
                for (uint32_t i = 0; i < n; i++)
                    if (!(fabs((double)port[i] - bport[i]) <= M))
                        fail_msg("n %u d %u row %u: |%.9g - %.9g| > margin %.9g", n, d, i,
                                 (double)port[i], (double)bport[i], M);
                uint32_t ex[100];
                size_t n_ex = dr__rng_below(&r, n < 100 ? n : 100);
                for (size_t e = 0; e < n_ex; e++) ex[e] = (uint32_t)dr__rng_below(&r, n);
                for (size_t q = 0; q < DR_ARRAY_LEN(ks); q++) {
                    uint32_t k = ks[q], gi[50], bi[50], ni[50], gn, bn, nn;
                    float gs[50], bs[50], ns_[50], *blas = fast;
                    assert_ok(dr__topk_scan(item, n, d, h, ex, n_ex, k, s, gi, gs, &gn, &e_));
                    assert_memory_equal(dr__topk_last_scores(s), port, n * sizeof *port);
                    nn = naive(port, n, ex, n_ex, k, ni, ns_);
                    assert_int_equal(gn, nn);
                    assert_memory_equal(gi, ni, gn * sizeof *gi);
                    assert_memory_equal(gs, ns_, gn * sizeof *gs);
                    /* bf16 + rescoring: the f32 answer, bit for bit */
                    assert_ok(dr__topk_scan_bf16(t, item, n, d, h, ex, n_ex, k, s, bi, bs, &bn, &e_));
                    assert_int_equal(bn, gn);
                    assert_memory_equal(bi, gi, gn * sizeof *gi);
                    assert_memory_equal(bs, gs, gn * sizeof *gs);
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)d, 1.0f, item, (int)d, h,
                                1, 0.0f, blas, 1);
                    uint32_t wn = naive(blas, n, ex, n_ex, k, ni, ns_);
                    assert_int_equal(gn, wn);
                    for (uint32_t j = 0; j < gn; j++)
                        if (fabsf(gs[j] - ns_[j]) > 1e-5f * (1.0f + fabsf(ns_[j])))
                            fail_msg("n %u d %u k %u rank %u: scan %.9g, sgemv %.9g", n, d, k, j,
                                     (double)gs[j], (double)ns_[j]);
                }
            }
            dr__bf16_free(t);
            dr__topk_scratch_free(s);
            free(item);
            free(fast);
            free(port);
            free(bport);
        }
    for (int v = 1; v < DR_SCAN_N; v++)
        printf("scan: %s kernel %s\n", dr__scan_variant_name(v),
               checked[v] ? "gives the portable bits" : "not on this CPU (skipped)");
}

/* The bf16 path on many queries over a catalogue with near-ties at the top (rows that differ
 * below bf16's precision): answers equal the f32 ones, and all three of its ways answer. */
static void test_bf16_passes(void **state) {
    (void)state;
    dr_rng r;
    dr__rng_seed(&r, 91, 0);
    const uint32_t n = 20000, d = 64;
    float *item = malloc((size_t)n * d * sizeof *item), h[64];
    fill_table(&r, item, n, d);
    /* rows 100..163: copies of row 99 with one coordinate nudged by a few ulps */
    for (uint32_t i = 100; i < 164; i++) {
        memcpy(item + (size_t)i * d, item + (size_t)99 * d, d * sizeof *item);
        float *x = item + (size_t)i * d + (i % d);
        for (uint32_t u = 0; u < i % 7; u++) *x = nextafterf(*x, INFINITY);
    }
    dr_scan_bf16 *t = NULL;
    dr_topk_scratch *s = NULL;
    assert_ok(dr__bf16_create(n, d, &t, &e_));
    dr__bf16_set_rows(t, item, d, 0, n);
    assert_ok(dr__topk_scratch_create(n, 100, &s, &e_));
    for (int req = 0; req < 400; req++) {
        for (uint32_t c = 0; c < d; c++) h[c] = (float)dr__rng_normal(&r);
        if (req % 4 == 0) /* towards row 99: its near copies compete for the top */
            for (uint32_t c = 0; c < d; c++) h[c] = item[(size_t)99 * d + c] * 10.0f;
        uint32_t k = req % 3 == 0 ? 100 : 10, gi[100], bi[100], gn, bn;
        float gs[100], bs[100];
        uint32_t ex[3] = {(uint32_t)dr__rng_below(&r, n), 99, 5};
        assert_ok(dr__topk_scan(item, n, d, h, ex, 3, k, s, gi, gs, &gn, &e_));
        assert_ok(dr__topk_scan_bf16(t, item, n, d, h, ex, 3, k, s, bi, bs, &bn, &e_));
        assert_int_equal(bn, gn);
        assert_memory_equal(bi, gi, gn * sizeof *gi);
        assert_memory_equal(bs, gs, gn * sizeof *gs);
    }
    uint64_t p1, p2, full;
    dr__topk_bf16_counts(s, &p1, &p2, &full);
    printf("bf16: %llu answers by pass 1, %llu by pass 2, %llu by the f32 scan\n",
           (unsigned long long)p1, (unsigned long long)p2, (unsigned long long)full);
    assert_true(p1 > 0);
    assert_true(p2 > 0);
    /* a table with an infinite value: no finite margin, the f32 scan answers */
    item[7] = INFINITY;
    dr__bf16_set_rows(t, item, d, 0, 3); /* the finite rows after it do not clear it */
    for (uint32_t c = 0; c < d; c++) h[c] = (float)dr__rng_normal(&r);
    uint32_t gi[10], bi[10], gn, bn;
    float gs[10], bs[10];
    assert_ok(dr__topk_scan(item, n, d, h, NULL, 0, 10, s, gi, gs, &gn, &e_));
    assert_ok(dr__topk_scan_bf16(t, item, n, d, h, NULL, 0, 10, s, bi, bs, &bn, &e_));
    assert_memory_equal(bi, gi, gn * sizeof *gi);
    uint64_t full2;
    dr__topk_bf16_counts(s, NULL, NULL, &full2);
    assert_true(full2 == full + 1);
    /* errors: a table of another shape */
    dr_error e = {0};
    assert_int_equal(dr__topk_scan_bf16(t, item, n, d - 1, h, NULL, 0, 10, s, bi, bs, &bn, &e),
                     DR_ARG);
    dr__bf16_free(t);
    dr__topk_scratch_free(s);
    free(item);
}

static dr_status bf16_call(void *ud, dr_error *err) {
    return dr__bf16_create(1000, 50, (dr_scan_bf16 **)ud, err);
}

static void bf16_cleanup(void *ud) {
    dr__bf16_free(*(dr_scan_bf16 **)ud);
    *(dr_scan_bf16 **)ud = NULL;
}

static void test_variants(void **state) {
    (void)state;
    dr_error e = {0};
    assert_int_equal(dr__scan_force(DR_SCAN_N, &e), DR_ARG);
    assert_int_equal(dr__scan_force(-2, &e), DR_ARG);
    for (int v = 0; v < DR_SCAN_N; v++) {
        if (dr__scan_supported(v)) {
            assert_ok(dr__scan_force(v, &e_));
            assert_int_equal(dr__scan_variant(), v);
        } else {
            assert_int_equal(dr__scan_force(v, &e), DR_UNSUPPORTED);
            assert_non_null(strstr(e.msg, dr__scan_variant_name(v)));
        }
    }
    assert_ok(dr__scan_force(-1, &e_));
    assert_string_equal(dr__scan_variant_name(99), "?");
    assert_int_equal(dr__bf16_create(10, 0, &(dr_scan_bf16 *){NULL}, &e), DR_ARG);
    dr_scan_bf16 *t = NULL;
    dr_oom_case c = {.name = "dr__bf16_create", .call = bf16_call, .cleanup = bf16_cleanup,
                     .ud = &t, .out = (void **)&t};
    assert_true(dr_oom_check(&c) > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_with_ties),   cmocka_unit_test(test_random_floats),
        cmocka_unit_test(test_nan_and_all_excluded), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_no_alloc_hot_path), cmocka_unit_test(test_scan),
        cmocka_unit_test(test_bf16_passes),       cmocka_unit_test(test_variants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
