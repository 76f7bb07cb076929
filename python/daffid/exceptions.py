"""
Exceptions of daffid's Python client, with daffi's class names.

Every error a call can end with is a :class:`DaffidError` carrying the wire error
of sdk/PROTOCOL.md section 4: ``code`` (an integer, one of :class:`ErrorCode`),
``name`` (``"HANDLER_ERROR"`` ...), ``message`` (for humans), ``details`` (the
peer's details map, or ``{}``), ``remote`` (True when the peer answered the error,
False when this client raised it) and ``elapsed`` (seconds the call ran, or None).

The classes follow daffi's where daffi has one, so ``except RemoteCallError`` and
``except CallTimeout`` keep working; each wire code has a class of its own below
them (:func:`error_class` says which), so a program may branch on the class or on
``code``:

    DaffidError (daffi: BaseException)
      InitializationError             bad configuration, refused or failed connect()
      TransmissionFailure             the call was not delivered or not answered
        NoCallback          1           nobody exposes the callback
        Unavailable         5           the receiver or the connection is gone
          Disconnected                    this client's connection dropped or closed
            Evicted                       a newcomer took this member's name
        Overloaded          6           too much work queued
        ShuttingDown       10           the server is stopping
      RemoteCallError                 the receiver answered an error
        BadArgs             2
        HandlerError        4           the callback itself failed
        TooLarge            7
        ProtocolError       8
        Denied              9
      CallTimeout (also TimeoutError) 3

A Python callback may raise any of these to answer that code (``raise
BadArgs("a must be an int")``); any other exception is answered HANDLER_ERROR.
"""

from __future__ import annotations

import enum
from typing import Any, Optional


class ErrorCode(enum.IntEnum):
    """The wire error codes (sdk/PROTOCOL.md section 4)."""

    NO_CALLBACK = 1
    BAD_ARGS = 2
    TIMEOUT = 3
    HANDLER_ERROR = 4
    UNAVAILABLE = 5
    OVERLOADED = 6
    TOO_LARGE = 7
    PROTOCOL = 8
    DENIED = 9
    SHUTTING_DOWN = 10


def code_name(code: int) -> str:
    """Returns the wire name of code ("BAD_ARGS"), "UNKNOWN" for a code not defined."""
    try:
        return ErrorCode(code).name
    except ValueError:
        return "UNKNOWN"


class DaffidError(Exception):
    """Base of every daffid error; see the module's documentation."""

    #: the code an instance gets when none is given (each subclass sets its own)
    default_code: int = ErrorCode.HANDLER_ERROR

    def __init__(
        self,
        message: str = "",
        *,
        code: Optional[int] = None,
        details: Optional[dict] = None,
        remote: bool = False,
        elapsed: Optional[float] = None,
    ):
        self.code = int(code if code is not None else self.default_code)
        self.name = code_name(self.code)
        self.message = message
        self.details = details if details is not None else {}
        self.remote = remote
        self.elapsed = elapsed
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.name} (code {self.code}): {self.message}"

    def fire(self):
        """Raises this exception (daffi's helper)."""
        raise self


#: daffi's name for the base class (daffi.exceptions.BaseException)
BaseException = DaffidError  # noqa: A001 - the name daffi programs import


class InitializationError(DaffidError):
    """A Client cannot start: bad arguments, no connection, a refused hello."""

    default_code = ErrorCode.UNAVAILABLE


class TransmissionFailure(DaffidError):
    """The call could not be delivered, or its receiver went away."""

    default_code = ErrorCode.UNAVAILABLE


class NoCallback(TransmissionFailure):
    """No member (router) or plugin (service) exposes the callback; ``details``
    lists the members and their callbacks."""

    default_code = ErrorCode.NO_CALLBACK


class Unavailable(TransmissionFailure):
    """The receiver (or the connection to it) is gone."""

    default_code = ErrorCode.UNAVAILABLE


class Disconnected(Unavailable):
    """This client's connection dropped, was closed, or cannot be made."""


class Evicted(Disconnected):
    """The router gave this member's name to a newcomer (its ``duplicate =
    replace``); the client rejoins only once the name is free again."""


class Overloaded(TransmissionFailure):
    """The receiver's queue or this connection's limit is full; retry later."""

    default_code = ErrorCode.OVERLOADED


class ShuttingDown(TransmissionFailure):
    """The server is draining or stopping."""

    default_code = ErrorCode.SHUTTING_DOWN


class RemoteCallError(DaffidError):
    """The receiver answered the call with an error."""

    default_code = ErrorCode.HANDLER_ERROR


