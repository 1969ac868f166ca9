/*
 * eval_modal.c - P-MODAL: evaluation of a fusion model with modalities removed at inference
 * (dr_eval_modal) and the robustness table over removal fractions (dr_eval_modal_sweep).
 *
 * DESIGN: the model is never retrained. A presence override (n_mod, n_items) is built from
 * the drop spec (dr__fusion_drop_mask per named modality: uniform, seeded, the same items for a
 * seed), the fused item latents are recomputed with it (the model's vtable refuse slot: the
 * gate closes, or the standardised feature is replaced by the modality mean = 0 with the gate
 * open), the standard harness (dr_eval_split) ranks, and the trained latents are restored, so
 * the caller's model is unchanged afterwards. The CLI and bench/bench_modal.c both call these
 * two functions.
 * Alternative rejected: copying the model per setting (the latents of a large catalogue twice,
 * for no gain: the evaluation of one setting is sequential anyway).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "model.h"

dr_modal_params dr_modal_default_params(void) {
    dr_modal_params p;
    memset(&p, 0, sizeof p);
    p.drop_seed = 42;
    return p;
}

dr_status dr_modal_parse_drop(const char *spec, dr_modal_params *p, dr_error *err) {
    if (!spec || !p) return dr__fail(err, DR_ARG, "drop: NULL argument");
    p->n_drop = 0;
    for (const char *a = spec; *a;) {
        const char *c = strchr(a, ','), *eq = strchr(a, '=');
        size_t n = c ? (size_t)(c - a) : strlen(a);
        if (!eq || eq >= a + n || eq == a || (size_t)(eq - a) >= sizeof p->drop_name[0])
            return dr__fail(err, DR_ARG, "drop: expected NAME=P in '%.*s'", (int)DR_MIN(n, 64), a);
        if (p->n_drop >= DR_MODAL_MAX)
            return dr__fail(err, DR_LIMIT, "drop: at most %d modalities", DR_MODAL_MAX);
        char num[32];
        size_t nl = (size_t)(a + n - eq - 1);
        if (nl == 0 || nl >= sizeof num)
            return dr__fail(err, DR_ARG, "drop: bad fraction in '%.*s'", (int)DR_MIN(n, 64), a);
        memcpy(num, eq + 1, nl);
        num[nl] = 0;
        char *end;
        double v = strtod(num, &end);
        if (*end || !(v >= 0.0 && v <= 1.0))
            return dr__fail(err, DR_ARG, "drop: fraction '%s' is not in [0, 1]", num);
        uint32_t k = p->n_drop++;
        memcpy(p->drop_name[k], a, (size_t)(eq - a));
        p->drop_name[k][eq - a] = 0;
        p->drop_p[k] = v;
        a += n + (c ? 1 : 0);
    }
    return DR_OK;
}

/* Re-fuses a fused model's item latents; restore: the dataset's features in the model's own
 * training mode (the latents it was trained with). */
static dr_status refuse(dr_model *m, const dr_dataset *ds, const uint8_t *over, int restore,
                        dr_impute imp, dr_error *err) {
    dr_impute trained = DR_IMPUTE_GATE;
    dr__model_fusion(m, NULL, &trained);
    dr_status st = m->vt->refuse(m, ds, over, restore ? trained : imp, err);
    /* the view's bf16 copy (and mf's built rows) follow the new latents */
    if (st == DR_OK && m->latent_dim) st = dr__model_prepare_latents(m, err);
    return st;
}

