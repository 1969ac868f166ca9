/* test_export.c - a state folder exported as a dataset (dr_state_export) and the sqlite log's
 * compaction (dr__store_compact): the folder is built through the store API (events, item
 * records with features, a base record), exported and loaded back with dr_dataset_load;
 * compaction moves exactly the records at or below the cut, keeps their seq, and the export
 * after it is the same as before; damaged records, missing folders and a missing base give
 * clear errors; the new constructors run under the allocation-failure check. */
#include "testutil.h"
#include "oom.h"
#include "sqlmem.h"

#include <sqlite3.h>

#include "dataset.h"
#include "serve_store.h"

static uint32_t ck_users, ck_items;
static size_t ck_events;

/* An mf checkpoint at path, fitted on ds (one epoch, d = 4). */
static void fit_save(const dr_dataset *ds, const char *path) {
    dr_split *split = NULL;
    assert_ok(dr_split_create(ds, DR_SPLIT_LOO, &split, &e_));
    dr_model_params mp = dr_model_default_params();
    mp.name = "mf";
    mp.dim = 4;
    mp.epochs = 1;
    mp.threads = 1;
    dr_model *m = NULL;
    assert_ok(dr_model_fit(ds, split, &mp, &m, &e_));
    assert_ok(dr_model_save(m, ds, split, path, &e_));
    dr_model_free(m);
    dr_split_free(split);
}

/* dir/m.drm: a small mf checkpoint on synthetic data. */
static void make_model(const char *dir) {
    dr_synth_params sp = dr_synth_default_params();
    sp.n_users = 30;
    sp.n_items = 25;
    sp.n_events = 600;
    sp.seed = 3;
    dr_dataset *ds = NULL;
    assert_ok(dr_synth_generate(&sp, &ds, &e_));
    char path[512];
    snprintf(path, sizeof path, "%s/m.drm", dir);
    fit_save(ds, path);
    ck_users = ds->n_users;
    ck_items = ds->n_items;
    ck_events = ds->n_events;
    dr_dataset_free(ds);
}

/* The folder dir/state: ten records, the base record (covers, from) eighth. */
static void make_state(const char *dir, const char *covers, const char *from) {
    char st[512], base[1400], mp[600];
    snprintf(st, sizeof st, "%s/state", dir);
    snprintf(mp, sizeof mp, "%s/m.drm", dir);
    dr_model *m = NULL;
    assert_ok(dr_model_load(mp, &m, &e_));
    char u0[64], i0[64], i1[64], i2[64];
    snprintf(u0, sizeof u0, "%s", dr_model_user_id(m, 0));
    snprintf(i0, sizeof i0, "%s", dr_model_item_id(m, 0));
    snprintf(i1, sizeof i1, "%s", dr_model_item_id(m, 1));
    snprintf(i2, sizeof i2, "%s", dr_model_item_id(m, 2));
    dr_model_free(m);
    snprintf(base, sizeof base, "{\"path\":\"%s\",\"hash\":\"00\",\"covers\":\"%s\",\"from\":\"%s\"}",
             mp, covers, from);
    dr_store *s = NULL;
    assert_ok(dr__store_open(st, 0, &s, &e_));
    dr_store_rec r[10] = {
        {0, DR_REC_EVENT, "new-u1", i0, 1000, NULL},
        {0, DR_REC_ITEM, NULL, "new-i1", 1,
         "{\"title\":\"T1\",\"attributes\":[\"genre=X\",\"tag=a|b\"],\"features\":{\"visual\":[1,2,3]}}"},
        {0, DR_REC_EVENT, u0, "new-i1", 900, NULL},
        {0, DR_REC_ITEM, NULL, i1, 2, "{\"title\":\"Renamed\",\"attributes\":[\"k=v\"]}"},
        {0, DR_REC_EVENT, "new-u2", "new-i2", 850, NULL},
        {0, DR_REC_ITEM, NULL, "new-i1", 3, "{\"title\":\"T1b\",\"attributes\":{\"genre\":\"Y\"}}"},
        {0, DR_REC_ITEM, NULL, "new-i2", 4, "{\"title\":\"\",\"features\":{\"visual\":[4,5,6],\"audio\":[7]}}"},
        {0, DR_REC_BASE, NULL, NULL, 5, base},
        {0, DR_REC_EVENT, "new-u1", "new-i1", 1200, NULL},
        {0, DR_REC_EVENT, "new-u3", i2, 1100, NULL},
    };
    assert_ok(dr__store_append(s, r, 10, &e_));
    assert_int_equal(r[9].seq, 10);
    dr__store_close(s);
}

