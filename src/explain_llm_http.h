/*
 * explain_llm_http.h - the HTTP generator: an OpenAI-compatible chat endpoint through libcurl
 * (explain_llm_http.c).
 */
#ifndef DR_EXPLAIN_LLM_HTTP_H
#define DR_EXPLAIN_LLM_HTTP_H

#include "explain_int.h"

dr_status dr__llm_http_create(const dr_explain_params *p, dr_http **out, dr_error *err);
void dr__llm_http_free(dr_http *h);
/* The context the endpoint reports (llama-server's /props), asked once per session; 0 when it
 * reports none or cannot be reached. */
uint32_t dr__llm_http_n_ctx(dr_http *h);
/* An upper bound of the tokens text[0..len) takes at the endpoint, chat template included
 * (bytes + DR_HTTP_CHAT_TOKENS). */
int64_t dr__llm_http_count(const char *text, size_t len);
dr_status dr__llm_http_generate(dr_http *h, const char *system, const char *user,
                           const char *grammar, char *out, size_t cap, dr_explain_timing *t,
                           dr_error *err);

/* POSTs a JSON body to the endpoint's base URL + path (e.g. "/completion") with the same
 * timeouts, retries and reply cap; *reply (NUL-terminated, *len bytes) stays valid until the
 * client's next request. llm_rank_http.c's LLM ranker uses it. */
dr_status dr__llm_http_post(dr_http *h, const char *path, const char *body, const char **reply,
                            size_t *len, dr_error *err);

#endif /* DR_EXPLAIN_LLM_HTTP_H */
