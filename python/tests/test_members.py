"""
Python members of a daffid router: @callback functions (sync and async def) served
to Python callers and to C callers (daffictl, the C examples of sdk/examples), with
daffi's workers=N concurrency, pinning, cast and the nowait styles.
"""

import asyncio
import os
import threading
import time

import pytest

import pycalc
import support
from daffid import BadArgs, HandlerError, TooLarge

CTL = os.path.join(support.BUILD, "daffictl")


@pytest.fixture(scope="module")
def rt():
    with support.running("router", name="rt2", plugins=()) as d:
        yield d


@pytest.fixture(params=["sync", "async"])
def calc_member(request, rt, member):
    """A Python member "pycalc" (a sync Client, or an AsyncClient) serving pycalc."""
    member(rt.tcp, "pycalc", pycalc.CALLBACKS, kind=request.param, workers=8)
    return rt


def test_python_member_serves_python_callers(calc_member, caller):
    conn = caller(calc_member.tcp)
    assert conn.rpc(timeout=5).multiply(6, 7) == 42
    assert conn.rpc(timeout=5, receiver="pycalc").add(1, 2) == 3
    assert conn.rpc(timeout=5).echo_after(20, "late") == "late"
    with pytest.raises(HandlerError, match="division by zero"):
        conn.rpc(timeout=5).divide(1, 0)
    with pytest.raises(BadArgs, match="expected 2 numbers"):
        conn.rpc(timeout=5).add("x", 1)


def test_python_member_serves_daffictl(calc_member):
    r = support.run([CTL, "-s", calc_member.tcp, "call", "multiply", "6", "7"])
    assert (r.returncode, r.stdout.strip()) == (0, b"42"), r.stderr
    r = support.run([CTL, "-s", calc_member.unix, "call", "divide", "1", "0"])
    assert r.returncode == 4 and b"HANDLER_ERROR (code 4): division by zero" in r.stderr


def test_python_member_passes_the_c_sync_caller_example(calc_member):
    r = support.run([f"{support.BUILD}/examples/sync_caller", calc_member.tcp])
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    assert b"add(20, 22) = 42" in r.stdout


def test_python_member_passes_the_c_async_caller_example(calc_member):
    # 1000 concurrent adds, and three echo_after calls that must finish out of order
    r = support.run([f"{support.BUILD}/examples/async_caller", calc_member.tcp], timeout=60)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    assert b"1000 right, 0 wrong, 0 failed" in r.stdout


def test_a_callbacks_exception_reaches_the_caller_as_handler_error(rt, member, caller):
    def boom(x):
        raise ValueError(f"bad {x}")
    member(rt.tcp, "boomer", [boom])
    with pytest.raises(HandlerError) as e:
        caller(rt.tcp).rpc(timeout=5).boom(3)
    assert e.value.message == "ValueError: bad 3"
    assert e.value.details == {"exception": "ValueError"}


def test_arguments_a_callback_cannot_take_are_bad_args(rt, member, caller):
    def two(a, b):
        return a + b
    member(rt.tcp, "arity", [two])
    with pytest.raises(BadArgs, match="two: too many positional arguments"):
        caller(rt.tcp).rpc(timeout=5).two(1, 2, 3)
    with pytest.raises(BadArgs, match="missing a required argument"):
        caller(rt.tcp).rpc(timeout=5).two(1)


