/*
 * llm_rank.c - LLM reranking in process: each candidate's title scored by its length-normalised
 * log-likelihood after a prompt of the user's soft token and recent history (llama.cpp).
 *
 * DESIGN: a ranker owns a GGUF model, one llama.cpp context with max_cand + 1 sequences,
 * every title's tokens (tokenised once) and the GGUF's token-embedding table (llm_align.c).
 * A request:
 *   1. the instruction stays in sequence 0 across requests (decoded once; later requests only
 *      remove the cells after it);
 *   2. the request part - "Viewer:" [user soft token] "Recent:" then per history item
 *      "- " title [item soft token], then "Next:" - is decoded as ONE batch of input
 *      embeddings (llama_batch.embd): text tokens become their own embedding rows, soft tokens
 *      the alignment map's f(h'_u), f(z'_i); so text and soft tokens mix without a decode per
 *      segment;
 *   3. sequence 0 is copied to sequences 1..N (llama_memory_seq_cp), and every candidate's
 *      title tokens but the last go in one token batch, candidate c on sequence c + 1 at the
 *      positions after the prompt: one decode for all N. The default cache has a stream per
 *      sequence (the copy duplicates the prompt's cells; each title's attention reads only
 *      its own stream); unified_kv = 1 shares the prompt's cells between all sequences
 *      instead (less memory, but on CPU every title token then scans every candidate's
 *      cells). Flash attention is off by default: its CPU kernel pads the cache to 256
 *      cells, which dominates short prompts (docs/BENCH.md);
 *   4. score_c = mean over the title's tokens of log p(token | prompt, previous title tokens):
 *      the first from the prompt's last logits, the others from the batch's.
 * The slow twin (dr_llm_rank_score_slow) decodes the prompt and then one candidate at a time in
 * sequence 0: the same numbers up to float reordering (tested). The history shown is cut from
 * the oldest end until the prompt and the candidates fit the context (cells) and, when
 * possible, the model's training context (positions). Alternatives rejected: N separate
 * contexts (N copies of the prompt's cache), and saving/restoring the prompt state per
 * candidate (llama_state_seq_*: N copies and N decodes).
 */
#include <math.h>
#include <stdio.h>

#include "common.h"
#include "explain_llm.h"
#include "llama.h"
#include "llm_align.h"
#include "llm_rank_http.h"

static const char k_instruction[] =
    "A viewer's recent movies are listed below. The next movie they watch is named last.\n";
static const char k_user[] = "Viewer:";
static const char k_recent[] = "\nRecent movies:";
static const char k_item[] = "\n- ";
static const char k_next[] = "\nNext movie: ";

typedef struct piece {
    int32_t tok[16];
    int32_t n;
} piece;

struct dr_llm_ranker {
    dr_llm_rank_params p;
    const dr_align *align;       /* borrowed; NULL: no soft tokens */
    struct llama_model *model;
    const struct llama_vocab *vocab;
    struct llama_context *ctx;
    uint32_t n_ctx, n_pos;       /* cells of one sequence (prompt + one title); positions the
                                    model was trained on (<= n_ctx) */
    uint32_t n_cells;            /* cells of the whole cache (unified: shared by all sequences) */
    uint32_t n_batch;            /* tokens of one decode */
    int32_t n_vocab, E;
    dr_tokemb te;
    uint32_t n_items, d;
    uint32_t *title_off;         /* (n_items + 1) CSR into title_tok */
    int32_t *title_tok;
    int32_t instr[256];
    int32_t n_instr;
    int instr_cached;
    piece user, recent, item, next;
    struct llama_batch eb;       /* embeddings: (n_ctx, E) */
    struct llama_batch tb;       /* tokens: (n_ctx) */
    int eb_ok, tb_ok;
    float *logp0;                /* (n_vocab) log-softmax after the prompt */
    uint32_t *start;             /* (max_cand) each candidate's first index in tb */
    uint32_t last_prompt;
    /* HTTP backend (llm_rank_http.c): titles as text */
    dr_rank_http *http;
    const dr_model *m;           /* borrowed: titles */
    const dr_dataset *ds;
    char *text;                  /* (DR_PROMPT_MAX) the prompt */
};

