/*
 * serve_live.c - the served base and its live swaps (serve_live.h).
 *
 * DESIGN
 * Generations: the live layer owns a chain of serving states (serve_core.c), one per base; the
 * current one is a pointer guarded by a mutex held only to take a reference (a request holds
 * its generation from start to answer). A retired generation is closed once its last
 * reference is released: its writer answers what it had queued (those records are in the log,
 * and the next generation applies them too), then it is freed with its checkpoint.
 * The log decides the base: a swap is a BASE record {"path","hash","covers","from"}. A
 * generation started from record P skips the records at or before `covers` (its checkpoint was
 * trained on them: `dynrec export` then `dynrec train`), applies the rest to its registries and
 * histories, and rebuilds its adapter from the events from `from` (or from its newest snapshot
 * taken after P). So the state after a swap is a function of (checkpoint, log) like any other:
 * a restart, or another replica, builds the same one.
 * Swap (dr__live_swap, one at a time): load the checkpoint; take from the current state the
 * position T it has applied, E (check_events back) and F (E plus the adapter's window back);
 * score the live base and the new one alike, each with an adapter rebuilt from F, on the events
 * after E (dr__srv_prequential, away from the live state); refuse when the new one is worse by
 * more than max_drop unless forced; log the BASE record through the current writer (position
 * P); then follow it like any replica: build the generation for P beside the live one (it reads
 * the log to its end), wait until it has applied what the live one has, switch, retire the old.
 * Follow: the apply thread of the current generation reports every later BASE record
 * (on_base); a thread of the live layer builds the generation for it and switches. The replica
 * that logged the record finds the generation already built and does nothing.
 * Rejected: stopping the apply thread while the new state is built (every write would wait
 * for the build); swapping the model inside one state (every structure is sized and indexed
 * by the model's ids, so a new base is a new state anyway); comparing on the live adapter's own
 * history (the two bases must be rebuilt alike to be compared).
 */
#include "serve_live.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h" /* dr__xxh64 */
#include "model.h"

typedef struct gen_int {
    dr_gen g;                /* first: a dr_gen * is a gen_int * */
    dr_model *own;           /* the checkpoint (NULL when wrapped) */
    int owns_srv;
    unsigned refs;           /* guarded by live.mu */
    int retired;             /* guarded by live.mu */
} gen_int;

typedef struct pending_base {
    dr_log_pos at;
    char *body;
} pending_base;

struct dr_live {
    dr_live_params p;
    char start_path[DR_SRV_PATH_MAX];
    pthread_mutex_t mu;          /* cur, refs, retired, stats, pending */
    pthread_cond_t cv;           /* refs dropped, pending follow, closing */
    gen_int *cur;
    uint64_t next_id;
    pthread_mutex_t swap_mu;     /* one swap or follow at a time */
    int wrapped;
    pthread_t follower;
    int follower_started, closing;
    pending_base pending;        /* the newest BASE record reported and not yet followed */
    dr_live_stats st;
};

dr_live_params dr__live_default_params(void) {
    dr_live_params p;
    memset(&p, 0, sizeof p);
    p.srv = dr__srv_default_params();
    p.explain = 1;
    p.check_events = DR_SRV_SWAP_CHECK_DEFAULT;
    p.max_drop = 0.02;
    p.max_z = 1.645;
    return p;
}

/* ---------------------------------------------------------------- the BASE record */

typedef struct base_rec {
    char path[DR_SRV_PATH_MAX];
    char hash[17];
    dr_log_pos covers, from;
} base_rec;

static dr_status parse_base(const char *body, base_rec *b, dr_error *err) {
    json_error_t je;
    json_t *o = json_loads(body, 0, &je);
    const char *path = json_string_value(json_object_get(o, "path"));
    const char *hash = json_string_value(json_object_get(o, "hash"));
    const char *cov = json_string_value(json_object_get(o, "covers"));
    const char *from = json_string_value(json_object_get(o, "from"));
    int ok = path && hash && cov && from && strlen(path) < sizeof b->path && strlen(hash) < sizeof b->hash &&
             dr__log_pos_parse(cov, &b->covers) == 0 && dr__log_pos_parse(from, &b->from) == 0;
    if (ok) {
        snprintf(b->path, sizeof b->path, "%s", path);
        snprintf(b->hash, sizeof b->hash, "%s", hash);
    }
    json_decref(o);
    return ok ? DR_OK : dr__fail(err, DR_FORMAT, "a base record of the log is malformed: %.200s", body);
}

