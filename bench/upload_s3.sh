#!/usr/bin/env bash
# Benchmark (issue 3): uploads through s3uploader into a real radosgw, against
# a direct `curl -T` of the same file to a presigned PUT URL on the same
# radosgw, in the same run (rounds alternate).
#   - throughput ratio service / direct for 1 GiB (target >= 0.9), once per
#     way of checking parts (S3UP_S3_PART_CHECKSUM=sha256, the default, and md5)
#   - CPU seconds per GiB spent by the store (radosgw + OSD + monitor) and by
#     the service in each run: on a machine the store shares, the ratio can be
#     no better than the direct run's CPU over the service run's
#   - peak server RSS for one 4 GiB upload with defaults (target <= 96 MiB)
#   - peak server RSS for 32 concurrent 256 MiB uploads (target <= budget + 64 MiB)
# With S3UP_BENCH_BASELINE=/path/to/another/s3uploader (an older build), each
# round also uploads through that binary (sha256 parts), for before/after.
# Usage: bench/upload_s3.sh [rounds=3]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
source bench/s3_peer.sh s3

echo "preparing input files..."
head -c $((1024 * 1024 * 1024)) /dev/urandom > "$work/1g.bin"
export S3UP_STORAGE="s3://$bucket/objects" S3UP_DATABASE="sqlite://$work/data/s3uploader.db"
"$bin" migrate > /dev/null 2>&1  # admin commands want an existing database
"$bin" user add bench > /dev/null 2>&1
token=$("$bin" token create bench 2>/dev/null)

peak_rss_mib() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$server_pid/status"; }
seconds() { date +%s.%N; }
rate() { awk -v m="$1" -v a="$2" -v b="$3" 'BEGIN {printf "%.1f", m / (b - a)}'; }

