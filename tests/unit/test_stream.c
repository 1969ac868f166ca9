/* test_stream.c - P-STREAM replay (src/eval_stream.c) against a slow twin written from
 * ../shared/PROTOCOL.md: on a dataset with many shared timestamps, the scored events, the
 * frozen column's Hit@10 / NDCG@10 (context = everything strictly before the event's time,
 * ranks by a naive pessimistic count), the cold-target events and the slices must agree; the
 * adapter column is finite, deterministic for a seed, and the JSON names every field; the
 * retrain column refits before slices 1..9 and is close to the base on slice 0. */
#include "testutil.h"

#include <cblas.h>
#include <math.h>

#include "dataset.h"
#include "rng.h"
#include "eval_stream.h"

enum { NU = 60, NI = 45, NE = 1600 };

static dr_dataset *make_dataset(void) {
    dr_builder *b = NULL;
    assert_ok(dr__builder_create(&b));
    dr_rng r;
    dr__rng_seed(&r, 99, 0);
    for (int k = 0; k < NE; k++) {
        char u[16], it[16];
        int un = snprintf(u, sizeof u, "u%u", (unsigned)dr__rng_below(&r, NU));
        /* items with a larger id appear later: post-T0 cold items exist */
        uint32_t lim = 10 + (uint32_t)((NI - 10) * k / NE);
        int in = snprintf(it, sizeof it, "i%u", (unsigned)dr__rng_below(&r, lim));
        int64_t t = 1000 + (int64_t)(k / 4) * 60 + (int64_t)dr__rng_below(&r, 2) * 60; /* ties */
        assert_ok(dr__builder_add_event(b, u, (size_t)un, it, (size_t)in, t, 1.0f, DR_TAG_NONE));
    }
    dr_dataset *ds = NULL;
    assert_ok(dr__builder_finish(b, &ds, &e_));
    dr__builder_free(b);
    return ds;
}

typedef struct twin {
    size_t n_events, n_scored, n_cold;
    double hit, ndcg, cold_hit;
    double slice_hit[DR_STREAM_SLICES];
    size_t slice_n[DR_STREAM_SLICES];
} twin;

/* the protocol, written directly: context of (u, t) = u's items with time < t */
static void slow_twin(const dr_dataset *ds, const dr_model *m, twin *tw) {
    dr_dataset_stats st;
    assert_ok(dr_dataset_get_stats(ds, &st));
    memset(tw, 0, sizeof *tw);
    uint8_t seen[NI] = {0};
    for (size_t e = 0; e < ds->n_events; e++)
        if (ds->ev_time[e] < st.t0) seen[ds->ev_item[e]] = 1;
    dr_scorer *sc = NULL;
    assert_ok(dr_scorer_create(m, &sc, &e_));
    float *scores = malloc(ds->n_items * sizeof *scores);
    double *hits = malloc(ds->n_events * sizeof *hits);
    for (size_t e = 0; e < ds->n_events; e++) {
        if (ds->ev_time[e] < st.t0) continue;
        tw->n_events++;
        uint32_t u = ds->ev_user[e], i = ds->ev_item[e];
        uint32_t ctx[NE];
        size_t n = 0;
        int pre = 0;
        for (size_t k = ds->user_off[u]; k < ds->user_off[u + 1]; k++) {
            if (ds->hist_time[k] < ds->ev_time[e]) ctx[n++] = ds->hist_item[k];
            if (ds->hist_time[k] < st.t0) pre = 1;
        }
        if (!n) continue;
        int in_hist = 0;
        for (size_t k = 0; k < n; k++) in_hist |= ctx[k] == i;
        if (in_hist) continue;
        assert_ok(dr_model_score(m, sc, pre ? u : UINT32_MAX, ctx, n, scores, &e_));
        uint32_t rank = 1;
        for (uint32_t j = 0; j < ds->n_items; j++) {
            if (j == i) continue;
            int ex = 0;
            for (size_t k = 0; k < n; k++) ex |= ctx[k] == j;
            if (!ex && scores[j] >= scores[i]) rank++;
        }
        double hit = rank <= 10, ndcg = rank <= 10 ? 1.0 / log2(rank + 1.0) : 0.0;
        hits[tw->n_scored++] = hit;
        tw->hit += hit;
        tw->ndcg += ndcg;
        if (!seen[i]) {
            tw->n_cold++;
            tw->cold_hit += hit;
        }
    }
    for (size_t j = 0; j < tw->n_scored; j++) {
        size_t s = j * DR_STREAM_SLICES / tw->n_scored;
        tw->slice_hit[s] += hits[j];
        tw->slice_n[s]++;
    }
    for (int s = 0; s < DR_STREAM_SLICES; s++)
        if (tw->slice_n[s]) tw->slice_hit[s] /= (double)tw->slice_n[s];
    tw->hit /= (double)tw->n_scored;
    tw->ndcg /= (double)tw->n_scored;
    if (tw->n_cold) tw->cold_hit /= (double)tw->n_cold;
    free(scores);
    free(hits);
    dr_scorer_free(sc);
}

