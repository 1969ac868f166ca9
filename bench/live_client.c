/*
 * live_client.c - the P-LIVE client (bench/live_replay.sh; P-LIVE in ../shared/PROTOCOL.md):
 * replays the stream through a running `dynrec serve` over HTTP and scores what it answers.
 *
 *   live_client --port P --events FILE [--host 127.0.0.1] [--limit N] [--column NAME]
 *               [--json FILE] [--per-event FILE] [--on-tenth CMD]
 *
 * DESIGN: FILE is live_events' output (the replayed events in order, with P-STREAM's scored
 * and cold flags and its ranks). Per group of events sharing a timestamp: for every scored
 * event `GET /v1/users/U/recommendations?k=10` (a hit when the event's item is in the list,
 * NDCG@10 = 1/log2(1 + its position)), then one `POST /v1/events` with the whole group, each
 * event with its own time; the next group is asked only after the server answered the post
 * (the answer comes once the events are durable and applied). Requests go one at a time over
 * one keep-alive connection (plain sockets, TCP_NODELAY; reconnects when the server closes
 * it), so the order is the protocol's and the client costs next to nothing. A failed request
 * (transport error or a status outside 2xx) is counted and the replay goes on: a failed ask
 * is a miss, a failed post leaves the server behind the replay; the count must be 0.
 * Means: overall, over 10 consecutive equal-count slices of the scored events (P-STREAM's
 * slices: event j of n in slice j * 10 / n) and over cold targets, each beside P-STREAM's mean
 * on the same events (the rank from FILE of the column's P-STREAM twin: `frozen` for
 * --column frozen, else `adapter`), with the events where the two disagree counted both ways.
 * --limit N replays the first N events (whole groups: the group holding event N is finished).
 * --on-tenth CMD: at the start of each tenth 1..9 of the replay, `sh -c CMD` is started in
 * the background with LIVE_TENTH=k in its environment (the base swap of the `adapter + swap`
 * column) unless the previous one is still running (then that tenth is skipped and counted);
 * each one's wall time and exit status are reported. --swap-wait 1: a tenth whose previous swap
 * is still running waits for it instead of skipping (the replay pauses at the boundary; the
 * waits are reported), so every tenth gets its swap however long a retrain takes. Rejected: libcurl (one more moving part
 * whose connection reuse and Expect: handling would have to be checked for a benchmark).
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define SLICES 10

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------ events */

typedef struct event {
    size_t group;
    char *user, *item;
    long long time;
    int scored, cold;
    unsigned rank_f, rank_a; /* P-STREAM's pessimistic ranks */
    unsigned rank_s;         /* the adapter's with the server's time (live_events.c) */
} event;

static int read_events(const char *path, event **out, size_t *n_out) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "live_client: cannot open %s\n", path);
        return 1;
    }
    size_t n = 0, cap = 1024, lineno = 0;
    event *ev = malloc(cap * sizeof *ev);
    char line[4096];
    while (ev && fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '#') continue;
        char user[1100], item[1100];
        event e = {0};
        if (sscanf(line, "%zu\t%1099[^\t]\t%1099[^\t]\t%lld\t%d\t%d\t%u\t%u\t%u", &e.group, user,
                   item, &e.time, &e.scored, &e.cold, &e.rank_f, &e.rank_a, &e.rank_s) != 9) {
            fprintf(stderr, "live_client: %s:%zu: expected 9 tab-separated columns\n", path, lineno);
            fclose(f);
            return 1;
        }
        if (n == cap) {
            event *g = realloc(ev, 2 * cap * sizeof *ev);
            if (!g) break;
            ev = g;
            cap *= 2;
        }
        e.user = strdup(user);
        e.item = strdup(item);
        if (!e.user || !e.item) break;
        ev[n++] = e;
    }
    int bad = ferror(f) || !ev || !feof(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "live_client: %s: read error or out of memory\n", path);
        return 1;
    }
    *out = ev;
    *n_out = n;
    return 0;
}

/* ------------------------------------------------------------------ HTTP, one connection */

/* A keep-alive connection idle longer than this is opened anew (`dynrec serve` closes idle
 * connections after 60 s; a replay that waits for a swap can sit that long). */
#define CONN_IDLE_S 20.0

