/*
 * serve_routes.c - the HTTP API over the serving core, without sockets (see docs/HTTP.md).
 *
 * DESIGN: a request is a plain struct (method, decoded path, query lookup, Authorization, body
 * bytes) and a response is a status and a body in the worker's buffer, so the same code runs
 * behind libmicrohttpd (serve_http.c) and under the fuzzer. Routes are one table, ROUTE_TABLE, a
 * row each (method, pattern such as /v1/users/{user}, metrics name, handler), as small HTTP
 * servers register handlers: the dispatcher splits the path on '/' and walks the rows, so 404,
 * 405, the path ids and the metrics' route names all come from the table, and a route is a
 * handler and a row (a write route's handler also names its submit/finish pair, write_ops). Ids
 * in the path and in bodies are checked (non-empty, <= 256 bytes, valid UTF-8, no control
 * characters) before they reach the core. Bodies are parsed with jansson (which rejects
 * invalid UTF-8, NUL in strings, duplicate keys with JSON_REJECT_DUPLICATES and numbers that
 * overflow); every field is type-checked, and a bad one gets 400 with an error naming it
 * ("events[3].time: expected an integer (UNIX seconds)"). Responses are written with
 * snprintf-style appends into a per-worker buffer that grows to the largest response and is
 * then reused: reads allocate nothing after warm-up; a write allocates its parsed body and a
 * pending record (dr__routes_start), which lives until its group commit is done, so the HTTP
 * layer can park the connection instead of a thread (dr__routes_submit / dr__routes_finish).
 * The API key is compared in constant time (every byte of the key is touched whatever the
 * input). Metrics are relaxed atomic counters: requests by route and status, latency
 * histograms by route, 401s; the core's statistics are read at scrape time.
 * Live statistics (serve_stats.c, dr__routes_set_stats): count() adds each answered request
 * to them; GET /v1/stats and /v1/stats/series read them; ?detail=1 on recommendations, users and
 * items adds what the dashboard shows (base score and rank beside the adapter's, recent history,
 * fusion gates, window figures, nearest items) and leaves the plain answers as they were.
 * Explanations (explain=true on recommendations, and /v1/users/{u}/items/{i}/explanation) are
 * written by one function, explain_into(), with a template explainer made when the routes are
 * created; without a model there is no explainer and both answer 501.
 * Rejected: generating JSON with jansson (an allocation per node per response) and
 * regular expressions as patterns (literal segments and {name} cover every route).
 */
#include "serve_routes.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>


/* ---------------------------------------------------------------- the routes
 * One row per route: method, path pattern, metrics name, handler. A pattern segment {name}
 * matches any one non-empty path segment; it must be a valid id (else 400 "name: why") and
 * is handed to the handler (route_call.id, in pattern order). GET rows answer HEAD too. The
 * dispatcher takes the first row whose pattern and method match; when patterns match but no
 * method does, 405 names the method of the last such row and counts under its name; no
 * pattern: 404 under "other". Rows are in the order of the /metrics output. */
#define ROUTE_TABLE(X)                                                                         \
    X("POST", "/v1/events",                                "events",          events_start)    \
    X("GET",  "/v1/users/{user}/recommendations",          "recommendations", get_recs)        \
    X("GET",  "/v1/users/{user}/items/{item}/explanation", "explanation",     explain_handler) \
    X("GET",  "/v1/users/{user}",                          "user",            get_user)        \
    X("PUT",  "/v1/items/{item}",                          "item_put",        item_start)      \
    X("GET",  "/v1/items/{item}",                          "item_get",        get_item)        \
    X("GET",  "/v1/state",                                 "state",           get_state)       \
    X("GET",  "/v1/stats",                                 "stats",           get_stats)       \
    X("GET",  "/v1/stats/series",                          "stats_series",    get_series)      \
    X("POST", "/v1/admin/base",                            "admin_base",      base_start)      \
    X("GET",  "/healthz",                                  "healthz",         get_health)      \
    X("GET",  "/metrics",                                  "metrics",         metrics_text)

enum {
#define COUNT(method, pattern, name, fn) +1
    R_OTHER = 0 ROUTE_TABLE(COUNT), /* = the number of rows: metrics of unrouted requests */
#undef COUNT
    R_COUNT
};
static const char *const route_name[R_COUNT] = {
#define NAME(method, pattern, name, fn) name,
    ROUTE_TABLE(NAME)
#undef NAME
    "other"};

/* ---------------------------------------------------------------- metrics */

static const int codes[] = {200, 201, 400, 401, 403, 404, 405, 409, 413, 500, 501, 503, 504, 507};
#define N_CODES (sizeof codes / sizeof codes[0])
static const double buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                 0.025,  0.05,    0.1,    0.25,  0.5,    1.0,   2.5};
#define N_BUCKETS (sizeof buckets / sizeof buckets[0])

typedef struct route_metrics {
    _Atomic uint64_t by_code[N_CODES + 1]; /* last: any other code */
    _Atomic uint64_t hist[N_BUCKETS + 1];  /* last: +Inf */
    _Atomic uint64_t sum_ns;
} route_metrics;

struct dr_routes {
    dr_live *live;          /* the served base (each request takes the current generation) */
    int owns_live;          /* dr__routes_create wrapped a state: free the wrapper */
    int exposed;            /* bound beyond loopback (admin routes need a key) */
    char *key;
    size_t key_len;
    int public_read;
    size_t max_body;
    route_metrics m[R_COUNT];
    _Atomic uint64_t unauthorized;
    double t_start;
    char *llm_model;        /* ?rerank=llm: the GGUF (NULL: 501) */
    dr_align *align;        /* its alignment (NULL: titles only, lambda 0) */
    float lambda;
    dr_stats *stats;        /* live statistics (dr__routes_set_stats; NULL: off) */
};

struct dr_routes_worker {
    dr_routes *r;
    dr_gen *g;              /* the generation of the request being handled */
    uint64_t sw_gen;        /* the generation sw and es were made for */
    dr_srv_worker *sw;
    dr_explain_session *es; /* made on the worker's first explanation */
    dr_llm_ranker *rk;      /* made on the worker's first ?rerank=llm, per generation */
    dr_explanation *xe;     /* (1) the explanation being written */
    char *xjson;            /* (DR_EXPLAIN_JSON_CAP) its JSON */
    char *buf;
    size_t len, cap;
    int oom;
    float *bscores;         /* (bcap) ?detail=1: every item's base score, made on first use */
    uint32_t bcap;
    uint32_t hist[DR_STATS_HISTORY]; /* GET /v1/users/{user}?detail=1 */
};


/* A routed request: the request, the {name} segments of its row's pattern (checked ids, in
 * order), the row (metrics) and the start time. A handler gets it with the routes, the worker
 * and the response: a read handler fills resp and returns NULL; a write handler returns its
 * pending request (or NULL with resp set). */
typedef struct route_call {
    const dr_route_req *rq;
    const char *id[DR_HTTP_MAX_SEGS];
    int route;
    double t0;
} route_call;

dr_status dr__routes_create(dr_srv *srv, const dr_routes_params *p, dr_routes **out, dr_error *err) {
    if (!srv || !p || !out) return dr__fail(err, DR_ARG, "routes: NULL argument");
    *out = NULL;
    dr_live *l = NULL;
    dr_status st = dr__live_wrap(srv, p->model, 1, &l, err);
    if (st != DR_OK) return st;
    if ((st = dr__routes_create_live(l, p, out, err)) != DR_OK) {
        dr__live_close(l);
        return st;
    }
    (*out)->owns_live = 1;
    return DR_OK;
}

dr_status dr__routes_create_live(dr_live *live, const dr_routes_params *p, dr_routes **out,
                                 dr_error *err) {
    if (!live || !p || !out) return dr__fail(err, DR_ARG, "routes: NULL argument");
    *out = NULL;
    if (p->api_key && (!*p->api_key || strlen(p->api_key) > DR_HTTP_MAX_KEY))
        return dr__fail(err, DR_ARG, "routes: the API key must have 1..%u bytes", DR_HTTP_MAX_KEY);
    dr_routes *r = dr__calloc(1, sizeof *r);
    if (!r) return dr__fail(err, DR_NOMEM, "routes: out of memory");
    r->live = live;
    r->exposed = p->exposed;
    r->public_read = p->public_read;
    r->max_body = p->max_body ? p->max_body : DR_HTTP_MAX_BODY_DEFAULT;
    r->t_start = dr__now_seconds();
    if (p->api_key) {
        r->key = dr__strdup(p->api_key);
        if (!r->key) {
            dr__free(r);
            return dr__fail(err, DR_NOMEM, "routes: out of memory");
        }
        r->key_len = strlen(r->key);
    }
    if (p->llm_model) {
        dr_status st = DR_OK;
        r->llm_model = dr__strdup(p->llm_model);
        if (!r->llm_model) st = dr__fail(err, DR_NOMEM, "routes: out of memory");
        if (st == DR_OK && p->llm_align) st = dr_align_load(p->llm_align, &r->align, err);
        if (st == DR_OK && r->align) st = dr_align_check_llm(r->align, p->llm_model, err);
        if (st == DR_OK && r->align) r->lambda = dr_align_lambda(r->align, NULL);
        if (st != DR_OK) {
            dr__routes_free(r);
            return st;
        }
    }
    *out = r;
    return DR_OK;
}

