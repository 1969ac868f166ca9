#!/bin/sh
# fleet.sh - three replicas of `dynrec serve` on one Redis stream (a real redis-server on a unix
# socket in a temporary folder, stopped by its pid): 10,000 events posted round-robin across
# the replicas in batches, some batches retried with the same event ids; every replica reaches
# the same last id, record count and state hash, answers the same top-10 for 100 users, and a
# read with ?after= on one replica sees a write made through another.
set -u
DYNREC=${DYNREC:-build/release/dynrec}
for t in redis-server curl; do
    command -v $t >/dev/null 2>&1 || { echo "SKIP: $t is not installed (scripts/deps.sh installs it), fleet not checked"; exit 0; }
done
tmp=$(mktemp -d)
pids=""
rpid=""
cleanup() {
    for p in $pids; do kill -9 "$p" 2>/dev/null; done
    [ -n "$rpid" ] && kill -9 "$rpid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    for k in 1 2 3; do [ -f "$tmp/err$k.log" ] && tail -n 3 "$tmp/err$k.log"; done
    exit 1
}
field() { sed -n "s/.*\"$1\":\"\\{0,1\\}\\([^\",}]*\\).*/\\1/p"; } # field NAME < json

$DYNREC data synth --seed 21 --users 300 --items 200 --events 8000 --out "$tmp/d" >/dev/null 2>&1 || fail "synth"
$DYNREC train --model mf --data "$tmp/d" --out "$tmp/m.drm" --epochs 6 >/dev/null 2>&1 || fail "train"

redis-server --port 0 --unixsocket "$tmp/redis.sock" --appendonly yes --appendfsync always \
    --save '' --dir "$tmp" --daemonize no >"$tmp/redis.log" 2>&1 &
rpid=$!
i=0
while [ ! -S "$tmp/redis.sock" ]; do
    i=$((i + 1)); [ $i -gt 100 ] && fail "redis-server did not start: $(tail -3 "$tmp/redis.log")"; sleep 0.1
done
LOG="redis+unix://$tmp/redis.sock?stream=fleet"

start() { # k: replica k on an ephemeral port, its own state folder
    k=$1
    rm -f "$tmp/port$k"
    $DYNREC serve --model "$tmp/m.drm" --data-dir "$tmp/r$k" --log "$LOG" --port 0 --port-file "$tmp/port$k" \
        --threads 2 --snapshot-every 2000 --quiet >"$tmp/out$k.log" 2>"$tmp/err$k.log" &
    eval "pid$k=$!"
    pids="$pids $!"
}
for k in 1 2 3; do start $k; done
for k in 1 2 3; do
    i=0
    while [ ! -s "$tmp/port$k" ]; do
        i=$((i + 1)); [ $i -gt 600 ] && fail "replica $k did not start"; sleep 0.1
    done
    eval "base$k=http://127.0.0.1:$(cat "$tmp/port$k")"
done

# 100 batches of 100 events, round-robin; batch b holds events b*100 .. b*100+99
awk 'BEGIN { srand(5); for (b = 0; b < 100; b++) { s = "["; for (j = 0; j < 100; j++) { e = b * 100 + j;
        s = s (j ? "," : "") sprintf("{\"user\":\"u%d\",\"item\":\"i%d\",\"time\":%d,\"event_id\":\"ev%d\"}",
        1 + int(rand() * 300), 1 + int(rand() * 200), 1700000000 + e, e) }
        print s "]" > sprintf("'"$tmp"'/b%03d.json", b) } }'
post() { # replica batch-file: prints the answer
    eval "url=\$base$1"
    curl -s -X POST --data-binary @"$2" "$url/v1/events"
}
acked=0
for b in $(seq 0 99); do
    k=$((b % 3 + 1))
    f=$(printf '%s/b%03d.json' "$tmp" "$b")
    post $k "$f" >"$tmp/ack" || fail "post batch $b"
    grep -q '"accepted":100,' "$tmp/ack" || fail "batch $b: $(cat "$tmp/ack")"
    acked=$((acked + 100))
    last=$(field stream_id <"$tmp/ack")
    # every tenth batch is retried through another replica: nothing new is appended, same ids
    if [ $((b % 10)) -eq 5 ]; then
        post $((k % 3 + 1)) "$f" >"$tmp/ack2" || fail "retry batch $b"
        [ "$(field stream_id <"$tmp/ack2")" = "$last" ] || fail "retry of batch $b got other ids: $(cat "$tmp/ack") / $(cat "$tmp/ack2")"
    fi
done
[ -n "$last" ] || fail "no stream_id in the answers"

# read-your-writes elsewhere: a write through replica 1 is seen by replica 2 with ?after=
echo '[{"user":"u1","item":"fresh-item","time":1700100000,"event_id":"fresh"}]' >"$tmp/fresh.json"
post 1 "$tmp/fresh.json" >"$tmp/ack" || fail "post fresh"
last=$(field stream_id <"$tmp/ack")
code=$(curl -s -o "$tmp/body" -w '%{http_code}' "$base2/v1/users/u2/recommendations?k=10&after=$last")
[ "$code" = 200 ] || fail "after=$last on replica 2: $code $(cat "$tmp/body")"
curl -s "$base2/v1/items/fresh-item" | grep -q '"item":"fresh-item"' || fail "replica 2 does not know fresh-item after ?after="

# all replicas at the same position with the same state
for k in 1 2 3; do
    eval "url=\$base$k"
    i=0
    while :; do
        curl -s "$url/v1/state" >"$tmp/state$k"
        [ "$(field last_id <"$tmp/state$k")" = "$last" ] && break
        i=$((i + 1)); [ $i -gt 100 ] && fail "replica $k stuck at $(cat "$tmp/state$k"), want $last"
        sleep 0.1
    done
done
r1=$(field records <"$tmp/state1")
[ "$r1" = $((acked + 1)) ] || fail "records $r1, want $((acked + 1)) (retries must not add any): $(cat "$tmp/state1")"
cmp -s "$tmp/state1" "$tmp/state2" && cmp -s "$tmp/state1" "$tmp/state3" ||
    fail "states differ: $(cat "$tmp/state1") / $(cat "$tmp/state2") / $(cat "$tmp/state3")"

# the same top-10 for 100 users on every replica
for k in 1 2 3; do
    eval "url=\$base$k"
    for u in $(seq 1 100); do curl -s "$url/v1/users/u$u/recommendations?k=10"; echo; done >"$tmp/top$k"
done
[ "$(grep -c '"items":\[{' "$tmp/top1")" -ge 90 ] || fail "few answers: $(head -c 300 "$tmp/top1")"
cmp -s "$tmp/top1" "$tmp/top2" && cmp -s "$tmp/top1" "$tmp/top3" || fail "top-10 differs between replicas"

echo "fleet: 3 replicas, $acked events (+1), 10 batches retried, state $(field state_hash <"$tmp/state1") at $last on all"
