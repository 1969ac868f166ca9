/*
 * explain_llm.c - the llama.cpp generator: a GGUF model loaded once per explainer, one context per
 * session, the instruction prefix kept in the KV cache across requests, grammar-constrained
 * greedy (or seeded) sampling.
 *
 * DESIGN: a session decodes the request-independent instruction once and keeps it as the
 * first n_prefix cells of sequence 0; each request removes the cells after the prefix
 * (llama_memory_seq_rm), decodes the evidence and the request in one batch and samples token
 * by token through a chain [grammar ->] greedy|temp+dist. The evidence text is tokenised with
 * parse_special = false, so a title spelling a control token ("</s>", "<|im_start|>") stays
 * plain text. Soft tokens (experimental): the user and item latents, unit-normalised,
 * zero-padded to n_embd and scaled to RMS 1 per dimension, are fed as two embedding
 * positions (llama_batch.embd) right after the prefix; without a learned projection this
 * is a mechanism, not an alignment. The context is the smaller of the session's n_ctx and
 * the model's training context (llama_model_n_ctx_train): a context beyond what the model was
 * trained on is never opened, and a prompt plus max_tokens that exceeds it is an error here,
 * after dr_explain has fitted the prompt to it (explain_fit.c) with the same tokenizer
 * (dr__llm_count). Alternatives rejected: llama.cpp's `common` helpers
 * (C++ only), and saving/restoring the whole state per request (llama_state_seq_*), which
 * copies the cache instead of trimming it.
 */
#include "explain_llm.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>

#include "llama.h"

struct dr_llm {
    struct llama_model *model;
    const struct llama_vocab *vocab;
    int32_t n_embd;
    uint32_t n_ctx_train;      /* the model's training context (0: not recorded) */
};

struct dr_llm_ctx {
    dr_llm *l;
    struct llama_context *ctx;
    dr_explain_params p;
    llama_token *tok;          /* (n_ctx) */
    uint32_t n_ctx;            /* llama.cpp's context (it may round up) */
    uint32_t limit;            /* tokens a prompt and its answer may use: min(asked, trained) */
    char *prefix;              /* the cached instruction, NUL-terminated (DR_PROMPT_MAX) */
    size_t prefix_len;
    int32_t n_prefix;          /* its tokens, held in sequence 0 */
    float *embd;               /* (2, n_embd) soft tokens */
};

static void llama_log(enum ggml_log_level level, const char *text, void *ud) {
    (void)ud;
    size_t n = strlen(text);
    while (n && text[n - 1] == '\n') n--;
    if (n) dr__log(level == GGML_LOG_LEVEL_ERROR ? DR_LOG_WARN : DR_LOG_DEBUG, "llama: %.*s", (int)n, text);
}

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static void backend_init(void) {
    llama_log_set(llama_log, NULL);
    llama_backend_init();
}

void dr__llama_init(void) { pthread_once(&g_once, backend_init); }

dr_status dr__llm_load(const char *path, const dr_explain_params *p, dr_llm **out, dr_error *err) {
    (void)p;
    dr__llama_init();
    if (!dr__path_exists(path)) return dr__fail(err, DR_IO, "%s: no such GGUF model file", path);
    dr_llm *l = dr__calloc(1, sizeof *l);
    if (!l) return dr__fail(err, DR_NOMEM, "llama: out of memory");
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    l->model = llama_model_load_from_file(path, mp);
    if (!l->model) {
        dr__free(l);
        return dr__fail(err, DR_FORMAT, "%s: llama.cpp could not load this GGUF model", path);
    }
    l->vocab = llama_model_get_vocab(l->model);
    l->n_embd = llama_model_n_embd(l->model);
    int32_t tr = llama_model_n_ctx_train(l->model);
    l->n_ctx_train = tr > 0 ? (uint32_t)tr : 0;
    *out = l;
    return DR_OK;
}

void dr__llm_free(dr_llm *l) {
    if (!l) return;
    llama_model_free(l->model);
    dr__free(l);
}

dr_status dr__llm_ctx_create(dr_llm *l, const dr_explain_params *p, dr_llm_ctx **out,
                            dr_error *err) {
    dr_llm_ctx *c = dr__calloc(1, sizeof *c);
    if (!c) return dr__fail(err, DR_NOMEM, "llama: out of memory");
    c->l = l;
    c->p = *p;
    c->n_ctx = p->n_ctx ? p->n_ctx : 2048;
    if (l->n_ctx_train && l->n_ctx_train < c->n_ctx) c->n_ctx = l->n_ctx_train;
    c->limit = c->n_ctx;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = c->n_ctx;
    cp.n_batch = c->n_ctx;
    cp.n_ubatch = c->n_ctx < 512 ? c->n_ctx : 512;
    cp.n_seq_max = 1;
    cp.n_threads = cp.n_threads_batch = p->threads > 0 ? p->threads : 1;
    cp.no_perf = true;
    c->ctx = llama_init_from_model(l->model, cp);
    if (c->ctx) c->n_ctx = llama_n_ctx(c->ctx); /* it may round up */
    c->tok = dr__malloc(c->n_ctx * sizeof *c->tok);
    c->prefix = dr__calloc(DR_PROMPT_MAX, 1);
    c->embd = dr__calloc(2 * (size_t)l->n_embd, sizeof *c->embd);
    if (!c->ctx || !c->tok || !c->prefix || !c->embd) {
        dr__llm_ctx_free(c);
        return dr__fail(err, DR_NOMEM, "llama: cannot create a context of %u tokens", cp.n_ctx);
    }
    if (c->limit > c->n_ctx) c->limit = c->n_ctx;
    *out = c;
    return DR_OK;
}

