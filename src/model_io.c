/*
 * model_io.c - saving and loading trained models as one checkpoint file (.drm, format.c).
 *
 * DESIGN: a checkpoint holds (1) the model's own tensors as named, shaped sections, (2) the
 * serving context: external user and item ids and every user's time-ordered history, so
 * `dynrec recommend --model m.drm --user U` needs no dataset, and (3) metadata: model kind,
 * dataset name, the split it was trained under (and T0), hyper-parameters, and a hash of the
 * item catalogue so a model is never evaluated against a dataset whose dense ids differ.
 * SASRec's parameter block is written as one section per tensor; the container aligns every
 * section to 64 bytes exactly like the in-memory block, so on load the sections are checked
 * to be contiguous and the mapping is used as the block in place (no copy). Alternatives
 * rejected: a per-model file format (two parsers to fuzz) and copying parameters on load
 * (doubles memory for large catalogues).
 * A model with multimodal fusion also stores its id embeddings e, the fusion block and the
 * feature standardisation (PREFIX.item_id, PREFIX.fusion, PREFIX.fusion_stats, one writer and
 * one checked reader for mf and sasrec); the fused latents stay the model's own item tensor,
 * so serving reads the file exactly as without fusion, and the loaded fusion (copied) lets
 * P-MODAL recompute the latents with features removed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "format.h"
#include "mf.h"
#include "model.h"
#include "sasrec.h"

/* ------------------------------------------------------------------ helpers */

static const char *split_name(dr_split_kind k) {
    return k == DR_SPLIT_LOO ? "loo" : k == DR_SPLIT_GIVEN ? "given" : "t0";
}

/* xxh64 over the NUL-terminated item ids in dense order. */
static uint64_t items_hash_ds(const dr_dataset *ds) {
    uint64_t h = 0;
    for (uint32_t i = 0; i < ds->n_items; i++) {
        const char *s = ds->items.str[i];
        h = dr_xxh64(s, strlen(s) + 1, h);
    }
    return h;
}

static uint64_t items_hash_model(const dr_model *m) {
    uint64_t h = 0;
    for (uint32_t i = 0; i < m->n_items; i++) h = dr_xxh64(m->item_ids[i], strlen(m->item_ids[i]) + 1, h);
    return h;
}

/* Concatenates n NUL-terminated strings into one buffer. */
static char *join_ids(char *const *str, uint32_t n, uint64_t *bytes) {
    size_t total = 0;
    for (uint32_t k = 0; k < n; k++) total += strlen(str[k]) + 1;
    char *b = dr_malloc(total ? total : 1), *p = b;
    if (!b) return NULL;
    for (uint32_t k = 0; k < n; k++) {
        size_t l = strlen(str[k]) + 1;
        memcpy(p, str[k], l);
        p += l;
    }
    *bytes = total;
    return b;
}

/* Splits a str section into exactly n ids (pointers into the mapping). */
static dr_status split_ids(const dr_ckpt *c, const char *name, uint32_t n, const char ***out,
                           dr_error *err) {
    uint64_t shape[1] = {DR_CKPT_ANY};
    const void *data;
    dr_status st = dr_ckpt_find(c, name, DR_DT_STR, 1, shape, &data, err);
    if (st != DR_OK) return st;
    const char *b = data;
    uint64_t len = shape[0];
    if (len == 0 || b[len - 1] != 0)
        return dr_fail(err, DR_FORMAT, "%s: section '%s' is not a list of ids", dr_ckpt_path(c), name);
    const char **ids = dr_malloc((size_t)n * sizeof *ids + 1);
    if (!ids) return dr_fail(err, DR_NOMEM, "%s: out of memory", dr_ckpt_path(c));
    uint64_t at = 0;
    uint32_t k = 0;
    while (at < len && k < n) {
        ids[k++] = b + at;
        at += strlen(b + at) + 1;
    }
    if (k != n || at != len) {
        dr_free(ids);
        return dr_fail(err, DR_FORMAT, "%s: section '%s' holds a different number of ids than %u",
                       dr_ckpt_path(c), name, n);
    }
    *out = ids;
    return DR_OK;
}

static dr_status meta_u32(const dr_ckpt *c, const char *key, uint32_t *out, dr_error *err) {
    const char *v = dr_ckpt_meta(c, key);
    if (!v || !dr_parse_u32(v, strlen(v), out))
        return dr_fail(err, DR_FORMAT, "%s: metadata '%s' missing or not a number", dr_ckpt_path(c), key);
    return DR_OK;
}

