#!/bin/sh
# llm_rank.sh - end-to-end checks of the LLM ranker's commands: dynrec align (with lambda on
# validation targets), recommend --rerank llm, eval --protocol llm (P-LLM), and the refusals:
# a damaged .align file, an alignment used with another GGUF. The model is
# ../shared/models/stories260K.gguf when present, else a tiny random-weight GGUF written by
# test_llm; figures from either test the mechanism, not LLM quality.
set -u
DYNREC=${DYNREC:-build/release/dynrec}
BUILD=$(dirname "$DYNREC")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$BUILD/tests/test_llm" --write-gguf "$tmp/tiny.gguf" || { echo "SKIP: cannot write the tiny GGUF"; exit 0; }
model=../shared/models/stories260K.gguf
[ -n "${DR_SHARED:-}" ] && model=$DR_SHARED/models/stories260K.gguf
[ -r "$model" ] || model=$tmp/tiny.gguf

$DYNREC data synth --seed 5 --users 120 --items 80 --events 3000 --out "$tmp/d" 2>/dev/null || fail "synth"
$DYNREC train --model mf --data "$tmp/d" --out "$tmp/m.drm" --epochs 5 2>/dev/null || fail "train"
user=$(cut -f1 "$tmp/d/interactions.tsv" | sed -n 2p)

$DYNREC align --model "$tmp/m.drm" --llm "$model" --out "$tmp/m.align" --data "$tmp/d" \
    --epochs 5 --lambda-users 30 --json >"$tmp/a.json" 2>"$tmp/a.err" || fail "align: $(cat "$tmp/a.err")"
grep -q '^{"protocol":"P-LLM","what":"alignment quality",.*"recall@10_random":.*"lambda":[0-9.e-]*}$' "$tmp/a.json" ||
    fail "align json: $(cat "$tmp/a.json")"
grep -q "chosen lambda = " "$tmp/a.err" || fail "align: no lambda: $(cat "$tmp/a.err")"

$DYNREC recommend --model "$tmp/m.drm" --user "$user" -k 3 --rerank llm --llm "$model" \
    --align "$tmp/m.align" --json >"$tmp/r.json" || fail "recommend --rerank llm"
grep -q '"rerank":"llm",.*"soft_tokens":true,"lambda":' "$tmp/r.json" || fail "rerank json: $(cat "$tmp/r.json")"
[ "$(grep -o '"base_rank":' "$tmp/r.json" | wc -l)" -eq 3 ] || fail "rerank: 3 items: $(cat "$tmp/r.json")"

$DYNREC eval --protocol llm --model "$tmp/m.drm" --data "$tmp/d" --llm "$model" --align "$tmp/m.align" \
    --max-users 25 --json >"$tmp/e.json" 2>/dev/null || fail "eval --protocol llm"
grep -q '^{"protocol":"P-LLM","dataset":"synth",.*"soft_tokens":true,"users":25,"targets":"test",.*"full_reranked":{"hit@10":' "$tmp/e.json" ||
    fail "P-LLM json: $(cat "$tmp/e.json")"

# a damaged alignment file, and one used with another GGUF, are refused with the reason
cp "$tmp/m.align" "$tmp/bad.align"
printf 'X' | dd of="$tmp/bad.align" bs=1 seek=200 conv=notrunc 2>/dev/null
$DYNREC recommend --model "$tmp/m.drm" --user "$user" --rerank llm --llm "$model" --align "$tmp/bad.align" \
    2>"$tmp/err" >/dev/null && fail "damaged .align accepted"
grep -q "bad.align: checksum mismatch" "$tmp/err" || fail "damaged .align message: $(cat "$tmp/err")"
if [ "$model" != "$tmp/tiny.gguf" ]; then
    $DYNREC recommend --model "$tmp/m.drm" --user "$user" --rerank llm --llm "$tmp/tiny.gguf" \
        --align "$tmp/m.align" 2>"$tmp/err" >/dev/null && fail "another GGUF accepted"
    grep -q "learned for another GGUF model" "$tmp/err" || fail "other GGUF message: $(cat "$tmp/err")"
fi
echo "ok: align, recommend --rerank llm, eval --protocol llm, refusals ($model)"
