/* test_mf.c - BPR-MF (src/model_mf.c): gradient check against finite differences, planted
 * structure beats popularity, determinism, checkpoint round trip, fold-in, OOM, warm start
 * from a checkpoint (rows matched by external id; a retrain on 10% new events). */
#include "testutil.h"
#include "oom.h"
#include "warm_fixture.h"

#include <math.h>

#include "dataset.h"
#include "ckpt.h"
#include "model_mf.h"
#include "model.h"
#include "rng.h"

/* ---------------------------------------------------------------- gradient check */

/* The BPR loss in double, written independently of model_mf.c. */
static double loss_d(uint32_t d, const double *pu, const double *qi, const double *qj, double bi,
                     double bj, double l2) {
    double x = bi - bj, reg = bi * bi + bj * bj;
    for (uint32_t k = 0; k < d; k++) {
        x += pu[k] * (qi[k] - qj[k]);
        reg += pu[k] * pu[k] + qi[k] * qi[k] + qj[k] * qj[k];
    }
    return -log(1.0 / (1.0 + exp(-x))) + 0.5 * l2 * reg;
}

static void test_gradient(void **state) {
    (void)state;
    enum { D = 8, NP = 3 * D + 2 };
    dr_rng r;
    dr__rng_seed(&r, 7, 0);
    const double scales[] = {0.1, 0.5, 1.5}; /* |x| small to large, both sigmoid branches */
    for (int trial = 0; trial < 30; trial++) {
        double th[NP];  /* pu | qi | qj | bi | bj */
        float f[NP], g[NP];
        double sc = scales[trial % 3];
        for (int k = 0; k < NP; k++) {
            f[k] = (float)(dr__rng_normal(&r) * sc);
            th[k] = f[k];
        }
        float l2 = trial % 2 ? 0.05f : 0.0f;
        float loss = dr__mf_bpr_grad(D, f, f + D, f + 2 * D, f[3 * D], f[3 * D + 1], l2, g,
                                    g + D, g + 2 * D, &g[3 * D], &g[3 * D + 1]);
        double l0 = loss_d(D, th, th + D, th + 2 * D, th[3 * D], th[3 * D + 1], l2);
        assert_true(fabs(loss - l0) <= 1e-4 * (1 + fabs(l0)));
        for (int k = 0; k < NP; k++) {
            const double h = 1e-5;
            double save = th[k];
            th[k] = save + h;
            double lp = loss_d(D, th, th + D, th + 2 * D, th[3 * D], th[3 * D + 1], l2);
            th[k] = save - h;
            double lm = loss_d(D, th, th + D, th + 2 * D, th[3 * D], th[3 * D + 1], l2);
            th[k] = save;
            double num = (lp - lm) / (2 * h);
            if (fabs(num - g[k]) > 1e-4 + 1e-3 * fabs(num))
                fail_msg("trial %d param %d: analytic %.7f numeric %.7f", trial, k, (double)g[k],
                         num);
        }
    }
}

/* ---------------------------------------------------------------- planted data */

/* n_groups taste groups of items_per_group items; each user takes len items, ~90% from its
 * own group (popular ones more often), the rest anywhere. Item popularity is skewed across
 * groups so that popularity alone is a meaningful but beatable baseline. */
static dr_dataset *planted(uint64_t seed, uint32_t n_users, uint32_t n_groups,
                           uint32_t items_per_group, uint32_t len) {
    dr_builder *b = NULL;
    dr_dataset *ds = NULL;
    dr_rng r;
    dr__rng_seed(&r, seed, 0);
    assert_int_equal(dr__builder_create(&b), DR_OK);
    uint32_t n_items = n_groups * items_per_group;
    int64_t t = 0;
    uint8_t *taken = malloc(n_items);
    for (uint32_t u = 0; u < n_users; u++) {
        /* bigger groups (low ids) have more users */
        uint32_t a = (uint32_t)dr__rng_below(&r, n_groups), c = (uint32_t)dr__rng_below(&r, n_groups);
        uint32_t grp = DR_MIN(a, c);
        memset(taken, 0, n_items);
        char us[16];
        snprintf(us, sizeof us, "u%u", u);
        for (uint32_t k = 0; k < len; k++) {
            uint32_t it;
            do {
                if (dr__rng_uniform(&r) < 0.9) {
                    uint32_t x = (uint32_t)dr__rng_below(&r, items_per_group),
                             y = (uint32_t)dr__rng_below(&r, items_per_group);
                    it = grp * items_per_group + DR_MIN(x, y);
                } else {
                    it = (uint32_t)dr__rng_below(&r, n_items);
                }
            } while (taken[it]);
            taken[it] = 1;
            char is[16];
            snprintf(is, sizeof is, "i%u", it);
            assert_int_equal(dr__builder_add_event(b, us, strlen(us), is, strlen(is), t++, 1.0f,
                                                  DR_TAG_NONE),
                             DR_OK);
        }
    }
    free(taken);
    dr_error err = {0};
    assert_int_equal(dr__builder_finish(b, &ds, &err), DR_OK);
    dr__builder_free(b);
    return ds;
}

