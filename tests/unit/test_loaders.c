/* test_loaders.c - dataset loaders (src/load.c, src/load_*.c, src/load_amazon_json.c):
 * every format on good and malformed fixtures (tests/fixtures/), strict mode, caps, save/load
 * round trips, out-of-memory at every allocation, and the shared datasets when present. */
#include "testutil.h"
#include "oom.h"

#include "dataset.h"

#include <math.h>
#include <sys/stat.h>

#define FIX "tests/fixtures/"

/* ------------------------------------------------------------------ helpers */

static dr_dataset *load_ok(const char *path, const dr_load_params *p) {
    dr_dataset *ds = NULL;
    dr_error e = {0};
    dr_status s = dr_dataset_load(path, p, &ds, &e);
    if (s != DR_OK) fail_msg("load %s: %s: %s", path, dr_status_name(s), e.msg);
    return ds;
}

/* Loads a path that must fail with `want`; the message must contain `needle`. */
static void load_fails(const char *path, const dr_load_params *p, dr_status want,
                       const char *needle) {
    dr_dataset *ds = (dr_dataset *)1;
    dr_error e = {0};
    dr_status s = dr_dataset_load(path, p, &ds, &e);
    if (s != want) fail_msg("load %s: want %s, got %s: %s", path, dr_status_name(want),
                            dr_status_name(s), e.msg);
    assert_null(ds);
    if (needle && !strstr(e.msg, needle)) fail_msg("message '%s' lacks '%s'", e.msg, needle);
}

static size_t skipped_total(const dr_load_report *r) {
    size_t n = 0;
    for (int k = 0; k < DR_SKIP_COUNT; k++) n += r->skipped[k];
    return n;
}

/* Every row read is either accepted or skipped under exactly one reason. */
static void check_report(const dr_dataset *ds) {
    const dr_load_report *r = dr_dataset_report(ds);
    assert_int_equal(r->rows_read, r->rows_ok + skipped_total(r));
}

static bool has_msg(const dr_dataset *ds, const char *needle) {
    const dr_load_report *r = dr_dataset_report(ds);
    for (size_t k = 0; k < r->n_msgs; k++)
        if (strstr(r->msgs[k], needle)) return true;
    return false;
}

static void check_event(const dr_dataset *ds, size_t k, const char *u, const char *i, int64_t t,
                        float w, int tag) {
    assert_true(k < ds->n_events);
    assert_string_equal(dr_dataset_user_id(ds, ds->ev_user[k]), u);
    assert_string_equal(dr_dataset_item_id(ds, ds->ev_item[k]), i);
    assert_int_equal(ds->ev_time[k], t);
    assert_float_equal(ds->ev_weight[k], w, 0);
    assert_int_equal(ds->ev_tag[k], tag);
}

static void check_ids(const dr_dataset *ds, const char *const *users, uint32_t nu,
                      const char *const *items, uint32_t ni) {
    assert_int_equal(dr_dataset_n_users(ds), nu);
    assert_int_equal(dr_dataset_n_items(ds), ni);
    for (uint32_t u = 0; u < nu; u++) assert_string_equal(dr_dataset_user_id(ds, u), users[u]);
    for (uint32_t i = 0; i < ni; i++) assert_string_equal(dr_dataset_item_id(ds, i), items[i]);
}

static uint32_t item_of(const dr_dataset *ds, const char *ext) {
    uint32_t i = UINT32_MAX;
    if (dr_dataset_find_item(ds, ext, &i) != DR_OK) fail_msg("item %s not found", ext);
    return i;
}

static bool has_attr(const dr_dataset *ds, uint32_t i, const char *attr) {
    const char *a[64];
    size_t n = dr_dataset_item_attrs(ds, i, a, 64);
    for (size_t k = 0; k < n && k < 64; k++)
        if (strcmp(a[k], attr) == 0) return true;
    return false;
}

static int str_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Everything a save/load round trip must keep, compared exactly. */
static void assert_same_dataset(const dr_dataset *a, const dr_dataset *b) {
    assert_string_equal(a->name, b->name);
    assert_true(a->time_scale == b->time_scale);
    assert_int_equal(a->has_given_split, b->has_given_split);
    assert_int_equal(a->n_users, b->n_users);
    assert_int_equal(a->n_items, b->n_items);
    assert_int_equal(a->n_events, b->n_events);
    for (uint32_t u = 0; u < a->n_users; u++) assert_string_equal(a->users.str[u], b->users.str[u]);
    size_t n = a->n_events;
    assert_memory_equal(a->ev_user, b->ev_user, n * sizeof *a->ev_user);
    assert_memory_equal(a->ev_item, b->ev_item, n * sizeof *a->ev_item);
    assert_memory_equal(a->ev_time, b->ev_time, n * sizeof *a->ev_time);
    assert_memory_equal(a->ev_weight, b->ev_weight, n * sizeof *a->ev_weight);
    assert_memory_equal(a->ev_tag, b->ev_tag, n);
    assert_memory_equal(a->user_off, b->user_off, (a->n_users + 1) * sizeof *a->user_off);
    assert_memory_equal(a->hist_item, b->hist_item, n * sizeof *a->hist_item);
    assert_int_equal(a->attrs.n, b->attrs.n);
    for (uint32_t i = 0; i < a->n_items; i++) {
        assert_string_equal(a->items.str[i], b->items.str[i]);
        assert_string_equal(dr_dataset_item_title(a, i), dr_dataset_item_title(b, i));
        const char *x[256], *y[256];
        size_t nx = dr_dataset_item_attrs(a, i, x, 256), ny = dr_dataset_item_attrs(b, i, y, 256);
        assert_int_equal(nx, ny);
        assert_true(nx <= 256);
        qsort(x, nx, sizeof *x, str_cmp);
        qsort(y, ny, sizeof *y, str_cmp);
        for (size_t k = 0; k < nx; k++) assert_string_equal(x[k], y[k]);
    }
    assert_int_equal(a->n_mod, b->n_mod);
    for (int m = 0; m < a->n_mod; m++) {
        assert_string_equal(a->mod[m].name, b->mod[m].name);
        assert_int_equal(a->mod[m].dim, b->mod[m].dim);
        assert_memory_equal(a->mod[m].x, b->mod[m].x,
                            (size_t)a->n_items * a->mod[m].dim * sizeof(float));
        assert_memory_equal(a->mod[m].present, b->mod[m].present, a->n_items);
    }
}

