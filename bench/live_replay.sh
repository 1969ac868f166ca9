#!/bin/sh
# live_replay.sh - P-LIVE (../shared/PROTOCOL.md): amazon-mtv's P-STREAM replay through a real
# `dynrec serve` over HTTP, each column a separate server started from the same checkpoint with
# an empty state folder, beside `dynrec eval --protocol stream` on that checkpoint.
#
#   bench/live_replay.sh                       # every column, the whole replay
#   LIMIT=5000 COLUMNS="frozen adapter" bench/live_replay.sh
#
# Steps: (1) the base: MODEL, or when absent trained on the pre-T0 interactions exactly as
# bench/stream_seeds.sh trains P-STREAM's SASRec (seed 1, TRAIN_FLAGS); (2) the reference:
# `dynrec eval --protocol stream --model MODEL --json`, and live_events (the same replay, with
# every event's scored/cold flags and its P-STREAM ranks; its means must equal eval's: checked);
# (3) per column: `dynrec serve --model MODEL --data-dir EMPTY --port 0` (`--adapter off` for
# `frozen`), then live_client: for each timestamp, GET the top-10 of every scored event's user,
# then POST the timestamp's events with their own time; server Hit@10 / NDCG@10 overall, per
# slice and on cold targets beside P-STREAM's on the same events, wall time, failed requests.
# The `swap` column (adapter + swap) also runs bench/live_swap.sh at each tenth of the replay
# (export, warm retrain with --init, POST /v1/admin/base); it runs only when `dynrec export`
# exists in this build.
# Environment: DATA (../shared/data/amazon-movies-tv-llmtup), MODEL
# (build/stream/amazon-movies-tv-llmtup_sasrec_s1.drm), TRAIN_FLAGS, LIMIT (first N replay
# events; 0 = all), COLUMNS ("frozen adapter swap"), THREADS (server threads, 2), OUT
# (build/live), BUILD (build/release), SWAP_TRAIN_FLAGS and SWAP_FROM (bench/live_swap.sh), SWAP_SERVE_FLAGS (extra `dynrec serve` flags
# of the swap column, e.g. --swap-rebuild-events 40000), SWAP_WAIT (1: at
# each tenth the replay waits for the previous swap to finish, so every tenth gets its swap even
# when a retrain outlasts a tenth of the replay; 0: such tenths are skipped), SERVE_FLAGS
# (extra `dynrec serve` flags of every column, e.g. --quality-rate 1).
# Each column's GET /v1/stats and /v1/stats/series at the end of its replay go to
# OUT/COLUMN.stats.json and OUT/COLUMN.series.json, and the server's live quality (Hit@10 of the
# sampled events under the base alone and under base + adapter, summed over the series) is
# printed beside the client's figures.
# Output: the tables, OUT/live.jsonl (one JSON line per column), OUT/COLUMN.per-event.tsv.
set -u
BUILD=${BUILD:-build/release}
BIN=$BUILD/dynrec
DATA=${DATA:-../shared/data/amazon-movies-tv-llmtup}
MODEL=${MODEL:-build/stream/amazon-movies-tv-llmtup_sasrec_s1.drm}
TRAIN_FLAGS=${TRAIN_FLAGS:---max-len 50 --dropout 0.5 --epochs 60 --threads 2}
LIMIT=${LIMIT:-0}
COLUMNS=${COLUMNS:-frozen adapter swap}
THREADS=${THREADS:-2}
OUT=${OUT:-build/live}
[ -e "$DATA" ] || { echo "# skipped: $DATA not present (P-LIVE reads it from ../shared/data)"; exit 0; }
command -v jq >/dev/null || { echo "live_replay: needs jq (apt-get install jq)" >&2; exit 1; }
make --no-print-directory "$BIN" "$BUILD/live_client" "$BUILD/live_events" >/dev/null || exit 1
mkdir -p "$OUT" "$(dirname "$MODEL")"
rm -f "$OUT/live.jsonl"

echo "# P-LIVE  machine: $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), data $DATA, model $MODEL, LIMIT=$LIMIT"
if [ ! -f "$MODEL" ]; then
    echo "# training the base: dynrec train --protocol stream --model sasrec --seed 1 $TRAIN_FLAGS"
    # shellcheck disable=SC2086
    "$BIN" train --protocol stream --model sasrec --data "$DATA" --seed 1 --out "$MODEL" $TRAIN_FLAGS \
        2>"$MODEL.train.log" || { echo "live_replay: training failed ($MODEL.train.log)" >&2; exit 1; }
fi

# the reference: P-STREAM on the same checkpoint, and the replay's events with its answers
t=$(date +%s)
"$BIN" eval --protocol stream --model "$MODEL" --data "$DATA" --json >"$OUT/p_stream.json" 2>/dev/null ||
    { echo "live_replay: dynrec eval --protocol stream failed" >&2; exit 1; }