uint32_t dr__llm_n_ctx_train(const dr_llm *l) { return l ? l->n_ctx_train : 0; }

uint32_t dr__llm_ctx_limit(const dr_llm_ctx *c) { return c ? c->limit : 0; }

int64_t dr__llm_count(dr_llm_ctx *c, const char *text, size_t len, int bos) {
    if (len > INT32_MAX) return -1;
    int32_t k = llama_tokenize(c->l->vocab, text, (int32_t)len, c->tok, (int32_t)c->n_ctx, bos, false);
    return k < 0 ? -(int64_t)k : (int64_t)k; /* negative: the count that did not fit */
}

void dr__llm_ctx_free(dr_llm_ctx *c) {
    if (!c) return;
    if (c->ctx) llama_free(c->ctx);
    dr__free(c->tok);
    dr__free(c->prefix);
    dr__free(c->embd);
    dr__free(c);
}

/* Tokenises text[0..n) into c->tok + at; returns the count or -1 when it does not fit. */
static int32_t tokenize(dr_llm_ctx *c, const char *text, size_t n, int32_t at, bool bos) {
    int32_t room = (int32_t)c->n_ctx - at;
    if (room <= 0 || n > INT32_MAX) return -1;
    int32_t k = llama_tokenize(c->l->vocab, text, (int32_t)n, c->tok + at, room, bos, false);
    return k < 0 ? -1 : k;
}

static dr_status decode(dr_llm_ctx *c, llama_token *t, int32_t n, dr_error *err) {
    if (n <= 0) return DR_OK;
    int32_t r = llama_decode(c->ctx, llama_batch_get_one(t, n));
    return r ? dr__fail(err, DR_INTERNAL, "llama: llama_decode failed (%d) on %d tokens", r, n) : DR_OK;
}

/* The prefix in the KV cache: reuse it when it is the same text, else decode it anew. */
static dr_status ensure_prefix(dr_llm_ctx *c, const char *prompt, size_t len, dr_explain_timing *t,
                               dr_error *err) {
    llama_memory_t mem = llama_get_memory(c->ctx);
    if (c->n_prefix > 0 && len == c->prefix_len && !memcmp(c->prefix, prompt, len)) {
        llama_memory_seq_rm(mem, 0, c->n_prefix, -1);
        t->cached_tokens = (uint32_t)c->n_prefix;
        return DR_OK;
    }
    llama_memory_clear(mem, true);
    c->n_prefix = 0;
    if (len >= DR_PROMPT_MAX) return dr__fail(err, DR_LIMIT, "llama: instruction too long");
    int32_t n = tokenize(c, prompt, len, 0, true);
    if (n < 0) return dr__fail(err, DR_LIMIT, "llama: the instruction does not fit %u tokens", c->n_ctx);
    dr_status st = decode(c, c->tok, n, err);
    if (st != DR_OK) return st;
    memcpy(c->prefix, prompt, len);
    c->prefix[len] = 0;
    c->prefix_len = len;
    c->n_prefix = n;
    t->prompt_tokens += (uint32_t)n;
    return DR_OK;
}

/* Two soft-token positions after the prefix from soft (2, d). */
static dr_status decode_soft(dr_llm_ctx *c, const float *soft, uint32_t d, dr_error *err) {
    int32_t ne = c->l->n_embd;
    for (int v = 0; v < 2; v++) {
        const float *x = soft + (size_t)v * d;
        double nn = 0;
        for (uint32_t k = 0; k < d; k++) nn += (double)x[k] * x[k];
        float sc = nn > 0 ? (float)(sqrt((double)ne) / sqrt(nn)) : 0.0f;
        for (int32_t k = 0; k < ne; k++) c->embd[(size_t)v * ne + k] = (uint32_t)k < d ? x[k] * sc : 0.0f;
    }
    struct llama_batch b = llama_batch_init(2, ne, 1);
    if (!b.embd) return dr__fail(err, DR_NOMEM, "llama: out of memory for soft tokens");
    memcpy(b.embd, c->embd, 2 * (size_t)ne * sizeof *c->embd);
    for (int k = 0; k < 2; k++) {
        b.pos[k] = c->n_prefix + k;
        b.n_seq_id[k] = 1;
        b.seq_id[k][0] = 0;
        b.logits[k] = 0;
    }
    b.n_tokens = 2;
    int32_t r = llama_decode(c->ctx, b);
    llama_batch_free(b);
    return r ? dr__fail(err, DR_INTERNAL, "llama: decoding the soft tokens failed (%d)", r) : DR_OK;
}