static void roundtrip(const dr_dataset *ds) {
    char dir[512];
    dr_test_tmpdir(dir, sizeof dir);
    strcat(dir, "/saved/sub"); /* save creates missing folders */
    assert_ok(dr_dataset_save(ds, dir, &e_));
    dr_dataset *back = load_ok(dir, NULL);
    assert_int_equal(back->format, DR_FMT_DYNREC);
    assert_same_dataset(ds, back);
    dr_dataset_free(back);
    dir[strlen(dir) - strlen("/saved/sub")] = 0;
    dr_test_rmrf(dir);
}

/* ------------------------------------------------------------------ names, params */

static void test_format_names(void **state) {
    (void)state;
    for (int f = DR_FMT_AUTO; f <= DR_FMT_DYNREC; f++) {
        dr_format g = (dr_format)99;
        assert_int_equal(dr_format_parse(dr_format_name((dr_format)f), &g), DR_OK);
        assert_int_equal(g, f);
    }
    /* the numbers are the API: the table's row order (detection order) must not move them */
    static const char *const by_value[] = {"auto",        "delimited", "movielens", "amazon-csv",
                                           "amazon-json", "tiktok",    "dynrec"};
    for (size_t k = 0; k < DR_ARRAY_LEN(by_value); k++)
        assert_string_equal(dr_format_name((dr_format)k), by_value[k]);
    assert_string_equal(dr_format_name((dr_format)DR_ARRAY_LEN(by_value)), "unknown");
    dr_format g;
    assert_string_equal(dr_format_name(DR_FMT_AMAZON_CSV), "amazon-csv");
    assert_int_equal(dr_format_parse("xml", &g), DR_ARG);
    assert_int_equal(dr_format_parse(NULL, &g), DR_ARG);
    dr_load_params p = dr_load_default_params();
    assert_int_equal(p.format, DR_FMT_AUTO);
    assert_int_equal(p.header, -1);
    assert_int_equal(p.col_user, 0);
    assert_int_equal(p.col_item, 1);
    assert_int_equal(p.col_time, 2);
    assert_int_equal(p.col_weight, 3);
    assert_int_equal(p.strict, 0);
    assert_true(p.max_line >= 4096 && p.max_file >= ((size_t)1 << 30));
}

/* ------------------------------------------------------------------ delimited */

static void test_delimited_basic(void **state) {
    (void)state;
    dr_dataset *ds = load_ok(FIX "delimited/basic.tsv", NULL);
    static const char *const users[] = {"u1", "u2", "u3"}, *const items[] = {"i1", "i2", "i3"};
    check_ids(ds, users, 3, items, 3);
    assert_int_equal(dr_dataset_n_events(ds), 5);
    /* stable time sort: the two t=10 rows and the two t=20 rows keep file order */
    check_event(ds, 0, "u1", "i1", 10, 2.0f, DR_TAG_NONE);
    check_event(ds, 1, "u2", "i2", 10, 3.0f, DR_TAG_NONE);
    check_event(ds, 2, "u1", "i2", 20, 1.0f, DR_TAG_NONE);
    check_event(ds, 3, "u3", "i1", 20, 4.0f, DR_TAG_NONE);
    check_event(ds, 4, "u2", "i3", 30, 1.5f, DR_TAG_NONE);
    assert_string_equal(dr_dataset_name(ds), "basic");
    assert_int_equal(ds->format, DR_FMT_DELIMITED);
    assert_string_equal(ds->source, FIX "delimited/basic.tsv");
    assert_true(ds->time_scale == 1.0);
    const dr_load_report *r = dr_dataset_report(ds);
    assert_int_equal(r->rows_read, 5);
    assert_int_equal(r->rows_ok, 5);
    assert_int_equal(r->n_msgs, 0);
    dr_dataset_free(ds);

    dr_load_params p = dr_load_default_params();
    p.time_scale = 60;
    ds = load_ok(FIX "delimited/basic.tsv", &p);
    assert_true(ds->time_scale == 60.0);
    dr_dataset_free(ds);
}

static void test_delimited_quoted(void **state) {
    (void)state;
    /* no header (the time column of line 1 is an integer), 3 columns -> weight 1 */
    dr_dataset *ds = load_ok(FIX "delimited/quoted.csv", NULL);
    static const char *const users[] = {"a,b", "c"}, *const items[] = {"x", "say \"hi\""};
    check_ids(ds, users, 2, items, 2);
    check_event(ds, 0, "a,b", "x", 5, 1.0f, 0);
    check_event(ds, 1, "c", "say \"hi\"", 6, 1.0f, 0);
    check_event(ds, 2, "c", "x", 7, 1.0f, 0);
    assert_int_equal(dr_dataset_report(ds)->rows_read, 3); /* the blank line is not a row */
    dr_dataset_free(ds);
}

static void test_delimited_crlf_bom(void **state) {
    (void)state;
    dr_dataset *ds = load_ok(FIX "delimited/crlf_bom.csv", NULL); /* ';' detected, header */
    static const char *const users[] = {"A"}, *const items[] = {"B", "C"};
    check_ids(ds, users, 1, items, 2);
    check_event(ds, 1, "A", "C", 2, 1.0f, 0);
    dr_dataset_free(ds);

    /* a BOM before a data row (no header) must not end up in the first id */
    const char buf[] = "\xEF\xBB\xBFx,y,1\r\nx,z,2\r\n";
    dr_builder *b = NULL;
    dr_load_report r = {0};
    dr_load_params p = dr_load_default_params();
    assert_int_equal(dr__builder_create(&b), DR_OK);
    assert_ok(dr__parse_delimited(buf, sizeof buf - 1, "mem", &p, DR_TAG_TEST, b, &r, &e_));
    assert_ok(dr__builder_finish(b, &ds, &e_));
    dr__builder_free(b);
    assert_string_equal(dr_dataset_user_id(ds, 0), "x");
    check_event(ds, 1, "x", "z", 2, 1.0f, DR_TAG_TEST);
    dr_dataset_free(ds);
}

