"""
Streams both ways: Python stream handlers (@stream_callback, sync and async def)
receiving from Python callers and from daffictl through a router, within the
credit window; daffi's per-chunk streams to a plain @callback; failures and aborts.
(Python senders to daffid's C digest handler are in test_calls.py.)
"""

import asyncio
import os
import threading
import time

import pytest

import support
from daffid import (HandlerError, NoCallback, StreamAborted, callback, stream_callback)
from daffid.aio import AsyncClient


@pytest.fixture(scope="module")
def rt():
    with support.running("router", name="rt3", plugins=()) as d:
        yield d


def digest_result(chunks):
    return {"chunks": len(chunks), "bytes": sum(map(len, chunks)),
            "fnv1a64": support.fnv1a64(chunks)}


@stream_callback
def pydigest(chunks):
    """A sync stream handler with echo's digest contract."""
    seen = [bytes(c) for c in chunks]
    return digest_result(seen)


@stream_callback
async def apydigest(chunks, tag):
    seen = []
    async for c in chunks:
        seen.append(bytes(c))
    return dict(digest_result(seen), tag=tag)


@pytest.fixture(params=["sync", "async"])
def digest_member(request, rt, member):
    member(rt.tcp, f"dg-{request.param}", [pydigest, apydigest], kind=request.param,
           workers=2)
    return rt


def test_a_python_stream_handler_gets_every_chunk_in_order(digest_member, caller):
    conn = caller(digest_member.tcp)
    chunks = [os.urandom(100 + i) for i in range(50)]
    assert conn.stream(timeout=5, window=3).pydigest(chunks) == digest_result(chunks)
    assert conn.stream(timeout=5).apydigest(iter(chunks), "t1") == \
        dict(digest_result(chunks), tag="t1")


def test_daffictl_streams_stdin_into_a_python_handler(digest_member):
    data = os.urandom(300000)
    r = support.run([f"{support.BUILD}/daffictl", "-s", digest_member.tcp, "stream",
                     "--window", "2", "--chunk-size", "10000", "pydigest"], stdin=data)
    assert r.returncode == 0, r.stderr
    chunks = [data[i:i + 10000] for i in range(0, len(data), 10000)]
    import json
    assert json.loads(r.stdout) == digest_result(chunks)


def test_the_sender_never_runs_more_than_the_window_ahead(rt, member, caller):
    produced = [0]
    ahead = []

    @stream_callback
    def slow_reader(chunks):
        n = 0
        for _ in chunks:
            n += 1
            ahead.append(produced[0] - n)
            time.sleep(0.005)
        return n
    member(rt.tcp, "slowreader", [slow_reader])

    def produce():
        for i in range(60):
            produced[0] += 1
            yield b"x" * 1000
    assert caller(rt.tcp).stream(timeout=5, window=4).slow_reader(produce()) == 60
    # produced counts the chunk the generator yielded and the sender holds, waiting
    # for credit: at most window chunks are sent and not yet taken by the handler
    assert max(ahead) <= 4 + 1, f"the sender ran {max(ahead)} chunks ahead of window 4"
    assert max(ahead) >= 4, "the window was never filled: the test proves nothing"


def test_a_plain_callback_is_called_once_per_chunk_daffi_style(rt, member, caller):
    got = support.Recorder()

    def receive_chunk(chunk):
        got.add(chunk)
    member(rt.tcp, "perchunk", [receive_chunk])
    conn = caller(rt.tcp)
    assert conn.stream(timeout=5).receive_chunk([b"a", b"b", b"c"]) is None
    assert got.items == [b"a", b"b", b"c"]


def test_a_handlers_failure_is_the_streams_answer_and_credit_still_flows(rt, member,
                                                                          caller):
    @stream_callback
    def picky(chunks):
        for c in chunks:
            if c == b"bad":
                raise ValueError("bad chunk")
        return "ok"
    member(rt.tcp, "picky", [picky])
    conn = caller(rt.tcp)
    with pytest.raises(HandlerError, match="ValueError: bad chunk"):
        conn.stream(timeout=5, window=2).picky([b"a", b"bad"] + [b"z"] * 20)
    assert conn.stream(timeout=5).picky([b"a"]) == "ok"


def test_an_aborted_stream_raises_stream_aborted_in_the_handler(rt, member, caller):
    outcome = support.Recorder()

    @stream_callback
    async def watcher(chunks):
        try:
            async for _ in chunks:
                pass
        except StreamAborted:
            outcome.add("aborted")
            raise
        outcome.add("ended")
    member(rt.tcp, "watcher", [watcher], kind="async")

    def failing():
        yield b"one"
        raise RuntimeError("producer failed")
    with pytest.raises(RuntimeError, match="producer failed"):
        caller(rt.tcp).stream(timeout=5).watcher(failing())
    assert outcome.wait_for(1) == ["aborted"]


def test_a_stream_to_nobody_is_no_callback(rt, caller):
    with pytest.raises(NoCallback):
        caller(rt.tcp).stream(timeout=5).nobody([b"x"])


def test_a_serving_sync_client_sends_streams_too(rt, member, caller):
    member(rt.tcp, "dg-only", [pydigest])

    @callback
    def unrelated():
        return 1
    conn = caller(rt.tcp, app_name="streamer", callbacks=[unrelated])   # member mode
    chunks = [b"%d" % i for i in range(30)]
    assert conn.stream(timeout=5, window=2).pydigest(chunks) == digest_result(chunks)


def test_async_client_streams_an_async_generator(rt, member):
    member(rt.tcp, "dg-a", [pydigest])

    async def main():
        client = AsyncClient(address=rt.tcp, callbacks=[])
        conn = await client.connect()

        async def gen():
            for i in range(20):
                await asyncio.sleep(0.001)
                yield b"c%d" % i
        res = await conn.stream(timeout=5, window=3).pydigest(gen())
        none = await conn.stream_nowait(window=3).pydigest([b"x"])
        await client.stop()
        return res, none
    res, none = asyncio.run(main())
    assert res == digest_result([b"c%d" % i for i in range(20)]) and none is None


def test_concurrent_streams_do_not_mix(rt, member, caller):
    member(rt.tcp, "dg-many", [pydigest], workers=4)
    conn = caller(rt.tcp)
    results = {}

    def one(i):
        chunks = [bytes([i]) * 50] * (10 + i)
        results[i] = conn.stream(timeout=10, window=2).pydigest(chunks) == digest_result(
            chunks)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert results == {i: True for i in range(4)}


def test_a_member_sending_and_receiving_streams_keeps_their_ids_apart(rt, member, caller):
    # The member "both" receives a stream (ids it chooses) and sends one (ids the
    # router chooses) on one connection; daffi.abort names a stream by id alone, so
    # the abort of the one it receives must not end the one it sends.
    gate = threading.Event()

    @stream_callback
    def hold(chunks):
        for _ in chunks:
            gate.wait(5)
        return "held"

    @stream_callback
    def sink(chunks):
        return sum(1 for _ in chunks)
    member(rt.tcp, "sinker", [hold])
    both = member(rt.tcp, "both", [sink])
    sender = both._link.open_stream("hold", [], None, 2, 10, "stream(fn: 'hold')")
    sender.send(b"first")                   # router id 1 on both's connection

    def aborted_source():
        yield b"x"
        raise RuntimeError("give up")
    with pytest.raises(RuntimeError):       # both receives a stream, then its abort
        caller(rt.tcp).stream(timeout=5).sink(aborted_source())
    time.sleep(0.2)
    gate.set()
    sender.send(b"second")
    assert sender.end() == "held"
