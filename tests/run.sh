#!/bin/sh
# run.sh - runs every test program of one build ($BUILD): cmocka unit tests, the fuzz corpus
# replays and the end-to-end CLI scripts. Prints one line per program and a closing
# "tests: N passed, N failed" line; exits non-zero when anything failed.
BUILD=${BUILD:-build/release}
pass=0
fail=0
failed=""
log_dir="$BUILD/test-logs"
mkdir -p "$log_dir"

run() { # name command...
    name=$1
    shift
    t0=$(date +%s)
    if "$@" >"$log_dir/$name.log" 2>&1; then
        pass=$((pass + 1))
        printf '  ok    %-28s %3ss\n' "$name" $(($(date +%s) - t0))
    else
        fail=$((fail + 1))
        failed="$failed $name"
        printf '  FAIL  %-28s (log: %s)\n' "$name" "$log_dir/$name.log"
        tail -n 30 "$log_dir/$name.log" | sed 's/^/        /'
    fi
    grep -h '^SKIP' "$log_dir/$name.log" 2>/dev/null | sort -u | sed 's/^/        /'
}

echo "unit tests ($BUILD)"
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    run "$(basename "$t")" "$t"
done

echo "fuzz corpus replay"
for r in "$BUILD"/tests/replay_*; do
    [ -x "$r" ] || continue
    n=$(basename "$r")
    n=${n#replay_}
    run "replay_$n" "$r" "tests/fuzz/corpus/$n"
done

echo "end-to-end"
for e in tests/e2e/*.sh; do
    [ -f "$e" ] || continue
    run "$(basename "$e" .sh)" env DYNREC="$BUILD/dynrec" sh "$e"
done

echo "tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ] || { echo "failed:$failed"; exit 1; }
