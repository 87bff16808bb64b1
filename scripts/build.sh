#!/bin/sh
# Configures (once) and builds into ./build with warnings as errors.
set -eu
cd "$(dirname "$0")/.."
if [ ! -f build/build.ninja ]; then
  meson setup build --werror
fi
ninja -C build
