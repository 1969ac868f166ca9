/* test_server.c - the serving core without sockets: events reach the adapter, unknown users
 * get popular-now items, new items take reserved rows, capacity is enforced, a restart (from a
 * snapshot + the log, or from the log alone) gives the same answers bit for bit, and many
 * writers and readers at once lose nothing (run under `make tsan`). Also the HTTP routes:
 * status codes and error messages for bad input. */
#include "redis_fixture.h"
#include "testutil.h"
#include "oom.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "serve_routes.h"
#include "ckpt.h"
#include "serve_core.h"

/* A small BPR-MF checkpoint trained on synthetic data, loaded back (ids + histories); with
 * modalities, fused with the planted features (the dataset is kept in *keep when asked). */
static dr_model *make_model_ex(const char *dir, const char *modalities, dr_dataset **keep) {
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
    mp.epochs = 8;
    mp.threads = 1;
    mp.modalities = modalities;
    dr_model *m = NULL;
    assert_ok(dr_model_fit(ds, split, &mp, &m, &e_));
    char path[512];
    snprintf(path, sizeof path, "%s/m.drm", dir);
    assert_ok(dr_model_save(m, ds, split, path, &e_));
    dr_model_free(m);
    dr_split_free(split);
    if (keep) *keep = ds;
    else dr_dataset_free(ds);
    assert_ok(dr_model_load(path, &m, &e_));
    return m;
}

static dr_model *make_model(const char *dir) { return make_model_ex(dir, NULL, NULL); }

static dr_srv_params params(const char *dir) {
    static char state[600];
    snprintf(state, sizeof state, "%s/state", dir);
    dr_srv_params p = dr__srv_default_params();
    p.data_dir = state;
    p.durable = 0;
    p.max_new_items = 20;
    p.max_new_users = 200;
    p.snapshot_every = 0;
    p.adapter.g_batch = 8;
    p.adapter.window.capacity = 64;
    return p;
}

typedef struct answer {
    uint32_t n;
    uint32_t items[20];
    float scores[20];
    int popular;
} answer;

static void ask(dr_srv *s, dr_srv_worker *w, const char *user, answer *a) {
    dr_srv_recs r;
    assert_ok(dr__srv_recommend(s, w, user, 20, &r, &e_));
    a->n = r.n;
    a->popular = r.popular;
    memcpy(a->items, r.items, r.n * sizeof *a->items);
    memcpy(a->scores, r.scores, r.n * sizeof *a->scores);
}

static void post(dr_srv *s, const char *user, const char *item, int64_t t) {
    dr_srv_event ev = {user, item, t, 1, NULL};
    assert_ok(dr__srv_submit(s, &ev, 1, NULL, &e_));
}

static const char *users_asked[] = {"u3", "u7", "new-a", "new-b", "nobody"};
#define N_ASKED 5

static void ask_all(dr_srv *s, answer *out) {
    dr_srv_worker *w = NULL;
    assert_ok(dr__srv_worker_create(s, &w, &e_));
    for (int k = 0; k < N_ASKED; k++) ask(s, w, users_asked[k], &out[k]);
    dr__srv_worker_free(w);
}

static void feed(dr_srv *s, int from, int to) {
    char u[32], it[32];
    for (int k = from; k < to; k++) {
        snprintf(u, sizeof u, k % 3 ? "u%d" : "new-%c", k % 3 ? k % 40 : 'a' + k % 2);
        snprintf(it, sizeof it, k % 11 == 0 ? "fresh-%d" : "i%d", k % 11 == 0 ? k % 4 : (k * 7) % 90);
        post(s, u, it, 1000 + k);
    }
}

static void test_events_popular_and_new_items(void **st) {
    (void)st;
    char dir[256];
    dr_test_tmpdir(dir, sizeof dir);
    dr_model *m = make_model(dir);
    dr_srv_params p = params(dir);
    dr_srv *s = NULL;
    assert_ok(dr__srv_open(m, &p, &s, &e_));
    dr_srv_worker *w = NULL;
    assert_ok(dr__srv_worker_create(s, &w, &e_));
    answer a;
    ask(s, w, "nobody", &a);
    assert_true(a.popular);
    assert_int_equal(a.n, 20);
    /* 30 events on a new item: it is created cold and tops popular-now */
    for (int k = 0; k < 30; k++) {
        char u[16];
        snprintf(u, sizeof u, "u%d", k);
        post(s, u, "brand-new", 500 + k);
    }
    ask(s, w, "nobody", &a);
    uint32_t bn = dr__srv_find_item(s, "brand-new");
    assert_int_equal(bn, dr_model_n_items(m)); /* the first reserved row */
    assert_int_equal(a.items[0], bn);
    assert_true(a.scores[0] == 30.0f);
    /* a user who took it does not get it again; another user can */
    ask(s, w, "u0", &a);
    assert_false(a.popular);
    uint64_t a0 = dr__alloc_count(); /* the read path allocates nothing after warm-up */
    for (int k = 0; k < 10; k++) ask(s, w, k % 2 ? "u0" : "nobody", &a);
    assert_int_equal(dr__alloc_count() - a0, 0);
    for (uint32_t j = 0; j < a.n; j++) assert_int_not_equal(a.items[j], bn);
    uint32_t h, ev;
    assert_true(dr__srv_user_info(s, "u0", &h, &ev));
    assert_int_equal(ev, 1);
    assert_false(dr__srv_user_info(s, "nobody", &h, &ev));
    /* capacity: 20 new items; a request needing 2 more than are left is refused whole */
    dr_srv_event evs[25];
    char names[25][16];
    for (int k = 0; k < 19; k++) {
        snprintf(names[k], 16, "cap-%d", k);
        evs[k] = (dr_srv_event){"u1", names[k], 900, 1, NULL};
    }
    dr_srv_stats s0, s1;
    dr__srv_get_stats(s, &s0);
    snprintf(names[19], 16, "cap-19");
    evs[19] = (dr_srv_event){"u1", names[19], 900, 1, NULL};
    dr_error e = {0};
    assert_int_equal(dr__srv_submit(s, evs, 20, NULL, &e), DR_LIMIT);
    assert_non_null(strstr(e.msg, "--max-new-items"));
    dr__srv_get_stats(s, &s1);
    assert_int_equal(s1.events_total, s0.events_total); /* nothing logged */
    assert_ok(dr__srv_submit(s, evs, 19, NULL, &e_));    /* exactly fills the rows */
    dr__srv_get_stats(s, &s1);
    assert_int_equal(s1.new_items, 20);
    assert_int_equal(s1.events_total, s0.events_total + 19);
    /* an item PUT then recommended by name; a repeated key costs one row */
    assert_ok(dr__srv_put_item(s, "cap-3", "{\"title\":\"Three\",\"attributes\":[],\"features\":{}}", NULL, NULL, &e_));
    const char *title, *body;
    dr__srv_item_meta(s, dr__srv_find_item(s, "cap-3"), &title, &body);
    assert_string_equal(title, "Three");
    assert_int_equal(dr__srv_recommend(s, w, "u1", 0, &(dr_srv_recs){0}, NULL), DR_RANGE);
    dr__srv_worker_free(w);
    dr__srv_close(s);
    dr_model_free(m);
    dr_test_rmrf(dir);
}

