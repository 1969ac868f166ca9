/*
 * dynrec - the command-line tool. Uses only include/dynrec.h.
 *
 *   dynrec data synth [options] --out DIR     write a synthetic dataset folder
 *   dynrec data stats --data PATH [--json]    dataset statistics and the load report
 *   dynrec eval --protocol loo --model pop|itemknn --data PATH [--json]
 *   dynrec recommend --data PATH --model pop|itemknn --user ID [-k 10]
 *   dynrec demo [--out DIR]                   synthesise, evaluate, recommend; print a summary
 *
 * DESIGN: one table of commands, each with its own option parser over a shared set of
 * load options; every failure prints "dynrec: <status>: <message>" and exits 1 (2 for usage).
 * getopt_long was rejected because sub-commands share flags with different meanings.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "cli.h"

/* ------------------------------------------------------------------ data synth */

static const char *synth_help =
    "usage: dynrec data synth --out DIR [options]\n"
    "  --seed S             random seed (1)\n"
    "  --users N            users (2000)\n"
    "  --items M            items (1500)\n"
    "  --events E           interactions (100000)\n"
    "  --genres G           latent genres (16)\n"
    "  --latent-dim D       dimension of the true item latent (32)\n"
    "  --drift P            probability that a user's taste drifts once (0.3)\n"
    "  --new-items F        fraction of items born during the timeline (0.15)\n"
    "  --zipf Z             popularity long-tail exponent (1.0)\n"
    "  --taste-conc C       Dirichlet concentration of user tastes (0.3)\n"
    "  --repeat P           probability an event stays in the user's last genre (0.5)\n"
    "  --t-start T          UNIX seconds of the first event (1600000000)\n"
    "  --t-step S           mean seconds between events (60)\n"
    "  --dim-visual D, --dim-audio D, --dim-text D        feature dimensions (0 = none)\n"
    "  --noise-visual S, --noise-audio S, --noise-text S  feature noise\n"
    "  --missing-visual R, --missing-audio R, --missing-text R  missing rates in [0,1]\n"
    "Writes DIR in dynrec's dataset folder format (docs/FORMATS.md, docs/SYNTH.md).\n";

/* One row per numeric flag of `data synth`: the value is parsed as `kind` into `at`. */
typedef struct synth_flag {
    const char *name;
    char kind; /* 'u': uint32, 'z': size_t, 'U': uint64, 'i': int64, 'd': double */
    void *at;
} synth_flag;

static int set_flag(const synth_flag *f, const char *v) {
    uint64_t u;
    double d;
    switch (f->kind) {
    case 'u':
        if (parse_u64(v, &u) || u > UINT32_MAX) return -1;
        *(uint32_t *)f->at = (uint32_t)u;
        return 0;
    case 'z':
        if (parse_u64(v, &u) || u > SIZE_MAX) return -1;
        *(size_t *)f->at = (size_t)u;
        return 0;
    case 'U':
        if (parse_u64(v, &u)) return -1;
        *(uint64_t *)f->at = u;
        return 0;
    case 'i':
        if (parse_double(v, &d) || d != floor(d) || fabs(d) > 9e18) return -1;
        *(int64_t *)f->at = (int64_t)d;
        return 0;
    default:
        if (parse_double(v, &d)) return -1;
        *(double *)f->at = d;
        return 0;
    }
}

static int cmd_synth(int argc, char **argv) {
    dr_synth_params p = dr_synth_default_params();
    const char *out = NULL;
    const synth_flag flags[] = {
        {"--seed", 'U', &p.seed},          {"--users", 'u', &p.n_users},
        {"--items", 'u', &p.n_items},      {"--events", 'z', &p.n_events},
        {"--genres", 'u', &p.n_genres},    {"--latent-dim", 'u', &p.latent_dim},
        {"--drift", 'd', &p.drift_prob},   {"--new-items", 'd', &p.new_item_frac},
        {"--zipf", 'd', &p.zipf},          {"--taste-conc", 'd', &p.taste_conc},
        {"--repeat", 'd', &p.repeat_prob}, {"--t-start", 'i', &p.t_start},
        {"--t-step", 'i', &p.t_step},
        {"--dim-visual", 'u', &p.mod_dim[0]},   {"--dim-audio", 'u', &p.mod_dim[1]},
        {"--dim-text", 'u', &p.mod_dim[2]},     {"--noise-visual", 'd', &p.mod_noise[0]},
        {"--noise-audio", 'd', &p.mod_noise[1]}, {"--noise-text", 'd', &p.mod_noise[2]},
        {"--missing-visual", 'd', &p.mod_missing[0]},
        {"--missing-audio", 'd', &p.mod_missing[1]},
        {"--missing-text", 'd', &p.mod_missing[2]},
    };
    opts o = {argc, argv, 0};
    for (o.i = 0; o.i < argc; o.i++) {
        const char *a = argv[o.i], *v;
        int err = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(synth_help, stdout);
            return 0;
        }
        if ((v = opt_value(&o, "--out", &err))) {
            out = v;
            continue;
        }
        size_t k = 0;
        for (; k < sizeof flags / sizeof flags[0] && !err; k++) {
            if (!(v = opt_value(&o, flags[k].name, &err))) continue;
            if (set_flag(&flags[k], v)) return usage_error("bad %s '%s'", flags[k].name, v);
            break;
        }
        if (err) return err;
        if (k == sizeof flags / sizeof flags[0]) return usage_error("data synth: unknown option '%s'", a);
    }
    if (!out) return usage_error("data synth: --out DIR is required");
    dr_error e = {0};
    dr_dataset *ds = NULL;
    double t0 = (double)clock() / CLOCKS_PER_SEC;
    dr_status s = dr_synth_generate(&p, &ds, &e);
    if (s != DR_OK) return die(s, &e);
    s = dr_dataset_save(ds, out, &e);
    if (s != DR_OK) {
        dr_dataset_free(ds);
        return die(s, &e);
    }
    fprintf(stderr, "synth: %u users, %u items, %zu interactions -> %s (%.2f s cpu)\n",
            dr_dataset_n_users(ds), dr_dataset_n_items(ds), dr_dataset_n_events(ds), out,
            (double)clock() / CLOCKS_PER_SEC - t0);
    dr_dataset_free(ds);
    return 0;
}