def test_a_result_msgpack_cannot_carry_is_handler_error(rt, member, caller):
    def obj():
        return object()

    def huge():
        return b"x" * 300000
    member(rt.tcp, "results", [obj, huge], max_message=200000)
    conn = caller(rt.tcp)
    with pytest.raises(HandlerError, match="not MessagePack-serializable"):
        conn.rpc(timeout=5).obj()
    with pytest.raises(TooLarge, match="over max_message"):
        conn.rpc(timeout=5).huge()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_workers_bound_the_callbacks_running_at_once(rt, member, caller, kind):
    running, peak, lock = [0], [0], threading.Lock()

    def enter():
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])

    def leave():
        with lock:
            running[0] -= 1

    def slow_sync():
        enter()
        time.sleep(0.1)
        leave()
        return True

    async def slow_async():
        enter()
        await asyncio.sleep(0.1)
        leave()
        return True
    slow = slow_sync if kind == "sync" else slow_async
    slow.__name__ = "slow"
    member(rt.tcp, f"pool-{kind}", [slow], workers=3)
    conn = caller(rt.tcp)
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(9) as pool:
        t0 = time.monotonic()
        assert all(pool.map(lambda _: conn.rpc(timeout=10).slow(), range(9)))
        took = time.monotonic() - t0
    assert peak[0] == 3, f"{peak[0]} ran at once with workers=3"
    assert took >= 0.29, f"9 calls of 0.1 s on 3 workers took {took:.3f} s"


def test_a_blocking_sync_callback_leaves_the_member_serving(rt, member, caller):
    # workers=2: one callback blocks its thread for 1.5 s; the loop still answers the
    # router's heartbeats (the member stays listed) and serves the other worker slot
    release = threading.Event()

    def block():
        release.wait(5)
        return "released"

    def quick():
        return "quick"
    member(rt.tcp, "blocker", [block, quick], workers=2)
    conn = caller(rt.tcp)
    result = []
    t = threading.Thread(target=lambda: result.append(conn.rpc(timeout=10).block()))
    t.start()
    time.sleep(0.2)
    assert conn.rpc(timeout=2).quick() == "quick"
    time.sleep(1.3)
    assert "blocker" in support.member_names(rt.tcp)
    release.set()
    t.join(5)
    assert result == ["released"]


def test_receiver_pins_a_member_and_cast_reaches_every_one(rt, member, caller):
    def whoami_factory(name):
        def whoami():
            return name
        return whoami

    def fails():
        raise RuntimeError("no")
    member(rt.tcp, "w1", {"whoami": whoami_factory("w1")})
    member(rt.tcp, "w2", {"whoami": whoami_factory("w2"), "fails": fails})
    conn = caller(rt.tcp)
    assert {conn.rpc(timeout=5).whoami() for _ in range(6)} == {"w1", "w2"}   # round-robin
    assert {conn.rpc(timeout=5, receiver="w2").whoami() for _ in range(4)} == {"w2"}
    assert conn.cast(timeout=5).whoami() == {"w1": "w1", "w2": "w2"}
    assert conn.cast(timeout=5, receivers=["w1"]).whoami() == {"w1": "w1"}
    assert conn.cast(timeout=5, receiver="w2").whoami() == {"w2": "w2"}
    res = conn.cast(timeout=5).fails()
    assert list(res) == ["w2"] and isinstance(res["w2"], HandlerError)
    assert res["w2"].message == "RuntimeError: no"


def test_nowait_styles_reach_their_members(rt, member, caller):
    seen = {n: support.Recorder() for n in ("n1", "n2")}
    for n in seen:
        def note(x, _n=n):
            seen[_n].add(x)
        member(rt.tcp, n, {"note": note})
    conn = caller(rt.tcp)
    conn.cast_nowait().note("all")
    assert seen["n1"].wait_for(1) == ["all"] and seen["n2"].wait_for(1) == ["all"]
    conn.rpc_nowait(receiver="n2").note("two")
    assert seen["n2"].wait_for(2) == ["all", "two"]
    conn.cast_nowait(receivers=["n1"]).note("one")
    assert seen["n1"].wait_for(2) == ["all", "one"]
    conn.rpc_nowait().note("any")
    support.wait_until(lambda: len(seen["n1"].items) + len(seen["n2"].items) == 5, 5,
                       "the plain rpc_nowait")


def test_daffictl_cast_reaches_python_members(rt, member):
    for n in ("c1", "c2"):
        member(rt.tcp, n, {"hello": (lambda _n=n: f"hi from {_n}")})
    r = support.run([CTL, "-s", rt.tcp, "cast", "hello"])
    assert r.returncode == 0, r.stderr
    assert set(r.stdout.decode().splitlines()) == {'c1: "hi from c1"', 'c2: "hi from c2"'}