dr_llm_rank_params dr_llm_rank_default_params(void) {
    dr_llm_rank_params p = {0};
    p.n_ctx = 512;
    p.max_cand = 32;
    p.history = 5;
    p.title_tokens = 24;
    p.threads = 1;
    p.timeout_ms = 10000;
    p.unified_kv = 0;
    p.flash_attn = 0;
    return p;
}

void dr_llm_ranker_free(dr_llm_ranker *r) {
    if (!r) return;
    dr__rank_http_free(r->http);
    dr__free(r->text);
    if (r->eb_ok) llama_batch_free(r->eb);
    if (r->tb_ok) llama_batch_free(r->tb);
    if (r->ctx) llama_free(r->ctx);
    if (r->model) llama_model_free(r->model);
    dr__tokemb_free(&r->te);
    dr__free(r->title_off);
    dr__free(r->title_tok);
    dr__free(r->logp0);
    dr__free(r->start);
    dr__free(r);
}

static int tokenize_piece(const struct llama_vocab *v, const char *s, piece *pc) {
    pc->n = llama_tokenize(v, s, (int32_t)strlen(s), pc->tok, 16, false, false);
    return pc->n < 0 ? -1 : 0;
}

static dr_status http_create(const dr_model *m, const dr_dataset *ds, const dr_align *align,
                             const dr_llm_rank_params *p, dr_llm_ranker **out, dr_error *err) {
    if (p->llm_model || align)
        return dr__fail(err, DR_ARG, "llm rerank: the HTTP backend (%s) takes titles only: no GGUF "
                        "path and no alignment (soft tokens cannot cross a text API)", p->http_url);
    if (!p->max_cand || p->max_cand > DR_LLM_RANK_MAX_CAND || p->history > DR_LLM_RANK_MAX_HISTORY)
        return dr__fail(err, DR_ARG, "llm rerank: max_cand 1..%u, history <= %u",
                        DR_LLM_RANK_MAX_CAND, DR_LLM_RANK_MAX_HISTORY);
    if (ds && dr_dataset_n_items(ds) != dr_model_n_items(m))
        return dr__fail(err, DR_ARG, "llm rerank: the dataset has %u items, the model %u",
                        dr_dataset_n_items(ds), dr_model_n_items(m));
    dr_llm_ranker *r = dr__calloc(1, sizeof *r);
    if (!r) return dr__fail(err, DR_NOMEM, "llm rerank: out of memory");
    r->p = *p;
    r->p.llm_model = NULL, r->p.http_url = NULL, r->p.http_api = NULL; /* not owned */
    r->m = m, r->ds = ds;
    r->n_items = dr_model_n_items(m);
    r->d = dr_model_latent_dim(m);
    r->text = dr__malloc(DR_PROMPT_MAX);
    int openai = p->http_api && !strcmp(p->http_api, "openai");
    if (p->http_api && !openai && strcmp(p->http_api, "llama")) {
        dr_llm_ranker_free(r);
        return dr__fail(err, DR_ARG, "llm rerank: http_api '%s' (llama or openai)", p->http_api);
    }
    dr_status st = r->text ? dr__rank_http_create(p->http_url, openai, p->timeout_ms, &r->http, err)
                           : dr__fail(err, DR_NOMEM, "llm rerank: out of memory");
    if (st != DR_OK) {
        dr_llm_ranker_free(r);
        return st;
    }
    *out = r;
    return DR_OK;
}

