/*
 * ann_hnsw.cc - the C face of hnswlib (ann_hnsw.h): the only C++ in dynrec, compiled by g++
 * when the header is present (Makefile), a stub that says so otherwise.
 *
 * DESIGN: hnswlib (Debian libhnswlib-dev 0.6.2) is header-only C++, so a few extern "C"
 * functions wrap one HierarchicalNSW<float> over InnerProductSpace (distance 1 - q . x, the
 * graph built directly on inner products). The usual reduction of inner product to L2 (store
 * [x, sqrt(R^2 - |x|^2)], query [q, 0]; Bachrach et al. 2014) was measured and rejected: on
 * bench_ann's clustered 10^5 items at ef 512 its recall@10 was 0.78 against 0.99 here (the
 * extra coordinate dominates the distances when norms vary). faiss was rejected: Debian's
 * libfaiss-dev 1.7.3 ships the C API headers but its only library, libfaiss.a, defines none of
 * the faiss_* functions they declare (`nm` finds 0), so it would need a C++ shim as well, plus
 * OpenMP and LAPACK at link time. Serialisation writes hnswlib's own fields in saveIndex's
 * order, but through a FILE* (dynrec's container puts a header and a hash before them) and the
 * reader checks every size and link before use: hnswlib's loadIndex takes a path, trusts the
 * link lists and would index out of bounds on a corrupt file.
 * hnswlib's malloc/realloc/free are routed to dr__malloc & co. (macros defined after every
 * standard header it includes), so the allocation-failure tests reach its large blocks; the
 * graph is sized by new_graph, not by hnswlib's sizing constructor, which leaks on a failure.
 */
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <stdexcept>

#include "ann_hnsw.h"

#if defined(__has_include)
#if __has_include(<hnswlib/hnswlib.h>) && !defined(DR_NO_HNSW)
#define DR_HAVE_HNSW 1
#endif
#endif

static void say(char *msg, size_t n, const char *what) {
    if (msg && n) snprintf(msg, n, "%s", what);
}

#ifdef DR_HAVE_HNSW
/* every standard header hnswlib includes, before the allocation macros below */
#include <algorithm>
#include <assert.h>
#include <atomic>
#include <cassert>
#include <cmath>
#include <deque>
#include <fstream>
#include <iostream>
#include <list>
#include <mutex>
#include <queue>
#include <random>
#include <stdlib.h>
#include <string.h>
#include <unordered_map>
#include <unordered_set>
#include <vector>
#include <immintrin.h>

extern "C" {
void *dr__malloc(size_t n);
void *dr__realloc(void *p, size_t n);
void dr__free(void *p);
}

/* PAD bytes after every block: hnswlib 0.6.2's searchBaseLayer prefetches from the id one past
 * a full upper-layer link list, a 4-byte read past the block its addPoint allocated
 * (AddressSanitizer finds it); the pad makes that read harmless. */
#define PAD 16
static void *hn_malloc(size_t n) {
    return dr__malloc(n + PAD);
}
static void *hn_realloc(void *p, size_t n) { return dr__realloc(p, n + PAD); }
static void hn_free(void *p) { dr__free(p); }

#include <hnswlib/visited_list_pool.h> /* before the macros: its mutex guards concurrent searches */
#if defined(__SANITIZE_THREAD__)
/* Under ThreadSanitizer the graph's own locks are no-ops. hnswlib's addPoint takes its `global`
 * mutex while holding the new element's list lock, and an insert that raised the top level locks
 * other lists while holding `global`: TSan reports that lock-order cycle even on one thread, and
 * often without the stacks a suppression would need. The cycle cannot close (an element is not
 * linked until its insert ends), and dynrec never needs those locks: ann.c's rwlock serialises
 * inserts against everything else, and a TSan build builds indexes on one thread (ann.c). */
namespace dr_quiet {
struct mutex {
    void lock() {}
    void unlock() {}
    bool try_lock() { return true; }
};
} // namespace dr_quiet
namespace std {
using dr_quiet_mutex = ::dr_quiet::mutex;
}
#define mutex dr_quiet_mutex
#endif
#define malloc(n) hn_malloc(n)
#define realloc(p, n) hn_realloc(p, n)
#define free(p) hn_free(p)
#include <hnswlib/hnswlib.h>
#undef malloc
#undef realloc
#undef free
#undef mutex

