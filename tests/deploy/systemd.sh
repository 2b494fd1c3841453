#!/usr/bin/env bash
# The systemd unit (deploy/systemd/s3uploader.service): systemd-analyze
# verify finds nothing to say of it, and `security --offline=true` rates its
# sandboxing at an exposure of at most 2.0 ("OK"), and it says what the
# service needs (its own user, a state directory, a stop that outlasts the
# graceful shutdown). Both run offline: no systemd need be running.
# Usage: systemd.sh BINARY
set -euo pipefail
binary=$1
here=$(cd "$(dirname "$0")" && pwd)
unit_file="$here/../../deploy/systemd/s3uploader.service"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# verify wants ExecStart's binary to exist: the one just built stands in.
sed "s|^ExecStart=/usr/local/bin/s3uploader|ExecStart=$binary|" "$unit_file" > "$work/s3uploader.service"
grep -q "^ExecStart=$binary serve$" "$work/s3uploader.service" || { echo "FAIL: ExecStart is not '/usr/local/bin/s3uploader serve'"; exit 1; }
if ! out=$(systemd-analyze verify "$work/s3uploader.service" 2>&1) || [ -n "$out" ]; then
  echo "FAIL: systemd-analyze verify:"
  echo "$out"
  exit 1
fi
echo "systemd-analyze verify: clean"

report=$(systemd-analyze security --offline=true "$work/s3uploader.service" 2>&1)
level=$(sed -n 's/.*Overall exposure level for s3uploader.service: \([0-9.]*\).*/\1/p' <<< "$report")
[ -n "$level" ] || { echo "FAIL: no exposure level in:"; echo "$report"; exit 1; }
echo "systemd-analyze security: exposure $level"
awk -v l="$level" 'BEGIN {exit !(l <= 2.0)}' || { echo "FAIL: exposure $level is above 2.0"; echo "$report"; exit 1; }

# What the unit promises of the service: its own user, a state directory,
# restarts on failure, a stop that waits for the graceful shutdown.
for line in DynamicUser=yes StateDirectory=s3uploader Restart=on-failure Type=exec KillSignal=SIGTERM; do
  grep -qx "$line" "$unit_file" || { echo "FAIL: $line missing"; exit 1; }
done
grace=$("$binary" config 2>/dev/null | sed -n 's/^shutdown_grace = "\(.*\)s"$/\1/p')
stop=$(sed -n 's/^TimeoutStopSec=//p' "$unit_file")
[ -n "$grace" ] && [ "$stop" -gt "$grace" ] || { echo "FAIL: TimeoutStopSec=$stop does not outlast shutdown_grace ($grace s)"; exit 1; }
echo "ok"
