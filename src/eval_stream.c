/*
 * eval_stream.c - P-STREAM replay: frozen base vs base + online adapter in one pass.
 *
 * DESIGN: follows ../shared/PROTOCOL.md exactly. T0 = the dataset's P-STREAM T0; every user's
 * history starts as its pre-T0 prefix (the dataset's per-user time-ordered CSR, so a history is
 * a prefix length, never a copy). Events with time >= T0 are taken in groups sharing a
 * timestamp: every event of the group is scored against the state before the timestamp, then
 * the group is applied in file order (history grows, the adapter learns from each event with
 * the base latent of the user's context before that event). An event is scored when its user
 * has an earlier interaction and its item is not in the user's history; all items of the
 * catalogue are ranked (never-seen items included), history excluded, pessimistic ties
 * (dr_rank_pessimistic). A user with no pre-T0 interaction has no trained user factor; the
 * base is asked for it as an unknown user (u = UINT32_MAX), so MF folds in the mean of the
 * context's item factors instead of scoring with the factor's random initialisation (SASRec
 * ignores u). Both columns use the same base latent, so the difference is the adapter alone.
 * Per scored event the hits and NDCGs are kept, then averaged overall, over 10 consecutive
 * equal-count slices (slice of the j-th scored event = j * 10 / n_scored) and over events
 * whose target item never occurred before T0 (cold).
 * Optional `retrain` column (an upper bound with its cost): a pre-pass marks the scored events
 * so that slice boundaries are known; before the timestamp group holding the first scored
 * event of slice j = 1..9 the base is refitted on every event with time < that timestamp (a
 * T0-kind split at that time) and scores until the next refit; slice 0 uses the base.
 * With retrain_warm each refit continues from the model it replaces (SASRec: a few epochs
 * instead of a full fit, which makes the column affordable for a slow base).
 * served_time (P-LIVE's reference): the adapter gets whole UNIX seconds and each query the
 * newest applied event's time, as `dynrec serve` does (its API takes seconds; its clock is the
 * log's newest event), so the replay equals the served one event by event.
 * Rejected: scoring through dr_recommend (top-k only: pessimistic ranks need every score) and
 * re-sorting histories per event (the CSR prefix is already in time order).
 */
#include "eval_stream.h"
#include "scan.h"

#include <math.h>
#include <stdio.h>

dr_stream_params dr__stream_default_params(void) {
    dr_stream_params p;
    memset(&p, 0, sizeof p);
    p.adapter = dr__adapter_default_params();
    p.run_adapter = 1;
    return p;
}

static void add_metrics(dr_stream_metrics *m, double hit, double ndcg) {
    m->hit10 += hit;
    m->ndcg10 += ndcg;
    m->n++;
}

static void finish_metrics(dr_stream_metrics *m) {
    if (m->n) {
        m->hit10 /= (double)m->n;
        m->ndcg10 /= (double)m->n;
    }
}

static void rank_metrics(uint32_t rank, double *hit, double *ndcg) {
    *hit = rank <= 10 ? 1.0 : 0.0;
    *ndcg = rank <= 10 ? 1.0 / log2((double)rank + 1.0) : 0.0;
}

/* Which replayed events are scored (flag per event from e0), by the same rules as the replay;
 * hlen is consumed (grows as events are applied); excl must be all zero and stays so. */
static size_t mark_scored(const dr_dataset *ds, size_t e0, size_t n, uint32_t *hlen,
                          uint8_t *excl, uint8_t *flag) {
    size_t cnt = 0;
    for (size_t g0 = e0; g0 < n;) {
        size_t g1 = g0;
        while (g1 < n && ds->ev_time[g1] == ds->ev_time[g0]) g1++;
        for (size_t e = g0; e < g1; e++) {
            uint32_t u = ds->ev_user[e];
            const uint32_t *ctx = ds->hist_item + ds->user_off[u];
            flag[e - e0] = 0;
            if (!hlen[u]) continue;
            for (uint32_t k = 0; k < hlen[u]; k++) excl[ctx[k]] = 1;
            flag[e - e0] = !excl[ds->ev_item[e]];
            cnt += flag[e - e0];
            for (uint32_t k = 0; k < hlen[u]; k++) excl[ctx[k]] = 0;
        }
        for (size_t e = g0; e < g1; e++) hlen[ds->ev_user[e]]++;
        g0 = g1;
    }
    return cnt;
}