static void test_delimited_bad_rows(void **state) {
    (void)state;
    dr_load_params p = dr_load_default_params();
    p.max_line = 64;
    dr_dataset *ds = load_ok(FIX "delimited/bad.csv", &p);
    const dr_load_report *r = dr_dataset_report(ds);
    assert_int_equal(r->rows_read, 10);
    assert_int_equal(r->rows_ok, 2);
    assert_int_equal(r->skipped[DR_SKIP_COLUMNS], 2); /* 3 columns; unbalanced quote */
    assert_int_equal(r->skipped[DR_SKIP_EMPTY_ID], 1);
    assert_int_equal(r->skipped[DR_SKIP_NUMBER], 2);
    assert_int_equal(r->skipped[DR_SKIP_ENCODING], 2); /* invalid UTF-8; NUL byte */
    assert_int_equal(r->skipped[DR_SKIP_TOO_LONG], 1);
    check_report(ds);
    assert_int_equal(r->n_msgs, 8);
    static const char *const lines[] = {":3: ", ":4: ", ":5: ", ":6: ", ":7: ", ":8: ", ":9: ", ":10: "};
    for (size_t k = 0; k < 8; k++) {
        char want[128];
        snprintf(want, sizeof want, FIX "delimited/bad.csv%s", lines[k]);
        if (strncmp(r->msgs[k], want, strlen(want)) != 0)
            fail_msg("message %zu '%s' does not start with '%s'", k, r->msgs[k], want);
    }
    assert_true(has_msg(ds, "noon"));
    check_event(ds, 0, "u2", "i1", 99, 0.5f, 0);
    check_event(ds, 1, "u1", "i1", 100, 1.0f, 0);
    dr_dataset_free(ds);

    p.strict = 1;
    load_fails(FIX "delimited/bad.csv", &p, DR_FORMAT, FIX "delimited/bad.csv:3: ");
}

static void test_delimited_errors(void **state) {
    (void)state;
    dr_load_params p = dr_load_default_params();
    load_fails(FIX "delimited/header_only.csv", NULL, DR_FORMAT, "header_only.csv");
    load_fails(FIX "delimited/nope.csv", NULL, DR_IO, "nope.csv");
    p.max_file = 16;
    load_fails(FIX "delimited/basic.tsv", &p, DR_LIMIT, "basic.tsv");
    p = dr_load_default_params();
    p.col_user = 5;
    load_fails(FIX "delimited/basic.tsv", &p, DR_FORMAT, "basic.tsv:1:");
    p.col_user = 999;
    load_fails(FIX "delimited/basic.tsv", &p, DR_ARG, NULL);
    p = dr_load_default_params();
    p.format = DR_FMT_MOVIELENS; /* wants a folder */
    load_fails(FIX "delimited/basic.tsv", &p, DR_ARG, "folder");
    p.format = DR_FMT_DELIMITED;
    load_fails(FIX "movielens", &p, DR_ARG, "file");
}

/* Column selection, forced header / no header, explicit delimiter, through the buffer API. */
static void test_delimited_columns(void **state) {
    (void)state;
    const char buf[] = "item|x|user|t\nI1|?|U1|7\nI2|?|U1|3\n";
    dr_load_params p = dr_load_default_params();
    p.delimiter = '|';
    p.col_user = 2;
    p.col_item = 0;
    p.col_time = 3;
    p.col_weight = -1;
    p.header = 1;
    dr_builder *b = NULL;
    dr_dataset *ds = NULL;
    dr_load_report r = {0};
    assert_int_equal(dr__builder_create(&b), DR_OK);
    assert_ok(dr__parse_delimited(buf, sizeof buf - 1, "cols", &p, 0, b, &r, &e_));
    assert_ok(dr__builder_finish(b, &ds, &e_));
    dr__builder_free(b);
    check_event(ds, 0, "U1", "I2", 3, 1.0f, 0);
    check_event(ds, 1, "U1", "I1", 7, 1.0f, 0);
    dr_dataset_free(ds);

    /* header forced off: the header line is a row with a bad time */
    p.header = 0;
    memset(&r, 0, sizeof r);
    assert_int_equal(dr__builder_create(&b), DR_OK);
    assert_ok(dr__parse_delimited(buf, sizeof buf - 1, "cols", &p, 0, b, &r, &e_));
    dr__builder_free(b);
    assert_int_equal(r.rows_read, 3);
    assert_int_equal(r.rows_ok, 2);
    assert_int_equal(r.skipped[DR_SKIP_NUMBER], 1);
    assert_non_null(strstr(r.msgs[0], "cols:1: "));

    /* no time column: file order; header found by its "user" field */
    const char two[] = "user_idx\titem_idx\n5\t1\n4\t2\n";
    p = dr_load_default_params();
    p.col_time = -1;
    memset(&r, 0, sizeof r);
    assert_int_equal(dr__builder_create(&b), DR_OK);
    assert_ok(dr__parse_delimited(two, sizeof two - 1, "two", &p, 0, b, &r, &e_));
    assert_ok(dr__builder_finish(b, &ds, &e_));
    dr__builder_free(b);
    assert_int_equal(r.rows_read, 2);
    check_event(ds, 0, "5", "1", 0, 1.0f, 0);
    check_event(ds, 1, "4", "2", 0, 1.0f, 0);
    dr_dataset_free(ds);
}

/* ------------------------------------------------------------------ MovieLens */

