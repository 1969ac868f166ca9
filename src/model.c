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
#include "scan.h"
#include "topk.h"

dr_model_params dr_model_default_params(void) {
    dr_model_params p;
    memset(&p, 0, sizeof p);
    p.name = "pop";
    p.knn_last = 5; /* chosen across datasets on validation: bench/defaults_travel.sh */
    p.threads = 0;
    p.seed = 42;
    p.dropout = -1.0f;
    p.weight_decay = -1.0f;
    p.l2 = -1.0f;
    p.modality_dropout = -1.0f;
    p.id_dropout = -1.0f;
    p.fusion_l2 = -1.0f;
    p.init_lr_scale = -1.0f;
    p.neg_alpha = -1.0f;
    return p;
}

void dr_model_free(dr_model *m) {
    if (!m) return;
    if (m->state) m->vt->free(m->state);
    dr__free(m->latent_owned);
    dr__bf16_free(m->latent_bf16);
    for (uint32_t k = 0; k < m->n_notes; k++) {
        dr__free(m->note_key[k]);
        dr__free(m->note_val[k]);
    }
    dr__free(m->user_ids);
    dr__free(m->titles);
    dr__free(m->attr_strs);
    dr__free(m->item_ids);
    dr__strtab_free(&m->user_index);
    dr__ckpt_close(m->ckpt); /* after the state: it points into the mapping */
    dr__free(m);
}

const char *dr_model_name(const dr_model *m) { return m ? m->vt->name : ""; }

dr_status dr__model_wrap(const dr_model_vt *vt, void *state, uint32_t n_items, dr_model **out,
                        dr_error *err) {
    dr_model *m = dr__calloc(1, sizeof *m);
    if (!m) {
        vt->free(state);
        return dr__fail(err, DR_NOMEM, "%s: out of memory", vt->name);
    }
    m->vt = vt;
    m->state = state;
    m->n_items = n_items;
    *out = m;
    return DR_OK;
}

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
    if (m->latent_dim && !(s->h = dr__calloc(m->latent_dim, sizeof *s->h))) {
        st = dr__fail(err, DR_NOMEM, "dr_scorer_create: out of memory");
        goto fail;
    }
    s->h_dim = m->latent_dim;
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
    dr__free(s->h);
    dr__free(s);
}

/* A model with a dot-product view scores through the fixed-order scan (scan.h): the same
 * bits on every CPU and in every path (evaluation, dr_recommend, the server). */
static int has_view(const dr_model *m, const dr_scorer *s) {
    return m->latent_dim && m->latent_items && m->vt->user_latent && s->h &&
           s->h_dim == m->latent_dim;
}

static dr_status check_ctx(const dr_model *m, const uint32_t *ctx, size_t n_ctx, const char *fn,
                           dr_error *err) {
    for (size_t k = 0; k < n_ctx; k++)
        if (ctx[k] >= m->n_items)
            return dr__fail(err, DR_RANGE, "%s: context item %u >= n_items %u", fn, ctx[k],
                           m->n_items);
    return DR_OK;
}

dr_status dr_model_score(const dr_model *m, dr_scorer *s, uint32_t u, const uint32_t *ctx,
                         size_t n_ctx, float *scores, dr_error *err) {
    if (!m || !s || !scores || (n_ctx && !ctx))
        return dr__fail(err, DR_ARG, "dr_model_score: NULL argument");
    if (s->m != m) return dr__fail(err, DR_ARG, "dr_model_score: scorer belongs to another model");
    dr_status st = check_ctx(m, ctx, n_ctx, "dr_model_score", err);
    if (st != DR_OK) return st;
    if (has_view(m, s)) {
        if ((st = m->vt->user_latent(m->state, s->scratch, u, ctx, n_ctx, s->h, err)) != DR_OK)
            return st;
        dr__scan_f32(m->latent_items, m->n_items, m->latent_dim, s->h, scores);
        return DR_OK;
    }
    return m->vt->score(m->state, s->scratch, u, ctx, n_ctx, scores, err);
}

