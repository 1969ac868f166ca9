/*
 * ckpt.c - the checkpoint container (.drm): writer, validating mmap reader, metadata.
 *
 * DESIGN: a file is a 64-byte header, a table of 128-byte section entries and the sections,
 * each 64-byte aligned, in table order (docs/FORMATS.md). A model is one block with named,
 * shaped slices, so saving writes the slices and loading maps the file and hands out pointers
 * into the mapping: no parse, no copy, pages shared between processes. Nothing in the file is
 * trusted: dr__ckpt_open checks magic, version, the recorded file size, the XXH64 checksum of
 * everything after the header, then every table entry (name, dtype, rank, shape, size ==
 * dtype size * prod(shape) with overflow checks, alignment, bounds, order, overlap,
 * uniqueness) and the metadata text, all before returning, so later code may index freely.
 * Writes go to path.tmp, are fsynced and renamed, so a crash leaves the old file or the new
 * one. Metadata is a reserved ".meta" section of "key=value\n" lines: one more section rather
 * than a second table format. Alternatives rejected: a self-describing serialisation (JSON,
 * protobuf) that must be parsed and copied on load; SafeTensors' JSON header, which would
 * need a JSON parser in the trusted path for a fixed, small set of fields; FNV-1a as the
 * checksum (byte at a time, far slower, docs/BENCH.md) where XXH64 runs at memory speed with a
 * public spec.
 */
#include "ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the .drm container is little-endian; add byte swapping for this host"
#endif

static const uint8_t k_magic[8] = {'D', 'R', 'M', 0x00, 0x0D, 0x0A, 0x1A, 0x0A};

/* header field offsets */
enum {
    H_MAGIC = 0,
    H_VERSION = 8,
    H_NSEC = 12,
    H_TABLE = 16,
    H_FSIZE = 24,
    H_CHECKSUM = 32,
    H_RESERVED = 40 /* 24 bytes, zero */
};
/* table entry field offsets */
enum {
    E_NAME = 0,
    E_DTYPE = 48,
    E_RANK = 52,
    E_SHAPE = 56, /* 4 x u64 */
    E_OFFSET = 88,
    E_SIZE = 96,
    E_RESERVED = 104 /* 24 bytes, zero */
};

/* ------------------------------------------------------------------ little helpers */

static uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void wr64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

size_t dr__dtype_size(uint32_t dtype) {
    switch (dtype) {
    case DR_DT_F32: return 4;
    case DR_DT_F16: return 2;
    case DR_DT_F64: return 8;
    case DR_DT_I32: return 4;
    case DR_DT_U32: return 4;
    case DR_DT_I64: return 8;
    case DR_DT_U8: return 1;
    case DR_DT_STR: return 1;
    default: return 0;
    }
}

const char *dr__dtype_name(uint32_t dtype) {
    switch (dtype) {
    case DR_DT_F32: return "f32";
    case DR_DT_F16: return "f16";
    case DR_DT_F64: return "f64";
    case DR_DT_I32: return "i32";
    case DR_DT_U32: return "u32";
    case DR_DT_I64: return "i64";
    case DR_DT_U8: return "u8";
    case DR_DT_STR: return "str";
    default: return "?";
    }
}

/* ------------------------------------------------------------------ XXH64 */

#define XP1 0x9E3779B185EBCA87ULL
#define XP2 0xC2B2AE3D27D4EB4FULL
#define XP3 0x165667B19E3779F9ULL
#define XP4 0x85EBCA77C2B2AE63ULL
#define XP5 0x27D4EB2F165667C5ULL

static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static uint64_t xround(uint64_t acc, uint64_t in) {
    acc += in * XP2;
    acc = rotl(acc, 31);
    return acc * XP1;
}
static uint64_t xmerge(uint64_t acc, uint64_t v) {
    acc ^= xround(0, v);
    return acc * XP1 + XP4;
}

