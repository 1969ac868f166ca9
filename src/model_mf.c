/*
 * model_mf.c - BPR-MF: matrix factorisation trained with Bayesian Personalised Ranking.
 *
 * DESIGN: score(u, i) = b_i + p_u . q_i. An epoch draws every distinct (user, training item)
 * pair once in a seeded random order, a negative j uniformly from the items not in the user's
 * training prefix (rejection against the user's sorted item set), and takes one step on
 * -log sigmoid(x_uij) + l2/2 (|p_u|^2 + |q_i|^2 + |q_j|^2 + b_i^2 + b_j^2), x_uij = b_i - b_j +
 * p_u . (q_i - q_j), with plain SGD or a lazy (per touched row) Adam. Optional early stopping
 * ranks every validation user's targets through the dr_validator fit is given (model.h) and
 * keeps the best epoch's factors. A user not seen in training (u >= n_users) is folded in as
 * the mean of its context items' factors.
 * The parameters are one block (user | item | item_bias): what the checkpoint stores and
 * dr__mf_load maps back. The vtable gives the generic layer save/load, the dot-product view
 * [q_i, b_i] . [p_u, 1] and the user latent (with the fold-in), so no other file needs mf's
 * internals.
 * Single-threaded on purpose: an epoch is cheap at the sizes used (docs/BENCH.md), and the
 * usual parallel scheme (Hogwild, racing updates) is not deterministic for a seed and thread
 * count; a deterministic one (disjoint user/item blocks per thread, as DSGD) was rejected as
 * complexity with no payoff at this size.
 * Fusion (use_modalities, fusion.c): the factor of a sample's items i and j is the fused
 * z = e + sum_m g_m y_m, computed per step with modality dropout from its own stream (seed, 2),
 * so the sampling stream is the id-only one; dL/dz goes back through dr__fusion_backward into e
 * (per sample) and into the fusion block (own Adam and fusion_l2, one step per MF_FUSION_BATCH
 * samples: a dense Adam step per sample costs several times the rest of the epoch,
 * docs/BENCH.md). Items with no training interaction keep e = 0, b = 0 and are carried by
 * their features; so that features learn to carry an item, each item occurrence is also
 * treated as cold with probability id_dropout (DropoutNet, Volkovs et al. 2017): without it
 * the projections learn only a residual on e and cold items score near 0. After training (and
 * before each validation) the fused latents are materialised into one (n_items, d) array for
 * scoring, the view and the checkpoint; dr__mf_refuse recomputes it with features removed.
 * With use_modalities = 0 none of this runs and the bytes are the id-only model's.
 * Warm start (p->init, model.h's dr_warm_map): the block is drawn as for a cold fit, then the
 * rows of users and items the init knows (by external id) are overwritten with its user
 * factors, e (or id-only factors) and biases; optimiser state starts afresh.
 */
#include "model_mf.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ckpt.h"
#include "rng.h"

#define MF_NEG_TRIES 64
#define MF_FUSION_BATCH 32 /* samples per Adam step of the fusion block */

typedef struct mf_state {
    uint32_t n_users, n_items, d;
    const float *user;      /* (n_users, d) */
    const float *item;      /* (n_items, d) */
    const float *item_bias; /* (n_items) */
    float *block;           /* owned (n_users*d + n_items*d + n_items) when trained */
    dr_ckpt *ckpt;          /* owns the mapping when loaded */
    dr_mf_params params;    /* callbacks cleared */
    dr_mf_report report;
    char dataset[64];
    int split_kind;         /* dr_split_kind trained on, -1 when unknown (loaded) */
    int64_t t0;             /* DR_SPLIT_T0 only */
    /* fusion (n_mod = 0: id-only, item = the id factors) */
    dr_fusion fus;
    const float *item_id;   /* (n_items, d) e, inside block */
    float *fused;           /* (n_items, d) owned materialised z; item points here */
    float *item_id_owned;   /* (n_items, d) e copied by dr__mf_attach_fusion, else NULL */
    uint8_t *cold;          /* (n_items) 1 = no training interaction */
} mf_state;

dr_mf_params dr__mf_default_params(void) {
    dr_mf_params p;
    memset(&p, 0, sizeof p);
    p.d = 64;
    p.epochs = 300;
    p.lr = 0.1f;
    p.l2 = 0.01f;
    p.init_std = 0.1f;
    p.optimizer = DR_MF_SGD;
    p.adam_b1 = 0.9f;
    p.adam_b2 = 0.999f;
    p.adam_eps = 1e-8f;
    p.seed = 42;
    p.threads = 0;
    p.eval_every = 5;
    p.patience = 3;
    p.use_modalities = 0;
    p.modality_dropout = 0.3f;
    p.impute = DR_IMPUTE_GATE;
    p.fusion_lr = 3e-3f;
    p.id_dropout = 0.5f;
    p.fusion_l2 = 1e-3f;
    return p;
}

/* ------------------------------------------------------------------ the loss */

float dr__mf_bpr_grad(uint32_t d, const float *pu, const float *qi, const float *qj, float bi,
                     float bj, float l2, float *gu, float *gi, float *gj, float *gbi,
                     float *gbj) {
    float x = bi - bj, reg = bi * bi + bj * bj;
    for (uint32_t k = 0; k < d; k++) {
        x += pu[k] * (qi[k] - qj[k]);
        reg += pu[k] * pu[k] + qi[k] * qi[k] + qj[k] * qj[k];
    }
    /* -log sigmoid(x) = log1p(exp(-x)), computed without overflow */
    float nll = x > 0 ? log1pf(expf(-x)) : -x + log1pf(expf(x));
    float g = -1.0f / (1.0f + expf(x)); /* d nll / dx = sigmoid(x) - 1 */
    for (uint32_t k = 0; k < d; k++) {
        gu[k] = g * (qi[k] - qj[k]) + l2 * pu[k];
        gi[k] = g * pu[k] + l2 * qi[k];
        gj[k] = -g * pu[k] + l2 * qj[k];
    }
    *gbi = g + l2 * bi;
    *gbj = -g + l2 * bj;
    return nll + 0.5f * l2 * reg;
}

/* ------------------------------------------------------------------ state */

static void mf_free(void *state) {
    mf_state *s = state;
    if (!s) return;
    dr__free(s->block);
    dr__ckpt_close(s->ckpt);
    dr__fusion_free(&s->fus);
    dr__free(s->fused);
    dr__free(s->item_id_owned);
    dr__free(s->cold);
    dr__free(s);
}

static size_t mf_scratch_bytes(const void *state) {
    const mf_state *s = state;
    return (size_t)s->d * sizeof(float);
}