void dr__routes_free(dr_routes *r) {
    if (!r) return;
    if (r->owns_live) dr__live_close(r->live);
    dr__free(r->llm_model);
    dr_align_free(r->align);
    dr__free(r->key);
    dr__free(r);
}

size_t dr__routes_max_body(const dr_routes *r) { return r->max_body; }

void dr__routes_set_stats(dr_routes *r, dr_stats *st) { r->stats = st; }

dr_status dr__routes_worker_create(dr_routes *r, dr_routes_worker **out, dr_error *err) {
    if (!r || !out) return dr__fail(err, DR_ARG, "routes: NULL argument");
    *out = NULL;
    dr_routes_worker *w = dr__calloc(1, sizeof *w);
    if (!w) return dr__fail(err, DR_NOMEM, "routes: out of memory");
    w->r = r;
    w->cap = 4096;
    w->buf = dr__malloc(w->cap);
    dr_gen *g = dr__live_acquire(r->live);
    dr_status st = w->buf ? dr__srv_worker_create(g->srv, &w->sw, err)
                                   : dr__fail(err, DR_NOMEM, "routes: out of memory");
    w->sw_gen = g->id;
    dr__live_release(r->live, g);
    if (st != DR_OK) {
        dr__routes_worker_free(w);
        return st;
    }
    *out = w;
    return DR_OK;
}

void dr__routes_worker_free(dr_routes_worker *w) {
    if (!w) return;
    dr_explain_session_free(w->es);
    dr_llm_ranker_free(w->rk);
    dr__free(w->xe);
    dr__free(w->xjson);
    dr__srv_worker_free(w->sw);
    dr__free(w->buf);
    dr__free(w->bscores);
    dr__free(w);
}

static void count(dr_routes *r, int route, int status, double seconds) {
    route_metrics *m = &r->m[route];
    size_t c = N_CODES;
    for (size_t k = 0; k < N_CODES; k++)
        if (codes[k] == status) c = k;
    atomic_fetch_add_explicit(&m->by_code[c], 1, memory_order_relaxed);
    size_t b = 0;
    while (b < N_BUCKETS && seconds > buckets[b]) b++;
    atomic_fetch_add_explicit(&m->hist[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->sum_ns, (uint64_t)(seconds * 1e9), memory_order_relaxed);
    dr__stats_request(r->stats, seconds);
}

/* ---------------------------------------------------------------- output buffer */

static void out_reset(dr_routes_worker *w) {
    w->len = 0;
    w->oom = 0;
    w->buf[0] = 0;
}

static void out_reserve(dr_routes_worker *w, size_t more) {
    if (w->oom || w->len + more + 1 <= w->cap) return;
    size_t cap = w->cap;
    while (cap < w->len + more + 1) cap *= 2;
    char *nb = dr__realloc(w->buf, cap);
    if (!nb) {
        w->oom = 1;
        return;
    }
    w->buf = nb;
    w->cap = cap;
}

static void out_mem(dr_routes_worker *w, const char *s, size_t n) {
    out_reserve(w, n);
    if (w->oom) return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = 0;
}

#define out_lit(w, lit) out_mem((w), (lit), sizeof(lit) - 1)

static void out(dr_routes_worker *w, const char *fmt, ...) DR_PRINTF(2, 3);
static void out(dr_routes_worker *w, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(w->buf + w->len, w->cap - w->len, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (w->len + (size_t)n + 1 > w->cap) {
        out_reserve(w, (size_t)n);
        if (w->oom) return;
        va_start(ap, fmt);
        vsnprintf(w->buf + w->len, w->cap - w->len, fmt, ap);
        va_end(ap);
    }
    w->len += (size_t)n;
}

/* A JSON string; bytes that are not valid UTF-8 are replaced by U+FFFD. */
static void out_str(dr_routes_worker *w, const char *s) {
    out_lit(w, "\"");
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t run = 0;
        while (p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\') run++;
        if (run) {
            out_mem(w, (const char *)p, run);
            p += run;
            continue;
        }
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p++};
            out_mem(w, e, 2);
        } else if (*p < 0x20) {
            out(w, "\\u%04x", *p++);
        } else { /* a multi-byte sequence: copy it when valid */
            size_t n = *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : *p >= 0xc0 ? 2 : 1;
            size_t have = 0;
            while (have < n && p[have]) have++;
            if (have == n && n > 1 && dr__utf8_valid((const char *)p, n)) {
                out_mem(w, (const char *)p, n);
                p += n;
            } else {
                out_lit(w, "\xef\xbf\xbd");
                p++;
            }
        }
    }
    out_lit(w, "\"");
}

static void out_float(dr_routes_worker *w, float v) {
    if (isfinite(v)) out(w, "%.6g", (double)v);
    else out_lit(w, "null");
}

static void respond(dr_routes_worker *w, dr_route_resp *resp, int status) {
    resp->status = status;
    resp->content_type = "application/json";
    if (w->oom) {
        resp->status = 500;
        resp->body = "{\"error\":\"out of memory\"}";
        resp->len = strlen(resp->body);
        return;
    }
    resp->body = w->buf;
    resp->len = w->len;
}

static void error_resp(dr_routes_worker *w, dr_route_resp *resp, int status, const char *fmt, ...)
    DR_PRINTF(4, 5);
static void error_resp(dr_routes_worker *w, dr_route_resp *resp, int status, const char *fmt, ...) {
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    out_reset(w);
    out_lit(w, "{\"error\":");
    out_str(w, msg);
    out_lit(w, "}");
    respond(w, resp, status);
}

/* ---------------------------------------------------------------- validation */

/* NULL when s[0..n) is a usable id, else what is wrong with it. */
static const char *id_problem(const char *s, size_t n) {
    if (!n) return "must not be empty";
    if (n > DR_SRV_ID_MAX) return "longer than 256 bytes";
    if (!dr__utf8_valid(s, n)) return "invalid UTF-8";
    for (size_t k = 0; k < n; k++)
        if ((unsigned char)s[k] < 0x20 || s[k] == 0x7f) return "contains a control character";
    return NULL;
}

/* A string field of obj (required); NULL with the response set when bad. */
static const char *id_field(dr_routes_worker *w, dr_route_resp *resp, json_t *obj,
                            const char *where, const char *key) {
    json_t *v = json_object_get(obj, key);
    if (!v) {
        error_resp(w, resp, 400, "%s.%s: missing", where, key);
        return NULL;
    }
    if (!json_is_string(v)) {
        error_resp(w, resp, 400, "%s.%s: expected a string", where, key);
        return NULL;
    }
    const char *p = id_problem(json_string_value(v), json_string_length(v));
    if (p) {
        error_resp(w, resp, 400, "%s.%s: %s", where, key, p);
        return NULL;
    }
    return json_string_value(v);
}

static json_t *parse_body(dr_routes_worker *w, dr_route_resp *resp, const dr_route_req *rq) {
    if (!rq->body_len) {
        error_resp(w, resp, 400, "body: empty (a JSON object is expected)");
        return NULL;
    }
    json_error_t je;
    json_t *root = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!root) error_resp(w, resp, 400, "body: invalid JSON at line %d column %d: %s", je.line, je.column, je.text);
    return root;
}

/* ---------------------------------------------------------------- handlers */

/* {"item":ID,"title":TITLE of dense item i (the object left open for more fields). */
static void out_item_ref(dr_routes_worker *w, uint32_t i) {
    const char *title, *body;
    dr__srv_item_meta(w->g->srv, i, &title, &body);
    out_lit(w, "{\"item\":");
    out_str(w, dr__srv_item_name(w->g->srv, i));
    out_lit(w, ",\"title\":");
    out_str(w, title ? title : "");
}

/* A true/false query flag: 0 or 1, or -1 with the response set when it is neither. */
static int flag_arg(dr_routes_worker *w, dr_route_resp *resp, const dr_route_req *rq, const char *name) {
    const char *v = rq->arg ? rq->arg(rq->arg_ud, name) : NULL;
    if (!v || !strcmp(v, "false") || !strcmp(v, "0")) return 0;
    if (!strcmp(v, "true") || !strcmp(v, "1")) return 1;
    error_resp(w, resp, 400, "%s: must be true or false", name);
    return -1;
}

static int status_of(dr_status st) {
    switch (st) {
    case DR_LIMIT: return 507;
    case DR_UNSUPPORTED:
    case DR_IO: return 503;
    case DR_RANGE:
    case DR_ARG: return 400;
    default: return 500;
    }
}

/* How a write route's pending request is queued (done == NULL: wait for it; returns the
 * core's answer) and answered once it is durable. */
