#!/usr/bin/env bash
# Benchmark (issue 13): a large file uploaded by the two clients for people,
# each over tus, against `curl -T` to PUT /upload/ in the same run, rounds
# interleaved, local disk + SQLite (target for both: >= 0.8 of curl):
#   - the web page (Uppy's Dashboard in Debian's chromium, driven by
#     puppeteer-core), timed from the click on "Upload" to the file in the
#     list; its bound is measured too: the same browser PUTting the same
#     file with one fetch(), no Uppy, no tus;
#   - `s3uploader push` with its default checksum per chunk (CRC-32), with
#     SHA-256, and with none (the bound: the tus path without checksums).
# The client's peak RSS is printed with its rate.
#
# Usage: bench/web_upload.sh [size_mib=1024] [rounds=3]
#   S3UP_BENCH_BROWSER=0 skips the page (the CLI alone).
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib="${1:-1024}"
rounds="${2:-3}"
scripts/install-deps --test
(cd bench/web && npm ci --no-audit --no-fund --loglevel=error > /dev/null)
bin=build/src/s3uploader
[ -x "$bin" ] || scripts/build
source bench/server.sh
bench_workdir web

size=$((size_mib * 1024 * 1024))
echo "preparing a ${size_mib} MiB input file..."
head -c "$size" /dev/urandom > "$work/page.bin"
cp "$work/page.bin" "$work/curl.bin"
cat "$work/page.bin" "$work/curl.bin" > /dev/null
export S3UP_STORAGE="file://$work/objects" S3UP_DATABASE="sqlite://$work/s3uploader.db"
"$bin" migrate > /dev/null 2>&1  # admin commands want an existing database
"$bin" user add bench > /dev/null 2>&1
token=$("$bin" token create bench 2>/dev/null)
start_server

rate() { awk -v b="$size" -v s="$1" 'BEGIN {printf "%.1f", b / 1048576 / s}'; }
browser="${S3UP_BENCH_BROWSER:-1}"
# `s3uploader push` with a checksum; prints "<MiB/s> <peak RSS MiB>". Its
# own HOME: no resumable state from an earlier round.
push_rate() {
  local home="$work/home-$RANDOM"
  mkdir -p "$home"
  local t0 t1
  t0=$(date +%s.%N)
  HOME="$home" S3UP_SERVER="http://127.0.0.1:$port" S3UP_TOKEN="$token" \
    /usr/bin/time -f "%M" -o "$work/push.rss" "$bin" push "$work/curl.bin" --checksum "$1" > /dev/null
  t1=$(date +%s.%N)
  echo "$(rate "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')") $(awk '{printf "%.0f", $1 / 1024}' "$work/push.rss")"
}
results=()
for round in $(seq "$rounds"); do
  t0=$(date +%s.%N)
  curl -sSf -o /dev/null -T "$work/curl.bin" -H "Authorization: Bearer $token" "http://127.0.0.1:$port/upload/"
  t1=$(date +%s.%N)
  curl_rate=$(rate "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')")
  page_rate=0 browser_rate=0
  if [ "$browser" != 0 ]; then
    page_seconds=$(node bench/web/upload.mjs "http://127.0.0.1:$port/" "$token" "$work/page.bin")
    page_rate=$(rate "$page_seconds")
    browser_rate=$(rate "$(node bench/web/upload.mjs "http://127.0.0.1:$port/" "$token" "$work/page.bin" raw)")
  fi
  read -r cli_rate cli_rss < <(push_rate auto)
  read -r sha_rate sha_rss < <(push_rate sha256)
  read -r none_rate none_rss < <(push_rate none)
  results+=("$round $curl_rate $page_rate $browser_rate $cli_rate $sha_rate $none_rate $cli_rss")
  echo "round $round: curl -T $curl_rate MiB/s, the page $page_rate MiB/s, the browser's own PUT $browser_rate MiB/s," \
    "push (crc32) $cli_rate MiB/s (peak RSS $cli_rss MiB), push --checksum sha256 $sha_rate, push --checksum none $none_rate"
  # Each round uploads anew: the files go.
  for id in $(curl -sS -H "Authorization: Bearer $token" "http://127.0.0.1:$port/files" | grep -o '"file_id":"[^"]*"' | cut -d'"' -f4); do
    curl -sS -o /dev/null -X DELETE -H "Authorization: Bearer $token" "http://127.0.0.1:$port/files/$id"
  done
done
stop_server
median() { printf '%s\n' "${results[@]}" | awk -v f="$1" '{print $f}' | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
ratio() { awk -v p="$(median "$1")" -v c="$(median "$2")" 'BEGIN {printf "%.2f", p / c}'; }
echo
echo "medians of $rounds rounds, $size_mib MiB: curl -T $(median 2) MiB/s; the page $(median 3), the browser's own PUT $(median 4);" \
  "push $(median 5) (peak RSS $(median 8) MiB), with sha256 $(median 6), without checksums $(median 7)"
if [ "$browser" != 0 ]; then
  echo "the page / curl -T = $(ratio 3 2)   (target >= 0.8)"
  echo "the page / the same browser's own PUT of the file = $(ratio 3 4)   (the bound of a page in this browser on this machine)"
fi
echo "push / curl -T = $(ratio 5 2)   (target >= 0.8)"
echo "push --checksum sha256 / curl -T = $(ratio 6 2);  push --checksum none / curl -T = $(ratio 7 2)   (the tus path's bound)"
