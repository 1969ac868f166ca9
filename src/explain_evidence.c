/*
 * explain_evidence.c - the structured facts behind an explanation (dr_explain_evidence) and their
 * slow twin (dr_explain_fact_valid), which re-derives each fact from the model and data.
 *
 * DESIGN: for (u, i) the facts are, in order: the k history items whose latents are closest to
 * i's (cosine over the model's item latents, exact scan of the distinct history, ties to the
 * lower id); how many of u's K nearest users (cosine over user latents h_v computed once per
 * explainer, or h'_v through the adapter) took i, naming the nearest of them; attributes of i
 * carried by u's most recent distinct items, with counts; per modality, the history item whose
 * features are closest to i's; the adapter window's count and trend for i. Each fact has an
 * id, a kind, its entities and its number, and no text: the prompt, the template and the
 * verifier all read the same struct. Exact scans cost O(|history| d + n_users d) per request,
 * a small fraction of a millisecond at the sizes served (docs/BENCH.md); an approximate
 * neighbour index was rejected because a fact must be checkable ("the cited neighbour really
 * is among the top-k").
 *
 * For a model that reads an ordered window of the history (sasrec) the history facts are
 * chosen by the score's own sensitivity instead (DR_FACT_INFLUENCE): each distinct item j of
 * the window is removed from the whole history (every occurrence; an older item then enters
 * the window, as it would for the model) and the item is re-scored; the facts are the k
 * largest positive drops. Exact, O(|window|) forward passes per request (milliseconds for
 * sasrec at L = 200; docs/BENCH.md). The cosine of the latents was rejected for such models:
 * it is not what the attention uses, and removing the items it names lowered the score in
 * only 64% of P-EXPLAIN's pairs. Gradients or attention weights were rejected as well: they
 * approximate the removal, and a fact must be checkable by re-scoring.
 */
#include "explain_evidence.h"

#include <math.h>
#include <stdlib.h>

#include "adapter.h"
#include "model.h"

float dr__dot(const float *a, const float *b, uint32_t d) {
    float s = 0.0f;
    for (uint32_t k = 0; k < d; k++) s += a[k] * b[k];
    return s;
}

const char *dr_fact_kind_name(dr_fact_kind k) {
    static const char *const n[DR_FACT_KIND_COUNT] = {"history", "neighbours", "attribute",
                                                      "modality", "trend", "influence"};
    return (unsigned)k < DR_FACT_KIND_COUNT ? n[k] : "unknown";
}

dr_status dr__explain_score(dr_explain_session *s, uint32_t u, const uint32_t *ctx, size_t n,
                           uint32_t item, float *score, dr_error *err) {
    const dr_explainer *x = s->x;
    dr_status st = dr_model_user_latent(x->m, s->sc, x->fold_in ? UINT32_MAX : u, ctx, n, s->h,
                                        err);
    if (st != DR_OK) return st;
    *score = dr__dot(dr_model_item_latents(x->m) + (size_t)item * x->d, s->h, x->d);
    return DR_OK;
}

/* Inserts (v, key) into the top list idx/sim of length *n (cap k), best first, ties to the
 * lower id. */
static void top_insert(uint32_t *idx, float *sim, uint32_t *n, uint32_t k, uint32_t v,
                       float key) {
    uint32_t p = *n;
    while (p > 0 && (sim[p - 1] < key || (sim[p - 1] == key && idx[p - 1] > v))) p--;
    if (p >= k) return;
    uint32_t last = *n < k ? *n : k - 1;
    for (uint32_t q = last; q > p; q--) {
        idx[q] = idx[q - 1];
        sim[q] = sim[q - 1];
    }
    idx[p] = v;
    sim[p] = key;
    if (*n < k) (*n)++;
}

static int history_has(const dr_model *m, uint32_t v, uint32_t item) {
    const uint32_t *h;
    size_t n = dr_model_user_history(m, v, &h);
    for (size_t k = 0; k < n; k++)
        if (h[k] == item) return 1;
    return 0;
}

static int item_has_attr(const dr_explainer *x, uint32_t item, uint32_t a) {
    for (uint32_t k = x->attr_off[item]; k < x->attr_off[item + 1]; k++)
        if (x->attr_ids[k] == a) return 1;
    return 0;
}

