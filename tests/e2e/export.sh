#!/bin/sh
# export.sh - `dynrec export` and `dynrec compact` end to end: a server on an ephemeral port
# takes events from new and known users and a PUT with features, stops; the folder is exported,
# trained on (the new checkpoint knows the new users and items and carries log_covers);
# compaction without a base record moves nothing; bad folders and flags give clear errors.
set -u
DYNREC=${DYNREC:-build/release/dynrec}
if ! command -v curl >/dev/null 2>&1; then
    echo "SKIP: curl is not installed (scripts/deps.sh installs it), export end-to-end not checked"
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

$DYNREC data synth --seed 5 --users 60 --items 40 --events 1500 --out "$tmp/d" >/dev/null 2>&1 || fail "synth"
$DYNREC train --model mf --data "$tmp/d" --out "$tmp/m.drm" --epochs 2 >/dev/null 2>&1 || fail "train"

$DYNREC serve --model "$tmp/m.drm" --data-dir "$tmp/state" --port 0 --port-file "$tmp/port" \
    --threads 2 --no-fsync >"$tmp/out.log" 2>"$tmp/err.log" &
pid=$!
i=0
while [ ! -s "$tmp/port" ]; do
    i=$((i + 1))
    [ $i -gt 600 ] && fail "the server did not start in 60 s"
    kill -0 "$pid" 2>/dev/null || fail "the server exited at start"
    sleep 0.1
done
base="http://127.0.0.1:$(cat "$tmp/port")"
known_user=$(sed -n '2p' "$tmp/d/interactions.tsv" | cut -f1)
known_item=$(sed -n '2p' "$tmp/d/interactions.tsv" | cut -f2)
# a modality the synthetic data lacks (its own are carried over by --data)
curl -sf -X PUT -d '{"title":"Fresh\tThing","attributes":["genre=New"],"features":{"thumb":[0.5,1.5]}}' \
    "$base/v1/items/fresh-item" >/dev/null || fail "PUT"
curl -sf -X POST -d "[{\"user\":\"newbie\",\"item\":\"fresh-item\",\"time\":2000000000},
    {\"user\":\"newbie\",\"item\":\"$known_item\",\"time\":2000000001},
    {\"user\":\"$known_user\",\"item\":\"fresh-item\",\"time\":1999999999}]" "$base/v1/events" >/dev/null ||
    fail "POST events"
kill -TERM "$pid"
wait "$pid" || fail "the server did not stop cleanly"
pid=""

# without --model: the folder's model_path when the server wrote it, else a clear error
if ! $DYNREC export --data-dir "$tmp/state" --out "$tmp/x0" 2>"$tmp/x0.err"; then
    grep -q -- "--model" "$tmp/x0.err" || fail "export without a base does not ask for --model: $(cat "$tmp/x0.err")"
fi
$DYNREC export --data-dir "$tmp/state" --out "$tmp/x" --model "$tmp/m.drm" --data "$tmp/d" 2>"$tmp/x.err" ||
    fail "export: $(cat "$tmp/x.err")"
grep -q "^export: .* 4 log records" "$tmp/x.err" || fail "summary line: $(cat "$tmp/x.err")"
grep -qx "log_covers	0-4" "$tmp/x/manifest.tsv" || fail "manifest log_covers: $(cat "$tmp/x/manifest.tsv")"
grep -qx "log_records	4" "$tmp/x/manifest.tsv" || fail "manifest log_records"
grep -q "^fresh-item	Fresh\\\\tThing	genre=New$" "$tmp/x/items.tsv" || fail "items.tsv: $(grep fresh "$tmp/x/items.tsv")"
[ -f "$tmp/x/features/thumb.npy" ] && [ -f "$tmp/x/features/thumb.present.npy" ] || fail "features"
[ -f "$tmp/x/features/visual.npy" ] || fail "--data did not carry the visual features"
# the clamped time: the third event is older than the second and exported at its time
tail -n 1 "$tmp/x/interactions.tsv" | grep -q "	2000000001	" || fail "clamped time: $(tail -n 1 "$tmp/x/interactions.tsv")"
n=$(($(wc -l <"$tmp/d/interactions.tsv") + 3))
[ "$(wc -l <"$tmp/x/interactions.tsv")" -eq "$n" ] || fail "interactions: $(wc -l <"$tmp/x/interactions.tsv") lines, want $n"

$DYNREC train --data "$tmp/x" --model mf --epochs 2 --out "$tmp/m2.drm" >/dev/null 2>"$tmp/t.err" || fail "train on the export: $(cat "$tmp/t.err")"
$DYNREC recommend --model "$tmp/m2.drm" --user newbie -k 3 >"$tmp/rec.txt" 2>&1 || fail "the new checkpoint does not know user newbie: $(cat "$tmp/rec.txt")"
strings "$tmp/m2.drm" | grep -q "^log_covers=0-4$" || fail "checkpoint metadata log_covers"
strings "$tmp/m2.drm" | grep -q "fresh-item" || fail "the new checkpoint does not know fresh-item"

# compaction: no base record -> nothing, exit 0; events.db untouched
$DYNREC compact --data-dir "$tmp/state" 2>"$tmp/c.err" || fail "compact without a base: $(cat "$tmp/c.err")"
grep -q "nothing to compact: the log has no base record" "$tmp/c.err" || fail "compact message: $(cat "$tmp/c.err")"

# bad input: clear errors, no crash
$DYNREC export --data-dir "$tmp/nowhere" --out "$tmp/y" --model "$tmp/m.drm" 2>"$tmp/e1" && fail "missing folder accepted"
grep -q "nowhere: no such state folder" "$tmp/e1" || fail "missing folder message: $(cat "$tmp/e1")"
$DYNREC compact --data-dir "$tmp/nowhere" 2>"$tmp/e2" && fail "compact of a missing folder"
grep -q "no such state folder" "$tmp/e2" || fail "compact missing folder message: $(cat "$tmp/e2")"
$DYNREC export --data-dir "$tmp/state" 2>"$tmp/e3"
[ $? -eq 2 ] || fail "export without --out: not a usage error"
$DYNREC compact --data-dir "$tmp/state" --bogus 2>/dev/null
[ $? -eq 2 ] || fail "compact --bogus: not a usage error"
$DYNREC export --data-dir "$tmp/state" --out "$tmp/z" --model "$tmp/none.drm" 2>"$tmp/e4" && fail "missing model accepted"
grep -q "none.drm" "$tmp/e4" || fail "missing model message: $(cat "$tmp/e4")"
echo "export: ok"
