/*
 * dynrec.h - the public API of the dynrec recommender engine.
 *
 * Conventions (the same everywhere):
 *  - Every call that can fail returns a dr_status and writes its results through
 *    out-parameters. Details go in the optional dr_error *err (may be NULL).
 *  - Objects are opaque handles with create/free pairs; x_free(NULL) does nothing.
 *  - Parameters come in structs initialised by x_default_params(); set the fields
 *    you care about and pass a pointer.
 *  - Randomness is a parameter (seed): same seed and thread count, same bytes.
 *  - The library never prints; it logs through dr_set_log().
 */
#ifndef DYNREC_H
#define DYNREC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DR_VERSION "0.1.0"

/* ---------------------------------------------------------------- status */

/* One table: the enum, the names and the messages come from it. */
#define DR_STATUS_TABLE(X)                                          \
    X(DR_OK,          "ok",           "success")                    \
    X(DR_NOMEM,       "nomem",        "out of memory")              \
    X(DR_IO,          "io",           "input/output error")         \
    X(DR_FORMAT,      "format",       "malformed input")            \
    X(DR_ARG,         "arg",          "invalid argument")           \
    X(DR_NOTFOUND,    "notfound",     "not found")                  \
    X(DR_RANGE,       "range",        "value out of range")         \
    X(DR_LIMIT,       "limit",        "size limit exceeded")        \
    X(DR_UNSUPPORTED, "unsupported",  "not supported")              \
    X(DR_INTERNAL,    "internal",     "internal error")

typedef enum {
#define DR__ENUM(code, name, msg) code,
    DR_STATUS_TABLE(DR__ENUM)
#undef DR__ENUM
    DR_STATUS_COUNT
} dr_status;

/* Short lower-case name ("format") and a human message for a status. */
const char *dr_status_name(dr_status s);
const char *dr_status_message(dr_status s);

/* Per-call error details. */
typedef struct dr_error {
    dr_status code;
    char msg[512]; /* "path:line: what went wrong" */
} dr_error;

/* ---------------------------------------------------------------- logging */

enum { DR_LOG_ERROR = 0, DR_LOG_WARN = 1, DR_LOG_INFO = 2, DR_LOG_DEBUG = 3 };
typedef void (*dr_log_fn)(void *ud, int level, const char *msg);
/* Process-wide log sink; NULL silences the library (the default). */
void dr_set_log(dr_log_fn fn, void *ud, int max_level);

/* Progress of long steps: stage name, done out of total (total may be 0). */
typedef void (*dr_progress_fn)(void *ud, const char *stage, size_t done, size_t total);

/* ---------------------------------------------------------------- datasets */

typedef struct dr_dataset dr_dataset;

/*
 * One table, one row per format: the enum and the --format names come from it, and
 * dr_dataset_load (load.c) binds each row's detector and loader through it. Columns:
 * enum name, enum value (fixed: the numbers are the API, never reused), --format name, what
 * it reads (FOLDER or FILE), detector, loader (internal functions, src/dataset.h). Rows are
 * in the order DR_FMT_AUTO tries the detectors; the first that says yes decides. Adding a
 * format: a loader with its detector and one row here.
 */
#define DR_FORMAT_TABLE(X)                                                                   \
    /* decide from the path (see dr_dataset_load) */                                         \
    X(DR_FMT_AUTO,        0, "auto",        NONE,   NULL,                  NULL)              \
    /* dynrec's own folder format (docs/FORMATS.md) */                                       \
    X(DR_FMT_DYNREC,      6, "dynrec",      FOLDER, dr__detect_dynrec,      dr__load_dynrec)    \
    /* folder with ratings.csv [movies.csv tags.csv] */                                      \
    X(DR_FMT_MOVIELENS,   2, "movielens",   FOLDER, dr__detect_movielens,   dr__load_movielens) \
    /* folder with train.csv validation.csv test.csv */                                      \
    X(DR_FMT_AMAZON_CSV,  3, "amazon-csv",  FOLDER, dr__detect_amazon_csv,  dr__load_amazon_csv) \
    /* folder with train/valid/test.tsv + *_feat.npy */                                      \
    X(DR_FMT_TIKTOK,      5, "tiktok",      FOLDER, dr__detect_tiktok,      dr__load_tiktok)    \
    /* reviews JSON lines [+ metadata JSON lines] */                                         \
    X(DR_FMT_AMAZON_JSON, 4, "amazon-json", FILE,   dr__detect_amazon_json, dr__load_amazon_json) \
    /* user item time [weight], CSV or TSV: any other file */                                \
    X(DR_FMT_DELIMITED,   1, "delimited",   FILE,   dr__detect_delimited,   dr__load_delimited)

typedef enum {
#define DR__FMT(code, value, name, reads, detect, load) code = value,
    DR_FORMAT_TABLE(DR__FMT)
#undef DR__FMT
} dr_format;

const char *dr_format_name(dr_format f);
/* Parses "auto", "delimited", "movielens", "amazon-csv", "amazon-json", "tiktok", "dynrec". */
dr_status dr_format_parse(const char *s, dr_format *out);

typedef struct dr_load_params {
    dr_format format;
    char delimiter;        /* DELIMITED: 0 = detect (tab, comma, semicolon) */
    int header;            /* DELIMITED: -1 = detect, 0 = none, 1 = first line is a header */
    int col_user;          /* DELIMITED: 0-based column indices; -1 = absent */
    int col_item;
    int col_time;          /* -1: no time, file order is the order */
    int col_weight;        /* -1: weight 1 */
    double time_scale;     /* seconds per time unit; 0 = the format's default */
    const char *meta_path; /* AMAZON_JSON: metadata JSON lines (optional) */
    size_t max_line;       /* longest accepted line in bytes */
    size_t max_file;       /* largest accepted file in bytes */
    int strict;            /* 1: the first bad row fails the load */
    dr_progress_fn progress;
    void *progress_ud;
} dr_load_params;

dr_load_params dr_load_default_params(void);

/* Why rows were skipped; every skipped row is counted under one reason. */
#define DR_SKIP_TABLE(X)                                            \
    X(DR_SKIP_COLUMNS,   "columns",      "wrong number of columns") \
    X(DR_SKIP_EMPTY_ID,  "empty_id",     "empty user or item id")   \
    X(DR_SKIP_NUMBER,    "number",       "malformed number")        \
    X(DR_SKIP_TOO_LONG,  "too_long",     "line too long")           \
    X(DR_SKIP_JSON,      "json",         "malformed JSON")          \
    X(DR_SKIP_FIELD,     "field",        "missing or mistyped field") \
    X(DR_SKIP_UNKNOWN,   "unknown_item", "metadata for an item with no interactions") \
    X(DR_SKIP_DUPLICATE, "duplicate",    "duplicate metadata row")  \
    X(DR_SKIP_ENCODING,  "encoding",     "invalid UTF-8 or NUL byte")

typedef enum {
#define DR__SKIP(code, name, msg) code,
    DR_SKIP_TABLE(DR__SKIP)
#undef DR__SKIP
    DR_SKIP_COUNT
} dr_skip_reason;

const char *dr_skip_name(dr_skip_reason r);

#define DR_REPORT_MAX_MSGS 8
typedef struct dr_load_report {
    size_t rows_read;    /* data rows seen, all files */
    size_t rows_ok;      /* rows accepted */
    size_t skipped[DR_SKIP_COUNT];
    size_t n_msgs;       /* first few problems, "path:line: reason" */
    char msgs[DR_REPORT_MAX_MSGS][256];
} dr_load_report;

/*
 * Loads a dataset. With DR_FMT_AUTO the path decides:
 *   folder with dataset.tsv or interactions.tsv -> DYNREC; ratings.csv -> MOVIELENS;
 *   train.csv + validation.csv -> AMAZON_CSV; train.tsv -> TIKTOK;
 *   file *.json / *.jsonl / *.json.gz-less -> AMAZON_JSON; any other file -> DELIMITED.
 * Interactions are stable-sorted by time (ties keep file order) and ids are remapped to
 * dense 0..n-1 in order of first appearance after the sort (../shared/PROTOCOL.md).
 */
dr_status dr_dataset_load(const char *path, const dr_load_params *p, dr_dataset **out,
                          dr_error *err);
void dr_dataset_free(dr_dataset *ds);

/* Writes ds in dynrec's folder format into dir (created if missing). */
dr_status dr_dataset_save(const dr_dataset *ds, const char *dir, dr_error *err);

