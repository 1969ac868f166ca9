/*
 * explain_prompt.h - building text for prompts and templates: quoting, appending, entity names
 * (explain_prompt.c).
 */
#ifndef DR_EXPLAIN_PROMPT_H
#define DR_EXPLAIN_PROMPT_H

#include "explain_fit.h"
#include "explain_int.h"

/* Appends s to buf (at *len, cap) quoted and escaped: at most DR_QUOTE_MAX bytes of s,
 * cut at a UTF-8 boundary; ", \ and [ ] escaped; control bytes and invalid UTF-8 become
 * spaces. Returns 0, or -1 when it does not fit. */
int dr__quote(char *buf, size_t cap, size_t *len, const char *s);
/* Appends printf output at buf + *len; -1 (buffer unchanged past *len) when it does not fit. */
int dr__appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...) DR_PRINTF(4, 5);
/* An entity as text: kind 'i' item (quoted title, or `item <id>`), 'u' user (`user <id>`),
 * 'a' attribute (`genre "Comedy"`). Returns 0 or -1 when it does not fit. */
int dr__explain_name(const dr_explainer *x, int kind, uint32_t id, const char *attr, char *buf,
                    size_t cap, size_t *len);
/* The value part of "key=value" (the whole string when there is no '='). */
const char *dr__attr_value(const char *attr);
/* Prompt forms, tried in this order until the minimum fits: the full instruction and request,
 * and a short form for small contexts. */
enum { DR_PROMPT_FULL = 0, DR_PROMPT_SHORT = 1, DR_PROMPT_FORMS = 2 };
/* The prompt for ev in `form` fitted into budget tokens as `count` counts them (explain_fit.h):
 * the last facts are dropped first, the first fact, the instruction and the request always
 * stay. buf (cap) receives it, scratch (scratch_cap) holds the parts meanwhile; *prefix_len is
 * the instruction's bytes, *n_facts how many facts (the first ones) it holds, *tokens its
 * count. DR_LIMIT (the message names the tokens needed and the budget) when the minimum does
 * not fit. */
dr_status dr__explain_prompt_fit(const dr_explainer *x, const dr_evidence *ev, int form,
                                 uint32_t budget, dr_fit_count_fn count, void *ud, char *buf,
                                 size_t cap, char *scratch, size_t scratch_cap, size_t *prefix_len,
                                 size_t *n_facts, uint32_t *tokens, dr_error *err);
/* Bytes of form's instruction (the prefix the llama generator keeps cached). */
size_t dr__explain_prefix_len(int form);
/* The words of the fixed template and grammar vocabulary; NULL-terminated. */
extern const char *const dr_explain_words[];

#endif /* DR_EXPLAIN_PROMPT_H */
