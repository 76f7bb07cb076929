"""
The MessagePack-RPC messages of sdk/PROTOCOL.md, as both clients pack and check
them: envelopes, the params of the control methods (daffi.call, daffi.cast,
daffi.wait, daffi.hello, daffi.subscribe, daffi.stream and its steps), and the
decoding of their answers. Nothing here does I/O.

Strings are packed as str and bytes as bin (python3-msgpack's use_bin_type); a str
that arrived with invalid UTF-8 is kept with surrogate escapes and packed back to
the same bytes, so a Python member relays what a C caller sent.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Iterable, Optional

import msgpack

from .exceptions import DaffidError, ProtocolError, TooLarge, from_wire

REQUEST, RESPONSE, NOTIFY = 0, 1, 2
MSGID_MAX = 0xFFFFFFFF
#: daffid's default [limits] max_message (16M); both clients take max_message=
MAX_MESSAGE = 16 * 1024 * 1024
#: how much longer than a router call's own timeout_ms a client waits, so that the
#: router's answer (partial cast results, the members daffi.wait misses, its
#: TIMEOUT) arrives rather than a bare local timeout (libdaffi's DAFFI_ROUTER_GRACE_MS)
ROUTER_GRACE = 1.0
#: the window a Python stream receiver grants when the sender asks for none
DEFAULT_WINDOW = 16
MAX_WINDOW = 1024

packb = functools.partial(msgpack.packb, use_bin_type=True, unicode_errors="surrogateescape")


def packer() -> msgpack.Packer:
    """A packer of packb's options, for one thread (or one lock) at a time: reusing
    it costs half of packb's call."""
    return msgpack.Packer(use_bin_type=True, unicode_errors="surrogateescape")


def unpacker(max_message: int) -> msgpack.Unpacker:
    """A streaming unpacker for one connection: str as str, maps with any keys, and
    nothing buffered past max_message (a bigger message raises BufferFull)."""
    return msgpack.Unpacker(raw=False, strict_map_key=False, unicode_errors="surrogateescape",
                            max_buffer_size=max_message)


def pack_request(msgid: int, method: str, params: list) -> bytes:
    return packb([REQUEST, msgid, method, params])


def pack_notify(method: str, params: list) -> bytes:
    return packb([NOTIFY, method, params])


def pack_result(msgid: int, result: Any) -> bytes:
    """A success response; raises TypeError (msgpack's) for a result it cannot pack."""
    return packb([RESPONSE, msgid, None, result])


def pack_error(msgid: int, code: int, message: str, details: Optional[dict] = None) -> bytes:
    err = [code, message] if not details else [code, message, details]
    try:
        return packb([RESPONSE, msgid, err, None])
    except (TypeError, ValueError, OverflowError):
        return packb([RESPONSE, msgid, [code, message], None])   # details not packable


