/* test_llm_rank.c - the LLM ranker: alignment on a planted case (the loss falls, Recall@10
 * far above random), the .align file (round trip, damaged and foreign files, the GGUF hash),
 * the in-process scorer on the tiny random GGUF written here (shared-prefix batch = one by
 * one, soft tokens move the scores, lambda = 0 gives the base's ranking), out of memory, and
 * the same scorer on ../shared/models/stories260K.gguf when present. */
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "explain_fixture.h"
#include "adapter.h"
#include "serve_core.h"
#include "serve_routes.h"
#include "llm_align.h"
#include "oom.h"
#include "rng.h"
#include "tiny_gguf.h"

static char g_tiny[512], g_tiny2[512];

static void need_tiny(void) {
    if (!g_tiny[0]) {
        fprintf(stderr, "SKIP: no vocabulary GGUF under $LLAMA_DIR/models to build the tiny model\n");
        skip();
    }
}

static const char *stories(void) {
    const char *env = getenv("DR_SHARED");
    static char buf[1024];
    if (env && *env) {
        snprintf(buf, sizeof buf, "%s/models/stories260K.gguf", env);
        if (access(buf, R_OK) == 0) return buf;
    }
    return access("../shared/models/stories260K.gguf", R_OK) == 0 ? "../shared/models/stories260K.gguf" : NULL;
}

/* A planted case: targets t = A z + noise, z random; n items, d in, E out. */
typedef struct planted {
    uint32_t n, d, E;
    float *z, *t;
    uint8_t *has;
} planted;

static void planted_make(planted *p, uint32_t n, uint32_t d, uint32_t E, uint64_t seed) {
    p->n = n, p->d = d, p->E = E;
    p->z = malloc((size_t)n * d * sizeof *p->z);
    p->t = malloc((size_t)n * E * sizeof *p->t);
    p->has = malloc(n);
    float *A = malloc((size_t)E * d * sizeof *A);
    dr_rng r;
    dr__rng_seed(&r, seed, 1);
    for (size_t q = 0; q < (size_t)E * d; q++) A[q] = (float)dr__rng_normal(&r) * 0.05f;
    for (size_t q = 0; q < (size_t)n * d; q++) p->z[q] = (float)dr__rng_normal(&r) * 2.0f + 1.0f;
    for (uint32_t i = 0; i < n; i++) {
        p->has[i] = i % 10 != 9; /* some items without a title */
        for (uint32_t e = 0; e < E; e++) {
            double s = 0.01 * dr__rng_normal(&r);
            for (uint32_t k = 0; k < d; k++) s += A[(size_t)e * d + k] * (p->z[(size_t)i * d + k] - 1.0f) / 2.0f;
            p->t[(size_t)i * E + e] = (float)s;
        }
    }
    free(A);
}

static void planted_free(planted *p) { free(p->z), free(p->t), free(p->has); }

static void test_align_planted(void **st) {
    (void)st;
    planted pl;
    planted_make(&pl, 600, 12, 24, 5);
    for (int mlp = 0; mlp < 2; mlp++) {
        dr_align_params p = dr_align_default_params();
        p.hidden = mlp ? 16 : 0;
        p.epochs = mlp ? 80 : 40;
        p.batch = 64;
        dr_align *a = NULL;
        dr_align_report rep;
        assert_ok(dr__align_fit_arrays(pl.z, pl.d, pl.n, pl.d, pl.t, pl.has, pl.E, &p, 7, 9, &a, &rep, &e_));
        printf("align planted (%s): loss %.5f -> %.5f, Recall@10 train %.3f held out %.3f random %.3f\n",
               mlp ? "mlp" : "linear", rep.loss_first, rep.loss_last, rep.recall10_train,
               rep.recall10_holdout, rep.recall10_random);
        assert_true(rep.loss_last < 0.5 * rep.loss_first);
        assert_true(rep.mse_last < rep.mse_first);
        assert_int_equal(rep.n_titled, 540);
        assert_int_equal(rep.n_holdout, 54);
        assert_true(rep.recall10_holdout > 10 * rep.recall10_random);
        assert_true(rep.recall10_train > 10 * rep.recall10_random);
        /* the same loss from the reference function: lower than at a fresh start */
        double after = dr__align_loss(a, pl.z, pl.d, pl.n, pl.t, pl.has, &p);
        assert_true(after > 0 && after < rep.loss_first);
        /* same seed, same bytes */
        dr_align *b = NULL;
        assert_ok(dr__align_fit_arrays(pl.z, pl.d, pl.n, pl.d, pl.t, pl.has, pl.E, &p, 7, 9, &b, NULL, &e_));
        float ya[24], yb[24];
        dr_align_project(a, pl.z, ya);
        dr_align_project(b, pl.z, yb);
        assert_memory_equal(ya, yb, sizeof ya);
        dr_align_free(b);
        dr_align_free(a);
    }
    /* random targets: nothing to learn, held-out recall stays near random */
    planted rnd;
    planted_make(&rnd, 600, 12, 24, 6);
    dr_rng r;
    dr__rng_seed(&r, 3, 3);
    for (size_t q = 0; q < (size_t)rnd.n * rnd.E; q++) rnd.t[q] = (float)dr__rng_normal(&r);
    dr_align_params p = dr_align_default_params();
    dr_align *a = NULL;
    dr_align_report rep;
    assert_ok(dr__align_fit_arrays(rnd.z, rnd.d, rnd.n, rnd.d, rnd.t, rnd.has, rnd.E, &p, 7, 9, &a, &rep, &e_));
    assert_true(rep.recall10_holdout < 5 * rep.recall10_random);
    dr_align_free(a);
    planted_free(&rnd);
    planted_free(&pl);
}

