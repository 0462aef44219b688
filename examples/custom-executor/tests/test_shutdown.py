"""Shutting minipool down while conversions are pending, on asyncio's default loop and
uvloop: a clear error naming the executor, never a hang."""

from __future__ import annotations

import asyncio

import pytest

from custom_executor_example import DropProbe, Executor, RustPanic
from harness import (
    DROPPED,
    PATIENCE,
    REFUSED,
    double_later,
    sleep_forever,
    wait_until,
)


def test_shutdown_ends_pending_conversions_with_an_error_naming_the_executor(run, executor):
    probe = DropProbe()
    events = []

    async def main():
        tasks = [
            asyncio.ensure_future(executor.pending_forever(probe)),
            asyncio.ensure_future(executor.sleep(3600)),
            # The delay makes its first poll wait on minipool's timer, so it lives on the
            # executor (a Rust future that awaits Python at once lives on the loop thread).
            asyncio.ensure_future(executor.await_python(sleep_forever(events), delay=0.001)),
        ]
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in tasks)
        report = executor.shutdown()
        # Bounded: a conversion that never ends fails here instead of hanging.
        outcomes = await asyncio.wait_for(
            asyncio.gather(*tasks, return_exceptions=True), PATIENCE
        )
        dropped = await wait_until(lambda: probe.dropped)
        cancelled = await wait_until(lambda: events == ["cancelled"])
        return report, outcomes, dropped, cancelled

    report, outcomes, dropped, cancelled = run(main)
    assert report == {"dropped": 3, "busy_workers": 0}
    for outcome in outcomes:
        assert isinstance(outcome, RuntimeError)
        assert str(outcome).startswith(DROPPED)
    assert dropped, "the Rust future was never dropped"
    assert cancelled, "the Python task awaited from Rust was never cancelled"


def test_shutdown_in_the_middle_of_a_burst_ends_every_conversion(run, executor):
    async def main():
        # Half end around the shutdown, half would never end.
        seconds = [3600 if i % 2 else 0.0005 * (i % 20) for i in range(500)]
        tasks = [asyncio.ensure_future(executor.sleep(s, i)) for i, s in enumerate(seconds)]
        await asyncio.sleep(0.005)
        executor.shutdown()
        return await asyncio.wait_for(
            asyncio.gather(*tasks, return_exceptions=True), PATIENCE
        )

    outcomes = run(main)
    for i, outcome in enumerate(outcomes):
        if isinstance(outcome, RuntimeError):
            assert str(outcome).startswith(DROPPED)
        else:
            assert outcome == i
    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes[1::2])


def test_a_future_living_on_the_loop_thread_needs_no_executor(run, executor):
    async def main():
        # Its first poll is left pending by the Python coroutine it awaits, so the bridge
        # keeps it on the loop thread (`Home::Auto`): the executor's shutdown leaves it be.
        task = asyncio.ensure_future(executor.await_python(double_later(21)))
        await asyncio.sleep(0)
        report = executor.shutdown()
        return report, await asyncio.wait_for(task, PATIENCE)

    assert run(main) == ({"dropped": 0, "busy_workers": 0}, 42)


def test_a_stream_pending_at_shutdown_ends_with_an_error_naming_the_executor(run, executor):
    async def main():
        numbers = executor.count(10, 3600)
        step = asyncio.ensure_future(numbers.__anext__())
        await asyncio.sleep(0.05)
        executor.shutdown()
        with pytest.raises(RuntimeError, match="minipool"):
            await asyncio.wait_for(step, PATIENCE)

    run(main)


def test_new_conversions_are_refused_after_shutdown(run, executor):
    executor.shutdown()

    async def main():
        with pytest.raises(RuntimeError, match=f"^{REFUSED}$"):
            await executor.thread_name()
        with pytest.raises(RuntimeError, match=f"^{REFUSED}$"):
            executor.count(3, 0.001)
        # A sleep is polled once inline before it reaches the executor: it finds the timer
        # gone and says so, rather than waiting for a wake-up that cannot come.
        with pytest.raises(RustPanic, match="after the minipool executor shut down"):
            await executor.sleep(1)
        # A future that is ready at its first poll never needs the executor.
        return await executor.sleep(0, "inline")

    assert run(main) == "inline"


def test_shutdown_twice_does_nothing_the_second_time(executor):
    assert executor.shutdown() == {"dropped": 0, "busy_workers": 0}
    assert executor.shutdown() == {"dropped": 0, "busy_workers": 0}


def test_executors_are_independent(run, executor):
    other = Executor(workers=1)
    other.shutdown()

    async def main():
        with pytest.raises(RuntimeError, match=f"^{REFUSED}$"):
            await other.thread_name()
        return await executor.sleep(0.001, "still running")

    assert run(main) == "still running"
