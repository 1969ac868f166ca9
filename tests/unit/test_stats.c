/* test_stats.c - the server's live statistics (serve_stats.c): the per-second fold (counts,
 * p50/p99 from the histogram, differences of the totals, empty rows for skipped seconds, the
 * hour's ring), the live-quality window and its deterministic sampling, many request threads
 * at once with the fold running (make tsan), and the routes over them: GET /v1/stats,
 * /v1/stats/series, ?detail=1 on recommendations, users and items, and live quality counted
 * from incoming events only. */
#include "testutil.h"
#include "oom.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>

#include "serve_routes.h"
#include "serve_core.h"

static uint64_t fake_events;
static void totals(void *ud, dr_stats_totals *o) {
    (void)ud;
    o->events = fake_events;
    o->adapter_updates = fake_events / 2;
    o->log_bytes = 1000 + fake_events;
}

static dr_stats *make(double rate, uint32_t window) {
    dr_stats_params p = dr__stats_default_params();
    p.thread = 0;
    p.quality_rate = rate;
    p.quality_window = window;
    p.totals = totals;
    dr_stats *s = NULL;
    assert_ok(dr__stats_create(&p, &s, &e_));
    return s;
}

static json_t *series(dr_stats *s, int64_t since) {
    size_t need = dr__stats_series_json(s, since, NULL, 0);
    char *b = malloc(need);
    assert_non_null(b);
    assert_int_equal(dr__stats_series_json(s, since, b, need), need);
    json_error_t je;
    json_t *o = json_loads(b, 0, &je);
    if (!o) fail_msg("series JSON: %s: %s", je.text, b);
    free(b);
    return o;
}

static json_int_t col(json_t *o, const char *name, size_t k) {
    json_t *a = json_object_get(o, name);
    assert_true(json_is_array(a));
    return json_integer_value(json_array_get(a, k));
}

static double colf(json_t *o, const char *name, size_t k) {
    return json_number_value(json_array_get(json_object_get(o, name), k));
}

static void test_fold(void **state) {
    (void)state;
    fake_events = 0;
    dr_stats *s = make(0.1, 1000);
    dr__stats_tick(s, 1000); /* the first row: totals become the reference */
    for (int k = 0; k < 90; k++) dr__stats_request(s, 0.001);
    for (int k = 0; k < 10; k++) dr__stats_request(s, 0.100);
    fake_events = 50;
    dr__stats_tick(s, 1001);
    dr__stats_tick(s, 1004); /* 1002 and 1003 were skipped: empty rows */
    json_t *o = series(s, 0);
    assert_int_equal(json_integer_value(json_object_get(o, "n")), 5);
    assert_int_equal(col(o, "t", 0), 1000);
    assert_int_equal(col(o, "t", 4), 1004);
    assert_int_equal(col(o, "requests", 1), 100);
    assert_int_equal(col(o, "events", 1), 50);
    assert_int_equal(col(o, "adapter_updates", 1), 25);
    assert_int_equal(col(o, "log_bytes", 1), 1050);
    assert_int_equal(col(o, "log_bytes", 2), 1050); /* an empty row keeps the size */
    assert_int_equal(col(o, "requests", 2), 0);
    assert_int_equal(col(o, "events", 4), 0);
    /* 8 buckets an octave: the bucket's middle is within 9% of the value */
    assert_true(fabs(colf(o, "p50_ms", 1) - 1.0) < 0.09);
    assert_true(fabs(colf(o, "p99_ms", 1) - 100.0) < 9.0);
    json_decref(o);
    o = series(s, 1002); /* ?since: the rows after it */
    assert_int_equal(json_integer_value(json_object_get(o, "n")), 2);
    assert_int_equal(col(o, "t", 0), 1003);
    json_decref(o);
    dr_stats_overview ov;
    dr__stats_overview(s, &ov);
    assert_int_equal(ov.requests_total, 100);
    assert_true(fabs(ov.events_per_s - 10.0) < 1e-9); /* 50 over the 5 rows */
    assert_true(fabs(ov.p50_ms - 1.0) < 0.09);
    /* an hour and more: the ring keeps the last DR_STATS_SECONDS rows */
    for (int64_t t = 1005; t < 1005 + 4000; t++) dr__stats_tick(s, t);
    o = series(s, 0);
    assert_int_equal(json_integer_value(json_object_get(o, "n")), DR_STATS_SECONDS);
    assert_int_equal(col(o, "t", 0), 1005 + 4000 - DR_STATS_SECONDS);
    assert_int_equal(col(o, "t", DR_STATS_SECONDS - 1), 1005 + 3999);
    json_decref(o);
    dr__stats_overview(s, &ov); /* the minute of histograms has moved past the requests */
    assert_true(ov.p50_ms == 0 && ov.p99_ms == 0);
    /* a clock that goes back: the row goes after the last one */
    dr__stats_tick(s, 10);
    o = series(s, 0);
    assert_int_equal(col(o, "t", DR_STATS_SECONDS - 1), 1005 + 4000);
    json_decref(o);
    /* a buffer too small: snprintf's contract */
    char small[16];
    size_t need = dr__stats_series_json(s, 0, small, sizeof small);
    assert_true(need > sizeof small);
    assert_int_equal(strlen(small), sizeof small - 1);
    dr__stats_free(s);
}

