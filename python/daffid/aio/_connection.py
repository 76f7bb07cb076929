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
from typing import TYPE_CHECKING, Any, Callable, Optional

from .. import _styles as st
from .. import _wire as w
from .._aio_stream import send_all
from .._connection import (CastNowaitProxy, RpcNowaitProxy, _names, _Proxy,
                           cached_proxy)
from ..exceptions import DaffidError, Disconnected

if TYPE_CHECKING:
    from .app import AsyncClient


class AsyncRpcProxy(_Proxy):
    def _make(self, name: str) -> Callable:
        conn, (timeout, receiver) = self._daffid_conn, self._daffid_opts
        if not timeout and not receiver:
            def rpc(*args, **kwargs):       # the plain request: the hot path
                if kwargs:
                    w.positional(name, args, kwargs)
                return conn._link.call(name, args)
            return rpc

        def rpc_with(*args, **kwargs):
            return conn._link.call(*st.rpc(name, args, kwargs, timeout, receiver))
        return rpc_with


class AsyncCastProxy(_Proxy):
    def _make(self, name: str) -> Callable:
        conn, (timeout, to) = self._daffid_conn, self._daffid_opts

        def cast(*args, **kwargs):
            return conn._cast(name, args, kwargs, timeout, to)
        return cast


class AsyncStreamProxy(_Proxy):
    def _make(self, name: str) -> Callable:
        conn, opts = self._daffid_conn, self._daffid_opts

        def stream(chunks: Any, *params, **kwargs):
            return conn._stream(name, chunks, w.positional(name, params, kwargs), *opts)
        return stream


class AsyncClientConnection:
    """See the module's documentation and ClientConnection for each style."""

    def __init__(self, client: "AsyncClient"):
        self.client = client
        self._proxies: dict = {}

    @property
    def _link(self):
        link = self.client._link
        if link is None:
            raise Disconnected(f"{self.client.app_name}: the client is not connected "
                               "(stopped, or connect() not awaited)")
        return link

    def rpc(self, timeout: Optional[float] = None, receiver: Optional[str] = None,
            serde: Any = None) -> AsyncRpcProxy:
        return cached_proxy(self._proxies, AsyncRpcProxy, self, (timeout, receiver))

    def rpc_nowait(self, receiver: Optional[str] = None, serde: Any = None) -> RpcNowaitProxy:
        """Not a coroutine: the notification is queued and the call returns None."""
        return cached_proxy(self._proxies, RpcNowaitProxy, self, (receiver,))

    def cast(self, timeout: Optional[float] = None, receiver: Any = None, serde: Any = None,
             receivers: Any = None) -> AsyncCastProxy:
        return cached_proxy(self._proxies, AsyncCastProxy, self,
                            (timeout, _names(w.receivers_list(receiver, receivers))))

    def cast_nowait(self, receiver: Any = None, serde: Any = None,
                    receivers: Any = None) -> CastNowaitProxy:
        return cached_proxy(self._proxies, CastNowaitProxy, self,
                            (_names(w.receivers_list(receiver, receivers)),))

    def stream(self, receiver: Optional[str] = None, serde: Any = None,
               timeout: Optional[float] = None,
               window: Optional[int] = None) -> AsyncStreamProxy:
        return cached_proxy(self._proxies, AsyncStreamProxy, self,
                            (receiver, window, timeout, False))

    def stream_nowait(self, receiver: Optional[str] = None, serde: Any = None,
                      window: Optional[int] = None,
                      timeout: Optional[float] = None) -> AsyncStreamProxy:
        return cached_proxy(self._proxies, AsyncStreamProxy, self,
                            (receiver, window, timeout, True))

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
            left = None if timeout is None else max(0.001, timeout - (loop.time() - start))
            if link.is_service:
                return await self._service_wait(list(members), left, timeout)
            try:
                await link.call(*st.wait(members, left))
                return
            except DaffidError as e:
                if w.is_router_only(e):
                    link.is_service = True
                    continue
                if timeout is None and e.code == 3:
                    continue    # one slice of an endless wait passed
                raise

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
