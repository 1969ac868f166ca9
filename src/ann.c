/*
 * ann.c - two-stage retrieval for large catalogues: an HNSW index over the base's item
 * latents (inner product) proposes C candidates, the caller adds the items the adapter makes
 * hot or carries cold, and the exact scan rescoring them with the current latents ranks.
 *
 * DESIGN: the index is hnswlib's HNSW graph (ann_hnsw.cc says why not faiss, and why not
 * an L2 search after a lift) over the frozen
 * base latents, so it is built once with the base (`dynrec index`) and saved beside the
 * checkpoint as M.drm.ann; items that get a base latent later (PUT with features) are
 * inserted, which HNSW does in place. The adapter moves z' away from z, so the index is only a
 * candidate generator: everything it returns is rescored by dr__topk_scan (the exact scan the
 * server uses, same bits per row), and the adapter's hot and cold items are always candidates
 * (the index cannot know them). IVF (k-means cells) was rejected: it needs retraining as the
 * catalogue grows and its recall falls on the skewed cells real catalogues have.
 *
 * File (docs/FORMATS.md): a 104-byte header (magic "DRANNIDX", version, d, count, M,
 * ef_construction, ef_search, candidates, zero, seed, the checkpoint's XXH64 as 16
 * hex digits, the graph's length and XXH64, the header's XXH64, zeros); then the graph in
 * hnswlib's field order.
 * Every number is checked before use; a file for another checkpoint is refused by its hash.
 *
 * Threads: a pthread rwlock preferring writers: searches share it, inserts take it alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ann.h"
#include "ann_hnsw.h"
#include "ckpt.h"
#include "rng.h"
#include "dynrec_limits.h"
#include "model.h"

#define ANN_MAGIC "DRANNIDX"
#define ANN_VERSION 1u
#define ANN_HEADER 104u /* bytes before the graph */

struct dr_ann {
    dr_hnsw *g;
    pthread_rwlock_t lock;  /* guards g: shared for searches, exclusive for add and ef */
    uint32_t d, ef, cand, efc;
    uint64_t seed;
    double build_s;
};

struct dr_ann_scratch {
    uint32_t cap, stride, k_max;
    uint32_t *cand;          /* (2 cap) ids, then the sort's buffer */
    uint32_t *pos;           /* (k_max) positions the scan returns */
    float *rows;             /* (cap, stride) the candidates' rows */
    dr_topk_scratch *ts;
};

dr_ann_params dr__ann_default_params(void) {
    dr_ann_params p;
    memset(&p, 0, sizeof p);
    p.M = 32;
    p.ef_construction = 200;
    p.ef_search = 128;
    p.candidates = 100;
    p.threads = 1;
    p.seed = 42;
    return p;
}

static dr_status hnsw_status(int rc, const char *msg, const char *what, dr_error *err) {
    if (rc == DR_HNSW_OK) return DR_OK;
    return dr__fail(err, rc == DR_HNSW_NOMEM ? DR_NOMEM : DR_FORMAT, "%s: %s", what, msg);
}

static dr_status ann_new(uint32_t d, dr_ann **out, dr_error *err) {
    dr_ann *a = dr__calloc(1, sizeof *a);
    if (!a) return dr__fail(err, DR_NOMEM, "ann: out of memory");
    pthread_rwlockattr_t at;
    pthread_rwlockattr_init(&at);
    pthread_rwlockattr_setkind_np(&at, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&a->lock, &at);
    pthread_rwlockattr_destroy(&at);
    a->d = d;
    *out = a;
    return DR_OK;
}

void dr__ann_free(dr_ann *a) {
    if (!a) return;
    dr__hnsw_free(a->g);
    pthread_rwlock_destroy(&a->lock);
    dr__free(a);
}

