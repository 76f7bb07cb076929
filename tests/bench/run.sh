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
#                       pipe, mib, router, fib, isolated, and nats and tls for the
#                       NATS and TLS rows (default: all), router-extra
#   BENCH_NATS=0        skip the NATS rows (BENCH_NATS_CALLS: calls per connection)
#   BENCH_TRACE=0       skip the strace runs (syscalls per call)
#   BENCH_TLS=0         skip the TLS rows (t): 200 conns x 1 outstanding over tls://
#                       beside the same over tcp:// to one daffid, and redis-server
#                       with TLS when it has it
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
# ratio A B: A / B to two places, "-" without a B
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
# picked ID: BENCH_ONLY is unset or names ID; table_rows: it names a bench_table row
picked() {
    [ -z "${BENCH_ONLY:-}" ] && return 0
    case ",$BENCH_ONLY," in *",$1,"*) return 0 ;; esac
    return 1
}
table_rows() {
    [ -z "${BENCH_ONLY:-}" ] && return 0
    echo "$BENCH_ONLY" | tr ',' '\n' | grep -qvxE 'nats|tls|'
}
table_rows && { BUILD="$BUILD_ABS" "$BENCH/bench_table" || failed=1; }

# ---- NATS (README "Scaling out"): 200 connections x 1 outstanding echo (64 B) through
# a daffid router to a daffid worker over their own link, the same through a gateway
# router, nats-server and a NATS worker, and plain libnats request-reply (bench_nats, one
# responder) in two shapes: 200 requester connections with one request each in flight
# (the daffid rows' shape: the reference of the goal), and one connection carrying all
# 200 (libnats' best case, which 200 separate callers cannot have), measured in the same
# run. BENCH_NATS=0 skips it.
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
    ref=$("$BENCH/bench_nats" ref -u "nats://127.0.0.1:$nport" -m conns -c 200 -n "$nats_calls" -p 64 |
        sed -n 's/.*calls_per_s=\([0-9]*\).*/\1/p')
    ref1=$("$BENCH/bench_nats" ref -u "nats://127.0.0.1:$nport" -m one -c 200 -n "$nats_calls" -p 64 |
        sed -n 's/.*calls_per_s=\([0-9]*\).*/\1/p')
    for p in $pids; do kill "$p" 2>/dev/null; done
    for p in $pids; do wait "$p" 2>/dev/null; done
    [ -n "$native" ] && [ -n "$overnats" ] && [ -n "$ref" ] && [ -n "$ref1" ] ||
        { rc=1; cat "$nwork/daffid.log"; }
    echo
    echo "NATS: 200 conns x 1 outstanding x $nats_calls calls, 64 B echo (daffids workers = 1, unpinned)"
    printf '%-46s %12s\n' path calls/s
    printf '%-46s %12s\n' "router -> worker (daffid link)" "${native:--}" \
        "router -> NATS -> worker" "${overnats:--}" \
        "libnats, 200 conns x 1 outstanding (reference)" "${ref:--}" \
        "libnats, 1 conn x 200 outstanding" "${ref1:--}"
    printf 'ratio over-NATS / libnats 200 conns = %s (goal >= 0.8), over-NATS / libnats 1 conn = %s, over-NATS / native router = %s\n' \
        "$(ratio "$overnats" "$ref")" "$(ratio "$overnats" "$ref1")" "$(ratio "$overnats" "$native")"
    rm -rf "$nwork"
    return $rc
}
if [ "${BENCH_NATS:-1}" != 0 ] && picked nats; then bench_nats || failed=1; fi

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

