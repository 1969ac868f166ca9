/*
 * serve_export.c - a server's state as a dataset (dr_state_export) and the compaction command's
 * entry (dr_state_compact; the work is dr__store_compact in serve_store.c).
 *
 * DESIGN: export is one streaming pass. The base is --model, else the newest BASE record's
 * checkpoint, else the folder's meta model_path; it covers the log up to C. interactions.tsv
 * is written while reading: first the checkpoint's histories (ctx.hist_*, user by user, in
 * order; the checkpoint keeps no times, so the k-th of N gets time k - N: negative, before
 * every log event), then every event after C in log order, archive.db first, then the log up
 * to the tip found at the start. A log time goes through the server's clamp (an event older
 * than the newest one before it takes the newest time; a negative time becomes 0), so the file
 * stays time-sorted. What must be known at the end stays in memory and grows with the
 * registries only: the item ids (checkpoint first, then new ones in order of first mention),
 * the users the checkpoint has no interaction for, each item's newest PUT (title, attributes)
 * and the feature rows per modality. items.tsv, features/ and the manifest (last, with
 * log_covers and log_records) are written after the pass. Rejected: building a dr_dataset and
 * calling dr_dataset_save (memory would grow with the log); a second pass to learn the first
 * event time (the negative times need none). The TSV writers are load_dynrec.c's.
 */
#include "dataset.h"
#include "serve_log.h"
#include "serve_store.h"

#include <jansson.h>
#include <stdio.h>

typedef struct ex_mod {
    char name[32];
    uint32_t dim;
    DR_VEC(float) x;      /* (rows, dim) */
    DR_VEC(uint8_t) present; /* (rows) */
} ex_mod;

typedef struct ex_item {
    char *title;     /* the newest PUT's ("" when it had none); NULL: the checkpoint's */
    char **attrs;    /* (n_attrs) "key=value" of the newest PUT */
    uint32_t n_attrs;
} ex_item;

typedef struct exporter {
    const dr_export_params *p;
    dr_export_result *r;
    dr_model *m;
    dr_store *st, *arch;
    dr_log *log;
    dr_strtab items;        /* checkpoint items (same ids), then new ones */
    dr_strtab users;        /* users the checkpoint has no interaction for */
    uint32_t ck_items, ck_users; /* checkpoint items, checkpoint users with interactions */
    DR_VEC(ex_item) meta;   /* per item id, grown on a PUT */
    ex_mod mod[DR_MAX_MODALITIES];
    int n_mod;
    FILE *f;
    char *fpath;
    int64_t clock;
    int have_clock;
    dr_log_pos covers, last;
    const char *src;        /* names the records being read in messages */
    double next_progress;
    dr_log_rec *buf;        /* (DR_EXPORT_READ) */
    int base_found;         /* the newest base record seen by scan_base */
    dr_base_rec base;
} exporter;

dr_export_params dr_export_default_params(void) {
    dr_export_params p = {0};
    p.timeout_ms = DR_LOG_TIMEOUT_MS_DEFAULT;
    return p;
}

dr_compact_params dr_compact_default_params(void) {
    dr_compact_params p = {0};
    return p;
}

static bool is_sqlite(const char *spec) { return !spec || strcmp(spec, "sqlite") == 0; }

/* The state folder must exist (dr__store_open would create it) and, for the sqlite log, hold
 * events.db. *has_db: whether it does. */
static dr_status check_folder(const char *dir, bool need_db, bool *has_db, dr_error *err) {
    if (!dir) return dr__fail(err, DR_ARG, "--data-dir is required");
    if (!dr__path_is_dir(dir)) return dr__fail(err, DR_IO, "%s: no such state folder", dir);
    char *db = dr__path_join(dir, "events.db");
    if (!db) return dr__fail(err, DR_NOMEM, "%s: out of memory", dir);
    *has_db = dr__path_exists(db);
    dr__free(db);
    if (need_db && !*has_db)
        return dr__fail(err, DR_IO, "%s: no events.db (not a server state folder)", dir);
    return DR_OK;
}

