"""
The pieces without a server: addresses, wire checks, call planning, the registry,
errors from the wire, and the package's version.
"""

import os

import pytest

import support
from daffid import _styles as st
from daffid import _wire as w
from daffid import exceptions as ex
from daffid import registry as reg
from daffid._address import Address, parse_address, resolve_address
from daffid.exceptions import InitializationError, ProtocolError


def test_addresses_parse_as_daffictl_takes_them():
    assert parse_address("tcp://127.0.0.1:6001") == Address("tcp", "127.0.0.1", 6001)
    assert parse_address("tcp://[::1]:7000") == Address("tcp", "::1", 7000)
    assert parse_address("unix:///run/d.sock") == Address("unix", path="/run/d.sock")
    assert parse_address("unix://rel.sock").path == "rel.sock"
    assert str(Address("tcp", "::1", 7)) == "tcp://[::1]:7"
    for bad in ("127.0.0.1:6001", "tcp://host", "tcp://h:0", "tcp://h:99999", "unix://",
                "http://h:1"):
        with pytest.raises(InitializationError, match="address"):
            parse_address(bad)


def test_one_address_form_at_a_time():
    assert resolve_address("h", 1) == Address("tcp", "h", 1)
    assert resolve_address(unix_sock_path="/s") == resolve_address(unix_socket="/s")
    with pytest.raises(InitializationError, match="not host/port and unix socket"):
        resolve_address("h", 1, unix_socket="/s")
    with pytest.raises(InitializationError, match="host and port go together"):
        resolve_address("h")
    os.environ["DAFFI_ADDRESS"] = "tcp://10.0.0.1:5"
    try:
        assert resolve_address() == Address("tcp", "10.0.0.1", 5)
    finally:
        del os.environ["DAFFI_ADDRESS"]
    with pytest.raises(InitializationError, match="no address"):
        resolve_address()


def test_keyword_arguments_are_refused_naming_them():
    assert w.positional("f", (1, 2), {}) == [1, 2]
    with pytest.raises(TypeError, match=r"f\(\): keyword arguments \(a, z\)"):
        w.positional("f", (), {"z": 1, "a": 2})


def test_timeouts_become_whole_milliseconds_never_zero():
    assert (w.to_ms(None), w.to_ms(0), w.to_ms(0.0001), w.to_ms(1.5)) == (0, 0, 1, 1500)
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            w.to_ms(bad)


def test_rpc_plans_a_plain_request_or_daffi_call_with_the_deadline():
    assert st.rpc("add", (1, 2), {}, None, None)[:2] == ("add", [1, 2])
    method, params, timeout, grace, _, receivers = st.rpc("add", (1,), {}, 0.25, "w1")
    assert (method, params) == ("daffi.call", ["add", [1], {"to": "w1", "timeout_ms": 250}])
    assert (timeout, grace, receivers) == (0.25, w.ROUTER_GRACE, ["w1"])
    assert st.rpc_nowait("f", (), {}, "w2") == ("daffi.call", ["f", [], {"to": "w2"}])
    assert st.cast("f", (1,), {}, 2, ["a"])[:2] == \
        ("daffi.cast", ["f", [1], {"to": ["a"], "timeout_ms": 2000}])
    assert st.wait(["a", "b"], 3)[:2] == ("daffi.wait", [["a", "b"], 3000])


def test_cast_targets_accept_daffis_receiver_and_receivers():
    assert w.receivers_list(None, None) is None
    assert w.receivers_list("a", None) == ["a"]
    assert w.receivers_list(None, ("a", "b")) == ["a", "b"]
    with pytest.raises(TypeError, match="not both"):
        w.receivers_list("a", ["b"])


def test_envelopes_are_checked():
    assert w.check_envelope([0, 1, b"m", []]) == w.REQUEST      # bin method: a name
    assert w.check_envelope([1, 2**32 - 1, None, 5]) == w.RESPONSE
    assert w.check_envelope([2, "m", []]) == w.NOTIFY
    for bad, why in (({}, "not an array"), ([0, -1, "m", []], "uint32"),
                     ([0, 2**32, "m", []], "uint32"), ([0, 1, 7, []], "method"),
                     ([0, 1, "m", {}], "params"), ([3, 1, "m", []], "kind"),
                     ([1, 1, "x", None], "error"), ([2, "m"], "notification"),
                     ([0, True, "m", []], "uint32")):
        with pytest.raises(ProtocolError, match=why):
            w.check_envelope(bad)


def test_wire_errors_become_their_classes():
    for code, cls in ((1, ex.NoCallback), (2, ex.BadArgs), (3, ex.CallTimeout),
                      (4, ex.HandlerError), (5, ex.Unavailable), (6, ex.Overloaded),
                      (7, ex.TooLarge), (8, ex.ProtocolError), (9, ex.Denied),
                      (10, ex.ShuttingDown), (99, ex.RemoteCallError)):
        e = ex.from_wire([code, b"text", {"k": 1}], call="f")
        assert type(e) is cls and e.code == code and e.remote
        assert (e.message, e.details) == ("text", {"k": 1})
    assert ex.from_wire([4, None]).message == ""
    assert isinstance(ex.from_wire("nonsense"), ex.ProtocolError)
    assert issubclass(ex.CallTimeout, TimeoutError)
    assert issubclass(ex.Evicted, ex.Disconnected) and issubclass(ex.NoCallback,
                                                                   ex.TransmissionFailure)
    assert str(ex.BadArgs("no")) == "BAD_ARGS (code 2): no"


def test_cast_results_keep_every_member_failures_as_exceptions():
    res = w.cast_result({"a": [None, 1], "b": [[4, "boom"], None], "c": "junk"}, "cast", 1)
    assert res["a"] == 1 and isinstance(res["b"], ex.HandlerError)
    assert isinstance(res["c"], ex.ProtocolError)


def test_callback_names_follow_the_protocol():
    for bad in ("", "daffi.x", "has space", "x" * 256, "tab\there"):
        with pytest.raises(InitializationError):
            reg.check_name(bad)
    assert reg.check_name("a.b-c_d") == "a.b-c_d"


def test_the_registry_refuses_what_cannot_be_a_callback():
    r = reg.Registry()

    def gen():
        yield 1
    with pytest.raises(InitializationError, match="generator"):
        r.register("gen", gen)
    with pytest.raises(InitializationError, match="lambda"):
        reg.registry_of([lambda: 1])
    assert reg.registry_of({"named": lambda: 1}).names() == ["named"]


def test_a_callback_class_serves_its_public_methods_but_local_ones():
    before = set(reg.REGISTRY.names())

    @reg.callback
    class Ops:
        def double(self, x):
            return 2 * x

        @reg.local
        def helper(self):
            return None

        def _private(self):
            return None

        @reg.alias("triple_it")
        def triple(self, x):
            return 3 * x
    added = set(reg.REGISTRY.names()) - before
    assert added >= {"double", "triple_it"} and not added & {"helper", "_private", "triple"}
    assert reg.REGISTRY.get("double").fn(4) == 8


def test_arity_is_judged_only_on_a_type_error():
    e = reg.Executor("two", lambda a, b: None)
    assert e.arguments_fit([1, 2]) is None
    assert "missing a required argument" in e.arguments_fit([1])


def test_the_version_is_the_repositorys():
    import daffid
    with open(os.path.join(support.ROOT, "VERSION")) as f:
        version = f.read().strip()
    assert daffid.__version__ == version
    with open(os.path.join(support.PYTHON_DIR, "pyproject.toml")) as f:
        assert f'version = "{version}"' in f.read()
