/*
 * dataset_load.c - dataset loaders: delimited files (CSV/TSV), MovieLens, the Amazon CSV
 * split, TikTok (MMSSL) with .npy features, and dynrec's own folder format (load + save);
 * the format table bound to its detectors and loaders, and the dr_dataset_load dispatcher.
 * Amazon JSON lives in amazon_json.c.
 *
 * DESIGN: formats are rows of DR_FORMAT_TABLE (dynrec.h): enum, --format name, folder or
 * file, detector, loader. The names, the auto detection (rows in table order, first yes wins)
 * and the dispatch are loops over that one table, so a format is a loader, its detector and
 * a row, and no list has to follow the enum's order. Each file is read whole (dr_read_file,
 * size-capped) and walked by linereader.c (BOM, CR, blank lines, over-long lines and invalid
 * UTF-8, shared with amazon_json.c); broken quoting becomes a counted bad row before any
 * field is looked at. Fields are spans into the buffer (quoted fields with "" escapes are
 * unescaped into a per-row scratch buffer), so accepted rows cost no allocation besides the
 * builder's interning. Rows go to a dr_builder, which owns the PROTOCOL order (stable time
 * sort, dense ids by first appearance); metadata and features are attached afterwards by
 * external id. Rejected:
 * a streaming reader with fixed buffers (the inputs are megabytes; whole-file reads keep the
 * code simple and make the parsers callable on fuzz buffers) and a full RFC 4180 parser
 * (quoted newlines never occur in the supported datasets; such a line is reported as bad).
 */
#include "linereader.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>


/* ------------------------------------------------------------------ names, params */

/* DR_FORMAT_TABLE (dynrec.h) bound to the functions: one entry per row, in detection order. */
enum { READS_NONE, READS_FOLDER, READS_FILE };

typedef struct format_row {
    dr_format f;
    const char *name;
    int reads;                         /* READS_*: what the path must be */
    bool (*detect)(const char *path);  /* NULL: never detected (auto) */
    dr_status (*load)(const char *path, const dr_load_params *p, dr_dataset **out,
                      dr_error *err);
} format_row;

static const format_row formats[] = {
#define ROW(code, value, name, reads, detect, load) {code, name, READS_##reads, detect, load},
    DR_FORMAT_TABLE(ROW)
#undef ROW
};

const char *dr_format_name(dr_format f) {
    switch (f) { /* a value used twice in the table does not compile here */
#define NAME(code, value, name, reads, detect, load) case code: return name;
        DR_FORMAT_TABLE(NAME)
#undef NAME
    }
    return "unknown";
}

dr_status dr_format_parse(const char *s, dr_format *out) {
    for (size_t k = 0; s && k < DR_ARRAY_LEN(formats); k++)
        if (strcmp(s, formats[k].name) == 0) {
            *out = formats[k].f;
            return DR_OK;
        }
    return DR_ARG;
}

dr_load_params dr_load_default_params(void) {
    dr_load_params p;
    memset(&p, 0, sizeof p);
    p.format = DR_FMT_AUTO;
    p.header = -1;
    p.col_user = 0;
    p.col_item = 1;
    p.col_time = 2;
    p.col_weight = 3;
    p.max_line = DR_LOAD_MAX_LINE;
    p.max_file = DR_LOAD_MAX_FILE;
    return p;
}

/* ------------------------------------------------------------------ fields of a line */

typedef struct span {
    const char *s;
    size_t n;
} span;

/* A line of linereader.c split into fields. */
typedef struct reader {
    dr_lines ln;               /* the line walk: name, line number, report, status */
    char delim;                /* 0: detect on the first non-blank line */
    bool quotes;               /* CSV mode: minimal quoting, spaces around fields trimmed */
    size_t nf;                 /* fields of the current row (may exceed DR_LOAD_MAX_FIELDS) */
    span f[DR_LOAD_MAX_FIELDS];
    DR_VEC(char) unq;          /* unescaped quoted fields of the current row */
} reader;

