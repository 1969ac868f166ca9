/*
 * serve_log_kinds.c - the registry of event log kinds: opens the kind whose accepts() takes
 * the spec, walking DR_LOG_TABLE (serve_log.h). Apart from serve_log.c for the same reason
 * as model_kinds.c: every kind calls serve_log.c, so only a file of its own may name them.
 */
#include "serve_log.h"

static const dr_log_vt *const kinds[] = {
#define DR_LOG_ROW(name, vt) &vt,
    DR_LOG_TABLE(DR_LOG_ROW)
#undef DR_LOG_ROW
};

dr_status dr__log_open(const dr_log_params *p, dr_log **out, dr_error *err) {
    if (!p || !out) return dr__fail(err, DR_ARG, "log: NULL argument");
    *out = NULL;
    const char *spec = p->spec ? p->spec : "sqlite";
    for (size_t k = 0; k < DR_ARRAY_LEN(kinds); k++)
        if (kinds[k]->accepts(spec)) {
            dr_log_params q = *p;
            q.spec = spec;
            return kinds[k]->open(&q, out, err);
        }
    return dr__fail(err, DR_ARG,
                    "--log: expected sqlite, redis://HOST:PORT[/STREAM] or "
                    "redis+unix:///PATH[?stream=S] (got '%s')", spec);
}

void dr__log_close(dr_log *l) {
    if (l) l->vt->close(l);
}
