/*
 * adapter_window.c - the online adapter's sliding windows and statistics (see adapter_window.h).
 *
 * DESIGN: the global window is a ring of `capacity` slots addressed by a global sequence
 * number (slot = seq % capacity); the window holds seqs [pushed - count, pushed). Each slot
 * links to the previous and next in-window event of the same user (seqs, DR_WIN_NONE at the
 * ends), so a user's in-window events form a doubly linked list through the ring.
 * Co-click pairs: when event e of user u enters, it is paired with u's up-to-R previous
 * in-window events (walk prev links): z_j is added to i's co-sum and z_i to j's. A pair is
 * removed when its older event leaves: the leaving event walks its up-to-R next links (those
 * are exactly the later events that paired with it, because an event leaves before any later
 * event of its user). Counts and the recent-half count move by O(1) per push (the event that
 * crosses the half-way mark is found by its seq). Everything is O(R * d) per push, no
 * allocation; the distinct changed items are collected with a per-item stamp.
 * Co-sums are doubles so that millions of add/subtract pairs do not drift from the recomputed
 * value (the slow twin recomputes from the ring contents alone).
 * Alternatives rejected: recomputing co-click means over the window on demand (O(W) per
 * item per query), and a per-user array of in-window events (needs compaction on eviction;
 * the linked list through the ring needs none).
 */
#include "adapter_window.h"

#include <math.h>
#include <stdio.h>

struct dr_window {
    dr_window_params p;
    uint32_t n_users, n_items, d, W, R, half;
    const float *z;         /* (n_items, d) borrowed */
    /* ring (W) */
    uint32_t *slot_user;
    uint32_t *slot_item;
    int64_t *slot_time;
    uint64_t *slot_prev;    /* seq of the user's previous in-window event or NONE */
    uint64_t *slot_next;
    /* users */
    uint64_t *user_last;    /* (n_users) seq of the user's newest in-window event or NONE */
    uint32_t *user_ring;    /* (n_users, R) items, position = k % R */
    uint64_t *user_n;       /* (n_users) events so far */
    int64_t *user_t;        /* (n_users) time of the last event */
    /* items */
    uint32_t *item_cnt;     /* (n_items) events in the window */
    uint32_t *item_rec;     /* (n_items) of those, in the recent half */
    uint32_t *item_con;     /* (n_items) co-click pairs */
    double *cosum;          /* (n_items, d) */
    uint64_t *stamp;        /* (n_items) push number that last listed the item as changed */
    uint32_t *changed;      /* (n_items) */
    size_t n_changed;
    /* scalars, saved as one section */
    uint64_t sc[3];         /* pushed, count, last time (as u64) */
};

#define PUSHED sc[0]
#define COUNT sc[1]

dr_window_params dr__window_default_params(void) {
    dr_window_params p = {4096, 8, 0, 1.0};
    return p;
}

void dr__window_free(dr_window *w) {
    if (!w) return;
    dr__free(w->slot_user);
    dr__free(w->slot_item);
    dr__free(w->slot_time);
    dr__free(w->slot_prev);
    dr__free(w->slot_next);
    dr__free(w->user_last);
    dr__free(w->user_ring);
    dr__free(w->user_n);
    dr__free(w->user_t);
    dr__free(w->item_cnt);
    dr__free(w->item_rec);
    dr__free(w->item_con);
    dr__free(w->cosum);
    dr__free(w->stamp);
    dr__free(w->changed);
    dr__free(w);
}