uint64_t dr__xxh64(const void *data, size_t n, uint64_t seed) {
    const uint8_t *p = data, *end = p + n;
    uint64_t h;
    if (n >= 32) {
        const uint8_t *lim = end - 32;
        uint64_t v1 = seed + XP1 + XP2, v2 = seed + XP2, v3 = seed, v4 = seed - XP1;
        do {
            v1 = xround(v1, rd64(p));
            v2 = xround(v2, rd64(p + 8));
            v3 = xround(v3, rd64(p + 16));
            v4 = xround(v4, rd64(p + 24));
            p += 32;
        } while (p <= lim);
        h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
        h = xmerge(h, v1);
        h = xmerge(h, v2);
        h = xmerge(h, v3);
        h = xmerge(h, v4);
    } else {
        h = seed + XP5;
    }
    h += (uint64_t)n;
    while (p + 8 <= end) {
        h ^= xround(0, rd64(p));
        h = rotl(h, 27) * XP1 + XP4;
        p += 8;
    }
    if (p + 4 <= end) {
        h ^= (uint64_t)rd32(p) * XP1;
        h = rotl(h, 23) * XP2 + XP3;
        p += 4;
    }
    while (p < end) {
        h ^= (uint64_t)(*p) * XP5;
        h = rotl(h, 11) * XP1;
        p++;
    }
    h ^= h >> 33;
    h *= XP2;
    h ^= h >> 29;
    h *= XP3;
    h ^= h >> 32;
    return h;
}

/* ------------------------------------------------------------------ validation helpers */

static bool name_char_ok(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '.' || ch == '-' || ch == '/' || ch == ':';
}

/* Bytes of a section of this dtype and shape; false on overflow or unknown dtype. */
static bool section_bytes(uint32_t dtype, uint32_t rank, const uint64_t *shape, uint64_t *out) {
    uint64_t b = dr__dtype_size(dtype);
    if (!b) return false;
    for (uint32_t k = 0; k < rank; k++)
        if (__builtin_mul_overflow(b, shape[k], &b)) return false;
    *out = b;
    return true;
}

static void shape_str(char *buf, size_t cap, uint32_t rank, const uint64_t *shape) {
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "(");
    for (uint32_t k = 0; k < rank && n < cap; k++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%llu", k ? ", " : "",
                              (unsigned long long)shape[k]);
    if (n < cap) snprintf(buf + n, cap - n, ")");
}

/* ------------------------------------------------------------------ writer */

typedef struct wsec {
    char name[DR_CKPT_NAME_MAX];
    uint32_t dtype, rank;
    uint64_t shape[DR_CKPT_MAX_RANK];
    uint64_t size;
    const void *data; /* borrowed */
} wsec;

struct dr_ckpt_writer {
    DR_VEC(wsec) sec;
    DR_VEC(char) meta; /* "key=value\n" text, not NUL-terminated */
};

dr_status dr__ckpt_writer_create(dr_ckpt_writer **out, dr_error *err) {
    if (!out) return dr__fail(err, DR_ARG, "dr__ckpt_writer_create: out is NULL");
    *out = dr__calloc(1, sizeof **out);
    if (!*out) return dr__fail(err, DR_NOMEM, "dr__ckpt_writer_create: out of memory");
    return DR_OK;
}

void dr__ckpt_writer_free(dr_ckpt_writer *w) {
    if (!w) return;
    dr_vec_free(&w->sec);
    dr_vec_free(&w->meta);
    dr__free(w);
}

static dr_status add_section(dr_ckpt_writer *w, const char *name, uint32_t dtype, uint32_t rank,
                             const uint64_t *shape, const void *data, dr_error *err) {
    wsec s;
    memset(&s, 0, sizeof s);
    size_t len = strlen(name);
    if (len == 0 || len >= DR_CKPT_NAME_MAX)
        return dr__fail(err, DR_ARG, "checkpoint: section name '%s' must have 1..%u characters",
                       name, DR_CKPT_NAME_MAX - 1);
    for (size_t k = 0; k < len; k++)
        if (!name_char_ok(name[k]))
            return dr__fail(err, DR_ARG,
                           "checkpoint: section name '%s' has a character outside "
                           "[A-Za-z0-9_.:/-]",
                           name);
    if (!dr__dtype_size(dtype))
        return dr__fail(err, DR_ARG, "checkpoint: section '%s': unknown dtype %u", name, dtype);
    if (rank > DR_CKPT_MAX_RANK)
        return dr__fail(err, DR_ARG, "checkpoint: section '%s': rank %u > %u", name, rank,
                       DR_CKPT_MAX_RANK);
    if (rank && !shape)
        return dr__fail(err, DR_ARG, "checkpoint: section '%s': shape is NULL", name);
    if (dtype == DR_DT_STR && rank != 1)
        return dr__fail(err, DR_ARG, "checkpoint: section '%s': str sections have rank 1", name);
    for (uint32_t k = 0; k < rank; k++) s.shape[k] = shape[k];
    if (!section_bytes(dtype, rank, s.shape, &s.size) || s.size > (uint64_t)(SIZE_MAX / 2))
        return dr__fail(err, DR_ARG, "checkpoint: section '%s': size overflows", name);
    if (s.size && !data)
        return dr__fail(err, DR_ARG, "checkpoint: section '%s': data is NULL", name);
    if (w->sec.n >= DR_CKPT_MAX_SECTIONS)
        return dr__fail(err, DR_LIMIT, "checkpoint: more than %u sections", DR_CKPT_MAX_SECTIONS);
    for (size_t k = 0; k < w->sec.n; k++)
        if (strcmp(w->sec.a[k].name, name) == 0)
            return dr__fail(err, DR_ARG, "checkpoint: duplicate section name '%s'", name);
    memcpy(s.name, name, len + 1);
    s.dtype = dtype;
    s.rank = rank;
    s.data = data;
    if (dr_vec_push(&w->sec, s))
        return dr__fail(err, DR_NOMEM, "checkpoint: out of memory adding section '%s'", name);
    return DR_OK;
}

