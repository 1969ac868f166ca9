/* test_recommend.c - the serving path: dr_recommend against a naive twin, for every model,
 * and no allocation after warm-up; on a larger dataset, dr_recommend through the bf16 copy of
 * the item latents (scan.h) equals the f32 answer (items and scores) for every user, and
 * dr_model_score gives the same bits with every scan kernel the CPU has. */
#include "testutil.h"

#include <math.h>

#include "common.h"
#include "model.h"
#include "scan.h"
#include "topk.h"

static dr_dataset *ds;
static dr_split *sp;

static int setup(void **state) {
    (void)state;
    dr_synth_params p = dr_synth_default_params();
    p.seed = 11;
    p.n_users = 150;
    p.n_items = 120;
    p.n_events = 5000;
    p.n_genres = 5;
    dr_error e = {0};
    if (dr_synth_generate(&p, &ds, &e) != DR_OK) return -1;
    return dr_split_create(ds, DR_SPLIT_LOO, &sp, &e) == DR_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    dr_split_free(sp);
    dr_dataset_free(ds);
    return 0;
}

static dr_dataset *big_ds;
static dr_split *big_sp;

static int setup_big(void **state) {
    (void)state;
    /* the bf16 copy for every table size, so this small dataset takes that path */
    setenv("DYNREC_SCAN_BF16", "1", 1);
    dr_synth_params p = dr_synth_default_params();
    p.seed = 23;
    p.n_users = 600;
    p.n_items = 2500;
    p.n_events = 30000;
    p.n_genres = 8;
    dr_error e = {0};
    if (dr_synth_generate(&p, &big_ds, &e) != DR_OK) return -1;
    return dr_split_create(big_ds, DR_SPLIT_LOO, &big_sp, &e) == DR_OK ? 0 : -1;
}

static int teardown_big(void **state) {
    (void)state;
    unsetenv("DYNREC_SCAN_BF16");
    dr_split_free(big_sp);
    dr_dataset_free(big_ds);
    return 0;
}

/* Naive twin: all candidates sorted by (score desc, id asc), history excluded. */
static uint32_t naive(const float *scores, uint32_t n, const uint32_t *ctx, size_t n_ctx,
                      uint32_t k, uint32_t *out) {
    uint8_t *ex = calloc(n, 1);
    for (size_t j = 0; j < n_ctx; j++) ex[ctx[j]] = 1;
    uint32_t m = 0;
    for (uint32_t round = 0; round < k; round++) {
        int64_t best = -1;
        for (uint32_t i = 0; i < n; i++) {
            if (ex[i]) continue;
            if (best < 0 || scores[i] > scores[best]) best = i;
        }
        if (best < 0) break;
        out[m++] = (uint32_t)best;
        ex[best] = 1;
    }
    free(ex);
    return m;
}

static void check_model(const char *name) {
    dr_model_params mp = dr_model_default_params();
    mp.name = name;
    mp.epochs = 2;
    mp.eval_every = 0;
    mp.threads = 1;
    mp.dim = 16;
    mp.max_len = 20;
    mp.batch = 32;
    dr_model *m = NULL;
    dr_scorer *s = NULL;
    assert_ok(dr_model_fit(ds, sp, &mp, &m, &e_));
    assert_ok(dr_scorer_create(m, &s, &e_));
    uint32_t n = dr_dataset_n_items(ds);
    float *scores = malloc(n * sizeof *scores);
    uint32_t want[64];
    dr_rec got[64];
    for (uint32_t u = 0; u < dr_dataset_n_users(ds); u++) {
        const uint32_t *h;
        size_t nh = dr_dataset_user_items(ds, u, &h, NULL);
        uint32_t k = 1 + u % 40, n_got;
        assert_ok(dr_recommend(m, s, u, h, nh, k, got, &n_got, &e_));
        assert_ok(dr_model_score(m, s, u, h, nh, scores, &e_));
        uint32_t n_want = naive(scores, n, h, nh, k, want);
        assert_int_equal(n_got, n_want);
        for (uint32_t j = 0; j < n_got; j++) {
            assert_int_equal(got[j].item, want[j]);
            assert_true(got[j].score == scores[want[j]]);
        }
    }
    /* after warm-up the serving path never allocates */
    const uint32_t *h;
    size_t nh = dr_dataset_user_items(ds, 3, &h, NULL);
    uint32_t n_got;
    uint64_t before = dr__alloc_count();
    for (int r = 0; r < 300; r++) assert_ok(dr_recommend(m, s, 3, h, nh, 10, got, &n_got, &e_));
    assert_int_equal(dr__alloc_count() - before, 0);
    /* bad requests are refused cleanly */
    dr_error e = {0};
    assert_int_equal(dr_recommend(m, s, 3, h, nh, 0, got, &n_got, &e), DR_RANGE);
    assert_int_equal(dr_recommend(m, s, 3, h, nh, DR_RECOMMEND_MAX_K + 1, got, &n_got, &e), DR_RANGE);
    uint32_t bad = n + 5;
    assert_int_equal(dr_recommend(m, s, 3, &bad, 1, 10, got, &n_got, &e), DR_RANGE);
    /* dot-product view: scores == item_latents . user_latent (the adapter relies on it) */
    uint32_t dim = dr_model_latent_dim(m);
    if (!strcmp(name, "mf") || !strcmp(name, "sasrec")) {
        assert_true(dim > 0);
        const float *z = dr_model_item_latents(m);
        float *hv = malloc(dim * sizeof *hv);
        for (uint32_t u = 0; u < dr_dataset_n_users(ds) + 1; u++) {
            const uint32_t *hh;
            size_t nhh = dr_dataset_user_items(ds, u % dr_dataset_n_users(ds), &hh, NULL);
            assert_ok(dr_model_user_latent(m, s, u, hh, nhh, hv, &e_)); /* u = n_users: unknown */
            assert_ok(dr_model_score(m, s, u, hh, nhh, scores, &e_));
            for (uint32_t i = 0; i < n; i++) {
                double dot = 0;
                for (uint32_t j = 0; j < dim; j++) dot += (double)z[(size_t)i * dim + j] * hv[j];
                assert_float_equal(dot, scores[i], 1e-4 * (1 + fabs(dot)));
            }
        }
        free(hv);
    } else {
        assert_int_equal(dim, 0);
        float hv[4];
        dr_error e2 = {0};
        assert_int_equal(dr_model_user_latent(m, s, 0, h, nh, hv, &e2), DR_UNSUPPORTED);
    }
    free(scores);
    dr_scorer_free(s);
    dr_model_free(m);
}

