/*
 * llm_align.h - the map from a base's latent space into an LLM's input-embedding space
 * (llm_align.c), the GGUF token-embedding table it learns towards, and the GGUF hash.
 */
#ifndef DR_LLM_ALIGN_H
#define DR_LLM_ALIGN_H

#include "common.h"

struct llama_vocab;

/* A GGUF's token-embedding tensor ("token_embd.weight") as stored, rows dequantised on
 * demand: for a quantised model that is a fraction of the f32 table. */
typedef struct dr_tokemb {
    uint8_t *raw;              /* (n_vocab, row_bytes) the tensor's bytes */
    size_t row_bytes;
    int type;                  /* enum ggml_type */
    uint32_t n_vocab, n_embd;
} dr_tokemb;

dr_status dr__tokemb_read(const char *gguf, dr_tokemb *te, dr_error *err);
void dr__tokemb_free(dr_tokemb *te);
/* out (n_embd) = row tok, dequantised; tok must be < n_vocab. */
void dr__tokemb_row(const dr_tokemb *te, int32_t tok, float *out);

/* A digest of the whole file (FNV over 1 MiB chunks, chained) and its size. */
dr_status dr__gguf_hash(const char *path, uint64_t *hash, uint64_t *size, dr_error *err);

/* Tokens of a title as the rerank prompt spells it (no special tokens, parse_special off);
 * returns the count (cut to cap), 0 for an empty title. */
int32_t dr__title_tokens(const struct llama_vocab *v, const char *title, int32_t *out, int32_t cap);

/*
 * The fit on arrays (tests plant a case here): z (n, zstride) inputs with d used, t (n, E)
 * targets, has (n) 1 = the item has a target. llm_hash / llm_size are recorded.
 */
dr_status dr__align_fit_arrays(const float *z, size_t zstride, uint32_t n, uint32_t d,
                              const float *t, const uint8_t *has, uint32_t E,
                              const dr_align_params *p, uint64_t llm_hash, uint64_t llm_size,
                              dr_align **out, dr_align_report *rep, dr_error *err);
/* Recall@k of each selected item's own target among the targets of all items with has = 1
 * (cosine of f(z_i) - c to t_j - c, c the mean of those targets; pessimistic ties). sel (n) NULL = every item with a target.
 * Allocates; -1 on out of memory. */
double dr__align_recall(const dr_align *a, const float *z, size_t zstride, uint32_t n,
                        const float *t, const uint8_t *has, const uint8_t *sel, uint32_t k);
/* The training loss (regression + w_con * contrastive) over all items with a target, in
 * batches of p->batch in item order: what the fit lowers (tests). */
double dr__align_loss(const dr_align *a, const float *z, size_t zstride, uint32_t n,
                      const float *t, const uint8_t *has, const dr_align_params *p);

/* A .align file's bytes (path names it in errors); dr_align_load reads the file and calls it. */
dr_status dr__align_parse(const char *buf, size_t len, const char *path, dr_align **out,
                          dr_error *err);

#endif /* DR_LLM_ALIGN_H */
