#!/usr/bin/env bash
# Benchmark (issue 4): many small durable uploads. 1 KiB files in a multipart
# form over 64 keep-alive connections (wrk, bench/small_upload.lua), local-disk
# store, first on SQLite, then on PostgreSQL (a fresh cluster on this host,
# scripts/peers/postgres) through its Unix socket, as one connects to a
# database on the same host, then over TCP with TLS (verify-full), as to a
# remote one. Reports uploads/s and p50/p99 latency, and as the
# baseline of the same run the rate of GET /healthz on the same server
# (HTTP, no disk, no database): the ratio says what durability costs.
# After each run it counts the records and the files: every 201 must be both.
# It also reports the CPU time per upload spent by the service, by PostgreSQL
# and left idle: on two shared cores the rate can be no more than 2 cores'
# worth of CPU over what one upload costs.
# Targets: >= 2,000 uploads/s with p99 <= 50 ms, for both databases.
#
# Usage: bench/small_uploads.sh [seconds=20] [connections=64]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
connections="${2:-64}"
scripts/install-deps --test
bin=build/src/s3uploader
[ -x "$bin" ] || scripts/build
work=$(mktemp -d -p "$PWD/build" bench-small-XXXXXX)
cleanup() {
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  scripts/peers/postgres stop "$work/pg" > /dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "starting PostgreSQL..."
eval "$(scripts/peers/postgres start "$work/pg")"
pg_base="${S3UP_TEST_PG_URL%/*}"
pg_tls="sslmode=verify-full&sslrootcert=$S3UP_TEST_PG_CA_FILE"
psql -q "$S3UP_TEST_PG_URL?$pg_tls" -c "CREATE DATABASE bench_small"

source bench/server.sh

# CPU seconds (user + system) so far of the server, of every postgres process,
# and idle seconds of the whole machine.
tick=$(getconf CLK_TCK)
cpu_seconds() { for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done | awk -v t="$tick" '{s += $1} END {printf "%.3f", s / t}'; }
postgres_cpu() { cpu_seconds $(pgrep -x postgres || true); }
idle_seconds() { awk -v t="$tick" '/^cpu / {printf "%.3f", $5 / t}' /proc/stat; }
per_upload_us() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN {printf "%.0f", (n > 0 ? (b - a) / n * 1e6 : 0)}'; }

# wrk's report -> "rate p50_ms p99_ms non2xx"
parse_wrk() {
  awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rate = $2 }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    /Non-2xx/ { bad = $NF }
    END { printf "%.0f %.2f %.2f %d\n", rate, p50, p99, bad + 0 }'
}

results=()
psql -q "$S3UP_TEST_PG_URL?$pg_tls" -c "CREATE DATABASE bench_small_tls"
for db in sqlite postgres postgres-tls; do
  export S3UP_STORAGE="file://$work/$db/objects"
  case "$db" in
    sqlite) export S3UP_DATABASE="sqlite://$work/$db/s3uploader.db" ;;
    postgres) export S3UP_DATABASE="host=$S3UP_TEST_PG_DIR port=$(cat "$S3UP_TEST_PG_DIR/port") user=postgres dbname=bench_small" ;;
    postgres-tls) export S3UP_DATABASE="$pg_base/bench_small_tls?$pg_tls" ;;
  esac
  "$bin" migrate > /dev/null 2>&1
  "$bin" user add bench > /dev/null 2>&1
  export S3UP_BENCH_TOKEN=$("$bin" token create bench 2>/dev/null)
  start_server "$work/server-$db.log"
  echo "== $db: GET /healthz (baseline), ${seconds}s, $connections connections"
  wrk -t2 -c"$connections" -d"${seconds}s" --latency "http://127.0.0.1:$port/healthz" > "$work/healthz-$db.txt"
  read -r base_rate base_p50 base_p99 base_bad < <(parse_wrk < "$work/healthz-$db.txt")
  echo "== $db: POST /upload 1 KiB, ${seconds}s, $connections connections"
  svc0=$(cpu_seconds "$server_pid"); pg0=$(postgres_cpu); idle0=$(idle_seconds)
  wrk -t2 -c"$connections" -d"${seconds}s" --latency -s bench/small_upload.lua "http://127.0.0.1:$port/upload" \
    > "$work/upload-$db.txt"
  svc1=$(cpu_seconds "$server_pid"); pg1=$(postgres_cpu); idle1=$(idle_seconds)
  read -r rate p50 p99 bad < <(parse_wrk < "$work/upload-$db.txt")
  total=$(awk '/requests in/ {print $1}' "$work/upload-$db.txt")
  svc_us=$(per_upload_us "$svc0" "$svc1" "$total")
  pg_us=$(per_upload_us "$pg0" "$pg1" "$total")
  idle_us=$(per_upload_us "$idle0" "$idle1" "$total")
  stop_server
  if [ "$db" = sqlite ]; then
    rows=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"select count(*) from uploads where status='complete'\").fetchone()[0])" "$work/$db/s3uploader.db")
  else
    rows=$(psql -tA "$S3UP_DATABASE" -c "select count(*) from uploads where status='complete'")
  fi
  files=$(find "$work/$db/objects" -type f ! -name '.tmp-*' | wc -l)
  ratio=$(awk -v a="$rate" -v b="$base_rate" 'BEGIN {printf "%.3f", a / b}')
  results+=("$db $rate $p50 $p99 $bad $total $rows $files $base_rate $ratio $svc_us $pg_us $idle_us")
done

printf '\n%-12s %10s %8s %8s %8s %9s %8s %8s %12s %7s %12s %12s %9s\n' database uploads/s "p50 ms" "p99 ms" non-2xx requests records files "healthz/s" ratio "service us" "postgres us" "idle us"
for r in "${results[@]}"; do
  # shellcheck disable=SC2086
  printf '%-12s %10s %8s %8s %8s %9s %8s %8s %12s %7s %12s %12s %9s\n' $r
done
echo "(service/postgres/idle us: CPU microseconds per upload during the upload run; postgres is 0 for sqlite)"
echo "(wrk counts requests still in flight at the end as not done: records and files may exceed requests - non-2xx by up to $connections)"

mkdir -p bench/results
{
  printf '{"benchmark":"small_uploads","date":"%s","seconds":%s,"connections":%s,"runs":[' "$(date -u +%FT%TZ)" "$seconds" "$connections"
  sep=""
  for r in "${results[@]}"; do
    read -r db rate p50 p99 bad total rows files base ratio svc_us pg_us idle_us <<< "$r"
    printf '%s{"database":"%s","uploads_per_s":%s,"p50_ms":%s,"p99_ms":%s,"non_2xx":%s,"requests":%s,"records":%s,"files":%s,"healthz_per_s":%s,"ratio_to_healthz":%s,' \
      "$sep" "$db" "$rate" "$p50" "$p99" "$bad" "$total" "$rows" "$files" "$base" "$ratio"
    printf '"cpu_us_per_upload":{"service":%s,"postgres":%s,"idle":%s}}' "$svc_us" "$pg_us" "$idle_us"
    sep=","
  done
  printf ']}\n'
} > bench/results/small_uploads.json
echo "raw results: bench/results/small_uploads.json"
