/*
 * fuzz_folders - the folder loaders (MovieLens, Amazon CSV, TikTok, dynrec) on arbitrary
 * files. The first byte picks the format; the rest is cut at "\n--8<--\n" into that format's
 * files, written to a private temporary folder, then loaded with dr_dataset_load. A load
 * must end in DR_OK or a clean error, never a crash or a leak.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dynrec.h"

static const char *const files[4][5] = {
    {"ratings.csv", "movies.csv", "tags.csv", NULL, NULL},
    {"train.csv", "validation.csv", "test.csv", NULL, NULL},
    {"train.tsv", "valid.tsv", "test.tsv", "image_feat.npy", "audio_feat.npy"},
    {"interactions.tsv", "manifest.tsv", "items.tsv", "features/visual.npy",
     "features/visual.present.npy"},
};
static const dr_format formats[4] = {DR_FMT_MOVIELENS, DR_FMT_AMAZON_CSV, DR_FMT_TIKTOK,
                                     DR_FMT_DYNREC};

static char dir[256];

static void cleanup(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "fuzz_folders: could not remove %s\n", dir);
}

static void write_part(const char *name, const uint8_t *p, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return;
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/dynrec-fuzz-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(dir)) abort();
        atexit(cleanup);
        char sub[300];
        snprintf(sub, sizeof sub, "%s/features", dir);
        mkdir(sub, 0700);
    }
    if (size < 1) return 0;
    int k = data[0] % 4;
    for (int f = 0; f < 5; f++) { /* remove the previous input's files */
        char path[512];
        if (!files[k][f]) continue;
        for (int j = 0; j < 4; j++) {
            if (!files[j][f]) continue;
            snprintf(path, sizeof path, "%s/%s", dir, files[j][f]);
            unlink(path);
        }
    }
    const uint8_t *p = data + 1, *end = data + size;
    static const char sep[] = "\n--8<--\n";
    for (int f = 0; f < 5 && files[k][f]; f++) {
        const uint8_t *cut = p < end ? memmem(p, (size_t)(end - p), sep, sizeof sep - 1) : NULL;
        size_t n = cut ? (size_t)(cut - p) : (size_t)(end - p);
        if (p < end || f == 0) write_part(files[k][f], p, n);
        p = cut ? cut + sizeof sep - 1 : end;
    }
    dr_load_params lp = dr_load_default_params();
    lp.format = formats[k];
    lp.max_file = 1 << 20;
    dr_dataset *ds = NULL;
    dr_error e = {0};
    if (dr_dataset_load(dir, &lp, &ds, &e) == DR_OK) {
        dr_dataset_stats st;
        dr_dataset_get_stats(ds, &st);
        dr_dataset_free(ds);
    }
    return 0;
}
