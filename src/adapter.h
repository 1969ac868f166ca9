/*
 * adapter.h - the online adapter over a frozen dot-product base (internal). See adapter.c.
 *
 *   z'_i = z~_i + a_i G([z~_i; s_i])      a_i = sigmoid(wa . [z~_i; s_i] + ca)
 *   h'_u = h_u  + b_u H([h_u; r_u])       b_u = sigmoid(wb . [h_u; r_u] + cb)
 * G, H: two-layer MLPs plus a per-dimension skip from the co-click mean / ring mean.
 * Threads: one writer thread owns the adapter (create, update, flush, user, items, publish,
 * save, load, free); any number of reader threads use only acquire / the dr__snapshot_*
 * functions / release, lock-free, while the writer updates.
 * z~_i is the base latent, or 0 for a cold item (no base signal); s_i = [cold_i, window item
 * stats (adapter_window.h)], r_u = window user stats. G, H: d_in -> hidden (tanh) -> d.
 * Item input x_i: (DR_ADP_X(d)) = [z~_i (d), cold (1), s_i (d + 3)].
 * User input y_u: (DR_ADP_Y(d)) = [h_u (d), r_u (d + 2)].
 */
#ifndef DR_ADAPTER_H
#define DR_ADAPTER_H

#include "common.h"
#include "ckpt.h"
#include "topk.h"
#include "adapter_window.h"

#define DR_ADP_X(d) (2u * (d) + 4u)
#define DR_ADP_Y(d) (2u * (d) + 2u)
#define DR_ADP_MAX_NEG 256u

typedef struct dr_adapter_params {
    dr_window_params window;
    uint32_t hidden;       /* MLP hidden units (16: 5.4k parameters at d = 51) */
    uint32_t negatives;    /* N sampled negatives per event (16), <= DR_ADP_MAX_NEG */
    float neg_pop;         /* share of negatives drawn from the window (popularity) (0: uniform
                              negatives estimate the full softmax; popularity negatives without
                              a logQ correction learn to demote popular items) */
    float lr;              /* SGD learning rate of H and the user gate, per event (0.01) */
    float lr_g;            /* SGD rate of G and the item gate on the batch's summed gradient
                              (0.005) */
    uint32_t steps;        /* SGD steps on the user side per event (1) */
    uint32_t g_batch;      /* B: events per G step + full z' refresh (256); 1 = every event */
    float lambda_kl;       /* weight of |z'-z|^2 (warm items) and |h'-h|^2 (1e-3) */
    float lambda_ewc;      /* weight of sum F (theta - theta*)^2 (0 = off) */
    float fisher_decay;    /* F <- (1-r) F + r g^2 per step (0.01) */
    float anchor_ema;      /* 0: theta* = the initial parameters; r > 0: theta* <- (1-r) theta* + r theta */
    float gate_bias;       /* initial gate biases ca, cb (-3: the adapter starts near identity) */
    float skip_init;       /* initial skip weights gs, hs (1; adapter.c) */
    float cold_gate_bias;  /* initial weight of the cold flag in the item gate (3) */
    float clip;            /* per-element gradient clip (0 = off) */
    int no_gates;          /* ablation: a = b = 1 (gate parameters frozen) */
    uint32_t publish_every;/* publish a snapshot every this many updates (1); 0 = never */
    int checksum;          /* snapshots carry an XXH64 of their contents (tests) */
    uint64_t seed;         /* initialisation and negative sampling (42) */
} dr_adapter_params;

dr_adapter_params dr__adapter_default_params(void);
/* The settings a checkpoint's notes carry (chosen on a validation stream, eval_stream_choose.c)
 * over ap's; a note out of range is skipped with a warning. */
void dr__adapter_params_from_model(dr_adapter_params *ap, const dr_model *m);

typedef struct dr_adapter dr_adapter;

/*
 * z: (n_items, d) frozen base item latents (copied); cold: (n_items) 1 = no base signal (the
 * adapter treats its latent as 0), NULL = none cold.
 */
dr_status dr__adapter_create(const dr_adapter_params *p, uint32_t n_users, uint32_t n_items,
                            uint32_t d, const float *z, const uint8_t *cold, dr_adapter **out,
                            dr_error *err);
void dr__adapter_free(dr_adapter *a);

uint32_t dr__adapter_dim(const dr_adapter *a);
size_t dr__adapter_n_params(const dr_adapter *a);
/* The parameter block theta (n_params): G | item gate | H | user gate (see adapter.c). */
float *dr__adapter_params_block(dr_adapter *a);
/* Adapted item latents z' (n_items, d) of the writer (current, consistent with theta). */
const float *dr__adapter_items(const dr_adapter *a);
/* h'_u (d) from the base latent h (d) at time now (writer side). */
void dr__adapter_user(const dr_adapter *a, uint32_t u, int64_t now, const float *h, float *out);

/*
 * Learns from event (u, i, t): h = the base latent of u from u's context before the event.
 * Never allocates. Updates H (and the user gate) now, G every g_batch events (then every z'
 * is recomputed), the window and the z' rows of items whose statistics changed.
 */
dr_status dr__adapter_update(dr_adapter *a, uint32_t u, uint32_t i, int64_t t, const float *h,
                            dr_error *err);
/* Applies a pending partial G batch now (and refreshes z'). */
void dr__adapter_flush(dr_adapter *a);
/* Candidates (positive first, then negatives) of the last update; returns their count. */
uint32_t dr__adapter_last_candidates(const dr_adapter *a, const uint32_t **items);
uint64_t dr__adapter_version(const dr_adapter *a);
/* Rows in use: [0, n) (all n_items after create). Rows past n are skipped by the z' refresh and
 * publication, never drawn as negatives, refused by update, and must not be read from
 * snapshots. Growing with recompute = 1 recomputes the new rows (exact from then on);
 * recompute = 0 only sets n (restoring a saved state whose rows are already right). */
