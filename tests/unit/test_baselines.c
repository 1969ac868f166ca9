/* test_baselines.c - pop and itemknn (src/model_pop.c, src/model_itemknn.c) through the scoring interface
 * (src/model.c): hand-computed examples, and itemknn against a dense X'X slow twin. */
#include "testutil.h"
#include "oom.h"

#include <math.h>

#include "dataset.h"
#include "model.h"
#include "rng.h"

typedef struct ev {
    const char *u, *i;
    int64_t t;
} ev;

static dr_dataset *build(const ev *e, size_t n) {
    dr_builder *b = NULL;
    dr_dataset *ds = NULL;
    assert_int_equal(dr__builder_create(&b), DR_OK);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(dr__builder_add_event(b, e[k].u, strlen(e[k].u), e[k].i, strlen(e[k].i),
                                              e[k].t, 1.0f, DR_TAG_NONE),
                         DR_OK);
    dr_error err = {0};
    assert_int_equal(dr__builder_finish(b, &ds, &err), DR_OK);
    dr__builder_free(b);
    return ds;
}

/* Random dataset: n_users users with 1..max_len events over n_items items (skewed, repeats). */
static dr_dataset *build_random(uint64_t seed, uint32_t n_users, uint32_t n_items,
                                uint32_t max_len) {
    dr_builder *b = NULL;
    dr_dataset *ds = NULL;
    dr_rng r;
    dr__rng_seed(&r, seed, 0);
    assert_int_equal(dr__builder_create(&b), DR_OK);
    int64_t t = 0;
    for (uint32_t u = 0; u < n_users; u++) {
        uint32_t len = 1 + (uint32_t)dr__rng_below(&r, max_len);
        char us[16];
        snprintf(us, sizeof us, "u%u", u);
        for (uint32_t k = 0; k < len; k++) {
            /* skewed: min of two uniforms favours low ids */
            uint32_t a = (uint32_t)dr__rng_below(&r, n_items), c = (uint32_t)dr__rng_below(&r, n_items);
            char is[16];
            snprintf(is, sizeof is, "i%u", DR_MIN(a, c));
            t += (int64_t)dr__rng_below(&r, 3); /* some equal times */
            assert_int_equal(dr__builder_add_event(b, us, strlen(us), is, strlen(is), t, 1.0f,
                                                  DR_TAG_NONE),
                             DR_OK);
        }
    }
    dr_error err = {0};
    assert_int_equal(dr__builder_finish(b, &ds, &err), DR_OK);
    dr__builder_free(b);
    return ds;
}

static uint32_t iid(const dr_dataset *ds, const char *ext) {
    uint32_t i = UINT32_MAX;
    assert_int_equal(dr_dataset_find_item(ds, ext, &i), DR_OK);
    return i;
}

static dr_model *fit(const dr_dataset *ds, const dr_split *sp, const char *name, uint32_t last) {
    dr_model_params p = dr_model_default_params();
    p.name = name;
    if (last) p.knn_last = last;
    dr_model *m = NULL;
    assert_ok(dr_model_fit(ds, sp, &p, &m, &e_));
    assert_string_equal(dr_model_name(m), name);
    return m;
}

/* ---- pop */

static void test_pop_by_hand(void **state) {
    (void)state;
    /* LOO training prefixes: a: x y x ; b: (dropped, 2 events) ; c: y */
    const ev e[] = {{"a", "x", 1}, {"a", "y", 2}, {"a", "x", 3}, {"a", "z", 4}, {"a", "w", 5},
                    {"b", "x", 6}, {"b", "z", 7}, {"c", "y", 8}, {"c", "x", 9}, {"c", "z", 10}};
    dr_dataset *ds = build(e, DR_ARRAY_LEN(e));
    dr_split *sp = NULL;
    assert_ok(dr_split_create(ds, DR_SPLIT_LOO, &sp, &e_));
    dr_model *m = fit(ds, sp, "pop", 0);
    dr_scorer *sc = NULL;
    assert_ok(dr_scorer_create(m, &sc, &e_));
    float s[4];
    const uint32_t ctx[1] = {0};
    assert_ok(dr_model_score(m, sc, 0, ctx, 1, s, &e_));
    assert_true(s[iid(ds, "x")] == 2.0f);
    assert_true(s[iid(ds, "y")] == 2.0f);
    assert_true(s[iid(ds, "z")] == 0.0f);
    assert_true(s[iid(ds, "w")] == 0.0f);
    /* the same vector for every user and context */
    float s2[4];
    assert_ok(dr_model_score(m, sc, 2, NULL, 0, s2, &e_));
    assert_memory_equal(s, s2, sizeof s);
    dr_scorer_free(sc);
    dr_model_free(m);
    dr_split_free(sp);
    dr_dataset_free(ds);
}

