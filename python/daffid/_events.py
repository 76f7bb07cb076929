"""
Membership event handlers, shared by Client and AsyncClient: daffi's
``on_member_added`` / ``on_member_removed`` (each handler gets the member's name)
and ``add_event_handler`` (each handler gets ``{"type": "connected" |
"disconnected", "member": name}``), fed by the router's ``daffi.event``
notifications (``joined`` / ``left``) after a ``daffi.subscribe`` the client makes
when it connects with at least one handler registered.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator, List

log = logging.getLogger("daffid")

#: daffid's event types and daffi's names for them
DAFFI_TYPES = {"joined": "connected", "left": "disconnected"}


class EventsMixin:
    """Handler registration; subclasses call _init_events() and deliver events with
    handlers_for(event)."""

    def _init_events(self) -> None:
        self._added: List[Callable] = []
        self._removed: List[Callable] = []
        self._generic: List[Callable] = []

    def _registering(self) -> None:
        """Subclasses refuse handlers added once connected (nothing subscribes then)."""

    def on_member_added(self, handler: Callable[[str], Any]) -> Callable[[str], Any]:
        """Calls handler(name) whenever a member joins the router. A decorator too.
        Register before connect(): the subscription is made when connecting."""
        self._registering()
        self._added.append(handler)
        return handler

    def on_member_removed(self, handler: Callable[[str], Any]) -> Callable[[str], Any]:
        """Calls handler(name) whenever a member leaves. A decorator too."""
        self._registering()
        self._removed.append(handler)
        return handler

    def add_event_handler(self, handler: Callable[[dict], Any]) -> Callable[[dict], Any]:
        """Calls handler({"type": "connected" | "disconnected", "member": name})."""
        self._registering()
        self._generic.append(handler)
        return handler

    @property
    def _has_event_handlers(self) -> bool:
        return bool(self._added or self._removed or self._generic)

    def handlers_for(self, event: dict) -> Iterator[tuple]:
        """(handler, argument) pairs an event calls, in registration order."""
        etype, member = event.get("type"), event.get("member")
        if not isinstance(member, str):
            return
        specific = self._added if etype == "joined" else \
            self._removed if etype == "left" else []
        for h in specific:
            yield h, member
        daffi_event = {"type": DAFFI_TYPES.get(etype, etype), "member": member}
        for h in self._generic:
            yield h, daffi_event


def call_handler(handler: Callable, arg: Any) -> None:
    """Runs one handler; its exception is logged, never passed on to later events."""
    try:
        handler(arg)
    except Exception:   # noqa: B902 - a handler's bug must not stop later events
        log.exception("daffid: a membership event handler failed")


async def await_handler(handler: Callable, arg: Any) -> None:
    """call_handler for an async def handler."""
    try:
        await handler(arg)
    except Exception:   # noqa: B902 - a handler's bug must not stop later events
        log.exception("daffid: a membership event handler failed")
