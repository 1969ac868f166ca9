/*
 * serve_core.h - the serving core (internal): the model, the online adapter, the id registries,
 * the users' histories, the event log (serve_log.h, any kind), the writer thread and the apply
 * thread. No sockets: serve_routes.c turns HTTP requests into these calls and serve_http.c
 * connects serve_routes.c to libmicrohttpd. See serve_core.c.
 *
 * Threads: dr__srv_submit / dr__srv_put_item may be called from any number of threads (they
 * queue work for the one writer thread, which appends to the log, and wait until the apply
 * thread has applied it; the writer appends the next batches meanwhile); readers (dr__srv_recommend, dr__srv_user_info, the dr__srv_item_*
 * and dr__srv_find_item lookups, dr__srv_get_stats) never take a lock the apply thread holds
 * while it works, each with its own dr_srv_worker where it needs scratch. dr__srv_wait_applied
 * and dr__srv_state wait (bounded) for the apply thread.
 */
#ifndef DR_SERVE_CORE_H
#define DR_SERVE_CORE_H

#include "adapter.h"
#include "serve_log.h"
#include "serve_stats.h"
#include "serve_store.h"
#include "topk.h"


/* The log's BASE record a state starts from (a base swap; serve_live.c): records at or before
 * `covers` are in the checkpoint's training data and are not applied again; the adapter is
 * rebuilt from the events from `from` on (unless a snapshot taken at or after `at` gives it). */
typedef struct dr_srv_base {
    dr_log_pos at, covers, from;
} dr_srv_base;

/* Called on the apply thread when the state applies a BASE record after its own (another swap,
 * which serve_live.c follows). body is the record's JSON; both are valid during the call only.
 * Must not block or call back into the server. */
typedef void (*dr_srv_base_fn)(void *ud, dr_log_pos at, const char *body);

typedef struct dr_srv_params {
    const char *data_dir;      /* state folder (created when missing) */
    uint32_t max_new_items;    /* rows reserved for items the model does not know (10000) */
    uint32_t max_new_users;    /* rows reserved for users the model does not know (50000) */
    uint64_t snapshot_every;   /* events between adapter snapshots (10000); 0 = only on close */
    int durable;               /* 1: every commit is fsynced (synchronous=FULL) */
    int final_snapshot;        /* 1: dr__srv_close writes a snapshot (tests turn it off) */
    dr_adapter_params adapter; /* publish_every is forced to 0 (the apply thread publishes per batch) */
    const char *log;           /* the log's spec (serve_log.h): NULL or "sqlite" = the folder's */
    uint32_t idempotency_ttl;  /* seconds an idempotency key is remembered (86400) */
    const dr_srv_base *base;   /* the BASE record this state starts from; NULL: none (the log has
                                  no swap: every record is applied) */
    const char *model_path;    /* the checkpoint's path, kept in the folder's settings as
                                  model_path (`dynrec export` reads it); NULL: not kept */
    dr_srv_base_fn on_base;    /* a later BASE record was applied (NULL: only logged) */
    void *on_base_ud;
    int frozen;                /* 1: no adapter: events grow histories only, recommendations are
                                  the base's h_u . z_i over the checkpoint's items, no snapshots */
    dr_stats *stats;           /* live quality: the incoming events it samples (not the replay at
                                  open) are scored before they are applied, top 10 under the base
                                  alone and under base + adapter (NULL: none; frozen: none) */
    const char *model_hash;    /* the checkpoint file's XXH64, 16 hex digits (serve_live.c); with
                                  model_path it finds and checks the index model_path.ann */
    int ann;                   /* two-stage retrieval (ann.c): 0 auto (the index when present and
                                  the model has >= DR_ANN_MIN_ITEMS items), 1 on (the index must
                                  be there), -1 off */
    uint32_t ann_candidates;   /* approximate candidates per request (0: the index file's) */
    uint32_t ann_ef;           /* the index's search list (0: the index file's) */
} dr_srv_params;

dr_srv_params dr__srv_default_params(void);

typedef struct dr_srv dr_srv;

/* Opens the state folder and the log, loads the newest usable snapshot, replays the log (all of
 * it into registries and histories, what follows the snapshot into the adapter too) and starts
 * the writer and the apply thread. m is borrowed (a dot-product model loaded from a checkpoint). */