static dr_status check_params(const dr_ann_params *p, dr_error *err) {
    if (p->M < 2 || p->M > DR_ANN_MAX_M)
        return dr__fail(err, DR_RANGE, "ann: M must be in 2..%u", DR_ANN_MAX_M);
    if (p->ef_construction < 1 || p->ef_construction > DR_ANN_MAX_EF ||
        p->ef_search < 1 || p->ef_search > DR_ANN_MAX_EF)
        return dr__fail(err, DR_RANGE, "ann: ef_construction and ef_search must be in 1..%u", DR_ANN_MAX_EF);
    if (p->candidates < 1 || p->candidates > DR_ANN_MAX_CAND)
        return dr__fail(err, DR_RANGE, "ann: candidates must be in 1..%u", DR_ANN_MAX_CAND);
    return DR_OK;
}

typedef struct {
    dr_hnsw *g;
    const float *z;
    uint32_t d;
    _Atomic int rc;
    char msg[160];
} build_ctx;

static void build_one(void *ctx, size_t i, int worker) {
    build_ctx *b = ctx;
    char msg[160];
    (void)worker;
    if (atomic_load_explicit(&b->rc, memory_order_relaxed)) return;
    int rc = dr__hnsw_add(b->g, b->z + i * b->d, (uint32_t)i, msg, sizeof msg);
    int zero = 0;
    if (rc && atomic_compare_exchange_strong(&b->rc, &zero, rc)) snprintf(b->msg, sizeof b->msg, "%s", msg);
}

dr_status dr__ann_build(const float *z, uint32_t n, uint32_t d, uint32_t extra,
                       const dr_ann_params *p, dr_ann **out, dr_error *err) {
    if (!out || !p || (!z && n)) return dr__fail(err, DR_ARG, "ann: NULL argument");
    *out = NULL;
    if (!d || d > DR_MAX_DIM) return dr__fail(err, DR_RANGE, "ann: dimension %u out of range", d);
    if ((uint64_t)n + extra > DR_MAX_ROWS) return dr__fail(err, DR_RANGE, "ann: %u items exceed %u", n, DR_MAX_ROWS);
    dr_status st = check_params(p, err);
    if (st != DR_OK) return st;
    double t0 = dr__now_seconds();
    dr_ann *a;
    if ((st = ann_new(d, &a, err)) != DR_OK) return st;
    a->ef = p->ef_search;
    a->cand = p->candidates;
    a->efc = p->ef_construction;
    a->seed = p->seed;
    char msg[160] = "";
    int rc = dr__hnsw_create(d, n + extra, p->M, p->ef_construction, p->seed, &a->g, msg, sizeof msg);
    if ((st = hnsw_status(rc, msg, "ann: build", err)) != DR_OK) goto fail;
    build_ctx b = {.g = a->g, .z = z, .d = d};
    atomic_init(&b.rc, 0);
    int threads = p->threads;
#if defined(__SANITIZE_THREAD__)
    threads = 1; /* hnswlib's graph locks are compiled out under TSan (ann_hnsw.cc) */
#endif
    if (threads <= 1) {
        for (uint32_t i = 0; i < n && !atomic_load(&b.rc); i++) build_one(&b, i, 0);
    } else {
        dr__parallel_for(n, threads, build_one, &b);
    }
    if ((st = hnsw_status(atomic_load(&b.rc), b.msg, "ann: build", err)) != DR_OK) goto fail;
    dr__hnsw_set_ef(a->g, a->ef);
    a->build_s = dr__now_seconds() - t0;
    *out = a;
    return DR_OK;
fail:
    dr__ann_free(a);
    return st;
}

/* ---------------------------------------------------------------- file */

typedef struct {
    char magic[8];
    uint32_t version, d, count, M, efc, ef, cand, reserved;
    uint64_t seed;
    char ckpt[16];
    uint64_t payload_bytes, payload_hash, header_hash;
} ann_header;
_Static_assert(sizeof(ann_header) == 88, "ann_header is packed");

static uint64_t header_hash(const ann_header *h) {
    return dr__xxh64(h, offsetof(ann_header, header_hash), 0);
}

