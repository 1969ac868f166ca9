/* test_format.c - the checkpoint container: round trip, corruption of every kind, OOM. */
#include "testutil.h"
#include "oom.h"

#include <sys/stat.h>

#include "ckpt.h"

/* ---------------------------------------------------------------- helpers */

static float g_mat[3 * 5];      /* (3, 5) */
static int64_t g_vec[7];        /* (7) */
static uint32_t g_scalar = 0xC0FFEEu;
static const char g_text[] = "hello, container";

/* Writes the reference checkpoint to path. */
static void write_ref(const char *path) {
    dr_ckpt_writer *w = NULL;
    for (int i = 0; i < 15; i++) g_mat[i] = (float)i * 0.5f - 3.0f;
    for (int i = 0; i < 7; i++) g_vec[i] = (int64_t)i * -1000000007LL;
    uint64_t s_mat[2] = {3, 5}, s_vec[1] = {7}, s_empty[2] = {0, 9},
             s_text[1] = {sizeof g_text - 1};
    assert_ok(dr__ckpt_writer_create(&w, &e_));
    assert_ok(dr__ckpt_add(w, "item", DR_DT_F32, 2, s_mat, g_mat, &e_));
    assert_ok(dr__ckpt_add(w, "times", DR_DT_I64, 1, s_vec, g_vec, &e_));
    assert_ok(dr__ckpt_add(w, "empty", DR_DT_U8, 2, s_empty, NULL, &e_));
    assert_ok(dr__ckpt_add(w, "scalar", DR_DT_U32, 0, NULL, &g_scalar, &e_));
    assert_ok(dr__ckpt_add(w, "text", DR_DT_STR, 1, s_text, g_text, &e_));
    assert_ok(dr__ckpt_add_meta(w, "model", "mf", &e_));
    assert_ok(dr__ckpt_add_meta(w, "T0", "1234567890", &e_));
    assert_ok(dr__ckpt_add_meta(w, "dataset", "ml-small = 100k ratings", &e_));
    assert_ok(dr__ckpt_write(w, path, &e_));
    dr__ckpt_writer_free(w);
}

/* Reference file as bytes. */
static char *ref_bytes(size_t *len) {
    char dir[256], path[300];
    char *buf = NULL;
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/ref.drm", dir);
    write_ref(path);
    assert_ok(dr__read_file(path, 1 << 20, &buf, len, &e_));
    dr_test_rmrf(dir);
    return buf;
}

static uint64_t get64(const char *b, size_t off) {
    uint64_t v;
    memcpy(&v, b + off, 8);
    return v;
}
static void put64(char *b, size_t off, uint64_t v) { memcpy(b + off, &v, 8); }
static void put32(char *b, size_t off, uint32_t v) { memcpy(b + off, &v, 4); }

/* Recomputes the checksum after a deliberate edit of the table or data. */
static void reseal(char *b, size_t len) {
    put64(b, 32, dr__xxh64(b + DR_CKPT_HEADER_BYTES, len - DR_CKPT_HEADER_BYTES, 0));
}

static size_t entry(uint32_t i) { return DR_CKPT_HEADER_BYTES + (size_t)i * DR_CKPT_ENTRY_BYTES; }

/* Opens b as a buffer and expects DR_FORMAT with `want` in the message. */
static void expect_format(const char *b, size_t len, const char *want) {
    dr_ckpt *c = NULL;
    dr_error e = {0};
    dr_status st = dr__ckpt_open_buffer(b, len, "bad.drm", 0, &c, &e);
    if (st != DR_FORMAT)
        fail_msg("expected DR_FORMAT containing '%s', got %s: %s", want, dr_status_name(st),
                 e.msg);
    assert_null(c);
    if (want && !strstr(e.msg, want)) fail_msg("message '%s' lacks '%s'", e.msg, want);
    assert_non_null(strstr(e.msg, "bad.drm: "));
}

