/*
 * serve_core.c - the serving core: state = base model + event log; a writer that appends, an
 * apply thread that applies, lock-free readers.
 *
 * DESIGN
 * State: the frozen base model (borrowed), the online adapter over its item latents, id
 * registries, every user's history, a popular-now list; all a function of the base and the
 * log: a replay from an empty state gives the same state bit for bit (adapter RNG, windows and
 * pending batch included). Snapshots only shorten the replay: on open the newest one that loads
 * gives the adapter at log position S; records go into registries and histories, those after S
 * also into the adapter.
 * Capacity: the adapter's sizes are fixed at creation, so it gets max_new_users/max_new_items
 * reserved cold rows (z~ = 0). A new item takes the next row in order of first appearance in
 * the log (a replay gives it the same row) and rides the adapter's cold path (co-click mean),
 * as do the model's items without training interactions. Rows not yet given out are never
 * candidates, negatives or refreshed (dr__adapter_set_active_items); a request needing more
 * rows than are left is refused whole (DR_LIMIT).
 * Features: with a fused checkpoint a PUT's features give the item its base latent through the
 * fusion, applied by the apply thread in log order (item_features; the adapter rebases the row with
 * dr__adapter_set_item_base); a checkpoint item without interactions whose fused z differs
 * from its e had features in training and stays warm. Rejected: fusing in the request thread
 * and logging z (the log would hold derived floats, not what was sent).
 * Log: the core talks to a dr_log (serve_log.h) and never asks which kind it is: the folder's
 * SQLite (one server) or a Redis stream shared by replicas. Every record, whoever appended it,
 * reaches the state the same way: read back from the log by the apply thread, in log order.
 * Writer: one thread takes all queued tickets (up to DR_SRV_WRITER_BATCH events), checks
 * capacity against the registries (so one server refuses with DR_LIMIT before logging), builds
 * the records and appends them with ONE append (group commit: one fsync for sqlite), then waits
 * until the apply thread has applied through the last appended position and answers the
 * requests from the ring of (position, record number) pairs the apply thread keeps: a request
 * returns once its events are durable AND visible. Nothing is applied when the append fails.
 * Apply thread: the only thread that changes the state (adapter, registries, histories,
 * metadata, snapshots). It reads records after its applied position, applies each one
 * (another replica's as its own: no shortcut), publishes one adapter snapshot and the popular
 * list per read, takes snapshots, then advances the applied position and wakes the writer and
 * the readers waiting for a position (dr__srv_wait_applied). Capacity is decided again at apply
 * time: another replica may have taken the last rows; a record that finds none is skipped and
 * counted, the same on every replica. Read errors are retried with backoff (100 ms doubling to
 * 2 s) from the applied position. Record numbers (first_seq/last_seq) count the records
 * applied, skipped ones included, so they agree on every replica that applied the whole log.
 * Idempotency: records may carry a key; the log does not append a key it has seen (within the
 * TTL) and hands back the original's position, which the ring maps to its record number.
 * Time: events carry UNIX seconds (commit time when absent); one older than the newest applied
 * is applied at the newest time (the adapter needs non-decreasing times; the log keeps the time
 * sent, the replay clamps alike). The serving clock is the newest event's time, so answers
 * depend on the log alone, not on when they are asked.
 * Recovery: the newest snapshot that loads (the adapter at position S); then the whole log is
 * read, every record into registries and histories, those after S also into the adapter. An
 * empty folder with a non-empty shared stream replays it all (a new replica).
 * State hash (dr__srv_state): computed by the apply thread between two reads, so it covers one
 * applied position: registries, histories, item metadata, adapter parameters and latents.
 * Frozen (p.frozen, `dynrec serve --adapter off`): the same state without the adapter learning;
 * recommendations are the base's h_u . z_i over the checkpoint's own item rows (new items 0),
 * P-STREAM's frozen column served; no snapshots (a later start with the adapter replays the log).
 * Live quality (p.stats, serve_stats.c): an incoming event the stats' hash samples (not the
 * replay at open: the flag is set after recovery) is tested just before it is applied: is its
 * item among the user's top 10 (history excluded, ties against it) under the base's z and under
 * the adapter's z'? Counting the items scored at least as high, a block of 256 at a time with
 * the serving kernel, and stopping at the 10th, a miss costs a small part of a scan; a hit, two
 * whole scans. Rejected: two full top-k selections per sampled event (1.53x the apply path's
 * time at a rate of 0.1; docs/BENCH.md).
 * Readers, lock-free: registries are insert-only tables of atomic slots (release/acquire); a
 * history {len, cap, items} only grows (items[len], then len + 1 with release), a full one is
 * copied to twice the size and swapped, old blocks kept until close (at most as much again as
 * the live ones); item metadata swaps the same way; the popular list is triple-buffered like
 * the adapter's snapshots. OpenBLAS runs single-threaded: the parallelism is the requests,
 * and its pool spins on small products. Rejected: a reader-writer lock (a reader would wait for
 * a whole batch; readers must never block), copying histories under a mutex (the same wait),
 * epoch-based reclamation (more code).
 */
#include "serve_core.h"

#include <cblas.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "ann.h"
#include "fusion.h"
#include "serve_ids.h"
#include "model.h"
#include "scan.h"

#define POP_K DR_SRV_K_MAX
#define POP_BUFS 3
#define SNAP_KEEP 2

/* ---------------------------------------------------------------- batch key set (writer) */

typedef struct key_ent {
    uint64_t h;
    const char *s;
    uint32_t gen;
    uint8_t kind;
} key_ent;

typedef struct keyset {
    key_ent *e;
    uint32_t mask, gen;
} keyset;

/* 1 when (kind, s) was not in the set (and is now). */
static int keyset_add(keyset *ks, int kind, const char *s) {
    uint64_t h = dr__hash_bytes(s, strlen(s)) ^ (uint64_t)kind;
    for (uint32_t k = (uint32_t)h & ks->mask;; k = (k + 1) & ks->mask) {
        key_ent *e = &ks->e[k];
        if (e->gen != ks->gen) {
            *e = (key_ent){h, s, ks->gen, (uint8_t)kind};
            return 1;
        }
        if (e->h == h && e->kind == kind && strcmp(e->s, s) == 0) return 0;
    }
}

/* ---------------------------------------------------------------- published lists */

typedef struct hist_block {
    _Atomic uint32_t len;
    uint32_t cap;
    uint32_t items[]; /* (cap) */
} hist_block;

typedef struct item_meta {
    char *title; /* owned */
    char *body;  /* owned JSON of the last PUT */
} item_meta;

typedef struct pop_buf {
    atomic_uint refs;
    uint32_t n;
    uint32_t items[POP_K];
    float counts[POP_K];
} pop_buf;

/* ---------------------------------------------------------------- tickets */

enum { T_EVENTS, T_ITEM, T_BASE };

typedef struct dr_srv_ticket {
    int kind;
    const dr_srv_event *ev;
    size_t n;
    const char *item, *body, *key;
    int accepted, done;
    size_t rec0, nrec;      /* its records in the batch */
    dr_status st;
    dr_error err;
    dr_srv_ack ack;
    dr_srv_done_fn done_fn;  /* asynchronous tickets: called on the writer or apply thread when done */
    void *done_ud;
    struct dr_srv_ticket *next;
} ticket;

typedef struct done_call {
    dr_srv_done_fn fn;
    void *ud;
} done_call;
typedef DR_VEC(done_call) done_calls;
typedef DR_VEC(dr_log_rec) rec_vec;

/* A logged batch waiting for the apply thread: answered once the apply thread is through
 * `last` (guarded by amu). */
typedef struct awaiting {
    ticket *batch;
    rec_vec recs;                  /* its records, with the positions the append gave them */
    dr_log_pos last;               /* the newest of those positions */
    uint32_t nu, ni;               /* new users and items the capacity pre-check reserved */
    double since;                  /* when it was logged (dr__now_seconds) */
} awaiting;

/* An applied record: its position, record number and what applying it did. */
enum { AE_SKIPPED = 1, AE_CREATED = 2 };
typedef struct ack_ent {
    dr_log_pos pos;
    uint64_t seq;
    uint8_t flags;
} ack_ent;

/* A GET /v1/state (or dr__srv_positions) waiting for the apply thread. */
#define QBLOCK 256 /* live quality: items scored at a time before the count is looked at */

typedef struct state_query {
    dr_srv_state out;
    int positions;                 /* dr__srv_positions: the applied position only, no hash */
    uint32_t back[2];              /* dr__srv_positions: events back from the newest ... */
    dr_log_pos back_pos[2];        /* ... and their positions */
    int item_q;                    /* dr__srv_item_window: item's window figures */
    uint32_t item;
    float win_count, win_trend;
    int done;
    struct state_query *next;
} state_query;

struct dr_srv {
    dr_srv_params p;
    const dr_model *m;
    uint32_t d, n_base_items, n_base_users;
    dr_adapter *ad;
    dr_store *store;               /* the folder's settings and snapshot list (apply thread) */
    dr_log *log;
    dr_idmap users, items;
    _Atomic(hist_block *) *hist;   /* (users.cap) NULL = the model's history only */
    _Atomic(item_meta *) *meta;    /* (items.cap) NULL = the model's title */
    float *z;                      /* (items.cap, d) base latents, reserved rows 0 */
    uint8_t *cold;                 /* (items.cap) */
    float *basepop;                /* (items.cap) tie-break of popular-now, in [0, 0.5) */
    DR_VEC(void *) retired;        /* old history blocks and metadata, freed at close */
    /* fusion of the checkpoint (NULL: features are only kept) */
    const dr_fusion *fus;
    const float *fus_e;            /* (nbi, fus->d) id embeddings e */
    int fus_mean;                  /* trained with mean imputation (absent = mean, gate open) */
    float *fx, *fz, *fact, *frow;  /* standardised features (sum dim), z (fus->d), act, row (d) */
    size_t fxoff[DR_MAX_MODALITIES];
    /* apply-thread scratch */
    dr_scorer *wsc;
    uint32_t *wctx;                /* (DR_SRV_CTX_MAX) */
    float *wh;                     /* (d) */
    float *pscore;                 /* (items.cap) */
    dr_topk_scratch *pts;
    uint32_t pitems[POP_K];
    float pvals[POP_K];
    int64_t wclock;                /* newest applied time */
    uint64_t events_since_snap;
    dr_log_pos apos;               /* apply thread: the applied position ... */
    uint64_t aseq;                 /* ... and records applied (skipped ones included) */
    dr_log_rec *arecs;             /* (DR_SRV_APPLY_BATCH) the apply thread's reads */
    uint8_t *aflags;               /* (DR_SRV_APPLY_BATCH) */
    /* writer */
    keyset ks;
    rec_vec recs;
    uint8_t *dup;                  /* (DR_SRV_WRITER_BATCH) */
    done_calls calls;              /* the writer's callbacks to call ... */
    done_calls acalls;             /* ... and the apply thread's */
    /* popular-now */
    pop_buf pop[POP_BUFS];
    _Atomic(pop_buf *) pop_cur;
    /* queue */
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    ticket *head, *tail;           /* guarded by mu */
    int stopping;                  /* guarded by mu */
    pthread_t writer;
    int writer_started;
    /* what the apply thread has applied, for the writer and the readers */
    pthread_mutex_t amu;
    pthread_cond_t cv_applied;     /* the apply thread moved on (or broke, or answered queries) */
    pthread_cond_t cv_apply;       /* work for a waiting apply thread: stop, queries */
    dr_log_pos applied_pos;        /* guarded by amu */
    uint64_t applied_seq;          /* guarded by amu */
    ack_ent *ring;                 /* (DR_SRV_ACK_RING) guarded by amu */
    uint64_t ring_n;               /* entries ever pushed, guarded by amu */
    state_query *queries;          /* guarded by amu */
    int apply_stop, closing, log_down, broken; /* guarded by amu */
    dr_error broken_err;           /* guarded by amu */
    double down_since;             /* when log_down was set, guarded by amu */
    awaiting aw[DR_SRV_INFLIGHT_BATCHES]; /* FIFO of logged batches, guarded by amu */
    unsigned aw_head, aw_n;        /* guarded by amu */
    uint32_t res_u, res_i;         /* the awaiting batches' reserved new users and items (amu) */
    pthread_t applier;
    int applier_started;
    /* base swaps */
    int has_base;                  /* p.base was given: base is this state's BASE record */
    dr_srv_base base;
    atomic_int replaced;           /* a later BASE record was applied, or dr__srv_retire: no more
                                      snapshots (they would be taken on the old base) */
    int clock_set;                 /* apply thread: wclock holds an applied event's time */
    int ephemeral;                 /* dr__srv_prequential: no folder, no threads */
    dr_log_pos *evring;            /* (DR_SRV_EVENT_RING) positions of the newest applied events */
    uint64_t evring_n;             /* events ever pushed (apply thread) */
    int scoring;                   /* dr__srv_prequential: score events after score_after */
    int quality;                   /* live quality (p.stats) of the events after the replay at
                                      open: set before the apply thread starts */
    float *winbuf;                 /* (DR_WIN_ITEM_STATS(d)) the apply thread's, for item_q */
    uint32_t *qstamp;              /* (items.cap) live quality: qmark on the user's history */
    uint32_t qmark;
    float qbuf[QBLOCK];            /* live quality: a block of scores */
    dr_log_pos score_after;
    dr_preq_trace *trace;          /* dr__srv_prequential: every scored event (NULL: none) */
    int trace_oom;
    dr_srv_preq preq;
    float *sc_hp;                  /* (d) */
    /* two-stage retrieval (NULL: the exact scan) */
    dr_ann *ann;                   /* the base's index; the apply thread adds items that get a
                                      base latent (its own lock) */
    uint32_t ann_c;                /* approximate candidates per request */
    uint32_t *ann_cold;            /* (n_ann_cold) the model's cold rows: always candidates */
    uint32_t n_ann_cold;
    uint32_t sc_items[10];
    float sc_scores[10];
    /* statistics (written by the writer and the apply thread, read anywhere) */
    _Atomic uint64_t st_events, st_records, st_commits, st_updates, st_snaps, st_snap_seq,
        st_recovered, st_skipped, st_log_errors, st_reconnects, st_tip_records, st_applied_ms;
    _Atomic int64_t clock;
};

