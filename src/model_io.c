/*
 * model_io.c - saving and loading trained models as one checkpoint file (.drm, ckpt.c).
 *
 * DESIGN: a checkpoint holds (1) the model's own tensors as named, shaped sections, (2) the
 * serving context: external user and item ids and every user's time-ordered history, so
 * `dynrec recommend --model m.drm --user U` needs no dataset, and (3) metadata: model kind,
 * dataset name, the split it was trained under (and T0), hyper-parameters, and a hash of the
 * item catalogue so a model is never evaluated against a dataset whose dense ids differ.
 * The model's own part is written and read by its vtable's save and load slots, in the
 * model's file (this file holds no per-model code; the kind is found in the registry by the
 * "model" metadata): SASRec maps its parameter block in place, mf its factors, and both store
 * a fusion with fusion.c's dr__fusion_save / dr__fusion_load. Alternatives rejected: a
 * per-model file format (two parsers to fuzz) and copying parameters on load (doubles memory
 * for large catalogues).
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "ckpt.h"
#include "model.h"

/* ------------------------------------------------------------------ helpers */


/* xxh64 over the NUL-terminated item ids in dense order. */
static uint64_t items_hash_ds(const dr_dataset *ds) {
    uint64_t h = 0;
    for (uint32_t i = 0; i < ds->n_items; i++) {
        const char *s = ds->items.str[i];
        h = dr__xxh64(s, strlen(s) + 1, h);
    }
    return h;
}

static uint64_t items_hash_model(const dr_model *m) {
    uint64_t h = 0;
    for (uint32_t i = 0; i < m->n_items; i++) h = dr__xxh64(m->item_ids[i], strlen(m->item_ids[i]) + 1, h);
    return h;
}

/* Concatenates n NUL-terminated strings into one buffer. */
static char *join_ids(char *const *str, uint32_t n, uint64_t *bytes) {
    size_t total = 0;
    for (uint32_t k = 0; k < n; k++) total += strlen(str[k]) + 1;
    char *b = dr__malloc(total ? total : 1), *p = b;
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
    dr_status st = dr__ckpt_find(c, name, DR_DT_STR, 1, shape, &data, err);
    if (st != DR_OK) return st;
    const char *b = data;
    uint64_t len = shape[0];
    if (len == 0 || b[len - 1] != 0)
        return dr__fail(err, DR_FORMAT, "%s: section '%s' is not a list of ids", dr__ckpt_path(c), name);
    const char **ids = dr__malloc((size_t)n * sizeof *ids + 1);
    if (!ids) return dr__fail(err, DR_NOMEM, "%s: out of memory", dr__ckpt_path(c));
    uint64_t at = 0;
    uint32_t k = 0;
    while (at < len && k < n) {
        ids[k++] = b + at;
        at += strlen(b + at) + 1;
    }
    if (k != n || at != len) {
        dr__free(ids);
        return dr__fail(err, DR_FORMAT, "%s: section '%s' holds a different number of ids than %u",
                       dr__ckpt_path(c), name, n);
    }
    *out = ids;
    return DR_OK;
}

static dr_status meta_u32(const dr_ckpt *c, const char *key, uint32_t *out, dr_error *err) {
    const char *v = dr__ckpt_meta(c, key);
    if (!v || !dr__parse_u32(v, strlen(v), out))
        return dr__fail(err, DR_FORMAT, "%s: metadata '%s' missing or not a number", dr__ckpt_path(c), key);
    return DR_OK;
}

/* ------------------------------------------------------------------ save */

