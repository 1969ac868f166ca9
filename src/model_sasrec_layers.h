/*
 * model_sasrec_layers.h - SASRec layers, forward/backward pairs, written once for any REAL.
 *
 * DESIGN: this file is a template. model_sasrec.c includes it twice: with REAL = float, SR(x) =
 * x##_f32 and GEMM = cblas_sgemm (training and serving), and with REAL = double, SR(x) =
 * x##_f64 and GEMM = cblas_dgemm (only the gradient tests call those). The finite-difference
 * checks in tests/unit/test_sasrec.c therefore run the very code that trains, in double, where
 * a central difference is accurate to ~1e-8 and a wrong gradient cannot hide in float noise.
 * Alternative rejected: a separate hand-written double reference, which tests the reference,
 * not the code that ships.
 *
 * Conventions (as in karpathy/llm.c): activations are row-major (T, C) over the T packed
 * positions of a shard; a linear layer's weight is (OC, C) and out = inp W^T + b; backward
 * functions ACCUMULATE into parameter gradients; matmul/attention backward OVERWRITE their
 * input gradient; layernorm backward ACCUMULATES into its input gradient (the residual stream).
 * Sequences are packed without padding: sequence s owns positions off[s] .. off[s+1]-1, so the
 * SASRec timeline mask is realised by never computing padded positions at all.
 */
#ifndef REAL
#error "model_sasrec_layers.h is a template: define REAL, SR, GEMM, EXP, LOG, SQRT first"
#endif

/* ------------------------------------------------------------------ parameters, activations */


/* Points P's slices into base (dr__sasrec_tensors order and offsets). */
void SR(dr__sr_params_layout)(const dr_sasrec_dims *dm, REAL *base, SR(dr_sr_params) *P) {
    dr_sasrec_tensor t[DR_SASREC_N_TENSORS];
    dr__sasrec_tensors(dm, t, DR_SASREC_N_TENSORS);
    REAL **slot[DR_SASREC_N_TENSORS] = {&P->tok,  &P->pos,      &P->ln1w,     &P->ln1b,
                                        &P->qkvw, &P->qkvb,     &P->attprojw, &P->attprojb,
                                        &P->ln2w, &P->ln2b,     &P->fcw,      &P->fcb,
                                        &P->fcprojw, &P->fcprojb, &P->lnfw,   &P->lnfb};
    for (int k = 0; k < DR_SASREC_N_TENSORS; k++) *slot[k] = base + t[k].offset;
}


/* Lays out activations for T positions (att_cap as above) at base; returns the number of
 * REALs needed (base may be NULL to only count). train = 0 leaves masks and scratch NULL.
 * A->logits is not part of the layout: the caller points it at (DR_SR_CHUNK, n_items) REALs
 * for CE, dr__sr_sampled_scratch(K, d) for the sampled loss (one buffer per worker thread,
 * since it is dead between shards). */
size_t SR(dr__sr_acts_layout)(const dr_sasrec_dims *dm, size_t T, size_t att_cap, int train,
                             REAL *base, SR(dr_sr_acts) *A) {
    const size_t d = dm->d, nb = dm->blocks;
    size_t off = 0;
    SR(dr_sr_acts) tmp;
    if (!A) A = &tmp;
    memset(A, 0, sizeof *A);
    A->T = T;
    A->att_cap = att_cap;
#define DR_SR_TAKE(field, count)                                         \
    do {                                                                 \
        A->field = base ? base + off : NULL;                             \
        off += ((size_t)(count) + 15) & ~(size_t)15; /* 64-byte rows */ \
    } while (0)
    DR_SR_TAKE(emb, T * d);
    DR_SR_TAKE(ln1, nb * T * d);
    DR_SR_TAKE(ln1_mean, nb * T);
    DR_SR_TAKE(ln1_rstd, nb * T);
    DR_SR_TAKE(qkv, nb * T * 3 * d);
    DR_SR_TAKE(att, nb * att_cap);
    DR_SR_TAKE(atty, nb * T * d);
    DR_SR_TAKE(attproj, nb * T * d);
    DR_SR_TAKE(res2, nb * T * d);
    DR_SR_TAKE(ln2, nb * T * d);
    DR_SR_TAKE(ln2_mean, nb * T);
    DR_SR_TAKE(ln2_rstd, nb * T);
    DR_SR_TAKE(fch, nb * T * d);
    DR_SR_TAKE(fch_act, nb * T * d);
    DR_SR_TAKE(fcproj, nb * T * d);
    DR_SR_TAKE(res3, nb * T * d);
    DR_SR_TAKE(lnf, T * d);
    DR_SR_TAKE(lnf_mean, T);
    DR_SR_TAKE(lnf_rstd, T);
    if (train) {
        DR_SR_TAKE(m_emb, T * d);
        DR_SR_TAKE(m_attproj, nb * T * d);
        DR_SR_TAKE(m_fch, nb * T * d);
        DR_SR_TAKE(m_fcproj, nb * T * d);
        DR_SR_TAKE(dres, T * d);
        DR_SR_TAKE(dbuf, T * d);
        DR_SR_TAKE(dbuf2, T * d);
        DR_SR_TAKE(dqkv, T * 3 * d);
        DR_SR_TAKE(datt, (size_t)dm->L * dm->L);
    }
#undef DR_SR_TAKE
    return off;
}