/* ------------------------------------------------------------------ per-model tensors */

/* A fusion in a checkpoint: metadata fusion_modalities "name:dim,..." and fusion_impute,
 * sections PREFIX.item_id (rows, d) (the id embeddings e), PREFIX.fusion (n_params) and
 * PREFIX.fusion_stats (n_stats). */
static dr_status save_fusion(dr_ckpt_writer *w, const char *prefix, const dr_fusion *f,
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
    if ((st = dr_ckpt_add_meta(w, "fusion_modalities", mods, err)) ||
        (st = dr_ckpt_add_meta(w, "fusion_impute", dr_impute_name(imp), err)) ||
        (st = dr_ckpt_add(w, name[0], DR_DT_F32, 2, se, eid, err)) ||
        (st = dr_ckpt_add(w, name[1], DR_DT_F32, 1, sw, f->w, err)))
        return st;
    return dr_ckpt_add(w, name[2], DR_DT_F32, 1, ss, f->stats, err);
}

/* Reads what save_fusion wrote: *f gets the shape, w and stats pointing into the mapping (read
 * only), *eid the id embeddings; *found = 0 when the checkpoint has no fusion. Every name,
 * dimension and section shape is checked before use. */
static dr_status load_fusion(const dr_ckpt *c, const char *prefix, uint32_t d, uint64_t rows,
                             dr_fusion *f, const float **eid, dr_impute *imp, int *found,
                             dr_error *err) {
    const char *mods = dr_ckpt_meta(c, "fusion_modalities"), *path = dr_ckpt_path(c);
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
            !dr_parse_u32(colon + 1, (size_t)(a + n - colon - 1), &dim) || dim == 0 ||
            dim > (1u << 20))
            return dr_fail(err, DR_FORMAT, "%s: metadata fusion_modalities '%.64s' is not "
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
        return dr_fail(err, DR_FORMAT, "%s: metadata fusion_modalities is empty", path);
    const char *iv = dr_ckpt_meta(c, "fusion_impute");
    if (!iv || dr_impute_parse(iv, imp, NULL) != DR_OK)
        return dr_fail(err, DR_FORMAT, "%s: metadata fusion_impute missing or not gate|mean", path);
    uint64_t se[2] = {rows, d}, sw[1] = {f->n_params}, ss[1] = {f->n_stats};
    const void *pe, *pw, *ps;
    char names[3][48];
    snprintf(names[0], sizeof names[0], "%s.item_id", prefix);
    snprintf(names[1], sizeof names[1], "%s.fusion", prefix);
    snprintf(names[2], sizeof names[2], "%s.fusion_stats", prefix);
    for (int k = 0; k < 3; k++) {
        dr_status st = k == 0 ? dr_ckpt_find(c, names[k], DR_DT_F32, 2, se, &pe, err)
                     : k == 1 ? dr_ckpt_find(c, names[k], DR_DT_F32, 1, sw, &pw, err)
                              : dr_ckpt_find(c, names[k], DR_DT_F32, 1, ss, &ps, err);
        if (st == DR_NOTFOUND)
            return dr_fail(err, DR_FORMAT, "%s: section '%s' is missing", path, names[k]);
        if (st != DR_OK) return st;
    }
    f->w = (float *)(uintptr_t)pw; /* read only: the attach functions copy */
    f->stats = (float *)(uintptr_t)ps;
    *eid = pe;
    *found = 1;
    return DR_OK;
}

