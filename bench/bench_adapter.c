/*
 * bench_adapter.c - the online adapter (src/adapter.c, src/eval_stream.c).
 *
 * Default mode (what bench/run.sh runs): base BPR-MF (d = 50) trained on amazon-mtv's pre-T0
 * events (../shared/data/amazon-movies-tv-llmtup; a synthetic dataset when absent), then
 *   update throughput: the post-T0 events fed to dr__adapter_update on one thread (the base
 *     user latents are computed before the timed loop: they are the base's cost), events/s;
 *   event-to-visible latency: update + publish, until a reader's acquire sees the version;
 *   recommend latency, frozen (dr_recommend) vs adapter (base user latent + h' + top-10 over
 *     z' from a snapshot), the same requests alternating in one process, one thread, p50/p99.
 * Mode `stream DATA MODEL SEED [key=value ...]`: one P-STREAM replay (frozen vs adapter),
 *   printed as JSON plus `name value unit` lines; keys: hidden negatives neg_pop lr lr_g steps
 *   g_batch lambda_kl lambda_ewc anchor_ema window ring gate_bias cold_gate_bias no_gates
 *   dim epochs max_len (the last three: base model) retrain (1: the retrain column). Env BENCH_BASE_CACHE=FILE.drm keeps the
 *   fitted base between runs.
 * Mode `drift SEED`: synthetic data with a planted taste drift (dr_synth, drift_prob 0.6);
 *   the replay's scored events of drifted users bucketed by the user's events since her drift,
 *   Hit@10 frozen vs adapter per bucket, against the level of users who never drift.
 */
#include <cblas.h>

#include "bench.h"
#include "rng.h"
#include "eval_stream.h"
#include "dataset_synth.h"

static const char *AMAZON = "../shared/data/amazon-movies-tv-llmtup";

static int load(const char *path, dr_dataset **ds) {
    dr_error err = {0};
    dr_load_params lp = dr_load_default_params();
    if (dr_dataset_load(path, &lp, ds, &err) != DR_OK) {
        fprintf(stderr, "load %s: %s\n", path, err.msg);
        return 1;
    }
    return 0;
}

static uint32_t g_max_len; /* sasrec L (stream mode key max_len), 0 = default */
static int g_retrain;      /* stream mode key retrain=1: the retrain column */

static int fit(const dr_dataset *ds, const char *model, uint64_t seed, uint32_t dim,
               uint32_t epochs, dr_model **m) {
    dr_error err = {0};
    dr_split *sp = NULL;
    if (dr_split_create(ds, DR_SPLIT_T0, &sp, &err) != DR_OK) {
        fprintf(stderr, "split: %s\n", err.msg);
        return 1;
    }
    dr_model_params mp = dr_model_default_params();
    mp.name = model;
    mp.seed = seed;
    mp.dim = dim;
    mp.epochs = epochs;
    mp.max_len = g_max_len;
    dr_status st = dr_model_fit(ds, sp, &mp, m, &err);
    dr_split_free(sp);
    if (st != DR_OK) {
        fprintf(stderr, "fit %s: %s\n", model, err.msg);
        return 1;
    }
    return 0;
}

static int set_param(dr_adapter_params *p, uint32_t *dim, uint32_t *epochs, const char *kv) {
    const char *eq = strchr(kv, '=');
    if (!eq) return 1;
    size_t kl = (size_t)(eq - kv);
    double v = atof(eq + 1);
#define K(name) (kl == strlen(name) && strncmp(kv, name, kl) == 0)
    if (K("hidden")) p->hidden = (uint32_t)v;
    else if (K("negatives")) p->negatives = (uint32_t)v;
    else if (K("neg_pop")) p->neg_pop = (float)v;
    else if (K("lr")) p->lr = (float)v;
    else if (K("lr_g")) p->lr_g = (float)v;
    else if (K("steps")) p->steps = (uint32_t)v;
    else if (K("g_batch")) p->g_batch = (uint32_t)v;
    else if (K("lambda_kl")) p->lambda_kl = (float)v;
    else if (K("lambda_ewc")) p->lambda_ewc = (float)v;
    else if (K("anchor_ema")) p->anchor_ema = (float)v;
    else if (K("window")) p->window.capacity = (uint32_t)v;
    else if (K("ring")) p->window.user_ring = (uint32_t)v;
    else if (K("gate_bias")) p->gate_bias = (float)v;
    else if (K("cold_gate_bias")) p->cold_gate_bias = (float)v;
    else if (K("no_gates")) p->no_gates = (int)v;
    else if (K("skip_init")) p->skip_init = (float)v;
    else if (K("dim")) *dim = (uint32_t)v;
    else if (K("epochs")) *epochs = (uint32_t)v;
    else if (K("max_len")) g_max_len = (uint32_t)v;
    else if (K("retrain")) g_retrain = (int)v;
    else return 1;
#undef K
    return 0;
}

