/*
 * fusion.c - gated multimodal fusion (fusion.h): standardisation, the forward/backward pair
 * of one item, materialisation of all fused item latents, and inference-time feature removal.
 *
 * DESIGN: z_i = e_i + sum_m g_im y_im, y_im = P_m xs_im + b_m, g_im = p_im sigmoid(u_m .
 * [e_i ; y_im] + c_m). Features are standardised per dimension with the mean and variance of
 * the PRESENT rows (the loaders mark zero/NaN rows missing), so "mean imputation" is exactly a
 * zero standardised row with the gate held open, and gating is a multiplication by 0: both
 * modes share one code path, and the comparison isolates what closing the gate buys. The
 * projection is affine (a bias b_m, as in the Linear layers of MMRec models): without it a
 * mean-imputed row would project to 0 and mean imputation would be the gate in disguise.
 * All learned tensors are one block w (per modality P | b | u | c) so a checkpoint stores one
 * section and the optimiser walks one array (as in karpathy/llm.c); forward keeps y, sigmoid and
 * gate per modality in caller scratch and backward is its exact adjoint (checked against central
 * finite differences in tests/unit/test_fusion.c). Backward never materialises dy: row k of dP
 * gets dy_k * xs, so it needs no scratch. With zero modalities z = e bit for bit.
 * Alternatives rejected: concatenating [e; x] into one MLP (a missing modality then shifts
 * every output dimension, and the id-only model is not a special case of it), and imputing
 * missing rows at load time (the gate could not tell imputed from observed features).
 * The checkpoint form of a fusion (dr__fusion_save / dr__fusion_load) is here too: mf and
 * sasrec write and read it the same way from their own save and load.
 */
#include "fusion.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>

#include "ckpt.h"
#include "rng.h"

#define FUSION_VAR_EPS 1e-6

dr_status dr__impute_parse(const char *s, dr_impute *out, dr_error *err) {
    if (s && strcmp(s, "gate") == 0) *out = DR_IMPUTE_GATE;
    else if (s && strcmp(s, "mean") == 0) *out = DR_IMPUTE_MEAN;
    else return dr__fail(err, DR_ARG, "impute mode '%s' is not gate or mean", s ? s : "(null)");
    return DR_OK;
}

const char *dr__impute_name(dr_impute m) { return m == DR_IMPUTE_MEAN ? "mean" : "gate"; }

size_t dr__fusion_act_floats(const dr_fusion *f) {
    return (size_t)f->n_mod * ((size_t)f->d + 2);
}

void dr__fusion_free(dr_fusion *f) {
    if (!f) return;
    dr__free(f->w);
    dr__free(f->stats);
    memset(f, 0, sizeof *f);
}

dr_status dr__fusion_copy(dr_fusion *dst, const dr_fusion *src, uint32_t want_d, dr_error *err) {
    memset(dst, 0, sizeof *dst);
    if (!src || !src->w || !src->stats) return dr__fail(err, DR_ARG, "fusion copy: NULL argument");
    if (src->d != want_d || src->n_mod == 0 || src->n_mod > DR_MAX_MODALITIES)
        return dr__fail(err, DR_ARG, "fusion copy: fusion d=%u with %u modalities does not fit a "
                       "model with d=%u", src->d, src->n_mod, want_d);
    size_t np = 0, ns = 0;
    for (uint32_t k = 0; k < src->n_mod; k++) {
        if (src->off[k] != np || src->soff[k] != ns || src->dim[k] == 0)
            return dr__fail(err, DR_ARG, "fusion copy: modality '%s' has an inconsistent layout",
                           src->name[k]);
        np += (size_t)src->d * src->dim[k] + 3 * (size_t)src->d + 1;
        ns += 2 * (size_t)src->dim[k];
    }
    if (np != src->n_params || ns != src->n_stats)
        return dr__fail(err, DR_ARG, "fusion copy: %zu parameters / %zu statistics, the modality "
                       "sizes give %zu / %zu", src->n_params, src->n_stats, np, ns);
    *dst = *src;
    dst->w = dr__malloc(np * sizeof *dst->w);
    dst->stats = dr__malloc(ns * sizeof *dst->stats);
    if (!dst->w || !dst->stats) {
        dr__fusion_free(dst);
        return dr__fail(err, DR_NOMEM, "fusion copy: out of memory");
    }
    memcpy(dst->w, src->w, np * sizeof *dst->w);
    memcpy(dst->stats, src->stats, ns * sizeof *dst->stats);
    return DR_OK;
}