static void window_reset(dr_window *w) {
    memset(w->slot_user, 0, w->W * sizeof *w->slot_user);
    memset(w->slot_item, 0, w->W * sizeof *w->slot_item);
    memset(w->slot_time, 0, w->W * sizeof *w->slot_time);
    for (uint32_t k = 0; k < w->W; k++) w->slot_prev[k] = w->slot_next[k] = DR_WIN_NONE;
    for (uint32_t u = 0; u < w->n_users; u++) w->user_last[u] = DR_WIN_NONE;
    memset(w->user_ring, 0, (size_t)w->n_users * w->R * sizeof *w->user_ring);
    memset(w->user_n, 0, w->n_users * sizeof *w->user_n);
    memset(w->user_t, 0, w->n_users * sizeof *w->user_t);
    memset(w->item_cnt, 0, w->n_items * sizeof *w->item_cnt);
    memset(w->item_rec, 0, w->n_items * sizeof *w->item_rec);
    memset(w->item_con, 0, w->n_items * sizeof *w->item_con);
    memset(w->cosum, 0, (size_t)w->n_items * w->d * sizeof *w->cosum);
    memset(w->stamp, 0, w->n_items * sizeof *w->stamp);
    memset(w->sc, 0, sizeof w->sc);
    w->n_changed = 0;
}

dr_status dr__window_create(const dr_window_params *p, uint32_t n_users, uint32_t n_items,
                           uint32_t d, const float *z, dr_window **out, dr_error *err) {
    if (!p || !out || !z || !n_items || !d) return dr__fail(err, DR_ARG, "window: bad argument");
    *out = NULL;
    if (p->capacity < 2 || p->user_ring < 1 || p->user_ring > DR_WIN_MAX_USER_RING || p->max_age < 0)
        return dr__fail(err, DR_ARG, "window: capacity must be >= 2 and user_ring in 1..1024");
    dr_window *w = dr__calloc(1, sizeof *w);
    if (!w) return dr__fail(err, DR_NOMEM, "window: out of memory");
    w->p = *p;
    if (!(w->p.seconds_per_unit > 0)) w->p.seconds_per_unit = 1.0;
    w->n_users = n_users;
    w->n_items = n_items;
    w->d = d;
    w->W = p->capacity;
    w->R = p->user_ring;
    w->half = p->capacity / 2;
    w->z = z;
    size_t W = w->W;
    w->slot_user = dr__calloc(W, sizeof *w->slot_user);
    w->slot_item = dr__calloc(W, sizeof *w->slot_item);
    w->slot_time = dr__calloc(W, sizeof *w->slot_time);
    w->slot_prev = dr__calloc(W, sizeof *w->slot_prev);
    w->slot_next = dr__calloc(W, sizeof *w->slot_next);
    w->user_last = dr__calloc(n_users ? n_users : 1, sizeof *w->user_last);
    w->user_ring = dr__calloc((size_t)(n_users ? n_users : 1) * w->R, sizeof *w->user_ring);
    w->user_n = dr__calloc(n_users ? n_users : 1, sizeof *w->user_n);
    w->user_t = dr__calloc(n_users ? n_users : 1, sizeof *w->user_t);
    w->item_cnt = dr__calloc(n_items, sizeof *w->item_cnt);
    w->item_rec = dr__calloc(n_items, sizeof *w->item_rec);
    w->item_con = dr__calloc(n_items, sizeof *w->item_con);
    w->cosum = dr__calloc((size_t)n_items * d, sizeof *w->cosum);
    w->stamp = dr__calloc(n_items, sizeof *w->stamp);
    w->changed = dr__calloc(n_items, sizeof *w->changed);
    if (!w->slot_user || !w->slot_item || !w->slot_time || !w->slot_prev || !w->slot_next ||
        !w->user_last || !w->user_ring || !w->user_n || !w->user_t || !w->item_cnt ||
        !w->item_rec || !w->item_con || !w->cosum || !w->stamp || !w->changed)
        goto fail;
    window_reset(w);
    *out = w;
    return DR_OK;
fail:
    dr__window_free(w);
    return dr__fail(err, DR_NOMEM, "window: out of memory (%u users, %u items, W %u)", n_users,
                   n_items, p->capacity);
}

