/*
 * test_sasrec.c - SASRec: every layer's gradient against central differences in double, the
 * whole model's gradient for both losses, causal mask, padding invariance, thread-count
 * determinism, checkpoint round trip, and training that beats popularity on synthetic data.
 */
#include "testutil.h"

#include <math.h>

#include "model_sasrec.h"
#include "oom.h"
#include "warm_fixture.h"

/* ------------------------------------------------------------------ helpers */

static void fill_normal(double *x, size_t n, double sd, dr_rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = sd * dr__rng_normal(r);
}

static double dotd(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Compares an analytic gradient with a central difference; counts the checks. */
static int g_checks;
static void check_grad(const char *what, size_t i, double analytic, double numeric) {
    double tol = 1e-6 + 1e-5 * fabs(numeric);
    g_checks++;
    if (!(fabs(analytic - numeric) <= tol))
        fail_msg("%s[%zu]: analytic %.10g vs numeric %.10g", what, i, analytic, numeric);
}

#define EPS 1e-5

/* ------------------------------------------------------------------ layers */

/* loss = sum(out * R) for LayerNorm; checks d/d inp, w, b. */
static double ln_loss(const double *inp, const double *w, const double *b, const double *R,
                      size_t T, size_t C) {
    double out[64], mean[8], rstd[8];
    dr__sr_layernorm_forward_f64(out, mean, rstd, inp, w, b, T, C);
    return dotd(out, R, T * C);
}

static void test_layernorm_grad(void **state) {
    enum { T = 4, C = 7 };
    dr_rng r;
    dr__rng_seed(&r, 1, 0);
    double inp[T * C], w[C], b[C], R[T * C], out[T * C], mean[T], rstd[T];
    fill_normal(inp, T * C, 1.5, &r);
    fill_normal(w, C, 1, &r);
    fill_normal(b, C, 1, &r);
    fill_normal(R, T * C, 1, &r);
    double dinp[T * C] = {0}, dw[C] = {0}, db[C] = {0};
    dr__sr_layernorm_forward_f64(out, mean, rstd, inp, w, b, T, C);
    dr__sr_layernorm_backward_f64(dinp, dw, db, R, inp, w, mean, rstd, T, C);
    double *xs[3] = {inp, w, b}, *gs[3] = {dinp, dw, db};
    size_t ns[3] = {T * C, C, C};
    const char *nm[3] = {"ln.dinp", "ln.dw", "ln.db"};
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < ns[k]; i++) {
            double s = xs[k][i];
            xs[k][i] = s + EPS;
            double lp = ln_loss(inp, w, b, R, T, C);
            xs[k][i] = s - EPS;
            double lm = ln_loss(inp, w, b, R, T, C);
            xs[k][i] = s;
            check_grad(nm[k], i, gs[k][i], (lp - lm) / (2 * EPS));
        }
}

static double mm_loss(const double *inp, const double *W, const double *bias, const double *R,
                      size_t T, size_t C, size_t OC) {
    double out[64];
    dr__sr_matmul_forward_f64(out, inp, W, bias, T, C, OC);
    return dotd(out, R, T * OC);
}

static void test_matmul_grad(void **state) {
    enum { T = 5, C = 4, OC = 6 };
    dr_rng r;
    dr__rng_seed(&r, 2, 0);
    double inp[T * C], W[OC * C], bias[OC], R[T * OC];
    fill_normal(inp, T * C, 1, &r);
    fill_normal(W, OC * C, 1, &r);
    fill_normal(bias, OC, 1, &r);
    fill_normal(R, T * OC, 1, &r);
    double dinp[T * C], dW[OC * C] = {0}, db[OC] = {0};
    dr__sr_matmul_backward_f64(dinp, dW, db, R, inp, W, T, C, OC);
    double *xs[3] = {inp, W, bias}, *gs[3] = {dinp, dW, db};
    size_t ns[3] = {T * C, OC * C, OC};
    const char *nm[3] = {"mm.dinp", "mm.dW", "mm.db"};
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < ns[k]; i++) {
            double s = xs[k][i];
            xs[k][i] = s + EPS;
            double lp = mm_loss(inp, W, bias, R, T, C, OC);
            xs[k][i] = s - EPS;
            double lm = mm_loss(inp, W, bias, R, T, C, OC);
            xs[k][i] = s;
            check_grad(nm[k], i, gs[k][i], (lp - lm) / (2 * EPS));
        }
}

static double att_loss(const double *qkv, const double *R, size_t n, size_t C, size_t NH) {
    double out[64], att[128];
    dr__sr_attention_forward_f64(out, att, qkv, n, C, NH);
    return dotd(out, R, n * C);
}

static void test_attention_grad(void **state) {
    enum { n = 5, C = 6, NH = 2 };
    dr_rng r;
    dr__rng_seed(&r, 3, 0);
    double qkv[n * 3 * C], R[n * C], out[n * C], att[NH * n * n], dqkv[n * 3 * C], datt[n * n];
    fill_normal(qkv, n * 3 * C, 1, &r);
    fill_normal(R, n * C, 1, &r);
    dr__sr_attention_forward_f64(out, att, qkv, n, C, NH);
    /* causal: rows sum to 1, nothing above the diagonal */
    for (size_t h = 0; h < NH; h++)
        for (size_t i = 0; i < n; i++) {
            double s = 0;
            for (size_t j = 0; j < n; j++) {
                if (j > i) assert_true(att[(h * n + i) * n + j] == 0);
                s += att[(h * n + i) * n + j];
            }
            assert_true(fabs(s - 1) < 1e-12);
        }
    dr__sr_attention_backward_f64(dqkv, datt, R, qkv, att, n, C, NH);
    for (size_t i = 0; i < n * 3 * C; i++) {
        double s = qkv[i];
        qkv[i] = s + EPS;
        double lp = att_loss(qkv, R, n, C, NH);
        qkv[i] = s - EPS;
        double lm = att_loss(qkv, R, n, C, NH);
        qkv[i] = s;
        check_grad("att.dqkv", i, dqkv[i], (lp - lm) / (2 * EPS));
    }
}