/* ------------------------------------------------------------------ layers */

/* out (T, C) = (inp - mean) * rstd * w + b per row; mean, rstd (T). */
void SR(dr__sr_layernorm_forward)(REAL *out, REAL *mean, REAL *rstd, const REAL *inp,
                                 const REAL *w, const REAL *b, size_t T, size_t C) {
    for (size_t t = 0; t < T; t++) {
        const REAL *x = inp + t * C;
        REAL *o = out + t * C;
        REAL m = 0, v = 0;
        for (size_t i = 0; i < C; i++) m += x[i];
        m /= (REAL)C;
        for (size_t i = 0; i < C; i++) v += (x[i] - m) * (x[i] - m);
        v /= (REAL)C;
        REAL s = (REAL)1 / SQRT(v + (REAL)DR_SR_LN_EPS);
        for (size_t i = 0; i < C; i++) o[i] = (x[i] - m) * s * w[i] + b[i];
        mean[t] = m;
        rstd[t] = s;
    }
}

/* dinp (T, C) += ..., dw, db (C) += ... */
void SR(dr__sr_layernorm_backward)(REAL *dinp, REAL *dw, REAL *db, const REAL *dout,
                                  const REAL *inp, const REAL *w, const REAL *mean,
                                  const REAL *rstd, size_t T, size_t C) {
    for (size_t t = 0; t < T; t++) {
        const REAL *g = dout + t * C, *x = inp + t * C;
        REAL *dx = dinp + t * C;
        const REAL m = mean[t], s = rstd[t];
        REAL gm = 0, gnm = 0;
        for (size_t i = 0; i < C; i++) {
            REAL nrm = (x[i] - m) * s, gi = w[i] * g[i];
            gm += gi;
            gnm += gi * nrm;
        }
        gm /= (REAL)C;
        gnm /= (REAL)C;
        for (size_t i = 0; i < C; i++) {
            REAL nrm = (x[i] - m) * s, gi = w[i] * g[i];
            db[i] += g[i];
            dw[i] += nrm * g[i];
            dx[i] += (gi - gm - nrm * gnm) * s;
        }
    }
}

/* out (T, OC) = inp (T, C) W^T + bias; W (OC, C), bias (OC) or NULL. */
void SR(dr__sr_matmul_forward)(REAL *out, const REAL *inp, const REAL *W, const REAL *bias,
                              size_t T, size_t C, size_t OC) {
    if (!T) return;
    if (bias)
        for (size_t t = 0; t < T; t++) memcpy(out + t * OC, bias, OC * sizeof(REAL));
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)OC, (int)C, 1, inp, (int)C, W,
         (int)C, bias ? 1 : 0, out, (int)OC);
}

/* dinp (T, C) = dout W (overwritten); dW (OC, C) += dout^T inp; dbias (OC) += sum of rows. */
void SR(dr__sr_matmul_backward)(REAL *dinp, REAL *dW, REAL *dbias, const REAL *dout,
                               const REAL *inp, const REAL *W, size_t T, size_t C, size_t OC) {
    if (!T) return;
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)C, (int)OC, 1, dout, (int)OC,
         W, (int)C, 0, dinp, (int)C);
    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)OC, (int)C, (int)T, 1, dout, (int)OC,
         inp, (int)C, 1, dW, (int)C);
    if (dbias)
        for (size_t t = 0; t < T; t++)
            for (size_t o = 0; o < OC; o++) dbias[o] += dout[t * OC + o];
}