dr_srv_params dr__srv_default_params(void) {
    dr_srv_params p;
    memset(&p, 0, sizeof p);
    p.max_new_items = 10000;
    p.max_new_users = 50000;
    p.snapshot_every = 10000;
    p.durable = 1;
    p.final_snapshot = 1;
    p.adapter = dr__adapter_default_params();
    p.idempotency_ttl = 86400;
    return p;
}

/* ---------------------------------------------------------------- histories and metadata */

static size_t user_hist(const dr_srv *s, uint32_t u, const uint32_t **items) {
    hist_block *b = atomic_load_explicit(&s->hist[u], memory_order_acquire);
    if (b) {
        *items = b->items;
        return atomic_load_explicit(&b->len, memory_order_acquire);
    }
    if (u < s->n_base_users) return dr_model_user_history(s->m, u, items);
    *items = NULL;
    return 0;
}

static dr_status retire(dr_srv *s, void *p) {
    return dr_vec_push(&s->retired, p) ? DR_NOMEM : DR_OK;
}

/* Apply thread: appends item i to user u's history. */
static dr_status hist_append(dr_srv *s, uint32_t u, uint32_t i, dr_error *err) {
    hist_block *b = atomic_load_explicit(&s->hist[u], memory_order_relaxed);
    uint32_t len = b ? atomic_load_explicit(&b->len, memory_order_relaxed) : 0;
    if (!b || len == b->cap) {
        const uint32_t *old;
        size_t n = user_hist(s, u, &old);
        if (n >= UINT32_MAX / 2 - 8) return dr__fail(err, DR_LIMIT, "server: history of user %u too long", u);
        uint32_t cap = (uint32_t)(2 * n + 8);
        hist_block *nb = dr__malloc(sizeof *nb + (size_t)cap * sizeof(uint32_t));
        if (!nb || (b && retire(s, b) != DR_OK)) {
            dr__free(nb);
            return dr__fail(err, DR_NOMEM, "server: out of memory");
        }
        if (n) memcpy(nb->items, old, n * sizeof(uint32_t));
        nb->cap = cap;
        nb->items[n] = i;
        atomic_init(&nb->len, (uint32_t)n + 1);
        atomic_store_explicit(&s->hist[u], nb, memory_order_release);
        return DR_OK;
    }
    b->items[len] = i;
    atomic_store_explicit(&b->len, len + 1, memory_order_release);
    return DR_OK;
}

/* The base latent (d) of user u from the history (last DR_SRV_CTX_MAX items the model knows). */
static dr_status base_latent(const dr_srv *s, dr_scorer *sc, uint32_t *ctx, uint32_t u,
                             float *h, dr_error *err) {
    const uint32_t *hi;
    size_t n = user_hist(s, u, &hi), c = 0;
    for (size_t k = n; k-- > 0 && c < DR_SRV_CTX_MAX;)
        if (hi[k] < s->n_base_items) c++;
    size_t at = c;
    for (size_t k = n; k-- > 0 && at > 0;)
        if (hi[k] < s->n_base_items) ctx[--at] = hi[k];
    return dr_model_user_latent(s->m, sc, u < s->n_base_users ? u : UINT32_MAX, ctx, c, h, err);
}

void dr__srv_item_meta(const dr_srv *s, uint32_t i, const char **title, const char **body) {
    item_meta *mt = atomic_load_explicit(&s->meta[i], memory_order_acquire);
    *title = mt ? mt->title : (i < s->n_base_items ? dr_model_item_title(s->m, i) : "");
    *body = mt ? mt->body : NULL;
}

/* Apply thread: item metadata from an item record's body o (validated when it was accepted). */
static dr_status set_item_meta(dr_srv *s, uint32_t i, const json_t *o, const char *body, dr_error *err) {
    const char *t = json_string_value(json_object_get(o, "title"));
    item_meta *mt = dr__calloc(1, sizeof *mt);
    if (mt) {
        mt->title = dr__strdup(t ? t : "");
        mt->body = dr__strdup(body);
    }
    item_meta *old = atomic_load_explicit(&s->meta[i], memory_order_relaxed);
    /* readers may still hold the old strings: kept (with the struct) until close */
    if (!mt || !mt->title || !mt->body || (old && (dr_vec_reserve(&s->retired, s->retired.n + 3) ||
                                                   retire(s, old->title) || retire(s, old->body) ||
                                                   retire(s, old)))) {
        if (mt) {
            dr__free(mt->title);
            dr__free(mt->body);
        }
        dr__free(mt);
        return dr__fail(err, DR_NOMEM, "server: out of memory");
    }
    atomic_store_explicit(&s->meta[i], mt, memory_order_release);
    return DR_OK;
}

/* ---------------------------------------------------------------- features -> base latent */

int dr__srv_fuses(const dr_srv *s) { return s && s->fus; }

/* Index of the fused modality `name`, or -1. */
static int fused_modality(const dr_fusion *f, const char *name) {
    for (uint32_t m = 0; m < f->n_mod; m++)
        if (strcmp(f->name[m], name) == 0) return (int)m;
    return -1;
}

dr_status dr__srv_check_feature(const dr_srv *s, const char *modality, size_t dim, dr_error *err) {
    if (!s || !modality) return dr__fail(err, DR_ARG, "server: NULL argument");
    const dr_fusion *f = s->fus;
    if (!f) return DR_OK;
    int m = fused_modality(f, modality);
    if (m < 0) {
        char names[DR_MAX_MODALITIES * 34] = "";
        for (uint32_t k = 0; k < f->n_mod; k++) {
            strcat(names, k ? ", " : "");
            strcat(names, f->name[k]);
        }
        return dr__fail(err, DR_ARG, "unknown modality (the model fuses %s)", names);
    }
    if (dim != f->dim[m])
        return dr__fail(err, DR_ARG, "expected %u numbers (the model's %s modality), got %zu", f->dim[m],
                       f->name[m], dim);
    return DR_OK;
}

/*
 * Apply thread: a PUT's features give item i its base latent through the checkpoint's fusion:
 * standardised with the training statistics, e = the item's own id embedding (0 for a new
 * item), absent modalities gated off (with mean imputation: the mean, gate open); the item
 * bias of an mf latent is kept (0 for a new item). The adapter learns of the new row when
 * adapt = 1 (before a loaded snapshot the snapshot already has it). Modalities the fusion does
 * not have were refused before logging; in an older log they are skipped with a warning.
 */
static dr_status item_features(dr_srv *s, uint32_t i, const json_t *feats, int adapt, dr_error *err) {
    const dr_fusion *f = s->fus;
    if (!f || !json_object_size(feats)) return DR_OK;
    const float *x[DR_MAX_MODALITIES];
    float gate[DR_MAX_MODALITIES];
    uint32_t used = 0, fd = f->d;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)feats, key, v) {
        int m = fused_modality(f, key);
        if (m < 0 || json_array_size(v) != f->dim[m])
            dr__log(DR_LOG_WARN, "server: item %s: features.%s do not fit the model's fusion; skipped",
                   s->items.name[i], key);
    }
    for (uint32_t m = 0; m < f->n_mod; m++) {
        float *xs = s->fx + s->fxoff[m];
        const float *mean = f->stats + f->soff[m], *inv = mean + f->dim[m];
        json_t *a = json_object_get(feats, f->name[m]);
        int present = a && json_array_size(a) == f->dim[m];
        for (uint32_t k = 0; k < f->dim[m]; k++)
            xs[k] = present ? ((float)json_number_value(json_array_get(a, k)) - mean[k]) * inv[k] : 0.0f;
        x[m] = xs;
        gate[m] = present || s->fus_mean ? 1.0f : 0.0f;
        used += (uint32_t)present;
    }
    if (!used) return DR_OK;
    const float *e = i < s->n_base_items ? s->fus_e + (size_t)i * fd : s->fx + s->fxoff[f->n_mod];
    dr__fusion_forward(f, e, x, gate, s->fz, s->fact);
    memcpy(s->frow, s->fz, fd * sizeof *s->frow);
    for (uint32_t c = fd; c < s->d; c++) /* mf: [z_i, b_i] */
        s->frow[c] = i < s->n_base_items ? dr_model_item_latents(s->m)[(size_t)i * s->d + c] : 0.0f;
    /* the index is not in the snapshots: every replay inserts again, in log order */
    dr_status st = s->ann ? dr__ann_add(s->ann, i, s->frow, err) : DR_OK;
    return st == DR_OK && adapt ? dr__adapter_set_item_base(s->ad, i, s->frow, 0, err) : st;
}

/* ---------------------------------------------------------------- applying records */

/* Apply thread: adds a copy of name as the next id of m (the caller checked there is room). */
static dr_status add_name(dr_idmap *m, const char *name, uint32_t *id, dr_error *err) {
    size_t len = strlen(name);
    char *c = dr__strndup(name, len);
    if (!c) return dr__fail(err, DR_NOMEM, "server: out of memory");
    *id = dr__idmap_add(m, c, len);
    return DR_OK;
}

/* dr__srv_prequential: was item i in u's top 10 (history excluded) just before the event, by
 * the writer's own latents (s->wh holds u's base latent)? */
static void score_event(dr_srv *s, dr_log_pos pos, uint32_t u, uint32_t i, int64_t t) {
    const uint32_t *hi;
    size_t nh = user_hist(s, u, &hi);
    uint32_t n = 0, n_active = atomic_load_explicit(&s->items.n, memory_order_relaxed);
    dr__adapter_user(s->ad, u, t, s->wh, s->sc_hp);
    if (dr__topk_scan(dr__adapter_items(s->ad), n_active, s->d, s->sc_hp, hi, nh, 10, s->pts,
                      s->sc_items, s->sc_scores, &n, NULL) != DR_OK)
        return;
    s->preq.events++;
    uint8_t hit = 0;
    for (uint32_t k = 0; k < n; k++)
        if (s->sc_items[k] == i) {
            s->preq.hit10 += 1.0;
            s->preq.ndcg10 += 1.0 / log2(k + 2.0);
            hit = 1;
            break;
        }
    dr_preq_trace *tr = s->trace;
    if (!tr || s->trace_oom) return;
    if (tr->n == tr->cap) {
        size_t cap = tr->cap ? 2 * tr->cap : 1024;
        dr_log_pos *np = dr__realloc(tr->pos, cap * sizeof *np);
        if (np) tr->pos = np;
        uint8_t *nhit = np ? dr__realloc(tr->hit, cap) : NULL;
        if (nhit) tr->hit = nhit;
        if (!np || !nhit) {
            s->trace_oom = 1;
            return;
        }
        tr->cap = cap;
    }
    tr->pos[tr->n] = pos;
    tr->hit[tr->n++] = hit;
}

void dr__preq_trace_free(dr_preq_trace *t) {
    if (!t) return;
    dr__free(t->pos);
    dr__free(t->hit);
    memset(t, 0, sizeof *t);
}

void dr__preq_paired(const dr_preq_trace *a, const dr_preq_trace *b, uint64_t *paired,
                     uint64_t *only_a, uint64_t *only_b) {
    uint64_t n = 0, oa = 0, ob = 0;
    for (size_t x = 0, y = 0; x < a->n && y < b->n;) { /* both in log order */
        int c = dr__log_pos_cmp(a->pos[x], b->pos[y]);
        if (c < 0) x++;
        else if (c > 0) y++;
        else {
            n++;
            oa += a->hit[x] && !b->hit[y];
            ob += b->hit[y] && !a->hit[x];
            x++, y++;
        }
    }
    *paired = n, *only_a = oa, *only_b = ob;
}

/* Apply thread, live quality: whether item i would be in the top 10 (history excluded) under
 * latents z (rows of d floats) and user vector h: fewer than 10 other items outside the history
 * (marked in qstamp) score at least as high as i (ties pessimistic, as in eval.c). Scores come
 * from the serving kernel (dr__scan_f32) a block of QBLOCK items at a time, and the
 * scan stops at the block where the 10th such item turns up, so a miss, the usual outcome,
 * costs a small part of a scan. */
static int in_top10(dr_srv *s, const float *z, const float *h, uint32_t i, uint32_t n) {
    const uint32_t d = s->d;
    float si;
    dr__scan_f32(z + (size_t)i * d, 1, d, h, &si);
    uint32_t above = 0;
    for (uint32_t j0 = 0; j0 < n; j0 += QBLOCK) {
        uint32_t m = n - j0 < QBLOCK ? n - j0 : QBLOCK;
        dr__scan_f32(z + (size_t)j0 * d, m, d, h, s->qbuf);
        for (uint32_t k = 0; k < m; k++) {
            uint32_t j = j0 + k;
            if (j == i || s->qstamp[j] == s->qmark) continue;
            if (s->qbuf[k] >= si && ++above == 10) return 0;
        }
    }
    return 1;
}

/* Apply thread, live quality (serve_stats.c): was item i in u's top 10 (history excluded) just
 * before the event, under the base alone (h_u . z_i) and under base + adapter (h'_u . z'_i)?
 * s->wh holds u's base latent. An item already in the history is a miss under both. */
