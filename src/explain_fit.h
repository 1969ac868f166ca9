/*
 * explain_fit.h - fitting a prompt into a token budget (explain_fit.c): the generic part any
 * prompt builder can use (explanations here; an LLM ranker's history and candidates alike).
 */
#ifndef DR_EXPLAIN_FIT_H
#define DR_EXPLAIN_FIT_H

#include "common.h"

/* One part of a prompt; the parts are joined in order. drop = 0: required (the minimum prompt
 * is the required parts); otherwise the part may go, the highest drop first (ties: the later
 * part first), so a builder ranks its optional parts by giving the lowest-ranked the highest
 * drop. */
typedef struct dr_fit_part {
    const char *text;
    size_t len;
    uint32_t drop;
} dr_fit_part;

/* Tokens of text[0..len) exactly as the generator will see them (special tokens, BOS and
 * chat-template overhead included); < 0 on error. */
typedef int64_t (*dr_fit_count_fn)(void *ud, const char *text, size_t len);

/* The prompt's token budget: the smallest of the known contexts (the session's n_ctx, the
 * model's training context, a server's reported n_ctx; 0 = not known) minus `reserve` tokens
 * (the answer, soft tokens). DR_LIMIT, naming the numbers, when no context is known or nothing
 * is left for a prompt. */
dr_status dr__fit_budget(uint32_t n_ctx, uint32_t n_ctx_train, uint32_t n_ctx_server,
                         uint32_t reserve, uint32_t *budget, dr_error *err);

/* Joins the kept parts into buf (cap bytes, NUL-terminated) and counts them; when the count
 * exceeds budget (or the text exceeds cap), drops the fewest optional parts that make it fit,
 * in their order (the highest drop first). keep[k] (n) says which parts made it, *tokens the
 * count of the result. DR_LIMIT with a message naming both numbers when the required parts
 * alone do not fit; buf is then "". At most 3 + log2(optional parts) counts (one when
 * everything fits). */
dr_status dr__fit(const dr_fit_part *parts, size_t n, uint32_t budget, dr_fit_count_fn count,
                  void *ud, uint8_t *keep, char *buf, size_t cap, size_t *len, uint32_t *tokens,
                  dr_error *err);

#endif /* DR_EXPLAIN_FIT_H */
