/*
 * common.h - internal helpers shared by every src/ file (never included by cli/ or server).
 *
 * DESIGN: one error path (dr__fail), one allocator (counted, with an optional failure
 * injector so out-of-memory is tested like any other input), one logger (a callback, the
 * library never prints). Alternatives rejected: errno-style globals (not thread-safe) and
 * printing from the library (servers need to route logs).
 */
#ifndef DR_COMMON_H
#define DR_COMMON_H

#include "dynrec.h"
#include "dynrec_limits.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#if defined(__GNUC__)
#define DR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define DR_UNUSED __attribute__((unused))
#else
#define DR_PRINTF(a, b)
#define DR_UNUSED
#endif

#define DR_MIN(a, b) ((a) < (b) ? (a) : (b))
#define DR_MAX(a, b) ((a) > (b) ? (a) : (b))
#define DR_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- errors: return dr__fail(err, DR_FORMAT, "%s:%zu: expected 3 columns", path, line); */
dr_status dr__fail(dr_error *err, dr_status code, const char *fmt, ...) DR_PRINTF(3, 4);
/* Prefixes err->msg with "what: " (keeps the code); returns err's code or `code`. */
dr_status dr__fail_wrap(dr_error *err, dr_status code, const char *fmt, ...) DR_PRINTF(3, 4);

/* ---- logging */
void dr__log(int level, const char *fmt, ...) DR_PRINTF(2, 3);

/* ---- allocation: all library memory goes through these. */
void *dr__malloc(size_t n);
void *dr__calloc(size_t count, size_t size);   /* overflow-checked */
void *dr__realloc(void *p, size_t n);
void *dr__reallocarray(void *p, size_t count, size_t size); /* overflow-checked */
char *dr__strdup(const char *s);
char *dr__strndup(const char *s, size_t n);
void dr__free(void *p);
/* Allocations made so far by this thread (hot-path tests assert a zero delta). */
uint64_t dr__alloc_count(void);
/* Blocks allocated and not yet freed, all threads together (tests compare it for leaks). */
int64_t dr__alloc_live(void);
/* Test hook: the n-th allocation from now on (1 = next) fails on this thread; 0 disables. */
void dr__alloc_fail_after(uint64_t n);

/* ---- growable arrays: DR_VEC(T) v = {0}; dr_vec_push(&v, x) -> 0 or -1 on OOM. */
#define DR_VEC(T) struct { T *a; size_t n, cap; }
int dr__vec_grow_(void **a, size_t *cap, size_t need, size_t elem);
#define dr_vec_reserve(v, need) \
    dr__vec_grow_((void **)&(v)->a, &(v)->cap, (need), sizeof(*(v)->a))
#define dr_vec_push(v, x) \
    (dr_vec_reserve((v), (v)->n + 1) ? -1 : ((v)->a[(v)->n++] = (x), 0))
#define dr_vec_free(v) (dr__free((v)->a), (v)->a = NULL, (v)->n = (v)->cap = 0)

/* ---- string interning: dense ids in order of first insertion. */
typedef struct dr_strtab {
    char **str;        /* (n) owned NUL-terminated strings */
    uint32_t n, cap;
    uint32_t *slot;    /* (mask+1) open addressing: id+1, 0 = empty */
    uint32_t mask;
} dr_strtab;

/* Returns the id of s[0..len), inserting it when new; *is_new set when non-NULL.
 * DR_NOMEM on failure. */
dr_status dr__strtab_intern(dr_strtab *t, const char *s, size_t len, uint32_t *id, bool *is_new);
/* Id of s or UINT32_MAX. */
uint32_t dr__strtab_find(const dr_strtab *t, const char *s, size_t len);
void dr__strtab_free(dr_strtab *t);
uint64_t dr__hash_bytes(const void *p, size_t n);

/* ---- files */
/* Reads a whole file (at most max bytes, else DR_LIMIT) into a NUL-terminated buffer. */
dr_status dr__read_file(const char *path, size_t max, char **buf, size_t *len, dr_error *err);
bool dr__path_is_dir(const char *path);
bool dr__path_exists(const char *path);
/* s ends with suffix. */
bool dr__path_ends(const char *s, const char *suffix);
/* Joins a and b with '/'; returns a malloc'd string or NULL. */
char *dr__path_join(const char *a, const char *b);
/* mkdir -p; DR_IO on failure. */
dr_status dr__mkdir_p(const char *path, dr_error *err);

/* ---- parsing helpers (no locale, strict: the whole field must be consumed) */
bool dr__parse_i64(const char *s, size_t n, int64_t *out);
bool dr__parse_u32(const char *s, size_t n, uint32_t *out);
bool dr__parse_f64(const char *s, size_t n, double *out); /* finite values only */
/* Valid UTF-8 without NUL bytes. */
bool dr__utf8_valid(const char *s, size_t n);

/* ---- time */
double dr__now_seconds(void); /* monotonic */
/* *ts = now on clock clk plus seconds: an absolute deadline for pthread_cond_timedwait. */
void dr__deadline(struct timespec *ts, clockid_t clk, double seconds);

/* ---- threads */
int dr__default_threads(void); /* online cores, at least 1 */
/* Runs fn(ctx, i, worker) for i in [0, n) on `threads` workers (0 = default).
 * Work is handed out in chunks; fn must only write to per-i or per-worker state. */
typedef void (*dr_parallel_fn)(void *ctx, size_t i, int worker);
void dr__parallel_for(size_t n, int threads, dr_parallel_fn fn, void *ctx);

#endif /* DR_COMMON_H */