/* Without the adapter (p.frozen, `dynrec serve --adapter off`): events grow the histories but
 * nothing learns and no snapshot is written; a known user's answer is the base's own scores
 * (dr_model_score) in order, source "base". */
static void test_frozen(void **st) {
    (void)st;
    char dir[256];
    dr_test_tmpdir(dir, sizeof dir);
    dr_model *m = make_model(dir);
    dr_srv_params p = params(dir);
    p.frozen = 1;
    p.snapshot_every = 10;
    dr_srv *s = NULL;
    assert_ok(dr__srv_open(m, &p, &s, &e_));
    feed(s, 0, 120);
    dr_srv_stats stt;
    dr__srv_get_stats(s, &stt);
    assert_int_equal(stt.events_total, 120);
    assert_int_equal(stt.adapter_updates, 0);
    assert_int_equal(stt.snapshots, 0);
    uint32_t u = 0;
    while (strcmp(dr_model_user_id(m, u), "u3")) u++;
    float *want = dr__malloc(dr_model_n_items(m) * sizeof *want);
    dr_scorer *sc = NULL;
    assert_ok(dr_scorer_create(m, &sc, &e_));
    assert_ok(dr_model_score(m, sc, u, NULL, 0, want, &e_));
    dr_srv_worker *w = NULL;
    assert_ok(dr__srv_worker_create(s, &w, &e_));
    dr_srv_recs r;
    assert_ok(dr__srv_recommend(s, w, "u3", 20, &r, &e_));
    assert_true(r.frozen && r.known && !r.popular);
    assert_int_equal(r.n, 20);
    for (uint32_t j = 0; j < r.n; j++) {
        assert_true(r.items[j] < dr_model_n_items(m)); /* new items score 0: below these */
        assert_true(fabsf(r.scores[j] - want[r.items[j]]) <= 1e-4f * (1.0f + fabsf(want[r.items[j]])));
        if (j) assert_true(r.scores[j] <= r.scores[j - 1]);
    }
    dr__srv_worker_free(w);
    dr_scorer_free(sc);
    dr__free(want);
    dr__srv_close(s);
    char snap[700];
    snprintf(snap, sizeof snap, "%s/state/adapter-120.state", dir);
    assert_int_equal(access(snap, F_OK), -1);
    dr_model_free(m);
    dr_test_rmrf(dir);
}

static int same(const answer *a, const answer *b) {
    return a->n == b->n && a->popular == b->popular &&
           !memcmp(a->items, b->items, a->n * sizeof *a->items) &&
           !memcmp(a->scores, b->scores, a->n * sizeof *a->scores);
}

/* Same answers after a restart from snapshot + log, and from the log alone. */
static void test_restart_same_state(void **st) {
    (void)st;
    char dir[256], cmd[1024];
    dr_test_tmpdir(dir, sizeof dir);
    dr_model *m = make_model(dir);
    dr_srv_params p = params(dir);
    p.snapshot_every = 50; /* snapshots in the middle of the stream */
    p.final_snapshot = 0;  /* so the restart has a log tail to replay */
    dr_srv *s = NULL;
    assert_ok(dr__srv_open(m, &p, &s, &e_));
    feed(s, 0, 130);
    assert_ok(dr__srv_put_item(s, "fresh-9", "{\"title\":\"Nine\",\"attributes\":[],\"features\":{}}", NULL, NULL, &e_));
    feed(s, 130, 175);
    answer before[N_ASKED], after[N_ASKED], replayed[N_ASKED];
    ask_all(s, before);
    dr_srv_stats st0;
    dr__srv_get_stats(s, &st0);
    assert_true(st0.snapshots >= 3);
    dr__srv_close(s);

    assert_ok(dr__srv_open(m, &p, &s, &e_));
    dr_srv_stats st1;
    dr__srv_get_stats(s, &st1);
    assert_int_equal(st1.events_total, 175);
    assert_true(st1.recovered_events > 0 && st1.recovered_events < 175); /* a snapshot was used */
    ask_all(s, after);
    dr__srv_close(s);
    for (int k = 0; k < N_ASKED; k++) assert_true(same(&before[k], &after[k]));

    /* without snapshots: the whole log is replayed into a fresh adapter */
    snprintf(cmd, sizeof cmd, "rm -f '%s'/state/adapter-*.state", dir);
    assert_int_equal(system(cmd), 0);
    assert_ok(dr__srv_open(m, &p, &s, &e_));
    dr__srv_get_stats(s, &st1);
    assert_int_equal(st1.recovered_events, 175);
    ask_all(s, replayed);
    dr__srv_close(s);
    for (int k = 0; k < N_ASKED; k++) assert_true(same(&before[k], &replayed[k]));
    dr_model_free(m);
    dr_test_rmrf(dir);
}

/* ---- concurrency: writers and readers at once */

typedef struct conc {
    dr_srv *s;
    int id;
    _Atomic int *stop;
    uint64_t answered;
} conc;

#define WRITERS 4
#define PER_WRITER 60

static void *writer_thread(void *arg) {
    conc *c = arg;
    dr_srv_event ev[3];
    char u[3][32], it[3][32];
    for (int k = 0; k < PER_WRITER;) {
        int n = 1 + k % 3;
        if (k + n > PER_WRITER) n = PER_WRITER - k;
        for (int j = 0; j < n; j++) {
            snprintf(u[j], 32, "w%d-%d", c->id, (k + j) % 7);
            snprintf(it[j], 32, (k + j) % 13 ? "i%d" : "new-%d", (k + j) % 13 ? (k + j) % 90 : c->id);
            ev[j] = (dr_srv_event){u[j], it[j], 0, 0, NULL};
        }
        dr_error e = {0};
        if (dr__srv_submit(c->s, ev, (size_t)n, NULL, &e) != DR_OK) return (void *)1;
        k += n;
    }
    return NULL;
}

static void *reader_thread(void *arg) {
    conc *c = arg;
    dr_srv_worker *w = NULL;
    if (dr__srv_worker_create(c->s, &w, NULL) != DR_OK) return (void *)1;
    const char *who[] = {"u1", "w0-1", "w1-2", "unknown-user", "u5"};
    do { /* at least one round, however the threads are scheduled */
        for (int k = 0; k < 5; k++) {
            dr_srv_recs r;
            if (dr__srv_recommend(c->s, w, who[k], 10, &r, NULL) != DR_OK) {
                dr__srv_worker_free(w);
                return (void *)1;
            }
            for (uint32_t j = 0; j < r.n; j++) (void)dr__srv_item_name(c->s, r.items[j]);
            c->answered++;
        }
        dr_srv_stats st;
        dr__srv_get_stats(c->s, &st);
    } while (!atomic_load(c->stop));
    dr__srv_worker_free(w);
    return NULL;
}

