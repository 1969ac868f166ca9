/*
 * llm_align.c - alignment of a base's latents with an LLM's input embeddings, learned without
 * backpropagating through the LLM; the .align file (docs/FORMATS.md).
 *
 * DESIGN: each titled item gets a target t_i in the LLM's input space: the mean of the GGUF's
 * token-embedding rows of its title's tokens (read with the gguf API straight from the file,
 * rows dequantised by ggml's type traits, so any tensor type works and a quantised table stays
 * quantised in memory). A map f (linear, or a 2-layer tanh MLP) from standardised latents is
 * fitted by Adam on minibatches with the loss
 *     |f(z_i) - t_i|^2 / n_embd  +  w_con * InfoNCE(cos(f(z_i) - c, t_j - c) / tau, j in batch),
 * c the mean target (every title's shared part, the year's digits and brackets, would otherwise
 * make all cosines alike),
 * the regression putting soft tokens at the scale of real token embeddings, the contrastive
 * term keeping each item nearer its own target than the other items'. Users are mapped through
 * the same f from h (score = h . z puts them in the same space). A share of the titled items is
 * held out so the reported Recall@10 also says what f does on items it never saw.
 * Rejected: training through the LLM (a backward pass through llama.cpp's graph, which its C
 * API does not offer and which would tie the map to one runtime), and targets from the LLM's
 * last hidden state (needs a forward pass per item and lives in the output space, not the
 * input space the soft tokens enter).
 * The map records a digest of the whole GGUF file and refuses another model.
 */
#include "llm_align.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <unistd.h>

#include "explain_llm.h"
#include "ggml.h"
#include "gguf.h"
#include "llama.h"
#include "model.h"
#include "rng.h"

#define ALIGN_MAGIC "DRALIGN1"
#define ALIGN_VERSION 1u

struct dr_align {
    uint32_t d, E, hidden;
    int lambda_chosen;
    float lambda;
    uint64_t llm_hash, llm_size;
    dr_align_report rep;
    size_t n_params;
    float *mu;                 /* (d) input mean */
    float *sd;                 /* (d) input standard deviation (>= 1e-6) */
    float *theta;              /* (n_params): linear W (E, d) | b (E);
                                  MLP W1 (H, d) | b1 (H) | W2 (E, H) | b2 (E) */
};

/* ---------------------------------------------------------------- GGUF pieces */

dr_status dr__gguf_hash(const char *path, uint64_t *hash, uint64_t *size, dr_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return dr__fail(err, DR_IO, "%s: cannot open the GGUF model", path);
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = dr__malloc(CHUNK);
    if (!buf) {
        fclose(f);
        return dr__fail(err, DR_NOMEM, "%s: out of memory for hashing", path);
    }
    uint64_t h[2] = {0, 0}, total = 0;
    size_t n;
    while ((n = fread(buf, 1, CHUNK, f)) > 0) {
        h[1] = dr__hash_bytes(buf, n);
        h[0] = dr__hash_bytes(h, sizeof h);
        total += n;
    }
    int bad = ferror(f);
    fclose(f);
    dr__free(buf);
    if (bad) return dr__fail(err, DR_IO, "%s: read error while hashing", path);
    *hash = h[0] ^ total;
    *size = total;
    return DR_OK;
}

void dr__tokemb_free(dr_tokemb *te) {
    if (!te) return;
    dr__free(te->raw);
    memset(te, 0, sizeof *te);
}

dr_status dr__tokemb_read(const char *gguf, dr_tokemb *te, dr_error *err) {
    memset(te, 0, sizeof *te);
    struct ggml_context *meta = NULL;
    struct gguf_init_params gp = {true, &meta};
    struct gguf_context *g = gguf_init_from_file(gguf, gp);
    FILE *f = NULL;
    dr_status st = DR_OK;
    if (!g) return dr__fail(err, DR_FORMAT, "%s: not a readable GGUF file", gguf);
    int64_t ti = gguf_find_tensor(g, "token_embd.weight");
    struct ggml_tensor *t = ti >= 0 && meta ? ggml_get_tensor(meta, "token_embd.weight") : NULL;
    if (!t) {
        st = dr__fail(err, DR_FORMAT, "%s: no token_embd.weight tensor", gguf);
        goto done;
    }
    const struct ggml_type_traits *tr = ggml_get_type_traits(t->type);
    if (t->type != GGML_TYPE_F32 && !tr->to_float) {
        st = dr__fail(err, DR_UNSUPPORTED, "%s: token_embd.weight has type %s, which cannot be "
                      "dequantised", gguf, ggml_type_name(t->type));
        goto done;
    }
    if (t->ne[0] <= 0 || t->ne[0] > (int64_t)DR_ALIGN_MAX_DIM || t->ne[1] <= 0 ||
        t->ne[1] > INT32_MAX || t->ne[2] != 1 || t->ne[3] != 1) {
        st = dr__fail(err, DR_FORMAT, "%s: token_embd.weight has shape %lld x %lld", gguf,
                      (long long)t->ne[0], (long long)t->ne[1]);
        goto done;
    }
    te->row_bytes = ggml_row_size(t->type, t->ne[0]);
    size_t bytes = ggml_nbytes(t);
    if (bytes > DR_LLM_EMBD_MAX_BYTES || bytes != te->row_bytes * (size_t)t->ne[1]) {
        st = dr__fail(err, DR_LIMIT, "%s: token_embd.weight is %zu bytes (limit %llu)", gguf,
                      bytes, (unsigned long long)DR_LLM_EMBD_MAX_BYTES);
        goto done;
    }
    te->raw = dr__malloc(bytes ? bytes : 1);
    if (!te->raw) {
        st = dr__fail(err, DR_NOMEM, "%s: out of memory for the token embeddings (%zu bytes)",
                      gguf, bytes);
        goto done;
    }
    size_t off = gguf_get_data_offset(g) + gguf_get_tensor_offset(g, ti);
    f = fopen(gguf, "rb");
    if (!f || fseeko(f, (off_t)off, SEEK_SET) || fread(te->raw, 1, bytes, f) != bytes) {
        st = dr__fail(err, DR_FORMAT, "%s: cannot read token_embd.weight (%zu bytes at %zu)",
                      gguf, bytes, off);
        goto done;
    }
    te->type = (int)t->type;
    te->n_embd = (uint32_t)t->ne[0];
    te->n_vocab = (uint32_t)t->ne[1];
done:
    if (f) fclose(f);
    if (st != DR_OK) dr__tokemb_free(te);
    gguf_free(g);
    if (meta) ggml_free(meta);
    return st;
}

