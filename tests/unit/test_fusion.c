/* test_fusion.c - gated fusion (src/fusion.c) and its BPR-MF integration (src/model_mf.c):
 * backward against central finite differences of an independent double forward (and a check
 * that the checker catches a wrong gradient), closed gates = id-only bit for bit, zero
 * modalities = the id-only model's bytes, standardisation over present rows only, errors that
 * name the modality, cold items carried by features (e = 0), seeded determinism with dropout,
 * the drop mask, re-fusion with features removed (gate vs mean imputation), re-attaching
 * the fusion to a model rebuilt from its view (the checkpoint path), and the warm start of a
 * fused checkpoint (e rows by external id, the fusion kept; other modalities refused). */
#include "testutil.h"

#include <math.h>

#include <unistd.h>

#include "dataset.h"
#include "ckpt.h"
#include "fusion.h"
#include "model_mf.h"
#include "model.h"
#include "rng.h"
#include "model_sasrec.h"
#include "warm_fixture.h"

/* ---------------------------------------------------------------- gradient check */

enum { GD = 5, GM = 2 };
static const uint32_t g_dim[GM] = {3, 4};

static void make_fusion(dr_fusion *f, float *w, size_t cap) {
    memset(f, 0, sizeof *f);
    f->d = GD;
    f->n_mod = GM;
    for (uint32_t m = 0; m < GM; m++) {
        f->dim[m] = g_dim[m];
        f->off[m] = f->n_params;
        f->n_params += (size_t)GD * g_dim[m] + 3 * GD + 1;
    }
    assert_true(f->n_params <= cap);
    f->w = w;
}

/* L = r . z in double, written from the formula, not from fusion.c. */
static double ref_loss(const dr_fusion *f, const double *w, const double *e,
                       const double *const *x, const float *gate, const double *r) {
    double z[GD];
    for (int k = 0; k < GD; k++) z[k] = e[k];
    for (uint32_t m = 0; m < f->n_mod; m++) {
        const double *P = w + f->off[m], *b = P + GD * f->dim[m], *u = b + GD, c = u[2 * GD];
        double y[GD], s = c;
        for (int k = 0; k < GD; k++) {
            y[k] = b[k];
            for (uint32_t j = 0; j < f->dim[m]; j++) y[k] += P[k * f->dim[m] + j] * x[m][j];
        }
        for (int k = 0; k < GD; k++) s += u[k] * e[k] + u[GD + k] * y[k];
        double g = gate[m] / (1.0 + exp(-s));
        for (int k = 0; k < GD; k++) z[k] += g * y[k];
    }
    double L = 0;
    for (int k = 0; k < GD; k++) L += r[k] * z[k];
    return L;
}

/* Largest |analytic - numeric| / (1e-3 + 1e-2 |numeric|) over w and e; <= 1 passes. */
static double grad_err(const dr_fusion *f, const float *e, const float *const *x,
                       const float *gate, const float *r, const float *dw, const float *de) {
    double wd[256], ed[GD], rd[GD], xd0[4], xd1[4];
    const double *xd[GM] = {xd0, xd1};
    for (size_t k = 0; k < f->n_params; k++) wd[k] = f->w[k];
    for (int k = 0; k < GD; k++) {
        ed[k] = e[k];
        rd[k] = r[k];
    }
    for (uint32_t j = 0; j < g_dim[0]; j++) xd0[j] = x[0][j];
    for (uint32_t j = 0; j < g_dim[1]; j++) xd1[j] = x[1][j];
    const double h = 1e-6;
    double worst = 0;
    for (size_t k = 0; k < f->n_params + GD; k++) {
        double *p = k < f->n_params ? &wd[k] : &ed[k - f->n_params];
        double an = k < f->n_params ? dw[k] : de[k - f->n_params];
        double save = *p;
        *p = save + h;
        double lp = ref_loss(f, wd, ed, xd, gate, rd);
        *p = save - h;
        double lm = ref_loss(f, wd, ed, xd, gate, rd);
        *p = save;
        double num = (lp - lm) / (2 * h);
        double err = fabs(an - num) / (1e-3 + 1e-2 * fabs(num));
        if (err > worst) worst = err;
    }
    return worst;
}

static void test_gradient(void **state) {
    (void)state;
    float w[256], e[GD], r[GD], x0[4], x1[4], z[GD], de[GD], dw[256], act[GM * (GD + 2)];
    const float *x[GM] = {x0, x1};
    dr_fusion f;
    make_fusion(&f, w, 256);
    dr_rng rng;
    dr__rng_seed(&rng, 11, 0);
    const float gates[4][GM] = {{1, 1}, {1, 0}, {0, 1}, {0, 0}};
    for (int trial = 0; trial < 24; trial++) {
        for (size_t k = 0; k < f.n_params; k++) w[k] = (float)(dr__rng_normal(&rng) * 0.7);
        for (int k = 0; k < GD; k++) {
            e[k] = (float)dr__rng_normal(&rng);
            r[k] = (float)dr__rng_normal(&rng);
        }
        for (int j = 0; j < 4; j++) {
            x0[j] = (float)dr__rng_normal(&rng);
            x1[j] = (float)dr__rng_normal(&rng);
        }
        const float *gate = gates[trial % 4];
        dr__fusion_forward(&f, e, x, gate, z, act);
        memset(dw, 0, sizeof dw);
        dr__fusion_backward(&f, e, x, act, r, de, dw);
        double err = grad_err(&f, e, x, gate, r, dw, de);
        if (err > 1.0) fail_msg("trial %d: gradient error %.3f x tolerance", trial, err);
        /* the checker must notice a wrong gradient: one entry off by 10% + 0.01 */
        size_t bad = (size_t)trial % f.n_params;
        if (gate[0] != 0.0f && gate[1] != 0.0f) {
            dw[bad] += 0.1f * dw[bad] + 0.01f;
            assert_true(grad_err(&f, e, x, gate, r, dw, de) > 1.0);
        }
    }
}

static void test_closed_gates_are_identity(void **state) {
    (void)state;
    float w[256], e[GD], x0[4], x1[4], z[GD], act[GM * (GD + 2)];
    const float *x[GM] = {x0, x1};
    const float gate[GM] = {0, 0};
    dr_fusion f;
    make_fusion(&f, w, 256);
    for (size_t k = 0; k < f.n_params; k++) w[k] = 0.3f * (float)k - 2.0f;
    for (int k = 0; k < GD; k++) e[k] = 0.1f * (float)k - 0.17f;
    for (int k = 0; k < 4; k++) x0[k] = x1[k] = 1.0f + (float)k;
    dr__fusion_forward(&f, e, x, gate, z, act);
    assert_memory_equal(z, e, sizeof e);
    dr_fusion empty = {.d = GD};
    dr__fusion_forward(&empty, e, x, gate, z, act);
    assert_memory_equal(z, e, sizeof e);
}

