/*
 * load_dynrec.c - dynrec's own folder format (docs/FORMATS.md), load and save:
 *   manifest.tsv       key<TAB>value lines (format, version, name, time_scale,
 *                      has_given_split, counts, modalities); optional on load
 *   interactions.tsv   (or dataset.tsv) header user<TAB>item<TAB>time<TAB>weight<TAB>split
 *   items.tsv          optional; header item<TAB>title<TAB>attributes ('|'-separated)
 *   features/NAME.npy  one row per item, with features/NAME.present.npy, per modality
 *
 * DESIGN: load and save share a file so that the escapes (\t \n \r \| \\), the split names and
 * the modality-name rule exist once for both directions, and a saved dataset loads back with
 * the same dense ids (events first, then the catalogue in saved order). The fields are split
 * without CSV quoting: the format escapes instead of quoting.
 */
#include "load_common.h"
#include "serve_log.h" /* dr__log_pos_parse: the manifest's log_covers */

#include <inttypes.h>
#include <math.h>
#include <stdio.h>

/* ------------------------------------------------------------------ dynrec folder: load */

static const char *const split_names[] = {"-", "train", "valid", "test"};

/* Undoes dynrec's TSV escapes (\t \n \r \| \\) of s[0..n) into out (n + 1 bytes). */
static size_t unescape(const char *s, size_t n, char *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < n) {
            c = s[++i];
            c = c == 't' ? '\t' : c == 'n' ? '\n' : c == 'r' ? '\r' : c;
        }
        out[k++] = c;
    }
    out[k] = 0;
    return k;
}

static int column(const dr_fields *rd, const char *name) {
    for (size_t k = 0; k < DR_MIN(rd->nf, (size_t)DR_LOAD_MAX_FIELDS); k++)
        if (dr__span_eq(rd->f[k], name)) return (int)k;
    return -1;
}

typedef struct manifest {
    bool have;
    char name[64];
    double time_scale;                                   /* -1 = not given */
    int64_t has_given_split, n_users, n_items, n_events; /* -1 = not given */
    char modalities[512];
    char log_covers[DR_LOG_POS_MAX]; /* "" = not exported from a server's log */
    uint64_t log_records;
} manifest;

static dr_status read_manifest(const char *dir, const dr_load_params *p, manifest *m,
                               dr_error *err) {
    char *path = dr__path_join(dir, "manifest.tsv"), *buf = NULL;
    size_t len;
    dr_load_report scratch = {0};
    dr_load_params strict = *p;
    dr_fields rd;
    int q;
    memset(m, 0, sizeof *m);
    m->n_users = m->n_items = m->n_events = m->has_given_split = -1;
    m->time_scale = -1;
    if (!path) return dr__loader_oom(err, dir);
    dr_status s = DR_OK;
    if (!dr__path_exists(path)) goto done;
    if ((s = dr__read_file(path, p->max_file, &buf, &len, err)) != DR_OK) goto done;
    m->have = true;
    strict.strict = 1;
    dr__fields_init(&rd, buf, len, path, &strict, &scratch, err, '\t', false);
    while ((q = dr__fields_next(&rd)) > 0) {
        dr_span k = rd.f[0], v = rd.f[1];
        char val[512];
        int64_t iv = 0;
        bool ok = rd.nf == 2 && v.n < sizeof val;
        if (!ok) {
            s = dr__fail(err, DR_FORMAT, "%s:%zu: expected key<TAB>value", path, rd.ln.no);
            break;
        }
        unescape(v.s, v.n, val);
        if (dr__span_eq(k, "format")) {
            ok = strcmp(val, "dynrec") == 0;
        } else if (dr__span_eq(k, "version")) {
            if (strcmp(val, "1") != 0) {
                s = dr__fail(err, DR_UNSUPPORTED, "%s:%zu: version %s (this build reads 1)", path,
                            rd.ln.no, val);
                break;
            }
        } else if (dr__span_eq(k, "name")) {
            snprintf(m->name, sizeof m->name, "%s", val);
        } else if (dr__span_eq(k, "time_scale")) {
            ok = dr__parse_f64(v.s, v.n, &m->time_scale) && m->time_scale >= 0;
        } else if (dr__span_eq(k, "modalities")) {
            snprintf(m->modalities, sizeof m->modalities, "%s", val);
        } else if (dr__span_eq(k, "has_given_split") || dr__span_eq(k, "n_users") ||
                   dr__span_eq(k, "n_items") || dr__span_eq(k, "n_events")) {
            ok = dr__parse_i64(v.s, v.n, &iv) && iv >= 0;
            *(dr__span_eq(k, "has_given_split") ? &m->has_given_split
              : dr__span_eq(k, "n_users")       ? &m->n_users
              : dr__span_eq(k, "n_items")       ? &m->n_items
                                               : &m->n_events) = iv;
        } else if (dr__span_eq(k, "log_covers")) {
            dr_log_pos lp;
            ok = v.n < sizeof m->log_covers && dr__log_pos_parse(val, &lp) == 0;
            if (ok) snprintf(m->log_covers, sizeof m->log_covers, "%s", val);
        } else if (dr__span_eq(k, "log_records")) {
            ok = dr__parse_i64(v.s, v.n, &iv) && iv >= 0;
            m->log_records = (uint64_t)iv;
        } /* other keys: written by a newer version, ignored */
        if (!ok) {
            s = dr__fail(err, DR_FORMAT, "%s:%zu: bad manifest line", path, rd.ln.no);
            break;
        }
    }
    if (s == DR_OK && q < 0) s = rd.ln.status;
    dr__fields_free(&rd);
done:
    dr__free(buf);
    dr__free(path);
    return s;
}

