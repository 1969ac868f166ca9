/*
 * serve_store.c - the durable event log of the server: SQLite in WAL mode.
 *
 * DESIGN: one database file dir/events.db with three tables: log (seq INTEGER PRIMARY KEY =
 * the rowid, kind, user, item, time, body), snapshots (seq, file) and meta (key, value).
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
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

struct dr_store {
    sqlite3 *db;
    char *dir, *path, *wal;
    sqlite3_stmt *ins, *scan, *count, *last;
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
    if (s->db) sqlite3_close(s->db);
    dr__free(s->dir);
    dr__free(s->path);
    dr__free(s->wal);
    dr__free(s);
}

dr_status dr__store_open(const char *dir, int durable, dr_store **out, dr_error *err) {
    if (!dir || !out) return dr__fail(err, DR_ARG, "store: NULL argument");
    *out = NULL;
    dr_status st = dr__mkdir_p(dir, err);
    if (st != DR_OK) return st;
    dr_store *s = dr__calloc(1, sizeof *s);
    if (!s) return dr__fail(err, DR_NOMEM, "store: out of memory");
    s->dir = dr__strdup(dir);
    s->path = dr__path_join(dir, "events.db");
    s->wal = dr__path_join(dir, "events.db-wal");
    if (!s->dir || !s->path || !s->wal) {
        st = dr__fail(err, DR_NOMEM, "store: out of memory");
        goto fail;
    }
    if (sqlite3_open_v2(s->path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        st = s->db ? sql_fail(s, err, "cannot open") : dr__fail(err, DR_NOMEM, "store: out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 5000);
    if ((st = exec(s, "PRAGMA journal_mode=WAL", err)) != DR_OK) goto fail;
    if ((st = exec(s, durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=OFF", err)) != DR_OK)
        goto fail;
    if ((st = exec(s,
                   "CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL,"
                   " user TEXT, item TEXT NOT NULL, time INTEGER NOT NULL, body TEXT);"
                   "CREATE TABLE IF NOT EXISTS snapshots (seq INTEGER PRIMARY KEY, file TEXT NOT NULL);"
                   "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
                   err)) != DR_OK)
        goto fail;
    if (sqlite3_prepare_v2(s->db, "INSERT INTO log (kind, user, item, time, body) VALUES (?,?,?,?,?)",
                           -1, &s->ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "SELECT seq, kind, user, item, time, body FROM log WHERE seq > ? ORDER BY seq",
                           -1, &s->scan, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "SELECT count(*) FROM log WHERE kind = 0", -1, &s->count, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "SELECT coalesce(max(seq), 0) FROM log", -1, &s->last, NULL) != SQLITE_OK) {
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

const char *dr__store_dir(const dr_store *s) { return s->dir; }
uint64_t dr__store_bytes(const dr_store *s) { return atomic_load(&((dr_store *)s)->bytes); }

dr_status dr__store_append(dr_store *s, dr_store_rec *recs, size_t n, dr_error *err) {
    if (!n) return DR_OK;
    dr_status st = exec(s, "BEGIN IMMEDIATE", err);
    if (st != DR_OK) return st;
    for (size_t k = 0; k < n; k++) {
        dr_store_rec *r = &recs[k];
        sqlite3_reset(s->ins);
        sqlite3_clear_bindings(s->ins);
        sqlite3_bind_int(s->ins, 1, r->kind);
        if (r->user) sqlite3_bind_text(s->ins, 2, r->user, -1, SQLITE_STATIC);
        sqlite3_bind_text(s->ins, 3, r->item, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s->ins, 4, r->time);
        if (r->body) sqlite3_bind_text(s->ins, 5, r->body, -1, SQLITE_STATIC);
        if (sqlite3_step(s->ins) != SQLITE_DONE) {
            st = sql_fail(s, err, "append");
            sqlite3_reset(s->ins);
            (void)exec(s, "ROLLBACK", NULL);
            return st;
        }
        r->seq = (uint64_t)sqlite3_last_insert_rowid(s->db);
    }
    sqlite3_reset(s->ins);
    if ((st = exec(s, "COMMIT", err)) != DR_OK) {
        (void)exec(s, "ROLLBACK", NULL);
        return st;
    }
    update_bytes(s);
    return DR_OK;
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

dr_status dr__store_scan(dr_store *s, uint64_t after, dr_store_scan_fn fn, void *ud,
                        dr_error *err) {
    sqlite3_stmt *q = s->scan;
    sqlite3_reset(q);
    sqlite3_bind_int64(q, 1, (sqlite3_int64)after);
    dr_status st = DR_OK;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        dr_store_rec r = {0};
        int bad = 0;
        r.seq = (uint64_t)sqlite3_column_int64(q, 0);
        r.kind = sqlite3_column_int(q, 1);
        r.time = sqlite3_column_int64(q, 4);
        if (r.kind == DR_REC_EVENT) {
            r.user = col_text(q, 2, DR_STORE_ID_MAX, 0, &bad);
            r.item = col_text(q, 3, DR_STORE_ID_MAX, 0, &bad);
        } else if (r.kind == DR_REC_ITEM) {
            r.item = col_text(q, 3, DR_STORE_ID_MAX, 0, &bad);
            r.body = col_text(q, 5, DR_STORE_BODY_MAX, 0, &bad);
        } else {
            bad = 1;
        }
        if (bad || (r.user && !*r.user) || (r.item && !*r.item)) {
            st = dr__fail(err, DR_FORMAT, "%s: log record %llu is damaged", s->path,
                         (unsigned long long)r.seq);
            break;
        }
        if ((st = fn(ud, &r, err)) != DR_OK) break;
    }
    if (st == DR_OK && rc != SQLITE_DONE) st = sql_fail(s, err, "scan");
    sqlite3_reset(q);
    return st;
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

dr_status dr__store_snapshot_add(dr_store *s, uint64_t seq, const char *file, dr_error *err) {
    return run1(s, "INSERT OR REPLACE INTO snapshots (seq, file) VALUES (?, ?)", file, NULL,
                (int64_t)seq, NULL, err);
}

dr_status dr__store_snapshots(dr_store *s, dr_store_snap *out, size_t cap, size_t *n,
                             dr_error *err) {
    sqlite3_stmt *q = NULL;
    *n = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT seq, file FROM snapshots ORDER BY seq DESC", -1, &q,
                           NULL) != SQLITE_OK)
        return sql_fail(s, err, "prepare");
    int rc;
    while (*n < cap && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *f = (const char *)sqlite3_column_text(q, 1);
        if (!f || strlen(f) >= sizeof out[0].file || strchr(f, '/')) continue; /* not ours */
        out[*n].seq = (uint64_t)sqlite3_column_int64(q, 0);
        snprintf(out[*n].file, sizeof out[*n].file, "%s", f);
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
