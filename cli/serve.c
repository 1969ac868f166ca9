/*
 * serve.c - `dynrec serve`: the HTTP server (docs/HTTP.md) until SIGTERM or SIGINT.
 * A handler posts a semaphore (async-signal-safe) that main waits on, whichever thread the
 * signal lands on (OpenBLAS starts threads before main, so blocking the signals in main
 * would not cover them); then the server drains and the process exits 0.
 */
#include <errno.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *serve_help =
    "usage: dynrec serve --model MODEL.drm --data-dir DIR [--port 8080] [--host 127.0.0.1]\n"
    "                    [--threads 4] [--api-key-file F [--public-read]] [--port-file F]\n"
    "                    [--max-body BYTES] [--max-new-items 10000] [--max-new-users 50000]\n"
    "                    [--snapshot-every 10000] [--no-fsync] [--drain-seconds 30] [--quiet]\n"
    "                    [--log sqlite|redis://HOST:PORT[/STREAM]|redis+unix:///PATH[?stream=S]]\n"
    "                    [--idempotency-ttl 86400] [--swap-check-events 2000] [--swap-max-drop 0.02]\n"
    "                    [--swap-max-z 1.645]\n"
    "                    [--adapter on|off] [--compact-after-swap]\n"
    "                    [--swap-rebuild-events 0] [--llm X.gguf [--align M.align]]\n"
    "                    [--stats on|off] [--quality-rate 0.03]\n"
    "  Serves recommendations over HTTP from a dot-product checkpoint (mf, sasrec) with the\n"
    "  online adapter learning from every event. DIR holds the adapter snapshots and, with\n"
    "  --log sqlite, the durable event log (SQLite WAL); on start the newest snapshot is loaded\n"
    "  and the log is replayed. Endpoints: POST /v1/events, GET /v1/users/{user}/recommendations\n"
    "  ?k=10[&after=ID&wait_ms=1000], GET /v1/users/{user}, PUT|GET /v1/items/{item},\n"
    "  GET /v1/state, GET /v1/stats, GET /v1/stats/series, POST /v1/admin/base, GET /healthz,\n"
    "  GET /metrics; the dashboard at /ui/ (embedded; public even with an API key).\n"
    "  Base swap: POST /v1/admin/base {\"path\": \"new.drm\", \"force\": false}, or SIGHUP (the file\n"
    "  at --model, re-read), puts a new checkpoint live while requests go on; it is a base record\n"
    "  in the log, so a restart (which serves the base the log names) and every replica follow it.\n"
    "  --port 0             an ephemeral port; the bound port is printed on stdout\n"
    "                       (\"listening on http://HOST:PORT\") and written to --port-file\n"
    "  --api-key-file F     every request needs 'Authorization: Bearer <first line of F>'\n"
    "  --public-read        with a key: GET requests need none\n"
    "  --max-new-items N    rows reserved for items the model does not know (events, PUT)\n"
    "  --max-new-users N    rows reserved for users the model does not know\n"
    "  --snapshot-every N   events between adapter snapshots (0: only at shutdown)\n"
    "  --no-fsync           do not fsync commits (tests only: acknowledged events can be lost)\n"
    "  --log SPEC           the event log: sqlite (default: DIR/events.db, one server) or a\n"
    "                       Redis stream shared by replicas: redis://HOST:PORT[/STREAM] or\n"
    "                       redis+unix:///PATH[?stream=S]; each replica keeps its own DIR\n"
    "  --idempotency-ttl S  seconds an event_id or Idempotency-Key is remembered (86400)\n"
    "  --swap-check-events N  a swap first scores the live and the new base, each with an\n"
    "                       adapter rebuilt alike, on the log's last N events (Hit@10) ...\n"
    "  --swap-max-drop X    ... and refuses the new one (409) when lower by more than X, unless\n"
    "                       the request says \"force\": true\n"
    "  --swap-max-z Z       ... or when worse by a paired test on the same events (McNemar's z\n"
    "                       above Z; 1.645 = one-sided 5%; 0 = off)\n"
    "  --swap-rebuild-events N  the new base's adapter relearns from the N events before the\n"
    "                       checked ones (0: the adapter's window, 4096)\n"
    "  --compact-after-swap after each swap, move what the new base no longer needs out of the\n"
    "                       SQLite log into DIR/archive.db (as `dynrec compact` does)\n"
    "  --adapter off        serve the base alone (P-STREAM's frozen column): events grow the\n"
    "                       histories, nothing learns, no adapter snapshots are written\n"
    "  --llm X.gguf         GET .../recommendations?rerank=llm: the top 20 reordered by\n"
    "                       score + lambda * the LLM's log-likelihood of each title after the\n"
    "                       user's history, with the adapter's current h'_u, z'_i as soft tokens\n"
    "  --align M.align      the alignment (dynrec align) for --llm, with its lambda; checked\n"
    "                       against the GGUF at start\n";
