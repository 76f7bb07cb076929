"""
One connection to daffid on an asyncio loop, kept up: AsyncClient's engine, and the
sync Client's when it serves callbacks or membership events (then on a loop thread
of its own, _thread_link.py).

- Calls: a msgid per call, a future per msgid, a loop timer per deadline. Writes
  are gathered and flushed once per loop pass (one send() for the answers of a
  read and for the calls many tasks made meanwhile).
- The connection is kept: when it drops, every call in flight fails at once
  (Disconnected: its answer can never come), and it is made again in the
  background, at once and then with a backoff from 0.1 s doubling to 5 s (25%
  jitter). On each new connection the member's hello and the membership
  subscription are renewed before any call waiting for the connection is sent.
  A call made while disconnected waits up to its own timeout (at most
  connect_timeout when it has none), then fails Disconnected with the last
  connect error.
- A member (a link with callbacks) says ``daffi.hello`` with ``"deadlines":
  true``, answers the router's ``daffi.ping`` (_serve.py), and watches the router
  the same way: silent for ``heartbeat`` it pings it, silent for three heartbeats
  it drops the connection and reconnects. Evicted (``daffi.evicted``) it rejoins
  with ``"replace": false`` and retries with backoff while the name is taken.
- A tls:// address is asyncio's TLS transport (the handshake bounded by
  connect_timeout, the server's name checked, _tls.py); a token is presented with
  ``daffi.auth`` first on every connection, before the hello.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from typing import Any, Callable, Dict, Optional

import msgpack

from . import _wire as w
from ._address import Address
from ._tls import HandshakeError, describe, tls_reason
from ._aio_stream import OutStream
from ._serve import Server
from .exceptions import (CallTimeout, DaffidError, Denied, Disconnected, Evicted,
                         InitializationError, Overloaded, ProtocolError, TooLarge, from_wire)
from .registry import Registry

log = logging.getLogger("daffid")

_TIMED_OUT = object()
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0
HEARTBEAT_MISSES = 3


class _Proto(asyncio.Protocol):
    """Hands the transport's events to the link, tagged with their connection."""

    def __init__(self, link: "AsyncLink", gen: int):
        self.link, self.gen = link, gen

    def connection_made(self, transport):
        self.link._made(self.gen, transport)

    def data_received(self, data):
        self.link._data(self.gen, data)

    def eof_received(self):
        return False    # close our side too: daffid answered what it will

    def connection_lost(self, exc):
        self.link._lost(self.gen, exc)

    def pause_writing(self):
        self.link._write_paused = True

    def resume_writing(self):
        self.link._write_paused = False


