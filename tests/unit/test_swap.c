/*
 * test_swap.c - base swaps (serve_live.c): a swap puts the new base live while writes go on, is
 * a record in the log so a restart (with or without snapshots) lands on the same state, is
 * refused when the new base is worse unless forced, is followed by another replica on a Redis
 * stream, and POST /v1/admin/base checks its input and its key.
 */
#include "testutil.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "redis_fixture.h"
#include "serve_routes.h"

/* The same synthetic data, one checkpoint per (epochs, seed): dir/NAME.drm. */
static void make_ckpt(const char *dir, const char *name, int epochs, uint64_t seed) {
    dr_synth_params sp = dr_synth_default_params();
    sp.n_users = 120;
    sp.n_items = 90;
    sp.n_events = 4000;
    sp.seed = 5;
    dr_dataset *ds = NULL;
    assert_ok(dr_synth_generate(&sp, &ds, &e_));
    dr_split *split = NULL;
    assert_ok(dr_split_create(ds, DR_SPLIT_LOO, &split, &e_));
    dr_model_params mp = dr_model_default_params();
    mp.name = "mf";
    mp.dim = 8;
    mp.epochs = epochs;
    mp.seed = seed;
    mp.threads = 1;
    dr_model *m = NULL;
    assert_ok(dr_model_fit(ds, split, &mp, &m, &e_));
    char path[512];
    snprintf(path, sizeof path, "%s/%s.drm", dir, name);
    assert_ok(dr_model_save(m, ds, split, path, &e_));
    dr_model_free(m);
    dr_split_free(split);
    dr_dataset_free(ds);
}

static dr_live_params live_params(const char *dir, const char *state, const char *model) {
    static char mpath[600];
    snprintf(mpath, sizeof mpath, "%s/%s.drm", dir, model);
    dr_live_params p = dr__live_default_params();
    p.model_path = mpath;
    p.explain = 0;
    p.check_events = 100;
    p.max_drop = 1.0; /* accept any base unless a test says otherwise */
    p.max_z = 0.0;
    p.srv.data_dir = state;
    p.srv.durable = 0;
    p.srv.max_new_items = 20;
    p.srv.max_new_users = 200;
    p.srv.snapshot_every = 0;
    p.srv.adapter.g_batch = 8;
    p.srv.adapter.window.capacity = 64;
    return p;
}

static void post_range(dr_live *l, int from, int to) {
    for (int k = from; k < to; k++) {
        char u[32], it[32];
        snprintf(u, sizeof u, k % 5 ? "u%d" : "new-%d", k % 5 ? k % 60 : k % 3);
        snprintf(it, sizeof it, k % 13 == 0 ? "fresh-%d" : "i%d", k % 13 == 0 ? k % 4 : (k * 7) % 90);
        dr_srv_event ev = {u, it, 1000 + k, 1, NULL};
        dr_gen *g = dr__live_acquire(l);
        assert_ok(dr__srv_submit(g->srv, &ev, 1, NULL, &e_));
        dr__live_release(l, g);
    }
}

static dr_srv_state state_of(dr_live *l) {
    dr_gen *g = dr__live_acquire(l);
    dr_srv_state st;
    assert_ok(dr__srv_state(g->srv, &st, &e_));
    dr__live_release(l, g);
    return st;
}

static uint64_t gen_id(dr_live *l, char *path, size_t cap) {
    dr_gen *g = dr__live_acquire(l);
    uint64_t id = g->id;
    if (path) snprintf(path, cap, "%s", g->path);
    dr__live_release(l, g);
    return id;
}

/* A reader that keeps asking while the swap runs: every answer must succeed. */
typedef struct reader_ctx {
    dr_live *l;
    atomic_int stop;
    long answers, failures;
} reader_ctx;

static void *reader(void *arg) {
    reader_ctx *c = arg;
    uint64_t seen = 0;
    dr_srv_worker *w = NULL;
    do {
        dr_gen *g = dr__live_acquire(c->l);
        if (g->id != seen) { /* a worker belongs to one state */
            dr__srv_worker_free(w);
            w = NULL;
            if (dr__srv_worker_create(g->srv, &w, NULL) != DR_OK) c->failures++;
            seen = g->id;
        }
        dr_srv_recs r;
        if (!w || dr__srv_recommend(g->srv, w, "u7", 10, &r, NULL) != DR_OK || r.n != 10) c->failures++;
        else c->answers++;
        dr__live_release(c->l, g);
    } while (!atomic_load(&c->stop));
    dr__srv_worker_free(w);
    return NULL;
}

