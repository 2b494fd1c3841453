#!/usr/bin/env bash
# Benchmark (issue 13): a large file uploaded through the web page (Uppy's
# Dashboard on the tus endpoint, in Debian's chromium driven by
# puppeteer-core) against `curl -T` to PUT /upload/ in the same run, rounds
# interleaved; the page's rate over curl's (target >= 0.8), local disk +
# SQLite. The page's time runs from the click on "Upload" to the file in
# the list. The bound is measured too: the same browser PUTting the same
# file with one fetch(), no Uppy, no tus.
#
# Usage: bench/web_upload.sh [size_mib=1024] [rounds=3]
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib="${1:-1024}"
rounds="${2:-3}"
scripts/install-deps --test
(cd bench/web && npm ci --no-audit --no-fund --loglevel=error > /dev/null)
bin=build/src/s3uploader
[ -x "$bin" ] || scripts/build
work=$(mktemp -d -p "$PWD/build" bench-web-XXXXXX)
cleanup() {
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
source bench/server.sh

size=$((size_mib * 1024 * 1024))
echo "preparing a ${size_mib} MiB input file..."
head -c "$size" /dev/urandom > "$work/page.bin"
cp "$work/page.bin" "$work/curl.bin"
cat "$work/page.bin" "$work/curl.bin" > /dev/null
export S3UP_STORAGE="file://$work/objects" S3UP_DATABASE="sqlite://$work/s3uploader.db"
"$bin" user add bench > /dev/null 2>&1
token=$("$bin" token create bench 2>/dev/null)
start_server

rate() { awk -v b="$size" -v s="$1" 'BEGIN {printf "%.1f", b / 1048576 / s}'; }
results=()
for round in $(seq "$rounds"); do
  t0=$(date +%s.%N)
  curl -sSf -o /dev/null -T "$work/curl.bin" -H "Authorization: Bearer $token" "http://127.0.0.1:$port/upload/"
  t1=$(date +%s.%N)
  curl_rate=$(rate "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')")
  page_seconds=$(node bench/web/upload.mjs "http://127.0.0.1:$port/" "$token" "$work/page.bin")
  page_rate=$(rate "$page_seconds")
  browser_rate=$(rate "$(node bench/web/upload.mjs "http://127.0.0.1:$port/" "$token" "$work/page.bin" raw)")
  results+=("$round $curl_rate $page_rate $browser_rate")
  echo "round $round: curl -T $curl_rate MiB/s, the page $page_rate MiB/s, the browser's own PUT $browser_rate MiB/s"
  # Each round uploads anew: the files go.
  for id in $(curl -sS -H "Authorization: Bearer $token" "http://127.0.0.1:$port/files" | grep -o '"file_id":"[^"]*"' | cut -d'"' -f4); do
    curl -sS -o /dev/null -X DELETE -H "Authorization: Bearer $token" "http://127.0.0.1:$port/files/$id"
  done
done
stop_server
median() { printf '%s\n' "${results[@]}" | awk -v f="$1" '{print $f}' | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
echo
echo "medians of $rounds rounds, $size_mib MiB: curl -T $(median 2) MiB/s, the page $(median 3) MiB/s, the browser's own PUT $(median 4) MiB/s"
echo "the page / curl -T = $(awk -v p="$(median 3)" -v c="$(median 2)" 'BEGIN {printf "%.2f", p / c}')   (target >= 0.8)"
echo "the page / the same browser's own PUT of the file = $(awk -v p="$(median 3)" -v c="$(median 4)" 'BEGIN {printf "%.2f", p / c}')   (the bound of a page in this browser on this machine)"
