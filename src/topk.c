/*
 * topk.c - exact top-k over a dense score vector, for serving.
 *
 * DESIGN: one cblas_sgemv computes all n scores (memory-bound: the item table is read once),
 * then a single pass keeps the k best in a binary min-heap whose root is the worst kept item
 * (lower score, or equal score and higher id). Items are visited in increasing id order, so a
 * later item with a score equal to the root's is always worse: the common case is one compare
 * against a cached threshold, and the heap is touched O(k log n) times in expectation on
 * random order. History is excluded through a bitmap in the scratch, set for the request and
 * cleared afterwards (O(history), not O(n)). Every buffer is in the scratch, so a request
 * never allocates. Alternatives rejected: a full sort (O(n log n), far slower at serving
 * sizes, docs/BENCH.md), nth_element/quickselect (needs a copy of the n scores plus an index
 * array and gives no stable id order on ties without a second pass).
 * Serving path (dr__topk_scan): the server scores with its own scan instead of sgemv: 4 rows
 * at a time, 8 lanes of fused multiply-adds per row and one horizontal reduction per 4 rows
 * (AVX2 + FMA, chosen at run time), then the same selection, which skips blocks of 16 scores
 * below the heap's threshold with four SSE compares. On the serving shape the scan is faster
 * than OpenBLAS's sgemv_t, close to what one core reads from L3, and the skip cuts the
 * selection's time by about two thirds (docs/BENCH.md). The scan's summation order is fixed
 * and reproduced by a portable loop (dot_lanes, also used for the last n % 4 rows), so scores
 * do not depend on the CPU (any with FMA: on x86 without it the scan falls back to sgemv, as
 * fmaf is a slow library call there) or the BLAS build; they differ from sgemv's by rounding
 * only (a few ulps). Rejected: rescoring the scan's near-top candidates with sgemv to
 * reproduce its bits (OpenBLAS splits the rows by n-dependent rules, so a partial call does not
 * give the full call's values), a lower-precision copy of the table (changes rankings beyond
 * rounding), 8 rows at a time (register spills: slower), AVX-512 (no faster: memory-bound),
 * and sorting rows by norm for early termination (a permuted copy for the writer to maintain).
 */
#include "topk.h"
#include "scan.h"

#include <cblas.h>
#include <math.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

struct dr_topk_scratch {
    uint32_t n_items, k_max;
    float *scores;     /* (n_items) last sgemv result */
    uint64_t *excl;    /* (ceil(n_items / 64)) bitmap, all zero between calls */
    float *hs;         /* (c_max) heap scores */
    uint32_t *hi;      /* (c_max) heap item ids */
    /* the bf16 path (dr__topk_scan_bf16) */
    uint32_t c_max;    /* candidates it may rescore before it scans in f32 instead */
    uint32_t *cid;     /* (c_max) candidate ids */
    float *csc;        /* (c_max) their scores */
    float *ktop;       /* (k_max) the k best exact scores */
    float *hp;         /* (DR_MAX_DIM + 32) the query, zero-padded to the bf16 rows */
    uint64_t n_exact1, n_exact2, n_full; /* answers by pass 1, pass 2, the f32 fallback */
};

dr_status dr__topk_scratch_create(uint32_t n_items, uint32_t k_max, dr_topk_scratch **out,
                                 dr_error *err) {
    dr_topk_scratch *s = NULL;
    if (!out) return dr__fail(err, DR_ARG, "dr__topk_scratch_create: out is NULL");
    *out = NULL;
    s = dr__calloc(1, sizeof *s);
    if (!s) goto nomem;
    s->n_items = n_items;
    s->k_max = k_max;
    s->scores = dr__calloc(n_items ? n_items : 1, sizeof *s->scores);
    s->excl = dr__calloc(((size_t)n_items + 63) / 64 + 1, sizeof *s->excl);
    s->c_max = k_max * DR_SCAN_BF16_CAND + n_items / 8 + 1;
    s->hs = dr__calloc(s->c_max, sizeof *s->hs);
    s->hi = dr__calloc(s->c_max, sizeof *s->hi);
    s->cid = dr__calloc(s->c_max, sizeof *s->cid);
    s->csc = dr__calloc(s->c_max, sizeof *s->csc);
    s->ktop = dr__calloc(k_max ? k_max : 1, sizeof *s->ktop);
    s->hp = dr__calloc(DR_MAX_DIM + 32, sizeof *s->hp);
    if (!s->scores || !s->excl || !s->hs || !s->hi || !s->cid || !s->csc || !s->ktop || !s->hp)
        goto nomem;
    *out = s;
    return DR_OK;
nomem:
    dr__topk_scratch_free(s);
    return dr__fail(err, DR_NOMEM, "topk: out of memory for %u items, k %u", n_items, k_max);
}

