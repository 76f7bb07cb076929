"""
The member side of a connection: the requests and notifications a router sends to
a Client that announced callbacks, run on that client's asyncio loop.

- ``daffi.ping`` is answered at once (the router's heartbeat).
- A callback arrives plain or, since the hello says ``"deadlines": true``, wrapped
  as ``daffi.call [cb, params, {"timeout_ms": left}]``: the call then has a
  deadline, and at it the call is forgotten as the router forgets it (a queued
  call never starts, an ``async def`` one is cancelled, a sync one running in a
  thread finishes but its result is dropped); nothing is answered, since the
  router has answered TIMEOUT already.
- ``workers=N`` (daffi's) bounds the callbacks running at once; the rest wait in
  arrival order. Sync callbacks run on a pool of N threads, so a blocking one
  never stalls the loop; ``async def`` ones run on the loop.
- A callback's exception is its answer: a daffid exception (``BadArgs`` ...) with
  its own code, a TypeError from arguments the function cannot take as BAD_ARGS,
  anything else HANDLER_ERROR with the exception's class in the details.
- Streams (``daffi.stream``, ``daffi.chunk``, ``daffi.end``, ``daffi.abort``) are
  received with a credit window: credit goes back only as the handler consumes
  chunks, so a fast sender is held back by the handler, not by memory.

Replies go out through ``reply(gen, data)``, which drops them when the connection
they came in on is gone (a reconnect does not answer an old caller).
"""

from __future__ import annotations

import asyncio
import logging
import queue
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, Optional

from . import _wire as w
from .exceptions import DaffidError, ErrorCode, Unavailable
from .registry import STREAM, Executor, Registry

log = logging.getLogger("daffid")

STREAM_ID_FIRST = 0x80000001
_END = object()       # a stream's daffi.end reached the chunk queue
_ABORT = object()     # a stream's daffi.abort (or its connection's loss)


class StreamAborted(Unavailable):
    """Raised inside a stream handler's iterator when the sender aborted the stream
    or its connection dropped: there will be no more chunks and no result."""


