/*
 * bench_sasrec.c - SASRec training speed (seconds per epoch, peak RSS) on the shared data, and
 * a training driver that reports P-LOO accuracy.
 *
 *   bench_sasrec                      speed: median of 3 epochs, reference settings (BCE, d=50,
 *                                     2 blocks, 1 head, batch 128; L=200 ml-small, L=50
 *                                     amazon-mtv), 1 and 2 threads
 *   bench_sasrec losses DATASET [ROUNDS [THREADS [NEGATIVES]]]
 *                                     seconds per epoch of each loss (ce, sampled, bce) at the
 *                                     reference settings: ROUNDS (3) rounds, each one 1-epoch fit
 *                                     per loss in turn (alternated, so load drifts hit all
 *                                     three alike); median per loss and the ratios
 *   bench_sasrec train DATASET [key=value ...]
 *                                     train to early stopping and evaluate (P-LOO full ranking
 *                                     and sampled-100 via dr_eval_split). DATASET: ml-small |
 *                                     amazon-mtv | a path. keys: loss=ce|bce|sampled negatives
 *                                     neg_alpha d L blocks heads dropout lr wd batch epochs
 *                                     patience eval_every seed threads shards
 * Data: $DR_SHARED/data or ../shared/data; a missing dataset is skipped with a message.
 */
#include "bench.h"

#include "model_sasrec.h"

static const char *data_path(const char *name, char *buf, size_t cap) {
    const char *env = getenv("DR_SHARED");
    const char *sub = !strcmp(name, "ml-small")     ? "movielens-latest-small"
                      : !strcmp(name, "amazon-mtv") ? "amazon-movies-tv-llmtup"
                                                    : NULL;
    if (!sub) return name;
    snprintf(buf, cap, "%s/data/%s", env && *env ? env : "../shared", sub);
    return buf;
}

typedef struct epoch_log {
    double secs[1024];
    int n;
    int verbose;
} epoch_log;

static void on_epoch(void *ud, int epoch, double loss, double val, double secs) {
    epoch_log *l = ud;
    if (l->n < 1024) l->secs[l->n++] = secs;
    if (l->verbose)
        fprintf(stderr, "epoch %3d loss %.5f val_NDCG@10 %.5f %.3f s\n", epoch, loss, val, secs);
}

static int load(const char *name, dr_dataset **ds, dr_split **sp) {
    char buf[4096];
    const char *path = data_path(name, buf, sizeof buf);
    dr_error err = {0};
    if (access(path, R_OK) != 0) {
        printf("# SKIP %s: %s not present\n", name, path);
        return -1;
    }
    dr_load_params lp = dr_load_default_params();
    if (dr_dataset_load(path, &lp, ds, &err) != DR_OK) {
        printf("# SKIP %s: %s\n", name, err.msg);
        return -1;
    }
    if (dr_split_create(*ds, DR_SPLIT_LOO, sp, &err) != DR_OK) {
        printf("# SKIP %s: %s\n", name, err.msg);
        dr_dataset_free(*ds);
        return -1;
    }
    return 0;
}

/* Fits p with its epochs logged into lg; NULL (and a message) on failure. */
static dr_sasrec *fit_logged(const dr_dataset *ds, const dr_split *sp, dr_sasrec_params *p,
                             epoch_log *lg) {
    p->on_epoch = on_epoch;
    p->on_epoch_ud = lg;
    dr_sasrec *m = NULL;
    dr_error err = {0};
    if (dr__sasrec_fit(ds, sp, p, &m, &err) != DR_OK) {
        fprintf(stderr, "fit: %s\n", err.msg);
        return NULL;
    }
    return m;
}

