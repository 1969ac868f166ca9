/*
 * model_sasrec.c - SASRec (Kang & McAuley 2018): training, validation, serving.
 *
 * DESIGN
 * Model: item embeddings E (row 0 = padding, tied with the output layer) x sqrt(d) + learned
 * positions, dropout, `blocks` pre-LN transformer blocks, a final LayerNorm; score(u, i) =
 * h_last . E_i. Pre-LN (Q, K, V from LN1(x), a residual around each sub-layer, as SASRec.pytorch's
 * norm_first and GPT-2/llm.c) rather than the original's "query from LN(x), keys and values
 * from x": better conditioned, and one code path. No dropout on attention probabilities (saves
 * an (n, n) mask per head; four other dropout sites suffice). Layers: model_sasrec_layers.h.
 * Padding: sequences are packed and padded positions never computed (the timeline mask of
 * SASRec.pytorch without its leak of padded keys into attention); positions count from the
 * right, so a sequence's output does not depend on the batch it is in.
 * Losses: BCE with one uniform negative per position (the original) or full-softmax CE, logits
 * = H E^T by sgemm in chunks of DR_SR_CHUNK positions fused with the backward (as llm.c's fused
 * classifier; one logits buffer per worker). CE is the default: a higher NDCG@10 than the
 * reference BCE SASRec in far fewer epochs, at several times the cost per epoch (docs/BENCH.md).
 * Sampled softmax ("sampled"): per batch `negatives` items are drawn once (with replacement,
 * from Q(i) ~ (training count + 1)^neg_alpha, own RNG stream per (seed, epoch, batch)) and
 * shared by every position of every shard: one (T x K) GEMM against the K gathered rows instead
 * of (T x n_items). Negatives' logits are corrected by -log(K Q) (the target's is not: it is in
 * the set for sure), so the sampled normaliser estimates the full one without bias; a draw equal
 * to a position's target is left out of that position's softmax. Rejected: per-position
 * negatives (K gathers per position, no GEMM) and in-batch negatives (their Q is the batch's
 * target mix, tied to batch composition). Why CE stays the default: docs/BENCH.md "SASRec
 * losses" (the sampled loss's validation NDCG@10 against CE's on ml-small and amazon-mtv).
 * Training: per epoch one sequence per user (its last L+1 training items), users shuffled with
 * the seed, AdamW (decay on embeddings and matrices only), early stopping on validation NDCG@10
 * through the dr_validator fit is given (model.h: the evaluation harness on at most val_users
 * seeded users, first target of each segment; never before min_epochs, 35), best parameters
 * kept. Every buffer is one block allocated up front; nothing is allocated per batch.
 * Determinism: a batch is cut into a FIXED number of shards (params.shards, not the thread
 * count), each running forward+backward into its own gradient slice with single-threaded
 * OpenBLAS; slices are summed in shard order inside the Adam update (fixed parameter chunks);
 * dropout and negatives come from one RNG stream per (seed, epoch, user) (the shared sampled
 * negatives from one per (seed, epoch, batch)). So the bytes depend
 * on seed and shards only. Rejected: threaded OpenBLAS (its reductions split by thread count)
 * and per-thread gradient buffers (summed in schedule order).
 * Serving: dr__sasrec_user_latent, the same forward without dropout, then one sgemv against E;
 * a borrowed (mmapped) parameter block serves as is.
 * Fusion (use_modalities, fusion.c): the shards' item table is the fused z = e + sum_m g_m y_m
 * of every item, materialised once per batch (about one CE logits GEMM over a chunk; modality
 * dropout from its own stream); dL/dz goes back through the fusion into e and the fusion block
 * (own Adam). Rejected: fusing only the referenced items (the CE output layer touches every
 * item anyway). Items with no training interaction keep e = 0; after training
 * tok holds z (serving, checkpoints unchanged); with every gate closed the id-only model trains
 * bit for bit (tests/unit/test_fusion.c).
 * Warm start (p.init): the cold initialisation, then every tensor but tok and the tok rows of
 * the items the init knows by external id (its e when fused, sr_warm_copy); new items keep
 * their cold rows.
 */
#include "model_sasrec.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ckpt.h"

/* ------------------------------------------------------------------ row kernels
 * The softmax rows of the CE loss (n_items wide, once per position) dominate its cost after the
 * GEMMs. The float versions use GCC/Clang vector extensions (4 lanes, plain SSE2 code without
 * -march) and a Cephes-style expf (range reduction by ln 2, degree-6 polynomial, about 2 ulp);
 * lanes are combined in a fixed order, so results are deterministic. The double versions
 * (tests) are plain loops with libm exp. */

typedef float sr_v4 __attribute__((vector_size(16)));
typedef int32_t sr_v4i __attribute__((vector_size(16)));

static inline sr_v4 sr_v4_load(const float *p) {
    sr_v4 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline sr_v4 sr_v4_select(sr_v4i m, sr_v4 a, sr_v4 b) { /* m ? a : b */
    return (sr_v4)(((sr_v4i)a & m) | ((sr_v4i)b & ~m));
}

static inline sr_v4 sr_exp4(sr_v4 x) {
    const sr_v4 lo = {-87.3f, -87.3f, -87.3f, -87.3f};
    const sr_v4 hi = {88.3f, 88.3f, 88.3f, 88.3f};
    x = sr_v4_select(x < lo, lo, x);
    x = sr_v4_select(x > hi, hi, x);
    sr_v4 t = x * 1.44269504088896341f + 0.5f;
    sr_v4i n = __builtin_convertvector(t, sr_v4i); /* truncation */
    sr_v4 fn = __builtin_convertvector(n, sr_v4);
    sr_v4i adj = fn > t; /* floor for negative t */
    n += adj;            /* adj is -1 where true */
    fn = __builtin_convertvector(n, sr_v4);
    x = x - fn * 0.693359375f - fn * -2.12194440e-4f;
    sr_v4 z = x * x;
    sr_v4 y = 1.9875691500e-4f * x + 1.3981999507e-3f;
    y = y * x + 8.3334519073e-3f;
    y = y * x + 4.1665795894e-2f;
    y = y * x + 1.6666665459e-1f;
    y = y * x + 5.0000001201e-1f;
    y = y * z + x + 1.0f;
    return (sr_v4)((sr_v4i)y + (n << 23));
}

static inline float sr_exp1(float x) {
    float in[4] = {x}, out[4];
    sr_v4 r = sr_exp4(sr_v4_load(in));
    memcpy(out, &r, sizeof out);
    return out[0];
}

static inline float sr_rowmax_f32(const float *x, size_t n) {
    float mx = x[0];
    size_t i = 0;
    if (n >= 4) {
        sr_v4 m = sr_v4_load(x);
        for (i = 4; i + 4 <= n; i += 4) {
            sr_v4 v = sr_v4_load(x + i);
            m = sr_v4_select(v > m, v, m);
        }
        float l[4];
        memcpy(l, &m, sizeof l);
        for (int k = 0; k < 4; k++) mx = l[k] > mx ? l[k] : mx;
    }
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    return mx;
}

/* x = exp(x - mx) in place; returns the sum. */
static inline float sr_expsum_f32(float *x, size_t n, float mx) {
    sr_v4 acc = {0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        sr_v4 v = sr_exp4(sr_v4_load(x + i) - mx);
        memcpy(x + i, &v, sizeof v);
        acc += v;
    }
    float l[4], s = 0;
    memcpy(l, &acc, sizeof l);
    for (int k = 0; k < 4; k++) s += l[k];
    for (; i < n; i++) {
        x[i] = sr_exp1(x[i] - mx);
        s += x[i];
    }
    return s;
}

static inline void sr_scale_f32(float *x, size_t n, float a) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        sr_v4 v = sr_v4_load(x + i) * a;
        memcpy(x + i, &v, sizeof v);
    }
    for (; i < n; i++) x[i] *= a;
}

static inline double sr_rowmax_f64(const double *x, size_t n) {
    double mx = x[0];
    for (size_t i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    return mx;
}

static inline double sr_expsum_f64(double *x, size_t n, double mx) {
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = exp(x[i] - mx);
        s += x[i];
    }
    return s;
}

static inline void sr_scale_f64(double *x, size_t n, double a) {
    for (size_t i = 0; i < n; i++) x[i] *= a;
}

/* ------------------------------------------------------------------ layer instantiations */

#define REAL float
#define SR(x) x##_f32
#define GEMM cblas_sgemm
#define EXP expf
#define LOG logf
#define SQRT sqrtf
#include "model_sasrec_layers.h"
#undef REAL
#undef SR
#undef GEMM
#undef EXP
#undef LOG
#undef SQRT

#define REAL double
#define SR(x) x##_f64
#define GEMM cblas_dgemm
#define EXP exp
#define LOG log
#define SQRT sqrt
#include "model_sasrec_layers.h"
#undef REAL
#undef SR
#undef GEMM
#undef EXP
#undef LOG
#undef SQRT

/* ------------------------------------------------------------------ parameters */