/* ---------------------------------------------------------------- with data */

static dr_dataset *small_synth(uint64_t seed, uint32_t vis_dim) {
    dr_synth_params p = dr_synth_default_params();
    p.seed = seed;
    p.n_users = 200;
    p.n_items = 150;
    p.n_events = 5000;
    p.mod_dim[0] = vis_dim;
    dr_dataset *ds = NULL;
    dr_error e = {0};
    if (dr_synth_generate(&p, &ds, &e) != DR_OK) fail_msg("synth: %s", e.msg);
    return ds;
}

static dr_mf_params quick_params(uint32_t mask) {
    dr_mf_params p = dr__mf_default_params();
    p.d = 8;
    p.epochs = 3;
    p.eval_every = 0;
    p.lr = 0.05f;
    p.use_modalities = mask;
    return p;
}

static void test_standardisation_present_rows(void **state) {
    (void)state;
    dr_dataset *ds = small_synth(3, 64);
    dr_error e = {0};
    dr_fusion f;
    assert_int_equal(dr__fusion_init(&f, ds, 1u, 8, 0.1f, 1, &e), DR_OK);
    assert_int_equal(f.n_mod, 1);
    const dr_modality *md = &ds->mod[0];
    size_t n_missing = 0;
    for (uint32_t i = 0; i < ds->n_items; i++) n_missing += !md->present[i];
    assert_true(n_missing > 0); /* the synthetic visual modality misses 10% */
    for (uint32_t j = 0; j < md->dim; j++) {
        double s = 0, s2 = 0;
        size_t n = 0;
        for (uint32_t i = 0; i < ds->n_items; i++) {
            if (!md->present[i]) continue;
            double v = md->x[(size_t)i * md->dim + j];
            s += v;
            s2 += v * v;
            n++;
        }
        double mu = s / (double)n, var = s2 / (double)n - mu * mu;
        assert_true(fabs(f.stats[j] - mu) <= 1e-5 * (1 + fabs(mu)));
        assert_true(fabs(f.stats[md->dim + j] - 1.0 / sqrt(var + 1e-6)) <=
                    1e-4 / sqrt(var + 1e-6));
    }
    dr_fusion_input in;
    assert_int_equal(dr__fusion_input_build(&f, ds, NULL, &in, &e), DR_OK);
    for (uint32_t i = 0; i < ds->n_items; i++) {
        assert_int_equal(in.pres[i], md->present[i]);
        if (!md->present[i])
            for (uint32_t j = 0; j < md->dim; j++)
                assert_true(in.xs[0][(size_t)i * md->dim + j] == 0.0f);
    }
    dr__fusion_input_free(&in);
    /* errors name the modality */
    dr_dataset *other = small_synth(3, 32);
    assert_int_equal(dr__fusion_input_build(&f, other, NULL, &in, &e), DR_ARG);
    assert_non_null(strstr(e.msg, "visual"));
    dr_fusion g;
    assert_int_equal(dr__fusion_init(&g, ds, 1u << 7, 8, 0.1f, 1, &e), DR_ARG);
    dr__fusion_free(&f);
    dr_dataset_free(other);
    dr_dataset_free(ds);
}

static void test_zero_modalities_is_id_only(void **state) {
    (void)state;
    dr_dataset *ds = small_synth(5, 64);
    dr_split *sp = NULL;
    dr_error e = {0};
    assert_int_equal(dr_split_create(ds, DR_SPLIT_LOO, &sp, &e), DR_OK);
    dr_mf_params p = quick_params(0);
    dr_model *a = NULL, *b = NULL;
    assert_int_equal(dr__mf_fit(ds, sp, &p, &a, &e), DR_OK);
    int n_mod = ds->n_mod; /* the same data without any modality at all */
    ds->n_mod = 0;
    assert_int_equal(dr__mf_fit(ds, sp, &p, &b, &e), DR_OK);
    ds->n_mod = n_mod;
    dr_mf_view va, vb;
    assert_int_equal(dr__mf_get_view(a, &va, &e), DR_OK);
    assert_int_equal(dr__mf_get_view(b, &vb, &e), DR_OK);
    assert_memory_equal(va.user, vb.user, (size_t)va.n_users * va.d * sizeof(float));
    assert_memory_equal(va.item, vb.item, (size_t)va.n_items * va.d * sizeof(float));
    assert_memory_equal(va.item_bias, vb.item_bias, va.n_items * sizeof(float));
    assert_null(dr__mf_get_fusion(a, NULL));
    assert_int_equal(dr__mf_refuse(a, ds, NULL, DR_IMPUTE_GATE, &e), DR_UNSUPPORTED);
    dr_model_free(a);
    dr_model_free(b);
    dr_split_free(sp);
    dr_dataset_free(ds);
}

/* Moves every event of items i % 7 == 0 to the end of the user's history and makes them the
 * test segment, so those items have no training interaction. */
static void make_cold(dr_dataset *ds, dr_split *sp) {
    uint32_t *tmp = malloc((ds->n_events + 1) * sizeof *tmp);
    sp->n_eval = 0;
    for (uint32_t u = 0; u < ds->n_users; u++) {
        size_t o = ds->user_off[u], n = ds->user_off[u + 1] - o, w = 0;
        uint32_t *h = ds->hist_item + o;
        for (size_t k = 0; k < n; k++)
            if (h[k] % 7) tmp[w++] = h[k];
        size_t nw = w;
        for (size_t k = 0; k < n; k++)
            if (h[k] % 7 == 0) tmp[w++] = h[k];
        memcpy(h, tmp, n * sizeof *h);
        sp->n_train[u] = (uint32_t)nw;
        sp->n_valid[u] = 0;
        sp->n_test[u] = nw ? (uint32_t)(n - nw) : 0;
        sp->n_eval += sp->n_test[u] > 0;
    }
    sp->kind = DR_SPLIT_GIVEN;
    free(tmp);
}

