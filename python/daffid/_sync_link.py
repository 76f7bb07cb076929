"""
The sync Client's connection when it only calls (no callbacks, no membership
events): a blocking socket that the calling threads use themselves, no thread of
its own. This is the fast path: a sequential call is one send() and one recv(),
as a hand-written msgpack client's is.

Threads share it by leader and followers: a thread waiting for its answer (or for
stream credit) becomes the reader when nobody reads, reads, and completes whatever
answers arrive, its own and other threads'; the others wait on a condition until
their answer is in or the reader leaves. Writers take a lock of their own, so a
thread sends while another reads.

Nothing is read while no thread waits, so the only unsolicited messages (a peer's
``daffi.ping``, stream credit) are handled when a thread next reads. A connection
that the peer closed while idle is noticed before the next call is sent (one
poll() when no call is in flight), and made again, so a router restart between
two calls loses nothing. A drop with calls in flight fails
them at once (Disconnected); the next call reconnects, waiting for the server up
to its own timeout (connect_timeout when it has none).

Under TLS the socket is a _tls.TLSSocket (the same calls; a read that carried only
TLS records completes nothing), and with a token every new connection presents it
(``daffi.auth``) before it is used.
"""

from __future__ import annotations

import itertools
import select
import socket
import threading
import time
from typing import Any, Dict, Optional

import msgpack

from . import _wire as w
from ._address import Address, open_socket
from ._tls import TLSSocket, connect_sync
from .exceptions import (CallTimeout, DaffidError, Disconnected, ProtocolError, TooLarge,
                         from_wire)

RECV_SIZE = 256 * 1024
_monotonic = time.monotonic


class _Slot:
    """One call waiting for its answer."""

    __slots__ = ("done", "err", "result", "gen")

    def __init__(self, gen: int):
        self.done = False
        self.err: Any = None
        self.result: Any = None
        self.gen = gen


class _LocalTimeout(Exception):
    """The waiting thread's deadline passed with nothing for it."""