typedef struct conn {
    const char *host;
    int port, fd;
    char *buf; /* response bytes */
    size_t cap, len;
    char *body;
    size_t body_len;
    double used; /* when the last answer came (now_s) */
} conn;

static int conn_open(conn *c) {
    struct addrinfo hints = {0}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", c->port);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(c->host, port, &hints, &ai) != 0 || !ai) return -1;
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    return 0;
}

static void conn_close(conn *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

static int send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* One request and its whole response; returns the status, or -1 on a transport error (the
 * connection is then closed; the next request opens a new one). */
static int http_once(conn *c, const char *method, const char *path, const char *body) {
    if (c->fd >= 0 && now_s() - c->used > CONN_IDLE_S) { /* the server may have closed it */
        close(c->fd);
        c->fd = -1;
    }
    if (c->fd < 0 && conn_open(c) != 0) return -1;
    size_t blen = body ? strlen(body) : 0;
    char head[2048];
    int hn = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: %zu\r\n%s\r\n", method, path,
                      c->host, c->port, blen, body ? "Content-Type: application/json\r\n" : "");
    if (hn <= 0 || (size_t)hn >= sizeof head || send_all(c->fd, head, (size_t)hn) != 0 ||
        (blen && send_all(c->fd, body, blen) != 0))
        goto broken;
    c->len = 0;
    size_t hend = 0, clen = 0;
    int have_clen = 0, close_after = 0, status = 0;
    for (;;) {
        if (c->len + 4096 + 1 > c->cap) {
            size_t nc = c->cap ? 2 * c->cap : 65536;
            char *g = realloc(c->buf, nc);
            if (!g) goto broken;
            c->buf = g;
            c->cap = nc;
        }
        ssize_t k = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) goto broken;
        c->len += (size_t)k;
        c->buf[c->len] = 0;
        if (!hend) {
            char *e = strstr(c->buf, "\r\n\r\n");
            if (!e) continue;
            hend = (size_t)(e - c->buf) + 4;
            if (sscanf(c->buf, "HTTP/1.%*d %d", &status) != 1) goto broken;
            for (char *l = strstr(c->buf, "\r\n"); l && l < e; l = strstr(l + 2, "\r\n")) {
                if (!strncasecmp(l + 2, "Content-Length:", 15)) {
                    clen = strtoul(l + 17, NULL, 10);
                    have_clen = 1;
                } else if (!strncasecmp(l + 2, "Connection: close", 17)) {
                    close_after = 1;
                }
            }
            if (!have_clen) goto broken; /* the server always sends one for these routes */
        }
        if (c->len >= hend + clen) break;
    }
    c->body = c->buf + hend;
    c->body_len = clen;
    c->body[clen] = 0; /* the buffer has room: len + 1 <= cap */
    if (close_after) conn_close(c);
    c->used = now_s();
    return status;
broken:
    conn_close(c);
    return -1;
}

/* ------------------------------------------------------------------ metrics */

typedef struct acc {
    double hit, ndcg;     /* server */
    double ehit, endcg;   /* P-STREAM on the same events */
    size_t n, only_server, only_eval;
} acc;

static void acc_add(acc *a, int pos, unsigned erank) {
    double h = pos > 0, eh = erank >= 1 && erank <= 10;
    a->hit += h;
    a->ndcg += pos > 0 ? 1.0 / log2(pos + 1.0) : 0.0;
    a->ehit += eh;
    a->endcg += eh ? 1.0 / log2(erank + 1.0) : 0.0;
    a->only_server += h && !eh;
    a->only_eval += eh && !h;
    a->n++;
}

static double mean(double s, size_t n) { return n ? s / (double)n : 0.0; }

static json_t *acc_json(const acc *a) {
    return json_pack("{s:f,s:f,s:{s:f,s:f},s:I,s:I,s:I}", "hit@10", mean(a->hit, a->n), "ndcg@10",
                     mean(a->ndcg, a->n), "p_stream", "hit@10", mean(a->ehit, a->n), "ndcg@10",
                     mean(a->endcg, a->n), "n", (json_int_t)a->n, "hit_only_server",
                     (json_int_t)a->only_server, "hit_only_p_stream", (json_int_t)a->only_eval);
}

