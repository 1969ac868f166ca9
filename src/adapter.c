/*
 * adapter.c - the online adapter: a few thousand parameters that learn from every event over
 * a frozen dot-product base (model in adapter.h). Here: parameters, create/free, inputs,
 * learning (update, G step), the reference loss and the slow twin of the z' cache; snapshots
 * in adapter_snapshot.c, save/load in adapter_io.c, shared layouts and inlines in adapter_int.h.
 *
 * DESIGN
 * theta (G, item gate, H, user gate), the running diagonal Fisher F, the EWC anchor theta* and
 * the gradient are same-shaped blocks of one allocation. G and H add a per-dimension skip (gs,
 * hs, init skip_init) from the co-click mean (items) and the recent-item mean (users): from
 * the first event a cold item looks like the items co-consumed with it and a user leans toward
 * her recent items; the MLP learns the rest. Without the skip the adapter lost to the frozen
 * base (docs/BENCH.md, P-STREAM). Init: W ~ N(0, 1/fan_in) (W2, V2 x 0.1); gate_bias (-3)
 * starts the adapter near the identity; cold_gate_bias (+3) on the cold flag opens a cold
 * item's gate to 0.5. A cold item's base latent carries no signal: z~ = 0, z' = a G([0; 1; s]).
 * tanh is act(), a clamped branch-free rational approximation (2e-7 inside |x| < 4.97), one
 * function for every path.
 * Learning, per event (u, i, t), h = u's base latent before it: sampled softmax over i and N
 * negatives (uniform, or with probability neg_pop popularity in the window; redrawn when equal
 * to i), loss = -l_0 + logsumexp(l), l_k = h'_u . z'_k, + lambda_kl (|h'-h|^2 + sum over warm
 * candidates |z'_k - z~_k|^2) + lambda_ewc sum F (theta - theta*)^2; F <- (1 - r) F + r g^2
 * (g the ranking gradient); theta* the initial theta or a slow EMA (anchor_ema). Gradients are
 * hand-derived; tests/unit/test_adapter.c checks each against central finite differences.
 * The z' cache: every step on G changes z' for the whole catalogue, so the update is split. H
 * and the user gate step on every event (only h' changes; nothing is cached for users); G and
 * the item gate step once per g_batch events on the buffered, summed gradients (exact
 * mini-batch SGD), then z' is recomputed in full by one sgemm. Between G steps an event changes
 * the statistics of a few items only (listed by adapter_window.c): exactly those rows are
 * recomputed, so the cache always equals a full recompute (dr__adapter_items_slow is the twin).
 * Rejected: adapting only items with window statistics (still depends on G: every G step
 * touches thousands of rows) and a full recompute per event (g_batch = 1 works, the gradient
 * test uses it, but pays that sgemm per event; larger batches are as accurate: docs/BENCH.md).
 * Rows in use: a server reserves rows for items not known yet (dr__adapter_set_active_items);
 * rows past n_active are not refreshed, not published, never negatives (a reserved row is not
 * an item a user passed over) and refused by update; a row entering use is recomputed first.
 */
#include "adapter.h"
#include "adapter_int.h"

#include <cblas.h>

dr_adapter_params dr__adapter_default_params(void) {
    dr_adapter_params p;
    memset(&p, 0, sizeof p);
    p.window = dr__window_default_params();
    p.hidden = 16;
    p.negatives = 16;
    p.neg_pop = 0.0f;
    p.lr = 0.01f;
    p.lr_g = 0.005f;
    p.steps = 1;
    p.g_batch = 256;
    p.lambda_kl = 1e-3f;
    p.lambda_ewc = 0.0f;
    p.fisher_decay = 0.01f;
    p.anchor_ema = 0.0f;
    p.gate_bias = -3.0f;
    p.skip_init = 1.0f;
    p.cold_gate_bias = 3.0f;
    p.clip = 0.0f;
    p.no_gates = 0;
    p.publish_every = 1;
    p.checksum = 0;
    p.seed = 42;
    return p;
}


/* ---------------------------------------------------------------- pieces */

void dr__adp_mlp_forward(const float *W1, const float *b1, const float *W2, const float *b2,
                        uint32_t nin, uint32_t hidden, uint32_t d, const float *in, float *hid,
                        float *out) {
    /* tanh layer: see act() */
    for (uint32_t j = 0; j < hidden; j++) hid[j] = act(b1[j] + dotf(W1 + (size_t)j * nin, in, nin));
    for (uint32_t c = 0; c < d; c++) out[c] = b2[c] + dotf(W2 + (size_t)c * hidden, hid, hidden);
}