/* The log position a checkpoint's training data covers (metadata log_covers from a dataset
 * that `dynrec export` wrote), (0, 0) when none. */
static dr_log_pos model_covers(const dr_model *m) {
    dr_log_pos p = {0, 0};
    const char *v = dr_model_meta(m, "log_covers");
    if (v && dr__log_pos_parse(v, &p) != 0) p = (dr_log_pos){0, 0};
    return p;
}

/* The newest BASE record of the log (*found = 0 when none), read through a connection of its
 * own before any state is built. */
static dr_status newest_base(const dr_srv_params *sp, int *found, dr_log_pos *at, char **body,
                             dr_error *err) {
    *found = 0;
    *body = NULL;
    dr_log_params lp = dr__log_default_params();
    lp.spec = sp->log;
    lp.dir = sp->data_dir;
    lp.durable = sp->durable;
    lp.dedup_ttl = sp->idempotency_ttl;
    dr_log *log = NULL;
    dr_status st = dr__log_open(&lp, &log, err);
    if (st != DR_OK) return st;
    dr_log_rec *recs = dr__calloc(DR_SRV_APPLY_BATCH, sizeof *recs);
    dr_log_pos after = {0, 0};
    if (!recs) st = dr__fail(err, DR_NOMEM, "server: out of memory");
    while (st == DR_OK) {
        size_t n = 0;
        if ((st = log->vt->read(log, after, DR_SRV_APPLY_BATCH, 0, recs, &n, err)) != DR_OK || !n) break;
        for (size_t k = 0; k < n; k++)
            if (recs[k].kind == DR_REC_BASE && recs[k].body) {
                char *b = dr__strdup(recs[k].body);
                if (!b) {
                    st = dr__fail(err, DR_NOMEM, "server: out of memory");
                    break;
                }
                dr__free(*body);
                *body = b;
                *at = recs[k].pos;
                *found = 1;
            }
        after = recs[n - 1].pos;
    }
    dr__free(recs);
    dr__log_close(log);
    if (st != DR_OK) {
        dr__free(*body);
        *body = NULL;
        *found = 0;
    }
    return st;
}

/* ---------------------------------------------------------------- generations */

static void on_base(void *ud, dr_log_pos at, const char *body);

static void gen_free(gen_int *gi) {
    if (!gi) return;
    if (gi->owns_srv) dr__srv_close(gi->g.srv);
    dr_explainer_free(gi->g.ex);
    dr_model_free(gi->own);
    dr__free(gi);
}

/* A generation on checkpoint m (taken over) at BASE record b (NULL: none). */
static dr_status gen_open(dr_live *l, dr_model *m, const char *path, const char *hash,
                          const dr_srv_base *b, gen_int **out, dr_error *err) {
    *out = NULL;
    gen_int *gi = dr__calloc(1, sizeof *gi);
    if (!gi) {
        dr_model_free(m);
        return dr__fail(err, DR_NOMEM, "server: out of memory");
    }
    gi->own = m;
    gi->g.model = m;
    snprintf(gi->g.path, sizeof gi->g.path, "%s", path);
    snprintf(gi->g.hash, sizeof gi->g.hash, "%s", hash);
    if (b) {
        gi->g.at = b->at;
        gi->g.covers = b->covers;
    }
    dr_status st = DR_OK;
    if (l->p.explain) {
        dr_explain_params xp = dr_explain_default_params(); /* template: deterministic, fast */
        st = dr_explainer_create(m, &xp, &gi->g.ex, err);
    }
    dr_srv_params sp = l->p.srv;
    sp.base = b;
    sp.model_path = gi->g.path;
    sp.model_hash = gi->g.hash;
    sp.on_base = on_base;
    sp.on_base_ud = l;
    if (st == DR_OK) st = dr__srv_open(m, &sp, &gi->g.srv, err);
    if (st != DR_OK) {
        gen_free(gi);
        return st;
    }
    gi->owns_srv = 1;
    *out = gi;
    return DR_OK;
}

/* Makes gi current once it has applied what the current one has; the old one is closed once
 * released. swap_mu held. */