static void test_pointwise_grads(void **state) {
    enum { N = 20 };
    dr_rng r;
    dr__rng_seed(&r, 4, 0);
    double a[N], b[N], R[N], out[N], da[N] = {0}, db[N] = {0}, mask[N], g[N];
    fill_normal(a, N, 1, &r);
    fill_normal(b, N, 1, &r);
    fill_normal(R, N, 1, &r);
    for (size_t i = 0; i < N; i++)
        if (fabs(a[i]) < 1e-3) a[i] = 0.5; /* keep ReLU away from its kink */
    /* residual */
    dr__sr_residual_backward_f64(da, db, R, N);
    for (size_t i = 0; i < N; i++) {
        double s = a[i];
        a[i] = s + EPS;
        dr__sr_residual_forward_f64(out, a, b, N);
        double lp = dotd(out, R, N);
        a[i] = s - EPS;
        dr__sr_residual_forward_f64(out, a, b, N);
        double lm = dotd(out, R, N);
        a[i] = s;
        check_grad("residual.da", i, da[i], (lp - lm) / (2 * EPS));
        check_grad("residual.db", i, db[i], (lp - lm) / (2 * EPS));
    }
    /* relu */
    dr__sr_relu_backward_f64(g, R, a, N);
    for (size_t i = 0; i < N; i++) {
        double s = a[i];
        a[i] = s + EPS;
        dr__sr_relu_forward_f64(out, a, N);
        double lp = dotd(out, R, N);
        a[i] = s - EPS;
        dr__sr_relu_forward_f64(out, a, N);
        double lm = dotd(out, R, N);
        a[i] = s;
        check_grad("relu", i, g[i], (lp - lm) / (2 * EPS));
    }
    /* dropout: the mask drops about p and scales the rest by 1/(1-p) */
    dr__sr_dropout_mask_f64(mask, N, 0.5, &r);
    int zeros = 0;
    for (size_t i = 0; i < N; i++) {
        assert_true(mask[i] == 0 || mask[i] == 2);
        zeros += mask[i] == 0;
    }
    assert_true(zeros > 2 && zeros < N - 2);
    dr__sr_dropout_backward_f64(g, R, mask, N);
    for (size_t i = 0; i < N; i++) {
        double s = a[i];
        a[i] = s + EPS;
        dr__sr_dropout_forward_f64(out, a, mask, N);
        double lp = dotd(out, R, N);
        a[i] = s - EPS;
        dr__sr_dropout_forward_f64(out, a, mask, N);
        double lm = dotd(out, R, N);
        a[i] = s;
        check_grad("dropout", i, g[i], (lp - lm) / (2 * EPS));
    }
}

static void test_embed_grad(void **state) {
    enum { NI = 6, d = 4, L = 4, T = 6 };
    dr_rng r;
    dr__rng_seed(&r, 5, 0);
    double tok[(NI + 1) * d], pos[L * d], R[T * d], emb[T * d];
    double dtok[(NI + 1) * d] = {0}, dpos[L * d] = {0};
    fill_normal(tok, (NI + 1) * d, 1, &r);
    fill_normal(pos, L * d, 1, &r);
    fill_normal(R, T * d, 1, &r);
    const size_t off[3] = {0, 4, 6};
    const uint32_t inp[T] = {3, 1, 3, 6, 2, 5};
    const dr_sr_batch bt = {.n_seq = 2, .off = off, .inp = inp};
    dr__sr_embed_backward_f64(dtok, dpos, R, &bt, d, L);
    double *xs[2] = {tok, pos}, *gs[2] = {dtok, dpos};
    size_t ns[2] = {(NI + 1) * d, L * d};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < ns[k]; i++) {
            double s = xs[k][i];
            xs[k][i] = s + EPS;
            dr__sr_embed_forward_f64(emb, tok, pos, &bt, d, L);
            double lp = dotd(emb, R, T * d);
            xs[k][i] = s - EPS;
            dr__sr_embed_forward_f64(emb, tok, pos, &bt, d, L);
            double lm = dotd(emb, R, T * d);
            xs[k][i] = s;
            check_grad(k ? "embed.dpos" : "embed.dtok", i, gs[k][i], (lp - lm) / (2 * EPS));
        }
}

static void test_loss_grads(void **state) {
    enum { NI = 9, d = 5, T = 4 };
    dr_rng r;
    dr__rng_seed(&r, 6, 0);
    double h[T * d], tok[(NI + 1) * d], dh[T * d], dtok[(NI + 1) * d];
    double logits[DR_SR_CHUNK * NI];
    const uint32_t tgt[T] = {2, 9, 0, 2}, neg[T] = {5, 1, 7, 3};
    fill_normal(h, T * d, 1, &r);
    fill_normal(tok, (NI + 1) * d, 1, &r);
    for (int kind = 0; kind < 2; kind++) {
        memset(dtok, 0, sizeof dtok);
        const double sc = 0.37; /* any scale: the gradient is of sc * loss */
        if (kind)
            dr__sr_bce_loss_f64(dh, dtok, h, tok, tgt, neg, T, d, sc);
        else
            dr__sr_ce_loss_f64(dh, dtok, logits, h, tok, tgt, T, d, NI, sc);
        double *xs[2] = {h, tok}, *gs[2] = {dh, dtok};
        size_t ns[2] = {T * d, (NI + 1) * d};
        for (int k = 0; k < 2; k++)
            for (size_t i = 0; i < ns[k]; i++) {
                double s = xs[k][i], lp, lm;
                xs[k][i] = s + EPS;
                lp = kind ? dr__sr_bce_loss_f64(NULL, NULL, h, tok, tgt, neg, T, d, 1)
                          : dr__sr_ce_loss_f64(NULL, NULL, logits, h, tok, tgt, T, d, NI, 1);
                xs[k][i] = s - EPS;
                lm = kind ? dr__sr_bce_loss_f64(NULL, NULL, h, tok, tgt, neg, T, d, 1)
                          : dr__sr_ce_loss_f64(NULL, NULL, logits, h, tok, tgt, T, d, NI, 1);
                xs[k][i] = s;
                check_grad(kind ? "bce" : "ce", i, gs[k][i], sc * (lp - lm) / (2 * EPS));
            }
    }
    /* the CE loss of a position is -log softmax: check one value directly */
    double l = dr__sr_ce_loss_f64(NULL, NULL, logits, h, tok, tgt, 1, d, NI, 1), z = 0;
    for (size_t i = 1; i <= NI; i++) z += exp(dotd(h, tok + i * d, d));
    assert_true(fabs(l - (log(z) - dotd(h, tok + 2 * d, d))) < 1e-12);
}

/* The sampled softmax: its gradient (with a non-uniform logQ, a negative drawn twice, an
 * accidental hit and a position without target) against central differences; its value
 * against the formula; accidental hits left out exactly. */
enum { S_NI = 9, S_D = 5, S_T = 4, S_K = 6 };
static const uint32_t s_tgt[S_T] = {2, 9, 0, 4}, s_neg[S_K] = {5, 1, 7, 4, 5, 3};

static double s_loss(double *dh, double *dtok, const double *h, const double *tok,
                     const uint32_t *sneg, size_t K, const double *logq, double sc) {
    static double scratch[DR_SR_CHUNK * 16 + 2 * 16 * S_D + 16];
    assert_true(dr__sr_sampled_scratch_f64(K, S_D) <= sizeof scratch / sizeof scratch[0]);
    return dr__sr_sampled_loss_f64(dh, dtok, scratch, h, tok, s_tgt, S_T, S_D, sneg, K, logq, sc);
}

/* The loss by its definition: per position with a target y, log(exp(l_y) + sum over negatives
 * k != y of exp(l_k)) - l_y, l_y = h.E_y, l_k = h.E_k - log(K Q(k)) + shift (logq NULL: Q
 * ignored). */