/* ---------------------------------------------------------------- registries */

static dr_status ex_oom(dr_error *err) { return dr__fail(err, DR_NOMEM, "export: out of memory"); }

static void item_clear(ex_item *it) {
    dr__free(it->title);
    for (uint32_t k = 0; k < it->n_attrs; k++) dr__free(it->attrs[k]);
    dr__free(it->attrs);
    memset(it, 0, sizeof *it);
}

/* Grows the modality's rows to n items (new rows absent, zero). */
static int mod_rows(ex_mod *md, size_t n) {
    size_t have = md->present.n;
    if (n <= have) return 0;
    if (dr_vec_reserve(&md->x, n * md->dim) || dr_vec_reserve(&md->present, n)) return -1;
    memset(md->x.a + have * md->dim, 0, (n - have) * md->dim * sizeof(float));
    memset(md->present.a + have, 0, n - have);
    md->x.n = n * md->dim;
    md->present.n = n;
    return 0;
}

/* The modality named name[0..len) with dimension dim, added when new. */
static dr_status mod_find(exporter *x, const char *name, size_t len, uint32_t dim, const char *where,
                          ex_mod **out, dr_error *err) {
    for (int k = 0; k < x->n_mod; k++) {
        ex_mod *md = &x->mod[k];
        if (strlen(md->name) != len || memcmp(md->name, name, len) != 0) continue;
        if (md->dim != dim)
            return dr__fail(err, DR_FORMAT, "%s: feature '%s' has %u numbers, earlier ones %u",
                            where, md->name, dim, md->dim);
        *out = md;
        return DR_OK;
    }
    if (!dr__modality_name_ok(name, len))
        return dr__fail(err, DR_FORMAT, "%s: feature name '%.*s' is not [A-Za-z0-9_.-]", where,
                        (int)DR_MIN(len, 40), name);
    if (!dim || dim > DR_MAX_FEATURE_DIM)
        return dr__fail(err, DR_FORMAT, "%s: feature '%.*s' has %u numbers (1..%u)", where,
                        (int)len, name, dim, DR_MAX_FEATURE_DIM);
    if (x->n_mod == DR_MAX_MODALITIES)
        return dr__fail(err, DR_LIMIT, "%s: more than %d feature names", where, DR_MAX_MODALITIES);
    ex_mod *md = &x->mod[x->n_mod++];
    snprintf(md->name, sizeof md->name, "%.*s", (int)len, name);
    md->dim = dim;
    *out = md;
    return DR_OK;
}

/* The export id of item s, registered when new. */
static dr_status item_id(exporter *x, const char *s, uint32_t *i, dr_error *err) {
    bool is_new = false;
    if (dr__strtab_intern(&x->items, s, strlen(s), i, &is_new) != DR_OK) return ex_oom(err);
    if (is_new) x->r->new_items++;
    return DR_OK;
}

/* ---------------------------------------------------------------- records */

static dr_status put_attrs(ex_item *it, const json_t *a, const char *where, dr_error *err) {
    size_t n = json_is_array(a) ? json_array_size(a) : json_is_object(a) ? json_object_size(a) : 0;
    if (a && !json_is_array(a) && !json_is_object(a) && !json_is_null(a))
        return dr__fail(err, DR_FORMAT, "%s: \"attributes\" is not an array or object", where);
    if (n && !(it->attrs = dr__calloc(n, sizeof *it->attrs))) return ex_oom(err);
    if (json_is_array(a)) {
        size_t k;
        const json_t *v;
        json_array_foreach(a, k, v) {
            const char *t = json_string_value(v);
            if (!t) return dr__fail(err, DR_FORMAT, "%s: attributes[%zu] is not a string", where, k);
            if (!(it->attrs[it->n_attrs++] = dr__strdup(t))) return ex_oom(err);
        }
    } else if (n) {
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)a, key, v) {
            const char *t = json_string_value(v);
            if (!t) return dr__fail(err, DR_FORMAT, "%s: attributes.%s is not a string", where, key);
            char *kv = dr__malloc(strlen(key) + strlen(t) + 2);
            if (!kv) return ex_oom(err);
            sprintf(kv, "%s=%s", key, t);
            it->attrs[it->n_attrs++] = kv;
        }
    }
    return DR_OK;
}