class AsyncLink:
    """See the module's documentation. on_event(event) gets each daffi.event map
    (on the loop); subscribe says whether to ask for them."""

    def __init__(self, addr: Address, *, name: str, registry: Registry, workers: int,
                 max_message: int, connect_timeout: float, heartbeat: float,
                 on_event: Optional[Callable[[dict], None]] = None, subscribe: bool = False,
                 tls: Any = None, token: Optional[str] = None):
        self.addr = addr
        self.tls = tls                      # an ssl.SSLContext for a tls:// address
        self.token = token
        self.name = name
        self.registry = registry
        self.member = len(registry) > 0
        self.max_message = max_message
        self.connect_timeout = connect_timeout
        self.heartbeat = heartbeat
        self.on_event = on_event
        self.subscribe = subscribe
        self.loop = asyncio.get_running_loop()
        self.server = Server(self.loop, registry, workers, name, max_message, self.reply)
        self._transport: Optional[asyncio.Transport] = None
        self._gen = 0
        self._up = asyncio.Event()          # connected, hello and subscription renewed
        self._lost_ev = asyncio.Event()
        self._pending: Dict[int, asyncio.Future] = {}
        self._next_id = 1
        self._wbuf: list = []
        self._flush_scheduled = False
        self._write_paused = False
        self._unpacker = w.unpacker(max_message)
        self._packer = w.packer()           # the loop's thread only
        self._out_streams: Dict[int, OutStream] = {}
        self._closing = False
        self._keeper: Optional[asyncio.Task] = None
        self._beat: Optional[asyncio.Task] = None
        self._last_rx = 0.0
        self._last_error = "not connected yet"
        self.evicted = False
        self.is_service = False             # the peer answered a router call: no router
        self.late_replies = 0
        self.connects = 0

    # ---- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Connects (hello and subscription included) or raises InitializationError."""
        try:
            await self._connect()
        except (OSError, asyncio.TimeoutError) as e:
            raise InitializationError(f"cannot connect to {self.addr}: {_why(e)}") from None
        except _AuthRefused as e:
            raise InitializationError(e.message, code=e.code, details=e.details) from None
        except DaffidError as e:
            raise InitializationError(f"{self.addr} refused {self.name!r}: {e.message}",
                                      code=e.code, details=e.details) from None
        self._keeper = self.loop.create_task(self._keep())

    async def close(self) -> None:
        """Closes for good: calls in flight fail Disconnected, callbacks are cancelled."""
        self._closing = True
        tasks = [t for t in (self._keeper, self._beat) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._transport is not None:
            self._flush()
            self._transport.close()
            self._lost(self._gen, None)
        await self.server.close()
        self._up.clear()

    @property
    def connected(self) -> bool:
        return self._up.is_set()

    async def _open(self) -> None:
        self._gen += 1
        gen = self._gen
        if self.addr.kind == "unix":
            coro = self.loop.create_unix_connection(lambda: _Proto(self, gen), self.addr.path)
        elif self.tls is not None:
            coro = self.loop.create_connection(lambda: _Proto(self, gen), self.addr.host,
                                               self.addr.port, ssl=self.tls,
                                               server_hostname=self.addr.host,
                                               ssl_handshake_timeout=self.connect_timeout)
        else:
            coro = self.loop.create_connection(lambda: _Proto(self, gen), self.addr.host,
                                               self.addr.port)
        try:
            transport, _ = await asyncio.wait_for(coro, self.connect_timeout)
        except asyncio.TimeoutError:
            if self.tls is not None:
                raise HandshakeError("connect or TLS handshake timed out") from None
            raise
        except (ssl.SSLError, ConnectionResetError, ConnectionAbortedError) as e:
            if self.tls is None:
                raise
            why = describe(e)       # a reset, an abort: the peer ended the handshake
            raise HandshakeError(why if why.startswith("TLS") else "TLS handshake failed: " +
                                 (str(e) or "the peer closed the connection (is it a "
                                  "tls:// port?)")) from None
        if self.addr.kind != "unix":
            import socket
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(high=self.max_message)

    async def _connect(self) -> None:
        """One connection made and announced; raises OSError, TimeoutError, or the
        router's refusal (DaffidError) after closing what it opened."""
        await self._open()
        try:
            if self.token is not None:
                try:
                    await self._call_now("daffi.auth", [self.token], self.connect_timeout)
                except DaffidError as e:
                    if not e.remote:    # the connection failed under it: no answer
                        raise ConnectionError(e.message) from None
                    raise _AuthRefused(f"{self.addr}: authentication refused (daffi.auth): "
                                       f"{e.message}", code=e.code, details=e.details,
                                       remote=True) from None
            if self.member:
                await self._call_now("daffi.hello", w.hello_params(
                    self.name, self.registry.names(), self.evicted), self.connect_timeout)
                log.info("daffid: member %r registered at %s with %d callbacks", self.name,
                         self.addr, len(self.registry))
                self.evicted = False
                self._beat = self.loop.create_task(self._heartbeat(self._gen))
            if self.subscribe:
                try:
                    await self._call_now("daffi.subscribe", w.SUBSCRIBE_PARAMS,
                                         self.connect_timeout)
                except DaffidError as e:
                    if not w.is_router_only(e):
                        raise
                    self.subscribe = False
                    log.warning("daffid: %s is not a router, so there are no membership "
                                "events: %s", self.addr, e.message)
        except BaseException:
            if self._transport is not None:
                self._transport.close()
            raise
        self.connects += 1
        self._up.set()

    async def _keep(self) -> None:
        """Reconnects after every drop until close()."""
        while not self._closing:
            await self._lost_ev.wait()
            self._lost_ev.clear()
            delay = 0.0
            while not self._closing:
                if delay:
                    await asyncio.sleep(delay * random.uniform(0.75, 1.0))
                try:
                    await self._connect()
                    log.info("daffid: reconnected to %s", self.addr)
                    break
                except (OSError, asyncio.TimeoutError, DaffidError) as e:
                    self._last_error = _why(e)
                    if delay == 0.0 or delay >= BACKOFF_MAX:
                        log.warning("daffid: reconnecting to %s: %s", self.addr,
                                    self._last_error)
                    delay = min(BACKOFF_MAX, delay * 2 if delay else BACKOFF_FIRST)

    async def _heartbeat(self, gen: int) -> None:
        """A member watches the router: ping when idle, drop when silent."""
        while gen == self._gen and self._transport is not None:
            await asyncio.sleep(self.heartbeat)
            if gen != self._gen or self._transport is None:
                return
            silent = self.loop.time() - self._last_rx
            if silent > self.heartbeat * HEARTBEAT_MISSES:
                log.warning("daffid: %s silent for %.1f s: reconnecting", self.addr, silent)
                self._transport.abort()
                return
            if silent >= self.heartbeat:
                self._spawn_ping()

    def _spawn_ping(self) -> None:
        async def ping():
            try:
                await self._call_now("daffi.ping", [], self.heartbeat * HEARTBEAT_MISSES)
            except DaffidError:
                pass
        self.loop.create_task(ping())

    # ---- transport events ----------------------------------------------------------

    def _made(self, gen: int, transport) -> None:
        if gen != self._gen:
            transport.close()
            return
        self._transport = transport
        self._last_rx = self.loop.time()
        self._unpacker = w.unpacker(self.max_message)

    def _lost(self, gen: int, exc: Optional[BaseException]) -> None:
        if gen != self._gen or self._transport is None:
            return
        self._transport = None
        self._gen += 1
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None
        was_up = self._up.is_set()   # a connection refused while announcing is no drop
        self._up.clear()
        self._wbuf = []
        why = "evicted: a newcomer took this member's name" if self.evicted else \
            f"connection to {self.addr} lost" + (f" ({tls_reason(exc)})" if exc else "")
        self._last_error = why
        cls = Evicted if self.evicted else Disconnected
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(cls(why + " with the call in flight"))
        streams, self._out_streams = self._out_streams, {}
        for s in streams.values():
            s.kill(cls(why + ": the stream is dead"))
        self.server.connection_lost()
        if was_up and not self._closing:
            log.warning("daffid: %s", why)
            self._lost_ev.set()

    def _data(self, gen: int, data: bytes) -> None:
        if gen != self._gen:
            return
        self._last_rx = self.loop.time()
        try:
            self._unpacker.feed(data)
            for msg in self._unpacker:
                try:
                    self._message(gen, msg)
                except ProtocolError:
                    raise
                except Exception:   # noqa: B902 - one bad message must not stop the rest
                    log.exception("daffid: ignoring a message from %s it cannot handle",
                                  self.addr)
        except msgpack.BufferFull:
            self._broken(TooLarge(f"{self.addr} sent a message over max_message "
                                  f"({self.max_message})"))
        except (ProtocolError, ValueError, msgpack.UnpackException) as e:
            self._broken(e if isinstance(e, ProtocolError) else
                         ProtocolError(f"{self.addr} sent bytes that are not MessagePack: {e}"))

    def _broken(self, e: DaffidError) -> None:
        log.error("daffid: closing the connection to %s: %s", self.addr, e.message)
        if self._transport is not None:
            self._transport.abort()

    def _message(self, gen: int, msg: Any) -> None:
        if type(msg) is list and len(msg) == 4 and msg[0] == 1:     # the hot path
            fut = self._pending.pop(msg[1], None)
            if fut is None or fut.done():
                self.late_replies += 1
            elif msg[2] is None:
                fut.set_result((None, msg[3]))
            elif isinstance(msg[2], list):
                fut.set_result((msg[2], None))
            else:
                raise ProtocolError("a response's error is neither nil nor an array")
            return
        kind = w.check_envelope(msg)
        if kind == w.REQUEST:
            self.server.request(gen, msg[1], w.method_name(msg[2]), msg[3])
            return
        method, params = w.method_name(msg[1]), msg[2]
        if method == "daffi.credit" or (method == "daffi.abort" and params and
                                        params[0] in self._out_streams):
            s = self._out_streams.get(params[0]) if params else None
            if s is not None:
                if method == "daffi.credit":
                    s.credited(params[1] if len(params) > 1 else 0)
                else:
                    del self._out_streams[params[0]]
                    s.kill(Disconnected(f"{s.what}: the receiver aborted the stream"))
        elif method == "daffi.event":
            if self.on_event is not None and params and isinstance(params[0], dict):
                try:
                    self.on_event(params[0])
                except Exception:   # noqa: B902 - a handler's bug is the handler's
                    log.exception("daffid: a membership event handler failed")
        elif method == "daffi.evicted":
            self.evicted = True
            reason = params[0].get("reason") if params and isinstance(params[0], dict) else ""
            log.warning("daffid: member %r evicted by %s (%s); rejoining once the name is "
                        "free", self.name, self.addr, reason)
        else:
            self.server.notification(gen, method, params)

    # ---- writing -------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        self._wbuf.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        buf, self._wbuf = self._wbuf, []
        if buf and self._transport is not None:
            self._transport.write(buf[0] if len(buf) == 1 else b"".join(buf))

    def reply(self, gen: int, data: bytes) -> None:
        """Writes an answer on connection gen, or drops it when that one is gone."""
        if gen == self._gen and self._transport is not None:
            self._write(data)

    # ---- calls ---------------------------------------------------------------------

    async def _ready(self, deadline: Optional[float]) -> None:
        """Returns once connected, or raises Disconnected by deadline (connect_timeout
        from now when there is none)."""
        if self._closing:
            raise Disconnected(f"{self.addr}: the client is stopped")
        limit = (deadline - self.loop.time()) if deadline is not None else self.connect_timeout
        try:
            await asyncio.wait_for(self._up.wait(), max(limit, 0.0))
        except asyncio.TimeoutError:
            raise Disconnected(f"not connected to {self.addr}: {self._last_error}") from None

    def _msgid(self) -> int:
        msgid = self._next_id
        while msgid in self._pending:
            msgid = msgid + 1 if msgid < w.MSGID_MAX else 1
        self._next_id = msgid + 1 if msgid < w.MSGID_MAX else 1
        return msgid

    async def _call_now(self, method: str, params: list, wait: Optional[float]) -> Any:
        """A request on the current connection, not waiting for it to be announced
        (the hello and subscription themselves)."""
        return await self._request(method, params, wait, method, None, None)

    async def call(self, method: str, params: list, timeout: Optional[float] = None,
                   grace: float = 0.0, what: str = "", receivers: Any = None) -> Any:
        """Sends a request and returns its result, or raises its error. timeout is the
        call's own (None: none); the client waits grace longer for the peer's answer."""
        wait = timeout + grace if timeout else None
        if not self._up.is_set():
            await self._ready(self.loop.time() + wait if wait else None)
        return await self._request(method, params, wait, what or method, timeout, receivers)

    async def _request(self, method: str, params: list, wait: Optional[float], what: str,
                       timeout: Optional[float], receivers: Any) -> Any:
        if self._transport is None:
            raise Disconnected(f"not connected to {self.addr}: {self._last_error}")
        if self._write_paused:
            raise Overloaded(f"{what}: more than max_message ({self.max_message}) bytes "
                             f"unsent to {self.addr}")
        msgid = self._msgid()
        data = self._packer.pack([w.REQUEST, msgid, method, params])
        if len(data) > self.max_message:
            raise TooLarge(f"{what}: the request is {len(data)} bytes, over max_message "
                           f"({self.max_message})")
        loop = self.loop
        fut = loop.create_future()
        self._pending[msgid] = fut
        self._write(data)
        t0 = loop.time()
        timer = loop.call_later(wait, _expire, fut) if wait else None
        try:
            out = await fut
        finally:
            if timer is not None:
                timer.cancel()
            self._pending.pop(msgid, None)
        if out is _TIMED_OUT:
            raise CallTimeout(call=what, timeout=timeout if timeout else wait,
                              elapsed=loop.time() - t0, receivers=receivers)
        err, result = out
        if err is None:
            return result
        raise from_wire(err, call=what, timeout=timeout, elapsed=loop.time() - t0,
                        receivers=receivers)

    def notify(self, method: str, params: list) -> None:
        """Sends a notification now, or raises Disconnected."""
        if not self._up.is_set():
            raise Disconnected(f"not connected to {self.addr}: {self._last_error}")
        data = w.pack_notify(method, params)
        if len(data) > self.max_message:
            raise TooLarge(f"{method}: the notification is {len(data)} bytes, over "
                           f"max_message ({self.max_message})")
        self._write(data)

    async def open_stream(self, callback: str, params: list, to: Optional[str],
                          window: Optional[int], timeout: Optional[float],
                          what: str) -> OutStream:
        """daffi.stream: returns the open stream or raises the receiver's refusal."""
        result = await self.call("daffi.stream", w.stream_params(
            callback, params, to, window, w.to_ms(timeout)), timeout, 0.0, what,
            [to] if to else None)
        sid, win = w.stream_opened(result, what)
        s = OutStream(self, sid, win, what, timeout)
        self._out_streams[sid] = s
        return s

    def forget_stream(self, sid: int) -> None:
        self._out_streams.pop(sid, None)


class _AuthRefused(Denied):
    """The server refused the token (or did not answer daffi.auth in time)."""


def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(_TIMED_OUT)


def _why(e: BaseException) -> str:
    if isinstance(e, asyncio.TimeoutError) and not str(e):
        return "connect timed out"
    if isinstance(e, DaffidError):
        return str(e)
    return describe(e)
