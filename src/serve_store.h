/*
 * serve_store.h - the server's durable state folder (internal): an SQLite event log in WAL mode
 * and the list of adapter snapshots taken from it. See serve_store.c. Owned by one thread (the
 * server's writer); only dr__store_bytes may be read from other threads.
 *
 * Records are kept in log order (seq 1, 2, ...): events (user, item, time) and item records
 * (PUT /v1/items: the item and a JSON body with its title, attributes and features).
 * The sqlite kind of event log (serve_log_sqlite.c) is built on the dr__store_log_* calls;
 * snapshots and meta are the local folder's for every kind of log.
 */
#ifndef DR_SERVE_STORE_H
#define DR_SERVE_STORE_H

#include "common.h"
#include "serve_log.h" /* DR_REC_EVENT | DR_REC_ITEM, dr_log_rec, dr_log_pos */

typedef struct dr_store_rec {
    uint64_t seq;     /* set by dr__store_append */
    int kind;         /* DR_REC_EVENT | DR_REC_ITEM */
    const char *user; /* events; NULL for items */
    const char *item;
    int64_t time;     /* events: UNIX seconds */
    const char *body; /* items: JSON object; NULL for events */
} dr_store_rec;

typedef struct dr_store dr_store;

/* Opens (creating when missing) dir/events.db. durable: synchronous=FULL, every commit is on
 * disk when dr__store_append returns; 0: synchronous=OFF (tests). */
dr_status dr__store_open(const char *dir, int durable, dr_store **out, dr_error *err);
void dr__store_close(dr_store *s);

/* Appends recs[0..n) in one transaction (one fsync) and sets their seq. All or nothing. */
dr_status dr__store_append(dr_store *s, dr_store_rec *recs, size_t n, dr_error *err);

/* Calls fn for every record with seq > after, in log order; fn's error stops the scan. */
typedef dr_status (*dr_store_scan_fn)(void *ud, const dr_store_rec *r, dr_error *err);
dr_status dr__store_scan(dr_store *s, uint64_t after, dr_store_scan_fn fn, void *ud,
                        dr_error *err);

/* Event records and the last seq (0 when empty). */
dr_status dr__store_counts(dr_store *s, uint64_t *n_events, uint64_t *last_seq, dr_error *err);

/* Small key/value settings of the folder. *found = 0 when absent. */
dr_status dr__store_meta_get(dr_store *s, const char *key, char *out, size_t cap, int *found,
                            dr_error *err);
dr_status dr__store_meta_set(dr_store *s, const char *key, const char *value, dr_error *err);

/* ---- the sqlite kind of event log (serve_log_sqlite.c); pos = (0, seq) */
/* Appends recs[0..n) in one transaction like dr__store_append, with idempotency: a record
 * whose key is remembered (an unexpired row of the idem table) is not appended, its pos is the
 * original's and dup[k] = 1 (dup may be NULL); a new key is remembered for ttl seconds.
 * Expired keys are ignored and purged now and then (DR_LOG_IDEM_PURGE_EVERY). */
dr_status dr__store_log_append(dr_store *s, dr_log_rec *recs, size_t n, uint32_t ttl,
                               uint8_t *dup, dr_error *err);
/* Up to cap records with seq > after, in log order, into out[0..*n); their strings stay valid
 * until the next call on s. */
dr_status dr__store_log_read(dr_store *s, uint64_t after, size_t cap, dr_log_rec *out,
                             size_t *n, dr_error *err);
/* The last seq (0 when empty) and the number of records, items included. */
dr_status dr__store_log_tip(dr_store *s, uint64_t *last, uint64_t *records, dr_error *err);

/* Snapshots: the adapter state in `file` (a name inside the folder) covers records <= seq. */
dr_status dr__store_snapshot_add(dr_store *s, uint64_t seq, const char *file, dr_error *err);
/* The same for any kind of log: the state covers the log up to pos ("ms-seq", the text of a
 * dr_log_pos), `records` records applied; snapshots are ordered by records. */
dr_status dr__store_snapshot_add_pos(dr_store *s, const char *pos, uint64_t records,
                                     const char *file, dr_error *err);
typedef struct dr_store_snap {
    uint64_t seq;      /* = records (the sqlite log's seq) */
    char file[128];
    dr_log_pos pos;    /* (0, seq) for a snapshot from before positions were kept */
    uint64_t records;  /* records applied up to pos */
} dr_store_snap;
/* Newest first, up to cap. */
dr_status dr__store_snapshots(dr_store *s, dr_store_snap *out, size_t cap, size_t *n,
                             dr_error *err);
/* Forgets every snapshot but the newest `keep` and deletes their files. */
dr_status dr__store_snapshot_prune(dr_store *s, size_t keep, dr_error *err);

/* ---- base swaps and compaction (docs/FORMATS.md, "Server state folder") */
/* A BASE record's body {"path","hash","covers","from"} (serve_log.h), parsed and checked:
 * DR_FORMAT naming `where` (e.g. "events.db: log record 12") when it is not that object. */
typedef struct dr_base_rec {
    char path[4096];
    char hash[72];
    dr_log_pos covers; /* the log the checkpoint was trained on reaches here ((0,0): none) */
    dr_log_pos from;   /* the adapter over it is rebuilt from here */
} dr_base_rec;
dr_status dr__base_parse(const char *body, const char *where, dr_base_rec *out, dr_error *err);
/* The newest BASE record of the log: *found = 0 when there is none, else its seq and body. */
dr_status dr__store_last_base(dr_store *s, int *found, uint64_t *seq, dr_base_rec *out,
                              dr_error *err);

/* Moves the records the newest BASE record no longer needs out of the log: those with seq <=
 * min(covers.seq, from.seq - 1) (never the last record). They are copied into dir/archive.db
 * (the same log table, seq kept, appended across compactions; drop = 1: not kept) and
 * deleted from events.db in transactions of at most DR_COMPACT_BATCH records, each of which
 * also sets meta compacted_through (seq) and compacted_records (records moved so far, all
 * compactions together); then the WAL is checkpointed and the freed pages are given back to
 * the file system (incremental vacuum; the first time a full VACUUM that turns it on). A
 * running server may keep appending: every transaction is short and waits on SQLite's busy
 * timeout. progress (may be NULL) is called with the records moved so far after each batch.
 * out->nothing = 1 (DR_OK) when there is nothing to move, out->why saying why. */
dr_status dr__store_compact(dr_store *s, int drop, dr_progress_fn progress, void *ud,
                            dr_compact_result *out, dr_error *err);
/* What earlier compactions removed: the highest seq gone (0: none) and how many records, so a
 * replay that starts at the first record left counts records from *records on. */
dr_status dr__store_compacted(dr_store *s, uint64_t *through, uint64_t *records, dr_error *err);
/* dir/archive.db for reading (dr__store_log_read, dr__store_log_tip); *out = NULL (DR_OK)
 * when the folder has none. */
dr_status dr__store_open_archive(const char *dir, dr_store **out, dr_error *err);

const char *dr__store_dir(const dr_store *s);
/* Bytes of the log on disk (database + WAL), as of the last append (any thread). */
uint64_t dr__store_bytes(const dr_store *s);

#endif /* DR_SERVE_STORE_H */
