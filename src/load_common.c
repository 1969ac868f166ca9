/*
 * load_common.c - the steps the dataset loaders share (declared in load_common.h): a line of
 * load_lines.c split into delimited fields, the delimited row parser (dr__parse_delimited: the
 * delimited loader's, and also how the MovieLens, Amazon CSV and TikTok loaders read their
 * interaction files), reading a folder's files in order, finishing a builder into a dataset,
 * collecting item attributes, and dr__dir_has for the detectors.
 *
 * DESIGN: each file is read whole (dr__read_file, size-capped) and walked by load_lines.c
 * (BOM, CR, blank lines, over-long lines and invalid UTF-8, shared with load_amazon_json.c);
 * broken quoting becomes a counted bad row before any field is looked at. Fields are spans
 * into the buffer (quoted fields with "" escapes are unescaped into a per-row scratch buffer),
 * so accepted rows cost no allocation besides the builder's interning. Rows go to a
 * dr_builder, which owns the PROTOCOL order (stable time sort, dense ids by first appearance);
 * metadata and features are attached afterwards by external id. The row parser is here, not
 * in load_delimited.c, because four loaders read through it; this file calls no loader and
 * not the format table. Rejected: a streaming reader with fixed buffers (the inputs are
 * megabytes; whole-file reads keep the code simple and make the parsers callable on fuzz
 * buffers) and a full RFC 4180 parser (quoted newlines never occur in the supported datasets;
 * such a line is reported as bad).
 */
#include "load_common.h"

#include <float.h>
#include <stdio.h>

/* ------------------------------------------------------------------ fields of a line */

void dr__fields_init(dr_fields *rd, const char *buf, size_t len, const char *name,
                    const dr_load_params *p, dr_load_report *r, dr_error *err, char delim,
                    bool quotes) {
    memset(rd, 0, sizeof *rd);
    dr__lines_init(&rd->ln, buf, len, name, p, r, err);
    rd->delim = delim;
    rd->quotes = quotes;
}

static char detect_delim(const char *s, size_t n) {
    size_t tab = 0, comma = 0, semi = 0;
    bool inq = false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') inq = !inq;
        else if (!inq) tab += s[i] == '\t', comma += s[i] == ',', semi += s[i] == ';';
    }
    if (tab && tab >= comma && tab >= semi) return '\t';
    if (comma && comma >= semi) return ',';
    return semi ? ';' : '\t';
}

dr_span dr__span_trim(const char *s, size_t n) {
    while (n && *s == ' ') s++, n--;
    while (n && s[n - 1] == ' ') n--;
    return (dr_span){s, n};
}

/* Splits s[0..n) into rd->f. Returns 0, 1 for broken quoting, -1 when out of memory. */
static int split(dr_fields *rd, const char *s, size_t n) {
    if (!rd->delim) rd->delim = detect_delim(s, n);
    if (dr_vec_reserve(&rd->unq, n + 1)) return -1;
    rd->unq.n = 0;
    rd->nf = 0;
    for (size_t i = 0;; i++) { /* i is at the start of a field */
        dr_span fld;
        if (rd->quotes && i < n && s[i] == '"') {
            size_t j = i + 1;
            bool esc = false;
            while (j < n && !(s[j] == '"' && (j + 1 == n || s[j + 1] != '"'))) {
                if (s[j] == '"') esc = true, j++;
                j++;
            }
            if (j >= n || (j + 1 < n && s[j + 1] != rd->delim)) return 1;
            fld = (dr_span){s + i + 1, j - i - 1};
            if (esc) {
                char *o = rd->unq.a + rd->unq.n;
                size_t m = 0;
                for (size_t k = i + 1; k < j; k++) {
                    o[m++] = s[k];
                    if (s[k] == '"') k++;
                }
                fld = (dr_span){o, m};
                rd->unq.n += m;
            }
            i = j + 1;
        } else {
            const char *e = memchr(s + i, rd->delim, n - i);
            size_t j = e ? (size_t)(e - s) : n;
            fld = rd->quotes ? dr__span_trim(s + i, j - i) : (dr_span){s + i, j - i};
            i = j;
        }
        if (rd->nf < DR_LOAD_MAX_FIELDS) rd->f[rd->nf] = fld;
        rd->nf++;
        if (i >= n) return 0;
    }
}

