"""Several event loops in several threads at once (asyncio's default loop and uvloop
mixed), each doing its own conversions both ways concurrently: every result is correct and
attributed to the loop (and thread) that asked for it."""

from __future__ import annotations

import asyncio
import threading
import time

import pyo3_aio_tests as m
from harness import report, run_on, stress_size

THREADS = 4
PER_KIND = 100  # conversions of each kind per round and thread


async def conversions(runtime, thread, rounds):
    loop = asyncio.get_running_loop()
    me = threading.get_ident()

    async def python_side(i):
        await asyncio.sleep(0)
        return (thread, i, asyncio.get_running_loop() is loop, threading.get_ident() == me)

    total = 0
    for _ in range(rounds):
        n = PER_KIND
        results = await asyncio.gather(
            *[m.sleep(runtime, 0.0001 * (i % 5), (thread, i)) for i in range(n)],
            *[m.hop(runtime, (thread, i)) for i in range(n)],
            # Rust awaits Python: into_future on the loop thread, from the runtime's thread
            # (the conversion's task locals) and from a spawned task inside `scope`.
            *[m.await_py(runtime, python_side(i)) for i in range(n)],
            *[m.await_py_after(runtime, 0.0002, lambda i=i: python_side(i)) for i in range(n)],
            *[m.await_py_in_scope(runtime, python_side(i)) for i in range(n // 10)],
            *[m.current_loop_after(runtime, 0.0005) for _ in range(n // 10)],
        )
        expected_values = [(thread, i) for i in range(n)]
        assert results[:n] == expected_values
        assert results[n:2 * n] == expected_values
        from_python = results[2 * n:4 * n + n // 10]
        assert from_python == [(thread, i, True, True) for i in range(n)] * 2 + [
            (thread, i, True, True) for i in range(n // 10)
        ]
        assert all(seen is loop for seen in results[4 * n + n // 10:])
        total += len(results)
    return total


def test_loops_in_several_threads_each_get_their_own_results(runtime):
    rounds = stress_size(20, 500)
    kinds = ["asyncio" if t % 2 == 0 else "uvloop" for t in range(THREADS)]
    barrier = threading.Barrier(THREADS)
    totals, errors = {}, {}

    def thread_main(t):
        try:
            barrier.wait()
            totals[t] = run_on(kinds[t], conversions, runtime, t, rounds)
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors[t] = error

    started = time.monotonic()
    threads = [threading.Thread(target=thread_main, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)  # a hang detector, not a speed limit
    assert not any(thread.is_alive() for thread in threads), "a loop thread hung"
    if errors:
        raise next(iter(errors.values()))
    assert sorted(totals) == list(range(THREADS))
    report(
        "test_loops_in_several_threads_each_get_their_own_results",
        runtime=runtime,
        threads=THREADS,
        loops=kinds,
        conversions=sum(totals.values()),
        seconds=round(time.monotonic() - started, 2),
    )