typedef struct write_ops {
    dr_status (*submit)(dr_routes *r, dr_routes_pending *p, dr_srv_done_fn done, void *ud);
    void (*finish)(dr_routes *r, dr_routes_worker *w, const dr_routes_pending *p,
                   dr_route_resp *resp);
} write_ops;

/* A validated write request waiting for its group commit. */
struct dr_routes_pending {
    const write_ops *ops;
    dr_live *live;
    dr_gen *g;            /* the generation the request was accepted by (held) */
    int own_result;       /* the op sets st/err itself (no ticket) */
    char *path;           /* POST /v1/admin/base: the checkpoint (owned), force, the outcome */
    int force;
    dr_status swap_st;
    dr_error swap_err;
    dr_swap_report rep;
    dr_srv_done_fn done_fn;
    void *done_ud;
    int route;
    double t0;
    json_t *root;         /* the parsed body: the event ids point into it */
    dr_srv_event *ev;     /* (n) */
    size_t n, n_feat;
    char *item, *body;    /* PUT: the item id (owned) and the canonical body (jansson's) */
    char **keys;          /* (n) idempotency keys (owned; NULL entries: none) */
    dr_srv_ticket *t;
    int async;
    dr_status st;         /* outcome */
    dr_error err;
    dr_srv_ack ack;
};

void dr__routes_pending_free(dr_routes_pending *p) {
    if (!p) return;
    json_decref(p->root);
    for (size_t k = 0; p->keys && k < p->n; k++) dr__free(p->keys[k]);
    dr__free(p->keys);
    dr__free(p->ev);
    dr__free(p->item);
    free(p->body); /* jansson's allocator */
    dr__srv_ticket_free(p->t);
    dr__free(p->path);
    dr__live_release(p->live, p->g);
    dr__free(p);
}

static dr_routes_pending *pending_new(dr_routes_worker *w, const route_call *c, dr_route_resp *resp,
                                      const write_ops *ops) {
    dr_routes_pending *p = dr__calloc(1, sizeof *p);
    if (p) p->t = dr__srv_ticket_create();
    if (!p || !p->t) {
        dr__free(p);
        error_resp(w, resp, 500, "out of memory");
        return NULL;
    }
    p->ops = ops;
    p->live = w->r->live;
    p->g = w->g;
    dr__live_hold(p->live, p->g);
    p->route = c->route;
    p->t0 = c->t0;
    return p;
}

static dr_status events_submit(dr_routes *r, dr_routes_pending *p, dr_srv_done_fn done, void *ud) {
    return done ? dr__srv_submit_async(p->g->srv, p->t, p->ev, p->n, done, ud, &p->err)
                : dr__srv_submit(p->g->srv, p->ev, p->n, &p->ack, &p->err);
}

static void events_finish(dr_routes *r, dr_routes_worker *w, const dr_routes_pending *p,
                          dr_route_resp *resp) {
    out_reset(w);
    out(w, "{\"accepted\":%zu,\"first_seq\":%llu,\"last_seq\":%llu,\"stream_id\":\"%s\","
        "\"events_total\":%llu}", p->n, (unsigned long long)p->ack.first_seq,
        (unsigned long long)p->ack.last_seq, p->ack.stream_id, (unsigned long long)p->ack.events_total);
    respond(w, resp, 200);
}

static const write_ops events_ops = {events_submit, events_finish};

/* The Idempotency-Key header: 1 when absent or usable, else 0 with the response set. */
static int idem_ok(dr_routes_worker *w, dr_route_resp *resp, const dr_route_req *rq) {
    const char *bad = rq->idem_key ? id_problem(rq->idem_key, strlen(rq->idem_key)) : NULL;
    if (bad) error_resp(w, resp, 400, "Idempotency-Key: %s", bad);
    return !bad;
}

/* "PREFIX" "a" (":" index when index >= 0), owned; NULL when out of memory. */
static char *make_key(const char *prefix, const char *a, long index) {
    size_t n = strlen(prefix) + strlen(a) + 24;
    char *k = dr__malloc(n);
    if (!k) return NULL;
    if (index >= 0) snprintf(k, n, "%s%s:%ld", prefix, a, index);
    else snprintf(k, n, "%s%s", prefix, a);
    return k;
}

/* POST /v1/events */
static dr_routes_pending *events_start(dr_routes *r, dr_routes_worker *w, const route_call *c,
                                       dr_route_resp *resp) {
    json_t *root = parse_body(w, resp, c->rq);
    if (!root) return NULL;
    dr_routes_pending *p = NULL;
    json_t *arr = NULL;
    int single = 0;
    if (json_is_array(root)) arr = root;
    else if (json_is_object(root) && json_object_get(root, "events")) {
        arr = json_object_get(root, "events");
        if (!json_is_array(arr)) {
            error_resp(w, resp, 400, "events: expected an array of events");
            goto fail;
        }
    } else if (json_is_object(root)) {
        single = 1;
    } else {
        error_resp(w, resp, 400, "body: expected an event object, {\"events\": [...]} or an array");
        goto fail;
    }
    size_t n = single ? 1 : json_array_size(arr);
    if (!n) {
        error_resp(w, resp, 400, "events: empty batch");
        goto fail;
    }
    if (n > DR_HTTP_MAX_EVENTS) {
        error_resp(w, resp, 413, "events: %zu events, at most %u per request", n, DR_HTTP_MAX_EVENTS);
        goto fail;
    }
    if (!idem_ok(w, resp, c->rq)) goto fail;
    if (!(p = pending_new(w, c, resp, &events_ops))) goto fail;
    p->root = root;
    p->n = n;
    if (!(p->ev = dr__calloc(n, sizeof *p->ev)) || !(p->keys = dr__calloc(n, sizeof *p->keys))) {
        error_resp(w, resp, 500, "out of memory");
        goto fail;
    }
    for (size_t k = 0; k < n; k++) {
        json_t *e = single ? root : json_array_get(arr, k);
        char where[48];
        if (single) snprintf(where, sizeof where, "event");
        else snprintf(where, sizeof where, "events[%zu]", k);
        if (!json_is_object(e)) {
            error_resp(w, resp, 400, "%s: expected an object", where);
            goto fail;
        }
        dr_srv_event *ev = &p->ev[k];
        if (!(ev->user = id_field(w, resp, e, where, "user"))) goto fail;
        if (!(ev->item = id_field(w, resp, e, where, "item"))) goto fail;
        json_t *t = json_object_get(e, "time");
        ev->has_time = t && !json_is_null(t);
        ev->time = 0;
        if (ev->has_time) {
            if (!json_is_integer(t) || json_integer_value(t) < 0 ||
                json_integer_value(t) > ((json_int_t)1 << 40)) {
                error_resp(w, resp, 400, "%s.time: expected an integer number of UNIX seconds in 0..2^40", where);
                goto fail;
            }
            ev->time = (int64_t)json_integer_value(t);
        }
        /* idempotency: the event's own id wins over the request's key */
        json_t *eid = json_object_get(e, "event_id");
        if (eid && !json_is_null(eid)) {
            const char *id = id_field(w, resp, e, where, "event_id");
            if (!id) goto fail;
            p->keys[k] = make_key("e:", id, -1);
        } else if (c->rq->idem_key) {
            p->keys[k] = make_key("r:", c->rq->idem_key, (long)k);
        }
        if ((eid && !json_is_null(eid)) || c->rq->idem_key) {
            if (!p->keys[k]) {
                error_resp(w, resp, 500, "out of memory");
                goto fail;
            }
            ev->key = p->keys[k];
        }
    }
    return p;
fail:
    if (p) dr__routes_pending_free(p);
    else json_decref(root);
    return NULL;
}

/* ---- explanations: the template generator over the checkpoint (its users, items, histories
 * and latents), so an answer depends on the model only, never on a half-applied event. Users
 * and items that arrived through the API after the checkpoint have no evidence yet. */

/* The model's user id of `user` when both it and dense item i belong to the checkpoint. */
static int model_pair(const dr_gen *g, const char *user, uint32_t i, uint32_t *u) {
    return i < dr_model_n_items(g->model) && dr_model_find_user(g->model, user, u) == DR_OK;
}

/* The explanation of (u, i) as JSON in w->xjson; *len its length. */
static dr_status explain_into(dr_routes_worker *w, uint32_t u, uint32_t i, size_t *len,
                              dr_error *err) {
    if (!w->es) {
        if (!w->xe) w->xe = dr__malloc(sizeof *w->xe);
        if (!w->xjson) w->xjson = dr__malloc(DR_EXPLAIN_JSON_CAP);
        if (!w->xe || !w->xjson) return dr__fail(err, DR_NOMEM, "explanation: out of memory");
        dr_status st = dr_explain_session_create(w->g->ex, &w->es, err);
        if (st != DR_OK) return st;
    }
    dr_status st = dr_explain(w->es, u, i, w->xe, err);
    if (st != DR_OK) return st;
    int n = dr_explanation_json(w->g->ex, w->xe, w->xjson, DR_EXPLAIN_JSON_CAP);
    if (n < 0 || (size_t)n >= DR_EXPLAIN_JSON_CAP)
        return dr__fail(err, DR_INTERNAL, "explanation: JSON larger than %u bytes", DR_EXPLAIN_JSON_CAP);
    *len = (size_t)n;
    return DR_OK;
}