static void test_align_file(void **st) {
    (void)st;
    planted pl;
    planted_make(&pl, 200, 6, 10, 8);
    dr_align_params p = dr_align_default_params();
    p.hidden = 5;
    p.epochs = 3;
    dr_align *a = NULL, *b = NULL;
    assert_ok(dr__align_fit_arrays(pl.z, pl.d, pl.n, pl.d, pl.t, pl.has, pl.E, &p, 0x1234, 77, &a, NULL, &e_));
    dr_align_set_lambda(a, 0.25f);
    char dir[256], path[400];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/m.align", dir);
    assert_ok(dr_align_save(a, path, &e_));
    assert_ok(dr_align_load(path, &b, &e_));
    int chosen = 0;
    assert_true(dr_align_lambda(b, &chosen) == 0.25f && chosen);
    assert_int_equal(dr_align_dim(b), 6);
    assert_int_equal(dr_align_n_embd(b), 10);
    assert_true(dr_align_llm_hash(b) == 0x1234);
    float ya[10], yb[10];
    dr_align_project(a, pl.z + 6, ya);
    dr_align_project(b, pl.z + 6, yb);
    assert_memory_equal(ya, yb, sizeof ya);
    dr_align_free(b);
    b = NULL;
    /* damage: every byte flipped in turn (a sample), truncation, garbage, empty */
    char *buf = NULL;
    size_t len = 0;
    assert_ok(dr__read_file(path, 1 << 20, &buf, &len, &e_));
    char bad[400];
    snprintf(bad, sizeof bad, "%s/bad.align", dir);
    for (size_t k = 0; k < len; k += 7) {
        buf[k] ^= 0x5a;
        FILE *f = fopen(bad, "wb");
        fwrite(buf, 1, len, f);
        fclose(f);
        buf[k] ^= 0x5a;
        dr_error e = {0};
        assert_int_equal(dr_align_load(bad, &b, &e), DR_FORMAT);
        assert_null(b);
        assert_non_null(strstr(e.msg, "bad.align"));
    }
    for (size_t cut = 0; cut < len; cut += len / 5 + 1) {
        FILE *f = fopen(bad, "wb");
        fwrite(buf, 1, cut, f);
        fclose(f);
        dr_error e = {0};
        assert_int_equal(dr_align_load(bad, &b, &e), DR_FORMAT);
    }
    dr__free(buf);
    dr_error e = {0};
    assert_int_equal(dr_align_load("/nonexistent/x.align", &b, &e), DR_IO);
    /* the fuzz corpus's files, written from docs/FORMATS.md by another program, read as the
     * format says (run from the repository root) */
    if (access("tests/fuzz/corpus/align/linear.align", R_OK) == 0) {
        assert_ok(dr_align_load("tests/fuzz/corpus/align/linear.align", &b, &e_));
        assert_int_equal(dr_align_dim(b), 3);
        assert_int_equal(dr_align_n_embd(b), 4);
        assert_true(dr_align_lambda(b, &chosen) == 0.1f && chosen);
        assert_true(dr_align_llm_hash(b) == 0x1234);
        float x[3] = {1, 2, 3}, y[4];
        dr_align_project(b, x, y); /* mu 0, sd 1, W = 0.01 (q mod 7), b after W */
        for (int o = 0; o < 4; o++) {
            double w = 0.01 * ((12 + o) % 7);
            for (int k = 0; k < 3; k++) w += 0.01 * ((o * 3 + k) % 7) * x[k];
            assert_true(fabs(y[o] - w) < 1e-5);
        }
        dr_align_free(b);
        b = NULL;
        assert_ok(dr_align_load("tests/fuzz/corpus/align/mlp.align", &b, &e_));
        assert_int_equal(dr_align_dim(b), 2);
        dr_align_free(b);
        b = NULL;
        assert_int_equal(dr_align_load("tests/fuzz/corpus/align/huge_dim.align", &b, &e), DR_FORMAT);
    }
    dr_align_free(a);
    planted_free(&pl);
    dr_test_rmrf(dir);
}

