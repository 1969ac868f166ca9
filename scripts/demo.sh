#!/bin/sh
# demo.sh - the main job on the embedded default: `make demo` runs it after building.
# `dynrec demo` synthesises data, trains, evaluates, streams and explains; then this script
# serves the demo's SASRec checkpoint over HTTP on 127.0.0.1 and shows it learning from events.
set -eu
BIN=${1:-build/release/dynrec}
"$BIN" demo --out build/demo-data

echo "== serve: dynrec serve on 127.0.0.1 (ephemeral port), events in, recommendations out"
state=build/demo-state
rm -rf "$state" build/demo-port
"$BIN" serve --model build/demo-sasrec.drm --data-dir "$state" --port 0 \
    --port-file build/demo-port --threads 2 --quiet >build/demo-serve.log 2>&1 &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true' EXIT
i=0
while [ ! -s build/demo-port ]; do
    i=$((i + 1))
    if [ $i -gt 300 ] || ! kill -0 $pid 2>/dev/null; then
        echo "demo: the server did not start:" >&2
        cat build/demo-serve.log >&2
        exit 1
    fi
    sleep 0.1
done
base="http://127.0.0.1:$(cat build/demo-port)"
items() { # the item ids of a recommendations answer, in rank order
    tr '{' '\n' | sed -n 's/^"item":"\([^"]*\)".*/\1/p' | tr '\n' ' '
}
echo "   listening on $base (state folder $state)"
echo "   u1 before:               $(curl -s "$base/v1/users/u1/recommendations?k=5" | items)"
batch='{"events":['
for u in $(seq 2 21); do batch="$batch{\"user\":\"u$u\",\"item\":\"new-item-1\"},"; done
batch="${batch%,}]}"
echo "   POST /v1/events: 20 users take new-item-1, an item the base model has never seen"
curl -s -X POST -d "$batch" "$base/v1/events" >/dev/null
echo "   a brand-new user gets:   $(curl -s "$base/v1/users/newcomer/recommendations?k=5" | items)"
curl -s -X POST -d '{"user":"u1","item":"i1201"}' "$base/v1/events" >/dev/null
echo "   u1 after taking i1201:   $(curl -s "$base/v1/users/u1/recommendations?k=5" | items)"
echo "   $(curl -s "$base/metrics" | grep '^dynrec_events_total')"
kill -TERM $pid
wait $pid
trap - EXIT
echo "   SIGTERM: drained, snapshot written, exit 0"
