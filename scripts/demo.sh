#!/bin/sh
# demo.sh - the main job on the embedded default: `make demo` runs it after building.
# `dynrec demo` synthesises data, trains, evaluates, fuses features and streams; then this script
# explains a recommendation (template, and llama.cpp when a GGUF is at hand) and serves the
# demo's SASRec checkpoint over HTTP on 127.0.0.1, showing it learn from events; then serves the
# fused SASRec checkpoint and PUTs a new item with features only, which fusion makes recommendable.
set -eu
BIN=${1:-build/release/dynrec}
"$BIN" demo --out build/demo-data

echo "== explain: why u1 gets its top item (evidence from the data; every claim verified)"
top=$("$BIN" recommend --model build/demo-sasrec.drm --user u1 -k 1 --json | sed -n 's/.*"items":\[{"item":"\([^"]*\)".*/\1/p')
"$BIN" explain --model build/demo-sasrec.drm --user u1 --item "$top" | sed 's/^/   /'
LLM=${DYNREC_LLM:-../shared/models/stories260K.gguf}
if [ -f "$LLM" ]; then
    echo "   the same through llama.cpp ($LLM), constrained by a grammar to cite the evidence:"
    "$BIN" explain --model build/demo-sasrec.drm --user u1 --item "$top" --llm "$LLM" --max-tokens 40 | sed -n '2p' | sed 's/^/   /'
else
    echo "   (no GGUF model at $LLM: set DYNREC_LLM=model.gguf to explain through llama.cpp too)"
fi

if [ -f "$LLM" ]; then
    echo "== the LLM ranks too: the base's latents aligned into $LLM's input space as soft tokens"
    echo "   ($LLM is a toy: these figures test the mechanism, not an LLM's quality)"
    "$BIN" align --model build/demo-sasrec.drm --llm "$LLM" --out build/demo-sasrec.align \
        --data build/demo-data --lambda-users 200 2>&1 | grep -E '^  Recall@10|chosen lambda' | sed 's/^ */   /'
    echo "   u1's top 5 after the LLM reranked the base's top 20:"
    "$BIN" recommend --model build/demo-sasrec.drm --user u1 -k 5 --rerank llm --llm "$LLM" \
        --align build/demo-sasrec.align 2>/dev/null | sed 's/^/   /'
fi

echo "== tune: models and settings searched on validation targets (6 trials), baselines beside"
"$BIN" tune --data build/demo-data --trials 6 --max-len 50 --out build/demo-tuned.drm 2>/dev/null | sed 's/^/   /'

echo "== serve: dynrec serve on 127.0.0.1 (ephemeral port), events in, recommendations out"
serve() { # checkpoint state-folder: starts the server, sets pid and base
    rm -rf "$2" build/demo-port
    # --quality-rate 1: the demo's few events all count in the dashboard's live quality
    # shellcheck disable=SC2086
    "$BIN" serve --model "$1" --data-dir "$2" --port 0 --quality-rate 1 \
        --port-file build/demo-port --threads 2 --quiet ${SERVE_FLAGS:-} >build/demo-serve.log 2>&1 &
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
}
state=build/demo-state
serve build/demo-sasrec.drm "$state"
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
echo "   dashboard: $base/ui/ ($(curl -s -o /dev/null -w '%{http_code}, %{size_download} bytes' "$base/ui/"); embedded, works offline)"
sleep 1 # one folded second
echo "   GET /v1/stats/series (the last hour at 1 s): $(curl -s "$base/v1/stats/series" | sed -n 's/.*"n":\([0-9]*\),.*"events":\[\([^]]*\)\].*/\1 rows, events per second: \2/p' | cut -c1-90)"
echo "   live quality (Hit@10 of sampled incoming events): $(curl -s "$base/v1/stats" | sed -n 's/.*"quality":\({[^}]*}\).*/\1/p')"
kill -TERM $pid
wait $pid
trap - EXIT
echo "   SIGTERM: drained, snapshot written, exit 0"

