/*
 * model.h - the scoring interface every model plugs into (pop, itemknn; later SASRec, MF).
 *
 * DESIGN: a small vtable. fit() reads only the split's training segments; score() fills a
 * dense (n_items) score vector for a user's context using per-thread scratch, so the
 * evaluation harness and the server share one code path. Alternative rejected: a top-k-only
 * interface, which would hide the full score vector that the pessimistic-tie metrics need.
 */
#ifndef DR_MODEL_H
#define DR_MODEL_H

#include "dataset.h"
#include "fusion.h"

struct dr_split {
    dr_split_kind kind;
    uint32_t n_users;
    uint32_t *n_train;   /* (n_users) */
    uint32_t *n_valid;   /* (n_users) */
    uint32_t *n_test;    /* (n_users) */
    uint32_t n_eval;     /* users with n_test > 0 */
    int64_t t0;          /* DR_SPLIT_T0 */
};

typedef struct dr_model_vt {
    const char *name;
    /* Fits on ds + split training prefixes; *state is the model's private block. */
    dr_status (*fit)(const dr_dataset *ds, const dr_split *sp, const dr_model_params *p,
                     void **state, dr_error *err);
    void (*free)(void *state);
    /* Bytes of per-thread scratch score() needs (may be 0). */
    size_t (*scratch_bytes)(const void *state);
    dr_status (*score)(const void *state, void *scratch, uint32_t u, const uint32_t *ctx,
                       size_t n_ctx, float *scores, dr_error *err);
    int warm_start; /* 1: fit accepts p->init, a model of this same kind (dr_model_fit checks) */
    /* Gated fusion (mf, sasrec; NULL for models without one). fusion: as dr_model_fusion, NULL
     * when the model fuses nothing. refuse: recomputes the fused item latents from e with a
     * presence override (n_mod, n_items; NULL = the dataset's) and a missing-feature mode. */
    const dr_fusion *(*fusion)(const dr_model *m, const float **e, dr_impute *imp);
    dr_status (*refuse)(dr_model *m, const dr_dataset *ds, const uint8_t *over, dr_impute imp,
                        dr_error *err);
} dr_model_vt;

struct dr_model {
    const dr_model_vt *vt;
    void *state;
    uint32_t n_items;
    /* set when loaded from a checkpoint (model_io.c); NULL/0 for a model fitted in memory */
    struct dr_ckpt *ckpt;        /* owns the mapping the state points into */
    uint32_t n_users;            /* users stored in the checkpoint */
    const char **user_ids;       /* (n_users) into the mapping */
    const char **item_ids;       /* (n_items) into the mapping */
    const uint64_t *hist_off;    /* (n_users + 1) */
    const uint32_t *hist_item;   /* (hist_off[n_users]) time-ordered items per user */
    dr_strtab user_index;        /* external user id -> u */
    const char **titles;         /* (n_items) into the mapping, "" when none */
    const char **attr_strs;      /* (n_attrs) "key=value" */
    const uint64_t *item_attr_off; /* (n_items + 1) */
    const uint32_t *item_attr;   /* attribute ids */
    /* dot-product view (model.c): score = latent_items[i] . h; 0 / NULL when not one */
    uint32_t latent_dim;
    const float *latent_items;   /* (n_items, latent_dim) */
    float *latent_owned;         /* set when latent_items had to be built (mf: [q_i, b_i]) */
};

/* Fills the dot-product view of a fitted or loaded model (model.c). */
dr_status dr_model_prepare_latents(dr_model *m, dr_error *err);
/* The gated fusion of a dot-product model (mf, sasrec) and its id embeddings: *e (when
 * non-NULL) points at item 0's e row (rows of f->d floats), *imp the impute mode it was trained
 * with. The first f->d values of latent row i are z_i (mf appends the item bias). NULL when
 * the model fuses nothing. */
const dr_fusion *dr_model_fusion(const dr_model *m, const float **e, dr_impute *imp);

struct dr_scorer {
    const dr_model *m;
    void *scratch;
    size_t scratch_bytes;
    /* dr_recommend's buffers, made on its first call */
    float *scores;                  /* (n_items) */
    struct dr_topk_scratch *topk;
    uint32_t items[DR_RECOMMEND_MAX_K];
    float top[DR_RECOMMEND_MAX_K];
};

extern const dr_model_vt dr_pop_vt;     /* pop.c */
extern const dr_model_vt dr_itemknn_vt; /* itemknn.c */

#endif /* DR_MODEL_H */
