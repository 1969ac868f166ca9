/*
 * warm_fixture.h - data for the warm-start tests (test_mf.c, test_sasrec.c, test_fusion.c):
 * time windows of one synthetic dataset, so that a later window adds users and items, drops
 * some, and numbers the ones it keeps differently (dense ids follow first appearance); a
 * checkpoint round trip, since the external ids a warm start matches rows by come from the
 * checkpoint; and row checks that find a row's old counterpart by name, independently of
 * dr__warm_map_build.
 */
#ifndef DR_WARM_FIXTURE_H
#define DR_WARM_FIXTURE_H

#include "testutil.h"

#include <math.h>

#include "dataset.h"
#include "model.h"

/* Events [lo, hi) of ds (its time order) as a dataset with the same external ids, and ds's
 * modalities for the items it keeps; with skip > 0 the users whose dense id is a multiple of
 * skip are left out (users who join later). */
static inline dr_dataset *warm_window(const dr_dataset *ds, size_t lo, size_t hi, uint32_t skip) {
    dr_builder *b = NULL;
    dr_dataset *out = NULL;
    dr_error e = {0};
    assert_int_equal(dr__builder_create(&b), DR_OK);
    for (size_t k = lo; k < hi; k++) {
        if (skip && ds->ev_user[k] % skip == 0) continue;
        const char *u = ds->users.str[ds->ev_user[k]], *i = ds->items.str[ds->ev_item[k]];
        assert_int_equal(dr__builder_add_event(b, u, strlen(u), i, strlen(i), ds->ev_time[k],
                                               ds->ev_weight[k], DR_TAG_NONE),
                         DR_OK);
    }
    if (dr__builder_finish(b, &out, &e) != DR_OK) fail_msg("warm_window: %s", e.msg);
    dr__builder_free(b);
    snprintf(out->name, sizeof out->name, "%s-%zu-%zu", ds->name, lo, hi);
    for (int m = 0; m < ds->n_mod; m++) {
        const dr_modality *md = &ds->mod[m];
        float *x = calloc((size_t)out->n_items * md->dim + 1, sizeof *x);
        uint8_t *pres = calloc((size_t)out->n_items + 1, 1);
        assert_non_null(x);
        assert_non_null(pres);
        for (uint32_t i = 0; i < out->n_items; i++) {
            const char *id = out->items.str[i];
            uint32_t r = dr__strtab_find(&ds->items, id, strlen(id));
            assert_true(r < ds->n_items);
            memcpy(x + (size_t)i * md->dim, md->x + (size_t)r * md->dim, md->dim * sizeof *x);
            pres[i] = md->present[r];
        }
        if (dr__dataset_add_modality(out, md->name, md->dim, x, pres, &e) != DR_OK)
            fail_msg("warm_window: %s", e.msg);
        free(x);
        free(pres);
    }
    return out;
}

/* m (fitted on ds under sp) saved and loaded back: a model that carries its ids. */
static inline dr_model *warm_reload(const dr_model *m, const dr_dataset *ds, const dr_split *sp,
                                    const char *tag) {
    char path[256];
    snprintf(path, sizeof path, "/tmp/dynrec_warm_%s_%d.drm", tag, (int)getpid());
    dr_error e = {0};
    dr_model *out = NULL;
    if (dr_model_save(m, ds, sp, path, &e) != DR_OK) fail_msg("save: %s", e.msg);
    if (dr_model_load(path, &out, &e) != DR_OK) fail_msg("load: %s", e.msg);
    unlink(path); /* the mapping stays valid */
    return out;
}

/* The row of name `id` in old (UINT32_MAX: not there). */
static inline uint32_t warm_old_row(const dr_strtab *old, const char *id) {
    return dr__strtab_find(old, id, strlen(id));
}

/*
 * Checks a table of rows (width floats) of a warm fit over `now` ids against the init's table
 * over `old` ids: the row of a name old knows equals its old row bit for bit; every other row
 * (when `check` (n) is NULL or check[k] is set) is finite, equals the cold fit's row `cold`
 * (NULL: not checked) and, with `distinct`, is no old row. Also asserts that the windows renumbered some known
 * name and that there are new names. Returns the number of known rows.
 */
static inline uint32_t warm_check_rows(const float *warm, const float *old_tab,
                                       const float *cold, size_t width, const dr_strtab *now,
                                       uint32_t n, const dr_strtab *old, uint32_t n_old,
                                       const uint8_t *check, int distinct) {
    uint32_t known = 0, moved = 0, fresh = 0;
    for (uint32_t k = 0; k < n; k++) {
        const float *w = warm + (size_t)k * width;
        uint32_t r = warm_old_row(old, now->str[k]);
        if (r < n_old) {
            known++;
            moved += r != k;
            if (memcmp(w, old_tab + (size_t)r * width, width * sizeof *w) != 0)
                fail_msg("row %u ('%s', old row %u) is not the old row", k, now->str[k], r);
            continue;
        }
        fresh++;
        if (check && !check[k]) continue;
        for (size_t c = 0; c < width; c++) assert_true(isfinite(w[c]));
        if (cold && memcmp(w, cold + (size_t)k * width, width * sizeof *w) != 0)
            fail_msg("new row %u ('%s') is not the cold initialisation", k, now->str[k]);
        for (uint32_t q = 0; distinct && q < n_old; q++)
            if (!memcmp(w, old_tab + (size_t)q * width, width * sizeof *w))
                fail_msg("new row %u ('%s') equals old row %u", k, now->str[k], q);
    }
    assert_true(known > 0);
    assert_true(moved > 0);  /* known names under other dense ids */
    assert_true(fresh > 0);  /* and names the old model never saw */
    return known;
}

#endif /* DR_WARM_FIXTURE_H */
