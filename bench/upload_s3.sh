#!/usr/bin/env bash
# Benchmark (issue 3): uploads through s3uploader into a real radosgw, against
# a direct `curl -T` of the same file to a presigned PUT URL on the same
# radosgw, in the same run (rounds alternate).
#   - throughput ratio service / direct for 1 GiB (target >= 0.9)
#   - peak server RSS for one 4 GiB upload with defaults (target <= 96 MiB)
#   - peak server RSS for 32 concurrent 256 MiB uploads (target <= budget + 64 MiB)
# Usage: bench/upload_s3.sh [rounds=3]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
scripts/install-deps --test
BUILD_DIR=build scripts/build -DS3UP_BUILD_BENCH=ON > /dev/null
bin=build/src/s3uploader
presign=build/bench/s3_presign
work=$(mktemp -d -p "$PWD/build" bench-s3-XXXXXX)
cleanup() {
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  scripts/peers/radosgw stop "$work/rgw" || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "starting radosgw..."
eval "$(scripts/peers/radosgw start "$work/rgw")"
export S3UP_S3_ENDPOINT="$S3UP_TEST_S3_ENDPOINT" AWS_ACCESS_KEY_ID="$S3UP_TEST_S3_ACCESS_KEY" \
  AWS_SECRET_ACCESS_KEY="$S3UP_TEST_S3_SECRET_KEY"
bucket=bench
curl -sf -X PUT "$("$presign" PUT "$bucket" "")" > /dev/null

echo "preparing input files..."
head -c $((1024 * 1024 * 1024)) /dev/urandom > "$work/1g.bin"
export S3UP_STORAGE="s3://$bucket/objects" S3UP_DATABASE="sqlite://$work/data/s3uploader.db"
"$bin" user add bench > /dev/null 2>&1
token=$("$bin" token create bench 2>/dev/null)

source bench/server.sh
peak_rss_mib() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$server_pid/status"; }
seconds() { date +%s.%N; }
rate() { awk -v m="$1" -v a="$2" -v b="$3" 'BEGIN {printf "%.1f", m / (b - a)}'; }

results=()
for round in $(seq "$rounds"); do
  url=$("$presign" PUT "$bucket" "direct/round-$round")
  t0=$(seconds)
  curl -sf -o /dev/null -T "$work/1g.bin" "$url"
  t1=$(seconds)
  direct=$(rate 1024 "$t0" "$t1")

  start_server
  t0=$(seconds)
  out=$(curl -sf -T "$work/1g.bin" -H "Authorization: Bearer $token" "http://127.0.0.1:$port/upload/1g.bin")
  t1=$(seconds)
  rss=$(peak_rss_mib)
  stop_server
  echo "$out" | grep -q '"file_size":1073741824' || { echo "upload failed: $out"; exit 1; }
  service=$(rate 1024 "$t0" "$t1")
  ratio=$(awk -v s="$service" -v d="$direct" 'BEGIN {printf "%.3f", s / d}')
  results+=("$round $service $direct $ratio $rss")
done

printf '\n1 GiB upload, curl -T\n%-6s %14s %18s %8s %14s\n' round "service MiB/s" "direct S3 MiB/s" ratio "peak RSS MiB"
for r in "${results[@]}"; do
  read -r n s d ratio rss <<< "$r"
  printf '%-6s %14s %18s %8s %14s\n' "$n" "$s" "$d" "$ratio" "$rss"
done
median_ratio=$(printf '%s\n' "${results[@]}" | awk '{print $4}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')

echo
echo "one 4 GiB upload (defaults)..."
rm -f "$work/1g.bin"
start_server
head -c $((4 * 1024 * 1024 * 1024)) /dev/urandom |
  curl -sf -o /dev/null -T - -H "Authorization: Bearer $token" "http://127.0.0.1:$port/upload/4g.bin"
rss_4g=$(peak_rss_mib)
stop_server

echo "32 concurrent 256 MiB uploads (defaults: 256 MiB buffer budget)..."
head -c $((256 * 1024 * 1024)) /dev/urandom > "$work/256m.bin"
start_server
pids=()
for i in $(seq 32); do
  curl -sf -o "$work/c$i.json" -T "$work/256m.bin" -H "Authorization: Bearer $token" \
    "http://127.0.0.1:$port/upload/c$i.bin" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
rss_32=$(peak_rss_mib)
stop_server
ok=$(grep -l '"file_size":268435456' "$work"/c*.json | wc -l)

printf '\nmedian ratio %s (target >= 0.9)\n' "$median_ratio"
printf 'peak RSS, one 4 GiB upload: %s MiB (target <= 96)\n' "$rss_4g"
printf 'peak RSS, 32 x 256 MiB concurrent: %s MiB (target <= 320), %s of 32 stored\n' "$rss_32" "$ok"

mkdir -p bench/results
{
  printf '{"benchmark":"upload_s3","date":"%s","rounds":[' "$(date -u +%FT%TZ)"
  sep=""
  for r in "${results[@]}"; do
    read -r n s d ratio rss <<< "$r"
    printf '%s{"round":%s,"service_mibs":%s,"direct_mibs":%s,"ratio":%s,"peak_rss_mib":%s}' "$sep" "$n" "$s" "$d" "$ratio" "$rss"
    sep=","
  done
  printf '],"median_ratio":%s,"peak_rss_4gib_mib":%s,"peak_rss_32x256mib_mib":%s,"concurrent_stored":%s}\n' \
    "$median_ratio" "$rss_4g" "$rss_32" "$ok"
} > bench/results/upload_s3.json
echo "raw results: bench/results/upload_s3.json"