void dr__tokemb_row(const dr_tokemb *te, int32_t tok, float *out) {
    const uint8_t *row = te->raw + (size_t)tok * te->row_bytes;
    if (te->type == GGML_TYPE_F32) memcpy(out, row, te->n_embd * sizeof *out);
    else ggml_get_type_traits((enum ggml_type)te->type)->to_float(row, out, te->n_embd);
}

int32_t dr__title_tokens(const struct llama_vocab *v, const char *title, int32_t *out, int32_t cap) {
    size_t n = strlen(title);
    if (!n || cap <= 0) return 0;
    if (n > 4096) n = 4096;
    int32_t k = llama_tokenize(v, title, (int32_t)n, out, cap, false, false);
    if (k >= 0) return k;
    /* longer than cap: tokenise into a scratch big enough, keep the first cap */
    int32_t need = -k;
    int32_t *tmp = dr__malloc((size_t)need * sizeof *tmp);
    if (!tmp) return 0;
    k = llama_tokenize(v, title, (int32_t)n, tmp, need, false, false);
    if (k > 0) memcpy(out, tmp, (size_t)cap * sizeof *out);
    dr__free(tmp);
    return k > 0 ? cap : 0;
}

/* ---------------------------------------------------------------- the map */

static size_t n_params_of(uint32_t d, uint32_t E, uint32_t H) {
    return H ? (size_t)H * d + H + (size_t)E * H + E : (size_t)E * d + E;
}

static dr_align *align_new(uint32_t d, uint32_t E, uint32_t H) {
    dr_align *a = dr__calloc(1, sizeof *a);
    if (!a) return NULL;
    a->d = d, a->E = E, a->hidden = H;
    a->n_params = n_params_of(d, E, H);
    a->mu = dr__calloc(d, sizeof *a->mu);
    a->sd = dr__calloc(d, sizeof *a->sd);
    a->theta = dr__calloc(a->n_params, sizeof *a->theta);
    if (!a->mu || !a->sd || !a->theta) {
        dr_align_free(a);
        return NULL;
    }
    return a;
}

void dr_align_free(dr_align *a) {
    if (!a) return;
    dr__free(a->mu);
    dr__free(a->sd);
    dr__free(a->theta);
    dr__free(a);
}

/* Standardised inputs X (B, d) of rows idx[0..B) of z. */
static void standardise(const dr_align *a, const float *z, size_t zs, const uint32_t *idx,
                        uint32_t B, float *X) {
    for (uint32_t r = 0; r < B; r++)
        for (uint32_t k = 0; k < a->d; k++)
            X[(size_t)r * a->d + k] = (z[(size_t)idx[r] * zs + k] - a->mu[k]) / a->sd[k];
}

/* Y (B, E) = f(X); A (B, H) receives the hidden layer (MLP). */
static void forward(const dr_align *a, const float *theta, const float *X, uint32_t B, float *A,
                    float *Y) {
    uint32_t d = a->d, E = a->E, H = a->hidden;
    if (!H) {
        const float *W = theta, *b = theta + (size_t)E * d;
        for (uint32_t r = 0; r < B; r++) memcpy(Y + (size_t)r * E, b, E * sizeof *Y);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)E, (int)d, 1.0f, X,
                    (int)d, W, (int)d, 1.0f, Y, (int)E);
        return;
    }
    const float *W1 = theta, *b1 = W1 + (size_t)H * d, *W2 = b1 + H, *b2 = W2 + (size_t)E * H;
    for (uint32_t r = 0; r < B; r++) memcpy(A + (size_t)r * H, b1, H * sizeof *A);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)H, (int)d, 1.0f, X, (int)d,
                W1, (int)d, 1.0f, A, (int)H);
    for (size_t q = 0; q < (size_t)B * H; q++) A[q] = tanhf(A[q]);
    for (uint32_t r = 0; r < B; r++) memcpy(Y + (size_t)r * E, b2, E * sizeof *Y);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)E, (int)H, 1.0f, A, (int)H,
                W2, (int)H, 1.0f, Y, (int)E);
}

