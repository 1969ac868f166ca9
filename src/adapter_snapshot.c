/*
 * adapter_snapshot.c - the online adapter's snapshots: publication and the readers' API
 * (dr__adapter_acquire/release, dr__snapshot_*). Readers on other threads never see the writer's
 * buffers, only a published copy.
 *
 * DESIGN
 * Snapshots: three buffers, each with a copy of z', the user-side parameters and the users'
 * ring summaries (mean latent, count, last time); a reader count per buffer (C11 atomics).
 * The writer fills a buffer that is neither current nor held (copying only rows changed since
 * that buffer was last filled, tracked by per-buffer dirty lists; everything after a G step),
 * then swaps the current pointer. Readers increment the count of the current buffer and
 * re-check that it is still current (else back off), so a buffer is never written while read.
 * When both spare buffers are held the writer skips publishing; a later update publishes.
 * Rejected: a reader-writer lock (readers would stall during updates) and a copy of the whole
 * z' table per update (megabytes per event).
 * The fill itself (publish_snapshot, adapter_int.h) is shared with dr__adapter_update, which
 * publishes every publish_every updates. A reader computes h' with the writer's side_forward
 * and user_input_from (adapter_int.h) on the snapshot's copies, so h' from a snapshot equals
 * the writer's h' at that version.
 */
#include "adapter.h"
#include "adapter_int.h"

int dr__adapter_publish(dr_adapter *a) { return publish_snapshot(a); }

const dr_adapter_snapshot *dr__adapter_acquire(dr_adapter *a) {
    for (;;) {
        dr_adapter_snapshot *s = atomic_load(&a->current);
        if (!s) return NULL;
        atomic_fetch_add(&s->refs, 1);
        if (atomic_load(&a->current) == s) return s;
        atomic_fetch_sub(&s->refs, 1);
    }
}

void dr__adapter_release(dr_adapter *a, const dr_adapter_snapshot *s) {
    (void)a;
    if (s) atomic_fetch_sub(&((dr_adapter_snapshot *)s)->refs, 1);
}

uint64_t dr__snapshot_version(const dr_adapter_snapshot *s) { return s->version; }
const float *dr__snapshot_items(const dr_adapter_snapshot *s) { return s->zp; }
uint32_t dr__snapshot_stride(const dr_adapter_snapshot *s) { return s->dp; }
const dr_scan_bf16 *dr__snapshot_bf16(const dr_adapter_snapshot *s) { return s->zq; }

int dr__snapshot_verify(const dr_adapter_snapshot *s) {
    size_t d = s->d, hd = s->hidden, Y = DR_ADP_Y(d);
    size_t nup = hd * Y + hd + d * hd + d + d + Y + 1;
    return snap_hash(s, nup) == s->checksum;
}

void dr__snapshot_user(const dr_adapter_snapshot *s, uint32_t u, int64_t now, const float *h,
                      float *out) {
    uint32_t d = s->d, hd = s->hidden, Y = DR_ADP_Y(d);
    float y[2 * 1024 + 2], hid[1024], mlp[1024];
    user_input_from(d, s->spu, h, s->umean + (size_t)u * d, s->ucount[u], s->ulast[u], now, y);
    size_t o = 0, oV1 = o; o += (size_t)hd * Y;
    size_t oc1 = o; o += hd;
    size_t oV2 = o; o += (size_t)d * hd;
    size_t oc2 = o; o += d;
    size_t ohs = o; o += d;
    size_t owb = o; o += Y;
    size_t ocb = o;
    side_forward(s->uparams, oV1, oc1, oV2, oc2, owb, ocb, Y, ohs, d + 2, hd, d, s->no_gates, y,
                 h, hid, mlp, out);
}

dr_status dr__snapshot_recommend(const dr_adapter_snapshot *s, dr_topk_scratch *ts, uint32_t u,
                                int64_t now, const float *h, const uint32_t *exclude,
                                size_t n_exclude, uint32_t k, uint32_t *items, float *scores,
                                uint32_t *n_out, dr_error *err) {
    if (!s || !ts || !h || !items || !n_out) return dr__fail(err, DR_ARG, "adapter: NULL argument");
    if (u >= s->n_users) return dr__fail(err, DR_RANGE, "adapter: user %u >= %u", u, s->n_users);
    float hp[1024 + 4] = {0};
    dr__snapshot_user(s, u, now, h, hp);
    return dr__topk_scan_bf16(s->zq, s->zp, s->n_items, s->dp, hp, exclude, n_exclude, k, ts,
                              items, scores, n_out, err);
}