static int speed(void) {
    bench_header("sasrec");
    const char *names[2] = {"ml-small", "amazon-mtv"};
    const uint32_t Ls[2] = {200, 50};
    const float drop[2] = {0.2f, 0.5f};
    uint64_t hash = 0;
    for (int k = 0; k < 2; k++) {
        dr_dataset *ds = NULL;
        dr_split *sp = NULL;
        if (load(names[k], &ds, &sp)) continue;
        for (int loss = 1; loss >= 0; loss--) {
            for (int th = 1; th <= 2; th++) {
                dr_sasrec_params p = dr__sasrec_default_params();
                p.loss = (dr_sasrec_loss)loss;
                p.L = Ls[k];
                p.dropout = drop[k];
                p.epochs = 3;
                p.eval_every = 0;
                p.threads = th;
                epoch_log lg = {.n = 0};
                dr_sasrec *m = fit_logged(ds, sp, &p, &lg);
                if (!m) return 1;
                size_t n;
                const float *blk = dr__sasrec_param_block(m, &n);
                hash = bench_hash(hash, blk, n * sizeof *blk);
                printf("sasrec_epoch_%s_%s_L%u_%dt %.3f s\n", names[k], loss ? "bce" : "ce",
                       p.L, th, bench_median(lg.secs, (size_t)lg.n));
                dr__sasrec_free(m);
            }
        }
        dr_split_free(sp);
        dr_dataset_free(ds);
    }
    printf("peak_rss %.1f MiB\n", bench_peak_rss_mib());
    printf("output_hash %016llx hash\n", (unsigned long long)hash);
    return 0;
}

/* One loss at the reference settings of dataset k (0 ml-small, 1 amazon-mtv). */
static dr_sasrec_params ref_params(int k, dr_sasrec_loss loss, int threads) {
    dr_sasrec_params p = dr__sasrec_default_params();
    p.loss = loss;
    p.L = k ? 50 : 200;
    p.dropout = k ? 0.5f : 0.2f;
    p.eval_every = 0;
    p.threads = threads;
    return p;
}

static int losses(int argc, char **argv) {
    const char *name = argv[0];
    const int k = !strcmp(name, "amazon-mtv");
    const int rounds = argc > 1 ? atoi(argv[1]) : 3, threads = argc > 2 ? atoi(argv[2]) : 2;
    const uint32_t negs = argc > 3 ? (uint32_t)atoi(argv[3]) : 0;
    if (rounds < 1 || rounds > 100 || threads < 1) {
        fprintf(stderr, "bad ROUNDS or THREADS\n");
        return 2;
    }
    dr_dataset *ds = NULL;
    dr_split *sp = NULL;
    if (load(name, &ds, &sp)) return 0;
    bench_header("sasrec_losses");
    static const dr_sasrec_loss order[3] = {DR_SASREC_CE, DR_SASREC_SAMPLED, DR_SASREC_BCE};
    double secs[3][100];
    uint32_t negatives = 0;
    for (int r = 0; r < rounds; r++)
        for (int j = 0; j < 3; j++) {
            dr_sasrec_params p = ref_params(k, order[j], threads);
            if (negs) p.negatives = negs;
            negatives = p.negatives;
            p.epochs = 1;
            p.seed = 42 + (uint64_t)r;
            epoch_log lg = {.n = 0};
            dr_sasrec *m = fit_logged(ds, sp, &p, &lg);
            if (!m) return 1;
            secs[j][r] = lg.secs[0];
            fprintf(stderr, "round %d %s %.3f s\n", r + 1, dr__sasrec_loss_name((int)order[j]),
                    lg.secs[0]);
            dr__sasrec_free(m);
        }
    double med[3];
    for (int j = 0; j < 3; j++) {
        med[j] = bench_median(secs[j], (size_t)rounds);
        printf("sasrec_epoch_%s_%s_L%u_%dt %.3f s (median of %d, alternated)\n", name,
               dr__sasrec_loss_name((int)order[j]), k ? 50 : 200, threads, med[j], rounds);
    }
    printf("ratio ce/sampled(%u negatives) %.2fx, sampled/bce %.2fx, ce/bce %.2fx\n", negatives,
           med[0] / med[1], med[1] / med[2], med[0] / med[2]);
    dr_split_free(sp);
    dr_dataset_free(ds);
    return 0;
}