size_t dr__explain_history(const dr_explainer *x, uint32_t u, const uint32_t **items) {
    size_t n = dr_model_user_history(x->m, u, items);
    if (x->window && n > x->window) {
        *items += n - x->window;
        n = x->window;
    }
    return n;
}

/* Distinct items of u's history (only the part the model reads when `window`), most recent
 * first (excluding `skip`), at most cap. */
static uint32_t recent_distinct(dr_explain_session *s, uint32_t u, uint32_t skip, uint32_t cap,
                                int window, uint32_t *out) {
    const uint32_t *h;
    size_t n = window ? dr__explain_history(s->x, u, &h) : dr_model_user_history(s->x->m, u, &h);
    uint32_t got = 0;
    if (++s->stamp_gen == 0) {
        memset(s->stamp, 0, s->x->n_items * sizeof *s->stamp);
        s->stamp_gen = 1;
    }
    for (size_t k = n; k-- > 0 && got < cap;) {
        if (h[k] == skip || s->stamp[h[k]] == s->stamp_gen) continue;
        s->stamp[h[k]] = s->stamp_gen;
        out[got++] = h[k];
    }
    return got;
}

static dr_fact *new_fact(dr_evidence *ev, dr_fact_kind kind) {
    if (ev->n >= DR_EVIDENCE_MAX) return NULL;
    dr_fact *f = &ev->facts[ev->n++];
    memset(f, 0, sizeof *f);
    f->id = (uint32_t)ev->n;
    f->kind = kind;
    return f;
}

/* One fact per history item of the top list s->idx / s->sim (n, best first): value = its key,
 * total = its rank. */
static void push_ranked(dr_explain_session *s, dr_evidence *ev, dr_fact_kind kind, uint32_t n) {
    for (uint32_t r = 0; r < n; r++) {
        dr_fact *f = new_fact(ev, kind);
        if (!f) return;
        f->value = s->sim[r];
        f->total = r + 1;
        f->n_items = 1;
        f->items[0] = s->idx[r];
    }
}

static void facts_history(dr_explain_session *s, uint32_t u, uint32_t item, dr_evidence *ev) {
    const dr_explainer *x = s->x;
    uint32_t k = DR_MIN(x->p.k_history, 4u), n = 0;
    uint32_t *all = s->ctx;
    uint32_t nd = recent_distinct(s, u, item, UINT32_MAX, 1, all);
    const float *zi = x->item_unit + (size_t)item * x->d;
    for (uint32_t j = 0; j < nd; j++)
        top_insert(s->idx, s->sim, &n, k, all[j], dr__dot(zi, x->item_unit + (size_t)all[j] * x->d, x->d));
    push_ranked(s, ev, DR_FACT_HISTORY, n);
}

/* ctx = h without any occurrence of j; returns its length. */
static size_t without(const uint32_t *h, size_t n, uint32_t j, uint32_t *ctx) {
    size_t m = 0;
    for (size_t k = 0; k < n; k++)
        if (h[k] != j) ctx[m++] = h[k];
    return m;
}

/* The score drop when j leaves u's whole history (before = the score with all of it). */
static dr_status removal_drop(dr_explain_session *s, uint32_t u, uint32_t item, uint32_t j,
                              float before, float *drop, dr_error *err) {
    const uint32_t *h;
    size_t n = dr_model_user_history(s->x->m, u, &h);
    float after;
    size_t m = without(h, n, j, s->ctx2);
    dr_status st = dr__explain_score(s, u, s->ctx2, m, item, &after, err);
    *drop = before - after;
    return st;
}

/* The k history items (distinct, in the window the model reads, not the item itself) whose
 * removal lowers the score the most, drop > 0, ties to the lower id. */