/* Bytes of s kept when cut to at most max, not inside a UTF-8 sequence. */
static int utf8_cut(const char *s, size_t max) {
    size_t n = strnlen(s, max + 1);
    if (n <= max) return (int)n;
    n = max;
    while (n && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    return (int)n;
}

static const char *item_text(const dr_llm_ranker *r, uint32_t i) {
    const char *t = r->ds ? dr_dataset_item_title(r->ds, i) : dr_model_item_title(r->m, i);
    if (!t || !*t) t = r->ds ? dr_dataset_item_id(r->ds, i) : dr_model_item_id(r->m, i);
    return t ? t : "?";
}

dr_status dr_llm_ranker_create(const dr_model *m, const dr_dataset *ds, const dr_align *align,
                               const dr_llm_rank_params *p, dr_llm_ranker **out, dr_error *err) {
    *out = NULL;
    if (p->http_url) return http_create(m, ds, align, p, out, err);
    if (!p->llm_model) return dr__fail(err, DR_ARG, "llm rerank: no GGUF model given");
    if (!p->max_cand || p->max_cand > DR_LLM_RANK_MAX_CAND || p->history > DR_LLM_RANK_MAX_HISTORY ||
        !p->title_tokens || p->title_tokens > DR_LLM_RANK_MAX_TITLE || p->n_ctx < 64 ||
        p->n_ctx > (1u << 20))
        return dr__fail(err, DR_ARG, "llm rerank: max_cand 1..%u, history <= %u, title_tokens "
                        "1..%u, n_ctx 64..1048576", DR_LLM_RANK_MAX_CAND, DR_LLM_RANK_MAX_HISTORY,
                        DR_LLM_RANK_MAX_TITLE);
    uint32_t n = dr_model_n_items(m);
    if (ds && dr_dataset_n_items(ds) != n)
        return dr__fail(err, DR_ARG, "llm rerank: the dataset has %u items, the model %u",
                        dr_dataset_n_items(ds), n);
    dr_status st;
    if (align) {
        if ((st = dr_align_check_model(align, m, err)) != DR_OK) return st;
        if ((st = dr_align_check_llm(align, p->llm_model, err)) != DR_OK) return st;
    }
    if (!dr__path_exists(p->llm_model))
        return dr__fail(err, DR_IO, "%s: no such GGUF model file", p->llm_model);
    dr__llama_init();
    dr_llm_ranker *r = dr__calloc(1, sizeof *r);
    if (!r) return dr__fail(err, DR_NOMEM, "llm rerank: out of memory");
    r->p = *p;
    r->p.llm_model = NULL, r->p.http_url = NULL, r->p.http_api = NULL; /* not owned */
    r->align = align;
    r->n_items = n;
    r->d = dr_model_latent_dim(m);
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    r->model = llama_model_load_from_file(p->llm_model, mp);
    if (!r->model) {
        st = dr__fail(err, DR_FORMAT, "%s: llama.cpp could not load this GGUF model", p->llm_model);
        goto fail;
    }
    r->vocab = llama_model_get_vocab(r->model);
    r->n_vocab = llama_vocab_n_tokens(r->vocab);
    r->E = llama_model_n_embd(r->model);
    if ((st = dr__tokemb_read(p->llm_model, &r->te, err)) != DR_OK) goto fail;
    if ((int32_t)r->te.n_embd != r->E || (int32_t)r->te.n_vocab < r->n_vocab) {
        st = dr__fail(err, DR_FORMAT, "%s: token_embd.weight is %u x %u, the model says %d x %d",
                      p->llm_model, r->te.n_embd, r->te.n_vocab, r->E, r->n_vocab);
        goto fail;
    }
    if (align && dr_align_n_embd(align) != (uint32_t)r->E) {
        st = dr__fail(err, DR_ARG, "llm rerank: the alignment maps into %u dims, %s has %d",
                      dr_align_n_embd(align), p->llm_model, r->E);
        goto fail;
    }
    /* titles, tokenised once */
    r->title_off = dr__calloc((size_t)n + 1, sizeof *r->title_off);
    r->title_tok = dr__malloc(((size_t)n * p->title_tokens + 1) * sizeof *r->title_tok);
    r->logp0 = dr__malloc((size_t)r->n_vocab * sizeof *r->logp0);
    r->start = dr__calloc(p->max_cand, sizeof *r->start);
    if (!r->title_off || !r->title_tok || !r->logp0 || !r->start) goto nomem;
    for (uint32_t i = 0; i < n; i++) {
        const char *t = ds ? dr_dataset_item_title(ds, i) : dr_model_item_title(m, i);
        if (!t || !*t) t = ds ? dr_dataset_item_id(ds, i) : dr_model_item_id(m, i);
        int32_t k = dr__title_tokens(r->vocab, t ? t : "?", r->title_tok + r->title_off[i],
                                     (int32_t)p->title_tokens);
        if (k <= 0) k = dr__title_tokens(r->vocab, "?", r->title_tok + r->title_off[i], 1);
        r->title_off[i + 1] = r->title_off[i] + (uint32_t)(k > 0 ? k : 0);
    }
    r->n_instr = llama_tokenize(r->vocab, k_instruction, (int32_t)strlen(k_instruction), r->instr,
                                (int32_t)DR_ARRAY_LEN(r->instr), true, false);
    if (r->n_instr <= 0 || tokenize_piece(r->vocab, k_user, &r->user) ||
        tokenize_piece(r->vocab, k_recent, &r->recent) || tokenize_piece(r->vocab, k_item, &r->item) ||
        tokenize_piece(r->vocab, k_next, &r->next)) {
        st = dr__fail(err, DR_FORMAT, "%s: cannot tokenise the rerank prompt", p->llm_model);
        goto fail;
    }
    struct llama_context_params cp = llama_context_default_params();
    /* unified: one cache, the prompt's cells shared by every sequence, the titles after it;
     * else one stream per sequence of n_ctx cells each, the prompt's cells copied into each */
    size_t cells = p->unified_kv ? (size_t)p->n_ctx + (size_t)p->max_cand * p->title_tokens
                                 : (size_t)p->n_ctx * (p->max_cand + 1);
    r->n_batch = (uint32_t)DR_MIN(cells, (size_t)p->n_ctx + (size_t)p->max_cand * p->title_tokens);
    cp.n_ctx = (uint32_t)cells;
    cp.n_batch = r->n_batch;
    cp.n_ubatch = r->n_batch < 512 ? r->n_batch : 512;
    cp.n_seq_max = p->max_cand + 1;
    cp.kv_unified = p->unified_kv != 0;
    cp.flash_attn_type = p->flash_attn ? LLAMA_FLASH_ATTN_TYPE_AUTO : LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.n_threads = cp.n_threads_batch = p->threads > 0 ? p->threads : 1;
    cp.no_perf = true;
    r->ctx = llama_init_from_model(r->model, cp);
    if (!r->ctx) {
        st = dr__fail(err, DR_NOMEM, "llm rerank: cannot create a context of %u tokens and %u "
                      "sequences", p->n_ctx, p->max_cand + 1);
        goto fail;
    }
    r->n_cells = llama_n_ctx(r->ctx);
    r->n_ctx = p->unified_kv ? DR_MIN(r->n_cells, p->n_ctx) : DR_MIN(llama_n_ctx_seq(r->ctx), p->n_ctx);
    int32_t tr = llama_model_n_ctx_train(r->model);
    r->n_pos = tr > 0 && (uint32_t)tr < r->n_ctx ? (uint32_t)tr : r->n_ctx;
    r->eb = llama_batch_init((int32_t)r->n_ctx, r->E, 1);
    r->eb_ok = 1;
    r->tb = llama_batch_init((int32_t)r->n_batch, 0, 1);
    r->tb_ok = 1;
    *out = r;
    return DR_OK;
nomem:
    st = dr__fail(err, DR_NOMEM, "llm rerank: out of memory (%u items)", n);
fail:
    dr_llm_ranker_free(r);
    return st;
}

uint32_t dr_llm_rank_prompt_tokens(const dr_llm_ranker *r) { return r->last_prompt; }

static uint32_t title_len(const dr_llm_ranker *r, uint32_t i) {
    return r->title_off[i + 1] - r->title_off[i];
}

/* Request-part length with the last h history items shown. */
static uint32_t req_len(const dr_llm_ranker *r, const dr_llm_request *q, uint32_t h, int soft) {
    uint32_t n = (uint32_t)(r->user.n + r->recent.n + r->next.n) + (soft && q->user ? 1u : 0u);
    for (uint32_t k = 0; k < h; k++) {
        uint32_t i = q->hist[q->n_hist - h + k];
        n += (uint32_t)r->item.n + title_len(r, i) + (soft && q->items ? 1u : 0u);
    }
    return n;
}

/* The history shown: as many recent items (up to p.history) as fit; DR_LIMIT when even none does. */
static dr_status fit_prompt(const dr_llm_ranker *r, const dr_llm_request *q, int soft,
                            uint32_t *h_out, dr_error *err) {
    uint32_t cells = 0, longest = 0;
    for (size_t c = 0; c < q->n_cand; c++) {
        uint32_t m = title_len(r, q->cand[c]);
        cells += m ? m - 1 : 0;
        longest = DR_MAX(longest, m);
    }
    uint32_t h = (uint32_t)DR_MIN((size_t)r->p.history, q->n_hist);
    for (;; h--) {
        uint32_t pre = (uint32_t)r->n_instr + req_len(r, q, h, soft);
        int fits_cells = pre + longest <= r->n_ctx && cells <= r->n_batch &&
                         (!r->p.unified_kv || pre + cells <= r->n_cells);
        int fits_pos = pre + longest <= r->n_pos;
        if (fits_cells && (fits_pos || h == 0)) break;
        if (h == 0)
            return dr__fail(err, DR_LIMIT, "llm rerank: the prompt and %zu candidates do not fit "
                            "%u tokens", q->n_cand, r->n_ctx);
    }
    *h_out = h;
    return DR_OK;
}

static dr_status check_request(const dr_llm_ranker *r, const dr_llm_request *q, dr_error *err) {
    if (q->n_cand > r->p.max_cand)
        return dr__fail(err, DR_LIMIT, "llm rerank: %zu candidates (this ranker takes %u)", q->n_cand,
                        r->p.max_cand);
    for (size_t c = 0; c < q->n_cand; c++)
        if (q->cand[c] >= r->n_items)
            return dr__fail(err, DR_ARG, "llm rerank: candidate %u out of range (%u items)",
                            q->cand[c], r->n_items);
    for (size_t k = 0; k < q->n_hist; k++)
        if (q->hist[k] >= r->n_items)
            return dr__fail(err, DR_ARG, "llm rerank: history item %u out of range (%u items)",
                            q->hist[k], r->n_items);
    if (q->items && q->stride < r->d)
        return dr__fail(err, DR_ARG, "llm rerank: item latent stride %zu < d = %u", q->stride, r->d);
    return DR_OK;
}

static void put_tokens(dr_llm_ranker *r, const int32_t *tok, int32_t n, uint32_t *at) {
    for (int32_t k = 0; k < n; k++) dr__tokemb_row(&r->te, tok[k], r->eb.embd + (size_t)(*at)++ * r->E);
}

/* Decodes the instruction once (sequence 0) or trims every sequence back to it, then the
 * request part as one embedding batch; fills logp0. */
static dr_status decode_prompt(dr_llm_ranker *r, const dr_llm_request *q, uint32_t h, dr_error *err) {
    llama_memory_t mem = llama_get_memory(r->ctx);
    if (r->instr_cached) {
        llama_memory_seq_rm(mem, -1, r->n_instr, -1);
    } else {
        llama_memory_clear(mem, true);
        if (llama_decode(r->ctx, llama_batch_get_one(r->instr, r->n_instr)))
            return dr__fail(err, DR_INTERNAL, "llm rerank: decoding the instruction failed");
        r->instr_cached = 1;
    }
    int soft = r->align != NULL;
    uint32_t at = 0;
    put_tokens(r, r->user.tok, r->user.n, &at);
    if (soft && q->user) dr_align_project(r->align, q->user, r->eb.embd + (size_t)at++ * r->E);
    put_tokens(r, r->recent.tok, r->recent.n, &at);
    for (uint32_t k = 0; k < h; k++) {
        uint32_t i = q->hist[q->n_hist - h + k];
        put_tokens(r, r->item.tok, r->item.n, &at);
        put_tokens(r, r->title_tok + r->title_off[i], (int32_t)title_len(r, i), &at);
        if (soft && q->items)
            dr_align_project(r->align, q->items + (size_t)i * q->stride, r->eb.embd + (size_t)at++ * r->E);
    }
    put_tokens(r, r->next.tok, r->next.n, &at);
    for (uint32_t k = 0; k < at; k++) {
        r->eb.pos[k] = r->n_instr + (int32_t)k;
        r->eb.n_seq_id[k] = 1;
        r->eb.seq_id[k][0] = 0;
        r->eb.logits[k] = k + 1 == at;
    }
    r->eb.n_tokens = (int32_t)at;
    int32_t rc = llama_decode(r->ctx, r->eb);
    if (rc) {
        r->instr_cached = 0;
        return dr__fail(err, DR_INTERNAL, "llm rerank: decoding the prompt failed (%d)", rc);
    }
    r->last_prompt = (uint32_t)r->n_instr + at;
    const float *lg = llama_get_logits_ith(r->ctx, -1);
    float mx = lg[0];
    for (int32_t v = 1; v < r->n_vocab; v++) mx = lg[v] > mx ? lg[v] : mx;
    double s = 0;
    for (int32_t v = 0; v < r->n_vocab; v++) s += exp((double)lg[v] - mx);
    float lse = mx + (float)log(s);
    for (int32_t v = 0; v < r->n_vocab; v++) r->logp0[v] = lg[v] - lse;
    return DR_OK;
}

static double logp_of(const float *lg, int32_t n_vocab, int32_t tok) {
    float mx = lg[0];
    for (int32_t v = 1; v < n_vocab; v++) mx = lg[v] > mx ? lg[v] : mx;
    double s = 0;
    for (int32_t v = 0; v < n_vocab; v++) s += exp((double)lg[v] - mx);
    return (double)lg[tok] - mx - log(s);
}

/* Adds candidate i's title tokens but the last to tb on sequence seq; returns the first index. */
static uint32_t add_title(dr_llm_ranker *r, uint32_t i, int32_t seq) {
    const int32_t *t = r->title_tok + r->title_off[i];
    uint32_t m = title_len(r, i), first = (uint32_t)r->tb.n_tokens;
    for (uint32_t k = 0; k + 1 < m; k++) {
        int32_t j = r->tb.n_tokens++;
        r->tb.token[j] = t[k];
        r->tb.pos[j] = (int32_t)r->last_prompt + (int32_t)k;
        r->tb.n_seq_id[j] = 1;
        r->tb.seq_id[j][0] = seq;
        r->tb.logits[j] = 1;
    }
    return first;
}

static float title_score(dr_llm_ranker *r, uint32_t i, uint32_t first) {
    const int32_t *t = r->title_tok + r->title_off[i];
    uint32_t m = title_len(r, i);
    if (!m) return -1e9f;
    double s = r->logp0[t[0]];
    for (uint32_t k = 1; k < m; k++)
        s += logp_of(llama_get_logits_ith(r->ctx, (int32_t)(first + k - 1)), r->n_vocab, t[k]);
    return (float)(s / m);
}

/* The prompt as text (HTTP): the same pieces as the in-process one, titles for soft tokens'
 * places left out; the oldest history items go first when it would not fit DR_PROMPT_MAX. */
static dr_status http_prompt(dr_llm_ranker *r, const dr_llm_request *q, dr_error *err) {
    size_t h = DR_MIN((size_t)r->p.history, q->n_hist);
    for (;; h--) {
        size_t n = (size_t)snprintf(r->text, DR_PROMPT_MAX, "%s%s%s", k_instruction, k_user, k_recent);
        for (size_t k = 0; k < h && n < DR_PROMPT_MAX; k++)
        {
            const char *t = item_text(r, q->hist[q->n_hist - h + k]);
            n += (size_t)snprintf(r->text + n, DR_PROMPT_MAX - n, "%s%.*s", k_item,
                                  utf8_cut(t, DR_QUOTE_MAX), t);
        }
        if (n < DR_PROMPT_MAX) n += (size_t)snprintf(r->text + n, DR_PROMPT_MAX - n, "%s", k_next);
        if (n < DR_PROMPT_MAX) return DR_OK;
        if (h == 0) return dr__fail(err, DR_LIMIT, "llm rerank: the prompt exceeds %d bytes", DR_PROMPT_MAX);
    }
}

static dr_status http_score(dr_llm_ranker *r, const dr_llm_request *q, float *out, dr_error *err) {
    dr_status st = http_prompt(r, q, err);
    for (size_t c = 0; st == DR_OK && c < q->n_cand; c++) {
        char title[DR_QUOTE_MAX + 1];
        const char *t = item_text(r, q->cand[c]);
        snprintf(title, sizeof title, "%.*s", utf8_cut(t, DR_QUOTE_MAX), t);
        st = dr__rank_http_score(r->http, r->text, title, out + c, err);
    }
    return st;
}

dr_status dr_llm_rank_score(dr_llm_ranker *r, const dr_llm_request *q, float *out, dr_error *err) {
    dr_status st = check_request(r, q, err);
    if (r->http) return st == DR_OK ? http_score(r, q, out, err) : st;
    uint32_t h = 0;
    if (st == DR_OK) st = fit_prompt(r, q, r->align != NULL, &h, err);
    if (st == DR_OK) st = decode_prompt(r, q, h, err);
    if (st != DR_OK || !q->n_cand) return st;
    llama_memory_t mem = llama_get_memory(r->ctx);
    r->tb.n_tokens = 0;
    for (size_t c = 0; c < q->n_cand; c++) {
        llama_memory_seq_cp(mem, 0, (int32_t)c + 1, -1, -1);
        r->start[c] = add_title(r, q->cand[c], (int32_t)c + 1);
    }
    if (r->tb.n_tokens > 0) {
        int32_t rc = llama_decode(r->ctx, r->tb);
        if (rc) {
            r->instr_cached = 0;
            return dr__fail(err, DR_INTERNAL, "llm rerank: decoding %d candidate tokens failed (%d)",
                            r->tb.n_tokens, rc);
        }
    }
    for (size_t c = 0; c < q->n_cand; c++) out[c] = title_score(r, q->cand[c], r->start[c]);
    return DR_OK;
}

dr_status dr_llm_rank_score_slow(dr_llm_ranker *r, const dr_llm_request *q, float *out,
                                 dr_error *err) {
    dr_status st = check_request(r, q, err);
    if (r->http) return st == DR_OK ? http_score(r, q, out, err) : st;
    uint32_t h = 0;
    if (st == DR_OK) st = fit_prompt(r, q, r->align != NULL, &h, err);
    for (size_t c = 0; st == DR_OK && c < q->n_cand; c++) {
        if ((st = decode_prompt(r, q, h, err)) != DR_OK) break;
        r->tb.n_tokens = 0;
        uint32_t first = add_title(r, q->cand[c], 0);
        if (r->tb.n_tokens > 0 && llama_decode(r->ctx, r->tb)) {
            r->instr_cached = 0;
            return dr__fail(err, DR_INTERNAL, "llm rerank: decoding a candidate failed");
        }
        out[c] = title_score(r, q->cand[c], first);
    }
    return st;
}