static void test_cold_items_and_refuse(void **state) {
    (void)state;
    dr_dataset *ds = small_synth(9, 64);
    dr_split *sp = NULL;
    dr_error e = {0};
    assert_int_equal(dr_split_create(ds, DR_SPLIT_LOO, &sp, &e), DR_OK);
    make_cold(ds, sp);
    const uint32_t mask = (1u << ds->n_mod) - 1;
    dr_mf_params p = quick_params(mask);
    dr_model *m = NULL, *m2 = NULL;
    assert_int_equal(dr__mf_fit(ds, sp, &p, &m, &e), DR_OK);
    const float *eid = NULL;
    const dr_fusion *f = dr__mf_get_fusion(m, &eid);
    assert_non_null(f);
    assert_int_equal(f->n_mod, (uint32_t)ds->n_mod);
    const uint8_t *cold = dr__mf_cold_items(m);
    dr_mf_view v;
    assert_int_equal(dr__mf_get_view(m, &v, &e), DR_OK);
    const uint32_t d = v.d;
    uint32_t n_cold = 0;
    for (uint32_t i = 0; i < ds->n_items; i++) {
        if (!cold[i]) continue;
        n_cold++;
        for (uint32_t k = 0; k < d; k++) assert_true(eid[(size_t)i * d + k] == 0.0f);
        assert_true(v.item_bias[i] == 0.0f);
        double nz = 0;
        for (uint32_t k = 0; k < d; k++) nz += fabs(v.item[(size_t)i * d + k]);
        assert_true(nz > 0); /* carried by its features */
    }
    assert_true(n_cold >= ds->n_items / 8);
    /* the harness reports the cold items: same count, metrics over users with cold targets,
     * features carry them above chance */
    dr_eval_params ep = dr_eval_default_params();
    ep.threads = 1;
    dr_eval_result er;
    assert_int_equal(dr_eval_split(ds, sp, m, &ep, &er, &e), DR_OK);
    assert_int_equal(er.n_cold_items, n_cold);
    assert_true(er.n_cold_users > 0 && er.n_cold_users <= er.n_users);
    assert_true(er.cold20.recall > 0.0 && er.cold20.recall <= 1.0);
    /* same seed -> same bytes, modality dropout included */
    assert_int_equal(dr__mf_fit(ds, sp, &p, &m2, &e), DR_OK);
    dr_mf_view v2;
    assert_int_equal(dr__mf_get_view(m2, &v2, &e), DR_OK);
    assert_memory_equal(v.item, v2.item, (size_t)v.n_items * d * sizeof(float));
    assert_memory_equal(v.user, v2.user, (size_t)v.n_users * d * sizeof(float));
    dr_model_free(m2);

    /* every feature removed: gate -> exactly e; mean imputation -> not e */
    float *before = malloc((size_t)v.n_items * d * sizeof *before);
    memcpy(before, v.item, (size_t)v.n_items * d * sizeof *before);
    uint8_t *over = calloc((size_t)f->n_mod * ds->n_items, 1);
    assert_int_equal(dr__mf_refuse(m, ds, over, DR_IMPUTE_GATE, &e), DR_OK);
    assert_memory_equal(v.item, eid, (size_t)v.n_items * d * sizeof(float));
    assert_int_equal(dr__mf_refuse(m, ds, over, DR_IMPUTE_MEAN, &e), DR_OK);
    assert_memory_not_equal(v.item, eid, (size_t)v.n_items * d * sizeof(float));
    /* restore: no override, the training mode */
    assert_int_equal(dr__mf_refuse(m, ds, NULL, DR_IMPUTE_GATE, &e), DR_OK);
    assert_memory_equal(v.item, before, (size_t)v.n_items * d * sizeof(float));
    /* a model rebuilt from its view (as after loading a checkpoint) + attached fusion re-fuses
     * to the same bytes */
    dr_model *vm = NULL;
    assert_int_equal(dr__mf_from_view(&v, &vm, &e), DR_OK);
    assert_int_equal(dr__mf_attach_fusion(vm, f, eid, DR_IMPUTE_GATE, &e), DR_OK);
    assert_int_equal(dr__mf_attach_fusion(vm, f, eid, DR_IMPUTE_GATE, &e), DR_ARG);
    assert_int_equal(dr__mf_refuse(vm, ds, over, DR_IMPUTE_MEAN, &e), DR_OK);
    assert_int_equal(dr__mf_refuse(m, ds, over, DR_IMPUTE_MEAN, &e), DR_OK);
    dr_mf_view vv;
    assert_int_equal(dr__mf_get_view(vm, &vv, &e), DR_OK);
    assert_memory_equal(vv.item, v.item, (size_t)v.n_items * d * sizeof(float));
    dr_model_free(vm);
    /* a dataset with another catalogue is refused */
    dr_dataset *other = small_synth(9, 32);
    assert_int_equal(dr__mf_refuse(m, other, NULL, DR_IMPUTE_GATE, &e), DR_ARG);
    assert_non_null(strstr(e.msg, "visual"));
    free(over);
    free(before);
    dr_dataset_free(other);
    dr_model_free(m);
    dr_split_free(sp);
    dr_dataset_free(ds);
}

static void test_drop_mask(void **state) {
    (void)state;
    enum { N = 101 };
    uint8_t a[2 * N], b[2 * N];
    dr_error e = {0};
    assert_int_equal(dr__fusion_drop_mask(2, N, 1, 0.5, 42, a, &e), DR_OK);
    assert_int_equal(dr__fusion_drop_mask(2, N, 1, 0.5, 42, b, &e), DR_OK);
    assert_memory_equal(a, b, sizeof a);
    size_t z0 = 0, z1 = 0;
    for (int i = 0; i < N; i++) {
        z0 += !a[i];
        z1 += !a[N + i];
    }
    assert_int_equal(z0, 0);
    assert_int_equal(z1, 51); /* round(0.5 * 101) */
    assert_int_equal(dr__fusion_drop_mask(2, N, 0, 1.0, 42, a, &e), DR_OK);
    for (int i = 0; i < N; i++) assert_int_equal(a[i], 0);
    assert_int_equal(dr__fusion_drop_mask(2, N, 2, 0.5, 42, a, &e), DR_ARG);
    assert_int_equal(dr__fusion_drop_mask(2, N, 0, 1.5, 42, a, &e), DR_ARG);
    dr_impute im;
    assert_int_equal(dr__impute_parse("mean", &im, &e), DR_OK);
    assert_int_equal(im, DR_IMPUTE_MEAN);
    assert_int_equal(dr__impute_parse("zero", &im, &e), DR_ARG);
}

