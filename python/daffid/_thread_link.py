"""
The sync Client's connection when it serves callbacks or membership events: an
AsyncLink on an asyncio loop in a thread of its own ("daffid-loop"), so that the
router's calls, pings and events are read while the program's threads do other
things (or wait in join()). The calling threads reach it through the loop
(run_coroutine_threadsafe), with the same methods SyncLink has.

Sync callbacks run on the link's thread pool and may call through the same Client;
an ``async def`` callback runs on the loop thread and must not make blocking calls
through the sync Client (it would wait for the loop it holds).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Optional

from ._aio_link import AsyncLink
from ._aio_stream import OutStream
from .exceptions import Disconnected


class ThreadedLink:
    """See the module's documentation; kwargs are AsyncLink's."""

    member = True

    def __init__(self, addr, **kwargs):
        self.addr = addr
        self._kwargs = kwargs
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="daffid-loop", daemon=True)
        self.link: Optional[AsyncLink] = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        self._loop.close()

    def _do(self, coro) -> Any:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("daffid: a blocking call through the sync Client from its "
                               "own loop thread (an async def callback) would wait forever; "
                               "use daffid.aio.AsyncClient there")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def start(self) -> None:
        self._thread.start()

        async def start():
            self.link = AsyncLink(self.addr, **self._kwargs)
            await self.link.start()
        try:
            self._do(start())
        except BaseException:
            self._stop_loop()
            raise

    def _stop_loop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            if threading.current_thread() is not self._thread:
                self._thread.join()

    def close(self) -> None:
        if self.link is not None and self._thread.is_alive():
            self._do(self.link.close())
        self._stop_loop()

    @property
    def connected(self) -> bool:
        return self.link is not None and self.link.connected

    @property
    def is_service(self) -> bool:
        return self.link is not None and self.link.is_service

    @is_service.setter
    def is_service(self, value: bool) -> None:
        self.link.is_service = value

    def call(self, method: str, params: list, timeout: Optional[float] = None,
             grace: float = 0.0, what: str = "", receivers: Any = None) -> Any:
        return self._do(self.link.call(method, params, timeout, grace, what, receivers))

    def notify(self, method: str, params: list) -> None:
        async def notify():
            self.link.notify(method, params)
        if self.link is None:
            raise Disconnected(f"not connected to {self.addr}")
        self._do(notify())

    def open_stream(self, callback: str, params: list, to: Optional[str],
                    window: Optional[int], timeout: Optional[float],
                    what: str) -> "ThreadedOutStream":
        s = self._do(self.link.open_stream(callback, params, to, window, timeout, what))
        return ThreadedOutStream(self, s)


class ThreadedOutStream:
    """An OutStream of the loop thread, driven from a calling thread."""

    def __init__(self, tl: ThreadedLink, s: OutStream):
        self._tl, self._s = tl, s

    def send(self, chunk: Any) -> None:
        self._tl._do(self._s.send(chunk))

    def end(self, nowait: bool = False) -> Any:
        return self._tl._do(self._s.end(nowait))

    def abort(self) -> None:
        self._tl._loop.call_soon_threadsafe(self._s.abort)
