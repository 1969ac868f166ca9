/*
 * model_pop.c - the popularity baseline of ../shared/PROTOCOL.md.
 *
 * DESIGN: score(i) = number of occurrences of i in all users' training prefixes (repeats
 * counted), the same vector for every user and for validation and test; score() is a memcpy.
 * Counts are exact integers below 2^24 in float for any dataset we load (checked at fit).
 * Alternative rejected: counting distinct users per item, which is a different baseline and
 * would not match the protocol's reference numbers on data with repeat interactions.
 * Checkpoint: the count vector is section `pop.count`, used in place from the mapping on load
 * (so `dynrec tune` can write a pop checkpoint when popularity wins on validation).
 */
#include "model.h"

#include <math.h>

#include "ckpt.h"

typedef struct pop_state {
    uint32_t n_items;
    const float *count; /* (n_items) occurrences in training prefixes: own, or the mapping's */
    float own[];        /* (n_items) when fitted */
} pop_state;

static dr_status pop_fit(const dr_dataset *ds, const dr_split *sp, const dr_model_params *p,
                         const dr_validator *val, void **state, dr_error *err) {
    pop_state *s = NULL;
    uint64_t *cnt = NULL;
    dr_status st = DR_OK;
    size_t n = ds->n_items ? ds->n_items : 1;
    s = dr__malloc(sizeof *s + n * sizeof(float));
    cnt = dr__calloc(n, sizeof *cnt);
    if (!s || !cnt) {
        st = dr__fail(err, DR_NOMEM, "pop: out of memory for %u items", ds->n_items);
        goto fail;
    }
    s->n_items = ds->n_items;
    for (uint32_t u = 0; u < ds->n_users; u++) {
        const uint32_t *h = ds->hist_item + ds->user_off[u];
        for (uint32_t k = 0; k < sp->n_train[u]; k++) cnt[h[k]]++;
    }
    for (uint32_t i = 0; i < ds->n_items; i++) {
        if (cnt[i] > (1u << 24)) {
            st = dr__fail(err, DR_LIMIT, "pop: item %u has %llu training events (float limit)",
                         i, (unsigned long long)cnt[i]);
            goto fail;
        }
        s->own[i] = (float)cnt[i];
    }
    s->count = s->own;
    dr__free(cnt);
    *state = s;
    return DR_OK;
fail:
    dr__free(cnt);
    dr__free(s);
    return st;
}

static void pop_free(void *state) { dr__free(state); }

static size_t pop_scratch_bytes(const void *state) { return 0; }

static dr_status pop_score(const void *state, void *scratch, uint32_t u, const uint32_t *ctx,
                           size_t n_ctx, float *scores, dr_error *err) {
    const pop_state *s = state;
    memcpy(scores, s->count, (size_t)s->n_items * sizeof(float));
    return DR_OK;
}

static dr_status pop_save(const dr_model *m, dr_ckpt_writer *w, dr_error *err) {
    const pop_state *s = m->state;
    uint64_t shape[1] = {s->n_items};
    return dr__ckpt_add(w, "pop.count", DR_DT_F32, 1, shape, s->count, err);
}

static dr_status pop_load(const dr_ckpt *c, dr_model **out, dr_error *err) {
    uint64_t shape[1] = {DR_CKPT_ANY};
    const void *data;
    dr_status st = dr__ckpt_find(c, "pop.count", DR_DT_F32, 1, shape, &data, err);
    if (st != DR_OK) return st;
    if (shape[0] >= UINT32_MAX)
        return dr__fail(err, DR_FORMAT, "%s: section 'pop.count' is too long", dr__ckpt_path(c));
    const float *count = data;
    for (uint64_t i = 0; i < shape[0]; i++)
        if (!(count[i] >= 0 && isfinite(count[i])))
            return dr__fail(err, DR_FORMAT, "%s: pop.count[%llu] is not a count", dr__ckpt_path(c),
                           (unsigned long long)i);
    pop_state *s = dr__malloc(sizeof *s);
    if (!s) return dr__fail(err, DR_NOMEM, "pop: out of memory");
    s->n_items = (uint32_t)shape[0];
    s->count = count;
    return dr__model_wrap(&dr_pop_vt, s, s->n_items, out, err);
}

const dr_model_vt dr_pop_vt = {
    .name = "pop",
    .fit = pop_fit,
    .free = pop_free,
    .scratch_bytes = pop_scratch_bytes,
    .score = pop_score,
    .save = pop_save,
    .load = pop_load,
};
