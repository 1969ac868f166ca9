/*
 * eval.h - the evaluation harness's internal entry point (the public one, dr_eval_split, is in
 * include/dynrec.h): the same ranking over a chosen part of the evaluation users, which is
 * what early stopping's validation (eval_validate.c) asks for.
 */
#ifndef DR_EVAL_H
#define DR_EVAL_H

#include "model.h"

/* dr_eval_split over the subset o (model.h; NULL = all users, every target). */
dr_status dr__eval_run(const dr_dataset *ds, const dr_split *sp, const dr_model *m,
                      const dr_eval_params *p, const dr_eval_subset *o, dr_eval_result *out,
                      dr_error *err);

#endif /* DR_EVAL_H */