/* Next non-blank line, split: 1 = a row in rd->f, 0 = end, -1 = error (rd->ln.status and
 * its err). Over-long lines, invalid UTF-8 and broken quoting are counted as bad rows and
 * skipped. */
int dr__fields_next(dr_fields *rd) {
    const char *s;
    size_t n;
    int q;
    while ((q = dr__lines_next(&rd->ln, &s, &n)) > 0) {
        int sp = split(rd, s, n);
        if (sp == 0) return 1;
        dr_status st = sp < 0 ? dr__fail(rd->ln.err, DR_NOMEM, "%s:%zu: out of memory",
                                        rd->ln.name, rd->ln.no)
                              : dr__lines_bad(&rd->ln, DR_SKIP_COLUMNS, "unbalanced quotes");
        if (st != DR_OK) {
            rd->ln.status = st;
            return -1;
        }
    }
    return q;
}

void dr__fields_free(dr_fields *rd) { dr_vec_free(&rd->unq); }

bool dr__span_eq(dr_span a, const char *s) { return a.n == strlen(s) && memcmp(a.s, s, a.n) == 0; }

bool dr__span_int(dr_span a) {
    int64_t v;
    return dr__parse_i64(a.s, a.n, &v);
}

/* Case-insensitive ASCII substring test. */
static bool span_has(dr_span a, const char *w) {
    size_t m = strlen(w);
    for (size_t i = 0; i + m <= a.n; i++) {
        size_t k = 0;
        while (k < m && (a.s[i + k] | 0x20) == w[k]) k++;
        if (k == m) return true;
    }
    return false;
}

bool dr__parse_weight(dr_span a, float *w) {
    double v;
    if (!dr__parse_f64(a.s, a.n, &v) || v > FLT_MAX || v < -FLT_MAX) return false;
    *w = (float)v;
    return true;
}

dr_status dr__loader_oom(dr_error *err, const char *what) {
    return dr__fail(err, DR_NOMEM, "%s: out of memory", what);
}

/* ------------------------------------------------------------------ delimited rows */

/* Checks one data row; returns -1 when good, else a skip reason with msg filled in. */
static int check_row(const dr_fields *rd, size_t ncols, int cu, int ci, int ct, int cw,
                     int64_t *t, float *w, char *msg, size_t cap) {
    if (rd->nf != ncols) {
        snprintf(msg, cap, "expected %zu columns, found %zu", ncols, rd->nf);
        return DR_SKIP_COLUMNS;
    }
    if (!rd->f[cu].n || !rd->f[ci].n) {
        snprintf(msg, cap, "empty %s id", rd->f[cu].n ? "item" : "user");
        return DR_SKIP_EMPTY_ID;
    }
    *t = 0;
    if (ct >= 0 && !dr__parse_i64(rd->f[ct].s, rd->f[ct].n, t)) {
        snprintf(msg, cap, "time '%.*s' is not an integer", (int)DR_MIN(rd->f[ct].n, 40),
                 rd->f[ct].s);
        return DR_SKIP_NUMBER;
    }
    *w = 1.0f;
    if (cw >= 0 && !dr__parse_weight(rd->f[cw], w)) {
        snprintf(msg, cap, "weight '%.*s' is not a finite number", (int)DR_MIN(rd->f[cw].n, 40),
                 rd->f[cw].s);
        return DR_SKIP_NUMBER;
    }
    return -1;
}

/* Header detection on the first line: a non-integer time (or non-numeric weight) column, or,
 * with neither, a user/item field that is not an integer and names itself "user"/"item". */
