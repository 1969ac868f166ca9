/* test_adapter.c - the online adapter (src/adapter.c): each gradient piece and the whole event
 * loss against central finite differences; the online update against the reference gradient;
 * the incremental z' cache against full recomputation; no allocation per update; the state
 * round trip (a restarted adapter continues bit-identically); snapshots under concurrent
 * readers (pthreads; run under `make tsan`). */
#include "testutil.h"
#include "oom.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "adapter.h"
#include "rng.h"

enum { NU = 23, NI = 41, D = 5 }; /* D = 5: the snapshot pads rows to 8 */

static float Z[NI * D], HU[NU * D];
static uint8_t COLD[NI];

static void init_world(uint64_t seed) {
    dr_rng r;
    dr__rng_seed(&r, seed, 1);
    for (int k = 0; k < NI * D; k++) Z[k] = (float)(0.5 * dr__rng_normal(&r));
    for (int k = 0; k < NU * D; k++) HU[k] = (float)(0.5 * dr__rng_normal(&r));
    for (int i = 0; i < NI; i++) COLD[i] = i % 5 == 0;
}

static dr_adapter_params small_params(void) {
    dr_adapter_params p = dr__adapter_default_params();
    p.hidden = 5;
    p.negatives = 3;
    p.window.capacity = 32;
    p.window.user_ring = 3;
    p.window.seconds_per_unit = 60;
    p.lambda_kl = 0.1f;
    p.lambda_ewc = 0.5f;
    p.fisher_decay = 0.3f;
    p.anchor_ema = 0.05f;
    p.lr = 0.1f;
    p.lr_g = 0.1f;
    p.g_batch = 1;
    p.gate_bias = -0.5f; /* gates away from saturation for the checks */
    p.seed = 9;
    return p;
}

/* feeds n random events starting at event number `from` (deterministic in from) */
static void feed(dr_adapter *a, int from, int n) {
    for (int k = from; k < from + n; k++) {
        dr_rng r;
        dr__rng_seed(&r, 1234, (uint64_t)k);
        uint32_t u = (uint32_t)dr__rng_below(&r, NU), i = (uint32_t)dr__rng_below(&r, NI);
        assert_ok(dr__adapter_update(a, u, i, 1000 + 7 * (int64_t)k, HU + u * D, &e_));
    }
}

/* ---------------------------------------------------------------- finite differences */

static void check_grad(const char *what, const float *an, const double *fd, size_t n) {
    double worst = 0;
    for (size_t k = 0; k < n; k++) {
        double err = fabs(an[k] - fd[k]) / (2e-3 + 2e-2 * fabs(fd[k]));
        if (err > worst) worst = err;
        if (err > 1.0) fail_msg("%s[%zu]: analytic %.6g, finite difference %.6g", what, k, an[k], fd[k]);
    }
}

static void test_mlp_pieces(void **st) {
    (void)st;
    enum { NIN = 6, HD = 5, DO = 4 };
    dr_rng r;
    dr__rng_seed(&r, 3, 0);
    float W1[HD * NIN], b1[HD], W2[DO * HD], b2[DO], in[NIN], dout[DO];
    float *all[] = {W1, b1, W2, b2, in};
    size_t len[] = {HD * NIN, HD, DO * HD, DO, NIN};
    for (int s = 0; s < 5; s++)
        for (size_t k = 0; k < len[s]; k++) all[s][k] = (float)(0.6 * dr__rng_normal(&r));
    for (int k = 0; k < DO; k++) dout[k] = (float)dr__rng_normal(&r);
    float g[5][HD * NIN], hid[HD], out[DO];
    memset(g, 0, sizeof g);
    dr__adp_mlp_forward(W1, b1, W2, b2, NIN, HD, DO, in, hid, out);
    dr__adp_mlp_backward(W1, W2, NIN, HD, DO, in, hid, dout, g[0], g[1], g[2], g[3], g[4]);
    const char *names[] = {"dW1", "db1", "dW2", "db2", "din"};
    for (int s = 0; s < 5; s++) {
        double fd[HD * NIN];
        for (size_t k = 0; k < len[s]; k++) {
            float keep = all[s][k];
            double f[2];
            for (int side = 0; side < 2; side++) {
                all[s][k] = keep + (side ? -1e-2f : 1e-2f);
                dr__adp_mlp_forward(W1, b1, W2, b2, NIN, HD, DO, in, hid, out);
                f[side] = 0;
                for (int c = 0; c < DO; c++) f[side] += (double)dout[c] * out[c];
            }
            all[s][k] = keep;
            fd[k] = (f[0] - f[1]) / 2e-2;
        }
        check_grad(names[s], g[s], fd, len[s]);
    }
}