dr_status dr__srv_open(const dr_model *m, const dr_srv_params *p, dr_srv **out, dr_error *err);
/* Applies what is queued, writes the final snapshot (params), stops the writer, frees. */
void dr__srv_close(dr_srv *s);

typedef struct dr_srv_event {
    const char *user, *item; /* non-empty, at most DR_SRV_ID_MAX bytes, valid UTF-8 */
    int64_t time;            /* UNIX seconds */
    int has_time;            /* 0: the writer stamps the time of the commit */
    const char *key;         /* idempotency key (serve_log.h) or NULL */
} dr_srv_event;

typedef struct dr_srv_ack {
    uint64_t first_seq, last_seq; /* record numbers (1-based, in log order) of the request's
                                     first and last records; a duplicate's are the original's
                                     (0 when the original is too old to be mapped) */
    uint64_t events_total;        /* events applied after the request's records */
    int created;                  /* dr__srv_put_item: 1 when the item was new */
    char stream_id[DR_LOG_POS_MAX]; /* the last record's log position, formatted */
} dr_srv_ack;

/* Logs ev[0..n) durably and applies them to the adapter, in one append shared with whatever
 * else is queued; returns when the apply thread has applied them. DR_LIMIT: no room for new
 * users or items (before logging; or, when another replica took the rows first, at apply
 * time: the records are skipped); DR_IO: the log could not be written (nothing was applied);
 * DR_UNSUPPORTED: the server is stopping; DR_INTERNAL: the state cannot follow the log. */
dr_status dr__srv_submit(dr_srv *s, const dr_srv_event *ev, size_t n, dr_srv_ack *ack,
                        dr_error *err);
/* Logs and applies an item record; body is the JSON object {"title", "attributes",
 * "features"} already validated by the caller (serve_routes.c). */
dr_status dr__srv_put_item(dr_srv *s, const char *item, const char *body, const char *key,
                          dr_srv_ack *ack, dr_error *err);
/* 1 when the checkpoint fuses modality features (a PUT's features then set the item's base
 * latent through the fusion; serve_core.c), else 0 (features are only kept). */
int dr__srv_fuses(const dr_srv *s);
/* A PUT's feature array of `dim` numbers for `modality`: DR_OK when the checkpoint has no
 * fusion or fuses that modality with that dimension; DR_ARG naming the modalities it fuses or
 * the expected dimension otherwise. */
dr_status dr__srv_check_feature(const dr_srv *s, const char *modality, size_t dim, dr_error *err);

/* Asynchronous forms for servers that must not block a thread per waiting request: queue the
 * work and return at once; done(ud) is called on the writer or the apply thread once the records
 * are durable and applied (or refused); then dr__srv_ticket_result tells which. ev / item / body and the
 * ticket must stay alive until done was called. done must not call back into the server. */
typedef struct dr_srv_ticket dr_srv_ticket;
typedef void (*dr_srv_done_fn)(void *ud);
dr_srv_ticket *dr__srv_ticket_create(void);
void dr__srv_ticket_free(dr_srv_ticket *t);
dr_status dr__srv_submit_async(dr_srv *s, dr_srv_ticket *t, const dr_srv_event *ev, size_t n,
                              dr_srv_done_fn done, void *ud, dr_error *err);
dr_status dr__srv_put_item_async(dr_srv *s, dr_srv_ticket *t, const char *item, const char *body,
                                const char *key, dr_srv_done_fn done, void *ud, dr_error *err);
dr_status dr__srv_ticket_result(const dr_srv_ticket *t, dr_srv_ack *ack, dr_error *err);

/* ---- readers */
typedef struct dr_srv_worker dr_srv_worker;
dr_status dr__srv_worker_create(dr_srv *s, dr_srv_worker **out, dr_error *err);
void dr__srv_worker_free(dr_srv_worker *w);

typedef struct dr_srv_recs {
    int known;              /* the user is in the model or has sent events */
    int popular;            /* 1: popular-now items (unknown user) */
    int frozen;             /* 1: base scores (the server runs without the adapter) */
    uint32_t n;
    const uint32_t *items;  /* (n) dense ids, into the worker */
    const float *scores;    /* (n) adapter scores, or window counts for popular items; reranked:
                               base + lambda * llm */
    int reranked;           /* 1: dr__srv_recommend_llm ordered them */
    const float *base;      /* (n) reranked: the adapter's (or frozen base's) scores */
    const float *llm;       /* (n) reranked: the LLM's (mean log-probability per title token) */
} dr_srv_recs;

