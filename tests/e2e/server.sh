#!/bin/sh
# server.sh - end-to-end checks of `dynrec serve` on 127.0.0.1 with an ephemeral port: bad
# input gets the documented 4xx, posted events make the boosted item rise, a restart gives the
# same recommendations, and after `kill -9` during a burst every acknowledged event is back.
set -u
DYNREC=${DYNREC:-build/release/dynrec}
if ! command -v curl >/dev/null 2>&1; then
    echo "SKIP: curl is not installed (scripts/deps.sh installs it), server end-to-end not checked"
    exit 0
fi
tmp=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    [ -f "$tmp/err.log" ] && tail -n 5 "$tmp/err.log"
    exit 1
}
KEY="Authorization: Bearer sekret"

$DYNREC data synth --seed 11 --users 200 --items 150 --events 6000 --out "$tmp/d" >/dev/null 2>&1 || fail "synth"
$DYNREC train --model mf --data "$tmp/d" --out "$tmp/m.drm" --epochs 10 >/dev/null 2>&1 || fail "train"
echo sekret >"$tmp/key"

start() {
    rm -f "$tmp/port"
    $DYNREC serve --model "${model:-$tmp/m.drm}" --data-dir "${state:-$tmp/state}" --port 0 --port-file "$tmp/port" \
        --threads 2 --api-key-file "$tmp/key" --public-read --max-body 65536 --snapshot-every 100 \
        >"$tmp/out.log" 2>"$tmp/err.log" &
    pid=$!
    i=0
    while [ ! -s "$tmp/port" ]; do
        i=$((i + 1))
        [ $i -gt 600 ] && fail "the server did not start in 60 s"
        kill -0 "$pid" 2>/dev/null || fail "the server exited at start"
        sleep 0.1
    done
    base="http://127.0.0.1:$(cat "$tmp/port")"
    grep -q "^listening on http://127.0.0.1:" "$tmp/out.log" || fail "no 'listening on' line"
}
stop() {
    kill -TERM "$pid"
    wait "$pid"
    rc=$?
    pid=""
    [ $rc -eq 0 ] || fail "exit status $rc after SIGTERM"
}
# expect CODE NEEDLE curl-args...: the status and a piece of the body
expect() {
    want=$1
    needle=$2
    shift 2
    got=$(curl -s -o "$tmp/body" -w '%{http_code}' "$@") || fail "curl $*"
    [ "$got" = "$want" ] || fail "$*: status $got, want $want: $(cat "$tmp/body")"
    grep -qF -- "$needle" "$tmp/body" || fail "$*: '$needle' not in $(cat "$tmp/body")"
}
# rank ITEM (1-based, 0 when absent) in the body of the last request
rank() {
    r=$(tr '{' '\n' <"$tmp/body" | grep '"item":' | sed 's/^"item":"\([^"]*\)".*/\1/' | grep -nx "$1" | cut -d: -f1 | head -n 1)
    echo "${r:-0}"
}
events_total() {
    curl -s "$base/metrics" | sed -n 's/^dynrec_events_total \([0-9]*\)$/\1/p'
}

