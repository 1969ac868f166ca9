/*
 * adapter_int.h - the online adapter's internals, shared by adapter.c (learning),
 * adapter_snapshot.c (publication, readers) and adapter_io.c (state): the layouts of
 * struct dr_adapter and struct dr_adapter_snapshot, and the small pieces more than one of them
 * runs, as static inline functions so that every path computes with the very same code (the
 * writer's h' and a reader's h' agree to the bit; see adapter.c for the model).
 *
 * The snapshot fill (publish_snapshot) is here rather than in adapter_snapshot.c because
 * dr__adapter_update publishes too: adapter.c calling into adapter_snapshot.c, which includes
 * adapter.h, would make the two files depend on each other. Not for use outside these three
 * files; the rest of the library uses adapter.h.
 */
#ifndef DR_ADAPTER_INT_H
#define DR_ADAPTER_INT_H

#include "adapter.h"

#include <math.h>
#include <stdatomic.h>

#include "rng.h"
#include "scan.h"

#define NBUF 3

struct dr_adapter_snapshot {
    uint32_t n_items, n_users, d, hidden;
    uint32_t dp;        /* row stride of zp: d rounded up to 4 (zero padding) */
    int no_gates;
    double spu;
    float *zp;          /* (n_items, dp): OpenBLAS's sgemv is ~25% slower at d = 51 than 52 */
    dr_scan_bf16 *zq;   /* bf16 copy of zp for the scan (scan.h); NULL below its size rule */
    float *uparams;     /* (n_uparams) H + user gate */
    float *umean;       /* (n_users, d) mean base latent of the user's ring */
    int64_t *ulast;     /* (n_users) time of the user's last event */
    uint64_t *ucount;   /* (n_users) events of the user */
    uint64_t version;
    uint64_t checksum;
    atomic_uint refs;
};

struct dr_adapter {
    dr_adapter_params p;
    uint32_t n_users, n_items, d, hd, X, Y, ncand, rows_max;
    uint32_t n_active;  /* rows [0, n_active) in use (dr__adapter_set_active_items) */
    /* offsets into theta */
    size_t oW1, ob1, oW2, ob2, ogs, owa, oca, oV1, oc1, oV2, oc2, ohs, owb, ocb, nG, n_params;
    float *block;       /* one allocation: theta | F | anchor | grad (each n_params) */
    float *theta, *fisher, *anchor, *grad;
    float *z0;          /* (n_items, d) base latents, cold rows 0 */
    uint8_t *cold;      /* (n_items) */
    uint8_t *rebased;   /* (n_items) 1 = z0 row set by dr__adapter_set_item_base (saved with it) */
    float *xin;         /* (n_items, X) current item inputs */
    float *zp;          /* (n_items, d) z' */
    dr_window *win;
    dr_rng rng;
    /* per-event scratch */
    uint32_t *cand;     /* (ncand) */
    float *y, *hh, *hv, *hp, *dh, *lg, *dz; /* Y, hd, d, d, d, ncand, (ncand, d) */
    float *tmp_hid, *tmp_d;                 /* hd, d */
    /* G batch buffer */
    float *bx;          /* (g_batch * ncand, X) */
    float *bdz;         /* (g_batch * ncand, d) dL/dz' of the ranking loss */
    uint32_t b_rows, b_events;
    /* batch / refresh scratch (rows_max = max(n_items, g_batch * ncand)) */
    float *s_hid, *s_out, *s_gate, *s_dhid, *s_dg; /* (rows, hd) (rows, d) (rows) (rows, hd) (rows, d) */
    uint64_t n_updates, version;
    uint64_t rows_recomputed, refreshes; /* counters for benchmarks */
    /* snapshots */
    dr_adapter_snapshot buf[NBUF];
    _Atomic(dr_adapter_snapshot *) current;
    uint8_t *idirty[NBUF];   /* (n_items) */
    uint32_t *ilist[NBUF];   /* (n_items) */
    size_t n_ilist[NBUF];
    int ifull[NBUF];
    uint8_t *udirty[NBUF];   /* (n_users) */
    uint32_t *ulist[NBUF];   /* (n_users) */
    size_t n_ulist[NBUF];
    uint32_t ring[1024];
};

