#!/bin/sh
# fleet_faults.sh - faults in a fleet of 3 `dynrec serve` replicas on one Redis stream (a
# redis-server on a unix socket, AOF with appendfsync always), RUNS times (10) per scenario:
#   a. kill -9 one replica while 4 clients post, restart it on its folder;
#   b. kill -9 redis-server while 4 clients post, restart it on the same socket and folder;
#   c. kill -STOP one replica for STOP_S (5) seconds while 2 replicas take the writes, then
#      kill -CONT: its /metrics dynrec_apply_lag_records and _seconds sampled every 200 ms.
# The clients are curl loops posting batches of 10 events, each with a unique event_id and a
# unique time (the time is what the stream keeps, so it names the event in XRANGE); a failed
# request (not 200, or no answer within 5 s) is retried with the same body on the next replica.
# Every acknowledged event (HTTP 200, "accepted":10) is recorded. After each run: every
# acknowledged event must be in the stream exactly once (no event twice at all), and every
# replica must be at the stream's last id with the same /v1/state (last_id, records,
# state_hash). Prints per run lines and `name value unit` totals; exits 1 on a lost event or
# replicas that differ.
# Usage: bench/fleet_faults.sh [MODEL.drm] (default: BPR-MF trained here on
#   dynrec data synth --seed 3 --users 5000 --items 3000 --events 200000, 10 epochs).
# Env: RUNS (10), SCENARIOS ("a b c"), STOP_S (5), DYNREC (build/release/dynrec).
set -u
BIN=${DYNREC:-build/release/dynrec}
RUNS=${RUNS:-10}
SCENARIOS=${SCENARIOS:-a b c}
STOP_S=${STOP_S:-5}
for t in redis-server redis-cli curl; do
    command -v $t >/dev/null 2>&1 || { echo "# skipped: $t is not installed"; exit 0; }
done
tmp=$(mktemp -d)
pid1="" pid2="" pid3="" rpid="" cpids=""
cleanup() {
    for p in $cpids $pid1 $pid2 $pid3; do kill -CONT "$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; done
    [ -n "$rpid" ] && kill -9 "$rpid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
MODEL=${1:-}
if [ -z "$MODEL" ]; then
    "$BIN" data synth --seed 3 --users 5000 --items 3000 --events 200000 --out "$tmp/d" >/dev/null 2>&1
    "$BIN" train --model mf --data "$tmp/d" --out "$tmp/m.drm" --epochs 10 >/dev/null 2>&1 || { echo "train failed"; exit 1; }
    MODEL="$tmp/m.drm"
fi
field() { sed -n "s/.*\"$1\":\"\\{0,1\\}\\([^\",}]*\\).*/\\1/p"; } # field NAME < json
now() { date +%s.%N | cut -c1-14; }
SOCK="$tmp/redis.sock"
STREAM=fleet
rc() { redis-cli -s "$SOCK" "$@"; }

start_redis() {
    redis-server --port 0 --unixsocket "$SOCK" --appendonly yes --appendfsync always \
        --save '' --dir "$tmp/redis" --daemonize no >>"$tmp/redis.log" 2>&1 &
    rpid=$!
    i=0
    until [ "$(rc ping 2>/dev/null)" = PONG ]; do # PONG only once the AOF is loaded
        i=$((i + 1)); [ $i -gt 300 ] && { echo "redis-server did not start: $(tail -3 "$tmp/redis.log")"; exit 1; }
        sleep 0.05
    done
}
start() { # k: replica k on its own folder, an ephemeral port written to port$k
    k=$1
    rm -f "$tmp/port$k"
    "$BIN" serve --model "$MODEL" --data-dir "$tmp/r$k" --log "redis+unix://$SOCK?stream=$STREAM" \
        --port 0 --port-file "$tmp/port$k.new" --threads 4 --snapshot-every 5000 --quiet \
        >>"$tmp/out$k.log" 2>>"$tmp/err$k.log" &
    eval "pid$k=$!"
    i=0
    while [ ! -s "$tmp/port$k.new" ]; do
        i=$((i + 1)); [ $i -gt 600 ] && { echo "replica $k did not start: $(tail -3 "$tmp/err$k.log")"; exit 1; }
        sleep 0.05
    done
    mv "$tmp/port$k.new" "$tmp/port$k"
}
url() { echo "http://127.0.0.1:$(cat "$tmp/port$1" 2>/dev/null)"; }
tip() { rc XREVRANGE "$STREAM" + - COUNT 1 | head -n 1; }
# A >= B for stream ids "MS-SEQ" (two numbers each, compared in turn)
id_ge() { awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, "-"); split(b, y, "-");
    exit !(x[1] + 0 > y[1] + 0 || (x[1] + 0 == y[1] + 0 && x[2] + 0 >= y[2] + 0)) }'; }

