/*
 * cli.h - shared pieces of the dynrec command-line tool (cli/util.c) and the commands each
 * file under cli/ provides. A command takes the arguments after its name and returns the exit
 * status: 0 success, 1 failure (message printed as "dynrec: <status>: <message>"), 2 usage.
 * Every name the CLI's files share starts with cli_.
 */
#ifndef DYNREC_CLI_H
#define DYNREC_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "dynrec.h"

int cli_die(dr_status s, const dr_error *e);
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_parse_u64(const char *s, uint64_t *out);
int cli_parse_double(const char *s, double *out);
void cli_json_str(FILE *f, const char *s);
void cli_progress_cb(void *ud, const char *stage, size_t done, size_t total);
void cli_log_cb(void *ud, int level, const char *msg);
/* Seconds on the monotonic clock (differences time a step). */
double cli_now(void);
void cli_fmt_time(char *buf, size_t cap, int64_t t, double scale);

typedef struct cli_opts {
    int argc;
    char **argv;
    int i;
} cli_opts;

typedef struct cli_load_opts {
    const char *data;
    dr_load_params p;
    const char *features; /* --features NAME=PATH,...: .npy modalities added after loading */
} cli_load_opts;

typedef struct cli_model_opts {
    dr_model_params p;
    const char *model; /* a name (pop, itemknn, sasrec, mf) or a .drm file */
} cli_model_opts;

/* Whether a is --help or -h. */
int cli_is_help(const char *a);
/* Returns the value of option `name` at the cursor (advancing), or NULL; sets *err on a
 * missing value. */
const char *cli_opt_value(cli_opts *o, const char *name, int *err);
/* No dataset yet, the library's default load parameters. */
cli_load_opts cli_load_defaults(void);
/* Shared dataset options; returns 1 when consumed, 0 when not, -1 on error. */
int cli_load_opt(cli_opts *o, cli_load_opts *l);
/* Rows the load skipped, all reasons together. */
size_t cli_n_skipped(const dr_load_report *r);
/* The load report on stderr when rows were skipped. */
void cli_print_report(const dr_dataset *ds);
int cli_load(cli_load_opts *l, dr_dataset **ds);

extern const char *const cli_model_opts_help;
/* Shared model options; returns 1 when consumed, 0 when not, -1 on error. */
int cli_model_opt(cli_opts *o, cli_model_opts *m);
/* The model options, else the dataset options; returns 1 when consumed, 0 when not, -1 on
 * error. */
int cli_model_load_opt(cli_opts *o, cli_model_opts *m, cli_load_opts *l);
int cli_is_checkpoint_path(const char *model);
void cli_epoch_cb(void *ud, int epoch, double loss, double val_ndcg10, double seconds);
/* Fits mo->model on ds under split sp, or loads the checkpoint mo->model and checks it
 * against ds (when given). */
int cli_get_model(dr_dataset *ds, const dr_split *sp, cli_model_opts *mo, dr_model **out);
/* Creates the split of kind on ds into *sp, then cli_get_model into *m; prints the error and
 * returns non-zero on failure (*sp and *m stay for the caller to free). */
int cli_split_model(dr_dataset *ds, dr_split_kind kind, cli_model_opts *mo, dr_split **sp,
                    dr_model **m);
/* The split of --protocol as train and tune read it: loo, stream (T0), given (or modal);
 * non-zero when unknown. */
int cli_protocol_kind(const char *protocol, dr_split_kind *kind);
/* Without --modalities, fuse the modalities named by --features (buf keeps the list). */
/* What a dataset without times means for a sequential model, as one sentence (no newline);
 * "" when the dataset has times. */
const char *cli_no_time_note(const dr_dataset_stats *st);
void cli_default_modalities(const cli_load_opts *l, cli_model_opts *mo, char *buf, size_t cap);