static void test_swap_restart_same_state(void **st) {
    (void)st;
    char dir[256], state[600], path[DR_SRV_PATH_MAX];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(state, sizeof state, "%s/state", dir);
    make_ckpt(dir, "a", 6, 1);
    make_ckpt(dir, "b", 12, 2);
    dr_live_params p = live_params(dir, state, "a");
    dr_live *l = NULL;
    assert_ok(dr__live_open(&p, &l, &e_));
    assert_int_equal(gen_id(l, NULL, 0), 1);
    post_range(l, 0, 300);
    reader_ctx rc = {l, 0, 0, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, reader, &rc), 0);
    char bpath[600];
    snprintf(bpath, sizeof bpath, "%s/b.drm", dir);
    dr_swap_report rep;
    assert_ok(dr__live_swap(l, bpath, 0, &rep, &e_));
    atomic_store(&rc.stop, 1);
    pthread_join(th, NULL);
    assert_int_equal(rc.failures, 0);
    assert_true(rc.answers > 0);
    assert_int_equal(rep.swapped, 1);
    assert_int_equal(rep.gen, 2);
    assert_string_equal(rep.at, "0-301"); /* after the 300 events */
    assert_int_equal(rep.live.events, 100); /* the last check_events events */
    assert_int_equal(rep.cand.events, rep.live.events);
    assert_true(rep.live.hit10 >= 0 && rep.live.hit10 <= 1 && rep.cand.hit10 >= 0 && rep.cand.hit10 <= 1);
    assert_int_equal(gen_id(l, path, sizeof path), 2);
    assert_non_null(strstr(path, "/b.drm"));
    post_range(l, 300, 400); /* writes go on into the new base */
    dr_srv_state s1 = state_of(l);
    assert_int_equal(s1.records, 401);
    dr_live_stats ls;
    dr__live_stats(l, &ls);
    assert_int_equal(ls.swaps, 1);
    dr__live_close(l);

    /* a restart given the old checkpoint serves the base the log names, at the same state
     * (through the final snapshot, then without any snapshot) */
    for (int pass = 0; pass < 2; pass++) {
        assert_ok(dr__live_open(&p, &l, &e_));
        gen_id(l, path, sizeof path);
        assert_non_null(strstr(path, "/b.drm"));
        dr_srv_state s2 = state_of(l);
        assert_int_equal(s2.records, s1.records);
        assert_true(s2.hash == s1.hash);
        dr__live_close(l);
        char cmd[700];
        snprintf(cmd, sizeof cmd, "rm -f %s/adapter-*.state", state);
        assert_int_equal(system(cmd), 0);
        p.srv.final_snapshot = 0;
    }
    dr_test_rmrf(dir);
}

static void test_swap_refused_then_forced(void **st) {
    (void)st;
    char dir[256], state[600], bpath[600];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(state, sizeof state, "%s/state", dir);
    make_ckpt(dir, "a", 6, 1);
    make_ckpt(dir, "b", 12, 2);
    snprintf(bpath, sizeof bpath, "%s/b.drm", dir);
    dr_live_params p = live_params(dir, state, "a");
    p.max_drop = -1.0; /* a threshold no base passes: the refusal path */
    dr_live *l = NULL;
    assert_ok(dr__live_open(&p, &l, &e_));
    post_range(l, 0, 200);
    dr_srv_state s0 = state_of(l);
    dr_swap_report rep;
    assert_ok(dr__live_swap(l, bpath, 0, &rep, &e_));
    assert_int_equal(rep.swapped, 0);
    assert_int_equal(rep.gen, 1);
    assert_true(rep.live.events > 0 && rep.cand.events == rep.live.events);
    dr_srv_state s1 = state_of(l);
    assert_true(s1.hash == s0.hash && s1.records == s0.records); /* nothing logged */
    assert_ok(dr__live_swap(l, bpath, 1, &rep, &e_));
    assert_int_equal(rep.swapped, 1);
    assert_int_equal(rep.gen, 2);
    /* bad checkpoints: clear errors, the live base stays */
    dr_error e = {0};
    assert_int_not_equal(dr__live_swap(l, "/nonexistent/x.drm", 1, &rep, &e), DR_OK);
    assert_non_null(strstr(e.msg, "/nonexistent/x.drm"));
    char junk[600];
    snprintf(junk, sizeof junk, "%s/junk.drm", dir);
    dr_test_write(junk, "not a checkpoint");
    assert_int_not_equal(dr__live_swap(l, junk, 1, &rep, &e), DR_OK);
    assert_int_equal(gen_id(l, NULL, 0), 2);
    dr_live_stats ls;
    dr__live_stats(l, &ls);
    assert_int_equal(ls.refused, 1);
    assert_int_equal(ls.swaps, 1);
    dr__live_close(l);
    dr_test_rmrf(dir);
}

