#!/usr/bin/env bash
# Benchmark (issue 25): what one upload costs the database, counted by
# PostgreSQL itself (pg_stat_statements): statements that write (INSERT,
# UPDATE, DELETE, and WITH ... that do) and all statements, and the
# service's transactions (round trips) from its /metrics, per upload of each
# kind:
#   - a multipart form POST of 1 KiB
#   - a PUT of 1 KiB
#   - a tus creation-with-upload of a whole 1 KiB file
#   - a tus upload created empty, then N PATCHes (per PATCH, and the create)
# Counts, not times: a noisy machine does not move them. Local-disk store
# (an S3 multipart upload adds one write: its upload id, recorded before the
# first part goes out); the janitor is kept out of the window.
# Targets: a PATCH <= 2 writing statements; creation-with-upload <= 2; a
# single-shot upload <= 2 (<= 1 for a body that fits one buffer).
# Usage: bench/db_writes.sh [uploads=50] [patches=4]
set -euo pipefail
cd "$(dirname "$0")/.."
uploads="${1:-50}"
patches="${2:-4}"
scripts/install-deps --test
bin=build/src/s3uploader
[ -x "$bin" ] || scripts/build
source bench/server.sh
bench_workdir dbwrites
bench_cleanup_more() { scripts/peers/postgres stop "$work/pg" > /dev/null 2>&1 || true; }

echo "starting PostgreSQL (with pg_stat_statements)..."
eval "$(S3UP_PG_PRELOAD=pg_stat_statements scripts/peers/postgres start "$work/pg")"
pg="$S3UP_TEST_PG_URL?sslmode=verify-full&sslrootcert=$S3UP_TEST_PG_CA_FILE"
psql -q "$pg" -c "CREATE DATABASE bench_writes"
db="${S3UP_TEST_PG_URL%/*}/bench_writes?sslmode=verify-full&sslrootcert=$S3UP_TEST_PG_CA_FILE"
psql -q "$db" -c "CREATE EXTENSION pg_stat_statements"
export S3UP_DATABASE=$db S3UP_STORAGE="file://$work/objects" S3UP_JANITOR_INTERVAL=24h
"$bin" migrate > /dev/null 2>&1
"$bin" user add bench > /dev/null 2>&1
token=$("$bin" token create bench 2>/dev/null)
start_server
base="http://127.0.0.1:$port"
head -c 1024 /dev/urandom > "$work/1k.bin"
head -c $((256 * 1024)) /dev/urandom > "$work/piece.bin"
auth=(-H "Authorization: Bearer $token")
tus=(-H "Tus-Resumable: 1.0.0")

# The statements since the last reset: $writes (INSERT, UPDATE, DELETE, or a
# WITH that does one) and $statements (all but the counting itself), from
# PostgreSQL; and $transactions, the service's round trips to it (each one
# transaction: a statement alone, or a group-committed batch of writes), from
# its own /metrics. (pg_stat_statements does not see the batches' BEGIN and
# COMMIT, which travel in libpq's pipeline mode.)
round_trips() {
  curl -sf "$base/metrics" | awk '/^s3uploader_db_query_duration_seconds_count/ {s += $NF} END {printf "%d", s}'
}
reset_counts() {
  psql -qAt "$db" -c "SELECT pg_stat_statements_reset()" > /dev/null
  trips0=$(round_trips)
}
# Each statement's text without the comment lines our SQL files begin with.
statements_sql="
  WITH s AS (
    SELECT calls, regexp_replace(query, '^(\s*--[^\n]*\n)*\s*', '') AS text
    FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query !~* 'pg_stat_')
  SELECT calls, text, (text ~* '^(INSERT|UPDATE|DELETE)\M' OR text ~* '^WITH\M.*\m(INSERT|UPDATE|DELETE)\M') AS writes
  FROM s WHERE text !~* '^(BEGIN|COMMIT|ROLLBACK|SET|SHOW|RESET|DISCARD)\M'"
