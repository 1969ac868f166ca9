/* test_log.c - the event log interface (serve_log.h), the same cases on each kind: append and
 * read in order with positions, read after a position, a blocking read woken by an append
 * from another thread and by wake, idempotency keys (duplicates, distinct keys, expiry), tip,
 * a malformed spec. The redis kind runs against a real redis-server that the test starts
 * itself (AOF with appendfsync always) and kills and restarts on the same socket to check
 * that a side reconnects and that nothing acknowledged was lost; without redis-server those
 * cases print SKIP and pass. A server that is not there is DR_IO naming its address.
 * dr__log_open of the sqlite kind is under the OOM check. */
#include "testutil.h"
#include "oom.h"
#include "sqlmem.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "redis_fixture.h"
#include "serve_log.h"

/* ---- a redis-server of our own: redis_fixture.h */

/* ---- one kind under test */

typedef struct kind_env {
    const char *kind; /* "sqlite" | "redis" */
    char dir[256];
    char spec[400];
    redis_srv srv;
    dr_log *log;
} kind_env;

static kind_env env_sqlite = {.kind = "sqlite"};
static kind_env env_redis = {.kind = "redis"};

static dr_log_params params_of(const kind_env *e) {
    dr_log_params p = dr__log_default_params();
    p.spec = e->spec;
    p.dir = e->dir;
    p.durable = 0;
    p.timeout_ms = 1000;
    return p;
}

static dr_log *open_log(const kind_env *e, uint32_t ttl) {
    dr_log_params p = params_of(e);
    if (ttl) p.dedup_ttl = ttl;
    dr_log *l = NULL;
    assert_ok(dr__log_open(&p, &l, &e_));
    assert_string_equal(dr__log_kind(l)->name, e->kind);
    return l;
}

static int setup(void **state) {
    kind_env *e = *state;
    dr_test_tmpdir(e->dir, sizeof e->dir);
    if (strcmp(e->kind, "sqlite") == 0) {
        snprintf(e->spec, sizeof e->spec, "sqlite");
    } else {
        if (!redis_installed()) {
            printf("SKIP: redis-server not found, the redis kind of event log is not tested\n");
            fflush(stdout);
            e->spec[0] = 0;
            return 0;
        }
        snprintf(e->srv.dir, sizeof e->srv.dir, "%s", e->dir);
        snprintf(e->srv.sock, sizeof e->srv.sock, "%s/redis.sock", e->dir);
        if (redis_start(&e->srv)) fail_msg("redis-server did not start in %s", e->srv.dir);
        snprintf(e->spec, sizeof e->spec, "redis+unix://%s?stream=test", e->srv.sock);
    }
    e->log = open_log(e, 0);
    return 0;
}

static int teardown(void **state) {
    kind_env *e = *state;
    if (e->log) dr__log_close(e->log);
    e->log = NULL;
    redis_stop(&e->srv, SIGTERM);
    dr_test_rmrf(e->dir);
    return 0;
}

#define KIND_OR_SKIP(e)           \
    kind_env *e = *state;         \
    do {                          \
        if (!e->spec[0]) skip();  \
    } while (0)

static dr_log_rec ev(const char *user, const char *item, int64_t t, const char *key) {
    dr_log_rec r = {.kind = DR_REC_EVENT, .user = user, .item = item, .time = t, .key = key};
    return r;
}

static dr_status append(dr_log *l, dr_log_rec *r, size_t n, uint8_t *dup, dr_error *err) {
    return dr__log_kind(l)->append(l, r, n, dup, err);
}

static dr_status read_log(dr_log *l, dr_log_pos after, size_t cap, int wait_ms, dr_log_rec *out,
                          size_t *n, dr_error *err) {
    return dr__log_kind(l)->read(l, after, cap, wait_ms, out, n, err);
}

static const dr_log_pos origin = {0, 0};

