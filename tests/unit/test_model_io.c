/* test_model_io.c - checkpoints of trained models: round trip, serving context, damage. */
#include "testutil.h"
#include "oom.h"

#include "dataset.h"
#include "ckpt.h"
#include "model.h"

static dr_dataset *small_synth(uint64_t seed) {
    dr_synth_params p = dr_synth_default_params();
    p.seed = seed;
    p.n_users = 120;
    p.n_items = 80;
    p.n_events = 4000;
    p.n_genres = 4;
    dr_dataset *ds = NULL;
    assert_ok(dr_synth_generate(&p, &ds, &e_));
    return ds;
}

static dr_model *fit(const dr_dataset *ds, const dr_split *sp, const char *name) {
    dr_model_params mp = dr_model_default_params();
    mp.name = name;
    mp.epochs = 3;
    mp.eval_every = 0;
    mp.threads = 1;
    mp.max_len = 20;
    mp.dim = 16;
    mp.batch = 32;
    dr_model *m = NULL;
    assert_ok(dr_model_fit(ds, sp, &mp, &m, &e_));
    return m;
}

/* Scores of every user's full history must be bit-identical after save + load. */
static void round_trip(const char *name) {
    dr_dataset *ds = small_synth(5);
    dr_split *sp = NULL;
    assert_ok(dr_split_create(ds, DR_SPLIT_LOO, &sp, &e_));
    dr_model *m = fit(ds, sp, name), *back = NULL;
    char dir[256], path[300];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/m.drm", dir);
    assert_ok(dr_model_save(m, ds, sp, path, &e_));
    assert_ok(dr_model_load(path, &back, &e_));
    assert_string_equal(dr_model_name(back), name);
    assert_string_equal(dr_model_meta(back, "model"), name);
    assert_string_equal(dr_model_meta(back, "split"), "loo");
    assert_string_equal(dr_model_meta(back, "dataset"), "synth");
    assert_int_equal(dr_model_n_users(back), ds->n_users);
    assert_int_equal(dr_model_n_items(back), ds->n_items);
    assert_ok(dr_model_check_dataset(back, ds, &e_));

    uint32_t n = ds->n_items;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    dr_scorer *sa = NULL, *sb = NULL;
    assert_ok(dr_scorer_create(m, &sa, &e_));
    assert_ok(dr_scorer_create(back, &sb, &e_));
    for (uint32_t u = 0; u < ds->n_users; u++) {
        const uint32_t *h1, *h2;
        size_t n1 = dr_dataset_user_items(ds, u, &h1, NULL);
        size_t n2 = dr_model_user_history(back, u, &h2);
        assert_int_equal(n1, n2);
        assert_memory_equal(h1, h2, n1 * sizeof *h1);
        assert_string_equal(dr_model_user_id(back, u), dr_dataset_user_id(ds, u));
        uint32_t found;
        assert_int_equal(dr_model_find_user(back, dr_dataset_user_id(ds, u), &found), DR_OK);
        assert_int_equal(found, u);
        assert_ok(dr_model_score(m, sa, u, h1, n1, a, &e_));
        assert_ok(dr_model_score(back, sb, u, h2, n2, b, &e_));
        assert_memory_equal(a, b, n * sizeof *a);
    }
    uint32_t none;
    assert_int_equal(dr_model_find_user(back, "no-such-user", &none), DR_NOTFOUND);
    for (uint32_t i = 0; i < n; i++) { /* titles and attributes travel with the model */
        assert_string_equal(dr_model_item_title(back, i), dr_dataset_item_title(ds, i));
        assert_string_equal(dr_model_item_id(back, i), dr_dataset_item_id(ds, i));
        const char *x[16], *y[16];
        size_t nx = dr_model_item_attrs(back, i, x, 16), ny = dr_dataset_item_attrs(ds, i, y, 16);
        assert_int_equal(nx, ny);
        assert_true(nx > 0);
        for (size_t k = 0; k < nx && k < 16; k++) assert_string_equal(x[k], y[k]);
    }

    /* a dataset with another catalogue is refused, naming the difference */
    dr_dataset *other = small_synth(6);
    dr_error e = {0};
    dr_status st = dr_model_check_dataset(back, other, &e);
    if (other->n_items == ds->n_items) {
        /* same size: the ids differ somewhere or the catalogue is truly identical */
        int same = 1;
        for (uint32_t i = 0; i < n; i++) same &= !strcmp(ds->items.str[i], other->items.str[i]);
        assert_int_equal(st, same ? DR_OK : DR_FORMAT);
    } else {
        assert_int_equal(st, DR_FORMAT);
        assert_non_null(strstr(e.msg, "items"));
    }
    dr_dataset_free(other);

    dr_scorer_free(sa);
    dr_scorer_free(sb);
    free(a);
    free(b);
    dr_model_free(back);
    dr_model_free(m);
    dr_split_free(sp);
    dr_dataset_free(ds);
    dr_test_rmrf(dir);
}