/* ------------------------------------------------------------------ data stats */

static const char *stats_help =
    "usage: dynrec data stats --data PATH [--format F] [--json]\n"
    "  --data PATH      dataset folder or file (formats: see docs/FORMATS.md)\n"
    "  --format F       auto|delimited|movielens|amazon-csv|amazon-json|tiktok|dynrec\n"
    "  --delimiter C, --header yes|no, --cols U,I[,T[,W]], --meta PATH, --strict\n"
    "Prints users, items, interactions, time span and the P-STREAM T0.\n";

static int cmd_stats(int argc, char **argv) {
    load_opts l = {0};
    l.p = dr_load_default_params();
    int json = 0;
    opts o = {argc, argv, 0};
    for (o.i = 0; o.i < argc; o.i++) {
        if (!strcmp(argv[o.i], "--help") || !strcmp(argv[o.i], "-h")) {
            fputs(stats_help, stdout);
            return 0;
        }
        if (!strcmp(argv[o.i], "--json")) { json = 1; continue; }
        int r = load_opt(&o, &l);
        if (r < 0) return 2;
        if (r == 0) return usage_error("data stats: unknown option '%s'", argv[o.i]);
    }
    dr_dataset *ds = NULL;
    double t = 0;
    {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        int rc = load(&l, &ds);
        if (rc) return rc;
        clock_gettime(CLOCK_MONOTONIC, &b);
        t = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
    }
    dr_dataset_stats st;
    dr_status s = dr_dataset_get_stats(ds, &st);
    if (s != DR_OK) {
        dr_dataset_free(ds);
        return die(s, NULL);
    }
    char tmin[64], tmax[64], t0[64];
    fmt_time(tmin, sizeof tmin, st.t_min, st.has_time ? st.time_scale : 0);
    fmt_time(tmax, sizeof tmax, st.t_max, st.has_time ? st.time_scale : 0);
    fmt_time(t0, sizeof t0, st.t0, st.has_time ? st.time_scale : 0);
    const dr_load_report *r = dr_dataset_report(ds);
    size_t skipped = 0;
    for (int k = 0; k < DR_SKIP_COUNT; k++) skipped += r->skipped[k];
    if (json) {
        printf("{\"dataset\":");
        json_str(stdout, dr_dataset_name(ds));
        printf(",\"users\":%u,\"items\":%u,\"interactions\":%zu,\"density\":%.6g,"
               "\"user_len\":{\"min\":%u,\"median\":%u,\"max\":%u},"
               "\"has_time\":%s,\"time_scale\":%g,\"t_min\":%lld,\"t_max\":%lld,"
               "\"t0\":%lld,\"pre_t0\":%zu,\"given_split\":%s,\"titled_items\":%zu,"
               "\"attributes\":%zu,\"modalities\":[",
               st.n_users, st.n_items, st.n_events, st.density, st.min_user_len,
               st.median_user_len, st.max_user_len, st.has_time ? "true" : "false",
               st.time_scale, (long long)st.t_min, (long long)st.t_max, (long long)st.t0,
               st.n_pre_t0, st.has_given_split ? "true" : "false", st.n_titled_items,
               st.n_attrs);
        for (int m = 0; m < st.n_modalities; m++) {
            const char *name;
            uint32_t dim;
            const uint8_t *present;
            dr_dataset_modality(ds, m, &name, &dim, NULL, &present);
            size_t np = 0;
            for (uint32_t i = 0; i < st.n_items; i++) np += present[i];
            printf("%s{\"name\":", m ? "," : "");
            json_str(stdout, name);
            printf(",\"dim\":%u,\"present\":%zu}", dim, np);
        }
        printf("],\"rows_read\":%zu,\"rows_skipped\":%zu,\"load_seconds\":%.4f}\n", r->rows_read,
               skipped, t);
    } else {
        printf("dataset        %s\n", dr_dataset_name(ds));
        printf("users          %u\n", st.n_users);
        printf("items          %u\n", st.n_items);
        printf("interactions   %zu\n", st.n_events);
        printf("density        %.6f\n", st.density);
        printf("per user       min %u, median %u, max %u\n", st.min_user_len,
               st.median_user_len, st.max_user_len);
        if (st.has_time) {
            printf("time span      %s .. %s (UTC)\n", tmin, tmax);
            printf("T0 (P-STREAM)  %s (raw %lld), %zu interactions before it (%.1f%%)\n", t0,
                   (long long)st.t0, st.n_pre_t0, 100.0 * (double)st.n_pre_t0 / (double)st.n_events);
        } else {
            printf("time span      none (the source's own train/valid/test split is used)\n");
        }
        printf("given split    %s\n", st.has_given_split ? "yes" : "no");
        printf("titles         %zu items\n", st.n_titled_items);
        printf("attributes     %zu distinct\n", st.n_attrs);
        for (int m = 0; m < st.n_modalities; m++) {
            const char *name;
            uint32_t dim;
            const uint8_t *present;
            dr_dataset_modality(ds, m, &name, &dim, NULL, &present);
            size_t np = 0;
            for (uint32_t i = 0; i < st.n_items; i++) np += present[i];
            printf("modality       %s: %u dims, present for %zu of %u items\n", name, dim, np,
                   st.n_items);
        }
        printf("rows           %zu read, %zu skipped\n", r->rows_read, skipped);
        printf("load time      %.3f s\n", t);
    }
    dr_dataset_free(ds);
    return 0;
}

/* ------------------------------------------------------------------ train */

static const char *train_help_head =
    "usage: dynrec train --model sasrec|mf --data PATH --out model.drm [options]\n"
    "  --protocol loo|stream|given  train on P-LOO training prefixes (default; validation\n"
    "                       targets drive early stopping), on P-STREAM's pre-T0 interactions,\n"
    "                       or on the source's own train split (given, P-MODAL)\n"
    "  --out FILE           checkpoint to write (.drm, docs/FORMATS.md)\n";