typedef hnswlib::HierarchicalNSW<float> graph;

struct dr_hnsw {
    hnswlib::InnerProductSpace *space; /* distance 1 - q . x */
    graph *g;
    uint32_t d, M;
};

static int caught(char *msg, size_t n, const char *what, int nomem) {
    say(msg, n, what);
    return nomem ? DR_HNSW_NOMEM : DR_HNSW_FAIL;
}
/* Inside a catch: frees h (may be NULL) and turns what was thrown into a status and msg. */
static int failed(dr_hnsw *h, char *msg, size_t n);
#define CATCH(msg, n)                                                                             \
    catch (...) { return failed(nullptr, msg, n); }

/* A graph for cap vectors: the fields hnswlib's sizing constructor sets, set here after its
 * empty constructor, so that a failed allocation leaves an object its destructor frees (the
 * sizing constructor throws half-way and leaks what it took before). Throws on failure. */
static graph *new_graph(hnswlib::SpaceInterface<float> *sp, size_t cap, size_t M, size_t efc,
                        size_t seed) {
    graph *g = new graph(sp);
    g->data_level0_memory_ = nullptr;
    g->linkLists_ = nullptr;
    g->visited_list_pool_ = nullptr;
    g->cur_element_count = 0;
    try {
        cap = cap ? cap : 1;
        g->max_elements_ = cap;
        g->num_deleted_ = 0;
        g->data_size_ = sp->get_data_size();
        g->fstdistfunc_ = sp->get_dist_func();
        g->dist_func_param_ = sp->get_dist_func_param();
        g->M_ = M;
        g->maxM_ = M;
        g->maxM0_ = 2 * M;
        g->ef_construction_ = std::max(efc, M);
        g->ef_ = 10;
        g->level_generator_.seed(seed);
        g->update_probability_generator_.seed(seed + 1);
        g->size_links_level0_ = g->maxM0_ * sizeof(hnswlib::tableint) + sizeof(hnswlib::linklistsizeint);
        g->size_data_per_element_ = g->size_links_level0_ + g->data_size_ + sizeof(hnswlib::labeltype);
        g->offsetData_ = g->size_links_level0_;
        g->label_offset_ = g->size_links_level0_ + g->data_size_;
        g->offsetLevel0_ = 0;
        g->enterpoint_node_ = (hnswlib::tableint)-1;
        g->maxlevel_ = -1;
        g->size_links_per_element_ = g->maxM_ * sizeof(hnswlib::tableint) + sizeof(hnswlib::linklistsizeint);
        g->mult_ = 1 / log(1.0 * (double)M);
        g->revSize_ = 1.0 / g->mult_;
        g->metric_distance_computations = 0;
        g->metric_hops = 0;
        decltype(g->link_list_locks_)(cap).swap(g->link_list_locks_);
        decltype(g->link_list_update_locks_)(graph::max_update_element_locks).swap(g->link_list_update_locks_);
        g->element_levels_.assign(cap, 0);
        g->data_level0_memory_ = (char *)hn_malloc(cap * g->size_data_per_element_);
        if (!g->data_level0_memory_) throw std::bad_alloc();
        g->linkLists_ = (char **)hn_malloc(sizeof(void *) * cap);
        if (!g->linkLists_) throw std::bad_alloc();
        g->visited_list_pool_ = new hnswlib::VisitedListPool(1, (int)cap);
        return g;
    } catch (...) {
        delete g;
        throw;
    }
}

static dr_hnsw *wrap(uint32_t d, uint32_t M) {
    dr_hnsw *h = new dr_hnsw();
    h->d = d;
    h->M = M;
    h->g = nullptr;
    try {
        h->space = new hnswlib::InnerProductSpace(d);
    } catch (...) {
        delete h;
        throw;
    }
    return h;
}

extern "C" void dr__hnsw_free(dr_hnsw *h) {
    if (!h) return;
    delete h->g;
    delete h->space;
    delete h;
}