void dr__adp_mlp_backward(const float *W1, const float *W2, uint32_t nin, uint32_t hidden,
                         uint32_t d, const float *in, const float *hid, const float *dout,
                         float *dW1, float *db1, float *dW2, float *db2, float *din) {
    float dpre[1024];
    for (uint32_t j = 0; j < hidden; j++) dpre[j] = 0;
    for (uint32_t c = 0; c < d; c++) {
        float g = dout[c];
        db2[c] += g;
        float *dw = dW2 + (size_t)c * hidden;
        const float *w = W2 + (size_t)c * hidden;
        for (uint32_t j = 0; j < hidden; j++) {
            dw[j] += g * hid[j];
            dpre[j] += g * w[j];
        }
    }
    for (uint32_t j = 0; j < hidden; j++) {
        float g = dpre[j] * (1.0f - hid[j] * hid[j]);
        db1[j] += g;
        float *dw = dW1 + (size_t)j * nin;
        const float *w = W1 + (size_t)j * nin;
        for (uint32_t k = 0; k < nin; k++) {
            dw[k] += g * in[k];
            if (din) din[k] += g * w[k];
        }
    }
}

/* Accumulates into grad the gradient of dout . out for side_forward's out. */
static void side_backward(const float *th, size_t oW1, size_t ob1, size_t oW2, size_t ob2,
                          size_t ow, size_t oc, uint32_t nin, size_t os, uint32_t skip,
                          uint32_t hd, uint32_t d, int no_gates, const float *in,
                          const float *hid, const float *mlp, float gate, const float *dout,
                          float *dmlp, float *grad) {
    float dg = 0;
    for (uint32_t c = 0; c < d; c++) {
        dmlp[c] = gate * dout[c];
        dg += mlp[c] * dout[c];
        grad[os + c] += dmlp[c] * in[skip + c];
    }
    dr__adp_mlp_backward(th + oW1, th + oW2, nin, hd, d, in, hid, dmlp, grad + oW1, grad + ob1,
                        grad + oW2, grad + ob2, NULL);
    if (!no_gates) {
        float dpre = dg * gate * (1.0f - gate);
        grad[oc] += dpre;
        for (uint32_t k = 0; k < nin; k++) grad[ow + k] += dpre * in[k];
    }
}

#define G_ARGS(a) (a)->oW1, (a)->ob1, (a)->oW2, (a)->ob2, (a)->owa, (a)->oca, (a)->X, (a)->ogs, (a)->d + 4
#define H_ARGS(a) (a)->oV1, (a)->oc1, (a)->oV2, (a)->oc2, (a)->owb, (a)->ocb, (a)->Y, (a)->ohs, (a)->d + 2

/* ---------------------------------------------------------------- inputs */

void dr__adapter_item_input(const dr_adapter *a, uint32_t i, float *x) {
    uint32_t d = a->d;
    memcpy(x, a->z0 + (size_t)i * d, d * sizeof *x);
    x[d] = a->cold[i] ? 1.0f : 0.0f;
    dr__window_item_stats(a->win, i, x + d + 1);
}

void dr__adapter_user_input(const dr_adapter *a, uint32_t u, int64_t now, const float *h,
                           float *y) {
    float mean[1024];
    int64_t last;
    uint32_t ring[1024];
    uint64_t n = user_summary(a, u, mean, &last, ring);
    user_input_from(a->d, a->p.window.seconds_per_unit, h, mean, n, last, now, y);
}

void dr__adapter_user(const dr_adapter *a, uint32_t u, int64_t now, const float *h, float *out) {
    float y[2 * 1024 + 2], hid[1024], mlp[1024];
    dr__adapter_user_input(a, u, now, h, y);
    side_forward(a->theta, H_ARGS(a), a->hd, a->d, a->p.no_gates, y, h, hid, mlp, out);
}

/* ---------------------------------------------------------------- create / free */

static void snap_free(dr_adapter_snapshot *s) {
    dr__free(s->zp);
    dr__bf16_free(s->zq);
    dr__free(s->uparams);
    dr__free(s->umean);
    dr__free(s->ulast);
    dr__free(s->ucount);
}

void dr__adapter_free(dr_adapter *a) {
    if (!a) return;
    dr__free(a->block);
    dr__free(a->z0);
    dr__free(a->cold);
    dr__free(a->rebased);
    dr__free(a->xin);
    dr__free(a->zp);
    dr__window_free(a->win);
    dr__free(a->cand);
    dr__free(a->y);
    dr__free(a->hh);
    dr__free(a->hv);
    dr__free(a->hp);
    dr__free(a->dh);
    dr__free(a->lg);
    dr__free(a->dz);
    dr__free(a->tmp_hid);
    dr__free(a->tmp_d);
    dr__free(a->bx);
    dr__free(a->bdz);
    dr__free(a->s_hid);
    dr__free(a->s_out);
    dr__free(a->s_gate);
    dr__free(a->s_dhid);
    dr__free(a->s_dg);
    for (int b = 0; b < NBUF; b++) {
        snap_free(&a->buf[b]);
        dr__free(a->idirty[b]);
        dr__free(a->ilist[b]);
        dr__free(a->udirty[b]);
        dr__free(a->ulist[b]);
    }
    dr__free(a);
}

