"""
daffi's call styles as daffid requests, for both connections (sync and asyncio):
each function returns the request to send, as the arguments of a link's
``call(method, params, timeout, grace, what, receivers)``; the connections only
send it and await it.

- ``rpc(timeout=t, receiver=r).f(*args)``: ``daffi.call [f, args, {"to": r,
  "timeout_ms": t}]``, so the deadline travels with the call and every hop stops
  waiting at it; without timeout and receiver, the plain request ``f(args)`` (the
  server's default_timeout applies).
- ``rpc_nowait``: the same as a notification.
- ``cast``: ``daffi.cast [f, args, {"to": [names], "timeout_ms": t}]``, answered
  ``{member: result}`` with each failed member's exception as its value.
- ``wait_for_members``: ``daffi.wait [[names], timeout_ms]``.

Router calls wait ROUTER_GRACE longer than their timeout for the router's own
answer (partial cast results, the names daffi.wait misses).
"""

from __future__ import annotations

from typing import Any, Iterable, List, Optional

from . import _wire as w
from .exceptions import CallTimeout, DaffidError


def rpc(name: str, args: tuple, kwargs: dict, timeout: Optional[float],
        receiver: Optional[str]) -> tuple:
    params = w.positional(name, args, kwargs)
    ms = w.to_ms(timeout)
    if not ms and not receiver:
        return name, params, None, 0.0, name, None
    what = w.describe("rpc", name, receiver)
    return ("daffi.call", w.call_params(name, params, receiver, ms), timeout or None,
            w.ROUTER_GRACE if ms else 0.0, what, [receiver] if receiver else None)


def rpc_nowait(name: str, args: tuple, kwargs: dict, receiver: Optional[str]) -> tuple:
    params = w.positional(name, args, kwargs)
    if receiver:
        return "daffi.call", w.call_params(name, params, receiver, 0)
    return name, params


def cast(name: str, args: tuple, kwargs: dict, timeout: Optional[float],
         to: Optional[list]) -> tuple:
    params = w.positional(name, args, kwargs)
    ms = w.to_ms(timeout)
    return ("daffi.cast", w.cast_params(name, params, to, ms), timeout or None,
            w.ROUTER_GRACE if ms else 0.0, w.describe("cast", name, to), to)


def cast_nowait(name: str, args: tuple, kwargs: dict, to: Optional[list]) -> tuple:
    return "daffi.cast", w.cast_params(name, w.positional(name, args, kwargs), to, 0)


def service_targets(members: Any, to: Optional[list]) -> List[str]:
    """On a plain service, the members a cast reaches: the service itself (daffi's
    one-entry dict), or those of to that are it."""
    names = [m.get("name") for m in members if isinstance(m, dict)] \
        if isinstance(members, list) else []
    return [n for n in names if isinstance(n, str) and (to is None or n in to)]


def service_call(name: str, args: tuple, member: str, timeout: Optional[float]) -> tuple:
    """A cast's part for one member as a plain daffi.call (on a service)."""
    ms = w.to_ms(timeout)
    return ("daffi.call", w.call_params(name, list(args), member, ms), timeout or None,
            w.ROUTER_GRACE if ms else 0.0, w.describe("cast", name, [member]), [member])


#: the longest daffi.wait asked at once when wait_for_members has no timeout
WAIT_SLICE = 60.0


def wait(names: Iterable[str], timeout: Optional[float]) -> tuple:
    names = list(names)
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"wait_for_members(): member names must be str, got {names!r}")
    limit = timeout if timeout else WAIT_SLICE
    return ("daffi.wait", [names, w.to_ms(limit)], limit, w.ROUTER_GRACE,
            f"wait_for_members({', '.join(map(repr, names))})", names)


def time_left(timeout: Optional[float], start: float, now: float) -> Optional[float]:
    """What remains of timeout (None: no limit) started at start."""
    return None if timeout is None else max(0.001, timeout - (now - start))


def wait_again(link: Any, e: DaffidError, timeout: Optional[float]) -> bool:
    """After daffi.wait failed with e: True to ask again (the peer turned out to be a
    plain service, now marked on the link, or one slice of an endless wait passed),
    False when e is the answer."""
    if w.is_router_only(e):
        link.is_service = True
        return True
    return timeout is None and e.code == 3


def members_missing(members: Any, names: List[str]) -> List[str]:
    present = {m.get("name") for m in members if isinstance(m, dict)} \
        if isinstance(members, list) else set()
    return [n for n in names if n not in present]


def service_wait_timeout(names: List[str], missing: List[str], timeout: float) -> CallTimeout:
    return CallTimeout(f"members not connected within {timeout} s: {', '.join(missing)} "
                       "(this peer is a plain service: it lists only itself)",
                       call=f"wait_for_members({', '.join(map(repr, names))})",
                       timeout=timeout, elapsed=timeout, receivers=names)


def chunks_of(value: Any) -> Any:
    """What a stream sends: the items of an iterable (or async iterable); a single
    value (including str, bytes and dicts, which iterate otherwise) as one chunk,
    as daffi does."""
    if isinstance(value, (str, bytes, bytearray, memoryview, dict)):
        return [value]
    if hasattr(value, "__aiter__") or hasattr(value, "__iter__"):
        return value
    return [value]