/*
 * Causal multi-head self-attention of ONE sequence of n positions.
 * qkv (n, 3C) = [Q | K | V], head h uses columns h*hs .. (h+1)*hs of each; out (n, C);
 * att (NH, n, n): softmax(Q K^T / sqrt(hs)) over keys j <= i, zero above the diagonal.
 */
void SR(dr__sr_attention_forward)(REAL *out, REAL *att, const REAL *qkv, size_t n, size_t C,
                                 size_t NH) {
    if (!n) return;
    const size_t hs = C / NH, C3 = 3 * C;
    const REAL scale = (REAL)1 / SQRT((REAL)hs);
    for (size_t h = 0; h < NH; h++) {
        const REAL *Q = qkv + h * hs, *K = qkv + C + h * hs, *V = qkv + 2 * C + h * hs;
        REAL *a = att + h * n * n;
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, (int)hs, scale, Q,
             (int)C3, K, (int)C3, 0, a, (int)n);
        for (size_t i = 0; i < n; i++) {
            REAL *r = a + i * n, mx = r[0], sum = 0;
            for (size_t j = 1; j <= i; j++) mx = r[j] > mx ? r[j] : mx;
            for (size_t j = 0; j <= i; j++) {
                r[j] = EXP(r[j] - mx);
                sum += r[j];
            }
            const REAL inv = (REAL)1 / sum;
            for (size_t j = 0; j <= i; j++) r[j] *= inv;
            for (size_t j = i + 1; j < n; j++) r[j] = 0;
        }
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)hs, (int)n, 1, a, (int)n,
             V, (int)C3, 0, out + h * hs, (int)C);
    }
}

/* dqkv (n, 3C) overwritten from dout (n, C); datt: scratch of n*n REALs. */
void SR(dr__sr_attention_backward)(REAL *dqkv, REAL *datt, const REAL *dout, const REAL *qkv,
                                  const REAL *att, size_t n, size_t C, size_t NH) {
    if (!n) return;
    const size_t hs = C / NH, C3 = 3 * C;
    const REAL scale = (REAL)1 / SQRT((REAL)hs);
    for (size_t h = 0; h < NH; h++) {
        const REAL *Q = qkv + h * hs, *K = qkv + C + h * hs, *V = qkv + 2 * C + h * hs;
        REAL *dQ = dqkv + h * hs, *dK = dqkv + C + h * hs, *dV = dqkv + 2 * C + h * hs;
        const REAL *a = att + h * n * n, *g = dout + h * hs;
        /* datt = dout V^T; dV = att^T dout */
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, (int)hs, 1, g, (int)C, V,
             (int)C3, 0, datt, (int)n);
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)hs, (int)n, 1, a, (int)n, g,
             (int)C, 0, dV, (int)C3);
        /* softmax backward in place: dpre_ij = a_ij (datt_ij - sum_k a_ik datt_ik) */
        for (size_t i = 0; i < n; i++) {
            const REAL *ar = a + i * n;
            REAL *dr = datt + i * n, dot = 0;
            for (size_t j = 0; j <= i; j++) dot += ar[j] * dr[j];
            for (size_t j = 0; j <= i; j++) dr[j] = ar[j] * (dr[j] - dot);
            for (size_t j = i + 1; j < n; j++) dr[j] = 0;
        }
        /* dQ = dpre K * scale; dK = dpre^T Q * scale */
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)hs, (int)n, scale, datt,
             (int)n, K, (int)C3, 0, dQ, (int)C3);
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)hs, (int)n, scale, datt,
             (int)n, Q, (int)C3, 0, dK, (int)C3);
    }
}

/* out = a + b (N). */
void SR(dr__sr_residual_forward)(REAL *out, const REAL *a, const REAL *b, size_t N) {
    for (size_t i = 0; i < N; i++) out[i] = a[i] + b[i];
}