dr_status dr__ckpt_add(dr_ckpt_writer *w, const char *name, dr_dtype dtype, uint32_t rank,
                      const uint64_t *shape, const void *data, dr_error *err) {
    if (!w || !name) return dr__fail(err, DR_ARG, "dr__ckpt_add: NULL argument");
    if (strcmp(name, DR_CKPT_META_NAME) == 0)
        return dr__fail(err, DR_ARG, "checkpoint: section name '%s' is reserved", name);
    return add_section(w, name, (uint32_t)dtype, rank, shape, data, err);
}

static bool meta_key_ok(const char *k, size_t n) {
    if (n == 0 || n > 63) return false;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

/* Does the meta text t[0..n) hold key k? */
static bool meta_has_key(const char *t, size_t n, const char *k, size_t kn) {
    size_t i = 0;
    while (i < n) {
        const char *nl = memchr(t + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - t) : n;
        if (e - i > kn && memcmp(t + i, k, kn) == 0 && t[i + kn] == '=') return true;
        i = e + 1;
    }
    return false;
}

dr_status dr__ckpt_add_meta(dr_ckpt_writer *w, const char *key, const char *value,
                           dr_error *err) {
    if (!w || !key || !value) return dr__fail(err, DR_ARG, "dr__ckpt_add_meta: NULL argument");
    size_t kn = strlen(key), vn = strlen(value);
    if (!meta_key_ok(key, kn))
        return dr__fail(err, DR_ARG, "checkpoint: metadata key '%s' must be 1..63 chars of "
                                    "[A-Za-z0-9_.-]", key);
    if (memchr(value, '\n', vn) || !dr__utf8_valid(value, vn))
        return dr__fail(err, DR_ARG,
                       "checkpoint: metadata '%s': value must be UTF-8 without newlines", key);
    if (meta_has_key(w->meta.a, w->meta.n, key, kn))
        return dr__fail(err, DR_ARG, "checkpoint: duplicate metadata key '%s'", key);
    size_t need = w->meta.n + kn + vn + 2;
    if (need > DR_CKPT_META_MAX)
        return dr__fail(err, DR_LIMIT, "checkpoint: metadata exceeds %u bytes", DR_CKPT_META_MAX);
    if (dr_vec_reserve(&w->meta, need))
        return dr__fail(err, DR_NOMEM, "checkpoint: out of memory adding metadata '%s'", key);
    memcpy(w->meta.a + w->meta.n, key, kn);
    w->meta.a[w->meta.n + kn] = '=';
    memcpy(w->meta.a + w->meta.n + kn + 1, value, vn);
    w->meta.a[need - 1] = '\n';
    w->meta.n = need;
    return DR_OK;
}

static dr_status write_all(int fd, const void *buf, size_t n, const char *path, dr_error *err) {
    const uint8_t *p = buf;
    while (n) {
        ssize_t k = write(fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return dr__fail(err, DR_IO, "%s: write failed: %s", path, strerror(errno));
        }
        p += k;
        n -= (size_t)k;
    }
    return DR_OK;
}

static uint64_t align_up(uint64_t x) { return (x + DR_CKPT_ALIGN - 1) & ~(uint64_t)(DR_CKPT_ALIGN - 1); }

/* fsync of the folder holding path, so the rename is durable. */
static dr_status sync_parent(const char *path, dr_error *err) {
    char *dir = dr__strdup(path);
    if (!dir) return dr__fail(err, DR_NOMEM, "%s: out of memory", path);
    char *slash = strrchr(dir, '/');
    if (!slash) {
        dir[0] = '.';
        dir[1] = 0;
    } else if (slash == dir) {
        slash[1] = 0;
    } else {
        *slash = 0;
    }
    dr_status st = DR_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        if (fsync(fd) != 0 && errno != EINVAL)
            st = dr__fail(err, DR_IO, "%s: fsync of folder failed: %s", dir, strerror(errno));
        close(fd);
    }
    dr__free(dir);
    return st;
}

