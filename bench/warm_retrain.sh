#!/bin/sh
# warm_retrain.sh - warm vs cold retrain of a base after new events (dynrec train --init).
# A synthetic dataset is cut in time: OLD holds the first (100 - NEW)% of its events (and the
# items they name), NEW all of them, so NEW adds events, users and items. A base trained on
# OLD is the checkpoint a deployment holds; on NEW a cold fit and a warm fit from it are run at
# the model's defaults (early stopping on P-LOO validation NDCG@10, which mf checks every 5
# epochs and sasrec every epoch). Printed per model and repetition: the cold run's best
# validation NDCG@10, then for each run the first epoch whose validation reaches it, the
# training seconds up to that epoch (sum of the per-epoch times, validation included), the
# run's own best, its epochs and its wall time; then the medians over repetitions (epochs and
# seconds to the target over the runs that reached it, "reached" says how many).
# Usage: bench/warm_retrain.sh [MODELS]      (default "mf sasrec")
# Environment: SEED USERS ITEMS EVENTS (synthetic data; 3 5000 3000 200000), NEW (percent of
#   events that are new; 10), REPS (training seeds 1..REPS; 3), THREADS (2),
#   OPTS (extra train options, e.g. "--max-len 50"), DYNREC (binary), KEEP=1 keeps the folder.
set -eu
BIN=${DYNREC:-build/release/dynrec}
MODELS=${1:-"mf sasrec"}
SEED=${SEED:-3}; USERS=${USERS:-5000}; ITEMS=${ITEMS:-3000}; EVENTS=${EVENTS:-200000}
NEW=${NEW:-10}; REPS=${REPS:-3}; THREADS=${THREADS:-2}; OPTS=${OPTS:-}
dir=$(mktemp -d /tmp/dynrec_warm_retrain.XXXXXX)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$dir"' EXIT

echo "# warm_retrain: machine $(uname -m), $(nproc) cores, threads $THREADS, commit $(git rev-parse --short HEAD 2>/dev/null || echo none)"
echo "# data: dynrec data synth --seed $SEED --users $USERS --items $ITEMS --events $EVENTS; new events $NEW%; options '$OPTS'"
"$BIN" data synth --out "$dir/new" --seed "$SEED" --users "$USERS" --items "$ITEMS" \
    --events "$EVENTS" >/dev/null 2>&1
keep=$((EVENTS * (100 - NEW) / 100))
mkdir -p "$dir/old"
grep -v -e '^n_' -e '^modalities' "$dir/new/manifest.tsv" >"$dir/old/manifest.tsv"
awk -v n="$keep" 'NR <= n + 1' "$dir/new/interactions.tsv" >"$dir/old/interactions.tsv"
awk 'NR == FNR { if (FNR > 1) seen[$2] = 1; next } FNR == 1 || ($1 in seen)' \
    "$dir/old/interactions.tsv" "$dir/new/items.tsv" >"$dir/old/items.tsv"

# train LOG: the epoch lines of one run, its wall time on the last line ("wall S")
train() {
    log=$1; shift
    t0=$(date +%s.%N)
    "$BIN" train --threads "$THREADS" $OPTS "$@" 2>"$log.err" >/dev/null ||
        { cat "$log.err" >&2; exit 1; }
    t1=$(date +%s.%N)
    grep '^epoch' "$log.err" >"$log" || true
    echo "wall $(echo "$t1 - $t0" | bc)" >>"$log"
}

# stats LOG TARGET: "epochs_to_target seconds_to_target best best_epoch epochs wall"
stats() {
    awk -v target="$2" '
    /^epoch/ { ep = $2; t += $(NF - 1); n = ep
               if ($5 == "valid") { v = $7 + 0; if (v > best) { best = v; bep = ep }
                                    if (!hit && v >= target) { hit = ep; ht = t } } }
    /^wall/  { wall = $2 }
    END { printf "%s %s %.4f %d %d %.1f\n", hit ? hit : "-", hit ? sprintf("%.1f", ht) : "-",
                 best, bep, n, wall }' "$1"
}

printf "%-7s %-4s %-5s %8s %10s %10s %8s %8s %7s %8s\n" model seed run target ep_to_tgt \
    s_to_tgt best best_ep epochs wall_s
for model in $MODELS; do
    train "$dir/$model.old.log" --model "$model" --data "$dir/old" --out "$dir/$model.old.drm"
    echo "# $model: base on OLD $(stats "$dir/$model.old.log" 2 | awk '{print "best", $3, "at epoch", $4, "wall", $6, "s"}')"
    r=1
    while [ "$r" -le "$REPS" ]; do
        train "$dir/$model.cold.$r" --model "$model" --data "$dir/new" --seed "$r" \
            --out "$dir/$model.cold.drm"
        train "$dir/$model.warm.$r" --init "$dir/$model.old.drm" --data "$dir/new" --seed "$r" \
            --out "$dir/$model.warm.drm"
        target=$(stats "$dir/$model.cold.$r" 2 | awk '{print $3}')
        for run in cold warm; do
            set -- $(stats "$dir/$model.$run.$r" "$target")
            printf "%-7s %-4s %-5s %8s %10s %10s %8s %8s %7s %8s\n" "$model" "$r" "$run" \
                "$target" "$1" "$2" "$3" "$4" "$5" "$6" | tee -a "$dir/table"
        done
        r=$((r + 1))
    done
done
echo "# medians over seeds 1..$REPS (epochs and seconds to the cold run's best; wall of the whole run)"
for model in $MODELS; do
    for run in cold warm; do
        awk -v m="$model" -v r="$run" '$1 == m && $3 == r' "$dir/table" >"$dir/sel"
        med() { sort -g "$dir/sel.$1" | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2];
                                               else printf "%g\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
        for c in 5 6 7 10; do awk -v c="$c" '$c != "-" { print $c }' "$dir/sel" >"$dir/sel.$c"; done
        echo "median $model $run reached $(wc -l <"$dir/sel.5")/$(wc -l <"$dir/sel") epochs_to_target $(med 5) s_to_target $(med 6) best $(med 7) wall_s $(med 10)"
    done
done
