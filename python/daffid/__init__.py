"""
daffid - daffi's Python API on daffid, the native daffi server.

    from daffid import Client, callback          # instead of: from daffi import ...
    from daffid.aio import AsyncClient           # instead of: from daffi.aio import ...

Client / AsyncClient call and serve through a daffid router or service with
daffi's call styles (rpc, rpc_nowait, cast, cast_nowait, stream, stream_nowait,
wait_for_members) and membership events; @callback functions (sync or async def)
serve calls from C and Python callers alike. The wire protocol is daffid's
MessagePack-RPC (sdk/PROTOCOL.md); DAFFI.md maps each daffi API to this one.
"""

from .__about__ import __version__
from .app import Client
from .exceptions import (BadArgs, CallTimeout, DaffidError, Denied, Disconnected, ErrorCode,
                         Evicted, HandlerError, InitializationError, NoCallback, Overloaded,
                         ProtocolError, RemoteCallError, ShuttingDown, TooLarge,
                         TransmissionFailure, Unavailable)
from .registry import alias, callback, local, stream_callback
from .serde import SerdeFormat
from ._serve import StreamAborted

__all__ = [
    "Client", "callback", "stream_callback", "local", "alias", "SerdeFormat", "__version__",
    "DaffidError", "ErrorCode", "InitializationError", "TransmissionFailure", "NoCallback",
    "Unavailable", "Disconnected", "Evicted", "Overloaded", "ShuttingDown", "RemoteCallError",
    "BadArgs", "HandlerError", "TooLarge", "ProtocolError", "Denied", "CallTimeout",
    "StreamAborted",
]
