/* test_eval.c - the P-LOO / GIVEN harness (src/eval.c): a naive sort-based twin on small data,
 * thread-count independence, sampled-100 properties, and the reference figures of pop and
 * itemknn on the shared datasets (../shared/PROTOCOL.md). */
#include "testutil.h"
#include "oom.h"

#include <math.h>

#include "dataset.h"
#include "model.h"
#include "rng.h"

static dr_dataset *build_random(uint64_t seed, uint32_t n_users, uint32_t n_items,
                                uint32_t max_len, int tagged) {
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
            uint32_t a = (uint32_t)dr__rng_below(&r, n_items), c = (uint32_t)dr__rng_below(&r, n_items);
            char is[16];
            snprintf(is, sizeof is, "i%u", DR_MIN(a, c));
            /* tagged (GIVEN): 60% train, 20% valid, 20% test in order, equal times */
            uint8_t tag = DR_TAG_NONE;
            if (tagged) tag = k * 5 < len * 3 ? DR_TAG_TRAIN : k * 5 < len * 4 ? DR_TAG_VALID : DR_TAG_TEST;
            else t += (int64_t)dr__rng_below(&r, 3);
            assert_int_equal(dr__builder_add_event(b, us, strlen(us), is, strlen(is), t, 1.0f, tag),
                             DR_OK);
        }
    }
    dr_error err = {0};
    assert_int_equal(dr__builder_finish(b, &ds, &err), DR_OK);
    dr__builder_free(b);
    if (tagged) ds->has_given_split = 1;
    return ds;
}

static dr_model *fit(const dr_dataset *ds, const dr_split *sp, const char *name) {
    dr_model_params p = dr_model_default_params();
    p.name = name;
    p.threads = 1;
    dr_model *m = NULL;
    assert_ok(dr_model_fit(ds, sp, &p, &m, &e_));
    return m;
}

/* ---- naive twin: sort the candidates, targets after equal non-targets */
typedef struct cand {
    float s;
    int tpos;
} cand;

static int cmp_cand(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    int tx = x->tpos < 0 ? -1 : x->tpos, ty = y->tpos < 0 ? -1 : y->tpos;
    return (tx > ty) - (tx < ty);
}

/* Ranks targets tg[0..T) among items where cand_ok[i] (targets always). */
static void naive_ranks(const float *s, uint32_t n, const uint32_t *tg, uint32_t T,
                        const uint8_t *cand_ok, uint32_t *ranks) {
    cand *buf = malloc((n + 1) * sizeof *buf);
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++) {
        int tpos = -1;
        for (uint32_t j = 0; j < T; j++)
            if (tg[j] == i) tpos = (int)j;
        if (tpos < 0 && !cand_ok[i]) continue;
        buf[m++] = (cand){s[i], tpos};
    }
    qsort(buf, m, sizeof *buf, cmp_cand);
    for (uint32_t p = 0; p < m; p++)
        if (buf[p].tpos >= 0) ranks[buf[p].tpos] = p + 1;
    free(buf);
}

static void add_metrics(double *acc, const uint32_t *ranks, uint32_t T, uint32_t k) {
    double dcg = 0, idcg = 0;
    uint32_t h = 0;
    for (uint32_t j = 0; j < T; j++)
        if (ranks[j] <= k) h++, dcg += 1.0 / log2(ranks[j] + 1.0);
    for (uint32_t p = 1; p <= T && p <= k; p++) idcg += 1.0 / log2(p + 1.0);
    acc[0] += h > 0;
    acc[1] += dcg / idcg;
    acc[2] += (double)h / T;
}

/* The whole evaluation, naively: acc[0..12) = full10, full20, samp10, samp20 (hit ndcg recall),
 * averaged. The sampled negatives are drawn as documented: rejection from dr_rng(seed, u). */