/* GET /v1/users/{user}/items/{item}/explanation */
static dr_routes_pending *explain_handler(dr_routes *r, dr_routes_worker *w, const route_call *c,
                                          dr_route_resp *resp) {
    const char *user = c->id[0], *item = c->id[1];
    if (!w->g->ex) {
        error_resp(w, resp, 501, "explanations are not available: the server has no model");
        return NULL;
    }
    uint32_t i = dr__srv_find_item(w->g->srv, item), u;
    if (i == UINT32_MAX) {
        error_resp(w, resp, 404, "item: unknown");
        return NULL;
    }
    if (!model_pair(w->g, user, i, &u)) {
        error_resp(w, resp, 404, "explanation: user and item must both be in the model's "
                   "training data (new ones have no evidence yet)");
        return NULL;
    }
    size_t n;
    dr_error e = {0};
    dr_status st = explain_into(w, u, i, &n, &e);
    if (st != DR_OK) {
        error_resp(w, resp, status_of(st), "%s", e.msg);
        return NULL;
    }
    out_reset(w);
    out_mem(w, w->xjson, n);
    respond(w, resp, 200);
    return NULL;
}

/* GET /v1/users/{user}/recommendations */
static dr_routes_pending *get_recs(dr_routes *r, dr_routes_worker *w, const route_call *c,
                                   dr_route_resp *resp) {
    const dr_route_req *rq = c->rq;
    const char *user = c->id[0];
    uint32_t k = 10;
    const char *ks = rq->arg ? rq->arg(rq->arg_ud, "k") : NULL;
    if (ks && (!dr__parse_u32(ks, strlen(ks), &k) || k < 1 || k > DR_SRV_K_MAX)) {
        error_resp(w, resp, 400, "k: must be an integer in 1..%u", DR_SRV_K_MAX);
        return NULL;
    }
    const char *ex = rq->arg ? rq->arg(rq->arg_ud, "explain") : NULL;
    if (ex && strcmp(ex, "true") && strcmp(ex, "false") && strcmp(ex, "1") && strcmp(ex, "0")) {
        error_resp(w, resp, 400, "explain: must be true or false");
        return NULL;
    }
    int want_ex = ex && (!strcmp(ex, "true") || !strcmp(ex, "1"));
    const char *rr = rq->arg ? rq->arg(rq->arg_ud, "rerank") : NULL;
    if (rr && strcmp(rr, "llm") && strcmp(rr, "none")) {
        error_resp(w, resp, 400, "rerank: must be llm or none");
        return NULL;
    }
    int want_llm = rr && !strcmp(rr, "llm");
    int detail = flag_arg(w, resp, rq, "detail");
    if (detail < 0) return NULL;
    if (detail && (want_llm || k > DR_STATS_DETAIL_K_MAX)) {
        error_resp(w, resp, 400, "detail: only without rerank and with k <= %u", DR_STATS_DETAIL_K_MAX);
        return NULL;
    }
    if (want_llm && !r->llm_model) {
        error_resp(w, resp, 501, "LLM reranking is not available: start the server with --llm "
                   "(and --align)");
        return NULL;
    }
    if (want_llm && k > DR_LLM_RANK_MAX_CAND) {
        error_resp(w, resp, 400, "k: at most %u with rerank=llm", DR_LLM_RANK_MAX_CAND);
        return NULL;
    }
    if (want_ex && !w->g->ex) {
        error_resp(w, resp, 501, "explanations are not available: the server has no model");
        return NULL;
    }
    /* ?after=POS: read your writes on any replica (bounded by ?wait_ms) */
    const char *after = rq->arg ? rq->arg(rq->arg_ud, "after") : NULL;
    const char *wms = rq->arg ? rq->arg(rq->arg_ud, "wait_ms") : NULL;
    uint32_t wait_ms = DR_SRV_WAIT_MS_DEFAULT;
    if (wms && (!dr__parse_u32(wms, strlen(wms), &wait_ms) || wait_ms > DR_SRV_WAIT_MS_MAX)) {
        error_resp(w, resp, 400, "wait_ms: must be an integer in 0..%u", DR_SRV_WAIT_MS_MAX);
        return NULL;
    }
    if (after) {
        dr_log_pos want, have;
        if (dr__log_pos_parse(after, &want) != 0) {
            error_resp(w, resp, 400, "after: expected a stream id (\"MS-SEQ\" or \"SEQ\")");
            return NULL;
        }
        if (!dr__srv_wait_applied(w->g->srv, want, wait_ms, &have)) {
            char hs[DR_LOG_POS_MAX], ws[DR_LOG_POS_MAX];
            dr__log_pos_format(have, hs);
            dr__log_pos_format(want, ws);
            error_resp(w, resp, 504, "replica is behind: applied %s, asked %s", hs, ws);
            return NULL;
        }
    }
    dr_srv_recs rec;
    dr_error e = {0};
    dr_status st = DR_OK;
    if (want_llm && !w->rk) { /* the ranker over this generation's checkpoint */
        dr_llm_rank_params lp = dr_llm_rank_default_params();
        lp.llm_model = r->llm_model;
        lp.max_cand = DR_LLM_RERANK_TOP > k ? DR_LLM_RERANK_TOP : k;
        st = dr_llm_ranker_create(dr__srv_model(w->g->srv), NULL, r->align, &lp, &w->rk, &e);
        if (st != DR_OK) { /* the server's configuration, not the request */
            error_resp(w, resp, 500, "rerank: %s", e.msg);
            return NULL;
        }
    }
    if (st == DR_OK)
        st = want_llm ? dr__srv_recommend_llm(w->g->srv, w->sw, user, k, DR_LLM_RERANK_TOP, w->rk,
                                              r->lambda, &rec, &e)
                      : dr__srv_recommend(w->g->srv, w->sw, user, k, &rec, &e);
    if (st != DR_OK) {
        error_resp(w, resp, status_of(st), "%s", e.msg);
        return NULL;
    }
    uint32_t nb = 0; /* ?detail=1: every item's base score (the worker's scratch, made once) */
    if (detail && rec.known && !rec.popular) {
        dr_srv_stats ss;
        dr__srv_get_stats(w->g->srv, &ss);
        uint32_t need = ss.items - ss.new_items + ss.max_new_items;
        if (w->bcap < need) {
            dr__free(w->bscores);
            w->bcap = 0;
            if (!(w->bscores = dr__malloc((size_t)need * sizeof *w->bscores))) {
                error_resp(w, resp, 500, "out of memory");
                return NULL;
            }
            w->bcap = need;
        }
        if (!dr__srv_base_scores(w->g->srv, w->sw, user, w->bscores, w->bcap, &nb, &e)) nb = 0;
    }
    out_reset(w);
    out_lit(w, "{\"user\":");
    out_str(w, user);
    out(w, ",\"known\":%s,\"source\":\"%s\",\"items\":[", rec.known ? "true" : "false",
        rec.popular ? "popular" : rec.frozen ? "base" : "adapter");
    for (uint32_t j = 0; j < rec.n; j++) {
        const char *title, *body;
        dr__srv_item_meta(w->g->srv, rec.items[j], &title, &body);
        if (j) out_lit(w, ",");
        out_lit(w, "{\"item\":");
        out_str(w, dr__srv_item_name(w->g->srv, rec.items[j]));
        out_lit(w, ",\"score\":");
        out_float(w, rec.scores[j]);
        if (rec.reranked) {
            out_lit(w, ",\"base\":");
            out_float(w, rec.base[j]);
            out_lit(w, ",\"llm\":");
            out_float(w, rec.llm[j]);
        }
        if (title && *title) {
            out_lit(w, ",\"title\":");
            out_str(w, title);
        }
        if (detail && rec.items[j] < nb) { /* the base's score and rank against the adapter's */
            float bs = w->bscores[rec.items[j]];
            uint32_t above = 0;
            for (uint32_t q = 0; q < nb; q++) above += w->bscores[q] > bs;
            out_lit(w, ",\"base_score\":");
            out_float(w, bs);
            out_lit(w, ",\"adapter_score\":");
            out_float(w, rec.scores[j]);
            out(w, ",\"rank\":%u,\"base_rank\":%u,\"rank_change\":%lld", j + 1, above + 1,
                (long long)above + 1 - (long long)(j + 1));
        }
        out_lit(w, "}");
    }
    out_lit(w, "]");
    if (detail) out(w, ",\"detail\":%s", nb ? "true" : "false");
    if (want_llm) {
        out(w, ",\"rerank\":\"%s\",\"soft_tokens\":%s,\"lambda\":", rec.reranked ? "llm" : "none",
            r->align ? "true" : "false");
        out_float(w, r->lambda);
    }
    if (want_ex) { /* one per item, in order; null where the pair has no evidence yet */
        out_lit(w, ",\"explanations\":[");
        for (uint32_t j = 0; j < rec.n; j++) {
            uint32_t u;
            size_t n;
            if (j) out_lit(w, ",");
            if (model_pair(w->g, user, rec.items[j], &u) && explain_into(w, u, rec.items[j], &n, &e) == DR_OK)
                out_mem(w, w->xjson, n);
            else
                out_lit(w, "null");
        }
        out_lit(w, "]");
    }
    out_lit(w, "}");
    respond(w, resp, 200);
    return NULL;
}

