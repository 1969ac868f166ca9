/* test_topk.c - exact top-k (src/topk.c) against a slow twin (double loop + full sort), ties,
 * k beyond the candidates, NaN, errors, and no allocation on the hot path. */
#include "testutil.h"
#include "oom.h"

#include <cblas.h>
#include <math.h>

#include "rng.h"
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
 * (BLAS scores and selection) must match the slow twin exactly, with many ties. */
static void test_exact_with_ties(void **state) {
    (void)state;
    dr_rng r;
    dr__rng_seed(&r, 1, 0);
    const uint32_t sizes[] = {1, 2, 7, 64, 65, 300, 1000};
    dr_topk_scratch *s = NULL;
    assert_ok(dr__topk_scratch_create(1000, 1100, &s, &e_));
    for (size_t t = 0; t < DR_ARRAY_LEN(sizes); t++) {
        uint32_t n = sizes[t], d = 1 + (uint32_t)dr__rng_below(&r, 9);
        float *item = malloc((size_t)n * d * sizeof *item), *bias = malloc(n * sizeof *bias);
        float h[16], *ref = malloc(n * sizeof *ref);
        for (size_t k = 0; k < (size_t)n * d; k++) item[k] = (float)dr__rng_below(&r, 5) - 2.0f;
        for (uint32_t i = 0; i < n; i++) bias[i] = (float)dr__rng_below(&r, 3);
        for (uint32_t c = 0; c < d; c++) h[c] = (float)dr__rng_below(&r, 5) - 2.0f;
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
                assert_ok(dr__topk_dot(item, with_bias ? bias : NULL, n, d, h, ex, n_ex, k, s,
                                      got_i, got_s, &got_n, &e_));
                if (got_n != want_n) fail_msg("n=%u k=%u: %u results, want %u", n, k, got_n, want_n);
                assert_memory_equal(got_i, want_i, want_n * sizeof *got_i);
                assert_memory_equal(got_s, want_s, want_n * sizeof *got_s);
                assert_memory_equal(dr__topk_last_scores(s), ref, n * sizeof *ref);
            }
        }
        free(item);
        free(bias);
        free(ref);
    }
    dr__topk_scratch_free(s);
}

/* Real-valued data: BLAS scores are close to the double loop; the selection on them is
 * exactly the full sort of the same scores. */
