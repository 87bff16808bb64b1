#!/bin/sh
# Quick start: install what is needed (Debian 12), build, and start
# whipwhep-server on 127.0.0.1:8080 with its embedded default configuration.
# Extra arguments go to the server (e.g. --listen 127.0.0.1:9000).
set -eu
cd "$(dirname "$0")"
sh scripts/install-deps.sh
sh scripts/build.sh
export GST_PLUGIN_PATH_1_0="$PWD/build/gst${GST_PLUGIN_PATH_1_0:+:$GST_PLUGIN_PATH_1_0}"
exec ./build/server/whipwhep-server --data-dir ./whipwhep-data "$@"
