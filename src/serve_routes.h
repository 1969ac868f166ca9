/*
 * serve_routes.h - HTTP request handling without sockets (internal): routing, authentication, JSON
 * validation, responses and the Prometheus metrics. serve_http.c feeds it from libmicrohttpd; the
 * fuzz target (tests/fuzz/fuzz_http.c) feeds it directly. See serve_routes.c and docs/HTTP.md.
 */
#ifndef DR_SERVE_ROUTES_H
#define DR_SERVE_ROUTES_H

#include "serve_live.h"


typedef struct dr_routes_params {
    const char *api_key;   /* NULL = no authentication */
    int public_read;       /* with a key: GET requests need none */
    size_t max_body;       /* bytes; larger bodies get 413 (checked by the caller, serve_http.c) */
    const dr_model *model; /* dr__routes_create: the state's checkpoint, for explanations
                              (template generator); NULL = explanation routes answer 501.
                              dr__routes_create_live: unused (each generation has its own) */
    int exposed;           /* bound beyond loopback: POST /v1/admin/base needs an API key (403) */
    const char *llm_model; /* GGUF for ?rerank=llm (NULL: 501); each HTTP thread makes its
                              ranker on first use (llama.cpp maps the weights once) */
    const char *llm_align; /* .align file for it (NULL: titles only, lambda 0); loaded and
                              checked against the GGUF at start */
} dr_routes_params;

typedef struct dr_route_req {
    const char *method;    /* "GET", "POST", ... */
    const char *path;      /* decoded path without the query, e.g. /v1/users/u1/recommendations */
    const char *(*arg)(void *ud, const char *name); /* query argument or NULL */
    void *arg_ud;
    const char *auth;      /* Authorization header or NULL */
    const char *body;      /* may hold any bytes; not NUL-terminated */
    size_t body_len;
    const char *idem_key;  /* Idempotency-Key header or NULL */
} dr_route_req;

typedef struct dr_route_resp {
    int status;
    const char *content_type;
    const char *body;      /* into the worker; valid until its next request */
    size_t len;
} dr_route_resp;

typedef struct dr_routes dr_routes;
typedef struct dr_routes_worker dr_routes_worker;

/* Routes over the live layer (base swaps; serve_http.c) ... */
dr_status dr__routes_create_live(dr_live *live, const dr_routes_params *p, dr_routes **out,
                                 dr_error *err);
/* ... or over one state the caller keeps open (tests, the fuzzer: no swaps). */
dr_status dr__routes_create(dr_srv *srv, const dr_routes_params *p, dr_routes **out, dr_error *err);
void dr__routes_free(dr_routes *r);
dr_status dr__routes_worker_create(dr_routes *r, dr_routes_worker **out, dr_error *err);
void dr__routes_worker_free(dr_routes_worker *w);

/* Handles one request; always fills resp (4xx/5xx with {"error": "..."} on bad input).
 * Blocks in write requests until their group commit is done. */
void dr__routes_handle(dr_routes *r, dr_routes_worker *w, const dr_route_req *req,
                      dr_route_resp *resp);

/* The same in three steps, so that a write request does not hold a thread while it waits:
 * start validates; for a valid write request it sets *pending (resp is not filled) and the
 * body bytes of req are no longer needed; submit queues it (done(ud) is called on the writer
 * thread when it is durable and applied, or at once when refused; done = NULL waits instead);
 * finish fills resp (any worker) and frees pending. Without *pending, resp is the answer. */
typedef struct dr_routes_pending dr_routes_pending;
void dr__routes_start(dr_routes *r, dr_routes_worker *w, const dr_route_req *req,
                     dr_route_resp *resp, dr_routes_pending **pending);
void dr__routes_submit(dr_routes *r, dr_routes_pending *p, dr_srv_done_fn done, void *ud);
void dr__routes_finish(dr_routes *r, dr_routes_worker *w, dr_routes_pending *p,
                      dr_route_resp *resp);
/* Frees a pending request without answering it (after done was called); NULL is a no-op. */
void dr__routes_pending_free(dr_routes_pending *p);
/* A response the caller produced itself (413 before the body was read): fills resp with the
 * JSON error and counts it in the metrics. */
void dr__routes_reject(dr_routes *r, dr_routes_worker *w, int status, const char *msg,
                      dr_route_resp *resp);
size_t dr__routes_max_body(const dr_routes *r);
/* Live statistics (serve_stats.c): every answered request is counted there, and GET /v1/stats
 * and /v1/stats/series read them (NULL, the default: off; those routes then say so). st must
 * outlive the routes. */
void dr__routes_set_stats(dr_routes *r, dr_stats *st);

#endif /* DR_SERVE_ROUTES_H */