static void test_concurrent_writers_and_readers(void **st) {
    (void)st;
    char dir[256];
    dr_test_tmpdir(dir, sizeof dir);
    dr_model *m = make_model(dir);
    dr_srv_params p = params(dir);
    p.snapshot_every = 64;
    dr_srv *s = NULL;
    assert_ok(dr__srv_open(m, &p, &s, &e_));
    _Atomic int stop = 0;
    pthread_t wt[WRITERS], rt[2];
    conc wc[WRITERS], rc[2];
    for (int k = 0; k < 2; k++) {
        rc[k] = (conc){s, k, &stop, 0};
        assert_int_equal(pthread_create(&rt[k], NULL, reader_thread, &rc[k]), 0);
    }
    for (int k = 0; k < WRITERS; k++) {
        wc[k] = (conc){s, k, &stop, 0};
        assert_int_equal(pthread_create(&wt[k], NULL, writer_thread, &wc[k]), 0);
    }
    for (int k = 0; k < WRITERS; k++) {
        void *r;
        pthread_join(wt[k], &r);
        assert_null(r);
    }
    atomic_store(&stop, 1);
    for (int k = 0; k < 2; k++) {
        void *r;
        pthread_join(rt[k], &r);
        assert_null(r);
        assert_true(rc[k].answered > 0);
    }
    dr_srv_stats sa;
    dr__srv_get_stats(s, &sa);
    assert_int_equal(sa.events_total, WRITERS * PER_WRITER);
    assert_true(sa.commits <= WRITERS * PER_WRITER); /* requests may share a commit */
    uint32_t h, ev, total = 0;
    for (int k = 0; k < WRITERS; k++)
        for (int j = 0; j < 7; j++) {
            char u[32];
            snprintf(u, sizeof u, "w%d-%d", k, j);
            assert_true(dr__srv_user_info(s, u, &h, &ev));
            total += ev;
        }
    assert_int_equal(total, WRITERS * PER_WRITER);
    dr__srv_close(s);
    /* everything acknowledged is there after a restart */
    assert_ok(dr__srv_open(m, &p, &s, &e_));
    dr__srv_get_stats(s, &sa);
    assert_int_equal(sa.events_total, WRITERS * PER_WRITER);
    dr__srv_close(s);
    dr_model_free(m);
    dr_test_rmrf(dir);
}

/* ---- routes */

static const char *no_args(void *ud, const char *name) {
    (void)ud;
    (void)name;
    return NULL;
}

static const char *k_arg(void *ud, const char *name) { return !strcmp(name, "k") ? ud : NULL; }

static int call(dr_routes *r, dr_routes_worker *w, const char *method, const char *path,
                const char *auth, const char *body, const char *k, dr_route_resp *resp) {
    dr_route_req rq = {method, path, k ? k_arg : no_args, (void *)k, auth, body, body ? strlen(body) : 0, NULL};
    dr__routes_handle(r, w, &rq, resp);
    return resp->status;
}

#define EXPECT(code, needle, ...)                                                  \
    do {                                                                           \
        dr_route_resp rs_;                                                          \
        int c_ = call(r, w, __VA_ARGS__, &rs_);                                    \
        if (c_ != (code) || !strstr(rs_.body, needle))                             \
            fail_msg("got %d %.*s, want %d with '%s'", c_, (int)rs_.len, rs_.body, \
                     code, needle);                                                \
    } while (0)

static void test_routes(void **st) {
    (void)st;
    char dir[256];
    dr_test_tmpdir(dir, sizeof dir);
    dr_model *m = make_model(dir);
    dr_srv_params p = params(dir);
    dr_srv *s = NULL;
    assert_ok(dr__srv_open(m, &p, &s, &e_));
    dr_routes_params rp = {"sekret", 1, 4096, NULL, 0, NULL, NULL};
    dr_routes *r = NULL;
    dr_routes_worker *w = NULL;
    assert_ok(dr__routes_create(s, &rp, &r, &e_));
    assert_ok(dr__routes_worker_create(r, &w, &e_));
    const char *ok = "Bearer sekret";
    EXPECT(200, "\"ok\"", "GET", "/healthz", NULL, NULL, NULL);
    EXPECT(401, "API key", "POST", "/v1/events", NULL, "{}", NULL);
    EXPECT(401, "API key", "POST", "/v1/events", "Bearer sekreT", "{}", NULL);
    EXPECT(401, "API key", "POST", "/v1/events", "Bearer sekret2", "{}", NULL);
    EXPECT(404, "no such route", "GET", "/v2/x", NULL, NULL, NULL);
    EXPECT(404, "no such route", "GET", "/v1//recommendations", NULL, NULL, NULL);
    EXPECT(405, "not allowed", "GET", "/v1/events", ok, NULL, NULL);
    EXPECT(400, "invalid JSON", "POST", "/v1/events", ok, "{\"user\":", NULL);
    EXPECT(400, "body: empty", "POST", "/v1/events", ok, "", NULL);
    EXPECT(400, "event.user: missing", "POST", "/v1/events", ok, "{\"item\":\"i1\"}", NULL);
    EXPECT(400, "event.item: expected a string", "POST", "/v1/events", ok, "{\"user\":\"u1\",\"item\":3}", NULL);
    EXPECT(400, "events[1].time: expected an integer", "POST", "/v1/events", ok,
           "{\"events\":[{\"user\":\"u1\",\"item\":\"i1\"},{\"user\":\"u1\",\"item\":\"i1\",\"time\":1.5}]}", NULL);
    EXPECT(400, "invalid JSON", "POST", "/v1/events", ok, "{\"user\":\"\xff\",\"item\":\"i1\"}", NULL);
    EXPECT(400, "control character", "POST", "/v1/events", ok, "{\"user\":\"a\\u0001\",\"item\":\"i1\"}", NULL);
    EXPECT(400, "events: empty batch", "POST", "/v1/events", ok, "[]", NULL);
    EXPECT(200, "\"accepted\":2", "POST", "/v1/events", ok,
           "[{\"user\":\"u1\",\"item\":\"i2\",\"time\":10},{\"user\":\"zz\",\"item\":\"i3\"}]", NULL);
    EXPECT(200, "\"events\":1", "GET", "/v1/users/zz", NULL, NULL, NULL);
    EXPECT(404, "unknown", "GET", "/v1/users/qq", NULL, NULL, NULL);
    EXPECT(400, "k: must be", "GET", "/v1/users/u1/recommendations", NULL, NULL, "1000000");
    EXPECT(400, "k: must be", "GET", "/v1/users/u1/recommendations", NULL, NULL, "-3");
    EXPECT(200, "\"source\":\"adapter\"", "GET", "/v1/users/u1/recommendations", NULL, NULL, "5");
    EXPECT(200, "\"source\":\"popular\"", "GET", "/v1/users/nobody/recommendations", NULL, NULL, NULL);
    EXPECT(400, "user: invalid UTF-8", "GET", "/v1/users/\xc3/recommendations", NULL, NULL, NULL);
    EXPECT(501, "explanations are not available", "GET", "/v1/users/u1/items/i3/explanation", NULL, NULL, NULL);
    EXPECT(400, "features.img[1]: expected a finite number", "PUT", "/v1/items/n1", ok,
           "{\"features\":{\"img\":[1,\"NaN\"]}}", NULL);
    EXPECT(400, "unknown field", "PUT", "/v1/items/n1", ok, "{\"titel\":\"x\"}", NULL);
    EXPECT(400, "title: expected a string", "PUT", "/v1/items/n1", ok, "{\"title\":[1]}", NULL);
    EXPECT(201, "\"created\":true", "PUT", "/v1/items/n1", ok,
           "{\"title\":\"N1\",\"attributes\":{\"genre\":\"Drama\"},\"features\":{\"img\":[0.5,1]}}", NULL);
    EXPECT(200, "\"created\":false", "PUT", "/v1/items/n1", ok, "{\"title\":\"N1b\"}", NULL);
    EXPECT(200, "\"title\":\"N1b\"", "GET", "/v1/items/n1", NULL, NULL, NULL);
    uint64_t a0 = dr__alloc_count(); /* GET recommendations: no allocation after warm-up */
    for (int k = 0; k < 5; k++) EXPECT(200, "\"items\":[{", "GET", "/v1/users/u1/recommendations", NULL, NULL, "5");
    assert_int_equal(dr__alloc_count() - a0, 0);
    EXPECT(200, "dynrec_events_total 2", "GET", "/metrics", NULL, NULL, NULL);
    EXPECT(200, "dynrec_http_unauthorized_total 3", "GET", "/metrics", NULL, NULL, NULL);
    dr_route_resp rs;
    dr__routes_reject(r, w, 413, "body: larger than 4096 bytes", &rs);
    assert_int_equal(rs.status, 413);
    dr__routes_worker_free(w);
    dr__routes_free(r);
    /* with the model: template explanations of the checkpoint's users and items */
    rp.model = m;
    assert_ok(dr__routes_create(s, &rp, &r, &e_));
    assert_ok(dr__routes_worker_create(r, &w, &e_));
    EXPECT(200, "\"evidence\":[{\"id\":\"E1\"", "GET", "/v1/users/u1/items/i3/explanation", NULL, NULL, NULL);
    EXPECT(200, "\"verified\":true", "GET", "/v1/users/u1/items/i3/explanation", NULL, NULL, NULL);
    EXPECT(404, "item: unknown", "GET", "/v1/users/u1/items/nope/explanation", NULL, NULL, NULL);
    EXPECT(404, "training data", "GET", "/v1/users/u1/items/n1/explanation", NULL, NULL, NULL);
    EXPECT(404, "training data", "GET", "/v1/users/zz/items/i3/explanation", NULL, NULL, NULL);
    dr__routes_worker_free(w);
    dr__routes_free(r);
    dr__srv_close(s);
    dr_model_free(m);
    dr_test_rmrf(dir);
}

