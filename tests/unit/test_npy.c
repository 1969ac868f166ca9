/* test_npy.c - the .npy reader and writer (src/load_npy.c): every float16 against a reference,
 * each dtype, header versions, malformed and unsupported files, size caps, out of memory,
 * and write/read round trips. */
#include "testutil.h"
#include "oom.h"

#include "dataset.h"

#include <math.h>

#define FIX "tests/fixtures/npy/"

/* Builds a .npy file image in buf; returns its length. */
static size_t make_npy(unsigned char *buf, size_t cap, int version, const char *dict,
                       const void *data, size_t n) {
    size_t pre = version == 1 ? 10 : 12, hl = strlen(dict) + 1;
    size_t pad = (64 - (pre + hl) % 64) % 64;
    hl += pad;
    assert_true(pre + hl + n <= cap);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)version;
    buf[7] = 0;
    for (size_t k = 0; k < pre - 8; k++) buf[8 + k] = (unsigned char)(hl >> (8 * k));
    memcpy(buf + pre, dict, strlen(dict));
    memset(buf + pre + strlen(dict), ' ', pad);
    buf[pre + hl - 1] = '\n';
    if (n) memcpy(buf + pre + hl, data, n);
    return pre + hl + n;
}

static dr_status parse(const unsigned char *buf, size_t n, dr_npy *a, dr_error *e) {
    memset(e, 0, sizeof *e);
    return dr__npy_parse((const char *)buf, n, "mem.npy", a, e);
}

/* Reference float16 decoding with ldexp: the slow twin of the bit-level conversion. */
static float half_ref(uint16_t h) {
    int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    float v = exp == 0    ? ldexpf((float)man, -24)
              : exp == 31 ? (man ? NAN : INFINITY)
                          : ldexpf((float)(1024 + man), exp - 25);
    return h & 0x8000 ? -v : v;
}

static void test_half_exhaustive(void **state) {
    (void)state;
    static unsigned char buf[200000];
    static uint8_t data[65536 * 2];
    for (uint32_t h = 0; h < 65536; h++) data[2 * h] = (uint8_t)h, data[2 * h + 1] = (uint8_t)(h >> 8);
    size_t n = make_npy(buf, sizeof buf, 1,
                        "{'descr': '<f2', 'fortran_order': False, 'shape': (65536,), }", data,
                        sizeof data);
    dr_npy a;
    dr_error e;
    assert_int_equal(parse(buf, n, &a, &e), DR_OK);
    assert_int_equal(a.rows, 65536);
    assert_int_equal(a.cols, 1);
    for (uint32_t h = 0; h < 65536; h++) {
        float want = half_ref((uint16_t)h), got = a.data[h];
        if (isnan(want)) {
            if (!isnan(got)) fail_msg("half %04x: want NaN, got %g", h, (double)got);
        } else if (memcmp(&want, &got, sizeof got) != 0) {
            fail_msg("half %04x: want %a, got %a", h, (double)want, (double)got);
        }
    }
    dr__npy_free(&a);
}

static void test_half_fixture(void **state) {
    (void)state;
    dr_npy a;
    assert_ok(dr__npy_read(FIX "half.npy", 1 << 20, &a, &e_));
    static const float want[] = {0.0f, -0.0f, 5.960464477539063e-08f, 6.097555160522461e-05f,
                                 6.103515625e-05f, 1.0f, -2.0f, 65504.0f, INFINITY, -INFINITY,
                                 NAN, 0.333251953125f, 2.583984375f};
    assert_int_equal(a.rows, 13);
    for (int k = 0; k < 13; k++) {
        if (isnan(want[k])) assert_true(isnan(a.data[k]));
        else assert_memory_equal(&a.data[k], &want[k], sizeof(float)); /* keeps -0 */
    }
    dr__npy_free(&a);
}