/* grad += d loss / d theta given dY (B, E); dA (B, H) scratch. */
static void backward(const dr_align *a, const float *theta, const float *X, const float *A,
                     const float *dY, uint32_t B, float *dA, float *grad) {
    uint32_t d = a->d, E = a->E, H = a->hidden;
    if (!H) {
        float *gW = grad, *gb = grad + (size_t)E * d;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)E, (int)d, (int)B, 1.0f, dY,
                    (int)E, X, (int)d, 1.0f, gW, (int)d);
        for (uint32_t r = 0; r < B; r++)
            for (uint32_t e = 0; e < E; e++) gb[e] += dY[(size_t)r * E + e];
        return;
    }
    const float *W2 = theta + (size_t)H * d + H;
    float *gW1 = grad, *gb1 = gW1 + (size_t)H * d, *gW2 = gb1 + H, *gb2 = gW2 + (size_t)E * H;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)E, (int)H, (int)B, 1.0f, dY, (int)E,
                A, (int)H, 1.0f, gW2, (int)H);
    for (uint32_t r = 0; r < B; r++)
        for (uint32_t e = 0; e < E; e++) gb2[e] += dY[(size_t)r * E + e];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)H, (int)E, 1.0f, dY,
                (int)E, W2, (int)H, 0.0f, dA, (int)H);
    for (size_t q = 0; q < (size_t)B * H; q++) dA[q] *= 1.0f - A[q] * A[q];
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)H, (int)d, (int)B, 1.0f, dA, (int)H,
                X, (int)d, 1.0f, gW1, (int)d);
    for (uint32_t r = 0; r < B; r++)
        for (uint32_t h = 0; h < H; h++) gb1[h] += dA[(size_t)r * H + h];
}

static void normalise_rows(const float *x, uint32_t B, uint32_t E, float *out, float *norm) {
    for (uint32_t r = 0; r < B; r++) {
        double s = 0;
        for (uint32_t e = 0; e < E; e++) s += (double)x[(size_t)r * E + e] * x[(size_t)r * E + e];
        float n = (float)sqrt(s);
        if (norm) norm[r] = n;
        float inv = n > 1e-12f ? 1.0f / n : 0.0f;
        for (uint32_t e = 0; e < E; e++) out[(size_t)r * E + e] = x[(size_t)r * E + e] * inv;
    }
}

/* c (E) = the mean target of the items with sel[i] (NULL: has[i]); -1 on out of memory. */
static int mean_target(const float *t, const uint8_t *has, const uint8_t *sel, uint32_t n,
                        uint32_t E, float *c) {
    double *acc = dr__calloc(E, sizeof *acc);
    size_t m = 0;
    memset(c, 0, E * sizeof *c);
    if (!acc) return -1;
    for (uint32_t i = 0; i < n; i++) {
        if (!has[i] || (sel && !sel[i])) continue;
        for (uint32_t e = 0; e < E; e++) acc[e] += t[(size_t)i * E + e];
        m++;
    }
    for (uint32_t e = 0; e < E && m; e++) c[e] = (float)(acc[e] / (double)m);
    dr__free(acc);
    return 0;
}

/* Batch scratch. */
typedef struct fit_ws {
    float *X, *A, *Y, *Yn, *Tn, *T, *S, *dY, *dA, *norm;
} fit_ws;

/* Loss of one batch (rows idx[0..B)); with grad, also dY and grad += its gradient.
 * *mse receives the regression part. */
static double batch_loss(const dr_align *a, const float *theta, const float *z, size_t zs,
                         const float *t, const float *center, const uint32_t *idx, uint32_t B,
                         float tau, float w_con, fit_ws *w, float *grad, double *mse) {
    uint32_t E = a->E;
    standardise(a, z, zs, idx, B, w->X);
    forward(a, theta, w->X, B, w->A, w->Y);
    for (uint32_t r = 0; r < B; r++) memcpy(w->T + (size_t)r * E, t + (size_t)idx[r] * E, E * sizeof *w->T);
    double reg = 0;
    for (size_t q = 0; q < (size_t)B * E; q++) {
        double df = (double)w->Y[q] - w->T[q];
        reg += df * df;
        if (grad) w->dY[q] = (float)(2.0 * df / ((double)E * B));
    }
    reg /= (double)E * B;
    *mse = reg;
    double con = 0;
    if (w_con > 0 && B > 1) {
        /* cosines of the centred vectors: the mean target (what every title shares: the year's
         * digits, the brackets) says nothing about which item it is */
        for (size_t q = 0; q < (size_t)B * E; q++) w->Yn[q] = w->Y[q] - center[q % E];
        for (size_t q = 0; q < (size_t)B * E; q++) w->Tn[q] = w->T[q] - center[q % E];
        normalise_rows(w->Yn, B, E, w->Yn, w->norm);
        normalise_rows(w->Tn, B, E, w->Tn, NULL);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)B, (int)E, 1.0f / tau,
                    w->Yn, (int)E, w->Tn, (int)E, 0.0f, w->S, (int)B);
        for (uint32_t r = 0; r < B; r++) {
            float *s = w->S + (size_t)r * B;
            float mx = s[0];
            for (uint32_t j = 1; j < B; j++) mx = s[j] > mx ? s[j] : mx;
            double sum = 0;
            for (uint32_t j = 0; j < B; j++) sum += exp((double)s[j] - mx);
            con += log(sum) + mx - s[r];
            if (grad) /* dS = w_con (softmax - onehot) / (B tau) */
                for (uint32_t j = 0; j < B; j++)
                    s[j] = (float)(w_con * (exp((double)s[j] - mx) / sum - (j == r)) / ((double)B * tau));
        }
        con /= B;
        if (grad) {
            /* dYn = dS Tn; dY += (dYn - (dYn . yn) yn) / |y| */
            float *dYn = w->T; /* the raw targets are not needed any more */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)E, (int)B, 1.0f,
                        w->S, (int)B, w->Tn, (int)E, 0.0f, dYn, (int)E);
            for (uint32_t r = 0; r < B; r++) {
                float *g = dYn + (size_t)r * E, *yn = w->Yn + (size_t)r * E;
                double dot = 0;
                for (uint32_t e = 0; e < E; e++) dot += (double)g[e] * yn[e];
                float inv = w->norm[r] > 1e-12f ? 1.0f / w->norm[r] : 0.0f;
                for (uint32_t e = 0; e < E; e++)
                    w->dY[(size_t)r * E + e] += (float)((g[e] - dot * yn[e]) * inv);
            }
        }
    }
    if (grad) backward(a, theta, w->X, w->A, w->dY, B, w->dA, grad);
    return reg + w_con * con;
}

