#!/bin/sh
# server_crash.sh - the crash test, RUNS times (10): 4 clients post single events (each a new
# user, so every event can be looked up) to a durable `dynrec serve`, the server is killed with
# SIGKILL after 0.5-1.5 s, restarted on the same state folder, and every acknowledged event is
# looked up. Prints per run: acknowledged, recovered (events in the log after the restart that
# the burst sent), present (acknowledged events found); and the totals.
# Usage: bench/server_crash.sh [MODEL.drm] (default: a small synthetic BPR-MF trained here).
set -u
BIN=${DYNREC:-build/release/dynrec}
RUNS=${RUNS:-10}
tmp=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$tmp"' EXIT
MODEL=${1:-}
if [ -z "$MODEL" ]; then
    "$BIN" data synth --seed 7 --users 500 --items 300 --events 20000 --out "$tmp/d" >/dev/null 2>&1
    "$BIN" train --model mf --data "$tmp/d" --out "$tmp/m.drm" >/dev/null 2>&1 || { echo "train failed"; exit 1; }
    MODEL="$tmp/m.drm"
fi
start() {
    rm -f "$tmp/port"
    "$BIN" serve --model "$MODEL" --data-dir "$tmp/state" --port 0 --port-file "$tmp/port" \
        --threads 4 --snapshot-every 500 --max-new-users 200000 --quiet >/dev/null 2>"$tmp/err.log" &
    pid=$!
    while [ ! -s "$tmp/port" ]; do
        kill -0 "$pid" 2>/dev/null || { echo "server failed: $(cat "$tmp/err.log")"; exit 1; }
        sleep 0.05
    done
    base="http://127.0.0.1:$(cat "$tmp/port")"
}
total() { curl -s "$base/metrics" | sed -n 's/^dynrec_events_total //p'; }
burst() { # client run
    k=0
    while :; do
        k=$((k + 1))
        code=$(curl -s -o /dev/null -w '%{http_code}' -X POST \
            -d "{\"user\":\"r$2-c$1-$k\",\"item\":\"i$((k % 300))\"}" "$base/v1/events") || break
        [ "$code" = 200 ] || break
        echo "r$2-c$1-$k" >>"$tmp/acked.$2.$1"
    done
}
echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "run acknowledged recovered present"
sum_a=0
sum_r=0
sum_p=0
start
for run in $(seq "$RUNS"); do
    before=$(total)
    for c in 1 2 3 4; do burst $c "$run" & done
    sleep "$(awk -v s="$run" 'BEGIN {srand(s); printf "%.2f", 0.5 + rand()}')"
    kill -9 "$pid"
    wait "$pid" 2>/dev/null
    pid=""
    wait
    start
    cat "$tmp"/acked."$run".* >"$tmp/acked" 2>/dev/null
    a=$(wc -l <"$tmp/acked")
    r=$(($(total) - before))
    p=0
    while read -r u; do
        curl -s "$base/v1/users/$u" | grep -q '"events":1' && p=$((p + 1))
    done <"$tmp/acked"
    echo "$run $a $r $p"
    sum_a=$((sum_a + a))
    sum_r=$((sum_r + r))
    sum_p=$((sum_p + p))
done
kill -TERM "$pid"
wait "$pid"
pid=""
echo "crash_acknowledged $sum_a events ($RUNS runs)"
echo "crash_recovered $sum_r events"
echo "crash_acknowledged_present $sum_p events"
[ "$sum_p" -eq "$sum_a" ] || { echo "LOST $((sum_a - sum_p)) acknowledged events"; exit 1; }