/* items.tsv rows kept until the dataset exists: spans into the file's buffer. */
typedef struct item_row {
    dr_span id, title, attrs;
    size_t line;
} item_row;

typedef struct dyn_state {
    char *ibuf;                 /* items.tsv contents */
    char *ipath;
    DR_VEC(item_row) rows;
    DR_VEC(char) scratch;
    DR_VEC(char) scratch2;
} dyn_state;

static dr_status dyn_interactions(const char *dir, const dr_load_params *p, dr_builder *b,
                                  dr_load_report *r, dyn_state *st, dr_error *err) {
    char *path = dr__path_join(dir, "interactions.tsv"), *buf = NULL;
    size_t len, ok = 0;
    dr_fields rd;
    int q, cu = -1, ci = -1, ct = -1, cw = -1, cs = -1;
    if (!path) return dr__loader_oom(err, dir);
    if (!dr__path_exists(path)) {
        dr__free(path);
        if (!(path = dr__path_join(dir, "dataset.tsv"))) return dr__loader_oom(err, dir);
    }
    dr_status s = dr__read_file(path, p->max_file, &buf, &len, err);
    if (s != DR_OK) goto done;
    dr__fields_init(&rd, buf, len, path, p, r, err, '\t', false);
    size_t ncols = 0;
    while ((q = dr__fields_next(&rd)) > 0) {
        if (!ncols) {
            r->rows_read--;
            ncols = rd.nf;
            cu = column(&rd, "user"), ci = column(&rd, "item"), ct = column(&rd, "time");
            cw = column(&rd, "weight"), cs = column(&rd, "split");
            if (cu < 0 || ci < 0) {
                s = dr__fail(err, DR_FORMAT, "%s:%zu: expected the header "
                            "user<TAB>item<TAB>time<TAB>weight<TAB>split", path, rd.ln.no);
                break;
            }
            continue;
        }
        dr_span u = rd.f[cu], it = rd.f[ci];
        int64_t t = 0;
        float w = 1;
        int tag = 0;
        if (cs >= 0 && rd.nf == ncols)
            for (tag = 3; tag > 0 && !dr__span_eq(rd.f[cs], split_names[tag]); tag--) {}
        if (rd.nf != ncols)
            s = dr__lines_bad(&rd.ln, DR_SKIP_COLUMNS, "expected %zu columns, found %zu", ncols, rd.nf);
        else if (!u.n || !it.n)
            s = dr__lines_bad(&rd.ln, DR_SKIP_EMPTY_ID, "empty user or item id");
        else if ((ct >= 0 && !dr__parse_i64(rd.f[ct].s, rd.f[ct].n, &t)) ||
                 (cw >= 0 && !dr__parse_weight(rd.f[cw], &w)))
            s = dr__lines_bad(&rd.ln, DR_SKIP_NUMBER, "malformed time or weight");
        else if (cs >= 0 && tag == 0 && rd.f[cs].n && !dr__span_eq(rd.f[cs], "-"))
            s = dr__lines_bad(&rd.ln, DR_SKIP_FIELD, "split must be -, train, valid or test");
        else if (dr_vec_reserve(&st->scratch, u.n + 1) || dr_vec_reserve(&st->scratch2, it.n + 1))
            s = dr__loader_oom(err, path);
        else {
            size_t un = unescape(u.s, u.n, st->scratch.a), in = unescape(it.s, it.n, st->scratch2.a);
            s = dr__builder_add_event(b, st->scratch.a, un, st->scratch2.a, in, t, w, (uint8_t)tag);
            if (s != DR_OK)
                s = dr__fail(err, s, "%s:%zu: out of memory or too many interactions", path, rd.ln.no);
            else
                r->rows_ok++, ok++;
        }
        if (s != DR_OK) break;
    }
    if (s == DR_OK && q < 0) s = rd.ln.status;
    if (s == DR_OK && !ok)
        s = dr__fail(err, DR_FORMAT, "%s: no interactions accepted", path);
    dr__fields_free(&rd);
done:
    dr__free(buf);
    dr__free(path);
    return s;
}

