"""The event loop stops (run_until_complete returns, or `loop.stop()`) while Rust futures
are pending, then runs again: the completions that landed meanwhile are delivered, both
ways. And what test_loop_closed.py leaves out for closed loops: the Python objects held
by futures that complete into a closed loop are released, a task cancelled after its loop
closed behaves as one awaiting a plain asyncio future does, and Rust dropping its future
of a Python task after the loop closed is harmless."""

from __future__ import annotations

import asyncio
import textwrap
import time

import pytest

import pyo3_aio_tests as m
from harness import loop_factory, report, run_python, stress_size


def start_everything(runtime, n, values):
    """Futures of every kind, pending on the runtime or the loop thread, each returning
    `values[i]`."""
    tasks = []
    for i in range(n):
        kind = i % 5
        if kind == 0:
            tasks.append(asyncio.ensure_future(m.sleep(runtime, 0.0001 * (i % 20), values[i])))
        elif kind == 1:
            tasks.append(asyncio.ensure_future(m.hop(runtime, values[i])))
        elif kind == 2:
            tasks.append(m.eager_sleep(runtime, 0.0001 * (i % 20), values[i]))
        elif kind == 3:
            tasks.append(asyncio.ensure_future(m.local_sleep_on(runtime, 0.0001 * (i % 20), values[i])))
        else:
            async def python_side(value=values[i]):
                await asyncio.sleep(0)
                return value

            # Rust calls into_future from the runtime's thread while the loop is stopped.
            tasks.append(asyncio.ensure_future(m.await_py_after(runtime, 0.001, python_side)))
    return tasks


def check_loop_errors(errors):
    assert errors == [], errors


def test_results_arrive_after_run_until_complete_returned_and_the_loop_runs_again(loop_kind, runtime):
    n = stress_size(500, 20_000)
    loop = loop_factory(loop_kind)()
    errors = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    values = [("value", i) for i in range(n)]

    async def start():
        tasks = start_everything(runtime, n, values)
        await asyncio.sleep(0)
        return tasks

    try:
        tasks = loop.run_until_complete(start())  # the loop stops with the futures pending
        pending_at_stop = sum(not task.done() for task in tasks)
        time.sleep(0.05)  # completions land while the loop is not running
        results = loop.run_until_complete(asyncio.gather(*tasks))
    finally:
        loop.close()
    assert pending_at_stop > 0
    assert len(results) == n and all(got is want for got, want in zip(results, values))
    check_loop_errors(errors)
    report("test_results_arrive_after_run_until_complete_returned_and_the_loop_runs_again",
           runtime=runtime, loop=loop_kind, futures=n, pending_at_stop=pending_at_stop)


def test_results_arrive_after_loop_stop_and_run_forever_again(loop_kind, runtime):
    n = stress_size(500, 20_000)
    loop = loop_factory(loop_kind)()
    errors = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    values = [("value", i) for i in range(n)]
    pending_at_stops = []
    box = {}

    async def main():
        box["tasks"] = tasks = start_everything(runtime, n, values)
        box["gathered"] = await asyncio.gather(*tasks)
        loop.stop()

    def stop_now():
        pending_at_stops.append(sum(not task.done() for task in box["tasks"]))
        loop.stop()

    try:
        loop.create_task(main())
        for delay in (0, 0.0005, 0.002):
            loop.call_soon(stop_now) if delay == 0 else loop.call_later(delay, stop_now)
            loop.run_forever()  # stopped by stop_now, futures still in flight
            time.sleep(0.01)  # completions land while the loop is stopped
        while "gathered" not in box:
            loop.run_forever()  # main() stops the loop once everything arrived
    finally:
        loop.close()
    assert pending_at_stops and pending_at_stops[0] > 0, pending_at_stops
    results = box["gathered"]
    assert len(results) == n and all(got is want for got, want in zip(results, values))
    check_loop_errors(errors)


CLOSED_PRELUDE = textwrap.dedent(
    """
    import asyncio, gc, sys, time
    import uvloop
    import pyo3_aio_tests as m

    runtime, loop_kind = sys.argv[1], sys.argv[2]
    new_loop = uvloop.new_event_loop if loop_kind == "uvloop" else asyncio.new_event_loop

    def settle():
        time.sleep(0.1)  # every Rust future has completed into its closed loop
        m.dropped()      # applies the releases PyO3 deferred on threads without the GIL
        gc.collect()
    """
)


