/*
 * explain_api.c - the explanation API: explainer and sessions, the generator interface
 * (template, llama, http), the template generator, the JSON form and the P-EXPLAIN driver.
 *
 * DESIGN: one path for every generator: evidence -> (prompt, grammar) -> generator -> verifier
 * -> the generated text, or the template text flagged with the reason. The template generator
 * writes deterministic sentences from the strongest facts (history items by similarity, the
 * neighbour count, shared attributes, modality, trend), citing each fact next to its entity, so
 * it always passes the verifier and is the fallback of the others. The explainer is built once
 * and only read afterwards (shared by threads); each session owns the writable state of one
 * thread. Alternative rejected: one explainer with a lock around the llama.cpp context, which
 * would serialise every request of a server behind one generation. What the evidence needs to
 * know about the model (its context window, whether its user latent folds in) comes from the
 * model's vtable through model.c, never from its kind's name: a model that reads an ordered
 * window of the history (sasrec) gets history facts by removal (DR_FACT_INFLUENCE), the others
 * by similarity. Before an LLM generator sees the evidence, the prompt is fitted to its
 * context (the session's n_ctx, the model's training context, the server's reported n_ctx,
 * less max_tokens): the last facts are dropped first, the explanation's evidence becomes the
 * facts the generator saw (so the verifier and the fallback template use the same), and a
 * prompt whose minimum does not fit is a generator error (the template is returned, flagged,
 * with the numbers); a session whose context leaves no room after max_tokens is not created.
 */
#include "explain_int.h"
#include "explain_evidence.h"
#include "explain_fit.h"
#include "explain_llm.h"
#include "explain_llm_http.h"
#include "explain_prompt.h"
#include "explain_verify.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "adapter.h"
#include "model.h"
#include "rng.h"

dr_explain_params dr_explain_default_params(void) {
    dr_explain_params p;
    memset(&p, 0, sizeof p);
    p.generator = "template";
    p.k_history = 3;
    p.k_neighbours = 20;
    p.recent = 10;
    p.max_attrs = 3;
    p.llm_name = "default";
    p.max_tokens = 128;
    p.n_ctx = 2048;
    p.threads = 1;
    p.grammar = 1;
    p.seed = 42;
    p.timeout_ms = 10000;
    p.retries = 2;
    return p;
}

const char *dr_explainer_generator(const dr_explainer *x) { return x ? x->p.generator : NULL; }

/* Copies p's strings into one owned block. */
static dr_status own_strings(dr_explainer *x) {
    const char **f[] = {&x->p.generator, &x->p.llm_model, &x->p.llm_url, &x->p.llm_name,
                        &x->p.llm_key};
    size_t total = 0;
    for (size_t k = 0; k < DR_ARRAY_LEN(f); k++) total += *f[k] ? strlen(*f[k]) + 1 : 0;
    x->strs = dr__malloc(total + 1);
    if (!x->strs) return DR_NOMEM;
    char *w = x->strs;
    for (size_t k = 0; k < DR_ARRAY_LEN(f); k++) {
        if (!*f[k]) continue;
        size_t n = strlen(*f[k]) + 1;
        memcpy(w, *f[k], n);
        *f[k] = w;
        w += n;
    }
    return DR_OK;
}

/* Item index, attribute table, unit item latents, user latents. */
static dr_status build_tables(dr_explainer *x, dr_error *err) {
    const dr_model *m = x->m;
    const float *z = dr_model_item_latents(m);
    dr_scorer *sc = NULL;
    dr_status st;
    x->item_unit = dr__malloc((size_t)x->n_items * x->d * sizeof *x->item_unit);
    x->user_lat = dr__malloc(((size_t)x->n_users * x->d + 1) * sizeof *x->user_lat);
    x->attr_off = dr__calloc((size_t)x->n_items + 1, sizeof *x->attr_off);
    if (!x->item_unit || !x->user_lat || !x->attr_off) goto nomem;
    DR_VEC(uint32_t) ids = {0};
    for (uint32_t i = 0; i < x->n_items; i++) {
        uint32_t id;
        const char *e = dr_model_item_id(m, i);
        if (dr__strtab_intern(&x->item_index, e, strlen(e), &id, NULL) != DR_OK) goto nomem_ids;
        double nn = 0;
        for (uint32_t k = 0; k < x->d; k++) nn += (double)z[(size_t)i * x->d + k] * z[(size_t)i * x->d + k];
        float inv = nn > 0 ? (float)(1.0 / sqrt(nn)) : 0.0f;
        for (uint32_t k = 0; k < x->d; k++)
            x->item_unit[(size_t)i * x->d + k] = z[(size_t)i * x->d + k] * inv;
        const char *a[256];
        size_t na = dr_model_item_attrs(m, i, a, 256);
        for (size_t k = 0; k < na && k < 256; k++) {
            if (dr__strtab_intern(&x->attrs, a[k], strlen(a[k]), &id, NULL) != DR_OK ||
                dr_vec_push(&ids, id))
                goto nomem_ids;
        }
        x->attr_off[i + 1] = (uint32_t)ids.n;
    }
    x->attr_ids = ids.a;
    if ((st = dr_scorer_create(m, &sc, err)) != DR_OK) return st;
    for (uint32_t v = 0; v < x->n_users; v++) {
        const uint32_t *h;
        size_t n = dr_model_user_history(m, v, &h);
        if ((st = dr_model_user_latent(m, sc, v, h, n, x->user_lat + (size_t)v * x->d, err)) != DR_OK) {
            dr_scorer_free(sc);
            return st;
        }
    }
    dr_scorer_free(sc);
    return DR_OK;
nomem_ids:
    dr_vec_free(&ids);
nomem:
    return dr__fail(err, DR_NOMEM, "explain: out of memory for %u users and %u items", x->n_users,
                   x->n_items);
}

