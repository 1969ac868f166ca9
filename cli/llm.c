/*
 * llm.c - the LLM ranker's commands: `dynrec align` (the map into the LLM's input space, and
 * lambda chosen on validation targets), `dynrec eval --protocol llm` (P-LLM), and the
 * reranking behind `dynrec recommend --rerank llm`. The work is the library's dr_align_*,
 * dr_llm_ranker_* and dr_eval_llm; this file parses and prints.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const float k_grid[] = {0.0f, 0.01f, 0.03f, 0.1f, 0.3f, 1.0f, 3.0f, 10.0f};
#define N_GRID (sizeof k_grid / sizeof k_grid[0])

static const char *align_help =
    "usage: dynrec align --model M.drm --llm X.gguf --out M.align [--data PATH]\n"
    "                    [--hidden H] [--epochs N] [--lr X] [--tau X] [--holdout F] [--seed S]\n"
    "                    [--lambda-users N] [--json]\n"
    "  Learns a map from the checkpoint's latent space into the GGUF's input-embedding space:\n"
    "  targets are the mean token embeddings of each item's title; loss = regression +\n"
    "  contrastive (InfoNCE over cosines, temperature --tau). --hidden 0 (default) is linear,\n"
    "  H > 0 a 2-layer MLP. A share --holdout (0.1) of the titled items is kept out of training.\n"
    "  Prints alignment quality (P-LLM): Recall@10 of each item's own target among all items.\n"
    "  With --data (the checkpoint's dataset), lambda of base + lambda * LLM is chosen on\n"
    "  P-LOO validation targets (full-ranking NDCG@10 of the base's top 20 reranked; grid\n"
    "  0 .01 .03 .1 .3 1 3 10; --lambda-users N users, 0 = all) and stored with the map.\n"
    "  The file records the GGUF's hash: another model is refused.\n";

static int parse_u32(const char *v, uint32_t lo, uint32_t hi, uint32_t *out, const char *name) {
    uint64_t x;
    if (cli_parse_u64(v, &x) || x < lo || x > hi)
        return cli_usage_error("bad %s '%s' (%u..%u)", name, v, lo, hi);
    *out = (uint32_t)x;
    return 0;
}

static int parse_f(const char *v, double lo, double hi, float *out, const char *name) {
    double x;
    if (cli_parse_double(v, &x) || !(x >= lo && x <= hi))
        return cli_usage_error("bad %s '%s' (%g..%g)", name, v, lo, hi);
    *out = (float)x;
    return 0;
}

/* Loads the checkpoint (and dataset, when given); 0 or an exit code. */
static int open_model(const char *model, cli_load_opts *l, dr_dataset **ds, dr_model **m) {
    dr_error e = {0};
    dr_status s;
    if (!cli_is_checkpoint_path(model)) return cli_usage_error("--model must be a .drm checkpoint");
    if (l->data) {
        int rc = cli_load(l, ds);
        if (rc) return rc;
    }
    if ((s = dr_model_load(model, m, &e)) != DR_OK) return cli_die(s, &e);
    if (*ds && (s = dr_model_check_dataset(*m, *ds, &e)) != DR_OK) return cli_die(s, &e);
    return 0;
}

static void print_llm_table(const dr_llm_eval_result *r, const char *llm, int soft) {
    printf("  %-34s %8s %8s\n", "ranker (1 + 19 candidates)", "Hit@1", "NDCG@5");
    printf("  %-34s %8.4f %8.4f\n", "base", r->base_hit1, r->base_ndcg5);
    printf("  %-34s %8.4f %8.4f\n", "LLM, titles only", r->title_hit1, r->title_ndcg5);
    if (soft) printf("  %-34s %8.4f %8.4f\n", "LLM, titles + soft tokens", r->soft_hit1, r->soft_ndcg5);
    printf("  %-34s %8.4f %8.4f   (lambda %g)\n", soft ? "base + lambda * LLM (soft)" :
           "base + lambda * LLM (titles)", r->comb_hit1, r->comb_ndcg5, r->lambda);
    printf("  %-34s %8s %8s\n", "full ranking, top 20 reranked", "Hit@10", "NDCG@10");
    printf("  %-34s %8.4f %8.4f\n", "base", r->full_base_hit10, r->full_base_ndcg10);
    printf("  %-34s %8.4f %8.4f\n", "base + lambda * LLM", r->full_comb_hit10, r->full_comb_ndcg10);
    printf("  LLM %s: with a toy model these figures test the mechanism, not LLM quality\n", llm);
}