void dr__adapter_set_active_items(dr_adapter *a, uint32_t n, int recompute);
uint32_t dr__adapter_active_items(const dr_adapter *a);
/* Writer: item i (< active rows) gets a new base latent z~_i = z (d) (a cold one: 0, with the
 * cold flag): the window's co-click sums that involve i move as if their pairs had been made
 * with z, the z' rows of i and of its co-click partners and the user means are updated (published with
 * the next snapshot). Saved with the state (dr__adapter_load takes such rows from the file).
 * Used when an item gets features (serve_core.c). */
dr_status dr__adapter_set_item_base(dr_adapter *a, uint32_t i, const float *z, int cold,
                                   dr_error *err);
/* The adapter's windows (writer side: read between updates only). */
const dr_window *dr__adapter_window(const dr_adapter *a);
/* Updates so far, z' rows recomputed incrementally, full z' refreshes (benchmarks). */
void dr__adapter_counters(const dr_adapter *a, uint64_t *updates, uint64_t *rows,
                         uint64_t *refreshes);

/* Slow twin of the z' cache: every z'_i from scratch with plain loops, no cache. */
dr_status dr__adapter_items_slow(const dr_adapter *a, float *out, dr_error *err);

/*
 * Reference loss of one event with parameters theta, for gradient checks: user input y
 * (DR_ADP_Y(d)), candidate item inputs x (n_cand, DR_ADP_X(d)), positive first. Loss =
 * sampled softmax + lambda_kl (|h'-h|^2 + sum over warm candidates |z'-z~|^2)
 * + lambda_ewc sum F (theta - theta*)^2 with the adapter's current F and theta*.
 * grad (n_params) receives d loss / d theta when non-NULL. Allocates (test path).
 */
double dr__adapter_event_loss(const dr_adapter *a, const float *theta, const float *y,
                             const float *x, uint32_t n_cand, float *grad);
/* Inputs as the adapter builds them now: x (DR_ADP_X(d)) of item i, y (DR_ADP_Y(d)) of u. */
void dr__adapter_item_input(const dr_adapter *a, uint32_t i, float *x);
void dr__adapter_user_input(const dr_adapter *a, uint32_t u, int64_t now, const float *h,
                           float *y);

/* ---- pieces, exposed for the gradient checks */
/* out (d) = W2 tanh(W1 in + b1) + b2; hid (hidden) receives the tanh layer. W1 (hidden, nin),
 * W2 (d, hidden). */
void dr__adp_mlp_forward(const float *W1, const float *b1, const float *W2, const float *b2,
                        uint32_t nin, uint32_t hidden, uint32_t d, const float *in, float *hid,
                        float *out);
/* Accumulates the gradients of (dout . out) into dW1, db1, dW2, db2 and din (may be NULL). */
void dr__adp_mlp_backward(const float *W1, const float *W2, uint32_t nin, uint32_t hidden,
                         uint32_t d, const float *in, const float *hid, const float *dout,
                         float *dW1, float *db1, float *dW2, float *db2, float *din);

/* ---- snapshots: immutable views for concurrent readers */
typedef struct dr_adapter_snapshot dr_adapter_snapshot;
/* Takes a reference to the newest published snapshot (NULL before the first publication);
 * lock-free; pair with dr__adapter_release. Safe from any thread while the writer updates. */
const dr_adapter_snapshot *dr__adapter_acquire(dr_adapter *a);
void dr__adapter_release(dr_adapter *a, const dr_adapter_snapshot *s);
uint64_t dr__snapshot_version(const dr_adapter_snapshot *s);
/* z' (n_items, stride): rows of d values then zeros up to the stride (d rounded up to 4). */
const float *dr__snapshot_items(const dr_adapter_snapshot *s);
uint32_t dr__snapshot_stride(const dr_adapter_snapshot *s);
/* The bf16 copy of the snapshot's items (scan.h), NULL when the table is below its size rule. */
struct dr_scan_bf16;
const struct dr_scan_bf16 *dr__snapshot_bf16(const dr_adapter_snapshot *s);
/* h'_u from the snapshot. */
void dr__snapshot_user(const dr_adapter_snapshot *s, uint32_t u, int64_t now, const float *h,
                      float *out);
/* 1 when the stored checksum matches the contents (params.checksum must be set). */
int dr__snapshot_verify(const dr_adapter_snapshot *s);
/* Serving: h'_u then exact top-k over z' with exclude[] removed; never allocates. */
dr_status dr__snapshot_recommend(const dr_adapter_snapshot *s, dr_topk_scratch *ts, uint32_t u,
                                int64_t now, const float *h, const uint32_t *exclude,
                                size_t n_exclude, uint32_t k, uint32_t *items, float *scores,
                                uint32_t *n_out, dr_error *err);
/* Publishes the writer's state now (normally done by update). 0 when every spare buffer is
 * still held by readers (then a later update publishes). */
int dr__adapter_publish(dr_adapter *a);

/* ---- state: weights, Fisher, anchor, windows, statistics, RNG, pending G batch */
dr_status dr__adapter_save(const dr_adapter *a, const char *path, dr_error *err);
/* Loads into an adapter created with the same params, sizes and base; DR_FORMAT on mismatch. */
dr_status dr__adapter_load(dr_adapter *a, const char *path, dr_error *err);

#endif /* DR_ADAPTER_H */
