#!/usr/bin/env bash
# Benchmark: memory under a slow-drip attack on the local-disk store. 150
# uploads each declare 8 MiB, send 2 MiB and pause (bench/slow_drip.py), then
# send the rest. Reports the server's RSS before, its peak while they stall,
# its peak by the end, and how many were stored, with the default budget
# (256 MiB) and a small one (32 MiB). Target: peak RSS under buffer_budget +
# 64 MiB. The minimum body rate is off here (S3UP_MIN_BODY_RATE=0), so what
# bounds memory is the budget alone; with it on, stalled uploads are also cut
# off after min_body_rate_window.
# With S3UP_BENCH_BASELINE=/path/to/another/s3uploader (an older build), every
# run is repeated with that binary, in the same invocation, for before/after.
#
# Usage: bench/slow_drip.sh [uploads=150] [size_mib=8] [first_mib=2] [pause_s=5]
set -euo pipefail
cd "$(dirname "$0")/.."
uploads="${1:-150}"
size_mib="${2:-8}"
first_mib="${3:-2}"
pause="${4:-5}"
scripts/install-deps --test
bin=build/src/s3uploader
[ -x "$bin" ] || scripts/build
source bench/server.sh
bench_workdir drip

bench_binaries
results=()
export S3UP_MIN_BODY_RATE=0
for budget in 256MiB 32MiB; do
  for entry in "${binaries[@]}"; do
    label=${entry%%:*}
    bin=${entry#*:}
    dir="$work/$label-$budget"
    export S3UP_STORAGE="file://$dir/objects" S3UP_DATABASE="sqlite://$dir/s3uploader.db" S3UP_BUFFER_BUDGET=$budget
    mkdir -p "$dir"
    "$bin" migrate > /dev/null 2>&1  # admin commands want an existing database
    "$bin" user add drip > /dev/null 2>&1
    token=$("$bin" token create drip 2>/dev/null)
    start_server "$work/server-$label-$budget.log"
    echo "== $label, buffer_budget $budget: $uploads uploads of $size_mib MiB stall after $first_mib MiB"
    read -r before stalled peak stored < <(python3 bench/slow_drip.py "$port" "$token" "$server_pid" \
      "$uploads" "$size_mib" "$first_mib" "$pause")
    stop_server
    limit=$(awk -v b="${budget%MiB}" 'BEGIN {print b + 64}')
    results+=("$label $budget $before $stalled $peak $limit $stored/$uploads")
  done
done

row='%-9s %-8s %12s %18s %15s %15s %8s\n'
# shellcheck disable=SC2059
printf "\n$row" binary budget "RSS before" "peak RSS stalled" "peak RSS end" "target (MiB)" stored
for r in "${results[@]}"; do
  # shellcheck disable=SC2086,SC2059
  printf "$row" $r
done
echo "(MiB; target: buffer_budget + 64 MiB)"

mkdir -p bench/results
{
  printf '{"benchmark":"slow_drip","date":"%s","uploads":%s,"size_mib":%s,"first_mib":%s,"runs":[' \
    "$(date -u +%FT%TZ)" "$uploads" "$size_mib" "$first_mib"
  sep=""
  for r in "${results[@]}"; do
    read -r label budget before stalled peak limit stored <<< "$r"
    printf '%s{"binary":"%s","buffer_budget":"%s","rss_before_mib":%s,"peak_rss_stalled_mib":%s,"peak_rss_end_mib":%s,"target_mib":%s,"stored":"%s"}' \
      "$sep" "$label" "$budget" "$before" "$stalled" "$peak" "$limit" "$stored"
    sep=","
  done
  printf ']}\n'
} > bench/results/slow_drip.json
echo "raw results: bench/results/slow_drip.json"