class BadArgs(RemoteCallError):
    """The arguments do not fit the callback (wrong number or types)."""

    default_code = ErrorCode.BAD_ARGS


class HandlerError(RemoteCallError):
    """The callback failed. A Python callback's exception arrives as one of these,
    its class name in ``details["exception"]``."""

    default_code = ErrorCode.HANDLER_ERROR


class TooLarge(RemoteCallError):
    """A message is over ``max_message`` (the request, or the result)."""

    default_code = ErrorCode.TOO_LARGE


class ProtocolError(RemoteCallError):
    """A message was not valid MessagePack-RPC."""

    default_code = ErrorCode.PROTOCOL


class Denied(RemoteCallError):
    """Refused by policy (for example a member name already taken)."""

    default_code = ErrorCode.DENIED


class CallTimeout(DaffidError, TimeoutError):
    """No answer in time. daffi's attributes: ``call`` (what was called),
    ``timeout`` (the limit, seconds), ``elapsed`` (seconds waited) and
    ``receivers`` (the members aimed at, or None)."""

    default_code = ErrorCode.TIMEOUT

    def __init__(
        self,
        message: str = "",
        *,
        call: str = "",
        timeout: Optional[float] = None,
        elapsed: Optional[float] = None,
        receivers: Any = None,
        code: Optional[int] = None,
        details: Optional[dict] = None,
        remote: bool = False,
    ):
        self.call = call
        self.timeout = timeout
        self.receivers = receivers
        if not message:
            message = f"{call or 'the call'}: no answer within {timeout} s"
        super().__init__(message, code=code, details=details, remote=remote, elapsed=elapsed)


_BY_CODE = {
    ErrorCode.NO_CALLBACK: NoCallback,
    ErrorCode.BAD_ARGS: BadArgs,
    ErrorCode.TIMEOUT: CallTimeout,
    ErrorCode.HANDLER_ERROR: HandlerError,
    ErrorCode.UNAVAILABLE: Unavailable,
    ErrorCode.OVERLOADED: Overloaded,
    ErrorCode.TOO_LARGE: TooLarge,
    ErrorCode.PROTOCOL: ProtocolError,
    ErrorCode.DENIED: Denied,
    ErrorCode.SHUTTING_DOWN: ShuttingDown,
}


def error_class(code: int) -> type:
    """Returns the class for a wire code (RemoteCallError for an unknown code)."""
    return _BY_CODE.get(code, RemoteCallError)


def _text(value: Any) -> str:
    """A message as the peer sent it: str, bin (decoded leniently) or nil."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return "" if value is None else str(value)


def from_wire(
    error: Any,
    *,
    call: str = "",
    timeout: Optional[float] = None,
    elapsed: Optional[float] = None,
    receivers: Any = None,
) -> DaffidError:
    """Turns a wire error ``[code, message]`` or ``[code, message, details]`` into
    its exception (remote=True). Accepts what a lenient receiver must (section 4):
    unknown codes, a message as bin or nil, no details. A value that is no error
    array at all becomes a ProtocolError saying so."""
    if not isinstance(error, (list, tuple)) or not error or not isinstance(error[0], int):
        return ProtocolError(f"{call}: the peer sent a malformed error {error!r}", remote=True,
                             elapsed=elapsed)
    code = error[0]
    message = _text(error[1]) if len(error) > 1 else ""
    details = error[2] if len(error) > 2 and isinstance(error[2], dict) else {}
    if code == ErrorCode.TIMEOUT:
        return CallTimeout(message, call=call, timeout=timeout, elapsed=elapsed,
                           receivers=receivers, details=details, remote=True)
    return error_class(code)(message, code=code, details=details, remote=True, elapsed=elapsed)


def make_error(code: int, message: str, *, details: Optional[dict] = None,
               call: str = "", timeout: Optional[float] = None,
               elapsed: Optional[float] = None, receivers: Any = None,
               cls: Optional[type] = None) -> DaffidError:
    """An error this client raises itself (remote=False), of cls or code's class."""
    if cls is None:
        cls = error_class(code)
    if issubclass(cls, CallTimeout):
        return cls(message, call=call, timeout=timeout, elapsed=elapsed,
                   receivers=receivers, details=details, code=code)
    return cls(message, code=code, details=details, elapsed=elapsed)


__all__ = [
    "ErrorCode", "code_name", "DaffidError", "BaseException", "InitializationError",
    "TransmissionFailure", "NoCallback", "Unavailable", "Disconnected", "Evicted",
    "Overloaded", "ShuttingDown", "RemoteCallError", "BadArgs", "HandlerError", "TooLarge",
    "ProtocolError", "Denied", "CallTimeout", "error_class", "from_wire", "make_error",
]
