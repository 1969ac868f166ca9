/* test_metrics.c - pessimistic ranks and Hit/NDCG/Recall (src/eval_metrics.c) against
 * hand-computed values and a brute-force sort reference, plus property tests. */
#include "testutil.h"

#include <math.h>

#include "common.h"
#include "rng.h"

static void test_rank_by_hand(void **state) {
    (void)state;
    const float s[] = {3, 1, 2, 2, 0.5f};
    /* target 2 (score 2): one higher (3), one other equal (item 3) -> rank 3 */
    assert_int_equal(dr_rank_pessimistic(s, 5, 2, NULL), 3);
    assert_int_equal(dr_rank_pessimistic(s, 5, 3, NULL), 3);
    assert_int_equal(dr_rank_pessimistic(s, 5, 0, NULL), 1);
    assert_int_equal(dr_rank_pessimistic(s, 5, 4, NULL), 5);
    uint8_t ex[] = {1, 0, 0, 1, 0};
    /* excluding 0 and 3: nothing above item 2 */
    assert_int_equal(dr_rank_pessimistic(s, 5, 2, ex), 1);
    /* an excluded target is still a candidate */
    assert_int_equal(dr_rank_pessimistic(s, 5, 3, ex), 2);
    assert_int_equal(dr_rank_pessimistic(s, 5, 0, ex), 1);
    assert_int_equal(dr_rank_pessimistic(s, 5, 4, ex), 3);
    assert_int_equal(dr_rank_pessimistic(s, 5, 5, NULL), UINT32_MAX);
}

static void test_all_equal_scores(void **state) {
    (void)state;
    float s[50];
    uint8_t ex[50] = {0};
    for (int i = 0; i < 50; i++) s[i] = 7.0f;
    for (uint32_t t = 0; t < 50; t++) assert_int_equal(dr_rank_pessimistic(s, 50, t, NULL), 50);
    for (int i = 0; i < 50; i += 3) ex[i] = 1; /* 17 excluded */
    assert_int_equal(dr_rank_pessimistic(s, 50, 1, ex), 33);
    assert_int_equal(dr_rank_pessimistic(s, 50, 0, ex), 34); /* excluded target counts */
    uint32_t t = 4, r;
    dr_ranks_multi(s, 50, &t, 1, ex, &r);
    assert_int_equal(r, 33);
    dr_rank_metrics m = dr_metrics_at(&r, 1, 20);
    assert_true(m.hit == 0.0 && m.ndcg == 0.0 && m.recall == 0.0);
}

static void test_nan_is_lowest(void **state) {
    (void)state;
    const float s[] = {NAN, 1, NAN, -INFINITY, 2};
    assert_int_equal(dr_rank_pessimistic(s, 5, 0, NULL), 5); /* ties with NaN and -inf */
    assert_int_equal(dr_rank_pessimistic(s, 5, 1, NULL), 2);
    assert_int_equal(dr_rank_pessimistic(s, 5, 4, NULL), 1);
}

static void test_metrics_by_hand(void **state) {
    (void)state;
    uint32_t r1 = 1, r3 = 3, r11 = 11;
    dr_rank_metrics m = dr_metrics_at(&r1, 1, 10);
    assert_true(m.hit == 1.0 && m.ndcg == 1.0 && m.recall == 1.0);
    m = dr_metrics_at(&r3, 1, 10);
    assert_true(m.hit == 1.0 && fabs(m.ndcg - 0.5) < 1e-15 && m.recall == 1.0);
    m = dr_metrics_at(&r11, 1, 10);
    assert_true(m.hit == 0.0 && m.ndcg == 0.0 && m.recall == 0.0);
    m = dr_metrics_at(&r11, 1, 20);
    assert_true(m.hit == 1.0 && fabs(m.ndcg - 1.0 / log2(12.0)) < 1e-15);
    /* two targets at ranks 1 and 4, k = 3: one hit of two */
    uint32_t r[2] = {4, 1};
    m = dr_metrics_at(r, 2, 3);
    assert_true(m.hit == 1.0 && m.recall == 0.5);
    assert_true(fabs(m.ndcg - 1.0 / (1.0 + 1.0 / log2(3.0))) < 1e-15);
    m = dr_metrics_at(r, 2, 4);
    assert_true(fabs(m.ndcg - (1.0 + 1.0 / log2(5.0)) / (1.0 + 1.0 / log2(3.0))) < 1e-15);
    m = dr_metrics_at(r, 0, 10);
    assert_true(m.hit == 0.0 && m.ndcg == 0.0 && m.recall == 0.0);
}