static uint32_t naive_eval(const dr_dataset *ds, const dr_split *sp, const dr_model *m,
                           int which, uint32_t n_sampled, double *acc) {
    const uint32_t NI = ds->n_items;
    float *s = malloc(NI * sizeof *s);
    uint8_t *ok = malloc(NI), *seen = malloc(NI);
    uint32_t tg[256], r[256], n_users = 0;
    dr_scorer *sc = NULL;
    assert_ok(dr_scorer_create(m, &sc, &e_));
    memset(acc, 0, 12 * sizeof *acc);
    for (uint32_t u = 0; u < ds->n_users; u++) {
        const uint32_t *h = ds->hist_item + ds->user_off[u];
        size_t n_hist = ds->user_off[u + 1] - ds->user_off[u];
        size_t n_ctx = sp->n_train[u] + (which == 0 ? sp->n_valid[u] : 0);
        size_t n_tg = which == 0 ? sp->n_test[u] : sp->n_valid[u];
        if (n_tg == 0 || n_ctx == 0) continue;
        n_users++;
        uint32_t T = 0;
        for (size_t k = n_ctx; k < n_ctx + n_tg; k++) {
            int dup = 0;
            for (uint32_t j = 0; j < T; j++) dup |= tg[j] == h[k];
            if (!dup) tg[T++] = h[k];
        }
        assert_ok(dr_model_score(m, sc, u, h, n_ctx, s, &e_));
        memset(ok, 1, NI);
        for (size_t k = 0; k < n_ctx; k++) ok[h[k]] = 0;
        naive_ranks(s, NI, tg, T, ok, r);
        add_metrics(acc + 0, r, T, 10);
        add_metrics(acc + 3, r, T, 20);

        memset(seen, 0, NI);
        for (size_t k = 0; k < n_hist; k++) seen[h[k]] = 1;
        uint32_t avail = 0;
        for (uint32_t i = 0; i < NI; i++) avail += !seen[i];
        memset(ok, 0, NI);
        if (avail <= n_sampled) {
            for (uint32_t i = 0; i < NI; i++) ok[i] = !seen[i];
        } else {
            dr_rng rng;
            dr__rng_seed(&rng, 42, u);
            for (uint32_t got = 0; got < n_sampled;) {
                uint32_t i = (uint32_t)dr__rng_below(&rng, NI);
                if (seen[i] || ok[i]) continue;
                ok[i] = 1;
                got++;
            }
        }
        naive_ranks(s, NI, tg, T, ok, r);
        add_metrics(acc + 6, r, T, 10);
        add_metrics(acc + 9, r, T, 20);
    }
    for (int k = 0; k < 12; k++) acc[k] /= n_users ? n_users : 1;
    dr_scorer_free(sc);
    free(s);
    free(ok);
    free(seen);
    return n_users;
}

static void expect_close(dr_rank_metrics m, const double *ref) {
    assert_true(fabs(m.hit - ref[0]) < 1e-12);
    assert_true(fabs(m.ndcg - ref[1]) < 1e-12);
    assert_true(fabs(m.recall - ref[2]) < 1e-12);
}

static void check_vs_naive(dr_dataset *ds, dr_split_kind kind, const char *model, int which,
                           uint32_t n_sampled) {
    dr_split *sp = NULL;
    assert_ok(dr_split_create(ds, kind, &sp, &e_));
    dr_model *m = fit(ds, sp, model);
    dr_eval_params p = dr_eval_default_params();
    p.which = which;
    p.n_sampled = n_sampled;
    p.threads = 3;
    dr_eval_result res;
    assert_ok(dr_eval_split(ds, sp, m, &p, &res, &e_));
    double ref[12];
    uint32_t n = naive_eval(ds, sp, m, which, n_sampled, ref);
    assert_int_equal(res.n_users, n);
    assert_true(n > 0);
    expect_close(res.full10, ref + 0);
    expect_close(res.full20, ref + 3);
    expect_close(res.samp10, ref + 6);
    expect_close(res.samp20, ref + 9);
    dr_model_free(m);
    dr_split_free(sp);
}

static void test_loo_vs_naive(void **state) {
    (void)state;
    for (uint64_t seed = 1; seed <= 4; seed++) {
        dr_dataset *ds = build_random(seed, 80, 150, 30, 0);
        for (int which = 0; which < 2; which++) {
            check_vs_naive(ds, DR_SPLIT_LOO, "pop", which, 100);
            check_vs_naive(ds, DR_SPLIT_LOO, "itemknn", which, 100);
            check_vs_naive(ds, DR_SPLIT_LOO, "itemknn", which, 20);
        }
        dr_dataset_free(ds);
    }
}

static void test_given_vs_naive(void **state) {
    (void)state;
    /* several (partly repeated) targets per user: recall and multi-target NDCG */
    for (uint64_t seed = 1; seed <= 3; seed++) {
        dr_dataset *ds = build_random(seed, 60, 40, 25, 1);
        for (int which = 0; which < 2; which++) {
            check_vs_naive(ds, DR_SPLIT_GIVEN, "pop", which, 100);
            check_vs_naive(ds, DR_SPLIT_GIVEN, "itemknn", which, 10);
        }
        dr_dataset_free(ds);
    }
}