/* ---------------------------------------------------------------- tests */

static void test_xxh64_vectors(void **state) {
    (void)state;
    assert_true(dr__xxh64("", 0, 0) == 0xEF46DB3751D8E999ULL);
    assert_true(dr__xxh64("a", 1, 0) == 0xD24EC4F1A98C6E5BULL);
    assert_true(dr__xxh64("abc", 3, 0) == 0x44BC2CF5AD770999ULL);
    const char *s = "Nobody inspects the spammish repetition";
    assert_true(dr__xxh64(s, strlen(s), 0) == 0xFBCEA83C8A378BF1ULL);
}

static void test_round_trip(void **state) {
    (void)state;
    char dir[256], path[300], tmp[310];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.drm", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    write_ref(path);
    assert_int_not_equal(access(tmp, F_OK), 0); /* renamed away */

    dr_ckpt *c = NULL;
    assert_ok(dr__ckpt_open(path, &c, &e_));
    assert_int_equal(dr__ckpt_n_sections(c), 6); /* 5 + .meta */
    const void *p = NULL;
    uint64_t sh[2] = {DR_CKPT_ANY, 5};
    assert_ok(dr__ckpt_find(c, "item", DR_DT_F32, 2, sh, &p, &e_));
    assert_int_equal(sh[0], 3);
    assert_int_equal(((uintptr_t)p) % 64, 0);
    assert_memory_equal(p, g_mat, sizeof g_mat);
    uint64_t sv[1] = {7};
    assert_ok(dr__ckpt_find(c, "times", DR_DT_I64, 1, sv, &p, &e_));
    assert_memory_equal(p, g_vec, sizeof g_vec);
    assert_ok(dr__ckpt_find(c, "scalar", DR_DT_U32, 0, NULL, &p, &e_));
    assert_int_equal(*(const uint32_t *)p, 0xC0FFEEu);
    assert_ok(dr__ckpt_find(c, "text", DR_DT_STR, 1, NULL, &p, &e_));
    assert_memory_equal(p, g_text, sizeof g_text - 1);
    uint64_t se[2] = {DR_CKPT_ANY, DR_CKPT_ANY};
    assert_ok(dr__ckpt_find(c, "empty", DR_DT_U8, 2, se, &p, &e_));
    assert_int_equal(se[0], 0);
    assert_int_equal(se[1], 9);

    assert_string_equal(dr__ckpt_meta(c, "model"), "mf");
    assert_string_equal(dr__ckpt_meta(c, "T0"), "1234567890");
    assert_string_equal(dr__ckpt_meta(c, "dataset"), "ml-small = 100k ratings");
    assert_null(dr__ckpt_meta(c, "nope"));
    assert_int_equal(dr__ckpt_n_meta(c), 3);
    const char *k, *v;
    dr__ckpt_meta_at(c, 1, &k, &v);
    assert_string_equal(k, "T0");
    for (uint32_t i = 0; i < dr__ckpt_n_sections(c); i++) {
        const dr_ckpt_section *s = dr__ckpt_section_at(c, i);
        assert_int_equal(s->offset % 64, 0);
    }

    /* mismatches */
    dr_error e = {0};
    uint64_t bad[2] = {4, 5};
    assert_int_equal(dr__ckpt_find(c, "item", DR_DT_F32, 2, bad, &p, &e), DR_FORMAT);
    assert_non_null(strstr(e.msg, "has shape (3, 5), expected (4, 5)"));
    assert_int_equal(dr__ckpt_find(c, "item", DR_DT_F16, 2, NULL, &p, &e), DR_FORMAT);
    assert_int_equal(dr__ckpt_find(c, "item", DR_DT_F32, 1, NULL, &p, &e), DR_FORMAT);
    assert_int_equal(dr__ckpt_find(c, "user", DR_DT_F32, 2, NULL, &p, &e), DR_NOTFOUND);
    assert_non_null(strstr(e.msg, "no section 'user'"));
    dr__ckpt_close(c);

    /* same bytes from a buffer; writing twice gives the same bytes */
    char *b1 = NULL, *b2 = NULL;
    size_t n1 = 0, n2 = 0;
    assert_ok(dr__read_file(path, 1 << 20, &b1, &n1, &e_));
    write_ref(path);
    assert_ok(dr__read_file(path, 1 << 20, &b2, &n2, &e_));
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    assert_int_equal(n1 % 64, 0);
    assert_ok(dr__ckpt_open_buffer(b1 + 0, n1, "mem", 0, &c, &e_));
    assert_ok(dr__ckpt_find(c, "item", DR_DT_F32, 2, NULL, &p, &e_));
    assert_memory_equal(p, g_mat, sizeof g_mat);
    assert_string_equal(dr__ckpt_path(c), "mem");
    dr__ckpt_close(c);
    dr__free(b1);
    dr__free(b2);
    dr__ckpt_close(NULL);
    dr__ckpt_writer_free(NULL);
    dr_test_rmrf(dir);
}