void dr__topk_scratch_free(dr_topk_scratch *s) {
    if (!s) return;
    dr__free(s->scores);
    dr__free(s->excl);
    dr__free(s->hs);
    dr__free(s->hi);
    dr__free(s->cid);
    dr__free(s->csc);
    dr__free(s->ktop);
    dr__free(s->hp);
    dr__free(s);
}

const float *dr__topk_last_scores(const dr_topk_scratch *s) { return s ? s->scores : NULL; }

/* a is worse than b: lower score, or the same score and a higher id. */
static inline bool worse(float as, uint32_t ai, float bs, uint32_t bi) {
    return as < bs || (as == bs && ai > bi);
}

static inline void sift_down(float *hs, uint32_t *hi, uint32_t n, uint32_t at) {
    float xs = hs[at];
    uint32_t xi = hi[at];
    for (;;) {
        uint32_t c = 2 * at + 1;
        if (c >= n) break;
        if (c + 1 < n && worse(hs[c + 1], hi[c + 1], hs[c], hi[c])) c++;
        if (!worse(hs[c], hi[c], xs, xi)) break;
        hs[at] = hs[c];
        hi[at] = hi[c];
        at = c;
    }
    hs[at] = xs;
    hi[at] = xi;
}

static inline void sift_up(float *hs, uint32_t *hi, uint32_t at) {
    float xs = hs[at];
    uint32_t xi = hi[at];
    while (at) {
        uint32_t p = (at - 1) / 2;
        if (!worse(xs, xi, hs[p], hi[p])) break;
        hs[at] = hs[p];
        hi[at] = hi[p];
        at = p;
    }
    hs[at] = xs;
    hi[at] = xi;
}

/* 1 when some of p[0..16) > thr (NaN is not) */
static inline int any_above16(const float *p, float thr) {
#ifdef __SSE2__
    __m128 t = _mm_set1_ps(thr);
    __m128 a = _mm_or_ps(_mm_cmpgt_ps(_mm_loadu_ps(p), t), _mm_cmpgt_ps(_mm_loadu_ps(p + 4), t));
    __m128 b = _mm_or_ps(_mm_cmpgt_ps(_mm_loadu_ps(p + 8), t), _mm_cmpgt_ps(_mm_loadu_ps(p + 12), t));
    return _mm_movemask_ps(_mm_or_ps(a, b)) != 0;
#else
    int any = 0;
    for (int j = 0; j < 16; j++) any |= p[j] > thr;
    return any;
#endif
}

/* Sets the exclusion bits of exclude (DR_RANGE, nothing set, for an id >= n). */
static dr_status excl_set(uint64_t *ex, uint32_t n, const uint32_t *exclude, size_t n_exclude,
                          dr_error *err) {
    for (size_t e = 0; e < n_exclude; e++)
        if (exclude[e] >= n)
            return dr__fail(err, DR_RANGE, "topk: excluded item %u >= n_items %u", exclude[e], n);
    for (size_t e = 0; e < n_exclude; e++) ex[exclude[e] >> 6] |= 1ULL << (exclude[e] & 63);
    return DR_OK;
}

static void excl_clear(uint64_t *ex, const uint32_t *exclude, size_t n_exclude) {
    for (size_t e = 0; e < n_exclude; e++) ex[exclude[e] >> 6] = 0;
}

static inline int excluded(const uint64_t *ex, uint32_t i) { return ex[i >> 6] >> (i & 63) & 1; }

/* Pops the heap (m entries) into items_out / scores_out, best first. */
static void heap_out(float *hs, uint32_t *hi, uint32_t m, uint32_t *items_out, float *scores_out) {
    for (uint32_t r = m; r > 0; r--) {
        items_out[r - 1] = hi[0];
        if (scores_out) scores_out[r - 1] = hs[0];
        hs[0] = hs[r - 1];
        hi[0] = hi[r - 1];
        sift_down(hs, hi, r - 1, 0);
    }
}

