/* test_ann.c - two-stage retrieval (src/ann.c, src/ann_hnsw.cc): build / save / load and the
 * refusal of a file for another checkpoint or dimension, a corrupt, truncated or foreign one;
 * items added later are found (and moved); recall on a clustered set above a bound; the two
 * stages with every item a candidate give the exact scan's ids and score bits; searches beside
 * inserts on other threads; allocation failures in the constructors. */
#include "testutil.h"
#include "oom.h"

#include <pthread.h>

#include "ann.h"
#include "rng.h"
#include "topk.h"

#define D 16
#define HASH "0123456789abcdef"

static float *clustered(uint32_t n, uint32_t d, uint64_t seed) {
    float *z = malloc((size_t)n * d * sizeof *z);
    assert_non_null(z);
    dr__ann_synth_items(z, n, d, seed);
    return z;
}

static dr_ann *build(const float *z, uint32_t n, uint32_t d, uint32_t extra) {
    dr_ann_params p = dr__ann_default_params();
    p.M = 16;
    p.ef_construction = 100;
    dr_ann *a = NULL;
    assert_ok(dr__ann_build(z, n, d, extra, &p, &a, &e_));
    return a;
}

static int has(const uint32_t *ids, uint32_t n, uint32_t id) {
    for (uint32_t j = 0; j < n; j++)
        if (ids[j] == id) return 1;
    return 0;
}

