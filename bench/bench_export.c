/*
 * bench_export.c - fills a server state folder fast through the store API (the same rows the
 * server writes: events in batches of 1000, one PUT item record with features per 1000
 * events, optionally a base record) and times dr_state_export and the compaction on it.
 *
 *   bench_export                       a 100,000-event folder in a temporary directory:
 *                                      export and compaction timings (make bench)
 *   bench_export fill DIR MODEL N [F]  writes DIR/events.db with N events over MODEL's users
 *                                      and items plus new ones, meta model_path = MODEL, and,
 *                                      when F > 0, a base record covering the first F * N
 *                                      records (bench/export_compact.sh drives the CLI on it)
 */
#include "bench.h"

#include <inttypes.h>
#include <stdlib.h>

#include "ckpt.h" /* dr__xxh64 */
#include "common.h"
#include "serve_store.h"

static int fill(const char *dir, const char *model, uint64_t n, double frac) {
    dr_error e = {0};
    dr_model *m = NULL;
    dr_store *s = NULL;
    if (dr_model_load(model, &m, &e) != DR_OK || dr__store_open(dir, 0, &s, &e) != DR_OK) {
        fprintf(stderr, "bench_export: %s\n", e.msg);
        dr_model_free(m);
        return 1;
    }
    uint32_t nu = dr_model_n_users(m), ni = dr_model_n_items(m);
    uint64_t new_users = n / 20 + 1, new_items = n / 200 + 1, seq = 0, x = 88172645463325252ULL;
    enum { B = 1000 };
    static dr_store_rec recs[B + 1];
    static char ubuf[B + 1][64], ibuf[B + 1][64], body[512];
    int rc = 0;
    for (uint64_t k = 0; k < n && !rc;) {
        size_t b = 0;
        for (; b < B && k < n; b++, k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            uint64_t r = x;
            if (r % 4 == 0) snprintf(ubuf[b], sizeof ubuf[b], "%s", dr_model_user_id(m, (uint32_t)(r >> 8) % nu));
            else snprintf(ubuf[b], sizeof ubuf[b], "bu%" PRIu64, (r >> 8) % new_users);
            if (r % 3 == 0) snprintf(ibuf[b], sizeof ibuf[b], "bi%" PRIu64, (r >> 20) % new_items);
            else snprintf(ibuf[b], sizeof ibuf[b], "%s", dr_model_item_id(m, (uint32_t)(r >> 20) % ni));
            recs[b] = (dr_store_rec){0, DR_REC_EVENT, ubuf[b], ibuf[b], 1700000000 + (int64_t)k, NULL};
        }
        snprintf(ibuf[b], sizeof ibuf[b], "bi%" PRIu64, (k / B) % new_items);
        snprintf(body, sizeof body, "{\"attributes\":[\"genre=g%" PRIu64 "\"],\"features\":{\"thumb\":"
                 "[%.3f,%.3f,%.3f,%.3f]},\"title\":\"Item %" PRIu64 "\"}", k % 7, (double)(k % 13),
                 0.5, 1.0, 2.0, k);
        recs[b] = (dr_store_rec){0, DR_REC_ITEM, NULL, ibuf[b], 1700000000 + (int64_t)k, body};
        if (dr__store_append(s, recs, b + 1, &e) != DR_OK) rc = 1;
        seq += b + 1;
    }
    if (!rc && frac > 0) {
        uint64_t covers = (uint64_t)(frac * (double)seq);
        /* the file's XXH64, as a swap records it: the server checks it before loading */
        char hash[17] = "0";
        FILE *f = fopen(model, "rb");
        if (f && fseek(f, 0, SEEK_END) == 0) {
            long len = ftell(f);
            char *buf = len > 0 ? malloc((size_t)len) : NULL;
            rewind(f);
            if (buf && fread(buf, 1, (size_t)len, f) == (size_t)len)
                snprintf(hash, sizeof hash, "%016llx", (unsigned long long)dr__xxh64(buf, (size_t)len, 0));
            free(buf);
        }
        if (f) fclose(f);
        snprintf(body, sizeof body, "{\"path\":\"%s\",\"hash\":\"%s\",\"covers\":\"0-%" PRIu64
                 "\",\"from\":\"0-%" PRIu64 "\"}", model, hash, covers, covers + 1);
        dr_store_rec br = {0, DR_REC_BASE, NULL, NULL, 1700000000 + (int64_t)n, body};
        rc = dr__store_append(s, &br, 1, &e) != DR_OK;
    }
    if (!rc) rc = dr__store_meta_set(s, "model_path", model, &e) != DR_OK;
    if (rc) fprintf(stderr, "bench_export: %s\n", e.msg);
    dr__store_close(s);
    dr_model_free(m);
    return rc;
}