/* Reads items.tsv (optional) and registers its items as catalogue items. */
static dr_status dyn_items(const char *dir, const dr_load_params *p, dr_builder *b,
                           dr_load_report *r, dyn_state *st, dr_error *err) {
    size_t len;
    dr_fields rd;
    int q, ci = -1, ctl = -1, ca = -1;
    if (!(st->ipath = dr__path_join(dir, "items.tsv"))) return dr__loader_oom(err, dir);
    if (!dr__path_exists(st->ipath)) return DR_OK;
    dr_status s = dr__read_file(st->ipath, p->max_file, &st->ibuf, &len, err);
    if (s != DR_OK) return s;
    dr__fields_init(&rd, st->ibuf, len, st->ipath, p, r, err, '\t', false);
    size_t ncols = 0;
    while ((q = dr__fields_next(&rd)) > 0) {
        if (!ncols) {
            r->rows_read--;
            ncols = rd.nf;
            ci = column(&rd, "item"), ctl = column(&rd, "title"), ca = column(&rd, "attributes");
            if (ci < 0) {
                s = dr__fail(err, DR_FORMAT, "%s:%zu: expected the header "
                            "item<TAB>title<TAB>attributes", st->ipath, rd.ln.no);
                break;
            }
            continue;
        }
        item_row row = {rd.f[ci], {"", 0}, {"", 0}, rd.ln.no};
        if (ctl >= 0 && (size_t)ctl < rd.nf) row.title = rd.f[ctl];
        if (ca >= 0 && (size_t)ca < rd.nf) row.attrs = rd.f[ca];
        if (rd.nf != ncols)
            s = dr__lines_bad(&rd.ln, DR_SKIP_COLUMNS, "expected %zu columns, found %zu", ncols, rd.nf);
        else if (!row.id.n)
            s = dr__lines_bad(&rd.ln, DR_SKIP_EMPTY_ID, "empty item id");
        else if (dr_vec_reserve(&st->scratch, row.id.n + 1) || dr_vec_push(&st->rows, row) ||
                 dr__builder_add_item(b, st->scratch.a,
                                     unescape(row.id.s, row.id.n, st->scratch.a)) != DR_OK)
            s = dr__loader_oom(err, st->ipath);
        if (s != DR_OK) break;
    }
    if (s == DR_OK && q < 0) s = rd.ln.status;
    dr__fields_free(&rd);
    return s;
}

