/*
 * recommend.c - `dynrec recommend`: the top-k items for one user from a checkpoint (or a model
 * fitted by name), optionally with an explanation per item.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *recommend_help =
    "usage: dynrec recommend --model FILE --user ID [-k 10] [--data PATH] [--json]\n"
    "                        [--explain [generator options, see dynrec explain --help]]\n"
    "       dynrec recommend --model pop|itemknn --data PATH --user ID [-k 10]\n"
    "  Ranks every item for the user's whole history, history items excluded. A checkpoint\n"
    "  carries the ids and histories it was trained with; --data adds titles and attributes\n"
    "  (and must have the same item catalogue). A model name is fitted on the P-LOO training\n"
    "  prefixes of --data first.\n";

int cli_recommend_for(const dr_dataset *ds, const dr_model *m, uint32_t u, size_t k,
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
        cli_json_str(out, uid);
        fprintf(out, ",\"model\":");
        cli_json_str(out, dr_model_name(m));
        fprintf(out, ",\"items\":[");
        for (size_t j = 0; j < got; j++) {
            fprintf(out, "%s{\"item\":", j ? "," : "");
            cli_json_str(out, ds ? dr_dataset_item_id(ds, rec[j].item) : dr_model_item_id(m, rec[j].item));
            fprintf(out, ",\"title\":");
            cli_json_str(out, ds ? dr_dataset_item_title(ds, rec[j].item)
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
            if (xs) cli_explain_print(out, xr, &ex, "       ");
        }
    }
    s = DR_OK;
done:
    dr_scorer_free(sc);
    free(rec);
    return s == DR_OK ? 0 : cli_die(s, &e);
}

int cli_cmd_recommend(int argc, char **argv) {
    cli_load_opts l = cli_load_defaults();
    cli_model_opts mo = {dr_model_default_params(), NULL};
    const char *user = NULL;
    uint64_t k = 10;
    int json = 0, explain = 0;
    cli_explain_opts xo = {dr_explain_default_params()};
    cli_opts o = {argc, argv, 0};
    for (o.i = 0; o.i < argc; o.i++) {
        const char *a = argv[o.i], *v;
        int err = 0, r;
        if (cli_is_help(a)) {
            fputs(recommend_help, stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "--explain")) { explain = 1; continue; }
        if ((r = cli_explain_opt(&o, &xo)) < 0) return 2;
        if (r) continue;
        if ((v = cli_opt_value(&o, "--user", &err))) { user = v; continue; }
        if ((v = cli_opt_value(&o, "-k", &err))) {
            if (cli_parse_u64(v, &k) || k == 0 || k > 10000) return cli_usage_error("bad -k '%s' (1..10000)", v);
            continue;
        }
        if (err) return err;
        if ((r = cli_model_load_opt(&o, &mo, &l)) < 0) return 2;
        if (r == 0) return cli_usage_error("recommend: unknown option '%s'", a);
    }
    if (!mo.model || !user) return cli_usage_error("recommend: --model and --user are required");
    int from_file = cli_is_checkpoint_path(mo.model);
    if (!from_file && !l.data) return cli_usage_error("recommend: a model name needs --data");
    dr_dataset *ds = NULL;
    int rc = l.data ? cli_load(&l, &ds) : 0;
    if (rc) return rc;
    dr_error e = {0};
    dr_split *sp = NULL;
    dr_model *m = NULL;
    dr_status s = DR_OK;
    if (!from_file && (s = dr_split_create(ds, DR_SPLIT_LOO, &sp, &e)) != DR_OK) rc = cli_die(s, &e);
    mo.p.on_epoch = NULL;
    if (!rc) rc = cli_get_model(ds, sp, &mo, &m);
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
    if (!rc && explain && !from_file) rc = cli_usage_error("recommend: --explain needs a checkpoint");
    xo.p.data = ds;
    if (!rc && explain) rc = cli_explain_open(m, &xo, &xr, &xs);
    if (!rc) rc = cli_recommend_for(ds, m, u, (size_t)k, json, stdout, xs, xr);
    dr_explain_session_free(xs);
    dr_explainer_free(xr);
    dr_model_free(m);
    dr_split_free(sp);
    dr_dataset_free(ds);
    return rc;
}