const dr_load_report *dr_dataset_report(const dr_dataset *ds);
const char *dr_dataset_name(const dr_dataset *ds);     /* "ml-small", "amazon-mtv", ... */
uint32_t dr_dataset_n_users(const dr_dataset *ds);
uint32_t dr_dataset_n_items(const dr_dataset *ds);
size_t dr_dataset_n_events(const dr_dataset *ds);
const char *dr_dataset_user_id(const dr_dataset *ds, uint32_t u); /* external id */
const char *dr_dataset_item_id(const dr_dataset *ds, uint32_t i);
const char *dr_dataset_item_title(const dr_dataset *ds, uint32_t i); /* "" when none */
/* Dense id of an external id; DR_NOTFOUND when unknown. */
dr_status dr_dataset_find_user(const dr_dataset *ds, const char *ext, uint32_t *u);
dr_status dr_dataset_find_item(const dr_dataset *ds, const char *ext, uint32_t *i);
/* Attributes of an item as "key=value" strings; returns the count, fills up to cap. */
size_t dr_dataset_item_attrs(const dr_dataset *ds, uint32_t i, const char **out, size_t cap);
/* A user's time-ordered items; returns the count, *items points into ds. */
size_t dr_dataset_user_items(const dr_dataset *ds, uint32_t u, const uint32_t **items,
                             const int64_t **times);
/* Modalities: count, name, dim; features row-major (n_items, dim), present[i] in {0,1}. */
int dr_dataset_n_modalities(const dr_dataset *ds);
dr_status dr_dataset_modality(const dr_dataset *ds, int m, const char **name, uint32_t *dim,
                              const float **x, const uint8_t **present);

/*
 * Adds modality `name` (or replaces the one of that name) from a .npy matrix (float16/32/64,
 * C order, at most max_bytes; 0 = the loader's default cap): when every item id is a number,
 * row r holds the features of the item whose id is r (the TikTok/MMSSL convention); otherwise
 * the file has one row per item in dense order (as `dr_dataset_save` writes). A row that is all
 * zero or holds a NaN marks the item's feature missing; an infinity, or an item of the
 * interactions with no row, is DR_FORMAT naming the file. Items with ids that are not row
 * numbers and no interactions are left missing.
 */
dr_status dr_dataset_add_features(dr_dataset *ds, const char *name, const char *path,
                                  size_t max_bytes, dr_error *err);

typedef struct dr_dataset_stats {
    uint32_t n_users, n_items;
    size_t n_events;
    size_t n_attrs;          /* distinct attribute strings */
    size_t n_titled_items;   /* items with a title */
    int n_modalities;
    int has_time;            /* 0 when all times are equal (given splits) */
    double time_scale;       /* seconds per time unit */
    int64_t t_min, t_max;    /* in the dataset's units */
    int64_t t0;              /* P-STREAM T0: time of the event at the 80th percentile */
    size_t n_pre_t0;         /* events with time < T0 */
    double density;          /* n_events / (n_users * n_items) */
    uint32_t min_user_len, median_user_len, max_user_len;
    int has_given_split;     /* train/valid/test tags from the source */
} dr_dataset_stats;

dr_status dr_dataset_get_stats(const dr_dataset *ds, dr_dataset_stats *out);

/* ---------------------------------------------------------------- synthetic data */

#define DR_SYNTH_MAX_MOD 3 /* visual, audio, text */

typedef struct dr_synth_params {
    uint64_t seed;
    uint32_t n_users;
    uint32_t n_items;
    size_t n_events;
    uint32_t n_genres;        /* latent genres */
    uint32_t latent_dim;      /* dimension of the true item latent */
    double drift_prob;        /* probability that a user's taste drifts (once) */
    double new_item_frac;     /* fraction of items born during the timeline */
    double zipf;              /* popularity long-tail exponent */
    double taste_conc;        /* Dirichlet concentration of user tastes (small = focused) */
    double repeat_prob;       /* probability an event re-uses the user's last genre */
    int64_t t_start;          /* UNIX seconds of the first event */
    int64_t t_step;           /* mean seconds between events */
    uint32_t mod_dim[DR_SYNTH_MAX_MOD];       /* visual, audio, text; 0 = absent */
    double mod_noise[DR_SYNTH_MAX_MOD];       /* feature noise std relative to signal */
    double mod_missing[DR_SYNTH_MAX_MOD];     /* fraction of items missing the modality */
} dr_synth_params;

dr_synth_params dr_synth_default_params(void);

/* Generates a dataset in memory (deterministic for the params). */
dr_status dr_synth_generate(const dr_synth_params *p, dr_dataset **out, dr_error *err);

/* ---------------------------------------------------------------- splits */

typedef enum {
    DR_SPLIT_LOO = 0,  /* P-LOO: last = test, second-to-last = valid; users < 3 dropped */
    DR_SPLIT_GIVEN,    /* the source's own train/valid/test tags (P-MODAL) */
    DR_SPLIT_T0,       /* P-STREAM: training = events with time < T0 (the last validates) */
    DR_SPLIT_ALL       /* a retrain for serving: every event trains but each user's last, which
                          validates (early stopping); no test segment */
} dr_split_kind;

/*
 * A split never copies data: for each user it says how many of the user's time-ordered
 * items are training, validation and test items, in that order (a prefix layout).
 */
typedef struct dr_split dr_split;

dr_status dr_split_create(const dr_dataset *ds, dr_split_kind kind, dr_split **out,
                          dr_error *err);
void dr_split_free(dr_split *s);
dr_split_kind dr_split_get_kind(const dr_split *s);
/* Lengths of user u's train / valid / test segments. */
void dr_split_user(const dr_split *s, uint32_t u, uint32_t *n_train, uint32_t *n_valid,
                   uint32_t *n_test);
uint32_t dr_split_n_eval_users(const dr_split *s); /* users with a test segment */
/* Users with a validation segment after a non-empty training prefix: those the validation
 * (dr_eval_params.which = 1) ranks; 0 when the split has no validation targets. */
uint32_t dr_split_n_valid_users(const dr_split *s);
int64_t dr_split_t0(const dr_split *s);            /* DR_SPLIT_T0 only */

/* ---------------------------------------------------------------- models (scoring interface) */

typedef struct dr_model dr_model;

/* A warm retrain's validation (dr_model_params.init): each user's validation targets that the
 * checkpoint init has seen already (its stored history of the same external user is at least as
 * long as the user's training and validation segments) join the training segment, so the
 * validation ranks only events the init was not trained on. *kept (may be NULL) = validation
 * users left. DR_ARG when init holds no ids and histories (not loaded from a checkpoint). */
dr_status dr_split_unseen_valid(dr_split *s, const dr_dataset *ds, const dr_model *init,
                                uint32_t *kept, dr_error *err);

/* Called after every training epoch; val_ndcg10 < 0 when the epoch was not validated. */
typedef void (*dr_epoch_fn)(void *ud, int epoch, double loss, double val_ndcg10,
                            double seconds);

typedef struct dr_model_params {
    const char *name;       /* "pop", "itemknn", "sasrec", "mf" */
    uint32_t knn_last;      /* itemknn: distinct recent context items used (5) */
    int threads;            /* 0 = all cores */
    uint64_t seed;
    /* Trained models (sasrec, mf). 0 / NULL = the model's own default. */
    uint32_t dim;           /* latent size d */
    uint32_t max_len;       /* sasrec: L, the most recent items used */
    uint32_t blocks;        /* sasrec: transformer blocks */
    uint32_t heads;         /* sasrec: attention heads */
    uint32_t batch;         /* sasrec: users per batch */
    uint32_t epochs;        /* maximum epochs */
    uint32_t patience;      /* validations without improvement before stopping */
    uint32_t min_epochs;    /* sasrec: no early stop before this epoch; 0 = default (35, a warm
                               start: none) */
    uint32_t eval_every;    /* validate every this many epochs */
    float dropout;          /* sasrec; < 0 = default (0 is a valid rate) */
    float lr;               /* learning rate */
    float weight_decay;     /* sasrec: decoupled weight decay; < 0 = default */
    float l2;               /* mf: L2 regularisation; < 0 = default */
    const char *loss;       /* sasrec: "ce" (full softmax) | "bce" (one sampled negative) |
                               "sampled" (softmax over shared sampled negatives, logQ-corrected);
                               NULL = the warm start's loss, else "ce" */
    uint32_t negatives;     /* sasrec, loss "sampled": negatives per batch; 0 = default (512) */
    float neg_alpha;        /* sasrec, loss "sampled": negatives drawn ~ (count + 1)^neg_alpha,
                               0 = uniform; < 0 = default (0.5) */
    const char *optimizer;  /* mf: "sgd" | "adam" */
    const dr_model *init;   /* sasrec, mf: warm start from this model (same kind; its shape
                               unless dim/max_len/blocks/heads say otherwise, and then they must
                               agree, else DR_ARG). Users and items are matched by external id
                               when init was loaded from a checkpoint (row for row, same counts,
                               when it was fitted in memory): a known one starts from its old
                               row (a fused init: its id embedding e, and its fusion block when
                               the modalities agree, else DR_ARG), a new one from the random
                               initialisation; shared tensors are copied. NULL = random */
    float init_lr_scale;    /* sasrec warm start: factor on the learning rate of what init gave
                               (every tensor, known items' rows); new items' rows learn at the
                               full rate; < 0 = default (1) */
    /* Gated multimodal fusion of the dataset's item features (mf, sasrec; DESIGN.md). */
    const char *modalities; /* NULL / "none" = ids only; "all"; or names: "visual,audio" */
    float modality_dropout; /* training: drop rate of each item feature; < 0 = default (sasrec
                               0.6, mf 0.3) */
    const char *impute;     /* missing features: "gate" (default, gate closes) | "mean" */
    float id_dropout;       /* training: rate of treating an item as cold (its features alone
                               carry it; fused mf, sasrec); < 0 = default (mf 0.5, sasrec 0) */
    float fusion_lr;        /* Adam learning rate of projections and gates; 0 = default */
    float fusion_l2;        /* L2 on projections and gates; < 0 = default */
    dr_epoch_fn on_epoch;
    void *on_epoch_ud;
    dr_progress_fn progress;
    void *progress_ud;
} dr_model_params;

