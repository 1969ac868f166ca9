/*
 * oom.h - one out-of-memory check for every constructor (the idea of SQLite's test_malloc.c).
 *
 *   static dr_status call(void *ud, dr_error *err) { T *u = ud; return x_create(.., &u->x, err); }
 *   DR_OOM_FREE_FN(cleanup, T, x, x_free)    (or any void cleanup(void *ud))
 *   dr_oom_case c = {.name = "x_create", .call = call, .cleanup = cleanup, .ud = &u,
 *                    .out = (void **)&u.x};
 *   dr_oom_check(&c);
 *
 * dr_oom_check runs the call once to count the allocations it makes on this thread (N), then
 * for k = 1..N fails the k-th one and checks: the call returns DR_NOMEM (or c->alt), err
 * holds a message, *out is NULL (it is set to a poison pointer before the call), and after
 * cleanup as many blocks are live as before (dr__alloc_live; under ASan, LeakSanitizer also
 * sees what leaks). Then it runs the call once more without failure, which must succeed. It
 * prints "oom: NAME: N allocation points" and returns N. With N over c->every (300), every
 * point up to it is failed, then a stride that keeps the total near 2 * every.
 *
 * cleanup runs after every call, failed or not: it frees what the call made (free(NULL) is a
 * no-op) and resets the pointers (DR_OOM_FREE_FN writes the usual one). Only allocations on the calling thread are counted and
 * failed (the counter is per thread); a constructor's own threads allocate normally. A hang
 * is turned into a failure by an alarm (c->seconds, 600 by default).
 */
#ifndef DR_OOM_H
#define DR_OOM_H

#include "testutil.h"

#include <signal.h>

#include "common.h"

typedef struct dr_oom_case {
    const char *name;                           /* what the output names */
    dr_status (*call)(void *ud, dr_error *err); /* the constructor (and what it needs) */
    void (*cleanup)(void *ud);                  /* frees what call made, NULL if nothing */
    void *ud;
    void **out;         /* the call's out pointer (NULL when it has none) */
    dr_status alt;      /* another status a failed allocation may give (DR_OK: none) */
    int tolerated;      /* failed allocations the call may absorb and still return DR_OK */
    uint64_t every;     /* points failed one by one before the stride (0: 300) */
    unsigned seconds;   /* alarm for the whole check (0: 600) */
} dr_oom_case;

/* The usual cleanup: static void fn(void *ud) frees ((T *)ud)->field with free_fn and
 * clears it. */
#define DR_OOM_FREE_FN(fn, T, field, free_fn)                                                 \
    static void fn(void *ud) {                                                                \
        T *u_ = ud;                                                                           \
        free_fn(u_->field);                                                                   \
        u_->field = NULL;                                                                     \
    }

#define DR_OOM_POISON ((void *)(uintptr_t)0x0badc0de)

/* One run with the k-th allocation failing (k = 0: none); returns the call's status. */
static inline dr_status dr_oom_run_(const dr_oom_case *c, uint64_t k, uint64_t *allocs) {
    dr_error err = {0};
    if (c->out) *c->out = k ? DR_OOM_POISON : NULL;
    int64_t live = dr__alloc_live();
    uint64_t a0 = dr__alloc_count();
    dr__alloc_fail_after(k);
    dr_status st = c->call(c->ud, &err);
    dr__alloc_fail_after(0);
    if (allocs) *allocs = dr__alloc_count() - a0;
    if (st == DR_OK && !k) {
        if (c->out && !*c->out) fail_msg("oom: %s: DR_OK without an object", c->name);
    } else if (st != DR_OK) {
        if (st != DR_NOMEM && (c->alt == DR_OK || st != c->alt))
            fail_msg("oom: %s: allocation %llu failed: %s (%s), expected nomem", c->name,
                     (unsigned long long)k, dr_status_name(st), err.msg);
        if (!k) fail_msg("oom: %s: fails without injection: %s", c->name, err.msg);
        if (!err.msg[0])
            fail_msg("oom: %s: allocation %llu failed: %s without a message", c->name,
                     (unsigned long long)k, dr_status_name(st));
        if (c->out && *c->out)
            fail_msg("oom: %s: allocation %llu failed: %s but *out is %s", c->name,
                     (unsigned long long)k, dr_status_name(st),
                     *c->out == DR_OOM_POISON ? "left unset" : "not NULL");
    }
    if (c->cleanup) c->cleanup(c->ud);
    if (c->out && *c->out == DR_OOM_POISON) *c->out = NULL;
    int64_t left = dr__alloc_live() - live;
    if (left != 0)
        fail_msg("oom: %s: allocation %llu failed (%s): %lld blocks %s", c->name,
                 (unsigned long long)k, dr_status_name(st), (long long)left,
                 left > 0 ? "leaked" : "freed twice or not by dr__free");
    return st;
}

static inline uint64_t dr_oom_check(const dr_oom_case *c) {
    unsigned secs = c->seconds ? c->seconds : 600;
    signal(SIGALRM, SIG_DFL); /* a hang ends the test program instead of the run */
    alarm(secs);
    uint64_t n = 0;
    if (dr_oom_run_(c, 0, &n) != DR_OK) fail_msg("oom: %s: the plain call failed", c->name);
    uint64_t every = c->every ? c->every : 300, stride = 1, ok = 0, tried = 0, first_ok = 0;
    if (n > every) stride = (n - every + every - 1) / every;
    for (uint64_t k = 1; k <= n; k += k < every ? 1 : stride) {
        tried++;
        if (dr_oom_run_(c, k, NULL) == DR_OK && !ok++) first_ok = k;
    }
    if (ok > (uint64_t)c->tolerated)
        fail_msg("oom: %s: %llu failed allocations ignored (DR_OK, the first: %llu of %llu), "
                 "%d allowed", c->name, (unsigned long long)ok, (unsigned long long)first_ok,
                 (unsigned long long)n, c->tolerated);
    uint64_t again = 0;
    if (dr_oom_run_(c, 0, &again) != DR_OK) fail_msg("oom: %s: fails after the OOM runs", c->name);
    alarm(0);
    if (tried == n)
        printf("oom: %s: %llu allocation points\n", c->name, (unsigned long long)n);
    else
        printf("oom: %s: %llu allocation points (%llu failed: each up to %llu, then every "
               "%llu)\n",
               c->name, (unsigned long long)n, (unsigned long long)tried,
               (unsigned long long)every, (unsigned long long)stride);
    if (ok) printf("oom: %s: %llu failed allocations absorbed (DR_OK)\n", c->name,
                   (unsigned long long)ok);
    fflush(stdout);
    return n;
}

#endif
