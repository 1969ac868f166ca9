/* test_tune.c - the search over model kinds and settings (src/tune.c): the same seed and trial
 * count give the same trials and checkpoint bytes for any thread count, the best is the
 * highest validation figure tried, promotions follow successive halving and continue from the
 * rung's model fitted in memory, the checkpoint holds the settings and figures, a baseline
 * that wins is the one written, settings can be fixed, a diverging setting is a failed trial,
 * bad input is refused, out of memory is clean. */
#include "testutil.h"
#include "oom.h"

#include <math.h>

#include "dataset.h"
#include "model.h"

/* A small synthetic dataset, its P-LOO split and a temporary folder with a checkpoint path. */
typedef struct fx {
    dr_dataset *ds;
    dr_split *sp;
    char dir[256], path[300];
} fx;

static void fx_open(fx *f, uint64_t seed, uint32_t users, uint32_t items, size_t events) {
    dr_synth_params p = dr_synth_default_params();
    p.seed = seed;
    p.n_users = users;
    p.n_items = items;
    p.n_events = events;
    p.n_genres = 4;
    memset(f, 0, sizeof *f);
    assert_ok(dr_synth_generate(&p, &f->ds, &e_));
    assert_ok(dr_split_create(f->ds, DR_SPLIT_LOO, &f->sp, &e_));
    dr_test_tmpdir(f->dir, sizeof f->dir);
    snprintf(f->path, sizeof f->path, "%s/best.drm", f->dir);
}

static void fx_close(fx *f) {
    dr_split_free(f->sp);
    dr_dataset_free(f->ds);
    dr_test_rmrf(f->dir);
}

static dr_tune *run(const fx *f, const dr_tune_params *p) {
    dr_tune *t = NULL;
    assert_ok(dr_tune_run(f->ds, f->sp, p, &t, &e_));
    return t;
}

/* The best model of t written to f->path and loaded back. */
static dr_model *save_load(const fx *f, const dr_tune *t) {
    dr_model *m = NULL;
    assert_ok(dr_tune_save(t, f->ds, f->sp, f->path, &e_));
    assert_ok(dr_model_load(f->path, &m, &e_));
    return m;
}

/* Small and quick: short SASRec sequences, one thread unless told. */
static dr_tune_params quick(const char *models, uint32_t trials, int threads) {
    dr_tune_params p = dr_tune_default_params();
    p.models = models;
    p.max_trials = trials;
    p.base.threads = threads;
    p.base.max_len = 20;
    p.base.batch = 64;
    return p;
}

static void same_trial(const dr_tune_trial *a, const dr_tune_trial *b) {
    assert_int_equal(a->id, b->id);
    assert_int_equal(a->candidate, b->candidate);
    assert_int_equal(a->rung, b->rung);
    assert_string_equal(a->model, b->model);
    assert_int_equal(a->n_settings, b->n_settings);
    assert_memory_equal(a->settings, b->settings, sizeof a->settings);
    assert_int_equal(a->epochs, b->epochs);
    assert_int_equal(a->status, b->status);
    assert_memory_equal(&a->valid.full10, &b->valid.full10, sizeof a->valid.full10);
    assert_memory_equal(&a->valid.full20, &b->valid.full20, sizeof a->valid.full20);
}

static char *slurp(const char *path, size_t *len) {
    char *buf = NULL;
    assert_ok(dr__read_file(path, 1 << 28, &buf, len, &e_));
    return buf;
}

/* Two runs with the same seed and trial count, 1 and 2 threads: the same trials in the same
 * order and the same checkpoint bytes; a longer run agrees on the trials both ran. */