/* The base's scores h_u . z_i of every active item for a known user (the dashboard's rank
 * change): scores (cap floats) gets *n of them, items in the user's history -INFINITY. 0 when
 * the user is unknown (*n = 0). */
int dr__srv_base_scores(dr_srv *s, dr_srv_worker *w, const char *user, float *scores, uint32_t cap,
                        uint32_t *n, dr_error *err);
/* The user's history, the last cap items (oldest first): returns how many; *total: its length. */
uint32_t dr__srv_user_history(const dr_srv *s, const char *user, uint32_t *items, uint32_t cap,
                              uint32_t *total);
/* The k items nearest to item i by cosine of the base latents (i itself left out): fills
 * items/sims, returns how many. */
uint32_t dr__srv_item_nearest(dr_srv *s, dr_srv_worker *w, uint32_t i, uint32_t k, uint32_t *items,
                              float *sims);
/* Item i in the adapter's window now: events and trend (the window's item statistics; 0 when
 * the state serves frozen). Read without a lock: a figure of a moment, for display. */
void dr__srv_item_window(const dr_srv *s, uint32_t i, float *count, float *trend);
/* The fusion's view of item i: the fused modalities' names (into names, up to cap), whether
 * the item's last PUT carried each (present) and the gate it gives (gates; NAN when not
 * computed: a checkpoint item whose features stayed in the training data). Returns the
 * number of fused modalities (0: the checkpoint does not fuse). *trained: 1 when the
 * checkpoint's fused latent differs from the id embedding (features in training). */
uint32_t dr__srv_item_fusion(const dr_srv *s, uint32_t i, const char **names, int *present,
                             float *gates, uint32_t cap, int *trained);

/* Top k (1..DR_SRV_K_MAX) for an external user id, history excluded. */
dr_status dr__srv_recommend(dr_srv *s, dr_srv_worker *w, const char *user, uint32_t k,
                           dr_srv_recs *out, dr_error *err);
/* The top max(k, n_top) as dr__srv_recommend, scored by the LLM ranker r with the adapter's
 * current h'_u and z'_i as soft tokens (read from the same snapshot as the scores), ordered
 * by score + lambda * llm, the first k returned; max(k, n_top) <= DR_LLM_RANK_MAX_CAND.
 * Unknown users get the popular list, not reranked. */
dr_status dr__srv_recommend_llm(dr_srv *s, dr_srv_worker *w, const char *user, uint32_t k,
                               uint32_t n_top, dr_llm_ranker *r, float lambda, dr_srv_recs *out,
                               dr_error *err);
const char *dr__srv_item_name(const dr_srv *s, uint32_t i);
/* Title ("" when none) and the stored JSON body of the last PUT (NULL when none). */
void dr__srv_item_meta(const dr_srv *s, uint32_t i, const char **title, const char **body);
/* The checkpoint's attributes ("key=value") of item i: count, fills up to cap (0 for new items). */
size_t dr__srv_item_attrs(const dr_srv *s, uint32_t i, const char **out, size_t cap);
/* Dense item id or UINT32_MAX. */
uint32_t dr__srv_find_item(const dr_srv *s, const char *item);
/* 0 when unknown; else 1 with the history length and the events received for the user. */
int dr__srv_user_info(const dr_srv *s, const char *user, uint32_t *history, uint32_t *events);

/* Waits up to wait_ms until the apply thread has applied through pos; 1 when it has, else 0.
 * *applied (may be NULL): the applied position when it returns. */
int dr__srv_wait_applied(dr_srv *s, dr_log_pos pos, uint32_t wait_ms, dr_log_pos *applied);

typedef struct dr_srv_state {
    dr_log_pos last;  /* the applied position */
    uint64_t records; /* records applied (the last one's record number) */
    uint64_t hash;    /* registries, histories, item metadata, adapter parameters and latents */
} dr_srv_state;
/* The state's hash at one applied position, computed by the apply thread between batches (the
 * caller waits). Two replicas at the same position have the same hash. DR_UNSUPPORTED when
 * the server is stopping. */