static int stream_mode(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: bench_adapter stream DATA MODEL SEED [key=value ...]\n");
        return 2;
    }
    dr_dataset *ds = NULL;
    dr_model *m = NULL;
    dr_stream_params sp = dr__stream_default_params();
    uint64_t seed = strtoull(argv[4], NULL, 10);
    uint32_t dim = 0, epochs = 0;
    dr_error err = {0};
    sp.adapter.seed = seed;
    for (int k = 5; k < argc; k++)
        if (set_param(&sp.adapter, &dim, &epochs, argv[k])) {
            fprintf(stderr, "unknown parameter %s\n", argv[k]);
            return 2;
        }
    if (load(argv[2], &ds)) return 1;
    double t = bench_now();
    const char *cache = getenv("BENCH_BASE_CACHE"); /* a .drm to reuse between runs */
    if (cache && access(cache, R_OK) == 0) {
        if (dr_model_load(cache, &m, &err) != DR_OK) {
            fprintf(stderr, "%s: %s\n", cache, err.msg);
            return 1;
        }
    } else {
        if (fit(ds, argv[3], seed, dim, epochs, &m)) return 1;
        if (cache) {
            dr_split *spl = NULL;
            dr_split_create(ds, DR_SPLIT_T0, &spl, &err);
            if (dr_model_save(m, ds, spl, cache, &err) != DR_OK) fprintf(stderr, "%s\n", err.msg);
            dr_split_free(spl);
        }
    }
    double fit_s = bench_now() - t;
    dr_model_params rp = dr_model_default_params();
    rp.name = argv[3];
    rp.seed = seed;
    rp.dim = dim;
    rp.epochs = epochs;
    rp.max_len = g_max_len;
    if (g_retrain) sp.retrain = &rp;
    dr_stream_result r;
    if (dr__stream_eval(ds, m, &sp, &r, &err) != DR_OK) {
        fprintf(stderr, "stream: %s\n", err.msg);
        return 1;
    }
    char json[8192];
    dr__stream_json(&r, json, sizeof json);
    printf("%s\n", json);
    printf("stream_fit_seconds %.2f s\n", fit_s);
    printf("stream_frozen_hit10 %.4f P-STREAM\nstream_adapter_hit10 %.4f P-STREAM\n",
           r.overall.frozen.hit10, r.overall.adapter.hit10);
    printf("stream_frozen_ndcg10 %.4f P-STREAM\nstream_adapter_ndcg10 %.4f P-STREAM\n",
           r.overall.frozen.ndcg10, r.overall.adapter.ndcg10);
    printf("stream_cold_frozen_hit10 %.4f P-STREAM\nstream_cold_adapter_hit10 %.4f P-STREAM\n",
           r.cold.frozen.hit10, r.cold.adapter.hit10);
    printf("stream_scored %zu events\nstream_cold_scored %zu events\n", r.n_scored,
           r.cold.frozen.n);
    printf("stream_slices_hit10");
    for (int s = 0; s < DR_STREAM_SLICES; s++)
        printf(" %.4f/%.4f", r.slices[s].frozen.hit10, r.slices[s].adapter.hit10);
    printf(" frozen/adapter\n");
    if (r.has_retrain) {
        printf("stream_retrain_hit10 %.4f P-STREAM\nstream_retrain_ndcg10 %.4f P-STREAM\n",
               r.overall.retrain.hit10, r.overall.retrain.ndcg10);
        printf("stream_cold_retrain_hit10 %.4f P-STREAM\n", r.cold.retrain.hit10);
        printf("stream_retrain_slices_hit10");
        for (int s = 0; s < DR_STREAM_SLICES; s++) printf(" %.4f", r.slices[s].retrain.hit10);
        printf("\nstream_retrain_seconds %.1f s (%u refits)\n", r.retrain_seconds, r.n_retrains);
    }
    printf("stream_update_rate %.0f events/s\n",
           r.update_seconds > 0 ? (double)r.n_events / r.update_seconds : 0.0);
    printf("stream_seconds %.2f s\n", r.seconds);
    dr_model_free(m);
    dr_dataset_free(ds);
    return 0;
}