/* The fold-in of a user not seen in training: h (d) = the mean of the context items'
 * factors (0 without context). */
static void mf_fold_in(const mf_state *s, const uint32_t *ctx, size_t n_ctx, float *h) {
    const uint32_t d = s->d;
    memset(h, 0, (size_t)d * sizeof *h);
    for (size_t k = 0; k < n_ctx; k++) {
        const float *q = s->item + (size_t)ctx[k] * d;
        for (uint32_t c = 0; c < d; c++) h[c] += q[c];
    }
    if (n_ctx)
        for (uint32_t c = 0; c < d; c++) h[c] /= (float)n_ctx;
}

static dr_status mf_score(const void *state, void *scratch, uint32_t u, const uint32_t *ctx,
                          size_t n_ctx, float *scores, dr_error *err) {
    const mf_state *s = state;
    const uint32_t d = s->d;
    const float *h;
    if (u < s->n_users) {
        h = s->user + (size_t)u * d;
    } else {
        mf_fold_in(s, ctx, n_ctx, scratch);
        h = scratch;
    }
    memcpy(scores, s->item_bias, (size_t)s->n_items * sizeof *scores);
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)s->n_items, (int)d, 1.0f, s->item, (int)d, h,
                1, 1.0f, scores, 1);
    return DR_OK;
}

/* ------------------------------------------------------------------ training */

static int u32_cmp(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static bool in_sorted(const uint32_t *a, size_t n, uint32_t x) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && a[lo] == x;
}

typedef struct adam_t {
    float *m, *v; /* same layout as the parameter block */
    float b1, b2, eps, c1, c2; /* c1 = 1/(1-b1^t), c2 = 1/(1-b2^t) */
} adam_t;

/* p -= step(g) for n parameters starting at offset `at` of the block. */
static void apply(float *blk, size_t at, const float *g, uint32_t n, float lr, const adam_t *a) {
    float *p = blk + at;
    if (!a) {
        for (uint32_t k = 0; k < n; k++) p[k] -= lr * g[k];
        return;
    }
    float *m = a->m + at, *v = a->v + at;
    for (uint32_t k = 0; k < n; k++) {
        m[k] = a->b1 * m[k] + (1.0f - a->b1) * g[k];
        v[k] = a->b2 * v[k] + (1.0f - a->b2) * g[k] * g[k];
        p[k] -= lr * (m[k] * a->c1) / (sqrtf(v[k] * a->c2) + a->eps);
    }
}

static dr_status check_params(const dr_mf_params *p, dr_error *err) {
    if (p->d == 0 || p->d > DR_MAX_DIM)
        return dr__fail(err, DR_ARG, "mf: d must be in 1..%u (got %u)", DR_MAX_DIM, p->d);
    if (!(p->lr > 0.0f) || !isfinite(p->lr))
        return dr__fail(err, DR_ARG, "mf: lr must be positive (got %g)", (double)p->lr);
    if (!(p->l2 >= 0.0f) || !isfinite(p->l2))
        return dr__fail(err, DR_ARG, "mf: l2 must be >= 0 (got %g)", (double)p->l2);
    if (!(p->init_std >= 0.0f) || !isfinite(p->init_std))
        return dr__fail(err, DR_ARG, "mf: init_std must be >= 0");
    if (p->optimizer != DR_MF_SGD && p->optimizer != DR_MF_ADAM)
        return dr__fail(err, DR_ARG, "mf: unknown optimizer %d", (int)p->optimizer);
    if (p->optimizer == DR_MF_ADAM &&
        !(p->adam_b1 >= 0 && p->adam_b1 < 1 && p->adam_b2 >= 0 && p->adam_b2 < 1 &&
          p->adam_eps > 0))
        return dr__fail(err, DR_ARG, "mf: Adam needs 0 <= b1, b2 < 1 and eps > 0");
    if (!(p->modality_dropout >= 0.0f && p->modality_dropout <= 1.0f))
        return dr__fail(err, DR_ARG, "mf: modality_dropout must be in [0, 1] (got %g)",
                       (double)p->modality_dropout);
    if (!(p->id_dropout >= 0.0f && p->id_dropout <= 1.0f))
        return dr__fail(err, DR_ARG, "mf: id_dropout must be in [0, 1] (got %g)",
                       (double)p->id_dropout);
    if (!(p->fusion_l2 >= 0.0f) || !isfinite(p->fusion_l2))
        return dr__fail(err, DR_ARG, "mf: fusion_l2 must be >= 0 (got %g)", (double)p->fusion_l2);
    if (p->impute != DR_IMPUTE_GATE && p->impute != DR_IMPUTE_MEAN)
        return dr__fail(err, DR_ARG, "mf: unknown impute mode %d", (int)p->impute);
    if (p->use_modalities && (!(p->fusion_lr > 0.0f) || !isfinite(p->fusion_lr)))
        return dr__fail(err, DR_ARG, "mf: fusion_lr must be positive (got %g)",
                       (double)p->fusion_lr);
    return DR_OK;
}

/* Forward of item i's fused factor for training: presence from the input, dropped with
 * probability rate (one draw per modality, always taken so the stream does not depend on
 * presence), missing/dropped -> closed gate or mean row. Fills x, gate (n_mod) for backward. */
static void fuse_item(const dr_fusion *f, const dr_fusion_input *in, const float *e, uint32_t i,
                      float rate, dr_impute impute, dr_rng *drng, const float **x, float *gate,
                      float *z, float *act) {
    for (uint32_t m = 0; m < f->n_mod; m++) {
        bool p = in->pres[(size_t)m * in->n_items + i] != 0;
        double r = dr__rng_uniform(drng);
        if (r < (double)rate) p = false;
        x[m] = p ? in->xs[m] + (size_t)i * f->dim[m] : in->zero;
        gate[m] = (p || impute == DR_IMPUTE_MEAN) ? 1.0f : 0.0f;
    }
    dr__fusion_forward(f, e, x, gate, z, act);
}

