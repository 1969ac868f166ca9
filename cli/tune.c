/*
 * tune.c - `dynrec tune`: searches model kinds and their settings within a time budget
 * (dr_tune_run: successive halving, every candidate scored on the validation targets only),
 * prints a line per trial as it finishes, and writes the best model, baselines included, as a
 * checkpoint that records its settings and validation figures.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *tune_help_head =
    "usage: dynrec tune --data PATH --budget MINUTES [--models sasrec,mf,itemknn,pop]\n"
    "                   [--out best.drm] [--trials N] [--protocol loo|given|stream] [--json]\n"
    "  --budget MINUTES     wall clock of the whole command, loading included; it decides how\n"
    "                       far the search gets, never which trials come first\n"
    "  --trials N           stop after N trials (the baselines not counted): with the same\n"
    "                       --seed, the same N gives the same figures and checkpoint bytes\n"
    "  --models LIST        kinds searched, comma-separated (default sasrec,mf,itemknn,pop)\n"
    "  --out FILE           write the best model, baselines included, as a checkpoint; its\n"
    "                       metadata holds tune.settings and its validation figures\n"
    "  --protocol P         loo (P-LOO), given (the source's split: the default when the data\n"
    "                       has one) or stream (needs validation targets before T0)\n"
    "  --json               one JSON object on stdout at the end (trial lines stay on stderr)\n"
    "Search: asynchronous successive halving (ASHA); a candidate in the best third of its\n"
    "rung's results trains on to the next rung's epochs, otherwise a new candidate is drawn.\n"
    "Every trial is scored by NDCG@10 (full ranking, history excluded) on the validation\n"
    "targets; pop and itemknn at their defaults are scored first and compete too. The model\n"
    "options below fix a setting (e.g. --max-len 50, --epochs 30: one rung) or set --seed,\n"
    "--threads, --modalities for every candidate.\n";

typedef struct tune_cli {
    double budget;   /* seconds, 0: none */
    int json;
    FILE *log;       /* trial lines */
} tune_cli;

static void print_space(void) {
    const char *kind, *setting, *values;
    fputs("search space (one row per kind and setting; epochs are the rungs):\n", stdout);
    for (size_t k = 0; (kind = dr_tune_space_at(k, &setting, &values)); k++)
        printf("  %-8s %-9s %s\n", kind, setting, values);
    fputs("  pop      (none)    its defaults only: it is the popularity baseline\n", stdout);
}

static void fmt_left(char *buf, size_t cap, const tune_cli *c, double elapsed) {
    if (c->budget <= 0) {
        snprintf(buf, cap, "-");
        return;
    }
    double left = c->budget - elapsed;
    int s = left > 0 ? (int)left : 0;
    snprintf(buf, cap, "%d:%02d", s / 60, s % 60);
}

static void on_trial(void *ud, const dr_tune_trial *t, const dr_tune_trial *best, double elapsed) {
    const tune_cli *c = ud;
    char id[16] = "-", cand[16] = "-", rung[16] = "-", ep[16] = "-", left[16], set[512];
    if (!t->baseline) {
        snprintf(id, sizeof id, "%u", t->id);
        snprintf(cand, sizeof cand, "%u", t->candidate);
        snprintf(rung, sizeof rung, "%u", t->rung);
    }
    if (t->epochs) snprintf(ep, sizeof ep, "%u", t->epochs);
    fmt_left(left, sizeof left, c, elapsed);
    dr_tune_settings_text(t, set, sizeof set);
    if (t->status != DR_OK)
        fprintf(c->log, "%4s %5s %4s  %-8s %6s  %8s %8s %7.1f %8.4f %6s  %s  failed: %s\n", id,
                cand, rung, t->model, ep, "-", "-", t->seconds, best->valid.full10.ndcg, left,
                set, t->error);
    else
        fprintf(c->log, "%4s %5s %4s  %-8s %6s  %8.4f %8.4f %7.1f %8.4f %6s  %s%s%s\n", id, cand,
                rung, t->model, ep, t->valid.full10.ndcg, t->valid.full10.hit, t->seconds,
                best->valid.full10.ndcg, left, t->baseline ? "(baseline)" : "",
                t->baseline && set[0] ? " " : "", set);
    fflush(c->log);
}

