/*
 * serve_log_redis.c - the redis kind of event log (serve_log.h): one Redis stream shared by
 * every replica, through hiredis. pos = the entry id (ms, seq).
 *
 * DESIGN: an entry's fields are k (the kind's letter, DR_REC_TABLE), u, i and b where the kind
 * has them, and t (decimal). Each side
 * has its own connection: the append side (the writer thread) and the read side (the apply
 * thread, and tip under a lock). A side whose connection failed drops it and connects again
 * on its next call, with the timeout; every command has that timeout too, so nothing blocks
 * forever, and a failure is DR_IO naming the address ("redis unix:/tmp/x.sock: ...").
 * append is ONE call of a Lua script (EVALSHA; loaded with SCRIPT LOAD on connect and again on
 * NOSCRIPT), so a batch is atomic and its idempotency checks see each other: for each record
 * with a key, GET STREAM:idem:KEY; when present the stored id is the record's (a duplicate),
 * else XADD STREAM * and SET STREAM:idem:KEY id EX ttl. An empty key counts as no key.
 * read is XRANGE from the id after `after` when it may not wait, else XREAD BLOCK in slices of
 * at most DR_LOG_WAIT_SLICE_MS until wait_ms: hiredis cannot interrupt a blocked call, so wake
 * sets a flag that the loop checks between slices. The reply of the last read is kept until
 * the next one, and the records' strings point into it.
 * bytes is MEMORY USAGE of the stream, taken on the append side at open and at most once a
 * second after an append, and kept in an atomic for any thread.
 * Rejected: one connection for both sides with a lock (a read blocked in XREAD would hold up
 * every append for its slice); MULTI/EXEC with WATCH for the idempotency check (a retry loop
 * against other replicas, where a script is one round trip and cannot conflict).
 * A lost reply (the connection broke after the script ran) is DR_IO though the batch may be
 * in the stream: records with keys are safe to send again.
 */
#include "serve_log.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/un.h>

static const char script[] =
    "local out, ttl, pre = {}, tonumber(ARGV[1]), ARGV[2]\n"
    "for a = 3, #ARGV, 6 do\n"
    "  local key, id = ARGV[a], false\n"
    "  if key ~= '' then id = redis.call('GET', pre .. key) end\n"
    "  if id then\n"
    "    out[#out + 1] = id; out[#out + 1] = 1\n"
    "  else\n"
    "    local f = {'k', ARGV[a + 1]}\n"
    "    if ARGV[a + 2] ~= '' then f[#f + 1] = 'u'; f[#f + 1] = ARGV[a + 2] end\n"
    "    if ARGV[a + 3] ~= '' then f[#f + 1] = 'i'; f[#f + 1] = ARGV[a + 3] end\n"
    "    f[#f + 1] = 't'; f[#f + 1] = ARGV[a + 4]\n"
    "    if ARGV[a + 5] ~= '' then f[#f + 1] = 'b'; f[#f + 1] = ARGV[a + 5] end\n"
    "    id = redis.call('XADD', KEYS[1], '*', unpack(f))\n"
    "    if key ~= '' then redis.call('SET', pre .. key, id, 'EX', ttl) end\n"
    "    out[#out + 1] = id; out[#out + 1] = 0\n"
    "  end\n"
    "end\n"
    "return out\n";

#define ARGS_PER_REC 6 /* key, k, u, i, t, b */
#define ARGS_HEAD 6    /* EVALSHA sha 1 stream ttl prefix */
#define NUM_MAX 24     /* a decimal int64 and its NUL */

typedef struct rd_log {
    dr_log base;
    int is_unix, port;
    char host[DR_LOG_ADDR_MAX], path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char addr[DR_LOG_ADDR_MAX + 16]; /* as messages name it: "unix:/p" or "host:port" */
    char stream[DR_LOG_STREAM_MAX], prefix[DR_LOG_STREAM_MAX + 8];
    uint32_t ttl, timeout_ms;
    redisContext *wc, *rc;   /* append side, read side */
    pthread_mutex_t rmu;     /* the read side (read and tip) */
    int have_rmu;
    char sha[48];            /* of the script, on the append side's server */
    redisReply *last;        /* the reply the last read's strings point into */
    DR_VEC(const char *) argv;
    DR_VEC(size_t) argl;
    DR_VEC(char) nums;
    double bytes_at;         /* when bytes was taken (dr__now_seconds) */
    _Atomic uint64_t bytes;
    atomic_int woken;
} rd_log;

