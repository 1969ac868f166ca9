/* test_split.c - LOO, GIVEN and T0 splits (src/split.c) on tiny datasets built in the test. */
#include "testutil.h"
#include "oom.h"

#include "dataset.h"
#include "model.h"

typedef struct ev {
    const char *u, *i;
    int64_t t;
    uint8_t tag;
} ev;

static dr_dataset *build(const ev *e, size_t n) {
    dr_builder *b = NULL;
    dr_dataset *ds = NULL;
    assert_int_equal(dr__builder_create(&b), DR_OK);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(dr__builder_add_event(b, e[k].u, strlen(e[k].u), e[k].i, strlen(e[k].i),
                                              e[k].t, 1.0f, e[k].tag),
                         DR_OK);
    dr_error err = {0};
    assert_int_equal(dr__builder_finish(b, &ds, &err), DR_OK);
    dr__builder_free(b);
    return ds;
}

static uint32_t uid(const dr_dataset *ds, const char *ext) {
    uint32_t u = UINT32_MAX;
    assert_int_equal(dr_dataset_find_user(ds, ext, &u), DR_OK);
    return u;
}

static void expect_user(const dr_split *s, uint32_t u, uint32_t tr, uint32_t va, uint32_t te) {
    uint32_t a, b, c;
    dr_split_user(s, u, &a, &b, &c);
    assert_int_equal(a, tr);
    assert_int_equal(b, va);
    assert_int_equal(c, te);
}

static const ev k_events[] = {
    {"a", "x", 1, DR_TAG_TRAIN}, {"b", "y", 2, DR_TAG_TRAIN}, {"a", "y", 3, DR_TAG_TRAIN},
    {"c", "z", 4, DR_TAG_TRAIN}, {"a", "z", 5, DR_TAG_VALID}, {"c", "x", 6, DR_TAG_VALID},
    {"a", "x", 7, DR_TAG_TEST},  {"b", "z", 8, DR_TAG_TEST},  {"a", "w", 9, DR_TAG_TEST},
    {"c", "w", 10, DR_TAG_TEST},
};

static void test_loo(void **state) {
    (void)state;
    dr_dataset *ds = build(k_events, DR_ARRAY_LEN(k_events));
    dr_split *s = NULL;
    dr_error err = {0};
    assert_int_equal(dr_split_create(ds, DR_SPLIT_LOO, &s, &err), DR_OK);
    assert_int_equal(dr_split_get_kind(s), DR_SPLIT_LOO);
    expect_user(s, uid(ds, "a"), 3, 1, 1); /* 5 events */
    expect_user(s, uid(ds, "b"), 0, 0, 0); /* 2 events: dropped */
    expect_user(s, uid(ds, "c"), 1, 1, 1); /* 3 events */
    assert_int_equal(dr_split_n_eval_users(s), 2);
    expect_user(s, 99, 0, 0, 0); /* out of range reads as empty */
    dr_split_free(s);
    dr_split_free(NULL);
    dr_dataset_free(ds);
}

static void test_given(void **state) {
    (void)state;
    dr_dataset *ds = build(k_events, DR_ARRAY_LEN(k_events));
    dr_split *s = NULL;
    dr_error err = {0};
    /* no given split on the dataset: an argument error */
    assert_int_equal(dr_split_create(ds, DR_SPLIT_GIVEN, &s, &err), DR_ARG);
    assert_null(s);
    ds->has_given_split = 1;
    assert_int_equal(dr_split_create(ds, DR_SPLIT_GIVEN, &s, &err), DR_OK);
    expect_user(s, uid(ds, "a"), 2, 1, 2);
    expect_user(s, uid(ds, "b"), 1, 0, 1);
    expect_user(s, uid(ds, "c"), 1, 1, 1);
    assert_int_equal(dr_split_n_eval_users(s), 3);
    dr_split_free(s);
    dr_dataset_free(ds);
}

static void test_given_interleaved(void **state) {
    (void)state;
    const ev e[] = {
        {"u1", "x", 1, DR_TAG_TRAIN}, {"u1", "y", 2, DR_TAG_VALID}, {"u1", "z", 3, DR_TAG_TEST},
        {"bad", "x", 4, DR_TAG_TRAIN}, {"bad", "y", 5, DR_TAG_TEST}, {"bad", "z", 6, DR_TAG_TRAIN},
    };
    dr_dataset *ds = build(e, DR_ARRAY_LEN(e));
    ds->has_given_split = 1;
    dr_split *s = NULL;
    dr_error err = {0};
    assert_int_equal(dr_split_create(ds, DR_SPLIT_GIVEN, &s, &err), DR_FORMAT);
    assert_null(s);
    assert_non_null(strstr(err.msg, "user bad"));
    dr_dataset_free(ds);

    const ev e2[] = {{"u1", "x", 1, DR_TAG_TRAIN}, {"v", "y", 2, DR_TAG_NONE}};
    ds = build(e2, DR_ARRAY_LEN(e2));
    ds->has_given_split = 1;
    assert_int_equal(dr_split_create(ds, DR_SPLIT_GIVEN, &s, &err), DR_FORMAT);
    assert_non_null(strstr(err.msg, "user v"));
    dr_dataset_free(ds);
}

