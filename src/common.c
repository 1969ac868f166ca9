/*
 * common.c - status table, errors, logging, the counted allocator, growable arrays, string
 * interning, file and number helpers, and a small parallel-for.
 *
 * DESIGN: everything here is leaf code with no knowledge of recommenders. The allocator
 * counts allocations per thread (so tests can assert that hot paths allocate nothing), counts
 * the blocks live in the whole process (so tests can see a leak without a sanitizer) and can
 * be told to fail the n-th allocation (so out-of-memory paths are tested like SQLite's). The
 * string table is open addressing with linear probing over FNV-1a hashes: ids are dense and
 * in insertion order, which is exactly what the dataset remap needs. dr__parallel_for hands out
 * chunks from an atomic counter to short-lived pthreads; a persistent pool was rejected for
 * now because every parallel loop in the library is long (whole evaluation passes), where
 * thread start-up is noise.
 */
#include "common.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ status */

static const char *const status_names[] = {
#define DR__NAME(code, name, msg) name,
    DR_STATUS_TABLE(DR__NAME)
#undef DR__NAME
};
static const char *const status_msgs[] = {
#define DR__MSG(code, name, msg) msg,
    DR_STATUS_TABLE(DR__MSG)
#undef DR__MSG
};

const char *dr_status_name(dr_status s) {
    return (unsigned)s < DR_STATUS_COUNT ? status_names[s] : "unknown";
}

const char *dr_status_message(dr_status s) {
    return (unsigned)s < DR_STATUS_COUNT ? status_msgs[s] : "unknown status";
}

static const char *const skip_names[] = {
#define DR__SNAME(code, name, msg) name,
    DR_SKIP_TABLE(DR__SNAME)
#undef DR__SNAME
};

const char *dr_skip_name(dr_skip_reason r) {
    return (unsigned)r < DR_SKIP_COUNT ? skip_names[r] : "unknown";
}

dr_status dr__fail(dr_error *err, dr_status code, const char *fmt, ...) {
    if (err) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

dr_status dr__fail_wrap(dr_error *err, dr_status code, const char *fmt, ...) {
    if (!err) return code;
    if (err->code != DR_OK) code = err->code;
    char prefix[256], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
    err->code = code;
    return code;
}

/* ------------------------------------------------------------------ logging */

static dr_log_fn log_fn;
static void *log_ud;
static int log_max = DR_LOG_INFO;

void dr_set_log(dr_log_fn fn, void *ud, int max_level) {
    log_fn = fn;
    log_ud = ud;
    log_max = max_level;
}

void dr__log(int level, const char *fmt, ...) {
    if (!log_fn || level > log_max) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_fn(log_ud, level, buf);
}

/* ------------------------------------------------------------------ allocation */

static _Thread_local uint64_t alloc_count;
static _Thread_local uint64_t alloc_fail_at; /* absolute count that fails; 0 = never */
/* Blocks live now, all threads (a block may be freed by another thread than the one that
 * allocated it, so this one counter is shared); relaxed: only tests compare it. */
static atomic_llong alloc_live;

static void *alloc_note(void *p) {
    if (p) atomic_fetch_add_explicit(&alloc_live, 1, memory_order_relaxed);
    return p;
}

static bool alloc_should_fail(void) {
    alloc_count++;
    return alloc_fail_at && alloc_count == alloc_fail_at;
}

uint64_t dr__alloc_count(void) { return alloc_count; }

int64_t dr__alloc_live(void) { return atomic_load_explicit(&alloc_live, memory_order_relaxed); }

void dr__alloc_fail_after(uint64_t n) { alloc_fail_at = n ? alloc_count + n : 0; }

void *dr__malloc(size_t n) {
    if (alloc_should_fail()) return NULL;
    return alloc_note(malloc(n ? n : 1));
}

void *dr__calloc(size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) return NULL;
    if (alloc_should_fail()) return NULL;
    return alloc_note(calloc(count ? count : 1, size ? size : 1));
}

void *dr__realloc(void *p, size_t n) {
    if (alloc_should_fail()) return NULL;
    void *q = realloc(p, n ? n : 1);
    return p ? q : alloc_note(q);
}

void *dr__reallocarray(void *p, size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) return NULL;
    return dr__realloc(p, count * size);
}

