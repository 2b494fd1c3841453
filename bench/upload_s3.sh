#!/usr/bin/env bash
# Benchmark (issues 3 and 25): 1 GiB uploads through s3uploader into a real
# radosgw, against `curl -T` of the same file straight to a presigned PUT URL
# on the same radosgw, over plain HTTP and over TLS, rounds interleaved.
# Each run records its wall time and the CPU seconds of all three parties:
# the store (radosgw + OSD + monitor), the service and the client (curl).
#   - throughput, and its ratio to the direct PUT over the same transport
#   - the service's CPU seconds per GiB, once per way of checking parts
#     (s3_part_checksum sha256 and crc32c over HTTP; crc32c, what `auto`
#     picks, over TLS)
#   - the machine's bound: the three parties share two cores, so no run can
#     beat 2 cores / (their CPU seconds per GiB); each run prints that
#     bound and its throughput's share of it
#   - peak server RSS for one upload; one 4 GiB upload with defaults
#     (target <= 96 MiB); 32 concurrent 256 MiB uploads (<= budget + 64 MiB)
# With S3UP_BENCH_BASELINE=/path/to/another/s3uploader (an older build), each
# round also uploads through that binary (sha256 parts over HTTP).
# Usage: bench/upload_s3.sh [rounds=3]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
source bench/s3_peer.sh s3
http_endpoint=$S3UP_S3_ENDPOINT
tls_endpoint=$S3UP_TEST_S3_TLS_ENDPOINT
ca_file=$S3UP_TEST_S3_CA_FILE

echo "preparing input files..."
head -c $((1024 * 1024 * 1024)) /dev/urandom > "$work/1g.bin"
export S3UP_STORAGE="s3://$bucket/objects" S3UP_DATABASE="sqlite://$work/data/s3uploader.db"
"$bin" migrate > /dev/null 2>&1  # admin commands want an existing database
"$bin" user add bench > /dev/null 2>&1
token=$("$bin" token create bench 2>/dev/null)

seconds() { date +%s.%N; }

