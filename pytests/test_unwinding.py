"""A cancelled Rust future that holds Python awaitables (`into_future`) lets its awaiting
task see the cancellation only once those awaitables have unwound, as a native `await`
does: `await slow()` cancelled has run `slow`'s `except` and `finally` (even one that
awaits) by the time the cancel scope, `asyncio.timeout` or `await task` observes the
cancellation.

Differential: each scenario runs with the awaitable awaited natively and held by a Rust
future in each of the ways one can hold it (see `HOLDERS`), on asyncio's default loop,
uvloop and trio (through anyio where the scenario is framework-neutral), on every runtime.
"""

from __future__ import annotations

import asyncio
import sys

import anyio
import pytest

import pyo3_aio_tests as m
from harness import PATIENCE, run_python, sleep_anywhere, wait_until

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

#: How the awaiting task holds the awaitable: natively, or through a Rust future that
#: calls `into_future` on the loop's thread and then lives where `Home::Auto` puts it (on
#: the loop thread, since it waits on Python work of its loop), on the runtime or on the
#: loop thread, or that calls it from a runtime thread.
HOLDERS = {
    "native": lambda runtime, awaitable: awaitable,
    "auto": lambda runtime, awaitable: m.await_py_at(runtime, "auto", awaitable),
    "runtime": lambda runtime, awaitable: m.await_py_at(runtime, "runtime", awaitable),
    "loop": lambda runtime, awaitable: m.await_py_at(runtime, "loop", awaitable),
    "from-runtime": lambda runtime, awaitable: m.await_py_after(runtime, 0.001, lambda: awaitable),
}

#: What `slow` records when it is cancelled, in order; the scenarios check the list at
#: the moment the cancellation is observed.
UNWOUND = ["started", "cancelled", "unwound"]


@pytest.fixture(params=list(HOLDERS))
def holder(request):
    return HOLDERS[request.param]


def slow(events):
    """Sleeps for a minute; once cancelled, its `finally` takes a few loop turns (a
    shielded sleep) before it records "unwound"."""

    async def slow():
        events.append("started")
        try:
            await anyio.sleep(60)
        except anyio.get_cancelled_exc_class():
            events.append("cancelled")
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.01)
            events.append("unwound")

    return slow()


async def cancel_once_started(events, scope):
    assert await wait_until(lambda: "started" in events, sleep=sleep_anywhere)
    scope.cancel()


def test_a_cancel_scope_exits_after_the_awaitable_unwound(run_anywhere, runtime, holder):
    async def main():
        events = []
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as group:
                group.start_soon(cancel_once_started, events, scope)
                await holder(runtime, slow(events))
        return list(events)

    assert run_anywhere(main) == UNWOUND


@pytest.mark.parametrize("home", ["native", "runtime", "loop"])
def test_both_awaitables_of_one_future_unwound(run_anywhere, runtime, home):
    """One Rust future awaits two awaitables at once; natively, a task group of the two."""

    async def main():
        first, second = [], []
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as group:
                group.start_soon(cancel_once_started, second, scope)
                if home == "native":
                    async with anyio.create_task_group() as both:
                        both.start_soon(lambda: slow(first))
                        both.start_soon(lambda: slow(second))
                else:
                    await m.await_py_both(runtime, home, slow(first), slow(second))
        return list(first), list(second)

    assert run_anywhere(main) == (UNWOUND, UNWOUND)


def test_a_failing_sibling_leaves_after_the_awaitable_unwound(run_anywhere, runtime, holder):
    """A task group whose other task fails cancels the awaiting one; the group's error is
    raised once it has unwound."""

    async def main():
        events = []

        async def fail_once_started():
            assert await wait_until(lambda: "started" in events, sleep=sleep_anywhere)
            raise ValueError("sibling")

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(fail_once_started)
                await holder(runtime, slow(events))
        except BaseExceptionGroup as group_error:
            assert [type(error) for error in group_error.exceptions] == [ValueError]
            return list(events)
        raise AssertionError("the task group did not fail")

    assert run_anywhere(main) == UNWOUND


@pytest.mark.parametrize("how", ["cancel", "timeout", "wait_for"])
def test_asyncio_sees_the_cancellation_after_the_awaitable_unwound(run, runtime, holder, how):
    if how == "timeout" and sys.version_info < (3, 11):
        pytest.skip("asyncio.timeout is 3.11+")

    async def main():
        events = []
        if how == "cancel":
            task = asyncio.ensure_future(holder(runtime, slow(events)))
            assert await wait_until(lambda: "started" in events)
            # The task awaits by now. (On 3.12+ the holders call `into_future` when called,
            # and it starts `slow` eagerly, before the task's first step: a cancel then
            # would reach a coroutine that never awaited, whose `throw` cannot wait.)
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        elif how == "timeout":
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(None) as timeout:
                    asyncio.get_running_loop().call_later(
                        0, lambda: asyncio.ensure_future(expire_once_started(events, timeout))
                    )
                    await holder(runtime, slow(events))
        else:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(started_then(events, holder(runtime, slow(events))), 0.05)
        return list(events)

    assert run(main) == UNWOUND


