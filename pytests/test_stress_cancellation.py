"""Cancellation storms, both ways, at random moments of each task's life (seeded).

Python cancels tasks awaiting Rust futures: every task ends with exactly one outcome (its
own value, or CancelledError), every Rust future is dropped exactly once (per-future drop
counts). Rust drops its futures of Python coroutines: every Python task ends cancelled or
done, none is left pending, every `finally` that started ran.

Sizes: `stress_size` (bounded by default, full with PYO3_AIO_STRESS=full)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

import pyo3_aio_tests as m
from harness import report, stress_size, wait_until

#: Tasks per batch: each batch mixes every moment of cancellation.
BATCH = 1000

#: The longest delay of a storm future on the runtime (microseconds).
MAX_DELAY_US = 300

#: When the task awaiting a Rust future is cancelled:
#: - before_first_step: right after `ensure_future`, before the task ever ran;
#: - while_pending: after its first step, while the Rust future is (likely) still running;
#: - racing_completion: from the done-callback of another task of the batch, chosen at
#:   random, so at a random moment relative to its own completion (often while its own
#:   result waits in the same drain of the loop's wake queue);
#: - completed_not_resumed: after the loop thread slept (blocking) long enough for the
#:   completion to land, before the loop could drain it and resume the task;
#: - after_done: once the task is done (cancel() must return False and change nothing);
#: - never.
MOMENTS = (
    "before_first_step",
    "while_pending",
    "racing_completion",
    "completed_not_resumed",
    "after_done",
    "never",
)


async def cancellation_storm(runtime, count, seed):
    rng = random.Random(seed)
    m.storm_reset(count)
    values = [("value", i) for i in range(count)]
    moments = {}
    outcomes = Counter()
    for start in range(0, count, BATCH):
        indices = range(start, min(start + BATCH, count))
        # Half the batches block the loop thread after the first step (for
        # completed_not_resumed); in the others completions flow in while tasks are
        # cancelled from done-callbacks (racing_completion).
        blocking = rng.random() < 0.5
        choices = MOMENTS if blocking else [x for x in MOMENTS if x != "completed_not_resumed"]
        tasks = {}
        for i in indices:
            moments[i] = rng.choice(choices)
        for i in indices:
            delay = rng.randrange(0, MAX_DELAY_US + 1)
            tasks[i] = asyncio.ensure_future(m.storm_value(runtime, i, delay, values[i]))
            if moments[i] == "before_first_step":
                tasks[i].cancel()
        for i in indices:
            if moments[i] == "racing_completion":
                partner = tasks[rng.choice(indices)]
                partner.add_done_callback(lambda _, task=tasks[i]: task.cancel())
        await asyncio.sleep(0)  # every task took its first step
        for i in indices:
            if moments[i] == "while_pending":
                tasks[i].cancel()
        if blocking:
            # Blocks the loop thread (the runtimes' timers tick in milliseconds):
            # completions land meanwhile and wait in the loop's queue.
            time.sleep(0.003)
            for i in indices:
                if moments[i] == "completed_not_resumed":
                    tasks[i].cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        for i in indices:
            task = tasks[i]
            assert task.done(), (i, moments[i])
            if moments[i] == "after_done":
                assert task.cancel() is False, i
            if task.cancelled():
                assert moments[i] not in ("after_done", "never"), (i, moments[i])
                outcomes[moments[i], "cancelled"] += 1
            else:
                assert moments[i] != "before_first_step", i
                assert task.result() is values[i], (i, moments[i], task.result())
                outcomes[moments[i], "result"] += 1
    # Every Rust future dropped, each exactly once, whichever side won its race.
    assert await wait_until(lambda: m.storm_drops()[0] == 0), m.storm_drops()
    assert m.storm_drops() == (0, count, 0)
    return {f"{moment}/{outcome}": n for (moment, outcome), n in sorted(outcomes.items())}


def test_a_cancellation_storm_gives_each_task_exactly_one_outcome(run, runtime, loop_kind):
    count = stress_size(5_000, 100_000)
    started = time.monotonic()
    outcomes = run(cancellation_storm, runtime, count, 7)
    assert sum(outcomes.values()) == count
    # The storm really mixed both outcomes (the draw is seeded, the races are not).
    assert sum(n for key, n in outcomes.items() if key.endswith("/cancelled")) > count // 10
    assert sum(n for key, n in outcomes.items() if key.endswith("/result")) > count // 10
    report(
        "test_a_cancellation_storm_gives_each_task_exactly_one_outcome",
        runtime=runtime,
        loop=loop_kind,
        tasks=count,
        outcomes=outcomes,
        seconds=round(time.monotonic() - started, 2),
    )


#: When the Rust side lets go of its future of a Python coroutine, or Python cancels the
#: task awaiting the Rust side:
#: - rust_timer: Rust races the Python task against a timer of random length and drops it
#:   when the timer wins;
#: - outer_before_first_step / outer_while_pending / outer_racing: Python cancels the task
#:   awaiting the Rust future (which drops its future of the Python task);
#: - never.
REVERSE_MOMENTS = (
    "rust_timer",
    "outer_before_first_step",
    "outer_while_pending",
    "outer_racing",
    "never",
)


async def reverse_storm(runtime, count, seed):
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    m.storm_reset(count)
    values = [("value", i) for i in range(count)]
    started, finished = set(), set()
    inner_tasks = []
    outcomes = Counter()

    def make_inner(i, delay):
        async def inner():
            started.add(i)
            inner_tasks.append(asyncio.current_task())
            try:
                await asyncio.sleep(delay)
                return values[i]
            finally:
                finished.add(i)

        return inner

    for start in range(0, count, BATCH):
        indices = range(start, min(start + BATCH, count))
        tasks, moments = {}, {}
        for i in indices:
            moment = moments[i] = rng.choice(REVERSE_MOMENTS)
            delay = rng.randrange(0, MAX_DELAY_US + 1) / 1e6
            micros = rng.randrange(0, MAX_DELAY_US + 1) if moment == "rust_timer" else None
            from_runtime = rng.random() < 0.5
            tasks[i] = asyncio.ensure_future(
                m.storm_await_py(runtime, i, make_inner(i, delay), micros, from_runtime)
            )
            if moment == "outer_before_first_step":
                tasks[i].cancel()
            elif moment == "outer_racing":
                loop.call_later(delay * rng.uniform(0.5, 1.5), tasks[i].cancel)
        await asyncio.sleep(0)
        for i in indices:
            if moments[i] == "outer_while_pending":
                tasks[i].cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        for i in indices:
            task = tasks[i]
            if task.cancelled():
                assert moments[i].startswith("outer_"), (i, moments[i])
                outcomes[moments[i], "cancelled"] += 1
            elif task.result()[0] == "dropped":
                assert moments[i] == "rust_timer", (i, moments[i])
                outcomes[moments[i], "dropped"] += 1
            else:
                assert task.result() == ("done", values[i]), (i, moments[i], task.result())
                assert task.result()[1] is values[i]
                outcomes[moments[i], "done"] += 1
    # No Python task is left pending: every one the Rust side dropped was cancelled.
    assert await wait_until(lambda: asyncio.all_tasks() == {main_task}), len(asyncio.all_tasks())
    assert all(task.done() for task in inner_tasks)
    # Every coroutine that started ran its finally block.
    assert started == finished, len(started - finished)
    assert await wait_until(lambda: m.storm_drops()[0] == 0), m.storm_drops()
    assert m.storm_drops() == (0, count, 0)
    figures = {f"{moment}/{outcome}": n for (moment, outcome), n in sorted(outcomes.items())}
    inner = Counter("cancelled" if task.cancelled() else "done" for task in inner_tasks)
    return figures, dict(inner), len(started)


def test_rust_dropping_its_futures_of_python_tasks_at_random_moments(run, runtime, loop_kind):
    count = stress_size(2_000, 100_000)
    started = time.monotonic()
    outcomes, inner, inner_started = run(reverse_storm, runtime, count, 11)
    assert sum(outcomes.values()) == count
    assert inner.get("cancelled", 0) > 0 and inner.get("done", 0) > 0, inner
    report(
        "test_rust_dropping_its_futures_of_python_tasks_at_random_moments",
        runtime=runtime,
        loop=loop_kind,
        tasks=count,
        outcomes=outcomes,
        python_tasks_started=inner_started,
        python_tasks=inner,
        seconds=round(time.monotonic() - started, 2),
    )