static void test_append_read(void **state) {
    KIND_OR_SKIP(e);
    dr_log_rec r[3] = {ev("u1", "i1", 100, NULL),
                       {.kind = DR_REC_ITEM, .item = "i9", .time = 101, .body = "{\"title\":\"x\"}"},
                       ev("u2", "i9", 99, NULL)};
    uint8_t dup[3] = {9, 9, 9};
    assert_ok(append(e->log, r, 3, dup, &e_));
    assert_true(dr__log_pos_cmp(origin, r[0].pos) < 0);
    assert_true(dr__log_pos_cmp(r[0].pos, r[1].pos) < 0);
    assert_true(dr__log_pos_cmp(r[1].pos, r[2].pos) < 0);
    assert_int_equal(dup[0] + dup[1] + dup[2], 0);
    dr_log_rec r4 = ev("u3", "i1", 5, NULL);
    assert_ok(append(e->log, &r4, 1, NULL, &e_));
    assert_true(dr__log_pos_cmp(r[2].pos, r4.pos) < 0);

    dr_log_rec out[8];
    size_t n = 0;
    assert_ok(read_log(e->log, origin, 8, 0, out, &n, &e_));
    assert_int_equal(n, 4);
    assert_int_equal(out[0].kind, DR_REC_EVENT);
    assert_string_equal(out[0].user, "u1");
    assert_string_equal(out[0].item, "i1");
    assert_int_equal(out[0].time, 100);
    assert_null(out[0].body);
    assert_int_equal(out[1].kind, DR_REC_ITEM);
    assert_null(out[1].user);
    assert_string_equal(out[1].item, "i9");
    assert_string_equal(out[1].body, "{\"title\":\"x\"}");
    assert_int_equal(out[1].time, 101);
    assert_string_equal(out[3].user, "u3");
    for (int k = 0; k < 3; k++) assert_int_equal(dr__log_pos_cmp(out[k].pos, r[k].pos), 0);
    assert_int_equal(dr__log_pos_cmp(out[3].pos, r4.pos), 0);

    /* after a position; a cap */
    assert_ok(read_log(e->log, r[1].pos, 8, 0, out, &n, &e_));
    assert_int_equal(n, 2);
    assert_string_equal(out[0].user, "u2");
    assert_ok(read_log(e->log, origin, 1, 0, out, &n, &e_));
    assert_int_equal(n, 1);
    assert_string_equal(out[0].user, "u1");
    assert_ok(read_log(e->log, r4.pos, 8, 0, out, &n, &e_));
    assert_int_equal(n, 0);

    /* positions survive their text form */
    char txt[DR_LOG_POS_MAX];
    dr_log_pos back;
    dr__log_pos_format(r4.pos, txt);
    assert_int_equal(dr__log_pos_parse(txt, &back), 0);
    assert_int_equal(dr__log_pos_cmp(back, r4.pos), 0);

    /* a second dr_log on the same log (reopen; for redis another replica) sees it all */
    dr_log *l2 = open_log(e, 0);
    assert_ok(read_log(l2, origin, 8, 0, out, &n, &e_));
    assert_int_equal(n, 4);
    assert_string_equal(out[2].user, "u2");
    dr__log_close(l2);
}

typedef struct waiter {
    dr_log *log;
    dr_log_pos after;
    int wait_ms;
    dr_status st;
    size_t n;
    char user[32];
    double seconds;
} waiter;

static void *wait_read(void *ud) {
    waiter *w = ud;
    dr_log_rec out[4];
    dr_error err = {0};
    double t0 = dr__now_seconds();
    w->st = read_log(w->log, w->after, 4, w->wait_ms, out, &w->n, &err);
    w->seconds = dr__now_seconds() - t0;
    if (w->n) snprintf(w->user, sizeof w->user, "%s", out[0].user);
    return NULL;
}

static void test_blocking_read(void **state) {
    KIND_OR_SKIP(e);
    dr_log_rec r = ev("u1", "i1", 1, NULL);
    assert_ok(append(e->log, &r, 1, NULL, &e_));

    /* nothing new: wait_ms 0 returns at once, wait_ms 300 after about that */
    dr_log_rec out[4];
    size_t n = 9;
    double t0 = dr__now_seconds();
    assert_ok(read_log(e->log, r.pos, 4, 0, out, &n, &e_));
    assert_int_equal(n, 0);
    assert_true(dr__now_seconds() - t0 < 0.2);
    t0 = dr__now_seconds();
    assert_ok(read_log(e->log, r.pos, 4, 300, out, &n, &e_));
    assert_int_equal(n, 0);
    double waited = dr__now_seconds() - t0;
    assert_true(waited > 0.25 && waited < 2.0);

    /* woken by an append from another thread */
    waiter w = {.log = e->log, .after = r.pos, .wait_ms = 10000};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, wait_read, &w), 0);
    usleep(150000);
    dr_log_rec r2 = ev("u2", "i2", 2, NULL);
    assert_ok(append(e->log, &r2, 1, NULL, &e_));
    pthread_join(th, NULL);
    assert_int_equal(w.st, DR_OK);
    assert_int_equal(w.n, 1);
    assert_string_equal(w.user, "u2");
    assert_true(w.seconds < 2.0);

    /* woken by wake */
    waiter w2 = {.log = e->log, .after = r2.pos, .wait_ms = 10000};
    assert_int_equal(pthread_create(&th, NULL, wait_read, &w2), 0);
    usleep(150000);
    dr__log_kind(e->log)->wake(e->log);
    pthread_join(th, NULL);
    assert_int_equal(w2.st, DR_OK);
    assert_int_equal(w2.n, 0);
    assert_true(w2.seconds < 1.0);
    printf("log %s: woken by an append after %.3f s, by wake after %.3f s\n", e->kind,
           w.seconds, w2.seconds);
}