/* The length of out[0..len) up to its last complete sentence: the last '.' outside a quoted
 * title (escapes skipped); len when there is none. An answer cut by max_tokens mid-sentence
 * (a half title, a half citation) would fail the verifier; its complete sentences pass. */
static size_t last_sentence(char *out, size_t len) {
    size_t end = 0;
    int quoted = 0;
    for (size_t k = 0; k < len; k++) {
        if (quoted && out[k] == '\\') k++;
        else if (out[k] == '"') quoted = !quoted;
        else if (!quoted && out[k] == '.') end = k + 1;
    }
    if (!end) return len;
    out[end] = 0;
    return end;
}

dr_status dr__llm_generate(dr_llm_ctx *c, const char *prompt, size_t prefix_len,
                          const char *grammar, const float *soft, uint32_t soft_d, char *out,
                          size_t cap, dr_explain_timing *t, dr_error *err) {
    const struct llama_vocab *vocab = c->l->vocab;
    struct llama_sampler *chain = NULL;
    size_t len = 0;
    out[0] = 0;
    double t0 = dr__now_seconds();
    dr_status st = ensure_prefix(c, prompt, prefix_len, t, err);
    if (st == DR_OK && soft) st = decode_soft(c, soft, soft_d, err);
    int32_t at = c->n_prefix + (soft ? 2 : 0), n = -1;
    if (st == DR_OK) {
        n = tokenize(c, prompt + prefix_len, strlen(prompt + prefix_len), at, false);
        if (n < 0 || (uint32_t)(at + n) + c->p.max_tokens > c->limit)
            st = dr__fail(err, DR_LIMIT, "llama: prompt and answer do not fit %u tokens", c->limit);
    }
    if (st == DR_OK) st = decode(c, c->tok + at, n, err);
    if (st != DR_OK) goto done;
    t->prompt_tokens += (uint32_t)n + (soft ? 2u : 0u);
    double t1 = dr__now_seconds();
    t->prefill_ms = 1e3 * (t1 - t0);
    chain = llama_sampler_chain_init(llama_sampler_chain_default_params());
    if (!chain) {
        st = dr__fail(err, DR_NOMEM, "llama: out of memory for the sampler");
        goto done;
    }
    if (grammar) {
        struct llama_sampler *g = llama_sampler_init_grammar(vocab, grammar, "root");
        if (!g) {
            st = dr__fail(err, DR_FORMAT, "llama: the evidence grammar was rejected");
            goto done;
        }
        llama_sampler_chain_add(chain, g);
    }
    if (c->p.temperature > 0) {
        llama_sampler_chain_add(chain, llama_sampler_init_temp(c->p.temperature));
        llama_sampler_chain_add(chain, llama_sampler_init_dist((uint32_t)c->p.seed));
    } else {
        llama_sampler_chain_add(chain, llama_sampler_init_greedy());
    }
    int ended = 0; /* the model ended the answer (else max_tokens cut it) */
    for (uint32_t k = 0; k < c->p.max_tokens; k++) {
        llama_token tok = llama_sampler_sample(chain, c->ctx, -1);
        if (llama_vocab_is_eog(vocab, tok)) {
            ended = 1;
            break;
        }
        char piece[256];
        int32_t m = llama_token_to_piece(vocab, tok, piece, sizeof piece, 0, false);
        t->gen_tokens++;
        if (m > 0) {
            if (len + (size_t)m + 1 > cap) break;
            memcpy(out + len, piece, (size_t)m);
            len += (size_t)m;
            out[len] = 0;
        }
        if (!grammar && memchr(piece, '\n', m > 0 ? (size_t)m : 0) && len > 1) break;
        if ((st = decode(c, &tok, 1, err)) != DR_OK) goto done;
    }
    t->decode_ms = 1e3 * (dr__now_seconds() - t1);
    if (grammar && !ended) len = last_sentence(out, len);
    /* trim: leading spaces, a trailing newline */
    size_t s0 = 0;
    while (s0 < len && (out[s0] == ' ' || out[s0] == '\n')) s0++;
    while (len > s0 && (out[len - 1] == '\n' || out[len - 1] == ' ')) len--;
    memmove(out, out + s0, len - s0);
    out[len - s0] = 0;
done:
    if (chain) llama_sampler_free(chain);
    if (st != DR_OK) c->n_prefix = 0, c->prefix_len = 0; /* the cache state is unknown */
    return st;
}