static dr_status mf_train(const dr_dataset *ds, const dr_split *sp, const dr_mf_params *p,
                          const dr_validator *vd, mf_state **out, dr_error *err) {
    mf_state *s = NULL;
    size_t *pos_off = NULL;   /* (n_users + 1) */
    uint32_t *pos = NULL;     /* (n_pos) each user's distinct training items, sorted */
    uint32_t *pos_user = NULL; /* (n_pos) */
    uint32_t *perm = NULL;    /* (n_pos) visiting order */
    float *grad = NULL;       /* (3 d) gu | gi | gj */
    float *best = NULL;       /* (n_params) best epoch's block, early stopping only */
    adam_t adam = {0};
    dr_fusion_input fin = {0};
    float *fbuf = NULL;       /* act_i | act_j (na each) | z_i | z_j | de_i | de_j (d each) */
    float *dw = NULL;         /* (fusion n_params) gradient of one step */
    float *best_w = NULL;     /* (fusion n_params) best epoch's fusion block */
    adam_t fadam = {0};
    dr_status st;
    double t_start = dr__now_seconds();

    if ((st = check_params(p, err)) != DR_OK) return st;
    if (!ds || !sp || sp->n_users != ds->n_users)
        return dr__fail(err, DR_ARG, "mf: dataset and split do not match");
    const uint32_t nu = ds->n_users, ni = ds->n_items, d = p->d;
    if (ni < 2) return dr__fail(err, DR_ARG, "mf: needs at least 2 items (got %u)", ni);
    dr_mf_view iv = {0};            /* the warm start's init */
    const dr_fusion *init_f = NULL;
    const float *init_e = NULL;     /* (iv.n_items, d) its e, or its factors when id-only */
    const uint32_t *map_u = p->init_map ? p->init_map->user : NULL;
    const uint32_t *map_i = p->init_map ? p->init_map->item : NULL;
    if (p->init) {
        if ((st = dr__mf_get_view(p->init, &iv, err)) != DR_OK) return st;
        if (iv.d != d)
            return dr__fail(err, DR_ARG, "mf: warm start from a model of another shape (d %u)",
                           iv.d);
        if ((st = dr__warm_map_check(p->init_map, 1, nu, iv.n_users, "mf", err)) != DR_OK ||
            (st = dr__warm_map_check(p->init_map, 0, ni, iv.n_items, "mf", err)) != DR_OK)
            return st;
        init_f = dr__mf_get_fusion(p->init, &init_e);
        if ((st = dr__fusion_warm_check(init_f, ds, p->use_modalities, "mf", err)) != DR_OK)
            return st;
        if (!init_f) init_e = iv.item;
    }
    size_t n_params;
    if (__builtin_mul_overflow((size_t)nu + ni, (size_t)d, &n_params) ||
        __builtin_add_overflow(n_params, (size_t)ni, &n_params) ||
        n_params > SIZE_MAX / 4 / sizeof(float))
        return dr__fail(err, DR_LIMIT, "mf: %u users x %u items x d=%u is too large", nu, ni, d);

    s = dr__calloc(1, sizeof *s);
    pos_off = dr__calloc((size_t)nu + 1, sizeof *pos_off);
    grad = dr__malloc(3 * (size_t)d * sizeof *grad);
    if (!s || !pos_off || !grad) goto nomem;
    s->n_users = nu;
    s->n_items = ni;
    s->d = d;
    s->params = *p;
    s->params.progress = NULL;
    s->params.progress_ud = NULL;
    s->params.init = NULL; /* borrowed for the fit only */
    s->params.init_map = NULL;
    snprintf(s->dataset, sizeof s->dataset, "%s", ds->name);
    s->split_kind = (int)sp->kind;
    s->t0 = sp->t0;

    /* distinct training items per user, sorted */
    size_t n_train = 0;
    for (uint32_t u = 0; u < nu; u++) n_train += sp->n_train[u];
    if (n_train >= UINT32_MAX) {
        st = dr__fail(err, DR_LIMIT, "mf: %zu training events (limit 2^32)", n_train);
        goto fail;
    }
    pos = dr__malloc((n_train ? n_train : 1) * sizeof *pos);
    if (!pos) goto nomem;
    size_t n_pos = 0;
    for (uint32_t u = 0; u < nu; u++) {
        const uint32_t *h = ds->hist_item + ds->user_off[u];
        uint32_t nt = sp->n_train[u];
        uint32_t *dst = pos + n_pos;
        memcpy(dst, h, (size_t)nt * sizeof *dst);
        qsort(dst, nt, sizeof *dst, u32_cmp);
        uint32_t w = 0;
        for (uint32_t k = 0; k < nt; k++)
            if (w == 0 || dst[k] != dst[w - 1]) dst[w++] = dst[k];
        n_pos += w;
        pos_off[u + 1] = n_pos;
    }
    pos_user = dr__malloc((n_pos ? n_pos : 1) * sizeof *pos_user);
    perm = dr__malloc((n_pos ? n_pos : 1) * sizeof *perm);
    s->block = dr__malloc(n_params * sizeof *s->block);
    if (!pos_user || !perm || !s->block) goto nomem;
    for (uint32_t u = 0; u < nu; u++)
        for (size_t k = pos_off[u]; k < pos_off[u + 1]; k++) pos_user[k] = u;
    for (size_t k = 0; k < n_pos; k++) perm[k] = (uint32_t)k;

    float *P = s->block;                        /* (nu, d) */
    float *Q = P + (size_t)nu * d;              /* (ni, d) */
    float *B = Q + (size_t)ni * d;              /* (ni) */
    const size_t q_at = (size_t)nu * d, b_at = q_at + (size_t)ni * d;
    s->user = P;
    s->item = Q;
    s->item_bias = B;
    dr_rng rng;
    dr__rng_seed(&rng, p->seed, 0);
    for (size_t k = 0; k < b_at; k++) s->block[k] = (float)(dr__rng_normal(&rng) * p->init_std);
    memset(B, 0, (size_t)ni * sizeof *B);
    if (p->init) { /* the rows of known users and items; new ones keep the draws above */
        dr__warm_copy_rows(P, iv.user, map_u, nu, d);
        dr__warm_copy_rows(Q, init_e, map_i, ni, d);
        dr__warm_copy_rows(B, iv.item_bias, map_i, ni, 1);
    }

    if (p->optimizer == DR_MF_ADAM) {
        adam.m = dr__calloc(n_params, sizeof(float));
        adam.v = dr__calloc(n_params, sizeof(float));
        if (!adam.m || !adam.v) goto nomem;
        adam.b1 = p->adam_b1;
        adam.b2 = p->adam_b2;
        adam.eps = p->adam_eps;
    }
    const bool early = vd && vd->fn && p->eval_every > 0 && dr_split_n_valid_users(sp) > 0;
    if (early) {
        best = dr__malloc(n_params * sizeof *best);
        if (!best) goto nomem;
    }
    const bool fuse = p->use_modalities != 0;
    size_t na = 0, nf = 0;
    if (fuse) {
        if ((st = dr__fusion_init(&s->fus, ds, p->use_modalities, d, p->init_std, p->seed,
                                 err)) != DR_OK)
            goto fail;
        if (init_f) dr__fusion_warm_copy(&s->fus, init_f); /* checked above */
        if ((st = dr__fusion_input_build(&s->fus, ds, NULL, &fin, err)) != DR_OK) goto fail;
        na = dr__fusion_act_floats(&s->fus);
        nf = s->fus.n_params;
        fbuf = dr__calloc(2 * na + 5 * (size_t)d, sizeof *fbuf);
        dw = dr__malloc(nf * sizeof *dw);
        fadam.m = dr__calloc(nf, sizeof(float));
        fadam.v = dr__calloc(nf, sizeof(float));
        s->fused = dr__malloc((size_t)ni * d * sizeof *s->fused);
        s->cold = dr__malloc(ni);
        if (!fbuf || !dw || !fadam.m || !fadam.v || !s->fused || !s->cold) goto nomem;
        if (early && !(best_w = dr__malloc(nf * sizeof *best_w))) goto nomem;
        fadam.b1 = 0.9f;
        fadam.b2 = 0.999f;
        fadam.eps = 1e-8f;
        memset(s->cold, 1, ni);
        for (size_t k = 0; k < n_pos; k++) s->cold[pos[k]] = 0;
        for (uint32_t i = 0; i < ni; i++) /* an item the init knows keeps its e */
            if (s->cold[i] && (!p->init || dr__warm_row(map_i, i) == DR_WARM_NEW))
                memset(Q + (size_t)i * d, 0, (size_t)d * sizeof *Q);
        s->item_id = Q;
        s->item = s->fused;
        dr__fusion_materialise(&s->fus, Q, &fin, p->impute, s->fused, fbuf);
    }
    float *act_i = fbuf, *act_j = fbuf ? fbuf + na : NULL;
    float *z_i = fbuf ? fbuf + 2 * na : NULL, *z_j = z_i ? z_i + d : NULL;
    float *de_i = z_j ? z_j + d : NULL, *de_j = de_i ? de_i + d : NULL;
    const float *zero_d = de_j ? de_j + d : NULL, *ei = NULL, *ej = NULL; /* (d) zeros */
    const float *x_i[DR_MAX_MODALITIES], *x_j[DR_MAX_MODALITIES];
    float gate_i[DR_MAX_MODALITIES], gate_j[DR_MAX_MODALITIES];
    dr_rng drng;
    dr__rng_seed(&drng, p->seed, 2);
    double fb1t = 1.0, fb2t = 1.0;

    dr_rng srng;
    dr__rng_seed(&srng, p->seed, 1);
    float *gu = grad, *gi = grad + d, *gj = grad + 2 * (size_t)d;
    double b1t = 1.0, b2t = 1.0;
    uint32_t bad_evals = 0;
    double best_ndcg = -1.0;
    for (uint32_t ep = 0; ep < p->epochs; ep++) {
        double epoch_t0 = dr__now_seconds(), val_ndcg = -1.0;
        for (size_t k = n_pos; k > 1; k--) { /* Fisher-Yates */
            size_t r = (size_t)dr__rng_below(&srng, k);
            uint32_t t = perm[k - 1];
            perm[k - 1] = perm[r];
            perm[r] = t;
        }
        double loss = 0.0;
        size_t n_steps = 0;
        uint32_t n_acc = 0; /* samples in dw since the last fusion step */
        if (dw) memset(dw, 0, nf * sizeof *dw);
        for (size_t k = 0; k < n_pos; k++) {
            uint32_t e = perm[k], u = pos_user[e], i = pos[e];
            const uint32_t *mine = pos + pos_off[u];
            size_t n_mine = pos_off[u + 1] - pos_off[u];
            uint32_t j = UINT32_MAX;
            if (n_mine >= ni) continue;
            for (int t = 0; t < MF_NEG_TRIES && j == UINT32_MAX; t++) {
                uint32_t c = (uint32_t)dr__rng_below(&srng, ni);
                if (!in_sorted(mine, n_mine, c)) j = c;
            }
            if (j == UINT32_MAX) continue; /* a user with nearly every item */
            float *pu = P + (size_t)u * d, *qi = Q + (size_t)i * d, *qj = Q + (size_t)j * d;
            float gbi, gbj, bi = B[i], bj = B[j];
            bool wi = true, wj = true; /* e and b of i / j take part (not cold, not dropped) */
            if (fuse) {
                wi = dr__rng_uniform(&drng) >= (double)p->id_dropout && !s->cold[i];
                wj = dr__rng_uniform(&drng) >= (double)p->id_dropout && !s->cold[j];
                ei = wi ? qi : zero_d;
                ej = wj ? qj : zero_d;
                bi = wi ? bi : 0.0f;
                bj = wj ? bj : 0.0f;
                fuse_item(&s->fus, &fin, ei, i, p->modality_dropout, p->impute, &drng, x_i,
                          gate_i, z_i, act_i);
                fuse_item(&s->fus, &fin, ej, j, p->modality_dropout, p->impute, &drng, x_j,
                          gate_j, z_j, act_j);
                qi = z_i;
                qj = z_j;
            }
            loss += dr__mf_bpr_grad(d, pu, qi, qj, bi, bj, p->l2, gu, gi, gj, &gbi, &gbj);
            n_steps++;
            const adam_t *a = NULL;
            if (adam.m) {
                b1t *= adam.b1;
                b2t *= adam.b2;
                adam.c1 = (float)(1.0 / (1.0 - b1t));
                adam.c2 = (float)(1.0 / (1.0 - b2t));
                a = &adam;
            }
            apply(s->block, (size_t)u * d, gu, d, p->lr, a);
            if (!fuse) {
                apply(s->block, q_at + (size_t)i * d, gi, d, p->lr, a);
                apply(s->block, q_at + (size_t)j * d, gj, d, p->lr, a);
                apply(s->block, b_at + i, &gbi, 1, p->lr, a);
                apply(s->block, b_at + j, &gbj, 1, p->lr, a);
                continue;
            }
            dr__fusion_backward(&s->fus, ei, x_i, act_i, gi, de_i, dw);
            dr__fusion_backward(&s->fus, ej, x_j, act_j, gj, de_j, dw);
            if (wi) {
                apply(s->block, q_at + (size_t)i * d, de_i, d, p->lr, a);
                apply(s->block, b_at + i, &gbi, 1, p->lr, a);
            }
            if (wj) {
                apply(s->block, q_at + (size_t)j * d, de_j, d, p->lr, a);
                apply(s->block, b_at + j, &gbj, 1, p->lr, a);
            }
            if (++n_acc == MF_FUSION_BATCH || k + 1 == n_pos) {
                /* L2 on the fusion block, fusion_l2/2 |w|^2 per sample: without it |P x| grows
                 * to ~20x |e| on tiktok and the gates saturate shut */
                const float *w = s->fus.w;
                for (size_t q = 0; q < nf; q++) dw[q] += p->fusion_l2 * (float)n_acc * w[q];
                fb1t *= fadam.b1;
                fb2t *= fadam.b2;
                fadam.c1 = (float)(1.0 / (1.0 - fb1t));
                fadam.c2 = (float)(1.0 / (1.0 - fb2t));
                apply(s->fus.w, 0, dw, (uint32_t)nf, p->fusion_lr, &fadam);
                memset(dw, 0, nf * sizeof *dw);
                n_acc = 0;
            }
        }
        double ep_start = epoch_t0;
        s->report.epochs_run = ep + 1;
        s->report.last_loss = n_steps ? loss / (double)n_steps : 0.0;
        if (!isfinite(s->report.last_loss)) {
            st = dr__fail(err, DR_RANGE, "mf: loss diverged at epoch %u (lower lr)", ep + 1);
            goto fail;
        }
        if (early && ((ep + 1) % p->eval_every == 0 || ep + 1 == p->epochs)) {
            if (fuse) dr__fusion_materialise(&s->fus, Q, &fin, p->impute, s->fused, fbuf);
            const dr_valid_opts vo = {.threads = p->threads}; /* every user and target */
            double hit = 0;
            if ((st = vd->fn(vd, s, &vo, &val_ndcg, &hit, err)) != DR_OK) goto fail;
            dr__log(DR_LOG_INFO, "mf: epoch %u loss %.5f valid NDCG@10 %.5f Hit@10 %.5f", ep + 1,
                   s->report.last_loss, val_ndcg, hit);
            if (val_ndcg > best_ndcg) {
                best_ndcg = val_ndcg;
                s->report.best_epoch = ep + 1;
                memcpy(best, s->block, n_params * sizeof *best);
                if (fuse) memcpy(best_w, s->fus.w, nf * sizeof *best_w);
                bad_evals = 0;
            } else {
                ++bad_evals; /* the loop stops after reporting this epoch */
            }
        } else {
            dr__log(DR_LOG_DEBUG, "mf: epoch %u loss %.5f", ep + 1, s->report.last_loss);
        }
        if (p->on_epoch)
            p->on_epoch(p->on_epoch_ud, (int)ep + 1, s->report.last_loss, val_ndcg,
                        dr__now_seconds() - ep_start);
        if (p->progress) p->progress(p->progress_ud, "mf epoch", ep + 1, p->epochs);
        if (val_ndcg >= 0 && bad_evals >= p->patience) break;
    }
    if (early && best_ndcg >= 0) {
        memcpy(s->block, best, n_params * sizeof *best);
        if (fuse) memcpy(s->fus.w, best_w, nf * sizeof *best_w);
        s->report.best_valid_ndcg10 = best_ndcg;
    } else {
        s->report.best_epoch = s->report.epochs_run;
    }
    if (fuse) dr__fusion_materialise(&s->fus, Q, &fin, p->impute, s->fused, fbuf);
    s->report.seconds = dr__now_seconds() - t_start;
    *out = s;
    s = NULL; /* handed over; the shared cleanup below frees only the scratch */
    st = DR_OK;
    goto done;
nomem:
    st = dr__fail(err, DR_NOMEM, "mf: out of memory");
fail:
done:
    dr__free(pos_off);
    dr__free(pos);
    dr__free(pos_user);
    dr__free(perm);
    dr__free(grad);
    dr__free(best);
    dr__free(adam.m);
    dr__free(adam.v);
    dr__fusion_input_free(&fin);
    dr__free(fbuf);
    dr__free(dw);
    dr__free(best_w);
    dr__free(fadam.m);
    dr__free(fadam.v);
    mf_free(s);
    return st;
}