static dr_status export_to(const char *dir, const char *out, const char *model, dr_export_result *r,
                           dr_error *err) {
    char st[512], o[512];
    snprintf(st, sizeof st, "%s/state", dir);
    snprintf(o, sizeof o, "%s/%s", dir, out);
    dr_export_params p = dr_export_default_params();
    p.data_dir = st;
    p.out = o;
    p.model_path = model;
    return dr_state_export(&p, r, err);
}

static dr_dataset *load(const char *dir, const char *out) {
    char o[512];
    snprintf(o, sizeof o, "%s/%s", dir, out);
    dr_load_params lp = dr_load_default_params();
    lp.strict = 1;
    dr_dataset *ds = NULL;
    assert_ok(dr_dataset_load(o, &lp, &ds, &e_));
    return ds;
}

static uint32_t item_of(const dr_dataset *ds, const char *id) {
    uint32_t i = UINT32_MAX;
    assert_ok(dr_dataset_find_item(ds, id, &i));
    return i;
}

/* The base record's covers 0-1: records 2..10 are exported after the checkpoint. */
static void test_export_dataset(void **state) {
    (void)state;
    char dir[256];
    dr_test_tmpdir(dir, sizeof dir);
    make_model(dir);
    make_state(dir, "0-1", "0-3");
    dr_export_result r;
    assert_ok(export_to(dir, "x", NULL, &r, &e_));
    assert_string_equal(r.covers, "0-1");
    assert_string_equal(r.log_covers, "0-10");
    assert_int_equal(r.log_records, 9);
    assert_int_equal(r.base_events, ck_events);
    assert_int_equal(r.events, ck_events + 4);
    assert_int_equal(r.item_records, 4);
    assert_int_equal(r.new_items, 2);
    assert_int_equal(r.new_users, 3); /* new-u2, new-u1 (its first event is covered), new-u3 */
    assert_int_equal(r.n_modalities, 2);
    assert_non_null(strstr(r.base, "m.drm"));

    dr_dataset *ds = load(dir, "x");
    assert_int_equal(ds->n_events, ck_events + 4);
    assert_int_equal(ds->n_users, ck_users + 3);
    assert_int_equal(ds->n_items, ck_items + 2);
    assert_string_equal(ds->log_covers, "0-10");
    assert_int_equal(ds->log_records, 9);
    /* the checkpoint's interactions first (negative times, in order), then the log's with the
     * server's clamp: 900, 850 -> 900, 1200, 1100 -> 1200 */
    size_t n = ds->n_events;
    assert_true(ds->ev_time[0] == -(int64_t)ck_events && ds->ev_time[ck_events - 1] == -1);
    int64_t want_t[4] = {900, 900, 1200, 1200};
    const char *want_u[4] = {NULL, "new-u2", "new-u1", "new-u3"};
    const char *want_i[4] = {"new-i1", "new-i2", "new-i1", NULL};
    for (int k = 0; k < 4; k++) {
        size_t e = n - 4 + (size_t)k;
        assert_int_equal(ds->ev_time[e], want_t[k]);
        if (want_u[k]) assert_string_equal(ds->users.str[ds->ev_user[e]], want_u[k]);
        if (want_i[k]) assert_string_equal(ds->items.str[ds->ev_item[e]], want_i[k]);
    }
    for (size_t e = 1; e < n; e++) assert_true(ds->ev_time[e] >= ds->ev_time[e - 1]);
    /* a checkpoint user's history: the checkpoint's, then the log's */
    char mp[600];
    snprintf(mp, sizeof mp, "%s/m.drm", dir);
    dr_model *m = NULL;
    assert_ok(dr_model_load(mp, &m, &e_));
    uint32_t u0;
    assert_ok(dr_dataset_find_user(ds, dr_model_user_id(m, 0), &u0));
    const uint32_t *h, *mh;
    const int64_t *ht;
    size_t hn = dr_dataset_user_items(ds, u0, &h, &ht), mn = dr_model_user_history(m, 0, &mh);
    assert_int_equal(hn, mn + 1);
    for (size_t k = 0; k < mn; k++) assert_string_equal(ds->items.str[h[k]], dr_model_item_id(m, mh[k]));
    assert_string_equal(ds->items.str[h[mn]], "new-i1");
    /* titles and attributes: the newest PUT's, else the checkpoint's */
    const char *attrs[8];
    uint32_t a = item_of(ds, "new-i1");
    assert_string_equal(dr_dataset_item_title(ds, a), "T1b");
    assert_int_equal(dr_dataset_item_attrs(ds, a, attrs, 8), 1);
    assert_string_equal(attrs[0], "genre=Y");
    uint32_t b = item_of(ds, dr_model_item_id(m, 1));
    assert_string_equal(dr_dataset_item_title(ds, b), "Renamed");
    assert_int_equal(dr_dataset_item_attrs(ds, b, attrs, 8), 1);
    assert_string_equal(attrs[0], "k=v");
    uint32_t c = item_of(ds, dr_model_item_id(m, 3));
    assert_string_equal(dr_dataset_item_title(ds, c), dr_model_item_title(m, 3));
    size_t na = dr_model_item_attrs(m, 3, attrs, 8);
    assert_int_equal(dr_dataset_item_attrs(ds, c, attrs, 8), na);
    uint32_t i2 = item_of(ds, "new-i2");
    assert_string_equal(dr_dataset_item_title(ds, i2), "");
    /* features: visual (3) and audio (1); a PUT without features kept new-i1's */
    assert_int_equal(dr_dataset_n_modalities(ds), 2);
    const char *name;
    uint32_t dim;
    const float *x;
    const uint8_t *pr;
    assert_ok(dr_dataset_modality(ds, 0, &name, &dim, &x, &pr));
    assert_string_equal(name, "visual");
    assert_int_equal(dim, 3);
    assert_true(pr[a] && x[a * 3] == 1 && x[a * 3 + 2] == 3);
    assert_true(pr[i2] && x[i2 * 3 + 1] == 5);
    assert_false(pr[b] || pr[c]);
    assert_ok(dr_dataset_modality(ds, 1, &name, &dim, &x, &pr));
    assert_string_equal(name, "audio");
    assert_true(pr[i2] && x[i2] == 7 && !pr[a]);
    dr_model_free(m);
    dr_dataset_free(ds);

    /* --model: covers none (its metadata has no log_covers), so every record is exported */
    assert_ok(export_to(dir, "y", mp, &r, &e_));
    assert_string_equal(r.covers, "0-0");
    assert_int_equal(r.log_records, 10);
    assert_int_equal(r.events, ck_events + 5);
    /* a checkpoint trained on the export carries log_covers, and --model then starts there */
    ds = load(dir, "x");
    snprintf(mp, sizeof mp, "%s/m2.drm", dir);
    fit_save(ds, mp);
    dr_dataset_free(ds);
    assert_ok(dr_model_load(mp, &m, &e_));
    assert_string_equal(dr_model_meta(m, "log_covers"), "0-10");
    uint32_t nu;
    assert_int_equal(dr_model_find_user(m, "new-u3", &nu), DR_OK);
    dr_model_free(m);
    assert_ok(export_to(dir, "z", mp, &r, &e_));
    assert_string_equal(r.covers, "0-10");
    assert_int_equal(r.log_records, 0);
    assert_string_equal(r.log_covers, "0-10");
    dr_test_rmrf(dir);
}