static void test_t0(void **state) {
    (void)state;
    dr_dataset *ds = build(k_events, DR_ARRAY_LEN(k_events));
    dr_split *s = NULL;
    dr_error err = {0};
    /* 10 events: index floor(0.8 * 10) = 8 -> T0 = 9 */
    assert_int_equal(dr_split_create(ds, DR_SPLIT_T0, &s, &err), DR_OK);
    assert_int_equal(dr_split_get_kind(s), DR_SPLIT_T0);
    assert_int_equal(dr_split_t0(s), 9);
    /* the last pre-T0 event validates (PROTOCOL.md: the base's own validation) */
    expect_user(s, uid(ds, "a"), 3, 1, 1); /* times 1 3 5 | 7 | 9 */
    expect_user(s, uid(ds, "b"), 1, 1, 0); /* 2 | 8 */
    expect_user(s, uid(ds, "c"), 1, 1, 1); /* 4 | 6 | 10 */
    assert_int_equal(dr_split_n_eval_users(s), 2);
    dr_split_free(s);
    /* at another time, with and without validation (refits, validation streams) */
    assert_int_equal(dr__split_t0_at(ds, 6, 1, &s, &err), DR_OK);
    assert_int_equal(dr_split_t0(s), 6);
    expect_user(s, uid(ds, "a"), 2, 1, 2); /* 1 3 | 5 | 7 9 */
    expect_user(s, uid(ds, "b"), 1, 0, 1); /* 2 | 8: one event before t trains */
    dr_split_free(s);
    assert_int_equal(dr__split_t0_at(ds, 6, 0, &s, &err), DR_OK);
    expect_user(s, uid(ds, "a"), 3, 0, 2);
    expect_user(s, uid(ds, "c"), 1, 0, 2); /* 4 | 6 10 */
    assert_int_equal(dr_split_n_eval_users(s), 3);
    dr_split_free(s);
    dr_dataset_free(ds);

    /* ties at T0: every event at time T0 is a replay event; 7 events -> index 5 */
    const ev e[] = {{"a", "x", 1, 0}, {"a", "y", 2, 0}, {"b", "x", 3, 0}, {"b", "y", 5, 0},
                    {"a", "z", 5, 0}, {"c", "z", 5, 0}, {"c", "x", 6, 0}};
    ds = build(e, DR_ARRAY_LEN(e));
    assert_int_equal(dr_split_create(ds, DR_SPLIT_T0, &s, &err), DR_OK);
    assert_int_equal(dr_split_t0(s), 5);
    expect_user(s, uid(ds, "a"), 1, 1, 1);
    expect_user(s, uid(ds, "b"), 1, 0, 1); /* one pre-T0 event: it trains */
    expect_user(s, uid(ds, "c"), 0, 0, 2);
    dr_dataset_stats st;
    assert_int_equal(dr_dataset_get_stats(ds, &st), DR_OK);
    assert_int_equal(st.t0, dr_split_t0(s)); /* one definition of T0 */
    dr_split_free(s);
    dr_dataset_free(ds);
}

/* ALL (a base to serve): every event trains but each user's last, which validates. */
static void test_all(void **state) {
    (void)state;
    dr_dataset *ds = build(k_events, DR_ARRAY_LEN(k_events));
    dr_split *s = NULL;
    dr_error err = {0};
    assert_int_equal(dr_split_create(ds, DR_SPLIT_ALL, &s, &err), DR_OK);
    assert_int_equal(dr_split_get_kind(s), DR_SPLIT_ALL);
    expect_user(s, uid(ds, "a"), 4, 1, 0);
    expect_user(s, uid(ds, "b"), 1, 1, 0);
    expect_user(s, uid(ds, "c"), 2, 1, 0);
    assert_int_equal(dr_split_n_eval_users(s), 0);
    assert_int_equal(dr_split_n_valid_users(s), 3);
    dr_split_free(s);
    for (int k = DR_SPLIT_LOO; k <= DR_SPLIT_ALL; k++)
        assert_int_equal(dr__split_kind_parse(dr__split_kind_name(k)), k);
    assert_string_equal(dr__split_kind_name(DR_SPLIT_ALL), "all");
    assert_int_equal(dr__split_kind_parse("nope"), -1);
    dr_dataset_free(ds);
}

/* A warm retrain's validation: targets the init's checkpoint has in its histories join
 * training; the others stay; a model without histories is refused. */
