#!/bin/sh
# server_load.sh - `dynrec serve` under wrk on loopback: recommendations (top-k, 2 server
# threads) and durable event ingest, one event per request (1 and 16 clients) and batched.
# Usage: bench/server_load.sh [MODEL.drm] (default /tmp/amz_mf.drm, trained with
#   dynrec train --model mf --data ../shared/data/amazon-movies-tv-llmtup --out /tmp/amz_mf.drm
# when missing; the demo's: DATA=build/demo-data bench/server_load.sh build/demo-sasrec.drm).
# Env: LATENCY_TSV (write the recommendation latency distribution there), DURATION (10 s per run), RUNS (3; medians), CONN (16), STATE (state
# folder parent, default a fresh folder under /tmp: the ingest figures are the fsync speed of
# that disk), RECS_ONLY=1 (skip the ingest runs: for comparing builds, with DYNREC=binary). Prints `name value unit` lines, the machine, the commit and a hash of answers.
set -u
BIN=${DYNREC:-build/release/dynrec}
DATA=${DATA:-../shared/data/amazon-movies-tv-llmtup}
MODEL=${1:-/tmp/amz_mf.drm}
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
CONN=${CONN:-16}
if ! command -v wrk >/dev/null 2>&1; then
    echo "# installing wrk (Debian package)"
    if [ "$(id -u)" = 0 ]; then apt-get install -y -qq wrk >/dev/null; else sudo apt-get install -y -qq wrk >/dev/null; fi
fi
command -v wrk >/dev/null 2>&1 || { echo "# skipped: wrk not available"; exit 0; }
if [ ! -f "$MODEL" ]; then
    [ -e "$DATA" ] || { echo "# skipped: $MODEL and $DATA not present"; exit 0; }
    "$BIN" train --model mf --data "$DATA" --out "$MODEL" >/dev/null 2>&1 || { echo "train failed"; exit 1; }
fi
tmp=$(mktemp -d "${STATE:-/tmp}/dynrec-bench-XXXXXX")
pid=""
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$tmp"' EXIT
# ids the model knows, for the request generators: the Amazon CSV, or a dynrec dataset folder
# (the demo's build/demo-data: interactions.tsv, user and item in the first two columns)
if [ -e "$DATA/train.csv" ]; then
    tail -n +2 "$DATA/train.csv" | cut -d, -f1 | sort -u >"$tmp/users"
    tail -n +2 "$DATA/train.csv" | cut -d, -f2 | sort -u >"$tmp/items"
elif [ -e "$DATA/interactions.tsv" ]; then
    tail -n +2 "$DATA/interactions.tsv" | cut -f1 | sort -u >"$tmp/users"
    tail -n +2 "$DATA/interactions.tsv" | cut -f2 | sort -u >"$tmp/items"
else
    echo "# skipped: no id list (needs $DATA/train.csv or $DATA/interactions.tsv)"
    exit 0
fi
export USERS_FILE="$tmp/users" ITEMS_FILE="$tmp/items"