static void switch_to(dr_live *l, gen_int *gi) {
    gen_int *old = l->cur;
    dr_log_pos applied, a, b;
    dr_error e = {0};
    if (dr__srv_positions(old->g.srv, 0, 0, &applied, &a, &b, &e) == DR_OK &&
        !dr__srv_wait_applied(gi->g.srv, applied, 10000, NULL))
        dr__log(DR_LOG_WARN, "server: the new base has not caught up with the old one after 10 s; "
               "switching anyway");
    pthread_mutex_lock(&l->mu);
    gi->g.id = ++l->next_id;
    gi->g.since = dr__now_seconds();
    l->cur = gi;
    old->retired = 1;
    l->st.swaps++;
    dr__srv_retire(old->g.srv); /* no snapshot of the old base from now on */
    while (old->refs) pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
    gen_free(old);
}

/* --compact-after-swap: what the live base no longer needs leaves the SQLite log (the server
 * goes on meanwhile: short transactions, serve_store.c). A failure is logged, not fatal. */
static void compact(dr_live *l) {
    const char *spec = l->p.srv.log;
    if (spec && strcmp(spec, "sqlite") != 0) return; /* a Redis stream is trimmed by its operator */
    dr_compact_params cp = {l->p.srv.data_dir, spec, 0, NULL, NULL};
    dr_compact_result res;
    dr_error e = {0};
    if (dr_state_compact(&cp, &res, &e) != DR_OK)
        dr__log(DR_LOG_WARN, "server: compaction after the swap failed: %s", e.msg);
    else if (res.nothing)
        dr__log(DR_LOG_INFO, "server: compaction after the swap: %s", res.why);
    else
        dr__log(DR_LOG_INFO, "server: compaction after the swap: %llu records to archive.db, log %llu -> %llu "
               "bytes in %.2f s", (unsigned long long)res.moved, (unsigned long long)res.bytes_before,
               (unsigned long long)res.bytes_after, res.seconds_move + res.seconds_vacuum);
}

/* Builds the generation for the BASE record at `at` and switches to it; takes `loaded` (the
 * checkpoint when the caller has it, else NULL). swap_mu held. */
static dr_status follow(dr_live *l, dr_log_pos at, const char *body, dr_model *loaded, dr_error *err) {
    base_rec br;
    dr_status st = parse_base(body, &br, err);
    dr_model *m = loaded;
    char hash[17] = "";
    if (st == DR_OK) st = dr__ckpt_file_hash(br.path, hash, err);
    if (st == DR_OK && strcmp(hash, br.hash) != 0)
        st = dr__fail(err, DR_FORMAT, "%s: the checkpoint changed since the swap was logged (hash %s, "
                     "the log says %s)", br.path, hash, br.hash);
    if (st == DR_OK && !m) st = dr_model_load(br.path, &m, err);
    if (st != DR_OK) {
        dr_model_free(m);
        return st;
    }
    double t0 = dr__now_seconds();
    dr_srv_base b = {at, br.covers, br.from};
    gen_int *gi = NULL;
    if ((st = gen_open(l, m, br.path, hash, &b, &gi, err)) != DR_OK) return st; /* m is freed */
    switch_to(l, gi);
    pthread_mutex_lock(&l->mu);
    l->st.last_seconds = dr__now_seconds() - t0;
    pthread_mutex_unlock(&l->mu);
    char ap[DR_LOG_POS_MAX];
    dr__log_pos_format(at, ap);
    dr__log(DR_LOG_INFO, "server: base %s (generation %llu) live from log position %s, built in %.2f s",
           br.path, (unsigned long long)gi->g.id, ap, dr__now_seconds() - t0);
    if (l->p.compact_after_swap) compact(l);
    return DR_OK;
}

/* Apply thread of a generation: a later BASE record was applied. */
static void on_base(void *ud, dr_log_pos at, const char *body) {
    dr_live *l = ud;
    char *b = dr__strdup(body);
    pthread_mutex_lock(&l->mu);
    if (b && (!l->pending.body || dr__log_pos_cmp(at, l->pending.at) > 0)) {
        dr__free(l->pending.body);
        l->pending = (pending_base){at, b};
        b = NULL;
        pthread_cond_broadcast(&l->cv);
    } else if (!b) {
        l->st.failed++;
        dr__log(DR_LOG_ERROR, "server: out of memory noting a base swap; this replica stays on its base");
    }
    pthread_mutex_unlock(&l->mu);
    dr__free(b);
}