/* ---------------------------------------------------------------- checkpoints and P-MODAL */

/* Copies checkpoint src to dst, leaving out section `drop`, shortening section `shrink` by one
 * element (first dimension), and setting metadata key to value (NULL: unchanged). */
static void rewrite(const char *src, const char *dst, const char *drop, const char *shrink,
                    const char *key, const char *value) {
    dr_ckpt *c = NULL;
    dr_ckpt_writer *w = NULL;
    dr_error e = {0};
    assert_int_equal(dr__ckpt_open(src, &c, &e), DR_OK);
    assert_int_equal(dr__ckpt_writer_create(&w, &e), DR_OK);
    for (size_t k = 0; k < dr__ckpt_n_meta(c); k++) {
        const char *mk, *mv;
        dr__ckpt_meta_at(c, k, &mk, &mv);
        if (key && strcmp(mk, key) == 0) mv = value;
        assert_int_equal(dr__ckpt_add_meta(w, mk, mv, &e), DR_OK);
    }
    for (uint32_t k = 0; k < dr__ckpt_n_sections(c); k++) {
        const dr_ckpt_section *sec = dr__ckpt_section_at(c, k);
        if (sec->name[0] == '.' || (drop && strcmp(sec->name, drop) == 0)) continue;
        uint64_t shape[DR_CKPT_MAX_RANK];
        memcpy(shape, sec->shape, sizeof shape);
        if (shrink && strcmp(sec->name, shrink) == 0) shape[0]--;
        assert_int_equal(dr__ckpt_add(w, sec->name, (dr_dtype)sec->dtype, sec->rank, shape,
                                     sec->data, &e), DR_OK);
    }
    assert_int_equal(dr__ckpt_write(w, dst, &e), DR_OK);
    dr__ckpt_writer_free(w);
    dr__ckpt_close(c);
}

