/*
 * model_sasrec.h - SASRec (Kang & McAuley 2018) trained in C: parameters, training, serving.
 *
 * DESIGN: see the comment at the top of model_sasrec.c. This header is internal (tests, bench);
 * the rest of the library reaches SASRec through its vtable (dr_model_fit("sasrec"),
 * checkpoints).
 */
#ifndef DR_MODEL_SASREC_H
#define DR_MODEL_SASREC_H

#include "fusion.h"
#include "model.h"
#include "rng.h"

typedef enum {
    DR_SASREC_CE = 0,     /* full softmax cross-entropy over all items at every position */
    DR_SASREC_BCE = 1,    /* binary cross-entropy, one uniform negative per position (original) */
    DR_SASREC_SAMPLED = 2 /* softmax over the target and `negatives` items drawn once per batch
                             from Q(i) ~ (count_i + 1)^neg_alpha and shared by every position,
                             logits corrected by -log Q, accidental hits left out */
} dr_sasrec_loss;
#define DR_SASREC_N_LOSSES 3
/* "ce", "bce", "sampled"; NULL past the last. */
const char *dr__sasrec_loss_name(int loss);
/* DR_OK and *loss, or DR_ARG naming the accepted values. */
dr_status dr__sasrec_loss_parse(const char *name, dr_sasrec_loss *loss, dr_error *err);

/* dr_epoch_fn (dynrec.h) is called after every epoch from the calling thread; val_ndcg10 < 0
 * when the epoch was not validated. */

typedef struct dr_sasrec dr_sasrec;

typedef struct dr_sasrec_params {
    uint32_t d;           /* hidden size (50); divisible by heads */
    uint32_t L;           /* max sequence length (200) */
    uint32_t blocks;      /* transformer blocks (2) */
    uint32_t heads;       /* attention heads (1) */
    float dropout;        /* dropout rate (0.2) */
    dr_sasrec_loss loss;  /* DR_SASREC_CE */
    uint32_t negatives;   /* sampled: negatives per batch, 1..DR_SASREC_MAX_NEGATIVES (512) */
    float neg_alpha;      /* sampled: Q(i) ~ (training count + 1)^neg_alpha, 0 = uniform,
                             at most 1 (0.5) */
    float lr;             /* Adam learning rate (1e-3) */
    float weight_decay;   /* decoupled (AdamW), on matrices and embeddings only (0) */
    float beta1, beta2;   /* (0.9, 0.98) as SASRec.pytorch */
    uint32_t batch;       /* users per batch (128) */
    uint32_t epochs;      /* maximum epochs (200) */
    uint32_t patience;    /* evaluations without improvement before stopping (5) */
    uint32_t min_epochs;  /* no early stop before this epoch (35): the first epochs' validation
                             figures on a few hundred targets are noise (ml-small P-STREAM: a
                             best at epoch 2 stopped the fit at 7, frozen Hit@10 0.014 vs 0.038),
                             and on small data SASRec dips after its first peak (ml-small P-LOO:
                             0.0190 at epoch 8, 0.0139 at 21, 0.0366 at 48); docs/BENCH.md */
    uint32_t eval_every;  /* validate every this many epochs (1); 0 = never (keep the last) */
    uint32_t val_users;   /* validation users sampled for NDCG@10 (10000); 0 = all */
    uint32_t shards;      /* fixed work split of a batch (8): results never depend on threads */
    uint64_t seed;        /* (42) */
    int threads;          /* 0 = all cores */
    const dr_sasrec *init;/* warm start: copy these parameters (same d, L, blocks, heads)
                             instead of the random initialisation; NULL = random. Every tensor
                             but tok is copied; tok row of an item init knows (init_map) is its
                             e (a fused init) or its tok row, a new item's is the random one;
                             a fused init also gives its fusion block and statistics (the
                             modalities must agree: dr__fusion_warm_check) */
    const dr_warm_map *init_map; /* init's row of each item (model.h); NULL = the same items */
    float init_lr_scale;  /* warm start: factor on the learning rate (and decay) of what init
                             gave: every tensor and the rows of known items; new items' rows
                             learn at the full rate (1 = none) */
    dr_epoch_fn on_epoch; /* may be NULL */
    void *on_epoch_ud;
    /* Gated multimodal fusion (fusion.h): the item table used as input and as the tied output
     * becomes z_i = e_i + sum_m g_im (P_m xs_im + b_m); 0 = id-only (the same bytes as
     * without this field). */
    uint32_t use_modalities;  /* bit m fuses the dataset's modality m (0) */
    float modality_dropout;   /* training: each (item, modality) dropped per batch (0.6) */
    dr_impute impute;         /* DR_IMPUTE_GATE | DR_IMPUTE_MEAN (GATE) */
    float fusion_lr;          /* Adam learning rate of the fusion block (0.003) */
    float fusion_l2;          /* L2 on the fusion block (0.001) */
    float id_dropout;         /* training: each item's e is zeroed (the item carried by its
                                 features alone, no e gradient) per batch with this rate (0) */
} dr_sasrec_params;