static void init_params(dr_adapter *a) {
    dr_rng r;
    dr__rng_seed(&r, a->p.seed, 7);
    float *t = a->theta;
    memset(t, 0, a->n_params * sizeof *t);
    double sx = 1.0 / sqrt((double)a->X), sy = 1.0 / sqrt((double)a->Y),
           sh = 0.1 / sqrt((double)a->hd);
    for (size_t k = 0; k < (size_t)a->hd * a->X; k++) t[a->oW1 + k] = (float)(sx * dr__rng_normal(&r));
    for (size_t k = 0; k < (size_t)a->d * a->hd; k++) t[a->oW2 + k] = (float)(sh * dr__rng_normal(&r));
    for (size_t k = 0; k < (size_t)a->hd * a->Y; k++) t[a->oV1 + k] = (float)(sy * dr__rng_normal(&r));
    for (size_t k = 0; k < (size_t)a->d * a->hd; k++) t[a->oV2 + k] = (float)(sh * dr__rng_normal(&r));
    for (uint32_t c = 0; c < a->d; c++) t[a->ogs + c] = t[a->ohs + c] = a->p.skip_init;
    t[a->oca] = a->p.gate_bias;
    t[a->owa + a->d] = a->p.cold_gate_bias; /* weight of the cold flag */
    t[a->ocb] = a->p.gate_bias;
    memcpy(a->anchor, t, a->n_params * sizeof *t);
    memset(a->fisher, 0, a->n_params * sizeof *t);
}

static void recompute_row(dr_adapter *a, uint32_t i) {
    float *x = a->xin + (size_t)i * a->X;
    dr__adapter_item_input(a, i, x);
    side_forward(a->theta, G_ARGS(a), a->hd, a->d, a->p.no_gates, x, a->z0 + (size_t)i * a->d,
                 a->tmp_hid, a->tmp_d, a->zp + (size_t)i * a->d);
}

/* out (rows, d) = W2 tanh(W1 x + b1) + b2 over rows of x with sgemm; gate (rows) */
static void g_forward_rows(dr_adapter *a, const float *x, uint32_t rows) {
    const float *t = a->theta;
    uint32_t hd = a->hd, d = a->d, X = a->X;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)hd, (int)X, 1.0f, x,
                (int)X, t + a->oW1, (int)X, 0.0f, a->s_hid, (int)hd);
    for (uint32_t r = 0; r < rows; r++) {
        float *hr = a->s_hid + (size_t)r * hd;
        for (uint32_t j = 0; j < hd; j++) hr[j] = act(hr[j] + t[a->ob1 + j]);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)d, (int)hd, 1.0f,
                a->s_hid, (int)hd, t + a->oW2, (int)hd, 0.0f, a->s_out, (int)d);
    for (uint32_t r = 0; r < rows; r++) { /* + b2 + gs * co-click mean */
        const float *cm = x + (size_t)r * X + d + 4;
        float *o = a->s_out + (size_t)r * d;
        for (uint32_t c = 0; c < d; c++) o[c] += t[a->ob2 + c] + t[a->ogs + c] * cm[c];
    }
    if (a->p.no_gates) {
        for (uint32_t r = 0; r < rows; r++) a->s_gate[r] = 1.0f;
        return;
    }
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)rows, (int)X, 1.0f, x, (int)X, t + a->owa, 1,
                0.0f, a->s_gate, 1);
    for (uint32_t r = 0; r < rows; r++) a->s_gate[r] = sigm(t[a->oca] + a->s_gate[r]);
}

/* z' of every item from xin with sgemm */
static void refresh_all(dr_adapter *a) {
    g_forward_rows(a, a->xin, a->n_active);
    a->refreshes++;
    uint32_t d = a->d;
    for (uint32_t i = 0; i < a->n_active; i++) {
        const float *z = a->z0 + (size_t)i * d, *g = a->s_out + (size_t)i * d;
        float gt = a->s_gate[i], *o = a->zp + (size_t)i * d;
        for (uint32_t c = 0; c < d; c++) o[c] = z[c] + gt * g[c];
    }
    mark_all_items(a);
}

