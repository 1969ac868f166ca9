/*
 * scan.h - the one scoring scan of every retrieval path: scores (n) = item (n, d) . h in a
 * fixed summation order, with kernels chosen at run time by the CPU (AVX-512F, AVX2+FMA,
 * portable C) that all give the same bits, and a bf16 copy of an item table for a scan that
 * reads half the bytes (topk.h rescores its candidates exactly in f32).
 *
 * The order (every variant): lane l of 16 accumulates the products of the columns
 * c = l mod 16 with fused multiply-adds, ceil(d / 16) of them per lane (columns past d add
 * 0 * 0); then t_l = a_l + a_{l+8} (l < 8) and the score is
 * ((t0 + t1) + (t2 + t3)) + ((t4 + t5) + (t6 + t7)).
 *
 * Variant in use: DYNREC_SCAN=portable|avx2|avx512 in the environment (read once; a variant
 * the CPU lacks is refused with a message on stderr and the best one is used), else the best
 * the CPU has. dr__scan_force overrides both (tests, benchmarks).
 */
#ifndef DR_SCAN_H
#define DR_SCAN_H

#include "common.h"

#define DR_SCAN_VARIANTS(X) X(PORTABLE, "portable") X(AVX2, "avx2") X(AVX512, "avx512")
typedef enum {
#define DR_SCAN_ENUM(id, name) DR_SCAN_##id,
    DR_SCAN_VARIANTS(DR_SCAN_ENUM)
#undef DR_SCAN_ENUM
    DR_SCAN_N
} dr_scan_variant;

/* "portable", "avx2", "avx512"; "?" for anything else. */
const char *dr__scan_variant_name(int v);
/* 1 when this build and this CPU can run variant v. */
int dr__scan_supported(int v);
/* The variant every dr__scan_* call without an explicit variant uses. */
int dr__scan_variant(void);
/* Use v from now on (-1: back to the environment / the CPU's best). DR_UNSUPPORTED when the
 * CPU lacks v, DR_ARG for an unknown v. Not meant to be called while other threads scan. */
dr_status dr__scan_force(int v, dr_error *err);

/* scores (n) = item (n, d; rows of d floats) . h (d) in the fixed order, by variant v. */
void dr__scan_f32_v(int v, const float *item, uint32_t n, uint32_t d, const float *h,
                    float *scores);
/* The same with the variant in use. */
void dr__scan_f32(const float *item, uint32_t n, uint32_t d, const float *h, float *scores);

/* ---------------------------------------------------------------- bf16 copy of a table */

/* A bf16 copy (round to nearest even) of up to cap rows of d floats, rows zero-padded to dp
 * (d rounded up to 16), and bounds for the rescoring: the largest ||z_i - bf16(z_i)||_2 and
 * the largest ||z_i||_2 or ||bf16(z_i)||_2 of the rows set since the last reset (maxima only
 * grow, so a row rewritten with smaller values leaves the bounds valid, only looser). */
typedef struct dr_scan_bf16 {
    uint32_t cap, d, dp;
    uint16_t *q;       /* (cap, dp) */
    double max_err;    /* max_i ||z_i - q_i||_2 */
    double max_norm;   /* max_i max(||z_i||_2, ||q_i||_2) */
} dr_scan_bf16;

dr_status dr__bf16_create(uint32_t cap, uint32_t d, dr_scan_bf16 **out, dr_error *err);
void dr__bf16_free(dr_scan_bf16 *t);
/* Rows [from, from + count) from z (rows of stride floats, the first d used). */
void dr__bf16_set_rows(dr_scan_bf16 *t, const float *z, size_t stride, uint32_t from,
                       uint32_t count);
/* Forget the bounds (before every row is set again). */
void dr__bf16_reset_bounds(dr_scan_bf16 *t);
/* Bytes of the copy. */
size_t dr__bf16_bytes(const dr_scan_bf16 *t);
/* scores (n) = bf16 rows [0, n) . hp in the fixed order; hp has t->dp floats (zero past d). */
void dr__scan_bf16_v(int v, const dr_scan_bf16 *t, uint32_t n, const float *hp, float *scores);
void dr__scan_bf16(const dr_scan_bf16 *t, uint32_t n, const float *hp, float *scores);
/* A bound on |f32 scan score - bf16 scan score| of every row for a query of norm h_norm
 * (the bf16 error plus both scans' rounding). +inf when a bound is not finite. */
double dr__bf16_margin(const dr_scan_bf16 *t, double h_norm);

/* The default rule for using the bf16 copy: DYNREC_SCAN_BF16=0 or 1 in the environment, else
 * 1 when the f32 table is at least DR_SCAN_BF16_MIN_BYTES (dynrec_limits.h). */
int dr__bf16_wanted(uint32_t n, uint32_t d);

#endif /* DR_SCAN_H */
