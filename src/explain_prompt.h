/*
 * explain_prompt.h - building text for prompts and templates: quoting, appending, entity names
 * (explain_prompt.c).
 */
#ifndef DR_EXPLAIN_PROMPT_H
#define DR_EXPLAIN_PROMPT_H

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
/* The words of the fixed template and grammar vocabulary; NULL-terminated. */
extern const char *const dr_explain_words[];

#endif /* DR_EXPLAIN_PROMPT_H */