void dr_explainer_free(dr_explainer *x) {
    if (!x) return;
    dr__llm_free(x->llm);
    dr__verify_free(x);
    dr__strtab_free(&x->item_index);
    dr__strtab_free(&x->attrs);
    dr__free(x->attr_off);
    dr__free(x->attr_ids);
    dr__free(x->item_unit);
    dr__free(x->user_lat);
    dr__free(x->strs);
    dr__free(x);
}

dr_status dr_explainer_create(const dr_model *m, const dr_explain_params *p, dr_explainer **out,
                              dr_error *err) {
    dr_explain_params def = dr_explain_default_params();
    dr_status st;
    if (!m || !out) return dr__fail(err, DR_ARG, "dr_explainer_create: NULL argument");
    *out = NULL;
    if (!p) p = &def;
    if (!dr_model_latent_dim(m))
        return dr__fail(err, DR_UNSUPPORTED, "explain: model '%s' has no latent space (use mf or sasrec)",
                       dr_model_name(m));
    if (!dr_model_n_users(m))
        return dr__fail(err, DR_UNSUPPORTED, "explain: the model must be loaded from a checkpoint "
                                            "(it carries the ids, titles and histories)");
    const char *g = p->generator ? p->generator : "template";
    if (strcmp(g, "template") && strcmp(g, "llama") && strcmp(g, "http"))
        return dr__fail(err, DR_ARG, "explain: unknown generator '%s' (template, llama, http)", g);
    if (!strcmp(g, "llama") && !p->llm_model)
        return dr__fail(err, DR_ARG, "explain: the llama generator needs a GGUF model path");
    if (!strcmp(g, "http") && !p->llm_url)
        return dr__fail(err, DR_ARG, "explain: the http generator needs a URL");
    if (p->data && (st = dr_model_check_dataset(m, p->data, err)) != DR_OK) return st;
    dr_explainer *x = dr__calloc(1, sizeof *x);
    if (!x) return dr__fail(err, DR_NOMEM, "explain: out of memory");
    x->m = m;
    x->p = *p;
    x->p.generator = g;
    if (!x->p.llm_name) x->p.llm_name = "default";
    if (!x->p.max_tokens || x->p.max_tokens > DR_LLM_MAX_TOKENS)
        x->p.max_tokens = x->p.max_tokens ? DR_LLM_MAX_TOKENS : 128;
    x->n_users = dr_model_n_users(m);
    x->n_items = dr_model_n_items(m);
    x->d = dr_model_latent_dim(m);
    x->fold_in = dr__model_folds_in(m);
    x->window = dr__model_window(m);
    x->removal = p->history == DR_HISTORY_REMOVAL || (p->history == DR_HISTORY_AUTO && x->window);
    if ((unsigned)p->history > DR_HISTORY_REMOVAL) {
        dr__free(x);
        return dr__fail(err, DR_ARG, "explain: unknown history mode %d", (int)p->history);
    }
    if (p->adapter && dr__adapter_dim(p->adapter) != x->d) {
        dr__free(x);
        return dr__fail(err, DR_ARG, "explain: adapter dimension %u != model latent dimension %u",
                       dr__adapter_dim(p->adapter), x->d);
    }
    if ((st = own_strings(x)) != DR_OK) {
        st = dr__fail(err, st, "explain: out of memory");
        goto fail;
    }
    if ((st = build_tables(x, err)) != DR_OK) goto fail;
    if ((st = dr__verify_build(x, err)) != DR_OK) goto fail;
    if (!strcmp(g, "llama") && (st = dr__llm_load(x->p.llm_model, &x->p, &x->llm, err)) != DR_OK)
        goto fail;
    *out = x;
    return DR_OK;
fail:
    dr_explainer_free(x);
    return st;
}

