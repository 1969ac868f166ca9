/*
 * fusion.h - gated multimodal fusion of item features into the item latent (../shared/DESIGN.md):
 *
 *   y_im = P_m xs_im + b_m                    xs_im: item i's standardised feature of modality m
 *   g_im = p_im * sigmoid(u_m . [e_i ; y_im] + c_m)
 *   z_i  = e_i + sum_m g_im * y_im
 *
 * p_im is the presence bit (0 when the feature is missing or dropped). With mean imputation
 * (DR_IMPUTE_MEAN, the MMRec/LATTICE baseline) a missing feature is replaced by the modality's
 * mean instead, i.e. xs_im = 0 after standardisation, and the gate stays open (p_im = 1).
 * Shapes: d = latent size, dim_m = feature size of modality m.
 */
#ifndef DR_FUSION_H
#define DR_FUSION_H

#include "dataset.h"

typedef enum { DR_IMPUTE_GATE = 0, DR_IMPUTE_MEAN = 1 } dr_impute;

/* "gate" | "mean" */
dr_status dr__impute_parse(const char *s, dr_impute *out, dr_error *err);
const char *dr__impute_name(dr_impute m);

/*
 * The modality mask for a selection spec over ds's modalities: NULL, "" or "none" -> 0 (ids
 * only); "all" -> every modality; otherwise comma-separated names ("visual,audio"). An unknown
 * name is DR_ARG naming it and the modalities the dataset has.
 */
dr_status dr__fusion_select(const dr_dataset *ds, const char *spec, uint32_t *mask,
                           dr_error *err);

typedef struct dr_fusion {
    uint32_t d;                         /* latent size */
    uint32_t n_mod;                     /* modalities fused (0 = id-only) */
    uint32_t dim[DR_MAX_MODALITIES];    /* feature size of each fused modality */
    char name[DR_MAX_MODALITIES][32];   /* its name in the dataset ("visual", ...) */
    /* One learned block w (n_params), per modality m at off[m]:
     *   P (d, dim_m) | b (d) | u (2 d): u[0..d) on e, u[d..2d) on y | c (1) */
    size_t off[DR_MAX_MODALITIES];
    size_t n_params;
    float *w;                           /* (n_params) */
    /* Standardisation, fitted on present rows: per modality at soff[m]:
     *   mean (dim_m) | inv_std (dim_m)   (inv_std = 1/sqrt(var + 1e-6)) */
    size_t soff[DR_MAX_MODALITIES];
    size_t n_stats;
    float *stats;                       /* (n_stats) */
} dr_fusion;

/* Floats of scratch one forward pass keeps for backward: n_mod * (d + 2) (y, sigmoid, gate). */
size_t dr__fusion_act_floats(const dr_fusion *f);

/*
 * Builds a fusion over the dataset modalities selected by `mask` (bit m = ds->mod[m]):
 * allocates w and stats, fits the standardisation on the present rows (a modality with no
 * present row is an error naming it) and initialises w from seed: P ~ N(0, init_std^2 / dim_m)
 * (so |y| starts at the scale of e), u ~ N(0, 0.01 / (2 d)) (gates start near 1/2), b = c = 0.
 * mask = 0 gives an empty fusion (n_mod = 0).
 */
dr_status dr__fusion_init(dr_fusion *f, const dr_dataset *ds, uint32_t mask, uint32_t d,
                         float init_std, uint64_t seed, dr_error *err);
void dr__fusion_free(dr_fusion *f); /* frees w and stats; zeroes f */
/* Deep copy of src into dst (zeroed first) after checking that its offsets and sizes are the
 * layout dr__fusion_init makes (DR_ARG naming the modality otherwise) and that d == want_d. */
dr_status dr__fusion_copy(dr_fusion *dst, const dr_fusion *src, uint32_t want_d, dr_error *err);

