/*
 * adapter_io.c - the online adapter's state file: dr__adapter_save / dr__adapter_load (a ckpt.h
 * checkpoint of kind "adapter").
 *
 * DESIGN
 * The state is what the next update depends on: theta, the Fisher F and the anchor theta*, the z'
 * cache, the pending G batch (candidates' inputs and dL/dz', counters), the sampler's RNG state,
 * the update and version counters and the windows (adapter_window.c's own arrays, prefix "w.").
 * So an adapter loaded from a file continues exactly as the one that saved it. Base latents are
 * the caller's: only rows changed by dr__adapter_set_item_base are saved (with their cold flags);
 * every other row of the file must equal this adapter's base, else the file was made over another
 * base model and is refused. The item inputs are rebuilt from the windows, and after a load every
 * snapshot buffer is refilled in full on its next publication.
 */
#include "adapter.h"
#include "adapter_int.h"

#include <stdio.h>

dr_status dr__adapter_save(const dr_adapter *a, const char *path, dr_error *err) {
    dr_ckpt_writer *w = NULL;
    dr_status st = dr__ckpt_writer_create(&w, err);
    if (st != DR_OK) return st;
    uint64_t sc[8] = {a->rng.s[0], a->rng.s[1], a->rng.s[2], a->rng.s[3],
                      a->n_updates, a->version, a->b_rows, a->b_events};
    uint64_t s_par[1] = {a->n_params}, s_z[2] = {a->n_items, a->d},
             s_b[2] = {(uint64_t)a->p.g_batch * a->ncand, a->X},
             s_bd[2] = {(uint64_t)a->p.g_batch * a->ncand, a->d}, s_sc[1] = {8},
             s_n[1] = {a->n_items};
    char v[64];
    snprintf(v, sizeof v, "%u", a->d);
    if ((st = dr__ckpt_add_meta(w, "kind", "adapter", err)) != DR_OK) goto fail;
    if ((st = dr__ckpt_add_meta(w, "d", v, err)) != DR_OK) goto fail;
    snprintf(v, sizeof v, "%u", a->hd);
    if ((st = dr__ckpt_add_meta(w, "hidden", v, err)) != DR_OK) goto fail;
    if ((st = dr__ckpt_add(w, "theta", DR_DT_F32, 1, s_par, a->theta, err)) != DR_OK) goto fail;
    if ((st = dr__ckpt_add(w, "fisher", DR_DT_F32, 1, s_par, a->fisher, err)) != DR_OK) goto fail;
    if ((st = dr__ckpt_add(w, "anchor", DR_DT_F32, 1, s_par, a->anchor, err)) != DR_OK) goto fail;
    if ((st = dr__ckpt_add(w, "zp", DR_DT_F32, 2, s_z, a->zp, err)) != DR_OK) goto fail;
    if ((st = dr__ckpt_add(w, "z0", DR_DT_F32, 2, s_z, a->z0, err)) != DR_OK) goto fail;
    if ((st = dr__ckpt_add(w, "rebased", DR_DT_U8, 1, s_n, a->rebased, err)) != DR_OK) goto fail;
    if ((st = dr__ckpt_add(w, "cold", DR_DT_U8, 1, s_n, a->cold, err)) != DR_OK) goto fail;
    if ((st = dr__ckpt_add(w, "batch_x", DR_DT_F32, 2, s_b, a->bx, err)) != DR_OK) goto fail;
    if ((st = dr__ckpt_add(w, "batch_dz", DR_DT_F32, 2, s_bd, a->bdz, err)) != DR_OK) goto fail;
    if ((st = dr__ckpt_add(w, "scalars", DR_DT_I64, 1, s_sc, sc, err)) != DR_OK) goto fail;
    if ((st = dr__window_save(a->win, w, "w.", err)) != DR_OK) goto fail;
    st = dr__ckpt_write(w, path, err);
fail:
    dr__ckpt_writer_free(w);
    return st;
}

