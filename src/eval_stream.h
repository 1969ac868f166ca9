/*
 * eval_stream.h - P-STREAM replay (../shared/PROTOCOL.md): a frozen base against the same base
 * with the online adapter, side by side in one time-ordered pass (internal; the CLI prints
 * the result, dr__stream_json formats it).
 */
#ifndef DR_EVAL_STREAM_H
#define DR_EVAL_STREAM_H

#include "adapter.h"
#include "model.h"

/* dr_stream_metrics, dr_stream_pair and dr_stream_result are public (dynrec.h). */

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
    int retrain_warm;          /* 1: each refit starts from the model it replaces (the base for
                                  the first), for retrain->epochs more epochs */
    int served_time;           /* 1: the adapter sees time as `dynrec serve` does: whole UNIX
                                  seconds (time * time_scale rounded down; the HTTP API's unit)
                                  and a query at the newest applied event's time instead of its
                                  own (P-LIVE's reference, bench/live_events.c) */
    int no_frozen;             /* 1: skip the frozen column's scoring (its figures read 0): an
                               adapter search that already has them */
    int has_range;             /* 1: replay [t_begin, t_end) instead of [T0, end): a
                                  validation stream before T0 (eval_stream_choose.c) */
    int64_t t_begin, t_end;
    dr_stream_event_fn on_event; /* optional per-event ranks (drift analyses) */
    void *on_event_ud;
    dr_progress_fn progress;   /* "stream", events done, events total */
    void *progress_ud;
} dr_stream_params;

dr_stream_params dr__stream_default_params(void);

/*
 * Replays ds's events with time >= T0 (T0 of dr_dataset_get_stats; or those in [t_begin, t_end)) against base, a model
 * trained on the DR_SPLIT_T0 split of ds (its catalogue must be ds's). The adapter column
 * needs a dot-product model (dr_model_latent_dim > 0); else DR_UNSUPPORTED when run_adapter.
 */
dr_status dr__stream_eval(const dr_dataset *ds, const dr_model *base, const dr_stream_params *p,
                         dr_stream_result *out, dr_error *err);

/* The result as the CLI's --json object (see the issue); returns the length written like
 * snprintf. */
int dr__stream_json(const dr_stream_result *r, char *buf, size_t cap);

#endif /* DR_EVAL_STREAM_H */
