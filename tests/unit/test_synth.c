/* test_synth.c - the synthetic generator: determinism, counts, planted structure, bad params. */
#include "testutil.h"
#include "oom.h"

#include <math.h>

#include "dataset.h"
#include "dataset_synth.h"

/* A small world: fast, but large enough for the statistics below. */
static dr_synth_params small_params(void) {
    dr_synth_params p = dr_synth_default_params();
    p.n_users = 400;
    p.n_items = 600;
    p.n_events = 40000;
    p.n_genres = 8;
    return p;
}

static dr_dataset *gen(const dr_synth_params *p) {
    dr_dataset *ds = NULL;
    dr_error e = {0};
    dr_status s = dr_synth_generate(p, &ds, &e);
    if (s != DR_OK) fail_msg("dr_synth_generate: %s: %s", dr_status_name(s), e.msg);
    return ds;
}

static dr_synth_truth truth_of(const dr_synth_params *p, const dr_dataset *ds) {
    dr_synth_truth t;
    dr_error e = {0};
    dr_status s = dr__synth_truth_compute(p, ds, &t, &e);
    if (s != DR_OK) fail_msg("dr__synth_truth_compute: %s: %s", dr_status_name(s), e.msg);
    return t;
}

/* 1 when the two datasets hold the same bytes in everything the generator writes. */
static int same_dataset(const dr_dataset *a, const dr_dataset *b) {
    if (a->n_users != b->n_users || a->n_items != b->n_items || a->n_events != b->n_events)
        return 0;
    size_t n = a->n_events;
    if (memcmp(a->ev_user, b->ev_user, n * sizeof *a->ev_user) ||
        memcmp(a->ev_item, b->ev_item, n * sizeof *a->ev_item) ||
        memcmp(a->ev_time, b->ev_time, n * sizeof *a->ev_time) ||
        memcmp(a->ev_weight, b->ev_weight, n * sizeof *a->ev_weight))
        return 0;
    for (uint32_t u = 0; u < a->n_users; u++)
        if (strcmp(a->users.str[u], b->users.str[u])) return 0;
    for (uint32_t i = 0; i < a->n_items; i++) {
        if (strcmp(a->items.str[i], b->items.str[i])) return 0;
        if (strcmp(dr_dataset_item_title(a, i), dr_dataset_item_title(b, i))) return 0;
        const char *x[8], *y[8];
        size_t nx = dr_dataset_item_attrs(a, i, x, 8), ny = dr_dataset_item_attrs(b, i, y, 8);
        if (nx != ny) return 0;
        for (size_t k = 0; k < nx && k < 8; k++)
            if (strcmp(x[k], y[k])) return 0;
    }
    if (a->n_mod != b->n_mod) return 0;
    for (int m = 0; m < a->n_mod; m++) {
        if (strcmp(a->mod[m].name, b->mod[m].name) || a->mod[m].dim != b->mod[m].dim) return 0;
        if (memcmp(a->mod[m].x, b->mod[m].x, (size_t)a->n_items * a->mod[m].dim * sizeof(float)))
            return 0;
        if (memcmp(a->mod[m].present, b->mod[m].present, a->n_items)) return 0;
    }
    return 1;
}

static void test_defaults(void **state) {
    (void)state;
    dr_synth_params p = dr_synth_default_params();
    assert_int_equal(p.seed, 1);
    assert_int_equal(p.n_users, 2000);
    assert_int_equal(p.n_items, 1500);
    assert_int_equal(p.n_events, 100000);
    assert_int_equal(p.n_genres, 16);
    assert_int_equal(p.latent_dim, 32);
    assert_int_equal(p.t_start, 1600000000);
    assert_int_equal(p.t_step, 60);
    assert_int_equal(p.mod_dim[0], 64);
    assert_int_equal(p.mod_dim[1], 32);
    assert_int_equal(p.mod_dim[2], 48);
    dr_error e = {0};
    assert_int_equal(dr__synth_check_params(&p, &e), DR_OK);
}

static void test_determinism(void **state) {
    (void)state;
    dr_synth_params p = small_params();
    dr_dataset *a = gen(&p), *b = gen(&p);
    assert_true(same_dataset(a, b));
    p.seed = 2;
    dr_dataset *c = gen(&p);
    assert_false(same_dataset(a, c));
    /* the seed changes the events themselves, not only the ids */
    size_t differ = 0;
    for (size_t k = 0; k < a->n_events; k++) differ += a->ev_time[k] != c->ev_time[k];
    assert_true(differ > a->n_events / 2);
    dr_dataset_free(a);
    dr_dataset_free(b);
    dr_dataset_free(c);
}