static inline void mark(dr_window *w, uint32_t i) {
    uint64_t s = w->PUSHED + 1;
    if (w->stamp[i] != s) {
        w->stamp[i] = s;
        w->changed[w->n_changed++] = i;
    }
}

static inline void pair(dr_window *w, uint32_t a, uint32_t b, double sign) {
    const float *za = w->z + (size_t)a * w->d, *zb = w->z + (size_t)b * w->d;
    double *sa = w->cosum + (size_t)a * w->d, *sb = w->cosum + (size_t)b * w->d;
    for (uint32_t k = 0; k < w->d; k++) {
        sa[k] += sign * (double)zb[k];
        sb[k] += sign * (double)za[k];
    }
    if (sign > 0) {
        w->item_con[a]++;
        w->item_con[b]++;
    } else {
        w->item_con[a]--;
        w->item_con[b]--;
    }
    mark(w, a);
    mark(w, b);
}

static inline int is_recent(const dr_window *w, uint64_t seq) {
    return seq + w->half >= w->PUSHED; /* seq >= pushed - half */
}

static void evict_oldest(dr_window *w) {
    uint64_t s0 = w->PUSHED - w->COUNT;
    size_t k0 = s0 % w->W;
    uint32_t i0 = w->slot_item[k0], u0 = w->slot_user[k0];
    uint64_t s = w->slot_next[k0];
    for (uint32_t k = 0; k < w->R && s != DR_WIN_NONE; k++) {
        pair(w, i0, w->slot_item[s % w->W], -1.0);
        s = w->slot_next[s % w->W];
    }
    w->item_cnt[i0]--;
    if (is_recent(w, s0)) w->item_rec[i0]--;
    if (w->slot_next[k0] != DR_WIN_NONE) w->slot_prev[w->slot_next[k0] % w->W] = DR_WIN_NONE;
    if (w->user_last[u0] == s0) w->user_last[u0] = DR_WIN_NONE;
    w->slot_prev[k0] = w->slot_next[k0] = DR_WIN_NONE;
    mark(w, i0);
    w->COUNT--;
}

dr_status dr__window_push(dr_window *w, uint32_t u, uint32_t i, int64_t t,
                         const uint32_t **changed, size_t *n_changed, dr_error *err) {
    if (u >= w->n_users || i >= w->n_items)
        return dr__fail(err, DR_RANGE, "window: event (%u, %u) outside %u users, %u items", u, i,
                       w->n_users, w->n_items);
    if (w->PUSHED && t < (int64_t)w->sc[2])
        return dr__fail(err, DR_ARG, "window: time %lld before the last event's %lld",
                       (long long)t, (long long)(int64_t)w->sc[2]);
    w->n_changed = 0;
    while (w->COUNT == w->W ||
           (w->p.max_age > 0 && w->COUNT > 0 &&
            t - w->slot_time[(w->PUSHED - w->COUNT) % w->W] > w->p.max_age))
        evict_oldest(w);
    uint64_t n = w->PUSHED;
    /* the event at seq n - half leaves the recent half once n is pushed */
    if (n >= w->half) {
        uint64_t sx = n - w->half;
        if (sx >= n - w->COUNT) {
            uint32_t ix = w->slot_item[sx % w->W];
            w->item_rec[ix]--;
            mark(w, ix);
        }
    }
    uint64_t p = w->user_last[u];
    for (uint32_t k = 0; k < w->R && p != DR_WIN_NONE; k++) {
        pair(w, i, w->slot_item[p % w->W], +1.0);
        p = w->slot_prev[p % w->W];
    }
    size_t k = n % w->W;
    w->slot_user[k] = u;
    w->slot_item[k] = i;
    w->slot_time[k] = t;
    w->slot_prev[k] = w->user_last[u];
    w->slot_next[k] = DR_WIN_NONE;
    if (w->user_last[u] != DR_WIN_NONE) w->slot_next[w->user_last[u] % w->W] = n;
    w->user_last[u] = n;
    w->item_cnt[i]++;
    w->item_rec[i]++;
    mark(w, i);
    w->user_ring[(size_t)u * w->R + w->user_n[u] % w->R] = i;
    w->user_n[u]++;
    w->user_t[u] = t;
    w->COUNT++;
    w->PUSHED++;
    w->sc[2] = (uint64_t)t;
    *changed = w->changed;
    *n_changed = w->n_changed;
    return DR_OK;
}

