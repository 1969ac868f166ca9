/*
 * bench_serve.c - the recommendation handler of the server without sockets: GET
 * /v1/users/{u}/recommendations?k=10 through dr__routes_handle (routing, base latent, adapter
 * user side, exact top-k over the published z', JSON) on one thread, for the checkpoint's users
 * in a fixed stride order. What `dynrec serve` spends per answer minus libmicrohttpd and the
 * network stack (bench/server_load.sh measures those with wrk).
 * Usage: bench_serve [MODEL.drm] [requests] [ANSWERS] [RATE] (default /tmp/amz_mf.drm, 20000; skipped
 * when the model is missing: bench/server_load.sh says how to train it; ANSWERS: write every
 * user's answer there, one per line, to compare builds). Prints the median over 5 runs
 * of the mean time per request, p50/p99 of single requests and a hash of every answer.
 * Then the cost of the live statistics (serve_stats.c, `dynrec serve --stats on|off`): two
 * states over the same checkpoint, one with statistics and live-quality sampling (RATE,
 * by default `dynrec serve`'s; "" for ANSWERS writes none) and one without, taking the
 * same requests in alternated runs: the recommendation handler (one state, its routes counting
 * into the statistics or not: the request path alone) and POST /v1/events of 100 events (each
 * sampled event scored twice on the apply thread before it is applied; one event in 10 takes
 * an item of the user's top 10, a hit, which costs two whole scans); median ratios on/off of
 * wall time and of process CPU time (the apply thread included).
 */
#include <cblas.h>

#include "bench.h"
#include "model.h"
#include "serve_routes.h"
#include "serve_core.h"

#define RUNS 5
#define ALT_RUNS 41     /* alternated on/off runs of the statistics' cost (short: a loaded
                           machine's changes of pace fall on both sides alike) */
#define ALT_REQ 250     /* recommendation requests a side per run */
#define EV_BATCH 100    /* events per POST in the statistics' cost */
#define EV_POSTS 5      /* POSTs a side per run */

