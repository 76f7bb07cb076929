"""
AsyncClient: daffi.aio's client on the running asyncio loop.

    async def main():
        client = AsyncClient(app_name="calc-caller", host="127.0.0.1", port=6001)
        conn = await client.connect()
        print(await conn.rpc(timeout=5).multiply(6, 7))     # 42
        await client.stop()

    asyncio.run(main())

It serves the process's @callback functions (or ``callbacks=``) as the member
``app_name``: ``async def`` callbacks on the loop, sync ones on a pool of
``workers`` threads, at most ``workers`` at once either way. Membership event
handlers run on the loop (``async def`` ones as tasks).
"""

from __future__ import annotations

import asyncio
import inspect
import signal
from typing import Any, Optional

from .._aio_link import AsyncLink
from .._base import ClientBase
from .._events import await_handler, call_handler
from ..exceptions import InitializationError
from ._connection import AsyncClientConnection


class AsyncClient(ClientBase):
    """See the module's documentation and ClientBase for the arguments."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._link: Optional[AsyncLink] = None
        self._stopped: Optional[asyncio.Event] = None

    def _registering(self) -> None:
        if self._link is not None:
            raise InitializationError("register event handlers before connect(): the "
                                      "subscription is made when connecting", code=2)

    async def connect(self) -> AsyncClientConnection:
        """Connects (and, serving callbacks, joins the router); returns the
        connection. Raises InitializationError when that fails."""
        if self._link is not None:
            raise RuntimeError("AsyncClient is already connected")
        link = AsyncLink(self.address, name=self.app_name, registry=self._serving(),
                         workers=self.workers, max_message=self.max_message,
                         connect_timeout=self.connect_timeout, heartbeat=self.heartbeat,
                         on_event=self._on_event, subscribe=self._has_event_handlers,
                         tls=self._tls, token=self._token)
        self._link = link
        try:
            await link.start()
        except BaseException:
            self._link = None
            await link.server.close()
            raise
        self._stopped = asyncio.Event()
        return AsyncClientConnection(self)

    def _on_event(self, event: dict) -> None:
        loop = asyncio.get_running_loop()
        for handler, arg in self.handlers_for(event):
            if inspect.iscoroutinefunction(handler):
                loop.create_task(await_handler(handler, arg))
            else:
                call_handler(handler, arg)

    @property
    def connected(self) -> bool:
        return self._link is not None and self._link.connected

    async def stop(self, *_: Any, **__: Any) -> None:
        """Closes the connection (calls in flight fail Disconnected), cancels the
        callbacks still running on the loop; idempotent."""
        link, self._link = self._link, None
        if link is not None:
            await link.close()
        if self._stopped is not None:
            self._stopped.set()

    async def join(self) -> None:
        """Waits until stop() (or SIGINT/SIGTERM, handled while it waits), then stops."""
        if self._stopped is None:
            self._stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        added = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._stopped.set)
                added.append(sig)
            except (ValueError, RuntimeError, NotImplementedError):
                pass    # not the main thread
        try:
            await self._stopped.wait()
        finally:
            for sig in added:
                loop.remove_signal_handler(sig)
        await self.stop()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()
