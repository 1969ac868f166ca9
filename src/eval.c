/*
 * eval.c - the P-LOO / P-MODAL evaluation harness (dr_eval_split, ../shared/PROTOCOL.md).
 *
 * DESIGN: for every evaluation user (a non-empty target segment and a non-empty context):
 *   which = 0 (test):  context = the first n_train + n_valid items, targets = the n_test items
 *                      after them; which = 1 (validation): context = the first n_train items,
 *                      targets = the n_valid items after them. Targets are deduplicated.
 *   full ranking:      the model scores every item; context items are excluded except the
 *                      targets; pessimistic ranks (eval_metrics.c) give Hit/NDCG/Recall at
 *                      10 and 20.
 *   sampled-100:       the targets + n_sampled items drawn uniformly without replacement from
 *                      the items the user never interacted with (whole history), by rejection
 *                      from a dr_rng seeded with (sample_seed, stream = user id); all of them
 *                      when fewer are left. Pessimistic ranks within that candidate set.
 *   cold items:        items in no user's training segment; users with such targets are also
 *                      ranked with only those as targets (full ranking, as above).
 * Users are spread over dr__parallel_for workers; each worker owns a dr_scorer, a score vector,
 * an exclusion bitmap and marks, all allocated before the loop, so the loop never allocates.
 * Per-user results go to a per-user slot and are summed in user order afterwards: the same
 * bytes for any thread count. Progress is reported from the calling thread between ~100
 * batches of users, so the callback never has to be thread-safe.
 * Alternatives rejected: per-thread running sums (the result would depend on the thread
 * count through floating-point summation order) and a sampling RNG per thread (the negatives
 * would depend on the schedule).
 * dr__eval_run (eval.h) is the same harness over a seeded draw of the users and/or only the
 * first target of each segment: early stopping validates through it (eval_validate.c), so
 * every model's validation NDCG is this file's (SASRec asks for a draw of val_users users and
 * the first target only).
 */
#include "eval.h"
#include "rng.h"


/* hit, ndcg, recall each; R_CU: 1 when the user has a cold target (R_C10, R_C20 valid) */
enum { R_F10 = 0, R_F20 = 3, R_S10 = 6, R_S20 = 9, R_C10 = 12, R_C20 = 15, R_CU = 18, R_N = 19 };

typedef struct ev_worker {
    dr_scorer *sc;
    float *scores;    /* (n_items) */
    uint8_t *excl;    /* (n_items) zero between users */
    uint8_t *mark;    /* (n_items) zero between users */
    uint32_t *tgt;    /* (max_targets) */
    uint32_t *ranks;  /* (max_targets) */
    uint32_t *chosen; /* (n_samp) sampled items */
    float *cand;      /* (max_targets + n_samp) sampled candidate scores, targets first */
    uint32_t *cand_t; /* (max_targets) 0..T-1 */
    uint32_t *ctgt;   /* (max_targets) the cold targets */
    dr_status st;
    dr_error err;
} ev_worker;

typedef struct ev_ctx {
    const dr_dataset *ds;
    const dr_split *sp;
    const dr_model *m;
    int which;
    int first_target;  /* only the first item of a target segment */
    uint64_t seed;
    uint32_t n_samp;   /* min(n_sampled, n_items) */
    const uint32_t *users; /* (n_eval) */
    const uint8_t *cold; /* (n_items) 1 = in no user's training segment */
    double *res;       /* (n_eval, R_N) */
    ev_worker *w;      /* (n_workers) */
    size_t base;       /* first user index of the current batch */
} ev_ctx;

static void put(double *r, dr_rank_metrics m) {
    r[0] = m.hit;
    r[1] = m.ndcg;
    r[2] = m.recall;
}

