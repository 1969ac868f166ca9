/*
 * export.c - `dynrec export`: a server's state folder and event log as a dataset folder that
 * `dynrec train --data` trains on (dr_state_export; docs/FORMATS.md).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *export_help =
    "usage: dynrec export --data-dir DIR --out FOLDER [--model M.drm] [--log SPEC] [--data PATH]\n"
    "  Writes what the server knows as a dataset folder (dynrec format): the base checkpoint's\n"
    "  interactions, then every event of the log after the position the base covers (DIR's\n"
    "  archive.db first, then the log), the catalogue with the newest PUT's title, attributes\n"
    "  and features. manifest.tsv gets log_covers and log_records; `dynrec train` copies\n"
    "  log_covers into the checkpoint. Memory grows with users and items, not with the log.\n"
    "  --model M.drm   the base (default: the newest base record's checkpoint, else the one\n"
    "                  the server was started with, meta model_path)\n"
    "  --log SPEC      sqlite (default: DIR/events.db) or redis://HOST:PORT[/STREAM] |\n"
    "                  redis+unix:///PATH[?stream=S], as for dynrec serve\n"
    "  --data PATH     a dataset whose features are carried over for the checkpoint's items\n"
    "                  (matched by item id): the original training data or an earlier export\n";

/* One line per call (the library calls about once a second). */
static void progress(void *ud, const char *stage, size_t done, size_t total) {
    (void)ud;
    (void)total;
    fprintf(stderr, "%s: %zu records\n", stage, done);
}

int cli_cmd_export(int argc, char **argv) {
    dr_export_params p = dr_export_default_params();
    cli_opts o = {argc, argv, 0};
    for (o.i = 0; o.i < argc; o.i++) {
        const char *a = argv[o.i], *v;
        int err = 0;
        if (cli_is_help(a)) {
            fputs(export_help, stdout);
            return 0;
        }
        if ((v = cli_opt_value(&o, "--data-dir", &err))) { p.data_dir = v; continue; }
        if ((v = cli_opt_value(&o, "--out", &err))) { p.out = v; continue; }
        if ((v = cli_opt_value(&o, "--model", &err))) { p.model_path = v; continue; }
        if ((v = cli_opt_value(&o, "--log", &err))) { p.log = v; continue; }
        if ((v = cli_opt_value(&o, "--data", &err))) { p.data = v; continue; }
        if (err) return err;
        return cli_usage_error("export: unknown option '%s'", a);
    }
    if (!p.data_dir || !p.out) return cli_usage_error("export: --data-dir and --out are required");
    p.progress = progress;
    dr_export_result r;
    dr_error e = {0};
    dr_status s = dr_state_export(&p, &r, &e);
    if (s != DR_OK) return cli_die(s, &e);
    fprintf(stderr,
            "export: %s (covers %s) + %llu log records -> %s: %u users (%u new), %u items (%u new), "
            "%llu events (%llu from the checkpoint), %llu item records, %d modalities, "
            "log_covers %s, %.2f s\n",
            r.base, r.covers, (unsigned long long)r.log_records, p.out, r.users, r.new_users,
            r.items, r.new_items, (unsigned long long)r.events, (unsigned long long)r.base_events,
            (unsigned long long)r.item_records, r.n_modalities, r.log_covers, r.seconds);
    return 0;
}
