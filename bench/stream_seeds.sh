#!/bin/sh
# stream_seeds.sh - P-STREAM of one base model over several seeds. Per seed: train the base on
# the pre-T0 interactions (`dynrec train --protocol stream`, skipped when OUTDIR already holds
# that seed's checkpoint), replay the stream frozen vs adapter (`dynrec eval --protocol stream
# --json`, extra eval flags in EVAL_FLAGS), keep the JSON; then print mean and sample standard
# deviation over the seeds: overall, cold targets, and Hit@10 per slice. Needs jq.
# REUSE=1 keeps a seed's JSON when it is already there (summarise earlier runs again).
# Usage: bench/stream_seeds.sh DATA "SEEDS" MODEL OUTDIR train-options...
#   bench/stream_seeds.sh ../shared/data/amazon-movies-tv-llmtup "1 2 3" sasrec build/stream \
#       --max-len 50 --dropout 0.5 --epochs 60
BIN=${DYNREC:-build/release/dynrec}
DATA=$1
SEEDS=$2
MODEL=$3
OUT=$4
shift 4
[ -e "$DATA" ] || { echo "# skipped: $DATA not present"; exit 0; }
command -v jq >/dev/null || { echo "stream_seeds: needs jq (apt-get install jq)" >&2; exit 1; }
mkdir -p "$OUT"
name=$(basename "$DATA")
for s in $SEEDS; do
    ck="$OUT/${name}_${MODEL}_s$s.drm"
    if [ ! -f "$ck" ]; then
        "$BIN" train --protocol stream --model "$MODEL" --data "$DATA" --seed "$s" --out "$ck" \
            "$@" 2>"$OUT/${name}_${MODEL}_s$s.train.log" || { echo "train failed (seed $s)" >&2; exit 1; }
    fi
    if [ "${REUSE:-0}" = 1 ] && [ -s "$OUT/${name}_${MODEL}_s$s.json" ]; then
        cat "$OUT/${name}_${MODEL}_s$s.json"
        continue
    fi
    # shellcheck disable=SC2086
    "$BIN" eval --protocol stream --model "$ck" --data "$DATA" --seed "$s" --json $EVAL_FLAGS \
        >"$OUT/${name}_${MODEL}_s$s.json" || { echo "eval failed (seed $s)" >&2; exit 1; }
    cat "$OUT/${name}_${MODEL}_s$s.json"
done
files=""
for s in $SEEDS; do files="$files $OUT/${name}_${MODEL}_s$s.json"; done
# shellcheck disable=SC2086
jq -s -r '
  def ms(f): (map(f) | add / length) as $m
    | (if length > 1 then (map((f - $m) * (f - $m)) | add / (length - 1) | sqrt) else 0 end) as $sd
    | "\($m * 10000 | round / 10000) ± \($sd * 10000 | round / 10000)";
  def cols: [.[0].stream | keys[] | select(. == "frozen" or . == "adapter" or . == "retrain")];
  "seeds \(length), \(.[0].n_events) events replayed, \(.[0].n_scored) scored",
  (cols[] as $c | "overall \($c): Hit@10 \(ms(.stream[$c]["hit@10"]))  NDCG@10 \(ms(.stream[$c]["ndcg@10"]))"),
  (cols[] as $c | select($c != "retrain" or (.[0].stream.cold.retrain != null))
     | "cold \($c): Hit@10 \(ms(.stream.cold[$c]["hit@10"]))  NDCG@10 \(ms(.stream.cold[$c]["ndcg@10"]))"),
  (cols[] as $c | "slices \($c) Hit@10: " + ([range(0; 10) as $j | ms(.stream.slices[$j][$c]["hit@10"]) | split(" ")[0]] | join(" ")))
' $files