static void live_quality(dr_srv *s, uint32_t u, uint32_t i, int64_t t) {
    const uint32_t *hi;
    size_t nh = user_hist(s, u, &hi);
    uint32_t n = atomic_load_explicit(&s->items.n, memory_order_relaxed);
    if (++s->qmark == 0) { /* the stamps wrapped: clear them once */
        memset(s->qstamp, 0, (size_t)s->items.cap * sizeof *s->qstamp);
        s->qmark = 1;
    }
    int seen = 0;
    for (size_t k = 0; k < nh; k++) {
        s->qstamp[hi[k]] = s->qmark;
        seen |= hi[k] == i;
    }
    int hb = !seen && in_top10(s, s->z, s->wh, i, n), ha = 0;
    if (!seen) {
        dr__adapter_user(s->ad, u, t, s->wh, s->sc_hp);
        ha = in_top10(s, dr__adapter_items(s->ad), s->sc_hp, i, n);
    }
    dr__stats_quality(s->p.stats, hb, ha);
}

/* Apply thread: the event's time, no older than the newest applied (the adapter needs
 * non-decreasing times); it becomes the newest. */
static int64_t event_time(dr_srv *s, int64_t t) {
    if (s->clock_set && t < s->wclock) t = s->wclock;
    s->wclock = t;
    s->clock_set = 1;
    atomic_store_explicit(&s->clock, t, memory_order_relaxed);
    return t;
}

/* Apply thread: the adapter learns from event r = (u, i) at time t; with dr__srv_prequential
 * the event is scored first (known: u and i were there before it). */
static dr_status learn(dr_srv *s, const dr_log_rec *r, uint32_t u, uint32_t i, int64_t t, int known,
                       dr_error *err) {
    dr_status st = base_latent(s, s->wsc, s->wctx, u, s->wh, err);
    if (st != DR_OK) return st;
    if (s->scoring && known && dr__log_pos_cmp(r->pos, s->score_after) > 0) score_event(s, r->pos, u, i, t);
    if (s->quality && known && dr__stats_sampled(s->p.stats, r->user, r->item, r->time))
        live_quality(s, u, i, t);
    if ((st = dr__adapter_update(s->ad, u, i, t, s->wh, err)) != DR_OK) return st;
    atomic_fetch_add_explicit(&s->st_updates, 1, memory_order_relaxed);
    return DR_OK;
}

/* Apply thread: one log record into the state; the adapter learns from events when adapt = 1.
 * *flags: AE_CREATED when an item row was given out; AE_SKIPPED when the record needs a new
 * row and none is left (or is malformed): it changes nothing but the counts, alike on every
 * replica (rows are given out in log order). */
static dr_status apply_record(dr_srv *s, const dr_log_rec *r, int adapt, uint8_t *flags, dr_error *err) {
    uint32_t n0 = atomic_load_explicit(&s->items.n, memory_order_relaxed);
    *flags = 0;
    if (r->kind == DR_REC_BASE) { /* a later swap than this state's own: serve_live.c follows it */
        if (!s->has_base || dr__log_pos_cmp(r->pos, s->base.at) > 0) {
            atomic_store(&s->replaced, 1);
            if (s->p.on_base && r->body) s->p.on_base(s->p.on_base_ud, r->pos, r->body);
        }
        atomic_fetch_add_explicit(&s->st_records, 1, memory_order_relaxed);
        return DR_OK;
    }
    if (s->has_base && dr__log_pos_cmp(r->pos, s->base.covers) <= 0) {
        /* in the checkpoint's histories already; an event from `from` on still teaches the
         * adapter (its window, co-clicks and popular-now are rebuilt over the same events) */
        uint32_t u = UINT32_MAX, i = UINT32_MAX;
        if (r->kind == DR_REC_EVENT && r->user && r->item) {
            u = dr__idmap_find(&s->users, r->user, strlen(r->user));
            i = dr__idmap_find(&s->items, r->item, strlen(r->item));
            s->evring[s->evring_n++ % DR_SRV_EVENT_RING] = r->pos;
        }
        if (adapt && !s->p.frozen && u != UINT32_MAX && i != UINT32_MAX) {
            dr_status st = learn(s, r, u, i, event_time(s, r->time), 0, err);
            if (st != DR_OK) return st;
        }
        atomic_fetch_add_explicit(&s->st_records, 1, memory_order_relaxed);
        return DR_OK;
    }
    int ok = r->item && (r->kind == DR_REC_ITEM ? r->body != NULL : r->kind == DR_REC_EVENT && r->user);
    uint32_t i = ok ? dr__idmap_find(&s->items, r->item, strlen(r->item)) : UINT32_MAX;
    uint32_t u = ok && r->kind == DR_REC_EVENT ? dr__idmap_find(&s->users, r->user, strlen(r->user)) : UINT32_MAX;
    if (ok && i == UINT32_MAX && n0 >= s->items.cap) ok = 0;
    if (ok && r->kind == DR_REC_EVENT && u == UINT32_MAX &&
        atomic_load_explicit(&s->users.n, memory_order_relaxed) >= s->users.cap)
        ok = 0;
    if (!ok) {
        uint64_t k = atomic_fetch_add_explicit(&s->st_skipped, 1, memory_order_relaxed);
        if (k % 1000 == 0)
            dr__log(DR_LOG_WARN, "server: a log record (%s %s) was skipped: %s (%llu so far)",
                   r->kind == DR_REC_ITEM ? "item" : "event", r->item ? r->item : "?",
                   r->item ? "no room left for a new user or item" : "malformed", (unsigned long long)k + 1);
        *flags = AE_SKIPPED;
        atomic_fetch_add_explicit(&s->st_records, 1, memory_order_relaxed);
        return DR_OK;
    }
    dr_status st = DR_OK;
    if (i == UINT32_MAX && (st = add_name(&s->items, r->item, &i, err)) != DR_OK) return st;
    if (i >= n0) { /* a new row enters use: exact now when the adapter is live, as saved otherwise */
        dr__adapter_set_active_items(s->ad, i + 1, adapt);
        *flags |= AE_CREATED;
    }
    if (r->kind == DR_REC_ITEM) {
        json_error_t je;
        json_t *o = json_loads(r->body, 0, &je);
        if (!o || !json_is_object(o)) st = dr__fail(err, DR_FORMAT, "server: item record body is not a JSON object");
        else st = set_item_meta(s, i, o, r->body, err);
        if (st == DR_OK) st = item_features(s, i, json_object_get(o, "features"), adapt, err);
        json_decref(o);
    } else {
        int known = u != UINT32_MAX && i < n0;
        if (u == UINT32_MAX && (st = add_name(&s->users, r->user, &u, err)) != DR_OK) return st;
        int64_t t = event_time(s, r->time);
        if (adapt && !s->p.frozen && (st = learn(s, r, u, i, t, known, err)) != DR_OK) return st;
        if ((st = hist_append(s, u, i, err)) != DR_OK) return st;
        atomic_fetch_add_explicit(&s->st_events, 1, memory_order_relaxed);
        s->events_since_snap += adapt && !s->p.frozen;
        s->evring[s->evring_n++ % DR_SRV_EVENT_RING] = r->pos;
    }
    atomic_fetch_add_explicit(&s->st_records, 1, memory_order_relaxed);
    return st;
}

/* ---------------------------------------------------------------- publishing */

/* Popular-now: window count, then the model's popularity, then the lower id. */
static void publish_popular(dr_srv *s) {
    uint32_t n = atomic_load_explicit(&s->items.n, memory_order_relaxed), got = 0;
    const dr_window *w = dr__adapter_window(s->ad);
    for (uint32_t i = 0; i < n; i++) s->pscore[i] = (float)dr__window_item_count(w, i) + s->basepop[i];
    if (dr__topk_select(s->pscore, n, NULL, 0, POP_K < n ? POP_K : n, s->pts, s->pitems, s->pvals,
                       &got, NULL) != DR_OK)
        return;
    for (int tries = 0; tries < 100000; tries++) {
        pop_buf *cur = atomic_load(&s->pop_cur);
        for (int b = 0; b < POP_BUFS; b++) {
            pop_buf *pb = &s->pop[b];
            if (pb == cur || atomic_load(&pb->refs)) continue;
            pb->n = got;
            for (uint32_t k = 0; k < got; k++) {
                pb->items[k] = s->pitems[k];
                pb->counts[k] = (float)dr__window_item_count(w, s->pitems[k]);
            }
            atomic_store(&s->pop_cur, pb);
            return;
        }
        sched_yield(); /* both spare buffers are being read: readers hold them for microseconds */
    }
    dr__log(DR_LOG_WARN, "server: popular list not published (readers hold every buffer)");
}

static void publish(dr_srv *s) {
    for (int tries = 0; tries < 100000 && !dr__adapter_publish(s->ad); tries++) sched_yield();
    publish_popular(s);
}

/* The store's snapshot list: the adapter in `file` covers the records through pos (records of
 * them). */
static dr_status snap_add(dr_srv *s, dr_log_pos pos, uint64_t records, const char *file, dr_error *err) {
    char at[DR_LOG_POS_MAX];
    dr__log_pos_format(pos, at);
    return dr__store_snapshot_add_pos(s->store, at, records, file, err);
}


static dr_status take_snapshot(dr_srv *s, dr_error *err) {
    if (s->aseq <= atomic_load(&s->st_snap_seq) && atomic_load(&s->st_snaps)) return DR_OK;
    char name[64];
    snprintf(name, sizeof name, "adapter-%020llu.state", (unsigned long long)s->aseq);
    char *path = dr__path_join(dr__store_dir(s->store), name);
    if (!path) return dr__fail(err, DR_NOMEM, "server: out of memory");
    dr_status st = dr__adapter_save(s->ad, path, err);
    dr__free(path);
    if (st == DR_OK) st = snap_add(s, s->apos, s->aseq, name, err);
    if (st == DR_OK) st = dr__store_snapshot_prune(s->store, SNAP_KEEP, err);
    if (st != DR_OK) return st;
    atomic_store(&s->st_snap_seq, s->aseq);
    atomic_fetch_add(&s->st_snaps, 1);
    s->events_since_snap = 0;
    return DR_OK;
}

/* ---------------------------------------------------------------- the ring of applied records */

