#!/bin/sh
# tune.sh - end-to-end checks of `dynrec tune` and of the baseline comparison of `dynrec train`
# on data the test generates: the same seed and trial count give the same figures and checkpoint
# bytes, the checkpoint is the best trial with its settings and figures in its metadata, a
# baseline that wins is written and said so, data without timestamps is named, bad input is
# refused with a clear message.
set -u
DYNREC=${DYNREC:-build/release/dynrec}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
fail() { echo "FAIL: $*"; exit 1; }
ok() { n=$((n + 1)); }
D="$tmp/syn"
$DYNREC data synth --seed 5 --users 200 --items 120 --events 5000 --out "$D" 2>/dev/null || fail "synth"

# twice with the same seed and --trials: the same JSON but for the seconds, the same bytes
tune() { $DYNREC tune --data "$D" --trials 7 --max-len 20 --threads 2 "$@"; }
tune --out "$tmp/a.drm" --json >"$tmp/a.json" 2>"$tmp/a.err" || fail "tune: $(cat "$tmp/a.err")"
tune --out "$tmp/b.drm" --json --threads 1 >"$tmp/b.json" 2>/dev/null || fail "tune again"
strip() { sed -e 's/"seconds":[0-9.]*//g' -e 's/"out":"[^"]*"//' "$1"; }
[ "$(strip "$tmp/a.json")" = "$(strip "$tmp/b.json")" ] || fail "same seed, other figures: $(cat "$tmp/a.json") vs $(cat "$tmp/b.json")"
cmp -s "$tmp/a.drm" "$tmp/b.drm" || fail "same seed, other checkpoint bytes"
ok
# the documented JSON shape, and a trial line per trial on stderr
grep -Eq '^\{"dataset":"synth","protocol":"P-LOO","metric":"ndcg@10","seed":42,"stopped":"trials","best":\{"model":"[a-z]+","settings":\{.*\},"epochs":[0-9]+,"trial":[0-9]+,"valid":\{"n_users":[0-9]+,"ndcg@10":[0-9.]+,"hit@10":[0-9.]+,"ndcg@20":[0-9.]+,"hit@20":[0-9.]+\}\},"baseline_won":(true|false),"baselines":\{"pop":\{"n_users":[0-9]+,"ndcg@10":[0-9.]+.*\},"itemknn":\{.*\}\},"trials":\[\{"trial":1,"candidate":1,"rung":0,"model":"sasrec","settings":\{"dim":[0-9]+,"max-len":20,.*\],"seconds":[0-9.]+,"out":"[^"]*a.drm"\}$' "$tmp/a.json" \
    || fail "tune json shape: $(cat "$tmp/a.json")"
[ "$(grep -o '"trial":[0-9]*,"candidate"' "$tmp/a.json" | wc -l)" -eq 7 ] || fail "7 trials in the JSON"
[ "$(grep -Ec '^ +[0-9]+ +[0-9]+ +[0-9]+  (sasrec|mf|itemknn) ' "$tmp/a.err")" -eq 7 ] || fail "7 trial lines: $(cat "$tmp/a.err")"
grep -q '(baseline) knn-last=5' "$tmp/a.err" || fail "the baselines are in the table: $(cat "$tmp/a.err")"
ok
# the checkpoint is the best trial: its kind, its settings and figures in the metadata, and it
# ranks the validation targets exactly as the search did
best_model=$(sed 's/.*"best":{"model":"\([a-z]*\)".*/\1/' "$tmp/a.json")
best_ndcg=$(sed 's/.*"best":{[^}]*},[^}]*"valid":{"n_users":[0-9]*,"ndcg@10":\([0-9.]*\).*/\1/' "$tmp/a.json")
grep -aq "tune.valid_ndcg10=$best_ndcg" "$tmp/a.drm" || fail "checkpoint meta lacks tune.valid_ndcg10=$best_ndcg"
grep -aq "tune.settings=" "$tmp/a.drm" && grep -aq "tune.pop_ndcg10=" "$tmp/a.drm" || fail "checkpoint meta lacks settings or baselines"
tr '\0' '\n' <"$tmp/a.drm" | grep -aq "^model=$best_model$" || fail "checkpoint holds another kind than $best_model"
$DYNREC eval --protocol loo --valid --model "$tmp/a.drm" --data "$D" --json >"$tmp/ev.json" 2>/dev/null || fail "eval the tuned checkpoint"
grep -q "\"ndcg@10\":$best_ndcg," "$tmp/ev.json" || fail "the checkpoint ranks otherwise: $best_ndcg vs $(cat "$tmp/ev.json")"
ok

# one weak trained candidate: a baseline wins, is written, and is named in one line
$DYNREC tune --data "$D" --models sasrec --epochs 1 --lr 0.00001 --trials 1 --max-len 20 --out "$tmp/k.drm" \
    >"$tmp/k.out" 2>"$tmp/k.err" || fail "tune --models sasrec: $(cat "$tmp/k.err")"
grep -q "tune: a baseline beat every trained candidate: itemknn" "$tmp/k.err" || fail "no baseline-won line: $(cat "$tmp/k.err")"
grep -q "dynrec train --data $D --model sasrec --seed 42 --epochs 1 --no-early-stop --dim [0-9]* --max-len 20 " "$tmp/k.err" \
    || fail "no train command: $(cat "$tmp/k.err")"
