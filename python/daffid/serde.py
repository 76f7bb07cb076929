"""
daffi's SerdeFormat, accepted so that daffi programs import and pass it unchanged.

daffid always encodes MessagePack: its callers and callees may be C plugins, C
clients or other languages, which cannot read pickle. Every ``serde=`` argument is
accepted and the value sent as MessagePack whatever it names (OPAQUE bytes travel
as bin, which is what OPAQUE means in daffi). Values MessagePack cannot encode
(arbitrary objects) raise TypeError instead of being pickled: see DAFFI.md.
"""

import enum


class SerdeFormat(enum.IntEnum):
    OPAQUE = 0
    JSON = 1
    PICKLE = 2
    MSGPACK = 3