async def expire_once_started(events, timeout):
    assert await wait_until(lambda: "started" in events)
    timeout.reschedule(asyncio.get_running_loop().time())


async def started_then(events, awaitable):
    return await awaitable


def test_a_future_being_polled_when_cancelled_waits_for_its_drop_then_the_unwinding(
    run_anywhere, runtime
):
    """The cancel finds a runtime thread inside the future's poll: the future is dropped
    when that poll returns, and what its drop cancelled unwinds before the scope exits."""

    async def main():
        events, exits = [], []

        async def awaiting(scope):
            with scope:
                await m.await_py_busy(runtime, slow(events))
            exits.append(list(events))

        scope = anyio.CancelScope()
        async with anyio.create_task_group() as group:
            group.start_soon(awaiting, scope)
            assert await wait_until(lambda: m.busy_polling() and "started" in events, sleep=sleep_anywhere)
            scope.cancel()
            await sleep_anywhere(0.02)
            held = not exits
            m.release_busy()
            with anyio.fail_after(PATIENCE):
                while not exits:
                    await sleep_anywhere(0.001)
        return held, exits[0]

    assert run_anywhere(main) == (True, UNWOUND)


@pytest.mark.parametrize("via", ["native", "bridge"])
def test_giving_up_with_cancel_returns_after_the_awaitable_unwound(run_anywhere, runtime, via):
    """`asyncio.wait_for` (natively, anyio's `move_on_after`) gives up once the awaitable it
    cancelled has unwound; so does Rust's `PyFuture::cancel` after its own timeout."""

    async def main():
        events = []
        if via == "native":
            with anyio.move_on_after(0.05):
                await slow(events)
        else:
            assert await m.await_py_or_cancel(runtime, 0.05, slow(events)) is None
        return list(events)

    assert run_anywhere(main) == UNWOUND


def test_an_awaitable_that_finishes_before_the_timeout_gives_its_result(run_anywhere, runtime):
    async def quick():
        return "quick"

    async def main():
        return await m.await_py_or_cancel(runtime, 60, quick())

    assert run_anywhere(main) == "quick"


CTRL_C = r"""
import asyncio, os, signal, sys
import uvloop
import pyo3_aio_tests as m

loop_kind, runtime, via = sys.argv[1:]

async def slow():
    # Ctrl-C once the awaitable runs (asyncio.run's handler cancels the main task).
    asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGINT)
    try:
        await asyncio.sleep(60)
    finally:
        await asyncio.sleep(0.01)
        print("finally ran", flush=True)

async def main():
    if via == "native":
        await slow()
    else:
        await m.await_py_at(runtime, "runtime", slow())

try:
    (uvloop.run if loop_kind == "uvloop" else asyncio.run)(main())
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
"""


@pytest.mark.parametrize("via", ["native", "bridge"])
def test_ctrl_c_runs_the_awaitables_finally_before_keyboard_interrupt(loop_kind, runtime, via):
    """Ctrl-C under `asyncio.run` cancels the main task: the awaitable a Rust future holds
    runs its `finally` before KeyboardInterrupt leaves the run, as it does when awaited
    natively (before, its task was cancelled but the run ended first: it never ran)."""
    if sys.version_info < (3, 11):
        pytest.skip("asyncio.run turns Ctrl-C into a cancellation of the main task from 3.11")
    done = run_python(CTRL_C, loop_kind, runtime, via)
    assert (done.returncode, done.stdout.split(), done.stderr) == (
        0,
        ["finally", "ran", "KeyboardInterrupt"],
        "",
    )


def numbers_until_cancelled(events):
    """Yields 1, then awaits `slow` (which records its cancellation and unwinding) inside
    the generator."""

    async def numbers():
        yield 1
        await slow(events)
        yield 2

    return numbers()


@pytest.mark.parametrize("via", ["native", "bridge", "bridge-from-runtime"])
def test_a_cancelled_stream_consumer_sees_it_after_the_generator_unwound(run_anywhere, runtime, via):
    """A task cancelled inside `async for` has run the generator's `finally`; a Rust future
    draining it through `into_stream` too: the pump's task unwinds before the cancellation
    is seen."""

    async def main():
        events = []

        async def native():
            async for _ in numbers_until_cancelled(events):
                pass

        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as group:
                group.start_soon(cancel_once_started, events, scope)
                if via == "native":
                    await native()
                else:
                    from_runtime = via == "bridge-from-runtime"
                    await m.consume(runtime, numbers_until_cancelled(events), from_runtime=from_runtime)
        return list(events)

    assert run_anywhere(main) == UNWOUND
