/*
 * model.c - the model registry and the scoring interface (dr_model_*, dr_scorer_*).
 *
 * DESIGN: models are found by name in one static table of vtables (model.h). A model holds
 * only immutable fitted state; everything a score() call writes lives in a dr_scorer (one per
 * thread, sized by the model's scratch_bytes), so one fitted model serves any number of
 * threads without locks and score() never allocates. Alternative rejected: scratch inside the
 * model behind a mutex, which serialises the evaluation and the server.
 */
#include "model.h"
#include "mf.h"
#include "sasrec.h"
#include "format.h"
#include "topk.h"

static const dr_model_vt *const g_models[] = {&dr_pop_vt, &dr_itemknn_vt, &dr_sasrec_vt,
                                              &dr_mf_vt};

dr_model_params dr_model_default_params(void) {
    dr_model_params p;
    memset(&p, 0, sizeof p);
    p.name = "pop";
    p.knn_last = 20;
    p.threads = 0;
    p.seed = 42;
    p.dropout = -1.0f;
    p.weight_decay = -1.0f;
    p.l2 = -1.0f;
    p.modality_dropout = -1.0f;
    p.id_dropout = -1.0f;
    p.fusion_l2 = -1.0f;
    return p;
}

dr_status dr_model_fit(const dr_dataset *ds, const dr_split *split, const dr_model_params *p,
                       dr_model **out, dr_error *err) {
    dr_model_params def = dr_model_default_params();
    const dr_model_vt *vt = NULL;
    dr_model *m = NULL;
    dr_status st;
    if (!out) return dr_fail(err, DR_ARG, "dr_model_fit: out is NULL");
    *out = NULL;
    if (!p) p = &def;
    if (!ds || !split) return dr_fail(err, DR_ARG, "dr_model_fit: dataset or split is NULL");
    if (split->n_users != ds->n_users)
        return dr_fail(err, DR_ARG, "dr_model_fit: split has %u users, dataset has %u",
                       split->n_users, ds->n_users);
    const char *name = p->name ? p->name : def.name;
    for (size_t k = 0; k < DR_ARRAY_LEN(g_models); k++)
        if (strcmp(g_models[k]->name, name) == 0) vt = g_models[k];
    if (!vt) return dr_fail(err, DR_ARG, "unknown model '%s' (known: pop, itemknn, sasrec, mf)", name);
    if (p->init && !vt->warm_start)
        return dr_fail(err, DR_UNSUPPORTED, "%s: warm start is not supported", name);
    if (p->init && p->init->vt != vt)
        return dr_fail(err, DR_ARG, "%s: cannot warm start from a '%s' model", name,
                       dr_model_name(p->init));

    m = dr_calloc(1, sizeof *m);
    if (!m) {
        st = dr_fail(err, DR_NOMEM, "dr_model_fit: out of memory");
        goto fail;
    }
    m->vt = vt;
    m->n_items = ds->n_items;
    st = vt->fit(ds, split, p, &m->state, err);
    if (st != DR_OK) goto fail;
    if ((st = dr_model_prepare_latents(m, err)) != DR_OK) goto fail;
    *out = m;
    return DR_OK;
fail:
    dr_model_free(m);
    return st;
}

void dr_model_free(dr_model *m) {
    if (!m) return;
    if (m->state) m->vt->free(m->state);
    dr_free(m->latent_owned);
    dr_free(m->user_ids);
    dr_free(m->titles);
    dr_free(m->attr_strs);
    dr_free(m->item_ids);
    dr_strtab_free(&m->user_index);
    dr_ckpt_close(m->ckpt); /* after the state: it points into the mapping */
    dr_free(m);
}

const char *dr_model_name(const dr_model *m) { return m ? m->vt->name : ""; }

dr_status dr_scorer_create(const dr_model *m, dr_scorer **out, dr_error *err) {
    dr_scorer *s = NULL;
    dr_status st;
    if (!out) return dr_fail(err, DR_ARG, "dr_scorer_create: out is NULL");
    *out = NULL;
    if (!m) return dr_fail(err, DR_ARG, "dr_scorer_create: model is NULL");
    s = dr_calloc(1, sizeof *s);
    if (!s) {
        st = dr_fail(err, DR_NOMEM, "dr_scorer_create: out of memory");
        goto fail;
    }
    s->m = m;
    s->scratch_bytes = m->vt->scratch_bytes ? m->vt->scratch_bytes(m->state) : 0;
    if (s->scratch_bytes) {
        s->scratch = dr_calloc(1, s->scratch_bytes);
        if (!s->scratch) {
            st = dr_fail(err, DR_NOMEM, "dr_scorer_create: %zu bytes of scratch",
                         s->scratch_bytes);
            goto fail;
        }
    }
    *out = s;
    return DR_OK;
fail:
    dr_scorer_free(s);
    return st;
}

void dr_scorer_free(dr_scorer *s) {
    if (!s) return;
    dr_topk_scratch_free(s->topk);
    dr_free(s->scores);
    dr_free(s->scratch);
    dr_free(s);
}

dr_status dr_model_score(const dr_model *m, dr_scorer *s, uint32_t u, const uint32_t *ctx,
                         size_t n_ctx, float *scores, dr_error *err) {
    if (!m || !s || !scores || (n_ctx && !ctx))
        return dr_fail(err, DR_ARG, "dr_model_score: NULL argument");
    if (s->m != m) return dr_fail(err, DR_ARG, "dr_model_score: scorer belongs to another model");
    for (size_t k = 0; k < n_ctx; k++)
        if (ctx[k] >= m->n_items)
            return dr_fail(err, DR_RANGE, "dr_model_score: context item %u >= n_items %u",
                           ctx[k], m->n_items);
    return m->vt->score(m->state, s->scratch, u, ctx, n_ctx, scores, err);
}

