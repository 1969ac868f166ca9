#!/bin/sh
# plots.sh - bench/plots.sh on tiny inputs made here by the CLI itself (P-STREAM over two
# seeds, a P-MODAL sweep and its ids-only reference on synthetic data with features) and a
# small latency table: valid SVGs come out, the same bytes twice, one line per series; absent
# inputs are skipped with a message, bad ones are named. Skipped without gnuplot or jq.
set -u
DYNREC=${DYNREC:-build/release/dynrec}
root=$(pwd)
n=0
fail() { echo "FAIL: $*"; exit 1; }
ok() { n=$((n + 1)); }
if ! command -v gnuplot >/dev/null 2>&1; then
    echo "SKIP plots: gnuplot is not on PATH (scripts/deps.sh installs gnuplot-nox)"
    exit 0
fi
if ! command -v jq >/dev/null 2>&1; then
    echo "SKIP plots: jq is not on PATH"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
plots() { sh "$root/bench/plots.sh" "$@"; }

# usage
plots >/dev/null 2>"$tmp/err"; rc=$?
[ $rc -eq 2 ] && grep -q '^usage: sh bench/plots.sh IN_DIR \[IN_DIR...\] OUT_DIR' "$tmp/err" || fail "no arguments: rc=$rc $(cat "$tmp/err")"
plots --help | grep -q '^usage:' || fail "--help"
plots "$tmp/none" "$tmp/o" 2>"$tmp/err"; rc=$?
[ $rc -eq 2 ] && grep -q "'$tmp/none' is not a folder" "$tmp/err" || fail "missing IN_DIR: rc=$rc $(cat "$tmp/err")"
ok