/* A PUT's features replace the item's (a modality it lacks becomes absent). */
static dr_status put_features(exporter *x, uint32_t i, const json_t *fs, const char *where,
                              dr_error *err) {
    if (!fs || json_is_null(fs)) return DR_OK;
    if (!json_is_object(fs)) return dr__fail(err, DR_FORMAT, "%s: \"features\" is not an object", where);
    for (int k = 0; k < x->n_mod; k++) {
        if (mod_rows(&x->mod[k], (size_t)i + 1)) return ex_oom(err);
        x->mod[k].present.a[i] = 0;
        memset(x->mod[k].x.a + (size_t)i * x->mod[k].dim, 0, x->mod[k].dim * sizeof(float));
    }
    const char *name;
    const json_t *arr;
    json_object_foreach((json_t *)fs, name, arr) {
        ex_mod *md = NULL;
        size_t n = json_array_size(arr);
        if (!json_is_array(arr) || n > DR_MAX_FEATURE_DIM)
            return dr__fail(err, DR_FORMAT, "%s: features.%s is not an array of numbers", where, name);
        dr_status st = mod_find(x, name, strlen(name), (uint32_t)n, where, &md, err);
        if (st != DR_OK) return st;
        if (mod_rows(md, (size_t)i + 1)) return ex_oom(err);
        float *row = md->x.a + (size_t)i * md->dim;
        for (size_t k = 0; k < n; k++) {
            const json_t *v = json_array_get(arr, k);
            if (!json_is_number(v))
                return dr__fail(err, DR_FORMAT, "%s: features.%s[%zu] is not a number", where, name, k);
            row[k] = (float)json_number_value(v);
        }
        md->present.a[i] = 1;
    }
    return DR_OK;
}

static dr_status take_item(exporter *x, const dr_log_rec *r, const char *where, dr_error *err) {
    uint32_t i;
    dr_status st = item_id(x, r->item, &i, err);
    if (st != DR_OK) return st;
    json_error_t je;
    json_t *o = json_loads(r->body, 0, &je);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return dr__fail(err, DR_FORMAT, "%s: item %s: the body is not a JSON object", where, r->item);
    }
    size_t need = (size_t)i + 1;
    if (x->meta.n < need) {
        if (dr_vec_reserve(&x->meta, need)) {
            json_decref(o);
            return ex_oom(err);
        }
        memset(x->meta.a + x->meta.n, 0, (need - x->meta.n) * sizeof *x->meta.a);
        x->meta.n = need;
    }
    ex_item *it = &x->meta.a[i];
    item_clear(it);
    const json_t *t = json_object_get(o, "title");
    if (t && !json_is_string(t) && !json_is_null(t))
        st = dr__fail(err, DR_FORMAT, "%s: item %s: \"title\" is not a string", where, r->item);
    else if (!(it->title = dr__strdup(json_is_string(t) ? json_string_value(t) : "")))
        st = ex_oom(err);
    if (st == DR_OK) st = put_attrs(it, json_object_get(o, "attributes"), where, err);
    if (st == DR_OK) st = put_features(x, i, json_object_get(o, "features"), where, err);
    json_decref(o);
    if (st == DR_OK) x->r->item_records++;
    return st;
}

