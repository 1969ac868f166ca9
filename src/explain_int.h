/*
 * explain_int.h - the explanation subsystem's shared layout: the explainer and session structs
 * and the verifier's entity codes, made by explain_api.c and read by every explain_*.c file
 * (through its own header, which declares that file's functions); the public API is in
 * include/dynrec.h.
 *
 * An explainer (immutable, shared by threads) holds the model's user latents, the item and
 * attribute dictionaries the verifier resolves names with, and the llama.cpp model when that
 * generator is used. A session (one per thread) holds every buffer a request writes.
 */
#ifndef DR_EXPLAIN_INT_H
#define DR_EXPLAIN_INT_H

#include "common.h"

/* Entity codes the verifier's dictionary maps names to: kind in the top 2 bits. */
enum { DR_ENT_ITEM = 0, DR_ENT_ATTR = 1, DR_ENT_USER = 2 };
#define DR_ENT(kind, id) (((uint32_t)(kind) << 30) | (uint32_t)(id))
#define DR_ENT_KIND(e) ((e) >> 30)
#define DR_ENT_ID(e) ((e) & 0x3fffffffu)

/* 1 for a fact that names one history item in items[0] (history, modality, influence): the
 * facts an explanation's first sentence may name and a deletion test removes. */
static inline int dr__fact_names_item(const dr_fact *f) {
    return f->kind == DR_FACT_HISTORY || f->kind == DR_FACT_MODALITY || f->kind == DR_FACT_INFLUENCE;
}

typedef struct dr_llm dr_llm;           /* explain_llm.c: a loaded GGUF model (shared) */
typedef struct dr_llm_ctx dr_llm_ctx;   /* explain_llm.c: one context per session */
typedef struct dr_http dr_http;         /* explain_llm_http.c: one client per session */

struct dr_explainer {
    const dr_model *m;
    dr_explain_params p;
    char *strs;                /* owned copies of p's strings, one block */
    uint32_t n_users, n_items, d;
    float *user_lat;           /* (n_users, d) unit-normalised user latents h_v */
    float *item_unit;          /* (n_items, d) unit-normalised item latents */
    uint32_t window;           /* the model reads only the last `window` history items
                                  (dr__model_window, e.g. sasrec's L), so history facts come from
                                  those; 0 = the whole history */
    int removal;               /* 1: history facts by the score drop on removal
                                  (DR_FACT_INFLUENCE), 0: by cosine (DR_FACT_HISTORY) */
    int fold_in;               /* 1: the model's user latent ignores the context
                                  (dr__model_folds_in, e.g. mf); scores with a changed history use
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
    uint32_t *ctx2;            /* (longest history) a history with one item removed */
    char part[DR_PROMPT_MAX];  /* the prompt's parts before fitting (explain_fit.h) */
    uint32_t *stamp;           /* (n_items) marks, for distinct history items */
    uint32_t stamp_gen;
    char prompt[DR_PROMPT_MAX];
    char grammar[DR_GRAMMAR_MAX];
    dr_llm_ctx *llm;
    dr_http *http;
};

#endif /* DR_EXPLAIN_INT_H */