static void json_valid(FILE *f, const dr_eval_result *r) {
    fprintf(f, "{\"n_users\":%u,\"ndcg@10\":%.6f,\"hit@10\":%.6f,\"ndcg@20\":%.6f,\"hit@20\":%.6f}",
            r->n_users, r->full10.ndcg, r->full10.hit, r->full20.ndcg, r->full20.hit);
}

static void json_settings(FILE *f, const dr_tune_trial *t) {
    fputc('{', f);
    for (uint32_t j = 0; j < t->n_settings; j++) {
        double v;
        fprintf(f, "%s", j ? "," : "");
        cli_json_str(f, t->settings[j].name);
        fputc(':', f);
        if (cli_parse_double(t->settings[j].value, &v) == 0) fputs(t->settings[j].value, f);
        else cli_json_str(f, t->settings[j].value);
    }
    fputc('}', f);
}

static void json_trial(FILE *f, const dr_tune_trial *t) {
    fprintf(f, "{\"trial\":%u,\"candidate\":%u,\"rung\":%u,\"model\":", t->id, t->candidate, t->rung);
    cli_json_str(f, t->model);
    fputs(",\"settings\":", f);
    json_settings(f, t);
    fprintf(f, ",\"epochs\":%u,\"valid\":", t->epochs);
    json_valid(f, &t->valid);
    if (t->status != DR_OK) {
        fputs(",\"error\":", f);
        cli_json_str(f, t->error);
    }
    fprintf(f, ",\"seconds\":%.3f}", t->seconds);
}

static void print_json(const dr_tune *tu, const dr_dataset *ds, const char *pname,
                       const dr_model_params *base, const char *out, double seconds) {
    const dr_tune_trial *b = dr_tune_best(tu);
    printf("{\"dataset\":");
    cli_json_str(stdout, dr_dataset_name(ds));
    printf(",\"protocol\":\"%s\",\"metric\":\"ndcg@10\",\"seed\":%llu,\"stopped\":\"%s\","
           "\"best\":{\"model\":", pname, (unsigned long long)base->seed, dr_tune_stopped(tu));
    cli_json_str(stdout, b->model);
    fputs(",\"settings\":", stdout);
    json_settings(stdout, b);
    printf(",\"epochs\":%u,\"trial\":%u,\"valid\":", b->epochs, b->id);
    json_valid(stdout, &b->valid);
    printf("},\"baseline_won\":%s,\"baselines\":{", b->trained ? "false" : "true");
    size_t n = dr_tune_n_trials(tu);
    for (size_t k = 0, nb = 0; k < n; k++) {
        const dr_tune_trial *t = dr_tune_trial_at(tu, k);
        if (!t->baseline) continue;
        printf("%s", nb++ ? "," : "");
        cli_json_str(stdout, t->model);
        putchar(':');
        json_valid(stdout, &t->valid);
    }
    fputs("},\"trials\":[", stdout);
    for (size_t k = 0, nt = 0; k < n; k++) {
        const dr_tune_trial *t = dr_tune_trial_at(tu, k);
        if (t->baseline) continue;
        printf("%s", nt++ ? "," : "");
        json_trial(stdout, t);
    }
    printf("],\"seconds\":%.3f", seconds);
    if (out) {
        fputs(",\"out\":", stdout);
        cli_json_str(stdout, out);
    }
    puts("}");
}

/* The flags of `dynrec train` that give trial t's settings. */
static void train_flags(const dr_tune_trial *t, const char *data, uint64_t seed, char *buf,
                        size_t cap) {
    size_t n = (size_t)snprintf(buf, cap, "--data %s --model %s --seed %llu", data, t->model,
                                (unsigned long long)seed);
    if (t->epochs && n < cap) n += (size_t)snprintf(buf + n, cap - n, " --epochs %u --no-early-stop", t->epochs);
    for (uint32_t j = 0; j < t->n_settings && n < cap; j++)
        n += (size_t)snprintf(buf + n, cap - n, " --%s %s", t->settings[j].name, t->settings[j].value);
}