# ---- (t) TLS against plaintext: same daffid, same client, same run -----------------
# bench_async_client (libdaffi's asynchronous client: 200 connections, one call
# outstanding on each, 64 B payloads) against one daffid (loops = 1 on CPU 0) that
# listens on tcp:// and tls:// (a P-256 certificate made here with the openssl CLI;
# TLS 1.3; the handshakes happen before the clock starts); then redis-benchmark GET
# against redis-server on its plain and its TLS port, when this redis has TLS.
if [ "${BENCH_TLS:-1}" = 1 ] && picked tls; then
    mkdir -p "$work/tls" "$work/tconf"
    (cd "$work/tls" &&
     openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
         -keyout ca.key -out ca.pem -days 2 -subj /CN=bench-ca &&
     printf 'subjectAltName=IP:127.0.0.1\n' >ext &&
     openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
         -keyout server.key -out server.csr -subj /CN=localhost &&
     openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
         -out server.pem -days 2 -extfile ext) >"$work/tls/openssl.log" 2>&1 ||
        { cat "$work/tls/openssl.log"; exit 1; }
    tport=$("$BENCH/bench_calls" port) || exit 2
    pport=$("$BENCH/bench_calls" port) || exit 2
    printf '[server]\nlisten = tcp://127.0.0.1:%s, tls://127.0.0.1:%s\nloops = 1\n' \
        "$pport" "$tport" >"$work/tconf/00-server.ini"
    printf 'blocking_threads = 1\nshutdown_timeout = 2s\n[tls]\ncert = %s\nkey = %s\n' \
        "$work/tls/server.pem" "$work/tls/server.key" >>"$work/tconf/00-server.ini"
    printf '[log]\nlevel = warn\n' >>"$work/tconf/00-server.ini"
    printf '[plugin]\nname = echo\npath = %s/plugins/echo.so\n' "$BUILD_ABS" \
        >"$work/tconf/10-echo.ini"
    echo
    echo "(t) TLS: 200 conns x 1 outstanding, 64 B echo, libdaffi async client on CPU 1,"
    echo "    daffid loops = 1 on CPU 0 (median of ${BENCH_REPS:-3})"
    taskset -c 0 "$BUILD_ABS/daffid" -c "$work/tconf" >>"$work/daffid-tls.log" 2>&1 &
    server_pid=$!
    "$BENCH/bench_calls" wait -s "tcp://127.0.0.1:$pport" -t 10000 ||
        { cat "$work/daffid-tls.log"; exit 1; }
    n=$(awk -v s="${BENCH_SECONDS:-1}" 'BEGIN { printf "%d", s * 200 }')
    median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
    one() {
        DAFFI_TLS_CA="$work/tls/ca.pem" taskset -c 1 "$BENCH/bench_async_client" run \
            -s "$1" -c 200 -n "$n" -p 64 | sed -n 's/.*calls_per_s=\([0-9]*\).*/\1/p'
    }
    plain=""
    tls=""
    for rep in $(seq "${BENCH_REPS:-3}"); do
        plain="$plain $(one "tcp://127.0.0.1:$pport")"
        tls="$tls $(one "tls://127.0.0.1:$tport")"
    done
    plain=$(echo "$plain" | tr ' ' '\n' | grep . | median)
    tls=$(echo "$tls" | tr ' ' '\n' | grep . | median)
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null
    server_pid=""
    [ -n "$plain" ] && [ -n "$tls" ] || failed=1
    printf '%-28s %12s %12s %9s\n' system plain/s tls/s tls/plain
    printf '%-28s %12s %12s %9s\n' "daffid (libdaffi client)" "${plain:--}" "${tls:--}" \
        "$(ratio "$tls" "$plain")"
    if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null &&
       redis-benchmark --help 2>&1 | grep -q -- '--tls'; then
        rp=$("$BENCH/bench_calls" port)
        rtp=$("$BENCH/bench_calls" port)
        taskset -c 0 redis-server --port "$rp" --tls-port "$rtp" \
            --tls-cert-file "$work/tls/server.pem" --tls-key-file "$work/tls/server.key" \
            --tls-ca-cert-file "$work/tls/ca.pem" --tls-auth-clients no \
            --save '' --appendonly no >"$work/redis-tls.log" 2>&1 &
        server_pid=$!
        sleep 0.3
        rn=$(awk -v s="${BENCH_SECONDS:-1}" 'BEGIN { printf "%d", s * 60000 }')
        rget() {
            taskset -c 1 redis-benchmark -p "$1" $2 -c 200 -n "$rn" -d 64 -t get -q 2>/dev/null |
                tr '\r' '\n' | sed -n 's/^GET: \([0-9.]*\) requests per second.*/\1/p' |
                tail -1 | cut -d. -f1
        }
        rplain=$(rget "$rp" "")
        rtls=$(rget "$rtp" "--tls --cacert $work/tls/ca.pem")
        kill "$server_pid"
        wait "$server_pid" 2>/dev/null
        server_pid=""
        printf '%-28s %12s %12s %9s\n' "redis-server GET (-c 200)" "${rplain:--}" \
            "${rtls:--}" "$(ratio "$rtls" "$rplain")"
        printf '%-28s %12s %12s\n' "daffid / redis" "$(ratio "$plain" "$rplain")" \
            "$(ratio "$tls" "$rtls")"
    else
        echo "redis-server with TLS: not installed here (its row is skipped)"
    fi
fi
[ "${BENCH_EXTRA:-0}" = 1 ] || exit $failed

# ---- BENCH_EXTRA=1 (bench_table ran the router-extra rows) -------------------------
# (c) the libdaffi asynchronous client (bench_async_client: 200 connections, one
# daffi_client each, all on one libevent loop) against daffid, next to the raw client
# (bench_calls) against the same daffid: the client library's own cost.
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
