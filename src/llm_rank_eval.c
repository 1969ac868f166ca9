/*
 * llm_rank_eval.c - P-LLM (../shared/PROTOCOL.md): the LLM as a ranker over candidates, and
 * the choice of lambda in base + lambda * LLM on validation targets.
 *
 * DESIGN: one pass over the users with a target (P-LOO: context = the history before it). Per
 * user: (a) the target + n_neg items the user never took (uniform, seeded by (seed, user)),
 * ranked by the base, the LLM on titles only, the LLM with soft tokens, and the combination;
 * (b) the base's top n_top (context excluded) reranked by base + lambda * LLM, so Hit@10 and
 * NDCG@10 are those of the full ranking (a target outside the top n_top keeps a rank > n_top).
 * The per-user scores are kept, so every lambda of a grid is scored from the same LLM calls,
 * and the combined columns use the lambda chosen (the first best, in grid order); with a grid
 * only (b) calls the LLM (what lambda is chosen on), and (a)'s LLM columns are not measured. Ranks are
 * pessimistic (ties count against the target), as everywhere else. One thread: the ranker is
 * one llama.cpp context. Soft tokens come from the base's latents here; the server feeds the
 * adapter's current h'_u and z'_i instead.
 */
#include <math.h>

#include "common.h"
#include "rng.h"

dr_llm_eval_params dr_llm_eval_default_params(void) {
    dr_llm_eval_params p = {0};
    p.n_neg = 19;
    p.n_top = 20;
    p.seed = 42;
    return p;
}

/* Pessimistic 1-based rank of position t among s[0..n). */
static uint32_t rank_of(const float *s, uint32_t n, uint32_t t) {
    uint32_t r = 1;
    for (uint32_t j = 0; j < n; j++)
        if (j != t && s[j] >= s[t]) r++;
    return r;
}

static double ndcg_at(uint32_t rank, uint32_t k) { return rank <= k ? 1.0 / log2(1.0 + rank) : 0.0; }

typedef struct user_rows {
    uint32_t top_pos;    /* the target's position in the top n_top, or UINT32_MAX */
    float *top_base;     /* (n_top) */
    float *top_llm;      /* (n_top) */
    uint32_t n_top;
    float samp_base[DR_LLM_RANK_MAX_CAND], samp_soft[DR_LLM_RANK_MAX_CAND];
} user_rows;