start
expect 200 '"status":"ok"' "$base/healthz"
expect 200 '"chosen_on_validation":false' "$base/healthz" # a P-LOO checkpoint records no choice
# bad input: each a 4xx with a JSON error naming the problem
expect 401 'API key' -X POST -d '{"user":"u1","item":"i1"}' "$base/v1/events"
expect 401 'API key' -X POST -H "Authorization: Bearer nope" -d '{"user":"u1","item":"i1"}' "$base/v1/events"
expect 404 'no such route' "$base/v1/nothing"
expect 405 'not allowed' -X DELETE -H "$KEY" "$base/v1/items/i1"
expect 400 'invalid JSON' -X POST -H "$KEY" -d '{"user":"u1",' "$base/v1/events"
expect 400 'event.item: missing' -X POST -H "$KEY" -d '{"user":"u1"}' "$base/v1/events"
expect 400 'event.user: expected a string' -X POST -H "$KEY" -d '{"user":7,"item":"i1"}' "$base/v1/events"
expect 400 'time: expected an integer' -X POST -H "$KEY" -d '{"user":"u1","item":"i1","time":"now"}' "$base/v1/events"
printf '{"user":"\377","item":"i1"}' >"$tmp/bad_utf8"
expect 400 'invalid JSON' -X POST -H "$KEY" --data-binary @"$tmp/bad_utf8" "$base/v1/events"
expect 400 'user: invalid UTF-8' "$base/v1/users/%C3/recommendations"
expect 400 'k: must be an integer in 1..1000' "$base/v1/users/u1/recommendations?k=100000000"
expect 400 'invalid JSON' -X PUT -H "$KEY" -d '{"features":{"visual":[1,NaN]}}' "$base/v1/items/n1"
expect 400 'features.visual[0]: expected a finite number' -X PUT -H "$KEY" -d '{"features":{"visual":["NaN"]}}' "$base/v1/items/n1"
head -c 70000 /dev/zero | tr '\0' ' ' >"$tmp/big"
expect 413 'larger than 65536' -X POST -H "$KEY" --data-binary @"$tmp/big" "$base/v1/events"
expect 200 '"evidence":[{"id":"E1"' "$base/v1/users/u1/items/i1/explanation"
expect 404 'item: unknown' "$base/v1/users/u1/items/no-such-item/explanation"
expect 200 '"explanations":[{' "$base/v1/users/u1/recommendations?k=3&explain=true"
expect 200 'dynrec_http_unauthorized_total 2' "$base/metrics"
expect 200 'dynrec_events_total 0' "$base/metrics"

# boosted item rises: 2 x 480 events of 60 new users who take one item after another one;
# its rank goes up for the model's users (adapter) and it tops popular-now (unknown users)
users=$(sed -n '2,400p' "$tmp/d/interactions.tsv" | cut -f1 | sort -u | head -n 10)
user=$(echo "$users" | head -n 1)
target=i131
ranks() {
    out=""
    for u in $users; do
        curl -s "$base/v1/users/$u/recommendations?k=150" >"$tmp/body"
        out="$out $(rank "$target")"
    done
    echo "$out"
}
before=$(ranks)
expect 200 '"source":"popular"' "$base/v1/users/nobody/recommendations?k=150"
p0=$(rank "$target")
t=1700000000
for round in 1 2; do
    batch=""
    n=0
    while [ $n -lt 240 ]; do
        n=$((n + 1))
        batch="$batch{\"user\":\"fan$((n % 60))\",\"item\":\"i$((n % 150))\",\"time\":$((t + 2 * n))},"
        batch="$batch{\"user\":\"fan$((n % 60))\",\"item\":\"$target\",\"time\":$((t + 2 * n + 1))},"
    done
    t=$((t + 1000))
    expect 200 '"accepted":480' -X POST -H "$KEY" -d "{\"events\":[${batch%,}]}" "$base/v1/events"
done
after=$(ranks)
expect 200 '"source":"popular"' "$base/v1/users/nobody/recommendations?k=150"
p1=$(rank "$target")
[ "$p1" = 1 ] || fail "popular-now: $target is at $p1 after the events (was $p0)"
# users who have the item in their history (rank 0) are left out
up=0
down=0
sum0=0
sum1=0
set -- $after
for r0 in $before; do
    r1=$1
    shift
    [ "$r0" -gt 0 ] && [ "$r1" -gt 0 ] || continue
    [ "$r1" -lt "$r0" ] && up=$((up + 1))
    [ "$r1" -gt "$r0" ] && down=$((down + 1))
    sum0=$((sum0 + r0))
    sum1=$((sum1 + r1))
done
# it rises for most users and on average (the adapter moves every user a little differently)
[ $up -ge $((3 * down)) ] && [ $up -ge 5 ] && [ $sum1 -lt $sum0 ] ||
    fail "$target: ranks$before ->$after ($up rose, $down fell)"
echo "boosted item $target: ranks for 10 users$before ->$after; popular-now $p0 -> $p1"
# a new item from an event, a PUT item
expect 200 '"accepted":1' -X POST -H "$KEY" -d '{"user":"fan1","item":"brand-new"}' "$base/v1/events"
expect 201 '"created":true' -X PUT -H "$KEY" -d '{"title":"Put Item","attributes":{"genre":"Drama"},"features":{"text":[0.5,1]}}' "$base/v1/items/put-item"
expect 200 '"title":"Put Item"' "$base/v1/items/put-item"
expect 200 'genre=' "$base/v1/items/i1"

