"""The test harness: event loops of each kind, bounded waits, and the Python coroutines
the tests hand to Rust."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, Awaitable, Callable

import uvloop

LOOP_KINDS = ("asyncio", "uvloop")

#: How long a bounded wait retries before giving up (seconds); passing tests never wait it.
PATIENCE = 5.0

#: The wait of a test marked as a known bridge bug: long enough to see it fail.
KNOWN_BUG_PATIENCE = 0.25

#: What the bridge raises for a conversion whose future the executor dropped unfinished.
DROPPED = "the Rust future was dropped by the minipool runtime before it completed"

#: What it raises when the executor refuses a new future.
REFUSED = "the minipool runtime could not run the future: it has shut down"


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


async def double_later(x):
    await asyncio.sleep(0.001)
    return 2 * x


async def raise_later(error):
    await asyncio.sleep(0.001)
    raise error


async def sleep_forever(events):
    """Sleeps until cancelled, and records the cancellation in `events`."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        events.append("cancelled")
        raise
