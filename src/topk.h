/*
 * topk.h - exact top-k retrieval for serving: scores = item_table (n, d) x h (d) [+ bias (n)]
 * with one cblas_sgemv, then the k best items with the user's history excluded, ties broken
 * by the lower item id. All buffers live in a caller-owned dr_topk_scratch created once per
 * serving thread, so a request never allocates.
 *
 * Ordering: higher score first; equal scores: lower item id first; NaN ranks as -infinity.
 * Threads: OpenBLAS may use its own threads for a large sgemv; serving threads should run
 * OpenBLAS single-threaded (OPENBLAS_NUM_THREADS=1 or openblas_set_num_threads(1)).
 */
#ifndef DR_TOPK_H
#define DR_TOPK_H

#include "common.h"

typedef struct dr_topk_scratch dr_topk_scratch;

/* Scratch for catalogues of up to n_items items and requests of up to k_max results. */
dr_status dr__topk_scratch_create(uint32_t n_items, uint32_t k_max, dr_topk_scratch **out,
                                 dr_error *err);
void dr__topk_scratch_free(dr_topk_scratch *s);

/*
 * item: (n, d) row-major; bias: (n) or NULL; h: (d). exclude: n_exclude item ids (any order,
 * repeats allowed) that are not candidates. Writes up to k results, best first, to items_out
 * (k) and scores_out (k, may be NULL); *n_out = min(k, candidates). DR_ARG when n exceeds the
 * scratch's n_items or k its k_max, DR_RANGE for an excluded id >= n.
 */
dr_status dr__topk_dot(const float *item, const float *bias, uint32_t n, uint32_t d,
                      const float *h, const uint32_t *exclude, size_t n_exclude, uint32_t k,
                      dr_topk_scratch *s, uint32_t *items_out, float *scores_out,
                      uint32_t *n_out, dr_error *err);

/*
 * Serving: dr__topk_dot without bias, with scores from dr__topk_scan_scores instead of sgemv
 * (faster on the serving shape, topk.c; the ranking differs from sgemv's only where scores are
 * within rounding of each other). dr__topk_last_scores gives the scan's scores.
 */
dr_status dr__topk_scan(const float *item, uint32_t n, uint32_t d, const float *h,
                       const uint32_t *exclude, size_t n_exclude, uint32_t k, dr_topk_scratch *s,
                       uint32_t *items_out, float *scores_out, uint32_t *n_out, dr_error *err);
/* scores (n) = item (n, d) . h in a fixed order: per row, lane l of 8 accumulates the products
 * of the columns c = l mod 8 with fused multiply-adds, then the lanes are added pairwise. The
 * same bits with portable = 1 (plain C) as with the AVX2 kernel used when the CPU has it. An
 * x86 CPU without AVX2/FMA scores with sgemv instead when portable = 0 (software fmaf there
 * would be ~50x slower); its scores differ from the fixed order by rounding only. */
void dr__topk_scan_scores(const float *item, uint32_t n, uint32_t d, const float *h,
                         float *scores, int portable);

/* The selection step alone, on a score vector (n) the caller computed. */
dr_status dr__topk_select(const float *scores, uint32_t n, const uint32_t *exclude,
                         size_t n_exclude, uint32_t k, dr_topk_scratch *s, uint32_t *items_out,
                         float *scores_out, uint32_t *n_out, dr_error *err);

/* Scores (n) of the last dr__topk_dot call (valid until the next call on s). */
const float *dr__topk_last_scores(const dr_topk_scratch *s);

#endif /* DR_TOPK_H */
