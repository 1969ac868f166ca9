/* test_evidence.c - evidence facts are true by the data (evidence validity), a damaged fact
 * is caught, modality and trend facts appear when features and an adapter exist, SASRec's
 * history facts are the removals that lower the score most (against a slow twin that removes
 * each history item and re-scores), sessions on two threads agree, and a warm request does
 * not allocate. */
#include <cblas.h>
#include <math.h>
#include <pthread.h>

#include "explain_fixture.h"
#include "oom.h"

#include "adapter.h"
#include "common.h"

/* Independent checks against the model's data, besides dr_explain_fact_valid. */
static void check_by_data(const dr_model *m, const dr_evidence *ev) {
    const uint32_t *h;
    size_t nh = dr_model_user_history(m, ev->user, &h);
    for (size_t f = 0; f < ev->n; f++) {
        const dr_fact *fa = &ev->facts[f];
        assert_int_equal(fa->id, f + 1);
        if (fa->kind == DR_FACT_HISTORY || fa->kind == DR_FACT_MODALITY || fa->kind == DR_FACT_INFLUENCE) {
            int in = 0;
            for (size_t k = 0; k < nh; k++) in |= h[k] == fa->items[0];
            assert_true(in);
            assert_true(fa->items[0] != ev->item);
        }
        if (fa->kind == DR_FACT_ATTRIBUTE) { /* on the item and on each listed recent item */
            const char *a[64];
            size_t na = dr_model_item_attrs(m, ev->item, a, 64);
            int on = 0;
            for (size_t k = 0; k < na; k++) on |= !strcmp(a[k], fa->attr);
            assert_true(on);
            assert_true(fa->n_items >= 1 && fa->n_items <= fa->value);
            for (uint32_t q = 0; q < fa->n_items; q++) {
                na = dr_model_item_attrs(m, fa->items[q], a, 64);
                on = 0;
                for (size_t k = 0; k < na; k++) on |= !strcmp(a[k], fa->attr);
                assert_true(on);
            }
        }
        if (fa->kind == DR_FACT_NEIGHBOURS) {
            assert_true(fa->value >= fa->n_users && fa->value <= fa->total);
            for (uint32_t q = 0; q < fa->n_users; q++) {
                const uint32_t *hv;
                size_t nv = dr_model_user_history(m, fa->users[q], &hv);
                int took = 0;
                for (size_t k = 0; k < nv; k++) took |= hv[k] == ev->item;
                assert_true(took);
                assert_true(fa->users[q] != ev->user);
            }
        }
    }
}

static void test_validity_synth(void **st) {
    (void)st;
    fx f;
    fx_synth(&f);
    dr_explain_params p = dr_explain_default_params();
    p.data = f.ds;
    dr_explainer *x = NULL;
    dr_explain_session *s = NULL;
    fx_open(&f, &p, &x, &s);
    size_t facts = 0, kinds[DR_FACT_KIND_COUNT] = {0};
    for (uint32_t u = 0; u < 40; u++) {
        dr_evidence ev;
        assert_ok(dr_explain_evidence(s, u, fx_top_item(f.m, u, u % 5), &ev, &e_));
        check_by_data(f.m, &ev);
        for (size_t k = 0; k < ev.n; k++) {
            if (!dr_explain_fact_valid(s, &ev, k))
                fail_msg("user %u fact E%zu (%s) is not valid", u, k + 1,
                         dr_fact_kind_name(ev.facts[k].kind));
            kinds[ev.facts[k].kind]++;
            facts++;
        }
        /* damaged copies are caught */
        for (size_t k = 0; k < ev.n; k++) {
            dr_evidence bad = ev;
            bad.facts[k].value += 1.0;
            assert_false(dr_explain_fact_valid(s, &bad, k));
        }
        if (ev.n && ev.facts[0].kind == DR_FACT_HISTORY) {
            dr_evidence bad = ev;
            bad.facts[0].items[0] = ev.item; /* the item itself is never its own evidence */
            assert_false(dr_explain_fact_valid(s, &bad, 0));
        }
    }
    assert_true(facts > 100);
    assert_true(kinds[DR_FACT_HISTORY] > 0 && kinds[DR_FACT_NEIGHBOURS] > 0 &&
                kinds[DR_FACT_ATTRIBUTE] > 0 && kinds[DR_FACT_MODALITY] > 0);
    assert_int_equal(kinds[DR_FACT_TREND], 0); /* no adapter */
    dr_explain_session_free(s);
    dr_explainer_free(x);
    fx_free(&f);
}