/* whole event loss: ranking + KL + EWC, both gate settings, cold and warm candidates */
static void event_loss_check(int no_gates) {
    init_world(5);
    dr_adapter_params p = small_params();
    p.no_gates = no_gates;
    dr_adapter *a = NULL;
    assert_ok(dr__adapter_create(&p, NU, NI, D, Z, COLD, &a, &e_));
    feed(a, 0, 40); /* non-zero Fisher, moved anchor, non-trivial window stats */
    size_t P = dr__adapter_n_params(a);
    uint32_t X = DR_ADP_X(D), Y = DR_ADP_Y(D);
    float y[DR_ADP_Y(D)], x[4 * DR_ADP_X(D)];
    uint32_t cand[4] = {3, 5, 10, 7}; /* 5 and 10 are cold */
    dr__adapter_user_input(a, 2, 5000, HU + 2 * D, y);
    for (int k = 0; k < 4; k++) dr__adapter_item_input(a, cand[k], x + k * X);
    (void)Y;
    float *theta = malloc(P * sizeof *theta), *g = malloc(P * sizeof *g);
    double *fd = malloc(P * sizeof *fd);
    memcpy(theta, dr__adapter_params_block(a), P * sizeof *theta);
    /* make every parameter matter: perturb away from the initial zeros */
    dr_rng r;
    dr__rng_seed(&r, 77, 0);
    for (size_t k = 0; k < P; k++) theta[k] += (float)(0.05 * dr__rng_normal(&r));
    dr__adapter_event_loss(a, theta, y, x, 4, g);
    for (size_t k = 0; k < P; k++) {
        float keep = theta[k];
        theta[k] = keep + 1e-2f;
        double fp = dr__adapter_event_loss(a, theta, y, x, 4, NULL);
        theta[k] = keep - 1e-2f;
        double fm = dr__adapter_event_loss(a, theta, y, x, 4, NULL);
        theta[k] = keep;
        fd[k] = (fp - fm) / 2e-2;
    }
    check_grad(no_gates ? "theta (no gates)" : "theta", g, fd, P);
    free(theta);
    free(g);
    free(fd);
    dr__adapter_free(a);
}

static void test_event_loss_grad(void **st) {
    (void)st;
    event_loss_check(0);
    event_loss_check(1);
}

/* one online update (g_batch 1, one step) moves theta by exactly -lr * reference gradient */
static void test_update_is_sgd_on_reference(void **st) {
    (void)st;
    init_world(6);
    dr_adapter_params p = small_params();
    p.anchor_ema = 0; /* the anchor must be the same before and after for the comparison */
    dr_adapter *a = NULL, *b = NULL;
    assert_ok(dr__adapter_create(&p, NU, NI, D, Z, COLD, &a, &e_));
    assert_ok(dr__adapter_create(&p, NU, NI, D, Z, COLD, &b, &e_));
    feed(a, 0, 60);
    feed(b, 0, 60);
    size_t P = dr__adapter_n_params(a);
    assert_memory_equal(dr__adapter_params_block(a), dr__adapter_params_block(b), P * sizeof(float));
    uint32_t u = 4, i = 10; /* a cold positive */
    int64_t t = 1000 + 7 * 61;
    assert_ok(dr__adapter_update(b, u, i, t, HU + u * D, &e_));
    const uint32_t *cand;
    uint32_t nc = dr__adapter_last_candidates(b, &cand);
    assert_int_equal(cand[0], i);
    uint32_t X = DR_ADP_X(D);
    float y[DR_ADP_Y(D)], *x = malloc(nc * X * sizeof *x), *g = malloc(P * sizeof *g);
    dr__adapter_user_input(a, u, t, HU + u * D, y);
    for (uint32_t k = 0; k < nc; k++) dr__adapter_item_input(a, cand[k], x + k * X);
    dr__adapter_event_loss(a, dr__adapter_params_block(a), y, x, nc, g);
    const float *t0 = dr__adapter_params_block(a), *t1 = dr__adapter_params_block(b);
    for (size_t k = 0; k < P; k++) {
        double step = ((double)t0[k] - t1[k]) / p.lr;
        if (fabs(step - g[k]) > 1e-3 + 1e-3 * fabs(g[k]))
            fail_msg("theta[%zu]: update step/lr %.7g, reference gradient %.7g", k, step, g[k]);
    }
    free(x);
    free(g);
    dr__adapter_free(a);
    dr__adapter_free(b);
}

