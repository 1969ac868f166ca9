/*
 * explain_evidence.h - the evidence helpers other explanation files use (explain_evidence.c).
 */
#ifndef DR_EXPLAIN_EVIDENCE_H
#define DR_EXPLAIN_EVIDENCE_H

#include "explain_int.h"

/* The part of u's history the model reads (the last `window` items). */
size_t dr__explain_history(const dr_explainer *x, uint32_t u, const uint32_t **items);
/* Cosine-style dot of two unit vectors. */
float dr__dot(const float *a, const float *b, uint32_t d);
/* Score of item for user u with history ctx under the model (fold-in for mf). */
dr_status dr__explain_score(dr_explain_session *s, uint32_t u, const uint32_t *ctx, size_t n,
                           uint32_t item, float *score, dr_error *err);

#endif /* DR_EXPLAIN_EVIDENCE_H */
