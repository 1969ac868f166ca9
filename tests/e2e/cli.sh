#!/bin/sh
# cli.sh - end-to-end checks of the dynrec command line on data it generates itself.
set -u
DYNREC=${DYNREC:-build/release/dynrec}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
fail() { echo "FAIL: $*"; exit 1; }
ok() { n=$((n + 1)); }

# synthesise a small dataset, twice with the same seed: identical bytes
$DYNREC data synth --seed 3 --users 300 --items 200 --events 8000 --out "$tmp/a" 2>/dev/null || fail "synth"
$DYNREC data synth --seed 3 --users 300 --items 200 --events 8000 --out "$tmp/b" 2>/dev/null || fail "synth 2"
diff -r "$tmp/a" "$tmp/b" >/dev/null || fail "synth is not deterministic"
ok
$DYNREC data synth --seed 4 --users 300 --items 200 --events 8000 --out "$tmp/c" 2>/dev/null || fail "synth 3"
cmp -s "$tmp/a/interactions.tsv" "$tmp/c/interactions.tsv" && fail "different seeds gave the same data"
ok

# stats (human and JSON)
$DYNREC data stats --data "$tmp/a" >"$tmp/stats.txt" || fail "stats"
grep -q '^users *300' "$tmp/stats.txt" || fail "stats users: $(cat "$tmp/stats.txt")"
grep -q '^interactions *8000' "$tmp/stats.txt" || fail "stats interactions"
$DYNREC data stats --data "$tmp/a" --json >"$tmp/stats.json" || fail "stats --json"
grep -q '"users":300,"items":' "$tmp/stats.json" || fail "stats json: $(cat "$tmp/stats.json")"
ok

# eval --json has the documented shape
for m in pop itemknn; do
    $DYNREC eval --protocol loo --model $m --data "$tmp/a" --json >"$tmp/$m.json" 2>/dev/null || fail "eval $m"
    grep -Eq '^\{"protocol":"P-LOO","dataset":"[^"]*","model":"'$m'","n_users":300,"full":\{"hit@10":[0-9.]+,"ndcg@10":[0-9.]+,"hit@20":[0-9.]+,"ndcg@20":[0-9.]+\},"sampled100":\{"hit@10":[0-9.]+,"ndcg@10":[0-9.]+\},"seconds":[0-9.]+\}$' "$tmp/$m.json" \
        || fail "eval $m json shape: $(cat "$tmp/$m.json")"
done
ok
# the same answer for 1 and 2 threads
a=$($DYNREC eval --protocol loo --model itemknn --data "$tmp/a" --threads 1 --json | sed 's/,"seconds".*//')
b=$($DYNREC eval --protocol loo --model itemknn --data "$tmp/a" --threads 2 --json | sed 's/,"seconds".*//')
[ "$a" = "$b" ] || fail "thread count changed the result: $a vs $b"
ok

# recommend
$DYNREC recommend --data "$tmp/a" --model itemknn --user u1 -k 5 --json >"$tmp/rec.json" || fail "recommend"
[ "$(grep -o '"item":' "$tmp/rec.json" | wc -l)" -eq 5 ] || fail "recommend count: $(cat "$tmp/rec.json")"
ok

# train a base model, evaluate and recommend from its checkpoint alone
$DYNREC train --model mf --data "$tmp/a" --out "$tmp/mf.drm" --epochs 6 --eval-every 3 2>"$tmp/train.txt" || fail "train: $(cat "$tmp/train.txt")"
grep -q "valid NDCG@10" "$tmp/train.txt" || fail "train prints no epoch lines"
$DYNREC eval --protocol loo --model "$tmp/mf.drm" --data "$tmp/a" --json >"$tmp/mf.json" 2>/dev/null || fail "eval checkpoint"
grep -q '"model":"'"$tmp"'/mf.drm","n_users":300' "$tmp/mf.json" || fail "eval checkpoint json: $(cat "$tmp/mf.json")"
$DYNREC recommend --model "$tmp/mf.drm" --user u7 -k 4 --json >"$tmp/r.json" || fail "recommend from checkpoint"
[ "$(grep -o '"item":' "$tmp/r.json" | wc -l)" -eq 4 ] || fail "recommend from checkpoint: $(cat "$tmp/r.json")"
# every scan kernel, and the bf16 copy on or off, give the same bytes; a bad kernel name is said
for v in "DYNREC_SCAN=portable" "DYNREC_SCAN=avx2" "DYNREC_SCAN=avx512" "DYNREC_SCAN_BF16=1" \
         "DYNREC_SCAN_BF16=1 DYNREC_SCAN=portable" "DYNREC_SCAN_BF16=0"; do
    env $v $DYNREC recommend --model "$tmp/mf.drm" --user u7 -k 4 --json >"$tmp/rv.json" 2>"$tmp/err.txt" ||
        fail "recommend with $v: $(cat "$tmp/err.txt")"
    cmp -s "$tmp/r.json" "$tmp/rv.json" || fail "recommend with $v differs: $(cat "$tmp/rv.json")"
