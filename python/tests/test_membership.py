"""
Membership: events (on_member_added / on_member_removed / add_event_handler) on
both clients, wait_for_members answering the moment a member joins, and a member's
heartbeats both ways (it answers the router's pings and notices a silent router).
"""

import asyncio
import threading
import time

import pytest

import support
from daffid import Client, InitializationError
from daffid.aio import AsyncClient


@pytest.fixture(scope="module")
def rt():
    with support.running("router", name="rt4", plugins=()) as d:
        yield d


def ping():
    return "pong"


def test_sync_client_sees_members_join_and_leave(rt, member):
    added, removed, generic = support.Recorder(), support.Recorder(), support.Recorder()
    watcher = Client(app_name="watcher", address=rt.tcp, callbacks=[])
    watcher.on_member_added(added.add)

    @watcher.on_member_removed
    def gone(name):
        removed.add(name)
    watcher.add_event_handler(generic.add)
    watcher.connect()
    try:
        m = member(rt.tcp, "joiner", [ping])
        assert added.wait_for(1) == ["joiner"]
        m.stop()
        assert removed.wait_for(1) == ["joiner"]
        assert generic.wait_for(2) == [{"type": "connected", "member": "joiner"},
                                       {"type": "disconnected", "member": "joiner"}]
    finally:
        watcher.stop()


def test_async_client_events_run_sync_and_async_handlers(rt, member):
    seen = support.Recorder()

    async def main():
        client = AsyncClient(app_name="awatcher", address=rt.tcp, callbacks=[])
        client.on_member_added(lambda n: seen.add(("sync", n)))

        @client.on_member_added
        async def later(name):
            await asyncio.sleep(0)
            seen.add(("async", name))
        await client.connect()
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: member(rt.tcp, "ajoiner", [ping]))
        await asyncio.get_running_loop().run_in_executor(None, seen.wait_for, 2)
        await client.stop()
    asyncio.run(main())
    assert sorted(seen.items) == [("async", "ajoiner"), ("sync", "ajoiner")]


def test_handlers_added_after_connect_are_refused(rt):
    c = Client(address=rt.tcp, callbacks=[])
    c.connect()
    try:
        with pytest.raises(InitializationError, match="before connect"):
            c.on_member_added(print)
    finally:
        c.stop()


def test_events_against_a_service_warn_and_do_not_fail(service, caplog):
    c = Client(address=service.tcp, callbacks=[])
    c.on_member_added(print)
    conn = c.connect()
    try:
        assert conn.rpc(timeout=5).add(1, 2) == 3
    finally:
        c.stop()
    assert "not a router" in caplog.text


def test_wait_for_members_returns_the_moment_the_member_joins(rt, member, caller):
    conn = caller(rt.tcp)
    joined_at = []

    def join_later():
        time.sleep(0.3)
        member(rt.tcp, "late-joiner", [ping])
        joined_at.append(time.monotonic())
    t = threading.Thread(target=join_later)
    t0 = time.monotonic()
    t.start()
    conn.wait_for_members("late-joiner", timeout=10)
    returned = time.monotonic()
    t.join()
    assert 0.3 <= returned - t0 < 5
    assert conn.rpc(timeout=5, receiver="late-joiner").ping() == "pong"


def test_a_member_answers_the_routers_heartbeat(member):
    # a member that did not answer would be dropped 0.5 s after it went idle; one
    # that answers stays for the 20 heartbeats (the margin is for a loaded machine)
    extra = "heartbeat = 100ms\nheartbeat_misses = 5\n"
    with support.running("router", name="rt-hb", plugins=(), extra=extra) as r:
        member(r.tcp, "beating", [ping])
        time.sleep(2.0)
        assert "beating" in support.member_names(r.tcp)
        assert "heartbeat.silent" not in r.read_log()


def test_a_member_notices_a_silent_router_and_reconnects(member):
    with support.running("router", name="rt-frozen", plugins=()) as r:
        m = member(r.tcp, "watchful", [ping], heartbeat=0.1)
        link = m._link.link
        first = link.connects
        r.freeze()
        try:
            support.wait_until(lambda: not link.connected, 5,
                               "the member dropping its silent router")
        finally:
            r.thaw()
        support.wait_until(lambda: link.connects > first and link.connected, 10,
                           "the member reconnecting")
        support.wait_until(lambda: "watchful" in support.member_names(r.tcp), 10,
                           "the member listed again")
