/*
 * topk.h - exact top-k retrieval: scores = item_table (n, d) . h (d) by the fixed-order scan
 * of scan.h, then the k best items with the user's history excluded, ties broken by the lower
 * item id. All buffers live in a caller-owned dr_topk_scratch created once per serving thread,
 * so a request never allocates.
 *
 * Ordering: higher score first; equal scores: lower item id first; NaN ranks as -infinity.
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
 * item: (n, d) row-major; h: (d). Scores by the fixed-order scan (scan.h), then the k best.
 * exclude: n_exclude item ids (any order, repeats allowed) that are not candidates. Writes up
 * to k results, best first, to items_out (k) and scores_out (k, may be NULL);
 * *n_out = min(k, candidates). DR_ARG when n exceeds the scratch's n_items or k its k_max,
 * DR_RANGE for an excluded id >= n. dr__topk_last_scores gives the scan's scores.
 */
dr_status dr__topk_scan(const float *item, uint32_t n, uint32_t d, const float *h,
                       const uint32_t *exclude, size_t n_exclude, uint32_t k, dr_topk_scratch *s,
                       uint32_t *items_out, float *scores_out, uint32_t *n_out, dr_error *err);

/*
 * The same answer (items and scores, bit for bit) from a scan of t, a bf16 copy of item's
 * first n rows (NULL: dr__topk_scan): the k * DR_SCAN_BF16_CAND best by the bf16 scores are
 * rescored in f32; when the k-th exact score exceeds the last candidate's bf16 score by more
 * than dr__bf16_margin, no other item can enter and the answer is exact (pass 1); otherwise
 * every item whose bf16 score reaches the k-th exact score less the margin is rescored
 * (pass 2), or, when those are too many, or for small catalogues (k * DR_SCAN_BF16_CAND * 4 >
 * n), the f32 scan answers. dr__topk_last_scores is then not meaningful.
 */
struct dr_scan_bf16;
dr_status dr__topk_scan_bf16(const struct dr_scan_bf16 *t, const float *item, uint32_t n,
                            uint32_t d, const float *h, const uint32_t *exclude, size_t n_exclude,
                            uint32_t k, dr_topk_scratch *s, uint32_t *items_out,
                            float *scores_out, uint32_t *n_out, dr_error *err);
/* How many dr__topk_scan_bf16 answers on s came from pass 1, pass 2 and the f32 scan. */
void dr__topk_bf16_counts(const dr_topk_scratch *s, uint64_t *pass1, uint64_t *pass2,
                          uint64_t *full);

/* The selection step alone, on a score vector (n) the caller computed. */
dr_status dr__topk_select(const float *scores, uint32_t n, const uint32_t *exclude,
                         size_t n_exclude, uint32_t k, dr_topk_scratch *s, uint32_t *items_out,
                         float *scores_out, uint32_t *n_out, dr_error *err);

/* Scores (n) of the last dr__topk_dot call (valid until the next call on s). */
const float *dr__topk_last_scores(const dr_topk_scratch *s);

#endif /* DR_TOPK_H */