static void test_counts_and_births(void **state) {
    (void)state;
    dr_synth_params p = small_params();
    dr_dataset *ds = gen(&p);
    assert_string_equal(dr_dataset_name(ds), "synth");
    assert_int_equal(dr_dataset_n_users(ds), p.n_users);
    assert_int_equal(dr_dataset_n_items(ds), p.n_items);
    assert_int_equal(dr_dataset_n_events(ds), p.n_events);
    assert_true(ds->time_scale == 1.0);
    assert_int_equal(ds->ev_time[0], p.t_start);
    /* globally time-ordered; the timeline is about n_events * t_step long */
    for (size_t k = 1; k < ds->n_events; k++) assert_true(ds->ev_time[k] >= ds->ev_time[k - 1]);
    double span = (double)(ds->ev_time[ds->n_events - 1] - p.t_start);
    double want = (double)p.n_events * (double)p.t_step;
    assert_true(fabs(span - want) < 0.05 * want);
    /* every user has at least 3 events; no immediate repeats of most (user, item) pairs */
    size_t repeats = 0;
    for (uint32_t u = 0; u < ds->n_users; u++) {
        const uint32_t *items;
        size_t n = dr_dataset_user_items(ds, u, &items, NULL);
        assert_true(n >= 3);
        for (size_t k = 1; k < n; k++) repeats += items[k] == items[k - 1];
    }
    assert_true(repeats < ds->n_events / 100);
    /* no event before its item's birth; new items exist and do get consumed */
    dr_synth_truth t = truth_of(&p, ds);
    size_t n_new = 0, n_new_used = 0;
    uint32_t *count = calloc(ds->n_items, sizeof *count);
    assert_non_null(count);
    for (size_t k = 0; k < ds->n_events; k++) {
        assert_true(ds->ev_time[k] >= t.item_birth[ds->ev_item[k]]);
        count[ds->ev_item[k]]++;
    }
    for (uint32_t i = 0; i < ds->n_items; i++) {
        if (t.item_birth[i] == p.t_start) continue;
        n_new++;
        n_new_used += count[i] > 0;
    }
    assert_int_equal(n_new, (size_t)(p.new_item_frac * p.n_items + 0.5));
    assert_true(n_new_used > n_new * 3 / 4);
    /* items without events come last (cold catalogue items) */
    int seen_cold = 0;
    for (uint32_t i = 0; i < ds->n_items; i++) {
        if (count[i] == 0) seen_cold = 1;
        else assert_false(seen_cold);
    }
    /* titles and attributes */
    for (uint32_t i = 0; i < ds->n_items; i++) {
        const char *title = dr_dataset_item_title(ds, i), *id = dr_dataset_item_id(ds, i);
        assert_true(strncmp(title, "The ", 4) == 0);
        assert_string_equal(strrchr(title, ' ') + 1, id + 1); /* "... 17" for "i17" */
        const char *a[8];
        assert_int_equal(dr_dataset_item_attrs(ds, i, a, 8), 3);
        char want_genre[64], name[48];
        snprintf(want_genre, sizeof want_genre, "genre=%s",
                 dr__synth_genre_name(t.item_genre[i], name, sizeof name));
        int has_genre = 0, has_mood = 0, has_era = 0;
        for (int k = 0; k < 3; k++) {
            has_genre += strcmp(a[k], want_genre) == 0;
            has_mood += strncmp(a[k], "mood=", 5) == 0;
            has_era += strncmp(a[k], "era=", 4) == 0;
        }
        assert_int_equal(has_genre + has_mood + has_era, 3);
        if (t.item_birth[i] != p.t_start) { /* born in 2020-2021: era=2020s */
            int ok = 0;
            for (int k = 0; k < 3; k++) ok += strcmp(a[k], "era=2020s") == 0;
            assert_int_equal(ok, 1);
        }
    }
    free(count);
    dr__synth_truth_free(&t);
    dr_dataset_free(ds);
}

static int cmp_desc_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void test_long_tail(void **state) {
    (void)state;
    dr_synth_params p = small_params();
    dr_dataset *ds = gen(&p);
    uint32_t *count = calloc(ds->n_items, sizeof *count);
    assert_non_null(count);
    for (size_t k = 0; k < ds->n_events; k++) count[ds->ev_item[k]]++;
    qsort(count, ds->n_items, sizeof *count, cmp_desc_u32);
    size_t top = 0;
    for (uint32_t i = 0; i < ds->n_items / 10; i++) top += count[i];
    double share = (double)top / (double)ds->n_events;
    assert_true(share > 0.4); /* uniform would be 0.1 */
    free(count);
    dr_dataset_free(ds);
    /* zipf = 0 removes the long tail of popularity (taste still concentrates it a little) */
    p.zipf = 0;
    ds = gen(&p);
    count = calloc(ds->n_items, sizeof *count);
    assert_non_null(count);
    for (size_t k = 0; k < ds->n_events; k++) count[ds->ev_item[k]]++;
    qsort(count, ds->n_items, sizeof *count, cmp_desc_u32);
    top = 0;
    for (uint32_t i = 0; i < ds->n_items / 10; i++) top += count[i];
    assert_true((double)top / (double)ds->n_events < share);
    free(count);
    dr_dataset_free(ds);
}