dr_status dr__ann_save(const dr_ann *a, const char *path, const char *ckpt_hash, dr_error *err) {
    if (!a || !path || !ckpt_hash) return dr__fail(err, DR_ARG, "ann: NULL argument");
    if (strlen(ckpt_hash) != 16) return dr__fail(err, DR_ARG, "ann: the checkpoint hash must be 16 hex digits");
    size_t pl = strlen(path);
    char *tmp = dr__malloc(pl + 5);
    if (!tmp) return dr__fail(err, DR_NOMEM, "ann: out of memory");
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp", 5);
    dr_status st = DR_OK;
    char msg[160] = "";
    FILE *f = fopen(tmp, "w+b");
    if (!f) {
        st = dr__fail(err, DR_IO, "%s: %s", tmp, strerror(errno));
        dr__free(tmp);
        return st;
    }
    ann_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, ANN_MAGIC, 8);
    h.version = ANN_VERSION;
    h.d = a->d;
    h.count = dr__hnsw_count(a->g);
    h.M = dr__hnsw_m(a->g);
    h.efc = a->efc;
    h.ef = a->ef;
    h.cand = a->cand;
    h.seed = a->seed;
    memcpy(h.ckpt, ckpt_hash, 16);
    static const char pad[ANN_HEADER - sizeof(ann_header)];
    if (fwrite(&h, sizeof h, 1, f) != 1 || fwrite(pad, sizeof pad, 1, f) != 1) st = dr__fail(err, DR_IO, "%s: write failed", tmp);
    if (st == DR_OK && dr__hnsw_write(a->g, f, msg, sizeof msg) != DR_HNSW_OK)
        st = dr__fail(err, DR_IO, "%s: %s", tmp, msg);
    if (st == DR_OK && fflush(f) != 0) st = dr__fail(err, DR_IO, "%s: %s", tmp, strerror(errno));
    if (st == DR_OK) {
        long end = ftell(f);
        h.payload_bytes = (uint64_t)end - ANN_HEADER;
        void *m = mmap(NULL, (size_t)end, PROT_READ, MAP_SHARED, fileno(f), 0);
        if (m == MAP_FAILED) {
            st = dr__fail(err, DR_IO, "%s: mmap failed: %s", tmp, strerror(errno));
        } else {
            h.payload_hash = dr__xxh64((const char *)m + ANN_HEADER, h.payload_bytes, 0);
            munmap(m, (size_t)end);
            h.header_hash = header_hash(&h);
            if (pwrite(fileno(f), &h, sizeof h, 0) != (ssize_t)sizeof h || fsync(fileno(f)) != 0)
                st = dr__fail(err, DR_IO, "%s: %s", tmp, strerror(errno));
        }
    }
    if (fclose(f) != 0 && st == DR_OK) st = dr__fail(err, DR_IO, "%s: %s", tmp, strerror(errno));
    if (st == DR_OK && rename(tmp, path) != 0) st = dr__fail(err, DR_IO, "%s: %s", path, strerror(errno));
    if (st != DR_OK) unlink(tmp);
    dr__free(tmp);
    return st;
}

