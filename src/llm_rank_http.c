/*
 * llm_rank_http.c - the LLM ranker's HTTP backend: a title's log-likelihood after a prompt from
 * llama.cpp's llama-server (POST /completion) through the explanation's libcurl client.
 *
 * DESIGN: one request per candidate: the prompt text, a GBNF grammar that admits exactly the
 * title (so the server generates it, whatever the model prefers), temperature 0, n_probs 1 and
 * cache_prompt (the server keeps the prompt's KV cache between the candidates: the prompt is
 * decoded once per request of the ranker, the titles one after the other). Each generated
 * token's `logprob` is the server's log-probability under the model's own distribution (not
 * the grammar's), so their mean over the tokens that spell the title is the same score as in
 * process, with two differences said in docs/ARCHITECTURE.md: the title's tokens are the ones
 * the server generates under the grammar (not always the canonical tokenisation), and soft
 * tokens cannot cross a text API (titles only). Rejected: OpenAI's `echo` + `logprobs` on
 * /v1/completions (prompt log-probabilities; llama-server does not return them), and N
 * parallel requests (the server's slots would each decode the prompt).
 */
#include "llm_rank_http.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>

#include "explain_llm_http.h"

struct dr_rank_http {
    dr_http *http;
    char *body;                /* (DR_PROMPT_MAX * 2 + 4096) request JSON */
    char *grammar;             /* (4 * DR_QUOTE_MAX * 4 + 64) */
};

void dr__rank_http_free(dr_rank_http *h) {
    if (!h) return;
    dr__llm_http_free(h->http);
    dr__free(h->body);
    dr__free(h->grammar);
    dr__free(h);
}

dr_status dr__rank_http_create(const char *url, uint32_t timeout_ms, dr_rank_http **out,
                               dr_error *err) {
    *out = NULL;
    dr_rank_http *h = dr__calloc(1, sizeof *h);
    if (!h) return dr__fail(err, DR_NOMEM, "llm rerank: out of memory");
    dr_explain_params p = dr_explain_default_params();
    p.generator = "http";
    p.llm_url = url;
    p.timeout_ms = timeout_ms;
    dr_status st = dr__llm_http_create(&p, &h->http, err);
    h->grammar = dr__malloc(DR_LLM_HTTP_GRAMMAR_MAX);
    if (st == DR_OK && !h->grammar) st = dr__fail(err, DR_NOMEM, "llm rerank: out of memory");
    if (st != DR_OK) {
        dr__rank_http_free(h);
        return st;
    }
    *out = h;
    return DR_OK;
}

/* root ::= "<title>" with ", \ and control bytes escaped; -1 when it does not fit. */
static int title_grammar(const char *title, char *g, size_t cap) {
    size_t n = (size_t)snprintf(g, cap, "root ::= \"");
    for (const unsigned char *c = (const unsigned char *)title; *c; c++) {
        if (n + 8 >= cap) return -1;
        if (*c == '"' || *c == '\\') g[n++] = '\\', g[n++] = (char)*c;
        else if (*c < 0x20) n += (size_t)snprintf(g + n, cap - n, "\\x%02X", *c);
        else g[n++] = (char)*c;
    }
    if (n + 2 >= cap) return -1;
    g[n++] = '"';
    g[n] = 0;
    return 0;
}

dr_status dr__rank_http_score(dr_rank_http *h, const char *prompt, const char *title, float *out,
                              dr_error *err) {
    size_t tl = strlen(title);
    if (!tl) {
        *out = -1e9f;
        return DR_OK;
    }
    if (title_grammar(title, h->grammar, DR_LLM_HTTP_GRAMMAR_MAX))
        return dr__fail(err, DR_LIMIT, "llm rerank: a title is too long for the grammar");
    json_t *req = json_pack("{s:s, s:s, s:i, s:i, s:f, s:b, s:i}", "prompt", prompt, "grammar",
                            h->grammar, "n_predict", (int)(tl + 8), "n_probs", 1, "temperature", 0.0,
                            "cache_prompt", 1, "seed", 42);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!body) return dr__fail(err, DR_NOMEM, "llm rerank: cannot build the request");
    const char *reply;
    size_t len;
    dr_status st = dr__llm_http_post(h->http, "/completion", body, &reply, &len, err);
    free(body);
    if (st != DR_OK) return st;
    json_error_t je;
    json_t *root = json_loadb(reply, len, 0, &je);
    if (!root) return dr__fail(err, DR_FORMAT, "llm rerank: reply is not JSON (line %d: %s)", je.line, je.text);
    json_t *probs = json_object_get(root, "completion_probabilities");
    double sum = 0;
    size_t got = 0, ntok = 0;
    for (size_t k = 0; json_is_array(probs) && k < json_array_size(probs) && got < tl; k++) {
        json_t *e = json_array_get(probs, k);
        json_t *lp = json_object_get(e, "logprob"), *tok = json_object_get(e, "token");
        if (!json_is_number(lp) || !json_is_string(tok)) break;
        sum += json_number_value(lp);
        got += json_string_length(tok);
        ntok++;
    }
    json_decref(root);
    if (!ntok || got < tl || !isfinite(sum))
        return dr__fail(err, DR_FORMAT, "llm rerank: the reply's completion_probabilities do not "
                        "spell the title (%zu of %zu bytes); is this llama-server?", got, tl);
    *out = (float)(sum / (double)ntok);
    return DR_OK;
}
