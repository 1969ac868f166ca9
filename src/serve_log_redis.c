/*
 * serve_log_redis.c - the redis kind of event log (serve_log.h): not built yet; --log
 * redis://... is recognised and refused with DR_ARG until it is.
 */
#include "serve_log.h"

static int rd_accepts(const char *spec) {
    return spec && (strncmp(spec, "redis://", 8) == 0 || strncmp(spec, "redis+unix://", 13) == 0);
}

static dr_status rd_open(const dr_log_params *p, dr_log **out, dr_error *err) {
    *out = NULL;
    return dr__fail(err, DR_ARG, "--log %s: the redis kind is not built yet", p->spec);
}

const dr_log_vt dr_log_redis_vt = {.name = "redis", .accepts = rd_accepts, .open = rd_open};
