/*
 * dataset.h - the in-memory dataset (internal layout) and the builder every loader feeds.
 *
 * DESIGN: loaders never build ids themselves. They push raw rows (external id strings, time,
 * weight, split tag) into a dr_builder; dr__builder_finish() stable-sorts by time (ties keep
 * push order = file order), remaps users and items to dense ids in order of first appearance
 * after the sort (../shared/PROTOCOL.md), appends catalogue-only items (metadata or features
 * with no interactions, when the loader asks for that) after them, and builds per-user
 * time-ordered histories. Metadata and features are attached afterwards by external id.
 * The alternative, remapping while parsing, gets the PROTOCOL order wrong whenever a file is
 * not time-sorted. The loaders and their detectors are declared from DR_FORMAT_TABLE, so a
 * new format's row is also its declaration.
 */
#ifndef DR_DATASET_H
#define DR_DATASET_H

#include "common.h"

#include <stdio.h>


enum { DR_TAG_NONE = 0, DR_TAG_TRAIN = 1, DR_TAG_VALID = 2, DR_TAG_TEST = 3 };

typedef struct dr_modality {
    char name[32];      /* "visual", "audio", "text", ... */
    uint32_t dim;
    float *x;           /* (n_items, dim) row-major; zero rows where missing */
    uint8_t *present;   /* (n_items) 1 = feature present */
} dr_modality;

struct dr_dataset {
    char name[64];          /* "ml-small", "amazon-mtv", "tiktok", "synth", or a basename */
    char *source;           /* path it was loaded from (may be NULL) */
    dr_format format;
    double time_scale;      /* seconds per time unit (1 = seconds, 0.001 = ms) */
    int has_given_split;    /* ev_tag carries train/valid/test */

    uint32_t n_users, n_items;
    size_t n_events;
    /* events stable-sorted by time, dense ids */
    uint32_t *ev_user;      /* (n_events) */
    uint32_t *ev_item;      /* (n_events) */
    int64_t *ev_time;       /* (n_events) in the dataset's time units */
    float *ev_weight;       /* (n_events) rating or 1 */
    uint8_t *ev_tag;        /* (n_events) DR_TAG_* */

    /* per-user histories in time order (CSR) */
    size_t *user_off;       /* (n_users + 1) */
    uint32_t *hist_item;    /* (n_events) */
    int64_t *hist_time;     /* (n_events) */
    uint32_t *hist_event;   /* (n_events) index into ev_* */

    dr_strtab users;        /* external ids, id = dense user */
    dr_strtab items;        /* external ids, id = dense item */

    /* item metadata */
    char **title;           /* (n_items) owned, NULL = none */
    dr_strtab attrs;        /* distinct "key=value" strings */
    size_t *item_attr_off;  /* (n_items + 1) CSR into item_attr, NULL = no attributes */
    uint32_t *item_attr;    /* attribute ids */

    int n_mod;
    dr_modality mod[DR_MAX_MODALITIES];

    dr_load_report report;

    /* set when the folder was exported from a server's log (manifest keys, serve_export.c):
     * the log position the data covers ("ms-seq", "" = none) and the records read from it */
    char log_covers[48];    /* DR_LOG_POS_MAX */
    uint64_t log_records;
};

/* ---- report helpers (used by every loader) */
/* Counts a skipped row and keeps the first few messages ("path:line: ..."). */
void dr__report_skip(dr_load_report *r, dr_skip_reason why, const char *fmt, ...) DR_PRINTF(3, 4);

/* ---- builder */
typedef struct dr_builder dr_builder;

dr_status dr__builder_create(dr_builder **out);
void dr__builder_free(dr_builder *b);
/* One interaction row, in file order. */
dr_status dr__builder_add_event(dr_builder *b, const char *user, size_t user_len,
                               const char *item, size_t item_len, int64_t time, float weight,
                               uint8_t tag);
/* Registers a catalogue item (e.g. from metadata or a feature file). Items with no events get
 * dense ids after all items with events, in registration order. */
dr_status dr__builder_add_item(dr_builder *b, const char *item, size_t len);
/* Builds the dataset (takes ownership of nothing; b can be freed afterwards). */
dr_status dr__builder_finish(dr_builder *b, dr_dataset **out, dr_error *err);

/* ---- dataset helpers */
dr_dataset *dr__dataset_alloc(void);            /* zeroed, or NULL */
/* Sets item i's title (copied). */
dr_status dr__dataset_set_title(dr_dataset *ds, uint32_t i, const char *s, size_t n);
/* Attributes: pass all (item, "key=value") pairs, then build the CSR once. */
typedef struct dr_attr_pair { uint32_t item, attr; } dr_attr_pair;
dr_status dr__dataset_set_attrs(dr_dataset *ds, dr_attr_pair *pairs, size_t n, dr_error *err);
/* Adds a modality (copies x (n_items, dim) and present (n_items)). */
dr_status dr__dataset_add_modality(dr_dataset *ds, const char *name, uint32_t dim,
                                  const float *x, const uint8_t *present, dr_error *err);