dr_status dr__ckpt_write(dr_ckpt_writer *w, const char *path, dr_error *err) {
    static const uint8_t zeros[DR_CKPT_ALIGN];
    uint8_t *head = NULL; /* header + table, (table_end) bytes */
    char *tmp = NULL;
    void *map = MAP_FAILED;
    int fd = -1, created = 0;
    dr_status st = DR_OK;
    if (!w || !path) return dr__fail(err, DR_ARG, "dr__ckpt_write: NULL argument");

    /* metadata goes last, as one more section */
    size_t n_user = w->sec.n;
    if (w->meta.n) {
        uint64_t mshape[1] = {w->meta.n};
        st = add_section(w, DR_CKPT_META_NAME, DR_DT_STR, 1, mshape, w->meta.a, err);
        if (st != DR_OK) goto fail;
    }
    uint32_t n = (uint32_t)w->sec.n;
    uint64_t table_end = DR_CKPT_HEADER_BYTES + (uint64_t)n * DR_CKPT_ENTRY_BYTES;
    head = dr__calloc(1, (size_t)table_end);
    tmp = dr__malloc(strlen(path) + 5);
    if (!head || !tmp) {
        st = dr__fail(err, DR_NOMEM, "%s: out of memory writing checkpoint", path);
        goto fail;
    }
    memcpy(tmp, path, strlen(path));
    memcpy(tmp + strlen(path), ".tmp", 5);

    uint64_t off = align_up(table_end);
    for (uint32_t i = 0; i < n; i++) {
        const wsec *s = &w->sec.a[i];
        uint8_t *e = head + DR_CKPT_HEADER_BYTES + (size_t)i * DR_CKPT_ENTRY_BYTES;
        memcpy(e + E_NAME, s->name, sizeof s->name);
        wr32(e + E_DTYPE, s->dtype);
        wr32(e + E_RANK, s->rank);
        for (uint32_t k = 0; k < DR_CKPT_MAX_RANK; k++) wr64(e + E_SHAPE + 8 * k, s->shape[k]);
        wr64(e + E_OFFSET, off);
        wr64(e + E_SIZE, s->size);
        off = align_up(off + s->size);
    }
    uint64_t fsize = off;
    memcpy(head + H_MAGIC, k_magic, 8);
    wr32(head + H_VERSION, DR_CKPT_VERSION);
    wr32(head + H_NSEC, n);
    wr64(head + H_TABLE, DR_CKPT_HEADER_BYTES);
    wr64(head + H_FSIZE, fsize);
    wr64(head + H_CHECKSUM, 0);

    fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = dr__fail(err, DR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        goto fail;
    }
    created = 1;
    st = write_all(fd, head, (size_t)table_end, tmp, err);
    uint64_t pos = table_end;
    for (uint32_t i = 0; i < n && st == DR_OK; i++) {
        const wsec *s = &w->sec.a[i];
        uint64_t pad = align_up(pos) - pos;
        st = write_all(fd, zeros, (size_t)pad, tmp, err);
        if (st == DR_OK) st = write_all(fd, s->data, (size_t)s->size, tmp, err);
        pos += pad + s->size;
    }
    if (st == DR_OK && fsize > pos) st = write_all(fd, zeros, (size_t)(fsize - pos), tmp, err);
    if (st != DR_OK) goto fail;

    /* checksum of what is on disk after the header: map the file back */
    map = mmap(NULL, (size_t)fsize, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        st = dr__fail(err, DR_IO, "%s: mmap failed: %s", tmp, strerror(errno));
        goto fail;
    }
    uint64_t sum = dr__xxh64((const uint8_t *)map + DR_CKPT_HEADER_BYTES,
                            (size_t)(fsize - DR_CKPT_HEADER_BYTES), 0);
    munmap(map, (size_t)fsize);
    map = MAP_FAILED;
    uint8_t sumb[8];
    wr64(sumb, sum);
    if (pwrite(fd, sumb, 8, H_CHECKSUM) != 8) {
        st = dr__fail(err, DR_IO, "%s: write failed: %s", tmp, strerror(errno));
        goto fail;
    }
    if (fsync(fd) != 0) {
        st = dr__fail(err, DR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        st = dr__fail(err, DR_IO, "%s: close failed: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        st = dr__fail(err, DR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
        goto fail;
    }
    created = 0;
    st = sync_parent(path, err);
    w->sec.n = n_user;
    dr__free(head);
    dr__free(tmp);
    return st;
fail:
    w->sec.n = n_user;
    if (fd >= 0) close(fd);
    if (created) unlink(tmp);
    dr__free(head);
    dr__free(tmp);
    return st;
}

/* ------------------------------------------------------------------ reader */

struct dr_ckpt {
    const uint8_t *base; /* (len) the file: mapping or owned aligned copy */
    size_t len;
    void *owned;         /* allocation behind base when copied from a buffer */
    int mapped;
    char *path;          /* for messages */
    uint32_t n;
    dr_ckpt_section *sec; /* (n) */
    char *meta_text;      /* owned copy, '=' and '\n' replaced by NUL */
    size_t n_meta;
    const char **meta_kv; /* (2 * n_meta) key, value */
};

static dr_status parse_meta(dr_ckpt *c, const dr_ckpt_section *s, dr_error *err) {
    const char *t = s->data;
    size_t n = (size_t)s->size;
    const char *P = c->path;
    if (s->dtype != DR_DT_STR || s->rank != 1)
        return dr__fail(err, DR_FORMAT, "%s: section '%s' must be str of rank 1", P, s->name);
    if (n > DR_CKPT_META_MAX)
        return dr__fail(err, DR_FORMAT, "%s: metadata is %zu bytes (limit %u)", P, n,
                       DR_CKPT_META_MAX);
    if (n == 0) return DR_OK;
    if (t[n - 1] != '\n')
        return dr__fail(err, DR_FORMAT, "%s: metadata does not end with a newline", P);
    if (!dr__utf8_valid(t, n))
        return dr__fail(err, DR_FORMAT, "%s: metadata is not UTF-8 (or holds a NUL byte)", P);
    size_t lines = 0;
    for (size_t i = 0; i < n; i++) lines += t[i] == '\n';
    c->meta_text = dr__malloc(n);
    c->meta_kv = dr__calloc(2 * lines, sizeof *c->meta_kv);
    if (!c->meta_text || !c->meta_kv)
        return dr__fail(err, DR_NOMEM, "%s: out of memory reading metadata", P);
    memcpy(c->meta_text, t, n);
    char *m = c->meta_text;
    size_t i = 0, line = 0;
    while (i < n) {
        char *nl = memchr(m + i, '\n', n - i);
        size_t e = (size_t)(nl - m);
        line++;
        char *eq = memchr(m + i, '=', e - i);
        if (!eq || !meta_key_ok(m + i, (size_t)(eq - (m + i))))
            return dr__fail(err, DR_FORMAT, "%s: metadata line %zu is not key=value", P, line);
        *eq = 0;
        *nl = 0;
        for (size_t k = 0; k < c->n_meta; k++)
            if (strcmp(c->meta_kv[2 * k], m + i) == 0)
                return dr__fail(err, DR_FORMAT, "%s: metadata key '%s' repeated (line %zu)", P,
                               m + i, line);
        c->meta_kv[2 * c->n_meta] = m + i;
        c->meta_kv[2 * c->n_meta + 1] = eq + 1;
        c->n_meta++;
        i = e + 1;
    }
    return DR_OK;
}

/* Validates c->base[0..len) and fills c->sec. */
static dr_status validate(dr_ckpt *c, unsigned flags, dr_error *err) {
    const uint8_t *b = c->base;
    uint64_t len = c->len;
    const char *P = c->path;
    if (len == 0)
        return dr__fail(err, DR_FORMAT, "%s: empty file (a checkpoint starts with a %u-byte "
                                       "header)", P, DR_CKPT_HEADER_BYTES);
    if (len < DR_CKPT_HEADER_BYTES)
        return dr__fail(err, DR_FORMAT, "%s: file is %llu bytes, shorter than the %u-byte header",
                       P, (unsigned long long)len, DR_CKPT_HEADER_BYTES);
    if (memcmp(b + H_MAGIC, k_magic, 8) != 0)
        return dr__fail(err, DR_FORMAT, "%s: not a dynrec checkpoint (bad magic)", P);
    uint32_t version = rd32(b + H_VERSION);
    if (version != DR_CKPT_VERSION)
        return dr__fail(err, DR_FORMAT, "%s: version %u is not supported (this build reads %u)",
                       P, version, DR_CKPT_VERSION);
    uint64_t fsize = rd64(b + H_FSIZE);
    if (fsize != len)
        return dr__fail(err, DR_FORMAT,
                       "%s: header says the file has %llu bytes but it has %llu (truncated or "
                       "appended to)", P, (unsigned long long)fsize, (unsigned long long)len);
    for (int k = H_RESERVED; k < (int)DR_CKPT_HEADER_BYTES; k++)
        if (b[k])
            return dr__fail(err, DR_FORMAT, "%s: reserved header byte %d is not zero", P, k);
    uint32_t n = rd32(b + H_NSEC);
    uint64_t table = rd64(b + H_TABLE);
    if (n > DR_CKPT_MAX_SECTIONS)
        return dr__fail(err, DR_FORMAT, "%s: %u sections (limit %u)", P, n, DR_CKPT_MAX_SECTIONS);
    if (table != DR_CKPT_HEADER_BYTES)
        return dr__fail(err, DR_FORMAT, "%s: section table at offset %llu (version 1 puts it at "
                                       "%u)", P, (unsigned long long)table, DR_CKPT_HEADER_BYTES);
    uint64_t table_end = table + (uint64_t)n * DR_CKPT_ENTRY_BYTES;
    if (table_end > len)
        return dr__fail(err, DR_FORMAT,
                       "%s: section table extends past end of file (offset %llu + %llu > %llu)",
                       P, (unsigned long long)table,
                       (unsigned long long)((uint64_t)n * DR_CKPT_ENTRY_BYTES),
                       (unsigned long long)len);
    if (!(flags & DR_CKPT_SKIP_CHECKSUM)) {
        uint64_t want = rd64(b + H_CHECKSUM);
        uint64_t got = dr__xxh64(b + DR_CKPT_HEADER_BYTES, (size_t)(len - DR_CKPT_HEADER_BYTES), 0);
        if (want != got)
            return dr__fail(err, DR_FORMAT,
                           "%s: checksum mismatch (header %016llx, contents %016llx): the file "
                           "is corrupted", P, (unsigned long long)want, (unsigned long long)got);
    }

    c->sec = dr__calloc(n ? n : 1, sizeof *c->sec);
    if (!c->sec) return dr__fail(err, DR_NOMEM, "%s: out of memory", P);
    c->n = n;
    uint64_t prev_end = table_end;
    const char *prev_name = NULL;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = b + table + (uint64_t)i * DR_CKPT_ENTRY_BYTES;
        dr_ckpt_section *s = &c->sec[i];
        const uint8_t *nul = memchr(e + E_NAME, 0, DR_CKPT_NAME_MAX);
        if (!nul)
            return dr__fail(err, DR_FORMAT, "%s: section %u: name is not NUL-terminated", P, i);
        size_t nl = (size_t)(nul - (e + E_NAME));
        if (nl == 0) return dr__fail(err, DR_FORMAT, "%s: section %u: empty name", P, i);
        for (size_t k = 0; k < nl; k++)
            if (!name_char_ok((char)e[E_NAME + k]))
                return dr__fail(err, DR_FORMAT, "%s: section %u: bad character 0x%02x in name",
                               P, i, e[E_NAME + k]);
        for (size_t k = nl; k < DR_CKPT_NAME_MAX; k++)
            if (e[E_NAME + k])
                return dr__fail(err, DR_FORMAT, "%s: section %u: bytes after the name's NUL are "
                                               "not zero", P, i);
        memcpy(s->name, e + E_NAME, nl + 1);
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(c->sec[j].name, s->name) == 0)
                return dr__fail(err, DR_FORMAT, "%s: section name '%s' appears twice", P, s->name);
        for (int k = E_RESERVED; k < (int)DR_CKPT_ENTRY_BYTES; k++)
            if (e[k])
                return dr__fail(err, DR_FORMAT, "%s: section '%s': reserved bytes are not zero",
                               P, s->name);
        s->dtype = rd32(e + E_DTYPE);
        s->rank = rd32(e + E_RANK);
        if (!dr__dtype_size(s->dtype))
            return dr__fail(err, DR_FORMAT, "%s: section '%s': unknown dtype %u", P, s->name,
                           s->dtype);
        if (s->rank > DR_CKPT_MAX_RANK)
            return dr__fail(err, DR_FORMAT, "%s: section '%s': rank %u > %u", P, s->name, s->rank,
                           DR_CKPT_MAX_RANK);
        for (uint32_t k = 0; k < DR_CKPT_MAX_RANK; k++) {
            s->shape[k] = rd64(e + E_SHAPE + 8 * k);
            if (k >= s->rank && s->shape[k])
                return dr__fail(err, DR_FORMAT, "%s: section '%s': shape entry %u beyond rank %u "
                                               "is not zero", P, s->name, k, s->rank);
        }
        s->offset = rd64(e + E_OFFSET);
        s->size = rd64(e + E_SIZE);
        uint64_t want;
        char sh[128];
        if (!section_bytes(s->dtype, s->rank, s->shape, &want)) {
            shape_str(sh, sizeof sh, s->rank, s->shape);
            return dr__fail(err, DR_FORMAT, "%s: section '%s': %s x %s overflows 64 bits", P,
                           s->name, dr__dtype_name(s->dtype), sh);
        }
        if (want != s->size) {
            shape_str(sh, sizeof sh, s->rank, s->shape);
            return dr__fail(err, DR_FORMAT, "%s: section '%s': size %llu bytes but %s %s needs %llu",
                           P, s->name, (unsigned long long)s->size, dr__dtype_name(s->dtype), sh,
                           (unsigned long long)want);
        }
        if (s->offset % DR_CKPT_ALIGN)
            return dr__fail(err, DR_FORMAT, "%s: section '%s': offset %llu is not %u-byte aligned",
                           P, s->name, (unsigned long long)s->offset, DR_CKPT_ALIGN);
        if (s->offset > len || s->size > len - s->offset)
            return dr__fail(err, DR_FORMAT,
                           "%s: section '%s' extends past end of file (offset %llu + %llu > %llu)",
                           P, s->name, (unsigned long long)s->offset, (unsigned long long)s->size,
                           (unsigned long long)len);
        if (s->offset < prev_end) {
            if (prev_name)
                return dr__fail(err, DR_FORMAT,
                               "%s: section '%s' (offset %llu) overlaps or precedes section '%s' "
                               "(which ends at %llu)", P, s->name, (unsigned long long)s->offset,
                               prev_name, (unsigned long long)prev_end);
            return dr__fail(err, DR_FORMAT, "%s: section '%s' (offset %llu) overlaps the section "
                                           "table (which ends at %llu)", P, s->name,
                           (unsigned long long)s->offset, (unsigned long long)prev_end);
        }
        prev_end = s->offset + s->size;
        prev_name = s->name;
        s->data = b + s->offset;
    }
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(c->sec[i].name, DR_CKPT_META_NAME) == 0) return parse_meta(c, &c->sec[i], err);
    return DR_OK;
}

