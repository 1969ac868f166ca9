/*
 * sqlmem.h - routes SQLite's memory through dr__malloc, so the out-of-memory checks (oom.h)
 * count and fail SQLite's allocations like the library's own. Call dr_test_sqlite_mem() first
 * thing in main, before anything opens a database.
 */
#ifndef DR_SQLMEM_H
#define DR_SQLMEM_H

#include "testutil.h"

#include <sqlite3.h>

#include "common.h"

/* SQLite's memory comes from dr__malloc too (dr_test_sqlite_mem installs sql_mem), so its allocations are
 * counted and failed like the store's own: 8 bytes before each block hold its size. */
static void *sql_malloc(int n) {
    int64_t *p = dr__malloc((size_t)n + 8);
    if (!p) return NULL;
    p[0] = n;
    return p + 1;
}

static void sql_free(void *p) {
    if (p) dr__free((int64_t *)p - 1);
}

static void *sql_realloc(void *p, int n) {
    if (!p) return sql_malloc(n);
    int64_t *q = dr__realloc((int64_t *)p - 1, (size_t)n + 8);
    if (!q) return NULL;
    q[0] = n;
    return q + 1;
}

static int sql_size(void *p) { return p ? (int)((int64_t *)p)[-1] : 0; }
static int sql_roundup(int n) { return (n + 7) & ~7; }
static int sql_init(void *ud) { (void)ud; return SQLITE_OK; }
static void sql_shutdown(void *ud) { (void)ud; }

static const sqlite3_mem_methods sql_mem = {sql_malloc, sql_free,     sql_realloc, sql_size,
                                            sql_roundup, sql_init, sql_shutdown, NULL};

static inline void dr_test_sqlite_mem(void) {
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &sql_mem) != SQLITE_OK ||
        sqlite3_config(SQLITE_CONFIG_LOOKASIDE, 0, 0) != SQLITE_OK || sqlite3_initialize() != SQLITE_OK)
        fail_msg("cannot route SQLite's memory through dr__malloc");
}

#endif
