#!/bin/sh
# live_paired.sh - two P-LIVE columns compared event by event (bench/live_replay.sh writes
# OUT/COLUMN.per-event.tsv: event, user, item, cold, server_pos (1..10 in the top 10, else 0),
# p_stream_rank). Both files must hold the same events in the same order (checked). Prints,
# overall and for warm and cold targets, each column's Hit@10, the events only one of them
# hit, and McNemar's z (continuity-corrected, positive: B better), then Hit@10 per tenth of
# the replay split by warm and cold. With EVENTS=OUT/events.tsv (live_replay.sh's replay, every
# event in order with its scored flag in column 5) the warm targets are also split by how often
# their item occurred earlier in the replay (0, 1-4, 5-19, 20+) and whether it occurs in the
# WINDOW (1024) events before: which items a column gains or loses on.
# Usage: [EVENTS=F] [WINDOW=N] bench/live_paired.sh A.per-event.tsv B.per-event.tsv [NAME_A NAME_B]
set -eu
[ $# -ge 2 ] || { echo "usage: live_paired.sh A.tsv B.tsv [NAME_A NAME_B]" >&2; exit 2; }
paste "$1" "$2" | awk -F'\t' -v na="${3:-A}" -v nb="${4:-B}" '
NR == 1 { next }
$1 != $7 || $2 != $8 || $3 != $9 { printf "live_paired: line %d: the files hold other events\n", NR > "/dev/stderr"; bad = 1; exit 2 }
{ rows[NR] = $0; n++ }
END {
  if (bad) exit 2
  for (r = 2; r <= NR; r++) {
    split(rows[r], f, "\t")
    c = f[4] ? "cold" : "warm"; a = (f[5] > 0 && f[5] <= 10); b = (f[11] > 0 && f[11] <= 10)
    t = int((r - 2) * 10 / n)
    for (k = 0; k < 2; k++) {
      g = k ? c : "all"
      N[g]++; A[g] += a; B[g] += b; if (a && !b) AO[g]++; if (b && !a) BO[g]++
    }
    S[c, t]++; SA[c, t] += a; SB[c, t] += b
  }
  printf "targets\tevents\t%s Hit@10\t%s Hit@10\t%s only\t%s only\tz (McNemar, + = %s better)\n", na, nb, na, nb, nb
  split("all warm cold", G, " ")
  for (i = 1; i <= 3; i++) {
    g = G[i]; if (!N[g]) continue
    d = BO[g] - AO[g]; s = BO[g] + AO[g]; ad = d < 0 ? -d : d
    z = s && ad > 1 ? (d < 0 ? -1 : 1) * (ad - 1) / sqrt(s) : 0
    printf "%s\t%d\t%.4f\t%.4f\t%d\t%d\t%.2f\n", g, N[g], A[g] / N[g], B[g] / N[g], AO[g] + 0, BO[g] + 0, z
  }
  printf "\nHit@10 per tenth\t%s warm\t%s warm\t%s cold\t%s cold\n", na, nb, na, nb
  for (t = 0; t < 10; t++)
    printf "%d\t%.4f\t%.4f\t%.4f\t%.4f\n", t + 1, S["warm", t] ? SA["warm", t] / S["warm", t] : 0,
      S["warm", t] ? SB["warm", t] / S["warm", t] : 0, S["cold", t] ? SA["cold", t] / S["cold", t] : 0,
      S["cold", t] ? SB["cold", t] / S["cold", t] : 0
}'
[ -n "${EVENTS:-}" ] || exit 0
echo
paste "$1" "$2" | awk -F'\t' -v na="${3:-A}" -v nb="${4:-B}" -v W="${WINDOW:-1024}" -v ev="$EVENTS" '
FNR == NR { if ($0 ~ /^#/) next
  item = $3
  if ($5 == 1) { c = cnt[item] + 0; r = win[item] + 0
    bin[++ns] = (c == 0 ? "0" : c < 5 ? "1-4" : c < 20 ? "5-19" : "20+") "\t" (r ? "yes" : "no"); it[ns] = item }
  cnt[item]++; ring[++ne] = item; win[item]++
  if (ne > W) win[ring[ne - W]]--
  next }
FNR == 1 { next }
{ if (it[++k] != $3) { printf "live_paired: %s: scored event %d is not item %s\n", ev, k, $3 > "/dev/stderr"; bad = 1; exit 2 }
  if ($4) next
  b = bin[k]; N[b]++; A[b] += ($5 > 0 && $5 <= 10); B[b] += ($11 > 0 && $11 <= 10) }
END {
  if (bad) exit 2
  if (k != ns) { printf "live_paired: %s has %d scored events, the columns %d\n", ev, ns, k > "/dev/stderr"; exit 2 }
  printf "warm targets: item seen before in the replay	in the last %d events	events	%s Hit@10	%s Hit@10\n", W, na, nb
  split("0 1-4 5-19 20+", C, " "); split("no yes", Y, " ")
  for (i = 1; i <= 4; i++) for (j = 1; j <= 2; j++) { b = C[i] "\t" Y[j]
    if (N[b]) printf "%s\t%d\t%.4f\t%.4f\n", b, N[b], A[b] / N[b], B[b] / N[b] }
}' "$EVENTS" -