read_counts() {
  local line
  line=$(psql -qAt "$db" -F ' ' -c "
    SELECT COALESCE(SUM(calls) FILTER (WHERE writes), 0), COALESCE(SUM(calls), 0) FROM ($statements_sql) q")
  read -r writes statements <<< "$line"
  transactions=$(($(round_trips) - trips0))
}
per() { awk -v a="$1" -v n="$2" 'BEGIN {printf "%.2f", a / n}'; }
rows=()
details=()
record() {  # record LABEL COUNT
  read_counts
  rows+=("$1|$(per "$writes" "$2")|$(per "$statements" "$2")|$(per "$transactions" "$2")")
  # Which writes, each with its calls per upload.
  details+=("$1:" "$(psql -qAt "$db" -F ' ' -c "
    SELECT to_char(calls::numeric / $2, 'FM990.00'), left(regexp_replace(text, '\s+', ' ', 'g'), 90)
    FROM ($statements_sql) q WHERE writes ORDER BY calls DESC" | sed 's/^/  /')")
}
expect() { grep -q "$@" "$work/out" || { echo "unexpected answer: $(cat "$work/out")" >&2; exit 1; }; }

echo "multipart POST x $uploads..."
reset_counts
for i in $(seq "$uploads"); do
  curl -sf -o "$work/out" "${auth[@]}" -F "file=@$work/1k.bin;filename=form-$i.bin" "$base/upload"
  expect '"file_size":1024'
done
record "multipart POST, 1 KiB" "$uploads"

echo "PUT x $uploads..."
reset_counts
for i in $(seq "$uploads"); do
  curl -sf -o "$work/out" "${auth[@]}" -T "$work/1k.bin" "$base/upload/put-$i.bin"
  expect '"file_size":1024'
done
record "PUT, 1 KiB" "$uploads"

echo "tus creation-with-upload x $uploads..."
reset_counts
for i in $(seq "$uploads"); do
  curl -sf -o /dev/null -D "$work/out" "${auth[@]}" "${tus[@]}" -H "Upload-Length: 1024" \
    -H "Content-Type: application/offset+octet-stream" --data-binary "@$work/1k.bin" "$base/upload/resumable"
  expect -i '^upload-offset: 1024'
done
record "tus creation-with-upload, 1 KiB" "$uploads"

echo "tus create, then $patches PATCHes x $uploads..."
length=$((patches * 256 * 1024))
locations=()
reset_counts
for i in $(seq "$uploads"); do
  curl -sS --fail-with-body -o "$work/body" -D "$work/out" "${auth[@]}" "${tus[@]}" -H "Upload-Length: $length" \
    -X POST "$base/upload/resumable" || { cat "$work/out" "$work/body"; exit 1; }
  locations+=("$(awk 'tolower($1) == "location:" {print $2}' "$work/out" | tr -d '\r')")
done
record "tus create (empty)" "$uploads"
reset_counts
for location in "${locations[@]}"; do
  for p in $(seq 0 $((patches - 1))); do
    curl -sS --fail-with-body -o "$work/body" -D "$work/out" -X PATCH "${auth[@]}" "${tus[@]}" \
      -H "Content-Type: application/offset+octet-stream" -H "Upload-Offset: $((p * 256 * 1024))" \
      --data-binary "@$work/piece.bin" "$location" || { cat "$work/out" "$work/body"; exit 1; }
  done
  expect -i "^upload-offset: $length"
done
record "tus PATCH, 256 KiB (the last one completes)" "$((uploads * patches))"

stop_server
printf '\nper upload (PostgreSQL, pg_stat_statements; %s uploads of each kind)\n' "$uploads"
printf '%-46s %8s %11s %13s\n' kind writes statements transactions
json=""
for r in "${rows[@]}"; do
  IFS='|' read -r kind w a c <<< "$r"
  printf '%-46s %8s %11s %13s\n' "$kind" "$w" "$a" "$c"
  json+="${json:+,}{\"kind\":\"$kind\",\"writes\":$w,\"statements\":$a,\"transactions\":$c}"
done
printf '\n%s\n' "${details[@]}"
mkdir -p bench/results
printf '{"benchmark":"db_writes","date":"%s","uploads":%s,"patches":%s,"rows":[%s]}\n' \
  "$(date -u +%FT%TZ)" "$uploads" "$patches" "$json" > bench/results/db_writes.json
echo "raw results: bench/results/db_writes.json"