static void test_dtypes(void **state) {
    (void)state;
    unsigned char buf[512];
    dr_npy a;
    dr_error e;
    float f4[6] = {1.5f, -2.0f, 3.25f, 0.0f, 1e30f, -1e-30f};
    size_t n = make_npy(buf, sizeof buf, 1,
                        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f4,
                        sizeof f4);
    assert_int_equal(parse(buf, n, &a, &e), DR_OK);
    assert_int_equal(a.rows, 2);
    assert_int_equal(a.cols, 3);
    assert_memory_equal(a.data, f4, sizeof f4);
    dr__npy_free(&a);

    uint8_t u1[4] = {0, 1, 200, 255};
    n = make_npy(buf, sizeof buf, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (4,), }",
                 u1, 4);
    assert_int_equal(parse(buf, n, &a, &e), DR_OK);
    assert_true(a.data[2] == 200.0f && a.data[3] == 255.0f && a.cols == 1);
    dr__npy_free(&a);

    /* key order and quoting as other writers emit them; (3, 1) shape */
    n = make_npy(buf, sizeof buf, 3, "{\"shape\": (3, 1), \"fortran_order\": False, \"descr\": \"|u1\"}",
                 u1, 3);
    assert_int_equal(parse(buf, n, &a, &e), DR_OK);
    assert_true(a.rows == 3 && a.cols == 1 && a.data[1] == 1.0f);
    dr__npy_free(&a);

    assert_ok(dr__npy_read(FIX "bool.npy", 1 << 20, &a, &e_));
    static const float b1[] = {0, 1, 1, 0};
    assert_memory_equal(a.data, b1, sizeof b1);
    dr__npy_free(&a);

    assert_ok(dr__npy_read(FIX "f8_v2.npy", 1 << 20, &a, &e_)); /* version 2.0 header */
    assert_true(a.rows == 2 && a.cols == 2);
    assert_true(a.data[0] == 1.5f && a.data[1] == -2.25f && a.data[3] == 0.0f);
    assert_true(isinf(a.data[2]) && a.data[2] > 0); /* 1e300 does not fit a float */
    dr__npy_free(&a);

    /* empty arrays are valid */
    n = make_npy(buf, sizeof buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 5), }",
                 NULL, 0);
    assert_int_equal(parse(buf, n, &a, &e), DR_OK);
    assert_true(a.rows == 0 && a.cols == 5);
    dr__npy_free(&a);
    dr__npy_free(&a); /* twice is harmless */
    dr__npy_free(NULL);
}

static void expect_fail(const char *dict, size_t data_len, dr_status want, const char *needle) {
    static unsigned char buf[4096], zero[1024];
    dr_npy a = {0};
    dr_error e;
    size_t n = make_npy(buf, sizeof buf, 1, dict, zero, data_len);
    dr_status s = parse(buf, n, &a, &e);
    if (s != want) fail_msg("%s: want %s, got %s (%s)", dict, dr_status_name(want), dr_status_name(s), e.msg);
    assert_null(a.data);
    if (needle && !strstr(e.msg, needle)) fail_msg("'%s' lacks '%s'", e.msg, needle);
}

static void test_malformed(void **state) {
    (void)state;
    expect_fail("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16, DR_UNSUPPORTED, "Fortran");
    expect_fail("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", 16, DR_UNSUPPORTED, "<i8");
    expect_fail("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8, DR_UNSUPPORTED, NULL);
    expect_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2), }", 32, DR_UNSUPPORTED, "3-D");
    expect_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 4, DR_UNSUPPORTED, "0-D");
    expect_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", 20, DR_FORMAT, "does not match");
    expect_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", 28, DR_FORMAT, "does not match");
    expect_fail("{'descr': '<f4', 'shape': (3, 2), }", 24, DR_FORMAT, "header");
    expect_fail("{'descr': '<f4', 'fortran_order': Nope, 'shape': (3,), }", 12, DR_FORMAT, "header");
    expect_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}", 12, DR_FORMAT, "header");
    expect_fail("['descr']", 0, DR_FORMAT, "header");
    expect_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (3", 12, DR_FORMAT, "header");
    /* shapes whose byte count overflows are refused before anything is allocated */
    expect_fail("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967295, 4294967295), }", 8,
                DR_FORMAT, NULL);
    expect_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296,), }", 8, DR_FORMAT, NULL);
    expect_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 0), }", 0, DR_LIMIT, NULL);
    expect_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }", 8,
                DR_FORMAT, NULL);

    dr_npy a;
    dr_error e;
    assert_int_equal(parse((const unsigned char *)"\x93NUMPZ\x01\x00\x00\x00", 10, &a, &e), DR_FORMAT);
    assert_non_null(strstr(e.msg, "mem.npy"));
    assert_int_equal(parse((const unsigned char *)"\x93NUMPY\x01\x00\xff\x00{", 11, &a, &e), DR_FORMAT);
    assert_int_equal(parse((const unsigned char *)"\x93NUMPY\x09\x00\x00\x00", 10, &a, &e), DR_UNSUPPORTED);
    assert_int_equal(parse((const unsigned char *)"\x93NUMPY\x02\x00\x00\x00", 10, &a, &e), DR_FORMAT);
    assert_int_equal(parse((const unsigned char *)"", 0, &a, &e), DR_FORMAT);

    assert_int_equal(dr__npy_read(FIX "fortran.npy", 1 << 20, &a, &e), DR_UNSUPPORTED);
    assert_int_equal(dr__npy_read(FIX "truncated.npy", 1 << 20, &a, &e), DR_FORMAT);
    assert_non_null(strstr(e.msg, "truncated.npy"));
    assert_int_equal(dr__npy_read(FIX "int64.npy", 1 << 20, &a, &e), DR_UNSUPPORTED);
    assert_int_equal(dr__npy_read(FIX "half.npy", 100, &a, &e), DR_LIMIT);
    assert_int_equal(dr__npy_read(FIX "missing.npy", 1 << 20, &a, &e), DR_IO);
}

