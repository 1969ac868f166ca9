/*
 * load_amazon_json.c - Amazon review datasets in JSON lines: reviews (2014/2018 fields reviewerID,
 * asin, unixReviewTime, overall; 2023 fields user_id, parent_asin/asin, timestamp, rating)
 * and optional item metadata (title, category/categories, brand, store, images).
 *
 * DESIGN: one jansson json_loadb per line with its own json_error_t (thread-safe, exact
 * column in the message); the whole file is read once (size-capped) and walked by
 * load_lines.c, the reader the delimited loaders use: UTF-8 BOM and CR stripped, over-long
 * and non-UTF-8 lines counted as bad rows, strict mode fails on the first. Times are stored in
 * milliseconds (time_scale 0.001) whichever release a row comes from, so files mixing both
 * releases still sort correctly. Rejected: a streaming tokenizer pulling only the needed
 * keys (faster on multi-GB dumps, but hand-written JSON lexing is exactly the kind of code
 * a fuzzer breaks; jansson is already a dependency) and the 2014 "loose JSON" (Python
 * literals): not JSON, those lines are reported as malformed.
 */
#include "load_lines.h"

#include <float.h>
#include <jansson.h>
#include <stdio.h>

/* ------------------------------------------------------------------ lines */

/* Next line that parses as a JSON object (load_lines.c's rules first): 1 with *obj (caller
 * decrefs), 0 at the end, -1 on a strict-mode error (*st, it->err). Bad lines are counted and
 * skipped. */
static int jl_next(dr_lines *it, json_t **obj, dr_status *st) {
    const char *s;
    size_t n;
    int q;
    *st = DR_OK;
    while ((q = dr__lines_next(it, &s, &n)) > 0) {
        json_error_t je;
        json_t *o = json_loadb(s, n, 0, &je);
        if (!o)
            *st = dr__lines_bad(it, DR_SKIP_JSON, "column %d: %s", je.column, je.text);
        else if (!json_is_object(o))
            *st = dr__lines_bad(it, DR_SKIP_FIELD, "not a JSON object");
        else {
            *obj = o;
            return 1;
        }
        json_decref(o);
        if (*st != DR_OK) return -1;
    }
    if (q < 0) *st = it->status;
    return q;
}

/* The first of two keys holding a non-empty string; NULL when neither does. */
static const char *str2(json_t *o, const char *a, const char *b, size_t *n) {
    json_t *v = json_object_get(o, a);
    if (!json_is_string(v) || !json_string_length(v)) v = json_object_get(o, b);
    if (!json_is_string(v) || !json_string_length(v)) return NULL;
    *n = json_string_length(v);
    return json_string_value(v);
}

/* ------------------------------------------------------------------ reviews */

/* Checks a review object; returns -1 when good, else a skip reason with msg filled in. */
static int review_fields(json_t *o, const char **u, size_t *un, const char **i, size_t *in,
                         int64_t *t, float *w, char *msg, size_t cap) {
    json_t *ts = json_object_get(o, "unixReviewTime"), *ms = json_object_get(o, "timestamp");
    json_t *rt = json_object_get(o, "overall");
    if (!rt) rt = json_object_get(o, "rating");
    *u = str2(o, "reviewerID", "user_id", un);
    *i = str2(o, "parent_asin", "asin", in);
    if (!*u || !*i) {
        json_t *uv = json_object_get(o, "reviewerID"), *iv = json_object_get(o, "asin");
        if (!uv) uv = json_object_get(o, "user_id");
        if (!iv) iv = json_object_get(o, "parent_asin");
        bool empty = json_is_string(uv) && json_is_string(iv);
        snprintf(msg, cap, "%s reviewerID/user_id or asin/parent_asin",
                 empty ? "empty" : "missing or non-string");
        return empty ? DR_SKIP_EMPTY_ID : DR_SKIP_FIELD;
    }
    if (json_is_integer(ts)) {
        json_int_t v = json_integer_value(ts);
        if (v > INT64_MAX / 1000 || v < INT64_MIN / 1000) {
            snprintf(msg, cap, "unixReviewTime out of range");
            return DR_SKIP_NUMBER;
        }
        *t = (int64_t)v * 1000;
    } else if (json_is_integer(ms)) {
        *t = (int64_t)json_integer_value(ms);
    } else {
        snprintf(msg, cap, "missing or non-integer unixReviewTime/timestamp");
        return DR_SKIP_FIELD;
    }
    *w = 1.0f;
    if (rt) {
        double v = json_number_value(rt);
        if (!json_is_number(rt) || v > FLT_MAX || v < -FLT_MAX) {
            snprintf(msg, cap, "overall/rating is not a finite number");
            return DR_SKIP_NUMBER;
        }
        *w = (float)v;
    }
    return -1;
}