dr_status dr_model_save(const dr_model *m, const dr_dataset *ds, const dr_split *split,
                        const char *path, dr_error *err) {
    if (!m || !ds || !path) return dr__fail(err, DR_ARG, "dr_model_save: NULL argument");
    if (!m->vt->save)
        return dr__fail(err, DR_UNSUPPORTED, "model '%s' has no parameters to save (it is fitted "
                       "from the data each time)", m->vt->name);
    if (m->n_items != ds->n_items)
        return dr__fail(err, DR_ARG, "dr_model_save: model has %u items, dataset %u", m->n_items,
                       ds->n_items);
    dr_ckpt_writer *w = NULL;
    char *users = NULL, *items = NULL, *title_blob = NULL, *attr_blob = NULL;
    char **titles = NULL;
    uint64_t *off = NULL, *attr_off = NULL;
    uint32_t *hist = NULL;
    dr_status st = dr__ckpt_writer_create(&w, err);
    if (st != DR_OK) return st;
    uint64_t nb_users = 0, nb_items = 0;
    users = join_ids(ds->users.str, ds->n_users, &nb_users);
    items = join_ids(ds->items.str, ds->n_items, &nb_items);
    off = dr__malloc(((size_t)ds->n_users + 1) * sizeof *off);
    if (!users || !items || !off) {
        st = dr__fail(err, DR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    /* A T0 checkpoint keeps each user's pre-T0 prefix only: a server started from it is at
     * T0, and the replay's events reach it as events (P-LIVE), not already in its histories. */
    const uint32_t *hist_items = ds->hist_item;
    uint64_t n_hist = ds->n_events;
    if (split && split->kind == DR_SPLIT_T0) {
        hist = dr__malloc((ds->n_events ? ds->n_events : 1) * sizeof *hist);
        if (!hist) {
            st = dr__fail(err, DR_NOMEM, "%s: out of memory", path);
            goto fail;
        }
        n_hist = 0;
        for (uint32_t u = 0; u < ds->n_users; u++) {
            uint32_t nt = u < split->n_users ? split->n_train[u] + split->n_valid[u] : 0;
            off[u] = n_hist;
            memcpy(hist + n_hist, ds->hist_item + ds->user_off[u], (size_t)nt * sizeof *hist);
            n_hist += nt;
        }
        off[ds->n_users] = n_hist;
        hist_items = hist;
    } else {
        for (uint32_t u = 0; u <= ds->n_users; u++) off[u] = ds->user_off[u];
    }
    char v[6][32];
    snprintf(v[0], sizeof v[0], "%u", ds->n_users);
    snprintf(v[1], sizeof v[1], "%u", ds->n_items);
    snprintf(v[2], sizeof v[2], "%016" PRIx64, items_hash_ds(ds));
    if ((st = dr__ckpt_add_meta(w, "model", m->vt->name, err)) ||
        (st = dr__ckpt_add_meta(w, "dataset", ds->name, err)) ||
        (st = dr__ckpt_add_meta(w, "n_users", v[0], err)) ||
        (st = dr__ckpt_add_meta(w, "n_items", v[1], err)) ||
        (st = dr__ckpt_add_meta(w, "items_hash", v[2], err)))
        goto fail;
    /* a dataset exported from a server's log: the log position the checkpoint covers */
    if (ds->log_covers[0] && (st = dr__ckpt_add_meta(w, "log_covers", ds->log_covers, err))) goto fail;
    if (split) {
        if ((st = dr__ckpt_add_meta(w, "split", dr__split_kind_name(split->kind), err))) goto fail;
        if (split->kind == DR_SPLIT_T0) {
            snprintf(v[3], sizeof v[3], "%lld", (long long)split->t0);
            if ((st = dr__ckpt_add_meta(w, "T0", v[3], err))) goto fail;
        }
    }
    if ((st = m->vt->save(m, w, err)) != DR_OK) goto fail;
    for (uint32_t k = 0; k < m->n_notes; k++)
        if ((st = dr__ckpt_add_meta(w, m->note_key[k], m->note_val[k], err)) != DR_OK) goto fail;
    uint64_t s_users[1] = {nb_users}, s_items[1] = {nb_items}, s_off[1] = {(uint64_t)ds->n_users + 1},
             s_hist[1] = {n_hist};
    uint64_t nb_titles = 0, nb_attrs = 0;
    char *empty = "";
    titles = dr__malloc((size_t)ds->n_items * sizeof *titles + 1);
    if (!titles) {
        st = dr__fail(err, DR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    for (uint32_t i = 0; i < ds->n_items; i++) titles[i] = ds->title && ds->title[i] ? ds->title[i] : empty;
    title_blob = join_ids(titles, ds->n_items, &nb_titles);
    attr_blob = join_ids(ds->attrs.str, ds->attrs.n, &nb_attrs);
    attr_off = dr__calloc((size_t)ds->n_items + 1, sizeof *attr_off);
    if (!title_blob || !attr_blob || !attr_off) {
        st = dr__fail(err, DR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    if (ds->item_attr_off)
        for (uint32_t i = 0; i <= ds->n_items; i++) attr_off[i] = ds->item_attr_off[i];
    uint64_t s_titles[1] = {nb_titles}, s_attrs[1] = {nb_attrs},
             s_aoff[1] = {(uint64_t)ds->n_items + 1}, s_aitem[1] = {attr_off[ds->n_items]};
    char na[32];
    snprintf(na, sizeof na, "%u", ds->attrs.n);
    if ((st = dr__ckpt_add_meta(w, "n_attrs", na, err)) ||
        (st = dr__ckpt_add(w, "ctx.titles", DR_DT_STR, 1, s_titles, title_blob, err)) ||
        (st = dr__ckpt_add(w, "ctx.item_attr_off", DR_DT_I64, 1, s_aoff, attr_off, err)) ||
        (nb_attrs && (st = dr__ckpt_add(w, "ctx.attrs", DR_DT_STR, 1, s_attrs, attr_blob, err))) ||
        (s_aitem[0] && (st = dr__ckpt_add(w, "ctx.item_attr", DR_DT_U32, 1, s_aitem,
                                          ds->item_attr, err))))
        goto fail;
    if ((st = dr__ckpt_add(w, "ctx.users", DR_DT_STR, 1, s_users, users, err)) ||
        (st = dr__ckpt_add(w, "ctx.items", DR_DT_STR, 1, s_items, items, err)) ||
        (st = dr__ckpt_add(w, "ctx.hist_off", DR_DT_I64, 1, s_off, off, err)) ||
        (st = dr__ckpt_add(w, "ctx.hist_item", DR_DT_U32, 1, s_hist, hist_items, err)))
        goto fail;
    st = dr__ckpt_write(w, path, err);
fail:
    dr__ckpt_writer_free(w);
    dr__free(users);
    dr__free(items);
    dr__free(off);
    dr__free(hist);
    dr__free(titles);
    dr__free(title_blob);
    dr__free(attr_blob);
    dr__free(attr_off);
    return st;
}

/* ------------------------------------------------------------------ load */

dr_status dr_model_load(const char *path, dr_model **out, dr_error *err) {
    if (!path || !out) return dr__fail(err, DR_ARG, "dr_model_load: NULL argument");
    *out = NULL;
    dr_ckpt *c = NULL;
    dr_model *m = NULL;
    dr_status st = dr__ckpt_open(path, &c, err);
    if (st != DR_OK) return st;
    const char *kind = dr__ckpt_meta(c, "model");
    const dr_model_vt *vt = dr__model_kind(kind);
    if (!vt || !vt->load) {
        st = dr__fail(err, DR_FORMAT, "%s: unknown model kind '%s'", path, kind ? kind : "<missing>");
        goto fail;
    }
    uint32_t n_users, n_items;
    if ((st = meta_u32(c, "n_users", &n_users, err)) || (st = meta_u32(c, "n_items", &n_items, err)))
        goto fail;
    if ((st = vt->load(c, &m, err)) != DR_OK) goto fail;
    if ((st = dr__model_prepare_latents(m, err)) != DR_OK) goto fail;
    if (m->n_items != n_items) {
        st = dr__fail(err, DR_FORMAT, "%s: model has %u items, its catalogue %u", path, m->n_items, n_items);
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
    if ((st = dr__ckpt_find(m->ckpt, "ctx.item_attr_off", DR_DT_I64, 1, s_aoff, &pao, err)))
        goto fail;
    m->item_attr_off = pao;
    if (m->item_attr_off[n_items] &&
        (st = dr__ckpt_find(m->ckpt, "ctx.item_attr", DR_DT_U32, 1, s_aitem, &pai, err)))
        goto fail;
    m->item_attr = pai;
    if (m->item_attr_off[0] != 0 || (pai ? s_aitem[0] : 0) != m->item_attr_off[n_items]) {
        st = dr__fail(err, DR_FORMAT, "%s: item attributes do not cover section 'ctx.item_attr'", path);
        goto fail;
    }
    for (uint32_t i = 0; i < n_items; i++)
        if (m->item_attr_off[i + 1] < m->item_attr_off[i]) {
            st = dr__fail(err, DR_FORMAT, "%s: attribute offsets decrease at item %u", path, i);
            goto fail;
        }
    for (uint64_t k = 0; k < m->item_attr_off[n_items]; k++)
        if (m->item_attr[k] >= n_attrs) {
            st = dr__fail(err, DR_FORMAT, "%s: attribute %u out of range", path, m->item_attr[k]);
            goto fail;
        }
    uint64_t s_off[1] = {(uint64_t)n_users + 1}, s_hist[1] = {DR_CKPT_ANY};
    const void *po, *ph;
    if ((st = dr__ckpt_find(m->ckpt, "ctx.hist_off", DR_DT_I64, 1, s_off, &po, err)) ||
        (st = dr__ckpt_find(m->ckpt, "ctx.hist_item", DR_DT_U32, 1, s_hist, &ph, err)))
        goto fail;
    m->hist_off = po;
    m->hist_item = ph;
    if (m->hist_off[0] != 0 || m->hist_off[n_users] != s_hist[0]) {
        st = dr__fail(err, DR_FORMAT, "%s: user histories do not cover section 'ctx.hist_item'", path);
        goto fail;
    }
    for (uint32_t u = 0; u < n_users; u++)
        if (m->hist_off[u + 1] < m->hist_off[u]) {
            st = dr__fail(err, DR_FORMAT, "%s: user history offsets decrease at user %u", path, u);
            goto fail;
        }
    for (uint64_t k = 0; k < s_hist[0]; k++)
        if (m->hist_item[k] >= n_items) {
            st = dr__fail(err, DR_FORMAT, "%s: history item %u out of range", path, m->hist_item[k]);
            goto fail;
        }
    const char *h = dr__ckpt_meta(m->ckpt, "items_hash");
    char want[32];
    snprintf(want, sizeof want, "%016" PRIx64, items_hash_model(m));
    if (!h || strcmp(h, want) != 0) {
        st = dr__fail(err, DR_FORMAT, "%s: item catalogue does not match its hash", path);
        goto fail;
    }
    for (uint32_t u = 0; u < n_users; u++) {
        uint32_t id;
        bool is_new;
        if ((st = dr__strtab_intern(&m->user_index, m->user_ids[u], strlen(m->user_ids[u]), &id,
                                   &is_new)) != DR_OK) {
            st = dr__fail(err, st, "%s: out of memory indexing users", path);
            goto fail;
        }
        if (!is_new) {
            st = dr__fail(err, DR_FORMAT, "%s: user id '%s' appears twice", path, m->user_ids[u]);
            goto fail;
        }
    }
    *out = m;
    return DR_OK;
fail:
    dr_model_free(m);
    dr__ckpt_close(c);
    return st;
}

/* ------------------------------------------------------------------ accessors */

const char *dr_model_meta(const dr_model *m, const char *key) {
    for (uint32_t k = 0; m && key && k < m->n_notes; k++)
        if (!strcmp(m->note_key[k], key)) return m->note_val[k];
    return m && m->ckpt && key ? dr__ckpt_meta(m->ckpt, key) : NULL;
}

dr_status dr_model_set_meta(dr_model *m, const char *key, const char *value, dr_error *err) {
    if (!m || !key || !value) return dr__fail(err, DR_ARG, "dr_model_set_meta: NULL argument");
    size_t kn = strlen(key);
    int ok = kn >= 1 && kn <= 63 && strchr(key, '.');
    for (size_t k = 0; ok && k < kn; k++)
        ok = isalnum((unsigned char)key[k]) || key[k] == '_' || key[k] == '.' || key[k] == '-';
    if (!ok)
        return dr__fail(err, DR_ARG, "model metadata key '%s': 1..63 chars of [A-Za-z0-9_.-] "
                                    "holding a '.'", key);
    if (strchr(value, '\n') || !dr__utf8_valid(value, strlen(value)))
        return dr__fail(err, DR_ARG, "model metadata '%s': value must be UTF-8 without newlines", key);
    uint32_t at = 0;
    while (at < m->n_notes && strcmp(m->note_key[at], key)) at++;
    if (at == DR_MODEL_NOTES_MAX)
        return dr__fail(err, DR_LIMIT, "model metadata: more than %u notes", DR_MODEL_NOTES_MAX);
    char *v = dr__strdup(value), *k = at < m->n_notes ? NULL : dr__strdup(key);
    if (!v || (at == m->n_notes && !k)) {
        dr__free(v);
        dr__free(k);
        return dr__fail(err, DR_NOMEM, "model metadata '%s': out of memory", key);
    }
    if (at == m->n_notes) m->note_key[m->n_notes++] = k;
    else dr__free(m->note_val[at]);
    m->note_val[at] = v;
    return DR_OK;
}

uint32_t dr_model_n_items(const dr_model *m) { return m ? m->n_items : 0; }
uint32_t dr_model_n_users(const dr_model *m) { return m ? m->n_users : 0; }

dr_status dr_model_find_user(const dr_model *m, const char *ext, uint32_t *u) {
    if (!m || !m->ckpt) return DR_NOTFOUND;
    uint32_t id = dr__strtab_find(&m->user_index, ext, strlen(ext));
    if (id == UINT32_MAX) return DR_NOTFOUND;
    *u = id;
    return DR_OK;
}

/* In this file rather than split.c: it reads a checkpoint's ids and histories. */
dr_status dr_split_unseen_valid(dr_split *s, const dr_dataset *ds, const dr_model *init,
                                uint32_t *kept, dr_error *err) {
    if (kept) *kept = 0;
    if (!s || !ds || !init) return dr__fail(err, DR_ARG, "dr_split_unseen_valid: NULL argument");
    if (s->n_users != ds->n_users)
        return dr__fail(err, DR_ARG, "dr_split_unseen_valid: the split is not the dataset's");
    if (!dr_model_n_users(init))
        return dr__fail(err, DR_ARG, "dr_split_unseen_valid: model '%s' holds no user histories "
                        "(not a checkpoint)", dr_model_name(init));
    uint32_t left = 0;
    for (uint32_t u = 0; u < ds->n_users; u++) {
        if (!s->n_valid[u]) continue;
        uint32_t iu;
        const uint32_t *h;
        if (dr_model_find_user(init, dr_dataset_user_id(ds, u), &iu) == DR_OK &&
            dr_model_user_history(init, iu, &h) >= (size_t)s->n_train[u] + s->n_valid[u]) {
            s->n_train[u] += s->n_valid[u];
            s->n_valid[u] = 0;
        } else {
            left++;
        }
    }
    if (kept) *kept = left;
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
    if (!m || !ds) return dr__fail(err, DR_ARG, "dr_model_check_dataset: NULL argument");
    if (m->n_items != ds->n_items)
        return dr__fail(err, DR_FORMAT, "the model was trained on %u items, dataset %s has %u",
                       m->n_items, ds->name, ds->n_items);
    if (!m->item_ids) return DR_OK; /* fitted in memory on this very catalogue */
    for (uint32_t i = 0; i < m->n_items; i++)
        if (strcmp(m->item_ids[i], ds->items.str[i]) != 0)
            return dr__fail(err, DR_FORMAT, "item %u is '%s' in the model but '%s' in dataset %s",
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