static void test_write_read(void **state) {
    (void)state;
    char dir[512], path[600];
    dr_test_tmpdir(dir, sizeof dir);
    enum { R = 37, C = 5 };
    float x[R * C];
    for (int k = 0; k < R * C; k++) x[k] = (float)k * 0.37f - 20.0f;
    x[3] = -0.0f;
    x[4] = NAN;
    x[5] = -INFINITY;
    x[6] = 1e-45f; /* float subnormal */
    snprintf(path, sizeof path, "%s/x.npy", dir);
    assert_ok(dr__npy_write_f32(path, x, R, C, &e_));
    char *raw;
    size_t len;
    assert_ok(dr__read_file(path, 1 << 20, &raw, &len, &e_));
    assert_int_equal(len % 64, (R * C * 4) % 64); /* data aligned to 64 bytes, as numpy does */
    const char *hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (37, 5), }";
    assert_memory_equal(raw + 10, hdr, strlen(hdr));
    assert_int_equal(raw[len - R * C * 4 - 1], '\n');
    dr__free(raw);
    dr_npy a;
    assert_ok(dr__npy_read(path, 1 << 20, &a, &e_));
    assert_true(a.rows == R && a.cols == C);
    assert_memory_equal(a.data, x, sizeof x); /* bit-exact, NaN included */
    dr__npy_free(&a);

    uint8_t u[300];
    for (int k = 0; k < 300; k++) u[k] = (uint8_t)(k * 7);
    snprintf(path, sizeof path, "%s/u.npy", dir);
    assert_ok(dr__npy_write_u8(path, u, 300, &e_));
    assert_ok(dr__npy_read(path, 1 << 20, &a, &e_));
    assert_true(a.rows == 300 && a.cols == 1);
    for (int k = 0; k < 300; k++) assert_true(a.data[k] == (float)u[k]);
    dr__npy_free(&a);

    dr_error e = {0};
    snprintf(path, sizeof path, "%s/no/such/dir/x.npy", dir);
    assert_int_equal(dr__npy_write_f32(path, x, R, C, &e), DR_IO);
    assert_non_null(strstr(e.msg, "x.npy"));
    dr_test_rmrf(dir);
}

typedef struct npy_oom {
    const unsigned char *buf;
    size_t n;
    const char *path; /* NULL: parse buf */
    dr_npy a;
} npy_oom;

static dr_status npy_parse_call(void *ud, dr_error *err) {
    npy_oom *u = ud;
    if (u->path) return dr__npy_read(u->path, 1 << 20, &u->a, err);
    return dr__npy_parse((const char *)u->buf, u->n, "mem.npy", &u->a, err);
}

static void npy_free_case(void *ud) {
    npy_oom *u = ud;
    dr__npy_free(&u->a);
    memset(&u->a, 0, sizeof u->a);
}

static void test_out_of_memory(void **state) {
    (void)state;
    unsigned char buf[256];
    float f[4] = {1, 2, 3, 4};
    size_t n = make_npy(buf, sizeof buf, 1,
                        "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", f, sizeof f);
    npy_oom u = {buf, n, NULL, {0}};
    dr_oom_case c = {.name = "dr__npy_parse", .call = npy_parse_call, .cleanup = npy_free_case,
                     .ud = &u, .out = (void **)&u.a.data};
    assert_true(dr_oom_check(&c) > 0);
    u.path = FIX "half.npy";
    c.name = "dr__npy_read";
    assert_true(dr_oom_check(&c) >= 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_half_exhaustive),
        cmocka_unit_test(test_half_fixture),
        cmocka_unit_test(test_dtypes),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_write_read),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