/* dr_mf_params from the generic parameters (0 / negative fields keep the defaults). */
static dr_mf_params mf_params_from_model(const dr_model_params *mp) {
    dr_mf_params p = dr__mf_default_params();
    if (!mp) return p;
    p.seed = mp->seed;
    p.threads = mp->threads;
    p.progress = mp->progress;
    p.progress_ud = mp->progress_ud;
    p.on_epoch = mp->on_epoch;
    p.on_epoch_ud = mp->on_epoch_ud;
    if (mp->dim) p.d = mp->dim;
    if (mp->epochs) p.epochs = mp->epochs;
    if (mp->patience) p.patience = mp->patience;
    if (mp->eval_every) p.eval_every = mp->eval_every;
    if (mp->lr > 0) p.lr = mp->lr;
    if (mp->l2 >= 0) p.l2 = mp->l2;
    if (mp->optimizer && strcmp(mp->optimizer, "adam") == 0) p.optimizer = DR_MF_ADAM;
    if (mp->modality_dropout >= 0) p.modality_dropout = mp->modality_dropout;
    if (mp->impute && strcmp(mp->impute, "mean") == 0) p.impute = DR_IMPUTE_MEAN;
    if (mp->id_dropout >= 0) p.id_dropout = mp->id_dropout;
    if (mp->fusion_lr > 0) p.fusion_lr = mp->fusion_lr;
    if (mp->fusion_l2 >= 0) p.fusion_l2 = mp->fusion_l2;
    return p;
}