static dr_status sasrec_save(const dr_model *m, dr_ckpt_writer *w, dr_error *err) {
    const dr_sasrec *s = m->state;
    const dr_sasrec_dims *dm = dr_sasrec_get_dims(s);
    dr_sasrec_tensor t[DR_SASREC_N_TENSORS];
    size_t n_floats, total = dr_sasrec_tensors(dm, t, DR_SASREC_N_TENSORS);
    const float *block = dr_sasrec_param_block(s, &n_floats);
    if (total != n_floats) return dr_fail(err, DR_INTERNAL, "sasrec: block size mismatch");
    char v[5][32];
    const char *keys[5] = {"d", "L", "blocks", "heads", "sasrec_items"};
    uint32_t vals[5] = {dm->d, dm->L, dm->blocks, dm->heads, dm->n_items};
    dr_status st;
    for (int k = 0; k < 5; k++) {
        snprintf(v[k], sizeof v[k], "%u", vals[k]);
        if ((st = dr_ckpt_add_meta(w, keys[k], v[k], err)) != DR_OK) return st;
    }
    for (int k = 0; k < DR_SASREC_N_TENSORS; k++) {
        uint64_t shape[3] = {t[k].shape[0], t[k].shape[1], t[k].shape[2]};
        char name[48];
        snprintf(name, sizeof name, "sasrec.%s", t[k].name);
        if ((st = dr_ckpt_add(w, name, DR_DT_F32, (uint32_t)t[k].ndim, shape, block + t[k].offset,
                              err)) != DR_OK)
            return st;
    }
    const float *eid = NULL;
    const dr_fusion *f = dr_sasrec_get_fusion(s, &eid);
    return f ? save_fusion(w, "sasrec", f, eid, (uint64_t)dm->n_items + 1,
                           dr_sasrec_get_impute(s), err)
             : DR_OK;
}

static dr_status sasrec_load(const dr_ckpt *c, dr_model **out, dr_error *err) {
    dr_sasrec_dims dm;
    dr_status st;
    if ((st = meta_u32(c, "d", &dm.d, err)) || (st = meta_u32(c, "L", &dm.L, err)) ||
        (st = meta_u32(c, "blocks", &dm.blocks, err)) || (st = meta_u32(c, "heads", &dm.heads, err)) ||
        (st = meta_u32(c, "sasrec_items", &dm.n_items, err)))
        return st;
    if (!dm.d || !dm.L || !dm.blocks || !dm.heads || dm.d % dm.heads || dm.d > 4096 ||
        dm.L > 100000 || dm.blocks > 64)
        return dr_fail(err, DR_FORMAT, "%s: unusable SASRec dimensions", dr_ckpt_path(c));
    dr_sasrec_tensor t[DR_SASREC_N_TENSORS];
    size_t total = dr_sasrec_tensors(&dm, t, DR_SASREC_N_TENSORS);
    const float *base = NULL;
    for (int k = 0; k < DR_SASREC_N_TENSORS; k++) {
        uint64_t shape[3] = {t[k].shape[0], t[k].shape[1], t[k].shape[2]};
        char name[48];
        const void *p;
        snprintf(name, sizeof name, "sasrec.%s", t[k].name);
        if ((st = dr_ckpt_find(c, name, DR_DT_F32, (uint32_t)t[k].ndim, shape, &p, err)) != DR_OK)
            return st == DR_NOTFOUND ? dr_fail(err, DR_FORMAT, "%s: section '%s' is missing",
                                               dr_ckpt_path(c), name)
                                     : st;
        if (k == 0) base = (const float *)p - t[k].offset;
        if ((const float *)p != base + t[k].offset)
            return dr_fail(err, DR_FORMAT, "%s: SASRec sections are not laid out as one block",
                           dr_ckpt_path(c));
    }
    dr_sasrec *s = NULL;
    if ((st = dr_sasrec_from_params(&dm, base, total, &s, err)) != DR_OK) return st;
    dr_fusion f;
    const float *eid = NULL;
    dr_impute imp;
    int found;
    if ((st = load_fusion(c, "sasrec", dm.d, (uint64_t)dm.n_items + 1, &f, &eid, &imp, &found,
                          err)) != DR_OK ||
        (found && (st = dr_sasrec_attach_fusion(s, &f, eid, imp, err)) != DR_OK)) {
        dr_sasrec_free(s);
        return st;
    }
    return dr_sasrec_as_model(s, out, err);
}

static dr_status mf_save(const dr_model *m, dr_ckpt_writer *w, dr_error *err) {
    dr_mf_view v;
    dr_status st = dr_mf_get_view(m, &v, err);
    if (st != DR_OK) return st;
    uint64_t su[2] = {v.n_users, v.d}, si[2] = {v.n_items, v.d}, sb[1] = {v.n_items};
    char d[16];
    snprintf(d, sizeof d, "%u", v.d);
    if ((st = dr_ckpt_add_meta(w, "d", d, err)) != DR_OK) return st;
    if ((st = dr_ckpt_add(w, "mf.user", DR_DT_F32, 2, su, v.user, err)) != DR_OK) return st;
    if ((st = dr_ckpt_add(w, "mf.item", DR_DT_F32, 2, si, v.item, err)) != DR_OK) return st;
    if ((st = dr_ckpt_add(w, "mf.item_bias", DR_DT_F32, 1, sb, v.item_bias, err)) != DR_OK)
        return st;
    const float *eid = NULL;
    const dr_fusion *f = dr_mf_get_fusion(m, &eid);
    return f ? save_fusion(w, "mf", f, eid, v.n_items, dr_mf_get_impute(m), err) : DR_OK;
}