static int find_modality(const dr_dataset *ds, const char *name) {
    for (int m = 0; m < ds->n_mod; m++)
        if (strcmp(ds->mod[m].name, name) == 0) return m;
    return -1;
}

dr_status dr__fusion_select(const dr_dataset *ds, const char *spec, uint32_t *mask,
                           dr_error *err) {
    *mask = 0;
    if (!spec || !*spec || strcmp(spec, "none") == 0) return DR_OK;
    if (strcmp(spec, "all") == 0) {
        *mask = ds->n_mod >= 32 ? UINT32_MAX : (1u << ds->n_mod) - 1;
        return DR_OK;
    }
    char have[256] = "";
    for (int m = 0; m < ds->n_mod; m++)
        snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s", m ? "," : "",
                 ds->mod[m].name);
    for (const char *a = spec; *a;) {
        const char *c = strchr(a, ',');
        size_t n = c ? (size_t)(c - a) : strlen(a);
        int found = -1;
        for (int m = 0; m < ds->n_mod; m++)
            if (strlen(ds->mod[m].name) == n && memcmp(ds->mod[m].name, a, n) == 0) found = m;
        if (found < 0)
            return dr__fail(err, DR_ARG, "modalities: dataset '%s' has no modality '%.*s' (it "
                           "has: %s)", ds->name, (int)DR_MIN(n, 64), a, *have ? have : "none");
        *mask |= 1u << found;
        a += n + (c ? 1 : 0);
    }
    return DR_OK;
}

dr_status dr__fusion_init(dr_fusion *f, const dr_dataset *ds, uint32_t mask, uint32_t d,
                         float init_std, uint64_t seed, dr_error *err) {
    dr_status st;
    memset(f, 0, sizeof *f);
    if (!ds) return dr__fail(err, DR_ARG, "fusion: no dataset");
    if (d == 0 || d > DR_MAX_DIM)
        return dr__fail(err, DR_ARG, "fusion: d must be in 1..%u (got %u)", DR_MAX_DIM, d);
    if (ds->n_mod < 32 && (mask >> ds->n_mod) != 0)
        return dr__fail(err, DR_ARG, "fusion: modality mask 0x%x names modalities the dataset "
                       "'%s' does not have (it has %d)", mask, ds->name, ds->n_mod);
    f->d = d;
    for (int m = 0; m < ds->n_mod; m++) {
        if (!(mask & (1u << m))) continue;
        const dr_modality *md = &ds->mod[m];
        if (md->dim == 0 || md->dim > DR_MAX_FEATURE_DIM || !md->x || !md->present)
            return dr__fail(err, DR_ARG, "fusion: modality '%s' has dimension %u (1..%u)",
                           md->name, md->dim, DR_MAX_FEATURE_DIM);
        uint32_t k = f->n_mod++;
        f->dim[k] = md->dim;
        snprintf(f->name[k], sizeof f->name[k], "%s", md->name);
        f->off[k] = f->n_params;
        f->n_params += (size_t)d * md->dim + 3 * (size_t)d + 1;
        f->soff[k] = f->n_stats;
        f->n_stats += 2 * (size_t)md->dim;
    }
    if (f->n_mod == 0) return DR_OK;
    f->w = dr__calloc(f->n_params, sizeof *f->w);
    f->stats = dr__calloc(f->n_stats, sizeof *f->stats);
    double *acc = dr__calloc(2 * (size_t)DR_MAX_FEATURE_DIM, sizeof *acc); /* sum | sum of squares */
    if (!f->w || !f->stats || !acc) {
        dr__free(acc);
        st = dr__fail(err, DR_NOMEM, "fusion: out of memory");
        goto fail;
    }
    for (uint32_t k = 0; k < f->n_mod; k++) {
        const dr_modality *md = &ds->mod[find_modality(ds, f->name[k])];
        const uint32_t dim = md->dim;
        memset(acc, 0, 2 * (size_t)dim * sizeof *acc);
        size_t n_present = 0;
        for (uint32_t i = 0; i < ds->n_items; i++) {
            if (!md->present[i]) continue;
            const float *x = md->x + (size_t)i * dim;
            for (uint32_t j = 0; j < dim; j++) {
                if (!isfinite(x[j])) {
                    dr__free(acc);
                    st = dr__fail(err, DR_FORMAT, "fusion: modality '%s' item %u dimension %u is "
                                 "not finite", md->name, i, j);
                    goto fail;
                }
                acc[j] += x[j];
                acc[dim + j] += (double)x[j] * x[j];
            }
            n_present++;
        }
        if (n_present == 0) {
            dr__free(acc);
            st = dr__fail(err, DR_ARG, "fusion: modality '%s' has no present item", md->name);
            goto fail;
        }
        float *mean = f->stats + f->soff[k], *inv = mean + dim;
        for (uint32_t j = 0; j < dim; j++) {
            double mu = acc[j] / (double)n_present;
            double var = acc[dim + j] / (double)n_present - mu * mu;
            mean[j] = (float)mu;
            inv[j] = (float)(1.0 / sqrt((var > 0 ? var : 0) + FUSION_VAR_EPS));
        }
    }
    dr__free(acc);
    dr_rng rng;
    dr__rng_seed(&rng, seed, 0xF05E);
    for (uint32_t k = 0; k < f->n_mod; k++) {
        float *P = f->w + f->off[k], *u = P + (size_t)d * f->dim[k] + d;
        double sp = init_std / sqrt((double)f->dim[k]), su = 1.0 / sqrt(2.0 * d);
        for (size_t j = 0; j < (size_t)d * f->dim[k]; j++) P[j] = (float)(dr__rng_normal(&rng) * sp);
        for (uint32_t j = 0; j < 2 * d; j++) u[j] = (float)(dr__rng_normal(&rng) * su * 0.1);
    }
    return DR_OK;
fail:
    dr__fusion_free(f);
    return st;
}