dr_status dr__adapter_load(dr_adapter *a, const char *path, dr_error *err) {
    dr_ckpt *c = NULL;
    dr_status st = dr__ckpt_open(path, &c, err);
    if (st != DR_OK) return st;
    const char *kind = dr__ckpt_meta(c, "kind");
    uint64_t s_par[1] = {a->n_params}, s_z[2] = {a->n_items, a->d},
             s_b[2] = {(uint64_t)a->p.g_batch * a->ncand, a->X},
             s_bd[2] = {(uint64_t)a->p.g_batch * a->ncand, a->d}, s_sc[1] = {8},
             s_n[1] = {a->n_items};
    const void *th, *fi, *an, *zp, *z0, *bx, *bdz, *scv;
    if (!kind || strcmp(kind, "adapter") != 0) {
        st = dr__fail(err, DR_FORMAT, "%s: not an adapter state file", path);
        goto fail;
    }
    if ((st = dr__ckpt_find(c, "theta", DR_DT_F32, 1, s_par, &th, err)) != DR_OK ||
        (st = dr__ckpt_find(c, "fisher", DR_DT_F32, 1, s_par, &fi, err)) != DR_OK ||
        (st = dr__ckpt_find(c, "anchor", DR_DT_F32, 1, s_par, &an, err)) != DR_OK ||
        (st = dr__ckpt_find(c, "zp", DR_DT_F32, 2, s_z, &zp, err)) != DR_OK ||
        (st = dr__ckpt_find(c, "z0", DR_DT_F32, 2, s_z, &z0, err)) != DR_OK ||
        (st = dr__ckpt_find(c, "batch_x", DR_DT_F32, 2, s_b, &bx, err)) != DR_OK ||
        (st = dr__ckpt_find(c, "batch_dz", DR_DT_F32, 2, s_bd, &bdz, err)) != DR_OK ||
        (st = dr__ckpt_find(c, "scalars", DR_DT_I64, 1, s_sc, &scv, err)) != DR_OK) {
        st = dr__fail_wrap(err, DR_FORMAT, "%s: adapter state does not match this adapter", path);
        goto fail;
    }
    /* rows set by dr__adapter_set_item_base come from the file (rebased, cold: absent in
     * states that have none); every other row must be this adapter's base */
    const void *rb = NULL, *cd = NULL;
    if (dr__ckpt_find(c, "rebased", DR_DT_U8, 1, s_n, &rb, NULL) != DR_OK ||
        dr__ckpt_find(c, "cold", DR_DT_U8, 1, s_n, &cd, NULL) != DR_OK)
        rb = cd = NULL;
    const uint8_t *reb = rb, *cld = cd;
    size_t row = (size_t)a->d * sizeof(float);
    for (uint32_t i = 0; i < a->n_items; i++)
        if (!(reb && reb[i]) && memcmp((const char *)z0 + i * row, a->z0 + (size_t)i * a->d, row) != 0) {
            st = dr__fail(err, DR_FORMAT, "%s: adapter state was made over another base model", path);
            goto fail;
        }
    const uint64_t *sc = scv;
    if (sc[6] > (uint64_t)a->p.g_batch * a->ncand || sc[7] > a->p.g_batch) {
        st = dr__fail(err, DR_FORMAT, "%s: bad batch counters", path);
        goto fail;
    }
    if ((st = dr__window_load(a->win, c, "w.", err)) != DR_OK) goto fail;
    memcpy(a->theta, th, a->n_params * sizeof(float));
    memcpy(a->fisher, fi, a->n_params * sizeof(float));
    memcpy(a->anchor, an, a->n_params * sizeof(float));
    memcpy(a->zp, zp, (size_t)a->n_items * a->d * sizeof(float));
    for (uint32_t i = 0; reb && i < a->n_items; i++) {
        a->rebased[i] = reb[i] != 0;
        if (!reb[i]) continue;
        memcpy(a->z0 + (size_t)i * a->d, (const char *)z0 + i * row, row);
        a->cold[i] = cld[i] != 0;
    }
    memcpy(a->bx, bx, (size_t)s_b[0] * a->X * sizeof(float));
    memcpy(a->bdz, bdz, (size_t)s_bd[0] * a->d * sizeof(float));
    for (int k = 0; k < 4; k++) a->rng.s[k] = sc[k];
    a->n_updates = sc[4];
    a->version = sc[5];
    a->b_rows = (uint32_t)sc[6];
    a->b_events = (uint32_t)sc[7];
    for (uint32_t i = 0; i < a->n_items; i++) dr__adapter_item_input(a, i, a->xin + (size_t)i * a->X);
    mark_all_items(a);
    for (uint32_t u = 0; u < a->n_users; u++) mark_user(a, u);
fail:
    dr__ckpt_close(c);
    return st;
}