/* amu held: the entry of the applied record at pos, NULL when it is older than the ring. */
static const ack_ent *ring_find(const dr_srv *s, dr_log_pos pos) {
    uint64_t lo = s->ring_n > DR_SRV_ACK_RING ? s->ring_n - DR_SRV_ACK_RING : 0, hi = s->ring_n;
    while (lo < hi) { /* first entry with pos >= the one asked */
        uint64_t mid = lo + (hi - lo) / 2;
        if (dr__log_pos_cmp(s->ring[mid % DR_SRV_ACK_RING].pos, pos) < 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo == s->ring_n) return NULL;
    const ack_ent *e = &s->ring[lo % DR_SRV_ACK_RING];
    return dr__log_pos_cmp(e->pos, pos) == 0 ? e : NULL;
}

/* ---------------------------------------------------------------- the writer */

static void ticket_fail(ticket *t, dr_status st, const dr_error *e) {
    t->st = st;
    if (e) t->err = *e;
    else dr__fail(&t->err, st, "%s", dr_status_message(st));
}

/* New users and items t needs beyond the registries and the keys already in ks. */
static void ticket_needs(dr_srv *s, const ticket *t, uint32_t *nu, uint32_t *ni) {
    *nu = *ni = 0;
    if (t->kind == T_BASE) return;
    size_t n = t->kind == T_ITEM ? 1 : t->n;
    for (size_t k = 0; k < n; k++) {
        const char *it = t->kind == T_ITEM ? t->item : t->ev[k].item;
        if (dr__idmap_find(&s->items, it, strlen(it)) == UINT32_MAX && keyset_add(&s->ks, 1, it)) (*ni)++;
        if (t->kind == T_ITEM) break;
        const char *us = t->ev[k].user;
        if (dr__idmap_find(&s->users, us, strlen(us)) == UINT32_MAX && keyset_add(&s->ks, 0, us)) (*nu)++;
    }
}

/* The accepted tickets' answers once the apply thread is through the newest of recs' positions
 * (amu held). */
static void answer_tickets(dr_srv *s, ticket *batch, const dr_log_rec *recs) {
    uint64_t total = atomic_load(&s->st_events);
    for (ticket *t = batch; t; t = t->next) {
        t->ack.events_total = total;
        if (!t->accepted) continue;
        size_t skipped = 0;
        int created = 0;
        for (size_t k = t->rec0; k < t->rec0 + t->nrec; k++) {
            const ack_ent *a = ring_find(s, recs[k].pos);
            uint64_t seq = a ? a->seq : 0;
            if (k == t->rec0) t->ack.first_seq = seq;
            if (k == t->rec0 + t->nrec - 1) t->ack.last_seq = seq;
            if (a && (a->flags & AE_SKIPPED)) skipped++;
            if (a && (a->flags & AE_CREATED)) created = 1;
        }
        dr__log_pos_format(recs[t->rec0 + t->nrec - 1].pos, t->ack.stream_id);
        t->ack.created = created;
        if (skipped) {
            dr_error e;
            dr__fail(&e, DR_LIMIT, "no room for new users or items when applied (%zu of %zu records "
                    "skipped: another replica used the last reserved rows; --max-new-users %u, "
                    "--max-new-items %u)", skipped, t->nrec, s->p.max_new_users, s->p.max_new_items);
            ticket_fail(t, DR_LIMIT, &e);
        } else {
            t->st = DR_OK;
        }
    }
}

/* amu held: takes the awaiting batches that are settled off the FIFO, in order, and returns
 * their tickets as one list: answered when the apply thread is through the batch's last
 * record; failed when the apply thread is broken, or when the log cannot be read and either
 * DR_SRV_APPLY_DOWN_MS passed since the batch was logged (or the log went down) or the server
 * is stopping. The records are logged: a retry with the same keys is safe. */
static ticket *dr__srv_settle_locked(dr_srv *s) {
    ticket *out = NULL, **tail = &out;
    double now = 0;
    while (s->aw_n) {
        awaiting *a = &s->aw[s->aw_head];
        if (dr__log_pos_cmp(s->applied_pos, a->last) >= 0) {
            answer_tickets(s, a->batch, a->recs.a);
        } else if (s->broken || s->log_down) {
            if (!s->broken && !s->closing) {
                if (!now) now = dr__now_seconds();
                double since = a->since > s->down_since ? a->since : s->down_since;
                if (now - since <= DR_SRV_APPLY_DOWN_MS / 1000.0) break;
            }
            dr_error e;
            char at[DR_LOG_POS_MAX];
            dr__log_pos_format(a->last, at);
            if (s->broken) e = s->broken_err;
            else if (s->closing) dr__fail(&e, DR_IO, "the records are logged but not applied: the log cannot be read "
                         "and the server is stopping");
            else dr__fail(&e, DR_IO, "the records are logged (up to %s) but this replica cannot read the "
                         "log to apply them; a retry with the same event_id or Idempotency-Key is safe", at);
            for (ticket *t = a->batch; t; t = t->next)
                if (t->accepted) ticket_fail(t, s->broken ? DR_INTERNAL : DR_IO, &e);
        } else {
            break;
        }
        s->res_u -= a->nu;
        s->res_i -= a->ni;
        *tail = a->batch;
        while (*tail) tail = &(*tail)->next;
        a->batch = NULL;
        s->aw_head = (s->aw_head + 1) % DR_SRV_INFLIGHT_BATCHES;
        s->aw_n--;
    }
    if (out) pthread_cond_broadcast(&s->cv_applied); /* a writer waiting for room in the FIFO */
    return out;
}

/* Hands settled tickets (a list) back to their submitters: done is set under mu, the callbacks
 * of asynchronous tickets are called after, outside the locks (calls: the calling thread's
 * scratch). */
static void dr__srv_complete(dr_srv *s, ticket *list, done_calls *calls) {
    if (!list) return;
    size_t nt = 0;
    for (ticket *t = list; t; t = t->next) nt++;
    calls->n = 0;
    int calls_ok = dr_vec_reserve(calls, nt) == 0;
    pthread_mutex_lock(&s->mu);
    for (ticket *t = list; t;) {
        ticket *nx = t->next; /* t belongs to its submitter once done is set */
        if (t->done_fn) {
            if (calls_ok) calls->a[calls->n++] = (done_call){t->done_fn, t->done_ud};
            else t->done_fn(t->done_ud);
        }
        t->done = 1;
        t = nx;
    }
    pthread_cond_broadcast(&s->cv_done);
    pthread_mutex_unlock(&s->mu);
    for (size_t k = 0; k < calls->n; k++) calls->a[k].fn(calls->a[k].ud);
}

/* Writer: settles what it can and waits until at most max_n batches await the apply thread. */
static void dr__srv_await(dr_srv *s, unsigned max_n) {
    for (;;) {
        pthread_mutex_lock(&s->amu);
        ticket *done = dr__srv_settle_locked(s);
        int ok = s->aw_n <= max_n;
        if (!ok && !done) { /* woken by the apply thread; at least every 200 ms for a log that is down */
            struct timespec ts;
            dr__deadline(&ts, CLOCK_REALTIME, 0.2);
            pthread_cond_timedwait(&s->cv_applied, &s->amu, &ts);
            done = dr__srv_settle_locked(s);
            ok = s->aw_n <= max_n;
        }
        pthread_mutex_unlock(&s->amu);
        dr__srv_complete(s, done, &s->calls);
        if (ok) return;
    }
}

/* Checks room, logs the batch's records in one append; 1 when logged (then *last is the newest
 * position and *nu, *ni the new users and items reserved), 0 when every ticket is answered. */
static int process(dr_srv *s, ticket *batch, dr_log_pos *lastp, uint32_t *nup, uint32_t *nip) {
    uint32_t pend_u = 0, pend_i = 0;
    /* Room: the registries (what is applied) + the new keys of the batches awaiting apply + this
     * batch's. A new id in two batches in flight is counted twice: conservative, which only
     * matters near the limit (a write may then be refused that would have fit). */
    pthread_mutex_lock(&s->amu);
    uint32_t res_u = s->res_u, res_i = s->res_i;
    pthread_mutex_unlock(&s->amu);
    s->ks.gen++;
    s->recs.n = 0;
    int64_t now = (int64_t)time(NULL);
    for (ticket *t = batch; t; t = t->next) {
        uint32_t nu, ni;
        ticket_needs(s, t, &nu, &ni);
        uint32_t used_u = atomic_load(&s->users.n) + res_u, used_i = atomic_load(&s->items.n) + res_i;
        if (used_u + pend_u + nu > s->users.cap || used_i + pend_i + ni > s->items.cap) {
            dr_error e;
            dr__fail(&e, DR_LIMIT, "no room for %s (--max-new-%s %u is used up)",
                    used_i + pend_i + ni > s->items.cap ? "new items" : "new users",
                    used_i + pend_i + ni > s->items.cap ? "items" : "users",
                    used_i + pend_i + ni > s->items.cap ? s->p.max_new_items : s->p.max_new_users);
            ticket_fail(t, DR_LIMIT, &e);
            s->ks.gen++; /* forget this ticket's keys: re-add the accepted tickets' */
            for (ticket *a = batch; a != t; a = a->next)
                if (a->accepted) ticket_needs(s, a, &nu, &ni);
            continue;
        }
        pend_u += nu;
        pend_i += ni;
        t->accepted = 1;
        t->rec0 = s->recs.n;
        size_t n = t->kind == T_EVENTS ? t->n : 1;
        if (dr_vec_reserve(&s->recs, s->recs.n + n)) {
            dr_error e;
            dr__fail(&e, DR_NOMEM, "server: out of memory");
            ticket_fail(t, DR_NOMEM, &e);
            t->accepted = 0;
            continue;
        }
        for (size_t k = 0; k < n; k++) {
            dr_log_rec r = {0};
            if (t->kind == T_ITEM) {
                r.kind = DR_REC_ITEM;
                r.item = t->item;
                r.body = t->body;
                r.time = now;
                r.key = t->key;
            } else if (t->kind == T_BASE) {
                r.kind = DR_REC_BASE;
                r.body = t->body;
                r.time = now;
            } else {
                r.kind = DR_REC_EVENT;
                r.user = t->ev[k].user;
                r.item = t->ev[k].item;
                r.time = t->ev[k].has_time ? t->ev[k].time : now;
                r.key = t->ev[k].key;
            }
            s->recs.a[s->recs.n++] = r;
        }
        t->nrec = n;
    }
    if (!s->recs.n) return 0;
    dr_error e = {0};
    memset(s->dup, 0, s->recs.n);
    dr_status st = s->log->vt->append(s->log, s->recs.a, s->recs.n, s->dup, &e);
    if (st != DR_OK) {
        atomic_fetch_add(&s->st_log_errors, 1);
        dr__log(DR_LOG_ERROR, "server: %s", e.msg);
        for (ticket *t = batch; t; t = t->next)
            if (t->accepted) ticket_fail(t, st, &e);
        return 0;
    }
    atomic_fetch_add(&s->st_commits, 1);
    dr_log_pos last = s->recs.a[0].pos;
    for (size_t k = 1; k < s->recs.n; k++)
        if (dr__log_pos_cmp(s->recs.a[k].pos, last) > 0) last = s->recs.a[k].pos;
    *lastp = last;
    *nup = pend_u;
    *nip = pend_i;
    return 1;
}

/* The writer: logs batch after batch; the apply thread reads the records back (with whatever
 * other replicas appended) and answers them (dr__srv_settle_locked), while the writer logs the
 * next ones: at most DR_SRV_INFLIGHT_BATCHES await the apply thread. */
static void *writer_main(void *arg) {
    dr_srv *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->head && !s->stopping) pthread_cond_wait(&s->cv_work, &s->mu);
        if (!s->head) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        ticket *batch = s->head, *last = s->head;
        size_t n = last->kind == T_ITEM ? 1 : last->n;
        while (last->next && n + (last->next->kind == T_ITEM ? 1 : last->next->n) <= DR_SRV_WRITER_BATCH) {
            last = last->next;
            n += last->kind == T_ITEM ? 1 : last->n;
        }
        s->head = last->next;
        if (!s->head) s->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&s->mu);
        dr__srv_await(s, DR_SRV_INFLIGHT_BATCHES - 1); /* room in the FIFO */
        pthread_mutex_lock(&s->amu);
        int broken = s->broken;
        dr_error be = s->broken_err;
        pthread_mutex_unlock(&s->amu);
        dr_log_pos at = {0, 0};
        uint32_t nu = 0, ni = 0;
        if (broken) { /* the state cannot follow the log: nothing more is logged */
            for (ticket *t = batch; t; t = t->next) ticket_fail(t, DR_INTERNAL, &be);
        } else if (process(s, batch, &at, &nu, &ni)) {
            pthread_mutex_lock(&s->amu);
            awaiting *a = &s->aw[(s->aw_head + s->aw_n) % DR_SRV_INFLIGHT_BATCHES];
            rec_vec spare = a->recs; /* the batch keeps its records; the writer takes the slot's old vector */
            a->recs = s->recs;
            s->recs = spare;
            a->batch = batch;
            a->last = at;
            a->nu = nu;
            a->ni = ni;
            a->since = dr__now_seconds();
            s->aw_n++;
            s->res_u += nu;
            s->res_i += ni;
            batch = dr__srv_settle_locked(s); /* applied already (duplicates only), or broken */
            pthread_mutex_unlock(&s->amu);
        }
        dr__srv_complete(s, batch, &s->calls);
    }
    dr__srv_await(s, 0); /* stopping: the awaiting batches are applied, or failed */
    return NULL;
}

/* ---------------------------------------------------------------- the apply thread */

#define FNV_OFF 1469598103934665603ull
#define FNV_PRIME 1099511628211ull

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t k = 0; k < n; k++) h = (h ^ b[k]) * FNV_PRIME;
    return h;
}

static uint64_t fnv_str(uint64_t h, const char *str) { return fnv(h, str ? str : "", str ? strlen(str) + 1 : 1); }

/* Apply thread: the state's hash at the applied position. */
static void state_hash(dr_srv *s, dr_srv_state *o) {
    uint64_t h = FNV_OFF;
    uint32_t nu = atomic_load(&s->users.n), ni = atomic_load(&s->items.n);
    h = fnv(h, &nu, sizeof nu);
    h = fnv(h, &ni, sizeof ni);
    for (uint32_t i = 0; i < ni; i++) {
        h = fnv_str(h, s->items.name[i]);
        item_meta *mt = atomic_load_explicit(&s->meta[i], memory_order_relaxed);
        h = fnv_str(h, mt ? mt->body : NULL);
    }
    for (uint32_t u = 0; u < nu; u++) {
        const uint32_t *hi;
        uint32_t n = (uint32_t)user_hist(s, u, &hi);
        h = fnv_str(h, s->users.name[u]);
        h = fnv(h, &n, sizeof n);
        if (n) h = fnv(h, hi, (size_t)n * sizeof *hi);
    }
    h = fnv(h, dr__adapter_params_block(s->ad), dr__adapter_n_params(s->ad) * sizeof(float));
    h = fnv(h, dr__adapter_items(s->ad), (size_t)ni * s->d * sizeof(float));
    o->last = s->apos;
    o->records = s->aseq;
    o->hash = h;
}

static void answer_queries(dr_srv *s) {
    pthread_mutex_lock(&s->amu);
    state_query *q = s->queries;
    s->queries = NULL;
    pthread_mutex_unlock(&s->amu);
    if (!q) return;
    int hash = 0;
    for (state_query *a = q; a; a = a->next) hash |= !a->positions;
    dr_srv_state st = {s->apos, s->aseq, 0};
    if (hash) state_hash(s, &st); /* reads the whole state: only for GET /v1/state */
    pthread_mutex_lock(&s->amu);
    for (; q; q = q->next) {
        q->out = st;
        for (int k = 0; k < 2; k++) {
            uint64_t b = q->back[k];
            if (b > DR_SRV_EVENT_RING && s->evring_n >= DR_SRV_EVENT_RING) b = DR_SRV_EVENT_RING; /* the oldest kept */
            q->back_pos[k] = b && b <= s->evring_n ? s->evring[(s->evring_n - b) % DR_SRV_EVENT_RING]
                                                    : (dr_log_pos){0, 0};
        }
        if (q->item_q) {
            dr__window_item_stats(dr__adapter_window(s->ad), q->item, s->winbuf);
            q->win_count = (float)dr__window_item_count(dr__adapter_window(s->ad), q->item);
            q->win_trend = s->winbuf[1];
        }
        q->done = 1;
    }
    pthread_cond_broadcast(&s->cv_applied);
    pthread_mutex_unlock(&s->amu);
}

/* Apply thread: waits up to ms for stop or queries, settling the awaiting batches (a log that
 * is down, a broken state) at least every 200 ms. 1 when stopping. */
static int apply_pause(dr_srv *s, unsigned ms) {
    double until = dr__now_seconds() + ms / 1000.0;
    pthread_mutex_lock(&s->amu);
    for (;;) {
        ticket *done = dr__srv_settle_locked(s);
        if (done) {
            pthread_mutex_unlock(&s->amu);
            dr__srv_complete(s, done, &s->acalls);
            pthread_mutex_lock(&s->amu);
        }
        double left = until - dr__now_seconds();
        if (s->apply_stop || s->queries || left <= 0) break;
        if (left > 0.2) left = 0.2;
        struct timespec ts;
        dr__deadline(&ts, CLOCK_REALTIME, left);
        pthread_cond_timedwait(&s->cv_apply, &s->amu, &ts);
    }
    int stop = s->apply_stop;
    pthread_mutex_unlock(&s->amu);
    return stop;
}