# restart: the same recommendations
for u in "$user" fan3 nobody; do
    curl -s "$base/v1/users/$u/recommendations?k=20" >"$tmp/before.$u"
done
stop
start
for u in "$user" fan3 nobody; do
    curl -s "$base/v1/users/$u/recommendations?k=20" >"$tmp/after.$u"
    cmp -s "$tmp/before.$u" "$tmp/after.$u" || fail "restart changed $u: $(cat "$tmp/before.$u") vs $(cat "$tmp/after.$u")"
done
expect 200 '"title":"Put Item"' "$base/v1/items/put-item"
expect 200 'dynrec_events_total 961' "$base/metrics"

# a retried request (same Idempotency-Key) is logged once and gets the original answer; its
# stream_id is applied (?after= answers), a position beyond the log is not (504)
expect 200 '"first_seq":963,"last_seq":963,"stream_id":"0-963","events_total":962}' -X POST -H "$KEY" \
    -H "Idempotency-Key: retry-1" -d '{"user":"idem","item":"i5"}' "$base/v1/events"
cp "$tmp/body" "$tmp/first"
expect 200 '"stream_id":"0-963"' -X POST -H "$KEY" -H "Idempotency-Key: retry-1" -d '{"user":"idem","item":"i5"}' "$base/v1/events"
cmp -s "$tmp/first" "$tmp/body" || fail "retry: $(cat "$tmp/first") then $(cat "$tmp/body")"
expect 200 '"first_seq":964,"last_seq":964' -X POST -H "$KEY" -d '{"user":"idem","item":"i6","event_id":"ev-1"}' "$base/v1/events"
expect 200 '"first_seq":964,"last_seq":964' -X POST -H "$KEY" -d '{"user":"idem","item":"i6","event_id":"ev-1"}' "$base/v1/events"
expect 200 '"events":2' "$base/v1/users/idem"
expect 200 '"source":"adapter"' "$base/v1/users/idem/recommendations?after=0-964"
expect 504 'replica is behind: applied 0-964, asked 0-999999' "$base/v1/users/idem/recommendations?after=999999&wait_ms=50"
expect 200 '{"last_id":"0-964","records":964,"state_hash":"' "$base/v1/state"
expect 200 'dynrec_apply_lag_records 0' "$base/metrics"

# kill -9 during a burst of events from 4 clients; every acknowledged event must be back
before=$(events_total)
burst() {
    k=0
    while :; do
        k=$((k + 1))
        code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "$KEY" \
            -d "{\"user\":\"c$1-$k\",\"item\":\"i$((k % 150))\"}" "$base/v1/events") || break
        [ "$code" = 200 ] || break
        echo "c$1-$k" >>"$tmp/acked.$1"
    done
}
for c in 1 2 3 4; do burst $c & done
sleep 1
kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=""
wait
cat "$tmp"/acked.* >"$tmp/acked" 2>/dev/null
acked=$(wc -l <"$tmp/acked")
[ "$acked" -gt 0 ] || fail "no event was acknowledged during the burst"
start
recovered=$(($(events_total) - before))
missing=0
while read -r u; do
    curl -s "$base/v1/users/$u" | grep -q '"events":1' || missing=$((missing + 1))
done <"$tmp/acked"
[ $missing -eq 0 ] || fail "$missing of $acked acknowledged events lost after kill -9"
# at most one unacknowledged request per client was in flight
[ $recovered -ge "$acked" ] && [ $recovered -le $((acked + 4)) ] || fail "recovered $recovered, acknowledged $acked"
echo "kill -9: acknowledged $acked, recovered $recovered, every acknowledged event present"

# SIGTERM with a batch in flight: the server answers it before exiting (drain), or, when the
# signal came first, the request is refused (503 while draining, or no connection once the
# server has gone); either way the log agrees with the answer
before=$(events_total)
big=""
n=0
while [ $n -lt 1000 ]; do
    n=$((n + 1))
    big="$big{\"user\":\"drain$((n % 50))\",\"item\":\"i$((n % 150))\"},"