static void test_pop(void **state) { (void)state; check_model("pop"); }
static void test_itemknn(void **state) { (void)state; check_model("itemknn"); }
static void test_mf(void **state) { (void)state; check_model("mf"); }
static void test_sasrec(void **state) { (void)state; check_model("sasrec"); }

static void check_bf16(const char *name, uint32_t dim) {
    dr_model_params mp = dr_model_default_params();
    mp.name = name;
    mp.epochs = 2;
    mp.eval_every = 0;
    mp.threads = 1;
    mp.dim = dim;
    mp.max_len = 20;
    mp.batch = 64;
    dr_model *m = NULL;
    dr_scorer *s = NULL;
    assert_ok(dr_model_fit(big_ds, big_sp, &mp, &m, &e_));
    assert_non_null(m->latent_bf16); /* DYNREC_SCAN_BF16=1 */
    assert_ok(dr_scorer_create(m, &s, &e_));
    uint32_t n = dr_dataset_n_items(big_ds), U = dr_dataset_n_users(big_ds);
    float *scores = malloc(n * sizeof *scores), *other = malloc(n * sizeof *other);
    uint32_t want[100], diff = 0;
    dr_rec got[100];
    for (uint32_t u = 0; u <= U; u++) { /* u = U: an unknown user (fold-in / context only) */
        const uint32_t *h;
        size_t nh = dr_dataset_user_items(big_ds, u % U, &h, NULL);
        assert_ok(dr_model_score(m, s, u, h, nh, scores, &e_));
        for (uint32_t k = 10; k <= 100; k += 90) {
            uint32_t n_got;
            assert_ok(dr_recommend(m, s, u, h, nh, k, got, &n_got, &e_));
            uint32_t n_want = naive(scores, n, h, nh, k, want);
            assert_int_equal(n_got, n_want);
            for (uint32_t j = 0; j < n_got; j++)
                if (got[j].item != want[j] || memcmp(&got[j].score, &scores[want[j]], sizeof(float)))
                    diff++;
        }
        /* every kernel: the same bits */
        if (u % 7 == 0)
            for (int v = 0; v < DR_SCAN_N; v++) {
                if (!dr__scan_supported(v)) continue;
                assert_ok(dr__scan_force(v, &e_));
                assert_ok(dr_model_score(m, s, u, h, nh, other, &e_));
                assert_ok(dr__scan_force(-1, &e_));
                if (memcmp(other, scores, n * sizeof *scores) != 0)
                    fail_msg("%s: user %u: the %s kernel's scores differ", name, u,
                             dr__scan_variant_name(v));
            }
    }
    uint64_t p1, p2, full;
    dr__topk_bf16_counts(s->topk, &p1, &p2, &full);
    printf("%s (latent dim %u): %u users x k 10, 100: %u answers differ from f32; bf16 answered "
           "%llu by pass 1, %llu by pass 2, %llu by the f32 scan\n", name, m->latent_dim, U + 1,
           diff, (unsigned long long)p1, (unsigned long long)p2, (unsigned long long)full);
    assert_int_equal(diff, 0);
    assert_true(p1 + p2 > full); /* the bf16 copy did answer */
    free(scores);
    free(other);
    dr_scorer_free(s);
    dr_model_free(m);
}

static void test_bf16_mf(void **state) { (void)state; check_bf16("mf", 24); }
static void test_bf16_sasrec(void **state) { (void)state; check_bf16("sasrec", 32); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pop),
        cmocka_unit_test(test_itemknn),
        cmocka_unit_test(test_mf),
        cmocka_unit_test(test_sasrec),
    };
    const struct CMUnitTest big[] = {
        cmocka_unit_test(test_bf16_mf),
        cmocka_unit_test(test_bf16_sasrec),
    };
    int fails = cmocka_run_group_tests(tests, setup, teardown);
    return fails + cmocka_run_group_tests(big, setup_big, teardown_big);
}