echo "== two-stage retrieval: an HNSW index over the base's item latents, candidates rescored exactly"
"$BIN" index --model build/demo-sasrec.drm >build/demo-index.log 2>&1 || { cat build/demo-index.log >&2; exit 1; }
echo "   dynrec index: $(tail -n 1 build/demo-index.log | cut -c1-110)"
top10() { # the top 10 of a few users from a server started with SERVE_FLAGS
    serve build/demo-sasrec.drm build/demo-state-ann
    for u in u1 u2 u3 u4 u5; do curl -s "$base/v1/users/$u/recommendations?k=10" | items; done
    kill -TERM $pid
    wait $pid
    trap - EXIT
}
ann=$(SERVE_FLAGS="--ann on --ann-candidates 100" top10)
exact=$(SERVE_FLAGS="--ann off" top10)
[ "$ann" = "$exact" ] && same="the same" || same="NOT the same"
echo "   top 10 of u1-u5, index (100 candidates + the window's hot and cold items) vs exact scan: $same"
echo "   (the server uses an index by itself above 50,000 items: docs/BENCH.md, two-stage retrieval)"

echo "== serve the fused SASRec checkpoint: a new item known only by its features"
# row r of features/NAME.npy (float32, rows in items.tsv order) as JSON numbers; empty when the
# item lacks the modality
npy_row() { # file row
    hl=$(od -A n -t u2 -j 8 -N 2 "$1" | tr -d ' ')
    dim=$(head -c $((10 + hl)) "$1" | LC_ALL=C sed -n "s/.*'shape': ([0-9]*, *\([0-9]*\)).*/\1/p")
    pres="${1%.npy}.present.npy"
    if [ -f "$pres" ]; then
        phl=$(od -A n -t u2 -j 8 -N 2 "$pres" | tr -d ' ')
        [ "$(od -A n -t u1 -j $((10 + phl + $2)) -N 1 "$pres" | tr -d ' ')" = 1 ] || return 0
    fi
    od -A n -v -t f4 -j $((10 + hl + $2 * dim * 4)) -N $((dim * 4)) "$1" |
        tr -s ' \n' ',,' | sed 's/^,//; s/,$//'
}
serve build/demo-sasrec-fused.drm build/demo-state-fused
like=$(curl -s "$base/v1/users/u1/recommendations?k=1" | items | tr -d ' ')
row=$(($(cut -f1 build/demo-data/items.tsv | grep -n -x "$like" | cut -d: -f1) - 2))
feats=""
for m in visual audio text; do
    v=$(npy_row build/demo-data/features/$m.npy "$row")
    [ -n "$v" ] && feats="$feats\"$m\":[$v],"
done
echo "   u1's top item is $like; PUT /v1/items/look-alike with $like's image, audio and text features"
echo "   and no interaction at all:"
echo "   $(curl -s -X PUT -d "{\"title\":\"Look-alike of $like\",\"features\":{${feats%,}}}" "$base/v1/items/look-alike")"
curl -s -X PUT -d '{"title":"Unknown newcomer"}' "$base/v1/items/no-features" >/dev/null
rank() { # item: its rank in u1's top 1000
    curl -s "$base/v1/users/u1/recommendations?k=1000" | items | tr ' ' '\n' | grep -n -x "$1" | cut -d: -f1
}
n_items=$(($(wc -l <build/demo-data/items.tsv) + 1))
echo "   u1 now ranks look-alike #$(rank look-alike) of $n_items items; a new item PUT without features: #$(rank no-features)"
echo "   u1's top 5:              $(curl -s "$base/v1/users/u1/recommendations?k=5" | items)"
kill -TERM $pid
wait $pid
trap - EXIT