static void acc_row(const char *label, const acc *a) {
    printf("  %-14s %8.4f %8.4f   %8.4f %8.4f   %+8.4f   %7zu   %5zu %5zu\n", label,
           mean(a->hit, a->n), mean(a->ndcg, a->n), mean(a->ehit, a->n), mean(a->endcg, a->n),
           mean(a->hit, a->n) - mean(a->ehit, a->n), a->n, a->only_server, a->only_eval);
}

static int dbl_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double quantile(double *v, size_t n, double q) {
    if (!n) return 0;
    qsort(v, n, sizeof *v, dbl_cmp);
    size_t k = (size_t)(q * (double)n);
    return v[k < n ? k : n - 1];
}

/* ------------------------------------------------------------------ swaps */

typedef struct swap {
    int tenth;
    pid_t pid;
    double t0, seconds;
    int rc;
} swap;

static void swap_reap(swap *s, int block) {
    if (s->pid <= 0) return;
    int stt;
    pid_t r = waitpid(s->pid, &stt, block ? 0 : WNOHANG);
    if (r == s->pid) {
        s->seconds = now_s() - s->t0;
        s->rc = WIFEXITED(stt) ? WEXITSTATUS(stt) : 128 + WTERMSIG(stt);
        s->pid = 0;
    }
}

