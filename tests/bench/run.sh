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
#                       pipe, mib, router, fib (default: all), router-extra; "nats"
#                       alone runs only the NATS rows
#   BENCH_NATS=0        skip the NATS rows (BENCH_NATS_CALLS: calls per connection)
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
for f in bench_table bench_calls bench_raw_server bench_raw_proxy bench_nats; do
    [ -x "$BENCH/$f" ] || { echo "bench: $BENCH/$f is missing (run make bench)" >&2; exit 2; }
done

failed=0
[ "${BENCH_ONLY:-}" = nats ] || BUILD="$BUILD_ABS" "$BENCH/bench_table" || failed=1

# ---- NATS (README "Scaling out"): 200 connections x 1 outstanding echo (64 B) through
# a daffid router to a daffid worker over their own link, the same through a gateway
# router, nats-server and a NATS worker, and plain libnats request-reply (bench_nats:
# one requester connection with 200 requests outstanding, one responder), measured in
# the same run. BENCH_NATS=0 skips it.
bench_nats() {
    nats_bin=$(command -v nats-server || ls /usr/sbin/nats-server 2>/dev/null)
    [ -n "$nats_bin" ] || { echo "(NATS rows skipped: nats-server is not installed)"; return 0; }
    nwork=$(mktemp -d "${TMPDIR:-/tmp}/daffid-bench-nats.XXXXXX") || return 1
    pids=""
    nats_calls=${BENCH_NATS_CALLS:-250}
    rport=$("$BENCH/bench_calls" port); lport=$("$BENCH/bench_calls" port)
    nport=$("$BENCH/bench_calls" port)
    mkdir "$nwork/router" "$nwork/worker" "$nwork/gw" "$nwork/nworker"
    printf '[server]\nrole = router\nname = r\nlisten = tcp://127.0.0.1:%s\nworkers = 1\nstate_file = none\n[log]\nlevel = warn\n' \
        "$rport" >"$nwork/router/00.ini"
    printf '[server]\nrole = worker\nname = w\nrouter = tcp://127.0.0.1:%s\nworkers = 1\n[log]\nlevel = warn\n' \
        "$rport" >"$nwork/worker/00.ini"
    printf '[server]\nrole = router\nname = g\nlisten = tcp://127.0.0.1:%s\nworkers = 1\nstate_file = none\nnats = nats://127.0.0.1:%s\n[log]\nlevel = warn\n' \
        "$lport" "$nport" >"$nwork/gw/00.ini"
    printf '[server]\nrole = worker\nname = nw\nrouter = nats://127.0.0.1:%s\nworkers = 1\n[log]\nlevel = warn\n' \
        "$nport" >"$nwork/nworker/00.ini"
    for d in worker nworker; do
        printf '[plugin]\nname = echo\npath = %s/plugins/echo.so\n' "$BUILD_ABS" >"$nwork/$d/10-echo.ini"
    done
    "$nats_bin" -a 127.0.0.1 -p "$nport" >"$nwork/nats.log" 2>&1 & pids="$pids $!"
    for d in router worker gw nworker; do
        "$BUILD_ABS/daffid" -c "$nwork/$d" >>"$nwork/daffid.log" 2>&1 & pids="$pids $!"
    done
    rc=0
    "$BENCH/bench_calls" wait -s "tcp://127.0.0.1:$rport" -t 10000 &&
        "$BENCH/bench_calls" wait -s "tcp://127.0.0.1:$lport" -t 10000 || rc=1
    # the members must be known before the clock starts
    for addr in "tcp://127.0.0.1:$rport" "tcp://127.0.0.1:$lport"; do
        "$BUILD_ABS/daffictl" -s "$addr" call daffi.wait '["w", "nw"]' 100 >/dev/null 2>&1
        for i in $(seq 1 100); do
            "$BUILD_ABS/daffictl" -s "$addr" call echo 1 >/dev/null 2>&1 && break
            sleep 0.1
        done
    done
    native=$("$BENCH/bench_calls" run -s "tcp://127.0.0.1:$rport" -c 200 -n "$nats_calls" -p 64 |
        sed -n 's/.*calls_per_s=\([0-9]*\).*/\1/p')
    overnats=$("$BENCH/bench_calls" run -s "tcp://127.0.0.1:$lport" -c 200 -n "$nats_calls" -p 64 |
        sed -n 's/.*calls_per_s=\([0-9]*\).*/\1/p')
    ref=$("$BENCH/bench_nats" ref -u "nats://127.0.0.1:$nport" -c 200 -n "$nats_calls" -p 64 |
        sed -n 's/.*calls_per_s=\([0-9]*\).*/\1/p')
    for p in $pids; do kill "$p" 2>/dev/null; done
    for p in $pids; do wait "$p" 2>/dev/null; done
    [ -n "$native" ] && [ -n "$overnats" ] && [ -n "$ref" ] || { rc=1; cat "$nwork/daffid.log"; }
    echo
    echo "NATS: 200 conns x 1 outstanding x $nats_calls calls, 64 B echo (daffids workers = 1, unpinned)"
    printf '%-34s %12s\n' path calls/s
    printf '%-34s %12s\n' "router -> worker (daffid link)" "${native:--}" \
        "router -> NATS -> worker" "${overnats:--}" "libnats request-reply (reference)" "${ref:--}"
    printf 'ratio over-NATS / libnats = %s, over-NATS / native router = %s\n' \
        "$(awk -v a="${overnats:-0}" -v b="${ref:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')" \
        "$(awk -v a="${overnats:-0}" -v b="${native:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')"
    rm -rf "$nwork"
    return $rc
}
[ "${BENCH_NATS:-1}" = 0 ] || bench_nats || failed=1
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
