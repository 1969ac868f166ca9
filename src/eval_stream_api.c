/*
 * eval_stream_api.c - the public face of the P-STREAM replay (dynrec.h): maps the few options a
 * user sets onto the adapter's full parameter set (adapter.h) and runs eval_stream.c.
 *
 * DESIGN: the adapter has many tuning knobs; only those worth exposing on the command line
 * are public, the rest keep the values measured best (docs/BENCH.md). Exposing
 * dr_adapter_params itself was rejected: it would freeze internal layout in the public ABI.
 */
#include "eval_stream.h"

dr_stream_options dr_stream_default_options(void) {
    dr_stream_options o;
    memset(&o, 0, sizeof o);
    o.run_adapter = 1;
    o.lr = -1.0f;
    o.lr_item = -1.0f;
    o.lambda_kl = -1.0f;
    o.seed = 42;
    return o;
}

dr_status dr_eval_stream(const dr_dataset *ds, const dr_model *base, const dr_stream_options *o,
                         dr_stream_result *out, dr_error *err) {
    dr_stream_options def = dr_stream_default_options();
    if (!o) o = &def;
    dr_stream_params p = dr__stream_default_params();
    p.run_adapter = o->run_adapter;
    p.adapter.no_gates = o->no_gates;
    p.adapter.seed = o->seed;
    if (o->window) p.adapter.window.capacity = o->window;
    if (o->hidden) p.adapter.hidden = o->hidden;
    if (o->negatives) p.adapter.negatives = o->negatives;
    if (o->g_batch) p.adapter.g_batch = o->g_batch;
    if (o->lr > 0) p.adapter.lr = o->lr;
    if (o->lr_item > 0) p.adapter.lr_g = o->lr_item;
    if (o->lambda_kl >= 0) p.adapter.lambda_kl = o->lambda_kl;
    p.retrain = o->retrain;
    p.retrain_warm = o->retrain_warm;
    p.progress = o->progress;
    p.progress_ud = o->progress_ud;
    return dr__stream_eval(ds, base, &p, out, err);
}

int dr_stream_result_json(const dr_stream_result *r, char *buf, size_t cap) {
    return dr__stream_json(r, buf, cap);
}
