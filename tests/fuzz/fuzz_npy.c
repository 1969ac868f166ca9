/* fuzz_npy.c - libFuzzer target for dr__npy_parse: any input either parses into a
 * rows x cols array or fails cleanly. */
#include <stdint.h>

#include "dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dr_npy a;
    dr_error err = {0};
    if (dr__npy_parse((const char *)data, size, "fuzz", &a, &err) == DR_OK) {
        volatile float sink = 0;
        for (size_t k = 0; k < (size_t)a.rows * a.cols; k++) sink += a.data[k];
        (void)sink;
    }
    dr__npy_free(&a);
    return 0;
}
