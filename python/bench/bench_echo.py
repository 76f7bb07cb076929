"""
make bench, the Python rows: the daffid package's echo rate against a raw
python3-msgpack client of the same shape, in the same run, against the same daffid
(`workers = 1`, the echo plugin, pinned to CPU 0; the clients on CPU 1 when the
machine has two).

  seq        one call at a time on one TCP connection: Client.connect().rpc().echo(p)
             against a blocking socket doing sendall(packb(request)) / recv()
  seq-unix   the same over the Unix socket
  seq-t      the same with rpc(timeout=5) (daffi.call carrying the deadline) against
             the raw client sending the same daffi.call
  c200       200 callers at once on one connection, each calling in turn:
             AsyncClient (200 tasks awaiting conn.rpc().echo(p)) against an asyncio
             Protocol with 200 tasks awaiting futures the raw reader resolves (it
             writes each call at once; AsyncClient gathers a loop pass's writes into
             one send(), which is why it may beat it)
  (ref)      the raw client pipelining 200 calls in a tight loop without asyncio:
             how fast Python can drive daffid at all, printed for scale

Each system is measured BENCH_REPS times (3) for BENCH_SECONDS (1 s) after a 0.2 s
warm-up, interleaved, and the median printed with the ratio (goal >= 0.8). The
figures are wall-clock: on a shared machine read them as indicative.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import support  # noqa: E402  (starts the daffid; puts python/ on sys.path)

import msgpack  # noqa: E402

from daffid import Client  # noqa: E402
from daffid.aio import AsyncClient  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", "1"))
REPS = int(os.environ.get("BENCH_REPS", "3"))
WARMUP = 0.2
PAYLOAD = b"x" * 64
CONCURRENT = 200
GOAL = 0.8


def _timed(run_for) -> float:
    """Calls per second of run_for(seconds) -> calls, after a warm-up."""
    run_for(WARMUP)
    t0 = time.monotonic()
    n = run_for(SECONDS)
    return n / (time.monotonic() - t0)


def _sequential(one_call):
    """run_for(seconds) for _timed: one_call() back to back, the clock read every 100."""
    def run_for(seconds):
        end, n = time.monotonic() + seconds, 0
        while True:
            for _ in range(100):
                one_call()
            n += 100
            if time.monotonic() >= end:
                return n
    return run_for


# ---- sequential ----------------------------------------------------------------------

def raw_connect(address: str) -> socket.socket:
    if address.startswith("unix://"):
        s = socket.socket(socket.AF_UNIX)
        s.connect(address[len("unix://"):])
        return s
    host, port = address[len("tcp://"):].rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def raw_seq(address: str, with_timeout: bool) -> float:
    s = raw_connect(address)
    unp = msgpack.Unpacker(raw=False)
    msgid = [0]

    def one_call():
        msgid[0] += 1
        if with_timeout:
            req = [0, msgid[0], "daffi.call", ["echo", [PAYLOAD], {"timeout_ms": 5000}]]
        else:
            req = [0, msgid[0], "echo", [PAYLOAD]]
        s.sendall(msgpack.packb(req))
        while next(unp, None) is None:
            unp.feed(s.recv(65536))
    try:
        return _timed(_sequential(one_call))
    finally:
        s.close()


def lib_seq(address: str, with_timeout: bool) -> float:
    client = Client(app_name="bench", address=address, callbacks=[])
    conn = client.connect()

    def one_call():
        if with_timeout:
            conn.rpc(timeout=5).echo(PAYLOAD)
        else:
            conn.rpc().echo(PAYLOAD)
    try:
        return _timed(_sequential(one_call))
    finally:
        client.stop()


# ---- 200 concurrent callers ------------------------------------------------------------

class _RawProto(asyncio.Protocol):
    def __init__(self):
        self.unp = msgpack.Unpacker(raw=False)
        self.futs: dict = {}

    def data_received(self, data):
        self.unp.feed(data)
        for msg in self.unp:
            self.futs.pop(msg[1]).set_result(msg[3])


async def _callers(call, seconds: float) -> int:
    end = asyncio.get_running_loop().time() + seconds
    counts = [0] * CONCURRENT

    async def one(i):
        loop = asyncio.get_running_loop()
        while loop.time() < end:
            await call()
            counts[i] += 1
    await asyncio.gather(*(one(i) for i in range(CONCURRENT)))
    return sum(counts)


def raw_c200(address: str) -> float:
    async def main():
        loop = asyncio.get_running_loop()
        host, port = address[len("tcp://"):].rsplit(":", 1)
        transport, proto = await loop.create_connection(_RawProto, host, int(port))
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP,
                                                      socket.TCP_NODELAY, 1)
        ids = iter(range(1, 1 << 62))

        def call():
            msgid = next(ids)
            fut = loop.create_future()
            proto.futs[msgid] = fut
            transport.write(msgpack.packb([0, msgid, "echo", [PAYLOAD]]))
            return fut
        await _callers(call, WARMUP)
        t0 = loop.time()
        n = await _callers(call, SECONDS)
        rate = n / (loop.time() - t0)
        transport.close()
        return rate
    return asyncio.run(main())


def lib_c200(address: str) -> float:
    async def main():
        client = AsyncClient(app_name="bench", address=address, callbacks=[])
        conn = await client.connect()
        loop = asyncio.get_running_loop()

        def call():
            return conn.rpc().echo(PAYLOAD)
        await _callers(call, WARMUP)
        t0 = loop.time()
        n = await _callers(call, SECONDS)
        rate = n / (loop.time() - t0)
        await client.stop()
        return rate
    return asyncio.run(main())


def raw_pipelined(address: str) -> float:
    s = raw_connect(address)
    unp = msgpack.Unpacker(raw=False)
    req = msgpack.packb([0, 1, "echo", [PAYLOAD]])

    def run_for(seconds):
        end, n = time.monotonic() + seconds, 0
        s.sendall(req * CONCURRENT)
        outstanding = CONCURRENT
        while outstanding:
            unp.feed(s.recv(262144))
            got = sum(1 for _ in unp)
            n += got
            outstanding -= got
            if got and time.monotonic() < end:     # each answer replaced by a new call
                s.sendall(req * got)
                outstanding += got
        return n
    try:
        return _timed(run_for)
    finally:
        s.close()


# ---- the table -------------------------------------------------------------------------

def measure(lib, raw):
    libs, raws = [], []
    for _ in range(REPS):
        libs.append(lib())
        raws.append(raw())
    return statistics.median(libs), statistics.median(raws)


def main() -> int:
    cpus = os.sched_getaffinity(0)
    pin = len(cpus) >= 2
    d = support.Daemon("service", name="bench", plugins=("echo",))
    d.write("00-server.ini", open(os.path.join(d.dir, "00-server.ini")).read()
            .replace("workers = 2", "workers = 1").replace("level = info", "level = warn"))
    try:
        d.start()
        if pin:
            subprocess.run(["taskset", "-a", "-p", "-c", "0", str(d.proc.pid)],
                           stdout=subprocess.DEVNULL, check=False)
            os.sched_setaffinity(0, {1})
        print(f"Python client rows: daffid workers = 1 {'on CPU 0, clients on CPU 1' if pin else '(unpinned)'}"
              f", {len(PAYLOAD)} B echo, median of {REPS} x {SECONDS:g} s; "
              f"load {os.getloadavg()[0]:.2f}")
        print(f"{'row':<10} {'daffid-py/s':>12} {'raw/s':>10} {'ratio':>6}  goal >= {GOAL}")
        rows = [
            ("seq", lambda: lib_seq(d.tcp, False), lambda: raw_seq(d.tcp, False)),
            ("seq-unix", lambda: lib_seq(d.unix, False), lambda: raw_seq(d.unix, False)),
            ("seq-t", lambda: lib_seq(d.tcp, True), lambda: raw_seq(d.tcp, True)),
            ("c200", lambda: lib_c200(d.tcp), lambda: raw_c200(d.tcp)),
        ]
        only = os.environ.get("BENCH_PY_ONLY")
        for name, lib, raw in rows:
            if only and name not in only.split(","):
                continue
            lib_rate, raw_rate = measure(lib, raw)
            print(f"{name:<10} {lib_rate:>12.0f} {raw_rate:>10.0f} {lib_rate / raw_rate:>6.2f}")
        if not only:
            print(f"{'(ref)':<10} {'':>12} {raw_pipelined(d.tcp):>10.0f}   raw pipelined, "
                  f"{CONCURRENT} in flight, no asyncio")
        print(f"load at the end {os.getloadavg()[0]:.2f}")
        rc = d.stop()
        if rc != 0:
            print(f"bench: daffid exited {rc}:\n{d.read_log()}", file=sys.stderr)
            return 1
        return 0
    finally:
        d.cleanup()


if __name__ == "__main__":
    sys.exit(main())
