#!/bin/sh
# fleet_load.sh - `dynrec serve` on a Redis stream (redis-server on a unix socket, AOF with
# appendfsync always) against the SQLite log, on loopback:
#   1. ingest events/s through Redis (one replica) and through SQLite, alternated in the same
#      run, each run on an empty log: 1 client single events, 16 clients single events,
#      16 clients batches of 100 (wrk + bench/wrk_events.lua); medians of RUNS;
#   2. apply rate: N events (APPLY_N, 200000) posted through replica A in batches of 1000, then
#      a fresh replica on an empty folder replays the stream: records/s from its start (and
#      from its first /metrics answer) until dynrec_log_records reaches the stream's length;
#   3. apply lag at about half capacity (capacity: the lower of the apply rate and the Redis
#      ingest rate of batches of 100): a paced curl loop posts batches to replica A, 20 posts/s,
#      and after each answer asks replica B for ?after=STREAM_ID&wait_ms=1000: the time of that
#      read is the visible lag (B's apply delay plus one loopback GET; the GET without after=
#      is printed as the baseline); B's dynrec_apply_lag_records is sampled every 50 ms;
#   4. GET recommendations from 1 replica and from 3 (wrk, the same total connections, CONN
#      12), and the server CPU per answer (utime + stime from /proc/PID/stat over answers).
# Usage: bench/fleet_load.sh [MODEL.drm] (default: BPR-MF trained here on dynrec data synth
#   --seed 3 --users 5000 --items 3000 --events 200000, 10 epochs; with a MODEL, DATA names the
#   dataset folder whose interactions.tsv or train.csv lists the ids).
# Env: DURATION (8 s per wrk run), RUNS (3), CONN (12), APPLY_N (200000), LAG_POSTS (300 per
#   run), PARTS ("ingest apply lag recs"). Prints `name value unit` lines.
set -u
BIN=${DYNREC:-build/release/dynrec}
DURATION=${DURATION:-8}
RUNS=${RUNS:-3}
CONN=${CONN:-12}
APPLY_N=${APPLY_N:-200000}
LAG_POSTS=${LAG_POSTS:-300}
PARTS=${PARTS:-ingest apply lag recs}
for t in redis-server redis-cli curl; do
    command -v $t >/dev/null 2>&1 || { echo "# skipped: $t is not installed"; exit 0; }
done
if ! command -v wrk >/dev/null 2>&1; then
    echo "# installing wrk (Debian package)"
    if [ "$(id -u)" = 0 ]; then apt-get install -y -qq wrk >/dev/null; else sudo apt-get install -y -qq wrk >/dev/null; fi
