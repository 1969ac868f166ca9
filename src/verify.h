/*
 * verify.h - the verifier's dictionary, built once per explainer (verify.c).
 */
#ifndef DR_VERIFY_H
#define DR_VERIFY_H

#include "explain.h"

dr_status dr_verify_build(dr_explainer *x, dr_error *err);
void dr_verify_free(dr_explainer *x);

#endif /* DR_VERIFY_H */