static void eval_user(void *vctx, size_t idx, int worker) {
    ev_ctx *c = vctx;
    ev_worker *w = &c->w[worker];
    idx += c->base;
    if (w->st != DR_OK) return;
    const dr_dataset *ds = c->ds;
    const uint32_t NI = ds->n_items;
    const uint32_t u = c->users[idx];
    const uint32_t *h = ds->hist_item + ds->user_off[u];
    const size_t n_hist = ds->user_off[u + 1] - ds->user_off[u];
    size_t n_ctx = c->sp->n_train[u], n_tg;
    if (c->which == 0) {
        n_ctx += c->sp->n_valid[u];
        n_tg = c->sp->n_test[u];
    } else {
        n_tg = c->sp->n_valid[u];
    }
    if (c->first_target && n_tg > 1) n_tg = 1;
    double *res = c->res + idx * R_N;

    /* distinct targets, in history order */
    uint32_t T = 0;
    for (size_t k = n_ctx; k < n_ctx + n_tg; k++) {
        if (w->mark[h[k]]) continue;
        w->mark[h[k]] = 1;
        w->tgt[T++] = h[k];
    }
    for (uint32_t j = 0; j < T; j++) w->mark[w->tgt[j]] = 0;

    dr_status st = dr_model_score(c->m, w->sc, u, h, n_ctx, w->scores, &w->err);
    if (st != DR_OK) {
        w->st = st;
        return;
    }

    /* full ranking, context excluded (targets are always candidates) */
    for (size_t k = 0; k < n_ctx; k++) w->excl[h[k]] = 1;
    dr_ranks_multi(w->scores, NI, w->tgt, T, w->excl, w->ranks);
    put(res + R_F10, dr_metrics_at(w->ranks, T, 10));
    put(res + R_F20, dr_metrics_at(w->ranks, T, 20));
    /* cold items: the same ranking with only the cold targets as targets (the warm targets
     * stay candidates) */
    uint32_t n_cold = 0;
    for (uint32_t j = 0; j < T; j++)
        if (c->cold[w->tgt[j]]) w->ctgt[n_cold++] = w->tgt[j];
    if (n_cold) {
        dr_ranks_multi(w->scores, NI, w->ctgt, n_cold, w->excl, w->ranks);
        put(res + R_C10, dr_metrics_at(w->ranks, n_cold, 10));
        put(res + R_C20, dr_metrics_at(w->ranks, n_cold, 20));
        res[R_CU] = 1.0;
    }
    for (size_t k = 0; k < n_ctx; k++) w->excl[h[k]] = 0;

    if (c->n_samp == 0) return;
    /* sampled: targets + negatives never interacted with */
    uint32_t n_seen = 0;
    for (size_t k = 0; k < n_hist; k++) {
        n_seen += !w->mark[h[k]];
        w->mark[h[k]] = 1;
    }
    for (uint32_t j = 0; j < T; j++) w->cand[j] = w->scores[w->tgt[j]];
    uint32_t n_c = 0, avail = NI - n_seen;
    if (avail <= c->n_samp) {
        for (uint32_t i = 0; i < NI; i++)
            if (!w->mark[i]) w->cand[T + n_c++] = w->scores[i];
    } else {
        dr_rng rng;
        dr__rng_seed(&rng, c->seed, u);
        while (n_c < c->n_samp) {
            uint32_t i = (uint32_t)dr__rng_below(&rng, NI);
            if (w->mark[i]) continue;
            w->mark[i] = 1;
            w->chosen[n_c] = i;
            w->cand[T + n_c++] = w->scores[i];
        }
        for (uint32_t k = 0; k < n_c; k++) w->mark[w->chosen[k]] = 0;
    }
    for (size_t k = 0; k < n_hist; k++) w->mark[h[k]] = 0;
    dr_ranks_multi(w->cand, T + n_c, w->cand_t, T, NULL, w->ranks);
    put(res + R_S10, dr_metrics_at(w->ranks, T, 10));
    put(res + R_S20, dr_metrics_at(w->ranks, T, 20));
}

dr_eval_params dr_eval_default_params(void) {
    dr_eval_params p;
    memset(&p, 0, sizeof p);
    p.threads = 0;
    p.sample_seed = 42;
    p.n_sampled = 100;
    p.which = 0;
    return p;
}

static void free_workers(ev_worker *w, int n) {
    if (!w) return;
    for (int k = 0; k < n; k++) {
        dr_scorer_free(w[k].sc);
        dr__free(w[k].scores);
        dr__free(w[k].excl);
        dr__free(w[k].mark);
        dr__free(w[k].tgt);
        dr__free(w[k].ranks);
        dr__free(w[k].chosen);
        dr__free(w[k].cand);
        dr__free(w[k].cand_t);
        dr__free(w[k].ctgt);
    }
    dr__free(w);
}

