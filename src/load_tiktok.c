/*
 * load_tiktok.c - the TikTok dataset as MMSSL ships it: train.tsv (required), valid.tsv and
 * test.tsv (optional), user<TAB>item rows with no time, each event tagged with its file's
 * split; optional image_feat.npy, audio_feat.npy and text_feat.npy (row r = item id r) become
 * the "visual", "audio" and "text" modalities, and feature rows with no interactions become
 * catalogue items. Also dr_dataset_add_features, which attaches a .npy to any loaded dataset.
 *
 * DESIGN: the loader and dr_dataset_add_features share feature_modality, so the rules for a
 * feature row (all zero or NaN: missing; infinite: an error; an interacted item with no row:
 * an error) are written once. Both stay in this file because nothing else scatters .npy rows
 * by item id (dynrec folders store rows in dense order, see load_dynrec.c).
 */
#include "load_common.h"

#include <math.h>
#include <stdio.h>

/* Scatters feature rows into a modality: row r = external item id "r" (by_id), or row i =
 * dense item i (then rows must equal n_items). A row that is all zero or holds a NaN is
 * missing; an infinity is an error; an item of the interactions with no row (too few rows) is
 * an error. */
static dr_status feature_modality(dr_dataset *ds, const dr_npy *a, const char *path,
                                  const char *mod, bool by_id, dr_error *err) {
    uint32_t used = 0, dim = a->cols;
    if (!by_id && a->rows != ds->n_items)
        return dr__fail(err, DR_FORMAT, "%s: %u rows, but the dataset has %u items (item ids are "
                       "not row numbers, so row i must be dense item i)", path, a->rows,
                       ds->n_items);
    for (size_t k = 0; k < ds->n_events; k++) used = DR_MAX(used, ds->ev_item[k] + 1);
    for (size_t k = 0; k < (size_t)a->rows * dim; k++)
        if (isinf(a->data[k]))
            return dr__fail(err, DR_FORMAT, "%s: row %zu: infinite value", path, k / dim);
    float *x = dr__calloc((size_t)ds->n_items * dim, sizeof *x);
    uint8_t *present = dr__calloc((size_t)ds->n_items + 1, 1);
    dr_status s = DR_OK;
    if (!x || !present) {
        s = dr__loader_oom(err, path);
        goto fail;
    }
    for (uint32_t i = 0; i < ds->n_items; i++) {
        const char *id = ds->items.str[i];
        uint32_t row = i;
        if (by_id && (!dr__parse_u32(id, strlen(id), &row) || row >= a->rows)) {
            if (i < used) {
                s = dr__fail(err, DR_FORMAT, "%s: %u rows, but item '%s' of the interactions "
                            "has no row", path, a->rows, id);
                goto fail;
            }
            continue;
        }
        const float *src = a->data + (size_t)row * dim;
        bool any = false, nan = false;
        for (uint32_t c = 0; c < dim; c++) any |= src[c] != 0, nan |= isnan(src[c]);
        if (any && !nan) {
            memcpy(x + (size_t)i * dim, src, (size_t)dim * sizeof *x);
            present[i] = 1;
        }
    }
    s = dr__dataset_add_modality(ds, mod, dim, x, present, err);
fail:
    dr__free(x);
    dr__free(present);
    return s;
}