/* Apply thread: polls the log's tip (at most every 100 ms) for the lag metrics. */
static void poll_tip(dr_srv *s, double *last) {
    double t = dr__now_seconds();
    if (t - *last < 0.1) return;
    *last = t;
    dr_log_pos tip;
    uint64_t recs = 0;
    dr_error e = {0};
    if (s->log->vt->tip(s->log, &tip, &recs, &e) == DR_OK) atomic_store(&s->st_tip_records, recs);
    else atomic_fetch_add(&s->st_log_errors, 1);
}

static void *apply_main(void *arg) {
    dr_srv *s = arg;
    unsigned backoff = 0;
    int down = 0;
    double tip_t = 0;
    for (;;) {
        answer_queries(s);
        pthread_mutex_lock(&s->amu);
        int stop = s->apply_stop, broken = s->broken;
        pthread_mutex_unlock(&s->amu);
        if (stop) break;
        if (broken) { /* readers keep answering from the last good state */
            apply_pause(s, 1000);
            continue;
        }
        size_t n = 0;
        dr_error e = {0};
        dr_status st = s->log->vt->read(s->log, s->apos, DR_SRV_APPLY_BATCH, 200, s->arecs, &n, &e);
        if (st != DR_OK) {
            atomic_fetch_add(&s->st_log_errors, 1);
            backoff = backoff ? (backoff * 2 > 2000 ? 2000 : backoff * 2) : 100;
            if (!down) {
                char at[DR_LOG_POS_MAX];
                dr__log_pos_format(s->apos, at);
                dr__log(DR_LOG_ERROR, "server: the log cannot be read (%s); applied through %s, "
                       "retrying with backoff", e.msg, at);
                down = 1;
                pthread_mutex_lock(&s->amu);
                s->log_down = 1;
                s->down_since = dr__now_seconds();
                pthread_cond_broadcast(&s->cv_applied);
                pthread_mutex_unlock(&s->amu);
            }
            apply_pause(s, backoff);
            continue;
        }
        if (down) {
            dr__log(DR_LOG_INFO, "server: the log is readable again");
            atomic_fetch_add(&s->st_reconnects, 1);
            down = 0;
            backoff = 0;
            pthread_mutex_lock(&s->amu);
            s->log_down = 0;
            pthread_mutex_unlock(&s->amu);
        }
        size_t done = 0;
        for (; done < n && st == DR_OK; done++) {
            st = apply_record(s, &s->arecs[done], 1, &s->aflags[done], &e);
            if (st != DR_OK) break;
            s->apos = s->arecs[done].pos;
            s->aseq++;
        }
        if (done) {
            publish(s);
            atomic_store(&s->st_applied_ms, s->apos.ms);
        }
        dr_error se = {0};
        if (done && s->p.snapshot_every && s->events_since_snap >= s->p.snapshot_every &&
            !atomic_load(&s->replaced) &&
            take_snapshot(s, &se) != DR_OK)
            dr__log(DR_LOG_WARN, "server: snapshot failed: %s", se.msg);
        pthread_mutex_lock(&s->amu);
        for (size_t k = 0; k < done; k++) {
            s->ring[s->ring_n % DR_SRV_ACK_RING] = (ack_ent){s->arecs[k].pos, s->aseq - done + k + 1, s->aflags[k]};
            s->ring_n++;
        }
        s->applied_pos = s->apos;
        s->applied_seq = s->aseq;
        if (st != DR_OK) { /* the log has it; the state cannot: stop following, refuse writes */
            s->broken = 1;
            dr__fail(&s->broken_err, DR_INTERNAL, "applying a logged record failed: %s", e.msg);
            dr__log(DR_LOG_ERROR, "server: %s", s->broken_err.msg);
        }
        ticket *settled = dr__srv_settle_locked(s); /* the writer's batches through applied_pos */
        pthread_cond_broadcast(&s->cv_applied);
        pthread_mutex_unlock(&s->amu);
        dr__srv_complete(s, settled, &s->acalls);
        poll_tip(s, &tip_t);
    }
    answer_queries(s); /* those queued before apply_stop was set */
    return NULL;
}

int dr__srv_wait_applied(dr_srv *s, dr_log_pos pos, uint32_t wait_ms, dr_log_pos *applied) {
    struct timespec ts;
    dr__deadline(&ts, CLOCK_REALTIME, wait_ms / 1000.0);
    pthread_mutex_lock(&s->amu);
    while (dr__log_pos_cmp(s->applied_pos, pos) < 0 && !s->apply_stop &&
           pthread_cond_timedwait(&s->cv_applied, &s->amu, &ts) == 0) {
    }
    int ok = dr__log_pos_cmp(s->applied_pos, pos) >= 0;
    if (applied) *applied = s->applied_pos;
    pthread_mutex_unlock(&s->amu);
    return ok;
}

/* Queues q for the apply thread and waits for its answer. */
static dr_status query(dr_srv *s, state_query *q, dr_error *err) {
    pthread_mutex_lock(&s->amu);
    if (s->apply_stop || !s->applier_started) {
        pthread_mutex_unlock(&s->amu);
        return dr__fail(err, DR_UNSUPPORTED, "the server is shutting down");
    }
    q->next = s->queries;
    s->queries = q;
    pthread_cond_signal(&s->cv_apply);
    pthread_mutex_unlock(&s->amu);
    s->log->vt->wake(s->log); /* a read waiting for records returns now */
    pthread_mutex_lock(&s->amu);
    while (!q->done) pthread_cond_wait(&s->cv_applied, &s->amu);
    pthread_mutex_unlock(&s->amu);
    return DR_OK;
}

dr_status dr__srv_state(dr_srv *s, dr_srv_state *out, dr_error *err) {
    if (!s || !out) return dr__fail(err, DR_ARG, "server: NULL argument");
    state_query q = {0};
    dr_status st = query(s, &q, err);
    if (st == DR_OK) *out = q.out;
    return st;
}

dr_status dr__srv_positions(dr_srv *s, uint32_t back1, uint32_t back2, dr_log_pos *applied,
                            dr_log_pos *pos1, dr_log_pos *pos2, dr_error *err) {
    if (!s || !applied || !pos1 || !pos2) return dr__fail(err, DR_ARG, "server: NULL argument");
    state_query q = {.positions = 1, .back = {back1, back2}};
    dr_status st = query(s, &q, err);
    if (st != DR_OK) return st;
    *applied = q.out.last;
    *pos1 = q.back_pos[0];
    *pos2 = q.back_pos[1];
    return DR_OK;
}

const dr_model *dr__srv_model(const dr_srv *s) { return s->m; }

int dr__srv_adapter_params(const dr_srv *s, dr_adapter_params *out) {
    *out = s->p.adapter;
    dr__adapter_params_from_model(out, s->m);
    return !s->p.frozen;
}

void dr__srv_retire(dr_srv *s) { atomic_store(&s->replaced, 1); }


static dr_status enqueue(dr_srv *s, ticket *t, dr_error *err) {
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        return dr__fail(err, DR_UNSUPPORTED, "the server is shutting down");
    }
    if (s->tail) s->tail->next = t;
    else s->head = t;
    s->tail = t;
    pthread_cond_signal(&s->cv_work);
    pthread_mutex_unlock(&s->mu);
    return DR_OK;
}

dr_status dr__srv_ticket_result(const dr_srv_ticket *t, dr_srv_ack *ack, dr_error *err) {
    if (t->st != DR_OK) {
        if (err) *err = t->err;
        return t->st;
    }
    if (ack) *ack = t->ack;
    return DR_OK;
}

static dr_status submit(dr_srv *s, ticket *t, dr_srv_ack *ack, dr_error *err) {
    dr_status st = enqueue(s, t, err);
    if (st != DR_OK) return st;
    pthread_mutex_lock(&s->mu);
    while (!t->done) pthread_cond_wait(&s->cv_done, &s->mu);
    pthread_mutex_unlock(&s->mu);
    return dr__srv_ticket_result(t, ack, err);
}

static dr_status check_events(const dr_srv *s, const dr_srv_event *ev, size_t n, dr_error *err) {
    if (!s || (!ev && n)) return dr__fail(err, DR_ARG, "server: NULL argument");
    if (n > DR_SRV_WRITER_BATCH) return dr__fail(err, DR_LIMIT, "at most %u events per request", DR_SRV_WRITER_BATCH);
    return DR_OK;
}

dr_status dr__srv_submit(dr_srv *s, const dr_srv_event *ev, size_t n, dr_srv_ack *ack,
                        dr_error *err) {
    dr_status st = check_events(s, ev, n, err);
    if (st != DR_OK) return st;
    ticket t = {.kind = T_EVENTS, .ev = ev, .n = n};
    return submit(s, &t, ack, err);
}

dr_status dr__srv_put_item(dr_srv *s, const char *item, const char *body, const char *key,
                          dr_srv_ack *ack, dr_error *err) {
    if (!s || !item || !body) return dr__fail(err, DR_ARG, "server: NULL argument");
    ticket t = {.kind = T_ITEM, .item = item, .body = body, .key = key, .n = 1};
    return submit(s, &t, ack, err);
}

dr_status dr__srv_append_base(dr_srv *s, const char *body, dr_srv_ack *ack, dr_error *err) {
    if (!s || !body) return dr__fail(err, DR_ARG, "server: NULL argument");
    ticket t = {.kind = T_BASE, .body = body, .n = 1};
    return submit(s, &t, ack, err);
}

dr_srv_ticket *dr__srv_ticket_create(void) { return dr__calloc(1, sizeof(dr_srv_ticket)); }
void dr__srv_ticket_free(dr_srv_ticket *t) { dr__free(t); }

dr_status dr__srv_submit_async(dr_srv *s, dr_srv_ticket *t, const dr_srv_event *ev, size_t n,
                              dr_srv_done_fn done, void *ud, dr_error *err) {
    dr_status st = check_events(s, ev, n, err);
    if (st != DR_OK) return st;
    *t = (ticket){.kind = T_EVENTS, .ev = ev, .n = n, .done_fn = done, .done_ud = ud};
    return enqueue(s, t, err);
}

dr_status dr__srv_put_item_async(dr_srv *s, dr_srv_ticket *t, const char *item, const char *body,
                                const char *key, dr_srv_done_fn done, void *ud, dr_error *err) {
    if (!s || !item || !body) return dr__fail(err, DR_ARG, "server: NULL argument");
    *t = (ticket){.kind = T_ITEM, .item = item, .body = body, .key = key, .n = 1, .done_fn = done,
                  .done_ud = ud};
    return enqueue(s, t, err);
}

/* ---------------------------------------------------------------- open / close */

static dr_status make_adapter(dr_srv *s, dr_error *err) {
    dr__adapter_free(s->ad);
    s->ad = NULL;
    dr_adapter_params ap = s->p.adapter;
    dr__adapter_params_from_model(&ap, s->m); /* the settings chosen on validation, if any */
    ap.publish_every = 0;
    ap.window.seconds_per_unit = 1.0; /* event times are UNIX seconds */
    dr_status st = dr__adapter_create(&ap, s->users.cap, s->items.cap, s->d, s->z, s->cold, &s->ad, err);
    if (st == DR_OK) dr__adapter_set_active_items(s->ad, atomic_load(&s->items.n), 0);
    return st;
}

/* The folder remembers which model it was made with; another model is refused, except the one
 * a BASE record of the log names (the record decides: the folder follows it). */
static dr_status check_folder(dr_srv *s, dr_error *err) {
    char want[160], have[160];
    const char *hash = dr_model_meta(s->m, "items_hash");
    snprintf(want, sizeof want, "%s/%u/%u", hash ? hash : "-", s->n_base_users, s->n_base_items);
    int found = 0;
    dr_status st = dr__store_meta_get(s->store, "model", have, sizeof have, &found, err);
    if (st != DR_OK) return st;
    if (s->p.model_path && (st = dr__store_meta_set(s->store, "model_path", s->p.model_path, err)) != DR_OK)
        return st;
    if (!found || (s->has_base && strcmp(have, want) != 0)) return dr__store_meta_set(s->store, "model", want, err);
    if (strcmp(have, want) != 0)
        return dr__fail(err, DR_ARG, "%s: this state folder belongs to another model (items hash/"
                       "users/items %s, this model %s)", dr__store_dir(s->store), have, want);
    return DR_OK;
}

/* Records moved out of the log by compaction (`dynrec compact`) still count: record numbers go
 * on from the folder's `compacted_records`. */
static dr_status compacted_records(dr_srv *s, dr_error *err) {
    char v[32];
    int found = 0;
    dr_status st = dr__store_meta_get(s->store, "compacted_records", v, sizeof v, &found, err);
    if (st != DR_OK || !found) return st;
    int64_t n = 0;
    if (dr__parse_i64(v, strlen(v), &n) && n >= 0) {
        s->aseq = (uint64_t)n;
        return DR_OK;
    }
    return dr__fail(err, DR_FORMAT, "%s: setting compacted_records '%s' is not a count",
                        dr__store_dir(s->store), v);
}

/* On the opening thread, before the apply thread starts: the newest snapshot that loads (taken
 * at or after the state's BASE record), then the whole log through `upto` (registries and
 * histories from after the base's `covers`; the adapter after the snapshot's position and from
 * the base's `from`). */
