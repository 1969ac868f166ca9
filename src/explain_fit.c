/*
 * explain_fit.c - fits a prompt into the generator's token budget (dr__fit, dr__fit_budget).
 *
 * DESIGN: a prompt is a list of parts, some required (instruction, request, the first fact),
 * the others ranked; the budget is the smallest context the generator has (the session's
 * n_ctx, the model's training context, a server's reported n_ctx) minus the answer's tokens.
 * The fitter joins the kept parts, counts the tokens of the whole text with the generator's
 * own counter and drops optional parts in their order (the lowest-ranked evidence or history
 * first) until the count fits: all parts are tried first, then the minimum, then a binary
 * search for the fewest drops that fit; the prompt is never cut inside a part. When the
 * required parts alone do not fit, the caller gets DR_LIMIT with both numbers, never a
 * truncated prompt. Counting the joined text (not the sum of the parts' counts) is exact for
 * tokenizers that merge across part boundaries; it costs a few tokenisations of the prompt,
 * a fraction of a millisecond against a generation. Alternatives rejected: cutting the text at a byte or
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

/* Keeps the required parts and the optional ones from order[j] on (order: the optional parts
 * in the order they go), joins and counts them; 1 when they fit budget, 0 when not, -1 when
 * the counter fails. */
static int try_keep(const dr_fit_part *parts, size_t n, const size_t *order, size_t m, size_t j,
                    uint32_t budget, dr_fit_count_fn count, void *ud, uint8_t *keep, char *buf,
                    size_t cap, size_t *len, int64_t *tokens) {
    for (size_t k = 0; k < n; k++) keep[k] = parts[k].drop == 0;
    for (size_t q = j; q < m; q++) keep[order[q]] = 1;
    *tokens = -1;
    if (join(parts, n, keep, buf, cap, len)) return 0;
    if ((*tokens = count(ud, buf, *len)) < 0) return -1;
    return *tokens <= (int64_t)budget;
}

dr_status dr__fit(const dr_fit_part *parts, size_t n, uint32_t budget, dr_fit_count_fn count,
                  void *ud, uint8_t *keep, char *buf, size_t cap, size_t *len, uint32_t *tokens,
                  dr_error *err) {
    if (!parts || !count || !keep || !buf || !cap || !len || !tokens)
        return dr__fail(err, DR_ARG, "dr__fit: NULL argument");
    if (n > DR_FIT_MAX_PARTS) return dr__fail(err, DR_LIMIT, "prompt: %zu parts > %d", n, DR_FIT_MAX_PARTS);
    size_t order[DR_FIT_MAX_PARTS] = {0}, m = 0;
    for (size_t k = n; k-- > 0;) { /* highest drop first, the later part first on ties */
        if (!parts[k].drop) continue;
        size_t q = m++;
        for (; q > 0 && parts[order[q - 1]].drop < parts[k].drop; q--) order[q] = order[q - 1];
        order[q] = k;
    }
    /* dropping the first j of order: all (j = 0) first, then the minimum (j = m), then a
     * binary search for the fewest drops that fit (the count grows with what is kept) */
    int64_t t;
    int r = try_keep(parts, n, order, m, 0, budget, count, ud, keep, buf, cap, len, &t);
    size_t j = 0;
    if (r == 0 && m > 0) {
        size_t lo = 1, hi = m;
        r = try_keep(parts, n, order, m, m, budget, count, ud, keep, buf, cap, len, &t);
        while (r == 1 && lo < hi) { /* fits(hi) holds */
            size_t mid = lo + (hi - lo) / 2;
            int rm = try_keep(parts, n, order, m, mid, budget, count, ud, keep, buf, cap, len, &t);
            if (rm < 0) r = rm;
            else if (rm) hi = mid;
            else lo = mid + 1;
        }
        j = hi;
        if (r == 1) r = try_keep(parts, n, order, m, j, budget, count, ud, keep, buf, cap, len, &t);
    }
    if (r == 1) {
        *tokens = (uint32_t)t;
        return DR_OK;
    }
    size_t bytes = *len;
    buf[0] = 0;
    *len = 0;
    *tokens = 0;
    if (r < 0) return dr__fail(err, DR_INTERNAL, "prompt: the tokenizer failed on %zu bytes", bytes);
    if (t < 0) return dr__fail(err, DR_LIMIT, "prompt: the minimum prompt exceeds %zu bytes", cap);
    return dr__fail(err, DR_LIMIT, "prompt: the minimum prompt needs %lld tokens, the budget is %u",
                    (long long)t, budget);
}
