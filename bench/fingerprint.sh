#!/bin/sh
# fingerprint.sh [BUILD] - hashes of what the engine answers, to show that a change which should
# not change behaviour did not: run it on two builds and diff the outputs. Each line is
# "name hash" (or the values themselves where they are short); timings are left out.
#   demo        `dynrec demo` + scripts/demo.sh's summary lines, numbers of seconds, ports and
#               Redis stream ids (wall-clock milliseconds) removed
#   loo_*       P-LOO JSON of pop and itemknn on each shared dataset present (no "seconds")
#   ckpt_*      checkpoint bytes of mf and sasrec trained on synthetic data (1 thread)
#   train_*     the epoch lines of those trainings (loss, validation NDCG), times removed
#   serve       bench_serve's hash of every user's answer over the mf checkpoint
#   http        answers of `dynrec serve` over HTTP: events in (with their times, so the
#               adapter's recency does not depend on the clock), then recommendations, user
#               records, explanations and a PUT item for 40 users
set -u
BUILD=${1:-build/release}
cd "$(dirname "$0")/.."
BIN=$BUILD/dynrec
tmp=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; [ -n "${FP_KEEP:-}" ] && cp "$tmp"/demo "$tmp"/http "$FP_KEEP"/; rm -rf "$tmp"' EXIT
h() { sha256sum | cut -c1-16; }
notime() {
    sed -E 's/[0-9]+(\.[0-9]+)? ?(s|ms|us|µs|seconds|req\/s|events\/s)\b/T/g; s/"seconds":[0-9.e+-]+//g
            s/seconds +[0-9.]+/seconds T/g; s/127\.0\.0\.1:[0-9]+/127.0.0.1:PORT/g; s/"timing_ms":\{[^}]*\}//g
            s/[0-9]{13}-[0-9]+/STREAM-ID/g; s|redis\+unix://[^ ?]*|redis+unix://SOCKET|g'
}

sh scripts/demo.sh "$BIN" 2>&1 | notime >"$tmp/demo"
echo "demo $(h <"$tmp/demo") ($(wc -l <"$tmp/demo") lines)"

for d in movielens-latest-small amazon-movies-tv-llmtup; do
    [ -d "../shared/data/$d" ] || { echo "loo_$d skipped (no ../shared/data/$d)"; continue; }
    for m in pop itemknn; do
        "$BIN" eval --protocol loo --model $m --data "../shared/data/$d" --json 2>/dev/null |
            sed 's/,"seconds":[0-9.e+-]*//' >"$tmp/loo"
        echo "loo_${d}_$m $(cat "$tmp/loo")"
    done
done

"$BIN" data synth --seed 7 --users 500 --items 300 --events 15000 --out "$tmp/syn" >/dev/null 2>&1
for m in mf sasrec; do
    "$BIN" train --model $m --data "$tmp/syn" --out "$tmp/$m.drm" --epochs 6 --eval-every 2 \
        --threads 1 --seed 3 2>"$tmp/train.$m" >/dev/null || echo "train_$m FAILED"
    echo "ckpt_$m $(h <"$tmp/$m.drm")"
    echo "train_$m $(grep -i epoch "$tmp/train.$m" | notime | h)"
done

"$BUILD/bench_serve" "$tmp/mf.drm" 2000 2>/dev/null | sed -n 's/^serve_output_hash \([0-9a-f]*\).*/serve \1/p'

"$BIN" serve --model "$tmp/mf.drm" --data-dir "$tmp/state" --port 0 --port-file "$tmp/port" \
    --threads 2 --quiet >"$tmp/serve.log" 2>&1 &
pid=$!
i=0
while [ ! -s "$tmp/port" ] && [ $i -lt 300 ]; do i=$((i + 1)); sleep 0.1; done
base="http://127.0.0.1:$(cat "$tmp/port")"
{
    for u in $(seq 1 40); do
        curl -s -X POST -d "{\"user\":\"u$u\",\"item\":\"i$((u * 7 % 300))\",\"time\":$((1700000000 + u))}" \
            "$base/v1/events" |
            sed 's/"first_seq":[0-9]*,"last_seq":[0-9]*//'
    done
    curl -s -X PUT -d '{"title":"New thing"}' "$base/v1/items/new-thing"
    curl -s -X POST -d '[{"user":"u1","item":"new-thing","time":1700000050},{"user":"nobody","item":"i3","time":1700000051}]' "$base/v1/events" |
        sed 's/"first_seq":[0-9]*,"last_seq":[0-9]*//'
    for u in $(seq 1 40 | sed "s/^/u/") nobody; do
        curl -s "$base/v1/users/$u/recommendations?k=10"
        curl -s "$base/v1/users/$u"
    done
    curl -s "$base/v1/users/u1/items/i7/explanation"
    curl -s "$base/v1/items/new-thing"
    curl -s "$base/v1/nothing-here"
    curl -s -X DELETE "$base/v1/users/u1/recommendations"
    curl -s -X POST -d '{"user":' "$base/v1/events"
} 2>&1 | notime >"$tmp/http"
echo "http $(h <"$tmp/http") ($(wc -c <"$tmp/http") bytes)"