/* partner j of a pair with the rebased item: co-sum += delta, listed once (stamp = MAX) */
static void rebase_partner(dr_window *w, uint32_t j, const double *delta) {
    double *sj = w->cosum + (size_t)j * w->d;
    for (uint32_t k = 0; k < w->d; k++) sj[k] += delta[k];
    if (w->stamp[j] != UINT64_MAX) {
        w->stamp[j] = UINT64_MAX;
        w->changed[w->n_changed++] = j;
    }
}

void dr__window_rebase_item(dr_window *w, uint32_t i, const float *znew, const uint32_t **changed,
                           size_t *n_changed) {
    double delta[1024];
    const float *zold = w->z + (size_t)i * w->d;
    for (uint32_t k = 0; k < w->d; k++) delta[k] = (double)znew[k] - (double)zold[k];
    w->n_changed = 0;
    /* the live pairs of an in-window event: its up-to-R previous and next events of the user */
    for (uint64_t s = w->PUSHED - w->COUNT; s < w->PUSHED; s++) {
        size_t k0 = s % w->W;
        if (w->slot_item[k0] != i) continue;
        uint64_t p = w->slot_prev[k0], q = w->slot_next[k0];
        for (uint32_t k = 0; k < w->R && p != DR_WIN_NONE; k++) {
            rebase_partner(w, w->slot_item[p % w->W], delta);
            p = w->slot_prev[p % w->W];
        }
        for (uint32_t k = 0; k < w->R && q != DR_WIN_NONE; k++) {
            rebase_partner(w, w->slot_item[q % w->W], delta);
            q = w->slot_next[q % w->W];
        }
    }
    for (size_t k = 0; k < w->n_changed; k++) w->stamp[w->changed[k]] = 0; /* unlisted for the next push */
    *changed = w->changed;
    *n_changed = w->n_changed;
}

void dr__window_item_stats(const dr_window *w, uint32_t i, float *s) {
    uint32_t c = w->item_cnt[i], r = w->item_rec[i], con = w->item_con[i];
    s[0] = (float)log1p((double)c);
    s[1] = (float)(((double)r - (double)(c - r)) / ((double)c + 1.0));
    s[2] = (float)log1p((double)con);
    double inv = 1.0 / (double)(con ? con : 1);
    const double *cs = w->cosum + (size_t)i * w->d;
    for (uint32_t k = 0; k < w->d; k++) s[3 + k] = con ? (float)(cs[k] * inv) : 0.0f;
}

uint32_t dr__window_user_ring(const dr_window *w, uint32_t u, uint32_t *items) {
    uint64_t n = w->user_n[u];
    uint32_t m = n < w->R ? (uint32_t)n : w->R;
    for (uint32_t k = 0; k < m; k++)
        items[k] = w->user_ring[(size_t)u * w->R + (n - m + k) % w->R];
    return m;
}

void dr__window_user_stats(const dr_window *w, uint32_t u, int64_t now, float *r) {
    uint64_t n = w->user_n[u];
    double dt = n ? (double)(now - w->user_t[u]) * w->p.seconds_per_unit / 3600.0 : 0.0;
    r[0] = (float)log1p(dt > 0 ? dt : 0.0);
    r[1] = (float)log1p((double)n);
    float *m = r + 2;
    memset(m, 0, w->d * sizeof *m);
    uint32_t cnt = n < w->R ? (uint32_t)n : w->R;
    for (uint32_t k = 0; k < cnt; k++) {
        const float *z = w->z + (size_t)w->user_ring[(size_t)u * w->R + k] * w->d;
        for (uint32_t j = 0; j < w->d; j++) m[j] += z[j];
    }
    for (uint32_t j = 0; cnt && j < w->d; j++) m[j] /= (float)cnt;
}