void dr_explain_session_free(dr_explain_session *s) {
    if (!s) return;
    dr__llm_ctx_free(s->llm);
    dr__llm_http_free(s->http);
    dr_scorer_free(s->sc);
    dr__free(s->h);
    dr__free(s->sim);
    dr__free(s->idx);
    dr__free(s->ctx);
    dr__free(s->ctx2);
    dr__free(s->stamp);
    dr__free(s);
}

dr_status dr_explain_session_create(dr_explainer *x, dr_explain_session **out, dr_error *err) {
    if (!x || !out) return dr__fail(err, DR_ARG, "dr_explain_session_create: NULL argument");
    *out = NULL;
    dr_explain_session *s = dr__calloc(1, sizeof *s);
    dr_status st = DR_NOMEM;
    if (!s) return dr__fail(err, DR_NOMEM, "explain: out of memory for a session");
    s->x = x;
    size_t longest = 1, nmax = DR_MAX(x->n_users, x->n_items);
    for (uint32_t v = 0; v < x->n_users; v++) {
        const uint32_t *h;
        longest = DR_MAX(longest, dr_model_user_history(x->m, v, &h));
    }
    s->h = dr__calloc(4 * (size_t)x->d + 4, sizeof *s->h);
    s->sim = dr__calloc(nmax, sizeof *s->sim);
    s->idx = dr__calloc(nmax, sizeof *s->idx);
    s->ctx = dr__calloc(longest, sizeof *s->ctx);
    s->ctx2 = dr__calloc(longest, sizeof *s->ctx2);
    s->stamp = dr__calloc(x->n_items, sizeof *s->stamp);
    if (!s->h || !s->sim || !s->idx || !s->ctx || !s->ctx2 || !s->stamp) {
        st = dr__fail(err, DR_NOMEM, "explain: out of memory for a session");
        goto fail;
    }
    if ((st = dr_scorer_create(x->m, &s->sc, err)) != DR_OK) goto fail;
    if (x->llm && (st = dr__llm_ctx_create(x->llm, &x->p, &s->llm, err)) != DR_OK) goto fail;
    uint32_t budget;
    if (s->llm && (st = dr__fit_budget(x->p.n_ctx, dr__llm_n_ctx_train(x->llm), 0,
                                       x->p.max_tokens + (x->p.soft_tokens ? 2u : 0u), &budget,
                                       err)) != DR_OK)
        goto fail;
    if (!strcmp(x->p.generator, "http") && (st = dr__llm_http_create(&x->p, &s->http, err)) != DR_OK)
        goto fail;
    *out = s;
    return DR_OK;
fail:
    dr_explain_session_free(s);
    return st;
}

/* ------------------------------------------------------------------ template */

static int name(const dr_explainer *x, int kind, uint32_t id, const char *attr, char *b,
                size_t cap, size_t *l) {
    return dr__explain_name(x, kind, id, attr, b, cap, l);
}