dr_status dr__adapter_create(const dr_adapter_params *p, uint32_t n_users, uint32_t n_items,
                            uint32_t d, const float *z, const uint8_t *cold, dr_adapter **out,
                            dr_error *err) {
    if (!p || !z || !out || !n_items || !n_users) return dr__fail(err, DR_ARG, "adapter: bad argument");
    *out = NULL;
    if (!d || d > 1024 || !p->hidden || p->hidden > 1024 || p->negatives < 1 ||
        p->negatives > DR_ADP_MAX_NEG || !p->g_batch || p->g_batch > 65536 || !p->steps ||
        !(p->lr >= 0) || !(p->lr_g >= 0) || !(p->neg_pop >= 0 && p->neg_pop <= 1))
        return dr__fail(err, DR_ARG,
                       "adapter: d 1..1024, hidden 1..1024, negatives 1..%u, g_batch >= 1, "
                       "steps >= 1, lr >= 0, neg_pop in [0, 1]", DR_ADP_MAX_NEG);
    dr_status st = DR_NOMEM;
    dr_adapter *a = dr__calloc(1, sizeof *a);
    if (!a) return dr__fail(err, DR_NOMEM, "adapter: out of memory");
    a->p = *p;
    if (!(a->p.window.seconds_per_unit > 0)) a->p.window.seconds_per_unit = 1.0;
    a->n_users = n_users;
    a->n_items = n_items;
    a->n_active = n_items;
    a->d = d;
    a->hd = p->hidden;
    a->X = DR_ADP_X(d);
    a->Y = DR_ADP_Y(d);
    a->ncand = p->negatives + 1;
    uint32_t hd = a->hd, X = a->X, Y = a->Y;
    size_t o = 0;
    a->oW1 = o, o += (size_t)hd * X;
    a->ob1 = o, o += hd;
    a->oW2 = o, o += (size_t)d * hd;
    a->ob2 = o, o += d;
    a->ogs = o, o += d;
    a->owa = o, o += X;
    a->oca = o, o += 1;
    a->nG = o;
    a->oV1 = o, o += (size_t)hd * Y;
    a->oc1 = o, o += hd;
    a->oV2 = o, o += (size_t)d * hd;
    a->oc2 = o, o += d;
    a->ohs = o, o += d;
    a->owb = o, o += Y;
    a->ocb = o, o += 1;
    a->n_params = o;
    size_t brows = (size_t)p->g_batch * a->ncand;
    a->rows_max = (uint32_t)DR_MAX((size_t)n_items, brows);
    a->block = dr__calloc(4 * o, sizeof *a->block);
    a->z0 = dr__malloc((size_t)n_items * d * sizeof *a->z0);
    a->cold = dr__calloc(n_items, 1);
    a->rebased = dr__calloc(n_items, 1);
    a->xin = dr__calloc((size_t)n_items * X, sizeof *a->xin);
    a->zp = dr__calloc((size_t)n_items * d, sizeof *a->zp);
    a->cand = dr__calloc(a->ncand, sizeof *a->cand);
    a->y = dr__calloc(Y, sizeof(float));
    a->hh = dr__calloc(hd, sizeof(float));
    a->hv = dr__calloc(d, sizeof(float));
    a->hp = dr__calloc(d, sizeof(float));
    a->dh = dr__calloc(d, sizeof(float));
    a->lg = dr__calloc(a->ncand, sizeof(float));
    a->dz = dr__calloc((size_t)a->ncand * d, sizeof(float));
    a->tmp_hid = dr__calloc(hd, sizeof(float));
    a->tmp_d = dr__calloc(d, sizeof(float));
    a->bx = dr__calloc(brows * X, sizeof(float));
    a->bdz = dr__calloc(brows * d, sizeof(float));
    a->s_hid = dr__calloc((size_t)a->rows_max * hd, sizeof(float));
    a->s_out = dr__calloc((size_t)a->rows_max * d, sizeof(float));
    a->s_gate = dr__calloc(a->rows_max, sizeof(float));
    a->s_dhid = dr__calloc((size_t)a->rows_max * hd, sizeof(float));
    a->s_dg = dr__calloc((size_t)a->rows_max * d, sizeof(float));
    if (!a->block || !a->z0 || !a->cold || !a->rebased || !a->xin || !a->zp || !a->cand || !a->y || !a->hh ||
        !a->hv || !a->hp || !a->dh || !a->lg || !a->dz || !a->tmp_hid || !a->tmp_d || !a->bx ||
        !a->bdz || !a->s_hid || !a->s_out || !a->s_gate || !a->s_dhid || !a->s_dg)
        goto fail;
    size_t nuh = o - a->nG;
    for (int b = 0; b < NBUF; b++) {
        dr_adapter_snapshot *s = &a->buf[b];
        s->n_items = n_items, s->n_users = n_users, s->d = d, s->hidden = hd;
        s->dp = (d + 3u) & ~3u;
        s->spu = a->p.window.seconds_per_unit;
        s->no_gates = p->no_gates;
        s->zp = dr__calloc((size_t)n_items * s->dp, sizeof(float));
        if (dr__bf16_wanted(n_items, s->dp) && dr__bf16_create(n_items, s->dp, &s->zq, NULL) != DR_OK)
            goto fail;
        s->uparams = dr__calloc(nuh, sizeof(float));
        s->umean = dr__calloc((size_t)n_users * d, sizeof(float));
        s->ulast = dr__calloc(n_users, sizeof(int64_t));
        s->ucount = dr__calloc(n_users, sizeof(uint64_t));
        atomic_init(&s->refs, 0);
        a->idirty[b] = dr__calloc(n_items, 1);
        a->ilist[b] = dr__calloc(n_items, sizeof(uint32_t));
        a->udirty[b] = dr__calloc(n_users, 1);
        a->ulist[b] = dr__calloc(n_users, sizeof(uint32_t));
        if (!s->zp || !s->uparams || !s->umean || !s->ulast || !s->ucount || !a->idirty[b] ||
            !a->ilist[b] || !a->udirty[b] || !a->ulist[b])
            goto fail;
        a->ifull[b] = 1;
    }
    atomic_init(&a->current, NULL);
    a->theta = a->block;
    a->fisher = a->block + o;
    a->anchor = a->block + 2 * o;
    a->grad = a->block + 3 * o;
    for (uint32_t i = 0; i < n_items; i++) {
        a->cold[i] = cold ? (cold[i] != 0) : 0;
        if (a->cold[i])
            memset(a->z0 + (size_t)i * d, 0, d * sizeof(float));
        else
            memcpy(a->z0 + (size_t)i * d, z + (size_t)i * d, d * sizeof(float));
    }
    if ((st = dr__window_create(&a->p.window, n_users, n_items, d, a->z0, &a->win, err)) != DR_OK)
        goto fail;
    init_params(a);
    dr__rng_seed(&a->rng, p->seed, 11);
    for (uint32_t i = 0; i < n_items; i++) dr__adapter_item_input(a, i, a->xin + (size_t)i * X);
    refresh_all(a);
    *out = a;
    return DR_OK;
fail:
    dr__adapter_free(a);
    if (st == DR_NOMEM) return dr__fail(err, DR_NOMEM, "adapter: out of memory");
    return st;
}