dr_status dr__ann_load(const char *path, const char *ckpt_hash, uint32_t d, uint32_t extra,
                      dr_ann **out, dr_error *err) {
    if (!path || !ckpt_hash || !out) return dr__fail(err, DR_ARG, "ann: NULL argument");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dr__fail(err, DR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    dr_status st = DR_OK;
    void *m = MAP_FAILED;
    size_t size = 0;
    ann_header h;
    if (fstat(fd, &sb) != 0) {
        st = dr__fail(err, DR_IO, "%s: %s", path, strerror(errno));
        goto done;
    }
    size = (size_t)sb.st_size;
    if (size < ANN_HEADER) {
        st = dr__fail(err, DR_FORMAT, "%s: not a dynrec index (%zu bytes, shorter than its header)", path, size);
        goto done;
    }
    m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
        st = dr__fail(err, DR_IO, "%s: mmap failed: %s", path, strerror(errno));
        goto done;
    }
    memcpy(&h, m, sizeof h);
    if (memcmp(h.magic, ANN_MAGIC, 8) != 0) {
        st = dr__fail(err, DR_FORMAT, "%s: not a dynrec index (bad magic)", path);
    } else if (h.version != ANN_VERSION) {
        st = dr__fail(err, DR_FORMAT, "%s: index version %u, this build reads %u: rebuild it with `dynrec index`",
                      path, h.version, ANN_VERSION);
    } else if (header_hash(&h) != h.header_hash) {
        st = dr__fail(err, DR_FORMAT, "%s: the index header is corrupt (checksum mismatch)", path);
    } else if (memcmp(h.ckpt, ckpt_hash, 16) != 0 || strlen(ckpt_hash) != 16) {
        st = dr__fail(err, DR_FORMAT, "%s: the index was built for the checkpoint with hash %.16s, this checkpoint "
                      "has %s: rebuild it with `dynrec index --model` on this checkpoint", path, h.ckpt, ckpt_hash);
    } else if (h.d != d) {
        st = dr__fail(err, DR_FORMAT, "%s: the index has dimension %u, the model %u", path, h.d, d);
    } else if (h.payload_bytes != size - ANN_HEADER) {
        st = dr__fail(err, DR_FORMAT, "%s: the index is truncated or has trailing bytes (%llu graph bytes declared, "
                      "%zu present)", path, (unsigned long long)h.payload_bytes, size - ANN_HEADER);
    } else if (dr__xxh64((const char *)m + ANN_HEADER, h.payload_bytes, 0) != h.payload_hash) {
        st = dr__fail(err, DR_FORMAT, "%s: the index is corrupt (graph checksum mismatch)", path);
    } else if ((uint64_t)h.count + extra > DR_MAX_ROWS || h.ef < 1 || h.ef > DR_ANN_MAX_EF || h.cand < 1 ||
               h.cand > DR_ANN_MAX_CAND) {
        st = dr__fail(err, DR_FORMAT, "%s: the index's settings are out of range", path);
    }
    if (st != DR_OK) goto done;
    dr_ann *a;
    if ((st = ann_new(d, &a, err)) != DR_OK) goto done;
    a->ef = h.ef;
    a->cand = h.cand;
    a->efc = h.efc;
    a->seed = h.seed;
    char msg[160] = "";
    int rc = dr__hnsw_read((const char *)m + ANN_HEADER, h.payload_bytes, d, extra, &a->g, msg, sizeof msg);
    if (rc == DR_HNSW_OK && dr__hnsw_count(a->g) != h.count) {
        rc = DR_HNSW_FAIL;
        snprintf(msg, sizeof msg, "the graph holds %u items, the header says %u", dr__hnsw_count(a->g), h.count);
    }
    if (rc != DR_HNSW_OK) {
        st = rc == DR_HNSW_NOMEM ? dr__fail(err, DR_NOMEM, "%s: %s", path, msg)
                                 : dr__fail(err, DR_FORMAT, "%s: the index is malformed: %s", path, msg);
        dr__ann_free(a);
        goto done;
    }
    dr__hnsw_set_ef(a->g, a->ef);
    *out = a;
done:
    if (m != MAP_FAILED) munmap(m, size);
    close(fd);
    return st;
}

/* ---------------------------------------------------------------- public: dynrec index */

dr_index_params dr_index_default_params(void) {
    dr_ann_params a = dr__ann_default_params();
    dr_index_params p;
    memset(&p, 0, sizeof p);
    p.M = a.M;
    p.ef_construction = a.ef_construction;
    p.ef_search = a.ef_search;
    p.candidates = a.candidates;
    p.threads = a.threads;
    p.seed = a.seed;
    return p;
}