done
DYNREC_SCAN=sse9 $DYNREC recommend --model "$tmp/mf.drm" --user u7 -k 4 --json >"$tmp/rv.json" 2>"$tmp/err.txt" ||
    fail "recommend with a bad DYNREC_SCAN"
grep -q "DYNREC_SCAN=sse9" "$tmp/err.txt" && cmp -s "$tmp/r.json" "$tmp/rv.json" ||
    fail "bad DYNREC_SCAN: $(cat "$tmp/err.txt")"
$DYNREC eval --protocol loo --model "$tmp/mf.drm" --data "$tmp/c" 2>"$tmp/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "dynrec: format:" "$tmp/err.txt" || fail "model on another catalogue: rc=$rc $(cat "$tmp/err.txt")"
head -c 1000 "$tmp/mf.drm" >"$tmp/trunc.drm"
$DYNREC recommend --model "$tmp/trunc.drm" --user u7 2>"$tmp/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "trunc.drm" "$tmp/err.txt" || fail "truncated checkpoint: rc=$rc $(cat "$tmp/err.txt")"
ok

# SASRec's sampled-softmax loss from the command line: trains, the checkpoint names it; bad
# values are refused with a message naming them
$DYNREC train --model sasrec --loss sampled --negatives 64 --neg-alpha 0.25 --dim 8 --max-len 10 \
    --epochs 1 --no-baselines --data "$tmp/a" --out "$tmp/ss.drm" 2>"$tmp/train.txt" \
    || fail "train sampled: $(cat "$tmp/train.txt")"
grep -aq "sasrec_negatives" "$tmp/ss.drm" || fail "the checkpoint does not carry the sampled loss"
$DYNREC train --model sasrec --loss sampled --neg-alpha 2 --epochs 1 --data "$tmp/a" \
    --out "$tmp/bad.drm" 2>"$tmp/err.txt"; rc=$?
[ $rc -ne 0 ] && grep -q "neg_alpha=2 out of range" "$tmp/err.txt" || fail "neg-alpha 2: rc=$rc $(cat "$tmp/err.txt")"
$DYNREC train --model sasrec --loss softmax --epochs 1 --data "$tmp/a" --out "$tmp/bad.drm" 2>"$tmp/err.txt"; rc=$?
[ $rc -ne 0 ] && grep -q "unknown loss 'softmax' (ce, bce, sampled)" "$tmp/err.txt" || fail "loss softmax: rc=$rc $(cat "$tmp/err.txt")"
$DYNREC train --model sasrec --negatives 64 --epochs 1 --data "$tmp/a" --out "$tmp/bad.drm" 2>"$tmp/err.txt"; rc=$?
[ $rc -ne 0 ] && grep -q "apply to the loss 'sampled' only" "$tmp/err.txt" || fail "negatives with ce: rc=$rc $(cat "$tmp/err.txt")"
[ -e "$tmp/bad.drm" ] && fail "a refused training wrote a checkpoint"
ok

# P-STREAM: JSON shape, and a base that saw the replay is refused
$DYNREC eval --protocol stream --model mf --epochs 10 --data "$tmp/a" --json >"$tmp/stream.json" 2>/dev/null || fail "stream eval"
grep -Eq '^\{"protocol":"P-STREAM","dataset":"[^"]*","model":"mf","n_events":[0-9]+,.*"stream":\{"frozen":\{"hit@10":[0-9.]+,"ndcg@10":[0-9.]+.*\},"adapter":\{"hit@10":[0-9.]+,"ndcg@10":[0-9.]+.*"slices":\[\{"frozen":\{.*"cold":\{"frozen":\{' "$tmp/stream.json" \
    || fail "stream json shape: $(cat "$tmp/stream.json")"
