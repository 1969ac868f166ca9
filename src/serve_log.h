/*
 * serve_log.h - the server's event log: one interface, one row per kind (DR_LOG_TABLE).
 *   sqlite  the state folder's own events.db (embedded; the default, `--log sqlite`)
 *   redis   a Redis stream shared by every replica (`--log redis://HOST:PORT[/STREAM]` or
 *           `--log redis+unix:///PATH[?stream=S]`), through hiredis
 * The serving core appends and reads through this interface only; it does not know which kind
 * it talks to. The state is a function of (checkpoint, log): every replica that applies the
 * same records in the same order reaches the same state.
 *
 * Signals: hiredis writes to its socket with plain write(2), so a Redis that dies mid-write
 * raises SIGPIPE; a process that uses the redis kind ignores SIGPIPE (`dynrec serve` does, as
 * every server must), and the write then fails with EPIPE, which the kind reports as DR_IO.
 *
 * Threads: append is called from one thread (the writer) and read from one other thread (the
 * apply thread), concurrently; an implementation keeps a connection per side. wake may be
 * called from any thread.
 */
#ifndef DR_SERVE_LOG_H
#define DR_SERVE_LOG_H

#include "common.h"

/* A position in the log, totally ordered: sqlite (0, seq), redis the stream id (ms, seq).
 * (0, 0) is "before the first record". */
typedef struct dr_log_pos {
    uint64_t ms, seq;
} dr_log_pos;

#define DR_LOG_POS_MAX 48 /* bytes of a formatted position, NUL included */
/* "ms-seq" for any position (sqlite's read "0-seq"); the parser also takes a bare "seq". */
void dr__log_pos_format(dr_log_pos p, char out[DR_LOG_POS_MAX]);
int dr__log_pos_parse(const char *s, dr_log_pos *out); /* 0 ok, -1 malformed */
int dr__log_pos_cmp(dr_log_pos a, dr_log_pos b);     /* <0, 0, >0 */

/* What a record holds, one row per kind: its number (the sqlite log's `kind` column), its
 * letter (the redis entry's `k` field) and the fields it must carry (DR_RF_*; the others are
 * NULL). Both are part of the log's format: never renumber a row.
 *   EVENT  an event (user, item, time)
 *   ITEM   an item (PUT /v1/items: item, body = {"title","attributes","features"})
 *   BASE   a base swap (POST /v1/admin/base, SIGHUP): body = {"path","hash","covers","from"},
 *          the checkpoint the state is on from this record on (serve_core.c) */
enum { DR_RF_USER = 1, DR_RF_ITEM = 2, DR_RF_BODY = 4 };
#define DR_REC_TABLE(X)                                 \
    X(EVENT, 0, "e", DR_RF_USER | DR_RF_ITEM, "event") \
    X(ITEM, 1, "i", DR_RF_ITEM | DR_RF_BODY, "item")   \
    X(BASE, 2, "s", DR_RF_BODY, "base")
#define DR_REC_ENUM(name, num, letter, fields, text) DR_REC_##name = num,
enum { DR_REC_TABLE(DR_REC_ENUM) };
#undef DR_REC_ENUM
/* The fields kind must carry (DR_RF_*), 0 for an unknown kind. */
int dr__rec_fields(int kind);
/* The kind's letter ("e", "i", "s"; "?" for an unknown kind) and back (-1 when unknown). */
const char *dr__rec_letter(int kind);
int dr__rec_kind_of(const char *letter);
/* "event", "item", "base" ("?" for an unknown kind). */
const char *dr__rec_name(int kind);

typedef struct dr_log_rec {
    dr_log_pos pos;   /* set by append (the record's, or the original's for a duplicate) and read */
    int kind;         /* DR_REC_* (DR_REC_TABLE) */
    const char *user; /* events; NULL otherwise */
    const char *item; /* events and items; NULL otherwise */
    int64_t time;     /* events: UNIX seconds; items and bases: the time of the append */
    const char *body; /* items and bases: JSON object; NULL for events */
    const char *key;  /* idempotency key (an event's event_id, or Idempotency-Key + index);
                         NULL = none. Not part of the record's content. */
} dr_log_rec;

typedef struct dr_log_params {
    const char *spec;        /* "sqlite" (or NULL) | "redis://..." | "redis+unix://..." */
    const char *dir;         /* the state folder (sqlite keeps its log there) */
    int durable;             /* sqlite: fsync every append (synchronous=FULL) */
    uint32_t dedup_ttl;      /* seconds an idempotency key is remembered (86400) */
    uint32_t timeout_ms;     /* redis: connect and command timeout (2000) */
} dr_log_params;

dr_log_params dr__log_default_params(void);

typedef struct dr_log dr_log;

typedef struct dr_log_vt {
    const char *name;
    /* Does spec name this kind ("sqlite" / "redis://" / "redis+unix://")? */
    int (*accepts)(const char *spec);
    dr_status (*open)(const dr_log_params *p, dr_log **out, dr_error *err);
    void (*close)(dr_log *l);
    /* Appends recs[0..n) atomically, in order, and sets each pos. A record whose key was
     * appended before (within dedup_ttl) is not appended again: its pos is the original's and
     * dup[k] = 1 (dup may be NULL). DR_IO (nothing appended) when the log cannot be reached. */
    dr_status (*append)(dr_log *l, dr_log_rec *recs, size_t n, uint8_t *dup, dr_error *err);
    /* Up to cap records after `after`, in log order, waiting up to wait_ms for the first (0 =
     * do not wait); *n = 0 when none came. Strings stay valid until the next read. DR_IO when
     * the log cannot be reached (the caller retries with backoff). */
    dr_status (*read)(dr_log *l, dr_log_pos after, size_t cap, int wait_ms, dr_log_rec *out,
                      size_t *n, dr_error *err);
    /* The last position and the number of records in the log. Any thread: it shares the read
     * side's connection under a lock (redis: waits for one read slice at most). */
    dr_status (*tip)(dr_log *l, dr_log_pos *last, uint64_t *records, dr_error *err);
    /* Bytes the log takes (0 when unknown), any thread. */
    uint64_t (*bytes)(const dr_log *l);
    /* Makes a read blocked in another thread return soon (shutdown). */
    void (*wake)(dr_log *l);
} dr_log_vt;

#define DR_LOG_TABLE(X) X(sqlite, dr_log_sqlite_vt) X(redis, dr_log_redis_vt)
#define DR_LOG_EXTERN(name, vt) extern const dr_log_vt vt;
DR_LOG_TABLE(DR_LOG_EXTERN)
#undef DR_LOG_EXTERN

/* Opens the kind whose accepts() takes p->spec; DR_ARG naming the known forms otherwise.
 * Defined in serve_log_kinds.c (the registry lives apart from serve_log.c, which every kind
 * calls, as model_kinds.c does for the model kinds: no cycle between the files). */
dr_status dr__log_open(const dr_log_params *p, dr_log **out, dr_error *err);
/* Closes l (NULL is fine) through its kind. */
void dr__log_close(dr_log *l);

/* Every dr_log starts with its vtable, so the generic calls need no per-kind code. */
struct dr_log {
    const dr_log_vt *vt;
};
static inline const dr_log_vt *dr__log_kind(const dr_log *l) { return l->vt; }

#endif /* DR_SERVE_LOG_H */
