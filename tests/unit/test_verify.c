/* test_verify.c - the verifier accepts the template and catches planted hallucinations:
 * titles, attributes and users not in the evidence, invented citations, uncited entities,
 * unterminated quotes; quoted common-word titles; the JSON form of a fallback; influence facts
 * (history by removal) verify, and a tampered number in the text does not. */
#include <math.h>

#include "explain_fixture.h"

#include "explain_int.h"

typedef struct vfx {
    fx f;
    dr_explainer *x;
    dr_explain_session *s;
    dr_evidence ev;
    char text[DR_EXPLAIN_TEXT_MAX];
    uint32_t outside;  /* an item not in the evidence */
} vfx;

static void vfx_open(vfx *v, uint32_t u) {
    fx_movielens(&v->f);
    fx_open(&v->f, NULL, &v->x, &v->s);
    assert_ok(dr_explain_evidence(v->s, u, fx_top_item(v->f.m, u, 0), &v->ev, &e_));
    assert_true(v->ev.n >= 3);
    assert_true(dr_explain_template(v->x, &v->ev, v->text, sizeof v->text) > 0);
    v->outside = UINT32_MAX;
    for (uint32_t i = 0; i < dr_model_n_items(v->f.m) && v->outside == UINT32_MAX; i++) {
        int in = i == v->ev.item;
        for (size_t k = 0; k < v->ev.n; k++) in |= v->ev.facts[k].n_items && v->ev.facts[k].items[0] == i;
        if (!in && strncmp(dr_model_item_title(v->f.m, i), "Film", 4) == 0) v->outside = i;
    }
    assert_int_not_equal(v->outside, UINT32_MAX);
}

static void vfx_close(vfx *v) {
    dr_explain_session_free(v->s);
    dr_explainer_free(v->x);
    fx_free(&v->f);
}

static dr_verify_result check(vfx *v, const char *text) {
    dr_verify_result r;
    dr_explain_verify(v->x, &v->ev, text, &r);
    return r;
}

static void test_template_verifies(void **st) {
    (void)st;
    fx f;
    fx_movielens(&f);
    dr_explainer *x = NULL;
    dr_explain_session *s = NULL;
    fx_open(&f, NULL, &x, &s);
    for (uint32_t u = 0; u < dr_model_n_users(f.m); u++) {
        dr_explanation ex;
        assert_ok(dr_explain(s, u, fx_top_item(f.m, u, u % 3), &ex, &e_));
        if (!ex.verified) fail_msg("user %u: %s: %s", u, ex.text, ex.check.reason);
        assert_false(ex.fallback);
        assert_int_equal(ex.check.n_refs, ex.check.n_grounded);
        assert_false(ex.check.hallucinated);
        assert_true(ex.check.cited != 0);
    }
    dr_explain_session_free(s);
    dr_explainer_free(x);
    fx_free(&f);
}

static void test_planted_hallucinations(void **st) {
    (void)st;
    vfx v;
    vfx_open(&v, 2);
    char t[DR_EXPLAIN_TEXT_MAX + 200];
    dr_verify_result r = check(&v, v.text);
    assert_true(r.ok);
    /* a title that is not in the evidence, quoted and cited */
    snprintf(t, sizeof t, "%s You also liked \"%s\" [E1].", v.text, dr_model_item_title(v.f.m, v.outside));
    r = check(&v, t);
    assert_false(r.ok);
    assert_true(r.hallucinated);
    assert_true(r.n_grounded < r.n_refs);
    assert_non_null(strstr(r.reason, "not in the evidence"));
    /* the same title without quotes is still found */
    snprintf(t, sizeof t, "It resembles %s [E1].", dr_model_item_title(v.f.m, v.outside));
    r = check(&v, t);
    assert_true(r.hallucinated);
    /* an invented title */
    r = check(&v, "It is just like \"Star Wars\" [E1].");
    assert_true(r.hallucinated);
    /* a user who is not a listed neighbour, and one who does not exist */
    r = check(&v, "User 39 took it too [E1].");
    int listed = 0;
    for (size_t k = 0; k < v.ev.n; k++)
        for (uint32_t q = 0; q < v.ev.facts[k].n_users; q++)
            listed |= !strcmp(dr_model_user_id(v.f.m, v.ev.facts[k].users[q]), "39");
    assert_int_equal(r.hallucinated, !listed);
    r = check(&v, "It was loved by user 9999 [E1].");
    assert_true(r.hallucinated);
    /* an attribute not in the evidence */
    int has_romance = 0;
    for (size_t k = 0; k < v.ev.n; k++)
        has_romance |= v.ev.facts[k].attr && !strcmp(v.ev.facts[k].attr, "genre=Romance");
    r = check(&v, "It is a Romance [E1].");
    assert_int_equal(r.hallucinated, !has_romance);
    r = check(&v, "Its \"dark humour\" is great [E1].");
    int has_tag = 0;
    for (size_t k = 0; k < v.ev.n; k++)
        has_tag |= v.ev.facts[k].attr && !strcmp(v.ev.facts[k].attr, "tag=dark humour");
    assert_int_equal(r.hallucinated, !has_tag);
    vfx_close(&v);
}

