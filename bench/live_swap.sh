#!/bin/sh
# live_swap.sh - one base swap of the P-LIVE `adapter + swap` column, started by live_client
# (--on-tenth) at each tenth of the replay while the replay keeps posting: export the running
# server's event log, warm-retrain the live base on it, swap the new base into the server.
#   dynrec export --data-dir STATE --out F
#   dynrec train --init LIVE.drm --data F --model sasrec --out NEW.drm [SWAP_TRAIN_FLAGS]
#   curl -X POST http://HOST:PORT/v1/admin/base -d '{"path":"NEW.drm"}'
# LIVE.drm is the base the server runs: the checkpoint it started from, then each swap's NEW.
# Environment: DYNREC, STATE, PORT, SWAPDIR (from live_replay.sh), LIVE_TENTH (live_client),
# SWAP_TRAIN_FLAGS (default: 5 epochs with the base's own flags), SWAP_FROM (live: each retrain
# starts from the base the server runs, so retrains chain; first: from the checkpoint the server
# started from, so no base is more than one retrain away from a validated training). Prints one line per step
# with its wall time to SWAPDIR/swaps.log; exits non-zero when a step fails.
set -u
k=$LIVE_TENTH
live=$(cat "$SWAPDIR/live")
[ "${SWAP_FROM:-live}" = first ] && live=$(cat "$SWAPDIR/first")
new="$SWAPDIR/base-$k.drm"
log="$SWAPDIR/swaps.log"
t0=$(date +%s.%N)
step() { # NAME COMMAND...: runs it, logs its wall time, stops the swap when it fails
    name=$1
    shift
    s=$(date +%s.%N)
    "$@" >>"$SWAPDIR/swap-$k.out" 2>&1
    rc=$?
    echo "tenth $k $name $(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $s }") s rc $rc" >>"$log"
    [ $rc -eq 0 ] || exit $rc
}
# shellcheck disable=SC2086
step export "$DYNREC" export --data-dir "$STATE" --out "$SWAPDIR/events-$k"
# shellcheck disable=SC2086
step train "$DYNREC" train --init "$live" --data "$SWAPDIR/events-$k" --model sasrec --out "$new" \
    ${SWAP_TRAIN_FLAGS:---max-len 50 --dropout 0.5 --epochs 5 --threads 1}
step swap curl -sf -X POST "http://127.0.0.1:$PORT/v1/admin/base" -d "{\"path\":\"$(realpath "$new")\"}"
echo "$new" >"$SWAPDIR/live"
echo "tenth $k total $(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $t0 }") s" >>"$log"