uint64_t dr__window_user_info(const dr_window *w, uint32_t u, int64_t *last_t) {
    *last_t = w->user_t[u];
    return w->user_n[u];
}

int64_t dr__window_last_time(const dr_window *w) { return (int64_t)w->sc[2]; }
uint32_t dr__window_item_count(const dr_window *w, uint32_t i) { return w->item_cnt[i]; }
size_t dr__window_size(const dr_window *w) { return (size_t)w->COUNT; }
uint64_t dr__window_pushed(const dr_window *w) { return w->PUSHED; }

uint32_t dr__window_sample_item(const dr_window *w, double r) {
    if (!w->COUNT) return UINT32_MAX;
    uint64_t k = (uint64_t)(r * (double)w->COUNT);
    if (k >= w->COUNT) k = w->COUNT - 1;
    return w->slot_item[(w->PUSHED - w->COUNT + k) % w->W];
}

dr_status dr__window_item_stats_slow(const dr_window *w, float *out, dr_error *err) {
    size_t ds = DR_WIN_ITEM_STATS(w->d), d = w->d;
    double *sum = dr__calloc((size_t)w->n_items * d, sizeof *sum);
    uint32_t *cnt = dr__calloc(w->n_items, sizeof *cnt), *rec = dr__calloc(w->n_items, sizeof *rec),
             *con = dr__calloc(w->n_items, sizeof *con);
    if (!sum || !cnt || !rec || !con) {
        dr__free(sum);
        dr__free(cnt);
        dr__free(rec);
        dr__free(con);
        return dr__fail(err, DR_NOMEM, "window: out of memory");
    }
    uint64_t start = w->PUSHED - w->COUNT;
    for (uint64_t s = start; s < w->PUSHED; s++) {
        uint32_t u = w->slot_user[s % w->W], i = w->slot_item[s % w->W];
        cnt[i]++;
        if (s + w->half >= w->PUSHED) rec[i]++;
        uint32_t found = 0; /* the user's up-to-R previous in-window events, by scanning back */
        for (uint64_t q = s; q > start && found < w->R; q--) {
            if (w->slot_user[(q - 1) % w->W] != u) continue;
            uint32_t j = w->slot_item[(q - 1) % w->W];
            for (size_t k = 0; k < d; k++) {
                sum[(size_t)i * d + k] += w->z[(size_t)j * d + k];
                sum[(size_t)j * d + k] += w->z[(size_t)i * d + k];
            }
            con[i]++;
            con[j]++;
            found++;
        }
    }
    for (uint32_t i = 0; i < w->n_items; i++) {
        float *s = out + (size_t)i * ds;
        s[0] = (float)log1p((double)cnt[i]);
        s[1] = (float)(((double)rec[i] - (double)(cnt[i] - rec[i])) / ((double)cnt[i] + 1.0));
        s[2] = (float)log1p((double)con[i]);
        for (size_t k = 0; k < d; k++)
            s[3 + k] = con[i] ? (float)(sum[(size_t)i * d + k] / (double)con[i]) : 0.0f;
    }
    dr__free(sum);
    dr__free(cnt);
    dr__free(rec);
    dr__free(con);
    return DR_OK;
}

/* ---------------------------------------------------------------- state */

typedef struct win_sec {
    const char *name;
    dr_dtype dt;
    size_t esize;
    uint64_t rows, cols; /* cols 0 = rank 1 */
    void *p;
} win_sec;

