"""Cancellation both ways: cancelling the Python side drops the Rust future promptly;
dropping the Rust future of `into_future` cancels the Python task; a cancellation racing
a completion resolves to exactly one outcome."""

from __future__ import annotations

import asyncio
import gc
import sys
import warnings

import pytest

import pyo3_aio_tests as m
import time

from harness import PATIENCE, loop_factory, wait_until


async def started_task(coroutine):
    """Wraps `coroutine` in a task and lets it run until it waits on the Rust future."""
    task = asyncio.ensure_future(coroutine)
    await asyncio.sleep(0)
    return task


def test_cancelling_the_awaiting_task_drops_the_rust_future(run, runtime):
    async def main():
        before = m.dropped()
        task = await started_task(m.never(runtime))
        assert m.dropped() == before  # pending, alive
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()
        assert await wait_until(lambda: m.dropped() >= before + 1)
        assert m.dropped() == before + 1

    run(main)


def test_the_cancel_message_arrives_as_with_a_python_awaitable(run, runtime):
    async def cancelled_args(awaitable):
        task = await started_task(awaitable)
        task.cancel("the reason")
        try:
            await task
        except asyncio.CancelledError as error:
            return error.args
        raise AssertionError("not cancelled")

    async def main():
        expected = await cancelled_args(asyncio.sleep(3600))
        assert await cancelled_args(m.never(runtime)) == expected

    run(main)


def test_cancelling_before_the_first_step_drops_the_future_without_warning(run, runtime):
    async def main():
        before = m.dropped()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            task = asyncio.ensure_future(m.never(runtime))
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            gc.collect()
        assert [str(w.message) for w in caught] == []
        assert await wait_until(lambda: m.dropped() >= before + 1)

    run(main)


def test_wait_for_timeout_drops_the_rust_future(run, runtime):
    async def main():
        before = m.dropped()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(m.never(runtime), timeout=0.01)
        assert await wait_until(lambda: m.dropped() >= before + 1)

    run(main)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is new in Python 3.11")
def test_asyncio_timeout_drops_the_rust_future(run, runtime):
    async def main():
        before = m.dropped()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await m.never(runtime)
        assert await wait_until(lambda: m.dropped() >= before + 1)

    run(main)


def test_cancelling_gather_drops_every_child(run, runtime):
    async def main():
        before = m.dropped()
        gathered = asyncio.gather(*[m.never(runtime) for _ in range(50)])
        await asyncio.sleep(0)
        gathered.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gathered
        assert await wait_until(lambda: m.dropped() >= before + 50)
        assert m.dropped() == before + 50

    run(main)


def test_a_storm_of_10000_cancellations_drops_every_rust_future(run, runtime):
    count = 10_000

    async def main():
        before = m.dropped()
        tasks = [asyncio.ensure_future(m.never(runtime)) for _ in range(count)]
        await asyncio.sleep(0)  # every task now waits on its Rust future
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes)
        assert await wait_until(lambda: m.dropped() >= before + count)
        assert m.dropped() == before + count

    run(main)


def test_cancellation_racing_completion_resolves_to_exactly_one_outcome(run, runtime):
    count = 400

    async def main():
        before = m.dropped()
        tasks = [asyncio.ensure_future(m.sleep_counted(runtime, 0.0002 * (i % 5), i))
                 for i in range(count)]
        # Cancel at different moments: some before they start, some while pending, some
        # when the result is already on its way.
        for i, task in enumerate(tasks):
            if i % 4 == 0:
                await asyncio.sleep(0)
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        for i, (task, outcome) in enumerate(zip(tasks, outcomes)):
            assert task.done()
            if task.cancelled():
                assert isinstance(outcome, asyncio.CancelledError)
            else:
                assert outcome == i
        # Every Rust future was dropped exactly once, whichever side won.
        assert await wait_until(lambda: m.dropped() >= before + count)
        assert m.dropped() == before + count

    run(main)


def test_a_chain_python_rust_python_rust_is_cancelled_to_the_end(run, runtime):
    async def main():
        before = m.dropped()
        inner_cancelled = asyncio.Event()

        async def python_middle():
            try:
                await m.never(runtime)
            except asyncio.CancelledError:
                inner_cancelled.set()
                raise

        task = asyncio.ensure_future(m.await_py(runtime, python_middle()))
        await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await wait_until(inner_cancelled.is_set)
        assert await wait_until(lambda: m.dropped() >= before + 1)

    run(main)


@pytest.mark.parametrize("where", ["loop_thread", "runtime_thread"])
def test_cancelling_rust_that_awaits_python_cancels_the_python_task(run, runtime, where):
    async def main():
        started = asyncio.Event()
        finished = []

        async def sleeper():
            started.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                finished.append("cancelled")
                raise
            finished.append("completed")

        if where == "loop_thread":
            awaiting = m.await_py(runtime, sleeper())
        else:
            awaiting = m.await_py_after(runtime, 0.001, sleeper)
        task = asyncio.ensure_future(awaiting)
        assert await wait_until(started.is_set)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await wait_until(lambda: finished == ["cancelled"])

    run(main)


def test_dropping_the_rust_future_of_into_future_cancels_the_python_task(run, runtime):
    async def main():
        finished = []

        async def sleeper():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                finished.append("cancelled")
                raise

        # The Rust side races the Python task against a short timer and drops it.
        assert await m.await_py_with_timeout(runtime, 0.005, sleeper()) == ("timeout", None)
        assert await wait_until(lambda: finished == ["cancelled"])

    run(main)


def test_a_python_task_that_wins_the_race_is_not_cancelled(run, runtime):
    async def main():
        async def quick():
            await asyncio.sleep(0)
            return "quick"

        assert await m.await_py_with_timeout(runtime, 3600, quick()) == ("done", "quick")

    run(main)


def test_a_burst_of_cancellations_reaches_the_runtime_in_the_loops_next_round(run, runtime):
    async def main():
        before = m.dropped()
        tasks = [asyncio.ensure_future(m.never(runtime)) for _ in range(100)]
        await asyncio.sleep(0)  # each one is pending on the runtime now
        for task in tasks:
            assert task.cancel()
        # Not yet passed on: the loop thread finishes its burst first.
        told_at_once = m.dropped() - before
        await asyncio.sleep(0)
        assert await wait_until(lambda: m.dropped() - before == 100)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return told_at_once, results

    told_at_once, results = run(main)
    assert told_at_once == 0
    assert all(isinstance(r, asyncio.CancelledError) for r in results)


def test_cancellations_left_for_a_loop_that_closes_first_still_drop_the_futures(
    loop_kind, runtime
):
    loop = loop_factory(loop_kind)()
    before = m.dropped()

    async def main():
        tasks = [asyncio.ensure_future(m.never(runtime)) for _ in range(20)]
        await asyncio.sleep(0)
        for task in tasks:
            task.cancel()
        return tasks  # the loop stops before its next round

    tasks = loop.run_until_complete(main())
    loop.close()
    deadline = time.monotonic() + PATIENCE
    while m.dropped() - before < 20 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert m.dropped() - before == 20
    del tasks