/* The base refitted on every event with time < t (a T0-kind split at t). */
static dr_status refit(const dr_dataset *ds, int64_t t, const dr_model_params *mp,
                       const dr_model *warm, dr_model **out, dr_error *err) {
    dr_split *sp = NULL;
    dr_status st = dr__split_t0_at(ds, t, 0, &sp, err);
    if (st != DR_OK) return st;
    dr_model_params q = *mp;
    q.init = warm;
    st = dr_model_fit(ds, sp, &q, out, err);
    dr_split_free(sp);
    return st;
}

dr_status dr__stream_eval(const dr_dataset *ds, const dr_model *base, const dr_stream_params *p,
                         dr_stream_result *out, dr_error *err) {
    if (!ds || !base || !p || !out) return dr__fail(err, DR_ARG, "stream: NULL argument");
    memset(out, 0, sizeof *out);
    if (base->n_items != ds->n_items)
        return dr__fail(err, DR_ARG, "stream: the model has %u items, the dataset %u",
                       base->n_items, ds->n_items);
    uint32_t d = dr_model_latent_dim(base);
    if (p->run_adapter && !d)
        return dr__fail(err, DR_UNSUPPORTED, "stream: the adapter needs a dot-product model, "
                       "'%s' is not one", dr_model_name(base));
    dr_dataset_stats stats;
    dr_status st = dr_dataset_get_stats(ds, &stats);
    if (st != DR_OK) return st;
    const uint32_t nu = ds->n_users, ni = ds->n_items;
    const int64_t t0 = p->has_range ? p->t_begin : stats.t0;
    size_t e0 = 0, n = ds->n_events;
    if (p->has_range)
        while (n > 0 && ds->ev_time[n - 1] >= p->t_end) n--;
    while (e0 < n && ds->ev_time[e0] < t0) e0++;
    size_t nrep = n - e0;

    double t_start = dr__now_seconds();
    uint32_t *hlen = dr__calloc(nu ? nu : 1, sizeof *hlen);     /* (n_users) history length */
    uint8_t *has_pre = dr__calloc(nu ? nu : 1, 1);               /* (n_users) */
    uint8_t *seen = dr__calloc(ni, 1);                           /* (n_items) seen before T0 */
    uint8_t *excl = dr__calloc(ni, 1);                           /* (n_items) scratch */
    float *scores = dr__malloc((size_t)ni * sizeof *scores);     /* (n_items) */
    float *h = dr__calloc(d ? d : 1, sizeof *h), *hp = dr__calloc(d ? d : 1, sizeof *hp);
    float *rec = dr__malloc((nrep ? nrep : 1) * 6 * sizeof *rec); /* (nrep, 6) hit ndcg: F A R */
    uint8_t *sflag = dr__malloc(nrep ? nrep : 1);                 /* (nrep) scored */
    uint8_t *rt_known = dr__calloc(nu ? nu : 1, 1);               /* (n_users) retrain saw u */
    dr_model *rt = NULL;
    dr_scorer *rt_sc = NULL;
    uint8_t *rcold = dr__malloc(nrep ? nrep : 1);                 /* (nrep) */
    uint8_t *cold = dr__malloc(ni);                               /* (n_items) */
    dr_scorer *sc = NULL;
    dr_adapter *ad = NULL;
    if (!hlen || !has_pre || !seen || !excl || !scores || !h || !hp || !rec || !rcold || !cold ||
        !sflag || !rt_known) {
        st = dr__fail(err, DR_NOMEM, "stream: out of memory");
        goto fail;
    }
    if ((st = dr_scorer_create(base, &sc, err)) != DR_OK) goto fail;
    for (uint32_t u = 0; u < nu; u++) {
        size_t a = ds->user_off[u], b = ds->user_off[u + 1], k = a;
        while (k < b && ds->hist_time[k] < t0) k++;
        hlen[u] = (uint32_t)(k - a);
        has_pre[u] = k > a;
    }
    for (size_t e = 0; e < e0; e++) seen[ds->ev_item[e]] = 1;
    size_t n_will = 0, next_slice = 1;
    if (p->retrain) { /* slice boundaries must be known before the replay */
        memcpy(rt_known, has_pre, nu);
        uint32_t *hl = dr__malloc((nu ? nu : 1) * sizeof *hl);
        if (!hl) {
            st = dr__fail(err, DR_NOMEM, "stream: out of memory");
            goto fail;
        }
        memcpy(hl, hlen, nu * sizeof *hl);
        n_will = mark_scored(ds, e0, n, hl, excl, sflag);
        dr__free(hl);
    }
    for (uint32_t i = 0; i < ni; i++) cold[i] = !seen[i];
    if (p->run_adapter) {
        dr_adapter_params ap = p->adapter;
        ap.publish_every = 0;
        if (!(ap.window.seconds_per_unit > 0)) ap.window.seconds_per_unit = ds->time_scale;
        if (p->served_time) ap.window.seconds_per_unit = 1.0;
        if ((st = dr__adapter_create(&ap, nu ? nu : 1, ni, d, dr_model_item_latents(base), cold,
                                    &ad, err)) != DR_OK)
            goto fail;
    }
    size_t nsc = 0;
    int64_t clock = 0; /* served_time: the newest applied event's time, in seconds */
    for (size_t g0 = e0; g0 < n;) {
        size_t g1 = g0;
        while (g1 < n && ds->ev_time[g1] == ds->ev_time[g0]) g1++;
        int64_t t = ds->ev_time[g0];
        int64_t ta = p->served_time ? (int64_t)floor((double)t * ds->time_scale) : t; /* adapter's */
        if (p->retrain && next_slice < DR_STREAM_SLICES && n_will) {
            size_t in_group = 0;
            for (size_t e = g0; e < g1; e++) in_group += sflag[e - e0];
            size_t first = (next_slice * n_will + DR_STREAM_SLICES - 1) / DR_STREAM_SLICES;
            if (nsc + in_group > first) { /* this group holds the first event of a new slice */
                double t1 = dr__now_seconds();
                dr_model *next = NULL;
                st = refit(ds, t, p->retrain, p->retrain_warm ? (rt ? rt : base) : NULL, &next,
                           err);
                dr_scorer_free(rt_sc);
                dr_model_free(rt);
                rt_sc = NULL;
                rt = next;
                if (st != DR_OK) goto fail;
                if ((st = dr_scorer_create(rt, &rt_sc, err)) != DR_OK) goto fail;
                for (uint32_t u = 0; u < nu; u++) rt_known[u] = hlen[u] > 0;
                out->retrain_seconds += dr__now_seconds() - t1;
                out->n_retrains++;
                while (next_slice < DR_STREAM_SLICES &&
                       nsc + in_group > (next_slice * n_will + DR_STREAM_SLICES - 1) / DR_STREAM_SLICES)
                    next_slice++;
            }
        }
        for (size_t e = g0; e < g1; e++) { /* score against the state before t */
            uint32_t u = ds->ev_user[e], i = ds->ev_item[e];
            const uint32_t *ctx = ds->hist_item + ds->user_off[u];
            uint32_t nctx = hlen[u];
            if (!nctx) continue;
            for (uint32_t k = 0; k < nctx; k++) excl[ctx[k]] = 1;
            if (!excl[i]) {
                uint32_t uid = has_pre[u] ? u : UINT32_MAX, r = 0, ra = 0;
                double t1 = dr__now_seconds(), hit = 0, ndcg = 0;
                if (!p->no_frozen) {
                    if ((st = dr_model_score(base, sc, uid, ctx, nctx, scores, err)) != DR_OK) goto fail;
                    r = dr_rank_pessimistic(scores, ni, i, excl);
                    rank_metrics(r, &hit, &ndcg);
                }
                rec[nsc * 6 + 0] = (float)hit;
                rec[nsc * 6 + 1] = (float)ndcg;
                double t2 = dr__now_seconds();
                out->frozen_score_seconds += t2 - t1;
                if (ad) {
                    if ((st = dr_model_user_latent(base, sc, uid, ctx, nctx, h, err)) != DR_OK) goto fail;
                    dr__adapter_user(ad, u, p->served_time ? clock : ta, h, hp);
                    dr__scan_f32(dr__adapter_items(ad), ni, d, hp, scores);
                    ra = dr_rank_pessimistic(scores, ni, i, excl);
                    rank_metrics(ra, &hit, &ndcg);
                    out->adapter_score_seconds += dr__now_seconds() - t2;
                } else {
                    hit = ndcg = 0;
                }
                rec[nsc * 6 + 2] = (float)hit;
                rec[nsc * 6 + 3] = (float)ndcg;
                hit = ndcg = 0;
                if (p->retrain) {
                    const dr_model *mr = rt ? rt : base;
                    dr_scorer *sr = rt ? rt_sc : sc;
                    uint32_t ur = (rt ? rt_known[u] : has_pre[u]) ? u : UINT32_MAX;
                    if ((st = dr_model_score(mr, sr, ur, ctx, nctx, scores, err)) != DR_OK) goto fail;
                    rank_metrics(dr_rank_pessimistic(scores, ni, i, excl), &hit, &ndcg);
                }
                rec[nsc * 6 + 4] = (float)hit;
                rec[nsc * 6 + 5] = (float)ndcg;
                rcold[nsc] = cold[i];
                nsc++;
                if (p->on_event) p->on_event(p->on_event_ud, e, r, ra, cold[i]);
            }
            for (uint32_t k = 0; k < nctx; k++) excl[ctx[k]] = 0;
        }
        for (size_t e = g0; e < g1; e++) { /* apply in file order */
            uint32_t u = ds->ev_user[e], i = ds->ev_item[e];
            size_t at = ds->user_off[u] + hlen[u];
            if (at >= ds->user_off[u + 1] || ds->hist_event[at] != e) {
                st = dr__fail(err, DR_INTERNAL, "stream: event %zu is not next in user %u's history", e, u);
                goto fail;
            }
            if (ad) {
                const uint32_t *ctx = ds->hist_item + ds->user_off[u];
                uint32_t uid = has_pre[u] ? u : UINT32_MAX;
                if ((st = dr_model_user_latent(base, sc, uid, ctx, hlen[u], h, err)) != DR_OK) goto fail;
                double t1 = dr__now_seconds();
                if ((st = dr__adapter_update(ad, u, i, ta, h, err)) != DR_OK) goto fail;
                out->update_seconds += dr__now_seconds() - t1;
            }
            hlen[u]++;
        }
        clock = ta;
        if (p->progress) p->progress(p->progress_ud, "stream", g1 - e0, nrep);
        g0 = g1;
    }
    for (size_t j = 0; j < nsc; j++) {
        const float *r = rec + j * 6;
        dr_stream_pair *sl = &out->slices[j * DR_STREAM_SLICES / nsc];
        dr_stream_pair *pr[3] = {&out->overall, sl, rcold[j] ? &out->cold : NULL};
        for (int k = 0; k < 3; k++) {
            if (!pr[k]) continue;
            add_metrics(&pr[k]->frozen, r[0], r[1]);
            add_metrics(&pr[k]->adapter, r[2], r[3]);
            if (p->retrain) add_metrics(&pr[k]->retrain, r[4], r[5]);
        }
    }
    for (int s = -2; s < DR_STREAM_SLICES; s++) {
        dr_stream_pair *pr = s == -2 ? &out->overall : s == -1 ? &out->cold : &out->slices[s];
        finish_metrics(&pr->frozen);
        finish_metrics(&pr->adapter);
        finish_metrics(&pr->retrain);
    }
    if (p->retrain && nsc != n_will) {
        st = dr__fail(err, DR_INTERNAL, "stream: %zu events scored, %zu expected", nsc, n_will);
        goto fail;
    }
    out->has_retrain = p->retrain != NULL;
    snprintf(out->dataset, sizeof out->dataset, "%s", dr_dataset_name(ds));
    snprintf(out->model, sizeof out->model, "%s", dr_model_name(base));
    out->t0 = t0;
    out->n_events = nrep;
    out->n_scored = nsc;
    out->has_adapter = ad != NULL;
    out->seconds = dr__now_seconds() - t_start;
    st = DR_OK;
fail:
    dr_scorer_free(rt_sc);
    dr_model_free(rt);
    dr__free(sflag);
    dr__free(rt_known);
    dr__adapter_free(ad);
    dr_scorer_free(sc);
    dr__free(hlen);
    dr__free(has_pre);
    dr__free(seen);
    dr__free(excl);
    dr__free(scores);
    dr__free(h);
    dr__free(hp);
    dr__free(rec);
    dr__free(rcold);
    dr__free(cold);
    return st;
}