/* MovieLens genres and tags become attribute facts. */
static void test_movielens_attributes(void **st) {
    (void)st;
    fx f;
    fx_movielens(&f);
    dr_explainer *x = NULL;
    dr_explain_session *s = NULL;
    fx_open(&f, NULL, &x, &s);
    size_t attrs = 0;
    for (uint32_t u = 0; u < dr_model_n_users(f.m); u++) {
        dr_evidence ev;
        assert_ok(dr_explain_evidence(s, u, fx_top_item(f.m, u, 0), &ev, &e_));
        check_by_data(f.m, &ev);
        for (size_t k = 0; k < ev.n; k++) {
            assert_true(dr_explain_fact_valid(s, &ev, k));
            if (ev.facts[k].kind == DR_FACT_ATTRIBUTE) {
                assert_non_null(strstr(ev.facts[k].attr, "genre=") == ev.facts[k].attr ||
                                strstr(ev.facts[k].attr, "tag=") == ev.facts[k].attr ? "" : NULL);
                attrs++;
            }
        }
    }
    assert_true(attrs > 0);
    dr_explain_session_free(s);
    dr_explainer_free(x);
    fx_free(&f);
}

/* With an adapter, the window's counts become trend facts, checked against the window's
 * slow twin. */
static void test_trend_with_adapter(void **st) {
    (void)st;
    fx f;
    fx_synth(&f);
    uint32_t d = dr_model_latent_dim(f.m);
    dr_adapter_params ap = dr__adapter_default_params();
    ap.window.capacity = 500;
    dr_adapter *a = NULL;
    assert_ok(dr__adapter_create(&ap, dr_model_n_users(f.m), dr_model_n_items(f.m), d,
                                dr_model_item_latents(f.m), NULL, &a, &e_));
    dr_scorer *sc = NULL;
    assert_ok(dr_scorer_create(f.m, &sc, &e_));
    float *h = calloc(d, sizeof *h);
    for (uint32_t u = 0, t = 1; u < 100; u++) { /* replay each user's last items */
        const uint32_t *hist;
        size_t n = dr_model_user_history(f.m, u, &hist);
        assert_ok(dr_model_user_latent(f.m, sc, u, hist, n, h, &e_));
        for (size_t k = n > 5 ? n - 5 : 0; k < n; k++)
            assert_ok(dr__adapter_update(a, u, hist[k], (int64_t)t++, h, &e_));
    }
    dr_explain_params p = dr_explain_default_params();
    p.adapter = a;
    dr_explainer *x = NULL;
    dr_explain_session *s = NULL;
    fx_open(&f, &p, &x, &s);
    size_t trends = 0;
    for (uint32_t u = 0; u < 30; u++) {
        dr_evidence ev;
        const uint32_t *hist;
        size_t n = dr_model_user_history(f.m, u + 1, &hist);
        assert_ok(dr_explain_evidence(s, u, hist[n - 1], &ev, &e_)); /* an item in the window */
        for (size_t k = 0; k < ev.n; k++) {
            assert_true(dr_explain_fact_valid(s, &ev, k));
            trends += ev.facts[k].kind == DR_FACT_TREND;
        }
    }
    assert_true(trends > 0);
    dr_explain_session_free(s);
    dr_explainer_free(x);
    free(h);
    dr_scorer_free(sc);
    dr__adapter_free(a);
    fx_free(&f);
}

typedef struct job {
    dr_explainer *x;
    const dr_model *m;
    dr_evidence ev[20];
} job;