/*
 * Warm start of a fused model (mf, sasrec): whether init (NULL or n_mod = 0: ids only) fuses
 * the modalities a fit selecting `mask` over ds would (same names and dimensions in the same
 * order; checked before dr__fusion_init, so a mask naming a modality ds lacks is reported here).
 * Exactly one side fusing is DR_UNSUPPORTED, different modalities DR_ARG; both messages name
 * both sides ("visual:64,audio:32" or "ids only") after `who` (the model).
 */
dr_status dr__fusion_warm_check(const dr_fusion *init, const dr_dataset *ds, uint32_t mask,
                               const char *who, dr_error *err);
/* Copies init's learned block (projections, gates) and standardisation into f, a fusion
 * dr__fusion_init built for a fit that passed dr__fusion_warm_check with init. */
void dr__fusion_warm_copy(dr_fusion *f, const dr_fusion *init);

/*
 * Standardised features for the fused modalities: n_mod arrays xs[m] (n_items, dim[m])
 * allocated here, and pres (n_mod, n_items) the presence
 * bits: ds's mask AND (override == NULL or override[m * n_items + i]). Rows of missing items are
 * zero (= the modality mean after standardisation). Errors when ds does not have a modality of
 * that name and dimension or has another item count; the message names the modality.
 */
typedef struct dr_fusion_input {
    uint32_t n_items, n_mod;
    float *xs[DR_MAX_MODALITIES];     /* each (n_items, dim[m]) */
    uint8_t *pres;                    /* (n_mod, n_items) */
    float *zero;                      /* (max dim) zeros: the mean-imputed row */
} dr_fusion_input;
dr_status dr__fusion_input_build(const dr_fusion *f, const dr_dataset *ds,
                                const uint8_t *override, dr_fusion_input *in, dr_error *err);
void dr__fusion_input_free(dr_fusion_input *in);

/*
 * One item's forward pass. x[m] is its standardised feature row (dim[m]), gate[m] the
 * presence value in {0, 1} (after dropout / imputation: with DR_IMPUTE_MEAN the caller passes
 * x[m] = zeros and gate[m] = 1). act (dr__fusion_act_floats) keeps y, sigmoid and gate.
 */
void dr__fusion_forward(const dr_fusion *f, const float *e, const float *const *x,
                       const float *gate, float *z, float *act);
/* Backward of the same item: given dz (d), writes de (d) and ADDS the gradient of w to dw
 * (n_params). */
void dr__fusion_backward(const dr_fusion *f, const float *e, const float *const *x,
                        const float *act, const float *dz, float *de, float *dw);

/* z (n_items, d) for every item from e (n_items, d) and the input, with imputation mode. */
void dr__fusion_materialise(const dr_fusion *f, const float *e, const dr_fusion_input *in,
                           dr_impute impute, float *z, float *act);

/*
 * Presence override that removes one modality for a fraction p of items: over (n_mod,
 * n_items) is set to 1 everywhere, then for modality `m` the first round(p n_items) items of
 * a permutation drawn from seed get 0 (uniform; same seed, same items).
 */
dr_status dr__fusion_drop_mask(uint32_t n_mod, uint32_t n_items, uint32_t m, double p,
                              uint64_t seed, uint8_t *over, dr_error *err);

/* A fusion in a checkpoint (ckpt.h): metadata fusion_modalities "name:dim,..." and
 * fusion_impute, sections PREFIX.item_id (rows, d) (the id embeddings e), PREFIX.fusion
 * (n_params) and PREFIX.fusion_stats (n_stats). dr__fusion_load reads it back: *f gets the
 * shape, w and stats pointing into the mapping (read only), *eid the id embeddings; *found = 0
 * when the checkpoint has no fusion. Every name, dimension and section shape is checked. */
struct dr_ckpt;
struct dr_ckpt_writer;
dr_status dr__fusion_save(struct dr_ckpt_writer *w, const char *prefix, const dr_fusion *f,
                         const float *eid, uint64_t rows, dr_impute imp, dr_error *err);
dr_status dr__fusion_load(const struct dr_ckpt *c, const char *prefix, uint32_t d, uint64_t rows,
                         dr_fusion *f, const float **eid, dr_impute *imp, int *found,
                         dr_error *err);

#endif /* DR_FUSION_H */
