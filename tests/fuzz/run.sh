#!/bin/sh
# tests/fuzz/run.sh - runs every fuzz target in $BUILD/fuzz for FUZZ_TIME seconds each
# (`make fuzz` builds them and calls it). A target passes when libFuzzer ran it for the
# whole time without a crash, a leak, a timeout or an out-of-memory; it fails
# otherwise, and the input that broke it is kept in $BUILD/fuzz/NAME.crashes/.
# Corpora grow in $BUILD/fuzz/NAME.corpus/ between runs, seeded from
# tests/fuzz/corpus/NAME/ when that folder exists.
#
# Environment: BUILD (default build-fuzz), FUZZ_TIME (seconds per target, default 30),
# FUZZ_FILTER (substring: only matching targets). Ends with "fuzz: N passed, N failed".
BUILD=${BUILD:-build-fuzz}
FUZZ_TIME=${FUZZ_TIME:-30}
cd "$(dirname "$0")/../.." || exit 2
root=$(pwd)
passed=0
failed=0
for bin in "$BUILD"/fuzz/fuzz_*; do
    [ -f "$bin" ] && [ -x "$bin" ] || continue
    case $bin in *.o|*.d|*.corpus|*.crashes) continue ;; esac
    name=${bin##*/}
    if [ -n "$FUZZ_FILTER" ]; then
        case $name in *"$FUZZ_FILTER"*) ;; *) continue ;; esac
    fi
    corpus="$BUILD/fuzz/$name.corpus"
    crashes="$BUILD/fuzz/$name.crashes"
    mkdir -p "$corpus" "$crashes"
    seeds=""
    [ -d "tests/fuzz/corpus/$name" ] && seeds="$root/tests/fuzz/corpus/$name"
    echo "=== fuzz $name (${FUZZ_TIME}s)"
    "$root/$bin" -max_total_time="$FUZZ_TIME" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$root/$crashes/" \
        "$root/$corpus" $seeds >"$BUILD/fuzz/$name.log" 2>&1
    rc=$?
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|^(==[0-9]+==)?ERROR|^SUMMARY' \
        "$BUILD/fuzz/$name.log"
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        echo "=== fuzz $name: ok"
    else
        failed=$((failed + 1))
        echo "=== fuzz $name: FAILED (status $rc); log $BUILD/fuzz/$name.log, input in $crashes/"
        tail -n 40 "$BUILD/fuzz/$name.log"
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
