/*
 * serve_store.c - the durable event log of the server: SQLite in WAL mode.
 *
 * DESIGN: one database file dir/events.db with four tables: log (seq INTEGER PRIMARY KEY =
 * the rowid, kind, user, item, time, body), snapshots (seq, file, pos, records), meta (key,
 * value) and idem (key, seq, expires: the idempotency keys of the sqlite kind of log).
 * Folders from before pos/records get the columns added on open (ALTER TABLE).
 * WAL mode with synchronous=FULL: a COMMIT returns after the WAL is fsynced, so a record is
 * durable when dr__store_append returns. Group commit is the caller's job: the server's writer
 * thread appends everything that queued up while the previous commit was in flight in ONE
 * transaction, so concurrent requests share one fsync. The database is only touched by that
 * thread (opened with SQLITE_OPEN_NOMUTEX); readers of the log size get an atomic copy.
 * Snapshot files are written next to the database by the caller (dr__adapter_save writes a
 * temporary file, fsyncs and renames) and registered here after they are on disk, so a row
 * always names a complete file; a crash between the rename and the row leaves an orphan file
 * that is never read.
 * Every value read back is checked (kind, id lengths, body size) before use, so a damaged
 * database gives DR_FORMAT, never a crash.
 * Rejected: an append-only file of our own (torn writes, checksums and compaction would be
 * ours to get right; SQLite's WAL is tested far beyond what we could do) and one transaction
 * per event (one fsync per event caps ingest at the disk's sync rate).
 */
#include "serve_store.h"

#include <errno.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct dr_store {
    sqlite3 *db;
    char *dir, *path, *wal;
    sqlite3_stmt *ins, *scan, *count, *last;
    sqlite3_stmt *read, *tip, *idem_get, *idem_put, *idem_purge;
    DR_VEC(char) rbuf; /* the strings of the last dr__store_log_read */
    uint32_t since_purge;
    _Atomic uint64_t bytes;
};

/* SQLite out of memory is DR_NOMEM like ours; every other failure is DR_IO. */
static dr_status sql_status(int rc) { return (rc & 0xff) == SQLITE_NOMEM ? DR_NOMEM : DR_IO; }

static dr_status sql_fail(dr_store *s, dr_error *err, const char *what) {
    return dr__fail(err, sql_status(sqlite3_errcode(s->db)), "%s: %s: %s", s->path, what,
                   sqlite3_errmsg(s->db));
}

static dr_status exec(dr_store *s, const char *sql, dr_error *err) {
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        dr_status st = dr__fail(err, sql_status(rc), "%s: %s: %s", s->path, sql,
                               msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return st;
    }
    return DR_OK;
}

static uint64_t file_size(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

static void update_bytes(dr_store *s) {
    atomic_store(&s->bytes, file_size(s->path) + file_size(s->wal));
}

void dr__store_close(dr_store *s) {
    if (!s) return;
    sqlite3_finalize(s->ins);
    sqlite3_finalize(s->scan);
    sqlite3_finalize(s->count);
    sqlite3_finalize(s->last);
    sqlite3_finalize(s->read);
    sqlite3_finalize(s->tip);
    sqlite3_finalize(s->idem_get);
    sqlite3_finalize(s->idem_put);
    sqlite3_finalize(s->idem_purge);
    if (s->db) sqlite3_close(s->db);
    dr_vec_free(&s->rbuf);
    dr__free(s->dir);
    dr__free(s->path);
    dr__free(s->wal);
    dr__free(s);
}

/* pos and records came after the first folders: add them where they are missing. */
static dr_status add_snapshot_columns(dr_store *s, dr_error *err) {
    static const char *const cols[][2] = {{"pos", "ALTER TABLE snapshots ADD COLUMN pos TEXT"},
                                          {"records", "ALTER TABLE snapshots ADD COLUMN records INTEGER"}};
    for (size_t k = 0; k < DR_ARRAY_LEN(cols); k++) {
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM pragma_table_info('snapshots') WHERE name = ?",
                               -1, &q, NULL) != SQLITE_OK)
            return sql_fail(s, err, "prepare");
        sqlite3_bind_text(q, 1, cols[k][0], -1, SQLITE_STATIC);
        int rc = sqlite3_step(q), have = rc == SQLITE_ROW && sqlite3_column_int(q, 0) > 0;
        sqlite3_finalize(q);
        if (rc != SQLITE_ROW) return sql_fail(s, err, "snapshots columns");
        dr_status st = have ? DR_OK : exec(s, cols[k][1], err);
        if (st != DR_OK) return st;
    }
    return DR_OK;
}

