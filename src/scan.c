/*
 * scan.c - the fixed-order scoring scan (scan.h): f32 and bf16 tables, three kernels.
 *
 * DESIGN: a score is a dot product of d floats; every retrieval path (dr_recommend, the
 * evaluation harness, the adapter's snapshot recommend, the server) scores through this file,
 * so all of them give the same bits on every CPU. The summation order is fixed by 16 lanes
 * and one reduction tree (scan.h), which is what one AVX-512 register or two AVX2 registers
 * hold; the portable kernel emulates it with fmaf, so it is the slow twin of the others and
 * the kernel of CPUs without AVX2+FMA (on x86 without FMA, fmaf is a software routine: slow,
 * but the same bits). Kernels are compiled with target attributes and chosen at run time by
 * __builtin_cpu_supports, so one x86-64 binary runs on any x86-64; other architectures build
 * the portable kernel only. Rows are scored 4 at a time (4 independent accumulator chains hide
 * the FMA latency; the 4 reductions share shuffles), the last n % 4 rows one by one with the
 * same kernel, so a row's score does not depend on its neighbours or on n.
 * bf16 rather than int8 with a per-row scale: bf16 -> f32 is a 16-bit shift (exact, no scale
 * multiply, the same FMA kernel), the error bound is relative per element (2^-9), so one
 * Cauchy-Schwarz bound covers every row, and the 8-bit mantissa is enough to keep the exact
 * rescoring's candidate sets small. int8 reads half as many bytes again but needs a scale
 * per row, a looser bound on rows with one large value, and an integer kernel per variant.
 * Alternatives rejected: OpenBLAS sgemv (its summation order depends on n, the CPU and the
 * build, and it was 3x slower on an AVX-512 Xeon, issue 19), AVX-512 BF16 dot products
 * (vdpbf16ps rounds differently from f32 FMAs and few CPUs have it).
 */
#include "scan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define DR_SCAN_X86 1
#include <immintrin.h>
#endif

/* ---------------------------------------------------------------- variant choice */

const char *dr__scan_variant_name(int v) {
    switch (v) {
#define DR_SCAN_NAME(id, name) case DR_SCAN_##id: return name;
        DR_SCAN_VARIANTS(DR_SCAN_NAME)
#undef DR_SCAN_NAME
    default: return "?";
    }
}

int dr__scan_supported(int v) {
    if (v == DR_SCAN_PORTABLE) return 1;
#ifdef DR_SCAN_X86
    static int cache[DR_SCAN_N] = {1, -1, -1}; /* every thread computes the same values */
    if (v <= 0 || v >= DR_SCAN_N) return 0;
    int x = __atomic_load_n(&cache[v], __ATOMIC_RELAXED);
    if (x < 0) {
        __builtin_cpu_init();
        int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        x = v == DR_SCAN_AVX2 ? avx2 : avx2 && __builtin_cpu_supports("avx512f");
        __atomic_store_n(&cache[v], x, __ATOMIC_RELAXED);
    }
    return x;
#else
    return 0;
#endif
}

static int g_forced = -1; /* dr__scan_force */
static int g_auto = -1;   /* the environment's or the CPU's choice, computed once */

static int best_variant(void) {
    for (int v = DR_SCAN_N - 1; v > 0; v--)
        if (dr__scan_supported(v)) return v;
    return DR_SCAN_PORTABLE;
}

static int auto_variant(void) {
    int x = __atomic_load_n(&g_auto, __ATOMIC_RELAXED);
    if (x >= 0) return x;
    x = best_variant();
    const char *e = getenv("DYNREC_SCAN");
    if (e && *e) {
        int want = -1;
        for (int v = 0; v < DR_SCAN_N; v++)
            if (strcmp(e, dr__scan_variant_name(v)) == 0) want = v;
        if (want < 0)
            fprintf(stderr, "dynrec: DYNREC_SCAN=%s is not portable, avx2 or avx512; using %s\n", e,
                    dr__scan_variant_name(x));
        else if (!dr__scan_supported(want))
            fprintf(stderr, "dynrec: DYNREC_SCAN=%s: this CPU lacks it; using %s\n", e,
                    dr__scan_variant_name(x));
        else
            x = want;
    }
    __atomic_store_n(&g_auto, x, __ATOMIC_RELAXED);
    return x;
}