static void ws_free(fit_ws *w) {
    float **p[] = {&w->X, &w->A, &w->Y, &w->Yn, &w->Tn, &w->T, &w->S, &w->dY, &w->dA, &w->norm};
    for (size_t k = 0; k < DR_ARRAY_LEN(p); k++) dr__free(*p[k]), *p[k] = NULL;
}

static int ws_alloc(fit_ws *w, uint32_t B, uint32_t d, uint32_t E, uint32_t H) {
    memset(w, 0, sizeof *w);
    size_t b = B;
    w->X = dr__calloc(b * d, sizeof(float));
    w->A = dr__calloc(b * (H ? H : 1), sizeof(float));
    w->dA = dr__calloc(b * (H ? H : 1), sizeof(float));
    w->Y = dr__calloc(b * E, sizeof(float));
    w->Yn = dr__calloc(b * E, sizeof(float));
    w->Tn = dr__calloc(b * E, sizeof(float));
    w->T = dr__calloc(b * E, sizeof(float));
    w->dY = dr__calloc(b * E, sizeof(float));
    w->S = dr__calloc(b * b, sizeof(float));
    w->norm = dr__calloc(b, sizeof(float));
    if (!w->X || !w->A || !w->dA || !w->Y || !w->Yn || !w->Tn || !w->T || !w->dY || !w->S ||
        !w->norm) {
        ws_free(w);
        return -1;
    }
    return 0;
}

double dr__align_loss(const dr_align *a, const float *z, size_t zs, uint32_t n, const float *t,
                      const uint8_t *has, const dr_align_params *p) {
    uint32_t B = p->batch ? p->batch : 256;
    fit_ws w;
    uint32_t *idx = dr__malloc((size_t)B * sizeof *idx);
    float *c = dr__malloc((size_t)a->E * sizeof *c);
    if (!idx || !c || ws_alloc(&w, B, a->d, a->E, a->hidden)) {
        dr__free(idx), dr__free(c);
        return -1;
    }
    if (mean_target(t, has, NULL, n, a->E, c)) {
        ws_free(&w);
        dr__free(idx), dr__free(c);
        return -1;
    }
    double tot = 0, mse;
    size_t cnt = 0;
    uint32_t m = 0;
    for (uint32_t i = 0; i <= n; i++) {
        if (i < n && has[i]) idx[m++] = i;
        if ((m == B || i == n) && m) {
            tot += batch_loss(a, a->theta, z, zs, t, c, idx, m, p->tau, p->w_con, &w, NULL, &mse) * m;
            cnt += m;
            m = 0;
        }
    }
    ws_free(&w);
    dr__free(idx), dr__free(c);
    return cnt ? tot / (double)cnt : 0;
}

dr_align_params dr_align_default_params(void) {
    dr_align_params p = {0};
    p.hidden = 0;
    p.epochs = 40;
    p.batch = 256;
    p.lr = 3e-3f;
    p.tau = 0.1f;
    p.w_con = 1.0f;
    p.holdout = 0.1f;
    p.seed = 42;
    return p;
}

void dr_align_project(const dr_align *a, const float *x, float *out) {
    uint32_t d = a->d, E = a->E, H = a->hidden;
    if (!H) {
        const float *W = a->theta, *b = W + (size_t)E * d;
        for (uint32_t e = 0; e < E; e++) {
            double s = b[e];
            for (uint32_t k = 0; k < d; k++) s += (double)W[(size_t)e * d + k] * ((x[k] - a->mu[k]) / a->sd[k]);
            out[e] = (float)s;
        }
        return;
    }
    const float *W1 = a->theta, *b1 = W1 + (size_t)H * d, *W2 = b1 + H, *b2 = W2 + (size_t)E * H;
    for (uint32_t e = 0; e < E; e++) out[e] = b2[e];
    for (uint32_t h = 0; h < H; h++) {
        double s = b1[h];
        for (uint32_t k = 0; k < d; k++) s += (double)W1[(size_t)h * d + k] * ((x[k] - a->mu[k]) / a->sd[k]);
        float ah = tanhf((float)s);
        for (uint32_t e = 0; e < E; e++) out[e] += W2[(size_t)e * H + h] * ah;
    }
}