static dr_status mf_fit_vt(const dr_dataset *ds, const dr_split *sp, const dr_model_params *mp,
                           const dr_validator *vd, void **state, dr_error *err) {
    if (mp && mp->optimizer && strcmp(mp->optimizer, "adam") && strcmp(mp->optimizer, "sgd"))
        return dr__fail(err, DR_ARG, "mf: unknown optimizer '%s' (sgd, adam)", mp->optimizer);
    dr_mf_params p = mf_params_from_model(mp);
    dr_impute imp;
    if (mp && mp->impute && dr__impute_parse(mp->impute, &imp, err) != DR_OK) return DR_ARG;
    dr_status st = dr__fusion_select(ds, mp ? mp->modalities : NULL, &p.use_modalities, err);
    if (st != DR_OK) return st;
    dr_warm_map map = {0};
    if (mp && mp->init) { /* dr_model_fit checked that init is an mf */
        dr_mf_view iv;
        if ((st = dr__mf_get_view(mp->init, &iv, err)) != DR_OK) return st;
        if (!mp->dim) p.d = iv.d; /* not given: the init's */
        if ((st = dr__warm_map_build(mp->init, iv.n_users, ds, &map, err)) != DR_OK) return st;
        p.init = mp->init;
        p.init_map = &map;
    }
    mf_state *s = NULL;
    st = mf_train(ds, sp, &p, vd, &s, err);
    dr__warm_map_free(&map);
    if (st == DR_OK) *state = s;
    return st;
}

