/*
 * bench_llm_rank - LLM rerank latency per request, one thread: the base's top N (20) of a user
 * scored by the LLM with the candidates as parallel sequences over the prompt's KV cache
 * (shared), and one candidate at a time (the slow twin), alternating in the same process;
 * p50 / p99 of each and their ratio. Usage:
 *   bench_llm_rank MODEL.drm GGUF [ALIGN] [R] [N]      defaults: R = 10000 requests, N = 20
 * Users u = (k * 7919) % users; the top N excludes the history. With stories260K the
 * figures are a test of the mechanism, not of a useful LLM.
 */
#include "bench.h"
#include "dynrec.h"

int main(int argc, char **argv) {
    if (argc < 3 || !strstr(argv[1], ".drm")) { /* bench/run.sh passes its own args */
        printf("SKIP: bench_llm_rank needs MODEL.drm GGUF [ALIGN] [R] [N] (docs/BENCH.md)\n");
        return 0;
    }
    bench_header("bench_llm_rank");
    const char *alp = argc > 3 && strstr(argv[3], ".align") ? argv[3] : NULL;
    int ai = alp ? 4 : 3;
    int R = argc > ai ? atoi(argv[ai]) : 10000, N = argc > ai + 1 ? atoi(argv[ai + 1]) : 20;
    if (R < 1) R = 1;
    if (N < 1 || N > 128) N = 20;
    dr_error e = {0};
    dr_model *m = NULL;
    dr_align *al = NULL;
    dr_llm_ranker *r = NULL;
    dr_scorer *sc = NULL;
    dr_llm_rank_params rp = dr_llm_rank_default_params();
    rp.llm_model = argv[2];
    rp.max_cand = (uint32_t)N;
    rp.unified_kv = getenv("DR_LLM_UNIFIED") != NULL;
    rp.flash_attn = getenv("DR_LLM_FLASH_ATTN") != NULL;
    if (dr_model_load(argv[1], &m, &e) != DR_OK || (alp && dr_align_load(alp, &al, &e) != DR_OK) ||
        dr_llm_ranker_create(m, NULL, al, &rp, &r, &e) != DR_OK || dr_scorer_create(m, &sc, &e) != DR_OK) {
        fprintf(stderr, "bench_llm_rank: %s\n", e.msg);
        return 1;
    }
    uint32_t d = dr_model_latent_dim(m), nu = dr_model_n_users(m);
    float *h = malloc(d * sizeof *h), fast[128], slow[128];
    dr_rec rec[128];
    uint32_t cand[128];
    double *tf = malloc((size_t)R * sizeof *tf), *ts = malloc((size_t)R * sizeof *ts);
    uint64_t hash = 0;
    double maxdiff = 0, prompt_tok = 0;
    for (int k = 0; k < R; k++) {
        uint32_t u = (uint32_t)(((uint64_t)k * 7919u) % nu), got = 0;
        const uint32_t *hist;
        size_t nh = dr_model_user_history(m, u, &hist);
        if (dr_recommend(m, sc, u, hist, nh, (uint32_t)N, rec, &got, &e) != DR_OK ||
            dr_model_user_latent(m, sc, u, hist, nh, h, &e) != DR_OK) {
            fprintf(stderr, "bench_llm_rank: %s\n", e.msg);
            return 1;
        }
        for (uint32_t c = 0; c < got; c++) cand[c] = rec[c].item;
        dr_llm_request q = {al ? h : NULL, al ? dr_model_item_latents(m) : NULL, d, hist, nh, cand, got};
        double t0 = bench_now();
        dr_status s1 = dr_llm_rank_score(r, &q, fast, &e);
        double t1 = bench_now();
        dr_status s2 = s1 == DR_OK ? dr_llm_rank_score_slow(r, &q, slow, &e) : s1;
        double t2 = bench_now();
        if (s2 != DR_OK) {
            fprintf(stderr, "bench_llm_rank: %s\n", e.msg);
            return 1;
        }
        tf[k] = 1e3 * (t1 - t0), ts[k] = 1e3 * (t2 - t1);
        prompt_tok += dr_llm_rank_prompt_tokens(r);
        for (uint32_t c = 0; c < got; c++) {
            double df = fast[c] > slow[c] ? fast[c] - slow[c] : slow[c] - fast[c];
            if (df > maxdiff) maxdiff = df;
        }
        hash = bench_hash(hash, fast, got * sizeof *fast);
    }
    qsort(tf, (size_t)R, sizeof *tf, bench_dbl_cmp);
    qsort(ts, (size_t)R, sizeof *ts, bench_dbl_cmp);
    double f50 = bench_quantile_sorted(tf, (size_t)R, 0.5), f99 = bench_quantile_sorted(tf, (size_t)R, 0.99);
    double s50 = bench_quantile_sorted(ts, (size_t)R, 0.5), s99 = bench_quantile_sorted(ts, (size_t)R, 0.99);
    printf("# llm %s (with stories260K: a test of the mechanism, not LLM quality), soft tokens %s,"
           " N = %d candidates, %d requests, 1 thread\n", argv[2], al ? "on" : "off", N, R);
    printf("llm_rank_shared_p50 %.3f ms\nllm_rank_shared_p99 %.3f ms\n", f50, f99);
    printf("llm_rank_one_by_one_p50 %.3f ms\nllm_rank_one_by_one_p99 %.3f ms\n", s50, s99);
    printf("llm_rank_speedup_p50 %.2f x\n", f50 > 0 ? s50 / f50 : 0);
    printf("llm_rank_prompt_tokens_mean %.1f tokens\n", prompt_tok / R);
    printf("llm_rank_max_abs_diff %.3g logprob\n", maxdiff);
    printf("peak_rss %.1f MiB\n", bench_peak_rss_mib());
    printf("output_hash %016llx\n", (unsigned long long)hash);
    free(h), free(tf), free(ts);
    dr_scorer_free(sc);
    dr_llm_ranker_free(r);
    dr_align_free(al);
    dr_model_free(m);
    return 0;
}
