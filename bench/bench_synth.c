/*
 * bench_synth - speed of the synthetic generator (dr_synth_generate), one thread.
 * Usage: bench_synth [EVENTS] (default 1000000; users and items scale with it: 2% and 1.5%).
 * Prints the median of 5 runs and a hash of the generated events (same params, same hash).
 */
#include "bench.h"
#include "dynrec.h"

int main(int argc, char **argv) {
    size_t n_events = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 1000000;
    dr_synth_params p = dr_synth_default_params();
    p.n_events = n_events;
    p.n_users = (uint32_t)(n_events / 50 ? n_events / 50 : 1);
    p.n_items = (uint32_t)(n_events * 3 / 200 > p.n_genres ? n_events * 3 / 200 : p.n_genres);
    bench_header("synth");
    printf("# params: %u users, %u items, %zu events, %u genres, dims %u/%u/%u\n", p.n_users,
           p.n_items, p.n_events, p.n_genres, p.mod_dim[0], p.mod_dim[1], p.mod_dim[2]);
    double rate[5], secs[5];
    uint64_t h = 0;
    for (int r = 0; r < 5; r++) {
        dr_dataset *ds = NULL;
        dr_error e = {0};
        double a = bench_now();
        if (dr_synth_generate(&p, &ds, &e) != DR_OK) {
            fprintf(stderr, "bench_synth: %s\n", e.msg);
            return 1;
        }
        secs[r] = bench_now() - a;
        rate[r] = (double)p.n_events / secs[r];
        printf("synth_events_per_sec %.0f events/s (run %d, %.3f s)\n", rate[r], r + 1, secs[r]);
        h = 0;
        for (uint32_t u = 0; u < dr_dataset_n_users(ds); u++) {
            const uint32_t *items;
            const int64_t *times;
            size_t k = dr_dataset_user_items(ds, u, &items, &times);
            h = bench_hash(h, items, k * sizeof *items);
            h = bench_hash(h, times, k * sizeof *times);
        }
        const float *x;
        uint32_t dim;
        if (dr_dataset_modality(ds, 0, NULL, &dim, &x, NULL) == DR_OK)
            h = bench_hash(h, x, (size_t)dr_dataset_n_items(ds) * dim * sizeof *x);
        dr_dataset_free(ds);
    }
    printf("synth_events_per_sec %.0f events/s (median of 5)\n", bench_median(rate, 5));
    printf("synth_seconds %.4f s (median of 5)\n", bench_median(secs, 5));
    printf("synth_hash %016llx\n", (unsigned long long)h);
    printf("peak_rss %.1f MiB\n", bench_peak_rss_mib());
    return 0;
}