static bool looks_like_header(const dr_fields *rd, int cu, int ci, int ct, int cw) {
    if (ct >= 0) return !dr__span_int(rd->f[ct]);
    double v;
    if (cw >= 0) return !dr__parse_f64(rd->f[cw].s, rd->f[cw].n, &v);
    return (!dr__span_int(rd->f[cu]) && span_has(rd->f[cu], "user")) ||
           (!dr__span_int(rd->f[ci]) && span_has(rd->f[ci], "item"));
}

dr_status dr__parse_delimited(const char *buf, size_t len, const char *name,
                             const dr_load_params *p, uint8_t tag, dr_builder *b,
                             dr_load_report *r, dr_error *err) {
    int cu = p->col_user, ci = p->col_item, ct = -1, cw = -1, q;
    if (cu < 0 || ci < 0 || cu >= DR_LOAD_MAX_FIELDS || ci >= DR_LOAD_MAX_FIELDS || p->col_time >= DR_LOAD_MAX_FIELDS ||
        p->col_weight >= DR_LOAD_MAX_FIELDS)
        return dr__fail(err, DR_ARG, "%s: column numbers must be below %d (user and item >= 0)",
                       name, DR_LOAD_MAX_FIELDS);
    dr_fields rd;
    dr__fields_init(&rd, buf, len, name, p, r, err, p->delimiter, true);
    dr_status s = DR_OK;
    size_t ncols = 0, ok = 0, read0 = r->rows_read;
    char msg[160];
    while ((q = dr__fields_next(&rd)) > 0) {
        if (!ncols) { /* the first good line fixes the layout */
            ncols = rd.nf;
            if ((size_t)cu >= ncols || (size_t)ci >= ncols) {
                s = dr__fail(err, DR_FORMAT,
                            "%s:%zu: %zu column(s) with delimiter '%s'; need the user column %d "
                            "and the item column %d",
                            name, rd.ln.no, ncols, rd.delim == '\t' ? "\\t" : (char[2]){rd.delim, 0},
                            cu, ci);
                goto fail;
            }
            ct = p->col_time >= 0 && (size_t)p->col_time < ncols ? p->col_time : -1;
            cw = p->col_weight >= 0 && (size_t)p->col_weight < ncols ? p->col_weight : -1;
            if (p->header == 1 || (p->header < 0 && looks_like_header(&rd, cu, ci, ct, cw))) {
                r->rows_read--;
                continue;
            }
        }
        int64_t t;
        float w;
        int why = check_row(&rd, ncols, cu, ci, ct, cw, &t, &w, msg, sizeof msg);
        if (why >= 0) {
            if ((s = dr__lines_bad(&rd.ln, (dr_skip_reason)why, "%s", msg)) != DR_OK) goto fail;
            continue;
        }
        s = dr__builder_add_event(b, rd.f[cu].s, rd.f[cu].n, rd.f[ci].s, rd.f[ci].n, t, w, tag);
        if (s != DR_OK) {
            s = dr__fail(err, s, "%s:%zu: %s", name, rd.ln.no,
                        s == DR_LIMIT ? "too many interactions" : "out of memory");
            goto fail;
        }
        r->rows_ok++;
        ok++;
    }
    if (q < 0) s = rd.ln.status;
    else if (!ok)
        s = dr__fail(err, DR_FORMAT, "%s: no interactions accepted (%zu rows read)", name,
                    r->rows_read - read0);
fail:
    dr__fields_free(&rd);
    return s;
}

/* ------------------------------------------------------------------ shared loader steps */

dr_status dr__read_parse(const char *path, const dr_load_params *p, uint8_t tag, dr_builder *b,
                        dr_load_report *r, dr_error *err) {
    char *buf;
    size_t len;
    dr_status s = dr__read_file(path, p->max_file, &buf, &len, err);
    if (s == DR_OK) s = dr__parse_delimited(buf, len, path, p, tag, b, r, err);
    dr__free(buf);
    return s;
}

