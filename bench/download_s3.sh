#!/usr/bin/env bash
# Benchmark (issue 11): a 1 GiB download from radosgw through s3uploader
# (GET /files/{id}/content, streamed from one ranged GetObject) against a
# direct `curl` GET of the same object by a presigned URL, in the same run,
# rounds alternating. Target: service >= 0.8 x direct. Also the server's peak
# RSS during the downloads (the stream holds one piece, not the object).
# With S3UP_BENCH_BASELINE=/path/to/older/s3uploader the older build is
# measured in the same rounds (before/after).
# Usage: bench/download_s3.sh [rounds=3]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
source bench/s3_peer.sh dl

export S3UP_STORAGE="s3://$bucket/objects" S3UP_DATABASE="sqlite://$work/data/s3uploader.db"
"$bin" migrate > /dev/null 2>&1  # admin commands want an existing database
"$bin" user add bench > /dev/null 2>&1
token=$("$bin" token create bench 2>/dev/null)
bench_binaries

echo "uploading 1 GiB through the service..."
start_server
out=$(head -c $((1024 * 1024 * 1024)) /dev/urandom |
  curl -sf -T - -H "Authorization: Bearer $token" "http://127.0.0.1:$port/upload/1g.bin")
stop_server
file_id=$(echo "$out" | sed -n 's/.*"file_id":"\([^"]*\)".*/\1/p')
sha=$(echo "$out" | sed -n 's/.*"sha256":"\([^"]*\)".*/\1/p')
[ -n "$file_id" ] || { echo "upload failed: $out" >&2; exit 1; }
key="objects/u/1/$file_id"

seconds() { date +%s.%N; }
rate() { awk -v m="$1" -v a="$2" -v b="$3" 'BEGIN {printf "%.1f", m / (b - a)}'; }
ratio() { awk -v s="$1" -v d="$2" 'BEGIN {printf "%.3f", s / d}'; }

# One timed download through the binary `$1` (to /dev/null, as the direct
# one: hashing in the pipe would be the bottleneck); prints "MiB/s peak-rss".
service_round() {
  local t0 t1
  bin="$1" start_server
  t0=$(seconds)
  curl -sf -o /dev/null -H "Authorization: Bearer $token" "http://127.0.0.1:$port/files/$file_id/content"
  t1=$(seconds)
  echo "$(rate 1024 "$t0" "$t1") $(peak_rss_mib)"
  stop_server
}

# Each binary's download is the uploaded bytes (checked once, untimed).
for entry in "${binaries[@]}"; do
  bin="${entry#*:}" start_server
  got=$(curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$port/files/$file_id/content" | sha256sum)
  stop_server
  [ "${got%% *}" = "$sha" ] || { echo "download through ${entry%%:*} is not the uploaded bytes" >&2; exit 1; }
done

results=()
for round in $(seq "$rounds"); do
  url=$("$presign" GET "$bucket" "$key")
  t0=$(seconds)
  curl -sf -o /dev/null "$url"
  t1=$(seconds)
  line="$round $(rate 1024 "$t0" "$t1")"
  for entry in "${binaries[@]}"; do line+=" $(service_round "${entry#*:}")"; done
  results+=("$line")
done

printf '\n1 GiB download: direct presigned GET vs through the service (MiB/s, ratio, peak RSS MiB)\n'
header="round  direct"
for entry in "${binaries[@]}"; do header+="  ${entry%%:*}: MiB/s ratio rss"; done
echo "$header"
for r in "${results[@]}"; do
  read -r -a f <<< "$r"
  line="${f[0]}      ${f[1]}"
  for i in "${!binaries[@]}"; do
    s=${f[$((2 + 2 * i))]}
    line+="  $s $(ratio "$s" "${f[1]}") ${f[$((3 + 2 * i))]}"
  done
  echo "$line"
done
for i in "${!binaries[@]}"; do
  printf 'median ratio %s: %s (target >= 0.8)\n' "${binaries[$i]%%:*}" \
    "$(for r in "${results[@]}"; do read -r -a f <<< "$r"; ratio "${f[$((2 + 2 * i))]}" "${f[1]}"; echo; done |
      sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')"
done

mkdir -p bench/results
{
  printf '{"benchmark":"download_s3","date":"%s","rounds":[' "$(date -u +%FT%TZ)"
  sep=""
  for r in "${results[@]}"; do
    read -r -a f <<< "$r"
    printf '%s{"round":%s,"direct_mibs":%s' "$sep" "${f[0]}" "${f[1]}"
    for i in "${!binaries[@]}"; do
      printf ',"%s":{"service_mibs":%s,"ratio":%s,"peak_rss_mib":%s}' "${binaries[$i]%%:*}" \
        "${f[$((2 + 2 * i))]}" "$(ratio "${f[$((2 + 2 * i))]}" "${f[1]}")" "${f[$((3 + 2 * i))]}"
    done
    printf '}'
    sep=","
  done
  printf ']}\n'
} > bench/results/download_s3.json
echo "raw results: bench/results/download_s3.json"
