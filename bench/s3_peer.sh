# Sourced by the S3 benchmarks, after `set -euo pipefail` and `cd` to the
# project: builds with the bench tools, makes $work (a scratch directory named
# after $1), starts a radosgw of the benchmark's own in it with a bucket
# $bucket, and exports what the service and s3_presign need to reach it. The
# EXIT trap stops the server (if one runs), the radosgw, and removes $work.
scripts/install-deps --test
BUILD_DIR=build scripts/build -DS3UP_BUILD_BENCH=ON > /dev/null
bin=build/src/s3uploader
presign=build/bench/s3_presign
work=$(mktemp -d -p "$PWD/build" "bench-$1-XXXXXX")
cleanup() {
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  scripts/peers/radosgw stop "$work/rgw" || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "starting radosgw..."
eval "$(scripts/peers/radosgw start "$work/rgw")"
export S3UP_S3_ENDPOINT="$S3UP_TEST_S3_ENDPOINT" AWS_ACCESS_KEY_ID="$S3UP_TEST_S3_ACCESS_KEY" \
  AWS_SECRET_ACCESS_KEY="$S3UP_TEST_S3_SECRET_KEY"
bucket=bench
curl -sf -X PUT "$("$presign" PUT "$bucket" "")" > /dev/null
