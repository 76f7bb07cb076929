"""
A peer that is not daffid, or misbehaves: a hand-written server on 127.0.0.1 sends
what daffid never would. The client ends only that connection, with an error that
says what was wrong, and answers what a member must (daffi.ping) or must refuse.
"""

import asyncio
import socket
import threading

import msgpack
import pytest

from daffid import Client, Disconnected, InitializationError
from daffid.aio import AsyncClient


class FakePeer:
    """Accepts one connection; replies to each request with reply(msg) -> bytes."""

    def __init__(self, reply):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.reply = reply
        self.received = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.sock.accept()
        unp = msgpack.Unpacker(raw=False)
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                unp.feed(data)
                for msg in unp:
                    self.received.append(msg)
                    out = self.reply(msg)
                    if out:
                        conn.sendall(out)

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("garbage, why", [
    (b"\xc1", "invalid message"),                                    # reserved byte
    (msgpack.packb({"not": "an array"}), "invalid message"),
    (msgpack.packb([1, 1, "not an error", None]), "invalid message"),
    (msgpack.packb([1, 1, None, b"x" * 5000]), "over max_message"),
])
def test_a_malformed_answer_ends_the_connection_with_its_reason(garbage, why):
    peer = FakePeer(lambda msg: garbage)
    try:
        conn = Client(address=f"tcp://127.0.0.1:{peer.port}", callbacks=[],
                      max_message=4096).connect()
        with pytest.raises(Disconnected, match=why):
            conn.rpc(timeout=5).anything()
        conn.client.stop()
    finally:
        peer.close()


def test_a_pure_caller_answers_ping_and_refuses_other_requests():
    answers = []

    def reply(msg):
        if msg[0] == 0 and msg[2] == "go":       # the client's call: ask it things first
            return (msgpack.packb([0, 7, "daffi.ping", []]) +
                    msgpack.packb([0, 8, "some_callback", [1]]) +
                    msgpack.packb([1, msg[1], None, "done"]))
        if msg[0] == 1:
            answers.append(msg)
        return None
    peer = FakePeer(reply)
    try:
        conn = Client(address=f"tcp://127.0.0.1:{peer.port}", callbacks=[]).connect()
        assert conn.rpc().go() == "done"      # a plain request: the peer knows "go"
        assert conn.rpc().go() == "done"      # the answers were written meanwhile
        assert answers[0] == [1, 7, None, "pong"]
        assert answers[1][1] == 8 and answers[1][2][0] == 1      # NO_CALLBACK
        conn.client.stop()
    finally:
        peer.close()


def test_an_async_client_survives_nothing_but_says_why():
    peer = FakePeer(lambda msg: b"\xc1")

    async def main():
        client = AsyncClient(address=f"tcp://127.0.0.1:{peer.port}", callbacks=[])
        conn = await client.connect()
        with pytest.raises(Disconnected, match="lost"):
            await conn.rpc(timeout=5).anything()
        await client.stop()
    try:
        asyncio.run(main())
    finally:
        peer.close()


def test_a_member_refused_by_a_peer_that_is_no_router_says_so():
    peer = FakePeer(lambda msg: msgpack.packb([1, msg[1], [1, "no callback 'daffi.hello'"],
                                               None]))
    try:
        with pytest.raises(InitializationError, match="daffi.hello") as e:
            Client(app_name="m", address=f"tcp://127.0.0.1:{peer.port}",
                   callbacks={"f": print}).connect()
        assert e.value.code == 1
    finally:
        peer.close()
