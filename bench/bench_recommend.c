/*
 * bench_recommend - serving latency of dr_recommend (user latent + scores over the whole
 * catalogue + exact top-10, history excluded): p50/p99 over 10,000 requests on one thread,
 * and requests per second with 1 and 2 threads. Usage:
 *   bench_recommend [MODEL.drm [DATA]]      default: trains a 1-epoch model of each kind on
 *                                           ../shared/data/amazon-movies-tv-llmtup
 * Latency does not depend on how well the model is trained, only on its shape.
 */
#include <cblas.h>
#include <pthread.h>

#include "bench.h"
#include "dynrec.h"

#define N_REQ 10000

typedef struct job {
    const dr_model *m;
    const dr_dataset *ds;
    uint32_t n_users;
    int worker, n_workers, n_req;
    uint64_t hash;
} job;

static void *run_job(void *p) {
    job *j = p;
    dr_scorer *s = NULL;
    dr_error e = {0};
    dr_rec rec[10];
    uint32_t got;
    if (dr_scorer_create(j->m, &s, &e) != DR_OK) return NULL;
    for (int r = j->worker; r < j->n_req; r += j->n_workers) {
        uint32_t u = (uint32_t)(((uint64_t)r * 2654435761u) % j->n_users);
        const uint32_t *h;
        size_t nh = dr_dataset_user_items(j->ds, u, &h, NULL);
        dr_recommend(j->m, s, u, h, nh, 10, rec, &got, &e);
        j->hash = bench_hash(j->hash, rec, got * sizeof *rec);
    }
    dr_scorer_free(s);
    return NULL;
}

static double throughput(const dr_model *m, const dr_dataset *ds, int threads) {
    job jobs[8];
    pthread_t t[8];
    double a = bench_now();
    for (int w = 0; w < threads; w++) {
        jobs[w] = (job){m, ds, dr_dataset_n_users(ds), w, threads, N_REQ, 0};
        pthread_create(&t[w], NULL, run_job, &jobs[w]);
    }
    for (int w = 0; w < threads; w++) pthread_join(t[w], NULL);
    return N_REQ / (bench_now() - a);
}

static void bench_model(const char *label, const dr_model *m, const dr_dataset *ds) {
    dr_scorer *s = NULL;
    dr_error e = {0};
    if (dr_scorer_create(m, &s, &e) != DR_OK) {
        printf("# %s: %s\n", label, e.msg);
        return;
    }
    static double lat[N_REQ];
    dr_rec rec[10];
    uint32_t got, n_users = dr_dataset_n_users(ds);
    uint64_t hash = 0;
    for (int r = 0; r < 200; r++) { /* warm-up */
        const uint32_t *h;
        size_t nh = dr_dataset_user_items(ds, (uint32_t)r % n_users, &h, NULL);
        dr_recommend(m, s, (uint32_t)r % n_users, h, nh, 10, rec, &got, &e);
    }
    for (int r = 0; r < N_REQ; r++) {
        uint32_t u = (uint32_t)(((uint64_t)r * 2654435761u) % n_users);
        const uint32_t *h;
        size_t nh = dr_dataset_user_items(ds, u, &h, NULL);
        double a = bench_now();
        dr_recommend(m, s, u, h, nh, 10, rec, &got, &e);
        lat[r] = bench_now() - a;
        hash = bench_hash(hash, rec, got * sizeof *rec);
    }
    dr_scorer_free(s);
    qsort(lat, N_REQ, sizeof lat[0], bench_dbl_cmp);
    printf("recommend_p50_%s %.1f us (top-10 over %u items, 1 thread, %d requests)\n", label,
           1e6 * bench_quantile_sorted(lat, N_REQ, 0.50), dr_dataset_n_items(ds), N_REQ);
    printf("recommend_p99_%s %.1f us\n", label, 1e6 * bench_quantile_sorted(lat, N_REQ, 0.99));
    printf("recommend_rps_1thread_%s %.0f req/s\n", label, throughput(m, ds, 1));
    printf("recommend_rps_2threads_%s %.0f req/s\n", label, throughput(m, ds, 2));
    printf("recommend_hash_%s %016llx\n", label, (unsigned long long)hash);
}

int main(int argc, char **argv) {
    const char *data = argc > 2 ? argv[2] : "../shared/data/amazon-movies-tv-llmtup";
    openblas_set_num_threads(1);
    bench_header("recommend");
    dr_load_params lp = dr_load_default_params();
    dr_dataset *ds = NULL;
    dr_error e = {0};
    if (dr_dataset_load(data, &lp, &ds, &e) != DR_OK) {
        printf("# skipped: %s\n", e.msg);
        return 0;
    }
    if (argc > 1) {
        dr_model *m = NULL;
        if (dr_model_load(argv[1], &m, &e) != DR_OK || dr_model_check_dataset(m, ds, &e) != DR_OK) {
            printf("# %s\n", e.msg);
            return 1;
        }
        bench_model(dr_model_name(m), m, ds);
        dr_model_free(m);
    } else {
        dr_split *sp = NULL;
        if (dr_split_create(ds, DR_SPLIT_LOO, &sp, &e) != DR_OK) return 1;
        static const char *const names[] = {"pop", "itemknn", "mf", "sasrec"};
        for (int k = 0; k < 4; k++) {
            dr_model_params mp = dr_model_default_params();
            mp.name = names[k];
            mp.epochs = 1;
            mp.max_len = 50;
            mp.dim = 50;
            mp.eval_every = 1000;
            dr_model *m = NULL;
            if (dr_model_fit(ds, sp, &mp, &m, &e) != DR_OK) {
                printf("# %s: %s\n", names[k], e.msg);
                continue;
            }
            bench_model(names[k], m, ds);
            dr_model_free(m);
        }
        dr_split_free(sp);
    }
    printf("peak_rss %.1f MiB\n", bench_peak_rss_mib());
    dr_dataset_free(ds);
    return 0;
}