dr_model_params dr_model_default_params(void);

/* Fits a model on the split's training segments. */
dr_status dr_model_fit(const dr_dataset *ds, const dr_split *split, const dr_model_params *p,
                       dr_model **out, dr_error *err);
void dr_model_free(dr_model *m);
const char *dr_model_name(const dr_model *m);
/* The model kinds, in the registry's order: the name of kind k, NULL past the last; *saves
 * (when non-NULL) says whether a fitted model of that kind can be saved as a checkpoint. */
const char *dr_model_kind_at(size_t k, int *saves);

/*
 * Checkpoints (.drm, docs/FORMATS.md). A saved model carries, besides its parameters, the
 * external user and item ids and every user's time-ordered history from ds, so that
 * `recommend` needs no dataset; `split` records which protocol the model was trained under
 * (and T0 for P-STREAM). Every kind saves: pop its counts, itemknn its training matrix (both
 * score through dr_model_score / dr_recommend, but serve nothing: they have no latents).
 */
dr_status dr_model_save(const dr_model *m, const dr_dataset *ds, const dr_split *split,
                        const char *path, dr_error *err);
/* Opens a checkpoint (mmapped, read-only, every offset checked); DR_FORMAT when damaged. */
dr_status dr_model_load(const char *path, dr_model **out, dr_error *err);
/* Metadata of a model: what dr_model_set_meta set, else a loaded checkpoint's ("model",
 * "dataset", "split", "T0", hyper-parameters, and the notes it was saved with); NULL if absent. */
const char *dr_model_meta(const dr_model *m, const char *key);
/* Sets a note that dr_model_save writes into the checkpoint's metadata (a tuned setting, a
 * validation figure). The key must hold a '.' ("adapter.window", "tune.valid_ndcg10": the
 * checkpoint's own keys never do) and 1..63 chars of [A-Za-z0-9_.-]; the value UTF-8 without
 * newlines. Setting a key again replaces its value. At most DR_MODEL_NOTES_MAX notes. */
dr_status dr_model_set_meta(dr_model *m, const char *key, const char *value, dr_error *err);
uint32_t dr_model_n_items(const dr_model *m);
/* DR_OK when ds has exactly the item catalogue (ids, in order) the model was trained on. */
dr_status dr_model_check_dataset(const dr_model *m, const dr_dataset *ds, dr_error *err);
/* Ids and histories stored in a loaded checkpoint. */
uint32_t dr_model_n_users(const dr_model *m);
dr_status dr_model_find_user(const dr_model *m, const char *ext, uint32_t *u);
const char *dr_model_user_id(const dr_model *m, uint32_t u);
const char *dr_model_item_id(const dr_model *m, uint32_t i);
size_t dr_model_user_history(const dr_model *m, uint32_t u, const uint32_t **items);
const char *dr_model_item_title(const dr_model *m, uint32_t i); /* "" when none */
size_t dr_model_item_attrs(const dr_model *m, uint32_t i, const char **out, size_t cap);

/* Scratch for one scoring thread; one per thread, reused across calls. */
typedef struct dr_scorer dr_scorer;
dr_status dr_scorer_create(const dr_model *m, dr_scorer **out, dr_error *err);
void dr_scorer_free(dr_scorer *s);

/*
 * Scores every item for user u whose context is ctx[0..n_ctx) (time-ordered items).
 * scores has dr_dataset_n_items() entries; higher is better.
 */
dr_status dr_model_score(const dr_model *m, dr_scorer *s, uint32_t u, const uint32_t *ctx,
                         size_t n_ctx, float *scores, dr_error *err);

/*
 * Dot-product models (sasrec, mf): score(u, i) = item_latent(i) . user_latent(u, ctx). The
 * online adapter and the explanations work on these latents. latent_dim is 0 for models that
 * are not dot products (pop, itemknn).
 */
uint32_t dr_model_latent_dim(const dr_model *m);
const float *dr_model_item_latents(const dr_model *m); /* (n_items, latent_dim) */
/* h (latent_dim) for user u with context ctx; uses the scorer's scratch, never allocates. */
dr_status dr_model_user_latent(const dr_model *m, dr_scorer *s, uint32_t u, const uint32_t *ctx,
                               size_t n_ctx, float *h, dr_error *err);

/* One recommended item. */
typedef struct dr_rec {
    uint32_t item;
    float score;
} dr_rec;

#define DR_RECOMMEND_MAX_K 1024

/*
 * The serving path: scores every item for user u with context ctx (time-ordered items) and
 * returns the k best (k <= DR_RECOMMEND_MAX_K), best first, items in ctx excluded, ties to the
 * lower item id; *n_out = min(k, candidates). Exact. Uses only the scorer's buffers: after the
 * first call it never allocates.
 */
dr_status dr_recommend(const dr_model *m, dr_scorer *s, uint32_t u, const uint32_t *ctx,
                       size_t n_ctx, uint32_t k, dr_rec *out, uint32_t *n_out, dr_error *err);

/* ---------------------------------------------------------------- metrics */

/*
 * Pessimistic rank (1-based) of target t among candidates: 1 + (candidates scoring strictly
 * higher) + (other candidates scoring exactly equal). excluded may be NULL; excluded items
 * are not candidates (the target always is).
 */
uint32_t dr_rank_pessimistic(const float *scores, uint32_t n, uint32_t target,
                             const uint8_t *excluded);

typedef struct dr_rank_metrics {
    double hit, ndcg, recall;
} dr_rank_metrics;

/*
 * Metrics at cut-off k for a set of distinct targets with their pessimistic ranks
 * (ranks[j] from dr_ranks_multi). hit = any target in top k; recall = hits / n_targets;
 * ndcg = DCG / ideal DCG over min(n_targets, k).
 */
dr_rank_metrics dr_metrics_at(const uint32_t *ranks, uint32_t n_targets, uint32_t k);

/*
 * Ranks of several targets: each target's rank counts candidates scoring higher, non-target
 * candidates scoring equal, and targets scoring equal that come earlier in the targets array.
 */
void dr_ranks_multi(const float *scores, uint32_t n, const uint32_t *targets,
                    uint32_t n_targets, const uint8_t *excluded, uint32_t *ranks_out);

/* ---------------------------------------------------------------- evaluation */

typedef struct dr_eval_params {
    int threads;            /* 0 = all cores */
    uint64_t sample_seed;   /* sampled-100 negatives (42) */
    uint32_t n_sampled;     /* 100 */
    int which;              /* 0 = test targets, 1 = validation targets */
    dr_progress_fn progress;
    void *progress_ud;
} dr_eval_params;

dr_eval_params dr_eval_default_params(void);

typedef struct dr_eval_result {
    uint32_t n_users;                    /* users evaluated */
    dr_rank_metrics full10, full20;      /* full ranking, history excluded */
    dr_rank_metrics samp10, samp20;      /* sampled-100 */
    /* Cold items (in no user's training segment): full-ranking metrics with only the cold
     * targets as targets, over the n_cold_users users that have such a target. */
    uint32_t n_cold_items, n_cold_users;
    dr_rank_metrics cold10, cold20;
    double seconds;                      /* wall time of the evaluation */
} dr_eval_result;

/* P-LOO (or GIVEN) evaluation of a fitted model over the split's evaluation users. */
dr_status dr_eval_split(const dr_dataset *ds, const dr_split *split, const dr_model *m,
                        const dr_eval_params *p, dr_eval_result *out, dr_error *err);

/* ---------------------------------------------------------------- baselines and tuning */