def run_clean(code, *args):
    process = run_python(CLOSED_PRELUDE + textwrap.dedent(code), *args)
    assert process.returncode == 0, (process.returncode, process.stdout, process.stderr)
    for sign in ("Fatal Python error", "panicked", "Exception ignored"):
        assert sign not in process.stderr, process.stderr
    return process.stdout.strip().splitlines()


@pytest.mark.parametrize(
    "kind, wait_before_close",
    [
        pytest.param("runtime", 0.0, id="runtime-completes_after_close"),
        pytest.param("into_future", 0.0, id="into_future-after_close"),
        pytest.param("runtime", 0.05, id="runtime-completes_while_stopped_then_close"),
        pytest.param("eager", 0.0, id="eager-completes_after_close"),
        pytest.param("eager", 0.05, id="eager-completes_while_stopped_then_close"),
    ],
)
def test_objects_held_by_futures_completing_into_a_closed_loop_are_released(
    loop_kind, runtime, kind, wait_before_close
):
    """`wait_before_close`: the loop stopped (run_until_complete returned) and stays stopped
    that long before close, so the completions land in its queue while it is still open."""
    out = run_clean(
        """
        kind, wait_before_close = sys.argv[3], float(sys.argv[4])
        value = object()
        start_value = sys.getrefcount(value)
        loop = new_loop()

        async def start():
            if kind == "runtime":
                return [asyncio.ensure_future(m.sleep(runtime, 0.02, value)) for _ in range(20)]
            if kind == "eager":
                return [m.eager_sleep(runtime, 0.02, value) for _ in range(20)]
            # Rust calls into_future on the closed loop (RuntimeError: the coroutine holding
            # the value never runs, and warns so, as with asyncio.run_coroutine_threadsafe).
            return [asyncio.ensure_future(m.await_py_after(runtime, 0.02, lambda: asyncio.sleep(0, value)))
                    for _ in range(20)]

        tasks = loop.run_until_complete(start())
        time.sleep(wait_before_close)
        loop.close()
        del tasks
        settle()
        print(sys.getrefcount(value) - start_value)
        """,
        runtime, loop_kind, kind, str(wait_before_close),
    )
    assert out[-1] == "0", out


def test_cancelling_a_task_after_its_loop_closed_is_like_asyncio(loop_kind, runtime):
    """Task.cancel() after close: the Rust future's waiter raises what an asyncio future
    raises (RuntimeError: Event loop is closed), and the Rust future is dropped anyway."""
    out = run_clean(
        """
        loop = new_loop()

        async def start():
            plain = asyncio.ensure_future(asyncio.sleep(3600))
            rust = asyncio.ensure_future(m.never(runtime))
            await asyncio.sleep(0)
            return plain, rust

        before = m.dropped()
        plain, rust = loop.run_until_complete(start())
        loop.close()
        outcomes = []
        for task in (plain, rust):
            try:
                outcomes.append(repr(task.cancel()))
            except RuntimeError as error:
                outcomes.append(f"RuntimeError: {error}")
        deadline = time.monotonic() + 5
        while m.dropped() < before + 1 and time.monotonic() < deadline:
            time.sleep(0.001)
        print(outcomes[0])
        print(outcomes[1])
        print("dropped", m.dropped() - before)
        """,
        runtime, loop_kind,
    )
    assert out[-3] == out[-2], out  # the Rust side behaves as the plain asyncio future
    assert out[-1] == "dropped 1", out


def test_rust_dropping_its_future_of_a_python_task_after_the_loop_closed_is_harmless(loop_kind, runtime):
    out = run_clean(
        """
        loop = new_loop()
        m.storm_reset(20)
        argument = object()

        async def forever(argument=argument):
            await asyncio.sleep(3600)

        start_argument = sys.getrefcount(argument)

        async def start():
            # Rust races each Python task against a 20 ms timer, which fires after close
            # and drops the Rust future of the Python task.
            tasks = [asyncio.ensure_future(m.storm_await_py(runtime, i, forever, 20_000, i % 2 == 0))
                     for i in range(20)]
            await asyncio.sleep(0.002)
            return tasks

        tasks = loop.run_until_complete(start())
        loop.close()
        del tasks
        settle()
        print(m.storm_drops(), sys.getrefcount(argument) - start_argument)
        """,
        runtime, loop_kind,
    )
    assert out[-1] == "(0, 20, 0) 0", out
