#!/bin/sh
# plots.sh - SVG charts for docs/BENCH.md from benchmark outputs, with gnuplot (scripts/deps.sh
# installs Debian's gnuplot-nox when no gnuplot is on PATH) and jq.
#
# Usage: sh bench/plots.sh IN_DIR [IN_DIR...] OUT_DIR
#
# Each IN_DIR is searched (with its sub-folders) for the files below; each chart whose input
# is absent is skipped with a message. OUT_DIR may be an IN_DIR (only *.svg is written there).
# Files are read in byte order of their paths and every number is printed with fixed
# precision, so the same inputs give the same SVG bytes.
#
#   P-STREAM  *.json from `dynrec eval --protocol stream --json` (bench/stream_seeds.sh writes
#             one per seed: DATA_MODEL_sSEED.json). Files whose checkpoint has the same name
#             up to its _sSEED suffix are seeds of one run: per time slice, Hit@10 of each
#             column (frozen, adapter, retrain when present) as the mean over the seeds with
#             error bars of one sample standard deviation.
#             -> OUT_DIR/stream_NAME.svg
#   P-MODAL   *.json from `dynrec eval --protocol modal --sweep --json` (fused model; one per
#             seed) and, optionally, from `dynrec eval --protocol modal --modalities none
#             --json` (ids only: "modalities":"none", nothing dropped) on the same dataset:
#             Recall@20 against the share p of items whose modality is removed, one line per
#             removed modality and imputation (gate / mean), ids only as the reference line;
#             means over seeds with sample standard deviation error bars.
#             -> OUT_DIR/modal_NAME.svg
#   latency   *.tsv whose lines are "PERCENTILE<TAB>MILLISECONDS" with "#" comments
#             (bench/server_load.sh LATENCY_TSV=FILE writes one; "# title: ..." names the
#             line): latency against percentile on a log "nines" axis, one line per file.
#             -> OUT_DIR/latency.svg
#
# PLOTS_DATA=DIR also keeps the tables each chart draws (x, mean, sd) in DIR/CHART/*.dat.
#
# Exit status: 0 when every chart was written or skipped for want of input, 1 on a bad input
# file (its path and what is wrong are printed) or a gnuplot failure, 2 on a usage error.
set -u
LC_ALL=C
export LC_ALL

