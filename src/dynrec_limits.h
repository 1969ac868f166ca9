/*
 * dynrec_limits.h - every size limit of the library in one place, each with its reason (the
 * idea of SQLite's sqliteLimit.h). A limit is a promise to the user (input past it is refused
 * with an error naming it, never truncated) and a bound the code relies on (fixed arrays,
 * overflow-free size arithmetic). Raising one means checking the reason given here.
 *
 * Limits that size public structs stay in include/dynrec.h, beside the structs:
 * DR_RECOMMEND_MAX_K, DR_REPORT_MAX_MSGS, DR_SYNTH_MAX_MOD, DR_MODAL_MAX, DR_FACT_MAX_ITEMS,
 * DR_FACT_MAX_USERS, DR_EVIDENCE_MAX, DR_EXPLAIN_TEXT_MAX, DR_TUNE_MAX_SETTINGS.
 */
#ifndef DR_DYNREC_LIMITS_H
#define DR_DYNREC_LIMITS_H

#include <stddef.h>
#include <stdint.h>

/* ---- compute */
/* Worker threads of dr__parallel_for: its handles live in a fixed array on the stack. */
#define DR_MAX_THREADS 256
/* Latent size of any model, fusion or synthetic latent: far above useful sizes; bounds the
 * per-thread scratch (a few rows of this many floats) and catches garbage in a checkpoint. */
#define DR_MAX_DIM 4096u
/* Items of a SASRec model and users/items of a synthetic dataset: ids stay far from
 * UINT32_MAX (row n_items is SASRec's padding) and n * d float tables fit size_t. */
#define DR_MAX_ROWS (1u << 28)
/* The bf16 scan (scan.h): candidates rescored in f32 per result (k * this), and the smallest
 * f32 item table (bytes) scanned through its bf16 copy by default (below it the f32 table
 * fits in a core's L2 and halving the bytes read gains little). */
#define DR_SCAN_BF16_CAND 4u
#define DR_SCAN_BF16_MIN_BYTES ((size_t)1 << 20)

/* SASRec: positions of the input sequence and transformer blocks a model may be trained with
 * (activations are T x L x d per shard); a checkpoint may declare a longer sequence. */
#define DR_SASREC_MAX_LEN 4096u
#define DR_SASREC_LOAD_MAX_LEN 100000u
#define DR_SASREC_MAX_BLOCKS 64u
#define DR_SASREC_MAX_NEGATIVES 65536u /* sampled softmax: shared negatives per batch */

/* ---- datasets */
/* Fields per delimited row: the reader keeps a fixed array of field spans; extra fields are
 * counted but not indexed, so a column index must be below this. */
#define DR_LOAD_MAX_FIELDS 64
/* Default longest line and largest file (dr_load_params.max_line / max_file): a malformed file
 * (no newlines, a wrong path to a disk image) is refused before it exhausts memory. */
#define DR_LOAD_MAX_LINE ((size_t)1 << 20)
#define DR_LOAD_MAX_FILE ((size_t)1 << 31)
/* Modalities of one dataset: presence masks and gates are indexed by a small fixed array. */
#define DR_MAX_MODALITIES 8
/* Numbers in one modality's feature row (dataset, fusion, checkpoint): 4 MB of floats per
 * item is already far past any real feature; bounds the standardisation buffers. */
#define DR_MAX_FEATURE_DIM (1u << 20)
/* Synthetic data: events generated, and entries of one generated array (both keep size_t
 * arithmetic exact in doubles). */
#define DR_SYNTH_MAX_EVENTS ((size_t)1 << 31)
#define DR_SYNTH_MAX_CELLS 2147483648.0

/* ---- tuning (tune.c) */
/* Values of one search-space row and rungs of one kind's epochs ladder: parsed once into fixed
 * arrays; a row past them is a table error (DR_INTERNAL), never a user's input. */
#define DR_TUNE_MAX_VALUES 16
#define DR_TUNE_MAX_RUNGS 8

/* ---- checkpoints (.drm) */
#define DR_CKPT_NAME_MAX 48u          /* bytes of a section name incl. NUL: fixed directory entry */
#define DR_CKPT_MAX_RANK 4u           /* dimensions of a section: fixed directory entry */
#define DR_CKPT_MAX_SECTIONS 1024u    /* sections of one file: bounds the directory read */
#define DR_CKPT_META_MAX (1u << 20)   /* bytes of key=value text: read whole into memory */
#define DR_MODEL_NOTES_MAX 64u        /* dr_model_set_meta entries of one model: a linear lookup */
#define DR_ADAPTER_WINDOW_MAX (1u << 24) /* events in the adapter's global window (a note's bound) */