int dr__scan_variant(void) {
    int f = __atomic_load_n(&g_forced, __ATOMIC_RELAXED);
    return f >= 0 ? f : auto_variant();
}

dr_status dr__scan_force(int v, dr_error *err) {
    if (v < -1 || v >= DR_SCAN_N) return dr__fail(err, DR_ARG, "scan: unknown variant %d", v);
    if (v >= 0 && !dr__scan_supported(v))
        return dr__fail(err, DR_UNSUPPORTED, "scan: this CPU cannot run the %s kernel",
                        dr__scan_variant_name(v));
    __atomic_store_n(&g_forced, v, __ATOMIC_RELAXED);
    return DR_OK;
}

/* ---------------------------------------------------------------- portable kernels */

static inline float reduce16(const float *a) {
    float t[8];
    for (int l = 0; l < 8; l++) t[l] = a[l] + a[l + 8];
    return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}

static float dot_f32_portable(const float *r, const float *h, uint32_t d) {
    float a[16] = {0};
    for (uint32_t c0 = 0; c0 < d; c0 += 16)
        for (uint32_t l = 0; l < 16; l++) {
            uint32_t c = c0 + l;
            a[l] = c < d ? fmaf(r[c], h[c], a[l]) : fmaf(0.0f, 0.0f, a[l]);
        }
    return reduce16(a);
}

static inline float bf16_to_f32(uint16_t q) {
    uint32_t b = (uint32_t)q << 16;
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static float dot_bf16_portable(const uint16_t *r, const float *hp, uint32_t dp) {
    float a[16] = {0};
    for (uint32_t c0 = 0; c0 < dp; c0 += 16)
        for (uint32_t l = 0; l < 16; l++) a[l] = fmaf(bf16_to_f32(r[c0 + l]), hp[c0 + l], a[l]);
    return reduce16(a);
}

/* ---------------------------------------------------------------- x86 kernels */

#ifdef DR_SCAN_X86
/* t_l of 4 rows -> their 4 scores: hadd(hadd(a, b), hadd(c, d)) puts
 * (t0 + t1) + (t2 + t3) of each row in the low half and (t4 + t5) + (t6 + t7) in the high */
__attribute__((target("avx2,fma"))) static inline __m128 hsum4(__m256 a, __m256 b, __m256 c,
                                                              __m256 d) {
    __m256 x = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
}

/* first L (0..8) lanes set: a load from mask8 + 8 - L */
static const int32_t mask8[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

#define ROWS_AVX2(R)                                                                           \
    for (; c < d16; c += 16) {                                                                 \
        __m256 hl = _mm256_loadu_ps(h + c), hh = _mm256_loadu_ps(h + c + 8);                  \
        for (int j = 0; j < R; j++) {                                                          \
            lo[j] = _mm256_fmadd_ps(_mm256_loadu_ps(r[j] + c), hl, lo[j]);                     \
            hi[j] = _mm256_fmadd_ps(_mm256_loadu_ps(r[j] + c + 8), hh, hi[j]);                 \
        }                                                                                      \
    }                                                                                          \
    if (c < d) {                                                                               \
        __m256 hl = _mm256_maskload_ps(h + c, ml), hh = _mm256_maskload_ps(h + c + 8, mh);     \
        for (int j = 0; j < R; j++) {                                                          \
            lo[j] = _mm256_fmadd_ps(_mm256_maskload_ps(r[j] + c, ml), hl, lo[j]);              \
            hi[j] = _mm256_fmadd_ps(_mm256_maskload_ps(r[j] + c + 8, mh), hh, hi[j]);          \
        }                                                                                      \
    }

__attribute__((target("avx2,fma"))) static void scan_f32_avx2(const float *item, uint32_t n,
                                                             uint32_t d, const float *h,
                                                             float *scores) {
    uint32_t d16 = d & ~15u, t = d - d16, i = 0;
    __m256i ml = _mm256_loadu_si256((const __m256i *)(mask8 + 8 - (t < 8 ? t : 8)));
    __m256i mh = _mm256_loadu_si256((const __m256i *)(mask8 + 8 - (t > 8 ? t - 8 : 0)));
    for (; i + 4 <= n; i += 4) {
        const float *r[4];
        __m256 lo[4], hi[4];
        for (int j = 0; j < 4; j++) {
            r[j] = item + (size_t)(i + j) * d;
            lo[j] = hi[j] = _mm256_setzero_ps();
        }
        uint32_t c = 0;
        ROWS_AVX2(4)
        _mm_storeu_ps(scores + i, hsum4(_mm256_add_ps(lo[0], hi[0]), _mm256_add_ps(lo[1], hi[1]),
                                        _mm256_add_ps(lo[2], hi[2]), _mm256_add_ps(lo[3], hi[3])));
    }
    for (; i < n; i++) {
        const float *r[1] = {item + (size_t)i * d};
        __m256 lo[1] = {_mm256_setzero_ps()}, hi[1] = {_mm256_setzero_ps()};
        uint32_t c = 0;
        ROWS_AVX2(1)
        __m256 z = _mm256_setzero_ps();
        scores[i] = _mm_cvtss_f32(hsum4(_mm256_add_ps(lo[0], hi[0]), z, z, z));
    }
}

/* 8 bf16 at p as 8 floats */
#define BF8(p) _mm256_castsi256_ps(_mm256_slli_epi32(                                          \
    _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p))), 16))