usage() {
    echo "usage: sh bench/plots.sh IN_DIR [IN_DIR...] OUT_DIR"
    echo "  SVG charts from benchmark outputs found under the IN_DIRs (P-STREAM and P-MODAL JSON,"
    echo "  latency TSV; see the header of bench/plots.sh), written to OUT_DIR"
}
case "${1:-}" in -h | --help) usage; exit 0 ;; esac
if [ $# -lt 2 ]; then
    usage >&2
    exit 2
fi
# the last argument is OUT_DIR; "$@" keeps the IN_DIRs
n=$#
i=0
for a; do
    i=$((i + 1))
    [ $i -eq 1 ] && set --
    if [ $i -lt $n ]; then
        [ -d "$a" ] || { echo "plots: IN_DIR '$a' is not a folder" >&2; exit 2; }
        set -- "$@" "$a"
    else
        OUT=$a
    fi
done
IN="$*"
command -v jq >/dev/null 2>&1 || { echo "plots: needs jq (apt-get install jq)" >&2; exit 1; }
command -v gnuplot >/dev/null 2>&1 ||
    { echo "plots: needs gnuplot (scripts/deps.sh installs gnuplot-nox)" >&2; exit 1; }
mkdir -p "$OUT" || { echo "plots: cannot create OUT_DIR '$OUT'" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dynrec-plots-XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
die() { echo "plots: $*" >&2; exit 1; }

# a name safe in a file name: letters, digits, '.', '_', '-'
safe() { printf '%s' "$1" | tr -c 'A-Za-z0-9._-' '_'; }
# the checkpoint's name without folder, .drm and the _sSEED suffix (the seeds of one run)
run_name() { printf '%s' "$1" | sed 's|.*/||; s/\.drm$//; s/_s[0-9][0-9]*$//'; }

# --- classify the JSON files --------------------------------------------------------------
: >"$tmp/stream.list"
: >"$tmp/sweep.list"
: >"$tmp/ids.list"
find "$@" -type f -name '*.json' | sort >"$tmp/json.list"
while IFS= read -r f; do
    kind=$(jq -r 'if type != "object" then "other"
        elif .protocol == "P-STREAM" then
            if (.stream.slices | type) == "array" and (.stream.slices | length) > 0
            then "stream" else "bad-stream" end
        elif .protocol == "P-MODAL" and has("sweep") then
            if (.sweep | type) == "array" then "sweep" else "bad-sweep" end
        elif .protocol == "P-MODAL" and .modalities == "none" and ((.drop // {}) | length) == 0
            then "ids"
        else "other" end' "$f" 2>"$tmp/jq.err") ||
        die "$f: not valid JSON ($(head -n 1 "$tmp/jq.err"))"
    case $kind in
    stream)
        key=$(jq -r '.model // ""' "$f")
        printf '%s\t%s\n' "$(run_name "$key")" "$f" >>"$tmp/stream.list" ;;
    sweep)
        key=$(jq -r '"\(.dataset // "")\t\(.model // "")"' "$f")
        printf '%s_%s\t%s\n' "${key%%	*}" "$(run_name "${key#*	}")" "$f" >>"$tmp/sweep.list" ;;
    ids) printf '%s\t%s\n' "$(jq -r '.dataset // ""' "$f")" "$f" >>"$tmp/ids.list" ;;
    bad-stream) die "$f: a P-STREAM result without per-slice figures (.stream.slices)" ;;
    bad-sweep) die "$f: a P-MODAL sweep whose .sweep is not an array" ;;
    esac
done <"$tmp/json.list"

# gnuplot's common settings: fixed size, font and colours, so the bytes depend on the data only
STYLE='set terminal svg size 760,HEIGHT noenhanced font "sans,12" background "#ffffff"
set grid ytics lc rgb "#dddddd" lw 1 lt 1
set border 3
set tics nomirror
set key top left Left reverse box opaque samplen 2
set style line 1 lc rgb "#7f7f7f" lw 2 pt 7 ps 0.7
set style line 2 lc rgb "#1f77b4" lw 2 pt 5 ps 0.7
set style line 3 lc rgb "#d62728" lw 2 pt 9 ps 0.8
set style line 4 lc rgb "#2ca02c" lw 2 pt 13 ps 0.8
set style line 5 lc rgb "#1f77b4" lw 2 pt 4 ps 0.7 dt 2
set style line 6 lc rgb "#d62728" lw 2 pt 8 ps 0.8 dt 2
set style line 7 lc rgb "#2ca02c" lw 2 pt 12 ps 0.8 dt 2'

# each chart's data tables go to $tmp/chart (x, then mean and sd or the value: what gnuplot draws)
new_chart() { rm -rf "$tmp/chart" && mkdir "$tmp/chart"; }
# gnuplot SCRIPT OUT.svg [HEIGHT]: writes OUT.svg (760 pixels wide, 440 high) whole or not at all;
# with PLOTS_DATA=DIR, the chart's data tables are kept in DIR/NAME/ (NAME: OUT.svg's name)
render() {
    { printf '%s\n' "$STYLE" | sed "s/HEIGHT/${3:-440}/"; printf 'set output "%s"\n' "$2.tmp"; cat "$1"; } >"$tmp/gp.in"
    if ! gnuplot "$tmp/gp.in" 2>"$tmp/gp.err"; then
        rm -f "$2.tmp"
        die "gnuplot failed on $2: $(head -n 3 "$tmp/gp.err")"
    fi
    mv "$2.tmp" "$2"
    echo "plots: wrote $2"
    if [ -n "${PLOTS_DATA:-}" ]; then
        d="$PLOTS_DATA/$(basename "$2" .svg)"
        mkdir -p "$d" && cp "$tmp"/chart/*.dat "$d"/ || die "cannot keep the data tables in $d"
    fi
}
# gnuplot string literal of S (double quotes; backslash and quote escaped)
gpstr() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }

# FUNC NAME FILES... for each run NAME of LIST (lines NAME<TAB>FILE), in byte order of names
each_run() { # LIST FUNC
    for run in $(cut -f1 "$1" | sort -u); do
        # shellcheck disable=SC2046
        "$2" "$run" $(awk -F'\t' -v n="$run" '$1 == n {print $2}' "$1")
    done
}

# jq: mean and sample standard deviation (0 for one value) of an array, 6 decimals
MS='def r6: . * 1000000 | round / 1000000;
    def ms: (add / length) as $m
      | [$m, (if length > 1 then (map((. - $m) * (. - $m)) | add / (length - 1) | sqrt) else 0 end)]
      | map(r6);'

# --- P-STREAM: Hit@10 per slice ------------------------------------------------------------
stream_plot() { # NAME FILES...
    name=$1
    shift
    svg="$OUT/stream_$(safe "$name").svg"
    new_chart
    # columns present in every file's first slice, in a fixed order
    cols=$(jq -s -r '[.[] | .stream.slices[0] | keys] as $k
        | ["frozen", "adapter", "retrain"] | map(select(. as $c | $k | all(index($c) != null))) | join(" ")' "$@") ||
        die "$name: cannot read the slices of $*"
    [ -n "$cols" ] || die "$name: no frozen / adapter / retrain column in $*"
    n=$(jq -s 'map(.stream.slices | length) | min' "$@")
    nmax=$(jq -s 'map(.stream.slices | length) | max' "$@")
    [ "$n" = "$nmax" ] || die "$name: the seeds have different slice counts ($n vs $nmax): $*"
    seeds=$#
    ds=$(jq -r -s '.[0].dataset // "?"' "$@")
    : >"$tmp/plot.gp"
    i=0
    plot=""
    for c in $cols; do
        i=$((i + 1))
        jq -s -r --arg c "$c" "$MS"'
            range(0; .[0].stream.slices | length) as $j
            | [.[] | .stream.slices[$j][$c]["hit@10"]] as $v
            | if ($v | all(type == "number")) then ([$j + 1] + ($v | ms)) | @tsv
              else error("slice \($j + 1): \($c) Hit@10 is missing or not a number") end' "$@" \
            >"$tmp/chart/$c.dat" 2>"$tmp/jq.err" || die "$name: $(head -n 1 "$tmp/jq.err") in $*"
        case $c in frozen) ls=1 t="frozen base" ;; adapter) ls=2 t="base + online adapter" ;;
                   *) ls=4 t="retrained" ;; esac
        plot="$plot${plot:+, }\"$tmp/chart/$c.dat\" using 1:2:3 with yerrorlines ls $ls title \"$t\""
    done
    if [ "$seeds" -gt 1 ]; then sub="mean ± sd over $seeds seeds"; else sub="one seed"; fi
    {
        echo "set title $(gpstr "P-STREAM $ds ($name): Hit@10 per time slice, $sub")"
        echo 'set xlabel "time slice of the stream after T0 (equal numbers of events)"'
        echo 'set ylabel "Hit@10"'
        echo "set xrange [0.5:$n.5]"
        echo 'set xtics 1'
        echo 'set yrange [0:*]'
        echo 'set format y "%.3f"'
        echo "plot $plot"
    } >"$tmp/plot.gp"
    render "$tmp/plot.gp" "$svg"
}

if [ -s "$tmp/stream.list" ]; then
    each_run "$tmp/stream.list" stream_plot
else
    echo "plots: P-STREAM chart skipped: no 'dynrec eval --protocol stream --json' output under $IN"
fi

# --- P-MODAL: Recall@20 against the share of items missing a modality ----------------------
modal_plot() { # NAME FILES...
    name=$1
    shift
    svg="$OUT/modal_$(safe "$name").svg"
    new_chart
    ds=$(jq -r -s '.[0].dataset // "?"' "$@")
    seeds=$#
    # series: impute and removed modality, in the files' order; a line per series
    jq -s -r '[.[0].sweep[] | "\(.impute)\t\(.drop | keys[0])"] | unique | .[]
              | select(length > 0)' "$@" >"$tmp/series" 2>"$tmp/jq.err" ||
        die "$name: $(head -n 1 "$tmp/jq.err") in $*"
    [ -s "$tmp/series" ] || { echo "plots: P-MODAL chart $name skipped: its sweep has no rows (no fused modality) in $*"; return 0; }
    plot=""
    k=0
    while IFS='	' read -r imp mod; do
        k=$((k + 1))
        jq -s -r --arg i "$imp" --arg m "$mod" "$MS"'
            [.[0].sweep[] | select(.impute == $i and (.drop | keys[0]) == $m) | .drop[$m]] as $ps
            | $ps[] as $p
            | [.[] | .sweep[] | select(.impute == $i and (.drop | keys[0]) == $m and .drop[$m] == $p)
               | .modal["recall@20"]] as $v
            | if ($v | length) == length and ($v | all(type == "number")) then ([$p] + ($v | ms)) | @tsv
              else error("\($m) removed at p = \($p) (\($i)): not in every file or not a number") end' "$@" \
            >"$tmp/chart/$(safe "$imp")_$(safe "$mod").dat" 2>"$tmp/jq.err" || die "$name: $(head -n 1 "$tmp/jq.err") in $*"
        # colour by modality (in order of appearance), dashes for mean imputation
        mi=$(awk -F'\t' -v m="$mod" '!seen[$2]++ {n++; if ($2 == m) print n}' "$tmp/series")
        mi=$(( (mi - 1) % 3 ))
        if [ "$imp" = mean ]; then ls=$((5 + mi)) t="fused, $mod removed, mean imputed"
        else ls=$((2 + mi)) t="fused, $mod removed, gate closed"; fi
        plot="$plot${plot:+, }\"$tmp/chart/$(safe "$imp")_$(safe "$mod").dat\" using 1:2:3 with yerrorlines ls $ls title $(gpstr "$t")"
    done <"$tmp/series"
    # ids only on the same dataset: flat, drawn across the sweep's range
    ids=$(awk -F'\t' -v d="$ds" '$1 == d {print $2}' "$tmp/ids.list")
    if [ -n "$ids" ]; then
        # shellcheck disable=SC2086
        jq -s -r "$MS"'[.[] | .modal["recall@20"]] as $v
            | if ($v | all(type == "number")) then ($v | ms) as $s | ([0] + $s), ([1] + $s) | @tsv
              else error("recall@20 missing") end' $ids >"$tmp/chart/ids.dat" 2>"$tmp/jq.err" ||
            die "$name: ids-only reference: $(head -n 1 "$tmp/jq.err") in $ids"
        nids=$(printf '%s\n' "$ids" | wc -l | tr -d ' ')
        plot="\"$tmp/chart/ids.dat\" using 1:2:3 with yerrorlines ls 1 title $(gpstr "ids only ($nids run$([ "$nids" -gt 1 ] && echo s))"), $plot"
    else
        echo "plots: P-MODAL chart $name: no ids-only reference ('--modalities none --json' on $ds) under $IN; fused lines only"
    fi
    if [ "$seeds" -gt 1 ]; then sub="mean ± sd over $seeds seeds"; else sub="one seed"; fi
    {
        echo "set title $(gpstr "P-MODAL $ds ($name): Recall@20 with a modality removed, $sub")"
        echo 'set xlabel "share p of the items whose modality is removed at inference"'
        echo 'set ylabel "Recall@20"'
        echo 'set xrange [-0.05:1.05]'
        echo 'set xtics 0.25'
        echo 'set format y "%.3f"'
        echo 'set key below Left reverse nobox samplen 2 maxrows 4 height 1.5'
        echo "plot $plot"
    } >"$tmp/plot.gp"
    render "$tmp/plot.gp" "$svg" 540
}

if [ -s "$tmp/sweep.list" ]; then
    each_run "$tmp/sweep.list" modal_plot
else
    echo "plots: P-MODAL chart skipped: no 'dynrec eval --protocol modal --sweep --json' output under $IN"
fi

# --- the server's latency distribution ------------------------------------------------------
find "$@" -type f -name '*.tsv' | sort >"$tmp/tsv.list"
new_chart
plot=""
k=0
while IFS= read -r f; do
    # a latency table: every line a comment or "percentile<TAB>ms" with 0 <= percentile <= 100
    awk -F'\t' '/^#/ || NF == 0 {next}
        NF != 2 || $1 !~ /^[0-9.]+$/ || $2 !~ /^[0-9.]+$/ || $1 + 0 > 100 {bad = NR; exit}
        {n++} END {exit (bad || n < 2)}' "$f" || {
        bad=$(awk -F'\t' '/^#/ || NF == 0 {next}
            NF != 2 || $1 !~ /^[0-9.]+$/ || $2 !~ /^[0-9.]+$/ || $1 + 0 > 100 {print NR; exit}' "$f")
        if [ -n "$bad" ]; then
            die "$f:$bad: not a latency line (PERCENTILE<TAB>MILLISECONDS, percentile at most 100)"
        fi
        echo "plots: $f: fewer than two percentiles; not plotted"
        continue
    }
    k=$((k + 1))
    # x = -log10(1 - p/100): 90% at 1, 99% at 2, 99.9% at 3; the maximum (p = 100) is left out
    awk -F'\t' '/^#/ || NF == 0 || $1 + 0 >= 100 {next}
        {printf "%.6f\t%.6f\t%s\n", -log(1 - $1 / 100) / log(10), $2, $1}' "$f" >"$tmp/chart/latency_$k.dat"
    title=$(sed -n 's/^# title: *//p' "$f" | head -n 1)
    [ -n "$title" ] || title=$(basename "$f" .tsv)
    p50=$(awk -F'\t' '!/^#/ && $1 + 0 == 50 {print $2}' "$f")
    p99=$(awk -F'\t' '!/^#/ && $1 + 0 == 99 {print $2}' "$f")
    [ -n "$p50" ] && [ -n "$p99" ] && title="$title (p50 $p50 ms, p99 $p99 ms)"
    ls=$(( (k - 1) % 3 + 2 ))
    plot="$plot${plot:+, }\"$tmp/chart/latency_$k.dat\" using 1:2 with linespoints ls $ls title $(gpstr "$title")"
done <"$tmp/tsv.list"
if [ -n "$plot" ]; then
    {
        echo 'set title "dynrec serve: latency distribution of GET recommendations (wrk)"'
        echo 'set xlabel "percentile of requests"'
        echo 'set ylabel "latency (ms)"'
        echo 'set logscale y 10'
        echo 'set xrange [0:4.2]'
        echo 'set xtics ("0%%" 0, "50%%" 0.30103, "90%%" 1, "99%%" 2, "99.9%%" 3, "99.99%%" 4)'
        echo 'set grid xtics ytics lc rgb "#dddddd" lw 1 lt 1'
        echo 'set key top left Left reverse noopaque nobox samplen 2'
        # whole decades, with one free decade above the slowest request for the key
        cat "$tmp"/chart/latency_*.dat | awk -F'\t' 'NR == 1 || $2 < lo {lo = $2} NR == 1 || $2 > hi {hi = $2}
            END {if (lo <= 0) lo = 0.001; printf "set yrange [%g:%g]\n",
                 10 ^ int(log(lo) / log(10) - (lo < 1 ? 1 : 0)), 10 ^ (int(log(hi * 3) / log(10)) + 1)}'
        echo "plot $plot"
    } >"$tmp/plot.gp"
    render "$tmp/plot.gp" "$OUT/latency.svg"
else
    echo "plots: latency chart skipped: no latency TSV (bench/server_load.sh LATENCY_TSV=FILE) under $IN"
fi
exit 0