/* ---- serving */
#define DR_STORE_ID_MAX 256           /* bytes of a user or item id: fixed key buffers */
#define DR_STORE_BODY_MAX (1u << 20)  /* bytes of an item record's body in the log */
#define DR_COMPACT_BATCH 20000u       /* records moved per compaction transaction: a running
                                         server's writer waits at most one such transaction */
#define DR_EXPORT_READ 4096u          /* records per log read of an export: its memory */
#define DR_SRV_ID_MAX DR_STORE_ID_MAX
#define DR_LOG_STREAM_MAX 128u       /* bytes of a Redis stream name (--log redis://.../STREAM) */
#define DR_LOG_ADDR_MAX 256u         /* bytes of a Redis address as messages name it */
#define DR_LOG_WAIT_SLICE_MS 200     /* longest a Redis read blocks per XREAD: wake is seen within it
                                         (hiredis cannot interrupt a blocked call) */
#define DR_LOG_DEDUP_TTL_DEFAULT 86400u /* seconds an idempotency key is remembered: a client's
                                           retries come within a day */
#define DR_LOG_TIMEOUT_MS_DEFAULT 2000u /* Redis connect and command timeout: nothing blocks forever */
#define DR_LOG_IDEM_PURGE_EVERY 1024u /* sqlite appends between purges of expired idempotency keys */
#define DR_SRV_K_MAX 1000u            /* recommendations per request: the popular list's size */

/* ---- two-stage retrieval (ann.c) */
/* Catalogue size from which `dynrec serve --ann auto` uses an index it finds: below it the
 * exact scan is as fast (measured, docs/BENCH.md "two-stage retrieval"). */
#define DR_ANN_MIN_ITEMS 50000u
#define DR_ANN_MAX_M 128u             /* HNSW links per node: hnswlib warns far above; bounds a file's */
#define DR_ANN_MAX_EF 100000u         /* search / build candidate lists: bounds a file's settings */
#define DR_ANN_MAX_CAND 65536u        /* approximate candidates per request: each serving thread
                                         holds a row buffer of this many candidates' latents */
#define DR_SRV_CTX_MAX 512u           /* recent items read for a user's base latent */
#define DR_SRV_APPLY_DOWN_MS 10000  /* a write waits this long for a log it cannot read */
#define DR_SRV_WRITER_BATCH 16384u    /* events per group commit; more wait for the next one */
#define DR_SRV_APPLY_BATCH DR_SRV_WRITER_BATCH /* records per log read of the apply thread: a
                                        whole group commit is applied and published at once */
#define DR_SRV_ACK_RING 65536u        /* (position, record number) pairs of the newest applied
                                        records kept to answer writes: four group commits, so a
                                        writer finds its records even when other replicas'
                                        records come between; a duplicate of an older record
                                        answers record number 0 */
#define DR_SRV_PATH_MAX 4096u        /* bytes of a checkpoint path a base swap names */
#define DR_SRV_SWAP_CHECK_DEFAULT 2000u /* events a base swap scores both bases on */
#define DR_SRV_SWAP_CHECK_MIN 50u     /* fewer checked events than this: the swap is not judged */
#define DR_SRV_EVENT_RING 65536u      /* positions of the newest applied events, from which a base
                                        swap picks where its adapter replay and its quality check
                                        start (window + checked events must fit) */
#define DR_SRV_INFLIGHT_BATCHES 2u    /* group commits logged but not yet answered: the writer
                                        appends the next while the apply thread applies these.
                                        Their answers are read from the ring above, which must
                                        still hold every record of an awaiting batch when it is
                                        answered: a batch is answered where the apply thread
                                        crosses its last record, so at most one batch plus one
                                        apply read (2 x 16384) is needed; even if all awaiting
                                        batches plus one read were (3 x 16384 = 48K) the ring
                                        holds them. 3 would fill the ring exactly, 4 exceed it */
#define DR_SRV_WAIT_MS_MAX 10000u     /* ?wait_ms of a read that waits for a position: a
                                        request holds a server thread while it waits */
