/* test_fusion.c - gated fusion (src/fusion.c) and its BPR-MF integration (src/mf.c):
 * backward against central finite differences of an independent double forward (and a check
 * that the checker catches a wrong gradient), closed gates = id-only bit for bit, zero
 * modalities = the id-only model's bytes, standardisation over present rows only, errors that
 * name the modality, cold items carried by features (e = 0), seeded determinism with dropout,
 * the drop mask, re-fusion with features removed (gate vs mean imputation), and re-attaching
 * the fusion to a model rebuilt from its view (the checkpoint path). */
#include "testutil.h"

#include <math.h>

#include "dataset.h"
#include "fusion.h"
#include "mf.h"
#include "model.h"
#include "rng.h"

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
    dr_rng_seed(&rng, 11, 0);
    const float gates[4][GM] = {{1, 1}, {1, 0}, {0, 1}, {0, 0}};
    for (int trial = 0; trial < 24; trial++) {
        for (size_t k = 0; k < f.n_params; k++) w[k] = (float)(dr_rng_normal(&rng) * 0.7);
        for (int k = 0; k < GD; k++) {
            e[k] = (float)dr_rng_normal(&rng);
            r[k] = (float)dr_rng_normal(&rng);
        }
        for (int j = 0; j < 4; j++) {
            x0[j] = (float)dr_rng_normal(&rng);
            x1[j] = (float)dr_rng_normal(&rng);
        }
        const float *gate = gates[trial % 4];
        dr_fusion_forward(&f, e, x, gate, z, act);
        memset(dw, 0, sizeof dw);
        dr_fusion_backward(&f, e, x, act, r, de, dw);
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
    dr_fusion_forward(&f, e, x, gate, z, act);
    assert_memory_equal(z, e, sizeof e);
    dr_fusion empty = {.d = GD};
    dr_fusion_forward(&empty, e, x, gate, z, act);
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
    dr_mf_params p = dr_mf_default_params();
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
    assert_int_equal(dr_fusion_init(&f, ds, 1u, 8, 0.1f, 1, &e), DR_OK);
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
    assert_int_equal(dr_fusion_input_build(&f, ds, NULL, &in, &e), DR_OK);
    for (uint32_t i = 0; i < ds->n_items; i++) {
        assert_int_equal(in.pres[i], md->present[i]);
        if (!md->present[i])
            for (uint32_t j = 0; j < md->dim; j++)
                assert_true(in.xs[0][(size_t)i * md->dim + j] == 0.0f);
    }
    dr_fusion_input_free(&in);
    /* errors name the modality */
    dr_dataset *other = small_synth(3, 32);
    assert_int_equal(dr_fusion_input_build(&f, other, NULL, &in, &e), DR_ARG);
    assert_non_null(strstr(e.msg, "visual"));
    dr_fusion g;
    assert_int_equal(dr_fusion_init(&g, ds, 1u << 7, 8, 0.1f, 1, &e), DR_ARG);
    dr_fusion_free(&f);
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
    assert_int_equal(dr_mf_fit(ds, sp, &p, &a, &e), DR_OK);
    int n_mod = ds->n_mod; /* the same data without any modality at all */
    ds->n_mod = 0;
    assert_int_equal(dr_mf_fit(ds, sp, &p, &b, &e), DR_OK);
    ds->n_mod = n_mod;
    dr_mf_view va, vb;
    assert_int_equal(dr_mf_get_view(a, &va, &e), DR_OK);
    assert_int_equal(dr_mf_get_view(b, &vb, &e), DR_OK);
    assert_memory_equal(va.user, vb.user, (size_t)va.n_users * va.d * sizeof(float));
    assert_memory_equal(va.item, vb.item, (size_t)va.n_items * va.d * sizeof(float));
    assert_memory_equal(va.item_bias, vb.item_bias, va.n_items * sizeof(float));
    assert_null(dr_mf_get_fusion(a, NULL));
    assert_int_equal(dr_mf_refuse(a, ds, NULL, DR_IMPUTE_GATE, &e), DR_UNSUPPORTED);
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
    assert_int_equal(dr_mf_fit(ds, sp, &p, &m, &e), DR_OK);
    const float *eid = NULL;
    const dr_fusion *f = dr_mf_get_fusion(m, &eid);
    assert_non_null(f);
    assert_int_equal(f->n_mod, (uint32_t)ds->n_mod);
    const uint8_t *cold = dr_mf_cold_items(m);
    dr_mf_view v;
    assert_int_equal(dr_mf_get_view(m, &v, &e), DR_OK);
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
    /* same seed -> same bytes, modality dropout included */
    assert_int_equal(dr_mf_fit(ds, sp, &p, &m2, &e), DR_OK);
    dr_mf_view v2;
    assert_int_equal(dr_mf_get_view(m2, &v2, &e), DR_OK);
    assert_memory_equal(v.item, v2.item, (size_t)v.n_items * d * sizeof(float));
    assert_memory_equal(v.user, v2.user, (size_t)v.n_users * d * sizeof(float));
    dr_model_free(m2);

    /* every feature removed: gate -> exactly e; mean imputation -> not e */
    float *before = malloc((size_t)v.n_items * d * sizeof *before);
    memcpy(before, v.item, (size_t)v.n_items * d * sizeof *before);
    uint8_t *over = calloc((size_t)f->n_mod * ds->n_items, 1);
    assert_int_equal(dr_mf_refuse(m, ds, over, DR_IMPUTE_GATE, &e), DR_OK);
    assert_memory_equal(v.item, eid, (size_t)v.n_items * d * sizeof(float));
    assert_int_equal(dr_mf_refuse(m, ds, over, DR_IMPUTE_MEAN, &e), DR_OK);
    assert_memory_not_equal(v.item, eid, (size_t)v.n_items * d * sizeof(float));
    /* restore: no override, the training mode */
    assert_int_equal(dr_mf_refuse(m, ds, NULL, DR_IMPUTE_GATE, &e), DR_OK);
    assert_memory_equal(v.item, before, (size_t)v.n_items * d * sizeof(float));
    /* a model rebuilt from its view (as after loading a checkpoint) + attached fusion re-fuses
     * to the same bytes */
    dr_model *vm = NULL;
    assert_int_equal(dr_mf_from_view(&v, &vm, &e), DR_OK);
    assert_int_equal(dr_mf_attach_fusion(vm, f, eid, DR_IMPUTE_GATE, &e), DR_OK);
    assert_int_equal(dr_mf_attach_fusion(vm, f, eid, DR_IMPUTE_GATE, &e), DR_ARG);
    assert_int_equal(dr_mf_refuse(vm, ds, over, DR_IMPUTE_MEAN, &e), DR_OK);
    assert_int_equal(dr_mf_refuse(m, ds, over, DR_IMPUTE_MEAN, &e), DR_OK);
    dr_mf_view vv;
    assert_int_equal(dr_mf_get_view(vm, &vv, &e), DR_OK);
    assert_memory_equal(vv.item, v.item, (size_t)v.n_items * d * sizeof(float));
    dr_model_free(vm);
    /* a dataset with another catalogue is refused */
    dr_dataset *other = small_synth(9, 32);
    assert_int_equal(dr_mf_refuse(m, other, NULL, DR_IMPUTE_GATE, &e), DR_ARG);
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
    assert_int_equal(dr_fusion_drop_mask(2, N, 1, 0.5, 42, a, &e), DR_OK);
    assert_int_equal(dr_fusion_drop_mask(2, N, 1, 0.5, 42, b, &e), DR_OK);
    assert_memory_equal(a, b, sizeof a);
    size_t z0 = 0, z1 = 0;
    for (int i = 0; i < N; i++) {
        z0 += !a[i];
        z1 += !a[N + i];
    }
    assert_int_equal(z0, 0);
    assert_int_equal(z1, 51); /* round(0.5 * 101) */
    assert_int_equal(dr_fusion_drop_mask(2, N, 0, 1.0, 42, a, &e), DR_OK);
    for (int i = 0; i < N; i++) assert_int_equal(a[i], 0);
    assert_int_equal(dr_fusion_drop_mask(2, N, 2, 0.5, 42, a, &e), DR_ARG);
    assert_int_equal(dr_fusion_drop_mask(2, N, 0, 1.5, 42, a, &e), DR_ARG);
    dr_impute im;
    assert_int_equal(dr_impute_parse("mean", &im, &e), DR_OK);
    assert_int_equal(im, DR_IMPUTE_MEAN);
    assert_int_equal(dr_impute_parse("zero", &im, &e), DR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradient),
        cmocka_unit_test(test_closed_gates_are_identity),
        cmocka_unit_test(test_standardisation_present_rows),
        cmocka_unit_test(test_zero_modalities_is_id_only),
        cmocka_unit_test(test_cold_items_and_refuse),
        cmocka_unit_test(test_drop_mask),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
