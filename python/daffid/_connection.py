"""
ClientConnection, what ``Client.connect()`` returns: daffi's call styles over the
client's link (SyncLink or ThreadedLink), blocking the calling thread.

    conn.rpc(timeout=5, receiver="w1").multiply(6, 7)     -> 42
    conn.rpc_nowait().log("x")                            -> None
    conn.cast(timeout=5, receivers=["w1", "w2"]).f(1)     -> {"w1": ..., "w2": exc}
    conn.cast_nowait().f(1)                               -> None
    conn.stream(timeout=5).digest(chunks)                 -> the handler's result
    conn.stream_nowait().digest(chunks)                   -> None
    conn.wait_for_members("w1", "w2", timeout=10)
    conn.members()                                        -> [{"name", "callbacks"}]

A callback whose name is not a Python identifier is reached by item:
``conn.rpc()["my.callback"](1)``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from . import _styles as st
from . import _wire as w
from .exceptions import DaffidError, Disconnected

if TYPE_CHECKING:
    from .app import Client


#: distinct (style, options) proxies a connection keeps before starting over
PROXY_CACHE = 64


class _Proxy:
    """conn.STYLE(options): its attributes are the remote callbacks. The function
    made for a name is kept in the instance, so calling through a proxy the
    connection cached costs a dict lookup."""

    def __init__(self, conn: Any, opts: tuple):
        self._daffid_conn = conn
        self._daffid_opts = opts

    def __getattr__(self, name: str) -> Callable:
        if name.startswith("__"):
            raise AttributeError(name)
        fn = self.__dict__[name] = self._make(name)
        return fn

    def __getitem__(self, name: str) -> Callable:
        fn = self.__dict__.get(name)
        if fn is None:
            fn = self.__dict__[name] = self._make(name)
        return fn

    def _make(self, name: str) -> Callable:
        raise NotImplementedError


def cached_proxy(cache: dict, cls: type, conn: Any, opts: tuple) -> _Proxy:
    """The connection's proxy of cls for opts, made once."""
    key = (cls, opts)
    p = cache.get(key)
    if p is None:
        if len(cache) >= PROXY_CACHE:
            cache.clear()
        p = cache[key] = cls(conn, opts)
    return p


class RpcProxy(_Proxy):
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


class RpcNowaitProxy(_Proxy):
    def _make(self, name: str) -> Callable:
        conn, (receiver,) = self._daffid_conn, self._daffid_opts

        def rpc_nowait(*args, **kwargs) -> None:
            conn._link.notify(*st.rpc_nowait(name, args, kwargs, receiver))
        return rpc_nowait


class CastProxy(_Proxy):
    def _make(self, name: str) -> Callable:
        conn, (timeout, to) = self._daffid_conn, self._daffid_opts

        def cast(*args, **kwargs) -> dict:
            return conn._cast(name, args, kwargs, timeout, to)
        return cast


class CastNowaitProxy(_Proxy):
    def _make(self, name: str) -> Callable:
        conn, (to,) = self._daffid_conn, self._daffid_opts

        def cast_nowait(*args, **kwargs) -> None:
            conn._link.notify(*st.cast_nowait(name, args, kwargs, to))
        return cast_nowait


class StreamProxy(_Proxy):
    def _make(self, name: str) -> Callable:
        conn, opts = self._daffid_conn, self._daffid_opts

        def stream(chunks: Any, *params, **kwargs) -> Any:
            return conn._stream(name, chunks, w.positional(name, params, kwargs), *opts)
        return stream