static dr_status facts_influence(dr_explain_session *s, uint32_t u, uint32_t item,
                                 dr_evidence *ev, dr_error *err) {
    const dr_explainer *x = s->x;
    uint32_t k = DR_MIN(x->p.k_history, 4u), n = 0;
    if (!k) return DR_OK;
    const uint32_t *h;
    size_t nh = dr_model_user_history(x->m, u, &h);
    float before;
    dr_status st = dr__explain_score(s, u, h, nh, item, &before, err);
    uint32_t nd = recent_distinct(s, u, item, UINT32_MAX, 1, s->ctx);
    for (uint32_t q = 0; q < nd && st == DR_OK; q++) {
        float drop;
        if ((st = removal_drop(s, u, item, s->ctx[q], before, &drop, err)) == DR_OK && drop > 0)
            top_insert(s->idx, s->sim, &n, k, s->ctx[q], drop);
    }
    if (st == DR_OK) push_ranked(s, ev, DR_FACT_INFLUENCE, n);
    return st;
}

/* User latents for the neighbour fact: the stored h_v, or h'_v through the adapter. */
static const float *user_vec(dr_explain_session *s, uint32_t v, float *buf) {
    const dr_explainer *x = s->x;
    const float *h = x->user_lat + (size_t)v * x->d;
    if (!x->p.adapter) return h;
    dr_adapter *a = x->p.adapter;
    dr__adapter_user(a, v, dr__window_last_time(dr__adapter_window(a)), h, buf);
    return buf;
}

/* Cosine in double precision from the raw vectors. */
static double cos_raw(const float *a, const float *b, uint32_t d) {
    double ab = 0, aa = 0, bb = 0;
    for (uint32_t k = 0; k < d; k++) {
        ab += (double)a[k] * b[k];
        aa += (double)a[k] * a[k];
        bb += (double)b[k] * b[k];
    }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0.0;
}

static float cosine(const float *a, const float *b, uint32_t d) { return (float)cos_raw(a, b, d); }

static void facts_neighbours(dr_explain_session *s, uint32_t u, uint32_t item, dr_evidence *ev) {
    const dr_explainer *x = s->x;
    uint32_t k = x->p.k_neighbours, n = 0, took = 0;
    if (!k || x->n_users < 2) return;
    float *hu = s->h + x->d, *hv = s->h + 2 * (size_t)x->d;
    const float *a = user_vec(s, u, hu);
    if (a != hu) memcpy(hu, a, x->d * sizeof *hu);
    for (uint32_t v = 0; v < x->n_users; v++) {
        if (v == u) continue;
        top_insert(s->idx, s->sim, &n, k, v, cosine(hu, user_vec(s, v, hv), x->d));
    }
    dr_fact f0 = {0};
    for (uint32_t r = 0; r < n; r++) {
        if (!history_has(x->m, s->idx[r], item)) continue;
        took++;
        if (f0.n_users < 3) f0.users[f0.n_users++] = s->idx[r];
    }
    if (!took) return;
    dr_fact *f = new_fact(ev, DR_FACT_NEIGHBOURS);
    if (!f) return;
    f->value = took;
    f->total = n;
    f->n_users = f0.n_users;
    memcpy(f->users, f0.users, sizeof f->users);
}

static void facts_attrs(dr_explain_session *s, uint32_t u, uint32_t item, dr_evidence *ev) {
    const dr_explainer *x = s->x;
    uint32_t cap = DR_MIN(x->p.max_attrs, 3u);
    if (!cap || !x->p.recent) return;
    uint32_t nr = recent_distinct(s, u, item, x->p.recent, 0, s->ctx);
    uint32_t best[3], cnt[3], nb = 0;
    for (uint32_t k = x->attr_off[item]; k < x->attr_off[item + 1]; k++) {
        uint32_t a = x->attr_ids[k], c = 0;
        for (uint32_t j = 0; j < nr; j++) c += (uint32_t)item_has_attr(x, s->ctx[j], a);
        if (!c) continue;
        float key = (float)c;
        float keys[3];
        for (uint32_t q = 0; q < nb; q++) keys[q] = (float)cnt[q];
        top_insert(best, keys, &nb, cap, a, key);
        for (uint32_t q = 0; q < nb; q++) cnt[q] = (uint32_t)keys[q];
    }
    for (uint32_t q = 0; q < nb; q++) {
        dr_fact *f = new_fact(ev, DR_FACT_ATTRIBUTE);
        if (!f) return;
        f->attr = x->attrs.str[best[q]];
        f->value = cnt[q];
        f->total = nr;
        for (uint32_t j = 0; j < nr && f->n_items < DR_FACT_MAX_ITEMS; j++)
            if (item_has_attr(x, s->ctx[j], best[q])) f->items[f->n_items++] = s->ctx[j];
    }
}