/* da += dout, db += dout (N). */
void SR(dr__sr_residual_backward)(REAL *da, REAL *db, const REAL *dout, size_t N) {
    for (size_t i = 0; i < N; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

/* out = max(inp, 0) (N); in place allowed. */
void SR(dr__sr_relu_forward)(REAL *out, const REAL *inp, size_t N) {
    for (size_t i = 0; i < N; i++) out[i] = inp[i] > 0 ? inp[i] : 0;
}

/* dinp = dout * [inp > 0] (N); in place allowed (dinp == dout). */
void SR(dr__sr_relu_backward)(REAL *dinp, const REAL *dout, const REAL *inp, size_t N) {
    for (size_t i = 0; i < N; i++) dinp[i] = inp[i] > 0 ? dout[i] : 0;
}

/* out = inp * mask (N); mask holds 0 or 1/(1-p); mask NULL = identity. In place allowed. */
void SR(dr__sr_dropout_forward)(REAL *out, const REAL *inp, const REAL *mask, size_t N) {
    if (!mask) {
        if (out != inp) memmove(out, inp, N * sizeof(REAL));
        return;
    }
    for (size_t i = 0; i < N; i++) out[i] = inp[i] * mask[i];
}

void SR(dr__sr_dropout_backward)(REAL *dinp, const REAL *dout, const REAL *mask, size_t N) {
    SR(dr__sr_dropout_forward)(dinp, dout, mask, N);
}

/* Fills a dropout mask (N) with 0 (probability p) or 1/(1-p), 16 random bits per entry. */
void SR(dr__sr_dropout_mask)(REAL *mask, size_t N, double p, dr_rng *rng) {
    const uint32_t thr = (uint32_t)(p * 65536.0 + 0.5);
    const REAL keep = (REAL)(1.0 / (1.0 - p));
    uint64_t bits = 0;
    for (size_t i = 0; i < N; i++) {
        if ((i & 3) == 0) bits = dr__rng_u64(rng);
        mask[i] = (uint32_t)(bits & 0xffff) < thr ? 0 : keep;
        bits >>= 16;
    }
}

/* emb[t] = tok[item[t]] * sqrt(d) + pos[p(t)], p(t) = L - n_s + k for position k of sequence s. */
void SR(dr__sr_embed_forward)(REAL *emb, const REAL *tok, const REAL *pos, const dr_sr_batch *bt,
                             size_t d, size_t L) {
    const REAL sc = SQRT((REAL)d);
    for (size_t s = 0; s < bt->n_seq; s++) {
        const size_t o = bt->off[s], n = bt->off[s + 1] - o;
        for (size_t k = 0; k < n; k++) {
            const REAL *e = tok + (size_t)bt->inp[o + k] * d, *p = pos + (L - n + k) * d;
            REAL *x = emb + (o + k) * d;
            for (size_t i = 0; i < d; i++) x[i] = e[i] * sc + p[i];
        }
    }
}

void SR(dr__sr_embed_backward)(REAL *dtok, REAL *dpos, const REAL *demb, const dr_sr_batch *bt,
                              size_t d, size_t L) {
    const REAL sc = SQRT((REAL)d);
    for (size_t s = 0; s < bt->n_seq; s++) {
        const size_t o = bt->off[s], n = bt->off[s + 1] - o;
        for (size_t k = 0; k < n; k++) {
            const REAL *g = demb + (o + k) * d;
            REAL *e = dtok + (size_t)bt->inp[o + k] * d, *p = dpos + (L - n + k) * d;
            for (size_t i = 0; i < d; i++) {
                e[i] += g[i] * sc;
                p[i] += g[i];
            }
        }
    }
}

static inline REAL SR(dr_sr_softplus)(REAL x) { /* log(1 + e^x), stable */
    return x > 0 ? x + LOG((REAL)1 + EXP(-x)) : LOG((REAL)1 + EXP(x));
}

/*
 * BCE loss with one negative per position, fused with its backward: returns the SUM over
 * positions with tgt != 0 of softplus(-h.E_tgt) + softplus(h.E_neg). With dh != NULL also
 * dh (T, d) = scale * dloss/dh (overwritten) and dtok += scale * dloss/dE.
 */
double SR(dr__sr_bce_loss)(REAL *dh, REAL *dtok, const REAL *h, const REAL *tok,
                          const uint32_t *tgt, const uint32_t *neg, size_t T, size_t d,
                          REAL scale) {
    double loss = 0;
    for (size_t t = 0; t < T; t++) {
        const REAL *x = h + t * d;
        if (dh) memset(dh + t * d, 0, d * sizeof(REAL));
        if (!tgt[t]) continue;
        const REAL *ep = tok + (size_t)tgt[t] * d, *en = tok + (size_t)neg[t] * d;
        REAL lp = 0, ln = 0;
        for (size_t i = 0; i < d; i++) {
            lp += x[i] * ep[i];
            ln += x[i] * en[i];
        }
        loss += (double)(SR(dr_sr_softplus)(-lp) + SR(dr_sr_softplus)(ln));
        if (!dh) continue;
        const REAL gp = scale * ((REAL)1 / ((REAL)1 + EXP(-lp)) - 1);
        const REAL gn = scale * ((REAL)1 / ((REAL)1 + EXP(-ln)));
        REAL *g = dh + t * d, *dp = dtok + (size_t)tgt[t] * d, *dn = dtok + (size_t)neg[t] * d;
        for (size_t i = 0; i < d; i++) {
            g[i] = gp * ep[i] + gn * en[i];
            dp[i] += gp * x[i];
            dn[i] += gn * x[i];
        }
    }
    return loss;
}

/*
 * Full softmax cross-entropy over items 1..n_items at every position with tgt != 0, fused with
 * its backward, DR_SR_CHUNK positions at a time: logits (ch, n_items) = h_chunk E[1..]^T.
 * Returns the SUM of -log p(tgt); with dh != NULL also dh (overwritten) and dtok (+=),
 * both scaled by scale. logits: scratch (DR_SR_CHUNK, n_items).
 */
double SR(dr__sr_ce_loss)(REAL *dh, REAL *dtok, REAL *logits, const REAL *h, const REAL *tok,
                         const uint32_t *tgt, size_t T, size_t d, size_t n_items, REAL scale) {
    double loss = 0;
    const REAL *E = tok + d; /* (n_items, d) real items */
    for (size_t t0 = 0; t0 < T; t0 += DR_SR_CHUNK) {
        const size_t ch = T - t0 < DR_SR_CHUNK ? T - t0 : DR_SR_CHUNK;
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)ch, (int)n_items, (int)d, 1,
             h + t0 * d, (int)d, E, (int)d, 0, logits, (int)n_items);
        for (size_t r = 0; r < ch; r++) {
            REAL *l = logits + r * n_items;
            const uint32_t y = tgt[t0 + r];
            if (!y) {
                memset(l, 0, n_items * sizeof(REAL));
                continue;
            }
            const REAL mx = SR(sr_rowmax)(l, n_items), ly = l[y - 1];
            const REAL sum = SR(sr_expsum)(l, n_items, mx);
            loss += (double)(LOG(sum) + mx - ly);
            if (!dh) continue;
            SR(sr_scale)(l, n_items, scale / sum);
            l[y - 1] -= scale;
        }
        if (!dh) continue;
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)ch, (int)d, (int)n_items, 1, logits,
             (int)n_items, E, (int)d, 0, dh + t0 * d, (int)d);
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n_items, (int)d, (int)ch, 1, logits,
             (int)n_items, h + t0 * d, (int)d, 1, dtok + d, (int)d);
    }
    return loss;
}

