/* test_store.c - the SQLite event log: append/scan round trip, persistence across reopen,
 * snapshots and pruning, snapshot positions (and an older folder without them), settings,
 * and a damaged record reported as DR_FORMAT. */
#include "testutil.h"
#include "oom.h"
#include "sqlmem.h"

#include <sqlite3.h>

#include "serve_store.h"

typedef struct seen {
    uint64_t n, last_seq;
    char users[8][32], items[8][32];
    int64_t times[8];
    int kinds[8];
} seen;

static dr_status collect(void *ud, const dr_store_rec *r, dr_error *err) {
    (void)err;
    seen *s = ud;
    if (s->n < 8) {
        snprintf(s->users[s->n], 32, "%s", r->user ? r->user : "-");
        snprintf(s->items[s->n], 32, "%s", r->item);
        s->times[s->n] = r->time;
        s->kinds[s->n] = r->kind;
    }
    s->n++;
    s->last_seq = r->seq;
    return DR_OK;
}

static void test_append_scan_reopen(void **st) {
    (void)st;
    char dir[256];
    dr_test_tmpdir(dir, sizeof dir);
    dr_store *s = NULL;
    assert_ok(dr__store_open(dir, 1, &s, &e_));
    dr_store_rec r[3] = {{0, DR_REC_EVENT, "u1", "i1", 100, NULL},
                         {0, DR_REC_ITEM, NULL, "i9", 101, "{\"title\":\"x\"}"},
                         {0, DR_REC_EVENT, "u2", "i9", 99, NULL}};
    assert_ok(dr__store_append(s, r, 3, &e_));
    assert_int_equal(r[0].seq, 1);
    assert_int_equal(r[2].seq, 3);
    dr_store_rec r2 = {0, DR_REC_EVENT, "u3", "i1", 5, NULL};
    assert_ok(dr__store_append(s, &r2, 1, &e_));
    assert_int_equal(r2.seq, 4);
    assert_true(dr__store_bytes(s) > 0);
    assert_ok(dr__store_meta_set(s, "model", "abc", &e_));
    dr__store_close(s);

    assert_ok(dr__store_open(dir, 1, &s, &e_));
    uint64_t ne = 0, last = 0;
    assert_ok(dr__store_counts(s, &ne, &last, &e_));
    assert_int_equal(ne, 3);
    assert_int_equal(last, 4);
    seen sn = {0};
    assert_ok(dr__store_scan(s, 0, collect, &sn, &e_));
    assert_int_equal(sn.n, 4);
    assert_string_equal(sn.users[0], "u1");
    assert_int_equal(sn.kinds[1], DR_REC_ITEM);
    assert_string_equal(sn.items[1], "i9");
    assert_int_equal(sn.times[2], 99);
    memset(&sn, 0, sizeof sn);
    assert_ok(dr__store_scan(s, 2, collect, &sn, &e_)); /* only after seq 2 */
    assert_int_equal(sn.n, 2);
    assert_string_equal(sn.users[0], "u2");
    char v[32];
    int found = 0;
    assert_ok(dr__store_meta_get(s, "model", v, sizeof v, &found, &e_));
    assert_true(found);
    assert_string_equal(v, "abc");
    assert_ok(dr__store_meta_get(s, "nothing", v, sizeof v, &found, &e_));
    assert_false(found);
    dr__store_close(s);
    dr_test_rmrf(dir);
}

static void test_snapshots(void **st) {
    (void)st;
    char dir[256], path[512];
    dr_test_tmpdir(dir, sizeof dir);
    dr_store *s = NULL;
    assert_ok(dr__store_open(dir, 0, &s, &e_));
    for (int k = 1; k <= 4; k++) {
        char name[32];
        snprintf(name, sizeof name, "snap-%d", k);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        dr_test_write(path, "x");
        assert_ok(dr__store_snapshot_add(s, (uint64_t)k * 10, name, &e_));
    }
    assert_ok(dr__store_snapshot_prune(s, 2, &e_));
    dr_store_snap sn[8];
    size_t n = 0;
    assert_ok(dr__store_snapshots(s, sn, 8, &n, &e_));
    assert_int_equal(n, 2);
    assert_int_equal(sn[0].seq, 40); /* newest first */
    assert_string_equal(sn[1].file, "snap-3");
    snprintf(path, sizeof path, "%s/snap-1", dir);
    assert_int_equal(access(path, F_OK), -1); /* pruned files are deleted */
    snprintf(path, sizeof path, "%s/snap-4", dir);
    assert_int_equal(access(path, F_OK), 0);
    dr__store_close(s);
    dr_test_rmrf(dir);
}

/* Snapshots keep a log position and a record count (a Redis replica's); a folder made before
 * those columns opens, and its rows read back as (0, seq). */
