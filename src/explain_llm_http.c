/*
 * explain_llm_http.c - the http generator: an OpenAI-compatible /v1/chat/completions endpoint
 * (llama.cpp's llama-server, Ollama, vLLM) through libcurl, request and reply as JSON
 * (jansson).
 *
 * DESIGN: one curl easy handle per session (connections are reused between requests), a
 * connect timeout and a total timeout per attempt, and `retries` further attempts after a
 * transport error, an HTTP 429 or a 5xx, with a doubling pause (100 ms, 200 ms, ...). The
 * reply is capped (DR_LLM_HTTP_MAX bytes: a larger one is an error, never a larger buffer) and
 * must carry choices[0].message.content as a string. Any failure is returned as a status, and
 * dr_explain then shows the template explanation, flagged. temperature 0 and the evidence as
 * the user message; the instruction is the system message. The endpoint's context is asked
 * once per session from llama-server's /props (default_generation_settings.n_ctx, or n_ctx);
 * a server without /props (Ollama, vLLM) is taken at the n_ctx the caller gives (--llm-ctx).
 * Prompts are counted for it in bytes plus DR_HTTP_CHAT_TOKENS for the chat template: no
 * tokenizer here, and a token is at least one byte, so the count is an upper bound and the
 * fitted prompt never exceeds the server's context. Alternative rejected: a
 * hand-written HTTP/1.1 client (TLS, chunked replies and proxies come free with libcurl).
 */
#include "explain_llm_http.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>


struct dr_http {
    CURL *curl;
    struct curl_slist *headers;
    char *url;
    char *base;             /* the URL given, without a trailing / or /v1/chat/completions */
    char *post_url;         /* (strlen(base) + 64) dr__llm_http_post's */
    char *reply;            /* (DR_LLM_HTTP_MAX + 1) */
    size_t reply_len;
    int overflow;
    int props_asked;        /* /props was asked (once per session) */
    uint32_t n_ctx_server;  /* what it reported (0: nothing) */
    dr_explain_params p;
};

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud) {
    dr_http *h = ud;
    size_t n = size * nmemb;
    if (h->reply_len + n > DR_LLM_HTTP_MAX) {
        h->overflow = 1;
        return 0; /* aborts the transfer */
    }
    memcpy(h->reply + h->reply_len, ptr, n);
    h->reply_len += n;
    h->reply[h->reply_len] = 0;
    return n;
}

void dr__llm_http_free(dr_http *h) {
    if (!h) return;
    if (h->curl) curl_easy_cleanup(h->curl);
    curl_slist_free_all(h->headers);
    dr__free(h->url);
    dr__free(h->base);
    dr__free(h->post_url);
    dr__free(h->reply);
    dr__free(h);
}

dr_status dr__llm_http_create(const dr_explain_params *p, dr_http **out, dr_error *err) {
    pthread_once(&g_curl_once, curl_init_once);
    dr_http *h = dr__calloc(1, sizeof *h);
    if (!h) return dr__fail(err, DR_NOMEM, "http: out of memory");
    h->p = *p;
    const char *u = p->llm_url;
    size_t n = strlen(u);
    while (n && u[n - 1] == '/') n--;
    static const char path[] = "/v1/chat/completions";
    int has = n >= sizeof path - 1 && !memcmp(u + n - (sizeof path - 1), path, sizeof path - 1);
    h->url = dr__malloc(n + sizeof path);
    h->base = dr__strndup(u, has ? n - (sizeof path - 1) : n);
    h->post_url = dr__malloc(n + 64);
    h->reply = dr__malloc(DR_LLM_HTTP_MAX + 1);
    h->curl = curl_easy_init();
    if (!h->url || !h->base || !h->post_url || !h->reply || !h->curl) {
        dr__llm_http_free(h);
        return dr__fail(err, DR_NOMEM, "http: cannot create a client");
    }
    memcpy(h->url, u, n);
    memcpy(h->url + n, has ? "" : path, has ? 1 : sizeof path);
    if (has) h->url[n] = 0;
    h->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (p->llm_key && h->headers) {
        char auth[600];
        snprintf(auth, sizeof auth, "Authorization: Bearer %.500s", p->llm_key);
        struct curl_slist *s2 = curl_slist_append(h->headers, auth);
        if (s2) h->headers = s2;
    }
    if (!h->headers) {
        dr__llm_http_free(h);
        return dr__fail(err, DR_NOMEM, "http: out of memory");
    }
    uint32_t to = p->timeout_ms ? p->timeout_ms : 10000;
    curl_easy_setopt(h->curl, CURLOPT_URL, h->url);
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, (long)to);
    curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)(to < 3000 ? to : 3000));
    curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    *out = h;
    return DR_OK;
}

