/*
 * evidence.h - the evidence helpers other explanation files use (evidence.c).
 */
#ifndef DR_EVIDENCE_H
#define DR_EVIDENCE_H

#include "explain.h"

/* The part of u's history the model reads (the last `window` items). */
size_t dr_explain_history(const dr_explainer *x, uint32_t u, const uint32_t **items);
/* Cosine-style dot of two unit vectors. */
float dr_dot(const float *a, const float *b, uint32_t d);
/* Score of item for user u with history ctx under the model (fold-in for mf). */
dr_status dr_explain_score(dr_explain_session *s, uint32_t u, const uint32_t *ctx, size_t n,
                           uint32_t item, float *score, dr_error *err);

#endif /* DR_EVIDENCE_H */