static int cmd_train(int argc, char **argv) {
    load_opts l = {0};
    l.p = dr_load_default_params();
    model_opts mo = {dr_model_default_params(), NULL};
    const char *out = NULL, *protocol = "loo";
    opts o = {argc, argv, 0};
    for (o.i = 0; o.i < argc; o.i++) {
        const char *a = argv[o.i], *v;
        int err = 0, r;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(train_help_head, stdout);
            fputs(model_opts_help, stdout);
            return 0;
        }
        if ((v = opt_value(&o, "--out", &err))) { out = v; continue; }
        if ((v = opt_value(&o, "--protocol", &err))) { protocol = v; continue; }
        if (err) return err;
        if ((r = model_opt(&o, &mo)) < 0) return 2;
        if (r) continue;
        if ((r = load_opt(&o, &l)) < 0) return 2;
        if (r == 0) return usage_error("train: unknown option '%s'", a);
    }
    if (!mo.model || !out) return usage_error("train: --model and --out are required");
    if (strcmp(mo.model, "sasrec") && strcmp(mo.model, "mf"))
        return usage_error("train: --model must be sasrec or mf");
    dr_split_kind kind;
    if (!strcmp(protocol, "loo")) kind = DR_SPLIT_LOO;
    else if (!strcmp(protocol, "stream")) kind = DR_SPLIT_T0;
    else if (!strcmp(protocol, "given") || !strcmp(protocol, "modal")) kind = DR_SPLIT_GIVEN;
    else return usage_error("train: unknown --protocol '%s' (loo, stream, given)", protocol);
    char mods[512];
    default_modalities(&l, &mo, mods, sizeof mods);
    dr_dataset *ds = NULL;
    int rc = load(&l, &ds);
    if (rc) return rc;
    dr_error e = {0};
    dr_split *sp = NULL;
    dr_model *m = NULL;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    dr_status s = dr_split_create(ds, kind, &sp, &e);
    if (s != DR_OK) rc = die(s, &e);
    if (!rc) rc = get_model(ds, sp, &mo, &m);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (!rc && (s = dr_model_save(m, ds, sp, out, &e)) != DR_OK) rc = die(s, &e);
    if (!rc)
        fprintf(stderr, "train: %s on %s (%s) in %.1f s -> %s\n", mo.model, dr_dataset_name(ds),
                protocol, (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec),
                out);
    dr_model_free(m);
    dr_split_free(sp);
    dr_dataset_free(ds);
    return rc;
}

/* ------------------------------------------------------------------ eval */

static const char *eval_help_head =
    "usage: dynrec eval --protocol loo --model NAME|FILE --data PATH [--json]\n"
    "       dynrec eval --protocol stream ... (see dynrec eval --protocol stream --help)\n"
    "  --protocol loo   P-LOO of ../shared/PROTOCOL.md (given: the source's own split)\n"
    "  --data PATH      dataset folder or file (see dynrec data stats --help)\n"
    "  --valid          evaluate on the validation targets instead of the test targets\n"
    "  --json           one JSON object on stdout\n"
    "  With a model name the model is fitted on the training prefixes first.\n";

static int run_eval(dr_dataset *ds, dr_split_kind kind, model_opts *mo, int which,
                    dr_eval_result *res) {
    dr_error e = {0};
    dr_split *sp = NULL;
    dr_model *m = NULL;
    dr_status s = dr_split_create(ds, kind, &sp, &e);
    if (s != DR_OK) return die(s, &e);
    int rc = get_model(ds, sp, mo, &m);
    if (rc) {
        dr_split_free(sp);
        return rc;
    }
    dr_eval_params ep = dr_eval_default_params();
    ep.threads = mo->p.threads;
    ep.which = which;
    ep.progress = progress_cb;
    s = dr_eval_split(ds, sp, m, &ep, res, &e);
    dr_model_free(m);
    dr_split_free(sp);
    return s == DR_OK ? 0 : die(s, &e);
}

static void print_eval_human(const char *protocol, const dr_dataset *ds, const char *model,
                             const dr_eval_result *r, int which) {
    printf("%s  dataset=%s  model=%s  users=%u  targets=%s  sampled-100 seed=42\n", protocol,
           dr_dataset_name(ds), model, r->n_users, which ? "validation" : "test");
    printf("  %-22s %8s %8s %8s %8s\n", "ranking", "Hit@10", "NDCG@10", "Hit@20", "NDCG@20");
    printf("  %-22s %8.4f %8.4f %8.4f %8.4f\n", "full (headline)", r->full10.hit,
           r->full10.ndcg, r->full20.hit, r->full20.ndcg);
    printf("  %-22s %8.4f %8.4f %8.4f %8.4f\n", "sampled-100", r->samp10.hit, r->samp10.ndcg,
           r->samp20.hit, r->samp20.ndcg);
    if (r->n_cold_users)
        printf("  %-22s %8.4f %8.4f %8.4f %8.4f   (%u items with no training event; %u users "
               "with such a target)\n", "full, cold items", r->cold10.hit, r->cold10.ndcg,
               r->cold20.hit, r->cold20.ndcg, r->n_cold_items, r->n_cold_users);
    printf("  seconds %.3f\n", r->seconds);
}

static void print_pair(const char *label, const dr_stream_pair *p, int adapter, int retrain) {
    printf("  %-14s %8.4f %8.4f", label, p->frozen.hit10, p->frozen.ndcg10);
    if (adapter) printf("   %8.4f %8.4f", p->adapter.hit10, p->adapter.ndcg10);
    if (retrain) printf("   %8.4f %8.4f", p->retrain.hit10, p->retrain.ndcg10);
    printf("   %7zu\n", p->frozen.n);
}