/* lambda on validation targets into a; 0 or an exit code. */
static int choose_lambda(dr_dataset *ds, dr_model *m, dr_align *a, const char *llm,
                         uint32_t users, int json) {
    dr_error e = {0};
    dr_split *sp = NULL;
    dr_llm_ranker *r = NULL;
    dr_llm_rank_params rp = dr_llm_rank_default_params();
    rp.llm_model = llm;
    dr_status s = dr_split_create(ds, DR_SPLIT_LOO, &sp, &e);
    if (s == DR_OK) s = dr_llm_ranker_create(m, ds, a, &rp, &r, &e);
    dr_llm_eval_params ep = dr_llm_eval_default_params();
    ep.which = 1;
    ep.max_users = users;
    ep.grid = k_grid;
    ep.n_grid = N_GRID;
    dr_llm_eval_result res;
    if (s == DR_OK) s = dr_eval_llm(ds, sp, m, r, &ep, &res, &e);
    dr_llm_ranker_free(r);
    dr_split_free(sp);
    if (s != DR_OK) return cli_die(s, &e);
    dr_align_set_lambda(a, res.lambda);
    FILE *o = json ? stderr : stdout;
    fprintf(o, "lambda on P-LOO validation targets (%u users, full NDCG@10 of the top 20 "
            "reranked):", res.n_users);
    for (size_t g = 0; g < ep.n_grid; g++) fprintf(o, " %g:%.4f", k_grid[g], res.grid_ndcg10[g]);
    fprintf(o, "\n  chosen lambda = %g%s\n", res.lambda,
            res.lambda == 0 ? " (the LLM does not help on validation: the base ranking is kept)" : "");
    return 0;
}

