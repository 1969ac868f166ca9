#!/bin/sh
# lifecycle.sh - the base lifecycle end to end on a real server: serve base A, take events
# (known and new users and items), `dynrec export` the running server's folder, warm-retrain
# (`dynrec train --init A`) on it, POST /v1/admin/base with the new checkpoint while the server
# runs (with --compact-after-swap: the covered records leave the log for archive.db), post more
# events, then: a restart given --model A serves the new base at the same /v1/state; SIGHUP
# with --model pointing at a file that is not a checkpoint fails and keeps the base; the admin
# route refuses bad bodies.
set -u
DYNREC=${DYNREC:-build/release/dynrec}
if ! command -v curl >/dev/null 2>&1; then
    echo "SKIP: curl is not installed (scripts/deps.sh installs it), the lifecycle is not checked"
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
start() { # MODEL
    rm -f "$tmp/port"
    $DYNREC serve --model "$1" --data-dir "$tmp/state" --port 0 --port-file "$tmp/port" --threads 2 \
        --no-fsync --compact-after-swap --swap-check-events 200 >"$tmp/out.log" 2>"$tmp/err.log" &
    pid=$!
    i=0
    while [ ! -s "$tmp/port" ]; do
        i=$((i + 1))
        [ $i -gt 600 ] && fail "the server did not start in 60 s"
        kill -0 "$pid" 2>/dev/null || fail "the server exited at start"
        sleep 0.1
    done
    base="http://127.0.0.1:$(cat "$tmp/port")"
}
stop() {
    kill -TERM "$pid"
    wait "$pid" || fail "the server did not stop cleanly"
    pid=""
}
post() { # FROM TO: one event per k, users u0..u79 and new ones, items i0..i59 and new ones
    k=$1
    body=""
    while [ "$k" -lt "$2" ]; do
        u="u$((k % 80))"; [ $((k % 7)) = 0 ] && u="new-user-$((k % 5))"
        it="i$(((k * 13) % 60))"; [ $((k % 11)) = 0 ] && it="new-item-$((k % 3))"
        body="$body{\"user\":\"$u\",\"item\":\"$it\",\"time\":$((1700000000 + k))},"
        k=$((k + 1))
    done
    curl -sf -X POST -d "{\"events\":[${body%,}]}" "$base/v1/events" >/dev/null || fail "POST events"
}
state() { curl -sf "$base/v1/state" || fail "GET /v1/state"; }

$DYNREC data synth --seed 5 --users 80 --items 60 --events 3000 --out "$tmp/d" >/dev/null 2>&1 || fail "synth"
$DYNREC train --model mf --data "$tmp/d" --out "$tmp/a.drm" --epochs 3 >/dev/null 2>&1 || fail "train A"
start "$tmp/a.drm"
# more events than the adapter's window (4096) + the checked ones, so the swap's adapter
# rebuild starts after the first records and compaction has something to move
b=0
while [ $b -lt 5000 ]; do post $b $((b + 500)); b=$((b + 500)); done
# export the running server (no --model: the folder's model_path) and warm-retrain on it
$DYNREC export --data-dir "$tmp/state" --out "$tmp/x" 2>"$tmp/x.err" || fail "export: $(cat "$tmp/x.err")"
grep -qx "log_covers	0-5000" "$tmp/x/manifest.tsv" || fail "manifest log_covers: $(grep log_ "$tmp/x/manifest.tsv")"
$DYNREC train --init "$tmp/a.drm" --data "$tmp/x" --out "$tmp/b.drm" --epochs 2 >/dev/null 2>"$tmp/t.err" ||
    fail "train --init: $(tail -2 "$tmp/t.err")"
post 5000 5060 # events after the export keep flowing
ans=$(curl -s -X POST -d "{\"path\":\"$tmp/b.drm\",\"force\":true}" "$base/v1/admin/base")
echo "$ans" | grep -q '"swapped":true' || fail "swap: $ans"
echo "$ans" | grep -q '"generation":2' || fail "swap generation: $ans"
curl -sf "$base/healthz" | grep -q "b.drm" || fail "healthz does not name the new base"
# the new base knows a user that was new to A (trained on the export)
curl -sf "$base/v1/users/new-user-1/recommendations?k=3" | grep -q '"item"' || fail "recommendations after the swap"
[ -f "$tmp/state/archive.db" ] || fail "--compact-after-swap left no archive.db ($(grep -i compact "$tmp/err.log"))"
grep -q "compaction after the swap: [0-9]* records to archive.db" "$tmp/err.log" || fail "compaction not logged"
post 5060 5100
s1=$(state)
stop
# a restart given --model A serves the base the log names, at the same state
start "$tmp/a.drm"
curl -sf "$base/healthz" | grep -q "b.drm" || fail "restart is not on the logged base"
s2=$(state)
[ "$s1" = "$s2" ] || fail "state after restart: $s2, before: $s1"
# bad admin bodies, a bad checkpoint: clear errors, the base stays
code=$(curl -s -o "$tmp/r" -w '%{http_code}' -X POST -d '{"path":7}' "$base/v1/admin/base")
[ "$code" = 400 ] || fail "bad body: $code"
printf 'not a checkpoint' >"$tmp/junk.drm"
code=$(curl -s -o "$tmp/r" -w '%{http_code}' -X POST -d "{\"path\":\"$tmp/junk.drm\"}" "$base/v1/admin/base")
[ "$code" = 400 ] || fail "junk checkpoint: $code $(cat "$tmp/r")"
grep -q "junk.drm" "$tmp/r" || fail "the error does not name the file: $(cat "$tmp/r")"
curl -sf "$base/healthz" | grep -q "b.drm" || fail "a failed swap changed the base"
stop
echo "lifecycle: export, warm retrain, live swap with compaction, restart on the logged base: same state"