int dr_explain_template(const dr_explainer *x, const dr_evidence *ev, char *buf, size_t cap) {
    size_t l = 0;
    int r = 0;
    if (!x || !ev || !buf || cap == 0) return -1;
    buf[0] = 0;
    uint32_t nh = 0, na = 0, ni = 0;
    for (size_t k = 0; k < ev->n; k++) {
        nh += ev->facts[k].kind == DR_FACT_HISTORY;
        na += ev->facts[k].kind == DR_FACT_ATTRIBUTE;
        ni += ev->facts[k].kind == DR_FACT_INFLUENCE;
    }
    uint32_t seen = 0;
    for (size_t k = 0; k < ev->n && !r; k++) { /* "Your history items A [E1] and B [E2] raise ..." */
        const dr_fact *f = &ev->facts[k];
        if (f->kind != DR_FACT_INFLUENCE) continue;
        r = dr__appendf(buf, cap, &l, "%s", seen == 0 ? (ni > 1 ? "Your history items " : "Your history item ")
                                           : seen + 1 == ni ? " and " : ", ") ||
            name(x, 'i', f->items[0], NULL, buf, cap, &l) || dr__appendf(buf, cap, &l, " [E%u]", f->id);
        if (++seen == ni) r = r || dr__appendf(buf, cap, &l, ni > 1 ? " raise its score the most." : " raises its score the most.");
    }
    seen = 0;
    for (size_t k = 0; k < ev->n && !r; k++) {
        const dr_fact *f = &ev->facts[k];
        if (f->kind != DR_FACT_HISTORY) continue;
        r = dr__appendf(buf, cap, &l, "%s", seen == 0 ? (l ? " It is close to " : "It is close to ")
                                           : seen + 1 == nh ? " and " : ", ") ||
            name(x, 'i', f->items[0], NULL, buf, cap, &l) || dr__appendf(buf, cap, &l, " [E%u]", f->id);
        if (++seen == nh) r = r || dr__appendf(buf, cap, &l, " from your history.");
    }
    seen = 0;
    for (size_t k = 0; k < ev->n && !r; k++) {
        const dr_fact *f = &ev->facts[k];
        switch (f->kind) {
        case DR_FACT_NEIGHBOURS:
            r = dr__appendf(buf, cap, &l, "%s%.0f of your %.0f nearest users took it", l ? " " : "",
                           f->value, f->total);
            for (uint32_t q = 0; q < f->n_users && !r; q++)
                r = dr__appendf(buf, cap, &l, "%s", q == 0 ? ", among them " : q + 1 == f->n_users ? " and " : ", ") ||
                    name(x, 'u', f->users[q], NULL, buf, cap, &l);
            r = r || dr__appendf(buf, cap, &l, " [E%u].", f->id);
            break;
        case DR_FACT_ATTRIBUTE:
            r = dr__appendf(buf, cap, &l, "%s", seen == 0 ? (l ? " It shares " : "It shares ")
                                               : seen + 1 == na ? " and " : ", ") ||
                name(x, 'a', 0, f->attr, buf, cap, &l) || dr__appendf(buf, cap, &l, " [E%u]", f->id);
            if (++seen == na) r = r || dr__appendf(buf, cap, &l, " with your recent items.");
            break;
        case DR_FACT_MODALITY:
            r = dr__appendf(buf, cap, &l, "%sIts %s features are closest to ", l ? " " : "",
                           f->attr) ||
                name(x, 'i', f->items[0], NULL, buf, cap, &l) ||
                dr__appendf(buf, cap, &l, " in your history [E%u].", f->id);
            break;
        case DR_FACT_TREND:
            r = dr__appendf(buf, cap, &l, "%sIt was taken %.0f times in the last %.0f events%s [E%u].",
                           l ? " " : "", f->value, f->total,
                           f->trend > 0.05 ? ", trending up" : f->trend < -0.05 ? ", trending down" : "",
                           f->id);
            break;
        default:
            break;
        }
    }
    if (!ev->n && !r) r = dr__appendf(buf, cap, &l, "No evidence about this item is available.");
    return r ? -1 : (int)l;
}

/* ------------------------------------------------------------------ explain */

