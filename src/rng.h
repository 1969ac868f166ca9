/*
 * rng.h - deterministic random numbers: splitmix64 seeding + xoshiro256**.
 *
 * DESIGN: header-only so hot loops inline it; one state per stream, seeded from
 * (seed, stream id) so threads get independent, reproducible streams. rand() is rejected:
 * global state, platform-dependent sequence.
 */
#ifndef DR_RNG_H
#define DR_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct dr_rng {
    uint64_t s[4];
} dr_rng;

static inline uint64_t dr__splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline void dr__rng_seed(dr_rng *r, uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ULL + 0x632be59bd9b4e019ULL);
    for (int i = 0; i < 4; i++) r->s[i] = dr__splitmix64(&x);
}

static inline uint64_t dr__rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t dr__rng_u64(dr_rng *r) {
    uint64_t *s = r->s;
    uint64_t res = dr__rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = dr__rotl64(s[3], 45);
    return res;
}

/* Uniform in [0, 1) with 53 bits. */
static inline double dr__rng_uniform(dr_rng *r) {
    return (double)(dr__rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform integer in [0, n), unbiased (Lemire's method). n > 0. */
static inline uint64_t dr__rng_below(dr_rng *r, uint64_t n) {
    uint64_t x = dr__rng_u64(r);
    __uint128_t m = (__uint128_t)x * n;
    uint64_t l = (uint64_t)m;
    if (l < n) {
        uint64_t t = -n % n;
        while (l < t) {
            x = dr__rng_u64(r);
            m = (__uint128_t)x * n;
            l = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

/* Standard normal (Box-Muller, one value per call; deterministic). */
static inline double dr__rng_normal(dr_rng *r) {
    double u1 = dr__rng_uniform(r), u2 = dr__rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Gamma(shape, 1) by Marsaglia-Tsang; shape > 0. */
static inline double dr__rng_gamma(dr_rng *r, double shape) {
    if (shape < 1.0) {
        double u = dr__rng_uniform(r);
        if (u < 1e-300) u = 1e-300;
        return dr__rng_gamma(r, shape + 1.0) * pow(u, 1.0 / shape);
    }
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = dr__rng_normal(r), v = 1.0 + c * x;
        if (v <= 0) continue;
        v = v * v * v;
        double u = dr__rng_uniform(r);
        if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
        if (log(u) < 0.5 * x * x + d * (1.0 - v + log(v))) return d * v;
    }
}

#endif /* DR_RNG_H */