static void *follower_main(void *arg) {
    dr_live *l = arg;
    for (;;) {
        pthread_mutex_lock(&l->mu);
        while (!l->closing && !l->pending.body) pthread_cond_wait(&l->cv, &l->mu);
        if (l->closing) {
            pthread_mutex_unlock(&l->mu);
            break;
        }
        pending_base pb = l->pending;
        l->pending = (pending_base){{0, 0}, NULL};
        pthread_mutex_unlock(&l->mu);
        pthread_mutex_lock(&l->swap_mu);
        if (dr__log_pos_cmp(pb.at, l->cur->g.at) > 0) { /* not built yet (another replica's swap) */
            dr_error e = {0};
            if (follow(l, pb.at, pb.body, NULL, &e) != DR_OK) {
                pthread_mutex_lock(&l->mu);
                l->st.failed++;
                pthread_mutex_unlock(&l->mu);
                dr__log(DR_LOG_ERROR, "server: cannot follow the base swap in the log: %s; this replica "
                       "keeps serving its base and will not take snapshots", e.msg);
            }
        }
        pthread_mutex_unlock(&l->swap_mu);
        dr__free(pb.body);
    }
    return NULL;
}

/* ---------------------------------------------------------------- open / close */

static dr_live *live_new(void) {
    dr_live *l = dr__calloc(1, sizeof *l);
    if (!l) return NULL;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    pthread_mutex_init(&l->swap_mu, NULL);
    return l;
}

dr_status dr__live_open(const dr_live_params *p, dr_live **out, dr_error *err) {
    if (!p || !out || !p->model_path) return dr__fail(err, DR_ARG, "server: NULL argument");
    *out = NULL;
    if (strlen(p->model_path) >= DR_SRV_PATH_MAX) return dr__fail(err, DR_ARG, "server: the model path is too long");
    dr_live *l = live_new();
    if (!l) return dr__fail(err, DR_NOMEM, "server: out of memory");
    l->p = *p;
    l->p.srv.base = NULL;
    if (!realpath(p->model_path, l->start_path)) snprintf(l->start_path, sizeof l->start_path, "%s", p->model_path);
    l->p.model_path = l->start_path;
    int found = 0;
    dr_log_pos at = {0, 0};
    char *body = NULL, hash[17] = "";
    base_rec br;
    dr_model *m = NULL;
    gen_int *gi = NULL;
    dr_status st = newest_base(&p->srv, &found, &at, &body, err);
    if (st == DR_OK && found) {
        st = parse_base(body, &br, err);
        if (st == DR_OK) st = dr__ckpt_file_hash(br.path, hash, err);
        if (st == DR_OK && strcmp(hash, br.hash) != 0)
            st = dr__fail(err, DR_FORMAT, "%s: the log's newest base swap names this checkpoint with hash "
                         "%s, the file has %s: restore that file to start", br.path, br.hash, hash);
        if (st == DR_OK && (st = dr_model_load(br.path, &m, err)) == DR_OK) {
            char ap[DR_LOG_POS_MAX];
            dr__log_pos_format(at, ap);
            dr__log(DR_LOG_INFO, "server: the log swapped the base at %s: serving %s", ap, br.path);
            dr_srv_base b = {at, br.covers, br.from};
            st = gen_open(l, m, br.path, hash, &b, &gi, err);
        }
    } else if (st == DR_OK) {
        st = dr__ckpt_file_hash(l->start_path, hash, err);
        if (st == DR_OK) st = dr_model_load(l->start_path, &m, err);
        if (st == DR_OK) st = gen_open(l, m, l->start_path, hash, NULL, &gi, err);
    }
    dr__free(body);
    if (st != DR_OK) {
        dr__live_close(l);
        return st;
    }
    gi->g.id = ++l->next_id;
    gi->g.since = dr__now_seconds();
    l->cur = gi;
    if (pthread_create(&l->follower, NULL, follower_main, l) != 0) {
        dr__live_close(l);
        return dr__fail(err, DR_INTERNAL, "server: cannot start the swap thread");
    }
    l->follower_started = 1;
    *out = l;
    return DR_OK;
}