static void test_quality_window(void **state) {
    (void)state;
    dr_stats *s = make(1.0, 4);
    int seq[6][2] = {{1, 1}, {0, 1}, {0, 0}, {1, 0}, {0, 1}, {0, 1}};
    for (int k = 0; k < 6; k++) dr__stats_quality(s, seq[k][0], seq[k][1]);
    dr_stats_overview o;
    dr__stats_overview(s, &o);
    assert_int_equal(o.q_samples, 4); /* the last four: (0,0) (1,0) (0,1) (0,1) */
    assert_int_equal(o.q_total, 6);
    assert_true(fabs(o.q_hit_base - 0.25) < 1e-12);
    assert_true(fabs(o.q_hit_adapter - 0.5) < 1e-12);
    dr__stats_tick(s, 5);
    json_t *j = series(s, 0);
    assert_int_equal(col(j, "quality_samples", 0), 6);
    assert_int_equal(col(j, "hit_base", 0), 2);
    assert_int_equal(col(j, "hit_adapter", 0), 4);
    json_decref(j);
    dr__stats_free(s);
    /* sampling: a hash of (user, item, time), the same every time; about the rate */
    dr_stats *a = make(0.1, 10), *b = make(0.1, 10), *none = make(0, 10), *all = make(1, 10);
    int n = 0;
    for (int k = 0; k < 20000; k++) {
        char u[16], i[16];
        snprintf(u, sizeof u, "u%d", k % 501);
        snprintf(i, sizeof i, "i%d", k % 97);
        int x = dr__stats_sampled(a, u, i, 1000 + k);
        assert_int_equal(x, dr__stats_sampled(b, u, i, 1000 + k));
        assert_false(dr__stats_sampled(none, u, i, k));
        assert_true(dr__stats_sampled(all, u, i, k));
        n += x;
    }
    assert_true(n > 1700 && n < 2300); /* 2000 expected, sd 42 */
    assert_int_not_equal(dr__stats_sampled(all, "ab", "c", 1), 0);
    dr__stats_free(a);
    dr__stats_free(b);
    dr__stats_free(none);
    dr__stats_free(all);
    dr_stats_params bad = dr__stats_default_params();
    bad.quality_rate = 1.5;
    dr_stats *x = NULL;
    dr_error err = {0};
    assert_int_equal(dr__stats_create(&bad, &x, &err), DR_ARG);
    bad.quality_rate = 0.1;
    bad.quality_window = 0;
    assert_int_equal(dr__stats_create(&bad, &x, &err), DR_ARG);
    assert_non_null(strstr(err.msg, "quality window"));
}

/* ---- many request threads while the stats' own thread folds */

static void *hammer(void *arg) {
    for (int k = 0; k < 20000; k++) dr__stats_request(arg, 1e-5 * (k % 7));
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    dr_stats_params p = dr__stats_default_params();
    dr_stats *s = NULL;
    assert_ok(dr__stats_create(&p, &s, &e_)); /* with its thread */
    pthread_t th[4];
    for (int k = 0; k < 4; k++) assert_int_equal(pthread_create(&th[k], NULL, hammer, s), 0);
    for (int k = 0; k < 4; k++) pthread_join(th[k], NULL);
    dr__stats_tick(s, 4102444800); /* a folding now, after the thread's own */
    dr_stats_overview o;
    dr__stats_overview(s, &o);
    assert_int_equal(o.requests_total, 80000);
    dr__stats_free(s);
    dr__stats_free(NULL);
}

typedef struct oom_ud {
    dr_stats *s;
} oom_ud;
static dr_status oom_call(void *ud, dr_error *err) {
    dr_stats_params p = dr__stats_default_params();
    p.thread = 0;
    return dr__stats_create(&p, &((oom_ud *)ud)->s, err);
}
DR_OOM_FREE_FN(oom_cleanup, oom_ud, s, dr__stats_free)