/* Total variation distance between the user's genre histograms before and after time t. */
static double genre_shift(const dr_dataset *ds, const dr_synth_truth *t, uint32_t u, int64_t at,
                          size_t *n_before, size_t *n_after) {
    double hb[64] = {0}, ha[64] = {0};
    const uint32_t *items;
    const int64_t *times;
    size_t n = dr_dataset_user_items(ds, u, &items, &times), nb = 0, na = 0;
    for (size_t k = 0; k < n; k++) {
        uint32_t g = t->item_genre[items[k]];
        if (times[k] < at) hb[g]++, nb++;
        else ha[g]++, na++;
    }
    *n_before = nb;
    *n_after = na;
    if (!nb || !na) return -1;
    double tv = 0;
    for (uint32_t g = 0; g < t->n_genres; g++) tv += fabs(hb[g] / (double)nb - ha[g] / (double)na);
    return tv / 2;
}

static void test_drift_is_real(void **state) {
    (void)state;
    dr_synth_params p = small_params();
    p.drift_prob = 0.5;
    dr_dataset *ds = gen(&p);
    dr_synth_truth t = truth_of(&p, ds);
    assert_true(t.n_genres <= 64);
    double sum_d = 0, sum_s = 0;
    size_t n_d = 0, n_s = 0, n_drifted = 0;
    int64_t mid = (t.t_start + t.t_end) / 2;
    for (uint32_t u = 0; u < ds->n_users; u++) {
        int64_t at = t.user_drift[u];
        n_drifted += at >= 0;
        if (at >= 0) {
            assert_true(at >= t.t_start && at <= t.t_end);
            /* the planted new taste avoids the old favourite genres */
            double tv = 0;
            for (uint32_t g = 0; g < t.n_genres; g++)
                tv += fabs(t.user_taste_before[(size_t)u * t.n_genres + g] -
                           t.user_taste_after[(size_t)u * t.n_genres + g]);
            assert_true(tv / 2 > 0.3);
        }
        size_t nb, na;
        double tv = genre_shift(ds, &t, u, at >= 0 ? at : mid, &nb, &na);
        if (nb < 15 || na < 15) continue;
        if (at >= 0) sum_d += tv, n_d++;
        else sum_s += tv, n_s++;
    }
    /* drift_prob users drift (binomial, 4 sigma) */
    double sd = sqrt(p.n_users * p.drift_prob * (1 - p.drift_prob));
    assert_true(fabs((double)n_drifted - p.n_users * p.drift_prob) < 4 * sd);
    assert_true(n_d > 20 && n_s > 20);
    double mean_d = sum_d / (double)n_d, mean_s = sum_s / (double)n_s;
    /* drifted users change most of their genre mix; stable users only by sampling noise */
    assert_true(mean_d > 0.6);
    assert_true(mean_s < 0.35);
    assert_true(mean_d > mean_s + 0.3);
    dr__synth_truth_free(&t);
    dr_dataset_free(ds);
    /* drift_prob = 0: nobody drifts */
    p.drift_prob = 0;
    p.n_users = 50;
    p.n_events = 1000;
    ds = gen(&p);
    t = truth_of(&p, ds);
    for (uint32_t u = 0; u < t.n_users; u++) assert_int_equal(t.user_drift[u], -1);
    dr__synth_truth_free(&t);
    dr_dataset_free(ds);
}