typedef struct fx {
    dr_dataset *ds;
    dr_split *sp;
} fx;

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    f->ds = planted(11, 300, 8, 25, 14);
    dr_error err = {0};
    if (dr_split_create(f->ds, DR_SPLIT_LOO, &f->sp, &err) != DR_OK) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    dr_split_free(f->sp);
    dr_dataset_free(f->ds);
    free(f);
    return 0;
}

static dr_mf_params small_params(void) {
    dr_mf_params p = dr__mf_default_params();
    p.d = 16;
    p.epochs = 40;
    p.lr = 0.05f;
    p.l2 = 0.01f;
    p.threads = 1;
    p.eval_every = 0;
    return p;
}

static dr_eval_result eval_model(const fx *f, const dr_model *m) {
    dr_eval_params ep = dr_eval_default_params();
    ep.threads = 1;
    dr_eval_result r;
    assert_ok(dr_eval_split(f->ds, f->sp, m, &ep, &r, &e_));
    return r;
}

static void test_beats_pop(void **state) {
    fx *f = *state;
    dr_model *pop = NULL, *mf = NULL, *adam = NULL;
    dr_model_params mp = dr_model_default_params();
    mp.name = "pop";
    mp.threads = 1;
    assert_ok(dr_model_fit(f->ds, f->sp, &mp, &pop, &e_));
    dr_mf_params p = small_params();
    assert_ok(dr__mf_fit(f->ds, f->sp, &p, &mf, &e_));
    p.optimizer = DR_MF_ADAM;
    p.lr = 0.01f;
    assert_ok(dr__mf_fit(f->ds, f->sp, &p, &adam, &e_));
    dr_eval_result rp = eval_model(f, pop), rm = eval_model(f, mf), ra = eval_model(f, adam);
    fprintf(stderr, "planted P-LOO full NDCG@10: pop %.4f  mf-sgd %.4f  mf-adam %.4f (Hit@10 %.4f "
                    "%.4f %.4f)\n",
            rp.full10.ndcg, rm.full10.ndcg, ra.full10.ndcg, rp.full10.hit, rm.full10.hit,
            ra.full10.hit);
    assert_true(rm.full10.ndcg > 1.3 * rp.full10.ndcg);
    assert_true(rm.full10.hit > rp.full10.hit);
    assert_true(ra.full10.ndcg > 1.3 * rp.full10.ndcg);
    const dr_mf_report *rep = dr__mf_get_report(mf);
    assert_non_null(rep);
    assert_int_equal(rep->epochs_run, 40);
    assert_true(rep->last_loss < 0.5); /* log 2 = 0.693 at the start */
    assert_null(dr__mf_get_report(pop));
    dr_model_free(pop);
    dr_model_free(mf);
    dr_model_free(adam);
}

static void test_deterministic(void **state) {
    fx *f = *state;
    dr_mf_params p = small_params();
    p.epochs = 5;
    dr_model *a = NULL, *b = NULL, *c = NULL;
    assert_ok(dr__mf_fit(f->ds, f->sp, &p, &a, &e_));
    assert_ok(dr__mf_fit(f->ds, f->sp, &p, &b, &e_));
    p.seed = 43;
    assert_ok(dr__mf_fit(f->ds, f->sp, &p, &c, &e_));
    dr_mf_view va, vb, vc;
    assert_ok(dr__mf_get_view(a, &va, &e_));
    assert_ok(dr__mf_get_view(b, &vb, &e_));
    assert_ok(dr__mf_get_view(c, &vc, &e_));
    size_t nq = (size_t)va.n_items * va.d;
    assert_memory_equal(va.item, vb.item, nq * sizeof(float));
    assert_memory_equal(va.user, vb.user, (size_t)va.n_users * va.d * sizeof(float));
    assert_memory_equal(va.item_bias, vb.item_bias, va.n_items * sizeof(float));
    assert_true(memcmp(va.item, vc.item, nq * sizeof(float)) != 0);
    dr_model_free(a);
    dr_model_free(b);
    dr_model_free(c);
}

