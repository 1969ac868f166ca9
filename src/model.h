/*
 * model.h - the scoring interface every model plugs into (pop, itemknn, sasrec, mf).
 *
 * DESIGN: a small vtable. fit() reads only the split's training segments; score() fills a
 * dense (n_items) score vector for a user's context using per-thread scratch, so the
 * evaluation harness and the server share one code path. Alternative rejected: a top-k-only
 * interface, which would hide the full score vector that the pessimistic-tie metrics need.
 * Everything the generic layer needs from a model is a slot or a flag of its vtable (saving,
 * loading, the dot-product view, the user latent, what explain must know), filled in the
 * model's own file, so no other file compares vtable pointers or model names. Early stopping
 * is a dr_validator the generic layer hands to fit(): a model ranks its validation targets
 * through the one evaluation harness (eval.c) without depending on it. The model kinds are
 * the rows of DR_MODEL_TABLE; a new kind is its own file plus one row.
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
/* A split kind's name in checkpoint metadata ("loo", "given", "t0", "all"; "?" if unknown), and
 * back (-1 if unknown). */
const char *dr__split_kind_name(int kind);
int dr__split_kind_parse(const char *name);
/* A T0-kind split at time t (refits, validation streams): events before t train, the last of
 * them validates when with_valid (and the user has two), the rest are test. */
dr_status dr__split_t0_at(const dr_dataset *ds, int64_t t, int with_valid, dr_split **out,
                          dr_error *err);

struct dr_ckpt;
struct dr_ckpt_writer;
typedef struct dr_model_vt dr_model_vt;

/* Which evaluation users and targets the harness ranks (eval.c's dr__eval_run). */
typedef struct dr_eval_subset {
    uint32_t max_users;  /* 0: every evaluation user; else at most this many, drawn with seed
                            (a partial Fisher-Yates over the users in id order, ranked and
                            averaged in the drawn order) */
    uint64_t seed;
    int first_target;    /* 1: only the first item of each target segment is a target */
    int quiet;           /* 1: no warning about users skipped for an empty context */
} dr_eval_subset;

/* What a model asks of a validation. */
typedef struct dr_valid_opts {
    int threads;         /* evaluation workers (0 = all cores); results never depend on it */
    dr_eval_subset subset;
} dr_valid_opts;

/* Validation for early stopping, made by dr__validator_make (eval_validate.c) and handed to fit():
 * fn ranks the split's validation targets (full ranking, context excluded, pessimistic ties)
 * with the model's current state and writes the mean NDCG@10 and Hit@10. fn NULL: no
 * validation. The other fields belong to fn. */
typedef struct dr_validator {
    dr_status (*fn)(const struct dr_validator *v, const void *state, const dr_valid_opts *o,
                    double *ndcg10, double *hit10, dr_error *err);
    const dr_model_vt *vt;
    const dr_dataset *ds;
    const dr_split *sp;
} dr_validator;

/* A validator for models of kind vt over ds and sp's validation segments. */
dr_validator dr__validator_make(const dr_model_vt *vt, const dr_dataset *ds, const dr_split *sp);

struct dr_model_vt {
    const char *name;
    /* Fits on ds + split training prefixes; *state is the model's private block. val (may be
     * NULL) is the validation early stopping uses. */
    dr_status (*fit)(const dr_dataset *ds, const dr_split *sp, const dr_model_params *p,
                     const dr_validator *val, void **state, dr_error *err);
    void (*free)(void *state);
    /* Bytes of per-thread scratch score() needs (may be 0). */
    size_t (*scratch_bytes)(const void *state);
    dr_status (*score)(const void *state, void *scratch, uint32_t u, const uint32_t *ctx,
                       size_t n_ctx, float *scores, dr_error *err);
    int warm_start; /* 1: fit accepts p->init, a model of this same kind (dr_model_fit checks) */
    /* Gated fusion (mf, sasrec; NULL for models without one). fusion: as dr__model_fusion, NULL
     * when the model fuses nothing. refuse: recomputes the fused item latents from e with a
     * presence override (n_mod, n_items; NULL = the dataset's) and a missing-feature mode. */
    const dr_fusion *(*fusion)(const dr_model *m, const float **e, dr_impute *imp);
    dr_status (*refuse)(dr_model *m, const dr_dataset *ds, const uint8_t *over, dr_impute imp,
                        dr_error *err);
    /* Checkpoints (model_io.c; NULL: the kind cannot be saved): save adds the model's
     * metadata and sections to w; load builds the model from c's. */
    dr_status (*save)(const dr_model *m, struct dr_ckpt_writer *w, dr_error *err);
    dr_status (*load)(const struct dr_ckpt *c, dr_model **out, dr_error *err);
    /* Dot-product view (NULL: none): score = items[i] . h over *dim floats per item; *owned is
     * set when the rows had to be built (the model is then its owner). */
    dr_status (*latents)(const void *state, uint32_t *dim, const float **items, float **owned,
                         dr_error *err);
    /* h (dim floats) with score = items[i] . h for (u, ctx), scratch as score()'s. */
    dr_status (*user_latent)(const void *state, void *scratch, uint32_t u, const uint32_t *ctx,
                             size_t n_ctx, float *h, dr_error *err);
    /* The user latent of a trained user ignores the context (mf: a changed history is scored
     * with the fold-in latent of an unknown user). */
    int fold_in;
    /* The last items of a context the model reads (sasrec's L); NULL or 0: all of them. */
    uint32_t (*window)(const void *state);
};

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
    struct dr_scan_bf16 *latent_bf16; /* bf16 copy for dr_recommend (scan.h); NULL: f32 only */
    /* dr_model_set_meta's notes, written by dr_model_save (owned strings) */
    uint32_t n_notes;
    char *note_key[DR_MODEL_NOTES_MAX], *note_val[DR_MODEL_NOTES_MAX];
};