static void *run_job(void *arg) {
    job *j = arg;
    dr_explain_session *s = NULL;
    if (dr_explain_session_create(j->x, &s, NULL) != DR_OK) return NULL;
    for (uint32_t u = 0; u < 20; u++) dr_explain_evidence(s, u, (u * 7) % dr_model_n_items(j->m), &j->ev[u], NULL);
    dr_explain_session_free(s);
    return NULL;
}

/* One explainer, a session per thread: the same evidence as one thread alone. */
static void test_threads(void **st) {
    (void)st;
    fx f;
    fx_synth(&f);
    dr_explainer *x = NULL;
    assert_ok(dr_explainer_create(f.m, NULL, &x, &e_));
    job *j = calloc(3, sizeof *j);
    for (int k = 0; k < 3; k++) j[k].x = x, j[k].m = f.m;
    run_job(&j[0]);
    pthread_t t[2];
    for (int k = 0; k < 2; k++) pthread_create(&t[k], NULL, run_job, &j[k + 1]);
    for (int k = 0; k < 2; k++) pthread_join(t[k], NULL);
    for (int k = 1; k < 3; k++) assert_memory_equal(j[0].ev, j[k].ev, sizeof j[0].ev);
    free(j);
    dr_explainer_free(x);
    fx_free(&f);
}

typedef struct twin_drop {
    float drop;
    uint32_t item;
} twin_drop;

static int twin_cmp(const void *pa, const void *pb) {
    const twin_drop *a = pa, *b = pb;
    if (a->drop != b->drop) return a->drop > b->drop ? -1 : 1;
    return a->item < b->item ? -1 : a->item > b->item;
}

/* The slow twin of the influence facts: every distinct item of the whole history (not only
 * the window) removed in turn, every item re-scored with dr_model_score (the model's own
 * scoring path, not the explainer's dot product), drops sorted. Returns how many are > 0. */
static size_t twin_drops(const dr_model *m, dr_scorer *sc, uint32_t u, uint32_t item,
                         twin_drop *out) {
    const uint32_t *h;
    size_t nh = dr_model_user_history(m, u, &h), n = 0;
    float *scores = malloc(dr_model_n_items(m) * sizeof *scores);
    uint32_t *ctx = malloc((nh + 1) * sizeof *ctx);
    assert_ok(dr_model_score(m, sc, u, h, nh, scores, &e_));
    float before = scores[item];
    for (size_t k = 0; k < nh; k++) {
        int seen = h[k] == item;
        for (size_t q = 0; q < k && !seen; q++) seen = h[q] == h[k];
        if (seen) continue;
        size_t c = 0;
        for (size_t q = 0; q < nh; q++)
            if (h[q] != h[k]) ctx[c++] = h[q];
        assert_ok(dr_model_score(m, sc, u, ctx, c, scores, &e_));
        if (before - scores[item] > 0) out[n++] = (twin_drop){before - scores[item], h[k]};
    }
    qsort(out, n, sizeof *out, twin_cmp);
    free(scores);
    free(ctx);
    return n;
}

/* SASRec (a model with a context window) gets history facts by removal: the same items, drops
 * and ranks as the slow twin (float rounding between the two scoring paths allows ties within
 * 1e-5 to swap), valid by dr_explain_fact_valid, a tampered number or rank rejected, the
 * template cites them and verifies, and removing the cited items lowers the score. */