static dr_ckpt *ckpt_new(const char *name) {
    dr_ckpt *c = dr__calloc(1, sizeof *c);
    if (!c) return NULL;
    c->path = dr__strdup(name ? name : "<buffer>");
    if (!c->path) {
        dr__free(c);
        return NULL;
    }
    return c;
}

dr_status dr__ckpt_open(const char *path, dr_ckpt **out, dr_error *err) {
    dr_ckpt *c = NULL;
    dr_status st;
    int fd = -1;
    if (!out || !path) return dr__fail(err, DR_ARG, "dr__ckpt_open: NULL argument");
    *out = NULL;
    c = ckpt_new(path);
    if (!c) {
        st = dr__fail(err, DR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        st = dr__fail(err, DR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = dr__fail(err, DR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (S_ISDIR(sb.st_mode)) {
        st = dr__fail(err, DR_IO, "%s: is a directory, not a checkpoint file", path);
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = dr__fail(err, DR_IO, "%s: not a regular file", path);
        goto fail;
    }
    if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX / 2) {
        st = dr__fail(err, DR_LIMIT, "%s: file too large to map", path);
        goto fail;
    }
    c->len = (size_t)sb.st_size;
    if (c->len) {
        void *m = mmap(NULL, c->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            st = dr__fail(err, DR_IO, "%s: mmap failed: %s", path, strerror(errno));
            goto fail;
        }
        c->base = m;
        c->mapped = 1;
    }
    close(fd);
    fd = -1;
    st = validate(c, 0, err);
    if (st != DR_OK) goto fail;
    *out = c;
    return DR_OK;
fail:
    if (fd >= 0) close(fd);
    dr__ckpt_close(c);
    return st;
}

dr_status dr__ckpt_open_buffer(const void *buf, size_t len, const char *name, unsigned flags,
                              dr_ckpt **out, dr_error *err) {
    dr_ckpt *c = NULL;
    dr_status st;
    if (!out || (!buf && len)) return dr__fail(err, DR_ARG, "dr__ckpt_open_buffer: NULL argument");
    *out = NULL;
    c = ckpt_new(name);
    if (!c || len > SIZE_MAX - DR_CKPT_ALIGN) {
        st = dr__fail(err, DR_NOMEM, "%s: out of memory", name ? name : "<buffer>");
        goto fail;
    }
    c->owned = dr__malloc(len + DR_CKPT_ALIGN);
    if (!c->owned) {
        st = dr__fail(err, DR_NOMEM, "%s: out of memory copying %zu bytes", c->path, len);
        goto fail;
    }
    uintptr_t a = ((uintptr_t)c->owned + DR_CKPT_ALIGN - 1) & ~(uintptr_t)(DR_CKPT_ALIGN - 1);
    if (len) memcpy((void *)a, buf, len);
    c->base = (const uint8_t *)a;
    c->len = len;
    st = validate(c, flags, err);
    if (st != DR_OK) goto fail;
    *out = c;
    return DR_OK;
fail:
    dr__ckpt_close(c);
    return st;
}

void dr__ckpt_close(dr_ckpt *c) {
    if (!c) return;
    if (c->mapped) munmap((void *)c->base, c->len);
    dr__free(c->owned);
    dr__free(c->sec);
    dr__free(c->meta_text);
    dr__free(c->meta_kv);
    dr__free(c->path);
    dr__free(c);
}

dr_status dr__ckpt_find(const dr_ckpt *c, const char *name, dr_dtype dtype, uint32_t rank,
                       uint64_t *shape, const void **data, dr_error *err) {
    if (!c || !name || !data) return dr__fail(err, DR_ARG, "dr__ckpt_find: NULL argument");
    *data = NULL;
    const dr_ckpt_section *s = NULL;
    for (uint32_t i = 0; i < c->n && !s; i++)
        if (strcmp(c->sec[i].name, name) == 0) s = &c->sec[i];
    if (!s) return dr__fail(err, DR_NOTFOUND, "%s: no section '%s'", c->path, name);
    if (s->dtype != (uint32_t)dtype || s->rank != rank) {
        char sh[128];
        shape_str(sh, sizeof sh, s->rank, s->shape);
        return dr__fail(err, DR_FORMAT, "%s: section '%s' is %s rank %u %s, expected %s rank %u",
                       c->path, name, dr__dtype_name(s->dtype), s->rank, sh,
                       dr__dtype_name((uint32_t)dtype), rank);
    }
    if (shape) {
        for (uint32_t k = 0; k < rank; k++)
            if (shape[k] != DR_CKPT_ANY && shape[k] != s->shape[k]) {
                char have[128], want[128];
                shape_str(have, sizeof have, s->rank, s->shape);
                shape_str(want, sizeof want, rank, shape);
                return dr__fail(err, DR_FORMAT, "%s: section '%s' has shape %s, expected %s",
                               c->path, name, have, want);
            }
        for (uint32_t k = 0; k < rank; k++) shape[k] = s->shape[k];
    }
    *data = s->data;
    return DR_OK;
}

const char *dr__ckpt_meta(const dr_ckpt *c, const char *key) {
    if (!c || !key) return NULL;
    for (size_t i = 0; i < c->n_meta; i++)
        if (strcmp(c->meta_kv[2 * i], key) == 0) return c->meta_kv[2 * i + 1];
    return NULL;
}

size_t dr__ckpt_n_meta(const dr_ckpt *c) { return c ? c->n_meta : 0; }

void dr__ckpt_meta_at(const dr_ckpt *c, size_t i, const char **key, const char **value) {
    if (!c || i >= c->n_meta) {
        *key = *value = NULL;
        return;
    }
    *key = c->meta_kv[2 * i];
    *value = c->meta_kv[2 * i + 1];
}

uint32_t dr__ckpt_n_sections(const dr_ckpt *c) { return c ? c->n : 0; }

const dr_ckpt_section *dr__ckpt_section_at(const dr_ckpt *c, uint32_t i) {
    return c && i < c->n ? &c->sec[i] : NULL;
}

const char *dr__ckpt_path(const dr_ckpt *c) { return c ? c->path : ""; }

dr_status dr__ckpt_file_hash(const char *path, char out[17], dr_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dr__fail(err, DR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    dr_status st = DR_OK;
    if (fstat(fd, &sb) != 0 || sb.st_size <= 0) {
        st = dr__fail(err, DR_IO, "%s: cannot read its size", path);
    } else {
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            st = dr__fail(err, DR_IO, "%s: mmap failed: %s", path, strerror(errno));
        } else {
            snprintf(out, 17, "%016llx", (unsigned long long)dr__xxh64(m, (size_t)sb.st_size, 0));
            munmap(m, (size_t)sb.st_size);
        }
    }
    close(fd);
    return st;
}
