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

#include <cblas.h>
#include <math.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

struct dr_topk_scratch {
    uint32_t n_items, k_max;
    float *scores;     /* (n_items) last sgemv result */
    uint64_t *excl;    /* (ceil(n_items / 64)) bitmap, all zero between calls */
    float *hs;         /* (k_max) heap scores */
    uint32_t *hi;      /* (k_max) heap item ids */
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
    s->hs = dr__calloc(k_max ? k_max : 1, sizeof *s->hs);
    s->hi = dr__calloc(k_max ? k_max : 1, sizeof *s->hi);
    if (!s->scores || !s->excl || !s->hs || !s->hi) goto nomem;
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

static dr_status select_k(const float *scores, uint32_t n, const uint32_t *exclude,
                          size_t n_exclude, uint32_t k, dr_topk_scratch *s, uint32_t *items_out,
                          float *scores_out, uint32_t *n_out, dr_error *err) {
    for (size_t e = 0; e < n_exclude; e++)
        if (exclude[e] >= n)
            return dr__fail(err, DR_RANGE, "topk: excluded item %u >= n_items %u", exclude[e], n);
    uint64_t *ex = s->excl;
    for (size_t e = 0; e < n_exclude; e++) ex[exclude[e] >> 6] |= 1ULL << (exclude[e] & 63);

    float *hs = s->hs;
    uint32_t *hi = s->hi, m = 0, i = 0;
    if (k) {
        /* fill the heap with the first k candidates */
        for (; i < n && m < k; i++) {
            if (ex[i >> 6] >> (i & 63) & 1) continue;
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
            if (x > thr && !(ex[i >> 6] >> (i & 63) & 1)) { /* x > thr also rejects NaN */
                hs[0] = x;
                hi[0] = i;
                sift_down(hs, hi, m, 0);
                thr = hs[0];
            }
            i++;
        }
    }
    for (size_t e = 0; e < n_exclude; e++) ex[exclude[e] >> 6] = 0;

    /* heap sort: pop the worst into the last free slot */
    *n_out = m;
    for (uint32_t r = m; r > 0; r--) {
        items_out[r - 1] = hi[0];
        if (scores_out) scores_out[r - 1] = hs[0];
        hs[0] = hs[r - 1];
        hi[0] = hi[r - 1];
        sift_down(hs, hi, r - 1, 0);
    }
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

dr_status dr__topk_dot(const float *item, const float *bias, uint32_t n, uint32_t d,
                      const float *h, const uint32_t *exclude, size_t n_exclude, uint32_t k,
                      dr_topk_scratch *s, uint32_t *items_out, float *scores_out,
                      uint32_t *n_out, dr_error *err) {
    if (!item || !h || !s || !n_out || (k && !items_out) || (n_exclude && !exclude))
        return dr__fail(err, DR_ARG, "dr__topk_dot: NULL argument");
    if (n > s->n_items || k > s->k_max)
        return dr__fail(err, DR_ARG, "dr__topk_dot: n %u / k %u exceed the scratch (%u, %u)", n, k,
                       s->n_items, s->k_max);
    if (d == 0 || d > INT32_MAX || n > INT32_MAX)
        return dr__fail(err, DR_ARG, "dr__topk_dot: bad shape (%u, %u)", n, d);
    if (n == 0) {
        *n_out = 0;
        return DR_OK;
    }
    float beta = 0.0f;
    if (bias) {
        memcpy(s->scores, bias, (size_t)n * sizeof *s->scores);
        beta = 1.0f;
    }
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)d, 1.0f, item, (int)d, h, 1, beta,
                s->scores, 1);
    return select_k(s->scores, n, exclude, n_exclude, k, s, items_out, scores_out, n_out, err);
}

/* ---------------------------------------------------------------- serving scan */

/* One row's score in the scan's order: lane l (0..7) accumulates h_c z_c for c = l mod 8 with
 * fused multiply-adds (lanes past d add 0 * 0), then ((l0 + l1) + (l2 + l3)) + ((l4 + l5) +
 * (l6 + l7)): exactly what the AVX2 kernel computes, on any CPU. */