static void test_early_stopping(void **state) {
    fx *f = *state;
    dr_mf_params p = small_params();
    p.epochs = 60;
    p.eval_every = 2;
    p.patience = 3;
    dr_model *m = NULL;
    assert_ok(dr__mf_fit(f->ds, f->sp, &p, &m, &e_));
    const dr_mf_report *rep = dr__mf_get_report(m);
    assert_true(rep->best_epoch >= 2 && rep->best_epoch <= rep->epochs_run);
    assert_true(rep->best_valid_ndcg10 > 0);
    /* the kept factors are the best epoch's: validation NDCG@10 reproduces */
    dr_eval_params ep = dr_eval_default_params();
    ep.which = 1;
    ep.threads = 1;
    dr_eval_result r;
    assert_ok(dr_eval_split(f->ds, f->sp, m, &ep, &r, &e_));
    assert_true(fabs(r.full10.ndcg - rep->best_valid_ndcg10) < 1e-12);
    dr_model_free(m);
}

static void test_save_load(void **state) {
    fx *f = *state;
    dr_mf_params p = small_params();
    p.epochs = 3;
    dr_model *m = NULL, *l = NULL;
    assert_ok(dr__mf_fit(f->ds, f->sp, &p, &m, &e_));
    char dir[256], path[300];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/mf.drm", dir);
    assert_ok(dr__mf_save(m, path, &e_));
    assert_ok(dr__mf_load(path, &l, &e_));
    assert_string_equal(dr_model_name(l), "mf");
    dr_mf_view a, b;
    assert_ok(dr__mf_get_view(m, &a, &e_));
    assert_ok(dr__mf_get_view(l, &b, &e_));
    assert_int_equal(a.n_users, b.n_users);
    assert_int_equal(a.n_items, b.n_items);
    assert_int_equal(a.d, b.d);
    assert_int_equal(((uintptr_t)b.item) % 64, 0);
    assert_memory_equal(a.user, b.user, (size_t)a.n_users * a.d * sizeof(float));
    assert_memory_equal(a.item, b.item, (size_t)a.n_items * a.d * sizeof(float));
    assert_memory_equal(a.item_bias, b.item_bias, a.n_items * sizeof(float));
    /* same scores through the interface, and the same evaluation */
    dr_scorer *sa = NULL, *sb = NULL;
    assert_ok(dr_scorer_create(m, &sa, &e_));
    assert_ok(dr_scorer_create(l, &sb, &e_));
    float *x = malloc(a.n_items * sizeof(float)), *y = malloc(a.n_items * sizeof(float));
    for (uint32_t u = 0; u < a.n_users; u += 37) {
        assert_ok(dr_model_score(m, sa, u, NULL, 0, x, &e_));
        assert_ok(dr_model_score(l, sb, u, NULL, 0, y, &e_));
        assert_memory_equal(x, y, a.n_items * sizeof(float));
    }
    dr_eval_result r1 = eval_model(f, m), r2 = eval_model(f, l);
    assert_true(r1.full10.ndcg == r2.full10.ndcg);
    /* metadata */
    dr_ckpt *c = NULL;
    assert_ok(dr__ckpt_open(path, &c, &e_));
    assert_string_equal(dr__ckpt_meta(c, "model"), "mf");
    assert_string_equal(dr__ckpt_meta(c, "d"), "16");
    assert_string_equal(dr__ckpt_meta(c, "optimizer"), "sgd");
    assert_string_equal(dr__ckpt_meta(c, "split"), "loo");
    assert_null(dr__ckpt_meta(c, "T0"));
    dr__ckpt_close(c);
    /* a loaded model saves again to the same bytes */
    char path2[300];
    snprintf(path2, sizeof path2, "%s/mf2.drm", dir);
    assert_ok(dr__mf_save(l, path2, &e_));
    char *b1 = NULL, *b2 = NULL;
    size_t n1, n2;
    assert_ok(dr__read_file(path, 1 << 26, &b1, &n1, &e_));
    assert_ok(dr__read_file(path2, 1 << 26, &b2, &n2, &e_));
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    dr__free(b1);
    dr__free(b2);
    /* wrong kind and corrupted file */
    dr_error e = {0};
    dr_model *bad = NULL;
    dr_ckpt_writer *w = NULL;
    float z[4] = {0};
    uint64_t sh[2] = {2, 2};
    snprintf(path2, sizeof path2, "%s/other.drm", dir);
    assert_ok(dr__ckpt_writer_create(&w, &e_));
    assert_ok(dr__ckpt_add(w, "item", DR_DT_F32, 2, sh, z, &e_));
    assert_ok(dr__ckpt_add_meta(w, "model", "sasrec", &e_));
    assert_ok(dr__ckpt_write(w, path2, &e_));
    dr__ckpt_writer_free(w);
    assert_int_equal(dr__mf_load(path2, &bad, &e), DR_FORMAT);
    assert_non_null(strstr(e.msg, "not an mf checkpoint"));
    FILE *fp = fopen(path, "r+b");
    fseek(fp, 1000, SEEK_SET);
    fputc(0x55, fp);
    fclose(fp);
    assert_int_equal(dr__mf_load(path, &bad, &e), DR_FORMAT);
    assert_null(bad);
    free(x);
    free(y);
    dr_scorer_free(sa);
    dr_scorer_free(sb);
    dr_model_free(m);
    dr_model_free(l);
    dr_test_rmrf(dir);
}

