/*
 * compact.c - `dynrec compact`: moves the log records the newest base record no longer needs
 * out of a state folder's events.db (dr_state_compact; docs/FORMATS.md).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *compact_help =
    "usage: dynrec compact --data-dir DIR [--drop] [--log sqlite]\n"
    "  Moves the records of DIR/events.db that the newest base record no longer needs (seq <=\n"
    "  min(covers, from - 1): the base was trained on them and its adapter is rebuilt from\n"
    "  `from`) into DIR/archive.db, then shrinks events.db (WAL checkpoint, vacuum). Safe while\n"
    "  the server runs. Without a base record there is nothing to move (exit 0).\n"
    "  --drop   do not keep the moved records in archive.db\n"
    "  A Redis stream is trimmed with XTRIM MINID instead (docs/SCALING.md).\n";

/* At most one line a second (the library calls after every transaction). */
static void progress(void *ud, const char *stage, size_t done, size_t total) {
    double *next = ud, now = cli_now();
    (void)total;
    if (now < *next) return;
    *next = now + 1.0;
    fprintf(stderr, "%s: %zu records moved\n", stage, done);
}

int cli_cmd_compact(int argc, char **argv) {
    dr_compact_params p = dr_compact_default_params();
    cli_opts o = {argc, argv, 0};
    for (o.i = 0; o.i < argc; o.i++) {
        const char *a = argv[o.i], *v;
        int err = 0;
        if (cli_is_help(a)) {
            fputs(compact_help, stdout);
            return 0;
        }
        if (!strcmp(a, "--drop")) { p.drop = 1; continue; }
        if ((v = cli_opt_value(&o, "--data-dir", &err))) { p.data_dir = v; continue; }
        if ((v = cli_opt_value(&o, "--log", &err))) { p.log = v; continue; }
        if (err) return err;
        return cli_usage_error("compact: unknown option '%s'", a);
    }
    if (!p.data_dir) return cli_usage_error("compact: --data-dir is required");
    double next = cli_now() + 1.0;
    p.progress = progress;
    p.progress_ud = &next;
    dr_compact_result r;
    dr_error e = {0};
    dr_status s = dr_state_compact(&p, &r, &e);
    if (s != DR_OK) return cli_die(s, &e);
    if (r.nothing) {
        fprintf(stderr, "compact: nothing to compact: %s\n", r.why);
        return 0;
    }
    fprintf(stderr,
            "compact: %llu records moved%s (seq <= %llu; %llu by all compactions), events.db %llu -> "
            "%llu bytes (WAL included), move %.2f s, %s vacuum %.2f s\n",
            (unsigned long long)r.moved, p.drop ? " and dropped" : " to archive.db",
            (unsigned long long)r.through, (unsigned long long)r.records,
            (unsigned long long)r.bytes_before, (unsigned long long)r.bytes_after, r.seconds_move,
            r.vacuum, r.seconds_vacuum);
    return 0;
}
