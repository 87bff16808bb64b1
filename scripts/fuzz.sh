#!/bin/sh
# Builds the libFuzzer targets (clang, -Dfuzzing=true, ASan+UBSan) into
# ./build-fuzz and runs each for a bounded time.
#
#   scripts/fuzz.sh            # 60 s per target
#   scripts/fuzz.sh 30         # 30 s per target
#   scripts/fuzz.sh 600 config # one target, 10 minutes
#
# Seeds come from tests/fuzz/corpus/<target>/ (committed, small); inputs the
# fuzzer finds go to build-fuzz/fuzz-corpus/<target>/ (not committed), crash
# reproducers to build-fuzz/fuzz-artifacts/. A crash fails the script: copy
# the reproducer into tests/fuzz/corpus/<target>/ (every `meson test` then
# replays it through test-fuzz-replay-<target>) and fix the bug.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-"whip-offer whep-offer live-input-json config"}
build=${WHIPWHEP_FUZZ_BUILD:-build-fuzz}

if [ ! -f "$build/build.ninja" ]; then
  CC=clang CXX=clang++ meson setup "$build" --werror -Dfuzzing=true \
    -Db_sanitize=address,undefined -Db_lundef=false \
    -Dcpp_args=-fsanitize=fuzzer-no-link
fi
bins=""
for t in $targets; do bins="$bins tests/fuzz/fuzz-$t"; done
# shellcheck disable=SC2086
ninja -C "$build" $bins gst/libgstwhipwhep.so

export GST_PLUGIN_PATH_1_0="$root/$build/gst"
export GST_REGISTRY_1_0="$root/$build/registry-fuzz.bin"
export GST_REGISTRY_FORK=no  # the scanner helper cannot load an ASan plugin
export GST_DEBUG='*:0'
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0"
mkdir -p "$build/fuzz-artifacts"

# Scan the registry once with leak detection off (system plugins leak on
# load; see tests/sanitizers/registry-warmup.cpp).
ASAN_OPTIONS=detect_leaks=0 "$build/tests/fuzz/fuzz-config" -runs=0 \
  tests/fuzz/corpus/config >/dev/null 2>&1 || true

# Slow unwinding: Debian's GLib has no frame pointers, suppressions need it.
export ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0:malloc_context_size=30:allocator_may_return_null=1"
# One target per processor at a time: each still gets its full time on a
# core of its own, and CI's fuzzing takes half the wall-clock time.
jobs=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
fuzz_one() {
  t=$1
  mkdir -p "$build/fuzz-corpus/$t"
  # FUZZ_SEED (CI sets it): the same exploration every run, so CI fails on
  # a regression, not on the luck of the draw; by hand, a new seed each time.
  if ! "$build/tests/fuzz/fuzz-$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      ${FUZZ_SEED:+-seed="$FUZZ_SEED"} \
      -max_len=16384 -print_final_stats=1 \
      -artifact_prefix="$build/fuzz-artifacts/$t-" \
      "$build/fuzz-corpus/$t" "tests/fuzz/corpus/$t" > "$build/fuzz-$t.log" 2>&1; then
    echo failed > "$build/fuzz-$t.status"
  else
    echo ok > "$build/fuzz-$t.status"
  fi
}
running=0
for t in $targets; do
  echo "== fuzz-$t for ${secs}s"
  rm -f "$build/fuzz-$t.status"
  fuzz_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait
    running=0
  fi
done
wait
status=0
for t in $targets; do
  if [ "$(cat "$build/fuzz-$t.status" 2>/dev/null)" != ok ]; then
    echo "fuzz-$t FAILED (log: $build/fuzz-$t.log):"
    tail -40 "$build/fuzz-$t.log"
    status=1
  else
    echo "fuzz-$t:"
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb|cov:" "$build/fuzz-$t.log" | tail -3
  fi
done
exit $status