static void test_fold_in(void **state) {
    fx *f = *state;
    dr_mf_params p = small_params();
    p.epochs = 2;
    dr_model *m = NULL;
    dr_scorer *sc = NULL;
    assert_ok(dr__mf_fit(f->ds, f->sp, &p, &m, &e_));
    assert_ok(dr_scorer_create(m, &sc, &e_));
    dr_mf_view v;
    assert_ok(dr__mf_get_view(m, &v, &e_));
    uint32_t ctx[3] = {1, 5, 9};
    float *s = malloc(v.n_items * sizeof(float));
    assert_ok(dr_model_score(m, sc, v.n_users + 5, ctx, 3, s, &e_));
    for (uint32_t i = 0; i < v.n_items; i++) {
        double want = v.item_bias[i];
        for (uint32_t k = 0; k < v.d; k++) {
            double h = ((double)v.item[1 * v.d + k] + v.item[5 * v.d + k] + v.item[9 * v.d + k]) / 3;
            want += h * v.item[(size_t)i * v.d + k];
        }
        assert_true(fabs(want - s[i]) < 1e-4);
    }
    /* a known user: bias + p_u . q_i */
    assert_ok(dr_model_score(m, sc, 3, NULL, 0, s, &e_));
    for (uint32_t i = 0; i < v.n_items; i++) {
        double want = v.item_bias[i];
        for (uint32_t k = 0; k < v.d; k++)
            want += (double)v.user[3 * v.d + k] * v.item[(size_t)i * v.d + k];
        assert_true(fabs(want - s[i]) < 1e-4);
    }
    free(s);
    dr_scorer_free(sc);
    dr_model_free(m);
}

/* Through the vtable, as model.c's registry calls it (default hyper-parameters, early
 * stopping on validation NDCG@10). */
static void test_vtable(void **state) {
    fx *f = *state;
    dr_model_params mp = dr_model_default_params();
    mp.seed = 5;
    mp.threads = 1;
    void *st = NULL;
    const dr_validator val = dr__validator_make(&dr_mf_vt, f->ds, f->sp);
    assert_ok(dr_mf_vt.fit(f->ds, f->sp, &mp, &val, &st, &e_));
    dr_model m = {.vt = &dr_mf_vt, .state = st, .n_items = f->ds->n_items};
    assert_string_equal(dr_model_name(&m), "mf");
    const dr_mf_report *rep = dr__mf_get_report(&m);
    assert_true(rep->best_epoch > 0 && rep->epochs_run < 300);
    dr_eval_result r = eval_model(f, &m);
    assert_true(r.full10.hit > 0.3);
    dr_mf_vt.free(st);
}

typedef struct mf_oom {
    fx *f;
    const dr_mf_params *p;
    dr_model *m;
} mf_oom;

static dr_status mf_call(void *ud, dr_error *err) {
    mf_oom *u = ud;
    return dr__mf_fit(u->f->ds, u->f->sp, u->p, &u->m, err);
}

DR_OOM_FREE_FN(mf_free, mf_oom, m, dr_model_free)