/* GET /v1/state */
static dr_routes_pending *get_state(dr_routes *r, dr_routes_worker *w, const route_call *c,
                                    dr_route_resp *resp) {
    dr_srv_state st;
    dr_error e = {0};
    dr_status rc = dr__srv_state(w->g->srv, &st, &e);
    if (rc != DR_OK) {
        error_resp(w, resp, status_of(rc), "%s", e.msg);
        return NULL;
    }
    char id[DR_LOG_POS_MAX];
    dr__log_pos_format(st.last, id);
    out_reset(w);
    out(w, "{\"last_id\":\"%s\",\"records\":%llu,\"state_hash\":\"%016llx\"}", id,
        (unsigned long long)st.records, (unsigned long long)st.hash);
    respond(w, resp, 200);
    return NULL;
}

/* GET /v1/users/{user} */
static dr_routes_pending *get_user(dr_routes *r, dr_routes_worker *w, const route_call *c,
                                   dr_route_resp *resp) {
    const char *user = c->id[0];
    uint32_t hist, events;
    int detail = flag_arg(w, resp, c->rq, "detail");
    if (detail < 0) return NULL;
    if (!dr__srv_user_info(w->g->srv, user, &hist, &events)) {
        error_resp(w, resp, 404, "user: unknown");
        return NULL;
    }
    out_reset(w);
    out_lit(w, "{\"user\":");
    out_str(w, user);
    out(w, ",\"history\":%u,\"events\":%u", hist, events);
    if (detail) { /* the newest history items, oldest first, with titles */
        uint32_t total, n = dr__srv_user_history(w->g->srv, user, w->hist, DR_STATS_HISTORY, &total);
        out(w, ",\"recent_from\":%u,\"recent\":[", total - n);
        for (uint32_t k = 0; k < n; k++) {
            if (k) out_lit(w, ",");
            out_item_ref(w, w->hist[k]);
            out_lit(w, "}");
        }
        out_lit(w, "]");
    }
    out_lit(w, "}");
    respond(w, resp, 200);
    return NULL;
}

/* GET /v1/items/{item}?detail=1: the fusion's view (modalities, gates), the adapter's window
 * and the nearest items by base latent. */
static void item_detail(dr_routes_worker *w, uint32_t i) {
    dr_srv *srv = w->g->srv;
    const char *names[DR_MAX_MODALITIES];
    int present[DR_MAX_MODALITIES], trained;
    float gates[DR_MAX_MODALITIES];
    uint32_t nm = dr__srv_item_fusion(srv, i, names, present, gates, DR_MAX_MODALITIES, &trained);
    out(w, ",\"fused\":%s,\"features_in_training\":%s,\"modalities\":[", nm ? "true" : "false",
        trained ? "true" : "false");
    for (uint32_t m = 0; m < nm; m++) {
        if (m) out_lit(w, ",");
        out_lit(w, "{\"name\":");
        out_str(w, names[m]);
        out(w, ",\"present\":%s,\"gate\":", present[m] ? "true" : "false");
        out_float(w, gates[m]);
        out_lit(w, "}");
    }
    float cnt, trend;
    dr__srv_item_window(srv, i, &cnt, &trend);
    out(w, "],\"window\":{\"events\":%.0f,\"trend\":", (double)cnt);
    out_float(w, trend);
    out_lit(w, "},\"nearest\":[");
    uint32_t ni[DR_STATS_NEAREST];
    float ns[DR_STATS_NEAREST];
    uint32_t n = dr__srv_item_nearest(srv, w->sw, i, DR_STATS_NEAREST, ni, ns);
    for (uint32_t k = 0; k < n; k++) {
        if (k) out_lit(w, ",");
        out_item_ref(w, ni[k]);
        out_lit(w, ",\"similarity\":");
        out_float(w, ns[k]);
        out_lit(w, "}");
    }
    out_lit(w, "]");
}

/* GET /v1/stats: the dashboard's overview (one object: totals, rates, latency, live quality) */
static dr_routes_pending *get_stats(dr_routes *r, dr_routes_worker *w, const route_call *c,
                                    dr_route_resp *resp) {
    dr_srv_stats s;
    dr__srv_get_stats(w->g->srv, &s);
    dr_stats_overview o;
    dr__stats_overview(r->stats, &o);
    out_reset(w);
    out(w, "{\"stats\":%s,\"uptime_seconds\":%.3f,\"generation\":%llu,\"adapter\":%s,"
        "\"events_total\":%llu,\"log_records\":%llu,\"log_bytes\":%llu,\"adapter_updates\":%llu,"
        "\"users\":%u,\"items\":%u,\"new_users\":%u,\"new_items\":%u,\"clock\":%lld,"
        "\"requests_total\":%llu,\"events_per_s\":%.3f,\"requests_per_s\":%.3f,"
        "\"p50_ms\":%.4g,\"p99_ms\":%.4g",
        r->stats ? "true" : "false", dr__now_seconds() - r->t_start, (unsigned long long)w->g->id,
        dr__srv_adapter_params(w->g->srv, &(dr_adapter_params){0}) ? "true" : "false",
        (unsigned long long)s.events_total, (unsigned long long)s.log_records,
        (unsigned long long)s.log_bytes, (unsigned long long)s.adapter_updates, s.users, s.items,
        s.new_users, s.new_items, (long long)s.clock, (unsigned long long)o.requests_total,
        o.events_per_s, o.requests_per_s, o.p50_ms, o.p99_ms);
    if (r->stats)
        out(w, ",\"quality\":{\"rate\":%.6g,\"window\":%u,\"samples\":%llu,\"sampled_total\":%llu,"
            "\"hit10_base\":%.6f,\"hit10_adapter\":%.6f}", o.quality_rate, o.quality_window,
            (unsigned long long)o.q_samples, (unsigned long long)o.q_total, o.q_hit_base, o.q_hit_adapter);
    else
        out_lit(w, ",\"quality\":null");
    out_lit(w, "}");
    respond(w, resp, 200);
    return NULL;
}

/* GET /v1/stats/series[?since=UNIX_SECONDS]: the last hour at one second, as columns */
static dr_routes_pending *get_series(dr_routes *r, dr_routes_worker *w, const route_call *c,
                                     dr_route_resp *resp) {
    if (!r->stats) {
        error_resp(w, resp, 503, "statistics are off (dynrec serve --stats off)");
        return NULL;
    }
    const char *sv = c->rq->arg ? c->rq->arg(c->rq->arg_ud, "since") : NULL;
    int64_t since = INT64_MIN;
    if (sv && (!dr__parse_i64(sv, strlen(sv), &since) || since < 0)) {
        error_resp(w, resp, 400, "since: expected UNIX seconds (a non-negative integer)");
        return NULL;
    }
    out_reset(w);
    size_t need = dr__stats_series_json(r->stats, since, w->buf, w->cap);
    if (need > w->cap) { /* rows may arrive between the two calls: ask again with room */
        out_reserve(w, need + 4096);
        if (!w->oom) need = dr__stats_series_json(r->stats, since, w->buf, w->cap);
    }
    if (!w->oom && need <= w->cap) w->len = need - 1;
    else w->oom = 1;
    respond(w, resp, 200);
    return NULL;
}

/* GET /v1/items/{item} */
static dr_routes_pending *get_item(dr_routes *r, dr_routes_worker *w, const route_call *c,
                                   dr_route_resp *resp) {
    const char *item = c->id[0];
    int detail = flag_arg(w, resp, c->rq, "detail");
    if (detail < 0) return NULL;
    uint32_t i = dr__srv_find_item(w->g->srv, item);
    if (i == UINT32_MAX) {
        error_resp(w, resp, 404, "item: unknown");
        return NULL;
    }
    dr_srv_stats s;
    dr__srv_get_stats(w->g->srv, &s);
    const char *title, *body;
    dr__srv_item_meta(w->g->srv, i, &title, &body);
    out_reset(w);
    out_lit(w, "{\"item\":");
    out_str(w, item);
    out(w, ",\"new\":%s,\"title\":", i >= s.items - s.new_items ? "true" : "false");
    out_str(w, title ? title : "");
    const char *attrs[DR_ITEM_MAX_ATTRS];
    size_t na = dr__srv_item_attrs(w->g->srv, i, attrs, DR_ITEM_MAX_ATTRS);
    out_lit(w, ",\"attributes\":[");
    for (size_t k = 0; k < na && k < DR_ITEM_MAX_ATTRS; k++) {
        if (k) out_lit(w, ",");
        out_str(w, attrs[k]);
    }
    out_lit(w, "],\"put\":");
    if (body) out_mem(w, body, strlen(body));
    else out_lit(w, "null");
    if (detail) item_detail(w, i);
    out_lit(w, "}");
    respond(w, resp, 200);
    return NULL;
}