class Server:
    """Runs the callbacks of registry for one client, on loop. reply(gen, bytes)
    writes an answer on connection generation gen (dropped when it is gone)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, registry: Registry, workers: int,
                 name: str, max_message: int, reply: Callable[[int, bytes], None]):
        if workers < 1:
            raise ValueError(f"workers={workers}: must be at least 1")
        self.loop = loop
        self.registry = registry
        self.workers = workers
        self.name = name
        self.max_message = max_message
        self.reply = reply
        self._slots = asyncio.Semaphore(workers)
        self._pool: Optional[ThreadPoolExecutor] = None
        self._tasks: set = set()
        self._streams: Dict[int, "_InStream"] = {}
        # The ids of streams received, from the upper half of the uint32 range: on a
        # connection that also sends streams, the router names those from 1 up, and
        # daffi.abort carries an id alone, so the two must not meet.
        self._next_stream = STREAM_ID_FIRST
        self.served = 0
        self.ignored = 0

    # ---- entry points (from the link's message dispatch, on the loop) ------------

    def request(self, gen: int, msgid: int, method: str, params: list) -> None:
        """A request from the peer; answered on connection gen."""
        if method == "daffi.ping":
            self.reply(gen, w.pack_result(msgid, "pong"))
            return
        if method == "daffi.stream":
            self._stream_open(gen, msgid, params)
            return
        if method == "daffi.end":
            self._stream_end(gen, msgid, params)
            return
        self._call(gen, msgid, method, params)

    def notification(self, gen: int, method: str, params: list) -> None:
        """A notification from the peer (rpc_nowait, stream chunks and aborts)."""
        if method == "daffi.chunk":
            self._stream_chunk(gen, params)
        elif method == "daffi.abort":
            s = self._streams.pop(params[0], None) if params else None
            if s is not None:
                s.abort()
            else:
                self.ignored += 1
        elif method == "daffi.end":
            self._stream_end(gen, None, params)
        else:
            self._call(gen, None, method, params)

    def connection_lost(self) -> None:
        """The connection dropped: every stream received on it is aborted."""
        streams, self._streams = self._streams, {}
        for s in streams.values():
            s.abort()

    async def close(self) -> None:
        """Cancels what still runs on the loop; threads finish on their own."""
        self.connection_lost()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- calls ---------------------------------------------------------------------

    def _error(self, gen: int, msgid: Optional[int], code: int, message: str,
               details: Optional[dict] = None) -> None:
        if msgid is not None:
            self.reply(gen, w.pack_error(msgid, code, message, details))

    def _call(self, gen: int, msgid: Optional[int], method: str, params: list) -> None:
        deadline = None
        if method == "daffi.call":
            if (len(params) < 2 or not isinstance(params[0], (str, bytes))
                    or not isinstance(params[1], list)
                    or (len(params) > 2 and not isinstance(params[2], (dict, type(None))))):
                self._error(gen, msgid, ErrorCode.BAD_ARGS, "daffi.call takes [callback, "
                            '[params...], {"to": name, "timeout_ms": int}]')
                return
            opts = params[2] if len(params) > 2 and params[2] else {}
            ms = opts.get("timeout_ms")
            if isinstance(ms, int) and ms > 0:
                deadline = self.loop.time() + ms / 1000.0
            method, params = w.method_name(params[0]), params[1]
        ex = self.registry.get(method)
        if ex is None:
            if msgid is None:
                self.ignored += 1
            elif method.startswith("daffi."):
                self._error(gen, msgid, ErrorCode.NO_CALLBACK,
                            f"no control method '{method}' on member '{self.name}'")
            else:
                self._error(gen, msgid, ErrorCode.NO_CALLBACK,
                            f"no callback '{method}' on member '{self.name}'",
                            {"members": [{"name": self.name,
                                          "callbacks": self.registry.names()}]})
            return
        self.served += 1
        self._spawn(self._run_call(gen, msgid, ex, params, deadline))

    def _spawn(self, coro) -> None:
        t = self.loop.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _invoke(self, ex: Executor, args: list) -> Any:
        """Runs ex with args: on the loop (async def) or in the pool (sync)."""
        if ex.is_async:
            return await ex.fn(*args)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="daffid-cb")
        return await self.loop.run_in_executor(self._pool, ex.fn, *args)

    async def _run_call(self, gen: int, msgid: Optional[int], ex: Executor, args: list,
                        deadline: Optional[float]) -> None:
        try:
            async with asyncio.timeout_at(deadline) as scope:
                async with self._slots:
                    result = await self._invoke(ex, args)
        except TimeoutError as e:
            if deadline is not None and scope.expired():
                return   # the router forgot the call at its deadline: so do we
            self._failed(gen, msgid, ex, args, e)
            return
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # noqa: B902 - every failure is the call's answer
            self._failed(gen, msgid, ex, args, e)
            return
        if msgid is not None:
            self.reply(gen, self.pack_answer(msgid, ex.name, result))

    def pack_answer(self, msgid: int, name: str, result: Any) -> bytes:
        """The response carrying result, or the error saying why it cannot."""
        try:
            data = w.pack_result(msgid, result)
        except (TypeError, ValueError, OverflowError) as e:
            return w.pack_error(msgid, ErrorCode.HANDLER_ERROR,
                                f"{name}: the result is not MessagePack-serializable: {e}")
        if len(data) > self.max_message:
            return w.pack_error(msgid, ErrorCode.TOO_LARGE,
                                f"{name}: the result is {len(data)} bytes, over max_message "
                                f"({self.max_message})")
        return data

    def _failed(self, gen: int, msgid: Optional[int], ex: Executor, args: list,
                e: BaseException) -> None:
        code, message, details = self.describe_failure(ex, args, e)
        if code == ErrorCode.HANDLER_ERROR:
            log.warning("callback %s raised %s", ex.name, type(e).__name__,
                        exc_info=(type(e), e, e.__traceback__))
        self._error(gen, msgid, code, message, details)

    @staticmethod
    def describe_failure(ex: Executor, args: list, e: BaseException) -> tuple:
        """(code, message, details) answering a callback that raised e."""
        if isinstance(e, DaffidError):
            return e.code, e.message, e.details or None
        if isinstance(e, TypeError):
            why = ex.arguments_fit(args)
            if why is not None:
                return ErrorCode.BAD_ARGS, why, None
        return (ErrorCode.HANDLER_ERROR, f"{type(e).__name__}: {e}",
                {"exception": type(e).__qualname__})

    # ---- streams received ---------------------------------------------------------

    def _stream_open(self, gen: int, msgid: int, params: list) -> None:
        if not params or w.method_name(params[0]) is None or \
                (len(params) > 1 and not isinstance(params[1], list)):
            self._error(gen, msgid, ErrorCode.BAD_ARGS, "daffi.stream takes [callback, "
                        '[params...], {"to": name, "window": int}]')
            return
        name = w.method_name(params[0])
        ex = self.registry.get(name)
        if ex is None:
            self._error(gen, msgid, ErrorCode.NO_CALLBACK,
                        f"no callback '{name}' on member '{self.name}'")
            return
        opts = params[2] if len(params) > 2 and isinstance(params[2], dict) else {}
        asked = opts.get("window")
        window = asked if isinstance(asked, int) and 0 < asked <= w.MAX_WINDOW \
            else w.DEFAULT_WINDOW
        sid = self._next_stream
        self._next_stream = sid + 1 if sid < w.MSGID_MAX else STREAM_ID_FIRST
        s = _InStream(self, gen, sid, ex, params[1] if len(params) > 1 else [], window)
        self._streams[sid] = s
        self.reply(gen, w.pack_result(msgid, {"stream": sid, "window": window}))
        self._spawn(s.consume())

    def _stream_chunk(self, gen: int, params: list) -> None:
        s = self._streams.get(params[0]) if len(params) == 2 else None
        if s is None or s.gen != gen:
            self.ignored += 1   # an unknown id: discarded and counted (section 8)
            return
        s.put(params[1])

    def _stream_end(self, gen: int, msgid: Optional[int], params: list) -> None:
        s = self._streams.pop(params[0], None) if params else None
        if s is None:
            self._error(gen, msgid, ErrorCode.UNAVAILABLE,
                        f"no stream {params[0] if params else '?'} open on member "
                        f"'{self.name}'")
            return
        s.end(msgid)


class _InStream:
    """One stream received: a queue of at most window chunks between the link and
    the handler, credit returned as the handler takes chunks, the one result."""

    def __init__(self, srv: Server, gen: int, sid: int, ex: Executor, params: list,
                 window: int):
        self.srv, self.gen, self.sid, self.ex, self.params = srv, gen, sid, ex, params
        self.window = window
        self.threaded = ex.kind == STREAM and not ex.is_async
        self.chunks: Any = queue.SimpleQueue() if self.threaded else asyncio.Queue()
        self.queued = 0
        self.consumed = 0
        self.done = False           # the handler returned (or failed)
        self.outcome: Any = None    # its result, or the exception it failed with
        self.failed = False
        self.end_msgid: Any = _ABORT   # no daffi.end yet

    def put(self, chunk: Any) -> None:
        if self.done:
            self._credit(1)     # consumed and discarded: credit still flows
            return
        self.queued += 1
        if self.queued > self.window:
            self._fail(DaffidError("chunks were sent past the stream's window",
                                   code=ErrorCode.PROTOCOL))
            return
        self.chunks.put_nowait(chunk)

    def taken(self) -> None:
        """The handler took one chunk (on the loop)."""
        self.queued -= 1
        self._credit(1)

    def _credit(self, n: int) -> None:
        self.consumed += n
        if self.consumed * 2 >= self.window:
            self.srv.reply(self.gen, w.pack_notify("daffi.credit", [self.sid, self.consumed]))
            self.consumed = 0

    def end(self, msgid: Optional[int]) -> None:
        self.end_msgid = msgid
        if self.done:
            self._answer()
        else:
            self.chunks.put_nowait(_END)

    def abort(self) -> None:
        self.end_msgid = _ABORT
        if not self.done:
            self.chunks.put_nowait(_ABORT)

    def _fail(self, e: BaseException) -> None:
        if not self.done:
            self.chunks.put_nowait(_ABORT)   # wakes a handler still waiting for chunks
        self.failed = True
        self.outcome = e
        self._finish()

    def _finish(self) -> None:
        """The handler is done: credit what it left queued, answer a waiting end."""
        if self.done:
            return
        self.done = True
        left = self.queued
        self.queued = 0
        if left:
            self._credit(left)
        if self.end_msgid is not _ABORT:
            self._answer()

    def _answer(self) -> None:
        msgid = self.end_msgid
        if msgid is None:
            return   # stream_nowait: the result is dropped
        if self.failed:
            e = self.outcome
            code, message, details = Server.describe_failure(self.ex, self.params, e)
            self.srv.reply(self.gen, w.pack_error(msgid, code, message, details))
        else:
            self.srv.reply(self.gen, self.srv.pack_answer(msgid, self.ex.name, self.outcome))

    async def consume(self) -> None:
        """Runs the handler over the chunks (a stream handler once, a plain callback
        once per chunk), holding one of the workers slots while it runs."""
        try:
            async with self.srv._slots:
                if self.ex.kind != STREAM:
                    result = await self._per_chunk()
                elif self.threaded:
                    result = await self.srv._invoke(self.ex, [_SyncChunks(self)] + self.params)
                else:
                    result = await self.ex.fn(_AsyncChunks(self), *self.params)
        except StreamAborted:
            self.done = True
            return
        except asyncio.CancelledError:
            self.done = True
            raise
        except BaseException as e:  # noqa: B902 - the handler's failure is the answer
            if not isinstance(e, DaffidError):
                log.warning("stream callback %s raised %s", self.ex.name, type(e).__name__,
                            exc_info=(type(e), e, e.__traceback__))
            self._fail(e)
            return
        self.outcome = result
        self._finish()

    async def _per_chunk(self) -> None:
        """daffi's stream: the callback is called with each chunk, in order."""
        while True:
            item = await self.chunks.get()
            if item is _END:
                return None
            if item is _ABORT:
                raise StreamAborted("the stream was aborted")
            await self.srv._invoke(self.ex, [item])
            self.taken()


class _AsyncChunks:
    """The chunks of a stream, for an ``async def`` stream handler."""

    def __init__(self, s: _InStream):
        self._s = s

    def __aiter__(self):
        return self

    async def __anext__(self) -> Any:
        item = await self._s.chunks.get()
        if item is _END:
            raise StopAsyncIteration
        if item is _ABORT:
            raise StreamAborted("the stream was aborted by its sender or connection")
        self._s.taken()
        return item


class _SyncChunks:
    """The chunks of a stream, for a sync stream handler running in the pool."""

    def __init__(self, s: _InStream):
        self._s = s

    def __iter__(self):
        return self

    def __next__(self) -> Any:
        item = self._s.chunks.get()
        if item is _END:
            raise StopIteration
        if item is _ABORT:
            raise StreamAborted("the stream was aborted by its sender or connection")
        self._s.srv.loop.call_soon_threadsafe(self._s.taken)
        return item