static dr_status recover(dr_srv *s, dr_log_pos upto, dr_error *err) {
    dr_store_snap snaps[8];
    size_t ns = 0;
    dr_status st = s->ephemeral ? DR_OK : dr__store_snapshots(s->store, snaps, 8, &ns, err);
    if (st != DR_OK) return st;
    dr_log_pos snap = {0, 0};
    int have_snap = 0;
    for (size_t k = 0; k < ns; k++) {
        if (s->has_base && dr__log_pos_cmp(snaps[k].pos, s->base.at) < 0) continue; /* an older base's */
        char *path = dr__path_join(dr__store_dir(s->store), snaps[k].file);
        dr_error e = {0};
        st = path ? dr__adapter_load(s->ad, path, &e) : dr__fail(&e, DR_NOMEM, "out of memory");
        dr__free(path);
        if (st == DR_OK) {
            snap = snaps[k].pos;
            have_snap = 1;
            break;
        }
        if (st == DR_NOMEM) /* not the snapshot's fault: an older one or a full replay would
                               hide it and take longer */
            return dr__fail(err, DR_NOMEM, "server: snapshot %s: %s", snaps[k].file, e.msg);
        dr__log(DR_LOG_WARN, "server: snapshot %s not used: %s", snaps[k].file, e.msg);
        if ((st = make_adapter(s, err)) != DR_OK) return st; /* a failed load may leave half a state */
    }
    uint64_t snap_records = 0;
    for (int more = 1; more;) {
        size_t n = 0;
        if ((st = s->log->vt->read(s->log, s->apos, DR_SRV_APPLY_BATCH, 0, s->arecs, &n, err)) != DR_OK)
            return st;
        if (!n) break;
        for (size_t k = 0; k < n; k++) {
            const dr_log_rec *r = &s->arecs[k];
            if (dr__log_pos_cmp(r->pos, upto) > 0) {
                more = 0;
                break;
            }
            int adapt = dr__log_pos_cmp(r->pos, snap) > 0 &&
                        (!s->has_base || dr__log_pos_cmp(r->pos, s->base.from) >= 0);
            if ((st = apply_record(s, r, adapt, &s->aflags[k], err)) != DR_OK) return st;
            if (adapt && r->kind == DR_REC_EVENT && !(s->aflags[k] & AE_SKIPPED))
                atomic_fetch_add(&s->st_recovered, 1);
            s->apos = r->pos;
            s->aseq++;
            s->ring[s->ring_n++ % DR_SRV_ACK_RING] = (ack_ent){r->pos, s->aseq, s->aflags[k]};
            if (!adapt) snap_records = s->aseq;
        }
    }
    if (have_snap && dr__log_pos_cmp(snap, s->apos) > 0)
        return dr__fail(err, DR_FORMAT, "%s: the newest snapshot is ahead of the log", dr__store_dir(s->store));
    if (have_snap) atomic_store(&s->st_snap_seq, snap_records);
    s->applied_pos = s->apos;
    s->applied_seq = s->aseq;
    atomic_store(&s->st_applied_ms, s->apos.ms);
    char at[DR_LOG_POS_MAX], sp[DR_LOG_POS_MAX];
    dr__log_pos_format(s->apos, at);
    dr__log_pos_format(snap, sp);
    dr__log(s->ephemeral ? DR_LOG_DEBUG : DR_LOG_INFO, "server: %llu records (%llu events) in the log through %s, %llu events replayed "
           "into the adapter after the snapshot at %s", (unsigned long long)s->aseq,
           (unsigned long long)atomic_load(&s->st_events), at,
           (unsigned long long)atomic_load(&s->st_recovered), sp);
    publish(s);
    return DR_OK;
}

/* The index model_path.ann (ann.c) when p asks for it and it applies; the model's cold rows. */
static dr_status open_ann(dr_srv *s, const dr_srv_params *p, dr_error *err) {
    if (p->ann < 0 || p->frozen || !p->model_path || !p->model_hash) return DR_OK;
    size_t pl = strlen(p->model_path);
    char *path = dr__malloc(pl + 5);
    if (!path) return dr__fail(err, DR_NOMEM, "server: out of memory");
    memcpy(path, p->model_path, pl);
    memcpy(path + pl, ".ann", 5);
    dr_status st = DR_OK;
    if (access(path, F_OK) != 0) {
        if (p->ann > 0)
            st = dr__fail(err, DR_ARG, "server: --ann on needs the index %s: build it with `dynrec index --model %s`",
                          path, p->model_path);
        else if (s->n_base_items >= DR_ANN_MIN_ITEMS)
            dr__log(DR_LOG_INFO, "server: %u items and no index %s: exact scan (`dynrec index` builds one)",
                    s->n_base_items, path);
    } else if (p->ann > 0 || s->n_base_items >= DR_ANN_MIN_ITEMS) {
        st = dr__ann_load(path, p->model_hash, s->d, p->max_new_items, &s->ann, err);
        if (st == DR_OK && p->ann_ef) dr__ann_set_ef(s->ann, p->ann_ef);
        s->ann_c = p->ann_candidates ? p->ann_candidates : st == DR_OK ? dr__ann_candidates(s->ann) : 0;
        if (st == DR_OK && s->ann_c > DR_ANN_MAX_CAND)
            st = dr__fail(err, DR_RANGE, "server: %u approximate candidates exceed %u", s->ann_c, DR_ANN_MAX_CAND);
    }
    dr__free(path);
    if (st != DR_OK || !s->ann) return st;
    uint32_t nc = 0;
    for (uint32_t i = 0; i < s->n_base_items; i++) nc += s->cold[i];
    s->ann_cold = dr__calloc(nc ? nc : 1, sizeof *s->ann_cold);
    if (!s->ann_cold) return dr__fail(err, DR_NOMEM, "server: out of memory");
    for (uint32_t i = 0; i < s->n_base_items; i++)
        if (s->cold[i]) s->ann_cold[s->n_ann_cold++] = i;
    dr__log(DR_LOG_INFO, "server: two-stage retrieval: %u indexed items, %u candidates, ef %u, %u cold items",
            dr__ann_count(s->ann), s->ann_c, dr__ann_ef(s->ann), s->n_ann_cold);
    return DR_OK;
}

/* The state of m over the log through upto, without threads; ephemeral: without the folder
 * (no snapshots, no settings; dr__srv_prequential). */
static dr_status build(const dr_model *m, const dr_srv_params *p, int ephemeral, dr_log_pos upto,
                      const dr_log_pos *score_after, dr_preq_trace *trace, dr_srv **out,
                      dr_error *err) {
    if (!m || !p || !out || !p->data_dir) return dr__fail(err, DR_ARG, "server: NULL argument");
    *out = NULL;
    uint32_t d = dr_model_latent_dim(m);
    if (!d) return dr__fail(err, DR_UNSUPPORTED, "server: model '%s' is not a dot-product model", dr_model_name(m));
    uint32_t nbu = dr_model_n_users(m), nbi = dr_model_n_items(m);
    if (!nbi || !dr_model_item_id(m, 0))
        return dr__fail(err, DR_ARG, "server: the model must be loaded from a checkpoint (ids)");
    if ((uint64_t)nbu + p->max_new_users >= UINT32_MAX / 4 || (uint64_t)nbi + p->max_new_items >= UINT32_MAX / 4 ||
        (uint64_t)nbu + p->max_new_users == 0)
        return dr__fail(err, DR_ARG, "server: too many users or items");
    dr_status st = DR_NOMEM;
    dr_srv *s = dr__calloc(1, sizeof *s);
    if (!s) return dr__fail(err, DR_NOMEM, "server: out of memory");
    openblas_set_num_threads(1);
    s->p = *p;
    s->m = m;
    s->d = d;
    s->ephemeral = ephemeral;
    if (score_after) {
        s->scoring = 1;
        s->score_after = *score_after;
        s->trace = trace;
    }
    if (p->base) {
        s->has_base = 1;
        s->base = *p->base;
    }
    s->p.base = NULL; /* p->base need not outlive the call */
    s->n_base_items = nbi;
    s->n_base_users = nbu;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv_work, NULL);
    pthread_cond_init(&s->cv_done, NULL);
    pthread_mutex_init(&s->amu, NULL);
    pthread_cond_init(&s->cv_applied, NULL);
    pthread_cond_init(&s->cv_apply, NULL);
    uint32_t cu = nbu + p->max_new_users, ci = nbi + p->max_new_items;
    if (dr__idmap_init(&s->users, cu) != DR_OK || dr__idmap_init(&s->items, ci) != DR_OK) goto fail;
    s->users.n_base = nbu;
    s->items.n_base = nbi;
    s->hist = dr__calloc(cu, sizeof *s->hist);
    s->meta = dr__calloc(ci, sizeof *s->meta);
    s->z = dr__calloc((size_t)ci * d, sizeof *s->z);
    s->cold = dr__calloc(ci, 1);
    s->basepop = dr__calloc(ci, sizeof *s->basepop);
    s->pscore = dr__calloc(ci, sizeof *s->pscore);
    s->wctx = dr__calloc(DR_SRV_CTX_MAX, sizeof *s->wctx);
    s->wh = dr__calloc(d, sizeof *s->wh);
    uint32_t ksz = 1024;
    while (ksz < 4u * (2u * DR_SRV_WRITER_BATCH + 2u)) ksz *= 2;
    s->ks.e = dr__calloc(ksz, sizeof *s->ks.e);
    s->ks.mask = ksz - 1;
    s->arecs = dr__calloc(DR_SRV_APPLY_BATCH, sizeof *s->arecs);
    s->aflags = dr__calloc(DR_SRV_APPLY_BATCH, 1);
    s->dup = dr__calloc(DR_SRV_WRITER_BATCH, 1);
    s->ring = dr__calloc(DR_SRV_ACK_RING, sizeof *s->ring);
    s->evring = dr__calloc(DR_SRV_EVENT_RING, sizeof *s->evring);
    s->sc_hp = dr__calloc(d, sizeof *s->sc_hp);
    s->winbuf = dr__calloc(DR_WIN_ITEM_STATS(d), sizeof *s->winbuf);
    if (p->stats && !p->frozen && !ephemeral && !(s->qstamp = dr__calloc(ci, sizeof *s->qstamp))) goto fail;
    if (!s->evring || !s->sc_hp || !s->winbuf || !s->hist || !s->meta || !s->z || !s->cold || !s->basepop || !s->pscore || !s->wctx || !s->wh ||
        !s->ks.e || !s->arecs || !s->aflags || !s->dup || !s->ring)
        goto fail;
    for (uint32_t u = 0; u < nbu; u++) {
        const char *id = dr_model_user_id(m, u);
        if (dr__idmap_find(&s->users, id, strlen(id)) == UINT32_MAX) dr__idmap_add(&s->users, id, strlen(id));
        else atomic_store(&s->users.n, u + 1); /* a duplicate id keeps its first row */
    }
    for (uint32_t i = 0; i < nbi; i++) {
        const char *id = dr_model_item_id(m, i);
        if (dr__idmap_find(&s->items, id, strlen(id)) == UINT32_MAX) dr__idmap_add(&s->items, id, strlen(id));
        else atomic_store(&s->items.n, i + 1);
    }
    if (atomic_load(&s->users.n) != nbu || atomic_load(&s->items.n) != nbi) {
        st = dr__fail(err, DR_FORMAT, "server: the model's ids are not distinct");
        goto fail;
    }
    /* base popularity (the model's histories) and cold rows */
    for (uint32_t u = 0; u < nbu; u++) {
        const uint32_t *hi;
        size_t n = dr_model_user_history(m, u, &hi);
        for (size_t k = 0; k < n; k++)
            if (hi[k] < nbi) s->basepop[hi[k]] += 1.0f;
    }
    float mx = 0;
    for (uint32_t i = 0; i < nbi; i++) mx = s->basepop[i] > mx ? s->basepop[i] : mx;
    const float *zb = dr_model_item_latents(m);
    dr_impute imp = DR_IMPUTE_GATE;
    if ((s->fus = dr__model_fusion(m, &s->fus_e, &imp)) != NULL) {
        const dr_fusion *f = s->fus;
        size_t nx = 0;
        for (uint32_t k = 0; k < f->n_mod; k++) {
            s->fxoff[k] = nx;
            nx += f->dim[k];
        }
        s->fxoff[f->n_mod] = nx; /* then d zeros: e of a new item */
        if (f->d > d || !s->fus_e) {
            st = dr__fail(err, DR_FORMAT, "server: the model's fusion does not fit its latents (%u > %u)", f->d, d);
            goto fail;
        }
        s->fus_mean = imp == DR_IMPUTE_MEAN;
        s->fx = dr__calloc(nx + f->d, sizeof *s->fx);
        s->fz = dr__calloc(f->d, sizeof *s->fz);
        s->fact = dr__calloc(dr__fusion_act_floats(f), sizeof *s->fact);
        s->frow = dr__calloc(d, sizeof *s->frow);
        if (!s->fx || !s->fz || !s->fact || !s->frow) goto fail;
    }
    for (uint32_t i = 0; i < ci; i++) {
        /* cold: no training interaction, and (fused model) no feature moved z off e */
        s->cold[i] = i >= nbi || (s->basepop[i] == 0 &&
                                  !(s->fus && memcmp(zb + (size_t)i * d, s->fus_e + (size_t)i * s->fus->d,
                                                     s->fus->d * sizeof(float)) != 0));
        if (!s->cold[i] || (p->frozen && i < nbi)) /* frozen: the model's own rows, as it scores */
            memcpy(s->z + (size_t)i * d, zb + (size_t)i * d, d * sizeof(float));
        s->basepop[i] = i < nbi ? 0.5f * s->basepop[i] / (mx + 1.0f) : 0.0f;
    }
    for (int b = 0; b < POP_BUFS; b++) atomic_init(&s->pop[b].refs, 0);
    atomic_init(&s->pop_cur, NULL);
    if (!ephemeral && (st = open_ann(s, p, err)) != DR_OK) goto fail;
    if ((st = dr_scorer_create(m, &s->wsc, err)) != DR_OK) goto fail;
    if ((st = dr__topk_scratch_create(ci, POP_K, &s->pts, err)) != DR_OK) goto fail;
    if ((st = make_adapter(s, err)) != DR_OK) goto fail;
    if (!ephemeral && (st = dr__store_open(p->data_dir, p->durable, &s->store, err)) != DR_OK) goto fail;
    if (!ephemeral && (st = check_folder(s, err)) != DR_OK) goto fail;
    if (!ephemeral && (st = compacted_records(s, err)) != DR_OK) goto fail;
    dr_log_params lp = dr__log_default_params();
    lp.spec = p->log;
    lp.dir = p->data_dir;
    lp.durable = p->durable;
    lp.dedup_ttl = p->idempotency_ttl;
    if ((st = dr__log_open(&lp, &s->log, err)) != DR_OK) goto fail;
    if ((st = recover(s, upto, err)) != DR_OK) goto fail;
    *out = s;
    return DR_OK;