dr_status dr_dataset_add_features(dr_dataset *ds, const char *name, const char *path,
                                  size_t max_bytes, dr_error *err) {
    if (!ds || !name || !path) return dr__fail(err, DR_ARG, "features: NULL argument");
    if (!*name || strlen(name) >= sizeof ds->mod[0].name)
        return dr__fail(err, DR_ARG, "%s: modality name '%s' is empty or too long", path, name);
    dr_npy a = {0};
    dr_status s = dr__npy_read(path, max_bytes ? max_bytes : DR_LOAD_MAX_FILE, &a, err);
    if (s != DR_OK) return s;
    int old = -1;
    for (int m = 0; m < ds->n_mod; m++)
        if (strcmp(ds->mod[m].name, name) == 0) old = m;
    dr_modality keep = old >= 0 ? ds->mod[old] : (dr_modality){{0}, 0, NULL, NULL};
    if (old >= 0) { /* replaced: take it out while the new one is added */
        ds->mod[old] = ds->mod[ds->n_mod - 1];
        ds->n_mod--;
    }
    bool by_id = true; /* every item id a number: row r = item id r, else row i = dense i */
    for (uint32_t i = 0; i < ds->n_items && by_id; i++) {
        uint32_t r;
        by_id = dr__parse_u32(ds->items.str[i], strlen(ds->items.str[i]), &r);
    }
    s = feature_modality(ds, &a, path, name, by_id, err);
    if (old >= 0) {
        if (s == DR_OK) {
            dr__free(keep.x);
            dr__free(keep.present);
        } else { /* failed: the dataset keeps the old one */
            ds->mod[ds->n_mod++] = keep;
        }
    }
    dr__npy_free(&a);
    return s;
}

bool dr__detect_tiktok(const char *dir) { return dr__dir_has(dir, "train.tsv"); }

dr_status dr__load_tiktok(const char *dir, const dr_load_params *p, dr_dataset **out,
                         dr_error *err) {
    static const char *const files[] = {"train.tsv", "valid.tsv", "test.tsv"};
    static const uint8_t tags[] = {DR_TAG_TRAIN, DR_TAG_VALID, DR_TAG_TEST};
    static const char *const feat_file[] = {"image_feat.npy", "audio_feat.npy", "text_feat.npy"};
    static const char *const feat_mod[] = {"visual", "audio", "text"};
    enum { NF = 3 };
    dr_builder *b = NULL;
    dr_dataset *ds = NULL;
    dr_load_report rep = {0};
    dr_npy feat[NF] = {{0}};
    char *fpath[NF] = {0};
    dr_load_params q = *p;
    q.delimiter = '\t';
    q.header = -1;
    q.col_user = 0;
    q.col_item = 1;
    q.col_time = -1;
    q.col_weight = -1;
    *out = NULL;
    dr_status s = dr__builder_create(&b);
    if (s != DR_OK) return dr__loader_oom(err, dir);
    if ((s = dr__read_parse_files(dir, files, tags, 3, true, &q, b, &rep, err)) != DR_OK) goto fail;
    uint32_t rows = 0;
    for (int k = 0; k < NF; k++) {
        if (!(fpath[k] = dr__path_join(dir, feat_file[k]))) {
            s = dr__loader_oom(err, dir);
            goto fail;
        }
        if (!dr__path_exists(fpath[k])) continue;
        if ((s = dr__npy_read(fpath[k], p->max_file, &feat[k], err)) != DR_OK) goto fail;
        rows = DR_MAX(rows, feat[k].rows);
    }
    for (uint32_t r = 0; r < rows; r++) { /* catalogue: feature rows with no interactions */
        char id[16];
        int n = snprintf(id, sizeof id, "%u", r);
        if ((s = dr__builder_add_item(b, id, (size_t)n)) != DR_OK) {
            s = dr__loader_oom(err, dir);
            goto fail;
        }
    }
    if ((s = dr__loader_build(b, &rep, dir, DR_FMT_TIKTOK, "tiktok", q.time_scale, &ds,
                             err)) != DR_OK)
        goto fail;
    ds->has_given_split = 1;
    for (int k = 0; k < NF; k++)
        if (feat[k].data &&
            (s = feature_modality(ds, &feat[k], fpath[k], feat_mod[k], true, err)) != DR_OK)
            goto fail;
    *out = ds;
    ds = NULL;
fail:
    for (int k = 0; k < NF; k++) {
        dr__npy_free(&feat[k]);
        dr__free(fpath[k]);
    }
    dr__builder_free(b);
    dr_dataset_free(ds);
    return s;
}