/*
 * Sampled softmax (Jean et al. 2015, "On using very large target vocabulary") over K negatives
 * drawn with replacement from Q and shared by every position (sneg, rows 1..n_items, repeats
 * allowed), plus the position's target. logQ correction: negative k's logit is
 * h.E_k - log(K Q(k)) (logq (n_items+1) = log Q per row; NULL = no correction), the target's
 * h.E_y (it is in the set with certainty), so exp(h.E_y) + sum_k exp(h.E_k) / (K Q(k)) is an
 * unbiased estimate of the full softmax's normaliser and the loss approaches full CE as K
 * grows. A negative equal to the position's target (an accidental hit) is left out of that
 * position's softmax. Returns the SUM over positions with
 * tgt != 0 of -log p(tgt); with dh != NULL also dh (overwritten) and dtok (+=), both scaled by
 * scale. Logits (ch, K) = h_chunk En^T by one GEMM per DR_SR_CHUNK positions against the K
 * gathered rows En; their gradient goes back by two GEMMs and one scatter of K rows.
 * scratch: dr__sr_sampled_scratch(K, d) REALs.
 */
size_t SR(dr__sr_sampled_scratch)(size_t K, size_t d) {
    return (size_t)DR_SR_CHUNK * K + 2 * K * d + K;
}