/* Mean over the users (of n) whose slot `only` is set (only < 0: all users); *n_used gets
 * their count when not NULL. */
static dr_rank_metrics mean_of(const double *res, uint32_t n, int at, int only,
                               uint32_t *n_used) {
    dr_rank_metrics m = {0, 0, 0};
    uint32_t used = 0;
    for (uint32_t k = 0; k < n; k++) {
        if (only >= 0 && res[(size_t)k * R_N + only] == 0.0) continue;
        used++;
        m.hit += res[(size_t)k * R_N + at];
        m.ndcg += res[(size_t)k * R_N + at + 1];
        m.recall += res[(size_t)k * R_N + at + 2];
    }
    if (n_used) *n_used = used;
    if (used == 0) return m;
    m.hit /= used;
    m.ndcg /= used;
    m.recall /= used;
    return m;
}

dr_status dr_eval_split(const dr_dataset *ds, const dr_split *sp, const dr_model *m,
                        const dr_eval_params *p, dr_eval_result *out, dr_error *err) {
    return dr__eval_run(ds, sp, m, p, NULL, out, err);
}

dr_status dr__eval_run(const dr_dataset *ds, const dr_split *sp, const dr_model *m,
                      const dr_eval_params *p, const dr_eval_subset *o, dr_eval_result *out,
                      dr_error *err) {
    const dr_eval_subset all = {0, 0, 0, 0};
    dr_eval_params def = dr_eval_default_params();
    uint32_t *users = NULL;
    uint8_t *cold = NULL;
    double *res = NULL;
    ev_worker *w = NULL;
    int nw = 0;
    dr_status st = DR_OK;
    double t_start = dr__now_seconds();

    if (!p) p = &def;
    if (!o) o = &all;
    if (!ds || !sp || !m || !out) return dr__fail(err, DR_ARG, "dr_eval_split: NULL argument");
    memset(out, 0, sizeof *out);
    if (sp->kind == DR_SPLIT_ALL && p->which == 0)
        return dr__fail(err, DR_ARG, "dr_eval_split: an 'all' split (a retrain for serving) has "
                                    "no test targets; its validation targets (which = 1) rank");
    if (sp->kind == DR_SPLIT_T0 && p->which == 0)
        return dr__fail(err, DR_ARG, "dr_eval_split: a T0 split's test events are evaluated by "
                                    "replay (P-STREAM), not by ranking held-out segments; its "
                                    "validation targets (which = 1) rank as under LOO");
    if (sp->n_users != ds->n_users || m->n_items != ds->n_items)
        return dr__fail(err, DR_ARG, "dr_eval_split: split, model and dataset do not match");
    if (p->which != 0 && p->which != 1)
        return dr__fail(err, DR_ARG, "dr_eval_split: which must be 0 (test) or 1 (valid)");
    const uint32_t NI = ds->n_items;

    /* evaluation users and the largest target segment */
    uint32_t n_eval = 0, max_t = 1, n_empty_ctx = 0;
    users = dr__malloc(((size_t)ds->n_users + 1) * sizeof *users);
    cold = dr__malloc((size_t)NI + 1);
    if (!users || !cold) {
        st = dr__fail(err, DR_NOMEM, "dr_eval_split: out of memory");
        goto fail;
    }
    memset(cold, 1, NI);
    for (uint32_t u = 0; u < ds->n_users; u++)
        for (uint32_t k = 0; k < sp->n_train[u]; k++) cold[ds->hist_item[ds->user_off[u] + k]] = 0;
    for (uint32_t i = 0; i < NI; i++) out->n_cold_items += cold[i];
    for (uint32_t u = 0; u < ds->n_users; u++) {
        uint32_t nt = p->which == 0 ? sp->n_test[u] : sp->n_valid[u];
        uint32_t nc = sp->n_train[u] + (p->which == 0 ? sp->n_valid[u] : 0);
        if (nt == 0) continue;
        if (nc == 0) {
            n_empty_ctx++;
            continue;
        }
        users[n_eval++] = u;
        max_t = DR_MAX(max_t, nt);
    }
    if (o->max_users && n_eval > o->max_users) { /* partial Fisher-Yates, in drawn order */
        dr_rng rng;
        dr__rng_seed(&rng, o->seed, 0xe7a1);
        for (uint32_t k = 0; k < o->max_users; k++) {
            uint32_t j = k + (uint32_t)dr__rng_below(&rng, n_eval - k);
            uint32_t t = users[k];
            users[k] = users[j];
            users[j] = t;
        }
        n_eval = o->max_users;
    }
    if (n_empty_ctx && !o->quiet)
        dr__log(DR_LOG_WARN, "eval: %u users with targets but an empty context were skipped",
               n_empty_ctx);

    res = dr__calloc((size_t)n_eval * R_N + 1, sizeof *res);
    if (!res) {
        st = dr__fail(err, DR_NOMEM, "dr_eval_split: out of memory");
        goto fail;
    }
    nw = p->threads > 0 ? p->threads : dr__default_threads();
    nw = DR_MIN(nw, DR_MAX_THREADS);
    if ((uint32_t)nw > n_eval) nw = n_eval ? (int)n_eval : 1;
    uint32_t n_samp = DR_MIN(p->n_sampled, NI);
    w = dr__calloc((size_t)nw, sizeof *w);
    if (!w) {
        st = dr__fail(err, DR_NOMEM, "dr_eval_split: out of memory");
        goto fail;
    }
    for (int k = 0; k < nw; k++) {
        ev_worker *x = &w[k];
        if ((st = dr_scorer_create(m, &x->sc, err)) != DR_OK) goto fail;
        x->scores = dr__malloc(((size_t)NI + 1) * sizeof *x->scores);
        x->excl = dr__calloc((size_t)NI + 1, 1);
        x->mark = dr__calloc((size_t)NI + 1, 1);
        x->tgt = dr__malloc((size_t)max_t * sizeof *x->tgt);
        x->ranks = dr__malloc((size_t)max_t * sizeof *x->ranks);
        x->chosen = dr__malloc(((size_t)n_samp + 1) * sizeof *x->chosen);
        x->cand = dr__malloc(((size_t)max_t + n_samp + 1) * sizeof *x->cand);
        x->cand_t = dr__malloc((size_t)max_t * sizeof *x->cand_t);
        x->ctgt = dr__malloc((size_t)max_t * sizeof *x->ctgt);
        if (!x->scores || !x->excl || !x->mark || !x->tgt || !x->ranks || !x->chosen ||
            !x->cand || !x->cand_t || !x->ctgt) {
            st = dr__fail(err, DR_NOMEM, "dr_eval_split: out of memory");
            goto fail;
        }
        for (uint32_t j = 0; j < max_t; j++) x->cand_t[j] = j;
    }

    ev_ctx c = {.ds = ds, .sp = sp, .m = m, .which = p->which,
                .first_target = o->first_target, .seed = p->sample_seed,
                .n_samp = n_samp, .users = users, .cold = cold, .res = res, .w = w, .base = 0};
    size_t batch = p->progress ? DR_MAX((size_t)1, ((size_t)n_eval + 99) / 100) : n_eval;
    if (p->progress) p->progress(p->progress_ud, "eval", 0, n_eval);
    for (size_t b = 0; b < n_eval; b += batch) {
        size_t n = DR_MIN(batch, (size_t)n_eval - b);
        c.base = b;
        dr__parallel_for(n, nw, eval_user, &c);
        for (int k = 0; k < nw; k++) {
            if (w[k].st != DR_OK) {
                st = w[k].st;
                if (err) *err = w[k].err;
                goto fail;
            }
        }
        if (p->progress) p->progress(p->progress_ud, "eval", b + n, n_eval);
    }

    out->n_users = n_eval;
    out->full10 = mean_of(res, n_eval, R_F10, -1, NULL);
    out->full20 = mean_of(res, n_eval, R_F20, -1, NULL);
    out->samp10 = mean_of(res, n_eval, R_S10, -1, NULL);
    out->samp20 = mean_of(res, n_eval, R_S20, -1, NULL);
    out->cold10 = mean_of(res, n_eval, R_C10, R_CU, &out->n_cold_users);
    out->cold20 = mean_of(res, n_eval, R_C20, R_CU, NULL);
    free_workers(w, nw);
    dr__free(cold);
    dr__free(res);
    dr__free(users);
    out->seconds = dr__now_seconds() - t_start;
    return DR_OK;
fail:
    free_workers(w, nw);
    dr__free(cold);
    dr__free(res);
    dr__free(users);
    return st;
}