static void test_unseen_valid(void **state) {
    (void)state;
    dr_dataset *ds = build(k_events, DR_ARRAY_LEN(k_events));
    dr_dataset *old = build(k_events, DR_ARRAY_LEN(k_events) - 2); /* all but a's and c's last */
    dr_split *so = NULL, *s = NULL;
    dr_error err = {0};
    assert_int_equal(dr_split_create(old, DR_SPLIT_ALL, &so, &err), DR_OK);
    dr_model_params mp = dr_model_default_params();
    mp.name = "pop";
    dr_model *fitted = NULL, *init = NULL;
    assert_int_equal(dr_model_fit(old, so, &mp, &fitted, &err), DR_OK);
    char dir[256], path[600];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/old.drm", dir);
    assert_int_equal(dr_model_save(fitted, old, so, path, &err), DR_OK);
    assert_int_equal(dr_model_load(path, &init, &err), DR_OK);
    assert_int_equal(dr_split_create(ds, DR_SPLIT_ALL, &s, &err), DR_OK);
    uint32_t kept = 99;
    assert_int_equal(dr_split_unseen_valid(s, ds, fitted, &kept, &err), DR_ARG); /* no histories */
    assert_non_null(strstr(err.msg, "holds no user histories"));
    assert_int_equal(kept, 0);
    assert_int_equal(dr_split_unseen_valid(s, ds, init, &kept, &err), DR_OK);
    assert_int_equal(kept, 2);
    expect_user(s, uid(ds, "a"), 4, 1, 0); /* its last event (t 9) is new */
    expect_user(s, uid(ds, "b"), 2, 0, 0); /* seen: both events train */
    expect_user(s, uid(ds, "c"), 2, 1, 0); /* new (t 10) */
    assert_int_equal(dr_split_n_valid_users(s), 2);
    dr_split_free(s);
    dr_model_free(init);
    dr_model_free(fitted);
    dr_split_free(so);
    dr_dataset_free(old);
    dr_dataset_free(ds);
    dr_test_rmrf(dir);
}

static void test_t0_index_matches_float_definition(void **state) {
    (void)state;
    /* floor(0.8 n) computed in integers must agree with the definition for every n */
    for (size_t n = 1; n < 300; n++) {
        ev e[300];
        char names[300][8];
        for (size_t k = 0; k < n; k++) {
            snprintf(names[k], sizeof names[k], "i%zu", k);
            e[k] = (ev){"u", names[k], (int64_t)k * 10, 0};
        }
        dr_dataset *ds = build(e, n);
        dr_split *s = NULL;
        assert_ok(dr_split_create(ds, DR_SPLIT_T0, &s, &e_));
        size_t idx = 0; /* the largest idx with idx <= 0.8 n, i.e. 5 idx <= 4 n */
        while (5 * (idx + 1) <= 4 * n) idx++;
        assert_int_equal(dr_split_t0(s), (int64_t)idx * 10);
        uint32_t nv = idx >= 2; /* the last pre-T0 event validates when there are two */
        expect_user(s, 0, (uint32_t)idx - nv, nv, (uint32_t)(n - idx));
        dr_split_free(s);
        dr_dataset_free(ds);
    }
}

static void test_bad_args(void **state) {
    (void)state;
    dr_dataset *ds = build(k_events, DR_ARRAY_LEN(k_events));
    dr_split *s = NULL;
    dr_error err = {0};
    assert_int_equal(dr_split_create(NULL, DR_SPLIT_LOO, &s, &err), DR_ARG);
    assert_int_equal(dr_split_create(ds, (dr_split_kind)42, &s, &err), DR_ARG);
    assert_int_equal(dr_split_create(ds, DR_SPLIT_LOO, NULL, &err), DR_ARG);
    dr_dataset_free(ds);
}

typedef struct split_oom {
    const dr_dataset *ds;
    dr_split *s;
} split_oom;

static dr_status split_call(void *ud, dr_error *err) {
    split_oom *u = ud;
    return dr_split_create(u->ds, DR_SPLIT_LOO, &u->s, err);
}

DR_OOM_FREE_FN(split_free_case, split_oom, s, dr_split_free)

static void test_oom(void **state) {
    (void)state;
    dr_dataset *ds = build(k_events, DR_ARRAY_LEN(k_events));
    split_oom u = {.ds = ds};
    dr_oom_case c = {.name = "dr_split_create (loo)", .call = split_call,
                     .cleanup = split_free_case, .ud = &u, .out = (void **)&u.s};
    assert_true(dr_oom_check(&c) > 0);
    dr_dataset_free(ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loo),
        cmocka_unit_test(test_given),
        cmocka_unit_test(test_given_interleaved),
        cmocka_unit_test(test_t0),
        cmocka_unit_test(test_all),
        cmocka_unit_test(test_unseen_valid),
        cmocka_unit_test(test_t0_index_matches_float_definition),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