static void test_snapshot_positions(void **st) {
    (void)st;
    char dir[256], path[512];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/events.db", dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE snapshots (seq INTEGER PRIMARY KEY, file TEXT NOT NULL);"
                                  "INSERT INTO snapshots VALUES (5, 'old-5');",
                                  NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    dr_store *s = NULL;
    assert_ok(dr__store_open(dir, 0, &s, &e_));
    assert_ok(dr__store_snapshot_add_pos(s, "1700000000123-4", 9, "redis-9", &e_));
    assert_ok(dr__store_snapshot_add(s, 7, "sq-7", &e_));
    dr_error e = {0};
    assert_int_equal(dr__store_snapshot_add_pos(s, "12-x", 10, "bad", &e), DR_ARG);
    dr_store_snap sn[8];
    size_t n = 0;
    assert_ok(dr__store_snapshots(s, sn, 8, &n, &e_));
    assert_int_equal(n, 3);
    assert_string_equal(sn[0].file, "redis-9");
    assert_int_equal(sn[0].records, 9);
    assert_int_equal(sn[0].pos.ms, 1700000000123ull);
    assert_int_equal(sn[0].pos.seq, 4);
    assert_string_equal(sn[1].file, "sq-7");
    assert_int_equal(sn[1].pos.ms, 0);
    assert_int_equal(sn[1].pos.seq, 7);
    assert_int_equal(sn[1].records, 7);
    assert_string_equal(sn[2].file, "old-5");
    assert_int_equal(sn[2].seq, 5);
    assert_int_equal(sn[2].pos.seq, 5);
    assert_int_equal(sn[2].records, 5);
    dr__store_close(s);
    assert_ok(dr__store_open(dir, 0, &s, &e_)); /* the columns are there now: no second ALTER */
    dr__store_close(s);
    dr_test_rmrf(dir);
}

/* A record written behind the store's back with a bad kind or an over-long id: DR_FORMAT. */
static void test_damaged_record(void **st) {
    (void)st;
    char dir[256], path[512];
    dr_test_tmpdir(dir, sizeof dir);
    dr_store *s = NULL;
    assert_ok(dr__store_open(dir, 0, &s, &e_));
    dr_store_rec r = {0, DR_REC_EVENT, "u1", "i1", 1, NULL};
    assert_ok(dr__store_append(s, &r, 1, &e_));
    dr__store_close(s);
    snprintf(path, sizeof path, "%s/events.db", dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO log (kind, user, item, time) VALUES (7, 'u', 'i', 1)",
                                  NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_ok(dr__store_open(dir, 0, &s, &e_));
    seen sn = {0};
    dr_error e = {0};
    assert_int_equal(dr__store_scan(s, 0, collect, &sn, &e), DR_FORMAT);
    assert_non_null(strstr(e.msg, "record 2"));
    assert_int_equal(sn.n, 1);
    dr__store_close(s);
    dr_test_rmrf(dir);
}

typedef struct store_oom {
    const char *dir;
    int fresh; /* the folder is removed after each open */
    dr_store *s;
} store_oom;

static dr_status store_open(void *ud, dr_error *err) {
    store_oom *u = ud;
    return dr__store_open(u->dir, 0, &u->s, err);
}

static void store_close(void *ud) {
    store_oom *u = ud;
    dr__store_close(u->s);
    u->s = NULL;
    for (const char *const *f = (const char *const[]){"events.db", "events.db-wal", "events.db-shm",
                                                        NULL};
         u->fresh && *f; f++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", u->dir, *f);
        unlink(path);
    }
}

static void test_out_of_memory(void **st) {
    (void)st;
    char dir[256];
    dr_test_tmpdir(dir, sizeof dir);
    store_oom u = {.dir = dir, .fresh = 1};
    dr_oom_case c = {.name = "dr__store_open (new folder, SQLite's allocations included)",
                     .call = store_open, .cleanup = store_close, .ud = &u, .out = (void **)&u.s,
                     /* SQLite goes on without a few "benign" allocations (caches) */
                     .tolerated = 8, .every = 150};
    assert_true(dr_oom_check(&c) > 0);
    u.fresh = 0;
    dr_store *s = NULL;
    assert_ok(dr__store_open(dir, 0, &s, &e_));
    dr_store_rec r[2] = {{0, DR_REC_EVENT, "u1", "i1", 100, NULL},
                         {0, DR_REC_ITEM, NULL, "i9", 101, "{\"title\":\"x\"}"}};
    assert_ok(dr__store_append(s, r, 2, &e_));
    dr__store_close(s);
    c.name = "dr__store_open (a log with records)";
    assert_true(dr_oom_check(&c) > 0);
    dr_test_rmrf(dir);
}

int main(void) {
    dr_test_sqlite_mem();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_scan_reopen),
        cmocka_unit_test(test_snapshots),
        cmocka_unit_test(test_snapshot_positions),
        cmocka_unit_test(test_damaged_record),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
