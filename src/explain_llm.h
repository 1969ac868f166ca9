/*
 * explain_llm.h - the llama.cpp generator: a GGUF model per explainer, a context per session
 * (explain_llm.c).
 */
#ifndef DR_EXPLAIN_LLM_H
#define DR_EXPLAIN_LLM_H

#include "explain_int.h"

/* llama.cpp's backend and log hook, once per process (any thread). */
void dr__llama_init(void);
dr_status dr__llm_load(const char *path, const dr_explain_params *p, dr_llm **out,
                      dr_error *err);
void dr__llm_free(dr_llm *l);
dr_status dr__llm_ctx_create(dr_llm *l, const dr_explain_params *p, dr_llm_ctx **out,
                            dr_error *err);
void dr__llm_ctx_free(dr_llm_ctx *c);
/* The model's training context (0: not recorded in the GGUF). */
uint32_t dr__llm_n_ctx_train(const dr_llm *l);
/* Tokens a prompt and its answer may use in this session: min(n_ctx asked, trained). */
uint32_t dr__llm_ctx_limit(const dr_llm_ctx *c);
/* Tokens of text[0..len) as dr__llm_generate tokenises it (bos: with the BOS token); < 0 on
 * error. */
int64_t dr__llm_count(dr_llm_ctx *c, const char *text, size_t len, int bos);
/* Generates from prompt (prefix_len bytes of it are the shared instruction, kept in the KV
 * cache across calls) under grammar (NULL: free). soft (2, d) latents or NULL. */
dr_status dr__llm_generate(dr_llm_ctx *c, const char *prompt, size_t prefix_len,
                          const char *grammar, const float *soft, uint32_t soft_d, char *out,
                          size_t cap, dr_explain_timing *t, dr_error *err);

#endif /* DR_EXPLAIN_LLM_H */
