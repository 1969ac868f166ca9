/*
 * model.c - the scoring interface (dr_model_*, dr_scorer_*) and the dot-product view.
 *
 * DESIGN: this file knows no model kind: the registry and dr_model_fit are in model_kinds.c, and
 * what differs between kinds (latents, user latent, fold-in, window) comes from vtable slots,
 * so the models can call in here without a dependency cycle. A model holds
 * only immutable fitted state; everything a score() call writes lives in a dr_scorer (one per
 * thread, sized by the model's scratch_bytes), so one fitted model serves any number of
 * threads without locks and score() never allocates. Alternative rejected: scratch inside the
 * model behind a mutex, which serialises the evaluation and the server.
 */
#include "model.h"
#include "ckpt.h"
#include "topk.h"

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

void dr_model_free(dr_model *m) {
    if (!m) return;
    if (m->state) m->vt->free(m->state);
    dr__free(m->latent_owned);
    dr__free(m->user_ids);
    dr__free(m->titles);
    dr__free(m->attr_strs);
    dr__free(m->item_ids);
    dr__strtab_free(&m->user_index);
    dr__ckpt_close(m->ckpt); /* after the state: it points into the mapping */
    dr__free(m);
}

const char *dr_model_name(const dr_model *m) { return m ? m->vt->name : ""; }

dr_status dr_scorer_create(const dr_model *m, dr_scorer **out, dr_error *err) {
    dr_scorer *s = NULL;
    dr_status st;
    if (!out) return dr__fail(err, DR_ARG, "dr_scorer_create: out is NULL");
    *out = NULL;
    if (!m) return dr__fail(err, DR_ARG, "dr_scorer_create: model is NULL");
    s = dr__calloc(1, sizeof *s);
    if (!s) {
        st = dr__fail(err, DR_NOMEM, "dr_scorer_create: out of memory");
        goto fail;
    }
    s->m = m;
    s->scratch_bytes = m->vt->scratch_bytes ? m->vt->scratch_bytes(m->state) : 0;
    if (s->scratch_bytes) {
        s->scratch = dr__calloc(1, s->scratch_bytes);
        if (!s->scratch) {
            st = dr__fail(err, DR_NOMEM, "dr_scorer_create: %zu bytes of scratch",
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
    dr__topk_scratch_free(s->topk);
    dr__free(s->scores);
    dr__free(s->scratch);
    dr__free(s);
}

dr_status dr_model_score(const dr_model *m, dr_scorer *s, uint32_t u, const uint32_t *ctx,
                         size_t n_ctx, float *scores, dr_error *err) {
    if (!m || !s || !scores || (n_ctx && !ctx))
        return dr__fail(err, DR_ARG, "dr_model_score: NULL argument");
    if (s->m != m) return dr__fail(err, DR_ARG, "dr_model_score: scorer belongs to another model");
    for (size_t k = 0; k < n_ctx; k++)
        if (ctx[k] >= m->n_items)
            return dr__fail(err, DR_RANGE, "dr_model_score: context item %u >= n_items %u",
                           ctx[k], m->n_items);
    return m->vt->score(m->state, s->scratch, u, ctx, n_ctx, scores, err);
}

dr_status dr_recommend(const dr_model *m, dr_scorer *s, uint32_t u, const uint32_t *ctx,
                       size_t n_ctx, uint32_t k, dr_rec *out, uint32_t *n_out, dr_error *err) {
    if (!m || !s || !out || !n_out) return dr__fail(err, DR_ARG, "dr_recommend: NULL argument");
    *n_out = 0;
    if (k == 0 || k > DR_RECOMMEND_MAX_K)
        return dr__fail(err, DR_RANGE, "dr_recommend: k = %u is outside 1..%d", k,
                       DR_RECOMMEND_MAX_K);
    dr_status st;
    if (!s->scores) { /* warm-up: the only allocation of the serving path */
        s->scores = dr__malloc((size_t)m->n_items * sizeof *s->scores);
        if (!s->scores) return dr__fail(err, DR_NOMEM, "dr_recommend: out of memory");
        if ((st = dr__topk_scratch_create(m->n_items, DR_RECOMMEND_MAX_K, &s->topk, err)) != DR_OK) {
            dr__free(s->scores);
            s->scores = NULL;
            return st;
        }
    }
    if ((st = dr_model_score(m, s, u, ctx, n_ctx, s->scores, err)) != DR_OK) return st;
    if ((st = dr__topk_select(s->scores, m->n_items, ctx, n_ctx, k, s->topk, s->items, s->top,
                             n_out, err)) != DR_OK)
        return st;
    for (uint32_t j = 0; j < *n_out; j++) out[j] = (dr_rec){s->items[j], s->top[j]};
    return DR_OK;
}

/* ------------------------------------------------------------------ dot-product view */

dr_status dr__model_prepare_latents(dr_model *m, dr_error *err) {
    if (!m->vt->latents) return DR_OK;
    uint32_t dim = 0;
    const float *items = NULL;
    float *owned = NULL;
    dr_status st = m->vt->latents(m->state, &dim, &items, &owned, err);
    if (st != DR_OK) return st;
    dr__free(m->latent_owned); /* a view built before is replaced */
    m->latent_owned = owned;
    m->latent_items = items;
    m->latent_dim = dim;
    return DR_OK;
}

int dr__model_folds_in(const dr_model *m) { return m ? m->vt->fold_in : 0; }

uint32_t dr__model_window(const dr_model *m) {
    return m && m->vt->window ? m->vt->window(m->state) : 0;
}

const dr_fusion *dr__model_fusion(const dr_model *m, const float **e, dr_impute *imp) {
    const dr_fusion *f = m && m->vt->fusion ? m->vt->fusion(m, e, imp) : NULL;
    if (!f && e) *e = NULL;
    return f;
}

uint32_t dr_model_latent_dim(const dr_model *m) { return m ? m->latent_dim : 0; }
const float *dr_model_item_latents(const dr_model *m) { return m ? m->latent_items : NULL; }

dr_status dr_model_user_latent(const dr_model *m, dr_scorer *s, uint32_t u, const uint32_t *ctx,
                               size_t n_ctx, float *h, dr_error *err) {
    if (!m || !s || !h || (n_ctx && !ctx)) return dr__fail(err, DR_ARG, "dr_model_user_latent: NULL argument");
    if (!m->latent_dim || !m->vt->user_latent)
        return dr__fail(err, DR_UNSUPPORTED, "model '%s' has no latent space", m->vt->name);
    for (size_t k = 0; k < n_ctx; k++)
        if (ctx[k] >= m->n_items)
            return dr__fail(err, DR_RANGE, "context item %u >= n_items %u", ctx[k], m->n_items);
    return m->vt->user_latent(m->state, s->scratch, u, ctx, n_ctx, h, err);
}