static dr_status take_event(exporter *x, const dr_log_rec *r, dr_error *err) {
    uint32_t u, i;
    const uint32_t *h;
    bool is_new = false;
    if (!(dr_model_find_user(x->m, r->user, &u) == DR_OK && dr_model_user_history(x->m, u, &h) > 0)) {
        if (dr__strtab_intern(&x->users, r->user, strlen(r->user), &u, &is_new) != DR_OK)
            return ex_oom(err);
    }
    dr_status st = item_id(x, r->item, &i, err);
    if (st != DR_OK) return st;
    int64_t t = r->time < 0 ? 0 : r->time;
    if (x->have_clock && t < x->clock) t = x->clock; /* the server's clamp */
    x->clock = t;
    x->have_clock = 1;
    dr__dynrec_event_row(x->f, r->user, r->item, t, 1.0f, 0);
    x->r->events++;
    return DR_OK;
}

static dr_status take(exporter *x, const dr_log_rec *r, dr_error *err) {
    char pos[DR_LOG_POS_MAX], where[600];
    dr_status st = DR_OK;
    if (r->kind == DR_REC_EVENT) {
        st = take_event(x, r, err);
    } else if (r->kind == DR_REC_ITEM) {
        dr__log_pos_format(r->pos, pos);
        snprintf(where, sizeof where, "%s: log record %s", x->src, pos);
        st = take_item(x, r, where, err);
    } /* base records: the swap itself holds no data */
    if (st != DR_OK) return st;
    x->last = r->pos;
    x->r->log_records++;
    if (x->p->progress && dr__now_seconds() >= x->next_progress) {
        x->next_progress = dr__now_seconds() + 1.0;
        x->p->progress(x->p->progress_ud, "export", (size_t)x->r->log_records, 0);
    }
    return DR_OK;
}

/* Every record of archive.db after `after` (seq), in order; *last_seq the last one read. */
static dr_status drain_archive(exporter *x, uint64_t after, uint64_t *last_seq, dr_error *err) {
    *last_seq = after;
    for (;;) {
        size_t n = 0;
        dr_status st = dr__store_log_read(x->arch, *last_seq, DR_EXPORT_READ, x->buf, &n, err);
        if (st != DR_OK) return st;
        if (!n) return DR_OK;
        for (size_t k = 0; k < n; k++)
            if ((st = take(x, &x->buf[k], err)) != DR_OK) return st;
        *last_seq = x->buf[n - 1].pos.seq;
    }
}

/* The log after `after` up to `stop` (its tip when the export began). fn NULL: take. */
typedef dr_status (*ex_rec_fn)(exporter *x, const dr_log_rec *r, dr_error *err);
static dr_status drain_log(exporter *x, dr_log_pos after, dr_log_pos stop, ex_rec_fn fn,
                           dr_error *err) {
    while (dr__log_pos_cmp(after, stop) < 0) {
        size_t n = 0;
        dr_status st = dr__log_kind(x->log)->read(x->log, after, DR_EXPORT_READ, 0, x->buf, &n, err);
        if (st != DR_OK) return st;
        if (!n) return DR_OK;
        for (size_t k = 0; k < n; k++) {
            if (dr__log_pos_cmp(x->buf[k].pos, stop) > 0) return DR_OK;
            if ((st = fn(x, &x->buf[k], err)) != DR_OK) return st;
        }
        after = x->buf[n - 1].pos;
    }
    return DR_OK;
}

/* ---------------------------------------------------------------- the base */

/* A log without an index of its records (redis): the newest base record by one scan. */
static dr_status scan_base(exporter *x, const dr_log_rec *r, dr_error *err) {
    if (r->kind != DR_REC_BASE) return DR_OK;
    char pos[DR_LOG_POS_MAX], where[600];
    dr__log_pos_format(r->pos, pos);
    snprintf(where, sizeof where, "%s: log record %s", x->src, pos);
    x->base_found = 1;
    return dr__base_parse(r->body, where, &x->base, err);
}

