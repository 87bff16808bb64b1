#!/bin/sh
# Build step: installs the browser tests' npm packages (playwright-core
# only; it uses the system Chromium) into the build directory.
# Usage: npm-ci.sh package.json package-lock.json OUTDIR STAMP
# A failed install does not fail the build: the test then retries once
# (offline first) and reports clearly if it still has no playwright-core.
set -u
pkg=$1 lock=$2 out=$3 stamp=$4
mkdir -p "$out"
out=$(cd "$out" && pwd)
stamp="$out/$(basename "$stamp")"
cp "$pkg" "$out/package.json"
cp "$lock" "$out/package-lock.json"
cd "$out" || exit 1
if npm ci --no-audit --no-fund --prefer-offline --loglevel=error >npm-ci.log 2>&1; then
  echo "installed $(ls node_modules | tr '\n' ' ')" >"$stamp"
else
  echo "warning: npm ci failed in $out (see npm-ci.log); the browser test will retry" >&2
  cat npm-ci.log >&2
  echo "npm ci failed" >"$stamp"
fi
exit 0
