#!/usr/bin/env bash
# Benchmark (issue 12): s3uploader's tus endpoint against its own PUT /upload
# and against @tus/server (the reference tus server for Node, with its file
# and S3 stores, installed from bench/tus/package-lock.json), the same file,
# the same client (curl, keep-alive across a chunked upload's PATCHes), rounds
# interleaved, medians of `rounds`:
#   local disk (+ SQLite):  PUT /upload, tus in one PATCH, tus in 50 MiB
#                           PATCHes, @tus/server + @tus/file-store (one PATCH)
#   radosgw:                PUT /upload, tus in one PATCH, @tus/server +
#                           @tus/s3-store (one PATCH), and the store's own
#                           rate: a presigned PUT straight to it (the bound)
# For each run: MiB/s, the server's peak RSS, its CPU seconds, and what it
# wrote to local disk (/proc/PID/io write_bytes; on S3 the service's SQLite
# file is on tmpfs, so what counts is only a spool of the bytes).
# Then one tus upload of `big` MiB into radosgw (peak RSS, local writes), and
# 1 KiB uploads by creation-with-upload over 64 connections (wrk) against
# both servers' local stores, every acknowledged upload counted on disk.
# The bounds of this machine are printed too: the disk's fsync'd write rate,
# the store's own rate, and the service's own single-shot 1 KiB uploads.
#
# Usage: bench/tus.sh [size_mib=1024] [rounds=3] [big_mib=4096] [wrk_seconds=15]
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib="${1:-1024}"
rounds="${2:-3}"
big_mib="${3:-4096}"
wrk_seconds="${4:-15}"
source bench/s3_peer.sh tus
peers_dir=bench/tus
(cd "$peers_dir" && npm ci --no-audit --no-fund --loglevel=error > /dev/null)
tus_bucket=bench-tus
curl -sf -X PUT "$("$presign" PUT "$tus_bucket" "")" > /dev/null