static int train(int argc, char **argv) {
    dr_dataset *ds = NULL;
    dr_split *sp = NULL;
    const char *name = argv[0];
    if (load(name, &ds, &sp)) return 0;
    dr_sasrec_params p = dr__sasrec_default_params();
    if (!strcmp(name, "amazon-mtv")) {
        p.L = 50;
        p.dropout = 0.5f;
    }
    dr_error err = {0};
    for (int i = 1; i < argc; i++) {
        char key[64];
        const char *eq = strchr(argv[i], '=');
        if (!eq || (size_t)(eq - argv[i]) >= sizeof key) {
            fprintf(stderr, "bad argument %s (key=value)\n", argv[i]);
            return 2;
        }
        snprintf(key, sizeof key, "%.*s", (int)(eq - argv[i]), argv[i]);
        const char *v = eq + 1;
        if (!strcmp(key, "loss")) {
            if (dr__sasrec_loss_parse(v, &p.loss, &err) != DR_OK) {
                fprintf(stderr, "%s\n", err.msg);
                return 2;
            }
        } else if (!strcmp(key, "negatives")) p.negatives = (uint32_t)atoi(v);
        else if (!strcmp(key, "neg_alpha")) p.neg_alpha = (float)atof(v);
        else if (!strcmp(key, "d")) p.d = (uint32_t)atoi(v);
        else if (!strcmp(key, "L")) p.L = (uint32_t)atoi(v);
        else if (!strcmp(key, "blocks")) p.blocks = (uint32_t)atoi(v);
        else if (!strcmp(key, "heads")) p.heads = (uint32_t)atoi(v);
        else if (!strcmp(key, "dropout")) p.dropout = (float)atof(v);
        else if (!strcmp(key, "lr")) p.lr = (float)atof(v);
        else if (!strcmp(key, "wd")) p.weight_decay = (float)atof(v);
        else if (!strcmp(key, "batch")) p.batch = (uint32_t)atoi(v);
        else if (!strcmp(key, "epochs")) p.epochs = (uint32_t)atoi(v);
        else if (!strcmp(key, "patience")) p.patience = (uint32_t)atoi(v);
        else if (!strcmp(key, "eval_every")) p.eval_every = (uint32_t)atoi(v);
        else if (!strcmp(key, "seed")) p.seed = (uint64_t)atoll(v);
        else if (!strcmp(key, "threads")) p.threads = atoi(v);
        else if (!strcmp(key, "shards")) p.shards = (uint32_t)atoi(v);
        else {
            fprintf(stderr, "unknown key %s\n", key);
            return 2;
        }
    }
    epoch_log lg = {.n = 0, .verbose = 1};
    p.on_epoch = on_epoch;
    p.on_epoch_ud = &lg;
    dr_sasrec *s = NULL;
    dr_model *m = NULL;
    double t0 = bench_now();
    if (dr__sasrec_fit(ds, sp, &p, &s, &err) != DR_OK || dr__sasrec_as_model(s, &m, &err) != DR_OK) {
        fprintf(stderr, "fit: %s\n", err.msg);
        return 1;
    }
    double t_fit = bench_now() - t0;
    int best_ep = 0;
    double best = dr__sasrec_best_val(s, &best_ep);
    dr_eval_params ep = dr_eval_default_params();
    ep.threads = p.threads;
    dr_eval_result r;
    if (dr_eval_split(ds, sp, m, &ep, &r, &err) != DR_OK) {
        fprintf(stderr, "eval: %s\n", err.msg);
        return 1;
    }
    double med = bench_median(lg.secs, (size_t)lg.n);
    printf("# sasrec %s loss=%s negatives=%u neg_alpha=%g d=%u L=%u blocks=%u heads=%u dropout=%g lr=%g wd=%g batch=%u "
           "seed=%llu threads=%d shards=%u\n",
           name, dr__sasrec_loss_name((int)p.loss), p.negatives, (double)p.neg_alpha, p.d, p.L, p.blocks, p.heads,
           (double)p.dropout, (double)p.lr, (double)p.weight_decay, p.batch,
           (unsigned long long)p.seed, p.threads, p.shards);
    printf("epochs %d (best %d, val NDCG@10 %.4f) fit %.1f s, median epoch %.3f s\n", lg.n,
           best_ep, best, t_fit, med);
    printf("P-LOO full-ranking %s Hit@10 %.4f NDCG@10 %.4f Hit@20 %.4f NDCG@20 %.4f (%u users)\n",
           name, r.full10.hit, r.full10.ndcg, r.full20.hit, r.full20.ndcg, r.n_users);
    printf("P-LOO sampled-100 %s Hit@10 %.4f NDCG@10 %.4f\n", name, r.samp10.hit,
           r.samp10.ndcg);
    dr_model_free(m);
    dr_split_free(sp);
    dr_dataset_free(ds);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "train")) return train(argc - 2, argv + 2);
    if (argc >= 3 && !strcmp(argv[1], "losses")) return losses(argc - 2, argv + 2);
    if (argc > 1) {
        fprintf(stderr, "usage: bench_sasrec [train DATASET [key=value ...] | losses DATASET "
                        "[ROUNDS [THREADS [NEGATIVES]]]]\n");
        return 2;
    }
    return speed();
}