dr_status dr__live_wrap(dr_srv *s, const dr_model *m, int explain, dr_live **out, dr_error *err) {
    if (!s || !out) return dr__fail(err, DR_ARG, "server: NULL argument");
    *out = NULL;
    dr_live *l = live_new();
    gen_int *gi = l ? dr__calloc(1, sizeof *gi) : NULL;
    if (!gi) {
        dr__free(l);
        return dr__fail(err, DR_NOMEM, "server: out of memory");
    }
    l->wrapped = 1;
    gi->g.srv = s;
    gi->g.model = m;
    gi->g.id = l->next_id = 1;
    gi->g.since = dr__now_seconds();
    if (m && explain) {
        dr_explain_params xp = dr_explain_default_params();
        dr_status st = dr_explainer_create(m, &xp, &gi->g.ex, err);
        if (st != DR_OK) {
            dr__free(gi);
            dr__free(l);
            return st;
        }
    }
    l->cur = gi;
    *out = l;
    return DR_OK;
}

void dr__live_close(dr_live *l) {
    if (!l) return;
    if (l->follower_started) {
        pthread_mutex_lock(&l->mu);
        l->closing = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->follower, NULL);
    }
    gen_free(l->cur);
    dr__free(l->pending.body);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->swap_mu);
    dr__free(l);
}

dr_gen *dr__live_acquire(dr_live *l) {
    pthread_mutex_lock(&l->mu);
    gen_int *gi = l->cur;
    gi->refs++;
    pthread_mutex_unlock(&l->mu);
    return &gi->g;
}

