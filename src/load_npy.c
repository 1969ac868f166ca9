/*
 * load_npy.c - NumPy .npy arrays: read (float16/32/64, uint8, bool; 1-D or 2-D; C order) into
 * float32, and write float32 2-D and uint8 1-D arrays.
 *
 * DESIGN: the header is a Python dict literal; a tiny tokenizer reads exactly the subset
 * numpy writes ('key': 'str' | True | False | (ints,)) and rejects anything else, and the
 * data length is checked against the shape (with overflow checks) before a single element
 * is converted. Elements are assembled from little-endian bytes, so the reader is correct on
 * any host; float16 is widened by bit manipulation (subnormals, infinities and NaN included)
 * instead of relying on _Float16, which C11 compilers need not have. Rejected: a general
 * Python-literal parser (more code, more attack surface, nothing numpy emits needs it) and
 * mmapping the data (features are converted to float32 anyway).
 */
#include "dataset.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>

enum { NPY_F2, NPY_F4, NPY_F8, NPY_U1, NPY_B1 };

static const struct {
    const char *descr;
    int kind;
    unsigned size;
} npy_types[] = {
    {"<f2", NPY_F2, 2}, {"<f4", NPY_F4, 4}, {"<f8", NPY_F8, 8}, {"|u1", NPY_U1, 1},
    {"<u1", NPY_U1, 1}, {"u1", NPY_U1, 1},  {"|b1", NPY_B1, 1}, {"b1", NPY_B1, 1},
};

/* IEEE half -> single, exact for every input. */
static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0 && man == 0) {
        bits = sign;
    } else if (exp == 0) { /* subnormal: man * 2^-24, renormalised */
        exp = 127 - 15 + 1;
        while (!(man & 0x400u)) {
            man <<= 1;
            exp--;
        }
        bits = sign | (exp << 23) | ((man & 0x3ffu) << 13);
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13); /* inf, or NaN with its payload */
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* ------------------------------------------------------------------ header tokenizer */

typedef struct hdr {
    const char *p, *end;
} hdr;

static void hdr_ws(hdr *h) {
    while (h->p < h->end && (*h->p == ' ' || *h->p == '\t' || *h->p == '\n' || *h->p == '\r'))
        h->p++;
}

static bool hdr_char(hdr *h, char c) {
    hdr_ws(h);
    if (h->p < h->end && *h->p == c) {
        h->p++;
        return true;
    }
    return false;
}

/* A quoted string ('...' or "...", no escapes); *s points into the header. */
static bool hdr_str(hdr *h, const char **s, size_t *n) {
    hdr_ws(h);
    if (h->p >= h->end || (*h->p != '\'' && *h->p != '"')) return false;
    char q = *h->p++;
    const char *e = memchr(h->p, q, (size_t)(h->end - h->p));
    if (!e) return false;
    *s = h->p;
    *n = (size_t)(e - h->p);
    h->p = e + 1;
    return true;
}

static bool hdr_word(hdr *h, const char *w) {
    size_t n = strlen(w);
    hdr_ws(h);
    if ((size_t)(h->end - h->p) < n || memcmp(h->p, w, n) != 0) return false;
    h->p += n;
    return true;
}

/* A shape tuple: "()", "(7,)", "(7, 3)", ...; up to 8 dims. */
static bool hdr_shape(hdr *h, uint64_t *dims, int *ndim) {
    if (!hdr_char(h, '(')) return false;
    *ndim = 0;
    for (;;) {
        if (hdr_char(h, ')')) return true;
        hdr_ws(h);
        uint64_t v = 0;
        const char *start = h->p;
        while (h->p < h->end && *h->p >= '0' && *h->p <= '9') {
            if (v > (UINT64_MAX - 9) / 10) return false;
            v = v * 10 + (uint64_t)(*h->p++ - '0');
        }
        if (h->p == start || *ndim == 8) return false;
        dims[(*ndim)++] = v;
        if (!hdr_char(h, ',')) return hdr_char(h, ')');
    }
}

/* ------------------------------------------------------------------ reader */

