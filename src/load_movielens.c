/*
 * load_movielens.c - a MovieLens folder (the ml-latest-small layout): ratings.csv
 * (userId,movieId,rating,timestamp; the rating is the weight), and, optional, movies.csv
 * (movieId,title,genres: titles and "genre=" attributes) and tags.csv
 * (userId,movieId,tag,timestamp: lower-cased "tag=" attributes).
 *
 * DESIGN: ratings go through the shared delimited parser with fixed columns. The metadata
 * files are walked after the dataset is built, so they attach by external movie id; a movie
 * with no ratings is reported, not added to the catalogue. walk_meta_csv is here because only
 * this format has metadata CSVs with a header and a fixed column count.
 */
#include "load_common.h"

typedef struct ml_ctx {
    dr_dataset *ds;
    dr_attr_acc acc;
    uint8_t *seen; /* (n_items) movies.csv row already applied */
} ml_ctx;

typedef dr_status (*meta_row_fn)(dr_fields *rd, ml_ctx *c);

/* Walks an optional comma-separated metadata file with a header and `cols` columns. */
static dr_status walk_meta_csv(const char *dir, const char *file, size_t cols, meta_row_fn fn,
                               ml_ctx *c, const dr_load_params *p, dr_error *err) {
    char *path = dr__path_join(dir, file), *buf = NULL;
    size_t len;
    dr_fields rd;
    int q;
    if (!path) return dr__loader_oom(err, dir);
    dr_status s = DR_OK;
    if (!dr__path_exists(path)) goto done;
    if ((s = dr__read_file(path, p->max_file, &buf, &len, err)) != DR_OK) goto done;
    dr__fields_init(&rd, buf, len, path, p, &c->ds->report, err, ',', true);
    bool first = true;
    while ((q = dr__fields_next(&rd)) > 0) {
        if (first && (first = false, !dr__span_int(rd.f[0]))) {
            c->ds->report.rows_read--; /* header */
            continue;
        }
        if (rd.nf != cols) s = dr__lines_bad(&rd.ln, DR_SKIP_COLUMNS, "expected %zu columns, found %zu",
                                       cols, rd.nf);
        else if (!rd.f[0].n || !rd.f[1].n) s = dr__lines_bad(&rd.ln, DR_SKIP_EMPTY_ID, "empty id");
        else s = fn(&rd, c);
        if (s != DR_OK) break;
    }
    if (q < 0) s = rd.ln.status;
    dr__fields_free(&rd);
done:
    dr__free(buf);
    dr__free(path);
    return s;
}

static dr_status ml_movie(dr_fields *rd, ml_ctx *c) {
    dr_span id = rd->f[0], title = rd->f[1], g = rd->f[2];
    uint32_t i = dr__strtab_find(&c->ds->items, id.s, id.n);
    if (i == UINT32_MAX)
        return dr__lines_bad(&rd->ln, DR_SKIP_UNKNOWN, "movie %.*s has no ratings", (int)DR_MIN(id.n, 40),
                       id.s);
    if (c->seen[i])
        return dr__lines_bad(&rd->ln, DR_SKIP_DUPLICATE, "movie %.*s listed twice", (int)DR_MIN(id.n, 40),
                       id.s);
    c->seen[i] = 1;
    if (title.n && dr__dataset_set_title(c->ds, i, title.s, title.n) != DR_OK)
        return dr__loader_oom(rd->ln.err, rd->ln.name);
    for (size_t a = 0; a < g.n;) {
        const char *bar = memchr(g.s + a, '|', g.n - a);
        size_t e = bar ? (size_t)(bar - g.s) : g.n;
        dr_span one = dr__span_trim(g.s + a, e - a);
        if (one.n && !dr__span_eq(one, "(no genres listed)") &&
            dr__attr_acc_add(c->ds, &c->acc, i, "genre", one.s, one.n, false) != DR_OK)
            return dr__loader_oom(rd->ln.err, rd->ln.name);
        a = e + 1;
    }
    rd->ln.r->rows_ok++;
    return DR_OK;
}

static dr_status ml_tag(dr_fields *rd, ml_ctx *c) {
    dr_span id = rd->f[1], tag = rd->f[2];
    uint32_t i = dr__strtab_find(&c->ds->items, id.s, id.n);
    if (!id.n || !tag.n)
        return dr__lines_bad(&rd->ln, DR_SKIP_FIELD, "empty movie id or tag");
    if (i == UINT32_MAX)
        return dr__lines_bad(&rd->ln, DR_SKIP_UNKNOWN, "tag on movie %.*s, which has no ratings",
                       (int)DR_MIN(id.n, 40), id.s);
    if (dr__attr_acc_add(c->ds, &c->acc, i, "tag", tag.s, tag.n, true) != DR_OK)
        return dr__loader_oom(rd->ln.err, rd->ln.name);
    rd->ln.r->rows_ok++;
    return DR_OK;
}

bool dr__detect_movielens(const char *dir) { return dr__dir_has(dir, "ratings.csv"); }

dr_status dr__load_movielens(const char *dir, const dr_load_params *p, dr_dataset **out,
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
    dr_status s = dr__builder_create(&b);
    if (s != DR_OK) return dr__loader_oom(err, dir);
    if ((s = dr__read_parse_files(dir, files, tags, 1, false, &q, b, &rep, err)) != DR_OK ||
        (s = dr__loader_build(b, &rep, dir, DR_FMT_MOVIELENS, "ml-small",
                             q.time_scale ? q.time_scale : 1, &c.ds, err)) != DR_OK)
        goto fail;
    if (!(c.seen = dr__calloc(c.ds->n_items + 1, 1))) {
        s = dr__loader_oom(err, dir);
        goto fail;
    }
    if ((s = walk_meta_csv(dir, "movies.csv", 3, ml_movie, &c, p, err)) != DR_OK ||
        (s = walk_meta_csv(dir, "tags.csv", 4, ml_tag, &c, p, err)) != DR_OK ||
        (s = dr__attr_acc_finish(c.ds, &c.acc, err)) != DR_OK)
        goto fail;
    *out = c.ds;
    c.ds = NULL;
fail:
    dr__builder_free(b);
    dr__attr_acc_free(&c.acc);
    dr__free(c.seen);
    dr_dataset_free(c.ds);
    return s;
}