double dr__align_recall(const dr_align *a, const float *z, size_t zs, uint32_t n, const float *t,
                        const uint8_t *has, const uint8_t *sel, uint32_t k) {
    uint32_t E = a->E, m = 0;
    for (uint32_t i = 0; i < n; i++) m += has[i] != 0;
    float *Tn = dr__malloc((size_t)m * E * sizeof *Tn), *y = dr__malloc((size_t)E * sizeof *y);
    float *yn = dr__malloc((size_t)E * sizeof *yn), *s = dr__malloc((size_t)m * sizeof *s);
    uint32_t *row = dr__malloc((size_t)n * sizeof *row);
    float *c = dr__malloc((size_t)E * sizeof *c);
    double res = -1;
    if (!Tn || !y || !yn || !s || !row || !c || mean_target(t, has, NULL, n, E, c)) goto done;
    m = 0;
    for (uint32_t i = 0; i < n; i++) {
        row[i] = has[i] ? m : UINT32_MAX;
        if (!has[i]) continue;
        for (uint32_t e = 0; e < E; e++) yn[e] = t[(size_t)i * E + e] - c[e];
        normalise_rows(yn, 1, E, Tn + (size_t)m++ * E, NULL);
    }
    size_t hits = 0, q = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!has[i] || (sel && !sel[i])) continue;
        dr_align_project(a, z + (size_t)i * zs, y);
        for (uint32_t e = 0; e < E; e++) y[e] -= c[e];
        normalise_rows(y, 1, E, yn, NULL);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)m, (int)E, 1.0f, Tn, (int)E, yn, 1, 0.0f, s, 1);
        float own = s[row[i]];
        uint32_t above = 0;
        for (uint32_t j = 0; j < m && above < k; j++) above += j != row[i] && s[j] >= own;
        hits += above < k;
        q++;
    }
    res = q ? (double)hits / (double)q : 0;
done:
    dr__free(Tn), dr__free(y), dr__free(yn), dr__free(s), dr__free(row), dr__free(c);
    return res;
}

dr_status dr__align_fit_arrays(const float *z, size_t zs, uint32_t n, uint32_t d, const float *t,
                              const uint8_t *has, uint32_t E, const dr_align_params *p,
                              uint64_t llm_hash, uint64_t llm_size, dr_align **out,
                              dr_align_report *rep, dr_error *err) {
    *out = NULL;
    if (!d || d > DR_ALIGN_MAX_DIM || !E || E > DR_ALIGN_MAX_DIM || p->hidden > DR_ALIGN_MAX_HIDDEN)
        return dr__fail(err, DR_ARG, "align: dimensions d=%u n_embd=%u hidden=%u out of range", d,
                        E, p->hidden);
    if (!(p->lr > 0) || !(p->tau > 0) || !(p->w_con >= 0) || !(p->holdout >= 0 && p->holdout < 1))
        return dr__fail(err, DR_ARG, "align: lr, tau must be > 0, w_con >= 0, holdout in [0, 1)");
    double t0 = dr__now_seconds();
    uint32_t B = p->batch ? p->batch : 256, H = p->hidden;
    dr_align *a = align_new(d, E, H);
    uint32_t *order = dr__malloc(((size_t)n + 1) * sizeof *order);
    uint8_t *train = dr__calloc((size_t)n + 1, 1), *hold = dr__calloc((size_t)n + 1, 1);
    float *grad = NULL, *m1 = NULL, *m2 = NULL, *center = NULL;
    fit_ws w = {0};
    dr_status st = DR_NOMEM;
    if (!a || !order || !train || !hold) goto fail;
    grad = dr__calloc(a->n_params, sizeof *grad);
    m1 = dr__calloc(a->n_params, sizeof *m1);
    m2 = dr__calloc(a->n_params, sizeof *m2);
    center = dr__calloc(E, sizeof *center);
    if (!grad || !m1 || !m2 || !center || ws_alloc(&w, B, d, E, H)) goto fail;
    /* standardisation over every item */
    for (uint32_t k = 0; k < d; k++) {
        double s = 0, s2 = 0;
        for (uint32_t i = 0; i < n; i++) s += z[(size_t)i * zs + k];
        double mu = n ? s / n : 0;
        for (uint32_t i = 0; i < n; i++) s2 += (z[(size_t)i * zs + k] - mu) * (z[(size_t)i * zs + k] - mu);
        double sd = n ? sqrt(s2 / n) : 1;
        a->mu[k] = (float)mu;
        a->sd[k] = (float)(sd > 1e-6 ? sd : 1e-6);
    }
    /* holdout: a seeded shuffle of the titled items */
    dr_rng rng;
    dr__rng_seed(&rng, p->seed, 0xa11);
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++)
        if (has[i]) order[m++] = i;
    if (m < 2) {
        st = dr__fail(err, DR_ARG, "align: %u items with a title target; at least 2 are needed", m);
        goto fail_quiet;
    }
    for (uint32_t i = m; i > 1; i--) {
        uint32_t j = (uint32_t)dr__rng_below(&rng, i), x = order[i - 1];
        order[i - 1] = order[j], order[j] = x;
    }
    uint32_t n_hold = (uint32_t)(p->holdout * m);
    if (n_hold >= m) n_hold = m - 1;
    for (uint32_t q = 0; q < m; q++) (q < n_hold ? hold : train)[order[q]] = 1;
    uint32_t n_train = m - n_hold;
    memmove(order, order + n_hold, (size_t)n_train * sizeof *order);
    if (mean_target(t, has, train, n, E, center)) goto fail;
    /* init: small random weights, output bias at the mean target */
    double sc1 = 1.0 / sqrt((double)d), sc2 = H ? 1.0 / sqrt((double)H) : 0;
    float *bout = H ? a->theta + (size_t)H * d + H + (size_t)E * H : a->theta + (size_t)E * d;
    for (size_t q = 0; q < (H ? (size_t)H * d : (size_t)E * d); q++)
        a->theta[q] = (float)(dr__rng_normal(&rng) * sc1 * (H ? 1.0 : 0.1));
    if (H)
        for (size_t q = 0; q < (size_t)E * H; q++)
            a->theta[(size_t)H * d + H + q] = (float)(dr__rng_normal(&rng) * sc2 * 0.1);
    for (uint32_t q = 0; q < n_train; q++)
        for (uint32_t e = 0; e < E; e++) bout[e] += t[(size_t)order[q] * E + e] / (float)n_train;
    /* Adam */
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    uint64_t step = 0;
    double first = 0, last = 0, mse_first = 0, mse_last = 0;
    for (uint32_t ep = 0; ep < (p->epochs ? p->epochs : 1); ep++) {
        for (uint32_t i = n_train; i > 1; i--) {
            uint32_t j = (uint32_t)dr__rng_below(&rng, i), x = order[i - 1];
            order[i - 1] = order[j], order[j] = x;
        }
        double tot = 0, tot_mse = 0;
        for (uint32_t q0 = 0; q0 < n_train; q0 += B) {
            uint32_t bb = DR_MIN(B, n_train - q0);
            double mse;
            memset(grad, 0, a->n_params * sizeof *grad);
            tot += batch_loss(a, a->theta, z, zs, t, center, order + q0, bb, p->tau, p->w_con, &w,
                              grad, &mse) * bb;
            tot_mse += mse * bb;
            step++;
            float c1 = 1.0f - powf(b1, (float)step), c2 = 1.0f - powf(b2, (float)step);
            for (size_t q = 0; q < a->n_params; q++) {
                m1[q] = b1 * m1[q] + (1 - b1) * grad[q];
                m2[q] = b2 * m2[q] + (1 - b2) * grad[q] * grad[q];
                a->theta[q] -= p->lr * (m1[q] / c1) / (sqrtf(m2[q] / c2) + eps);
            }
        }
        last = tot / n_train, mse_last = tot_mse / n_train;
        if (ep == 0) first = last, mse_first = mse_last;
    }
    for (size_t q = 0; q < a->n_params; q++)
        if (!isfinite(a->theta[q])) {
            st = dr__fail(err, DR_RANGE, "align: the fit diverged (lower --lr)");
            goto fail_quiet;
        }
    a->llm_hash = llm_hash, a->llm_size = llm_size;
    a->rep.n_items = n, a->rep.n_titled = m, a->rep.n_train = n_train, a->rep.n_holdout = n_hold;
    a->rep.d = d, a->rep.n_embd = E;
    a->rep.loss_first = first, a->rep.loss_last = last;
    a->rep.mse_first = mse_first, a->rep.mse_last = mse_last;
    a->rep.recall10_train = dr__align_recall(a, z, zs, n, t, has, train, 10);
    a->rep.recall10_holdout = n_hold ? dr__align_recall(a, z, zs, n, t, has, hold, 10) : 0;
    a->rep.recall10_random = m ? DR_MIN(1.0, 10.0 / m) : 0;
    if (a->rep.recall10_train < 0 || a->rep.recall10_holdout < 0) goto fail;
    a->rep.seconds = dr__now_seconds() - t0;
    if (rep) *rep = a->rep;
    *out = a;
    a = NULL;
    st = DR_OK;
    goto done;