void dr__fusion_input_free(dr_fusion_input *in) {
    if (!in) return;
    for (int m = 0; m < DR_MAX_MODALITIES; m++) dr__free(in->xs[m]);
    dr__free(in->pres);
    dr__free(in->zero);
    memset(in, 0, sizeof *in);
}

/* "name:dim,..." of init's modalities (ds NULL) or of those mask selects over ds; "ids only"
 * for none. */
static void warm_describe(const dr_fusion *init, const dr_dataset *ds, uint32_t mask, char *buf,
                          size_t cap) {
    buf[0] = 0;
    for (uint32_t m = 0; !ds && init && m < init->n_mod; m++)
        snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s:%u", m ? "," : "", init->name[m],
                 init->dim[m]);
    for (uint32_t m = 0; ds && m < 32; m++) {
        if (!(mask & (1u << m))) continue;
        const size_t at = strlen(buf);
        if ((int)m < ds->n_mod)
            snprintf(buf + at, cap - at, "%s%s:%u", at ? "," : "", ds->mod[m].name, ds->mod[m].dim);
        else
            snprintf(buf + at, cap - at, "%smodality #%u (not in dataset '%s')", at ? "," : "", m,
                     ds->name);
    }
    if (!buf[0]) snprintf(buf, cap, "ids only");
}

dr_status dr__fusion_warm_check(const dr_fusion *init, const dr_dataset *ds, uint32_t mask,
                               const char *who, dr_error *err) {
    if (init && init->n_mod == 0) init = NULL;
    char have[512], want[512];
    warm_describe(init, NULL, 0, have, sizeof have);
    warm_describe(NULL, ds, mask, want, sizeof want);
    if (!init != !mask)
        return dr__fail(err, DR_UNSUPPORTED, "%s: warm start between an id-only and a fused model "
                       "is not supported: the init model fuses %s, this fit %s", who, have, want);
    if (!init) return DR_OK; /* both ids only */
    uint32_t k = 0;
    bool same = true;
    for (int m = 0; m < ds->n_mod && m < 32; m++) {
        if (!(mask & (1u << m))) continue;
        same = same && k < init->n_mod && !strcmp(init->name[k], ds->mod[m].name) &&
               init->dim[k] == ds->mod[m].dim;
        k++;
    }
    if (!same || k != init->n_mod || (ds->n_mod < 32 && (mask >> ds->n_mod)))
        return dr__fail(err, DR_ARG, "%s: warm start: the init model fuses %s, this fit %s (the "
                       "modalities and their dimensions must agree)", who, have, want);
    return DR_OK;
}