__attribute__((target("avx2,fma"))) static void scan_bf16_avx2(const uint16_t *q, uint32_t n,
                                                              uint32_t dp, const float *h,
                                                              float *scores) {
    uint32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint16_t *r0 = q + (size_t)i * dp, *r1 = r0 + dp, *r2 = r1 + dp, *r3 = r2 + dp;
        __m256 l0 = _mm256_setzero_ps(), l1 = l0, l2 = l0, l3 = l0, h0 = l0, h1 = l0, h2 = l0,
               h3 = l0;
        for (uint32_t c = 0; c < dp; c += 16) {
            __m256 hl = _mm256_loadu_ps(h + c), hh = _mm256_loadu_ps(h + c + 8);
            l0 = _mm256_fmadd_ps(BF8(r0 + c), hl, l0);
            h0 = _mm256_fmadd_ps(BF8(r0 + c + 8), hh, h0);
            l1 = _mm256_fmadd_ps(BF8(r1 + c), hl, l1);
            h1 = _mm256_fmadd_ps(BF8(r1 + c + 8), hh, h1);
            l2 = _mm256_fmadd_ps(BF8(r2 + c), hl, l2);
            h2 = _mm256_fmadd_ps(BF8(r2 + c + 8), hh, h2);
            l3 = _mm256_fmadd_ps(BF8(r3 + c), hl, l3);
            h3 = _mm256_fmadd_ps(BF8(r3 + c + 8), hh, h3);
        }
        _mm_storeu_ps(scores + i, hsum4(_mm256_add_ps(l0, h0), _mm256_add_ps(l1, h1),
                                        _mm256_add_ps(l2, h2), _mm256_add_ps(l3, h3)));
    }
    for (; i < n; i++) {
        const uint16_t *r0 = q + (size_t)i * dp;
        __m256 l0 = _mm256_setzero_ps(), h0 = l0;
        for (uint32_t c = 0; c < dp; c += 16) {
            l0 = _mm256_fmadd_ps(BF8(r0 + c), _mm256_loadu_ps(h + c), l0);
            h0 = _mm256_fmadd_ps(BF8(r0 + c + 8), _mm256_loadu_ps(h + c + 8), h0);
        }
        __m256 z = _mm256_setzero_ps();
        scores[i] = _mm_cvtss_f32(hsum4(_mm256_add_ps(l0, h0), z, z, z));
    }
}