static void test_idempotency(void **state) {
    KIND_OR_SKIP(e);
    dr_log_rec a = ev("u1", "i1", 1, "key-a");
    uint8_t dup = 9;
    assert_ok(append(e->log, &a, 1, &dup, &e_));
    assert_int_equal(dup, 0);
    /* the same key again, in a batch with a new key and a keyless record */
    dr_log_rec b[3] = {ev("u1", "i1", 1, "key-a"), ev("u2", "i2", 2, "key-b"),
                       ev("u3", "i3", 3, NULL)};
    uint8_t dups[3] = {9, 9, 9};
    assert_ok(append(e->log, b, 3, dups, &e_));
    assert_int_equal(dups[0], 1);
    assert_int_equal(dr__log_pos_cmp(b[0].pos, a.pos), 0);
    assert_int_equal(dups[1], 0);
    assert_int_equal(dups[2], 0);
    assert_true(dr__log_pos_cmp(a.pos, b[1].pos) < 0);
    /* the same key twice in one batch: the second is the first's */
    dr_log_rec c[2] = {ev("u4", "i4", 4, "key-c"), ev("u4", "i4", 4, "key-c")};
    assert_ok(append(e->log, c, 2, dups, &e_));
    assert_int_equal(dups[0], 0);
    assert_int_equal(dups[1], 1);
    assert_int_equal(dr__log_pos_cmp(c[0].pos, c[1].pos), 0);
    dr_log_pos last;
    uint64_t records = 0;
    assert_ok(dr__log_kind(e->log)->tip(e->log, &last, &records, &e_));
    assert_int_equal(records, 4); /* a, key-b, the keyless one, key-c */
    assert_int_equal(dr__log_pos_cmp(last, c[0].pos), 0);
    dr_log_rec out[8];
    size_t n = 0;
    assert_ok(read_log(e->log, origin, 8, 0, out, &n, &e_));
    assert_int_equal(n, 4);
    assert_string_equal(out[1].user, "u2");
    assert_string_equal(out[3].user, "u4");
}

/* A key is forgotten after dedup_ttl: the same key is a new record again. */
static void test_idempotency_expiry(void **state) {
    KIND_OR_SKIP(e);
    dr_log *l = open_log(e, 1);
    dr_log_rec a = ev("u1", "i1", 1, "key-x"), b = a;
    uint8_t dup = 9;
    assert_ok(append(l, &a, 1, &dup, &e_));
    assert_int_equal(dup, 0);
    usleep(1100000);
    assert_ok(append(l, &b, 1, &dup, &e_));
    assert_int_equal(dup, 0);
    assert_true(dr__log_pos_cmp(a.pos, b.pos) < 0);
    dr__log_close(l);
}

static void test_tip(void **state) {
    KIND_OR_SKIP(e);
    dr_log_pos last = {7, 7};
    uint64_t records = 9;
    assert_ok(dr__log_kind(e->log)->tip(e->log, &last, &records, &e_));
    assert_int_equal(dr__log_pos_cmp(last, origin), 0);
    assert_int_equal(records, 0);
    dr_log_rec r[5];
    for (int k = 0; k < 5; k++) r[k] = ev("u", "i", k, NULL);
    assert_ok(append(e->log, r, 5, NULL, &e_));
    assert_ok(dr__log_kind(e->log)->tip(e->log, &last, &records, &e_));
    assert_int_equal(dr__log_pos_cmp(last, r[4].pos), 0);
    assert_int_equal(records, 5);
    (void)dr__log_kind(e->log)->bytes(e->log); /* any value; must not fail */
}