/* the rest of the help (one literal would pass the 4095 bytes C guarantees) */
static const char *serve_help_stats =
    "  --ann auto|on|off    two-stage retrieval with the index M.drm.ann (`dynrec index`): auto\n"
    "                       uses it when present and the model has >= 50,000 items; on needs it;\n"
    "                       off scans every item. An index for another checkpoint is refused\n"
    "  --ann-candidates N   approximate candidates per request (default: the index's, 100)\n"
    "  --ann-ef N           the index's search list (default: the index's, 128)\n"
    "  --stats off          no live statistics: no per-second series, no live-quality sampling\n"
    "                       (GET /v1/stats answers totals only, /v1/stats/series 503)\n"
    "  --quality-rate X     share of incoming events (0..1, by a hash of user, item and time)\n"
    "                       whose item is looked up in the user's top 10 before the event is\n"
    "                       applied, under the base alone and under base + adapter (0.03)\n";

static int read_key(const char *path, char *key, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "dynrec: io: cannot open API key file %s\n", path);
        return 1;
    }
    if (!fgets(key, (int)cap, f)) key[0] = 0;
    fclose(f);
    key[strcspn(key, "\r\n")] = 0;
    if (!key[0] || strlen(key) > 256) {
        fprintf(stderr, "dynrec: arg: %s: the first line must hold a key of 1..256 bytes\n", path);
        return 1;
    }
    return 0;
}

static int write_port(const char *path, int port) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "dynrec: io: cannot write the port file %s\n", path);
        return 1;
    }
    return 0;
}

static sem_t stop_sem;
static volatile sig_atomic_t stop_sig;

static void on_signal(int sig) {
    stop_sig = sig;
    sem_post(&stop_sem);
}

