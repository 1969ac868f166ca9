/*
 * model_pop.c - the popularity baseline of ../shared/PROTOCOL.md.
 *
 * DESIGN: score(i) = number of occurrences of i in all users' training prefixes (repeats
 * counted), the same vector for every user and for validation and test; score() is a memcpy.
 * Counts are exact integers below 2^24 in float for any dataset we load (checked at fit).
 * Alternative rejected: counting distinct users per item, which is a different baseline and
 * would not match the protocol's reference numbers on data with repeat interactions.
 */
#include "model.h"

typedef struct pop_state {
    uint32_t n_items;
    float count[]; /* (n_items) occurrences in training prefixes */
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
        s->count[i] = (float)cnt[i];
    }
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

const dr_model_vt dr_pop_vt = {
    .name = "pop",
    .fit = pop_fit,
    .free = pop_free,
    .scratch_bytes = pop_scratch_bytes,
    .score = pop_score,
};
