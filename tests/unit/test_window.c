/* test_window.c - sliding windows (src/adapter_window.c): incremental item statistics against the
 * from-scratch recomputation after many random events (count- and time-bounded windows),
 * user statistics against a recomputation from the event list, the changed-item list, no
 * allocation per push, and errors. */
#include "testutil.h"
#include "oom.h"

#include <math.h>

#include "rng.h"
#include "adapter_window.h"

enum { NU = 37, NI = 53, D = 5 };

static void check_against_slow(dr_window *w, const float *z) {
    (void)z;
    size_t ds = DR_WIN_ITEM_STATS(D);
    float *slow = malloc(NI * ds * sizeof *slow), s[DR_WIN_ITEM_STATS(D)];
    assert_ok(dr__window_item_stats_slow(w, slow, &e_));
    for (uint32_t i = 0; i < NI; i++) {
        dr__window_item_stats(w, i, s);
        for (size_t k = 0; k < ds; k++)
            if (fabsf(s[k] - slow[i * ds + k]) > 1e-5f)
                fail_msg("item %u stat %zu: incremental %g, recomputed %g", i, k, s[k],
                         slow[i * ds + k]);
        /* the raw count (popular-now in the server) agrees with its log1p statistic */
        assert_true(fabsf((float)log1p((double)dr__window_item_count(w, i)) - slow[i * ds]) < 1e-5f);
    }
    free(slow);
}

static void run_random(uint32_t W, uint32_t R, int64_t max_age, uint64_t seed) {
    float z[NI * D];
    dr_rng rng;
    dr__rng_seed(&rng, seed, 0);
    for (int k = 0; k < NI * D; k++) z[k] = (float)dr__rng_normal(&rng);
    dr_window_params p = dr__window_default_params();
    p.capacity = W;
    p.user_ring = R;
    p.max_age = max_age;
    p.seconds_per_unit = 60;
    dr_window *w = NULL;
    assert_ok(dr__window_create(&p, NU, NI, D, z, &w, &e_));
    /* the reference for user stats: every event, in order */
    enum { N = 6000 };
    static uint32_t eu[N], ei[N];
    static int64_t et[N];
    int64_t t = 1000;
    uint64_t push_allocs = 0;
    for (int n = 0; n < N; n++) {
        uint32_t u = (uint32_t)dr__rng_below(&rng, NU / (n % 3 + 1)); /* some users are busy */
        uint32_t i = (uint32_t)dr__rng_below(&rng, NI);
        t += (int64_t)dr__rng_below(&rng, 4); /* ties happen */
        eu[n] = u, ei[n] = i, et[n] = t;
        float before[NI][DR_WIN_ITEM_STATS(D)];
        if (n % 97 == 0)
            for (uint32_t j = 0; j < NI; j++) dr__window_item_stats(w, j, before[j]);
        const uint32_t *ch;
        size_t nch;
        uint64_t a0 = dr__alloc_count();
        assert_ok(dr__window_push(w, u, i, t, &ch, &nch, &e_));
        push_allocs += dr__alloc_count() - a0;
        if (n % 97 == 0) { /* every item whose stats changed is listed, and listed once */
            uint8_t listed[NI] = {0};
            for (size_t k = 0; k < nch; k++) {
                assert_true(ch[k] < NI);
                assert_int_equal(listed[ch[k]], 0);
                listed[ch[k]] = 1;
            }
            assert_true(listed[i]);
            for (uint32_t j = 0; j < NI; j++) {
                float s[DR_WIN_ITEM_STATS(D)];
                dr__window_item_stats(w, j, s);
                if (!listed[j]) assert_memory_equal(s, before[j], sizeof s);
            }
        }
        if (n % 1499 == 0 || n == N - 1) check_against_slow(w, z);
    }
    assert_int_equal(push_allocs, 0); /* no allocation per push */
    assert_true(dr__window_size(w) <= W);
    if (!max_age && N >= (int)W) assert_int_equal(dr__window_size(w), W);
    /* user stats against the event list */
    int64_t now = t + 120;
    for (uint32_t u = 0; u < NU; u++) {
        float r[DR_WIN_USER_STATS(D)], m[D] = {0};
        dr__window_user_stats(w, u, now, r);
        int cnt = 0, last = -1, total = 0;
        for (int n = N - 1; n >= 0; n--) {
            if (eu[n] != u) continue;
            if (last < 0) last = n;
            total++;
            if (cnt < (int)R) {
                for (int k = 0; k < D; k++) m[k] += z[ei[n] * D + k];
                cnt++;
            }
        }
        assert_float_equal(r[1], log1p((double)total), 1e-6);
        if (!total) {
            assert_float_equal(r[0], 0, 0);
            continue;
        }
        assert_float_equal(r[0], log1p((double)(now - et[last]) * 60.0 / 3600.0), 1e-5);
        for (int k = 0; k < D; k++) assert_float_equal(r[2 + k], m[k] / (float)cnt, 1e-5);
        uint32_t ring[64];
        uint32_t nr = dr__window_user_ring(w, u, ring);
        assert_int_equal(nr, (uint32_t)cnt);
        assert_int_equal(ring[nr - 1], ei[last]);
    }
    /* a uniformly drawn window event is in the window */
    uint32_t it = dr__window_sample_item(w, 0.999);
    float s[DR_WIN_ITEM_STATS(D)];
    dr__window_item_stats(w, it, s);
    assert_true(s[0] > 0);
    dr__window_free(w);
}