size=$((size_mib * 1024 * 1024))
chunk=$((50 * 1024 * 1024))
echo "preparing a ${size_mib} MiB input file and its 50 MiB pieces..."
head -c "$size" /dev/urandom > "$work/input.bin"
mkdir -p "$work/pieces"
split -b "$chunk" -d -a 3 "$work/input.bin" "$work/pieces/p"
cat "$work/input.bin" "$work"/pieces/* > /dev/null  # into the page cache
input_sha=$(sha256sum "$work/input.bin" | cut -d' ' -f1)

tick=$(getconf CLK_TCK)
# "peak-RSS-MiB CPU-seconds local-write-MiB" of a running process.
process_stats() {
  local pid=$1
  local rss cpu wrote
  rss=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
  cpu=$(awk -v t="$tick" '{printf "%.2f", ($14 + $15) / t}' "/proc/$pid/stat")
  wrote=$(awk '/^write_bytes/ {printf "%.1f", $2 / 1048576}' "/proc/$pid/io")
  echo "$rss $cpu $wrote"
}
rate() { awk -v b="$1" -v s="$2" 'BEGIN {printf "%.1f", b / 1048576 / s}'; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }

tus_headers=(-H "Tus-Resumable: 1.0.0")
# POST to a creation endpoint; prints the new upload's URL.
tus_create() {
  local endpoint=$1 length=$2
  shift 2
  curl -sS -D - -o /dev/null -X POST "${tus_headers[@]}" "$@" -H "Upload-Length: $length" "$endpoint" |
    awk 'tolower($1) == "location:" {sub("\r", "", $2); print $2}'
}
# tus upload of the input file at `endpoint`: one PATCH, or one per piece.
tus_upload() {
  local endpoint=$1 how=$2
  shift 2
  local url
  url=$(tus_create "$endpoint" "$size" "$@")
  [ -n "$url" ] || { echo "tus creation at $endpoint failed" >&2; exit 1; }
  if [ "$how" = one ]; then
    local code
    code=$(curl -sS -o /dev/null -w '%{http_code}' -X PATCH -T "$work/input.bin" "${tus_headers[@]}" "$@" \
      -H "Content-Type: application/offset+octet-stream" -H "Upload-Offset: 0" "$url")
    [ "$code" = 204 ] || { echo "PATCH to $url: $code" >&2; exit 1; }
  else
    # One curl, one keep-alive connection, a PATCH per piece.
    local args=() offset=0 first=1
    for piece in "$work"/pieces/*; do
      [ $first = 1 ] || args+=(--next)
      first=0
      args+=(-sS -o /dev/null -w '%{http_code}\n' -X PATCH -T "$piece" "${tus_headers[@]}" "$@"
        -H "Content-Type: application/offset+octet-stream" -H "Upload-Offset: $offset" "$url")
      offset=$((offset + $(stat -c %s "$piece")))
    done
    curl "${args[@]}" | grep -qv 204 && { echo "a PATCH to $url failed" >&2; exit 1; }
  fi
  echo "$url"
}

# The service on local disk or S3, one user each (created once).
declare -A token
shm="/dev/shm/$(basename "$work")"  # the S3 runs' SQLite file: not local disk
mkdir -p "$work/local" "$shm"
trap 'bench_cleanup; rm -rf "$shm"' EXIT
# local, s3, or s3-md5: S3 with parts checked by Content-MD5 instead of a
# signed SHA-256 (S3UP_S3_PART_CHECKSUM=md5: one hash pass fewer per byte).
stack_env() {
  unset S3UP_S3_PART_CHECKSUM
  if [ "$1" = local ]; then
    export S3UP_STORAGE="file://$work/local/objects" S3UP_DATABASE="sqlite://$work/local/s3uploader.db"
  else
    export S3UP_STORAGE="s3://$bucket/objects" S3UP_DATABASE="sqlite://$shm/s3uploader.db"
    if [ "$1" = s3-md5 ]; then export S3UP_S3_PART_CHECKSUM=md5; fi
  fi
}
for stack in local s3; do
  stack_env $stack
  "$bin" migrate > /dev/null 2>&1  # admin commands want an existing database
  "$bin" user add bench > /dev/null 2>&1
  token[$stack]=$("$bin" token create bench 2>/dev/null)
done
token[s3-md5]=${token[s3]}
stack_env local
"$bin" user add bench-post > /dev/null 2>&1  # the single-shot 1 KiB run's uploads, counted apart
token[post]=$("$bin" token create bench-post 2>/dev/null)

# One s3uploader run; prints "MiB/s rss cpu wrote".
service_run() {
  local stack=$1 how=$2
  stack_env "$stack"
  start_server
  local auth=(-H "Authorization: Bearer ${token[$stack]}")
  local t0 t1 id
  t0=$(now)
  if [ "$how" = put ]; then
    out=$(curl -sS -T "$work/input.bin" "${auth[@]}" "http://127.0.0.1:$port/upload/bench.bin")
    id=$(echo "$out" | sed -n 's/.*"file_id":"\([^"]*\)".*/\1/p')
  else
    url=$(tus_upload "http://127.0.0.1:$port/upload/resumable" "$how" "${auth[@]}")
    id=${url##*/}
  fi
  t1=$(now)
  local stats
  stats=$(process_stats "$server_pid")
  sha=$(curl -sS "${auth[@]}" "http://127.0.0.1:$port/files/$id" | sed -n 's/.*"sha256":"\([0-9a-f]*\)".*/\1/p')
  [ "$sha" = "$input_sha" ] || { echo "$stack $how: stored sha256 '$sha' is not the input's" >&2; exit 1; }
  curl -sS -o /dev/null -X DELETE "${auth[@]}" "http://127.0.0.1:$port/files/$id"
  stop_server
  echo "$(rate "$size" "$(elapsed "$t0" "$t1")") $stats"
}

# One @tus/server run; prints "MiB/s rss cpu wrote".
peer_pid=""
start_peer() {
  rm -f "$work/peer-port"
  node "$peers_dir/peer.mjs" "$@" > "$work/peer-port" 2>> "$work/peer.log" &
  peer_pid=$!
  peer_port=$(port_from "$work/peer-port" "@tus/server" "$work/peer.log")
}
stop_peer() { kill "$peer_pid"; wait "$peer_pid" 2>/dev/null || true; peer_pid=""; }
peer_run() {
  local store=$1
  if [ "$store" = file ]; then
    rm -rf "$work/peer-files"
    mkdir -p "$work/peer-files"
    start_peer file "$work/peer-files"
  else
    start_peer s3 "$tus_bucket"
  fi
  local t0 t1
  t0=$(now)
  tus_upload "http://127.0.0.1:$peer_port/files" one > /dev/null
  t1=$(now)
  local stats
  stats=$(process_stats "$peer_pid")
  stop_peer
  echo "$(rate "$size" "$(elapsed "$t0" "$t1")") $stats"
}

# The store's own rate for the same file: one PUT straight to radosgw
# (presigned, so curl needs no SigV4), no service in between: the bound.
store_bound() {
  local url t0 t1
  url=$("$presign" PUT "$bucket" direct.bin)
  t0=$(now)
  curl -sSf -o /dev/null -T "$work/input.bin" "$url"
  t1=$(now)
  rate "$size" "$(elapsed "$t0" "$t1")"
}

disk_bound() {
  sync
  local t0 t1
  t0=$(now)
  dd if="$work/input.bin" of="$work/dd.bin" bs=1M conv=fsync status=none
  t1=$(now)
  rm -f "$work/dd.bin"
  rate "$size" "$(elapsed "$t0" "$t1")"
}