[ "$(grep -o '"slices":\[.*\]' "$tmp/stream.json" | grep -o '{"frozen"' | wc -l)" -ge 10 ] || fail "stream json has fewer than 10 slices"
$DYNREC eval --protocol stream --model "$tmp/mf.drm" --data "$tmp/a" 2>"$tmp/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "seen the replay" "$tmp/err.txt" || fail "LOO base accepted for P-STREAM: rc=$rc $(cat "$tmp/err.txt")"
$DYNREC train --protocol stream --model mf --epochs 5 --data "$tmp/a" --out "$tmp/t0.drm" 2>"$tmp/t0.err" || fail "train --protocol stream"
# the adapter's settings are chosen on the validation stream before T0: 11 trials, then the choice
[ "$(grep -Ec '^ +[0-9]+ +[0-9]+ +[0-9.e-]+ +[0-9.e-]+ +[0-9.]+ ' "$tmp/t0.err")" = 11 ] || fail "adapter search trials: $(cat "$tmp/t0.err")"
grep -q '^adapter search: chose window [0-9]*, lr ' "$tmp/t0.err" || fail "adapter search: $(tail -3 "$tmp/t0.err")"
$DYNREC eval --protocol stream --model "$tmp/t0.drm" --data "$tmp/a" --no-adapter >/dev/null 2>&1 || fail "stream eval from a T0 checkpoint"
$DYNREC eval --protocol stream --model "$tmp/t0.drm" --data "$tmp/a" >/dev/null 2>"$tmp/ev.err" || fail "stream eval with the adapter"
grep -q 'as chosen on the validation stream' "$tmp/ev.err" || fail "eval did not use the recorded choice: $(cat "$tmp/ev.err")"
$DYNREC train --protocol stream --model mf --epochs 5 --data "$tmp/a" --out "$tmp/t0b.drm" --adapter-search off 2>"$tmp/t0b.err" || fail "--adapter-search off"
grep -q 'adapter search' "$tmp/t0b.err" && fail "--adapter-search off searched"
$DYNREC eval --protocol stream --model "$tmp/t0b.drm" --data "$tmp/a" >/dev/null 2>"$tmp/ev.err" || fail "stream eval, no choice"
grep -q "the library's defaults" "$tmp/ev.err" || fail "eval without a recorded choice: $(cat "$tmp/ev.err")"
$DYNREC train --protocol stream --model mf --data "$tmp/a" --out "$tmp/x.drm" --adapter-search maybe 2>/dev/null; [ $? = 2 ] || fail "--adapter-search maybe was accepted"
ok

# P-MODAL: fusion trained from --features, one setting (JSON shape), the sweep, bad specs
$DYNREC train --model mf --data "$tmp/a" --features visual="$tmp/a/features/visual.npy" --modality-dropout 0.3 \
    --epochs 6 --eval-every 3 --out "$tmp/fm.drm" 2>"$tmp/err.txt" || fail "train --features: $(cat "$tmp/err.txt")"
$DYNREC eval --protocol modal --data "$tmp/a" --model "$tmp/fm.drm" --drop visual=0.5 --impute mean --json >"$tmp/modal.json" 2>/dev/null || fail "modal eval"
grep -Eq '^\{"protocol":"P-MODAL","dataset":"[^"]*","model":"[^"]*fm.drm","drop":\{"visual":0.5\},"impute":"mean","modal":\{"recall@20":[0-9.]+,"ndcg@20":[0-9.]+,"hit@10":[0-9.]+\}\}$' "$tmp/modal.json" \
    || fail "modal json shape: $(cat "$tmp/modal.json")"
