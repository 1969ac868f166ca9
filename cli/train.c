/*
 * train.c - `dynrec train`: fits a base model (sasrec, mf) under a protocol's training split
 * and writes the checkpoint; with --init, a warm retrain that starts from an older checkpoint
 * (rows matched by external id, dr_model_params.init). Then it ranks the validation targets
 * with the model and with the baselines (pop, itemknn: exact and cheap, docs/BENCH.md) and says
 * so in one line when the model loses to one of them (--no-baselines: not at all).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *train_help_head =
    "usage: dynrec train --model sasrec|mf --data PATH --out model.drm [options]\n"
    "       (pop and itemknn are fitted and saved too: for eval and recommend, not serve)\n"
    "  --protocol loo|stream|given|all  train on P-LOO training prefixes (default; validation\n"
    "                       targets drive early stopping), on P-STREAM's pre-T0 interactions\n"
    "                       (each user's last one validates), on the source's own train split\n"
    "                       (given, P-MODAL), or on every event but each user's last, which\n"
    "                       validates (all: a base to serve; the default with --init)\n"
    "  --out FILE           checkpoint to write (.drm, docs/FORMATS.md)\n"
    "  --init OLD.drm       warm retrain: start from a checkpoint of the same kind (--model\n"
    "                       defaults to its kind, --dim/--max-len/--blocks/--heads to its own\n"
    "                       and must agree when given); users and items are matched by their\n"
    "                       ids: known ones start from their old rows, new ones from the usual\n"
    "                       random initialisation; a fused checkpoint needs the same modalities\n"
    "                       (--features) and keeps its fusion\n"
    "  --no-baselines       skip the comparison with pop and itemknn on the validation targets\n"
    "  --adapter-search on|off  --protocol stream: first choose the online adapter's window\n"
    "                       and rates on the validation stream (the last 10% of the events\n"
    "                       before T0, over a base trained on the 90% before them) and record\n"
    "                       them in the checkpoint, where eval --protocol stream and serve\n"
    "                       read them (default on for sasrec and mf)\n";

static int train_run(cli_model_opts *mop, cli_load_opts *lp, const char *out,
                     const char *protocol, int baselines, int search);

int cli_cmd_train(int argc, char **argv) {
    cli_load_opts l = cli_load_defaults();
    cli_model_opts mo = {dr_model_default_params(), NULL};
    const char *out = NULL, *protocol = NULL, *init = NULL;
    int baselines = 1, search = 1;
    cli_opts o = {argc, argv, 0};
    for (o.i = 0; o.i < argc; o.i++) {
        const char *a = argv[o.i], *v;
        int err = 0, r;
        if (cli_is_help(a)) {
            fputs(train_help_head, stdout);
            fputs(cli_model_opts_help, stdout);
            return 0;
        }
        if (!strcmp(a, "--no-baselines")) { baselines = 0; continue; }
        if ((v = cli_opt_value(&o, "--out", &err))) { out = v; continue; }
        if ((v = cli_opt_value(&o, "--protocol", &err))) { protocol = v; continue; }
        if ((v = cli_opt_value(&o, "--init", &err))) { init = v; continue; }
        if (err) return err;
        if ((r = cli_adapter_search_opt(&o, &search)) < 0) return 2;
        if (r) continue;
        if ((r = cli_model_load_opt(&o, &mo, &l)) < 0) return 2;
        if (r == 0) return cli_usage_error("train: unknown option '%s'", a);
    }
    dr_error e = {0};
    dr_model *im = NULL;
    dr_status s;
    if (init && (s = dr_model_load(init, &im, &e)) != DR_OK) return cli_die(s, &e);
    if (im && !mo.model) mo.model = dr_model_name(im);
    if (im)
        fprintf(stderr, "train: warm start from %s (%s, %u users, %u items; matched by id)\n",
                init, dr_model_name(im), dr_model_n_users(im), dr_model_n_items(im));
    mo.p.init = im;
    if (!protocol) protocol = im ? "all" : "loo"; /* a warm retrain makes a base to serve */
    int rc = train_run(&mo, &l, out, protocol, baselines, search);
    dr_model_free(im);
    return rc;
}

/* The model's validation figures beside the baselines' on the same users (stderr), and one
 * line when it loses to one of them. */
static int compare_baselines(const dr_dataset *ds, const dr_split *sp, const dr_model *m,
                             const char *protocol, int threads) {
    const uint32_t n_valid = dr_split_n_valid_users(sp);
    if (!n_valid) {
        fprintf(stderr, "train: the %s split has no validation targets: not compared with the "
                "baselines\n", protocol);
        return 0;
    }
    dr_eval_params ep = dr_eval_default_params();
    ep.threads = threads;
    ep.which = 1;
    dr_eval_result r, b[DR_BASELINES];
    dr_error e = {0};
    dr_status s;
    if ((s = dr_eval_split(ds, sp, m, &ep, &r, &e)) != DR_OK ||
        (s = dr_eval_baselines(ds, sp, &ep, b, &e)) != DR_OK)
        return cli_die(s, &e);
    const char *name = dr_model_name(m);
    fprintf(stderr, "train: validation targets of %u users, full ranking:  NDCG@10  Hit@10\n",
            r.n_users);
    fprintf(stderr, "  %-10s %8.4f %7.4f\n", name, r.full10.ndcg, r.full10.hit);
    size_t top = 0;
    for (size_t k = 0; k < DR_BASELINES; k++) {
        fprintf(stderr, "  %-10s %8.4f %7.4f  (baseline)\n", dr_baseline_name(k), b[k].full10.ndcg,
                b[k].full10.hit);
        if (b[k].full10.ndcg > b[top].full10.ndcg) top = k;
    }
    if (r.full10.ndcg < b[top].full10.ndcg)
        fprintf(stderr, "train: warning: %s's validation NDCG@10 %.4f is below %s's %.4f on the "
                "same %u users\n", name, r.full10.ndcg, dr_baseline_name(top), b[top].full10.ndcg,
                r.n_users);
    return 0;
}