/* The k best of scores (n) outside the exclusion bits (set by the caller), best first. */
static uint32_t select_core(const float *scores, uint32_t n, uint32_t k, dr_topk_scratch *s,
                            uint32_t *items_out, float *scores_out) {
    const uint64_t *ex = s->excl;
    float *hs = s->hs;
    uint32_t *hi = s->hi, m = 0, i = 0;
    if (k) {
        /* fill the heap with the first k candidates */
        for (; i < n && m < k; i++) {
            if (excluded(ex, i)) continue;
            float x = scores[i];
            hs[m] = isnan(x) ? -INFINITY : x;
            hi[m] = i;
            sift_up(hs, hi, m);
            m++;
        }
        /* then keep only strictly better scores: equal ones have a higher id. Blocks of 16
         * with nothing above the threshold (nearly all, once the heap is warm) are skipped
         * with one branch (four SSE compares). */
        float thr = hs[0];
        while (i < n) {
            if (i % 16 == 0 && i + 16 <= n && !any_above16(scores + i, thr)) {
                i += 16;
                continue;
            }
            float x = scores[i];
            if (x > thr && !excluded(ex, i)) { /* x > thr also rejects NaN */
                hs[0] = x;
                hi[0] = i;
                sift_down(hs, hi, m, 0);
                thr = hs[0];
            }
            i++;
        }
    }
    heap_out(hs, hi, m, items_out, scores_out);
    return m;
}

/* The k best of m (score, id) pairs, best first (ties: lower id). */
static uint32_t select_pairs(const float *sc, const uint32_t *id, uint32_t m, uint32_t k,
                             dr_topk_scratch *s, uint32_t *items_out, float *scores_out) {
    float *hs = s->hs;
    uint32_t *hi = s->hi, h = 0;
    for (uint32_t j = 0; j < m && k; j++) {
        float x = isnan(sc[j]) ? -INFINITY : sc[j];
        if (h < k) {
            hs[h] = x;
            hi[h] = id[j];
            sift_up(hs, hi, h);
            h++;
        } else if (worse(hs[0], hi[0], x, id[j])) {
            hs[0] = x;
            hi[0] = id[j];
            sift_down(hs, hi, h, 0);
        }
    }
    heap_out(hs, hi, h, items_out, scores_out);
    return h;
}

static dr_status select_k(const float *scores, uint32_t n, const uint32_t *exclude,
                          size_t n_exclude, uint32_t k, dr_topk_scratch *s, uint32_t *items_out,
                          float *scores_out, uint32_t *n_out, dr_error *err) {
    dr_status st = excl_set(s->excl, n, exclude, n_exclude, err);
    if (st != DR_OK) return st;
    *n_out = select_core(scores, n, k, s, items_out, scores_out);
    excl_clear(s->excl, exclude, n_exclude);
    return DR_OK;
}

dr_status dr__topk_select(const float *scores, uint32_t n, const uint32_t *exclude,
                         size_t n_exclude, uint32_t k, dr_topk_scratch *s, uint32_t *items_out,
                         float *scores_out, uint32_t *n_out, dr_error *err) {
    if (!scores || !s || !n_out || (k && !items_out) || (n_exclude && !exclude))
        return dr__fail(err, DR_ARG, "dr__topk_select: NULL argument");
    if (n > s->n_items || k > s->k_max)
        return dr__fail(err, DR_ARG, "dr__topk_select: n %u / k %u exceed the scratch (%u, %u)", n,
                       k, s->n_items, s->k_max);
    return select_k(scores, n, exclude, n_exclude, k, s, items_out, scores_out, n_out, err);
}


static dr_status check_scan_args(const char *fn, const float *item, uint32_t n, uint32_t d,
                                 const float *h, const uint32_t *exclude, size_t n_exclude,
                                 uint32_t k, dr_topk_scratch *s, uint32_t *items_out,
                                 uint32_t *n_out, dr_error *err) {
    if (!item || !h || !s || !n_out || (k && !items_out) || (n_exclude && !exclude))
        return dr__fail(err, DR_ARG, "%s: NULL argument", fn);
    if (n > s->n_items || k > s->k_max)
        return dr__fail(err, DR_ARG, "%s: n %u / k %u exceed the scratch (%u, %u)", fn, n, k,
                        s->n_items, s->k_max);
    if (d == 0 || d > DR_MAX_DIM + 16)
        return dr__fail(err, DR_ARG, "%s: dimension %u outside 1..%u", fn, d, DR_MAX_DIM + 16);
    return DR_OK;
}

