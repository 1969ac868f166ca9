/*
 * serve_stats.c - the server's live statistics: per-second series of the last hour and the
 * live-quality windows (docs/HTTP.md, GET /v1/stats and /v1/stats/series; the dashboard).
 *
 * DESIGN: the request path only adds to relaxed atomic counters: a request count and a latency
 * histogram (217 log-spaced buckets, 8 per octave of microseconds from 1 us to 2^27 us, so a
 * quantile is within 9% of the exact one) in one of DR_STATS_SHARDS cache-line-padded blocks
 * chosen by a per-thread index, so the server's threads rarely write the same line. Once a
 * second a thread (or the caller, params.thread = 0) folds the blocks with atomic exchanges into
 * the row of that second: requests, p50, p99, and the differences of the cumulative totals it
 * reads through a callback (events, adapter updates, log size); the rows are a ring of the last
 * DR_STATS_SECONDS seconds under a mutex that only the fold and the readers of the series take.
 * The overview's p50/p99 come from the sum of the last DR_STATS_LAT_MINUTE per-second
 * histograms, kept as a running sum (add the new second, subtract the one leaving).
 * Live quality: the serving core asks dr__stats_sampled for each incoming event (a hash of
 * user, item and time against the rate: deterministic, so replicas and replays sample alike)
 * and reports the sampled ones' top-10 outcomes under the base alone and under base + adapter;
 * they enter a sliding window of the last quality_window samples (a byte each, running sums)
 * and the per-second counters that the fold turns into the hour's series.
 * Rejected: a mutex per request (every thread would queue on it once a second at least, and on
 * every request for the histogram); a reservoir of raw latencies (memory and a sort per second
 * for a figure the histogram gives within 9%); sampling by a random draw (replicas would
 * disagree on the figure for the same log).
 */
#include "serve_stats.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#define SUB 8u                      /* buckets per octave */
#define OCTAVES 27u                 /* 1 us .. 2^27 us (134 s) */
#define NB (1u + OCTAVES * SUB)     /* bucket 0: under 1 us */

typedef struct shard {
    _Atomic uint64_t requests;
    _Atomic uint32_t hist[NB];
    char pad[64 - ((8 + 4 * NB) % 64)]; /* a whole number of cache lines */
} shard;

typedef struct row {
    int64_t t;                       /* UNIX seconds */
    uint32_t events, requests, updates, q_n, q_base, q_adapter;
    float p50_ms, p99_ms;            /* 0 when no request */
    uint64_t log_bytes;
} row;

struct dr_stats {
    dr_stats_params p;
    double t0;
    shard *sh;                       /* (DR_STATS_SHARDS) */
    /* live quality: written by one thread (the apply thread), read by any */
    uint8_t *qring;                  /* (quality_window) bit 0: base hit, bit 1: adapter hit */
    uint32_t qpos, qfill;            /* the quality thread's */
    _Atomic uint64_t qw_n, qw_base, qw_adapter, q_total;
    _Atomic uint32_t qs_n, qs_base, qs_adapter; /* this second's, exchanged by the fold */
    uint64_t rate_cut;               /* sampled when the hash's top 53 bits < rate_cut */
    /* guarded by mu: the ring of rows and the minute of histograms */
    pthread_mutex_t mu;
    row *rows;                       /* (DR_STATS_SECONDS) */
    uint32_t head, n_rows;           /* next row to write; rows kept */
    uint32_t (*lat)[NB];             /* (DR_STATS_LAT_MINUTE, NB) per-second histograms */
    uint64_t lat_sum[NB];            /* their sum */
    uint32_t lat_head;
    uint64_t requests_total;
    int64_t last_t;
    int have_last;
    dr_stats_totals prev;
    int have_prev;
    uint32_t fold[NB];               /* scratch of the fold */
    /* the folding thread */
    pthread_mutex_t tmu;
    pthread_cond_t tcv;
    int stop;                        /* guarded by tmu */
    pthread_t th;
    int th_started;
};

dr_stats_params dr__stats_default_params(void) {
    dr_stats_params p;
    memset(&p, 0, sizeof p);
    p.quality_rate = DR_STATS_QUALITY_RATE;
    p.quality_window = DR_STATS_QUALITY_WINDOW;
    p.thread = 1;
    return p;
}

static int64_t wall_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

static void *tick_main(void *arg) {
    dr_stats *s = arg;
    pthread_mutex_lock(&s->tmu);
    while (!s->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1; /* wake at the next whole second */
        ts.tv_nsec = 0;
        while (!s->stop && pthread_cond_timedwait(&s->tcv, &s->tmu, &ts) == 0) {
        }
        if (s->stop) break;
        pthread_mutex_unlock(&s->tmu);
        dr__stats_tick(s, wall_seconds());
        pthread_mutex_lock(&s->tmu);
    }
    pthread_mutex_unlock(&s->tmu);
    return NULL;
}

