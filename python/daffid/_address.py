"""
Where a Client connects: daffi's arguments (host and port, or unix_sock_path),
this package's ``unix_socket=`` and ``address=`` forms, or $DAFFI_ADDRESS, turned
into one Address, and the blocking socket connect both clients start from.

Address strings are the ones daffid and daffictl take (sdk/PROTOCOL.md section 1):
``tcp://HOST:PORT``, ``tcp://[V6ADDR]:PORT``, ``tls://HOST:PORT`` (TCP with TLS,
_tls.py), ``unix:///absolute/path`` and ``unix://relative/path``.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Optional

from .exceptions import InitializationError


@dataclass(frozen=True)
class Address:
    """A TCP (host, port), the same over TLS, or a Unix socket path."""

    kind: str                  # "tcp", "tls" or "unix"
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        if self.kind == "unix":
            return "unix://" + self.path
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.kind}://{host}:{self.port}"

    @property
    def tls(self) -> bool:
        return self.kind == "tls"


def parse_address(text: str) -> Address:
    """Parses an address string; raises InitializationError naming what is wrong."""
    if text.startswith("unix://"):
        path = text[len("unix://"):]
        if not path:
            raise InitializationError(f"address {text!r}: no socket path after unix://",
                                      code=2)
        return Address("unix", path=path)
    kind, sep, rest = text.partition("://")
    if not sep or kind not in ("tcp", "tls"):
        raise InitializationError(
            f"address {text!r}: expected tcp://HOST:PORT, tls://HOST:PORT or unix:///PATH",
            code=2)
    if rest.startswith("["):
        host, sep, port = rest[1:].partition("]:")
    else:
        host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InitializationError(f"address {text!r}: expected {kind}://HOST:PORT with a "
                                  "port from 1 to 65535", code=2)
    return Address(kind, host=host, port=int(port))


def resolve_address(host: Optional[str] = None, port: Optional[int] = None,
                    unix_sock_path: Optional[os.PathLike] = None,
                    unix_socket: Optional[os.PathLike] = None,
                    address: Optional[str] = None) -> Address:
    """The one address the arguments name. Exactly one form may be given; with none,
    $DAFFI_ADDRESS is used (as daffictl does). Raises InitializationError."""
    path = unix_socket if unix_socket is not None else unix_sock_path
    given = [f for f, v in (("host/port", host or port), ("unix socket", path),
                            ("address", address)) if v]
    if len(given) > 1:
        raise InitializationError("give one of host and port, unix_sock_path (unix_socket) "
                                  f"or address, not {' and '.join(given)}", code=2)
    if address:
        return parse_address(str(address))
    if path:
        return Address("unix", path=os.fspath(path))
    if host or port:
        if not host or not port:
            raise InitializationError("host and port go together: "
                                      f"got host={host!r}, port={port!r}", code=2)
        try:
            port = int(port)
        except (TypeError, ValueError):
            raise InitializationError(f"port {port!r} is not a number", code=2) from None
        if not 0 < port < 65536:
            raise InitializationError(f"port {port} is not in 1..65535", code=2)
        return Address("tcp", host=str(host), port=port)
    env = os.environ.get("DAFFI_ADDRESS")
    if env:
        return parse_address(env)
    raise InitializationError("no address: give host and port, unix_sock_path or "
                              "address (or set DAFFI_ADDRESS)", code=2)


def open_socket(addr: Address, timeout: Optional[float]) -> socket.socket:
    """A connected blocking socket (TCP_NODELAY for TCP: every message is a whole
    call, and Nagle would hold the next one back), the plain one under TLS too (the
    caller shakes hands on it, _tls.py). Raises OSError."""
    if addr.kind == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(addr.path)
        except BaseException:
            sock.close()
            raise
    else:
        sock = socket.create_connection((addr.host, addr.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(None)
    return sock