uint32_t dr__adapter_dim(const dr_adapter *a) { return a->d; }
size_t dr__adapter_n_params(const dr_adapter *a) { return a->n_params; }
float *dr__adapter_params_block(dr_adapter *a) { return a->theta; }
const float *dr__adapter_items(const dr_adapter *a) { return a->zp; }
const dr_window *dr__adapter_window(const dr_adapter *a) { return a ? a->win : NULL; }

uint64_t dr__adapter_version(const dr_adapter *a) { return a->version; }

void dr__adapter_set_active_items(dr_adapter *a, uint32_t n, int recompute) {
    if (n > a->n_items) n = a->n_items;
    if (!n) n = 1;
    for (uint32_t i = a->n_active; recompute && i < n; i++) {
        recompute_row(a, i);
        mark_item(a, i);
    }
    a->n_active = n;
}
uint32_t dr__adapter_active_items(const dr_adapter *a) { return a->n_active; }

dr_status dr__adapter_set_item_base(dr_adapter *a, uint32_t i, const float *z, int cold,
                                   dr_error *err) {
    if (!a || !z) return dr__fail(err, DR_ARG, "adapter: NULL argument");
    if (i >= a->n_active)
        return dr__fail(err, DR_RANGE, "adapter: item %u >= %u items in use", i, a->n_active);
    uint32_t d = a->d;
    float *row = a->z0 + (size_t)i * d;
    const uint32_t *ch;
    size_t nch;
    dr__window_rebase_item(a->win, i, z, &ch, &nch); /* reads the old row: before the copy */
    if (cold) memset(row, 0, d * sizeof *row);
    else memcpy(row, z, d * sizeof *row);
    a->cold[i] = cold != 0;
    a->rebased[i] = 1;
    for (size_t k = 0; k < nch; k++) {
        recompute_row(a, ch[k]);
        mark_item(a, ch[k]);
    }
    recompute_row(a, i);
    mark_item(a, i);
    a->rows_recomputed += nch + 1;
    /* users whose ring holds i: their published mean of base latents moves */
    for (uint32_t u = 0; u < a->n_users; u++) {
        uint32_t m = dr__window_user_ring(a->win, u, a->ring);
        for (uint32_t k = 0; k < m; k++)
            if (a->ring[k] == i) {
                mark_user(a, u);
                break;
            }
    }
    a->version++;
    return DR_OK;
}
void dr__adapter_counters(const dr_adapter *a, uint64_t *updates, uint64_t *rows, uint64_t *refreshes) {
    *updates = a->n_updates;
    *rows = a->rows_recomputed;
    *refreshes = a->refreshes;
}
uint32_t dr__adapter_last_candidates(const dr_adapter *a, const uint32_t **items) {
    *items = a->cand;
    return a->ncand;
}