static void test_empty_checkpoint(void **state) {
    (void)state;
    char dir[256], path[300];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/e.drm", dir);
    dr_ckpt_writer *w = NULL;
    assert_ok(dr__ckpt_writer_create(&w, &e_));
    assert_ok(dr__ckpt_write(w, path, &e_));
    dr__ckpt_writer_free(w);
    dr_ckpt *c = NULL;
    assert_ok(dr__ckpt_open(path, &c, &e_));
    assert_int_equal(dr__ckpt_n_sections(c), 0);
    assert_int_equal(dr__ckpt_n_meta(c), 0);
    dr__ckpt_close(c);
    dr_test_rmrf(dir);
}

static void test_truncated(void **state) {
    (void)state;
    size_t len = 0;
    char *b = ref_bytes(&len);
    for (int k = 0; k < 16; k++) {
        size_t n = len * (size_t)k / 16;
        if (n == 0) expect_format(b, n, "empty file");
        else if (n < 64) expect_format(b, n, "shorter than the 64-byte header");
        else expect_format(b, n, "truncated");
    }
    expect_format(b, len - 1, "truncated");
    /* on disk too, with the path in the message */
    char dir[256], path[300];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/cut.drm", dir);
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, len / 2, f);
    fclose(f);
    dr_ckpt *c = NULL;
    dr_error e = {0};
    assert_int_equal(dr__ckpt_open(path, &c, &e), DR_FORMAT);
    assert_non_null(strstr(e.msg, path));
    assert_non_null(strstr(e.msg, "truncated"));
    dr_test_rmrf(dir);
    dr__free(b);
}

static void test_header_fields(void **state) {
    (void)state;
    size_t len = 0;
    char *b = ref_bytes(&len);
    char *x = malloc(len);
    /* magic */
    memcpy(x, b, len);
    x[0] = 'X';
    expect_format(x, len, "bad magic");
    /* version */
    memcpy(x, b, len);
    put32(x, 8, 7);
    expect_format(x, len, "version 7 is not supported (this build reads 1)");
    /* n_sections: too many for the file, and over the limit */
    memcpy(x, b, len);
    put32(x, 12, 1000);
    expect_format(x, len, "section table extends past end of file");
    put32(x, 12, 5000);
    expect_format(x, len, "5000 sections (limit 1024)");
    /* n_sections one less: the checksum still matches, the table is shorter, so the first
     * section now overlaps nothing but .meta is lost; one more: entry 6 is section data */
    memcpy(x, b, len);
    put32(x, 12, 7);
    expect_format(x, len, NULL);
    /* table offset */
    memcpy(x, b, len);
    put64(x, 16, 128);
    expect_format(x, len, "section table at offset 128");
    /* file size */
    memcpy(x, b, len);
    put64(x, 24, get64(b, 24) + 64);
    expect_format(x, len, "header says the file has");
    /* checksum */
    memcpy(x, b, len);
    put64(x, 32, get64(b, 32) ^ 1);
    expect_format(x, len, "checksum mismatch");
    /* reserved */
    for (size_t k = 40; k < 64; k++) {
        memcpy(x, b, len);
        x[k] = 1;
        expect_format(x, len, "reserved header byte");
    }
    free(x);
    dr__free(b);
}