static void test_deterministic(void **state) {
    (void)state;
    fx f;
    fx_open(&f, 3, 200, 120, 5000);
    char pb[300];
    snprintf(pb, sizeof pb, "%s/b.drm", f.dir);
    dr_tune_params p = quick(NULL, 9, 1);
    dr_tune *a = run(&f, &p);
    p.base.threads = 2;
    dr_tune *b = run(&f, &p);
    assert_int_equal(dr_tune_n_trials(a), DR_BASELINES + 9);
    assert_int_equal(dr_tune_n_trials(a), dr_tune_n_trials(b));
    for (size_t k = 0; k < dr_tune_n_trials(a); k++) same_trial(dr_tune_trial_at(a, k), dr_tune_trial_at(b, k));
    assert_string_equal(dr_tune_stopped(a), "trials");
    const char *kinds[] = {"sasrec", "mf", "itemknn"}; /* every kind took a turn */
    for (size_t k = 0; k < 3; k++) {
        int seen = 0;
        for (size_t j = DR_BASELINES; j < dr_tune_n_trials(a); j++)
            seen |= !strcmp(dr_tune_trial_at(a, j)->model, kinds[k]);
        assert_true(seen);
    }
    for (size_t k = 0; k < DR_BASELINES; k++) { /* the baselines come first */
        assert_true(dr_tune_trial_at(a, k)->baseline);
        assert_string_equal(dr_tune_trial_at(a, k)->model, dr_baseline_name(k));
    }
    assert_ok(dr_tune_save(a, f.ds, f.sp, f.path, &e_));
    assert_ok(dr_tune_save(b, f.ds, f.sp, pb, &e_));
    size_t na, nb;
    char *ba = slurp(f.path, &na), *bb = slurp(pb, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(ba, bb, na);
    free(ba);
    free(bb);
    p.max_trials = 12;
    dr_tune *c = run(&f, &p);
    for (size_t k = 0; k < dr_tune_n_trials(a); k++) same_trial(dr_tune_trial_at(a, k), dr_tune_trial_at(c, k));
    dr_tune_free(a);
    dr_tune_free(b);
    dr_tune_free(c);
    fx_close(&f);
}

static void expect_meta(const dr_model *m, const char *key, const char *fmt, double v) {
    char want[64];
    snprintf(want, sizeof want, fmt, v);
    assert_string_equal(dr_model_meta(m, key), want);
}

/* The best is the highest validation NDCG@10 of every trial (the first on a tie), its model
 * scores exactly that, and the checkpoint's metadata records its settings and figures. */
static void test_best_and_checkpoint(void **state) {
    (void)state;
    fx f;
    fx_open(&f, 4, 200, 120, 5000);
    dr_tune_params p = quick("mf,itemknn,pop", 10, 1);
    dr_tune *t = run(&f, &p);
    const dr_tune_trial *best = dr_tune_best(t), *bt = dr_tune_best_trained(t);
    assert_non_null(best);
    assert_non_null(bt);
    for (size_t k = 0; k < dr_tune_n_trials(t); k++) {
        const dr_tune_trial *x = dr_tune_trial_at(t, k);
        assert_int_equal(x->status, DR_OK);
        assert_int_equal(x->valid.n_users, dr_split_n_valid_users(f.sp));
        assert_true(x->valid.full10.ndcg <= best->valid.full10.ndcg);
        if (x->trained) assert_true(x->valid.full10.ndcg <= bt->valid.full10.ndcg);
        if (x == best) break; /* nothing before the best ties it */
        assert_true(x->valid.full10.ndcg < best->valid.full10.ndcg);
    }
    dr_eval_params ep = dr_eval_default_params();
    ep.which = 1;
    ep.threads = 1;
    dr_eval_result r;
    assert_ok(dr_eval_split(f.ds, f.sp, dr_tune_best_model(t), &ep, &r, &e_));
    assert_memory_equal(&r.full10, &best->valid.full10, sizeof r.full10);

    dr_model *m = save_load(&f, t);
    assert_string_equal(dr_model_name(m), best->model);
    char set[512];
    dr_tune_settings_text(best, set, sizeof set);
    assert_string_equal(dr_model_meta(m, "tune.settings"), set[0] ? set : "defaults");
    expect_meta(m, "tune.valid_ndcg10", "%.6f", best->valid.full10.ndcg);
    expect_meta(m, "tune.valid_hit10", "%.6f", best->valid.full10.hit);
    expect_meta(m, "tune.valid_users", "%.0f", best->valid.n_users);
    expect_meta(m, "tune.epochs", "%.0f", best->epochs);
    expect_meta(m, "tune.pop_ndcg10", "%.6f", dr_tune_trial_at(t, 0)->valid.full10.ndcg);
    expect_meta(m, "tune.itemknn_ndcg10", "%.6f", dr_tune_trial_at(t, 1)->valid.full10.ndcg);
    assert_string_equal(dr_model_meta(m, "tune.baseline_won"), best->trained ? "no" : "yes");
    assert_string_equal(dr_model_meta(m, "tune.trials"), "10");
    assert_string_equal(dr_model_meta(m, "split"), "loo");
    assert_ok(dr_eval_split(f.ds, f.sp, m, &ep, &r, &e_)); /* as the trial ranked them */
    assert_memory_equal(&r.full10, &best->valid.full10, sizeof r.full10);
    dr_model_free(m);
    dr_tune_free(t);
    fx_close(&f);
}

/* Successive halving with eta 3 on one kind: three candidates at rung 0, then the best of
 * them trains on to rung 1 from its rung-0 model (epochs 20 -> 60). */
static void test_promotion(void **state) {
    (void)state;
    fx f;
    fx_open(&f, 5, 200, 120, 5000);
    dr_tune_params p = quick("mf", 4, 1);
    dr_tune *t = run(&f, &p);
    const dr_tune_trial *r0[3];
    size_t top = 0;
    for (size_t k = 0; k < 3; k++) {
        r0[k] = dr_tune_trial_at(t, DR_BASELINES + k);
        assert_int_equal(r0[k]->rung, 0);
        assert_int_equal(r0[k]->candidate, k + 1);
        assert_int_equal(r0[k]->epochs, 20);
        if (r0[k]->valid.full10.ndcg > r0[top]->valid.full10.ndcg) top = k;
    }
    const dr_tune_trial *up = dr_tune_trial_at(t, DR_BASELINES + 3);
    assert_int_equal(up->rung, 1);
    assert_int_equal(up->epochs, 60);
    assert_int_equal(up->candidate, r0[top]->candidate);
    assert_memory_equal(up->settings, r0[top]->settings, sizeof up->settings);
    const uint32_t want = r0[top]->candidate;
    dr_tune_free(t);
    p.keep = 1; /* one waiting model per rung still promotes the best one */
    t = run(&f, &p);
    assert_int_equal(dr_tune_trial_at(t, DR_BASELINES + 3)->candidate, want);
    dr_tune_free(t);
    fx_close(&f);
}

/* A promotion continues from the rung's model fitted in memory (matched row for row): with a
 * vanishing learning rate, one more epoch ends where that model was, for both trained kinds. */
static void test_continuation(void **state) {
    (void)state;
    fx f;
    fx_open(&f, 12, 150, 100, 3000);
    const char *kinds[] = {"mf", "sasrec"};
    for (size_t k = 0; k < 2; k++) {
        dr_model_params mp = quick(NULL, 1, 1).base;
        mp.name = kinds[k];
        mp.epochs = 3;
        mp.eval_every = UINT32_MAX;
        dr_model *a = NULL, *b = NULL;
        assert_ok(dr_model_fit(f.ds, f.sp, &mp, &a, &e_));
        mp.init = a;
        mp.epochs = 1;
        mp.seed = 43;
        mp.lr = 1e-12f;
        assert_ok(dr_model_fit(f.ds, f.sp, &mp, &b, &e_));
        const uint32_t d = dr_model_latent_dim(a);
        assert_int_equal(d, dr_model_latent_dim(b));
        const float *x = dr_model_item_latents(a), *y = dr_model_item_latents(b);
        double diff = 0, norm = 0;
        for (size_t i = 0; i < (size_t)dr_model_n_items(a) * d; i++) {
            diff += fabs((double)x[i] - y[i]);
            norm += fabs((double)x[i]);
        }
        if (!(norm > 0 && diff < 1e-6 * norm)) fail_msg("%s: |diff| %g of |init| %g", kinds[k], diff, norm);
        dr_model_free(b);
        dr_model_free(a);
    }
    fx_close(&f);
}

/* A trained kind that loses (one epoch of SASRec at a tiny learning rate) leaves the best to
 * a baseline: that is the model written, and the best trained trial is still reported. */
static void test_baseline_wins(void **state) {
    (void)state;
    fx f;
    fx_open(&f, 6, 200, 120, 5000);
    dr_tune_params p = quick("sasrec", 2, 1);
    p.base.epochs = 1; /* fixed: one rung of one epoch */
    p.base.lr = 1e-5f;
    dr_tune *t = run(&f, &p);
    const dr_tune_trial *best = dr_tune_best(t), *bt = dr_tune_best_trained(t);
    assert_false(best->trained);
    assert_true(best->baseline);
    assert_non_null(bt);
    assert_string_equal(bt->model, "sasrec");
    assert_int_equal(bt->epochs, 1);
    assert_true(bt->valid.full10.ndcg < best->valid.full10.ndcg);
    assert_string_equal(bt->settings[bt->n_settings - 1].name, "lr");
    assert_string_equal(bt->settings[bt->n_settings - 1].value, "1e-05");
    assert_string_equal(dr_model_name(dr_tune_best_model(t)), best->model);
    dr_model *m = save_load(&f, t);
    assert_string_equal(dr_model_name(m), best->model);
    assert_string_equal(dr_model_meta(m, "tune.baseline_won"), "yes");
    dr_model_free(m);
    dr_tune_free(t);
    fx_close(&f);
}

/* Runs p and checks it ran n search trials and stopped for `why`. */
static dr_tune *run_expect(const fx *f, const dr_tune_params *p, size_t n, const char *why) {
    dr_tune *t = run(f, p);
    assert_int_equal(dr_tune_n_trials(t), DR_BASELINES + n);
    assert_string_equal(dr_tune_stopped(t), why);
    return t;
}

/* Settings the base parameters give are fixed; --epochs makes one rung. Pop alone has nothing
 * to draw, itemknn its values but the baseline's; a spent budget leaves the baselines. */
static void test_fixed_and_exhausted(void **state) {
    (void)state;
    fx f;
    fx_open(&f, 7, 150, 100, 3000);
    dr_tune_params p = quick("mf", 5, 1);
    p.base.dim = 16;
    p.base.epochs = 7;
    dr_tune *t = run_expect(&f, &p, 5, "trials");
    for (size_t k = DR_BASELINES; k < dr_tune_n_trials(t); k++) {
        const dr_tune_trial *x = dr_tune_trial_at(t, k);
        assert_int_equal(x->rung, 0); /* one rung: nothing is promoted */
        assert_int_equal(x->epochs, 7);
        assert_string_equal(x->settings[0].name, "dim");
        assert_string_equal(x->settings[0].value, "16");
    }
    dr_tune_free(t);
    p = quick("pop", 5, 1);
    t = run_expect(&f, &p, 0, "exhausted");
    assert_null(dr_tune_best_trained(t));
    dr_tune_free(t);
    p = quick("itemknn", 50, 1);
    t = run_expect(&f, &p, 5, "exhausted");
    for (size_t k = DR_BASELINES; k < dr_tune_n_trials(t); k++)
        assert_string_not_equal(dr_tune_trial_at(t, k)->settings[0].value, "5");
    dr_tune_free(t);
    p = quick(NULL, 0, 1);
    p.budget_seconds = 1e-9;
    t = run_expect(&f, &p, 0, "budget");
    assert_non_null(strstr(dr_tune_stop_detail(t), "spent"));
    dr_tune_free(t);
    fx_close(&f);
}

/* A learning rate that diverges is a failed trial (DR_RANGE with its message) and the search
 * goes on; a failed candidate is never promoted nor best. */
static void test_diverged(void **state) {
    (void)state;
    fx f;
    fx_open(&f, 8, 150, 100, 3000);
    dr_tune_params p = quick("mf", 4, 1);
    p.base.lr = 100;
    dr_tune *t = run_expect(&f, &p, 4, "trials");
    for (size_t k = DR_BASELINES; k < dr_tune_n_trials(t); k++) {
        const dr_tune_trial *x = dr_tune_trial_at(t, k);
        assert_int_equal(x->status, DR_RANGE);
        assert_non_null(strstr(x->error, "diverged"));
        assert_int_equal(x->rung, 0);
    }
    assert_true(dr_tune_best(t)->baseline);
    assert_null(dr_tune_best_trained(t));
    dr_tune_free(t);
    fx_close(&f);
}

static void expect_arg(const dr_dataset *ds, const dr_split *sp, const dr_tune_params *p,
                       const char *needle) {
    dr_tune *t = (dr_tune *)1;
    dr_error e = {0};
    assert_int_equal(dr_tune_run(ds, sp, p, &t, &e), DR_ARG);
    assert_null(t);
    if (!strstr(e.msg, needle)) fail_msg("'%s' does not say '%s'", e.msg, needle);
}

static void test_bad_input(void **state) {
    (void)state;
    fx f;
    fx_open(&f, 9, 100, 80, 2000);
    dr_split *t0 = NULL; /* a split at the P-STREAM cut without validation targets */
    dr_dataset_stats st;
    assert_ok(dr_dataset_get_stats(f.ds, &st));
    assert_ok(dr__split_t0_at(f.ds, st.t0, 0, &t0, &e_));
    dr_tune_params p = quick("mf,knn", 3, 1);
    expect_arg(f.ds, f.sp, &p, "unknown model 'knn'");
    p.models = "mf,,pop";
    expect_arg(f.ds, f.sp, &p, "bad model list");
    p.models = "mf,mf";
    expect_arg(f.ds, f.sp, &p, "listed twice");
    p = quick(NULL, 0, 1);
    expect_arg(f.ds, f.sp, &p, "budget");
    p = quick(NULL, 3, 1);
    p.eta = 1;
    expect_arg(f.ds, f.sp, &p, "eta");
    p = quick(NULL, 3, 1);
    expect_arg(f.ds, t0, &p, "no validation targets");
    dr_split_free(t0);
    fx_close(&f);
}

/* dr_eval_baselines is pop and itemknn at their defaults through dr_eval_split. */
static void test_eval_baselines(void **state) {
    (void)state;
    fx f;
    fx_open(&f, 10, 150, 100, 3000);
    dr_eval_params ep = dr_eval_default_params();
    ep.which = 1;
    ep.threads = 1;
    dr_eval_result b[DR_BASELINES];
    assert_ok(dr_eval_baselines(f.ds, f.sp, &ep, b, &e_));
    for (size_t k = 0; k < DR_BASELINES; k++) {
        dr_model_params mp = dr_model_default_params();
        mp.name = dr_baseline_name(k);
        mp.threads = 1;
        dr_model *m = NULL;
        dr_eval_result r;
        assert_ok(dr_model_fit(f.ds, f.sp, &mp, &m, &e_));
        assert_ok(dr_eval_split(f.ds, f.sp, m, &ep, &r, &e_));
        assert_memory_equal(&r.full10, &b[k].full10, sizeof r.full10);
        assert_memory_equal(&r.samp20, &b[k].samp20, sizeof r.samp20);
        dr_model_free(m);
    }
    assert_null(dr_baseline_name(DR_BASELINES));
    fx_close(&f);
}

/* ---- out of memory: the search (promotions and dropped models included) and its checkpoint */

typedef struct tune_oom {
    const dr_dataset *ds;
    const dr_split *sp;
    dr_tune_params p;
    dr_tune *t;
    const char *path;
    dr_eval_result b[DR_BASELINES];
} tune_oom;

static dr_status oom_run(void *ud, dr_error *err) {
    tune_oom *u = ud;
    return dr_tune_run(u->ds, u->sp, &u->p, &u->t, err);
}

static dr_status oom_save(void *ud, dr_error *err) {
    tune_oom *u = ud;
    return dr_tune_save(u->t, u->ds, u->sp, u->path, err);
}

static dr_status oom_baselines(void *ud, dr_error *err) {
    tune_oom *u = ud;
    dr_eval_params ep = dr_eval_default_params();
    ep.threads = 1;
    return dr_eval_baselines(u->ds, u->sp, &ep, u->b, err);
}

DR_OOM_FREE_FN(oom_free, tune_oom, t, dr_tune_free)

static void test_out_of_memory(void **state) {
    (void)state;
    fx f;
    fx_open(&f, 11, 30, 20, 400);
    tune_oom u = {.ds = f.ds, .sp = f.sp, .p = quick("mf,itemknn,pop", 6, 1), .path = f.path};
    u.p.base.dim = 4;
    u.p.keep = 1; /* the dropped-model path too */
    dr_oom_case c = {.name = "dr_tune_run", .call = oom_run, .cleanup = oom_free, .ud = &u,
                     .out = (void **)&u.t};
    assert_true(dr_oom_check(&c) > 0);
    u.t = run(&f, &u.p);
    c = (dr_oom_case){.name = "dr_tune_save", .call = oom_save, .ud = &u};
    assert_true(dr_oom_check(&c) > 0);
    c = (dr_oom_case){.name = "dr_eval_baselines", .call = oom_baselines, .ud = &u};
    assert_true(dr_oom_check(&c) > 0);
    dr_tune_free(u.t);
    fx_close(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_best_and_checkpoint),
        cmocka_unit_test(test_promotion),
        cmocka_unit_test(test_continuation),
        cmocka_unit_test(test_baseline_wins),
        cmocka_unit_test(test_fixed_and_exhausted),
        cmocka_unit_test(test_diverged),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_eval_baselines),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