void dr__fusion_warm_copy(dr_fusion *f, const dr_fusion *init) {
    memcpy(f->w, init->w, DR_MIN(f->n_params, init->n_params) * sizeof *f->w);
    memcpy(f->stats, init->stats, DR_MIN(f->n_stats, init->n_stats) * sizeof *f->stats);
}

dr_status dr__fusion_input_build(const dr_fusion *f, const dr_dataset *ds,
                                const uint8_t *override, dr_fusion_input *in, dr_error *err) {
    dr_status st;
    memset(in, 0, sizeof *in);
    in->n_items = ds->n_items;
    in->n_mod = f->n_mod;
    uint32_t max_dim = 1;
    for (uint32_t k = 0; k < f->n_mod; k++) max_dim = DR_MAX(max_dim, f->dim[k]);
    in->pres = dr__calloc((size_t)f->n_mod * ds->n_items + 1, 1);
    in->zero = dr__calloc(max_dim, sizeof *in->zero);
    if (!in->pres || !in->zero) goto nomem;
    for (uint32_t k = 0; k < f->n_mod; k++) {
        int mi = find_modality(ds, f->name[k]);
        if (mi < 0) {
            st = dr__fail(err, DR_ARG, "fusion: dataset '%s' has no modality '%s'", ds->name,
                         f->name[k]);
            goto fail;
        }
        const dr_modality *md = &ds->mod[mi];
        const uint32_t dim = f->dim[k];
        if (md->dim != dim) {
            st = dr__fail(err, DR_ARG, "fusion: modality '%s' has dimension %u, the model was "
                         "trained with %u", md->name, md->dim, dim);
            goto fail;
        }
        in->xs[k] = dr__calloc((size_t)ds->n_items * dim + 1, sizeof(float));
        if (!in->xs[k]) goto nomem;
        const float *mean = f->stats + f->soff[k], *inv = mean + dim;
        uint8_t *pr = in->pres + (size_t)k * ds->n_items;
        for (uint32_t i = 0; i < ds->n_items; i++) {
            pr[i] = md->present[i] && (!override || override[(size_t)k * ds->n_items + i]);
            if (!pr[i]) continue;
            const float *x = md->x + (size_t)i * dim;
            float *o = in->xs[k] + (size_t)i * dim;
            for (uint32_t j = 0; j < dim; j++) {
                if (!isfinite(x[j])) {
                    st = dr__fail(err, DR_FORMAT, "fusion: modality '%s' item %u dimension %u "
                                 "is not finite", md->name, i, j);
                    goto fail;
                }
                o[j] = (x[j] - mean[j]) * inv[j];
            }
        }
    }
    return DR_OK;
nomem:
    st = dr__fail(err, DR_NOMEM, "fusion: out of memory for the features");
fail:
    dr__fusion_input_free(in);
    return st;
}

static inline float sigmoidf(float s) {
    return s >= 0 ? 1.0f / (1.0f + expf(-s)) : expf(s) / (1.0f + expf(s));
}

void dr__fusion_forward(const dr_fusion *f, const float *e, const float *const *x,
                       const float *gate, float *z, float *act) {
    const uint32_t d = f->d, M = f->n_mod;
    float *Y = act, *S = act + (size_t)M * d, *G = S + M; /* (M, d) | (M) | (M) */
    memcpy(z, e, (size_t)d * sizeof *z);
    for (uint32_t m = 0; m < M; m++) {
        const float *P = f->w + f->off[m], *b = P + (size_t)d * f->dim[m], *u = b + d;
        const float c = u[2 * d];
        float *y = Y + (size_t)m * d;
        if (gate[m] == 0.0f) { /* closed: contributes nothing; y is not needed */
            memset(y, 0, (size_t)d * sizeof *y);
            S[m] = 0.0f;
            G[m] = 0.0f;
            continue;
        }
        memcpy(y, b, (size_t)d * sizeof *y);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)d, (int)f->dim[m], 1.0f, P,
                    (int)f->dim[m], x[m], 1, 1.0f, y, 1);
        float s = c;
        for (uint32_t k = 0; k < d; k++) s += u[k] * e[k] + u[d + k] * y[k];
        S[m] = sigmoidf(s);
        G[m] = gate[m] * S[m];
        for (uint32_t k = 0; k < d; k++) z[k] += G[m] * y[k];
    }
}

