"""
Connections are kept: a router restart is survived by Python members (they rejoin
and re-announce) and callers (the next call goes through); calls in flight when the
connection drops fail at once with Disconnected; an evicted member rejoins only
once its name is free again.
"""

import asyncio
import threading
import time

import pytest

import support
from daffid import Client, Disconnected, InitializationError
from daffid.aio import AsyncClient


def whoami_factory(name):
    def whoami():
        return name
    return whoami


def test_members_and_callers_survive_a_router_restart(member, caller):
    r = support.Daemon("router", name="rt-restart", plugins=())
    try:
        r.start()
        member(r.tcp, "survivor", {"whoami": whoami_factory("survivor")})
        sync_conn = caller(r.tcp)
        assert sync_conn.rpc(timeout=5).whoami() == "survivor"
        assert r.stop() == 0
        r.start()      # the same port and socket
        # the member rejoins by itself; the caller's next call reconnects
        sync_conn.wait_for_members("survivor", timeout=10)
        assert sync_conn.rpc(timeout=5).whoami() == "survivor"

        async def async_side():
            client = AsyncClient(address=r.tcp, callbacks=[])
            conn = await client.connect()
            assert await conn.rpc(timeout=5).whoami() == "survivor"
            loop = asyncio.get_running_loop()    # the loop keeps running meanwhile
            assert await loop.run_in_executor(None, r.stop) == 0
            await loop.run_in_executor(None, r.start)
            await conn.wait_for_members("survivor", timeout=10)
            got = await conn.rpc(timeout=5).whoami()
            await client.stop()
            return got
        assert asyncio.run(async_side()) == "survivor"
        assert sync_conn.rpc(timeout=5).whoami() == "survivor"
        assert r.stop() == 0
    finally:
        r.cleanup()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_call_in_flight_fails_disconnected_when_the_server_dies(kind):
    d = support.Daemon("service", name="dying")
    try:
        d.start()
        errors = []
        if kind == "sync":
            conn = Client(address=d.tcp, callbacks=[]).connect()
            t = threading.Thread(target=lambda: _capture(
                errors, lambda: conn.rpc(timeout=30).echo_after(20000, "x")))
            t.start()
            time.sleep(0.3)
            t0 = time.monotonic()
            d.kill()
            t.join(10)
            took = time.monotonic() - t0
            conn.client.stop()
        else:
            async def main():
                client = AsyncClient(address=d.tcp, callbacks=[])
                conn = await client.connect()
                call = asyncio.ensure_future(conn.rpc(timeout=30).echo_after(20000, "x"))
                await asyncio.sleep(0.3)
                t0 = time.monotonic()
                d.kill()
                try:
                    await call
                except Exception as e:
                    errors.append(e)
                took = time.monotonic() - t0
                await client.stop()
                return took
            took = asyncio.run(main())
        assert len(errors) == 1 and isinstance(errors[0], Disconnected), errors
        assert took < 2, f"the call failed {took:.2f} s after the drop, not at once"
    finally:
        d.cleanup()


def _capture(errors, fn):
    try:
        fn()
    except Exception as e:
        errors.append(e)


def test_a_caller_waits_for_a_server_that_comes_back_within_its_timeout(caller):
    d = support.Daemon("service", name="flaky")
    try:
        d.start()
        conn = caller(d.tcp)
        assert conn.rpc(timeout=5).add(1, 2) == 3
        assert d.stop() == 0
        threading.Timer(0.5, d.start).start()
        t0 = time.monotonic()
        assert conn.rpc(timeout=10).add(2, 3) == 5
        assert time.monotonic() - t0 >= 0.4
        assert d.stop() == 0
        with pytest.raises(Disconnected, match="not connected"):
            conn.rpc(timeout=0.3).add(1, 1)
    finally:
        d.cleanup()


def test_connect_to_nothing_is_an_initialization_error():
    port = support.free_port()
    with pytest.raises(InitializationError, match="cannot connect") as e:
        Client(host="127.0.0.1", port=port, callbacks=[]).connect()
    assert e.value.code == 5

    async def main():
        await AsyncClient(host="127.0.0.1", port=port, callbacks=[]).connect()
    with pytest.raises(InitializationError, match="cannot connect"):
        asyncio.run(main())


def test_a_taken_name_is_refused_at_connect(member):
    with support.running("router", name="rt-dup", plugins=()) as r:
        member(r.tcp, "taken", {"whoami": whoami_factory("first")})
        with pytest.raises(InitializationError, match="taken") as e:
            Client(app_name="taken", address=r.tcp,
                   callbacks={"whoami": whoami_factory("second")}).connect()
        assert e.value.code == 9     # DENIED


def test_an_evicted_member_rejoins_once_the_name_is_free(member, caller):
    with support.running("router", name="rt-replace", plugins=(),
                         extra="duplicate = replace\n") as r:
        first = member(r.tcp, "dup", {"whoami": whoami_factory("first")})
        conn = caller(r.tcp)
        assert conn.rpc(timeout=5).whoami() == "first"
        second = Client(app_name="dup", address=r.tcp,
                        callbacks={"whoami": whoami_factory("second")})
        second.connect()
        support.wait_until(lambda: conn.rpc(timeout=5).whoami() == "second", 5,
                           "the newcomer serving the name")
        link = first._link.link
        support.wait_until(lambda: link.evicted or not link.connected, 5, "the eviction")
        time.sleep(0.5)      # the evicted member keeps asking, and is refused
        assert conn.rpc(timeout=5).whoami() == "second"
        assert "evicted" in r.read_log() or "replaced" in r.read_log()
        second.stop()
        support.wait_until(lambda: _answer(conn) == "first", 15,
                           "the evicted member taking its name back")


def _answer(conn):
    try:
        return conn.rpc(timeout=2).whoami()
    except Exception:
        return None


def test_the_event_subscription_is_renewed_after_a_router_restart(member):
    joined = support.Recorder()
    r = support.Daemon("router", name="rt-events", plugins=())
    watcher = Client(app_name="watcher", address=r.tcp, callbacks=[])
    watcher.on_member_added(joined.add)
    try:
        r.start()
        watcher.connect()
        member(r.tcp, "before", {"whoami": whoami_factory("before")})
        assert joined.wait_for(1) == ["before"]
        assert r.stop() == 0
        r.start()
        # the watcher reconnected and subscribed again: later joins reach it
        support.wait_until(lambda: watcher._link.link.connects >= 2 and watcher.connected,
                           10, "the watcher reconnected")
        member(r.tcp, "after", {"whoami": whoami_factory("after")})
        support.wait_until(lambda: "after" in joined.items, 10, "the join after the restart")
        watcher.stop()
        assert r.stop() == 0
    finally:
        watcher.stop()
        r.cleanup()
