/*
 * explain_verify.c - checks a generated explanation against its evidence (dr_explain_verify) and
 * builds the dictionary of names it resolves text with (dr__verify_build).
 *
 * DESIGN: names are compared after one normalisation: the text is cut into tokens (runs of
 * ASCII letters and digits, and of non-ASCII UTF-8 bytes), ASCII is lower-cased, and tokens
 * are joined by one space. The dictionary maps every normalised name to the entities it may
 * denote: each item title in full, without its trailing "(year)", and with a trailing
 * ", The" / ", A" / ", An" moved to the front; each attribute value. The text is scanned
 * once: a quoted span must resolve to a name; "[E#]" is a citation; "user X" / "item X"
 * name a user or item by id; elsewhere the longest dictionary name starting at each token is
 * taken (hash lookups of token runs, at most the longest name's token count), but only names
 * with a word outside the common-word list, so "Up" or "Her" count as titles only when
 * quoted. Every named entity must be in the evidence (else: hallucination), every citation
 * must exist, a sentence naming an evidence entity must cite a fact that holds it, and at
 * least one fact must be cited. A decimal number ("0.20") must be a number of a fact its
 * sentence cites (value, total or trend, rounded to the decimals written): an influence fact's
 * score drop or a similarity cannot be misquoted; integers (counts, ids, years) are not
 * checked. Alternative rejected: an Aho-Corasick automaton over raw
 * bytes (large, and punctuation or case would make "Schindler's List" and "schindlers list"
 * differ); token-run hashing is simpler and fast enough for texts of a few hundred words.
 */
#include "explain_prompt.h"
#include "explain_verify.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "model.h"


