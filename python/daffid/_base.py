"""
What Client and AsyncClient share: daffi's constructor arguments checked once,
the member name, and the choice of what to serve.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from typing import Any, Optional

from . import _wire as w
from ._address import Address, resolve_address
from ._tls import security
from ._events import EventsMixin
from .exceptions import InitializationError
from .registry import Registry, registry_of

_NAME_OK = re.compile(r"[A-Za-z0-9_.-]{1,255}\Z")


def default_name() -> str:
    """daffi's default app_name, host name and a random suffix, in the characters a
    member name may use."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()) or "host"
    return f"{host[:200]}-{uuid.uuid4().hex[:12]}"


class ClientBase(EventsMixin):
    """daffi's Client arguments, plus: ``unix_socket=`` (daffi's unix_sock_path) or
    ``address="tcp://h:p" | "tls://h:p" | "unix:///path"``; TLS (``tls=True`` with
    host and port, or a tls:// address): ``ca_file`` (what the server's certificate
    must verify against; default $DAFFI_TLS_CA, else the system's store),
    ``cert_file`` and ``key_file`` (a client certificate, $DAFFI_TLS_CERT and
    $DAFFI_TLS_KEY), ``tls_insecure`` (no verification, for tests; or
    DAFFI_TLS_INSECURE=1); ``token`` (presented with daffi.auth first on every
    connection; default $DAFFI_TOKEN); ``callbacks=`` (a list or dict of
    functions to serve instead of every @callback of the process; [] serves none);
    ``connect_timeout`` (seconds a connect, and a call waiting for one, may take);
    ``heartbeat`` (seconds between a member's checks of its router);
    ``max_message`` (bytes, the server's [limits] max_message)."""

    def __init__(self, app_name: Optional[str] = None, host: Optional[str] = None,
                 port: Optional[int] = None, unix_sock_path: Optional[os.PathLike] = None,
                 workers: int = 1, tls: bool = False, cert_file: str = "", key_file: str = "",
                 ca_file: str = "", *, unix_socket: Optional[os.PathLike] = None,
                 address: Optional[str] = None, callbacks: Any = None,
                 connect_timeout: float = 5.0, heartbeat: float = 1.0,
                 max_message: int = w.MAX_MESSAGE, tls_insecure: bool = False,
                 token: Optional[str] = None):
        if not isinstance(workers, int) or workers < 1:
            raise InitializationError(f"workers={workers!r}: must be an integer >= 1", code=2)
        if not connect_timeout > 0 or not heartbeat > 0 or not max_message > 0:
            raise InitializationError("connect_timeout, heartbeat and max_message must be "
                                      "positive", code=2)
        self.address = resolve_address(host, port, unix_sock_path, unix_socket, address)
        if tls and not self.address.tls:
            if self.address.kind != "tcp":
                raise InitializationError(f"tls=True: {self.address} is not a TCP address",
                                          code=2)
            self.address = Address("tls", host=self.address.host, port=self.address.port)
        if token is not None and not isinstance(token, str):
            raise InitializationError(f"token: a str, not {type(token).__name__}", code=2)
        #: the ssl.SSLContext of a tls:// address (None: plain), and the token
        self._tls, self._token = security(self.address, ca_file, cert_file, key_file,
                                          tls_insecure, token)
        self.app_name = str(app_name) if app_name is not None else default_name()
        self.host, self.port = host, port
        self.unix_sock_path = str(unix_socket or unix_sock_path or "")
        self.workers = workers
        self.connect_timeout = float(connect_timeout)
        self.heartbeat = float(heartbeat)
        self.max_message = int(max_message)
        self._callbacks = callbacks
        self._init_events()

    @property
    def info(self) -> str:
        """The address, as daffi's log lines show it."""
        return str(self.address)

    def _serving(self) -> Registry:
        """The callbacks to announce, checked: a member needs a valid name."""
        reg = registry_of(self._callbacks)
        if len(reg) and not _NAME_OK.match(self.app_name):
            raise InitializationError(
                f"app_name {self.app_name!r}: a member's name is 1-255 characters from "
                "A-Z a-z 0-9 _ . - (it serves callbacks, so it joins the router by name)",
                code=2)
        return reg

    def __repr__(self) -> str:
        return f"{type(self).__name__}(app_name={self.app_name!r}, address={self.info!r})"