double SR(dr__sr_sampled_loss)(REAL *dh, REAL *dtok, REAL *scratch, const REAL *h,
                              const REAL *tok, const uint32_t *tgt, size_t T, size_t d,
                              const uint32_t *sneg, size_t K, const double *logq, REAL scale) {
    double loss = 0;
    if (!K || !T) {
        if (dh) memset(dh, 0, T * d * sizeof(REAL));
        return 0;
    }
    REAL *logits = scratch, *En = logits + (size_t)DR_SR_CHUNK * K, *dEn = En + K * d;
    REAL *cq = dEn + K * d, gy[DR_SR_CHUNK];
    const double logK = log((double)K);
    for (size_t k = 0; k < K; k++) {
        memcpy(En + k * d, tok + (size_t)sneg[k] * d, d * sizeof(REAL));
        cq[k] = logq ? (REAL)(logq[sneg[k]] + logK) : 0;
    }
    if (dh) memset(dEn, 0, K * d * sizeof(REAL));
    for (size_t t0 = 0; t0 < T; t0 += DR_SR_CHUNK) {
        const size_t ch = T - t0 < DR_SR_CHUNK ? T - t0 : DR_SR_CHUNK;
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)ch, (int)K, (int)d, 1, h + t0 * d,
             (int)d, En, (int)d, 0, logits, (int)K);
        for (size_t r = 0; r < ch; r++) {
            REAL *l = logits + r * K;
            const uint32_t y = tgt[t0 + r];
            gy[r] = 0;
            if (!y) {
                memset(l, 0, K * sizeof(REAL));
                continue;
            }
            const REAL *x = h + (t0 + r) * d, *ey = tok + (size_t)y * d;
            REAL ly = 0;
            for (size_t i = 0; i < d; i++) ly += x[i] * ey[i];
            size_t hits = 0;
            for (size_t k = 0; k < K; k++) {
                const int hit = sneg[k] == y;
                l[k] = hit ? (REAL)-1e30 : l[k] - cq[k];
                hits += (size_t)hit;
            }
            REAL mx = SR(sr_rowmax)(l, K);
            mx = ly > mx ? ly : mx;
            const REAL ey_ = EXP(ly - mx);
            REAL sum = SR(sr_expsum)(l, K, mx);
            for (size_t k = 0; hits && k < K; k++)
                if (sneg[k] == y) { /* exactly out of the softmax */
                    sum -= l[k];
                    l[k] = 0;
                    hits--;
                }
            sum += ey_;
            loss += (double)(LOG(sum) + mx - ly);
            if (!dh) continue;
            SR(sr_scale)(l, K, scale / sum);
            gy[r] = scale * (ey_ / sum - 1);
        }
        if (!dh) continue;
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)ch, (int)d, (int)K, 1, logits,
             (int)K, En, (int)d, 0, dh + t0 * d, (int)d);
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)d, (int)ch, 1, logits, (int)K,
             h + t0 * d, (int)d, 1, dEn, (int)d);
        for (size_t r = 0; r < ch; r++) {
            const uint32_t y = tgt[t0 + r];
            if (!y) continue;
            const REAL *x = h + (t0 + r) * d, *ey = tok + (size_t)y * d;
            REAL *g = dh + (t0 + r) * d, *de = dtok + (size_t)y * d;
            for (size_t i = 0; i < d; i++) {
                g[i] += gy[r] * ey[i];
                de[i] += gy[r] * x[i];
            }
        }
    }
    if (dh)
        for (size_t k = 0; k < K; k++) {
            REAL *de = dtok + (size_t)sneg[k] * d;
            const REAL *g = dEn + k * d;
            for (size_t i = 0; i < d; i++) de[i] += g[i];
        }
    return loss;
}

/* ------------------------------------------------------------------ the whole network */

/* Fills the dropout masks of a training batch: one RNG stream per sequence (bt->seed[s]),
 * sites in a fixed order, so a sequence's masks do not depend on its shard or neighbours. */
void SR(dr__sr_masks)(SR(dr_sr_acts) *A, const dr_sasrec_dims *dm, const dr_sr_batch *bt,
                     double p) {
    const size_t d = dm->d, T = A->T;
    for (size_t s = 0; s < bt->n_seq; s++) {
        const size_t o = bt->off[s], n = bt->off[s + 1] - o;
        dr_rng rng;
        dr__rng_seed(&rng, bt->seed[s], 0x5a5e);
        SR(dr__sr_dropout_mask)(A->m_emb + o * d, n * d, p, &rng);
        for (size_t b = 0; b < dm->blocks; b++) {
            SR(dr__sr_dropout_mask)(A->m_attproj + (b * T + o) * d, n * d, p, &rng);
            SR(dr__sr_dropout_mask)(A->m_fch + (b * T + o) * d, n * d, p, &rng);
            SR(dr__sr_dropout_mask)(A->m_fcproj + (b * T + o) * d, n * d, p, &rng);
        }
    }
}

