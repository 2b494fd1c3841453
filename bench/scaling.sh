#!/usr/bin/env bash
# Benchmark (issue 25): how the service's cost grows, on local disk and on a
# real radosgw, plotted. Four series, each point on a fresh server (so its
# peak RSS is that point's own):
#   size         throughput, service CPU-s per GiB and peak RSS against the
#                file's size (1 MiB .. 4 GiB; small files are sent many
#                times, one after another, so each point moves >= 1 GiB or
#                64 files)
#   concurrency  aggregate throughput, p50/p99 latency and peak RSS against
#                concurrent 64 MiB uploads (1 .. 256)
#   idle         RSS against idle keep-alive connections (100 .. 10,000;
#                one store is enough: an idle connection never reaches it)
#   small        1 KiB multipart uploads per second and p99 against wrk's
#                connections (1 .. 256)
# Each row also says where the time went: the machine's busy share, the
# cores the service and the store (radosgw + OSD + monitor) used, and the
# share spent waiting for the disk (iowait), so the charts say why
# throughput stops growing. The machine's own bounds are measured first:
# the disk's sequential write with fsync (dd) and a presigned PUT of 1 GiB
# straight to radosgw (curl).
# Writes CSV to bench/results/scaling-*.csv and, with Debian's gnuplot,
# PNG charts to docs/images/scaling-*.png (shown in docs/performance.md).
#
# S3UP_SCALING_STORES="local s3" (default both), S3UP_SCALING_QUICK=1 for a
# short pass (fewer, smaller points; about 3 minutes) that checks the script.
# The full run takes about 15 minutes here.
# Usage: bench/scaling.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/s3_peer.sh scaling
read -r -a stores <<< "${S3UP_SCALING_STORES:-local s3}"
quick=${S3UP_SCALING_QUICK:-0}
if [ "$quick" = 1 ]; then
  sizes=(1 16 256) concurrencies=(1 4 16) idles=(100 1000) smalls=(1 8 64) small_seconds=3
else
  sizes=(1 16 256 1024 4096) concurrencies=(1 4 16 64 256) idles=(100 1000 10000) smalls=(1 8 64 256) small_seconds=10
fi
results=bench/results
images=docs/images
mkdir -p "$results" "$images"
ulimit -n "$(ulimit -Hn)"