static const dr_fusion *mf_fusion_vt(const dr_model *m, const float **e, dr_impute *imp) {
    const dr_fusion *f = dr__mf_get_fusion(m, e);
    if (f && imp) *imp = dr__mf_get_impute(m);
    return f;
}

/* [q_i, b_i] . [p_u, 1] = b_i + p_u . q_i */
static dr_status mf_latents(const void *state, uint32_t *dim, const float **items, float **owned,
                            dr_error *err) {
    const mf_state *s = state;
    uint32_t d1 = s->d + 1;
    float *z = dr__malloc((size_t)s->n_items * d1 * sizeof *z);
    if (!z) return dr__fail(err, DR_NOMEM, "mf: out of memory for %u item latents", s->n_items);
    for (uint32_t i = 0; i < s->n_items; i++) {
        memcpy(z + (size_t)i * d1, s->item + (size_t)i * s->d, s->d * sizeof *z);
        z[(size_t)i * d1 + s->d] = s->item_bias[i];
    }
    *dim = d1;
    *items = z;
    *owned = z;
    return DR_OK;
}

/* The trained user factor, or the mean of the context's item factors (the fold-in). */
static dr_status mf_user_latent(const void *state, void *scratch, uint32_t u,
                                const uint32_t *ctx, size_t n_ctx, float *h, dr_error *err) {
    const mf_state *s = state;
    const uint32_t d = s->d;
    if (u < s->n_users)
        memcpy(h, s->user + (size_t)u * d, d * sizeof *h);
    else
        mf_fold_in(s, ctx, n_ctx, h);
    h[d] = 1.0f;
    return DR_OK;
}

static dr_status mf_ckpt_save(const dr_model *m, dr_ckpt_writer *w, dr_error *err);
static dr_status mf_ckpt_load(const dr_ckpt *c, dr_model **out, dr_error *err);

const dr_model_vt dr_mf_vt = {
    .name = "mf",
    .fit = mf_fit_vt,
    .free = mf_free,
    .scratch_bytes = mf_scratch_bytes,
    .score = mf_score,
    .warm_start = 1,
    .fusion = mf_fusion_vt,
    .refuse = dr__mf_refuse,
    .save = mf_ckpt_save,
    .load = mf_ckpt_load,
    .latents = mf_latents,
    .user_latent = mf_user_latent,
    .fold_in = 1,
};

static dr_status wrap_model(mf_state *s, dr_model **out, dr_error *err) {
    return dr__model_wrap(&dr_mf_vt, s, s->n_items, out, err);
}

dr_status dr__mf_from_view(const dr_mf_view *v, dr_model **out, dr_error *err) {
    if (!v || !out || !v->user || !v->item || !v->item_bias || !v->d || v->d > DR_MAX_DIM)
        return dr__fail(err, DR_ARG, "dr__mf_from_view: bad view");
    *out = NULL;
    mf_state *s = dr__calloc(1, sizeof *s);
    if (!s) return dr__fail(err, DR_NOMEM, "mf: out of memory");
    s->n_users = v->n_users;
    s->n_items = v->n_items;
    s->d = v->d;
    s->user = v->user;
    s->item = v->item;
    s->item_bias = v->item_bias;
    s->params = dr__mf_default_params();
    s->params.d = v->d;
    s->split_kind = -1;
    return wrap_model(s, out, err);
}

dr_status dr__mf_fit(const dr_dataset *ds, const dr_split *split, const dr_mf_params *p,
                    dr_model **out, dr_error *err) {
    dr_mf_params def = dr__mf_default_params();
    if (!out) return dr__fail(err, DR_ARG, "dr__mf_fit: out is NULL");
    *out = NULL;
    mf_state *s = NULL;
    const dr_validator vd = dr__validator_make(&dr_mf_vt, ds, split);
    dr_status st = mf_train(ds, split, p ? p : &def, &vd, &s, err);
    if (st != DR_OK) return st;
    return wrap_model(s, out, err);
}

const dr_mf_report *dr__mf_get_report(const dr_model *m) {
    if (!m || m->vt != &dr_mf_vt) return NULL;
    return &((const mf_state *)m->state)->report;
}

dr_status dr__mf_get_view(const dr_model *m, dr_mf_view *out, dr_error *err) {
    if (!m || !out) return dr__fail(err, DR_ARG, "dr__mf_get_view: NULL argument");
    if (m->vt != &dr_mf_vt)
        return dr__fail(err, DR_ARG, "dr__mf_get_view: model '%s' is not mf", m->vt->name);
    const mf_state *s = m->state;
    out->n_users = s->n_users;
    out->n_items = s->n_items;
    out->d = s->d;
    out->user = s->user;
    out->item = s->item;
    out->item_bias = s->item_bias;
    return DR_OK;
}

dr_status dr__mf_refuse(dr_model *m, const dr_dataset *ds, const uint8_t *over,
                       dr_impute impute, dr_error *err) {
    dr_fusion_input in = {0};
    float *act = NULL;
    dr_status st;
    if (!m || !ds) return dr__fail(err, DR_ARG, "dr__mf_refuse: NULL argument");
    if (m->vt != &dr_mf_vt)
        return dr__fail(err, DR_ARG, "dr__mf_refuse: model '%s' is not mf", m->vt->name);
    mf_state *s = m->state;
    if (s->fus.n_mod == 0 || !s->item_id || !s->fused)
        return dr__fail(err, DR_UNSUPPORTED, "dr__mf_refuse: the model fuses no modality");
    if (ds->n_items != s->n_items)
        return dr__fail(err, DR_ARG, "dr__mf_refuse: dataset '%s' has %u items, the model %u",
                       ds->name, ds->n_items, s->n_items);
    if (impute != DR_IMPUTE_GATE && impute != DR_IMPUTE_MEAN)
        return dr__fail(err, DR_ARG, "dr__mf_refuse: unknown impute mode %d", (int)impute);
    if ((st = dr__fusion_input_build(&s->fus, ds, over, &in, err)) != DR_OK) goto fail;
    if (!(act = dr__malloc(dr__fusion_act_floats(&s->fus) * sizeof *act))) {
        st = dr__fail(err, DR_NOMEM, "dr__mf_refuse: out of memory");
        goto fail;
    }
    dr__fusion_materialise(&s->fus, s->item_id, &in, impute, s->fused, act);
    if (m->latent_dim) st = dr__model_prepare_latents(m, err);
fail:
    dr__fusion_input_free(&in);
    dr__free(act);
    return st;
}