static void test_missing_rates(void **state) {
    (void)state;
    dr_synth_params p = small_params();
    p.n_items = 3000;
    p.mod_missing[0] = 0.1;
    p.mod_missing[1] = 0.5;
    p.mod_missing[2] = 0.0;
    dr_dataset *ds = gen(&p);
    assert_int_equal(dr_dataset_n_modalities(ds), 3);
    static const char *names[3] = {"visual", "audio", "text"};
    for (int m = 0; m < 3; m++) {
        const char *name;
        uint32_t dim;
        const float *x;
        const uint8_t *present;
        assert_int_equal(dr_dataset_modality(ds, m, &name, &dim, &x, &present), DR_OK);
        assert_string_equal(name, names[m]);
        assert_int_equal(dim, p.mod_dim[m]);
        size_t missing = 0;
        for (uint32_t i = 0; i < ds->n_items; i++) {
            double norm = 0;
            for (uint32_t d = 0; d < dim; d++) norm += fabs(x[(size_t)i * dim + d]);
            if (!present[i]) {
                missing++;
                assert_true(norm == 0); /* zero row */
            } else {
                assert_int_equal(present[i], 1);
                assert_true(norm > 0);
            }
        }
        double q = p.mod_missing[m], n = ds->n_items;
        double sd = sqrt(n * q * (1 - q));
        assert_true(fabs((double)missing - n * q) <= 4 * sd + 0.5);
    }
    dr_dataset_free(ds);
    /* a zero dimension leaves the modality out */
    p = small_params();
    p.mod_dim[1] = 0;
    ds = gen(&p);
    assert_int_equal(dr_dataset_n_modalities(ds), 2);
    const char *name;
    assert_int_equal(dr_dataset_modality(ds, 1, &name, NULL, NULL, NULL), DR_OK);
    assert_string_equal(name, "text");
    dr_dataset_free(ds);
}

static void test_features_follow_truth(void **state) {
    (void)state;
    dr_synth_params p = small_params();
    dr_dataset *ds = gen(&p);
    dr_synth_truth t = truth_of(&p, ds);
    const float *x;
    const uint8_t *present;
    uint32_t dim;
    assert_int_equal(dr_dataset_modality(ds, 0, NULL, &dim, &x, &present), DR_OK);
    double same = 0, diff = 0;
    size_t n_same = 0, n_diff = 0;
    for (uint32_t i = 0; i < 300; i++) {
        for (uint32_t j = i + 1; j < 300; j++) {
            if (!present[i] || !present[j]) continue;
            double d2 = 0;
            for (uint32_t k = 0; k < dim; k++) {
                double d = x[(size_t)i * dim + k] - x[(size_t)j * dim + k];
                d2 += d * d;
            }
            if (t.item_genre[i] == t.item_genre[j]) same += sqrt(d2), n_same++;
            else diff += sqrt(d2), n_diff++;
        }
    }
    assert_true(n_same > 100 && n_diff > 100);
    same /= (double)n_same;
    diff /= (double)n_diff;
    assert_true(same < 0.8 * diff);
    /* the truth's latents are unit vectors near their dominant genre's direction */
    for (uint32_t i = 0; i < t.n_items; i++) {
        const float *v = t.item_latent + (size_t)i * t.latent_dim;
        const float *c = t.genre_vec + (size_t)t.item_genre[i] * t.latent_dim;
        double nn = 0, dot = 0;
        for (uint32_t d = 0; d < t.latent_dim; d++) nn += v[d] * v[d], dot += v[d] * c[d];
        assert_true(fabs(nn - 1) < 1e-4);
        assert_true(dot > 0.4);
    }
    dr__synth_truth_free(&t);
    dr_dataset_free(ds);
}

static void test_truth_by_generator_number(void **state) {
    (void)state;
    dr_synth_params p = small_params();
    p.n_users = 100;
    p.n_events = 2000;
    dr_dataset *ds = gen(&p);
    dr_synth_truth a = truth_of(&p, ds), b = truth_of(&p, NULL);
    for (uint32_t i = 0; i < ds->n_items; i++) {
        uint32_t k = (uint32_t)strtoul(dr_dataset_item_id(ds, i) + 1, NULL, 10);
        assert_int_equal(a.item_genre[i], b.item_genre[k]);
        assert_int_equal(a.item_birth[i], b.item_birth[k]);
    }
    for (uint32_t u = 0; u < ds->n_users; u++) {
        uint32_t k = (uint32_t)strtoul(dr_dataset_user_id(ds, u) + 1, NULL, 10);
        assert_int_equal(a.user_drift[u], b.user_drift[k]);
    }
    dr__synth_truth_free(&a);
    dr__synth_truth_free(&b);
    /* a dataset from other params is refused */
    dr_synth_params q = p;
    q.n_items = p.n_items + 1;
    dr_synth_truth c;
    dr_error e = {0};
    assert_int_equal(dr__synth_truth_compute(&q, ds, &c, &e), DR_ARG);
    dr__synth_truth_free(NULL);
    dr_dataset_free(ds);
}

static void expect_bad(const dr_synth_params *p, const char *field) {
    dr_dataset *ds = (dr_dataset *)(uintptr_t)1;
    dr_error e = {0};
    assert_int_equal(dr_synth_generate(p, &ds, &e), DR_ARG);
    assert_null(ds);
    if (!strstr(e.msg, field)) fail_msg("message '%s' does not name %s", e.msg, field);
}