MiB=$((1024 * 1024))
now() { date +%s.%N; }
store_cpu() { if [ "$store" = s3 ]; then cpu_of_pids $(cat "$work"/rgw/run/*.pid); else echo 0; fi; }
# The whole machine's idle and iowait seconds (all cores) so far.
machine() { awk -v t="$tick" '/^cpu / {printf "%.2f %.2f\n", ($5 + $6) / t, $6 / t}' /proc/stat; }
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$server_pid/status"; }
percentile() { sort -n | awk -v p="$1" '{a[NR] = $1} END {i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; print a[i]}'; }

# start_store_server   a fresh server on $store, with its own database.
start_store_server() {
  local dir="$work/$store"
  mkdir -p "$dir"
  if [ "$store" = s3 ]; then
    export S3UP_STORAGE="s3://$bucket/$store-$RANDOM"
  else
    rm -rf "$dir/objects"
    export S3UP_STORAGE="file://$dir/objects"
  fi
  export S3UP_DATABASE="sqlite://$dir/s3uploader.db"
  if [ ! -f "$dir/token" ]; then
    "$bin" migrate > /dev/null 2>&1
    "$bin" user add bench > /dev/null 2>&1
    "$bin" token create bench > "$dir/token" 2>/dev/null
  fi
  token=$(cat "$dir/token")
  S3UP_RATE_LIMIT=0 start_server "$work/server-$store.log"
}

# window_start / window_end   the CPU and machine counters around one run;
# window_end sets $wall, $svc_s, $store_s, $busy, $iowait (shares of all cores).
window_start() { w_t0=$(now); w_svc0=$(cpu_of_pids "$server_pid"); w_store0=$(store_cpu); read -r w_idle0 w_io0 < <(machine); }
window_end() {
  local t1 idle1 io1 cores
  t1=$(now); read -r idle1 io1 < <(machine)
  cores=$(nproc)
  wall=$(calc "$t1 - $w_t0" 3)
  svc_s=$(calc "$(cpu_of_pids "$server_pid") - $w_svc0")
  store_s=$(calc "$(store_cpu) - $w_store0")
  busy=$(calc "1 - ($idle1 - $w_idle0) / ($cores * $wall)" 3)
  iowait=$(calc "($io1 - $w_io0) / ($cores * $wall)" 3)
}

# put FILE NAME   one upload through the service; fails the benchmark unless stored.
put() {
  local out
  out=$(curl -sS -w ' %{http_code}' -T "$1" -H "Authorization: Bearer $token" "http://127.0.0.1:$port/upload/$2")
  [ "${out##* }" = 201 ] || { echo "upload $2 failed: $out" >&2; exit 1; }
}

echo "preparing input files..."
max_size=${sizes[-1]}
head -c $((max_size * MiB)) /dev/urandom > "$work/in-$max_size.bin"
for s in "${sizes[@]}" 64; do
  [ -f "$work/in-$s.bin" ] || head -c $((s * MiB)) "$work/in-$max_size.bin" > "$work/in-$s.bin"
done

# Each the best of three (a bound is what the machine can do; noise only
# takes from it), after the input files are on disk.
echo "the machine's bounds..."
bound_mib=$(( max_size < 1024 ? max_size : 1024 ))
[ -f "$work/in-$bound_mib.bin" ] || head -c $((bound_mib * MiB)) "$work/in-$max_size.bin" > "$work/in-$bound_mib.bin"
sync
best() { sort -n | tail -1; }
disk_mibs=$(for _ in 1 2 3; do
  t0=$(now)
  dd if="$work/in-$bound_mib.bin" of="$work/dd.bin" bs=8M conv=fsync status=none
  calc "$bound_mib / ($(now) - $t0)" 0; echo
  rm -f "$work/dd.bin"
done | best)
direct_mibs=$(if [[ " ${stores[*]} " == *" s3 "* ]]; then for i in 1 2 3; do
  t0=$(now)
  curl -sf -o /dev/null -T "$work/in-$bound_mib.bin" "$("$presign" PUT "$bucket" "direct/bound-$i")"
  calc "$bound_mib / ($(now) - $t0)" 0; echo
done | best; else echo 0; fi)
echo "  disk, sequential write + fsync (dd): $disk_mibs MiB/s; radosgw, presigned PUT (curl): $direct_mibs MiB/s (best of 3, $bound_mib MiB)"
echo "bound,what,mib_s" > "$results/scaling-bounds.csv"
echo "disk,dd of $bound_mib MiB with fsync (best of 3),$disk_mibs" >> "$results/scaling-bounds.csv"
echo "s3,curl presigned PUT of $bound_mib MiB to radosgw (best of 3),$direct_mibs" >> "$results/scaling-bounds.csv"

size_csv="$results/scaling-size.csv"
echo "store,size_mib,files,mib_s,service_cpu_s_per_gib,store_cpu_s_per_gib,peak_rss_mib,busy,iowait" > "$size_csv"
for store in "${stores[@]}"; do
  for s in "${sizes[@]}"; do
    files=$(( s >= 1024 ? 1 : (1024 / s > 64 ? 64 : 1024 / s) ))
    start_store_server
    window_start
    for i in $(seq "$files"); do put "$work/in-$s.bin" "size-$s-$i.bin"; done
    window_end
    gib=$(calc "$s * $files / 1024" 4)
    row="$store,$s,$files,$(calc "$s * $files / $wall" 1),$(calc "$svc_s / $gib"),$(calc "$store_s / $gib"),$(peak_rss_mib),$busy,$iowait"
    echo "size: $row"
    echo "$row" >> "$size_csv"
    stop_server
  done
done

conc_csv="$results/scaling-concurrency.csv"
echo "store,uploads,mib_s,p50_s,p99_s,peak_rss_mib,service_cores,store_cores,busy,iowait" > "$conc_csv"
for store in "${stores[@]}"; do
  for n in "${concurrencies[@]}"; do
    start_store_server
    rm -f "$work"/lat-*
    window_start
    pids=()
    for i in $(seq "$n"); do
      curl -sS -o /dev/null -w '%{time_total} %{http_code}\n' -T "$work/in-64.bin" \
        -H "Authorization: Bearer $token" "http://127.0.0.1:$port/upload/c-$n-$i.bin" > "$work/lat-$i" &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    window_end
    stored=$(cat "$work"/lat-* | awk '$2 == 201' | wc -l)
    [ "$stored" = "$n" ] || { echo "$((n - stored)) of $n concurrent uploads failed" >&2; cat "$work"/lat-* >&2; exit 1; }
    p50=$(cat "$work"/lat-* | awk '{print $1}' | percentile 50)
    p99=$(cat "$work"/lat-* | awk '{print $1}' | percentile 99)
    row="$store,$n,$(calc "64 * $n / $wall" 1),$p50,$p99,$(peak_rss_mib),$(calc "$svc_s / $wall"),$(calc "$store_s / $wall"),$busy,$iowait"
    echo "concurrency: $row"
    echo "$row" >> "$conc_csv"
    stop_server
  done
done

# Idle keep-alive connections: each sends one request, reads its answer and
# stays open; the RSS is read once all are idle.
idle_csv="$results/scaling-idle.csv"
echo "connections,rss_mib,rss_before_mib,kib_per_connection" > "$idle_csv"
store=local
for n in "${idles[@]}"; do
  start_store_server
  sleep 0.5
  before=$(rss_mib)
  rm -f "$work/idle-ready"
  python3 - "$port" "$n" "$work/idle-ready" "$work/idle-done" <<'EOF' &
import socket, sys, os, time
port, n, ready, done = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
conns = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n")
    conns.append(s)
for s in conns:
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("a connection closed before its answer")
        got += chunk
open(ready, "w").close()
while not os.path.exists(done):
    time.sleep(0.1)
EOF
  holder=$!
  for _ in $(seq 600); do [ -f "$work/idle-ready" ] && break; sleep 0.1; done
  [ -f "$work/idle-ready" ] || { echo "the idle connections did not open" >&2; exit 1; }
  sleep 1
  rss=$(rss_mib)
  touch "$work/idle-done"
  wait "$holder"
  rm -f "$work/idle-done"
  row="$n,$rss,$before,$(calc "($rss - $before) * 1024 / $n" 1)"
  echo "idle: $row"
  echo "$row" >> "$idle_csv"
  stop_server
done

small_csv="$results/scaling-small.csv"
echo "store,connections,uploads_s,p50_ms,p99_ms,non_2xx,service_cores,store_cores,busy,iowait" > "$small_csv"
for store in "${stores[@]}"; do
  for c in "${smalls[@]}"; do
    start_store_server
    threads=$(( c < 2 ? 1 : 2 ))
    window_start
    S3UP_BENCH_TOKEN=$token wrk -t"$threads" -c"$c" -d"${small_seconds}s" --latency -s bench/small_upload.lua \
      "http://127.0.0.1:$port/upload" > "$work/wrk.txt"
    window_end
    read -r rate p50 p99 bad < <(parse_wrk < "$work/wrk.txt")
    row="$store,$c,$rate,$p50,$p99,$bad,$(calc "$svc_s / $wall"),$(calc "$store_s / $wall"),$busy,$iowait"
    echo "small: $row"
    echo "$row" >> "$small_csv"
    stop_server
  done
done

echo
echo "charts..."
bench/scaling_plot.sh "$results" "$images"
echo "CSV: $results/scaling-*.csv; charts: $images/scaling-*.png"