/* The small MF base every test here trains. */
static dr_model_params mf_params(void) {
    dr_model_params mp = dr_model_default_params();
    mp.name = "mf";
    mp.dim = 8;
    mp.epochs = 20;
    mp.threads = 1;
    return mp;
}

static dr_model *fit_mf(const dr_dataset *ds) {
    dr_split *sp = NULL;
    assert_ok(dr_split_create(ds, DR_SPLIT_T0, &sp, &e_));
    dr_model_params mp = mf_params();
    dr_model *m = NULL;
    assert_ok(dr_model_fit(ds, sp, &mp, &m, &e_));
    dr_split_free(sp);
    return m;
}

static void test_replay_matches_twin(void **st) {
    (void)st;
    dr_dataset *ds = make_dataset();
    dr_model *m = fit_mf(ds);
    twin tw;
    slow_twin(ds, m, &tw);
    assert_true(tw.n_scored > 100);
    assert_true(tw.n_cold > 10);
    dr_stream_params p = dr__stream_default_params();
    p.adapter.window.capacity = 64;
    p.adapter.g_batch = 16;
    dr_stream_result r, r2;
    assert_ok(dr__stream_eval(ds, m, &p, &r, &e_));
    assert_int_equal(r.n_events, tw.n_events);
    assert_int_equal(r.n_scored, tw.n_scored);
    assert_int_equal(r.cold.frozen.n, tw.n_cold);
    assert_int_equal(r.overall.frozen.n, tw.n_scored);
    assert_float_equal(r.overall.frozen.hit10, tw.hit, 1e-12);
    assert_float_equal(r.overall.frozen.ndcg10, tw.ndcg, 1e-6);
    assert_float_equal(r.cold.frozen.hit10, tw.cold_hit, 1e-12);
    size_t total = 0;
    for (int s = 0; s < DR_STREAM_SLICES; s++) {
        assert_int_equal(r.slices[s].frozen.n, tw.slice_n[s]);
        assert_float_equal(r.slices[s].frozen.hit10, tw.slice_hit[s], 1e-12);
        total += r.slices[s].adapter.n;
    }
    assert_int_equal(total, tw.n_scored);
    assert_true(r.has_adapter);
    assert_true(isfinite(r.overall.adapter.hit10) && isfinite(r.overall.adapter.ndcg10));
    assert_true(r.overall.adapter.hit10 >= 0 && r.overall.adapter.hit10 <= 1);
    /* same seed, same numbers */
    assert_ok(dr__stream_eval(ds, m, &p, &r2, &e_));
    assert_memory_equal(&r.overall, &r2.overall, sizeof r.overall);
    assert_memory_equal(r.slices, r2.slices, sizeof r.slices);
    assert_memory_equal(&r.cold, &r2.cold, sizeof r.cold);
    /* JSON */
    char json[8192];
    int n = dr__stream_json(&r, json, sizeof json);
    assert_true(n > 0 && (size_t)n < sizeof json);
    const char *keys[] = {"\"protocol\":\"P-STREAM\"", "\"n_events\":", "\"stream\":{",
                          "\"frozen\":{\"hit@10\":", "\"adapter\":{\"hit@10\":", "\"slices\":[",
                          "\"cold\":{", "\"ndcg@10\":"};
    for (size_t k = 0; k < DR_ARRAY_LEN(keys); k++)
        if (!strstr(json, keys[k])) fail_msg("JSON lacks %s: %s", keys[k], json);
    char small[16];
    assert_int_equal(dr__stream_json(&r, small, sizeof small), n); /* truncates like snprintf */
    /* frozen only */
    p.run_adapter = 0;
    assert_ok(dr__stream_eval(ds, m, &p, &r2, &e_));
    assert_false(r2.has_adapter);
    assert_float_equal(r2.overall.frozen.hit10, tw.hit, 1e-12);
    dr_model_free(m);
    dr_dataset_free(ds);
}