fi
command -v wrk >/dev/null 2>&1 || { echo "# skipped: wrk not available"; exit 0; }
tmp=$(mktemp -d)
spids="" rpid="" bg=""
cleanup() {
    for p in $bg $spids; do kill -9 "$p" 2>/dev/null; done
    [ -n "$rpid" ] && kill -9 "$rpid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
MODEL=${1:-}
if [ -z "$MODEL" ]; then
    DATA="$tmp/d"
    "$BIN" data synth --seed 3 --users 5000 --items 3000 --events 200000 --out "$DATA" >/dev/null 2>&1
    "$BIN" train --model mf --data "$DATA" --out "$tmp/m.drm" --epochs 10 >/dev/null 2>&1 || { echo "train failed"; exit 1; }
    MODEL="$tmp/m.drm"
fi
if [ -e "$DATA/interactions.tsv" ]; then
    tail -n +2 "$DATA/interactions.tsv" | cut -f1 | sort -u >"$tmp/users"
    tail -n +2 "$DATA/interactions.tsv" | cut -f2 | sort -u >"$tmp/items"
else
    tail -n +2 "$DATA/train.csv" | cut -d, -f1 | sort -u >"$tmp/users"
    tail -n +2 "$DATA/train.csv" | cut -d, -f2 | sort -u >"$tmp/items"
fi
export USERS_FILE="$tmp/users" ITEMS_FILE="$tmp/items"
SOCK="$tmp/redis.sock"
rc() { redis-cli -s "$SOCK" "$@"; }
now() { date +%s.%N | cut -c1-14; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
pct() { sort -n | awk -v q="$1" '{a[NR]=$1} END {i = int(q * NR + 0.999999); if (i < 1) i = 1; print a[i]}'; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # clock ticks
TCK=$(getconf CLK_TCK)

redis_up() { # a fresh redis-server with an empty folder
    redis_down
    rm -rf "$tmp/redis"
    mkdir -p "$tmp/redis"
    redis-server --port 0 --unixsocket "$SOCK" --appendonly yes --appendfsync always \
        --save '' --dir "$tmp/redis" --daemonize no >>"$tmp/redis.log" 2>&1 &
    rpid=$!
    i=0
    until [ "$(rc ping 2>/dev/null)" = PONG ]; do
        i=$((i + 1)); [ $i -gt 300 ] && { echo "redis-server did not start"; exit 1; }
        sleep 0.05
    done
}
redis_down() { [ -n "$rpid" ] && { kill -9 "$rpid"; wait "$rpid"; } 2>/dev/null; rpid=""; }
start() { # name log threads [options]: a server on an empty folder; sets pid_NAME, base_NAME
    n=$1 slog=$2 th=$3
    shift 3
    rm -rf "$tmp/s_$n" "$tmp/port_$n"
    "$BIN" serve --model "$MODEL" --data-dir "$tmp/s_$n" --log "$slog" --port 0 --port-file "$tmp/port_$n" \
        --threads "$th" --quiet "$@" >/dev/null 2>>"$tmp/err_$n.log" &
    eval "pid_$n=$!"
    spids="$spids $!"
    i=0
    while [ ! -s "$tmp/port_$n" ]; do
        i=$((i + 1)); [ $i -gt 1200 ] && { echo "server $n did not start: $(tail -3 "$tmp/err_$n.log")"; exit 1; }
        sleep 0.05
    done
    eval "base_$n=http://127.0.0.1:$(cat "$tmp/port_$n")"
}
stop() { # name
    eval "p=\$pid_$1"
    kill -TERM "$p" 2>/dev/null
    wait "$p" 2>/dev/null
}
metric() { curl -s -m 5 "$1/metrics" | sed -n "s/^$2 //p"; } # base name
REDIS_LOG="redis+unix://$SOCK?stream=s"

echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), model $MODEL, $(redis-server --version | cut -d' ' -f1-3) (AOF, appendfsync always), SQLite synchronous=FULL"

ingest_rate=""
case " $PARTS " in *" ingest "*)
    # 1. ingest: the two logs alternated, an empty log each run
    for c in "1 1" "1 16" "100 16"; do
        set -- $c
        b=$1
        conn=$2
        for log in redis sqlite; do : >"$tmp/rps_$log"; : >"$tmp/p99_$log"; : >"$tmp/scpu_$log"; : >"$tmp/rcpu_$log"; done
        for r in $(seq "$RUNS"); do
            for log in redis sqlite; do
                if [ $log = redis ]; then redis_up; L=$REDIS_LOG; else redis_down; L=sqlite; fi
                start ing "$L" 16 --max-new-users 0 --max-new-items 0 --snapshot-every 100000
                c0=$(cpu "$pid_ing"); r0=0; [ -n "$rpid" ] && r0=$(cpu "$rpid")
                BATCH=$b wrk -t"$([ "$conn" -lt 2 ] && echo 1 || echo 2)" -c"$conn" -d"${DURATION}s" --latency \
                    -s bench/wrk_events.lua "$base_ing" >"$tmp/wrk.txt" 2>&1
                c1=$(cpu "$pid_ing"); r1=0; [ -n "$rpid" ] && r1=$(cpu "$rpid")
                rps=$(sed -n 's/^Requests\/sec: *//p' "$tmp/wrk.txt")
                echo "$rps * $b" | bc >>"$tmp/rps_$log"
                # CPU per event of the server and of redis-server (clock ticks -> us)
                ev=$(echo "$rps * $b * $DURATION" | bc)
                echo "scale=1; ($c1 - $c0) * 1000000 / $(getconf CLK_TCK) / $ev" | bc >>"$tmp/scpu_$log"
                echo "scale=1; ($r1 - $r0) * 1000000 / $(getconf CLK_TCK) / $ev" | bc >>"$tmp/rcpu_$log"
                grep -q 'Non-2xx' "$tmp/wrk.txt" && echo "# ingest $log batch $b c$conn: $(grep 'Non-2xx' "$tmp/wrk.txt")"
                stop ing
            done
        done
        for log in redis sqlite; do
            m=$(median <"$tmp/rps_$log")
            echo "ingest_${log}_batch${b}_c${conn}_events_per_s $m events/s (median of $RUNS x ${DURATION} s; runs: $(tr '\n' ' ' <"$tmp/rps_$log"))"
            echo "ingest_${log}_batch${b}_c${conn}_server_cpu_per_event $(median <"$tmp/scpu_$log") us (utime + stime of dynrec serve)"
            [ $log = redis ] && echo "ingest_${log}_batch${b}_c${conn}_redis_cpu_per_event $(median <"$tmp/rcpu_$log") us (utime + stime of redis-server)"
            eval "m_$log=$m"
        done
        echo "ingest_redis_over_sqlite_batch${b}_c${conn} $(echo "scale=2; $m_redis / $m_sqlite" | bc) ratio"
        [ "$b" = 100 ] && ingest_rate=$m_redis
    done
    redis_down
    ;;
esac

apply_rate=""
case " $PARTS " in *" apply "*)
    # 2. apply rate: APPLY_N events in the stream, a fresh replica replays them
    redis_up
    start A "$REDIS_LOG" 4 --max-new-users 0 --max-new-items 0 --snapshot-every 1000000
    nb=$((APPLY_N / 1000))
    awk -v nb=$nb -v d="$tmp" 'BEGIN { srand(11) } NR == FNR { u[n++] = $1; next } { it[m++] = $1 }
        END { for (b = 0; b < nb; b++) { f = sprintf("%s/ab%04d.json", d, b); s = "[";
            for (j = 0; j < 1000; j++) s = s (j ? "," : "") sprintf("{\"user\":\"%s\",\"item\":\"%s\"}", u[int(rand() * n)], it[int(rand() * m)]);
            print s "]" > f; close(f) } }' "$tmp/users" "$tmp/items"
    t0=$(now)
    for b in $(seq 0 $((nb - 1))); do
        curl -s -m 30 -o /dev/null -X POST --data-binary @"$(printf '%s/ab%04d.json' "$tmp" "$b")" "$base_A/v1/events"
    done
    t1=$(now)
    n=$(rc XLEN s)
    echo "apply_posted $n records ($nb requests of 1000 through replica A in $(echo "$t1 - $t0" | bc) s)"
    stop A
    : >"$tmp/ar"
    : >"$tmp/ar2"
    for r in $(seq "$RUNS"); do
        rm -rf "$tmp/s_B" "$tmp/port_B"
        ts=$(now)
        "$BIN" serve --model "$MODEL" --data-dir "$tmp/s_B" --log "$REDIS_LOG" --port 0 --port-file "$tmp/port_B" \
            --threads 2 --quiet --max-new-users 0 --max-new-items 0 --snapshot-every 1000000 >/dev/null 2>>"$tmp/err_B.log" &
        pid_B=$!
        spids="$spids $pid_B"
        i=0
        first="" firstn=0
        while [ $i -lt 2400 ]; do # every 50 ms, at most 120 s
            i=$((i + 1))
            if [ -s "$tmp/port_B" ]; then
                got=$(metric "http://127.0.0.1:$(cat "$tmp/port_B")" dynrec_log_records)
                if [ -n "$got" ]; then
                    [ -z "$first" ] && { first=$(now); firstn=$got; }
                    [ "$got" -ge "$n" ] && break
                fi
            fi
            sleep 0.05
        done
        te=$(now)
        echo "$n / ($te - $ts)" | bc >>"$tmp/ar"
        [ "$n" -gt "$firstn" ] && echo "($n - $firstn) / ($te - $first)" | bc >>"$tmp/ar2"
        echo "# apply run $r: ${got:-?} of $n records, $(echo "$te - $ts" | bc) s from start; first /metrics answer at $(echo "$first - $ts" | bc) s with $firstn records"
        kill -TERM "$pid_B"
        wait "$pid_B" 2>/dev/null
    done
    apply_rate=$(median <"$tmp/ar")
    echo "apply_replay_records_per_s $apply_rate records/s (fresh replica, from process start to the stream's length; median of $RUNS; runs: $(tr '\n' ' ' <"$tmp/ar"))"
    [ -s "$tmp/ar2" ] && echo "apply_replay_after_listen_records_per_s $(median <"$tmp/ar2") records/s (from its first /metrics answer; runs: $(tr '\n' ' ' <"$tmp/ar2"))"
    redis_down
    ;;
