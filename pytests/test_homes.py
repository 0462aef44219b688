"""Where a pending Rust future lives with the default options (`Home::Auto`): the inline
first poll decides. A future it leaves waiting on Python work of its own loop stays on the
loop thread, so each round trip to Python is a call on that thread; any other pending
future goes to the runtime. The wake-up of a Python task's result reaches a future on the
loop thread in the same loop iteration as it would reach an awaiting Python task."""

from __future__ import annotations

import asyncio
import threading

import pyo3_aio_tests as m
from harness import PATIENCE


async def answer():
    return 42


async def answer_later():
    await asyncio.sleep(0)
    return 42


def test_a_future_waiting_on_python_stays_on_the_loop_thread(run, runtime):
    async def main():
        polled = await m.where_polled_after_python(runtime, answer_later, 0.001)
        return polled, threading.get_ident()

    (first, after_python, after_sleep, value), loop_thread = run(main)
    assert value == 42
    # Decided once, by the first poll: even the later timer wait is served on the loop thread.
    assert first == after_python == after_sleep == loop_thread


def test_a_future_waiting_on_rust_goes_to_the_runtime(run, runtime):
    async def main():
        return await m.where_polled(runtime, 0.001, home="auto"), threading.get_ident()

    (first, after), loop_thread = run(main)
    assert first == loop_thread
    assert after != loop_thread


def test_home_runtime_sends_a_future_waiting_on_python_to_the_runtime(run, runtime):
    async def main():
        polled = await m.where_polled_after_python(runtime, answer_later, 0.001, home="runtime")
        return polled, threading.get_ident()

    (first, after_python, after_sleep, value), loop_thread = run(main)
    assert value == 42
    assert first == loop_thread
    assert after_python != loop_thread
    assert after_sleep != loop_thread


def test_auto_with_a_deferred_first_poll_goes_to_the_runtime(run, runtime):
    async def main():
        polled = await m.where_polled_after_python(
            runtime, answer, 0.001, home="auto", first_poll="deferred"
        )
        return polled, threading.get_ident()

    (first, after_python, after_sleep, value), loop_thread = run(main)
    assert value == 42
    assert loop_thread not in (first, after_python, after_sleep)


def test_a_wake_before_the_future_settles_on_the_loop_thread_is_kept(run, runtime):
    # The future wakes itself during its first poll, before it is known to stay on the
    # loop thread: that wake must be passed on, or the future would never be polled again.
    async def main():
        return await asyncio.wait_for(m.python_and_self_wake(runtime, answer_later), PATIENCE)

    assert run(main) == 42


def ticking(loop: asyncio.AbstractEventLoop) -> list:
    """Counts loop iterations: a callback that schedules itself again runs once in each."""
    ticks = [0]

    def tick():
        ticks[0] += 1
        if ticks[0] > 0:
            loop.call_soon(tick)

    loop.call_soon(tick)
    return ticks


def stop_ticking(ticks: list) -> int:
    count = ticks[0]
    ticks[0] = -(10**9)  # the next tick does not reschedule
    return count


def test_a_round_trip_to_python_costs_no_more_loop_iterations_than_asyncio(run, runtime):
    rounds = 200

    async def main():
        loop = asyncio.get_running_loop()
        ticks = ticking(loop)
        for _ in range(rounds):
            await loop.create_task(answer())
        python = stop_ticking(ticks)
        ticks = ticking(loop)
        results = await m.await_many(runtime, answer, rounds)
        rust = stop_ticking(ticks)
        return python, rust, results

    python, rust, results = run(main)
    assert results == [42] * rounds
    # asyncio: the task's step, then the awaiting task's wake-up: 2 iterations a round trip.
    assert python >= 2 * rounds
    assert rust <= python, (rust, python)


def test_a_send_stream_with_ready_items_is_polled_on_the_loop_thread(run):
    # The stream's runtime never runs its pump: every item comes from __anext__'s own polls.
    async def main():
        async def drain():
            return [item async for item in m.parked_stream(1000)]

        # Without the loop thread's own polls nothing would ever come: fail, not hang.
        return await asyncio.wait_for(drain(), PATIENCE)

    try:
        assert run(main) == list(range(1000))
    finally:
        assert m.release_parked() >= 1


def test_a_send_stream_is_polled_on_the_loop_thread_and_the_runtime(run, runtime):
    async def main():
        return [t async for t in m.where_stream_polled(runtime, 500)], threading.get_ident()

    threads, loop_thread = run(main)
    assert len(threads) == 500
    assert loop_thread in threads


def test_inline_false_keeps_a_send_stream_on_the_runtime(run, runtime):
    async def main():
        return [t async for t in m.where_stream_polled(runtime, 300, inline=False)], \
            threading.get_ident()

    threads, loop_thread = run(main)
    assert len(threads) == 300
    assert loop_thread not in threads


def test_a_stream_that_waits_now_and_then_loses_and_repeats_nothing(run, runtime):
    # Pending every 7th poll: waits go through the runtime's pump, ready runs are polled on
    # the loop thread; both fill one buffer.
    async def main():
        return [t async for t in m.where_stream_polled(runtime, 2000, pending_every=7)]

    assert len(run(main)) == 2000