/* The alignment on the tiny GGUF over the fixture's checkpoint; the hash check. */
static void test_align_gguf(void **st) {
    (void)st;
    need_tiny();
    fx f;
    fx_movielens(&f);
    dr_align_params p = dr_align_default_params();
    p.llm_model = g_tiny;
    p.epochs = 20;
    dr_align *a = NULL;
    dr_align_report rep;
    assert_ok(dr_align_fit(f.m, NULL, &p, &a, &rep, &e_));
    assert_int_equal(rep.n_embd, 32);
    assert_int_equal(rep.d, dr_model_latent_dim(f.m));
    assert_int_equal(rep.n_titled, 30);
    assert_true(rep.loss_last < rep.loss_first);
    assert_ok(dr_align_check_llm(a, g_tiny, &e_));
    assert_ok(dr_align_check_model(a, f.m, &e_));
    dr_error e = {0};
    assert_int_equal(dr_align_check_llm(a, g_tiny2, &e), DR_ARG);
    assert_non_null(strstr(e.msg, "another GGUF"));
    /* a ranker refuses the other model */
    dr_llm_rank_params rp = dr_llm_rank_default_params();
    rp.llm_model = g_tiny2;
    dr_llm_ranker *r = NULL;
    assert_int_equal(dr_llm_ranker_create(f.m, NULL, a, &rp, &r, &e), DR_ARG);
    assert_null(r);
    /* not a GGUF; no such file */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/bad.gguf", f.dir);
    dr_test_write(bad, "GGUF but not really");
    p.llm_model = bad;
    dr_align *x = NULL;
    assert_int_equal(dr_align_fit(f.m, NULL, &p, &x, NULL, &e), DR_FORMAT);
    assert_null(x);
    p.llm_model = "/nonexistent/m.gguf";
    assert_int_equal(dr_align_fit(f.m, NULL, &p, &x, NULL, &e), DR_IO);
    rp.llm_model = bad;
    assert_int_equal(dr_llm_ranker_create(f.m, NULL, NULL, &rp, &r, &e), DR_FORMAT);
    dr_align_free(a);
    fx_free(&f);
}

/* The token-embedding table read and dequantised whatever its type: f32, f16, q8_0, q4_0
 * rows against the f32 values they were made from. */
static void test_tokemb_types(void **st) {
    (void)st;
    const int64_t E = 64, V = 40;
    float *src = malloc((size_t)(E * V) * sizeof *src), row[64];
    dr_rng rg;
    dr__rng_seed(&rg, 9, 9);
    for (int64_t q = 0; q < E * V; q++) src[q] = (float)dr__rng_normal(&rg) * 0.1f;
    static const struct { enum ggml_type t; double tol; } types[] = {
        {GGML_TYPE_F32, 0}, {GGML_TYPE_F16, 1e-3}, {GGML_TYPE_Q8_0, 5e-3}, {GGML_TYPE_Q4_0, 5e-2}};
    char dir[256], path[400];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/emb.gguf", dir);
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        struct ggml_init_params ip = {(size_t)(E * V) * 4 + 4 * ggml_tensor_overhead(), NULL, false};
        struct ggml_context *ctx = ggml_init(ip);
        struct ggml_tensor *t = ggml_new_tensor_2d(ctx, types[k].t, E, V);
        ggml_set_name(t, "token_embd.weight");
        ggml_quantize_chunk(types[k].t, src, t->data, 0, V, E, NULL);
        struct gguf_context *g = gguf_init_empty();
        gguf_add_tensor(g, t);
        assert_true(gguf_write_to_file(g, path, false));
        gguf_free(g);
        ggml_free(ctx);
        dr_tokemb te;
        assert_ok(dr__tokemb_read(path, &te, &e_));
        assert_int_equal(te.n_embd, E);
        assert_int_equal(te.n_vocab, V);
        double worst = 0;
        for (int32_t v = 0; v < V; v++) {
            dr__tokemb_row(&te, v, row);
            for (int64_t e = 0; e < E; e++) worst = fmax(worst, fabs((double)row[e] - src[v * E + e]));
        }
        printf("token_embd.weight as %s: max |dequantised - f32| = %.2e\n", ggml_type_name(types[k].t), worst);
        assert_true(worst <= types[k].tol);
        dr__tokemb_free(&te);
    }
    /* no token_embd.weight; not a GGUF */
    struct gguf_context *g = gguf_init_empty();
    assert_true(gguf_write_to_file(g, path, false));
    gguf_free(g);
    dr_tokemb te;
    dr_error e = {0};
    assert_int_equal(dr__tokemb_read(path, &te, &e), DR_FORMAT);
    assert_non_null(strstr(e.msg, "no token_embd.weight"));
    dr_test_write(path, "GGUF!garbage");
    assert_int_equal(dr__tokemb_read(path, &te, &e), DR_FORMAT);
    free(src);
    dr_test_rmrf(dir);
}

/* A map with other dims is refused by the ranker. */
static void test_wrong_dims(void **st) {
    (void)st;
    need_tiny();
    fx f;
    fx_movielens(&f);
    planted pl;
    planted_make(&pl, 50, dr_model_latent_dim(f.m) + 1, 32, 2);
    dr_align_params p = dr_align_default_params();
    p.epochs = 1;
    dr_align *a = NULL;
    uint64_t h, size;
    assert_ok(dr__gguf_hash(g_tiny, &h, &size, &e_));
    assert_ok(dr__align_fit_arrays(pl.z, pl.d, pl.n, pl.d, pl.t, pl.has, pl.E, &p, h, size, &a, NULL, &e_));
    dr_llm_rank_params rp = dr_llm_rank_default_params();
    rp.llm_model = g_tiny;
    dr_llm_ranker *r = NULL;
    dr_error e = {0};
    assert_int_equal(dr_llm_ranker_create(f.m, NULL, a, &rp, &r, &e), DR_ARG);
    assert_non_null(strstr(e.msg, "dimensional"));
    dr_align_free(a);
    planted_free(&pl);
    fx_free(&f);
}

