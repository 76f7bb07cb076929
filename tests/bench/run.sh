#!/bin/sh
# tests/bench/run.sh - `make bench`: daffid's echo against a raw socket ping-pong.
#
# Two shapes, each over TCP and over a Unix socket:
#   (a) 1 connection x 100,000 sequential echo calls with a 2,048-byte bin payload
#       (daffi's perf_benchmark);
#   (b) 200 connections x 1,000 calls each, one call outstanding per connection, all
#       driven from one epoll loop in one client process (daffi's concurrency_benchmark),
#       with a 64-byte payload.
# Each is measured against daffid (workers = 1, the echo plugin) and against
# bench_raw_server, a single-threaded epoll server that answers frames of exactly the
# sizes daffid's echo requests and replies have, in the same run, with the same client
# binary (bench_calls) and the same CPU pinning:
#   split  - server on CPU 0, client on CPU 1 (every round trip crosses cores)
#   shared - server and client both on CPU 0
# It prints calls/s for both, the ratio daffid/raw and the target (informational:
# (a) >= 0.8, (b) >= 0.7); nothing is asserted. Exit status is non-zero only when a
# measurement could not be made.
#
# Environment: BUILD (default build), BENCH_SEQ_CALLS, BENCH_SEQ_PAYLOAD,
# BENCH_CONC_CONNS, BENCH_CONC_CALLS, BENCH_CONC_PAYLOAD to change the shapes.
#
# Then the router (bench_router, which starts and pins its servers itself): (d) the
# sequential shape and (e) the concurrent one through a router to one worker, next to
# the same echo served directly and the raw floor, measured in the same run with the
# same client and pinning; target router/direct >= 0.6 (informational).
# BENCH_ROUTER_SEQ_CALLS (default 20000) and BENCH_ROUTER_CONC_CALLS (default 200 per
# connection) size its runs: it measures three systems per row.

BUILD=${BUILD:-build}
SEQ_CALLS=${BENCH_SEQ_CALLS:-100000}
SEQ_PAYLOAD=${BENCH_SEQ_PAYLOAD:-2048}
CONC_CONNS=${BENCH_CONC_CONNS:-200}
CONC_CALLS=${BENCH_CONC_CALLS:-1000}
CONC_PAYLOAD=${BENCH_CONC_PAYLOAD:-64}

cd "$(dirname "$0")/../.." || exit 2
BUILD_ABS=$(cd "$BUILD" && pwd) || { echo "bench: no build directory $BUILD" >&2; exit 2; }
BENCH=$BUILD_ABS/tests/bench
DAFFID=$BUILD_ABS/daffid
for f in "$DAFFID" "$BENCH/bench_calls" "$BENCH/bench_raw_server" "$BUILD_ABS/plugins/echo.so"; do
    [ -e "$f" ] || { echo "bench: $f is missing (run make bench)" >&2; exit 2; }
done
command -v taskset >/dev/null 2>&1 || { echo "bench: taskset (util-linux) is required" >&2; exit 2; }

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
TCP="tcp://127.0.0.1:$port"
UNIX="unix://$work/bench.sock"

mkdir "$work/conf"
cat >"$work/conf/00-server.ini" <<EOF
[server]
listen = $TCP, $UNIX
workers = 1
blocking_threads = 1
shutdown_timeout = 2s

[log]
level = warn
EOF
cat >"$work/conf/10-echo.ini" <<EOF
[plugin]
name = echo
path = $BUILD_ABS/plugins/echo.so
EOF

# start_server KIND PAYLOAD CPU ADDRESS: starts daffid or the raw server pinned to CPU,
# waits until ADDRESS accepts. Sets server_pid.
start_server() {
    case $1 in
        daffid) taskset -c "$3" "$DAFFID" -c "$work/conf" >>"$work/daffid.log" 2>&1 & ;;
        raw) taskset -c "$3" "$BENCH/bench_raw_server" -l "$4" -p "$2" >>"$work/raw.log" 2>&1 & ;;
    esac
    server_pid=$!
    if ! "$BENCH/bench_calls" wait -s "$4" -t 10000; then
        echo "bench: the $1 server did not start; its log:" >&2
        cat "$work/$1.log" >&2
        return 1
    fi
}

stop_server() {
    kill "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
    server_pid=""
}

# measure KIND ADDRESS SERVER_CPU CLIENT_CPU CONNS CALLS PAYLOAD [CLIENT]: prints
# calls/s. CLIENT is the client binary (default bench_calls; bench_async_client takes
# the same arguments).
measure() {
    start_server "$1" "$7" "$3" "$2" || return 1
    out=$(taskset -c "$4" "$BENCH/${8:-bench_calls}" run -s "$2" -c "$5" -n "$6" -p "$7")
    rc=$?
    stop_server
    [ $rc -eq 0 ] || return 1
    echo "$out" | sed -n 's/.*calls_per_s=\([0-9]*\).*/\1/p'
}

ncpu=$(nproc 2>/dev/null || echo 1)
if [ "$ncpu" -ge 2 ]; then
    pinnings="split shared"
else
    pinnings="shared"
    echo "bench: one CPU only: the split pinning is skipped"
fi