const dr_fusion *dr__mf_get_fusion(const dr_model *m, const float **item_id) {
    if (!m || m->vt != &dr_mf_vt) return NULL;
    const mf_state *s = m->state;
    if (s->fus.n_mod == 0) return NULL;
    if (item_id) *item_id = s->item_id;
    return &s->fus;
}

dr_status dr__mf_attach_fusion(dr_model *m, const dr_fusion *f, const float *item_id,
                              dr_impute impute, dr_error *err) {
    if (!m || !f || !item_id) return dr__fail(err, DR_ARG, "dr__mf_attach_fusion: NULL argument");
    if (m->vt != &dr_mf_vt)
        return dr__fail(err, DR_ARG, "dr__mf_attach_fusion: model '%s' is not mf", m->vt->name);
    mf_state *s = m->state;
    if (s->fus.n_mod)
        return dr__fail(err, DR_ARG, "dr__mf_attach_fusion: the model already has a fusion");
    dr_fusion c;
    dr_status st = dr__fusion_copy(&c, f, s->d, err);
    if (st != DR_OK) return st;
    const size_t cells = (size_t)s->n_items * s->d;
    float *eid = dr__malloc(cells * sizeof *eid), *z = dr__malloc(cells * sizeof *z);
    if (!eid || !z) {
        dr__fusion_free(&c);
        dr__free(eid);
        dr__free(z);
        return dr__fail(err, DR_NOMEM, "dr__mf_attach_fusion: out of memory");
    }
    memcpy(eid, item_id, cells * sizeof *eid);
    memcpy(z, s->item, cells * sizeof *z);
    s->fus = c;
    s->item_id_owned = eid;
    s->item_id = eid;
    s->fused = z;
    s->item = z;
    s->params.impute = impute == DR_IMPUTE_MEAN ? DR_IMPUTE_MEAN : DR_IMPUTE_GATE;
    return DR_OK;
}

dr_impute dr__mf_get_impute(const dr_model *m) {
    if (!m || m->vt != &dr_mf_vt) return DR_IMPUTE_GATE;
    return ((const mf_state *)m->state)->params.impute;
}

const uint8_t *dr__mf_cold_items(const dr_model *m) {
    if (!m || m->vt != &dr_mf_vt) return NULL;
    return ((const mf_state *)m->state)->cold;
}

/* ------------------------------------------------------------------ save / load
 * The library's checkpoints (model_io.c) get the model's part from the vtable: metadata d and
 * sections mf.user, mf.item, mf.item_bias (+ the fusion, fusion.c); the factors stay in the
 * mapping. dr__mf_save / dr__mf_load below are a standalone file of the factors alone. */

static dr_status mf_ckpt_save(const dr_model *m, dr_ckpt_writer *w, dr_error *err) {
    dr_mf_view v;
    dr_status st = dr__mf_get_view(m, &v, err);
    if (st != DR_OK) return st;
    uint64_t su[2] = {v.n_users, v.d}, si[2] = {v.n_items, v.d}, sb[1] = {v.n_items};
    char d[16];
    snprintf(d, sizeof d, "%u", v.d);
    if ((st = dr__ckpt_add_meta(w, "d", d, err)) != DR_OK) return st;
    if ((st = dr__ckpt_add(w, "mf.user", DR_DT_F32, 2, su, v.user, err)) != DR_OK) return st;
    if ((st = dr__ckpt_add(w, "mf.item", DR_DT_F32, 2, si, v.item, err)) != DR_OK) return st;
    if ((st = dr__ckpt_add(w, "mf.item_bias", DR_DT_F32, 1, sb, v.item_bias, err)) != DR_OK)
        return st;
    const float *eid = NULL;
    const dr_fusion *f = dr__mf_get_fusion(m, &eid);
    return f ? dr__fusion_save(w, "mf", f, eid, v.n_items, dr__mf_get_impute(m), err) : DR_OK;
}

static dr_status mf_ckpt_load(const dr_ckpt *c, dr_model **out, dr_error *err) {
    uint64_t si[2] = {DR_CKPT_ANY, DR_CKPT_ANY};
    const void *pi, *pu, *pb;
    dr_status st;
    if ((st = dr__ckpt_find(c, "mf.item", DR_DT_F32, 2, si, &pi, err)) != DR_OK) return st;
    if (si[0] >= UINT32_MAX || si[1] < 1 || si[1] > DR_MAX_DIM)
        return dr__fail(err, DR_FORMAT, "%s: section 'mf.item' has an unusable shape", dr__ckpt_path(c));
    uint64_t su[2] = {DR_CKPT_ANY, si[1]}, sb[1] = {si[0]};
    if ((st = dr__ckpt_find(c, "mf.user", DR_DT_F32, 2, su, &pu, err)) != DR_OK) return st;
    if ((st = dr__ckpt_find(c, "mf.item_bias", DR_DT_F32, 1, sb, &pb, err)) != DR_OK) return st;
    if (su[0] >= UINT32_MAX) return dr__fail(err, DR_FORMAT, "%s: too many users", dr__ckpt_path(c));
    dr_mf_view v = {(uint32_t)su[0], (uint32_t)si[0], (uint32_t)si[1], pu, pi, pb};
    dr_model *m = NULL;
    if ((st = dr__mf_from_view(&v, &m, err)) != DR_OK) return st;
    dr_fusion f;
    const float *eid = NULL;
    dr_impute imp;
    int found;
    if ((st = dr__fusion_load(c, "mf", v.d, v.n_items, &f, &eid, &imp, &found, err)) != DR_OK ||
        (found && (st = dr__mf_attach_fusion(m, &f, eid, imp, err)) != DR_OK)) {
        dr_model_free(m);
        return st;
    }
    *out = m;
    return DR_OK;
}