esac

case " $PARTS " in *" lag "*)
    # 3. visible apply lag while ingesting at about half capacity
    cap=${apply_rate:-20000}
    [ -n "$ingest_rate" ] && [ "$(echo "$ingest_rate < $cap" | bc)" = 1 ] && cap=$ingest_rate
    cap=${CAPACITY:-$cap}
    rate=$(echo "$cap / 2" | bc)
    batch=$(echo "$rate / 20" | bc)
    [ "$batch" -lt 1 ] && batch=1
    [ "$batch" -gt 10000 ] && batch=10000
    awk -v bs=$batch -v d="$tmp" 'BEGIN { srand(12) } NR == FNR { u[n++] = $1; next } { it[m++] = $1 }
        END { for (b = 0; b < 20; b++) { f = sprintf("%s/lb%02d.json", d, b); s = "[";
            for (j = 0; j < bs; j++) s = s (j ? "," : "") sprintf("{\"user\":\"%s\",\"item\":\"%s\"}", u[int(rand() * n)], it[int(rand() * m)]);
            print s "]" > f; close(f) } }' "$tmp/users" "$tmp/items"
    : >"$tmp/lag_all"
    : >"$tmp/p50s"
    : >"$tmp/p99s"
    : >"$tmp/base_all"
    : >"$tmp/gauge_all"
    : >"$tmp/rates"
    for r in $(seq "$RUNS"); do
        redis_up
        start A "$REDIS_LOG" 4 --max-new-users 0 --max-new-items 0 --snapshot-every 1000000
        start B "$REDIS_LOG" 4 --max-new-users 0 --max-new-items 0 --snapshot-every 1000000
        (   # B's lag gauge every 50 ms while the loop runs
            while [ ! -e "$tmp/lag_stop" ]; do metric "$base_B" dynrec_apply_lag_records >>"$tmp/gauge_all"; sleep 0.05; done
        ) &
        bg=$!
        : >"$tmp/lag_run"
        timeouts=0
        ts=$(now)
        for i in $(seq "$LAG_POSTS"); do
            f=$(printf '%s/lb%02d.json' "$tmp" $((i % 20)))
            id=$(curl -s -m 5 -X POST --data-binary @"$f" "$base_A/v1/events" | sed -n 's/.*"stream_id":"\([^"]*\)".*/\1/p')
            [ -n "$id" ] || continue
            set -- $(curl -s -m 5 -o /dev/null -w '%{http_code} %{time_total}' "$base_B/v1/users/u1/recommendations?k=10&after=$id&wait_ms=1000")
            [ "$1" = 200 ] || timeouts=$((timeouts + 1))
            echo "$2 * 1000" | bc >>"$tmp/lag_run"
            [ $((i % 10)) = 0 ] && curl -s -m 5 -o /dev/null -w '%{time_total}\n' "$base_B/v1/users/u1/recommendations?k=10" |
                awk '{print $1 * 1000}' >>"$tmp/base_all"
            # pace: post i at ts + i / 20 s
            sl=$(echo "$ts + $i / 20 - $(now)" | bc -l)
            [ "$(echo "$sl > 0" | bc)" = 1 ] && sleep "$sl"
        done
        te=$(now)
        touch "$tmp/lag_stop"
        wait "$bg"
        bg=""
        rm -f "$tmp/lag_stop"
        nrec=$(rc XLEN s)
        echo "$nrec / ($te - $ts)" | bc >>"$tmp/rates"
        pct 0.5 <"$tmp/lag_run" >>"$tmp/p50s"
        pct 0.99 <"$tmp/lag_run" >>"$tmp/p99s"
        cat "$tmp/lag_run" >>"$tmp/lag_all"
        echo "# lag run $r: $(wc -l <"$tmp/lag_run") posts of $batch events, $(tail -n 1 "$tmp/rates") events/s achieved, p50 $(tail -n 1 "$tmp/p50s") ms, p99 $(tail -n 1 "$tmp/p99s") ms, max $(sort -n "$tmp/lag_run" | tail -n 1) ms, $timeouts not 200"
        stop A
        stop B
    done
    echo "lag_target_rate $rate events/s (half of $cap: min(apply rate, Redis ingest of batches of 100)); $batch events a post, 20 posts/s"
    echo "lag_achieved_rate $(median <"$tmp/rates") events/s (median of $RUNS)"
    echo "lag_visible_p50 $(median <"$tmp/p50s") ms (post to A answered -> read with ?after= on B answered; median of $RUNS runs)"
    echo "lag_visible_p99 $(median <"$tmp/p99s") ms (median of $RUNS runs; all $(wc -l <"$tmp/lag_all") samples pooled: $(pct 0.99 <"$tmp/lag_all") ms)"
    echo "lag_read_baseline_p50 $(pct 0.5 <"$tmp/base_all") ms (the same read on B without after=)"
    echo "lag_gauge_records_p50 $(pct 0.5 <"$tmp/gauge_all") records (B's dynrec_apply_lag_records every 50 ms)"
    echo "lag_gauge_records_p99 $(pct 0.99 <"$tmp/gauge_all") records"
    redis_down
    ;;
