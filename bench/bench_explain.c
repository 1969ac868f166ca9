/*
 * bench_explain - time split of one explanation: evidence, prompt (+ grammar), prefill, decode,
 * verify, as medians over R requests of one session (the instruction prefix stays cached),
 * and the share of the non-LLM steps in the generation. Usage:
 *   bench_explain MODEL.drm [GGUF] [R] [MAX_TOKENS]
 * default R: 200 (template), 20 (llama); MAX_TOKENS (128) must leave room for a prompt in the
 * model's training context (40 for stories260K's 128 tokens).
 * Without a GGUF only the template generator runs. Pairs: user u = (k * 7919) % users, its
 * top recommendation.
 */
#include "bench.h"
#include "dynrec.h"

int main(int argc, char **argv) {
    if (argc < 2 || strstr(argv[1], ".drm") == NULL) { /* bench/run.sh passes its own args */
        printf("SKIP: bench_explain needs MODEL.drm [GGUF] [R] (docs/BENCH.md)\n");
        return 0;
    }
    bench_header("bench_explain");
    dr_error e = {0};
    dr_model *m = NULL;
    if (dr_model_load(argv[1], &m, &e) != DR_OK) {
        fprintf(stderr, "bench_explain: %s\n", e.msg);
        return 1;
    }
    dr_explain_params p = dr_explain_default_params();
    if (argc > 2) {
        p.generator = "llama";
        p.llm_model = argv[2];
    }
    int R = argc > 3 ? atoi(argv[3]) : argc > 2 ? 20 : 200;
    if (argc > 4) p.max_tokens = (uint32_t)atoi(argv[4]);
    if (R < 1) R = 1;
    dr_explainer *x = NULL;
    dr_explain_session *s = NULL;
    dr_scorer *sc = NULL;
    if (dr_explainer_create(m, &p, &x, &e) != DR_OK || dr_explain_session_create(x, &s, &e) != DR_OK ||
        dr_scorer_create(m, &sc, &e) != DR_OK) {
        fprintf(stderr, "bench_explain: %s\n", e.msg);
        return 1;
    }
    dr_explanation *ex = malloc(sizeof *ex);
    double *t = calloc(7 * (size_t)R, sizeof *t);
    uint64_t hash = 0;
    uint32_t nu = dr_model_n_users(m), verified = 0;
    for (int k = -1; k < R; k++) { /* k = -1: warm-up (loads the prefix into the cache) */
        uint32_t u = (uint32_t)(((uint64_t)(k < 0 ? 0 : k) * 7919u) % nu), got = 0;
        const uint32_t *h;
        size_t nh = dr_model_user_history(m, u, &h);
        dr_rec rec[1];
        if (dr_recommend(m, sc, u, h, nh, 1, rec, &got, &e) != DR_OK || !got) continue;
        if (dr_explain(s, u, rec[0].item, ex, &e) != DR_OK) {
            fprintf(stderr, "bench_explain: %s\n", e.msg);
            return 1;
        }
        if (k < 0) continue;
        const dr_explain_timing *ti = &ex->timing;
        double v[7] = {ti->evidence_ms, ti->prompt_ms, ti->prefill_ms, ti->decode_ms,
                       ti->verify_ms, ti->total_ms, ti->evidence_ms + ti->prompt_ms + ti->verify_ms};
        for (int q = 0; q < 7; q++) t[(size_t)q * R + k] = v[q];
        verified += (uint32_t)ex->verified;
        hash = bench_hash(hash, ex->text, strlen(ex->text));
    }
    static const char *const names[7] = {"evidence", "prompt", "prefill", "decode", "verify", "total", "non_llm"};
    double med[7];
    for (int q = 0; q < 7; q++) {
        med[q] = bench_median(t + (size_t)q * R, (size_t)R);
        printf("explain_%s_ms_p50 %.4f ms\n", names[q], med[q]);
    }
    if (med[2] + med[3] > 0)
        printf("explain_non_llm_share %.5f ratio (evidence+prompt+verify over prefill+decode)\n",
               med[6] / (med[2] + med[3]));
    printf("explain_generator %s\nexplain_requests %d\nexplain_verified %u\n", p.generator, R, verified);
    printf("output_hash %016llx\n", (unsigned long long)hash);
    free(t);
    free(ex);
    dr_scorer_free(sc);
    dr_explain_session_free(s);
    dr_explainer_free(x);
    dr_model_free(m);
    return 0;
}