/* The human summary (stdout) and, when a baseline won, the line that says so (stderr). */
static void print_summary(const dr_tune *tu, const char *pname, const char *data, uint64_t seed,
                          const char *out, double seconds, int json) {
    const dr_tune_trial *b = dr_tune_best(tu), *bt = dr_tune_best_trained(tu);
    char set[512], flags[640];
    size_t n = dr_tune_n_trials(tu), n_search = 0;
    for (size_t k = 0; k < n; k++) n_search += !dr_tune_trial_at(tu, k)->baseline;
    size_t at = b->epochs ? (size_t)snprintf(set, sizeof set, "epochs=%u ", b->epochs) : 0;
    dr_tune_settings_text(b, set + at, sizeof set - at);
    if (!json) {
        const char *why = dr_tune_stop_detail(tu);
        printf("tune: %zu trials in %.1f s (stopped: %s%s%s); %s validation targets of %u users, "
               "NDCG@10 full ranking\n", n_search, seconds, dr_tune_stopped(tu), why[0] ? ": " : "",
               why, pname, b->valid.n_users);
        printf("  best      %-8s valid NDCG@10 %.4f  Hit@10 %.4f  %s%s\n", b->model,
               b->valid.full10.ndcg, b->valid.full10.hit, set[0] ? set : "(defaults)",
               b->baseline ? " (baseline)" : "");
        for (size_t k = 0; k < n; k++) {
            const dr_tune_trial *t = dr_tune_trial_at(tu, k);
            if (t->baseline)
                printf("  baseline  %-8s valid NDCG@10 %.4f  Hit@10 %.4f\n", t->model,
                       t->valid.full10.ndcg, t->valid.full10.hit);
        }
        if (bt && bt != b)
            printf("  trained   %-8s valid NDCG@10 %.4f  Hit@10 %.4f\n", bt->model,
                   bt->valid.full10.ndcg, bt->valid.full10.hit);
    }
    if (b->trained) return;
    if (!bt) {
        fprintf(stderr, "tune: no trained candidate finished (none was searched, or the budget "
                "ran out first): the best is %s%s, a baseline%s%s\n", b->model,
                b->baseline ? " at its defaults" : "", out ? "; written to " : "", out ? out : "");
        return;
    }
    train_flags(bt, data, seed, flags, sizeof flags);
    fprintf(stderr,
            "tune: a baseline beat every trained candidate: %s %s (valid NDCG@10 %.4f) over the "
            "best trained one, %s (%.4f)%s%s%s. dynrec serve needs a trained model: `dynrec train "
            "%s --out FILE` trains one with its settings\n",
            b->model, set[0] ? set : "(defaults)", b->valid.full10.ndcg, bt->model,
            bt->valid.full10.ndcg, out ? "; " : "", out ? out : "", out ? " holds the baseline" : "",
            flags);
}

