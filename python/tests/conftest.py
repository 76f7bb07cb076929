"""
Fixtures: a daffid service with the example plugins, a router with a daffid worker
(the C member "cw1" serving calc, echo and fib), and Python members started in this
process. Each daffid must stop cleanly at the end of its module (support.running).
"""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

import support
from daffid import Client
from daffid.aio import AsyncClient


@pytest.fixture(scope="module")
def service():
    with support.running("service", name="svc") as d:
        yield d


@pytest.fixture(scope="module")
def router():
    with support.running("router", name="rt", plugins=()) as d:
        yield d


@pytest.fixture(scope="module")
def cworker(router):
    with support.running("worker", name="cw1", router=router.tcp) as d:
        yield d


@pytest.fixture(params=["service-tcp", "service-unix", "router"])
def target(request):
    """Where a caller connects to reach calc, echo and fib: a service directly (TCP
    or Unix socket), or a router that forwards to the C worker cw1."""
    if request.param == "router":
        request.getfixturevalue("cworker")
        return request.getfixturevalue("router").tcp
    svc = request.getfixturevalue("service")
    return svc.tcp if request.param == "service-tcp" else svc.unix


@pytest.fixture
def caller():
    """A factory of connected pure callers (sync), stopped at the end."""
    clients = []

    def make(address, **kw):
        c = Client(app_name=kw.pop("app_name", "pytest-caller"), address=address,
                   callbacks=kw.pop("callbacks", []), **kw)
        clients.append(c)
        return c.connect()
    yield make
    for c in clients:
        c.stop()


class _AsyncMember:
    """An AsyncClient serving on a loop thread of its own, for sync tests."""

    def __init__(self, address, name, callbacks, **kw):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = AsyncClient(app_name=name, address=address, callbacks=callbacks, **kw)
        self.conn = self.run(self.client.connect())

    def run(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self):
        self.run(self.client.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def member():
    """A factory of Python members of a router: member(router_addr, name, [callbacks],
    kind="sync"|"async", **Client kwargs). Returns once the router lists it."""
    made = []

    def make(address, name, callbacks, kind="sync", **kw):
        if kind == "sync":
            c = Client(app_name=name, address=address, callbacks=callbacks, **kw)
            c.connect()
            made.append(c.stop)
        else:
            m = _AsyncMember(address, name, callbacks, **kw)
            c = m
            made.append(m.stop)
        support.wait_until(lambda: name in support.member_names(address), 10,
                           f"member {name} listed")
        return c
    yield make
    for stop in reversed(made):
        stop()


def pytest_report_header(config):
    return f"daffid build: {support.BUILD} (BUILD={os.environ.get('BUILD', 'build')})"