def method_name(value: Any) -> Optional[str]:
    """A method as the peer sent it: str, or bin (pynvim's), as str; None otherwise."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "surrogateescape")
    return None


def check_envelope(msg: Any) -> int:
    """Returns the kind of a decoded message after checking its shape (section 2),
    or raises ProtocolError saying what is wrong."""
    if not isinstance(msg, list) or not msg:
        raise ProtocolError("the peer sent a message that is not an array")
    kind = msg[0]
    if kind == REQUEST or kind == RESPONSE:
        if len(msg) != 4:
            raise ProtocolError(f"a kind {kind} message has {len(msg)} elements, not 4")
        msgid = msg[1]
        if type(msgid) is not int or not 0 <= msgid <= MSGID_MAX:
            raise ProtocolError(f"msgid {msgid!r} is not a uint32")
        if kind == REQUEST:
            if method_name(msg[2]) is None or not isinstance(msg[3], list):
                raise ProtocolError("a request's method is not str/bin or its params no array")
        elif msg[2] is not None and not isinstance(msg[2], list):
            raise ProtocolError("a response's error is neither nil nor an array")
        return kind
    if kind == NOTIFY:
        if len(msg) != 3 or method_name(msg[1]) is None or not isinstance(msg[2], list):
            raise ProtocolError("a notification is not [2, method, params]")
        return kind
    raise ProtocolError(f"unknown message kind {kind!r}")


def to_ms(seconds: Optional[float]) -> int:
    """A timeout in seconds as the wire's timeout_ms: 0 for None or 0 (the server's
    default), at least 1 otherwise. Raises ValueError for a negative or NaN one."""
    if seconds is None or seconds == 0:
        return 0
    if not seconds > 0 or math.isinf(seconds):
        raise ValueError(f"timeout {seconds!r}: must be a positive number of seconds or None")
    return max(1, round(seconds * 1000))


def positional(name: str, args: tuple, kwargs: dict) -> list:
    """The params of a call of name: its positional arguments. MessagePack-RPC params
    are an array, so keyword arguments have nowhere to go: they are refused here
    rather than sent in a shape the callee (C or Python) would have to guess."""
    if kwargs:
        keys = ", ".join(sorted(kwargs))
        raise TypeError(f"{name}(): keyword arguments ({keys}) are not supported: "
                        "MessagePack-RPC params are positional; pass them in order, or "
                        "pass one dict argument")
    return list(args)


def call_params(callback: str, params: list, to: Optional[str], timeout_ms: int) -> list:
    """[callback, params, {"to": name, "timeout_ms": n}] of daffi.call."""
    opts: dict = {}
    if to:
        opts["to"] = to
    if timeout_ms:
        opts["timeout_ms"] = timeout_ms
    return [callback, params, opts]


def cast_params(callback: str, params: list, to: Optional[list], timeout_ms: int) -> list:
    """[callback, params, {"to": [names], "timeout_ms": n}] of daffi.cast."""
    opts: dict = {}
    if to:
        opts["to"] = list(to)
    if timeout_ms:
        opts["timeout_ms"] = timeout_ms
    return [callback, params, opts]


def receivers_list(receiver: Any, receivers: Any) -> Optional[list]:
    """cast's targets: daffi's receiver= (a name or a list) or receivers= (a list)."""
    if receiver is not None and receivers is not None:
        raise TypeError("cast(): give receiver= or receivers=, not both")
    target = receivers if receivers is not None else receiver
    if target is None:
        return None
    if isinstance(target, str):
        return [target]
    names = list(target)
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"cast(): receivers must be member names, got {names!r}")
    return names


def hello_params(name: str, callbacks: Iterable[str], evicted: bool) -> list:
    """daffi.hello's params: this member honours deadlines; an evicted one asks not
    to take its name back from the newcomer ("replace": false)."""
    info = {"name": name, "callbacks": list(callbacks), "deadlines": True}
    if evicted:
        info["replace"] = False
    return [info]


SUBSCRIBE_PARAMS = [["members"]]


def stream_params(callback: str, params: list, to: Optional[str], window: Optional[int],
                  timeout_ms: int) -> list:
    """daffi.stream's params [callback, params, {"to", "window", "timeout_ms"}]."""
    opts: dict = {}
    if to:
        opts["to"] = to
    if window:
        if not 1 <= window <= MAX_WINDOW:
            raise ValueError(f"window {window}: must be 1 .. {MAX_WINDOW} chunks")
        opts["window"] = window
    if timeout_ms:
        opts["timeout_ms"] = timeout_ms
    return [callback, params, opts]


def pack_chunk(sid: int, chunk: Any, index: int, max_message: int, what: str) -> bytes:
    """[2, "daffi.chunk", [sid, chunk]], or TooLarge naming the chunk."""
    data = packb([NOTIFY, "daffi.chunk", [sid, chunk]])
    if len(data) > max_message:
        raise TooLarge(f"{what}: chunk {index} is {len(data)} bytes, over max_message "
                       f"({max_message})")
    return data


def stream_opened(result: Any, what: str) -> tuple:
    """(stream id, window) from daffi.stream's answer {"stream": id, "window": n}."""
    sid = result.get("stream") if isinstance(result, dict) else None
    win = result.get("window") if isinstance(result, dict) else None
    if type(sid) is not int or type(win) is not int or sid <= 0 or win <= 0:
        raise ProtocolError(f"{what}: daffi.stream answered {result!r}, not "
                            '{"stream": id, "window": n}', remote=True)
    return sid, win


def cast_result(result: Any, what: str, timeout: Optional[float]) -> dict:
    """daffi.cast's {name: [error, result]} as daffi's {name: result}, a failed
    member's exception as its value."""
    if not isinstance(result, dict):
        raise ProtocolError(f"{what}: daffi.cast answered {result!r}, not a map", remote=True)
    out: dict = {}
    for name, entry in result.items():
        if not isinstance(entry, list) or len(entry) != 2:
            out[name] = ProtocolError(f"{what}: member {name!r}: malformed entry {entry!r}",
                                      remote=True)
        elif entry[0] is not None:
            out[name] = from_wire(entry[0], call=what, timeout=timeout, receivers=[name])
        else:
            out[name] = entry[1]
    return out


def is_router_only(err: DaffidError) -> bool:
    """True for the NO_CALLBACK a daffid service answers daffi.cast/wait/subscribe
    with ("daffi.cast needs a router; ..."): the peer is a plain service."""
    return err.code == 1 and "needs a router" in err.message


def describe(kind: str, name: str, receiver: Any = None) -> str:
    """A call as error messages name it: rpc(fn: 'add', receiver: 'w1')."""
    if receiver:
        return f"{kind}(fn: {name!r}, receiver: {receiver!r})"
    return f"{kind}(fn: {name!r})"