runs=(local:put local:tus-one local:tus-50MiB local:@tus/file-store s3:put s3:tus-one s3-md5:tus-one s3:@tus/s3-store)
# With S3UP_BENCH_BASELINE=/path/to/another/s3uploader (an older build), its
# PUT and tus runs too, interleaved, for before/after in the same run.
if [ -n "${S3UP_BENCH_BASELINE:-}" ]; then
  runs+=(local:put@baseline local:tus-one@baseline local:tus-50MiB@baseline s3:put@baseline s3:tus-one@baseline)
fi
# S3UP_BENCH_RUNS="s3:tus-one s3:@tus/s3-store" measures only those (quicker, for one question).
if [ -n "${S3UP_BENCH_RUNS:-}" ]; then read -r -a runs <<< "$S3UP_BENCH_RUNS"; fi
results=()
for round in $(seq "$rounds"); do
  # Every other round runs them in reverse, so no run always goes first
  # (a warm page cache or a cool CPU favours whoever does).
  order=("${runs[@]}")
  if [ $((round % 2)) = 0 ]; then
    order=()
    for ((i = ${#runs[@]} - 1; i >= 0; i--)); do order+=("${runs[$i]}"); done
  fi
  echo "round $round: disk bound (dd conv=fsync)..."
  results+=("$round disk:dd-fsync $(disk_bound) - - -")
  echo "round $round: store bound (a presigned PUT straight to radosgw)..."
  results+=("$round s3:direct-PUT $(store_bound) - - -")
  for run in "${order[@]}"; do
    stack=${run%%:*}
    how=${run#*:}
    run_bin=$bin
    if [ "${how%@baseline}" != "$how" ]; then
      how=${how%@baseline}
      run_bin=$S3UP_BENCH_BASELINE
    fi
    echo "round $round: $stack $how ($run_bin)..."
    case "$how" in
      put) line=$(bin=$run_bin service_run "$stack" put) ;;
      tus-one) line=$(bin=$run_bin service_run "$stack" one) ;;
      tus-50MiB) line=$(bin=$run_bin service_run "$stack" pieces) ;;
      @tus/file-store) line=$(peer_run file) ;;
      @tus/s3-store) line=$(peer_run s3) ;;
    esac
    results+=("$round $run $line")
  done
done

median_of() {  # median_of RUN FIELD (2: MiB/s, 3: RSS, 4: CPU, 5: wrote)
  printf '%s\n' "${results[@]}" | awk -v r="$1" -v f="$2" '$2 == r {print $(f + 1)}' | sort -g |
    awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'
}

echo "one tus upload of $big_mib MiB into radosgw..."
stack_env s3
start_server
big_url=$(tus_create "http://127.0.0.1:$port/upload/resumable" $((big_mib * 1024 * 1024)) -H "Authorization: Bearer ${token[s3]}")
t0=$(now)
# (Streamed from a pipe, so chunked: nothing of it is on disk on either side.)
big_code=$(head -c $((big_mib * 1024 * 1024)) /dev/zero | curl -sS -o /dev/null -w '%{http_code}' -X PATCH -T - \
  "${tus_headers[@]}" -H "Authorization: Bearer ${token[s3]}" \
  -H "Content-Type: application/offset+octet-stream" -H "Upload-Offset: 0" "$big_url")
t1=$(now)
read -r big_rss big_cpu big_wrote < <(process_stats "$server_pid")
stop_server
[ "$big_code" = 204 ] || { echo "the $big_mib MiB PATCH answered $big_code" >&2; exit 1; }
big_rate=$(rate $((big_mib * 1024 * 1024)) "$(elapsed "$t0" "$t1")")

# 1 KiB uploads by creation-with-upload, 64 connections; every 201 counted on disk.
wrk_run() {  # wrk_run URL TOKEN -> "rate requests non2xx"
  S3UP_BENCH_TOKEN=$2 wrk -t2 -c64 -d"${wrk_seconds}s" -s bench/tus_create.lua "$1" > "$work/wrk.txt"
  awk '/Requests\/sec/ {r = $2} /requests in/ {n = $1} /Non-2xx/ {b = $NF} END {printf "%.0f %d %d\n", r, n, b + 0}' "$work/wrk.txt"
}
echo "1 KiB creation-with-upload, s3uploader (local disk + SQLite)..."
stack_env local
start_server
read -r small_rate small_requests small_bad < <(wrk_run "http://127.0.0.1:$port/upload/resumable" "${token[local]}")
sleep 1
sql() { python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])" "$work/local/s3uploader.db" "$1"; }
bench_uid=$(sql "select id from users where name='bench'")
small_rows=$(sql "select count(*) from uploads where status='complete' and file_size=1024 and user_id=$bench_uid")
# The same server's own single-shot path for 1 KiB (POST /upload, a form):
# what a durable upload costs here, the bound for tus's.
S3UP_BENCH_TOKEN=${token[post]} wrk -t2 -c64 -d"${wrk_seconds}s" -s bench/small_upload.lua "http://127.0.0.1:$port/upload" > "$work/wrk-post.txt"
post_rate=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$work/wrk-post.txt")
stop_server
small_files=$(find "$work/local/objects/u/$bench_uid" -type f -size 1024c ! -name '.tmp-*' | wc -l)
echo "1 KiB creation-with-upload, @tus/server + @tus/file-store..."
rm -rf "$work/peer-files"
mkdir -p "$work/peer-files"
start_peer file "$work/peer-files"
read -r peer_small_rate peer_small_requests peer_small_bad < <(wrk_run "http://127.0.0.1:$peer_port/files" "")
sleep 1
stop_peer
peer_small_files=$(find "$work/peer-files" -type f -size 1024c ! -name '*.json' | wc -l)