static void test_movielens(void **state) {
    (void)state;
    dr_dataset *ds = load_ok(FIX "movielens", NULL);
    static const char *const users[] = {"1", "2", "3"}, *const items[] = {"20", "10", "30"};
    check_ids(ds, users, 3, items, 3);
    check_event(ds, 0, "1", "20", 900, 3.5f, 0);
    check_event(ds, 1, "2", "10", 900, 5.0f, 0);
    check_event(ds, 2, "1", "10", 1000, 4.0f, 0);
    check_event(ds, 3, "3", "20", 1000, 2.5f, 0);
    check_event(ds, 4, "2", "30", 1100, 1.0f, 0);
    assert_string_equal(dr_dataset_name(ds), "ml-small");
    assert_int_equal(ds->format, DR_FMT_MOVIELENS);
    uint32_t heat = item_of(ds, "10"), toy = item_of(ds, "20"), quoted = item_of(ds, "30");
    assert_string_equal(dr_dataset_item_title(ds, heat), "Heat, the Movie (1995)");
    assert_string_equal(dr_dataset_item_title(ds, toy), "Toy Story (1995)"); /* first row wins */
    assert_string_equal(dr_dataset_item_title(ds, quoted), "The \"Quoted\" One (2000)");
    const char *a[16];
    assert_int_equal(dr_dataset_item_attrs(ds, heat, a, 16), 4); /* 3 genres + merged tag */
    assert_true(has_attr(ds, heat, "genre=Action"));
    assert_true(has_attr(ds, heat, "genre=Crime"));
    assert_true(has_attr(ds, heat, "genre=Thriller"));
    assert_true(has_attr(ds, heat, "tag=classic"));
    assert_int_equal(dr_dataset_item_attrs(ds, toy, a, 16), 3);
    assert_true(has_attr(ds, toy, "genre=Adventure"));
    assert_true(has_attr(ds, toy, "tag=funny, sweet"));
    assert_false(has_attr(ds, toy, "genre=Comedy"));
    assert_int_equal(dr_dataset_item_attrs(ds, quoted, a, 16), 0); /* (no genres listed) */
    const dr_load_report *r = dr_dataset_report(ds);
    assert_int_equal(r->rows_read, 15);
    assert_int_equal(r->rows_ok, 11);
    assert_int_equal(r->skipped[DR_SKIP_UNKNOWN], 2);   /* movie 40; tag on movie 40 */
    assert_int_equal(r->skipped[DR_SKIP_DUPLICATE], 1); /* movie 20 again */
    assert_int_equal(r->skipped[DR_SKIP_FIELD], 1);     /* empty tag */
    check_report(ds);
    assert_true(has_msg(ds, FIX "movielens/movies.csv:5: "));
    assert_true(has_msg(ds, FIX "movielens/movies.csv:6: "));
    assert_true(has_msg(ds, FIX "movielens/tags.csv:5: "));
    assert_true(has_msg(ds, FIX "movielens/tags.csv:6: "));
    dr_dataset_free(ds);

    /* unknown metadata and duplicates are not malformed rows: strict still loads; the
     * empty tag is malformed */
    dr_load_params p = dr_load_default_params();
    p.strict = 1;
    load_fails(FIX "movielens", &p, DR_FORMAT, FIX "movielens/tags.csv:6: ");
}

/* ------------------------------------------------------------------ Amazon CSV */

static void test_amazon_csv(void **state) {
    (void)state;
    dr_dataset *ds = load_ok(FIX "amazon_csv", NULL);
    check_event(ds, 0, "2", "101", 1000, 1.0f, DR_TAG_TRAIN);
    check_event(ds, 1, "2", "100", 2000, 1.0f, DR_TAG_TEST);
    check_event(ds, 2, "1", "100", 3000, 1.0f, DR_TAG_TRAIN);
    check_event(ds, 3, "1", "101", 4000, 1.0f, DR_TAG_VALID);
    assert_string_equal(dr_dataset_name(ds), "amazon-mtv");
    assert_int_equal(ds->format, DR_FMT_AMAZON_CSV);
    assert_true(ds->time_scale == 0.001);
    assert_int_equal(ds->has_given_split, 0);
    dr_dataset_free(ds);

    char dir[512], path[600];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/train.csv", dir);
    dr_test_write(path, "user_id,item_id,timestamp\n1,2,3\n");
    snprintf(path, sizeof path, "%s/validation.csv", dir);
    dr_test_write(path, "user_id,item_id,timestamp\n1,2,4\n");
    load_fails(dir, NULL, DR_IO, "test.csv");
    dr_test_rmrf(dir);
}

/* ------------------------------------------------------------------ Amazon JSON */

static void test_amazon_json(void **state) {
    (void)state;
    dr_dataset *ds = load_ok(FIX "amazon_json/Books.jsonl", NULL);
    static const char *const users[] = {"A2", "A3", "A1", "U9"};
    static const char *const items[] = {"B002", "B003", "B001", "B004"};
    check_ids(ds, users, 4, items, 4);
    check_event(ds, 0, "A2", "B002", 1378252700000, 3.0f, 0);
    check_event(ds, 1, "A3", "B003", 1378252700000, 1.0f, 0); /* no rating: weight 1 */
    check_event(ds, 2, "A1", "B001", 1378252800000, 5.0f, 0);
    check_event(ds, 3, "U9", "B004", 1378252800500, 2.0f, 0); /* 2023 fields, ms */
    check_event(ds, 4, "A1", "B002", 1378252900000, 4.0f, 0);
    assert_string_equal(dr_dataset_name(ds), "amazon");
    assert_int_equal(ds->format, DR_FMT_AMAZON_JSON);
    assert_true(ds->time_scale == 0.001);
    const dr_load_report *r = dr_dataset_report(ds);
    /* reviews: 10 rows, 5 ok; meta: 7 rows, 3 ok */
    assert_int_equal(r->rows_read, 17);
    assert_int_equal(r->rows_ok, 8);
    assert_int_equal(r->skipped[DR_SKIP_JSON], 2);
    assert_int_equal(r->skipped[DR_SKIP_FIELD], 3);
    assert_int_equal(r->skipped[DR_SKIP_EMPTY_ID], 1);
    assert_int_equal(r->skipped[DR_SKIP_NUMBER], 1);
    assert_int_equal(r->skipped[DR_SKIP_UNKNOWN], 1);
    assert_int_equal(r->skipped[DR_SKIP_DUPLICATE], 1);
    check_report(ds);
    assert_true(has_msg(ds, FIX "amazon_json/Books.jsonl:5: "));
    assert_true(has_msg(ds, FIX "amazon_json/Books.jsonl:6: "));
    assert_true(has_msg(ds, FIX "amazon_json/meta_Books.jsonl:3: "));

    uint32_t b1 = item_of(ds, "B001"), b2 = item_of(ds, "B002"), b3 = item_of(ds, "B003"),
             b4 = item_of(ds, "B004");
    assert_string_equal(dr_dataset_item_title(ds, b1), "The First Book");
    assert_string_equal(dr_dataset_item_title(ds, b2), "Second, \"quoted\"\ttitle");
    assert_string_equal(dr_dataset_item_title(ds, b3), "");
    assert_string_equal(dr_dataset_item_title(ds, b4), "Twenty23");
    assert_true(has_attr(ds, b1, "category=Books"));
    assert_true(has_attr(ds, b1, "category=Literature & Fiction"));
    assert_true(has_attr(ds, b1, "brand=Acme"));
    assert_true(has_attr(ds, b1, "has_image=1"));
    assert_false(has_attr(ds, b2, "has_image=1"));
    assert_true(has_attr(ds, b4, "category=Movies & TV"));
    assert_true(has_attr(ds, b4, "category=Drama")); /* nested array */
    assert_true(has_attr(ds, b4, "store=Studio"));
    assert_true(has_attr(ds, b4, "has_image=1"));
    const char *a[8];
    assert_int_equal(dr_dataset_item_attrs(ds, b2, a, 8), 0);
    dr_dataset_free(ds);

    dr_load_params p = dr_load_default_params();
    p.strict = 1;
    load_fails(FIX "amazon_json/Books.jsonl", &p, DR_FORMAT, FIX "amazon_json/Books.jsonl:5: ");
    p = dr_load_default_params();
    p.meta_path = FIX "amazon_json/missing_meta.jsonl";
    load_fails(FIX "amazon_json/Books.jsonl", &p, DR_IO, "missing_meta.jsonl");
    p.meta_path = FIX "amazon_json/meta_Books.jsonl";
    p.max_line = 100; /* the first reviews line (121 bytes) is now too long */
    ds = load_ok(FIX "amazon_json/Books.jsonl", &p);
    assert_int_equal(dr_dataset_report(ds)->skipped[DR_SKIP_TOO_LONG], 3);
    assert_int_equal(dr_dataset_n_events(ds), 4);
    check_report(ds);
    dr_dataset_free(ds);
}

