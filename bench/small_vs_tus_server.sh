#!/usr/bin/env bash
# Benchmark (issue 25): many small uploads against @tus/server, in one run.
# 1 KiB files over `connections` keep-alive connections (wrk), local disk:
#   - s3uploader, multipart POST /upload (bench/small_upload.lua)
#   - s3uploader, tus creation-with-upload (bench/tus_create.lua)
#   each on SQLite and on PostgreSQL (a fresh cluster on this host,
#   scripts/peers/postgres, through its Unix socket)
#   - @tus/server + @tus/file-store, creation-with-upload (the same script;
#     tus is its only way in)
# Rounds are interleaved; the table gives each run's median rate, p50 and
# p99. Every run counts what it acknowledged (wrk's 2xx answers) against
# what is stored: s3uploader's complete records and files (each run has a
# user of its own), @tus/server's files. Every 201 from s3uploader was
# fsynced and recorded before it was sent; @tus/file-store does not fsync.
# Targets: multipart >= 3x @tus/server, tus creation-with-upload >= 2.5x,
# p99 <= 25 ms, on both databases; PostgreSQL >= 0.8 of SQLite.
# With S3UP_BENCH_BASELINE=/path/to/another/s3uploader (an older build),
# each s3uploader run is repeated with it (SQLite), for before/after.
# Usage: bench/small_vs_tus_server.sh [seconds=10] [rounds=3] [connections=64]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
rounds="${2:-3}"
connections="${3:-64}"
scripts/install-deps --test
bin=build/src/s3uploader
[ -x "$bin" ] || scripts/build
source bench/server.sh
bench_workdir smallpeer
(cd bench/tus && npm ci --no-audit --no-fund --loglevel=error > /dev/null)
bench_cleanup_more() {
  scripts/peers/postgres stop "$work/pg" > /dev/null 2>&1 || true
  [ -n "${peer_pid:-}" ] && kill "$peer_pid" 2>/dev/null || true
}
echo "starting PostgreSQL..."
eval "$(scripts/peers/postgres start "$work/pg")"
pg_socket="host=$S3UP_TEST_PG_DIR port=$(cat "$S3UP_TEST_PG_DIR/port") user=postgres"
bench_binaries