/*
 * The reference baselines every trained model is held to: pop and itemknn at their defaults
 * (exact, cheap: ranking amazon-mtv's 10,000 validation users takes them a second or two;
 * ranking them with a trained model costs more, docs/BENCH.md).
 * dr_eval_baselines fits each on sp's training segments and evaluates it as dr_eval_split
 * does with p (p->which = 1: the validation targets, as `dynrec train` and `tune` report them);
 * out[k] belongs to dr_baseline_name(k).
 */
#define DR_BASELINES 2
const char *dr_baseline_name(size_t k); /* "pop", "itemknn"; NULL past the last */
dr_status dr_eval_baselines(const dr_dataset *ds, const dr_split *sp, const dr_eval_params *p,
                            dr_eval_result out[DR_BASELINES], dr_error *err);

/*
 * dr_tune_run: a search over model kinds and their settings (src/tune.c). Every candidate is
 * scored by full-ranking NDCG@10 on the split's validation targets only (dr_eval_split,
 * which = 1); the test targets are never read. The settings come from one table, a row per
 * (kind, setting) with its values (dr_tune_space_at); a kind's `epochs` row is its ladder of
 * successive-halving rungs. The search is asynchronous successive halving (ASHA, Li et al.
 * 2020) run one trial at a time: whenever a candidate is in the best 1/eta of the results of
 * its rung so far, it is promoted (trained on from its rung's model, up to the next rung's
 * epochs); otherwise a new candidate is drawn, kinds taking turns. The baselines are
 * evaluated first and compete with every candidate: the best trial may be a baseline.
 * The trials are a pure function of the seed (base.seed) and the data: two runs with the
 * same seed that run the same number of trials give the same figures and the same
 * checkpoint bytes. The wall-clock budget only decides how far the search gets: it stops
 * before a trial it expects (from the seconds per epoch seen so far) not to finish in time.
 */
#define DR_TUNE_MAX_SETTINGS 8 /* settings of one kind in the search space */

typedef struct dr_tune_setting {
    char name[24];          /* as the CLI option spells it: "dim", "max-len", "lr" */
    char value[24];         /* "64", "0.001" */
} dr_tune_setting;

typedef struct dr_tune_trial {
    uint32_t id;            /* 1.. in the order run; 0 for a baseline */
    uint32_t candidate;     /* 1.. in the order drawn; 0 for a baseline */
    uint32_t rung;          /* successive-halving rung, 0 first */
    int baseline;           /* 1: a reference baseline at its defaults */
    int trained;            /* 1: a kind trained by epochs (not pop or itemknn) */
    char model[16];         /* the kind */
    uint32_t n_settings;    /* the kind's rows of the space but epochs: drawn, or fixed by
                               the caller's base parameters */
    dr_tune_setting settings[DR_TUNE_MAX_SETTINGS];
    uint32_t epochs;        /* epochs trained in all (0: not trained by epochs) */
    dr_status status;       /* DR_OK, or why the fit failed (a diverged lr: DR_RANGE) */
    char error[160];        /* the failure's message */
    dr_eval_result valid;   /* validation figures (zeros when the fit failed) */
    double seconds;         /* fit and validation, wall clock */
} dr_tune_trial;

/* Called after every trial (the baselines too); best is the best trial so far, elapsed the
 * seconds since dr_tune_run began. */
typedef void (*dr_tune_fn)(void *ud, const dr_tune_trial *t, const dr_tune_trial *best,
                           double elapsed);

typedef struct dr_tune_params {
    const char *models;     /* kinds searched, comma-separated; NULL: "sasrec,mf,itemknn,pop" */
    dr_model_params base;   /* every candidate starts from these (seed, threads, modalities,
                               ...); a searched setting given a value other than its default
                               here is fixed, not searched (epochs: a single rung) */
    double budget_seconds;  /* wall clock of the search; <= 0: none (max_trials must be set) */
    uint32_t max_trials;    /* search trials at most, the baselines not counted; 0: no cap */
    uint32_t eta;           /* a rung promotes its best 1/eta (3) */
    uint32_t keep;          /* models kept per kind and rung for promotion (16): past that the
                               worst-ranked one is dropped and that candidate stays where it is */
    dr_tune_fn on_trial;
    void *on_trial_ud;
} dr_tune_params;

dr_tune_params dr_tune_default_params(void);

typedef struct dr_tune dr_tune;

/* Runs the search on sp (which must have validation targets: dr_split_n_valid_users). A fit
 * that fails for its settings (DR_RANGE, DR_ARG) is a failed trial and the search goes on;
 * any other failure ends it with that error. */
dr_status dr_tune_run(const dr_dataset *ds, const dr_split *sp, const dr_tune_params *p,
                      dr_tune **out, dr_error *err);
void dr_tune_free(dr_tune *t);
/* The trials in the order run, the DR_BASELINES baselines first. */
size_t dr_tune_n_trials(const dr_tune *t);
const dr_tune_trial *dr_tune_trial_at(const dr_tune *t, size_t k);
/* The best trial (highest validation NDCG@10, the earlier on a tie), baselines included, and
 * its model; the best trial of a trained kind (NULL when none finished). */
const dr_tune_trial *dr_tune_best(const dr_tune *t);
const dr_model *dr_tune_best_model(const dr_tune *t);
const dr_tune_trial *dr_tune_best_trained(const dr_tune *t);
/* Why the search ended: "trials" (max_trials run), "budget", or "exhausted" (no kind has a
 * setting left to draw and no candidate to promote). */
const char *dr_tune_stopped(const dr_tune *t);
/* When the budget stopped it before a trial: that trial and its estimate, in words ("" else). */
const char *dr_tune_stop_detail(const dr_tune *t);
/* Writes the best model as a checkpoint whose metadata also holds its settings and validation
 * figures (`tune.*` keys, docs/FORMATS.md). */
dr_status dr_tune_save(const dr_tune *t, const dr_dataset *ds, const dr_split *sp,
                       const char *path, dr_error *err);
/* t's settings as "name=value name=value" ("" when it has none); returns the length. */
size_t dr_tune_settings_text(const dr_tune_trial *t, char *buf, size_t cap);
/* Row k of the search space: its kind (NULL past the last row), setting and values
 * ("5,20,80"). */
const char *dr_tune_space_at(size_t k, const char **setting, const char **values);

/* ---------------------------------------------------------------- P-MODAL */

#define DR_MODAL_MAX 8     /* modalities named in one drop spec */
#define DR_MODAL_SWEEP_P 4 /* fractions of the robustness sweep: 0, 0.25, 0.5, 1 */

typedef struct dr_modal_params {
    int threads;            /* 0 = all cores */
    int which;              /* 0 = test targets, 1 = validation targets */
    const char *impute;     /* missing features at inference: "gate" (NULL) | "mean" */
    uint64_t drop_seed;     /* items a modality is removed from: uniform, this seed (42) */
    uint32_t n_drop;        /* modalities removed below */
    char drop_name[DR_MODAL_MAX][32];
    double drop_p[DR_MODAL_MAX]; /* fraction of the items that lose drop_name[k] */
} dr_modal_params;

dr_modal_params dr_modal_default_params(void);
/* Parses "visual=0.5,audio=0" into p->drop_* (names up to 31 bytes, 0 <= p <= 1). */
dr_status dr_modal_parse_drop(const char *spec, dr_modal_params *p, dr_error *err);

/*
 * P-MODAL (../shared/PROTOCOL.md): evaluates a fusion model (mf or sasrec with modalities,
 * fitted or loaded from a checkpoint) on the
 * split's test (or validation) targets with each named modality removed for its fraction of
 * the items and missing features handled by p->impute; the model's own latents are restored
 * before returning. A model without fusion is evaluated as is when nothing is dropped
 * (DR_UNSUPPORTED otherwise). Cold-item metrics are filled as in dr_eval_split.
 */
dr_status dr_eval_modal(const dr_dataset *ds, const dr_split *split, dr_model *m,
                        const dr_modal_params *p, dr_eval_result *out, dr_error *err);

/* The robustness table: every fused modality removed alone for p in {0, 0.25, 0.5, 1.0},
 * with the gate closing and with mean imputation (p->drop_* are ignored). */
typedef struct dr_modal_sweep {
    uint32_t n_mod;                    /* fused modalities */
    char name[DR_MODAL_MAX][32];
    double p[DR_MODAL_SWEEP_P];
    dr_eval_result r[2][DR_MODAL_MAX][DR_MODAL_SWEEP_P]; /* [0 gate | 1 mean][modality][p] */
} dr_modal_sweep;
dr_status dr_eval_modal_sweep(const dr_dataset *ds, const dr_split *split, dr_model *m,
                              const dr_modal_params *p, dr_modal_sweep *out, dr_error *err);