/* dir/file: events.db, or (archive = 1) archive.db read-only: its log table, read and tip. */
static dr_status open_db(const char *dir, const char *file, int durable, int archive,
                         dr_store **out, dr_error *err) {
    if (!dir || !out) return dr__fail(err, DR_ARG, "store: NULL argument");
    *out = NULL;
    dr_status st = dr__mkdir_p(dir, err);
    if (st != DR_OK) return st;
    dr_store *s = dr__calloc(1, sizeof *s);
    if (!s) return dr__fail(err, DR_NOMEM, "store: out of memory");
    char wal[32];
    snprintf(wal, sizeof wal, "%s-wal", file);
    s->dir = dr__strdup(dir);
    s->path = dr__path_join(dir, file);
    s->wal = dr__path_join(dir, wal);
    if (!s->dir || !s->path || !s->wal) {
        st = dr__fail(err, DR_NOMEM, "store: out of memory");
        goto fail;
    }
    if (sqlite3_open_v2(s->path, &s->db,
                        (archive ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                            SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        st = s->db ? sql_fail(s, err, "cannot open") : dr__fail(err, DR_NOMEM, "store: out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 5000);
    if (archive) {
        if (sqlite3_prepare_v2(s->db, "SELECT seq, kind, user, item, time, body FROM log WHERE seq > ?"
                               " ORDER BY seq LIMIT ?", -1, &s->read, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(s->db, "SELECT coalesce(max(seq), 0), count(*) FROM log", -1, &s->tip,
                               NULL) != SQLITE_OK) {
            st = sql_fail(s, err, "prepare");
            goto fail;
        }
        *out = s;
        return DR_OK;
    }
    /* a new file gives freed pages back on `PRAGMA incremental_vacuum` (compaction) */
    if ((st = exec(s, "PRAGMA auto_vacuum=INCREMENTAL", err)) != DR_OK) goto fail;
    if ((st = exec(s, "PRAGMA journal_mode=WAL", err)) != DR_OK) goto fail;
    if ((st = exec(s, durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=OFF", err)) != DR_OK)
        goto fail;
    if ((st = exec(s,
                   "CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL,"
                   " user TEXT, item TEXT NOT NULL, time INTEGER NOT NULL, body TEXT);"
                   "CREATE TABLE IF NOT EXISTS snapshots (seq INTEGER PRIMARY KEY, file TEXT NOT NULL);"
                   "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                   "CREATE TABLE IF NOT EXISTS idem (key TEXT PRIMARY KEY, seq INTEGER NOT NULL,"
                   " expires INTEGER NOT NULL);",
                   err)) != DR_OK)
        goto fail;
    if ((st = add_snapshot_columns(s, err)) != DR_OK) goto fail;
    if (sqlite3_prepare_v2(s->db, "INSERT INTO log (kind, user, item, time, body) VALUES (?,?,?,?,?)",
                           -1, &s->ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "SELECT seq, kind, user, item, time, body FROM log WHERE seq > ? ORDER BY seq",
                           -1, &s->scan, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "SELECT count(*) FROM log WHERE kind = 0", -1, &s->count, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "SELECT coalesce(max(seq), 0) FROM log", -1, &s->last, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "SELECT seq, kind, user, item, time, body FROM log WHERE seq > ? ORDER BY seq LIMIT ?",
                           -1, &s->read, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "SELECT coalesce(max(seq), 0), count(*) FROM log", -1, &s->tip, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "SELECT seq FROM idem WHERE key = ? AND expires > ?", -1, &s->idem_get,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO idem (key, seq, expires) VALUES (?, ?, ?)", -1,
                           &s->idem_put, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "DELETE FROM idem WHERE expires <= ?", -1, &s->idem_purge, NULL) != SQLITE_OK) {
        st = sql_fail(s, err, "prepare");
        goto fail;
    }
    update_bytes(s);
    *out = s;
    return DR_OK;
fail:
    dr__store_close(s);
    return st;
}

dr_status dr__store_open(const char *dir, int durable, dr_store **out, dr_error *err) {
    return open_db(dir, "events.db", durable, 0, out, err);
}

dr_status dr__store_open_archive(const char *dir, dr_store **out, dr_error *err) {
    if (!dir || !out) return dr__fail(err, DR_ARG, "store: NULL argument");
    *out = NULL;
    char *p = dr__path_join(dir, "archive.db");
    if (!p) return dr__fail(err, DR_NOMEM, "store: out of memory");
    bool have = dr__path_exists(p);
    dr__free(p);
    return have ? open_db(dir, "archive.db", 0, 1, out, err) : DR_OK;
}

const char *dr__store_dir(const dr_store *s) { return s->dir; }
uint64_t dr__store_bytes(const dr_store *s) { return atomic_load(&((dr_store *)s)->bytes); }

/* One row into log; *seq its seq. */
static int insert_row(dr_store *s, int kind, const char *user, const char *item, int64_t time,
                      const char *body, uint64_t *seq) {
    sqlite3_reset(s->ins);
    sqlite3_clear_bindings(s->ins);
    sqlite3_bind_int(s->ins, 1, kind);
    if (user) sqlite3_bind_text(s->ins, 2, user, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->ins, 3, item ? item : "", -1, SQLITE_STATIC); /* NOT NULL column */
    sqlite3_bind_int64(s->ins, 4, time);
    if (body) sqlite3_bind_text(s->ins, 5, body, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s->ins);
    sqlite3_reset(s->ins);
    if (rc != SQLITE_DONE) return -1;
    *seq = (uint64_t)sqlite3_last_insert_rowid(s->db);
    return 0;
}

/* The idempotency check of one keyed record: *seq = the original's when the key is remembered
 * (returns 1), 0 when new, -1 on an SQLite error. */
static int idem_find(dr_store *s, const char *key, int64_t now, uint64_t *seq) {
    sqlite3_reset(s->idem_get);
    sqlite3_bind_text(s->idem_get, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->idem_get, 2, now);
    int rc = sqlite3_step(s->idem_get), found = rc == SQLITE_ROW;
    if (found) *seq = (uint64_t)sqlite3_column_int64(s->idem_get, 0);
    sqlite3_reset(s->idem_get);
    return found ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static int idem_remember(dr_store *s, const char *key, uint64_t seq, int64_t expires) {
    sqlite3_reset(s->idem_put);
    sqlite3_bind_text(s->idem_put, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->idem_put, 2, (sqlite3_int64)seq);
    sqlite3_bind_int64(s->idem_put, 3, expires);
    int rc = sqlite3_step(s->idem_put);
    sqlite3_reset(s->idem_put);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int idem_purge(dr_store *s, int64_t now) {
    sqlite3_reset(s->idem_purge);
    sqlite3_bind_int64(s->idem_purge, 1, now);
    int rc = sqlite3_step(s->idem_purge);
    sqlite3_reset(s->idem_purge);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* One transaction for the records of either API: srecs (dr__store_append) or lrecs
 * (dr__store_log_append, with keys). */
static dr_status append_tx(dr_store *s, dr_store_rec *srecs, dr_log_rec *lrecs, size_t n,
                           uint32_t ttl, uint8_t *dup, dr_error *err) {
    if (!n) return DR_OK;
    dr_status st = exec(s, "BEGIN IMMEDIATE", err);
    if (st != DR_OK) return st;
    int64_t now = (int64_t)time(NULL);
    const char *what = "append";
    int rc = 0;
    for (size_t k = 0; k < n && rc == 0; k++) {
        if (srecs) {
            dr_store_rec *r = &srecs[k];
            rc = insert_row(s, r->kind, r->user, r->item, r->time, r->body, &r->seq);
            continue;
        }
        dr_log_rec *r = &lrecs[k];
        uint64_t seq = 0;
        int found = r->key ? idem_find(s, r->key, now, &seq) : 0;
        if (dup) dup[k] = found == 1;
        if (found < 0) { what = "idempotency key"; rc = -1; break; }
        if (!found) rc = insert_row(s, r->kind, r->user, r->item, r->time, r->body, &seq);
        if (!found && rc == 0 && r->key && idem_remember(s, r->key, seq, now + (int64_t)ttl)) {
            what = "idempotency key";
            rc = -1;
        }
        r->pos.ms = 0;
        r->pos.seq = seq;
    }
    if (rc == 0 && lrecs && ++s->since_purge >= DR_LOG_IDEM_PURGE_EVERY) {
        s->since_purge = 0;
        if (idem_purge(s, now)) { what = "purge idempotency keys"; rc = -1; }
    }
    if (rc != 0) {
        st = sql_fail(s, err, what);
        (void)exec(s, "ROLLBACK", NULL);
        return st;
    }
    if ((st = exec(s, "COMMIT", err)) != DR_OK) {
        (void)exec(s, "ROLLBACK", NULL);
        return st;
    }
    update_bytes(s);
    return DR_OK;
}

dr_status dr__store_append(dr_store *s, dr_store_rec *recs, size_t n, dr_error *err) {
    return append_tx(s, recs, NULL, n, 0, NULL, err);
}

dr_status dr__store_log_append(dr_store *s, dr_log_rec *recs, size_t n, uint32_t ttl,
                               uint8_t *dup, dr_error *err) {
    return append_tx(s, NULL, recs, n, ttl, dup, err);
}

/* A text column of at most max bytes, valid UTF-8; NULL (and DR_FORMAT) otherwise. */
static const char *col_text(sqlite3_stmt *q, int c, size_t max, int may_be_null, int *bad) {
    if (sqlite3_column_type(q, c) == SQLITE_NULL) {
        if (!may_be_null) *bad = 1;
        return NULL;
    }
    const char *t = (const char *)sqlite3_column_text(q, c);
    int n = sqlite3_column_bytes(q, c);
    if (!t || n < 0 || (size_t)n > max || !dr__utf8_valid(t, (size_t)n)) *bad = 1;
    return t;
}

/* The row under q (seq, kind, user, item, time, body) checked into r; its strings are
 * SQLite's until the next step. DR_FORMAT when damaged. */
static dr_status decode_row(dr_store *s, sqlite3_stmt *q, dr_log_rec *r, dr_error *err) {
    int bad = 0;
    memset(r, 0, sizeof *r);
    r->pos.seq = (uint64_t)sqlite3_column_int64(q, 0);
    r->kind = sqlite3_column_int(q, 1);
    r->time = sqlite3_column_int64(q, 4);
    int f = dr__rec_fields(r->kind);
    if (!f) bad = 1;
    if (f & DR_RF_USER) r->user = col_text(q, 2, DR_STORE_ID_MAX, 0, &bad);
    if (f & DR_RF_ITEM) r->item = col_text(q, 3, DR_STORE_ID_MAX, 0, &bad);
    if (f & DR_RF_BODY) r->body = col_text(q, 5, DR_STORE_BODY_MAX, 0, &bad);
    if (bad || (r->user && !*r->user) || (r->item && !*r->item))
        return dr__fail(err, DR_FORMAT, "%s: log record %llu is damaged", s->path,
                        (unsigned long long)r->pos.seq);
    return DR_OK;
}

dr_status dr__store_scan(dr_store *s, uint64_t after, dr_store_scan_fn fn, void *ud,
                        dr_error *err) {
    sqlite3_stmt *q = s->scan;
    sqlite3_reset(q);
    sqlite3_bind_int64(q, 1, (sqlite3_int64)after);
    dr_status st = DR_OK;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        dr_log_rec l;
        if ((st = decode_row(s, q, &l, err)) != DR_OK) break;
        dr_store_rec r = {l.pos.seq, l.kind, l.user, l.item, l.time, l.body};
        if ((st = fn(ud, &r, err)) != DR_OK) break;
    }
    if (st == DR_OK && rc != SQLITE_DONE) st = sql_fail(s, err, "scan");
    sqlite3_reset(q);
    return st;
}

/* Copies t (NUL included) to the end of s->rbuf; *tag = its offset + 1, 0 for NULL. */
static int keep_text(dr_store *s, const char *t, const char **tag) {
    if (!t) {
        *tag = NULL;
        return 0;
    }
    size_t len = strlen(t) + 1, off = s->rbuf.n;
    if (dr_vec_reserve(&s->rbuf, off + len)) return -1;
    memcpy(s->rbuf.a + off, t, len);
    s->rbuf.n += len;
    *tag = (const char *)(uintptr_t)(off + 1);
    return 0;
}

static const char *untag(const dr_store *s, const char *tag) {
    return tag ? s->rbuf.a + ((uintptr_t)tag - 1) : NULL;
}

dr_status dr__store_log_read(dr_store *s, uint64_t after, size_t cap, dr_log_rec *out,
                             size_t *n, dr_error *err) {
    sqlite3_stmt *q = s->read;
    *n = 0;
    s->rbuf.n = 0;
    sqlite3_reset(q);
    sqlite3_bind_int64(q, 1, (sqlite3_int64)after);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)DR_MIN(cap, (size_t)INT64_MAX));
    dr_status st = DR_OK;
    int rc = SQLITE_DONE;
    while (*n < cap && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        dr_log_rec *r = &out[*n];
        if ((st = decode_row(s, q, r, err)) != DR_OK) break;
        if (keep_text(s, r->user, &r->user) || keep_text(s, r->item, &r->item) ||
            keep_text(s, r->body, &r->body)) {
            st = dr__fail(err, DR_NOMEM, "%s: read: out of memory", s->path);
            break;
        }
        (*n)++;
    }
    if (st == DR_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) st = sql_fail(s, err, "read");
    sqlite3_reset(q);
    if (st != DR_OK) {
        *n = 0;
        return st;
    }
    for (size_t k = 0; k < *n; k++) { /* the buffer may have moved while it grew */
        out[k].user = untag(s, out[k].user);
        out[k].item = untag(s, out[k].item);
        out[k].body = untag(s, out[k].body);
    }
    return DR_OK;
}

dr_status dr__store_log_tip(dr_store *s, uint64_t *last, uint64_t *records, dr_error *err) {
    sqlite3_reset(s->tip);
    if (sqlite3_step(s->tip) != SQLITE_ROW) {
        dr_status st = sql_fail(s, err, "tip");
        sqlite3_reset(s->tip);
        return st;
    }
    *last = (uint64_t)sqlite3_column_int64(s->tip, 0);
    *records = (uint64_t)sqlite3_column_int64(s->tip, 1);
    sqlite3_reset(s->tip);
    return DR_OK;
}

static dr_status one_int(dr_store *s, sqlite3_stmt *q, uint64_t *out, dr_error *err) {
    sqlite3_reset(q);
    if (sqlite3_step(q) != SQLITE_ROW) {
        dr_status st = sql_fail(s, err, "count");
        sqlite3_reset(q);
        return st;
    }
    *out = (uint64_t)sqlite3_column_int64(q, 0);
    sqlite3_reset(q);
    return DR_OK;
}

dr_status dr__store_counts(dr_store *s, uint64_t *n_events, uint64_t *last_seq, dr_error *err) {
    dr_status st = one_int(s, s->count, n_events, err);
    return st != DR_OK ? st : one_int(s, s->last, last_seq, err);
}

/* Prepares sql, binds text args, steps once; row (may be NULL) receives the statement when a
 * row came back (the caller finalizes it). */
static dr_status run1(dr_store *s, const char *sql, const char *a, const char *b, int64_t ia,
                      sqlite3_stmt **row, dr_error *err) {
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK) return sql_fail(s, err, "prepare");
    int k = 1;
    if (ia >= 0) sqlite3_bind_int64(q, k++, ia);
    if (a) sqlite3_bind_text(q, k++, a, -1, SQLITE_STATIC);
    if (b) sqlite3_bind_text(q, k++, b, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        dr_status st = sql_fail(s, err, sql);
        sqlite3_finalize(q);
        return st;
    }
    if (row && rc == SQLITE_ROW) {
        *row = q;
        return DR_OK;
    }
    if (row) *row = NULL;
    sqlite3_finalize(q);
    return DR_OK;
}

dr_status dr__store_meta_get(dr_store *s, const char *key, char *out, size_t cap, int *found,
                            dr_error *err) {
    sqlite3_stmt *q = NULL;
    dr_status st = run1(s, "SELECT value FROM meta WHERE key = ?", key, NULL, -1, &q, err);
    *found = 0;
    if (st != DR_OK || !q) return st;
    const char *v = (const char *)sqlite3_column_text(q, 0);
    snprintf(out, cap, "%s", v ? v : "");
    *found = 1;
    sqlite3_finalize(q);
    return DR_OK;
}

dr_status dr__store_meta_set(dr_store *s, const char *key, const char *value, dr_error *err) {
    return run1(s, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", key, value, -1, NULL,
                err);
}

dr_status dr__store_snapshot_add_pos(dr_store *s, const char *pos, uint64_t records,
                                     const char *file, dr_error *err) {
    dr_log_pos p;
    if (!pos || dr__log_pos_parse(pos, &p) != 0)
        return dr__fail(err, DR_ARG, "%s: snapshot position '%s' is not ms-seq", s->path,
                        pos ? pos : "(null)");
    /* seq orders the snapshots; it is the record count, which the sqlite log's seq equals */
    return run1(s, "INSERT OR REPLACE INTO snapshots (seq, file, pos, records) VALUES (?1, ?, ?, ?1)",
                file, pos, (int64_t)records, NULL, err);
}

dr_status dr__store_snapshot_add(dr_store *s, uint64_t seq, const char *file, dr_error *err) {
    char pos[DR_LOG_POS_MAX];
    dr__log_pos_format((dr_log_pos){0, seq}, pos);
    return dr__store_snapshot_add_pos(s, pos, seq, file, err);
}

dr_status dr__store_snapshots(dr_store *s, dr_store_snap *out, size_t cap, size_t *n,
                             dr_error *err) {
    sqlite3_stmt *q = NULL;
    *n = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT seq, file, pos, coalesce(records, seq) FROM snapshots"
                           " ORDER BY seq DESC", -1, &q, NULL) != SQLITE_OK)
        return sql_fail(s, err, "prepare");
    int rc;
    while (*n < cap && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        dr_store_snap *o = &out[*n];
        const char *f = (const char *)sqlite3_column_text(q, 1);
        const char *pos = (const char *)sqlite3_column_text(q, 2);
        if (!f || strlen(f) >= sizeof o->file || strchr(f, '/')) continue; /* not ours */
        o->seq = (uint64_t)sqlite3_column_int64(q, 0);
        o->pos = (dr_log_pos){0, o->seq}; /* a row from before positions were kept */
        if (pos && dr__log_pos_parse(pos, &o->pos) != 0) continue;
        o->records = (uint64_t)sqlite3_column_int64(q, 3);
        snprintf(o->file, sizeof o->file, "%s", f);
        (*n)++;
    }
    sqlite3_finalize(q);
    return DR_OK;
}

dr_status dr__store_snapshot_prune(dr_store *s, size_t keep, dr_error *err) {
    dr_store_snap all[64];
    size_t n = 0;
    dr_status st = dr__store_snapshots(s, all, 64, &n, err);
    for (size_t k = keep; st == DR_OK && k < n; k++) {
        st = run1(s, "DELETE FROM snapshots WHERE seq = ?", NULL, NULL, (int64_t)all[k].seq, NULL, err);
        char *p = dr__path_join(s->dir, all[k].file);
        if (p && unlink(p) != 0 && errno != ENOENT)
            dr__log(DR_LOG_WARN, "store: cannot remove %s: %s", p, strerror(errno));
        dr__free(p);
    }
    return st;
}

/* ---------------------------------------------------------------- base swaps, compaction */

dr_status dr__base_parse(const char *body, const char *where, dr_base_rec *out, dr_error *err) {
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *o = body ? json_loads(body, 0, &je) : NULL;
    dr_status st = DR_OK;
    if (!o || !json_is_object(o)) {
        st = dr__fail(err, DR_FORMAT, "%s: base record: the body is not a JSON object", where);
        goto done;
    }
    const char *path = json_string_value(json_object_get(o, "path"));
    const char *hash = json_string_value(json_object_get(o, "hash"));
    const char *covers = json_string_value(json_object_get(o, "covers"));
    const char *from = json_string_value(json_object_get(o, "from"));
    if (!path || !*path || strlen(path) >= sizeof out->path)
        st = dr__fail(err, DR_FORMAT, "%s: base record: \"path\" missing, empty or too long", where);
    else if (hash && strlen(hash) >= sizeof out->hash)
        st = dr__fail(err, DR_FORMAT, "%s: base record: \"hash\" too long", where);
    else if (!covers || dr__log_pos_parse(covers, &out->covers) != 0)
        st = dr__fail(err, DR_FORMAT, "%s: base record: \"covers\" missing or not a log position "
                      "(ms-seq)", where);
    else if (!from || dr__log_pos_parse(from, &out->from) != 0)
        st = dr__fail(err, DR_FORMAT, "%s: base record: \"from\" missing or not a log position "
                      "(ms-seq)", where);
    if (st == DR_OK) {
        snprintf(out->path, sizeof out->path, "%s", path);
        snprintf(out->hash, sizeof out->hash, "%s", hash ? hash : "");
    }
done:
    json_decref(o);
    return st;
}

dr_status dr__store_last_base(dr_store *s, int *found, uint64_t *seq, dr_base_rec *out,
                              dr_error *err) {
    sqlite3_stmt *q = NULL;
    *found = 0;
    /* the rowid order is walked backwards: the newest base is usually near the end */
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT seq, kind, user, item, time, body FROM log WHERE kind = %d"
             " ORDER BY seq DESC LIMIT 1", DR_REC_BASE);
    dr_status st = run1(s, sql, NULL, NULL, -1, &q, err);
    if (st != DR_OK || !q) return st;
    dr_log_rec r;
    if ((st = decode_row(s, q, &r, err)) == DR_OK) {
        char where[4200];
        snprintf(where, sizeof where, "%s: log record %llu", s->path, (unsigned long long)r.pos.seq);
        st = dr__base_parse(r.body, where, out, err);
    }
    if (st == DR_OK) {
        *found = 1;
        *seq = r.pos.seq;
    }
    sqlite3_finalize(q);
    return st;
}

static dr_status meta_u64(dr_store *s, const char *key, uint64_t *v, dr_error *err) {
    char buf[32];
    int found = 0;
    *v = 0;
    dr_status st = dr__store_meta_get(s, key, buf, sizeof buf, &found, err);
    if (st != DR_OK || !found) return st;
    if (!*buf || buf[strspn(buf, "0123456789")] != '\0')
        return dr__fail(err, DR_FORMAT, "%s: meta %s is '%s', not a count", s->path, key, buf);
    *v = strtoull(buf, NULL, 10);
    return DR_OK;
}

dr_status dr__store_compacted(dr_store *s, uint64_t *through, uint64_t *records, dr_error *err) {
    dr_status st = meta_u64(s, "compacted_through", through, err);
    return st != DR_OK ? st : meta_u64(s, "compacted_records", records, err);
}

/* One statement with up to two integer parameters, stepped to the end; *changes its count. */
static dr_status exec_range(dr_store *s, const char *sql, int64_t a, int64_t b, uint64_t *changes,
                            dr_error *err) {
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK) return sql_fail(s, err, sql);
    if (sqlite3_bind_parameter_count(q) >= 1) sqlite3_bind_int64(q, 1, a);
    if (sqlite3_bind_parameter_count(q) >= 2) sqlite3_bind_int64(q, 2, b);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {}
    dr_status st = rc == SQLITE_DONE ? DR_OK : sql_fail(s, err, sql);
    if (changes) *changes = (uint64_t)sqlite3_changes(s->db);
    sqlite3_finalize(q);
    return st;
}

/* Moves (lo, hi]: a copy into archive.log (its own transaction, INSERT OR IGNORE: a copy left
 * by an interrupted run is harmless), then the delete and the meta counts in one transaction. */
static dr_status move_batch(dr_store *s, int drop, uint64_t lo, uint64_t hi, uint64_t *records,
                            uint64_t *moved, dr_error *err) {
    dr_status st;
    if (!drop) {
        if ((st = exec(s, "BEGIN IMMEDIATE", err)) != DR_OK) return st;
        if ((st = exec_range(s, "INSERT OR IGNORE INTO archive.log (seq, kind, user, item, time, body)"
                             " SELECT seq, kind, user, item, time, body FROM main.log"
                             " WHERE seq > ?1 AND seq <= ?2", (int64_t)lo, (int64_t)hi, NULL, err)) != DR_OK ||
            (st = exec(s, "COMMIT", err)) != DR_OK) {
            (void)exec(s, "ROLLBACK", NULL);
            return st;
        }
    }
    uint64_t n = 0;
    char v[2][32];
    if ((st = exec(s, "BEGIN IMMEDIATE", err)) != DR_OK) return st;
    if ((st = exec_range(s, "DELETE FROM main.log WHERE seq > ?1 AND seq <= ?2", (int64_t)lo,
                         (int64_t)hi, &n, err)) == DR_OK) {
        snprintf(v[0], sizeof v[0], "%llu", (unsigned long long)hi);
        snprintf(v[1], sizeof v[1], "%llu", (unsigned long long)(*records + n));
        if ((st = dr__store_meta_set(s, "compacted_through", v[0], err)) == DR_OK &&
            (st = dr__store_meta_set(s, "compacted_records", v[1], err)) == DR_OK)
            st = exec(s, "COMMIT", err);
    }
    if (st != DR_OK) {
        (void)exec(s, "ROLLBACK", NULL);
        return st;
    }
    *records += n;
    *moved += n;
    return DR_OK;
}

/* Checkpoints the WAL into the database and truncates it (readers of a running server may
 * keep it from finishing: then the file shrinks at a later checkpoint). */
static dr_status wal_truncate(dr_store *s, dr_error *err) {
    return exec(s, "PRAGMA main.wal_checkpoint(TRUNCATE)", err);
}

/* Gives the free pages back: incremental vacuum when the file has it, else one VACUUM that
 * also turns it on (auto_vacuum=INCREMENTAL) so the next compaction is incremental. */
static dr_status give_back_pages(dr_store *s, dr_compact_result *o, dr_error *err) {
    uint64_t mode = 0;
    sqlite3_stmt *q = NULL;
    dr_status st = run1(s, "PRAGMA main.auto_vacuum", NULL, NULL, -1, &q, err);
    if (st != DR_OK) return st;
    if (q) {
        mode = (uint64_t)sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
    }
    if ((st = wal_truncate(s, err)) != DR_OK) return st;
    if (mode == 2) {
        snprintf(o->vacuum, sizeof o->vacuum, "incremental");
        st = exec_range(s, "PRAGMA main.incremental_vacuum", 0, 0, NULL, err);
    } else {
        snprintf(o->vacuum, sizeof o->vacuum, "full");
        if ((st = exec(s, "PRAGMA main.auto_vacuum=INCREMENTAL", err)) == DR_OK)
            st = exec(s, "VACUUM main", err);
    }
    return st != DR_OK ? st : wal_truncate(s, err);
}

dr_status dr__store_compact(dr_store *s, int drop, dr_progress_fn progress, void *ud,
                            dr_compact_result *o, dr_error *err) {
    memset(o, 0, sizeof *o);
    snprintf(o->vacuum, sizeof o->vacuum, "none");
    int found = 0;
    uint64_t base_seq = 0, prev = 0, first = 0;
    dr_base_rec b;
    dr_status st = dr__store_last_base(s, &found, &base_seq, &b, err);
    if (st == DR_OK) st = dr__store_compacted(s, &prev, &o->records, err);
    if (st != DR_OK) return st;
    o->through = prev;
    o->bytes_before = o->bytes_after = file_size(s->path) + file_size(s->wal);
    if (!found) {
        o->nothing = 1;
        snprintf(o->why, sizeof o->why, "the log has no base record: every record is still needed");
        return DR_OK;
    }
    if (b.covers.ms || b.from.ms)
        return dr__fail(err, DR_FORMAT, "%s: log record %llu: base positions %llu-%llu / %llu-%llu "
                        "are not sqlite positions (0-SEQ)", s->path, (unsigned long long)base_seq,
                        (unsigned long long)b.covers.ms, (unsigned long long)b.covers.seq,
                        (unsigned long long)b.from.ms, (unsigned long long)b.from.seq);
    uint64_t cut = DR_MIN(b.covers.seq, b.from.seq ? b.from.seq - 1 : 0);
    cut = DR_MIN(cut, base_seq - 1); /* the base record, and so the last seq, always stays */
    if (cut <= prev) {
        o->nothing = 1;
        snprintf(o->why, sizeof o->why, "the newest base record (%llu) needs every record after %llu,"
                 " which is compacted already", (unsigned long long)base_seq, (unsigned long long)prev);
        return DR_OK;
    }
    sqlite3_stmt *q = NULL;
    if ((st = run1(s, "SELECT coalesce(min(seq), 0) FROM log", NULL, NULL, -1, &q, err)) != DR_OK)
        return st;
    if (q) {
        first = (uint64_t)sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
    }
    double t0 = dr__now_seconds();
    if (!drop) {
        char *ap = dr__path_join(s->dir, "archive.db");
        if (!ap) return dr__fail(err, DR_NOMEM, "store: out of memory");
        st = run1(s, "ATTACH DATABASE ? AS archive", ap, NULL, -1, NULL, err);
        dr__free(ap);
        if (st != DR_OK) return st;
        if ((st = exec(s, "PRAGMA archive.journal_mode=WAL; PRAGMA archive.synchronous=FULL;"
                       "CREATE TABLE IF NOT EXISTS archive.log (seq INTEGER PRIMARY KEY,"
                       " kind INTEGER NOT NULL, user TEXT, item TEXT NOT NULL, time INTEGER NOT NULL,"
                       " body TEXT)", err)) != DR_OK)
            goto detach;
    }
    for (uint64_t lo = DR_MAX(prev, first ? first - 1 : 0); lo < cut && st == DR_OK;) {
        uint64_t hi = lo + DR_MIN((uint64_t)DR_COMPACT_BATCH, cut - lo);
        st = move_batch(s, drop, lo, hi, &o->records, &o->moved, err);
        lo = hi;
        if (progress && st == DR_OK) progress(ud, "compact", (size_t)o->moved, 0);
    }
    if (st == DR_OK) o->through = cut;
    if (st == DR_OK && !drop) st = exec(s, "PRAGMA archive.wal_checkpoint(TRUNCATE)", err);
detach:
    if (!drop) {
        dr_error e2 = {0};
        dr_status d = exec(s, "DETACH DATABASE archive", &e2);
        if (st == DR_OK && d != DR_OK) st = dr__fail(err, d, "%s", e2.msg);
    }
    o->seconds_move = dr__now_seconds() - t0;
    if (st != DR_OK) return st;
    t0 = dr__now_seconds();
    st = give_back_pages(s, o, err);
    o->seconds_vacuum = dr__now_seconds() - t0;
    update_bytes(s);
    o->bytes_after = file_size(s->path) + file_size(s->wal);
    return st;
}