/* ---- the spec */

static int rd_accepts(const char *spec) {
    return spec && (strncmp(spec, "redis://", 8) == 0 || strncmp(spec, "redis+unix://", 13) == 0);
}

static int stream_name_ok(const char *s, size_t n) {
    if (!n || n >= DR_LOG_STREAM_MAX) return 0;
    for (size_t k = 0; k < n; k++)
        if (s[k] <= ' ' || s[k] == '/' || s[k] == '?' || s[k] == '&' || s[k] == 0x7f) return 0;
    return 1;
}

static dr_status bad_spec(const char *spec, const char *why, dr_error *err) {
    return dr__fail(err, DR_ARG,
                    "--log %s: %s (expected redis://HOST:PORT[/STREAM] or "
                    "redis+unix:///PATH[?stream=S])", spec, why);
}

static dr_status parse_spec(rd_log *l, const char *spec, dr_error *err) {
    const char *stream = "dynrec";
    size_t slen = 6;
    if (strncmp(spec, "redis+unix://", 13) == 0) {
        const char *p = spec + 13, *q = strchr(p, '?');
        size_t plen = q ? (size_t)(q - p) : strlen(p);
        if (plen < 2 || p[0] != '/') return bad_spec(spec, "the socket path must be absolute", err);
        if (plen >= sizeof l->path) return bad_spec(spec, "the socket path is too long", err);
        if (q) {
            if (strncmp(q, "?stream=", 8) != 0) return bad_spec(spec, "the only option is stream=S", err);
            stream = q + 8;
            slen = strlen(stream);
            if (!stream_name_ok(stream, slen)) return bad_spec(spec, "bad stream name", err);
        }
        l->is_unix = 1;
        memcpy(l->path, p, plen);
        l->path[plen] = 0;
        snprintf(l->addr, sizeof l->addr, "unix:%s", l->path);
    } else {
        const char *h = spec + 8, *colon = strrchr(h, ':'), *slash = strchr(h, '/');
        if (slash && colon > slash) colon = NULL;
        if (!colon || colon == h) return bad_spec(spec, "expected HOST:PORT", err);
        size_t hlen = (size_t)(colon - h);
        if (hlen >= sizeof l->host) return bad_spec(spec, "the host name is too long", err);
        const char *port = colon + 1;
        size_t portlen = slash ? (size_t)(slash - port) : strlen(port);
        uint32_t pv = 0;
        if (!dr__parse_u32(port, portlen, &pv) || pv == 0 || pv > 65535)
            return bad_spec(spec, "the port must be 1 to 65535", err);
        if (slash) {
            stream = slash + 1;
            slen = strlen(stream);
            if (!stream_name_ok(stream, slen)) return bad_spec(spec, "bad stream name", err);
        }
        memcpy(l->host, h, hlen);
        l->host[hlen] = 0;
        l->port = (int)pv;
        snprintf(l->addr, sizeof l->addr, "%s:%d", l->host, l->port);
    }
    memcpy(l->stream, stream, slen);
    l->stream[slen] = 0;
    snprintf(l->prefix, sizeof l->prefix, "%s:idem:", l->stream);
    return DR_OK;
}

/* ---- connections */

