/*
 * load.c - the dataset formats: DR_FORMAT_TABLE bound to its detectors and loaders,
 * the format names, the default load parameters, auto detection and the dr_dataset_load
 * dispatcher. The detectors and loaders are in a file per format (load_delimited.c,
 * load_movielens.c, load_amazon_csv.c, load_tiktok.c, load_dynrec.c, load_amazon_json.c), their
 * shared steps in load_common.c.
 *
 * DESIGN: formats are rows of DR_FORMAT_TABLE (dynrec.h): enum, --format name, folder or
 * file, detector, loader. The names, the auto detection (rows in table order, first yes wins)
 * and the dispatch are loops over that one table, so a format is a loader, its detector and
 * a row, and no list has to follow the enum's order. This file calls the loaders only through
 * the table and no loader calls back into it, so the table sits above the format files.
 */
#include "dataset.h"

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

/* ------------------------------------------------------------------ dispatch */

/* DR_FMT_AUTO: the first row, in table order, whose detector accepts the path. */
static dr_status detect(const char *path, dr_format *f, dr_error *err) {
    bool dir = dr__path_is_dir(path);
    if (!dir && !dr__path_exists(path))
        return dr__fail(err, DR_IO, "%s: no such file or folder", path);
    if (!dir && (dr__path_ends(path, ".gz") || dr__path_ends(path, ".zst") ||
                 dr__path_ends(path, ".bz2")))
        return dr__fail(err, DR_UNSUPPORTED, "%s: compressed input; decompress it first", path);
    for (size_t k = 0; k < DR_ARRAY_LEN(formats); k++)
        if (formats[k].detect && (formats[k].reads == READS_FOLDER) == dir &&
            formats[k].detect(path)) {
            *f = formats[k].f;
            return DR_OK;
        }
    return dr__fail(err, DR_FORMAT, "%s: cannot tell the dataset format of this %s (see "
                   "docs/FORMATS.md, or pass a format)", path, dir ? "folder" : "file");
}

dr_status dr_dataset_load(const char *path, const dr_load_params *p, dr_dataset **out,
                          dr_error *err) {
    dr_load_params q = p ? *p : dr_load_default_params();
    if (!q.max_line) q.max_line = DR_LOAD_MAX_LINE;
    if (!q.max_file) q.max_file = DR_LOAD_MAX_FILE;
    *out = NULL;
    if (!path || !*path) return dr__fail(err, DR_ARG, "no dataset path given");
    dr_format f = q.format;
    dr_status s;
    if (f == DR_FMT_AUTO && (s = detect(path, &f, err)) != DR_OK) return s;
    const format_row *row = NULL;
    for (size_t k = 0; k < DR_ARRAY_LEN(formats); k++)
        if (formats[k].f == f && formats[k].load) row = &formats[k];
    bool want_dir = !row || row->reads != READS_FILE;
    if (!dr__path_exists(path)) return dr__fail(err, DR_IO, "%s: no such file or folder", path);
    if (want_dir != dr__path_is_dir(path))
        return dr__fail(err, DR_ARG, "%s: the %s format reads a %s", path, dr_format_name(f),
                       want_dir ? "folder" : "file");
    if (!row) return dr__fail(err, DR_ARG, "unknown dataset format %d", (int)f);
    return row->load(path, &q, out, err);
}