dr_sasrec_params dr__sasrec_default_params(void);

/* What a checkpoint must store to rebuild the network (besides the parameter block). */
typedef struct dr_sasrec_dims {
    uint32_t n_items, d, L, blocks, heads;
} dr_sasrec_dims;

/* One named, shaped slice of the parameter block. Offsets are in floats and multiples of 16
 * (64 bytes), so the block can be written as is and mmapped back. */
#define DR_SASREC_N_TENSORS 16
typedef struct dr_sasrec_tensor {
    const char *name;   /* "tok", "pos", "ln1w", ... */
    int ndim;
    uint32_t shape[3];
    size_t offset;      /* floats from the start of the block */
    size_t count;       /* floats */
} dr_sasrec_tensor;

/* Fills up to cap tensors; returns the total size of the block in floats. */
size_t dr__sasrec_tensors(const dr_sasrec_dims *dm, dr_sasrec_tensor *out, size_t cap);


/* Trains on the split's training prefixes (validation targets for early stopping, through
 * dr__validator_make's validator as dr_model_fit gives it). */
dr_status dr__sasrec_fit(const dr_dataset *ds, const dr_split *sp, const dr_sasrec_params *p,
                        dr_sasrec **out, dr_error *err);
/* A model over a parameter block it does NOT own (e.g. mmapped, read-only); the block must
 * outlive the model. n_floats must equal dr__sasrec_tensors(dims)'s total. */
dr_status dr__sasrec_from_params(const dr_sasrec_dims *dims, const float *block,
                                size_t n_floats, dr_sasrec **out, dr_error *err);
void dr__sasrec_free(dr_sasrec *m);

const dr_sasrec_dims *dr__sasrec_get_dims(const dr_sasrec *m);
const float *dr__sasrec_param_block(const dr_sasrec *m, size_t *n_floats);
/* The loss a model was trained with (-1: unknown, a checkpoint written before it was saved)
 * and, for DR_SASREC_SAMPLED, its negatives and neg_alpha (may be NULL). */
int dr__sasrec_get_loss(const dr_sasrec *m, uint32_t *negatives, float *neg_alpha);
/* Validation NDCG@10 of the kept parameters and its epoch (-1 / 0 when never validated). */
double dr__sasrec_best_val(const dr_sasrec *m, int *epoch);

/* Bytes of scratch dr__sasrec_user_latent needs (one per thread). */
size_t dr__sasrec_scratch_bytes(const dr_sasrec *m);
/* h (d) = output of the last position for the last L items of ctx (no dropout). n_ctx = 0
 * gives the final LayerNorm's bias. Items must be < n_items. Never allocates. */
void dr__sasrec_user_latent(const dr_sasrec *m, const uint32_t *ctx, size_t n_ctx, float *h,
                           void *scratch);
/* scores (n_items) = E h for the user latent of ctx. Never allocates. */
void dr__sasrec_score(const dr_sasrec *m, const uint32_t *ctx, size_t n_ctx, float *scores,
                     void *scratch);

