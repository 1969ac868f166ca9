/*
 * serve_http.c - dynrec's HTTP server: libmicrohttpd in thread-pool mode in front of
 * serve_routes.c.
 *
 * DESIGN: MHD_USE_INTERNAL_POLLING_THREAD with a pool of `threads` epoll threads. Reads are
 * answered on the thread that reads them. A valid write (POST /v1/events, PUT) is queued for
 * the writer and its connection suspended (MHD_suspend_connection); the writer resumes it when
 * the records are durable and applied, and the answer is built then: a waiting request holds
 * no thread, so any number of concurrent writes can share one fsync. Every pool thread gets its
 * own routes worker (scorer, top-k scratch, response buffer) on its first request, found
 * through a pthread key and freed when the server stops. Bodies are collected into a per-request
 * buffer up to max_body: a Content-Length above it gets 413 before any byte is read, a
 * chunked body that grows past it is drained and gets 413. Bound to 127.0.0.1 unless told
 * otherwise; port 0 takes an ephemeral port (dr_httpd_port reports it).
 * Shutdown (dr_httpd_stop): refuse new requests (503 "server: stopping"), wait until the
 * requests in flight are answered (at most drain_seconds), stop the daemon, then close the core
 * (the writer applies what is queued and writes the final snapshot). Not MHD_quiesce_daemon:
 * with epoll and a thread pool it races the pool threads' own removal of the listen socket
 * from their epoll sets and aborts the process (libmicrohttpd 0.9.75: "Failed to remove listen
 * FD from epoll set"; seen under load in tests/e2e/server.sh's SIGTERM step).
 * Live statistics (serve_stats.c, unless params.stats = 0): made before the state, so the core
 * samples live quality from the first incoming event; its thread reads the current
 * generation's totals once a second. The dashboard (/ui/, serve_ui.c) is answered here, before
 * the routes: static files, public even with an API key (the data routes they call are not),
 * with an ETag, Cache-Control: no-cache and 304 for a matching If-None-Match.
 * Rejected: MHD's thread-per-connection mode (a thread per idle keep-alive connection) and
 * blocking the pool thread while a write waits for its commit (few requests then share a
 * commit, since connections that land on a blocked thread wait behind it; docs/BENCH.md).
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "serve_routes.h"
#include "serve_ui.h"

typedef struct req_ctx_marker {
    char unused;
} req_ctx_marker;

typedef struct worker_node {
    dr_routes_worker *w;
    struct worker_node *next;
} worker_node;

struct dr_server {
    dr_live *live;
    dr_routes *routes;
    dr_stats *stats;          /* NULL: --stats off */
    _Atomic(dr_live *) live_pub; /* live, once open: what the stats thread reads */
    struct MHD_Daemon *d;
    uint16_t port;
    double drain_seconds;
    pthread_key_t key;
    int key_ok;
    pthread_mutex_t mu;
    worker_node *workers; /* guarded by mu */
    _Atomic int inflight;
    _Atomic int draining;    /* dr_httpd_stop: new requests get 503 */
    req_ctx_marker no_body; /* the request context of bodiless requests (no allocation) */
};

typedef struct req_ctx {
    char *body;
    size_t len, cap;
    int too_large;
    dr_routes_pending *pending;  /* a write request waiting for its commit (suspended) */
    struct MHD_Connection *conn;
} req_ctx;

dr_httpd_params dr_httpd_default_params(void) {
    dr_httpd_params p;
    memset(&p, 0, sizeof p);
    p.host = "127.0.0.1";
    p.port = 8080;
    p.threads = 4;
    p.max_body = DR_HTTP_MAX_BODY_DEFAULT;
    dr_srv_params sp = dr__srv_default_params();
    p.max_new_items = sp.max_new_items;
    p.max_new_users = sp.max_new_users;
    p.snapshot_every = sp.snapshot_every;
    p.durable = 1;
    p.drain_seconds = 30;
    p.idempotency_ttl = sp.idempotency_ttl;
    dr_live_params lp = dr__live_default_params();
    p.swap_check_events = lp.check_events;
    p.swap_max_drop = lp.max_drop;
    p.swap_max_z = lp.max_z;
    p.stats = 1;
    p.quality_rate = DR_STATS_QUALITY_RATE;
    return p;
}