static double s_formula(const double *h, const double *tok, const double *logq, double shift) {
    double sum = 0;
    for (size_t t = 0; t < S_T; t++) {
        const uint32_t y = s_tgt[t];
        if (!y) continue;
        const double ly = dotd(h + t * S_D, tok + y * S_D, S_D);
        double z = exp(ly);
        for (size_t k = 0; k < S_K; k++) {
            if (s_neg[k] == y) continue;
            double lk = dotd(h + t * S_D, tok + s_neg[k] * S_D, S_D) + shift;
            if (logq) lk -= logq[s_neg[k]] + log((double)S_K);
            z += exp(lk);
        }
        sum += log(z) - ly;
    }
    return sum;
}

static void test_sampled_loss_grad(void **state) {
    dr_rng r;
    dr__rng_seed(&r, 16, 0);
    double h[S_T * S_D], tok[(S_NI + 1) * S_D], dh[S_T * S_D], dtok[(S_NI + 1) * S_D];
    double logq[S_NI + 1];
    fill_normal(h, S_T * S_D, 1, &r);
    fill_normal(tok, (S_NI + 1) * S_D, 1, &r);
    for (int i = 0; i <= S_NI; i++) logq[i] = log((1.0 + i) / 55.0); /* non-uniform Q */
    for (int corr = 0; corr < 2; corr++) {
        const double *lq = corr ? logq : NULL;
        memset(dtok, 0, sizeof dtok);
        const double sc = 0.37;
        s_loss(dh, dtok, h, tok, s_neg, S_K, lq, sc);
        double *xs[2] = {h, tok}, *gs[2] = {dh, dtok};
        size_t ns[2] = {S_T * S_D, (S_NI + 1) * S_D};
        int nonzero = 0;
        for (int k = 0; k < 2; k++)
            for (size_t i = 0; i < ns[k]; i++) {
                double v = xs[k][i];
                xs[k][i] = v + EPS;
                double lp = s_loss(NULL, NULL, h, tok, s_neg, S_K, lq, 1);
                xs[k][i] = v - EPS;
                double lm = s_loss(NULL, NULL, h, tok, s_neg, S_K, lq, 1);
                xs[k][i] = v;
                check_grad(corr ? "sampled logq" : "sampled", i, gs[k][i],
                           sc * (lp - lm) / (2 * EPS));
                nonzero += gs[k][i] != 0;
            }
        assert_true(nonzero > 40);
        for (size_t i = 0; i < S_D; i++) assert_true(dh[2 * S_D + i] == 0); /* no target */
    }
    /* the value: -log of the target's share, target uncorrected, negatives by log(K Q) */
    assert_true(fabs(s_loss(NULL, NULL, h, tok, s_neg, S_K, logq, 1) -
                     s_formula(h, tok, logq, 0)) < 1e-12);
}

/* logQ correction: with a uniform Q = 1/N every negative's logit moves by the same log(N/K), so
 * the corrected loss is the uncorrected one with that constant added to the negatives' logits
 * (and with K = N draws the correction vanishes); with a non-uniform Q it is not. Accidental
 * hits (position 3's target 4 is negative 3) are left out in every case. */
static void test_sampled_logq(void **state) {
    dr_rng r;
    dr__rng_seed(&r, 17, 0);
    double h[S_T * S_D], tok[(S_NI + 1) * S_D], logq[S_NI + 1];
    double dh1[S_T * S_D], dt1[(S_NI + 1) * S_D];
    fill_normal(h, S_T * S_D, 1, &r);
    fill_normal(tok, (S_NI + 1) * S_D, 1, &r);
    const double plain = s_loss(NULL, NULL, h, tok, s_neg, S_K, NULL, 1);
    assert_true(fabs(plain - s_formula(h, tok, NULL, 0)) < 1e-12);
    for (int i = 0; i <= S_NI; i++) logq[i] = -log((double)S_NI);
    const double unif = s_loss(NULL, NULL, h, tok, s_neg, S_K, logq, 1);
    assert_true(fabs(unif - s_formula(h, tok, NULL, log((double)S_NI / S_K))) < 1e-12);
    assert_true(unif > plain); /* the negatives stand for N/K items each: more mass */
    for (int i = 0; i <= S_NI; i++) logq[i] = -log((double)S_K); /* Q = 1/K: K Q = 1 */
    assert_true(fabs(s_loss(NULL, NULL, h, tok, s_neg, S_K, logq, 1) - plain) < 1e-12);
    for (int i = 0; i <= S_NI; i++) logq[i] = log((1.0 + i) / 55.0);
    const double nonu = s_loss(NULL, NULL, h, tok, s_neg, S_K, logq, 1);
    assert_true(fabs(nonu - s_formula(h, tok, logq, 0)) < 1e-12);
    for (double c = -3; c <= 3; c += 0.25) /* no constant shift gives it */
        assert_true(fabs(nonu - s_formula(h, tok, NULL, c)) > 1e-6);
    /* the float copy (what trains) agrees with the double one */
    float hf[S_T * S_D], tf[(S_NI + 1) * S_D], dhf[S_T * S_D], dtf[(S_NI + 1) * S_D];
    float sf[DR_SR_CHUNK * S_K + 2 * S_K * S_D + S_K];
    for (size_t i = 0; i < S_T * S_D; i++) hf[i] = (float)h[i];
    for (size_t i = 0; i < (S_NI + 1) * S_D; i++) tf[i] = (float)tok[i];
    memset(dtf, 0, sizeof dtf);
    double lf = dr__sr_sampled_loss_f32(dhf, dtf, sf, hf, tf, s_tgt, S_T, S_D, s_neg, S_K, logq,
                                        1);
    memset(dt1, 0, sizeof dt1);
    double ld = s_loss(dh1, dt1, h, tok, s_neg, S_K, logq, 1);
    assert_true(fabs(lf - ld) < 1e-4 * fabs(ld));
    for (size_t i = 0; i < S_T * S_D; i++) assert_true(fabs(dhf[i] - dh1[i]) < 1e-4);
    for (size_t i = 0; i < (S_NI + 1) * S_D; i++) assert_true(fabs(dtf[i] - dt1[i]) < 1e-4);
}

/* ------------------------------------------------------------------ whole model (double) */

typedef struct tiny {
    dr_sasrec_dims dm;
    double *P, *G, *A;
    dr_sr_params_f64 p, g;
    dr_sr_acts_f64 a;
    size_t np;
    size_t off[4];
    uint32_t inp[12], tgt[12], neg[12], sneg[5];
    double logq[8];
    uint64_t seed[3];
    dr_sr_batch bt;
} tiny;