/* Invalid UTF-8 / NUL / empty input through the buffer API. */
static void test_amazon_json_buffer(void **state) {
    (void)state;
    const char buf[] = "{\"reviewerID\": \"\xff\", \"asin\": \"x\", \"unixReviewTime\": 1}\n"
                       "{\"reviewerID\": \"a\", \"asin\": \"x\\u0000\", \"unixReviewTime\": 1}\n"
                       "{\"reviewerID\": \"a\", \"asin\": \"x\", \"unixReviewTime\": 1}";
    dr_load_params p = dr_load_default_params();
    dr_load_report r = {0};
    dr_builder *b = NULL;
    assert_int_equal(dr__builder_create(&b), DR_OK);
    assert_ok(dr__parse_amazon_json(buf, sizeof buf - 1, "mem", &p, b, &r, &e_));
    assert_int_equal(r.rows_read, 3);
    assert_int_equal(r.rows_ok, 1);
    assert_int_equal(r.skipped[DR_SKIP_ENCODING], 1);
    assert_int_equal(r.skipped[DR_SKIP_JSON], 1); /* \u0000 is refused by jansson */
    dr_error e = {0};
    memset(&r, 0, sizeof r);
    assert_int_equal(dr__parse_amazon_json("\n\n", 2, "empty", &p, b, &r, &e), DR_FORMAT);
    assert_non_null(strstr(e.msg, "empty"));
    dr__builder_free(b);
}

/* ------------------------------------------------------------------ TikTok */

static void test_tiktok(void **state) {
    (void)state;
    dr_dataset *ds = load_ok(FIX "tiktok", NULL);
    static const char *const users[] = {"0", "1"}, *const items[] = {"1", "2", "0", "3", "4"};
    check_ids(ds, users, 2, items, 5); /* item 4: feature row only -> cold catalogue item */
    check_event(ds, 0, "0", "1", 0, 1.0f, DR_TAG_TRAIN);
    check_event(ds, 2, "1", "0", 0, 1.0f, DR_TAG_TRAIN);
    check_event(ds, 3, "0", "3", 0, 1.0f, DR_TAG_VALID);
    check_event(ds, 4, "1", "2", 0, 1.0f, DR_TAG_TEST);
    assert_string_equal(dr_dataset_name(ds), "tiktok");
    assert_int_equal(ds->has_given_split, 1);
    assert_true(ds->time_scale == 0);
    assert_int_equal(dr_dataset_report(ds)->rows_read, 5);
    assert_int_equal(dr_dataset_n_modalities(ds), 2);
    const char *name;
    uint32_t dim;
    const float *x;
    const uint8_t *pr;
    assert_int_equal(dr_dataset_modality(ds, 0, &name, &dim, &x, &pr), DR_OK);
    assert_string_equal(name, "visual");
    assert_int_equal(dim, 4);
    static const uint8_t vis_present[] = {1, 0, 1, 1, 1}; /* ext 2 is an all-zero row */
    assert_memory_equal(pr, vis_present, 5);
    assert_float_equal(x[0 * 4 + 0], 0.0999755859375f, 0); /* half(0.1) */
    for (int c = 0; c < 4; c++) assert_true(x[1 * 4 + c] == 0.0f);
    static const float row0[] = {1.0f, -2.0f, 0.5f, 0.25f};
    static const float row3[] = {65504.0f, -65504.0f, 6.103515625e-05f, 5.960464477539063e-08f};
    assert_memory_equal(x + 2 * 4, row0, sizeof row0);
    assert_memory_equal(x + 3 * 4, row3, sizeof row3);
    assert_int_equal(dr_dataset_modality(ds, 1, &name, &dim, &x, &pr), DR_OK);
    assert_string_equal(name, "audio");
    assert_int_equal(dim, 3);
    static const uint8_t aud_present[] = {0, 1, 1, 1, 1}; /* ext 1 holds a NaN */
    assert_memory_equal(pr, aud_present, 5);
    for (int c = 0; c < 3; c++) assert_true(x[c] == 0.0f);
    assert_float_equal(x[2 * 3 + 2], 3.0f, 0); /* ext 0 = row 0 */
    dr_dataset_free(ds);
}