void dr__live_release(dr_live *l, dr_gen *g) {
    if (!g) return;
    gen_int *gi = (gen_int *)g;
    pthread_mutex_lock(&l->mu);
    if (--gi->refs == 0 && gi->retired) pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

void dr__live_hold(dr_live *l, dr_gen *g) {
    pthread_mutex_lock(&l->mu);
    ((gen_int *)g)->refs++;
    pthread_mutex_unlock(&l->mu);
}

void dr__live_stats(dr_live *l, dr_live_stats *out) {
    pthread_mutex_lock(&l->mu);
    *out = l->st;
    pthread_mutex_unlock(&l->mu);
}

/* ---------------------------------------------------------------- swap */

dr_status dr__live_swap(dr_live *l, const char *path, int force, dr_swap_report *rep, dr_error *err) {
    if (!l || !path || !rep) return dr__fail(err, DR_ARG, "server: NULL argument");
    memset(rep, 0, sizeof *rep);
    if (l->wrapped) return dr__fail(err, DR_UNSUPPORTED, "this server cannot swap its base");
    char abs[DR_SRV_PATH_MAX];
    if (strlen(path) >= sizeof abs) return dr__fail(err, DR_ARG, "path: too long");
    if (!realpath(path, abs)) return dr__fail(err, DR_ARG, "path: %s: %s", path, strerror(errno));
    if (pthread_mutex_trylock(&l->swap_mu) != 0)
        return dr__fail(err, DR_LIMIT, "another base swap is in progress");
    double t0 = dr__now_seconds();
    dr_model *m = NULL;
    char hash[17] = "";
    dr_status st = dr__ckpt_file_hash(abs, hash, err);
    if (st == DR_OK) st = dr_model_load(abs, &m, err);
    if (st == DR_OK && !dr_model_latent_dim(m))
        st = dr__fail(err, DR_UNSUPPORTED, "%s: model '%s' cannot be served (not a dot-product model)",
                      abs, dr_model_name(m));
    dr_gen *g0 = dr__live_acquire(l);
    dr_log_pos applied = {0, 0}, e_pos = {0, 0}, f_pos = {0, 0};
    dr_adapter_params nap = l->p.srv.adapter; /* the new base's adapter, with its own notes */
    if (m) dr__adapter_params_from_model(&nap, m);
    uint32_t window = l->p.rebuild_events ? l->p.rebuild_events : nap.window.capacity;
    if (st == DR_OK)
        st = dr__srv_positions(g0->srv, l->p.check_events + 1, l->p.check_events + 1 + window, &applied,
                               &e_pos, &f_pos, err);
    dr_log_pos covers = m ? model_covers(m) : (dr_log_pos){0, 0};
    if (st == DR_OK) { /* both bases rebuilt alike: adapter from F, scored on the same events:
                          after E and after what the new base was trained on (no leak) */
        dr_srv_params sp = l->p.srv;
        dr_log_pos after = dr__log_pos_cmp(covers, e_pos) > 0 ? covers : e_pos;
        dr_srv_base bl = {g0->at, g0->covers, f_pos}, bn = {applied, covers, f_pos};
        sp.base = &bl;
        dr_preq_trace tl = {0}, tn = {0};
        st = dr__srv_prequential(g0->model, &sp, applied, after, &rep->live, &tl, err);
        sp.base = &bn;
        if (st == DR_OK) st = dr__srv_prequential(m, &sp, applied, after, &rep->cand, &tn, err);
        rep->checked = st == DR_OK && rep->cand.events >= DR_SRV_SWAP_CHECK_MIN;
        uint64_t paired = 0;
        if (st == DR_OK) dr__preq_paired(&tl, &tn, &paired, &rep->live_only, &rep->new_only);
        dr__preq_trace_free(&tl);
        dr__preq_trace_free(&tn);
        const double b = (double)rep->live_only, c = (double)rep->new_only;
        /* continuity-corrected, signed: > 0 when the live base hit more */
        rep->z = b + c > 0 ? copysign(fmax(fabs(b - c) - 1.0, 0.0) / sqrt(b + c), b - c) : 0.0;
    }
    dr_srv_ack ack;
    char body[DR_SRV_PATH_MAX + 256];
    const int worse = rep->cand.hit10 < rep->live.hit10 - l->p.max_drop ||
                      (l->p.max_z > 0 && rep->z > l->p.max_z);
    if (st == DR_OK && !force && rep->checked && worse) {
        pthread_mutex_lock(&l->mu);
        l->st.refused++;
        pthread_mutex_unlock(&l->mu);
        dr__live_release(l, g0);
        dr_model_free(m);
        rep->gen = l->cur->g.id;
        rep->seconds = dr__now_seconds() - t0;
        pthread_mutex_unlock(&l->swap_mu);
        dr__log(DR_LOG_WARN, "server: base swap to %s refused: Hit@10 %.4f against the live base's %.4f "
               "on the last %llu events (hit by the live base only %llu, by the new only %llu, z %.2f)",
               abs, rep->cand.hit10, rep->live.hit10, (unsigned long long)rep->cand.events,
               (unsigned long long)rep->live_only, (unsigned long long)rep->new_only, rep->z);
        return DR_OK;
    }
    if (st == DR_OK) {
        char cv[DR_LOG_POS_MAX], fv[DR_LOG_POS_MAX];
        dr__log_pos_format(covers, cv);
        dr__log_pos_format(f_pos, fv);
        json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "path", abs, "hash", hash, "covers", cv, "from", fv);
        char *js = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(o);
        if (!js || strlen(js) >= sizeof body) st = dr__fail(err, DR_NOMEM, "server: out of memory");
        else snprintf(body, sizeof body, "%s", js);
        free(js);
    }
    if (st == DR_OK) st = dr__srv_append_base(g0->srv, body, &ack, err);
    dr__live_release(l, g0);
    dr_log_pos at = {0, 0};
    if (st == DR_OK && dr__log_pos_parse(ack.stream_id, &at) != 0)
        st = dr__fail(err, DR_INTERNAL, "server: the base record's position is malformed");
    if (st == DR_OK) {
        st = follow(l, at, body, m, err); /* takes m */
        m = NULL;
    }
    dr_model_free(m);
    if (st == DR_OK) {
        rep->swapped = 1;
        rep->gen = l->cur->g.id;
        snprintf(rep->at, sizeof rep->at, "%s", ack.stream_id);
    } else {
        pthread_mutex_lock(&l->mu);
        l->st.failed++;
        pthread_mutex_unlock(&l->mu);
    }
    rep->seconds = dr__now_seconds() - t0;
    pthread_mutex_unlock(&l->swap_mu);
    return st;
}

dr_status dr__live_reload(dr_live *l, dr_swap_report *rep, dr_error *err) {
    if (!l) return dr__fail(err, DR_ARG, "server: NULL argument");
    return dr__live_swap(l, l->start_path, 0, rep, err);
}