static void test_thread_count_independent(void **state) {
    (void)state;
    dr_dataset *ds = build_random(11, 300, 200, 40, 0);
    dr_split *sp = NULL;
    assert_ok(dr_split_create(ds, DR_SPLIT_LOO, &sp, &e_));
    dr_model *m = fit(ds, sp, "itemknn");
    dr_eval_result base;
    const int threads[] = {1, 2, 3, 8, 64};
    for (size_t k = 0; k < DR_ARRAY_LEN(threads); k++) {
        dr_eval_params p = dr_eval_default_params();
        p.threads = threads[k];
        dr_eval_result r;
        assert_ok(dr_eval_split(ds, sp, m, &p, &r, &e_));
        r.seconds = 0;
        if (k == 0) base = r;
        assert_memory_equal(&r, &base, sizeof r);
    }
    dr_model_free(m);
    dr_split_free(sp);
    dr_dataset_free(ds);
}

static void test_sampled_all_equals_full(void **state) {
    (void)state;
    /* P-LOO test targets: the whole history is context + target, so with more negatives than
     * items the sampled candidates are exactly the full-ranking candidates */
    dr_dataset *ds = build_random(3, 100, 60, 30, 0);
    dr_split *sp = NULL;
    assert_ok(dr_split_create(ds, DR_SPLIT_LOO, &sp, &e_));
    dr_model *m = fit(ds, sp, "itemknn");
    dr_eval_params p = dr_eval_default_params();
    p.n_sampled = 1000000;
    dr_eval_result r;
    assert_ok(dr_eval_split(ds, sp, m, &p, &r, &e_));
    assert_memory_equal(&r.full10, &r.samp10, sizeof r.full10);
    assert_memory_equal(&r.full20, &r.samp20, sizeof r.full20);
    /* fewer negatives can only raise the sampled metrics */
    p.n_sampled = 30;
    assert_ok(dr_eval_split(ds, sp, m, &p, &r, &e_));
    assert_true(r.samp10.hit >= r.full10.hit && r.samp20.hit >= r.full20.hit);
    assert_true(r.samp10.ndcg >= r.full10.ndcg && r.samp20.ndcg >= r.full20.ndcg);
    /* bounds and K-monotonicity of the averages */
    assert_true(r.full10.hit <= r.full20.hit && r.full10.ndcg <= r.full20.ndcg);
    assert_true(r.full20.hit <= 1.0 && r.full10.ndcg >= 0.0);
    /* no negatives: sampled metrics are not computed */
    p.n_sampled = 0;
    assert_ok(dr_eval_split(ds, sp, m, &p, &r, &e_));
    assert_true(r.samp10.hit == 0.0 && r.samp20.ndcg == 0.0 && r.full20.hit > 0.0);
    dr_model_free(m);
    dr_split_free(sp);
    dr_dataset_free(ds);
}

typedef struct prog {
    size_t calls, last_done, total;
    int monotone;
} prog;

static void on_progress(void *ud, const char *stage, size_t done, size_t total) {
    prog *p = ud;
    if (p->calls && done < p->last_done) p->monotone = 0;
    p->calls++;
    p->last_done = done;
    p->total = total;
    assert_string_equal(stage, "eval");
}

typedef struct eval_oom {
    const dr_dataset *ds;
    const dr_split *sp;
    const dr_model *m;
    const dr_eval_params *p;
    dr_eval_result *r;
} eval_oom;

static dr_status eval_call(void *ud, dr_error *err) {
    eval_oom *u = ud;
    return dr_eval_split(u->ds, u->sp, u->m, u->p, u->r, err);
}