char *dr__strndup(const char *s, size_t n) {
    char *d = dr__malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

char *dr__strdup(const char *s) { return dr__strndup(s, strlen(s)); }

void dr__free(void *p) {
    if (p) atomic_fetch_sub_explicit(&alloc_live, 1, memory_order_relaxed);
    free(p);
}

int dr__vec_grow_(void **a, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 16;
    while (nc < need) {
        if (nc > SIZE_MAX / 2) return -1;
        nc *= 2;
    }
    void *p = dr__reallocarray(*a, nc, elem);
    if (!p) return -1;
    *a = p;
    *cap = nc;
    return 0;
}

/* ------------------------------------------------------------------ string table */

uint64_t dr__hash_bytes(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static dr_status strtab_rehash(dr_strtab *t, uint32_t nslots) {
    uint32_t *slot = dr__calloc(nslots, sizeof *slot);
    if (!slot) return DR_NOMEM;
    uint32_t mask = nslots - 1;
    for (uint32_t id = 0; id < t->n; id++) {
        uint64_t h = dr__hash_bytes(t->str[id], strlen(t->str[id]));
        uint32_t k = (uint32_t)h & mask;
        while (slot[k]) k = (k + 1) & mask;
        slot[k] = id + 1;
    }
    dr__free(t->slot);
    t->slot = slot;
    t->mask = mask;
    return DR_OK;
}

uint32_t dr__strtab_find(const dr_strtab *t, const char *s, size_t len) {
    if (!t->slot) return UINT32_MAX;
    uint32_t k = (uint32_t)dr__hash_bytes(s, len) & t->mask;
    for (; t->slot[k]; k = (k + 1) & t->mask) {
        const char *c = t->str[t->slot[k] - 1];
        if (strncmp(c, s, len) == 0 && c[len] == 0) return t->slot[k] - 1;
    }
    return UINT32_MAX;
}

dr_status dr__strtab_intern(dr_strtab *t, const char *s, size_t len, uint32_t *id, bool *is_new) {
    uint32_t found = dr__strtab_find(t, s, len);
    if (found != UINT32_MAX) {
        *id = found;
        if (is_new) *is_new = false;
        return DR_OK;
    }
    if (t->n == UINT32_MAX - 1) return DR_LIMIT;
    if ((uint64_t)(t->n + 1) * 2 > (uint64_t)(t->slot ? t->mask + 1 : 0)) {
        uint32_t ns = t->slot ? (t->mask + 1) * 2 : 64;
        if (strtab_rehash(t, ns) != DR_OK) return DR_NOMEM;
    }
    if (t->n == t->cap) {
        uint32_t nc = t->cap ? t->cap * 2 : 64;
        char **p = dr__reallocarray(t->str, nc, sizeof *p);
        if (!p) return DR_NOMEM;
        t->str = p;
        t->cap = nc;
    }
    char *copy = dr__strndup(s, len);
    if (!copy) return DR_NOMEM;
    uint32_t k = (uint32_t)dr__hash_bytes(s, len) & t->mask;
    while (t->slot[k]) k = (k + 1) & t->mask;
    t->slot[k] = t->n + 1;
    t->str[t->n] = copy;
    *id = t->n++;
    if (is_new) *is_new = true;
    return DR_OK;
}

void dr__strtab_free(dr_strtab *t) {
    if (!t) return;
    for (uint32_t i = 0; i < t->n; i++) dr__free(t->str[i]);
    dr__free(t->str);
    dr__free(t->slot);
    memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------------ files */

dr_status dr__read_file(const char *path, size_t max, char **buf, size_t *len, dr_error *err) {
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return dr__fail(err, DR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return dr__fail(err, DR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > (uint64_t)max) {
        fclose(f);
        return dr__fail(err, DR_LIMIT, "%s: %lld bytes is over the limit of %zu bytes", path,
                       (long long)st.st_size, max);
    }
    size_t n = (size_t)st.st_size;
    char *b = dr__malloc(n + 1);
    if (!b) {
        fclose(f);
        return dr__fail(err, DR_NOMEM, "%s: cannot allocate %zu bytes", path, n + 1);
    }
    size_t got = n ? fread(b, 1, n, f) : 0;
    int ioerr = ferror(f);
    fclose(f);
    if (got != n || ioerr) {
        dr__free(b);
        return dr__fail(err, DR_IO, "%s: short read (%zu of %zu bytes)", path, got, n);
    }
    b[n] = 0;
    *buf = b;
    *len = n;
    return DR_OK;
}

bool dr__path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool dr__path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

bool dr__path_ends(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

char *dr__path_join(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    char *p = dr__malloc(na + nb + 2);
    if (!p) return NULL;
    memcpy(p, a, na);
    size_t k = na;
    if (na && a[na - 1] != '/') p[k++] = '/';
    memcpy(p + k, b, nb + 1);
    return p;
}

dr_status dr__mkdir_p(const char *path, dr_error *err) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return dr__fail(err, DR_ARG, "bad folder path '%s'", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return dr__fail(err, DR_IO, "%s: cannot create folder: %s", buf, strerror(errno));
        buf[i] = c;
    }
    if (!dr__path_is_dir(path)) return dr__fail(err, DR_IO, "%s: not a folder", path);
    return DR_OK;
}

/* ------------------------------------------------------------------ parsing */

bool dr__parse_i64(const char *s, size_t n, int64_t *out) {
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
    if (i == n) return false;
    uint64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) return false;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)v;
    }
    return true;
}

bool dr__parse_u32(const char *s, size_t n, uint32_t *out) {
    int64_t v;
    if (n == 0 || s[0] == '-' || s[0] == '+' || !dr__parse_i64(s, n, &v) || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

bool dr__parse_f64(const char *s, size_t n, double *out) {
    char buf[64];
    if (n == 0 || n >= sizeof buf) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' || c == 'e' ||
              c == 'E'))
            return false; /* rejects "nan", "inf", hex floats and spaces */
    }
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (end != buf + n || errno == ERANGE || !isfinite(v)) return false;
    *out = v;
    return true;
}

