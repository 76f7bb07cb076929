"""
AsyncClientConnection, what ``await AsyncClient.connect()`` returns: daffi's call
styles as coroutines on the client's AsyncLink (the same requests as the sync
connection's, _styles.py). The nowait styles are plain calls, as in daffi.aio:

    await conn.rpc(timeout=5).multiply(6, 7)              -> 42
    conn.rpc_nowait().log("x")                            -> None (no await)
    await conn.cast(timeout=5).f(1)                       -> {member: result | exc}
    conn.cast_nowait().f(1)
    await conn.stream(timeout=5).digest(chunks)           -> the handler's result
    await conn.stream_nowait().digest(chunks)             -> None
    await conn.wait_for_members("w1", timeout=10)
    await conn.members()
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from .. import _styles as st
from .. import _wire as w
from .._aio_stream import send_all
from .._connection import ClientConnection
from ..exceptions import DaffidError


class AsyncClientConnection(ClientConnection):
    """See the module's documentation and ClientConnection for each style: the same
    proxies, whose calls return coroutines here since the link's do."""

    async def members(self, timeout: Optional[float] = 5.0) -> list:
        return await self._link.call("daffi.members", [], timeout, 0.0, "members()")

    async def ping(self, timeout: Optional[float] = 5.0) -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await self._link.call("daffi.ping", [], timeout, 0.0, "ping()")
        return loop.time() - t0

    async def wait_for_members(self, *members: str, timeout: Optional[float] = None,
                               interval: float = 1.0) -> None:
        if not members:
            return
        link = self._link
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            left = st.time_left(timeout, start, loop.time())
            if link.is_service:
                return await self._service_wait(list(members), left, timeout)
            try:
                await link.call(*st.wait(members, left))
            except DaffidError as e:
                if st.wait_again(link, e, timeout):
                    continue
                raise
            return

    async def _service_wait(self, names: list, left: Optional[float],
                            timeout: Optional[float]) -> None:
        loop = asyncio.get_running_loop()
        end = None if left is None else loop.time() + left
        while True:
            missing = st.members_missing(await self.members(), names)
            if not missing:
                return
            if end is not None and loop.time() >= end:
                raise st.service_wait_timeout(names, missing, timeout)
            await asyncio.sleep(0.05)

    async def _cast(self, name: str, args: tuple, kwargs: dict, timeout: Optional[float],
                    to: Optional[list]) -> dict:
        link = self._link
        if not link.is_service:
            plan = st.cast(name, args, kwargs, timeout, to)
            try:
                return w.cast_result(await link.call(*plan), plan[4], timeout)
            except DaffidError as e:
                if not w.is_router_only(e):
                    raise
                link.is_service = True
        params = w.positional(name, args, kwargs)
        targets = st.service_targets(await self.members(), to)
        answers = await asyncio.gather(
            *(link.call(*st.service_call(name, params, m, timeout)) for m in targets),
            return_exceptions=True)
        return dict(zip(targets, answers))

    async def _stream(self, name: str, chunks: Any, params: list, receiver: Optional[str],
                      window: Optional[int], timeout: Optional[float], nowait: bool) -> Any:
        what = w.describe("stream", name, receiver)
        s = await self._link.open_stream(name, params, receiver, window, timeout, what)
        await send_all(s, st.chunks_of(chunks))
        return await s.end(nowait)

    async def __aenter__(self) -> "AsyncClientConnection":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.client.stop()