static void test_multi_by_hand(void **state) {
    (void)state;
    /* items:     0  1  2  3  4  5 */
    const float s[] = {5, 3, 3, 3, 1, 3};
    const uint32_t tg[] = {3, 1};
    uint32_t r[2];
    /* target 3: higher {0}, equal non-targets {2, 5}, earlier equal targets none -> 4
     * target 1: higher {0}, equal non-targets {2, 5}, earlier equal targets {3} -> 5 */
    dr_ranks_multi(s, 6, tg, 2, NULL, r);
    assert_int_equal(r[0], 4);
    assert_int_equal(r[1], 5);
    uint8_t ex[6] = {0, 0, 1, 1, 0, 0}; /* 2 excluded; 3 excluded but a target */
    dr_ranks_multi(s, 6, tg, 2, ex, r);
    assert_int_equal(r[0], 3);
    assert_int_equal(r[1], 4);
}

/* ---- brute-force reference: sort candidates by (score desc, non-targets first, target order) */
typedef struct cand {
    float s;
    int tpos; /* -1 for non-targets */
} cand;

static float keyf(float x) { return x != x ? -INFINITY : x; }

static int cmp_cand(const void *a, const void *b) {
    const cand *x = a, *y = b;
    float sx = keyf(x->s), sy = keyf(y->s);
    if (sx != sy) return sx > sy ? -1 : 1;
    int tx = x->tpos < 0 ? -1 : x->tpos, ty = y->tpos < 0 ? -1 : y->tpos;
    return (tx > ty) - (tx < ty);
}

static void brute_ranks(const float *s, uint32_t n, const uint32_t *tg, uint32_t T,
                        const uint8_t *ex, uint32_t *ranks, cand *buf) {
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++) {
        int tpos = -1;
        for (uint32_t j = 0; j < T; j++)
            if (tg[j] == i) tpos = (int)j;
        if (ex && ex[i] && tpos < 0) continue;
        buf[m].s = s[i];
        buf[m].tpos = tpos;
        m++;
    }
    qsort(buf, m, sizeof *buf, cmp_cand);
    for (uint32_t p = 0; p < m; p++)
        if (buf[p].tpos >= 0) ranks[buf[p].tpos] = p + 1;
}

static void brute_metrics(const uint32_t *ranks, uint32_t T, uint32_t k, double *hit,
                          double *ndcg, double *recall) {
    double dcg = 0, idcg = 0;
    uint32_t h = 0;
    for (uint32_t j = 0; j < T; j++)
        if (ranks[j] <= k) h++, dcg += 1.0 / log2(ranks[j] + 1.0);
    for (uint32_t p = 1; p <= T && p <= k; p++) idcg += 1.0 / log2(p + 1.0);
    *hit = h > 0;
    *recall = (double)h / T;
    *ndcg = dcg / idcg;
}

