/*
 * llm_rank_http.h - the LLM ranker's HTTP backend (llm_rank_http.c): a title's mean token
 * log-probability after a prompt, from llama-server's /completion or an OpenAI-compatible
 * /v1/completions with logprobs.
 */
#ifndef DR_LLM_RANK_HTTP_H
#define DR_LLM_RANK_HTTP_H

#include "common.h"

typedef struct dr_rank_http dr_rank_http;

/* openai: 1 = POST /v1/completions with logprobs, 0 = llama-server's /completion. */
dr_status dr__rank_http_create(const char *url, int openai, uint32_t timeout_ms, dr_rank_http **out,
                               dr_error *err);
void dr__rank_http_free(dr_rank_http *h);
/* *out = mean log-probability of the tokens that spell title after prompt. */
dr_status dr__rank_http_score(dr_rank_http *h, const char *prompt, const char *title, float *out,
                              dr_error *err);

#endif /* DR_LLM_RANK_HTTP_H */