dr_status dr_index_build(const dr_index_params *p, dr_index_result *res, dr_error *err) {
    if (!p || !p->model_path || !res) return dr__fail(err, DR_ARG, "index: NULL argument");
    memset(res, 0, sizeof *res);
    dr_status st = dr__ckpt_file_hash(p->model_path, res->hash, err);
    if (st != DR_OK) return st;
    dr_model *m = NULL;
    dr_ann *a = NULL;
    char *out = NULL;
    if ((st = dr_model_load(p->model_path, &m, err)) != DR_OK) return st;
    const float *z = dr_model_item_latents(m);
    res->dim = dr_model_latent_dim(m);
    res->items = dr_model_n_items(m);
    if (!z || !res->dim) {
        st = dr__fail(err, DR_UNSUPPORTED, "index: %s: model '%s' has no item latents (a dot-product model: mf, sasrec)",
                      p->model_path, dr_model_name(m));
        goto done;
    }
    dr_ann_params ap = dr__ann_default_params();
    ap.M = p->M;
    ap.ef_construction = p->ef_construction;
    ap.ef_search = p->ef_search;
    ap.candidates = p->candidates;
    ap.threads = p->threads;
    ap.seed = p->seed;
    if ((st = dr__ann_build(z, res->items, res->dim, 0, &ap, &a, err)) != DR_OK) goto done;
    res->seconds = dr__ann_build_seconds(a);
    res->bytes = dr__ann_bytes(a);
    const char *path = p->out;
    if (!path) {
        size_t pl = strlen(p->model_path);
        if (!(out = dr__malloc(pl + 5))) {
            st = dr__fail(err, DR_NOMEM, "index: out of memory");
            goto done;
        }
        memcpy(out, p->model_path, pl);
        memcpy(out + pl, ".ann", 5);
        path = out;
    }
    st = dr__ann_save(a, path, res->hash, err);
done:
    dr__free(out);
    dr__ann_free(a);
    dr_model_free(m);
    return st;
}

/* ---------------------------------------------------------------- use */

dr_status dr__ann_add(dr_ann *a, uint32_t id, const float *v, dr_error *err) {
    if (!a || !v) return dr__fail(err, DR_ARG, "ann: NULL argument");
    char msg[160] = "";
    pthread_rwlock_wrlock(&a->lock);
    int rc = dr__hnsw_add(a->g, v, id, msg, sizeof msg);
    pthread_rwlock_unlock(&a->lock);
    return hnsw_status(rc, msg, "ann: add", err);
}

void dr__ann_set_ef(dr_ann *a, uint32_t ef) {
    pthread_rwlock_wrlock(&a->lock);
    a->ef = ef ? ef : 1;
    dr__hnsw_set_ef(a->g, a->ef);
    pthread_rwlock_unlock(&a->lock);
}

uint32_t dr__ann_ef(const dr_ann *a) { return a->ef; }
uint32_t dr__ann_candidates(const dr_ann *a) { return a->cand; }
uint32_t dr__ann_dim(const dr_ann *a) { return a->d; }
double dr__ann_build_seconds(const dr_ann *a) { return a->build_s; }

uint32_t dr__ann_count(const dr_ann *a) {
    pthread_rwlock_rdlock((pthread_rwlock_t *)&a->lock);
    uint32_t n = dr__hnsw_count(a->g);
    pthread_rwlock_unlock((pthread_rwlock_t *)&a->lock);
    return n;
}

size_t dr__ann_bytes(const dr_ann *a) {
    pthread_rwlock_rdlock((pthread_rwlock_t *)&a->lock);
    size_t b = dr__hnsw_bytes(a->g) + sizeof *a;
    pthread_rwlock_unlock((pthread_rwlock_t *)&a->lock);
    return b;
}

dr_status dr__ann_search(dr_ann *a, const float *q, uint32_t c, uint32_t *ids, uint32_t *n_out,
                        dr_error *err) {
    *n_out = 0;
    char msg[160] = "";
    pthread_rwlock_rdlock(&a->lock);
    int rc = dr__hnsw_search(a->g, q, c, ids, n_out, msg, sizeof msg);
    pthread_rwlock_unlock(&a->lock);
    return hnsw_status(rc, msg, "ann: search", err);
}

void dr__ann_scratch_free(dr_ann_scratch *s) {
    if (!s) return;
    dr__free(s->cand);
    dr__free(s->pos);
    dr__free(s->rows);
    dr__topk_scratch_free(s->ts);
    dr__free(s);
}