static void test_count_window(void **st) {
    (void)st;
    run_random(64, 4, 0, 1);
    run_random(2, 1, 0, 2);
    run_random(1000, 8, 0, 3);
    run_random(7001, 3, 0, 4); /* never full */
}

static void test_time_window(void **st) {
    (void)st;
    run_random(256, 5, 30, 5);
    run_random(4096, 2, 3, 6);
}

static void test_errors(void **st) {
    (void)st;
    float z[NI * D] = {0};
    dr_window_params p = dr__window_default_params();
    dr_window *w = NULL;
    dr_error e = {0};
    p.capacity = 1;
    assert_int_equal(dr__window_create(&p, NU, NI, D, z, &w, &e), DR_ARG);
    p = dr__window_default_params();
    assert_ok(dr__window_create(&p, NU, NI, D, z, &w, &e_));
    const uint32_t *ch;
    size_t n;
    assert_int_equal(dr__window_push(w, NU, 0, 5, &ch, &n, &e), DR_RANGE);
    assert_int_equal(dr__window_push(w, 0, NI, 5, &ch, &n, &e), DR_RANGE);
    assert_ok(dr__window_push(w, 0, 1, 5, &ch, &n, &e_));
    assert_int_equal(dr__window_push(w, 0, 1, 4, &ch, &n, &e), DR_ARG);
    assert_int_equal(dr__window_sample_item(w, 0.5), 1);
    dr__window_free(w);
    dr__window_free(NULL);
}

typedef struct win_oom {
    dr_window *w;
    float z[NI * D];
} win_oom;

static dr_status win_create(void *ud, dr_error *err) {
    win_oom *u = ud;
    dr_window_params p = dr__window_default_params();
    p.capacity = 16;
    p.user_ring = 3;
    return dr__window_create(&p, NU, NI, D, u->z, &u->w, err);
}

DR_OOM_FREE_FN(win_free, win_oom, w, dr__window_free)

static void test_out_of_memory(void **st) {
    (void)st;
    static win_oom u;
    dr_oom_case c = {.name = "dr__window_create", .call = win_create, .cleanup = win_free,
                     .ud = &u, .out = (void **)&u.w};
    assert_true(dr_oom_check(&c) > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count_window),
        cmocka_unit_test(test_time_window),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
