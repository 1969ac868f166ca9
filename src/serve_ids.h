/*
 * serve_ids.h - the serving core's id registries: insert-only open-addressing tables of atomic
 * slots mapping an external id to a dense row. One writer adds (fills the name, then publishes
 * the slot with release); any number of readers find (acquire) without locks. Ids below n_base
 * are the model's and borrowed; later ones are owned and freed with the table.
 */
#ifndef DR_SERVE_IDS_H
#define DR_SERVE_IDS_H

#include <stdatomic.h>

#include "common.h"

typedef struct dr_idmap {
    uint32_t n_base, cap;       /* ids < n_base come from the model; at most cap ids */
    _Atomic uint32_t n;         /* ids in use (writer stores with release) */
    const char **name;          /* (cap) ids >= n_base are owned */
    _Atomic uint32_t *slot;     /* (mask + 1) id + 1; 0 = empty */
    uint32_t mask;
} dr_idmap;

/* Room for cap ids; DR_NOMEM (the table then only needs dr__idmap_free). */
dr_status dr__idmap_init(dr_idmap *m, uint32_t cap);
void dr__idmap_free(dr_idmap *m);
/* The id of s[0..len), UINT32_MAX when absent. Any thread. */
uint32_t dr__idmap_find(const dr_idmap *m, const char *s, size_t len);
/* Writer only: adds name (owned when its id >= n_base) as the next id; UINT32_MAX when full. */
uint32_t dr__idmap_add(dr_idmap *m, const char *name, size_t len);

#endif /* DR_SERVE_IDS_H */
