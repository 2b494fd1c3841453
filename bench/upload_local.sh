#!/usr/bin/env bash
# Benchmark (issue 2): a 2 GiB multipart upload with curl through s3uploader on
# the embedded default (local disk + SQLite), against this machine's own limits
# measured in the same run:
#   - SHA-256 speed (openssl speed -evp sha256, 64 KiB blocks), and
#   - a durable write of the same bytes (dd ... conv=fsync) to the same disk
#     (the input file itself, not /dev/zero: zeros are cheaper for some disks).
# Reports upload throughput as a ratio to the smaller of the two (target >= 0.7)
# and the server's peak RSS (VmHWM) during the upload (target <= 64 MiB).
# Rounds alternate baseline and upload so drift hits both alike. With
# S3UP_BENCH_BASELINE=/path/to/another/s3uploader (an older build), each round
# also uploads through that binary, for before/after in the same run.
#
# Usage: bench/upload_local.sh [size_mib=2048] [rounds=3]
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib="${1:-2048}"
rounds="${2:-3}"
scripts/install-deps --test  # openssl (speed) among them
bin=build/src/s3uploader
[ -x "$bin" ] || scripts/build
source bench/server.sh
bench_workdir local

echo "preparing a ${size_mib} MiB input file..."
head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$work/input.bin"
cat "$work/input.bin" > /dev/null  # into the page cache: both dd and curl read it from there

bench_binaries
declare -A tokens
for entry in "${binaries[@]}"; do
  label=${entry%%:*}
  S3UP_DATABASE="sqlite://$work/data-$label/s3uploader.db" "${entry#*:}" migrate > /dev/null 2>&1  # then admin commands find it
  S3UP_DATABASE="sqlite://$work/data-$label/s3uploader.db" "${entry#*:}" user add bench > /dev/null 2>&1
  tokens[$label]=$(S3UP_DATABASE="sqlite://$work/data-$label/s3uploader.db" "${entry#*:}" token create bench 2>/dev/null)
done


sha_mbs=$(openssl speed -evp sha256 -bytes 65536 -seconds 3 2>/dev/null | awk '/^sha256/ {sub("k","",$2); printf "%.1f", $2*1000/1048576}')

results=()
for round in $(seq "$rounds"); do
  sync
  t0=$(date +%s.%N)
  dd if="$work/input.bin" of="$work/dd.bin" bs=1M conv=fsync status=none
  t1=$(date +%s.%N)
  rm -f "$work/dd.bin"
  dd_mbs=$(awk -v s="$size_mib" -v a="$t0" -v b="$t1" 'BEGIN {print s / (b - a)}')

  for entry in "${binaries[@]}"; do
    label=${entry%%:*}
    bin=${entry#*:}
    export S3UP_STORAGE="file://$work/data-$label/objects" S3UP_DATABASE="sqlite://$work/data-$label/s3uploader.db"
    start_server
    sync
    t0=$(date +%s.%N)
    out=$(curl -sS -F "file=@$work/input.bin" -H "Authorization: Bearer ${tokens[$label]}" "http://127.0.0.1:$port/upload")
    t1=$(date +%s.%N)
    peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")
    stop_server
    echo "$out" | grep -q '"file_size":'"$((size_mib * 1024 * 1024))" || { echo "upload failed: $out"; exit 1; }
    up_mbs=$(awk -v s="$size_mib" -v a="$t0" -v b="$t1" 'BEGIN {print s / (b - a)}')
    ratio=$(awk -v u="$up_mbs" -v d="$dd_mbs" -v h="$sha_mbs" 'BEGIN {f = d < h ? d : h; print u / f}')
    results+=("$(printf '%d %s %.1f %.1f %.1f %.3f %.1f' "$round" "$label" "$up_mbs" "$dd_mbs" "$sha_mbs" "$ratio" "$(awk -v k="$peak_kib" 'BEGIN {print k / 1024}')")")
    rm -rf "$work/data-$label/objects"
  done
done

printf '\n%-6s %-9s %12s %16s %16s %8s %14s\n' round binary "upload MiB/s" "dd fsync MiB/s" "sha256 MiB/s" ratio "peak RSS MiB"
for r in "${results[@]}"; do
  read -r n label up dd sha ratio rss <<< "$r"
  printf '%-6s %-9s %12s %16s %16s %8s %14s\n' "$n" "$label" "$up" "$dd" "$sha" "$ratio" "$rss"
done
for entry in "${binaries[@]}"; do
  label=${entry%%:*}
  m=$(printf '%s\n' "${results[@]}" | awk -v l="$label" '$2 == l {print $6}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  r=$(printf '%s\n' "${results[@]}" | awk -v l="$label" '$2 == l {print $7}' | sort -n | tail -1)
  printf '%-9s median ratio %s (target >= 0.7), max peak RSS %s MiB (target <= 64)\n' "$label" "$m" "$r"
  if [ "$label" = current ]; then median_ratio=$m; max_rss=$r; fi
done

mkdir -p bench/results
{
  printf '{"benchmark":"upload_local","size_mib":%s,"date":"%s","rounds":[' "$size_mib" "$(date -u +%FT%TZ)"
  sep=""
  for r in "${results[@]}"; do
    read -r n label up dd sha ratio rss <<< "$r"
    printf '%s{"round":%s,"binary":"%s","upload_mibs":%s,"dd_fsync_mibs":%s,"sha256_mibs":%s,"ratio":%s,"peak_rss_mib":%s}' \
      "$sep" "$n" "$label" "$up" "$dd" "$sha" "$ratio" "$rss"
    sep=","
  done
  printf '],"median_ratio":%s,"max_peak_rss_mib":%s}\n' "$median_ratio" "$max_rss"
} > bench/results/upload_local.json
echo "raw results: bench/results/upload_local.json"