start() { # threads [extra options]
    th=$1
    shift
    rm -rf "$tmp/state" "$tmp/port"
    "$BIN" serve --model "$MODEL" --data-dir "$tmp/state" --port 0 --port-file "$tmp/port" \
        --threads "$th" --quiet "$@" >/dev/null 2>&1 &
    pid=$!
    while [ ! -s "$tmp/port" ]; do sleep 0.1; done
    base="http://127.0.0.1:$(cat "$tmp/port")"
}
stop() {
    kill -TERM "$pid"
    wait "$pid"
    pid=""
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# wrk's latency lines are "50%  1.23ms"; to milliseconds
to_ms() { awk '{v=$2; u=v; sub(/[0-9.]+/,"",u); sub(/[a-z]+$/,"",v); if (u=="us") v/=1000; if (u=="s") v*=1000; print v}'; }
wrk_runs() { # name script [wrk args]: medians over RUNS of requests/s, p50, p99
    name=$1
    script=$2
    shift 2
    : >"$tmp/rps"
    : >"$tmp/p50"
    : >"$tmp/p99"
    for r in $(seq "$RUNS"); do
        PCT_FILE="$tmp/pct.$r" wrk -t"$([ "$CONN" -lt 2 ] && echo 1 || echo 2)" -c"$CONN" -d"${DURATION}s" --latency -s "$script" "$@" "$base" >"$tmp/wrk.txt" 2>&1
        grep '^Requests/sec' "$tmp/wrk.txt" | awk '{print $2}' >>"$tmp/rps"
        grep -E '^ +50%' "$tmp/wrk.txt" | to_ms >>"$tmp/p50"
        grep -E '^ +99%' "$tmp/wrk.txt" | to_ms >>"$tmp/p99"
        if grep -q 'Non-2xx' "$tmp/wrk.txt"; then echo "# $name: $(grep 'Non-2xx' "$tmp/wrk.txt")"; fi
    done
    rps=$(median <"$tmp/rps")
    echo "${name}_requests_per_s $rps req/s (median of $RUNS x ${DURATION} s, $CONN connections)"
    echo "${name}_p50 $(median <"$tmp/p50") ms"
    echo "${name}_p99 $(median <"$tmp/p99") ms"
}
# LATENCY_TSV=FILE: the recommendation runs' latency distribution, per percentile the median
# over the runs (wrk_recs.lua PCT_FILE), with the machine and the command as comments: the input
# of bench/plots.sh's latency chart
latency_tsv() { # title
    [ -n "${LATENCY_TSV:-}" ] || return 0
    ls "$tmp"/pct.* >/dev/null 2>&1 || { echo "# no latency percentiles from wrk (PCT_FILE)"; return 0; }
    {
        echo "# title: $1"
        echo "# $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), model $(basename "$MODEL"), wrk -c$CONN -d${DURATION}s, median of $RUNS runs per percentile"
        echo "# percentile	latency_ms"
        cat "$tmp"/pct.* | awk -F'\t' '{v[$1] = v[$1] " " $2; if (!($1 in seen)) {seen[$1] = 1; order[++n] = $1}}
            END {for (i = 1; i <= n; i++) {m = split(v[order[i]], a, " "); for (j = 2; j <= m; j++)
                 for (k = j; k > 1 && a[k] + 0 < a[k - 1] + 0; k--) {t = a[k]; a[k] = a[k - 1]; a[k - 1] = t}
                 printf "%s\t%s\n", order[i], a[int((m + 1) / 2)]}}'
    } >"$LATENCY_TSV"
    echo "# latency distribution written to $LATENCY_TSV"
}

echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), model $MODEL, wrk -t2 -c$CONN --latency"

start 2
# answers hash: the same build and model must give the same bytes
for u in $(head -n 20 "$tmp/users"); do curl -s "$base/v1/users/$u/recommendations?k=10"; done | sha256sum | cut -c1-16 | sed 's/^/# answers hash (20 users, k=10) /'
cpu0=$(awk '{print $14 + $15}' /proc/$pid/stat)
K=10 wrk_runs recs_k10_2threads bench/wrk_recs.lua
cpu1=$(awk '{print $14 + $15}' /proc/$pid/stat)
latency_tsv "$(basename "$MODEL" .drm), k=10, 2 server threads, $CONN connections"
# CPU the server process used per answered request (user + system, network stack included):
# what the answers cost, whatever else shares the cores
served=$(curl -s "$base/metrics" | sed -n 's/^dynrec_http_requests_total{route="recommendations",code="200"} //p')
echo "recs_k10_server_cpu_per_request $(echo "scale=1; ($cpu1 - $cpu0) * 1000000 / $(getconf CLK_TCK) / $served" | bc) us ($served requests)"
# time inside the server per request (routing, base latent, adapter, exact top-k, JSON): the
# CPU cost of an answer, without the client and the network stack
curl -s "$base/metrics" | awk '/^dynrec_http_request_duration_seconds_sum\{route="recommendations"\}/ {s=$2}
  /^dynrec_http_request_duration_seconds_count\{route="recommendations"\}/ {n=$2}
  END {printf "recs_k10_server_time_mean %.1f us (inside the handler, all runs)\n", 1e6 * s / n}'
stop

[ "${RECS_ONLY:-0}" = 1 ] && exit 0

# durable ingest (every commit fsynced), 16 server threads (a waiting request holds one);
# one event per request from 1 and from 16 connections, and 100 events per request;
# each case starts from an empty log
for c in "1 1" "1 16" "100 16"; do
    set -- $c
    b=$1
    CONN=$2
    name="ingest_batch${b}_c${CONN}"
    start 16 --max-new-users 0 --max-new-items 0 --snapshot-every 100000
    BATCH=$b wrk_runs "$name" bench/wrk_events.lua >"$tmp/ing.txt"
    rps=$(sed -n "s/^${name}_requests_per_s \([0-9.]*\).*/\1/p" "$tmp/ing.txt")
    echo "${name}_events_per_s $(echo "$rps * $b" | bc) events/s (durable, median of $RUNS x ${DURATION} s)"
    grep -E "^${name}_p(50|99) " "$tmp/ing.txt"
    commits=$(curl -s "$base/metrics" | sed -n 's/^dynrec_log_commits_total //p')
    events=$(curl -s "$base/metrics" | sed -n 's/^dynrec_events_total //p')
    echo "${name}_events_per_commit $(echo "scale=1; $events / $commits" | bc) events/fsync ($events events, $commits commits)"
    stop
done