static const char *stream_help =
    "usage: dynrec eval --protocol stream --model sasrec|mf|FILE --data PATH [--json]\n"
    "  P-STREAM of ../shared/PROTOCOL.md: the base is trained on the interactions before T0\n"
    "  (a model name: trained here with the training flags below; a FILE: written by\n"
    "  `dynrec train --protocol stream`, refused if it saw data at or after T0), then frozen;\n"
    "  the events from T0 on are replayed in time order, frozen and adapter side by side.\n"
    "  --no-adapter         frozen column only        --retrain   add the retrain upper bound\n"
    "  --retrain-warm       each refit continues from the model it replaces (sasrec)\n"
    "  --retrain-epochs N   epochs per refit (default: the base's --epochs)\n"
    "  --no-gates           ablation: adapter gates fixed open\n"
    "  --adapter-window N   global window (events)    --adapter-hidden N   MLP hidden units\n"
    "  --adapter-negatives N  --adapter-batch N  --adapter-lr X  --adapter-kl X\n";

static int cmd_eval_stream(int argc, char **argv) {
    load_opts l = {0};
    l.p = dr_load_default_params();
    model_opts mo = {dr_model_default_params(), NULL};
    dr_stream_options so = dr_stream_default_options();
    int json = 0, retrain = 0;
    uint32_t retrain_epochs = 0;
    opts o = {argc, argv, 0};
    for (o.i = 0; o.i < argc; o.i++) {
        const char *a = argv[o.i], *v;
        int err = 0, r;
        uint64_t u;
        double d;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(stream_help, stdout);
            fputs(model_opts_help, stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "--no-adapter")) { so.run_adapter = 0; continue; }
        if (!strcmp(a, "--no-gates")) { so.no_gates = 1; continue; }
        if (!strcmp(a, "--retrain")) { retrain = 1; continue; }
        if (!strcmp(a, "--retrain-warm")) { retrain = so.retrain_warm = 1; continue; }
        if ((v = opt_value(&o, "--retrain-epochs", &err))) {
            if (parse_u64(v, &u) || !u || u > 100000)
                return usage_error("bad --retrain-epochs '%s'", v);
            retrain_epochs = (uint32_t)u;
            continue;
        }
        if ((v = opt_value(&o, "--protocol", &err))) continue;
        struct { const char *name; uint32_t *at; } ui[] = {
            {"--adapter-window", &so.window}, {"--adapter-hidden", &so.hidden},
            {"--adapter-negatives", &so.negatives}, {"--adapter-batch", &so.g_batch}};
        struct { const char *name; float *at; } fl[] = {
            {"--adapter-lr", &so.lr}, {"--adapter-kl", &so.lambda_kl}};
        int hit = 0;
        for (size_t k = 0; k < 4 && !hit && !err; k++)
            if ((v = opt_value(&o, ui[k].name, &err))) {
                if (parse_u64(v, &u) || u > 100000000) return usage_error("bad %s '%s'", ui[k].name, v);
                *ui[k].at = (uint32_t)u;
                hit = 1;
            }
        for (size_t k = 0; k < 2 && !hit && !err; k++)
            if ((v = opt_value(&o, fl[k].name, &err))) {
                if (parse_double(v, &d) || d < 0) return usage_error("bad %s '%s'", fl[k].name, v);
                *fl[k].at = (float)d;
                hit = 1;
            }
        if (err) return err;
        if (hit) continue;
        if ((r = model_opt(&o, &mo)) < 0) return 2;
        if (r) continue;
        if ((r = load_opt(&o, &l)) < 0) return 2;
        if (r == 0) return usage_error("eval: unknown option '%s'", a);
    }
    if (!mo.model) return usage_error("eval: --model is required (sasrec, mf or a file)");
    openblas_set_num_threads(1); /* the replay's products are small: no BLAS thread pool */
    dr_dataset *ds = NULL;
    int rc = load(&l, &ds);
    if (rc) return rc;
    dr_error e = {0};
    dr_split *sp = NULL;
    dr_model *m = NULL;
    dr_stream_result res;
    dr_dataset_stats st;
    dr_status s = dr_split_create(ds, DR_SPLIT_T0, &sp, &e);
    if (s != DR_OK) {
        rc = die(s, &e);
        goto done;
    }
    dr_dataset_get_stats(ds, &st);
    if ((rc = get_model(ds, sp, &mo, &m))) goto done;
    if (is_checkpoint_path(mo.model)) { /* the base must not have seen the replay */
        const char *split = dr_model_meta(m, "split"), *t0 = dr_model_meta(m, "T0");
        char want[32];
        snprintf(want, sizeof want, "%lld", (long long)st.t0);
        if (!split || strcmp(split, "t0") || !t0 || strcmp(t0, want)) {
            fprintf(stderr, "dynrec: arg: %s was trained under split '%s' (T0 %s), not on the "
                    "interactions before this dataset's T0 %s: it has seen the replay; train it "
                    "with `dynrec train --protocol stream`\n", mo.model, split ? split : "?",
                    t0 ? t0 : "none", want);
            rc = 1;
            goto done;
        }
    }
    dr_model_params rp = mo.p;
    if (retrain) {
        rp.name = is_checkpoint_path(mo.model) ? dr_model_name(m) : mo.model;
        rp.on_epoch = NULL;
        rp.progress = NULL;
        if (retrain_epochs) rp.epochs = retrain_epochs;
        so.retrain = &rp;
    }
    so.progress = progress_cb;
    if ((s = dr_eval_stream(ds, m, &so, &res, &e)) != DR_OK) {
        rc = die(s, &e);
        goto done;
    }
    snprintf(res.model, sizeof res.model, "%s", mo.model);
    if (json) {
        char buf[16384];
        dr_stream_result_json(&res, buf, sizeof buf);
        puts(buf);
    } else {
        printf("P-STREAM  dataset=%s  model=%s  T0=%lld  replayed=%zu  scored=%zu  %.1f s\n",
               dr_dataset_name(ds), mo.model, (long long)res.t0, res.n_events, res.n_scored,
               res.seconds);
        printf("  %-14s %8s %8s", "", "frozen", "");
        if (res.has_adapter) printf("   %8s %8s", "adapter", "");
        if (res.has_retrain) printf("   %8s %8s", "retrain", "");
        printf("\n  %-14s %8s %8s", "", "Hit@10", "NDCG@10");
        if (res.has_adapter) printf("   %8s %8s", "Hit@10", "NDCG@10");
        if (res.has_retrain) printf("   %8s %8s", "Hit@10", "NDCG@10");
        printf("   %7s\n", "events");
        print_pair("overall", &res.overall, res.has_adapter, res.has_retrain);
        for (int k = 0; k < DR_STREAM_SLICES; k++) {
            char label[32];
            snprintf(label, sizeof label, "slice %d", k + 1);
            print_pair(label, &res.slices[k], res.has_adapter, res.has_retrain);
        }
        print_pair("cold targets", &res.cold, res.has_adapter, res.has_retrain);
        if (res.has_retrain)
            printf("  retrain cost: %u refits, %.1f s\n", res.n_retrains, res.retrain_seconds);
    }
