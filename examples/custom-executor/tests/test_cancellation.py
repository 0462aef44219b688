"""Cancellation both ways, on asyncio's default loop and uvloop: cancelling the Python task
drops the Rust future; dropping the Rust future of `into_future` cancels the Python task."""

from __future__ import annotations

import asyncio

import pytest

from custom_executor_example import DropProbe
from harness import PATIENCE, double_later, sleep_forever, wait_until


@pytest.mark.parametrize("made_in", ["python", "rust"])
def test_a_cancelled_awaitable_is_finalized_before_its_task_is_done(run, executor, made_in):
    """A Rust future's destructor is its `finally`: cancelling the Task that awaits it has
    dropped it by the time the Task is done, as a native coroutine's `finally` has run."""

    async def native_pending_forever(finalized):
        try:
            await asyncio.Event().wait()
        finally:
            finalized.append(True)

    async def main():
        if made_in == "python":
            finalized = []
            awaitable = native_pending_forever(finalized)
        else:
            probe = DropProbe()
            awaitable = executor.pending_forever(probe)
        task = asyncio.ensure_future(awaitable)
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return bool(finalized) if made_in == "python" else probe.dropped

    assert run(main)


def test_wait_for_drops_the_rust_future_on_timeout(run, executor):
    probe = DropProbe()

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(executor.pending_forever(probe), 0.01)
        return await wait_until(lambda: probe.dropped)

    assert run(main)


def test_dropping_the_rust_future_cancels_the_python_task(run, executor):
    events = []

    async def main():
        with pytest.raises(TimeoutError, match="the Python task was cancelled"):
            await executor.wait_for(sleep_forever(events), 0.02)
        return await wait_until(lambda: events == ["cancelled"])

    assert run(main)


def test_a_python_task_that_finishes_in_time_is_not_cancelled(run, executor):
    assert run(lambda: executor.wait_for(double_later(2), PATIENCE)) == 4