static void copy_text(char *dst, const char *src) {
    size_t n = strnlen(src, DR_EXPLAIN_TEXT_MAX - 1);
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* The soft-token vectors: the user latent and the item latent (2, d). */
static dr_status soft_vectors(dr_explain_session *s, uint32_t u, uint32_t item, float *out,
                              dr_error *err) {
    const dr_explainer *x = s->x;
    const uint32_t *h;
    size_t n = dr_model_user_history(x->m, u, &h);
    dr_status st = dr_model_user_latent(x->m, s->sc, u, h, n, out, err);
    if (st == DR_OK)
        memcpy(out + x->d, dr_model_item_latents(x->m) + (size_t)item * x->d, x->d * sizeof *out);
    return st;
}

/* A fit counter: the llama session's own tokenizer, the instruction with BOS and the rest
 * after it, as dr__llm_generate decodes them; or the http upper bound. */
typedef struct fit_count {
    dr_explain_session *s;
    size_t prefix;
    int64_t prefix_tokens;     /* the instruction's count, once per form (-1: not yet) */
} fit_count;

static int64_t count_tokens(void *ud, const char *text, size_t len) {
    fit_count *c = ud;
    if (!c->s->llm) return dr__llm_http_count(text, len);
    size_t p = DR_MIN(c->prefix, len);
    if (c->prefix_tokens < 0 || p < c->prefix) c->prefix_tokens = dr__llm_count(c->s->llm, text, p, 1);
    int64_t a = c->prefix_tokens;
    int64_t b = len > p ? dr__llm_count(c->s->llm, text + p, len - p, 0) : 0;
    return a < 0 || b < 0 ? -1 : a + b;
}

/* The prompt for ev fitted to the generator's context into s->prompt, trying the full form
 * then the short one; ev keeps the facts that made it. */
static dr_status fit_prompt(dr_explain_session *s, dr_evidence *ev, size_t *prefix,
                            uint32_t *dropped, dr_error *err) {
    const dr_explainer *x = s->x;
    uint32_t budget, tokens;
    size_t nf = 0;
    dr_status st = s->llm ? dr__fit_budget(dr__llm_ctx_limit(s->llm), dr__llm_n_ctx_train(x->llm), 0,
                                           x->p.max_tokens + (x->p.soft_tokens ? 2u : 0u), &budget, err)
                          : dr__fit_budget(x->p.n_ctx, 0, dr__llm_http_n_ctx(s->http), x->p.max_tokens,
                                           &budget, err);
    if (st != DR_OK) return st;
    for (int form = 0; form < DR_PROMPT_FORMS; form++) {
        fit_count c = {s, dr__explain_prefix_len(form), -1};
        st = dr__explain_prompt_fit(x, ev, form, budget, count_tokens, &c, s->prompt, sizeof s->prompt,
                                    s->part, sizeof s->part, prefix, &nf, &tokens,
                                    form + 1 < DR_PROMPT_FORMS ? NULL : err);
        if (st != DR_LIMIT) break;
    }
    if (st == DR_OK) {
        *dropped = (uint32_t)(ev->n - nf);
        ev->n = nf;
    }
    return st;
}

dr_status dr_explain(dr_explain_session *s, uint32_t u, uint32_t item, dr_explanation *out,
                     dr_error *err) {
    if (!s || !out) return dr__fail(err, DR_ARG, "dr_explain: NULL argument");
    const dr_explainer *x = s->x;
    memset(&out->timing, 0, sizeof out->timing);
    out->text[0] = out->generated[0] = out->reason[0] = 0;
    out->verified = out->fallback = out->no_fit = 0;
    out->facts_dropped = 0;
    out->generator = x->p.generator;
    double t0 = dr__now_seconds();
    dr_status st = dr_explain_evidence(s, u, item, &out->evidence, err);
    if (st != DR_OK) return st;
    double t1 = dr__now_seconds();
    out->timing.evidence_ms = 1e3 * (t1 - t0);
    dr_explain_template(x, &out->evidence, out->text, sizeof out->text);
    dr_error ge = {0};
    dr_status gs = DR_OK;
    if (!strcmp(x->p.generator, "template")) {
        copy_text(out->generated, out->text);
    } else if (!out->evidence.n) {
        gs = dr__fail(&ge, DR_NOTFOUND, "no evidence for this pair");
    } else {
        size_t prefix = 0;
        double tp = dr__now_seconds();
        gs = fit_prompt(s, &out->evidence, &prefix, &out->facts_dropped, &ge);
        out->no_fit = gs == DR_LIMIT;
        if (gs == DR_OK) dr_explain_template(x, &out->evidence, out->text, sizeof out->text);
        int use_grammar = s->llm ? x->p.grammar : x->p.http_grammar;
        if (gs == DR_OK && use_grammar)
            gs = dr_explain_grammar(x, &out->evidence, s->grammar, sizeof s->grammar, &ge);
        float *soft = NULL;
        if (gs == DR_OK && s->llm && x->p.soft_tokens) {
            soft = s->h + 2 * (size_t)x->d; /* (2, d): h's scratch tail */
            gs = soft_vectors(s, u, item, soft, &ge);
        }
        out->timing.prompt_ms = 1e3 * (dr__now_seconds() - tp);
        if (gs == DR_OK && s->llm)
            gs = dr__llm_generate(s->llm, s->prompt, prefix, use_grammar ? s->grammar : NULL, soft,
                                 x->d, out->generated, sizeof out->generated, &out->timing, &ge);
        else if (gs == DR_OK) {
            s->prompt[prefix - 1] = 0; /* the instruction ends in '\n': system | user */
            gs = dr__llm_http_generate(s->http, s->prompt, s->prompt + prefix,
                                  use_grammar ? s->grammar : NULL, out->generated,
                                  sizeof out->generated, &out->timing, &ge);
            s->prompt[prefix - 1] = '\n';
        }
    }
    double tv = dr__now_seconds();
    if (gs == DR_OK) {
        dr_explain_verify(x, &out->evidence, out->generated, &out->check);
        if (out->check.ok) {
            out->verified = 1;
            copy_text(out->text, out->generated);
        } else {
            out->fallback = 1;
            snprintf(out->reason, sizeof out->reason, "verifier: %s", out->check.reason);
        }
    } else {
        memset(&out->check, 0, sizeof out->check);
        out->fallback = 1;
        snprintf(out->reason, sizeof out->reason, "generator: %s", ge.msg[0] ? ge.msg : dr_status_message(gs));
    }
    double t2 = dr__now_seconds();
    out->timing.verify_ms = 1e3 * (t2 - tv);
    out->timing.total_ms = 1e3 * (t2 - t0);
    return DR_OK;
}

/* ------------------------------------------------------------------ JSON */

static int jstr(char *b, size_t cap, size_t *l, const char *s) {
    if (dr__appendf(b, cap, l, "\"")) return -1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int r = *p == '"' || *p == '\\' ? dr__appendf(b, cap, l, "\\%c", *p)
                : *p < 0x20 ? dr__appendf(b, cap, l, "\\u%04x", *p)
                            : dr__appendf(b, cap, l, "%c", *p);
        if (r) return -1;
    }
    return dr__appendf(b, cap, l, "\"");
}

