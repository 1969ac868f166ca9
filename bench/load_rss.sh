#!/bin/sh
# load_rss.sh - wall time and peak memory of `dynrec data stats` on a dataset, measured with
# /usr/bin/time -v, 5 runs, medians. Usage: bench/load_rss.sh [PATH] (default amazon-mtv).
BIN=${DYNREC:-build/release/dynrec}
DATA=${1:-../shared/data/amazon-movies-tv-llmtup}
[ -e "$DATA" ] || { echo "# skipped: $DATA not present"; exit 0; }
tmp=$(mktemp)
for r in 1 2 3 4 5; do
    /usr/bin/time -v "$BIN" data stats --data "$DATA" >/dev/null 2>>"$tmp"
done
wall=$(grep 'Elapsed (wall clock)' "$tmp" | sed 's/.*: //' | awk -F: '{print $NF}' | sort -n | sed -n 3p)
rss=$(grep 'Maximum resident set size' "$tmp" | awk '{print $NF}' | sort -n | sed -n 3p)
echo "# /usr/bin/time -v $BIN data stats --data $DATA (5 runs)"
echo "stats_wall_seconds $wall s (median of 5)"
echo "stats_peak_rss $((rss / 1024)) MiB (median of 5)"
rm -f "$tmp"
