#!/bin/sh
# swap_faults.sh - kill -9 at a random moment during a base swap, RUNS times (10).
# Each run: a fresh `dynrec serve` on checkpoint A (SQLite log, fsync on), 4 curl clients post
# events (each event's user is unique, so GET /v1/users/U tells whether it was applied), a
# POST /v1/admin/base {"path": B, "force": true} is sent, and after a random 0..KILL_MAX_MS
# (1500) ms the server gets kill -9. It is restarted on the same folder, still given --model A.
# Checks: the base it serves (/healthz) is the one the log's newest BASE record names (B when
# the record was written, else A), and every event acknowledged before the kill is applied.
# Prints a line per run and totals; exits 1 on a wrong base or a lost event.
# Usage: bench/swap_faults.sh   Env: RUNS (10), KILL_MAX_MS (1500), DYNREC (build/release/dynrec)
set -u
BIN=${DYNREC:-build/release/dynrec}
RUNS=${RUNS:-10}
KILL_MAX_MS=${KILL_MAX_MS:-1500}
for t in curl sqlite3; do
    command -v $t >/dev/null 2>&1 || { echo "# skipped: $t is not installed"; exit 0; }
done
tmp=$(mktemp -d)
pid="" cpids=""
cleanup() {
    for p in $cpids $pid; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
"$BIN" data synth --seed 3 --users 3000 --items 2000 --events 100000 --out "$tmp/d" >/dev/null 2>&1
"$BIN" train --model mf --data "$tmp/d" --out "$tmp/a.drm" --epochs 4 >/dev/null 2>&1 || { echo "train failed"; exit 1; }
"$BIN" train --model mf --data "$tmp/d" --out "$tmp/b.drm" --epochs 6 --seed 9 >/dev/null 2>&1 || { echo "train failed"; exit 1; }

start() {
    rm -f "$tmp/port"
    "$BIN" serve --model "$tmp/a.drm" --data-dir "$tmp/st" --port 0 --port-file "$tmp/port" \
        --quiet >/dev/null 2>"$tmp/serve.err" &
    pid=$!
    i=0
    while [ ! -s "$tmp/port" ]; do
        i=$((i + 1)); [ $i -gt 600 ] && { echo "server did not start: $(tail -3 "$tmp/serve.err")"; exit 1; }
        sleep 0.1
    done
    base="http://127.0.0.1:$(cat "$tmp/port")"
}
client() { # $1 = run, $2 = client: posts until the server is gone
    k=0
    while :; do
        k=$((k + 1))
        u="r$1-c$2-$k"
        code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -X POST \
            -d "{\"user\":\"$u\",\"item\":\"i$((k % 500))\"}" "$base/v1/events") || break
        [ "$code" = 200 ] || break
        echo "$u" >>"$tmp/acked"
    done
}
total_acked=0 total_lost=0 bad_base=0 swapped_runs=0
run=0
while [ $run -lt "$RUNS" ]; do
    run=$((run + 1))
    rm -rf "$tmp/st" "$tmp/acked"
    : >"$tmp/acked"
    start
    cpids=""
    for c in 1 2 3 4; do client $run $c & cpids="$cpids $!"; done
    sleep 0.5
    curl -s -m 60 -o "$tmp/swap.out" -X POST -d "{\"path\":\"$tmp/b.drm\",\"force\":true}" "$base/v1/admin/base" &
    spid=$!
    ms=$(awk -v s="$(date +%N)" -v m="$KILL_MAX_MS" 'BEGIN { srand(s); printf "%d", rand() * m }')
    sleep "$(awk -v m="$ms" 'BEGIN { printf "%.3f", m / 1000 }')"
    kill -9 "$pid"
    wait "$pid" 2>/dev/null
    pid=""
    wait $cpids 2>/dev/null
    wait $spid 2>/dev/null
    cpids=""
    logged=$(sqlite3 "$tmp/st/events.db" "SELECT count(*) FROM log WHERE kind = 2")
    start
    served=$(curl -s "$base/healthz" | sed -n 's/.*"path":"\([^"]*\)".*/\1/p')
    want="$tmp/a.drm"
    [ "$logged" -gt 0 ] && want="$tmp/b.drm" && swapped_runs=$((swapped_runs + 1))
    ok_base=1
    [ "$served" = "$(readlink -f "$want")" ] || { ok_base=0; bad_base=$((bad_base + 1)); }
    acked=$(wc -l <"$tmp/acked")
    lost=0
    while read -r u; do
        curl -s "$base/v1/users/$u" | grep -q '"events":1' || lost=$((lost + 1))
    done <"$tmp/acked"
    total_acked=$((total_acked + acked))
    total_lost=$((total_lost + lost))
    echo "run $run: kill after ${ms} ms, base record logged: $([ "$logged" -gt 0 ] && echo yes || echo no), serving $(basename "$served") ($([ $ok_base = 1 ] && echo as the log says || echo WRONG)), acknowledged $acked, lost $lost"
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null
    pid=""
done
echo "swap_kill_runs $RUNS runs"
echo "swap_kill_runs_with_base_record $swapped_runs runs"
echo "swap_kill_wrong_base $bad_base runs"
echo "swap_kill_acknowledged $total_acked events"
echo "swap_kill_lost $total_lost events"
[ $bad_base -eq 0 ] && [ $total_lost -eq 0 ]
