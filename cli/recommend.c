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
    "                        [--rerank llm --llm X.gguf [--align M.align] [--top N]]\n"
    "       dynrec recommend --model pop|itemknn --data PATH --user ID [-k 10]\n"
    "  Ranks every item for the user's whole history, history items excluded. A checkpoint\n"
    "  carries the ids and histories it was trained with; --data adds titles and attributes\n"
    "  (and must have the same item catalogue). A model name is fitted on the P-LOO training\n"
    "  prefixes of --data first.\n"
    "  --rerank llm: the base's top N (20) reordered by base + lambda * LLM score, the LLM\n"
    "  score being the length-normalised log-likelihood of each title after the user's\n"
    "  history (and soft tokens, with --align; lambda is the one stored with the alignment).\n";

/* --rerank llm: prints the reordered top k. */
static int recommend_rerank(const dr_dataset *ds, const dr_model *m, uint32_t u, size_t k,
                            int json, const char *llm, const char *alp, uint32_t n_top) {
    dr_rec rec[128], base[128];
    float ls[128], lambda = 0;
    uint32_t got = 0;
    if (n_top < k) n_top = (uint32_t)k;
    if (n_top > 128) return cli_usage_error("recommend: --top and -k must be at most 128 with --rerank");
    int rc = cli_llm_rerank(ds, m, u, llm, alp, n_top, rec, &got, ls, &lambda);
    if (rc) return rc;
    memcpy(base, rec, got * sizeof *rec);
    for (uint32_t j = 0; j < got; j++) rec[j].score = base[j].score + lambda * ls[j];
    uint32_t pos[128];
    for (uint32_t j = 0; j < got; j++) pos[j] = j;
    /* order positions by the combined score (ties: base order) */
    for (uint32_t a = 1; a < got; a++)
        for (uint32_t b = a; b > 0 && rec[pos[b]].score > rec[pos[b - 1]].score; b--) {
            uint32_t t = pos[b];
            pos[b] = pos[b - 1], pos[b - 1] = t;
        }
    const char *uid = dr_model_n_users(m) ? dr_model_user_id(m, u) : dr_dataset_user_id(ds, u);
    if (json) {
        printf("{\"user\":");
        cli_json_str(stdout, uid);
        printf(",\"model\":");
        cli_json_str(stdout, dr_model_name(m));
        printf(",\"rerank\":\"llm\",\"llm\":");
        cli_json_str(stdout, llm);
        printf(",\"soft_tokens\":%s,\"lambda\":%g,\"items\":[", alp ? "true" : "false", lambda);
    } else {
        printf("  recommendations for user %s (%s, top %u reranked by base + %g * LLM; %s):\n",
               uid, dr_model_name(m), got, lambda, llm);
    }
    for (size_t j = 0; j < k && j < got; j++) {
        uint32_t p = pos[j], it = rec[p].item;
        const char *iid = ds ? dr_dataset_item_id(ds, it) : dr_model_item_id(m, it);
        const char *title = ds ? dr_dataset_item_title(ds, it) : dr_model_item_title(m, it);
        if (json) {
            printf("%s{\"item\":", j ? "," : "");
            cli_json_str(stdout, iid);
            printf(",\"title\":");
            cli_json_str(stdout, title);
            printf(",\"score\":%.6g,\"base\":%.6g,\"llm\":%.6g,\"base_rank\":%u}", rec[p].score,
                   base[p].score, ls[p], p + 1);
        } else {
            printf("   %2zu. %-8s %-34.34s score %8.4f  base %8.4f (#%u)  llm %8.4f\n", j + 1, iid,
                   title, rec[p].score, base[p].score, p + 1, ls[p]);
        }
    }
    if (json) printf("]}\n");
    return 0;
}

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
    const char *rerank = NULL, *llm = NULL, *alp = NULL;
    uint64_t top = 20;
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
        if ((v = cli_opt_value(&o, "--rerank", &err))) { rerank = v; continue; }
        if ((v = cli_opt_value(&o, "--align", &err))) { alp = v; continue; }
        if ((v = cli_opt_value(&o, "--top", &err))) {
            if (cli_parse_u64(v, &top) || top == 0 || top > 128) return cli_usage_error("bad --top '%s' (1..128)", v);
            continue;
        }
        if ((v = cli_opt_value(&o, "-k", &err))) {
            if (cli_parse_u64(v, &k) || k == 0 || k > 10000) return cli_usage_error("bad -k '%s' (1..10000)", v);
            continue;
        }
        if (err) return err;
        if ((r = cli_model_load_opt(&o, &mo, &l)) < 0) return 2;
        if (r == 0) return cli_usage_error("recommend: unknown option '%s'", a);
    }
    if (!mo.model || !user) return cli_usage_error("recommend: --model and --user are required");
    if (rerank && strcmp(rerank, "llm")) return cli_usage_error("recommend: --rerank takes 'llm'");
    llm = xo.p.llm_model; /* --llm is the generator options' (one GGUF for both) */
    if (rerank && !llm) return cli_usage_error("recommend: --rerank llm needs --llm X.gguf");
    if (rerank && explain) return cli_usage_error("recommend: --rerank and --explain do not combine yet");
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
    if (!rc && rerank) rc = recommend_rerank(ds, m, u, (size_t)k, json, llm, alp, (uint32_t)top);
    else if (!rc) rc = cli_recommend_for(ds, m, u, (size_t)k, json, stdout, xs, xr);
    dr_explain_session_free(xs);
    dr_explainer_free(xr);
    dr_model_free(m);
    dr_split_free(sp);
    dr_dataset_free(ds);
    return rc;
}
