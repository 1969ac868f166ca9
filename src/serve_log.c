/*
 * serve_log.c - what every kind of event log shares (serve_log.h): the default parameters and
 * log positions (format, parse, order). The registry that opens a kind by its spec is
 * serve_log_kinds.c: every kind calls this file, so this file cannot name the kinds.
 */
#include "serve_log.h"

#include <stdio.h>

dr_log_params dr__log_default_params(void) {
    dr_log_params p = {.spec = "sqlite", .dir = NULL, .durable = 1,
                       .dedup_ttl = DR_LOG_DEDUP_TTL_DEFAULT,
                       .timeout_ms = DR_LOG_TIMEOUT_MS_DEFAULT};
    return p;
}

void dr__log_pos_format(dr_log_pos p, char out[DR_LOG_POS_MAX]) {
    snprintf(out, DR_LOG_POS_MAX, "%llu-%llu", (unsigned long long)p.ms,
             (unsigned long long)p.seq);
}

/* Digits only, no sign, no overflow. */
static int parse_u64(const char *s, size_t n, uint64_t *out) {
    if (!n || n > 20) return -1;
    uint64_t v = 0;
    for (size_t k = 0; k < n; k++) {
        if (s[k] < '0' || s[k] > '9') return -1;
        unsigned d = (unsigned)(s[k] - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int dr__log_pos_parse(const char *s, dr_log_pos *out) {
    if (!s || !out) return -1;
    const char *dash = strchr(s, '-');
    dr_log_pos p = {0, 0};
    if (!dash) {
        if (parse_u64(s, strlen(s), &p.seq)) return -1;
    } else if (parse_u64(s, (size_t)(dash - s), &p.ms) ||
               parse_u64(dash + 1, strlen(dash + 1), &p.seq)) {
        return -1;
    }
    *out = p;
    return 0;
}

int dr__log_pos_cmp(dr_log_pos a, dr_log_pos b) {
    if (a.ms != b.ms) return a.ms < b.ms ? -1 : 1;
    if (a.seq != b.seq) return a.seq < b.seq ? -1 : 1;
    return 0;
}

/* ---- record kinds (DR_REC_TABLE) */

int dr__rec_fields(int kind) {
#define X(name, num, letter, fields, text) if (kind == num) return fields;
    DR_REC_TABLE(X)
#undef X
    return 0;
}

const char *dr__rec_letter(int kind) {
#define X(name, num, letter, fields, text) if (kind == num) return letter;
    DR_REC_TABLE(X)
#undef X
    return "?";
}

int dr__rec_kind_of(const char *c) {
#define X(name, num, letter, fields, text) if (c && strcmp(c, letter) == 0) return num;
    DR_REC_TABLE(X)
#undef X
    return -1;
}

const char *dr__rec_name(int kind) {
#define X(name, num, letter, fields, text) if (kind == num) return text;
    DR_REC_TABLE(X)
#undef X
    return "?";
}
