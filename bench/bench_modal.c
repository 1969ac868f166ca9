/*
 * bench_modal.c - P-MODAL figures for gated fusion in BPR-MF (../shared/PROTOCOL.md).
 *
 *   bench_modal table  [data=DIR] [seeds=3] [k=v ...]  id-only / +visual / +audio / +both,
 *                                                      most-popular and item-kNN, mean of seeds
 *   bench_modal robust [data=DIR] [seeds=3] [k=v ...]  robustness: visual or audio removed for a
 *                                                      fraction p of items (seed 42) at inference,
 *                                                      gate vs mean imputation, relative change
 *   bench_modal synth  [seeds=3] [base=mf|sasrec] [k=v ...]  planted modalities, 10% of the
 *                                                      items made cold (no training event):
 *                                                      overall + cold, and each fused model
 *                                                      with visual or audio removed from every
 *                                                      item (its own imputation mode)
 *   bench_modal one    [data=DIR] mask=3 [k=v ...]     one configuration (tuning)
 *
 * Keys: data (../shared/data/tiktok-mmssl), seeds, d (64), epochs (300), eval_every (2),
 * patience (3), opt (adam | sgd), lr (0.001), l2 (0.01), drop (modality dropout, 0.3),
 * iddrop (id dropout, 0.5), flr (fusion Adam lr, 0.003), fl2 (fusion L2, 0.001), threads (0 = all), cold (0.1),
 * mask / impute (mode one).
 * Every metric line is `P-MODAL <dataset> <config> <metric> <value>`; the last line hashes them.
 * DESIGN: one process trains each configuration once per seed and re-fuses the trained model
 * with features removed (dr__mf_refuse), so the robustness table never retrains; the mean
 * imputation baseline is the same code trained and evaluated with impute=mean.
 */
#include <math.h>

#include "bench.h"
#include "dynrec.h"
#include "model_mf.h"
#include "rng.h"
#include "dataset_synth.h"

typedef struct cfg {
    const char *data;
    uint32_t seeds, d, epochs, eval_every, patience;
    int adam;
    float lr, l2, drop, flr, iddrop, fl2;
    int threads;
    double cold;
    uint32_t mask;
    const char *impute;
    const char *base; /* synth: "mf" (default) | "sasrec" */
} cfg;

static uint64_t g_hash;

static void die(const char *what, const dr_error *e) {
    fprintf(stderr, "bench_modal: %s: %s\n", what, e->msg);
    exit(1);
}

static void put(const char *ds, const char *conf, const char *metric, double v) {
    char line[256];
    int n = snprintf(line, sizeof line, "P-MODAL %s %s %s %.6f\n", ds, conf, metric, v);
    fputs(line, stdout);
    fflush(stdout);
    g_hash = bench_hash(g_hash, line, (size_t)n);
}

static void parse_kv(cfg *c, int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) {
            fprintf(stderr, "bench_modal: expected key=value, got '%s'\n", argv[i]);
            exit(2);
        }
        *eq = 0;
        const char *k = argv[i], *v = eq + 1;
        if (!strcmp(k, "data")) c->data = v;
        else if (!strcmp(k, "seeds")) c->seeds = (uint32_t)atoi(v);
        else if (!strcmp(k, "d")) c->d = (uint32_t)atoi(v);
        else if (!strcmp(k, "epochs")) c->epochs = (uint32_t)atoi(v);
        else if (!strcmp(k, "eval_every")) c->eval_every = (uint32_t)atoi(v);
        else if (!strcmp(k, "patience")) c->patience = (uint32_t)atoi(v);
        else if (!strcmp(k, "opt")) c->adam = !strcmp(v, "adam");
        else if (!strcmp(k, "lr")) c->lr = (float)atof(v);
        else if (!strcmp(k, "l2")) c->l2 = (float)atof(v);
        else if (!strcmp(k, "drop")) c->drop = (float)atof(v);
        else if (!strcmp(k, "fl2")) c->fl2 = (float)atof(v);
        else if (!strcmp(k, "iddrop")) c->iddrop = (float)atof(v);
        else if (!strcmp(k, "flr")) c->flr = (float)atof(v);
        else if (!strcmp(k, "threads")) c->threads = atoi(v);
        else if (!strcmp(k, "cold")) c->cold = atof(v);
        else if (!strcmp(k, "mask")) c->mask = (uint32_t)atoi(v);
        else if (!strcmp(k, "impute")) c->impute = v;
        else if (!strcmp(k, "base")) c->base = v;
        else {
            fprintf(stderr, "bench_modal: unknown key '%s'\n", k);
            exit(2);
        }
    }
}