/* n_ctx from a /props reply: default_generation_settings.n_ctx (llama-server) or n_ctx. */
static uint32_t props_n_ctx(const char *reply, size_t len) {
    json_t *root = json_loadb(reply, len, 0, NULL);
    json_t *v = json_object_get(json_object_get(root, "default_generation_settings"), "n_ctx");
    if (!json_is_integer(v)) v = json_object_get(root, "n_ctx");
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
    json_decref(root);
    return n > 0 && n < (json_int_t)UINT32_MAX ? (uint32_t)n : 0;
}

uint32_t dr__llm_http_n_ctx(dr_http *h) {
    if (h->props_asked) return h->n_ctx_server;
    h->props_asked = 1;
    size_t n = strlen(h->url);
    static const char path[] = "/v1/chat/completions";
    if (n >= sizeof path - 1 && !strcmp(h->url + n - (sizeof path - 1), path)) n -= sizeof path - 1;
    char *url = dr__malloc(n + sizeof "/props");
    CURL *c = url ? curl_easy_init() : NULL;
    if (c) {
        memcpy(url, h->url, n);
        memcpy(url + n, "/props", sizeof "/props");
        uint32_t to = h->p.timeout_ms ? h->p.timeout_ms : 10000;
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h->headers);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)to);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(to < 3000 ? to : 3000));
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        h->reply_len = 0;
        h->overflow = 0;
        h->reply[0] = 0;
        long code = 0;
        if (curl_easy_perform(c) == CURLE_OK &&
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 200 &&
            !h->overflow)
            h->n_ctx_server = props_n_ctx(h->reply, h->reply_len);
        curl_easy_cleanup(c);
    }
    dr__free(url);
    if (h->n_ctx_server) dr__log(DR_LOG_DEBUG, "http: %s reports a context of %u tokens", h->url, h->n_ctx_server);
    return h->n_ctx_server;
}

int64_t dr__llm_http_count(const char *text, size_t len) {
    (void)text;
    return (int64_t)len + DR_HTTP_CHAT_TOKENS;
}

/* choices[0].message.content of a reply. */
static dr_status parse_reply(dr_http *h, char *out, size_t cap, dr_explain_timing *t,
                             dr_error *err) {
    json_error_t je;
    json_t *root = json_loadb(h->reply, h->reply_len, 0, &je);
    if (!root) return dr__fail(err, DR_FORMAT, "http: reply is not JSON (line %d: %s)", je.line, je.text);
    json_t *ch = json_object_get(root, "choices");
    json_t *msg = json_object_get(json_array_get(ch, 0), "message");
    json_t *content = json_object_get(msg, "content");
    dr_status st = DR_OK;
    if (!json_is_string(content)) {
        st = dr__fail(err, DR_FORMAT, "http: reply has no choices[0].message.content");
    } else {
        const char *s = json_string_value(content);
        size_t n = strnlen(s, cap - 1);
        while (n && (s[n - 1] == '\n' || s[n - 1] == ' ')) n--;
        while (n && (*s == ' ' || *s == '\n')) s++, n--;
        memcpy(out, s, n);
        out[n] = 0;
        json_t *usage = json_object_get(root, "usage");
        json_t *pt = json_object_get(usage, "prompt_tokens"), *ct = json_object_get(usage, "completion_tokens");
        if (json_is_integer(pt)) t->prompt_tokens = (uint32_t)json_integer_value(pt);
        if (json_is_integer(ct)) t->gen_tokens = (uint32_t)json_integer_value(ct);
    }
    json_decref(root);
    return st;
}

