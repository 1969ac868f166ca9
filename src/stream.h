/*
 * stream.h - P-STREAM replay (../shared/PROTOCOL.md): a frozen base against the same base
 * with the online adapter, side by side in one time-ordered pass (internal; the CLI prints
 * the result, dr_stream_json formats it).
 */
#ifndef DR_STREAM_H
#define DR_STREAM_H

#include "adapter.h"
#include "model.h"

#define DR_STREAM_SLICES 10

typedef struct dr_stream_metrics {
    double hit10, ndcg10;   /* means over the events counted in n */
    size_t n;               /* scored events */
} dr_stream_metrics;

typedef struct dr_stream_pair {
    dr_stream_metrics frozen, adapter;
    dr_stream_metrics retrain; /* zeros unless the retrain column ran */
} dr_stream_pair;

typedef struct dr_stream_result {
    char dataset[64];
    char model[64];
    int64_t t0;
    size_t n_events;        /* replayed events: time >= T0 */
    size_t n_scored;        /* of those, scored (known user, new item for the user) */
    dr_stream_pair overall;
    dr_stream_pair slices[DR_STREAM_SLICES]; /* consecutive equal-count slices of scored events */
    dr_stream_pair cold;    /* scored events whose target was never seen before T0 */
    int has_adapter;        /* 0: the adapter column was not run (adapter metrics are 0) */
    int has_retrain;        /* 1: the retrain column ran */
    double retrain_seconds; /* time spent refitting the base (the upper bound's cost) */
    uint32_t n_retrains;
    double seconds;         /* wall time of the replay */
    double update_seconds;  /* time in dr_adapter_update */
    double frozen_score_seconds, adapter_score_seconds; /* scoring all items, per variant */
} dr_stream_result;

/* Called for every scored event, in replay order: event index into ds's events, the
 * pessimistic ranks (1-based) of the target under each column (0 when not run), cold flag. */
typedef void (*dr_stream_event_fn)(void *ud, size_t event, uint32_t rank_frozen,
                                   uint32_t rank_adapter, int cold);

typedef struct dr_stream_params {
    dr_adapter_params adapter; /* publish_every is forced to 0 (no concurrent readers) */
    int run_adapter;           /* 1 (default): run the adapter column */
    /* non-NULL: the `retrain` column, the base refitted with these parameters on every event
     * before the first timestamp of each slice 1..9 (slice 0 uses the base itself, trained on
     * everything before T0) */
    const dr_model_params *retrain;
    dr_stream_event_fn on_event; /* optional per-event ranks (drift analyses) */
    void *on_event_ud;
    dr_progress_fn progress;   /* "stream", events done, events total */
    void *progress_ud;
} dr_stream_params;

dr_stream_params dr_stream_default_params(void);

/*
 * Replays ds's events with time >= T0 (T0 of dr_dataset_get_stats) against base, a model
 * trained on the DR_SPLIT_T0 split of ds (its catalogue must be ds's). The adapter column
 * needs a dot-product model (dr_model_latent_dim > 0); else DR_UNSUPPORTED when run_adapter.
 */
dr_status dr_stream_eval(const dr_dataset *ds, const dr_model *base, const dr_stream_params *p,
                         dr_stream_result *out, dr_error *err);

/* The result as the CLI's --json object (see the issue); returns the length written like
 * snprintf. */
int dr_stream_json(const dr_stream_result *r, char *buf, size_t cap);

#endif /* DR_STREAM_H */