static void test_save_load_refuse(void **state) {
    (void)state;
    char dir[256], path[512], bad[512];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/m.drm.ann", dir);
    snprintf(bad, sizeof bad, "%s/bad.ann", dir);
    const uint32_t n = 600;
    float *z = clustered(n, D, 1);
    dr_ann *a = build(z, n, D, 0), *b = NULL;
    assert_ok(dr__ann_save(a, path, HASH, &e_));
    assert_ok(dr__ann_load(path, HASH, D, 10, &b, &e_));
    assert_int_equal(dr__ann_count(b), n);
    assert_int_equal(dr__ann_ef(b), dr__ann_ef(a));
    assert_int_equal(dr__ann_candidates(b), 100);
    /* the loaded graph answers as the built one */
    for (uint32_t q = 0; q < 50; q++) {
        uint32_t x[20], y[20], nx = 0, ny = 0;
        assert_ok(dr__ann_search(a, z + (size_t)q * 7 * D, 20, x, &nx, &e_));
        assert_ok(dr__ann_search(b, z + (size_t)q * 7 * D, 20, y, &ny, &e_));
        assert_int_equal(nx, 20);
        assert_int_equal(ny, nx);
        for (uint32_t j = 0; j < nx; j++) assert_true(has(y, ny, x[j]));
    }
    dr__ann_free(b);
    b = NULL;
    dr_error e = {0};
    /* another checkpoint, another dimension */
    assert_int_equal(dr__ann_load(path, "fedcba9876543210", D, 0, &b, &e), DR_FORMAT);
    assert_non_null(strstr(e.msg, "built for the checkpoint with hash 0123456789abcdef"));
    assert_non_null(strstr(e.msg, path));
    assert_int_equal(dr__ann_load(path, HASH, D + 1, 0, &b, &e), DR_FORMAT);
    assert_non_null(strstr(e.msg, "dimension"));
    /* corrupt bytes: in the graph, in the header; truncated; not an index */
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    unsigned char *bytes = malloc((size_t)size);
    fseek(f, 0, SEEK_SET);
    assert_int_equal(fread(bytes, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    struct {
        long at, len;
        const char *want;
    } cases[] = {
        {size / 2, size, "graph checksum mismatch"},
        {12, size, "header is corrupt"},
        {-1, size - 100, "truncated"},
        {0, size, "bad magic"},
        {-1, 50, "shorter than its header"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        f = fopen(bad, "wb");
        unsigned char *copy = malloc((size_t)size);
        memcpy(copy, bytes, (size_t)size);
        if (cases[c].at >= 0) copy[cases[c].at] ^= 0x5a;
        fwrite(copy, 1, (size_t)cases[c].len, f);
        fclose(f);
        free(copy);
        memset(&e, 0, sizeof e);
        assert_int_equal(dr__ann_load(bad, HASH, D, 0, &b, &e), DR_FORMAT);
        assert_null(b);
        if (!strstr(e.msg, cases[c].want)) fail_msg("case %zu: '%s' lacks '%s'", c, e.msg, cases[c].want);
    }
    assert_int_equal(dr__ann_load("/nonexistent/x.ann", HASH, D, 0, &b, &e), DR_IO);
    /* bad arguments */
    dr_ann_params p = dr__ann_default_params();
    p.M = 1;
    assert_int_equal(dr__ann_build(z, n, D, 0, &p, &b, &e), DR_RANGE);
    assert_int_equal(dr__ann_save(a, path, "short", &e), DR_ARG);
    free(bytes);
    dr__ann_free(a);
    dr__ann_free(NULL);
    free(z);
    dr_test_rmrf(dir);
}

static void test_added_found(void **state) {
    (void)state;
    const uint32_t n = 800;
    float *z = clustered(n, D, 2);
    dr_ann *a = build(z, n, D, 0); /* no room kept: the graph grows */
    float v[D], q[D];
    for (int j = 0; j < D; j++) v[j] = q[j] = j % 2 ? 3.0f : -3.0f; /* far out along one direction */
    assert_ok(dr__ann_add(a, n + 5, v, &e_));
    assert_int_equal(dr__ann_count(a), n + 1);
    uint32_t ids[10], got = 0;
    assert_ok(dr__ann_search(a, q, 10, ids, &got, &e_));
    assert_true(has(ids, got, n + 5));
    /* moving an item: item 3 takes the place, found there */
    for (int j = 0; j < D; j++) v[j] = q[j] = j % 3 ? -4.0f : 4.0f;
    assert_ok(dr__ann_add(a, 3, v, &e_));
    assert_int_equal(dr__ann_count(a), n + 1);
    assert_ok(dr__ann_search(a, q, 10, ids, &got, &e_));
    assert_true(has(ids, got, 3));
    dr__ann_free(a);
    free(z);
}

static void test_recall(void **state) {
    (void)state;
    const uint32_t n = 5000, m = 200, k = 10;
    float *z = clustered(n, D, 3), *q = malloc((size_t)m * D * sizeof *q);
    dr__ann_synth_queries(q, m, n, D, 3, 1);
    dr_ann *a = build(z, n, D, 0);
    dr__ann_set_ef(a, 64);
    dr_topk_scratch *ts = NULL;
    dr_ann_scratch *as = NULL;
    assert_ok(dr__topk_scratch_create(n, k, &ts, &e_));
    assert_ok(dr__ann_scratch_create(256, D, k, &as, &e_));
    double hits = 0;
    for (uint32_t j = 0; j < m; j++) {
        uint32_t ex[10], tw[10], ne = 0, nt = 0;
        assert_ok(dr__topk_scan(z, n, D, q + (size_t)j * D, NULL, 0, k, ts, ex, NULL, &ne, &e_));
        assert_ok(dr__ann_topk(a, 40, z, n, D, q + (size_t)j * D, NULL, 0, 0, 0, NULL, 0, k, as, tw, NULL, &nt, &e_));
        assert_int_equal(nt, k);
        for (uint32_t x = 0; x < k; x++) hits += has(tw, nt, ex[x]);
    }
    double recall = hits / (m * k);
    fprintf(stderr, "ann: recall@10 %.4f on %u clustered items (M 16, ef 64, C 40)\n", recall, n);
    assert_true(recall >= 0.9);
    dr__ann_scratch_free(as);
    dr__topk_scratch_free(ts);
    dr__ann_free(a);
    free(z);
    free(q);
}

/* every item a candidate: the exact scan's answer, bit for bit, with exclusions, extras, ties */
static void test_two_stage_equals_exact(void **state) {
    (void)state;
    const uint32_t n = 300, k = 25, stride = D;
    float *z = clustered(n, D, 4);
    memcpy(z + 40 * D, z + 7 * D, D * sizeof *z); /* a tie: 7 and 40 score alike */
    dr_ann *a = build(z, 250, D, 0);            /* rows 250.. are "new": the range brings them */
    dr_topk_scratch *ts = NULL;
    dr_ann_scratch *as = NULL;
    assert_ok(dr__topk_scratch_create(n, k, &ts, &e_));
    assert_ok(dr__ann_scratch_create(1024, stride, k, &as, &e_));
    dr_rng r;
    dr__rng_seed(&r, 5, 0);
    uint32_t extra[3] = {12, 12, 299};
    for (int t = 0; t < 40; t++) {
        float h[D];
        memcpy(h, z + (size_t)(t * 7 % n) * D, sizeof h);
        uint32_t ex[30];
        for (int j = 0; j < 30; j++) ex[j] = (uint32_t)dr__rng_below(&r, n);
        uint32_t i1[25], i2[25], n1 = 0, n2 = 0;
        float s1[25], s2[25];
        assert_ok(dr__topk_scan(z, n, stride, h, ex, 30, k, ts, i1, s1, &n1, &e_));
        assert_ok(dr__ann_topk(a, 250, z, n, stride, h, extra, 3, 250, n, ex, 30, k, as, i2, s2, &n2, &e_));
        assert_int_equal(n1, n2);
        assert_memory_equal(i1, i2, n1 * sizeof *i1);
        assert_memory_equal(s1, s2, n1 * sizeof *s1);
    }
    dr_error e = {0};
    uint32_t i2[25], n2;
    assert_int_equal(dr__ann_topk(a, 2000, z, n, stride, z, NULL, 0, 0, 0, NULL, 0, k, as, i2, NULL, &n2, &e), DR_RANGE);
    assert_non_null(strstr(e.msg, "exceed"));
    dr__ann_scratch_free(as);
    dr__topk_scratch_free(ts);
    dr__ann_free(a);
    free(z);
}

typedef struct {
    dr_ann *a;
    const float *z;
    uint32_t n;
    int found;
} reader_ctx;

static void *reader(void *arg) {
    reader_ctx *c = arg;
    for (int it = 0; it < 300; it++) {
        uint32_t ids[10], got = 0;
        if (dr__ann_search(c->a, c->z + (size_t)(it % c->n) * D, 10, ids, &got, NULL) == DR_OK && got) c->found++;
    }
    return NULL;
}

/* searches on two threads while the writer inserts (run under `make tsan`) */
static void test_concurrent(void **state) {
    (void)state;
    const uint32_t n = 1000, more = 300;
    float *z = clustered(n + more, D, 6);
    dr_ann *a = build(z, n, D, 100);
    reader_ctx c[2] = {{a, z, n, 0}, {a, z, n, 0}};
    pthread_t t[2];
    for (int j = 0; j < 2; j++) pthread_create(&t[j], NULL, reader, &c[j]);
    for (uint32_t i = n; i < n + more; i++) assert_ok(dr__ann_add(a, i, z + (size_t)i * D, &e_));
    for (int j = 0; j < 2; j++) pthread_join(t[j], NULL);
    assert_int_equal(c[0].found, 300);
    assert_int_equal(c[1].found, 300);
    assert_int_equal(dr__ann_count(a), n + more);
    dr__ann_free(a);
    free(z);
}

/* ---- allocation failures */
typedef struct {
    const float *z;
    const char *path;
    dr_ann *a;
    dr_ann_scratch *s;
} oom_ud;

static dr_status build_call(void *ud, dr_error *err) {
    oom_ud *u = ud;
    dr_ann_params p = dr__ann_default_params();
    p.M = 8;
    p.ef_construction = 20;
    return dr__ann_build(u->z, 60, D, 4, &p, &u->a, err);
}
static dr_status load_call(void *ud, dr_error *err) {
    oom_ud *u = ud;
    return dr__ann_load(u->path, HASH, D, 4, &u->a, err);
}
static dr_status scratch_call(void *ud, dr_error *err) {
    oom_ud *u = ud;
    return dr__ann_scratch_create(64, D, 10, &u->s, err);
}
DR_OOM_FREE_FN(ann_free, oom_ud, a, dr__ann_free)
DR_OOM_FREE_FN(scratch_free, oom_ud, s, dr__ann_scratch_free)

static void test_oom(void **state) {
    (void)state;
    char dir[256], path[512];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/x.ann", dir);
    float *z = clustered(60, D, 7);
    oom_ud u = {z, path, NULL, NULL};
    assert_ok(build_call(&u, &e_));
    assert_ok(dr__ann_save(u.a, path, HASH, &e_));
    ann_free(&u);
    dr_oom_case c1 = {.name = "dr__ann_build", .call = build_call, .cleanup = ann_free, .ud = &u, .out = (void **)&u.a};
    assert_true(dr_oom_check(&c1) > 0);
    dr_oom_case c2 = {.name = "dr__ann_load", .call = load_call, .cleanup = ann_free, .ud = &u, .out = (void **)&u.a};
    assert_true(dr_oom_check(&c2) > 0);
    dr_oom_case c3 = {.name = "dr__ann_scratch_create", .call = scratch_call, .cleanup = scratch_free, .ud = &u,
                      .out = (void **)&u.s};
    assert_true(dr_oom_check(&c3) > 0);
    free(z);
    dr_test_rmrf(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_save_load_refuse), cmocka_unit_test(test_added_found),
        cmocka_unit_test(test_recall),           cmocka_unit_test(test_two_stage_equals_exact),
        cmocka_unit_test(test_concurrent),       cmocka_unit_test(test_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