static void test_mf_round_trip(void **state) {
    (void)state;
    round_trip("mf");
}

static void test_sasrec_round_trip(void **state) {
    (void)state;
    round_trip("sasrec");
}

static void test_pop_round_trip(void **state) {
    (void)state;
    round_trip("pop");
}

static void test_itemknn_round_trip(void **state) {
    (void)state;
    round_trip("itemknn");
}

/* Copies checkpoint src to dst through a writer, handing each section's bytes (a copy) and
 * the metadata to edit() first: a damaged file with a valid checksum. */
typedef void (*edit_fn)(const char *name, void *data, uint64_t bytes, const char **key,
                        const char **value);

static void rewrite(const char *src, const char *dst, edit_fn edit) {
    dr_ckpt *c = NULL;
    assert_ok(dr__ckpt_open(src, &c, &e_));
    dr_ckpt_writer *w = NULL;
    assert_ok(dr__ckpt_writer_create(&w, &e_));
    uint32_t n = dr__ckpt_n_sections(c);
    void **copies = calloc(n + 1, sizeof *copies);
    for (size_t i = 0; i < dr__ckpt_n_meta(c); i++) {
        const char *k, *v;
        dr__ckpt_meta_at(c, i, &k, &v);
        edit(NULL, NULL, 0, &k, &v);
        assert_ok(dr__ckpt_add_meta(w, k, v, &e_));
    }
    for (uint32_t i = 0; i < n; i++) {
        const dr_ckpt_section *s = dr__ckpt_section_at(c, i);
        if (!strcmp(s->name, DR_CKPT_META_NAME)) continue;
        copies[i] = malloc(s->size + 1);
        memcpy(copies[i], s->data, s->size);
        edit(s->name, copies[i], s->size, NULL, NULL);
        assert_ok(dr__ckpt_add(w, s->name, (dr_dtype)s->dtype, s->rank, s->shape, copies[i], &e_));
    }
    assert_ok(dr__ckpt_write(w, dst, &e_));
    dr__ckpt_writer_free(w);
    for (uint32_t i = 0; i < n; i++) free(copies[i]);
    free(copies);
    dr__ckpt_close(c);
}

static void edit_item_user(const char *name, void *data, uint64_t bytes, const char **k, const char **v) {
    if (name && !strcmp(name, "knn.item_user")) ((uint32_t *)data)[0] = UINT32_MAX - 1;
}
static void edit_user_item(const char *name, void *data, uint64_t bytes, const char **k, const char **v) {
    if (name && !strcmp(name, "knn.user_item")) ((uint32_t *)data)[bytes / 4 - 1] = 1u << 30;
}
static void edit_item_off(const char *name, void *data, uint64_t bytes, const char **k, const char **v) {
    if (name && !strcmp(name, "knn.item_off")) ((int64_t *)data)[1] = INT64_MAX;
}
static void edit_inv_sqrt(const char *name, void *data, uint64_t bytes, const char **k, const char **v) {
    if (name && !strcmp(name, "knn.inv_sqrt")) ((double *)data)[0] = 0;
}
static void edit_knn_last(const char *name, void *data, uint64_t bytes, const char **k, const char **v) {
    if (!name && !strcmp(*k, "knn_last")) *v = "100000";
}
static void edit_pop(const char *name, void *data, uint64_t bytes, const char **k, const char **v) {
    if (name && !strcmp(name, "pop.count")) ((float *)data)[2] = -1.0f;
}

/* pop and itemknn checkpoints whose sections lie (ids, offsets, 1/sqrt(n_i), knn_last, a
 * count) are DR_FORMAT naming the file and what is wrong, never a crash. */