echo "== a fleet: redis-server and two replicas of the SASRec checkpoint on one Redis stream"
if command -v redis-server >/dev/null 2>&1; then
    rdir=$(pwd)/build/demo-redis
    rm -rf "$rdir" build/demo-state-a build/demo-state-b
    mkdir -p "$rdir"
    redis-server --port 0 --unixsocket "$rdir/redis.sock" --appendonly yes --appendfsync always \
        --save '' --dir "$rdir" --daemonize no >"$rdir/redis.log" 2>&1 &
    rpid=$!
    trap 'kill -9 $rpid $apid $bpid 2>/dev/null || true' EXIT
    i=0
    while [ ! -S "$rdir/redis.sock" ] && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
    replica() { # name: starts a replica, sets ${name}pid and ${name}base
        rm -f build/demo-port-$1
        "$BIN" serve --model build/demo-sasrec.drm --data-dir build/demo-state-$1 --port 0 \
            --port-file build/demo-port-$1 --threads 2 --quiet \
            --log "redis+unix://$rdir/redis.sock?stream=demo" >build/demo-serve-$1.log 2>&1 &
        eval "${1}pid=$!"
        i=0
        while [ ! -s build/demo-port-$1 ] && [ $i -lt 300 ]; do i=$((i + 1)); sleep 0.1; done
        eval "${1}base=http://127.0.0.1:$(cat build/demo-port-$1)"
    }
    replica a
    replica b
    echo "   replica A on $abase, replica B on $bbase, log redis+unix://$rdir/redis.sock?stream=demo"
    ack=$(curl -s -X POST -d '{"user":"u1","item":"fleet-item","event_id":"demo-1"}' "$abase/v1/events")
    echo "   POST to A: $ack"
    sid=$(echo "$ack" | sed -n 's/.*"stream_id":"\([^"]*\)".*/\1/p')
    echo "   the same event_id again to B (a retry): $(curl -s -X POST -d '{"user":"u1","item":"fleet-item","event_id":"demo-1"}' "$bbase/v1/events")"
    echo "   B, GET /v1/users/u1/recommendations?after=$sid: $(curl -s "$bbase/v1/users/u1/recommendations?k=3&after=$sid" | items)"
    echo "   B knows the item A took: $(curl -s "$bbase/v1/items/fleet-item" | cut -c1-60)"
    sa=$(curl -s "$abase/v1/state")
    sb=$(curl -s "$bbase/v1/state")
    echo "   A /v1/state: $sa"
    echo "   B /v1/state: $sb"
    [ "$sa" = "$sb" ] && echo "   the two replicas are identical" || echo "   the replicas differ"
    echo "== a live base swap on the fleet: A gets POST /v1/admin/base with the fused SASRec checkpoint"
    for k in $(seq 1 40); do
        curl -s -X POST -d "{\"user\":\"u$k\",\"item\":\"$(sed -n "$((k + 2))p" build/demo-data/items.tsv | cut -f1)\"}" "$abase/v1/events" >/dev/null
    done
    echo "   $(curl -s -X POST -d "{\"path\":\"$(pwd)/build/demo-sasrec-fused.drm\",\"force\":true}" "$abase/v1/admin/base")"
    i=0
    while ! curl -s "$bbase/healthz" | grep -q '"generation":2' && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
    echo "   B followed the swap in the log: $(curl -s "$bbase/healthz")"
    sid=$(curl -s -X POST -d '{"user":"u1","item":"fleet-item"}' "$bbase/v1/events" | sed -n 's/.*"stream_id":"\([^"]*\)".*/\1/p')
    curl -s "$abase/v1/users/u1/recommendations?k=1&after=$sid" >/dev/null
    sa=$(curl -s "$abase/v1/state")
    sb=$(curl -s "$bbase/v1/state")
    echo "   A /v1/state: $sa"
    echo "   B /v1/state: $sb"
    [ "$sa" = "$sb" ] && echo "   both on the new base, identical" || echo "   the replicas differ"
    kill -TERM $apid $bpid
    wait $apid $bpid
    kill -TERM $rpid
    wait $rpid
    trap - EXIT
else
    echo "   (redis-server is not installed: scripts/deps.sh installs it)"
fi
