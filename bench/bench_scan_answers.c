/*
 * bench_scan_answers.c - what the fixed-order scan changed against the model's own score()
 * (OpenBLAS sgemv for mf and sasrec): for every user stored in a checkpoint, the top-10 of
 * dr_recommend (the scan, through the bf16 copy when the model has one) against the top-10 of
 * the model's score() with the same selection; prints how many lists differ (order or
 * members), how many member sets differ, and the largest score difference over all items.
 * Usage: bench_scan_answers MODEL.drm (a checkpoint with a latent view: mf, sasrec).
 */
#include <cblas.h>
#include <math.h>

#include "bench.h"
#include "model.h"
#include "topk.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        printf("# skipped: give a checkpoint (bench_scan_answers MODEL.drm)\n");
        return 0;
    }
    openblas_set_num_threads(1);
    dr_error e = {0};
    dr_model *m = NULL;
    dr_scorer *s = NULL;
    dr_topk_scratch *ts = NULL;
    if (dr_model_load(argv[1], &m, &e) != DR_OK || dr_scorer_create(m, &s, &e) != DR_OK ||
        dr__topk_scratch_create(m->n_items, 10, &ts, &e) != DR_OK) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    if (!m->latent_dim || !m->hist_off) {
        printf("# skipped: %s has no latent view or no stored histories\n", argv[1]);
        return 0;
    }
    uint32_t n = m->n_items, lists = 0, sets = 0;
    float *own = malloc(n * sizeof *own), *scan = malloc(n * sizeof *scan);
    double maxd = 0;
    for (uint32_t u = 0; u < m->n_users; u++) {
        const uint32_t *h = m->hist_item + m->hist_off[u];
        size_t nh = (size_t)(m->hist_off[u + 1] - m->hist_off[u]);
        uint32_t a[10], na, nr;
        dr_rec r[10];
        if (m->vt->score(m->state, s->scratch, u, h, nh, own, &e) != DR_OK ||
            dr__topk_select(own, n, h, nh, 10, ts, a, NULL, &na, &e) != DR_OK ||
            dr_recommend(m, s, u, h, nh, 10, r, &nr, &e) != DR_OK ||
            dr_model_score(m, s, u, h, nh, scan, &e) != DR_OK) {
            fprintf(stderr, "user %u: %s\n", u, e.msg);
            return 1;
        }
        for (uint32_t i = 0; i < n; i++) maxd = fmax(maxd, fabs((double)own[i] - scan[i]));
        int dl = na != nr, ds = na != nr;
        for (uint32_t j = 0; j < na && j < nr; j++) {
            int found = 0;
            for (uint32_t k = 0; k < nr; k++) found |= a[j] == r[k].item;
            dl |= a[j] != r[j].item;
            ds |= !found;
        }
        lists += (uint32_t)dl;
        sets += (uint32_t)ds;
    }
    printf("# %s: %s, %u items, latent view %u floats, %u users\n", argv[1], dr_model_name(m), n,
           m->latent_dim, m->n_users);
    printf("scan_answers_top10_lists_differ %u users\n", lists);
    printf("scan_answers_top10_sets_differ %u users\n", sets);
    printf("scan_answers_max_score_diff %.3g abs\n", maxd);
    free(own);
    free(scan);
    dr__topk_scratch_free(ts);
    dr_scorer_free(s);
    dr_model_free(m);
    return 0;
}