/*
 * Warm start (model.c): the row of the init model each user and item of a new dataset starts
 * from. With a checkpoint (its ctx.users / ctx.items) rows are matched by external id, so the
 * new dataset may order its ids differently and add or drop users and items; a model fitted in
 * memory has no ids and is matched row for row, which needs the same user and item counts.
 * user / item NULL: row k is the init's row k (the same ids in the same order).
 */
#define DR_WARM_NEW UINT32_MAX /* a user or item the init does not know: a fresh row */
typedef struct dr_warm_map {
    uint32_t n_users, n_items;  /* the new dataset's */
    uint32_t *user;             /* (n_users) the init's user row or DR_WARM_NEW; NULL: identity */
    uint32_t *item;             /* (n_items) the init's item row or DR_WARM_NEW; NULL: identity */
    uint32_t known_users, known_items;
} dr_warm_map;
/* The map from init to ds; init_user_rows is how many user rows the init's parameters hold
 * (0: the kind keeps none, the user map stays NULL). DR_ARG when a model without ids does not
 * have ds's counts, DR_FORMAT when a checkpoint's ids do not cover its rows. */
dr_status dr__warm_map_build(const dr_model *init, uint32_t init_user_rows, const dr_dataset *ds,
                            dr_warm_map *out, dr_error *err);
void dr__warm_map_free(dr_warm_map *w);
/* The init's row of new row k (map NULL: k). */
static inline uint32_t dr__warm_row(const uint32_t *map, uint32_t k) { return map ? map[k] : k; }
/* Checks the user (users = 1) or item map of a fit with n of them from an init with n_init
 * rows: every row DR_WARM_NEW or below n_init; map NULL or that array NULL needs n == n_init.
 * who names the model in the DR_ARG message. */
dr_status dr__warm_map_check(const dr_warm_map *map, int users, uint32_t n, uint32_t n_init,
                            const char *who, dr_error *err);
/* dst row k (width floats) = src row dr__warm_row(map, k) for every k < n the init knows;
 * rows of new ids are left as they are. */
void dr__warm_copy_rows(float *dst, const float *src, const uint32_t *map, uint32_t n,
                       size_t width);

/* A model of kind vt around state (n_items items); on failure the state is freed with vt->free
 * (model.c). */
dr_status dr__model_wrap(const dr_model_vt *vt, void *state, uint32_t n_items, dr_model **out,
                        dr_error *err);
/* Fills the dot-product view of a fitted or loaded model (model.c). */
dr_status dr__model_prepare_latents(dr_model *m, dr_error *err);
/* The vtable's fold_in flag and context window (0 = all) of a model (model.c). */
int dr__model_folds_in(const dr_model *m);
uint32_t dr__model_window(const dr_model *m);
/* The kind called name, NULL when there is none (model_kinds.c). */
const dr_model_vt *dr__model_kind(const char *name);
/* The gated fusion of a dot-product model (mf, sasrec) and its id embeddings: *e (when
 * non-NULL) points at item 0's e row (rows of f->d floats), *imp the impute mode it was trained
 * with. The first f->d values of latent row i are z_i (mf appends the item bias). NULL when
 * the model fuses nothing. */
const dr_fusion *dr__model_fusion(const dr_model *m, const float **e, dr_impute *imp);

struct dr_scorer {
    const dr_model *m;
    void *scratch;
    size_t scratch_bytes;
    float *h;                       /* (h_dim) the user latent of the dot-product view */
    uint32_t h_dim;                 /* the model's latent_dim when the scorer was made */
    /* dr_recommend's buffers, made on its first call */
    float *scores;                  /* (n_items) */
    struct dr_topk_scratch *topk;
    uint32_t items[DR_RECOMMEND_MAX_K];
    float top[DR_RECOMMEND_MAX_K];
};

/* The model kinds: X(name, vtable), the vtable defined in src/NAME.c with .name = "name".
 * model_kinds.c makes the registry and the list of known names from it. */
#define DR_MODEL_TABLE(X) X(pop, dr_pop_vt) X(itemknn, dr_itemknn_vt) X(sasrec, dr_sasrec_vt) \
    X(mf, dr_mf_vt)
#define DR_MODEL_EXTERN(name, vt) extern const dr_model_vt vt;
DR_MODEL_TABLE(DR_MODEL_EXTERN)
#undef DR_MODEL_EXTERN

#endif /* DR_MODEL_H */