/* the 16 lanes of a folded to 8: t_l = a_l + a_{l+8} */
__attribute__((target("avx512f,avx2,fma"))) static inline __m256 fold16(__m512 a) {
    return _mm256_add_ps(_mm512_castps512_ps256(a),
                         _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
}

__attribute__((target("avx512f,avx2,fma"))) static void scan_f32_avx512(const float *item,
                                                                       uint32_t n, uint32_t d,
                                                                       const float *h,
                                                                       float *scores) {
    uint32_t d16 = d & ~15u, i = 0;
    __mmask16 tm = (__mmask16)((1u << (d - d16)) - 1u);
    for (; i + 4 <= n; i += 4) {
        const float *r0 = item + (size_t)i * d, *r1 = r0 + d, *r2 = r1 + d, *r3 = r2 + d;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        uint32_t c = 0;
        for (; c < d16; c += 16) {
            __m512 hv = _mm512_loadu_ps(h + c);
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(r0 + c), hv, a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(r1 + c), hv, a1);
            a2 = _mm512_fmadd_ps(_mm512_loadu_ps(r2 + c), hv, a2);
            a3 = _mm512_fmadd_ps(_mm512_loadu_ps(r3 + c), hv, a3);
        }
        if (c < d) { /* masked lanes load 0: they add 0 * 0 like the portable kernel */
            __m512 hv = _mm512_maskz_loadu_ps(tm, h + c);
            a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tm, r0 + c), hv, a0);
            a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tm, r1 + c), hv, a1);
            a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tm, r2 + c), hv, a2);
            a3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tm, r3 + c), hv, a3);
        }
        _mm_storeu_ps(scores + i, hsum4(fold16(a0), fold16(a1), fold16(a2), fold16(a3)));
    }
    for (; i < n; i++) {
        const float *r0 = item + (size_t)i * d;
        __m512 a0 = _mm512_setzero_ps();
        uint32_t c = 0;
        for (; c < d16; c += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(r0 + c), _mm512_loadu_ps(h + c), a0);
        if (c < d)
            a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tm, r0 + c), _mm512_maskz_loadu_ps(tm, h + c), a0);
        __m256 z = _mm256_setzero_ps();
        scores[i] = _mm_cvtss_f32(hsum4(fold16(a0), z, z, z));
    }
}

/* 16 bf16 at p as 16 floats */
#define BF16x16(p) _mm512_castsi512_ps(_mm512_slli_epi32(                                      \
    _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(p))), 16))

__attribute__((target("avx512f,avx2,fma"))) static void scan_bf16_avx512(const uint16_t *q,
                                                                        uint32_t n, uint32_t dp,
                                                                        const float *h,
                                                                        float *scores) {
    uint32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint16_t *r0 = q + (size_t)i * dp, *r1 = r0 + dp, *r2 = r1 + dp, *r3 = r2 + dp;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (uint32_t c = 0; c < dp; c += 16) {
            __m512 hv = _mm512_loadu_ps(h + c);
            a0 = _mm512_fmadd_ps(BF16x16(r0 + c), hv, a0);
            a1 = _mm512_fmadd_ps(BF16x16(r1 + c), hv, a1);
            a2 = _mm512_fmadd_ps(BF16x16(r2 + c), hv, a2);
            a3 = _mm512_fmadd_ps(BF16x16(r3 + c), hv, a3);
        }
        _mm_storeu_ps(scores + i, hsum4(fold16(a0), fold16(a1), fold16(a2), fold16(a3)));
    }
    for (; i < n; i++) {
        const uint16_t *r0 = q + (size_t)i * dp;
        __m512 a0 = _mm512_setzero_ps();
        for (uint32_t c = 0; c < dp; c += 16) a0 = _mm512_fmadd_ps(BF16x16(r0 + c), _mm512_loadu_ps(h + c), a0);
        __m256 z = _mm256_setzero_ps();
        scores[i] = _mm_cvtss_f32(hsum4(fold16(a0), z, z, z));
    }
}
#endif /* DR_SCAN_X86 */

/* ---------------------------------------------------------------- dispatch */

void dr__scan_f32_v(int v, const float *item, uint32_t n, uint32_t d, const float *h,
                    float *scores) {
#ifdef DR_SCAN_X86
    if (v == DR_SCAN_AVX512) {
        scan_f32_avx512(item, n, d, h, scores);
        return;
    }
    if (v == DR_SCAN_AVX2) {
        scan_f32_avx2(item, n, d, h, scores);
        return;
    }
#endif
    (void)v;
    for (uint32_t i = 0; i < n; i++) scores[i] = dot_f32_portable(item + (size_t)i * d, h, d);
}

void dr__scan_f32(const float *item, uint32_t n, uint32_t d, const float *h, float *scores) {
    dr__scan_f32_v(dr__scan_variant(), item, n, d, h, scores);
}

void dr__scan_bf16_v(int v, const dr_scan_bf16 *t, uint32_t n, const float *hp, float *scores) {
#ifdef DR_SCAN_X86
    if (v == DR_SCAN_AVX512) {
        scan_bf16_avx512(t->q, n, t->dp, hp, scores);
        return;
    }
    if (v == DR_SCAN_AVX2) {
        scan_bf16_avx2(t->q, n, t->dp, hp, scores);
        return;
    }
#endif
    (void)v;
    for (uint32_t i = 0; i < n; i++) scores[i] = dot_bf16_portable(t->q + (size_t)i * t->dp, hp, t->dp);
}

