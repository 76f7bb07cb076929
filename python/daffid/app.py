"""
Client: daffi's synchronous client of a daffid router or service.

    client = Client(app_name="calc-caller", host="127.0.0.1", port=6001)
    conn = client.connect()
    conn.rpc(timeout=5).multiply(6, 7)      # 42
    client.stop()

A Client that serves callbacks (every @callback of the process, or those given as
``callbacks=``) or has membership event handlers joins the router as the member
``app_name`` and serves from a loop thread of its own (_thread_link.py); one that
only calls uses the calling threads themselves and no thread at all
(_sync_link.py). Either way the connection is made again after a drop.

``join()`` blocks until ``stop()``; in the main thread it also stops on SIGINT or
SIGTERM (daffi's behaviour), so a worker script ends cleanly under a service
manager.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

from ._base import ClientBase
from ._events import await_handler, call_handler
from ._connection import ClientConnection
from ._sync_link import SyncLink
from ._thread_link import ThreadedLink
from .exceptions import Denied, InitializationError

log = logging.getLogger("daffid")


class Client(ClientBase):
    """See the module's documentation and ClientBase for the arguments."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._link: Any = None
        self._events_pool: Optional[ThreadPoolExecutor] = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()

    def _registering(self) -> None:
        if self._link is not None:
            raise InitializationError("register event handlers before connect(): the "
                                      "subscription is made when connecting", code=2)

    def connect(self) -> ClientConnection:
        """Connects (and, serving callbacks, joins the router); returns the
        connection. Raises InitializationError when that fails."""
        with self._lock:
            if self._link is not None:
                raise RuntimeError("Client is already connected")
            registry = self._serving()
            if len(registry) or self._has_event_handlers:
                if self._has_event_handlers:
                    self._events_pool = ThreadPoolExecutor(1, thread_name_prefix="daffid-events")
                link: Any = ThreadedLink(
                    self.address, name=self.app_name, registry=registry, workers=self.workers,
                    max_message=self.max_message, connect_timeout=self.connect_timeout,
                    heartbeat=self.heartbeat, on_event=self._on_event,
                    subscribe=self._has_event_handlers, tls=self._tls, token=self._token)
                link.start()
            else:
                link = SyncLink(self.address, max_message=self.max_message,
                                connect_timeout=self.connect_timeout, tls=self._tls,
                                token=self._token)
                try:
                    link.start()
                except OSError as e:
                    raise InitializationError(f"cannot connect to {self.address}: "
                                              f"{e.strerror or e}") from None
                except Denied as e:
                    raise InitializationError(e.message, code=e.code,
                                              details=e.details) from None
            self._link = link
            self._stopped.clear()
            return ClientConnection(self)

    def _on_event(self, event: dict) -> None:
        """On the loop thread: the handlers run on a thread of their own, in order,
        so they may call through this client."""
        pool = self._events_pool
        if pool is None:
            return
        for handler, arg in self.handlers_for(event):
            if inspect.iscoroutinefunction(handler):
                asyncio.get_running_loop().create_task(await_handler(handler, arg))
            else:
                pool.submit(call_handler, handler, arg)

    @property
    def connected(self) -> bool:
        return self._link is not None and self._link.connected

    def stop(self, *_: Any, **__: Any) -> None:
        """Closes the connection (calls in flight fail Disconnected) and leaves the
        router; idempotent, from any thread."""
        with self._lock:
            link, self._link = self._link, None
            pool, self._events_pool = self._events_pool, None
        if link is not None:
            link.close()
        if pool is not None:
            pool.shutdown(wait=False)
        self._stopped.set()

    def join(self) -> None:
        """Blocks until stop() (from another thread, a callback, or SIGINT/SIGTERM
        when called in the main thread), then stops."""
        restore = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    restore[sig] = signal.signal(sig, lambda *_: self._stopped.set())
                except (ValueError, OSError):
                    pass
        try:
            while not self._stopped.wait(1.0):
                pass
        finally:
            for sig, old in restore.items():
                signal.signal(sig, old)
        self.stop()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