esac

case " $PARTS " in *" recs "*)
    # 4. recommendations from 1 and from 3 replicas, the same total connections
    redis_up
    for k in 1 2 3; do start R$k "$REDIS_LOG" 2 --snapshot-every 1000000; done
    per=$((CONN / 3))
    for v in 1 3; do : >"$tmp/rr$v"; : >"$tmp/cpu$v"; done
    for r in $(seq "$RUNS"); do
        for v in 1 3; do
            c0=0
            for k in $(seq $v); do eval "c0=\$((c0 + \$(cpu \$pid_R$k)))"; done
            if [ $v = 1 ]; then
                K=10 wrk -t2 -c"$CONN" -d"${DURATION}s" -s bench/wrk_recs.lua "$base_R1" >"$tmp/w1.txt" 2>&1
            else
                for k in 1 2 3; do
                    eval "b=\$base_R$k"
                    K=10 wrk -t1 -c"$per" -d"${DURATION}s" -s bench/wrk_recs.lua "$b" >"$tmp/w$k.txt" 2>&1 &
                    eval "w$k=\$!"
                done
                wait "$w1" "$w2" "$w3"
            fi
            c1=0
            for k in $(seq $v); do eval "c1=\$((c1 + \$(cpu \$pid_R$k)))"; done
            tot=0
            for k in $(seq $v); do
                n=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$tmp/w$k.txt")
                tot=$((tot + n))
                grep -q 'Non-2xx' "$tmp/w$k.txt" && echo "# recs $v replicas: $(grep 'Non-2xx' "$tmp/w$k.txt")"
            done
            echo "$tot / $DURATION" | bc >>"$tmp/rr$v"
            echo "scale=1; ($c1 - $c0) * 1000000 / $TCK / $tot" | bc >>"$tmp/cpu$v"
        done
    done
    for v in 1 3; do
        echo "recs_${v}_replicas_requests_per_s $(median <"$tmp/rr$v") req/s (k=10, $CONN connections in all, median of $RUNS x ${DURATION} s; runs: $(tr '\n' ' ' <"$tmp/rr$v"))"
        echo "recs_${v}_replicas_server_cpu_per_answer $(median <"$tmp/cpu$v") us (utime + stime of the replicas over answers)"
    done
    c1=$(median <"$tmp/cpu1")
    echo "recs_answers_per_core_s $(echo "1000000 / $c1" | bc) answers/s (1 s of CPU over the CPU per answer of one replica)"
    echo "recs_3_over_1_replicas $(echo "scale=2; $(median <"$tmp/rr3") / $(median <"$tmp/rr1")" | bc) ratio (the same $(nproc) cores, wrk included)"
    for k in 1 2 3; do stop R$k; done
    redis_down
    ;;
esac
for f in "$tmp"/err_*.log; do [ -s "$f" ] && sort "$f" | uniq -c | sort -rn | head -n 3 | sed "s|^|# $(basename "$f"): |"; done
exit 0