static inline float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Dot product in two 4-lane vector accumulators (GCC/Clang vector extensions, plain SSE2):
 * the compiler may not reassociate a float reduction (no -ffast-math), so a scalar loop runs
 * at one add per FMA latency. Every path (row recompute, reference loss, snapshots) uses
 * this one function, so they agree to the bit. */
typedef float adp_v4 __attribute__((vector_size(16)));
static inline float dotf(const float *a, const float *b, uint32_t n) {
    adp_v4 s0 = {0, 0, 0, 0}, s1 = {0, 0, 0, 0};
    uint32_t k = 0;
    for (; k + 8 <= n; k += 8) {
        adp_v4 a0, a1, b0, b1;
        memcpy(&a0, a + k, 16);
        memcpy(&a1, a + k + 4, 16);
        memcpy(&b0, b + k, 16);
        memcpy(&b1, b + k + 4, 16);
        s0 += a0 * b0;
        s1 += a1 * b1;
    }
    s0 += s1;
    float r = (s0[0] + s0[1]) + (s0[2] + s0[3]);
    for (; k < n; k++) r += a[k] * b[k];
    return r;
}

/* tanh by Lambert's continued fraction (7/6 rational), clamped at |x| = 4.97 where it reaches
 * 0.99990 (|error| < 1e-4 beyond, < 2e-7 inside): branch-free, so the compiler vectorises
 * the refresh loops; libm's tanhf was a third of the update time. The backward pass uses
 * 1 - act^2, as for tanh. */
static inline float act(float x) {
    x = x > 4.97f ? 4.97f : (x < -4.97f ? -4.97f : x);
    float x2 = x * x;
    float p = x * (135135.0f + x2 * (17325.0f + x2 * (378.0f + x2)));
    float q = 135135.0f + x2 * (62370.0f + x2 * (3150.0f + 28.0f * x2));
    return p / q;
}

/* One side of the adapter: out = base + gate * MLP(in); writes hid, mlp (d) and the gate. */
static inline float side_forward(const float *th, size_t oW1, size_t ob1, size_t oW2, size_t ob2,
                                 size_t ow, size_t oc, uint32_t nin, size_t os, uint32_t skip,
                                 uint32_t hd, uint32_t d, int no_gates, const float *in,
                                 const float *base, float *hid, float *mlp, float *out) {
    dr__adp_mlp_forward(th + oW1, th + ob1, th + oW2, th + ob2, nin, hd, d, in, hid, mlp);
    for (uint32_t c = 0; c < d; c++) mlp[c] += th[os + c] * in[skip + c];
    float g = no_gates ? 1.0f : sigm(th[oc] + dotf(th + ow, in, nin));
    for (uint32_t c = 0; c < d; c++) out[c] = base[c] + g * mlp[c];
    return g;
}

/* mean (d) of the base latents of the user's ring, oldest first; returns the event count */
static inline uint64_t user_summary(const dr_adapter *a, uint32_t u, float *mean, int64_t *last,
                                    uint32_t *ring) {
    uint64_t n = dr__window_user_info(a->win, u, last);
    uint32_t m = dr__window_user_ring(a->win, u, ring);
    memset(mean, 0, a->d * sizeof *mean);
    for (uint32_t k = 0; k < m; k++) {
        const float *z = a->z0 + (size_t)ring[k] * a->d;
        for (uint32_t c = 0; c < a->d; c++) mean[c] += z[c];
    }
    for (uint32_t c = 0; m && c < a->d; c++) mean[c] /= (float)m;
    return n;
}