/* Applies the kept items.tsv rows; map[r] receives the dense id of row r. */
static dr_status dyn_item_meta(dr_dataset *ds, dyn_state *st, uint32_t *map, dr_error *err) {
    dr_attr_acc acc = {0};
    uint8_t *seen = dr__calloc((size_t)ds->n_items + 1, 1);
    dr_status s = DR_OK;
    if (!seen) return dr__loader_oom(err, st->ipath);
    for (size_t k = 0; k < st->rows.n && s == DR_OK; k++) {
        item_row *row = &st->rows.a[k];
        size_t need = DR_MAX(row->id.n, DR_MAX(row->title.n, row->attrs.n)) + 1;
        if (dr_vec_reserve(&st->scratch, need)) {
            s = dr__loader_oom(err, st->ipath);
            break;
        }
        char *tmp = st->scratch.a;
        uint32_t i = dr__strtab_find(&ds->items, tmp, unescape(row->id.s, row->id.n, tmp));
        if (i == UINT32_MAX) {
            s = dr__fail(err, DR_INTERNAL, "%s:%zu: item %s was not registered", st->ipath,
                        row->line, tmp);
            break;
        }
        map[k] = i;
        if (seen[i]) { /* rows were counted as read by dyn_items */
            dr__report_skip(&ds->report, DR_SKIP_DUPLICATE, "%s:%zu: item %s listed twice",
                           st->ipath, row->line, tmp);
            continue;
        }
        seen[i] = 1;
        ds->report.rows_ok++;
        if (row->title.n) {
            size_t n = unescape(row->title.s, row->title.n, tmp);
            if (dr__dataset_set_title(ds, i, tmp, n) != DR_OK) s = dr__loader_oom(err, st->ipath);
        }
        /* attributes: split at unescaped '|', then unescape each */
        const char *a = row->attrs.s, *end = a + row->attrs.n;
        while (s == DR_OK && a < end) {
            const char *e = a;
            while (e < end && *e != '|') e += *e == '\\' && e + 1 < end ? 2 : 1;
            size_t n = unescape(a, (size_t)(e - a), tmp);
            if (n && dr__attr_acc_add(ds, &acc, i, NULL, tmp, n, false) != DR_OK)
                s = dr__loader_oom(err, st->ipath);
            a = e + 1;
        }
    }
    if (s == DR_OK) s = dr__attr_acc_finish(ds, &acc, err);
    dr__attr_acc_free(&acc);
    dr__free(seen);
    return s;
}

bool dr__modality_name_ok(const char *s, size_t n) {
    if (n == 0 || n >= sizeof ((dr_modality *)0)->name || s[0] == '.') return false;
    for (size_t k = 0; k < n; k++)
        if (!((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= 'A' && s[k] <= 'Z') ||
              (s[k] >= '0' && s[k] <= '9') || s[k] == '_' || s[k] == '-' || s[k] == '.'))
            return false;
    return true;
}

/* Loads features/<name>.npy (+ .present.npy); row r belongs to dense item map[r]. */
static dr_status dyn_modality(dr_dataset *ds, const char *dir, const char *name,
                              const uint32_t *map, uint32_t nrows, const dr_load_params *p,
                              dr_error *err) {
    char rel[96], *path = NULL, *ppath = NULL;
    dr_npy a = {0}, pr = {0};
    float *x = NULL;
    uint8_t *present = NULL;
    dr_status s;
    snprintf(rel, sizeof rel, "features/%s.npy", name);
    if (!(path = dr__path_join(dir, rel))) goto nomem;
    snprintf(rel, sizeof rel, "features/%s.present.npy", name);
    if (!(ppath = dr__path_join(dir, rel))) goto nomem;
    if ((s = dr__npy_read(path, p->max_file, &a, err)) != DR_OK) goto fail;
    if (dr__path_exists(ppath) && (s = dr__npy_read(ppath, p->max_file, &pr, err)) != DR_OK)
        goto fail;
    if (a.rows != nrows || (pr.data && (pr.rows != nrows || pr.cols != 1))) {
        s = dr__fail(err, DR_FORMAT, "%s: %u rows, expected %u (one per item of items.tsv)",
                    pr.data && pr.rows != nrows ? ppath : path,
                    pr.data && pr.rows != nrows ? pr.rows : a.rows, nrows);
        goto fail;
    }
    x = dr__calloc((size_t)ds->n_items * a.cols, sizeof *x);
    present = dr__calloc((size_t)ds->n_items + 1, 1);
    if (!x || !present) goto nomem;
    for (uint32_t r = 0; r < nrows; r++) {
        const float *src = a.data + (size_t)r * a.cols;
        bool any = false, bad = false;
        for (uint32_t c = 0; c < a.cols; c++) any |= src[c] != 0, bad |= !isfinite(src[c]);
        bool on = pr.data ? pr.data[r] != 0 : any && !bad;
        if (!on) continue;
        if (bad) {
            s = dr__fail(err, DR_FORMAT, "%s: row %u: NaN or infinite value", path, r);
            goto fail;
        }
        memcpy(x + (size_t)map[r] * a.cols, src, (size_t)a.cols * sizeof *x);
        present[map[r]] = 1;
    }
    s = dr__dataset_add_modality(ds, name, a.cols, x, present, err);
    goto fail;
nomem:
    s = dr__loader_oom(err, dir);
fail:
    dr__free(path);
    dr__free(ppath);
    dr__npy_free(&a);
    dr__npy_free(&pr);
    dr__free(x);
    dr__free(present);
    return s;
}

