# Sourced by the benchmarks: a scratch directory, start and stop one
# `s3uploader serve` on a free loopback port, and say which binaries to run.
# The server needs $bin (the binary) and $work.
# bench_workdir NAME   makes $work (build/bench-NAME-XXXXXX); at exit the
#                      server is stopped, bench_cleanup_more runs if the
#                      benchmark defines it (its peers), and $work goes
# start_server [LOG]   sets $server_pid and $port; the log is appended to
# port_from FILE WHAT LOG
# stop_server
# parse_wrk            wrk --latency's report on stdin -> "rate p50_ms p99_ms non2xx"
# cpu_of_pids PID...   CPU seconds (user + system) the processes used so far
# calc EXPR [DIGITS]   arithmetic with awk, DIGITS (2) after the point
# peak_rss_mib         the running server's peak RSS so far, MiB
server_pid=""
bench_workdir() {
  work=$(mktemp -d -p "$PWD/build" "bench-$1-XXXXXX")
  trap bench_cleanup EXIT
}
bench_cleanup() {
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  if declare -F bench_cleanup_more > /dev/null; then bench_cleanup_more; fi
  rm -rf "$work"
}
start_server() {
  rm -f "$work/port"
  S3UP_LISTEN=127.0.0.1:0 S3UP_PORT_FILE="$work/port" "$bin" serve 2>> "${1:-$work/server.log}" &
  server_pid=$!
  port=$(port_from "$work/port" "the server" "${1:-$work/server.log}")
}
# port_from FILE WHAT LOG   the port a process just started writes to FILE
#                           (10 s at most; else says WHAT did not start)
port_from() {
  for _ in $(seq 200); do [ -s "$1" ] && break; sleep 0.05; done
  [ -s "$1" ] || { echo "$2 did not start; see $3" >&2; exit 1; }
  cat "$1"
}
stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""; }

# bench_binaries   sets $binaries to "label:path" entries: this build
# ("current", $bin) and, if S3UP_BENCH_BASELINE names another build (an older
# one), "baseline", so one invocation measures before and after.
bench_binaries() {
  binaries=("current:$PWD/$bin")
  if [ -n "${S3UP_BENCH_BASELINE:-}" ]; then binaries+=("baseline:$S3UP_BENCH_BASELINE"); fi
}

parse_wrk() {
  awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rate = $2 }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    /Non-2xx/ { bad = $NF }
    END { printf "%.0f %.2f %.2f %d\n", rate, p50, p99, bad + 0 }'
}

tick=$(getconf CLK_TCK)
cpu_of_pids() {
  for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done |
    awk -v t="$tick" '{s += $1} END {printf "%.3f", s / t}'
}
calc() { awk "BEGIN {printf \"%.${2:-2}f\", $1}"; }
peak_rss_mib() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$server_pid/status"; }
