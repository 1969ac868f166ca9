/*
 * load_lines.h - the line walk every text loader shares (internal): load_common.c's field
 * splitter (CSV/TSV, MovieLens, Amazon CSV, TikTok, dynrec folders) and load_amazon_json.c (JSON
 * lines).
 *
 * DESIGN: one copy of the rules a line passes before a loader looks at it: a UTF-8 BOM is
 * skipped, a trailing CR stripped, blank lines (spaces and tabs only) skipped uncounted,
 * over-long lines and invalid UTF-8 counted as bad rows with "FILE:LINE: why" (or, in strict
 * mode, the load's error), progress reported every 65536 lines. What a line holds (delimited
 * fields, a JSON object) is the caller's business; it reports its own bad rows through
 * dr__lines_bad so that every message has the same shape. The buffer is the whole file (see
 * load_common.c for why).
 */
#ifndef DR_LOAD_LINES_H
#define DR_LOAD_LINES_H

#include "dataset.h"

typedef struct dr_lines {
    const char *name;       /* file name used in messages */
    const dr_load_params *p;
    dr_load_report *r;
    dr_error *err;
    dr_status status;       /* why dr__lines_next returned -1 */
    const char *buf, *at, *end;
    size_t no;              /* 1-based number of the current line */
} dr_lines;

void dr__lines_init(dr_lines *it, const char *buf, size_t len, const char *name,
                   const dr_load_params *p, dr_load_report *r, dr_error *err);

/* The next non-blank line that is within p->max_line and valid UTF-8, counted in r->rows_read:
 * 1 with *s, *n (without the line end), 0 at the end, -1 when a bad line failed a strict load
 * (it->status, it->err). Lines that are too long or not UTF-8 are counted bad and skipped. */
int dr__lines_next(dr_lines *it, const char **s, size_t *n);

/* A bad row of the current line: counted with "file:line: why" or, in strict mode, the load's
 * error (returned). Metadata for unknown items and duplicates are not malformed rows and never
 * fail a strict load. */
dr_status dr__lines_bad(dr_lines *it, dr_skip_reason why, const char *fmt, ...) DR_PRINTF(3, 4);

#endif /* DR_LOAD_LINES_H */