fail:
    if (st == DR_NOMEM && (!err || err->code != DR_NOMEM)) dr__fail(err, DR_NOMEM, "server: out of memory");
    dr__srv_close(s);
    return st;
}

dr_status dr__srv_open(const dr_model *m, const dr_srv_params *p, dr_srv **out, dr_error *err) {
    if (out) *out = NULL;
    dr_srv *s = NULL;
    dr_status st = build(m, p, 0, (dr_log_pos){UINT64_MAX, UINT64_MAX}, NULL, NULL, &s, err);
    if (st != DR_OK) return st;
    s->quality = p->stats != NULL && !p->frozen; /* from here on: incoming events */
    if (pthread_create(&s->applier, NULL, apply_main, s) != 0) {
        st = dr__fail(err, DR_INTERNAL, "server: cannot start the apply thread");
        goto fail;
    }
    pthread_mutex_lock(&s->amu);
    s->applier_started = 1;
    pthread_mutex_unlock(&s->amu);
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
        st = dr__fail(err, DR_INTERNAL, "server: cannot start the writer thread");
        goto fail;
    }
    s->writer_started = 1;
    *out = s;
    return DR_OK;
fail:
    if (st == DR_NOMEM && (!err || err->code != DR_NOMEM)) dr__fail(err, DR_NOMEM, "server: out of memory");
    dr__srv_close(s);
    return st;
}

dr_status dr__srv_prequential(const dr_model *m, const dr_srv_params *p, dr_log_pos upto,
                              dr_log_pos score_after, dr_srv_preq *out, dr_preq_trace *trace,
                              dr_error *err) {
    if (!out) return dr__fail(err, DR_ARG, "server: NULL argument");
    memset(out, 0, sizeof *out);
    double t0 = dr__now_seconds();
    dr_srv_params q = *p;
    q.on_base = NULL;
    dr_srv *s = NULL;
    q.snapshot_every = 0;
    q.final_snapshot = 0;
    dr_status st = build(m, &q, 1, upto, &score_after, trace, &s, err);
    if (st != DR_OK) return st;
    if (s->trace_oom) {
        dr__srv_close(s);
        return dr__fail(err, DR_NOMEM, "server: out of memory for the prequential trace");
    }
    *out = s->preq;
    if (out->events) {
        out->hit10 /= (double)out->events;
        out->ndcg10 /= (double)out->events;
    }
    out->seconds = dr__now_seconds() - t0;
    dr__srv_close(s);
    return DR_OK;
}

void dr__srv_close(dr_srv *s) {
    if (!s) return;
    if (s->writer_started) {
        pthread_mutex_lock(&s->amu);
        s->closing = 1; /* a writer waiting on an unreadable log gives up */
        pthread_cond_broadcast(&s->cv_applied);
        pthread_mutex_unlock(&s->amu);
        pthread_mutex_lock(&s->mu);
        s->stopping = 1;
        pthread_cond_signal(&s->cv_work);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->writer, NULL); /* the writer empties the queue first */
    }
    if (s->applier_started) {
        pthread_mutex_lock(&s->amu);
        s->apply_stop = 1;
        pthread_cond_broadcast(&s->cv_apply);
        pthread_cond_broadcast(&s->cv_applied);
        pthread_mutex_unlock(&s->amu);
        s->log->vt->wake(s->log);
        pthread_join(s->applier, NULL);
        dr_error e = {0};
        if (s->p.final_snapshot && s->events_since_snap && !s->broken &&
            !atomic_load(&s->replaced) &&
            take_snapshot(s, &e) != DR_OK)
            dr__log(DR_LOG_WARN, "server: final snapshot failed: %s", e.msg);
    }
    dr__log_close(s->log);
    dr__store_close(s->store);
    dr__adapter_free(s->ad);
    dr__topk_scratch_free(s->pts);
    dr__ann_free(s->ann);
    dr__free(s->ann_cold);
    dr_scorer_free(s->wsc);
    for (uint32_t u = 0; s->hist && u < s->users.cap; u++) dr__free(atomic_load(&s->hist[u]));
    for (uint32_t i = 0; s->meta && i < s->items.cap; i++) {
        item_meta *mt = atomic_load(&s->meta[i]);
        if (mt) {
            dr__free(mt->title);
            dr__free(mt->body);
            dr__free(mt);
        }
    }
    for (size_t k = 0; k < s->retired.n; k++) dr__free(s->retired.a[k]);
    dr_vec_free(&s->retired);
    dr_vec_free(&s->recs);
    dr_vec_free(&s->calls);
    dr_vec_free(&s->acalls);
    for (unsigned k = 0; k < DR_SRV_INFLIGHT_BATCHES; k++) dr_vec_free(&s->aw[k].recs);
    dr__idmap_free(&s->users);
    dr__idmap_free(&s->items);
    dr__free(s->hist);
    dr__free(s->meta);
    dr__free(s->z);
    dr__free(s->cold);
    dr__free(s->basepop);
    dr__free(s->pscore);
    dr__free(s->wctx);
    dr__free(s->wh);
    dr__free(s->fx);
    dr__free(s->fz);
    dr__free(s->fact);
    dr__free(s->frow);
    dr__free(s->ks.e);
    dr__free(s->evring);
    dr__free(s->sc_hp);
    dr__free(s->winbuf);
    dr__free(s->qstamp);
    dr__free(s->arecs);
    dr__free(s->aflags);
    dr__free(s->dup);
    dr__free(s->ring);
    pthread_mutex_destroy(&s->amu);
    pthread_cond_destroy(&s->cv_applied);
    pthread_cond_destroy(&s->cv_apply);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv_work);
    pthread_cond_destroy(&s->cv_done);
    dr__free(s);
}

/* ---------------------------------------------------------------- readers */

struct dr_srv_worker {
    dr_scorer *sc;
    dr_topk_scratch *ts;
    dr_ann_scratch *as;     /* two-stage retrieval's buffers (NULL without an index) */
    uint32_t *cand_ids;     /* (POP_K + the cold rows) its extra candidates */
    uint32_t *ctx;          /* (DR_SRV_CTX_MAX) */
    float *h, *hp;          /* (d), (stride) */
    uint32_t items[DR_SRV_K_MAX];
    float scores[DR_SRV_K_MAX];
    float base[DR_LLM_RANK_MAX_CAND], llm[DR_LLM_RANK_MAX_CAND]; /* dr__srv_recommend_llm */
    uint32_t cand[DR_LLM_RANK_MAX_CAND];
};

void dr__srv_worker_free(dr_srv_worker *w) {
    if (!w) return;
    dr_scorer_free(w->sc);
    dr__topk_scratch_free(w->ts);
    dr__ann_scratch_free(w->as);
    dr__free(w->cand_ids);
    dr__free(w->ctx);
    dr__free(w->h);
    dr__free(w->hp);
    dr__free(w);
}

dr_status dr__srv_worker_create(dr_srv *s, dr_srv_worker **out, dr_error *err) {
    if (!s || !out) return dr__fail(err, DR_ARG, "server: NULL argument");
    *out = NULL;
    dr_srv_worker *w = dr__calloc(1, sizeof *w);
    if (!w) return dr__fail(err, DR_NOMEM, "server: out of memory");
    dr_status st = dr_scorer_create(s->m, &w->sc, err);
    if (st == DR_OK) st = dr__topk_scratch_create(s->items.cap, DR_SRV_K_MAX, &w->ts, err);
    if (st == DR_OK && s->ann) /* the index's, the hot, the cold and the new items */
        st = dr__ann_scratch_create(s->ann_c + POP_K + s->n_ann_cold + (s->items.cap - s->n_base_items),
                                    (s->d + 3u) & ~3u, DR_SRV_K_MAX, &w->as, err);
    if (st == DR_OK && s->ann && !(w->cand_ids = dr__calloc(POP_K + s->n_ann_cold, sizeof *w->cand_ids)))
        st = dr__fail(err, DR_NOMEM, "server: out of memory");
    if (st == DR_OK) {
        w->ctx = dr__calloc(DR_SRV_CTX_MAX, sizeof *w->ctx);
        w->h = dr__calloc(s->d, sizeof *w->h);
        w->hp = dr__calloc((s->d + 3u) & ~3u, sizeof *w->hp);
        if (!w->ctx || !w->h || !w->hp) st = dr__fail(err, DR_NOMEM, "server: out of memory");
    }
    if (st != DR_OK) {
        dr__srv_worker_free(w);
        return st;
    }
    *out = w;
    return DR_OK;
}

/* The current popular list with a reference (NULL before the first): the same acquire
 * protocol as the adapter's snapshots; pair with atomic_fetch_sub(&pb->refs, 1). */
static pop_buf *pop_acquire(dr_srv *s) {
    pop_buf *pb;
    for (;;) {
        pb = atomic_load(&s->pop_cur);
        if (!pb) return NULL;
        atomic_fetch_add(&pb->refs, 1);
        if (atomic_load(&s->pop_cur) == pb) return pb;
        atomic_fetch_sub(&pb->refs, 1);
    }
}

static void popular(dr_srv *s, dr_srv_worker *w, uint32_t k, dr_srv_recs *out) {
    pop_buf *pb = pop_acquire(s);
    uint32_t n = pb ? (pb->n < k ? pb->n : k) : 0;
    for (uint32_t j = 0; j < n; j++) {
        w->items[j] = pb->items[j];
        w->scores[j] = pb->counts[j];
    }
    if (pb) atomic_fetch_sub(&pb->refs, 1);
    out->popular = 1;
    out->n = n;
}

/* Two stages (ann.c) for h'_u in w->hp: the index's candidates, the popular-now items with
 * window events (hot), the model's cold rows and the rows created since, rescored over z'. */
static dr_status two_stage(dr_srv *s, dr_srv_worker *w, const dr_adapter_snapshot *snap, uint32_t n_active,
                           const uint32_t *hi, size_t nh, uint32_t k, dr_srv_recs *out, dr_error *err) {
    pop_buf *pb = pop_acquire(s);
    uint32_t hot = 0;
    while (pb && hot < pb->n && pb->counts[hot] > 0) hot++; /* counts first in the list's order */
    /* the hot ids, then the cold ones, in the worker's candidate list */
    uint32_t *extra = w->cand_ids;
    for (uint32_t j = 0; j < hot; j++) extra[j] = pb->items[j];
    if (pb) atomic_fetch_sub(&pb->refs, 1);
    memcpy(extra + hot, s->ann_cold, s->n_ann_cold * sizeof *extra);
    return dr__ann_topk(s->ann, s->ann_c, dr__snapshot_items(snap), n_active, dr__snapshot_stride(snap), w->hp,
                        extra, hot + s->n_ann_cold, s->n_base_items, n_active, hi, nh, k, w->as, w->items,
                        w->scores, &out->n, err);
}

dr_status dr__srv_recommend(dr_srv *s, dr_srv_worker *w, const char *user, uint32_t k,
                           dr_srv_recs *out, dr_error *err) {
    if (!s || !w || !user || !out) return dr__fail(err, DR_ARG, "server: NULL argument");
    if (k < 1 || k > DR_SRV_K_MAX) return dr__fail(err, DR_RANGE, "k must be in 1..%u", DR_SRV_K_MAX);
    memset(out, 0, sizeof *out);
    out->items = w->items;
    out->scores = w->scores;
    uint32_t u = dr__idmap_find(&s->users, user, strlen(user));
    if (u == UINT32_MAX) {
        popular(s, w, k, out);
        return DR_OK;
    }
    out->known = 1;
    const uint32_t *hi;
    size_t nh = user_hist(s, u, &hi); /* before n_active: every item in it is < n_active */
    dr_status st = base_latent(s, w->sc, w->ctx, u, w->h, err);
    if (st != DR_OK) return st;
    if (s->p.frozen) { /* the base alone (P-STREAM's frozen column): h_u . z_i */
        out->frozen = 1;
        return dr__topk_scan(s->z, atomic_load_explicit(&s->items.n, memory_order_acquire), s->d,
                             w->h, hi, nh, k, w->ts, w->items, w->scores, &out->n, err);
    }
    const dr_adapter_snapshot *snap = dr__adapter_acquire(s->ad);
    if (!snap) return dr__fail(err, DR_INTERNAL, "server: no adapter snapshot published");
    uint32_t n_active = atomic_load_explicit(&s->items.n, memory_order_acquire);
    dr__snapshot_user(snap, u, atomic_load_explicit(&s->clock, memory_order_relaxed), w->h, w->hp);
    if (s->ann) st = two_stage(s, w, snap, n_active, hi, nh, k, out, err);
    else st = dr__topk_scan_bf16(dr__snapshot_bf16(snap), dr__snapshot_items(snap), n_active,
                                 dr__snapshot_stride(snap), w->hp, hi, nh, k, w->ts, w->items,
                                 w->scores, &out->n, err);
    dr__adapter_release(s->ad, snap);
    return st;
}

