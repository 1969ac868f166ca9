#!/bin/sh
# export_compact.sh - `dynrec export` and `dynrec compact` on state folders filled through the
# store API (bench_export fill: the rows the server writes, batches of 1000 events, one PUT with
# features per 1000 events): export wall time and peak RSS (/usr/bin/time -v, median of 3) for
# 100,000 and 1,000,000 events; the log's size (events.db + WAL) before and after compacting
# with a base record covering 90% of the log, and the compaction's wall time (median of 3
# copies). Then, only where `dynrec serve` applies base records (its --help says so; RESTART=1
# forces it) and starts on the folder, the server's restart time (start until listening, a full
# replay: no snapshot) on the uncompacted and the compacted folder.
# Usage: bench/export_compact.sh [SMALL [LARGE]]   (defaults 100000 1000000)
set -u
BUILD=${BUILD:-build/release}
BIN=${DYNREC:-$BUILD/dynrec}
FILL="$BUILD/bench_export"
SMALL=${1:-100000}
LARGE=${2:-1000000}
[ -x "$FILL" ] || make "$FILL" >/dev/null || exit 1
tmp=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
echo "# bench export_compact, $(uname -m), $(nproc) cores, commit $(git rev-parse --short HEAD 2>/dev/null || echo ?)"
$BIN data synth --seed 1 --users 5000 --items 2000 --events 100000 --out "$tmp/d" >/dev/null 2>&1 || exit 1
$BIN train --model mf --data "$tmp/d" --out "$tmp/m.drm" --epochs 1 >/dev/null 2>&1 || exit 1
echo "# checkpoint: mf on 5000 users, 2000 items, 100000 events"

med() { sort -n | sed -n 2p; } # the median of 3 lines
for n in $SMALL $LARGE; do
    "$FILL" fill "$tmp/s$n" "$tmp/m.drm" "$n" 0.9 || exit 1
    : >"$tmp/time"
    for r in 1 2 3; do
        /usr/bin/time -v "$BIN" export --data-dir "$tmp/s$n" --model "$tmp/m.drm" --out "$tmp/x$n" \
            2>>"$tmp/time" >/dev/null || { tail -n 3 "$tmp/time"; exit 1; }
    done
    wall=$(grep 'Elapsed (wall clock)' "$tmp/time" | sed 's/.*: //' | awk -F: '{print $NF}' | med)
    rss=$(grep 'Maximum resident set size' "$tmp/time" | awk '{print $NF}' | med)
    lines=$(wc -l <"$tmp/x$n/interactions.tsv")
    echo "export_wall_$n $wall s (median of 3; $n log events + 100000 checkpoint events, $((lines - 1)) rows)"
    echo "export_peak_rss_$n $((rss / 1024)) MiB (median of 3)"
    rm -rf "$tmp/x$n"
done

n=$LARGE
bytes() { echo $(($(stat -c %s "$1/events.db") + $(stat -c %s "$1/events.db-wal" 2>/dev/null || echo 0))); }
echo "log_bytes_before_$n $(bytes "$tmp/s$n") B (events.db + WAL)"
: >"$tmp/ctime"
for r in 1 2 3; do
    rm -rf "$tmp/c$r"
    cp -r "$tmp/s$n" "$tmp/c$r"
    /usr/bin/time -f '%e' -o "$tmp/one" "$BIN" compact --data-dir "$tmp/c$r" 2>"$tmp/c.err" >/dev/null ||
        { cat "$tmp/c.err"; exit 1; }
    cat "$tmp/one" >>"$tmp/ctime"
done
grep '^compact:' "$tmp/c.err" | tail -n 1 | sed 's/^/# /'
echo "compact_wall_$n $(med <"$tmp/ctime") s (median of 3 copies)"
echo "log_bytes_after_$n $(bytes "$tmp/c1") B (events.db + WAL; archive.db $(stat -c %s "$tmp/c1/archive.db") B)"
rm -rf "$tmp/c2" "$tmp/c3"

# restart time: only where the server applies base records (it must start on the folder)
restart() { # DIR -> seconds until the port file appears, or nothing
    rm -f "$tmp/port"
    t0=$(date +%s.%N)
    "$BIN" serve --model "$tmp/m.drm" --data-dir "$1" --port 0 --port-file "$tmp/port" --threads 1 \
        --no-fsync --max-new-users 100000 --max-new-items 20000 >/dev/null 2>"$tmp/serve.err" &
    pid=$!
    i=0
    while [ ! -s "$tmp/port" ]; do
        i=$((i + 1))
        if [ $i -gt 6000 ] || ! kill -0 "$pid" 2>/dev/null; then
            kill -9 "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
            pid=""
            return 1
        fi
        sleep 0.05
    done
    t1=$(date +%s.%N)
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null
    pid=""
    echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}'
}
if ! "$BIN" serve --help | grep -q "base record" && [ "${RESTART:-0}" != 1 ]; then
    echo "# restart: skipped: dynrec serve --help does not mention base records (RESTART=1 runs it anyway)"
elif u=$(restart "$tmp/s$n") && c=$(restart "$tmp/c1"); then
    echo "restart_uncompacted_$n $u s (whole log replayed)"
    echo "restart_compacted_$n $c s (records after the cut replayed)"
else
    echo "# restart: skipped: dynrec serve did not start on the folder in 300 s: $(tail -n 1 "$tmp/serve.err")"
fi