class SyncLink:
    """See the module's documentation."""

    member = False

    def __init__(self, addr: Address, *, max_message: int, connect_timeout: float,
                 tls: Any = None, token: Optional[str] = None):
        self.addr = addr
        self.tls = tls                      # an ssl.SSLContext for a tls:// address
        self.token = token
        self.max_message = max_message
        self.connect_timeout = connect_timeout
        self._conn: Optional[tuple] = None    # (socket, generation), replaced whole
        self._poll: Any = None
        self._gen = 0
        self._unpacker = w.unpacker(max_message)
        self._wlock = threading.Lock()
        self._rlock = threading.Lock()
        self._conn_lock = threading.Lock()
        self._cv = threading.Condition()
        self._followers = 0
        self._pending: Dict[int, Any] = {}
        self._streams: Dict[int, "SyncOutStream"] = {}
        self._ids = itertools.count(1)   # next() is atomic: no lock for a msgid
        self._packer = w.packer()        # used under _wlock only
        self._last_error = "not connected yet"
        self._closed = False
        self.late_replies = 0
        self.ignored = 0
        self.connects = 0
        self.is_service = False

    # ---- connection ----------------------------------------------------------------

    def start(self) -> None:
        """The first connection; raises OSError, or Denied (the token refused)."""
        with self._conn_lock:
            self._adopt(self._open(self.connect_timeout))

    def _open(self, timeout: float) -> Any:
        return connect_sync(self.addr, self.tls, self.token, timeout, open_socket)

    def _adopt(self, sock: socket.socket) -> None:
        poll = select.poll()
        poll.register(sock, select.POLLIN)
        self._poll = poll
        self._unpacker = w.unpacker(self.max_message)
        self._gen += 1
        self._conn = (sock, self._gen)
        self.connects += 1

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def close(self) -> None:
        """Closes for good; calls in flight fail Disconnected."""
        self._closed = True
        conn = self._conn
        if conn is not None:
            try:
                conn[0].shutdown(socket.SHUT_RDWR)   # wakes a thread blocked in recv()
            except OSError:
                pass
            self._drop(conn[1], "the client is stopped")

    def _drop(self, gen: int, why: str) -> None:
        """Connection gen is gone: its calls and streams fail at once."""
        with self._conn_lock:
            conn = self._conn
            if conn is None or conn[1] != gen:
                return
            self._conn = None
            self._last_error = why
            try:
                conn[0].close()
            except OSError:
                pass
            for msgid, slot in list(self._pending.items()):
                if slot.gen == gen:
                    self._pending.pop(msgid, None)
                    slot.err = Disconnected(f"connection to {self.addr} lost with the call "
                                            f"in flight: {why}")
                    slot.done = True
            streams, self._streams = self._streams, {}
            for s in streams.values():
                s.kill(Disconnected(f"{s.what}: connection to {self.addr} lost: {why}"))
        self._wake_followers()

    def _idle_closed(self, conn: tuple) -> bool:
        """True when the peer closed (or reset) an idle connection."""
        sock = conn[0]
        if type(sock) is TLSSocket:
            return self._tls_idle_closed(sock, conn[1])
        try:
            poll = select.poll()      # its own: a poll object is one thread's at a time
            poll.register(sock, select.POLLIN)
            if not poll.poll(0):
                return False
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _tls_idle_closed(self, sock: TLSSocket, gen: int) -> bool:
        """The same under TLS, where what is waiting must be decrypted to tell a
        session ticket or a message from the peer's close_notify: read it all (as the
        reader, so unless a thread reads already) and handle what it carries."""
        if not self._rlock.acquire(False):
            return False
        try:
            poll = select.poll()
            poll.register(sock, select.POLLIN)
            while poll.poll(0):
                data = sock.recv_nowait()
                if data is not None and not data:
                    return True
                if data:
                    self._feed(sock, gen, data)
                if self._conn is None or self._conn[1] != gen:
                    return True
            return False
        except OSError:
            return True
        finally:
            self._rlock.release()

    def _connection(self, deadline: Optional[float]) -> tuple:
        """(socket, generation) to send on: the current connection, or a new one
        made by deadline (connect_timeout from now when None). Raises Disconnected."""
        conn = self._conn
        if conn is not None and (self._pending or not self._idle_closed(conn)):
            return conn
        return self._reconnect(conn, deadline)

    def _reconnect(self, dead: Optional[tuple], deadline: Optional[float]) -> tuple:
        """Drops dead (a connection the peer closed), then connects by deadline."""
        if dead is not None:
            self._drop(dead[1], "closed by the peer")
        if self._closed:
            raise Disconnected(f"{self.addr}: the client is stopped")
        limit = deadline if deadline is not None else time.monotonic() + self.connect_timeout
        delay = 0.0
        with self._conn_lock:
            while self._conn is None:
                left = limit - time.monotonic()
                if left <= 0:
                    raise Disconnected(f"not connected to {self.addr}: {self._last_error}")
                if delay:
                    time.sleep(min(delay, left))
                try:
                    self._adopt(self._open(min(max(left, 0.001), self.connect_timeout)))
                except OSError as e:
                    self._last_error = e.strerror or str(e)
                    delay = min(1.0, delay * 2 if delay else 0.1)
            return self._conn

    # ---- calls ---------------------------------------------------------------------

    def _send(self, sock: socket.socket, gen: int, data: bytes) -> None:
        try:
            with self._wlock:
                sock.sendall(data)
        except OSError as e:
            self._drop(gen, e.strerror or str(e))
            raise Disconnected(f"sending to {self.addr} failed: {e.strerror or e}") from None

    def call(self, method: str, params: list, timeout: Optional[float] = None,
             grace: float = 0.0, what: str = "", receivers: Any = None) -> Any:
        """Sends a request and returns its result, or raises its error (see
        AsyncLink.call for timeout and grace)."""
        t0 = _monotonic()
        deadline = t0 + timeout + grace if timeout else None
        pending = self._pending
        conn = self._conn
        if conn is None or (not pending and self._idle_closed(conn)):
            conn = self._reconnect(conn, deadline)
        sock, gen = conn
        slot = _Slot(gen)
        msgid = next(self._ids) & w.MSGID_MAX
        while msgid in pending:     # wrapped around onto a call still waiting
            msgid = next(self._ids) & w.MSGID_MAX
        pending[msgid] = slot
        try:
            with self._wlock:      # the link's packer is the writer's
                data = self._packer.pack([0, msgid, method, params])
                if len(data) > self.max_message:
                    raise TooLarge(f"{what or method}: the request is {len(data)} bytes, "
                                   f"over max_message ({self.max_message})")
                sock.sendall(data)
        except TooLarge:
            pending.pop(msgid, None)
            raise
        except OSError as e:
            pending.pop(msgid, None)
            self._drop(gen, e.strerror or str(e))
            raise Disconnected(f"sending to {self.addr} failed: {e.strerror or e}") from None
        try:
            if self._rlock.acquire(False):     # nobody reads: read for ourselves
                try:
                    while not slot.done:
                        self._read(deadline)
                finally:
                    self._rlock.release()
                    if self._followers:
                        self._wake_followers()
            else:
                self._wait(slot, deadline)
        except _LocalTimeout:
            self._pending.pop(msgid, None)
            if not slot.done:
                raise CallTimeout(call=what or method, timeout=timeout or None,
                                  elapsed=_monotonic() - t0, receivers=receivers) from None
        err = slot.err
        if err is None:
            return slot.result
        if isinstance(err, DaffidError):      # raised here: the connection dropped
            raise err
        raise from_wire(err, call=what or method, timeout=timeout,
                        elapsed=time.monotonic() - t0, receivers=receivers)

    def notify(self, method: str, params: list) -> None:
        """Sends a notification; raises Disconnected or TooLarge."""
        data = w.pack_notify(method, params)
        if len(data) > self.max_message:
            raise TooLarge(f"{method}: the notification is {len(data)} bytes, over "
                           f"max_message ({self.max_message})")
        sock, gen = self._connection(None)
        self._send(sock, gen, data)

    # ---- reading: leader and followers ---------------------------------------------

    def _wake_followers(self) -> None:
        if self._followers:
            with self._cv:
                self._cv.notify_all()

    def _wait(self, obj: Any, deadline: Optional[float]) -> None:
        """Returns once obj.done, reading when nobody else does; raises _LocalTimeout
        when deadline passes first."""
        while not obj.done:
            if self._rlock.acquire(False):
                try:
                    while not obj.done:
                        self._read(deadline)
                finally:
                    self._rlock.release()
                    self._wake_followers()
                return
            with self._cv:
                self._followers += 1
                try:
                    if not obj.done and self._rlock.locked():
                        if deadline is None:
                            self._cv.wait()
                        else:
                            left = deadline - time.monotonic()
                            if left <= 0 or not self._cv.wait(left):
                                if not obj.done:
                                    raise _LocalTimeout()
                finally:
                    self._followers -= 1

    def _read(self, deadline: Optional[float]) -> None:
        """One recv() and everything it completes. Raises _LocalTimeout when nothing
        came by deadline; a drop completes every waiter with its error."""
        conn = self._conn
        if conn is None:
            raise Disconnected(f"not connected to {self.addr}: {self._last_error}")
        sock, gen = conn
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not self._poll.poll(max(1, int(left * 1000 + 0.999))):
                raise _LocalTimeout()
        try:
            data = sock.recv(RECV_SIZE)
        except OSError as e:
            self._drop(gen, e.strerror or str(e))
            return
        if not data:
            if data is None:        # TLS records only (a session ticket)
                return
            self._drop(gen, "closed by the peer")
            return
        self._feed(sock, gen, data)

    def _feed(self, sock: Any, gen: int, data: bytes) -> None:
        """Completes the calls that data answers (the reader's, under _rlock)."""
        unp = self._unpacker
        try:
            unp.feed(data)
            pending = self._pending
            for msg in unp:
                if type(msg) is list and len(msg) == 4 and msg[0] == 1:
                    if msg[2] is not None and type(msg[2]) is not list:
                        raise ProtocolError("a response's error is neither nil nor an array")
                    slot = pending.pop(msg[1], None)
                    if slot is None:
                        self.late_replies += 1
                    else:
                        slot.err = msg[2]
                        slot.result = msg[3]
                        slot.done = True
                else:
                    self._unsolicited(sock, gen, msg)
        except msgpack.BufferFull:
            self._drop(gen, f"the peer sent a message over max_message ({self.max_message})")
        except (ProtocolError, ValueError, msgpack.UnpackException) as e:
            self._drop(gen, f"the peer sent an invalid message: {e}")
        if self._followers:
            self._wake_followers()

    def _unsolicited(self, sock: socket.socket, gen: int, msg: Any) -> None:
        """A message that answers no call: a request (this client serves nothing but
        the heartbeat) or a notification (stream credit and aborts)."""
        kind = w.check_envelope(msg)
        if kind == w.REQUEST:
            method = w.method_name(msg[2])
            answer = w.pack_result(msg[1], "pong") if method == "daffi.ping" else \
                w.pack_error(msg[1], 1, f"no callback '{method}': this client serves no "
                             "callbacks")
            try:
                self._send(sock, gen, answer)
            except Disconnected:
                pass    # the drop completed every waiter already
            return
        if kind == w.RESPONSE:
            raise ProtocolError("a response's error is neither nil nor an array")
        method, params = w.method_name(msg[1]), msg[2]
        s = self._streams.get(params[0]) if params and isinstance(params[0], int) else None
        if s is not None and method == "daffi.credit" and len(params) > 1:
            s.credited(params[1])
        elif s is not None and method == "daffi.abort":
            self._streams.pop(params[0], None)
            s.kill(Disconnected(f"{s.what}: the receiver aborted the stream"))
        else:
            self.ignored += 1

    # ---- streams -------------------------------------------------------------------

    def open_stream(self, callback: str, params: list, to: Optional[str],
                    window: Optional[int], timeout: Optional[float],
                    what: str) -> "SyncOutStream":
        result = self.call("daffi.stream", w.stream_params(callback, params, to, window,
                                                           w.to_ms(timeout)),
                           timeout, 0.0, what, [to] if to else None)
        sid, win = w.stream_opened(result, what)
        s = SyncOutStream(self, sid, win, what, timeout, self._gen)
        self._streams[sid] = s
        return s


