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
from typing import Any, Awaitable, Callable, List, Optional

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


#: Why a test of the bridge on uvloop with `asyncio.eager_task_factory` is skipped on 3.13.
UVLOOP_EAGER_FACTORY_BUG = (
    "uvloop bug, not the bridge's: on Python 3.13 uvloop's create_task passes eager_start= "
    "to the loop's task factory (since uvloop 0.23, MagicStack/uvloop PR #748), and "
    "asyncio.eager_task_factory takes that argument only from 3.14, so no task can be made "
    "through it; reproduced without pyo3-aio by "
    "test_eager_start.py::test_eager_task_factory_without_the_bridge: "
)


def eager_task_factory_failure(kind: str) -> Optional[str]:
    """Runs plain asyncio, no pyo3-aio, on a new loop of `kind` with
    `asyncio.eager_task_factory` set: a task made through it must start at once and
    finish. Returns None when it does, or the error uvloop's create_task raised on 3.13
    (see `UVLOOP_EAGER_FACTORY_BUG`); any other outcome fails the test."""

    async def child(log):
        log.append("child runs")
        return "done"

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_task_factory(asyncio.eager_task_factory)
        log = []
        coroutine = child(log)
        try:
            task = loop.create_task(coroutine)
        except TypeError as error:
            coroutine.close()
            return error
        finally:
            # The loop's own cleanup makes tasks too (shutdown_asyncgens).
            loop.set_task_factory(None)
        started = list(log)
        return started, task.done(), await task

    outcome = run_on(kind, main)
    if isinstance(outcome, TypeError):
        message = str(outcome)
        assert (kind, sys.version_info[:2]) == ("uvloop", (3, 13)), message
        assert "unexpected keyword argument 'eager_start'" in message, message
        return message
    assert outcome == (["child runs"], True, "done"), outcome
    return None


_EAGER_FACTORY_FAILURES: dict = {}


def skip_if_uvloop_breaks_eager_task_factory(kind: str) -> None:
    """Skips the calling test when it runs on uvloop on Python 3.13 with uvloop's bug (see
    `UVLOOP_EAGER_FACTORY_BUG`) present: plain asyncio cannot make a task through
    `asyncio.eager_task_factory` there, so there is nothing for the bridge to match. On any
    other loop, Python or uvloop release, the test runs."""
    if kind != "uvloop" or sys.version_info[:2] != (3, 13):
        return
    if kind not in _EAGER_FACTORY_FAILURES:
        _EAGER_FACTORY_FAILURES[kind] = eager_task_factory_failure(kind)
    failure = _EAGER_FACTORY_FAILURES[kind]
    if failure is not None:
        pytest.skip(UVLOOP_EAGER_FACTORY_BUG + failure)


class LoopErrors(AssertionError):
    """The loop's exception handler was called during a run (a callback raised, a task was
    destroyed while pending, an exception was never retrieved...)."""


def run_directly(kind: str, coroutine: Awaitable[Any]) -> Any:
    """Runs `coroutine` as `asyncio.run(coroutine)` would, on a loop of `kind`, with the
    coroutine object passed as-is (no wrapper)."""
    if kind == "asyncio":
        return asyncio.run(coroutine)
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coroutine)
    # `asyncio.run` for a loop factory on Pythons without `asyncio.Runner` (3.9, 3.10).
    return _OwnLoop(uvloop.new_event_loop(), errors=None, current=False).run(coroutine)