static void test_baselines_damaged(void **state) {
    (void)state;
    dr_dataset *ds = small_synth(5);
    dr_split *sp = NULL;
    assert_ok(dr_split_create(ds, DR_SPLIT_LOO, &sp, &e_));
    char dir[256], knn[300], pop[300], bad[300];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(knn, sizeof knn, "%s/knn.drm", dir);
    snprintf(pop, sizeof pop, "%s/pop.drm", dir);
    snprintf(bad, sizeof bad, "%s/bad.drm", dir);
    const char *kinds[] = {"itemknn", "pop"}, *paths[] = {knn, pop};
    for (int k = 0; k < 2; k++) {
        dr_model *m = fit(ds, sp, kinds[k]);
        assert_ok(dr_model_save(m, ds, sp, paths[k], &e_));
        dr_model_free(m);
    }
    const struct {
        const char *src;
        edit_fn edit;
        const char *says;
    } cases[] = {
        {knn, edit_item_user, "id out of range"},
        {knn, edit_user_item, "id out of range"},
        {knn, edit_item_off, "offsets"},
        {knn, edit_inv_sqrt, "knn.inv_sqrt[0]"},
        {knn, edit_knn_last, "knn_last"},
        {pop, edit_pop, "pop.count[2]"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        rewrite(cases[k].src, bad, cases[k].edit);
        dr_model *x = NULL;
        dr_error e = {0};
        assert_int_equal(dr_model_load(bad, &x, &e), DR_FORMAT);
        assert_null(x);
        if (!strstr(e.msg, "bad.drm") || !strstr(e.msg, cases[k].says))
            fail_msg("case %zu: '%s' does not name the file and '%s'", k, e.msg, cases[k].says);
    }
    dr_split_free(sp);
    dr_dataset_free(ds);
    dr_test_rmrf(dir);
}

/* A T0 split is recorded with its T0. */
static void test_t0_recorded(void **state) {
    (void)state;
    dr_dataset *ds = small_synth(7);
    dr_split *sp = NULL;
    assert_ok(dr_split_create(ds, DR_SPLIT_T0, &sp, &e_));
    dr_model *m = fit(ds, sp, "mf"), *back = NULL;
    char dir[256], path[300], want[32];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/t0.drm", dir);
    assert_ok(dr_model_save(m, ds, sp, path, &e_));
    assert_ok(dr_model_load(path, &back, &e_));
    assert_string_equal(dr_model_meta(back, "split"), "t0");
    snprintf(want, sizeof want, "%lld", (long long)dr_split_t0(sp));
    assert_string_equal(dr_model_meta(back, "T0"), want);
    /* its histories are the pre-T0 prefixes (training and validation events): a server
     * started from it is at T0 */
    uint32_t n_valid = 0;
    for (uint32_t u = 0; u < dr_dataset_n_users(ds); u++) {
        uint32_t nt = 0, nv = 0;
        const uint32_t *h = NULL;
        dr_split_user(sp, u, &nt, &nv, NULL);
        n_valid += nv;
        nt += nv;
        assert_int_equal(dr_model_user_history(back, u, &h), nt);
        for (uint32_t k = 0; k < nt; k++) assert_int_equal(h[k], ds->hist_item[ds->user_off[u] + k]);
    }
    assert_true(n_valid > 0); /* the T0 split has its validation targets */
    dr_model_free(back);
    dr_model_free(m);
    dr_split_free(sp);
    dr_dataset_free(ds);
    dr_test_rmrf(dir);
}

/* Notes set on a model travel in its checkpoint; bad keys and values are refused by name. */
static void test_notes(void **state) {
    (void)state;
    dr_dataset *ds = small_synth(8);
    dr_split *sp = NULL;
    assert_ok(dr_split_create(ds, DR_SPLIT_LOO, &sp, &e_));
    dr_model *m = fit(ds, sp, "mf"), *back = NULL;
    dr_error e = {0};
    assert_ok(dr_model_set_meta(m, "tune.valid_ndcg10", "0.1", &e_));
    assert_ok(dr_model_set_meta(m, "tune.valid_ndcg10", "0.25", &e_)); /* replaced */
    assert_ok(dr_model_set_meta(m, "adapter.window", "1024", &e_));
    assert_string_equal(dr_model_meta(m, "tune.valid_ndcg10"), "0.25");
    assert_int_equal(dr_model_set_meta(m, "dim", "8", &e), DR_ARG); /* the checkpoint's own */
    assert_non_null(strstr(e.msg, "'dim'"));
    assert_int_equal(dr_model_set_meta(m, "a b.c", "1", &e), DR_ARG);
    assert_int_equal(dr_model_set_meta(m, "x.y", "two\nlines", &e), DR_ARG);
    assert_int_equal(dr_model_set_meta(m, "x.y", "\xff", &e), DR_ARG);
    assert_int_equal(dr_model_set_meta(m, NULL, "1", &e), DR_ARG);
    char dir[256], path[300], key[32];
    for (uint32_t k = 2; k < DR_MODEL_NOTES_MAX; k++) {
        snprintf(key, sizeof key, "n.k%u", k);
        assert_ok(dr_model_set_meta(m, key, "v", &e_));
    }
    assert_int_equal(dr_model_set_meta(m, "n.one_more", "v", &e), DR_LIMIT);
    assert_ok(dr_model_set_meta(m, "n.k2", "w", &e_)); /* replacing needs no room */
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/notes.drm", dir);
    assert_ok(dr_model_save(m, ds, sp, path, &e_));
    assert_ok(dr_model_load(path, &back, &e_));
    assert_string_equal(dr_model_meta(back, "tune.valid_ndcg10"), "0.25");
    assert_string_equal(dr_model_meta(back, "adapter.window"), "1024");
    assert_string_equal(dr_model_meta(back, "n.k2"), "w");
    assert_string_equal(dr_model_meta(back, "model"), "mf");
    assert_null(dr_model_meta(back, "n.one_more"));
    assert_ok(dr_model_set_meta(back, "adapter.window", "512", &e_)); /* over the file's */
    assert_string_equal(dr_model_meta(back, "adapter.window"), "512");
    dr_model_free(back);
    dr_model_free(m);
    dr_split_free(sp);
    dr_dataset_free(ds);
    dr_test_rmrf(dir);
}

/* Truncated and corrupted files fail with DR_FORMAT (never a crash); so does a checkpoint
 * of an unknown model kind. */
static void test_damaged(void **state) {
    (void)state;
    dr_dataset *ds = small_synth(5);
    dr_split *sp = NULL;
    assert_ok(dr_split_create(ds, DR_SPLIT_LOO, &sp, &e_));
    dr_model *m = fit(ds, sp, "sasrec");
    char dir[256], path[300], bad[300];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/m.drm", dir);
    snprintf(bad, sizeof bad, "%s/bad.drm", dir);
    assert_ok(dr_model_save(m, ds, sp, path, &e_));
    char *buf;
    size_t len;
    assert_ok(dr__read_file(path, 1 << 30, &buf, &len, &e_));
    for (int cut = 1; cut < 16; cut++) {
        FILE *f = fopen(bad, "wb");
        fwrite(buf, 1, len * (size_t)cut / 16, f);
        fclose(f);
        dr_model *x = NULL;
        dr_error e = {0};
        assert_int_equal(dr_model_load(bad, &x, &e), DR_FORMAT);
        assert_null(x);
        assert_non_null(strstr(e.msg, "bad.drm"));
    }
    buf[len / 2] ^= 0x40; /* a flipped bit: the checksum catches it */
    FILE *f = fopen(bad, "wb");
    fwrite(buf, 1, len, f);
    fclose(f);
    dr_model *x = NULL;
    dr_error e = {0};
    assert_int_equal(dr_model_load(bad, &x, &e), DR_FORMAT);
    free(buf);

    /* a valid container that is not a model */
    dr_ckpt_writer *w = NULL;
    assert_ok(dr__ckpt_writer_create(&w, &e_));
    assert_ok(dr__ckpt_add_meta(w, "model", "nonsense", &e_));
    assert_ok(dr__ckpt_write(w, bad, &e_));
    dr__ckpt_writer_free(w);
    assert_int_equal(dr_model_load(bad, &x, &e), DR_FORMAT);
    assert_non_null(strstr(e.msg, "nonsense"));
    assert_int_equal(dr_model_load("/nonexistent/m.drm", &x, &e), DR_IO);

    dr_model_free(m);
    dr_split_free(sp);
    dr_dataset_free(ds);
    dr_test_rmrf(dir);
}

/* ---- out of memory: fit, load and scorer of each kind on a tiny case */

typedef struct io_oom {
    const dr_dataset *ds;
    const dr_split *sp;
    dr_model_params mp;
    const char *path;
    dr_model *m;
    const dr_model *base; /* the scorer's model */
    dr_scorer *sc;
} io_oom;

static dr_status io_fit(void *ud, dr_error *err) {
    io_oom *u = ud;
    return dr_model_fit(u->ds, u->sp, &u->mp, &u->m, err);
}

static dr_status io_load(void *ud, dr_error *err) {
    io_oom *u = ud;
    return dr_model_load(u->path, &u->m, err);
}

DR_OOM_FREE_FN(io_model_free, io_oom, m, dr_model_free)

static dr_status io_scorer(void *ud, dr_error *err) {
    io_oom *u = ud;
    return dr_scorer_create(u->base, &u->sc, err);
}

DR_OOM_FREE_FN(io_scorer_free, io_oom, sc, dr_scorer_free)

static void oom_kind(const char *name, const char *modalities, const char *dir) {
    dr_synth_params sp = dr_synth_default_params();
    sp.seed = 3;
    sp.n_users = 12;
    sp.n_items = 10;
    sp.n_events = 150;
    sp.n_genres = 2;
    sp.mod_dim[0] = sp.mod_dim[2] = 3;
    dr_dataset *ds = NULL;
    assert_ok(dr_synth_generate(&sp, &ds, &e_));
    dr_split *split = NULL;
    assert_ok(dr_split_create(ds, DR_SPLIT_LOO, &split, &e_));
    char path[300], what[128];
    snprintf(path, sizeof path, "%s/%s%s.drm", dir, name, modalities ? "-fused" : "");
    io_oom u = {.ds = ds, .sp = split, .mp = dr_model_default_params(), .path = path};
    u.mp.name = name;
    u.mp.epochs = 2;
    u.mp.eval_every = 1; /* the validation pass and the best-epoch copy too */
    u.mp.threads = 1;
    u.mp.max_len = 4;
    u.mp.dim = 4;
    u.mp.heads = 1;
    u.mp.blocks = 1;
    u.mp.batch = 4;
    u.mp.modalities = modalities;
    snprintf(what, sizeof what, "dr_model_fit (%s%s)", name, modalities ? ", fused" : "");
    dr_oom_case c = {.name = what, .call = io_fit, .cleanup = io_model_free, .ud = &u,
                     .out = (void **)&u.m};
    assert_true(dr_oom_check(&c) > 0);
    dr_model *m = NULL;
    assert_ok(dr_model_fit(ds, split, &u.mp, &m, &e_));
    assert_ok(dr_model_save(m, ds, split, path, &e_));
    dr_model_free(m);
    snprintf(what, sizeof what, "dr_model_load (%s%s)", name, modalities ? ", fused" : "");
    c.name = what;
    c.call = io_load;
    assert_true(dr_oom_check(&c) > 0);
    assert_ok(dr_model_load(path, &m, &e_));
    u.base = m;
    snprintf(what, sizeof what, "dr_scorer_create (%s%s)", name, modalities ? ", fused" : "");
    c = (dr_oom_case){.name = what, .call = io_scorer, .cleanup = io_scorer_free, .ud = &u,
                      .out = (void **)&u.sc};
    assert_true(dr_oom_check(&c) > 0);
    if (m->vt->warm_start) { /* a warm start from the checkpoint: its id maps and copies too */
        u.mp.init = m;
        snprintf(what, sizeof what, "dr_model_fit (%s%s, warm start)", name,
                 modalities ? ", fused" : "");
        c = (dr_oom_case){.name = what, .call = io_fit, .cleanup = io_model_free, .ud = &u,
                          .out = (void **)&u.m};
        assert_true(dr_oom_check(&c) > 0);
    }
    dr_model_free(m);
    dr_split_free(split);
    dr_dataset_free(ds);
}

static void test_out_of_memory(void **state) {
    (void)state;
    char dir[256];
    dr_test_tmpdir(dir, sizeof dir);
    oom_kind("mf", NULL, dir);
    oom_kind("sasrec", NULL, dir);
    oom_kind("mf", "visual,text", dir);
    oom_kind("sasrec", "visual,text", dir);
    oom_kind("pop", NULL, dir);
    oom_kind("itemknn", NULL, dir);
    dr_test_rmrf(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mf_round_trip),
        cmocka_unit_test(test_sasrec_round_trip),
        cmocka_unit_test(test_pop_round_trip),
        cmocka_unit_test(test_itemknn_round_trip),
        cmocka_unit_test(test_baselines_damaged),
        cmocka_unit_test(test_t0_recorded),
        cmocka_unit_test(test_notes),
        cmocka_unit_test(test_damaged),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