static dr_status eval_inner(const dr_dataset *ds, const dr_split *sp, dr_model *m,
                            const dr_modal_params *p, uint8_t *over, uint8_t *one,
                            dr_eval_result *out, dr_error *err) {
    dr_eval_params ep = dr_eval_default_params();
    ep.threads = p->threads;
    ep.which = p->which;
    dr_impute imp = DR_IMPUTE_GATE;
    dr_status st;
    if (p->impute && (st = dr__impute_parse(p->impute, &imp, err)) != DR_OK) return st;
    const dr_fusion *f = dr__model_fusion(m, NULL, NULL);
    bool any = false;
    for (uint32_t k = 0; k < p->n_drop; k++) any |= p->drop_p[k] > 0;
    if (!f) {
        if (any || imp != DR_IMPUTE_GATE)
            return dr__fail(err, DR_UNSUPPORTED, "P-MODAL: model '%s' fuses no modality, so none "
                           "can be removed", dr_model_name(m));
        return dr_eval_split(ds, sp, m, &ep, out, err);
    }
    const uint32_t ni = ds->n_items, M = f->n_mod;
    memset(over, 1, (size_t)M * ni);
    for (uint32_t k = 0; k < p->n_drop; k++) {
        uint32_t fk = M;
        for (uint32_t q = 0; q < M; q++)
            if (strcmp(f->name[q], p->drop_name[k]) == 0) fk = q;
        if (fk == M) {
            char have[256] = "";
            for (uint32_t q = 0; q < M; q++)
                snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s", q ? "," : "",
                         f->name[q]);
            return dr__fail(err, DR_ARG, "P-MODAL: the model fuses no modality '%s' (it fuses: "
                           "%s)", p->drop_name[k], have);
        }
        if ((st = dr__fusion_drop_mask(M, ni, fk, p->drop_p[k], p->drop_seed, one, err)) != DR_OK)
            return st;
        for (uint32_t i = 0; i < ni; i++) over[(size_t)fk * ni + i] &= one[(size_t)fk * ni + i];
    }
    if ((st = refuse(m, ds, over, 0, imp, err)) != DR_OK) return st;
    st = dr_eval_split(ds, sp, m, &ep, out, err);
    dr_error e2;
    dr_status rs = refuse(m, ds, NULL, 1, imp, st == DR_OK ? err : &e2);
    return st != DR_OK ? st : rs;
}

static dr_status buffers(const dr_dataset *ds, const dr_model *m, uint8_t **over, uint8_t **one,
                         dr_error *err) {
    const dr_fusion *f = dr__model_fusion(m, NULL, NULL);
    size_t n = (size_t)(f ? f->n_mod : 0) * ds->n_items + 1;
    *over = dr__malloc(n);
    *one = dr__malloc(n);
    if (*over && *one) return DR_OK;
    dr__free(*over);
    dr__free(*one);
    *over = *one = NULL;
    return dr__fail(err, DR_NOMEM, "P-MODAL: out of memory");
}

static dr_status check_args(const dr_dataset *ds, const dr_split *sp, const dr_model *m,
                            const void *p, const void *out, dr_error *err) {
    if (!ds || !sp || !m || !p || !out) return dr__fail(err, DR_ARG, "P-MODAL: NULL argument");
    if (m->n_items != ds->n_items)
        return dr__fail(err, DR_ARG, "P-MODAL: the model has %u items, dataset '%s' %u",
                       m->n_items, ds->name, ds->n_items);
    return DR_OK;
}

dr_status dr_eval_modal(const dr_dataset *ds, const dr_split *sp, dr_model *m,
                        const dr_modal_params *p, dr_eval_result *out, dr_error *err) {
    uint8_t *over = NULL, *one = NULL;
    dr_status st = check_args(ds, sp, m, p, out, err);
    if (st == DR_OK) st = buffers(ds, m, &over, &one, err);
    if (st == DR_OK) st = eval_inner(ds, sp, m, p, over, one, out, err);
    dr__free(over);
    dr__free(one);
    return st;
}

dr_status dr_eval_modal_sweep(const dr_dataset *ds, const dr_split *sp, dr_model *m,
                              const dr_modal_params *p, dr_modal_sweep *out, dr_error *err) {
    static const double ps[DR_MODAL_SWEEP_P] = {0.0, 0.25, 0.5, 1.0};
    static const char *const imp[2] = {"gate", "mean"};
    uint8_t *over = NULL, *one = NULL;
    dr_status st = check_args(ds, sp, m, p, out, err);
    if (st != DR_OK) return st;
    memset(out, 0, sizeof *out);
    const dr_fusion *f = dr__model_fusion(m, NULL, NULL);
    if (!f)
        return dr__fail(err, DR_UNSUPPORTED, "P-MODAL sweep: model '%s' fuses no modality",
                       dr_model_name(m));
    out->n_mod = DR_MIN(f->n_mod, (uint32_t)DR_MODAL_MAX);
    memcpy(out->p, ps, sizeof ps);
    if ((st = buffers(ds, m, &over, &one, err)) != DR_OK) return st;
    dr_modal_params q = *p;
    q.n_drop = 1;
    for (int r = 0; r < 2 && st == DR_OK; r++)
        for (uint32_t k = 0; k < out->n_mod && st == DR_OK; k++)
            for (int j = 0; j < DR_MODAL_SWEEP_P && st == DR_OK; j++) {
                snprintf(out->name[k], sizeof out->name[k], "%s", f->name[k]);
                snprintf(q.drop_name[0], sizeof q.drop_name[0], "%s", f->name[k]);
                q.drop_p[0] = ps[j];
                q.impute = imp[r];
                st = eval_inner(ds, sp, m, &q, over, one, &out->r[r][k][j], err);
            }
    dr__free(over);
    dr__free(one);
    return st;
}