bool dr__utf8_valid(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c == 0) return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F;
        else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F;
        else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07;
        else return false;
        if (i + len > n) return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

/* ------------------------------------------------------------------ time, threads */

double dr__now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void dr__deadline(struct timespec *ts, clockid_t clk, double seconds) {
    clock_gettime(clk, ts);
    time_t whole = (time_t)seconds;
    ts->tv_sec += whole;
    ts->tv_nsec += (long)((seconds - (double)whole) * 1e9 + 0.5);
    while (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int dr__default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > DR_MAX_THREADS ? DR_MAX_THREADS : (int)n);
}

typedef struct pf_job {
    size_t n, chunk;
    atomic_size_t next;
    dr_parallel_fn fn;
    void *ctx;
} pf_job;

typedef struct pf_arg {
    pf_job *job;
    int worker;
} pf_arg;

static void pf_run(pf_job *job, int worker) {
    for (;;) {
        size_t start = atomic_fetch_add(&job->next, job->chunk);
        if (start >= job->n) return;
        size_t end = DR_MIN(job->n, start + job->chunk);
        for (size_t i = start; i < end; i++) job->fn(job->ctx, i, worker);
    }
}

static void *pf_thread(void *p) {
    pf_arg *a = p;
    pf_run(a->job, a->worker);
    return NULL;
}

void dr__parallel_for(size_t n, int threads, dr_parallel_fn fn, void *ctx) {
    if (threads <= 0) threads = dr__default_threads();
    if (threads > DR_MAX_THREADS) threads = DR_MAX_THREADS;
    if ((size_t)threads > n) threads = n ? (int)n : 1;
    pf_job job = {.n = n, .fn = fn, .ctx = ctx};
    job.chunk = DR_MAX((size_t)1, n / ((size_t)threads * 16));
    atomic_init(&job.next, 0);
    if (threads == 1) {
        pf_run(&job, 0);
        return;
    }
    pthread_t tid[256];
    pf_arg args[256];
    int started = 0;
    for (int w = 1; w < threads; w++) {
        args[w] = (pf_arg){&job, w};
        if (pthread_create(&tid[w], NULL, pf_thread, &args[w]) != 0) break;
        started = w;
    }
    pf_run(&job, 0); /* the caller is worker 0; missing threads just mean fewer workers */
    for (int w = 1; w <= started; w++) pthread_join(tid[w], NULL);
}