bool dr__detect_dynrec(const char *dir) {
    return dr__dir_has(dir, "interactions.tsv") || dr__dir_has(dir, "dataset.tsv");
}

dr_status dr__load_dynrec(const char *dir, const dr_load_params *p, dr_dataset **out,
                         dr_error *err) {
    dr_builder *b = NULL;
    dr_dataset *ds = NULL;
    dr_load_report rep = {0};
    dyn_state st = {0};
    manifest m;
    uint32_t *map = NULL;
    char name[64];
    *out = NULL;
    dr_status s = read_manifest(dir, p, &m, err);
    if (s != DR_OK) return s;
    if ((s = dr__builder_create(&b)) != DR_OK) return dr__loader_oom(err, dir);
    /* events first, then the catalogue: dense ids come out as they were saved */
    if ((s = dyn_interactions(dir, p, b, &rep, &st, err)) != DR_OK ||
        (s = dyn_items(dir, p, b, &rep, &st, err)) != DR_OK)
        goto fail;
    dr__base_name(dir, false, name, sizeof name);
    double ts = m.time_scale >= 0 ? m.time_scale : p->time_scale ? p->time_scale : 1;
    if ((s = dr__loader_build(b, &rep, dir, DR_FMT_DYNREC, m.name[0] ? m.name : name, ts, &ds,
                             err)) != DR_OK)
        goto fail;
    for (size_t k = 0; k < ds->n_events && m.has_given_split < 0; k++)
        if (ds->ev_tag[k] != DR_TAG_NONE) m.has_given_split = 1;
    ds->has_given_split = m.has_given_split > 0;
    snprintf(ds->log_covers, sizeof ds->log_covers, "%s", m.log_covers);
    ds->log_records = m.log_records;
    uint32_t nrows = st.ibuf ? (uint32_t)st.rows.n : ds->n_items;
    if (!(map = dr__malloc(((size_t)nrows + 1) * sizeof *map))) {
        s = dr__loader_oom(err, dir);
        goto fail;
    }
    for (uint32_t r = 0; r < nrows; r++) map[r] = r;
    if (st.ibuf && (s = dyn_item_meta(ds, &st, map, err)) != DR_OK) goto fail;
    for (const char *a = m.modalities; *a;) {
        const char *e = strchr(a, ',');
        size_t n = e ? (size_t)(e - a) : strlen(a);
        char mod[32];
        if (!dr__modality_name_ok(a, n)) {
            s = dr__fail(err, DR_FORMAT, "%s/manifest.tsv: bad modality name '%.*s'", dir,
                        (int)DR_MIN(n, 40), a);
            goto fail;
        }
        snprintf(mod, sizeof mod, "%.*s", (int)n, a);
        if ((s = dyn_modality(ds, dir, mod, map, nrows, p, err)) != DR_OK) goto fail;
        a += n + (e != NULL);
    }
    if ((m.n_users >= 0 && m.n_users != ds->n_users) ||
        (m.n_items >= 0 && m.n_items != ds->n_items) ||
        (m.n_events >= 0 && (size_t)m.n_events != ds->n_events)) {
        s = dr__fail(err, DR_FORMAT, "%s/manifest.tsv: says %" PRId64 " users, %" PRId64
                    " items, %" PRId64 " events; the files hold %u, %u, %zu",
                    dir, m.n_users, m.n_items, m.n_events, ds->n_users, ds->n_items,
                    ds->n_events);
        goto fail;
    }
    *out = ds;
    ds = NULL;
fail:
    dr__builder_free(b);
    dr_dataset_free(ds);
    dr__free(map);
    dr__free(st.ibuf);
    dr__free(st.ipath);
    dr_vec_free(&st.rows);
    dr_vec_free(&st.scratch);
    dr_vec_free(&st.scratch2);
    return s;
}