dr_status dr__stats_create(const dr_stats_params *p, dr_stats **out, dr_error *err) {
    if (!p || !out) return dr__fail(err, DR_ARG, "stats: NULL argument");
    *out = NULL;
    if (!(p->quality_rate >= 0 && p->quality_rate <= 1))
        return dr__fail(err, DR_ARG, "stats: the quality sampling rate must be in 0..1");
    if (p->quality_window < 1 || p->quality_window > DR_STATS_QUALITY_MAX)
        return dr__fail(err, DR_ARG, "stats: the quality window must be 1..%u events", DR_STATS_QUALITY_MAX);
    dr_stats *s = dr__calloc(1, sizeof *s);
    if (!s) return dr__fail(err, DR_NOMEM, "stats: out of memory");
    s->p = *p;
    s->t0 = dr__now_seconds();
    s->rate_cut = (uint64_t)(p->quality_rate * 9007199254740992.0); /* 2^53 */
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->tmu, NULL);
    pthread_cond_init(&s->tcv, NULL);
    s->sh = dr__calloc(DR_STATS_SHARDS, sizeof *s->sh);
    s->qring = dr__calloc(p->quality_window, 1);
    s->rows = dr__calloc(DR_STATS_SECONDS, sizeof *s->rows);
    s->lat = dr__calloc(DR_STATS_LAT_MINUTE, sizeof *s->lat);
    if (!s->sh || !s->qring || !s->rows || !s->lat) {
        dr__stats_free(s);
        return dr__fail(err, DR_NOMEM, "stats: out of memory");
    }
    if (p->thread) {
        if (pthread_create(&s->th, NULL, tick_main, s) != 0) {
            dr__stats_free(s);
            return dr__fail(err, DR_INTERNAL, "stats: cannot start the thread");
        }
        s->th_started = 1;
    }
    *out = s;
    return DR_OK;
}

void dr__stats_free(dr_stats *s) {
    if (!s) return;
    if (s->th_started) {
        pthread_mutex_lock(&s->tmu);
        s->stop = 1;
        pthread_cond_broadcast(&s->tcv);
        pthread_mutex_unlock(&s->tmu);
        pthread_join(s->th, NULL);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->tmu);
    pthread_cond_destroy(&s->tcv);
    dr__free(s->sh);
    dr__free(s->qring);
    dr__free(s->rows);
    dr__free(s->lat);
    dr__free(s);
}

/* ---------------------------------------------------------------- the request path */

static uint32_t bucket(double us) {
    if (!(us >= 1.0)) return 0;
    int e;
    double m = frexp(us, &e); /* us = m 2^e, m in [0.5, 1) */
    uint32_t oct = (uint32_t)(e - 1), sub = (uint32_t)((2.0 * m - 1.0) * SUB);
    if (oct >= OCTAVES) return NB - 1;
    return 1 + oct * SUB + (sub < SUB ? sub : SUB - 1);
}

/* The bucket's middle in milliseconds. */
static double bucket_ms(uint32_t b) {
    if (!b) return 0.0005;
    uint32_t oct = (b - 1) / SUB, sub = (b - 1) % SUB;
    return ldexp(1.0 + (sub + 0.5) / SUB, (int)oct) * 1e-3;
}

static _Thread_local int my_shard = -1;
static _Atomic unsigned next_shard;

void dr__stats_request(dr_stats *s, double seconds) {
    if (!s) return;
    if (my_shard < 0) my_shard = (int)(atomic_fetch_add_explicit(&next_shard, 1, memory_order_relaxed) % DR_STATS_SHARDS);
    shard *h = &s->sh[my_shard];
    atomic_fetch_add_explicit(&h->requests, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->hist[bucket(seconds * 1e6)], 1, memory_order_relaxed);
}

/* ---------------------------------------------------------------- live quality */