/* the retrain column: 9 refits (slices 1..9), slice 0 equals the frozen base, deterministic */
static void test_retrain_column(void **st) {
    (void)st;
    dr_dataset *ds = make_dataset();
    dr_model *m = fit_mf(ds);
    dr_model_params mp = mf_params();
    dr_stream_params p = dr__stream_default_params();
    p.adapter.window.capacity = 64;
    p.retrain = &mp;
    dr_stream_result r, r2;
    assert_ok(dr__stream_eval(ds, m, &p, &r, &e_));
    assert_true(r.has_retrain);
    assert_int_equal(r.n_retrains, DR_STREAM_SLICES - 1);
    assert_int_equal(r.overall.retrain.n, r.n_scored);
    /* slice 0 is scored by the base, except events sharing the timestamp of slice 1's first
     * event (the refit happens before that timestamp): close to the frozen column */
    assert_int_equal(r.slices[0].retrain.n, r.slices[0].frozen.n);
    assert_true(fabs(r.slices[0].retrain.hit10 - r.slices[0].frozen.hit10) < 0.05);
    assert_true(r.overall.retrain.hit10 >= 0 && r.overall.retrain.hit10 <= 1);
    assert_ok(dr__stream_eval(ds, m, &p, &r2, &e_));
    assert_memory_equal(&r.overall, &r2.overall, sizeof r.overall);
    char json[8192];
    dr__stream_json(&r, json, sizeof json);
    assert_non_null(strstr(json, "\"retrain\":{\"hit@10\":"));
    /* MF refits warm too: each continues from the one before (same ids, row for row) and the
     * column stays deterministic */
    p.retrain_warm = 1;
    dr_stream_result w1, w2;
    assert_ok(dr__stream_eval(ds, m, &p, &w1, &e_));
    assert_int_equal(w1.n_retrains, DR_STREAM_SLICES - 1);
    assert_true(w1.overall.retrain.hit10 >= 0 && w1.overall.retrain.hit10 <= 1);
    assert_ok(dr__stream_eval(ds, m, &p, &w2, &e_));
    assert_memory_equal(&w1.overall, &w2.overall, sizeof w1.overall);
    dr_model_free(m);
    /* SASRec: each refit continues from the one before for one epoch */
    dr_split *sp = NULL;
    assert_ok(dr_split_create(ds, DR_SPLIT_T0, &sp, &e_));
    mp.name = "sasrec";
    mp.max_len = 8;
    mp.blocks = 1;
    mp.epochs = 2;
    assert_ok(dr_model_fit(ds, sp, &mp, &m, &e_));
    mp.epochs = 1;
    mp.max_len = 0; /* not given: the shape of the model each refit continues from */
    mp.blocks = 0;
    assert_ok(dr__stream_eval(ds, m, &p, &r, &e_));
    assert_int_equal(r.n_retrains, DR_STREAM_SLICES - 1);
    assert_int_equal(r.overall.retrain.n, r.n_scored);
    assert_true(r.overall.retrain.hit10 >= 0 && r.overall.retrain.hit10 <= 1);
    dr_split_free(sp);
    dr_model_free(m);
    dr_dataset_free(ds);
}

