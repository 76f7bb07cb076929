"""
Runs one of daffi's quick starts against daffid, as the README shows it:

    build/daffid -c python/examples/router &             # the router on 127.0.0.1:6001
    PYTHONPATH=python python3 python/examples/WORKER &   # joins it as calc-worker
    PYTHONPATH=python python3 python/examples/CALLER     # multiply(6, 7) = 42

then stops the worker and the router with SIGTERM, each of which must exit 0.

    quickstart.py [--netns] WORKER CALLER
    quickstart.py [--netns] --readme-python     the README's Python block instead

The programs name 127.0.0.1:6001 themselves (that is the point: they are daffi's,
with only their imports changed), so test_examples.py runs this in a network
namespace of its own (--netns: bring its loopback up first), where that port is
free whatever else runs on the machine. Prints what happened; exits 0 on success.
"""

import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import support  # noqa: E402

ROUTER = "tcp://127.0.0.1:6001"


def readme_block(name):
    """The fenced block after `<!-- readme-test: NAME -->` in the README (the
    convention tests/integration/test_readme.c reads it by), without its fences."""
    with open(os.path.join(support.ROOT, "README.md")) as f:
        text = f.read()
    at = text.index(f"<!-- readme-test: {name} -->")
    start = text.index("\n", text.index("```", at)) + 1
    return text[start:text.index("```", start)]


def main(argv):
    if argv and argv[0] == "--netns":
        argv = argv[1:]
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    env = dict(os.environ, **support.python_env())
    router = subprocess.Popen([f"{support.BUILD}/daffid", "-c",
                               os.path.join(support.EXAMPLES, "router")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    worker = None
    try:
        support.wait_until(lambda: _pong(), 10, f"the router on {ROUTER}")
        if argv == ["--readme-python"]:
            block = subprocess.run([support.PYTHON, "-c", readme_block("python")], env=env,
                                   capture_output=True, timeout=60)
            print(f"README block exit {block.returncode}: {block.stderr.decode()[-2000:]}")
            router.send_signal(signal.SIGTERM)
            router.wait(10)
            print(f"router exit {router.returncode}")
            return 0 if block.returncode == 0 and router.returncode == 0 else 1
        worker_py, caller_py = (os.path.join(support.EXAMPLES, a) for a in argv)
        worker = subprocess.Popen([support.PYTHON, worker_py], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        err, res = support.raw_call(ROUTER, "daffi.wait", [["calc-worker"], 10000], 15)
        if res is not True:
            raise AssertionError(f"calc-worker never joined: {err}")
        caller = subprocess.run([support.PYTHON, caller_py], env=env, capture_output=True,
                                timeout=30)
        print(f"caller exit {caller.returncode}: {caller.stdout.decode().strip()}")
        if caller.returncode != 0:
            print(caller.stderr.decode())
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=10)
        print(f"worker exit {worker.returncode}: {out.decode().strip()}")
        gone = "calc-worker" not in support.member_names(ROUTER)
        print(f"worker left the router: {gone}")
        router.send_signal(signal.SIGTERM)
        router.wait(10)
        print(f"router exit {router.returncode}")
        ok = (caller.returncode == 0 and "multiply(6, 7) = 42" in caller.stdout.decode()
              and worker.returncode == 0 and gone and router.returncode == 0)
        return 0 if ok else 1
    finally:
        for p in (worker, router):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


def _pong():
    try:
        return support.raw_call(ROUTER, "daffi.ping", [], 1)[1] == "pong"
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