/* ---- itemknn */

static void test_itemknn_by_hand(void **state) {
    (void)state;
    /* training prefixes A: x y, B: x z, C: y z -> n = 2 each, every pair co-occurs once,
     * sim = 1/2 off the diagonal; p and q never occur in training */
    const ev e[] = {{"A", "x", 1}, {"A", "y", 2},  {"A", "p", 3},  {"A", "q", 4},
                    {"B", "x", 5}, {"B", "z", 6},  {"B", "p", 7},  {"B", "q", 8},
                    {"C", "y", 9}, {"C", "z", 10}, {"C", "p", 11}, {"C", "q", 12}};
    dr_dataset *ds = build(e, DR_ARRAY_LEN(e));
    dr_split *sp = NULL;
    assert_ok(dr_split_create(ds, DR_SPLIT_LOO, &sp, &e_));
    dr_model *m = fit(ds, sp, "itemknn", 0);
    dr_scorer *sc = NULL;
    assert_ok(dr_scorer_create(m, &sc, &e_));
    uint32_t x = iid(ds, "x"), y = iid(ds, "y"), z = iid(ds, "z"), p = iid(ds, "p"),
             q = iid(ds, "q");
    float s[5];
    uint32_t ctx[4] = {x};
    assert_ok(dr_model_score(m, sc, 0, ctx, 1, s, &e_));
    assert_true(s[x] == 0.0f && s[y] == 0.5f && s[z] == 0.5f && s[p] == 0.0f && s[q] == 0.0f);
    ctx[0] = x, ctx[1] = y;
    assert_ok(dr_model_score(m, sc, 0, ctx, 2, s, &e_));
    assert_true(s[x] == 0.5f && s[y] == 0.5f && s[z] == 1.0f && s[p] == 0.0f);
    /* repeats in the context count once; untrained items contribute nothing */
    ctx[0] = y, ctx[1] = x, ctx[2] = p, ctx[3] = x;
    assert_ok(dr_model_score(m, sc, 0, ctx, 4, s, &e_));
    assert_true(s[x] == 0.5f && s[y] == 0.5f && s[z] == 1.0f && s[p] == 0.0f);
    dr_scorer_free(sc);
    dr_model_free(m);

    /* knn_last = 1: only the most recent distinct item (x, then y after the repeat) */
    m = fit(ds, sp, "itemknn", 1);
    assert_ok(dr_scorer_create(m, &sc, &e_));
    ctx[0] = y, ctx[1] = x;
    assert_ok(dr_model_score(m, sc, 0, ctx, 2, s, &e_));
    assert_true(s[y] == 0.5f && s[z] == 0.5f && s[x] == 0.0f);
    dr_scorer_free(sc);
    dr_model_free(m);
    dr_split_free(sp);
    dr_dataset_free(ds);
}

/* Slow twin: dense X (binary) and G = X'X over the training prefixes, scores summed over the
 * last `last` distinct context items in context order (most recent first). */
static void knn_dense(const dr_dataset *ds, const dr_split *sp, uint32_t last,
                      const uint32_t *ctx, size_t n_ctx, double *out) {
    const uint32_t NI = ds->n_items, NU = ds->n_users;
    uint8_t *X = calloc((size_t)NU * NI, 1);
    double *G = calloc((size_t)NI * NI, sizeof *G);
    assert_non_null(X);
    assert_non_null(G);
    for (uint32_t u = 0; u < NU; u++)
        for (uint32_t k = 0; k < sp->n_train[u]; k++)
            X[(size_t)u * NI + ds->hist_item[ds->user_off[u] + k]] = 1;
    for (uint32_t u = 0; u < NU; u++)
        for (uint32_t i = 0; i < NI; i++)
            for (uint32_t j = 0; j < NI; j++)
                G[(size_t)i * NI + j] += X[(size_t)u * NI + i] * X[(size_t)u * NI + j];
    uint32_t C[256], nc = 0;
    for (size_t k = n_ctx; k-- > 0 && nc < last;) {
        int seen = 0;
        for (uint32_t q = 0; q < nc; q++) seen |= C[q] == ctx[k];
        if (!seen) C[nc++] = ctx[k];
    }
    for (uint32_t i = 0; i < NI; i++) {
        out[i] = 0;
        for (uint32_t q = 0; q < nc; q++) {
            uint32_t j = C[q];
            double gii = G[(size_t)i * NI + i], gjj = G[(size_t)j * NI + j];
            if (i == j || gii == 0 || gjj == 0) continue;
            out[i] += G[(size_t)i * NI + j] / sqrt(gii * gjj);
        }
    }
    free(X);
    free(G);
}

