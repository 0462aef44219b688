"""Races the bridge must win, run on purpose: each test steps a race by hand (a future
woken from a thread of its own in the middle of a drain, a stream closing its own iterator
during a poll, a runtime-side poll or destructor that waits for the test) so that it takes
the losing order every time. Each one fails, every run, against a bridge that has the bug
it names; `docs/RELIABILITY.md` lists the planted bugs and which test catches each.

The helpers are in `src/mutants.rs`."""

from __future__ import annotations

import asyncio

import pytest

import pyo3_aio_tests as m
from harness import run_python, wait_until

#: Loop iterations after which anything the loop was already signalled about has run: a
#: wake-up written to the loop's eventfd before the test looks is read by the next select.
SETTLE = 10


async def settle():
    for _ in range(SETTLE):
        await asyncio.sleep(0)


# ---------------------------------------------------------------------------------------
# The loop's wake-up


def test_a_wake_up_from_another_thread_during_a_drain_is_not_lost(run, runtime, patience):
    """A future woken from another thread while the loop drains its queue (here: by the
    Task the drain is resuming) signals the loop again, and that signal must survive the
    drain: the reader clears its eventfd before draining, not after."""

    async def main():
        first, second = m.Gate(), m.Gate()

        async def opens_the_second():
            await first.wait(runtime, "loop")
            # Runs inside the drain that resumed this Task.
            second.open_from_thread()

        a = asyncio.ensure_future(opens_the_second())
        b = asyncio.ensure_future(second.wait(runtime, "loop"))
        await asyncio.sleep(0)
        first.open_from_thread()
        assert await wait_until(a.done, patience)
        await a
        assert await wait_until(b.done, patience), "the second wake-up was lost"
        await b

    run(main)


# ---------------------------------------------------------------------------------------
# Rust streams closed from Python


def test_aclose_wakes_a_pump_parked_on_a_full_buffer(run, patience):
    """The pump waits for room with its waker in the channel; `aclose()` must wake it so it
    ends (and drops the stream) instead of staying parked for good."""

    async def main():
        stream, control = m.controlled_stream(capacity=2)
        assert await wait_until(lambda: control.produced() >= 2 and control.pump_parked(), patience)
        await stream.aclose()
        assert await wait_until(control.pump_ended, patience), "the pump was not woken by aclose"
        assert control.dropped()

    run(main)


@pytest.mark.parametrize("inline", [True, False], ids=["polled-inline", "pump-only"])
@pytest.mark.parametrize("close_at", [0, 3])
def test_an_item_yielded_while_the_consumer_closes_is_not_delivered(run, inline, close_at, patience):
    """The stream yields an item during the very poll in which its consumer closes it
    (`aclose()` from inside the poll): the item is dropped, never delivered after
    `aclose()`."""

    async def main():
        stream, control = m.controlled_stream(10, close_at=close_at, inline=inline, hold_pump=True)
        control.start()
        items = [item async for item in stream]
        assert close_at not in items
        assert items == list(range(len(items)))
        assert await wait_until(control.dropped, patience)
        assert await wait_until(control.pump_ended, patience)

    run(main)


def test_closing_during_a_pending_poll_still_drops_the_stream(run, patience):
    """A consumer closing a Send stream while the pump polls it, the poll returning
    Pending: the pump sees `closed` when it comes back and ends, dropping the stream (it
    used to park for good, the stream kept until the iterator was collected)."""
    async def main():
        stream, control = m.controlled_stream(close_at=0, stall_at=0, inline=False, hold_pump=True)
        control.start()
        assert await wait_until(lambda: control.polls() >= 1, patience)
        assert await wait_until(control.dropped, patience), "the stream outlived aclose()"
        assert await wait_until(control.pump_ended, patience)
        del stream

    run(main)


# ---------------------------------------------------------------------------------------
# Python async iterators consumed from Rust


@pytest.mark.parametrize("capacity", [1, 4])
def test_a_python_iterator_runs_at_most_capacity_items_ahead_of_rust(run, runtime, capacity):
    """The Python pump stops pulling once the buffer is full. The iterator gives the loop a
    turn between items, so a pump that never stopped would show here as a count, not as a
    process that fills memory until its ceiling."""
    pulled = []
    ahead = []

    async def numbers():
        i = 0
        while True:
            pulled.append(i)
            await asyncio.sleep(0)
            yield i
            i += 1

    async def hold(item):
        # Rust pulls nothing while it awaits this; the pump gets a turn in each iteration.
        for _ in range(10 * capacity + 10):
            await asyncio.sleep(0)
        ahead.append(len(pulled))

    async def main():
        return await m.consume(runtime, numbers(), capacity=capacity, limit=1, after_each=hold)

    assert run(main) == [0]
    # The item Rust holds, a full buffer, and the one the pump is pushing.
    assert ahead[0] <= capacity + 2, f"the iterator ran {ahead[0] - 1} items ahead"


