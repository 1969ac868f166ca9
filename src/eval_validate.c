/*
 * eval_validate.c - the validator early stopping uses (dr_validator, model.h).
 *
 * DESIGN: a model's fit gets a dr_validator and calls its fn with its current state; fn wraps
 * the state as a temporary model of the validator's kind and ranks the validation segments
 * with the evaluation harness (eval.c, which = 1, no sampled candidates), with the model's
 * choice of users and targets. So there is one ranking code path, and the models depend on
 * neither eval.c nor the registry (model_kinds.c) that calls them. It is a file of its own because
 * the models call dr__validator_make (for their direct fit functions): in eval.c that would make
 * them depend on the harness, in model_kinds.c on the registry that names them.
 */
#include "eval.h"

static dr_status run(const dr_validator *v, const void *state, const dr_valid_opts *o,
                     double *ndcg10, double *hit10, dr_error *err) {
    /* score() only reads the state; the wrapper is never freed */
    const dr_model tmp = {.vt = v->vt, .state = (void *)(uintptr_t)state, .n_items = v->ds->n_items};
    dr_eval_params ep = dr_eval_default_params();
    ep.which = 1;
    ep.threads = o->threads;
    ep.n_sampled = 0;
    dr_eval_result r;
    dr_status st = dr__eval_run(v->ds, v->sp, &tmp, &ep, &o->subset, &r, err);
    if (st != DR_OK) return st;
    if (ndcg10) *ndcg10 = r.full10.ndcg;
    if (hit10) *hit10 = r.full10.hit;
    return DR_OK;
}

dr_validator dr__validator_make(const dr_model_vt *vt, const dr_dataset *ds, const dr_split *sp) {
    dr_validator v = {.fn = run, .vt = vt, .ds = ds, .sp = sp};
    return v;
}
