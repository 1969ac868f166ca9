/*
 * explain_fit.c - fits a prompt into the generator's token budget (dr__fit, dr__fit_budget).
 *
 * DESIGN: a prompt is a list of parts, some required (instruction, request, the first fact),
 * the others ranked; the budget is the smallest context the generator has (the session's
 * n_ctx, the model's training context, a server's reported n_ctx) minus the answer's tokens.
 * The fitter joins the kept parts, counts the tokens of the whole text with the generator's
 * own counter and drops the highest-ranked optional part until the count fits: the lowest-
 * ranked evidence (or history) goes first, and the prompt is never cut inside a part. When
 * the required parts alone do not fit, the caller gets DR_LIMIT with both numbers, never a
 * truncated prompt. Counting the joined text (not the sum of the parts' counts) is exact for
 * tokenizers that merge across part boundaries; it costs one tokenisation per dropped part,
 * microseconds against a generation. Alternatives rejected: cutting the text at a byte or
 * token offset (it can cut a title in half, or the request off the end), and llama.cpp's
 * context shift (it silently forgets the instruction).
 */
#include "explain_fit.h"

#include <stdio.h>

dr_status dr__fit_budget(uint32_t n_ctx, uint32_t n_ctx_train, uint32_t n_ctx_server,
                         uint32_t reserve, uint32_t *budget, dr_error *err) {
    uint32_t c = 0;
    const uint32_t all[3] = {n_ctx, n_ctx_train, n_ctx_server};
    for (int k = 0; k < 3; k++)
        if (all[k] && (!c || all[k] < c)) c = all[k];
    *budget = 0;
    if (!c) return dr__fail(err, DR_LIMIT, "prompt: no context size is known");
    if (reserve >= c)
        return dr__fail(err, DR_LIMIT,
                        "prompt: the context of %u tokens (session %u, model trained on %u, "
                        "server %u; 0 = not known) leaves no room for a prompt after %u answer "
                        "tokens (lower the answer's max tokens)",
                        c, n_ctx, n_ctx_train, n_ctx_server, reserve);
    *budget = c - reserve;
    return DR_OK;
}

/* Joins the kept parts; -1 when they exceed cap - 1 bytes. */
static int join(const dr_fit_part *parts, size_t n, const uint8_t *keep, char *buf, size_t cap,
                size_t *len) {
    size_t l = 0;
    for (size_t k = 0; k < n; k++) {
        if (!keep[k]) continue;
        if (parts[k].len >= cap - l) return -1;
        memcpy(buf + l, parts[k].text, parts[k].len);
        l += parts[k].len;
    }
    buf[l] = 0;
    *len = l;
    return 0;
}

dr_status dr__fit(const dr_fit_part *parts, size_t n, uint32_t budget, dr_fit_count_fn count,
                  void *ud, uint8_t *keep, char *buf, size_t cap, size_t *len, uint32_t *tokens,
                  dr_error *err) {
    if (!parts || !count || !keep || !buf || !cap || !len || !tokens)
        return dr__fail(err, DR_ARG, "dr__fit: NULL argument");
    if (n > DR_FIT_MAX_PARTS) return dr__fail(err, DR_LIMIT, "prompt: %zu parts > %d", n, DR_FIT_MAX_PARTS);
    for (size_t k = 0; k < n; k++) keep[k] = 1;
    *len = 0;
    *tokens = 0;
    buf[0] = 0;
    for (;;) {
        int64_t t = -1;
        int fits = join(parts, n, keep, buf, cap, len) == 0;
        if (fits && (t = count(ud, buf, *len)) < 0) {
            size_t bytes = *len;
            buf[0] = 0;
            *len = 0;
            return dr__fail(err, DR_INTERNAL, "prompt: the tokenizer failed on %zu bytes", bytes);
        }
        if (fits && t <= (int64_t)budget) {
            *tokens = (uint32_t)t;
            return DR_OK;
        }
        size_t worst = n; /* the optional part with the highest drop, the later on ties */
        for (size_t k = 0; k < n; k++)
            if (keep[k] && parts[k].drop && (worst == n || parts[k].drop >= parts[worst].drop))
                worst = k;
        if (worst == n) {
            buf[0] = 0;
            *len = 0;
            if (!fits)
                return dr__fail(err, DR_LIMIT, "prompt: the minimum prompt exceeds %zu bytes", cap);
            return dr__fail(err, DR_LIMIT,
                            "prompt: the minimum prompt needs %lld tokens, the budget is %u",
                            (long long)t, budget);
        }
        keep[worst] = 0;
    }
}
