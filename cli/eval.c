/*
 * eval.c - `dynrec eval`: evaluates a model under P-LOO (or the source's given split), full
 * ranking and sampled-100; the protocols with options of their own (stream, modal, explain)
 * are handed to their files.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *eval_help_head =
    "usage: dynrec eval --protocol loo --model NAME|FILE --data PATH [--json]\n"
    "       dynrec eval --protocol stream ... (see dynrec eval --protocol stream --help)\n"
    "       dynrec eval --protocol llm ... (P-LLM, see dynrec eval --protocol llm --help)\n"
    "  --protocol loo   P-LOO of ../shared/PROTOCOL.md (given: the source's own split)\n"
    "  --data PATH      dataset folder or file (see dynrec data stats --help)\n"
    "  --valid          evaluate on the validation targets instead of the test targets\n"
    "  --json           one JSON object on stdout\n"
    "  With a model name the model is fitted on the training prefixes first.\n";

int cli_run_eval(dr_dataset *ds, dr_split_kind kind, cli_model_opts *mo, int which,
                 dr_eval_result *res) {
    dr_error e = {0};
    dr_split *sp = NULL;
    dr_model *m = NULL;
    int rc = cli_split_model(ds, kind, mo, &sp, &m);
    if (rc) {
        dr_split_free(sp);
        return rc;
    }
    dr_eval_params ep = dr_eval_default_params();
    ep.threads = mo->p.threads;
    ep.which = which;
    ep.progress = cli_progress_cb;
    dr_status s = dr_eval_split(ds, sp, m, &ep, res, &e);
    dr_model_free(m);
    dr_split_free(sp);
    return s == DR_OK ? 0 : cli_die(s, &e);
}

void cli_print_eval_human(const char *protocol, const dr_dataset *ds, const char *model,
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

int cli_cmd_eval(int argc, char **argv) {
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } own[] = {{"stream", cli_cmd_eval_stream}, {"modal", cli_cmd_eval_modal}, {"explain", cli_cmd_eval_explain}, {"llm", cli_cmd_eval_llm}};
    for (int k = 0; k < argc; k++) /* protocols with options of their own */
        for (size_t j = 0; j < sizeof own / sizeof own[0]; j++)
            if ((!strcmp(argv[k], "--protocol") && k + 1 < argc && !strcmp(argv[k + 1], own[j].name)) ||
                (!strncmp(argv[k], "--protocol=", 11) && !strcmp(argv[k] + 11, own[j].name)))
                return own[j].run(argc, argv);
    cli_load_opts l = cli_load_defaults();
    cli_model_opts mo = {dr_model_default_params(), NULL};
    const char *protocol = NULL;
    int json = 0, which = 0;
    cli_opts o = {argc, argv, 0};
    for (o.i = 0; o.i < argc; o.i++) {
        const char *a = argv[o.i], *v;
        int err = 0, r;
        if (cli_is_help(a)) {
            fputs(eval_help_head, stdout);
            fputs(cli_model_opts_help, stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "--valid")) { which = 1; continue; }
        if ((v = cli_opt_value(&o, "--protocol", &err))) { protocol = v; continue; }
        if (err) return err;
        if ((r = cli_model_load_opt(&o, &mo, &l)) < 0) return 2;
        if (r == 0) return cli_usage_error("eval: unknown option '%s'", a);
    }
    if (!protocol) return cli_usage_error("eval: --protocol is required (loo, stream, given)");
    dr_split_kind kind;
    const char *pname;
    if (!strcmp(protocol, "loo")) kind = DR_SPLIT_LOO, pname = "P-LOO";
    else if (!strcmp(protocol, "given")) kind = DR_SPLIT_GIVEN, pname = "GIVEN";
    else return cli_usage_error("eval: unknown --protocol '%s' (loo, stream, given)", protocol);
    if (!mo.model) return cli_usage_error("eval: --model is required (pop, itemknn, sasrec, mf or a file)");
    dr_dataset *ds = NULL;
    int rc = cli_load(&l, &ds);
    if (rc) return rc;
    dr_eval_result r;
    rc = cli_run_eval(ds, kind, &mo, which, &r);
    if (rc) {
        dr_dataset_free(ds);
        return rc;
    }
    if (json) {
        printf("{\"protocol\":\"%s\",\"dataset\":", pname);
        cli_json_str(stdout, dr_dataset_name(ds));
        printf(",\"model\":");
        cli_json_str(stdout, mo.model);
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
        cli_print_eval_human(pname, ds, mo.model, &r, which);
    }
    dr_dataset_free(ds);
    return 0;
}