static void write_tiktok(const char *dir, const char *train, const float *feat, uint32_t rows,
                         uint32_t dim) {
    char path[600];
    snprintf(path, sizeof path, "%s/train.tsv", dir);
    dr_test_write(path, train);
    snprintf(path, sizeof path, "%s/image_feat.npy", dir);
    assert_ok(dr__npy_write_f32(path, feat, rows, dim, &e_));
}

static void test_tiktok_bad_features(void **state) {
    (void)state;
    char dir[512];
    float f[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    dr_test_tmpdir(dir, sizeof dir);
    /* no header, no valid/test: item 3 needs 4 rows, the file has 2 */
    write_tiktok(dir, "0\t0\n0\t3\n", f, 2, 4);
    load_fails(dir, NULL, DR_FORMAT, "image_feat.npy: 2 rows");
    f[5] = INFINITY;
    write_tiktok(dir, "0\t0\n0\t1\n", f, 4, 2);
    load_fails(dir, NULL, DR_FORMAT, "image_feat.npy: row 2: infinite");
    f[5] = NAN;
    write_tiktok(dir, "0\t0\n0\t1\n", f, 4, 2);
    dr_dataset *ds = load_ok(dir, NULL);
    static const uint8_t present[] = {1, 1, 0, 1};
    assert_int_equal(ds->n_items, 4);
    assert_memory_equal(ds->mod[0].present, present, 4);
    assert_true(ds->mod[0].x[4] == 0 && ds->mod[0].x[5] == 0);
    assert_string_equal(dr_dataset_item_id(ds, 2), "2");
    dr_dataset_free(ds);
    dr_test_rmrf(dir);
}

/* ------------------------------------------------------------------ dynrec folders */

static void test_dynrec_minimal(void **state) {
    (void)state;
    dr_dataset *ds = load_ok(FIX "dynrec_min", NULL);
    static const char *const users[] = {"bob", "alice"}, *const items[] = {"book", "pen"};
    check_ids(ds, users, 2, items, 2);
    check_event(ds, 0, "bob", "book", 3, 1.0f, 0);
    check_event(ds, 2, "alice", "pen", 5, 1.0f, 0);
    assert_string_equal(dr_dataset_name(ds), "dynrec_min");
    assert_int_equal(ds->format, DR_FMT_DYNREC);
    assert_int_equal(ds->has_given_split, 0);
    dr_dataset_free(ds);
}

static void test_roundtrip_fixtures(void **state) {
    (void)state;
    static const char *const paths[] = {FIX "movielens", FIX "tiktok", FIX "amazon_csv",
                                        FIX "amazon_json/Books.jsonl", FIX "delimited/quoted.csv"};
    for (size_t k = 0; k < DR_ARRAY_LEN(paths); k++) {
        dr_dataset *ds = load_ok(paths[k], NULL);
        roundtrip(ds);
        dr_dataset_free(ds);
    }
}

/* Ids, titles and attributes with every escaped character; weights with awkward bits;
 * cold items; a modality with missing rows. */
static void test_roundtrip_escapes(void **state) {
    (void)state;
    static const char *const users[] = {"tab\there", "new\nline", "pipe|bar", "back\\slash",
                                        "cr\rx", " space ", "\\t", "ünï"};
    static const char *const items[] = {"item\t1", "i|2", "\\", "é ü", "x\\|y", "-"};
    dr_builder *b = NULL;
    dr_dataset *ds = NULL;
    assert_int_equal(dr__builder_create(&b), DR_OK);
    uint32_t seed = 12345;
    for (int k = 0; k < 200; k++) {
        seed = seed * 1664525u + 1013904223u;
        const char *u = users[seed % 8], *i = items[(seed >> 8) % 6];
        uint32_t bits = 0x3f800000u ^ (seed & 0x807fffffu); /* mantissa noise, both signs */
        float w;
        memcpy(&w, &bits, sizeof w);
        assert_int_equal(dr__builder_add_event(b, u, strlen(u), i, strlen(i), (seed >> 20) % 7 - 3,
                                              w, (uint8_t)(k % 4)),
                         DR_OK);
    }
    assert_int_equal(dr__builder_add_item(b, "cold\titem", 9), DR_OK);
    assert_int_equal(dr__builder_add_item(b, "cold|2", 6), DR_OK);
    assert_ok(dr__builder_finish(b, &ds, &e_));
    dr__builder_free(b);
    snprintf(ds->name, sizeof ds->name, "esc\tname|x");
    ds->time_scale = 0.25;
    ds->has_given_split = 1;
    assert_int_equal(dr__dataset_set_title(ds, 0, "a\tb\nc|d\\e", 9), DR_OK);
    assert_int_equal(dr__dataset_set_title(ds, ds->n_items - 1, "cold", 4), DR_OK);
    static const char *const attrs[] = {"k=v|w", "x=\\t", "genre=a=b", "no equals sign"};
    dr_attr_pair pairs[8];
    for (uint32_t k = 0; k < 4; k++) {
        uint32_t id;
        assert_int_equal(dr__strtab_intern(&ds->attrs, attrs[k], strlen(attrs[k]), &id, NULL), DR_OK);
        pairs[2 * k] = (dr_attr_pair){k, id};
        pairs[2 * k + 1] = (dr_attr_pair){ds->n_items - 1 - k, id};
    }
    assert_ok(dr__dataset_set_attrs(ds, pairs, 8, &e_));
    uint32_t dim = 3;
    float *x = calloc((size_t)ds->n_items * dim, sizeof *x);
    uint8_t *pr = calloc(ds->n_items, 1);
    for (uint32_t i = 0; i < ds->n_items; i += 2) {
        pr[i] = 1;
        for (uint32_t c = 0; c < dim; c++) x[i * dim + c] = (float)i - 1.0f / (float)(c + 3);
    }
    assert_ok(dr__dataset_add_modality(ds, "visual", dim, x, pr, &e_));
    for (uint32_t i = 0; i < ds->n_items; i++) x[i] = pr[i] ? -(float)i : 0.0f;
    assert_ok(dr__dataset_add_modality(ds, "text-2", 1, x, pr, &e_));
    free(x);
    free(pr);
    roundtrip(ds);
    dr_dataset_free(ds);
}

static void test_dynrec_corrupt(void **state) {
    (void)state;
    dr_dataset *ds = load_ok(FIX "tiktok", NULL);
    char dir[512], path[600];
    dr_test_tmpdir(dir, sizeof dir);
    assert_ok(dr_dataset_save(ds, dir, &e_));
    snprintf(path, sizeof path, "%s/manifest.tsv", dir);
    dr_test_write(path, "format\tdynrec\nversion\t1\nn_items\t7\n");
    load_fails(dir, NULL, DR_FORMAT, "manifest.tsv: says");
    dr_test_write(path, "format\tdynrec\nversion\t2\n");
    load_fails(dir, NULL, DR_UNSUPPORTED, "manifest.tsv:2:");
    dr_test_write(path, "format\tdynrec\nversion\t1\nmodalities\t../x\n");
    load_fails(dir, NULL, DR_FORMAT, "bad modality name");
    dr_test_write(path, "format\tdynrec\nversion\t1\nmodalities\tvisual,sound\n");
    load_fails(dir, NULL, DR_IO, "sound.npy");
    /* features with the wrong number of rows */
    snprintf(path, sizeof path, "%s/features/visual.npy", dir);
    float f[4] = {1, 2, 3, 4};
    assert_ok(dr__npy_write_f32(path, f, 1, 4, &e_));
    snprintf(path, sizeof path, "%s/manifest.tsv", dir);
    dr_test_write(path, "format\tdynrec\nversion\t1\nmodalities\tvisual\n");
    load_fails(dir, NULL, DR_FORMAT, "visual.npy: 1 rows, expected 5");
    /* no manifest: interactions + items only, split tags give has_given_split */
    remove(path);
    dr_dataset *back = load_ok(dir, NULL);
    assert_int_equal(back->n_items, 5);
    assert_int_equal(back->n_mod, 0);
    assert_int_equal(back->has_given_split, 1);
    dr_dataset_free(back);
    snprintf(path, sizeof path, "%s/interactions.tsv", dir);
    dr_test_write(path, "who\twhat\nx\ty\n");
    load_fails(dir, NULL, DR_FORMAT, "interactions.tsv:1: expected the header");
    dr_test_rmrf(dir);
    dr_dataset_free(ds);
}

/* ------------------------------------------------------------------ detection */

static void test_auto_detect(void **state) {
    (void)state;
    static const struct {
        const char *path;
        dr_format f;
    } cases[] = {
        {FIX "movielens", DR_FMT_MOVIELENS},       {FIX "amazon_csv", DR_FMT_AMAZON_CSV},
        {FIX "tiktok", DR_FMT_TIKTOK},             {FIX "dynrec_min", DR_FMT_DYNREC},
        {FIX "amazon_json/Books.jsonl", DR_FMT_AMAZON_JSON},
        {FIX "delimited/basic.tsv", DR_FMT_DELIMITED},
    };
    for (size_t k = 0; k < DR_ARRAY_LEN(cases); k++) {
        dr_dataset *ds = load_ok(cases[k].path, NULL);
        assert_int_equal(ds->format, cases[k].f);
        check_report(ds);
        dr_dataset_free(ds);
    }
    load_fails(FIX "npy", NULL, DR_FORMAT, "cannot tell");
    /* a folder that fits several formats: the first in DR_FORMAT_TABLE's order wins */
    static const struct {
        const char *file, *text;
        dr_format f; /* after adding file */
    } layers[] = {
        {"train.tsv", "1\t2\n", DR_FMT_TIKTOK},
        {"train.csv", "u1,i1,100\n", DR_FMT_TIKTOK},
        {"test.csv", "u1,i3,300\n", DR_FMT_TIKTOK},
        {"validation.csv", "u1,i2,200\n", DR_FMT_AMAZON_CSV},
        {"ratings.csv", "1,10,4.0,100\n", DR_FMT_MOVIELENS},
        {"interactions.tsv", "user\titem\nu\ti\n", DR_FMT_DYNREC},
    };
    char mixed[512], file[600];
    dr_test_tmpdir(mixed, sizeof mixed);
    for (size_t k = 0; k < DR_ARRAY_LEN(layers); k++) {
        snprintf(file, sizeof file, "%s/%s", mixed, layers[k].file);
        dr_test_write(file, layers[k].text);
        dr_dataset *ds = load_ok(mixed, NULL);
        assert_int_equal(ds->format, layers[k].f);
        dr_dataset_free(ds);
    }
    dr_test_rmrf(mixed);
    load_fails("", NULL, DR_ARG, NULL);
    char dir[512], path[600];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/x.csv.gz", dir);
    dr_test_write(path, "x");
    load_fails(path, NULL, DR_UNSUPPORTED, "decompress");
    dr_test_rmrf(dir);
}

/* ------------------------------------------------------------------ out of memory */

typedef struct load_oom {
    const char *path, *save; /* save: the loaded dataset is saved there too */
    dr_dataset *ds;
} load_oom;

static dr_status load_call(void *ud, dr_error *err) {
    load_oom *u = ud;
    dr_status s = dr_dataset_load(u->path, NULL, &u->ds, err);
    if (s == DR_OK && u->save) s = dr_dataset_save(u->ds, u->save, err);
    return s;
}

DR_OOM_FREE_FN(load_free, load_oom, ds, dr_dataset_free)

/* Fails each allocation in turn (tests/unit/oom.h): every load (and save) ends in DR_OK or
 * DR_NOMEM with nothing returned and nothing leaked. */
static void oom_loop(const char *path, bool save, const char *label) {
    char dir[512], name[600];
    dr_test_tmpdir(dir, sizeof dir);
    load_oom u = {.path = path, .save = save ? dir : NULL};
    snprintf(name, sizeof name, "dr_dataset_load%s %s", save ? " + save" : "",
             label ? label : path);
    dr_oom_case c = {.name = name, .call = load_call, .cleanup = load_free, .ud = &u,
                     /* a failed save leaves the loaded dataset to the caller */
                     .out = save ? NULL : (void **)&u.ds};
    assert_true(dr_oom_check(&c) > 0);
    dr_test_rmrf(dir);
}

static void test_out_of_memory(void **state) {
    (void)state;
    oom_loop(FIX "delimited/bad.csv", false, NULL);
    oom_loop(FIX "movielens", true, NULL);
    oom_loop(FIX "amazon_json/Books.jsonl", true, NULL);
    oom_loop(FIX "tiktok", true, NULL);
    /* and loading a saved folder */
    char dir[512];
    dr_test_tmpdir(dir, sizeof dir);
    dr_dataset *ds = load_ok(FIX "movielens", NULL);
    assert_ok(dr_dataset_save(ds, dir, &e_));
    dr_dataset_free(ds);
    ds = load_ok(FIX "tiktok", NULL);
    strcat(dir, "/tt");
    assert_ok(dr_dataset_save(ds, dir, &e_));
    dr_dataset_free(ds);
    oom_loop(dir, false, "(saved tiktok)");
    dir[strlen(dir) - 3] = 0;
    oom_loop(dir, false, "(saved movielens)");
    dr_test_rmrf(dir);
}

/* ------------------------------------------------------------------ shared datasets */

static size_t count_tag(const dr_dataset *ds, int tag) {
    size_t n = 0;
    for (size_t k = 0; k < ds->n_events; k++) n += ds->ev_tag[k] == tag;
    return n;
}

static void test_shared_movielens(void **state) {
    (void)state;
    DR_SHARED_OR_SKIP(dir, "movielens-latest-small");
    dr_dataset *ds = load_ok(dir, NULL);
    assert_int_equal(dr_dataset_n_users(ds), 671);
    assert_int_equal(dr_dataset_n_items(ds), 9066);
    assert_int_equal(dr_dataset_n_events(ds), 100004);
    assert_string_equal(dr_dataset_name(ds), "ml-small");
    const dr_load_report *r = dr_dataset_report(ds);
    assert_int_equal(r->rows_read, 100004 + 9125 + 1296);
    assert_int_equal(skipped_total(r), r->skipped[DR_SKIP_UNKNOWN]); /* nothing malformed */
    check_report(ds);
    uint32_t toy = item_of(ds, "1");
    assert_string_equal(dr_dataset_item_title(ds, toy), "Toy Story (1995)");
    assert_true(has_attr(ds, toy, "genre=Animation"));
    assert_true(has_attr(ds, toy, "genre=Fantasy"));
    for (size_t k = 1; k < ds->n_events; k++) assert_true(ds->ev_time[k - 1] <= ds->ev_time[k]);
    dr_dataset_stats st;
    assert_int_equal(dr_dataset_get_stats(ds, &st), DR_OK);
    assert_int_equal(st.n_titled_items, 9066);
    roundtrip(ds);
    dr_dataset_free(ds);
}

static void test_shared_amazon(void **state) {
    (void)state;
    DR_SHARED_OR_SKIP(dir, "amazon-movies-tv-llmtup");
    double t0 = dr__now_seconds();
    dr_dataset *ds = load_ok(dir, NULL);
    double secs = dr__now_seconds() - t0;
    fprintf(stderr, "amazon-mtv loaded in %.3f s\n", secs);
    assert_int_equal(dr_dataset_n_users(ds), 10000);
    assert_int_equal(dr_dataset_n_items(ds), 14411);
    assert_int_equal(dr_dataset_n_events(ds), 202583);
    assert_int_equal(count_tag(ds, DR_TAG_TRAIN), 117949);
    assert_int_equal(count_tag(ds, DR_TAG_VALID), 40249);
    assert_int_equal(count_tag(ds, DR_TAG_TEST), 44385);
    assert_int_equal(skipped_total(dr_dataset_report(ds)), 0);
    assert_true(ds->time_scale == 0.001);
    dr_dataset_free(ds);
}

static void test_shared_tiktok(void **state) {
    (void)state;
    DR_SHARED_OR_SKIP(dir, "tiktok-mmssl");
    dr_dataset *ds = load_ok(dir, NULL);
    assert_int_equal(dr_dataset_n_users(ds), 9308);
    assert_int_equal(dr_dataset_n_items(ds), 6710);
    assert_int_equal(dr_dataset_n_events(ds), 68722);
    assert_int_equal(count_tag(ds, DR_TAG_TRAIN), 59541);
    assert_int_equal(count_tag(ds, DR_TAG_VALID), 3051);
    assert_int_equal(count_tag(ds, DR_TAG_TEST), 6130);
    assert_int_equal(ds->has_given_split, 1);
    assert_int_equal(dr_dataset_n_modalities(ds), 2);
    static const char *const names[] = {"visual", "audio"};
    for (int m = 0; m < 2; m++) {
        const char *name;
        uint32_t dim;
        const float *x;
        const uint8_t *pr;
        assert_int_equal(dr_dataset_modality(ds, m, &name, &dim, &x, &pr), DR_OK);
        assert_string_equal(name, names[m]);
        assert_int_equal(dim, 128);
        size_t present = 0;
        for (uint32_t i = 0; i < 6710; i++) present += pr[i];
        assert_int_equal(present, 6710); /* PROVENANCE: no NaN, no all-zero rows */
        if (m == 0) /* image_feat.npy row 0 starts with the half 0x412b */
            assert_float_equal(x[(size_t)item_of(ds, "0") * 128], 2.583984375f, 0);
    }
    dr_dataset_free(ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_names),
        cmocka_unit_test(test_delimited_basic),
        cmocka_unit_test(test_delimited_quoted),
        cmocka_unit_test(test_delimited_crlf_bom),
        cmocka_unit_test(test_delimited_bad_rows),
        cmocka_unit_test(test_delimited_errors),
        cmocka_unit_test(test_delimited_columns),
        cmocka_unit_test(test_movielens),
        cmocka_unit_test(test_amazon_csv),
        cmocka_unit_test(test_amazon_json),
        cmocka_unit_test(test_amazon_json_buffer),
        cmocka_unit_test(test_tiktok),
        cmocka_unit_test(test_tiktok_bad_features),
        cmocka_unit_test(test_dynrec_minimal),
        cmocka_unit_test(test_roundtrip_fixtures),
        cmocka_unit_test(test_roundtrip_escapes),
        cmocka_unit_test(test_dynrec_corrupt),
        cmocka_unit_test(test_auto_detect),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_shared_movielens),
        cmocka_unit_test(test_shared_amazon),
        cmocka_unit_test(test_shared_tiktok),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
