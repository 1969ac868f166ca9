#!/bin/sh
# run.sh - runs every benchmark of one build and tees the output to build/bench-<date>.txt.
# Arguments reach each program; data comes from ../shared/data when present.
BUILD=${BUILD:-build/release}
BENCH_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
BENCH_FLAGS="$(grep -m1 '^OPT' Makefile | sed 's/.*= *//') ($BUILD)"
export BENCH_COMMIT BENCH_FLAGS
out="build/bench-$(date +%Y%m%d-%H%M%S).txt"
for b in "$BUILD"/bench_*; do
    [ -x "$b" ] || continue
    echo "== $(basename "$b")"
    "$b" "$@"
done 2>&1 | tee "$out"
echo "results in $out"
