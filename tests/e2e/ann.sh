#!/bin/sh
# ann.sh - end-to-end checks of two-stage retrieval: `dynrec index` writes the same file twice
# (one thread), a server with the index and more candidates than items answers exactly as a
# server without it over the same events (a new item and hot items included), and an index for
# another checkpoint, a corrupt one or a missing one under --ann on stop the server with a
# message naming the problem.
set -u
DYNREC=${DYNREC:-build/release/dynrec}
if ! command -v curl >/dev/null 2>&1; then
    echo "SKIP: curl is not installed (scripts/deps.sh installs it), two-stage serving not checked"
    exit 0
fi
tmp=$(mktemp -d)
pids=""
cleanup() {
    for p in $pids; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    for f in "$tmp"/err.*; do [ -f "$f" ] && tail -n 3 "$f"; done
    exit 1
}

$DYNREC data synth --seed 5 --users 150 --items 120 --events 5000 --out "$tmp/d" >/dev/null 2>&1 || fail "synth"
$DYNREC train --model mf --data "$tmp/d" --out "$tmp/m.drm" --epochs 8 --no-baselines >/dev/null 2>&1 || fail "train"
$DYNREC train --model mf --data "$tmp/d" --out "$tmp/other.drm" --epochs 8 --seed 9 --no-baselines >/dev/null 2>&1 ||
    fail "train another"
$DYNREC index --model "$tmp/m.drm" 2>"$tmp/index.log" || fail "index: $(cat "$tmp/index.log")"
grep -q "^index: 120 items" "$tmp/index.log" || fail "index output: $(cat "$tmp/index.log")"
$DYNREC index --model "$tmp/m.drm" --out "$tmp/again.ann" 2>/dev/null || fail "index again"
cmp -s "$tmp/m.drm.ann" "$tmp/again.ann" || fail "one thread, same checkpoint and seed: the index files differ"

# start NAME ARGS...: a server on an ephemeral port; its base URL in base_NAME
start() {
    name=$1
    shift
    rm -f "$tmp/port.$name"
    $DYNREC serve --model "$tmp/m.drm" --data-dir "$tmp/state.$name" --port 0 --port-file "$tmp/port.$name" \
        --threads 2 --no-fsync --snapshot-every 0 "$@" >"$tmp/out.$name" 2>"$tmp/err.$name" &
    pid=$!
    pids="$pids $pid"
    i=0
    while [ ! -s "$tmp/port.$name" ]; do
        i=$((i + 1))
        [ $i -gt 600 ] && fail "server $name did not start in 60 s"
        kill -0 "$pid" 2>/dev/null || fail "server $name exited at start: $(cat "$tmp/err.$name")"
        sleep 0.1
    done
    eval "base_$name=http://127.0.0.1:$(cat "$tmp/port.$name")"
}
# refused ARGS...: the server must exit non-zero with the message $want
refused() {
    rm -rf "$tmp/state.bad"
    if $DYNREC serve --model "$tmp/m.drm" --data-dir "$tmp/state.bad" --port 0 --no-fsync "$@" \
        >/dev/null 2>"$tmp/err.bad"; then
        fail "serve $* started; want a refusal with '$want'"
    fi
    grep -qF -- "$want" "$tmp/err.bad" || fail "serve $*: want '$want', got: $(cat "$tmp/err.bad")"
}

DYNREC_LOG=3 start two --ann on --ann-candidates 1000
start exact --ann off
grep -q "two-stage retrieval: 120 indexed items, 1000 candidates" "$tmp/err.two" ||
    fail "the indexed server does not say it uses the index: $(cat "$tmp/err.two")"

# the same events to both: known users, a new user, a new item made hot
t=1700000000
batch=""
n=0
while [ $n -lt 60 ]; do
    n=$((n + 1))
    batch="$batch{\"user\":\"u$((n % 20))\",\"item\":\"i$((n * 7 % 120))\",\"time\":$((t + 2 * n))},"
    batch="$batch{\"user\":\"u$((n % 20))\",\"item\":\"brand-new\",\"time\":$((t + 2 * n + 1))},"
done
batch="[${batch%,}]"
for b in "$base_two" "$base_exact"; do
    code=$(curl -s -o "$tmp/body" -w '%{http_code}' -X POST -d "$batch" "$b/v1/events")
    [ "$code" = 200 ] || fail "POST events to $b: $code $(cat "$tmp/body")"
done
same=0
for u in u1 u2 u3 u5 u8 u13 newcomer; do
    curl -s "$base_two/v1/users/$u/recommendations?k=20" >"$tmp/a" || fail "GET two-stage $u"
    curl -s "$base_exact/v1/users/$u/recommendations?k=20" >"$tmp/b" || fail "GET exact $u"
    grep -q '"item":' "$tmp/a" || fail "no recommendations for $u: $(cat "$tmp/a")"
    cmp -s "$tmp/a" "$tmp/b" || fail "user $u: two-stage with C >= n differs from the exact scan:
$(cat "$tmp/a")
$(cat "$tmp/b")"
    same=$((same + 1))
done
for p in $pids; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
pids=""

# refusals, each naming the file and the reason
want="built for the checkpoint with hash"
cp "$tmp/m.drm.ann" "$tmp/good.ann"
$DYNREC index --model "$tmp/other.drm" --out "$tmp/m.drm.ann" 2>/dev/null || fail "index other"
refused --ann on
want="the index is corrupt (graph checksum mismatch)"
cp "$tmp/good.ann" "$tmp/m.drm.ann"
size=$(wc -c <"$tmp/m.drm.ann")
printf '\377' | dd of="$tmp/m.drm.ann" bs=1 seek=$((size - 7)) conv=notrunc 2>/dev/null
refused --ann on
want="the index is truncated"
head -c 2000 "$tmp/good.ann" >"$tmp/m.drm.ann"
refused --ann on
want="not a dynrec index (bad magic)"
head -c 5000 "$tmp/m.drm" >"$tmp/m.drm.ann"
refused --ann on
want="--ann on needs the index"
rm -f "$tmp/m.drm.ann"
refused --ann on
echo "ok: ann ($same users equal to the exact scan; refusals named)"