dr_status dr__parse_amazon_json(const char *buf, size_t len, const char *name,
                               const dr_load_params *p, dr_builder *b, dr_load_report *r,
                               dr_error *err) {
    dr_lines it;
    json_t *o;
    dr_status s;
    size_t ok = 0, read0 = r->rows_read;
    char msg[160];
    int q;
    dr__lines_init(&it, buf, len, name, p, r, err);
    while ((q = jl_next(&it, &o, &s)) > 0) {
        const char *u, *i;
        size_t un, in;
        int64_t t;
        float w;
        int why = review_fields(o, &u, &un, &i, &in, &t, &w, msg, sizeof msg);
        if (why >= 0) s = dr__lines_bad(&it, (dr_skip_reason)why, "%s", msg);
        else if ((s = dr__builder_add_event(b, u, un, i, in, t, w, DR_TAG_NONE)) != DR_OK)
            s = dr__fail(err, s, "%s:%zu: %s", name, it.no,
                        s == DR_LIMIT ? "too many interactions" : "out of memory");
        else
            r->rows_ok++, ok++;
        json_decref(o);
        if (s != DR_OK) return s;
    }
    if (q < 0) return s;
    if (!ok)
        return dr__fail(err, DR_FORMAT, "%s: no interactions accepted (%zu rows read)", name,
                       r->rows_read - read0);
    return DR_OK;
}

/* ------------------------------------------------------------------ metadata */

typedef struct meta_ctx {
    dr_dataset *ds;
    DR_VEC(dr_attr_pair) pairs;
    DR_VEC(char) kv;
    uint8_t *seen; /* (n_items) */
} meta_ctx;

static dr_status attr_add(meta_ctx *c, uint32_t item, const char *key, const char *v, size_t n) {
    size_t kn = strlen(key);
    if (!n || dr_vec_reserve(&c->kv, kn + n + 2)) return n ? DR_NOMEM : DR_OK;
    memcpy(c->kv.a, key, kn);
    c->kv.a[kn] = '=';
    memcpy(c->kv.a + kn + 1, v, n);
    uint32_t id;
    dr_status s = dr__strtab_intern(&c->ds->attrs, c->kv.a, kn + 1 + n, &id, NULL);
    if (s != DR_OK) return s;
    return dr_vec_push(&c->pairs, ((dr_attr_pair){item, id})) ? DR_NOMEM : DR_OK;
}

/* Strings of an array (one level of nested arrays too, as in the 2014 "categories") as
 * key=value attributes; values of other types are ignored. */
static dr_status attr_strings(meta_ctx *c, uint32_t item, const char *key, json_t *v, int depth) {
    if (json_is_string(v)) return attr_add(c, item, key, json_string_value(v), json_string_length(v));
    if (!json_is_array(v) || depth > 1) return DR_OK;
    size_t k;
    json_t *e;
    json_array_foreach(v, k, e) {
        dr_status s = attr_strings(c, item, key, e, depth + 1);
        if (s != DR_OK) return s;
    }
    return DR_OK;
}

static dr_status meta_row(dr_lines *it, meta_ctx *c, json_t *o) {
    size_t n;
    const char *id = str2(o, "parent_asin", "asin", &n);
    if (!id) return dr__lines_bad(it, DR_SKIP_FIELD, "missing or empty asin/parent_asin");
    uint32_t i = dr__strtab_find(&c->ds->items, id, n);
    if (i == UINT32_MAX)
        return dr__lines_bad(it, DR_SKIP_UNKNOWN, "item %.*s has no reviews", (int)DR_MIN(n, 40), id);
    if (c->seen[i])
        return dr__lines_bad(it, DR_SKIP_DUPLICATE, "item %.*s listed twice", (int)DR_MIN(n, 40), id);
    c->seen[i] = 1;
    json_t *title = json_object_get(o, "title");
    dr_status s = DR_OK;
    if (json_is_string(title) && json_string_length(title))
        s = dr__dataset_set_title(c->ds, i, json_string_value(title), json_string_length(title));
    json_t *imgs[3] = {json_object_get(o, "imageURL"), json_object_get(o, "imageURLHighRes"),
                       json_object_get(o, "images")};
    bool image = false;
    for (int k = 0; k < 3; k++) image |= json_is_array(imgs[k]) && json_array_size(imgs[k]) > 0;
    if (s == DR_OK) s = attr_strings(c, i, "category", json_object_get(o, "category"), 0);
    if (s == DR_OK) s = attr_strings(c, i, "category", json_object_get(o, "categories"), 0);
    if (s == DR_OK) s = attr_strings(c, i, "brand", json_object_get(o, "brand"), 1);
    if (s == DR_OK) s = attr_strings(c, i, "store", json_object_get(o, "store"), 1);
    if (s == DR_OK && image) s = attr_add(c, i, "has_image", "1", 1);
    if (s != DR_OK) return dr__fail(it->err, DR_NOMEM, "%s:%zu: out of memory", it->name, it->no);
    it->r->rows_ok++;
    return DR_OK;
}