static void test_itemknn_vs_dense_twin(void **state) {
    (void)state;
    const uint32_t lasts[] = {1, 3, 20, 200};
    for (uint64_t seed = 1; seed <= 12; seed++) {
        dr_dataset *ds = build_random(seed, 25 + (uint32_t)seed * 3, 30 + (uint32_t)seed, 18);
        dr_split *sp = NULL;
        assert_ok(dr_split_create(ds, DR_SPLIT_LOO, &sp, &e_));
        const uint32_t NI = ds->n_items;
        float *s = malloc(NI * sizeof *s);
        double *ref = malloc(NI * sizeof *ref);
        uint32_t *ctx = malloc(64 * sizeof *ctx);
        dr_rng r;
        dr__rng_seed(&r, seed, 1);
        for (size_t li = 0; li < DR_ARRAY_LEN(lasts); li++) {
            dr_model *m = fit(ds, sp, "itemknn", lasts[li]);
            dr_scorer *sc = NULL;
            assert_ok(dr_scorer_create(m, &sc, &e_));
            for (uint32_t u = 0; u < ds->n_users; u++) {
                /* the user's own prefixes (as the evaluation passes them) and random contexts */
                const uint32_t *h = ds->hist_item + ds->user_off[u];
                size_t n_ctx;
                if (u % 2 == 0) {
                    n_ctx = sp->n_train[u] + sp->n_valid[u];
                    memcpy(ctx, h, n_ctx * sizeof *ctx);
                } else {
                    n_ctx = dr__rng_below(&r, 40);
                    for (size_t k = 0; k < n_ctx; k++) ctx[k] = (uint32_t)dr__rng_below(&r, NI);
                }
                uint64_t a0 = dr__alloc_count();
                assert_ok(dr_model_score(m, sc, u, ctx, n_ctx, s, &e_));
                assert_int_equal(dr__alloc_count(), a0); /* scoring never allocates */
                knn_dense(ds, sp, lasts[li], ctx, n_ctx, ref);
                for (uint32_t i = 0; i < NI; i++) {
                    if ((ref[i] == 0.0) != (s[i] == 0.0f) ||
                        fabs((double)s[i] - ref[i]) > 1e-6 * DR_MAX(1.0, fabs(ref[i])))
                        fail_msg("seed %llu last %u user %u item %u: fast %.9g dense %.9g",
                                 (unsigned long long)seed, lasts[li], u, i, (double)s[i], ref[i]);
                }
            }
            dr_scorer_free(sc);
            dr_model_free(m);
        }
        free(s);
        free(ref);
        free(ctx);
        dr_split_free(sp);
        dr_dataset_free(ds);
    }
}

static void test_itemknn_scorers_independent(void **state) {
    (void)state;
    /* two scorers of one model interleaved give the same bytes as one scorer alone */
    dr_dataset *ds = build_random(99, 60, 50, 25);
    dr_split *sp = NULL;
    assert_ok(dr_split_create(ds, DR_SPLIT_LOO, &sp, &e_));
    dr_model *m = fit(ds, sp, "itemknn", 0);
    dr_scorer *a = NULL, *b = NULL;
    assert_ok(dr_scorer_create(m, &a, &e_));
    assert_ok(dr_scorer_create(m, &b, &e_));
    const uint32_t NI = ds->n_items;
    float *s1 = malloc(NI * sizeof *s1), *s2 = malloc(NI * sizeof *s2);
    for (uint32_t u = 0; u + 1 < ds->n_users; u++) {
        const uint32_t *h = ds->hist_item + ds->user_off[u];
        size_t n = sp->n_train[u];
        assert_ok(dr_model_score(m, a, u, h, n, s1, &e_));
        assert_ok(dr_model_score(m, b, u + 1, h + 1, n ? n - 1 : 0, s2, &e_));
        assert_ok(dr_model_score(m, b, u, h, n, s2, &e_));
        assert_memory_equal(s1, s2, NI * sizeof *s1);
    }
    free(s1);
    free(s2);
    dr_scorer_free(a);
    dr_scorer_free(b);
    dr_model_free(m);
    dr_split_free(sp);
    dr_dataset_free(ds);
}

