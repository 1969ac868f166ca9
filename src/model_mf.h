/*
 * model_mf.h - BPR-MF (Rendle et al. 2009): user and item factors + item bias, trained with the
 * BPR pairwise loss and uniform negative sampling; scored through the model.h vtable and
 * saved/loaded through the checkpoint container (ckpt.h).
 */
#ifndef DR_MODEL_MF_H
#define DR_MODEL_MF_H

#include "fusion.h"
#include "model.h"

typedef enum { DR_MF_SGD = 0, DR_MF_ADAM = 1 } dr_mf_optimizer;

typedef struct dr_mf_params {
    uint32_t d;              /* latent dimension (64) */
    uint32_t epochs;         /* maximum passes over the training pairs (300) */
    float lr;                /* learning rate (0.1; with Adam about 0.005) */
    float l2;                /* L2 on the factors and biases touched by a sample (0.01) */
    float init_std;          /* factors ~ N(0, init_std^2), biases 0 (0.1) */
    dr_mf_optimizer optimizer;
    float adam_b1, adam_b2, adam_eps; /* (0.9, 0.999, 1e-8) */
    uint64_t seed;           /* initialisation and sampling (42) */
    int threads;             /* evaluation threads for early stopping; training itself is
                                single-threaded (see model_mf.c) */
    uint32_t eval_every;     /* epochs between validation evaluations (5); 0 = no early
                                stopping; ignored for a T0 split (no validation targets) */
    uint32_t patience;       /* evaluations without a better validation NDCG@10 before
                                stopping; the best epoch's factors are kept (3) */
    dr_progress_fn progress; /* "mf epoch", epoch, epochs */
    void *progress_ud;
    dr_epoch_fn on_epoch;    /* after every epoch: loss, validation NDCG@10 (< 0 if none) */
    void *on_epoch_ud;
    /* Gated multimodal fusion (fusion.h): the item factor q_i becomes
     * z_i = e_i + sum_m g_im (P_m xs_im + b_m); the bias is unchanged. */
    uint32_t use_modalities; /* bit m fuses the dataset's modality m; 0 = id-only (0) */
    float modality_dropout;  /* training: each (item occurrence, modality) is dropped with this
                                probability (0.3); seeded from seed */
    dr_impute impute;        /* missing/dropped features: DR_IMPUTE_GATE closes the gate,
                                DR_IMPUTE_MEAN feeds the modality mean (baseline) (GATE) */
    float fusion_lr;         /* Adam learning rate of the fusion block (0.003) */
    float fusion_l2;         /* L2 on the fusion block, per sample like l2 (0.001) */
    float id_dropout;        /* training: each item occurrence is treated as cold (e = 0, b = 0)
                                with this probability, so features learn to carry items (0.5) */
    /* Warm start: a known user starts from init's user row, a known item from its e (its item
     * factor when id-only) and bias; new users and items keep the random initialisation; a fused
     * init also gives its fusion block and statistics (the modalities must agree:
     * dr__fusion_warm_check). d must be init's. NULL = random (NULL). */
    const dr_model *init;
    const dr_warm_map *init_map; /* init's rows (model.h); NULL = the same users and items */
} dr_mf_params;

dr_mf_params dr__mf_default_params(void);

/* Training report of the last dr__mf_fit call on a model (zeros for a loaded model). */
typedef struct dr_mf_report {
    uint32_t epochs_run, best_epoch;
    double last_loss;        /* mean per-sample loss (BPR + L2 term) of the last epoch */
    double best_valid_ndcg10;
    double seconds;
} dr_mf_report;

extern const dr_model_vt dr_mf_vt;

/* Fits BPR-MF on the split's training prefixes (early stopping through dr__validator_make's
 * validator, as dr_model_fit gives it). */
dr_status dr__mf_fit(const dr_dataset *ds, const dr_split *split, const dr_mf_params *p,
                    dr_model **out, dr_error *err);
/* Report of the fit (NULL for a model that is not MF). */
const dr_mf_report *dr__mf_get_report(const dr_model *m);

/* Saves to the checkpoint container: sections user (n_users, d), item (n_items, d),
 * item_bias (n_items), all f32; metadata model=mf and the hyper-parameters. */
dr_status dr__mf_save(const dr_model *m, const char *path, dr_error *err);
/* Loads a checkpoint; the factors stay in the read-only mapping. */
dr_status dr__mf_load(const char *path, dr_model **out, dr_error *err);

/* Factors of a fitted or loaded model (shapes in the comments). */
typedef struct dr_mf_view {
    uint32_t n_users, n_items, d;
    const float *user;      /* (n_users, d) */
    const float *item;      /* (n_items, d) */
    const float *item_bias; /* (n_items) */
} dr_mf_view;
dr_status dr__mf_get_view(const dr_model *m, dr_mf_view *out, dr_error *err);
/* A model over factors it does not own (e.g. a checkpoint mapping that outlives it). */
dr_status dr__mf_from_view(const dr_mf_view *v, dr_model **out, dr_error *err);
/*
 * Recomputes the fused item latents of a fitted fusion model with some features removed,
 * without retraining: over (n_fused_modalities, n_items) is a presence override (0 removes
 * the feature; NULL keeps the dataset's mask), impute says what a missing feature becomes.
 * ds must be the dataset the model was trained on (same items, same modality dims). Scoring,
 * the view and the dot-product latents all use the new latents afterwards. DR_UNSUPPORTED for a
 * model without fusion. Call with over = NULL and the training impute mode to restore.
 */
dr_status dr__mf_refuse(dr_model *m, const dr_dataset *ds, const uint8_t *over,
                       dr_impute impute, dr_error *err);
/* The fusion of a fitted model and its id embeddings e (n_items, d) (NULL when id-only);
 * what a checkpoint must carry to allow dr__mf_refuse after loading. */
const dr_fusion *dr__mf_get_fusion(const dr_model *m, const float **item_id);
/*
 * Gives a model built from a view (a loaded checkpoint) back its fusion so dr__mf_refuse works:
 * copies f's shape (d must match, w and stats are copied), the id embeddings item_id
 * (n_items, d) and the current fused latents (the view's item) into owned memory; scoring is
 * unchanged until dr__mf_refuse is called; impute is the mode it was trained with. DR_ARG when
 * shapes disagree.
 */
dr_status dr__mf_attach_fusion(dr_model *m, const dr_fusion *f, const float *item_id,
                              dr_impute impute, dr_error *err);
/* The impute mode the model was trained with (DR_IMPUTE_GATE for a model without fusion). */
dr_impute dr__mf_get_impute(const dr_model *m);
/* Items with no training interaction (n_items bytes, 1 = cold), NULL for a loaded model. */
const uint8_t *dr__mf_cold_items(const dr_model *m);

/*
 * One BPR sample, the exact code training uses: x = b_i - b_j + pu.(qi - qj),
 * loss = -log sigmoid(x) + l2/2 (|pu|^2 + |qi|^2 + |qj|^2 + bi^2 + bj^2).
 * Writes the gradients of the loss (gu, gi, gj: (d); gbi, gbj) and returns the loss.
 */
float dr__mf_bpr_grad(uint32_t d, const float *pu, const float *qi, const float *qj, float bi,
                     float bj, float l2, float *gu, float *gi, float *gj, float *gbi,
                     float *gbj);

#endif /* DR_MODEL_MF_H */