/* ---------------------------------------------------------------- cache, allocation */

static void cache_check(dr_adapter *a) {
    float *slow = malloc(NI * D * sizeof *slow);
    assert_ok(dr__adapter_items_slow(a, slow, &e_));
    const float *zp = dr__adapter_items(a);
    for (int k = 0; k < NI * D; k++)
        if (fabsf(zp[k] - slow[k]) > 1e-5f * (1 + fabsf(slow[k])))
            fail_msg("z'[%d][%d]: cache %.8g, recomputed %.8g", k / D, k % D, zp[k], slow[k]);
    free(slow);
}

static void test_cache_matches_full(void **st) {
    (void)st;
    init_world(7);
    for (uint32_t B = 1; B <= 13; B += 6) {
        dr_adapter_params p = small_params();
        p.g_batch = B;
        p.window.capacity = 17;
        dr_adapter *a = NULL;
        assert_ok(dr__adapter_create(&p, NU, NI, D, Z, COLD, &a, &e_));
        cache_check(a);
        for (int round = 0; round < 20; round++) {
            feed(a, round * 37, 37); /* ends mid-batch for B = 7, 13 */
            cache_check(a);
        }
        dr__adapter_flush(a);
        cache_check(a);
        dr__adapter_free(a);
    }
}

/* Rows in use (a server's reserved rows): negatives come from them only, rows entering use are
 * exact at once, and the rows in use match the full recomputation throughout. */
static void test_active_rows(void **st) {
    (void)st;
    init_world(9);
    dr_adapter_params p = small_params();
    p.g_batch = 4;
    p.window.capacity = 13;
    dr_adapter *a = NULL;
    assert_ok(dr__adapter_create(&p, NU, NI, D, Z, COLD, &a, &e_));
    const uint32_t n0 = 30;
    dr__adapter_set_active_items(a, n0, 0);
    assert_int_equal(dr__adapter_active_items(a), n0);
    float *slow = malloc(NI * D * sizeof *slow), h[D] = {0.1f, -0.2f, 0.3f, 0.0f, 0.5f};
    dr_error e = {0};
    assert_int_equal(dr__adapter_update(a, 1, n0, 5, h, &e), DR_RANGE); /* not in use yet */
    for (int n = 0; n < 60; n++) {
        uint32_t active = dr__adapter_active_items(a);
        if (n % 20 == 19) dr__adapter_set_active_items(a, active + 2, 1);
        active = dr__adapter_active_items(a);
        assert_ok(dr__adapter_update(a, (uint32_t)n % NU, (uint32_t)(n * 7) % active, 10 + n, h, &e_));
        const uint32_t *cand;
        uint32_t nc = dr__adapter_last_candidates(a, &cand);
        for (uint32_t k = 0; k < nc; k++) assert_true(cand[k] < active);
        assert_ok(dr__adapter_items_slow(a, slow, &e_));
        const float *zp = dr__adapter_items(a);
        for (uint32_t k = 0; k < active * D; k++)
            if (fabsf(zp[k] - slow[k]) > 1e-5f * (1 + fabsf(slow[k])))
                fail_msg("event %d: z'[%u][%u]: cache %.8g, recomputed %.8g", n, k / D, k % D, zp[k], slow[k]);
    }
    assert_int_equal(dr__adapter_active_items(a), n0 + 6);
    free(slow);
    dr__adapter_free(a);
}

static void snapshot_equals_writer(const dr_adapter_snapshot *s, const dr_adapter *a) {
    uint32_t dp = dr__snapshot_stride(s);
    assert_true(dp >= D && dp % 4 == 0);
    for (uint32_t i = 0; i < NI; i++) {
        assert_memory_equal(dr__snapshot_items(s) + i * dp, dr__adapter_items(a) + i * D, D * sizeof(float));
        for (uint32_t c = D; c < dp; c++) assert_true(dr__snapshot_items(s)[i * dp + c] == 0.0f);
    }
}