static dr_mf_params mf_params(const cfg *c, uint64_t seed, uint32_t mask, dr_impute imp) {
    dr_mf_params p = dr__mf_default_params();
    p.d = c->d;
    p.epochs = c->epochs;
    p.eval_every = c->eval_every;
    p.patience = c->patience;
    p.optimizer = c->adam ? DR_MF_ADAM : DR_MF_SGD;
    p.lr = c->lr;
    p.l2 = c->l2;
    p.seed = seed;
    p.threads = c->threads;
    p.use_modalities = mask;
    p.modality_dropout = c->drop;
    p.fusion_lr = c->flr;
    p.id_dropout = c->iddrop;
    p.fusion_l2 = c->fl2;
    p.impute = imp;
    return p;
}

static dr_eval_result eval_test(const dr_dataset *ds, const dr_split *sp, const dr_model *m,
                                int threads) {
    dr_error e = {0};
    dr_eval_params ep = dr_eval_default_params();
    ep.which = 0;
    ep.threads = threads;
    dr_eval_result r;
    if (dr_eval_split(ds, sp, m, &ep, &r, &e) != DR_OK) die("eval", &e);
    return r;
}

typedef struct acc3 { double r20, n20, h10; } acc3;

static void acc_add(acc3 *a, dr_eval_result r, double w) {
    a->r20 += w * r.full20.recall;
    a->n20 += w * r.full20.ndcg;
    a->h10 += w * r.full10.hit;
}

/* the cold-item metrics of the same evaluation (eval.c) */
static void acc_add_cold(acc3 *a, dr_eval_result r, double w) {
    a->r20 += w * r.cold20.recall;
    a->n20 += w * r.cold20.ndcg;
    a->h10 += w * r.cold10.hit;
}

static void put3(const char *ds, const char *conf, acc3 a) {
    put(ds, conf, "recall@20", a.r20);
    put(ds, conf, "ndcg@20", a.n20);
    put(ds, conf, "hit@10", a.h10);
}

static int modality_index(const dr_dataset *ds, const char *name) {
    for (int m = 0; m < ds->n_mod; m++)
        if (!strcmp(ds->mod[m].name, name)) return m;
    return -1;
}

static dr_dataset *load(const cfg *c, dr_split **sp) {
    dr_error e = {0};
    dr_dataset *ds = NULL;
    dr_load_params lp = dr_load_default_params();
    if (dr_dataset_load(c->data, &lp, &ds, &e) != DR_OK) die(c->data, &e);
    if (dr_split_create(ds, DR_SPLIT_GIVEN, sp, &e) != DR_OK) die("split", &e);
    return ds;
}

/* ------------------------------------------------------------------ table */

/* cold[i] = 1 when item i is in no user's training segment; returns their count. */
static uint32_t cold_items(const dr_dataset *ds, const dr_split *sp, uint8_t *cold) {
    memset(cold, 1, ds->n_items);
    for (uint32_t u = 0; u < ds->n_users; u++)
        for (uint32_t k = 0; k < sp->n_train[u]; k++) cold[ds->hist_item[ds->user_off[u] + k]] = 0;
    uint32_t n = 0;
    for (uint32_t i = 0; i < ds->n_items; i++) n += cold[i];
    return n;
}