/* The bytes of dir/a/file and dir/b/file are equal. */
static void same_file(const char *dir, const char *a, const char *b, const char *file) {
    char pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/%s/%s", dir, a, file);
    snprintf(pb, sizeof pb, "%s/%s/%s", dir, b, file);
    char *ba = NULL, *bb = NULL;
    size_t la = 0, lb = 0;
    assert_ok(dr__read_file(pa, 1u << 26, &ba, &la, &e_));
    assert_ok(dr__read_file(pb, 1u << 26, &bb, &lb, &e_));
    assert_int_equal(la, lb);
    assert_memory_equal(ba, bb, la);
    dr__free(ba);
    dr__free(bb);
}

static void same_export(const char *dir, const char *a, const char *b) {
    same_file(dir, a, b, "interactions.tsv");
    same_file(dir, a, b, "items.tsv");
    same_file(dir, a, b, "manifest.tsv");
    same_file(dir, a, b, "features/visual.npy");
    same_file(dir, a, b, "features/visual.present.npy");
    same_file(dir, a, b, "features/audio.npy");
}

static uint64_t count_rows(const char *path, const char *where) {
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM log %s", where);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    uint64_t n = (uint64_t)sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
}

/* covers 0-5, from 0-7: the cut is min(5, 6) = 5. */
static void test_compact(void **state) {
    (void)state;
    char dir[256], st[512], mp[600], ev[600], ar[600];
    dr_test_tmpdir(dir, sizeof dir);
    make_model(dir);
    make_state(dir, "0-5", "0-7");
    snprintf(st, sizeof st, "%s/state", dir);
    snprintf(mp, sizeof mp, "%s/m.drm", dir);
    snprintf(ev, sizeof ev, "%s/events.db", st);
    snprintf(ar, sizeof ar, "%s/archive.db", st);
    dr_export_result r;
    assert_ok(export_to(dir, "before", NULL, &r, &e_));
    assert_ok(export_to(dir, "before_all", mp, &r, &e_));
    assert_int_equal(r.log_records, 10);

    dr_store *s = NULL;
    uint64_t through = 9, records = 9;
    assert_ok(dr__store_open(st, 0, &s, &e_));
    assert_ok(dr__store_compacted(s, &through, &records, &e_));
    assert_true(through == 0 && records == 0);
    dr_compact_result c;
    assert_ok(dr__store_compact(s, 0, NULL, NULL, &c, &e_));
    assert_false(c.nothing);
    assert_int_equal(c.through, 5);
    assert_int_equal(c.moved, 5);
    assert_int_equal(c.records, 5);
    assert_ok(dr__store_compacted(s, &through, &records, &e_));
    assert_true(through == 5 && records == 5);
    /* again: nothing more to move */
    assert_ok(dr__store_compact(s, 0, NULL, NULL, &c, &e_));
    assert_true(c.nothing);
    assert_non_null(strstr(c.why, "compacted already"));
    dr__store_close(s);
    assert_int_equal(count_rows(ev, ""), 5);
    assert_int_equal(count_rows(ev, "WHERE seq <= 5"), 0);
    assert_int_equal(count_rows(ar, ""), 5);
    assert_int_equal(count_rows(ar, "WHERE seq BETWEEN 1 AND 5"), 5);
    /* the archive keeps the rows as they were */
    dr_store *a = NULL;
    dr_log_rec recs[8];
    size_t n = 0;
    assert_ok(dr__store_open_archive(st, &a, &e_));
    assert_non_null(a);
    assert_ok(dr__store_log_read(a, 0, 8, recs, &n, &e_));
    assert_int_equal(n, 5);
    assert_int_equal(recs[1].pos.seq, 2);
    assert_int_equal(recs[1].kind, DR_REC_ITEM);
    assert_string_equal(recs[1].item, "new-i1");
    assert_int_equal(recs[4].time, 850);
    dr__store_close(a);

    /* the export is the same: from the base record (nothing archived after 0-5) and from the
     * checkpoint (archive.db first, then the log) */
    assert_ok(export_to(dir, "after", NULL, &r, &e_));
    assert_ok(export_to(dir, "after_all", mp, &r, &e_));
    assert_int_equal(r.log_records, 10);
    same_file(dir, "before", "after", "interactions.tsv");
    same_file(dir, "before", "after", "items.tsv");
    same_file(dir, "before", "after", "manifest.tsv");
    same_export(dir, "before_all", "after_all");

    /* a newer base covering 0-8: compaction appends 6..8 to the archive */
    char base[1400];
    snprintf(base, sizeof base, "{\"path\":\"%s\",\"hash\":\"00\",\"covers\":\"0-8\",\"from\":\"0-11\"}", mp);
    dr_store_rec more[2] = {{0, DR_REC_EVENT, "new-u4", "new-i1", 1300, NULL},
                            {0, DR_REC_BASE, NULL, NULL, 6, base}};
    assert_ok(dr__store_open(st, 0, &s, &e_));
    assert_ok(dr__store_append(s, more, 2, &e_));
    assert_ok(dr__store_compact(s, 0, NULL, NULL, &c, &e_));
    assert_int_equal(c.moved, 3);
    assert_int_equal(c.records, 8);
    assert_string_equal(c.vacuum, "incremental");
    dr__store_close(s);
    assert_int_equal(count_rows(ar, ""), 8);
    assert_int_equal(count_rows(ev, ""), 4);
    assert_ok(export_to(dir, "after2", mp, &r, &e_));
    assert_int_equal(r.log_records, 12);
    dr_test_rmrf(dir);
}