/* The server killed (SIGKILL: no shutdown of its own): both sides fail with DR_IO naming the
 * address, no call hangs; restarted on the same socket, the sides reconnect and every record
 * that was acknowledged is there (appendfsync always). */
static void test_redis_restart(void **state) {
    kind_env *e = *state;
    if (!e->spec[0]) skip();
    dr_log_rec r[3] = {ev("u1", "i1", 1, "rk1"), ev("u2", "i2", 2, NULL), ev("u3", "i3", 3, NULL)};
    assert_ok(append(e->log, r, 3, NULL, &e_));
    dr_log_rec out[8];
    size_t n = 0;
    assert_ok(read_log(e->log, origin, 8, 0, out, &n, &e_)); /* the read side is connected */
    assert_int_equal(n, 3);
    redis_stop(&e->srv, SIGKILL);

    dr_log_rec r4 = ev("u4", "i4", 4, NULL);
    dr_error err = {0};
    double t0 = dr__now_seconds();
    assert_int_equal(append(e->log, &r4, 1, NULL, &err), DR_IO);
    char want[400];
    snprintf(want, sizeof want, "redis unix:%s", e->srv.sock);
    if (!strstr(err.msg, want)) fail_msg("append: '%s' does not name %s", err.msg, want);
    memset(&err, 0, sizeof err);
    assert_int_equal(append(e->log, &r4, 1, NULL, &err), DR_IO); /* the reconnect fails too */
    assert_non_null(strstr(err.msg, want));
    memset(&err, 0, sizeof err);
    assert_int_equal(read_log(e->log, r[2].pos, 8, 1000, out, &n, &err), DR_IO);
    assert_non_null(strstr(err.msg, want));
    dr_log_pos last;
    uint64_t records;
    assert_int_equal(dr__log_kind(e->log)->tip(e->log, &last, &records, &err), DR_IO);
    assert_true(dr__now_seconds() - t0 < 5.0);
    printf("redis down: %s\n", err.msg);

    if (redis_start(&e->srv)) fail_msg("redis-server did not start in %s", e->srv.dir);
    assert_ok(append(e->log, &r4, 1, NULL, &e_));
    assert_true(dr__log_pos_cmp(r[2].pos, r4.pos) < 0);
    dr_log_rec again = ev("u1", "i1", 1, "rk1"); /* the key survived the restart too */
    uint8_t dup = 0;
    assert_ok(append(e->log, &again, 1, &dup, &e_));
    assert_int_equal(dup, 1);
    assert_int_equal(dr__log_pos_cmp(again.pos, r[0].pos), 0);
    assert_ok(read_log(e->log, origin, 8, 0, out, &n, &e_));
    assert_int_equal(n, 4);
    for (int k = 0; k < 3; k++) assert_int_equal(dr__log_pos_cmp(out[k].pos, r[k].pos), 0);
    assert_string_equal(out[3].user, "u4");
    assert_ok(dr__log_kind(e->log)->tip(e->log, &last, &records, &e_));
    assert_int_equal(records, 4);
}

static void test_bad_spec(void **state) {
    (void)state;
    static const char *const bad[] = {
        "mysql", "", "SQLITE", "redis:/x", "redis://", "redis://:6379", "redis://host",
        "redis://host:", "redis://host:0", "redis://host:65536", "redis://host:12x",
        "redis://host:6379/", "redis://host:6379/a/b", "redis+unix://", "redis+unix://rel.sock",
        "redis+unix:///tmp/x.sock?stream=", "redis+unix:///tmp/x.sock?db=1",
        "redis+unix:///tmp/x.sock?stream=a&b=c",
    };
    char dir[256];
    dr_test_tmpdir(dir, sizeof dir);
    for (size_t k = 0; k < DR_ARRAY_LEN(bad); k++) {
        dr_log_params p = dr__log_default_params();
        p.spec = bad[k];
        p.dir = dir;
        dr_log *l = DR_OOM_POISON;
        dr_error err = {0};
        dr_status st = dr__log_open(&p, &l, &err);
        if (st != DR_ARG) fail_msg("spec '%s': %s, expected arg", bad[k], dr_status_name(st));
        assert_null(l);
        assert_non_null(strstr(err.msg, "--log"));
    }
    dr_test_rmrf(dir);
}