static void test_no_alloc_and_cold(void **st) {
    (void)st;
    init_world(8);
    dr_adapter_params p = small_params();
    p.g_batch = 5;
    p.checksum = 1;
    dr_adapter *a = NULL;
    assert_ok(dr__adapter_create(&p, NU, NI, D, Z, COLD, &a, &e_));
    feed(a, 0, 50); /* warm-up */
    uint64_t before = dr__alloc_count();
    feed(a, 50, 500);
    assert_int_equal(dr__alloc_count() - before, 0);
    /* a cold item co-clicked in the window gets a non-zero latent */
    const float *zp = dr__adapter_items(a);
    float n = 0;
    for (int c = 0; c < D; c++) n += fabsf(zp[10 * D + c]);
    assert_true(n > 0);
    /* serving from a snapshot does not allocate either (after the scratch exists) */
    dr_topk_scratch *ts = NULL;
    assert_ok(dr__topk_scratch_create(NI, 10, &ts, &e_));
    uint32_t items[10], nout;
    float sc[10];
    const dr_adapter_snapshot *s = dr__adapter_acquire(a);
    assert_non_null(s);
    assert_true(dr__snapshot_verify(s));
    before = dr__alloc_count();
    uint32_t ex[2] = {1, 2};
    assert_ok(dr__snapshot_recommend(s, ts, 3, 9000, HU + 3 * D, ex, 2, 10, items, sc, &nout, &e_));
    assert_int_equal(dr__alloc_count() - before, 0);
    assert_int_equal(nout, 10);
    for (uint32_t k = 0; k < nout; k++) assert_true(items[k] != 1 && items[k] != 2);
    /* the snapshot's user latent equals the writer's */
    float h1[D], h2[D];
    dr__snapshot_user(s, 3, 9000, HU + 3 * D, h1);
    dr__adapter_user(a, 3, 9000, HU + 3 * D, h2);
    assert_memory_equal(h1, h2, sizeof h1);
    snapshot_equals_writer(s, a);
    dr__adapter_release(a, s);
    dr__topk_scratch_free(ts);
    dr__adapter_free(a);
}

/* ---------------------------------------------------------------- state */

static void test_state_roundtrip(void **st) {
    (void)st;
    init_world(9);
    char dir[4096], path[4200];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/adapter.drm", dir);
    dr_adapter_params p = small_params();
    p.g_batch = 6;
    dr_adapter *a = NULL, *b = NULL;
    assert_ok(dr__adapter_create(&p, NU, NI, D, Z, COLD, &a, &e_));
    feed(a, 0, 203); /* mid-batch */
    assert_ok(dr__adapter_save(a, path, &e_));
    assert_ok(dr__adapter_create(&p, NU, NI, D, Z, COLD, &b, &e_));
    assert_ok(dr__adapter_load(b, path, &e_));
    size_t P = dr__adapter_n_params(a);
    for (int round = 0; round < 3; round++) {
        assert_memory_equal(dr__adapter_params_block(a), dr__adapter_params_block(b), P * sizeof(float));
        assert_memory_equal(dr__adapter_items(a), dr__adapter_items(b), NI * D * sizeof(float));
        for (uint32_t u = 0; u < NU; u++) {
            float h1[D], h2[D];
            dr__adapter_user(a, u, 99999, HU + u * D, h1);
            dr__adapter_user(b, u, 99999, HU + u * D, h2);
            assert_memory_equal(h1, h2, sizeof h1);
        }
        feed(a, 203 + round * 50, 50);
        feed(b, 203 + round * 50, 50);
    }
    /* a state made over another base is refused */
    dr_adapter *c = NULL;
    Z[1 * D] += 1; /* item 1 is warm (0 is cold: its latent is not used) */
    assert_ok(dr__adapter_create(&p, NU, NI, D, Z, COLD, &c, &e_));
    dr_error e = {0};
    dr_status ls = dr__adapter_load(c, path, &e);
    if (ls != DR_FORMAT) fail_msg("load over another base: %s %s", dr_status_name(ls), e.msg);
    Z[1 * D] -= 1;
    dr__adapter_free(c);
    dr__adapter_free(a);
    dr__adapter_free(b);
    dr_test_rmrf(dir);
}

/* A new base latent for an item (features arriving, serve_core.c): the window's co-sums, z' and the
 * published user means equal the from-scratch values, before and after the pairs made with the
 * old latent leave the window, and a saved state carries the new rows. */
