"""
Every call style of the sync and async clients against daffid's example plugins,
through a service (TCP and Unix socket) and through a router to the C worker cw1
(the `target` fixture): C callees serving Python callers.
"""

import asyncio

import pytest

import support
from daffid import BadArgs, HandlerError, NoCallback
from daffid.aio import AsyncClient


def test_rpc_returns_the_callbacks_result(target, caller):
    conn = caller(target)
    assert conn.rpc(timeout=5).multiply(6, 7) == 42
    assert conn.rpc().add(1, 2) == 3
    assert conn.rpc(timeout=5).divide(1, 4) == 0.25


def test_values_travel_unchanged(target, caller):
    conn = caller(target)
    value = {"list": [1, 2.5, None, True], "bin": b"\x00\xff", "text": "h\u00e9", "neg": -7}
    assert conn.rpc(timeout=5).echo(value) == value
    assert conn.rpc(timeout=5).echo(1, "two", [3]) == [1, "two", [3]]


def test_handler_error_and_bad_args_are_raised_with_their_codes(target, caller):
    conn = caller(target)
    with pytest.raises(HandlerError) as e:
        conn.rpc(timeout=5).divide(1, 0)
    assert (e.value.code, e.value.name, e.value.remote) == (4, "HANDLER_ERROR", True)
    assert "division by zero" in e.value.message
    with pytest.raises(BadArgs) as e:
        conn.rpc(timeout=5).add("one", 2)
    assert e.value.code == 2


def test_unknown_callback_is_no_callback_with_the_members_in_details(target, caller):
    conn = caller(target)
    with pytest.raises(NoCallback) as e:
        conn.rpc(timeout=5).no_such_callback(1)
    members = e.value.details.get("members")
    assert members and any("multiply" in m["callbacks"] for m in members), e.value.details


def test_rpc_nowait_runs_the_call_and_returns_none_at_once(target, caller):
    conn = caller(target)
    assert conn.rpc_nowait().echo_after(10, "x") is None
    assert conn.rpc(timeout=5).add(2, 2) == 4      # the connection still works


def test_item_access_reaches_any_callback_name(target, caller):
    conn = caller(target)
    assert conn.rpc(timeout=5)["multiply"](3, 3) == 9


def test_keyword_arguments_are_refused_before_sending(target, caller):
    conn = caller(target)
    with pytest.raises(TypeError, match="keyword arguments .*a, b.* positional"):
        conn.rpc(timeout=5).add(a=1, b=2)
    assert conn.rpc(timeout=5).add(1, 2) == 3


def test_stream_of_chunks_reaches_a_c_stream_handler_in_order(target, caller):
    conn = caller(target)
    chunks = [bytes([i]) * (1000 + i) for i in range(40)]
    res = conn.stream(timeout=5, window=4).digest(iter(chunks))
    assert res == {"chunks": 40, "bytes": sum(map(len, chunks)),
                   "fnv1a64": support.fnv1a64(chunks)}


def test_stream_nowait_returns_none_and_leaves_the_connection_usable(target, caller):
    conn = caller(target)
    assert conn.stream_nowait(window=2).digest([b"a", b"b", b"c"]) is None
    assert conn.rpc(timeout=5).add(1, 1) == 2


def test_stream_to_a_plain_callback_is_bad_args(target, caller):
    conn = caller(target)
    with pytest.raises(BadArgs, match="not a stream handler"):
        conn.stream(timeout=5).add([b"x"])


def test_members_lists_who_serves_what(target, caller):
    conn = caller(target)
    names = {m["name"]: m["callbacks"] for m in conn.members()}
    assert "multiply" in names["cw1" if "svc" not in names else "svc"]


def test_cast_on_a_service_has_one_entry_the_service_itself(service, caller):
    conn = caller(service.tcp)
    assert conn.cast(timeout=5).multiply(2, 3) == {"svc": 6}
    res = conn.cast(timeout=5).divide(1, 0)
    assert list(res) == ["svc"] and isinstance(res["svc"], HandlerError)


def test_wait_for_members_on_a_service_knows_only_itself(service, caller):
    conn = caller(service.tcp)
    conn.wait_for_members("svc", timeout=2)
    with pytest.raises(TimeoutError, match="absent"):
        conn.wait_for_members("svc", "absent", timeout=0.2)


def test_ping_measures_a_round_trip(target, caller):
    assert 0 < caller(target).ping() < 5


def test_async_client_every_style(target):
    async def main():
        client = AsyncClient(app_name="pytest-async", address=target, callbacks=[])
        conn = await client.connect()
        assert await conn.rpc(timeout=5).multiply(6, 7) == 42
        assert await conn.rpc().add(1, 2) == 3
        with pytest.raises(HandlerError):
            await conn.rpc(timeout=5).divide(1, 0)
        assert conn.rpc_nowait().echo("x") is None
        got = await asyncio.gather(*(conn.rpc(timeout=5).add(i, i) for i in range(200)))
        assert got == [2 * i for i in range(200)]

        async def chunks():
            for i in range(10):
                await asyncio.sleep(0)
                yield b"%d" % i
        res = await conn.stream(timeout=5, window=2).digest(chunks())
        assert res["chunks"] == 10 and res["fnv1a64"] == support.fnv1a64(
            [b"%d" % i for i in range(10)])
        assert await conn.stream(timeout=5).digest([b"ab", b"c"]) == {
            "chunks": 2, "bytes": 3, "fnv1a64": support.fnv1a64([b"abc"])}
        assert "multiply" in (await conn.members())[0]["callbacks"]
        await client.stop()
    asyncio.run(main())


def test_many_threads_share_one_sync_connection(target, caller):
    import concurrent.futures
    conn = caller(target)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda i: conn.rpc(timeout=10).add(i, 1), range(400)))
    assert got == [i + 1 for i in range(400)]