dr_status dr_eval_llm(const dr_dataset *ds, const dr_split *split, const dr_model *m,
                      dr_llm_ranker *r, const dr_llm_eval_params *p, dr_llm_eval_result *out,
                      dr_error *err) {
    memset(out, 0, sizeof *out);
    uint32_t n_users = dr_dataset_n_users(ds), n_items = dr_dataset_n_items(ds);
    uint32_t d = dr_model_latent_dim(m), nc = p->n_neg + 1;
    if (n_items != dr_model_n_items(m))
        return dr__fail(err, DR_ARG, "P-LLM: the dataset has %u items, the model %u", n_items,
                        dr_model_n_items(m));
    if (!d) return dr__fail(err, DR_UNSUPPORTED, "P-LLM: model %s has no latents", dr_model_name(m));
    if (nc > DR_LLM_RANK_MAX_CAND || !p->n_top || p->n_top > DR_LLM_RANK_MAX_CAND ||
        p->n_grid > DR_ARRAY_LEN(out->grid_ndcg10))
        return dr__fail(err, DR_ARG, "P-LLM: n_neg + 1 and n_top must be 1..%u, at most %zu lambdas",
                        DR_LLM_RANK_MAX_CAND, DR_ARRAY_LEN(out->grid_ndcg10));
    double t0 = dr__now_seconds();
    dr_scorer *sc = NULL;
    float *scores = dr__malloc((size_t)n_items * sizeof *scores), *h = dr__malloc((size_t)d * sizeof *h);
    uint8_t *seen = dr__calloc(n_items, 1);
    user_rows *rows = dr__calloc(n_users ? n_users : 1, sizeof *rows);
    float *top_block = dr__calloc((size_t)n_users * p->n_top * 2 + 1, sizeof *top_block);
    dr_rec *rec = dr__malloc((size_t)p->n_top * sizeof *rec);
    float title[DR_LLM_RANK_MAX_CAND];
    uint32_t cand[DR_LLM_RANK_MAX_CAND];
    dr_status st = DR_NOMEM;
    if (!scores || !h || !seen || !rows || !top_block || !rec) {
        st = dr__fail(err, DR_NOMEM, "P-LLM: out of memory");
        goto done;
    }
    if ((st = dr_scorer_create(m, &sc, err)) != DR_OK) goto done;
    const float *Z = dr_model_item_latents(m);
    uint32_t done_users = 0;
    double s_base = 0, s_base5 = 0, s_title = 0, s_title5 = 0, s_soft = 0, s_soft5 = 0;
    for (uint32_t u = 0; u < n_users; u++) {
        if (p->max_users && done_users >= p->max_users) break;
        uint32_t ntr, nva, nte;
        dr_split_user(split, u, &ntr, &nva, &nte);
        uint32_t n_ctx = p->which ? ntr : ntr + nva, n_t = p->which ? nva : nte;
        if (!n_t || !n_ctx) continue;
        const uint32_t *hist;
        size_t nh = dr_dataset_user_items(ds, u, &hist, NULL);
        if (n_ctx >= nh) continue;
        uint32_t target = hist[n_ctx];
        user_rows *ur = rows + done_users;
        ur->top_base = top_block + (size_t)done_users * p->n_top * 2;
        ur->top_llm = ur->top_base + p->n_top;
        if ((st = dr_model_score(m, sc, u, hist, n_ctx, scores, err)) != DR_OK) goto done;
        if ((st = dr_model_user_latent(m, sc, u, hist, n_ctx, h, err)) != DR_OK) goto done;
        /* (a) target + n_neg never-taken items */
        for (size_t k = 0; k < nh; k++) seen[hist[k]] = 1;
        dr_rng rng;
        dr__rng_seed(&rng, p->seed, u);
        cand[0] = target;
        uint32_t got = 1, tries = 0;
        while (got < nc && tries++ < 100u * nc) {
            uint32_t i = (uint32_t)dr__rng_below(&rng, n_items);
            int dup = seen[i];
            for (uint32_t q = 1; q < got && !dup; q++) dup = cand[q] == i;
            if (!dup) cand[got++] = i;
        }
        for (size_t k = 0; k < nh; k++) seen[hist[k]] = 0;
        if (got < nc) continue;
        dr_llm_request q = {NULL, NULL, 0, hist, n_ctx, cand, nc};
        if (!p->grid && (st = dr_llm_rank_score(r, &q, title, err)) != DR_OK) goto done;
        q.user = h, q.items = Z, q.stride = d;
        if (!p->grid && (st = dr_llm_rank_score(r, &q, ur->samp_soft, err)) != DR_OK) goto done;
        if (p->grid) memset(title, 0, sizeof title), memset(ur->samp_soft, 0, sizeof ur->samp_soft);
        for (uint32_t c = 0; c < nc; c++) ur->samp_base[c] = scores[cand[c]];
        uint32_t rb = rank_of(ur->samp_base, nc, 0), rt = rank_of(title, nc, 0),
                 rs = rank_of(ur->samp_soft, nc, 0);
        s_base += rb == 1, s_base5 += ndcg_at(rb, 5);
        s_title += rt == 1, s_title5 += ndcg_at(rt, 5);
        s_soft += rs == 1, s_soft5 += ndcg_at(rs, 5);
        /* (b) the base's top n_top, reranked */
        uint32_t nt = 0;
        if ((st = dr_recommend(m, sc, u, hist, n_ctx, p->n_top, rec, &nt, err)) != DR_OK) goto done;
        ur->n_top = nt;
        ur->top_pos = UINT32_MAX;
        for (uint32_t k = 0; k < nt; k++) {
            cand[k] = rec[k].item;
            ur->top_base[k] = rec[k].score;
            if (rec[k].item == target) ur->top_pos = k;
        }
        q.cand = cand, q.n_cand = nt;
        if (ur->top_pos != UINT32_MAX && (st = dr_llm_rank_score(r, &q, ur->top_llm, err)) != DR_OK)
            goto done;
        done_users++;
    }
    out->n_users = done_users;
    double nu = done_users ? done_users : 1;
    out->base_hit1 = s_base / nu, out->base_ndcg5 = s_base5 / nu;
    out->title_hit1 = s_title / nu, out->title_ndcg5 = s_title5 / nu;
    out->soft_hit1 = s_soft / nu, out->soft_ndcg5 = s_soft5 / nu;
    /* lambda: fixed, or the first best of the grid by full NDCG@10 */
    float lambda = p->lambda;
    float comb[DR_LLM_RANK_MAX_CAND];
    double best = -1;
    for (size_t g = 0; g < (p->grid ? p->n_grid : 0); g++) {
        double s = 0;
        for (uint32_t k = 0; k < done_users; k++) {
            const user_rows *ur = rows + k;
            if (ur->top_pos == UINT32_MAX) continue;
            for (uint32_t c = 0; c < ur->n_top; c++) comb[c] = ur->top_base[c] + p->grid[g] * ur->top_llm[c];
            s += ndcg_at(rank_of(comb, ur->n_top, ur->top_pos), 10);
        }
        out->grid_ndcg10[g] = s / nu;
        if (s / nu > best) best = s / nu, lambda = p->grid[g];
    }
    out->lambda = lambda;
    double fb = 0, fb10 = 0, fc = 0, fc10 = 0, cb = 0, cb5 = 0;
    for (uint32_t k = 0; k < done_users; k++) {
        const user_rows *ur = rows + k;
        for (uint32_t c = 0; c < nc; c++) comb[c] = ur->samp_base[c] + lambda * ur->samp_soft[c];
        uint32_t rc = rank_of(comb, nc, 0);
        cb += rc == 1, cb5 += ndcg_at(rc, 5);
        if (ur->top_pos == UINT32_MAX) continue;
        uint32_t rb = rank_of(ur->top_base, ur->n_top, ur->top_pos);
        for (uint32_t c = 0; c < ur->n_top; c++) comb[c] = ur->top_base[c] + lambda * ur->top_llm[c];
        uint32_t rr = rank_of(comb, ur->n_top, ur->top_pos);
        fb += rb <= 10, fb10 += ndcg_at(rb, 10);
        fc += rr <= 10, fc10 += ndcg_at(rr, 10);
    }
    out->comb_hit1 = cb / nu, out->comb_ndcg5 = cb5 / nu;
    out->full_base_hit10 = fb / nu, out->full_base_ndcg10 = fb10 / nu;
    out->full_comb_hit10 = fc / nu, out->full_comb_ndcg10 = fc10 / nu;
    out->seconds = dr__now_seconds() - t0;
    st = DR_OK;
done:
    dr_scorer_free(sc);
    dr__free(scores), dr__free(h), dr__free(seen), dr__free(rows), dr__free(top_block), dr__free(rec);
    return st;
}