static void test_influence_twin(void **st) {
    (void)st;
    fx f;
    fx_synth_kind(&f, "sasrec");
    dr_explainer *x = NULL;
    dr_explain_session *s = NULL;
    fx_open(&f, NULL, &x, &s);
    dr_scorer *sc = NULL;
    assert_ok(dr_scorer_create(f.m, &sc, &e_));
    twin_drop *tw = malloc(dr_model_n_items(f.m) * sizeof *tw);
    dr_explanation *ex = malloc(sizeof *ex);
    float *scores = malloc(dr_model_n_items(f.m) * sizeof *scores);
    uint32_t *ctx = malloc(4096 * sizeof *ctx);
    int n_checked = 0, lowered = 0;
    for (uint32_t u = 0; u < 40; u++) {
        uint32_t item = fx_top_item(f.m, u, u % 4);
        dr_evidence ev;
        assert_ok(dr_explain_evidence(s, u, item, &ev, &e_));
        check_by_data(f.m, &ev);
        size_t nt = twin_drops(f.m, sc, u, item, tw), r = 0;
        for (size_t k = 0; k < ev.n; k++) {
            const dr_fact *fa = &ev.facts[k];
            assert_int_not_equal(fa->kind, DR_FACT_HISTORY);
            if (fa->kind != DR_FACT_INFLUENCE) continue;
            assert_true(r < nt);
            assert_int_equal((uint32_t)fa->total, r + 1);
            assert_true(fabs(fa->value - tw[r].drop) < 1e-4);
            if (fa->items[0] != tw[r].item) { /* only a near-tie may swap */
                size_t q = 0;
                while (q < nt && tw[q].item != fa->items[0]) q++;
                assert_true(q < nt);
                assert_true(fabs(tw[q].drop - tw[r].drop) < 1e-5);
            }
            assert_true(dr_explain_fact_valid(s, &ev, k));
            dr_evidence bad = ev; /* a tampered number, then a tampered rank */
            bad.facts[k].value += 0.01;
            assert_false(dr_explain_fact_valid(s, &bad, k));
            bad = ev;
            if (r > 0 && tw[r - 1].drop > tw[r].drop + 1e-3) {
                bad.facts[k].total = (double)r;
                assert_false(dr_explain_fact_valid(s, &bad, k));
            }
            r++;
            n_checked++;
        }
        assert_int_equal(r, nt < 3 ? nt : 3);
        /* the template names them and verifies */
        assert_ok(dr_explain(s, u, item, ex, &e_));
        assert_true(ex->verified);
        if (r) assert_non_null(strstr(ex->text, "its score the most"));
        /* deletion: without the cited items the score drops */
        const uint32_t *h;
        size_t nh = dr_model_user_history(f.m, u, &h), c = 0;
        assert_true(nh < 4096);
        for (size_t k = 0; k < nh; k++) {
            int drop = 0;
            for (size_t q = 0; q < ev.n; q++)
                drop |= ev.facts[q].kind == DR_FACT_INFLUENCE && ev.facts[q].items[0] == h[k];
            if (!drop) ctx[c++] = h[k];
        }
        assert_ok(dr_model_score(f.m, sc, u, h, nh, scores, &e_));
        float before = scores[item];
        assert_ok(dr_model_score(f.m, sc, u, ctx, c, scores, &e_));
        lowered += r > 0 && scores[item] < before;
    }
    assert_true(n_checked >= 40);
    assert_true(lowered >= 36); /* joint removal is not additive, but nearly always lowers */
    uint32_t top[5];
    for (uint32_t u = 0; u < 5; u++) top[u] = fx_top_item(f.m, u, 1);
    uint64_t a0 = dr__alloc_count(); /* re-scoring runs in the session's buffers */
    for (uint32_t u = 0; u < 5; u++) assert_ok(dr_explain(s, u, top[u], ex, &e_));
    assert_int_equal(dr__alloc_count() - a0, 0);
    /* forced removal on BPR-MF (fold-in scores) and forced similarity on SASRec */
    dr_explain_session_free(s);
    dr_explainer_free(x);
    dr_explain_params p = dr_explain_default_params();
    p.history = DR_HISTORY_SIMILARITY;
    fx_open(&f, &p, &x, &s);
    dr_evidence ev;
    assert_ok(dr_explain_evidence(s, 0, fx_top_item(f.m, 0, 0), &ev, &e_));
    assert_int_equal(ev.facts[0].kind, DR_FACT_HISTORY);
    dr_explain_session_free(s);
    dr_explainer_free(x);
    p.history = (dr_history_mode)7;
    dr_error e = {0};
    assert_int_equal(dr_explainer_create(f.m, &p, &x, &e), DR_ARG);
    free(tw);
    free(ex);
    free(scores);
    free(ctx);
    dr_scorer_free(sc);
    fx_free(&f);
    fx_synth(&f);
    p.history = DR_HISTORY_REMOVAL;
    fx_open(&f, &p, &x, &s);
    assert_ok(dr_explain_evidence(s, 2, fx_top_item(f.m, 2, 0), &ev, &e_));
    assert_int_equal(ev.facts[0].kind, DR_FACT_INFLUENCE);
    for (size_t k = 0; k < ev.n; k++) assert_true(dr_explain_fact_valid(s, &ev, k));
    dr_explain_session_free(s);
    dr_explainer_free(x);
    fx_free(&f);
}