/* ---------------------------------------------------------------- P-STREAM */

#define DR_STREAM_SLICES 10

typedef struct dr_stream_metrics {
    double hit10, ndcg10;   /* means over the events counted in n */
    size_t n;               /* scored events */
} dr_stream_metrics;

typedef struct dr_stream_pair {
    dr_stream_metrics frozen, adapter;
    dr_stream_metrics retrain; /* zeros unless the retrain column ran */
} dr_stream_pair;

typedef struct dr_stream_result {
    char dataset[64];
    char model[64];
    int64_t t0;
    size_t n_events;        /* replayed events: time >= T0 */
    size_t n_scored;        /* of those, scored (known user, new item for the user) */
    dr_stream_pair overall;
    dr_stream_pair slices[DR_STREAM_SLICES]; /* consecutive equal-count slices of scored events */
    dr_stream_pair cold;    /* scored events whose target was never seen before T0 */
    int has_adapter;        /* 0: the adapter column was not run (adapter metrics are 0) */
    int has_retrain;        /* 1: the retrain column ran */
    double retrain_seconds; /* time spent refitting the base (the upper bound's cost) */
    uint32_t n_retrains;
    double seconds;         /* wall time of the replay */
    double update_seconds;  /* time in dr__adapter_update */
    double frozen_score_seconds, adapter_score_seconds; /* scoring all items, per variant */
} dr_stream_result;

typedef struct dr_stream_options {
    int run_adapter;        /* 1: run the adapter column (default) */
    int no_gates;           /* ablation: adapter gates fixed open */
    uint32_t window;        /* global window capacity in events (0 = default) */
    uint32_t hidden;        /* adapter MLP hidden units (0 = default) */
    uint32_t negatives;     /* sampled negatives per event (0 = default) */
    uint32_t g_batch;       /* events per item-side step and z' refresh (0 = default) */
    float lr;               /* adapter learning rate, user side (<= 0 = default) */
    float lr_item;          /* adapter learning rate, item side (<= 0 = default) */
    float lambda_kl;        /* stability weight |z'-z|^2 (< 0 = default) */
    uint64_t seed;
    /* non-NULL: also run `retrain`, the base refitted with these parameters before each slice */
    const dr_model_params *retrain;
    int retrain_warm;       /* 1: each refit continues from the model it replaces (sasrec) */
    dr_progress_fn progress;
    void *progress_ud;
} dr_stream_options;

dr_stream_options dr_stream_default_options(void);

/*
 * P-STREAM (../shared/PROTOCOL.md): replays the events at or after T0 in time order against
 * base, a dot-product model trained on the DR_SPLIT_T0 split of ds, with the frozen base and
 * the base + online adapter side by side.
 */
dr_status dr_eval_stream(const dr_dataset *ds, const dr_model *base, const dr_stream_options *o,
                         dr_stream_result *out, dr_error *err);
/* The result as the documented JSON object; returns the length like snprintf. */
int dr_stream_result_json(const dr_stream_result *r, char *buf, size_t cap);

/*
 * The adapter's settings chosen on a validation stream (P-STREAM moved back in time): a
 * validation base is trained with `base` on the events before T1 (the time of the pre-T0 event
 * at 90% by count) and the events in [T1, T0) are replayed over it while the window, the
 * user-side rate and the item-side rate are searched coordinate-wise (11 replays). The test
 * stream (from T0 on) is never looked at. o gives the fixed options (hidden, negatives, seed).
 */
#define DR_ADAPTER_TRIALS_MAX 16
typedef struct dr_adapter_trial {
    uint32_t window;        /* global window, events */
    float lr, lr_item;      /* user-side and item-side rates */
    double hit10, ndcg10, cold_hit10; /* the adapter column on the validation stream */
    double seconds;
} dr_adapter_trial;

typedef struct dr_adapter_choice {
    dr_adapter_trial best;  /* the chosen settings with their validation figures */
    double frozen_hit10, frozen_ndcg10; /* the validation base alone, same events */
    int64_t t_begin, t_end; /* the validation stream [T1, T0), in the dataset's time unit */
    size_t n_events, n_scored;
    uint32_t n_trials;
    dr_adapter_trial trials[DR_ADAPTER_TRIALS_MAX];
    double base_seconds;    /* training the validation base */
    double seconds;         /* everything */
} dr_adapter_choice;

typedef void (*dr_adapter_trial_fn)(void *ud, const dr_adapter_trial *t,
                                    const dr_adapter_choice *so_far);

dr_status dr_stream_choose_adapter(const dr_dataset *ds, const dr_model_params *base,
                                   const dr_stream_options *o, dr_adapter_trial_fn on_trial,
                                   void *ud, dr_adapter_choice *out, dr_error *err);
/* Records the choice in m's notes ("adapter.window", "adapter.lr", "adapter.lr_item" and the
 * validation figures), which dr_model_save writes into the checkpoint. */
dr_status dr_model_set_adapter_choice(dr_model *m, const dr_adapter_choice *c, dr_error *err);
/* Copies those notes from src (a warm retrain keeps its init's choice). */
dr_status dr_model_copy_adapter_choice(dr_model *dst, const dr_model *src, dr_error *err);
/* Fills the options o leaves at their defaults (window 0, rates <= 0) from m's notes. */
void dr_stream_options_from_model(dr_stream_options *o, const dr_model *m);

/* ---------------------------------------------------------------- HTTP server */

/*
 * The HTTP server (docs/HTTP.md): libmicrohttpd in thread-pool mode over a checkpoint and a
 * state folder holding the durable event log (SQLite WAL) and adapter snapshots. Start loads
 * the model, recovers the state (newest snapshot + the log after it) and listens.
 */
typedef struct dr_server dr_server;

typedef struct dr_httpd_params {
    const char *model_path;   /* .drm checkpoint of a dot-product model (mf, sasrec) */
    const char *data_dir;     /* state folder, created when missing */
    const char *host;         /* IPv4 address to bind ("127.0.0.1") */
    uint16_t port;            /* 0 = an ephemeral port (see dr_httpd_port) */
    int threads;              /* HTTP thread pool size (4) */
    const char *api_key;      /* NULL = no authentication */
    int public_read;          /* with a key: GET requests need none */
    size_t max_body;          /* request body cap in bytes (1 MiB); larger gets 413 */
    uint32_t max_new_items;   /* rows reserved for items the model does not know (10000) */
    uint32_t max_new_users;   /* rows reserved for users the model does not know (50000) */
    uint64_t snapshot_every;  /* events between adapter snapshots (10000); 0 = at stop only */
    int durable;              /* 1: fsync every group commit (default); 0: no fsync (tests) */
    double drain_seconds;     /* dr_httpd_stop waits this long for requests in flight (30) */
    const char *log;          /* event log: NULL or "sqlite" (the folder's), "redis://HOST:PORT[/STREAM]",
                                 "redis+unix:///PATH[?stream=S]" (a stream shared by replicas) */
    uint32_t idempotency_ttl; /* seconds an idempotency key is remembered (86400) */
    uint32_t swap_check_events; /* a base swap scores both bases on the log's last N events (2000) */
    double swap_max_drop;     /* ... and is refused when the new base's Hit@10 is lower by more (0.02) */
    double swap_max_z;        /* ... or when McNemar's z of it being worse on the same events is
                                 above this (1.645, one-sided 5%; 0 = no paired test; < 0 = default) */
    int compact_after_swap;   /* 1: after each swap, compact the SQLite log (dr_state_compact) */
    uint32_t swap_rebuild_events; /* a swapped-in base's adapter relearns from this many events (0:
                                 the adapter's window, 4096; at most 65536) */
    int frozen;               /* 1: serve the base without the online adapter (0) */
    const char *llm_model;    /* GGUF for GET .../recommendations?rerank=llm (NULL: 501) */
    const char *llm_align;    /* its .align file (dynrec align; NULL: titles only, lambda 0) */
    int stats;                /* 1: live statistics and quality sampling (GET /v1/stats, the
                                 dashboard; default); 0: off */
    double quality_rate;      /* share of incoming events scored for live quality (0.03) */
    int ann;                  /* two-stage retrieval with the index MODEL.ann (dr_index_build):
                                 0 auto: when the file is there and the model has at least
                                 DR_ANN_MIN_ITEMS items (50,000); 1 on: the file must be there;
                                 -1 off: always the exact scan. A file for another checkpoint or a
                                 corrupt one is refused (the server does not start) */
    uint32_t ann_candidates;  /* approximate candidates per request (0: the index file's, 100) */
    uint32_t ann_ef;          /* the index's search list (0: the index file's, 128) */
} dr_httpd_params;