static void window_check(const dr_adapter *a) {
    const dr_window *w = dr__adapter_window(a);
    uint32_t S = DR_WIN_ITEM_STATS(D);
    float *slow = malloc(NI * S * sizeof *slow), s1[DR_WIN_ITEM_STATS(D)];
    assert_ok(dr__window_item_stats_slow(w, slow, &e_));
    for (uint32_t i = 0; i < NI; i++) {
        dr__window_item_stats(w, i, s1);
        for (uint32_t k = 0; k < S; k++)
            if (fabsf(s1[k] - slow[i * S + k]) > 1e-5f * (1 + fabsf(slow[i * S + k])))
                fail_msg("item %u stat %u: incremental %.8g, recomputed %.8g", i, k, s1[k], slow[i * S + k]);
    }
    free(slow);
}

static void test_set_item_base(void **st) {
    (void)st;
    init_world(11);
    char dir[4096], path[4200];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/adapter.drm", dir);
    dr_adapter_params p = small_params();
    p.g_batch = 5;
    p.window.capacity = 40;
    dr_adapter *a = NULL, *b = NULL;
    assert_ok(dr__adapter_create(&p, NU, NI, D, Z, COLD, &a, &e_));
    feed(a, 0, 120);
    float znew[D];
    for (uint32_t i = 0; i < 3; i++) { /* item 0 is cold, 1 and 2 warm; 2 becomes cold */
        for (int c = 0; c < D; c++) znew[c] = 0.3f * (float)(c + 1) - (float)i;
        assert_ok(dr__adapter_set_item_base(a, i, znew, i == 2, &e_));
        window_check(a);
        cache_check(a);
    }
    float x[DR_ADP_X(D)];
    dr__adapter_item_input(a, 0, x);
    assert_true(x[0] == 0.3f && x[D] == 0.0f); /* warm now, with the new latent */
    dr__adapter_item_input(a, 2, x);
    assert_true(x[0] == 0.0f && x[D] == 1.0f);
    assert_true(dr__adapter_publish(a));
    const dr_adapter_snapshot *sn = dr__adapter_acquire(a);
    for (uint32_t u = 0; u < NU; u++) {
        float h1[D], h2[D + 4];
        dr__adapter_user(a, u, 99999, HU + u * D, h1);
        dr__snapshot_user(sn, u, 99999, HU + u * D, h2);
        assert_memory_equal(h1, h2, sizeof h1);
    }
    dr__adapter_release(a, sn);
    assert_ok(dr__adapter_save(a, path, &e_));
    assert_ok(dr__adapter_create(&p, NU, NI, D, Z, COLD, &b, &e_));
    assert_ok(dr__adapter_load(b, path, &e_));
    feed(a, 120, 100); /* the old pairs leave the window */
    feed(b, 120, 100);
    window_check(a);
    cache_check(a);
    assert_memory_equal(dr__adapter_items(a), dr__adapter_items(b), NI * D * sizeof(float));
    dr_error e = {0};
    assert_int_equal(dr__adapter_set_item_base(a, NI, znew, 0, &e), DR_RANGE);
    dr__adapter_free(a);
    dr__adapter_free(b);
    dr_test_rmrf(dir);
}

/* ---------------------------------------------------------------- snapshots under readers */

typedef struct reader_ctx {
    dr_adapter *a;
    atomic_int *stop, *started;
    long reads, bad;
} reader_ctx;

static void *reader(void *arg) {
    reader_ctx *c = arg;
    uint64_t last = 0;
    float h[D];
    /* every reader reads at least once, however the threads are scheduled */
    while (!atomic_load(c->stop) || c->reads == 0) {
        const dr_adapter_snapshot *s = dr__adapter_acquire(c->a);
        if (!s) continue;
        if (!dr__snapshot_verify(s)) c->bad++;
        uint64_t v = dr__snapshot_version(s);
        if (v < last) c->bad++;
        last = v;
        dr__snapshot_user(s, (uint32_t)(c->reads % NU), 50000, HU, h);
        for (int k = 0; k < D; k++)
            if (!isfinite(h[k])) c->bad++;
        dr__adapter_release(c->a, s);
        if (c->reads++ == 0) atomic_fetch_add(c->started, 1);
    }
    return NULL;
}