# ---------------------------------------------------------------------------------------
# into_future


def test_a_rust_side_drop_while_the_task_is_being_created_cancels_the_task(run, patience):
    """into_future from another thread: the loop creates the task later. The Rust future
    is dropped while the loop is inside `create_task` (here: by a task factory); the task
    must still be cancelled."""

    async def main():
        loop = asyncio.get_running_loop()
        made = []
        finished = asyncio.Event()

        async def forever():
            try:
                await finished.wait()
            finally:
                finished.set()

        held = m.into_future_from_thread(forever())
        original = loop.get_task_factory()

        def factory(loop, coro, **kwargs):
            assert held.drop_future()
            task = asyncio.Task(coro, loop=loop, **kwargs)
            made.append(task)
            return task

        loop.set_task_factory(factory)
        try:
            assert await wait_until(lambda: made, patience)
        finally:
            loop.set_task_factory(original)
        assert await wait_until(made[0].done, patience), "the task was not cancelled"
        assert made[0].cancelled()

    run(main)


# ---------------------------------------------------------------------------------------
# Runtime-side futures: dropped before anyone sees their end


def test_a_runtime_future_is_dropped_before_python_sees_its_result(run, patience):
    """The future's destructor waits for the test: until it has run, the awaiting Task must
    not have the result (the future's resources are released first)."""

    async def main():
        latch = m.Latch(block="drop")
        task = asyncio.ensure_future(latch.future("value"))
        try:
            assert await wait_until(lambda: latch.dropping() or task.done(), patience)
            await settle()
            seen_before_the_drop = task.done()
        finally:
            latch.release()
        assert not seen_before_the_drop, "the Task saw the result while the future was alive"
        assert await task == "value"
        assert latch.dropped()

    run(main)


def test_a_cancel_while_the_runtime_polls_completes_once_the_poll_ends(run, patience):
    """Cancelled while a runtime thread is inside its poll, the future cannot be dropped
    at once: the Task's cancellation waits, and must complete once that thread drops it."""

    async def main():
        latch = m.Latch(block="poll")
        task = asyncio.ensure_future(latch.future())
        try:
            assert await wait_until(latch.polling, patience)
            task.cancel()
            await settle()
            assert not task.done(), "the cancellation was seen while the future was alive"
            assert not latch.dropped()
        finally:
            latch.release()
        assert await wait_until(task.done, patience), "the cancellation never completed"
        assert task.cancelled()
        assert latch.dropped()

    run(main)


def test_a_cancel_whose_future_goes_while_it_is_being_stopped_completes(run, patience):
    """The runtime thread drops the cancelled future after the loop thread found it busy
    and before it asked to be told when it is gone: the loop thread must see it gone."""

    async def main():
        latch = m.Latch(block="poll", release_on_wake=True)
        task = asyncio.ensure_future(latch.future())
        try:
            assert await wait_until(latch.polling, patience)
            task.cancel()
            assert await wait_until(task.done, patience), "the cancellation never completed"
        finally:
            latch.release()
        assert task.cancelled()
        assert latch.finished()
        assert latch.dropped()

    run(main)


# ---------------------------------------------------------------------------------------
# Interpreter exit

AFTER_EXIT = """
import asyncio
import pyo3_aio_tests as m

async def start():
    task = asyncio.ensure_future(m.poll_after_exit())
    m.keep_forever(task)
    for _ in range(5000):
        if m.after_exit_parked():
            return True
        await asyncio.sleep(0.001)
    return False

print(asyncio.new_event_loop().run_until_complete(start()))
# The interpreter exits with the future parked on tokio; once it has finalized, a C atexit
# handler wakes the future and waits for the runtime thread to be done with it.
"""


def test_a_future_woken_after_the_interpreter_finalized_is_dropped_unpolled():
    """A poll then could call into Python, which PyO3 refuses (a panic) or worse: the
    runtime thread must see the interpreter gone and drop the future instead."""
    done = run_python(AFTER_EXIT)
    assert done.stdout.split() == ["True"], done.stderr
    assert "panicked" not in done.stderr, done.stderr
    assert "never got through" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
