/* fuzz_align.c - libFuzzer target for dr__align_parse (.align files): any input either loads
 * into a map whose projection is finite or fails cleanly. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "llm_align.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dr_align *a = NULL;
    dr_error err = {0};
    if (dr__align_parse((const char *)data, size, "fuzz", &a, &err) == DR_OK) {
        uint32_t d = dr_align_dim(a), e = dr_align_n_embd(a);
        float *x = calloc(d, sizeof *x), *y = calloc(e, sizeof *y);
        if (x && y) {
            dr_align_project(a, x, y);
            volatile float sink = 0;
            for (uint32_t k = 0; k < e; k++) sink += y[k];
            (void)sink;
        }
        free(x);
        free(y);
    }
    dr_align_free(a);
    return 0;
}