/* The split; a warm retrain validates on events its init was not trained on (a target the init
 * has seen would favour the epochs that keep its fit, not those that learn the new events).
 * When no user has such an event, the split stays as it is, and train says so. */
static int warm_split(const dr_dataset *ds, dr_split_kind kind, const dr_model *init, dr_split **sp) {
    dr_error e = {0};
    dr_status s = dr_split_create(ds, kind, sp, &e);
    if (s != DR_OK) return cli_die(s, &e);
    uint32_t before = dr_split_n_valid_users(*sp), kept = 0;
    if (!init || !before || !dr_model_n_users(init)) return 0;
    if ((s = dr_split_unseen_valid(*sp, ds, init, &kept, &e)) != DR_OK) return cli_die(s, &e);
    if (kept) {
        fprintf(stderr, "train: warm retrain: validating on the %u of %u users whose last event "
                "the init has not seen\n", kept, before);
        return 0;
    }
    fprintf(stderr, "train: note: every validation target is an event the init was trained on "
            "(no new events): validating on them\n");
    dr_split_free(*sp);
    *sp = NULL;
    if ((s = dr_split_create(ds, kind, sp, &e)) != DR_OK) return cli_die(s, &e);
    return 0;
}

/* The rest of `dynrec train` once the options (and the --init model) are known. */
static int train_run(cli_model_opts *mop, cli_load_opts *lp, const char *out,
                     const char *protocol, int baselines, int search) {
    cli_model_opts mo = *mop;
    cli_load_opts l = *lp;
    if (!mo.model || !out) return cli_usage_error("train: --model (or --init) and --out are required");
    char kinds[256] = "";
    int saves, known = 0;
    const char *kn;
    for (size_t k = 0; (kn = dr_model_kind_at(k, &saves)); k++) { /* kinds with checkpoints */
        if (!saves) continue;
        if (!strcmp(kn, mo.model)) known = 1;
        snprintf(kinds + strlen(kinds), sizeof kinds - strlen(kinds), "%s%s", *kinds ? " or " : "", kn);
    }
    if (!known) return cli_usage_error("train: --model must be %s", kinds);
    dr_split_kind kind;
    if (cli_protocol_kind(protocol, &kind))
        return cli_usage_error("train: unknown --protocol '%s' (loo, stream, given, all)", protocol);
    char mods[512];
    cli_default_modalities(&l, &mo, mods, sizeof mods);
    dr_dataset *ds = NULL;
    int rc = cli_load(&l, &ds);
    if (rc) return rc;
    dr_error e = {0};
    dr_dataset_stats st;
    if (dr_dataset_get_stats(ds, &st) == DR_OK && !st.has_time)
        fprintf(stderr, "train: note: %s: %s\n", dr_dataset_name(ds), cli_no_time_note(&st));
    dr_split *sp = NULL;
    dr_model *m = NULL;
    double t0 = cli_now();
    dr_adapter_choice ch;
    dr_stream_options so = dr_stream_default_options();
    search = search && kind == DR_SPLIT_T0 && (!strcmp(mo.model, "sasrec") || !strcmp(mo.model, "mf"));
    if (search && !mo.p.init) rc = cli_choose_adapter(ds, &mo, &so, &ch);
    else if (search) { /* a warm retrain keeps the choice its init made */
        search = 0;
        fprintf(stderr, "train: a warm retrain keeps the adapter's settings its init recorded\n");
    }
    if (!rc) rc = warm_split(ds, kind, mo.p.init, &sp);
    if (!rc) rc = cli_get_model(ds, sp, &mo, &m);
    double t = cli_now() - t0;
    dr_status s;
    if (!rc && search && (s = dr_model_set_adapter_choice(m, &ch, &e)) != DR_OK) rc = cli_die(s, &e);
    if (!rc && mo.p.init && (s = dr_model_copy_adapter_choice(m, mo.p.init, &e)) != DR_OK)
        rc = cli_die(s, &e);
    if (!rc && (s = dr_model_save(m, ds, sp, out, &e)) != DR_OK) rc = cli_die(s, &e);
    if (!rc)
        fprintf(stderr, "train: %s on %s (%s) in %.1f s -> %s\n", mo.model, dr_dataset_name(ds),
                protocol, t, out);
    if (!rc && baselines) rc = compare_baselines(ds, sp, m, protocol, mo.p.threads);
    dr_model_free(m);
    dr_split_free(sp);
    dr_dataset_free(ds);
    return rc;
}