#define NB 7
typedef struct drift_acc {
    const dr_dataset *ds;
    const dr_synth_truth *tr;
    double hit[NB + 1][2];
    size_t n[NB + 1];
} drift_acc;

static int drift_bucket(size_t k) { /* 0, 1, 2-3, 4-7, 8-15, 16-31, 32+ events since drift */
    int b = 0;
    while (b < NB - 1 && k >= ((size_t)1 << b)) b++;
    return b;
}

static void drift_event(void *ud, size_t e, uint32_t rf, uint32_t ra, int cold) {
    (void)cold;
    drift_acc *a = ud;
    const dr_dataset *ds = a->ds;
    uint32_t u = ds->ev_user[e];
    int64_t dt = a->tr->user_drift[u], t = ds->ev_time[e];
    int b = NB; /* never drifts */
    if (dt >= 0) {
        if (t < dt) return; /* before the drift */
        size_t k = 0;
        for (size_t j = ds->user_off[u]; j < ds->user_off[u + 1]; j++)
            k += ds->hist_time[j] >= dt && ds->hist_time[j] < t;
        b = drift_bucket(k);
    }
    a->hit[b][0] += rf <= 10;
    a->hit[b][1] += ra <= 10;
    a->n[b]++;
}

static int drift_mode(int argc, char **argv) {
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
    dr_synth_params sp = dr_synth_default_params();
    sp.seed = seed;
    sp.drift_prob = 0.6;
    dr_dataset *ds = NULL;
    dr_model *m = NULL;
    dr_error err = {0};
    dr_synth_truth tr;
    memset(&tr, 0, sizeof tr);
    if (dr_synth_generate(&sp, &ds, &err) != DR_OK || dr__synth_truth_compute(&sp, ds, &tr, &err) != DR_OK) {
        fprintf(stderr, "synth: %s\n", err.msg);
        return 1;
    }
    if (fit(ds, "mf", seed, 0, 0, &m)) return 1;
    drift_acc acc;
    memset(&acc, 0, sizeof acc);
    acc.ds = ds;
    acc.tr = &tr;
    dr_stream_params p = dr__stream_default_params();
    p.adapter.seed = seed;
    p.on_event = drift_event;
    p.on_event_ud = &acc;
    dr_stream_result r;
    if (dr__stream_eval(ds, m, &p, &r, &err) != DR_OK) {
        fprintf(stderr, "stream: %s\n", err.msg);
        return 1;
    }
    printf("drift_overall_hit10 %.4f/%.4f frozen/adapter\n", r.overall.frozen.hit10,
           r.overall.adapter.hit10);
    const char *names[NB + 1] = {"0", "1", "2-3", "4-7", "8-15", "16-31", "32+", "never"};
    for (int b = 0; b <= NB; b++)
        printf("drift_hit10_since_%s %.4f/%.4f frozen/adapter (%zu events)\n", names[b],
               acc.n[b] ? acc.hit[b][0] / (double)acc.n[b] : 0.0,
               acc.n[b] ? acc.hit[b][1] / (double)acc.n[b] : 0.0, acc.n[b]);
    dr__synth_truth_free(&tr);
    dr_model_free(m);
    dr_dataset_free(ds);
    return 0;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    openblas_set_num_threads(1); /* one thread: OpenBLAS's pool spins on small products */
    if (argc > 1 && strcmp(argv[1], "stream") == 0) return stream_mode(argc, argv);
    if (argc > 1 && strcmp(argv[1], "drift") == 0) return drift_mode(argc, argv);
    bench_header("adapter");
    dr_dataset *ds = NULL;
    dr_model *m = NULL;
    dr_error err = {0};
    if (access(AMAZON, R_OK) == 0) {
        if (load(AMAZON, &ds)) return 1;
    } else {
        dr_synth_params sp = dr_synth_default_params();
        if (dr_synth_generate(&sp, &ds, &err) != DR_OK) return 1;
    }
    if (fit(ds, "mf", 42, 50, 0, &m)) return 1;
    printf("# dataset %s, %u users, %u items; base mf d=50 (latent %u)\n", dr_dataset_name(ds),
           dr_dataset_n_users(ds), dr_dataset_n_items(ds), dr_model_latent_dim(m));
    uint32_t d = dr_model_latent_dim(m), ni = dr_dataset_n_items(ds), nu = dr_dataset_n_users(ds);
    dr_dataset_stats st;
    dr_dataset_get_stats(ds, &st);
    size_t e0 = 0, n = ds->n_events;
    while (e0 < n && ds->ev_time[e0] < st.t0) e0++;
    size_t nrep = n - e0;
    /* base user latents before each event, outside the timed loop */
    float *H = malloc(nrep * d * sizeof *H);
    uint32_t *hlen = calloc(nu, sizeof *hlen);
    dr_scorer *sc = NULL;
    dr_scorer_create(m, &sc, &err);
    for (uint32_t u = 0; u < nu; u++) {
        size_t a = ds->user_off[u], b = ds->user_off[u + 1], k = a;
        while (k < b && ds->hist_time[k] < st.t0) k++;
        hlen[u] = (uint32_t)(k - a);
    }
    for (size_t e = e0; e < n; e++) {
        uint32_t u = ds->ev_user[e];
        dr_model_user_latent(m, sc, u, ds->hist_item + ds->user_off[u], hlen[u], H + (e - e0) * d,
                             &err);
        hlen[u]++;
    }
    uint8_t *cold = calloc(ni, 1);
    for (uint32_t i = 0; i < ni; i++) cold[i] = 1;
    for (size_t e = 0; e < e0; e++) cold[ds->ev_item[e]] = 0;
    uint64_t hash = 0;
    const uint32_t batches[] = {16, 64, 256, 512};
    dr_adapter *keep = NULL;
    for (size_t bi = 0; bi < 4; bi++) {
        for (int publish = 0; publish < 2; publish++) {
            dr_adapter_params ap = dr__adapter_default_params();
            ap.g_batch = batches[bi];
            ap.publish_every = (uint32_t)publish;
            ap.window.seconds_per_unit = ds->time_scale;
            dr_adapter *a = NULL;
            if (dr__adapter_create(&ap, nu, ni, d, dr_model_item_latents(m), cold, &a, &err) != DR_OK) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            uint64_t allocs = dr__alloc_count();
            double t = bench_now();
            for (size_t e = e0; e < n; e++)
                dr__adapter_update(a, ds->ev_user[e], ds->ev_item[e], ds->ev_time[e],
                                  H + (e - e0) * d, &err);
            t = bench_now() - t;
            allocs = dr__alloc_count() - allocs;
            printf("adapter_update_rate_b%u%s %.0f events/s\n", batches[bi],
                   publish ? "_publish" : "", (double)nrep / t);
            if (allocs) printf("adapter_update_allocs_b%u %llu allocations\n", batches[bi],
                               (unsigned long long)allocs);
            hash = bench_hash(hash, dr__adapter_items(a), (size_t)ni * d * sizeof(float));
            uint64_t nup, nrows, nref;
            dr__adapter_counters(a, &nup, &nrows, &nref);
            if (!publish)
                printf("adapter_rows_per_update_b%u %.2f rows\n", batches[bi],
                       (double)nrows / (double)nup);
            if (bi == 2 && publish) keep = a; /* the default g_batch */
            else dr__adapter_free(a);
        }
    }
    printf("adapter_params %zu floats\n", dr__adapter_n_params(keep));
    /* event-to-visible: one update + publication until acquire returns its version */
    {
        enum { NV = 2000 };
        double lat[NV];
        for (int k = 0; k < NV; k++) {
            size_t e = e0 + (size_t)k % nrep;
            uint64_t want = dr__adapter_version(keep) + 1;
            double t = bench_now();
            dr__adapter_update(keep, ds->ev_user[e], ds->ev_item[e], ds->ev_time[n - 1],
                              H + (e - e0) * d, &err);
            const dr_adapter_snapshot *s = dr__adapter_acquire(keep);
            while (!s || dr__snapshot_version(s) < want) {
                dr__adapter_release(keep, s);
                dr__adapter_publish(keep);
                s = dr__adapter_acquire(keep);
            }
            dr__adapter_release(keep, s);
            lat[k] = bench_now() - t;
        }
        qsort(lat, NV, sizeof *lat, bench_dbl_cmp);
        printf("adapter_event_to_visible_p50 %.1f us\nadapter_event_to_visible_p99 %.1f us\n",
               1e6 * bench_quantile_sorted(lat, NV, 0.5), 1e6 * bench_quantile_sorted(lat, NV, 0.99));
    }
    /* recommend latency, frozen vs adapter, alternating */
    {
        enum { NQ = 20000, K = 10 };
        double *lf = malloc(NQ * sizeof *lf), *la = malloc(NQ * sizeof *la);
        dr_topk_scratch *ts = NULL;
        dr__topk_scratch_create(ni, K, &ts, &err);
        dr_rec out[K];
        uint32_t items[K], nout;
        float scv[K], h[1024];
        uint64_t *users = malloc(NQ * sizeof *users);
        dr_rng r;
        dr__rng_seed(&r, 5, 0);
        for (int q = 0; q < NQ; q++) users[q] = dr__rng_below(&r, nu);
        qsort(users, 0, sizeof *users, cmp_u64);
        for (int w = 0; w < 2; w++) /* warm-up of both paths */
            for (int q = 0; q < 200; q++) {
                uint32_t u = (uint32_t)users[q];
                const uint32_t *ctx = ds->hist_item + ds->user_off[u];
                size_t nc = ds->user_off[u + 1] - ds->user_off[u];
                dr_recommend(m, sc, u, ctx, nc, K, out, &nout, &err);
                dr_model_user_latent(m, sc, u, ctx, nc, h, &err);
                const dr_adapter_snapshot *s = dr__adapter_acquire(keep);
                dr__snapshot_recommend(s, ts, u, ds->ev_time[n - 1], h, ctx, nc, K, items, scv, &nout, &err);
                dr__adapter_release(keep, s);
            }
        uint64_t allocs = dr__alloc_count();
        for (int q = 0; q < NQ; q++) {
            uint32_t u = (uint32_t)users[q];
            const uint32_t *ctx = ds->hist_item + ds->user_off[u];
            size_t nc = ds->user_off[u + 1] - ds->user_off[u];
            for (int side = 0; side < 2; side++) {
                int adapter = (q + side) % 2;
                double t = bench_now();
                if (!adapter) {
                    dr_recommend(m, sc, u, ctx, nc, K, out, &nout, &err);
                    lf[q] = bench_now() - t;
                    if (q < 1024) hash = bench_hash(hash, out, sizeof out);
                } else {
                    dr_model_user_latent(m, sc, u, ctx, nc, h, &err);
                    const dr_adapter_snapshot *s = dr__adapter_acquire(keep);
                    dr__snapshot_recommend(s, ts, u, ds->ev_time[n - 1], h, ctx, nc, K, items, scv,
                                          &nout, &err);
                    dr__adapter_release(keep, s);
                    la[q] = bench_now() - t;
                    if (q < 1024) hash = bench_hash(hash, items, sizeof items);
                }
            }
        }
        allocs = dr__alloc_count() - allocs;
        qsort(lf, NQ, sizeof *lf, bench_dbl_cmp);
        qsort(la, NQ, sizeof *la, bench_dbl_cmp);
        double f50 = bench_quantile_sorted(lf, NQ, 0.5), f99 = bench_quantile_sorted(lf, NQ, 0.99);
        double a50 = bench_quantile_sorted(la, NQ, 0.5), a99 = bench_quantile_sorted(la, NQ, 0.99);
        printf("recommend_frozen_p50 %.1f us\nrecommend_frozen_p99 %.1f us\n", 1e6 * f50, 1e6 * f99);
        printf("recommend_adapter_p50 %.1f us\nrecommend_adapter_p99 %.1f us\n", 1e6 * a50, 1e6 * a99);
        printf("recommend_overhead_p50 %.1f %%\nrecommend_overhead_p99 %.1f %%\n",
               100 * (a50 / f50 - 1), 100 * (a99 / f99 - 1));
        printf("recommend_allocs %llu allocations\n", (unsigned long long)allocs);
        free(lf);
        free(la);
        free(users);
        dr__topk_scratch_free(ts);
    }
    printf("output_hash %016llx\n", (unsigned long long)hash);
    dr__adapter_free(keep);
    dr_scorer_free(sc);
    free(H);
    free(hlen);
    free(cold);
    dr_model_free(m);
    dr_dataset_free(ds);
    return 0;
}
