/*
 * load_amazon_csv.c - the Amazon CSV split ("amazon-mtv"): train.csv, validation.csv and
 * test.csv, rows user,item,timestamp with an optional header; all three are read (a folder
 * with the first two is detected as this format) and each event keeps its file as its split
 * tag. Times are milliseconds (time_scale 0.001 unless given).
 *
 * DESIGN: the format is a file list and its columns: the files go through the shared
 * delimited parser in order, so the given split needs no code of its own.
 */
#include "load_common.h"

bool dr__detect_amazon_csv(const char *dir) {
    return dr__dir_has(dir, "train.csv") && dr__dir_has(dir, "validation.csv");
}

dr_status dr__load_amazon_csv(const char *dir, const dr_load_params *p, dr_dataset **out,
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
    dr_status s = dr__builder_create(&b);
    if (s != DR_OK) return dr__loader_oom(err, dir);
    if ((s = dr__read_parse_files(dir, files, tags, 3, false, &q, b, &rep, err)) == DR_OK)
        s = dr__loader_build(b, &rep, dir, DR_FMT_AMAZON_CSV, "amazon-mtv",
                            q.time_scale ? q.time_scale : 0.001, out, err);
    dr__builder_free(b);
    return s;
}