static struct timeval tv_ms(uint32_t ms) {
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

static void drop(redisContext **c) {
    if (*c) redisFree(*c);
    *c = NULL;
}

/* A failed command: a broken connection is dropped (the next call connects again). */
static dr_status conn_fail(rd_log *l, redisContext **c, const char *what, dr_error *err) {
    dr_status st = dr__fail(err, DR_IO, "redis %s: %s: %s", l->addr, what,
                            *c && (*c)->errstr[0] ? (*c)->errstr : "no reply");
    drop(c);
    return st;
}

static dr_status load_script(rd_log *l, dr_error *err);

/* Makes sure *c is connected; extra_ms is added to the command timeout (the read side's
 * XREAD BLOCK slices). The append side loads the script. */
static dr_status connect_side(rd_log *l, redisContext **c, uint32_t extra_ms, dr_error *err) {
    if (*c && !(*c)->err) return DR_OK;
    drop(c);
    struct timeval tv = tv_ms(l->timeout_ms);
    *c = l->is_unix ? redisConnectUnixWithTimeout(l->path, tv)
                    : redisConnectWithTimeout(l->host, l->port, tv);
    if (!*c) return dr__fail(err, DR_NOMEM, "redis %s: out of memory", l->addr);
    if ((*c)->err) {
        dr_status st = dr__fail(err, DR_IO, "redis %s: %s", l->addr, (*c)->errstr);
        drop(c);
        return st;
    }
    if (redisSetTimeout(*c, tv_ms(l->timeout_ms + extra_ms)) != REDIS_OK)
        return conn_fail(l, c, "set timeout", err);
    return c == &l->wc ? load_script(l, err) : DR_OK;
}

/* An error reply: the server refused the command (the connection stays). */
static dr_status reply_error(rd_log *l, const redisReply *r, const char *what, dr_error *err) {
    return dr__fail(err, DR_IO, "redis %s: %s on stream %s: %.*s", l->addr, what, l->stream,
                    r->type == REDIS_REPLY_ERROR ? (int)DR_MIN(r->len, 400) : 16,
                    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
}

static dr_status load_script(rd_log *l, dr_error *err) {
    redisReply *r = redisCommand(l->wc, "SCRIPT LOAD %s", script);
    if (!r) return conn_fail(l, &l->wc, "SCRIPT LOAD", err);
    dr_status st = DR_OK;
    if (r->type != REDIS_REPLY_STRING || r->len >= sizeof l->sha)
        st = reply_error(l, r, "SCRIPT LOAD", err);
    else
        snprintf(l->sha, sizeof l->sha, "%s", r->str);
    freeReplyObject(r);
    return st;
}

/* MEMORY USAGE of the stream (0 when it does not exist yet) into l->bytes. */
static void take_bytes(rd_log *l) {
    l->bytes_at = dr__now_seconds();
    if (!l->wc || l->wc->err) return;
    redisReply *r = redisCommand(l->wc, "MEMORY USAGE %s", l->stream);
    if (!r) {
        drop(&l->wc);
        return;
    }
    if (r->type == REDIS_REPLY_INTEGER && r->integer >= 0) atomic_store(&l->bytes, (uint64_t)r->integer);
    freeReplyObject(r);
}

static void rd_close(dr_log *base) {
    rd_log *l = (rd_log *)base;
    if (!l) return;
    drop(&l->wc);
    drop(&l->rc);
    if (l->last) freeReplyObject(l->last);
    if (l->have_rmu) pthread_mutex_destroy(&l->rmu);
    dr_vec_free(&l->argv);
    dr_vec_free(&l->argl);
    dr_vec_free(&l->nums);
    dr__free(l);
}

static dr_status rd_open(const dr_log_params *p, dr_log **out, dr_error *err) {
    *out = NULL;
    rd_log *l = dr__calloc(1, sizeof *l);
    if (!l) return dr__fail(err, DR_NOMEM, "log: out of memory");
    l->base.vt = &dr_log_redis_vt;
    l->ttl = p->dedup_ttl ? p->dedup_ttl : 1;
    l->timeout_ms = p->timeout_ms ? p->timeout_ms : DR_LOG_TIMEOUT_MS_DEFAULT;
    dr_status st = parse_spec(l, p->spec, err);
    if (st == DR_OK && !(l->have_rmu = pthread_mutex_init(&l->rmu, NULL) == 0))
        st = dr__fail(err, DR_NOMEM, "log: cannot create a lock");
    if (st == DR_OK) st = connect_side(l, &l->wc, 0, err); /* an unreachable server: say so now */
    if (st != DR_OK) {
        rd_close(&l->base);
        return st;
    }
    take_bytes(l);
    *out = &l->base;
    return DR_OK;
}

/* ---- append */

static dr_status build_args(rd_log *l, const dr_log_rec *recs, size_t n, dr_error *err) {
    size_t argc = ARGS_HEAD + ARGS_PER_REC * n;
    if (n > (SIZE_MAX - ARGS_HEAD) / ARGS_PER_REC / NUM_MAX || dr_vec_reserve(&l->argv, argc) ||
        dr_vec_reserve(&l->argl, argc) || dr_vec_reserve(&l->nums, NUM_MAX * (n + 1)))
        return dr__fail(err, DR_NOMEM, "redis %s: append: out of memory", l->addr);
    const char **a = l->argv.a;
    char *num = l->nums.a;
    a[0] = "EVALSHA";
    a[1] = l->sha;
    a[2] = "1";
    a[3] = l->stream;
    snprintf(num, NUM_MAX, "%u", l->ttl);
    a[4] = num;
    a[5] = l->prefix;
    for (size_t k = 0; k < n; k++) {
        const dr_log_rec *r = &recs[k];
        const char **f = a + ARGS_HEAD + ARGS_PER_REC * k;
        char *t = num + NUM_MAX * (k + 1);
        int fl = dr__rec_fields(r->kind);
        if (!fl || ((fl & DR_RF_USER) && !r->user) || ((fl & DR_RF_ITEM) && !r->item) ||
            ((fl & DR_RF_BODY) && !r->body))
            return dr__fail(err, DR_ARG, "redis %s: append: record %zu is incomplete", l->addr, k);
        snprintf(t, NUM_MAX, "%lld", (long long)r->time);
        f[0] = r->key ? r->key : "";
        f[1] = dr__rec_letter(r->kind);
        f[2] = fl & DR_RF_USER ? r->user : "";
        f[3] = fl & DR_RF_ITEM ? r->item : "";
        f[4] = t;
        f[5] = fl & DR_RF_BODY ? r->body : "";
    }
    for (size_t k = 0; k < argc; k++) l->argl.a[k] = strlen(a[k]);
    return DR_OK;
}

/* An entry id "ms-seq" of a reply element. */
static int reply_pos(const redisReply *r, dr_log_pos *p) {
    char id[DR_LOG_POS_MAX];
    if (!r || r->type != REDIS_REPLY_STRING || r->len == 0 || r->len >= sizeof id) return -1;
    memcpy(id, r->str, r->len);
    id[r->len] = 0;
    return strchr(id, '-') ? dr__log_pos_parse(id, p) : -1;
}

static dr_status rd_append(dr_log *base, dr_log_rec *recs, size_t n, uint8_t *dup, dr_error *err) {
    rd_log *l = (rd_log *)base;
    if (!n) return DR_OK;
    dr_status st = connect_side(l, &l->wc, 0, err);
    if (st != DR_OK) return st;
    size_t argc = ARGS_HEAD + ARGS_PER_REC * n;
    redisReply *r = NULL;
    for (int tries = 0; tries < 2; tries++) {
        if ((st = build_args(l, recs, n, err)) != DR_OK) return st; /* a[1] = the sha now */
        r = redisCommandArgv(l->wc, (int)argc, l->argv.a, l->argl.a);
        if (!r) return conn_fail(l, &l->wc, "append", err);
        if (r->type != REDIS_REPLY_ERROR || strncmp(r->str, "NOSCRIPT", 8) != 0) break;
        freeReplyObject(r); /* the server forgot the script (restart, SCRIPT FLUSH) */
        r = NULL;
        if ((st = load_script(l, err)) != DR_OK) return st;
    }
    if (!r) return dr__fail(err, DR_IO, "redis %s: append: the script is not loaded", l->addr);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 * n) {
        st = reply_error(l, r, "append", err);
        freeReplyObject(r);
        return st;
    }
    for (size_t k = 0; k < n; k++) {
        const redisReply *d = r->element[2 * k + 1];
        if (reply_pos(r->element[2 * k], &recs[k].pos) != 0 || d->type != REDIS_REPLY_INTEGER) {
            freeReplyObject(r);
            return dr__fail(err, DR_IO, "redis %s: append: unexpected reply", l->addr);
        }
        if (dup) dup[k] = d->integer != 0;
    }
    freeReplyObject(r);
    if (dr__now_seconds() - l->bytes_at >= 1.0) take_bytes(l);
    return DR_OK;
}

/* ---- read */

/* A field's value by name in an entry's [f, v, f, v ...]; NULL when absent. */
static const redisReply *field(const redisReply *fv, const char *name) {
    for (size_t k = 0; k + 1 < fv->elements; k += 2) {
        const redisReply *f = fv->element[k];
        if (f->type == REDIS_REPLY_STRING && f->len == 1 && f->str[0] == name[0])
            return fv->element[k + 1];
    }
    return NULL;
}

/* A string field of at most max bytes, valid UTF-8 without NUL; bad set otherwise. */
static const char *text(const redisReply *v, size_t max, int *bad) {
    if (!v || v->type != REDIS_REPLY_STRING || v->len > max || !dr__utf8_valid(v->str, v->len)) {
        *bad = 1;
        return NULL;
    }
    return v->str;
}

/* One entry [id, [f, v ...]] into out. */
static int decode_entry(const redisReply *e, dr_log_rec *out) {
    memset(out, 0, sizeof *out);
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || reply_pos(e->element[0], &out->pos))
        return -1;
    const redisReply *fv = e->element[1];
    if (fv->type != REDIS_REPLY_ARRAY) return -1;
    int bad = 0;
    const char *k = text(field(fv, "k"), 1, &bad), *t = text(field(fv, "t"), NUM_MAX, &bad);
    if (bad || !dr__parse_i64(t, strlen(t), &out->time)) return -1;
    out->kind = dr__rec_kind_of(k);
    int fl = dr__rec_fields(out->kind);
    if (!fl) return -1;
    if (fl & DR_RF_USER) out->user = text(field(fv, "u"), DR_STORE_ID_MAX, &bad);
    if (fl & DR_RF_ITEM) out->item = text(field(fv, "i"), DR_STORE_ID_MAX, &bad);
    if (fl & DR_RF_BODY) out->body = text(field(fv, "b"), DR_STORE_BODY_MAX, &bad);
    return bad || (out->item && !*out->item) || (out->user && !*out->user) ? -1 : 0;
}