static void test_bad_args_and_oom(void **state) {
    fx *f = *state;
    dr_model *m = NULL;
    dr_error e = {0};
    dr_mf_params p = small_params();
    p.d = 0;
    assert_int_equal(dr__mf_fit(f->ds, f->sp, &p, &m, &e), DR_ARG);
    p = small_params();
    p.lr = -1;
    assert_int_equal(dr__mf_fit(f->ds, f->sp, &p, &m, &e), DR_ARG);
    p = small_params();
    p.lr = 1e6f; /* diverges */
    p.init_std = 10.0f;
    dr_status st = dr__mf_fit(f->ds, f->sp, &p, &m, &e);
    if (st != DR_OK) assert_int_equal(st, DR_RANGE);
    dr_model_free(m);
    m = NULL;
    p = small_params();
    p.epochs = 1;
    p.optimizer = DR_MF_ADAM;
    mf_oom u = {f, &p, NULL};
    dr_oom_case c = {.name = "dr__mf_fit (adam, 1 epoch)", .call = mf_call, .cleanup = mf_free,
                     .ud = &u, .out = (void **)&u.m};
    assert_true(dr_oom_check(&c) > 0);
}

/* ---------------------------------------------------------------- warm start */

static dr_dataset *warm_synth(void) {
    dr_synth_params sy = dr_synth_default_params();
    sy.seed = 3;
    sy.n_users = 400;
    sy.n_items = 300;
    sy.n_events = 16000;
    dr_dataset *ds = NULL;
    dr_error e = {0};
    if (dr_synth_generate(&sy, &ds, &e) != DR_OK) fail_msg("synth: %s", e.msg);
    return ds;
}

typedef struct warm_oom {
    const dr_dataset *ds;
    const dr_split *sp;
    const dr_model_params *mp;
    dr_model *m;
} warm_oom;

static dr_status warm_call(void *ud, dr_error *err) {
    warm_oom *u = ud;
    return dr_model_fit(u->ds, u->sp, u->mp, &u->m, err);
}

DR_OOM_FREE_FN(warm_free, warm_oom, m, dr_model_free)

/* Before the first step (0 epochs) a warm model holds, for every user and item the checkpoint
 * names, its old rows bit for bit, although the new window numbers them differently; users
 * and items it does not name get what a cold fit with the same seed draws. */
static void test_warm_rows(void **state) {
    (void)state;
    dr_dataset *full = warm_synth();
    const size_t n = full->n_events;
    dr_dataset *old = warm_window(full, 0, n * 8 / 10, 7), *now = warm_window(full, n / 10, n, 0);
    dr_split *so = NULL, *sn = NULL;
    dr_error e = {0};
    assert_int_equal(dr_split_create(old, DR_SPLIT_LOO, &so, &e), DR_OK);
    assert_int_equal(dr_split_create(now, DR_SPLIT_LOO, &sn, &e), DR_OK);
    dr_mf_params p = small_params();
    p.epochs = 5;
    dr_model *m0 = NULL, *cold = NULL, *warm = NULL, *bad = NULL;
    assert_int_equal(dr__mf_fit(old, so, &p, &m0, &e), DR_OK);
    dr_model *init = warm_reload(m0, old, so, "mf_rows");
    dr_warm_map map;
    assert_int_equal(dr__warm_map_build(init, old->n_users, now, &map, &e), DR_OK);
    p.epochs = 0;
    p.seed = 7;
    assert_int_equal(dr__mf_fit(now, sn, &p, &cold, &e), DR_OK);
    p.init = init;
    p.init_map = &map;
    assert_int_equal(dr__mf_fit(now, sn, &p, &warm, &e), DR_OK);
    dr_mf_view vi, vw, vc;
    assert_int_equal(dr__mf_get_view(init, &vi, &e), DR_OK);
    assert_int_equal(dr__mf_get_view(warm, &vw, &e), DR_OK);
    assert_int_equal(dr__mf_get_view(cold, &vc, &e), DR_OK);
    assert_int_equal(warm_check_rows(vw.user, vi.user, vc.user, p.d, &now->users, now->n_users,
                                     &old->users, old->n_users, NULL, 1),
                     map.known_users);
    assert_int_equal(warm_check_rows(vw.item, vi.item, vc.item, p.d, &now->items, now->n_items,
                                     &old->items, old->n_items, NULL, 1),
                     map.known_items);
    warm_check_rows(vw.item_bias, vi.item_bias, vc.item_bias, 1, &now->items, now->n_items,
                    &old->items, old->n_items, NULL, 0);
    /* refused, with the reason */
    p.d = 8;
    assert_int_equal(dr__mf_fit(now, sn, &p, &bad, &e), DR_ARG);
    assert_non_null(strstr(e.msg, "mf: warm start from a model of another shape (d 16)"));
    p.d = 16;
    p.init_map = NULL; /* row for row needs the same counts */
    assert_int_equal(dr__mf_fit(now, sn, &p, &bad, &e), DR_ARG);
    assert_non_null(strstr(e.msg, "row for row"));
    assert_null(bad);
    dr_model_params mp = dr_model_default_params();
    mp.name = "mf";
    mp.init = m0; /* fitted in memory: no ids to match, and other counts */
    assert_int_equal(dr_model_fit(now, sn, &mp, &bad, &e), DR_ARG);
    assert_non_null(strstr(e.msg, "without external ids"));
    /* the warm fit (its id maps included) under failing allocations */
    mp.init = init;
    mp.epochs = 1;
    mp.threads = 1;
    warm_oom u = {now, sn, &mp, NULL};
    dr_oom_case c = {.name = "dr_model_fit (mf, warm start)", .call = warm_call,
                     .cleanup = warm_free, .ud = &u, .out = (void **)&u.m};
    assert_true(dr_oom_check(&c) > 0);
    dr__warm_map_free(&map);
    dr_model_free(warm);
    dr_model_free(cold);
    dr_model_free(init);
    dr_model_free(m0);
    dr_split_free(so);
    dr_split_free(sn);
    dr_dataset_free(old);
    dr_dataset_free(now);
    dr_dataset_free(full);
}

