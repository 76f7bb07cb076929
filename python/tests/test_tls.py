"""
TLS and tokens: the package's tls:// addresses (ca_file, cert_file, key_file,
tls_insecure, or DAFFI_TLS_*), its token (daffi.auth first, or DAFFI_TOKEN), for
callers (sync and async) and members, against real daffid processes with TLS
listeners and a tokens file; and each failure as an exception naming its reason:
an untrusted server, a certificate that does not name the host, a plaintext port,
a handshake that never finishes, a refused token, a call before authenticating.
"""

import asyncio
import socket
import tempfile
import threading
import time

import pytest

import support
import tlscerts
from daffid import Client, Denied, Disconnected, InitializationError
from daffid.aio import AsyncClient

BOB = "bobs-token-0123456789abcdef"
W1 = "worker-one-token-0123456789"


@pytest.fixture(scope="module")
def certs():
    with tempfile.TemporaryDirectory(prefix="daffid-pytest-certs.") as d:
        yield tlscerts.make(d)


def tls_extra(certs, cert="server", verify="optional", require="tls", rules=""):
    return (f"\n[tls]\ncert = {certs}/{cert}.pem\nkey = {certs}/{cert}.key\n"
            f"ca = {certs}/ca.pem\nverify_clients = {verify}\n"
            f"[auth]\ntokens = tokens\nrequire = {require}\ntimeout = 5s\n" + rules)


def secured(role, name, certs, **kw):
    """A daffid with a TLS listener that requires authentication (its TCP and Unix
    listeners do not: the harness pings there), tokens bob and worker1."""
    d = support.Daemon(role, name=name, tls=True, extra=tls_extra(certs, **kw),
                       plugins=("calc", "echo") if role == "service" else ())
    d.write("tokens", f"bob {BOB}\nworker1 {W1}\n")
    return d


@pytest.fixture(scope="module")
def svc(certs):
    d = secured("service", "tls-svc", certs)
    try:
        yield d.start()
        assert d.stop() == 0, d.read_log()
    finally:
        d.cleanup()


@pytest.fixture
def clients():
    made = []

    def make(**kw):
        c = Client(app_name=kw.pop("app_name", "tls-caller"),
                   callbacks=kw.pop("callbacks", []), **kw)
        made.append(c)
        return c
    yield make
    for c in made:
        c.stop()


def connect_error(**kw) -> InitializationError:
    """What Client(**kw).connect() raises, and AsyncClient's the same."""
    with pytest.raises(InitializationError) as sync_e:
        Client(callbacks=[], **kw).connect()

    async def go():
        c = AsyncClient(callbacks=[], **kw)
        try:
            await c.connect()
        finally:
            await c.stop()
    with pytest.raises(InitializationError) as async_e:
        asyncio.run(go())
    assert sync_e.value.code == async_e.value.code
    return sync_e.value, async_e.value


def test_a_caller_calls_over_tls_with_its_token(svc, certs, clients):
    conn = clients(address=svc.tls, ca_file=f"{certs}/ca.pem", token=BOB).connect()
    for i in range(3):          # one connection: the session tickets are read on the way
        assert conn.rpc(timeout=5).add(i, 2) == i + 2
    assert conn.rpc(timeout=5).echo(b"x" * 300_000) == b"x" * 300_000
    assert support.wait_until(lambda: "identity=bob by=token" in svc.read_log(), 5,
                              "auth.ok in the log")


def test_threads_share_a_tls_connection(svc, certs, clients):
    conn = clients(address=svc.tls, ca_file=f"{certs}/ca.pem", token=BOB).connect()
    errors, results = [], []

    def work(k):
        try:
            for i in range(100):
                results.append(conn.rpc(timeout=10).add(k, i) == k + i)
        except Exception as e:      # noqa: B902 - reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(results) == 800 and all(results)
    assert conn.client._link.connects == 1      # one connection all along


def test_daffis_tls_arguments_and_the_host_name(svc, certs, clients):
    port = int(svc.tls.rsplit(":", 1)[1])
    conn = clients(host="localhost", port=port, tls=True, ca_file=f"{certs}/ca.pem",
                   token=BOB).connect()
    assert conn.rpc(timeout=5).multiply(6, 7) == 42


def test_the_async_client_over_tls(svc, certs):
    async def go():
        c = AsyncClient(address=svc.tls, ca_file=f"{certs}/ca.pem", token=BOB, callbacks=[])
        conn = await c.connect()
        got = await asyncio.gather(*(conn.rpc(timeout=5).add(i, 1) for i in range(50)))
        await c.stop()
        return got
    assert asyncio.run(go()) == [i + 1 for i in range(50)]