/* Scoring interface; fit maps dr_model_params onto dr_sasrec_params (0 / negative / NULL
 * fields keep the defaults; shards and val_users always keep theirs). */
extern const dr_model_vt dr_sasrec_vt;
/* The fusion a fitted model was trained with (NULL: id-only or loaded). A fused model's tok
 * tensor holds the fused latents z (what serving and the checkpoint use); e is kept here. */
const dr_fusion *dr__sasrec_get_fusion(const dr_sasrec *m, const float **item_id);

/*
 * Fusion of SASRec's item table, the code training uses (exposed for the gradient test).
 * Rows 1..n_items of tok (n_items+1, d) are e; z gets the fused rows (row 0 = 0). rate > 0
 * drops each (item, modality) with that probability from rng; pres (n_items, n_mod) records
 * what the forward used. Backward writes dtok rows 1..n_items (rows with frozen[i] = 1 get 0;
 * frozen may be NULL) from dz and ADDS to dw (f->n_params). act: (n_items, act_floats).
 */
void dr__sr_fuse_forward(const dr_fusion *f, const dr_fusion_input *in, dr_impute imp,
                        float rate, dr_rng *rng, const float *tok, float *z, float *act,
                        uint8_t *pres);
void dr__sr_fuse_backward(const dr_fusion *f, const dr_fusion_input *in, dr_impute imp,
                         const float *tok, const float *act, const uint8_t *pres,
                         const float *dz, const uint8_t *frozen, float *dtok, float *dw);

/* As dr__mf_refuse: recomputes the fused rows of tok from e with a presence override
 * (n_fused, n_items) (NULL = the dataset's mask) and impute; DR_UNSUPPORTED for a model that
 * is id-only or loaded from a checkpoint (which keeps z only). */
dr_status dr__sasrec_refuse(dr_sasrec *m, const dr_dataset *ds, const uint8_t *over,
                           dr_impute impute, dr_error *err);
dr_impute dr__sasrec_get_impute(const dr_sasrec *m);

/* Wraps a fitted model as a dr_model (takes ownership of m). */
dr_status dr__sasrec_as_model(dr_sasrec *m, dr_model **out, dr_error *err);

/* ------------------------------------------------------------------ internals for the tests
 * The layer functions are templated (model_sasrec_layers.h) and instantiated for float (_f32) and
 * double (_f64); the gradient tests drive the _f64 copies directly. */

#define DR_SR_CHUNK 128     /* positions per CE logits chunk */
#define DR_SR_LN_EPS 1e-8   /* LayerNorm epsilon, as SASRec.pytorch */

/* A packed batch of sequences (no padding). */
typedef struct dr_sr_batch {
    size_t n_seq;
    const size_t *off;    /* (n_seq+1) sequence s = positions off[s] .. off[s+1]-1 */
    const uint32_t *inp;  /* (T) input item rows 1..n_items */
    const uint32_t *tgt;  /* (T) target rows 1..n_items, 0 = no loss at this position */
    const uint32_t *neg;  /* (T) BCE negative rows */
    const uint64_t *seed; /* (n_seq) dropout stream per sequence */
    const uint32_t *sneg; /* (n_sneg) sampled loss: the batch's shared negative rows */
    size_t n_sneg;
    const double *logq;   /* (n_items+1) sampled loss: log Q per row; NULL = no correction */
} dr_sr_batch;

