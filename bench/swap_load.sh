#!/bin/sh
# swap_load.sh - a base swap under load: `dynrec serve` (BPR-MF, synthetic 5,000 users x 3,000
# items, 200k events, --threads 2, fsync on) takes recommendations from wrk at about half its
# measured capacity (wrk_recs.lua with DELAY_MS) and events from 16 wrk connections posting
# single events (wrk_events.lua); 10 s of that before the swap, then 10 s around it (the
# POST /v1/admin/base with a second checkpoint goes out 2 s into the window). Reports the
# recommendations' p50/p99 and requests/s in both windows, failed requests (non-2xx, socket
# errors), and events acknowledged vs applied (records in the log, from /v1/state).
# Usage: bench/swap_load.sh   Env: DYNREC (build/release/dynrec), RUNS (3), WINDOW (10)
set -u
BIN=${DYNREC:-build/release/dynrec}
RUNS=${RUNS:-3}
WINDOW=${WINDOW:-10}
command -v wrk >/dev/null 2>&1 || { echo "# skipped: wrk not installed"; exit 0; }
tmp=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 1' INT TERM
D=$(dirname "$0")
"$BIN" data synth --seed 3 --users 5000 --items 3000 --events 200000 --out "$tmp/d" >/dev/null 2>&1
"$BIN" train --model mf --data "$tmp/d" --out "$tmp/a.drm" --epochs 10 >/dev/null 2>&1 || { echo "train failed"; exit 1; }
"$BIN" train --model mf --data "$tmp/d" --out "$tmp/b.drm" --epochs 10 --seed 9 >/dev/null 2>&1 || { echo "train failed"; exit 1; }
tail -n +2 "$tmp/d/interactions.tsv" | cut -f1 | sort -u >"$tmp/users"
tail -n +2 "$tmp/d/items.tsv" | cut -f1 >"$tmp/items"
export USERS_FILE="$tmp/users" ITEMS_FILE="$tmp/items"
pct() { # wrk output, percentile label ("50%", "99%") -> milliseconds
    awk -v p="$2" '$1 == p { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) sub(/ms$/, "", v); else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }; printf "%.3f", v }' "$1"
}
rps() { awk '/^Requests\/sec/ { printf "%.0f", $2 }' "$1"; }
reqs() { awk '/requests in/ { print $1 }' "$1"; }
bad() { # non-2xx + socket errors
    awk '/Non-2xx/ { n += $NF } /Socket errors/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "$1"
}
records() { curl -s "$base/v1/state" | sed -n 's/.*"records":\([0-9]*\).*/\1/p'; }
echo "# swap_load  machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), window ${WINDOW} s"
printf "%-4s %-9s %-9s %-9s %-9s %-9s %-9s %-7s %-9s %-10s %-9s %-8s\n" run cap_rps b_rps b_p50 b_p99 s_rps s_p50 s_p99 swap_s failed acked applied
run=0
while [ $run -lt "$RUNS" ]; do
    run=$((run + 1))
    rm -rf "$tmp/st" "$tmp/port"
    "$BIN" serve --model "$tmp/a.drm" --data-dir "$tmp/st" --port 0 --port-file "$tmp/port" --threads 2 \
        --quiet >/dev/null 2>"$tmp/serve.err" &
    pid=$!
    i=0
    while [ ! -s "$tmp/port" ]; do i=$((i + 1)); [ $i -gt 600 ] && { echo "server did not start"; exit 1; }; sleep 0.1; done
    base="http://127.0.0.1:$(cat "$tmp/port")"
    wrk -t1 -c4 -d3s -s "$D/wrk_recs.lua" "$base" >/dev/null 2>&1 # warm-up
    wrk -t1 -c4 -d5s -s "$D/wrk_recs.lua" "$base" >"$tmp/cap" 2>&1
    cap=$(rps "$tmp/cap")
    # 4 connections at half the capacity: each waits 4000 / (cap / 2) ms less its own latency
    delay=$(awk -v c="$cap" -v l="$(pct "$tmp/cap" 50%)" 'BEGIN { d = 8000 / c - l; if (d < 0) d = 0; printf "%d", d + 0.5 }')
    r0=$(records)
    wrk -t1 -c16 -d$((2 * WINDOW + 2))s -s "$D/wrk_events.lua" "$base" >"$tmp/ev" 2>&1 &
    evpid=$!
    sleep 1
    DELAY_MS=$delay wrk -t1 -c4 -d${WINDOW}s --latency -s "$D/wrk_recs.lua" "$base" >"$tmp/before" 2>&1
    DELAY_MS=$delay wrk -t1 -c4 -d${WINDOW}s --latency -s "$D/wrk_recs.lua" "$base" >"$tmp/around" 2>&1 &
    rpid=$!
    sleep 2
    curl -s -m 60 -X POST -d "{\"path\":\"$tmp/b.drm\",\"force\":true}" "$base/v1/admin/base" >"$tmp/swap.json"
    wait $rpid
    wait $evpid
    sleep 0.5
    r1=$(records)
    swap_s=$(sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p' "$tmp/swap.json" | head -1)
    grep -q '"swapped":true' "$tmp/swap.json" || { echo "swap failed: $(cat "$tmp/swap.json")"; exit 1; }
    acked=$(( $(reqs "$tmp/ev") - $(bad "$tmp/ev") ))
    applied=$((r1 - r0 - 1)) # the base record is one record
    failed=$(( $(bad "$tmp/before") + $(bad "$tmp/around") + $(bad "$tmp/ev") ))
    printf "%-4s %-9s %-9s %-9s %-9s %-9s %-9s %-7s %-9s %-10s %-9s %-8s\n" $run "$cap" "$(rps "$tmp/before")" \
        "$(pct "$tmp/before" 50%)" "$(pct "$tmp/before" 99%)" "$(rps "$tmp/around")" "$(pct "$tmp/around" 50%)" \
        "$(pct "$tmp/around" 99%)" "$swap_s" "$failed" "$acked" "$applied"
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null
    pid=""
done
echo "# b_ = the $WINDOW s before the swap, s_ = the $WINDOW s around it (p50/p99 in ms); acked = event posts"
echo "# answered 200 (wrk stops with up to 16 posts in flight: applied may exceed acked by at most 16)"