void dr__scan_bf16(const dr_scan_bf16 *t, uint32_t n, const float *hp, float *scores) {
    dr__scan_bf16_v(dr__scan_variant(), t, n, hp, scores);
}

/* ---------------------------------------------------------------- bf16 table */

dr_status dr__bf16_create(uint32_t cap, uint32_t d, dr_scan_bf16 **out, dr_error *err) {
    if (!out) return dr__fail(err, DR_ARG, "dr__bf16_create: out is NULL");
    *out = NULL;
    if (d == 0 || d > DR_MAX_DIM + 16)
        return dr__fail(err, DR_ARG, "dr__bf16_create: dimension %u outside 1..%u", d, DR_MAX_DIM + 16);
    dr_scan_bf16 *t = dr__calloc(1, sizeof *t);
    if (!t) return dr__fail(err, DR_NOMEM, "scan: out of memory for a bf16 table");
    t->cap = cap;
    t->d = d;
    t->dp = (d + 15u) & ~15u;
    t->q = dr__calloc((size_t)(cap ? cap : 1) * t->dp, sizeof *t->q);
    if (!t->q) {
        dr__free(t);
        return dr__fail(err, DR_NOMEM, "scan: out of memory for a bf16 table of %u x %u", cap, d);
    }
    *out = t;
    return DR_OK;
}

void dr__bf16_free(dr_scan_bf16 *t) {
    if (!t) return;
    dr__free(t->q);
    dr__free(t);
}

static inline uint16_t f32_to_bf16(float f) {
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    if (isnan(f)) return (uint16_t)(b >> 16 | 0x40); /* stays a NaN */
    return (uint16_t)((b + 0x7FFFu + (b >> 16 & 1u)) >> 16);
}

void dr__bf16_set_rows(dr_scan_bf16 *t, const float *z, size_t stride, uint32_t from,
                       uint32_t count) {
    for (uint32_t i = from; i < from + count && i < t->cap; i++) {
        const float *r = z + (size_t)i * stride;
        uint16_t *q = t->q + (size_t)i * t->dp;
        double e2 = 0, nz = 0, nq = 0;
        for (uint32_t c = 0; c < t->d; c++) {
            q[c] = f32_to_bf16(r[c]);
            double x = r[c], y = bf16_to_f32(q[c]);
            e2 += (x - y) * (x - y);
            nz += x * x;
            nq += y * y;
        }
        double e = sqrt(e2), nm = sqrt(nz > nq ? nz : nq);
        /* a NaN (from an infinite or NaN value) sticks: the margin becomes +inf */
        if (!isnan(t->max_err) && !(e <= t->max_err)) t->max_err = e;
        if (!isnan(t->max_norm) && !(nm <= t->max_norm)) t->max_norm = nm;
    }
}

void dr__bf16_reset_bounds(dr_scan_bf16 *t) {
    t->max_err = 0;
    t->max_norm = 0;
}

size_t dr__bf16_bytes(const dr_scan_bf16 *t) {
    return t ? (size_t)t->cap * t->dp * sizeof *t->q : 0;
}

double dr__bf16_margin(const dr_scan_bf16 *t, double h_norm) {
    /* each score is at most m = ceil(d / 16) + 4 roundings deep, so each scan's error is at
     * most gamma_m ||h|| ||row|| (gamma_m = m u / (1 - m u), u = 2^-24); the bf16 rows differ
     * from the f32 ones by ||h|| ||z - q|| (Cauchy-Schwarz). Widened by 1e-6 relative and an
     * absolute term for subnormal products, so the double arithmetic here cannot undercut it. */
    double m = (double)(t->dp / 16 + 4), u = 0x1p-24, gamma = m * u / (1.0 - m * u);
    double b = h_norm * (t->max_err + 2.0 * gamma * t->max_norm) * (1.0 + 1e-6) +
               m * 0x1p-126 * (double)t->dp;
    return isfinite(b) ? b : INFINITY;
}

int dr__bf16_wanted(uint32_t n, uint32_t d) {
    const char *e = getenv("DYNREC_SCAN_BF16");
    if (e && (*e == '0' || *e == '1')) return *e == '1';
    return (double)n * d * sizeof(float) >= (double)DR_SCAN_BF16_MIN_BYTES;
}
