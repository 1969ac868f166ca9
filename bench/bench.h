/*
 * bench.h - shared helpers for the benchmark programs in bench/.
 *
 * Every benchmark prints `name value unit` lines, the machine, the build flags and the commit
 * (from the environment the runner sets), and a hash of its outputs, so that a faster build
 * that changes answers is caught. Timings are medians of repeated runs; ratios are measured
 * in the same process.
 */
#ifndef DR_BENCH_H
#define DR_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int bench_dbl_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median (sorts v in place). */
static inline double bench_median(double *v, size_t n) {
    qsort(v, n, sizeof *v, bench_dbl_cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Quantile q in [0,1] of sorted v (nearest rank). */
static inline double bench_quantile_sorted(const double *v, size_t n, double q) {
    size_t k = (size_t)(q * (double)n);
    if (k >= n) k = n - 1;
    return v[k];
}

/* Peak resident set size of this process in MiB. */
static inline double bench_peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static inline void bench_header(const char *name) {
    struct utsname u;
    uname(&u);
    char cpu[256] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "model name", 10) == 0) {
                char *c = strchr(line, ':');
                if (c) {
                    snprintf(cpu, sizeof cpu, "%s", c + 2);
                    cpu[strcspn(cpu, "\n")] = 0;
                }
                break;
            }
        }
        fclose(f);
    }
    const char *commit = getenv("BENCH_COMMIT"), *flags = getenv("BENCH_FLAGS");
    printf("# bench %s\n# machine %s %s, %ld cores, %s\n# commit %s\n# flags %s\n", name,
           u.sysname, u.machine, sysconf(_SC_NPROCESSORS_ONLN), cpu, commit ? commit : "?",
           flags ? flags : "?");
}

/* FNV-1a over bytes, to fingerprint outputs. */
static inline uint64_t bench_hash(uint64_t h, const void *p, size_t n) {
    const unsigned char *s = p;
    if (!h) h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

#endif