int cli_cmd_align(int argc, char **argv) {
    cli_load_opts l = cli_load_defaults();
    dr_align_params ap = dr_align_default_params();
    const char *model = NULL, *outp = NULL;
    uint32_t lambda_users = 0;
    int json = 0;
    cli_opts o = {argc, argv, 0};
    for (o.i = 0; o.i < argc; o.i++) {
        const char *a = argv[o.i], *v;
        int err = 0, r;
        if (cli_is_help(a)) {
            fputs(align_help, stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if ((v = cli_opt_value(&o, "--model", &err))) { model = v; continue; }
        if ((v = cli_opt_value(&o, "--llm", &err))) { ap.llm_model = v; continue; }
        if ((v = cli_opt_value(&o, "--out", &err))) { outp = v; continue; }
        if ((v = cli_opt_value(&o, "--hidden", &err))) {
            if (parse_u32(v, 0, 4096, &ap.hidden, "--hidden")) return 2;
            continue;
        }
        if ((v = cli_opt_value(&o, "--epochs", &err))) {
            if (parse_u32(v, 1, 100000, &ap.epochs, "--epochs")) return 2;
            continue;
        }
        if ((v = cli_opt_value(&o, "--lambda-users", &err))) {
            if (parse_u32(v, 0, 100000000, &lambda_users, "--lambda-users")) return 2;
            continue;
        }
        if ((v = cli_opt_value(&o, "--lr", &err))) {
            if (parse_f(v, 1e-7, 10, &ap.lr, "--lr")) return 2;
            continue;
        }
        if ((v = cli_opt_value(&o, "--tau", &err))) {
            if (parse_f(v, 1e-4, 100, &ap.tau, "--tau")) return 2;
            continue;
        }
        if ((v = cli_opt_value(&o, "--holdout", &err))) {
            if (parse_f(v, 0, 0.9, &ap.holdout, "--holdout")) return 2;
            continue;
        }
        if ((v = cli_opt_value(&o, "--seed", &err))) {
            uint64_t x;
            if (cli_parse_u64(v, &x)) return cli_usage_error("bad --seed '%s'", v);
            ap.seed = x;
            continue;
        }
        if (err) return err;
        if ((r = cli_load_opt(&o, &l)) < 0) return 2;
        if (r == 0) return cli_usage_error("align: unknown option '%s'", a);
    }
    if (!model || !ap.llm_model || !outp)
        return cli_usage_error("align: --model, --llm and --out are required");
    dr_dataset *ds = NULL;
    dr_model *m = NULL;
    dr_align *al = NULL;
    dr_align_report rep;
    dr_error e = {0};
    int rc = open_model(model, &l, &ds, &m);
    dr_status s = DR_OK;
    if (!rc && (s = dr_align_fit(m, ds, &ap, &al, &rep, &e)) != DR_OK) rc = cli_die(s, &e);
    if (!rc) {
        FILE *f = json ? stderr : stdout;
        fprintf(f, "alignment (P-LLM alignment quality)  model=%s  llm=%s  map=%s\n", model,
                ap.llm_model, ap.hidden ? "mlp" : "linear");
        fprintf(f, "  items %u, with a title %u (train %u, held out %u), d=%u -> n_embd=%u, "
                "%.1f s\n", rep.n_items, rep.n_titled, rep.n_train, rep.n_holdout, rep.d,
                rep.n_embd, rep.seconds);
        fprintf(f, "  loss %.5f -> %.5f (regression %.5f -> %.5f)\n", rep.loss_first,
                rep.loss_last, rep.mse_first, rep.mse_last);
        fprintf(f, "  Recall@10 of the own target among all items: train %.4f, held out %.4f, "
                "random %.4f\n", rep.recall10_train, rep.recall10_holdout, rep.recall10_random);
    }
    if (!rc && ds) rc = choose_lambda(ds, m, al, ap.llm_model, lambda_users, json);
    if (!rc && (s = dr_align_save(al, outp, &e)) != DR_OK) rc = cli_die(s, &e);
    if (!rc && json) {
        int chosen;
        float lam = dr_align_lambda(al, &chosen);
        printf("{\"protocol\":\"P-LLM\",\"what\":\"alignment quality\",\"llm\":");
        cli_json_str(stdout, ap.llm_model);
        printf(",\"map\":\"%s\",\"n_titled\":%u,\"n_holdout\":%u,\"loss_first\":%.6f,"
               "\"loss_last\":%.6f,\"recall@10_train\":%.6f,\"recall@10_holdout\":%.6f,"
               "\"recall@10_random\":%.6f,\"lambda\":", ap.hidden ? "mlp" : "linear", rep.n_titled,
               rep.n_holdout, rep.loss_first, rep.loss_last, rep.recall10_train,
               rep.recall10_holdout, rep.recall10_random);
        if (chosen) printf("%g}\n", lam);
        else printf("null}\n");
    }
    dr_align_free(al);
    dr_model_free(m);
    dr_dataset_free(ds);
    return rc;
}

static const char *eval_llm_help =
    "usage: dynrec eval --protocol llm --model M.drm --data PATH --llm X.gguf [--align M.align]\n"
    "                   [--lambda X] [--max-users N] [--history 5] [--valid] [--json]\n"
    "       dynrec eval --protocol llm ... --llm-url URL [--llm-api llama|openai]  (titles only)\n"
    "  P-LLM of ../shared/PROTOCOL.md: for each P-LOO test user the true next item + 19 items\n"
    "  never taken (seed 42), ranked by the base, the LLM on titles only, the LLM with the\n"
    "  aligned soft tokens (--align) and base + lambda * LLM: Hit@1, NDCG@5; and the base's\n"
    "  top 20 reranked by base + lambda * LLM, full ranking: Hit@10, NDCG@10. lambda: --lambda,\n"
    "  else the one stored in the .align file, else chosen here on validation targets.\n"
    "  --llm-url: the LLM behind llama-server's /completion (or --llm-api openai:\n"
    "  /v1/completions with logprobs), one request per candidate; no soft tokens.\n"
    "  --history N: the most recent history titles in the prompt (fewer when it would not fit).\n";

int cli_cmd_eval_llm(int argc, char **argv) {
    cli_load_opts l = cli_load_defaults();
    const char *model = NULL, *llm = NULL, *alp = NULL, *url = NULL, *api = NULL;
    uint32_t max_users = 0, history = 5;
    float lambda = 0;
    int json = 0, which = 0, have_lambda = 0;
    cli_opts o = {argc, argv, 0};
    for (o.i = 0; o.i < argc; o.i++) {
        const char *a = argv[o.i], *v;
        int err = 0, r;
        if (cli_is_help(a)) {
            fputs(eval_llm_help, stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "--valid")) { which = 1; continue; }
        if ((v = cli_opt_value(&o, "--protocol", &err))) continue;
        if ((v = cli_opt_value(&o, "--model", &err))) { model = v; continue; }
        if ((v = cli_opt_value(&o, "--llm", &err))) { llm = v; continue; }
        if ((v = cli_opt_value(&o, "--align", &err))) { alp = v; continue; }
        if ((v = cli_opt_value(&o, "--llm-url", &err))) { url = v; continue; }
        if ((v = cli_opt_value(&o, "--llm-api", &err))) { api = v; continue; }
        if ((v = cli_opt_value(&o, "--history", &err))) {
            if (parse_u32(v, 0, 50, &history, "--history")) return 2;
            continue;
        }
        if ((v = cli_opt_value(&o, "--lambda", &err))) {
            if (parse_f(v, 0, 1e6, &lambda, "--lambda")) return 2;
            have_lambda = 1;
            continue;
        }
        if ((v = cli_opt_value(&o, "--max-users", &err))) {
            if (parse_u32(v, 0, 100000000, &max_users, "--max-users")) return 2;
            continue;
        }
        if (err) return err;
        if ((r = cli_load_opt(&o, &l)) < 0) return 2;
        if (r == 0) return cli_usage_error("eval --protocol llm: unknown option '%s'", a);
    }
    if (!model || (!llm && !url) || !l.data)
        return cli_usage_error("eval --protocol llm: --model, --data and --llm (or --llm-url) are required");
    if (llm && url) return cli_usage_error("eval --protocol llm: --llm or --llm-url, not both");
    if (url && alp) return cli_usage_error("eval --protocol llm: --align needs --llm (soft tokens cannot go over HTTP)");
    dr_dataset *ds = NULL;
    dr_model *m = NULL;
    dr_align *al = NULL;
    dr_split *sp = NULL;
    dr_llm_ranker *r = NULL;
    dr_error e = {0};
    dr_status s = DR_OK;
    int rc = open_model(model, &l, &ds, &m);
    if (!rc && alp && (s = dr_align_load(alp, &al, &e)) != DR_OK) rc = cli_die(s, &e);
    dr_llm_rank_params rp = dr_llm_rank_default_params();
    rp.llm_model = llm;
    rp.http_url = url;
    rp.http_api = api;
    rp.history = history;
    if (!llm) llm = url;
    if (!rc && (s = dr_split_create(ds, DR_SPLIT_LOO, &sp, &e)) != DR_OK) rc = cli_die(s, &e);
    if (!rc && (s = dr_llm_ranker_create(m, ds, al, &rp, &r, &e)) != DR_OK) rc = cli_die(s, &e);
    int chosen = 0;
    if (!rc && !have_lambda && al) lambda = dr_align_lambda(al, &chosen);
    dr_llm_eval_params ep = dr_llm_eval_default_params();
    ep.which = which;
    ep.max_users = max_users;
    ep.lambda = lambda;
    dr_llm_eval_result res;
    if (!rc && !have_lambda && !chosen) {
        /* no lambda recorded: choose it on validation targets first */
        dr_llm_eval_params vp = ep;
        vp.which = 1;
        vp.grid = k_grid;
        vp.n_grid = N_GRID;
        if ((s = dr_eval_llm(ds, sp, m, r, &vp, &res, &e)) != DR_OK) rc = cli_die(s, &e);
        else ep.lambda = res.lambda;
        if (!rc) fprintf(stderr, "lambda chosen on validation targets: %g\n", res.lambda);
    }
    if (!rc && (s = dr_eval_llm(ds, sp, m, r, &ep, &res, &e)) != DR_OK) rc = cli_die(s, &e);
    if (!rc && json) {
        printf("{\"protocol\":\"P-LLM\",\"dataset\":");
        cli_json_str(stdout, dr_dataset_name(ds));
        printf(",\"model\":");
        cli_json_str(stdout, model);
        printf(",\"llm\":");
        cli_json_str(stdout, llm);
        printf(",\"soft_tokens\":%s,\"users\":%u,\"targets\":\"%s\",\"lambda\":%g,"
               "\"base\":{\"hit@1\":%.6f,\"ndcg@5\":%.6f},\"llm_titles\":{\"hit@1\":%.6f,"
               "\"ndcg@5\":%.6f},\"llm_soft\":{\"hit@1\":%.6f,\"ndcg@5\":%.6f},\"combined\":"
               "{\"hit@1\":%.6f,\"ndcg@5\":%.6f},\"full_base\":{\"hit@10\":%.6f,\"ndcg@10\":%.6f},"
               "\"full_reranked\":{\"hit@10\":%.6f,\"ndcg@10\":%.6f},\"seconds\":%.3f}\n",
               al ? "true" : "false", res.n_users, which ? "validation" : "test", res.lambda,
               res.base_hit1, res.base_ndcg5, res.title_hit1, res.title_ndcg5,
               al ? res.soft_hit1 : res.title_hit1, al ? res.soft_ndcg5 : res.title_ndcg5,
               res.comb_hit1, res.comb_ndcg5, res.full_base_hit10, res.full_base_ndcg10,
               res.full_comb_hit10, res.full_comb_ndcg10, res.seconds);
    } else if (!rc) {
        printf("P-LLM  dataset=%s  model=%s  llm=%s  users=%u  targets=%s  negatives: 19 "
               "uniform, seed 42\n", dr_dataset_name(ds), model, llm, res.n_users,
               which ? "validation" : "test");
        print_llm_table(&res, llm, al != NULL);
        printf("  seconds %.1f\n", res.seconds);
    }
    dr_llm_ranker_free(r);
    dr_split_free(sp);
    dr_align_free(al);
    dr_model_free(m);
    dr_dataset_free(ds);
    return rc;
}

int cli_llm_rerank(const dr_dataset *ds, const dr_model *m, uint32_t u, const char *llm,
                   const char *alp, uint32_t n_top, dr_rec *rec, uint32_t *got, float *llm_out,
                   float *lambda_out) {
    dr_error e = {0};
    dr_status s = DR_OK;
    dr_align *al = NULL;
    dr_llm_ranker *r = NULL;
    dr_scorer *sc = NULL;
    uint32_t d = dr_model_latent_dim(m);
    float *h = malloc((d ? d : 1) * sizeof *h);
    uint32_t *cand = malloc(n_top * sizeof *cand);
    const uint32_t *hist;
    size_t nh = dr_model_n_users(m) ? dr_model_user_history(m, u, &hist)
                                    : dr_dataset_user_items(ds, u, &hist, NULL);
    int chosen = 0;
    float lambda = 0;
    if (!h || !cand) s = DR_NOMEM;
    if (s == DR_OK && alp) s = dr_align_load(alp, &al, &e);
    if (s == DR_OK && al) lambda = dr_align_lambda(al, &chosen);
    dr_llm_rank_params rp = dr_llm_rank_default_params();
    rp.llm_model = llm;
    if (s == DR_OK) s = dr_llm_ranker_create(m, ds, al, &rp, &r, &e);
    if (s == DR_OK) s = dr_scorer_create(m, &sc, &e);
    if (s == DR_OK) s = dr_recommend(m, sc, u, hist, nh, n_top, rec, got, &e);
    if (s == DR_OK && al) s = dr_model_user_latent(m, sc, u, hist, nh, h, &e);
    for (uint32_t k = 0; k < *got; k++) cand[k] = rec[k].item;
    dr_llm_request q = {al ? h : NULL, al ? dr_model_item_latents(m) : NULL, d, hist, nh, cand, *got};
    if (s == DR_OK) s = dr_llm_rank_score(r, &q, llm_out, &e);
    if (s == DR_OK && !chosen)
        fprintf(stderr, "dynrec: note: no lambda recorded with the alignment (dynrec align "
                "--data): lambda = 0, the base order\n");
    *lambda_out = lambda;
    dr_scorer_free(sc);
    dr_llm_ranker_free(r);
    dr_align_free(al);
    free(h);
    free(cand);
    return s == DR_OK ? 0 : cli_die(s, &e);
}
