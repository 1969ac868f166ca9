/*
 * explain.c - `dynrec explain`, `dynrec eval --protocol explain` (P-EXPLAIN) and the
 * explanation options `dynrec recommend --explain` shares.
 *
 * DESIGN: one option parser (cli_explain_opt) fills dr_explain_params for all three commands; the
 * library does the work (dr_explain, dr_eval_explain) and this file only prints.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char *const cli_explain_opts_help =
    "  --llm FILE.gguf      generate with llama.cpp and this GGUF model (default: template)\n"
    "  --llm-url URL        generate through an OpenAI-compatible endpoint (llama-server,\n"
    "                       Ollama, vLLM); /v1/chat/completions is appended\n"
    "  --llm-name NAME      the endpoint's model name (default)\n"
    "  --llm-key-env VAR    read a bearer token from environment variable VAR\n"
    "  --max-tokens N       generated tokens at most (128)\n"
    "  --llm-threads N      llama.cpp CPU threads (1)\n"
    "  --llm-ctx N          the LLM's context in tokens (2048; also --ctx): llama.cpp caps it\n"
    "                       at the model's training context, http at llama-server's /props;\n"
    "                       prompts are fitted into it less --max-tokens, dropping the last\n"
    "                       facts first\n"
    "  --history MODE       how history facts are chosen: auto (default: removal for sasrec,\n"
    "                       similarity otherwise), similarity (cosine of the item latents),\n"
    "                       removal (the score drop when the item leaves the history)\n"
    "  --temperature T      0 = greedy (default)          --timeout-ms N, --retries N  (http)\n"
    "  --no-grammar         llama: let the model write freely (the verifier still checks)\n"
    "  --http-grammar       http: send the evidence grammar too (llama-server's \"grammar\")\n"
    "  --soft-tokens        llama, experimental: user and item latents as two embeddings\n";

int cli_explain_opt(cli_opts *o, cli_explain_opts *x) {
    int err = 0;
    const char *v, *a = o->argv[o->i];
    uint64_t u;
    double d;
    if (!strcmp(a, "--no-grammar")) { x->p.grammar = 0; return 1; }
    if (!strcmp(a, "--http-grammar")) { x->p.http_grammar = 1; return 1; }
    if (!strcmp(a, "--soft-tokens")) { x->p.soft_tokens = 1; return 1; }
    if ((v = cli_opt_value(o, "--llm-url", &err))) { x->p.llm_url = v; x->p.generator = "http"; return 1; }
    if ((v = cli_opt_value(o, "--llm-name", &err))) { x->p.llm_name = v; return 1; }
    if ((v = cli_opt_value(o, "--llm-key-env", &err))) {
        if (!(x->p.llm_key = getenv(v))) { cli_usage_error("--llm-key-env: %s is not set", v); return -1; }
        return 1;
    }
    if ((v = cli_opt_value(o, "--llm", &err))) { x->p.llm_model = v; x->p.generator = "llama"; return 1; }
    if ((v = cli_opt_value(o, "--history", &err))) {
        static const char *const modes[] = {"auto", "similarity", "removal"};
        for (int k = 0; k < 3; k++)
            if (!strcmp(v, modes[k])) { x->p.history = (dr_history_mode)k; return 1; }
        cli_usage_error("bad --history '%s' (auto, similarity, removal)", v);
        return -1;
    }
    struct { const char *name; uint32_t *at; uint64_t max; } n[] = {
        {"--max-tokens", &x->p.max_tokens, 1024}, {"--ctx", &x->p.n_ctx, 131072},
        {"--llm-ctx", &x->p.n_ctx, 131072},
        {"--timeout-ms", &x->p.timeout_ms, 600000}, {"--retries", &x->p.retries, 10}};
    for (size_t k = 0; k < sizeof n / sizeof n[0] && !err; k++) {
        if (!(v = cli_opt_value(o, n[k].name, &err))) continue;
        if (cli_parse_u64(v, &u) || u > n[k].max) { cli_usage_error("bad %s '%s'", n[k].name, v); return -1; }
        *n[k].at = (uint32_t)u;
        return 1;
    }
    if (!err && (v = cli_opt_value(o, "--llm-threads", &err))) {
        if (cli_parse_u64(v, &u) || u == 0 || u > 256) { cli_usage_error("bad --llm-threads '%s'", v); return -1; }
        x->p.threads = (int)u;
        return 1;
    }
    if (!err && (v = cli_opt_value(o, "--temperature", &err))) {
        if (cli_parse_double(v, &d) || d < 0 || d > 5) { cli_usage_error("bad --temperature '%s'", v); return -1; }
        x->p.temperature = (float)d;
        return 1;
    }
    return err ? -1 : 0;
}

int cli_explain_open(const dr_model *m, cli_explain_opts *x, dr_explainer **ex, dr_explain_session **s) {
    dr_error e = {0};
    dr_status st = dr_explainer_create(m, &x->p, ex, &e);
    if (st == DR_OK && s) st = dr_explain_session_create(*ex, s, &e);
    if (st != DR_OK) {
        dr_explainer_free(*ex);
        *ex = NULL;
        return cli_die(st, &e);
    }
    return 0;
}

/* The dataset (when --data was given), the checkpoint and an explainer over them, plus a
 * session when s is not NULL; on failure what was opened stays in the out-parameters for the
 * caller's cleanup. */
