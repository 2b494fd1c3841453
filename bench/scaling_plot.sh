#!/usr/bin/env bash
# Draws bench/scaling.sh's CSV files as PNG charts with Debian's gnuplot
# (gnuplot-nox). Run by bench/scaling.sh; on its own it redraws the charts
# from the CSV already in bench/results.
# Usage: bench/scaling_plot.sh [results=bench/results] [images=docs/images]
set -euo pipefail
cd "$(dirname "$0")/.."
results="${1:-bench/results}"
images="${2:-docs/images}"
command -v gnuplot > /dev/null || { echo "gnuplot is missing: scripts/install-deps --test" >&2; exit 1; }
mkdir -p "$images"

# Each store's rows of a CSV as its own file (gnuplot plots one per line
# style), with the header dropped: $work/<series>-<store>.dat.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
split_by_store() {  # split_by_store SERIES
  tail -n +2 "$results/scaling-$1.csv" | awk -F, -v dir="$work" -v s="$1" '{print > (dir "/" s "-" $1 ".dat")}'
}
for s in size concurrency small; do split_by_store "$s"; done
tail -n +2 "$results/scaling-idle.csv" > "$work/idle.dat"
disk=$(awk -F, '$1 == "disk" {print $3}' "$results/scaling-bounds.csv")
direct=$(awk -F, '$1 == "s3" {print $3}' "$results/scaling-bounds.csv")
plots() {  # plots SERIES COLUMN [TITLE-SUFFIX]: one line per store present
  local sep=""
  for store in local s3; do
    [ -f "$work/$1-$store.dat" ] || continue
    local title=$store
    [ "$store" = s3 ] && title="radosgw"
    printf '%s"%s" using %s with linespoints title "%s"' "$sep" "$work/$1-$store.dat" "$2" "$title"
    sep=", "
  done
}

# The store's own cores beside the service's, where the store is radosgw.
store_cores=""
if [ -f "$work/concurrency-s3.dat" ]; then
  store_cores=", \"$work/concurrency-s3.dat\" using 2:8 with linespoints title \"radosgw itself\""
fi

gnuplot <<EOF
set terminal pngcairo size 1200,380 font "sans,10"
set datafile separator ","
set grid
set key top left Left reverse
set logscale x 2

set output "$images/scaling-size.png"
set terminal pngcairo size 1500,380 font "sans,10"
set multiplot layout 1,4 title "One upload at a time, against the file's size (MiB)"
set xlabel "file size (MiB)"
set ylabel "MiB/s"
set yrange [0:*]
plot $(plots size '2:4'), $disk with lines dashtype 2 title "disk bound (dd)", $direct with lines dashtype 3 title "radosgw bound (direct PUT)"
set ylabel "service CPU-seconds per GiB"
plot $(plots size '2:5')
set ylabel "peak RSS (MiB)"
plot $(plots size '2:7')
set ylabel "share of the two cores busy"
set yrange [0:1]
plot $(plots size '2:8')
set yrange [0:*]
unset multiplot

set output "$images/scaling-concurrency.png"
set multiplot layout 1,4 title "Concurrent 64 MiB uploads"
set xlabel "concurrent uploads"
set ylabel "aggregate MiB/s"
plot $(plots concurrency '2:3'), $disk with lines dashtype 2 title "disk bound (dd)", $direct with lines dashtype 3 title "radosgw bound (direct PUT)"
set ylabel "p99 latency (s)"
set logscale y 2
set yrange [*:*]
plot $(plots concurrency '2:5')
unset logscale y
set yrange [0:*]
set ylabel "peak RSS (MiB)"
plot $(plots concurrency '2:6'), 256 with lines dashtype 2 title "buffer budget (256 MiB)"
set ylabel "cores used (of 2)"
set yrange [0:2]
plot $(plots concurrency '2:7' | sed 's/title "\([a-z]*\)"/title "service, \1"/g')$store_cores
set yrange [0:*]
unset multiplot

set terminal pngcairo size 800,380 font "sans,10"
set output "$images/scaling-small.png"
set multiplot layout 1,2 title "1 KiB multipart uploads (wrk), against connections"
set xlabel "connections"
set ylabel "uploads/s"
plot $(plots small '2:3')
set ylabel "p99 latency (ms)"
set logscale y 10
set yrange [*:*]
plot $(plots small '2:5')
unset multiplot
unset logscale y

set terminal pngcairo size 500,380 font "sans,10"
set output "$images/scaling-idle.png"
set title "Idle keep-alive connections"
set logscale x 10
set xlabel "idle connections"
set ylabel "RSS (MiB)"
set yrange [0:*]
plot "$work/idle.dat" using 1:2 with linespoints title "RSS", "$work/idle.dat" using 1:3 with lines dashtype 2 title "before"
EOF
ls "$images"/scaling-*.png