static uint64_t folder_bytes(const char *dir) {
    char p[600];
    uint64_t b = 0;
    const char *f[2] = {"events.db", "events.db-wal"};
    for (int k = 0; k < 2; k++) {
        snprintf(p, sizeof p, "%s/%s", dir, f[k]);
        FILE *h = fopen(p, "rb");
        if (!h) continue;
        fseek(h, 0, SEEK_END);
        b += (uint64_t)ftell(h);
        fclose(h);
    }
    return b;
}

int main(int argc, char **argv) {
    if (argc >= 5 && !strcmp(argv[1], "fill"))
        return fill(argv[2], argv[3], strtoull(argv[4], NULL, 10), argc > 5 ? atof(argv[5]) : 0);
    bench_header("export");
    char dir[] = "/tmp/bench_export.XXXXXX", model[600], state[600], out[600], cmd[1300];
    if (!mkdtemp(dir)) return 1;
    snprintf(model, sizeof model, "%s/m.drm", dir);
    snprintf(state, sizeof state, "%s/state", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    dr_error e = {0};
    dr_synth_params sp = dr_synth_default_params();
    sp.n_users = 2000;
    sp.n_items = 1000;
    sp.n_events = 40000;
    dr_dataset *ds = NULL;
    dr_split *split = NULL;
    dr_model *m = NULL;
    dr_model_params mp = dr_model_default_params();
    mp.name = "mf";
    mp.dim = 16;
    mp.epochs = 1;
    if (dr_synth_generate(&sp, &ds, &e) || dr_split_create(ds, DR_SPLIT_LOO, &split, &e) ||
        dr_model_fit(ds, split, &mp, &m, &e) || dr_model_save(m, ds, split, model, &e)) {
        fprintf(stderr, "bench_export: %s\n", e.msg);
        return 1;
    }
    dr_model_free(m);
    dr_split_free(split);
    dr_dataset_free(ds);
    const uint64_t n = 100000;
    double t0 = bench_now();
    if (fill(state, model, n, 0.9)) return 1;
    printf("fill_events_per_s %.0f events/s (%" PRIu64 " events, batches of 1000)\n",
           (double)n / (bench_now() - t0), n);
    double ts[3];
    dr_export_result r;
    for (int k = 0; k < 3; k++) {
        dr_export_params p = dr_export_default_params();
        p.data_dir = state;
        p.out = out;
        p.model_path = model;
        t0 = bench_now();
        if (dr_state_export(&p, &r, &e) != DR_OK) {
            fprintf(stderr, "bench_export: %s\n", e.msg);
            return 1;
        }
        ts[k] = bench_now() - t0;
    }
    printf("export_seconds %.3f s (median of 3, %" PRIu64 " log records, %" PRIu64 " events)\n",
           bench_median(ts, 3), r.log_records, r.events);
    uint64_t before = folder_bytes(state);
    dr_compact_params cp = dr_compact_default_params();
    cp.data_dir = state;
    dr_compact_result c;
    t0 = bench_now();
    if (dr_state_compact(&cp, &c, &e) != DR_OK) {
        fprintf(stderr, "bench_export: %s\n", e.msg);
        return 1;
    }
    printf("compact_seconds %.3f s (%" PRIu64 " records moved, %s vacuum)\n", bench_now() - t0,
           c.moved, c.vacuum);
    printf("log_bytes_before %" PRIu64 " B\nlog_bytes_after %" PRIu64 " B\n", before,
           folder_bytes(state));
    printf("hash %016" PRIx64 "\n", bench_hash(0, &r.events, sizeof r.events));
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) != 0;
}
