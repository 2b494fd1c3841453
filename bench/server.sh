# Sourced by the benchmarks: start and stop one `s3uploader serve` on a free
# loopback port, and say which binaries to run. Needs $bin (the binary) and
# $work (a scratch directory).
# start_server [LOG]   sets $server_pid and $port; the log is appended to
# stop_server
server_pid=""
start_server() {
  rm -f "$work/port"
  S3UP_LISTEN=127.0.0.1:0 S3UP_PORT_FILE="$work/port" "$bin" serve 2>> "${1:-$work/server.log}" &
  server_pid=$!
  for _ in $(seq 200); do [ -s "$work/port" ] && break; sleep 0.05; done
  [ -s "$work/port" ] || { echo "the server did not start; see ${1:-$work/server.log}" >&2; exit 1; }
  port=$(cat "$work/port")
}
stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""; }

# bench_binaries   sets $binaries to "label:path" entries: this build
# ("current", $bin) and, if S3UP_BENCH_BASELINE names another build (an older
# one), "baseline", so one invocation measures before and after.
bench_binaries() {
  binaries=("current:$PWD/$bin")
  if [ -n "${S3UP_BENCH_BASELINE:-}" ]; then binaries+=("baseline:$S3UP_BENCH_BASELINE"); fi
}