done:
    dr_model_free(m);
    dr_split_free(sp);
    dr_dataset_free(ds);
    return rc;
}

static int cmd_eval(int argc, char **argv) {
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } own[] = {{"stream", cmd_eval_stream}, {"modal", cmd_eval_modal}, {"explain", cmd_eval_explain}};
    for (int k = 0; k < argc; k++) /* protocols with options of their own */
        for (size_t j = 0; j < sizeof own / sizeof own[0]; j++)
            if ((!strcmp(argv[k], "--protocol") && k + 1 < argc && !strcmp(argv[k + 1], own[j].name)) ||
                (!strncmp(argv[k], "--protocol=", 11) && !strcmp(argv[k] + 11, own[j].name)))
                return own[j].run(argc, argv);
    load_opts l = {0};
    l.p = dr_load_default_params();
    model_opts mo = {dr_model_default_params(), NULL};
    const char *protocol = NULL;
    int json = 0, which = 0;
    opts o = {argc, argv, 0};
    for (o.i = 0; o.i < argc; o.i++) {
        const char *a = argv[o.i], *v;
        int err = 0, r;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(eval_help_head, stdout);
            fputs(model_opts_help, stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "--valid")) { which = 1; continue; }
        if ((v = opt_value(&o, "--protocol", &err))) { protocol = v; continue; }
        if (err) return err;
        if ((r = model_opt(&o, &mo)) < 0) return 2;
        if (r) continue;
        if ((r = load_opt(&o, &l)) < 0) return 2;
        if (r == 0) return usage_error("eval: unknown option '%s'", a);
    }
    if (!protocol) return usage_error("eval: --protocol is required (loo, stream, given)");
    dr_split_kind kind;
    const char *pname;
    if (!strcmp(protocol, "loo")) kind = DR_SPLIT_LOO, pname = "P-LOO";
    else if (!strcmp(protocol, "given")) kind = DR_SPLIT_GIVEN, pname = "GIVEN";
    else return usage_error("eval: unknown --protocol '%s' (loo, stream, given)", protocol);
    if (!mo.model) return usage_error("eval: --model is required (pop, itemknn, sasrec, mf or a file)");
    dr_dataset *ds = NULL;
    int rc = load(&l, &ds);
    if (rc) return rc;
    dr_eval_result r;
    rc = run_eval(ds, kind, &mo, which, &r);
    if (rc) {
        dr_dataset_free(ds);
        return rc;
    }
    if (json) {
        printf("{\"protocol\":\"%s\",\"dataset\":", pname);
        json_str(stdout, dr_dataset_name(ds));
        printf(",\"model\":");
        json_str(stdout, mo.model);
        printf(",\"n_users\":%u,\"full\":{\"hit@10\":%.6f,\"ndcg@10\":%.6f,\"hit@20\":%.6f,"
               "\"ndcg@20\":%.6f},\"sampled100\":{\"hit@10\":%.6f,\"ndcg@10\":%.6f},"
               "\"seconds\":%.3f",
               r.n_users, r.full10.hit, r.full10.ndcg, r.full20.hit, r.full20.ndcg,
               r.samp10.hit, r.samp10.ndcg, r.seconds);
        if (r.n_cold_users) /* only when the data has cold targets: the usual shape otherwise */
            printf(",\"cold\":{\"n_items\":%u,\"n_users\":%u,\"hit@10\":%.6f,\"ndcg@10\":%.6f,"
                   "\"recall@20\":%.6f,\"ndcg@20\":%.6f}", r.n_cold_items, r.n_cold_users,
                   r.cold10.hit, r.cold10.ndcg, r.cold20.recall, r.cold20.ndcg);
        printf("}\n");
    } else {
        print_eval_human(pname, ds, mo.model, &r, which);
    }
    dr_dataset_free(ds);
    return 0;
}

/* ------------------------------------------------------------------ recommend */

static const char *recommend_help =
    "usage: dynrec recommend --model FILE --user ID [-k 10] [--data PATH] [--json]\n"
    "                        [--explain [generator options, see dynrec explain --help]]\n"
    "       dynrec recommend --model pop|itemknn --data PATH --user ID [-k 10]\n"
    "  Ranks every item for the user's whole history, history items excluded. A checkpoint\n"
    "  carries the ids and histories it was trained with; --data adds titles and attributes\n"
    "  (and must have the same item catalogue). A model name is fitted on the P-LOO training\n"
    "  prefixes of --data first.\n";