dr_status dr__mf_save(const dr_model *m, const char *path, dr_error *err) {
    dr_ckpt_writer *w = NULL;
    dr_status st;
    if (!m || !path) return dr__fail(err, DR_ARG, "dr__mf_save: NULL argument");
    if (m->vt != &dr_mf_vt)
        return dr__fail(err, DR_ARG, "dr__mf_save: model '%s' is not mf", m->vt->name);
    const mf_state *s = m->state;
    const dr_mf_params *p = &s->params;
    uint64_t su[2] = {s->n_users, s->d}, si[2] = {s->n_items, s->d}, sb[1] = {s->n_items};
    char v[16][64];
    snprintf(v[0], sizeof v[0], "%u", s->d);
    snprintf(v[1], sizeof v[1], "%u", s->n_users);
    snprintf(v[2], sizeof v[2], "%u", s->n_items);
    snprintf(v[3], sizeof v[3], "%u", s->report.epochs_run);
    snprintf(v[4], sizeof v[4], "%u", s->report.best_epoch);
    snprintf(v[5], sizeof v[5], "%.9g", (double)p->lr);
    snprintf(v[6], sizeof v[6], "%.9g", (double)p->l2);
    snprintf(v[7], sizeof v[7], "%.9g", (double)p->init_std);
    snprintf(v[8], sizeof v[8], "%llu", (unsigned long long)p->seed);
    const char *keys[] = {"d", "n_users", "n_items", "epochs_run", "best_epoch", "lr", "l2",
                          "init_std", "seed"};
    if ((st = dr__ckpt_writer_create(&w, err)) != DR_OK) goto fail;
    if ((st = dr__ckpt_add_meta(w, "model", "mf", err)) != DR_OK) goto fail;
    if ((st = dr__ckpt_add_meta(w, "dataset", s->dataset, err)) != DR_OK) goto fail;
    if ((st = dr__ckpt_add_meta(w, "optimizer", p->optimizer == DR_MF_ADAM ? "adam" : "sgd",
                               err)) != DR_OK)
        goto fail;
    for (size_t k = 0; k < DR_ARRAY_LEN(keys); k++)
        if ((st = dr__ckpt_add_meta(w, keys[k], v[k], err)) != DR_OK) goto fail;
    if (s->split_kind >= 0) {
        const char *kind = dr__split_kind_name(s->split_kind);
        if ((st = dr__ckpt_add_meta(w, "split", kind, err)) != DR_OK) goto fail;
    }
    if (s->split_kind == DR_SPLIT_T0) {
        snprintf(v[9], sizeof v[9], "%lld", (long long)s->t0);
        if ((st = dr__ckpt_add_meta(w, "T0", v[9], err)) != DR_OK) goto fail;
    }
    if ((st = dr__ckpt_add(w, "user", DR_DT_F32, 2, su, s->user, err)) != DR_OK) goto fail;
    if ((st = dr__ckpt_add(w, "item", DR_DT_F32, 2, si, s->item, err)) != DR_OK) goto fail;
    if ((st = dr__ckpt_add(w, "item_bias", DR_DT_F32, 1, sb, s->item_bias, err)) != DR_OK)
        goto fail;
    st = dr__ckpt_write(w, path, err);
fail:
    dr__ckpt_writer_free(w);
    return st;
}

dr_status dr__mf_load(const char *path, dr_model **out, dr_error *err) {
    mf_state *s = NULL;
    dr_status st;
    if (!path || !out) return dr__fail(err, DR_ARG, "dr__mf_load: NULL argument");
    *out = NULL;
    s = dr__calloc(1, sizeof *s);
    if (!s) return dr__fail(err, DR_NOMEM, "mf: out of memory");
    if ((st = dr__ckpt_open(path, &s->ckpt, err)) != DR_OK) goto fail;
    const char *kind = dr__ckpt_meta(s->ckpt, "model");
    if (!kind || strcmp(kind, "mf") != 0) {
        st = dr__fail(err, DR_FORMAT, "%s: not an mf checkpoint (model=%s)", path,
                     kind ? kind : "<missing>");
        goto fail;
    }
    uint64_t si[2] = {DR_CKPT_ANY, DR_CKPT_ANY};
    const void *pi, *pu, *pb;
    if ((st = dr__ckpt_find(s->ckpt, "item", DR_DT_F32, 2, si, &pi, err)) != DR_OK) goto fail;
    if (si[0] < 1 || si[0] >= UINT32_MAX || si[1] < 1 || si[1] > DR_MAX_DIM) {
        st = dr__fail(err, DR_FORMAT, "%s: section 'item' has an unusable shape", path);
        goto fail;
    }
    uint64_t su[2] = {DR_CKPT_ANY, si[1]}, sb[1] = {si[0]};
    if ((st = dr__ckpt_find(s->ckpt, "user", DR_DT_F32, 2, su, &pu, err)) != DR_OK) goto fail;
    if ((st = dr__ckpt_find(s->ckpt, "item_bias", DR_DT_F32, 1, sb, &pb, err)) != DR_OK)
        goto fail;
    if (su[0] >= UINT32_MAX) {
        st = dr__fail(err, DR_FORMAT, "%s: too many users", path);
        goto fail;
    }
    s->n_items = (uint32_t)si[0];
    s->d = (uint32_t)si[1];
    s->n_users = (uint32_t)su[0];
    s->user = pu;
    s->item = pi;
    s->item_bias = pb;
    s->params = dr__mf_default_params();
    s->params.d = s->d;
    s->split_kind = -1;
    const char *mv;
    if ((mv = dr__ckpt_meta(s->ckpt, "split"))) s->split_kind = dr__split_kind_parse(mv);
    if ((mv = dr__ckpt_meta(s->ckpt, "T0"))) s->t0 = strtoll(mv, NULL, 10);
    if ((mv = dr__ckpt_meta(s->ckpt, "lr"))) s->params.lr = strtof(mv, NULL);
    if ((mv = dr__ckpt_meta(s->ckpt, "l2"))) s->params.l2 = strtof(mv, NULL);
    if ((mv = dr__ckpt_meta(s->ckpt, "init_std"))) s->params.init_std = strtof(mv, NULL);
    if ((mv = dr__ckpt_meta(s->ckpt, "seed"))) s->params.seed = strtoull(mv, NULL, 10);
    if ((mv = dr__ckpt_meta(s->ckpt, "optimizer")) && strcmp(mv, "adam") == 0)
        s->params.optimizer = DR_MF_ADAM;
    if ((mv = dr__ckpt_meta(s->ckpt, "epochs_run")))
        s->report.epochs_run = (uint32_t)strtoul(mv, NULL, 10);
    if ((mv = dr__ckpt_meta(s->ckpt, "best_epoch")))
        s->report.best_epoch = (uint32_t)strtoul(mv, NULL, 10);
    const char *ds = dr__ckpt_meta(s->ckpt, "dataset");
    snprintf(s->dataset, sizeof s->dataset, "%s", ds ? ds : "");
    return wrap_model(s, out, err);
fail:
    mf_free(s);
    return st;
}
