/*
 * stream.c - `dynrec eval --protocol stream`: P-STREAM of ../shared/PROTOCOL.md, a base frozen
 * at T0 and the same base with the online adapter (and optionally periodic retraining) over the
 * replay of the events from T0 on.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cblas.h>

#include "cli.h"

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
    "  --adapter-negatives N  --adapter-batch N  --adapter-lr X  --adapter-lr-item X\n"
    "  --adapter-kl X\n"
    "  --adapter-search on|off  with a model name: first choose the adapter's window and rates\n"
    "                       on the validation stream (the last 10% of the events before T0,\n"
    "                       over a base trained on the 90% before them; default on). A FILE\n"
    "                       uses the choice recorded in it by `dynrec train --protocol stream`.\n"
    "                       Flags given here override either.\n";

static void trial_cb(void *ud, const dr_adapter_trial *t, const dr_adapter_choice *c) {
    (void)ud;
    if (c->n_trials == 1)
        fprintf(stderr, "adapter search: validation stream of %zu events (%zu scored) before T0, "
                "base trained on the events before it in %.1f s; frozen Hit@10 %.4f NDCG@10 %.4f\n"
                "  %5s %7s %8s %8s %8s %8s %11s %8s\n", c->n_events, c->n_scored,
                c->base_seconds, c->frozen_hit10, c->frozen_ndcg10, "trial", "window", "lr",
                "lr_item", "Hit@10", "NDCG@10", "cold Hit@10", "seconds");
    fprintf(stderr, "  %5u %7u %8.4g %8.4g %8.4f %8.4f %11.4f %8.1f%s\n", c->n_trials, t->window,
            (double)t->lr, (double)t->lr_item, t->hit10, t->ndcg10, t->cold_hit10, t->seconds,
            t->hit10 == c->best.hit10 && t->ndcg10 == c->best.ndcg10 ? "  best so far" : "");
}

int cli_choose_adapter(dr_dataset *ds, const cli_model_opts *mo, const dr_stream_options *so,
                       dr_adapter_choice *out) {
    dr_model_params p = mo->p;
    p.name = mo->model;
    p.progress = cli_progress_cb;
    if (!p.on_epoch) p.on_epoch = cli_epoch_cb;
    fprintf(stderr, "adapter search: training a %s base on the first 90%% of the events before "
            "T0 (its validation stream is the last 10%%)\n", mo->model);
    dr_error e = {0};
    dr_status s = dr_stream_choose_adapter(ds, &p, so, trial_cb, NULL, out, &e);
    if (s != DR_OK) return cli_die(s, &e);
    const dr_adapter_trial *b = &out->best;
    fprintf(stderr, "adapter search: chose window %u, lr %.4g, lr_item %.4g: validation Hit@10 "
            "%.4f vs frozen %.4f (%+.1f%%), %u trials, %.1f s\n", b->window, (double)b->lr,
            (double)b->lr_item, b->hit10, out->frozen_hit10,
            out->frozen_hit10 > 0 ? 100.0 * (b->hit10 / out->frozen_hit10 - 1.0) : 0.0,
            out->n_trials, out->seconds);
    return 0;
}

int cli_adapter_search_opt(cli_opts *o, int *on) {
    int err = 0;
    const char *v = cli_opt_value(o, "--adapter-search", &err);
    if (err) return -1;
    if (!v) return 0;
    if (strcmp(v, "on") && strcmp(v, "off")) {
        cli_usage_error("bad --adapter-search '%s' (on or off)", v);
        return -1;
    }
    *on = !strcmp(v, "on");
    return 1;
}

int cli_cmd_eval_stream(int argc, char **argv) {
    cli_load_opts l = cli_load_defaults();
    cli_model_opts mo = {dr_model_default_params(), NULL};
    dr_stream_options so = dr_stream_default_options();
    int json = 0, retrain = 0, search = 1;
    uint32_t retrain_epochs = 0;
    cli_opts o = {argc, argv, 0};
    for (o.i = 0; o.i < argc; o.i++) {
        const char *a = argv[o.i], *v;
        int err = 0, r;
        uint64_t u;
        double d;
        if (cli_is_help(a)) {
            fputs(stream_help, stdout);
            fputs(cli_model_opts_help, stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "--no-adapter")) { so.run_adapter = 0; continue; }
        if (!strcmp(a, "--no-gates")) { so.no_gates = 1; continue; }
        if (!strcmp(a, "--retrain")) { retrain = 1; continue; }
        if (!strcmp(a, "--retrain-warm")) { retrain = so.retrain_warm = 1; continue; }
        if ((v = cli_opt_value(&o, "--retrain-epochs", &err))) {
            if (cli_parse_u64(v, &u) || !u || u > 100000)
                return cli_usage_error("bad --retrain-epochs '%s'", v);
            retrain_epochs = (uint32_t)u;
            continue;
        }
        if ((v = cli_opt_value(&o, "--protocol", &err))) continue;
        if ((r = cli_adapter_search_opt(&o, &search)) < 0) return 2;
        if (r) continue;
        struct { const char *name; uint32_t *at; } ui[] = {
            {"--adapter-window", &so.window}, {"--adapter-hidden", &so.hidden},
            {"--adapter-negatives", &so.negatives}, {"--adapter-batch", &so.g_batch}};
        struct { const char *name; float *at; } fl[] = {
            {"--adapter-lr", &so.lr}, {"--adapter-lr-item", &so.lr_item},
            {"--adapter-kl", &so.lambda_kl}};
        int hit = 0;
        for (size_t k = 0; k < 4 && !hit && !err; k++)
            if ((v = cli_opt_value(&o, ui[k].name, &err))) {
                if (cli_parse_u64(v, &u) || u > 100000000) return cli_usage_error("bad %s '%s'", ui[k].name, v);
                *ui[k].at = (uint32_t)u;
                hit = 1;
            }
        for (size_t k = 0; k < sizeof fl / sizeof fl[0] && !hit && !err; k++)
            if ((v = cli_opt_value(&o, fl[k].name, &err))) {
                if (cli_parse_double(v, &d) || d < 0) return cli_usage_error("bad %s '%s'", fl[k].name, v);
                *fl[k].at = (float)d;
                hit = 1;
            }
        if (err) return err;
        if (hit) continue;
        if ((r = cli_model_load_opt(&o, &mo, &l)) < 0) return 2;
        if (r == 0) return cli_usage_error("eval: unknown option '%s'", a);
    }
    if (!mo.model) return cli_usage_error("eval: --model is required (sasrec, mf or a file)");
    openblas_set_num_threads(1); /* the replay's products are small: no BLAS thread pool */
    dr_dataset *ds = NULL;
    int rc = cli_load(&l, &ds);
    if (rc) return rc;
    dr_error e = {0};
    dr_split *sp = NULL;
    dr_model *m = NULL;
    dr_stream_result res;
    dr_dataset_stats st;
    dr_status s;
    dr_dataset_get_stats(ds, &st);
    dr_adapter_choice ch;
    int chose = 0;
    if (!cli_is_checkpoint_path(mo.model) && so.run_adapter && search) {
        if ((rc = cli_choose_adapter(ds, &mo, &so, &ch))) goto done;
        chose = 1;
    }
    if ((rc = cli_split_model(ds, DR_SPLIT_T0, &mo, &sp, &m))) goto done;
    if (chose && (s = dr_model_set_adapter_choice(m, &ch, &e)) != DR_OK) {
        rc = cli_die(s, &e);
        goto done;
    }
    dr_stream_options_from_model(&so, m); /* the settings chosen on validation, unless given */
    if (so.run_adapter && dr_model_meta(m, "adapter.window"))
        fprintf(stderr, "adapter: window %s, lr %s, lr_item %s as chosen on the validation "
                "stream (flags given here override)\n", dr_model_meta(m, "adapter.window"),
                dr_model_meta(m, "adapter.lr"), dr_model_meta(m, "adapter.lr_item"));
    else if (so.run_adapter)
        fprintf(stderr, "adapter: the library's defaults (no choice made on validation is "
                "recorded in the base)\n");
    if (cli_is_checkpoint_path(mo.model)) { /* the base must not have seen the replay */
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
        rp.name = cli_is_checkpoint_path(mo.model) ? dr_model_name(m) : mo.model;
        rp.on_epoch = NULL;
        rp.progress = NULL;
        if (retrain_epochs) rp.epochs = retrain_epochs;
        so.retrain = &rp;
    }
    so.progress = cli_progress_cb;
    if ((s = dr_eval_stream(ds, m, &so, &res, &e)) != DR_OK) {
        rc = cli_die(s, &e);
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
