#!/usr/bin/env bash
# scripts/sanitize.sh -- the C++ test suites under a sanitizer, in a build directory of their own.
#
#   scripts/sanitize.sh asan   build-asan/: g++ -fsanitize=address,undefined; every C++ test
#                              (tessera_plan_tests, tessera_tests) through ctest
#   scripts/sanitize.sh tsan   build-tsan/: g++ -fsanitize=thread; the runtime and adapt tests
#                              of tessera_tests (its Model, Store, Errors and Profile suites are
#                              left out: single-threaded)
#
# The engine and the tests are instrumented; LibTorch, libzmq, libgomp and GoogleTest are
# not. Reports from those libraries are suppressed by library, each with its reason, in
# tests/sanitizers/*.supp (docs/testing.md). Any report that is not suppressed fails the
# test it happens in (halt_on_error / exitcode). Builds at nice 19 with JOBS (default 2)
# jobs; build/ is never touched. Extra ctest arguments follow the mode (e.g. -R Wire).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: scripts/sanitize.sh asan|tsan [ctest arguments]}
shift
JOBS=${JOBS:-2}
SUPP="$PWD/tests/sanitizers"
export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1

case "$mode" in
  asan)
    dir=build-asan
    # vptr: UBSan's dynamic type check needs the typeinfo of LibTorch's classes, which libc10 does
    # not export (the link fails: undefined typeinfo for c10::DynamicType)
    flags="-fsanitize=address,undefined -fno-sanitize=vptr -fno-omit-frame-pointer"
    targets=(tessera_plan_tests tessera_tests)
    export ASAN_OPTIONS="detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
    export LSAN_OPTIONS="suppressions=$SUPP/lsan.supp:print_suppressions=0"
    export UBSAN_OPTIONS="suppressions=$SUPP/ubsan.supp:print_stacktrace=1:halt_on_error=1"
    ;;
  tsan)
    dir=build-tsan
    flags="-fsanitize=thread -fno-omit-frame-pointer"
    targets=(tessera_plan_tests tessera_tests)  # ctest needs both binaries to list its tests
    export TSAN_OPTIONS="suppressions=$SUPP/tsan.supp:halt_on_error=1:second_deadlock_stack=1:history_size=4"
    ;;
  *) echo "scripts/sanitize.sh: unknown mode '$mode' (asan or tsan)" >&2; exit 2 ;;
esac

if [[ ! -f $dir/build.ninja ]]; then
  cmake -S . -B "$dir" -G Ninja -DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTESSERA_BUILD_PYTHON=OFF -DTESSERA_BUILD_TESTS=ON \
    -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" -DCMAKE_SHARED_LINKER_FLAGS="$flags" \
    -DCMAKE_GTEST_DISCOVER_TESTS_DISCOVERY_MODE=PRE_TEST >/dev/null
fi
start=$(date +%s)
nice -n 19 cmake --build "$dir" -j "$JOBS" --target "${targets[@]}"
echo "tessera $mode: built in $(($(date +%s) - start)) s"
select=()
if [[ $mode == tsan ]]; then  # the suites of tessera_tests but the single-threaded ones
  suites=$("$dir/tessera_tests" --gtest_list_tests | sed -n 's/^\([A-Za-z_0-9]*\)\..*/\1/p' |
           grep -vxE 'Model|Store|Errors|Profile' | sort -u | paste -sd'|')
  select=(-R "^($suites)\\.")
fi
ctest --test-dir "$dir" --output-on-failure -j 2 "${select[@]}" "$@"