/* ---- the log: idempotency, waiting for a position, the state hash */

/* A retried request (same event_id / same key) gets the original's record numbers and
 * position and is applied once; a PUT with a key likewise; capacity is still refused before
 * anything is logged. */
static void test_idempotent_retry(void **st) {
    (void)st;
    char dir[256];
    dr_test_tmpdir(dir, sizeof dir);
    dr_model *m = make_model(dir);
    dr_srv_params p = params(dir);
    dr_srv *s = NULL;
    assert_ok(dr__srv_open(m, &p, &s, &e_));
    post(s, "u1", "i1", 100);
    dr_srv_event ev[2] = {{"u2", "i2", 101, 1, "e:a"}, {"u2", "i3", 102, 1, "e:b"}};
    dr_srv_ack a1, a2;
    assert_ok(dr__srv_submit(s, ev, 2, &a1, &e_));
    assert_int_equal(a1.first_seq, 2);
    assert_int_equal(a1.last_seq, 3);
    assert_string_equal(a1.stream_id, "0-3");
    post(s, "u3", "i4", 103);
    assert_ok(dr__srv_submit(s, ev, 2, &a2, &e_)); /* the retry */
    assert_int_equal(a2.first_seq, 2);
    assert_int_equal(a2.last_seq, 3);
    assert_string_equal(a2.stream_id, "0-3");
    uint32_t h, n;
    assert_true(dr__srv_user_info(s, "u2", &h, &n));
    assert_int_equal(n, 2); /* applied once */
    dr_srv_stats ss;
    dr__srv_get_stats(s, &ss);
    assert_int_equal(ss.events_total, 4);
    assert_int_equal(ss.log_records, 4);
    /* half new, half retried: the new one is appended, the old one answers its number */
    dr_srv_event mix[2] = {{"u2", "i5", 104, 1, "e:c"}, {"u2", "i3", 102, 1, "e:b"}};
    assert_ok(dr__srv_submit(s, mix, 2, &a2, &e_));
    assert_int_equal(a2.first_seq, 5);
    assert_int_equal(a2.last_seq, 3);
    /* PUT with a key */
    const char *body = "{\"title\":\"K\",\"attributes\":[],\"features\":{}}";
    assert_ok(dr__srv_put_item(s, "k1", body, "r:key1:0", &a1, &e_));
    assert_true(a1.created);
    assert_ok(dr__srv_put_item(s, "k1", body, "r:key1:0", &a2, &e_));
    assert_true(a2.created); /* the original's answer */
    assert_int_equal(a2.first_seq, a1.first_seq);
    dr__srv_get_stats(s, &ss);
    assert_int_equal(ss.log_records, 6);
    /* through the routes: event_id in the body, Idempotency-Key header */
    dr_routes_params rp = {NULL, 0, 4096, NULL, 0, NULL, NULL};
    dr_routes *r = NULL;
    dr_routes_worker *w = NULL;
    assert_ok(dr__routes_create(s, &rp, &r, &e_));
    assert_ok(dr__routes_worker_create(r, &w, &e_));
    const char *evb = "[{\"user\":\"u9\",\"item\":\"i9\",\"time\":200},{\"user\":\"u9\",\"item\":\"i8\",\"time\":201,\"event_id\":\"x\"}]";
    dr_route_req rq = {"POST", "/v1/events", no_args, NULL, NULL, evb, strlen(evb), "req-1"};
    dr_route_resp rs;
    dr__routes_handle(r, w, &rq, &rs);
    assert_int_equal(rs.status, 200);
    char first[256];
    snprintf(first, sizeof first, "%.*s", (int)rs.len, rs.body);
    assert_non_null(strstr(first, "\"first_seq\":7,\"last_seq\":8,\"stream_id\":\"0-8\",\"events_total\":7}"));
    dr__routes_handle(r, w, &rq, &rs); /* retried: same answer */
    assert_int_equal(rs.status, 200);
    assert_int_equal(rs.len, strlen(first));
    assert_memory_equal(rs.body, first, rs.len);
    assert_true(dr__srv_user_info(s, "u9", &h, &n));
    assert_int_equal(n, 2);
    rq.idem_key = "bad\x01key";
    dr__routes_handle(r, w, &rq, &rs);
    assert_int_equal(rs.status, 400);
    assert_non_null(strstr(rs.body, "Idempotency-Key: contains a control character"));
    const char *putb = "{\"title\":\"P\"}";
    dr_route_req pq = {"PUT", "/v1/items/p1", no_args, NULL, NULL, putb, strlen(putb), "put-1"};
    dr__routes_handle(r, w, &pq, &rs);
    assert_int_equal(rs.status, 201);
    assert_non_null(strstr(rs.body, "\"seq\":9,\"stream_id\":\"0-9\"}"));
    dr__routes_handle(r, w, &pq, &rs);
    assert_int_equal(rs.status, 201);
    assert_non_null(strstr(rs.body, "\"seq\":9,\"stream_id\":\"0-9\"}"));
    /* capacity: refused before logging (507), nothing appended */
    dr__srv_get_stats(s, &ss);
    uint64_t recs = ss.log_records;
    char names[32][16];
    dr_srv_event big[32];
    for (int k = 0; k < 32; k++) {
        snprintf(names[k], 16, "cap-%d", k);
        big[k] = (dr_srv_event){"u1", names[k], 900, 1, NULL};
    }
    dr_error e = {0};
    assert_int_equal(dr__srv_submit(s, big, 32, NULL, &e), DR_LIMIT);
    dr__srv_get_stats(s, &ss);
    assert_int_equal(ss.log_records, recs);
    assert_int_equal(ss.lag_records, 0);
    dr__routes_worker_free(w);
    dr__routes_free(r);
    dr__srv_close(s);
    /* a restart remembers the keys */
    assert_ok(dr__srv_open(m, &p, &s, &e_));
    assert_ok(dr__srv_submit(s, ev, 2, &a2, &e_));
    assert_int_equal(a2.first_seq, 2);
    assert_int_equal(a2.last_seq, 3);
    dr__srv_get_stats(s, &ss);
    assert_int_equal(ss.log_records, recs);
    dr__srv_close(s);
    dr_model_free(m);
    dr_test_rmrf(dir);
}

