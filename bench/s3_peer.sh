# Sourced by the S3 benchmarks, after `set -euo pipefail` and `cd` to the
# project: builds with the bench tools, makes $work (a scratch directory named
# after $1), starts a radosgw of the benchmark's own in it with a bucket
# $bucket, and exports what the service and s3_presign need to reach it. The
# EXIT trap stops the server (if one runs), the radosgw, and removes $work;
# bench/server.sh (sourced here) gives the benchmark its server helpers.
scripts/install-deps --test
BUILD_DIR=build scripts/build -DS3UP_BUILD_BENCH=ON > /dev/null
bin=build/src/s3uploader
presign=build/bench/s3_presign
source bench/server.sh
bench_workdir "$1"
bench_cleanup_more() { scripts/peers/radosgw stop "$work/rgw" || true; }

echo "starting radosgw..."
eval "$(scripts/peers/radosgw start "$work/rgw")"
export S3UP_S3_ENDPOINT="$S3UP_TEST_S3_ENDPOINT" AWS_ACCESS_KEY_ID="$S3UP_TEST_S3_ACCESS_KEY" \
  AWS_SECRET_ACCESS_KEY="$S3UP_TEST_S3_SECRET_KEY"
bucket=bench
curl -sf -X PUT "$("$presign" PUT "$bucket" "")" > /dev/null
