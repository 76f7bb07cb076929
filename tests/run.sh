#!/bin/sh
# tests/run.sh - runs the whole test suite; `make test` calls it with BUILD set.
#
# Runs every binary in $BUILD/tests/unit, then every one in $BUILD/tests/integration,
# from the repository root, each under a deadline (TEST_TIMEOUT seconds, default 300),
# then the Python package's tests (python/tests, pytest with Debian's /usr/bin/python3
# against this build's daffid; named "test_python" for TEST_FILTER).
# Their output is shown as it comes. Passed and failed tests are counted from cmocka's
# summary lines and pytest's ("N passed, N failed, N error"; errors count as
# failures); a binary that crashed, timed out or exited non-zero without reporting
# a failure counts as one failure. Skipped tests are counted apart. Ends with exactly
# one line "N passed, N failed" (", N skipped" added when some were) and exits 0 only
# when nothing failed.
#
# Environment: BUILD (default "build"), TEST_TIMEOUT (seconds per binary; the Python
# suite gets twice that), TEST_FILTER (optional substring: only binaries whose name
# contains it run).

BUILD=${BUILD:-build}
TEST_TIMEOUT=${TEST_TIMEOUT:-300}
export BUILD
# cmocka's summary lines are what we count: make sure they go to stdout as text.
CMOCKA_MESSAGE_OUTPUT=stdout
export CMOCKA_MESSAGE_OUTPUT
# Line-buffer the binaries' stdout so a crash does not swallow what was printed before
# it and stdout/stderr interleave in order. stdbuf works by LD_PRELOAD, which ASan
# refuses unless told not to check the link order.
linebuf=""
if command -v stdbuf >/dev/null 2>&1; then
    linebuf="stdbuf -oL -eL"
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
    export ASAN_OPTIONS
fi

cd "$(dirname "$0")/.." || exit 2

work=$(mktemp -d "${TMPDIR:-/tmp}/daffid-run.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT INT TERM

total_passed=0
total_failed=0
total_skipped=0
failed_bins=""

# run_one BINARY: runs it, shows its output, adds its counts to the totals.
run_one() {
    bin=$1
    name=${bin#"$BUILD"/tests/}
    echo "=== $name"
    # The exit status is written to a file because a pipeline's status is tee's.
    { $linebuf timeout -k 10 "$TEST_TIMEOUT" "$bin" 2>&1; echo $? >"$work/rc"; } | tee "$work/out"
    rc=$(cat "$work/rc")
    passed=$(sed -n 's/.*\[  PASSED  \] \([0-9][0-9]*\) test(s)\..*/\1/p' "$work/out" |
             awk '{ s += $1 } END { print s + 0 }')
    failed=$(sed -n 's/.*\[  FAILED  \] \([0-9][0-9]*\) test(s), listed below:.*/\1/p' "$work/out" |
             awk '{ s += $1 } END { print s + 0 }')
    # skipped tests (e.g. test_nats without nats-server) are neither passed nor failed
    skipped=$(sed -n 's/^ *\([0-9][0-9]*\) SKIPPED TEST(S).*/\1/p' "$work/out" |
              awk '{ s += $1 } END { print s + 0 }')
    total_skipped=$((total_skipped + skipped))
    # a group's setup or teardown that failed (cmocka does not count it, nor does it
    # make the binary exit non-zero): e.g. a daemon that did not stop cleanly
    groups=$(grep -c '\[  FAILED  \] GROUP \(SETUP\|TEARDOWN\)' "$work/out")
    failed=$((failed + groups))
    if [ "$rc" -ne 0 ]; then
        case $rc in
            124|137) why="timed out after ${TEST_TIMEOUT}s" ;;
            *) if [ "$rc" -gt 128 ]; then why="killed by signal $((rc - 128))"
               else why="exited with status $rc"; fi ;;
        esac
        echo "=== $name: $why"
        # A crash or a timeout leaves tests unreported: at least one failure.
        [ "$failed" -eq 0 ] && failed=1
    fi
    [ "$failed" -ne 0 ] && failed_bins="$failed_bins $name"
    total_passed=$((total_passed + passed))
    total_failed=$((total_failed + failed))
}

for kind in unit integration; do
    for bin in "$BUILD"/tests/$kind/test_*; do
        [ -f "$bin" ] && [ -x "$bin" ] || continue
        case $bin in *.o|*.d) continue ;; esac
        if [ -n "$TEST_FILTER" ]; then
            case ${bin##*/} in *"$TEST_FILTER"*) ;; *) continue ;; esac
        fi
        run_one "$bin"
    done
done

# run_pytest: the Python suite, counted from pytest's summary line.
run_pytest() {
    name=python
    echo "=== $name (pytest python/tests)"
    { PYTHONDONTWRITEBYTECODE=1 BUILD=$BUILD $linebuf timeout -k 10 $((TEST_TIMEOUT * 2)) \
        /usr/bin/python3 -m pytest -q -p no:cacheprovider python/tests 2>&1
      echo $? >"$work/rc"; } | tee "$work/out"
    rc=$(cat "$work/rc")
    summary=$(grep -E '[0-9]+ (passed|failed|error)' "$work/out" | tail -n 1)
    passed=$(printf '%s\n' "$summary" | sed -nE 's/^(.*[^0-9])?([0-9]+) passed.*/\2/p')
    failed=$(printf '%s\n' "$summary" | sed -nE 's/^(.*[^0-9])?([0-9]+) failed.*/\2/p')
    errors=$(printf '%s\n' "$summary" | sed -nE 's/^(.*[^0-9])?([0-9]+) errors?.*/\2/p')
    passed=${passed:-0}
    failed=$((${failed:-0} + ${errors:-0}))
    if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
        echo "=== $name: pytest exited with status $rc"
        failed=1
    fi
    [ "$failed" -ne 0 ] && failed_bins="$failed_bins $name"
    total_passed=$((total_passed + passed))
    total_failed=$((total_failed + failed))
}

case test_python in *"$TEST_FILTER"*) run_pytest ;; esac

[ -n "$failed_bins" ] && echo "failing binaries:$failed_bins"
if [ "$total_skipped" -ne 0 ]; then
    echo "$total_passed passed, $total_failed failed, $total_skipped skipped"
else
    echo "$total_passed passed, $total_failed failed"
fi
[ "$total_failed" -eq 0 ]
