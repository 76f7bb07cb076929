"""
daffi's quick-start programs (python/examples/, daffi's with only their imports
changed) run against a daffid router: the worker joins, the caller prints
multiply(6, 7) = 42, and SIGTERM ends the worker and the router cleanly. Each pair
runs in a network namespace of its own (quickstart.py), where 127.0.0.1:6001, the
address the programs name, is free.
"""

import functools
import os
import socket

import pytest

import support

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "quickstart.py")


@functools.lru_cache(maxsize=1)
def namespace_prefix():
    """How to run a command in a fresh network namespace here: as root `unshare
    -n`, else `unshare -rn` (a user namespace too). None when both are refused."""
    for prefix in (["unshare", "-n"], ["unshare", "-rn"]):
        try:
            if support.run(prefix + ["true"], timeout=10).returncode == 0:
                return prefix
        except (OSError, AssertionError):
            pass
    return None


def port_6001_free():
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 6001))
            return True
        except OSError:
            return False


def drive(*args):
    """quickstart.py ARGS in a network namespace of its own (or, where none can be
    made, here when 127.0.0.1:6001 is free); returns its output, asserting exit 0."""
    prefix = namespace_prefix()
    if prefix is not None:
        cmd = prefix + [support.PYTHON, DRIVER, "--netns", *args]
    elif port_6001_free():
        cmd = [support.PYTHON, DRIVER, *args]
    else:
        pytest.fail("no network namespace can be made here (unshare refused) and "
                    "127.0.0.1:6001, which the quick start names, is taken")
    r = support.run(cmd, timeout=90)
    out = r.stdout.decode() + r.stderr.decode()
    assert r.returncode == 0, out
    return out


@pytest.mark.parametrize("worker, caller", [("calc_worker.py", "calc_caller.py"),
                                            ("calc_worker_async.py", "calc_caller_async.py")])
def test_daffis_quick_start_runs_with_only_its_imports_changed(worker, caller):
    out = drive(worker, caller)
    assert "caller exit 0: multiply(6, 7) = 42" in out
    assert "worker exit 0" in out and "router exit 0" in out


def test_the_readmes_quick_start_is_what_the_driver_runs():
    import quickstart
    lines = [ln.split("#")[0].strip() for ln in quickstart.readme_block(
        "python-quickstart").splitlines()]
    assert [ln for ln in lines if ln] == [
        "build/daffid -c python/examples/router &",
        "PYTHONPATH=python python3 python/examples/calc_worker.py &",
        "PYTHONPATH=python python3 python/examples/calc_caller.py",
        "kill %2 %1"]


def test_the_readmes_python_block_runs_against_the_router():
    assert "README block exit 0" in drive("--readme-python")


def test_the_examples_differ_from_daffis_only_in_their_imports():
    # what the test above runs is daffi's program: every line that names daffid is
    # an import (or the comment saying so)
    for name in os.listdir(support.EXAMPLES):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(support.EXAMPLES, name)) as f:
            for line in f:
                if "daffid" in line and not line.startswith("#"):
                    assert line.startswith(("from daffid", "import daffid")), (name, line)
