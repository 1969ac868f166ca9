/*
 * tune.c - the baselines every model is held to (dr_eval_baselines) and the search over model
 * kinds and their settings (dr_tune_run, `dynrec tune`).
 *
 * DESIGN
 * Space: one table, DR_TUNE_SPACE below, a row per (kind, setting) with its values; a kind
 * with no row is tried at its defaults only, and adding a kind to the search is its rows here.
 * A setting the caller's base parameters already set (not its default) is fixed to that value;
 * the `epochs` row is not drawn: it is the kind's ladder of rungs (cumulative epochs).
 * Candidates are drawn uniformly without replacement from the product of the rows' values.
 * Search: asynchronous successive halving (ASHA: Li et al., "A System for Massively Parallel
 * Hyperparameter Tuning", MLSys 2020) run one trial at a time. Before every trial: if some
 * candidate that ran rung r (and no higher) is among the best floor(n_r / eta) of the n_r
 * results of its kind at rung r, the best such is promoted (upper rungs first); else a new
 * candidate is drawn, kinds taking turns. Why successive halving: SASRec's epochs are the cost
 * (2.5-4 s an epoch on ml-small, 12-16 s on amazon-mtv, docs/BENCH.md), and a poor setting
 * shows within a few epochs, so most epochs go to the settings that look best early. Why the
 * asynchronous form: the synchronous one runs all of rung 0 before promoting anything, so a
 * budget of minutes never reaches an upper rung; here a promotion follows every eta results.
 * Plain random search was rejected (every candidate pays a full training), and so was a model
 * of the response (Bayesian optimisation): at tens of trials it adds code, not accuracy.
 * Continuation: a promoted candidate trains on from its rung's model (dr_model_params.init; a
 * model fitted in memory is matched row for row) for the epochs up to the next rung, with seed
 * base.seed + rung so its later epochs do not replay the shuffles of its first ones; no early
 * stopping inside a fit (the rung's validation is the stopping rule), optimiser state restarts
 * at each rung. Rung 0 of a candidate is exactly `dynrec train` with its settings and
 * --epochs RUNG0 --no-early-stop. At most `keep` models wait for promotion per kind and rung.
 * Scoring: NDCG@10, full ranking with the context excluded, on the validation targets
 * (dr_eval_split, which = 1); the test targets are never read. The baselines (pop, itemknn at
 * their defaults) are evaluated first and compete with every candidate.
 * Determinism: the trials are a function of the seed and the data only (draws come from one
 * seeded stream, promotions from validation figures, which do not depend on the thread count);
 * the clock decides only where the search stops. It stops before a trial its estimate says
 * would not end within the budget (the candidate's own seconds per epoch and per validation,
 * or, for a new one, the slowest its kind has shown); it never skips one and goes on, so any
 * two runs with the same seed agree on every trial they both ran.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "model.h"
#include "rng.h"

/* X(kind, setting as the CLI spells it, field of dr_model_params, U32 | F32, values). */
#define DR_TUNE_SPACE(X)                                                  \
    X("sasrec",  "epochs",   epochs,   U32, "5,20,80")                    \
    X("sasrec",  "dim",      dim,      U32, "32,48,64,96")                \
    X("sasrec",  "max-len",  max_len,  U32, "50,100,200")                 \
    X("sasrec",  "blocks",   blocks,   U32, "1,2")                        \
    X("sasrec",  "dropout",  dropout,  F32, "0.1,0.2,0.3,0.5")            \
    X("sasrec",  "lr",       lr,       F32, "0.0003,0.001,0.003")         \
    X("mf",      "epochs",   epochs,   U32, "20,60,180")                  \
    X("mf",      "dim",      dim,      U32, "32,64,128")                  \
    X("mf",      "lr",       lr,       F32, "0.01,0.03,0.1,0.3")          \
    X("mf",      "l2",       l2,       F32, "0.001,0.003,0.01,0.03")      \
    X("itemknn", "knn-last", knn_last, U32, "5,10,20,50,100,200")

enum { T_U32, T_F32 };

typedef struct space_row {
    const char *kind, *name;
    size_t off; /* into dr_model_params */
    int type;
    const char *values;
} space_row;