/* --drop: nothing kept; a log without a base record: nothing to do. */
static void test_compact_drop_and_nothing(void **state) {
    (void)state;
    char dir[256], st[512], ev[600], ar[600];
    dr_test_tmpdir(dir, sizeof dir);
    make_model(dir);
    make_state(dir, "0-3", "0-9");
    snprintf(st, sizeof st, "%s/state", dir);
    snprintf(ev, sizeof ev, "%s/events.db", st);
    snprintf(ar, sizeof ar, "%s/archive.db", st);
    dr_compact_params p = dr_compact_default_params();
    p.data_dir = st;
    p.drop = 1;
    dr_compact_result c;
    assert_ok(dr_state_compact(&p, &c, &e_));
    assert_int_equal(c.moved, 3);
    assert_false(dr__path_exists(ar));
    assert_int_equal(count_rows(ev, ""), 7);

    char st2[512];
    snprintf(st2, sizeof st2, "%s/plain", dir);
    dr_store *s = NULL;
    assert_ok(dr__store_open(st2, 0, &s, &e_));
    dr_store_rec r = {0, DR_REC_EVENT, "u", "i", 1, NULL};
    assert_ok(dr__store_append(s, &r, 1, &e_));
    dr__store_close(s);
    p.data_dir = st2;
    p.drop = 0;
    assert_ok(dr_state_compact(&p, &c, &e_));
    assert_true(c.nothing && c.moved == 0);
    assert_non_null(strstr(c.why, "no base record"));
    p.log = "redis://127.0.0.1:1";
    dr_error e = {0};
    assert_int_equal(dr_state_compact(&p, &c, &e), DR_UNSUPPORTED);
    assert_non_null(strstr(e.msg, "XTRIM"));
    dr_test_rmrf(dir);
}