/* ---- the interface */

static void test_interface_errors(void **state) {
    (void)state;
    dr_dataset *ds = build_random(5, 10, 10, 6);
    dr_split *sp = NULL;
    assert_ok(dr_split_create(ds, DR_SPLIT_LOO, &sp, &e_));
    dr_model_params p = dr_model_default_params();
    assert_string_equal(p.name, "pop");
    assert_int_equal(p.knn_last, 5);
    p.name = "svd++";
    dr_model *m = NULL;
    dr_error err = {0};
    assert_int_equal(dr_model_fit(ds, sp, &p, &m, &err), DR_ARG);
    assert_null(m);
    assert_non_null(strstr(err.msg, "svd++"));

    m = fit(ds, sp, "itemknn", 0);
    dr_model *m2 = fit(ds, sp, "pop", 0);
    dr_scorer *sc = NULL;
    assert_ok(dr_scorer_create(m, &sc, &e_));
    float *s = malloc(ds->n_items * sizeof *s);
    uint32_t bad = ds->n_items;
    assert_int_equal(dr_model_score(m, sc, 0, &bad, 1, s, &err), DR_RANGE);
    assert_int_equal(dr_model_score(m2, sc, 0, NULL, 0, s, &err), DR_ARG);
    assert_int_equal(dr_model_score(m, sc, 0, NULL, 0, NULL, &err), DR_ARG);
    /* an empty context scores everything 0 */
    assert_ok(dr_model_score(m, sc, 0, NULL, 0, s, &e_));
    for (uint32_t i = 0; i < ds->n_items; i++) assert_true(s[i] == 0.0f);
    free(s);
    dr_scorer_free(sc);
    dr_scorer_free(NULL);
    dr_model_free(m);
    dr_model_free(m2);
    dr_model_free(NULL);
    dr_split_free(sp);
    dr_dataset_free(ds);
}

typedef struct fit_oom {
    const dr_dataset *ds;
    const dr_split *sp;
    dr_model_params p;
    dr_model *m;
    dr_scorer *sc;
} fit_oom;

static dr_status fit_call(void *ud, dr_error *err) {
    fit_oom *u = ud;
    return dr_model_fit(u->ds, u->sp, &u->p, &u->m, err);
}

DR_OOM_FREE_FN(fit_free, fit_oom, m, dr_model_free)

static dr_status scorer_call(void *ud, dr_error *err) {
    fit_oom *u = ud;
    return dr_scorer_create(u->m, &u->sc, err);
}

DR_OOM_FREE_FN(scorer_free, fit_oom, sc, dr_scorer_free)

static void test_fit_oom(void **state) {
    (void)state;
    dr_dataset *ds = build_random(6, 20, 15, 10);
    dr_split *sp = NULL;
    assert_ok(dr_split_create(ds, DR_SPLIT_LOO, &sp, &e_));
    const char *names[] = {"pop", "itemknn"};
    for (size_t n = 0; n < 2; n++) {
        char what[64];
        fit_oom u = {ds, sp, dr_model_default_params(), NULL, NULL};
        u.p.name = names[n];
        snprintf(what, sizeof what, "dr_model_fit (%s)", names[n]);
        dr_oom_case c = {.name = what, .call = fit_call, .cleanup = fit_free, .ud = &u,
                         .out = (void **)&u.m};
        assert_true(dr_oom_check(&c) > 0);
        assert_ok(dr_model_fit(ds, sp, &u.p, &u.m, &e_));
        snprintf(what, sizeof what, "dr_scorer_create (%s)", names[n]);
        c = (dr_oom_case){.name = what, .call = scorer_call, .cleanup = scorer_free, .ud = &u,
                          .out = (void **)&u.sc};
        assert_true(dr_oom_check(&c) > 0);
        dr_model_free(u.m);
    }
    dr_split_free(sp);
    dr_dataset_free(ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pop_by_hand),
        cmocka_unit_test(test_itemknn_by_hand),
        cmocka_unit_test(test_itemknn_vs_dense_twin),
        cmocka_unit_test(test_itemknn_scorers_independent),
        cmocka_unit_test(test_interface_errors),
        cmocka_unit_test(test_fit_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
