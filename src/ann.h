/*
 * ann.h - two-stage retrieval for large catalogues (internal). See ann.c.
 *
 * Stage one: an approximate index (HNSW, hnswlib through ann_hnsw.cc) over the base's item
 * latents by inner product gives the C items nearest to the query; stage two rescored them,
 * with any extra candidates the caller names (the adapter's hot and cold items), exactly with
 * the current latents through the exact scan (dr__topk_scan), history excluded.
 *
 * Threads: any number of dr__ann_search / dr__ann_topk calls run together (a shared lock);
 * dr__ann_add and dr__ann_set_ef take the exclusive lock (writers are preferred, so a stream
 * of readers cannot starve the server's apply thread).
 */
#ifndef DR_ANN_H
#define DR_ANN_H

#include "common.h"
#include "topk.h"

typedef struct dr_ann_params {
    uint32_t M;               /* links per node and layer (base layer 2M) (32: at 16 the same
                                 recall needed 4x the ef on bench_ann's 14,411 items) */
    uint32_t ef_construction; /* candidate list while building (200) */
    uint32_t ef_search;       /* candidate list while searching, kept in the file (128) */
    uint32_t candidates;      /* C: approximate candidates per request, kept in the file (100:
                                 the adapter moves z' from the indexed z, so more than k) */
    int threads;              /* build threads (1: the same bytes for the same seed; more are
                                 faster but insert in a racing order) */
    uint64_t seed;            /* hnswlib's level generator (42) */
} dr_ann_params;

dr_ann_params dr__ann_default_params(void);

typedef struct dr_ann dr_ann;

/* An index over rows 0..n-1 of z (n, d) (labels = row numbers), room for extra more. */
dr_status dr__ann_build(const float *z, uint32_t n, uint32_t d, uint32_t extra,
                       const dr_ann_params *p, dr_ann **out, dr_error *err);
void dr__ann_free(dr_ann *a);

/* Writes the index to path (through path.tmp and a rename): header, the checkpoint's hash
 * (16 hex digits, serve_live.c's XXH64 of the checkpoint file), the graph, checksums. */
dr_status dr__ann_save(const dr_ann *a, const char *path, const char *ckpt_hash, dr_error *err);
/* Loads path for a checkpoint with hash ckpt_hash and latent size d, with room for extra more
 * items. DR_FORMAT naming the file and the reason for anything else: not an index, another
 * version, truncated, a checksum mismatch, another checkpoint, another dimension. */
dr_status dr__ann_load(const char *path, const char *ckpt_hash, uint32_t d, uint32_t extra,
                      dr_ann **out, dr_error *err);

/* Inserts item id with latent v (d), or moves it there when it is in the index. */
dr_status dr__ann_add(dr_ann *a, uint32_t id, const float *v, dr_error *err);
void dr__ann_set_ef(dr_ann *a, uint32_t ef);
uint32_t dr__ann_ef(const dr_ann *a);
uint32_t dr__ann_candidates(const dr_ann *a);
uint32_t dr__ann_count(const dr_ann *a);
uint32_t dr__ann_dim(const dr_ann *a);
size_t dr__ann_bytes(const dr_ann *a);
double dr__ann_build_seconds(const dr_ann *a); /* dr__ann_build's wall time (0 when loaded) */

/* Up to c ids nearest to q (d) by inner product, in no order; *n_out of them. */
dr_status dr__ann_search(dr_ann *a, const float *q, uint32_t c, uint32_t *ids, uint32_t *n_out,
                        dr_error *err);

typedef struct dr_ann_scratch dr_ann_scratch;
/* Buffers of one serving thread: up to max_cand candidates of stride floats, k_max results. */
dr_status dr__ann_scratch_create(uint32_t max_cand, uint32_t stride, uint32_t k_max,
                                dr_ann_scratch **out, dr_error *err);
void dr__ann_scratch_free(dr_ann_scratch *s);

/*
 * Two stages: the c ids nearest to h (its first d floats) by the index, plus extra (n_extra
 * ids) and the rows [lo, hi), those < n kept once each, less exclude (n_exclude ids), rescored
 * over items (n rows of stride floats) by dr__topk_scan. Ties go to the lower id, and the
 * scores are the exact scan's bits, so when the candidates hold the exact top k the answer is
 * the exact scan's. DR_RANGE when the candidates exceed the scratch.
 */
dr_status dr__ann_topk(dr_ann *a, uint32_t c, const float *items, uint32_t n, uint32_t stride,
                      const float *h, const uint32_t *extra, size_t n_extra, uint32_t lo,
                      uint32_t hi, const uint32_t *exclude, size_t n_exclude, uint32_t k,
                      dr_ann_scratch *s, uint32_t *items_out, float *scores_out, uint32_t *n_out,
                      dr_error *err);

/*
 * A synthetic catalogue for measuring recall (bench/bench_ann.c, tests): n items of dimension
 * d (<= DR_ANN_SYNTH_MAX_DIM) in max(16, sqrt(n)) clusters of skewed sizes (cluster
 * floor(K u^2)), each item its cluster's centre + noise (sd 0.6 of the centre's), scaled by a
 * log-normal "popularity" norm (sd 0.25), so inner-product order differs from cosine order as
 * in trained models. Queries: a mix a c1 + (1 - a) c2 of two clusters drawn the same way
 * (a uniform) + the same noise. z (n, d), q (m, d). Same seed, same bytes; stream tells query
 * sets apart (a tuning set and a measured set).
 */
#define DR_ANN_SYNTH_MAX_DIM 1024u
void dr__ann_synth_items(float *z, size_t n, uint32_t d, uint64_t seed);
void dr__ann_synth_queries(float *q, size_t m, size_t n, uint32_t d, uint64_t seed, uint64_t stream);

#endif /* DR_ANN_H */
