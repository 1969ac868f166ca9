/*
 * explain_verify.h - the verifier's dictionary, built once per explainer (explain_verify.c).
 */
#ifndef DR_EXPLAIN_VERIFY_H
#define DR_EXPLAIN_VERIFY_H

#include "explain_int.h"

dr_status dr__verify_build(dr_explainer *x, dr_error *err);
void dr__verify_free(dr_explainer *x);

#endif /* DR_EXPLAIN_VERIFY_H */