class ClientConnection:
    """daffi's call styles on one Client; see the module's documentation. The
    ``serde`` arguments are accepted for daffi's signatures: daffid always encodes
    MessagePack (a C callee reads it), see DAFFI.md."""

    def __init__(self, client: "Client"):
        self.client = client
        self._proxies: dict = {}

    @property
    def _link(self):
        link = self.client._link
        if link is None:
            raise Disconnected(f"{self.client.app_name}: the client is not connected "
                               "(stopped, or connect() not called)")
        return link

    def rpc(self, timeout: Optional[float] = None, receiver: Optional[str] = None,
            serde: Any = None) -> RpcProxy:
        """One member (round-robin, or receiver) runs the call; blocks for its result.
        timeout: seconds, None or 0 for the server's default_timeout."""
        return cached_proxy(self._proxies, RpcProxy, self, (timeout, receiver))

    def rpc_nowait(self, receiver: Optional[str] = None, serde: Any = None) -> RpcNowaitProxy:
        """The call as a notification: returns None at once, no answer comes."""
        return cached_proxy(self._proxies, RpcNowaitProxy, self, (receiver,))

    def cast(self, timeout: Optional[float] = None, receiver: Any = None, serde: Any = None,
             receivers: Any = None) -> CastProxy:
        """Every member exposing the callback (or receiver(s)) runs it; returns
        {member: result}, a failed member's exception as its value."""
        return cached_proxy(self._proxies, CastProxy, self,
                            (timeout, _names(w.receivers_list(receiver, receivers))))

    def cast_nowait(self, receiver: Any = None, serde: Any = None,
                    receivers: Any = None) -> CastNowaitProxy:
        return cached_proxy(self._proxies, CastNowaitProxy, self,
                            (_names(w.receivers_list(receiver, receivers)),))

    def stream(self, receiver: Optional[str] = None, serde: Any = None,
               timeout: Optional[float] = None, window: Optional[int] = None) -> StreamProxy:
        """proxy.NAME(chunks, *params) sends chunks (an iterable) in order to one
        receiver within its credit window and returns its one result. timeout
        bounds each step: the open, each wait for credit, the end."""
        return cached_proxy(self._proxies, StreamProxy, self, (receiver, window, timeout, False))

    def stream_nowait(self, receiver: Optional[str] = None, serde: Any = None,
                      window: Optional[int] = None,
                      timeout: Optional[float] = None) -> StreamProxy:
        """The same, the end sent as a notification: returns None once every chunk
        is sent (credit still paces the chunks)."""
        return cached_proxy(self._proxies, StreamProxy, self, (receiver, window, timeout, True))

    def members(self, timeout: Optional[float] = 5.0) -> list:
        """daffi.members: [{"name": str, "callbacks": [str...]}...]."""
        return self._link.call("daffi.members", [], timeout, 0.0, "members()")

    def ping(self, timeout: Optional[float] = 5.0) -> float:
        """daffi.ping's round trip, in seconds."""
        t0 = time.monotonic()
        self._link.call("daffi.ping", [], timeout, 0.0, "ping()")
        return time.monotonic() - t0

    def wait_for_members(self, *members: str, timeout: Optional[float] = None,
                         interval: float = 1.0) -> None:
        """Returns once every named member is connected to the router; raises
        CallTimeout (a TimeoutError) naming the missing ones after timeout seconds
        (None: waits as long as it takes). The router answers the moment the last
        one joins: interval is accepted for daffi's signature and not needed."""
        if not members:
            return
        link = self._link
        start = time.monotonic()
        while True:
            left = st.time_left(timeout, start, time.monotonic())
            if link.is_service:
                return self._service_wait(list(members), left, timeout)
            try:
                link.call(*st.wait(members, left))
            except DaffidError as e:
                if st.wait_again(link, e, timeout):
                    continue
                raise
            return

    def _service_wait(self, names: list, left: Optional[float], timeout: Optional[float]):
        end = None if left is None else time.monotonic() + left
        while True:
            missing = st.members_missing(self.members(), names)
            if not missing:
                return
            if end is not None and time.monotonic() >= end:
                raise st.service_wait_timeout(names, missing, timeout)
            time.sleep(0.05)

    def _cast(self, name: str, args: tuple, kwargs: dict, timeout: Optional[float],
              to: Optional[list]) -> dict:
        link = self._link
        if not link.is_service:
            plan = st.cast(name, args, kwargs, timeout, to)
            try:
                return w.cast_result(link.call(*plan), plan[4], timeout)
            except DaffidError as e:
                if not w.is_router_only(e):
                    raise
                link.is_service = True
        out: dict = {}
        params = w.positional(name, args, kwargs)
        for member in st.service_targets(self.members(), to):
            try:
                out[member] = link.call(*st.service_call(name, params, member, timeout))
            except DaffidError as e:
                out[member] = e
        return out

    def _stream(self, name: str, chunks: Any, params: list, receiver: Optional[str],
                window: Optional[int], timeout: Optional[float], nowait: bool) -> Any:
        items = st.chunks_of(chunks)
        if hasattr(items, "__aiter__") and not hasattr(items, "__iter__"):
            raise TypeError(f"stream {name!r}: an async iterable needs daffid.aio.AsyncClient")
        what = w.describe("stream", name, receiver)
        s = self._link.open_stream(name, params, receiver, window, timeout, what)
        try:
            for chunk in items:
                s.send(chunk)
        except BaseException:
            s.abort()
            raise
        return s.end(nowait)

    def __enter__(self) -> "ClientConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.client.stop()


def _names(names: Optional[list]) -> Optional[tuple]:
    """A cast's target list as a tuple: hashable, so its proxy can be cached."""
    return tuple(names) if names is not None else None