size_t dr__sasrec_tensors(const dr_sasrec_dims *dm, dr_sasrec_tensor *out, size_t cap) {
    const uint32_t d = dm->d, nb = dm->blocks;
    const struct {
        const char *name;
        int ndim;
        uint32_t s0, s1, s2;
    } t[DR_SASREC_N_TENSORS] = {
        {"tok", 2, dm->n_items + 1, d, 0}, {"pos", 2, dm->L, d, 0},
        {"ln1w", 2, nb, d, 0},             {"ln1b", 2, nb, d, 0},
        {"qkvw", 3, nb, 3 * d, d},         {"qkvb", 2, nb, 3 * d, 0},
        {"attprojw", 3, nb, d, d},         {"attprojb", 2, nb, d, 0},
        {"ln2w", 2, nb, d, 0},             {"ln2b", 2, nb, d, 0},
        {"fcw", 3, nb, d, d},              {"fcb", 2, nb, d, 0},
        {"fcprojw", 3, nb, d, d},          {"fcprojb", 2, nb, d, 0},
        {"lnfw", 1, d, 0, 0},              {"lnfb", 1, d, 0, 0},
    };
    size_t off = 0;
    for (size_t k = 0; k < DR_SASREC_N_TENSORS; k++) {
        size_t count = (size_t)t[k].s0 * (t[k].ndim > 1 ? t[k].s1 : 1) *
                       (t[k].ndim > 2 ? t[k].s2 : 1);
        if (out && k < cap)
            out[k] = (dr_sasrec_tensor){.name = t[k].name,
                                        .ndim = t[k].ndim,
                                        .shape = {t[k].s0, t[k].s1, t[k].s2},
                                        .offset = off,
                                        .count = count};
        off += (count + 15) & ~(size_t)15;
    }
    return off;
}

struct dr_sasrec {
    dr_sasrec_dims dm;
    float *own;          /* (n_params) owned block, NULL when borrowed */
    const float *block;  /* (n_params) */
    size_t n_params;
    dr_sr_params_f32 P;  /* slices of block (never written when borrowed) */
    double best_val;     /* validation NDCG@10 of the kept parameters, -1 = none */
    int best_epoch;
    dr_fusion fus;       /* n_mod = 0: id-only */
    float *eid;          /* (n_items+1, d) id embeddings e of a fused model; tok holds z */
    dr_impute impute;    /* the fusion's training mode */
    int loss;            /* dr_sasrec_loss trained with; -1 = unknown (an older checkpoint) */
    uint32_t negatives;  /* DR_SASREC_SAMPLED: its settings */
    float neg_alpha;
};

dr_sasrec_params dr__sasrec_default_params(void) {
    dr_sasrec_params p;
    memset(&p, 0, sizeof p);
    p.d = 50;
    p.L = 200;
    p.blocks = 2;
    p.heads = 1;
    p.dropout = 0.2f;
    p.loss = DR_SASREC_CE;
    p.negatives = 512;
    p.neg_alpha = 0.5f;
    p.lr = 1e-3f;
    p.weight_decay = 0.0f;
    p.beta1 = 0.9f;
    p.beta2 = 0.98f;
    p.batch = 128;
    p.epochs = 200;
    p.patience = 5;
    p.min_epochs = 35;
    p.init_lr_scale = 1.0f;
    p.eval_every = 1;
    p.val_users = 10000;
    p.shards = 8;
    p.seed = 42;
    p.threads = 0;
    p.modality_dropout = 0.6f; /* TikTok validation NDCG@10: 0.0756 at 0.6, 0.0744 at 0.3 */
    p.impute = DR_IMPUTE_GATE;
    p.fusion_lr = 3e-3f;
    p.fusion_l2 = 1e-3f;
    return p;
}

static dr_status check_dims(const dr_sasrec_dims *dm, dr_error *err) {
    if (!dm->n_items || !dm->d || !dm->L || !dm->heads)
        return dr__fail(err, DR_ARG, "sasrec: n_items, d, L and heads must be > 0");
    if (dm->d % dm->heads)
        return dr__fail(err, DR_ARG, "sasrec: d=%u is not divisible by heads=%u", dm->d, dm->heads);
    if (dm->d > DR_MAX_DIM || dm->L > DR_SASREC_MAX_LEN || dm->blocks > DR_SASREC_MAX_BLOCKS ||
        dm->n_items > DR_MAX_ROWS)
        return dr__fail(err, DR_LIMIT, "sasrec: d=%u L=%u blocks=%u n_items=%u out of range",
                       dm->d, dm->L, dm->blocks, dm->n_items);
    return DR_OK;
}

static dr_sasrec *model_new(const dr_sasrec_dims *dm) {
    dr_sasrec *m = dr__calloc(1, sizeof *m);
    if (!m) return NULL;
    m->dm = *dm;
    m->n_params = dr__sasrec_tensors(dm, NULL, 0);
    m->best_val = -1;
    m->loss = -1;
    return m;
}

static const char *const g_loss_names[DR_SASREC_N_LOSSES] = {"ce", "bce", "sampled"};

const char *dr__sasrec_loss_name(int loss) {
    return loss >= 0 && loss < DR_SASREC_N_LOSSES ? g_loss_names[loss] : NULL;
}

dr_status dr__sasrec_loss_parse(const char *name, dr_sasrec_loss *loss, dr_error *err) {
    for (int k = 0; name && k < DR_SASREC_N_LOSSES; k++)
        if (!strcmp(name, g_loss_names[k])) {
            *loss = (dr_sasrec_loss)k;
            return DR_OK;
        }
    return dr__fail(err, DR_ARG, "sasrec: unknown loss '%s' (ce, bce, sampled)",
                   name ? name : "(null)");
}

int dr__sasrec_get_loss(const dr_sasrec *m, uint32_t *negatives, float *neg_alpha) {
    if (negatives) *negatives = m->negatives;
    if (neg_alpha) *neg_alpha = m->neg_alpha;
    return m->loss;
}

dr_status dr__sasrec_from_params(const dr_sasrec_dims *dims, const float *block,
                                size_t n_floats, dr_sasrec **out, dr_error *err) {
    dr_status st;
    if (!out || !dims || !block) return dr__fail(err, DR_ARG, "dr__sasrec_from_params: NULL argument");
    *out = NULL;
    if ((st = check_dims(dims, err)) != DR_OK) return st;
    dr_sasrec *m = model_new(dims);
    if (!m) return dr__fail(err, DR_NOMEM, "sasrec: out of memory");
    if (n_floats != m->n_params) {
        st = dr__fail(err, DR_FORMAT, "sasrec: parameter block has %zu floats, dims need %zu",
                     n_floats, m->n_params);
        dr__free(m);
        return st;
    }
    m->block = block;
    /* the slices are only read through a borrowed block */
    dr__sr_params_layout_f32(dims, (float *)(uintptr_t)block, &m->P);
    *out = m;
    return DR_OK;
}

void dr__sasrec_free(dr_sasrec *m) {
    if (!m) return;
    dr__fusion_free(&m->fus);
    dr__free(m->eid);
    dr__free(m->own);
    dr__free(m);
}

const dr_sasrec_dims *dr__sasrec_get_dims(const dr_sasrec *m) { return &m->dm; }

const float *dr__sasrec_param_block(const dr_sasrec *m, size_t *n_floats) {
    if (n_floats) *n_floats = m->n_params;
    return m->block;
}

double dr__sasrec_best_val(const dr_sasrec *m, int *epoch) {
    if (epoch) *epoch = m->best_epoch;
    return m->best_val;
}

/* Xavier-normal matrices and embeddings (as SASRec.pytorch), zero biases, unit LN gains. */
static void init_params(const dr_sasrec_dims *dm, float *block, uint64_t seed) {
    dr_sasrec_tensor t[DR_SASREC_N_TENSORS];
    dr__sasrec_tensors(dm, t, DR_SASREC_N_TENSORS);
    dr_rng rng;
    dr__rng_seed(&rng, seed, 0x1417);
    for (int k = 0; k < DR_SASREC_N_TENSORS; k++) {
        float *x = block + t[k].offset;
        const char *nm = t[k].name;
        const size_t n = t[k].count;
        if (!strcmp(nm, "ln1w") || !strcmp(nm, "ln2w") || !strcmp(nm, "lnfw")) {
            for (size_t i = 0; i < n; i++) x[i] = 1.0f;
        } else if (t[k].ndim == 1 || nm[strlen(nm) - 1] == 'b') {
            memset(x, 0, n * sizeof *x);
        } else {
            double fo = t[k].ndim == 3 ? t[k].shape[1] : t[k].shape[0];
            double fi = t[k].ndim == 3 ? t[k].shape[2] : t[k].shape[1];
            double sd = sqrt(2.0 / (fo + fi));
            for (size_t i = 0; i < n; i++) x[i] = (float)(sd * dr__rng_normal(&rng));
        }
    }
    memset(block + t[0].offset, 0, dm->d * sizeof(float)); /* padding row */
}

/* ------------------------------------------------------------------ inference */

static size_t infer_floats(const dr_sasrec_dims *dm) {
    return dr__sr_acts_layout_f32(dm, dm->L, (size_t)dm->heads * dm->L * dm->L, 0, NULL, NULL);
}

size_t dr__sasrec_scratch_bytes(const dr_sasrec *m) {
    return infer_floats(&m->dm) * sizeof(float) + (size_t)m->dm.L * sizeof(uint32_t) +
           (size_t)m->dm.d * sizeof(float) + 64;
}