dr_status dr__ann_scratch_create(uint32_t max_cand, uint32_t stride, uint32_t k_max,
                                dr_ann_scratch **out, dr_error *err) {
    if (!out) return dr__fail(err, DR_ARG, "ann: NULL argument");
    *out = NULL;
    if (!max_cand || !stride || !k_max) return dr__fail(err, DR_ARG, "ann: empty scratch");
    dr_ann_scratch *s = dr__calloc(1, sizeof *s);
    if (!s) return dr__fail(err, DR_NOMEM, "ann: out of memory");
    s->cap = max_cand;
    s->stride = stride;
    s->k_max = k_max;
    s->cand = dr__calloc(2 * (size_t)max_cand, sizeof *s->cand);
    s->pos = dr__calloc(k_max, sizeof *s->pos);
    s->rows = dr__calloc((size_t)max_cand * stride, sizeof *s->rows);
    dr_status st = DR_NOMEM;
    if (!s->cand || !s->pos || !s->rows) goto fail;
    if ((st = dr__topk_scratch_create(max_cand, k_max, &s->ts, err)) != DR_OK) goto fail;
    *out = s;
    return DR_OK;
fail:
    if (st == DR_NOMEM && (!err || err->code != DR_NOMEM)) dr__fail(err, DR_NOMEM, "ann: out of memory");
    dr__ann_scratch_free(s);
    return st;
}

/* LSD radix sort of ids (n, each < 2^30) with tmp (n): three 10-bit passes, result in a. */
static void sort_ids(uint32_t *a, uint32_t *tmp, size_t n) {
    uint32_t *src = a, *dst = tmp;
    for (int shift = 0; shift < 30; shift += 10) {
        uint32_t cnt[1025];
        memset(cnt, 0, sizeof cnt);
        for (size_t i = 0; i < n; i++) cnt[((src[i] >> shift) & 1023u) + 1]++;
        for (size_t b = 0; b < 1024; b++) cnt[b + 1] += cnt[b];
        for (size_t i = 0; i < n; i++) dst[cnt[(src[i] >> shift) & 1023u]++] = src[i];
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
    memcpy(a, src, n * sizeof *a);
}

static void insertion_sort(uint32_t *a, size_t n) {
    for (size_t i = 1; i < n; i++) {
        uint32_t v = a[i];
        size_t j = i;
        for (; j > 0 && a[j - 1] > v; j--) a[j] = a[j - 1];
        a[j] = v;
    }
}

#define TOMB 0x80000000u /* an excluded candidate: ids are < DR_MAX_ROWS < 2^31 */

/* The position of v in the sorted ids a (n), tombstones included, or SIZE_MAX. */
static size_t find_id(const uint32_t *a, size_t n, uint32_t v) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((a[mid] & ~TOMB) < v) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && (a[lo] & ~TOMB) == v ? lo : SIZE_MAX;
}

dr_status dr__ann_topk(dr_ann *a, uint32_t c, const float *items, uint32_t n, uint32_t stride,
                      const float *h, const uint32_t *extra, size_t n_extra, uint32_t lo,
                      uint32_t hi, const uint32_t *exclude, size_t n_exclude, uint32_t k,
                      dr_ann_scratch *s, uint32_t *items_out, float *scores_out, uint32_t *n_out,
                      dr_error *err) {
    if (!a || !items || !h || !s || !items_out || !n_out) return dr__fail(err, DR_ARG, "ann: NULL argument");
    *n_out = 0;
    if (stride != s->stride || k > s->k_max) return dr__fail(err, DR_ARG, "ann: the scratch does not fit the request");
    if (hi > n) hi = n;
    if (lo > hi) lo = hi;
    size_t need = (size_t)c + n_extra + (hi - lo);
    if (need > s->cap) return dr__fail(err, DR_RANGE, "ann: %zu candidates exceed the scratch's %u", need, s->cap);
    uint32_t got = 0, *cand = s->cand;
    dr_status st = c ? dr__ann_search(a, h, c, cand, &got, err) : DR_OK;
    if (st != DR_OK) return st;
    size_t m = 0;
    for (uint32_t j = 0; j < got; j++)
        if (cand[j] < n) cand[m++] = cand[j];
    for (size_t j = 0; j < n_extra; j++)
        if (extra[j] < n) cand[m++] = extra[j];
    for (uint32_t i = lo; i < hi; i++) cand[m++] = i;
    if (m > 64) sort_ids(cand, cand + s->cap, m); /* the upper half is the sort's buffer */
    else insertion_sort(cand, m);
    size_t u = 0;
    for (size_t j = 0; j < m; j++)
        if (!u || cand[j] != cand[u - 1]) cand[u++] = cand[j];
    for (size_t j = 0; j < n_exclude; j++) {
        size_t at = find_id(cand, u, exclude[j]);
        if (at != SIZE_MAX) cand[at] |= TOMB; /* the order stays searchable */
    }
    m = 0;
    for (size_t j = 0; j < u; j++)
        if (!(cand[j] & TOMB)) cand[m++] = cand[j];
    for (size_t j = 0; j < m; j++)
        memcpy(s->rows + j * stride, items + (size_t)cand[j] * stride, stride * sizeof *s->rows);
    uint32_t nk = 0;
    st = dr__topk_scan(s->rows, (uint32_t)m, stride, h, NULL, 0, k, s->ts, s->pos, scores_out, &nk, err);
    if (st != DR_OK) return st;
    for (uint32_t j = 0; j < nk; j++) items_out[j] = cand[s->pos[j]];
    *n_out = nk;
    return DR_OK;
}

