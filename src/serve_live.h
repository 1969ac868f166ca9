/*
 * serve_live.h - the served base and its live swaps (internal). See serve_live.c.
 *
 * A generation is one serving state (serve_core.h) on one checkpoint. The HTTP layer takes the
 * current generation for each request (dr__live_acquire / dr__live_release); a swap builds the
 * next generation beside the current one and switches when it has caught up, so requests never
 * wait for it and none fails. A swap is a BASE record in the log: every replica that applies
 * the record follows it, and a restart or a replay lands on the base the log names.
 */
#ifndef DR_SERVE_LIVE_H
#define DR_SERVE_LIVE_H

#include "serve_core.h"

typedef struct dr_live_params {
    const char *model_path;  /* the checkpoint given at start (SIGHUP re-reads it) */
    dr_srv_params srv;       /* base, on_base and on_base_ud are the live layer's */
    int explain;             /* 1: each generation gets a template explainer */
    uint32_t check_events;   /* a swap scores both bases on the log's last N events (2000) */
    double max_drop;         /* ... and is refused when the new Hit@10 is lower by more (0.02) */
    double max_z;            /* ... or when it is worse by a paired test on the same events:
                                McNemar's z over the events one base hit and the other missed
                                above this (1.645: one-sided 5%); 0 = no paired test */
    int compact_after_swap;  /* 1: after each switch, `dynrec compact` the folder's SQLite log */
    uint32_t rebuild_events; /* the new base's adapter relearns from this many events before the
                                checked ones (0: the adapter's window; at most DR_SRV_EVENT_RING) */
} dr_live_params;

dr_live_params dr__live_default_params(void);

/* One serving state on one checkpoint. Read-only for holders of a reference. */
typedef struct dr_gen {
    dr_srv *srv;
    const dr_model *model;
    dr_explainer *ex;        /* NULL without explain */
    uint64_t id;             /* 1 for the first generation of the process, then 2, ... */
    char path[DR_SRV_PATH_MAX];  /* the checkpoint's path ("" for a wrapped server) */
    char hash[17];           /* XXH64 of the checkpoint file, hex ("" for a wrapped server) */
    dr_log_pos at, covers;   /* its BASE record and what its checkpoint covers ((0, 0): none) */
    double since;            /* when it went live (dr__now_seconds) */
} dr_gen;

typedef struct dr_live dr_live;

/* Loads the base the log's newest BASE record names (else p->model_path), opens the serving
 * state on it and starts following swaps. */
dr_status dr__live_open(const dr_live_params *p, dr_live **out, dr_error *err);
/* A live layer over a state the caller opened and keeps (tests, the fuzzer): one generation,
 * swaps answer DR_UNSUPPORTED. m may be NULL (no explanations). */
dr_status dr__live_wrap(dr_srv *s, const dr_model *m, int explain, dr_live **out, dr_error *err);
/* Closes every generation (the wrapped state stays open). */
void dr__live_close(dr_live *l);

/* The current generation, held until released; never NULL on an open live layer. */
dr_gen *dr__live_acquire(dr_live *l);
void dr__live_release(dr_live *l, dr_gen *g);
/* One more reference to g (held by the caller already). */
void dr__live_hold(dr_live *l, dr_gen *g);

typedef struct dr_swap_report {
    int swapped;             /* 1: live on the new base; 0: refused for its quality */
    dr_srv_preq live, cand;  /* the prequential check of the live and the new base, on the same
                                events: the last check_events ones the new base was not trained on */
    uint64_t live_only, new_only; /* paired events the live base hit and the new one missed,
                                and the reverse */
    double z;                /* McNemar's z (continuity-corrected) of the new base being worse */
    int checked;             /* 1: at least DR_SRV_SWAP_CHECK_MIN such events, the check could
                                refuse; 0: too few (the new base covers the recent log), not judged */
    uint64_t gen;            /* the generation now live */
    char at[DR_LOG_POS_MAX]; /* the BASE record's position ("" when refused) */
    double seconds;          /* the whole swap (load, check, log, build, switch) */
} dr_swap_report;

/* Swaps the base to the checkpoint at path (the same file must be readable by every replica):
 * loads and checks it, scores it and the live base (each with an adapter rebuilt over the same
 * recent events), refuses it (rep->swapped = 0, DR_OK) when worse by more than max_drop unless
 * force, logs the BASE record, builds the new generation and switches. Blocks until done.
 * DR_LIMIT when another swap is running; DR_ARG / DR_FORMAT / DR_IO for a bad checkpoint. */
dr_status dr__live_swap(dr_live *l, const char *path, int force, dr_swap_report *rep,
                        dr_error *err);
/* The same with the path given at start (SIGHUP). */
dr_status dr__live_reload(dr_live *l, dr_swap_report *rep, dr_error *err);

typedef struct dr_live_stats {
    uint64_t swaps;          /* generations switched to since start */
    uint64_t refused;        /* swaps refused for quality */
    uint64_t failed;         /* swaps or follows that failed (the old base kept serving) */
    double last_seconds;     /* wall time of the last switch */
} dr_live_stats;
void dr__live_stats(dr_live *l, dr_live_stats *out);

#endif /* DR_SERVE_LIVE_H */
