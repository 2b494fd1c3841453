#!/usr/bin/env bash
# The container image (deploy/container/Containerfile), built and run with
# Debian's podman. This machine cannot pull images: the Debian base images
# are made here with mmdebstrap (from the host's apt sources) and imported
# under the names the Containerfile uses.
#
#   tests/deploy/container.sh BINARY          the runtime stage, verbatim, on BINARY
#                                             (the build's): about 2 minutes
#   S3UP_TEST_CONTAINER=full tests/deploy/container.sh BINARY
#                                             the whole Containerfile, compiled
#                                             inside the image: about 15 minutes
#
# Then: an upload and a download through the container on its own volume,
# its HEALTHCHECK, and the same against radosgw and PostgreSQL on the host
# (S3UP_TEST_S3_*, S3UP_TEST_PG_*, as scripts/test exports them). podman
# runs with runc, cgroupfs and no default ulimits (this machine's crun and
# ulimits fail); those are the test's settings, not the image's.
set -euo pipefail
binary=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
for tool in podman mmdebstrap curl; do
  command -v "$tool" > /dev/null || { echo "SKIP: $tool is not installed (scripts/install-deps --test)"; exit 77; }
done
if ldd "$binary" | grep libasan > /dev/null; then
  echo "SKIP: a sanitizer build; the container test runs with the release build"
  exit 77
fi

work=$(mktemp -d /tmp/s3up-container-XXXXXX)
image=localhost/s3uploader-test:$$
containers=()
cleanup() {
  for c in "${containers[@]}"; do podman rm -f "$c" > /dev/null 2>&1 || true; done
  podman rmi -f "$image" > /dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
printf '[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\n' \
  > "$work/containers.conf"
export CONTAINERS_CONF=$work/containers.conf

fail() { echo "FAIL: $*"; exit 1; }
step() { echo "== $* ($(date +%T))"; }

# Base images, once per machine: Debian 12 minbase under both names.
if ! podman image exists docker.io/library/debian:bookworm-slim ||
   ! podman image exists docker.io/library/debian:bookworm; then
  step "making the Debian base images with mmdebstrap"
  mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm "$work/base.tar"
  podman import --quiet "$work/base.tar" docker.io/library/debian:bookworm > /dev/null
  podman tag docker.io/library/debian:bookworm docker.io/library/debian:bookworm-slim
  rm -f "$work/base.tar"
fi

containerfile=$root/deploy/container/Containerfile
source_id=$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)
if [ "${S3UP_TEST_CONTAINER:-}" = full ]; then
  step "building the whole Containerfile"
  # npm reaches its registry through this machine's network, whose proxy
  # may present a CA only the host trusts: the build is given the host's.
  podman build --quiet --pull=never --network host --format docker -f "$containerfile" \
    -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/host-ca.crt:ro --build-arg NODE_EXTRA_CA_CERTS=/etc/ssl/host-ca.crt \
    --build-arg SOURCE_ID="$source_id" -t "$image" "$root" > /dev/null
else
  # The shipped runtime stage, verbatim, after a build stage that hands it
  # this build's binary and the packages that own the libraries it links
  # (deploy/container/runtime-packages, as the real build stage runs it).
  step "building the runtime stage on $binary"
  mkdir -p "$work/context"
  cp "$binary" "$work/context/s3uploader"
  strip "$work/context/s3uploader"
  "$root/deploy/container/runtime-packages" "$binary" > "$work/context/runtime-packages"
  runtime_from=$(grep -n '^FROM docker.io/library/debian:bookworm-slim' "$containerfile" | cut -d: -f1)
  [ -n "$runtime_from" ] || fail "the Containerfile has no bookworm-slim stage"
  {
    echo "FROM docker.io/library/debian:bookworm AS build"
    echo "COPY s3uploader runtime-packages /build/"
    echo "RUN mkdir -p /build/src && mv /build/s3uploader /build/src/"
    tail -n +"$runtime_from" "$containerfile"
  } > "$work/context/Containerfile"
  podman build --quiet --pull=never --network host --format docker -f "$work/context/Containerfile" \
    -t "$image" "$work/context" > /dev/null
fi

