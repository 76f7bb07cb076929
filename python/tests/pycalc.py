"""
Python twins of daffid's example plugins (calc and echo, sdk/ and plugins/), for
Python members that C callers (daffictl, the C examples) and Python callers reach
through a router. The names and answers are the plugins' contract (DESIGN.md).
"""

import asyncio

from daffid import BadArgs, HandlerError


def _number(x):
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise BadArgs("expected 2 numbers")
    return x


def add(a, b):
    return _number(a) + _number(b)


def multiply(a, b):
    return _number(a) * _number(b)


def divide(a, b):
    if _number(b) == 0:
        raise HandlerError("division by zero")
    return float(_number(a)) / b


def echo(*args):
    return args[0] if len(args) == 1 else list(args)


async def echo_after(ms, value):
    if not isinstance(ms, int) or not 0 <= ms <= 60000:
        raise BadArgs("echo_after takes ms 0..60000 and a value")
    await asyncio.sleep(ms / 1000)
    return value


CALLBACKS = [add, multiply, divide, echo, echo_after]