dr_status dr_recommend(const dr_model *m, dr_scorer *s, uint32_t u, const uint32_t *ctx,
                       size_t n_ctx, uint32_t k, dr_rec *out, uint32_t *n_out, dr_error *err) {
    if (!m || !s || !out || !n_out) return dr_fail(err, DR_ARG, "dr_recommend: NULL argument");
    *n_out = 0;
    if (k == 0 || k > DR_RECOMMEND_MAX_K)
        return dr_fail(err, DR_RANGE, "dr_recommend: k = %u is outside 1..%d", k,
                       DR_RECOMMEND_MAX_K);
    dr_status st;
    if (!s->scores) { /* warm-up: the only allocation of the serving path */
        s->scores = dr_malloc((size_t)m->n_items * sizeof *s->scores);
        if (!s->scores) return dr_fail(err, DR_NOMEM, "dr_recommend: out of memory");
        if ((st = dr_topk_scratch_create(m->n_items, DR_RECOMMEND_MAX_K, &s->topk, err)) != DR_OK) {
            dr_free(s->scores);
            s->scores = NULL;
            return st;
        }
    }
    if ((st = dr_model_score(m, s, u, ctx, n_ctx, s->scores, err)) != DR_OK) return st;
    if ((st = dr_topk_select(s->scores, m->n_items, ctx, n_ctx, k, s->topk, s->items, s->top,
                             n_out, err)) != DR_OK)
        return st;
    for (uint32_t j = 0; j < *n_out; j++) out[j] = (dr_rec){s->items[j], s->top[j]};
    return DR_OK;
}

/* ------------------------------------------------------------------ dot-product view */

dr_status dr_model_prepare_latents(dr_model *m, dr_error *err) {
    if (m->vt == &dr_sasrec_vt) {
        const dr_sasrec_dims *dm = dr_sasrec_get_dims(m->state);
        size_t n;
        m->latent_dim = dm->d;
        m->latent_items = dr_sasrec_param_block(m->state, &n) + dm->d; /* tok rows 1.. */
        return DR_OK;
    }
    if (m->vt == &dr_mf_vt) { /* [q_i, b_i] . [p_u, 1] = b_i + p_u . q_i */
        dr_mf_view v;
        dr_status st = dr_mf_get_view(m, &v, err);
        if (st != DR_OK) return st;
        uint32_t d1 = v.d + 1;
        float *z = dr_malloc((size_t)v.n_items * d1 * sizeof *z);
        if (!z) return dr_fail(err, DR_NOMEM, "mf: out of memory for %u item latents", v.n_items);
        for (uint32_t i = 0; i < v.n_items; i++) {
            memcpy(z + (size_t)i * d1, v.item + (size_t)i * v.d, v.d * sizeof *z);
            z[(size_t)i * d1 + v.d] = v.item_bias[i];
        }
        dr_free(m->latent_owned);
        m->latent_owned = z;
        m->latent_items = z;
        m->latent_dim = d1;
    }
    return DR_OK;
}

const dr_fusion *dr_model_fusion(const dr_model *m, const float **e, dr_impute *imp) {
    const dr_fusion *f = m && m->vt->fusion ? m->vt->fusion(m, e, imp) : NULL;
    if (!f && e) *e = NULL;
    return f;
}

uint32_t dr_model_latent_dim(const dr_model *m) { return m ? m->latent_dim : 0; }
const float *dr_model_item_latents(const dr_model *m) { return m ? m->latent_items : NULL; }

dr_status dr_model_user_latent(const dr_model *m, dr_scorer *s, uint32_t u, const uint32_t *ctx,
                               size_t n_ctx, float *h, dr_error *err) {
    if (!m || !s || !h || (n_ctx && !ctx)) return dr_fail(err, DR_ARG, "dr_model_user_latent: NULL argument");
    if (!m->latent_dim)
        return dr_fail(err, DR_UNSUPPORTED, "model '%s' has no latent space", m->vt->name);
    for (size_t k = 0; k < n_ctx; k++)
        if (ctx[k] >= m->n_items)
            return dr_fail(err, DR_RANGE, "context item %u >= n_items %u", ctx[k], m->n_items);
    if (m->vt == &dr_sasrec_vt) {
        dr_sasrec_user_latent(m->state, ctx, n_ctx, h, s->scratch);
        return DR_OK;
    }
    dr_mf_view v; /* mf: the trained user factor, or the mean of the context's item factors */
    dr_status st = dr_mf_get_view(m, &v, err);
    if (st != DR_OK) return st;
    if (u < v.n_users) {
        memcpy(h, v.user + (size_t)u * v.d, v.d * sizeof *h);
    } else {
        memset(h, 0, v.d * sizeof *h);
        for (size_t k = 0; k < n_ctx; k++)
            for (uint32_t j = 0; j < v.d; j++) h[j] += v.item[(size_t)ctx[k] * v.d + j];
        for (uint32_t j = 0; n_ctx && j < v.d; j++) h[j] /= (float)n_ctx;
    }
    h[v.d] = 1.0f;
    return DR_OK;
}