/* The checkpoint and the position it covers: --model (covers: its metadata log_covers, else
 * none), else the newest base record, else meta model_path. */
static dr_status find_base(exporter *x, dr_log_pos stop, dr_error *err) {
    const dr_export_params *p = x->p;
    dr_status st;
    int from_record = 0;
    if (p->model_path) {
        snprintf(x->r->base, sizeof x->r->base, "%s", p->model_path);
    } else {
        uint64_t seq = 0;
        st = x->st && is_sqlite(p->log)
                 ? dr__store_last_base(x->st, &x->base_found, &seq, &x->base, err)
                 : drain_log(x, (dr_log_pos){0, 0}, stop, scan_base, err);
        if (st != DR_OK) return st;
        int found = 0;
        if (x->base_found) {
            snprintf(x->r->base, sizeof x->r->base, "%s", x->base.path);
            x->covers = x->base.covers;
            from_record = 1;
        } else if (x->st && (st = dr__store_meta_get(x->st, "model_path", x->r->base,
                                                      sizeof x->r->base, &found, err)) != DR_OK) {
            return st;
        }
        if (!x->base_found && !found)
            return dr__fail(err, DR_ARG, "%s: the log has no base record and the folder no "
                            "model_path: give the checkpoint with --model", p->data_dir);
    }
    if ((st = dr_model_load(x->r->base, &x->m, err)) != DR_OK) return st;
    const char *lc = dr_model_meta(x->m, "log_covers");
    if (!from_record && lc && dr__log_pos_parse(lc, &x->covers) != 0)
        return dr__fail(err, DR_FORMAT, "%s: metadata log_covers '%s' is not a log position",
                        x->r->base, lc);
    dr__log_pos_format(x->covers, x->r->covers);
    return DR_OK;
}

/* The checkpoint's items (same ids) and histories: interactions at times -N..-1. */
static dr_status write_base(exporter *x, dr_error *err) {
    uint32_t nu = dr_model_n_users(x->m), ni = dr_model_n_items(x->m);
    for (uint32_t i = 0; i < ni; i++) {
        const char *id = dr_model_item_id(x->m, i);
        uint32_t got;
        if (!id || dr__strtab_intern(&x->items, id, strlen(id), &got, NULL) != DR_OK) return ex_oom(err);
        if (got != i)
            return dr__fail(err, DR_FORMAT, "%s: item id '%s' is listed twice", x->r->base, id);
    }
    x->ck_items = ni;
    uint64_t total = 0;
    for (uint32_t u = 0; u < nu; u++) {
        const uint32_t *h;
        size_t n = dr_model_user_history(x->m, u, &h);
        total += n;
        x->ck_users += n > 0;
    }
    int64_t t = -(int64_t)total;
    for (uint32_t u = 0; u < nu; u++) {
        const uint32_t *h;
        size_t n = dr_model_user_history(x->m, u, &h);
        for (size_t k = 0; k < n; k++)
            dr__dynrec_event_row(x->f, dr_model_user_id(x->m, u), dr_model_item_id(x->m, h[k]), t++,
                                 1.0f, 0);
    }
    x->r->base_events = x->r->events = total;
    return DR_OK;
}

/* --data: the dataset's features for the checkpoint's items, by item id. */
static dr_status carry_features(exporter *x, dr_error *err) {
    dr_dataset *ds = NULL;
    dr_load_params lp = dr_load_default_params();
    dr_status st = dr_dataset_load(x->p->data, &lp, &ds, err);
    for (int m = 0; st == DR_OK && m < dr_dataset_n_modalities(ds); m++) {
        const char *name;
        uint32_t dim;
        const float *fx;
        const uint8_t *pr;
        ex_mod *md = NULL;
        if ((st = dr_dataset_modality(ds, m, &name, &dim, &fx, &pr)) != DR_OK ||
            (st = mod_find(x, name, strlen(name), dim, x->p->data, &md, err)) != DR_OK)
            break;
        if (mod_rows(md, x->ck_items)) {
            st = ex_oom(err);
            break;
        }
        for (uint32_t i = 0; i < x->ck_items; i++) {
            uint32_t j;
            if (dr_dataset_find_item(ds, dr_model_item_id(x->m, i), &j) != DR_OK || !pr[j]) continue;
            memcpy(md->x.a + (size_t)i * dim, fx + (size_t)j * dim, dim * sizeof(float));
            md->present.a[i] = 1;
        }
    }
    dr_dataset_free(ds);
    return st;
}