/* ---------------------------------------------------------------- synthetic catalogue */

static uint32_t synth_clusters(size_t n) {
    uint32_t k = 16;
    while ((size_t)k * k < n) k++;
    return k;
}

/* centre c (d) of the catalogue seed: N(0, 1/d) per value */
static void synth_centre(float *out, uint32_t c, uint32_t d, uint64_t seed) {
    dr_rng r;
    dr__rng_seed(&r, seed, 1000000u + c);
    float s = 0.6f / sqrtf((float)d);
    for (uint32_t j = 0; j < d; j++) out[j] = s * (float)dr__rng_normal(&r);
}

static uint32_t synth_pick(dr_rng *r, uint32_t k) {
    double u = dr__rng_uniform(r);
    uint32_t c = (uint32_t)((double)k * u * u);
    return c < k ? c : k - 1;
}

void dr__ann_synth_items(float *z, size_t n, uint32_t d, uint64_t seed) {
    uint32_t k = synth_clusters(n);
    float s = 0.6f / sqrtf((float)d);
    for (size_t b = 0; b < n; b += 65536) { /* blocks: their own streams, so threads could split them */
        dr_rng r;
        dr__rng_seed(&r, seed, b / 65536);
        size_t e = b + 65536 < n ? b + 65536 : n;
        for (size_t i = b; i < e; i++) {
            float *row = z + i * d;
            synth_centre(row, synth_pick(&r, k), d, seed);
            float pop = expf(0.25f * (float)dr__rng_normal(&r));
            for (uint32_t j = 0; j < d; j++) row[j] = pop * (row[j] + s * (float)dr__rng_normal(&r));
        }
    }
}

void dr__ann_synth_queries(float *q, size_t m, size_t n, uint32_t d, uint64_t seed, uint64_t stream) {
    uint32_t k = synth_clusters(n);
    float s = 0.6f / sqrtf((float)d), *row2 = q; /* row2: the second centre, built in place below */
    dr_rng r;
    dr__rng_seed(&r, seed ^ 0x9e3779b97f4a7c15ull, stream);
    for (size_t i = 0; i < m; i++) {
        float *row = q + i * d;
        uint32_t c1 = synth_pick(&r, k), c2 = synth_pick(&r, k);
        double a = dr__rng_uniform(&r);
        synth_centre(row, c2, d, seed);
        row2 = row;
        for (uint32_t j = 0; j < d; j++) row2[j] *= (float)(1.0 - a);
        float c[DR_ANN_SYNTH_MAX_DIM];
        synth_centre(c, c1, d, seed);
        for (uint32_t j = 0; j < d; j++) row[j] += (float)a * c[j] + s * (float)dr__rng_normal(&r);
    }
}