static void facts_modality(dr_explain_session *s, uint32_t u, uint32_t item, dr_evidence *ev) {
    const dr_explainer *x = s->x;
    const dr_dataset *ds = x->p.data;
    if (!ds) return;
    uint32_t nd = recent_distinct(s, u, item, UINT32_MAX, 0, s->ctx);
    for (int m = 0; m < dr_dataset_n_modalities(ds); m++) {
        const char *name;
        uint32_t dim;
        const float *feat;
        const uint8_t *pres;
        if (dr_dataset_modality(ds, m, &name, &dim, &feat, &pres) != DR_OK || !pres[item])
            continue;
        uint32_t best = UINT32_MAX;
        float bs = -2.0f;
        for (uint32_t j = 0; j < nd; j++) {
            uint32_t it = s->ctx[j];
            if (!pres[it]) continue;
            float c = cosine(feat + (size_t)item * dim, feat + (size_t)it * dim, dim);
            if (c > bs || (c == bs && it < best)) bs = c, best = it;
        }
        if (best == UINT32_MAX) continue;
        dr_fact *f = new_fact(ev, DR_FACT_MODALITY);
        if (!f) return;
        f->attr = name;
        f->value = bs;
        f->total = 1;
        f->n_items = 1;
        f->items[0] = best;
    }
}

static void facts_trend(dr_explain_session *s, uint32_t item, dr_evidence *ev) {
    const dr_explainer *x = s->x;
    if (!x->p.adapter) return;
    const dr_window *w = dr__adapter_window(x->p.adapter);
    float *st = s->h + 3 * (size_t)x->d; /* (d + 3) */
    dr__window_item_stats(w, item, st);
    double c = floor(expm1((double)st[0]) + 0.5);
    if (c < 1) return;
    dr_fact *f = new_fact(ev, DR_FACT_TREND);
    if (!f) return;
    f->value = c;
    f->total = (double)dr__window_size(w);
    f->trend = st[1];
}

dr_status dr_explain_evidence(dr_explain_session *s, uint32_t u, uint32_t item,
                              dr_evidence *ev, dr_error *err) {
    if (!s || !ev) return dr__fail(err, DR_ARG, "dr_explain_evidence: NULL argument");
    const dr_explainer *x = s->x;
    if (u >= x->n_users) return dr__fail(err, DR_RANGE, "explain: user %u >= %u users", u, x->n_users);
    if (item >= x->n_items)
        return dr__fail(err, DR_RANGE, "explain: item %u >= %u items", item, x->n_items);
    memset(ev, 0, sizeof *ev);
    ev->user = u;
    ev->item = item;
    if (x->removal) {
        dr_status st = facts_influence(s, u, item, ev, err);
        if (st != DR_OK) return st;
    } else {
        facts_history(s, u, item, ev);
    }
    facts_neighbours(s, u, item, ev);
    facts_attrs(s, u, item, ev);
    facts_modality(s, u, item, ev);
    facts_trend(s, item, ev);
    return DR_OK;
}

/* ------------------------------------------------------------------ slow twin */

static int attr_on(const dr_model *m, uint32_t item, const char *attr) {
    const char *a[256];
    size_t n = dr_model_item_attrs(m, item, a, 256);
    for (size_t k = 0; k < n && k < 256; k++)
        if (!strcmp(a[k], attr)) return 1;
    return 0;
}

#define EPS 1e-4

static int valid_history(const dr_explain_session *s, const dr_evidence *ev, const dr_fact *f) {
    const dr_explainer *x = s->x;
    const float *z = dr_model_item_latents(x->m);
    uint32_t j = f->items[0];
    const uint32_t *h;
    size_t n = dr__explain_history(x, ev->user, &h), in = 0;
    for (size_t k = 0; k < n; k++) in |= h[k] == j;
    if (f->n_items != 1 || j == ev->item || !in) return 0;
    double c = cos_raw(z + (size_t)ev->item * x->d, z + (size_t)j * x->d, x->d);
    if (fabs(c - f->value) > EPS) return 0;
    size_t higher = 0;
    for (size_t k = 0; k < n; k++) { /* distinct items strictly closer than j */
        int seen = 0;
        for (size_t q = 0; q < k && !seen; q++) seen = h[q] == h[k];
        if (seen || h[k] == ev->item || h[k] == j) continue;
        higher += cos_raw(z + (size_t)ev->item * x->d, z + (size_t)h[k] * x->d, x->d) > c + EPS;
    }
    return higher < (size_t)f->total;
}