static void test_bad_params(void **state) {
    (void)state;
    dr_synth_params p;
#define BAD(stmt, field)                 \
    do {                                 \
        p = dr_synth_default_params();   \
        stmt;                            \
        expect_bad(&p, field);           \
    } while (0)
    BAD(p.n_users = 0, "n_users");
    BAD(p.n_items = 10, "n_items");     /* fewer items than genres */
    BAD(p.n_genres = 0, "n_genres");
    BAD(p.n_events = 5000, "n_events"); /* < 3 per user */
    BAD(p.latent_dim = 1, "latent_dim");
    BAD(p.drift_prob = -0.1, "drift_prob");
    BAD(p.drift_prob = NAN, "drift_prob");
    BAD(p.new_item_frac = 1.5, "new_item_frac");
    BAD(p.zipf = -1, "zipf");
    BAD(p.zipf = INFINITY, "zipf");
    BAD(p.taste_conc = 0, "taste_conc");
    BAD(p.taste_conc = NAN, "taste_conc");
    BAD(p.repeat_prob = 2, "repeat_prob");
    BAD(p.t_step = 0, "t_step");
    BAD(p.t_start = -5, "t_start");
    BAD(p.mod_missing[1] = 1.01, "mod_missing[1]");
    BAD(p.mod_missing[0] = NAN, "mod_missing[0]");
    BAD(p.mod_noise[2] = -1, "mod_noise[2]");
    BAD(p.mod_dim[0] = 1u << 20, "mod_dim[0]");
#undef BAD
    dr_error e = {0};
    assert_int_equal(dr_synth_generate(NULL, NULL, &e), DR_ARG);
    p = dr_synth_default_params();
    assert_int_equal(dr_synth_generate(&p, NULL, NULL), DR_ARG);
}

/* Edge cases: one genre, every item new, tiny worlds, no modalities. */
static void test_edges(void **state) {
    (void)state;
    dr_synth_params p = dr_synth_default_params();
    p.n_users = 1;
    p.n_items = 1;
    p.n_genres = 1;
    p.n_events = 3;
    p.new_item_frac = 1.0;
    p.mod_dim[0] = p.mod_dim[1] = p.mod_dim[2] = 0;
    dr_dataset *ds = gen(&p);
    assert_int_equal(ds->n_events, 3);
    assert_int_equal(ds->n_items, 1);
    assert_int_equal(dr_dataset_n_modalities(ds), 0);
    dr_dataset_free(ds);

    p = small_params();
    p.n_genres = 1;
    p.new_item_frac = 1.0; /* capped: the first item of each genre exists from the start */
    p.drift_prob = 1.0;
    p.repeat_prob = 1.0;
    p.taste_conc = 1e-3;
    p.t_step = 1;
    p.zipf = 20;
    ds = gen(&p);
    dr_synth_truth t = truth_of(&p, ds);
    size_t n_new = 0;
    for (uint32_t i = 0; i < t.n_items; i++) n_new += t.item_birth[i] != p.t_start;
    assert_int_equal(n_new, p.n_items - 1);
    for (size_t k = 0; k < ds->n_events; k++)
        assert_true(ds->ev_time[k] >= t.item_birth[ds->ev_item[k]]);
    dr__synth_truth_free(&t);
    dr_dataset_free(ds);
}

typedef struct synth_oom {
    const dr_synth_params *p;
    dr_dataset *ds;
} synth_oom;

static dr_status synth_call(void *ud, dr_error *err) {
    synth_oom *u = ud;
    return dr_synth_generate(u->p, &u->ds, err);
}

DR_OOM_FREE_FN(synth_free, synth_oom, ds, dr_dataset_free)

/* Out of memory anywhere fails cleanly (no leak, no crash under ASan). */
static void test_out_of_memory(void **state) {
    (void)state;
    dr_synth_params p = small_params();
    p.n_users = 30;
    p.n_items = 40;
    p.n_events = 300;
    synth_oom u = {.p = &p};
    dr_oom_case c = {.name = "dr_synth_generate", .call = synth_call, .cleanup = synth_free,
                     .ud = &u, .out = (void **)&u.ds};
    assert_true(dr_oom_check(&c) > 10);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_counts_and_births),
        cmocka_unit_test(test_long_tail),
        cmocka_unit_test(test_drift_is_real),
        cmocka_unit_test(test_missing_rates),
        cmocka_unit_test(test_features_follow_truth),
        cmocka_unit_test(test_truth_by_generator_number),
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