static void test_flip_every_byte(void **state) {
    (void)state;
    size_t len = 0;
    char *b = ref_bytes(&len);
    char *x = malloc(len);
    memcpy(x, b, len);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            x[i] ^= (char)(1 << bit);
            dr_ckpt *c = NULL;
            dr_error e = {0};
            dr_status st = dr__ckpt_open_buffer(x, len, "flip.drm", 0, &c, &e);
            if (st != DR_FORMAT) fail_msg("flip at %zu bit %d: %s", i, bit, dr_status_name(st));
            x[i] ^= (char)(1 << bit);
        }
    }
    free(x);
    dr__free(b);
}

/* Table edits with a valid checksum, so the structural checks are what catches them. */
static void test_bad_tables(void **state) {
    (void)state;
    size_t len = 0;
    char *b = ref_bytes(&len);
    char *x = malloc(len);
    /* entries: 0 item f32 (3,5), 1 times i64 (7), 2 empty, 3 scalar, 4 text, 5 .meta */
    uint64_t off0 = get64(b, entry(0) + 88), off1 = get64(b, entry(1) + 88);

#define EDIT(stmt, want)          \
    do {                          \
        memcpy(x, b, len);        \
        stmt;                     \
        reseal(x, len);           \
        expect_format(x, len, want); \
    } while (0)

    EDIT(put64(x, entry(1) + 88, off0), "overlaps or precedes section 'item'");
    EDIT(put64(x, entry(0) + 88, off1), "overlaps or precedes section 'item'");
    EDIT(put64(x, entry(0) + 88, 64), "overlaps the section table");
    EDIT(put64(x, entry(0) + 88, off0 + 4), "is not 64-byte aligned");
    EDIT(put64(x, entry(4) + 88, len), "extends past end of file");
    EDIT(put64(x, entry(5) + 88, len), "extends past end of file (offset");
    /* huge shapes: the product overflows 64 bits */
    EDIT((put64(x, entry(0) + 56, 1ULL << 40), put64(x, entry(0) + 64, 1ULL << 40)),
         "overflows 64 bits");
    EDIT((put64(x, entry(0) + 56, UINT64_MAX / 4 + 1), put64(x, entry(0) + 64, 1)),
         "overflows 64 bits");
    /* huge but consistent shape and size: caught by the bounds check */
    EDIT((put64(x, entry(0) + 56, 1ULL << 40), put64(x, entry(0) + 64, 1),
          put64(x, entry(0) + 96, 4ULL << 40)),
         "extends past end of file");
    EDIT(put64(x, entry(0) + 56, 4), "size 60 bytes but f32 (4, 5) needs 80");
    EDIT(put32(x, entry(0) + 48, 99), "unknown dtype 99");
    EDIT(put32(x, entry(0) + 52, 5), "rank 5 > 4");
    EDIT(put64(x, entry(0) + 72, 1), "beyond rank 2 is not zero");
    EDIT((memset(x + entry(1), 0, 48), memcpy(x + entry(1), "item", 5)), "appears twice");
    EDIT(memset(x + entry(0), 'a', 48), "not NUL-terminated");
    EDIT(memset(x + entry(0), 0, 48), "empty name");
    EDIT(x[entry(0)] = ' ', "bad character 0x20");
    EDIT(x[entry(0) + 40] = 'z', "after the name's NUL");
    EDIT(x[entry(0) + 120] = 1, "reserved bytes are not zero");
    /* metadata: locate the text and break it */
    uint64_t moff = get64(b, entry(5) + 88), msz = get64(b, entry(5) + 96);
    EDIT(x[moff + msz - 1] = 'x', "does not end with a newline");
    EDIT(x[moff + 5] = '#', "not key=value"); /* "model=mf": '=' at 5 */
    EDIT(x[moff + 2] = '\0', "not UTF-8");
    EDIT(memcpy(x + moff, "T0=", 3), "repeated");
    EDIT(put32(x, entry(5) + 48, DR_DT_U8), "must be str of rank 1");
#undef EDIT
    free(x);
    dr__free(b);
}