/* Nothing listens: open says so at once, naming the address. */
static void test_unreachable(void **state) {
    (void)state;
    dr_log_params p = dr__log_default_params();
    p.spec = "redis://127.0.0.1:1/s";
    p.timeout_ms = 500;
    dr_log *l = DR_OOM_POISON;
    dr_error err = {0};
    assert_int_equal(dr__log_open(&p, &l, &err), DR_IO);
    assert_null(l);
    if (!strstr(err.msg, "redis 127.0.0.1:1: ")) fail_msg("'%s' does not name the address", err.msg);
}

typedef struct log_oom {
    dr_log_params p;
    dr_log *l;
} log_oom;

static dr_status log_open_call(void *ud, dr_error *err) {
    log_oom *u = ud;
    return dr__log_open(&u->p, &u->l, err);
}

DR_OOM_FREE_FN(log_close_call, log_oom, l, dr__log_close)

static void test_out_of_memory(void **state) {
    (void)state;
    char dir[256];
    dr_test_tmpdir(dir, sizeof dir);
    log_oom u = {.p = dr__log_default_params()};
    u.p.dir = dir;
    u.p.durable = 0;
    dr_log *l = NULL;
    assert_ok(dr__log_open(&u.p, &l, &e_)); /* a log with a record */
    dr_log_rec r = ev("u1", "i1", 1, "k");
    assert_ok(dr__log_kind(l)->append(l, &r, 1, NULL, &e_));
    dr__log_close(l);
    dr_oom_case c = {.name = "dr__log_open (sqlite, SQLite's allocations included)",
                     .call = log_open_call, .cleanup = log_close_call, .ud = &u,
                     .out = (void **)&u.l, .tolerated = 8, .every = 150};
    assert_true(dr_oom_check(&c) > 0);
    dr_test_rmrf(dir);
}

/* DR_LOG_BENCH=N: instead of the tests, append throughput of each kind (durable sqlite, redis
 * with appendfsync always), N records one per append and N*10 in batches of 100, each record
 * with its own idempotency key; the median of 3 runs. */
static double bench_run(dr_log *l, size_t total, size_t batch, uint64_t *tag) {
    dr_log_rec r[100];
    char keys[100][32];
    double t0 = dr__now_seconds();
    for (size_t done = 0; done < total; done += batch) {
        for (size_t k = 0; k < batch; k++) {
            snprintf(keys[k], sizeof keys[k], "b%llu", (unsigned long long)(*tag)++);
            r[k] = ev("user-1234", "item-5678", 1700000000, keys[k]);
        }
        assert_ok(append(l, r, batch, NULL, &e_));
    }
    return (double)total / (dr__now_seconds() - t0);
}

static int log_bench(size_t n) {
    kind_env *envs[] = {&env_sqlite, &env_redis};
    for (size_t k = 0; k < 2; k++) {
        kind_env *e = envs[k];
        void *st = e;
        setup(&st);
        if (!e->spec[0]) continue;
        dr__log_close(e->log);
        dr_log_params p = params_of(e);
        p.durable = 1;
        assert_ok(dr__log_open(&p, &e->log, &e_));
        uint64_t tag = 0;
        for (size_t batch = 1; batch <= 100; batch *= 100) {
            double v[3];
            for (int run = 0; run < 3; run++)
                v[run] = bench_run(e->log, batch == 1 ? n : n * 10, batch, &tag);
            double lo = DR_MIN(v[0], DR_MIN(v[1], v[2])), hi = DR_MAX(v[0], DR_MAX(v[1], v[2]));
            double med = v[0] + v[1] + v[2] - lo - hi;
            printf("log_append %-6s batch %3zu: %10.0f records/s (median of 3: %.0f %.0f %.0f)\n",
                   e->kind, batch, med, v[0], v[1], v[2]);
        }
        teardown(&st);
    }
    return 0;
}

#define ON(fn, kind) {#fn " (" #kind ")", fn, setup, teardown, &env_##kind}
#define BOTH(fn) ON(fn, sqlite), ON(fn, redis)

int main(void) {
    dr_test_sqlite_mem();
    signal(SIGPIPE, SIG_IGN);
    const char *bench = getenv("DR_LOG_BENCH");
    if (bench && atoi(bench) > 0) return log_bench((size_t)atoi(bench));
    const struct CMUnitTest tests[] = {
        BOTH(test_append_read),
        BOTH(test_blocking_read),
        BOTH(test_idempotency),
        BOTH(test_idempotency_expiry),
        BOTH(test_tip),
        ON(test_redis_restart, redis),
        cmocka_unit_test(test_bad_spec),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