dr_status dr_recommend(const dr_model *m, dr_scorer *s, uint32_t u, const uint32_t *ctx,
                       size_t n_ctx, uint32_t k, dr_rec *out, uint32_t *n_out, dr_error *err) {
    if (!m || !s || !out || !n_out) return dr__fail(err, DR_ARG, "dr_recommend: NULL argument");
    *n_out = 0;
    if (k == 0 || k > DR_RECOMMEND_MAX_K)
        return dr__fail(err, DR_RANGE, "dr_recommend: k = %u is outside 1..%d", k,
                       DR_RECOMMEND_MAX_K);
    if (s->m != m) return dr__fail(err, DR_ARG, "dr_recommend: scorer belongs to another model");
    if (n_ctx && !ctx) return dr__fail(err, DR_ARG, "dr_recommend: NULL argument");
    dr_status st;
    if (!s->topk) { /* warm-up: the only allocation of the serving path */
        if ((st = dr__topk_scratch_create(m->n_items, DR_RECOMMEND_MAX_K, &s->topk, err)) != DR_OK)
            return st;
    }
    if (has_view(m, s)) { /* the scan, through the bf16 copy when the model has one */
        if ((st = check_ctx(m, ctx, n_ctx, "dr_recommend", err)) != DR_OK) return st;
        if ((st = m->vt->user_latent(m->state, s->scratch, u, ctx, n_ctx, s->h, err)) != DR_OK)
            return st;
        st = dr__topk_scan_bf16(m->latent_bf16, m->latent_items, m->n_items, m->latent_dim, s->h,
                                ctx, n_ctx, k, s->topk, s->items, s->top, n_out, err);
    } else {
        if (!s->scores && !(s->scores = dr__malloc((size_t)m->n_items * sizeof *s->scores)))
            return dr__fail(err, DR_NOMEM, "dr_recommend: out of memory");
        if ((st = dr_model_score(m, s, u, ctx, n_ctx, s->scores, err)) != DR_OK) return st;
        st = dr__topk_select(s->scores, m->n_items, ctx, n_ctx, k, s->topk, s->items, s->top,
                             n_out, err);
    }
    if (st != DR_OK) return st;
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
    dr__bf16_free(m->latent_bf16);
    m->latent_bf16 = NULL;
    m->latent_owned = owned;
    m->latent_items = items;
    m->latent_dim = dim;
    if (dim && dr__bf16_wanted(m->n_items, dim)) {
        if ((st = dr__bf16_create(m->n_items, dim, &m->latent_bf16, err)) != DR_OK) return st;
        dr__bf16_set_rows(m->latent_bf16, items, dim, 0, m->n_items);
    }
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

/* ------------------------------------------------------------------ warm start */

/* map (n) of the ids of the new table `now` to the init's rows: ids[r] (n_init) is init row r's
 * id; the first of duplicate ids wins. Returns how many rows of `now` are known. */
static uint32_t warm_match(const dr_strtab *now, uint32_t n, const char *const *ids,
                           uint32_t n_init, uint32_t *map) {
    uint32_t known = 0;
    for (uint32_t k = 0; k < n; k++) map[k] = DR_WARM_NEW;
    for (uint32_t r = 0; r < n_init; r++) {
        uint32_t k = dr__strtab_find(now, ids[r], strlen(ids[r]));
        if (k < n && map[k] == DR_WARM_NEW) {
            map[k] = r;
            known++;
        }
    }
    return known;
}

dr_status dr__warm_map_build(const dr_model *init, uint32_t init_user_rows, const dr_dataset *ds,
                            dr_warm_map *out, dr_error *err) {
    if (!out) return dr__fail(err, DR_ARG, "warm start: out is NULL");
    memset(out, 0, sizeof *out);
    if (!init || !ds) return dr__fail(err, DR_ARG, "warm start: NULL model or dataset");
    const char *kind = init->vt->name;
    out->n_users = ds->n_users;
    out->n_items = ds->n_items;
    if (!init->item_ids || (init_user_rows && !init->user_ids)) { /* fitted in memory */
        if (ds->n_items != init->n_items || (init_user_rows && ds->n_users != init_user_rows))
            return dr__fail(err, DR_ARG, "%s: warm start from a model without external ids (fitted "
                           "in memory, not loaded from a checkpoint) needs the same users and "
                           "items: it has %u users and %u items, dataset '%s' %u and %u", kind,
                           init_user_rows, init->n_items, ds->name, ds->n_users, ds->n_items);
        out->known_users = init_user_rows ? ds->n_users : 0;
        out->known_items = ds->n_items;
        return DR_OK;
    }
    if (init_user_rows && init->n_users != init_user_rows)
        return dr__fail(err, DR_FORMAT, "%s: warm start: the init checkpoint names %u users for "
                       "%u user rows", kind, init->n_users, init_user_rows);
    out->item = dr__malloc(((size_t)ds->n_items + 1) * sizeof *out->item);
    if (init_user_rows) out->user = dr__malloc(((size_t)ds->n_users + 1) * sizeof *out->user);
    if (!out->item || (init_user_rows && !out->user)) {
        dr__warm_map_free(out);
        return dr__fail(err, DR_NOMEM, "%s: warm start: out of memory for the id maps", kind);
    }
    out->known_items = warm_match(&ds->items, ds->n_items, init->item_ids, init->n_items, out->item);
    if (out->user)
        out->known_users = warm_match(&ds->users, ds->n_users, init->user_ids, init->n_users,
                                      out->user);
    dr__log(DR_LOG_INFO, "%s: warm start: %u of %u users and %u of %u items known by external id",
           kind, out->known_users, init_user_rows ? ds->n_users : 0, out->known_items, ds->n_items);
    return DR_OK;
}

void dr__warm_map_free(dr_warm_map *w) {
    if (!w) return;
    dr__free(w->user);
    dr__free(w->item);
    memset(w, 0, sizeof *w);
}

dr_status dr__warm_map_check(const dr_warm_map *map, int users, uint32_t n, uint32_t n_init,
                            const char *who, dr_error *err) {
    const char *what = users ? "users" : "items";
    const uint32_t *rows = map ? (users ? map->user : map->item) : NULL;
    if (rows && (users ? map->n_users : map->n_items) != n)
        return dr__fail(err, DR_ARG, "%s: warm start: the id map is for %u %s, the dataset has %u",
                       who, users ? map->n_users : map->n_items, what, n);
    bool ok = rows || n == n_init;
    for (uint32_t k = 0; rows && k < n && ok; k++) ok = rows[k] == DR_WARM_NEW || rows[k] < n_init;
    if (!ok)
        return dr__fail(err, DR_ARG, "%s: warm start: the init model's %u %s do not match the "
                       "dataset's %u row for row (match them by external id, dr__warm_map_build)",
                       who, n_init, what, n);
    return DR_OK;
}

void dr__warm_copy_rows(float *dst, const float *src, const uint32_t *map, uint32_t n,
                       size_t width) {
    for (uint32_t k = 0; k < n; k++) {
        const uint32_t r = dr__warm_row(map, k);
        if (r != DR_WARM_NEW) memcpy(dst + (size_t)k * width, src + (size_t)r * width,
                                     width * sizeof *dst);
    }
}
