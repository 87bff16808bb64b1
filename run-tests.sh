#!/bin/sh
# The test command (README, CI): builds, then runs the whole suite.
# Where possible it runs inside a private network namespace whose only
# interface is loopback, so no test can send media anywhere else.
set -eu
cd "$(dirname "$0")"
sh scripts/build.sh
run="meson test -C build --print-errorlogs --num-processes 1 $*"
if [ "${WHIPWHEP_NO_NETNS:-}" = "" ] && command -v unshare >/dev/null 2>&1 \
   && unshare -n true 2>/dev/null; then
  echo "running tests in a loopback-only network namespace"
  exec unshare -n sh -c "ip link set lo up && $run"
fi
echo "running tests without a private network namespace (tests still bind 127.0.0.1 only)"
exec sh -c "$run"