void dr__sasrec_user_latent(const dr_sasrec *m, const uint32_t *ctx, size_t n_ctx, float *h,
                           void *scratch) {
    const dr_sasrec_dims *dm = &m->dm;
    const size_t n = DR_MIN(n_ctx, (size_t)dm->L), d = dm->d;
    if (!n) {
        memcpy(h, m->P.lnfb, d * sizeof *h);
        return;
    }
    dr_sr_acts_f32 A;
    float *base = scratch;
    size_t nf = dr__sr_acts_layout_f32(dm, dm->L, (size_t)dm->heads * dm->L * dm->L, 0, base, &A);
    uint32_t *inp = (uint32_t *)(base + nf); /* (L) */
    for (size_t k = 0; k < n; k++) inp[k] = ctx[n_ctx - n + k] + 1;
    const size_t off[2] = {0, n};
    const dr_sr_batch bt = {.n_seq = 1, .off = off, .inp = inp};
    dr__sr_forward_f32(dm, &m->P, &A, &bt);
    memcpy(h, A.lnf + (n - 1) * d, d * sizeof *h);
}

void dr__sasrec_score(const dr_sasrec *m, const uint32_t *ctx, size_t n_ctx, float *scores,
                     void *scratch) {
    const dr_sasrec_dims *dm = &m->dm;
    float *h = (float *)((char *)scratch + dr__sasrec_scratch_bytes(m) - 64 -
                         (size_t)dm->d * sizeof(float));
    dr__sasrec_user_latent(m, ctx, n_ctx, h, scratch);
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)dm->n_items, (int)dm->d, 1.0f,
                m->P.tok + dm->d, (int)dm->d, h, 1, 0.0f, scores, 1);
}

/* ------------------------------------------------------------------ fusion of the item table */

const dr_fusion *dr__sasrec_get_fusion(const dr_sasrec *m, const float **item_id) {
    if (!m || m->fus.n_mod == 0) return NULL;
    if (item_id) *item_id = m->eid;
    return &m->fus;
}

dr_impute dr__sasrec_get_impute(const dr_sasrec *m) { return m ? m->impute : DR_IMPUTE_GATE; }

/* Gives a model built from a parameter block (a checkpoint) its fusion back so that
 * dr__sasrec_refuse works: copies f, e (item_id, (n_items+1, d)) and, when the block is
 * borrowed, the block itself into owned memory. DR_ARG when shapes disagree. */
static dr_status sasrec_attach_fusion(dr_sasrec *m, const dr_fusion *f, const float *item_id,
                                  dr_impute impute, dr_error *err) {
    if (!m || !f || !item_id) return dr__fail(err, DR_ARG, "sasrec: attach fusion: NULL argument");
    if (m->fus.n_mod)
        return dr__fail(err, DR_ARG, "sasrec: attach fusion: the model already has a fusion");
    dr_fusion c;
    dr_status st = dr__fusion_copy(&c, f, m->dm.d, err);
    if (st != DR_OK) return st;
    const size_t cells = ((size_t)m->dm.n_items + 1) * m->dm.d;
    float *eid = dr__malloc(cells * sizeof *eid);
    float *own = m->own ? NULL : dr__malloc(m->n_params * sizeof *own);
    if (!eid || (!m->own && !own)) {
        dr__fusion_free(&c);
        dr__free(eid);
        dr__free(own);
        return dr__fail(err, DR_NOMEM, "sasrec: attach fusion: out of memory");
    }
    memcpy(eid, item_id, cells * sizeof *eid);
    if (own) { /* re-fusion writes tok: the borrowed (read-only) block is copied */
        memcpy(own, m->block, m->n_params * sizeof *own);
        m->own = own;
        m->block = own;
        dr__sr_params_layout_f32(&m->dm, own, &m->P);
    }
    m->fus = c;
    m->eid = eid;
    m->impute = impute == DR_IMPUTE_MEAN ? DR_IMPUTE_MEAN : DR_IMPUTE_GATE;
    return DR_OK;
}

dr_status dr__sasrec_refuse(dr_sasrec *m, const dr_dataset *ds, const uint8_t *over,
                           dr_impute impute, dr_error *err) {
    if (!m || !ds) return dr__fail(err, DR_ARG, "dr__sasrec_refuse: NULL argument");
    if (m->fus.n_mod == 0 || !m->eid || !m->own)
        return dr__fail(err, DR_UNSUPPORTED, "dr__sasrec_refuse: the model fuses no modality");
    if (ds->n_items != m->dm.n_items)
        return dr__fail(err, DR_ARG, "dr__sasrec_refuse: dataset '%s' has %u items, the model %u",
                       ds->name, ds->n_items, m->dm.n_items);
    if (impute != DR_IMPUTE_GATE && impute != DR_IMPUTE_MEAN)
        return dr__fail(err, DR_ARG, "dr__sasrec_refuse: unknown impute mode %d", (int)impute);
    dr_fusion_input in;
    dr_status st = dr__fusion_input_build(&m->fus, ds, over, &in, err);
    if (st != DR_OK) return st;
    float *act = dr__malloc(dr__fusion_act_floats(&m->fus) * sizeof *act);
    if (!act) {
        dr__fusion_input_free(&in);
        return dr__fail(err, DR_NOMEM, "dr__sasrec_refuse: out of memory");
    }
    const size_t d = m->dm.d;
    dr__fusion_materialise(&m->fus, m->eid + d, &in, impute, m->P.tok + d, act);
    dr__free(act);
    dr__fusion_input_free(&in);
    return DR_OK;
}

/* x and gate of item i for the fusion from the recorded presence. */
static void fuse_inputs(const dr_fusion *f, const dr_fusion_input *in, dr_impute imp,
                        const uint8_t *pres, uint32_t i, const float **x, float *gate) {
    for (uint32_t m = 0; m < f->n_mod; m++) {
        const bool p = pres[(size_t)i * f->n_mod + m] != 0;
        x[m] = p ? in->xs[m] + (size_t)i * f->dim[m] : in->zero;
        gate[m] = (p || imp == DR_IMPUTE_MEAN) ? 1.0f : 0.0f;
    }
}

void dr__sr_fuse_forward(const dr_fusion *f, const dr_fusion_input *in, dr_impute imp,
                        float rate, dr_rng *rng, const float *tok, float *z, float *act,
                        uint8_t *pres) {
    const uint32_t d = f->d, M = f->n_mod, N = in->n_items;
    const size_t na = dr__fusion_act_floats(f);
    const float *x[DR_MAX_MODALITIES];
    float gate[DR_MAX_MODALITIES];
    memset(z, 0, (size_t)d * sizeof *z);
    for (uint32_t i = 0; i < N; i++) {
        for (uint32_t m = 0; m < M; m++) {
            bool p = in->pres[(size_t)m * N + i] != 0;
            if (rate > 0 && rng && dr__rng_uniform(rng) < (double)rate) p = false;
            pres[(size_t)i * M + m] = p;
        }
        fuse_inputs(f, in, imp, pres, i, x, gate);
        dr__fusion_forward(f, tok + (size_t)(i + 1) * d, x, gate, z + (size_t)(i + 1) * d,
                          act + (size_t)i * na);
    }
}

void dr__sr_fuse_backward(const dr_fusion *f, const dr_fusion_input *in, dr_impute imp,
                         const float *tok, const float *act, const uint8_t *pres,
                         const float *dz, const uint8_t *frozen, float *dtok, float *dw) {
    const uint32_t d = f->d, N = in->n_items;
    const size_t na = dr__fusion_act_floats(f);
    const float *x[DR_MAX_MODALITIES];
    float gate[DR_MAX_MODALITIES];
    for (uint32_t i = 0; i < N; i++) {
        float *de = dtok + (size_t)(i + 1) * d;
        fuse_inputs(f, in, imp, pres, i, x, gate);
        dr__fusion_backward(f, tok + (size_t)(i + 1) * d, x, act + (size_t)i * na,
                           dz + (size_t)(i + 1) * d, de, dw);
        if (frozen && frozen[i]) memset(de, 0, (size_t)d * sizeof *de);
    }
}

/* Training state of the fusion: inputs, the fused table, its gradient and Adam. */
typedef struct sr_fuse {
    dr_fusion_input in;
    float *z, *dz;        /* (n_items+1, d) */
    float *act;           /* (n_items, act_floats) */
    uint8_t *pres;        /* (n_items, n_mod) */
    uint8_t *cold;        /* (n_items) no training interaction: e stays 0 */
    /* id dropout (id_dropout > 0): this batch's e table with the dropped items' rows zeroed,
     * and the items whose e gets no gradient (cold or dropped) */
    float *etok;          /* (n_items+1, d) */
    uint8_t *frozen;      /* (n_items) */
    float *dw, *m, *v, *best_w; /* (n_params) */
    double b1t, b2t;
} sr_fuse;

static void sr_fuse_free(sr_fuse *F) {
    dr__fusion_input_free(&F->in);
    dr__free(F->z);
    dr__free(F->dz);
    dr__free(F->act);
    dr__free(F->pres);
    dr__free(F->cold);
    dr__free(F->dw);
    dr__free(F->m);
    dr__free(F->v);
    dr__free(F->best_w);
    dr__free(F->etok);
    dr__free(F->frozen);
}