client() { # c run replicas: batches of 10 until $tmp/stop (at most 3000 batches, 120 s)
    c=$1
    run=$2
    reps=$3
    nrep=$(echo "$reps" | wc -w)
    k=0
    end=$(($(date +%s) + 120))
    : >"$tmp/acked.$c"
    : >"$tmp/gaveup.$c"
    : >"$tmp/retries.$c"
    while [ ! -e "$tmp/stop" ] && [ $k -lt 3000 ] && [ "$(date +%s)" -lt $end ]; do
        base=$((T0 + run * 1000000 + c * 100000 + k * 10))
        body=$(awk -v b=$base 'BEGIN { s = "["; for (j = 0; j < 10; j++) { t = b + j;
            s = s (j ? "," : "") sprintf("{\"user\":\"u%d\",\"item\":\"i%d\",\"time\":%d,\"event_id\":\"e%d\"}",
            (t * 7919) % 5000, (t * 31) % 3000, t, t) } print s "]" }')
        tries=0
        while :; do
            r=$(echo "$reps" | cut -d' ' -f$(((c + tries) % nrep + 1)))
            code=$(curl -s -m 5 -o "$tmp/ans.$c" -w '%{http_code}' -X POST --data-binary "$body" "$(url "$r")/v1/events")
            if [ "$code" = 200 ] && grep -q '"accepted":10,' "$tmp/ans.$c"; then
                seq "$base" $((base + 9)) >>"$tmp/acked.$c"
                break
            fi
            echo "$r $code" >>"$tmp/retries.$c"
            tries=$((tries + 1))
            [ $tries -ge 200 ] && { echo "$base" >>"$tmp/gaveup.$c"; break; }
            sleep 0.1
        done
        k=$((k + 1))
    done
}
clients() { # run replicas: 4 clients in the background
    rm -f "$tmp/stop"
    cpids=""
    for c in 1 2 3 4; do client $c "$1" "$2" & cpids="$cpids $!"; done
}
stop_clients() {
    touch "$tmp/stop"
    for p in $cpids; do wait "$p"; done
    cpids=""
}
converge() { # every replica at the stream's tip (at most 60 s); 0 when they are and agree
    t=$(tip)
    for k in 1 2 3; do
        i=0
        while :; do
            curl -s -m 5 "$(url $k)/v1/state" >"$tmp/state$k"
            [ "$(field last_id <"$tmp/state$k")" = "$t" ] && break
            i=$((i + 1)); [ $i -gt 600 ] && { echo "# replica $k stuck at $(cat "$tmp/state$k"), tip $t"; return 1; }
            sleep 0.1
        done
    done
    cmp -s "$tmp/state1" "$tmp/state2" && cmp -s "$tmp/state1" "$tmp/state3" && return 0
    echo "# states differ: $(cat "$tmp/state1") / $(cat "$tmp/state2") / $(cat "$tmp/state3")"
    return 1
}
check() { # scenario run: compare the acknowledged events with the stream, print the run's line
    cat "$tmp"/acked.[1-4] | sort -n >"$tmp/acked"
    lo=$((T0 + $2 * 1000000))
    # the stream's t values of this run (an entry prints as id, k, e, u, U, i, I, t, T)
    rc XRANGE "$STREAM" - + | awk -v lo=$lo -v hi=$((lo + 1000000)) 'p == "t" && $1 >= lo && $1 < hi {print $1} {p = $1}' |
        sort -n >"$tmp/stream_t"
    a=$(wc -l <"$tmp/acked")
    s=$(wc -l <"$tmp/stream_t")
    dups=$(uniq -d "$tmp/stream_t" | wc -l)
    sort -u "$tmp/stream_t" >"$tmp/stream_u"
    p=$(comm -12 "$tmp/acked" "$tmp/stream_u" | wc -l)
    extra=$(comm -13 "$tmp/acked" "$tmp/stream_u" | wc -l)
    g=$(cat "$tmp"/gaveup.[1-4] | wc -l)
    rt=$(cat "$tmp"/retries.[1-4] | wc -l)
    if converge; then same=1; else same=0; fi
    echo "$1 $2 $a $p $dups $extra $rt $g $same $(field last_id <"$tmp/state1") $(field state_hash <"$tmp/state1")"
    echo "$a $p $dups $extra $rt $g $same" >>"$tmp/sum.$1"
    [ "$p" = "$a" ] || { echo "# LOST: $(comm -23 "$tmp/acked" "$tmp/stream_u" | head -n 5 | tr '\n' ' ')"; cp "$tmp/acked" "$tmp/lost.$1.$2"; }
}
fleet_up() {
    for k in 1 2 3; do eval "p=\$pid$k"; [ -n "$p" ] && { kill -CONT "$p"; kill -TERM "$p"; wait "$p"; }; done 2>/dev/null
    pid1="" pid2="" pid3=""
    [ -n "$rpid" ] && { kill -9 "$rpid"; wait "$rpid"; } 2>/dev/null
    rm -rf "$tmp/redis" "$tmp"/r[123] "$tmp"/port*
    mkdir -p "$tmp/redis"
    start_redis
    for k in 1 2 3; do start $k; done
}
totals() { # scenario
    awk -v s="$1" '{a += $1; p += $2; d += $3; x += $4; rt += $5; g += $6; same += $7; n++}
        END {printf "fault_%s_acknowledged %d events (%d runs)\nfault_%s_acknowledged_present %d events\n", s, a, n, s, p
             printf "fault_%s_lost %d events\nfault_%s_duplicated %d events\n", s, a - p, s, d
             printf "fault_%s_unacknowledged_in_stream %d events (sent, answer lost; allowed)\n", s, x
             printf "fault_%s_retried_requests %d requests\nfault_%s_given_up %d batches\n", s, rt, s, g
             printf "fault_%s_identical_runs %d runs (of %d)\n", s, same, n}' "$tmp/sum.$1"
}

echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), model $MODEL, $(redis-server --version | cut -d' ' -f1-3)"
T0=1700000000
lost=0
for sc in $SCENARIOS; do
    fleet_up
    : >"$tmp/sum.$sc"
    case $sc in
    a|b) echo "scenario run acknowledged present duplicated unacked_in_stream retries given_up identical last_id state_hash" ;;
    c) echo "scenario run peak_lag_records_gauge peak_lag_seconds_gauge lag_at_sigcont_s drain_to_tip_s lag_gauge_zero_s acknowledged present duplicated identical" ;;
    esac
    for run in $(seq "$RUNS"); do
        wait_s=$(awk -v s="$run" 'BEGIN {srand(s); printf "%.2f", 0.5 + rand()}')
        case $sc in
        a)
            k=$((run % 3 + 1))
            clients "$run" "1 2 3"
            sleep "$wait_s"
            eval "kill -9 \$pid$k; wait \$pid$k" 2>/dev/null
            sleep 0.5
            start $k
            sleep 1
            stop_clients
            check a "$run"
            ;;
        b)
            clients "$run" "1 2 3"
            sleep "$wait_s"
            kill -9 "$rpid"
            wait "$rpid" 2>/dev/null
            sleep 1
            start_redis
            sleep 2
            stop_clients
            check b "$run"
            ;;
        c)
            clients "$run" "1 2"
            sleep 1
            l0=$(curl -s -m 2 "$(url 3)/v1/state" | field last_id)
            kill -STOP "$pid3"
            sleep "$STOP_S"
            tipc=$(tip)
            kill -CONT "$pid3"
            t0=$(now)
            ms0=$(date +%s%3N)
            # drain: a read that waits until replica 3 applied the tip of SIGCONT time
            curl -s -m 15 -o /dev/null -w '%{http_code} %{time_total}\n' \
                "$(url 3)/v1/users/u1/recommendations?k=10&after=$tipc&wait_ms=10000" >"$tmp/drain" &
            dpid=$!
            : >"$tmp/lag"
            i=0
            while [ $i -lt 150 ]; do # every 200 ms, at most 30 s
                i=$((i + 1))
                m=$(curl -s -m 2 "$(url 3)/metrics")
                t=$(now)
                lr=$(echo "$m" | sed -n 's/^dynrec_apply_lag_records //p')
                ls=$(echo "$m" | sed -n 's/^dynrec_apply_lag_seconds //p')
                echo "$(echo "$t - $t0" | bc) ${lr:-x} ${ls:-x}" >>"$tmp/lag"
                [ -s "$tmp/drain" ] && [ "${lr:-1}" = 0 ] && [ $i -gt 5 ] && break
                sleep 0.2
            done
            wait "$dpid"
            stop_clients
            set -- $(cat "$tmp/drain")
            [ "${1:-x}" = 200 ] && drained=$2 || drained=none
            # the lag at SIGCONT: wall clock minus the time in the last id applied before SIGSTOP
            age0=$(echo "${l0:-0-0}" | awk -F- -v n="$ms0" '{printf "%.3f", (n - $1) / 1000}')
            # peak of the gauges over the samples; the records gauge's first 0 after its peak
            stats=$(awk '$2 != "x" { if ($2 + 0 > pr) {pr = $2 + 0; at = NR}; if ($3 + 0 > ps) ps = $3 + 0;
                       if ($2 == 0 && z == "" && at) z = $1 }
                     END {printf "%d %.3f %s", pr, ps, (z == "" ? "none" : z)}' "$tmp/lag")
            check c "$run" >"$tmp/chk"
            set -- $stats $(tail -n 1 "$tmp/sum.c")
            echo "c $run $1 $2 $age0 $drained $3 $4 $5 $6 ${10}"
            echo "$1 $2 $drained $3 $age0" >>"$tmp/lag.c"
            [ -n "${KEEP_LAG:-}" ] && cp "$tmp/lag" "$KEEP_LAG.$run"
            grep '^#' "$tmp/chk"
            ;;
        esac
    done
    totals "$sc"
    if [ "$sc" = c ]; then
        med() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
        echo "fault_c_peak_lag_records_median $(cut -d' ' -f1 "$tmp/lag.c" | med) records (after ${STOP_S} s stopped)"
        echo "fault_c_peak_lag_records_max $(cut -d' ' -f1 "$tmp/lag.c" | sort -n | tail -n 1) records"
        echo "fault_c_peak_lag_seconds_gauge_median $(cut -d' ' -f2 "$tmp/lag.c" | med) s (dynrec_apply_lag_seconds)"
        echo "fault_c_lag_at_sigcont_median $(cut -d' ' -f5 "$tmp/lag.c" | med) s (wall clock at SIGCONT minus the time of the last id applied before SIGSTOP)"
        echo "fault_c_drain_to_tip_median $(cut -d' ' -f3 "$tmp/lag.c" | med) s (from SIGCONT until a read with ?after=TIP answered: TIP the stream's last id at SIGCONT)"
        echo "fault_c_drain_to_tip_max $(cut -d' ' -f3 "$tmp/lag.c" | sort -n | tail -n 1) s"
        echo "fault_c_lag_gauge_zero_median $(cut -d' ' -f4 "$tmp/lag.c" | med) s (from SIGCONT until dynrec_apply_lag_records read 0 after its peak)"
    fi
    lost=$((lost + $(awk '{l += $1 - $2} END {print l + 0}' "$tmp/sum.$sc")))
done
for k in 1 2 3; do grep -h -i -E 'error|fail|lost|warn' "$tmp/err$k.log" 2>/dev/null | sort | uniq -c | sort -rn | head -n 3 | sed "s/^/# replica $k stderr: /"; done
[ "$lost" -eq 0 ] || { echo "LOST $lost acknowledged events"; exit 1; }