/* Events the live base predicts: each user's item is the live top-r (r cycling 0..4) just
 * before it is posted. */
static void post_predicted(dr_live *l, int from, int to) {
    dr_gen *g = dr__live_acquire(l);
    dr_srv_worker *w = NULL;
    assert_ok(dr__srv_worker_create(g->srv, &w, &e_));
    for (int k = from; k < to; k++) {
        char u[32], it[DR_SRV_ID_MAX + 1];
        snprintf(u, sizeof u, "u%d", k % 60);
        dr_srv_recs r;
        assert_ok(dr__srv_recommend(g->srv, w, u, 5, &r, &e_));
        assert_true(r.n == 5);
        snprintf(it, sizeof it, "%s", dr__srv_item_name(g->srv, r.items[k % 5]));
        dr_srv_event ev = {u, it, 2000 + k, 1, NULL};
        dr_srv_ack ack;
        assert_ok(dr__srv_submit(g->srv, &ev, 1, &ack, &e_));
    }
    dr__srv_worker_free(w);
    dr__live_release(l, g);
}

/* The paired check: both bases score the same events; a base worse by McNemar's z above max_z
 * is refused although its Hit@10 is within max_drop; max_z 0 turns the test off. */
static void test_swap_paired(void **st) {
    (void)st;
    char dir[256], state[600], bpath[600];
    dr_test_tmpdir(dir, sizeof dir);
    make_ckpt(dir, "a", 12, 1);
    make_ckpt(dir, "weak", 1, 2);
    snprintf(bpath, sizeof bpath, "%s/weak.drm", dir);
    uint64_t lo = 0, no = 0;
    double z = 0;
    for (int k = 0; k < 2; k++) {
        snprintf(state, sizeof state, "%s/state-%d", dir, k);
        dr_live_params p = live_params(dir, state, "a");
        p.max_z = k == 0 ? 1.645 : 0.0;
        dr_live *l = NULL;
        assert_ok(dr__live_open(&p, &l, &e_));
        post_range(l, 0, 100);
        post_predicted(l, 100, 300);
        dr_swap_report rep;
        assert_ok(dr__live_swap(l, bpath, 0, &rep, &e_));
        assert_true(rep.checked);
        assert_int_equal(rep.cand.events, rep.live.events);
        /* the discordant counts are the difference of the hit counts */
        const double hl = rep.live.hit10 * (double)rep.live.events,
                     hn = rep.cand.hit10 * (double)rep.cand.events;
        assert_true(fabs(((double)rep.live_only - (double)rep.new_only) - (hl - hn)) < 1e-6);
        fprintf(stderr, "paired check: live Hit@10 %.4f, weak %.4f on %llu events; live only %llu, "
                "weak only %llu, z %.2f\n", rep.live.hit10, rep.cand.hit10,
                (unsigned long long)rep.cand.events, (unsigned long long)rep.live_only,
                (unsigned long long)rep.new_only, rep.z);
        assert_true(rep.z > 1.645); /* the weak base is worse, and the test says so */
        assert_int_equal(rep.swapped, k == 1);
        if (k == 1) assert_true(rep.live_only == lo && rep.new_only == no && rep.z == z);
        lo = rep.live_only, no = rep.new_only, z = rep.z;
        dr__live_close(l);
    }
    dr_test_rmrf(dir);
}

/* rebuild_events sets how far back the swapped-in base's adapter relearns */
static void test_rebuild_events(void **st) {
    (void)st;
    char dir[256], state[600], bpath[600];
    dr_test_tmpdir(dir, sizeof dir);
    make_ckpt(dir, "a", 6, 1);
    make_ckpt(dir, "b", 12, 2);
    snprintf(bpath, sizeof bpath, "%s/b.drm", dir);
    const uint32_t rebuild[] = {0, 10, 100000};
    /* from the event check_events + 1 + N back: (100 + 1) + the window (64) | 10 | all 300 */
    const uint64_t want[] = {100 + 1 + 64, 100 + 1 + 10, 300};
    for (int k = 0; k < 3; k++) {
        snprintf(state, sizeof state, "%s/state-%d", dir, k);
        dr_live_params p = live_params(dir, state, "a");
        p.rebuild_events = rebuild[k];
        dr_live *l = NULL;
        assert_ok(dr__live_open(&p, &l, &e_));
        post_range(l, 0, 300);
        dr_swap_report rep;
        assert_ok(dr__live_swap(l, bpath, 1, &rep, &e_));
        dr_gen *g = dr__live_acquire(l);
        dr_srv_stats stt;
        dr__srv_get_stats(g->srv, &stt);
        dr__live_release(l, g);
        assert_int_equal(stt.adapter_updates, want[k]);
        dr__live_close(l);
    }
    dr_test_rmrf(dir);
}