done
echo "{\"events\":[${big%,}]}" >"$tmp/big.json"
curl -s -o "$tmp/drain.out" -w '%{http_code}' -X POST -H "$KEY" --data-binary @"$tmp/big.json" \
    "$base/v1/events" >"$tmp/drain.code" &
cpid=$!
sleep 0.1
stop
wait $cpid
code=$(cat "$tmp/drain.code")
start
after=$(events_total)
case "$code" in
200) [ "$after" -eq $((before + 1000)) ] || fail "drain: answered 200 but the log has $after events, not $((before + 1000))" ;;
000 | 503) [ "$after" -eq "$before" ] || fail "drain: status $code but the log grew from $before to $after" ;;
*) fail "drain: status $code: $(cat "$tmp/drain.out")" ;;
esac
echo "SIGTERM during a 1000-event request: status $code, events $before -> $after"
curl -s "$base/v1/state" >"$tmp/state.a"
stop
# a copy of the folder (another replica of the same log) reaches the same state
cp -r "$tmp/state" "$tmp/state-copy"
rm -f "$tmp"/state-copy/adapter-*.state
state="$tmp/state-copy"
start
curl -s "$base/v1/state" >"$tmp/state.b"
stop
state=""
cmp -s "$tmp/state.a" "$tmp/state.b" || fail "/v1/state: $(cat "$tmp/state.a") vs $(cat "$tmp/state.b") (the copy replayed the whole log)"
echo "/v1/state of a copy replayed from the log alone: $(cat "$tmp/state.b")"
$DYNREC serve --model "$tmp/m.drm" --data-dir "$tmp/state-x" --log nosuch://x --port 0 >/dev/null 2>"$tmp/err.log" &&
    fail "--log nosuch://x was accepted"
grep -q "sqlite" "$tmp/err.log" || fail "--log nosuch://x: $(cat "$tmp/err.log")"
$DYNREC serve --help | grep -q -- "--idempotency-ttl" || fail "--help does not document --idempotency-ttl"

# a fused checkpoint: a PUT's features give a new item its latent (details in test_server.c)
$DYNREC train --model mf --data "$tmp/d" --modalities visual --out "$tmp/fused.drm" --epochs 4 \
    >/dev/null 2>&1 || fail "train fused"
model="$tmp/fused.drm"
state="$tmp/state-fused"
start
expect 400 'features.visual: expected 64 numbers' -X PUT -H "$KEY" -d '{"features":{"visual":[1,2]}}' "$base/v1/items/f1"
expect 400 'features.text: unknown modality (the model fuses visual)' -X PUT -H "$KEY" -d '{"features":{"text":[1]}}' "$base/v1/items/f1"
vis=$(seq 64 | awk '{printf "%s%.3f", (NR > 1 ? "," : ""), sin($1)}')
expect 201 '"cold":false,"features_stored":1,"features_used":true' -X PUT -H "$KEY" \
    -d "{\"title\":\"Fused\",\"features\":{\"visual\":[$vis]}}" "$base/v1/items/f1"
expect 200 'dynrec_log_records 1' "$base/metrics"
stop

# a P-STREAM checkpoint carries the adapter's settings chosen on its validation stream, and the
# server's adapter uses them
$DYNREC train --protocol stream --model mf --data "$tmp/d" --out "$tmp/t0.drm" --epochs 4 \
    >/dev/null 2>"$tmp/t0.err" || fail "train --protocol stream: $(tail -2 "$tmp/t0.err")"
w=$(sed -n 's/^adapter search: chose window \([0-9]*\), .*/\1/p' "$tmp/t0.err")
[ -n "$w" ] || fail "train --protocol stream did not choose the adapter: $(tail -3 "$tmp/t0.err")"
model="$tmp/t0.drm"
state="$tmp/state-t0"
start
expect 200 "\"adapter\":{\"window\":$w," "$base/healthz"
expect 200 '"chosen_on_validation":true' "$base/healthz"
stop
echo "server end-to-end ok"