void dr__fusion_backward(const dr_fusion *f, const float *e, const float *const *x,
                        const float *act, const float *dz, float *de, float *dw) {
    const uint32_t d = f->d, M = f->n_mod;
    const float *Y = act, *S = act + (size_t)M * d, *G = S + M;
    memcpy(de, dz, (size_t)d * sizeof *de);
    for (uint32_t m = 0; m < M; m++) {
        if (G[m] == 0.0f && S[m] == 0.0f) continue; /* gate closed in forward */
        const uint32_t dim = f->dim[m];
        const float *P = f->w + f->off[m], *u = P + (size_t)d * dim + d;
        float *dP = dw + f->off[m], *db = dP + (size_t)d * dim, *du = db + d;
        const float *y = Y + (size_t)m * d;
        float dg = 0.0f;
        for (uint32_t k = 0; k < d; k++) dg += dz[k] * y[k];
        /* g = p * sigmoid(s): dg/ds = p * sig * (1 - sig) = G * (1 - sig) */
        const float ds = dg * G[m] * (1.0f - S[m]);
        for (uint32_t k = 0; k < d; k++) {
            du[k] += ds * e[k];
            du[d + k] += ds * y[k];
            de[k] += ds * u[k];
            const float dy = G[m] * dz[k] + ds * u[d + k];
            db[k] += dy;
            if (dy != 0.0f) cblas_saxpy((int)dim, dy, x[m], 1, dP + (size_t)k * dim, 1);
        }
        du[2 * d] += ds;
    }
}

void dr__fusion_materialise(const dr_fusion *f, const float *e, const dr_fusion_input *in,
                           dr_impute impute, float *z, float *act) {
    const uint32_t d = f->d;
    const float *x[DR_MAX_MODALITIES];
    float gate[DR_MAX_MODALITIES];
    for (uint32_t i = 0; i < in->n_items; i++) {
        for (uint32_t m = 0; m < f->n_mod; m++) {
            const bool p = in->pres[(size_t)m * in->n_items + i] != 0;
            x[m] = p ? in->xs[m] + (size_t)i * f->dim[m] : in->zero;
            gate[m] = (p || impute == DR_IMPUTE_MEAN) ? 1.0f : 0.0f;
        }
        dr__fusion_forward(f, e + (size_t)i * d, x, gate, z + (size_t)i * d, act);
    }
}

dr_status dr__fusion_drop_mask(uint32_t n_mod, uint32_t n_items, uint32_t m, double p,
                              uint64_t seed, uint8_t *over, dr_error *err) {
    if (m >= n_mod || !(p >= 0.0 && p <= 1.0))
        return dr__fail(err, DR_ARG, "fusion: drop of modality %u (of %u) with fraction %g: "
                       "needs a fused modality and 0 <= p <= 1", m, n_mod, p);
    memset(over, 1, (size_t)n_mod * n_items);
    size_t n_drop = (size_t)llround(p * (double)n_items);
    if (n_drop == 0) return DR_OK;
    uint32_t *perm = dr__malloc((size_t)n_items * sizeof *perm);
    if (!perm) return dr__fail(err, DR_NOMEM, "fusion: out of memory for the drop mask");
    for (uint32_t i = 0; i < n_items; i++) perm[i] = i;
    dr_rng rng;
    dr__rng_seed(&rng, seed, 0xD0);
    for (uint32_t k = n_items; k > 1; k--) {
        uint32_t r = (uint32_t)dr__rng_below(&rng, k), t = perm[k - 1];
        perm[k - 1] = perm[r];
        perm[r] = t;
    }
    for (size_t k = 0; k < n_drop; k++) over[(size_t)m * n_items + perm[k]] = 0;
    dr__free(perm);
    return DR_OK;
}

/* ------------------------------------------------------------------ checkpoints */

/* A fusion in a checkpoint: metadata fusion_modalities "name:dim,..." and fusion_impute,
 * sections PREFIX.item_id (rows, d) (the id embeddings e), PREFIX.fusion (n_params) and
 * PREFIX.fusion_stats (n_stats). */
