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


@pytest.mark.parametrize("worker, caller", [("calc_worker.py", "calc_caller.py"),
                                            ("calc_worker_async.py", "calc_caller_async.py")])
def test_daffis_quick_start_runs_with_only_its_imports_changed(worker, caller):
    prefix = namespace_prefix()
    if prefix is not None:
        cmd = prefix + [support.PYTHON, DRIVER, "--netns", worker, caller]
    elif port_6001_free():
        cmd = [support.PYTHON, DRIVER, worker, caller]
    else:
        pytest.fail("no network namespace can be made here (unshare refused) and "
                    "127.0.0.1:6001, which the quick start names, is taken")
    r = support.run(cmd, timeout=60)
    out = r.stdout.decode() + r.stderr.decode()
    assert r.returncode == 0, out
    assert "caller exit 0: multiply(6, 7) = 42" in out
    assert "worker exit 0" in out and "router exit 0" in out


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
