/*
 * main.c - dynrec, the command-line tool: finds the command in one table and runs it; the table
 * also prints the top-level help. Each command lives in the file named for it (cli/data.c,
 * cli/train.c, cli/tune.c, cli/eval.c, cli/recommend.c, cli/explain.c, cli/demo.c, cli/serve.c,
 * cli/export.c, cli/compact.c, cli/index.c; eval's stream
 * and modal protocols in cli/stream.c, cli/modal.c); what they share is in cli/util.c, declared
 * in cli/cli.h. Uses only include/dynrec.h.
 *
 * DESIGN: each command has its own option parser over a shared set of load and model options;
 * every failure prints "dynrec: <status>: <message>" and exits 1 (2 for usage). getopt_long
 * was rejected because sub-commands share flags with different meanings. A row named
 * "GROUP SUB" (data synth) is a sub-command: `dynrec GROUP SUB [options]`.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"data synth", cli_cmd_data_synth, "write a synthetic dataset folder"},
    {"data stats", cli_cmd_data_stats, "dataset statistics and load report"},
    {"train", cli_cmd_train, "train a base model (sasrec, mf) and write a checkpoint"},
    {"tune", cli_cmd_tune, "search models and settings within a time budget; write the best"},
    {"eval", cli_cmd_eval, "evaluate a model under a protocol of ../shared/PROTOCOL.md"},
    {"recommend", cli_cmd_recommend, "top-k items for one user (--explain: with explanations)"},
    {"explain", cli_cmd_explain, "why an item suits a user: evidence, generator, verifier"},
    {"demo", cli_cmd_demo, "synthesise, evaluate, recommend; print a summary"},
    {"serve", cli_cmd_serve, "serve a checkpoint over HTTP, learning online from events"},
    {"export", cli_cmd_export, "write a server's state folder and log as a dataset folder"},
    {"align", cli_cmd_align, "map a checkpoint's latents into a GGUF LLM's input space"},
    {"compact", cli_cmd_compact, "move log records a base swap no longer needs to archive.db"},
    {"index", cli_cmd_index, "build the approximate index of two-stage retrieval beside a checkpoint"},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static void print_help(void) {
    fputs("dynrec " DR_VERSION " - a recommender engine\n"
          "usage: dynrec <command> [options]   (dynrec <command> --help for each)\n", stdout);
    for (size_t k = 0; k < N_COMMANDS; k++) printf("  %-16s %s\n", commands[k].name, commands[k].summary);
}

/* The length of the group part of a "GROUP SUB" name, 0 for a plain command. */
static size_t group_len(const char *name) {
    const char *sp = strchr(name, ' ');
    return sp ? (size_t)(sp - name) : 0;
}

int main(int argc, char **argv) {
    if (getenv("DYNREC_LOG")) dr_set_log(cli_log_cb, NULL, atoi(getenv("DYNREC_LOG")));
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        print_help();
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        puts(DR_VERSION);
        return 0;
    }
    const char *cmd = argv[1];
    char subs[256] = ""; /* a group's sub-commands, "a | b" */
    for (size_t k = 0; k < N_COMMANDS; k++) {
        const char *name = commands[k].name;
        size_t g = group_len(name);
        if (!g) {
            if (!strcmp(cmd, name)) return commands[k].run(argc - 2, argv + 2);
            continue;
        }
        if (strlen(cmd) != g || strncmp(cmd, name, g)) continue;
        if (argc >= 3 && !strcmp(argv[2], name + g + 1)) return commands[k].run(argc - 3, argv + 3);
        size_t used = strlen(subs);
        snprintf(subs + used, sizeof subs - used, "%s%s", used ? " | " : "", name + g + 1);
    }
    if (subs[0]) {
        if (argc < 3) return cli_usage_error("%s needs a sub-command: %s", cmd, subs);
        return cli_usage_error("unknown %s sub-command '%s'", cmd, argv[2]);
    }
    return cli_usage_error("unknown command '%s'", cmd);
}