/* ------------------------------------------------------------------ training */

typedef struct sr_shard {
    size_t *off;          /* (cap_seq+1) */
    uint32_t *inp;        /* (cap_T) */
    uint32_t *tgt;        /* (cap_T) */
    uint32_t *neg;        /* (cap_T) */
    uint64_t *seed;       /* (cap_seq) */
    uint8_t *mark;        /* (n_items+1) zero between users */
    dr_sr_acts_f32 A;
    dr_sr_params_f32 G;   /* slices of this shard's gradient */
    float *gbase;         /* (n_params) */
    size_t u0, u1;        /* users [u0, u1) of the current batch order */
    double loss;
} sr_shard;

typedef struct adam_chunk {
    size_t lo, hi;        /* parameter range */
    int decay;            /* weight decay applies */
    int tok;              /* the item table: a warm start's new rows learn at the full rate */
} adam_chunk;

typedef struct sr_train {
    const dr_dataset *ds;
    const dr_split *sp;
    const dr_sasrec_params *p;
    dr_sasrec *m;
    uint32_t *order;      /* (n_train_users) users, shuffled per epoch */
    sr_shard *sh;         /* (shards) */
    uint32_t n_shards;
    uint32_t epoch;
    float scale;          /* 1 / positions in the batch */
    float *mom, *vel;     /* (n_params) Adam */
    float *logits;        /* (threads, DR_SR_CHUNK, n_items) CE scratch per worker */
    adam_chunk *chunks;
    size_t n_chunks;
    float lr_t, b1c, b2c; /* step's learning rate and bias corrections */
    float warm_scale;     /* warm start: factor on the rate of what the init gave (1: none) */
    const uint8_t *tok_new; /* (n_items + 1) warm start: 1 for the rows of new items; NULL: none */
    size_t tok_off;       /* the item table's offset in the parameter block */
    dr_sr_params_f32 PP;  /* what the shards run: m->P, with tok = the fused table when fusing */
    uint32_t *sneg;       /* (negatives) sampled loss: this batch's shared negatives */
    double *logq;         /* (n_items+1) sampled loss: log Q per item row */
    double *cdf;          /* (n_items) sampled loss: cumulative Q, for the draws */
} sr_train;

static uint64_t stream_id(uint64_t tag, uint64_t epoch, uint64_t user) {
    return tag * 0x9e3779b97f4a7c15ULL ^ epoch * 0xc2b2ae3d27d4eb4fULL ^ user;
}

static size_t user_len(const dr_split *sp, uint32_t u, uint32_t L) {
    size_t nt = sp->n_train[u];
    return nt < 2 ? 0 : DR_MIN(nt - 1, (size_t)L);
}

static void shard_run(void *vc, size_t s, int worker) {
    sr_train *c = vc;
    sr_shard *sh = &c->sh[s];
    const dr_dataset *ds = c->ds;
    const dr_sasrec_dims *dm = &c->m->dm;
    const uint32_t N = dm->n_items;
    memset(sh->gbase, 0, c->m->n_params * sizeof(float));
    sh->loss = 0;
    size_t T = 0, ns = 0;
    sh->off[0] = 0;
    for (size_t k = sh->u0; k < sh->u1; k++, ns++) {
        const uint32_t u = c->order[k];
        const uint32_t *h = ds->hist_item + ds->user_off[u];
        const size_t nt = c->sp->n_train[u], n = user_len(c->sp, u, dm->L);
        dr_rng rng;
        dr__rng_seed(&rng, c->p->seed, stream_id(1, c->epoch, u));
        sh->seed[ns] = dr__rng_u64(&rng);
        size_t distinct = 0;
        for (size_t j = 0; j < nt; j++) {
            distinct += !sh->mark[h[j] + 1];
            sh->mark[h[j] + 1] = 1;
        }
        for (size_t j = 0; j < n; j++) {
            sh->inp[T + j] = h[nt - 1 - n + j] + 1;
            sh->tgt[T + j] = h[nt - n + j] + 1;
            uint32_t g;
            do g = 1 + (uint32_t)dr__rng_below(&rng, N);
            while (sh->mark[g] && distinct < N);
            sh->neg[T + j] = g;
        }
        for (size_t j = 0; j < nt; j++) sh->mark[h[j] + 1] = 0;
        T += n;
        sh->off[ns + 1] = T;
    }
    if (!ns) return;
    const int sampled = c->p->loss == DR_SASREC_SAMPLED;
    const dr_sr_batch bt = {.n_seq = ns, .off = sh->off, .inp = sh->inp, .tgt = sh->tgt,
                            .neg = sh->neg, .seed = sh->seed, .sneg = c->sneg,
                            .n_sneg = sampled ? c->p->negatives : 0, .logq = c->logq};
    const size_t per_worker = sampled ? dr__sr_sampled_scratch_f32(c->p->negatives, dm->d)
                                      : (size_t)DR_SR_CHUNK * N;
    sh->A.logits = c->logits ? c->logits + (size_t)worker * per_worker : NULL;
    dr__sr_masks_f32(&sh->A, dm, &bt, c->p->dropout);
    dr__sr_forward_f32(dm, &c->PP, &sh->A, &bt);
    sh->loss = dr__sr_loss_backward_f32(dm, &c->PP, &sh->G, &sh->A, &bt, (int)c->p->loss,
                                       c->scale);
}

static void adam_run(void *vc, size_t k, int worker) {
    sr_train *c = vc;
    const adam_chunk *ch = &c->chunks[k];
    float *w = c->m->own;
    const float b1 = c->p->beta1, b2 = c->p->beta2;
    const size_t d = c->m->dm.d;
    const float wd = ch->decay ? c->p->lr * c->p->weight_decay : 0.0f;
    /* the warm start's factor: warm_scale for what the init gave (1 in a cold fit), 1 for the
     * item table's new rows (tok_new: set only in a warm fit with a factor) */
    const uint8_t *fresh = ch->tok ? c->tok_new : NULL;
    for (size_t i = ch->lo; i < ch->hi; i++) {
        float g = 0;
        for (uint32_t s = 0; s < c->n_shards; s++) g += c->sh[s].gbase[i];
        float mo = c->mom[i] = b1 * c->mom[i] + (1 - b1) * g;
        float ve = c->vel[i] = b2 * c->vel[i] + (1 - b2) * g * g;
        const float f = fresh && fresh[(i - c->tok_off) / d] ? 1.0f : c->warm_scale;
        w[i] -= f * (c->lr_t * mo / (sqrtf(ve * c->b2c) + 1e-8f) + wd * w[i]);
    }
}

/* After the shards of a fused batch: their tok gradients are dL/dz; sums them in shard order,
 * back-propagates through the fusion into shard 0's tok gradient (= dL/de; the other shards'
 * are cleared, so the Adam sum over shards sees dL/de once) and takes an Adam step with L2 on
 * the fusion block. */
static void sr_fuse_step(sr_train *c, sr_fuse *F) {
    dr_sasrec *m = c->m;
    const dr_sasrec_params *p = c->p;
    const size_t d = m->dm.d, cells = ((size_t)m->dm.n_items + 1) * d, nf = m->fus.n_params;
    memset(F->dz, 0, cells * sizeof *F->dz);
    for (uint32_t s = 0; s < c->n_shards; s++) {
        const float *g = c->sh[s].G.tok;
        for (size_t k = 0; k < cells; k++) F->dz[k] += g[k];
    }
    memset(F->dw, 0, nf * sizeof *F->dw);
    float *dtok = c->sh[0].G.tok;
    memcpy(dtok, F->dz, d * sizeof *dtok); /* padding row: as without fusion */
    const int idrop = p->id_dropout > 0;
    dr__sr_fuse_backward(&m->fus, &F->in, p->impute, idrop ? F->etok : m->P.tok, F->act, F->pres,
                        F->dz, idrop ? F->frozen : F->cold, dtok, F->dw);
    for (uint32_t s = 1; s < c->n_shards; s++) memset(c->sh[s].G.tok, 0, cells * sizeof(float));
    F->b1t *= p->beta1;
    F->b2t *= p->beta2;
    const float c1 = (float)(1.0 / (1.0 - F->b1t)), c2 = (float)(1.0 / (1.0 - F->b2t));
    float *w = m->fus.w;
    for (size_t q = 0; q < nf; q++) {
        const float g = F->dw[q] + p->fusion_l2 * w[q];
        F->m[q] = p->beta1 * F->m[q] + (1 - p->beta1) * g;
        F->v[q] = p->beta2 * F->v[q] + (1 - p->beta2) * g * g;
        w[q] -= p->fusion_lr * (F->m[q] * c1) / (sqrtf(F->v[q] * c2) + 1e-8f);
    }
}

