#!/usr/bin/env bash
# fuzz/run.sh -- runs the fuzz targets of build-fuzz/ and fails on any finding.
#
#   fuzz/run.sh [SECONDS [RUNS [TARGET...]]]
#
# Each target (default: fuzz_wire fuzz_descs fuzz_manifest) runs until RUNS executions
# (default 10000000) or SECONDS of fuzzing (default 3600), whichever comes first, at nice 19,
# on the committed seeds (fuzz/corpus/<target>/, read only) and its working corpus
# (build-fuzz/corpus/<target>/, kept between runs). Limits: 2048 MB RSS, 256 MB per
# allocation, 10 s per input. A crash, a sanitizer report, a leak, an uncaught exception,
# an input over a limit or a failed check stops the target: the input is written to
# build-fuzz/artifacts/, the log to build-fuzz/logs/<target>.log, and the script exits 1
# after running the other targets. Prints one line per target: executions, seconds, exec/s.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${FUZZ_BUILD:-build-fuzz}
SECONDS_EACH=${1:-3600}
RUNS=${2:-10000000}
shift $(($# > 2 ? 2 : $#))
TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=(fuzz_wire fuzz_descs fuzz_manifest)

mkdir -p "$BUILD/artifacts" "$BUILD/logs"
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
status=0
printf "%-14s %12s %9s %9s  %s\n" target executions seconds exec/s result
for t in "${TARGETS[@]}"; do
  work="$BUILD/corpus/$t"
  mkdir -p "$work"
  args=(-max_total_time="$SECONDS_EACH" -runs="$RUNS" -rss_limit_mb=2048 -malloc_limit_mb=256 -timeout=10
        -print_final_stats=1 -artifact_prefix="$BUILD/artifacts/$t-")
  [[ -f fuzz/${t#fuzz_}.dict ]] && args+=(-dict="fuzz/${t#fuzz_}.dict")
  log="$BUILD/logs/$t.log"
  start=$(date +%s%N)
  nice -n 19 "$BUILD/$t" "${args[@]}" "$work" "fuzz/corpus/${t#fuzz_}" >"$log" 2>&1
  rc=$?
  ms=$((($(date +%s%N) - start) / 1000000))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if ((rc == 0)); then
    result=ok
  else
    result="FAILED (exit $rc, log $log)"
    status=1
  fi
  printf "%-14s %12s %7d.%d %9s  %s\n" "$t" "${runs:-?}" $((ms / 1000)) $((ms % 1000 / 100)) "${rate:-?}" "$result"
  if ((rc != 0)); then
    grep -E "ERROR|SUMMARY|check failed|runtime error|terminate|Test unit written" "$log" | head -8 | sed 's/^/    /'
  fi
done
exit $status
