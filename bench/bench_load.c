/*
 * bench_load - dataset load time (median of 5) and peak memory for the shared datasets and a
 * synthetic one. Usage: bench_load [DATA_ROOT] (default ../shared/data).
 */
#include "bench.h"
#include "dynrec.h"

static void bench_one(const char *label, const char *path) {
    double t[5];
    uint64_t h = 0;
    size_t n = 0;
    for (int r = 0; r < 5; r++) {
        dr_load_params p = dr_load_default_params();
        dr_dataset *ds = NULL;
        dr_error e = {0};
        double a = bench_now();
        if (dr_dataset_load(path, &p, &ds, &e) != DR_OK) {
            printf("# %s: skipped (%s)\n", label, e.msg);
            return;
        }
        t[r] = bench_now() - a;
        n = dr_dataset_n_events(ds);
        const uint32_t *items;
        h = 0;
        for (uint32_t u = 0; u < dr_dataset_n_users(ds); u++) {
            size_t k = dr_dataset_user_items(ds, u, &items, NULL);
            h = bench_hash(h, items, k * sizeof *items);
        }
        dr_dataset_free(ds);
    }
    printf("load_seconds_%s %.4f s (median of 5, %zu interactions)\n", label, bench_median(t, 5), n);
    printf("load_hash_%s %016llx\n", label, (unsigned long long)h);
}

int main(int argc, char **argv) {
    const char *root = argc > 1 ? argv[1] : "../shared/data";
    char path[4096];
    bench_header("load");
    snprintf(path, sizeof path, "%s/movielens-latest-small", root);
    bench_one("ml-small", path);
    snprintf(path, sizeof path, "%s/amazon-movies-tv-llmtup", root);
    bench_one("amazon-mtv", path);
    snprintf(path, sizeof path, "%s/tiktok-mmssl", root);
    bench_one("tiktok", path);
    printf("peak_rss %.1f MiB\n", bench_peak_rss_mib());
    return 0;
}