static int json_item(const dr_explainer *x, uint32_t j, char *b, size_t cap, size_t *l) {
    return dr__appendf(b, cap, l, "{\"item\":") || jstr(b, cap, l, dr_model_item_id(x->m, j)) ||
           dr__appendf(b, cap, l, ",\"title\":") || jstr(b, cap, l, dr_model_item_title(x->m, j)) ||
           dr__appendf(b, cap, l, "}");
}

int dr_explanation_json(const dr_explainer *x, const dr_explanation *e, char *b, size_t cap) {
    size_t l = 0;
    if (!x || !e || !b || cap == 0) return -1;
    const dr_evidence *ev = &e->evidence;
    int r = dr__appendf(b, cap, &l, "{\"user\":") || jstr(b, cap, &l, dr_model_user_id(x->m, ev->user)) ||
            dr__appendf(b, cap, &l, ",\"item\":") || jstr(b, cap, &l, dr_model_item_id(x->m, ev->item)) ||
            dr__appendf(b, cap, &l, ",\"title\":") || jstr(b, cap, &l, dr_model_item_title(x->m, ev->item)) ||
            dr__appendf(b, cap, &l, ",\"generator\":") || jstr(b, cap, &l, x->p.generator) ||
            dr__appendf(b, cap, &l, ",\"text\":") || jstr(b, cap, &l, e->text) ||
            dr__appendf(b, cap, &l, ",\"verified\":%s,\"fallback\":%s", e->verified ? "true" : "false",
                       e->fallback ? "\"template\"" : "null");
    if (!r && e->fallback) r = dr__appendf(b, cap, &l, ",\"reason\":") || jstr(b, cap, &l, e->reason);
    if (!r && strcmp(x->p.generator, "template"))
        r = dr__appendf(b, cap, &l, ",\"generated\":") || jstr(b, cap, &l, e->generated);
    r = r || dr__appendf(b, cap, &l, ",\"evidence\":[");
    for (size_t k = 0; k < ev->n && !r; k++) {
        const dr_fact *f = &ev->facts[k];
        r = dr__appendf(b, cap, &l, "%s{\"id\":\"E%u\",\"kind\":\"%s\",\"value\":%.6g,\"total\":%.6g",
                       k ? "," : "", f->id, dr_fact_kind_name(f->kind), f->value, f->total);
        if (!r && f->kind == DR_FACT_TREND) r = dr__appendf(b, cap, &l, ",\"trend\":%.6g", f->trend);
        if (!r && f->attr)
            r = dr__appendf(b, cap, &l, ",\"%s\":", f->kind == DR_FACT_MODALITY ? "modality" : "attribute") ||
                jstr(b, cap, &l, f->attr);
        if (!r && f->n_items) r = dr__appendf(b, cap, &l, ",\"items\":[");
        for (uint32_t q = 0; q < f->n_items && !r; q++)
            r = dr__appendf(b, cap, &l, "%s", q ? "," : "") || json_item(x, f->items[q], b, cap, &l);
        if (!r && f->n_items) r = dr__appendf(b, cap, &l, "]");
        if (!r && f->n_users) r = dr__appendf(b, cap, &l, ",\"users\":[");
        for (uint32_t q = 0; q < f->n_users && !r; q++)
            r = dr__appendf(b, cap, &l, "%s", q ? "," : "") || jstr(b, cap, &l, dr_model_user_id(x->m, f->users[q]));
        if (!r && f->n_users) r = dr__appendf(b, cap, &l, "]");
        r = r || dr__appendf(b, cap, &l, "}");
    }
    const dr_explain_timing *t = &e->timing;
    r = r || dr__appendf(b, cap, &l,
                        "],\"timing_ms\":{\"evidence\":%.3f,\"prompt\":%.3f,\"prefill\":%.3f,"
                        "\"decode\":%.3f,\"verify\":%.3f,\"total\":%.3f},\"tokens\":{\"prompt\":%u,"
                        "\"cached\":%u,\"generated\":%u}}",
                        t->evidence_ms, t->prompt_ms, t->prefill_ms, t->decode_ms, t->verify_ms,
                        t->total_ms, t->prompt_tokens, t->cached_tokens, t->gen_tokens);
    return r ? -1 : (int)l;
}

/* ------------------------------------------------------------------ P-EXPLAIN */

dr_explain_eval_params dr_explain_eval_default_params(void) {
    dr_explain_eval_params p = {1000, 10, 42, NULL, NULL};
    return p;
}