/* Writes one raw row into dir/state/events.db behind the store's back. */
static void raw_row(const char *dir, const char *sql) {
    char path[600];
    snprintf(path, sizeof path, "%s/state/events.db", dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void test_errors(void **state) {
    (void)state;
    char dir[256], st[512], mp[600];
    dr_test_tmpdir(dir, sizeof dir);
    make_model(dir);
    snprintf(st, sizeof st, "%s/state", dir);
    snprintf(mp, sizeof mp, "%s/m.drm", dir);
    dr_export_result r;
    dr_error e = {0};
    /* a missing folder, a folder without events.db */
    assert_int_equal(export_to(dir, "x", mp, &r, &e), DR_IO);
    assert_non_null(strstr(e.msg, "no such state folder"));
    assert_int_equal(dr__mkdir_p(st, &e), DR_OK);
    assert_int_equal(export_to(dir, "x", mp, &r, &e), DR_IO);
    assert_non_null(strstr(e.msg, "no events.db"));
    dr_compact_params cp = dr_compact_default_params();
    dr_compact_result c;
    cp.data_dir = st;
    assert_int_equal(dr_state_compact(&cp, &c, &e), DR_IO);
    /* no base record and no model_path: asks for --model; with model_path: uses it */
    dr_store *s = NULL;
    assert_ok(dr__store_open(st, 0, &s, &e_));
    dr_store_rec ev = {0, DR_REC_EVENT, "u", "i", 1, NULL};
    assert_ok(dr__store_append(s, &ev, 1, &e_));
    assert_int_equal(export_to(dir, "x", NULL, &r, &e), DR_ARG);
    assert_non_null(strstr(e.msg, "--model"));
    assert_ok(dr__store_meta_set(s, "model_path", mp, &e_));
    assert_ok(export_to(dir, "x", NULL, &r, &e_));
    assert_string_equal(r.base, mp);
    assert_int_equal(r.events, ck_events + 1);
    /* an item record whose body is not JSON: named by its position */
    dr_store_rec bad = {0, DR_REC_ITEM, NULL, "i", 2, "{not json"};
    assert_ok(dr__store_append(s, &bad, 1, &e_));
    dr__store_close(s);
    assert_int_equal(export_to(dir, "x", NULL, &r, &e), DR_FORMAT);
    assert_non_null(strstr(e.msg, "log record 0-2"));
    /* a damaged row (unknown kind) */
    raw_row(dir, "DELETE FROM log WHERE seq = 2");
    raw_row(dir, "INSERT INTO log (kind, user, item, time) VALUES (9, 'u', 'i', 1)");
    assert_int_equal(export_to(dir, "x", NULL, &r, &e), DR_FORMAT);
    assert_non_null(strstr(e.msg, "is damaged"));
    raw_row(dir, "DELETE FROM log WHERE kind = 9");
    /* a base record that is not the documented object: export and compaction name it */
    raw_row(dir, "INSERT INTO log (kind, item, time, body) VALUES (2, '', 1, '{\"path\":\"/x\"}')");
    assert_int_equal(export_to(dir, "x", NULL, &r, &e), DR_FORMAT);
    assert_non_null(strstr(e.msg, "\"covers\""));
    assert_int_equal(dr_state_compact(&cp, &c, &e), DR_FORMAT);
    assert_non_null(strstr(e.msg, "log record"));
    /* a base record naming a checkpoint that is not there */
    raw_row(dir, "INSERT INTO log (kind, item, time, body) VALUES (2, '', 1,"
                 " '{\"path\":\"/no/such.drm\",\"hash\":\"0\",\"covers\":\"0-0\",\"from\":\"0-0\"}')");
    assert_int_not_equal(export_to(dir, "x", NULL, &r, &e), DR_OK);
    assert_non_null(strstr(e.msg, "/no/such.drm"));
    /* features whose dimension changes between PUTs */
    raw_row(dir, "DELETE FROM log WHERE kind = 2");
    raw_row(dir, "INSERT INTO log (kind, item, time, body) VALUES (1, 'a', 1, '{\"features\":{\"v\":[1,2]}}'),"
                 " (1, 'b', 1, '{\"features\":{\"v\":[1]}}')");
    assert_int_equal(export_to(dir, "x", mp, &r, &e), DR_FORMAT);
    assert_non_null(strstr(e.msg, "feature 'v' has 1 numbers"));
    dr_test_rmrf(dir);
}

typedef struct oom_ud {
    char dir[256], st[512], out[512];
    dr_store *s;
    dr_export_result r;
} oom_ud;

static dr_status call_archive(void *ud, dr_error *err) {
    oom_ud *u = ud;
    return dr__store_open_archive(u->st, &u->s, err);
}
DR_OOM_FREE_FN(free_store, oom_ud, s, dr__store_close)

static dr_status call_export(void *ud, dr_error *err) {
    oom_ud *u = ud;
    dr_export_params p = dr_export_default_params();
    p.data_dir = u->st;
    p.out = u->out;
    return dr_state_export(&p, &u->r, err);
}

static void test_out_of_memory(void **state) {
    (void)state;
    oom_ud u = {0};
    dr_test_tmpdir(u.dir, sizeof u.dir);
    make_model(u.dir);
    make_state(u.dir, "0-5", "0-7");
    snprintf(u.st, sizeof u.st, "%s/state", u.dir);
    snprintf(u.out, sizeof u.out, "%s/x", u.dir);
    dr_store *s = NULL;
    dr_compact_result c;
    assert_ok(dr__store_open(u.st, 0, &s, &e_));
    assert_ok(dr__store_compact(s, 0, NULL, NULL, &c, &e_));
    dr__store_close(s);
    dr_oom_case a = {.name = "dr__store_open_archive (SQLite's allocations included)",
                     .call = call_archive, .cleanup = free_store, .ud = &u, .out = (void **)&u.s,
                     /* SQLite goes on without a few "benign" allocations (caches) */
                     .tolerated = 8, .every = 150};
    assert_true(dr_oom_check(&a) > 0);
    dr_oom_case x = {.name = "dr_state_export", .call = call_export, .ud = &u, .tolerated = 8,
                     .every = 150};
    assert_true(dr_oom_check(&x) > 0);
    dr_test_rmrf(u.dir);
}

int main(void) {
    dr_test_sqlite_mem();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_export_dataset),
        cmocka_unit_test(test_compact),
        cmocka_unit_test(test_compact_drop_and_nothing),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