static void test_progress_and_errors(void **state) {
    (void)state;
    dr_dataset *ds = build_random(4, 500, 100, 20, 0);
    dr_split *sp = NULL, *t0 = NULL;
    assert_ok(dr_split_create(ds, DR_SPLIT_LOO, &sp, &e_));
    dr_model *m = fit(ds, sp, "pop");
    prog pr = {0, 0, 0, 1};
    dr_eval_params p = dr_eval_default_params();
    p.progress = on_progress;
    p.progress_ud = &pr;
    dr_eval_result r, r2;
    assert_ok(dr_eval_split(ds, sp, m, &p, &r, &e_));
    assert_true(pr.calls >= 50 && pr.monotone);
    assert_int_equal(pr.last_done, r.n_users);
    assert_int_equal(pr.total, r.n_users);
    assert_int_equal(r.n_users, dr_split_n_eval_users(sp));
    assert_true(r.seconds >= 0.0);
    p.progress = NULL; /* batching must not change the result */
    assert_ok(dr_eval_split(ds, sp, m, &p, &r2, &e_));
    r.seconds = r2.seconds = 0;
    assert_memory_equal(&r, &r2, sizeof r);

    dr_error err = {0};
    assert_ok(dr_split_create(ds, DR_SPLIT_T0, &t0, &e_));
    assert_int_equal(dr_eval_split(ds, t0, m, &p, &r, &err), DR_ARG);
    p.which = 2;
    assert_int_equal(dr_eval_split(ds, sp, m, &p, &r, &err), DR_ARG);
    assert_int_equal(dr_eval_split(ds, sp, NULL, &p, &r, &err), DR_ARG);
    /* out of memory anywhere in the setup fails cleanly */
    p.which = 0;
    eval_oom u = {ds, sp, m, &p, &r};
    dr_oom_case c = {.name = "dr_eval_split", .call = eval_call, .ud = &u};
    assert_true(dr_oom_check(&c) > 0);
    dr_split_free(t0);
    dr_model_free(m);
    dr_split_free(sp);
    dr_dataset_free(ds);
}

/* ---- the shared datasets: reference figures of ../shared/PROTOCOL.md (P-LOO, full ranking) */

static void print_result(const char *ds, const char *model, const dr_eval_result *r) {
    fprintf(stderr,
            "P-LOO %s %s users=%u full: Hit@10=%.4f NDCG@10=%.4f Hit@20=%.4f NDCG@20=%.4f | "
            "sampled-100 (seed 42): Hit@10=%.4f NDCG@10=%.4f Hit@20=%.4f NDCG@20=%.4f | "
            "%.3f s\n",
            ds, model, r->n_users, r->full10.hit, r->full10.ndcg, r->full20.hit, r->full20.ndcg,
            r->samp10.hit, r->samp10.ndcg, r->samp20.hit, r->samp20.ndcg, r->seconds);
}

/* Matches a 4-decimal reference figure (half a unit of the 4th decimal). */
static void expect_fig(double got, double want, const char *what) {
    if (fabs(got - want) > 0.00005 + 1e-12) fail_msg("%s = %.5f, reference %.4f", what, got, want);
}

static void run_shared(const char *path, const char *name, double pop_h, double pop_n,
                       double knn_h, double knn_n) {
    dr_load_params lp = dr_load_default_params();
    dr_dataset *ds = NULL;
    assert_ok(dr_dataset_load(path, &lp, &ds, &e_));
    dr_split *sp = NULL;
    assert_ok(dr_split_create(ds, DR_SPLIT_LOO, &sp, &e_));
    const char *models[] = {"pop", "itemknn"};
    for (int k = 0; k < 2; k++) {
        dr_model_params mp = dr_model_default_params();
        mp.name = models[k];
        mp.knn_last = 20; /* the reference's "last 20 distinct items" (the default is 5) */
        dr_model *m = NULL;
        assert_ok(dr_model_fit(ds, sp, &mp, &m, &e_));
        dr_eval_params p = dr_eval_default_params();
        dr_eval_result r;
        assert_ok(dr_eval_split(ds, sp, m, &p, &r, &e_));
        print_result(name, models[k], &r);
        assert_int_equal(r.n_users, dr_split_n_eval_users(sp));
        char what[64];
        snprintf(what, sizeof what, "%s %s Hit@10", name, models[k]);
        expect_fig(r.full10.hit, k == 0 ? pop_h : knn_h, what);
        snprintf(what, sizeof what, "%s %s NDCG@10", name, models[k]);
        expect_fig(r.full10.ndcg, k == 0 ? pop_n : knn_n, what);
        dr_model_free(m);
    }
    dr_split_free(sp);
    dr_dataset_free(ds);
}

static void test_shared_ml_small(void **state) {
    (void)state;
    DR_SHARED_OR_SKIP(path, "movielens-latest-small");
    run_shared(path, "ml-small", 0.0417, 0.0192, 0.0775, 0.0386);
}

static void test_shared_amazon_mtv(void **state) {
    (void)state;
    DR_SHARED_OR_SKIP(path, "amazon-movies-tv-llmtup");
    run_shared(path, "amazon-mtv", 0.0084, 0.0054, 0.0657, 0.0391);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loo_vs_naive),
        cmocka_unit_test(test_given_vs_naive),
        cmocka_unit_test(test_thread_count_independent),
        cmocka_unit_test(test_sampled_all_equals_full),
        cmocka_unit_test(test_progress_and_errors),
        cmocka_unit_test(test_shared_ml_small),
        cmocka_unit_test(test_shared_amazon_mtv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