static int is_word_byte(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

/* Normalises s[0..n) into out (cap); returns the length, or -1 when longer than cap - 1.
 * *ntok receives the token count; *letters whether a token has a letter. */
static int normalise(const char *s, size_t n, char *out, size_t cap, uint32_t *ntok) {
    size_t l = 0;
    uint32_t t = 0;
    for (size_t k = 0; k < n;) {
        while (k < n && !is_word_byte((unsigned char)s[k])) k++;
        if (k >= n) break;
        if (t && l + 1 < cap) out[l++] = ' ';
        t++;
        for (; k < n && is_word_byte((unsigned char)s[k]); k++) {
            if (l + 1 >= cap) return -1;
            char c = s[k];
            out[l++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
        }
    }
    out[l] = 0;
    if (ntok) *ntok = t;
    return (int)l;
}

/* ------------------------------------------------------------------ dictionary */

typedef struct dict_pair {
    uint32_t pat, ent;
} dict_pair;

typedef struct dict_build {
    dr_strtab common;
    DR_VEC(dict_pair) pairs;
    DR_VEC(uint8_t) bare;
} dict_build;

/* Whether a normalised name may match without quotes: one of its tokens has a letter and is
 * not a common word. */
static int bare_ok(const dict_build *b, const char *norm) {
    for (const char *p = norm; *p;) {
        const char *e = strchr(p, ' ');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        int letter = 0;
        for (size_t k = 0; k < n; k++) letter |= !(p[k] >= '0' && p[k] <= '9');
        if (letter && dr__strtab_find(&b->common, p, n) == UINT32_MAX) return 1;
        p += n + (e ? 1 : 0);
    }
    return 0;
}

static dr_status dict_add(dr_explainer *x, dict_build *b, const char *name, size_t n, uint32_t ent) {
    char norm[DR_VERIFY_NORM_MAX];
    uint32_t nt;
    int l = normalise(name, n, norm, sizeof norm, &nt);
    if (l <= 0) return DR_OK; /* empty or too long to be written out: never matched */
    uint32_t id;
    bool is_new;
    if (dr__strtab_intern(&x->dict, norm, (size_t)l, &id, &is_new) != DR_OK) return DR_NOMEM;
    if (is_new && dr_vec_push(&b->bare, (uint8_t)bare_ok(b, norm))) return DR_NOMEM;
    if (nt > x->max_tokens) x->max_tokens = nt;
    return dr_vec_push(&b->pairs, ((dict_pair){id, ent})) ? DR_NOMEM : DR_OK;
}

/* The title, its year-less form and the forms with a trailing article moved to the front. */
static dr_status dict_title(dr_explainer *x, dict_build *b, const char *t, uint32_t item) {
    size_t n = strlen(t);
    uint32_t ent = DR_ENT(DR_ENT_ITEM, item);
    dr_status st = dict_add(x, b, t, n, ent);
    size_t m = n;
    while (m && t[m - 1] == ' ') m--;
    if (m >= 6 && t[m - 1] == ')' && t[m - 6] == '(') {
        int year = 1;
        for (size_t k = m - 5; k < m - 1; k++) year &= t[k] >= '0' && t[k] <= '9';
        if (year) {
            m -= 6;
            while (m && t[m - 1] == ' ') m--;
            if (st == DR_OK && m < n) st = dict_add(x, b, t, m, ent);
        }
    }
    static const char *const arts[] = {", The", ", A", ", An"};
    for (size_t a = 0; a < 3 && st == DR_OK; a++) {
        size_t al = strlen(arts[a]);
        if (m <= al || strncmp(t + m - al, arts[a], al)) continue;
        char buf[DR_VERIFY_NORM_MAX];
        int l = snprintf(buf, sizeof buf, "%s %.*s", arts[a] + 2, (int)(m - al), t);
        if (l > 0 && (size_t)l < sizeof buf) {
            st = dict_add(x, b, buf, (size_t)l, ent);
            if (st == DR_OK && m < n)
                l = snprintf(buf, sizeof buf, "%s %.*s%s", arts[a] + 2, (int)(m - al), t, t + m);
            if (st == DR_OK && m < n && l > 0 && (size_t)l < sizeof buf)
                st = dict_add(x, b, buf, (size_t)l, ent);
        }
    }
    return st;
}

static int pair_cmp(const void *a, const void *b) {
    const dict_pair *p = a, *q = b;
    if (p->pat != q->pat) return p->pat < q->pat ? -1 : 1;
    return p->ent < q->ent ? -1 : p->ent > q->ent;
}

dr_status dr__verify_build(dr_explainer *x, dr_error *err) {
    dict_build b;
    memset(&b, 0, sizeof b);
    dr_status st = DR_OK;
    for (size_t k = 0; dr_explain_words[k] && st == DR_OK; k++) {
        char norm[64];
        int l = normalise(dr_explain_words[k], strlen(dr_explain_words[k]), norm, sizeof norm, NULL);
        uint32_t id;
        if (l > 0) st = dr__strtab_intern(&b.common, norm, (size_t)l, &id, NULL);
    }
    for (uint32_t i = 0; i < x->n_items && st == DR_OK; i++) {
        const char *t = dr_model_item_title(x->m, i);
        if (t && *t) st = dict_title(x, &b, t, i);
    }
    for (uint32_t a = 0; a < x->attrs.n && st == DR_OK; a++) {
        const char *v = dr__attr_value(x->attrs.str[a]);
        st = dict_add(x, &b, v, strlen(v), DR_ENT(DR_ENT_ATTR, a));
    }
    if (st != DR_OK) goto fail;
    qsort(b.pairs.a, b.pairs.n, sizeof *b.pairs.a, pair_cmp);
    x->dict_off = dr__calloc((size_t)x->dict.n + 1, sizeof *x->dict_off);
    x->dict_ent = dr__calloc(b.pairs.n + 1, sizeof *x->dict_ent);
    if (!x->dict_off || !x->dict_ent) {
        st = DR_NOMEM;
        goto fail;
    }
    for (size_t k = 0; k < b.pairs.n; k++) {
        x->dict_off[b.pairs.a[k].pat + 1]++;
        x->dict_ent[k] = b.pairs.a[k].ent;
    }
    for (uint32_t p = 0; p < x->dict.n; p++) x->dict_off[p + 1] += x->dict_off[p];
    x->dict_bare = b.bare.a;
    b.bare.a = NULL;
    dr_vec_free(&b.pairs);
    dr__strtab_free(&b.common);
    return DR_OK;
fail:
    dr_vec_free(&b.pairs);
    dr_vec_free(&b.bare);
    dr__strtab_free(&b.common);
    return dr__fail(err, st, "explain: out of memory building the name dictionary");
}

void dr__verify_free(dr_explainer *x) {
    dr__strtab_free(&x->dict);
    dr__free(x->dict_off);
    dr__free(x->dict_ent);
    dr__free(x->dict_bare);
}

/* ------------------------------------------------------------------ scanning */

enum { T_WORD, T_QUOTE, T_CITE, T_END, T_NUM };

typedef struct tok {
    uint8_t type;
    uint32_t start, len;   /* bytes of the text (T_QUOTE: the inside of the quotes) */
    int32_t cite;          /* T_CITE: the id, -1 when malformed */
} tok;

typedef struct scan {
    const dr_explainer *x;
    const dr_evidence *ev;
    const char *text;
    tok t[DR_VERIFY_MAX_TOK];
    uint32_t n;
    dr_verify_result *r;
    /* mentions of the current sentence: entity codes (users as DR_ENT(DR_ENT_USER, v)) */
    uint32_t ment[64];
    uint32_t n_ment;
    uint32_t sent_cited;   /* facts cited in the current sentence */
    uint32_t num[16];      /* decimal numbers of the current sentence: their tokens */
    uint32_t n_num;
    int overflow;
} scan;

static void problem(scan *s, const char *fmt, const char *what, size_t n) {
    s->r->ok = 0;
    if (s->r->reason[0]) return;
    char w[96];
    size_t k = 0;
    for (; k < n && k + 1 < sizeof w; k++) w[k] = (unsigned char)what[k] < 0x20 ? ' ' : what[k];
    w[k] = 0;
    snprintf(s->r->reason, sizeof s->r->reason, fmt, w);
}

static void push(scan *s, uint8_t type, size_t start, size_t len, int32_t cite) {
    if (s->n >= DR_VERIFY_MAX_TOK) {
        s->overflow = 1;
        return;
    }
    s->t[s->n++] = (tok){type, (uint32_t)start, (uint32_t)len, cite};
}

static void tokenise(scan *s, size_t n) {
    const char *p = s->text;
    for (size_t k = 0; k < n;) {
        unsigned char c = (unsigned char)p[k];
        if (c == '"') {
            size_t e = k + 1;
            while (e < n && p[e] != '"') e += p[e] == '\\' && e + 1 < n ? 2 : 1;
            if (e >= n) {
                s->r->n_refs++;
                problem(s, "unterminated quote: %s", p + k, n - k);
                return;
            }
            push(s, T_QUOTE, k + 1, e - k - 1, 0);
            k = e + 1;
        } else if (c == '[') {
            size_t e = k + 1;
            int32_t id = -1;
            if (e < n && p[e] == 'E') {
                int64_t v = 0;
                size_t d0 = ++e;
                while (e < n && p[e] >= '0' && p[e] <= '9' && e - d0 < 6) v = v * 10 + (p[e++] - '0');
                if (e > d0 && e < n && p[e] == ']') id = (int32_t)v;
            }
            while (e < n && p[e] != ']' && e - k < 16) e++;
            push(s, T_CITE, k, (e < n ? e + 1 : n) - k, id);
            k = e < n && p[e] == ']' ? e + 1 : k + 1;
        } else if (c == '.' || c == '!' || c == '?' || c == '\n') {
            push(s, T_END, k, 1, 0);
            k++;
        } else if (is_word_byte(c)) {
            size_t e = k, d = k;
            while (d < n && p[d] >= '0' && p[d] <= '9') d++;
            if (d > k && d + 1 < n && p[d] == '.' && p[d + 1] >= '0' && p[d + 1] <= '9') {
                for (e = d + 1; e < n && p[e] >= '0' && p[e] <= '9'; e++) {} /* "0.20" */
                push(s, T_NUM, k, e - k, 0);
                k = e;
                continue;
            }
            while (e < n && is_word_byte((unsigned char)p[e])) e++;
            push(s, T_WORD, k, e - k, 0);
            k = e;
        } else {
            k++;
        }
    }
}

static int item_allowed(const dr_evidence *ev, uint32_t item) {
    if (item == ev->item) return 1;
    for (size_t f = 0; f < ev->n; f++)
        if (dr__fact_names_item(&ev->facts[f]) && ev->facts[f].items[0] == item)
            return 1;
    return 0;
}

/* Whether fact f holds entity e (items, attribute ids, users as DR_ENT(DR_ENT_USER, v)). */
static int fact_holds(const dr_explainer *x, const dr_fact *f, uint32_t e) {
    uint32_t id = DR_ENT_ID(e);
    switch (DR_ENT_KIND(e)) {
    case DR_ENT_ITEM:
        return dr__fact_names_item(f) && f->items[0] == id;
    case DR_ENT_ATTR:
        return f->kind == DR_FACT_ATTRIBUTE && f->attr &&
               dr__strtab_find(&x->attrs, f->attr, strlen(f->attr)) == id;
    default:
        if (f->kind != DR_FACT_NEIGHBOURS) return 0;
        for (uint32_t q = 0; q < f->n_users; q++)
            if (f->users[q] == id) return 1;
        return 0;
    }
}

static int ent_allowed(const scan *s, uint32_t e) {
    if (DR_ENT_KIND(e) == DR_ENT_ITEM) return item_allowed(s->ev, DR_ENT_ID(e));
    for (size_t f = 0; f < s->ev->n; f++)
        if (fact_holds(s->x, &s->ev->facts[f], e)) return 1;
    return 0;
}

/* A reference to one of the entities ents[0..n): grounded when one is in the evidence. */
static void mention(scan *s, const uint32_t *ents, uint32_t n, const char *what, size_t wn) {
    s->r->n_refs++;
    for (uint32_t k = 0; k < n; k++) {
        if (!ent_allowed(s, ents[k])) continue;
        s->r->n_grounded++;
        if (DR_ENT_KIND(ents[k]) == DR_ENT_ITEM && DR_ENT_ID(ents[k]) == s->ev->item) return;
        if (s->n_ment < DR_ARRAY_LEN(s->ment)) s->ment[s->n_ment++] = ents[k];
        return;
    }
    s->r->hallucinated = 1;
    problem(s, "names something not in the evidence: %s", what, wn);
}

/* Looks up a normalised name; returns its entity range or 0 entries. */
static uint32_t dict_find(const dr_explainer *x, const char *norm, size_t n, int need_bare,
                          const uint32_t **ents) {
    uint32_t id = dr__strtab_find(&x->dict, norm, n);
    if (id == UINT32_MAX || (need_bare && !x->dict_bare[id])) return 0;
    *ents = x->dict_ent + x->dict_off[id];
    return x->dict_off[id + 1] - x->dict_off[id];
}

/* Whether x, written with `dec` decimals, is a number of fact f rounded to them. */
static int fact_number(const dr_fact *f, double x, uint32_t dec) {
    double tol = 0.5 * pow(10.0, -(double)dec) + 1e-9;
    return fabs(x - fabs(f->value)) <= tol || fabs(x - f->total) <= tol ||
           (f->kind == DR_FACT_TREND && fabs(x - fabs(f->trend)) <= tol);
}

static void end_sentence(scan *s) {
    for (uint32_t k = 0; k < s->n_num; k++) { /* a decimal is a number of a fact it cites */
        const tok *t = &s->t[s->num[k]];
        char b[32];
        size_t n = t->len < sizeof b ? t->len : sizeof b - 1;
        memcpy(b, s->text + t->start, n);
        b[n] = 0;
        const char *dot = strchr(b, '.');
        double x = strtod(b, NULL);
        int held = 0;
        for (size_t f = 0; f < s->ev->n && !held; f++)
            held = (s->sent_cited >> f & 1u) &&
                   fact_number(&s->ev->facts[f], x, dot ? (uint32_t)strlen(dot + 1) : 0);
        if (!held) problem(s, "a number that no cited fact holds: %s", b, n);
    }
    s->n_num = 0;
    for (uint32_t k = 0; k < s->n_ment; k++) {
        int held = 0;
        for (size_t f = 0; f < s->ev->n && !held; f++)
            held = (s->sent_cited >> f & 1u) && fact_holds(s->x, &s->ev->facts[f], s->ment[k]);
        if (!held) {
            s->r->ok = 0;
            if (!s->r->reason[0])
                snprintf(s->r->reason, sizeof s->r->reason,
                         "a sentence names an evidence entity without citing its fact");
        }
    }
    s->n_ment = 0;
    s->sent_cited = 0;
}

static int tok_is(const scan *s, uint32_t k, const char *w) {
    size_t n = strlen(w);
    if (k >= s->n || s->t[k].type != T_WORD || s->t[k].len != n) return 0;
    for (size_t q = 0; q < n; q++) {
        char c = s->text[s->t[k].start + q];
        if ((c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c) != w[q]) return 0;
    }
    return 1;
}

static int all_digits(const char *p, size_t n) {
    for (size_t k = 0; k < n; k++)
        if (p[k] < '0' || p[k] > '9') return 0;
    return n > 0;
}

/* After "user(s)" or "item(s)": ids (known ones, or numbers), possibly joined by "and";
 * returns the index after them. */
static uint32_t id_list(scan *s, uint32_t k, int users) {
    for (;;) {
        if (tok_is(s, k, "and") && k + 1 < s->n && s->t[k + 1].type == T_WORD) k++;
        if (k >= s->n || s->t[k].type != T_WORD) return k;
        const char *p = s->text + s->t[k].start;
        char id[128];
        size_t n = s->t[k].len < sizeof id ? s->t[k].len : sizeof id - 1;
        memcpy(id, p, n);
        id[n] = 0;
        uint32_t v, e;
        int known = users ? dr_model_find_user(s->x->m, id, &v) == DR_OK
                          : (v = dr__strtab_find(&s->x->item_index, id, n)) != UINT32_MAX;
        if (!known && !all_digits(id, n)) return k;
        e = users ? DR_ENT(DR_ENT_USER, known ? v : 0x3fffffffu) : DR_ENT(DR_ENT_ITEM, known ? v : 0x3fffffffu);
        mention(s, &e, 1, p, n);
        k++;
    }
}

void dr_explain_verify(const dr_explainer *x, const dr_evidence *ev, const char *text,
                       dr_verify_result *out) {
    static _Thread_local scan sc; /* 20 KB: kept off the stack, one per thread */
    scan *s = &sc;
    memset(out, 0, sizeof *out);
    out->ok = 1;
    if (!x || !ev || !text) {
        out->ok = 0;
        snprintf(out->reason, sizeof out->reason, "no text");
        return;
    }
    s->x = x;
    s->ev = ev;
    s->text = text;
    s->n = 0;
    s->r = out;
    s->n_ment = 0;
    s->n_num = 0;
    s->sent_cited = 0;
    s->overflow = 0;
    size_t n = strnlen(text, DR_EXPLAIN_TEXT_MAX - 1);
    tokenise(s, n);
    if (s->overflow) problem(s, "too many words%s", "", 0);
    uint32_t all_cited = 0;
    char norm[DR_VERIFY_NORM_MAX];
    for (uint32_t k = 0; k < s->n;) {
        tok *t = &s->t[k];
        if (t->type == T_END) {
            end_sentence(s);
            k++;
        } else if (t->type == T_NUM) {
            if (s->n_num < DR_ARRAY_LEN(s->num)) s->num[s->n_num++] = k;
            else problem(s, "too many numbers in a sentence%s", "", 0);
            k++;
        } else if (t->type == T_CITE) {
            out->n_refs++;
            if (t->cite >= 1 && (size_t)t->cite <= ev->n) {
                out->n_grounded++;
                s->sent_cited |= 1u << (t->cite - 1);
                all_cited |= 1u << (t->cite - 1);
            } else {
                problem(s, "cites a fact that does not exist: %s", text + t->start, t->len);
            }
            k++;
        } else if (t->type == T_QUOTE) {
            char raw[DR_VERIFY_NORM_MAX];
            size_t rl = 0;
            for (uint32_t q = 0; q < t->len && rl + 1 < sizeof raw; q++) {
                char c = text[t->start + q];
                if (c == '\\' && q + 1 < t->len) c = text[t->start + ++q];
                raw[rl++] = c;
            }
            int l = normalise(raw, rl, norm, sizeof norm, NULL);
            const uint32_t *ents = NULL;
            uint32_t ne = l > 0 ? dict_find(x, norm, (size_t)l, 0, &ents) : 0;
            if (l > 0 && ne) mention(s, ents, ne, raw, rl);
            else if (l > 0) {
                out->n_refs++;
                out->hallucinated = 1;
                problem(s, "quotes a name that is not in the catalogue: %s", raw, rl);
            }
            k++;
        } else if (tok_is(s, k, "user") || tok_is(s, k, "users")) {
            uint32_t e = id_list(s, k + 1, 1);
            k = e > k + 1 ? e : k + 1;
        } else if (tok_is(s, k, "item") || tok_is(s, k, "items")) {
            uint32_t e = id_list(s, k + 1, 0);
            k = e > k + 1 ? e : k + 1;
        } else {
            uint32_t run = 0; /* consecutive words from k */
            while (k + run < s->n && s->t[k + run].type == T_WORD && run < x->max_tokens) run++;
            uint32_t got = 0;
            for (uint32_t L = run; L > 0 && !got; L--) {
                uint32_t first = s->t[k].start, last = s->t[k + L - 1].start + s->t[k + L - 1].len;
                int l = normalise(text + first, last - first, norm, sizeof norm, NULL);
                const uint32_t *ents = NULL;
                uint32_t ne = l > 0 ? dict_find(x, norm, (size_t)l, 1, &ents) : 0;
                if (ne) {
                    mention(s, ents, ne, text + first, last - first);
                    got = L;
                }
            }
            k += got ? got : 1;
        }
    }
    end_sentence(s);
    out->cited = all_cited;
    if (!all_cited && out->ok) problem(s, "cites no evidence%s", "", 0);
}