dr_status dr__srv_state(dr_srv *s, dr_srv_state *out, dr_error *err);

/* ---- base swaps (serve_live.c) */

/* Logs a BASE record (body: its JSON, serve_log.h) through the writer like any write; returns
 * when it is applied; ack->stream_id is its position. */
dr_status dr__srv_append_base(dr_srv *s, const char *body, dr_srv_ack *ack, dr_error *err);

/* The applied position, and the positions of the event records `back1` and `back2` events
 * before it (the newest applied event is 1 back; (0, 0) when the log has fewer events or the
 * ring of recent event positions, DR_SRV_EVENT_RING, is shorter). Answered by the apply
 * thread between two reads, like dr__srv_state. */
dr_status dr__srv_positions(dr_srv *s, uint32_t back1, uint32_t back2, dr_log_pos *applied,
                            dr_log_pos *pos1, dr_log_pos *pos2, dr_error *err);

/* Prequential quality of a base with its adapter on the log's recent events, away from the
 * live state: builds the state of m over the log up to `upto` (p->base as for dr__srv_open,
 * nothing read from or written to the folder but the log, no threads), and for every event
 * after `score_after` whose user and item are known asks the top 10 just before applying it. */
typedef struct dr_srv_preq {
    uint64_t events;       /* events scored */
    double hit10, ndcg10;  /* means over them (0 when none) */
    double seconds;        /* the build's wall time */
} dr_srv_preq;
/* Each scored event of a prequential replay, in log order: its position and whether it was a
 * hit (dr__srv_prequential's trace; freed with dr__preq_trace_free). */
typedef struct dr_preq_trace {
    dr_log_pos *pos;
    uint8_t *hit;
    size_t n, cap;
} dr_preq_trace;
void dr__preq_trace_free(dr_preq_trace *t);
/* Two replays' traces paired by position (the events both scored): *only_a hits of a that b
 * missed, *only_b the reverse, *paired the events in both. */
void dr__preq_paired(const dr_preq_trace *a, const dr_preq_trace *b, uint64_t *paired,
                     uint64_t *only_a, uint64_t *only_b);
dr_status dr__srv_prequential(const dr_model *m, const dr_srv_params *p, dr_log_pos upto,
                              dr_log_pos score_after, dr_srv_preq *out, dr_preq_trace *trace,
                              dr_error *err);

/* A newer state has replaced this one: it takes no more snapshots (also not on close). */
void dr__srv_retire(dr_srv *s);

/* The model the state serves (borrowed from the caller of dr__srv_open). */
const dr_model *dr__srv_model(const dr_srv *s);
/* The adapter's settings in use (the library's defaults with the checkpoint's notes over them);
 * returns 0 when the state serves frozen (no adapter learning). */
int dr__srv_adapter_params(const dr_srv *s, dr_adapter_params *out);

typedef struct dr_srv_stats {
    uint64_t events_total;     /* event records applied */
    uint64_t log_records;      /* records applied (events and items; skipped ones included) */
    uint64_t log_bytes;
    uint64_t commits;          /* appends (group commits) since start */
    uint64_t adapter_updates;  /* dr__adapter_update calls since start (replay included) */
    uint64_t snapshots;        /* snapshots written since start */
    uint64_t snapshot_seq;     /* log position of the newest snapshot */
    uint64_t recovered_events; /* events replayed into the adapter at start */
    uint32_t users, items;     /* known ids (model + new) */
    uint32_t new_users, new_items, max_new_users, max_new_items;
    int64_t clock;             /* time of the newest event */
    uint64_t skipped;          /* records skipped at apply time (no room; the same everywhere) */
    uint64_t lag_records;      /* records in the log not yet applied (as of the last tip poll) */
    double lag_seconds;        /* age of the newest applied record when behind (0: not behind or
                                  the log keeps no append time) */
    uint64_t log_errors;       /* failed log calls (append, read, tip) */
    uint64_t log_reconnects;   /* reads that succeeded after failures */
} dr_srv_stats;
void dr__srv_get_stats(const dr_srv *s, dr_srv_stats *out);

#endif /* DR_SERVE_CORE_H */
