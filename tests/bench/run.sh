#!/bin/sh
# tests/bench/run.sh - `make bench`: daffid against the floor (a raw-epoll server of
# the same protocol) and redis-server, every shape of issue 17 in one run, plus the
# CPU time and the syscalls per call of each server (tests/bench/bench_table.c says
# what each row measures; README "Benchmarks" explains how to read it).
#
# Environment:
#   BUILD               the build directory (default build)
#   BENCH_DAFFID_BUILD  a build whose daffid and plugins/ are measured instead (an
#                       older commit's, for a before/after with the same harness)
#   BENCH_SECONDS       seconds per measurement (default 1; 0.2 s warm-up each)
#   BENCH_REPS          measurements per system and row, median printed (default 3)
#   BENCH_ONLY          comma-separated row ids: seq, c200-tcp, c200-unix, notify,
#                       pipe, mib, router, fib, isolated (default: all), router-extra
#   BENCH_TRACE=0       skip the strace runs (syscalls per call)
#   BENCH_EXTRA=1       also the router rows over Unix, at split pinning and with 200
#                       connections (router-extra), the libdaffi async client against
#                       the raw client, and hot reload (trigger to serving, p99 during a
#                       reload storm)
# Nothing is asserted; the exit status is non-zero only when a measurement could not
# be made. The figures are wall-clock: take them on a quiet machine (the load averages
# are printed at the start and the end); the syscall counts do not depend on load.

BUILD=${BUILD:-build}
cd "$(dirname "$0")/../.." || exit 2
BUILD_ABS=$(cd "$BUILD" && pwd) || { echo "bench: no build directory $BUILD" >&2; exit 2; }
BENCH=$BUILD_ABS/tests/bench
for f in bench_table bench_calls bench_raw_server bench_raw_proxy; do
    [ -x "$BENCH/$f" ] || { echo "bench: $BENCH/$f is missing (run make bench)" >&2; exit 2; }
done

failed=0
BUILD="$BUILD_ABS" "$BENCH/bench_table" || failed=1
[ "${BENCH_EXTRA:-0}" = 1 ] || exit $failed

# ---- BENCH_EXTRA=1 (bench_table ran the router-extra rows) -------------------------
# (c) the libdaffi asynchronous client (bench_async_client: 200 connections, one
# daffi_client each, all on one libevent loop) against daffid, next to the raw client
# (bench_calls) against the same daffid: the client library's own cost.
work=$(mktemp -d "${TMPDIR:-/tmp}/daffid-bench.XXXXXX") || exit 2
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
port=$("$BENCH/bench_calls" port) || exit 2
mkdir "$work/conf"
cat >"$work/conf/00-server.ini" <<EOF
[server]
listen = tcp://127.0.0.1:$port, unix://$work/bench.sock
workers = 1
blocking_threads = 1
shutdown_timeout = 2s
[log]
level = warn
EOF
printf '[plugin]\nname = echo\npath = %s/plugins/echo.so\n' "$BUILD_ABS" >"$work/conf/10-echo.ini"
echo
echo "(c) 200 conns x 1000 calls, 64 B, daffid workers = 1 on CPU 0, client on CPU 1"
printf '%-6s %12s %12s %6s\n' net libdaffi/s raw-client/s ratio
for addr in "tcp://127.0.0.1:$port" "unix://$work/bench.sock"; do
    taskset -c 0 "$BUILD_ABS/daffid" -c "$work/conf" >>"$work/daffid.log" 2>&1 &
    server_pid=$!
    "$BENCH/bench_calls" wait -s "$addr" -t 10000 || { cat "$work/daffid.log"; exit 1; }
    lib=$(taskset -c 1 "$BENCH/bench_async_client" run -s "$addr" -c 200 -n 1000 -p 64 |
        sed -n 's/.*calls_per_s=\([0-9]*\).*/\1/p')
    raw=$(taskset -c 1 "$BENCH/bench_calls" run -s "$addr" -c 200 -n 1000 -p 64 |
        sed -n 's/.*calls_per_s=\([0-9]*\).*/\1/p')
    kill "$server_pid"; wait "$server_pid" 2>/dev/null; server_pid=""
    [ -n "$lib" ] && [ -n "$raw" ] || failed=1
    printf '%-6s %12s %12s %6s\n' "${addr%%:*}" "${lib:--}" "${raw:--}" \
        "$(awk -v a="${lib:-0}" -v b="${raw:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')"
done
echo
BUILD="$BUILD_ABS" "$BENCH/bench_reload" || failed=1
exit $failed