static dr_status mf_load(const dr_ckpt *c, dr_model **out, dr_error *err) {
    uint64_t si[2] = {DR_CKPT_ANY, DR_CKPT_ANY};
    const void *pi, *pu, *pb;
    dr_status st;
    if ((st = dr_ckpt_find(c, "mf.item", DR_DT_F32, 2, si, &pi, err)) != DR_OK) return st;
    if (si[0] >= UINT32_MAX || si[1] < 1 || si[1] > 4096)
        return dr_fail(err, DR_FORMAT, "%s: section 'mf.item' has an unusable shape", dr_ckpt_path(c));
    uint64_t su[2] = {DR_CKPT_ANY, si[1]}, sb[1] = {si[0]};
    if ((st = dr_ckpt_find(c, "mf.user", DR_DT_F32, 2, su, &pu, err)) != DR_OK) return st;
    if ((st = dr_ckpt_find(c, "mf.item_bias", DR_DT_F32, 1, sb, &pb, err)) != DR_OK) return st;
    if (su[0] >= UINT32_MAX) return dr_fail(err, DR_FORMAT, "%s: too many users", dr_ckpt_path(c));
    dr_mf_view v = {(uint32_t)su[0], (uint32_t)si[0], (uint32_t)si[1], pu, pi, pb};
    dr_model *m = NULL;
    if ((st = dr_mf_from_view(&v, &m, err)) != DR_OK) return st;
    dr_fusion f;
    const float *eid = NULL;
    dr_impute imp;
    int found;
    if ((st = load_fusion(c, "mf", v.d, v.n_items, &f, &eid, &imp, &found, err)) != DR_OK ||
        (found && (st = dr_mf_attach_fusion(m, &f, eid, imp, err)) != DR_OK)) {
        dr_model_free(m);
        return st;
    }
    *out = m;
    return DR_OK;
}

typedef struct model_io {
    const char *name;
    dr_status (*save)(const dr_model *m, dr_ckpt_writer *w, dr_error *err);
    dr_status (*load)(const dr_ckpt *c, dr_model **out, dr_error *err);
} model_io;

static const model_io g_io[] = {
    {"sasrec", sasrec_save, sasrec_load},
    {"mf", mf_save, mf_load},
};

static const model_io *find_io(const char *name) {
    for (size_t k = 0; k < DR_ARRAY_LEN(g_io); k++)
        if (strcmp(g_io[k].name, name) == 0) return &g_io[k];
    return NULL;
}

/* ------------------------------------------------------------------ save */

