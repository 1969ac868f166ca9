/*
 * model_kinds.c - the registry of model kinds and dr_model_fit.
 *
 * DESIGN: the registry is made from DR_MODEL_TABLE (model.h), so a new kind is its own file
 * plus one row there. It lives apart from model.c because it names every kind's vtable and
 * the kinds call model.c: with the registry in model.c the two would depend on each other.
 * dr_model_fit hands the kind's fit a validator (eval_validate.c) for early stopping.
 */
#include "model.h"

#define DR_MODEL_PTR(name, vt) &vt,
#define DR_MODEL_NAME(name, vt) ", " #name
static const dr_model_vt *const g_models[] = {DR_MODEL_TABLE(DR_MODEL_PTR)};
static const char g_known[] = DR_MODEL_TABLE(DR_MODEL_NAME); /* ", pop, itemknn, ..." */

const dr_model_vt *dr__model_kind(const char *name) {
    for (size_t k = 0; name && k < DR_ARRAY_LEN(g_models); k++)
        if (strcmp(g_models[k]->name, name) == 0) return g_models[k];
    return NULL;
}

const char *dr_model_kind_at(size_t k, int *saves) {
    if (k >= DR_ARRAY_LEN(g_models)) return NULL;
    if (saves) *saves = g_models[k]->save != NULL;
    return g_models[k]->name;
}

dr_status dr_model_fit(const dr_dataset *ds, const dr_split *split, const dr_model_params *p,
                       dr_model **out, dr_error *err) {
    dr_model_params def = dr_model_default_params();
    const dr_model_vt *vt = NULL;
    dr_model *m = NULL;
    dr_status st;
    if (!out) return dr__fail(err, DR_ARG, "dr_model_fit: out is NULL");
    *out = NULL;
    if (!p) p = &def;
    if (!ds || !split) return dr__fail(err, DR_ARG, "dr_model_fit: dataset or split is NULL");
    if (split->n_users != ds->n_users)
        return dr__fail(err, DR_ARG, "dr_model_fit: split has %u users, dataset has %u",
                       split->n_users, ds->n_users);
    const char *name = p->name ? p->name : def.name;
    if (!(vt = dr__model_kind(name)))
        return dr__fail(err, DR_ARG, "unknown model '%s' (known: %s)", name, g_known + 2);
    if (p->init && !vt->warm_start)
        return dr__fail(err, DR_UNSUPPORTED, "%s: warm start is not supported", name);
    if (p->init && p->init->vt != vt)
        return dr__fail(err, DR_ARG, "%s: cannot warm start from a '%s' model", name,
                       dr_model_name(p->init));

    m = dr__calloc(1, sizeof *m);
    if (!m) {
        st = dr__fail(err, DR_NOMEM, "dr_model_fit: out of memory");
        goto fail;
    }
    m->vt = vt;
    m->n_items = ds->n_items;
    const dr_validator val = dr__validator_make(vt, ds, split);
    st = vt->fit(ds, split, p, &val, &m->state, err);
    if (st != DR_OK) goto fail;
    if ((st = dr__model_prepare_latents(m, err)) != DR_OK) goto fail;
    *out = m;
    return DR_OK;
fail:
    dr_model_free(m);
    return st;
}