/* items.tsv (every item, export ids in order), features/, then the manifest. */
static dr_status write_catalogue(exporter *x, dr_error *err) {
    const char *out = x->p->out;
    dr_status st = dr__dynrec_open(out, "items.tsv", &x->fpath, &x->f, err);
    if (st != DR_OK) return st;
    fputs(dr__dynrec_items_header, x->f);
    DR_VEC(const char *) ck = {0}; /* a checkpoint item's attributes */
    for (uint32_t i = 0; i < x->items.n; i++) {
        const ex_item *it = i < x->meta.n ? &x->meta.a[i] : NULL;
        if (it && it->title) {
            dr__dynrec_item_row(x->f, x->items.str[i], it->title, (const char *const *)it->attrs,
                                NULL, it->n_attrs);
        } else if (i < x->ck_items) {
            size_t n = dr_model_item_attrs(x->m, i, NULL, 0);
            if (dr_vec_reserve(&ck, n + 1)) {
                dr_vec_free(&ck);
                return ex_oom(err);
            }
            n = dr_model_item_attrs(x->m, i, ck.a, n);
            dr__dynrec_item_row(x->f, x->items.str[i], dr_model_item_title(x->m, i), ck.a, NULL, n);
        } else {
            dr__dynrec_item_row(x->f, x->items.str[i], NULL, NULL, NULL, 0);
        }
    }
    dr_vec_free(&ck);
    if ((st = dr__dynrec_close(&x->fpath, &x->f, err)) != DR_OK) return st;
    const char *names[DR_MAX_MODALITIES];
    for (int k = 0; k < x->n_mod; k++) {
        ex_mod *md = &x->mod[k];
        if (mod_rows(md, x->items.n)) return ex_oom(err);
        if ((st = dr__dynrec_write_features(out, md->name, md->x.a, md->present.a, x->items.n,
                                            md->dim, err)) != DR_OK)
            return st;
        names[k] = md->name;
    }
    x->r->n_modalities = x->n_mod;
    x->r->new_users = x->users.n;
    x->r->users = x->ck_users + x->users.n;
    x->r->items = x->items.n;
    if (dr__log_pos_cmp(x->last, x->covers) < 0) x->last = x->covers;
    dr__log_pos_format(x->last, x->r->log_covers);
    const char *ds_name = dr_model_meta(x->m, "dataset");
    dr_manifest_info mi = {ds_name && *ds_name ? ds_name : "export", 1, 0, x->r->users, x->r->items,
                           (size_t)x->r->events, x->n_mod, names, x->r->log_covers,
                           x->r->log_records};
    return dr__dynrec_write_manifest(out, &mi, err);
}

static void ex_free(exporter *x) {
    if (x->f) fclose(x->f);
    dr__free(x->fpath);
    dr__free(x->buf);
    dr__log_close(x->log);
    dr__store_close(x->arch);
    dr__store_close(x->st);
    dr_model_free(x->m);
    dr__strtab_free(&x->items);
    dr__strtab_free(&x->users);
    for (size_t i = 0; i < x->meta.n; i++) item_clear(&x->meta.a[i]);
    dr_vec_free(&x->meta);
    for (int k = 0; k < x->n_mod; k++) {
        dr_vec_free(&x->mod[k].x);
        dr_vec_free(&x->mod[k].present);
    }
}