/* A warm session builds evidence and template text without allocating. */
static void test_no_alloc(void **st) {
    (void)st;
    fx f;
    fx_synth(&f);
    dr_explainer *x = NULL;
    dr_explain_session *s = NULL;
    fx_open(&f, NULL, &x, &s);
    dr_explanation *ex = malloc(sizeof *ex);
    assert_ok(dr_explain(s, 3, 5, ex, &e_));
    uint64_t a0 = dr__alloc_count();
    for (uint32_t u = 0; u < 20; u++) assert_ok(dr_explain(s, u, (u * 3) % 100, ex, &e_));
    assert_int_equal(dr__alloc_count() - a0, 0);
    free(ex);
    dr_explain_session_free(s);
    dr_explainer_free(x);
    fx_free(&f);
}

static void test_bad_args(void **st) {
    (void)st;
    fx f;
    fx_synth(&f);
    dr_explainer *x = NULL;
    dr_explain_session *s = NULL;
    dr_error e = {0};
    dr_explain_params p = dr_explain_default_params();
    p.generator = "oracle";
    assert_int_equal(dr_explainer_create(f.m, &p, &x, &e), DR_ARG);
    p.generator = "llama"; /* without a model path */
    assert_int_equal(dr_explainer_create(f.m, &p, &x, &e), DR_ARG);
    fx_open(&f, NULL, &x, &s);
    dr_evidence ev;
    assert_int_equal(dr_explain_evidence(s, 100000, 0, &ev, &e), DR_RANGE);
    assert_int_equal(dr_explain_evidence(s, 0, 100000, &ev, &e), DR_RANGE);
    assert_non_null(strstr(e.msg, "item"));
    dr_explain_session_free(s);
    dr_explainer_free(x);
    fx_free(&f);
}

typedef struct ex_oom {
    const dr_model *m;
    dr_explainer *x;
    dr_explain_session *s;
} ex_oom;

static dr_status ex_create(void *ud, dr_error *err) {
    ex_oom *u = ud;
    return dr_explainer_create(u->m, NULL, &u->x, err);
}

DR_OOM_FREE_FN(ex_free, ex_oom, x, dr_explainer_free)

static dr_status ex_session(void *ud, dr_error *err) {
    ex_oom *u = ud;
    return dr_explain_session_create(u->x, &u->s, err);
}

DR_OOM_FREE_FN(ex_session_free, ex_oom, s, dr_explain_session_free)

static void test_out_of_memory(void **st) {
    (void)st;
    fx f;
    fx_synth(&f);
    ex_oom u = {.m = f.m};
    dr_oom_case c = {.name = "dr_explainer_create (template)", .call = ex_create,
                     .cleanup = ex_free, .ud = &u, .out = (void **)&u.x};
    assert_true(dr_oom_check(&c) > 0);
    assert_ok(dr_explainer_create(f.m, NULL, &u.x, &e_));
    c = (dr_oom_case){.name = "dr_explain_session_create", .call = ex_session,
                      .cleanup = ex_session_free, .ud = &u, .out = (void **)&u.s};
    assert_true(dr_oom_check(&c) > 0);
    dr_explainer_free(u.x);
    fx_free(&f);
}

int main(void) {
    openblas_set_num_threads(1); /* OpenBLAS's own threads are not visible to ThreadSanitizer */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validity_synth),     cmocka_unit_test(test_movielens_attributes),
        cmocka_unit_test(test_trend_with_adapter), cmocka_unit_test(test_threads),
        cmocka_unit_test(test_no_alloc),           cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_out_of_memory),      cmocka_unit_test(test_influence_twin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