dr_httpd_params dr_httpd_default_params(void);
dr_status dr_httpd_start(const dr_httpd_params *p, dr_server **out, dr_error *err);
/* The bound port (the ephemeral one when params.port was 0). */
int dr_httpd_port(const dr_server *s);
/* Stops listening, waits for requests in flight, applies what is queued, writes the final
 * adapter snapshot and frees everything. */
void dr_httpd_stop(dr_server *s);
/* Swaps the base to the checkpoint at the path given at start, re-read (SIGHUP): the same as
 * POST /v1/admin/base without force (docs/HTTP.md). Blocks until the swap is done or refused;
 * *swapped = 1 when the new base is live. */
dr_status dr_httpd_reload(dr_server *s, int *swapped, dr_error *err);

/* ---------------------------------------------------------------- approximate index */

/*
 * The index of two-stage retrieval (docs/ARCHITECTURE.md): an HNSW graph over a dot-product
 * checkpoint's item latents, written beside it as MODEL.ann with the checkpoint's hash, read by
 * `dynrec serve` (dr_httpd_params.ann).
 */
typedef struct dr_index_params {
    const char *model_path;   /* the .drm checkpoint (a dot-product model: mf, sasrec) */
    const char *out;          /* NULL: model_path + ".ann" */
    uint32_t M;               /* links per node (32) */
    uint32_t ef_construction; /* build candidate list (200) */
    uint32_t ef_search;       /* search candidate list the server uses by default (128) */
    uint32_t candidates;      /* approximate candidates per request by default (100) */
    int threads;              /* 1: the same file for the same checkpoint and seed; more: faster,
                                 another graph each time (insertion order races) */
    uint64_t seed;            /* (42) */
} dr_index_params;

typedef struct dr_index_result {
    uint32_t items, dim;
    double seconds;           /* building the graph */
    size_t bytes;             /* the graph in memory */
    char hash[17];            /* the checkpoint's */
} dr_index_result;

dr_index_params dr_index_default_params(void);
dr_status dr_index_build(const dr_index_params *p, dr_index_result *res, dr_error *err);

/* ---------------------------------------------------------------- state folder: export, compaction */

/*
 * Export (docs/FORMATS.md, "Exported from a server"): what a server's state folder and event
 * log know, written as a dataset folder in dynrec's format that `dynrec train --data` trains
 * on: the base checkpoint's interactions, then every event the log holds after the position the
 * base covers (archive.db first, then the log), and the catalogue with the newest PUT's title,
 * attributes and features. It streams: memory follows the users and items, not the log.
 */
typedef struct dr_export_params {
    const char *data_dir;     /* the server's state folder (must exist) */
    const char *out;          /* dataset folder to write (created when missing) */
    const char *model_path;   /* base checkpoint; NULL: the newest base record's, else the
                                 folder's meta model_path */
    const char *log;          /* NULL or "sqlite" (the folder's), "redis://...", as serve --log */
    const char *data;         /* NULL, or a dataset whose features are carried over for the
                                 checkpoint's items (matched by item id) */
    uint32_t timeout_ms;      /* redis: connect and command timeout (2000) */
    dr_progress_fn progress;  /* ("export", records read, 0), about once a second; may be NULL */
    void *progress_ud;
} dr_export_params;

typedef struct dr_export_result {
    char base[4096];          /* the checkpoint the export starts from */
    char covers[48];          /* the log position it covers ("0-0": none) */
    char log_covers[48];      /* the last record exported (covers when none): manifest log_covers */
    uint64_t log_records;     /* log records read after covers (events, items, bases) */
    uint64_t events;          /* interactions written, the checkpoint's included */
    uint64_t base_events;     /* of those, the checkpoint's */
    uint64_t item_records;    /* item records (PUT) applied */
    uint32_t users, items;    /* in the dataset */
    uint32_t new_users, new_items; /* not in the checkpoint */
    int n_modalities;
    double seconds;
} dr_export_result;

dr_export_params dr_export_default_params(void);
dr_status dr_state_export(const dr_export_params *p, dr_export_result *out, dr_error *err);

/*
 * Compaction of the sqlite log (docs/FORMATS.md): the records the newest base record no longer
 * needs (seq <= min(covers, from - 1)) move to DIR/archive.db (or are dropped) and the file
 * shrinks. Safe while a server runs on the folder (short transactions, SQLite's busy timeout).
 */
typedef struct dr_compact_params {
    const char *data_dir;     /* the server's state folder (must exist) */
    const char *log;          /* NULL or "sqlite"; a Redis stream is DR_UNSUPPORTED (XTRIM MINID) */
    int drop;                 /* 1: moved records are not kept in archive.db */
    dr_progress_fn progress;  /* ("compact", records moved, 0) after each transaction; may be NULL */
    void *progress_ud;
} dr_compact_params;

typedef struct dr_compact_result {
    int nothing;              /* 1: nothing to move; why says why */
    char why[160];
    uint64_t through;         /* records with seq <= through are out of the log */
    uint64_t moved;           /* records moved by this call */
    uint64_t records;         /* records moved by every compaction (meta compacted_records) */
    uint64_t bytes_before, bytes_after; /* events.db + WAL */
    double seconds_move, seconds_vacuum;
    char vacuum[16];          /* "incremental" | "full" | "none" */
} dr_compact_result;

dr_compact_params dr_compact_default_params(void);
dr_status dr_state_compact(const dr_compact_params *p, dr_compact_result *out, dr_error *err);

/* ---------------------------------------------------------------- explanations */

/*
 * Evidence-grounded explanations (docs/ARCHITECTURE.md, P-EXPLAIN in ../shared/PROTOCOL.md).
 * For a (user, item) pair the evidence is a short list of structured facts drawn from the model
 * and the data; a generator turns it into text that cites facts as [E1]..[Ek]; the verifier
 * accepts the text only when every cited id, title, attribute and neighbour is in the evidence,
 * and otherwise returns the template explanation, flagged.
 *
 * Threading: a dr_explainer is immutable after dr_explainer_create and may be shared by any
 * number of threads (the template generator, the evidence, the verifier and the JSON only read
 * it). Everything a request writes lives in a dr_explain_session: create one per thread (it
 * holds that thread's scorer, its llama.cpp context with the cached prompt prefix, or its HTTP
 * client) and never use one session from two threads at once. The explainer must outlive its
 * sessions; the model (and dataset / adapter, when given) must outlive the explainer.
 */
typedef enum {
    DR_FACT_HISTORY = 0, /* an item of the user's history close to the item: items[0],
                            value = cosine of the model's item latents, total = its rank */
    DR_FACT_NEIGHBOURS,  /* value = how many of the user's `total` nearest users (cosine of user
                            latents) took the item; users[] = the nearest of them */
    DR_FACT_ATTRIBUTE,   /* attr ("genre=Comedy") is on the item and on value of the user's
                            total most recent distinct items; items[] = those items */
    DR_FACT_MODALITY,    /* attr = modality name: of the user's items with that modality,
                            items[0] has features closest to the item's (value = cosine) */
    DR_FACT_TREND,       /* value = events of the item in the adapter's recent window of total
                            events; trend = (recent half - older half) / (count + 1) */
    DR_FACT_INFLUENCE,   /* an item of the history the model reads whose removal lowers the
                            item's score the most: items[0], value = score(history) -
                            score(history without any occurrence of items[0]) (> 0, exact,
                            by re-scoring), total = its rank by that drop */
    DR_FACT_KIND_COUNT
} dr_fact_kind;

const char *dr_fact_kind_name(dr_fact_kind k); /* "history", "neighbours", ... */

#define DR_FACT_MAX_ITEMS 8
#define DR_FACT_MAX_USERS 4
#define DR_EVIDENCE_MAX 12

typedef struct dr_fact {
    uint32_t id;            /* cited as [E<id>]; 1-based, in order */
    dr_fact_kind kind;
    double value;           /* see dr_fact_kind */
    double total;
    double trend;           /* DR_FACT_TREND only */
    const char *attr;       /* ATTRIBUTE: "key=value"; MODALITY: the modality name; else NULL */
    uint32_t n_items;
    uint32_t items[DR_FACT_MAX_ITEMS]; /* dense item ids */
    uint32_t n_users;
    uint32_t users[DR_FACT_MAX_USERS]; /* dense user ids */
} dr_fact;

typedef struct dr_evidence {
    uint32_t user, item;
    size_t n;
    dr_fact facts[DR_EVIDENCE_MAX];
} dr_evidence;

/* How the history facts are chosen (dr_explain_params.history). */
typedef enum {
    DR_HISTORY_AUTO = 0,    /* removal for a model that reads an ordered window of the history
                               (a sequence model: sasrec), similarity otherwise (mf) */
    DR_HISTORY_SIMILARITY,  /* DR_FACT_HISTORY: closest by cosine of the item latents */
    DR_HISTORY_REMOVAL      /* DR_FACT_INFLUENCE: largest score drop when removed (re-scored) */
} dr_history_mode;