fail:
    st = dr__fail(err, DR_NOMEM, "align: out of memory (%u items, d=%u, n_embd=%u)", n, d, E);
fail_quiet:
done:
    ws_free(&w);
    dr__free(grad), dr__free(m1), dr__free(m2), dr__free(center);
    dr__free(order), dr__free(train), dr__free(hold);
    dr_align_free(a);
    return st;
}

/* ---------------------------------------------------------------- targets from a GGUF */

/* t (n, E) and has (n) from the titles through the GGUF's vocabulary and token embeddings. */
static dr_status title_targets(const char *gguf, const dr_model *m, const dr_dataset *ds,
                               uint32_t n, dr_tokemb *te, float **t_out, uint8_t **has_out,
                               dr_error *err) {
    dr__llama_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    mp.n_gpu_layers = 0;
    struct llama_model *lm = llama_model_load_from_file(gguf, mp);
    if (!lm) return dr__fail(err, DR_FORMAT, "%s: llama.cpp could not read this GGUF's vocabulary", gguf);
    const struct llama_vocab *v = llama_model_get_vocab(lm);
    dr_status st = dr__tokemb_read(gguf, te, err);
    float *t = NULL, *row = NULL;
    uint8_t *has = NULL;
    int32_t tok[DR_LLM_RANK_MAX_TITLE];
    if (st != DR_OK) goto done;
    if ((uint32_t)llama_vocab_n_tokens(v) > te->n_vocab) {
        st = dr__fail(err, DR_FORMAT, "%s: %d tokens in the vocabulary but %u embedding rows", gguf,
                      llama_vocab_n_tokens(v), te->n_vocab);
        goto done;
    }
    t = dr__calloc((size_t)n * te->n_embd, sizeof *t);
    has = dr__calloc(n ? n : 1, 1);
    row = dr__malloc((size_t)te->n_embd * sizeof *row);
    if (!t || !has || !row) {
        st = dr__fail(err, DR_NOMEM, "align: out of memory for %u targets", n);
        goto done;
    }
    for (uint32_t i = 0; i < n; i++) {
        const char *title = ds ? dr_dataset_item_title(ds, i) : dr_model_item_title(m, i);
        int32_t k = dr__title_tokens(v, title ? title : "", tok, DR_LLM_RANK_MAX_TITLE);
        if (k <= 0) continue;
        float *ti = t + (size_t)i * te->n_embd;
        for (int32_t q = 0; q < k; q++) {
            if (tok[q] < 0 || (uint32_t)tok[q] >= te->n_vocab) continue;
            dr__tokemb_row(te, tok[q], row);
            for (uint32_t e = 0; e < te->n_embd; e++) ti[e] += row[e] / (float)k;
        }
        has[i] = 1;
    }
done:
    dr__free(row);
    llama_model_free(lm);
    if (st != DR_OK) {
        dr__free(t), dr__free(has);
        dr__tokemb_free(te);
        return st;
    }
    *t_out = t, *has_out = has;
    return DR_OK;
}

