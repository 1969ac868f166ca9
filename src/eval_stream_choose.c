/*
 * eval_stream_choose.c - the online adapter's settings chosen on a validation stream, and the
 * checkpoint notes that carry the choice to `dynrec eval --protocol stream` and `dynrec serve`.
 *
 * DESIGN: P-STREAM's test stream is the replay from T0 on, so nothing may be chosen there. The
 * validation stream is the same protocol moved back in time: T1 = the time of the pre-T0 event
 * at index floor(0.9 * n_pre); a validation base is trained on the events before T1 (with the
 * base's own parameters, early-stopped on each user's last event before T1) and the events in
 * [T1, T0) are replayed over it (eval_stream.c with a range). The search is coordinate-wise over
 * one table of candidate values (g_stages): first the global window at the default rates, then
 * the user-side rate at the best window, then the item-side rate; 11 replays in all. A full
 * grid (5 x 4 x 4 = 80 replays) was rejected for its cost (each replay is a few seconds to a minute);
 * the window matters most (docs/BENCH.md), so it goes first. The frozen column runs in the first
 * trial only. The choice is Hit@10 (the protocol's headline), then NDCG@10, then the earlier
 * trial. Everything is a function of the dataset, the base parameters (seed included) and the
 * adapter's seed: the same inputs give the same choice.
 * The choice travels as checkpoint notes (dr_model_set_meta): g_notes names each key once, for
 * writing (dr_model_set_adapter_choice) and reading (dr__adapter_params_from_model).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "eval_stream.h"

/* ---------------------------------------------------------------- the search space */

enum { K_WINDOW, K_LR, K_LR_ITEM };

/* Candidate values per stage: windows in events, rates as multiples of the default. */
static const struct {
    int knob;
    uint32_t n;
    float v[5];
} g_stages[] = {
    {K_WINDOW, 5, {4096, 512, 1024, 2048, 8192}}, /* the default first: it also runs frozen */
    {K_LR, 3, {0.3f, 3.0f, 10.0f}},
    {K_LR_ITEM, 3, {0.3f, 3.0f, 10.0f}},
};

/* Checkpoint notes: the chosen settings, then the validation figures they were chosen on. */
#define DR_ADAPTER_NOTES(X)                                                          \
    X("adapter.window", "%u", c->best.window)                                        \
    X("adapter.lr", "%.6g", (double)c->best.lr)                                      \
    X("adapter.lr_item", "%.6g", (double)c->best.lr_item)                            \
    X("adapter.valid_hit10", "%.6f", c->best.hit10)                                  \
    X("adapter.valid_ndcg10", "%.6f", c->best.ndcg10)                                \
    X("adapter.valid_frozen_hit10", "%.6f", c->frozen_hit10)                         \
    X("adapter.valid_events", "%zu", c->n_scored)

dr_status dr_model_set_adapter_choice(dr_model *m, const dr_adapter_choice *c, dr_error *err) {
    char v[64];
    dr_status st = DR_OK;
    if (!m || !c) return dr__fail(err, DR_ARG, "dr_model_set_adapter_choice: NULL argument");
#define SET(key, fmt, val)                                                                   \
    if (st == DR_OK) {                                                                       \
        snprintf(v, sizeof v, fmt, val);                                                     \
        st = dr_model_set_meta(m, key, v, err);                                              \
    }
    DR_ADAPTER_NOTES(SET)
#undef SET
    return st;
}

dr_status dr_model_copy_adapter_choice(dr_model *dst, const dr_model *src, dr_error *err) {
    dr_status st = DR_OK;
    const char *v;
#define COPY(key, fmt, val)                                                                  \
    if (st == DR_OK && (v = dr_model_meta(src, key))) st = dr_model_set_meta(dst, key, v, err);
    DR_ADAPTER_NOTES(COPY)
#undef COPY
    return st;
}

static int note_f(const dr_model *m, const char *key, double lo, double hi, double *out) {
    const char *v = dr_model_meta(m, key);
    char *end;
    if (!v) return 0;
    double d = strtod(v, &end);
    if (*end || !isfinite(d) || d < lo || d > hi) {
        dr__log(DR_LOG_WARN, "checkpoint note %s='%s' is out of range: the default is used", key, v);
        return 0;
    }
    *out = d;
    return 1;
}

void dr__adapter_params_from_model(dr_adapter_params *ap, const dr_model *m) {
    double d;
    if (note_f(m, "adapter.window", 2, DR_ADAPTER_WINDOW_MAX, &d)) ap->window.capacity = (uint32_t)d;
    if (note_f(m, "adapter.lr", 1e-9, 10, &d)) ap->lr = (float)d;
    if (note_f(m, "adapter.lr_item", 1e-9, 10, &d)) ap->lr_g = (float)d;
}

void dr_stream_options_from_model(dr_stream_options *o, const dr_model *m) {
    dr_adapter_params ap = dr__adapter_default_params();
    ap.window.capacity = 0;
    ap.lr = ap.lr_g = -1.0f;
    dr__adapter_params_from_model(&ap, m);
    if (!o->window && ap.window.capacity) o->window = ap.window.capacity;
    if (!(o->lr > 0) && ap.lr > 0) o->lr = ap.lr;
    if (!(o->lr_item > 0) && ap.lr_g > 0) o->lr_item = ap.lr_g;
}