/* Reads dir/file for each of n files, in order, with the given tags. */
dr_status dr__read_parse_files(const char *dir, const char *const *files, const uint8_t *tags,
                              size_t n, bool optional_rest, const dr_load_params *p,
                              dr_builder *b, dr_load_report *r, dr_error *err) {
    for (size_t k = 0; k < n; k++) {
        char *path = dr__path_join(dir, files[k]);
        if (!path) return dr__loader_oom(err, dir);
        dr_status s = DR_OK;
        if (k == 0 || !optional_rest || dr__path_exists(path))
            s = dr__read_parse(path, p, tags[k], b, r, err);
        dr__free(path);
        if (s != DR_OK) return s;
    }
    return DR_OK;
}

/* Last path component, optionally without its extension. */
void dr__base_name(const char *path, bool strip_ext, char *out, size_t cap) {
    size_t n = strlen(path), e;
    while (n > 1 && path[n - 1] == '/') n--;
    size_t b = n;
    while (b && path[b - 1] != '/') b--;
    for (e = n; strip_ext && e > b + 1 && path[e - 1] != '.'; e--) {}
    if (!strip_ext || e <= b + 1) e = n;
    else e--;
    snprintf(out, cap, "%.*s", (int)(e - b), path + b);
}

/* Finishes the builder and sets the fields every loader sets. */
dr_status dr__loader_build(dr_builder *b, const dr_load_report *rep, const char *source,
                          dr_format f, const char *name, double time_scale, dr_dataset **out,
                          dr_error *err) {
    dr_status s = dr__builder_finish(b, out, err);
    if (s != DR_OK) return dr__fail_wrap(err, s, "%s", source);
    dr_dataset *ds = *out;
    ds->report = *rep;
    ds->format = f;
    ds->time_scale = time_scale;
    snprintf(ds->name, sizeof ds->name, "%s", name);
    if (!(ds->source = dr__strdup(source))) {
        dr_dataset_free(ds);
        *out = NULL;
        return dr__loader_oom(err, source);
    }
    return DR_OK;
}

/* Records attribute "key=v" (or just v when key is NULL) for item; lower: ASCII lower case. */
dr_status dr__attr_acc_add(dr_dataset *ds, dr_attr_acc *a, uint32_t item, const char *key,
                          const char *v, size_t n, bool lower) {
    size_t kn = key ? strlen(key) + 1 : 0;
    if (dr_vec_reserve(&a->kv, kn + n + 1)) return DR_NOMEM;
    char *s = a->kv.a;
    if (key) {
        memcpy(s, key, kn - 1);
        s[kn - 1] = '=';
    }
    for (size_t k = 0; k < n; k++)
        s[kn + k] = lower && v[k] >= 'A' && v[k] <= 'Z' ? (char)(v[k] | 0x20) : v[k];
    uint32_t id;
    dr_status st = dr__strtab_intern(&ds->attrs, s, kn + n, &id, NULL);
    if (st != DR_OK) return st;
    return dr_vec_push(&a->pairs, ((dr_attr_pair){item, id})) ? DR_NOMEM : DR_OK;
}

void dr__attr_acc_free(dr_attr_acc *a) {
    dr_vec_free(&a->pairs);
    dr_vec_free(&a->kv);
}

dr_status dr__attr_acc_finish(dr_dataset *ds, dr_attr_acc *a, dr_error *err) {
    dr_status s = a->pairs.n ? dr__dataset_set_attrs(ds, a->pairs.a, a->pairs.n, err) : DR_OK;
    dr__attr_acc_free(a);
    return s;
}

bool dr__dir_has(const char *dir, const char *file) {
    char p[4096];
    int n = snprintf(p, sizeof p, "%s/%s", dir, file);
    return n > 0 && (size_t)n < sizeof p && dr__path_exists(p);
}