typedef struct dr_explain_params {
    const char *generator;  /* "template" (default), "llama" or "http" */
    /* evidence */
    uint32_t k_history;     /* history items cited (3) */
    dr_history_mode history; /* how they are chosen (DR_HISTORY_AUTO) */
    uint32_t k_neighbours;  /* nearest users examined (20) */
    uint32_t recent;        /* most recent distinct history items for shared attributes (10) */
    uint32_t max_attrs;     /* attribute facts (3) */
    const dr_dataset *data; /* optional: modality facts (must have the model's catalogue) */
    void *adapter;          /* optional: an online adapter (src/adapter.h) of this model: its
                               window gives trend facts and h' the neighbours. Read without a
                               lock: call dr_explain only where no dr__adapter_update runs at
                               the same time (the adapter's writer thread, or a paused one). */
    /* generators */
    const char *llm_model;  /* llama: GGUF path */
    const char *llm_url;    /* http: base URL, e.g. http://127.0.0.1:8080 (/v1/chat/completions
                               is appended unless the URL already ends in it) */
    const char *llm_name;   /* http: the "model" field ("default") */
    const char *llm_key;    /* http: bearer token (NULL: none) */
    uint32_t max_tokens;    /* generated tokens at most (128) */
    uint32_t n_ctx;         /* llama: context size, capped by the model's training context;
                               http: the endpoint's context, capped by what llama-server's
                               /props reports (2048). Prompts are fitted into it less
                               max_tokens (the lowest-ranked facts dropped first). */
    int threads;            /* llama: CPU threads (1) */
    int grammar;            /* llama: constrain the output with the evidence grammar (1) */
    int http_grammar;       /* http: also send the grammar ("grammar" field, llama-server) (0) */
    int soft_tokens;        /* llama, experimental: the user and item latents as two embedding
                               positions after the instruction (docs/ARCHITECTURE.md) (0) */
    uint64_t seed;          /* sampling seed (42); temperature 0 = greedy */
    float temperature;      /* 0 (greedy) */
    uint32_t timeout_ms;    /* http: per attempt (10000) */
    uint32_t retries;       /* http: extra attempts after a failure (2) */
} dr_explain_params;

dr_explain_params dr_explain_default_params(void);

typedef struct dr_explainer dr_explainer;
typedef struct dr_explain_session dr_explain_session;

/* Builds the shared, immutable part: user latents for the neighbour facts, the verifier's
 * entity dictionary, and (llama) loads the GGUF model. m must be a dot-product model loaded
 * from a checkpoint (ids, titles, attributes and histories come from it). */
dr_status dr_explainer_create(const dr_model *m, const dr_explain_params *p,
                              dr_explainer **out, dr_error *err);
void dr_explainer_free(dr_explainer *x);
const char *dr_explainer_generator(const dr_explainer *x);

dr_status dr_explain_session_create(dr_explainer *x, dr_explain_session **out, dr_error *err);
void dr_explain_session_free(dr_explain_session *s);

/* Verification of one text against its evidence. */
typedef struct dr_verify_result {
    int ok;                 /* 1: every reference resolved and every sentence is cited */
    int hallucinated;       /* 1: a title, attribute or neighbour not in the evidence */
    uint32_t n_refs;        /* references found: [E#] citations and named entities */
    uint32_t n_grounded;    /* of those, found in the evidence */
    uint32_t cited;         /* bit f-1 set when [Ef] is cited */
    char reason[256];       /* the first problem ("" when ok) */
} dr_verify_result;

typedef struct dr_explain_timing {
    /* http: prefill_ms is 0 and decode_ms is the whole round trip, retries included */
    double evidence_ms, prompt_ms, prefill_ms, decode_ms, verify_ms, total_ms;
    uint32_t prompt_tokens;  /* tokens decoded for the prompt (after the cached prefix) */
    uint32_t cached_tokens;  /* prefix tokens reused from the session's cache */
    uint32_t gen_tokens;
} dr_explain_timing;

#define DR_EXPLAIN_TEXT_MAX 2048

typedef struct dr_explanation {
    dr_evidence evidence;
    char text[DR_EXPLAIN_TEXT_MAX];      /* what to show: verified text or the template */
    char generated[DR_EXPLAIN_TEXT_MAX]; /* the generator's raw output (template: = text) */
    const char *generator;  /* the generator asked for */
    int verified;           /* 1: `generated` passed the verifier and is `text` */
    int fallback;           /* 1: `text` is the template because generation or verification
                               failed (reason says why) */
    char reason[256];
    dr_verify_result check; /* the verifier's result on `generated` */
    uint32_t facts_dropped; /* LLM generators: facts dropped to fit the context (`evidence`
                               holds the rest, the ones the generator saw) */
    int no_fit;             /* 1: even the minimum prompt did not fit the context (fallback) */
    dr_explain_timing timing;
} dr_explanation;

/* Evidence only (no text). u and item are dense ids of the model's checkpoint. */
dr_status dr_explain_evidence(dr_explain_session *s, uint32_t u, uint32_t item,
                              dr_evidence *out, dr_error *err);
/* Evidence, generation, verification; on a generator failure the template is returned with
 * fallback = 1 and DR_OK. Errors only for bad arguments. */
dr_status dr_explain(dr_explain_session *s, uint32_t u, uint32_t item, dr_explanation *out,
                     dr_error *err);
/* The deterministic template text for ev; returns the length like snprintf. */
int dr_explain_template(const dr_explainer *x, const dr_evidence *ev, char *buf, size_t cap);
/* The prompt the generators receive (instruction, evidence tokens, request), with every fact
 * and no token budget; DR_LIMIT when it would exceed cap. *prefix_len: bytes of the
 * request-independent instruction prefix. (dr_explain fits the prompt to the generator's
 * context first: docs/ARCHITECTURE.md.) */
dr_status dr_explain_prompt(const dr_explainer *x, const dr_evidence *ev, char *buf, size_t cap,
                            size_t *prefix_len, dr_error *err);
/* The GBNF grammar of valid explanations for ev. */
dr_status dr_explain_grammar(const dr_explainer *x, const dr_evidence *ev, char *buf, size_t cap,
                             dr_error *err);
/* Verifies text (any bytes, at most DR_EXPLAIN_TEXT_MAX - 1 are read) against ev. */
void dr_explain_verify(const dr_explainer *x, const dr_evidence *ev, const char *text,
                       dr_verify_result *out);
/* 1 when fact f of ev is true by the model and data (recomputed from scratch, slow). */
int dr_explain_fact_valid(dr_explain_session *s, const dr_evidence *ev, size_t f);
/* The explanation as a JSON object; returns the length like snprintf. */
int dr_explanation_json(const dr_explainer *x, const dr_explanation *e, char *buf, size_t cap);

/* P-EXPLAIN: N (user, recommended item) pairs, seed 42, from the P-LOO evaluation users. */
typedef struct dr_explain_eval_params {
    uint32_t n;             /* pairs (1000) */
    uint32_t top;           /* the item is drawn among the user's top `top` recommendations (10) */
    uint64_t seed;          /* 42 */
    dr_progress_fn progress;
    void *progress_ud;
} dr_explain_eval_params;

dr_explain_eval_params dr_explain_eval_default_params(void);

typedef struct dr_explain_eval_result {
    char dataset[64];
    char generator[16];
    uint32_t n;
    double grounding_precision, hallucination_rate, hallucination_rate_before_verify;
    double evidence_validity, deletion_faithfulness;
    double verified_rate;   /* generated texts accepted by the verifier */
    size_t n_facts, n_refs;
    /* medians over the pairs, milliseconds */
    double evidence_ms, prompt_ms, prefill_ms, decode_ms, verify_ms, total_ms;
    double prompt_tok_s, gen_tok_s; /* totals: tokens / seconds */
    double no_fit_rate;     /* pairs whose minimum prompt did not fit the context */
    double facts_dropped;   /* mean facts dropped per pair to fit it */
    uint32_t prompt_tokens_max; /* the longest prompt decoded (cached prefix included) */
    double seconds;
} dr_explain_eval_result;

dr_status dr_eval_explain(dr_explainer *x, const dr_explain_eval_params *p,
                          dr_explain_eval_result *out, dr_error *err);
int dr_explain_eval_json(const dr_explain_eval_result *r, char *buf, size_t cap);

/* ---------------------------------------------------------------- LLM alignment and reranking */