/* y = [h; log1p(hours since last); log1p(count); mean] (the same code for writer and readers) */
static inline void user_input_from(uint32_t d, double spu, const float *h, const float *mean,
                                   uint64_t count, int64_t last, int64_t now, float *y) {
    memcpy(y, h, d * sizeof *y);
    double dt = count ? (double)(now - last) * spu / 3600.0 : 0.0;
    y[d] = (float)log1p(dt > 0 ? dt : 0.0);
    y[d + 1] = (float)log1p((double)count);
    memcpy(y + d + 2, mean, d * sizeof *y);
}

/* ---------------------------------------------------------------- snapshot buffers: dirty rows */

static inline void mark_all_items(dr_adapter *a) {
    for (int b = 0; b < NBUF; b++) a->ifull[b] = 1;
}

static inline void mark_item(dr_adapter *a, uint32_t i) {
    for (int b = 0; b < NBUF; b++)
        if (!a->ifull[b] && !a->idirty[b][i]) {
            a->idirty[b][i] = 1;
            a->ilist[b][a->n_ilist[b]++] = i;
        }
}

static inline void mark_user(dr_adapter *a, uint32_t u) {
    for (int b = 0; b < NBUF; b++)
        if (!a->udirty[b][u]) {
            a->udirty[b][u] = 1;
            a->ulist[b][a->n_ulist[b]++] = u;
        }
}

/* ---------------------------------------------------------------- snapshots: the writer's fill */

static inline uint64_t snap_hash(const dr_adapter_snapshot *s, size_t nup) {
    uint64_t h = dr__xxh64(s->zp, (size_t)s->n_items * s->dp * sizeof(float), s->version);
    h = dr__xxh64(s->uparams, nup * sizeof(float), h);
    h = dr__xxh64(s->umean, (size_t)s->n_users * s->d * sizeof(float), h);
    h = dr__xxh64(s->ulast, s->n_users * sizeof(int64_t), h);
    return dr__xxh64(s->ucount, s->n_users * sizeof(uint64_t), h);
}

/* Fills a buffer that is neither current nor held and makes it current (adapter_snapshot.c);
 * returns 0 when every spare buffer is held. dr__adapter_publish, and dr__adapter_update every
 * publish_every updates. */
static inline int publish_snapshot(dr_adapter *a) {
    dr_adapter_snapshot *cur = atomic_load(&a->current);
    int b = -1;
    for (int k = 0; k < NBUF; k++)
        if (&a->buf[k] != cur && atomic_load(&a->buf[k].refs) == 0) {
            b = k;
            break;
        }
    if (b < 0) return 0;
    dr_adapter_snapshot *s = &a->buf[b];
    uint32_t d = a->d;
    if (a->ifull[b]) {
        for (uint32_t i = 0; i < a->n_active; i++)
            memcpy(s->zp + (size_t)i * s->dp, a->zp + (size_t)i * d, d * sizeof(float));
        if (s->zq) {
            dr__bf16_reset_bounds(s->zq);
            dr__bf16_set_rows(s->zq, s->zp, s->dp, 0, a->n_active);
        }
        a->ifull[b] = 0;
    } else {
        for (size_t k = 0; k < a->n_ilist[b]; k++) {
            uint32_t i = a->ilist[b][k];
            memcpy(s->zp + (size_t)i * s->dp, a->zp + (size_t)i * d, d * sizeof(float));
            if (s->zq) dr__bf16_set_rows(s->zq, s->zp, s->dp, i, 1);
        }
    }
    for (size_t k = 0; k < a->n_ilist[b]; k++) a->idirty[b][a->ilist[b][k]] = 0;
    a->n_ilist[b] = 0;
    for (size_t k = 0; k < a->n_ulist[b]; k++) {
        uint32_t u = a->ulist[b][k];
        s->ucount[u] = user_summary(a, u, s->umean + (size_t)u * d, &s->ulast[u], a->ring);
        a->udirty[b][u] = 0;
    }
    a->n_ulist[b] = 0;
    size_t nup = a->n_params - a->nG;
    memcpy(s->uparams, a->theta + a->nG, nup * sizeof(float));
    s->version = a->version;
    s->checksum = a->p.checksum ? snap_hash(s, nup) : 0;
    atomic_store(&a->current, s);
    return 1;
}

#endif