static dr_routes_worker *thread_worker(dr_server *s) {
    dr_routes_worker *w = pthread_getspecific(s->key);
    if (w) return w;
    worker_node *n = dr__calloc(1, sizeof *n);
    if (!n || dr__routes_worker_create(s->routes, &w, NULL) != DR_OK) {
        dr__free(n);
        return NULL;
    }
    n->w = w;
    pthread_mutex_lock(&s->mu);
    n->next = s->workers;
    s->workers = n;
    pthread_mutex_unlock(&s->mu);
    pthread_setspecific(s->key, w);
    return w;
}

static const char *get_arg(void *ud, const char *name) {
    return MHD_lookup_connection_value(ud, MHD_GET_ARGUMENT_KIND, name);
}

static enum MHD_Result send_resp(struct MHD_Connection *c, const dr_route_resp *r) {
    struct MHD_Response *mr = MHD_create_response_from_buffer(r->len, (void *)r->body, MHD_RESPMEM_MUST_COPY);
    if (!mr) return MHD_NO;
    MHD_add_response_header(mr, "Content-Type", r->content_type);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)r->status, mr);
    MHD_destroy_response(mr);
    return ok;
}

static enum MHD_Result reject(dr_server *s, struct MHD_Connection *c, int status, const char *msg) {
    dr_routes_worker *w = thread_worker(s);
    if (!w) return MHD_NO;
    dr_route_resp r;
    dr__routes_reject(s->routes, w, status, msg, &r);
    return send_resp(c, &r);
}

/* GET /ui, /ui/...: the embedded dashboard */
static enum MHD_Result ui_file(struct MHD_Connection *c, const char *url) {
    if (!strcmp(url, "/ui")) { /* relative links need the slash */
        struct MHD_Response *mr = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (!mr) return MHD_NO;
        MHD_add_response_header(mr, "Location", "/ui/");
        enum MHD_Result ok = MHD_queue_response(c, 301, mr);
        MHD_destroy_response(mr);
        return ok;
    }
    const dr_ui_file *f = dr__ui_find(url + 4);
    static const char nf[] = "{\"error\":\"no such file in the dashboard\"}";
    const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
    int same = f && inm && strstr(inm, f->etag) != NULL;
    struct MHD_Response *mr = !f ? MHD_create_response_from_buffer(sizeof nf - 1, (void *)nf, MHD_RESPMEM_PERSISTENT)
                              : MHD_create_response_from_buffer(same ? 0 : f->len, (void *)f->data,
                                                                MHD_RESPMEM_PERSISTENT);
    if (!mr) return MHD_NO;
    MHD_add_response_header(mr, "Content-Type", f ? f->type : "application/json");
    if (f) {
        MHD_add_response_header(mr, "ETag", f->etag);
        MHD_add_response_header(mr, "Cache-Control", "no-cache");
        MHD_add_response_header(mr, "X-Content-Type-Options", "nosniff");
    }
    enum MHD_Result ok = MHD_queue_response(c, !f ? 404 : same ? 304 : 200, mr);
    MHD_destroy_response(mr);
    return ok;
}

/* The stats thread's view of the live generation's totals. */
static void stats_totals(void *ud, dr_stats_totals *out) {
    dr_server *s = ud;
    dr_live *l = atomic_load(&s->live_pub);
    if (!l) return;
    dr_gen *g = dr__live_acquire(l);
    dr_srv_stats st;
    dr__srv_get_stats(g->srv, &st);
    dr__live_release(l, g);
    out->events = st.events_total;
    out->adapter_updates = st.adapter_updates;
    out->log_bytes = st.log_bytes;
}

/* The serving core's call (writer or apply thread) when a suspended request's records are
 * durable and applied. */