/* ------------------------------------------------------------------ dynrec folder: save */

/* The writers below are shared by dr_dataset_save and the server's export (serve_export.c),
 * so the escapes, the headers and the manifest keys exist once. */
const char dr__dynrec_interactions_header[] = "user\titem\ttime\tweight\tsplit\n";
const char dr__dynrec_items_header[] = "item\ttitle\tattributes\n";

void dr__dynrec_put_esc(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '\t': fputs("\\t", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\\': fputs("\\\\", f); break;
        case '|': fputs("\\|", f); break;
        default: putc(*s, f);
        }
    }
}

void dr__dynrec_event_row(FILE *f, const char *user, const char *item, int64_t time, float weight,
                          uint8_t tag) {
    dr__dynrec_put_esc(f, user);
    putc('\t', f);
    dr__dynrec_put_esc(f, item);
    fprintf(f, "\t%" PRId64 "\t%.9g\t%s\n", time, (double)weight, split_names[tag < 4 ? tag : 0]);
}

void dr__dynrec_item_row(FILE *f, const char *item, const char *title, const char *const *strs,
                         const uint32_t *idx, size_t n) {
    dr__dynrec_put_esc(f, item);
    putc('\t', f);
    if (title) dr__dynrec_put_esc(f, title);
    putc('\t', f);
    for (size_t k = 0; k < n; k++) {
        if (k) putc('|', f);
        dr__dynrec_put_esc(f, strs[idx ? idx[k] : k]);
    }
    putc('\n', f);
}

dr_status dr__dynrec_open(const char *dir, const char *file, char **path, FILE **f,
                          dr_error *err) {
    if (!(*path = dr__path_join(dir, file))) return dr__loader_oom(err, dir);
    if (!(*f = fopen(*path, "wb"))) return dr__fail(err, DR_IO, "%s: cannot create", *path);
    return DR_OK;
}

dr_status dr__dynrec_close(char **path, FILE **f, dr_error *err) {
    bool ok = !ferror(*f);
    if (fclose(*f) != 0) ok = false;
    *f = NULL;
    dr_status s = ok ? DR_OK : dr__fail(err, DR_IO, "%s: write failed", *path);
    dr__free(*path);
    *path = NULL;
    return s;
}

dr_status dr__dynrec_write_manifest(const char *dir, const dr_manifest_info *m, dr_error *err) {
    FILE *f = NULL;
    char *path = NULL;
    dr_status s = dr__dynrec_open(dir, "manifest.tsv", &path, &f, err);
    if (s != DR_OK) {
        dr__free(path);
        return s;
    }
    fputs("format\tdynrec\nversion\t1\nname\t", f);
    dr__dynrec_put_esc(f, m->name);
    fprintf(f, "\ntime_scale\t%.17g\nhas_given_split\t%d\nn_users\t%u\nn_items\t%u\n"
            "n_events\t%zu\nmodalities\t", m->time_scale, m->has_given_split ? 1 : 0,
            m->n_users, m->n_items, m->n_events);
    for (int k = 0; k < m->n_mod; k++) fprintf(f, "%s%s", k ? "," : "", m->modalities[k]);
    fputc('\n', f);
    if (m->log_covers && m->log_covers[0])
        fprintf(f, "log_covers\t%s\nlog_records\t%" PRIu64 "\n", m->log_covers, m->log_records);
    return dr__dynrec_close(&path, &f, err);
}