static void test_needs_dot_product(void **st) {
    (void)st;
    dr_dataset *ds = make_dataset();
    dr_split *sp = NULL;
    assert_ok(dr_split_create(ds, DR_SPLIT_T0, &sp, &e_));
    dr_model_params mp = dr_model_default_params();
    mp.name = "pop";
    dr_model *m = NULL;
    assert_ok(dr_model_fit(ds, sp, &mp, &m, &e_));
    dr_stream_params p = dr__stream_default_params();
    dr_stream_result r;
    dr_error e = {0};
    assert_int_equal(dr__stream_eval(ds, m, &p, &r, &e), DR_UNSUPPORTED);
    p.run_adapter = 0;
    assert_ok(dr__stream_eval(ds, m, &p, &r, &e_));
    assert_true(r.n_scored > 0);
    dr_model_free(m);
    dr_split_free(sp);
    dr_dataset_free(ds);
}

/* A range replay scores only events in [t_begin, t_end), over the history before t_begin. */
typedef struct range_seen {
    const dr_dataset *ds;
    int64_t lo, hi;
    size_t n, outside;
} range_seen;

static void range_event(void *ud, size_t e, uint32_t rf, uint32_t ra, int cold) {
    (void)rf, (void)ra, (void)cold;
    range_seen *r = ud;
    r->n++;
    r->outside += r->ds->ev_time[e] < r->lo || r->ds->ev_time[e] >= r->hi;
}

static void test_range_replay(void **st) {
    (void)st;
    dr_dataset *ds = make_dataset();
    dr_model *m = fit_mf(ds);
    dr_dataset_stats sts;
    assert_ok(dr_dataset_get_stats(ds, &sts));
    range_seen seen = {.ds = ds, .lo = ds->ev_time[ds->n_events / 2], .hi = sts.t0};
    dr_stream_params p = dr__stream_default_params();
    p.has_range = 1;
    p.t_begin = seen.lo;
    p.t_end = seen.hi;
    p.on_event = range_event;
    p.on_event_ud = &seen;
    dr_stream_result r;
    assert_ok(dr__stream_eval(ds, m, &p, &r, &e_));
    assert_true(seen.n > 0);
    assert_int_equal(seen.outside, 0);
    assert_int_equal(r.n_scored, seen.n);
    assert_int_equal(r.t0, seen.lo);
    /* without the frozen column the adapter's figures are the same, the frozen ones 0 */
    dr_stream_result r2;
    p.no_frozen = 1;
    p.on_event = NULL;
    assert_ok(dr__stream_eval(ds, m, &p, &r2, &e_));
    assert_memory_equal(&r.overall.adapter, &r2.overall.adapter, sizeof r.overall.adapter);
    assert_true(r2.overall.frozen.hit10 == 0 && r.overall.frozen.n == r2.overall.frozen.n);
    dr_model_free(m);
    dr_dataset_free(ds);
}

/* The adapter chosen on the validation stream: 11 trials before T0, the best is the best of
 * them, the same inputs give the same choice, and the choice travels in a checkpoint to the
 * options eval and serve use (flags given still win). */
/* The settings and figures of two trials are the same (field by field: the struct has padding). */
static int same_trial(const dr_adapter_trial *a, const dr_adapter_trial *b) {
    return a->window == b->window && a->lr == b->lr && a->lr_item == b->lr_item &&
           a->hit10 == b->hit10 && a->ndcg10 == b->ndcg10 && a->cold_hit10 == b->cold_hit10;
}

