"""
daffid.aio - daffi.aio's asyncio interface: ``from daffid.aio import AsyncClient``.
Its calls are coroutines (the nowait styles plain calls); see aio/app.py.
"""

from .app import AsyncClient
from ._connection import AsyncClientConnection

__all__ = ["AsyncClient", "AsyncClientConnection"]
