/*
 * demo.c - `dynrec demo`: synthesises a dataset, evaluates the baselines, trains and reloads
 * mf and sasrec, fuses item features, recommends from a checkpoint, runs P-STREAM and prints a
 * summary.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cblas.h>

#include "cli.h"

static const char *demo_help =
    "usage: dynrec demo [--out DIR] [--seed S]\n"
    "  Synthesises a dataset with drifting tastes, new items and three modalities, writes it\n"
    "  to DIR (default build/demo-data), loads it back, evaluates the baselines under P-LOO,\n"
    "  trains BPR-MF and SASRec, saves and reloads their checkpoints, evaluates them,\n"
    "  recommends from a checkpoint alone and prints a summary.\n";

/* Options of a short schedule (the demo runs in about a minute): at most `epochs` epochs,
 * validated every `eval_every`, patience 2, the 50 most recent items, 32 dimensions. */
static cli_model_opts short_schedule(const char *model, uint32_t epochs, uint32_t eval_every) {
    cli_model_opts mo = {dr_model_default_params(), model};
    mo.p.epochs = epochs;
    mo.p.eval_every = eval_every;
    mo.p.patience = 2;
    mo.p.max_len = 50;
    mo.p.dim = 32;
    return mo;
}

int cli_cmd_demo(int argc, char **argv) {
    const char *out = "build/demo-data";
    uint64_t seed = 7;
    cli_opts o = {argc, argv, 0};
    for (o.i = 0; o.i < argc; o.i++) {
        const char *v;
        int err = 0;
        if (cli_is_help(argv[o.i])) {
            fputs(demo_help, stdout);
            return 0;
        }
        if ((v = cli_opt_value(&o, "--out", &err))) { out = v; continue; }
        if ((v = cli_opt_value(&o, "--seed", &err))) {
            if (cli_parse_u64(v, &seed)) return cli_usage_error("bad --seed '%s'", v);
            continue;
        }
        if (err) return err;
        return cli_usage_error("demo: unknown option '%s'", argv[o.i]);
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
    if (s != DR_OK) return cli_die(s, &e);
    printf("   written to %s\n", out);

    printf("== 2. load it back and describe it\n");
    cli_load_opts l = cli_load_defaults();
    l.data = out;
    int rc = cli_load(&l, &ds);
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
        cli_model_opts mo = {dr_model_default_params(), models[k]};
        if ((rc = cli_run_eval(ds, DR_SPLIT_LOO, &mo, 0, &res[k]))) goto done;
        cli_print_eval_human("P-LOO", ds, models[k], &res[k], 0);
    }

    printf("== 4. train the base models once (early stopping on validation NDCG@10), "
           "save, reload, evaluate\n");
    for (int k = 2; k < N_MODELS; k++) {
        dr_split *spl = NULL;
        dr_model *m = NULL;
        cli_model_opts mo = short_schedule(models[k], k == 3 ? 30 : 60, k == 3 ? 3 : 5);
        mo.p.on_epoch = cli_epoch_cb;
        snprintf(ckpt[k], sizeof ckpt[k], "%s/../demo-%s.drm", out, models[k]);
        printf("   training %s ...\n", models[k]);
        fflush(stdout);
        if ((rc = cli_split_model(ds, DR_SPLIT_LOO, &mo, &spl, &m)) == 0)
            s = dr_model_save(m, ds, spl, ckpt[k], &e);
        dr_model_free(m);
        dr_split_free(spl);
        if (!rc && s != DR_OK) rc = cli_die(s, &e);
        if (rc) goto done;
        printf("   saved %s\n", ckpt[k]);
        cli_model_opts from_file = {dr_model_default_params(), ckpt[k]};
        if ((rc = cli_run_eval(ds, DR_SPLIT_LOO, &from_file, 0, &res[k]))) goto done;
        cli_print_eval_human("P-LOO", ds, models[k], &res[k], 0);
    }

    printf("== 4b. gated fusion of the item features (image, audio, text): SASRec with every "
           "modality, and with the image features removed from every item at inference\n");
    dr_eval_result fused[2];
    char fused_ckpt[4200];
    {
        dr_split *spl = NULL;
        dr_model *m = NULL;
        cli_model_opts mo = short_schedule("sasrec", 30, 3); /* step 4's schedule */
        mo.p.modalities = "all";
        mo.p.on_epoch = NULL;
        dr_modal_params mp = dr_modal_default_params();
        if ((rc = cli_split_model(ds, DR_SPLIT_LOO, &mo, &spl, &m)) == 0) {
            s = dr_eval_modal(ds, spl, m, &mp, &fused[0], &e);
            if (s == DR_OK) s = dr_modal_parse_drop("visual=1", &mp, &e);
            if (s == DR_OK) s = dr_eval_modal(ds, spl, m, &mp, &fused[1], &e);
            /* the fused checkpoint the demo serves to show PUT features at work */
            snprintf(fused_ckpt, sizeof fused_ckpt, "%s/../demo-sasrec-fused.drm", out);
            if (s == DR_OK) s = dr_model_save(m, ds, spl, fused_ckpt, &e);
        }
        dr_model_free(m);
        dr_split_free(spl);
        if (!rc && s != DR_OK) rc = cli_die(s, &e);
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
            rc = cli_die(s, &e);
            goto done;
        }
        rc = cli_recommend_for(NULL, m, u, 5, 0, stdout, NULL, NULL);
        dr_model_free(m);
        if (rc) goto done;
    }

    printf("== 6. P-STREAM: a base frozen at T0 vs the same base + online adapter, replaying "
           "the last 20%% of events (drifting tastes, new items)\n");
    dr_stream_result sr;
    {
        dr_split *spl = NULL;
        dr_model *m = NULL;
        cli_model_opts mo = {dr_model_default_params(), "mf"};
        mo.p.epochs = 60;
        mo.p.on_epoch = NULL;
        dr_stream_options so = dr_stream_default_options();
        so.progress = cli_progress_cb;
        openblas_set_num_threads(1);
        dr_adapter_choice ch; /* the adapter's settings, chosen before T0 (never on the replay) */
        mo.p.name = mo.model;
        if ((s = dr_stream_choose_adapter(ds, &mo.p, &so, NULL, NULL, &ch, &e)) != DR_OK) {
            rc = cli_die(s, &e);
            goto done;
        }
        printf("   adapter chosen on the validation stream (the last 10%% of the events before "
               "T0, %u settings tried): window %u, lr %.3g, lr_item %.3g; validation Hit@10 "
               "%.4f vs frozen %.4f\n", ch.n_trials, ch.best.window, (double)ch.best.lr,
               (double)ch.best.lr_item, ch.best.hit10, ch.frozen_hit10);
        if ((rc = cli_split_model(ds, DR_SPLIT_T0, &mo, &spl, &m)) == 0 &&
            (s = dr_model_set_adapter_choice(m, &ch, &e)) == DR_OK) {
            dr_stream_options_from_model(&so, m);
            s = dr_eval_stream(ds, m, &so, &sr, &e);
        }
        dr_model_free(m);
        dr_split_free(spl);
        if (!rc && s != DR_OK) rc = cli_die(s, &e);
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