int cli_cmd_tune(int argc, char **argv) {
    cli_load_opts l = cli_load_defaults();
    cli_model_opts mo = {dr_model_default_params(), NULL};
    dr_tune_params tp = dr_tune_default_params();
    tune_cli c = {0, 0, stderr};
    const char *out = NULL, *protocol = NULL, *budget = NULL, *trials = NULL;
    cli_opts o = {argc, argv, 0};
    for (o.i = 0; o.i < argc; o.i++) {
        const char *a = argv[o.i], *v;
        int err = 0, r;
        if (cli_is_help(a)) {
            fputs(tune_help_head, stdout);
            print_space();
            fputs(cli_model_opts_help, stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) { c.json = 1; continue; }
        if ((v = cli_opt_value(&o, "--out", &err))) { out = v; continue; }
        if ((v = cli_opt_value(&o, "--protocol", &err))) { protocol = v; continue; }
        if ((v = cli_opt_value(&o, "--budget", &err))) { budget = v; continue; }
        if ((v = cli_opt_value(&o, "--trials", &err))) { trials = v; continue; }
        if ((v = cli_opt_value(&o, "--models", &err))) { tp.models = v; continue; }
        if (err) return err;
        if ((r = cli_model_load_opt(&o, &mo, &l)) < 0) return 2;
        if (r == 0) return cli_usage_error("tune: unknown option '%s'", a);
    }
    double minutes = 0;
    uint64_t n_trials = 0;
    if (budget && (cli_parse_double(budget, &minutes) || !(minutes > 0) || minutes > 1e6))
        return cli_usage_error("tune: --budget wants minutes above 0, got '%s'", budget);
    if (trials && (cli_parse_u64(trials, &n_trials) || !n_trials || n_trials > 1000000))
        return cli_usage_error("tune: --trials wants a count from 1, got '%s'", trials);
    if (!budget && !trials) return cli_usage_error("tune: --budget MINUTES (or --trials N) is required");
    if (mo.model) return cli_usage_error("tune: --models (not --model) names the kinds searched");
    dr_split_kind kind = DR_SPLIT_LOO;
    if (protocol && cli_protocol_kind(protocol, &kind))
        return cli_usage_error("tune: unknown --protocol '%s' (loo, given, stream)", protocol);
    const double t_start = cli_now();
    char mods[512];
    cli_default_modalities(&l, &mo, mods, sizeof mods);
    dr_dataset *ds = NULL;
    int rc = cli_load(&l, &ds);
    if (rc) return rc;
    dr_dataset_stats st;
    dr_error e = {0};
    dr_status s = dr_dataset_get_stats(ds, &st);
    if (s != DR_OK) {
        dr_dataset_free(ds);
        return cli_die(s, &e);
    }
    if (!protocol) kind = st.has_given_split ? DR_SPLIT_GIVEN : DR_SPLIT_LOO;
    const char *pname = kind == DR_SPLIT_GIVEN ? "GIVEN" : kind == DR_SPLIT_T0 ? "P-STREAM" : "P-LOO";
    if (!st.has_time)
        fprintf(stderr, "tune: %s has no timestamps: file order carries no time; %s\n",
                dr_dataset_name(ds),
                kind == DR_SPLIT_GIVEN ? "scoring on the source's own validation split"
                                       : "the held-out items are each user's last rows in file order");
    dr_split *sp = NULL;
    dr_tune *tu = NULL;
    if ((s = dr_split_create(ds, kind, &sp, &e)) != DR_OK) {
        rc = cli_die(s, &e);
        goto done;
    }
    tp.base = mo.p;
    tp.max_trials = (uint32_t)n_trials;
    if (budget) { /* the budget counts from the start: loading is part of it */
        const double left = minutes * 60.0 - (cli_now() - t_start);
        tp.budget_seconds = c.budget = left > 0.001 ? left : 0.001;
    }
    tp.on_trial = on_trial;
    tp.on_trial_ud = &c;
    fprintf(stderr, "tune: %s, %s validation targets of %u users, NDCG@10 full ranking; seed %llu%s\n",
            dr_dataset_name(ds), pname, dr_split_n_valid_users(sp), (unsigned long long)mo.p.seed,
            budget ? "" : "; no time budget");
    fprintf(stderr, "%4s %5s %4s  %-8s %6s  %8s %8s %7s %8s %6s  %s\n", "#", "cand", "rung", "model",
            "epochs", "NDCG@10", "Hit@10", "secs", "best", "left", "settings");
    if ((s = dr_tune_run(ds, sp, &tp, &tu, &e)) != DR_OK) {
        rc = cli_die(s, &e);
        goto done;
    }
    if (out && (s = dr_tune_save(tu, ds, sp, out, &e)) != DR_OK) {
        rc = cli_die(s, &e);
        goto done;
    }
    const double seconds = cli_now() - t_start;
    print_summary(tu, pname, l.data, mo.p.seed, out, seconds, c.json);
    if (c.json) print_json(tu, ds, pname, &mo.p, out, seconds);
    else if (out) printf("  wrote %s\n", out);
done:
    dr_tune_free(tu);
    dr_split_free(sp);
    dr_dataset_free(ds);
    return rc;
}