static int run_table(const cfg *c) {
    dr_split *sp = NULL;
    dr_dataset *ds = load(c, &sp);
    dr_error e = {0};
    int vis = modality_index(ds, "visual"), aud = modality_index(ds, "audio");
    if (vis < 0 || aud < 0) {
        fprintf(stderr, "bench_modal: %s lacks visual or audio\n", c->data);
        return 1;
    }
    const char *names[] = {"mf-id", "mf+visual", "mf+audio", "mf+both"};
    uint32_t masks[] = {0, 1u << vis, 1u << aud, (1u << vis) | (1u << aud)};
    uint8_t *cold = malloc(ds->n_items);
    put(ds->name, "data", "cold_items", cold_items(ds, sp, cold));
    for (int k = 0; k < 4; k++) {
        acc3 a = {0}, ca = {0};
        double secs = 0, epochs = 0;
        for (uint32_t s = 0; s < c->seeds; s++) {
            dr_mf_params p = mf_params(c, 42 + s, masks[k], DR_IMPUTE_GATE);
            dr_model *m = NULL;
            if (dr__mf_fit(ds, sp, &p, &m, &e) != DR_OK) die(names[k], &e);
            dr_eval_result r = eval_test(ds, sp, m, c->threads);
            acc_add(&a, r, 1.0 / c->seeds);
            acc_add_cold(&ca, r, 1.0 / c->seeds);
            const dr_mf_report *rep = dr__mf_get_report(m);
            secs += rep->seconds / c->seeds;
            epochs += (double)rep->epochs_run / c->seeds;
            dr_model_free(m);
        }
        put3(ds->name, names[k], a);
        char conf[96];
        snprintf(conf, sizeof conf, "%s cold", names[k]);
        put3(ds->name, conf, ca);
        put(ds->name, names[k], "train_seconds", secs);
        put(ds->name, names[k], "seconds_per_epoch", secs / (epochs > 0 ? epochs : 1));
    }
    const char *base[] = {"pop", "itemknn"};
    for (int k = 0; k < 2; k++) {
        dr_model_params mp = dr_model_default_params();
        mp.name = base[k];
        mp.threads = c->threads;
        dr_model *m = NULL;
        if (dr_model_fit(ds, sp, &mp, &m, &e) != DR_OK) die(base[k], &e);
        acc3 a = {0}, ca = {0};
        dr_eval_result r = eval_test(ds, sp, m, c->threads);
        acc_add(&a, r, 1.0);
        acc_add_cold(&ca, r, 1.0);
        put3(ds->name, base[k], a);
        char conf[96];
        snprintf(conf, sizeof conf, "%s cold", base[k]);
        put3(ds->name, conf, ca);
        dr_model_free(m);
    }
    free(cold);
    dr_split_free(sp);
    dr_dataset_free(ds);
    return 0;
}

/* ------------------------------------------------------------------ robustness */

static void put_eval(const char *ds, const char *conf, const dr_eval_result *r) {
    put(ds, conf, "recall@20", r->full20.recall);
    put(ds, conf, "ndcg@20", r->full20.ndcg);
    put(ds, conf, "hit@10", r->full10.hit);
}

/* The library's sweep (dr_eval_modal_sweep, what `dynrec eval --protocol modal --sweep` runs)
 * on a gate-trained and a mean-trained model per seed; rows: gate model with gates, gate model
 * with mean imputation at inference, mean model with mean imputation. */