static size_t window_sections(dr_window *w, win_sec *s) {
    size_t n = 0;
    uint64_t nu = w->n_users ? w->n_users : 1;
    s[n++] = (win_sec){"slot_user", DR_DT_U32, 4, w->W, 0, w->slot_user};
    s[n++] = (win_sec){"slot_item", DR_DT_U32, 4, w->W, 0, w->slot_item};
    s[n++] = (win_sec){"slot_time", DR_DT_I64, 8, w->W, 0, w->slot_time};
    s[n++] = (win_sec){"slot_prev", DR_DT_I64, 8, w->W, 0, w->slot_prev};
    s[n++] = (win_sec){"slot_next", DR_DT_I64, 8, w->W, 0, w->slot_next};
    s[n++] = (win_sec){"user_last", DR_DT_I64, 8, nu, 0, w->user_last};
    s[n++] = (win_sec){"user_ring", DR_DT_U32, 4, nu, w->R, w->user_ring};
    s[n++] = (win_sec){"user_n", DR_DT_I64, 8, nu, 0, w->user_n};
    s[n++] = (win_sec){"user_t", DR_DT_I64, 8, nu, 0, w->user_t};
    s[n++] = (win_sec){"item_cnt", DR_DT_U32, 4, w->n_items, 0, w->item_cnt};
    s[n++] = (win_sec){"item_rec", DR_DT_U32, 4, w->n_items, 0, w->item_rec};
    s[n++] = (win_sec){"item_con", DR_DT_U32, 4, w->n_items, 0, w->item_con};
    s[n++] = (win_sec){"cosum", DR_DT_F64, 8, w->n_items, w->d, w->cosum};
    s[n++] = (win_sec){"scalars", DR_DT_I64, 8, 3, 0, w->sc};
    return n;
}

dr_status dr__window_save(const dr_window *w, dr_ckpt_writer *wr, const char *prefix,
                         dr_error *err) {
    win_sec s[16];
    size_t n = window_sections((dr_window *)w, s);
    for (size_t k = 0; k < n; k++) {
        char name[DR_CKPT_NAME_MAX];
        snprintf(name, sizeof name, "%s%s", prefix, s[k].name);
        uint64_t shape[2] = {s[k].rows, s[k].cols};
        dr_status st = dr__ckpt_add(wr, name, s[k].dt, s[k].cols ? 2 : 1, shape, s[k].p, err);
        if (st != DR_OK) return st;
    }
    return DR_OK;
}

dr_status dr__window_load(dr_window *w, const dr_ckpt *c, const char *prefix, dr_error *err) {
    win_sec s[16];
    size_t n = window_sections(w, s);
    for (size_t k = 0; k < n; k++) {
        char name[DR_CKPT_NAME_MAX];
        snprintf(name, sizeof name, "%s%s", prefix, s[k].name);
        uint64_t shape[2] = {s[k].rows, s[k].cols};
        const void *data;
        dr_status st = dr__ckpt_find(c, name, s[k].dt, s[k].cols ? 2 : 1, shape, &data, err);
        if (st != DR_OK) return st;
        memcpy(s[k].p, data, (size_t)s[k].rows * (s[k].cols ? s[k].cols : 1) * s[k].esize);
    }
    /* bounds: every stored id must be in range before the state is used */
    for (uint32_t k = 0; k < w->W; k++)
        if (w->slot_user[k] >= w->n_users || w->slot_item[k] >= w->n_items) {
            if (w->slot_user[k] == 0 && w->slot_item[k] == 0) continue;
            window_reset(w);
            return dr__fail(err, DR_FORMAT, "window state: slot %u holds an id out of range", k);
        }
    if (w->COUNT > w->W || w->COUNT > w->PUSHED) {
        window_reset(w);
        return dr__fail(err, DR_FORMAT, "window state: bad counters");
    }
    for (size_t k = 0; k < (size_t)w->n_users * w->R; k++)
        if (w->user_ring[k] >= w->n_items) {
            window_reset(w);
            return dr__fail(err, DR_FORMAT, "window state: user ring item out of range");
        }
    return DR_OK;
}