#define DR_SR_DECLARE(REAL, SFX)                                                              \
    typedef struct dr_sr_params##SFX dr_sr_params##SFX;                                         \
    typedef struct dr_sr_acts##SFX dr_sr_acts##SFX;                                             \
    struct dr_sr_params##SFX {                                                                  \
        REAL *tok;      /* (n_items+1, d) item embeddings, row 0 = padding, also the output */ \
        REAL *pos;      /* (L, d) positions; the most recent item always sits at L-1 */        \
        REAL *ln1w;     /* (blocks, d) */                                                      \
        REAL *ln1b;     /* (blocks, d) */                                                      \
        REAL *qkvw;     /* (blocks, 3d, d) */                                                  \
        REAL *qkvb;     /* (blocks, 3d) */                                                     \
        REAL *attprojw; /* (blocks, d, d) */                                                   \
        REAL *attprojb; /* (blocks, d) */                                                      \
        REAL *ln2w;     /* (blocks, d) */                                                      \
        REAL *ln2b;     /* (blocks, d) */                                                      \
        REAL *fcw;      /* (blocks, d, d) */                                                   \
        REAL *fcb;      /* (blocks, d) */                                                      \
        REAL *fcprojw;  /* (blocks, d, d) */                                                   \
        REAL *fcprojb;  /* (blocks, d) */                                                      \
        REAL *lnfw;     /* (d) */                                                              \
        REAL *lnfb;     /* (d) */                                                              \
    };                                                                                          \
    struct dr_sr_acts##SFX {                                                                    \
        size_t T;        /* capacity in positions */                                           \
        size_t att_cap;  /* one block's att capacity: heads * sum over sequences of n^2 */     \
        REAL *emb;       /* (T, d) embedding after dropout = residual stream input */          \
        REAL *m_emb;     /* (T, d) dropout scale 0 or 1/(1-p); NULL at inference */            \
        REAL *ln1;       /* (blocks, T, d) */                                                  \
        REAL *ln1_mean;  /* (blocks, T) */                                                     \
        REAL *ln1_rstd;  /* (blocks, T) */                                                     \
        REAL *qkv;       /* (blocks, T, 3d) */                                                 \
        REAL *att;       /* (blocks, att_cap) per sequence, per head (n, n) causal softmax */  \
        REAL *atty;      /* (blocks, T, d) attention output before the projection */           \
        REAL *attproj;   /* (blocks, T, d) projection after dropout */                         \
        REAL *m_attproj; /* (blocks, T, d) */                                                  \
        REAL *res2;      /* (blocks, T, d) */                                                  \
        REAL *ln2;       /* (blocks, T, d) */                                                  \
        REAL *ln2_mean;  /* (blocks, T) */                                                     \
        REAL *ln2_rstd;  /* (blocks, T) */                                                     \
        REAL *fch;       /* (blocks, T, d) before ReLU */                                      \
        REAL *fch_act;   /* (blocks, T, d) after ReLU and dropout */                           \
        REAL *m_fch;     /* (blocks, T, d) */                                                  \
        REAL *fcproj;    /* (blocks, T, d) after dropout */                                    \
        REAL *m_fcproj;  /* (blocks, T, d) */                                                  \
        REAL *res3;      /* (blocks, T, d) block output */                                     \
        REAL *lnf;       /* (T, d) final LayerNorm = the sequence representation h */          \
        REAL *lnf_mean;  /* (T) */                                                             \
        REAL *lnf_rstd;  /* (T) */                                                             \
        REAL *dres;      /* (T, d) gradient of the residual stream; NULL at inference */       \
        REAL *dbuf;      /* (T, d) */                                                          \
        REAL *dbuf2;     /* (T, d) */                                                          \
        REAL *dqkv;      /* (T, 3d) */                                                         \
        REAL *datt;      /* (L, L) one head of one sequence */                                 \
        REAL *logits;    /* (DR_SR_CHUNK, n_items) CE logits; set by the caller, not the layout */ \
    };                                                                                          \
    void dr__sr_params_layout##SFX(const dr_sasrec_dims *dm, REAL *base, dr_sr_params##SFX *P); \
    size_t dr__sr_acts_layout##SFX(const dr_sasrec_dims *dm, size_t T, size_t att_cap,          \
                                  int train, REAL *base, dr_sr_acts##SFX *A);                  \
    void dr__sr_layernorm_forward##SFX(REAL *out, REAL *mean, REAL *rstd, const REAL *inp,      \
                                      const REAL *w, const REAL *b, size_t T, size_t C);       \
    void dr__sr_layernorm_backward##SFX(REAL *dinp, REAL *dw, REAL *db, const REAL *dout,       \
                                       const REAL *inp, const REAL *w, const REAL *mean,       \
                                       const REAL *rstd, size_t T, size_t C);                  \
    void dr__sr_matmul_forward##SFX(REAL *out, const REAL *inp, const REAL *W, const REAL *bias, \
                                   size_t T, size_t C, size_t OC);                             \
    void dr__sr_matmul_backward##SFX(REAL *dinp, REAL *dW, REAL *dbias, const REAL *dout,       \
                                    const REAL *inp, const REAL *W, size_t T, size_t C,        \
                                    size_t OC);                                                \
    void dr__sr_attention_forward##SFX(REAL *out, REAL *att, const REAL *qkv, size_t n,         \
                                      size_t C, size_t NH);                                    \
    void dr__sr_attention_backward##SFX(REAL *dqkv, REAL *datt, const REAL *dout,               \
                                       const REAL *qkv, const REAL *att, size_t n, size_t C,   \
                                       size_t NH);                                             \
    void dr__sr_residual_forward##SFX(REAL *out, const REAL *a, const REAL *b, size_t N);       \
    void dr__sr_residual_backward##SFX(REAL *da, REAL *db, const REAL *dout, size_t N);         \
    void dr__sr_relu_forward##SFX(REAL *out, const REAL *inp, size_t N);                        \
    void dr__sr_relu_backward##SFX(REAL *dinp, const REAL *dout, const REAL *inp, size_t N);    \
    void dr__sr_dropout_forward##SFX(REAL *out, const REAL *inp, const REAL *mask, size_t N);   \
    void dr__sr_dropout_backward##SFX(REAL *dinp, const REAL *dout, const REAL *mask, size_t N); \
    void dr__sr_dropout_mask##SFX(REAL *mask, size_t N, double p, dr_rng *rng);                 \
    void dr__sr_embed_forward##SFX(REAL *emb, const REAL *tok, const REAL *pos,                 \
                                  const dr_sr_batch *bt, size_t d, size_t L);                  \
    void dr__sr_embed_backward##SFX(REAL *dtok, REAL *dpos, const REAL *demb,                   \
                                   const dr_sr_batch *bt, size_t d, size_t L);                 \
    double dr__sr_bce_loss##SFX(REAL *dh, REAL *dtok, const REAL *h, const REAL *tok,           \
                               const uint32_t *tgt, const uint32_t *neg, size_t T, size_t d,   \
                               REAL scale);                                                    \
    size_t dr__sr_sampled_scratch##SFX(size_t K, size_t d);                                     \
    double dr__sr_sampled_loss##SFX(REAL *dh, REAL *dtok, REAL *scratch, const REAL *h,          \
                                   const REAL *tok, const uint32_t *tgt, size_t T, size_t d,    \
                                   const uint32_t *sneg, size_t K, const double *logq,          \
                                   REAL scale);                                                 \
    double dr__sr_ce_loss##SFX(REAL *dh, REAL *dtok, REAL *logits, const REAL *h,               \
                              const REAL *tok, const uint32_t *tgt, size_t T, size_t d,        \
                              size_t n_items, REAL scale);                                     \
    void dr__sr_masks##SFX(dr_sr_acts##SFX *A, const dr_sasrec_dims *dm, const dr_sr_batch *bt, \
                          double p);                                                           \
    void dr__sr_forward##SFX(const dr_sasrec_dims *dm, const dr_sr_params##SFX *P,              \
                            dr_sr_acts##SFX *A, const dr_sr_batch *bt);                        \
    double dr__sr_loss_backward##SFX(const dr_sasrec_dims *dm, const dr_sr_params##SFX *P,      \
                                    dr_sr_params##SFX *G, dr_sr_acts##SFX *A,                  \
                                    const dr_sr_batch *bt, int loss_kind, REAL scale);

DR_SR_DECLARE(float, _f32)
DR_SR_DECLARE(double, _f64)

#endif /* DR_MODEL_SASREC_H */