#define DR_TUNE_ROW(kind, name, field, type, values) \
    {kind, name, offsetof(dr_model_params, field), T_##type, values},
static const space_row g_space[] = {DR_TUNE_SPACE(DR_TUNE_ROW)};
#undef DR_TUNE_ROW

static const char *const g_baselines[DR_BASELINES] = {"pop", "itemknn"};
static const char g_default_models[] = "sasrec,mf,itemknn,pop";

/* ------------------------------------------------------------------ baselines */

const char *dr_baseline_name(size_t k) { return k < DR_BASELINES ? g_baselines[k] : NULL; }

static bool is_baseline_kind(const char *name) {
    for (size_t k = 0; k < DR_BASELINES; k++)
        if (!strcmp(g_baselines[k], name)) return true;
    return false;
}

/* Baseline k at its defaults, fitted on sp and evaluated with ep into *r; *m keeps the model
 * (NULL: freed). */
static dr_status baseline_run(const dr_dataset *ds, const dr_split *sp, size_t k,
                              const dr_eval_params *ep, dr_model **m, dr_eval_result *r,
                              dr_error *err) {
    dr_model_params mp = dr_model_default_params();
    mp.name = g_baselines[k];
    mp.threads = ep->threads;
    dr_model *x = NULL;
    dr_status st = dr_model_fit(ds, sp, &mp, &x, err);
    if (st == DR_OK) st = dr_eval_split(ds, sp, x, ep, r, err);
    if (st != DR_OK || !m) {
        dr_model_free(x);
        x = NULL;
    }
    if (m) *m = x;
    return st;
}

dr_status dr_eval_baselines(const dr_dataset *ds, const dr_split *sp, const dr_eval_params *p,
                            dr_eval_result out[DR_BASELINES], dr_error *err) {
    dr_eval_params def = dr_eval_default_params();
    if (!out) return dr__fail(err, DR_ARG, "dr_eval_baselines: out is NULL");
    if (!p) p = &def;
    for (size_t k = 0; k < DR_BASELINES; k++) {
        dr_status st = baseline_run(ds, sp, k, p, NULL, &out[k], err);
        if (st != DR_OK) return dr__fail_wrap(err, st, "baseline %s", g_baselines[k]);
    }
    return DR_OK;
}

/* ------------------------------------------------------------------ the space */

const char *dr_tune_space_at(size_t k, const char **setting, const char **values) {
    if (k >= DR_ARRAY_LEN(g_space)) return NULL;
    if (setting) *setting = g_space[k].name;
    if (values) *values = g_space[k].values;
    return g_space[k].kind;
}

static bool is_epochs(const space_row *r) { return r->off == offsetof(dr_model_params, epochs); }

static double field_get(const dr_model_params *mp, const space_row *r) {
    const char *at = (const char *)mp + r->off;
    if (r->type == T_U32) return *(const uint32_t *)at;
    return *(const float *)at;
}

static void field_set(dr_model_params *mp, const space_row *r, double v) {
    char *at = (char *)mp + r->off;
    if (r->type == T_U32) *(uint32_t *)at = (uint32_t)v;
    else *(float *)at = (float)v;
}

/* Whether mp sets row r's field to something other than the default's. */
static bool field_given(const dr_model_params *mp, const dr_model_params *def, const space_row *r) {
    size_t n = r->type == T_U32 ? sizeof(uint32_t) : sizeof(float);
    return memcmp((const char *)mp + r->off, (const char *)def + r->off, n) != 0;
}

static void field_format(const space_row *r, double v, char *buf, size_t cap) {
    if (r->type == T_U32) snprintf(buf, cap, "%u", (uint32_t)v);
    else snprintf(buf, cap, "%g", (double)(float)v);
}

/* Row r's values into v[]; DR_INTERNAL for a malformed row (the table is code). */
static dr_status row_values(const space_row *r, double *v, uint32_t *n, dr_error *err) {
    *n = 0;
    for (const char *a = r->values; *a;) {
        const char *c = strchr(a, ',');
        size_t len = c ? (size_t)(c - a) : strlen(a);
        double x;
        if (*n >= DR_TUNE_MAX_VALUES || !dr__parse_f64(a, len, &x) || x < 0 ||
            (r->type == T_U32 && (x != (double)(uint32_t)x)))
            return dr__fail(err, DR_INTERNAL, "tune: bad values '%s' of %s %s", r->values,
                           r->kind, r->name);
        v[(*n)++] = x;
        a += len + (c ? 1 : 0);
    }
    if (!*n) return dr__fail(err, DR_INTERNAL, "tune: %s %s has no values", r->kind, r->name);
    return DR_OK;
}

/* ------------------------------------------------------------------ state */

typedef struct tune_dim {   /* one row of a kind, searched (n values) or fixed (n = 1) */
    const space_row *row;
    uint32_t n;
    double v[DR_TUNE_MAX_VALUES];
} tune_dim;

typedef struct tune_kind {
    const char *name;
    bool baseline;                     /* pop, itemknn: fitted from the data */
    tune_dim dim[DR_TUNE_MAX_SETTINGS];
    uint32_t n_dims;
    uint32_t rung_epochs[DR_TUNE_MAX_RUNGS]; /* cumulative epochs of each rung */
    uint32_t n_rungs;                  /* 1 and rung_epochs[0] = 0: no epochs row */
    uint64_t n_configs;                /* product of dim[].n */
    DR_VEC(uint64_t) drawn;            /* configurations drawn so far */
    char defaults[256];                /* baseline kinds: the settings of the baseline */
    double sec_epoch, sec_fit, sec_eval; /* the slowest seen, for a new candidate's estimate */
} tune_kind;

typedef struct tune_cand {
    uint32_t kind, id;
    uint64_t cfg;
    int rung;                          /* highest rung run, -1 before the first */
    bool stopped;                      /* failed, or at the top rung */
    double score[DR_TUNE_MAX_RUNGS];   /* validation NDCG@10 per rung run, -1: failed */
    double sec_epoch, sec_fit, sec_eval; /* its own last trial's, for its promotion */
    dr_model *model;                   /* its model at `rung` while it waits for promotion */
} tune_cand;

typedef struct rank_item {
    double score;
    uint32_t id, idx;
} rank_item;

struct dr_tune {
    const dr_dataset *ds;
    const dr_split *sp;
    dr_tune_params p;
    DR_VEC(dr_tune_trial) trials;
    DR_VEC(tune_kind) kinds;
    DR_VEC(tune_cand) cands;
    DR_VEC(rank_item) order;           /* promotion scratch */
    dr_rng rng;
    uint32_t turn, n_search;
    size_t best, best_trained;         /* trial indices, SIZE_MAX: none */
    dr_model *best_model;
    const char *stopped;
    char stop_detail[160];             /* why, in words */
    double t_start;
};

static tune_kind *kind_of(dr_tune *t, const tune_cand *c) { return &t->kinds.a[c->kind]; }

/* Value index of dim j in configuration cfg (mixed radix, dim 0 fastest). */
static uint32_t cfg_index(const tune_kind *k, uint64_t cfg, uint32_t j) {
    for (uint32_t i = 0; i < j; i++) cfg /= k->dim[i].n;
    return (uint32_t)(cfg % k->dim[j].n);
}

/* The parameters of configuration cfg of k: base with k's rows set. */
static dr_model_params cfg_params(const tune_kind *k, uint64_t cfg, const dr_model_params *base) {
    dr_model_params mp = *base;
    mp.name = k->name;
    for (uint32_t j = 0; j < k->n_dims; j++)
        field_set(&mp, k->dim[j].row, k->dim[j].v[cfg_index(k, cfg, j)]);
    return mp;
}

/* The values mp gives kind's rows (its epochs row aside) as tr's settings. */
static void settings_from(const char *kind, const dr_model_params *mp, dr_tune_trial *tr) {
    tr->n_settings = 0;
    for (size_t r = 0; r < DR_ARRAY_LEN(g_space) && tr->n_settings < DR_TUNE_MAX_SETTINGS; r++) {
        const space_row *row = &g_space[r];
        if (strcmp(row->kind, kind) || is_epochs(row)) continue;
        dr_tune_setting *s = &tr->settings[tr->n_settings++];
        snprintf(s->name, sizeof s->name, "%s", row->name);
        field_format(row, field_get(mp, row), s->value, sizeof s->value);
    }
}

size_t dr_tune_settings_text(const dr_tune_trial *t, char *buf, size_t cap) {
    size_t n = 0;
    if (cap) buf[0] = 0;
    for (uint32_t j = 0; t && j < t->n_settings && n < cap; j++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s=%s", j ? " " : "", t->settings[j].name,
                              t->settings[j].value);
    return DR_MIN(n, cap ? cap - 1 : 0);
}

/* The settings text of configuration cfg of k. */
static void cfg_text(const dr_tune *t, const tune_kind *k, uint64_t cfg, char *buf, size_t cap) {
    const dr_model_params mp = cfg_params(k, cfg, &t->p.base);
    dr_tune_trial tr;
    settings_from(k->name, &mp, &tr);
    dr_tune_settings_text(&tr, buf, cap);
}

static dr_status kind_add(dr_tune *t, const char *name, dr_error *err) {
    const dr_model_params def = dr_model_default_params();
    if (!dr__model_kind(name)) {
        char known[256] = "";
        const char *kn;
        for (size_t k = 0; (kn = dr_model_kind_at(k, NULL)); k++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", k ? ", " : "", kn);
        return dr__fail(err, DR_ARG, "tune: unknown model '%s' (known: %s)", name, known);
    }
    for (size_t k = 0; k < t->kinds.n; k++)
        if (!strcmp(t->kinds.a[k].name, name))
            return dr__fail(err, DR_ARG, "tune: model '%s' is listed twice", name);
    tune_kind k;
    memset(&k, 0, sizeof k);
    k.name = dr__model_kind(name)->name;
    k.baseline = is_baseline_kind(name);
    k.n_rungs = 1;
    k.n_configs = 1;
    for (size_t r = 0; r < DR_ARRAY_LEN(g_space); r++) {
        const space_row *row = &g_space[r];
        if (strcmp(row->kind, name)) continue;
        double v[DR_TUNE_MAX_VALUES];
        uint32_t n;
        dr_status st = row_values(row, v, &n, err);
        if (st != DR_OK) return st;
        const bool given = field_given(&t->p.base, &def, row);
        if (is_epochs(row)) {
            if (given) {
                k.rung_epochs[0] = t->p.base.epochs;
                continue;
            }
            if (n > DR_TUNE_MAX_RUNGS) return dr__fail(err, DR_INTERNAL, "tune: %s has too many rungs", name);
            for (uint32_t j = 0; j < n; j++) {
                k.rung_epochs[j] = (uint32_t)v[j];
                if (!v[j] || (j && v[j] <= v[j - 1]))
                    return dr__fail(err, DR_INTERNAL, "tune: %s epochs must increase", name);
            }
            k.n_rungs = n;
            continue;
        }
        if (k.n_dims >= DR_TUNE_MAX_SETTINGS)
            return dr__fail(err, DR_INTERNAL, "tune: %s has too many settings", name);
        tune_dim *d = &k.dim[k.n_dims++];
        d->row = row;
        if (given) {
            d->n = 1;
            d->v[0] = field_get(&t->p.base, row);
        } else {
            d->n = n;
            memcpy(d->v, v, n * sizeof *v);
        }
        k.n_configs *= d->n;
    }
    if (k.baseline) { /* a candidate with the baseline's settings would repeat it */
        dr_tune_trial dflt;
        settings_from(k.name, &def, &dflt);
        dr_tune_settings_text(&dflt, k.defaults, sizeof k.defaults);
    }
    if (dr_vec_push(&t->kinds, k)) return dr__fail(err, DR_NOMEM, "tune: out of memory");
    return DR_OK;
}

static dr_status kinds_init(dr_tune *t, dr_error *err) {
    const char *list = t->p.models ? t->p.models : g_default_models;
    for (const char *a = list;;) {
        const char *c = strchr(a, ',');
        size_t len = c ? (size_t)(c - a) : strlen(a);
        char name[64];
        if (!len || len >= sizeof name)
            return dr__fail(err, DR_ARG, "tune: bad model list '%s' (names separated by commas)", list);
        memcpy(name, a, len);
        name[len] = 0;
        dr_status st = kind_add(t, name, err);
        if (st != DR_OK) return st;
        if (!c) break;
        a = c + 1;
    }
    return DR_OK;
}

/* A model no candidate and not the best refer to is freed. */
static void release(dr_tune *t, dr_model *m) {
    if (!m || m == t->best_model) return;
    for (size_t k = 0; k < t->cands.n; k++)
        if (t->cands.a[k].model == m) return;
    dr_model_free(m);
}

/* ------------------------------------------------------------------ trials */

static bool better(const dr_tune *t, const dr_tune_trial *tr, size_t cur) {
    return tr->status == DR_OK &&
           (cur == SIZE_MAX || tr->valid.full10.ndcg > t->trials.a[cur].valid.full10.ndcg);
}

/* Appends tr (its model m, may be NULL) and updates the best; t owns m afterwards either way
 * (a model nothing keeps is freed). */
static dr_status record(dr_tune *t, const dr_tune_trial *tr, dr_model *m, dr_error *err) {
    if (dr_vec_push(&t->trials, *tr)) {
        release(t, m);
        return dr__fail(err, DR_NOMEM, "tune: out of memory");
    }
    const size_t at = t->trials.n - 1;
    if (tr->trained && better(t, tr, t->best_trained)) t->best_trained = at;
    if (better(t, tr, t->best)) {
        dr_model *old = t->best_model;
        t->best = at;
        t->best_model = m;
        release(t, old);
    } else {
        release(t, m);
    }
    dr__log(DR_LOG_INFO, "tune: trial %u %s rung %u valid NDCG@10 %.5f", tr->id, tr->model,
            tr->rung, tr->valid.full10.ndcg);
    if (t->p.on_trial)
        t->p.on_trial(t->p.on_trial_ud, &t->trials.a[at], dr_tune_best(t),
                      dr__now_seconds() - t->t_start);
    return DR_OK;
}

static dr_eval_params valid_params(const dr_tune *t) {
    dr_eval_params ep = dr_eval_default_params();
    ep.threads = t->p.base.threads;
    ep.which = 1;
    return ep;
}

static dr_status run_baselines(dr_tune *t, dr_error *err) {
    const dr_eval_params ep = valid_params(t);
    for (size_t k = 0; k < DR_BASELINES; k++) {
        dr_tune_trial tr;
        memset(&tr, 0, sizeof tr);
        tr.baseline = 1;
        snprintf(tr.model, sizeof tr.model, "%s", g_baselines[k]);
        const dr_model_params def = dr_model_default_params();
        settings_from(g_baselines[k], &def, &tr);
        const double t0 = dr__now_seconds();
        dr_model *m = NULL;
        dr_status st = baseline_run(t->ds, t->sp, k, &ep, &m, &tr.valid, err);
        if (st != DR_OK) return dr__fail_wrap(err, st, "tune: baseline %s", g_baselines[k]);
        tr.seconds = dr__now_seconds() - t0;
        if ((st = record(t, &tr, m, err)) != DR_OK) return st;
    }
    return DR_OK;
}

/* Draws a configuration of k not drawn before (and, for a baseline kind, not the baseline):
 * 1 with *cfg, 0 when none is left, -1 out of memory. */
static int draw(dr_tune *t, tune_kind *k, uint64_t *cfg) {
    while (k->drawn.n < k->n_configs) {
        uint64_t c = dr__rng_below(&t->rng, k->n_configs);
        bool seen = false;
        for (size_t j = 0; j < k->drawn.n && !seen; j++) seen = k->drawn.a[j] == c;
        if (seen) continue;
        if (dr_vec_push(&k->drawn, c)) return -1;
        if (k->baseline) {
            char s[256];
            cfg_text(t, k, c, s, sizeof s);
            if (!strcmp(s, k->defaults)) continue;
        }
        *cfg = c;
        return 1;
    }
    return 0;
}

/* A new candidate from the next kind in turn that has one left; *out NULL when none has. */
static dr_status new_cand(dr_tune *t, size_t *out, dr_error *err) {
    *out = SIZE_MAX;
    for (size_t tries = 0; tries < t->kinds.n; tries++) {
        const uint32_t ki = (uint32_t)((t->turn + tries) % t->kinds.n);
        uint64_t cfg = 0;
        int r = draw(t, &t->kinds.a[ki], &cfg);
        if (r < 0) return dr__fail(err, DR_NOMEM, "tune: out of memory");
        if (r == 0) continue;
        t->turn = ki + 1;
        tune_cand c;
        memset(&c, 0, sizeof c);
        c.kind = ki;
        c.id = (uint32_t)t->cands.n + 1;
        c.cfg = cfg;
        c.rung = -1;
        if (dr_vec_push(&t->cands, c) || dr_vec_reserve(&t->order, t->cands.n))
            return dr__fail(err, DR_NOMEM, "tune: out of memory");
        *out = t->cands.n - 1;
        return DR_OK;
    }
    return DR_OK;
}

static int rank_cmp(const void *a, const void *b) {
    const rank_item *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Candidates of kind ki that ran rung r, best first, into t->order. */
static void rank_rung(dr_tune *t, uint32_t ki, int r) {
    t->order.n = 0;
    for (size_t j = 0; j < t->cands.n; j++) {
        const tune_cand *c = &t->cands.a[j];
        if (c->kind == ki && c->rung >= r)
            t->order.a[t->order.n++] = (rank_item){c->score[r], c->id, (uint32_t)j};
    }
    if (t->order.n > 1) qsort(t->order.a, t->order.n, sizeof *t->order.a, rank_cmp);
}

/* The candidate ASHA promotes now (SIZE_MAX: none). */
static size_t promotable(dr_tune *t) {
    for (uint32_t ki = 0; ki < t->kinds.n; ki++) {
        const tune_kind *k = &t->kinds.a[ki];
        for (int r = (int)k->n_rungs - 2; r >= 0; r--) {
            rank_rung(t, ki, r);
            const size_t top = t->order.n / t->p.eta;
            for (size_t i = 0; i < top; i++) {
                const tune_cand *c = &t->cands.a[t->order.a[i].idx];
                if (c->rung == r && !c->stopped && c->model) return t->order.a[i].idx;
            }
        }
    }
    return SIZE_MAX;
}

/* At most p.keep models wait at rung r of kind ki: the worst-ranked beyond that are dropped. */
static void keep_cap(dr_tune *t, uint32_t ki, int r) {
    rank_rung(t, ki, r);
    size_t kept = 0;
    for (size_t i = 0; i < t->order.n; i++) {
        tune_cand *c = &t->cands.a[t->order.a[i].idx];
        if (c->rung != r || !c->model) continue;
        if (++kept <= t->p.keep) continue;
        dr_model *m = c->model;
        c->model = NULL;
        release(t, m);
    }
}

/* Seconds the next trial of candidate ci at rung r should take. */
static double estimate(dr_tune *t, size_t ci, int r) {
    const tune_cand *c = &t->cands.a[ci];
    const tune_kind *k = kind_of(t, c);
    const bool fresh = c->rung < 0;
    const double per_epoch = fresh ? k->sec_epoch : c->sec_epoch,
                 fit = fresh ? k->sec_fit : c->sec_fit, ev = fresh ? k->sec_eval : c->sec_eval;
    if (k->rung_epochs[0] == 0) return fit + ev;
    return per_epoch * (k->rung_epochs[r] - (r ? k->rung_epochs[r - 1] : 0)) + ev;
}

static dr_status run_trial(dr_tune *t, size_t ci, int r, dr_error *err) {
    tune_cand *c = &t->cands.a[ci];
    tune_kind *k = kind_of(t, c);
    dr_tune_trial tr;
    memset(&tr, 0, sizeof tr);
    tr.id = ++t->n_search;
    tr.candidate = c->id;
    tr.rung = (uint32_t)r;
    tr.trained = !k->baseline;
    snprintf(tr.model, sizeof tr.model, "%s", k->name);
    dr_model_params mp = cfg_params(k, c->cfg, &t->p.base);
    settings_from(k->name, &mp, &tr);
    mp.on_epoch = NULL;
    mp.progress = NULL;
    mp.init = NULL;
    uint32_t epochs = 0;
    if (k->rung_epochs[0]) { /* a ladder (or a fixed --epochs): no early stopping inside */
        epochs = k->rung_epochs[r] - (r ? k->rung_epochs[r - 1] : 0);
        mp.epochs = epochs;
        mp.eval_every = UINT32_MAX;
        mp.seed = t->p.base.seed + (uint64_t)r;
        mp.init = r ? c->model : NULL;
        tr.epochs = k->rung_epochs[r];
    }
    const dr_eval_params ep = valid_params(t);
    const double t0 = dr__now_seconds();
    dr_model *m = NULL;
    dr_error fe = {0};
    dr_status st = dr_model_fit(t->ds, t->sp, &mp, &m, &fe);
    const double t_fit = dr__now_seconds() - t0;
    if (st == DR_RANGE) { /* this setting diverged: a failed trial, the search goes on */
        tr.status = st;
        snprintf(tr.error, sizeof tr.error, "%s", fe.msg);
    } else if (st != DR_OK) {
        if (err) *err = fe;
        return dr__fail_wrap(err, st, "tune: trial %u (%s)", tr.id, k->name);
    } else if ((st = dr_eval_split(t->ds, t->sp, m, &ep, &tr.valid, err)) != DR_OK) {
        dr_model_free(m);
        return st;
    }
    tr.seconds = dr__now_seconds() - t0;

    c->rung = r;
    c->score[r] = tr.status == DR_OK ? tr.valid.full10.ndcg : -1.0;
    c->stopped = tr.status != DR_OK || r + 1 >= (int)k->n_rungs;
    c->sec_fit = t_fit;
    c->sec_epoch = epochs ? t_fit / epochs : 0;
    c->sec_eval = tr.seconds - t_fit;
    k->sec_fit = DR_MAX(k->sec_fit, c->sec_fit);
    k->sec_epoch = DR_MAX(k->sec_epoch, c->sec_epoch);
    k->sec_eval = DR_MAX(k->sec_eval, c->sec_eval);
    dr_model *old = c->model; /* the previous rung's, continued from */
    c->model = c->stopped ? NULL : m;
    release(t, old);
    if ((st = record(t, &tr, m, err)) != DR_OK) return st;
    if (!c->stopped) keep_cap(t, c->kind, r);
    return DR_OK;
}

/* ------------------------------------------------------------------ the search */

dr_tune_params dr_tune_default_params(void) {
    dr_tune_params p;
    memset(&p, 0, sizeof p);
    p.base = dr_model_default_params();
    p.eta = 3;
    p.keep = 16;
    return p;
}

static dr_status search(dr_tune *t, dr_error *err) {
    dr_status st;
    for (;;) {
        if (t->p.max_trials && t->n_search >= t->p.max_trials) {
            t->stopped = "trials";
            return DR_OK;
        }
        const double elapsed = dr__now_seconds() - t->t_start;
        if (t->p.budget_seconds > 0 && elapsed >= t->p.budget_seconds) {
            t->stopped = "budget";
            snprintf(t->stop_detail, sizeof t->stop_detail, "the %.1f s budget is spent",
                     t->p.budget_seconds);
            return DR_OK;
        }
        size_t ci = promotable(t);
        int r;
        if (ci != SIZE_MAX) {
            r = t->cands.a[ci].rung + 1;
        } else {
            if ((st = new_cand(t, &ci, err)) != DR_OK) return st;
            if (ci == SIZE_MAX) {
                t->stopped = "exhausted";
                return DR_OK;
            }
            r = 0;
        }
        const double need = estimate(t, ci, r);
        if (t->p.budget_seconds > 0 && elapsed + need > t->p.budget_seconds) {
            const tune_cand *c = &t->cands.a[ci];
            t->stopped = "budget";
            snprintf(t->stop_detail, sizeof t->stop_detail, "the next trial (%s candidate %u, "
                     "rung %d) needs about %.0f s, %.0f s are left", kind_of(t, c)->name, c->id,
                     r, need, t->p.budget_seconds - elapsed);
            return DR_OK;
        }
        if ((st = run_trial(t, ci, r, err)) != DR_OK) return st;
    }
}

static dr_status set_notes(dr_tune *t, dr_error *err);

dr_status dr_tune_run(const dr_dataset *ds, const dr_split *sp, const dr_tune_params *p,
                      dr_tune **out, dr_error *err) {
    if (!out) return dr__fail(err, DR_ARG, "dr_tune_run: out is NULL");
    *out = NULL;
    if (!ds || !sp || !p) return dr__fail(err, DR_ARG, "dr_tune_run: NULL argument");
    if (!(p->budget_seconds > 0) && !p->max_trials)
        return dr__fail(err, DR_ARG, "tune: give a time budget or a number of trials");
    if (p->eta < 2) return dr__fail(err, DR_ARG, "tune: eta must be at least 2 (got %u)", p->eta);
    if (!p->keep) return dr__fail(err, DR_ARG, "tune: keep must be at least 1");
    if (p->base.init)
        return dr__fail(err, DR_ARG, "tune: candidates start from scratch (no init model)");
    if (!dr_split_n_valid_users(sp))
        return dr__fail(err, DR_ARG, "tune: the split has no validation targets to score "
                                    "candidates on (P-LOO and the given splits have them)");
    dr_tune *t = dr__calloc(1, sizeof *t);
    if (!t) return dr__fail(err, DR_NOMEM, "tune: out of memory");
    t->ds = ds;
    t->sp = sp;
    t->p = *p;
    t->best = t->best_trained = SIZE_MAX;
    t->t_start = dr__now_seconds();
    dr__rng_seed(&t->rng, p->base.seed, 0x7e5e);
    dr_status st;
    if ((st = kinds_init(t, err)) != DR_OK || (st = run_baselines(t, err)) != DR_OK ||
        (st = search(t, err)) != DR_OK || (st = set_notes(t, err)) != DR_OK)
        goto fail;
    for (size_t k = 0; k < t->cands.n; k++) { /* nothing waits for promotion any more */
        dr_model *m = t->cands.a[k].model;
        t->cands.a[k].model = NULL;
        release(t, m);
    }
    *out = t;
    return DR_OK;
fail:
    dr_tune_free(t);
    return st;
}

void dr_tune_free(dr_tune *t) {
    if (!t) return;
    for (size_t k = 0; k < t->cands.n; k++) {
        dr_model *m = t->cands.a[k].model;
        t->cands.a[k].model = NULL;
        release(t, m);
    }
    dr_model_free(t->best_model);
    for (size_t k = 0; k < t->kinds.n; k++) dr_vec_free(&t->kinds.a[k].drawn);
    dr_vec_free(&t->kinds);
    dr_vec_free(&t->cands);
    dr_vec_free(&t->order);
    dr_vec_free(&t->trials);
    dr__free(t);
}

size_t dr_tune_n_trials(const dr_tune *t) { return t ? t->trials.n : 0; }

const dr_tune_trial *dr_tune_trial_at(const dr_tune *t, size_t k) {
    return t && k < t->trials.n ? &t->trials.a[k] : NULL;
}

const dr_tune_trial *dr_tune_best(const dr_tune *t) { return t ? dr_tune_trial_at(t, t->best) : NULL; }

const dr_model *dr_tune_best_model(const dr_tune *t) { return t ? t->best_model : NULL; }

const dr_tune_trial *dr_tune_best_trained(const dr_tune *t) {
    return t ? dr_tune_trial_at(t, t->best_trained) : NULL;
}

const char *dr_tune_stopped(const dr_tune *t) { return t && t->stopped ? t->stopped : ""; }

const char *dr_tune_stop_detail(const dr_tune *t) { return t ? t->stop_detail : ""; }

/* ------------------------------------------------------------------ the checkpoint */

/* Appends key = printf(fmt, ...) to the n pairs of kv, the value in v[*n]. */
static void kv_add(const char **kv, char (*v)[48], size_t *n, const char *key, const char *fmt,
                   ...) DR_PRINTF(5, 6);
static void kv_add(const char **kv, char (*v)[48], size_t *n, const char *key, const char *fmt,
                   ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v[*n], sizeof v[*n], fmt, ap);
    va_end(ap);
    kv[2 * *n] = key;
    kv[2 * *n + 1] = v[*n];
    ++*n;
}

/* The best model's notes (dr_model_set_meta): its settings and figures, which its checkpoint
 * carries. Set once the search has stopped (the trial count is final). */
static dr_status set_notes(dr_tune *t, dr_error *err) {
    const dr_tune_trial *b = dr_tune_best(t);
    if (!b || !t->best_model) return DR_OK;
    enum { N_KV = 13 + DR_BASELINES };
    char set[512], v[N_KV][48], keys[DR_BASELINES][48];
    const char *kv[2 * N_KV];
    size_t n = 0;
    dr_tune_settings_text(b, set, sizeof set);
    kv_add(kv, v, &n, "tune.settings", "%s", set[0] ? set : "defaults");
    kv_add(kv, v, &n, "tune.epochs", "%u", b->epochs);
    kv_add(kv, v, &n, "tune.metric", "%s", "NDCG@10 validation full-ranking");
    kv_add(kv, v, &n, "tune.valid_users", "%u", b->valid.n_users);
    kv_add(kv, v, &n, "tune.valid_ndcg10", "%.6f", b->valid.full10.ndcg);
    kv_add(kv, v, &n, "tune.valid_hit10", "%.6f", b->valid.full10.hit);
    kv_add(kv, v, &n, "tune.valid_ndcg20", "%.6f", b->valid.full20.ndcg);
    kv_add(kv, v, &n, "tune.valid_hit20", "%.6f", b->valid.full20.hit);
    for (size_t k = 0; k < DR_BASELINES; k++) {
        snprintf(keys[k], sizeof keys[k], "tune.%s_ndcg10", g_baselines[k]);
        kv_add(kv, v, &n, keys[k], "%.6f", t->trials.a[k].valid.full10.ndcg);
    }
    kv_add(kv, v, &n, "tune.baseline_won", "%s", b->trained ? "no" : "yes");
    kv_add(kv, v, &n, "tune.trials", "%u", t->n_search);
    kv_add(kv, v, &n, "tune.seed", "%llu", (unsigned long long)t->p.base.seed);
    kv_add(kv, v, &n, "tune.candidate", "%u", b->candidate);
    kv_add(kv, v, &n, "tune.rung", "%u", b->rung);
    dr_status st = DR_OK;
    for (size_t k = 0; k < n && st == DR_OK; k++)
        st = dr_model_set_meta(t->best_model, kv[2 * k], kv[2 * k + 1], err);
    return st;
}

dr_status dr_tune_save(const dr_tune *t, const dr_dataset *ds, const dr_split *sp,
                       const char *path, dr_error *err) {
    if (!dr_tune_best(t) || !t->best_model) return dr__fail(err, DR_ARG, "dr_tune_save: no best model");
    return dr_model_save(t->best_model, ds, sp, path, err);
}