static void test_checkpoint_and_modal(void **state) {
    (void)state;
    dr_dataset *ds = small_synth(11, 16);
    dr_split *sp = NULL;
    dr_error e = {0};
    assert_int_equal(dr_split_create(ds, DR_SPLIT_LOO, &sp, &e), DR_OK);
    dr_mf_params p = quick_params((1u << ds->n_mod) - 1);
    dr_model *m = NULL, *l = NULL;
    assert_int_equal(dr__mf_fit(ds, sp, &p, &m, &e), DR_OK);
    char dir[] = "/tmp/dr_test_fusion_XXXXXX", path[128], bad[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/m.drm", dir);
    snprintf(bad, sizeof bad, "%s/bad.drm", dir);
    assert_int_equal(dr_model_save(m, ds, sp, path, &e), DR_OK);
    assert_int_equal(dr_model_load(path, &l, &e), DR_OK);
    const float *e1 = NULL, *e2 = NULL;
    const dr_fusion *f1 = dr__mf_get_fusion(m, &e1), *f2 = dr__mf_get_fusion(l, &e2);
    assert_non_null(f2);
    assert_int_equal(f2->n_mod, f1->n_mod);
    assert_int_equal(f2->n_params, f1->n_params);
    assert_memory_equal(f2->w, f1->w, f1->n_params * sizeof(float));
    assert_memory_equal(f2->stats, f1->stats, f1->n_stats * sizeof(float));
    assert_memory_equal(e2, e1, (size_t)ds->n_items * f1->d * sizeof(float));
    assert_int_equal(dr__mf_get_impute(l), DR_IMPUTE_GATE);

    /* P-MODAL on the loaded model = on the trained one; the latents are restored after */
    dr_mf_view v;
    assert_int_equal(dr__mf_get_view(m, &v, &e), DR_OK);
    const size_t bytes = (size_t)v.n_items * v.d * sizeof(float);
    float *before = malloc(bytes);
    memcpy(before, v.item, bytes);
    dr_modal_params mp = dr_modal_default_params();
    mp.threads = 1;
    mp.impute = "mean";
    assert_int_equal(dr_modal_parse_drop("visual=0.5,audio=1", &mp, &e), DR_OK);
    assert_int_equal(mp.n_drop, 2);
    dr_eval_result ra, rb, r0;
    assert_int_equal(dr_eval_modal(ds, sp, m, &mp, &ra, &e), DR_OK);
    assert_int_equal(dr_eval_modal(ds, sp, l, &mp, &rb, &e), DR_OK);
    assert_memory_equal(&ra.full20, &rb.full20, sizeof ra.full20);
    assert_memory_equal(v.item, before, bytes);
    dr_modal_params none = dr_modal_default_params();
    none.threads = 1;
    assert_int_equal(dr_eval_modal(ds, sp, m, &none, &r0, &e), DR_OK);
    dr_eval_params ep = dr_eval_default_params();
    ep.threads = 1;
    dr_eval_result rs;
    assert_int_equal(dr_eval_split(ds, sp, m, &ep, &rs, &e), DR_OK);
    assert_memory_equal(&r0.full20, &rs.full20, sizeof rs.full20);
    /* the sweep's p = 0 column is the plain evaluation; p = 1 with gates = that modality gone */
    dr_modal_sweep *sw = calloc(1, sizeof *sw);
    assert_int_equal(dr_eval_modal_sweep(ds, sp, m, &none, sw, &e), DR_OK);
    assert_int_equal(sw->n_mod, (uint32_t)ds->n_mod);
    assert_memory_equal(&sw->r[0][0][0].full20, &rs.full20, sizeof rs.full20);
    free(sw);
    /* bad specs name the problem */
    assert_int_equal(dr_modal_parse_drop("visual", &mp, &e), DR_ARG);
    assert_int_equal(dr_modal_parse_drop("visual=1.5", &mp, &e), DR_ARG);
    assert_int_equal(dr_modal_parse_drop("smell=0.5", &mp, &e), DR_OK);
    assert_int_equal(dr_eval_modal(ds, sp, m, &mp, &ra, &e), DR_ARG);
    assert_non_null(strstr(e.msg, "smell"));
    uint32_t mask;
    assert_int_equal(dr__fusion_select(ds, "visual,audio", &mask, &e), DR_OK);
    assert_int_equal(mask, 3u);
    assert_int_equal(dr__fusion_select(ds, "none", &mask, &e), DR_OK);
    assert_int_equal(mask, 0u);
    assert_int_equal(dr__fusion_select(ds, "visual,smell", &mask, &e), DR_ARG);
    assert_non_null(strstr(e.msg, "smell"));

    /* damaged fusion sections or metadata: DR_FORMAT naming the part, never a crash */
    dr_model *x = NULL;
    rewrite(path, bad, "mf.fusion_stats", NULL, NULL, NULL);
    assert_int_equal(dr_model_load(bad, &x, &e), DR_FORMAT);
    assert_non_null(strstr(e.msg, "mf.fusion_stats"));
    rewrite(path, bad, NULL, "mf.fusion", NULL, NULL);
    assert_int_equal(dr_model_load(bad, &x, &e), DR_FORMAT);
    rewrite(path, bad, NULL, "mf.item_id", NULL, NULL);
    assert_int_equal(dr_model_load(bad, &x, &e), DR_FORMAT);
    rewrite(path, bad, NULL, NULL, "fusion_modalities", "visual:x");
    assert_int_equal(dr_model_load(bad, &x, &e), DR_FORMAT);
    assert_non_null(strstr(e.msg, "fusion_modalities"));
    rewrite(path, bad, NULL, NULL, "fusion_modalities", "visual:17,audio:8");
    assert_int_equal(dr_model_load(bad, &x, &e), DR_FORMAT);
    rewrite(path, bad, NULL, NULL, "fusion_impute", "zero");
    assert_int_equal(dr_model_load(bad, &x, &e), DR_FORMAT);
    assert_null(x);
    /* an id-only model saves no fusion */
    dr_model *idm = NULL, *idl = NULL;
    p.use_modalities = 0;
    assert_int_equal(dr__mf_fit(ds, sp, &p, &idm, &e), DR_OK);
    assert_int_equal(dr_model_save(idm, ds, sp, path, &e), DR_OK);
    assert_int_equal(dr_model_load(path, &idl, &e), DR_OK);
    assert_null(dr__mf_get_fusion(idl, NULL));
    assert_int_equal(dr_eval_modal(ds, sp, idl, &none, &r0, &e), DR_OK);
    dr_model_free(idm);
    dr_model_free(idl);
    unlink(path);
    unlink(bad);
    rmdir(dir);
    free(before);
    dr_model_free(l);
    dr_model_free(m);
    dr_split_free(sp);
    dr_dataset_free(ds);
}

/* ---------------------------------------------------------------- fusion in SASRec */

typedef struct sr_fixture {
    dr_sasrec_dims dm;
    float *block, *grad, *acts, *z, *act, *dtok, *dw;
    uint8_t *pres;
    dr_sr_params_f32 P, G;
    dr_sr_acts_f32 A;
    size_t off[3];
    uint32_t inp[7], tgt[7], neg[7];
    uint64_t seed[2];
    dr_sr_batch bt;
} sr_fixture;

/* CE (kind 0) or BCE (1) loss of the fused tiny SASRec; with grad, fills G (G.tok = dL/dz),
 * then dtok = dL/de and dw = dL/dw through the fusion. */
static double sr_fused_loss(sr_fixture *t, const dr_fusion *f, const dr_fusion_input *in,
                            int kind, int grad) {
    dr__sr_fuse_forward(f, in, DR_IMPUTE_GATE, 0, NULL, t->P.tok, t->z, t->act, t->pres);
    dr_sr_params_f32 PP = t->P;
    PP.tok = t->z;
    dr__sr_masks_f32(&t->A, &t->dm, &t->bt, 0.0);
    dr__sr_forward_f32(&t->dm, &PP, &t->A, &t->bt);
    size_t np = dr__sasrec_tensors(&t->dm, NULL, 0);
    if (grad) memset(t->grad, 0, np * sizeof(float));
    double L = dr__sr_loss_backward_f32(&t->dm, &PP, grad ? &t->G : NULL, &t->A, &t->bt, kind, 1);
    if (grad) {
        memset(t->dw, 0, f->n_params * sizeof(float));
        dr__sr_fuse_backward(f, in, DR_IMPUTE_GATE, t->P.tok, t->act, t->pres, t->G.tok, NULL,
                            t->dtok, t->dw);
    }
    return L;
}

static void test_sasrec_fused_gradient(void **state) {
    (void)state;
    dr_dataset *ds = small_synth(13, 6);
    dr_error e = {0};
    dr_fusion f;
    dr_fusion_input in;
    assert_int_equal(dr__fusion_init(&f, ds, 3u, 8, 0.3f, 5, &e), DR_OK);
    assert_int_equal(dr__fusion_input_build(&f, ds, NULL, &in, &e), DR_OK);
    dr_rng r;
    dr__rng_seed(&r, 21, 0);
    for (size_t q = 0; q < f.n_params; q++) f.w[q] += (float)(0.2 * dr__rng_normal(&r));
    sr_fixture t;
    memset(&t, 0, sizeof t);
    t.dm = (dr_sasrec_dims){ds->n_items, 8, 5, 1, 2};
    const size_t np = dr__sasrec_tensors(&t.dm, NULL, 0), N = ds->n_items, d = 8;
    t.block = calloc(np, sizeof(float));
    t.grad = calloc(np, sizeof(float));
    for (size_t q = 0; q < np; q++) t.block[q] = (float)(0.3 * dr__rng_normal(&r));
    dr__sr_params_layout_f32(&t.dm, t.block, &t.P);
    dr__sr_params_layout_f32(&t.dm, t.grad, &t.G);
    for (size_t q = 0; q < d; q++) t.P.lnfw[q] = 1.0f;
    t.off[0] = 0, t.off[1] = 4, t.off[2] = 7;
    for (int k = 0; k < 7; k++) {
        t.inp[k] = 1 + (uint32_t)dr__rng_below(&r, N);
        t.tgt[k] = 1 + (uint32_t)dr__rng_below(&r, N);
        t.neg[k] = 1 + (uint32_t)dr__rng_below(&r, N);
    }
    t.seed[0] = 1, t.seed[1] = 2;
    t.bt = (dr_sr_batch){.n_seq = 2, .off = t.off, .inp = t.inp, .tgt = t.tgt, .neg = t.neg,
                         .seed = t.seed};
    size_t na = dr__sr_acts_layout_f32(&t.dm, 7, 2 * (16 + 9), 1, NULL, NULL);
    t.acts = calloc(na + DR_SR_CHUNK * N, sizeof(float));
    dr__sr_acts_layout_f32(&t.dm, 7, 2 * (16 + 9), 1, t.acts, &t.A);
    t.A.logits = t.acts + na;
    t.z = calloc((N + 1) * d, sizeof(float));
    t.dtok = calloc((N + 1) * d, sizeof(float));
    t.act = calloc(N * dr__fusion_act_floats(&f), sizeof(float));
    t.pres = calloc(N * f.n_mod, 1);
    t.dw = calloc(f.n_params, sizeof(float));
    for (int kind = 0; kind < 2; kind++) {
        sr_fused_loss(&t, &f, &in, kind, 1);
        /* float central differences: h = 1e-2, loose tolerance (the exact adjoint of each piece
         * is checked in double elsewhere; this checks the composition) */
        const float h = 1e-2f;
        int checked = 0;
        for (int j = 0; j < 40; j++) {
            int on_w = j % 2 == 0;
            size_t i = on_w ? (size_t)dr__rng_below(&r, f.n_params)
                            : d * t.inp[j % 7] + (size_t)dr__rng_below(&r, d);
            float *x = on_w ? f.w + i : t.P.tok + i;
            double an = on_w ? t.dw[i] : t.dtok[i];
            float s0 = *x;
            *x = s0 + h;
            double lp = sr_fused_loss(&t, &f, &in, kind, 0);
            *x = s0 - h;
            double lm = sr_fused_loss(&t, &f, &in, kind, 0);
            *x = s0;
            double num = (lp - lm) / (2.0 * h);
            if (!(fabs(an - num) <= 2e-3 + 5e-2 * fabs(num)))
                fail_msg("%s %s[%zu]: analytic %.6g numeric %.6g", kind ? "bce" : "ce",
                         on_w ? "w" : "tok", i, an, num);
            checked += fabs(num) > 1e-3;
        }
        assert_true(checked > 10); /* not vacuous */
    }
    free(t.block);
    free(t.grad);
    free(t.acts);
    free(t.z);
    free(t.dtok);
    free(t.act);
    free(t.pres);
    free(t.dw);
    dr__fusion_input_free(&in);
    dr__fusion_free(&f);
    dr_dataset_free(ds);
}

/* With every feature dropped in training (rate 1, gates closed) the fused SASRec trains the
 * id-only model bit for bit: its e and every other tensor equal the id-only fit. */
/* A small SASRec for the fused tests: d 8, L 10, one block, 2 epochs, no validation. */
static dr_sasrec_params tiny_sasrec_params(void) {
    dr_sasrec_params p = dr__sasrec_default_params();
    p.d = 8;
    p.L = 10;
    p.blocks = 1;
    p.epochs = 2;
    p.eval_every = 0;
    p.threads = 2;
    return p;
}

static void test_sasrec_closed_gates_is_id_only(void **state) {
    (void)state;
    dr_synth_params sy = dr_synth_default_params();
    sy.seed = 17;
    sy.n_users = 200;
    sy.n_items = 60;
    sy.n_events = 6000;
    sy.new_item_frac = 0;
    sy.mod_dim[0] = 8;
    dr_dataset *ds = NULL;
    dr_split *sp = NULL;
    dr_error e = {0};
    assert_int_equal(dr_synth_generate(&sy, &ds, &e), DR_OK);
    assert_int_equal(dr_split_create(ds, DR_SPLIT_LOO, &sp, &e), DR_OK);
    uint8_t *seen = calloc(ds->n_items, 1);
    for (uint32_t u = 0; u < ds->n_users; u++)
        for (uint32_t k = 0; k < sp->n_train[u]; k++) seen[ds->hist_item[ds->user_off[u] + k]] = 1;
    for (uint32_t i = 0; i < ds->n_items; i++) assert_true(seen[i]); /* no cold item here */
    free(seen);
    dr_sasrec_params p = tiny_sasrec_params();
    dr_sasrec *a = NULL, *b = NULL;
    assert_int_equal(dr__sasrec_fit(ds, sp, &p, &a, &e), DR_OK);
    assert_null(dr__sasrec_get_fusion(a, NULL));
    p.use_modalities = (1u << ds->n_mod) - 1;
    p.modality_dropout = 1.0f;
    assert_int_equal(dr__sasrec_fit(ds, sp, &p, &b, &e), DR_OK);
    const float *eid = NULL;
    const dr_fusion *f = dr__sasrec_get_fusion(b, &eid);
    assert_non_null(f);
    size_t na, nb;
    const float *ba = dr__sasrec_param_block(a, &na), *bb = dr__sasrec_param_block(b, &nb);
    assert_int_equal(na, nb);
    dr_sasrec_tensor tt[DR_SASREC_N_TENSORS];
    dr__sasrec_tensors(dr__sasrec_get_dims(a), tt, DR_SASREC_N_TENSORS);
    assert_string_equal(tt[0].name, "tok");
    assert_memory_equal(eid, ba, tt[0].count * sizeof(float));
    for (int k = 1; k < DR_SASREC_N_TENSORS; k++)
        assert_memory_equal(ba + tt[k].offset, bb + tt[k].offset, tt[k].count * sizeof(float));
    /* serving uses z = e + features */
    assert_memory_not_equal(bb, ba, tt[0].count * sizeof(float));
    /* re-fusion with every feature removed: z = e; restoring gives the trained table back */
    float *before = malloc(tt[0].count * sizeof(float));
    memcpy(before, bb, tt[0].count * sizeof(float));
    uint8_t *over = calloc((size_t)f->n_mod * ds->n_items, 1);
    assert_int_equal(dr__sasrec_refuse(b, ds, over, DR_IMPUTE_GATE, &e), DR_OK);
    assert_memory_equal(bb, eid, tt[0].count * sizeof(float));
    assert_int_equal(dr__sasrec_refuse(b, ds, NULL, dr__sasrec_get_impute(b), &e), DR_OK);
    assert_memory_equal(bb, before, tt[0].count * sizeof(float));
    assert_int_equal(dr__sasrec_refuse(a, ds, NULL, DR_IMPUTE_GATE, &e), DR_UNSUPPORTED);
    free(over);
    free(before);
    dr__sasrec_free(a);
    dr__sasrec_free(b);
    dr_split_free(sp);
    dr_dataset_free(ds);
}

/* SASRec id dropout: seeded (the same bytes twice), it changes the fit (the option is wired),
 * with every feature closed it zeroes the dropped items' fused rows (e is the only input left:
 * with id dropout near 1 the trained table barely moves from e's start, unlike without it),
 * and an out-of-range rate is refused by name. */
static void test_sasrec_id_dropout(void **state) {
    (void)state;
    dr_dataset *ds = small_synth(23, 8);
    dr_split *sp = NULL;
    dr_error e = {0};
    assert_int_equal(dr_split_create(ds, DR_SPLIT_LOO, &sp, &e), DR_OK);
    dr_sasrec_params p = tiny_sasrec_params();
    p.use_modalities = (1u << ds->n_mod) - 1;
    dr_sasrec *m[3] = {NULL, NULL, NULL};
    const float rate[3] = {0.0f, 0.5f, 0.5f};
    for (int k = 0; k < 3; k++) {
        p.id_dropout = rate[k];
        assert_int_equal(dr__sasrec_fit(ds, sp, &p, &m[k], &e), DR_OK);
    }
    size_t n0, n1, n2;
    const float *b0 = dr__sasrec_param_block(m[0], &n0), *b1 = dr__sasrec_param_block(m[1], &n1),
                *b2 = dr__sasrec_param_block(m[2], &n2);
    assert_int_equal(n0, n1);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1 * sizeof(float));
    assert_memory_not_equal(b0, b1, n1 * sizeof(float));
    /* every feature dropped and nearly every id: z is 0 for nearly every item in every batch, so
     * e gets (almost) no gradient and stays near its start; without id dropout it trains */
    const float *e_start = NULL, *e_ids = NULL, *e_drop = NULL;
    dr_sasrec *s[3] = {NULL, NULL, NULL};
    p.modality_dropout = 1.0f;
    const float rate2[3] = {0.0f, 0.0f, 0.99f};
    const uint32_t epochs[3] = {0, 2, 2};
    for (int k = 0; k < 3; k++) {
        p.id_dropout = rate2[k];
        p.epochs = epochs[k] ? epochs[k] : 1;
        p.lr = k == 0 ? 1e-30f : dr__sasrec_default_params().lr; /* k = 0: e as initialised */
        assert_int_equal(dr__sasrec_fit(ds, sp, &p, &s[k], &e), DR_OK);
    }
    dr__sasrec_get_fusion(s[0], &e_start);
    dr__sasrec_get_fusion(s[1], &e_ids);
    dr__sasrec_get_fusion(s[2], &e_drop);
    double moved_ids = 0, moved_drop = 0;
    for (size_t k = 8; k < ((size_t)ds->n_items + 1) * 8; k++) {
        moved_ids += fabs((double)e_ids[k] - e_start[k]);
        moved_drop += fabs((double)e_drop[k] - e_start[k]);
    }
    assert_true(moved_ids > 0);
    assert_true(moved_drop < 0.2 * moved_ids);
    dr_sasrec *bad = NULL;
    p.id_dropout = 1.0f;
    assert_int_equal(dr__sasrec_fit(ds, sp, &p, &bad, &e), DR_ARG);
    assert_non_null(strstr(e.msg, "id_dropout"));
    assert_null(bad);
    for (int k = 0; k < 3; k++) {
        dr__sasrec_free(m[k]);
        dr__sasrec_free(s[k]);
    }
    dr_split_free(sp);
    dr_dataset_free(ds);
}

