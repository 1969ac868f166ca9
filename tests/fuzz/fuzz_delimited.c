/* fuzz_delimited.c - libFuzzer target for dr__parse_delimited. The first byte picks the
 * options (strict, header mode, delimiter, column layout); the rest is the file. Accepted
 * input is built into a dataset so the builder sees it too. */
#include <stdint.h>

#include "dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dr_load_params p = dr_load_default_params();
    dr_load_report r = {0};
    dr_builder *b = NULL;
    dr_dataset *ds = NULL;
    dr_error err = {0};
    uint8_t opt = size ? data[0] : 0;
    static const char delims[] = {0, '\t', ',', ';'};
    p.strict = opt & 1;
    p.header = (int)((opt >> 1) % 3) - 1;
    p.delimiter = delims[(opt >> 3) & 3];
    if (opt & 0x20) p.col_weight = -1;
    if (opt & 0x40) p.col_time = -1, p.col_user = 1, p.col_item = 0;
    p.max_line = opt & 0x80 ? 32 : 4096;
    if (size) data++, size--;
    if (dr__builder_create(&b) != DR_OK) return 0;
    if (dr__parse_delimited((const char *)data, size, "fuzz", &p, DR_TAG_TRAIN, b, &r, &err) ==
        DR_OK) {
        if (r.rows_ok == 0 || dr__builder_finish(b, &ds, &err) != DR_OK) __builtin_trap();
        dr_dataset_free(ds);
    }
    dr__builder_free(b);
    return 0;
}