static void on_committed(void *ud) {
    req_ctx *rc = ud;
    MHD_resume_connection(rc->conn);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    dr_server *s = cls;
    req_ctx empty = {0};
    req_ctx *rc = *con_cls == (void *)&s->no_body ? &empty : *con_cls;
    int has_body = strcmp(method, "GET") && strcmp(method, "HEAD") && strcmp(method, "DELETE");
    if (rc && rc->pending) { /* resumed: the commit is done */
        dr_routes_worker *w = thread_worker(s);
        if (!w) return MHD_NO;
        dr_route_resp r;
        dr__routes_finish(s->routes, w, rc->pending, &r);
        rc->pending = NULL;
        return send_resp(c, &r);
    }
    if (!rc && atomic_load(&s->draining)) return reject(s, c, 503, "server: stopping");
    if (!rc && !has_body && (!strcmp(method, "GET") || !strcmp(method, "HEAD")) &&
        !strncmp(url, "/ui", 3) && (url[3] == 0 || url[3] == '/'))
        return ui_file(c, url);
    if (!rc && !has_body) {
        atomic_fetch_add(&s->inflight, 1);
        *con_cls = &s->no_body;
        rc = &empty;
    } else if (!rc) {
        atomic_fetch_add(&s->inflight, 1);
        rc = dr__calloc(1, sizeof *rc);
        if (!rc) return MHD_NO;
        *con_cls = rc;
        if (has_body) {
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
            int64_t n;
            if (cl && dr__parse_i64(cl, strlen(cl), &n) && (uint64_t)n > dr__routes_max_body(s->routes)) {
                char msg[96];
                snprintf(msg, sizeof msg, "body: larger than %zu bytes", dr__routes_max_body(s->routes));
                return reject(s, c, 413, msg);
            }
            return MHD_YES; /* the body follows */
        }
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (rc->too_large || rc->len + n > dr__routes_max_body(s->routes)) {
            rc->too_large = 1; /* keep reading (and dropping) the rest */
            return MHD_YES;
        }
        if (rc->len + n > rc->cap) {
            size_t cap = rc->cap ? rc->cap : 1024;
            while (cap < rc->len + n) cap *= 2;
            char *nb = dr__realloc(rc->body, cap);
            if (!nb) return MHD_NO;
            rc->body = nb;
            rc->cap = cap;
        }
        memcpy(rc->body + rc->len, upload, n);
        rc->len += n;
        return MHD_YES;
    }
    if (rc->too_large) {
        char msg[96];
        snprintf(msg, sizeof msg, "body: larger than %zu bytes", dr__routes_max_body(s->routes));
        return reject(s, c, 413, msg);
    }
    dr_routes_worker *w = thread_worker(s);
    if (!w) return MHD_NO;
    dr_route_req rq = {method, url, get_arg, c,
                      MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"), rc->body,
                      rc->len, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key")};
    dr_route_resp r;
    dr_routes_pending *p = NULL;
    dr__routes_start(s->routes, w, &rq, &r, &p);
    if (!p) return send_resp(c, &r);
    /* a valid write: park the connection until the writer has committed and applied it, so
     * the pool thread serves other connections (and more requests share one fsync) */
    rc->pending = p;
    rc->conn = c;
    MHD_suspend_connection(c);
    dr__routes_submit(s->routes, p, on_committed, rc);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode code) {
    (void)c;
    (void)code;
    dr_server *s = cls;
    req_ctx *rc = *con_cls;
    if ((void *)rc == (void *)&s->no_body) {
        *con_cls = NULL;
        atomic_fetch_sub(&s->inflight, 1);
    } else if (rc) {
        /* resumed but the client went away before the answer: the records are in anyway */
        dr__routes_pending_free(rc->pending);
        dr__free(rc->body);
        dr__free(rc);
        *con_cls = NULL;
        atomic_fetch_sub(&s->inflight, 1);
    }
}

static void free_server(dr_server *s) {
    if (s->d) MHD_stop_daemon(s->d);
    s->d = NULL;
    for (worker_node *n = s->workers; n;) {
        worker_node *nx = n->next;
        dr__routes_worker_free(n->w);
        dr__free(n);
        n = nx;
    }
    dr__routes_free(s->routes);
    dr__stats_free(s->stats); /* its thread reads s->live: stopped first */
    s->stats = NULL;
    dr__live_close(s->live); /* the writer applies what is queued, the final snapshot */
    if (s->key_ok) pthread_key_delete(s->key);
    pthread_mutex_destroy(&s->mu);
    dr__free(s);
}

dr_status dr_httpd_start(const dr_httpd_params *p, dr_server **out, dr_error *err) {
    if (!p || !out || !p->model_path || !p->data_dir) return dr__fail(err, DR_ARG, "server: model and data_dir are required");
    *out = NULL;
    if (p->threads < 1 || p->threads > DR_HTTP_MAX_THREADS) return dr__fail(err, DR_ARG, "server: threads must be in 1..1024");
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(p->port);
    if (inet_pton(AF_INET, p->host ? p->host : "127.0.0.1", &addr.sin_addr) != 1)
        return dr__fail(err, DR_ARG, "server: host '%s' is not an IPv4 address", p->host);
    dr_server *s = dr__calloc(1, sizeof *s);
    if (!s) return dr__fail(err, DR_NOMEM, "server: out of memory");
    pthread_mutex_init(&s->mu, NULL);
    atomic_init(&s->inflight, 0);
    atomic_init(&s->draining, 0);
    s->drain_seconds = p->drain_seconds;
    dr_status st;
    dr_live_params lp = dr__live_default_params();
    lp.model_path = p->model_path;
    if (p->swap_check_events) lp.check_events = p->swap_check_events;
    if (p->swap_max_drop >= 0) lp.max_drop = p->swap_max_drop;
    if (p->swap_max_z >= 0) lp.max_z = p->swap_max_z;
    lp.compact_after_swap = p->compact_after_swap;
    lp.rebuild_events = p->swap_rebuild_events;
    dr_srv_params sp = lp.srv;
    sp.data_dir = p->data_dir;
    sp.max_new_items = p->max_new_items;
    sp.max_new_users = p->max_new_users;
    sp.snapshot_every = p->snapshot_every;
    sp.durable = p->durable;
    sp.log = p->log;
    sp.idempotency_ttl = p->idempotency_ttl;
    sp.frozen = p->frozen;
    if (p->stats) {
        dr_stats_params tp = dr__stats_default_params();
        tp.quality_rate = p->quality_rate;
        tp.totals = stats_totals;
        tp.totals_ud = s;
        if ((st = dr__stats_create(&tp, &s->stats, err)) != DR_OK) goto fail;
        sp.stats = s->stats;
    }
    sp.ann = p->ann;
    sp.ann_candidates = p->ann_candidates;
    sp.ann_ef = p->ann_ef;
    lp.srv = sp;
    if ((st = dr__live_open(&lp, &s->live, err)) != DR_OK) goto fail;
    int exposed = p->host && strncmp(p->host, "127.", 4) != 0;
    dr_routes_params rp = {p->api_key, p->public_read, p->max_body, NULL, exposed, p->llm_model,
                           p->llm_align};
    if ((st = dr__routes_create_live(s->live, &rp, &s->routes, err)) != DR_OK) goto fail;
    dr__routes_set_stats(s->routes, s->stats);
    atomic_store(&s->live_pub, s->live);
    if (pthread_key_create(&s->key, NULL) != 0) {
        st = dr__fail(err, DR_INTERNAL, "server: pthread_key_create failed");
        goto fail;
    }
    s->key_ok = 1;
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, p->port,
                            NULL, NULL, on_request, s,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)p->threads,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
                            MHD_OPTION_END);
    if (!s->d) {
        st = dr__fail(err, DR_IO, "server: cannot listen on %s:%u (in use, or not allowed)",
                     p->host ? p->host : "127.0.0.1", (unsigned)p->port);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : p->port;
    *out = s;
    return DR_OK;
fail:
    free_server(s);
    return st;
}

int dr_httpd_port(const dr_server *s) { return s ? s->port : 0; }

dr_status dr_httpd_reload(dr_server *s, int *swapped, dr_error *err) {
    if (!s || !swapped) return dr__fail(err, DR_ARG, "server: NULL argument");
    dr_swap_report rep;
    dr_status st = dr__live_reload(s->live, &rep, err);
    *swapped = st == DR_OK && rep.swapped;
    return st;
}

void dr_httpd_stop(dr_server *s) {
    if (!s) return;
    if (s->d) {
        atomic_store(&s->draining, 1); /* new requests: 503; the open ones are answered */
        double t0 = dr__now_seconds();
        while (atomic_load(&s->inflight) > 0 && dr__now_seconds() - t0 < s->drain_seconds) {
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        if (atomic_load(&s->inflight) > 0)
            dr__log(DR_LOG_WARN, "server: %d requests still in flight after %.0f s", atomic_load(&s->inflight), s->drain_seconds);
    }
    free_server(s);
}