static int run_robust(const cfg *c) {
    dr_split *sp = NULL;
    dr_dataset *ds = load(c, &sp);
    dr_error e = {0};
    int vis = modality_index(ds, "visual"), aud = modality_index(ds, "audio");
    if (vis < 0 || aud < 0) {
        fprintf(stderr, "bench_modal: %s lacks visual or audio\n", c->data);
        return 1;
    }
    const uint32_t mask = (1u << vis) | (1u << aud);
    const char *rows[] = {"gate", "gate-model+mean-inference", "mean"};
    static dr_modal_sweep sw[2], acc[3];
    memset(acc, 0, sizeof acc);
    dr_modal_params mp = dr_modal_default_params();
    mp.threads = c->threads;
    for (uint32_t s = 0; s < c->seeds; s++) {
        for (int tr = 0; tr < 2; tr++) {
            dr_mf_params p = mf_params(c, 42 + s, mask, tr ? DR_IMPUTE_MEAN : DR_IMPUTE_GATE);
            dr_model *m = NULL;
            if (dr__mf_fit(ds, sp, &p, &m, &e) != DR_OK) die("fit", &e);
            if (dr_eval_modal_sweep(ds, sp, m, &mp, &sw[tr], &e) != DR_OK) die("sweep", &e);
            dr_model_free(m);
        }
        /* acc[row] <- seed mean of (model, inference mode) */
        const int src[3][2] = {{0, 0}, {0, 1}, {1, 1}};
        for (int r = 0; r < 3; r++)
            for (uint32_t k = 0; k < sw[0].n_mod; k++)
                for (int j = 0; j < DR_MODAL_SWEEP_P; j++) {
                    const dr_eval_result *x = &sw[src[r][0]].r[src[r][1]][k][j];
                    dr_eval_result *a = &acc[r].r[0][k][j];
                    a->full20.recall += x->full20.recall / c->seeds;
                    a->full20.ndcg += x->full20.ndcg / c->seeds;
                    a->full10.hit += x->full10.hit / c->seeds;
                }
    }
    for (int r = 0; r < 3; r++)
        for (uint32_t k = 0; k < sw[0].n_mod; k++)
            for (int j = 0; j < DR_MODAL_SWEEP_P; j++) {
                char conf[128];
                snprintf(conf, sizeof conf, "impute=%s drop=%s:%.2f", rows[r], sw[0].name[k],
                         sw[0].p[j]);
                const dr_eval_result *a = &acc[r].r[0][k][j], *z = &acc[r].r[0][k][0];
                put_eval(ds->name, conf, a);
                put(ds->name, conf, "rel_recall@20", a->full20.recall / z->full20.recall - 1.0);
                put(ds->name, conf, "rel_ndcg@20", a->full20.ndcg / z->full20.ndcg - 1.0);
                put(ds->name, conf, "rel_hit@10", a->full10.hit / z->full10.hit - 1.0);
            }
    dr_split_free(sp);
    dr_dataset_free(ds);
    return 0;
}

/* ------------------------------------------------------------------ synthetic cold items */

/* Makes a fraction of the items cold: in each user's history their events move to the end
 * (the test segment); of the warm events the last is test, the one before valid. Rewrites the
 * bench's own dataset copy (hist_* only) and split lengths. */
static void make_cold(dr_dataset *ds, dr_split *sp, double frac, uint64_t seed, uint8_t *cold) {
    dr_rng r;
    dr__rng_seed(&r, seed, 77);
    memset(cold, 0, ds->n_items);
    for (uint32_t i = 0; i < ds->n_items; i++) cold[i] = dr__rng_uniform(&r) < frac;
    uint32_t *tmp = malloc((ds->n_events + 1) * sizeof *tmp);
    sp->kind = DR_SPLIT_GIVEN;
    sp->n_eval = 0;
    for (uint32_t u = 0; u < ds->n_users; u++) {
        size_t o = ds->user_off[u], n = ds->user_off[u + 1] - o, w = 0;
        uint32_t *h = ds->hist_item + o;
        for (size_t k = 0; k < n; k++)
            if (!cold[h[k]]) tmp[w++] = h[k];
        size_t nw = w;
        for (size_t k = 0; k < n; k++)
            if (cold[h[k]]) tmp[w++] = h[k];
        memcpy(h, tmp, n * sizeof *h);
        uint32_t nv = nw >= 3 ? 1 : 0, nt_w = nw >= 3 ? 1 : 0;
        sp->n_train[u] = (uint32_t)(nw - nv - nt_w);
        sp->n_valid[u] = nv;
        sp->n_test[u] = (uint32_t)(nt_w + (n - nw));
        if (sp->n_train[u] == 0) sp->n_test[u] = 0; /* no context: not evaluated */
        sp->n_eval += sp->n_test[u] > 0;
    }
    free(tmp);
}