static dr_align *fit_for(const fx *f, const char *gguf) {
    dr_align_params p = dr_align_default_params();
    p.llm_model = gguf;
    p.epochs = 10;
    dr_align *a = NULL;
    assert_ok(dr_align_fit(f->m, NULL, &p, &a, NULL, &e_));
    return a;
}

/* Shared-prefix batch vs one by one; soft tokens change the scores; a new user latent too. */
static void rank_checks(const char *gguf, int n_cand, int unified) {
    fx f;
    fx_movielens(&f);
    dr_align *a = fit_for(&f, gguf);
    dr_llm_rank_params rp = dr_llm_rank_default_params();
    rp.llm_model = gguf;
    rp.unified_kv = unified;
    dr_llm_ranker *r = NULL;
    assert_ok(dr_llm_ranker_create(f.m, NULL, a, &rp, &r, &e_));
    uint32_t d = dr_model_latent_dim(f.m);
    const float *Z = dr_model_item_latents(f.m);
    const uint32_t *hist;
    size_t nh = dr_model_user_history(f.m, 3, &hist);
    float h[64], h2[64];
    dr_scorer *sc = NULL;
    assert_ok(dr_scorer_create(f.m, &sc, &e_));
    assert_ok(dr_model_user_latent(f.m, sc, 3, hist, nh, h, &e_));
    uint32_t cand[32];
    for (int c = 0; c < n_cand; c++) cand[c] = (uint32_t)(c * 7 + 2) % 30;
    float fast[32], slow[32], plain[32], moved[32], again[32];
    for (int soft = 0; soft < 2; soft++) {
        dr_llm_request q = {soft ? h : NULL, soft ? Z : NULL, d, hist, nh, cand, (size_t)n_cand};
        assert_ok(dr_llm_rank_score(r, &q, fast, &e_));
        assert_ok(dr_llm_rank_score_slow(r, &q, slow, &e_));
        double worst = 0;
        for (int c = 0; c < n_cand; c++) {
            assert_true(isfinite(fast[c]) && fast[c] < 0);
            worst = fmax(worst, fabs((double)fast[c] - slow[c]));
        }
        printf("%s: %s cache, soft %d: shared-prefix batch vs one by one: max |diff| %.2e over "
               "%d candidates\n", gguf, unified ? "unified" : "per-sequence", soft, worst, n_cand);
        assert_true(worst < 2e-3);
        if (!soft) memcpy(plain, fast, sizeof plain);
    }
    /* soft tokens change the candidates' log-likelihoods */
    double diff = 0;
    for (int c = 0; c < n_cand; c++) diff += fabs((double)fast[c] - plain[c]);
    assert_true(diff > 1e-4);
    /* a moved user latent (what an adapter update does) moves them again; the cache is
     * reused between requests and a repeat gives the same numbers */
    for (uint32_t k = 0; k < d; k++) h2[k] = h[k] + (k % 2 ? 0.5f : -0.5f);
    dr_llm_request q2 = {h2, Z, d, hist, nh, cand, (size_t)n_cand};
    assert_ok(dr_llm_rank_score(r, &q2, moved, &e_));
    diff = 0;
    for (int c = 0; c < n_cand; c++) diff += fabs((double)moved[c] - fast[c]);
    assert_true(diff > 1e-5);
    dr_llm_request q1 = {h, Z, d, hist, nh, cand, (size_t)n_cand};
    uint64_t a0 = dr__alloc_count(); /* the request path allocates nothing of ours */
    assert_ok(dr_llm_rank_score(r, &q1, again, &e_));
    assert_int_equal(dr__alloc_count() - a0, 0);
    for (int c = 0; c < n_cand; c++) assert_true(fabs((double)again[c] - fast[c]) < 1e-4);
    /* bad requests: too many candidates, an item out of range */
    dr_error e = {0};
    uint32_t big[40] = {0};
    dr_llm_request qb = {NULL, NULL, 0, hist, nh, big, 40};
    assert_int_equal(dr_llm_rank_score(r, &qb, fast, &e), DR_LIMIT);
    uint32_t out_of_range = 30;
    dr_llm_request qo = {NULL, NULL, 0, hist, nh, &out_of_range, 1};
    assert_int_equal(dr_llm_rank_score(r, &qo, fast, &e), DR_ARG);
    /* still works after the errors */
    assert_ok(dr_llm_rank_score(r, &q1, again, &e_));
    for (int c = 0; c < n_cand; c++) assert_true(fabs((double)again[c] - fast[c]) < 1e-4);
    dr_scorer_free(sc);
    dr_llm_ranker_free(r);
    dr_align_free(a);
    fx_free(&f);
}