# CPU seconds (user + system) used so far by the store's processes, or by one pid.
tick=$(getconf CLK_TCK)
cpu_of_pids() { for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done | awk -v t="$tick" '{s += $1} END {printf "%.2f", s / t}'; }
store_cpu() { cpu_of_pids $(cat "$work"/rgw/run/*.pid); }
minus() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b - a}'; }

# One timed service upload of the 1 GiB file; prints "MiB/s store-cpu service-cpu peak-rss".
service_round() {
  S3UP_S3_PART_CHECKSUM="$1" start_server
  local s0 c0 t0 t1 out
  s0=$(store_cpu); c0=$(cpu_of_pids "$server_pid"); t0=$(seconds)
  out=$(curl -sf -T "$work/1g.bin" -H "Authorization: Bearer $token" "http://127.0.0.1:$port/upload/1g.bin")
  t1=$(seconds)
  echo "$(rate 1024 "$t0" "$t1") $(minus "$s0" "$(store_cpu)") $(minus "$c0" "$(cpu_of_pids "$server_pid")") $(peak_rss_mib)"
  stop_server
  echo "$out" | grep -q '"file_size":1073741824' || { echo "upload failed: $out" >&2; exit 1; }
}

results=()
for round in $(seq "$rounds"); do
  url=$("$presign" PUT "$bucket" "direct/round-$round")
  s0=$(store_cpu); t0=$(seconds)
  curl -sf -o /dev/null -T "$work/1g.bin" "$url"
  t1=$(seconds)
  direct="$(rate 1024 "$t0" "$t1") $(minus "$s0" "$(store_cpu)")"
  sha=$(service_round sha256)
  md5=$(service_round md5)
  base=""
  if [ -n "${S3UP_BENCH_BASELINE:-}" ]; then base=$(bin="$S3UP_BENCH_BASELINE" service_round sha256); fi
  results+=("$round $direct $sha $md5 $base")
done

ratio() { awk -v s="$1" -v d="$2" 'BEGIN {printf "%.3f", s / d}'; }
printf '\n1 GiB upload, curl -T; CPU in seconds per GiB (store = radosgw + OSD + monitor)\n'
printf '%-6s %-22s %-40s %-40s\n' round "direct: MiB/s store" "service sha256: MiB/s ratio store svc" "service md5: MiB/s ratio store svc"
for r in "${results[@]}"; do
  read -r n d dcpu s scpu svc rss m mcpu mvc mrss b bcpu bsvc brss <<< "$r"
  printf '%-6s %-22s %-40s %-40s' "$n" "$d $dcpu" "$s $(ratio "$s" "$d") $scpu $svc" "$m $(ratio "$m" "$d") $mcpu $mvc"
  if [ -n "$b" ]; then printf '  baseline sha256: %s %s %s %s' "$b" "$(ratio "$b" "$d")" "$bcpu" "$bsvc"; fi
  printf '\n'
done
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
median_ratio=$(for r in "${results[@]}"; do read -r n d dcpu s rest <<< "$r"; ratio "$s" "$d"; echo; done | median)
median_ratio_md5=$(for r in "${results[@]}"; do read -r n d dcpu s scpu svc rss m rest <<< "$r"; ratio "$m" "$d"; echo; done | median)
median_ratio_baseline=$(for r in "${results[@]}"; do
  read -r n d dcpu s scpu svc rss m mcpu mvc mrss b rest <<< "$r"
  if [ -n "$b" ]; then ratio "$b" "$d"; echo; fi
done | median)
# The CPU bound: the direct run's CPU (store + curl's ~0.7 s left out, which
# only flatters the bound) over the service run's (store + service).
cpu_bound=$(for r in "${results[@]}"; do read -r n d dcpu s scpu svc rest <<< "$r"; awk -v a="$dcpu" -v b="$scpu" -v c="$svc" 'BEGIN {printf "%.3f\n", a / (b + c)}'; done | median)

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

printf '\nmedian ratio %s with sha256 parts, %s with md5 parts (target >= 0.9)\n' "$median_ratio" "$median_ratio_md5"
if [ -n "$median_ratio_baseline" ]; then
  printf 'median ratio of the baseline build, sha256 parts: %s\n' "$median_ratio_baseline"
fi
printf 'CPU bound on this machine (direct store CPU / service run store + service CPU): %s\n' "$cpu_bound"
printf 'peak RSS, one 4 GiB upload: %s MiB (target <= 96)\n' "$rss_4g"
printf 'peak RSS, 32 x 256 MiB concurrent: %s MiB (target <= 320), %s of 32 stored\n' "$rss_32" "$ok"

mkdir -p bench/results
{
  printf '{"benchmark":"upload_s3","date":"%s","rounds":[' "$(date -u +%FT%TZ)"
  sep=""
  for r in "${results[@]}"; do
    read -r n d dcpu s scpu svc rss m mcpu mvc mrss b bcpu bsvc brss <<< "$r"
    printf '%s{"round":%s,"direct_mibs":%s,"direct_store_cpu_s":%s,' "$sep" "$n" "$d" "$dcpu"
    if [ -n "$b" ]; then
      printf '"baseline_sha256":{"service_mibs":%s,"ratio":%s,"store_cpu_s":%s,"service_cpu_s":%s,"peak_rss_mib":%s},' \
        "$b" "$(ratio "$b" "$d")" "$bcpu" "$bsvc" "$brss"
    fi
    printf '"sha256":{"service_mibs":%s,"ratio":%s,"store_cpu_s":%s,"service_cpu_s":%s,"peak_rss_mib":%s},' \
      "$s" "$(ratio "$s" "$d")" "$scpu" "$svc" "$rss"
    printf '"md5":{"service_mibs":%s,"ratio":%s,"store_cpu_s":%s,"service_cpu_s":%s,"peak_rss_mib":%s}}' \
      "$m" "$(ratio "$m" "$d")" "$mcpu" "$mvc" "$mrss"
    sep=","
  done
  printf '],"median_ratio":%s,"median_ratio_md5":%s,"cpu_bound":%s,' "$median_ratio" "$median_ratio_md5" "$cpu_bound"
  printf '"peak_rss_4gib_mib":%s,"peak_rss_32x256mib_mib":%s,"concurrent_stored":%s}\n' "$rss_4g" "$rss_32" "$ok"
} > bench/results/upload_s3.json
echo "raw results: bench/results/upload_s3.json"