static int run_synth(const cfg *c) {
    dr_error e = {0};
    const bool sas = c->base && !strcmp(c->base, "sasrec");
    const char *names[] = {sas ? "sasrec-id" : "mf-id", sas ? "sasrec+fusion(gate)" : "mf+fusion(gate)",
                           sas ? "sasrec+fusion(mean)" : "mf+fusion(mean)"};
    acc3 all[3] = {{0}}, cold_a[3] = {{0}};
    /* robustness: each fused model with visual or audio removed from every item at inference,
     * missing features handled as in training (gate closes / mean imputed) */
    static const char *const rm[2] = {"visual", "audio"};
    acc3 rob[3][2] = {{{0}}}, rob_cold[3][2] = {{{0}}};
    for (uint32_t s = 0; s < c->seeds; s++) {
        dr_synth_params sy = dr_synth_default_params();
        sy.seed = 1 + s;
        sy.n_users = 1500;
        sy.n_items = 1000;
        sy.n_events = 60000;
        dr_dataset *ds = NULL;
        dr_split *sp = NULL;
        if (dr_synth_generate(&sy, &ds, &e) != DR_OK) die("synth", &e);
        if (dr_split_create(ds, DR_SPLIT_LOO, &sp, &e) != DR_OK) die("split", &e);
        uint8_t *cold = malloc(ds->n_items);
        make_cold(ds, sp, c->cold, 42 + s, cold);
        uint32_t mask = (1u << ds->n_mod) - 1;
        for (int k = 0; k < 3; k++) {
            dr_model *m = NULL;
            if (sas) { /* through the public parameters, as `dynrec train` */
                dr_model_params mp = dr_model_default_params();
                mp.name = "sasrec";
                mp.seed = 42 + s;
                mp.threads = c->threads;
                mp.dim = c->d;
                mp.max_len = 50;
                mp.epochs = c->epochs;
                mp.patience = c->patience;
                mp.modalities = k ? "all" : NULL;
                mp.impute = k == 2 ? "mean" : "gate";
                mp.modality_dropout = c->drop;
                mp.id_dropout = c->iddrop;
                if (dr_model_fit(ds, sp, &mp, &m, &e) != DR_OK) die(names[k], &e);
            } else {
                dr_mf_params p = mf_params(c, 42 + s, k ? mask : 0,
                                           k == 2 ? DR_IMPUTE_MEAN : DR_IMPUTE_GATE);
                if (dr__mf_fit(ds, sp, &p, &m, &e) != DR_OK) die(names[k], &e);
            }
            dr_eval_result r = eval_test(ds, sp, m, c->threads);
            acc_add(&all[k], r, 1.0 / c->seeds);
            acc_add_cold(&cold_a[k], r, 1.0 / c->seeds);
            for (int q = 0; k && q < 2; q++) {
                dr_modal_params mp = dr_modal_default_params();
                mp.threads = c->threads;
                mp.impute = k == 2 ? "mean" : "gate";
                mp.n_drop = 1;
                snprintf(mp.drop_name[0], sizeof mp.drop_name[0], "%s", rm[q]);
                mp.drop_p[0] = 1.0;
                if (dr_eval_modal(ds, sp, m, &mp, &r, &e) != DR_OK) die("robust", &e);
                acc_add(&rob[k][q], r, 1.0 / c->seeds);
                acc_add_cold(&rob_cold[k][q], r, 1.0 / c->seeds);
            }
            dr_model_free(m);
        }
        free(cold);
        dr_split_free(sp);
        dr_dataset_free(ds);
    }
    for (int k = 0; k < 3; k++) {
        char conf[96];
        snprintf(conf, sizeof conf, "%s all", names[k]);
        put3("synth", conf, all[k]);
        snprintf(conf, sizeof conf, "%s cold", names[k]);
        put3("synth", conf, cold_a[k]);
        for (int q = 0; k && q < 2; q++) {
            snprintf(conf, sizeof conf, "%s -%s all", names[k], rm[q]);
            put3("synth", conf, rob[k][q]);
            put("synth", conf, "rel_recall@20", rob[k][q].r20 / all[k].r20 - 1.0);
            snprintf(conf, sizeof conf, "%s -%s cold", names[k], rm[q]);
            put3("synth", conf, rob_cold[k][q]);
            put("synth", conf, "rel_recall@20", rob_cold[k][q].r20 / cold_a[k].r20 - 1.0);
        }
    }
    return 0;
}