static void test_rank_tiny(void **st) {
    (void)st;
    need_tiny();
    rank_checks(g_tiny, 20, 0);
    rank_checks(g_tiny, 20, 1);
}

static void test_rank_stories(void **st) {
    (void)st;
    const char *s = stories();
    if (!s) {
        fprintf(stderr, "SKIP: ../shared/models/stories260K.gguf not present\n");
        skip();
    }
    rank_checks(s, 20, 0);
}

/* Item 2: the soft tokens come from the adapter's current latents, so the LLM's scores move
 * with each event the adapter learns from. */
static void test_rank_adapter(void **st) {
    (void)st;
    need_tiny();
    fx f;
    fx_movielens(&f);
    dr_align *a = fit_for(&f, g_tiny);
    dr_llm_rank_params rp = dr_llm_rank_default_params();
    rp.llm_model = g_tiny;
    dr_llm_ranker *r = NULL;
    assert_ok(dr_llm_ranker_create(f.m, NULL, a, &rp, &r, &e_));
    uint32_t d = dr_model_latent_dim(f.m), ni = dr_model_n_items(f.m), nu = dr_model_n_users(f.m);
    dr_adapter_params ap = dr__adapter_default_params();
    ap.g_batch = 1;
    ap.gate_bias = 0.0f; /* open gates: a few events visibly move the latents */
    ap.lr = ap.lr_g = 0.05f;
    dr_adapter *ad = NULL;
    assert_ok(dr__adapter_create(&ap, nu, ni, d, dr_model_item_latents(f.m), NULL, &ad, &e_));
    dr_scorer *sc = NULL;
    assert_ok(dr_scorer_create(f.m, &sc, &e_));
    const uint32_t *hist;
    size_t nh = dr_model_user_history(f.m, 5, &hist);
    float h[64], hp[64], before[8], after[8];
    assert_ok(dr_model_user_latent(f.m, sc, 5, hist, nh, h, &e_));
    uint32_t cand[8] = {0, 3, 6, 9, 12, 15, 18, 21};
    float *z0 = malloc((size_t)ni * d * sizeof *z0);
    memcpy(z0, dr__adapter_items(ad), (size_t)ni * d * sizeof *z0);
    dr__adapter_user(ad, 5, 2000000, h, hp);
    dr_llm_request q = {hp, z0, d, hist, nh, cand, 8};
    assert_ok(dr_llm_rank_score(r, &q, before, &e_));
    for (int k = 0; k < 40; k++) /* user 5 keeps taking items 1..8 */
        assert_ok(dr__adapter_update(ad, 5, (uint32_t)(1 + k % 8), 2000000 + k, h, &e_));
    dr__adapter_flush(ad);
    dr__adapter_user(ad, 5, 2000100, h, hp);
    q.items = dr__adapter_items(ad);
    assert_ok(dr_llm_rank_score(r, &q, after, &e_));
    double moved = 0;
    for (int c = 0; c < 8; c++) moved += fabs((double)after[c] - before[c]);
    printf("adapter: 40 events moved the 8 candidates' LLM scores by %.3g in total\n", moved);
    assert_true(moved > 1e-6);
    free(z0);
    dr_scorer_free(sc);
    dr__adapter_free(ad);
    dr_llm_ranker_free(r);
    dr_align_free(a);
    fx_free(&f);
}

/* lambda = 0: the combined ranker is the base exactly; P-LLM runs end to end. */
static void test_eval_lambda0(void **st) {
    (void)st;
    need_tiny();
    fx f;
    fx_movielens(&f);
    dr_align *a = fit_for(&f, g_tiny);
    dr_llm_rank_params rp = dr_llm_rank_default_params();
    rp.llm_model = g_tiny;
    dr_llm_ranker *r = NULL;
    assert_ok(dr_llm_ranker_create(f.m, f.ds, a, &rp, &r, &e_));
    dr_split *sp = NULL;
    assert_ok(dr_split_create(f.ds, DR_SPLIT_LOO, &sp, &e_));
    dr_llm_eval_params ep = dr_llm_eval_default_params();
    ep.n_top = 10;
    ep.max_users = 12;
    dr_llm_eval_result res;
    assert_ok(dr_eval_llm(f.ds, sp, f.m, r, &ep, &res, &e_));
    assert_int_equal(res.n_users, 12);
    assert_true(res.comb_hit1 == res.base_hit1 && res.comb_ndcg5 == res.base_ndcg5);
    assert_true(res.full_comb_hit10 == res.full_base_hit10);
    assert_true(res.full_comb_ndcg10 == res.full_base_ndcg10);
    /* a grid: lambda 0 is in it, so the chosen one is at least as good on these targets */
    static const float grid[] = {0.0f, 0.1f, 1.0f, 10.0f};
    ep.grid = grid;
    ep.n_grid = 4;
    ep.which = 1;
    assert_ok(dr_eval_llm(f.ds, sp, f.m, r, &ep, &res, &e_));
    assert_true(res.full_comb_ndcg10 >= res.grid_ndcg10[0] - 1e-12);
    assert_true(res.grid_ndcg10[0] == res.full_base_ndcg10);
    dr_split_free(sp);
    dr_llm_ranker_free(r);
    dr_align_free(a);
    fx_free(&f);
}

