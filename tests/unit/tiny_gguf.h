/* tiny_gguf.h - writes a tiny random-weight llama-architecture GGUF through llama.cpp's gguf
 * API, borrowing the tokenizer of a vocabulary-only GGUF (llama.cpp ships several under
 * models/; scripts/llama.sh copies them into the install prefix). Lets the tests exercise the
 * llama generator on a machine without any downloaded model. */
#ifndef DR_TINY_GGUF_H
#define DR_TINY_GGUF_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ggml.h"
#include "gguf.h"

/* LLAMA_DIR from build/llama.mk (run from the repository root), or NULL. */
static inline const char *tiny_llama_dir(void) {
    static char dir[1024];
    const char *env = getenv("LLAMA_DIR");
    if (env && *env) return env;
    FILE *f = fopen("build/llama.mk", "r");
    if (!f) return NULL;
    char line[1200];
    dir[0] = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "LLAMA_DIR := %1023s", dir) == 1) break;
    fclose(f);
    return dir[0] ? dir : NULL;
}

/* Writes the model to path with a training context of n_ctx_train tokens; returns 0, or -1
 * (with a message on stderr). */
static inline int tiny_gguf_write_ctx(const char *path, unsigned seed, unsigned n_ctx_train) {
    const char *dir = tiny_llama_dir();
    char vocab[1200];
    snprintf(vocab, sizeof vocab, "%s/models/ggml-vocab-llama-spm.gguf", dir ? dir : ".");
    struct gguf_init_params vp = {true, NULL};
    struct gguf_context *src = gguf_init_from_file(vocab, vp);
    if (!src) {
        fprintf(stderr, "tiny_gguf: cannot read the vocabulary %s\n", vocab);
        return -1;
    }
    int64_t tk = gguf_find_key(src, "tokenizer.ggml.tokens");
    const uint32_t n_vocab = tk >= 0 ? (uint32_t)gguf_get_arr_n(src, tk) : 0;
    const uint32_t n_embd = 32, n_head = 4, n_ff = 64, n_layer = 1;
    struct gguf_context *g = gguf_init_empty();
    gguf_set_kv(g, src);
    gguf_set_val_str(g, "general.architecture", "llama");
    gguf_set_val_str(g, "general.name", "dynrec tiny random");
    gguf_set_val_u32(g, "llama.context_length", n_ctx_train);
    gguf_set_val_u32(g, "llama.embedding_length", n_embd);
    gguf_set_val_u32(g, "llama.block_count", n_layer);
    gguf_set_val_u32(g, "llama.feed_forward_length", n_ff);
    gguf_set_val_u32(g, "llama.attention.head_count", n_head);
    gguf_set_val_u32(g, "llama.attention.head_count_kv", n_head);
    gguf_set_val_u32(g, "llama.rope.dimension_count", n_embd / n_head);
    gguf_set_val_f32(g, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_set_val_u32(g, "general.file_type", 0);
    size_t floats = (size_t)n_vocab * n_embd * 2 + n_embd * 2 +
                    n_layer * ((size_t)4 * n_embd * n_embd + 3 * (size_t)n_embd * n_ff + 2 * n_embd);
    struct ggml_init_params ip = {floats * sizeof(float) + 64 * ggml_tensor_overhead(), NULL, false};
    struct ggml_context *ctx = ggml_init(ip);
    struct {
        const char *name;
        int64_t ne0, ne1;
    } t[] = {
        {"token_embd.weight", n_embd, n_vocab}, {"output_norm.weight", n_embd, 1},
        {"output.weight", n_embd, n_vocab},     {"blk.0.attn_norm.weight", n_embd, 1},
        {"blk.0.attn_q.weight", n_embd, n_embd}, {"blk.0.attn_k.weight", n_embd, n_embd},
        {"blk.0.attn_v.weight", n_embd, n_embd}, {"blk.0.attn_output.weight", n_embd, n_embd},
        {"blk.0.ffn_norm.weight", n_embd, 1},   {"blk.0.ffn_gate.weight", n_embd, n_ff},
        {"blk.0.ffn_up.weight", n_embd, n_ff},  {"blk.0.ffn_down.weight", n_ff, n_embd},
    };
    uint64_t s = seed * 2654435761u + 1;
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        struct ggml_tensor *w = t[k].ne1 == 1 ? ggml_new_tensor_1d(ctx, GGML_TYPE_F32, t[k].ne0)
                                              : ggml_new_tensor_2d(ctx, GGML_TYPE_F32, t[k].ne0, t[k].ne1);
        ggml_set_name(w, t[k].name);
        float *x = (float *)w->data;
        int norm = strstr(t[k].name, "norm") != NULL;
        for (int64_t q = 0; q < ggml_nelements(w); q++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            x[q] = norm ? 1.0f : ((float)(s >> 40) / (float)(1u << 24) - 0.5f) * 0.2f;
        }
        gguf_add_tensor(g, w);
    }
    int ok = gguf_write_to_file(g, path, false);
    gguf_free(g);
    gguf_free(src);
    ggml_free(ctx);
    if (!ok) fprintf(stderr, "tiny_gguf: cannot write %s\n", path);
    return ok ? 0 : -1;
}

static inline int tiny_gguf_write(const char *path, unsigned seed) {
    return tiny_gguf_write_ctx(path, seed, 4096);
}

#endif