static dr_status parse_meta(const char *buf, size_t len, const char *name,
                            const dr_load_params *p, meta_ctx *c, dr_error *err) {
    dr_lines it;
    json_t *o;
    dr_status s;
    int q;
    dr__lines_init(&it, buf, len, name, p, &c->ds->report, err);
    while ((q = jl_next(&it, &o, &s)) > 0) {
        s = meta_row(&it, c, o);
        json_decref(o);
        if (s != DR_OK) return s;
    }
    return q < 0 ? s : DR_OK;
}

/* The metadata file next to the reviews: meta_<stem>.json[l] (also for <stem>_5 5-core
 * files) or <stem>.meta.json[l]. *out: a dr__malloc'd path, or NULL when there is none. */
static dr_status find_meta(const char *path, char **out) {
    static const char *const pat[] = {"%.*smeta_%.*s.jsonl", "%.*smeta_%.*s.json",
                                      "%.*s%.*s.meta.jsonl", "%.*s%.*s.meta.json"};
    size_t n = strlen(path), b = n;
    while (b && path[b - 1] != '/') b--;
    size_t stem = n - b;
    if (stem > 6 && strcmp(path + n - 6, ".jsonl") == 0) stem -= 6;
    else if (stem > 5 && strcmp(path + n - 5, ".json") == 0) stem -= 5;
    for (int core = 0; core < 2; core++) {
        size_t sn = stem;
        if (core) {
            if (sn < 3 || memcmp(path + b + sn - 2, "_5", 2) != 0) break;
            sn -= 2;
        }
        for (size_t k = 0; k < DR_ARRAY_LEN(pat); k++) {
            char cand[4096];
            int m = snprintf(cand, sizeof cand, pat[k], (int)b, path, (int)sn, path + b);
            if (m > 0 && (size_t)m < sizeof cand && strcmp(cand, path) != 0 &&
                dr__path_exists(cand))
                return (*out = dr__strdup(cand)) ? DR_OK : DR_NOMEM;
        }
    }
    *out = NULL;
    return DR_OK;
}

bool dr__detect_amazon_json(const char *path) {
    return dr__path_ends(path, ".json") || dr__path_ends(path, ".jsonl");
}

dr_status dr__load_amazon_json(const char *path, const dr_load_params *p, dr_dataset **out,
                              dr_error *err) {
    dr_builder *b = NULL;
    dr_dataset *ds = NULL;
    dr_load_report rep = {0};
    meta_ctx c = {0};
    char *buf = NULL, *meta = NULL;
    size_t len;
    *out = NULL;
    dr_status s = dr__builder_create(&b);
    if (s != DR_OK) return dr__fail(err, DR_NOMEM, "%s: out of memory", path);
    if ((s = dr__read_file(path, p->max_file, &buf, &len, err)) != DR_OK ||
        (s = dr__parse_amazon_json(buf, len, path, p, b, &rep, err)) != DR_OK ||
        (s = dr__builder_finish(b, &ds, err)) != DR_OK)
        goto fail;
    dr__free(buf);
    buf = NULL;
    ds->report = rep;
    ds->format = DR_FMT_AMAZON_JSON;
    ds->time_scale = 0.001;
    snprintf(ds->name, sizeof ds->name, "amazon");
    if (!(ds->source = dr__strdup(path))) goto nomem;
    if (p->meta_path ? !(meta = dr__strdup(p->meta_path)) : find_meta(path, &meta) != DR_OK)
        goto nomem;
    if (meta) {
        c.ds = ds;
        if (!(c.seen = dr__calloc((size_t)ds->n_items + 1, 1))) goto nomem;
        if ((s = dr__read_file(meta, p->max_file, &buf, &len, err)) != DR_OK ||
            (s = parse_meta(buf, len, meta, p, &c, err)) != DR_OK ||
            (c.pairs.n && (s = dr__dataset_set_attrs(ds, c.pairs.a, c.pairs.n, err)) != DR_OK))
            goto fail;
    }
    *out = ds;
    ds = NULL;
    goto fail;
nomem:
    s = dr__fail(err, DR_NOMEM, "%s: out of memory", path);
fail:
    dr__builder_free(b);
    dr_dataset_free(ds);
    dr__free(buf);
    dr__free(meta);
    dr__free(c.seen);
    dr_vec_free(&c.pairs);
    dr_vec_free(&c.kv);
    return s;
}