/* Validates a PUT body into the canonical {"attributes", "features", "title"} object. */
static json_t *item_body(dr_routes *r, dr_routes_worker *w, dr_route_resp *resp, json_t *root) {
    if (!json_is_object(root)) {
        error_resp(w, resp, 400, "body: expected an object with title, attributes, features");
        return NULL;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "title") && strcmp(key, "attributes") && strcmp(key, "features")) {
            error_resp(w, resp, 400, "%.64s: unknown field (expected title, attributes, features)", key);
            return NULL;
        }
    }
    json_t *out_o = json_object(), *attrs = json_array(), *feats = json_object();
    if (!out_o || !attrs || !feats) goto oom;
    json_t *t = json_object_get(root, "title");
    if (t) {
        if (!json_is_string(t)) {
            error_resp(w, resp, 400, "title: expected a string");
            goto bad;
        }
        if (json_string_length(t) > DR_ITEM_MAX_TITLE) {
            error_resp(w, resp, 400, "title: longer than %u bytes", DR_ITEM_MAX_TITLE);
            goto bad;
        }
        if (strlen(json_string_value(t)) != json_string_length(t)) {
            error_resp(w, resp, 400, "title: contains a NUL character");
            goto bad;
        }
        if (json_object_set(out_o, "title", t)) goto oom;
    }
    json_t *a = json_object_get(root, "attributes");
    if (a && json_is_object(a)) { /* {"genre": "Drama"} -> "genre=Drama" */
        json_object_foreach(a, key, v) {
            if (!json_is_string(v)) {
                error_resp(w, resp, 400, "attributes.%.64s: expected a string", key);
                goto bad;
            }
            char kv[2 * DR_SRV_ID_MAX + 2];
            int n = snprintf(kv, sizeof kv, "%s=%s", key, json_string_value(v));
            if (n < 0 || (size_t)n > DR_SRV_ID_MAX || id_problem(kv, (size_t)n)) {
                error_resp(w, resp, 400, "attributes.%.64s: 1..256 bytes of UTF-8 text expected", key);
                goto bad;
            }
            if (json_array_append_new(attrs, json_string(kv))) goto oom;
        }
    } else if (a && json_is_array(a)) {
        size_t k;
        json_array_foreach(a, k, v) {
            if (!json_is_string(v) || id_problem(json_string_value(v), json_string_length(v))) {
                error_resp(w, resp, 400, "attributes[%zu]: expected a string of 1..256 bytes of UTF-8 text", k);
                goto bad;
            }
            if (json_array_append(attrs, v)) goto oom;
        }
    } else if (a) {
        error_resp(w, resp, 400, "attributes: expected an array of \"key=value\" strings or an object");
        goto bad;
    }
    if (json_array_size(attrs) > DR_ITEM_MAX_ATTRS) {
        error_resp(w, resp, 400, "attributes: more than %u", DR_ITEM_MAX_ATTRS);
        goto bad;
    }
    json_t *f = json_object_get(root, "features");
    if (f && !json_is_object(f)) {
        error_resp(w, resp, 400, "features: expected an object of modality -> array of numbers");
        goto bad;
    }
    size_t total = 0;
    json_object_foreach(f, key, v) {
        if (id_problem(key, strlen(key))) {
            error_resp(w, resp, 400, "features: bad modality name");
            goto bad;
        }
        if (!json_is_array(v) || !json_array_size(v)) {
            error_resp(w, resp, 400, "features.%.64s: expected a non-empty array of numbers", key);
            goto bad;
        }
        size_t k;
        json_t *x;
        json_array_foreach(v, k, x) {
            if (!json_is_number(x) || !isfinite(json_number_value(x)) ||
                !isfinite((float)json_number_value(x))) {
                error_resp(w, resp, 400, "features.%.64s[%zu]: expected a finite number", key, k);
                goto bad;
            }
        }
        dr_error fe = {0};
        if (dr__srv_check_feature(w->g->srv, key, json_array_size(v), &fe) != DR_OK) {
            error_resp(w, resp, 400, "features.%.64s: %s", key, fe.msg);
            goto bad;
        }
        total += json_array_size(v);
        if (total > DR_ITEM_MAX_FEATURES) {
            error_resp(w, resp, 400, "features: more than %u numbers", DR_ITEM_MAX_FEATURES);
            goto bad;
        }
        if (json_object_set(feats, key, v)) goto oom;
    }
    if (json_object_set_new(out_o, "attributes", attrs) || json_object_set_new(out_o, "features", feats)) {
        attrs = feats = NULL;
        goto oom;
    }
    return out_o;
oom:
    error_resp(w, resp, 500, "out of memory");
bad:
    json_decref(out_o);
    json_decref(attrs);
    json_decref(feats);
    return NULL;
}

static dr_status item_submit(dr_routes *r, dr_routes_pending *p, dr_srv_done_fn done, void *ud) {
    const char *key = p->keys ? p->keys[0] : NULL;
    return done ? dr__srv_put_item_async(p->g->srv, p->t, p->item, p->body, key, done, ud, &p->err)
                : dr__srv_put_item(p->g->srv, p->item, p->body, key, &p->ack, &p->err);
}

static void item_finish(dr_routes *r, dr_routes_worker *w, const dr_routes_pending *p,
                        dr_route_resp *resp) {
    uint32_t i = dr__srv_find_item(p->g->srv, p->item);
    dr_srv_stats s;
    dr__srv_get_stats(p->g->srv, &s);
    int is_new = i != UINT32_MAX && i >= s.items - s.new_items;
    out_reset(w);
    out_lit(w, "{\"item\":");
    out_str(w, p->item);
    /* with a fused checkpoint the features gave the item its base latent (serve_core.c); without
     * one they are kept in the log and the latent is unchanged */
    int used = p->n_feat && dr__srv_fuses(p->g->srv);
    out(w, ",\"created\":%s,\"new\":%s,\"cold\":%s,\"features_stored\":%zu,\"features_used\":%s,"
        "\"seq\":%llu,\"stream_id\":\"%s\"}", p->ack.created ? "true" : "false", is_new ? "true" : "false",
        is_new && !used ? "true" : "false", p->n_feat, used ? "true" : "false",
        (unsigned long long)p->ack.first_seq, p->ack.stream_id);
    respond(w, resp, p->ack.created ? 201 : 200);
}

static const write_ops item_ops = {item_submit, item_finish};

/* PUT /v1/items/{item} */
static dr_routes_pending *item_start(dr_routes *r, dr_routes_worker *w, const route_call *c,
                                     dr_route_resp *resp) {
    const char *item = c->id[0];
    json_t *root = parse_body(w, resp, c->rq);
    if (!root) return NULL;
    json_t *canon = item_body(r, w, resp, root);
    json_decref(root);
    if (!canon) return NULL;
    if (!idem_ok(w, resp, c->rq)) {
        json_decref(canon);
        return NULL;
    }
    dr_routes_pending *p = pending_new(w, c, resp, &item_ops);
    if (p) {
        p->body = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS);
        p->n_feat = json_object_size(json_object_get(canon, "features"));
        p->item = dr__strdup(item);
        p->n = 1;
        if (c->rq->idem_key && (p->keys = dr__calloc(1, sizeof *p->keys)) != NULL)
            p->keys[0] = make_key("r:", c->rq->idem_key, 0);
        if (!p->body || !p->item || (c->rq->idem_key && (!p->keys || !p->keys[0]))) {
            dr__routes_pending_free(p);
            p = NULL;
            error_resp(w, resp, 500, "out of memory");
        }
    }
    json_decref(canon);
    return p;
}

/* POST /v1/admin/base {"path": "new.drm", "force": false}: the swap runs on a thread of its
 * own while the connection waits (serve_live.c); the request holds no generation meanwhile (the
 * swap waits for the old one's requests to finish). */
static void *swap_main(void *arg) {
    dr_routes_pending *p = arg;
    /* only the swap's own fields: p->st is the submitting thread's (dr__routes_submit) */
    p->swap_st = dr__live_swap(p->live, p->path, p->force, &p->rep, &p->swap_err);
    p->done_fn(p->done_ud);
    return NULL;
}

static dr_status base_submit(dr_routes *r, dr_routes_pending *p, dr_srv_done_fn done, void *ud) {
    dr__live_release(p->live, p->g);
    p->g = NULL;
    p->own_result = 1;
    if (!done) {
        p->swap_st = dr__live_swap(p->live, p->path, p->force, &p->rep, &p->swap_err);
        return DR_OK;
    }
    p->done_fn = done;
    p->done_ud = ud;
    pthread_t th;
    pthread_attr_t at;
    int ok = pthread_attr_init(&at) == 0;
    ok = ok && pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED) == 0 &&
         pthread_create(&th, &at, swap_main, p) == 0;
    pthread_attr_destroy(&at);
    return ok ? DR_OK : dr__fail(&p->err, DR_INTERNAL, "cannot start the swap thread");
}

