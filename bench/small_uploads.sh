#!/usr/bin/env bash
# Benchmark (issue 4): many small durable uploads. 1 KiB files in a multipart
# form over 64 keep-alive connections (wrk, bench/small_upload.lua), local-disk
# store, first on SQLite, then on PostgreSQL (a fresh cluster on this host,
# scripts/peers/postgres) through its Unix socket, as one connects to a
# database on the same host, then over TCP with TLS (verify-full), as to a
# remote one. Reports uploads/s and p50/p99 latency, and as the
# baseline of the same run the rate of GET /healthz on the same server
# (HTTP, no disk, no database): the ratio says what durability costs.
# Each database gets two upload runs: the part declared text/plain, and
# declared application/octet-stream, which makes the service sniff a type (the
# two should differ by at most 10 %).
# After each run it counts the records and the files: every 201 must be both.
# It also reports the CPU time per upload spent by the service, by PostgreSQL
# and left idle: on two shared cores the rate can be no more than 2 cores'
# worth of CPU over what one upload costs.
# Targets: >= 2,000 uploads/s with p99 <= 50 ms, for both databases.
#
# With S3UP_BENCH_BASELINE=/path/to/another/s3uploader (an older build), every
# run is repeated with that binary, in the same invocation, for before/after.
# With S3UP_BENCH_WEBHOOKS=1 (issue 22), every run is repeated with webhooks
# on, all five events to a receiver on loopback (bench/webhook_receiver.mjs,
# which verifies each signature), in the same invocation: the "webhooks"
# rows against the "current" ones, and each upload's created and completed
# events counted by the receiver (they must match the records).
#
# Usage: bench/small_uploads.sh [seconds=20] [connections=64]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
connections="${2:-64}"
scripts/install-deps --test
bin=build/src/s3uploader
[ -x "$bin" ] || scripts/build
source bench/server.sh
bench_workdir small
bench_cleanup_more() {
  scripts/peers/postgres stop "$work/pg" > /dev/null 2>&1 || true
  [ -n "${receiver_pid:-}" ] && kill "$receiver_pid" 2>/dev/null || true
}

echo "starting PostgreSQL..."
eval "$(scripts/peers/postgres start "$work/pg")"
pg_base="${S3UP_TEST_PG_URL%/*}"
pg_tls="sslmode=verify-full&sslrootcert=$S3UP_TEST_PG_CA_FILE"