dr_status dr_state_export(const dr_export_params *p, dr_export_result *out, dr_error *err) {
    if (!p || !out) return dr__fail(err, DR_ARG, "export: NULL argument");
    if (!p->out) return dr__fail(err, DR_ARG, "export: --out is required");
    memset(out, 0, sizeof *out);
    double t0 = dr__now_seconds();
    exporter x = {0};
    x.p = p;
    x.r = out;
    x.src = is_sqlite(p->log) ? "events.db" : p->log;
    bool has_db = false;
    dr_status st = check_folder(p->data_dir, is_sqlite(p->log), &has_db, err);
    if (st != DR_OK) return st;
    dr_log_params lp = dr__log_default_params();
    lp.spec = p->log;
    lp.dir = p->data_dir;
    lp.durable = 0;
    lp.timeout_ms = p->timeout_ms ? p->timeout_ms : DR_LOG_TIMEOUT_MS_DEFAULT;
    dr_log_pos tip = {0, 0};
    uint64_t n_log = 0, arch_last = 0;
    if (!(x.buf = dr__calloc(DR_EXPORT_READ, sizeof *x.buf))) {
        st = ex_oom(err);
        goto done;
    }
    if ((has_db && (st = dr__store_open(p->data_dir, 0, &x.st, err)) != DR_OK) ||
        (is_sqlite(p->log) && (st = dr__store_open_archive(p->data_dir, &x.arch, err)) != DR_OK) ||
        (st = dr__log_open(&lp, &x.log, err)) != DR_OK ||
        (st = dr__log_kind(x.log)->tip(x.log, &tip, &n_log, err)) != DR_OK ||
        (st = find_base(&x, tip, err)) != DR_OK)
        goto done;
    if ((st = dr__mkdir_p(p->out, err)) != DR_OK ||
        (st = dr__dynrec_open(p->out, "interactions.tsv", &x.fpath, &x.f, err)) != DR_OK)
        goto done;
    fputs(dr__dynrec_interactions_header, x.f);
    if ((st = write_base(&x, err)) != DR_OK) goto done;
    if (p->data && (st = carry_features(&x, err)) != DR_OK) goto done;
    x.next_progress = dr__now_seconds() + 1.0;
    dr_log_pos after = x.covers;
    if (x.arch) {
        x.src = "archive.db";
        if ((st = drain_archive(&x, x.covers.seq, &arch_last, err)) != DR_OK) goto done;
        if (arch_last > after.seq) after.seq = arch_last;
        x.src = "events.db";
    }
    if ((st = drain_log(&x, after, tip, take, err)) != DR_OK ||
        (st = dr__dynrec_close(&x.fpath, &x.f, err)) != DR_OK ||
        (st = write_catalogue(&x, err)) != DR_OK)
        goto done;
    out->seconds = dr__now_seconds() - t0;
done:
    ex_free(&x);
    return st;
}

/* ---------------------------------------------------------------- compaction's entry */

dr_status dr_state_compact(const dr_compact_params *p, dr_compact_result *out, dr_error *err) {
    if (!p || !out) return dr__fail(err, DR_ARG, "compact: NULL argument");
    memset(out, 0, sizeof *out);
    if (!is_sqlite(p->log))
        return dr__fail(err, DR_UNSUPPORTED, "compact: %s: a Redis stream is trimmed with XTRIM "
                        "MINID (docs/SCALING.md), not by dynrec compact", p->log);
    bool has_db;
    dr_status st = check_folder(p->data_dir, true, &has_db, err);
    if (st != DR_OK) return st;
    dr_store *s = NULL;
    if ((st = dr__store_open(p->data_dir, 1, &s, err)) == DR_OK)
        st = dr__store_compact(s, p->drop, p->progress, p->progress_ud, out, err);
    dr__store_close(s);
    return st;
}