dr_status dr__dynrec_write_features(const char *dir, const char *name, const float *x,
                                    const uint8_t *present, uint32_t rows, uint32_t dim,
                                    dr_error *err) {
    char rel[96], *path = NULL;
    if (!dr__modality_name_ok(name, strlen(name)))
        return dr__fail(err, DR_ARG, "modality name '%s' cannot be a file name", name);
    if (!(path = dr__path_join(dir, "features"))) return dr__loader_oom(err, dir);
    dr_status s = dr__mkdir_p(path, err);
    dr__free(path);
    if (s != DR_OK) return s;
    snprintf(rel, sizeof rel, "features/%s.npy", name);
    if (!(path = dr__path_join(dir, rel))) return dr__loader_oom(err, dir);
    s = dr__npy_write_f32(path, x, rows, dim, err);
    dr__free(path);
    if (s != DR_OK) return s;
    snprintf(rel, sizeof rel, "features/%s.present.npy", name);
    if (!(path = dr__path_join(dir, rel))) return dr__loader_oom(err, dir);
    s = dr__npy_write_u8(path, present, rows, err);
    dr__free(path);
    return s;
}

dr_status dr_dataset_save(const dr_dataset *ds, const char *dir, dr_error *err) {
    FILE *f = NULL;
    char *path = NULL;
    const char *mods[DR_MAX_MODALITIES];
    for (int m = 0; m < ds->n_mod; m++) {
        if (!dr__modality_name_ok(ds->mod[m].name, strlen(ds->mod[m].name)))
            return dr__fail(err, DR_ARG, "modality name '%s' cannot be a file name",
                           ds->mod[m].name);
        mods[m] = ds->mod[m].name;
    }
    dr_status s = dr__mkdir_p(dir, err);
    if (s != DR_OK) return s;

    dr_manifest_info mi = {ds->name, ds->time_scale, ds->has_given_split, ds->n_users,
                           ds->n_items, ds->n_events, ds->n_mod, mods, ds->log_covers,
                           ds->log_records};
    if ((s = dr__dynrec_write_manifest(dir, &mi, err)) != DR_OK) goto fail;

    if ((s = dr__dynrec_open(dir, "interactions.tsv", &path, &f, err)) != DR_OK) goto fail;
    fputs(dr__dynrec_interactions_header, f);
    for (size_t k = 0; k < ds->n_events; k++)
        dr__dynrec_event_row(f, ds->users.str[ds->ev_user[k]], ds->items.str[ds->ev_item[k]],
                             ds->ev_time[k], ds->ev_weight[k], ds->ev_tag[k]);
    if ((s = dr__dynrec_close(&path, &f, err)) != DR_OK) goto fail;

    if ((s = dr__dynrec_open(dir, "items.tsv", &path, &f, err)) != DR_OK) goto fail;
    fputs(dr__dynrec_items_header, f);
    for (uint32_t i = 0; i < ds->n_items; i++) {
        size_t lo = ds->item_attr_off ? ds->item_attr_off[i] : 0;
        size_t hi = ds->item_attr_off ? ds->item_attr_off[i + 1] : 0;
        dr__dynrec_item_row(f, ds->items.str[i], ds->title ? ds->title[i] : NULL,
                            (const char *const *)ds->attrs.str,
                            ds->item_attr ? ds->item_attr + lo : NULL, hi - lo);
    }
    if ((s = dr__dynrec_close(&path, &f, err)) != DR_OK) goto fail;

    for (int m = 0; m < ds->n_mod && s == DR_OK; m++)
        s = dr__dynrec_write_features(dir, ds->mod[m].name, ds->mod[m].x, ds->mod[m].present,
                                      ds->n_items, ds->mod[m].dim, err);
fail:
    if (f) fclose(f);
    dr__free(path);
    return s;
}