static void test_multi_vs_brute_force(void **state) {
    (void)state;
    enum { N = 200 };
    float s[N], s2[N];
    uint8_t ex[N];
    uint32_t tg[12], r[12], rb[12];
    cand buf[N];
    dr_rng rng;
    dr__rng_seed(&rng, 7, 0);
    for (int trial = 0; trial < 400; trial++) {
        uint32_t n = 1 + (uint32_t)dr__rng_below(&rng, N);
        int levels = 1 + (int)dr__rng_below(&rng, 6); /* few levels: many ties */
        for (uint32_t i = 0; i < n; i++) {
            s[i] = (float)dr__rng_below(&rng, (uint64_t)levels);
            if (dr__rng_below(&rng, 50) == 0) s[i] = NAN;
            ex[i] = dr__rng_below(&rng, 4) == 0;
        }
        uint32_t T = 1 + (uint32_t)dr__rng_below(&rng, DR_MIN(n, 12));
        for (uint32_t j = 0; j < T;) { /* distinct targets */
            uint32_t c = (uint32_t)dr__rng_below(&rng, n);
            int dup = 0;
            for (uint32_t q = 0; q < j; q++) dup |= tg[q] == c;
            if (!dup) tg[j++] = c;
        }
        const uint8_t *exp = trial % 3 ? ex : NULL;
        dr_ranks_multi(s, n, tg, T, exp, r);
        brute_ranks(s, n, tg, T, exp, rb, buf);
        for (uint32_t j = 0; j < T; j++) assert_int_equal(r[j], rb[j]);
        if (T == 1) assert_int_equal(r[0], dr_rank_pessimistic(s, n, tg[0], exp));

        double prev_h = 0, prev_n = 0, prev_r = 0;
        for (uint32_t k = 1; k <= n + 1; k++) {
            dr_rank_metrics m = dr_metrics_at(r, T, k);
            double bh, bn, br;
            brute_metrics(rb, T, k, &bh, &bn, &br);
            assert_true(m.hit == bh && fabs(m.ndcg - bn) < 1e-12 && m.recall == br);
            assert_true(m.hit >= 0 && m.hit <= 1 && m.recall >= 0 && m.recall <= 1);
            assert_true(m.ndcg >= 0 && m.ndcg <= 1 + 1e-12);
            /* monotone in K: hit and recall are; NDCG is for a single target (the ideal
             * DCG grows with K when there are several targets) */
            assert_true(m.hit >= prev_h && m.recall >= prev_r);
            if (T == 1) assert_true(m.ndcg >= prev_n);
            prev_h = m.hit, prev_n = m.ndcg, prev_r = m.recall;
        }

        /* permuting the non-target scores does not change the ranks (with the exclusion
         * bits moved along with them) */
        uint8_t ex2[N];
        memcpy(s2, s, n * sizeof *s);
        memcpy(ex2, ex, n);
        for (uint32_t i = n; i > 1; i--) {
            uint32_t a = i - 1, b = (uint32_t)dr__rng_below(&rng, i);
            int ta = 0, tb = 0;
            for (uint32_t q = 0; q < T; q++) ta |= tg[q] == a, tb |= tg[q] == b;
            if (ta || tb) continue;
            float t = s2[a];
            s2[a] = s2[b], s2[b] = t;
            uint8_t e = ex2[a];
            ex2[a] = ex2[b], ex2[b] = e;
        }
        uint32_t r2[12];
        dr_ranks_multi(s2, n, tg, T, trial % 3 ? ex2 : NULL, r2);
        for (uint32_t j = 0; j < T; j++) assert_int_equal(r[j], r2[j]);

        /* excluded items are not counted: raising an excluded non-target above everything
         * changes nothing */
        if (exp) {
            for (uint32_t i = 0; i < n; i++) {
                int is_t = 0;
                for (uint32_t q = 0; q < T; q++) is_t |= tg[q] == i;
                if (ex[i] && !is_t) s2[i] = 1e30f;
                else s2[i] = s[i];
            }
            dr_ranks_multi(s2, n, tg, T, ex, r2);
            for (uint32_t j = 0; j < T; j++) assert_int_equal(r[j], r2[j]);
        }
    }
}

static void test_single_target_ndcg_monotone(void **state) {
    (void)state;
    for (uint32_t r = 1; r < 60; r++) {
        double prev = 0;
        for (uint32_t k = 1; k < 70; k++) {
            dr_rank_metrics m = dr_metrics_at(&r, 1, k);
            assert_true(m.ndcg >= prev && m.ndcg <= 1.0);
            assert_true(m.hit == (r <= k ? 1.0 : 0.0));
            if (r <= k) assert_true(fabs(m.ndcg - 1.0 / log2(r + 1.0)) < 1e-15);
            prev = m.ndcg;
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rank_by_hand),
        cmocka_unit_test(test_all_equal_scores),
        cmocka_unit_test(test_nan_is_lowest),
        cmocka_unit_test(test_metrics_by_hand),
        cmocka_unit_test(test_multi_by_hand),
        cmocka_unit_test(test_multi_vs_brute_force),
        cmocka_unit_test(test_single_target_ndcg_monotone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