/* The entries of an XRANGE reply (or of XREAD's one stream) into out. */
static dr_status decode_entries(rd_log *l, const redisReply *es, size_t cap, dr_log_rec *out,
                                size_t *n, dr_error *err) {
    for (size_t k = 0; k < es->elements && *n < cap; k++) {
        if (decode_entry(es->element[k], &out[*n]) != 0) {
            const redisReply *e = es->element[k];
            int has_id = e->type == REDIS_REPLY_ARRAY && e->elements && e->element[0]->type == REDIS_REPLY_STRING;
            *n = 0;
            return dr__fail(err, DR_FORMAT, "redis %s: stream %s: entry %.*s is damaged", l->addr,
                            l->stream, has_id ? (int)DR_MIN(e->element[0]->len, 40) : 1,
                            has_id ? e->element[0]->str : "?");
        }
        (*n)++;
    }
    return DR_OK;
}

/* One XRANGE (block_ms < 0) or XREAD BLOCK block_ms; the reply is kept in l->last. */
static dr_status read_once(rd_log *l, dr_log_pos after, size_t cap, int block_ms,
                           dr_log_rec *out, size_t *n, dr_error *err) {
    char from[DR_LOG_POS_MAX], count[NUM_MAX], block[NUM_MAX];
    snprintf(count, sizeof count, "%zu", cap);
    redisReply *r;
    if (block_ms < 0) {
        dr_log_pos next = after.seq == UINT64_MAX ? (dr_log_pos){after.ms + 1, 0}
                                                  : (dr_log_pos){after.ms, after.seq + 1};
        dr__log_pos_format(next, from);
        const char *argv[] = {"XRANGE", l->stream, from, "+", "COUNT", count};
        r = redisCommandArgv(l->rc, 6, argv, NULL);
    } else {
        dr__log_pos_format(after, from);
        snprintf(block, sizeof block, "%d", block_ms);
        const char *argv[] = {"XREAD", "COUNT", count, "BLOCK", block, "STREAMS", l->stream, from};
        r = redisCommandArgv(l->rc, 8, argv, NULL);
    }
    if (!r) return conn_fail(l, &l->rc, "read", err);
    if (l->last) freeReplyObject(l->last);
    l->last = r;
    if (r->type == REDIS_REPLY_NIL) return DR_OK; /* XREAD: nothing came */
    if (r->type != REDIS_REPLY_ARRAY) return reply_error(l, r, "read", err);
    if (block_ms < 0) return decode_entries(l, r, cap, out, n, err);
    for (size_t k = 0; k < r->elements; k++) { /* [[stream, entries]] */
        const redisReply *s = r->element[k];
        if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 || s->element[1]->type != REDIS_REPLY_ARRAY)
            return reply_error(l, s, "read", err);
        dr_status st = decode_entries(l, s->element[1], cap, out, n, err);
        if (st != DR_OK) return st;
    }
    return DR_OK;
}