/* Sends the request set on h->curl with the retries; the reply in h->reply on DR_OK (HTTP 200). */
static dr_status perform(dr_http *h, const char *url, dr_error *err) {
    dr_status st = DR_IO;
    for (uint32_t attempt = 0; attempt <= h->p.retries; attempt++) {
        if (attempt) {
            struct timespec ts = {0, (long)(100000000L << (attempt - 1 < 4 ? attempt - 1 : 4))};
            while (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            nanosleep(&ts, NULL);
        }
        h->reply_len = 0;
        h->overflow = 0;
        h->reply[0] = 0;
        CURLcode rc = curl_easy_perform(h->curl);
        long code = 0;
        curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &code);
        if (h->overflow) {
            st = dr__fail(err, DR_LIMIT, "http: %s: reply larger than %u bytes", url, DR_LLM_HTTP_MAX);
            break;
        }
        if (rc != CURLE_OK) {
            st = dr__fail(err, DR_IO, "http: %s: %s (attempt %u)", url, curl_easy_strerror(rc), attempt + 1);
            continue;
        }
        if (code == 429 || code >= 500) {
            st = dr__fail(err, DR_IO, "http: %s: HTTP %ld (attempt %u)", url, code, attempt + 1);
            continue;
        }
        if (code != 200) { /* the start of the reply says why, control bytes blanked */
            char why[160];
            size_t n = 0;
            for (; n < h->reply_len && n + 1 < sizeof why; n++)
                why[n] = (unsigned char)h->reply[n] < 0x20 ? ' ' : h->reply[n];
            why[n] = 0;
            st = dr__fail(err, DR_IO, "http: %s: HTTP %ld: %s", url, code, why);
            break;
        }
        st = DR_OK;
        break;
    }
    return st;
}

/* POSTs body to the base URL + path; the reply (NUL-terminated, into h) in *reply. */
dr_status dr__llm_http_post(dr_http *h, const char *path, const char *body, const char **reply,
                            size_t *len, dr_error *err) {
    snprintf(h->post_url, strlen(h->base) + 64, "%s%.60s", h->base, path);
    curl_easy_setopt(h->curl, CURLOPT_URL, h->post_url);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, body);
    dr_status st = perform(h, h->post_url, err);
    curl_easy_setopt(h->curl, CURLOPT_URL, h->url);
    *reply = h->reply;
    *len = h->reply_len;
    return st;
}

dr_status dr__llm_http_generate(dr_http *h, const char *system, const char *user, const char *grammar,
                           char *out, size_t cap, dr_explain_timing *t, dr_error *err) {
    out[0] = 0;
    json_t *req = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:i, s:f, s:i}", "model",
                            h->p.llm_name ? h->p.llm_name : "default", "messages", "role",
                            "system", "content", system, "role", "user", "content", user,
                            "max_tokens", (int)h->p.max_tokens, "temperature",
                            (double)h->p.temperature, "seed", (int)(h->p.seed & 0x7fffffff));
    if (req && grammar) json_object_set_new(req, "grammar", json_string(grammar));
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!body) return dr__fail(err, DR_NOMEM, "http: cannot build the request");
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, body);
    double t0 = dr__now_seconds();
    dr_status st = perform(h, h->url, err);
    if (st == DR_OK) st = parse_reply(h, out, cap, t, err);
    free(body);
    t->decode_ms = 1e3 * (dr__now_seconds() - t0); /* the whole round trip */
    return st;
}