/* ---------------------------------------------------------------- learning */

/* theta[lo, hi) -= lr * grad, with EWC, Fisher and anchor updates (grad = ranking+KL part) */
/* fs: the ranking gradient of the step is fs * (one event's gradient), so the Fisher, an
 * estimate of a single event's squared gradient, takes (g / fs)^2 (fs = events in a G batch) */
static void sgd_range(dr_adapter *a, size_t lo, size_t hi, float lr, float fs) {
    float r = a->p.fisher_decay, le = a->p.lambda_ewc, ae = a->p.anchor_ema, cl = a->p.clip;
    float *th = a->theta, *g = a->grad, *F = a->fisher, *an = a->anchor;
    if (le == 0 && cl == 0 && ae == 0) { /* plain SGD; F is only tracked when EWC is on */
        for (size_t k = lo; k < hi; k++) th[k] -= lr * g[k];
        return;
    }
    for (size_t k = lo; k < hi; k++) {
        float gk = g[k];
        float gt = gk + 2.0f * le * F[k] * (th[k] - an[k]);
        if (cl > 0) gt = gt > cl ? cl : (gt < -cl ? -cl : gt);
        F[k] = (1.0f - r) * F[k] + r * (gk / fs) * (gk / fs);
        th[k] -= lr * gt;
        if (ae > 0) an[k] = (1.0f - ae) * an[k] + ae * th[k];
    }
}

/* The G step on the buffered candidates, then a full z' refresh. */
static void g_step(dr_adapter *a) {
    uint32_t rows = a->b_rows, d = a->d, hd = a->hd, X = a->X;
    if (!rows) return;
    g_forward_rows(a, a->bx, rows);
    float lk = a->p.lambda_kl;
    memset(a->grad, 0, a->nG * sizeof(float));
    float *gr = a->grad;
    for (uint32_t r = 0; r < rows; r++) {
        const float *xr = a->bx + (size_t)r * X, *g = a->s_out + (size_t)r * d;
        const float *dzr = a->bdz + (size_t)r * d;
        float gt = a->s_gate[r], *dg = a->s_dg + (size_t)r * d, da = 0;
        int warm = xr[d] < 0.5f;
        for (uint32_t c = 0; c < d; c++) {
            float dzc = dzr[c] + (warm ? 2.0f * lk * gt * g[c] : 0.0f);
            dg[c] = gt * dzc;
            da += g[c] * dzc;
            gr[a->ogs + c] += dg[c] * xr[d + 4 + c];
        }
        if (!a->p.no_gates) {
            float dpre = da * gt * (1.0f - gt);
            gr[a->oca] += dpre;
            for (uint32_t k = 0; k < X; k++) gr[a->owa + k] += dpre * xr[k];
        }
    }
    /* dW2 (d, hd) += dg^T hid; db2 += sum dg */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, (int)hd, (int)rows, 1.0f,
                a->s_dg, (int)d, a->s_hid, (int)hd, 1.0f, gr + a->oW2, (int)hd);
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t c = 0; c < d; c++) gr[a->ob2 + c] += a->s_dg[(size_t)r * d + c];
    /* dhid (rows, hd) = dg W2, times tanh' */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)hd, (int)d, 1.0f,
                a->s_dg, (int)d, a->theta + a->oW2, (int)hd, 0.0f, a->s_dhid, (int)hd);
    for (size_t k = 0; k < (size_t)rows * hd; k++) {
        float h = a->s_hid[k];
        a->s_dhid[k] *= 1.0f - h * h;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)hd, (int)X, (int)rows, 1.0f,
                a->s_dhid, (int)hd, a->bx, (int)X, 1.0f, gr + a->oW1, (int)X);
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t j = 0; j < hd; j++) gr[a->ob1 + j] += a->s_dhid[(size_t)r * hd + j];
    sgd_range(a, 0, a->nG, a->p.lr_g, (float)(a->b_events ? a->b_events : 1));
    a->b_rows = 0;
    a->b_events = 0;
    refresh_all(a);
}

void dr__adapter_flush(dr_adapter *a) { g_step(a); }

static uint32_t sample_negative(dr_adapter *a, uint32_t pos) {
    for (int tries = 0; tries < 16; tries++) {
        uint32_t j;
        if (a->p.neg_pop > 0 && dr__rng_uniform(&a->rng) < a->p.neg_pop &&
            dr__window_size(a->win) > 0)
            j = dr__window_sample_item(a->win, dr__rng_uniform(&a->rng));
        else
            j = (uint32_t)dr__rng_below(&a->rng, a->n_active);
        if (j != pos) return j;
    }
    return (pos + 1) % a->n_active;
}