def test_the_environment_variables_the_c_client_reads(svc, certs, clients, monkeypatch):
    monkeypatch.setenv("DAFFI_TLS_CA", f"{certs}/ca.pem")
    monkeypatch.setenv("DAFFI_TOKEN", BOB)
    assert clients(address=svc.tls).connect().rpc(timeout=5).add(2, 2) == 4
    monkeypatch.setenv("DAFFI_ADDRESS", svc.tls)
    assert clients().connect().rpc(timeout=5).add(3, 3) == 6
    # an option that is set wins over its variable
    monkeypatch.setenv("DAFFI_TLS_CA", f"{certs}/ca2.pem")
    assert clients(ca_file=f"{certs}/ca.pem").connect().rpc(timeout=5).add(1, 1) == 2


def test_a_client_certificate_is_the_identity(svc, certs, clients):
    conn = clients(address=svc.tls, ca_file=f"{certs}/ca.pem", cert_file=f"{certs}/alice.pem",
                   key_file=f"{certs}/alice.key").connect()     # no token
    assert conn.rpc(timeout=5).add(1, 2) == 3
    assert support.wait_until(lambda: "identity=alice by=certificate" in svc.read_log(), 5,
                              "alice's auth.ok in the log")


def test_an_untrusted_server_is_refused(svc, certs):
    for e in connect_error(address=svc.tls, ca_file=f"{certs}/ca2.pem", token=BOB):
        # daffid sends its chain up to the CA, which ca2 does not have
        assert "TLS handshake failed: certificate verify failed: self-signed certificate " \
            "in certificate chain" in e.message, e.message
        assert svc.tls in e.message


def test_a_certificate_that_does_not_name_the_host_is_refused(certs):
    d = secured("service", "tls-other", certs, cert="other")
    try:
        d.start()
        for e in connect_error(address=d.tls, ca_file=f"{certs}/ca.pem", token=BOB):
            assert "certificate verify failed: IP address mismatch" in e.message, e.message
        # tls_insecure (or DAFFI_TLS_INSECURE=1) checks nothing: for tests only
        c = Client(address=d.tls, tls_insecure=True, token=BOB, callbacks=[])
        assert c.connect().rpc(timeout=5).add(1, 1) == 2
        c.stop()
        assert d.stop() == 0
    finally:
        d.cleanup()


def test_a_server_that_requires_a_client_certificate(certs, clients, monkeypatch):
    d = secured("service", "tls-mtls", certs, verify="require")
    try:
        d.start()
        # TLS 1.3: the server's refusal comes after the client's handshake, with the
        # first answer (daffi.auth's here)
        for e in connect_error(address=d.tls, ca_file=f"{certs}/ca.pem", token=BOB):
            assert "tlsv13 alert certificate required (the server requires a client " \
                "certificate: cert_file and key_file)" in e.message, e.message
        monkeypatch.setenv("DAFFI_TLS_CERT", f"{certs}/alice.pem")
        monkeypatch.setenv("DAFFI_TLS_KEY", f"{certs}/alice.key")
        monkeypatch.setenv("DAFFI_TLS_INSECURE", "1")     # and no CA at all
        assert clients(address=d.tls).connect().rpc(timeout=5).add(2, 3) == 5
        assert d.stop() == 0
    finally:
        d.cleanup()


def test_a_plaintext_port_fails_the_handshake(svc, certs):
    plain = "tls://" + svc.tcp[len("tcp://"):]
    for e in connect_error(address=plain, ca_file=f"{certs}/ca.pem"):
        assert "TLS handshake failed" in e.message, e.message


def test_a_handshake_that_never_finishes_fails_at_the_connect_timeout(certs):
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)           # accepts (the kernel does) and never answers
    try:
        addr = f"tls://127.0.0.1:{lsock.getsockname()[1]}"
        t0 = time.monotonic()
        errors = connect_error(address=addr, ca_file=f"{certs}/ca.pem", connect_timeout=0.5)
        assert time.monotonic() - t0 < 5
        for e in errors:
            assert "timed out" in e.message, e.message
    finally:
        lsock.close()


def test_a_bad_token_is_refused_at_connect(svc, certs):
    for e in connect_error(address=svc.tls, ca_file=f"{certs}/ca.pem",
                           token="not-a-token-of-anyone-here"):
        assert e.code == 9
        assert "authentication refused (daffi.auth): unknown token" in e.message, e.message
    # over plain TCP too: a token is presented wherever it is given
    for e in connect_error(address=svc.tcp, token="not-a-token-of-anyone-here"):
        assert "authentication refused (daffi.auth): unknown token" in e.message