/* Re-derives every drop over the window by re-scoring: j's drop matches the stated one and
 * fewer than `rank` distinct items drop strictly more. */
static int valid_influence(dr_explain_session *s, const dr_evidence *ev, const dr_fact *f) {
    const dr_explainer *x = s->x;
    uint32_t j = f->items[0];
    const uint32_t *h, *w;
    size_t nh = dr_model_user_history(x->m, ev->user, &h), nw = dr__explain_history(x, ev->user, &w);
    size_t in = 0, higher = 0;
    for (size_t k = 0; k < nw; k++) in |= w[k] == j;
    if (f->n_items != 1 || j == ev->item || !in || !(f->value > 0)) return 0;
    float before, drop;
    if (dr__explain_score(s, ev->user, h, nh, ev->item, &before, NULL) != DR_OK ||
        removal_drop(s, ev->user, ev->item, j, before, &drop, NULL) != DR_OK ||
        fabs((double)drop - f->value) > EPS)
        return 0;
    for (size_t k = 0; k < nw; k++) { /* distinct items whose removal drops the score more */
        int seen = 0;
        for (size_t q = 0; q < k && !seen; q++) seen = w[q] == w[k];
        float d2;
        if (seen || w[k] == ev->item || w[k] == j) continue;
        if (removal_drop(s, ev->user, ev->item, w[k], before, &d2, NULL) != DR_OK) return 0;
        higher += (double)d2 > f->value + EPS;
    }
    return higher < (size_t)f->total;
}

typedef struct nb_sim {
    double c;
    uint32_t v;
} nb_sim;

static int nb_cmp(const void *pa, const void *pb) {
    const nb_sim *a = pa, *b = pb;
    if (a->c != b->c) return a->c > b->c ? -1 : 1;
    return a->v < b->v ? -1 : a->v > b->v;
}

/* Recomputes every similarity in double precision and sorts them all. Users whose similarity
 * is within 1e-6 of the k-th one may fall on either side of the cut (float rounding in the
 * fast path), so the count must lie between the strict and the tolerant count. */
static int valid_neighbours(dr_explain_session *s, const dr_evidence *ev, const dr_fact *f) {
    const dr_explainer *x = s->x;
    uint32_t u = ev->user, k = (uint32_t)f->total, n = 0;
    if (k == 0 || k > x->n_users - 1) return 0;
    nb_sim *all = dr__malloc(x->n_users * sizeof *all);
    if (!all) return 0;
    float *hu = s->h + x->d, *hv = s->h + 2 * (size_t)x->d;
    const float *a = user_vec(s, u, hu);
    if (a != hu) memcpy(hu, a, x->d * sizeof *hu);
    for (uint32_t v = 0; v < x->n_users; v++)
        if (v != u) all[n++] = (nb_sim){cos_raw(hu, user_vec(s, v, hv), x->d), v};
    qsort(all, n, sizeof *all, nb_cmp);
    double kth = all[k - 1].c;
    uint32_t lo = 0, hi = 0;
    for (uint32_t r = 0; r < n; r++) {
        if (all[r].c < kth - 1e-6) break;
        int took = history_has(x->m, all[r].v, ev->item);
        hi += (uint32_t)took;
        lo += (uint32_t)(took && all[r].c > kth + 1e-6);
    }
    int ok = f->value >= lo && f->value <= hi && f->n_users <= f->value;
    for (uint32_t q = 0; ok && q < f->n_users; q++) {
        uint32_t v = f->users[q];
        ok = v < x->n_users && v != u && history_has(x->m, v, ev->item) &&
             cos_raw(hu, user_vec(s, v, hv), x->d) >= kth - 1e-6;
    }
    dr__free(all);
    return ok;
}