echo "daffid $(cat VERSION 2>/dev/null) echo vs a raw epoll ping-pong of the same frame sizes (same client, same pinning)"
echo "  daffid: workers = 1; raw: bench_raw_server, one thread; client: bench_calls, one thread, one epoll loop"
echo "  split = server on CPU 0, client on CPU 1; shared = both on CPU 0"
echo
printf '%-34s %-5s %-7s %10s %10s %6s  %s\n' scenario net pinning daffid/s raw/s ratio target
failed=0
# row NAME TARGET CONNS CALLS PAYLOAD
row() {
    for net in tcp unix; do
        [ "$net" = tcp ] && addr=$TCP || addr=$UNIX
        for pin in $pinnings; do
            [ "$pin" = split ] && ccpu=1 || ccpu=0
            raw=$(measure raw "$addr" 0 "$ccpu" "$3" "$4" "$5") || { failed=1; raw=""; }
            dfd=$(measure daffid "$addr" 0 "$ccpu" "$3" "$4" "$5") || { failed=1; dfd=""; }
            if [ -n "$raw" ] && [ -n "$dfd" ]; then
                ratio=$(awk -v a="$dfd" -v b="$raw" 'BEGIN { printf "%.2f", a / b }')
                verdict=$(awk -v r="$ratio" -v t="$2" 'BEGIN { print (r >= t) ? "met" : "below" }')
            else
                ratio="-"
                verdict="not measured"
            fi
            printf '%-34s %-5s %-7s %10s %10s %6s  >= %s %s\n' "$1" "$net" "$pin" \
                "${dfd:--}" "${raw:--}" "$ratio" "$2" "$verdict"
        done
    done
}

row "(a) 1 conn x $SEQ_CALLS seq, $SEQ_PAYLOAD B" 0.8 1 "$SEQ_CALLS" "$SEQ_PAYLOAD"
row "(b) $CONC_CONNS conns x $CONC_CALLS, $CONC_PAYLOAD B" 0.7 "$CONC_CONNS" "$CONC_CALLS" "$CONC_PAYLOAD"

# (c) the libdaffi asynchronous client (bench_async_client: the shape of (b), one
# daffi_client per connection, all on one libevent loop) against daffid, next to the
# raw floor (bench_calls against bench_raw_server) measured in the same run; the
# last column compares it with the raw client against the same daffid (the client
# library's own cost).
[ -x "$BENCH/bench_async_client" ] && {
    echo
    printf '%-34s %-5s %-7s %10s %10s %6s  %-16s %s
' scenario net pinning libdaffi/s \
        floor/s ratio target "vs raw client"
    for net in tcp unix; do
        [ "$net" = tcp ] && addr=$TCP || addr=$UNIX
        for pin in $pinnings; do
            [ "$pin" = split ] && ccpu=1 || ccpu=0
            raw=$(measure raw "$addr" 0 "$ccpu" "$CONC_CONNS" "$CONC_CALLS" "$CONC_PAYLOAD") ||
                { failed=1; raw=""; }
            rawc=$(measure daffid "$addr" 0 "$ccpu" "$CONC_CONNS" "$CONC_CALLS" \
                "$CONC_PAYLOAD") || { failed=1; rawc=""; }
            lib=$(measure daffid "$addr" 0 "$ccpu" "$CONC_CONNS" "$CONC_CALLS" "$CONC_PAYLOAD" \
                bench_async_client) || { failed=1; lib=""; }
            ratio="-"; verdict="not measured"; vsc="-"
            if [ -n "$raw" ] && [ -n "$lib" ]; then
                ratio=$(awk -v a="$lib" -v b="$raw" 'BEGIN { printf "%.2f", a / b }')
                verdict=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.7) ? "met" : "below" }')
            fi
            [ -n "$rawc" ] && [ -n "$lib" ] &&
                vsc=$(awk -v a="$lib" -v b="$rawc" 'BEGIN { printf "%.2f (%d/s)", a / b, b }')
            printf '%-34s %-5s %-7s %10s %10s %6s  %-16s %s\n' \
                "(c) async client, $CONC_CONNS conns" "$net" "$pin" "${lib:--}" "${raw:--}" \
                "$ratio" ">= 0.7 $verdict" "$vsc"
        done
    done
}

# (d), (e) the router: see tests/bench/bench_router.c.
[ -x "$BENCH/bench_router" ] && {
    echo
    BUILD="$BUILD_ABS" "$BENCH/bench_router" -n "${BENCH_ROUTER_SEQ_CALLS:-20000}" \
        -p "$SEQ_PAYLOAD" -c "$CONC_CONNS" -m "${BENCH_ROUTER_CONC_CALLS:-200}" \
        -q "$CONC_PAYLOAD" || failed=1
}

# (f) hot reload: trigger to serving, and p99 latency during a reload storm against
# steady state (tests/bench/bench_reload.c).
[ -x "$BENCH/bench_reload" ] && {
    echo
    BUILD="$BUILD_ABS" "$BENCH/bench_reload" || failed=1
}

if [ -s "$work/daffid.log" ]; then
    echo
    echo "daffid log (warnings and errors):"
    cat "$work/daffid.log"
fi
exit $failed