/* records at or before a base's `covers` are its training data: not applied again */
static void test_base_covers_and_from(void **st) {
    (void)st;
    char dir[256], state[600];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(state, sizeof state, "%s/state", dir);
    make_ckpt(dir, "a", 6, 1);
    dr_live_params p = live_params(dir, state, "a");
    p.srv.final_snapshot = 0; /* no snapshot: the adapter is rebuilt from `from` */
    dr_live *l = NULL;
    assert_ok(dr__live_open(&p, &l, &e_));
    post_range(l, 0, 100); /* users new-0..2 appear in these */
    dr__live_close(l);
    dr_model *m = NULL;
    char apath[600];
    snprintf(apath, sizeof apath, "%s/a.drm", dir);
    assert_ok(dr_model_load(apath, &m, &e_));
    dr_srv_base b = {{0, 100}, {0, 50}, {0, 80}};
    dr_srv_params sp = p.srv;
    sp.base = &b;
    dr_srv *s = NULL;
    assert_ok(dr__srv_open(m, &sp, &s, &e_));
    uint32_t h, ev;
    assert_true(dr__srv_user_info(s, "new-0", &h, &ev)); /* new-0 posts after 50 too */
    dr_srv_stats stt;
    dr__srv_get_stats(s, &stt);
    assert_int_equal(stt.events_total, 50);      /* 51..100 applied */
    assert_int_equal(stt.recovered_events, 21);  /* the adapter from 80 on */
    assert_int_equal(stt.log_records, 100);
    dr__srv_close(s);
    /* from before covers: the covered events from `from` on teach the adapter, not the histories */
    dr_srv_base b2 = {{0, 100}, {0, 50}, {0, 30}};
    sp.base = &b2;
    assert_ok(dr__srv_open(m, &sp, &s, &e_));
    dr__srv_get_stats(s, &stt);
    assert_int_equal(stt.events_total, 50);
    /* events 30..100 but the 5 covered ones whose user or item this checkpoint does not know */
    assert_int_equal(stt.adapter_updates, 66);
    dr__srv_close(s);
    dr_model_free(m);
    dr_test_rmrf(dir);
}

static const char *no_args(void *ud, const char *name) { return NULL; }

static int admin(dr_routes *r, dr_routes_worker *w, const char *body, const char *auth, char *out,
                 size_t cap) {
    dr_route_req rq = {"POST", "/v1/admin/base", no_args, NULL, auth, body, strlen(body), NULL};
    dr_route_resp rs;
    dr__routes_handle(r, w, &rq, &rs);
    snprintf(out, cap, "%.*s", (int)rs.len, rs.body);
    return rs.status;
}

static void test_admin_route(void **st) {
    (void)st;
    char dir[256], state[600], body[1024], out[2048];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(state, sizeof state, "%s/state", dir);
    make_ckpt(dir, "a", 6, 1);
    make_ckpt(dir, "b", 12, 2);
    dr_live_params p = live_params(dir, state, "a");
    dr_live *l = NULL;
    assert_ok(dr__live_open(&p, &l, &e_));
    post_range(l, 0, 150);
    /* exposed without a key: 403 */
    dr_routes_params rp = {NULL, 0, 4096, NULL, 1, NULL, NULL};
    dr_routes *r = NULL;
    dr_routes_worker *w = NULL;
    assert_ok(dr__routes_create_live(l, &rp, &r, &e_));
    assert_ok(dr__routes_worker_create(r, &w, &e_));
    snprintf(body, sizeof body, "{\"path\":\"%s/b.drm\"}", dir);
    assert_int_equal(admin(r, w, body, NULL, out, sizeof out), 403);
    dr__routes_worker_free(w);
    dr__routes_free(r);
    /* with a key: 401 without it, 400 on bad bodies, 200 with both figures */
    dr_routes_params rk = {"sekret", 1, 4096, NULL, 1, NULL, NULL};
    assert_ok(dr__routes_create_live(l, &rk, &r, &e_));
    assert_ok(dr__routes_worker_create(r, &w, &e_));
    assert_int_equal(admin(r, w, body, NULL, out, sizeof out), 401);
    const char *bad[] = {"{}", "{\"path\":3}", "{\"path\":\"\"}", "{\"path\":\"x\",\"force\":1}",
                         "{\"path\":\"x\",\"other\":1}", "[1]", "{\"path\":\"/nonexistent.drm\"}"};
    for (size_t k = 0; k < DR_ARRAY_LEN(bad); k++) {
        int code = admin(r, w, bad[k], "Bearer sekret", out, sizeof out);
        assert_int_equal(code, 400);
        assert_non_null(strstr(out, "\"error\""));
    }
    assert_int_equal(admin(r, w, body, "Bearer sekret", out, sizeof out), 200);
    assert_non_null(strstr(out, "\"swapped\":true"));
    assert_non_null(strstr(out, "\"generation\":2"));
    assert_non_null(strstr(out, "\"live\":{\"events\":"));
    assert_non_null(strstr(out, "\"new\":{\"events\":"));
    /* the next request runs on the new generation */
    dr_route_req rq = {"GET", "/healthz", no_args, NULL, "Bearer sekret", NULL, 0, NULL};
    dr_route_resp rs;
    dr__routes_handle(r, w, &rq, &rs);
    snprintf(out, sizeof out, "%.*s", (int)rs.len, rs.body);
    assert_non_null(strstr(out, "b.drm"));
    assert_non_null(strstr(out, "\"generation\":2"));
    dr_route_req rr = {"GET", "/v1/users/u3/recommendations", no_args, NULL, "Bearer sekret", NULL, 0, NULL};
    dr__routes_handle(r, w, &rr, &rs);
    assert_int_equal(rs.status, 200);
    dr__routes_worker_free(w);
    dr__routes_free(r);
    dr__live_close(l);
    dr_test_rmrf(dir);
}

