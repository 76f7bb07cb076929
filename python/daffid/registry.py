"""
The callbacks a Client serves: daffi's ``@callback`` (functions, ``async def``
functions, or every public method of a class), ``@local`` and ``@alias``, plus
daffid's ``@stream_callback`` for stream handlers.

As in daffi, decorating registers into one process-wide registry, and a Client
created without ``callbacks=`` serves everything registered when it connects.
``Client(callbacks=[f, g])`` serves exactly the functions listed instead (an
empty list: none, a pure caller).

Names follow sdk/PROTOCOL.md section 6: 1 to 255 printable characters without
spaces, not beginning with ``daffi.``. A name registered again replaces the
earlier function, as redefining a function does.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any, Callable, Dict, Iterable, List, Optional, Union

from .exceptions import InitializationError

CALL = "call"
STREAM = "stream"


class Executor:
    """One served callback: its wire name, the function, and how to run it."""

    __slots__ = ("name", "fn", "is_async", "kind", "_sig")

    def __init__(self, name: str, fn: Callable, kind: str = CALL):
        self.name = name
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        self.kind = kind
        self._sig: Any = None

    def arguments_fit(self, args: list) -> Optional[str]:
        """None when fn accepts args positionally, else why not (for BAD_ARGS). Only
        asked after a TypeError, so a call pays nothing for it."""
        if self._sig is None:
            try:
                self._sig = inspect.signature(self.fn)
            except (TypeError, ValueError):
                self._sig = False
        if self._sig is False:
            return None
        try:
            self._sig.bind(*args)
        except TypeError as e:
            return f"{self.name}: {e}"
        return None

    def __repr__(self) -> str:
        return f"<{self.kind} callback {self.name!r} {'async' if self.is_async else 'sync'}>"


def check_name(name: Any) -> str:
    """Returns name when it is a valid callback name, else raises InitializationError."""
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        raise InitializationError(f"callback name {name!r}: must be 1 to 255 characters",
                                  code=2)
    if name.startswith("daffi."):
        raise InitializationError(f"callback name {name!r}: names beginning with "
                                  "'daffi.' are reserved for control", code=2)
    if not name.isprintable() or " " in name:
        raise InitializationError(f"callback name {name!r}: printable characters "
                                  "without spaces only", code=2)
    return name


def _check_function(name: str, fn: Any) -> None:
    if not callable(fn):
        raise InitializationError(f"callback {name!r}: {fn!r} is not callable", code=2)
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise InitializationError(f"callback {name!r}: a generator cannot be a callback "
                                  "(its result would be an iterator); return a value", code=2)


def served_name(fn: Callable) -> str:
    """The name fn is served under: its @alias, else its __name__ (a lambda has
    none worth serving: give it a name in a dict instead)."""
    name = getattr(fn, "alias", None) or getattr(fn, "__name__", None)
    if not name or name == "<lambda>":
        raise InitializationError(f"callback {fn!r}: a lambda or nameless callable; use a "
                                  "named function, or name it: callbacks={'name': fn}",
                                  code=2)
    return name


class Registry:
    """Callbacks by name. Thread-safe: decorators may run in any thread."""

    def __init__(self) -> None:
        self._by_name: Dict[str, Executor] = {}
        self._lock = threading.Lock()

    def register(self, name: str, fn: Callable, kind: str = CALL) -> Executor:
        check_name(name)
        _check_function(name, fn)
        ex = Executor(name, fn, kind)
        with self._lock:
            self._by_name[name] = ex
        return ex

    def get(self, name: str) -> Optional[Executor]:
        return self._by_name.get(name)

    def names(self) -> List[str]:
        with self._lock:
            return list(self._by_name)

    def copy(self) -> "Registry":
        other = Registry()
        with self._lock:
            other._by_name = dict(self._by_name)
        return other

    def __len__(self) -> int:
        return len(self._by_name)

    def __iter__(self):
        with self._lock:
            return iter(list(self._by_name.items()))


#: the process-wide registry @callback fills (daffi's EXECUTOR_REGISTRY)
REGISTRY = Registry()


def _members_of(instance: Any) -> Iterable:
    for name, member in inspect.getmembers(instance, predicate=inspect.ismethod):
        if not name.startswith("_") and not getattr(member, "local", False):
            yield served_name(member), member


def callback(func_or_class: Any) -> Any:
    """Registers a function (or ``async def`` function) as a remote callback under
    its name; on a class, instantiates it once and registers each public method not
    marked ``@local``. Returns what it decorated, unchanged."""
    if inspect.isclass(func_or_class):
        instance = func_or_class()
        for name, method in _members_of(instance):
            REGISTRY.register(name, method, getattr(method, "_daffid_kind", CALL))
        return func_or_class
    REGISTRY.register(served_name(func_or_class), func_or_class,
                      getattr(func_or_class, "_daffid_kind", CALL))
    return func_or_class


def stream_callback(fn: Callable) -> Callable:
    """Registers fn as a stream handler (daffid's own): a stream opened on it calls
    ``fn(chunks, *params)`` once, where chunks is an iterator of the stream's chunks
    in order (an async iterator for an ``async def`` fn), and fn's return value is
    the stream's one result. A plain @callback receiving a stream is instead called
    once per chunk, daffi's stream semantics (its result None)."""
    fn._daffid_kind = STREAM
    REGISTRY.register(served_name(fn), fn, STREAM)
    return fn


def local(fn: Callable) -> Callable:
    """Marks a method of a @callback class as local: not served (daffi's @local)."""
    fn.local = True
    return fn


def alias(value: str) -> Callable[[Callable], Callable]:
    """Serves the decorated function under another name (daffi's @alias); put it
    below @callback."""
    check_name(value)

    def dec(fn: Callable) -> Callable:
        fn.alias = value
        return fn

    return dec


def registry_of(callbacks: Union[None, Registry, Dict[str, Callable], Iterable]) -> Registry:
    """The registry a Client serves: the process-wide one (None: a snapshot taken at
    connect), or one built from a Registry, a {name: function} dict, or a list of
    functions (each under its served name, stream handlers as such)."""
    if callbacks is None:
        return REGISTRY.copy()
    if isinstance(callbacks, Registry):
        return callbacks.copy()
    reg = Registry()
    items = callbacks.items() if isinstance(callbacks, dict) else \
        ((None, fn) for fn in callbacks)
    for name, fn in items:
        if name is None:
            if not callable(fn):
                raise InitializationError(f"callbacks: {fn!r} is not callable", code=2)
            name = served_name(fn)
        reg.register(name, fn, getattr(fn, "_daffid_kind", CALL))
    return reg