/* The server route: GET .../recommendations?rerank=llm on routes started with the GGUF and
 * the alignment; the LLM's scores follow the adapter as events arrive. */
static const char *kv_args(void *ud, const char *name) {
    const char *const *kv = ud;
    for (int k = 0; kv[k]; k += 2)
        if (!strcmp(kv[k], name)) return kv[k + 1];
    return NULL;
}

static void get_recs(dr_routes *r, dr_routes_worker *w, const char *const *args, int status,
                     const char *want, char *body, size_t cap) {
    dr_route_req rq = {"GET", "/v1/users/3/recommendations", kv_args, (void *)args, NULL, NULL, 0, NULL};
    dr_route_resp rs;
    dr__routes_handle(r, w, &rq, &rs);
    snprintf(body, cap, "%.*s", (int)rs.len, rs.body);
    if (rs.status != status || (want && !strstr(body, want)))
        fail_msg("expected %d with '%s', got %d: %s", status, want ? want : "", rs.status, body);
}

static void test_server_route(void **st) {
    (void)st;
    need_tiny();
    fx f;
    fx_movielens(&f);
    dr_align *a = fit_for(&f, g_tiny);
    dr_align_set_lambda(a, 0.5f);
    char alp[600], state[600], body[8192], before[8192];
    snprintf(alp, sizeof alp, "%s/m.align", f.dir);
    snprintf(state, sizeof state, "%s/state", f.dir);
    assert_ok(dr_align_save(a, alp, &e_));
    dr_srv_params sp = dr__srv_default_params();
    sp.data_dir = state;
    sp.durable = 0;
    sp.max_new_items = 5;
    sp.max_new_users = 5;
    sp.snapshot_every = 0;
    sp.adapter.g_batch = 1;
    sp.adapter.gate_bias = 0.0f;
    dr_srv *s = NULL;
    assert_ok(dr__srv_open(f.m, &sp, &s, &e_));
    /* without --llm: 501 */
    dr_routes_params rp = {NULL, 0, 4096, NULL, 0, NULL, NULL};
    dr_routes *r = NULL;
    dr_routes_worker *w = NULL;
    assert_ok(dr__routes_create(s, &rp, &r, &e_));
    assert_ok(dr__routes_worker_create(r, &w, &e_));
    const char *llm_args[] = {"rerank", "llm", "k", "5", NULL};
    get_recs(r, w, llm_args, 501, "start the server with --llm", body, sizeof body);
    dr__routes_worker_free(w);
    dr__routes_free(r);
    /* an alignment learned for another GGUF is refused at start */
    rp.llm_model = g_tiny2;
    rp.llm_align = alp;
    dr_error e = {0};
    assert_int_equal(dr__routes_create(s, &rp, &r, &e), DR_ARG);
    /* with the right one */
    rp.llm_model = g_tiny;
    assert_ok(dr__routes_create(s, &rp, &r, &e_));
    assert_ok(dr__routes_worker_create(r, &w, &e_));
    const char *bad[] = {"rerank", "gpt", NULL}, *big[] = {"rerank", "llm", "k", "500", NULL};
    get_recs(r, w, bad, 400, "rerank: must be llm or none", body, sizeof body);
    get_recs(r, w, big, 400, "at most", body, sizeof body);
    get_recs(r, w, llm_args, 200, "\"rerank\":\"llm\",\"soft_tokens\":true,\"lambda\":0.5", before, sizeof before);
    assert_non_null(strstr(before, "\"llm\":-"));
    const char *plain[] = {"k", "5", NULL};
    get_recs(r, w, plain, 200, "\"source\":\"adapter\"", body, sizeof body);
    assert_null(strstr(body, "\"llm\""));
    /* events for user 3 move h'_u and z': the soft tokens, hence the LLM's scores, follow */
    dr_srv_event ev[6];
    static const char *const items[] = {"2", "4", "6", "8", "10", "12"};
    for (int k = 0; k < 6; k++) ev[k] = (dr_srv_event){"3", items[k], 2000000 + k, 1, NULL};
    assert_ok(dr__srv_submit(s, ev, 6, NULL, &e_));
    get_recs(r, w, llm_args, 200, "\"rerank\":\"llm\"", body, sizeof body);
    assert_string_not_equal(body, before);
    dr__routes_worker_free(w);
    dr__routes_free(r);
    dr__srv_close(s);
    dr_align_free(a);
    fx_free(&f);
}

/* ---- the HTTP backend against a real llama-server, started here on a free port */

/* LLAMA_SERVER from build/llama.mk, or NULL when it is not there. */
static const char *llama_server_path(void) {
    static char path[1024];
    const char *env = getenv("LLAMA_SERVER");
    if (env && *env) return access(env, X_OK) == 0 ? env : NULL;
    FILE *f = fopen("build/llama.mk", "r");
    if (!f) return NULL;
    char line[1200];
    path[0] = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "LLAMA_SERVER := %1023s", path) == 1) break;
    fclose(f);
    return path[0] && access(path, X_OK) == 0 ? path : NULL;
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &len)) {
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* 1 when GET /health answers 200. */
static int server_healthy(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char buf[64] = {0};
    int ok = fd >= 0 && !connect(fd, (struct sockaddr *)&a, sizeof a);
    const char req[] = "GET /health HTTP/1.0\r\n\r\n";
    if (ok) ok = write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1);
    if (ok) ok = read(fd, buf, sizeof buf - 1) > 12 && strstr(buf, " 200") != NULL;
    if (fd >= 0) close(fd);
    return ok;
}

