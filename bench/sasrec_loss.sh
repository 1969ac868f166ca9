#!/bin/sh
# sasrec_loss.sh - seconds per SASRec epoch of each loss (full CE, sampled softmax, BCE) on
# ml-small and amazon-mtv, alternated in one run (bench_sasrec losses), with the machine's load
# before and after; then, with TTQ=1, the time-to-quality runs: P-LOO training per loss (the
# docs/BENCH.md settings, early stopping on validation NDCG@10) whose epoch log gives the
# minutes until validation NDCG@10 first reaches TARGET (the public PyTorch SASRec's NDCG@10).
# Usage: bench/sasrec_loss.sh [ROUNDS [THREADS [NEGATIVES]]]     (3, 2, the default 512)
#        TTQ=1 SEED=1 bench/sasrec_loss.sh
BENCH=${BENCH_SASREC:-build/release/bench_sasrec}
BIN=${DYNREC:-build/release/dynrec}
DATA=${DR_SHARED:-../shared}/data
ROUNDS=${1:-3}
THREADS=${2:-2}
NEG=${3:-0}
SEED=${SEED:-1}
echo "# load before: $(cat /proc/loadavg)"
for ds in ml-small amazon-mtv; do
    "$BENCH" losses "$ds" "$ROUNDS" "$THREADS" "$NEG"
done
echo "# load after: $(cat /proc/loadavg)"
[ "${TTQ:-0}" = 1 ] || exit 0
# time to quality: dataset path, its flags, the reference's test NDCG@10 as the target
ttq() { # name path target flags...
    name=$1 path=$2 target=$3
    shift 3
    [ -e "$path" ] || { echo "# skipped: $path not present"; return; }
    for loss in sampled ce bce; do
        log=$(mktemp)
        echo "# $name $loss: load $(cat /proc/loadavg)"
        "$BIN" eval --protocol loo --data "$path" --seed "$SEED" --json --model sasrec \
            --loss "$loss" --threads "$THREADS" "$@" 2>"$log"
        awk -v t="$target" -v n="$name" -v l="$loss" '
            /^epoch/ { s += $NF == "s" ? $(NF - 1) : 0; e = $2
                       if (!hit && / valid NDCG@10 / && $7 + 0 >= t) { hit = 1; he = e; hs = s } }
            END { if (hit) printf "ttq %s %s target %.4f reached at epoch %d after %.1f min (%d epochs, %.1f min in all)\n", n, l, t, he, hs / 60, e, s / 60
                  else printf "ttq %s %s target %.4f not reached in %d epochs (%.1f min)\n", n, l, t, e, s / 60 }' "$log"
        rm -f "$log"
    done
}
ttq ml-small "$DATA/movielens-latest-small" 0.0445 --max-len 200 --dropout 0.2 --epochs 200 \
    --patience 10 --eval-every 2
ttq amazon-mtv "$DATA/amazon-movies-tv-llmtup" 0.0419 --max-len 50 --dropout 0.5 --epochs 100 \
    --patience 3 --eval-every 2