/* The commands (cli/main.c's table), each in the file named for it. */
int cli_cmd_data_synth(int argc, char **argv);  /* data.c */
int cli_cmd_data_stats(int argc, char **argv);  /* data.c */
int cli_cmd_train(int argc, char **argv);       /* train.c */
int cli_cmd_eval(int argc, char **argv);        /* eval.c */
int cli_cmd_eval_stream(int argc, char **argv); /* eval_stream.c: dynrec eval --protocol stream */
/* stream.c: the adapter's settings chosen on the validation stream before T0, for a base
 * trained with mo's model and parameters; prints each trial on stderr. 0 or an exit code. */
int cli_choose_adapter(dr_dataset *ds, const cli_model_opts *mo, const dr_stream_options *so,
                       dr_adapter_choice *out);
/* stream.c: parses "--adapter-search on|off" at the cursor: 1 consumed, 0 not this option,
 * -1 a usage error (printed). */
int cli_adapter_search_opt(cli_opts *o, int *on);
int cli_cmd_eval_modal(int argc, char **argv);  /* modal.c: dynrec eval --protocol modal */
int cli_cmd_recommend(int argc, char **argv);   /* recommend.c */
int cli_cmd_demo(int argc, char **argv);        /* demo.c */
int cli_cmd_serve(int argc, char **argv);       /* serve.c */
int cli_cmd_export(int argc, char **argv);      /* export.c */
int cli_cmd_compact(int argc, char **argv);
int cli_cmd_index(int argc, char **argv);     /* compact.c */
int cli_cmd_tune(int argc, char **argv);        /* tune.c */
int cli_cmd_align(int argc, char **argv);       /* llm.c */
int cli_cmd_eval_llm(int argc, char **argv);    /* llm.c: dynrec eval --protocol llm */
/* llm.c: the base's top n_top for user u (into rec, *got) and their LLM scores (llm_out)
 * with the GGUF llm and the alignment file alp (NULL: titles only); *lambda_out = the
 * alignment's lambda (0 when none). 0 or an exit code. */
int cli_llm_rerank(const dr_dataset *ds, const dr_model *m, uint32_t u, const char *llm,
                   const char *alp, uint32_t n_top, dr_rec *rec, uint32_t *got, float *llm_out,
                   float *lambda_out);

/* Evaluation under a split (cli/eval.c): fits or loads mo->model, evaluates the test (which
 * 0) or validation (1) targets into *res; prints the error and returns 1 on failure. */
int cli_run_eval(dr_dataset *ds, dr_split_kind kind, cli_model_opts *mo, int which,
                 dr_eval_result *res);
void cli_print_eval_human(const char *protocol, const dr_dataset *ds, const char *model,
                          const dr_eval_result *r, int which);

/* Recommends k items for user u of m (cli/recommend.c); ds (titles, attributes, ids) may be
 * NULL when m carries ids; with a session xs, each item with its explanation. */
int cli_recommend_for(const dr_dataset *ds, const dr_model *m, uint32_t u, size_t k, int json,
                      FILE *out, dr_explain_session *xs, const dr_explainer *xr);

/* Explanations (cli/explain.c). */
typedef struct cli_explain_opts {
    dr_explain_params p;
} cli_explain_opts;
extern const char *const cli_explain_opts_help;
/* Generator options; returns 1 when consumed, 0 when not, -1 on error. */
int cli_explain_opt(cli_opts *o, cli_explain_opts *x);
/* An explainer over m (and a session when s is not NULL); prints the error and returns 1 on
 * failure. */
int cli_explain_open(const dr_model *m, cli_explain_opts *x, dr_explainer **ex, dr_explain_session **s);
/* The text of an explanation and, when it fell back, why. */
void cli_explain_print(FILE *f, const dr_explainer *x, const dr_explanation *e, const char *indent);
int cli_cmd_explain(int argc, char **argv);      /* dynrec explain */
int cli_cmd_eval_explain(int argc, char **argv); /* dynrec eval --protocol explain */

#endif