echo "# dynrec eval --protocol stream: $(($(date +%s) - t)) s"
"$BUILD/live_events" "$DATA" "$MODEL" "$OUT/events.tsv" >"$OUT/live_events.json" || exit 1
same=$(jq -s -r '[.[] | [.n_scored, .stream.frozen, .stream.adapter]] | if .[0] == .[1] then "yes" else "NO" end' \
    "$OUT/p_stream.json" "$OUT/live_events.json")
echo "# P-STREAM (dynrec eval) and live_events agree: $same"
[ "$same" = yes ] || { echo "live_replay: live_events does not reproduce dynrec eval" >&2; exit 1; }
jq -r '"# P-STREAM whole replay: \(.n_events) events, \(.n_scored) scored;"
  + " frozen Hit@10 \(.stream.frozen["hit@10"]) NDCG@10 \(.stream.frozen["ndcg@10"]);"
  + " adapter Hit@10 \(.stream.adapter["hit@10"]) NDCG@10 \(.stream.adapter["ndcg@10"])"' "$OUT/p_stream.json"

server_pid=""
stop_server() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    server_pid=""
}
trap stop_server EXIT INT TERM

run_column() { # NAME [serve flags...]
    col=$1
    shift
    state="$OUT/state-$col"
    rm -rf "$state" "$OUT/$col.port"
    # shellcheck disable=SC2086
    "$BIN" serve --model "$MODEL" --data-dir "$state" --port 0 --port-file "$OUT/$col.port" \
        --threads "$THREADS" --quiet ${SERVE_FLAGS:-} "$@" >"$OUT/$col.serve.log" 2>&1 &
    server_pid=$!
    n=0
    while [ ! -s "$OUT/$col.port" ]; do
        kill -0 "$server_pid" 2>/dev/null || { echo "live_replay: the server exited ($OUT/$col.serve.log)" >&2; exit 1; }
        n=$((n + 1))
        [ $n -lt 600 ] || { echo "live_replay: the server did not start in 120 s" >&2; exit 1; }
        sleep 0.2
    done
    port=$(cat "$OUT/$col.port")
    set -- --port "$port" --events "$OUT/events.tsv" --limit "$LIMIT" --column "$col" \
        --json "$OUT/live.jsonl" --per-event "$OUT/$col.per-event.tsv"
    if [ "$col" = swap ]; then
        swapdir="$OUT/swap"
        rm -rf "$swapdir"
        mkdir -p "$swapdir"
        echo "$MODEL" >"$swapdir/live"
        echo "$MODEL" >"$swapdir/first"
        DYNREC=$BIN STATE=$state PORT=$port SWAPDIR=$swapdir "$BUILD/live_client" "$@" \
            --on-tenth "sh bench/live_swap.sh" --swap-wait "${SWAP_WAIT:-1}"
    else
        "$BUILD/live_client" "$@"
    fi
    rc=$?
    if command -v curl >/dev/null 2>&1; then # the server's own view of the replay
        sleep 1.2 # the last second folded
        curl -s "http://127.0.0.1:$port/v1/stats" >"$OUT/$col.stats.json"
        curl -s "http://127.0.0.1:$port/v1/stats/series" >"$OUT/$col.series.json"
        jq -r '(.quality_samples | add) as $n | (.hit_base | add) as $b | (.hit_adapter | add) as $a |
          if $n > 0 then "live quality (server, sampled events): \($n) events, Hit@10 base \($b / $n * 10000 | round / 10000), base + adapter \($a / $n * 10000 | round / 10000)"
          else "live quality (server): no sampled events" end' "$OUT/$col.series.json" 2>/dev/null
    fi
    stop_server
    [ $rc -eq 0 ] || echo "live_replay: column $col: live_client exit $rc (failed requests or I/O)" >&2
}

for col in $COLUMNS; do
    echo
    case $col in
    frozen) run_column frozen --adapter off ;;
    adapter) run_column adapter ;;
    swap)
        if "$BIN" export --help >/dev/null 2>&1; then
            # shellcheck disable=SC2086
            run_column swap ${SWAP_SERVE_FLAGS:-}
        else
            echo "swap column: skipped (dynrec export not available in this build)"
        fi
        ;;
    *) echo "live_replay: unknown column '$col' (frozen adapter swap)" >&2; exit 2 ;;
    esac
done

echo
echo "# P-LIVE summary (server over HTTP | P-STREAM on the same events)"
jq -r '"\(.column)\tevents \(.events) scored \(.scored)\tHit@10 \(.overall["hit@10"]) | \(.overall.p_stream["hit@10"])"
  + "\tNDCG@10 \(.overall["ndcg@10"]) | \(.overall.p_stream["ndcg@10"])"
  + "\tcold Hit@10 \(.cold["hit@10"]) | \(.cold.p_stream["hit@10"])"
  + "\thits only server/eval \(.overall.hit_only_server)/\(.overall.hit_only_p_stream)"
  + " (P-STREAM with the server'"'"'s time: \(.served_time.hit_only_server)/\(.served_time.hit_only_p_stream))"
  + "\t\(.seconds | floor) s, \(.requests) requests, \(.failed) failed"' "$OUT/live.jsonl"
