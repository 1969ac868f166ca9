/*
 * live_events.c - the P-LIVE replay's events and P-STREAM's answer for each of them
 * (bench/live_replay.sh; P-LIVE in ../shared/PROTOCOL.md).
 *
 *   live_events DATA MODEL.drm OUT.tsv
 *
 * DESIGN: the offline replay is the reference the served replay must agree with, so the
 * events and their flags come from it rather than from a second reading of the protocol: this
 * program runs P-STREAM (dr__stream_eval, the options of `dynrec eval --protocol stream` at
 * its defaults) on the checkpoint and writes every replayed event (time >= T0) in replay
 * order with what the replay decided: whether it is scored, whether its target is cold, and
 * the pessimistic rank of the target under the frozen and the adapter column. The client
 * (live_client.c) asks the server about exactly the scored events and compares its answers
 * event by event, also on a prefix of the replay (LIMIT), where the whole-replay means of
 * `dynrec eval` say nothing. The P-STREAM JSON of this run is printed on stdout (the script
 * prints it beside `dynrec eval`'s own). Rejected: recomputing "scored" and "cold" in the
 * client (a second implementation of the rules, which could disagree silently).
 * OUT.tsv: a header line `# dataset=... t0=... time_scale=... events=N`, then one line per
 * replayed event: group (index of its timestamp), user id, item id, time in UNIX seconds
 * (what POST /v1/events takes: the dataset's time times its time scale, rounded down),
 * scored (0/1), cold (0/1), frozen rank, adapter rank, adapter rank with served_time (0 when
 * not scored). The last column is a second run of the replay with the adapter's time as the
 * server has it (eval_stream.h, served_time: whole seconds, the query at the newest applied
 * event's time): on a dataset with sub-second times (amazon-mtv) the adapter learns from
 * slightly different inputs over HTTP, and this run shows that this is the whole difference.
 */
#include <math.h>

#include <cblas.h>

#include "bench.h"
#include "eval_stream.h"

typedef struct ranks {
    size_t e0;       /* first replayed event */
    uint32_t *rf, *ra; /* (replayed) frozen and adapter ranks, 0 = not scored */
    uint32_t *rs;      /* (replayed) adapter ranks with served_time */
    int served;        /* 1: the served_time run (fills rs only) */
    uint8_t *cold;     /* (replayed) */
} ranks;

static void on_event(void *ud, size_t e, uint32_t rf, uint32_t ra, int cold) {
    ranks *r = ud;
    if (r->served) {
        r->rs[e - r->e0] = ra;
        return;
    }
    r->rf[e - r->e0] = rf;
    r->ra[e - r->e0] = ra;
    r->cold[e - r->e0] = (uint8_t)cold;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: live_events DATA MODEL.drm OUT.tsv\n");
        return 2;
    }
    dr_error err = {0};
    dr_dataset *ds = NULL;
    dr_model *m = NULL;
    dr_load_params lp = dr_load_default_params();
    if (dr_dataset_load(argv[1], &lp, &ds, &err) != DR_OK || dr_model_load(argv[2], &m, &err) != DR_OK) {
        fprintf(stderr, "live_events: %s\n", err.msg);
        return 1;
    }
    openblas_set_num_threads(1);
    dr_dataset_stats st;
    dr_dataset_get_stats(ds, &st);
    const char *split = dr_model_meta(m, "split"), *t0 = dr_model_meta(m, "T0");
    char want[32];
    snprintf(want, sizeof want, "%lld", (long long)st.t0);
    if (!split || strcmp(split, "t0") || !t0 || strcmp(t0, want)) {
        fprintf(stderr, "live_events: %s was not trained on the interactions before T0 %s "
                "(`dynrec train --protocol stream`)\n", argv[2], want);
        return 1;
    }
    ranks r = {0};
    while (r.e0 < ds->n_events && ds->ev_time[r.e0] < st.t0) r.e0++;
    size_t n = ds->n_events - r.e0;
    r.rf = calloc(n + 1, sizeof *r.rf);
    r.ra = calloc(n + 1, sizeof *r.ra);
    r.rs = calloc(n + 1, sizeof *r.rs);
    r.cold = calloc(n + 1, 1);
    if (!r.rf || !r.ra || !r.rs || !r.cold) {
        fprintf(stderr, "live_events: out of memory\n");
        return 1;
    }
    /* dr_eval_stream's mapping of its default options (eval_stream_api.c) */
    dr_stream_params p = dr__stream_default_params();
    p.adapter.seed = dr_stream_default_options().seed;
    p.on_event = on_event;
    p.on_event_ud = &r;
    dr_stream_result res, res_served;
    if (dr__stream_eval(ds, m, &p, &res, &err) != DR_OK) {
        fprintf(stderr, "live_events: %s\n", err.msg);
        return 1;
    }
    r.served = p.served_time = 1; /* the same replay with the server's notion of time */
    if (dr__stream_eval(ds, m, &p, &res_served, &err) != DR_OK) {
        fprintf(stderr, "live_events: %s\n", err.msg);
        return 1;
    }
    snprintf(res.model, sizeof res.model, "%s", argv[2]);
    FILE *f = fopen(argv[3], "w");
    if (!f) {
        fprintf(stderr, "live_events: cannot write %s\n", argv[3]);
        return 1;
    }
    fprintf(f, "# dataset=%s t0=%lld time_scale=%g events=%zu scored=%zu\n", dr_dataset_name(ds),
            (long long)st.t0, ds->time_scale, n, res.n_scored);
    size_t group = 0;
    for (size_t k = 0; k < n; k++) {
        size_t e = r.e0 + k;
        if (k && ds->ev_time[e] != ds->ev_time[e - 1]) group++;
        int64_t secs = (int64_t)floor((double)ds->ev_time[e] * ds->time_scale);
        fprintf(f, "%zu\t%s\t%s\t%lld\t%d\t%d\t%u\t%u\t%u\n", group,
                dr_dataset_user_id(ds, ds->ev_user[e]), dr_dataset_item_id(ds, ds->ev_item[e]),
                (long long)secs, r.rf[k] > 0, r.cold[k], r.rf[k], r.ra[k], r.rs[k]);
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "live_events: cannot write %s\n", argv[3]);
        return 1;
    }
    char buf[16384];
    dr_stream_result_json(&res, buf, sizeof buf);
    puts(buf);
    free(r.rf);
    free(r.ra);
    free(r.rs);
    free(r.cold);
    dr_model_free(m);
    dr_dataset_free(ds);
    return 0;
}