/* Recommends for user u; ds (titles, attributes, ids) may be NULL when m carries ids. */
static int recommend_for(const dr_dataset *ds, const dr_model *m, uint32_t u, size_t k,
                         int json, FILE *out, dr_explain_session *xs, const dr_explainer *xr) {
    static dr_explanation ex;
    static char xbuf[1 << 16];
    dr_error e = {0};
    const uint32_t *hist;
    size_t nh = dr_model_n_users(m) ? dr_model_user_history(m, u, &hist)
                                    : dr_dataset_user_items(ds, u, &hist, NULL);
    const char *uid = dr_model_n_users(m) ? dr_model_user_id(m, u) : dr_dataset_user_id(ds, u);
    dr_rec *rec = malloc(k * sizeof *rec);
    uint32_t got = 0;
    dr_scorer *sc = NULL;
    dr_status s = DR_NOMEM;
    if (!rec) goto done;
    if ((s = dr_scorer_create(m, &sc, &e)) != DR_OK) goto done;
    if ((s = dr_recommend(m, sc, u, hist, nh, (uint32_t)k, rec, &got, &e)) != DR_OK) goto done;
    if (json) {
        fprintf(out, "{\"user\":");
        json_str(out, uid);
        fprintf(out, ",\"model\":");
        json_str(out, dr_model_name(m));
        fprintf(out, ",\"items\":[");
        for (size_t j = 0; j < got; j++) {
            fprintf(out, "%s{\"item\":", j ? "," : "");
            json_str(out, ds ? dr_dataset_item_id(ds, rec[j].item) : dr_model_item_id(m, rec[j].item));
            fprintf(out, ",\"title\":");
            json_str(out, ds ? dr_dataset_item_title(ds, rec[j].item)
                             : dr_model_item_title(m, rec[j].item));
            fprintf(out, ",\"score\":%.6g", rec[j].score);
            if (xs && (s = dr_explain(xs, u, rec[j].item, &ex, &e)) != DR_OK) goto done;
            if (xs && dr_explanation_json(xr, &ex, xbuf, sizeof xbuf) > 0)
                fprintf(out, ",\"explanation\":%s", xbuf);
            fputc('}', out);
        }
        fprintf(out, "]}\n");
    } else {
        fprintf(out, "  recommendations for user %s (%s, %zu items in history):\n", uid,
                dr_model_name(m), nh);
        for (size_t j = 0; j < got; j++) {
            const char *iid = ds ? dr_dataset_item_id(ds, rec[j].item) : dr_model_item_id(m, rec[j].item);
            fprintf(out, "   %2zu. %-8s %-34.34s score %8.4f ", j + 1, iid,
                    ds ? dr_dataset_item_title(ds, rec[j].item) : dr_model_item_title(m, rec[j].item),
                rec[j].score);
            const char *attrs[4];
            size_t na = ds ? dr_dataset_item_attrs(ds, rec[j].item, attrs, 4)
                           : dr_model_item_attrs(m, rec[j].item, attrs, 4);
            for (size_t a = 0; a < na && a < 3; a++) fprintf(out, "%s%s", a ? " " : "", attrs[a]);
            fputc('\n', out);
            if (xs && (s = dr_explain(xs, u, rec[j].item, &ex, &e)) != DR_OK) goto done;
            if (xs) explain_print(out, xr, &ex, "       ");
        }
    }
    s = DR_OK;
done:
    dr_scorer_free(sc);
    free(rec);
    return s == DR_OK ? 0 : die(s, &e);
}

static int cmd_recommend(int argc, char **argv) {
    load_opts l = {0};
    l.p = dr_load_default_params();
    model_opts mo = {dr_model_default_params(), NULL};
    const char *user = NULL;
    uint64_t k = 10;
    int json = 0, explain = 0;
    explain_opts xo = {dr_explain_default_params()};
    opts o = {argc, argv, 0};
    for (o.i = 0; o.i < argc; o.i++) {
        const char *a = argv[o.i], *v;
        int err = 0, r;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(recommend_help, stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "--explain")) { explain = 1; continue; }
        if ((r = explain_opt(&o, &xo)) < 0) return 2;
        if (r) continue;
        if ((v = opt_value(&o, "--user", &err))) { user = v; continue; }
        if ((v = opt_value(&o, "-k", &err))) {
            if (parse_u64(v, &k) || k == 0 || k > 10000) return usage_error("bad -k '%s' (1..10000)", v);
            continue;
        }
        if (err) return err;
        if ((r = model_opt(&o, &mo)) < 0) return 2;
        if (r) continue;
        if ((r = load_opt(&o, &l)) < 0) return 2;
        if (r == 0) return usage_error("recommend: unknown option '%s'", a);
    }
    if (!mo.model || !user) return usage_error("recommend: --model and --user are required");
    int from_file = is_checkpoint_path(mo.model);
    if (!from_file && !l.data) return usage_error("recommend: a model name needs --data");
    dr_dataset *ds = NULL;
    int rc = l.data ? load(&l, &ds) : 0;
    if (rc) return rc;
    dr_error e = {0};
    dr_split *sp = NULL;
    dr_model *m = NULL;
    dr_status s = DR_OK;
    if (!from_file && (s = dr_split_create(ds, DR_SPLIT_LOO, &sp, &e)) != DR_OK) rc = die(s, &e);
    mo.p.on_epoch = NULL;
    if (!rc) rc = get_model(ds, sp, &mo, &m);
    uint32_t u = 0;
    if (!rc) {
        dr_status f = from_file ? dr_model_find_user(m, user, &u) : dr_dataset_find_user(ds, user, &u);
        if (f != DR_OK) {
            fprintf(stderr, "dynrec: notfound: user '%s' is not in %s\n", user,
                    from_file ? mo.model : dr_dataset_name(ds));
            rc = 1;
        }
    }
    dr_explainer *xr = NULL;
    dr_explain_session *xs = NULL;
    if (!rc && explain && !from_file) rc = usage_error("recommend: --explain needs a checkpoint");
    xo.p.data = ds;
    if (!rc && explain) rc = explain_open(m, &xo, &xr, &xs);
    if (!rc) rc = recommend_for(ds, m, u, (size_t)k, json, stdout, xs, xr);
    dr_explain_session_free(xs);
    dr_explainer_free(xr);
    dr_model_free(m);
    dr_split_free(sp);
    dr_dataset_free(ds);
    return rc;
}

/* ------------------------------------------------------------------ demo */