#define DR_SRV_WAIT_MS_DEFAULT 1000u  /* ?wait_ms when absent */
#define DR_HTTP_MAX_BODY_DEFAULT (1u << 20) /* default --max-body */
#define DR_HTTP_MAX_EVENTS 10000u     /* events per POST /v1/events: one group commit's share */
#define DR_HTTP_MAX_KEY 256u          /* bytes of an API key */
#define DR_HTTP_MAX_THREADS 1024      /* server threads (--threads) */
#define DR_HTTP_MAX_SEGS 6            /* path segments; longer paths match no route */
#define DR_ITEM_MAX_ATTRS 256u        /* attributes in one PUT item */
#define DR_ITEM_MAX_TITLE 1024u       /* bytes of a PUT item's title */
#define DR_ITEM_MAX_FEATURES 65536u   /* numbers over all modalities of one PUT item */
#define DR_EXPLAIN_JSON_CAP (64u << 10) /* bytes of one explanation's JSON in a response */

/* ---- live statistics (serve_stats.c, the dashboard) */
#define DR_STATS_SECONDS 3600u        /* per-second rows kept: the last hour, ~40 bytes a row */
#define DR_STATS_SHARDS 16u           /* request counters, one cache-line-padded block per
                                        thread (mod 16): threads rarely share a line */
#define DR_STATS_LAT_MINUTE 60u       /* seconds of latency histograms behind the overview's
                                        p50/p99 (60 x 217 counters) */
#define DR_STATS_QUALITY_RATE 0.03    /* default share of incoming events scored for live
                                        quality: two top-10 tests each on the apply thread, 2%
                                        of its CPU per event at 0.03 on amazon-mtv (6% at 0.1;
                                        docs/BENCH.md) */
#define DR_STATS_QUALITY_WINDOW 1000u /* default sliding window of sampled events */
#define DR_STATS_QUALITY_MAX 1000000u /* the largest window (a byte per sampled event) */
#define DR_STATS_DETAIL_K_MAX 100u    /* k of ?detail=1: each item's base rank is a scan of
                                        every item's base score */
#define DR_STATS_NEAREST 10u          /* nearest items on an item's ?detail=1 */
#define DR_STATS_HISTORY 100u         /* history items on a user's ?detail=1 (the newest) */

/* ---- online adapter */
#define DR_WIN_MAX_USER_RING 1024     /* events in a user's ring: per-user arrays of this size */

/* ---- explanations */
#define DR_PROMPT_MAX 8192            /* bytes of a prompt, instruction included: fixed buffer */
#define DR_GRAMMAR_MAX 16384          /* bytes of a GBNF grammar: fixed buffer */
#define DR_QUOTE_MAX 120              /* bytes of one quoted title or attribute value */
#define DR_LLM_MAX_TOKENS 1024        /* tokens one explanation may generate */
#define DR_LLM_HTTP_MAX (256u * 1024u) /* bytes of an LLM endpoint's answer that are read */
#define DR_FIT_MAX_PARTS 64           /* parts of one prompt the fitter joins: a fixed array of
                                        keep flags (an explanation has at most DR_EVIDENCE_MAX
                                        facts + 4 fixed parts) */
#define DR_HTTP_CHAT_TOKENS 64        /* tokens an endpoint's chat template may add around the
                                        system and user messages (role headers, BOS, the
                                        assistant's header); counted on top of the text */
#define DR_VERIFY_MAX_TOK 1024        /* tokens of an explanation the verifier reads */
#define DR_VERIFY_NORM_MAX 512        /* bytes of one normalised phrase */

/* ---- LLM alignment and reranking */
#define DR_ALIGN_MAX_DIM 65536u       /* d and n_embd of an alignment map: sizes of its file's
                                        arrays, checked before they are read */
#define DR_ALIGN_MAX_HIDDEN 4096u     /* MLP hidden units */
#define DR_ALIGN_MAX_BYTES (1ull << 31) /* bytes of a .align file */
#define DR_LLM_EMBD_MAX_BYTES (8ull << 30) /* bytes of a GGUF token-embedding tensor read into
                                        memory (a 256k vocabulary x 8192 dims in f32) */
#define DR_LLM_RANK_MAX_CAND 128u     /* candidates per rerank request: each is a llama.cpp
                                        sequence (n_seq_max), and llama.cpp caps those */
#define DR_LLM_RANK_MAX_TITLE 64u     /* tokens of one title in a rerank prompt */
#define DR_LLM_RANK_MAX_HISTORY 50u   /* history items shown in a rerank prompt */
#define DR_LLM_HTTP_GRAMMAR_MAX 8192u /* bytes of the grammar that spells one title (HTTP backend) */
#define DR_LLM_RERANK_TOP 20u         /* candidates the server's ?rerank=llm reorders (N of P-LLM) */

#endif /* DR_DYNREC_LIMITS_H */