static int dbl_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n) {
    if (!n) return 0;
    qsort(v, n, sizeof *v, dbl_cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Whether removing the items the cited facts name (history and modality facts; an attribute
 * fact names an attribute, not items) from u's history lowers the item's score. */
static dr_status deletion_lowers(dr_explain_session *s, const dr_evidence *ev, uint32_t cited,
                                 uint32_t *ctx, int *lowers, dr_error *err) {
    const uint32_t *h;
    size_t n = dr_model_user_history(s->x->m, ev->user, &h), m = 0;
    for (size_t k = 0; k < n; k++) {
        int drop = 0;
        for (size_t f = 0; f < ev->n && !drop; f++) { /* items the text names: history, modality */
            if (!(cited >> f & 1u) || ev->facts[f].kind == DR_FACT_ATTRIBUTE) continue;
            for (uint32_t q = 0; q < ev->facts[f].n_items && !drop; q++)
                drop = ev->facts[f].items[q] == h[k];
        }
        if (!drop) ctx[m++] = h[k];
    }
    float before, after;
    dr_status st = dr__explain_score(s, ev->user, h, n, ev->item, &before, err);
    if (st == DR_OK) st = dr__explain_score(s, ev->user, ctx, m, ev->item, &after, err);
    *lowers = st == DR_OK && m < n && after < before;
    return st;
}

dr_status dr_eval_explain(dr_explainer *x, const dr_explain_eval_params *p,
                          dr_explain_eval_result *out, dr_error *err) {
    dr_explain_eval_params def = dr_explain_eval_default_params();
    if (!x || !out) return dr__fail(err, DR_ARG, "dr_eval_explain: NULL argument");
    if (!p) p = &def;
    memset(out, 0, sizeof *out);
    uint32_t n = p->n, top = p->top ? DR_MIN(p->top, (uint32_t)DR_RECOMMEND_MAX_K) : 10;
    dr_explain_session *s = NULL;
    dr_explanation *e = dr__malloc(sizeof *e);
    double *tm = dr__calloc(6 * (size_t)n + 1, sizeof *tm);
    uint64_t *pairs = dr__calloc((size_t)n + 1, sizeof *pairs);
    uint32_t *users = dr__calloc((size_t)x->n_users + 1, sizeof *users);
    uint32_t *ctx = NULL;
    dr_rec rec[DR_RECOMMEND_MAX_K];
    dr_status st = DR_NOMEM;
    if (!e || !tm || !pairs || !users) {
        st = dr__fail(err, DR_NOMEM, "P-EXPLAIN: out of memory");
        goto done;
    }
    if ((st = dr_explain_session_create(x, &s, err)) != DR_OK) goto done;
    ctx = s->ctx; /* the session's history buffer is free between requests */
    uint32_t ne = 0;
    for (uint32_t v = 0; v < x->n_users; v++) {
        const uint32_t *h;
        if (dr_model_user_history(x->m, v, &h) >= 3) users[ne++] = v; /* P-LOO evaluation users */
    }
    if (!ne || !n) {
        st = dr__fail(err, DR_ARG, "P-EXPLAIN: no evaluation users (or n = 0)");
        goto done;
    }
    if ((uint64_t)ne * top < (uint64_t)n) {
        st = dr__fail(err, DR_ARG, "P-EXPLAIN: %u pairs asked, only %u users x top %u exist", n, ne, top);
        goto done;
    }
    dr_rng rng;
    dr__rng_seed(&rng, p->seed, 0x45585031u);
    double t_start = dr__now_seconds(), ground = 0, refs = 0, hall = 0, hall0 = 0, faithful = 0,
           verified = 0, valid = 0, facts = 0, ptok = 0, gtok = 0, pms = 0, dms = 0, no_fit = 0,
           dropped = 0;
    uint32_t ptok_max = 0;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t u, r, got = 0;
        uint64_t key;
        int dup;
        do {
            u = users[dr__rng_below(&rng, ne)];
            r = (uint32_t)dr__rng_below(&rng, top);
            key = (uint64_t)u << 32 | r;
            dup = 0;
            for (uint32_t q = 0; q < k && !dup; q++) dup = pairs[q] == key;
        } while (dup);
        pairs[k] = key;
        const uint32_t *h;
        size_t nh = dr_model_user_history(x->m, u, &h);
        if ((st = dr_recommend(x->m, s->sc, u, h, nh, top, rec, &got, err)) != DR_OK) goto done;
        uint32_t item = rec[r < got ? r : got - 1].item;
        if ((st = dr_explain(s, u, item, e, err)) != DR_OK) goto done;
        dr_verify_result fin;
        dr_explain_verify(x, &e->evidence, e->text, &fin);
        ground += fin.n_grounded;
        refs += fin.n_refs;
        hall += fin.hallucinated;
        hall0 += e->check.hallucinated;
        verified += e->verified;
        for (size_t f = 0; f < e->evidence.n; f++) valid += dr_explain_fact_valid(s, &e->evidence, f);
        facts += (double)e->evidence.n;
        int lowers = 0;
        if ((st = deletion_lowers(s, &e->evidence, fin.cited, ctx, &lowers, err)) != DR_OK) goto done;
        faithful += lowers;
        const dr_explain_timing *t = &e->timing;
        double v[6] = {t->evidence_ms, t->prompt_ms, t->prefill_ms, t->decode_ms, t->verify_ms,
                       t->total_ms};
        for (int q = 0; q < 6; q++) tm[(size_t)q * n + k] = v[q];
        no_fit += e->no_fit;
        dropped += e->facts_dropped;
        ptok_max = DR_MAX(ptok_max, t->prompt_tokens + t->cached_tokens);
        ptok += t->prompt_tokens;
        gtok += t->gen_tokens;
        pms += t->prefill_ms;
        dms += t->decode_ms;
        if (p->progress) p->progress(p->progress_ud, "P-EXPLAIN", k + 1, n);
    }
    snprintf(out->dataset, sizeof out->dataset, "%s",
             dr_model_meta(x->m, "dataset") ? dr_model_meta(x->m, "dataset") : "");
    snprintf(out->generator, sizeof out->generator, "%s", x->p.generator);
    out->n = n;
    out->grounding_precision = refs > 0 ? ground / refs : 1.0;
    out->hallucination_rate = hall / n;
    out->hallucination_rate_before_verify = hall0 / n;
    out->evidence_validity = facts > 0 ? valid / facts : 1.0;
    out->deletion_faithfulness = faithful / n;
    out->verified_rate = verified / n;
    out->n_facts = (size_t)facts;
    out->n_refs = (size_t)refs;
    double *med[6] = {&out->evidence_ms, &out->prompt_ms, &out->prefill_ms, &out->decode_ms,
                      &out->verify_ms, &out->total_ms};
    for (int q = 0; q < 6; q++) *med[q] = median(tm + (size_t)q * n, n);
    out->prompt_tok_s = pms > 0 ? ptok / (pms / 1e3) : 0;
    out->no_fit_rate = no_fit / n;
    out->facts_dropped = dropped / n;
    out->prompt_tokens_max = ptok_max;
    out->gen_tok_s = dms > 0 ? gtok / (dms / 1e3) : 0;
    out->seconds = dr__now_seconds() - t_start;
    st = DR_OK;
done:
    dr_explain_session_free(s);
    dr__free(e);
    dr__free(tm);
    dr__free(pairs);
    dr__free(users);
    return st;
}

int dr_explain_eval_json(const dr_explain_eval_result *r, char *b, size_t cap) {
    size_t l = 0;
    if (!r || !b || !cap) return -1;
    int x = dr__appendf(b, cap, &l, "{\"protocol\":\"P-EXPLAIN\",\"dataset\":") ||
            jstr(b, cap, &l, r->dataset) || dr__appendf(b, cap, &l, ",\"generator\":") ||
            jstr(b, cap, &l, r->generator) ||
            dr__appendf(b, cap, &l,
                       ",\"n\":%u,\"explain\":{\"grounding_precision\":%.6f,\"hallucination_rate\":%.6f,"
                       "\"hallucination_rate_before_verify\":%.6f,\"evidence_validity\":%.6f,"
                       "\"deletion_faithfulness\":%.6f},\"timing_ms\":{\"evidence\":%.4f,\"prompt\":%.4f,"
                       "\"prefill\":%.4f,\"decode\":%.4f,\"verify\":%.4f,\"total\":%.4f,"
                       "\"prompt_tokens_per_s\":%.1f,\"generated_tokens_per_s\":%.1f,"
                       "\"wall\":%.1f},\"counts\":{\"verified_rate\":%.6f,\"facts\":%zu,"
                       "\"references\":%zu},\"context\":{\"no_fit_rate\":%.6f,"
                       "\"facts_dropped\":%.4f,\"prompt_tokens_max\":%u}}",
                       r->n, r->grounding_precision, r->hallucination_rate,
                       r->hallucination_rate_before_verify, r->evidence_validity,
                       r->deletion_faithfulness, r->evidence_ms, r->prompt_ms, r->prefill_ms,
                       r->decode_ms, r->verify_ms, r->total_ms, r->prompt_tok_s, r->gen_tok_s,
                       1e3 * r->seconds, r->verified_rate, r->n_facts, r->n_refs, r->no_fit_rate,
                       r->facts_dropped, r->prompt_tokens_max);
    return x ? -1 : (int)l;
}