static int json_pair(char *b, size_t cap, const dr_stream_pair *p, int retrain) {
    char rt[128] = "";
    if (retrain)
        snprintf(rt, sizeof rt, ",\"retrain\":{\"hit@10\":%.6f,\"ndcg@10\":%.6f}",
                 p->retrain.hit10, p->retrain.ndcg10);
    return snprintf(b, cap,
                    "{\"frozen\":{\"hit@10\":%.6f,\"ndcg@10\":%.6f},"
                    "\"adapter\":{\"hit@10\":%.6f,\"ndcg@10\":%.6f}%s,\"n\":%zu}",
                    p->frozen.hit10, p->frozen.ndcg10, p->adapter.hit10, p->adapter.ndcg10, rt,
                    p->frozen.n);
}

/* Copies s into out as the inside of a JSON string (quotes, backslashes, controls escaped). */
static void json_escape(char *out, size_t cap, const char *s) {
    size_t n = 0;
    for (; *s && n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') out[n++] = '\\', out[n++] = (char)c;
        else if (c < 0x20) n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
        else out[n++] = (char)c;
    }
    out[n] = 0;
}

int dr__stream_json(const dr_stream_result *r, char *buf, size_t cap) {
    size_t len = 0;
    char tmp[512];
#define PUT(...)                                                             \
    do {                                                                     \
        int k_ = snprintf(len < cap ? buf + len : NULL, len < cap ? cap - len : 0, __VA_ARGS__); \
        if (k_ > 0) len += (size_t)k_;                                       \
    } while (0)
    char ds_name[2 * sizeof r->dataset], model[2 * sizeof r->model];
    json_escape(ds_name, sizeof ds_name, r->dataset);
    json_escape(model, sizeof model, r->model);
    PUT("{\"protocol\":\"P-STREAM\",\"dataset\":\"%s\",\"model\":\"%s\","
        "\"n_events\":%zu,\"t0\":%lld,\"n_scored\":%zu,\"stream\":{",
        ds_name, model, r->n_events, (long long)r->t0, r->n_scored);
    PUT("\"frozen\":{\"hit@10\":%.6f,\"ndcg@10\":%.6f},\"adapter\":{\"hit@10\":%.6f,"
        "\"ndcg@10\":%.6f},",
        r->overall.frozen.hit10, r->overall.frozen.ndcg10, r->overall.adapter.hit10,
        r->overall.adapter.ndcg10);
    if (r->has_retrain)
        PUT("\"retrain\":{\"hit@10\":%.6f,\"ndcg@10\":%.6f,\"retrains\":%u,\"seconds\":%.3f},",
            r->overall.retrain.hit10, r->overall.retrain.ndcg10, r->n_retrains,
            r->retrain_seconds);
    PUT("\"slices\":[");
    for (int s = 0; s < DR_STREAM_SLICES; s++) {
        json_pair(tmp, sizeof tmp, &r->slices[s], r->has_retrain);
        PUT("%s%s", s ? "," : "", tmp);
    }
    json_pair(tmp, sizeof tmp, &r->cold, r->has_retrain);
    PUT("],\"cold\":%s,\"seconds\":%.3f,\"update_seconds\":%.3f}}", tmp, r->seconds,
        r->update_seconds);
#undef PUT
    return (int)len;
}
