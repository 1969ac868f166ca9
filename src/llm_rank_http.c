/*
 * llm_rank_http.c - the LLM ranker's HTTP backend: a title's log-likelihood after a prompt from
 * llama.cpp's llama-server (POST /completion) or an OpenAI-compatible completions endpoint
 * (POST /v1/completions with logprobs) through the explanation's libcurl client.
 *
 * DESIGN: one request per candidate: the prompt text, a GBNF grammar that admits exactly the
 * title (so the server generates it, whatever the model prefers), temperature 0, n_probs 1 and
 * cache_prompt (the server keeps the prompt's KV cache between the candidates: the prompt is
 * decoded once per request of the ranker, the titles one after the other). Each generated
 * token's `logprob` is the server's log-probability under the model's own distribution (not
 * the grammar's), so their mean over the tokens that spell the title is the same score as in
 * process, with two differences said in docs/ARCHITECTURE.md: the title's tokens are the ones
 * the server generates under the grammar (not always the canonical tokenisation), and soft
 * tokens cannot cross a text API (titles only). The OpenAI form sends the same request to
 * /v1/completions with "logprobs": 1 and reads choices[0].logprobs (llama-server's `content`
 * list, or the legacy `tokens` / `token_logprobs` arrays); the grammar field is llama-server's
 * extension, which other servers ignore (then the score is of what they generate, and a reply
 * that does not spell the title is an error). Rejected: `echo` + `logprobs` (prompt
 * log-probabilities: llama-server ignores echo), and N parallel requests (the server's slots
 * would each decode the prompt).
 */
#include "llm_rank_http.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>

#include "explain_llm_http.h"

struct dr_rank_http {
    dr_http *http;
    int openai;                /* 1: /v1/completions, 0: llama-server's /completion */
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

dr_status dr__rank_http_create(const char *url, int openai, uint32_t timeout_ms, dr_rank_http **out,
                               dr_error *err) {
    *out = NULL;
    dr_rank_http *h = dr__calloc(1, sizeof *h);
    if (!h) return dr__fail(err, DR_NOMEM, "llm rerank: out of memory");
    h->openai = openai;
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
    json_t *req = h->openai
        ? json_pack("{s:s, s:s, s:s, s:i, s:i, s:f, s:i}", "model", "default", "prompt", prompt,
                    "grammar", h->grammar, "max_tokens", (int)(tl + 8), "logprobs", 1,
                    "temperature", 0.0, "seed", 42)
        : json_pack("{s:s, s:s, s:i, s:i, s:f, s:b, s:i}", "prompt", prompt, "grammar", h->grammar,
                    "n_predict", (int)(tl + 8), "n_probs", 1, "temperature", 0.0, "cache_prompt", 1,
                    "seed", 42);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!body) return dr__fail(err, DR_NOMEM, "llm rerank: cannot build the request");
    const char *reply;
    size_t len;
    dr_status st = dr__llm_http_post(h->http, h->openai ? "/v1/completions" : "/completion", body,
                                     &reply, &len, err);
    free(body);
    if (st != DR_OK) return st;
    json_error_t je;
    json_t *root = json_loadb(reply, len, 0, &je);
    if (!root) return dr__fail(err, DR_FORMAT, "llm rerank: reply is not JSON (line %d: %s)", je.line, je.text);
    json_t *probs = json_object_get(root, "completion_probabilities"), *toks = NULL, *lps = NULL;
    if (h->openai) {
        json_t *lp = json_object_get(json_array_get(json_object_get(root, "choices"), 0), "logprobs");
        probs = json_object_get(lp, "content");
        toks = json_object_get(lp, "tokens"), lps = json_object_get(lp, "token_logprobs");
    }
    double sum = 0;
    size_t got = 0, ntok = 0;
    for (size_t k = 0; got < tl; k++) {
        json_t *lp, *tok;
        if (json_is_array(probs)) { /* [{token, logprob, ...}] */
            json_t *e = json_array_get(probs, k);
            lp = json_object_get(e, "logprob"), tok = json_object_get(e, "token");
        } else { /* legacy: tokens[], token_logprobs[] */
            lp = json_array_get(lps, k), tok = json_array_get(toks, k);
        }
        if (!json_is_number(lp) || !json_is_string(tok)) break;
        sum += json_number_value(lp);
        got += json_string_length(tok);
        ntok++;
    }
    json_t *why = json_object_get(root, "stop_type"); /* llama-server; OpenAI: finish_reason */
    if (!json_is_string(why))
        why = json_object_get(json_array_get(json_object_get(root, "choices"), 0), "finish_reason");
    char stop[32];
    snprintf(stop, sizeof stop, "%s", json_is_string(why) ? json_string_value(why) : "?");
    json_decref(root);
    if (!ntok || got < tl || !isfinite(sum))
        return dr__fail(err, DR_FORMAT, "llm rerank: the reply's token log-probabilities do not "
                        "spell the title (%zu of %zu bytes; the server stopped: %s, e.g. at the end "
                        "of its context: try a shorter history)", got, tl, stop);
    *out = (float)(sum / (double)ntok);
    return DR_OK;
}
