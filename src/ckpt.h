/*
 * ckpt.h - the checkpoint container (.drm): one file of named, shaped, 64-byte aligned
 * sections plus key=value metadata, written atomically and mmapped back read-only.
 * The byte layout is documented in docs/FORMATS.md ("Checkpoint container (.drm)").
 *
 * Writer:  w = dr__ckpt_writer_create(); dr__ckpt_add(w, "item", DR_DT_F32, 2, (n, d), ptr);
 *          dr__ckpt_add_meta(w, "model", "mf"); dr__ckpt_write(w, "m.drm", err);
 *          dr__ckpt_writer_free(w);
 *          (section data is referenced, not copied: keep it alive until dr__ckpt_write.)
 * Reader:  dr__ckpt_open("m.drm", &c, err) validates the whole file before returning;
 *          dr__ckpt_find(c, "item", DR_DT_F32, 2, shape, &ptr, err) with shape entries
 *          DR_CKPT_ANY filled in; pointers stay valid until dr__ckpt_close(c).
 */
#ifndef DR_CKPT_H
#define DR_CKPT_H

#include "common.h"

#define DR_CKPT_VERSION 1u
#define DR_CKPT_HEADER_BYTES 64u
#define DR_CKPT_ENTRY_BYTES 128u
#define DR_CKPT_ALIGN 64u
#define DR_CKPT_META_NAME ".meta"  /* reserved section name of the metadata text */
#define DR_CKPT_ANY UINT64_MAX     /* shape wildcard for dr__ckpt_find */

/* On-disk element types (the numbers are part of the format). */
typedef enum dr_dtype {
    DR_DT_F32 = 1,
    DR_DT_F16 = 2,
    DR_DT_F64 = 3,
    DR_DT_I32 = 4,
    DR_DT_U32 = 5,
    DR_DT_I64 = 6,
    DR_DT_U8 = 7,
    DR_DT_STR = 8 /* UTF-8 bytes, rank 1, shape = (bytes) */
} dr_dtype;

/* Bytes per element, 0 for an unknown dtype. */
size_t dr__dtype_size(uint32_t dtype);
const char *dr__dtype_name(uint32_t dtype); /* "f32", ..., "?" */

/* XXH64 (seed 0) of the bytes: the container's checksum, exposed for tests and tools. */
uint64_t dr__xxh64(const void *p, size_t n, uint64_t seed);
/* XXH64 (seed 0) of the whole file at path as 16 hex digits and a NUL: how the server's base
 * records and the index files (ann.c) name a checkpoint. */
dr_status dr__ckpt_file_hash(const char *path, char out[17], dr_error *err);

/* ---- writer */
typedef struct dr_ckpt_writer dr_ckpt_writer;

dr_status dr__ckpt_writer_create(dr_ckpt_writer **out, dr_error *err);
void dr__ckpt_writer_free(dr_ckpt_writer *w);
/* Adds a section; shape has `rank` entries (rank 0 = scalar). data is referenced, not copied,
 * and must hold dtype_size * prod(shape) bytes until dr__ckpt_write. DR_ARG on a bad or
 * duplicate name, unknown dtype, rank > 4 or a size overflow. */
dr_status dr__ckpt_add(dr_ckpt_writer *w, const char *name, dr_dtype dtype, uint32_t rank,
                      const uint64_t *shape, const void *data, dr_error *err);
/* Adds metadata (copied). key: 1..63 bytes of [A-Za-z0-9_.-]; value: UTF-8 without NUL or
 * newline. A repeated key is DR_ARG. */
dr_status dr__ckpt_add_meta(dr_ckpt_writer *w, const char *key, const char *value,
                           dr_error *err);
/* Writes path.tmp, fsyncs it, renames it to path and fsyncs the folder. */
dr_status dr__ckpt_write(dr_ckpt_writer *w, const char *path, dr_error *err);

/* ---- reader */
typedef struct dr_ckpt dr_ckpt;

typedef struct dr_ckpt_section {
    char name[DR_CKPT_NAME_MAX];
    uint32_t dtype;                   /* dr_dtype */
    uint32_t rank;
    uint64_t shape[DR_CKPT_MAX_RANK]; /* unused entries 0 */
    uint64_t offset, size;            /* bytes from the start of the file */
    const void *data;                 /* 64-byte aligned, read-only */
} dr_ckpt_section;

enum { DR_CKPT_SKIP_CHECKSUM = 1 }; /* dr__ckpt_open_buffer flag (fuzzing only) */

/* mmaps path read-only and validates header, checksum, table and metadata before returning.
 * DR_IO when the file cannot be opened or mapped, DR_FORMAT for any malformed content. */
dr_status dr__ckpt_open(const char *path, dr_ckpt **out, dr_error *err);
/* The same checks on a memory buffer, copied into a 64-byte aligned block owned by the
 * result; name is used in error messages. */
dr_status dr__ckpt_open_buffer(const void *buf, size_t len, const char *name, unsigned flags,
                              dr_ckpt **out, dr_error *err);
void dr__ckpt_close(dr_ckpt *c);

/* Finds a section by name and checks its dtype, rank and shape (rank entries; entries equal
 * to DR_CKPT_ANY match any length and are replaced by the actual one; shape may be NULL to
 * accept any shape). DR_NOTFOUND when absent, DR_FORMAT on a mismatch. */
dr_status dr__ckpt_find(const dr_ckpt *c, const char *name, dr_dtype dtype, uint32_t rank,
                       uint64_t *shape, const void **data, dr_error *err);
/* Value of a metadata key (NUL-terminated, owned by c) or NULL. */
const char *dr__ckpt_meta(const dr_ckpt *c, const char *key);
size_t dr__ckpt_n_meta(const dr_ckpt *c);
/* The i-th key and value in file order; NULLs when i >= dr__ckpt_n_meta(c). */
void dr__ckpt_meta_at(const dr_ckpt *c, size_t i, const char **key, const char **value);
uint32_t dr__ckpt_n_sections(const dr_ckpt *c);
const dr_ckpt_section *dr__ckpt_section_at(const dr_ckpt *c, uint32_t i);
const char *dr__ckpt_path(const dr_ckpt *c);

#endif /* DR_CKPT_H */