/* Forward pass of a packed batch up to the final LayerNorm (A->lnf). Masks are applied when
 * A->m_emb != NULL (training: fill them with dr__sr_masks first). */
void SR(dr__sr_forward)(const dr_sasrec_dims *dm, const SR(dr_sr_params) *P, SR(dr_sr_acts) *A,
                       const dr_sr_batch *bt) {
    const size_t d = dm->d, T = bt->off[bt->n_seq], TA = A->T, NH = dm->heads;
    const int train = A->m_emb != NULL;
    SR(dr__sr_embed_forward)(A->emb, P->tok, P->pos, bt, d, dm->L);
    if (train) SR(dr__sr_dropout_forward)(A->emb, A->emb, A->m_emb, T * d);
    const REAL *x = A->emb;
    for (size_t b = 0; b < dm->blocks; b++) {
        REAL *ln1 = A->ln1 + b * TA * d, *qkv = A->qkv + b * TA * 3 * d;
        REAL *att = A->att + b * A->att_cap, *atty = A->atty + b * TA * d;
        REAL *attproj = A->attproj + b * TA * d, *res2 = A->res2 + b * TA * d;
        REAL *ln2 = A->ln2 + b * TA * d, *fch = A->fch + b * TA * d;
        REAL *fch_act = A->fch_act + b * TA * d, *fcproj = A->fcproj + b * TA * d;
        REAL *res3 = A->res3 + b * TA * d;
        SR(dr__sr_layernorm_forward)(ln1, A->ln1_mean + b * TA, A->ln1_rstd + b * TA, x,
                                    P->ln1w + b * d, P->ln1b + b * d, T, d);
        SR(dr__sr_matmul_forward)(qkv, ln1, P->qkvw + b * 3 * d * d, P->qkvb + b * 3 * d, T, d,
                                 3 * d);
        size_t ao = 0;
        for (size_t s = 0; s < bt->n_seq; s++) {
            const size_t o = bt->off[s], n = bt->off[s + 1] - o;
            SR(dr__sr_attention_forward)(atty + o * d, att + ao, qkv + o * 3 * d, n, d, NH);
            ao += NH * n * n;
        }
        SR(dr__sr_matmul_forward)(attproj, atty, P->attprojw + b * d * d, P->attprojb + b * d, T,
                                 d, d);
        if (train) SR(dr__sr_dropout_forward)(attproj, attproj, A->m_attproj + b * TA * d, T * d);
        SR(dr__sr_residual_forward)(res2, x, attproj, T * d);
        SR(dr__sr_layernorm_forward)(ln2, A->ln2_mean + b * TA, A->ln2_rstd + b * TA, res2,
                                    P->ln2w + b * d, P->ln2b + b * d, T, d);
        SR(dr__sr_matmul_forward)(fch, ln2, P->fcw + b * d * d, P->fcb + b * d, T, d, d);
        SR(dr__sr_relu_forward)(fch_act, fch, T * d);
        if (train) SR(dr__sr_dropout_forward)(fch_act, fch_act, A->m_fch + b * TA * d, T * d);
        SR(dr__sr_matmul_forward)(fcproj, fch_act, P->fcprojw + b * d * d, P->fcprojb + b * d, T,
                                 d, d);
        if (train) SR(dr__sr_dropout_forward)(fcproj, fcproj, A->m_fcproj + b * TA * d, T * d);
        SR(dr__sr_residual_forward)(res3, res2, fcproj, T * d);
        x = res3;
    }
    SR(dr__sr_layernorm_forward)(A->lnf, A->lnf_mean, A->lnf_rstd, x, P->lnfw, P->lnfb, T, d);
}

/*
 * Loss of a packed training batch (after dr__sr_forward), and with G != NULL its backward:
 * G += scale * dloss/dparams. Returns the unscaled loss sum over positions with a target.
 */