dr_status dr_align_fit(const dr_model *m, const dr_dataset *ds, const dr_align_params *p,
                       dr_align **out, dr_align_report *rep, dr_error *err) {
    *out = NULL;
    if (!p->llm_model) return dr__fail(err, DR_ARG, "align: no GGUF model given");
    uint32_t d = dr_model_latent_dim(m), n = dr_model_n_items(m);
    const float *z = dr_model_item_latents(m);
    if (!d || !z)
        return dr__fail(err, DR_UNSUPPORTED, "align: model %s has no item latents (a dot-product "
                        "model, mf or sasrec, is needed)", dr_model_name(m));
    if (ds && dr_dataset_n_items(ds) != n)
        return dr__fail(err, DR_ARG, "align: the dataset has %u items, the model %u",
                        dr_dataset_n_items(ds), n);
    uint64_t h, size;
    dr_status st = dr__gguf_hash(p->llm_model, &h, &size, err);
    if (st != DR_OK) return st;
    dr_tokemb te = {0};
    float *t = NULL;
    uint8_t *has = NULL;
    if ((st = title_targets(p->llm_model, m, ds, n, &te, &t, &has, err)) != DR_OK) return st;
    st = dr__align_fit_arrays(z, d, n, d, t, has, te.n_embd, p, h, size, out, rep, err);
    dr__tokemb_free(&te);
    dr__free(t), dr__free(has);
    return st;
}

/* ---------------------------------------------------------------- accessors, checks */

uint32_t dr_align_dim(const dr_align *a) { return a->d; }
uint32_t dr_align_n_embd(const dr_align *a) { return a->E; }
uint64_t dr_align_llm_hash(const dr_align *a) { return a->llm_hash; }
const dr_align_report *dr_align_get_report(const dr_align *a) { return &a->rep; }
float dr_align_lambda(const dr_align *a, int *chosen) {
    if (chosen) *chosen = a->lambda_chosen;
    return a->lambda;
}
void dr_align_set_lambda(dr_align *a, float lambda) {
    a->lambda = lambda;
    a->lambda_chosen = 1;
}

dr_status dr_align_check_llm(const dr_align *a, const char *gguf_path, dr_error *err) {
    uint64_t h, size;
    dr_status st = dr__gguf_hash(gguf_path, &h, &size, err);
    if (st != DR_OK) return st;
    if (h != a->llm_hash || size != a->llm_size)
        return dr__fail(err, DR_ARG, "%s: this alignment was learned for another GGUF model "
                        "(hash %016llx, %llu bytes; this file has %016llx, %llu bytes): run "
                        "dynrec align with this model", gguf_path,
                        (unsigned long long)a->llm_hash, (unsigned long long)a->llm_size,
                        (unsigned long long)h, (unsigned long long)size);
    return DR_OK;
}

dr_status dr_align_check_model(const dr_align *a, const dr_model *m, dr_error *err) {
    if (dr_model_latent_dim(m) != a->d)
        return dr__fail(err, DR_ARG, "align: the map takes %u-dimensional latents, model %s has %u",
                        a->d, dr_model_name(m), dr_model_latent_dim(m));
    return DR_OK;
}

/* ---------------------------------------------------------------- the .align file */

typedef struct align_head {
    char magic[8];
    uint32_t version, d, n_embd, hidden;
    uint32_t lambda_chosen;
    float lambda;
    uint64_t llm_hash, llm_size;
    uint32_t n_items, n_titled, n_train, n_holdout;
    double loss_first, loss_last, mse_first, mse_last;
    double recall10_train, recall10_holdout, recall10_random;
} align_head;
_Static_assert(sizeof(align_head) == 120, "the .align header is 120 bytes (docs/FORMATS.md)");