# nothing to plot: each chart skipped with its message, exit 0, no SVG
mkdir -p "$tmp/empty"
plots "$tmp/empty" "$tmp/o0" >"$tmp/out" 2>&1 || fail "empty IN_DIR: $(cat "$tmp/out")"
[ "$(grep -c 'chart skipped' "$tmp/out")" -eq 3 ] || fail "skip messages: $(cat "$tmp/out")"
ls "$tmp/o0"/*.svg >/dev/null 2>&1 && fail "an SVG without input"
ok

# inputs: the CLI's own JSON on data it synthesises (features: visual, audio)
in=$tmp/in
mkdir -p "$in/stream" "$in/modal"
$DYNREC data synth --seed 3 --users 200 --items 150 --events 5000 --dim-visual 8 --dim-audio 8 \
    --dim-text 0 --out "$tmp/d" 2>/dev/null || fail "synth"
for s in 1 2; do
    $DYNREC train --protocol stream --model mf --epochs 3 --adapter-search off --data "$tmp/d" \
        --seed $s --out "$tmp/synth_mf_s$s.drm" >/dev/null 2>&1 || fail "train seed $s"
    $DYNREC eval --protocol stream --model "$tmp/synth_mf_s$s.drm" --data "$tmp/d" --seed $s --json \
        >"$in/stream/synth_mf_s$s.json" 2>/dev/null || fail "stream eval seed $s"
done
$DYNREC eval --protocol modal --model mf --epochs 3 --modalities all --data "$tmp/d" --sweep --json \
    >"$in/modal/sweep.json" 2>/dev/null || fail "modal sweep"
$DYNREC eval --protocol modal --model mf --epochs 3 --modalities none --data "$tmp/d" --json \
    >"$in/modal/ids.json" 2>/dev/null || fail "modal ids only"
grep -q '"modalities":"none"}$' "$in/modal/ids.json" || fail "ids-only JSON names no modalities: $(cat "$in/modal/ids.json")"
# a JSON of another kind is left alone
$DYNREC data stats --data "$tmp/d" --json >"$in/stats.json" || fail "stats"
printf '# title: test server\n# percentile\tlatency_ms\n1\t0.100\n50\t0.500\n90\t1.250\n99\t4.000\n99.9\t9.500\n100\t12.000\n' \
    >"$in/latency.tsv"
ok

# three charts, valid SVG (xmllint, when present), one line per series
plots "$in" "$tmp/o1" >"$tmp/out" 2>&1 || fail "plots: $(cat "$tmp/out")"
for f in stream_synth_mf.svg modal_synth_mf.svg latency.svg; do
    [ -s "$tmp/o1/$f" ] || fail "$f not written: $(cat "$tmp/out")"
    head -n 1 "$tmp/o1/$f" | grep -q '^<?xml' || fail "$f: no XML declaration"
    sed '/^$/d' "$tmp/o1/$f" | tail -n 1 | grep -q '^</svg>$' || fail "$f: does not end with </svg>"
    if command -v xmllint >/dev/null 2>&1; then
        xmllint --noout "$tmp/o1/$f" 2>"$tmp/err" || fail "$f is not well-formed XML: $(head -n 3 "$tmp/err")"
    fi
done
[ "$(ls "$tmp/o1" | wc -l)" -eq 3 ] || fail "other files written: $(ls "$tmp/o1")"
svg=$tmp/o1/stream_synth_mf.svg
grep -q 'mean ± sd over 2 seeds' "$svg" || fail "stream title"
grep -q '>frozen base<' "$svg" && grep -q '>base + online adapter<' "$svg" || fail "stream series"
grep -q 'retrained' "$svg" && fail "a retrain line without a retrain column"
# a marker per slice and series (10 slices, 2 series), and one in each key entry
[ "$(grep -c "xlink:href='#gpPt" "$svg")" -ge 22 ] || fail "stream markers: $(grep -c "xlink:href='#gpPt" "$svg")"
svg=$tmp/o1/modal_synth_mf.svg
for t in 'ids only (1 run)' 'fused, visual removed, gate closed' 'fused, audio removed, gate closed' \
    'fused, visual removed, mean imputed' 'fused, audio removed, mean imputed'; do
    grep -q ">$t<" "$svg" || fail "modal series '$t' missing"
done
grep -q 'text removed' "$svg" && fail "a modality the model does not fuse"
svg=$tmp/o1/latency.svg
grep -q '>test server (p50 0.500 ms, p99 4.000 ms)<' "$svg" || fail "latency series title"
grep -q '>99.9%<' "$svg" || fail "latency nines axis"
ok

# the numbers drawn (PLOTS_DATA keeps each chart's tables): per slice the mean and sample sd of
# the two seeds, computed here independently; the ids-only line; the latency nines axis
PLOTS_DATA=$tmp/data plots "$in" "$tmp/o5" >/dev/null 2>&1 || fail "PLOTS_DATA run"
close() { # "x y [sd]" twice: the same fields, numbers within rounding (2e-6)
    awk -v a="$1" -v b="$2" 'BEGIN {n = split(a, x, " "); if (n != split(b, y, " ")) exit 1
        for (i = 1; i <= n; i++) {d = x[i] - y[i]; if (d < -2e-6 || d > 2e-6) exit 1}}'
}
for c in frozen adapter; do
    for j in 0 4 9; do
        a=$(jq --arg c "$c" ".stream.slices[$j][\$c][\"hit@10\"]" "$in/stream/synth_mf_s1.json")
        b=$(jq --arg c "$c" ".stream.slices[$j][\$c][\"hit@10\"]" "$in/stream/synth_mf_s2.json")
        want=$(awk -v a="$a" -v b="$b" -v x=$((j + 1)) 'BEGIN {d = a - b; if (d < 0) d = -d;
            printf "%d %.6f %.6f", x, (a + b) / 2, d / sqrt(2)}')
        got=$(awk -F'\t' -v x=$((j + 1)) '$1 == x {printf "%d %.6f %.6f", $1, $2, $3}' "$tmp/data/stream_synth_mf/$c.dat")
        close "$got" "$want" || fail "stream $c slice $((j + 1)): drew '$got', want '$want'"
    done
done
want=$(jq -r '.modal["recall@20"]' "$in/modal/ids.json" | awk '{printf "0 %.6f 0.000000", $1}')
got=$(awk -F'\t' 'NR == 1 {printf "%s %.6f %.6f", $1, $2, $3}' "$tmp/data/modal_synth_mf/ids.dat")
close "$got" "$want" || fail "ids-only line: drew '$got', want '$want'"
want=$(jq -r '.sweep[] | select(.impute == "gate" and .drop.visual == 1) | .modal["recall@20"]' "$in/modal/sweep.json" |
    awk '{printf "1 %.6f", $1}')
got=$(awk -F'\t' '$1 == 1 {printf "%s %.6f", $1, $2}' "$tmp/data/modal_synth_mf/gate_visual.dat")
close "$got" "$want" || fail "visual removed from every item: drew '$got', want '$want'"
grep -q "^2.000000	4.000000	99$" "$tmp/data/latency/latency_1.dat" || fail "latency p99: $(cat "$tmp/data/latency/latency_1.dat")"
grep -q "	100$" "$tmp/data/latency/latency_1.dat" && fail "the maximum on the nines axis"
# the stream chart's y axis reaches the highest mean drawn
top=$(sed -n 's/^[[:space:]]*<text>\([0-9]\.[0-9]*\)<\/text>$/\1/p' "$tmp/o1/stream_synth_mf.svg" | sort -n | tail -n 1)
hi=$(cut -f2 "$tmp/data/stream_synth_mf/adapter.dat" "$tmp/data/stream_synth_mf/frozen.dat" | sort -n | tail -n 1)
awk -v t="$top" -v h="$hi" 'BEGIN {exit !(t + 0 >= h + 0 && t + 0 < 2 * h + 0.1)}' || fail "stream y axis tops at '$top', highest mean $hi"
ok

# the same inputs give the same bytes
plots "$in" "$tmp/o2" >/dev/null 2>&1 || fail "second run"
for f in "$tmp"/o1/*.svg; do
    cmp -s "$f" "$tmp/o2/$(basename "$f")" || fail "$(basename "$f") differs between two runs"
done
ok

# several input folders; the output folder may be one of them (only SVGs are written there)
plots "$in/stream" "$in/modal" "$in/modal" >"$tmp/out" 2>&1 || fail "two IN_DIRs: $(cat "$tmp/out")"
cmp -s "$tmp/o1/stream_synth_mf.svg" "$in/modal/stream_synth_mf.svg" || fail "stream chart from two IN_DIRs"
cmp -s "$tmp/o1/modal_synth_mf.svg" "$in/modal/modal_synth_mf.svg" || fail "modal chart from two IN_DIRs"
grep -q 'latency chart skipped' "$tmp/out" || fail "latency not skipped: $(cat "$tmp/out")"
rm "$in/modal"/*.svg
ok

# the figures drawn follow the inputs: another seed's numbers change the stream chart
jq -c '.stream.slices[0].adapter["hit@10"] = 0.99' "$in/stream/synth_mf_s2.json" >"$tmp/s2.json"
cp "$tmp/s2.json" "$in/stream/synth_mf_s2.json"
plots "$in" "$tmp/o3" >/dev/null 2>&1 || fail "third run"
cmp -s "$tmp/o1/stream_synth_mf.svg" "$tmp/o3/stream_synth_mf.svg" && fail "changed input, same stream chart"
cmp -s "$tmp/o1/latency.svg" "$tmp/o3/latency.svg" || fail "latency chart changed with the stream input"
ok

# bad inputs are named: broken JSON, a P-STREAM without slices, a bad latency line
mkdir -p "$tmp/bad1" "$tmp/bad2" "$tmp/bad3"
printf '{"protocol":"P-STREAM",' >"$tmp/bad1/x.json"
plots "$tmp/bad1" "$tmp/ob" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc -eq 1 ] && grep -q "$tmp/bad1/x.json: not valid JSON" "$tmp/err" || fail "broken JSON: rc=$rc $(cat "$tmp/err")"
printf '{"protocol":"P-STREAM","stream":{}}\n' >"$tmp/bad2/y.json"
plots "$tmp/bad2" "$tmp/ob" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc -eq 1 ] && grep -q "$tmp/bad2/y.json: a P-STREAM result without per-slice figures" "$tmp/err" ||
    fail "stream without slices: rc=$rc $(cat "$tmp/err")"
printf '# percentile\tlatency_ms\n50\t1.0\n99\tfast\n' >"$tmp/bad3/lat.tsv"
plots "$tmp/bad3" "$tmp/ob" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc -eq 1 ] && grep -q "$tmp/bad3/lat.tsv:3: not a latency line" "$tmp/err" || fail "bad latency line: rc=$rc $(cat "$tmp/err")"
ls "$tmp/ob"/*.svg >/dev/null 2>&1 && fail "an SVG from bad input"
ok

# without gnuplot on PATH: a message that says where it comes from
mkdir -p "$tmp/bin"
ln -s "$(command -v jq)" "$tmp/bin/jq"
PATH="$tmp/bin" /bin/sh "$root/bench/plots.sh" "$in" "$tmp/o4" 2>"$tmp/err"; rc=$?
[ $rc -eq 1 ] && grep -q 'needs gnuplot (scripts/deps.sh installs gnuplot-nox)' "$tmp/err" || fail "no gnuplot: rc=$rc $(cat "$tmp/err")"
ok

echo "plots: $n checks passed"