static void tiny_init(tiny *t, int train) {
    memset(t, 0, sizeof *t);
    t->dm = (dr_sasrec_dims){.n_items = 7, .d = 6, .L = 6, .blocks = 2, .heads = 2};
    t->np = dr__sasrec_tensors(&t->dm, NULL, 0);
    t->P = calloc(t->np, sizeof(double));
    t->G = calloc(t->np, sizeof(double));
    dr_rng r;
    dr__rng_seed(&r, 7, 0);
    fill_normal(t->P, t->np, 0.5, &r);
    dr__sr_params_layout_f64(&t->dm, t->P, &t->p);
    dr__sr_params_layout_f64(&t->dm, t->G, &t->g);
    for (size_t i = 0; i < 2 * t->dm.d; i++) t->p.ln1w[i] += 1, t->p.ln2w[i] += 1;
    for (size_t i = 0; i < t->dm.d; i++) t->p.lnfw[i] += 1;
    /* three sequences of lengths 6, 4 and 1 */
    const size_t off[4] = {0, 6, 10, 11};
    memcpy(t->off, off, sizeof off);
    for (size_t k = 0; k < 11; k++) {
        t->inp[k] = 1 + (uint32_t)dr__rng_below(&r, 7);
        t->tgt[k] = k == 3 ? 0 : 1 + (uint32_t)dr__rng_below(&r, 7); /* one position unused */
        t->neg[k] = 1 + (uint32_t)dr__rng_below(&r, 7);
    }
    t->seed[0] = 11, t->seed[1] = 12, t->seed[2] = 13;
    for (size_t k = 0; k < 5; k++) t->sneg[k] = 1 + (uint32_t)dr__rng_below(&r, 7);
    for (size_t i = 0; i < 8; i++) t->logq[i] = log((2.0 + i) / 42.0);
    t->bt = (dr_sr_batch){.n_seq = 3, .off = t->off, .inp = t->inp, .tgt = t->tgt,
                          .neg = t->neg, .seed = t->seed, .sneg = t->sneg, .n_sneg = 5,
                          .logq = t->logq};
    size_t att_cap = t->dm.heads * (36 + 16 + 1);
    size_t na = dr__sr_acts_layout_f64(&t->dm, 11, att_cap, train, NULL, NULL);
    t->A = calloc(na + DR_SR_CHUNK * t->dm.n_items + dr__sr_sampled_scratch_f64(5, t->dm.d),
                  sizeof(double));
    dr__sr_acts_layout_f64(&t->dm, 11, att_cap, train, t->A, &t->a);
    t->a.logits = t->A + na;
}

static void tiny_free(tiny *t) {
    free(t->P);
    free(t->G);
    free(t->A);
}

static double tiny_loss(tiny *t, int kind, int grad, double p_drop) {
    dr__sr_masks_f64(&t->a, &t->dm, &t->bt, p_drop);
    dr__sr_forward_f64(&t->dm, &t->p, &t->a, &t->bt);
    return dr__sr_loss_backward_f64(&t->dm, &t->p, grad ? &t->g : NULL, &t->a, &t->bt, kind, 1);
}

static void test_model_grad(void **state) {
    static const char *const names[3] = {"ce", "bce", "sampled"};
    for (int kind = 0; kind < 3; kind++) {
        tiny t;
        tiny_init(&t, 1);
        const double pd = 0.3; /* dropout on: the masks are the same in every pass */
        tiny_loss(&t, kind, 1, pd);
        /* every tensor: up to 12 entries, chosen at random, plus the first */
        dr_sasrec_tensor tt[DR_SASREC_N_TENSORS];
        dr__sasrec_tensors(&t.dm, tt, DR_SASREC_N_TENSORS);
        dr_rng r;
        dr__rng_seed(&r, 8, (uint64_t)kind);
        int nonzero = 0;
        for (int k = 0; k < DR_SASREC_N_TENSORS; k++) {
            for (int j = 0; j < 12; j++) {
                size_t i = tt[k].offset + (j ? (size_t)dr__rng_below(&r, tt[k].count) : 0);
                double s = t.P[i];
                t.P[i] = s + EPS;
                double lp = tiny_loss(&t, kind, 0, pd);
                t.P[i] = s - EPS;
                double lm = tiny_loss(&t, kind, 0, pd);
                t.P[i] = s;
                char nm[64];
                snprintf(nm, sizeof nm, "%s %s", names[kind], tt[k].name);
                check_grad(nm, i - tt[k].offset, t.G[i], (lp - lm) / (2 * EPS));
                nonzero += t.G[i] != 0;
            }
        }
        assert_true(nonzero > 100); /* the check is not vacuous */
        tiny_free(&t);
    }
}

/* Changing a future item leaves earlier outputs unchanged; changing a past one does not. */
static void test_causal_mask(void **state) {
    tiny t;
    tiny_init(&t, 0);
    const size_t d = t.dm.d;
    double before[66];
    dr__sr_forward_f64(&t.dm, &t.p, &t.a, &t.bt);
    memcpy(before, t.a.lnf, 11 * d * sizeof(double));
    t.inp[4] = t.inp[4] % 7 + 1; /* sequence 0, position 4 */
    dr__sr_forward_f64(&t.dm, &t.p, &t.a, &t.bt);
    assert_memory_equal(before, t.a.lnf, 4 * d * sizeof(double));
    assert_memory_not_equal(before + 4 * d, t.a.lnf + 4 * d, d * sizeof(double));
    assert_memory_not_equal(before + 5 * d, t.a.lnf + 5 * d, d * sizeof(double));
    /* the other sequences are untouched */
    assert_memory_equal(before + 6 * d, t.a.lnf + 6 * d, 5 * d * sizeof(double));
    tiny_free(&t);
}

/* A sequence's outputs do not depend on the other sequences of its batch. */
static void test_padding_invariance(void **state) {
    tiny t;
    tiny_init(&t, 0);
    const size_t d = t.dm.d;
    double batch[66];
    dr__sr_forward_f64(&t.dm, &t.p, &t.a, &t.bt);
    memcpy(batch, t.a.lnf, 11 * d * sizeof(double));
    for (size_t s = 0; s < 3; s++) {
        size_t o = t.off[s], n = t.off[s + 1] - o, off1[2] = {0, n};
        dr_sr_batch one = {.n_seq = 1, .off = off1, .inp = t.inp + o};
        dr__sr_forward_f64(&t.dm, &t.p, &t.a, &one);
        for (size_t i = 0; i < n * d; i++)
            assert_true(fabs(t.a.lnf[i] - batch[o * d + i]) <= 1e-12 * (1 + fabs(batch[o * d + i])));
    }
    tiny_free(&t);
}

/* ------------------------------------------------------------------ training */

static dr_dataset *g_ds;
static dr_split *g_sp;

