#!/usr/bin/env bash
# make fuzz: build the libFuzzer targets (plugins/fuzz/, clang, ASan+UBSan) in build/fuzz, replay
# the seed corpus and the regression inputs (CTest), then fuzz each target for FUZZ_SECONDS.
# A finding (crash, sanitizer report, broken contract, timeout) fails the run and is saved as
# build/fuzz/findings/<target>/crash-* etc. To turn it into a regression test:
#   1. reproduce:  build/fuzz/plugins/fuzz/<target> build/fuzz/findings/<target>/crash-...
#   2. keep it:    mkdir -p plugins/fuzz/regressions/<target> && cp that file there (a name
#                  that says what it was), and commit it with the fix
#   3. make fuzz   (or ctest -L fuzz in build/fuzz) now replays it on every run
#
#   scripts/fuzz.sh SECONDS_PER_TARGET
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-60}
JOBS=${JOBS:-2}
tree=build/fuzz
command -v clang++ >/dev/null || { echo "fuzz: clang++ not found (make fuzz installs it with apt-get)" >&2; exit 2; }

echo "== fuzz: configure + build $tree (clang, libFuzzer + ASan + UBSan, CPU kernels only)"
cmake -S . -B "$tree" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DSIMAM_FUZZ=ON -DSIMAM_WITH_CUDA=OFF -DSIMAM_WITH_TENSORRT=OFF >"$tree.configure.log" 2>&1 \
  || { cat "$tree.configure.log"; exit 2; }
cmake --build "$tree" -j "$JOBS"

export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1
echo "== fuzz: replay seeds + regressions"
ctest --test-dir "$tree/plugins" -L fuzz --output-on-failure

status=0
summary=()
while read -r target; do
  [ -n "$target" ] || continue
  bin=$tree/plugins/fuzz/$target
  work=$tree/work/$target          # grows during the run; the checked-in corpus stays as it is
  findings=$tree/findings/$target
  rm -rf "$work" "$findings"
  mkdir -p "$work" "$findings"
  echo "== fuzz: $target for ${SECONDS_PER_TARGET}s"
  log=$tree/$target.log
  if "$bin" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$findings/" "$work" "plugins/fuzz/corpus/$target" >"$log" 2>&1; then
    result=ok
  else
    result="FINDING (see $log; input saved in $findings/)"
    status=1
    tail -40 "$log"
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  summary+=("$target: ${runs:-?} executions in ${SECONDS_PER_TARGET}s, coverage ${cov:-?} edges: $result")
done <"$tree/simam_fuzz_targets.txt"

echo "== fuzz: summary"
printf '  %s\n' "${summary[@]}"
sed 's/^/  /' "$tree/simam_fuzz_skipped.txt"
if [ $status -ne 0 ]; then
  echo "fuzz: a target failed; reproduce and keep its input as a regression (steps at the top of scripts/fuzz.sh)"
fi
exit $status
