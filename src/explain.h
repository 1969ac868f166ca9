/*
 * explain.h - internals shared by the explanation files (evidence.c, prompt.c, verify.c,
 * explain.c, llm.c, llm_http.c). The public API is in include/dynrec.h.
 *
 * An explainer (immutable, shared by threads) holds the model's user latents, the item and
 * attribute dictionaries the verifier resolves names with, and the llama.cpp model when that
 * generator is used. A session (one per thread) holds every buffer a request writes.
 */
#ifndef DR_EXPLAIN_H
#define DR_EXPLAIN_H

#include "common.h"


/* Entity codes the verifier's dictionary maps names to: kind in the top 2 bits. */
enum { DR_ENT_ITEM = 0, DR_ENT_ATTR = 1, DR_ENT_USER = 2 };
#define DR_ENT(kind, id) (((uint32_t)(kind) << 30) | (uint32_t)(id))
#define DR_ENT_KIND(e) ((e) >> 30)
#define DR_ENT_ID(e) ((e) & 0x3fffffffu)

typedef struct dr_llm dr_llm;           /* llm.c: a loaded GGUF model (shared) */
typedef struct dr_llm_ctx dr_llm_ctx;   /* llm.c: one context per session */
typedef struct dr_http dr_http;         /* llm_http.c: one client per session */

struct dr_explainer {
    const dr_model *m;
    dr_explain_params p;
    char *strs;                /* owned copies of p's strings, one block */
    uint32_t n_users, n_items, d;
    float *user_lat;           /* (n_users, d) unit-normalised user latents h_v */
    float *item_unit;          /* (n_items, d) unit-normalised item latents */
    uint32_t window;           /* the model reads only the last `window` history items
                                  (dr_model_window, e.g. sasrec's L), so history facts come from
                                  those; 0 = the whole history */
    int fold_in;               /* 1: the model's user latent ignores the context
                                  (dr_model_folds_in, e.g. mf); scores with a changed history use
                                  the fold-in latent (u = none) */
    dr_strtab item_index;      /* external item id -> dense id */
    dr_strtab attrs;           /* "key=value" -> attribute id */
    uint32_t *attr_off;        /* (n_items + 1) CSR of each item's attribute ids */
    uint32_t *attr_ids;
    /* verifier dictionary: normalised name -> entity codes */
    dr_strtab dict;
    uint32_t *dict_off;        /* (dict.n + 1) */
    uint32_t *dict_ent;
    uint8_t *dict_bare;        /* (dict.n) 1: may match without quotes */
    uint32_t max_tokens;       /* most tokens in one name */
    dr_llm *llm;
};

struct dr_explain_session {
    dr_explainer *x;
    dr_scorer *sc;
    float *h;                  /* (d) */
    float *sim;                /* (max(n_users, n_items)) */
    uint32_t *idx;             /* (max(n_users, n_items)) */
    uint32_t *ctx;             /* (longest history) */
    uint32_t *stamp;           /* (n_items) marks, for distinct history items */
    uint32_t stamp_gen;
    char prompt[DR_PROMPT_MAX];
    char grammar[DR_GRAMMAR_MAX];
    dr_llm_ctx *llm;
    dr_http *http;
};

/* evidence.c */
/* The part of u's history the model reads (the last `window` items). */
size_t dr_explain_history(const dr_explainer *x, uint32_t u, const uint32_t **items);
/* Cosine-style dot of two unit vectors. */
float dr_dot(const float *a, const float *b, uint32_t d);
/* Score of item for user u with history ctx under the model (fold-in for mf). */
dr_status dr_explain_score(dr_explain_session *s, uint32_t u, const uint32_t *ctx, size_t n,
                           uint32_t item, float *score, dr_error *err);

/* prompt.c */
/* Appends s to buf (at *len, cap) quoted and escaped: at most DR_QUOTE_MAX bytes of s,
 * cut at a UTF-8 boundary; ", \ and [ ] escaped; control bytes and invalid UTF-8 become
 * spaces. Returns 0, or -1 when it does not fit. */
int dr_quote(char *buf, size_t cap, size_t *len, const char *s);
/* Appends printf output at buf + *len; -1 (buffer unchanged past *len) when it does not fit. */
int dr_appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...) DR_PRINTF(4, 5);
/* An entity as text: kind 'i' item (quoted title, or `item <id>`), 'u' user (`user <id>`),
 * 'a' attribute (`genre "Comedy"`). Returns 0 or -1 when it does not fit. */
int dr_explain_name(const dr_explainer *x, int kind, uint32_t id, const char *attr, char *buf,
                    size_t cap, size_t *len);
/* The value part of "key=value" (the whole string when there is no '='). */
const char *dr_attr_value(const char *attr);
/* The words of the fixed template and grammar vocabulary; NULL-terminated. */
extern const char *const dr_explain_words[];

/* verify.c */
dr_status dr_verify_build(dr_explainer *x, dr_error *err);
void dr_verify_free(dr_explainer *x);

/* llm.c (llama.cpp) */
dr_status dr_llm_load(const char *path, const dr_explain_params *p, dr_llm **out,
                      dr_error *err);
void dr_llm_free(dr_llm *l);
dr_status dr_llm_ctx_create(dr_llm *l, const dr_explain_params *p, dr_llm_ctx **out,
                            dr_error *err);
void dr_llm_ctx_free(dr_llm_ctx *c);
/* Generates from prompt (prefix_len bytes of it are the shared instruction, kept in the KV
 * cache across calls) under grammar (NULL: free). soft (2, d) latents or NULL. */
dr_status dr_llm_generate(dr_llm_ctx *c, const char *prompt, size_t prefix_len,
                          const char *grammar, const float *soft, uint32_t soft_d, char *out,
                          size_t cap, dr_explain_timing *t, dr_error *err);

/* llm_http.c (libcurl) */
dr_status dr_http_create(const dr_explain_params *p, dr_http **out, dr_error *err);
void dr_http_free(dr_http *h);
dr_status dr_http_generate(dr_http *h, const char *system, const char *user,
                           const char *grammar, char *out, size_t cap, dr_explain_timing *t,
                           dr_error *err);

#endif /* DR_EXPLAIN_H */
