/*
 * serve_log_sqlite.c - the sqlite kind of event log (serve_log.h): the state folder's own
 * events.db (serve_store.c), pos = (0, seq).
 *
 * DESIGN: two connections to the same file, one per side: the append side (the writer
 * thread) and the read side (the apply thread, and tip). WAL mode lets the one writer commit
 * while the reader reads. A read that finds nothing and may wait sleeps on a condition
 * variable that the append side signals after each commit (no polling); wake signals it too
 * and stays pending until a read consumes it, so a wake that comes before the read blocks is
 * not lost. Only appends made through this dr_log wake a reader: another process writing the
 * same folder is seen at the next read, not sooner (one server owns a folder).
 * Idempotency keys live in the same database (serve_store.c's idem table), checked and written
 * inside the append transaction, so a record and its key are committed together.
 */
#include "serve_log.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "serve_store.h"

typedef struct sq_log {
    dr_log base;
    dr_store *w, *r;        /* append side, read side */
    uint32_t ttl;
    pthread_mutex_t mu;     /* guards last and woken */
    pthread_mutex_t rmu;    /* guards the read side's connection (read and tip) */
    pthread_cond_t cv;
    int have_mu, have_rmu, have_cv;
    uint64_t last;          /* the last seq appended through this log (or found at open) */
    int woken;              /* a wake no read has consumed yet */
} sq_log;

static int sq_accepts(const char *spec) { return !spec || strcmp(spec, "sqlite") == 0; }

static void sq_close(dr_log *l) {
    sq_log *q = (sq_log *)l;
    if (!q) return;
    dr__store_close(q->w);
    dr__store_close(q->r);
    if (q->have_cv) pthread_cond_destroy(&q->cv);
    if (q->have_mu) pthread_mutex_destroy(&q->mu);
    if (q->have_rmu) pthread_mutex_destroy(&q->rmu);
    dr__free(q);
}

static dr_status sq_open(const dr_log_params *p, dr_log **out, dr_error *err) {
    *out = NULL;
    if (!p->dir) return dr__fail(err, DR_ARG, "--log sqlite: no state folder");
    sq_log *q = dr__calloc(1, sizeof *q);
    if (!q) return dr__fail(err, DR_NOMEM, "log: out of memory");
    q->base.vt = &dr_log_sqlite_vt;
    q->ttl = p->dedup_ttl;
    pthread_condattr_t ca;
    dr_status st = DR_OK;
    if (pthread_condattr_init(&ca) != 0) {
        st = dr__fail(err, DR_NOMEM, "log: cannot create a condition variable");
        goto fail;
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    q->have_cv = pthread_cond_init(&q->cv, &ca) == 0;
    pthread_condattr_destroy(&ca);
    q->have_mu = pthread_mutex_init(&q->mu, NULL) == 0;
    q->have_rmu = pthread_mutex_init(&q->rmu, NULL) == 0;
    if (!q->have_cv || !q->have_mu || !q->have_rmu) {
        st = dr__fail(err, DR_NOMEM, "log: cannot create a lock");
        goto fail;
    }
    if ((st = dr__store_open(p->dir, p->durable, &q->w, err)) != DR_OK) goto fail;
    if ((st = dr__store_open(p->dir, p->durable, &q->r, err)) != DR_OK) goto fail;
    uint64_t records = 0;
    if ((st = dr__store_log_tip(q->r, &q->last, &records, err)) != DR_OK) goto fail;
    *out = &q->base;
    return DR_OK;
fail:
    sq_close(&q->base);
    return st;
}

static dr_status sq_append(dr_log *l, dr_log_rec *recs, size_t n, uint8_t *dup, dr_error *err) {
    sq_log *q = (sq_log *)l;
    dr_status st = dr__store_log_append(q->w, recs, n, q->ttl, dup, err);
    if (st != DR_OK || !n) return st;
    uint64_t top = 0;
    for (size_t k = 0; k < n; k++) top = DR_MAX(top, recs[k].pos.seq);
    pthread_mutex_lock(&q->mu);
    if (top > q->last) {
        q->last = top;
        pthread_cond_broadcast(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    return DR_OK;
}

static dr_status sq_read_now(sq_log *q, dr_log_pos after, size_t cap, dr_log_rec *out,
                             size_t *n, dr_error *err) {
    pthread_mutex_lock(&q->rmu);
    dr_status st = dr__store_log_read(q->r, after.seq, cap, out, n, err);
    pthread_mutex_unlock(&q->rmu);
    return st;
}

static dr_status sq_read(dr_log *l, dr_log_pos after, size_t cap, int wait_ms, dr_log_rec *out,
                         size_t *n, dr_error *err) {
    sq_log *q = (sq_log *)l;
    *n = 0;
    dr_status st = sq_read_now(q, after, cap, out, n, err);
    if (st != DR_OK || *n || wait_ms <= 0 || !cap) return st;
    struct timespec dl;
    dr__deadline(&dl, CLOCK_MONOTONIC, wait_ms / 1000.0);
    pthread_mutex_lock(&q->mu);
    while (q->last <= after.seq && !q->woken)
        if (pthread_cond_timedwait(&q->cv, &q->mu, &dl) == ETIMEDOUT) break;
    int more = q->last > after.seq;
    q->woken = 0;
    pthread_mutex_unlock(&q->mu);
    return more ? sq_read_now(q, after, cap, out, n, err) : DR_OK;
}

static dr_status sq_tip(dr_log *l, dr_log_pos *last, uint64_t *records, dr_error *err) {
    sq_log *q = (sq_log *)l;
    uint64_t seq = 0;
    pthread_mutex_lock(&q->rmu);
    dr_status st = dr__store_log_tip(q->r, &seq, records, err);
    pthread_mutex_unlock(&q->rmu);
    if (st == DR_OK) *last = (dr_log_pos){0, seq};
    return st;
}

static uint64_t sq_bytes(const dr_log *l) { return dr__store_bytes(((const sq_log *)l)->w); }

static void sq_wake(dr_log *l) {
    sq_log *q = (sq_log *)l;
    pthread_mutex_lock(&q->mu);
    q->woken = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

const dr_log_vt dr_log_sqlite_vt = {
    .name = "sqlite",
    .accepts = sq_accepts,
    .open = sq_open,
    .close = sq_close,
    .append = sq_append,
    .read = sq_read,
    .tip = sq_tip,
    .bytes = sq_bytes,
    .wake = sq_wake,
};