dr_status dr__npy_parse(const char *buf, size_t len, const char *name, dr_npy *out,
                       dr_error *err) {
    const unsigned char *u = (const unsigned char *)buf;
    memset(out, 0, sizeof *out);
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0)
        return dr__fail(err, DR_FORMAT, "%s: not a .npy file (bad magic)", name);
    unsigned major = u[6];
    size_t hlen, start;
    if (major == 1) {
        hlen = (size_t)u[8] | (size_t)u[9] << 8;
        start = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12) return dr__fail(err, DR_FORMAT, "%s: truncated header", name);
        hlen = (size_t)u[8] | (size_t)u[9] << 8 | (size_t)u[10] << 16 | (size_t)u[11] << 24;
        start = 12;
    } else {
        return dr__fail(err, DR_UNSUPPORTED, "%s: .npy version %u.%u", name, major, u[7]);
    }
    if (hlen > len - start) return dr__fail(err, DR_FORMAT, "%s: truncated header", name);

    hdr h = {buf + start, buf + start + hlen};
    const char *descr = NULL;
    size_t descr_n = 0;
    int fortran = -1, ndim = -1;
    uint64_t dims[8];
    if (!hdr_char(&h, '{')) goto bad_header;
    while (!hdr_char(&h, '}')) {
        const char *key;
        size_t kn;
        if (!hdr_str(&h, &key, &kn) || !hdr_char(&h, ':')) goto bad_header;
        if (kn == 5 && memcmp(key, "descr", 5) == 0) {
            if (!hdr_str(&h, &descr, &descr_n)) goto bad_header;
        } else if (kn == 13 && memcmp(key, "fortran_order", 13) == 0) {
            if (hdr_word(&h, "True")) fortran = 1;
            else if (hdr_word(&h, "False")) fortran = 0;
            else goto bad_header;
        } else if (kn == 5 && memcmp(key, "shape", 5) == 0) {
            if (!hdr_shape(&h, dims, &ndim)) goto bad_header;
        } else {
            goto bad_header;
        }
        if (!hdr_char(&h, ',')) {
            if (!hdr_char(&h, '}')) goto bad_header;
            break;
        }
    }
    if (!descr || fortran < 0 || ndim < 0) goto bad_header;

    int kind = -1;
    unsigned esize = 0;
    for (size_t k = 0; k < DR_ARRAY_LEN(npy_types); k++)
        if (strlen(npy_types[k].descr) == descr_n &&
            memcmp(npy_types[k].descr, descr, descr_n) == 0) {
            kind = npy_types[k].kind;
            esize = npy_types[k].size;
        }
    if (kind < 0)
        return dr__fail(err, DR_UNSUPPORTED, "%s: dtype '%.*s' (want <f2 <f4 <f8 |u1 |b1)", name,
                       (int)DR_MIN(descr_n, 16), descr);
    if (fortran)
        return dr__fail(err, DR_UNSUPPORTED, "%s: Fortran-order arrays are not supported", name);
    if (ndim < 1 || ndim > 2)
        return dr__fail(err, DR_UNSUPPORTED, "%s: %d-D array (want 1-D or 2-D)", name, ndim);
    /* the data length must match the shape exactly, checked without overflow */
    uint64_t rows = dims[0], cols = ndim == 2 ? dims[1] : 1;
    bool ovf = cols && rows > UINT64_MAX / cols;
    uint64_t cells = ovf ? 0 : rows * cols;
    ovf = ovf || cells > UINT64_MAX / esize;
    size_t have = len - start - hlen;
    if (ovf || (uint64_t)have != cells * esize)
        return dr__fail(err, DR_FORMAT, "%s: shape (%llu, %llu) of %u-byte values does not match "
                       "the %zu data bytes", name, (unsigned long long)rows,
                       (unsigned long long)cols, esize, have);
    if (rows > UINT32_MAX || cols > UINT32_MAX || cells > SIZE_MAX / sizeof(float))
        return dr__fail(err, DR_LIMIT, "%s: shape (%llu, %llu) is too large", name,
                       (unsigned long long)rows, (unsigned long long)cols);

    float *x = dr__malloc((size_t)cells * sizeof *x);
    if (!x) return dr__fail(err, DR_NOMEM, "%s: out of memory for %llu values", name,
                           (unsigned long long)cells);
    const unsigned char *d = u + start + hlen;
    for (size_t k = 0; k < (size_t)cells; k++) {
        const unsigned char *e = d + k * esize;
        switch (kind) {
        case NPY_F2: x[k] = half_to_float((uint16_t)(e[0] | e[1] << 8)); break;
        case NPY_F4: {
            uint32_t v = (uint32_t)e[0] | (uint32_t)e[1] << 8 | (uint32_t)e[2] << 16 |
                         (uint32_t)e[3] << 24;
            memcpy(&x[k], &v, sizeof v);
            break;
        }
        case NPY_F8: {
            uint64_t v = 0;
            for (int b = 7; b >= 0; b--) v = v << 8 | e[b];
            double f;
            memcpy(&f, &v, sizeof f);
            /* out-of-range doubles become +-inf (the plain conversion would be undefined) */
            x[k] = f > FLT_MAX ? INFINITY : f < -FLT_MAX ? -INFINITY : (float)f;
            break;
        }
        case NPY_U1: x[k] = (float)e[0]; break;
        default: x[k] = e[0] ? 1.0f : 0.0f; break;
        }
    }
    out->rows = (uint32_t)rows;
    out->cols = (uint32_t)cols;
    out->data = x;
    return DR_OK;