static void test_oom(void **state) {
    (void)state;
    oom_ud u = {0};
    dr_oom_case c = {.name = "dr__stats_create", .call = oom_call, .cleanup = oom_cleanup, .ud = &u,
                     .out = (void **)&u.s};
    dr_oom_check(&c);
}

/* ---- the routes over a served state */

static const char *const *args_now;
static const char *args(void *ud, const char *name) {
    (void)ud;
    for (const char *const *a = args_now; a && a[0]; a += 2)
        if (!strcmp(a[0], name)) return a[1];
    return NULL;
}

static json_t *get(dr_routes *r, dr_routes_worker *w, const char *path, const char *const *a, int want) {
    args_now = a;
    dr_route_req rq = {"GET", path, args, NULL, NULL, NULL, 0, NULL};
    dr_route_resp rs;
    dr__routes_handle(r, w, &rq, &rs);
    if (rs.status != want) fail_msg("%s: %d %.*s", path, rs.status, (int)rs.len, rs.body);
    json_t *o = json_loadb(rs.body, rs.len, 0, NULL);
    assert_non_null(o);
    return o;
}

/* A small BPR-MF checkpoint in dir/m.drm, loaded back (ids, histories). */
static dr_model *small_model(const char *dir) {
    dr_synth_params sp = dr_synth_default_params();
    sp.n_users = 80;
    sp.n_items = 60;
    sp.n_events = 2500;
    sp.seed = 9;
    dr_dataset *ds = NULL;
    dr_split *split = NULL;
    dr_model *m = NULL;
    assert_ok(dr_synth_generate(&sp, &ds, &e_));
    assert_ok(dr_split_create(ds, DR_SPLIT_LOO, &split, &e_));
    dr_model_params mp = dr_model_default_params();
    mp.name = "mf";
    mp.dim = 8;
    mp.epochs = 5;
    mp.threads = 1;
    assert_ok(dr_model_fit(ds, split, &mp, &m, &e_));
    char path[600];
    snprintf(path, sizeof path, "%s/m.drm", dir);
    assert_ok(dr_model_save(m, ds, split, path, &e_));
    dr_model_free(m);
    dr_split_free(split);
    dr_dataset_free(ds);
    assert_ok(dr_model_load(path, &m, &e_));
    return m;
}

/* A served state's settings in dir/state: no fsync, no snapshot before close. */
static dr_srv_params srv_params(const char *dir) {
    static char state_dir[600];
    snprintf(state_dir, sizeof state_dir, "%s/state", dir);
    dr_srv_params p = dr__srv_default_params();
    p.data_dir = state_dir;
    p.durable = 0;
    p.snapshot_every = 0;
    return p;
}