static const char *after_args(void *ud, const char *name) {
    const char *const *kv = ud;
    for (int k = 0; kv[k]; k += 2)
        if (!strcmp(kv[k], name)) return kv[k + 1];
    return NULL;
}

/* ?after= answers at once when applied, waits (bounded by wait_ms) and 504s when not. */
static void test_after_waits(void **st) {
    (void)st;
    char dir[256];
    dr_test_tmpdir(dir, sizeof dir);
    dr_model *m = make_model(dir);
    dr_srv_params p = params(dir);
    dr_srv *s = NULL;
    assert_ok(dr__srv_open(m, &p, &s, &e_));
    feed(s, 0, 5);
    dr_log_pos have;
    assert_true(dr__srv_wait_applied(s, (dr_log_pos){0, 5}, 0, &have));
    assert_int_equal(have.seq, 5);
    double t0 = dr__now_seconds();
    assert_false(dr__srv_wait_applied(s, (dr_log_pos){0, 6}, 150, &have));
    assert_true(dr__now_seconds() - t0 >= 0.14);
    dr_routes_params rp = {NULL, 0, 4096, NULL, 0, NULL, NULL};
    dr_routes *r = NULL;
    dr_routes_worker *w = NULL;
    assert_ok(dr__routes_create(s, &rp, &r, &e_));
    assert_ok(dr__routes_worker_create(r, &w, &e_));
    const char *ok[] = {"after", "0-5", NULL};
    const char *behind[] = {"after", "7", "wait_ms", "50", NULL};
    const char *bad[] = {"after", "x-y", NULL};
    const char *badw[] = {"after", "1", "wait_ms", "10001", NULL};
    const char *path = "/v1/users/u1/recommendations";
    dr_route_req rq = {"GET", path, after_args, (void *)ok, NULL, NULL, 0, NULL};
    dr_route_resp rs;
    dr__routes_handle(r, w, &rq, &rs);
    assert_int_equal(rs.status, 200);
    rq.arg_ud = (void *)behind;
    dr__routes_handle(r, w, &rq, &rs);
    assert_int_equal(rs.status, 504);
    assert_non_null(strstr(rs.body, "replica is behind: applied 0-5, asked 0-7"));
    rq.arg_ud = (void *)bad;
    dr__routes_handle(r, w, &rq, &rs);
    assert_int_equal(rs.status, 400);
    rq.arg_ud = (void *)badw;
    dr__routes_handle(r, w, &rq, &rs);
    assert_int_equal(rs.status, 400);
    assert_non_null(strstr(rs.body, "wait_ms"));
    dr_route_req mq = {"GET", "/metrics", no_args, NULL, NULL, NULL, 0, NULL};
    dr__routes_handle(r, w, &mq, &rs);
    assert_non_null(strstr(rs.body, "dynrec_http_requests_total{route=\"recommendations\",code=\"504\"} 1"));
    assert_non_null(strstr(rs.body, "dynrec_apply_lag_records 0"));
    assert_non_null(strstr(rs.body, "dynrec_log_errors_total 0"));
    assert_non_null(strstr(rs.body, "dynrec_log_reconnects_total 0"));
    dr__routes_worker_free(w);
    dr__routes_free(r);
    dr__srv_close(s);
    dr_model_free(m);
    dr_test_rmrf(dir);
}

static void get_state_json(dr_srv *s, char *out, size_t cap) {
    dr_routes_params rp = {NULL, 0, 4096, NULL, 0, NULL, NULL};
    dr_routes *r = NULL;
    dr_routes_worker *w = NULL;
    assert_ok(dr__routes_create(s, &rp, &r, &e_));
    assert_ok(dr__routes_worker_create(r, &w, &e_));
    dr_route_req rq = {"GET", "/v1/state", no_args, NULL, NULL, NULL, 0, NULL};
    dr_route_resp rs;
    dr__routes_handle(r, w, &rq, &rs);
    assert_int_equal(rs.status, 200);
    snprintf(out, cap, "%.*s", (int)rs.len, rs.body);
    dr__routes_worker_free(w);
    dr__routes_free(r);
}

/* /v1/state: the same for a server reopened on a copy of the folder (snapshot + log) and on a
 * copy without snapshots (the whole log replayed); different once the state moves on. */