class SyncOutStream:
    """A stream sent by a thread: chunks within the credit window, then the end.
    ``done`` is what the link's readers wait on: credit left, or the stream dead."""

    def __init__(self, link: SyncLink, sid: int, window: int, what: str,
                 timeout: Optional[float], gen: int):
        self.link, self.sid, self.window, self.what = link, sid, window, what
        self.timeout, self.gen = timeout, gen
        self.credit = window
        self.sent = 0
        self.dead: Optional[DaffidError] = None
        self.done = True

    def credited(self, k: Any) -> None:
        if type(k) is int and k > 0:
            self.credit += k
            self.done = True

    def kill(self, e: DaffidError) -> None:
        self.dead = e
        self.done = True

    def send(self, chunk: Any) -> None:
        if self.credit <= 0 and self.dead is None:
            self.done = False
            deadline = time.monotonic() + self.timeout if self.timeout else None
            try:
                self.link._wait(self, deadline)
            except _LocalTimeout:
                raise CallTimeout(f"{self.what}: no credit from the receiver within "
                                  f"{self.timeout} s (chunk {self.sent})", call=self.what,
                                  timeout=self.timeout, elapsed=self.timeout) from None
        if self.dead is not None:
            raise self.dead
        data = w.pack_chunk(self.sid, chunk, self.sent, self.link.max_message, self.what)
        conn = self.link._conn
        if conn is None or conn[1] != self.gen:
            raise Disconnected(f"{self.what}: the connection was lost")
        sock = conn[0]
        self.credit -= 1
        self.done = self.credit > 0
        self.sent += 1
        self.link._send(sock, self.gen, data)

    def end(self, nowait: bool = False) -> Any:
        try:
            if self.dead is not None:
                raise self.dead
            if nowait:
                self.link.notify("daffi.end", [self.sid])
                return None
            return self.link.call("daffi.end", [self.sid], self.timeout, 0.0, self.what)
        finally:
            self.link._streams.pop(self.sid, None)

    def abort(self) -> None:
        if self.dead is None:
            self.dead = Disconnected(f"{self.what}: aborted by this client")
            conn = self.link._conn
            if conn is not None and conn[1] == self.gen:
                try:
                    self.link.notify("daffi.abort", [self.sid])
                except DaffidError:
                    pass
        self.link._streams.pop(self.sid, None)