static void test_random_floats(void **state) {
    (void)state;
    dr_rng r;
    dr__rng_seed(&r, 2, 0);
    const uint32_t n = 5000, d = 50, K = 20;
    float *item = malloc((size_t)n * d * sizeof *item), *bias = malloc(n * sizeof *bias);
    float *ref = malloc(n * sizeof *ref), *blas = malloc(n * sizeof *blas), h[50];
    for (size_t k = 0; k < (size_t)n * d; k++) item[k] = (float)dr__rng_normal(&r);
    for (uint32_t i = 0; i < n; i++) bias[i] = (float)dr__rng_normal(&r) * 0.1f;
    dr_topk_scratch *s = NULL;
    assert_ok(dr__topk_scratch_create(n, K, &s, &e_));
    for (int req = 0; req < 50; req++) {
        for (uint32_t c = 0; c < d; c++) h[c] = (float)dr__rng_normal(&r);
        uint32_t ex[200];
        size_t n_ex = dr__rng_below(&r, 200);
        for (size_t e = 0; e < n_ex; e++) ex[e] = (uint32_t)dr__rng_below(&r, n);
        uint32_t got_i[20], want_i[20], got_n;
        float got_s[20], want_s[20];
        assert_ok(dr__topk_dot(item, bias, n, d, h, ex, n_ex, K, s, got_i, got_s, &got_n, &e_));
        naive_scores(item, bias, n, d, h, ref);
        memcpy(blas, dr__topk_last_scores(s), n * sizeof *blas);
        for (uint32_t i = 0; i < n; i++) assert_true(fabsf(blas[i] - ref[i]) < 1e-3f);
        uint32_t want_n = naive(blas, n, ex, n_ex, K, want_i, want_s);
        assert_int_equal(got_n, want_n);
        assert_memory_equal(got_i, want_i, K * sizeof *got_i);
        assert_memory_equal(got_s, want_s, K * sizeof *got_s);
        /* select alone on the same vector */
        uint32_t sel_n;
        assert_ok(dr__topk_select(blas, n, ex, n_ex, K, s, got_i, NULL, &sel_n, &e_));
        assert_memory_equal(got_i, want_i, K * sizeof *got_i);
    }
    free(item);
    free(bias);
    free(ref);
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
    assert_int_equal(dr__topk_dot(item, NULL, 10, 0, h, NULL, 0, 3, s, it, NULL, &n_out, &e),
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
    assert_ok(dr__topk_dot(item, NULL, n, d, h, ex, 50, 10, s, it, sc, &n_out, &e_)); /* warm-up */
    uint64_t before = dr__alloc_count();
    for (int req = 0; req < 1000; req++) {
        h[req % d] += 0.01f;
        ex[req % 50] = (uint32_t)dr__rng_below(&r, n);
        dr_status st = dr__topk_dot(item, NULL, n, d, h, ex, 50, 10, s, it, sc, &n_out, NULL);
        assert_int_equal(st, DR_OK);
        assert_int_equal(n_out, 10);
    }
    assert_int_equal(dr__alloc_count(), before);
    dr__topk_scratch_free(s);
    free(item);
}

/* The serving scan: the AVX2 kernel and the portable loop give the same bits; the selection
 * over them is the exact one (naive); and against sgemv the k-th best scores agree within
 * rounding at every rank. Random tables, duplicate rows (exact ties), rows one ulp apart,
 * large and small rows, histories, row tails and column tails. */
static void test_scan(void **state) {
    (void)state;
    dr_rng r;
    dr__rng_seed(&r, 77, 0);
    const uint32_t ns[] = {1, 7, 203, 5003, 14411}, ds[] = {1, 4, 8, 12, 50, 68}, ks[] = {1, 10, 50};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (size_t b = 0; b < sizeof ds / sizeof *ds; b++) {
            uint32_t n = ns[a], d = ds[b];
            float *item = malloc((size_t)n * d * sizeof *item), h[68];
            float *fast = malloc(n * sizeof *fast), *port = malloc(n * sizeof *port);
            dr_topk_scratch *s = NULL;
            assert_ok(dr__topk_scratch_create(n, 50, &s, &e_));
            for (int req = 0; req < 6; req++) {
                for (size_t k = 0; k < (size_t)n * d; k++)
                    item[k] = (float)(dr__rng_normal(&r) * (k / d % 7 == 0 ? 3.0 : 0.3));
                for (uint32_t i = 1; i < n; i++) {
                    if (i % 5 == 0) memcpy(item + (size_t)i * d, item + (size_t)(i - 1) * d, d * sizeof *item);
                    if (i % 11 == 0) {
                        memcpy(item + (size_t)i * d, item + (size_t)(i - 1) * d, d * sizeof *item);
                        item[(size_t)i * d] = nextafterf(item[(size_t)i * d], INFINITY);
                    }
                }
                for (uint32_t c = 0; c < d; c++) h[c] = (float)dr__rng_normal(&r);
                dr__topk_scan_scores(item, n, d, h, fast, 0);
                dr__topk_scan_scores(item, n, d, h, port, 1);
                assert_memory_equal(fast, port, n * sizeof *fast);
                uint32_t ex[100];
                size_t n_ex = dr__rng_below(&r, n < 100 ? n : 100);
                for (size_t e = 0; e < n_ex; e++) ex[e] = (uint32_t)dr__rng_below(&r, n);
                for (size_t q = 0; q < sizeof ks / sizeof *ks; q++) {
                    uint32_t k = ks[q], gi[50], wi[50], ni[50], gn, wn, nn;
                    float gs[50], ws[50], ns_[50];
                    assert_ok(dr__topk_scan(item, n, d, h, ex, n_ex, k, s, gi, gs, &gn, &e_));
                    assert_memory_equal(dr__topk_last_scores(s), port, n * sizeof *port);
                    nn = naive(port, n, ex, n_ex, k, ni, ns_);
                    assert_int_equal(gn, nn);
                    assert_memory_equal(gi, ni, gn * sizeof *gi);
                    assert_memory_equal(gs, ns_, gn * sizeof *gs);
                    assert_ok(dr__topk_dot(item, NULL, n, d, h, ex, n_ex, k, s, wi, ws, &wn, &e_));
                    assert_int_equal(gn, wn);
                    for (uint32_t j = 0; j < gn; j++)
                        if (fabsf(gs[j] - ws[j]) > 1e-5f * (1.0f + fabsf(ws[j])))
                            fail_msg("n %u d %u k %u rank %u: scan %.9g, sgemv %.9g", n, d, k, j,
                                     (double)gs[j], (double)ws[j]);
                }
            }
            dr__topk_scratch_free(s);
            free(item);
            free(fast);
            free(port);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_with_ties),   cmocka_unit_test(test_random_floats),
        cmocka_unit_test(test_nan_and_all_excluded), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_no_alloc_hot_path), cmocka_unit_test(test_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