int cli_cmd_serve(int argc, char **argv) {
    dr_httpd_params p = dr_httpd_default_params();
    const char *key_file = NULL, *port_file = NULL;
    int quiet = 0;
    cli_opts o = {argc, argv, 0};
    for (o.i = 0; o.i < argc; o.i++) {
        const char *a = argv[o.i], *v;
        int err = 0;
        uint64_t n;
        double x;
        if (cli_is_help(a)) {
            fputs(serve_help, stdout);
            fputs(serve_help_stats, stdout);
            return 0;
        }
        if (!strcmp(a, "--public-read")) { p.public_read = 1; continue; }
        if (!strcmp(a, "--no-fsync")) { p.durable = 0; continue; }
        if (!strcmp(a, "--quiet")) { quiet = 1; continue; }
        if (!strcmp(a, "--compact-after-swap")) { p.compact_after_swap = 1; continue; }
        if ((v = cli_opt_value(&o, "--model", &err))) { p.model_path = v; continue; }
        if ((v = cli_opt_value(&o, "--data-dir", &err))) { p.data_dir = v; continue; }
        if ((v = cli_opt_value(&o, "--host", &err))) { p.host = v; continue; }
        if ((v = cli_opt_value(&o, "--api-key-file", &err))) { key_file = v; continue; }
        if ((v = cli_opt_value(&o, "--port-file", &err))) { port_file = v; continue; }
        if ((v = cli_opt_value(&o, "--log", &err))) { p.log = v; continue; }
        if ((v = cli_opt_value(&o, "--llm", &err))) { p.llm_model = v; continue; }
        if ((v = cli_opt_value(&o, "--align", &err))) { p.llm_align = v; continue; }
        if ((v = cli_opt_value(&o, "--adapter", &err))) {
            if (strcmp(v, "on") && strcmp(v, "off")) return cli_usage_error("bad --adapter '%s' (on|off)", v);
            p.frozen = !strcmp(v, "off");
            continue;
        }
        if ((v = cli_opt_value(&o, "--stats", &err))) {
            if (strcmp(v, "on") && strcmp(v, "off")) return cli_usage_error("bad --stats '%s' (on|off)", v);
            p.stats = !strcmp(v, "on");
            continue;
        }
        if ((v = cli_opt_value(&o, "--quality-rate", &err))) {
            if (cli_parse_double(v, &x) || !(x >= 0 && x <= 1)) return cli_usage_error("bad --quality-rate '%s' (0..1)", v);
            p.quality_rate = x;
            continue;
        }
        if ((v = cli_opt_value(&o, "--ann", &err))) {
            if (strcmp(v, "auto") && strcmp(v, "on") && strcmp(v, "off")) return cli_usage_error("bad --ann '%s' (auto|on|off)", v);
            p.ann = !strcmp(v, "on") ? 1 : !strcmp(v, "off") ? -1 : 0;
            continue;
        }
        if ((v = cli_opt_value(&o, "--ann-candidates", &err))) {
            if (cli_parse_u64(v, &n) || n < 1 || n > 65536) return cli_usage_error("bad --ann-candidates '%s' (1..65536)", v);
            p.ann_candidates = (uint32_t)n;
            continue;
        }
        if ((v = cli_opt_value(&o, "--ann-ef", &err))) {
            if (cli_parse_u64(v, &n) || n < 1 || n > 100000) return cli_usage_error("bad --ann-ef '%s' (1..100000)", v);
            p.ann_ef = (uint32_t)n;
            continue;
        }
        if ((v = cli_opt_value(&o, "--idempotency-ttl", &err))) {
            if (cli_parse_u64(v, &n) || n < 1 || n > UINT32_MAX) return cli_usage_error("bad --idempotency-ttl '%s' (1..2^32-1 seconds)", v);
            p.idempotency_ttl = (uint32_t)n;
            continue;
        }
        if ((v = cli_opt_value(&o, "--port", &err))) {
            if (cli_parse_u64(v, &n) || n > 65535) return cli_usage_error("bad --port '%s' (0..65535)", v);
            p.port = (uint16_t)n;
            continue;
        }
        if ((v = cli_opt_value(&o, "--threads", &err))) {
            if (cli_parse_u64(v, &n) || n < 1 || n > 1024) return cli_usage_error("bad --threads '%s' (1..1024)", v);
            p.threads = (int)n;
            continue;
        }
        if ((v = cli_opt_value(&o, "--max-body", &err))) {
            if (cli_parse_u64(v, &n) || n < 1024 || n > (1u << 30)) return cli_usage_error("bad --max-body '%s' (1024..2^30)", v);
            p.max_body = (size_t)n;
            continue;
        }
        if ((v = cli_opt_value(&o, "--max-new-items", &err))) {
            if (cli_parse_u64(v, &n) || n > 100000000) return cli_usage_error("bad --max-new-items '%s'", v);
            p.max_new_items = (uint32_t)n;
            continue;
        }
        if ((v = cli_opt_value(&o, "--max-new-users", &err))) {
            if (cli_parse_u64(v, &n) || n > 100000000) return cli_usage_error("bad --max-new-users '%s'", v);
            p.max_new_users = (uint32_t)n;
            continue;
        }
        if ((v = cli_opt_value(&o, "--snapshot-every", &err))) {
            if (cli_parse_u64(v, &n)) return cli_usage_error("bad --snapshot-every '%s'", v);
            p.snapshot_every = n;
            continue;
        }
        if ((v = cli_opt_value(&o, "--swap-check-events", &err))) {
            if (cli_parse_u64(v, &n) || n < 1 || n > 1000000) return cli_usage_error("bad --swap-check-events '%s' (1..1000000)", v);
            p.swap_check_events = (uint32_t)n;
            continue;
        }
        if ((v = cli_opt_value(&o, "--swap-rebuild-events", &err))) {
            if (cli_parse_u64(v, &n) || n > 65536) return cli_usage_error("bad --swap-rebuild-events '%s' (0..65536)", v);
            p.swap_rebuild_events = (uint32_t)n;
            continue;
        }
        if ((v = cli_opt_value(&o, "--swap-max-z", &err))) {
            if (cli_parse_double(v, &x) || x < 0 || x > 100) return cli_usage_error("bad --swap-max-z '%s' (0..100)", v);
            p.swap_max_z = x;
            continue;
        }
        if ((v = cli_opt_value(&o, "--swap-max-drop", &err))) {
            if (cli_parse_double(v, &x) || x < 0 || x > 1) return cli_usage_error("bad --swap-max-drop '%s' (0..1)", v);
            p.swap_max_drop = x;
            continue;
        }
        if ((v = cli_opt_value(&o, "--drain-seconds", &err))) {
            if (cli_parse_double(v, &x) || x < 0) return cli_usage_error("bad --drain-seconds '%s'", v);
            p.drain_seconds = x;
            continue;
        }
        if (err) return err;
        return cli_usage_error("serve: unknown option '%s'", a);
    }
    if (!p.model_path || !p.data_dir) return cli_usage_error("serve: --model and --data-dir are required");
    if (p.llm_align && !p.llm_model) return cli_usage_error("serve: --align needs --llm");
    char key[512];
    if (key_file) {
        if (read_key(key_file, key, sizeof key)) return 1;
        p.api_key = key;
    } else if (p.public_read) {
        return cli_usage_error("serve: --public-read needs --api-key-file");
    }
    if (!quiet) dr_set_log(cli_log_cb, NULL, DR_LOG_INFO);
    sem_init(&stop_sem, 0, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    dr_server *s = NULL;
    dr_error e = {0};
    dr_status st = dr_httpd_start(&p, &s, &e);
    if (st != DR_OK) return cli_die(st, &e);
    int port = dr_httpd_port(s);
    printf("listening on http://%s:%d\n", p.host, port);
    fflush(stdout);
    if (port_file && write_port(port_file, port)) {
        dr_httpd_stop(s);
        return 1;
    }
    for (;;) {
        while (sem_wait(&stop_sem) != 0 && errno == EINTR) {
        }
        if (stop_sig != SIGHUP) break;
        /* SIGHUP: swap to the checkpoint at --model, re-read (the same checks as POST /v1/admin/base) */
        stop_sig = 0;
        int swapped = 0;
        dr_error he = {0};
        if (dr_httpd_reload(s, &swapped, &he) != DR_OK)
            fprintf(stderr, "error: SIGHUP: %s\n", he.msg);
        else if (!quiet)
            fprintf(stderr, "info: SIGHUP: %s\n", swapped ? "the base at --model is live" : "the base at --model was refused (see above)");
    }
    if (!quiet) fprintf(stderr, "info: %s: draining and stopping\n", stop_sig == SIGTERM ? "SIGTERM" : "SIGINT");
    dr_httpd_stop(s);
    if (!quiet) fprintf(stderr, "info: stopped\n");
    return 0;
}