dr_status dr_model_save(const dr_model *m, const dr_dataset *ds, const dr_split *split,
                        const char *path, dr_error *err) {
    if (!m || !ds || !path) return dr_fail(err, DR_ARG, "dr_model_save: NULL argument");
    const model_io *io = find_io(m->vt->name);
    if (!io)
        return dr_fail(err, DR_UNSUPPORTED, "model '%s' has no parameters to save (it is fitted "
                       "from the data each time)", m->vt->name);
    if (m->n_items != ds->n_items)
        return dr_fail(err, DR_ARG, "dr_model_save: model has %u items, dataset %u", m->n_items,
                       ds->n_items);
    dr_ckpt_writer *w = NULL;
    char *users = NULL, *items = NULL, *title_blob = NULL, *attr_blob = NULL;
    char **titles = NULL;
    uint64_t *off = NULL, *attr_off = NULL;
    dr_status st = dr_ckpt_writer_create(&w, err);
    if (st != DR_OK) return st;
    uint64_t nb_users = 0, nb_items = 0;
    users = join_ids(ds->users.str, ds->n_users, &nb_users);
    items = join_ids(ds->items.str, ds->n_items, &nb_items);
    off = dr_malloc(((size_t)ds->n_users + 1) * sizeof *off);
    if (!users || !items || !off) {
        st = dr_fail(err, DR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    for (uint32_t u = 0; u <= ds->n_users; u++) off[u] = ds->user_off[u];
    char v[6][32];
    snprintf(v[0], sizeof v[0], "%u", ds->n_users);
    snprintf(v[1], sizeof v[1], "%u", ds->n_items);
    snprintf(v[2], sizeof v[2], "%016" PRIx64, items_hash_ds(ds));
    if ((st = dr_ckpt_add_meta(w, "model", m->vt->name, err)) ||
        (st = dr_ckpt_add_meta(w, "dataset", ds->name, err)) ||
        (st = dr_ckpt_add_meta(w, "n_users", v[0], err)) ||
        (st = dr_ckpt_add_meta(w, "n_items", v[1], err)) ||
        (st = dr_ckpt_add_meta(w, "items_hash", v[2], err)))
        goto fail;
    if (split) {
        if ((st = dr_ckpt_add_meta(w, "split", split_name(split->kind), err))) goto fail;
        if (split->kind == DR_SPLIT_T0) {
            snprintf(v[3], sizeof v[3], "%lld", (long long)split->t0);
            if ((st = dr_ckpt_add_meta(w, "T0", v[3], err))) goto fail;
        }
    }
    if ((st = io->save(m, w, err)) != DR_OK) goto fail;
    uint64_t s_users[1] = {nb_users}, s_items[1] = {nb_items}, s_off[1] = {(uint64_t)ds->n_users + 1},
             s_hist[1] = {ds->n_events};
    uint64_t nb_titles = 0, nb_attrs = 0;
    char *empty = "";
    titles = dr_malloc((size_t)ds->n_items * sizeof *titles + 1);
    if (!titles) {
        st = dr_fail(err, DR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    for (uint32_t i = 0; i < ds->n_items; i++) titles[i] = ds->title && ds->title[i] ? ds->title[i] : empty;
    title_blob = join_ids(titles, ds->n_items, &nb_titles);
    attr_blob = join_ids(ds->attrs.str, ds->attrs.n, &nb_attrs);
    attr_off = dr_calloc((size_t)ds->n_items + 1, sizeof *attr_off);
    if (!title_blob || !attr_blob || !attr_off) {
        st = dr_fail(err, DR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    if (ds->item_attr_off)
        for (uint32_t i = 0; i <= ds->n_items; i++) attr_off[i] = ds->item_attr_off[i];
    uint64_t s_titles[1] = {nb_titles}, s_attrs[1] = {nb_attrs},
             s_aoff[1] = {(uint64_t)ds->n_items + 1}, s_aitem[1] = {attr_off[ds->n_items]};
    char na[32];
    snprintf(na, sizeof na, "%u", ds->attrs.n);
    if ((st = dr_ckpt_add_meta(w, "n_attrs", na, err)) ||
        (st = dr_ckpt_add(w, "ctx.titles", DR_DT_STR, 1, s_titles, title_blob, err)) ||
        (st = dr_ckpt_add(w, "ctx.item_attr_off", DR_DT_I64, 1, s_aoff, attr_off, err)) ||
        (nb_attrs && (st = dr_ckpt_add(w, "ctx.attrs", DR_DT_STR, 1, s_attrs, attr_blob, err))) ||
        (s_aitem[0] && (st = dr_ckpt_add(w, "ctx.item_attr", DR_DT_U32, 1, s_aitem,
                                          ds->item_attr, err))))
        goto fail;
    if ((st = dr_ckpt_add(w, "ctx.users", DR_DT_STR, 1, s_users, users, err)) ||
        (st = dr_ckpt_add(w, "ctx.items", DR_DT_STR, 1, s_items, items, err)) ||
        (st = dr_ckpt_add(w, "ctx.hist_off", DR_DT_I64, 1, s_off, off, err)) ||
        (st = dr_ckpt_add(w, "ctx.hist_item", DR_DT_U32, 1, s_hist, ds->hist_item, err)))
        goto fail;
    st = dr_ckpt_write(w, path, err);
fail:
    dr_ckpt_writer_free(w);
    dr_free(users);
    dr_free(items);
    dr_free(off);
    dr_free(titles);
    dr_free(title_blob);
    dr_free(attr_blob);
    dr_free(attr_off);
    return st;
}

/* ------------------------------------------------------------------ load */

dr_status dr_model_load(const char *path, dr_model **out, dr_error *err) {
    if (!path || !out) return dr_fail(err, DR_ARG, "dr_model_load: NULL argument");
    *out = NULL;
    dr_ckpt *c = NULL;
    dr_model *m = NULL;
    dr_status st = dr_ckpt_open(path, &c, err);
    if (st != DR_OK) return st;
    const char *kind = dr_ckpt_meta(c, "model");
    const model_io *io = kind ? find_io(kind) : NULL;
    if (!io) {
        st = dr_fail(err, DR_FORMAT, "%s: unknown model kind '%s'", path, kind ? kind : "<missing>");
        goto fail;
    }
    uint32_t n_users, n_items;
    if ((st = meta_u32(c, "n_users", &n_users, err)) || (st = meta_u32(c, "n_items", &n_items, err)))
        goto fail;
    if ((st = io->load(c, &m, err)) != DR_OK) goto fail;
    if ((st = dr_model_prepare_latents(m, err)) != DR_OK) goto fail;
    if (m->n_items != n_items) {
        st = dr_fail(err, DR_FORMAT, "%s: model has %u items, its catalogue %u", path, m->n_items, n_items);
        goto fail;
    }
    m->ckpt = c;
    c = NULL;
    m->n_users = n_users;
    if ((st = split_ids(m->ckpt, "ctx.users", n_users, &m->user_ids, err)) ||
        (st = split_ids(m->ckpt, "ctx.items", n_items, &m->item_ids, err)))
        goto fail;
    uint32_t n_attrs;
    if ((st = meta_u32(m->ckpt, "n_attrs", &n_attrs, err)) ||
        (st = split_ids(m->ckpt, "ctx.titles", n_items, &m->titles, err)))
        goto fail;
    if (n_attrs && (st = split_ids(m->ckpt, "ctx.attrs", n_attrs, &m->attr_strs, err))) goto fail;
    uint64_t s_aoff[1] = {(uint64_t)n_items + 1}, s_aitem[1] = {DR_CKPT_ANY};
    const void *pao, *pai = NULL;
    if ((st = dr_ckpt_find(m->ckpt, "ctx.item_attr_off", DR_DT_I64, 1, s_aoff, &pao, err)))
        goto fail;
    m->item_attr_off = pao;
    if (m->item_attr_off[n_items] &&
        (st = dr_ckpt_find(m->ckpt, "ctx.item_attr", DR_DT_U32, 1, s_aitem, &pai, err)))
        goto fail;
    m->item_attr = pai;
    if (m->item_attr_off[0] != 0 || (pai ? s_aitem[0] : 0) != m->item_attr_off[n_items]) {
        st = dr_fail(err, DR_FORMAT, "%s: item attributes do not cover section 'ctx.item_attr'", path);
        goto fail;
    }
    for (uint32_t i = 0; i < n_items; i++)
        if (m->item_attr_off[i + 1] < m->item_attr_off[i]) {
            st = dr_fail(err, DR_FORMAT, "%s: attribute offsets decrease at item %u", path, i);
            goto fail;
        }
    for (uint64_t k = 0; k < m->item_attr_off[n_items]; k++)
        if (m->item_attr[k] >= n_attrs) {
            st = dr_fail(err, DR_FORMAT, "%s: attribute %u out of range", path, m->item_attr[k]);
            goto fail;
        }
    uint64_t s_off[1] = {(uint64_t)n_users + 1}, s_hist[1] = {DR_CKPT_ANY};
    const void *po, *ph;
    if ((st = dr_ckpt_find(m->ckpt, "ctx.hist_off", DR_DT_I64, 1, s_off, &po, err)) ||
        (st = dr_ckpt_find(m->ckpt, "ctx.hist_item", DR_DT_U32, 1, s_hist, &ph, err)))
        goto fail;
    m->hist_off = po;
    m->hist_item = ph;
    if (m->hist_off[0] != 0 || m->hist_off[n_users] != s_hist[0]) {
        st = dr_fail(err, DR_FORMAT, "%s: user histories do not cover section 'ctx.hist_item'", path);
        goto fail;
    }
    for (uint32_t u = 0; u < n_users; u++)
        if (m->hist_off[u + 1] < m->hist_off[u]) {
            st = dr_fail(err, DR_FORMAT, "%s: user history offsets decrease at user %u", path, u);
            goto fail;
        }
    for (uint64_t k = 0; k < s_hist[0]; k++)
        if (m->hist_item[k] >= n_items) {
            st = dr_fail(err, DR_FORMAT, "%s: history item %u out of range", path, m->hist_item[k]);
            goto fail;
        }
    const char *h = dr_ckpt_meta(m->ckpt, "items_hash");
    char want[32];
    snprintf(want, sizeof want, "%016" PRIx64, items_hash_model(m));
    if (!h || strcmp(h, want) != 0) {
        st = dr_fail(err, DR_FORMAT, "%s: item catalogue does not match its hash", path);
        goto fail;
    }
    for (uint32_t u = 0; u < n_users; u++) {
        uint32_t id;
        bool is_new;
        if ((st = dr_strtab_intern(&m->user_index, m->user_ids[u], strlen(m->user_ids[u]), &id,
                                   &is_new)) != DR_OK) {
            st = dr_fail(err, st, "%s: out of memory indexing users", path);
            goto fail;
        }
        if (!is_new) {
            st = dr_fail(err, DR_FORMAT, "%s: user id '%s' appears twice", path, m->user_ids[u]);
            goto fail;
        }
    }
    *out = m;
    return DR_OK;
fail:
    dr_model_free(m);
    dr_ckpt_close(c);
    return st;
}

/* ------------------------------------------------------------------ accessors */

const char *dr_model_meta(const dr_model *m, const char *key) {
    return m && m->ckpt ? dr_ckpt_meta(m->ckpt, key) : NULL;
}

uint32_t dr_model_n_items(const dr_model *m) { return m ? m->n_items : 0; }
uint32_t dr_model_n_users(const dr_model *m) { return m ? m->n_users : 0; }

dr_status dr_model_find_user(const dr_model *m, const char *ext, uint32_t *u) {
    if (!m || !m->ckpt) return DR_NOTFOUND;
    uint32_t id = dr_strtab_find(&m->user_index, ext, strlen(ext));
    if (id == UINT32_MAX) return DR_NOTFOUND;
    *u = id;
    return DR_OK;
}

const char *dr_model_user_id(const dr_model *m, uint32_t u) {
    return m && m->user_ids && u < m->n_users ? m->user_ids[u] : NULL;
}

const char *dr_model_item_id(const dr_model *m, uint32_t i) {
    return m && m->item_ids && i < m->n_items ? m->item_ids[i] : NULL;
}

size_t dr_model_user_history(const dr_model *m, uint32_t u, const uint32_t **items) {
    if (!m || !m->hist_off || u >= m->n_users) {
        if (items) *items = NULL;
        return 0;
    }
    if (items) *items = m->hist_item + m->hist_off[u];
    return (size_t)(m->hist_off[u + 1] - m->hist_off[u]);
}

dr_status dr_model_check_dataset(const dr_model *m, const dr_dataset *ds, dr_error *err) {
    if (!m || !ds) return dr_fail(err, DR_ARG, "dr_model_check_dataset: NULL argument");
    if (m->n_items != ds->n_items)
        return dr_fail(err, DR_FORMAT, "the model was trained on %u items, dataset %s has %u",
                       m->n_items, ds->name, ds->n_items);
    if (!m->item_ids) return DR_OK; /* fitted in memory on this very catalogue */
    for (uint32_t i = 0; i < m->n_items; i++)
        if (strcmp(m->item_ids[i], ds->items.str[i]) != 0)
            return dr_fail(err, DR_FORMAT, "item %u is '%s' in the model but '%s' in dataset %s",
                           i, m->item_ids[i], ds->items.str[i], ds->name);
    return DR_OK;
}

const char *dr_model_item_title(const dr_model *m, uint32_t i) {
    return m && m->titles && i < m->n_items ? m->titles[i] : "";
}

size_t dr_model_item_attrs(const dr_model *m, uint32_t i, const char **out, size_t cap) {
    if (!m || !m->item_attr_off || i >= m->n_items) return 0;
    uint64_t lo = m->item_attr_off[i], hi = m->item_attr_off[i + 1];
    for (uint64_t k = lo; k < hi && k - lo < cap; k++) out[k - lo] = m->attr_strs[m->item_attr[k]];
    return (size_t)(hi - lo);
}