static void test_files(void **state) {
    (void)state;
    char dir[256], path[300];
    dr_test_tmpdir(dir, sizeof dir);
    dr_ckpt *c = NULL;
    dr_error e = {0};
    /* a directory */
    assert_int_equal(dr__ckpt_open(dir, &c, &e), DR_IO);
    assert_non_null(strstr(e.msg, "is a directory"));
    assert_null(c);
    /* missing */
    snprintf(path, sizeof path, "%s/missing.drm", dir);
    assert_int_equal(dr__ckpt_open(path, &c, &e), DR_IO);
    assert_non_null(strstr(e.msg, "cannot open"));
    /* empty */
    snprintf(path, sizeof path, "%s/empty.drm", dir);
    dr_test_write(path, "");
    assert_int_equal(dr__ckpt_open(path, &c, &e), DR_FORMAT);
    assert_non_null(strstr(e.msg, "empty file"));
    assert_non_null(strstr(e.msg, path));
    /* text */
    dr_test_write(path, "user\titem\ttime\n1\t2\t3\n");
    assert_int_equal(dr__ckpt_open(path, &c, &e), DR_FORMAT);
    /* wrong version on disk */
    snprintf(path, sizeof path, "%s/v7.drm", dir);
    size_t len = 0;
    char *b = ref_bytes(&len);
    put32(b, 8, 7);
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, len, f);
    fclose(f);
    assert_int_equal(dr__ckpt_open(path, &c, &e), DR_FORMAT);
    assert_non_null(strstr(e.msg, "v7.drm: version 7 is not supported (this build reads 1)"));
    dr__free(b);
    /* writing into a missing folder fails cleanly */
    snprintf(path, sizeof path, "%s/no/such/dir/m.drm", dir);
    dr_ckpt_writer *w = NULL;
    assert_ok(dr__ckpt_writer_create(&w, &e_));
    assert_int_equal(dr__ckpt_write(w, path, &e), DR_IO);
    dr__ckpt_writer_free(w);
    dr_test_rmrf(dir);
}

static void test_writer_args(void **state) {
    (void)state;
    dr_ckpt_writer *w = NULL;
    dr_error e = {0};
    float x[4] = {0};
    uint64_t s1[1] = {4}, huge[4] = {1ULL << 32, 1ULL << 32, 1ULL << 32, 1};
    assert_ok(dr__ckpt_writer_create(&w, &e_));
    assert_int_equal(dr__ckpt_add(w, "", DR_DT_F32, 1, s1, x, &e), DR_ARG);
    assert_int_equal(dr__ckpt_add(w, "a b", DR_DT_F32, 1, s1, x, &e), DR_ARG);
    assert_int_equal(dr__ckpt_add(w, ".meta", DR_DT_STR, 1, s1, x, &e), DR_ARG);
    assert_int_equal(dr__ckpt_add(w, "0123456789012345678901234567890123456789012345678",
                                 DR_DT_F32, 1, s1, x, &e),
                     DR_ARG);
    assert_int_equal(dr__ckpt_add(w, "x", (dr_dtype)42, 1, s1, x, &e), DR_ARG);
    assert_int_equal(dr__ckpt_add(w, "x", DR_DT_F32, 5, huge, x, &e), DR_ARG);
    assert_int_equal(dr__ckpt_add(w, "x", DR_DT_F32, 3, huge, x, &e), DR_ARG);
    assert_non_null(strstr(e.msg, "overflows"));
    assert_int_equal(dr__ckpt_add(w, "x", DR_DT_F32, 1, s1, NULL, &e), DR_ARG);
    assert_ok(dr__ckpt_add(w, "x", DR_DT_F32, 1, s1, x, &e_));
    assert_int_equal(dr__ckpt_add(w, "x", DR_DT_F32, 1, s1, x, &e), DR_ARG);
    assert_non_null(strstr(e.msg, "duplicate"));
    assert_int_equal(dr__ckpt_add_meta(w, "a=b", "c", &e), DR_ARG);
    assert_int_equal(dr__ckpt_add_meta(w, "", "c", &e), DR_ARG);
    assert_int_equal(dr__ckpt_add_meta(w, "k", "two\nlines", &e), DR_ARG);
    assert_ok(dr__ckpt_add_meta(w, "k", "", &e_));
    assert_int_equal(dr__ckpt_add_meta(w, "k", "again", &e), DR_ARG);
    assert_ok(dr__ckpt_add_meta(w, "kk", "v=w", &e_));
    dr__ckpt_writer_free(w);
}