# CPU seconds (user + system) used so far by the store's processes, or by one pid.
store_cpu() { cpu_of_pids $(cat "$work"/rgw/run/*.pid); }

# timed_curl ARGS...   runs curl; sets $wall, $store_s and $client_s.
timed_curl() {
  local s0 t0 t1
  s0=$(store_cpu); t0=$(seconds)
  /usr/bin/time -f "%U %S" -o "$work/curl-time" curl -sf "$@" > "$work/curl-out"
  t1=$(seconds)
  wall=$(calc "$t1 - $t0" 3)
  store_s=$(calc "$(store_cpu) - $s0")
  client_s=$(awk '{printf "%.2f", $1 + $2}' "$work/curl-time")
}

# One run; appends "label MiB/s store service client rss" to $rows.
direct_run() {  # direct_run TRANSPORT
  local endpoint=$http_endpoint tls=()
  if [ "$1" = tls ]; then endpoint=$tls_endpoint tls=(--cacert "$ca_file"); fi
  local url
  url=$(S3UP_S3_ENDPOINT=$endpoint "$presign" PUT "$bucket" "direct/$1")
  timed_curl -o /dev/null -T "$work/1g.bin" "${tls[@]}" "$url"
  rows+=("direct:$1 $(calc "1024 / $wall" 1) $store_s 0 $client_s -")
}
service_run() {  # service_run LABEL TRANSPORT CHECKSUM [BINARY]
  local endpoint=$http_endpoint c0
  [ "$2" = tls ] && endpoint=$tls_endpoint
  bin=${4:-$bin} S3UP_S3_ENDPOINT=$endpoint S3UP_S3_CA_FILE=$ca_file S3UP_S3_PART_CHECKSUM=$3 start_server
  c0=$(cpu_of_pids "$server_pid")
  timed_curl -T "$work/1g.bin" -H "Authorization: Bearer $token" "http://127.0.0.1:$port/upload/1g.bin"
  local svc rss
  svc=$(calc "$(cpu_of_pids "$server_pid") - $c0")
  rss=$(peak_rss_mib)
  stop_server
  grep -q '"file_size":1073741824' "$work/curl-out" || { echo "upload failed: $(cat "$work/curl-out")" >&2; exit 1; }
  rows+=("$1:$2 $(calc "1024 / $wall" 1) $store_s $svc $client_s $rss")
}

rows=()
baseline=$(realpath "${S3UP_BENCH_BASELINE:-}" 2> /dev/null || true)
for round in $(seq "$rounds"); do
  echo "round $round..."
  direct_run http
  service_run sha256 http sha256
  service_run crc32c http crc32c
  if [ -n "$baseline" ]; then service_run baseline http sha256 "$baseline"; fi
  direct_run tls
  service_run crc32c tls crc32c
done

# The table: each run with its transport's direct PUT of the same round.
printf '\n1 GiB upload, curl -T; CPU in seconds (store = radosgw + OSD + monitor)\n'
printf '%-6s %-16s %8s %6s %7s %7s %7s %9s %7s %8s\n' round run MiB/s ratio store svc client "bound" share "RSS MiB"
declare -A direct_rate
json=""
round=0
for r in "${rows[@]}"; do
  read -r label mibs store svc client rss <<< "$r"
  transport=${label#*:}
  if [ "${label%%:*}" = direct ] && [ "$transport" = http ]; then round=$((round + 1)); fi
  if [ "${label%%:*}" = direct ]; then direct_rate[$transport]=$mibs; fi
  ratio=$(calc "$mibs / ${direct_rate[$transport]}" 3)
  # Two cores shared by the three parties: the most any run could do.
  bound=$(calc "2 * 1024 / ($store + $svc + $client)" 1)
  share=$(calc "$mibs / $bound" 3)
  printf '%-6s %-16s %8s %6s %7s %7s %7s %9s %7s %8s\n' "$round" "$label" "$mibs" "$ratio" "$store" "$svc" "$client" \
    "$bound" "$share" "$rss"
  json+="${json:+,}{\"round\":$round,\"run\":\"$label\",\"mibs\":$mibs,\"ratio\":$ratio,\"store_cpu_s\":$store,"
  json+="\"service_cpu_s\":$svc,\"client_cpu_s\":$client,\"bound_mibs\":$bound,\"share_of_bound\":$share,"
  json+="\"peak_rss_mib\":\"$rss\"}"
done

# Medians per run over the rounds.
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
median_of() {  # median_of LABEL FIELD (2 MiB/s, 4 service CPU)
  for r in "${rows[@]}"; do
    read -r -a f <<< "$r"
    if [ "${f[0]}" = "$1" ]; then echo "${f[$2 - 1]}"; fi
  done | median
}
printf '\nmedians: run, MiB/s, service CPU-s per GiB\n'
for label in direct:http sha256:http crc32c:http baseline:http direct:tls crc32c:tls; do
  m=$(median_of "$label" 2)
  if [ -n "$m" ]; then printf '  %-14s %8s %6s\n' "$label" "$m" "$(median_of "$label" 4)"; fi
done

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

printf 'peak RSS, one 4 GiB upload: %s MiB (target <= 96)\n' "$rss_4g"
printf 'peak RSS, 32 x 256 MiB concurrent: %s MiB (target <= 320), %s of 32 stored\n' "$rss_32" "$ok"

mkdir -p bench/results
printf '{"benchmark":"upload_s3","date":"%s","runs":[%s],"peak_rss_4gib_mib":%s,"peak_rss_32x256mib_mib":%s,"concurrent_stored":%s}\n' \
  "$(date -u +%FT%TZ)" "$json" "$rss_4g" "$rss_32" "$ok" > bench/results/upload_s3.json
echo "raw results: bench/results/upload_s3.json"