static int swap_start(swap *s, const char *cmd, int tenth) {
    char env_tenth[32];
    snprintf(env_tenth, sizeof env_tenth, "LIVE_TENTH=%d", tenth);
    size_t ne = 0;
    while (environ[ne]) ne++;
    char **env = calloc(ne + 2, sizeof *env);
    if (!env) return -1;
    for (size_t k = 0; k < ne; k++) env[k] = environ[k];
    env[ne] = env_tenth;
    char *argv[] = {"sh", "-c", (char *)cmd, NULL};
    s->tenth = tenth;
    s->t0 = now_s();
    s->rc = -1;
    int r = posix_spawn(&s->pid, "/bin/sh", NULL, NULL, argv, env);
    free(env);
    return r == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ main */

static int usage(void) {
    fprintf(stderr, "usage: live_client --port P --events FILE [--host 127.0.0.1] [--limit N] "
                    "[--column NAME] [--json FILE] [--per-event FILE] [--on-tenth CMD] [--swap-wait 0|1]\n");
    return 2;
}

/* The user id as a path segment (RFC 3986 unreserved kept, the rest %XX). */
static void path_escape(char *out, size_t cap, const char *s) {
    size_t n = 0;
    for (; *s && n + 4 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~')
            out[n++] = (char)ch;
        else
            n += (size_t)snprintf(out + n, cap - n, "%%%02X", ch);
    }
    out[n] = 0;
}

int main(int argc, char **argv) {
    const char *events_path = NULL, *json_path = NULL, *per_event = NULL, *column = "adapter",
               *on_tenth = NULL;
    int swap_wait = 0;
    double waited = 0;
    conn c = {.host = "127.0.0.1", .port = 0, .fd = -1};
    size_t limit = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return usage();
        if (!strcmp(a, "--port")) c.port = atoi(v);
        else if (!strcmp(a, "--host")) c.host = v;
        else if (!strcmp(a, "--events")) events_path = v;
        else if (!strcmp(a, "--limit")) limit = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--column")) column = v;
        else if (!strcmp(a, "--json")) json_path = v;
        else if (!strcmp(a, "--per-event")) per_event = v;
        else if (!strcmp(a, "--on-tenth")) on_tenth = v;
        else if (!strcmp(a, "--swap-wait")) swap_wait = atoi(v);
        else return usage();
        i++;
    }
    if (!events_path || c.port <= 0) return usage();
    event *ev = NULL;
    size_t n_all = 0;
    if (read_events(events_path, &ev, &n_all)) return 1;
    size_t n = n_all;
    if (limit && limit < n) { /* finish the group holding event `limit` */
        n = limit;
        while (n < n_all && ev[n].group == ev[n - 1].group) n++;
    }
    int frozen_twin = !strcmp(column, "frozen");
    size_t n_scored = 0;
    for (size_t k = 0; k < n; k++) n_scored += ev[k].scored != 0;
    int *pos = calloc(n_scored + 1, sizeof *pos);
    size_t *sidx = calloc(n_scored + 1, sizeof *sidx);
    double *lat_get = calloc(n_scored + 1, sizeof *lat_get), *lat_post = calloc(n + 1, sizeof *lat_post);
    if (!pos || !sidx || !lat_get || !lat_post) {
        fprintf(stderr, "live_client: out of memory\n");
        return 1;
    }
    swap sw[SLICES] = {{0}};
    int n_sw = 0, sw_skipped = 0, next_tenth = 1;
    size_t requests = 0, failed = 0, gets = 0, posts = 0, n_post_lat = 0;
    char path[4096], uesc[3400];
    double t_start = now_s();
    for (size_t g0 = 0, j = 0; g0 < n;) {
        size_t g1 = g0;
        while (g1 < n && ev[g1].group == ev[g0].group) g1++;
        if (on_tenth) {
            if (n_sw) swap_reap(&sw[n_sw - 1], 0);
            while (next_tenth < SLICES && g0 >= (size_t)next_tenth * n / SLICES) {
                if (swap_wait && n_sw && sw[n_sw - 1].pid > 0) {
                    double w0 = now_s();
                    swap_reap(&sw[n_sw - 1], 1);
                    waited += now_s() - w0;
                }
                if (n_sw && sw[n_sw - 1].pid > 0) sw_skipped++;
                else if (swap_start(&sw[n_sw], on_tenth, next_tenth) == 0) n_sw++;
                else failed++;
                next_tenth++;
            }
        }
        for (size_t k = g0; k < g1; k++) { /* ask: every scored event of the group, state before t */
            if (!ev[k].scored) continue;
            path_escape(uesc, sizeof uesc, ev[k].user);
            snprintf(path, sizeof path, "/v1/users/%s/recommendations?k=10", uesc);
            double t1 = now_s();
            int status = http_once(&c, "GET", path, NULL);
            lat_get[gets++] = now_s() - t1;
            requests++;
            sidx[j] = k;
            pos[j] = 0;
            if (status < 200 || status > 299) {
                failed++;
                if (failed <= 5)
                    fprintf(stderr, "live_client: GET %s: %s %d %.200s\n", path,
                            status < 0 ? "transport error" : "status", status, status < 0 ? "" : c.body);
            } else {
                json_error_t je;
                json_t *o = json_loadb(c.body, c.body_len, 0, &je), *items = json_object_get(o, "items");
                if (!json_is_array(items)) {
                    failed++;
                    fprintf(stderr, "live_client: GET %s: no items in %.200s\n", path, c.body);
                }
                for (size_t q = 0; q < json_array_size(items); q++) {
                    const char *it = json_string_value(json_object_get(json_array_get(items, q), "item"));
                    if (it && !strcmp(it, ev[k].item)) {
                        pos[j] = (int)q + 1;
                        break;
                    }
                }
                json_decref(o);
            }
            j++;
        }
        json_t *arr = json_array(); /* then post the group, each event with its own time */
        for (size_t k = g0; k < g1; k++)
            json_array_append_new(arr, json_pack("{s:s,s:s,s:I}", "user", ev[k].user, "item", ev[k].item,
                                                 "time", (json_int_t)ev[k].time));
        json_t *body = json_pack("{s:o}", "events", arr);
        char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        double t1 = now_s();
        int status = text ? http_once(&c, "POST", "/v1/events", text) : -1;
        lat_post[n_post_lat++] = now_s() - t1;
        free(text);
        requests++;
        posts++;
        if (status < 200 || status > 299) {
            failed++;
            if (failed <= 5)
                fprintf(stderr, "live_client: POST /v1/events (group %zu): %s %d %.200s\n", ev[g0].group,
                        status < 0 ? "transport error" : "status", status, status < 0 ? "" : c.body);
        }
        g0 = g1;
    }
    double wall = now_s() - t_start;
    for (int s = 0; s < n_sw; s++) swap_reap(&sw[s], 1);
    conn_close(&c);

    acc all = {0}, cold = {0}, sl[SLICES] = {{0}}, served = {0};
    FILE *pe = per_event ? fopen(per_event, "w") : NULL;
    if (pe) fprintf(pe, "event\tuser\titem\tcold\tserver_pos\tp_stream_rank\n");
    for (size_t j = 0; j < n_scored; j++) {
        const event *e = &ev[sidx[j]];
        unsigned er = frozen_twin ? e->rank_f : e->rank_a;
        acc_add(&all, pos[j], er);
        acc_add(&served, pos[j], frozen_twin ? e->rank_f : e->rank_s);
        acc_add(&sl[j * SLICES / n_scored], pos[j], er);
        if (e->cold) acc_add(&cold, pos[j], er);
        if (pe) fprintf(pe, "%zu\t%s\t%s\t%d\t%d\t%u\n", sidx[j], e->user, e->item, e->cold, pos[j], er);
    }
    if (pe) fclose(pe);

    double gp50 = quantile(lat_get, gets, 0.5), gp99 = quantile(lat_get, gets, 0.99);
    double pp50 = quantile(lat_post, n_post_lat, 0.5), pp99 = quantile(lat_post, n_post_lat, 0.99);
    printf("P-LIVE  column=%s  events=%zu of %zu  scored=%zu (cold %zu)  wall=%.1f s  requests=%zu  "
           "failed=%zu\n", column, n, n_all, n_scored, cold.n, wall, requests, failed);
    printf("  GET recommendations p50 %.2f ms p99 %.2f ms; POST events p50 %.2f ms p99 %.2f ms\n",
           1e3 * gp50, 1e3 * gp99, 1e3 * pp50, 1e3 * pp99);
    printf("  %-14s %8s %8s   %8s %8s   %8s   %7s   %11s\n", "", "server", "", "P-STREAM", "",
           "diff", "", "hit only in");
    printf("  %-14s %8s %8s   %8s %8s   %8s   %7s   %5s %5s\n", "", "Hit@10", "NDCG@10", "Hit@10",
           "NDCG@10", "Hit@10", "events", "srv", "eval");
    acc_row("overall", &all);
    for (int s = 0; s < SLICES; s++) {
        char label[32];
        snprintf(label, sizeof label, "slice %d", s + 1);
        acc_row(label, &sl[s]);
    }
    acc_row("cold targets", &cold);
    if (!frozen_twin) { /* the twin with the server's notion of time (live_events.c) */
        printf("  P-STREAM with the server's time (whole seconds, query at the newest event's time):\n");
        acc_row("overall", &served);
    }
    for (int s = 0; s < n_sw; s++)
        printf("  swap at tenth %d: %.1f s, exit %d\n", sw[s].tenth, sw[s].seconds, sw[s].rc);
    if (on_tenth && sw_skipped) printf("  swaps skipped (previous one still running): %d\n", sw_skipped);
    if (on_tenth && swap_wait) printf("  the replay waited %.1f s at tenth boundaries for swaps to finish\n", waited);

    json_t *slices = json_array(), *swaps = json_array();
    for (int s = 0; s < SLICES; s++) json_array_append_new(slices, acc_json(&sl[s]));
    for (int s = 0; s < n_sw; s++)
        json_array_append_new(swaps, json_pack("{s:i,s:f,s:i}", "tenth", sw[s].tenth, "seconds",
                                               sw[s].seconds, "exit", sw[s].rc));
    json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:I,s:o,s:o,s:o,s:o,s:f,s:I,s:I,s:f,s:f,s:f,s:f,s:o,s:i}",
                          "protocol", "P-LIVE", "column", column, "events", (json_int_t)n,
                          "replay_events", (json_int_t)n_all, "scored", (json_int_t)n_scored,
                          "overall", acc_json(&all), "slices", slices, "cold", acc_json(&cold),
                          "served_time", acc_json(&served), "seconds", wall, "requests", (json_int_t)requests, "failed",
                          (json_int_t)failed, "get_p50_ms", 1e3 * gp50, "get_p99_ms", 1e3 * gp99,
                          "post_p50_ms", 1e3 * pp50, "post_p99_ms", 1e3 * pp99, "swaps", swaps,
                          "swaps_skipped", sw_skipped);
    char *line = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(o);
    if (json_path) {
        FILE *f = fopen(json_path, "a");
        if (!f || fprintf(f, "%s\n", line) < 0 || fclose(f) != 0) {
            fprintf(stderr, "live_client: cannot write %s\n", json_path);
            return 1;
        }
    } else {
        printf("%s\n", line);
    }
    free(line);
    for (size_t k = 0; k < n_all; k++) {
        free(ev[k].user);
        free(ev[k].item);
    }
    free(ev);
    free(pos);
    free(sidx);
    free(lat_get);
    free(lat_post);
    free(c.buf);
    return failed ? 3 : 0;
}