double SR(dr__sr_loss_backward)(const dr_sasrec_dims *dm, const SR(dr_sr_params) *P,
                               SR(dr_sr_params) *G, SR(dr_sr_acts) *A, const dr_sr_batch *bt,
                               int loss_kind, REAL scale) {
    const size_t d = dm->d, T = bt->off[bt->n_seq], TA = A->T, NH = dm->heads, nb = dm->blocks;
    double loss;
    REAL *dh = G ? A->dbuf : NULL;
    if (loss_kind == DR_SASREC_BCE)
        loss = SR(dr__sr_bce_loss)(dh, G ? G->tok : NULL, A->lnf, P->tok, bt->tgt, bt->neg, T, d,
                                  scale);
    else if (loss_kind == DR_SASREC_SAMPLED)
        loss = SR(dr__sr_sampled_loss)(dh, G ? G->tok : NULL, A->logits, A->lnf, P->tok, bt->tgt,
                                      T, d, bt->sneg, bt->n_sneg, bt->logq, scale);
    else
        loss = SR(dr__sr_ce_loss)(dh, G ? G->tok : NULL, A->logits, A->lnf, P->tok, bt->tgt, T, d,
                                 dm->n_items, scale);
    if (!G) return loss;

    const REAL *xl = nb ? A->res3 + (nb - 1) * TA * d : A->emb;
    memset(A->dres, 0, T * d * sizeof(REAL));
    SR(dr__sr_layernorm_backward)(A->dres, G->lnfw, G->lnfb, A->dbuf, xl, P->lnfw, A->lnf_mean,
                                 A->lnf_rstd, T, d);
    for (size_t bb = nb; bb-- > 0;) {
        const size_t b = bb;
        const REAL *x = b ? A->res3 + (b - 1) * TA * d : A->emb;
        const REAL *ln1 = A->ln1 + b * TA * d, *qkv = A->qkv + b * TA * 3 * d;
        const REAL *att = A->att + b * A->att_cap, *atty = A->atty + b * TA * d;
        const REAL *res2 = A->res2 + b * TA * d, *ln2 = A->ln2 + b * TA * d;
        const REAL *fch = A->fch + b * TA * d, *fch_act = A->fch_act + b * TA * d;
        /* res3 = res2 + fcproj: dres is the gradient of both */
        SR(dr__sr_dropout_backward)(A->dbuf, A->dres, A->m_fcproj + b * TA * d, T * d);
        SR(dr__sr_matmul_backward)(A->dbuf2, G->fcprojw + b * d * d, G->fcprojb + b * d, A->dbuf,
                                  fch_act, P->fcprojw + b * d * d, T, d, d);
        SR(dr__sr_dropout_backward)(A->dbuf2, A->dbuf2, A->m_fch + b * TA * d, T * d);
        SR(dr__sr_relu_backward)(A->dbuf2, A->dbuf2, fch, T * d);
        SR(dr__sr_matmul_backward)(A->dbuf, G->fcw + b * d * d, G->fcb + b * d, A->dbuf2, ln2,
                                  P->fcw + b * d * d, T, d, d);
        SR(dr__sr_layernorm_backward)(A->dres, G->ln2w + b * d, G->ln2b + b * d, A->dbuf, res2,
                                     P->ln2w + b * d, A->ln2_mean + b * TA, A->ln2_rstd + b * TA,
                                     T, d);
        /* res2 = x + attproj */
        SR(dr__sr_dropout_backward)(A->dbuf, A->dres, A->m_attproj + b * TA * d, T * d);
        SR(dr__sr_matmul_backward)(A->dbuf2, G->attprojw + b * d * d, G->attprojb + b * d, A->dbuf,
                                  atty, P->attprojw + b * d * d, T, d, d);
        size_t ao = 0;
        for (size_t s = 0; s < bt->n_seq; s++) {
            const size_t o = bt->off[s], n = bt->off[s + 1] - o;
            SR(dr__sr_attention_backward)(A->dqkv + o * 3 * d, A->datt, A->dbuf2 + o * d,
                                         qkv + o * 3 * d, att + ao, n, d, NH);
            ao += NH * n * n;
        }
        SR(dr__sr_matmul_backward)(A->dbuf, G->qkvw + b * 3 * d * d, G->qkvb + b * 3 * d, A->dqkv,
                                  ln1, P->qkvw + b * 3 * d * d, T, d, 3 * d);
        SR(dr__sr_layernorm_backward)(A->dres, G->ln1w + b * d, G->ln1b + b * d, A->dbuf, x,
                                     P->ln1w + b * d, A->ln1_mean + b * TA, A->ln1_rstd + b * TA,
                                     T, d);
    }
    SR(dr__sr_dropout_backward)(A->dres, A->dres, A->m_emb, T * d);
    SR(dr__sr_embed_backward)(G->tok, G->pos, A->dres, bt, d, dm->L);
    return loss;
}