dr_status dr__srv_recommend_llm(dr_srv *s, dr_srv_worker *w, const char *user, uint32_t k,
                               uint32_t n_top, dr_llm_ranker *r, float lambda, dr_srv_recs *out,
                               dr_error *err) {
    if (!s || !w || !user || !out || !r) return dr__fail(err, DR_ARG, "server: NULL argument");
    if (k < 1 || n_top < 1 || n_top > DR_LLM_RANK_MAX_CAND)
        return dr__fail(err, DR_RANGE, "rerank: k and the candidates must be in 1..%u", DR_LLM_RANK_MAX_CAND);
    uint32_t n = DR_MAX(k, n_top);
    if (n > DR_LLM_RANK_MAX_CAND) return dr__fail(err, DR_RANGE, "rerank: k must be at most %u",
                                                  DR_LLM_RANK_MAX_CAND);
    memset(out, 0, sizeof *out);
    out->items = w->items;
    out->scores = w->scores;
    uint32_t u = dr__idmap_find(&s->users, user, strlen(user));
    if (u == UINT32_MAX) { /* no history to read: the popular list, not reranked */
        popular(s, w, k, out);
        return DR_OK;
    }
    out->known = 1;
    const uint32_t *hi;
    size_t nh = user_hist(s, u, &hi), c = 0;
    dr_status st = base_latent(s, w->sc, w->ctx, u, w->h, err); /* w->ctx: the checkpoint's items */
    if (st != DR_OK) return st;
    for (size_t q = nh; q-- > 0 && c < DR_SRV_CTX_MAX;)
        if (hi[q] < s->n_base_items) c++;
    const dr_adapter_snapshot *snap = NULL;
    const float *h = w->h, *Z = s->z;
    size_t stride = s->d;
    uint32_t n_active = atomic_load_explicit(&s->items.n, memory_order_acquire);
    if (s->p.frozen) {
        out->frozen = 1;
    } else {
        if (!(snap = dr__adapter_acquire(s->ad)))
            return dr__fail(err, DR_INTERNAL, "server: no adapter snapshot published");
        dr__snapshot_user(snap, u, atomic_load_explicit(&s->clock, memory_order_relaxed), w->h, w->hp);
        h = w->hp, Z = dr__snapshot_items(snap), stride = dr__snapshot_stride(snap);
    }
    st = dr__topk_scan_bf16(snap ? dr__snapshot_bf16(snap) : NULL, Z, n_active, (uint32_t)stride,
                            h, hi, nh, n, w->ts, w->items, w->scores, &out->n, err);
    /* the LLM sees the adapter's current h'_u and z'_i (the base's when frozen); items newer
     * than the checkpoint have no title in the ranker and take the mean LLM score */
    uint32_t nc = 0;
    for (uint32_t j = 0; st == DR_OK && j < out->n; j++)
        if (w->items[j] < s->n_base_items) w->cand[nc++] = w->items[j];
    dr_llm_request q = {h, Z, stride, w->ctx, c, w->cand, nc};
    float *ls = w->llm;
    if (st == DR_OK && nc) st = dr_llm_rank_score(r, &q, ls, err);
    if (snap) dr__adapter_release(s->ad, snap);
    if (st != DR_OK) return st;
    double mean = 0;
    for (uint32_t j = 0; j < nc; j++) mean += ls[j];
    mean = nc ? mean / nc : 0;
    /* spread the scores back to positions, then order by base + lambda * llm (ties: base order) */
    float tmp[DR_LLM_RANK_MAX_CAND];
    for (uint32_t j = 0, q2 = 0; j < out->n; j++)
        tmp[j] = w->items[j] < s->n_base_items ? ls[q2++] : (float)mean;
    uint32_t pos[DR_LLM_RANK_MAX_CAND], it[DR_LLM_RANK_MAX_CAND];
    float comb[DR_LLM_RANK_MAX_CAND], base[DR_LLM_RANK_MAX_CAND];
    for (uint32_t j = 0; j < out->n; j++) {
        pos[j] = j;
        comb[j] = w->scores[j] + lambda * tmp[j];
        base[j] = w->scores[j];
        it[j] = w->items[j];
    }
    for (uint32_t a = 1; a < out->n; a++)
        for (uint32_t b = a; b > 0 && comb[pos[b]] > comb[pos[b - 1]]; b--) {
            uint32_t t = pos[b];
            pos[b] = pos[b - 1], pos[b - 1] = t;
        }
    if (out->n > k) out->n = k;
    for (uint32_t j = 0; j < out->n; j++) {
        w->items[j] = it[pos[j]];
        w->scores[j] = comb[pos[j]];
        w->base[j] = base[pos[j]];
        w->llm[j] = tmp[pos[j]];
    }
    out->base = w->base;
    out->llm = w->llm;
    out->reranked = 1;
    return DR_OK;
}

const char *dr__srv_item_name(const dr_srv *s, uint32_t i) { return s->items.name[i]; }

size_t dr__srv_item_attrs(const dr_srv *s, uint32_t i, const char **out, size_t cap) {
    return i < s->n_base_items ? dr_model_item_attrs(s->m, i, out, cap) : 0;
}

uint32_t dr__srv_find_item(const dr_srv *s, const char *item) {
    return dr__idmap_find(&s->items, item, strlen(item));
}

int dr__srv_user_info(const dr_srv *s, const char *user, uint32_t *history, uint32_t *events) {
    uint32_t u = dr__idmap_find(&s->users, user, strlen(user));
    if (u == UINT32_MAX) return 0;
    const uint32_t *hi;
    size_t n = user_hist(s, u, &hi), base = 0;
    if (u < s->n_base_users) base = dr_model_user_history(s->m, u, &hi);
    *history = (uint32_t)n;
    *events = (uint32_t)(n - base);
    return 1;
}

void dr__srv_get_stats(const dr_srv *s, dr_srv_stats *o) {
    dr_srv *m = (dr_srv *)s;
    memset(o, 0, sizeof *o);
    o->events_total = atomic_load(&m->st_events);
    o->log_records = atomic_load(&m->st_records);
    o->log_bytes = s->log->vt->bytes(s->log);
    o->commits = atomic_load(&m->st_commits);
    o->adapter_updates = atomic_load(&m->st_updates);
    o->snapshots = atomic_load(&m->st_snaps);
    o->snapshot_seq = atomic_load(&m->st_snap_seq);
    o->recovered_events = atomic_load(&m->st_recovered);
    o->users = atomic_load(&m->users.n);
    o->items = atomic_load(&m->items.n);
    o->new_users = o->users - s->n_base_users;
    o->new_items = o->items - s->n_base_items;
    o->max_new_users = s->p.max_new_users;
    o->max_new_items = s->p.max_new_items;
    o->clock = atomic_load(&m->clock);
    o->skipped = atomic_load(&m->st_skipped);
    o->log_errors = atomic_load(&m->st_log_errors);
    o->log_reconnects = atomic_load(&m->st_reconnects);
    uint64_t tip = atomic_load(&m->st_tip_records);
    o->lag_records = tip > o->log_records ? tip - o->log_records : 0;
    uint64_t ms = atomic_load(&m->st_applied_ms);
    struct timespec wall; /* stream ids carry wall-clock milliseconds; dr__now_seconds is monotonic */
    clock_gettime(CLOCK_REALTIME, &wall);
    double age = ms ? (double)wall.tv_sec + wall.tv_nsec / 1e9 - (double)ms / 1000.0 : 0.0;
    o->lag_seconds = o->lag_records && age > 0 ? age : 0.0;
}

/* ---------------------------------------------------------------- the dashboard's views */

int dr__srv_base_scores(dr_srv *s, dr_srv_worker *w, const char *user, float *scores, uint32_t cap,
                        uint32_t *n, dr_error *err) {
    *n = 0;
    uint32_t u = dr__idmap_find(&s->users, user, strlen(user));
    if (u == UINT32_MAX) return 0;
    const uint32_t *hi;
    size_t nh = user_hist(s, u, &hi); /* before n_active: every item in it is < n_active */
    uint32_t n_active = atomic_load_explicit(&s->items.n, memory_order_acquire);
    if (n_active > cap) n_active = cap;
    if (base_latent(s, w->sc, w->ctx, u, w->h, err) != DR_OK) return 0;
    dr__scan_f32(s->z, n_active, s->d, w->h, scores);
    for (size_t k = 0; k < nh; k++)
        if (hi[k] < n_active) scores[hi[k]] = -INFINITY;
    *n = n_active;
    return 1;
}

uint32_t dr__srv_user_history(const dr_srv *s, const char *user, uint32_t *items, uint32_t cap,
                              uint32_t *total) {
    *total = 0;
    uint32_t u = dr__idmap_find(&s->users, user, strlen(user));
    if (u == UINT32_MAX) return 0;
    const uint32_t *hi;
    size_t n = user_hist(s, u, &hi);
    *total = (uint32_t)n;
    uint32_t m = n < cap ? (uint32_t)n : cap;
    memcpy(items, hi + (n - m), m * sizeof *items);
    return m;
}

uint32_t dr__srv_item_nearest(dr_srv *s, dr_srv_worker *w, uint32_t i, uint32_t k, uint32_t *items,
                              float *sims) {
    uint32_t n_active = atomic_load_explicit(&s->items.n, memory_order_acquire), got = 0;
    if (i >= n_active || !k) return 0;
    const float *zi = s->z + (size_t)i * s->d;
    double ni = 0;
    for (uint32_t c = 0; c < s->d; c++) ni += (double)zi[c] * zi[c];
    if (ni <= 0) return 0; /* a cold row: no base latent to be near */
    /* a running top k by insertion: k is small (DR_STATS_NEAREST) */
    for (uint32_t j = 0; j < n_active; j++) {
        if (j == i) continue;
        const float *zj = s->z + (size_t)j * s->d;
        double dot = 0, nj = 0;
        for (uint32_t c = 0; c < s->d; c++) {
            dot += (double)zi[c] * zj[c];
            nj += (double)zj[c] * zj[c];
        }
        if (nj <= 0) continue;
        float sim = (float)(dot / sqrt(ni * nj));
        if (got == k && sim <= sims[k - 1]) continue;
        uint32_t at = got < k ? got++ : k - 1;
        while (at > 0 && sims[at - 1] < sim) {
            sims[at] = sims[at - 1];
            items[at] = items[at - 1];
            at--;
        }
        sims[at] = sim;
        items[at] = j;
    }
    (void)w;
    return got;
}

void dr__srv_item_window(const dr_srv *s, uint32_t i, float *count, float *trend) {
    *count = *trend = 0;
    state_query q = {.positions = 1, .item_q = 1, .item = i};
    if (query((dr_srv *)s, &q, NULL) != DR_OK) return;
    *count = q.win_count;
    *trend = q.win_trend;
}

uint32_t dr__srv_item_fusion(const dr_srv *s, uint32_t i, const char **names, int *present,
                             float *gates, uint32_t cap, int *trained) {
    const dr_fusion *f = s->fus;
    *trained = 0;
    if (!f) return 0;
    uint32_t nm = f->n_mod < cap ? f->n_mod : cap;
    for (uint32_t m = 0; m < nm; m++) {
        names[m] = f->name[m];
        present[m] = 0;
        gates[m] = NAN;
    }
    if (i < s->n_base_items)
        *trained = memcmp(dr_model_item_latents(s->m) + (size_t)i * s->d, s->fus_e + (size_t)i * f->d,
                          f->d * sizeof(float)) != 0;
    const char *title, *body;
    dr__srv_item_meta(s, i, &title, &body);
    json_t *o = body ? json_loads(body, 0, NULL) : NULL;
    json_t *feats = o ? json_object_get(o, "features") : NULL;
    size_t nx = 0;
    for (uint32_t m = 0; m < f->n_mod; m++) nx += f->dim[m];
    float *xs = json_object_size(feats) ? dr__calloc(nx + f->d, sizeof *xs) : NULL;
    float *z = xs ? dr__calloc(f->d, sizeof *z) : NULL;
    float *act = z ? dr__calloc(dr__fusion_act_floats(f), sizeof *act) : NULL;
    if (act) { /* the gates of the last PUT's features, as item_features computed them */
        const float *x[DR_MAX_MODALITIES];
        float gate[DR_MAX_MODALITIES];
        for (uint32_t m = 0; m < f->n_mod; m++) {
            float *xm = xs + s->fxoff[m];
            const float *mean = f->stats + f->soff[m], *inv = mean + f->dim[m];
            json_t *a = json_object_get(feats, f->name[m]);
            int pr = a && json_array_size(a) == f->dim[m];
            for (uint32_t k = 0; k < f->dim[m]; k++)
                xm[k] = pr ? ((float)json_number_value(json_array_get(a, k)) - mean[k]) * inv[k] : 0.0f;
            x[m] = xm;
            gate[m] = pr || s->fus_mean ? 1.0f : 0.0f;
            if (m < nm) present[m] = pr;
        }
        const float *e = i < s->n_base_items ? s->fus_e + (size_t)i * f->d : xs + nx;
        dr__fusion_forward(f, e, x, gate, z, act);
        for (uint32_t m = 0; m < nm; m++) /* act: Y (n_mod, d) | S (n_mod) | G (n_mod) */
            gates[m] = act[(size_t)f->n_mod * f->d + f->n_mod + m];
    }
    dr__free(act);
    dr__free(z);
    dr__free(xs);
    json_decref(o);
    return nm;
}
