/* testutil.h - shared helpers for the cmocka unit tests (run from the repository root). */
#ifndef DR_TESTUTIL_H
#define DR_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dynrec.h"

/* Folder of the shared read-only datasets: $DR_SHARED, else ../shared/data. NULL if absent. */
static inline const char *dr_test_shared_data(void) {
    const char *env = getenv("DR_SHARED");
    static char buf[4096];
    if (env && *env) {
        snprintf(buf, sizeof buf, "%s/data", env);
    } else {
        snprintf(buf, sizeof buf, "../shared/data");
    }
    return access(buf, R_OK) == 0 ? buf : NULL;
}

/* Path of a shared dataset sub-folder, or skip the test with a clear message. */
#define DR_SHARED_OR_SKIP(var, sub)                                                     \
    char var[4096];                                                                     \
    do {                                                                                \
        const char *root_ = dr_test_shared_data();                                      \
        if (!root_) {                                                                   \
            fprintf(stderr, "SKIP: shared data (../shared/data or $DR_SHARED/data) not "  \
                            "present, %s not checked\n", sub);                         \
            skip();                                                                     \
        }                                                                               \
        snprintf(var, sizeof var, "%s/%s", root_, sub);                                 \
        if (access(var, R_OK) != 0) {                                                   \
            fprintf(stderr, "SKIP: %s not present\n", var);                             \
            skip();                                                                     \
        }                                                                               \
    } while (0)

/* A fresh temporary folder under $TMPDIR (or /tmp); the caller removes it with dr_test_rmrf. */
static inline void dr_test_tmpdir(char *out, size_t cap) {
    const char *t = getenv("TMPDIR");
    snprintf(out, cap, "%s/dynrec-test-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(out)) fail_msg("mkdtemp failed");
}

static inline void dr_test_rmrf(const char *path) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", path);
}

/* Writes a string to a file. */
static inline void dr_test_write(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

#define assert_ok(call)                                                          \
    do {                                                                         \
        dr_error e_ = {0};                                                       \
        dr_status s_ = (call);                                                   \
        if (s_ != DR_OK) fail_msg("%s -> %s: %s", #call, dr_status_name(s_), e_.msg); \
    } while (0)

#endif
