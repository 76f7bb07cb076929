"""
TLS and the token of a Client, as libdaffi has them (sdk/src/client_tls.c):

- ``security(...)`` reads the options, or the environment a C client reads
  (DAFFI_TLS_CA, DAFFI_TLS_CERT, DAFFI_TLS_KEY, DAFFI_TLS_INSECURE=1, DAFFI_TOKEN;
  an option that is set wins), once, when the Client is made: an ssl.SSLContext for
  a tls:// address (TLS 1.2+, the server's certificate verified against the CA file
  or the system's store and naming the host dialled, DNS name or IP address) and
  the token to present with ``daffi.auth`` first on every connection.
- ``TLSSocket``: the sync caller's connection under TLS. An ssl.SSLObject on memory
  BIOs over the plain blocking socket, so the link keeps its own poll() and recv()
  (a read may carry only TLS records, a session ticket: recv() then returns None)
  and a thread may send while another reads.
- ``describe``: why a connect or a handshake failed, in the words of the C client's
  errors ("TLS handshake failed: certificate verify failed: ...").
- ``authenticate``: the sync caller's ``daffi.auth`` on a fresh connection.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import threading
import time
from typing import Any, Optional, Tuple

import msgpack

from ._address import Address
from .exceptions import Denied, InitializationError, from_wire

RECV_SIZE = 256 * 1024


def _opt_or_env(value: Optional[str], env: str) -> Optional[str]:
    """value, or the environment variable env when value is None or empty."""
    v = os.fspath(value) if value else os.environ.get(env)
    return v if v else None


def security(addr: Address, ca_file: Any, cert_file: Any, key_file: Any,
             insecure: bool, token: Optional[str]) -> Tuple[Optional[ssl.SSLContext],
                                                            Optional[str]]:
    """(the SSLContext for addr, or None when it is no tls:// address; the token or
    None). Raises InitializationError naming the option (or variable) and file that
    do not load."""
    token = _opt_or_env(token, "DAFFI_TOKEN")
    if (ca_file or cert_file or key_file or insecure) and not addr.tls:
        raise InitializationError(f"{addr}: ca_file, cert_file, key_file and tls_insecure "
                                  "are for a tls:// address (or tls=True)", code=2)
    if not addr.tls:
        return None, token
    ca = _opt_or_env(ca_file, "DAFFI_TLS_CA")
    cert = _opt_or_env(cert_file, "DAFFI_TLS_CERT")
    key = _opt_or_env(key_file, "DAFFI_TLS_KEY")
    insecure = bool(insecure) or os.environ.get("DAFFI_TLS_INSECURE") == "1"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:                       # for tests only: no verification at all
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    what = "ca_file ($DAFFI_TLS_CA)"
    try:
        if ca is not None:
            ctx.load_verify_locations(cafile=ca)
        else:
            what = "the system's CA store"
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if (cert is None) != (key is None):
            raise InitializationError(
                f"{addr}: " + ("key_file ($DAFFI_TLS_KEY): cert_file needs it" if cert else
                               "cert_file ($DAFFI_TLS_CERT): key_file needs it"), code=2)
        if cert is not None:
            what = f"cert_file {cert} / key_file {key}"
            ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        path = f" {ca}" if ca is not None and what.startswith("ca_file") else ""
        raise InitializationError(f"{addr}: {what}{path}: {_reason(e)}", code=2) from None
    return ctx, token


#: what an alert from the server means for this client
_HINTS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the server requires a client certificate: "
                                         "cert_file and key_file",
    "TLSV1_ALERT_UNKNOWN_CA": "the server does not trust the client certificate",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the server refused the client certificate",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the client certificate has expired",
}


def _reason(e: BaseException) -> str:
    reason = getattr(e, "reason", None)
    if isinstance(e, ssl.SSLError) and reason:
        hint = _HINTS.get(reason)
        text = str(reason).replace("_", " ").lower()
        return f"{text} ({hint})" if hint else text
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


def tls_reason(e: BaseException) -> str:
    """Why an established TLS connection ended: "TLS: <reason>" (an alert from the
    server, say), or the socket error."""
    if isinstance(e, ssl.SSLError):
        return f"TLS: {_reason(e)}"
    return describe(e)


def describe(e: BaseException) -> str:
    """Why a connection failed: a handshake's reason as the C client words it, or the
    socket error."""
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"TLS handshake failed: certificate verify failed: {e.verify_message}"
    if isinstance(e, ssl.SSLError):
        why = _reason(e)
        reason = getattr(e, "reason", None)
        if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
            why += " (the peer does not speak TLS: is it a tls:// port?)"
        elif reason in ("UNEXPECTED_EOF_WHILE_READING", "EOF") or \
                isinstance(e, ssl.SSLEOFError):
            why = "the peer closed the connection (is it a tls:// port?)"
        return f"TLS handshake failed: {why}"
    if isinstance(e, (TimeoutError, socket.timeout)) and not str(e).strip():
        return "connect timed out"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


class HandshakeError(OSError):
    """A TLS handshake that failed or did not finish in time; str() says why."""

    def __str__(self) -> str:
        return self.args[0] if self.args else "TLS handshake failed"


class TLSSocket:
    """See the module's documentation: what SyncLink uses of a socket (sendall, recv,
    fileno, shutdown, close), plus ``recv_nowait`` for its idle check. It owns sock."""

    def __init__(self, sock: socket.socket, ctx: ssl.SSLContext, host: str,
                 timeout: Optional[float]):
        """Shakes hands within timeout seconds on the connected blocking sock; raises
        HandshakeError saying why, sock closed."""
        self.sock = sock
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._lock = threading.Lock()   # the SSLObject: a reader and a writer share it
        self._obj = ctx.wrap_bio(self._in, self._out, server_hostname=host)
        try:
            self._handshake(timeout)
        except HandshakeError:
            sock.close()
            raise
        except (OSError, ssl.SSLError) as e:
            sock.close()
            why = describe(e)
            raise HandshakeError(why if why.startswith("TLS") else
                                 f"TLS handshake failed: {why}") from None
        except BaseException:
            sock.close()
            raise

    def _handshake(self, timeout: Optional[float]) -> None:
        end = None if timeout is None else time.monotonic() + timeout
        poll = select.poll()
        poll.register(self.sock, select.POLLIN)
        while True:
            try:
                self._obj.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
            left = None if end is None else end - time.monotonic()
            if left is not None and (left <= 0 or not poll.poll(int(left * 1000) + 1)):
                raise HandshakeError("TLS handshake timed out")
            data = self.sock.recv(RECV_SIZE)
            if not data:
                raise ssl.SSLEOFError(ssl.SSL_ERROR_EOF, "EOF")
            self._in.write(data)

    def _flush(self) -> None:
        data = self._out.read()
        if data:
            self.sock.sendall(data)

    def fileno(self) -> int:
        return self.sock.fileno()

    def sendall(self, data: bytes) -> None:
        """Encrypts and sends data whole (the caller holds the link's write lock, so
        the records leave in the order they were made). Raises OSError."""
        view = memoryview(data)
        with self._lock:
            while view:         # a memory BIO takes everything: this loops once
                view = view[self._obj.write(view):]
            out = self._out.read()
        self.sock.sendall(out)

    def _decrypt(self, data: bytes) -> Optional[bytes]:
        """The plaintext data carried (b"" when the peer closed, None when it carried
        only TLS records). Raises ssl.SSLError."""
        if not data:
            return b""
        with self._lock:
            self._in.write(data)
            parts = []
            try:
                while True:
                    parts.append(self._obj.read(RECV_SIZE))
                    if not parts[-1]:
                        return b""
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:     # close_notify
                return b"".join(parts) or b""
        return b"".join(parts) or None

    def recv(self, n: int) -> Optional[bytes]:
        """One blocking recv() of the socket, decrypted; see _decrypt."""
        try:
            return self._decrypt(self.sock.recv(n))
        except ssl.SSLError as e:
            raise ConnectionError(tls_reason(e)) from None

    def recv_nowait(self) -> Optional[bytes]:
        """The same, not waiting: None when nothing is there."""
        try:
            return self._decrypt(self.sock.recv(RECV_SIZE, socket.MSG_DONTWAIT))
        except BlockingIOError:
            return None
        except ssl.SSLError as e:
            raise ConnectionError(tls_reason(e)) from None

    def shutdown(self, how: int) -> None:
        self.sock.shutdown(how)

    def close(self) -> None:
        self.sock.close()


def connect_sync(addr: Address, ctx: Optional[ssl.SSLContext], token: Optional[str],
                 timeout: float, opener) -> Any:
    """A connected socket (a TLSSocket under TLS) on which the token, if any, was
    accepted: opener(addr, timeout) is _address.open_socket. Raises OSError (a
    handshake failure: HandshakeError) or Denied (the token refused)."""
    end = time.monotonic() + timeout
    sock = opener(addr, timeout)
    if ctx is not None:
        sock = TLSSocket(sock, ctx, addr.host, max(end - time.monotonic(), 0.001))
    if token is not None:
        try:
            authenticate(sock, token, max(end - time.monotonic(), 0.001), addr)
        except BaseException:
            sock.close()
            raise
    return sock


def authenticate(sock: Any, token: str, timeout: float, addr: Address) -> None:
    """daffi.auth [token] on a fresh connection, waiting for its answer (the server
    sends nothing else first). Raises Denied naming the server's reason, or OSError."""
    sock.sendall(msgpack.packb([0, 0, "daffi.auth", [token]]))
    unp = msgpack.Unpacker(raw=False, strict_map_key=False)
    end = time.monotonic() + timeout
    poll = select.poll()
    poll.register(sock, select.POLLIN)
    while True:
        for msg in unp:
            if isinstance(msg, list) and len(msg) == 4 and msg[0] == 1 and msg[1] == 0:
                if msg[2] is None:
                    return
                e = from_wire(msg[2], call="daffi.auth")
                raise Denied(f"{addr}: authentication refused (daffi.auth): {e.message}",
                             code=e.code, details=e.details, remote=True)
        left = end - time.monotonic()
        if left <= 0 or not poll.poll(int(left * 1000) + 1):
            raise TimeoutError(f"no answer to daffi.auth within {timeout:.3g} s")
        data = sock.recv(RECV_SIZE)
        if data is None:
            continue
        if not data:
            raise ConnectionError("the server closed the connection before answering "
                                  "daffi.auth")
        unp.feed(data)