/* ---------------------------------------------------------------- the search */

static int better(const dr_adapter_trial *a, const dr_adapter_trial *b) {
    return a->hit10 > b->hit10 || (a->hit10 == b->hit10 && a->ndcg10 > b->ndcg10);
}

dr_status dr_stream_choose_adapter(const dr_dataset *ds, const dr_model_params *base,
                                   const dr_stream_options *o, dr_adapter_trial_fn on_trial,
                                   void *ud, dr_adapter_choice *out, dr_error *err) {
    dr_stream_options def = dr_stream_default_options();
    if (!ds || !base || !out) return dr__fail(err, DR_ARG, "dr_stream_choose_adapter: NULL argument");
    if (!o) o = &def;
    memset(out, 0, sizeof *out);
    dr_dataset_stats stats;
    dr_status st = dr_dataset_get_stats(ds, &stats);
    if (st != DR_OK) return st;
    if (!stats.has_time)
        return dr__fail(err, DR_ARG, "%s: the events carry no time: there is no stream to "
                       "choose the adapter on", dr_dataset_name(ds));
    size_t n_pre = 0;
    while (n_pre < ds->n_events && ds->ev_time[n_pre] < stats.t0) n_pre++;
    size_t idx = (n_pre / 10) * 9 + ((n_pre % 10) * 9) / 10; /* floor(0.9 * n_pre), exactly */
    if (n_pre < 20 || ds->ev_time[idx] <= ds->ev_time[0] || ds->ev_time[idx] >= stats.t0)
        return dr__fail(err, DR_ARG, "%s: %zu events before T0 do not leave a validation stream "
                       "(its last 10%% by time)", dr_dataset_name(ds), n_pre);
    out->t_begin = ds->ev_time[idx];
    out->t_end = stats.t0;

    dr_split *sp = NULL;
    dr_model *vb = NULL;
    double t_start = dr__now_seconds();
    if ((st = dr__split_t0_at(ds, out->t_begin, 1, &sp, err)) != DR_OK) return st;
    st = dr_model_fit(ds, sp, base, &vb, err);
    dr_split_free(sp);
    if (st != DR_OK) return st;
    out->base_seconds = dr__now_seconds() - t_start;
    if (!dr_model_latent_dim(vb)) {
        dr_model_free(vb);
        return dr__fail(err, DR_UNSUPPORTED, "the adapter needs a dot-product base, '%s' is not one",
                       dr_model_name(vb));
    }

    dr_stream_params p = dr__stream_default_params();
    p.adapter.seed = o->seed;
    if (o->hidden) p.adapter.hidden = o->hidden;
    if (o->negatives) p.adapter.negatives = o->negatives;
    if (o->g_batch) p.adapter.g_batch = o->g_batch;
    if (o->lambda_kl >= 0) p.adapter.lambda_kl = o->lambda_kl;
    p.has_range = 1;
    p.t_begin = out->t_begin;
    p.t_end = out->t_end;
    const float lr0 = p.adapter.lr, lrg0 = p.adapter.lr_g;
    dr_adapter_trial cur = {.window = p.adapter.window.capacity, .lr = lr0, .lr_item = lrg0};
    for (size_t s = 0; s < DR_ARRAY_LEN(g_stages) && st == DR_OK; s++) {
        dr_adapter_trial at = out->best; /* each stage starts from the best so far */
        if (out->n_trials == 0) at = cur;
        for (uint32_t k = 0; k < g_stages[s].n && st == DR_OK; k++) {
            dr_adapter_trial t = at;
            float v = g_stages[s].v[k];
            if (g_stages[s].knob == K_WINDOW) t.window = (uint32_t)v;
            else if (g_stages[s].knob == K_LR) t.lr = lr0 * v;
            else t.lr_item = lrg0 * v;
            p.adapter.window.capacity = t.window;
            p.adapter.lr = t.lr;
            p.adapter.lr_g = t.lr_item;
            p.no_frozen = out->n_trials > 0;
            dr_stream_result r;
            double t1 = dr__now_seconds();
            if ((st = dr__stream_eval(ds, vb, &p, &r, err)) != DR_OK) break;
            t.hit10 = r.overall.adapter.hit10;
            t.ndcg10 = r.overall.adapter.ndcg10;
            t.cold_hit10 = r.cold.adapter.hit10;
            t.seconds = dr__now_seconds() - t1;
            if (out->n_trials == 0) {
                out->frozen_hit10 = r.overall.frozen.hit10;
                out->frozen_ndcg10 = r.overall.frozen.ndcg10;
                out->n_events = r.n_events;
                out->n_scored = r.n_scored;
            }
            if (out->n_trials == 0 || better(&t, &out->best)) out->best = t;
            if (out->n_trials < DR_ADAPTER_TRIALS_MAX) out->trials[out->n_trials] = t;
            out->n_trials++;
            if (on_trial) on_trial(ud, &t, out);
        }
    }
    dr_model_free(vb);
    out->seconds = dr__now_seconds() - t_start;
    return st;
}