/* sampled softmax over logits lg (n); writes dl = softmax - onehot(0) into lg; returns loss */
static float softmax_loss(float *lg, uint32_t n) {
    float mx = lg[0];
    for (uint32_t k = 1; k < n; k++) mx = lg[k] > mx ? lg[k] : mx;
    double s = 0;
    for (uint32_t k = 0; k < n; k++) s += exp((double)(lg[k] - mx));
    float loss = (float)(log(s) + mx - lg[0]);
    for (uint32_t k = 0; k < n; k++) lg[k] = (float)(exp((double)(lg[k] - mx)) / s);
    lg[0] -= 1.0f;
    return loss;
}

dr_status dr__adapter_update(dr_adapter *a, uint32_t u, uint32_t i, int64_t t, const float *h,
                            dr_error *err) {
    if (!a || !h) return dr__fail(err, DR_ARG, "adapter: NULL argument");
    if (u >= a->n_users || i >= a->n_active)
        return dr__fail(err, DR_RANGE, "adapter: event (%u, %u) outside %u users, %u items in use", u,
                       i, a->n_users, a->n_active);
    if (dr__window_pushed(a->win) && t < dr__window_last_time(a->win))
        return dr__fail(err, DR_ARG, "adapter: time %lld before the last event's %lld",
                       (long long)t, (long long)dr__window_last_time(a->win));
    uint32_t d = a->d, nc = a->ncand, X = a->X;
    a->cand[0] = i;
    for (uint32_t k = 1; k < nc; k++) a->cand[k] = sample_negative(a, i);
    /* user side: steps SGD steps on H and the user gate; z' fixed */
    dr__adapter_user_input(a, u, t, h, a->y);
    float lk = a->p.lambda_kl;
    for (uint32_t step = 0; step < a->p.steps; step++) {
        float gate = side_forward(a->theta, H_ARGS(a), a->hd, d, a->p.no_gates, a->y, h, a->hh,
                                  a->hv, a->hp);
        for (uint32_t k = 0; k < nc; k++) a->lg[k] = dotf(a->hp, a->zp + (size_t)a->cand[k] * d, d);
        softmax_loss(a->lg, nc);
        for (uint32_t c = 0; c < d; c++) a->dh[c] = 2.0f * lk * gate * a->hv[c];
        for (uint32_t k = 0; k < nc; k++) {
            const float *zk = a->zp + (size_t)a->cand[k] * d;
            float *dzk = a->dz + (size_t)k * d;
            for (uint32_t c = 0; c < d; c++) {
                a->dh[c] += a->lg[k] * zk[c];
                dzk[c] = a->lg[k] * a->hp[c];
            }
        }
        if (step == 0) { /* buffer the candidates for the G step (first step's dL/dz') */
            for (uint32_t k = 0; k < nc; k++) {
                memcpy(a->bx + (size_t)(a->b_rows + k) * X, a->xin + (size_t)a->cand[k] * X,
                       X * sizeof(float));
                memcpy(a->bdz + (size_t)(a->b_rows + k) * d, a->dz + (size_t)k * d,
                       d * sizeof(float));
            }
            a->b_rows += nc;
            a->b_events++;
        }
        memset(a->grad + a->nG, 0, (a->n_params - a->nG) * sizeof(float));
        side_backward(a->theta, H_ARGS(a), a->hd, d, a->p.no_gates, a->y, a->hh, a->hv, gate,
                      a->dh, a->tmp_d, a->grad);
        sgd_range(a, a->nG, a->n_params, a->p.lr, 1.0f);
    }
    /* window, then the z' rows whose inputs changed (G unchanged since the last refresh) */
    const uint32_t *ch;
    size_t nch;
    dr_status st = dr__window_push(a->win, u, i, t, &ch, &nch, err);
    if (st != DR_OK) return st;
    a->rows_recomputed += nch;
    for (size_t k = 0; k < nch; k++) {
        recompute_row(a, ch[k]);
        mark_item(a, ch[k]);
    }
    mark_user(a, u);
    a->n_updates++;
    a->version++;
    if (a->b_events >= a->p.g_batch) g_step(a);
    if (a->p.publish_every && a->n_updates % a->p.publish_every == 0) (void)publish_snapshot(a);
    return DR_OK;
}

/* ---------------------------------------------------------------- reference loss, slow twin */