$DYNREC eval --protocol modal --data "$tmp/a" --model "$tmp/fm.drm" --sweep --json >"$tmp/sweep.json" 2>/dev/null || fail "modal sweep"
[ "$(grep -o '"impute":' "$tmp/sweep.json" | wc -l)" -eq 8 ] || fail "sweep rows: $(cat "$tmp/sweep.json")"
$DYNREC eval --protocol modal --data "$tmp/a" --model "$tmp/fm.drm" --drop audio=0.5 2>"$tmp/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "no modality 'audio'" "$tmp/err.txt" || fail "drop of an unfused modality: rc=$rc $(cat "$tmp/err.txt")"
$DYNREC eval --protocol modal --data "$tmp/a" --model "$tmp/fm.drm" --drop visual=2 2>/dev/null; [ $? -eq 2 ] || fail "bad --drop exit code"
$DYNREC train --model mf --data "$tmp/a" --features visual="$tmp/c/interactions.tsv" --out "$tmp/x.drm" 2>"$tmp/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "interactions.tsv" "$tmp/err.txt" || fail "bad feature file: rc=$rc $(cat "$tmp/err.txt")"
$DYNREC train --model mf --data "$tmp/a" --modalities smell --out "$tmp/x.drm" 2>"$tmp/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "smell" "$tmp/err.txt" || fail "unknown modality: rc=$rc $(cat "$tmp/err.txt")"
ok

# warm retrain from a checkpoint onto other data (same id scheme): --model defaults to its kind;
# a fused one needs the same modalities
$DYNREC train --init "$tmp/mf.drm" --data "$tmp/c" --epochs 3 --eval-every 3 --out "$tmp/w.drm" 2>"$tmp/err.txt" \
    && grep -q "warm start from" "$tmp/err.txt" || fail "train --init: $(cat "$tmp/err.txt")"
$DYNREC train --init "$tmp/fm.drm" --data "$tmp/a" --features visual="$tmp/a/features/visual.npy" --epochs 3 \
    --eval-every 3 --out "$tmp/w.drm" 2>"$tmp/err.txt" || fail "train --init fused: $(cat "$tmp/err.txt")"
$DYNREC train --init "$tmp/fm.drm" --data "$tmp/a" --out "$tmp/w.drm" 2>"$tmp/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "this fit ids only" "$tmp/err.txt" || fail "fused init, id-only fit: rc=$rc $(cat "$tmp/err.txt")"
$DYNREC train --init "$tmp/mf.drm" --dim 8 --data "$tmp/a" --out "$tmp/w.drm" 2>"$tmp/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "another shape" "$tmp/err.txt" || fail "init of another d: rc=$rc $(cat "$tmp/err.txt")"
$DYNREC train --init "$tmp/missing.drm" --data "$tmp/a" --out "$tmp/w.drm" 2>/dev/null; [ $? -eq 1 ] || fail "missing --init"
ok

# bad input: clear errors, right exit codes, no crash
$DYNREC data stats --data "$tmp/missing" 2>"$tmp/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "dynrec: io:" "$tmp/err.txt" || fail "missing path: rc=$rc $(cat "$tmp/err.txt")"
printf 'user,item,time\nu1,i1,10\nu1,i2,notanumber\nu2,i1,12\n' >"$tmp/bad.csv"
$DYNREC data stats --data "$tmp/bad.csv" >/dev/null 2>"$tmp/err.txt" || fail "lenient load failed"
grep -q "bad.csv:3" "$tmp/err.txt" || fail "bad row not reported with file:line: $(cat "$tmp/err.txt")"
$DYNREC data stats --data "$tmp/bad.csv" --strict >/dev/null 2>"$tmp/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "bad.csv:3" "$tmp/err.txt" || fail "strict load: rc=$rc $(cat "$tmp/err.txt")"
$DYNREC eval --protocol nope --model pop --data "$tmp/a" 2>/dev/null; [ $? -eq 2 ] || fail "bad protocol exit code"
$DYNREC eval --protocol loo --model nope --data "$tmp/a" 2>"$tmp/err.txt"; [ $? -eq 1 ] || fail "bad model exit code"
$DYNREC recommend --data "$tmp/a" --model pop --user nobody 2>"$tmp/err.txt"; [ $? -eq 1 ] || fail "unknown user"
grep -q "nobody" "$tmp/err.txt" || fail "unknown user message"
ok

echo "cli: $n checks passed"
