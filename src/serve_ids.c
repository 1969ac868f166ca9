/*
 * serve_ids.c - insert-only string -> id tables that readers probe without locks (serve_ids.h).
 */
#include "serve_ids.h"

#include <string.h>

dr_status dr__idmap_init(dr_idmap *m, uint32_t cap) {
    uint32_t sz = 16;
    while (sz < 2u * cap) sz *= 2;
    m->cap = cap;
    m->mask = sz - 1;
    m->name = dr__calloc(cap ? cap : 1, sizeof *m->name);
    m->slot = dr__calloc(sz, sizeof *m->slot);
    atomic_init(&m->n, 0);
    return m->name && m->slot ? DR_OK : DR_NOMEM;
}

void dr__idmap_free(dr_idmap *m) {
    uint32_t n = atomic_load(&m->n);
    for (uint32_t i = m->n_base; m->name && i < n; i++) dr__free((void *)m->name[i]);
    dr__free(m->name);
    dr__free(m->slot);
}

uint32_t dr__idmap_find(const dr_idmap *m, const char *s, size_t len) {
    uint64_t h = dr__hash_bytes(s, len);
    for (uint32_t k = (uint32_t)h & m->mask;; k = (k + 1) & m->mask) {
        uint32_t v = atomic_load_explicit(&((dr_idmap *)m)->slot[k], memory_order_acquire);
        if (!v) return UINT32_MAX;
        const char *nm = m->name[v - 1];
        if (strncmp(nm, s, len) == 0 && nm[len] == 0) return v - 1;
    }
}

/* Writer only: adds name (owned when owned = 1) as the next id; UINT32_MAX when full. */
uint32_t dr__idmap_add(dr_idmap *m, const char *name, size_t len) {
    uint32_t id = atomic_load_explicit(&m->n, memory_order_relaxed);
    if (id >= m->cap) return UINT32_MAX;
    m->name[id] = name;
    uint64_t h = dr__hash_bytes(name, len);
    uint32_t k = (uint32_t)h & m->mask;
    while (atomic_load_explicit(&m->slot[k], memory_order_relaxed)) k = (k + 1) & m->mask;
    atomic_store_explicit(&m->slot[k], id + 1, memory_order_release);
    atomic_store_explicit(&m->n, id + 1, memory_order_release);
    return id;
}