static dr_status rd_read(dr_log *base, dr_log_pos after, size_t cap, int wait_ms, dr_log_rec *out,
                         size_t *n, dr_error *err) {
    rd_log *l = (rd_log *)base;
    *n = 0;
    if (!cap) return DR_OK;
    double end = dr__now_seconds() + (wait_ms > 0 ? wait_ms / 1000.0 : 0);
    int waited = 0;
    for (;;) { /* the lock is taken per slice, so tip waits for one slice at most */
        double left_ms = (end - dr__now_seconds()) * 1000.0;
        int last = wait_ms <= 0 || atomic_exchange(&l->woken, 0) || (waited && left_ms < 1);
        int slice = last ? -1 : DR_MAX((int)DR_MIN(left_ms, (double)DR_LOG_WAIT_SLICE_MS), 1);
        pthread_mutex_lock(&l->rmu);
        dr_status st = connect_side(l, &l->rc, DR_LOG_WAIT_SLICE_MS, err);
        if (st == DR_OK) st = read_once(l, after, cap, slice, out, n, err); /* -1: XRANGE */
        pthread_mutex_unlock(&l->rmu);
        waited = 1;
        if (st != DR_OK || *n || last) return st;
    }
}

/* ---- the rest */

static dr_status rd_tip(dr_log *base, dr_log_pos *last, uint64_t *records, dr_error *err) {
    rd_log *l = (rd_log *)base;
    pthread_mutex_lock(&l->rmu);
    dr_status st = connect_side(l, &l->rc, DR_LOG_WAIT_SLICE_MS, err);
    redisReply *top = NULL, *len = NULL;
    if (st == DR_OK) {
        top = redisCommand(l->rc, "XREVRANGE %s + - COUNT 1", l->stream);
        if (top) len = redisCommand(l->rc, "XLEN %s", l->stream);
        if (!top || !len) st = conn_fail(l, &l->rc, "tip", err);
    }
    if (st == DR_OK) {
        *last = (dr_log_pos){0, 0};
        if (top->type != REDIS_REPLY_ARRAY) st = reply_error(l, top, "tip", err);
        else if (len->type != REDIS_REPLY_INTEGER || len->integer < 0) st = reply_error(l, len, "tip", err);
        else if (top->elements && (top->element[0]->type != REDIS_REPLY_ARRAY || !top->element[0]->elements ||
                                   reply_pos(top->element[0]->element[0], last)))
            st = reply_error(l, top, "tip", err);
        else *records = (uint64_t)len->integer;
    }
    if (top) freeReplyObject(top);
    if (len) freeReplyObject(len);
    pthread_mutex_unlock(&l->rmu);
    return st;
}

static uint64_t rd_bytes(const dr_log *base) { return atomic_load(&((rd_log *)base)->bytes); }

static void rd_wake(dr_log *base) { atomic_store(&((rd_log *)base)->woken, 1); }

const dr_log_vt dr_log_redis_vt = {
    .name = "redis",
    .accepts = rd_accepts,
    .open = rd_open,
    .close = rd_close,
    .append = rd_append,
    .read = rd_read,
    .tip = rd_tip,
    .bytes = rd_bytes,
    .wake = rd_wake,
};