static uint64_t mix(uint64_t h) { /* splitmix64's finaliser */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

static uint64_t fnv_str(uint64_t h, const char *p) {
    for (; p && *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    return (h ^ 0xff) * 0x100000001b3ULL; /* the terminator: ("ab","c") != ("a","bc") */
}

int dr__stats_sampled(const dr_stats *s, const char *user, const char *item, int64_t time) {
    if (!s || !s->rate_cut) return 0;
    uint64_t h = fnv_str(fnv_str(0xcbf29ce484222325ULL, user), item);
    h = mix(h ^ mix((uint64_t)time));
    return (h >> 11) < s->rate_cut;
}

void dr__stats_quality(dr_stats *s, int hit_base, int hit_adapter) {
    if (!s) return;
    uint8_t v = (uint8_t)((hit_base ? 1 : 0) | (hit_adapter ? 2 : 0));
    if (s->qfill == s->p.quality_window) { /* the oldest leaves the window */
        uint8_t o = s->qring[s->qpos];
        atomic_fetch_sub_explicit(&s->qw_n, 1, memory_order_relaxed);
        if (o & 1) atomic_fetch_sub_explicit(&s->qw_base, 1, memory_order_relaxed);
        if (o & 2) atomic_fetch_sub_explicit(&s->qw_adapter, 1, memory_order_relaxed);
    } else {
        s->qfill++;
    }
    s->qring[s->qpos] = v;
    s->qpos = (s->qpos + 1) % s->p.quality_window;
    atomic_fetch_add_explicit(&s->qw_n, 1, memory_order_relaxed);
    if (v & 1) atomic_fetch_add_explicit(&s->qw_base, 1, memory_order_relaxed);
    if (v & 2) atomic_fetch_add_explicit(&s->qw_adapter, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->q_total, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->qs_n, 1, memory_order_relaxed);
    if (v & 1) atomic_fetch_add_explicit(&s->qs_base, 1, memory_order_relaxed);
    if (v & 2) atomic_fetch_add_explicit(&s->qs_adapter, 1, memory_order_relaxed);
}

/* ---------------------------------------------------------------- the fold */

/* The q-quantile (ms) of histogram h with n entries; 0 when n = 0. */
static double quantile_ms(const uint32_t *h32, const uint64_t *h64, uint64_t n, double q) {
    if (!n) return 0;
    uint64_t want = (uint64_t)ceil(q * (double)n), cum = 0;
    if (want < 1) want = 1;
    for (uint32_t b = 0; b < NB; b++) {
        cum += h32 ? h32[b] : h64[b];
        if (cum >= want) return bucket_ms(b);
    }
    return bucket_ms(NB - 1);
}

static row *push_row(dr_stats *s, int64_t t) {
    row *r = &s->rows[s->head];
    memset(r, 0, sizeof *r);
    r->t = t;
    s->head = (s->head + 1) % DR_STATS_SECONDS;
    if (s->n_rows < DR_STATS_SECONDS) s->n_rows++;
    /* the minute of histograms moves on by one second too */
    uint32_t *old = s->lat[s->lat_head];
    for (uint32_t b = 0; b < NB; b++) s->lat_sum[b] -= old[b];
    memset(old, 0, sizeof s->lat[0]);
    s->lat_head = (s->lat_head + 1) % DR_STATS_LAT_MINUTE;
    return r;
}

void dr__stats_tick(dr_stats *s, int64_t now) {
    if (!s) return;
    dr_stats_totals tot = {0, 0, 0};
    if (s->p.totals) s->p.totals(s->p.totals_ud, &tot);
    pthread_mutex_lock(&s->mu);
    if (s->have_last && now <= s->last_t) now = s->last_t + 1;
    if (s->have_last) { /* seconds nobody folded: empty rows */
        int64_t gap = now - s->last_t - 1;
        if (gap > (int64_t)DR_STATS_SECONDS) gap = DR_STATS_SECONDS;
        for (int64_t t = now - gap; t < now; t++) {
            row *e = push_row(s, t);
            e->log_bytes = s->prev.log_bytes;
        }
    }
    row *r = push_row(s, now);
    uint64_t req = 0, nh = 0;
    memset(s->fold, 0, sizeof s->fold);
    for (uint32_t k = 0; k < DR_STATS_SHARDS; k++) {
        req += atomic_exchange_explicit(&s->sh[k].requests, 0, memory_order_relaxed);
        for (uint32_t b = 0; b < NB; b++)
            s->fold[b] += atomic_exchange_explicit(&s->sh[k].hist[b], 0, memory_order_relaxed);
    }
    /* this second's histogram goes in the slot push_row cleared */
    uint32_t *h = s->lat[(s->lat_head + DR_STATS_LAT_MINUTE - 1) % DR_STATS_LAT_MINUTE];
    for (uint32_t b = 0; b < NB; b++) {
        h[b] = s->fold[b];
        s->lat_sum[b] += s->fold[b];
        nh += s->fold[b];
    }
    r->requests = (uint32_t)(req > UINT32_MAX ? UINT32_MAX : req);
    r->p50_ms = (float)quantile_ms(s->fold, NULL, nh, 0.50);
    r->p99_ms = (float)quantile_ms(s->fold, NULL, nh, 0.99);
    s->requests_total += req;
    if (s->have_prev) {
        r->events = tot.events > s->prev.events ? (uint32_t)(tot.events - s->prev.events) : 0;
        r->updates = tot.adapter_updates > s->prev.adapter_updates
                         ? (uint32_t)(tot.adapter_updates - s->prev.adapter_updates) : 0;
    }
    r->log_bytes = tot.log_bytes;
    s->prev = tot;
    s->have_prev = 1;
    r->q_n = atomic_exchange_explicit(&s->qs_n, 0, memory_order_relaxed);
    r->q_base = atomic_exchange_explicit(&s->qs_base, 0, memory_order_relaxed);
    r->q_adapter = atomic_exchange_explicit(&s->qs_adapter, 0, memory_order_relaxed);
    s->last_t = now;
    s->have_last = 1;
    pthread_mutex_unlock(&s->mu);
}

/* ---------------------------------------------------------------- readers */

static const row *row_at(const dr_stats *s, uint32_t back) { /* back = 0: the newest */
    return &s->rows[(s->head + DR_STATS_SECONDS - 1 - back) % DR_STATS_SECONDS];
}

void dr__stats_overview(dr_stats *s, dr_stats_overview *o) {
    memset(o, 0, sizeof *o);
    if (!s) return;
    o->uptime = dr__now_seconds() - s->t0;
    o->quality_rate = s->p.quality_rate;
    o->quality_window = s->p.quality_window;
    uint64_t qn = atomic_load_explicit(&s->qw_n, memory_order_relaxed);
    o->q_samples = qn;
    if (qn) {
        o->q_hit_base = (double)atomic_load_explicit(&s->qw_base, memory_order_relaxed) / (double)qn;
        o->q_hit_adapter = (double)atomic_load_explicit(&s->qw_adapter, memory_order_relaxed) / (double)qn;
    }
    o->q_total = atomic_load_explicit(&s->q_total, memory_order_relaxed);
    pthread_mutex_lock(&s->mu);
    o->requests_total = s->requests_total;
    uint32_t n = s->n_rows < 10 ? s->n_rows : 10;
    double ev = 0, rq = 0;
    for (uint32_t k = 0; k < n; k++) {
        ev += row_at(s, k)->events;
        rq += row_at(s, k)->requests;
    }
    if (n) {
        o->events_per_s = ev / n;
        o->requests_per_s = rq / n;
    }
    uint64_t nh = 0;
    for (uint32_t b = 0; b < NB; b++) nh += s->lat_sum[b];
    o->p50_ms = quantile_ms(NULL, s->lat_sum, nh, 0.50);
    o->p99_ms = quantile_ms(NULL, s->lat_sum, nh, 0.99);
    pthread_mutex_unlock(&s->mu);
}

typedef struct jbuf {
    char *b;
    size_t cap, len;
} jbuf;

static void jput(jbuf *j, const char *fmt, ...) DR_PRINTF(2, 3);
static void jput(jbuf *j, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(j->len < j->cap ? j->b + j->len : NULL, j->len < j->cap ? j->cap - j->len : 0, fmt, ap);
    va_end(ap);
    if (n > 0) j->len += (size_t)n;
}

size_t dr__stats_series_json(dr_stats *s, int64_t since, char *buf, size_t cap) {
    jbuf j = {buf, cap, 0};
    if (cap) buf[0] = 0;
    pthread_mutex_lock(&s->mu);
    uint32_t n = 0; /* rows newer than since, oldest first from back n-1 */
    while (n < s->n_rows && row_at(s, n)->t > since) n++;
    jput(&j, "{\"step\":1,\"now\":%lld,\"rate\":%.6g,\"n\":%u", (long long)(s->have_last ? s->last_t : 0),
         s->p.quality_rate, n);
#define COLUMN(name, fmt, expr)                                                              \
    do {                                                                                     \
        jput(&j, ",\"" name "\":[");                                                         \
        for (uint32_t k = n; k-- > 0;) {                                                     \
            const row *r = row_at(s, k);                                                     \
            jput(&j, k + 1 < n ? "," fmt : fmt, expr);                                       \
        }                                                                                    \
        jput(&j, "]");                                                                       \
    } while (0)
    COLUMN("t", "%lld", (long long)r->t);
    COLUMN("events", "%u", r->events);
    COLUMN("requests", "%u", r->requests);
    COLUMN("p50_ms", "%.4g", (double)r->p50_ms);
    COLUMN("p99_ms", "%.4g", (double)r->p99_ms);
    COLUMN("adapter_updates", "%u", r->updates);
    COLUMN("log_bytes", "%llu", (unsigned long long)r->log_bytes);
    COLUMN("quality_samples", "%u", r->q_n);
    COLUMN("hit_base", "%u", r->q_base);
    COLUMN("hit_adapter", "%u", r->q_adapter);
#undef COLUMN
    pthread_mutex_unlock(&s->mu);
    jput(&j, "}");
    return j.len + 1;
}