# that command trains the rung-0 candidate again: the same validation figure
cmd=$(sed -n 's/.*`dynrec train \(.*\) --out FILE`.*/\1/p' "$tmp/k.err")
want=$(sed -n 's/.*over the best trained one, sasrec (\([0-9.]*\)).*/\1/p' "$tmp/k.err")
[ -n "$cmd" ] && [ -n "$want" ] || fail "no train command or figure: $(cat "$tmp/k.err")"
# shellcheck disable=SC2086
$DYNREC train $cmd --out "$tmp/again.drm" 2>"$tmp/again.err" || fail "train $cmd: $(cat "$tmp/again.err")"
grep -Eq "^  sasrec +$want " "$tmp/again.err" || fail "train $cmd does not give $want: $(cat "$tmp/again.err")"
$DYNREC recommend --model "$tmp/k.drm" --user u3 -k 2 >"$tmp/r.txt" 2>&1 && grep -q "(itemknn," "$tmp/r.txt" \
    || fail "the written baseline does not recommend: $(cat "$tmp/r.txt")"
ok

# train: the model beside the baselines on the validation targets, and the loses-line
$DYNREC train --model mf --data "$D" --epochs 20 --out "$tmp/mf.drm" 2>"$tmp/t.err" || fail "train mf"
grep -Eq '^  mf +[0-9.]+ +[0-9.]+$' "$tmp/t.err" && grep -Eq '^  itemknn +[0-9.]+ +[0-9.]+  \(baseline\)$' "$tmp/t.err" \
    || fail "train prints no comparison: $(cat "$tmp/t.err")"
$DYNREC train --model sasrec --data "$D" --epochs 1 --lr 0.00001 --max-len 20 --out "$tmp/s.drm" 2>"$tmp/t.err" || fail "train sasrec"
grep -Eq "^train: warning: sasrec's validation NDCG@10 [0-9.]+ is below itemknn's [0-9.]+ on the same [0-9]+ users$" "$tmp/t.err" \
    || fail "no loses-line: $(cat "$tmp/t.err")"
$DYNREC train --model mf --data "$D" --epochs 2 --no-baselines --out "$tmp/x.drm" 2>"$tmp/t.err" || fail "train --no-baselines"
grep -q "baseline" "$tmp/t.err" && fail "--no-baselines compared: $(cat "$tmp/t.err")"
$DYNREC train --model mf --protocol stream --data "$D" --epochs 2 --out "$tmp/x.drm" 2>"$tmp/t.err" || fail "train stream"
# the stream split validates on each user's last pre-T0 event: the comparison runs there too
grep -Eq "^train: validation targets of [0-9]+ users" "$tmp/t.err" || fail "stream split not compared: $(cat "$tmp/t.err")"
ok

# no timestamps: the given split by default, and said so
printf 'u1\ti1\nu1\ti2\nu1\ti3\nu2\ti2\nu2\ti3\nu2\ti1\nu3\ti1\nu3\ti3\nu3\ti2\nu3\ti4\n' >"$tmp/notime.tsv"
$DYNREC tune --data "$tmp/notime.tsv" --cols 0,1 --models pop --trials 1 >/dev/null 2>"$tmp/nt.err" || fail "tune without time: $(cat "$tmp/nt.err")"
grep -q "has no timestamps: file order carries no time" "$tmp/nt.err" || fail "no-time not said: $(cat "$tmp/nt.err")"
$DYNREC tune --data tests/fixtures/tiktok --models pop --trials 1 >/dev/null 2>"$tmp/nt.err" || fail "tune tiktok fixture: $(cat "$tmp/nt.err")"
grep -q "GIVEN validation targets" "$tmp/nt.err" && grep -q "source's own validation split" "$tmp/nt.err" \
    || fail "the given split is not the default: $(cat "$tmp/nt.err")"
ok

# bad input: a clear message and the usual exit codes
expect() { # rc pattern args...
    want=$1 pat=$2
    shift 2
    $DYNREC tune "$@" >/dev/null 2>"$tmp/e.txt"
    rc=$?
    [ $rc -eq "$want" ] && grep -q "$pat" "$tmp/e.txt" || fail "tune $*: rc=$rc $(cat "$tmp/e.txt")"
}
expect 1 "unknown model 'knn' (known: pop, itemknn, sasrec, mf)" --data "$D" --budget 1 --models mf,knn
expect 2 "budget wants minutes above 0" --data "$D" --budget 0
expect 2 "budget wants minutes above 0" --data "$D" --budget soon
expect 2 "trials wants a count" --data "$D" --trials 0
expect 2 "budget MINUTES (or --trials N) is required" --data "$D"
expect 2 "data PATH is required" --budget 1
expect 1 "$tmp/missing" --data "$tmp/missing" --budget 1
expect 2 "unknown --protocol" --data "$D" --budget 1 --protocol soon
# P-STREAM's base validates on each user's last pre-T0 event: tune searches there too
$DYNREC tune --data "$D" --trials 2 --models mf --protocol stream --out "$tmp/st.drm" >"$tmp/st.txt" 2>&1 ||
    fail "tune --protocol stream: $(cat "$tmp/st.txt")"
grep -q "P-STREAM validation targets of [0-9]* users" "$tmp/st.txt" || fail "tune --protocol stream: $(cat "$tmp/st.txt")"
ok
echo "tune.sh: $n groups passed"
