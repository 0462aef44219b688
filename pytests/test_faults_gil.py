"""Rust completions while the loop thread cannot take them: it is inside a Rust function
that released the GIL (`py.detach`), or it is blocked waiting for the GIL that another
Python thread holds inside Rust code. The completions (which never need the GIL) land
meanwhile, and none is lost: every result arrives once the loop thread is back.
(The loop thread holding the GIL itself: test_completion_path.py.)"""

from __future__ import annotations

import asyncio
import threading

import pyo3_aio_tests as m
from harness import PATIENCE, report, stress_size


def start_tracked(runtime, count, values):
    m.storm_reset(count)
    # 20-30 ms: a loaded machine or uvloop (which runs I/O callbacks before a task that
    # slept(0)) can deliver a 1 ms completion before the test looks. The tests check the
    # tasks still pending when the loop thread gives up the GIL.
    return [asyncio.ensure_future(m.storm_value(runtime, i, 20_000 + 1000 * (i % 10), values[i]))
            for i in range(count)]


def test_completions_land_while_the_loop_thread_is_inside_detach(run, runtime, loop_kind):
    count = stress_size(200, 10_000)
    values = [("value", i) for i in range(count)]

    async def main():
        base = m.tracked_drops()
        tasks = start_tracked(runtime, count, values)
        await asyncio.sleep(0)  # pending on the runtime now
        pending = [task for task in tasks if not task.done()]
        assert len(pending) > count // 2
        # The loop thread sits in Rust with the GIL released until every future has
        # finished on the runtime (then 50 ms more for their completions to be queued).
        assert m.detach_until_dropped(base + count, PATIENCE, 0.05)
        assert not any(task.done() for task in pending)
        return await asyncio.gather(*tasks)

    results = run(main)
    assert len(results) == count and all(got is want for got, want in zip(results, values))
    report("test_completions_land_while_the_loop_thread_is_inside_detach",
           runtime=runtime, loop=loop_kind, completions=count)


def test_a_completion_during_a_fixed_50ms_detach_is_delivered(run, runtime):
    async def main():
        task = asyncio.ensure_future(m.sleep(runtime, 0.005, "value"))
        await asyncio.sleep(0)
        m.detach_for(0.05)  # the completion lands in the middle of this
        return await task

    assert run(main) == "value"


def test_completions_land_while_the_loop_thread_waits_for_the_gil(run, runtime, loop_kind):
    count = stress_size(200, 10_000)
    values = [("value", i) for i in range(count)]

    async def main():
        base, holds = m.tracked_drops(), m.holds()
        tasks = start_tracked(runtime, count, values)
        await asyncio.sleep(0)
        pending = [task for task in tasks if not task.done()]
        assert len(pending) > count // 2
        outcome = []
        # Another Python thread enters Rust and keeps the GIL until every future has
        # finished on the runtime, then 50 ms more.
        holder = threading.Thread(
            target=lambda: outcome.append(m.hold_gil_until_dropped(base + count, PATIENCE, 0.05)))
        holder.start()
        # The loop thread runs Python bytecode until the holder is done: it is forced to
        # hand over the GIL at the switch interval, then blocks waiting to get it back.
        while m.holds() == holds:
            pass
        holder.join()
        assert outcome == [True]
        assert not any(task.done() for task in pending)
        return await asyncio.gather(*tasks)

    results = run(main)
    assert len(results) == count and all(got is want for got, want in zip(results, values))
    report("test_completions_land_while_the_loop_thread_waits_for_the_gil",
           runtime=runtime, loop=loop_kind, completions=count)


def test_rust_awaiting_python_while_the_loop_thread_is_inside_detach(run, runtime):
    """The reverse direction: Rust (on the runtime) calls into_future while the loop
    thread sits in `py.detach`; the Python coroutine runs once the loop is back."""
    count = 50

    async def main():
        async def python_side(i):
            return i

        tasks = [asyncio.ensure_future(m.await_py_after(runtime, 0.002, lambda i=i: python_side(i)))
                 for i in range(count)]
        await asyncio.sleep(0)
        m.detach_for(0.05)
        return await asyncio.gather(*tasks)

    assert run(main) == list(range(count))