static const char *demo_help =
    "usage: dynrec demo [--out DIR] [--seed S]\n"
    "  Synthesises a dataset with drifting tastes, new items and three modalities, writes it\n"
    "  to DIR (default build/demo-data), loads it back, evaluates the baselines under P-LOO,\n"
    "  trains BPR-MF and SASRec, saves and reloads their checkpoints, evaluates them,\n"
    "  recommends from a checkpoint alone and prints a summary.\n";

static int cmd_demo(int argc, char **argv) {
    const char *out = "build/demo-data";
    uint64_t seed = 7;
    opts o = {argc, argv, 0};
    for (o.i = 0; o.i < argc; o.i++) {
        const char *v;
        int err = 0;
        if (!strcmp(argv[o.i], "--help") || !strcmp(argv[o.i], "-h")) {
            fputs(demo_help, stdout);
            return 0;
        }
        if ((v = opt_value(&o, "--out", &err))) { out = v; continue; }
        if ((v = opt_value(&o, "--seed", &err))) {
            if (parse_u64(v, &seed)) return usage_error("bad --seed '%s'", v);
            continue;
        }
        if (err) return err;
        return usage_error("demo: unknown option '%s'", argv[o.i]);
    }
    dr_error e = {0};
    dr_synth_params sp = dr_synth_default_params();
    sp.seed = seed;
    dr_dataset *gen = NULL, *ds = NULL;
    printf("== 1. synthesise: %u users, %u items, %zu events, %u genres, drift %.2f, "
           "new items %.2f\n", sp.n_users, sp.n_items, sp.n_events, sp.n_genres, sp.drift_prob,
           sp.new_item_frac);
    dr_status s = dr_synth_generate(&sp, &gen, &e);
    if (s == DR_OK) s = dr_dataset_save(gen, out, &e);
    dr_dataset_free(gen);
    if (s != DR_OK) return die(s, &e);
    printf("   written to %s\n", out);

    printf("== 2. load it back and describe it\n");
    load_opts l = {0};
    l.p = dr_load_default_params();
    l.data = out;
    int rc = load(&l, &ds);
    if (rc) return rc;
    dr_dataset_stats st;
    dr_dataset_get_stats(ds, &st);
    printf("   %u users, %u items, %zu interactions, %zu attributes, %d modalities, "
           "T0 = %lld (%zu events before)\n", st.n_users, st.n_items, st.n_events, st.n_attrs,
           st.n_modalities, (long long)st.t0, st.n_pre_t0);

    printf("== 3. evaluate baselines (P-LOO, full ranking and sampled-100)\n");
    enum { N_MODELS = 4 };
    static const char *const models[N_MODELS] = {"pop", "itemknn", "mf", "sasrec"};
    dr_eval_result res[N_MODELS];
    char ckpt[N_MODELS][4096] = {{0}};
    for (int k = 0; k < 2; k++) {
        model_opts mo = {dr_model_default_params(), models[k]};
        if ((rc = run_eval(ds, DR_SPLIT_LOO, &mo, 0, &res[k]))) goto done;
        print_eval_human("P-LOO", ds, models[k], &res[k], 0);
    }

    printf("== 4. train the base models once (early stopping on validation NDCG@10), "
           "save, reload, evaluate\n");
    for (int k = 2; k < N_MODELS; k++) {
        dr_split *spl = NULL;
        dr_model *m = NULL;
        model_opts mo = {dr_model_default_params(), models[k]};
        mo.p.epochs = k == 3 ? 30 : 60; /* a short schedule: the demo runs in about a minute */
        mo.p.eval_every = k == 3 ? 3 : 5;
        mo.p.patience = 2;
        mo.p.max_len = 50;
        mo.p.dim = 32;
        mo.p.on_epoch = epoch_cb;
        snprintf(ckpt[k], sizeof ckpt[k], "%s/../demo-%s.drm", out, models[k]);
        printf("   training %s ...\n", models[k]);
        fflush(stdout);
        s = dr_split_create(ds, DR_SPLIT_LOO, &spl, &e);
        if (s == DR_OK && (rc = get_model(ds, spl, &mo, &m)) == 0)
            s = dr_model_save(m, ds, spl, ckpt[k], &e);
        dr_model_free(m);
        dr_split_free(spl);
        if (!rc && s != DR_OK) rc = die(s, &e);
        if (rc) goto done;
        printf("   saved %s\n", ckpt[k]);
        model_opts from_file = {dr_model_default_params(), ckpt[k]};
        if ((rc = run_eval(ds, DR_SPLIT_LOO, &from_file, 0, &res[k]))) goto done;
        print_eval_human("P-LOO", ds, models[k], &res[k], 0);
    }

    printf("== 4b. gated fusion of the item features (image, audio, text): SASRec with every "
           "modality, and with the image features removed from every item at inference\n");
    dr_eval_result fused[2];
    char fused_ckpt[4200];
    {
        dr_split *spl = NULL;
        dr_model *m = NULL;
        model_opts mo = {dr_model_default_params(), "sasrec"}; /* step 4's schedule */
        mo.p.epochs = 30;
        mo.p.eval_every = 3;
        mo.p.patience = 2;
        mo.p.max_len = 50;
        mo.p.dim = 32;
        mo.p.modalities = "all";
        mo.p.on_epoch = NULL;
        dr_modal_params mp = dr_modal_default_params();
        s = dr_split_create(ds, DR_SPLIT_LOO, &spl, &e);
        if (s == DR_OK && (rc = get_model(ds, spl, &mo, &m)) == 0) {
            s = dr_eval_modal(ds, spl, m, &mp, &fused[0], &e);
            if (s == DR_OK) s = dr_modal_parse_drop("visual=1", &mp, &e);
            if (s == DR_OK) s = dr_eval_modal(ds, spl, m, &mp, &fused[1], &e);
            /* the fused checkpoint the demo serves to show PUT features at work */
            snprintf(fused_ckpt, sizeof fused_ckpt, "%s/../demo-sasrec-fused.drm", out);
            if (s == DR_OK) s = dr_model_save(m, ds, spl, fused_ckpt, &e);
        }
        dr_model_free(m);
        dr_split_free(spl);
        if (!rc && s != DR_OK) rc = die(s, &e);
        if (rc) goto done;
        printf("   %-34s Hit@10 %.4f   cold items (%u) Hit@10 %.4f\n", "sasrec, ids only",
               res[3].full10.hit, res[3].n_cold_items, res[3].cold10.hit);
        printf("   %-34s Hit@10 %.4f   cold items (%u) Hit@10 %.4f\n", "sasrec + fusion",
               fused[0].full10.hit, fused[0].n_cold_items, fused[0].cold10.hit);
        printf("   %-34s Hit@10 %.4f   cold items (%u) Hit@10 %.4f\n", "sasrec + fusion, no images",
               fused[1].full10.hit, fused[1].n_cold_items, fused[1].cold10.hit);
        printf("   saved %s\n", fused_ckpt);
    }

    printf("== 5. recommend from the SASRec checkpoint alone (ids, titles, histories inside)\n");
    {
        dr_model *m = NULL;
        uint32_t u = 0;
        if ((s = dr_model_load(ckpt[3], &m, &e)) != DR_OK) {
            rc = die(s, &e);
            goto done;
        }
        rc = recommend_for(NULL, m, u, 5, 0, stdout, NULL, NULL);
        dr_model_free(m);
        if (rc) goto done;
    }

    printf("== 6. P-STREAM: a base frozen at T0 vs the same base + online adapter, replaying "
           "the last 20%% of events (drifting tastes, new items)\n");
    dr_stream_result sr;
    {
        dr_split *spl = NULL;
        dr_model *m = NULL;
        model_opts mo = {dr_model_default_params(), "mf"};
        mo.p.epochs = 60;
        mo.p.on_epoch = NULL;
        dr_stream_options so = dr_stream_default_options();
        so.progress = progress_cb;
        openblas_set_num_threads(1);
        s = dr_split_create(ds, DR_SPLIT_T0, &spl, &e);
        if (s == DR_OK && (rc = get_model(ds, spl, &mo, &m)) == 0)
            s = dr_eval_stream(ds, m, &so, &sr, &e);
        dr_model_free(m);
        dr_split_free(spl);
        if (!rc && s != DR_OK) rc = die(s, &e);
        if (rc) goto done;
        printf("   %zu events replayed, %zu scored, %.1f s\n", sr.n_events, sr.n_scored, sr.seconds);
        printf("   %-22s %8s %8s\n", "Hit@10", "frozen", "adapter");
        printf("   %-22s %8.4f %8.4f\n", "all scored events", sr.overall.frozen.hit10,
               sr.overall.adapter.hit10);
        printf("   %-22s %8.4f %8.4f\n", "first slice", sr.slices[0].frozen.hit10,
               sr.slices[0].adapter.hit10);
        printf("   %-22s %8.4f %8.4f\n", "last slice", sr.slices[DR_STREAM_SLICES - 1].frozen.hit10,
               sr.slices[DR_STREAM_SLICES - 1].adapter.hit10);
        printf("   %-22s %8.4f %8.4f\n", "new (cold) items", sr.cold.frozen.hit10,
               sr.cold.adapter.hit10);
    }

    printf("== summary\n");
    printf("   dataset %s: %u users x %u items, %zu interactions\n", dr_dataset_name(ds),
           st.n_users, st.n_items, st.n_events);
    for (int k = 0; k < N_MODELS; k++)
        printf("   P-LOO full  %-8s Hit@10 %.4f NDCG@10 %.4f   (sampled-100 Hit@10 %.4f)\n",
               models[k], res[k].full10.hit, res[k].full10.ndcg, res[k].samp10.hit);
    printf("   P-MODAL     sasrec + fusion Hit@10 %.4f (ids only %.4f); cold items %.4f (ids "
           "only %.4f); image features removed: %.4f\n", fused[0].full10.hit, res[3].full10.hit,
           fused[0].cold10.hit, res[3].cold10.hit, fused[1].full10.hit);
    printf("   P-STREAM    mf frozen Hit@10 %.4f -> with the online adapter %.4f "
           "(cold targets %.4f -> %.4f)\n", sr.overall.frozen.hit10, sr.overall.adapter.hit10,
           sr.cold.frozen.hit10, sr.cold.adapter.hit10);
done:
    dr_dataset_free(ds);
    return rc;
}

