#!/bin/sh
# tune_shared.sh - `dynrec tune` with a wall-clock budget on each shared dataset, then the
# tuned checkpoint's TEST figures (which the search never read) beside pop's and item-kNN's at
# their defaults, on the protocol tune chose (P-LOO, or the source's given split for TikTok).
# Per dataset it keeps OUT/NAME.tune.json (tune --json), NAME.tune.log (the trial table),
# NAME.best.drm and NAME.test.*.json, and prints one summary line. With DEFAULTS=1 it also
# trains sasrec and mf at their defaults (`dynrec eval --model sasrec`) for the same table.
# Needs jq.
# Usage: BUDGET=20 DATASETS="movielens-latest-small ..." bench/tune_shared.sh [OUT]
#   SHARED=/tmp/d DATASETS=synth-b DEFAULTS=1 BUDGET=10 bench/tune_shared.sh   (a folder of yours)
BIN=${DYNREC:-build/release/dynrec}
BUDGET=${BUDGET:-20}
SHARED=${SHARED:-../shared/data}
DATASETS=${DATASETS:-movielens-latest-small amazon-movies-tv-llmtup tiktok-mmssl}
OUT=${1:-build/tune}
command -v jq >/dev/null || { echo "tune_shared: needs jq (apt-get install jq)" >&2; exit 1; }
mkdir -p "$OUT"
for d in $DATASETS; do
    data="$SHARED/$d"
    [ -e "$data" ] || { echo "# skipped: $data not present"; continue; }
    "$BIN" tune --data "$data" --budget "$BUDGET" --threads 2 --out "$OUT/$d.best.drm" --json \
        >"$OUT/$d.tune.json" 2>"$OUT/$d.tune.log" || { echo "tune failed on $d" >&2; exit 1; }
    proto=$(jq -r '.protocol' "$OUT/$d.tune.json")
    case $proto in P-LOO) p=loo ;; *) p=given ;; esac
    models="$OUT/$d.best.drm pop itemknn"
    [ "${DEFAULTS:-0}" = 1 ] && models="$models sasrec mf"
    for m in $models; do
        name=$(basename "$m" .drm)
        "$BIN" eval --protocol $p --model "$m" --data "$data" --json >"$OUT/$d.test.$name.json" \
            2>/dev/null || { echo "eval $m failed on $d" >&2; exit 1; }
    done
    t() { jq -r '"\(.full["ndcg@10"] * 10000 | round / 10000) / \(.full["hit@10"] * 10000 | round / 10000)"' "$OUT/$d.test.$1.json"; }
    best=$(jq -r '"\(.best.model) \(.best.settings | to_entries | map("\(.key)=\(.value)") | join(" ")) epochs \(.best.epochs); valid NDCG@10 \(.best.valid["ndcg@10"] * 10000 | round / 10000); \(.trials | length) trials, stopped: \(.stopped)"' "$OUT/$d.tune.json")
    defaults=""
    [ "${DEFAULTS:-0}" = 1 ] && defaults=" sasrec-defaults $(t sasrec) mf-defaults $(t mf)"
    echo "$d ($proto, budget $BUDGET min): best $best; test NDCG@10 / Hit@10: tuned $(t "$d.best") pop $(t pop) itemknn $(t itemknn)$defaults"
done