typedef struct fmt_oom {
    const char *path;
    const char *buf; /* dr__ckpt_open_buffer when set */
    size_t len;
    dr_ckpt_writer *w;
    dr_ckpt *c;
} fmt_oom;

static dr_status fmt_write(void *ud, dr_error *err) {
    fmt_oom *u = ud;
    static const float x[6] = {1, 2, 3, 4, 5, 6};
    static const uint64_t sh[2] = {2, 3};
    dr_status st = dr__ckpt_writer_create(&u->w, err);
    if (st == DR_OK) st = dr__ckpt_add(u->w, "x", DR_DT_F32, 2, sh, x, err);
    if (st == DR_OK) st = dr__ckpt_add_meta(u->w, "model", "test", err);
    if (st == DR_OK) st = dr__ckpt_write(u->w, u->path, err);
    return st;
}

DR_OOM_FREE_FN(fmt_writer_free, fmt_oom, w, dr__ckpt_writer_free)

static dr_status fmt_open(void *ud, dr_error *err) {
    fmt_oom *u = ud;
    dr_status st = u->buf ? dr__ckpt_open_buffer(u->buf, u->len, "oom", 0, &u->c, err)
                          : dr__ckpt_open(u->path, &u->c, err);
    if (st == DR_OK && strcmp(dr__ckpt_meta(u->c, "model"), "test") != 0)
        st = dr__fail(err, DR_INTERNAL, "meta 'model' lost");
    return st;
}

DR_OOM_FREE_FN(fmt_close, fmt_oom, c, dr__ckpt_close)

static void test_oom(void **state) {
    (void)state;
    char dir[256], path[300];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/oom.drm", dir);
    fmt_oom u = {.path = path};
    dr_oom_case c = {.name = "dr__ckpt_writer_create + add + write", .call = fmt_write,
                     .cleanup = fmt_writer_free, .ud = &u};
    assert_true(dr_oom_check(&c) > 0);
    c = (dr_oom_case){.name = "dr__ckpt_open", .call = fmt_open, .cleanup = fmt_close, .ud = &u,
                      .out = (void **)&u.c};
    assert_true(dr_oom_check(&c) > 0);
    char *b = NULL;
    assert_ok(dr__read_file(path, 1 << 20, &b, &u.len, &e_));
    u.buf = b;
    c.name = "dr__ckpt_open_buffer";
    assert_true(dr_oom_check(&c) > 0);
    dr__free(b);
    dr_test_rmrf(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xxh64_vectors),  cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_empty_checkpoint), cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_header_fields),  cmocka_unit_test(test_flip_every_byte),
        cmocka_unit_test(test_bad_tables),     cmocka_unit_test(test_files),
        cmocka_unit_test(test_writer_args),    cmocka_unit_test(test_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