# CPU seconds (user + system) so far of the server, of every postgres process,
# and idle seconds of the whole machine.
postgres_cpu() { cpu_of_pids $(pgrep -x postgres || true); }
idle_seconds() { awk -v t="$tick" '/^cpu / {printf "%.3f", $5 / t}' /proc/stat; }
per_upload_us() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN {printf "%.0f", (n > 0 ? (b - a) / n * 1e6 : 0)}'; }
# CPU seconds so far of the server's threads named $2 (the webhook senders are s3up-hook-send).
thread_cpu_seconds() {
  for t in /proc/"$1"/task/*; do
    if [ "$(cat "$t/comm" 2>/dev/null)" = "$2" ]; then awk '{print $14 + $15}' "$t/stat"; fi
  done | awk -v t="$tick" '{s += $1} END {printf "%.3f", s / t}'
}

results=()
declare -A off
declare -A hook_cost  # "db type" -> "receiver_us sending_us" per upload, webhooks on
bench_binaries
hook_counts=()
events_so_far=0
if [ "${S3UP_BENCH_WEBHOOKS:-0}" = 1 ]; then
  binaries+=("webhooks:$PWD/$bin")
  hook_secret="whsec_$(head -c 32 /dev/urandom | base64)"
  S3UP_WEBHOOK_SECRET=$hook_secret node bench/webhook_receiver.mjs "$work/receiver-port" > "$work/receiver.log" 2>&1 &
  receiver_pid=$!
  receiver_port=$(port_from "$work/receiver-port" "the webhook receiver" "$work/receiver.log")
fi
for entry in "${binaries[@]}"; do
  label=${entry%%:*}
  for name in bench_small bench_small_tls; do
    psql -q "$S3UP_TEST_PG_URL?$pg_tls" -c "CREATE DATABASE ${name}_$label"
  done
done
# S3UP_BENCH_DATABASES="sqlite" measures only those (quicker, for one question).
read -r -a databases <<< "${S3UP_BENCH_DATABASES:-sqlite postgres postgres-tls}"
for db in "${databases[@]}"; do
  for entry in "${binaries[@]}"; do
    label=${entry%%:*}
    bin=${entry#*:}
    dir="$work/$db-$label"
    export S3UP_STORAGE="file://$dir/objects"
    case "$db" in
      sqlite) export S3UP_DATABASE="sqlite://$dir/s3uploader.db" ;;
      postgres) export S3UP_DATABASE="host=$S3UP_TEST_PG_DIR port=$(cat "$S3UP_TEST_PG_DIR/port") user=postgres dbname=bench_small_$label" ;;
      postgres-tls) export S3UP_DATABASE="$pg_base/bench_small_tls_$label?$pg_tls" ;;
    esac
    mkdir -p "$dir"
    "$bin" migrate > /dev/null 2>&1
    if [ "$label" = webhooks ]; then
      export S3UP_WEBHOOK_URLS="http://127.0.0.1:$receiver_port/hooks" S3UP_WEBHOOK_SECRET=$hook_secret
    else
      unset S3UP_WEBHOOK_URLS S3UP_WEBHOOK_SECRET
    fi
    start_server "$work/server-$db-$label.log"
    echo "== $db ($label): GET /healthz (baseline), ${seconds}s, $connections connections"
    wrk -t2 -c"$connections" -d"${seconds}s" --latency "http://127.0.0.1:$port/healthz" > "$work/healthz-$db-$label.txt"
    read -r base_rate base_p50 base_p99 base_bad < <(parse_wrk < "$work/healthz-$db-$label.txt")
    for part_type in text/plain application/octet-stream; do
      # One user per run: its records and its files (objects/u/<user id>) are counted apart.
      user="bench-${part_type%%/*}"
      "$bin" user add "$user" > /dev/null 2>&1
      export S3UP_BENCH_TOKEN=$("$bin" token create "$user" 2>/dev/null)
      export S3UP_BENCH_PART_TYPE=$part_type
      out="$work/upload-$db-$label-${part_type%%/*}.txt"
      echo "== $db ($label): POST /upload 1 KiB $part_type, ${seconds}s, $connections connections"
      svc0=$(cpu_of_pids "$server_pid"); pg0=$(postgres_cpu); idle0=$(idle_seconds)
      recv0=$(cpu_of_pids ${receiver_pid:-}); send0=$(thread_cpu_seconds "$server_pid" s3up-hook-send)
      wrk -t2 -c"$connections" -d"${seconds}s" --latency -s bench/small_upload.lua "http://127.0.0.1:$port/upload" > "$out"
      svc1=$(cpu_of_pids "$server_pid"); pg1=$(postgres_cpu); idle1=$(idle_seconds)
      recv1=$(cpu_of_pids ${receiver_pid:-}); send1=$(thread_cpu_seconds "$server_pid" s3up-hook-send)
      read -r rate p50 p99 bad < <(parse_wrk < "$out")
      total=$(awk '/requests in/ {print $1}' "$out")
      svc_us=$(per_upload_us "$svc0" "$svc1" "$total")
      pg_us=$(per_upload_us "$pg0" "$pg1" "$total")
      idle_us=$(per_upload_us "$idle0" "$idle1" "$total")
      if [ "$label" = webhooks ]; then
        hook_cost["$db $part_type"]="$(per_upload_us "$recv0" "$recv1" "$total") $(per_upload_us "$send0" "$send1" "$total")"
      fi
      uid_query="select id from users where name='$user'"
      count_query="select count(*) from uploads where status='complete' and user_id=($uid_query)"
      if [ "$db" = sqlite ]; then
        uid=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])" "$dir/s3uploader.db" "$uid_query")
        rows=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])" "$dir/s3uploader.db" "$count_query")
      else
        uid=$(psql -tA "$S3UP_DATABASE" -c "$uid_query")
        rows=$(psql -tA "$S3UP_DATABASE" -c "$count_query")
      fi
      # wrk may end with uploads in flight: let them land before counting files.
      sleep 1
      files=$(find "$dir/objects/u/$uid" -type f ! -name '.tmp-*' 2>/dev/null | wc -l)
      ratio=$(awk -v a="$rate" -v b="$base_rate" 'BEGIN {printf "%.3f", a / b}')
      results+=("$db $label $part_type $rate $p50 $p99 $bad $total $rows $files $base_rate $ratio $svc_us $pg_us $idle_us")
    done
    if [ "$label" = webhooks ]; then
      # Every event delivered before the next run: the receiver's counts against the records.
      expected=$(if [ "$db" = sqlite ]; then
        python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from uploads').fetchone()[0])" "$dir/s3uploader.db"
      else psql -tA "$S3UP_DATABASE" -c "select count(*) from uploads"; fi)
      events_so_far=$((events_so_far + expected))
      # Both events of every upload: how long after the last upload run the
      # last of them came is delivery work the run's rate does not show.
      waited=0
      for _ in $(seq 1200); do
        got=$(curl -s "http://127.0.0.1:$receiver_port/counts" |
          python3 -c 'import json,sys; c = json.load(sys.stdin); print(min(c.get("upload.created", 0), c.get("upload.completed", 0)))')
        [ "$got" -ge "$events_so_far" ] && break
        sleep 0.1
        waited=$((waited + 1))
      done
      hook_counts+=("after $db: $(curl -s "http://127.0.0.1:$receiver_port/counts"), for $events_so_far uploads so far; the last arrived $(awk -v w="$waited" 'BEGIN {printf "%.1f", w / 10}') s after the run")
    fi
    stop_server
  done
done

row_format='%-12s %-9s %-24s %10s %8s %8s %8s %9s %8s %8s %10s %7s %11s %12s %8s\n'
# shellcheck disable=SC2059
printf "\n$row_format" database binary "part type" uploads/s "p50 ms" "p99 ms" non-2xx requests records files "healthz/s" ratio "service us" "postgres us" "idle us"
for r in "${results[@]}"; do
  # shellcheck disable=SC2086,SC2059
  printf "$row_format" $r
done
# The cost of sniffing: octet-stream against text/plain, per database and binary.
echo
for r in "${results[@]}"; do
  read -r db label type rate _ <<< "$r"
  if [ "$type" = text/plain ]; then text_rate=$rate; continue; fi
  awk -v d="$db" -v l="$label" -v o="$rate" -v t="$text_rate" \
    'BEGIN {printf "%-12s %-9s octet-stream / text/plain = %.3f\n", d, l, o / t}'
done
if [ ${#hook_counts[@]} -gt 0 ]; then
  echo
  # Webhooks on against off: same database, same part type, this run. And
  # the bound this machine sets: each event is an HTTP request that the
  # receiver (a peer that runs elsewhere in production) and the service's
  # senders answer and send on the same two cores. With the machine's time
  # per upload when off (cores / rate), on / off can be at most
  # off_time / (off_time + receiver), and with the sending counted too,
  # off_time / (off_time + receiver + sending).
  cores=$(nproc)
  for r in "${results[@]}"; do
    read -r db label type rate _ <<< "$r"
    [ "$label" = current ] && off["$db $type"]=$rate
    if [ "$label" = webhooks ]; then
      read -r recv_us send_us <<< "${hook_cost["$db $type"]}"
      awk -v d="$db" -v t="$type" -v on="$rate" -v o="${off["$db $type"]}" -v c="$cores" -v r="$recv_us" -v s="$send_us" \
        'BEGIN {m = c * 1e6 / o;
                printf "%-12s %-24s webhooks on / off = %.3f   (receiver %d us/upload, sending %d us/upload: this machine allows at most %.2f, or %.2f with the sending)\n",
                  d, t, on / o, r, s, m / (m + r), m / (m + r + s)}'
    fi
  done
  echo "events the receiver verified and counted (cumulative over the runs):"
  printf '  %s\n' "${hook_counts[@]}"
fi
echo "(ratio: uploads/s over healthz/s on the same server; service/postgres/idle us: CPU microseconds per upload during the upload run; postgres is 0 for sqlite)"
echo "(wrk counts requests still in flight at the end as not done: records and files may exceed requests - non-2xx by up to $connections)"

mkdir -p bench/results
{
  printf '{"benchmark":"small_uploads","date":"%s","seconds":%s,"connections":%s,"runs":[' "$(date -u +%FT%TZ)" "$seconds" "$connections"
  sep=""
  for r in "${results[@]}"; do
    read -r db label type rate p50 p99 bad total rows files base ratio svc_us pg_us idle_us <<< "$r"
    printf '%s{"database":"%s","binary":"%s","part_type":"%s","uploads_per_s":%s,"p50_ms":%s,"p99_ms":%s,"non_2xx":%s,"requests":%s,"records":%s,"files":%s,"healthz_per_s":%s,"ratio_to_healthz":%s,' \
      "$sep" "$db" "$label" "$type" "$rate" "$p50" "$p99" "$bad" "$total" "$rows" "$files" "$base" "$ratio"
    printf '"cpu_us_per_upload":{"service":%s,"postgres":%s,"idle":%s}}' "$svc_us" "$pg_us" "$idle_us"
    sep=","
  done
  printf ']}\n'
} > bench/results/small_uploads.json
echo "raw results: bench/results/small_uploads.json"