static void reader_init(reader *rd, const char *buf, size_t len, const char *name,
                        const dr_load_params *p, dr_load_report *r, dr_error *err, char delim,
                        bool quotes) {
    memset(rd, 0, sizeof *rd);
    dr_lines_init(&rd->ln, buf, len, name, p, r, err);
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

static span trim(const char *s, size_t n) {
    while (n && *s == ' ') s++, n--;
    while (n && s[n - 1] == ' ') n--;
    return (span){s, n};
}

/* Splits s[0..n) into rd->f. Returns 0, 1 for broken quoting, -1 when out of memory. */
static int split(reader *rd, const char *s, size_t n) {
    if (!rd->delim) rd->delim = detect_delim(s, n);
    if (dr_vec_reserve(&rd->unq, n + 1)) return -1;
    rd->unq.n = 0;
    rd->nf = 0;
    for (size_t i = 0;; i++) { /* i is at the start of a field */
        span fld;
        if (rd->quotes && i < n && s[i] == '"') {
            size_t j = i + 1;
            bool esc = false;
            while (j < n && !(s[j] == '"' && (j + 1 == n || s[j + 1] != '"'))) {
                if (s[j] == '"') esc = true, j++;
                j++;
            }
            if (j >= n || (j + 1 < n && s[j + 1] != rd->delim)) return 1;
            fld = (span){s + i + 1, j - i - 1};
            if (esc) {
                char *o = rd->unq.a + rd->unq.n;
                size_t m = 0;
                for (size_t k = i + 1; k < j; k++) {
                    o[m++] = s[k];
                    if (s[k] == '"') k++;
                }
                fld = (span){o, m};
                rd->unq.n += m;
            }
            i = j + 1;
        } else {
            const char *e = memchr(s + i, rd->delim, n - i);
            size_t j = e ? (size_t)(e - s) : n;
            fld = rd->quotes ? trim(s + i, j - i) : (span){s + i, j - i};
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
static int reader_next(reader *rd) {
    const char *s;
    size_t n;
    int q;
    while ((q = dr_lines_next(&rd->ln, &s, &n)) > 0) {
        int sp = split(rd, s, n);
        if (sp == 0) return 1;
        dr_status st = sp < 0 ? dr_fail(rd->ln.err, DR_NOMEM, "%s:%zu: out of memory",
                                        rd->ln.name, rd->ln.no)
                              : dr_lines_bad(&rd->ln, DR_SKIP_COLUMNS, "unbalanced quotes");
        if (st != DR_OK) {
            rd->ln.status = st;
            return -1;
        }
    }
    return q;
}

static void reader_free(reader *rd) { dr_vec_free(&rd->unq); }

static bool span_eq(span a, const char *s) { return a.n == strlen(s) && memcmp(a.s, s, a.n) == 0; }

static bool span_int(span a) {
    int64_t v;
    return dr_parse_i64(a.s, a.n, &v);
}

/* Case-insensitive ASCII substring test. */
static bool span_has(span a, const char *w) {
    size_t m = strlen(w);
    for (size_t i = 0; i + m <= a.n; i++) {
        size_t k = 0;
        while (k < m && (a.s[i + k] | 0x20) == w[k]) k++;
        if (k == m) return true;
    }
    return false;
}

static bool parse_weight(span a, float *w) {
    double v;
    if (!dr_parse_f64(a.s, a.n, &v) || v > FLT_MAX || v < -FLT_MAX) return false;
    *w = (float)v;
    return true;
}

static dr_status oom(dr_error *err, const char *what) {
    return dr_fail(err, DR_NOMEM, "%s: out of memory", what);
}

/* ------------------------------------------------------------------ delimited */

/* Checks one data row; returns -1 when good, else a skip reason with msg filled in. */
static int check_row(const reader *rd, size_t ncols, int cu, int ci, int ct, int cw, int64_t *t,
                     float *w, char *msg, size_t cap) {
    if (rd->nf != ncols) {
        snprintf(msg, cap, "expected %zu columns, found %zu", ncols, rd->nf);
        return DR_SKIP_COLUMNS;
    }
    if (!rd->f[cu].n || !rd->f[ci].n) {
        snprintf(msg, cap, "empty %s id", rd->f[cu].n ? "item" : "user");
        return DR_SKIP_EMPTY_ID;
    }
    *t = 0;
    if (ct >= 0 && !dr_parse_i64(rd->f[ct].s, rd->f[ct].n, t)) {
        snprintf(msg, cap, "time '%.*s' is not an integer", (int)DR_MIN(rd->f[ct].n, 40),
                 rd->f[ct].s);
        return DR_SKIP_NUMBER;
    }
    *w = 1.0f;
    if (cw >= 0 && !parse_weight(rd->f[cw], w)) {
        snprintf(msg, cap, "weight '%.*s' is not a finite number", (int)DR_MIN(rd->f[cw].n, 40),
                 rd->f[cw].s);
        return DR_SKIP_NUMBER;
    }
    return -1;
}

/* Header detection on the first line: a non-integer time (or non-numeric weight) column, or,
 * with neither, a user/item field that is not an integer and names itself "user"/"item". */
static bool looks_like_header(const reader *rd, int cu, int ci, int ct, int cw) {
    if (ct >= 0) return !span_int(rd->f[ct]);
    double v;
    if (cw >= 0) return !dr_parse_f64(rd->f[cw].s, rd->f[cw].n, &v);
    return (!span_int(rd->f[cu]) && span_has(rd->f[cu], "user")) ||
           (!span_int(rd->f[ci]) && span_has(rd->f[ci], "item"));
}

dr_status dr_parse_delimited(const char *buf, size_t len, const char *name,
                             const dr_load_params *p, uint8_t tag, dr_builder *b,
                             dr_load_report *r, dr_error *err) {
    int cu = p->col_user, ci = p->col_item, ct = -1, cw = -1, q;
    if (cu < 0 || ci < 0 || cu >= DR_LOAD_MAX_FIELDS || ci >= DR_LOAD_MAX_FIELDS || p->col_time >= DR_LOAD_MAX_FIELDS ||
        p->col_weight >= DR_LOAD_MAX_FIELDS)
        return dr_fail(err, DR_ARG, "%s: column numbers must be below %d (user and item >= 0)",
                       name, DR_LOAD_MAX_FIELDS);
    reader rd;
    reader_init(&rd, buf, len, name, p, r, err, p->delimiter, true);
    dr_status s = DR_OK;
    size_t ncols = 0, ok = 0, read0 = r->rows_read;
    char msg[160];
    while ((q = reader_next(&rd)) > 0) {
        if (!ncols) { /* the first good line fixes the layout */
            ncols = rd.nf;
            if ((size_t)cu >= ncols || (size_t)ci >= ncols) {
                s = dr_fail(err, DR_FORMAT,
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
            if ((s = dr_lines_bad(&rd.ln, (dr_skip_reason)why, "%s", msg)) != DR_OK) goto fail;
            continue;
        }
        s = dr_builder_add_event(b, rd.f[cu].s, rd.f[cu].n, rd.f[ci].s, rd.f[ci].n, t, w, tag);
        if (s != DR_OK) {
            s = dr_fail(err, s, "%s:%zu: %s", name, rd.ln.no,
                        s == DR_LIMIT ? "too many interactions" : "out of memory");
            goto fail;
        }
        r->rows_ok++;
        ok++;
    }
    if (q < 0) s = rd.ln.status;
    else if (!ok)
        s = dr_fail(err, DR_FORMAT, "%s: no interactions accepted (%zu rows read)", name,
                    r->rows_read - read0);
fail:
    reader_free(&rd);
    return s;
}

/* ------------------------------------------------------------------ shared loader steps */

static dr_status read_parse(const char *path, const dr_load_params *p, uint8_t tag,
                            dr_builder *b, dr_load_report *r, dr_error *err) {
    char *buf;
    size_t len;
    dr_status s = dr_read_file(path, p->max_file, &buf, &len, err);
    if (s == DR_OK) s = dr_parse_delimited(buf, len, path, p, tag, b, r, err);
    dr_free(buf);
    return s;
}

/* Reads dir/file for each of n files, in order, with the given tags. */
static dr_status read_parse_files(const char *dir, const char *const *files, const uint8_t *tags,
                                  size_t n, bool optional_rest, const dr_load_params *p,
                                  dr_builder *b, dr_load_report *r, dr_error *err) {
    for (size_t k = 0; k < n; k++) {
        char *path = dr_path_join(dir, files[k]);
        if (!path) return oom(err, dir);
        dr_status s = DR_OK;
        if (k == 0 || !optional_rest || dr_path_exists(path))
            s = read_parse(path, p, tags[k], b, r, err);
        dr_free(path);
        if (s != DR_OK) return s;
    }
    return DR_OK;
}

/* Last path component, optionally without its extension. */
static void base_name(const char *path, bool strip_ext, char *out, size_t cap) {
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
static dr_status build(dr_builder *b, const dr_load_report *rep, const char *source, dr_format f,
                       const char *name, double time_scale, dr_dataset **out, dr_error *err) {
    dr_status s = dr_builder_finish(b, out, err);
    if (s != DR_OK) return dr_fail_wrap(err, s, "%s", source);
    dr_dataset *ds = *out;
    ds->report = *rep;
    ds->format = f;
    ds->time_scale = time_scale;
    snprintf(ds->name, sizeof ds->name, "%s", name);
    if (!(ds->source = dr_strdup(source))) {
        dr_dataset_free(ds);
        *out = NULL;
        return oom(err, source);
    }
    return DR_OK;
}

/* Item attributes collected while reading metadata; set on the dataset once at the end. */
typedef struct attr_acc {
    DR_VEC(dr_attr_pair) pairs;
    DR_VEC(char) kv; /* "key=value" scratch */
} attr_acc;

/* Records attribute "key=v" (or just v when key is NULL) for item; lower: ASCII lower case. */
static dr_status attr_add(dr_dataset *ds, attr_acc *a, uint32_t item, const char *key,
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
    dr_status st = dr_strtab_intern(&ds->attrs, s, kn + n, &id, NULL);
    if (st != DR_OK) return st;
    return dr_vec_push(&a->pairs, ((dr_attr_pair){item, id})) ? DR_NOMEM : DR_OK;
}

static void attr_free(attr_acc *a) {
    dr_vec_free(&a->pairs);
    dr_vec_free(&a->kv);
}

static dr_status attr_finish(dr_dataset *ds, attr_acc *a, dr_error *err) {
    dr_status s = a->pairs.n ? dr_dataset_set_attrs(ds, a->pairs.a, a->pairs.n, err) : DR_OK;
    attr_free(a);
    return s;
}

/* ------------------------------------------------------------------ delimited file */

bool dr_detect_delimited(const char *path) { return true; } /* any other file */

dr_status dr_load_delimited(const char *path, const dr_load_params *p, dr_dataset **out,
                            dr_error *err) {
    dr_builder *b = NULL;
    dr_load_report rep = {0};
    char name[64];
    *out = NULL;
    dr_status s = dr_builder_create(&b);
    if (s != DR_OK) return oom(err, path);
    if ((s = read_parse(path, p, DR_TAG_NONE, b, &rep, err)) != DR_OK) goto fail;
    base_name(path, true, name, sizeof name);
    s = build(b, &rep, path, DR_FMT_DELIMITED, name, p->time_scale ? p->time_scale : 1, out, err);
fail:
    dr_builder_free(b);
    return s;
}

/* ------------------------------------------------------------------ MovieLens */

typedef struct ml_ctx {
    dr_dataset *ds;
    attr_acc acc;
    uint8_t *seen; /* (n_items) movies.csv row already applied */
} ml_ctx;

typedef dr_status (*meta_row_fn)(reader *rd, ml_ctx *c);

/* Walks an optional comma-separated metadata file with a header and `cols` columns. */
static dr_status walk_meta_csv(const char *dir, const char *file, size_t cols, meta_row_fn fn,
                               ml_ctx *c, const dr_load_params *p, dr_error *err) {
    char *path = dr_path_join(dir, file), *buf = NULL;
    size_t len;
    reader rd;
    int q;
    if (!path) return oom(err, dir);
    dr_status s = DR_OK;
    if (!dr_path_exists(path)) goto done;
    if ((s = dr_read_file(path, p->max_file, &buf, &len, err)) != DR_OK) goto done;
    reader_init(&rd, buf, len, path, p, &c->ds->report, err, ',', true);
    bool first = true;
    while ((q = reader_next(&rd)) > 0) {
        if (first && (first = false, !span_int(rd.f[0]))) {
            c->ds->report.rows_read--; /* header */
            continue;
        }
        if (rd.nf != cols) s = dr_lines_bad(&rd.ln, DR_SKIP_COLUMNS, "expected %zu columns, found %zu",
                                       cols, rd.nf);
        else if (!rd.f[0].n || !rd.f[1].n) s = dr_lines_bad(&rd.ln, DR_SKIP_EMPTY_ID, "empty id");
        else s = fn(&rd, c);
        if (s != DR_OK) break;
    }
    if (q < 0) s = rd.ln.status;
    reader_free(&rd);
done:
    dr_free(buf);
    dr_free(path);
    return s;
}

static dr_status ml_movie(reader *rd, ml_ctx *c) {
    span id = rd->f[0], title = rd->f[1], g = rd->f[2];
    uint32_t i = dr_strtab_find(&c->ds->items, id.s, id.n);
    if (i == UINT32_MAX)
        return dr_lines_bad(&rd->ln, DR_SKIP_UNKNOWN, "movie %.*s has no ratings", (int)DR_MIN(id.n, 40),
                       id.s);
    if (c->seen[i])
        return dr_lines_bad(&rd->ln, DR_SKIP_DUPLICATE, "movie %.*s listed twice", (int)DR_MIN(id.n, 40),
                       id.s);
    c->seen[i] = 1;
    if (title.n && dr_dataset_set_title(c->ds, i, title.s, title.n) != DR_OK)
        return oom(rd->ln.err, rd->ln.name);
    for (size_t a = 0; a < g.n;) {
        const char *bar = memchr(g.s + a, '|', g.n - a);
        size_t e = bar ? (size_t)(bar - g.s) : g.n;
        span one = trim(g.s + a, e - a);
        if (one.n && !span_eq(one, "(no genres listed)") &&
            attr_add(c->ds, &c->acc, i, "genre", one.s, one.n, false) != DR_OK)
            return oom(rd->ln.err, rd->ln.name);
        a = e + 1;
    }
    rd->ln.r->rows_ok++;
    return DR_OK;
}

static dr_status ml_tag(reader *rd, ml_ctx *c) {
    span id = rd->f[1], tag = rd->f[2];
    uint32_t i = dr_strtab_find(&c->ds->items, id.s, id.n);
    if (!id.n || !tag.n)
        return dr_lines_bad(&rd->ln, DR_SKIP_FIELD, "empty movie id or tag");
    if (i == UINT32_MAX)
        return dr_lines_bad(&rd->ln, DR_SKIP_UNKNOWN, "tag on movie %.*s, which has no ratings",
                       (int)DR_MIN(id.n, 40), id.s);
    if (attr_add(c->ds, &c->acc, i, "tag", tag.s, tag.n, true) != DR_OK)
        return oom(rd->ln.err, rd->ln.name);
    rd->ln.r->rows_ok++;
    return DR_OK;
}

bool dr_detect_movielens(const char *dir) { return dr_dir_has(dir, "ratings.csv"); }

dr_status dr_load_movielens(const char *dir, const dr_load_params *p, dr_dataset **out,
                            dr_error *err) {
    dr_builder *b = NULL;
    dr_load_report rep = {0};
    ml_ctx c = {0};
    dr_load_params q = *p;
    q.delimiter = ',';
    q.header = -1;
    q.col_user = 0;
    q.col_item = 1;
    q.col_weight = 2;
    q.col_time = 3;
    *out = NULL;
    static const char *const files[] = {"ratings.csv"};
    static const uint8_t tags[] = {DR_TAG_NONE};
    dr_status s = dr_builder_create(&b);
    if (s != DR_OK) return oom(err, dir);
    if ((s = read_parse_files(dir, files, tags, 1, false, &q, b, &rep, err)) != DR_OK ||
        (s = build(b, &rep, dir, DR_FMT_MOVIELENS, "ml-small", q.time_scale ? q.time_scale : 1,
                   &c.ds, err)) != DR_OK)
        goto fail;
    if (!(c.seen = dr_calloc(c.ds->n_items + 1, 1))) {
        s = oom(err, dir);
        goto fail;
    }
    if ((s = walk_meta_csv(dir, "movies.csv", 3, ml_movie, &c, p, err)) != DR_OK ||
        (s = walk_meta_csv(dir, "tags.csv", 4, ml_tag, &c, p, err)) != DR_OK ||
        (s = attr_finish(c.ds, &c.acc, err)) != DR_OK)
        goto fail;
    *out = c.ds;
    c.ds = NULL;
fail:
    dr_builder_free(b);
    attr_free(&c.acc);
    dr_free(c.seen);
    dr_dataset_free(c.ds);
    return s;
}

/* ------------------------------------------------------------------ Amazon CSV split */

bool dr_detect_amazon_csv(const char *dir) {
    return dr_dir_has(dir, "train.csv") && dr_dir_has(dir, "validation.csv");
}

dr_status dr_load_amazon_csv(const char *dir, const dr_load_params *p, dr_dataset **out,
                             dr_error *err) {
    static const char *const files[] = {"train.csv", "validation.csv", "test.csv"};
    static const uint8_t tags[] = {DR_TAG_TRAIN, DR_TAG_VALID, DR_TAG_TEST};
    dr_builder *b = NULL;
    dr_load_report rep = {0};
    dr_load_params q = *p;
    q.delimiter = ',';
    q.header = -1;
    q.col_user = 0;
    q.col_item = 1;
    q.col_time = 2;
    q.col_weight = -1;
    *out = NULL;
    dr_status s = dr_builder_create(&b);
    if (s != DR_OK) return oom(err, dir);
    if ((s = read_parse_files(dir, files, tags, 3, false, &q, b, &rep, err)) == DR_OK)
        s = build(b, &rep, dir, DR_FMT_AMAZON_CSV, "amazon-mtv",
                  q.time_scale ? q.time_scale : 0.001, out, err);
    dr_builder_free(b);
    return s;
}

/* ------------------------------------------------------------------ TikTok */

/* Scatters feature rows into a modality: row r = external item id "r" (by_id), or row i =
 * dense item i (then rows must equal n_items). A row that is all zero or holds a NaN is
 * missing; an infinity is an error; an item of the interactions with no row (too few rows) is
 * an error. */
static dr_status feature_modality(dr_dataset *ds, const dr_npy *a, const char *path,
                                  const char *mod, bool by_id, dr_error *err) {
    uint32_t used = 0, dim = a->cols;
    if (!by_id && a->rows != ds->n_items)
        return dr_fail(err, DR_FORMAT, "%s: %u rows, but the dataset has %u items (item ids are "
                       "not row numbers, so row i must be dense item i)", path, a->rows,
                       ds->n_items);
    for (size_t k = 0; k < ds->n_events; k++) used = DR_MAX(used, ds->ev_item[k] + 1);
    for (size_t k = 0; k < (size_t)a->rows * dim; k++)
        if (isinf(a->data[k]))
            return dr_fail(err, DR_FORMAT, "%s: row %zu: infinite value", path, k / dim);
    float *x = dr_calloc((size_t)ds->n_items * dim, sizeof *x);
    uint8_t *present = dr_calloc((size_t)ds->n_items + 1, 1);
    dr_status s = DR_OK;
    if (!x || !present) {
        s = oom(err, path);
        goto fail;
    }
    for (uint32_t i = 0; i < ds->n_items; i++) {
        const char *id = ds->items.str[i];
        uint32_t row = i;
        if (by_id && (!dr_parse_u32(id, strlen(id), &row) || row >= a->rows)) {
            if (i < used) {
                s = dr_fail(err, DR_FORMAT, "%s: %u rows, but item '%s' of the interactions "
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
    s = dr_dataset_add_modality(ds, mod, dim, x, present, err);
fail:
    dr_free(x);
    dr_free(present);
    return s;
}

dr_status dr_dataset_add_features(dr_dataset *ds, const char *name, const char *path,
                                  size_t max_bytes, dr_error *err) {
    if (!ds || !name || !path) return dr_fail(err, DR_ARG, "features: NULL argument");
    if (!*name || strlen(name) >= sizeof ds->mod[0].name)
        return dr_fail(err, DR_ARG, "%s: modality name '%s' is empty or too long", path, name);
    dr_npy a = {0};
    dr_status s = dr_npy_read(path, max_bytes ? max_bytes : dr_load_default_params().max_file,
                              &a, err);
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
        by_id = dr_parse_u32(ds->items.str[i], strlen(ds->items.str[i]), &r);
    }
    s = feature_modality(ds, &a, path, name, by_id, err);
    if (old >= 0) {
        if (s == DR_OK) {
            dr_free(keep.x);
            dr_free(keep.present);
        } else { /* failed: the dataset keeps the old one */
            ds->mod[ds->n_mod++] = keep;
        }
    }
    dr_npy_free(&a);
    return s;
}

bool dr_detect_tiktok(const char *dir) { return dr_dir_has(dir, "train.tsv"); }

dr_status dr_load_tiktok(const char *dir, const dr_load_params *p, dr_dataset **out,
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
    dr_status s = dr_builder_create(&b);
    if (s != DR_OK) return oom(err, dir);
    if ((s = read_parse_files(dir, files, tags, 3, true, &q, b, &rep, err)) != DR_OK) goto fail;
    uint32_t rows = 0;
    for (int k = 0; k < NF; k++) {
        if (!(fpath[k] = dr_path_join(dir, feat_file[k]))) {
            s = oom(err, dir);
            goto fail;
        }
        if (!dr_path_exists(fpath[k])) continue;
        if ((s = dr_npy_read(fpath[k], p->max_file, &feat[k], err)) != DR_OK) goto fail;
        rows = DR_MAX(rows, feat[k].rows);
    }
    for (uint32_t r = 0; r < rows; r++) { /* catalogue: feature rows with no interactions */
        char id[16];
        int n = snprintf(id, sizeof id, "%u", r);
        if ((s = dr_builder_add_item(b, id, (size_t)n)) != DR_OK) {
            s = oom(err, dir);
            goto fail;
        }
    }
    if ((s = build(b, &rep, dir, DR_FMT_TIKTOK, "tiktok", q.time_scale, &ds, err)) != DR_OK)
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
        dr_npy_free(&feat[k]);
        dr_free(fpath[k]);
    }
    dr_builder_free(b);
    dr_dataset_free(ds);
    return s;
}

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

static int column(const reader *rd, const char *name) {
    for (size_t k = 0; k < DR_MIN(rd->nf, (size_t)DR_LOAD_MAX_FIELDS); k++)
        if (span_eq(rd->f[k], name)) return (int)k;
    return -1;
}

typedef struct manifest {
    bool have;
    char name[64];
    double time_scale;                                   /* -1 = not given */
    int64_t has_given_split, n_users, n_items, n_events; /* -1 = not given */
    char modalities[512];
} manifest;

static dr_status read_manifest(const char *dir, const dr_load_params *p, manifest *m,
                               dr_error *err) {
    char *path = dr_path_join(dir, "manifest.tsv"), *buf = NULL;
    size_t len;
    dr_load_report scratch = {0};
    dr_load_params strict = *p;
    reader rd;
    int q;
    memset(m, 0, sizeof *m);
    m->n_users = m->n_items = m->n_events = m->has_given_split = -1;
    m->time_scale = -1;
    if (!path) return oom(err, dir);
    dr_status s = DR_OK;
    if (!dr_path_exists(path)) goto done;
    if ((s = dr_read_file(path, p->max_file, &buf, &len, err)) != DR_OK) goto done;
    m->have = true;
    strict.strict = 1;
    reader_init(&rd, buf, len, path, &strict, &scratch, err, '\t', false);
    while ((q = reader_next(&rd)) > 0) {
        span k = rd.f[0], v = rd.f[1];
        char val[512];
        int64_t iv = 0;
        bool ok = rd.nf == 2 && v.n < sizeof val;
        if (!ok) {
            s = dr_fail(err, DR_FORMAT, "%s:%zu: expected key<TAB>value", path, rd.ln.no);
            break;
        }
        unescape(v.s, v.n, val);
        if (span_eq(k, "format")) {
            ok = strcmp(val, "dynrec") == 0;
        } else if (span_eq(k, "version")) {
            if (strcmp(val, "1") != 0) {
                s = dr_fail(err, DR_UNSUPPORTED, "%s:%zu: version %s (this build reads 1)", path,
                            rd.ln.no, val);
                break;
            }
        } else if (span_eq(k, "name")) {
            snprintf(m->name, sizeof m->name, "%s", val);
        } else if (span_eq(k, "time_scale")) {
            ok = dr_parse_f64(v.s, v.n, &m->time_scale) && m->time_scale >= 0;
        } else if (span_eq(k, "modalities")) {
            snprintf(m->modalities, sizeof m->modalities, "%s", val);
        } else if (span_eq(k, "has_given_split") || span_eq(k, "n_users") ||
                   span_eq(k, "n_items") || span_eq(k, "n_events")) {
            ok = dr_parse_i64(v.s, v.n, &iv) && iv >= 0;
            *(span_eq(k, "has_given_split") ? &m->has_given_split
              : span_eq(k, "n_users")       ? &m->n_users
              : span_eq(k, "n_items")       ? &m->n_items
                                            : &m->n_events) = iv;
        } /* other keys: written by a newer version, ignored */
        if (!ok) {
            s = dr_fail(err, DR_FORMAT, "%s:%zu: bad manifest line", path, rd.ln.no);
            break;
        }
    }
    if (s == DR_OK && q < 0) s = rd.ln.status;
    reader_free(&rd);
done:
    dr_free(buf);
    dr_free(path);
    return s;
}

/* items.tsv rows kept until the dataset exists: spans into the file's buffer. */
typedef struct item_row {
    span id, title, attrs;
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
    char *path = dr_path_join(dir, "interactions.tsv"), *buf = NULL;
    size_t len, ok = 0;
    reader rd;
    int q, cu = -1, ci = -1, ct = -1, cw = -1, cs = -1;
    if (!path) return oom(err, dir);
    if (!dr_path_exists(path)) {
        dr_free(path);
        if (!(path = dr_path_join(dir, "dataset.tsv"))) return oom(err, dir);
    }
    dr_status s = dr_read_file(path, p->max_file, &buf, &len, err);
    if (s != DR_OK) goto done;
    reader_init(&rd, buf, len, path, p, r, err, '\t', false);
    size_t ncols = 0;
    while ((q = reader_next(&rd)) > 0) {
        if (!ncols) {
            r->rows_read--;
            ncols = rd.nf;
            cu = column(&rd, "user"), ci = column(&rd, "item"), ct = column(&rd, "time");
            cw = column(&rd, "weight"), cs = column(&rd, "split");
            if (cu < 0 || ci < 0) {
                s = dr_fail(err, DR_FORMAT, "%s:%zu: expected the header "
                            "user<TAB>item<TAB>time<TAB>weight<TAB>split", path, rd.ln.no);
                break;
            }
            continue;
        }
        span u = rd.f[cu], it = rd.f[ci];
        int64_t t = 0;
        float w = 1;
        int tag = 0;
        if (cs >= 0 && rd.nf == ncols)
            for (tag = 3; tag > 0 && !span_eq(rd.f[cs], split_names[tag]); tag--) {}
        if (rd.nf != ncols)
            s = dr_lines_bad(&rd.ln, DR_SKIP_COLUMNS, "expected %zu columns, found %zu", ncols, rd.nf);
        else if (!u.n || !it.n)
            s = dr_lines_bad(&rd.ln, DR_SKIP_EMPTY_ID, "empty user or item id");
        else if ((ct >= 0 && !dr_parse_i64(rd.f[ct].s, rd.f[ct].n, &t)) ||
                 (cw >= 0 && !parse_weight(rd.f[cw], &w)))
            s = dr_lines_bad(&rd.ln, DR_SKIP_NUMBER, "malformed time or weight");
        else if (cs >= 0 && tag == 0 && rd.f[cs].n && !span_eq(rd.f[cs], "-"))
            s = dr_lines_bad(&rd.ln, DR_SKIP_FIELD, "split must be -, train, valid or test");
        else if (dr_vec_reserve(&st->scratch, u.n + 1) || dr_vec_reserve(&st->scratch2, it.n + 1))
            s = oom(err, path);
        else {
            size_t un = unescape(u.s, u.n, st->scratch.a), in = unescape(it.s, it.n, st->scratch2.a);
            s = dr_builder_add_event(b, st->scratch.a, un, st->scratch2.a, in, t, w, (uint8_t)tag);
            if (s != DR_OK)
                s = dr_fail(err, s, "%s:%zu: out of memory or too many interactions", path, rd.ln.no);
            else
                r->rows_ok++, ok++;
        }
        if (s != DR_OK) break;
    }
    if (s == DR_OK && q < 0) s = rd.ln.status;
    if (s == DR_OK && !ok)
        s = dr_fail(err, DR_FORMAT, "%s: no interactions accepted", path);
    reader_free(&rd);
done:
    dr_free(buf);
    dr_free(path);
    return s;
}

/* Reads items.tsv (optional) and registers its items as catalogue items. */
static dr_status dyn_items(const char *dir, const dr_load_params *p, dr_builder *b,
                           dr_load_report *r, dyn_state *st, dr_error *err) {
    size_t len;
    reader rd;
    int q, ci = -1, ctl = -1, ca = -1;
    if (!(st->ipath = dr_path_join(dir, "items.tsv"))) return oom(err, dir);
    if (!dr_path_exists(st->ipath)) return DR_OK;
    dr_status s = dr_read_file(st->ipath, p->max_file, &st->ibuf, &len, err);
    if (s != DR_OK) return s;
    reader_init(&rd, st->ibuf, len, st->ipath, p, r, err, '\t', false);
    size_t ncols = 0;
    while ((q = reader_next(&rd)) > 0) {
        if (!ncols) {
            r->rows_read--;
            ncols = rd.nf;
            ci = column(&rd, "item"), ctl = column(&rd, "title"), ca = column(&rd, "attributes");
            if (ci < 0) {
                s = dr_fail(err, DR_FORMAT, "%s:%zu: expected the header "
                            "item<TAB>title<TAB>attributes", st->ipath, rd.ln.no);
                break;
            }
            continue;
        }
        item_row row = {rd.f[ci], {"", 0}, {"", 0}, rd.ln.no};
        if (ctl >= 0 && (size_t)ctl < rd.nf) row.title = rd.f[ctl];
        if (ca >= 0 && (size_t)ca < rd.nf) row.attrs = rd.f[ca];
        if (rd.nf != ncols)
            s = dr_lines_bad(&rd.ln, DR_SKIP_COLUMNS, "expected %zu columns, found %zu", ncols, rd.nf);
        else if (!row.id.n)
            s = dr_lines_bad(&rd.ln, DR_SKIP_EMPTY_ID, "empty item id");
        else if (dr_vec_reserve(&st->scratch, row.id.n + 1) || dr_vec_push(&st->rows, row) ||
                 dr_builder_add_item(b, st->scratch.a,
                                     unescape(row.id.s, row.id.n, st->scratch.a)) != DR_OK)
            s = oom(err, st->ipath);
        if (s != DR_OK) break;
    }
    if (s == DR_OK && q < 0) s = rd.ln.status;
    reader_free(&rd);
    return s;
}

/* Applies the kept items.tsv rows; map[r] receives the dense id of row r. */
static dr_status dyn_item_meta(dr_dataset *ds, dyn_state *st, uint32_t *map, dr_error *err) {
    attr_acc acc = {0};
    uint8_t *seen = dr_calloc((size_t)ds->n_items + 1, 1);
    dr_status s = DR_OK;
    if (!seen) return oom(err, st->ipath);
    for (size_t k = 0; k < st->rows.n && s == DR_OK; k++) {
        item_row *row = &st->rows.a[k];
        size_t need = DR_MAX(row->id.n, DR_MAX(row->title.n, row->attrs.n)) + 1;
        if (dr_vec_reserve(&st->scratch, need)) {
            s = oom(err, st->ipath);
            break;
        }
        char *tmp = st->scratch.a;
        uint32_t i = dr_strtab_find(&ds->items, tmp, unescape(row->id.s, row->id.n, tmp));
        if (i == UINT32_MAX) {
            s = dr_fail(err, DR_INTERNAL, "%s:%zu: item %s was not registered", st->ipath,
                        row->line, tmp);
            break;
        }
        map[k] = i;
        if (seen[i]) { /* rows were counted as read by dyn_items */
            dr_report_skip(&ds->report, DR_SKIP_DUPLICATE, "%s:%zu: item %s listed twice",
                           st->ipath, row->line, tmp);
            continue;
        }
        seen[i] = 1;
        ds->report.rows_ok++;
        if (row->title.n) {
            size_t n = unescape(row->title.s, row->title.n, tmp);
            if (dr_dataset_set_title(ds, i, tmp, n) != DR_OK) s = oom(err, st->ipath);
        }
        /* attributes: split at unescaped '|', then unescape each */
        const char *a = row->attrs.s, *end = a + row->attrs.n;
        while (s == DR_OK && a < end) {
            const char *e = a;
            while (e < end && *e != '|') e += *e == '\\' && e + 1 < end ? 2 : 1;
            size_t n = unescape(a, (size_t)(e - a), tmp);
            if (n && attr_add(ds, &acc, i, NULL, tmp, n, false) != DR_OK) s = oom(err, st->ipath);
            a = e + 1;
        }
    }
    if (s == DR_OK) s = attr_finish(ds, &acc, err);
    attr_free(&acc);
    dr_free(seen);
    return s;
}

static bool mod_name_ok(const char *s, size_t n) {
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
    if (!(path = dr_path_join(dir, rel))) goto nomem;
    snprintf(rel, sizeof rel, "features/%s.present.npy", name);
    if (!(ppath = dr_path_join(dir, rel))) goto nomem;
    if ((s = dr_npy_read(path, p->max_file, &a, err)) != DR_OK) goto fail;
    if (dr_path_exists(ppath) && (s = dr_npy_read(ppath, p->max_file, &pr, err)) != DR_OK)
        goto fail;
    if (a.rows != nrows || (pr.data && (pr.rows != nrows || pr.cols != 1))) {
        s = dr_fail(err, DR_FORMAT, "%s: %u rows, expected %u (one per item of items.tsv)",
                    pr.data && pr.rows != nrows ? ppath : path,
                    pr.data && pr.rows != nrows ? pr.rows : a.rows, nrows);
        goto fail;
    }
    x = dr_calloc((size_t)ds->n_items * a.cols, sizeof *x);
    present = dr_calloc((size_t)ds->n_items + 1, 1);
    if (!x || !present) goto nomem;
    for (uint32_t r = 0; r < nrows; r++) {
        const float *src = a.data + (size_t)r * a.cols;
        bool any = false, bad = false;
        for (uint32_t c = 0; c < a.cols; c++) any |= src[c] != 0, bad |= !isfinite(src[c]);
        bool on = pr.data ? pr.data[r] != 0 : any && !bad;
        if (!on) continue;
        if (bad) {
            s = dr_fail(err, DR_FORMAT, "%s: row %u: NaN or infinite value", path, r);
            goto fail;
        }
        memcpy(x + (size_t)map[r] * a.cols, src, (size_t)a.cols * sizeof *x);
        present[map[r]] = 1;
    }
    s = dr_dataset_add_modality(ds, name, a.cols, x, present, err);
    goto fail;
nomem:
    s = oom(err, dir);
fail:
    dr_free(path);
    dr_free(ppath);
    dr_npy_free(&a);
    dr_npy_free(&pr);
    dr_free(x);
    dr_free(present);
    return s;
}

bool dr_detect_dynrec(const char *dir) {
    return dr_dir_has(dir, "interactions.tsv") || dr_dir_has(dir, "dataset.tsv");
}

dr_status dr_load_dynrec(const char *dir, const dr_load_params *p, dr_dataset **out,
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
    if ((s = dr_builder_create(&b)) != DR_OK) return oom(err, dir);
    /* events first, then the catalogue: dense ids come out as they were saved */
    if ((s = dyn_interactions(dir, p, b, &rep, &st, err)) != DR_OK ||
        (s = dyn_items(dir, p, b, &rep, &st, err)) != DR_OK)
        goto fail;
    base_name(dir, false, name, sizeof name);
    double ts = m.time_scale >= 0 ? m.time_scale : p->time_scale ? p->time_scale : 1;
    if ((s = build(b, &rep, dir, DR_FMT_DYNREC, m.name[0] ? m.name : name, ts, &ds, err)) != DR_OK)
        goto fail;
    for (size_t k = 0; k < ds->n_events && m.has_given_split < 0; k++)
        if (ds->ev_tag[k] != DR_TAG_NONE) m.has_given_split = 1;
    ds->has_given_split = m.has_given_split > 0;
    uint32_t nrows = st.ibuf ? (uint32_t)st.rows.n : ds->n_items;
    if (!(map = dr_malloc(((size_t)nrows + 1) * sizeof *map))) {
        s = oom(err, dir);
        goto fail;
    }
    for (uint32_t r = 0; r < nrows; r++) map[r] = r;
    if (st.ibuf && (s = dyn_item_meta(ds, &st, map, err)) != DR_OK) goto fail;
    for (const char *a = m.modalities; *a;) {
        const char *e = strchr(a, ',');
        size_t n = e ? (size_t)(e - a) : strlen(a);
        char mod[32];
        if (!mod_name_ok(a, n)) {
            s = dr_fail(err, DR_FORMAT, "%s/manifest.tsv: bad modality name '%.*s'", dir,
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
        s = dr_fail(err, DR_FORMAT, "%s/manifest.tsv: says %" PRId64 " users, %" PRId64
                    " items, %" PRId64 " events; the files hold %u, %u, %zu",
                    dir, m.n_users, m.n_items, m.n_events, ds->n_users, ds->n_items,
                    ds->n_events);
        goto fail;
    }
    *out = ds;
    ds = NULL;
fail:
    dr_builder_free(b);
    dr_dataset_free(ds);
    dr_free(map);
    dr_free(st.ibuf);
    dr_free(st.ipath);
    dr_vec_free(&st.rows);
    dr_vec_free(&st.scratch);
    dr_vec_free(&st.scratch2);
    return s;
}

/* ------------------------------------------------------------------ dynrec folder: save */

static void put_esc(FILE *f, const char *s) {
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

static dr_status open_out(const char *dir, const char *file, char **path, FILE **f,
                          dr_error *err) {
    if (!(*path = dr_path_join(dir, file))) return oom(err, dir);
    if (!(*f = fopen(*path, "wb"))) return dr_fail(err, DR_IO, "%s: cannot create", *path);
    return DR_OK;
}

static dr_status close_out(char **path, FILE **f, dr_error *err) {
    bool ok = !ferror(*f);
    if (fclose(*f) != 0) ok = false;
    *f = NULL;
    dr_status s = ok ? DR_OK : dr_fail(err, DR_IO, "%s: write failed", *path);
    dr_free(*path);
    *path = NULL;
    return s;
}

dr_status dr_dataset_save(const dr_dataset *ds, const char *dir, dr_error *err) {
    FILE *f = NULL;
    char *path = NULL, rel[96];
    for (int m = 0; m < ds->n_mod; m++)
        if (!mod_name_ok(ds->mod[m].name, strlen(ds->mod[m].name)))
            return dr_fail(err, DR_ARG, "modality name '%s' cannot be a file name",
                           ds->mod[m].name);
    dr_status s = dr_mkdir_p(dir, err);
    if (s != DR_OK) return s;

    if ((s = open_out(dir, "manifest.tsv", &path, &f, err)) != DR_OK) goto fail;
    fputs("format\tdynrec\nversion\t1\nname\t", f);
    put_esc(f, ds->name);
    fprintf(f, "\ntime_scale\t%.17g\nhas_given_split\t%d\nn_users\t%u\nn_items\t%u\n"
            "n_events\t%zu\nmodalities\t", ds->time_scale, ds->has_given_split ? 1 : 0,
            ds->n_users, ds->n_items, ds->n_events);
    for (int m = 0; m < ds->n_mod; m++) fprintf(f, "%s%s", m ? "," : "", ds->mod[m].name);
    fputc('\n', f);
    if ((s = close_out(&path, &f, err)) != DR_OK) goto fail;

    if ((s = open_out(dir, "interactions.tsv", &path, &f, err)) != DR_OK) goto fail;
    fputs("user\titem\ttime\tweight\tsplit\n", f);
    for (size_t k = 0; k < ds->n_events; k++) {
        put_esc(f, ds->users.str[ds->ev_user[k]]);
        putc('\t', f);
        put_esc(f, ds->items.str[ds->ev_item[k]]);
        fprintf(f, "\t%" PRId64 "\t%.9g\t%s\n", ds->ev_time[k], (double)ds->ev_weight[k],
                split_names[ds->ev_tag[k] < 4 ? ds->ev_tag[k] : 0]);
    }
    if ((s = close_out(&path, &f, err)) != DR_OK) goto fail;

    if ((s = open_out(dir, "items.tsv", &path, &f, err)) != DR_OK) goto fail;
    fputs("item\ttitle\tattributes\n", f);
    for (uint32_t i = 0; i < ds->n_items; i++) {
        put_esc(f, ds->items.str[i]);
        putc('\t', f);
        if (ds->title && ds->title[i]) put_esc(f, ds->title[i]);
        putc('\t', f);
        size_t lo = ds->item_attr_off ? ds->item_attr_off[i] : 0;
        size_t hi = ds->item_attr_off ? ds->item_attr_off[i + 1] : 0;
        for (size_t k = lo; k < hi; k++) {
            if (k > lo) putc('|', f);
            put_esc(f, ds->attrs.str[ds->item_attr[k]]);
        }
        putc('\n', f);
    }
    if ((s = close_out(&path, &f, err)) != DR_OK) goto fail;

    if (ds->n_mod) {
        if (!(path = dr_path_join(dir, "features"))) goto nomem;
        if ((s = dr_mkdir_p(path, err)) != DR_OK) goto fail;
        dr_free(path);
        path = NULL;
    }
    for (int m = 0; m < ds->n_mod; m++) {
        const dr_modality *md = &ds->mod[m];
        snprintf(rel, sizeof rel, "features/%s.npy", md->name);
        if (!(path = dr_path_join(dir, rel))) goto nomem;
        if ((s = dr_npy_write_f32(path, md->x, ds->n_items, md->dim, err)) != DR_OK) goto fail;
        dr_free(path);
        snprintf(rel, sizeof rel, "features/%s.present.npy", md->name);
        if (!(path = dr_path_join(dir, rel))) goto nomem;
        if ((s = dr_npy_write_u8(path, md->present, ds->n_items, err)) != DR_OK) goto fail;
        dr_free(path);
        path = NULL;
    }
    return DR_OK;
nomem:
    s = oom(err, dir);
fail:
    if (f) fclose(f);
    dr_free(path);
    return s;
}

/* ------------------------------------------------------------------ dispatch */

bool dr_dir_has(const char *dir, const char *file) {
    char p[4096];
    int n = snprintf(p, sizeof p, "%s/%s", dir, file);
    return n > 0 && (size_t)n < sizeof p && dr_path_exists(p);
}

/* DR_FMT_AUTO: the first row, in table order, whose detector accepts the path. */
static dr_status detect(const char *path, dr_format *f, dr_error *err) {
    bool dir = dr_path_is_dir(path);
    if (!dir && !dr_path_exists(path))
        return dr_fail(err, DR_IO, "%s: no such file or folder", path);
    if (!dir && (dr_path_ends(path, ".gz") || dr_path_ends(path, ".zst") ||
                 dr_path_ends(path, ".bz2")))
        return dr_fail(err, DR_UNSUPPORTED, "%s: compressed input; decompress it first", path);
    for (size_t k = 0; k < DR_ARRAY_LEN(formats); k++)
        if (formats[k].detect && (formats[k].reads == READS_FOLDER) == dir &&
            formats[k].detect(path)) {
            *f = formats[k].f;
            return DR_OK;
        }
    return dr_fail(err, DR_FORMAT, "%s: cannot tell the dataset format of this %s (see "
                   "docs/FORMATS.md, or pass a format)", path, dir ? "folder" : "file");
}

dr_status dr_dataset_load(const char *path, const dr_load_params *p, dr_dataset **out,
                          dr_error *err) {
    dr_load_params q = p ? *p : dr_load_default_params();
    if (!q.max_line) q.max_line = DR_LOAD_MAX_LINE;
    if (!q.max_file) q.max_file = DR_LOAD_MAX_FILE;
    *out = NULL;
    if (!path || !*path) return dr_fail(err, DR_ARG, "no dataset path given");
    dr_format f = q.format;
    dr_status s;
    if (f == DR_FMT_AUTO && (s = detect(path, &f, err)) != DR_OK) return s;
    const format_row *row = NULL;
    for (size_t k = 0; k < DR_ARRAY_LEN(formats); k++)
        if (formats[k].f == f && formats[k].load) row = &formats[k];
    bool want_dir = !row || row->reads != READS_FILE;
    if (!dr_path_exists(path)) return dr_fail(err, DR_IO, "%s: no such file or folder", path);
    if (want_dir != dr_path_is_dir(path))
        return dr_fail(err, DR_ARG, "%s: the %s format reads a %s", path, dr_format_name(f),
                       want_dir ? "folder" : "file");
    if (!row) return dr_fail(err, DR_ARG, "unknown dataset format %d", (int)f);
    return row->load(path, &q, out, err);
}