static void test_structure(void **st) {
    (void)st;
    vfx v;
    vfx_open(&v, 3);
    const dr_fact *f0 = &v.ev.facts[0];
    assert_int_equal(f0->kind, DR_FACT_HISTORY);
    const char *t0 = dr_model_item_title(v.f.m, f0->items[0]);
    char t[1024];
    dr_verify_result r;
    /* a citation to a fact that does not exist, and a malformed one */
    r = check(&v, "It is close to your history [E99].");
    assert_false(r.ok);
    assert_false(r.hallucinated);
    r = check(&v, "It is close to your history [E1");
    assert_false(r.ok);
    /* an evidence title in a sentence that cites another fact */
    snprintf(t, sizeof t, "You liked \"%s\" [E%zu].", t0, v.ev.n);
    r = check(&v, t);
    assert_false(r.ok);
    assert_false(r.hallucinated);
    snprintf(t, sizeof t, "You liked \"%s\" [E1].", t0);
    r = check(&v, t);
    assert_true(r.ok);
    /* nothing cited */
    r = check(&v, "You will enjoy it.");
    assert_false(r.ok);
    assert_non_null(strstr(r.reason, "cites no evidence"));
    /* an unterminated quote */
    snprintf(t, sizeof t, "You liked \"%.8s", t0);
    r = check(&v, t);
    assert_false(r.ok);
    /* the recommended item's own title needs no citation */
    snprintf(t, sizeof t, "\"%s\" is close to \"%s\" [E1].", dr_model_item_title(v.f.m, v.ev.item), t0);
    r = check(&v, t);
    assert_true(r.ok);
    assert_int_equal(r.n_refs, 3);
    vfx_close(&v);
}

/* History facts by removal: the template verifies; a sentence quoting an influence fact's
 * score drop (rounded as written) verifies, a tampered drop or another fact's number does not,
 * and integers (counts, years) are not numbers to check. */
static void test_influence_numbers(void **st) {
    (void)st;
    fx f;
    fx_movielens(&f);
    dr_explain_params p = dr_explain_default_params();
    p.history = DR_HISTORY_REMOVAL;
    dr_explainer *x = NULL;
    dr_explain_session *s = NULL;
    fx_open(&f, &p, &x, &s);
    int seen = 0;
    for (uint32_t u = 0; u < 10; u++) {
        dr_evidence ev;
        assert_ok(dr_explain_evidence(s, u, fx_top_item(f.m, u, 0), &ev, &e_));
        if (ev.n < 2 || ev.facts[0].kind != DR_FACT_INFLUENCE) continue;
        seen++;
        char t[1024];
        dr_verify_result r;
        assert_true(dr_explain_template(x, &ev, t, sizeof t) > 0);
        assert_non_null(strstr(t, "its score the most"));
        dr_explain_verify(x, &ev, t, &r);
        assert_true(r.ok);
        const char *t0 = dr_model_item_title(f.m, ev.facts[0].items[0]);
        double v = ev.facts[0].value, other = ev.facts[1].value;
        snprintf(t, sizeof t, "Without \"%s\" [E1] its score is %.2f lower.", t0, v);
        dr_explain_verify(x, &ev, t, &r);
        if (!r.ok) fail_msg("'%s': %s", t, r.reason);
        snprintf(t, sizeof t, "Without \"%s\" [E1] its score is %.1f lower, 1 of 3 items.", t0, v);
        dr_explain_verify(x, &ev, t, &r);
        assert_true(r.ok);
        snprintf(t, sizeof t, "Without \"%s\" [E1] its score is %.2f lower.", t0, v + 0.3);
        dr_explain_verify(x, &ev, t, &r);
        assert_false(r.ok);
        assert_false(r.hallucinated);
        assert_non_null(strstr(r.reason, "a number that no cited fact holds"));
        if (fabs(other - v) > 0.01 && fabs(other - ev.facts[0].total) > 0.01) {
            snprintf(t, sizeof t, "Without \"%s\" [E1] its score is %.2f lower.", t0, other);
            dr_explain_verify(x, &ev, t, &r);
            assert_false(r.ok);
        }
    }
    assert_true(seen > 0);
    dr_explain_session_free(s);
    dr_explainer_free(x);
    fx_free(&f);
}

/* A failed generator returns the template text, flagged, and the JSON says so. */
static void test_fallback_json(void **st) {
    (void)st;
    fx f;
    fx_movielens(&f);
    dr_explain_params p = dr_explain_default_params();
    p.generator = "http";
    p.llm_url = "http://127.0.0.1:9"; /* discard port: nothing listens */
    p.timeout_ms = 2000;
    p.retries = 1;
    dr_explainer *x = NULL;
    dr_explain_session *s = NULL;
    fx_open(&f, &p, &x, &s);
    dr_explanation ex;
    assert_ok(dr_explain(s, 1, fx_top_item(f.m, 1, 0), &ex, &e_));
    assert_true(ex.fallback);
    assert_false(ex.verified);
    assert_non_null(strstr(ex.reason, "generator: http"));
    char tmpl[DR_EXPLAIN_TEXT_MAX];
    dr_explain_template(x, &ex.evidence, tmpl, sizeof tmpl);
    assert_string_equal(ex.text, tmpl);
    char json[1 << 15];
    assert_true(dr_explanation_json(x, &ex, json, sizeof json) > 0);
    assert_non_null(strstr(json, "\"verified\":false,\"fallback\":\"template\",\"reason\":"));
    assert_non_null(strstr(json, "\"evidence\":[{\"id\":\"E1\""));
    dr_explain_session_free(s);
    dr_explainer_free(x);
    fx_free(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_template_verifies),
        cmocka_unit_test(test_planted_hallucinations),
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_fallback_json),
        cmocka_unit_test(test_influence_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
