/*
 * ann_hnsw.h - the C face of hnswlib (Debian libhnswlib-dev, header-only C++), for ann.c only.
 * An HNSW graph over float vectors of dimension d with hnswlib's inner-product space
 * (distance 1 - q . x), labels = dynrec item ids. Implemented in ann_hnsw.cc (g++).
 *
 * Every function catches what hnswlib throws: a failed allocation (std::bad_alloc or hnswlib's
 * "Not enough memory") returns DR_HNSW_NOMEM, anything else DR_HNSW_FAIL with its text in msg.
 * hnswlib's own malloc/realloc/free go through dr__malloc, so allocation-failure tests reach
 * them (its std containers use operator new and are not counted).
 *
 * Threads: none inside. Any number of concurrent searches are safe while nothing is added;
 * add, set_ef and free need the caller's exclusive lock (ann.c's rwlock).
 */
#ifndef DR_ANN_HNSW_H
#define DR_ANN_HNSW_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { DR_HNSW_OK = 0, DR_HNSW_NOMEM = 1, DR_HNSW_FAIL = 2 };

typedef struct dr_hnsw dr_hnsw;

/* An empty graph with room for cap vectors (grown by add when full). M: links per node per
 * upper layer (2M on the base layer); ef_construction: candidate list while inserting. */
int dr__hnsw_create(uint32_t d, uint32_t cap, uint32_t M, uint32_t ef_construction,
                    uint64_t seed, dr_hnsw **out, char *msg, size_t msg_size);
void dr__hnsw_free(dr_hnsw *h);
/* Inserts v (d) as label, or moves label's vector to v when it is already there. Concurrent
 * adds of distinct labels are safe with each other (not with searches). */
int dr__hnsw_add(dr_hnsw *h, const float *v, uint32_t label, char *msg, size_t msg_size);
/* Grows the capacity to at least cap (exclusive). */
int dr__hnsw_reserve(dr_hnsw *h, uint32_t cap, char *msg, size_t msg_size);
/* The search's candidate list (>= k is used). Exclusive. */
void dr__hnsw_set_ef(dr_hnsw *h, uint32_t ef);
/* Up to k labels nearest to q (d) by inner product, in no particular order; *n_out of them. */
int dr__hnsw_search(const dr_hnsw *h, const float *q, uint32_t k, uint32_t *labels,
                    uint32_t *n_out, char *msg, size_t msg_size);
uint32_t dr__hnsw_count(const dr_hnsw *h);
uint32_t dr__hnsw_dim(const dr_hnsw *h);
uint32_t dr__hnsw_m(const dr_hnsw *h);
/* Bytes the graph holds (vectors, links, locks, label map; an estimate for the map). */
size_t dr__hnsw_bytes(const dr_hnsw *h);

/* hnswlib's own serialisation (the fields and order of HierarchicalNSW::saveIndex) to f. */
int dr__hnsw_write(const dr_hnsw *h, FILE *f, char *msg, size_t msg_size);
/* Reads what dr__hnsw_write wrote from buf (n bytes), checking every size, link count, link
 * target, level and label before use (hnswlib's loadIndex checks little), with room for
 * extra_cap more vectors. DR_HNSW_FAIL with the reason for a malformed buffer. */
int dr__hnsw_read(const void *buf, size_t n, uint32_t d, uint32_t extra_cap, dr_hnsw **out,
                  char *msg, size_t msg_size);

#ifdef __cplusplus
}
#endif

#endif /* DR_ANN_HNSW_H */
