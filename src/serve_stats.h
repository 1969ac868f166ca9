/*
 * serve_stats.h - the server's live statistics (internal): per-second series of the last hour
 * (events/s, requests/s, p50/p99 latency, adapter updates/s, log size, live quality) and the
 * live-quality windows, read by GET /v1/stats and GET /v1/stats/series (docs/HTTP.md) and the
 * dashboard (ui/). See serve_stats.c.
 *
 * Threads: dr__stats_request from any thread (no lock: relaxed atomics in per-thread shards);
 * dr__stats_quality from one thread at a time (the apply thread); dr__stats_tick from one
 * thread (the stats' own, or the caller's when params.thread = 0); readers from any thread.
 */
#ifndef DR_SERVE_STATS_H
#define DR_SERVE_STATS_H

#include "common.h"

/* The cumulative counters the series are differences of, read once a second. */
typedef struct dr_stats_totals {
    uint64_t events;          /* events applied */
    uint64_t adapter_updates; /* adapter updates */
    uint64_t log_bytes;       /* the log's size on disk */
} dr_stats_totals;

typedef void (*dr_stats_totals_fn)(void *ud, dr_stats_totals *out);

typedef struct dr_stats_params {
    double quality_rate;      /* share of incoming events scored for live quality (0.03) */
    uint32_t quality_window;  /* sampled events in the sliding window (1000), 1..DR_STATS_QUALITY_MAX */
    int thread;               /* 1: a thread folds the counters once a second; 0: the caller
                                 calls dr__stats_tick (tests) */
    dr_stats_totals_fn totals; /* NULL: events, updates and log size stay 0 */
    void *totals_ud;
} dr_stats_params;

dr_stats_params dr__stats_default_params(void);

typedef struct dr_stats dr_stats;

dr_status dr__stats_create(const dr_stats_params *p, dr_stats **out, dr_error *err);
void dr__stats_free(dr_stats *s); /* stops the thread; NULL is a no-op */

/* One answered request that took `seconds` (any thread, lock-free). */
void dr__stats_request(dr_stats *s, double seconds);

/* Whether the event (user, item, time) is in the sampled share: a hash of the three against
 * quality_rate, so every replica and every replay samples the same events. */
int dr__stats_sampled(const dr_stats *s, const char *user, const char *item, int64_t time);
/* A sampled event's outcome: was its item in the user's top 10 just before it, under the base
 * alone (hit_base) and under base + adapter (hit_adapter). One thread at a time. */
void dr__stats_quality(dr_stats *s, int hit_base, int hit_adapter);

/* Folds what was counted since the last tick into the row of second `now` (UNIX seconds);
 * seconds skipped since the last tick get empty rows. */
void dr__stats_tick(dr_stats *s, int64_t now);

typedef struct dr_stats_overview {
    double uptime;             /* seconds since dr__stats_create */
    uint64_t requests_total;   /* requests folded so far */
    double events_per_s;       /* mean over the last 10 folded seconds */
    double requests_per_s;     /* mean over the last 10 folded seconds */
    double p50_ms, p99_ms;     /* request latency over the last 60 folded seconds (0: none) */
    uint64_t q_samples;        /* sampled events in the window (<= quality_window) */
    double q_hit_base, q_hit_adapter; /* Hit@10 over them (0 when none) */
    uint64_t q_total;          /* sampled events since start */
    double quality_rate;
    uint32_t quality_window;
} dr_stats_overview;
void dr__stats_overview(dr_stats *s, dr_stats_overview *o);

/* The rows with t > since (UNIX seconds; at most the last DR_STATS_SECONDS) as one JSON
 * object of columns (docs/HTTP.md). Writes at most cap bytes (NUL included) and returns the
 * length the whole text needs, as snprintf does. */
size_t dr__stats_series_json(dr_stats *s, int64_t since, char *buf, size_t cap);

#endif /* DR_SERVE_STATS_H */