echo
printf '%-7s %-22s %10s %14s %10s %16s\n' round run "MiB/s" "peak RSS MiB" "CPU s" "local write MiB"
for r in "${results[@]}"; do
  # shellcheck disable=SC2086
  printf '%-7s %-22s %10s %14s %10s %16s\n' $r
done
echo
printf '%-22s %10s %14s %10s %16s   (medians of %d rounds, %d MiB)\n' run "MiB/s" "peak RSS MiB" "CPU s" "local write MiB" "$rounds" "$size_mib"
for run in disk:dd-fsync s3:direct-PUT "${runs[@]}"; do
  printf '%-22s %10s %14s %10s %16s\n' "$run" "$(median_of "$run" 2)" "$(median_of "$run" 3)" "$(median_of "$run" 4)" "$(median_of "$run" 5)"
done
ratio() { awk -v a="$(median_of "$1" 2)" -v b="$(median_of "$2" 2)" 'BEGIN {printf "%.2f", a / b}'; }
echo
echo "local: tus one PATCH / PUT /upload            = $(ratio local:tus-one local:put)   (target >= 0.95)"
echo "s3:    tus one PATCH / PUT /upload            = $(ratio s3:tus-one s3:put)   (target >= 0.95)"
echo "local: tus 50 MiB PATCHes / tus one PATCH     = $(ratio local:tus-50MiB local:tus-one)   (target >= 0.85)"
echo "local: tus / @tus/server + @tus/file-store    = $(ratio local:tus-one local:@tus/file-store)   (target >= 1.3; the file store does not fsync)"
echo "s3:    tus / @tus/server + @tus/s3-store      = $(ratio s3:tus-one s3:@tus/s3-store)   (target >= 1.5)"
echo "s3:    the same with md5-checked parts          = $(ratio s3-md5:tus-one s3:@tus/s3-store)"
echo "local: tus one PATCH / the disk's fsync'd write rate = $(ratio local:tus-one disk:dd-fsync)   (dd's buffered writes + fsync; the service writes O_DIRECT)"
echo "s3:    tus one PATCH / a PUT straight to radosgw = $(ratio s3:tus-one s3:direct-PUT); the best any peer could reach against @tus/s3-store: $(ratio s3:direct-PUT s3:@tus/s3-store)"
if [ -n "${S3UP_BENCH_BASELINE:-}" ]; then
  for run in local:put local:tus-one local:tus-50MiB s3:put s3:tus-one; do
    echo "$run: this build / baseline = $(ratio "$run" "$run@baseline")"
  done
fi
echo "s3:    $big_mib MiB tus upload: $big_rate MiB/s, peak RSS $big_rss MiB (target <= 96), CPU $big_cpu s, local writes $big_wrote MiB (target 0)"
small_ok=$((small_requests - small_bad))
peer_small_ok=$((peer_small_requests - peer_small_bad))
echo "1 KiB creation-with-upload, 64 connections, ${wrk_seconds}s:"
echo "  s3uploader:  $small_rate uploads/s, $small_ok acknowledged, $small_rows records and $small_files files stored"
echo "  @tus/server: $peer_small_rate uploads/s, $peer_small_ok acknowledged, $peer_small_files files stored"
echo "  s3uploader / @tus/server = $(awk -v a="$small_rate" -v b="$peer_small_rate" 'BEGIN {printf "%.2f", a / b}')   (target >= 2; @tus/file-store does not fsync)"
echo "  the bound: s3uploader's own POST /upload of 1 KiB, same server: $post_rate uploads/s; tus / POST = $(awk -v a="$small_rate" -v b="$post_rate" 'BEGIN {printf "%.2f", a / b}')"
[ "$small_rows" -ge "$small_ok" ] && [ "$small_files" -ge "$small_ok" ] || { echo "acknowledged uploads are missing" >&2; exit 1; }
