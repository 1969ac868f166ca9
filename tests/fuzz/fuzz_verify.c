/* fuzz_verify.c - libFuzzer target for dr_explain_verify: any bytes are checked against a
 * fixed evidence without crashing; references never exceed what was found, and a text the
 * verifier accepts cites at least one fact and names nothing outside the evidence. The
 * explainer (synthetic data, BPR-MF checkpoint in a temporary file) is built once. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dynrec.h"

static dr_explainer *g_x;
static dr_evidence g_ev;

static void setup(void) {
    dr_synth_params p = dr_synth_default_params();
    p.n_users = 60;
    p.n_items = 50;
    p.n_events = 1500;
    dr_dataset *ds = NULL;
    dr_split *sp = NULL;
    dr_model *m = NULL, *back = NULL;
    dr_model_params mp = dr_model_default_params();
    mp.name = "mf";
    mp.epochs = 2;
    mp.eval_every = 0;
    mp.threads = 1;
    mp.dim = 4;
    char path[] = "/tmp/dynrec-fuzz-verify-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) abort();
    close(fd);
    dr_explain_session *s = NULL;
    if (dr_synth_generate(&p, &ds, NULL) || dr_split_create(ds, DR_SPLIT_LOO, &sp, NULL) ||
        dr_model_fit(ds, sp, &mp, &m, NULL) || dr_model_save(m, ds, sp, path, NULL) ||
        dr_model_load(path, &back, NULL) || dr_explainer_create(back, NULL, &g_x, NULL) ||
        dr_explain_session_create(g_x, &s, NULL) || dr_explain_evidence(s, 0, 1, &g_ev, NULL))
        abort();
    unlink(path);
    dr_explain_session_free(s);
    dr_model_free(m);
    dr_split_free(sp);
    dr_dataset_free(ds); /* the loaded model (back) stays: the explainer reads it */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_x) setup();
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    dr_verify_result r;
    dr_explain_verify(g_x, &g_ev, text, &r);
    if (r.n_grounded > r.n_refs) abort();
    if (r.ok && (r.hallucinated || !r.cited || r.reason[0])) abort();
    free(text);
    return 0;
}
