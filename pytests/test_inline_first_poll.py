"""Where a converted future runs: it is polled once inline on the loop thread when first
awaited (inside the runtime's context); a ready future costs no spawn; a pending one goes
to the runtime's spawner, or stays on the loop thread when asked; the inline poll can be
turned off per call."""

from __future__ import annotations

import asyncio
import threading

import pyo3_aio_tests as m


def test_a_ready_future_awaited_100000_times_never_spawns(run_anywhere, runtime):
    async def main():
        before = m.spawns()
        total = 0
        for i in range(100_000):
            total += await m.counted_ready(runtime, i)
        return total, m.spawns() - before

    total, spawned = run_anywhere(main)
    assert total == sum(range(100_000))
    assert spawned == 0


def test_a_pending_future_is_spawned_exactly_once(run, runtime):
    async def main():
        before = m.spawns()
        results = await asyncio.gather(*[m.counted_sleep(runtime, 0.001, i) for i in range(100)])
        return results, m.spawns() - before

    results, spawned = run(main)
    assert results == list(range(100))
    assert spawned == 100


def test_the_first_poll_is_inline_and_a_pending_future_moves_to_the_runtime(run, runtime):
    """On tokio this also shows the inline poll runs inside the runtime's context: the
    future creates its tokio timer during that poll, which panics outside a runtime."""

    async def main():
        return await m.where_polled(runtime, 0.001), threading.get_ident()

    (first, after), loop_thread = run(main)
    assert first == loop_thread
    assert after != loop_thread


def test_a_deferred_first_poll_never_runs_on_the_loop_thread(run, runtime):
    async def main():
        return (
            await m.where_polled(runtime, 0.001, first_poll="deferred"),
            await m.where_polled(runtime, 0, first_poll="deferred"),  # ready at once
            threading.get_ident(),
        )

    (first, after), (ready_first, _), loop_thread = run(main)
    assert first != loop_thread
    assert after != loop_thread
    assert ready_first != loop_thread


def test_a_future_homed_on_the_loop_thread_stays_there(run, runtime):
    async def main():
        return (
            await m.where_polled(runtime, 0.001, home="loop"),
            await m.where_polled(runtime, 0.001, home="loop", first_poll="deferred"),
            threading.get_ident(),
        )

    inline, deferred, loop_thread = run(main)
    assert inline == (loop_thread, loop_thread)
    assert deferred == (loop_thread, loop_thread)