step "checking the image"
inspect() { podman image inspect --format "$1" "$image"; }
[ "$(inspect '{{.Config.User}}')" = s3uploader ] || fail "runs as '$(inspect '{{.Config.User}}')', not s3uploader"
inspect '{{json .Config.ExposedPorts}}' | grep '"8080/tcp"' > /dev/null || fail "no EXPOSE 8080"
inspect '{{json .Config.Volumes}}' | grep '"/data"' > /dev/null || fail "no /data volume"
inspect '{{json .Config.Healthcheck}}' | grep '"s3uploader","check"' > /dev/null || fail "no HEALTHCHECK by s3uploader check"
inspect '{{json .Config.Entrypoint}}' | grep '"s3uploader"' > /dev/null || fail "the entrypoint is not s3uploader"
if podman run --rm --network none --entrypoint /bin/sh "$image" -c 'command -v g++ || command -v cmake'; then
  fail "build tools in the runtime image"
fi
podman run --rm --network none "$image" version | grep "^s3uploader 0\." > /dev/null || fail "s3uploader version"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Starts the image as container $1 listening on a free loopback port (the
# host's network: the peers are on its loopback), with more -e settings.
start() {
  local name=$1
  shift
  port=$(free_port)
  containers+=("$name")
  # (No health check timer: it needs systemd; `podman healthcheck run` runs it.)
  podman run -d --name "$name" --network host --health-interval disable -e S3UP_LISTEN="127.0.0.1:$port" "$@" \
    "$image" > /dev/null
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$port/readyz" > /dev/null 2>&1 && return 0
    sleep 0.2
  done
  podman logs "$name"
  fail "$name did not become ready"
}

# An upload and its download through container $1 on $port, with a user
# made inside it.
round_trip() {
  local name=$1
  podman exec "$name" s3uploader user add alice > /dev/null
  local token
  token=$(podman exec "$name" s3uploader token create alice | tail -1 | tr -d '[:space:]')
  head -c $((6 * 1024 * 1024 + 17)) /dev/urandom > "$work/upload.bin"
  local answer id
  answer=$(curl -fsS -T "$work/upload.bin" -H "Authorization: Bearer $token" "http://127.0.0.1:$port/upload/upload.bin")
  id=$(echo "$answer" | python3 -c 'import json,sys; print(json.load(sys.stdin)["file_id"])')
  curl -fsS -H "Authorization: Bearer $token" -o "$work/download.bin" "http://127.0.0.1:$port/files/$id/content"
  cmp "$work/upload.bin" "$work/download.bin" || fail "$name: the download differs from the upload"
  podman healthcheck run "$name" > /dev/null || fail "$name: its HEALTHCHECK fails"
  echo "$name: 6 MiB up and down, healthy"
}

step "on its own volume (local disk, SQLite)"
start local
round_trip local
podman exec local sh -c 'test -s /data/s3uploader.db && ls /data/objects/u' > /dev/null || fail "nothing in /data"
podman stop --time 20 local > /dev/null
[ "$(podman inspect --format '{{.State.ExitCode}}' local)" = 0 ] || fail "SIGTERM did not end it cleanly"

if [ -n "${S3UP_TEST_S3_ENDPOINT:-}" ] && [ -n "${S3UP_TEST_PG_URL:-}" ]; then
  step "against radosgw and PostgreSQL on the host"
  bucket=container-$$
  # CreateBucket signed by curl (radosgw wants the payload's hash signed too).
  empty_sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
  curl -fsS -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3UP_TEST_S3_ACCESS_KEY:$S3UP_TEST_S3_SECRET_KEY" \
    -H "x-amz-content-sha256: $empty_sha256" "$S3UP_TEST_S3_ENDPOINT/$bucket" > /dev/null || fail "cannot create the bucket"
  database=s3up_container_$$
  psql "$S3UP_TEST_PG_URL?sslmode=verify-full&sslrootcert=$S3UP_TEST_PG_CA_FILE" -qc "CREATE DATABASE $database"
  start stack -e S3UP_STORAGE="s3://$bucket/objects" -e S3UP_S3_ENDPOINT="$S3UP_TEST_S3_ENDPOINT" \
    -e AWS_ACCESS_KEY_ID="$S3UP_TEST_S3_ACCESS_KEY" -e AWS_SECRET_ACCESS_KEY="$S3UP_TEST_S3_SECRET_KEY" \
    -e S3UP_PART_SIZE=5MiB -v "$S3UP_TEST_PG_CA_FILE:/etc/s3uploader/pg-ca.pem:ro" \
    -e S3UP_DATABASE="${S3UP_TEST_PG_URL%/*}/$database?sslmode=verify-full&sslrootcert=/etc/s3uploader/pg-ca.pem"
  round_trip stack
  # grep reads it all (-q would stop early, and pipefail then counts the
  # writer's SIGPIPE as a failure when the log is long).
  podman logs stack 2>&1 | grep "storage s3://$bucket" > /dev/null || fail "stack: not on S3"
fi
echo "PASS"