static void preq_json(dr_routes_worker *w, const char *name, const dr_srv_preq *q) {
    out(w, "\"%s\":{\"events\":%llu,\"hit10\":%.6f,\"ndcg10\":%.6f,\"seconds\":%.3f}", name,
        (unsigned long long)q->events, q->hit10, q->ndcg10, q->seconds);
}

static void base_finish(dr_routes *r, dr_routes_worker *w, const dr_routes_pending *p,
                        dr_route_resp *resp) {
    const dr_swap_report *rp = &p->rep;
    if (p->swap_st != DR_OK) {
        int code = p->swap_st == DR_LIMIT ? 409 : p->swap_st == DR_UNSUPPORTED ? 501
                 : p->swap_st == DR_NOMEM || p->swap_st == DR_INTERNAL ? 500 : 400;
        error_resp(w, resp, code, "%s", p->swap_err.msg);
        return;
    }
    out_reset(w);
    if (rp->swapped) {
        out(w, "{\"swapped\":true,\"at\":\"%s\",\"generation\":%llu,\"seconds\":%.3f,\"checked\":%s,",
            rp->at, (unsigned long long)rp->gen, rp->seconds, rp->checked ? "true" : "false");
    } else {
        out(w, "{\"swapped\":false,\"error\":\"refused: the new base's Hit@10 on the last %llu events "
            "is lower than the live base's by more than the threshold, or worse by the paired test "
            "(force: true to swap anyway)\",\"generation\":%llu,\"seconds\":%.3f,",
            (unsigned long long)rp->cand.events, (unsigned long long)rp->gen, rp->seconds);
    }
    out(w, "\"paired\":{\"live_only\":%llu,\"new_only\":%llu,\"z\":%.3f},",
        (unsigned long long)rp->live_only, (unsigned long long)rp->new_only, rp->z);
    preq_json(w, "live", &rp->live);
    out_lit(w, ",");
    preq_json(w, "new", &rp->cand);
    out_lit(w, "}");
    respond(w, resp, rp->swapped ? 200 : 409);
}

static const write_ops base_ops = {base_submit, base_finish};

static dr_routes_pending *base_start(dr_routes *r, dr_routes_worker *w, const route_call *c,
                                     dr_route_resp *resp) {
    if (!r->key && r->exposed) {
        error_resp(w, resp, 403, "POST /v1/admin/base needs an API key on a server bound beyond "
                   "loopback (start it with --api-key)");
        return NULL;
    }
    json_t *root = parse_body(w, resp, c->rq);
    if (!root) return NULL;
    json_t *path = json_object_get(root, "path"), *force = json_object_get(root, "force");
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        if (strcmp(k, "path") != 0 && strcmp(k, "force") != 0) {
            error_resp(w, resp, 400, "%.64s: unknown field (expected path, force)", k);
            json_decref(root);
            return NULL;
        }
    }
    if (!json_is_string(path) || !json_string_length(path) || json_string_length(path) >= DR_SRV_PATH_MAX) {
        error_resp(w, resp, 400, "path: expected the checkpoint's path (a string of 1..%u bytes)",
                   DR_SRV_PATH_MAX - 1);
        json_decref(root);
        return NULL;
    }
    if (force && !json_is_boolean(force)) {
        error_resp(w, resp, 400, "force: expected true or false");
        json_decref(root);
        return NULL;
    }
    dr_routes_pending *p = pending_new(w, c, resp, &base_ops);
    if (p) {
        p->path = dr__strdup(json_string_value(path));
        p->force = force && json_is_true(force);
        if (!p->path) {
            dr__routes_pending_free(p);
            p = NULL;
            error_resp(w, resp, 500, "out of memory");
        }
    }
    json_decref(root);
    return p;
}

/* GET /metrics */
static dr_routes_pending *metrics_text(dr_routes *r, dr_routes_worker *w, const route_call *call,
                                       dr_route_resp *resp) {
    dr_srv_stats s;
    dr__srv_get_stats(w->g->srv, &s);
    out_reset(w);
    out(w, "# HELP dynrec_http_requests_total HTTP requests by route and status.\n"
           "# TYPE dynrec_http_requests_total counter\n");
    for (int k = 0; k < R_COUNT; k++)
        for (size_t c = 0; c <= N_CODES; c++) {
            uint64_t v = atomic_load_explicit(&r->m[k].by_code[c], memory_order_relaxed);
            if (!v) continue;
            if (c < N_CODES) out(w, "dynrec_http_requests_total{route=\"%s\",code=\"%d\"} %llu\n", route_name[k], codes[c], (unsigned long long)v);
            else out(w, "dynrec_http_requests_total{route=\"%s\",code=\"other\"} %llu\n", route_name[k], (unsigned long long)v);
        }
    out(w, "# HELP dynrec_http_request_duration_seconds Time to handle a request, by route.\n"
           "# TYPE dynrec_http_request_duration_seconds histogram\n");
    for (int k = 0; k < R_COUNT; k++) {
        uint64_t cum = 0;
        for (size_t b = 0; b <= N_BUCKETS; b++) {
            cum += atomic_load_explicit(&r->m[k].hist[b], memory_order_relaxed);
            if (b < N_BUCKETS) out(w, "dynrec_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n", route_name[k], buckets[b], (unsigned long long)cum);
            else out(w, "dynrec_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n", route_name[k], (unsigned long long)cum);
        }
        out(w, "dynrec_http_request_duration_seconds_sum{route=\"%s\"} %.9f\n", route_name[k],
            (double)atomic_load_explicit(&r->m[k].sum_ns, memory_order_relaxed) * 1e-9);
        out(w, "dynrec_http_request_duration_seconds_count{route=\"%s\"} %llu\n", route_name[k], (unsigned long long)cum);
    }
#define METRIC(name, type, help, fmt, v) out(w, "# HELP " name " " help "\n# TYPE " name " " type "\n" name " " fmt "\n", v)
    METRIC("dynrec_http_unauthorized_total", "counter", "Requests refused with 401 (missing or wrong API key).", "%llu",
           (unsigned long long)atomic_load(&r->unauthorized));
    METRIC("dynrec_events_total", "counter", "Events applied from the event log (recovered ones included).", "%llu",
           (unsigned long long)s.events_total);
    METRIC("dynrec_log_records", "gauge", "Records applied from the event log (events and item records; skipped ones included).", "%llu", (unsigned long long)s.log_records);
    METRIC("dynrec_log_bytes", "gauge", "Size of the event log on disk (database and WAL).", "%llu", (unsigned long long)s.log_bytes);
    METRIC("dynrec_log_commits_total", "counter", "Appends to the event log (group commits) since start.", "%llu", (unsigned long long)s.commits);
    METRIC("dynrec_adapter_updates_total", "counter", "Adapter updates since start (replay included).", "%llu", (unsigned long long)s.adapter_updates);
    METRIC("dynrec_recovered_events", "gauge", "Events replayed into the adapter at start (after the snapshot).", "%llu", (unsigned long long)s.recovered_events);
    METRIC("dynrec_snapshots_total", "counter", "Adapter snapshots written since start.", "%llu", (unsigned long long)s.snapshots);
    METRIC("dynrec_snapshot_seq", "gauge", "Log position of the newest adapter snapshot.", "%llu", (unsigned long long)s.snapshot_seq);
    METRIC("dynrec_users", "gauge", "Known users (model and new).", "%u", s.users);
    METRIC("dynrec_items", "gauge", "Known items (model and new).", "%u", s.items);
    METRIC("dynrec_new_items", "gauge", "Items created from events or PUT.", "%u", s.new_items);
    METRIC("dynrec_new_items_capacity", "gauge", "Rows reserved for new items (--max-new-items).", "%u", s.max_new_items);
    METRIC("dynrec_new_users", "gauge", "Users created from events.", "%u", s.new_users);
    METRIC("dynrec_new_users_capacity", "gauge", "Rows reserved for new users (--max-new-users).", "%u", s.max_new_users);
    METRIC("dynrec_apply_lag_records", "gauge", "Records in the log not yet applied by this replica.", "%llu", (unsigned long long)s.lag_records);
    METRIC("dynrec_apply_lag_seconds", "gauge", "Age of the newest applied record when behind (0 when not behind or unknown).", "%.3f", s.lag_seconds);
    METRIC("dynrec_apply_skipped_total", "counter", "Log records skipped when applied (no room left for a new user or item).", "%llu", (unsigned long long)s.skipped);
    METRIC("dynrec_log_errors_total", "counter", "Failed log calls (append, read, tip).", "%llu", (unsigned long long)s.log_errors);
    METRIC("dynrec_log_reconnects_total", "counter", "Times the log was readable again after failures.", "%llu", (unsigned long long)s.log_reconnects);
    METRIC("dynrec_uptime_seconds", "gauge", "Seconds since start.", "%.3f", dr__now_seconds() - r->t_start);
    dr_live_stats ls;
    dr__live_stats(r->live, &ls);
    METRIC("dynrec_base_generation", "gauge", "The live base's generation (1 at start, +1 per swap).", "%llu", (unsigned long long)w->g->id);
    METRIC("dynrec_base_age_seconds", "gauge", "Seconds since the live base went live.", "%.3f", dr__now_seconds() - w->g->since);
    METRIC("dynrec_base_swaps_total", "counter", "Base swaps done (here or followed from the log).", "%llu", (unsigned long long)ls.swaps);
    METRIC("dynrec_base_swaps_refused_total", "counter", "Base swaps refused for their quality.", "%llu", (unsigned long long)ls.refused);
    METRIC("dynrec_base_swap_failures_total", "counter", "Base swaps that failed (the old base kept serving).", "%llu", (unsigned long long)ls.failed);
    METRIC("dynrec_base_swap_last_seconds", "gauge", "Wall time of the last switch (build and catch-up).", "%.3f", ls.last_seconds);
#undef METRIC
    respond(w, resp, 200);
    resp->content_type = "text/plain; version=0.0.4";
    return NULL;
}

