"""
Real daffid processes for the Python tests, as tests/support/daemon.c and cluster.c
start them for the C ones: each in a private temp directory with its own ini
files, listening on a free 127.0.0.1 port and a Unix socket in that directory,
stopped by PID with SIGTERM, which must end it with exit status 0. A daffid child
dies with the test process (PR_SET_PDEATHSIG), so a crashed run leaves nothing.

BUILD (default "build", relative to the repository root) is the build directory
whose daffid, daffictl, plugins and examples the tests run.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Iterable, List, Optional

import msgpack

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
PYTHON_DIR = os.path.join(ROOT, "python")
EXAMPLES = os.path.join(PYTHON_DIR, "examples")
PYTHON = "/usr/bin/python3"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


#: every child is forked by this one thread: PR_SET_PDEATHSIG fires when the
#: *thread* that forked the child ends, so a daffid started from a short-lived
#: thread (a Timer, an executor) would die with it
_SPAWNER = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="spawner")


def popen(args, **kwargs) -> subprocess.Popen:
    """subprocess.Popen(args, **kwargs), forked by the spawner thread, the child
    dying with this process."""
    return _SPAWNER.submit(subprocess.Popen, args, preexec_fn=_die_with_parent,
                           **kwargs).result()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_call(address: str, method: str, params: list, timeout: float = 5.0):
    """One request on a fresh socket, answered [error, result]: what the harness
    asks daffid, independent of the package under test."""
    if address.startswith("unix://"):
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(timeout)
        sock.connect(address[len("unix://"):])
    else:
        host, port = address[len("tcp://"):].rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), timeout=timeout)
    with sock:
        sock.sendall(msgpack.packb([0, 1, method, params]))
        unp = msgpack.Unpacker(raw=False, strict_map_key=False)
        while True:
            for msg in unp:
                return msg[2], msg[3]
            data = sock.recv(65536)
            if not data:
                raise ConnectionError(f"{address} closed the connection")
            unp.feed(data)


def wait_until(predicate, timeout: float, what: str, interval: float = 0.01):
    """Polls predicate until it returns something true; fails the test naming what
    it waited for after timeout seconds."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def member_names(router: str) -> List[str]:
    err, res = raw_call(router, "daffi.members", [])
    assert err is None, err
    return [m["name"] for m in res]


class Daemon:
    """One daffid: role service, router or worker (of router=ADDRESS)."""

    def __init__(self, role: str = "service", name: Optional[str] = None,
                 plugins: Iterable[str] = ("calc", "echo", "fib"),
                 router: Optional[str] = None, extra: str = "", port: Optional[int] = None,
                 host: str = "127.0.0.1", tls: bool = False):
        """tls: a tls:// listener too (self.tls; extra gives its [tls] section)."""
        self.dir = tempfile.mkdtemp(prefix="daffid-pytest.", dir="/tmp")
        self.role = role
        self.name = name or f"{role}-{os.path.basename(self.dir).split('.')[-1]}"
        self.port = port or free_port()
        self.sock_path = os.path.join(self.dir, "daffid.sock")
        self.tcp = f"tcp://{host}:{self.port}"
        self.unix = f"unix://{self.sock_path}"
        self.tls = f"tls://{host}:{free_port()}" if tls else ""
        self.log_path = os.path.join(self.dir, "daffid.log")
        self.proc: Optional[subprocess.Popen] = None
        self.router = router
        server = [f"role = {role}", f"name = {self.name}", "workers = 2",
                  "blocking_threads = 2", "shutdown_timeout = 5s"]
        if role == "worker":
            server.append(f"router = {router}")
        else:
            server.append(f"listen = {self.tcp}, {self.unix}" +
                          (f", {self.tls}" if self.tls else ""))
        self.write("00-server.ini", "[server]\n" + "\n".join(server) + "\n" + extra +
                   "\n[log]\nlevel = info\n")
        for p in plugins:
            self.write(f"10-{p}.ini", f"[plugin]\nname = {p}\n"
                                      f"path = {BUILD}/plugins/{p}.so\n")

    def write(self, name: str, text: str) -> None:
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(text)

    def start(self) -> "Daemon":
        log = open(self.log_path, "ab")
        self.proc = popen([f"{BUILD}/daffid", "-c", self.dir], stdin=subprocess.DEVNULL,
                          stdout=log, stderr=log)
        log.close()
        if self.role == "worker":
            wait_until(lambda: self._alive() and self.name in member_names(self.router),
                       START_TIMEOUT, f"worker {self.name} registered at {self.router}")
        else:
            wait_until(lambda: self._alive() and self._answers(), START_TIMEOUT,
                       f"{self.role} {self.name} answering on {self.tcp}")
        return self

    def _alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"daffid {self.name} exited with {self.proc.returncode}:\n"
                                 + self.read_log())
        return True

    def _answers(self) -> bool:
        try:
            return raw_call(self.tcp, "daffi.ping", [], 1.0)[1] == "pong" and \
                os.path.exists(self.sock_path)
        except OSError:
            return False

    def freeze(self) -> None:
        """SIGSTOP, then waits until every thread is stopped: a stop signal takes
        effect thread by thread, and a loop can still answer a call in between."""
        self.proc.send_signal(signal.SIGSTOP)
        task_dir = f"/proc/{self.proc.pid}/task"

        def all_stopped():
            for tid in os.listdir(task_dir):
                try:
                    with open(f"{task_dir}/{tid}/stat") as f:
                        if f.read().rsplit(")", 1)[1].split()[0] not in ("T", "t"):
                            return False
                except FileNotFoundError:
                    pass
            return True
        wait_until(all_stopped, 5, f"every thread of daffid {self.name} stopped")

    def thaw(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def read_log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit status (asserting a clean 0 is the
        caller's), killing it past STOP_TIMEOUT."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def running(*args, **kwargs):
    """A started Daemon that must stop cleanly (exit 0) at the end."""
    d = Daemon(*args, **kwargs)
    try:
        d.start()
        yield d
        rc = d.stop()
        assert rc == 0, f"daffid {d.name} exited with {rc}:\n{d.read_log()}"
    finally:
        d.cleanup()


def run(cmd: List[str], timeout: float = 30.0, env: Optional[dict] = None,
        stdin: Optional[bytes] = None) -> subprocess.CompletedProcess:
    """A program to completion (forked by the spawner), its output captured."""
    full = dict(os.environ, **(env or {}))
    proc = popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                 env=full)
    try:
        out, err = proc.communicate(stdin, timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"{cmd} ran over {timeout} s: {out!r} {err!r}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def python_env() -> dict:
    """The environment a Python program of the tests imports this tree's daffid in."""
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": PYTHON_DIR + (os.pathsep + path if path else "")}


def spawn_python(args: List[str], env: Optional[dict] = None) -> subprocess.Popen:
    full = dict(os.environ, **python_env(), **(env or {}))
    return popen([PYTHON] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                 stderr=subprocess.STDOUT, env=full)


class Recorder:
    """What callbacks saw, for tests to wait on across threads."""

    def __init__(self):
        self.items: list = []
        self.lock = threading.Lock()

    def add(self, item) -> None:
        with self.lock:
            self.items.append(item)

    def wait_for(self, n: int, timeout: float = 5.0) -> list:
        wait_until(lambda: len(self.items) >= n, timeout, f"{n} recorded item(s)")
        with self.lock:
            return list(self.items)


def fnv1a64(chunks) -> int:
    """echo's digest of the chunks, computed here to check daffid's answer."""
    h = 14695981039346656037
    for c in chunks:
        for b in c:
            h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


sys.path.insert(0, PYTHON_DIR)