def run_on(kind: str, coro_factory: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """Runs `coro_factory(*args)` on a new loop of `kind` and returns its result.

    A run that returns is cleaned up as `asyncio.run` does it: the tasks still pending are
    cancelled and awaited, async generators and the default executor shut down, the loop
    closed (and the default loop is the thread's current loop while it runs, as there).
    Fails the test with LoopErrors when the loop's exception handler was called.

    A run that raises (its coroutine failed, or the test's deadline interrupted the loop)
    gives the tasks still pending PATIENCE to end once cancelled, and then closes the loop
    under whatever has not ended (see `_ABANDONED`). `asyncio.run` would await them for
    good: a Task that a bug keeps from ending when cancelled would hold its cleanup past
    the deadline, until faulthandler ends the whole pytest process, losing this test's
    failure and every later test.
    """
    errors: List[dict] = []

    async def main():
        return await coro_factory(*args)

    result = _OwnLoop(loop_factory(kind)(), errors, current=kind == "asyncio").run(main())
    if errors:
        raise LoopErrors(f"the event loop reported errors: {errors!r}")
    return result


#: Tasks (and their loops) that a run closed its loop under because they did not end in
#: time after a failure (see `run_on`), kept for the rest of the session: collected, each
#: would report "Task was destroyed but it is pending!" and close its coroutine in the
#: middle of whichever test runs then, and could fail it.
_ABANDONED: List[Any] = []


class _OwnLoop:
    """A new loop that runs one coroutine and is then cleaned up and closed, as `run_on`
    describes. `errors` collects what the loop's exception handler is given (None: asyncio's
    default handler logs it); `current` makes it the thread's current loop while it runs."""

    def __init__(self, loop: asyncio.AbstractEventLoop, errors: Optional[List[dict]], current: bool):
        self.loop = loop
        self.errors = errors
        self.current = current
        #: The test's deadline, when the loop reported it to its exception handler instead
        #: of raising it: uvloop runs Python signal handlers inside a callback of its own
        #: and reports what one raises (other than KeyboardInterrupt and SystemExit), so
        #: pytest-timeout's `Failed` does not come out of `run_until_complete`. The loop is
        #: stopped for it (here, and by conftest's `deadline_stops_the_running_loop`), and
        #: the run raises it.
        self.deadline: Optional[BaseException] = None
        loop.set_exception_handler(self._handle)

    def _handle(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        if isinstance(context.get("exception"), pytest.fail.Exception):
            self.deadline = self.deadline or context["exception"]
            loop.stop()
        elif self.errors is not None:
            self.errors.append(context)
        else:
            loop.default_exception_handler(context)

    def run(self, coroutine: Awaitable[Any]) -> Any:
        if self.current:
            asyncio.set_event_loop(self.loop)
        try:
            task = asyncio.ensure_future(coroutine, loop=self.loop)
            try:
                result = self.loop.run_until_complete(task)
                if self.deadline is not None:
                    raise self.deadline
            except BaseException as error:
                self._fail(error)
            self._close()
            return result
        finally:
            if self.current:
                asyncio.set_event_loop(None)

    def _close(self) -> None:
        """`asyncio.run`'s cleanup: cancel and await the tasks left, report the errors they
        ended with to the loop's handler, shut down async generators and the default
        executor, close the loop. Should the deadline interrupt it, the rest is bounded."""
        loop = self.loop
        try:
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            if leftovers:
                loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            for task in leftovers:
                if not task.cancelled() and task.exception() is not None:
                    loop.call_exception_handler(
                        {
                            "message": "unhandled exception during asyncio.run() shutdown",
                            "exception": task.exception(),
                            "task": task,
                        }
                    )
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            if self.deadline is not None:
                raise self.deadline
        except BaseException as error:
            self._fail(error)
        loop.close()

    def _fail(self, error: BaseException) -> None:
        """Closes the loop after `error` (bounded, see `_close_abandoning`) and raises the
        error to report: the deadline if the loop reported it (it stopped the loop, which
        raised `error`), else `error`."""
        reported = self.deadline or error
        self._close_abandoning(reported)
        if reported is error:
            raise error
        raise reported from None

    def _close_abandoning(self, error: BaseException) -> None:
        """Closes the loop after a run that failed with `error`: the tasks still pending are
        cancelled, and they and the shutdown of async generators and of the default
        executor get PATIENCE in all to end; what has not ended by then stays pending, kept
        in `_ABANDONED`, and is named in a note on `error`."""
        loop = self.loop
        deadline = time.monotonic() + PATIENCE
        notes = []
        try:
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            for step in (None, loop.shutdown_asyncgens, loop.shutdown_default_executor):
                waiting = leftovers if step is None else {loop.create_task(step())}
                if waiting:
                    timeout = max(deadline - time.monotonic(), 0.001)
                    loop.run_until_complete(asyncio.wait(waiting, timeout=timeout))
            for task in leftovers:
                # Seen here, so a task that ended with an error does not report it again
                # when collected ("exception was never retrieved"): the test fails anyway.
                if task.done() and not task.cancelled():
                    task.exception()
        except Exception as cleanup_error:  # the test's own error is the one to report
            notes.append(f"cleaning up the loop after the failure failed too: {cleanup_error!r}")
        finally:
            stuck = asyncio.all_tasks(loop)
            if stuck:
                _ABANDONED.append((loop, stuck))
                named = sorted(map(repr, stuck))
                notes.append(
                    f"{len(stuck)} task(s) had not ended {PATIENCE} s after being cancelled "
                    f"and were abandoned with the loop: "
                    f"{named[:5]}{' ...' if len(named) > 5 else ''}"
                )
            loop.close()
            if hasattr(error, "add_note"):  # 3.11+
                for note in notes:
                    error.add_note(note)


async def wait_until(
    predicate: Callable[[], bool],
    timeout: float = PATIENCE,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> bool:
    """Yields to the loop (`sleep(0.001)`: asyncio's, or `sleep_anywhere` for a test that
    also runs under trio) until `predicate()` holds, at most about `timeout` seconds;
    returns the last value of the predicate."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return predicate()
        await sleep(0.001)
    return True


async def outcome_or_stall_report(awaitable: Awaitable[Any], **probes: Callable[[], Any]) -> Any:
    """Awaits `awaitable` (in a task of its own) for at most PATIENCE and returns its result;
    if it has not finished by then, fails the test with a report of where it stalled: what
    each probe says, whether a fresh wake-up from a runtime thread (a tokio sleep) still
    reaches this loop, and whether the loop's drain that this wake-up causes finished the
    stalled one (then its own wake-up had been queued without a signal). The stalled task
    is cancelled afterwards."""
    import pyo3_aio_tests

    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=PATIENCE)
    if done:
        return task.result()
    report = {name: probe() for name, probe in probes.items()}
    fresh = asyncio.ensure_future(pyo3_aio_tests.sleep("tokio", 0.001, "woke"))
    arrived, _ = await asyncio.wait({fresh}, timeout=PATIENCE)
    report["a fresh wake-up from tokio arrives"] = bool(arrived)
    await asyncio.sleep(0.01)
    report["the stalled awaitable finished after it"] = task.done()
    report.update({f"{name}, after": probe() for name, probe in probes.items()})
    for pending in (task, fresh):
        pending.cancel()
    pytest.fail(f"stalled for {PATIENCE} s: {report}")


async def sleep_anywhere(seconds: float) -> None:
    """`asyncio.sleep` on an asyncio loop, `trio.sleep` under trio: for the scenarios that
    `run_anywhere` runs on each."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        import trio

        await trio.sleep(seconds)
    else:
        await asyncio.sleep(seconds)


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
