/*
 * cli.h - shared pieces of the dynrec command-line tool (cli/util.c) and the commands each
 * file under cli/ provides. A command takes the arguments after its name and returns the exit
 * status: 0 success, 1 failure (message printed as "dynrec: <status>: <message>"), 2 usage.
 */
#ifndef DYNREC_CLI_H
#define DYNREC_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "dynrec.h"

int die(dr_status s, const dr_error *e);
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int parse_u64(const char *s, uint64_t *out);
int parse_double(const char *s, double *out);
void json_str(FILE *f, const char *s);
void progress_cb(void *ud, const char *stage, size_t done, size_t total);
void log_cb(void *ud, int level, const char *msg);
void fmt_time(char *buf, size_t cap, int64_t t, double scale);

typedef struct opts {
    int argc;
    char **argv;
    int i;
} opts;

typedef struct load_opts {
    const char *data;
    dr_load_params p;
    const char *features; /* --features NAME=PATH,...: .npy modalities added after loading */
} load_opts;

typedef struct model_opts {
    dr_model_params p;
    const char *model; /* a name (pop, itemknn, sasrec, mf) or a .drm file */
} model_opts;

/* Returns the value of option `name` at the cursor (advancing), or NULL; sets *err on a
 * missing value. */
const char *opt_value(opts *o, const char *name, int *err);
/* Shared dataset options; returns 1 when consumed, 0 when not, -1 on error. */
int load_opt(opts *o, load_opts *l);
void print_report(const dr_dataset *ds);
int load(load_opts *l, dr_dataset **ds);

extern const char *const model_opts_help;
/* Shared model options; returns 1 when consumed, 0 when not, -1 on error. */
int model_opt(opts *o, model_opts *m);
int is_checkpoint_path(const char *model);
void epoch_cb(void *ud, int epoch, double loss, double val_ndcg10, double seconds);
/* Fits mo->model on ds under split sp, or loads the checkpoint mo->model and checks it
 * against ds (when given). */
int get_model(dr_dataset *ds, const dr_split *sp, model_opts *mo, dr_model **out);
/* Without --modalities, fuse the modalities named by --features (buf keeps the list). */
void default_modalities(const load_opts *l, model_opts *mo, char *buf, size_t cap);

int cmd_eval_modal(int argc, char **argv); /* modal.c: dynrec eval --protocol modal */

/* commands in their own files */
int cmd_serve(int argc, char **argv);

/* Explanations (cli/explain.c). */
typedef struct explain_opts {
    dr_explain_params p;
} explain_opts;
extern const char *const explain_opts_help;
/* Generator options; returns 1 when consumed, 0 when not, -1 on error. */
int explain_opt(opts *o, explain_opts *x);
/* An explainer over m (and a session when s is not NULL); prints the error and returns 1 on
 * failure. */
int explain_open(const dr_model *m, explain_opts *x, dr_explainer **ex, dr_explain_session **s);
/* The text of an explanation and, when it fell back, why. */
void explain_print(FILE *f, const dr_explainer *x, const dr_explanation *e, const char *indent);
int cmd_explain(int argc, char **argv);
int cmd_eval_explain(int argc, char **argv);

#endif
