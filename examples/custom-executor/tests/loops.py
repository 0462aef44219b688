"""Event loops of each kind and bounded waits, for the custom-executor tests."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, Awaitable, Callable

import uvloop

LOOP_KINDS = ("asyncio", "uvloop")

#: How long a bounded wait retries before giving up (seconds); passing tests never wait it.
PATIENCE = 5.0


def run_directly(kind: str, coroutine: Awaitable[Any]) -> Any:
    """`asyncio.run(coroutine)` on a loop of `kind`, the coroutine passed as-is."""
    if kind == "asyncio":
        return asyncio.run(coroutine)
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coroutine)
    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def wait_until(predicate: Callable[[], bool], timeout: float = PATIENCE) -> bool:
    """Yields to the loop until `predicate()` holds, at most about `timeout` seconds;
    returns the last value of the predicate."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return predicate()
        await asyncio.sleep(0.001)
    return True