static void test_state_hash(void **st) {
    (void)st;
    char dir[256], cmd[1200];
    dr_test_tmpdir(dir, sizeof dir);
    dr_model *m = make_model(dir);
    dr_srv_params p = params(dir);
    p.snapshot_every = 40;
    p.final_snapshot = 0;
    dr_srv *s = NULL;
    assert_ok(dr__srv_open(m, &p, &s, &e_));
    feed(s, 0, 90);
    assert_ok(dr__srv_put_item(s, "fresh-9", "{\"title\":\"Nine\",\"attributes\":[],\"features\":{}}", NULL, NULL, &e_));
    feed(s, 90, 120);
    char a[256], b[256], c[256];
    get_state_json(s, a, sizeof a);
    assert_non_null(strstr(a, "{\"last_id\":\"0-121\",\"records\":121,\"state_hash\":\""));
    assert_int_equal(strlen(a), strlen("{\"last_id\":\"0-121\",\"records\":121,\"state_hash\":\"\"}") + 16);
    dr__srv_close(s);
    snprintf(cmd, sizeof cmd, "cp -r '%s/state' '%s/copy' && cp -r '%s/state' '%s/bare' && rm -f '%s'/bare/adapter-*.state",
             dir, dir, dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    char copy[600], bare[600];
    snprintf(copy, sizeof copy, "%s/copy", dir);
    snprintf(bare, sizeof bare, "%s/bare", dir);
    dr_srv_params pc = p, pb = p;
    pc.data_dir = copy;
    pb.data_dir = bare;
    assert_ok(dr__srv_open(m, &pc, &s, &e_));
    dr_srv_stats ss;
    dr__srv_get_stats(s, &ss);
    assert_true(ss.recovered_events < 120); /* from a snapshot */
    get_state_json(s, b, sizeof b);
    assert_string_equal(a, b);
    post(s, "u1", "i2", 5000);
    get_state_json(s, c, sizeof c);
    assert_string_not_equal(a, c);
    dr__srv_close(s);
    assert_ok(dr__srv_open(m, &pb, &s, &e_));
    dr__srv_get_stats(s, &ss);
    assert_int_equal(ss.recovered_events, 120); /* the whole log */
    get_state_json(s, b, sizeof b);
    assert_string_equal(a, b);
    dr__srv_close(s);
    dr_model_free(m);
    dr_test_rmrf(dir);
}

/* Records another writer appended (a second replica: here a second handle on the folder's
 * log, which skips the server's capacity check) are applied like the server's own, found
 * within the read wait; those that find no room left are skipped and counted, the same at
 * replay. */
static void test_foreign_records_and_apply_capacity(void **st) {
    (void)st;
    char dir[256];
    dr_test_tmpdir(dir, sizeof dir);
    dr_model *m = make_model(dir);
    dr_srv_params p = params(dir); /* 20 new items */
    dr_srv *s = NULL;
    assert_ok(dr__srv_open(m, &p, &s, &e_));
    post(s, "u1", "i1", 100);
    dr_log_params lp = dr__log_default_params();
    lp.dir = p.data_dir;
    lp.durable = 0;
    dr_log *lg = NULL;
    assert_ok(dr__log_open(&lp, &lg, &e_));
    dr_log_rec recs[25];
    char names[25][16];
    for (int k = 0; k < 25; k++) {
        snprintf(names[k], 16, "other-%d", k);
        recs[k] = (dr_log_rec){{0, 0}, DR_REC_EVENT, "u2", names[k], 200 + k, NULL, NULL};
    }
    assert_ok(lg->vt->append(lg, recs, 25, NULL, &e_));
    dr_log_pos have;
    assert_true(dr__srv_wait_applied(s, recs[24].pos, 5000, &have));
    dr_srv_stats ss;
    dr__srv_get_stats(s, &ss);
    assert_int_equal(ss.new_items, 20);
    assert_int_equal(ss.skipped, 5);
    assert_int_equal(ss.log_records, 26);
    assert_int_equal(ss.events_total, 21);
    uint32_t h, n;
    assert_true(dr__srv_user_info(s, "u2", &h, &n));
    assert_int_equal(n, 20);
    assert_int_equal(dr__srv_find_item(s, "other-20"), UINT32_MAX);
    /* the server's own write after them still refuses before logging */
    dr_srv_event ev = {"u3", "one-more", 300, 1, NULL};
    dr_error e = {0};
    assert_int_equal(dr__srv_submit(s, &ev, 1, NULL, &e), DR_LIMIT);
    char a[256], b[256];
    get_state_json(s, a, sizeof a);
    dr__log_close(lg);
    dr__srv_close(s);
    assert_ok(dr__srv_open(m, &p, &s, &e_));
    dr__srv_get_stats(s, &ss);
    assert_int_equal(ss.skipped, 5);
    assert_int_equal(ss.log_records, 26);
    get_state_json(s, b, sizeof b);
    assert_string_equal(a, b);
    dr__srv_close(s);
    dr_model_free(m);
    dr_test_rmrf(dir);
}

/* ---- a fleet on a Redis stream (skipped without redis-server) */


/* Two replicas on one stream: each applies the other's writes (?after= on the other replica
 * reads a write), an idempotency key holds across replicas, the two reach the same /v1/state,
 * and so does a third replica started later from an empty folder (it replays the stream).
 * Redis killed: a write gets DR_IO (503) with nothing applied, reads keep answering, the apply
 * thread counts the errors and resumes when Redis is back. */
static void test_fleet_redis(void **st) {
    (void)st;
    if (!redis_installed()) {
        printf("SKIP: redis-server not found, the fleet on a Redis stream is not tested\n");
        return;
    }
    signal(SIGPIPE, SIG_IGN); /* as `dynrec serve` does: a write to a dead Redis is an error */
    char dir[256];
    dr_test_tmpdir(dir, sizeof dir);
    dr_model *m = make_model(dir);
    redis_srv rp = {0};
    snprintf(rp.dir, sizeof rp.dir, "%s", dir);
    snprintf(rp.sock, sizeof rp.sock, "%s/r.sock", dir);
    assert_int_equal(redis_start(&rp), 0);
    char spec[700], da[600], db[600], dc[600];
    snprintf(spec, sizeof spec, "redis+unix://%s?stream=fleet", rp.sock);
    snprintf(da, sizeof da, "%s/a", dir);
    snprintf(db, sizeof db, "%s/b", dir);
    snprintf(dc, sizeof dc, "%s/c", dir);
    dr_srv_params pa = params(dir), pb, pc;
    pa.log = spec;
    pa.snapshot_every = 30;
    pb = pc = pa;
    pa.data_dir = da;
    pb.data_dir = db;
    pc.data_dir = dc;
    dr_srv *a = NULL, *b = NULL, *c = NULL;
    assert_ok(dr__srv_open(m, &pa, &a, &e_));
    assert_ok(dr__srv_open(m, &pb, &b, &e_));
    feed(a, 0, 40);
    feed(b, 40, 70);
    dr_srv_event ev = {"u5", "i7", 5000, 1, "e:shared"};
    dr_srv_ack ka, kb;
    assert_ok(dr__srv_submit(a, &ev, 1, &ka, &e_));
    dr_log_pos pos, have;
    assert_int_equal(dr__log_pos_parse(ka.stream_id, &pos), 0);
    assert_true(dr__srv_wait_applied(b, pos, 5000, &have));
    assert_ok(dr__srv_submit(b, &ev, 1, &kb, &e_)); /* the same event through the other replica */
    assert_int_equal(kb.first_seq, ka.first_seq);
    assert_string_equal(kb.stream_id, ka.stream_id);
    assert_ok(dr__srv_put_item(b, "fresh-9", "{\"title\":\"Nine\",\"attributes\":[],\"features\":{}}", NULL, &kb, &e_));
    assert_int_equal(dr__log_pos_parse(kb.stream_id, &pos), 0);
    assert_true(dr__srv_wait_applied(a, pos, 5000, &have));
    uint32_t h, n;
    assert_true(dr__srv_user_info(a, "u5", &h, &n));
    uint32_t n_b;
    assert_true(dr__srv_user_info(b, "u5", &h, &n_b));
    assert_int_equal(n, n_b);
    char sa[256], sb[256], sc[256];
    get_state_json(a, sa, sizeof sa);
    get_state_json(b, sb, sizeof sb);
    assert_string_equal(sa, sb);
    assert_non_null(strstr(sa, "\"records\":72"));
    /* a new replica replays the stream */
    assert_ok(dr__srv_open(m, &pc, &c, &e_));
    get_state_json(c, sc, sizeof sc);
    assert_string_equal(sa, sc);
    dr__srv_close(c);
    /* Redis down: writes refused with nothing applied, reads answer */
    redis_stop(&rp, SIGKILL);
    dr_srv_stats s0, s1;
    dr__srv_get_stats(a, &s0);
    dr_error e = {0};
    dr_srv_event ev2 = {"u6", "i8", 6000, 1, NULL};
    assert_int_equal(dr__srv_submit(a, &ev2, 1, NULL, &e), DR_IO);
    assert_true(e.msg[0] != 0);
    dr_srv_worker *w = NULL;
    assert_ok(dr__srv_worker_create(a, &w, &e_));
    answer ans;
    ask(a, w, "u5", &ans);
    assert_true(ans.n > 0);
    usleep(400000); /* the apply thread's reads fail meanwhile */
    dr__srv_get_stats(a, &s1);
    assert_int_equal(s1.log_records, s0.log_records);
    assert_true(s1.log_errors > s0.log_errors);
    assert_int_equal(redis_start(&rp), 0);
    dr_srv_ack k2;
    assert_ok(dr__srv_submit(a, &ev2, 1, &k2, &e_));
    assert_int_equal(k2.first_seq, 73);
    dr__srv_get_stats(a, &s1);
    assert_true(s1.log_reconnects >= 1);
    assert_int_equal(dr__log_pos_parse(k2.stream_id, &pos), 0);
    assert_true(dr__srv_wait_applied(b, pos, 5000, &have));
    get_state_json(a, sa, sizeof sa);
    get_state_json(b, sb, sizeof sb);
    assert_string_equal(sa, sb);
    dr__srv_worker_free(w);
    dr__srv_close(a);
    dr__srv_close(b);
    redis_stop(&rp, SIGKILL);
    dr_model_free(m);
    dr_test_rmrf(dir);
}

/* ---- features through the checkpoint's fusion */

/* rank (0 = first) of item i in the user's whole ranking, -1 when absent */
static int rank_of(dr_srv *s, dr_srv_worker *w, const char *user, uint32_t i, float *score) {
    dr_srv_recs r;
    assert_ok(dr__srv_recommend(s, w, user, DR_SRV_K_MAX, &r, &e_));
    for (uint32_t k = 0; k < r.n; k++)
        if (r.items[k] == i) {
            *score = r.scores[k];
            return (int)k;
        }
    return -1;
}

/* {"title":..., "features":{visual, text}} of dataset item i (present in both) */
static char *features_body(const dr_dataset *ds, uint32_t i) {
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    n += (size_t)snprintf(b + n, cap - n, "{\"title\":\"clone\",\"features\":{");
    for (int m = 0, first = 1; m < dr_dataset_n_modalities(ds); m++) {
        const char *name;
        uint32_t dim;
        const float *x;
        const uint8_t *pr;
        assert_ok(dr_dataset_modality(ds, m, &name, &dim, &x, &pr));
        if (strcmp(name, "visual") && strcmp(name, "text")) continue;
        n += (size_t)snprintf(b + n, cap - n, "%s\"%s\":[", first ? "" : ",", name);
        for (uint32_t k = 0; k < dim; k++)
            n += (size_t)snprintf(b + n, cap - n, "%s%.9g", k ? "," : "", (double)x[(size_t)i * dim + k]);
        n += (size_t)snprintf(b + n, cap - n, "]");
        first = 0;
    }
    snprintf(b + n, cap - n, "}}");
    return b;
}

static int has_features(const dr_dataset *ds, uint32_t i) {
    int ok = 1;
    for (int m = 0; m < dr_dataset_n_modalities(ds); m++) {
        const char *name;
        uint32_t dim;
        const float *x;
        const uint8_t *pr;
        assert_ok(dr_dataset_modality(ds, m, &name, &dim, &x, &pr));
        if (!strcmp(name, "visual") || !strcmp(name, "text")) ok &= pr[i] != 0;
    }
    return ok;
}

/* A fused checkpoint: a new item PUT with the features of the item a user ranks first enters
 * that user's top 10 at once (the same item without features is cold and ranks low); the same
 * answers after restarts from the log alone and from a snapshot; features the fusion cannot
 * take are refused with 400 and nothing is logged. */
static void test_put_features_fusion(void **st) {
    (void)st;
    char dir[256], cmd[1024];
    dr_test_tmpdir(dir, sizeof dir);
    dr_dataset *ds = NULL;
    dr_model *m = make_model_ex(dir, "visual,text", &ds);
    dr_srv_params p = params(dir);
    p.final_snapshot = 0;
    dr_srv *s = NULL;
    assert_ok(dr__srv_open(m, &p, &s, &e_));
    assert_true(dr__srv_fuses(s));
    dr_srv_worker *w = NULL;
    assert_ok(dr__srv_worker_create(s, &w, &e_));
    const char *user = "u3";
    dr_srv_recs r;
    assert_ok(dr__srv_recommend(s, w, user, 10, &r, &e_));
    uint32_t top = UINT32_MAX;
    for (uint32_t k = 0; k < r.n && top == UINT32_MAX; k++)
        if (has_features(ds, r.items[k])) top = r.items[k];
    assert_true(top != UINT32_MAX);
    /* events of "late" (created cold) before its features arrive: pairs in the window move */
    post(s, "u5", "late", 2000);
    post(s, "u5", "i1", 2001);
    post(s, "u6", "late", 2002);
    char *body = features_body(ds, top);
    dr_srv_ack ack;
    assert_ok(dr__srv_put_item(s, "clone", body, NULL, &ack, &e_));
    assert_true(ack.created);
    assert_ok(dr__srv_put_item(s, "blank", "{\"title\":\"blank\",\"attributes\":[],\"features\":{}}", NULL, &ack, &e_));
    assert_ok(dr__srv_put_item(s, "late", body, NULL, &ack, &e_));
    post(s, "u7", "clone", 2003);
    { /* the dashboard's view (GET /v1/items/{i}?detail=1): both modalities present, gates open
       * part way; a PUT without features has none computed; the checkpoint's item had features
       * in training */
        const char *names[4];
        int present[4], trained;
        float gates[4];
        uint32_t nm = dr__srv_item_fusion(s, dr__srv_find_item(s, "clone"), names, present, gates, 4, &trained);
        assert_int_equal(nm, 2);
        for (uint32_t k = 0; k < nm; k++) {
            assert_true(present[k]);
            assert_true(gates[k] > 0 && gates[k] < 1);
        }
        assert_false(trained);
        nm = dr__srv_item_fusion(s, dr__srv_find_item(s, "blank"), names, present, gates, 4, &trained);
        assert_int_equal(nm, 2);
        assert_true(!present[0] && isnan(gates[0]));
        dr__srv_item_fusion(s, top, names, present, gates, 4, &trained);
        assert_true(trained);
    }
    float sc_clone, sc_blank;
    int rc = rank_of(s, w, user, dr__srv_find_item(s, "clone"), &sc_clone);
    int rb = rank_of(s, w, user, dr__srv_find_item(s, "blank"), &sc_blank);
    print_message("fused: item %s ranked first-with-features; clone rank %d (%.4f), blank rank %d (%.4f)\n",
                  dr__srv_item_name(s, top), rc, (double)sc_clone, rb, (double)sc_blank);
    assert_true(rc >= 0 && rc < 10);
    assert_true(rb > rc + 10 && sc_clone > sc_blank + 0.5f);
    answer before[N_ASKED], after[N_ASKED];
    users_asked[4] = "u5";
    ask_all(s, before);
    dr_srv_stats st0;
    dr__srv_get_stats(s, &st0);
    /* refused before logging */
    dr_routes_params rp = {NULL, 0, 1 << 20, NULL, 0, NULL, NULL};
    dr_routes *rt = NULL;
    dr_routes_worker *rw = NULL;
    assert_ok(dr__routes_create(s, &rp, &rt, &e_));
    assert_ok(dr__routes_worker_create(rt, &rw, &e_));
    dr_route_resp rs;
    dr_route_req rq = {"PUT", "/v1/items/bad", no_args, NULL, NULL, "{\"features\":{\"visual\":[1,2,3]}}", 0, NULL};
    rq.body_len = strlen(rq.body);
    dr__routes_handle(rt, rw, &rq, &rs);
    assert_int_equal(rs.status, 400);
    assert_non_null(strstr(rs.body, "features.visual: expected 64 numbers"));
    rq.body = "{\"features\":{\"smell\":[1]}}";
    rq.body_len = strlen(rq.body);
    dr__routes_handle(rt, rw, &rq, &rs);
    assert_int_equal(rs.status, 400);
    assert_non_null(strstr(rs.body, "features.smell: unknown modality (the model fuses visual, text)"));
    rq.body = body;
    rq.body_len = strlen(body);
    rq.path = "/v1/items/clone2";
    dr__routes_handle(rt, rw, &rq, &rs);
    assert_int_equal(rs.status, 201);
    assert_non_null(strstr(rs.body, "\"cold\":false,\"features_stored\":2,\"features_used\":true"));
    dr_srv_stats st1;
    dr__srv_get_stats(s, &st1);
    assert_int_equal(st1.log_records, st0.log_records + 1); /* the good PUT only */
    assert_true(dr__srv_find_item(s, "bad") == UINT32_MAX);
    dr__routes_worker_free(rw);
    dr__routes_free(rt);
    ask_all(s, before);
    dr__srv_worker_free(w);
    dr__srv_close(s);
    /* the whole log replayed, then from the final snapshot */
    for (int pass = 0; pass < 2; pass++) {
        p.final_snapshot = 1;
        assert_ok(dr__srv_open(m, &p, &s, &e_));
        dr_srv_stats sr;
        dr__srv_get_stats(s, &sr);
        assert_int_equal(sr.recovered_events, pass ? 0 : 4);
        ask_all(s, after);
        dr__srv_close(s);
        for (int k = 0; k < N_ASKED; k++) assert_true(same(&before[k], &after[k]));
    }
    users_asked[4] = "nobody";
    snprintf(cmd, sizeof cmd, "ls %s/state/*.state > /dev/null", dir);
    assert_int_equal(system(cmd), 0);
    free(body);
    dr_model_free(m);
    dr_dataset_free(ds);
    dr_test_rmrf(dir);
}

/* ---- out of memory in every constructor */

typedef struct srv_oom {
    const dr_model *m;
    dr_srv_params p;
    const char *rm;     /* removed after each open (a fresh folder every time) */
    dr_srv *s;          /* opened by the call, or borrowed by the worker and routes calls */
    dr_srv_worker *w;
    dr_routes *r;
    dr_routes_worker *rw;
    dr_routes_params rp;
} srv_oom;

static dr_status srv_open(void *ud, dr_error *err) {
    srv_oom *u = ud;
    return dr__srv_open(u->m, &u->p, &u->s, err);
}

static void srv_close(void *ud) {
    srv_oom *u = ud;
    dr__srv_close(u->s);
    u->s = NULL;
    if (u->rm) dr_test_rmrf(u->rm);
}

static dr_status srv_worker(void *ud, dr_error *err) {
    srv_oom *u = ud;
    return dr__srv_worker_create(u->s, &u->w, err);
}

DR_OOM_FREE_FN(srv_worker_free, srv_oom, w, dr__srv_worker_free)

static dr_status routes_make(void *ud, dr_error *err) {
    srv_oom *u = ud;
    dr_status st = dr__routes_create(u->s, &u->rp, &u->r, err);
    if (st == DR_OK) st = dr__routes_worker_create(u->r, &u->rw, err);
    return st;
}

static void routes_free(void *ud) {
    srv_oom *u = ud;
    dr__routes_worker_free(u->rw);
    dr__routes_free(u->r);
    u->rw = NULL;
    u->r = NULL;
}

static void test_out_of_memory(void **st) {
    (void)st;
    char dir[256];
    dr_test_tmpdir(dir, sizeof dir);
    srv_oom u = {.m = make_model(dir), .p = params(dir)};
    u.p.final_snapshot = 0;
    u.rm = u.p.data_dir;
    dr_oom_case c = {.name = "dr__srv_open (new folder)", .call = srv_open, .cleanup = srv_close,
                     .ud = &u, .out = (void **)&u.s};
    assert_true(dr_oom_check(&c) > 0);
    /* a folder with snapshots, a log tail after the newest and an item record */
    u.rm = NULL;
    u.p.snapshot_every = 25;
    assert_ok(dr__srv_open(u.m, &u.p, &u.s, &e_));
    feed(u.s, 0, 60);
    assert_ok(dr__srv_put_item(u.s, "fresh-9",
                              "{\"title\":\"Nine\",\"attributes\":[],\"features\":{}}", NULL, NULL, &e_));
    feed(u.s, 60, 70);
    dr__srv_close(u.s);
    u.s = NULL;
    c.name = "dr__srv_open (snapshot + log)";
    assert_true(dr_oom_check(&c) > 0);
    assert_ok(dr__srv_open(u.m, &u.p, &u.s, &e_));
    dr_srv_stats ss;
    dr__srv_get_stats(u.s, &ss);
    assert_true(ss.recovered_events > 0 && ss.recovered_events < 70);
    c = (dr_oom_case){.name = "dr__srv_worker_create", .call = srv_worker,
                      .cleanup = srv_worker_free, .ud = &u, .out = (void **)&u.w};
    assert_true(dr_oom_check(&c) > 0);
    u.rp = (dr_routes_params){"sekret", 1, 4096, u.m, 0, NULL, NULL};
    c = (dr_oom_case){.name = "dr__routes_create + dr__routes_worker_create", .call = routes_make,
                      .cleanup = routes_free, .ud = &u};
    assert_true(dr_oom_check(&c) > 0);
    dr__srv_close(u.s);
    u.s = NULL;
    /* with the index of two-stage retrieval (ann.c) beside the checkpoint */
    char mpath[600], hash[17];
    snprintf(mpath, sizeof mpath, "%s/m.drm", dir);
    dr_index_params ip = dr_index_default_params();
    ip.model_path = mpath;
    dr_index_result ir;
    assert_ok(dr_index_build(&ip, &ir, &e_));
    assert_ok(dr__ckpt_file_hash(mpath, hash, &e_));
    assert_string_equal(hash, ir.hash);
    u.p.model_path = mpath;
    u.p.model_hash = hash;
    u.p.ann = 1;
    u.p.snapshot_every = 0;
    u.rm = u.p.data_dir;
    dr_test_rmrf(u.p.data_dir);
    c = (dr_oom_case){.name = "dr__srv_open (with the index)", .call = srv_open, .cleanup = srv_close,
                      .ud = &u, .out = (void **)&u.s};
    assert_true(dr_oom_check(&c) > 0);
    assert_ok(dr__srv_open(u.m, &u.p, &u.s, &e_));
    c = (dr_oom_case){.name = "dr__srv_worker_create (with the index)", .call = srv_worker,
                      .cleanup = srv_worker_free, .ud = &u, .out = (void **)&u.w};
    assert_true(dr_oom_check(&c) > 0);
    dr__srv_close(u.s);
    dr_model_free((dr_model *)u.m);
    dr_test_rmrf(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events_popular_and_new_items),
        cmocka_unit_test(test_frozen),
        cmocka_unit_test(test_restart_same_state),
        cmocka_unit_test(test_concurrent_writers_and_readers),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_put_features_fusion),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_idempotent_retry),
        cmocka_unit_test(test_after_waits),
        cmocka_unit_test(test_state_hash),
        cmocka_unit_test(test_foreign_records_and_apply_capacity),
        cmocka_unit_test(test_fleet_redis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