static void test_choose_adapter(void **st) {
    (void)st;
    dr_dataset *ds = make_dataset();
    dr_dataset_stats sts;
    assert_ok(dr_dataset_get_stats(ds, &sts));
    dr_model_params mp = mf_params();
    dr_stream_options o = dr_stream_default_options();
    dr_adapter_choice c, c2;
    assert_ok(dr_stream_choose_adapter(ds, &mp, &o, NULL, NULL, &c, &e_));
    assert_int_equal(c.n_trials, 11);
    assert_int_equal(c.t_end, sts.t0);
    assert_true(c.t_begin > ds->ev_time[0] && c.t_begin < c.t_end);
    assert_true(c.n_scored > 0 && c.n_scored <= c.n_events);
    uint32_t n_best = 0, windows = 0;
    for (uint32_t k = 0; k < c.n_trials; k++) {
        const dr_adapter_trial *t = &c.trials[k];
        assert_true(t->hit10 < c.best.hit10 ||
                    (t->hit10 == c.best.hit10 && t->ndcg10 <= c.best.ndcg10));
        n_best += same_trial(t, &c.best);
        windows += k > 0 && t->window != c.trials[0].window;
    }
    assert_true(n_best >= 1);
    assert_true(windows >= 4); /* the window stage tried 5 values */
    assert_ok(dr_stream_choose_adapter(ds, &mp, &o, NULL, NULL, &c2, &e_));
    assert_true(same_trial(&c.best, &c2.best));
    assert_true(c.frozen_hit10 == c2.frozen_hit10);

    dr_split *sp = NULL;
    assert_ok(dr_split_create(ds, DR_SPLIT_T0, &sp, &e_));
    dr_model *m = NULL, *back = NULL;
    assert_ok(dr_model_fit(ds, sp, &mp, &m, &e_));
    assert_ok(dr_model_set_adapter_choice(m, &c, &e_));
    char dir[256], path[300];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/base.drm", dir);
    assert_ok(dr_model_save(m, ds, sp, path, &e_));
    assert_ok(dr_model_load(path, &back, &e_));
    dr_stream_options from = dr_stream_default_options();
    dr_stream_options_from_model(&from, back);
    assert_int_equal(from.window, c.best.window);
    assert_true(from.lr == c.best.lr && from.lr_item == c.best.lr_item);
    dr_adapter_params ap = dr__adapter_default_params();
    dr__adapter_params_from_model(&ap, back); /* what serve's adapter gets */
    assert_int_equal(ap.window.capacity, c.best.window);
    assert_true(ap.lr == c.best.lr && ap.lr_g == c.best.lr_item);
    dr_stream_options given = dr_stream_default_options();
    given.window = 77;
    dr_stream_options_from_model(&given, back);
    assert_int_equal(given.window, 77);
    /* a warm retrain keeps the choice */
    dr_model *warm = NULL;
    mp.init = back;
    mp.epochs = 1;
    assert_ok(dr_model_fit(ds, sp, &mp, &warm, &e_));
    assert_null(dr_model_meta(warm, "adapter.window"));
    assert_ok(dr_model_copy_adapter_choice(warm, back, &e_));
    assert_string_equal(dr_model_meta(warm, "adapter.window"), dr_model_meta(back, "adapter.window"));
    /* a note out of range is skipped, not used */
    assert_ok(dr_model_set_meta(warm, "adapter.window", "1", &e_));
    ap = dr__adapter_default_params();
    uint32_t def_w = ap.window.capacity;
    dr__adapter_params_from_model(&ap, warm);
    assert_int_equal(ap.window.capacity, def_w);
    dr_model_free(warm);
    dr_model_free(back);
    dr_model_free(m);
    dr_split_free(sp);
    dr_test_rmrf(dir);
    /* no time, no stream */
    dr_error e = {0};
    dr_builder *b = NULL;
    assert_ok(dr__builder_create(&b));
    for (int k = 0; k < 40; k++) {
        char u[8], it[8];
        int un = snprintf(u, sizeof u, "u%d", k % 5), in = snprintf(it, sizeof it, "i%d", k % 7);
        assert_ok(dr__builder_add_event(b, u, (size_t)un, it, (size_t)in, 0, 1.0f, DR_TAG_NONE));
    }
    dr_dataset *flat = NULL;
    assert_ok(dr__builder_finish(b, &flat, &e_));
    dr__builder_free(b);
    assert_int_equal(dr_stream_choose_adapter(flat, &mp, &o, NULL, NULL, &c, &e), DR_ARG);
    assert_non_null(strstr(e.msg, "no time"));
    dr_dataset_free(flat);
    dr_dataset_free(ds);
}

int main(void) {
    /* sgemm on the calling thread: OpenBLAS's pool is not TSan-instrumented (make tsan) */
    openblas_set_num_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_matches_twin),
        cmocka_unit_test(test_retrain_column),
        cmocka_unit_test(test_needs_dot_product),
        cmocka_unit_test(test_range_replay),
        cmocka_unit_test(test_choose_adapter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
