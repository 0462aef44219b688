"""The test harness: event loops of each kind, bounded waits, subprocesses.

Nothing here measures speed: every wait is a bounded retry that fails the test only when
the condition never becomes true.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any, Awaitable, Callable, List

import pytest
import uvloop

LOOP_KINDS = ("asyncio", "uvloop")

#: How long a bounded wait retries before giving up (seconds). Generous: on a loaded
#: 2-core machine a drop on another thread can take a while; passing tests never wait this.
PATIENCE = 5.0

#: The bounded wait of a test marked with `known_bug` (see the `patience` fixture): such a
#: test waits for something the bug keeps from ever happening, so a short wait is enough to
#: see it fail and keeps the expected failure cheap. Once the bug is fixed the test passes
#: (XPASS, which `strict` turns into a failure): remove the mark and it waits PATIENCE.
KNOWN_BUG_PATIENCE = 0.25

KNOWN_BUG_PREFIX = "known bridge bug: "


def known_bug(reason: str):
    """Marks a test (or a `pytest.param`) that exposes a bridge bug not fixed yet: an
    expected failure, strict, so the suite says so the day the bug is fixed."""
    return pytest.mark.xfail(strict=True, reason=KNOWN_BUG_PREFIX + reason)


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The constructor of a new event loop of `kind` ("asyncio" or "uvloop")."""
    if kind == "asyncio":
        return asyncio.new_event_loop
    if kind == "uvloop":
        return uvloop.new_event_loop
    raise ValueError(f"unknown loop kind {kind!r}")


class LoopErrors(AssertionError):
    """The loop's exception handler was called during a run (a callback raised, a task was
    destroyed while pending, an exception was never retrieved...)."""


def _collecting_handler(errors: List[dict]):
    def handler(loop, context):
        errors.append(context)

    return handler


def run_directly(kind: str, coroutine: Awaitable[Any]) -> Any:
    """Runs `coroutine` as `asyncio.run(coroutine)` would, on a loop of `kind`, with the
    coroutine object passed as-is (no wrapper)."""
    if kind == "asyncio":
        return asyncio.run(coroutine)
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coroutine)
    return _run_on_new_loop(uvloop.new_event_loop(), coroutine)


def _run_on_new_loop(loop: asyncio.AbstractEventLoop, coroutine: Awaitable[Any]) -> Any:
    """`asyncio.run` for Pythons without `asyncio.Runner` (3.9, 3.10) and any loop."""
    try:
        return loop.run_until_complete(coroutine)
    finally:
        try:
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


def run_on(kind: str, coro_factory: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """Runs `coro_factory(*args)` on a new loop of `kind` (asyncio.run for the default loop,
    asyncio.Runner or a plain new loop for uvloop) and returns its result.

    Fails the test with LoopErrors when the loop's exception handler was called.
    """
    errors: List[dict] = []

    async def main():
        asyncio.get_running_loop().set_exception_handler(_collecting_handler(errors))
        return await coro_factory(*args)

    result = run_directly(kind, main())
    if errors:
        raise LoopErrors(f"the event loop reported errors: {errors!r}")
    return result


async def wait_until(predicate: Callable[[], bool], timeout: float = PATIENCE) -> bool:
    """Yields to the loop (asyncio.sleep(0.001)) until `predicate()` holds, at most about
    `timeout` seconds; returns the last value of the predicate."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return predicate()
        await asyncio.sleep(0.001)
    return True


def run_python(code: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter (`sys.executable -c`), for anything that might
    crash or hang the interpreter. RUST_BACKTRACE is off so stderr stays readable."""
    env = dict(os.environ, RUST_BACKTRACE="0")
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def traceback_names(error: BaseException) -> List[str]:
    """The function names in `error.__traceback__`, outermost first."""
    names = []
    tb = error.__traceback__
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    return names


#: "full" runs the stress tests at full size (`cargo xtask stress`); anything else, or
#: unset, runs them bounded (`cargo xtask test`).
STRESS = os.environ.get("PYO3_AIO_STRESS", "bounded")


def stress_size(bounded: int, full: int) -> int:
    """The size of a stress test: `full` when PYO3_AIO_STRESS=full, else `bounded`."""
    return full if STRESS == "full" else bounded


def report(test: str, **figures: Any) -> None:
    """Records the figures of a stress test (counts, RSS...): printed (shown with `-s` or on
    failure), and appended as one JSON line to the file named by PYO3_AIO_STRESS_REPORT
    when that is set."""
    line = json.dumps({"test": test, "size": STRESS, **figures}, sort_keys=True)
    print(line)
    path = os.environ.get("PYO3_AIO_STRESS_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")


def rss_bytes() -> int:
    """The resident set size of this process (VmRSS in /proc/self/status), in bytes."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")