bad_header:
    return dr__fail(err, DR_FORMAT, "%s: malformed .npy header", name);
}

dr_status dr__npy_read(const char *path, size_t max_bytes, dr_npy *out, dr_error *err) {
    char *buf;
    size_t len;
    memset(out, 0, sizeof *out);
    dr_status s = dr__read_file(path, max_bytes, &buf, &len, err);
    if (s != DR_OK) return s;
    s = dr__npy_parse(buf, len, path, out, err);
    dr__free(buf);
    return s;
}

void dr__npy_free(dr_npy *a) {
    if (!a) return;
    dr__free(a->data);
    memset(a, 0, sizeof *a);
}

/* ------------------------------------------------------------------ writer */

/* Writes a version 1.0 header padded so that the data starts at a multiple of 64. */
static bool npy_put_header(FILE *f, const char *descr, const char *shape) {
    char h[256];
    int n = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                     descr, shape);
    if (n < 0 || (size_t)n + 1 >= sizeof h - 64) return false;
    size_t total = 10 + (size_t)n + 1, pad = (64 - total % 64) % 64;
    memset(h + n, ' ', pad);
    h[n + pad] = '\n';
    size_t hlen = (size_t)n + pad + 1;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                             (unsigned char)(hlen >> 8)};
    return fwrite(pre, 1, sizeof pre, f) == sizeof pre && fwrite(h, 1, hlen, f) == hlen;
}

static dr_status npy_close(FILE *f, bool ok, const char *path, dr_error *err) {
    if (fclose(f) != 0) ok = false;
    return ok ? DR_OK : dr__fail(err, DR_IO, "%s: write failed", path);
}

dr_status dr__npy_write_f32(const char *path, const float *x, uint32_t rows, uint32_t cols,
                           dr_error *err) {
    FILE *f = fopen(path, "wb");
    if (!f) return dr__fail(err, DR_IO, "%s: %s", path, strerror(errno));
    char shape[64];
    snprintf(shape, sizeof shape, "(%u, %u)", rows, cols);
    bool ok = npy_put_header(f, "<f4", shape);
    unsigned char chunk[4096];
    size_t cells = (size_t)rows * cols, k = 0;
    while (ok && k < cells) {
        size_t m = DR_MIN(cells - k, sizeof chunk / 4);
        for (size_t j = 0; j < m; j++) {
            uint32_t v;
            memcpy(&v, &x[k + j], sizeof v);
            for (int b = 0; b < 4; b++) chunk[4 * j + (size_t)b] = (unsigned char)(v >> (8 * b));
        }
        ok = fwrite(chunk, 4, m, f) == m;
        k += m;
    }
    return npy_close(f, ok, path, err);
}

dr_status dr__npy_write_u8(const char *path, const uint8_t *x, uint32_t rows, dr_error *err) {
    FILE *f = fopen(path, "wb");
    if (!f) return dr__fail(err, DR_IO, "%s: %s", path, strerror(errno));
    char shape[64];
    snprintf(shape, sizeof shape, "(%u,)", rows);
    bool ok = npy_put_header(f, "|u1", shape) && fwrite(x, 1, rows, f) == rows;
    return npy_close(f, ok, path, err);
}