static int run_one(const cfg *c) {
    dr_split *sp = NULL;
    dr_dataset *ds = load(c, &sp);
    dr_error e = {0};
    dr_impute imp = DR_IMPUTE_GATE;
    if (c->impute && dr__impute_parse(c->impute, &imp, &e) != DR_OK) die("impute", &e);
    for (uint32_t s = 0; s < c->seeds; s++) {
        dr_mf_params p = mf_params(c, 42 + s, c->mask, imp);
        dr_model *m = NULL;
        if (dr__mf_fit(ds, sp, &p, &m, &e) != DR_OK) die("fit", &e);
        dr_eval_result r = eval_test(ds, sp, m, c->threads);
        const dr_mf_report *rep = dr__mf_get_report(m);
        printf("mask=%u seed=%u epochs=%u best=%u valid_ndcg10=%.4f secs=%.1f R@20=%.4f "
               "N@20=%.4f H@10=%.4f\n", c->mask, 42 + s, rep->epochs_run, rep->best_epoch,
               rep->best_valid_ndcg10, rep->seconds, r.full20.recall, r.full20.ndcg,
               r.full10.hit);
        const float *eid = NULL;
        const dr_fusion *f = dr__mf_get_fusion(m, &eid);
        dr_fusion_input in;
        if (f && dr__fusion_input_build(f, ds, NULL, &in, &e) == DR_OK) {
            float *act = malloc(dr__fusion_act_floats(f) * sizeof *act);
            float *z = malloc(f->d * sizeof *z);
            for (uint32_t k = 0; k < f->n_mod; k++) {
                double gs = 0, yn = 0, en = 0;
                uint32_t np = 0;
                for (uint32_t i = 0; i < ds->n_items; i++) {
                    if (!in.pres[(size_t)k * ds->n_items + i]) continue;
                    const float *x[DR_MAX_MODALITIES];
                    float g[DR_MAX_MODALITIES] = {0};
                    for (uint32_t q = 0; q < f->n_mod; q++) x[q] = in.zero;
                    x[k] = in.xs[k] + (size_t)i * f->dim[k];
                    g[k] = 1;
                    dr__fusion_forward(f, eid + (size_t)i * f->d, x, g, z, act);
                    gs += act[(size_t)f->n_mod * f->d + f->n_mod + k];
                    for (uint32_t j = 0; j < f->d; j++) {
                        yn += act[(size_t)k * f->d + j] * act[(size_t)k * f->d + j];
                        en += eid[(size_t)i * f->d + j] * eid[(size_t)i * f->d + j];
                    }
                    np++;
                }
                printf("  modality %s present %u mean gate %.4f mean |y|^2 %.4f mean |e|^2 %.4f\n",
                       f->name[k], np, gs / (np ? np : 1), yn / (np ? np : 1), en / (np ? np : 1));
            }
            free(act);
            free(z);
            dr__fusion_input_free(&in);
        }
        fflush(stdout);
        dr_model_free(m);
    }
    dr_split_free(sp);
    dr_dataset_free(ds);
    return 0;
}

int main(int argc, char **argv) {
    cfg c = {.data = "../shared/data/tiktok-mmssl", .seeds = 3, .d = 64, .epochs = 300,
             .eval_every = 2, .patience = 3, .adam = 1, .lr = 0.001f, .l2 = 0.01f,
             .drop = 0.3f, .flr = 3e-3f, .iddrop = 0.5f, .fl2 = 1e-3f,
             .threads = 0, .cold = 0.1, .mask = 0, .impute = NULL};
    if (argc < 2) {
        fprintf(stderr, "usage: bench_modal table|robust|synth|one [key=value ...]\n");
        return 2;
    }
    parse_kv(&c, argc - 2, argv + 2);
    bench_header("modal");
    printf("# seeds %u d %u epochs %u eval_every %u patience %u opt %s lr %g l2 %g "
           "modality_dropout %g id_dropout %g fusion_lr %g fusion_l2 %g\n", c.seeds, c.d, c.epochs,
           c.eval_every, c.patience, c.adam ? "adam" : "sgd", (double)c.lr, (double)c.l2,
           (double)c.drop, (double)c.iddrop, (double)c.flr, (double)c.fl2);
    int rc;
    if (!strcmp(argv[1], "table")) rc = run_table(&c);
    else if (!strcmp(argv[1], "robust")) rc = run_robust(&c);
    else if (!strcmp(argv[1], "synth")) rc = run_synth(&c);
    else if (!strcmp(argv[1], "one")) rc = run_one(&c);
    else {
        fprintf(stderr, "bench_modal: unknown mode '%s'\n", argv[1]);
        return 2;
    }
    printf("# hash %016llx\n", (unsigned long long)g_hash);
    return rc;
}