/* A fused SASRec saved and loaded: the same scores, and P-MODAL removal gives the same
 * metrics as on the model in memory (e and the fusion travel in the checkpoint). */
static void test_sasrec_checkpoint(void **state) {
    (void)state;
    dr_dataset *ds = small_synth(19, 8);
    dr_split *sp = NULL;
    dr_error e = {0};
    assert_int_equal(dr_split_create(ds, DR_SPLIT_LOO, &sp, &e), DR_OK);
    dr_model_params mp = dr_model_default_params();
    mp.name = "sasrec";
    mp.dim = 8;
    mp.max_len = 10;
    mp.blocks = 1;
    mp.epochs = 2;
    mp.threads = 1;
    mp.modalities = "visual,audio";
    mp.impute = "mean";
    dr_model *m = NULL, *l = NULL;
    assert_int_equal(dr_model_fit(ds, sp, &mp, &m, &e), DR_OK);
    char dir[] = "/tmp/dr_test_fusion_XXXXXX", path[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/s.drm", dir);
    assert_int_equal(dr_model_save(m, ds, sp, path, &e), DR_OK);
    assert_int_equal(dr_model_load(path, &l, &e), DR_OK);
    assert_non_null(dr__sasrec_get_fusion(l->state, NULL));
    assert_int_equal(dr__sasrec_get_impute(l->state), DR_IMPUTE_MEAN);
    const size_t bytes = (size_t)ds->n_items * dr_model_latent_dim(m) * sizeof(float);
    assert_memory_equal(dr_model_item_latents(m), dr_model_item_latents(l), bytes);
    dr_modal_params q = dr_modal_default_params();
    q.threads = 1;
    assert_int_equal(dr_modal_parse_drop("visual=0.5", &q, &e), DR_OK);
    dr_eval_result ra, rb;
    assert_int_equal(dr_eval_modal(ds, sp, m, &q, &ra, &e), DR_OK);
    assert_int_equal(dr_eval_modal(ds, sp, l, &q, &rb, &e), DR_OK);
    assert_memory_equal(&ra.full20, &rb.full20, sizeof ra.full20);
    assert_memory_equal(dr_model_item_latents(m), dr_model_item_latents(l), bytes);
    unlink(path);
    rmdir(dir);
    dr_model_free(l);
    dr_model_free(m);
    dr_split_free(sp);
    dr_dataset_free(ds);
}

/* Items with a training interaction under sp (n_items bytes, 1 = has one). */
static uint8_t *trained_items(const dr_dataset *ds, const dr_split *sp) {
    uint8_t *t = calloc(ds->n_items, 1);
    assert_non_null(t);
    for (uint32_t u = 0; u < ds->n_users; u++) {
        uint32_t nt, nv, ns;
        dr_split_user(sp, u, &nt, &nv, &ns);
        for (uint32_t k = 0; k < nt; k++) t[ds->hist_item[ds->user_off[u] + k]] = 1;
    }
    return t;
}

/* Warm start of fused mf and sasrec checkpoints onto a later window of the data: before the
 * first step (0 epochs) a known item's id embedding e is its old one bit for bit (not the
 * fused z), a new item's e is the cold fit's, the fusion block and statistics are the old
 * ones; other modalities, an id-only fit and another d are refused with both sides named. */
static void test_warm_start_fused(void **state) {
    (void)state;
    dr_dataset *full = small_synth(29, 16), *other = small_synth(29, 12);
    const size_t n = full->n_events;
    dr_dataset *old = warm_window(full, 0, n * 8 / 10, 7), *now = warm_window(full, n / 10, n, 0);
    dr_dataset *now12 = warm_window(other, n / 10, n, 0);
    dr_split *so = NULL, *sn = NULL, *s12 = NULL;
    dr_error e = {0};
    assert_int_equal(dr_split_create(old, DR_SPLIT_LOO, &so, &e), DR_OK);
    assert_int_equal(dr_split_create(now, DR_SPLIT_LOO, &sn, &e), DR_OK);
    assert_int_equal(dr_split_create(now12, DR_SPLIT_LOO, &s12, &e), DR_OK);
    uint8_t *trained = trained_items(now, sn);
    const uint32_t mask = 3u; /* visual, audio */
    for (int kind = 0; kind < 2; kind++) {
        const char *name = kind ? "sasrec" : "mf";
        dr_model_params mp = dr_model_default_params();
        mp.name = name;
        mp.dim = 8;
        mp.max_len = 10;
        mp.blocks = 1;
        mp.epochs = 2;
        mp.threads = 1;
        mp.modalities = "visual,audio";
        dr_model *m0 = NULL, *bad = NULL;
        assert_int_equal(dr_model_fit(old, so, &mp, &m0, &e), DR_OK);
        dr_model *init = warm_reload(m0, old, so, name);
        dr_warm_map map;
        assert_int_equal(dr__warm_map_build(init, kind ? 0 : dr_model_n_users(init), now, &map,
                                            &e), DR_OK);
        const float *ei = NULL, *ew = NULL, *ec = NULL;
        const dr_fusion *fi = dr__model_fusion(init, &ei, NULL), *fw, *fc;
        assert_non_null(fi);
        dr_model *warm = NULL, *cold = NULL;
        if (kind) {
            dr_sasrec_params p = tiny_sasrec_params();
            p.epochs = 0;
            p.use_modalities = mask;
            dr_sasrec *sc = NULL, *sw = NULL;
            assert_int_equal(dr__sasrec_fit(now, sn, &p, &sc, &e), DR_OK);
            p.init = init->state;
            p.init_map = &map;
            assert_int_equal(dr__sasrec_fit(now, sn, &p, &sw, &e), DR_OK);
            assert_int_equal(dr__sasrec_as_model(sc, &cold, &e), DR_OK);
            assert_int_equal(dr__sasrec_as_model(sw, &warm, &e), DR_OK);
        } else {
            dr_mf_params p = quick_params(mask);
            p.epochs = 0;
            assert_int_equal(dr__mf_fit(now, sn, &p, &cold, &e), DR_OK);
            p.init = init;
            p.init_map = &map;
            assert_int_equal(dr__mf_fit(now, sn, &p, &warm, &e), DR_OK);
        }
        fw = dr__model_fusion(warm, &ew, NULL);
        fc = dr__model_fusion(cold, &ec, NULL);
        assert_non_null(fw);
        assert_non_null(fc);
        /* e (not z) by name; new items the cold draws (e = 0 for an untrained one) */
        assert_int_equal(warm_check_rows(ew, ei, ec, 8, &now->items, now->n_items, &old->items,
                                         old->n_items, trained, 1),
                         map.known_items);
        assert_int_equal(fw->n_params, fi->n_params);
        assert_int_equal(fw->n_stats, fi->n_stats);
        assert_memory_equal(fw->w, fi->w, fi->n_params * sizeof *fi->w);
        assert_memory_equal(fw->stats, fi->stats, fi->n_stats * sizeof *fi->stats);
        assert_true(memcmp(fc->stats, fi->stats, fi->n_stats * sizeof *fi->stats) != 0);
        if (!kind) { /* and the users */
            dr_mf_view vi, vw, vc;
            assert_int_equal(dr__mf_get_view(init, &vi, &e), DR_OK);
            assert_int_equal(dr__mf_get_view(warm, &vw, &e), DR_OK);
            assert_int_equal(dr__mf_get_view(cold, &vc, &e), DR_OK);
            warm_check_rows(vw.user, vi.user, vc.user, 8, &now->users, now->n_users,
                            &old->users, old->n_users, NULL, 1);
        }
        /* refusals through dr_model_fit, both sides named */
        mp.init = init;
        mp.dim = 0;
        mp.modalities = "visual,audio"; /* visual has 12 dimensions there, not 16 */
        assert_int_equal(dr_model_fit(now12, s12, &mp, &bad, &e), DR_ARG);
        assert_non_null(strstr(e.msg, "the init model fuses visual:16,audio:32, this fit "
                                      "visual:12,audio:32"));
        assert_non_null(strstr(e.msg, name));
        mp.modalities = "visual";
        assert_int_equal(dr_model_fit(now, sn, &mp, &bad, &e), DR_ARG);
        assert_non_null(strstr(e.msg, "this fit visual:16 (the modalities"));
        mp.modalities = NULL;
        assert_int_equal(dr_model_fit(now, sn, &mp, &bad, &e), DR_UNSUPPORTED);
        assert_non_null(strstr(e.msg, "fuses visual:16,audio:32, this fit ids only"));
        mp.modalities = "visual,audio";
        mp.dim = 16;
        assert_int_equal(dr_model_fit(now, sn, &mp, &bad, &e), DR_ARG);
        assert_non_null(strstr(e.msg, "another shape"));
        assert_null(bad);
        dr__warm_map_free(&map);
        dr_model_free(warm);
        dr_model_free(cold);
        dr_model_free(init);
        dr_model_free(m0);
    }
    free(trained);
    dr_split_free(so);
    dr_split_free(sn);
    dr_split_free(s12);
    dr_dataset_free(old);
    dr_dataset_free(now);
    dr_dataset_free(now12);
    dr_dataset_free(other);
    dr_dataset_free(full);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradient),
        cmocka_unit_test(test_closed_gates_are_identity),
        cmocka_unit_test(test_standardisation_present_rows),
        cmocka_unit_test(test_zero_modalities_is_id_only),
        cmocka_unit_test(test_cold_items_and_refuse),
        cmocka_unit_test(test_drop_mask),
        cmocka_unit_test(test_checkpoint_and_modal),
        cmocka_unit_test(test_sasrec_fused_gradient),
        cmocka_unit_test(test_sasrec_closed_gates_is_id_only),
        cmocka_unit_test(test_sasrec_id_dropout),
        cmocka_unit_test(test_sasrec_checkpoint),
        cmocka_unit_test(test_warm_start_fused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