static int setup_data(void **state) {
    dr_synth_params sp = dr_synth_default_params();
    sp.n_users = 600;
    sp.n_items = 300;
    sp.n_events = 18000;
    sp.mod_dim[0] = sp.mod_dim[1] = sp.mod_dim[2] = 0;
    dr_error err = {0};
    if (dr_synth_generate(&sp, &g_ds, &err) != DR_OK) {
        fprintf(stderr, "synth: %s\n", err.msg);
        return -1;
    }
    if (dr_split_create(g_ds, DR_SPLIT_LOO, &g_sp, &err) != DR_OK) {
        fprintf(stderr, "split: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown_data(void **state) {
    dr_split_free(g_sp);
    dr_dataset_free(g_ds);
    return 0;
}

static dr_sasrec_params small_params(void) {
    dr_sasrec_params p = dr__sasrec_default_params();
    p.d = 16;
    p.L = 20;
    p.heads = 2;
    p.batch = 64;
    p.epochs = 2;
    p.eval_every = 0;
    p.seed = 5;
    return p;
}

static void test_threads_bit_identical(void **state) {
    for (int kind = 0; kind < DR_SASREC_N_LOSSES; kind++) {
        float *ref = NULL;
        size_t n_ref = 0;
        for (int th = 1; th <= 3; th++) {
            dr_sasrec_params p = small_params();
            p.loss = (dr_sasrec_loss)kind;
            p.threads = th;
            p.eval_every = 1; /* validation and best-keeping take part too */
            dr_sasrec *m = NULL;
            dr_error e = {0};
            if (dr__sasrec_fit(g_ds, g_sp, &p, &m, &e) != DR_OK) fail_msg("fit: %s", e.msg);
            size_t n;
            const float *blk = dr__sasrec_param_block(m, &n);
            if (th == 1) {
                ref = malloc(n * sizeof *ref);
                memcpy(ref, blk, n * sizeof *ref);
                n_ref = n;
            } else {
                assert_int_equal(n, n_ref);
                assert_memory_equal(ref, blk, n * sizeof *ref);
            }
            dr__sasrec_free(m);
        }
        free(ref);
    }
}

/* Serving: latent = last position of the forward; context beyond L is ignored; a model over
 * a borrowed copy of the block scores the same; scoring does not allocate. */
static void test_serving(void **state) {
    dr_sasrec_params p = small_params();
    p.epochs = 1;
    dr_sasrec *m = NULL, *m2 = NULL;
    dr_error e = {0};
    if (dr__sasrec_fit(g_ds, g_sp, &p, &m, &e) != DR_OK) fail_msg("fit: %s", e.msg);
    const dr_sasrec_dims *dm = dr__sasrec_get_dims(m);
    size_t n;
    const float *blk = dr__sasrec_param_block(m, &n);
    float *copy = malloc(n * sizeof *copy);
    memcpy(copy, blk, n * sizeof *copy);
    assert_int_equal(dr__sasrec_from_params(dm, copy, n - 1, &m2, &e), DR_FORMAT);
    assert_ok(dr__sasrec_from_params(dm, copy, n, &m2, &e_));
    uint32_t ctx[50];
    for (size_t k = 0; k < 50; k++) ctx[k] = (uint32_t)(k * 7 % dm->n_items);
    void *scr = malloc(dr__sasrec_scratch_bytes(m));
    float h1[16], h2[16], *s1 = malloc(dm->n_items * sizeof(float)),
                          *s2 = malloc(dm->n_items * sizeof(float));
    uint64_t a0 = dr__alloc_count();
    dr__sasrec_user_latent(m, ctx, 50, h1, scr);
    dr__sasrec_user_latent(m, ctx + 30, 20, h2, scr); /* L = 20: the same window */
    assert_memory_equal(h1, h2, sizeof h1);
    dr__sasrec_user_latent(m, ctx + 31, 19, h2, scr);
    assert_memory_not_equal(h1, h2, sizeof h1);
    dr__sasrec_score(m, ctx, 50, s1, scr);
    dr__sasrec_score(m2, ctx, 50, s2, scr);
    assert_int_equal(dr__alloc_count(), a0);
    assert_memory_equal(s1, s2, dm->n_items * sizeof(float));
    double dot = 0;
    for (size_t i = 0; i < dm->d; i++) dot += (double)h1[i] * copy[(3 + 1) * dm->d + i];
    assert_true(fabs(dot - s1[3]) < 1e-4);
    dr__sasrec_free(m2);
    dr__sasrec_free(m);
    free(copy);
    free(scr);
    free(s1);
    free(s2);
}

static void beats_pop(dr_sasrec_loss loss) {
    dr_sasrec_params p = small_params();
    p.loss = loss;
    p.negatives = 64; /* of 300 items */
    p.d = 32;
    p.heads = 1;
    p.epochs = 30;
    p.eval_every = 2;
    p.patience = 3;
    p.dropout = 0.2f;
    p.lr = 3e-3f;
    dr_sasrec *s = NULL;
    dr_model *ms = NULL, *mp = NULL;
    dr_error e = {0};
    if (dr__sasrec_fit(g_ds, g_sp, &p, &s, &e) != DR_OK) fail_msg("fit: %s", e.msg);
    assert_ok(dr__sasrec_as_model(s, &ms, &e_));
    dr_model_params pp = dr_model_default_params();
    pp.name = "pop";
    assert_ok(dr_model_fit(g_ds, g_sp, &pp, &mp, &e_));
    dr_eval_params ep = dr_eval_default_params();
    dr_eval_result rs, rp;
    assert_ok(dr_eval_split(g_ds, g_sp, ms, &ep, &rs, &e_));
    assert_ok(dr_eval_split(g_ds, g_sp, mp, &ep, &rp, &e_));
    /* the kept parameters are the best validated epoch's: its validation reproduces */
    const dr_validator val = dr__validator_make(&dr_sasrec_vt, g_ds, g_sp);
    const dr_valid_opts vo = {.threads = 1, .subset = {p.val_users, p.seed, 1, 1}};
    double mine = -1;
    assert_ok(val.fn(&val, s, &vo, &mine, NULL, &e_));
    fprintf(stderr, "synth P-LOO full NDCG@10: sasrec (%s) %.4f (validation %.4f) pop %.4f\n",
            dr__sasrec_loss_name((int)loss), rs.full10.ndcg, mine, rp.full10.ndcg);
    assert_true(mine == dr__sasrec_best_val(s, NULL));
    assert_true(rs.full10.ndcg > 1.2 * rp.full10.ndcg);
    dr_model_free(ms);
    dr_model_free(mp);
}

static void test_beats_pop(void **state) {
    beats_pop(DR_SASREC_CE);
    beats_pop(DR_SASREC_SAMPLED);
}

/* The loss and its settings: saved in the checkpoint and read back, kept by a warm start
 * that does not name a loss, and bad values refused with an error naming them. */
static dr_model_params sampled_mp(void) {
    dr_model_params mp = dr_model_default_params();
    mp.name = "sasrec";
    mp.dim = 8;
    mp.max_len = 10;
    mp.heads = 1;
    mp.batch = 64;
    mp.epochs = 2;
    mp.seed = 5;
    mp.threads = 2;
    mp.loss = "sampled";
    mp.negatives = 48;
    mp.neg_alpha = 0.75f;
    return mp;
}

static void fit_fails(const dr_model_params *mp, const char *needle) {
    dr_model *m = NULL;
    dr_error e = {0};
    assert_int_equal(dr_model_fit(g_ds, g_sp, mp, &m, &e), DR_ARG);
    assert_null(m);
    if (!strstr(e.msg, needle)) fail_msg("error '%s' does not name '%s'", e.msg, needle);
}

static void test_sampled_options(void **state) {
    char dir[256], path[300], path2[300];
    dr_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/sampled.drm", dir);
    snprintf(path2, sizeof path2, "%s/ce.drm", dir);
    dr_model_params mp = sampled_mp();
    dr_model *m = NULL, *back = NULL, *warm = NULL;
    assert_ok(dr_model_fit(g_ds, g_sp, &mp, &m, &e_));
    uint32_t negs;
    float alpha;
    assert_int_equal(dr__sasrec_get_loss(m->state, &negs, &alpha), DR_SASREC_SAMPLED);
    assert_int_equal(negs, 48);
    assert_true(alpha == 0.75f);
    assert_ok(dr_model_save(m, g_ds, g_sp, path, &e_));
    assert_ok(dr_model_load(path, &back, &e_));
    assert_string_equal(dr_model_meta(back, "sasrec_loss"), "sampled");
    assert_string_equal(dr_model_meta(back, "sasrec_negatives"), "48");
    assert_string_equal(dr_model_meta(back, "sasrec_neg_alpha"), "0.75");
    assert_int_equal(dr__sasrec_get_loss(back->state, &negs, &alpha), DR_SASREC_SAMPLED);
    assert_int_equal(negs, 48);
    assert_true(alpha == 0.75f);
    /* a warm start from it that names no loss trains on with the checkpoint's */
    dr_model_params wp = dr_model_default_params();
    wp.name = "sasrec";
    wp.epochs = 1;
    wp.threads = 1;
    wp.init = back;
    assert_ok(dr_model_fit(g_ds, g_sp, &wp, &warm, &e_));
    assert_int_equal(dr__sasrec_get_loss(warm->state, &negs, &alpha), DR_SASREC_SAMPLED);
    assert_int_equal(negs, 48);
    dr_model_free(warm);
    dr_model_free(back);
    dr_model_free(m);
    /* CE: the loss is saved, the sampled settings are not */
    mp.loss = "ce";
    mp.negatives = 0;
    mp.neg_alpha = -1;
    mp.epochs = 1;
    assert_ok(dr_model_fit(g_ds, g_sp, &mp, &m, &e_));
    assert_ok(dr_model_save(m, g_ds, g_sp, path2, &e_));
    assert_ok(dr_model_load(path2, &back, &e_));
    assert_string_equal(dr_model_meta(back, "sasrec_loss"), "ce");
    assert_null(dr_model_meta(back, "sasrec_negatives"));
    assert_int_equal(dr__sasrec_get_loss(back->state, NULL, NULL), DR_SASREC_CE);
    dr_model_free(back);
    dr_model_free(m);
    dr_test_rmrf(dir);

    /* bad values */
    mp = sampled_mp();
    mp.loss = "softmax";
    fit_fails(&mp, "unknown loss 'softmax' (ce, bce, sampled)");
    mp = sampled_mp();
    mp.negatives = DR_SASREC_MAX_NEGATIVES + 1;
    fit_fails(&mp, "negatives=65537 out of range");
    mp = sampled_mp();
    mp.neg_alpha = 1.5f;
    fit_fails(&mp, "neg_alpha=1.5 out of range");
    mp = sampled_mp();
    mp.loss = "ce";
    fit_fails(&mp, "apply to the loss 'sampled' only");
    mp.loss = NULL; /* the default loss is ce */
    fit_fails(&mp, "apply to the loss 'sampled' only");
}

/* Determinism for a seed: the same seed gives the same bytes (and any thread count, above);
 * another seed draws other negatives. */
static void test_sampled_seed(void **state) {
    float *blk[3];
    size_t n = 0;
    for (int k = 0; k < 3; k++) {
        dr_sasrec_params p = small_params();
        p.loss = DR_SASREC_SAMPLED;
        p.negatives = 32;
        p.seed = k == 2 ? 6 : 5;
        dr_sasrec *m = NULL;
        dr_error e = {0};
        if (dr__sasrec_fit(g_ds, g_sp, &p, &m, &e) != DR_OK) fail_msg("fit: %s", e.msg);
        const float *b = dr__sasrec_param_block(m, &n);
        blk[k] = malloc(n * sizeof(float));
        memcpy(blk[k], b, n * sizeof(float));
        dr__sasrec_free(m);
    }
    assert_memory_equal(blk[0], blk[1], n * sizeof(float));
    assert_memory_not_equal(blk[0], blk[2], n * sizeof(float));
    for (int k = 0; k < 3; k++) free(blk[k]);
}

/* Allocation failures of a sampled fit (its Q tables and negatives) */
typedef struct so_oom {
    dr_dataset *ds;
    dr_split *sp;
    dr_model_params mp;
    dr_model *m;
} so_oom;

static dr_status so_fit(void *ud, dr_error *err) {
    so_oom *u = ud;
    return dr_model_fit(u->ds, u->sp, &u->mp, &u->m, err);
}

DR_OOM_FREE_FN(so_free, so_oom, m, dr_model_free)

static void test_sampled_oom(void **state) {
    dr_synth_params sp = dr_synth_default_params();
    sp.seed = 3;
    sp.n_users = 12;
    sp.n_items = 10;
    sp.n_events = 150;
    sp.n_genres = 2;
    sp.mod_dim[0] = sp.mod_dim[1] = sp.mod_dim[2] = 0;
    so_oom u = {0};
    assert_ok(dr_synth_generate(&sp, &u.ds, &e_));
    assert_ok(dr_split_create(u.ds, DR_SPLIT_LOO, &u.sp, &e_));
    u.mp = sampled_mp();
    u.mp.dim = 4;
    u.mp.max_len = 4;
    u.mp.batch = 4;
    u.mp.eval_every = 1;
    u.mp.threads = 1;
    dr_oom_case c = {.name = "dr_model_fit (sasrec, sampled)", .call = so_fit,
                     .cleanup = so_free, .ud = &u, .out = (void **)&u.m};
    assert_true(dr_oom_check(&c) > 0);
    dr_split_free(u.sp);
    dr_dataset_free(u.ds);
}

/* A T0 split has no validation targets: training must run every epoch and keep the last
 * parameters (not fall back to the first evaluated epoch), i.e. equal eval_every = 0. */
static void test_no_validation_keeps_last(void **state) {
    dr_split *t0 = NULL; /* the P-STREAM cut without its validation targets */
    dr_error err = {0};
    dr_dataset_stats st;
    assert_int_equal(dr_dataset_get_stats(g_ds, &st), DR_OK);
    assert_int_equal(dr__split_t0_at(g_ds, st.t0, 0, &t0, &err), DR_OK);
    dr_sasrec_params p = small_params();
    p.epochs = 3;
    p.threads = 1;
    p.eval_every = 1;
    p.patience = 1;
    dr_sasrec *a = NULL, *b = NULL;
    assert_int_equal(dr__sasrec_fit(g_ds, t0, &p, &a, &err), DR_OK);
    p.eval_every = 0;
    assert_int_equal(dr__sasrec_fit(g_ds, t0, &p, &b, &err), DR_OK);
    size_t na, nb;
    const float *pa = dr__sasrec_param_block(a, &na), *pb = dr__sasrec_param_block(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(pa, pb, na * sizeof *pa);
    int epoch;
    assert_true(dr__sasrec_best_val(a, &epoch) < 0);
    dr__sasrec_free(a);
    dr__sasrec_free(b);
    dr_split_free(t0);
}

static void count_epoch(void *ud, int epoch, double loss, double val, double secs) {
    (void)epoch, (void)loss, (void)val, (void)secs;
    ++*(int *)ud;
}

/* Early stopping never stops before min_epochs: with a vanishing learning rate the validation
 * figure never improves after the first epoch, yet the fit runs min_epochs epochs (then stops
 * after patience), and without a floor it stops after patience. */
static void test_min_epochs(void **state) {
    dr_split *sp = NULL;
    dr_error err = {0};
    assert_int_equal(dr_split_create(g_ds, DR_SPLIT_LOO, &sp, &err), DR_OK);
    dr_sasrec_params p = small_params();
    p.epochs = 40;
    p.eval_every = 1;
    p.patience = 2;
    p.lr = 1e-12f;
    p.threads = 1;
    int n = 0;
    p.on_epoch = count_epoch;
    p.on_epoch_ud = &n;
    dr_sasrec *a = NULL;
    assert_int_equal(dr__sasrec_fit(g_ds, sp, &p, &a, &err), DR_OK);
    assert_int_equal(n, (int)p.min_epochs);
    assert_true(p.min_epochs >= 10);
    dr__sasrec_free(a);
    n = 0;
    p.min_epochs = 0;
    assert_int_equal(dr__sasrec_fit(g_ds, sp, &p, &a, &err), DR_OK);
    assert_true(n <= 3);
    dr__sasrec_free(a);
    /* the public parameter (`--min-epochs`) reaches the fit: 6 epochs, then patience */
    dr_model_params mp = dr_model_default_params();
    mp.name = "sasrec";
    mp.dim = p.d;
    mp.max_len = p.L;
    mp.epochs = 40;
    mp.patience = 2;
    mp.min_epochs = 6;
    mp.lr = 1e-12f;
    mp.threads = 1;
    mp.on_epoch = count_epoch;
    mp.on_epoch_ud = &n;
    dr_model *m = NULL;
    n = 0;
    assert_int_equal(dr_model_fit(g_ds, sp, &mp, &m, &err), DR_OK);
    assert_int_equal(n, 6);
    dr_model_free(m);
    dr_split_free(sp);
}

/* Warm start copies the given model's parameters: with a vanishing learning rate the fit ends
 * where the init was (a random start would not), and a model of another shape is refused. */
static void test_warm_start(void **state) {
    dr_split *t0 = NULL;
    dr_error err = {0};
    assert_int_equal(dr_split_create(g_ds, DR_SPLIT_T0, &t0, &err), DR_OK);
    dr_sasrec_params p = small_params();
    p.epochs = 2;
    p.threads = 1;
    dr_sasrec *a = NULL, *b = NULL, *c = NULL;
    assert_int_equal(dr__sasrec_fit(g_ds, t0, &p, &a, &err), DR_OK);
    p.epochs = 1;
    p.lr = 1e-12f;
    p.seed = 99;
    p.init = a;
    assert_int_equal(dr__sasrec_fit(g_ds, t0, &p, &b, &err), DR_OK);
    size_t na, nb;
    const float *pa = dr__sasrec_param_block(a, &na), *pb = dr__sasrec_param_block(b, &nb);
    assert_int_equal(na, nb);
    double diff = 0, norm = 0;
    for (size_t k = 0; k < na; k++) {
        diff += fabs((double)pa[k] - pb[k]);
        norm += fabs((double)pa[k]);
    }
    assert_true(diff < 1e-6 * norm);
    p.d = small_params().d * 2;
    assert_int_equal(dr__sasrec_fit(g_ds, t0, &p, &c, &err), DR_ARG);
    assert_non_null(strstr(err.msg, "another shape"));
    assert_null(c);
    p.d = small_params().d; /* a fused model's table holds z, not e: refused, not misread */
    p.use_modalities = 1;
    assert_int_equal(dr__sasrec_fit(g_ds, t0, &p, &c, &err), DR_UNSUPPORTED);
    assert_null(c);
    dr__sasrec_free(a);
    dr__sasrec_free(b);
    dr_split_free(t0);
}

/* The slice called name of a parameter block laid out for dims. */
static const float *tensor(const dr_sasrec *m, const char *name, size_t *count) {
    dr_sasrec_tensor t[DR_SASREC_N_TENSORS];
    dr__sasrec_tensors(dr__sasrec_get_dims(m), t, DR_SASREC_N_TENSORS);
    for (int k = 0; k < DR_SASREC_N_TENSORS; k++)
        if (!strcmp(t[k].name, name)) {
            if (count) *count = t[k].count;
            return dr__sasrec_param_block(m, NULL) + t[k].offset;
        }
    fail_msg("no tensor %s", name);
    return NULL;
}

/* Warm start from a checkpoint over another window of the data (users who join later, new
 * items, known items renumbered): before the first step (0 epochs) every shared tensor is the
 * init's, a known item's embedding is its old row bit for bit and a new item's is what a cold
 * fit with the same seed draws; other shapes are refused. */
static void test_warm_rows(void **state) {
    const size_t n = g_ds->n_events;
    dr_dataset *old = warm_window(g_ds, 0, n * 8 / 10, 7), *now = warm_window(g_ds, n / 10, n, 0);
    dr_split *so = NULL, *sn = NULL;
    dr_error e = {0};
    assert_int_equal(dr_split_create(old, DR_SPLIT_LOO, &so, &e), DR_OK);
    assert_int_equal(dr_split_create(now, DR_SPLIT_LOO, &sn, &e), DR_OK);
    dr_sasrec_params p = small_params();
    dr_sasrec *s0 = NULL, *cold = NULL, *warm = NULL, *bad = NULL;
    assert_int_equal(dr__sasrec_fit(old, so, &p, &s0, &e), DR_OK);
    dr_model *m0 = NULL;
    assert_int_equal(dr__sasrec_as_model(s0, &m0, &e), DR_OK);
    dr_model *init = warm_reload(m0, old, so, "sasrec_rows");
    const dr_sasrec *si = init->state;
    dr_warm_map map;
    assert_int_equal(dr__warm_map_build(init, 0, now, &map, &e), DR_OK);
    assert_null(map.user); /* SASRec keeps no user rows */
    p.epochs = 0;
    p.seed = 8;
    assert_int_equal(dr__sasrec_fit(now, sn, &p, &cold, &e), DR_OK);
    p.init = si;
    p.init_map = &map;
    assert_int_equal(dr__sasrec_fit(now, sn, &p, &warm, &e), DR_OK);
    const uint32_t d = p.d;
    const float *tw = tensor(warm, "tok", NULL), *ti = tensor(si, "tok", NULL),
                *tc = tensor(cold, "tok", NULL);
    for (uint32_t c = 0; c < d; c++) assert_true(tw[c] == 0.0f); /* padding */
    assert_int_equal(warm_check_rows(tw + d, ti + d, tc + d, d, &now->items, now->n_items,
                                     &old->items, old->n_items, NULL, 1),
                     map.known_items);
    const char *shared[] = {"pos", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
                            "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"};
    for (size_t k = 0; k < DR_ARRAY_LEN(shared); k++) {
        size_t cw, ci;
        const float *a = tensor(warm, shared[k], &cw), *b = tensor(si, shared[k], &ci);
        assert_int_equal(cw, ci);
        if (memcmp(a, b, cw * sizeof *a)) fail_msg("tensor %s is not the init's", shared[k]);
    }
    /* init_lr_scale 0: an epoch moves the new items' rows only (what the init gave stays) */
    dr_sasrec *kept = NULL;
    p.epochs = 1;
    p.init_lr_scale = 0.0f;
    assert_int_equal(dr__sasrec_fit(now, sn, &p, &kept, &e), DR_OK);
    const float *tk = tensor(kept, "tok", NULL);
    warm_check_rows(tk + d, ti + d, NULL, d, &now->items, now->n_items, &old->items, old->n_items,
                    NULL, 1);
    for (size_t k = 0; k < DR_ARRAY_LEN(shared); k++) {
        size_t cw;
        const float *a = tensor(kept, shared[k], &cw), *b = tensor(si, shared[k], NULL);
        if (memcmp(a, b, cw * sizeof *a)) fail_msg("tensor %s moved at init_lr_scale 0", shared[k]);
    }
    uint32_t learned = 0;
    for (uint32_t i = 0; i < now->n_items; i++)
        learned += map.item[i] == DR_WARM_NEW &&
                   memcmp(tk + (size_t)(i + 1) * d, tc + (size_t)(i + 1) * d, d * sizeof *tk) != 0;
    assert_true(learned > 0);
    dr__sasrec_free(kept);
    p.epochs = 0;
    p.init_lr_scale = 1.0f;
    /* refused, with the reason */
    p.d = 32;
    assert_int_equal(dr__sasrec_fit(now, sn, &p, &bad, &e), DR_ARG);
    assert_non_null(strstr(e.msg, "sasrec: warm start from a model of another shape"));
    assert_non_null(strstr(e.msg, "d 16"));
    p.d = 16;
    p.use_modalities = 1;
    assert_int_equal(dr__sasrec_fit(now, sn, &p, &bad, &e), DR_UNSUPPORTED);
    assert_non_null(strstr(e.msg, "the init model fuses ids only"));
    p.use_modalities = 0;
    p.init_map = NULL; /* row for row needs the same items */
    assert_int_equal(dr__sasrec_fit(now, sn, &p, &bad, &e), DR_ARG);
    assert_null(bad);
    dr__warm_map_free(&map);
    dr__sasrec_free(warm);
    dr__sasrec_free(cold);
    dr_model_free(init);
    dr_model_free(m0);
    dr_split_free(so);
    dr_split_free(sn);
    dr_dataset_free(old);
    dr_dataset_free(now);
}

/* A retrain on 10% new events from the old checkpoint reaches the old model's validation
 * NDCG@10 within 3 epochs; a cold fit of 3 epochs does not get as far. */
static void test_warm_retrain(void **state) {
    dr_dataset *old = warm_window(g_ds, 0, g_ds->n_events * 9 / 10, 0);
    dr_split *so = NULL;
    dr_error e = {0};
    assert_int_equal(dr_split_create(old, DR_SPLIT_LOO, &so, &e), DR_OK);
    dr_model_params mp = dr_model_default_params();
    mp.name = "sasrec";
    mp.dim = 16;
    mp.max_len = 20;
    mp.heads = 2;
    mp.batch = 64;
    mp.epochs = 40;
    mp.patience = 3;
    mp.seed = 5;
    dr_model *m0 = NULL, *warm = NULL, *cold = NULL;
    assert_int_equal(dr_model_fit(old, so, &mp, &m0, &e), DR_OK);
    int ep_old;
    const double v_old = dr__sasrec_best_val(m0->state, &ep_old);
    dr_model *init = warm_reload(m0, old, so, "sasrec_retrain");
    mp.epochs = 3;
    assert_int_equal(dr_model_fit(g_ds, g_sp, &mp, &cold, &e), DR_OK);
    mp.init = init;
    mp.dim = mp.max_len = mp.heads = 0; /* not given: the init's */
    assert_int_equal(dr_model_fit(g_ds, g_sp, &mp, &warm, &e), DR_OK);
    const double v_warm = dr__sasrec_best_val(warm->state, NULL),
                 v_cold = dr__sasrec_best_val(cold->state, NULL);
    fprintf(stderr, "warm retrain (sasrec, 10%% new events, 3 epochs): validation NDCG@10 warm "
            "%.4f cold %.4f, old model %.4f (best epoch %d)\n", v_warm, v_cold, v_old, ep_old);
    assert_true(v_warm >= v_old);
    assert_true(v_warm > v_cold);
    dr_model_free(warm);
    dr_model_free(cold);
    dr_model_free(init);
    dr_model_free(m0);
    dr_split_free(so);
    dr_dataset_free(old);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_validation_keeps_last),
        cmocka_unit_test(test_min_epochs),
        cmocka_unit_test(test_warm_start),
        cmocka_unit_test(test_warm_rows),
        cmocka_unit_test(test_warm_retrain),
        cmocka_unit_test(test_layernorm_grad),
        cmocka_unit_test(test_matmul_grad),
        cmocka_unit_test(test_attention_grad),
        cmocka_unit_test(test_pointwise_grads),
        cmocka_unit_test(test_embed_grad),
        cmocka_unit_test(test_loss_grads),
        cmocka_unit_test(test_sampled_loss_grad),
        cmocka_unit_test(test_sampled_logq),
        cmocka_unit_test(test_model_grad),
        cmocka_unit_test(test_causal_mask),
        cmocka_unit_test(test_padding_invariance),
        cmocka_unit_test(test_threads_bit_identical),
        cmocka_unit_test(test_sampled_options),
        cmocka_unit_test(test_sampled_seed),
        cmocka_unit_test(test_sampled_oom),
        cmocka_unit_test(test_serving),
        cmocka_unit_test(test_beats_pop),
    };
    int rc = cmocka_run_group_tests(tests, setup_data, teardown_data);
    fprintf(stderr, "%d gradient entries checked\n", g_checks);
    return rc;
}
