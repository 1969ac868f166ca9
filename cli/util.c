/*
 * util.c - what the CLI's commands share: error printing, number parsing, the option cursor,
 * the dataset and model options, and getting a model (fitted by name or loaded from a file).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* ------------------------------------------------------------------ small helpers */

int cli_die(dr_status s, const dr_error *e) {
    fprintf(stderr, "dynrec: %s: %s\n", dr_status_name(s),
            e && e->msg[0] ? e->msg : dr_status_message(s));
    return 1;
}

int cli_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("dynrec: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see --help)\n", stderr);
    va_end(ap);
    return 2;
}

int cli_parse_u64(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-') return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno) return -1;
    *out = v;
    return 0;
}

int cli_parse_double(const char *s, double *out) {
    char *end;
    errno = 0;
    if (!s || !*s) return -1;
    double v = strtod(s, &end);
    if (*end || errno || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

/* JSON string with escapes. */
void cli_json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static int progress_tty = -1; /* whether stderr is a terminal, decided once */

void cli_progress_cb(void *ud, const char *stage, size_t done, size_t total) {
    (void)ud;
    if (progress_tty < 0) progress_tty = isatty(2);
    if (!progress_tty) return;
    if (total) fprintf(stderr, "\r  %-24s %5.1f%%", stage, 100.0 * (double)done / (double)total);
    else fprintf(stderr, "\r  %-24s %zu", stage, done);
    if (total && done >= total) fprintf(stderr, "\r%*s\r", 40, "");
    fflush(stderr);
}

void cli_log_cb(void *ud, int level, const char *msg) {
    (void)ud;
    fprintf(stderr, "%s: %s\n", level == DR_LOG_ERROR ? "error" : level == DR_LOG_WARN ? "warning" : "info", msg);
}

double cli_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void cli_fmt_time(char *buf, size_t cap, int64_t t, double scale) {
    if (scale <= 0) {
        snprintf(buf, cap, "%lld", (long long)t);
        return;
    }
    time_t secs = (time_t)floor((double)t * scale);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(buf, cap, "%Y-%m-%d %H:%M:%S", &tm);
}

/* ------------------------------------------------------------------ options */

int cli_is_help(const char *a) { return !strcmp(a, "--help") || !strcmp(a, "-h"); }

/* Returns the value of option `name` at the cursor (advancing), or NULL. */
const char *cli_opt_value(cli_opts *o, const char *name, int *err) {
    const char *a = o->argv[o->i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return NULL;
    if (a[n] == '=') return a + n + 1;
    if (a[n] != 0) return NULL;
    if (o->i + 1 >= o->argc) {
        *err = cli_usage_error("%s needs a value", name);
        return NULL;
    }
    return o->argv[++o->i];
}



cli_load_opts cli_load_defaults(void) {
    cli_load_opts l = {0};
    l.p = dr_load_default_params();
    return l;
}

/* Shared dataset options; returns 1 when consumed, 0 when not, -1 on error. */
int cli_load_opt(cli_opts *o, cli_load_opts *l) {
    int err = 0;
    const char *v;
    if ((v = cli_opt_value(o, "--data", &err))) {
        l->data = v;
        return 1;
    }
    if ((v = cli_opt_value(o, "--features", &err))) {
        l->features = v;
        return 1;
    }
    if ((v = cli_opt_value(o, "--format", &err))) {
        if (dr_format_parse(v, &l->p.format) != DR_OK) {
            cli_usage_error("unknown --format '%s'", v);
            return -1;
        }
        return 1;
    }
    if ((v = cli_opt_value(o, "--delimiter", &err))) {
        l->p.delimiter = strcmp(v, "tab") == 0 || strcmp(v, "\\t") == 0 ? '\t' : v[0];
        return 1;
    }
    if ((v = cli_opt_value(o, "--header", &err))) {
        l->p.header = strcmp(v, "yes") == 0 ? 1 : strcmp(v, "no") == 0 ? 0 : -1;
        return 1;
    }
    if ((v = cli_opt_value(o, "--cols", &err))) {
        int c[4] = {-1, -1, -1, -1};
        int n = sscanf(v, "%d,%d,%d,%d", &c[0], &c[1], &c[2], &c[3]);
        if (n < 2) {
            cli_usage_error("--cols wants USER,ITEM[,TIME[,WEIGHT]] column numbers from 0");
            return -1;
        }
        l->p.col_user = c[0];
        l->p.col_item = c[1];
        l->p.col_time = n > 2 ? c[2] : -1;
        l->p.col_weight = n > 3 ? c[3] : -1;
        return 1;
    }
    if ((v = cli_opt_value(o, "--meta", &err))) {
        l->p.meta_path = v;
        return 1;
    }
    if (strcmp(o->argv[o->i], "--strict") == 0) {
        l->p.strict = 1;
        return 1;
    }
    return err ? -1 : 0;
}

size_t cli_n_skipped(const dr_load_report *r) {
    size_t skipped = 0;
    for (int k = 0; k < DR_SKIP_COUNT; k++) skipped += r->skipped[k];
    return skipped;
}

void cli_print_report(const dr_dataset *ds) {
    const dr_load_report *r = dr_dataset_report(ds);
    size_t skipped = cli_n_skipped(r);
    if (!skipped) return;
    fprintf(stderr, "load: %zu rows read, %zu accepted, %zu skipped:", r->rows_read, r->rows_ok,
            skipped);
    for (int k = 0; k < DR_SKIP_COUNT; k++)
        if (r->skipped[k]) fprintf(stderr, " %s=%zu", dr_skip_name((dr_skip_reason)k), r->skipped[k]);
    fputc('\n', stderr);
    for (size_t k = 0; k < r->n_msgs; k++) fprintf(stderr, "  %s\n", r->msgs[k]);
}

int cli_load(cli_load_opts *l, dr_dataset **ds) {
    dr_error e = {0};
    if (!l->data) return cli_usage_error("--data PATH is required");
    l->p.progress = cli_progress_cb;
    dr_status s = dr_dataset_load(l->data, &l->p, ds, &e);
    if (s != DR_OK) return cli_die(s, &e);
    cli_print_report(*ds);
    for (const char *a = l->features; a && *a;) { /* NAME=PATH,NAME=PATH */
        const char *c = strchr(a, ','), *eq = strchr(a, '=');
        size_t n = c ? (size_t)(c - a) : strlen(a);
        char name[64], path[4096];
        if (!eq || eq >= a + n || eq == a || (size_t)(eq - a) >= sizeof name ||
            n - (size_t)(eq - a) - 1 >= sizeof path || eq + 1 == a + n) {
            dr_dataset_free(*ds);
            *ds = NULL;
            return cli_usage_error("--features wants NAME=PATH[,NAME=PATH...], got '%s'", l->features);
        }
        snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
        snprintf(path, sizeof path, "%.*s", (int)(a + n - eq - 1), eq + 1);
        if ((s = dr_dataset_add_features(*ds, name, path, l->p.max_file, &e)) != DR_OK) {
            dr_dataset_free(*ds);
            *ds = NULL;
            return cli_die(s, &e);
        }
        a += n + (c ? 1 : 0);
    }
    return 0;
}

/* ------------------------------------------------------------------ model options */

const char *const cli_model_opts_help =
    "  --model NAME|FILE    pop | itemknn | sasrec | mf, or a checkpoint written by train\n"
    "  --seed S             random seed (42)          --threads N   workers (0 = all cores)\n"
    "  trained models (defaults in parentheses are the model's own):\n"
    "  --dim D              latent size               --epochs N    maximum epochs\n"
    "  --lr X               learning rate             --patience N  validations without gain\n"
    "  --eval-every N       validate every N epochs   --batch N     sasrec: users per batch\n"
    "  --no-early-stop      train all epochs, keep the last (0 values mean: model default)\n"
    "  --min-epochs N       sasrec: no early stop before epoch N\n"
    "  --max-len L          sasrec: recent items used --blocks B    sasrec: transformer blocks\n"
    "  --heads H            sasrec: attention heads   --dropout P   sasrec: dropout rate\n"
    "  --loss ce|bce|sampled  sasrec: full softmax, one sampled negative, or a softmax over\n"
    "                       negatives shared per batch (logQ-corrected)\n"
    "  --negatives K        sasrec, sampled: negatives per batch (512)\n"
    "  --neg-alpha A        sasrec, sampled: draw ~ (count+1)^A, 0 = uniform (0.5)\n"
    "  --weight-decay X     sasrec: decoupled weight decay\n"
    "  --init-lr-scale X    sasrec --init: rate factor of what the init gave (new items: 1)\n"
    "  --l2 X               mf: L2 regularisation     --optimizer sgd|adam  mf\n"
    "  multimodal fusion (mf, sasrec):\n"
    "  --features NAME=PATH,...  add .npy item features (row r = item id r) to the data\n"
    "  --modalities all|none|NAME,...  modalities fused (default: those of --features, else none)\n"
    "  --modality-dropout P training drop rate of a feature (sasrec 0.6, mf 0.3)\n"
    "  --impute gate|mean   a missing feature closes its gate (gate) or is the mean (mean)\n"
    "  --id-dropout P       training rate of treating an item as cold (mf 0.5, sasrec 0)\n"
    "  --fusion-lr X        Adam lr of projections and gates (0.003)\n"
    "  --fusion-l2 X        L2 on projections and gates (0.001)\n";

/* Shared model options; returns 1 when consumed, 0 when not, -1 on error. */
int cli_model_opt(cli_opts *o, cli_model_opts *m) {
    static const struct {
        const char *name;
        char kind; /* 'u' uint32, 'f' float, 's' string, 'U' seed, 't' threads */
        size_t off;
    } t[] = {
        {"--dim", 'u', offsetof(dr_model_params, dim)},
        {"--max-len", 'u', offsetof(dr_model_params, max_len)},
        {"--blocks", 'u', offsetof(dr_model_params, blocks)},
        {"--heads", 'u', offsetof(dr_model_params, heads)},
        {"--batch", 'u', offsetof(dr_model_params, batch)},
        {"--epochs", 'u', offsetof(dr_model_params, epochs)},
        {"--patience", 'u', offsetof(dr_model_params, patience)},
        {"--min-epochs", 'u', offsetof(dr_model_params, min_epochs)},
        {"--eval-every", 'u', offsetof(dr_model_params, eval_every)},
        {"--knn-last", 'u', offsetof(dr_model_params, knn_last)},
        {"--dropout", 'f', offsetof(dr_model_params, dropout)},
        {"--lr", 'f', offsetof(dr_model_params, lr)},
        {"--weight-decay", 'f', offsetof(dr_model_params, weight_decay)},
        {"--l2", 'f', offsetof(dr_model_params, l2)},
        {"--loss", 's', offsetof(dr_model_params, loss)},
        {"--negatives", 'u', offsetof(dr_model_params, negatives)},
        {"--neg-alpha", 'f', offsetof(dr_model_params, neg_alpha)},
        {"--optimizer", 's', offsetof(dr_model_params, optimizer)},
        {"--modalities", 's', offsetof(dr_model_params, modalities)},
        {"--modality-dropout", 'f', offsetof(dr_model_params, modality_dropout)},
        {"--impute", 's', offsetof(dr_model_params, impute)},
        {"--id-dropout", 'f', offsetof(dr_model_params, id_dropout)},
        {"--fusion-lr", 'f', offsetof(dr_model_params, fusion_lr)},
        {"--fusion-l2", 'f', offsetof(dr_model_params, fusion_l2)},
        {"--init-lr-scale", 'f', offsetof(dr_model_params, init_lr_scale)},
        {"--seed", 'U', offsetof(dr_model_params, seed)},
        {"--threads", 't', offsetof(dr_model_params, threads)},
    };
    int err = 0;
    const char *v;
    if ((v = cli_opt_value(o, "--model", &err))) {
        m->model = v;
        return 1;
    }
    if (!strcmp(o->argv[o->i], "--no-early-stop")) { /* train every epoch, keep the last */
        m->p.eval_every = UINT32_MAX;
        return 1;
    }
    for (size_t k = 0; k < sizeof t / sizeof t[0] && !err; k++) {
        if (!(v = cli_opt_value(o, t[k].name, &err))) continue;
        char *at = (char *)&m->p + t[k].off;
        uint64_t u;
        double d;
        switch (t[k].kind) {
        case 'u':
            if (cli_parse_u64(v, &u) || u > 10000000) goto bad;
            *(uint32_t *)at = (uint32_t)u;
            break;
        case 'f':
            if (cli_parse_double(v, &d) || d < 0 || d > 1e6) goto bad;
            *(float *)at = (float)d;
            break;
        case 'U':
            if (cli_parse_u64(v, &u)) goto bad;
            *(uint64_t *)at = u;
            break;
        case 't':
            if (cli_parse_u64(v, &u) || u > 256) goto bad;
            *(int *)at = (int)u;
            break;
        default:
            *(const char **)at = v;
        }
        return 1;
    bad:
        cli_usage_error("bad %s '%s'", t[k].name, v);
        return -1;
    }
    return err ? -1 : 0;
}

int cli_model_load_opt(cli_opts *o, cli_model_opts *m, cli_load_opts *l) {
    int r = cli_model_opt(o, m);
    return r ? r : cli_load_opt(o, l);
}

int cli_is_checkpoint_path(const char *model) {
    size_t n = strlen(model);
    return strchr(model, '/') || (n > 4 && strcmp(model + n - 4, ".drm") == 0);
}

void cli_epoch_cb(void *ud, int epoch, double loss, double val_ndcg10, double seconds) {
    (void)ud;
    if (val_ndcg10 >= 0)
        fprintf(stderr, "epoch %4d  loss %.5f  valid NDCG@10 %.4f  %.2f s\n", epoch, loss,
                val_ndcg10, seconds);
    else
        fprintf(stderr, "epoch %4d  loss %.5f  %.2f s\n", epoch, loss, seconds);
}

const char *cli_no_time_note(const dr_dataset_stats *st) {
    if (st->has_time) return "";
    return st->has_given_split
               ? "the events carry no time: a sequential model (sasrec) sees each user's items "
                 "in file order, which carries no time, and the source's own train/valid/test "
                 "split is used for evaluation"
               : "the events carry no time: a sequential model (sasrec) sees each user's items "
                 "in file order, which carries no time, and P-LOO's last item is the file's last, "
                 "not the newest";
}

int cli_protocol_kind(const char *protocol, dr_split_kind *kind) {
    if (!strcmp(protocol, "loo")) *kind = DR_SPLIT_LOO;
    else if (!strcmp(protocol, "stream")) *kind = DR_SPLIT_T0;
    else if (!strcmp(protocol, "given") || !strcmp(protocol, "modal")) *kind = DR_SPLIT_GIVEN;
    else if (!strcmp(protocol, "all")) *kind = DR_SPLIT_ALL;
    else return -1;
    return 0;
}

void cli_default_modalities(const cli_load_opts *l, cli_model_opts *mo, char *buf, size_t cap) {
    if (mo->p.modalities || !l->features || cap == 0) return;
    buf[0] = 0;
    for (const char *a = l->features; *a;) {
        const char *c = strchr(a, ','), *eq = strchr(a, '=');
        size_t n = c ? (size_t)(c - a) : strlen(a), used = strlen(buf);
        if (eq && eq < a + n)
            snprintf(buf + used, cap - used, "%s%.*s", used ? "," : "", (int)(eq - a), a);
        a += n + (c ? 1 : 0);
    }
    if (buf[0]) mo->p.modalities = buf;
}

/* Fits m->model on ds under split kind, or loads the checkpoint m->model and checks it
 * against ds. */
int cli_get_model(dr_dataset *ds, const dr_split *sp, cli_model_opts *mo, dr_model **out) {
    dr_error e = {0};
    dr_status s;
    if (cli_is_checkpoint_path(mo->model)) {
        s = dr_model_load(mo->model, out, &e);
        if (s == DR_OK && ds) s = dr_model_check_dataset(*out, ds, &e);
        if (s != DR_OK) {
            dr_model_free(*out);
            *out = NULL;
            return cli_die(s, &e);
        }
        return 0;
    }
    mo->p.name = mo->model;
    mo->p.progress = cli_progress_cb;
    if (!mo->p.on_epoch) mo->p.on_epoch = cli_epoch_cb;
    s = dr_model_fit(ds, sp, &mo->p, out, &e);
    return s == DR_OK ? 0 : cli_die(s, &e);
}

int cli_split_model(dr_dataset *ds, dr_split_kind kind, cli_model_opts *mo, dr_split **sp,
                    dr_model **m) {
    dr_error e = {0};
    dr_status s = dr_split_create(ds, kind, sp, &e);
    if (s != DR_OK) return cli_die(s, &e);
    return cli_get_model(ds, *sp, mo, m);
}