static void test_routes(void **state) {
    (void)state;
    char dir[512];
    dr_test_tmpdir(dir, sizeof dir);
    dr_model *m = small_model(dir);
    dr_stats *st = make(1.0, 1000);
    dr_srv_params p = srv_params(dir);
    p.stats = st;
    dr_srv *s = NULL;
    assert_ok(dr__srv_open(m, &p, &s, &e_));
    dr_routes_params rp = {NULL, 0, 1 << 16, NULL, 0, NULL, NULL};
    dr_routes *r = NULL;
    dr_routes_worker *w = NULL;
    assert_ok(dr__routes_create(s, &rp, &r, &e_));
    assert_ok(dr__routes_worker_create(r, &w, &e_));
    /* without stats: the overview says so, the series are 503 */
    json_t *o = get(r, w, "/v1/stats", NULL, 200);
    assert_true(json_is_false(json_object_get(o, "stats")));
    assert_true(json_is_null(json_object_get(o, "quality")));
    json_decref(o);
    json_decref(get(r, w, "/v1/stats/series", NULL, 503));
    dr__routes_set_stats(r, st);
    /* incoming events of known users and items are sampled (rate 1); a new user's is not */
    const char *u0 = dr_model_user_id(m, 0), *i0 = dr_model_item_id(m, 0), *i1 = dr_model_item_id(m, 1);
    char body[512];
    snprintf(body, sizeof body, "[{\"user\":\"%s\",\"item\":\"%s\",\"time\":2000000000},"
             "{\"user\":\"%s\",\"item\":\"%s\",\"time\":2000000001},{\"user\":\"newbie\",\"item\":\"%s\"}]",
             u0, i0, u0, i1, i0);
    dr_route_req pq = {"POST", "/v1/events", args, NULL, NULL, body, strlen(body), NULL};
    dr_route_resp rs;
    args_now = NULL;
    dr__routes_handle(r, w, &pq, &rs);
    assert_int_equal(rs.status, 200);
    dr__stats_tick(st, 100);
    o = get(r, w, "/v1/stats", NULL, 200);
    assert_true(json_is_true(json_object_get(o, "stats")));
    assert_int_equal(json_integer_value(json_object_get(o, "events_total")), 3);
    json_t *q = json_object_get(o, "quality");
    assert_int_equal(json_integer_value(json_object_get(q, "samples")), 2);
    assert_true(json_number_value(json_object_get(q, "rate")) == 1.0);
    /* folded: the POST (the requests before dr__routes_set_stats were not counted) */
    assert_int_equal(json_integer_value(json_object_get(o, "requests_total")), 1);
    json_decref(o);
    const char *since[] = {"since", "99", NULL};
    o = get(r, w, "/v1/stats/series", since, 200);
    assert_int_equal(json_integer_value(json_object_get(o, "n")), 1);
    assert_int_equal(col(o, "quality_samples", 0), 2);
    json_decref(o);
    const char *bad_since[] = {"since", "x", NULL};
    json_decref(get(r, w, "/v1/stats/series", bad_since, 400));
    /* recommendations: ?detail=1 adds the base's score and rank; without it the shape is the same */
    char rpath[300];
    snprintf(rpath, sizeof rpath, "/v1/users/%s/recommendations", u0);
    const char *k10[] = {"k", "10", NULL}, *k10d[] = {"k", "10", "detail", "1", NULL};
    json_t *plain = get(r, w, rpath, k10, 200), *det = get(r, w, rpath, k10d, 200);
    json_t *pi = json_object_get(plain, "items"), *di = json_object_get(det, "items");
    assert_int_equal(json_array_size(pi), 10);
    assert_int_equal(json_array_size(di), 10);
    assert_null(json_object_get(json_array_get(pi, 0), "base_score"));
    assert_null(json_object_get(plain, "detail"));
    for (size_t k = 0; k < 10; k++) {
        json_t *a = json_array_get(pi, k), *b = json_array_get(di, k);
        assert_string_equal(json_string_value(json_object_get(a, "item")), json_string_value(json_object_get(b, "item")));
        assert_true(json_number_value(json_object_get(b, "adapter_score")) == json_number_value(json_object_get(a, "score")));
        json_int_t rank = json_integer_value(json_object_get(b, "rank")), br = json_integer_value(json_object_get(b, "base_rank"));
        assert_int_equal(rank, (json_int_t)k + 1);
        assert_true(br >= 1);
        assert_int_equal(json_integer_value(json_object_get(b, "rank_change")), br - rank);
    }
    /* the base ranks: 1 + the items the base scores higher, so at least the listed ones */
    for (size_t k = 0; k < 10; k++) {
        json_t *bk = json_array_get(di, k);
        double bs = json_number_value(json_object_get(bk, "base_score"));
        json_int_t above = 0;
        for (size_t j = 0; j < 10; j++)
            above += json_number_value(json_object_get(json_array_get(di, j), "base_score")) > bs;
        assert_true(json_integer_value(json_object_get(bk, "base_rank")) >= above + 1);
    }
    json_decref(plain);
    json_decref(det);
    const char *bad_detail[] = {"detail", "yes", NULL}, *big_k[] = {"k", "500", "detail", "1", NULL};
    o = get(r, w, rpath, bad_detail, 400);
    assert_string_equal(json_string_value(json_object_get(o, "error")), "detail: must be true or false");
    json_decref(o);
    json_decref(get(r, w, rpath, big_k, 400));
    /* the user's history, newest last: the two events posted */
    const char *d1[] = {"detail", "1", NULL};
    char upath[300];
    snprintf(upath, sizeof upath, "/v1/users/%s", u0);
    o = get(r, w, upath, d1, 200);
    json_t *rec = json_object_get(o, "recent");
    size_t nr = json_array_size(rec);
    assert_true(nr >= 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rec, nr - 1), "item")), i1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rec, nr - 2), "item")), i0);
    json_decref(o);
    /* the item: window figures and nearest items, sorted by similarity */
    char ipath[300];
    snprintf(ipath, sizeof ipath, "/v1/items/%s", i0);
    o = get(r, w, ipath, d1, 200);
    assert_true(json_is_false(json_object_get(o, "fused")));
    assert_true(json_integer_value(json_object_get(json_object_get(o, "window"), "events")) +
                json_real_value(json_object_get(json_object_get(o, "window"), "events")) >= 2);
    json_t *near = json_object_get(o, "nearest");
    assert_int_equal(json_array_size(near), DR_STATS_NEAREST);
    for (size_t k = 1; k < json_array_size(near); k++)
        assert_true(json_number_value(json_object_get(json_array_get(near, k - 1), "similarity")) >=
                    json_number_value(json_object_get(json_array_get(near, k), "similarity")));
    assert_string_not_equal(json_string_value(json_object_get(json_array_get(near, 0), "item")), i0);
    json_decref(o);
    o = get(r, w, ipath, NULL, 200); /* without detail: as before */
    assert_null(json_object_get(o, "nearest"));
    json_decref(o);
    dr__routes_worker_free(w);
    dr__routes_free(r);
    dr__srv_close(s);
    /* a restart replays the log: the replayed events are not sampled again */
    dr__stats_free(st);
    st = make(1.0, 1000);
    p.stats = st;
    assert_ok(dr__srv_open(m, &p, &s, &e_));
    dr_stats_overview ov;
    dr__stats_overview(st, &ov);
    assert_int_equal(ov.q_total, 0);
    dr__srv_close(s);
    dr__stats_free(st);
    dr_model_free(m);
    dr_test_rmrf(dir);
}