double dr__adapter_event_loss(const dr_adapter *a, const float *theta, const float *y,
                             const float *x, uint32_t n_cand, float *grad) {
    uint32_t d = a->d, hd = a->hd, X = a->X;
    int ng = a->p.no_gates;
    float *hid = dr__malloc(((size_t)n_cand + 1) * hd * sizeof(float));
    float *mlp = dr__malloc(((size_t)n_cand + 1) * d * sizeof(float));
    float *zp = dr__malloc(((size_t)n_cand + 1) * d * sizeof(float));
    float *gates = dr__malloc(((size_t)n_cand + 1) * sizeof(float));
    float *lg = dr__malloc((size_t)n_cand * sizeof(float));
    float *dout = dr__malloc((size_t)d * sizeof(float)), *dmlp = dr__malloc((size_t)d * sizeof(float));
    float *hp = zp + (size_t)n_cand * d;
    double loss = 0;
    /* user */
    float gu = side_forward(theta, H_ARGS(a), hd, d, ng, y, y, hid + (size_t)n_cand * hd,
                            mlp + (size_t)n_cand * d, hp);
    for (uint32_t k = 0; k < n_cand; k++)
        gates[k] = side_forward(theta, G_ARGS(a), hd, d, ng, x + (size_t)k * X, x + (size_t)k * X,
                                hid + (size_t)k * hd, mlp + (size_t)k * d, zp + (size_t)k * d);
    double mx = -1e300, s = 0;
    for (uint32_t k = 0; k < n_cand; k++) {
        double v = 0;
        for (uint32_t c = 0; c < d; c++) v += (double)hp[c] * zp[(size_t)k * d + c];
        lg[k] = (float)v;
        mx = v > mx ? v : mx;
    }
    for (uint32_t k = 0; k < n_cand; k++) s += exp(lg[k] - mx);
    loss += log(s) + mx - lg[0];
    double lk = a->p.lambda_kl, kl = 0;
    for (uint32_t c = 0; c < d; c++) kl += (double)(hp[c] - y[c]) * (hp[c] - y[c]);
    for (uint32_t k = 0; k < n_cand; k++)
        if (x[(size_t)k * X + d] < 0.5f)
            for (uint32_t c = 0; c < d; c++) {
                double e = (double)zp[(size_t)k * d + c] - x[(size_t)k * X + c];
                kl += e * e;
            }
    loss += lk * kl;
    double ewc = 0;
    for (size_t p = 0; p < a->n_params; p++) {
        double e = (double)theta[p] - a->anchor[p];
        ewc += a->fisher[p] * e * e;
    }
    loss += a->p.lambda_ewc * ewc;
    if (grad) {
        memset(grad, 0, a->n_params * sizeof(float));
        for (uint32_t k = 0; k < n_cand; k++) lg[k] = (float)(exp(lg[k] - mx) / s) - (k == 0);
        /* user side */
        for (uint32_t c = 0; c < d; c++) {
            double v = 2.0 * lk * (hp[c] - y[c]);
            for (uint32_t k = 0; k < n_cand; k++) v += (double)lg[k] * zp[(size_t)k * d + c];
            dout[c] = (float)v;
        }
        side_backward(theta, H_ARGS(a), hd, d, ng, y, hid + (size_t)n_cand * hd,
                      mlp + (size_t)n_cand * d, gu, dout, dmlp, grad);
        for (uint32_t k = 0; k < n_cand; k++) {
            const float *xk = x + (size_t)k * X;
            int warm = xk[d] < 0.5f;
            for (uint32_t c = 0; c < d; c++)
                dout[c] = lg[k] * hp[c] +
                          (warm ? (float)(2.0 * lk * ((double)zp[(size_t)k * d + c] - xk[c])) : 0.0f);
            side_backward(theta, G_ARGS(a), hd, d, ng, xk, hid + (size_t)k * hd,
                          mlp + (size_t)k * d, gates[k], dout, dmlp, grad);
        }
        if (ng) {
            for (size_t p = a->owa; p <= a->oca; p++) grad[p] = 0;
            for (size_t p = a->owb; p <= a->ocb; p++) grad[p] = 0;
        }
        for (size_t p = 0; p < a->n_params; p++)
            grad[p] += (float)(2.0 * a->p.lambda_ewc * a->fisher[p] * ((double)theta[p] - a->anchor[p]));
    }
    dr__free(hid);
    dr__free(mlp);
    dr__free(zp);
    dr__free(gates);
    dr__free(lg);
    dr__free(dout);
    dr__free(dmlp);
    return loss;
}

dr_status dr__adapter_items_slow(const dr_adapter *a, float *out, dr_error *err) {
    float *x = dr__malloc(a->X * sizeof *x), *hid = dr__malloc(a->hd * sizeof *hid),
          *mlp = dr__malloc(a->d * sizeof *mlp);
    if (!x || !hid || !mlp) {
        dr__free(x);
        dr__free(hid);
        dr__free(mlp);
        return dr__fail(err, DR_NOMEM, "adapter: out of memory");
    }
    for (uint32_t i = 0; i < a->n_items; i++) {
        dr__adapter_item_input(a, i, x);
        side_forward(a->theta, G_ARGS(a), a->hd, a->d, a->p.no_gates, x, a->z0 + (size_t)i * a->d,
                     hid, mlp, out + (size_t)i * a->d);
    }
    dr__free(x);
    dr__free(hid);
    dr__free(mlp);
    return DR_OK;
}