/*
 * Alignment (llm_align.c): a small map f from the base's latent space (d) into an LLM's
 * input-embedding space (n_embd), learned without backpropagating through the LLM. Each item's
 * target is the mean of the GGUF's token-embedding rows of its title's tokens (read through the
 * gguf API, dequantised whatever the tensor type); the loss is the regression |f(z_i) - t_i|^2
 * plus an in-batch contrastive term (InfoNCE over cosines). Users go through the same map from
 * h. The map records the GGUF's hash and refuses another model.
 */
typedef struct dr_align dr_align;

typedef struct dr_align_params {
    const char *llm_model;  /* the GGUF whose token embeddings are the targets (required) */
    uint32_t hidden;        /* 0: linear map; > 0: 2-layer MLP with this many tanh units (0) */
    uint32_t epochs;        /* passes over the training items (40) */
    uint32_t batch;         /* items per step; the other items of the batch are the
                               contrastive negatives (256) */
    float lr;               /* Adam step (3e-3) */
    float tau;              /* contrastive temperature on cosines (0.1) */
    float w_con;            /* weight of the contrastive term (1) */
    float holdout;          /* share of the titled items kept out of training, to report
                               alignment quality on items the map never saw (0.1) */
    uint64_t seed;          /* shuffles, holdout, initialisation (42) */
} dr_align_params;
dr_align_params dr_align_default_params(void);

typedef struct dr_align_report {
    uint32_t n_items, n_titled, n_train, n_holdout, d, n_embd;
    double loss_first, loss_last;   /* mean training loss of the first and the last epoch */
    double mse_first, mse_last;     /* its regression part */
    /* Alignment quality: Recall@10 of each item's own target among all titled items' targets
     * (cosine after subtracting the mean target, pessimistic ties), for training and held-out
     * items; random = 10 / n_titled */
    double recall10_train, recall10_holdout, recall10_random;
    double seconds;
} dr_align_report;

/* Learns the map for model m's item latents z (dot-product models only) and the titles of
 * ds (NULL: the checkpoint's titles). rep may be NULL. */
dr_status dr_align_fit(const dr_model *m, const dr_dataset *ds, const dr_align_params *p,
                       dr_align **out, dr_align_report *rep, dr_error *err);
void dr_align_free(dr_align *a);
dr_status dr_align_save(const dr_align *a, const char *path, dr_error *err);
dr_status dr_align_load(const char *path, dr_align **out, dr_error *err);
/* DR_ARG naming both hashes when gguf_path is not the model the map was learned for. */
dr_status dr_align_check_llm(const dr_align *a, const char *gguf_path, dr_error *err);
/* DR_ARG when the map's input dimension is not m's latent dimension. */
dr_status dr_align_check_model(const dr_align *a, const dr_model *m, dr_error *err);
uint32_t dr_align_dim(const dr_align *a);       /* d */
uint32_t dr_align_n_embd(const dr_align *a);    /* the LLM's n_embd */
uint64_t dr_align_llm_hash(const dr_align *a);
/* out (n_embd) = f(x), x (d) a user or item latent. */
void dr_align_project(const dr_align *a, const float *x, float *out);
/* lambda of base + lambda * LLM, chosen on validation targets (chosen = 0: none recorded). */
float dr_align_lambda(const dr_align *a, int *chosen);
void dr_align_set_lambda(dr_align *a, float lambda);
const dr_align_report *dr_align_get_report(const dr_align *a);

/*
 * LLM reranking (llm_rank.c): candidates scored by the LLM's length-normalised log-likelihood
 * of their titles after a prompt: the fixed instruction (kept in the KV cache), the user's soft
 * token, the recent history as titles each followed by its item soft token. The candidates
 * share the prompt's KV cache as parallel sequences: one decode for all of them.
 */
typedef struct dr_llm_ranker dr_llm_ranker;

typedef struct dr_llm_rank_params {
    const char *llm_model;  /* GGUF path (in-process llama.cpp); NULL with http_url */
    const char *http_url;   /* instead of llm_model: a llama-server base URL; titles only (soft
                               tokens cannot cross a text API), one /completion per candidate
                               with the prompt cached by the server */
    const char *http_api;   /* HTTP: "llama" (llama-server's /completion, the default) or
                               "openai" (/v1/completions with logprobs) */
    uint32_t timeout_ms;    /* HTTP: per attempt (10000) */
    uint32_t n_ctx;         /* context tokens of one sequence: the prompt and one title (512) */
    uint32_t max_cand;      /* most candidates per request, = parallel sequences (32) */
    uint32_t history;       /* most recent history items shown (5; fewer when the prompt would
                               not fit n_ctx) */
    uint32_t title_tokens;  /* a title is cut to this many tokens (24) */
    int threads;            /* llama.cpp threads (1) */
    int unified_kv;         /* 0: a stream of n_ctx cells per sequence, the prompt's cells copied
                               into each (attention reads only its own); 1: one cache whose
                               prompt cells every sequence shares (memory n_ctx + max_cand x
                               title_tokens cells instead of (max_cand + 1) x n_ctx) (0) */
    int flash_attn;         /* 1: llama.cpp's choice; 0: off (its CPU kernel pads the cache to
                               256 cells, which dominates short prompts) (0) */
} dr_llm_rank_params;
dr_llm_rank_params dr_llm_rank_default_params(void);

/* Titles come from ds when given, else from m's checkpoint. align (may be NULL: titles only,
 * no soft tokens) must have been learned for this GGUF and m's latent dimension. */
dr_status dr_llm_ranker_create(const dr_model *m, const dr_dataset *ds, const dr_align *align,
                               const dr_llm_rank_params *p, dr_llm_ranker **out, dr_error *err);
void dr_llm_ranker_free(dr_llm_ranker *r);

typedef struct dr_llm_request {
    const float *user;          /* (d) the user's latent (the adapter's h'_u when serving), or
                                   NULL: no soft tokens */
    const float *items;         /* item latents (rows of `stride` floats: the adapter's z'), or
                                   NULL: no item soft tokens */
    size_t stride;
    const uint32_t *hist;       /* the user's time-ordered history; the last ones are shown */
    size_t n_hist;
    const uint32_t *cand;       /* items to score */
    size_t n_cand;
} dr_llm_request;

/* out (n_cand): mean log-probability per title token of each candidate after the prompt. */
dr_status dr_llm_rank_score(dr_llm_ranker *r, const dr_llm_request *q, float *out, dr_error *err);
/* Slow twin: each candidate decoded on its own after the prompt (tests, benchmarks). */
dr_status dr_llm_rank_score_slow(dr_llm_ranker *r, const dr_llm_request *q, float *out,
                                 dr_error *err);
/* Tokens of the last prompt (instruction + request part), for benchmarks. */
uint32_t dr_llm_rank_prompt_tokens(const dr_llm_ranker *r);

/* P-LLM (../shared/PROTOCOL.md), one run: the base, the LLM on titles only, the LLM with the
 * aligned soft tokens and base + lambda * LLM over (a) the true next item + 19 items the user
 * never took (seed 42) and (b) the base's top n_top reranked, full ranking. */
typedef struct dr_llm_eval_params {
    uint32_t n_neg;         /* 19 */
    uint32_t n_top;         /* 20 */
    uint32_t max_users;     /* 0: every user with a target */
    int which;              /* 0: test targets, 1: validation targets */
    float lambda;           /* weight of the LLM score in the combined ranker */
    const float *grid;      /* when non-NULL (n_grid values): lambda is chosen on these by
                               full-ranking NDCG@10 of the reranked top n_top (use which = 1);
                               only that part calls the LLM: the 1 + n_neg LLM columns are 0 */
    size_t n_grid;
    uint64_t seed;          /* 42 */
} dr_llm_eval_params;
dr_llm_eval_params dr_llm_eval_default_params(void);

typedef struct dr_llm_eval_result {
    uint32_t n_users;
    /* 1 + n_neg candidates: Hit@1, NDCG@5 */
    double base_hit1, base_ndcg5, title_hit1, title_ndcg5, soft_hit1, soft_ndcg5, comb_hit1,
        comb_ndcg5;
    /* full ranking, top n_top of the base reranked by the combined score: Hit@10, NDCG@10 */
    double full_base_hit10, full_base_ndcg10, full_comb_hit10, full_comb_ndcg10;
    float lambda;           /* the weight used (the chosen one with a grid) */
    double grid_ndcg10[16]; /* validation NDCG@10 per grid value (first 16) */
    double seconds;
} dr_llm_eval_result;

/* r scores with soft tokens when it was created with an alignment (else "soft" = "title"). */
dr_status dr_eval_llm(const dr_dataset *ds, const dr_split *split, const dr_model *m,
                      dr_llm_ranker *r, const dr_llm_eval_params *p, dr_llm_eval_result *out,
                      dr_error *err);

#ifdef __cplusplus
}
#endif
#endif /* DYNREC_H */