static int valid_attr(dr_explain_session *s, const dr_evidence *ev, const dr_fact *f) {
    const dr_model *m = s->x->m;
    if (!f->attr || !attr_on(m, ev->item, f->attr)) return 0;
    const uint32_t *h;
    size_t n = dr_model_user_history(m, ev->user, &h);
    uint32_t recent[64], nr = 0, want = DR_MIN(s->x->p.recent, 64u), cnt = 0;
    for (size_t k = n; k-- > 0 && nr < want;) {
        int seen = h[k] == ev->item;
        for (uint32_t q = 0; q < nr && !seen; q++) seen = recent[q] == h[k];
        if (!seen) recent[nr++] = h[k];
    }
    if ((double)nr != f->total) return 0;
    for (uint32_t q = 0; q < nr; q++) cnt += (uint32_t)attr_on(m, recent[q], f->attr);
    if ((double)cnt != f->value) return 0;
    for (uint32_t q = 0; q < f->n_items; q++) {
        int in = 0;
        for (uint32_t r = 0; r < nr && !in; r++) in = recent[r] == f->items[q];
        if (!in || !attr_on(m, f->items[q], f->attr)) return 0;
    }
    return 1;
}

static int valid_modality(const dr_explain_session *s, const dr_evidence *ev, const dr_fact *f) {
    const dr_dataset *ds = s->x->p.data;
    if (!ds || f->n_items != 1) return 0;
    for (int m = 0; m < dr_dataset_n_modalities(ds); m++) {
        const char *name;
        uint32_t dim;
        const float *x;
        const uint8_t *p;
        if (dr_dataset_modality(ds, m, &name, &dim, &x, &p) != DR_OK || strcmp(name, f->attr))
            continue;
        uint32_t j = f->items[0];
        if (!p[ev->item] || !p[j] || !history_has(s->x->m, ev->user, j)) return 0;
        double c = cos_raw(x + (size_t)ev->item * dim, x + (size_t)j * dim, dim);
        if (fabs(c - f->value) > EPS) return 0;
        const uint32_t *h;
        size_t n = dr_model_user_history(s->x->m, ev->user, &h);
        for (size_t k = 0; k < n; k++)
            if (h[k] != ev->item && p[h[k]] &&
                cos_raw(x + (size_t)ev->item * dim, x + (size_t)h[k] * dim, dim) > c + EPS)
                return 0;
        return 1;
    }
    return 0;
}

static int valid_trend(const dr_explain_session *s, const dr_evidence *ev, const dr_fact *f) {
    if (!s->x->p.adapter) return 0;
    const dr_window *w = dr__adapter_window(s->x->p.adapter);
    uint32_t d = s->x->d;
    float *all = dr__malloc((size_t)s->x->n_items * DR_WIN_ITEM_STATS(d) * sizeof *all);
    int ok = 0;
    if (all && dr__window_item_stats_slow(w, all, NULL) == DR_OK) {
        const float *st = all + (size_t)ev->item * DR_WIN_ITEM_STATS(d);
        ok = fabs(floor(expm1((double)st[0]) + 0.5) - f->value) < 0.5 &&
             fabs((double)st[1] - f->trend) < EPS && (double)dr__window_size(w) == f->total;
    }
    dr__free(all);
    return ok;
}

int dr_explain_fact_valid(dr_explain_session *s, const dr_evidence *ev, size_t f) {
    if (!s || !ev || f >= ev->n || ev->user >= s->x->n_users || ev->item >= s->x->n_items)
        return 0;
    const dr_fact *fa = &ev->facts[f];
    for (uint32_t q = 0; q < fa->n_items; q++)
        if (fa->items[q] >= s->x->n_items) return 0;
    switch (fa->kind) {
    case DR_FACT_HISTORY: return valid_history(s, ev, fa);
    case DR_FACT_NEIGHBOURS: return valid_neighbours(s, ev, fa);
    case DR_FACT_ATTRIBUTE: return valid_attr(s, ev, fa);
    case DR_FACT_MODALITY: return valid_modality(s, ev, fa);
    case DR_FACT_TREND: return valid_trend(s, ev, fa);
    case DR_FACT_INFLUENCE: return valid_influence(s, ev, fa);
    default: return 0;
    }
}
