/*
 * load_common.h - what the dataset loaders (load_*.c) share, implemented in load_common.c
 * (internal): a line of load_lines.c split into delimited fields (dr_fields; fields are spans
 * into the file's buffer), reading a file or a folder's files through the delimited row parser
 * (dr__parse_delimited, declared in dataset.h for the fuzz targets), finishing a builder into a
 * dataset, collecting item attributes, and dr__dir_has for the detectors.
 *
 * DESIGN: one internal header for the loaders' common steps rather than one per piece: most
 * loaders need most of them, and none of them needs a loader or the format table, so
 * load_common.c sits below every load_*.c and load.c (the table) above them, with no
 * cycle (scripts/cycles.sh). A step only one format uses stays static in that format's file.
 */
#ifndef DR_LOAD_COMMON_H
#define DR_LOAD_COMMON_H

#include "load_lines.h"

typedef struct dr_span {
    const char *s;
    size_t n;
} dr_span;

/* A line of load_lines.c split into fields. */
typedef struct dr_fields {
    dr_lines ln;               /* the line walk: name, line number, report, status */
    char delim;                /* 0: detect on the first non-blank line */
    bool quotes;               /* CSV mode: minimal quoting, spaces around fields trimmed */
    size_t nf;                 /* fields of the current row (may exceed DR_LOAD_MAX_FIELDS) */
    dr_span f[DR_LOAD_MAX_FIELDS];
    DR_VEC(char) unq;          /* unescaped quoted fields of the current row */
} dr_fields;

/* Starts a walk over buf[0..len) named `name` in messages; delim 0 detects the delimiter on
 * the first non-blank line; quotes: CSV quoting and trimming (else fields are taken as is). */
void dr__fields_init(dr_fields *rd, const char *buf, size_t len, const char *name,
                    const dr_load_params *p, dr_load_report *r, dr_error *err, char delim,
                    bool quotes);
/* Next non-blank line, split: 1 = a row in rd->f, 0 = end, -1 = error (rd->ln.status and
 * its err). Over-long lines, invalid UTF-8 and broken quoting are counted as bad rows and
 * skipped. */
int dr__fields_next(dr_fields *rd);
void dr__fields_free(dr_fields *rd);

/* s[0..n) without leading and trailing spaces. */
dr_span dr__span_trim(const char *s, size_t n);
/* a equals the string s. */
bool dr__span_eq(dr_span a, const char *s);
/* a is a 64-bit integer. */
bool dr__span_int(dr_span a);
/* a is a finite number that fits a float: *w. */
bool dr__parse_weight(dr_span a, float *w);

/* DR_NOMEM with "what: out of memory". */
dr_status dr__loader_oom(dr_error *err, const char *what);

/* Reads the file at path (p->max_file) and parses it with dr__parse_delimited. */
dr_status dr__read_parse(const char *path, const dr_load_params *p, uint8_t tag, dr_builder *b,
                        dr_load_report *r, dr_error *err);
/* Reads dir/file for each of n files, in order, with the given tags; optional_rest: files
 * after the first are skipped when missing. */
dr_status dr__read_parse_files(const char *dir, const char *const *files, const uint8_t *tags,
                              size_t n, bool optional_rest, const dr_load_params *p,
                              dr_builder *b, dr_load_report *r, dr_error *err);
/* Last path component, optionally without its extension. */
void dr__base_name(const char *path, bool strip_ext, char *out, size_t cap);
/* Finishes the builder and sets the fields every loader sets. */
dr_status dr__loader_build(dr_builder *b, const dr_load_report *rep, const char *source,
                          dr_format f, const char *name, double time_scale, dr_dataset **out,
                          dr_error *err);

/* Item attributes collected while reading metadata; set on the dataset once at the end. */
typedef struct dr_attr_acc {
    DR_VEC(dr_attr_pair) pairs;
    DR_VEC(char) kv; /* "key=value" scratch */
} dr_attr_acc;

/* Records attribute "key=v" (or just v when key is NULL) for item; lower: ASCII lower case. */
dr_status dr__attr_acc_add(dr_dataset *ds, dr_attr_acc *a, uint32_t item, const char *key,
                          const char *v, size_t n, bool lower);
void dr__attr_acc_free(dr_attr_acc *a);
/* Sets the collected attributes on ds (if any) and frees a. */
dr_status dr__attr_acc_finish(dr_dataset *ds, dr_attr_acc *a, dr_error *err);

/* For detectors: dir/file exists. */
bool dr__dir_has(const char *dir, const char *file);

#endif /* DR_LOAD_COMMON_H */
