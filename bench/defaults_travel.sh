#!/bin/sh
# defaults_travel.sh - do a model's default settings hold across datasets? Each candidate
# setting in the table below is trained on each dataset's training prefixes and scored on its
# VALIDATION targets only (`dynrec eval --valid --json`: P-LOO, or the source's given split
# for TikTok); then, per dataset, each candidate's NDCG@10 as a share of the best candidate's
# of the same model, and per candidate the worst share over the datasets. The default that
# travels is the candidate with the highest worst share (the least regret anywhere), not the
# best on one dataset. Prints one TSV row per (model, candidate) and keeps the JSON in OUT.
# Needs jq. Usage: DATASETS="NAME|PATH ..." SHARED=../shared/data MODELS="itemknn mf" \
#   (MODELS="sasrec": its epoch floor; slow: amazon-mtv at SASRec's defaults takes hours here)
#   bench/defaults_travel.sh [OUT]   (a NAME is a folder of SHARED; a missing one is skipped;
#   a PATH (with a /) is any dataset, e.g. one written by `dynrec data synth`; ONLY=REGEX keeps
#   the candidates whose name matches; runs already in OUT are reused, so runs can be added;
#   SUMMARY_ONLY=1 trains nothing and tabulates the runs OUT holds)
BIN=${DYNREC:-build/release/dynrec}
SHARED=${SHARED:-../shared/data}
DATASETS=${DATASETS:-movielens-latest-small amazon-movies-tv-llmtup tiktok-mmssl}
MODELS=${MODELS:-itemknn mf}
THREADS=${THREADS:-2}
OUT=${1:-build/travel}
command -v jq >/dev/null || { echo "defaults_travel: needs jq (apt-get install jq)" >&2; exit 1; }
mkdir -p "$OUT"
# model|name|flags   (settings spelled out, so a row keeps its meaning when a default moves;
# a row's number names its JSON in OUT: append new rows at the end)
candidates() {
    cat <<'T'
itemknn|knn-last 20 (the default before)|--knn-last 20
itemknn|knn-last 5 (the default now)|--knn-last 5
itemknn|knn-last 10|--knn-last 10
itemknn|knn-last 50|--knn-last 50
mf|d 64, lr 0.1, l2 0.01 (the default)|--dim 64 --lr 0.1 --l2 0.01
mf|d 64, lr 0.03, l2 0.01|--lr 0.03
mf|d 64, lr 0.2, l2 0.01|--lr 0.2
mf|d 64, lr 0.1, l2 0.003|--l2 0.003
mf|d 64, lr 0.1, l2 0.03|--l2 0.03
mf|d 128, lr 0.02, l2 0.01|--dim 128 --lr 0.02
mf|d 128, lr 0.05, l2 0.01|--dim 128 --lr 0.05
sasrec|no early stop before epoch 20 (the floor before)|--min-epochs 20
sasrec|no early stop before epoch 35 (the floor now)|--min-epochs 35
T
}
for d in $DATASETS; do
    case $d in */*) data=$d; d=$(basename "$d") ;; *) data="$SHARED/$d" ;; esac
    [ -e "$data" ] || { echo "# skipped: $data not present" >&2; continue; }
    case $d in tiktok*) p=given ;; *) p=loo ;; esac
    k=0
    candidates | while IFS='|' read -r model name flags; do
        k=$((k + 1))
        echo " $MODELS " | grep -q " $model " || continue
        [ -z "${ONLY:-}" ] || echo "$name" | grep -Eq "$ONLY" || continue
        f="$OUT/$d.$model.$k.json"
        if [ ! -s "$f" ] && [ "${SUMMARY_ONLY:-0}" = 1 ]; then continue; fi
        if [ ! -s "$f" ]; then
            echo "# $d: $model $name" >&2
            # shellcheck disable=SC2086
            "$BIN" eval --protocol $p --valid --json --model "$model" $flags --data "$data" \
                --threads "$THREADS" >"$f" 2>"$OUT/$d.$model.$k.log" || { rm -f "$f"; echo "failed: $d $model $name" >&2; continue; }
        fi
        jq -r --arg d "$d" --arg m "$model" --arg n "$name" '[$d, $m, $n, .full["ndcg@10"]] | @tsv' "$f"
    done
done >"$OUT/valid.tsv"
# per dataset and model, share of the best; per candidate, the worst share
awk -F'\t' '
{ v[$1 "\t" $2 "\t" $3] = $4; if ($4 > best[$1 "\t" $2]) best[$1 "\t" $2] = $4
  if (!seen[$2 "\t" $3]++) order[++n] = $2 "\t" $3; ds[$1] = 1 }
END {
  printf "model\tcandidate"; for (d in ds) printf "\t%s NDCG@10 (share of best)", d; printf "\tworst share\n"
  for (k = 1; k <= n; k++) {
    split(order[k], mc, "\t"); worst = 1; line = mc[1] "\t" mc[2]
    for (d in ds) {
      key = d "\t" order[k]
      if (!(key in v)) { line = line "\t-"; continue }
      s = v[key] / best[d "\t" mc[1]]; if (s < worst) worst = s
      line = line sprintf("\t%.4f (%.3f)", v[key], s)
    }
    printf "%s\t%.3f\n", line, worst
  }
}' "$OUT/valid.tsv"