dr_status dr__fusion_save(dr_ckpt_writer *w, const char *prefix, const dr_fusion *f,
                         const float *eid, uint64_t rows, dr_impute imp, dr_error *err) {
    char mods[DR_MAX_MODALITIES * 48] = "", name[3][48];
    for (uint32_t k = 0; k < f->n_mod; k++)
        snprintf(mods + strlen(mods), sizeof mods - strlen(mods), "%s%s:%u", k ? "," : "",
                 f->name[k], f->dim[k]);
    snprintf(name[0], sizeof name[0], "%s.item_id", prefix);
    snprintf(name[1], sizeof name[1], "%s.fusion", prefix);
    snprintf(name[2], sizeof name[2], "%s.fusion_stats", prefix);
    uint64_t se[2] = {rows, f->d}, sw[1] = {f->n_params}, ss[1] = {f->n_stats};
    dr_status st;
    if ((st = dr__ckpt_add_meta(w, "fusion_modalities", mods, err)) ||
        (st = dr__ckpt_add_meta(w, "fusion_impute", dr__impute_name(imp), err)) ||
        (st = dr__ckpt_add(w, name[0], DR_DT_F32, 2, se, eid, err)) ||
        (st = dr__ckpt_add(w, name[1], DR_DT_F32, 1, sw, f->w, err)))
        return st;
    return dr__ckpt_add(w, name[2], DR_DT_F32, 1, ss, f->stats, err);
}

/* Reads what dr__fusion_save wrote: *f gets the shape, w and stats pointing into the mapping (read
 * only), *eid the id embeddings; *found = 0 when the checkpoint has no fusion. Every name,
 * dimension and section shape is checked before use. */
dr_status dr__fusion_load(const dr_ckpt *c, const char *prefix, uint32_t d, uint64_t rows,
                         dr_fusion *f, const float **eid, dr_impute *imp, int *found,
                         dr_error *err) {
    const char *mods = dr__ckpt_meta(c, "fusion_modalities"), *path = dr__ckpt_path(c);
    *found = 0;
    if (!mods) return DR_OK;
    memset(f, 0, sizeof *f);
    f->d = d;
    for (const char *a = mods; *a;) {
        const char *comma = strchr(a, ','), *colon = strchr(a, ':');
        size_t n = comma ? (size_t)(comma - a) : strlen(a);
        uint32_t dim;
        if (f->n_mod >= DR_MAX_MODALITIES || !colon || colon >= a + n || colon == a ||
            (size_t)(colon - a) >= sizeof f->name[0] ||
            !dr__parse_u32(colon + 1, (size_t)(a + n - colon - 1), &dim) || dim == 0 ||
            dim > (1u << 20))
            return dr__fail(err, DR_FORMAT, "%s: metadata fusion_modalities '%.64s' is not "
                           "name:dim,...", path, mods);
        uint32_t k = f->n_mod++;
        memcpy(f->name[k], a, (size_t)(colon - a));
        f->dim[k] = dim;
        f->off[k] = f->n_params;
        f->soff[k] = f->n_stats;
        f->n_params += (size_t)d * dim + 3 * (size_t)d + 1;
        f->n_stats += 2 * (size_t)dim;
        a += n + (comma ? 1 : 0);
    }
    if (f->n_mod == 0)
        return dr__fail(err, DR_FORMAT, "%s: metadata fusion_modalities is empty", path);
    const char *iv = dr__ckpt_meta(c, "fusion_impute");
    if (!iv || dr__impute_parse(iv, imp, NULL) != DR_OK)
        return dr__fail(err, DR_FORMAT, "%s: metadata fusion_impute missing or not gate|mean", path);
    uint64_t se[2] = {rows, d}, sw[1] = {f->n_params}, ss[1] = {f->n_stats};
    const void *pe, *pw, *ps;
    char names[3][48];
    snprintf(names[0], sizeof names[0], "%s.item_id", prefix);
    snprintf(names[1], sizeof names[1], "%s.fusion", prefix);
    snprintf(names[2], sizeof names[2], "%s.fusion_stats", prefix);
    for (int k = 0; k < 3; k++) {
        dr_status st = k == 0 ? dr__ckpt_find(c, names[k], DR_DT_F32, 2, se, &pe, err)
                     : k == 1 ? dr__ckpt_find(c, names[k], DR_DT_F32, 1, sw, &pw, err)
                              : dr__ckpt_find(c, names[k], DR_DT_F32, 1, ss, &ps, err);
        if (st == DR_NOTFOUND)
            return dr__fail(err, DR_FORMAT, "%s: section '%s' is missing", path, names[k]);
        if (st != DR_OK) return st;
    }
    f->w = (float *)(uintptr_t)pw; /* read only: the attach functions copy */
    f->stats = (float *)(uintptr_t)ps;
    *eid = pe;
    *found = 1;
    return DR_OK;
}