static void test_http_backend(void **st) {
    (void)st;
    need_tiny();
    const char *bin = llama_server_path();
    if (!bin) {
        fprintf(stderr, "SKIP: no llama-server binary (LLAMA_SERVER in build/llama.mk)\n");
        skip();
    }
    const char *gguf = stories() ? stories() : g_tiny;
    int port = free_port();
    assert_true(port > 0);
    char ps[16], url[64];
    snprintf(ps, sizeof ps, "%d", port);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *nul = freopen("/dev/null", "w", stdout);
        nul = freopen("/dev/null", "w", stderr);
        (void)nul;
        execl(bin, bin, "-m", gguf, "--host", "127.0.0.1", "--port", ps, "-c", "512", "-t", "1",
              "-np", "1", "--no-webui", (char *)NULL);
        _exit(127);
    }
    int up = 0;
    for (int k = 0; k < 300 && !up; k++) { /* 30 s */
        up = server_healthy(port);
        if (!up) usleep(100000);
    }
    if (!up) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("llama-server did not answer /health on port %d", port);
    }
    fx f;
    fx_movielens(&f);
    dr_llm_rank_params rp = dr_llm_rank_default_params();
    rp.http_url = url;
    rp.history = 1; /* llama-server holds stories260K to its 128-token training context */
    dr_llm_ranker *r = NULL, *local = NULL;
    assert_ok(dr_llm_ranker_create(f.m, NULL, NULL, &rp, &r, &e_));
    const uint32_t *hist;
    size_t nh = dr_model_user_history(f.m, 2, &hist);
    uint32_t cand[5] = {1, 4, 9, 16, 25};
    float a[5], b[5], l[5];
    dr_llm_request q = {NULL, NULL, 0, hist, nh, cand, 5};
    assert_ok(dr_llm_rank_score(r, &q, a, &e_));
    assert_ok(dr_llm_rank_score(r, &q, b, &e_)); /* the prompt now cached by the server */
    rp.http_url = NULL;
    rp.llm_model = gguf;
    assert_ok(dr_llm_ranker_create(f.m, NULL, NULL, &rp, &local, &e_));
    assert_ok(dr_llm_rank_score(local, &q, l, &e_));
    for (int c = 0; c < 5; c++) {
        printf("http backend (%s): candidate %u: server %.4f, again %.4f, in process %.4f\n", gguf,
               cand[c], a[c], b[c], l[c]);
        assert_true(isfinite(a[c]) && a[c] < 0);
        assert_true(fabsf(a[c] - b[c]) < 1e-3f);
    }
    /* the OpenAI form (/v1/completions with logprobs) from the same server: the same scores */
    dr_llm_ranker *oa = NULL;
    float o[5];
    rp.llm_model = NULL;
    rp.http_url = url;
    rp.http_api = "openai";
    assert_ok(dr_llm_ranker_create(f.m, NULL, NULL, &rp, &oa, &e_));
    assert_ok(dr_llm_rank_score(oa, &q, o, &e_));
    for (int c = 0; c < 5; c++) assert_true(fabsf(o[c] - a[c]) < 1e-3f);
    dr_llm_ranker_free(oa);
    rp.http_api = "grpc";
    dr_error e0 = {0};
    assert_int_equal(dr_llm_ranker_create(f.m, NULL, NULL, &rp, &oa, &e0), DR_ARG);
    rp.http_api = NULL;
    /* refusals: an alignment (soft tokens) over HTTP; a server that is gone */
    dr_error e = {0};
    dr_llm_ranker *x = NULL;
    rp.llm_model = NULL;
    rp.http_url = url;
    dr_align_params ap = dr_align_default_params();
    ap.llm_model = gguf;
    ap.epochs = 2;
    dr_align *al = NULL;
    assert_ok(dr_align_fit(f.m, NULL, &ap, &al, NULL, &e_));
    assert_int_equal(dr_llm_ranker_create(f.m, NULL, al, &rp, &x, &e), DR_ARG);
    dr_align_free(al);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    assert_int_equal(dr_llm_rank_score(r, &q, a, &e), DR_IO);
    assert_non_null(strstr(e.msg, "/completion"));
    dr_llm_ranker_free(local);
    dr_llm_ranker_free(r);
    fx_free(&f);
}

/* ---- out of memory */
typedef struct oom_ud {
    planted *pl;
    const char *path;
    const dr_model *m;
    const dr_align *a;
    dr_align *out;
    dr_llm_ranker *r;
} oom_ud;
DR_OOM_FREE_FN(free_align, oom_ud, out, dr_align_free)
DR_OOM_FREE_FN(free_ranker, oom_ud, r, dr_llm_ranker_free)