/* Two replicas on one Redis stream: a swap on one is followed by the other at the same
 * position, and both stay identical. */
static void test_swap_followed_on_redis(void **st) {
    (void)st;
    if (!redis_installed()) {
        printf("SKIP: redis-server not found, a swap across replicas is not tested\n");
        return;
    }
    signal(SIGPIPE, SIG_IGN);
    char dir[256], sa[600], sb[600], spec[700], bpath[600];
    dr_test_tmpdir(dir, sizeof dir);
    make_ckpt(dir, "a", 6, 1);
    make_ckpt(dir, "b", 12, 2);
    snprintf(bpath, sizeof bpath, "%s/b.drm", dir);
    redis_srv rsv = {0};
    snprintf(rsv.dir, sizeof rsv.dir, "%s", dir);
    snprintf(rsv.sock, sizeof rsv.sock, "%s/r.sock", dir);
    assert_int_equal(redis_start(&rsv), 0);
    snprintf(spec, sizeof spec, "redis+unix://%s?stream=swap", rsv.sock);
    snprintf(sa, sizeof sa, "%s/a-state", dir);
    snprintf(sb, sizeof sb, "%s/b-state", dir);
    dr_live_params pa = live_params(dir, sa, "a"), pb = pa;
    pa.srv.log = pb.srv.log = spec;
    pb.srv.data_dir = sb;
    dr_live *a = NULL, *b = NULL;
    assert_ok(dr__live_open(&pa, &a, &e_));
    assert_ok(dr__live_open(&pb, &b, &e_));
    post_range(a, 0, 150);
    dr_swap_report rep;
    assert_ok(dr__live_swap(a, bpath, 0, &rep, &e_));
    assert_int_equal(rep.swapped, 1);
    for (int t = 0; t < 1000 && gen_id(b, NULL, 0) < 2; t++) usleep(10000);
    char path[DR_SRV_PATH_MAX];
    assert_int_equal(gen_id(b, path, sizeof path), 2);
    assert_non_null(strstr(path, "/b.drm"));
    post_range(b, 150, 220);
    post_range(a, 220, 260);
    dr_srv_state s_a = state_of(a);
    dr_gen *g = dr__live_acquire(b);
    assert_true(dr__srv_wait_applied(g->srv, s_a.last, 5000, NULL));
    dr__live_release(b, g);
    dr_srv_state s_b = state_of(b);
    assert_int_equal(s_a.records, s_b.records);
    assert_true(s_a.hash == s_b.hash);
    dr__live_close(a);
    dr__live_close(b);
    redis_stop(&rsv, SIGKILL);
    dr_test_rmrf(dir);
}

int main(void) {
    openblas_set_num_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swap_restart_same_state),
        cmocka_unit_test(test_swap_refused_then_forced),
        cmocka_unit_test(test_swap_paired),
        cmocka_unit_test(test_base_covers_and_from),
        cmocka_unit_test(test_rebuild_events),
        cmocka_unit_test(test_admin_route),
        cmocka_unit_test(test_swap_followed_on_redis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
