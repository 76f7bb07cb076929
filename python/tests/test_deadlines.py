"""
Timeouts travel with the call (daffi.call's timeout_ms): the server, router and
Python member each stop at the caller's deadline, which never fires early and
fires within milliseconds; a client whose server answers nothing gives up by itself
ROUTER_GRACE later.
"""

import asyncio
import threading
import time

import pytest

import support
from daffid import CallTimeout
from daffid.aio import AsyncClient

#: how late a deadline may fire on a busy shared machine (the suite also runs under
#: ASan and TSan) without the test calling it imprecise
SLACK = 0.4


@pytest.mark.parametrize("ms", [5, 20, 50])
def test_rpc_timeout_is_the_servers_own_timeout_and_never_early(target, caller, ms):
    conn = caller(target)
    t0 = time.monotonic()
    with pytest.raises(CallTimeout) as e:
        conn.rpc(timeout=ms / 1000).echo_after(2000, "late")
    took = time.monotonic() - t0
    assert e.value.remote, "the deadline did not travel: the client timed out alone"
    assert ms / 1000 <= took < ms / 1000 + SLACK, f"TIMEOUT after {took * 1000:.1f} ms"
    assert isinstance(e.value, TimeoutError) and e.value.timeout == ms / 1000
    assert conn.rpc(timeout=5).add(1, 1) == 2     # the late answer is dropped, quietly


def test_async_rpc_timeout_travels_too(target):
    async def main():
        client = AsyncClient(address=target, callbacks=[])
        conn = await client.connect()
        t0 = asyncio.get_running_loop().time()
        with pytest.raises(CallTimeout) as e:
            await conn.rpc(timeout=0.03).echo_after(2000, "late")
        took = asyncio.get_running_loop().time() - t0
        await client.stop()
        return e.value, took
    err, took = asyncio.run(main())
    assert err.remote and 0.03 <= took < 0.03 + SLACK


def test_a_silent_server_is_given_up_by_the_client_after_the_grace(service, caller):
    conn = caller(service.tcp)
    assert conn.rpc(timeout=5).add(1, 1) == 2
    service.freeze()
    try:
        t0 = time.monotonic()
        with pytest.raises(CallTimeout) as e:
            conn.rpc(timeout=0.1).add(1, 2)
        took = time.monotonic() - t0
    finally:
        service.thaw()
    assert not e.value.remote
    assert 1.1 <= took < 1.1 + SLACK, f"gave up after {took:.3f} s"
    assert conn.rpc(timeout=5).add(2, 2) == 4


def test_a_python_member_cancels_an_async_callback_at_the_deadline(router, member, caller):
    events = support.Recorder()

    async def sleepy():
        t0 = time.monotonic()
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            events.add(("cancelled", time.monotonic() - t0))
            raise
        events.add(("finished", 0))
    member(router.tcp, "dl-async", [sleepy], kind="async")
    with pytest.raises(CallTimeout) as e:
        caller(router.tcp).rpc(timeout=0.15).sleepy()
    assert e.value.remote
    [(what, after)] = events.wait_for(1)
    assert what == "cancelled" and 0.1 <= after < 0.15 + SLACK, (what, after)


def test_a_queued_call_past_its_deadline_never_starts(router, member, caller):
    started = support.Recorder()
    gate = threading.Event()

    def hold():
        started.add("hold")
        gate.wait(5)
        return "held"

    def later():
        started.add("later")
        return "ran"
    member(router.tcp, "dl-queue", [hold, later], workers=1)
    conn = caller(router.tcp)
    holder = threading.Thread(target=lambda: conn.rpc(timeout=10).hold())
    holder.start()
    started.wait_for(1)
    with pytest.raises(CallTimeout):
        conn.rpc(timeout=0.1).later()     # queued behind hold (workers=1)
    # Each hop counts the deadline from its own receipt (timeout_ms is relative, the
    # clocks are not shared), so under a sanitizer on a busy machine the member's copy
    # can end a little after the caller's. Release hold only once every copy is past.
    time.sleep(0.4)
    gate.set()
    holder.join(5)
    assert conn.rpc(timeout=5).later() == "ran"
    assert started.items == ["hold", "later"], "the timed-out call ran after its deadline"


def test_cast_returns_partial_results_with_a_timeout_entry(router, member, caller):
    def slow_or_fast_factory(delay):
        def pace():
            time.sleep(delay)
            return delay
        return pace
    member(router.tcp, "fast", {"pace": slow_or_fast_factory(0)})
    member(router.tcp, "slow", {"pace": slow_or_fast_factory(2)})
    t0 = time.monotonic()
    res = caller(router.tcp).cast(timeout=0.2).pace()
    took = time.monotonic() - t0
    assert res["fast"] == 0 and isinstance(res["slow"], CallTimeout), res
    assert res["slow"].remote and 0.2 <= took < 0.2 + SLACK


def test_wait_for_members_times_out_naming_who_is_missing(router, caller):
    t0 = time.monotonic()
    with pytest.raises(CallTimeout, match="ghost") as e:
        caller(router.tcp).wait_for_members("ghost", timeout=0.1)
    assert e.value.remote and 0.1 <= time.monotonic() - t0 < 0.1 + SLACK
