/*
 * fuzz_format.c - libFuzzer target for the checkpoint container reader (src/ckpt.c).
 * Each input is opened twice: with the checksum verified (what dr__ckpt_open does) and with it
 * skipped, so mutations reach the table and metadata checks. Every section an open accepts
 * is read end to end and looked up by name, so a bounds bug shows up under ASan.
 */
#include "ckpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static volatile uint64_t sink;
    for (unsigned flags = 0; flags <= DR_CKPT_SKIP_CHECKSUM; flags++) {
        dr_ckpt *c = NULL;
        dr_error err = {0};
        if (dr__ckpt_open_buffer(data, size, "fuzz.drm", flags, &c, &err) != DR_OK) continue;
        for (uint32_t i = 0; i < dr__ckpt_n_sections(c); i++) {
            const dr_ckpt_section *s = dr__ckpt_section_at(c, i);
            const uint8_t *p = s->data;
            uint64_t acc = 0;
            for (uint64_t k = 0; k < s->size; k++) acc += p[k];
            const void *q = NULL;
            uint64_t shape[DR_CKPT_MAX_RANK];
            for (uint32_t k = 0; k < DR_CKPT_MAX_RANK; k++) shape[k] = DR_CKPT_ANY;
            if (dr__ckpt_find(c, s->name, (dr_dtype)s->dtype, s->rank, shape, &q, &err) != DR_OK ||
                q != s->data)
                __builtin_trap();
            sink += acc;
        }
        for (size_t i = 0; i < dr__ckpt_n_meta(c); i++) {
            const char *k, *v;
            dr__ckpt_meta_at(c, i, &k, &v);
            if (dr__ckpt_meta(c, k) != v) __builtin_trap();
            sink += strlen(v);
        }
        dr__ckpt_close(c);
    }
    return 0;
}
