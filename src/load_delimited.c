/*
 * load_delimited.c - one delimited file (CSV, TSV or ';'-separated): a row per interaction,
 * the user, item, time and weight columns from the load parameters (0, 1, 2, 3 by default;
 * time and weight optional), the delimiter and a header line detected unless given. The
 * dataset is named after the file.
 *
 * DESIGN: the fallback format: its detector accepts any file the rows before it in
 * DR_FORMAT_TABLE declined. The row parser (dr__parse_delimited) is in load_common.c because
 * the MovieLens, Amazon CSV and TikTok loaders read their interaction files with it too; what
 * is left here is the loader that reads one file with the caller's columns.
 */
#include "load_common.h"

bool dr__detect_delimited(const char *path) { return true; } /* any other file */

dr_status dr__load_delimited(const char *path, const dr_load_params *p, dr_dataset **out,
                            dr_error *err) {
    dr_builder *b = NULL;
    dr_load_report rep = {0};
    char name[64];
    *out = NULL;
    dr_status s = dr__builder_create(&b);
    if (s != DR_OK) return dr__loader_oom(err, path);
    if ((s = dr__read_parse(path, p, DR_TAG_NONE, b, &rep, err)) != DR_OK) goto fail;
    dr__base_name(path, true, name, sizeof name);
    s = dr__loader_build(b, &rep, path, DR_FMT_DELIMITED, name, p->time_scale ? p->time_scale : 1,
                        out, err);
fail:
    dr__builder_free(b);
    return s;
}