def test_no_token_where_it_is_required_is_denied(svc, certs, clients):
    conn = clients(address=svc.tls, ca_file=f"{certs}/ca.pem").connect()
    with pytest.raises(Denied) as e:
        conn.rpc(timeout=5).add(1, 2)
    assert "daffi.auth [token] first" in e.value.message


def test_bad_tls_options_are_initialization_errors(svc, certs):
    with pytest.raises(InitializationError) as e:
        Client(address=svc.tls, cert_file=f"{certs}/alice.pem")
    assert "key_file" in e.value.message and "cert_file needs it" in e.value.message
    with pytest.raises(InitializationError) as e:
        Client(address=svc.tls, ca_file=f"{certs}/no-such.pem")
    assert "ca_file" in e.value.message and "no-such.pem" in e.value.message
    with pytest.raises(InitializationError) as e:
        Client(address=svc.tcp, ca_file=f"{certs}/ca.pem")
    assert "for a tls:// address" in e.value.message
    with pytest.raises(InitializationError) as e:
        Client(address=svc.unix, tls=True)
    assert "not a TCP address" in e.value.message


@pytest.fixture(scope="module")
def rt(certs):
    d = secured("router", "tls-rt", certs, require="yes",
                rules="member.worker1 = py-*\nserve.worker1 = whoami\n")
    try:
        yield d.start()
        assert d.stop() == 0, d.read_log()
    finally:
        d.cleanup()


def whoami_factory(name):
    def whoami():
        return name
    return whoami


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_member_joins_over_tls_with_its_token(rt, certs, clients, kind):
    name = f"py-{kind}"
    kw = dict(address=rt.tls, ca_file=f"{certs}/ca.pem", token=W1,
              callbacks={"whoami": whoami_factory(name)})
    if kind == "sync":
        m = Client(app_name=name, **kw)
        m.connect()
        stop = m.stop
    else:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        m = AsyncClient(app_name=name, **kw)
        asyncio.run_coroutine_threadsafe(m.connect(), loop).result(30)

        def stop():
            asyncio.run_coroutine_threadsafe(m.stop(), loop).result(30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
    try:
        conn = clients(address=rt.tls, ca_file=f"{certs}/ca.pem", token=BOB).connect()
        conn.wait_for_members(name, timeout=10)
        assert conn.rpc(timeout=5, receiver=name).whoami() == name
    finally:
        stop()


def test_a_member_whose_token_may_not_take_the_name_is_refused(rt, certs):
    with pytest.raises(InitializationError) as e:
        Client(app_name="rogue", address=rt.tls, ca_file=f"{certs}/ca.pem", token=W1,
               callbacks={"whoami": whoami_factory("rogue")}).connect()
    assert e.value.code == 9 and "rogue" in e.value.message, e.value.message
    with pytest.raises(InitializationError) as e:
        Client(app_name="py-bad", address=rt.tls, ca_file=f"{certs}/ca.pem",
               token="not-a-token-of-anyone-here",
               callbacks={"whoami": whoami_factory("x")}).connect()
    assert "authentication refused (daffi.auth): unknown token" in e.value.message


def test_a_caller_survives_a_server_restart_over_tls(certs, clients):
    d = secured("service", "tls-restart", certs)
    try:
        d.start()
        conn = clients(address=d.tls, ca_file=f"{certs}/ca.pem", token=BOB).connect()
        assert conn.rpc(timeout=5).add(1, 1) == 2
        assert d.stop() == 0
        d.start()       # the same ports: the next call reconnects, token included
        assert conn.rpc(timeout=5).add(2, 2) == 4
        assert d.stop() == 0
        with pytest.raises(Disconnected):
            conn.rpc(timeout=1).add(3, 3)
    finally:
        d.cleanup()


def test_a_member_rejoins_over_tls_after_a_router_restart(certs, clients):
    d = secured("router", "tls-rt-restart", certs, require="yes")
    try:
        d.start()
        m = Client(app_name="py-back", address=d.tls, ca_file=f"{certs}/ca.pem", token=W1,
                   callbacks={"whoami": whoami_factory("py-back")})
        m.connect()
        try:
            conn = clients(address=d.tls, ca_file=f"{certs}/ca.pem", token=BOB).connect()
            conn.wait_for_members("py-back", timeout=10)
            assert d.stop() == 0
            d.start()   # the member reconnects by itself: handshake, daffi.auth, hello
            conn.wait_for_members("py-back", timeout=15)
            assert conn.rpc(timeout=5).whoami() == "py-back"
        finally:
            m.stop()
        assert d.stop() == 0
        assert d.read_log().count("identity=worker1 by=token") >= 2
    finally:
        d.cleanup()