static void test_snapshots_concurrent(void **st) {
    (void)st;
    openblas_set_num_threads(1);
    init_world(10);
    dr_adapter_params p = small_params();
    p.g_batch = 1u << 15; /* no G step (sgemm) while readers run: OpenBLAS is not instrumented */
    p.checksum = 1;
    dr_adapter *a = NULL;
    assert_ok(dr__adapter_create(&p, NU, NI, D, Z, COLD, &a, &e_));
    assert_true(dr__adapter_publish(a));
    atomic_int stop, started;
    atomic_init(&stop, 0);
    atomic_init(&started, 0);
    enum { NR = 3 };
    pthread_t th[NR];
    reader_ctx ctx[NR];
    for (int k = 0; k < NR; k++) {
        ctx[k] = (reader_ctx){a, &stop, &started, 0, 0};
        assert_int_equal(pthread_create(&th[k], NULL, reader, &ctx[k]), 0);
    }
    /* the writer starts once every reader is reading, so the two overlap even on a loaded machine */
    while (atomic_load(&started) < NR) sched_yield();
    feed(a, 0, 3000);
    atomic_store(&stop, 1);
    long reads = 0;
    for (int k = 0; k < NR; k++) {
        pthread_join(th[k], NULL);
        assert_int_equal(ctx[k].bad, 0);
        reads += ctx[k].reads;
    }
    assert_true(reads > 0);
    /* after the writer stops, the newest snapshot is the writer's state */
    while (!dr__adapter_publish(a)) {}
    const dr_adapter_snapshot *s = dr__adapter_acquire(a);
    assert_int_equal(dr__snapshot_version(s), dr__adapter_version(a));
    snapshot_equals_writer(s, a);
    dr__adapter_release(a, s);
    dr__adapter_free(a);
}

static void test_errors(void **st) {
    (void)st;
    init_world(11);
    dr_adapter_params p = small_params();
    dr_adapter *a = NULL;
    dr_error e = {0};
    p.negatives = 0;
    assert_int_equal(dr__adapter_create(&p, NU, NI, D, Z, NULL, &a, &e), DR_ARG);
    p = small_params();
    assert_ok(dr__adapter_create(&p, NU, NI, D, Z, NULL, &a, &e_));
    assert_int_equal(dr__adapter_update(a, NU, 0, 5, HU, &e), DR_RANGE);
    assert_int_equal(dr__adapter_update(a, 0, NI, 5, HU, &e), DR_RANGE);
    assert_ok(dr__adapter_update(a, 0, 1, 5, HU, &e_));
    assert_int_equal(dr__adapter_update(a, 0, 1, 4, HU, &e), DR_ARG); /* time went back */
    assert_int_equal(dr__adapter_load(a, "/nonexistent/x.drm", &e), DR_IO);
    dr__adapter_free(a);
    dr__adapter_free(NULL);
}

typedef struct adp_oom {
    dr_adapter *a;
    const char *state; /* non-NULL: load this saved state after create */
} adp_oom;

static dr_status adp_create(void *ud, dr_error *err) {
    adp_oom *u = ud;
    dr_adapter_params p = small_params();
    dr_status st = dr__adapter_create(&p, NU, NI, D, Z, COLD, &u->a, err);
    if (st == DR_OK && u->state) st = dr__adapter_load(u->a, u->state, err);
    return st;
}

DR_OOM_FREE_FN(adp_free, adp_oom, a, dr__adapter_free)

static void test_out_of_memory(void **st) {
    (void)st;
    init_world(12);
    adp_oom u = {0};
    dr_oom_case c = {.name = "dr__adapter_create", .call = adp_create, .cleanup = adp_free,
                     .ud = &u, .out = (void **)&u.a};
    assert_true(dr_oom_check(&c) > 0);
    /* a saved state loaded into a fresh adapter */
    char dir[256], path[300];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/state.drm", dir);
    dr_adapter_params p = small_params();
    dr_adapter *a = NULL;
    assert_ok(dr__adapter_create(&p, NU, NI, D, Z, COLD, &a, &e_));
    feed(a, 0, 40);
    assert_ok(dr__adapter_save(a, path, &e_));
    dr__adapter_free(a);
    u.state = path;
    c.name = "dr__adapter_create + dr__adapter_load";
    c.out = NULL; /* a failed load leaves the adapter to the caller */
    assert_true(dr_oom_check(&c) > 0);
    dr_test_rmrf(dir);
}

int main(void) {
    /* sgemm on the calling thread: OpenBLAS's pool is not TSan-instrumented (make tsan) */
    openblas_set_num_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp_pieces),
        cmocka_unit_test(test_event_loss_grad),
        cmocka_unit_test(test_update_is_sgd_on_reference),
        cmocka_unit_test(test_cache_matches_full),
        cmocka_unit_test(test_active_rows),
        cmocka_unit_test(test_no_alloc_and_cold),
        cmocka_unit_test(test_state_roundtrip),
        cmocka_unit_test(test_set_item_base),
        cmocka_unit_test(test_snapshots_concurrent),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