/* A retrain on 10% new events (new users and items among them) from the old checkpoint
 * reaches the old model's validation NDCG@10 within 10 epochs, and a cold fit of as many
 * epochs does not get as far. */
static void test_warm_retrain(void **state) {
    (void)state;
    dr_dataset *full = warm_synth();
    dr_dataset *old = warm_window(full, 0, full->n_events * 9 / 10, 0);
    dr_split *so = NULL, *sn = NULL;
    dr_error e = {0};
    assert_int_equal(dr_split_create(old, DR_SPLIT_LOO, &so, &e), DR_OK);
    assert_int_equal(dr_split_create(full, DR_SPLIT_LOO, &sn, &e), DR_OK);
    dr_model_params mp = dr_model_default_params();
    mp.name = "mf";
    mp.dim = 32;
    mp.threads = 1;
    dr_model *m0 = NULL, *warm = NULL, *cold = NULL;
    assert_int_equal(dr_model_fit(old, so, &mp, &m0, &e), DR_OK);
    const double v_old = dr__mf_get_report(m0)->best_valid_ndcg10;
    dr_model *init = warm_reload(m0, old, so, "mf_retrain");
    mp.epochs = 10;
    assert_int_equal(dr_model_fit(full, sn, &mp, &cold, &e), DR_OK);
    mp.init = init;
    mp.dim = 0; /* not given: the init's */
    assert_int_equal(dr_model_fit(full, sn, &mp, &warm, &e), DR_OK);
    const double v_warm = dr__mf_get_report(warm)->best_valid_ndcg10,
                 v_cold = dr__mf_get_report(cold)->best_valid_ndcg10;
    fprintf(stderr, "warm retrain (mf, 10%% new events, 10 epochs): validation NDCG@10 warm %.4f "
            "cold %.4f, old model %.4f (%u epochs)\n", v_warm, v_cold, v_old,
            dr__mf_get_report(m0)->epochs_run);
    assert_true(v_warm >= v_old);
    assert_true(v_warm > v_cold);
    dr_model_free(cold);
    cold = NULL;
    mp.dim = 8; /* given, and not the init's */
    assert_int_equal(dr_model_fit(full, sn, &mp, &cold, &e), DR_ARG);
    assert_non_null(strstr(e.msg, "another shape"));
    dr_model_free(warm);
    dr_model_free(init);
    dr_model_free(m0);
    dr_split_free(so);
    dr_split_free(sn);
    dr_dataset_free(old);
    dr_dataset_free(full);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradient),
        cmocka_unit_test(test_beats_pop),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_early_stopping),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_fold_in),
        cmocka_unit_test(test_vtable),
        cmocka_unit_test(test_bad_args_and_oom),
        cmocka_unit_test(test_warm_rows),
        cmocka_unit_test(test_warm_retrain),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