static int explain_setup(cli_load_opts *l, const char *model, cli_explain_opts *xo,
                         dr_dataset **ds, dr_model **m, dr_explainer **x, dr_explain_session **s) {
    dr_error e = {0};
    int rc = l->data ? cli_load(l, ds) : 0;
    if (rc) return rc;
    dr_status st = dr_model_load(model, m, &e);
    if (st != DR_OK) return cli_die(st, &e);
    xo->p.data = *ds;
    return cli_explain_open(*m, xo, x, s);
}

void cli_explain_print(FILE *f, const dr_explainer *x, const dr_explanation *e, const char *indent) {
    fprintf(f, "%s%s\n", indent, e->text);
    if (e->fallback) fprintf(f, "%s(%s fell back to the template: %s)\n", indent, e->generator, e->reason);
    else if (e->verified && strcmp(e->generator, "template"))
        fprintf(f, "%s(%s, verified)\n", indent, e->generator);
    (void)x;
}

static const char *explain_help =
    "usage: dynrec explain --model FILE --user U --item I [--data PATH] [--json] [options]\n"
    "  Explains why item I suits user U with evidence from the checkpoint (histories, titles,\n"
    "  attributes, latents): the generator's text is accepted only when the verifier finds every\n"
    "  title, attribute and user it names in the evidence; otherwise the template text is shown,\n"
    "  flagged. --data adds modality facts (same item catalogue as the model).\n";