/* Seconds of CPU time of the whole process (every thread). */
static double bench_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char *k10(void *ud, const char *name) {
    (void)ud;
    return strcmp(name, "k") == 0 ? "10" : NULL;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/tmp/amz_mf.drm";
    size_t requests = argc > 2 ? (size_t)strtoull(argv[2], NULL, 10) : 20000;
    if (requests < 1) requests = 1;
    bench_header("serve");
    if (access(path, R_OK) != 0) {
        printf("# skipped: %s not present (bench/server_load.sh trains it)\n", path);
        return 0;
    }
    dr_error err = {0};
    dr_model *m = NULL;
    dr_srv *s = NULL;
    dr_routes *r = NULL;
    dr_routes_worker *w = NULL;
    char dir[] = "/tmp/dynrec-bench-serve-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    dr_srv_params p = dr__srv_default_params();
    p.data_dir = dir;
    p.durable = 0;
    dr_routes_params rp = {NULL, 0, 1 << 20, NULL, 0, NULL, NULL};
    if (dr_model_load(path, &m, &err) != DR_OK || dr__srv_open(m, &p, &s, &err) != DR_OK ||
        dr__routes_create(s, &rp, &r, &err) != DR_OK || dr__routes_worker_create(r, &w, &err) != DR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    uint32_t nu = dr_model_n_users(m);
    printf("# model %s: %u users, %u items, latent %u; one thread, k=10, %zu requests x %d runs\n",
           path, nu, dr_model_n_items(m), dr_model_latent_dim(m), requests, RUNS);
    char(*paths)[300] = malloc((size_t)nu * sizeof *paths);
    double *lat = malloc(requests * sizeof *lat), mean[RUNS];
    if (!paths || !lat) return 1;
    for (uint32_t u = 0; u < nu; u++)
        snprintf(paths[u], sizeof paths[u], "/v1/users/%s/recommendations", dr_model_user_id(m, u));
    if (argc > 3 && argv[3][0]) { /* every user's answer, for comparing builds */
        FILE *f = fopen(argv[3], "w");
        if (!f) return 1;
        for (uint32_t u = 0; u < nu; u++) {
            dr_route_req rq = {"GET", paths[u], k10, NULL, NULL, NULL, 0, NULL};
            dr_route_resp resp;
            dr__routes_handle(r, w, &rq, &resp);
            fprintf(f, "%.*s\n", (int)resp.len, resp.body);
        }
        fclose(f);
    }
    uint64_t hash = 0, allocs = 0;
    char cmd[128];
    for (int run = 0; run <= RUNS; run++) { /* run 0 warms up and hashes */
        uint64_t a0 = dr__alloc_count();
        double t_all = bench_now();
        for (size_t q = 0; q < requests; q++) {
            dr_route_req rq = {"GET", paths[(q * 7919) % nu], k10, NULL, NULL, NULL, 0, NULL};
            dr_route_resp resp;
            double t0 = bench_now();
            dr__routes_handle(r, w, &rq, &resp);
            lat[q] = bench_now() - t0;
            if (resp.status != 200) {
                fprintf(stderr, "%s: %d %.*s\n", rq.path, resp.status, (int)resp.len, resp.body);
                return 1;
            }
            if (run == 0) hash = bench_hash(hash, resp.body, resp.len);
        }
        t_all = bench_now() - t_all;
        if (run) mean[run - 1] = t_all / (double)requests;
        else allocs = dr__alloc_count() - a0;
    }
    qsort(lat, requests, sizeof *lat, bench_dbl_cmp);
    printf("serve_recs_k10_mean %.2f us (median of %d runs)\n", 1e6 * bench_median(mean, RUNS), RUNS);
    printf("serve_recs_k10_p50 %.2f us (last run)\n", 1e6 * bench_quantile_sorted(lat, requests, 0.50));
    printf("serve_recs_k10_p99 %.2f us (last run)\n", 1e6 * bench_quantile_sorted(lat, requests, 0.99));
    printf("serve_recs_allocs_per_request %.3f allocs (warm-up run)\n", (double)allocs / (double)requests);
    printf("serve_output_hash %016llx hash\n", (unsigned long long)hash);

    /* ---- the statistics' cost: a second state with them on, runs alternated with this one */
    dr_stats *st = NULL;
    dr_srv *s2 = NULL;
    dr_routes *r2 = NULL;
    dr_routes_worker *w2 = NULL;
    char dir2[] = "/tmp/dynrec-bench-serve-XXXXXX";
    if (!mkdtemp(dir2)) return 1;
    dr_stats_params tp = dr__stats_default_params(); /* its thread folds once a second */
    if (argc > 4) tp.quality_rate = strtod(argv[4], NULL);
    dr_srv_params p2 = p;
    p2.data_dir = dir2;
    if (dr__stats_create(&tp, &st, &err) != DR_OK) return 1;
    p2.stats = st;
    if (dr__srv_open(m, &p2, &s2, &err) != DR_OK || dr__routes_create(s2, &rp, &r2, &err) != DR_OK ||
        dr__routes_worker_create(r2, &w2, &err) != DR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    dr__routes_set_stats(r2, st);
    /* per side and run: wall and process CPU time (the apply thread's work is on another
     * thread; CPU time is what a loaded machine disturbs least) */
    double rec_w[2][ALT_RUNS], rec_c[2][ALT_RUNS], ev_w[2][ALT_RUNS], ev_c[2][ALT_RUNS];
    double rec_rw[ALT_RUNS], rec_rc[ALT_RUNS], ev_rw[ALT_RUNS], ev_rc[ALT_RUNS];
    size_t alt_req = ALT_REQ;
    char *body = malloc((size_t)EV_POSTS * EV_BATCH * 700);
    size_t blen[EV_POSTS];
    uint32_t ni = dr_model_n_items(m);
    dr_srv_worker *sw = NULL;
    if (!body || dr__srv_worker_create(s, &sw, &err) != DR_OK) return 1;
    for (int run = 0; run < ALT_RUNS; run++) {
        /* the run's events, the same on both sides: one in 10 takes an item of the user's
         * current top 10 (a hit: two whole scans when sampled), the others a random item */
        for (int b = 0; b < EV_POSTS; b++) {
            char *o = body + (size_t)b * EV_BATCH * 700;
            size_t len = (size_t)snprintf(o, 16, "[");
            for (int k = 0; k < EV_BATCH; k++) {
                uint64_t x = ((uint64_t)run * EV_POSTS + (uint64_t)b) * EV_BATCH + (uint64_t)k;
                uint32_t u = (uint32_t)((x * 7919) % nu), it = (uint32_t)((x * 104729) % ni);
                dr_srv_recs rec;
                if (k % 10 == 0 && dr__srv_recommend(s, sw, dr_model_user_id(m, u), 10, &rec, &err) == DR_OK && rec.n)
                    it = rec.items[x % rec.n];
                len += (size_t)snprintf(o + len, 680, "%s{\"user\":\"%s\",\"item\":\"%s\",\"time\":%llu}",
                                        k ? "," : "", dr_model_user_id(m, u), dr__srv_item_name(s, it),
                                        (unsigned long long)(1700000000 + (uint64_t)run * EV_POSTS + (uint64_t)b));
            }
            len += (size_t)snprintf(o + len, 16, "]");
            blen[b] = len;
        }
        for (int side = 0; side < 2; side++) { /* run parity decides who goes first */
            int on = (run + side) % 2;
            dr_routes *rr = on ? r2 : r;
            dr_routes_worker *ww = on ? w2 : w;
            /* the request path: one state, its routes counting into the statistics or not */
            dr__routes_set_stats(r2, on ? st : NULL);
            double t0 = bench_now(), c0 = bench_cpu();
            for (size_t q = 0; q < alt_req; q++) {
                dr_route_req rq = {"GET", paths[((size_t)run * alt_req + q) * 7919 % nu], k10, NULL, NULL, NULL, 0, NULL};
                dr_route_resp resp;
                dr__routes_handle(r2, w2, &rq, &resp);
                if (resp.status != 200) return 1;
            }
            dr__routes_set_stats(r2, st);
            rec_w[on][run] = (bench_now() - t0) / (double)alt_req;
            rec_c[on][run] = (bench_cpu() - c0) / (double)alt_req;
            t0 = bench_now();
            c0 = bench_cpu();
            for (int b = 0; b < EV_POSTS; b++) {
                dr_route_req rq = {"POST", "/v1/events", k10, NULL, NULL, body + (size_t)b * EV_BATCH * 700, blen[b], NULL};
                dr_route_resp resp;
                dr__routes_handle(rr, ww, &rq, &resp);
                if (resp.status != 200) {
                    fprintf(stderr, "events: %d %.*s\n", resp.status, (int)resp.len, resp.body);
                    return 1;
                }
            }
            ev_w[on][run] = (bench_now() - t0) / (double)(EV_POSTS * EV_BATCH);
            ev_c[on][run] = (bench_cpu() - c0) / (double)(EV_POSTS * EV_BATCH);
        }
        rec_rw[run] = rec_w[1][run] / rec_w[0][run];
        rec_rc[run] = rec_c[1][run] / rec_c[0][run];
        ev_rw[run] = ev_w[1][run] / ev_w[0][run];
        ev_rc[run] = ev_c[1][run] / ev_c[0][run];
    }
    dr__srv_worker_free(sw);
    dr_stats_overview ov;
    dr__stats_overview(st, &ov);
    printf("# statistics on (quality rate %.3g) vs off: %d alternated runs, %zu recommendation requests and %d events a side per run\n",
           tp.quality_rate, ALT_RUNS, alt_req, EV_POSTS * EV_BATCH);
    printf("serve_stats_recs_cpu_on %.2f us (median)\n", 1e6 * bench_median(rec_c[1], ALT_RUNS));
    printf("serve_stats_recs_cpu_off %.2f us (median)\n", 1e6 * bench_median(rec_c[0], ALT_RUNS));
    printf("serve_stats_recs_cpu_ratio %.4f on/off (median of per-run ratios of process CPU time)\n", bench_median(rec_rc, ALT_RUNS));
    printf("serve_stats_recs_wall_ratio %.4f on/off (median of per-run ratios of wall time)\n", bench_median(rec_rw, ALT_RUNS));
    printf("serve_stats_events_cpu_on %.2f us/event (median)\n", 1e6 * bench_median(ev_c[1], ALT_RUNS));
    printf("serve_stats_events_cpu_off %.2f us/event (median)\n", 1e6 * bench_median(ev_c[0], ALT_RUNS));
    printf("serve_stats_events_cpu_ratio %.4f on/off (median of per-run ratios of process CPU time)\n", bench_median(ev_rc, ALT_RUNS));
    printf("serve_stats_events_wall_ratio %.4f on/off (median of per-run ratios of wall time)\n", bench_median(ev_rw, ALT_RUNS));
    printf("serve_stats_quality_sampled %llu events (hit10 base %.4f, base+adapter %.4f over the last %llu)\n",
           (unsigned long long)ov.q_total, ov.q_hit_base, ov.q_hit_adapter, (unsigned long long)ov.q_samples);
    free(body);
    dr__routes_worker_free(w2);
    dr__routes_free(r2);
    dr__srv_close(s2);
    dr__stats_free(st);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir2);
    if (system(cmd) != 0) return 1;
    dr__routes_worker_free(w);
    dr__routes_free(r);
    dr__srv_close(s);
    dr_model_free(m);
    free(paths);
    free(lat);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) != 0;
}