/* ---- the folder format's writers (load_dynrec.c), shared by dr_dataset_save and the server's
 * export (serve_export.c), so the escapes, headers and manifest keys exist once */
typedef struct dr_manifest_info {
    const char *name;
    double time_scale;
    int has_given_split;
    uint32_t n_users, n_items;
    size_t n_events;
    int n_mod;
    const char *const *modalities; /* (n_mod) names */
    const char *log_covers;        /* NULL or "": not exported from a server's log */
    uint64_t log_records;
} dr_manifest_info;
extern const char dr__dynrec_interactions_header[]; /* "user<TAB>item<TAB>time<TAB>weight<TAB>split\n" */
extern const char dr__dynrec_items_header[];        /* "item<TAB>title<TAB>attributes\n" */
/* One field with the format's escapes (tab, newline, CR, backslash, pipe). */
void dr__dynrec_put_esc(FILE *f, const char *s);
void dr__dynrec_event_row(FILE *f, const char *user, const char *item, int64_t time, float weight,
                          uint8_t tag);
/* An items.tsv line; attribute k is strs[idx ? idx[k] : k]; title may be NULL. */
void dr__dynrec_item_row(FILE *f, const char *item, const char *title, const char *const *strs,
                         const uint32_t *idx, size_t n);
/* dir/file opened for writing; dr__dynrec_close flushes, closes, frees *path (DR_IO on a
 * failed write). */
dr_status dr__dynrec_open(const char *dir, const char *file, char **path, FILE **f, dr_error *err);
dr_status dr__dynrec_close(char **path, FILE **f, dr_error *err);
dr_status dr__dynrec_write_manifest(const char *dir, const dr_manifest_info *m, dr_error *err);
/* features/NAME.npy (rows, dim) and features/NAME.present.npy, the folder created. */
dr_status dr__dynrec_write_features(const char *dir, const char *name, const float *x,
                                    const uint8_t *present, uint32_t rows, uint32_t dim,
                                    dr_error *err);
/* A modality name usable as a file name: [A-Za-z0-9_.-], not starting with '.', < 32 bytes. */
bool dr__modality_name_ok(const char *s, size_t n);

/* ---- .npy (NumPy format 1.0/2.0/3.0, little-endian '<f2' '<f4' '<f8' '|u1' '|b1', C order) */
typedef struct dr_npy {
    uint32_t rows, cols;     /* 1-D arrays have cols = 1 */
    float *data;             /* (rows, cols) converted to float32 */
} dr_npy;
dr_status dr__npy_read(const char *path, size_t max_bytes, dr_npy *out, dr_error *err);
dr_status dr__npy_parse(const char *buf, size_t len, const char *name, dr_npy *out, dr_error *err);
dr_status dr__npy_write_f32(const char *path, const float *x, uint32_t rows, uint32_t cols,
                           dr_error *err);
dr_status dr__npy_write_u8(const char *path, const uint8_t *x, uint32_t rows, dr_error *err);
void dr__npy_free(dr_npy *a);

/* ---- per-format detectors and loaders, declared from DR_FORMAT_TABLE (dynrec.h), which
 * dr_dataset_load (load.c) dispatches through. For each row with a loader:
 *   bool detect(const char *path): DR_FMT_AUTO asks whether path (an existing folder or file,
 *       as the row says) is in this format; rows are asked in table order, the first yes wins;
 *   dr_status load(const char *path, p, out, err): fills *out or fails with "file:line: why".
 * A new format: its two functions in a file of its own (load_NAME.c, with load_common.h for the
 * steps the loaders share) and a row. */
#define DR__FMT_DECL(code, value, name, reads, detect, load) DR__FMT_DECL_##reads(detect, load)
#define DR__FMT_DECL_NONE(detect, load)
#define DR__FMT_DECL_FOLDER(detect, load)                                                    \
    bool detect(const char *path);                                                           \
    dr_status load(const char *path, const dr_load_params *p, dr_dataset **out, dr_error *err);
#define DR__FMT_DECL_FILE DR__FMT_DECL_FOLDER
DR_FORMAT_TABLE(DR__FMT_DECL)
#undef DR__FMT_DECL
#undef DR__FMT_DECL_NONE
#undef DR__FMT_DECL_FOLDER
#undef DR__FMT_DECL_FILE

/* Buffer-level parsers (the fuzz targets call these): parse `buf` as if read from `name`,
 * pushing rows into b and counting problems in r. */
dr_status dr__parse_delimited(const char *buf, size_t len, const char *name,
                             const dr_load_params *p, uint8_t tag, dr_builder *b,
                             dr_load_report *r, dr_error *err);
dr_status dr__parse_amazon_json(const char *buf, size_t len, const char *name,
                               const dr_load_params *p, dr_builder *b, dr_load_report *r,
                               dr_error *err);

#endif /* DR_DATASET_H */
