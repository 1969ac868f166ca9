/*
 * eval_metrics.c - pessimistic ranks and Hit / NDCG / Recall at K (../shared/PROTOCOL.md).
 *
 * DESIGN: a rank is a count, not a sort: rank(t) = 1 + #(candidates scoring strictly higher)
 * + #(other candidates scoring exactly equal), one pass over the score vector. Ties are thus
 * pessimistic, which matters for count-based baselines (pop, itemknn) whose scores tie a lot.
 * NaN scores count as -infinity (lowest, and equal to each other), so a broken model can never
 * look good. With several targets each target is ranked as if the other targets were placed
 * after every non-target of equal score and among themselves in array order, so the targets
 * get distinct ranks and DCG never counts one position twice.
 * Costs O(n * n_targets) with no scratch memory; n_targets is 1 for P-LOO and a handful for
 * P-MODAL. Alternative rejected: argsort of the scores (O(n log n), needs scratch, and a sort
 * breaks ties by position, i.e. optimistically or at random depending on the sort).
 */
#include "common.h"

#include <math.h>

static inline float key(float x) { return x != x ? -INFINITY : x; }

uint32_t dr_rank_pessimistic(const float *scores, uint32_t n, uint32_t target,
                             const uint8_t *excluded) {
    if (target >= n) return UINT32_MAX;
    const float st = key(scores[target]);
    uint32_t ge = 0; /* candidates (target included) scoring >= the target */
    if (excluded) {
        for (uint32_t i = 0; i < n; i++) ge += (uint32_t)(!excluded[i] & (key(scores[i]) >= st));
        if (excluded[target]) ge++;
    } else {
        for (uint32_t i = 0; i < n; i++) ge += (uint32_t)(key(scores[i]) >= st);
    }
    return ge; /* = 1 + others scoring >= */
}

void dr_ranks_multi(const float *scores, uint32_t n, const uint32_t *targets,
                    uint32_t n_targets, const uint8_t *excluded, uint32_t *ranks_out) {
    for (uint32_t j = 0; j < n_targets; j++) {
        uint32_t tj = targets[j];
        if (tj >= n) {
            ranks_out[j] = UINT32_MAX;
            continue;
        }
        /* ge: every candidate scoring >= target j, targets included (excluded targets are
         * counted back below); then the targets are moved behind the equal non-targets. */
        uint32_t ge = dr_rank_pessimistic(scores, n, tj, excluded) - 1; /* others >= */
        const float sj = key(scores[tj]);
        for (uint32_t k = 0; k < n_targets; k++) {
            uint32_t tk = targets[k];
            if (k == j || tk >= n) continue;
            float sk = key(scores[tk]);
            int counted = (!excluded || !excluded[tk]) && sk >= sj;
            /* wanted: targets scoring higher, and equal targets earlier in the array */
            int wanted = sk > sj || (sk == sj && k < j);
            ge = ge - (uint32_t)counted + (uint32_t)wanted;
        }
        ranks_out[j] = ge + 1;
    }
}

dr_rank_metrics dr_metrics_at(const uint32_t *ranks, uint32_t n_targets, uint32_t k) {
    dr_rank_metrics m = {0, 0, 0};
    if (n_targets == 0 || k == 0) return m;
    double dcg = 0, idcg = 0;
    uint32_t hits = 0;
    for (uint32_t j = 0; j < n_targets; j++) {
        if (ranks[j] >= 1 && ranks[j] <= k) {
            hits++;
            dcg += 1.0 / log2((double)ranks[j] + 1.0);
        }
    }
    uint32_t ideal = DR_MIN(n_targets, k);
    for (uint32_t r = 1; r <= ideal; r++) idcg += 1.0 / log2((double)r + 1.0);
    m.hit = hits > 0 ? 1.0 : 0.0;
    m.recall = (double)hits / (double)n_targets;
    m.ndcg = dcg / idcg;
    return m;
}
