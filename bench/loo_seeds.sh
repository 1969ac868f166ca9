#!/bin/sh
# loo_seeds.sh - P-LOO of one model over several seeds: each run trains (dynrec eval with a
# model name fits it on the training prefixes, early stopping on validation NDCG@10) and
# prints its JSON line; the last lines are mean and sample standard deviation per metric.
# Usage: bench/loo_seeds.sh DATA "SEEDS" dynrec-eval-options...
#   bench/loo_seeds.sh ../shared/data/movielens-latest-small "1 2 3" --model sasrec --max-len 200
BIN=${DYNREC:-build/release/dynrec}
DATA=$1
SEEDS=$2
shift 2
[ -e "$DATA" ] || { echo "# skipped: $DATA not present"; exit 0; }
out=$(mktemp)
for s in $SEEDS; do
    "$BIN" eval --protocol loo --data "$DATA" --seed "$s" --json "$@" 2>/dev/null | tee -a "$out"
done
awk -F'[:,{}]+' '
{ for (i = 1; i < NF; i++) {
    if ($i == "\"full\"") sec = "full"; else if ($i == "\"sampled100\"") sec = "sampled100";
    if ($i ~ /"(hit|ndcg)@(10|20)"/ && !($i ~ /@20/ && sec == "sampled100")) {
      k = sec " " $i; gsub(/"/, "", k); v = $(i + 1); n[k]++; s[k] += v; q[k] += v * v; keys[k] = 1 }
  } }
END { for (k in keys) { m = s[k] / n[k]; sd = n[k] > 1 ? sqrt((q[k] - n[k] * m * m) / (n[k] - 1)) : 0;
        printf "mean %-18s %.4f  std %.4f  (n=%d)\n", k, m, sd, n[k] } }' "$out" | sort
rm -f "$out"