/* ------------------------------------------------------------------ main */

static const char *main_help =
    "dynrec " DR_VERSION " - a recommender engine\n"
    "usage: dynrec <command> [options]   (dynrec <command> --help for each)\n"
    "  data synth       write a synthetic dataset folder\n"
    "  data stats       dataset statistics and load report\n"
    "  train            train a base model (sasrec, mf) and write a checkpoint\n"
    "  eval             evaluate a model under a protocol of ../shared/PROTOCOL.md\n"
    "  recommend        top-k items for one user (--explain: with explanations)\n"
    "  explain          why an item suits a user: evidence, generator, verifier\n"
    "  demo             synthesise, evaluate, recommend; print a summary\n";

int main(int argc, char **argv) {
    if (getenv("DYNREC_LOG")) dr_set_log(log_cb, NULL, atoi(getenv("DYNREC_LOG")));
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        fputs(main_help, stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        puts(DR_VERSION);
        return 0;
    }
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } commands[] = {
        {"train", cmd_train},         {"eval", cmd_eval}, {"recommend", cmd_recommend},
        {"demo", cmd_demo},           {"explain", cmd_explain}, {"serve", cmd_serve},
    };
    const char *cmd = argv[1];
    if (!strcmp(cmd, "data")) {
        if (argc < 3) return usage_error("data needs a sub-command: synth | stats");
        if (!strcmp(argv[2], "synth")) return cmd_synth(argc - 3, argv + 3);
        if (!strcmp(argv[2], "stats")) return cmd_stats(argc - 3, argv + 3);
        return usage_error("unknown data sub-command '%s'", argv[2]);
    }
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
        if (!strcmp(cmd, commands[k].name)) return commands[k].run(argc - 2, argv + 2);
    return usage_error("unknown command '%s'", cmd);
}