static int failed(dr_hnsw *h, char *msg, size_t n) {
    dr__hnsw_free(h);
    try {
        throw;
    } catch (const std::bad_alloc &) {
        return caught(msg, n, "hnswlib: out of memory", 1);
    } catch (const std::exception &e) {
        return caught(msg, n, e.what(), strstr(e.what(), "Not enough memory") != nullptr);
    } catch (...) {
        return caught(msg, n, "hnswlib: unknown exception", 0);
    }
}

extern "C" int dr__hnsw_create(uint32_t d, uint32_t cap, uint32_t M, uint32_t ef_construction,
                               uint64_t seed, dr_hnsw **out, char *msg, size_t msg_size) {
    *out = nullptr;
    dr_hnsw *h = nullptr;
    try {
        h = wrap(d, M);
        h->g = new_graph(h->space, cap, M, ef_construction, (size_t)seed);
        *out = h;
        return DR_HNSW_OK;
    } catch (...) {
        return failed(h, msg, msg_size);
    }
}

extern "C" int dr__hnsw_reserve(dr_hnsw *h, uint32_t cap, char *msg, size_t msg_size) {
    try {
        if (cap > h->g->max_elements_) h->g->resizeIndex(cap);
        return DR_HNSW_OK;
    }
    CATCH(msg, msg_size)
}

extern "C" int dr__hnsw_add(dr_hnsw *h, const float *v, uint32_t label, char *msg, size_t msg_size) {
    try {
        graph *g = h->g;
        if (g->cur_element_count >= g->max_elements_ &&
            g->label_lookup_.find(label) == g->label_lookup_.end())
            g->resizeIndex(g->max_elements_ + g->max_elements_ / 2 + 16);
        g->addPoint(v, (hnswlib::labeltype)label);
        return DR_HNSW_OK;
    }
    CATCH(msg, msg_size)
}

extern "C" void dr__hnsw_set_ef(dr_hnsw *h, uint32_t ef) { h->g->setEf(ef ? ef : 1); }

extern "C" int dr__hnsw_search(const dr_hnsw *h, const float *q, uint32_t k, uint32_t *labels,
                               uint32_t *n_out, char *msg, size_t msg_size) {
    *n_out = 0;
    try {
        auto r = h->g->searchKnn(q, k);
        uint32_t n = 0;
        while (!r.empty() && n < k) {
            labels[n++] = (uint32_t)r.top().second;
            r.pop();
        }
        *n_out = n;
        return DR_HNSW_OK;
    }
    CATCH(msg, msg_size)
}

extern "C" uint32_t dr__hnsw_count(const dr_hnsw *h) { return (uint32_t)h->g->cur_element_count; }
extern "C" uint32_t dr__hnsw_dim(const dr_hnsw *h) { return h->d; }
extern "C" uint32_t dr__hnsw_m(const dr_hnsw *h) { return h->M; }

extern "C" size_t dr__hnsw_bytes(const dr_hnsw *h) {
    const graph *g = h->g;
    size_t cap = g->max_elements_, n = g->cur_element_count;
    size_t b = cap * (g->size_data_per_element_ + sizeof(char *) + sizeof(int) + sizeof(g->link_list_locks_[0]));
    for (size_t i = 0; i < n; i++)
        if (g->element_levels_[i] > 0) b += g->size_links_per_element_ * (size_t)g->element_levels_[i] + 1;
    b += n * (sizeof(hnswlib::labeltype) + sizeof(hnswlib::tableint) + 2 * sizeof(void *)); /* label map */
    b += cap * sizeof(hnswlib::vl_type);                                                       /* a visited list */
    return b;
}

template <typename T> static bool put(FILE *f, const T &v) { return fwrite(&v, sizeof v, 1, f) == 1; }