dr_status dr_align_save(const dr_align *a, const char *path, dr_error *err) {
    align_head hd;
    memset(&hd, 0, sizeof hd);
    memcpy(hd.magic, ALIGN_MAGIC, 8);
    hd.version = ALIGN_VERSION, hd.d = a->d, hd.n_embd = a->E, hd.hidden = a->hidden;
    hd.lambda_chosen = (uint32_t)a->lambda_chosen, hd.lambda = a->lambda;
    hd.llm_hash = a->llm_hash, hd.llm_size = a->llm_size;
    hd.n_items = a->rep.n_items, hd.n_titled = a->rep.n_titled;
    hd.n_train = a->rep.n_train, hd.n_holdout = a->rep.n_holdout;
    hd.loss_first = a->rep.loss_first, hd.loss_last = a->rep.loss_last;
    hd.mse_first = a->rep.mse_first, hd.mse_last = a->rep.mse_last;
    hd.recall10_train = a->rep.recall10_train, hd.recall10_holdout = a->rep.recall10_holdout;
    hd.recall10_random = a->rep.recall10_random;
    size_t nf = 2 * (size_t)a->d + a->n_params, bytes = sizeof hd + nf * sizeof(float);
    uint8_t *buf = dr__malloc(bytes + 8);
    if (!buf) return dr__fail(err, DR_NOMEM, "%s: out of memory", path);
    memcpy(buf, &hd, sizeof hd);
    float *f = (float *)(buf + sizeof hd);
    memcpy(f, a->mu, a->d * sizeof *f);
    memcpy(f + a->d, a->sd, a->d * sizeof *f);
    memcpy(f + 2 * (size_t)a->d, a->theta, a->n_params * sizeof *f);
    uint64_t sum = dr__hash_bytes(buf, bytes);
    memcpy(buf + bytes, &sum, 8);
    char *tmp = dr__malloc(strlen(path) + 8);
    dr_status st = DR_OK;
    if (!tmp) {
        dr__free(buf);
        return dr__fail(err, DR_NOMEM, "%s: out of memory", path);
    }
    sprintf(tmp, "%s.tmp", path);
    FILE *fp = fopen(tmp, "wb");
    if (!fp || fwrite(buf, 1, bytes + 8, fp) != bytes + 8 || fflush(fp) || fsync(fileno(fp))) st = DR_IO;
    if (fp && fclose(fp)) st = DR_IO;
    if (st == DR_OK && rename(tmp, path)) st = DR_IO;
    if (st != DR_OK) remove(tmp);
    dr__free(tmp);
    dr__free(buf);
    return st == DR_OK ? DR_OK : dr__fail(err, DR_IO, "%s: cannot write the alignment", path);
}

dr_status dr__align_parse(const char *buf, size_t len, const char *path, dr_align **out,
                          dr_error *err) {
    *out = NULL;
    dr_status st = DR_OK;
    align_head hd;
    dr_align *a = NULL;
    if (len < sizeof hd + 8 || memcmp(buf, ALIGN_MAGIC, 8)) {
        st = dr__fail(err, DR_FORMAT, "%s: not a dynrec alignment file (bad magic or too short)", path);
        goto done;
    }
    memcpy(&hd, buf, sizeof hd);
    if (hd.version != ALIGN_VERSION) {
        st = dr__fail(err, DR_FORMAT, "%s: alignment file version %u (this build reads %u)", path,
                      hd.version, ALIGN_VERSION);
        goto done;
    }
    if (!hd.d || hd.d > DR_ALIGN_MAX_DIM || !hd.n_embd || hd.n_embd > DR_ALIGN_MAX_DIM ||
        hd.hidden > DR_ALIGN_MAX_HIDDEN || hd.lambda_chosen > 1 || !isfinite(hd.lambda)) {
        st = dr__fail(err, DR_FORMAT, "%s: header out of range (d=%u n_embd=%u hidden=%u)", path,
                      hd.d, hd.n_embd, hd.hidden);
        goto done;
    }
    size_t np = n_params_of(hd.d, hd.n_embd, hd.hidden);
    size_t bytes = sizeof hd + (2 * (size_t)hd.d + np) * sizeof(float);
    if (len != bytes + 8) {
        st = dr__fail(err, DR_FORMAT, "%s: %zu bytes, the header says %zu", path, len, bytes + 8);
        goto done;
    }
    uint64_t sum;
    memcpy(&sum, buf + bytes, 8);
    if (sum != dr__hash_bytes(buf, bytes)) {
        st = dr__fail(err, DR_FORMAT, "%s: checksum mismatch (damaged file)", path);
        goto done;
    }
    a = align_new(hd.d, hd.n_embd, hd.hidden);
    if (!a) {
        st = dr__fail(err, DR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    const char *f = buf + sizeof hd;
    memcpy(a->mu, f, hd.d * sizeof(float));
    memcpy(a->sd, f + hd.d * sizeof(float), hd.d * sizeof(float));
    memcpy(a->theta, f + 2 * (size_t)hd.d * sizeof(float), np * sizeof(float));
    for (uint32_t k = 0; k < hd.d; k++)
        if (!isfinite(a->mu[k]) || !(a->sd[k] > 0) || !isfinite(a->sd[k])) {
            st = dr__fail(err, DR_FORMAT, "%s: standardisation value %u out of range", path, k);
            goto done;
        }
    for (size_t q = 0; q < np; q++)
        if (!isfinite(a->theta[q])) {
            st = dr__fail(err, DR_FORMAT, "%s: parameter %zu is not finite", path, q);
            goto done;
        }
    a->lambda = hd.lambda, a->lambda_chosen = (int)hd.lambda_chosen;
    a->llm_hash = hd.llm_hash, a->llm_size = hd.llm_size;
    a->rep.n_items = hd.n_items, a->rep.n_titled = hd.n_titled;
    a->rep.n_train = hd.n_train, a->rep.n_holdout = hd.n_holdout;
    a->rep.d = hd.d, a->rep.n_embd = hd.n_embd;
    a->rep.loss_first = hd.loss_first, a->rep.loss_last = hd.loss_last;
    a->rep.mse_first = hd.mse_first, a->rep.mse_last = hd.mse_last;
    a->rep.recall10_train = hd.recall10_train, a->rep.recall10_holdout = hd.recall10_holdout;
    a->rep.recall10_random = hd.recall10_random;
    *out = a;
    a = NULL;
done:
    dr_align_free(a);
    return st;
}

dr_status dr_align_load(const char *path, dr_align **out, dr_error *err) {
    *out = NULL;
    char *buf = NULL;
    size_t len = 0;
    dr_status st = dr__read_file(path, DR_ALIGN_MAX_BYTES, &buf, &len, err);
    if (st == DR_OK) st = dr__align_parse(buf, len, path, out, err);
    dr__free(buf);
    return st;
}
