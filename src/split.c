/*
 * split.c - train / validation / test splits as per-user segment lengths.
 *
 * DESIGN: a split never copies events. Each user's history is already time-ordered
 * (dataset.h: user_off / hist_item), so a split is three lengths per user: the first n_train
 * items are training, the next n_valid validation, the next n_test test (a prefix layout).
 *   LOO   (P-LOO):    n >= 3: train = n - 2, valid = 1, test = 1; users with n < 3: all zero.
 *   GIVEN (P-MODAL):  lengths counted from the source's tags (ev_tag via hist_event); the tags
 *                     of one user must read train* valid* test* in history order, otherwise
 *                     DR_FORMAT naming the user (a prefix layout cannot express interleaving).
 *   T0    (P-STREAM): T0 = time of the event at index floor(0.8 * n_events) of the globally
 *                     time-sorted events; the user's events with time < T0 are the base's: the
 *                     last of them is its validation target (PROTOCOL.md: "its own validation:
 *                     each user's last pre-T0 interaction") when there are at least two, the
 *                     others train; test = the rest (the replay). So the pre-T0 prefix is
 *                     n_train + n_valid, and early stopping works as under LOO.
 *   ALL   (serving): every event trains except each user's last, which validates (when the user
 *                     has two): a base retrained on everything a server saw still early-stops,
 *                     and keeps every user's newest events but one (LOO would hold out two).
 * Alternative rejected: index lists per segment (what most Python code does). They cost memory
 * proportional to the events, and allow layouts (test before train) that no protocol uses.
 */
#include "model.h"

static dr_split *split_alloc(uint32_t n_users) {
    dr_split *s = dr__calloc(1, sizeof *s);
    if (!s) return NULL;
    s->n_users = n_users;
    size_t n = n_users ? n_users : 1;
    s->n_train = dr__calloc(n, sizeof *s->n_train);
    s->n_valid = dr__calloc(n, sizeof *s->n_valid);
    s->n_test = dr__calloc(n, sizeof *s->n_test);
    if (!s->n_train || !s->n_valid || !s->n_test) {
        dr_split_free(s);
        return NULL;
    }
    return s;
}

static void split_loo(const dr_dataset *ds, dr_split *s) {
    for (uint32_t u = 0; u < ds->n_users; u++) {
        size_t n = ds->user_off[u + 1] - ds->user_off[u];
        if (n < 3) continue;
        s->n_train[u] = (uint32_t)(n - 2);
        s->n_valid[u] = 1;
        s->n_test[u] = 1;
    }
}

static const char *tag_name(uint8_t t) {
    switch (t) {
    case DR_TAG_TRAIN: return "train";
    case DR_TAG_VALID: return "valid";
    case DR_TAG_TEST: return "test";
    default: return "none";
    }
}

static dr_status split_given(const dr_dataset *ds, dr_split *s, dr_error *err) {
    if (!ds->has_given_split)
        return dr__fail(err, DR_ARG, "dataset %s has no given train/valid/test split",
                       ds->name[0] ? ds->name : "(unnamed)");
    for (uint32_t u = 0; u < ds->n_users; u++) {
        uint32_t cnt[4] = {0, 0, 0, 0};
        uint8_t prev = DR_TAG_TRAIN;
        for (size_t k = ds->user_off[u]; k < ds->user_off[u + 1]; k++) {
            uint8_t t = ds->ev_tag[ds->hist_event[k]];
            if (t < DR_TAG_TRAIN || t > DR_TAG_TEST)
                return dr__fail(err, DR_FORMAT, "user %s: event %zu has no split tag",
                               dr_dataset_user_id(ds, u), k - ds->user_off[u]);
            if (t < prev)
                return dr__fail(err, DR_FORMAT,
                               "user %s: a %s event follows a %s event in time order "
                               "(expected train, then valid, then test)",
                               dr_dataset_user_id(ds, u), tag_name(t), tag_name(prev));
            prev = t;
            cnt[t]++;
        }
        s->n_train[u] = cnt[DR_TAG_TRAIN];
        s->n_valid[u] = cnt[DR_TAG_VALID];
        s->n_test[u] = cnt[DR_TAG_TEST];
    }
    return DR_OK;
}

/* Each user's events before t train (the last of them validates when with_valid and there
 * are at least two); the rest are test. */
static void split_at(const dr_dataset *ds, dr_split *s, int64_t t, int with_valid) {
    s->t0 = t;
    s->n_eval = 0;
    for (uint32_t u = 0; u < ds->n_users; u++) {
        size_t a = ds->user_off[u], b = ds->user_off[u + 1], k = a;
        while (k < b && ds->hist_time[k] < t) k++;
        s->n_valid[u] = with_valid && k - a >= 2;
        s->n_train[u] = (uint32_t)(k - a) - s->n_valid[u];
        s->n_test[u] = (uint32_t)(b - k);
    }
}

