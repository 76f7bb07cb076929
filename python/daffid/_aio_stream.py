"""
A stream this client sends from an asyncio loop (sdk/PROTOCOL.md section 8): the
chunks within the receiver's credit window, then the end and its one result.

The window is the only queue: send() takes one chunk of credit or waits for the
receiver's ``daffi.credit`` (up to the stream's timeout), so a producer faster than
the receiver is slowed down instead of piling chunks up in the client, the router
or the receiver.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Optional

from . import _wire as w
from .exceptions import CallTimeout, DaffidError, Disconnected

if TYPE_CHECKING:
    from ._aio_link import AsyncLink


class OutStream:
    """An open stream; the link feeds it credit and kills it when it is lost."""

    def __init__(self, link: "AsyncLink", sid: int, window: int, what: str,
                 timeout: Optional[float]):
        self.link, self.sid, self.window, self.what = link, sid, window, what
        self.timeout = timeout
        self.credit = window
        self.sent = 0
        self._dead: Optional[DaffidError] = None
        self._ready = asyncio.Event()

    def credited(self, k: Any) -> None:
        if type(k) is int and k > 0:
            self.credit += k
            self._ready.set()

    def kill(self, e: DaffidError) -> None:
        self._dead = e
        self._ready.set()

    async def send(self, chunk: Any) -> None:
        """Sends one chunk once credit allows; raises CallTimeout when none came within
        the timeout, the stream's death (Disconnected) when it is lost."""
        while self.credit <= 0 and self._dead is None:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), self.timeout)
            except asyncio.TimeoutError:
                raise CallTimeout(f"{self.what}: no credit from the receiver within "
                                  f"{self.timeout} s (chunk {self.sent})", call=self.what,
                                  timeout=self.timeout, elapsed=self.timeout) from None
        if self._dead is not None:
            raise self._dead
        data = w.pack_chunk(self.sid, chunk, self.sent, self.link.max_message, self.what)
        self.credit -= 1
        self.sent += 1
        self.link._write(data)

    async def end(self, nowait: bool = False) -> Any:
        """daffi.end: the handler's one result (None for nowait, sent as a
        notification). The stream is finished either way."""
        if self._dead is not None:
            self.link.forget_stream(self.sid)
            raise self._dead
        try:
            if nowait:
                self.link.notify("daffi.end", [self.sid])
                return None
            return await self.link.call("daffi.end", [self.sid], self.timeout, 0.0, self.what)
        finally:
            self.link.forget_stream(self.sid)

    def abort(self) -> None:
        """daffi.abort: gives the stream up (no result); harmless on a dead one."""
        if self._dead is None:
            self._dead = Disconnected(f"{self.what}: aborted by this client")
            try:
                self.link.notify("daffi.abort", [self.sid])
            except DaffidError:
                pass
        self.link.forget_stream(self.sid)


async def send_all(s: OutStream, chunks: Any) -> None:
    """Sends every chunk of an iterable or async iterable; aborts the stream when
    that fails (or the iterable raises) and re-raises."""
    try:
        if hasattr(chunks, "__aiter__"):
            async for chunk in chunks:
                await s.send(chunk)
        else:
            for chunk in chunks:
                await s.send(chunk)
    except BaseException:
        s.abort()
        raise