int cli_cmd_explain(int argc, char **argv) {
    cli_load_opts l = cli_load_defaults();
    cli_explain_opts xo = {dr_explain_default_params()};
    const char *model = NULL, *user = NULL, *item = NULL;
    int json = 0;
    cli_opts o = {argc, argv, 0};
    for (o.i = 0; o.i < argc; o.i++) {
        const char *a = argv[o.i], *v;
        int err = 0, r;
        if (cli_is_help(a)) {
            fputs(explain_help, stdout);
            fputs(cli_explain_opts_help, stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if ((v = cli_opt_value(&o, "--model", &err))) { model = v; continue; }
        if ((v = cli_opt_value(&o, "--user", &err))) { user = v; continue; }
        if ((v = cli_opt_value(&o, "--item", &err))) { item = v; continue; }
        if (err) return err;
        if ((r = cli_explain_opt(&o, &xo)) < 0) return 2;
        if (r) continue;
        if ((r = cli_load_opt(&o, &l)) < 0) return 2;
        if (r == 0) return cli_usage_error("explain: unknown option '%s'", a);
    }
    if (!model || !user || !item) return cli_usage_error("explain: --model, --user and --item are required");
    dr_dataset *ds = NULL;
    dr_model *m = NULL;
    dr_explainer *x = NULL;
    dr_explain_session *s = NULL;
    dr_explanation *ex = NULL;
    dr_error e = {0};
    dr_status st;
    int rc = explain_setup(&l, model, &xo, &ds, &m, &x, &s);
    if (rc) goto done;
    uint32_t u = 0, it = UINT32_MAX;
    if (dr_model_find_user(m, user, &u) != DR_OK) {
        fprintf(stderr, "dynrec: notfound: user '%s' is not in %s\n", user, model);
        rc = 1;
        goto done;
    }
    for (uint32_t k = 0; k < dr_model_n_items(m) && it == UINT32_MAX; k++)
        if (!strcmp(dr_model_item_id(m, k), item)) it = k;
    if (it == UINT32_MAX) {
        fprintf(stderr, "dynrec: notfound: item '%s' is not in %s\n", item, model);
        rc = 1;
        goto done;
    }
    if (!(ex = malloc(sizeof *ex))) {
        rc = cli_die(DR_NOMEM, NULL);
        goto done;
    }
    if ((st = dr_explain(s, u, it, ex, &e)) != DR_OK) {
        rc = cli_die(st, &e);
        goto done;
    }
    if (json) {
        static char buf[1 << 16];
        if (dr_explanation_json(x, ex, buf, sizeof buf) < 0) rc = cli_die(DR_LIMIT, NULL);
        else puts(buf);
    } else {
        printf("user %s, item %s \"%s\" (%s)\n", dr_model_user_id(m, u), dr_model_item_id(m, it),
               dr_model_item_title(m, it), dr_model_name(m));
        cli_explain_print(stdout, x, ex, "  ");
        static char prompt[8192];
        size_t prefix = 0;
        if (dr_explain_prompt(x, &ex->evidence, prompt, sizeof prompt, &prefix, NULL) == DR_OK) {
            char *ev = strstr(prompt + prefix, "\nRecommended item:");
            if (ev) *ev = 0;
            for (char *line = strtok(prompt + prefix, "\n"); line; line = strtok(NULL, "\n"))
                printf("  %s\n", line);
        }
        const dr_explain_timing *t = &ex->timing;
        printf("  time: evidence %.3f ms, prompt %.3f ms, prefill %.1f ms, decode %.1f ms, "
               "verify %.3f ms; tokens: %u prompt (+%u cached), %u generated\n",
               t->evidence_ms, t->prompt_ms, t->prefill_ms, t->decode_ms, t->verify_ms,
               t->prompt_tokens, t->cached_tokens, t->gen_tokens);
    }
done:
    free(ex);
    dr_explain_session_free(s);
    dr_explainer_free(x);
    dr_model_free(m);
    dr_dataset_free(ds);
    return rc;
}

static const char *eval_explain_help =
    "usage: dynrec eval --protocol explain --model FILE [--n 1000] [--top 10] [--seed 42]\n"
    "                   [--data PATH] [--json] [generator options]\n"
    "  P-EXPLAIN (../shared/PROTOCOL.md) over N (user, recommended item) pairs: grounding\n"
    "  precision, hallucination rate before and after the verifier, evidence validity,\n"
    "  deletion faithfulness, and the time per step (medians).\n";

int cli_cmd_eval_explain(int argc, char **argv) {
    cli_load_opts l = cli_load_defaults();
    cli_explain_opts xo = {dr_explain_default_params()};
    dr_explain_eval_params ep = dr_explain_eval_default_params();
    const char *model = NULL;
    int json = 0;
    uint64_t u;
    cli_opts o = {argc, argv, 0};
    for (o.i = 0; o.i < argc; o.i++) {
        const char *a = argv[o.i], *v;
        int err = 0, r;
        if (cli_is_help(a)) {
            fputs(eval_explain_help, stdout);
            fputs(cli_explain_opts_help, stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if ((v = cli_opt_value(&o, "--protocol", &err))) continue;
        if ((v = cli_opt_value(&o, "--model", &err))) { model = v; continue; }
        if ((v = cli_opt_value(&o, "--n", &err))) {
            if (cli_parse_u64(v, &u) || u == 0 || u > 1000000) return cli_usage_error("bad --n '%s'", v);
            ep.n = (uint32_t)u;
            continue;
        }
        if ((v = cli_opt_value(&o, "--top", &err))) {
            if (cli_parse_u64(v, &u) || u == 0 || u > DR_RECOMMEND_MAX_K) return cli_usage_error("bad --top '%s'", v);
            ep.top = (uint32_t)u;
            continue;
        }
        if ((v = cli_opt_value(&o, "--seed", &err))) {
            if (cli_parse_u64(v, &ep.seed)) return cli_usage_error("bad --seed '%s'", v);
            continue;
        }
        if (err) return err;
        if ((r = cli_explain_opt(&o, &xo)) < 0) return 2;
        if (r) continue;
        if ((r = cli_load_opt(&o, &l)) < 0) return 2;
        if (r == 0) return cli_usage_error("eval: unknown option '%s'", a);
    }
    if (!model || !cli_is_checkpoint_path(model))
        return cli_usage_error("eval --protocol explain: --model FILE (a checkpoint from `dynrec train`) is required");
    dr_dataset *ds = NULL;
    dr_model *m = NULL;
    dr_explainer *x = NULL;
    dr_error e = {0};
    dr_status st;
    /* no session here: the evaluation opens its own */
    int rc = explain_setup(&l, model, &xo, &ds, &m, &x, NULL);
    if (rc) goto done;
    ep.progress = cli_progress_cb;
    dr_explain_eval_result r;
    if ((st = dr_eval_explain(x, &ep, &r, &e)) != DR_OK) {
        rc = cli_die(st, &e);
        goto done;
    }
    if (json) {
        char buf[4096];
        dr_explain_eval_json(&r, buf, sizeof buf);
        puts(buf);
    } else {
        printf("P-EXPLAIN  dataset %s  model %s  generator %s  n %u\n", r.dataset, dr_model_name(m),
               r.generator, r.n);
        printf("  grounding precision              %.4f  (%zu references)\n", r.grounding_precision, r.n_refs);
        printf("  hallucination rate               %.4f  (before the verifier %.4f)\n",
               r.hallucination_rate, r.hallucination_rate_before_verify);
        printf("  evidence validity                %.4f  (%zu facts)\n", r.evidence_validity, r.n_facts);
        printf("  deletion faithfulness            %.4f\n", r.deletion_faithfulness);
        printf("  generated texts verified         %.4f\n", r.verified_rate);
        printf("  median ms: evidence %.3f, prompt %.3f, prefill %.2f, decode %.2f, verify %.3f, "
               "total %.2f\n", r.evidence_ms, r.prompt_ms, r.prefill_ms, r.decode_ms, r.verify_ms,
               r.total_ms);
        if (r.gen_tok_s > 0)
            printf("  tokens/s: prompt %.1f, generated %.1f\n", r.prompt_tok_s, r.gen_tok_s);
        if (strcmp(r.generator, "template"))
            printf("  context: minimum prompt did not fit %.4f, facts dropped per pair %.2f, "
                   "longest prompt %u tokens\n", r.no_fit_rate, r.facts_dropped, r.prompt_tokens_max);
        printf("  wall %.1f s\n", r.seconds);
    }
done:
    dr_explainer_free(x);
    dr_model_free(m);
    dr_dataset_free(ds);
    return rc;
}