dr_status dr__topk_scan(const float *item, uint32_t n, uint32_t d, const float *h,
                       const uint32_t *exclude, size_t n_exclude, uint32_t k, dr_topk_scratch *s,
                       uint32_t *items_out, float *scores_out, uint32_t *n_out, dr_error *err) {
    dr_status st = check_scan_args("dr__topk_scan", item, n, d, h, exclude, n_exclude, k, s,
                                   items_out, n_out, err);
    if (st != DR_OK) return st;
    dr__scan_f32(item, n, d, h, s->scores);
    return select_k(s->scores, n, exclude, n_exclude, k, s, items_out, scores_out, n_out, err);
}

/* Rescoring of the bf16 path: the candidates' f32 scores in the scan's order, then the k best */
static uint32_t rescore(int v, const float *item, uint32_t d, const float *h, uint32_t m,
                        uint32_t k, dr_topk_scratch *s, uint32_t *items_out, float *scores_out) {
    for (uint32_t j = 0; j < m; j++)
        dr__scan_f32_v(v, item + (size_t)s->cid[j] * d, 1, d, h, &s->csc[j]);
    return select_pairs(s->csc, s->cid, m, k, s, items_out, scores_out);
}

dr_status dr__topk_scan_bf16(const dr_scan_bf16 *t, const float *item, uint32_t n, uint32_t d,
                            const float *h, const uint32_t *exclude, size_t n_exclude, uint32_t k,
                            dr_topk_scratch *s, uint32_t *items_out, float *scores_out,
                            uint32_t *n_out, dr_error *err) {
    if (!t)
        return dr__topk_scan(item, n, d, h, exclude, n_exclude, k, s, items_out, scores_out, n_out,
                             err);
    dr_status st = check_scan_args("dr__topk_scan_bf16", item, n, d, h, exclude, n_exclude, k, s,
                                   items_out, n_out, err);
    if (st != DR_OK) return st;
    if (t->d != d || n > t->cap)
        return dr__fail(err, DR_ARG, "dr__topk_scan_bf16: table of %u x %u for %u x %u", t->cap,
                        t->d, n, d);
    if ((st = excl_set(s->excl, n, exclude, n_exclude, err)) != DR_OK) return st;
    int v = dr__scan_variant();
    double hn = 0;
    for (uint32_t c = 0; c < d; c++) hn += (double)h[c] * h[c];
    double M = dr__bf16_margin(t, sqrt(hn));
    uint32_t C = k * DR_SCAN_BF16_CAND, m = 0, got = 0;
    float *top = s->ktop;
    if (!k || !isfinite(M) || (uint64_t)C * 4 > n) goto full; /* small catalogue: one f32 scan */
    memcpy(s->hp, h, d * sizeof *h);
    memset(s->hp + d, 0, (t->dp - d) * sizeof *h);
    dr__scan_bf16_v(v, t, n, s->hp, s->scores);
    /* pass 1: the C best by the bf16 scores, rescored */
    m = select_core(s->scores, n, C, s, s->cid, s->csc);
    float tau = m ? s->csc[m - 1] : 0.0f;
    got = rescore(v, item, d, h, m, k, s, items_out, top);
    if (m < C) goto done; /* every candidate was rescored */
    /* exact when no other item can reach the k-th exact score: every other item has a bf16
     * score <= tau, so an f32 score <= tau + M < f_k */
    double theta = (double)top[got - 1] - M;
    if (!(got == k && isfinite(theta))) goto full;
    if (theta > (double)tau) {
        s->n_exact1++;
        goto done;
    }
    /* pass 2: every item whose bf16 score reaches f_k - M, rescored */
    m = 0;
    for (uint32_t i = 0; i < n; i++)
        if ((double)s->scores[i] >= theta && !excluded(s->excl, i)) {
            if (m == s->c_max) goto full;
            s->cid[m++] = i;
        }
    got = rescore(v, item, d, h, m, k, s, items_out, top);
    s->n_exact2++;
    goto done;
full:
    s->n_full++;
    dr__scan_f32_v(v, item, n, d, h, s->scores);
    got = select_core(s->scores, n, k, s, items_out, top);
done:
    excl_clear(s->excl, exclude, n_exclude);
    if (scores_out) memcpy(scores_out, top, got * sizeof *top);
    *n_out = got;
    return DR_OK;
}

void dr__topk_bf16_counts(const dr_topk_scratch *s, uint64_t *pass1, uint64_t *pass2,
                          uint64_t *full) {
    if (pass1) *pass1 = s ? s->n_exact1 : 0;
    if (pass2) *pass2 = s ? s->n_exact2 : 0;
    if (full) *full = s ? s->n_full : 0;
}
