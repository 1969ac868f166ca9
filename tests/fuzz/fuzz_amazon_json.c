/* fuzz_amazon_json.c - libFuzzer target for dr__parse_amazon_json (reviews JSON lines). The
 * first byte picks strict mode and the line cap; the rest is the file. */
#include <stdint.h>

#include "dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dr_load_params p = dr_load_default_params();
    dr_load_report r = {0};
    dr_builder *b = NULL;
    dr_dataset *ds = NULL;
    dr_error err = {0};
    uint8_t opt = size ? data[0] : 0;
    p.strict = opt & 1;
    p.max_line = opt & 2 ? 64 : 1 << 16;
    if (size) data++, size--;
    if (dr__builder_create(&b) != DR_OK) return 0;
    if (dr__parse_amazon_json((const char *)data, size, "fuzz", &p, b, &r, &err) == DR_OK) {
        if (r.rows_ok == 0 || dr__builder_finish(b, &ds, &err) != DR_OK) __builtin_trap();
        dr_dataset_free(ds);
    }
    dr__builder_free(b);
    return 0;
}
