#!/bin/sh
# demo.sh - the main job on the embedded default: `make demo` runs it after building.
# `dynrec demo` synthesises data, trains, evaluates, fuses features and streams; then this script
# explains a recommendation (template, and llama.cpp when a GGUF is at hand) and serves the
# demo's SASRec checkpoint over HTTP on 127.0.0.1, showing it learn from events.
set -eu
BIN=${1:-build/release/dynrec}
"$BIN" demo --out build/demo-data

echo "== explain: why u1 gets its top item (evidence from the data; every claim verified)"
top=$("$BIN" recommend --model build/demo-sasrec.drm --user u1 -k 1 --json | sed -n 's/.*"items":\[{"item":"\([^"]*\)".*/\1/p')
"$BIN" explain --model build/demo-sasrec.drm --user u1 --item "$top" | sed 's/^/   /'
LLM=${DYNREC_LLM:-../shared/models/stories260K.gguf}
if [ -f "$LLM" ]; then
    echo "   the same through llama.cpp ($LLM), constrained by a grammar to cite the evidence:"
    "$BIN" explain --model build/demo-sasrec.drm --user u1 --item "$top" --llm "$LLM" | sed -n '2p' | sed 's/^/   /'
else
    echo "   (no GGUF model at $LLM: set DYNREC_LLM=model.gguf to explain through llama.cpp too)"
fi

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
echo "   explanation over HTTP: $(curl -s "$base/v1/users/u1/items/$top/explanation" | sed -n 's/.*"text":"\(.*\)","verified".*/\1/p' | sed 's/\\"/"/g' | cut -c1-100)..."
echo "   $(curl -s "$base/metrics" | grep '^dynrec_events_total')"
kill -TERM $pid
wait $pid
trap - EXIT
echo "   SIGTERM: drained, snapshot written, exit 0"