static void split_t0(const dr_dataset *ds, dr_split *s) {
    if (ds->n_events == 0) return;
    /* floor(0.8 * n) computed exactly in integers */
    size_t n = ds->n_events, idx = (n / 5) * 4 + ((n % 5) * 4) / 5;
    split_at(ds, s, ds->ev_time[idx], 1);
}

dr_status dr_split_create(const dr_dataset *ds, dr_split_kind kind, dr_split **out,
                          dr_error *err) {
    dr_split *s = NULL;
    dr_status st = DR_OK;
    if (!out) return dr__fail(err, DR_ARG, "dr_split_create: out is NULL");
    *out = NULL;
    if (!ds) return dr__fail(err, DR_ARG, "dr_split_create: dataset is NULL");
    if (kind != DR_SPLIT_LOO && kind != DR_SPLIT_GIVEN && kind != DR_SPLIT_T0 && kind != DR_SPLIT_ALL)
        return dr__fail(err, DR_ARG, "dr_split_create: unknown split kind %d", (int)kind);
    for (uint32_t u = 0; u < ds->n_users; u++)
        if (ds->user_off[u + 1] - ds->user_off[u] > UINT32_MAX)
            return dr__fail(err, DR_LIMIT, "user %s: more than 2^32-1 events",
                           dr_dataset_user_id(ds, u));

    s = split_alloc(ds->n_users);
    if (!s) {
        st = dr__fail(err, DR_NOMEM, "dr_split_create: out of memory");
        goto fail;
    }
    s->kind = kind;
    switch (kind) {
    case DR_SPLIT_LOO: split_loo(ds, s); break;
    case DR_SPLIT_GIVEN: st = split_given(ds, s, err); break;
    case DR_SPLIT_T0: split_t0(ds, s); break;
    case DR_SPLIT_ALL: split_at(ds, s, INT64_MAX, 1), s->t0 = 0; break;
    }
    if (st != DR_OK) goto fail;
    for (uint32_t u = 0; u < s->n_users; u++) s->n_eval += s->n_test[u] > 0;
    *out = s;
    return DR_OK;
fail:
    dr_split_free(s);
    return st;
}

dr_status dr__split_t0_at(const dr_dataset *ds, int64_t t, int with_valid, dr_split **out,
                          dr_error *err) {
    if (!out || !ds) return dr__fail(err, DR_ARG, "dr__split_t0_at: NULL argument");
    if (!(*out = split_alloc(ds->n_users))) return dr__fail(err, DR_NOMEM, "split: out of memory");
    (*out)->kind = DR_SPLIT_T0; /* computed once, at t (not first at the dataset's T0) */
    split_at(ds, *out, t, with_valid);
    for (uint32_t u = 0; u < ds->n_users; u++) (*out)->n_eval += (*out)->n_test[u] > 0;
    return DR_OK;
}

void dr_split_free(dr_split *s) {
    if (!s) return;
    dr__free(s->n_train);
    dr__free(s->n_valid);
    dr__free(s->n_test);
    dr__free(s);
}

dr_split_kind dr_split_get_kind(const dr_split *s) { return s->kind; }

static const char *const g_split_names[] = {"loo", "given", "t0", "all"}; /* by dr_split_kind */

const char *dr__split_kind_name(int kind) {
    return kind >= 0 && (size_t)kind < DR_ARRAY_LEN(g_split_names) ? g_split_names[kind] : "?";
}

int dr__split_kind_parse(const char *name) {
    for (size_t k = 0; name && k < DR_ARRAY_LEN(g_split_names); k++)
        if (!strcmp(name, g_split_names[k])) return (int)k;
    return -1;
}

void dr_split_user(const dr_split *s, uint32_t u, uint32_t *n_train, uint32_t *n_valid,
                   uint32_t *n_test) {
    int in = s && u < s->n_users;
    if (n_train) *n_train = in ? s->n_train[u] : 0;
    if (n_valid) *n_valid = in ? s->n_valid[u] : 0;
    if (n_test) *n_test = in ? s->n_test[u] : 0;
}

uint32_t dr_split_n_eval_users(const dr_split *s) { return s ? s->n_eval : 0; }

uint32_t dr_split_n_valid_users(const dr_split *s) {
    uint32_t n = 0;
    for (uint32_t u = 0; s && u < s->n_users; u++) n += s->n_valid[u] > 0 && s->n_train[u] > 0;
    return n;
}

int64_t dr_split_t0(const dr_split *s) { return s ? s->t0 : 0; }
