/*
 * load_lines.c - the shared line walk of the text loaders (see load_lines.h).
 *
 * DESIGN: the loaders used to carry a copy each (the delimited field reader and
 * load_amazon_json.c's JSON-lines walk) that had to agree on BOM, CR, blank lines, limits and
 * message shape; this is the one copy. It hands out raw lines and leaves splitting to the
 * caller, so the delimited splitter and jansson sit on top of the same rules.
 */
#include "load_lines.h"

#include <stdio.h>

void dr__lines_init(dr_lines *it, const char *buf, size_t len, const char *name,
                   const dr_load_params *p, dr_load_report *r, dr_error *err) {
    *it = (dr_lines){name, p, r, err, DR_OK, buf, buf, buf + len, 0};
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) it->at += 3;
}

dr_status dr__lines_bad(dr_lines *it, dr_skip_reason why, const char *fmt, ...) {
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (it->p->strict && why != DR_SKIP_UNKNOWN && why != DR_SKIP_DUPLICATE)
        return dr__fail(it->err, DR_FORMAT, "%s:%zu: %s", it->name, it->no, msg);
    dr__report_skip(it->r, why, "%s:%zu: %s", it->name, it->no, msg);
    return DR_OK;
}

static bool is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t') return false;
    return true;
}

int dr__lines_next(dr_lines *it, const char **line, size_t *len) {
    while (it->at < it->end) {
        const char *s = it->at, *nl = memchr(s, '\n', (size_t)(it->end - s));
        size_t n = (size_t)((nl ? nl : it->end) - s);
        it->at = nl ? nl + 1 : it->end;
        it->no++;
        if (it->p->progress && (it->no & 0xffff) == 0)
            it->p->progress(it->p->progress_ud, "load", (size_t)(it->at - it->buf),
                            (size_t)(it->end - it->buf));
        if (n && s[n - 1] == '\r') n--;
        if (is_blank(s, n)) continue;
        it->r->rows_read++;
        dr_status st;
        if (n > it->p->max_line) {
            st = dr__lines_bad(it, DR_SKIP_TOO_LONG, "line of %zu bytes is over the limit of %zu",
                              n, it->p->max_line);
        } else if (!dr__utf8_valid(s, n)) {
            st = dr__lines_bad(it, DR_SKIP_ENCODING, "invalid UTF-8 or NUL byte");
        } else {
            *line = s;
            *len = n;
            return 1;
        }
        if (st != DR_OK) {
            it->status = st;
            return -1;
        }
    }
    return 0;
}