extern "C" int dr__hnsw_write(const dr_hnsw *h, FILE *f, char *msg, size_t msg_size) {
    const graph *g = h->g;
    bool ok = put(f, g->offsetLevel0_) && put(f, g->max_elements_) && put(f, g->cur_element_count) &&
              put(f, g->size_data_per_element_) && put(f, g->label_offset_) && put(f, g->offsetData_) &&
              put(f, g->maxlevel_) && put(f, g->enterpoint_node_) && put(f, g->maxM_) && put(f, g->maxM0_) &&
              put(f, g->M_) && put(f, g->mult_) && put(f, g->ef_construction_);
    size_t n = g->cur_element_count;
    if (ok && n) ok = fwrite(g->data_level0_memory_, g->size_data_per_element_, n, f) == n;
    for (size_t i = 0; ok && i < n; i++) {
        unsigned int sz = g->element_levels_[i] > 0 ? (unsigned)(g->size_links_per_element_ * g->element_levels_[i]) : 0;
        ok = put(f, sz) && (!sz || fwrite(g->linkLists_[i], 1, sz, f) == sz);
    }
    if (!ok) say(msg, msg_size, "write failed");
    return ok ? DR_HNSW_OK : DR_HNSW_FAIL;
}

namespace {
struct reader {
    const unsigned char *p;
    size_t n, at;
    template <typename T> bool get(T *v) {
        if (n - at < sizeof *v) return false;
        memcpy(v, p + at, sizeof *v);
        at += sizeof *v;
        return true;
    }
};
} // namespace

/* the base-layer or upper-layer list at ll: count <= cap, targets < n, no flags */
static bool links_ok(const unsigned char *ll, size_t cap, size_t n, bool base) {
    uint32_t head;
    memcpy(&head, ll, sizeof head);
    size_t cnt = head & 0xffffu;
    if ((head >> 16) != 0 || cnt > cap) return false; /* delete marks: dynrec never deletes */
    (void)base;
    for (size_t j = 0; j < cnt; j++) {
        uint32_t t;
        memcpy(&t, ll + 4 + 4 * j, sizeof t);
        if (t >= n) return false;
    }
    return true;
}

#define BAD(why) do { say(msg, msg_size, why); return DR_HNSW_FAIL; } while (0)

extern "C" int dr__hnsw_read(const void *buf, size_t nbytes, uint32_t d, uint32_t extra_cap,
                             dr_hnsw **out, char *msg, size_t msg_size) {
    *out = nullptr;
    reader r = {(const unsigned char *)buf, nbytes, 0};
    size_t off0, maxel, count, sdpe, loff, doff, maxM, maxM0, M, efc;
    int maxlevel;
    hnswlib::tableint entry;
    double mult;
    if (!(r.get(&off0) && r.get(&maxel) && r.get(&count) && r.get(&sdpe) && r.get(&loff) && r.get(&doff) &&
          r.get(&maxlevel) && r.get(&entry) && r.get(&maxM) && r.get(&maxM0) && r.get(&M) && r.get(&mult) &&
          r.get(&efc)))
        BAD("the graph's header is truncated");
    (void)maxel;
    (void)mult;
    if (M < 2 || M > 1024 || maxM != M || maxM0 != 2 * M) BAD("the graph's link counts (M) are out of range");
    size_t lvl0 = maxM0 * 4 + 4, data = (size_t)d * 4, links = maxM * 4 + 4;
    if (off0 != 0 || doff != lvl0 || loff != lvl0 + data || sdpe != lvl0 + data + sizeof(hnswlib::labeltype))
        BAD("the graph's element layout does not match its dimension");
    if (count > ((size_t)1 << 28) || efc > 100000) BAD("the graph's element count or ef_construction is out of range");
    if (count ? (maxlevel < 0 || maxlevel > 64 || entry >= count) : maxlevel != -1)
        BAD("the graph's entry point or top level is out of range");
    if ((r.n - r.at) / sdpe < count) BAD("the graph's vectors are truncated");
    const unsigned char *level0 = r.p + r.at;
    r.at += count * sdpe;
    for (size_t i = 0; i < count; i++) {
        const unsigned char *e = level0 + i * sdpe;
        size_t label;
        memcpy(&label, e + loff, sizeof label);
        if (label >= UINT32_MAX) BAD("a label of the graph is out of range");
        if (!links_ok(e, maxM0, count, true)) BAD("a base-layer link list of the graph is malformed");
    }
    size_t upper_at = r.at;
    for (size_t i = 0; i < count; i++) {
        unsigned int sz;
        if (!r.get(&sz)) BAD("the graph's upper layers are truncated");
        if (sz % links || sz / links > (size_t)maxlevel || r.n - r.at < sz) BAD("an upper-layer list of the graph is malformed");
        for (size_t l = 0; l < sz / links; l++)
            if (!links_ok(r.p + r.at + l * links, maxM, count, false)) BAD("an upper-layer link list of the graph is malformed");
        r.at += sz;
    }
    if (r.at != r.n) BAD("the graph has trailing bytes");
    dr_hnsw *h = nullptr;
    try {
        h = wrap(d, (uint32_t)M);
        graph *g = h->g = new_graph(h->space, count + extra_cap, M, efc, 100);
        memcpy(g->data_level0_memory_, level0, count * sdpe);
        for (size_t i = 0; i < count; i++) g->linkLists_[i] = nullptr; /* the destructor's view */
        g->cur_element_count = count;
        g->maxlevel_ = maxlevel;
        g->enterpoint_node_ = count ? entry : (hnswlib::tableint)-1;
        r.at = upper_at;
        for (size_t i = 0; i < count; i++) {
            unsigned int sz = 0;
            r.get(&sz);
            g->element_levels_[i] = 0;
            if (sz) {
                char *ll = (char *)hn_malloc(sz + 1);
                if (!ll) throw std::bad_alloc();
                memcpy(ll, r.p + r.at, sz);
                g->linkLists_[i] = ll;
                g->element_levels_[i] = (int)(sz / links);
                r.at += sz;
            }
            size_t label;
            memcpy(&label, level0 + i * sdpe + loff, sizeof label); /* elements are not 8-aligned */
            g->label_lookup_[(hnswlib::labeltype)label] = (hnswlib::tableint)i;
        }
        if (g->label_lookup_.size() != count) {
            dr__hnsw_free(h);
            BAD("the graph has repeated labels");
        }
        if (count && g->element_levels_[entry] != maxlevel) {
            dr__hnsw_free(h);
            BAD("the graph's entry point is not on its top level");
        }
        *out = h;
        return DR_HNSW_OK;
    } catch (...) {
        return failed(h, msg, msg_size);
    }
}