/* Live quality's early-stopping test against its slow twin: before each event, the base's
 * scores of every item (dr__srv_base_scores: is the item among the 10 best, ties counted
 * against it) and the served top 10 (dr__srv_recommend over the published adapter, asked at
 * the event's own time) say what the apply thread must count. */
static void test_quality_twin(void **state) {
    (void)state;
    char dir[512];
    dr_test_tmpdir(dir, sizeof dir);
    dr_model *m = small_model(dir);
    dr_srv_params p = srv_params(dir);
    dr_srv *s = NULL;
    dr_srv_worker *w = NULL;
    dr_error err = {0};
    uint32_t nu = dr_model_n_users(m), ni = dr_model_n_items(m), nb;
    int64_t t = 2000000000;
    /* one event sets the clock the readers use (every later event is at it); then a restart
     * with statistics (the replay is not sampled) */
    dr_srv_event ev = {dr_model_user_id(m, 0), dr_model_item_id(m, 0), t, 1, NULL};
    dr_srv_ack ack;
    assert_ok(dr__srv_open(m, &p, &s, &e_));
    assert_ok(dr__srv_submit(s, &ev, 1, &ack, &e_));
    dr__srv_close(s);
    dr_stats *st = make(1.0, 1000);
    p.stats = st;
    assert_ok(dr__srv_open(m, &p, &s, &e_));
    assert_ok(dr__srv_worker_create(s, &w, &e_));
    float *bs = malloc(ni * sizeof *bs);
    assert_non_null(bs);
    int want_b = 0, want_a = 0, events = 60;
    for (int k = 0; k < events; k++) {
        ev.user = dr_model_user_id(m, (uint32_t)(k * 37) % nu);
        dr_srv_recs rec;
        assert_ok(dr__srv_recommend(s, w, ev.user, 10, &rec, &e_));
        uint32_t item = k % 2 ? rec.items[(uint32_t)k % rec.n] : (uint32_t)(k * 53) % ni;
        ev.item = dr_model_item_id(m, item);
        assert_true(dr__srv_base_scores(s, w, ev.user, bs, ni, &nb, &err));
        uint32_t above = 0;
        for (uint32_t j = 0; j < nb; j++) above += j != item && bs[j] >= bs[item];
        want_b += isfinite(bs[item]) && above < 10;
        for (uint32_t j = 0; j < rec.n; j++) want_a += rec.items[j] == item;
        assert_ok(dr__srv_submit(s, &ev, 1, &ack, &e_));
    }
    dr_stats_overview o;
    dr__stats_overview(st, &o);
    assert_int_equal(o.q_samples, events);
    assert_true(want_a > 0 && want_b > 0);
    assert_int_equal((int)lround(o.q_hit_base * (double)o.q_samples), want_b);
    assert_int_equal((int)lround(o.q_hit_adapter * (double)o.q_samples), want_a);
    free(bs);
    dr__srv_worker_free(w);
    dr__srv_close(s);
    dr__stats_free(st);
    dr_model_free(m);
    dr_test_rmrf(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fold),
        cmocka_unit_test(test_quality_window),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_oom),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_quality_twin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
