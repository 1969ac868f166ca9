/*
 * modal.c - `dynrec eval --protocol modal`: P-MODAL of ../shared/PROTOCOL.md on a fusion model,
 * one setting (--drop NAME=P,... --impute gate|mean) or the whole robustness table (--sweep).
 * The work is the library's dr_eval_modal / dr_eval_modal_sweep; this file parses and prints.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *modal_help =
    "usage: dynrec eval --protocol modal --data DIR --model mf|FILE [--drop NAME=P,...]\n"
    "                   [--impute gate|mean] [--sweep] [--valid] [--json]\n"
    "  P-MODAL: the source's own split (train / valid / test; P-LOO's when the data has none),\n"
    "  full ranking, Recall@20, NDCG@20 and Hit@10, and the same on cold items (no training\n"
    "  event) when there are any. A model name is trained here (--model mf --modalities all).\n"
    "  --drop NAME=P,...    remove modality NAME for a fraction P of the items (uniform, seed 42)\n"
    "  --impute gate|mean   a removed feature closes its gate (gate, default) or is replaced\n"
    "                       by the modality mean (mean imputation baseline)\n"
    "  --sweep              the robustness table: each modality removed alone for P in\n"
    "                       {0, 0.25, 0.5, 1}, gate and mean, with the change against P = 0\n"
    "  --valid              validation targets instead of test targets\n"
    "  --json               one JSON object on stdout\n";

static void json_metrics(const dr_eval_result *r) {
    printf("{\"recall@20\":%.6f,\"ndcg@20\":%.6f,\"hit@10\":%.6f}", r->full20.recall,
           r->full20.ndcg, r->full10.hit);
}

static double rel(double a, double z) { return z > 0 ? a / z - 1.0 : 0.0; }

static void print_cold(const dr_eval_result *r) {
    if (!r->n_cold_users) return;
    printf("  cold items (%u, no training event; %u users with such a target): Recall@20 %.4f  "
           "NDCG@20 %.4f  Hit@10 %.4f\n", r->n_cold_items, r->n_cold_users, r->cold20.recall,
           r->cold20.ndcg, r->cold10.hit);
}

static void print_sweep(const dr_dataset *ds, const char *model, const dr_modal_sweep *sw,
                        int json) {
    static const char *const imp[2] = {"gate", "mean"};
    if (json) {
        printf("{\"protocol\":\"P-MODAL\",\"dataset\":");
        cli_json_str(stdout, dr_dataset_name(ds));
        printf(",\"model\":");
        cli_json_str(stdout, model);
        printf(",\"sweep\":[");
        int first = 1;
        for (int r = 0; r < 2; r++)
            for (uint32_t k = 0; k < sw->n_mod; k++)
                for (int j = 0; j < DR_MODAL_SWEEP_P; j++) {
                    const dr_eval_result *a = &sw->r[r][k][j], *z = &sw->r[r][k][0];
                    printf("%s{\"drop\":{", first ? "" : ",");
                    first = 0;
                    cli_json_str(stdout, sw->name[k]);
                    printf(":%g},\"impute\":\"%s\",\"modal\":", sw->p[j], imp[r]);
                    json_metrics(a);
                    printf(",\"relative\":{\"recall@20\":%.6f,\"ndcg@20\":%.6f,\"hit@10\":%.6f}}",
                           rel(a->full20.recall, z->full20.recall),
                           rel(a->full20.ndcg, z->full20.ndcg), rel(a->full10.hit, z->full10.hit));
                }
        printf("]}\n");
        return;
    }
    printf("P-MODAL robustness  dataset=%s  model=%s  (removed for a fraction p of items, "
           "seed 42; change against p = 0)\n", dr_dataset_name(ds), model);
    printf("  %-8s %-8s %5s %10s %10s %10s %9s %9s %9s\n", "impute", "removed", "p", "Recall@20",
           "NDCG@20", "Hit@10", "dR@20", "dN@20", "dH@10");
    for (int r = 0; r < 2; r++)
        for (uint32_t k = 0; k < sw->n_mod; k++)
            for (int j = 0; j < DR_MODAL_SWEEP_P; j++) {
                const dr_eval_result *a = &sw->r[r][k][j], *z = &sw->r[r][k][0];
                printf("  %-8s %-8s %5.2f %10.4f %10.4f %10.4f %+8.2f%% %+8.2f%% %+8.2f%%\n",
                       imp[r], sw->name[k], sw->p[j], a->full20.recall, a->full20.ndcg,
                       a->full10.hit, 100 * rel(a->full20.recall, z->full20.recall),
                       100 * rel(a->full20.ndcg, z->full20.ndcg),
                       100 * rel(a->full10.hit, z->full10.hit));
            }
}

int cli_cmd_eval_modal(int argc, char **argv) {
    cli_load_opts l = cli_load_defaults();
    cli_model_opts mo = {dr_model_default_params(), NULL};
    dr_modal_params mp = dr_modal_default_params();
    const char *drop = NULL, *impute = "gate";
    int json = 0, sweep = 0;
    dr_error e = {0};
    cli_opts o = {argc, argv, 0};
    for (o.i = 0; o.i < argc; o.i++) {
        const char *a = argv[o.i], *v;
        int err = 0, r;
        if (cli_is_help(a)) {
            fputs(modal_help, stdout);
            fputs(cli_model_opts_help, stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "--sweep")) { sweep = 1; continue; }
        if (!strcmp(a, "--valid")) { mp.which = 1; continue; }
        if ((v = cli_opt_value(&o, "--protocol", &err))) continue;
        if ((v = cli_opt_value(&o, "--drop", &err))) { drop = v; continue; }
        if (err) return err;
        if ((r = cli_model_load_opt(&o, &mo, &l)) < 0) return 2;
        if (r == 0) return cli_usage_error("eval: unknown option '%s'", a);
    }
    if (!mo.model) return cli_usage_error("eval: --model is required (mf or a checkpoint)");
    /* --impute is a model option (training); here it also picks the inference mode */
    if (mo.p.impute) impute = mo.p.impute;
    if (strcmp(impute, "gate") && strcmp(impute, "mean"))
        return cli_usage_error("eval: --impute must be gate or mean (got '%s')", impute);
    if (drop && dr_modal_parse_drop(drop, &mp, &e) != DR_OK) return cli_usage_error("%s", e.msg);
    if (sweep && drop) return cli_usage_error("eval: --sweep and --drop exclude each other");
    char mods[512];
    cli_default_modalities(&l, &mo, mods, sizeof mods);
    if (cli_is_checkpoint_path(mo.model)) mo.p.impute = NULL;
    mp.threads = mo.p.threads;
    mp.impute = impute;
    dr_dataset *ds = NULL;
    int rc = cli_load(&l, &ds);
    if (rc) return rc;
    dr_split *sp = NULL;
    dr_model *m = NULL;
    dr_modal_sweep *sw = NULL;
    dr_eval_result res;
    dr_dataset_stats stats;
    dr_dataset_get_stats(ds, &stats); /* the source's split when it has one, else P-LOO's */
    dr_status s;
    if ((rc = cli_split_model(ds, stats.has_given_split ? DR_SPLIT_GIVEN : DR_SPLIT_LOO, &mo, &sp,
                              &m)))
        goto done;
    if (sweep) {
        if (!(sw = calloc(1, sizeof *sw))) {
            rc = cli_die(DR_NOMEM, NULL);
            goto done;
        }
        if ((s = dr_eval_modal_sweep(ds, sp, m, &mp, sw, &e)) != DR_OK) {
            rc = cli_die(s, &e);
            goto done;
        }
        print_sweep(ds, mo.model, sw, json);
        goto done;
    }
    if ((s = dr_eval_modal(ds, sp, m, &mp, &res, &e)) != DR_OK) {
        rc = cli_die(s, &e);
        goto done;
    }
    if (json) {
        printf("{\"protocol\":\"P-MODAL\",\"dataset\":");
        cli_json_str(stdout, dr_dataset_name(ds));
        printf(",\"model\":");
        cli_json_str(stdout, mo.model);
        printf(",\"drop\":{");
        for (uint32_t k = 0; k < mp.n_drop; k++) {
            if (k) putchar(',');
            cli_json_str(stdout, mp.drop_name[k]);
            printf(":%g", mp.drop_p[k]);
        }
        printf("},\"impute\":\"%s\",\"modal\":", impute);
        json_metrics(&res);
        /* what a model trained here fuses ("none": ids only), for bench/plots.sh's reference
         * line; a checkpoint's fusion is not named by the public API, so it is left out */
        if (!cli_is_checkpoint_path(mo.model)) {
            printf(",\"modalities\":");
            cli_json_str(stdout, mo.p.modalities ? mo.p.modalities : "none");
        }
        printf("}\n");
    } else {
        printf("P-MODAL  dataset=%s  model=%s  users=%u  targets=%s  impute=%s  drop=%s\n",
               dr_dataset_name(ds), mo.model, res.n_users, mp.which ? "validation" : "test",
               impute, drop ? drop : "none");
        printf("  Recall@20 %.4f  NDCG@20 %.4f  Hit@10 %.4f\n", res.full20.recall,
               res.full20.ndcg, res.full10.hit);
        print_cold(&res);
    }
done:
    free(sw);
    dr_model_free(m);
    dr_split_free(sp);
    dr_dataset_free(ds);
    return rc;
}