#else /* no hnswlib: every call says so */

struct dr_hnsw {
    int unused;
};
#define NONE "dynrec was built without hnswlib (libhnswlib-dev): no approximate index"
extern "C" int dr__hnsw_create(uint32_t, uint32_t, uint32_t, uint32_t, uint64_t, dr_hnsw **out,
                               char *msg, size_t n) {
    *out = nullptr;
    say(msg, n, NONE);
    return DR_HNSW_FAIL;
}
extern "C" void dr__hnsw_free(dr_hnsw *) {}
extern "C" int dr__hnsw_add(dr_hnsw *, const float *, uint32_t, char *msg, size_t n) { say(msg, n, NONE); return DR_HNSW_FAIL; }
extern "C" int dr__hnsw_reserve(dr_hnsw *, uint32_t, char *msg, size_t n) { say(msg, n, NONE); return DR_HNSW_FAIL; }
extern "C" void dr__hnsw_set_ef(dr_hnsw *, uint32_t) {}
extern "C" int dr__hnsw_search(const dr_hnsw *, const float *, uint32_t, uint32_t *, uint32_t *n_out,
                               char *msg, size_t n) {
    *n_out = 0;
    say(msg, n, NONE);
    return DR_HNSW_FAIL;
}
extern "C" uint32_t dr__hnsw_count(const dr_hnsw *) { return 0; }
extern "C" uint32_t dr__hnsw_dim(const dr_hnsw *) { return 0; }
extern "C" uint32_t dr__hnsw_m(const dr_hnsw *) { return 0; }
extern "C" size_t dr__hnsw_bytes(const dr_hnsw *) { return 0; }
extern "C" int dr__hnsw_write(const dr_hnsw *, FILE *, char *msg, size_t n) { say(msg, n, NONE); return DR_HNSW_FAIL; }
extern "C" int dr__hnsw_read(const void *, size_t, uint32_t, uint32_t, dr_hnsw **out, char *msg, size_t n) {
    *out = nullptr;
    say(msg, n, NONE);
    return DR_HNSW_FAIL;
}
#endif