# database_env DB LABEL   the service's settings for one database and binary.
database_env() {
  local dir="$work/$1-$2"
  export S3UP_STORAGE="file://$dir/objects"
  if [ "$1" = sqlite ]; then
    export S3UP_DATABASE="sqlite://$dir/s3uploader.db"
  else
    export S3UP_DATABASE="$pg_socket dbname=bench_$2"
  fi
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir"
    if [ "$1" = postgres ]; then psql -q "$pg_socket" -c "CREATE DATABASE bench_$2"; fi
    "$bin" migrate > /dev/null 2>&1
  fi
}
query() {  # query SQL: one value from the service's database
  if [[ $S3UP_DATABASE == sqlite://* ]]; then
    python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])" \
      "${S3UP_DATABASE#sqlite://}" "$1"
  else
    psql -tA "$S3UP_DATABASE" -c "$1"
  fi
}
# One wrk run against the server SERVER_PID; sets $rate $p50 $p99
# $acknowledged, and $cpu_us: CPU microseconds per upload of the server,
# PostgreSQL and wrk together (what bounds the rate on this machine).
wrk_run() {  # wrk_run SCRIPT URL TOKEN SERVER_PID
  local s0 s1 pg0 pg1
  s0=$(cpu_of_pids "$4"); pg0=$(cpu_of_pids $(pgrep -x postgres || true))
  S3UP_BENCH_TOKEN=$3 /usr/bin/time -f "%U %S" -o "$work/wrk-time" \
    wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$1" "$2" > "$work/wrk.txt"
  s1=$(cpu_of_pids "$4"); pg1=$(cpu_of_pids $(pgrep -x postgres || true))
  read -r rate p50 p99 bad < <(parse_wrk < "$work/wrk.txt")
  requests=$(awk '/requests in/ {print $1}' "$work/wrk.txt")
  acknowledged=$((requests - bad))
  cpu_us=$(awk -v a="$s0" -v b="$s1" -v c="$pg0" -v d="$pg1" -v n="$requests" -v w="$(awk '{print $1 + $2}' "$work/wrk-time")" \
    'BEGIN {printf "%.0f", (b - a + d - c + w) / n * 1e6}')
}
service_run() {  # service_run DB LABEL BINARY KIND(post|tus) ROUND
  local user="b-$4-$5" uid stored files
  bin=$3 database_env "$1" "$2"
  "$3" user add "$user" > /dev/null 2>&1
  local token
  token=$("$3" token create "$user" 2>/dev/null)
  bin=$3 start_server "$work/server-$1-$2.log"
  if [ "$4" = post ]; then
    wrk_run bench/small_upload.lua "http://127.0.0.1:$port/upload" "$token" "$server_pid"
  else
    wrk_run bench/tus_create.lua "http://127.0.0.1:$port/upload/resumable" "$token" "$server_pid"
  fi
  sleep 1  # uploads still in flight when wrk stopped land before counting
  stop_server
  uid=$(query "select id from users where name='$user'")
  stored=$(query "select count(*) from uploads where status='complete' and file_size=1024 and user_id=$uid")
  files=$(find "$work/$1-$2/objects/u/$uid" -type f -size 1024c ! -name '.tmp-*' 2>/dev/null | wc -l)
  rows+=("$4:$1:$2 $rate $p50 $p99 $acknowledged $stored $files $cpu_us")
}
peer_run() {
  rm -rf "$work/peer-files" "$work/peer-port"
  mkdir -p "$work/peer-files"
  node bench/tus/peer.mjs file "$work/peer-files" > "$work/peer-port" 2>> "$work/peer.log" &
  peer_pid=$!
  local peer_port
  peer_port=$(port_from "$work/peer-port" "@tus/server" "$work/peer.log")
  wrk_run bench/tus_create.lua "http://127.0.0.1:$peer_port/files" "" "$peer_pid"
  sleep 1
  kill "$peer_pid"; wait "$peer_pid" 2>/dev/null || true; peer_pid=""
  local files
  files=$(find "$work/peer-files" -type f -size 1024c ! -name '*.json' | wc -l)
  rows+=("tus:@tus/server:- $rate $p50 $p99 $acknowledged $files $files $cpu_us")
}

rows=()
for round in $(seq "$rounds"); do
  echo "round $round..."
  peer_run
  for kind in post tus; do
    for db in sqlite postgres; do service_run "$db" current "$PWD/$bin" "$kind" "$round"; done
    if [ -n "${S3UP_BENCH_BASELINE:-}" ]; then service_run sqlite baseline "$(realpath "$S3UP_BENCH_BASELINE")" "$kind" "$round"; fi
  done
done

printf '\n%-6s %-24s %9s %8s %8s %13s %8s %8s %9s\n' round run uploads/s "p50 ms" "p99 ms" acknowledged stored "CPU us" "bound/s"
round=0
lost=0
for r in "${rows[@]}"; do
  read -r run rate p50 p99 ack stored files cpu <<< "$r"
  [[ $run == tus:@tus/server:* ]] && round=$((round + 1))
  held=$(( stored < files ? stored : files ))
  printf '%-6s %-24s %9s %8s %8s %13s %8s %8s %9s\n' "$round" "$run" "$rate" "$p50" "$p99" "$ack" "$held" "$cpu" \
    "$(awk -v c="$cpu" -v n="$(nproc)" 'BEGIN {printf "%.0f", n * 1e6 / c}')"
  [ "$held" -ge "$ack" ] || lost=$((lost + ack - held))
done
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
median_of() {  # median_of RUN FIELD (2 rate, 3 p50, 4 p99)
  for r in "${rows[@]}"; do
    read -r -a f <<< "$r"
    if [ "${f[0]}" = "$1" ]; then echo "${f[$(($2 - 1))]}"; fi
  done | median
}
peer=$(median_of "tus:@tus/server:-" 2)
printf '\nmedians of %d rounds, %d connections, %ss each, 1 KiB:\n' "$rounds" "$connections" "$seconds"
# The machine's bound: its cores over the CPU one upload costs the server,
# PostgreSQL and wrk together; and at that rate, by Little's law, the least
# mean latency `connections` busy connections can see.
printf '  %-24s %9s %8s %8s %14s %9s %8s %9s %13s\n' run uploads/s "p50 ms" "p99 ms" "÷ @tus/server" "÷ SQLite" \
  "CPU us" "bound/s" "mean ms >="
cores=$(nproc)
json=""
for run in tus:@tus/server:- post:sqlite:current post:postgres:current tus:sqlite:current tus:postgres:current \
  post:sqlite:baseline tus:sqlite:baseline; do
  rate=$(median_of "$run" 2)
  [ -n "$rate" ] || continue
  kind=${run%%:*}
  vs_sqlite="-"
  [[ $run == *:postgres:* ]] && vs_sqlite=$(awk -v a="$rate" -v b="$(median_of "$kind:sqlite:current" 2)" 'BEGIN {printf "%.2f", a / b}')
  ratio=$(awk -v a="$rate" -v b="$peer" 'BEGIN {printf "%.2f", a / b}')
  cpu=$(median_of "$run" 8)
  bound=$(awk -v c="$cpu" -v n="$cores" 'BEGIN {printf "%.0f", n * 1e6 / c}')
  least=$(awk -v b="$bound" -v c="$connections" 'BEGIN {printf "%.1f", c / b * 1000}')
  printf '  %-24s %9s %8s %8s %14s %9s %8s %9s %13s\n' "$run" "$rate" "$(median_of "$run" 3)" "$(median_of "$run" 4)" \
    "$ratio" "$vs_sqlite" "$cpu" "$bound" "$least"
  json+="${json:+,}{\"run\":\"$run\",\"uploads_s\":$rate,\"p50_ms\":$(median_of "$run" 3),\"p99_ms\":$(median_of "$run" 4),"
  json+="\"vs_tus_server\":$ratio,\"cpu_us_per_upload\":$cpu,\"bound_uploads_s\":$bound,\"least_mean_ms\":$least}"
done
echo "  targets: post ÷ @tus/server >= 3, tus ÷ @tus/server >= 2.5, p99 <= 25 ms, postgres ÷ sqlite >= 0.8"
echo "  acknowledged but not stored: $lost"
mkdir -p bench/results
echo "{\"benchmark\":\"small_vs_tus_server\",\"date\":\"$(date -u +%FT%TZ)\",\"seconds\":$seconds,\"rounds\":$rounds,\"connections\":$connections,\"lost\":$lost,\"runs\":[$json]}" > bench/results/small_vs_tus_server.json
echo "raw results: bench/results/small_vs_tus_server.json"
[ "$lost" = 0 ] || { echo "acknowledged uploads are missing" >&2; exit 1; }