/* Sets up the fusion of a fused fit: block, inputs, buffers; zeroes e of cold items. */
static dr_status sr_fuse_init(dr_sasrec *m, sr_fuse *F, const dr_dataset *ds, const dr_split *sp,
                              const dr_sasrec_params *p, dr_error *err) {
    const dr_sasrec_dims *dm = &m->dm;
    const float sd = (float)sqrt(2.0 / ((double)dm->n_items + 1 + dm->d)); /* tok's init */
    dr_status st = dr__fusion_init(&m->fus, ds, p->use_modalities, dm->d, sd, p->seed, err);
    if (st == DR_OK && p->init) dr__fusion_warm_copy(&m->fus, &p->init->fus); /* checked */
    if (st == DR_OK) st = dr__fusion_input_build(&m->fus, ds, NULL, &F->in, err);
    if (st != DR_OK) return st;
    const size_t cells = ((size_t)dm->n_items + 1) * dm->d, nf = m->fus.n_params;
    F->z = dr__malloc(cells * sizeof(float));
    F->dz = dr__malloc(cells * sizeof(float));
    F->act = dr__malloc((size_t)dm->n_items * dr__fusion_act_floats(&m->fus) * sizeof(float) + 1);
    F->pres = dr__malloc((size_t)dm->n_items * m->fus.n_mod + 1);
    F->cold = dr__malloc((size_t)dm->n_items + 1);
    F->dw = dr__malloc(nf * sizeof(float));
    F->m = dr__calloc(nf, sizeof(float));
    F->v = dr__calloc(nf, sizeof(float));
    F->best_w = dr__malloc(nf * sizeof(float));
    if (p->id_dropout > 0) {
        F->etok = dr__malloc(cells * sizeof(float));
        F->frozen = dr__malloc((size_t)dm->n_items + 1);
    }
    if (!F->z || !F->dz || !F->act || !F->pres || !F->cold || !F->dw || !F->m || !F->v ||
        !F->best_w || (p->id_dropout > 0 && (!F->etok || !F->frozen)))
        return dr__fail(err, DR_NOMEM, "sasrec: out of memory for the fusion");
    F->b1t = F->b2t = 1.0;
    memset(F->cold, 1, dm->n_items);
    for (uint32_t u = 0; u < ds->n_users; u++)
        for (uint32_t k = 0; k < sp->n_train[u]; k++) F->cold[ds->hist_item[ds->user_off[u] + k]] = 0;
    for (uint32_t i = 0; i < dm->n_items; i++)
        if (F->cold[i]) memset(m->P.tok + (size_t)(i + 1) * dm->d, 0, dm->d * sizeof(float));
    return DR_OK;
}

/* Warm start: every tensor but tok from init (same d, L, blocks, heads: same shapes); tok row
 * of each item init knows (items: init's row per item, NULL = the same items) from init's e
 * (a fused init) or its tok; the other rows keep what they have. */
static void sr_warm_copy(dr_sasrec *m, const dr_sasrec *init, const uint32_t *items) {
    dr_sasrec_tensor tn[DR_SASREC_N_TENSORS], ti[DR_SASREC_N_TENSORS];
    dr__sasrec_tensors(&m->dm, tn, DR_SASREC_N_TENSORS);
    dr__sasrec_tensors(&init->dm, ti, DR_SASREC_N_TENSORS);
    const size_t d = m->dm.d;
    for (int k = 0; k < DR_SASREC_N_TENSORS; k++) {
        if (strcmp(tn[k].name, "tok") != 0) {
            memcpy(m->own + tn[k].offset, init->block + ti[k].offset, tn[k].count * sizeof(float));
            continue;
        }
        const float *e = init->fus.n_mod ? init->eid : init->block + ti[k].offset;
        dr__warm_copy_rows(m->own + tn[k].offset + d, e + d, items, m->dm.n_items, d); /* row 0:
                                                                                         padding */
    }
}

/* Sampled loss: Q(i) ~ (number of training interactions of i + 1)^alpha (alpha 0 = uniform;
 * the +1 keeps items never trained on drawable); fills logq (n_items+1, row 0 unused) and the
 * cumulative cdf (n_items). */
static void sr_build_q(const dr_dataset *ds, const dr_split *sp, double alpha, double *logq,
                       double *cdf) {
    const uint32_t N = ds->n_items;
    for (uint32_t i = 0; i < N; i++) cdf[i] = 1;
    for (uint32_t u = 0; u < ds->n_users; u++)
        for (uint32_t k = 0; k < sp->n_train[u]; k++) cdf[ds->hist_item[ds->user_off[u] + k]] += 1;
    double tot = 0;
    for (uint32_t i = 0; i < N; i++) tot += cdf[i] = pow(cdf[i], alpha);
    logq[0] = 0;
    double acc = 0;
    for (uint32_t i = 0; i < N; i++) {
        logq[i + 1] = log(cdf[i] / tot);
        acc += cdf[i];
        cdf[i] = acc / tot;
    }
    cdf[N - 1] = 1;
}

/* K item rows drawn with replacement from cdf (n) by inverse transform. */
static void sr_draw_negatives(const double *cdf, uint32_t n, uint32_t *out, size_t K, dr_rng *r) {
    for (size_t k = 0; k < K; k++) {
        const double x = dr__rng_uniform(r);
        uint32_t lo = 0, hi = n - 1;
        while (lo < hi) {
            const uint32_t mid = lo + (hi - lo) / 2;
            if (cdf[mid] > x) hi = mid;
            else lo = mid + 1;
        }
        out[k] = lo + 1;
    }
}