/* GET /healthz */
static dr_routes_pending *get_health(dr_routes *r, dr_routes_worker *w, const route_call *c,
                                     dr_route_resp *resp) {
    out_reset(w);
    out(w, "{\"status\":\"ok\",\"base\":{\"path\":");
    out_str(w, w->g->path);
    out(w, ",\"hash\":\"%s\",\"generation\":%llu,\"age_seconds\":%.3f}", w->g->hash,
        (unsigned long long)w->g->id, dr__now_seconds() - w->g->since);
    dr_adapter_params ap;
    if (dr__srv_adapter_params(w->g->srv, &ap))
        out(w, ",\"adapter\":{\"window\":%u,\"lr\":%.6g,\"lr_item\":%.6g,\"chosen_on_validation\":%s}}",
            ap.window.capacity, (double)ap.lr, (double)ap.lr_g,
            dr_model_meta(dr__srv_model(w->g->srv), "adapter.window") ? "true" : "false");
    else
        out(w, ",\"adapter\":null}");
    respond(w, resp, 200);
    return NULL;
}

/* ---------------------------------------------------------------- dispatch */

typedef struct route {
    const char *method, *pattern;
    dr_routes_pending *(*fn)(dr_routes *r, dr_routes_worker *w, const route_call *c,
                             dr_route_resp *resp);
} route;

static const route routes[] = {
#define ROW(method, pattern, name, fn) {method, pattern, fn},
    ROUTE_TABLE(ROW)
#undef ROW
};

static int authorized(const dr_routes *r, const char *auth) {
    static const char prefix[] = "Bearer ";
    size_t pl = sizeof prefix - 1, n = auth ? strlen(auth) : 0;
    unsigned diff = n != pl + r->key_len;
    /* touch every key byte whatever the header: time depends on the key length only */
    for (size_t k = 0; k < pl + r->key_len; k++) {
        unsigned char want = k < pl ? (unsigned char)prefix[k] : (unsigned char)r->key[k - pl];
        unsigned char got = k < n ? (unsigned char)auth[k] : 0;
        diff |= (unsigned)(want ^ got);
    }
    return diff == 0;
}

/* Splits path into at most DR_HTTP_MAX_SEGS segments (pointers into buf); -1 when it does not parse. */
static int split_path(const char *path, char *buf, size_t cap, char **seg) {
    size_t n = strlen(path);
    if (n >= cap || path[0] != '/') return -1;
    memcpy(buf, path + 1, n);
    int ns = 0;
    char *p = buf;
    for (;;) {
        if (ns == DR_HTTP_MAX_SEGS) return -1;
        seg[ns++] = p;
        char *sl = strchr(p, '/');
        if (!sl) break;
        *sl = 0;
        p = sl + 1;
    }
    if (ns == 1 && !*seg[0]) return 0; /* "/" */
    for (int k = 0; k < ns; k++)
        if (!*seg[k]) return -1;
    return ns;
}

void dr__routes_reject(dr_routes *r, dr_routes_worker *w, int status, const char *msg,
                      dr_route_resp *resp) {
    error_resp(w, resp, status, "%s", msg);
    count(r, R_OTHER, status, 0);
}

/* Whether the ns path segments fit pattern; fills c->id with its {name} segments. */
static int route_match(const char *pattern, char *const *seg, int ns, route_call *c) {
    int k = 0, n = 0;
    for (const char *p = pattern + 1; *p; k++) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (k >= ns) return 0;
        if (*p == '{') c->id[n++] = seg[k];
        else if (strlen(seg[k]) != len || memcmp(seg[k], p, len)) return 0;
        p += len + (e != NULL);
    }
    return k == ns;
}

static int method_ok(const char *want, const char *m) {
    return !strcmp(m, want) || (!strcmp(want, "GET") && !strcmp(m, "HEAD"));
}

/* The worker's scratch follows the generation: remade after a base swap. */
static dr_status worker_follow(dr_routes_worker *w, dr_error *err) {
    if (w->sw_gen == w->g->id) return DR_OK;
    dr__srv_worker_free(w->sw);
    w->sw = NULL;
    dr_explain_session_free(w->es);
    w->es = NULL;
    dr_llm_ranker_free(w->rk);
    w->rk = NULL;
    dr_status st = dr__srv_worker_create(w->g->srv, &w->sw, err);
    if (st == DR_OK) w->sw_gen = w->g->id;
    return st;
}

void dr__routes_start(dr_routes *r, dr_routes_worker *w, const dr_route_req *rq, dr_route_resp *resp,
                     dr_routes_pending **pending) {
    route_call c = {rq, {NULL}, R_OTHER, dr__now_seconds()};
    *pending = NULL;
    w->g = dr__live_acquire(r->live);
    dr_error fe = {0};
    if (worker_follow(w, &fe) != DR_OK) {
        error_resp(w, resp, 500, "%s", fe.msg);
        goto done;
    }
    char buf[4 * DR_SRV_ID_MAX + 64], *seg[DR_HTTP_MAX_SEGS];
    const char *m = rq->method ? rq->method : "";
    int get = !strcmp(m, "GET") || !strcmp(m, "HEAD");
    int ns = rq->path ? split_path(rq->path, buf, sizeof buf, seg) : -1;
    /* which route: the first row that fits path and method, else the last that fits the path
     * (for metrics and 405) */
    int fits = 0;
    for (int k = 0; k < R_OTHER; k++) {
        if (!route_match(routes[k].pattern, seg, ns, &c)) continue;
        c.route = k;
        if ((fits = method_ok(routes[k].method, m))) break;
    }

    if (r->key && !(r->public_read && get) && !authorized(r, rq->auth)) {
        atomic_fetch_add_explicit(&r->unauthorized, 1, memory_order_relaxed);
        error_resp(w, resp, 401, "authorization: missing or wrong API key (Authorization: Bearer <key>)");
        goto done;
    }
    if (c.route == R_OTHER) {
        error_resp(w, resp, 404, "no such route: %s %.200s", m, rq->path ? rq->path : "");
        goto done;
    }
    const route *rt = &routes[c.route];
    if (!fits) {
        error_resp(w, resp, 405, "method %s not allowed here (use %s)", m, rt->method);
        goto done;
    }
    /* the {name} segments, in order: ids */
    int n = 0;
    for (const char *p = strchr(rt->pattern, '{'); p; p = strchr(p + 1, '{'), n++) {
        const char *bad = id_problem(c.id[n], strlen(c.id[n]));
        if (bad) {
            error_resp(w, resp, 400, "%.*s: %s", (int)strcspn(p + 1, "}"), p + 1, bad);
            goto done;
        }
    }
    *pending = rt->fn(r, w, &c, resp);
done:
    if (!*pending) count(r, c.route, resp->status, dr__now_seconds() - c.t0);
    dr__live_release(r->live, w->g);
    w->g = NULL;
}

void dr__routes_submit(dr_routes *r, dr_routes_pending *p, dr_srv_done_fn done, void *ud) {
    p->async = done != NULL;
    p->st = p->ops->submit(r, p, done, ud);
    if (done && p->st != DR_OK) { /* refused at once: answered like a finished one */
        p->async = 0;
        done(ud);
    }
}

void dr__routes_finish(dr_routes *r, dr_routes_worker *w, dr_routes_pending *p, dr_route_resp *resp) {
    if (p->async && !p->own_result) p->st = dr__srv_ticket_result(p->t, &p->ack, &p->err);
    w->g = p->g; /* held by p */
    if (p->st != DR_OK) error_resp(w, resp, status_of(p->st), "%s", p->err.msg);
    else p->ops->finish(r, w, p, resp);
    w->g = NULL;
    count(r, p->route, resp->status, dr__now_seconds() - p->t0);
    dr__routes_pending_free(p);
}

void dr__routes_handle(dr_routes *r, dr_routes_worker *w, const dr_route_req *rq, dr_route_resp *resp) {
    dr_routes_pending *p = NULL;
    dr__routes_start(r, w, rq, resp, &p);
    if (!p) return;
    dr__routes_submit(r, p, NULL, NULL);
    dr__routes_finish(r, w, p, resp);
}