static float dot_lanes(const float *r, const float *h, uint32_t d) {
    float acc[8] = {0};
    for (uint32_t c0 = 0; c0 < d; c0 += 8)
        for (uint32_t l = 0; l < 8; l++)
            acc[l] = c0 + l < d ? fmaf(r[c0 + l], h[c0 + l], acc[l]) : fmaf(0.0f, 0.0f, acc[l]);
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* the 8 lanes of each of a, b, c, d summed in dot_lanes's order -> (4) */
__attribute__((target("avx2,fma"))) static inline __m128 hsum4(__m256 a, __m256 b, __m256 c,
                                                              __m256 d) {
    __m256 x = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
}

__attribute__((target("avx2,fma"))) static void scan_avx2(const float *item, uint32_t n,
                                                         uint32_t d, const float *h,
                                                         float *scores) {
    uint32_t d8 = d & ~7u, i = 0;
    int32_t lane[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    __m256i tail = _mm256_loadu_si256((const __m256i *)(lane + 8 - (d - d8))); /* d - d8 lanes */
    for (; i + 4 <= n; i += 4) {
        const float *r0 = item + (size_t)i * d, *r1 = r0 + d, *r2 = r1 + d, *r3 = r2 + d;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        uint32_t c = 0;
        for (; c < d8; c += 8) {
            __m256 hv = _mm256_loadu_ps(h + c);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + c), hv, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(r1 + c), hv, a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(r2 + c), hv, a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(r3 + c), hv, a3);
        }
        if (c < d) { /* masked lanes load 0: they add 0 * 0 like dot_lanes */
            __m256 hv = _mm256_maskload_ps(h + c, tail);
            a0 = _mm256_fmadd_ps(_mm256_maskload_ps(r0 + c, tail), hv, a0);
            a1 = _mm256_fmadd_ps(_mm256_maskload_ps(r1 + c, tail), hv, a1);
            a2 = _mm256_fmadd_ps(_mm256_maskload_ps(r2 + c, tail), hv, a2);
            a3 = _mm256_fmadd_ps(_mm256_maskload_ps(r3 + c, tail), hv, a3);
        }
        _mm_storeu_ps(scores + i, hsum4(a0, a1, a2, a3));
    }
    for (; i < n; i++) scores[i] = dot_lanes(item + (size_t)i * d, h, d);
}

static int have_avx2(void) {
    static int v = -1; /* every thread computes the same value */
    int x = __atomic_load_n(&v, __ATOMIC_RELAXED);
    if (x < 0) {
        __builtin_cpu_init();
        x = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        __atomic_store_n(&v, x, __ATOMIC_RELAXED);
    }
    return x;
}
#endif

void dr__topk_scan_scores(const float *item, uint32_t n, uint32_t d, const float *h,
                         float *scores, int portable) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (!portable) {
        if (have_avx2()) {
            scan_avx2(item, n, d, h, scores);
        } else { /* x86 without FMA: fmaf would be a slow library call; BLAS instead (the
                  * scores then differ from the fixed order by rounding only) */
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)d, 1.0f, item, (int)d, h, 1,
                        0.0f, scores, 1);
        }
        return;
    }
#endif
    (void)portable;
    for (uint32_t i = 0; i < n; i++) scores[i] = dot_lanes(item + (size_t)i * d, h, d);
}

dr_status dr__topk_scan(const float *item, uint32_t n, uint32_t d, const float *h,
                       const uint32_t *exclude, size_t n_exclude, uint32_t k, dr_topk_scratch *s,
                       uint32_t *items_out, float *scores_out, uint32_t *n_out, dr_error *err) {
    if (!item || !h || !s || !n_out || (k && !items_out) || (n_exclude && !exclude))
        return dr__fail(err, DR_ARG, "dr__topk_scan: NULL argument");
    if (n > s->n_items || k > s->k_max)
        return dr__fail(err, DR_ARG, "dr__topk_scan: n %u / k %u exceed the scratch (%u, %u)", n, k,
                       s->n_items, s->k_max);
    if (d == 0 || d > INT32_MAX) return dr__fail(err, DR_ARG, "dr__topk_scan: bad shape (%u, %u)", n, d);
    dr__topk_scan_scores(item, n, d, h, s->scores, 0);
    return select_k(s->scores, n, exclude, n_exclude, k, s, items_out, scores_out, n_out, err);
}