/* Longest total of the k largest values of v (n), and of their squares. */
static int cmp_desc(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static dr_status sasrec_train(const dr_dataset *ds, const dr_split *sp,
                              const dr_sasrec_params *pp, const dr_validator *vd,
                              dr_sasrec **out, dr_error *err) {
    dr_sasrec_params p = pp ? *pp : dr__sasrec_default_params();
    dr_status st = DR_OK;
    dr_sasrec *m = NULL;
    sr_train c;
    size_t *lens = NULL;
    float *grads = NULL, *adam = NULL, *best = NULL, *acts = NULL, *logits = NULL;
    uint8_t *tok_new = NULL;
    char *bufs = NULL;
    sr_fuse F;
    memset(&F, 0, sizeof F);
    memset(&c, 0, sizeof c);
    if (!out) return dr__fail(err, DR_ARG, "dr__sasrec_fit: out is NULL");
    *out = NULL;
    if (!ds || !sp || sp->n_users != ds->n_users)
        return dr__fail(err, DR_ARG, "dr__sasrec_fit: missing dataset or mismatched split");
    const dr_sasrec_dims dm = {ds->n_items, p.d, p.L, p.blocks, p.heads};
    if ((st = check_dims(&dm, err)) != DR_OK) return st;
    if (!p.batch || !p.shards || p.shards > 1024 || !(p.dropout >= 0 && p.dropout < 1) ||
        !(p.lr > 0) || !dr__sasrec_loss_name((int)p.loss))
        return dr__fail(err, DR_ARG, "sasrec: invalid batch/shards/dropout/lr/loss");
    const bool sampled = p.loss == DR_SASREC_SAMPLED;
    if (sampled && (!p.negatives || p.negatives > DR_SASREC_MAX_NEGATIVES))
        return dr__fail(err, DR_ARG, "sasrec: negatives=%u out of range (1..%u)", p.negatives,
                       DR_SASREC_MAX_NEGATIVES);
    if (sampled && !(p.neg_alpha >= 0 && p.neg_alpha <= 1))
        return dr__fail(err, DR_ARG, "sasrec: neg_alpha=%g out of range (0..1)",
                       (double)p.neg_alpha);
    const bool fuse = p.use_modalities != 0;
    if (fuse && (!(p.modality_dropout >= 0 && p.modality_dropout <= 1) || !(p.fusion_lr > 0) ||
                 !(p.fusion_l2 >= 0) || (p.impute != DR_IMPUTE_GATE && p.impute != DR_IMPUTE_MEAN) ||
                 !(p.id_dropout >= 0 && p.id_dropout < 1)))
        return dr__fail(err, DR_ARG, "sasrec: invalid modality_dropout/id_dropout/fusion_lr/"
                       "fusion_l2/impute");
    if (!fuse) p.id_dropout = 0; /* ids only: nothing else could carry a dropped item */
    if (p.threads <= 0) p.threads = dr__default_threads();
    if (p.threads > DR_MAX_THREADS) p.threads = DR_MAX_THREADS;
    openblas_set_num_threads(1);
    if (!vd || !vd->fn) p.eval_every = 0; /* nothing to validate with */
    if (p.eval_every) { /* no validation targets: no early stopping, keep the last epoch
                           instead of the first evaluated one */
        if (!dr_split_n_valid_users(sp)) {
            dr__log(DR_LOG_INFO, "sasrec: the split has no validation targets: training all %u "
                   "epochs without early stopping", p.epochs);
            p.eval_every = 0;
        }
    }

    m = model_new(&dm);
    if (!m) {
        st = dr__fail(err, DR_NOMEM, "sasrec: out of memory");
        goto fail;
    }
    const size_t np = m->n_params;
    m->own = dr__calloc(np, sizeof(float)); /* zeroed: the alignment gaps between tensors too */
    if (!m->own) {
        st = dr__fail(err, DR_NOMEM, "sasrec: out of memory for %zu parameters", np);
        goto fail;
    }
    m->block = m->own;
    if (p.init) {
        const dr_sasrec_dims *im = &p.init->dm;
        if ((!p.init_map && im->n_items != dm.n_items) || im->d != dm.d || im->L != dm.L ||
            im->blocks != dm.blocks || im->heads != dm.heads) {
            st = dr__fail(err, DR_ARG, "sasrec: warm start from a model of another shape "
                         "(%u items, d %u, L %u, %u blocks, %u heads)", im->n_items, im->d,
                         im->L, im->blocks, im->heads);
            goto fail;
        }
        if ((st = dr__warm_map_check(p.init_map, 0, dm.n_items, im->n_items, "sasrec", err)) !=
                DR_OK ||
            (st = dr__fusion_warm_check(&p.init->fus, ds, p.use_modalities, "sasrec", err)) !=
                DR_OK)
            goto fail;
    }
    init_params(&dm, m->own, p.seed); /* a warm start keeps the rows of new items */
    dr__sr_params_layout_f32(&dm, m->own, &m->P);
    if (fuse && (st = sr_fuse_init(m, &F, ds, sp, &p, err)) != DR_OK) goto fail;
    if (p.init) sr_warm_copy(m, p.init, p.init_map ? p.init_map->item : NULL);
    m->impute = p.impute;
    m->loss = (int)p.loss;
    m->negatives = sampled ? p.negatives : 0;
    m->neg_alpha = sampled ? p.neg_alpha : 0;
    c.PP = m->P;

    /* training users and per-shard capacities */
    size_t n_tr = 0;
    lens = dr__malloc(((size_t)ds->n_users + 1) * 2 * sizeof *lens);
    c.order = dr__malloc(((size_t)ds->n_users + 1) * sizeof *c.order);
    if (!lens || !c.order) {
        st = dr__fail(err, DR_NOMEM, "sasrec: out of memory");
        goto fail;
    }
    for (uint32_t u = 0; u < ds->n_users; u++) {
        size_t n = user_len(sp, u, p.L);
        if (n) {
            c.order[n_tr] = u;
            lens[n_tr++] = n;
        }
    }
    if (!n_tr) {
        st = dr__fail(err, DR_ARG, "sasrec: no user has 2 training items");
        goto fail;
    }
    const size_t B = DR_MIN((size_t)p.batch, n_tr), S = p.shards;
    const size_t cap_seq = (B + S - 1) / S;
    qsort(lens, n_tr, sizeof *lens, cmp_desc);
    size_t cap_T = 0, cap_att = 0;
    for (size_t k = 0; k < DR_MIN(cap_seq, n_tr); k++) {
        cap_T += lens[k];
        cap_att += lens[k] * lens[k];
    }
    cap_att *= dm.heads;
    const size_t act_f = dr__sr_acts_layout_f32(&dm, cap_T, cap_att, 1, NULL, NULL);
    const size_t ibytes = (cap_seq + 1) * sizeof(size_t) + 3 * cap_T * sizeof(uint32_t) +
                          cap_seq * sizeof(uint64_t) + (size_t)dm.n_items + 1;
    const size_t ibytes_al = (ibytes + 63) & ~(size_t)63;
    c.sh = dr__calloc(S, sizeof *c.sh);
    grads = dr__malloc(S * np * sizeof(float));
    adam = dr__calloc(2 * np, sizeof(float));
    best = dr__malloc(np * sizeof(float));
    acts = dr__malloc(S * act_f * sizeof(float));
    bufs = dr__calloc(S, ibytes_al);
    if (p.loss == DR_SASREC_CE)
        logits = dr__malloc((size_t)DR_MIN((size_t)p.threads, S) * DR_SR_CHUNK * dm.n_items *
                           sizeof(float));
    if (sampled) {
        logits = dr__malloc((size_t)DR_MIN((size_t)p.threads, S) *
                           dr__sr_sampled_scratch_f32(p.negatives, dm.d) * sizeof(float));
        c.sneg = dr__malloc((size_t)p.negatives * sizeof *c.sneg);
        c.logq = dr__malloc(((size_t)dm.n_items + 1) * sizeof *c.logq);
        c.cdf = dr__malloc((size_t)dm.n_items * sizeof *c.cdf);
    }
    c.n_chunks = 0;
    dr_sasrec_tensor tt[DR_SASREC_N_TENSORS];
    dr__sasrec_tensors(&dm, tt, DR_SASREC_N_TENSORS);
    size_t max_chunks = 0;
    for (int k = 0; k < DR_SASREC_N_TENSORS; k++) max_chunks += tt[k].count / 8192 + 1;
    c.chunks = dr__malloc(max_chunks * sizeof *c.chunks);
    if (!c.sh || !grads || !adam || !best || !acts || !bufs || !c.chunks ||
        (p.loss != DR_SASREC_BCE && !logits) || (sampled && (!c.sneg || !c.logq || !c.cdf))) {
        st = dr__fail(err, DR_NOMEM, "sasrec: out of memory for training buffers (%zu MiB of "
                     "activations)", S * act_f * sizeof(float) >> 20);
        goto fail;
    }
    for (int k = 0; k < DR_SASREC_N_TENSORS; k++) {
        const char *nm = tt[k].name;
        int decay = tt[k].ndim >= 2 && nm[strlen(nm) - 1] != 'b' && strncmp(nm, "ln", 2) != 0;
        for (size_t lo = 0; lo < tt[k].count; lo += 8192)
            c.chunks[c.n_chunks++] = (adam_chunk){tt[k].offset + lo,
                                                  tt[k].offset + DR_MIN(lo + 8192, tt[k].count),
                                                  decay, !strcmp(nm, "tok")};
        if (!strcmp(nm, "tok")) c.tok_off = tt[k].offset;
    }
    c.warm_scale = 1.0f;
    if (p.init && p.init_lr_scale != 1.0f) { /* new items' rows: those the init map does not give */
        if (!(tok_new = dr__calloc((size_t)dm.n_items + 1, 1))) {
            st = dr__fail(err, DR_NOMEM, "sasrec: out of memory");
            goto fail;
        }
        for (uint32_t i = 0; p.init_map && p.init_map->item && i < dm.n_items; i++)
            tok_new[i + 1] = p.init_map->item[i] == DR_WARM_NEW;
        c.tok_new = tok_new;
        c.warm_scale = p.init_lr_scale;
    }
    for (size_t s = 0; s < S; s++) {
        sr_shard *sh = &c.sh[s];
        char *b = bufs + s * ibytes_al;
        sh->off = (size_t *)b;
        b += (cap_seq + 1) * sizeof(size_t);
        sh->seed = (uint64_t *)b;
        b += cap_seq * sizeof(uint64_t);
        sh->inp = (uint32_t *)b;
        sh->tgt = sh->inp + cap_T;
        sh->neg = sh->tgt + cap_T;
        sh->mark = (uint8_t *)(sh->neg + cap_T);
        sh->gbase = grads + s * np;
        dr__sr_params_layout_f32(&dm, sh->gbase, &sh->G);
        dr__sr_acts_layout_f32(&dm, cap_T, cap_att, 1, acts + s * act_f, &sh->A);
    }
    c.ds = ds;
    c.sp = sp;
    c.p = &p;
    c.m = m;
    c.n_shards = (uint32_t)S;
    c.mom = adam;
    c.vel = adam + np;
    c.logits = logits;
    if (sampled) sr_build_q(ds, sp, p.neg_alpha, c.logq, c.cdf);
    dr__log(DR_LOG_INFO, "sasrec: %zu training users, %zu parameters, %zu MiB activations",
           n_tr, np, S * act_f * sizeof(float) >> 20);

    /* epochs */
    uint64_t step = 0;
    uint32_t bad = 0;
    int have_best = 0;
    for (uint32_t ep = 1; ep <= p.epochs; ep++) {
        const double t0 = dr__now_seconds();
        c.epoch = ep;
        dr_rng rng;
        dr__rng_seed(&rng, p.seed, stream_id(2, ep, 0));
        for (size_t k = n_tr; k > 1; k--) {
            size_t j = (size_t)dr__rng_below(&rng, k);
            uint32_t t = c.order[k - 1];
            c.order[k - 1] = c.order[j];
            c.order[j] = t;
        }
        double loss_sum = 0;
        size_t pos_sum = 0;
        for (size_t b0 = 0; b0 < n_tr; b0 += B) {
            const size_t nb = DR_MIN(B, n_tr - b0);
            size_t Tb = 0;
            for (size_t k = b0; k < b0 + nb; k++) Tb += user_len(sp, c.order[k], p.L);
            for (size_t s = 0; s < S; s++) {
                c.sh[s].u0 = b0 + s * nb / S;
                c.sh[s].u1 = b0 + (s + 1) * nb / S;
            }
            c.scale = 1.0f / (float)Tb;
            if (sampled) { /* the batch's shared negatives, from their own stream */
                dr_rng nrng;
                dr__rng_seed(&nrng, p.seed, stream_id(5, ep, b0));
                sr_draw_negatives(c.cdf, dm.n_items, c.sneg, p.negatives, &nrng);
            }
            if (fuse) { /* the fused table for this batch, modality dropout from its own stream */
                dr_rng frng;
                dr__rng_seed(&frng, p.seed, stream_id(3, ep, b0));
                const float *e_tab = m->P.tok;
                if (p.id_dropout > 0) { /* id dropout: some items carried by features alone */
                    dr_rng irng;
                    dr__rng_seed(&irng, p.seed, stream_id(4, ep, b0));
                    const size_t dd = m->dm.d;
                    memcpy(F.etok, m->P.tok, ((size_t)m->dm.n_items + 1) * dd * sizeof(float));
                    for (uint32_t i = 0; i < m->dm.n_items; i++) {
                        F.frozen[i] = F.cold[i] || dr__rng_uniform(&irng) < (double)p.id_dropout;
                        if (F.frozen[i]) memset(F.etok + (i + 1) * dd, 0, dd * sizeof(float));
                    }
                    e_tab = F.etok;
                }
                dr__sr_fuse_forward(&m->fus, &F.in, p.impute, p.modality_dropout, &frng, e_tab,
                                   F.z, F.act, F.pres);
                c.PP.tok = F.z;
            }
            dr__parallel_for(S, p.threads, shard_run, &c);
            if (fuse) sr_fuse_step(&c, &F);
            for (size_t s = 0; s < S; s++) loss_sum += c.sh[s].loss;
            pos_sum += Tb;
            step++;
            c.b1c = 1.0f / (1.0f - powf(p.beta1, (float)step));
            c.b2c = 1.0f / (1.0f - powf(p.beta2, (float)step));
            c.lr_t = p.lr * c.b1c;
            dr__parallel_for(c.n_chunks, p.threads, adam_run, &c);
        }
        double val = -1;
        int stop = 0;
        if (p.eval_every && ep % p.eval_every == 0) {
            float *tok_e = m->P.tok;
            if (fuse) { /* validate the fused table, no dropout */
                dr__sr_fuse_forward(&m->fus, &F.in, p.impute, 0, NULL, tok_e, F.z, F.act, F.pres);
                m->P.tok = F.z;
            }
            const dr_valid_opts vo = {.threads = p.threads,
                                      .subset = {p.val_users, p.seed, 1, 1}};
            st = vd->fn(vd, m, &vo, &val, NULL, err);
            m->P.tok = tok_e;
            if (st != DR_OK) goto fail;
            if (val > m->best_val) {
                m->best_val = val;
                m->best_epoch = (int)ep;
                memcpy(best, m->own, np * sizeof(float));
                if (fuse) memcpy(F.best_w, m->fus.w, m->fus.n_params * sizeof(float));
                have_best = 1;
                bad = 0;
            } else if (++bad >= p.patience && ep >= p.min_epochs) {
                stop = 1;
            }
        }
        const double secs = dr__now_seconds() - t0, loss = loss_sum / (double)pos_sum;
        dr__log(DR_LOG_INFO, "sasrec: epoch %u loss %.5f val NDCG@10 %.5f %.2f s", ep, loss, val,
               secs);
        if (p.on_epoch) p.on_epoch(p.on_epoch_ud, (int)ep, loss, val, secs);
        if (stop) break;
    }
    if (have_best) {
        memcpy(m->own, best, np * sizeof(float));
        if (fuse) memcpy(m->fus.w, F.best_w, m->fus.n_params * sizeof(float));
    }
    if (fuse) { /* serving and the checkpoint see z in tok; e is kept beside */
        const size_t cells = ((size_t)dm.n_items + 1) * dm.d;
        if (!(m->eid = dr__malloc(cells * sizeof(float)))) {
            st = dr__fail(err, DR_NOMEM, "sasrec: out of memory");
            goto fail;
        }
        memcpy(m->eid, m->P.tok, cells * sizeof(float));
        dr__sr_fuse_forward(&m->fus, &F.in, p.impute, 0, NULL, m->eid, F.z, F.act, F.pres);
        memcpy(m->P.tok, F.z, cells * sizeof(float));
    }
    *out = m;
    m = NULL;
fail:
    dr__sasrec_free(m);
    dr__free(lens);
    dr__free(c.order);
    dr__free(c.sh);
    dr__free(c.chunks);
    dr__free(grads);
    dr__free(adam);
    dr__free(best);
    dr__free(acts);
    dr__free(bufs);
    dr__free(logits);
    dr__free(tok_new);
    dr__free(c.sneg);
    dr__free(c.logq);
    dr__free(c.cdf);
    sr_fuse_free(&F);
    return st;
}

dr_status dr__sasrec_fit(const dr_dataset *ds, const dr_split *sp, const dr_sasrec_params *p,
                        dr_sasrec **out, dr_error *err) {
    const dr_validator vd = dr__validator_make(&dr_sasrec_vt, ds, sp);
    return sasrec_train(ds, sp, p, &vd, out, err);
}

/* ------------------------------------------------------------------ checkpoints
 * Metadata d, L, blocks, heads, sasrec_items and one section sasrec.NAME per tensor; the
 * container aligns every section to 64 bytes like the in-memory block, so on load the sections
 * are checked to be contiguous and the mapping is the block, used in place (no copy). */

static const char *const g_dim_keys[5] = {"d", "L", "blocks", "heads", "sasrec_items"};

static dr_status sasrec_save(const dr_model *m, dr_ckpt_writer *w, dr_error *err) {
    const dr_sasrec *s = m->state;
    const dr_sasrec_dims *dm = dr__sasrec_get_dims(s);
    dr_sasrec_tensor t[DR_SASREC_N_TENSORS];
    size_t n_floats, total = dr__sasrec_tensors(dm, t, DR_SASREC_N_TENSORS);
    const float *block = dr__sasrec_param_block(s, &n_floats);
    if (total != n_floats) return dr__fail(err, DR_INTERNAL, "sasrec: block size mismatch");
    char v[5][32];
    const uint32_t vals[5] = {dm->d, dm->L, dm->blocks, dm->heads, dm->n_items};
    dr_status st;
    for (int k = 0; k < 5; k++) {
        snprintf(v[k], sizeof v[k], "%u", vals[k]);
        if ((st = dr__ckpt_add_meta(w, g_dim_keys[k], v[k], err)) != DR_OK) return st;
    }
    uint32_t negs;
    float alpha;
    const int loss = dr__sasrec_get_loss(s, &negs, &alpha);
    if (loss >= 0 && (st = dr__ckpt_add_meta(w, "sasrec_loss", dr__sasrec_loss_name(loss), err)))
        return st;
    if (loss == DR_SASREC_SAMPLED) {
        snprintf(v[0], sizeof v[0], "%u", negs);
        snprintf(v[1], sizeof v[1], "%.9g", (double)alpha);
        if ((st = dr__ckpt_add_meta(w, "sasrec_negatives", v[0], err)) ||
            (st = dr__ckpt_add_meta(w, "sasrec_neg_alpha", v[1], err)))
            return st;
    }
    for (int k = 0; k < DR_SASREC_N_TENSORS; k++) {
        uint64_t shape[3] = {t[k].shape[0], t[k].shape[1], t[k].shape[2]};
        char name[48];
        snprintf(name, sizeof name, "sasrec.%s", t[k].name);
        if ((st = dr__ckpt_add(w, name, DR_DT_F32, (uint32_t)t[k].ndim, shape, block + t[k].offset,
                              err)) != DR_OK)
            return st;
    }
    const float *eid = NULL;
    const dr_fusion *f = dr__sasrec_get_fusion(s, &eid);
    return f ? dr__fusion_save(w, "sasrec", f, eid, (uint64_t)dm->n_items + 1,
                              dr__sasrec_get_impute(s), err)
             : DR_OK;
}

static dr_status sasrec_load(const dr_ckpt *c, dr_model **out, dr_error *err) {
    dr_sasrec_dims dm;
    dr_status st;
    uint32_t *const vals[5] = {&dm.d, &dm.L, &dm.blocks, &dm.heads, &dm.n_items};
    for (int k = 0; k < 5; k++) {
        const char *v = dr__ckpt_meta(c, g_dim_keys[k]);
        if (!v || !dr__parse_u32(v, strlen(v), vals[k]))
            return dr__fail(err, DR_FORMAT, "%s: metadata '%s' missing or not a number",
                           dr__ckpt_path(c), g_dim_keys[k]);
    }
    if (!dm.d || !dm.L || !dm.blocks || !dm.heads || dm.d % dm.heads || dm.d > DR_MAX_DIM ||
        dm.L > DR_SASREC_LOAD_MAX_LEN || dm.blocks > DR_SASREC_MAX_BLOCKS)
        return dr__fail(err, DR_FORMAT, "%s: unusable SASRec dimensions", dr__ckpt_path(c));
    dr_sasrec_tensor t[DR_SASREC_N_TENSORS];
    size_t total = dr__sasrec_tensors(&dm, t, DR_SASREC_N_TENSORS);
    const float *base = NULL;
    for (int k = 0; k < DR_SASREC_N_TENSORS; k++) {
        uint64_t shape[3] = {t[k].shape[0], t[k].shape[1], t[k].shape[2]};
        char name[48];
        const void *p;
        snprintf(name, sizeof name, "sasrec.%s", t[k].name);
        if ((st = dr__ckpt_find(c, name, DR_DT_F32, (uint32_t)t[k].ndim, shape, &p, err)) != DR_OK)
            return st == DR_NOTFOUND ? dr__fail(err, DR_FORMAT, "%s: section '%s' is missing",
                                               dr__ckpt_path(c), name)
                                     : st;
        if (k == 0) base = (const float *)p - t[k].offset;
        if ((const float *)p != base + t[k].offset)
            return dr__fail(err, DR_FORMAT, "%s: SASRec sections are not laid out as one block",
                           dr__ckpt_path(c));
    }
    /* the loss it was trained with: absent from checkpoints written before it was saved */
    int loss = -1;
    uint32_t negs = 0;
    float alpha = 0;
    const char *lv = dr__ckpt_meta(c, "sasrec_loss");
    if (lv) {
        dr_sasrec_loss l;
        if (dr__sasrec_loss_parse(lv, &l, NULL) != DR_OK)
            return dr__fail(err, DR_FORMAT, "%s: metadata 'sasrec_loss' is '%s' (ce, bce, sampled)",
                           dr__ckpt_path(c), lv);
        loss = (int)l;
    }
    if (loss == DR_SASREC_SAMPLED) {
        const char *nv = dr__ckpt_meta(c, "sasrec_negatives"), *av = dr__ckpt_meta(c, "sasrec_neg_alpha");
        double a = -1;
        if (!nv || !dr__parse_u32(nv, strlen(nv), &negs) || !negs ||
            negs > DR_SASREC_MAX_NEGATIVES || !av || !dr__parse_f64(av, strlen(av), &a) ||
            !(a >= 0 && a <= 1))
            return dr__fail(err, DR_FORMAT, "%s: metadata 'sasrec_negatives' (1..%u) or "
                           "'sasrec_neg_alpha' (0..1) missing or out of range", dr__ckpt_path(c),
                           DR_SASREC_MAX_NEGATIVES);
        alpha = (float)a;
    }
    dr_sasrec *s = NULL;
    if ((st = dr__sasrec_from_params(&dm, base, total, &s, err)) != DR_OK) return st;
    s->loss = loss;
    s->negatives = negs;
    s->neg_alpha = alpha;
    dr_fusion f;
    const float *eid = NULL;
    dr_impute imp;
    int found;
    if ((st = dr__fusion_load(c, "sasrec", dm.d, (uint64_t)dm.n_items + 1, &f, &eid, &imp,
                             &found, err)) != DR_OK ||
        (found && (st = sasrec_attach_fusion(s, &f, eid, imp, err)) != DR_OK)) {
        dr__sasrec_free(s);
        return st;
    }
    return dr__sasrec_as_model(s, out, err);
}

/* ------------------------------------------------------------------ scoring interface */

static dr_sasrec_params sasrec_params_from_model(const dr_model_params *mp) {
    dr_sasrec_params p = dr__sasrec_default_params();
    if (!mp) return p;
    p.seed = mp->seed;
    p.threads = mp->threads;
    if (mp->dim) p.d = mp->dim;
    if (mp->max_len) p.L = mp->max_len;
    if (mp->blocks) p.blocks = mp->blocks;
    if (mp->heads) p.heads = mp->heads;
    if (mp->batch) p.batch = mp->batch;
    if (mp->epochs) p.epochs = mp->epochs;
    if (mp->patience) p.patience = mp->patience;
    if (mp->min_epochs) p.min_epochs = mp->min_epochs;
    if (mp->eval_every) p.eval_every = mp->eval_every;
    if (mp->dropout >= 0) p.dropout = mp->dropout;
    if (mp->lr > 0) p.lr = mp->lr;
    if (mp->init_lr_scale >= 0) p.init_lr_scale = mp->init_lr_scale;
    if (mp->weight_decay >= 0) p.weight_decay = mp->weight_decay;
    if (mp->loss) dr__sasrec_loss_parse(mp->loss, &p.loss, NULL); /* vt_fit checked it */
    if (mp->negatives) p.negatives = mp->negatives;
    if (mp->neg_alpha >= 0) p.neg_alpha = mp->neg_alpha;
    p.on_epoch = mp->on_epoch;
    p.on_epoch_ud = mp->on_epoch_ud;
    if (mp->modality_dropout >= 0) p.modality_dropout = mp->modality_dropout;
    if (mp->id_dropout >= 0) p.id_dropout = mp->id_dropout;
    if (mp->fusion_lr > 0) p.fusion_lr = mp->fusion_lr;
    if (mp->fusion_l2 >= 0) p.fusion_l2 = mp->fusion_l2;
    return p;
}

static dr_status vt_fit(const dr_dataset *ds, const dr_split *sp, const dr_model_params *mp,
                        const dr_validator *vd, void **state, dr_error *err) {
    dr_sasrec_loss loss;
    if (mp && mp->loss && dr__sasrec_loss_parse(mp->loss, &loss, err) != DR_OK) return DR_ARG;
    dr_sasrec_params p = sasrec_params_from_model(mp);
    if (mp && mp->init && !mp->loss && mp->init->state) { /* a warm start keeps the init's loss */
        const dr_sasrec *im = mp->init->state;
        if (im->loss >= 0) p.loss = (dr_sasrec_loss)im->loss;
        if (im->loss == DR_SASREC_SAMPLED) {
            if (!mp->negatives) p.negatives = im->negatives;
            if (mp->neg_alpha < 0) p.neg_alpha = im->neg_alpha;
        }
    }
    if (mp && (mp->negatives || mp->neg_alpha >= 0) && p.loss != DR_SASREC_SAMPLED)
        return dr__fail(err, DR_ARG, "sasrec: negatives and neg_alpha apply to the loss "
                       "'sampled' only (loss is '%s')", dr__sasrec_loss_name((int)p.loss));
    if (mp && mp->impute && dr__impute_parse(mp->impute, &p.impute, err) != DR_OK) return DR_ARG;
    dr_status sst = dr__fusion_select(ds, mp ? mp->modalities : NULL, &p.use_modalities, err);
    if (sst != DR_OK) return sst;
    dr_warm_map map = {0};
    if (mp && mp->init) { /* dr_model_fit checked that init is a sasrec */
        p.init = mp->init->state; /* a loaded checkpoint's state borrows the mapping: same type */
        const dr_sasrec_dims *im = &p.init->dm; /* shape not given: the init's */
        if (!mp->dim) p.d = im->d;
        if (!mp->max_len) p.L = im->L;
        if (!mp->blocks) p.blocks = im->blocks;
        if (!mp->heads) p.heads = im->heads;
        if (!(mp->init_lr_scale <= 100.0f) && mp->init_lr_scale >= 0)
            return dr__fail(err, DR_ARG, "sasrec: init_lr_scale %g is not in [0, 100]",
                            (double)mp->init_lr_scale);
        if (!mp->min_epochs) p.min_epochs = 0; /* a warm start begins trained: patience alone */
        if ((sst = dr__warm_map_build(mp->init, 0, ds, &map, err)) != DR_OK) return sst;
        p.init_map = &map;
    }
    dr_sasrec *m = NULL;
    dr_status st = sasrec_train(ds, sp, &p, vd, &m, err);
    dr__warm_map_free(&map);
    if (st == DR_OK) *state = m;
    return st;
}

static void vt_free(void *state) { dr__sasrec_free(state); }

static size_t vt_scratch_bytes(const void *state) { return dr__sasrec_scratch_bytes(state); }

static dr_status vt_score(const void *state, void *scratch, uint32_t u, const uint32_t *ctx,
                          size_t n_ctx, float *scores, dr_error *err) {
    dr__sasrec_score(state, ctx, n_ctx, scores, scratch);
    return DR_OK;
}

static const dr_fusion *vt_fusion(const dr_model *m, const float **e, dr_impute *imp) {
    const float *eid = NULL;
    const dr_fusion *f = dr__sasrec_get_fusion(m->state, &eid);
    if (f && e) *e = eid + f->d; /* row 0 is the padding token */
    if (f && imp) *imp = dr__sasrec_get_impute(m->state);
    return f;
}

static dr_status vt_refuse(dr_model *m, const dr_dataset *ds, const uint8_t *over,
                           dr_impute imp, dr_error *err) {
    return dr__sasrec_refuse(m->state, ds, over, imp, err);
}

static dr_status vt_latents(const void *state, uint32_t *dim, const float **items, float **owned,
                            dr_error *err) {
    const dr_sasrec *s = state;
    *dim = s->dm.d;
    *items = s->block + s->dm.d; /* tok rows 1.. */
    return DR_OK;
}

static dr_status vt_user_latent(const void *state, void *scratch, uint32_t u, const uint32_t *ctx,
                                size_t n_ctx, float *h, dr_error *err) {
    dr__sasrec_user_latent(state, ctx, n_ctx, h, scratch);
    return DR_OK;
}

static uint32_t vt_window(const void *state) { return ((const dr_sasrec *)state)->dm.L; }

const dr_model_vt dr_sasrec_vt = {
    .name = "sasrec",
    .fit = vt_fit,
    .free = vt_free,
    .scratch_bytes = vt_scratch_bytes,
    .score = vt_score,
    .warm_start = 1,
    .fusion = vt_fusion,
    .refuse = vt_refuse,
    .save = sasrec_save,
    .load = sasrec_load,
    .latents = vt_latents,
    .user_latent = vt_user_latent,
    .window = vt_window,
};

dr_status dr__sasrec_as_model(dr_sasrec *s, dr_model **out, dr_error *err) {
    if (!out || !s) return dr__fail(err, DR_ARG, "dr__sasrec_as_model: NULL argument");
    return dr__model_wrap(&dr_sasrec_vt, s, s->dm.n_items, out, err);
}