static dr_status call_fit(void *ud, dr_error *err) {
    oom_ud *u = ud;
    dr_align_params p = dr_align_default_params();
    p.epochs = 1;
    p.hidden = 3;
    return dr__align_fit_arrays(u->pl->z, u->pl->d, u->pl->n, u->pl->d, u->pl->t, u->pl->has,
                               u->pl->E, &p, 1, 2, &u->out, NULL, err);
}
static dr_status call_load(void *ud, dr_error *err) {
    oom_ud *u = ud;
    return dr_align_load(u->path, &u->out, err);
}
static dr_status call_ranker(void *ud, dr_error *err) {
    oom_ud *u = ud;
    dr_llm_rank_params rp = dr_llm_rank_default_params();
    rp.llm_model = g_tiny;
    rp.n_ctx = 128;
    rp.max_cand = 4;
    return dr_llm_ranker_create(u->m, NULL, u->a, &rp, &u->r, err);
}

static dr_status call_align_gguf(void *ud, dr_error *err) {
    oom_ud *u = ud;
    dr_align_params p = dr_align_default_params();
    p.llm_model = g_tiny;
    p.epochs = 1;
    return dr_align_fit(u->m, NULL, &p, &u->out, NULL, err);
}

typedef struct oom_eval {
    fx *f;
    dr_split *sp;
    dr_llm_ranker *r;
    dr_llm_eval_result res;
} oom_eval;

static dr_status call_eval(void *ud, dr_error *err) {
    oom_eval *u = ud;
    dr_llm_eval_params ep = dr_llm_eval_default_params();
    ep.max_users = 2;
    ep.n_top = 5;
    return dr_eval_llm(u->f->ds, u->sp, u->f->m, u->r, &ep, &u->res, err);
}

static void test_oom(void **st) {
    (void)st;
    planted pl;
    planted_make(&pl, 60, 4, 6, 4);
    oom_ud u = {&pl, NULL, NULL, NULL, NULL, NULL};
    dr_oom_case c = {"dr__align_fit_arrays", call_fit, free_align, &u, (void **)&u.out, DR_OK, 0, 0, 0};
    assert_true(dr_oom_check(&c) > 0);
    char dir[256], path[400];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/m.align", dir);
    assert_ok(call_fit(&u, &e_));
    assert_ok(dr_align_save(u.out, path, &e_));
    dr_align_free(u.out);
    u.out = NULL;
    u.path = path;
    dr_oom_case c2 = {"dr_align_load", call_load, free_align, &u, (void **)&u.out, DR_OK, 0, 0, 0};
    assert_true(dr_oom_check(&c2) > 0);
    planted_free(&pl);
    dr_test_rmrf(dir);
    if (!g_tiny[0]) return;
    fx f;
    fx_movielens(&f);
    dr_align *a = fit_for(&f, g_tiny);
    u.m = f.m, u.a = a;
    dr_oom_case c3 = {"dr_llm_ranker_create", call_ranker, free_ranker, &u, (void **)&u.r, DR_OK, 0, 0, 0};
    assert_true(dr_oom_check(&c3) > 0);
    dr_oom_case c4 = {"dr_align_fit (tiny GGUF)", call_align_gguf, free_align, &u, (void **)&u.out, DR_OK, 0, 0, 0};
    assert_true(dr_oom_check(&c4) > 0);
    oom_eval ev = {&f, NULL, NULL, {0}};
    assert_ok(dr_split_create(f.ds, DR_SPLIT_LOO, &ev.sp, &e_));
    dr_llm_rank_params rp = dr_llm_rank_default_params();
    rp.llm_model = g_tiny;
    assert_ok(dr_llm_ranker_create(f.m, NULL, a, &rp, &u.r, &e_));
    ev.r = u.r;
    dr_oom_case c5 = {"dr_eval_llm", call_eval, NULL, &ev, NULL, DR_OK, 0, 0, 0};
    assert_true(dr_oom_check(&c5) > 0);
    dr_llm_ranker_free(u.r);
    u.r = NULL;
    dr_split_free(ev.sp);
    dr_align_free(a);
    fx_free(&f);
}

int main(void) {
    char dir[256];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(g_tiny, sizeof g_tiny, "%s/tiny.gguf", dir);
    snprintf(g_tiny2, sizeof g_tiny2, "%s/tiny2.gguf", dir);
    if (tiny_gguf_write(g_tiny, 1) || tiny_gguf_write(g_tiny2, 2)) g_tiny[0] = 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_align_planted),
        cmocka_unit_test(test_align_file),
        cmocka_unit_test(test_align_gguf),
        cmocka_unit_test(test_tokemb_types),
        cmocka_unit_test(test_wrong_dims),
        cmocka_unit_test(test_rank_tiny),
        cmocka_unit_test(test_rank_stories),
        cmocka_unit_test(test_rank_adapter),
        cmocka_unit_test(test_eval_lambda0),
        cmocka_unit_test(test_server_route),
        cmocka_unit_test(test_http_backend),
        cmocka_unit_test(test_oom),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    dr_test_rmrf(dir);
    return rc;
}
