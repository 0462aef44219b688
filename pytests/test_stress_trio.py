"""The storms and faults of test_stress_cancellation.py and test_faults_gil.py that speak
asyncio's Task API, under trio: cancel scopes instead of `Task.cancel`, a nursery instead
of `gather`, the run's thread instead of the loop's.

Python cancels tasks awaiting Rust futures at random moments (seeded): every task ends
with exactly one outcome (its value, or its scope's cancellation), every Rust future is
dropped exactly once. Rust drops its futures of trio coroutines: every coroutine that
started runs its `finally`. Completions that land while the run's thread sits in Rust
with the GIL released are all delivered once it is back.

Sizes: `stress_size` (bounded by default, full with PYO3_AIO_STRESS=full)."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest

trio = pytest.importorskip("trio")
import trio.testing  # noqa: E402

import pyo3_aio_tests as m  # noqa: E402
from harness import PATIENCE, report, stress_size  # noqa: E402

BATCH = 1000

#: The longest delay of a storm future (microseconds). Longer than asyncio's storm (300):
#: trio's tasks of a batch take their first steps over several scheduler rounds, between
#: which the run drains completions, so shorter futures are mostly done before the
#: while-pending cancels.
MAX_DELAY_US = 20_000

#: When the scope around a task's await of a Rust future is cancelled (as in
#: test_stress_cancellation.py): before the task first runs; while the future is (likely)
#: pending; when another task of the batch, chosen at random, gets its result; after the
#: run's thread slept (blocking) long enough for the completion to land, before the drain
#: could resume the task; after the task is done; never.
MOMENTS = (
    "before_first_step",
    "while_pending",
    "racing_completion",
    "completed_not_resumed",
    "after_done",
    "never",
)


async def wait_until(condition):
    with trio.fail_after(PATIENCE):
        while not condition():
            await trio.sleep(0.001)


async def until_each_took_its_first_step(stepped, count):
    """Checkpoints until `count` tasks counted themselves in `stepped` (each just before its
    await, so each has suspended or finished by then)."""
    with trio.fail_after(PATIENCE):
        while stepped[0] < count:
            await trio.sleep(0)


async def cancellation_storm(runtime, count, seed):
    rng = random.Random(seed)
    m.storm_reset(count)
    values = [("value", i) for i in range(count)]
    outcomes = Counter()
    for start in range(0, count, BATCH):
        indices = range(start, min(start + BATCH, count))
        blocking = rng.random() < 0.5
        choices = MOMENTS if blocking else [x for x in MOMENTS if x != "completed_not_resumed"]
        moments = {i: rng.choice(choices) for i in indices}
        scopes = {i: trio.CancelScope() for i in indices}
        partners = {}
        for i in indices:
            if moments[i] == "racing_completion":
                partners.setdefault(rng.choice(indices), []).append(i)
        results = {}
        stepped = [0]

        async def one(i, delay):
            with scopes[i]:
                stepped[0] += 1
                results[i] = await m.storm_value(runtime, i, delay, values[i])
            for partner in partners.get(i, ()):
                scopes[partner].cancel()

        async with trio.open_nursery() as nursery:
            for i in indices:
                if moments[i] == "before_first_step":
                    scopes[i].cancel()
                nursery.start_soon(one, i, rng.randrange(0, MAX_DELAY_US + 1))
            await until_each_took_its_first_step(stepped, len(indices))
            for i in indices:
                if moments[i] == "while_pending":
                    scopes[i].cancel()
            if blocking:
                # Blocks the run's thread: completions land meanwhile and wait in the queue.
                time.sleep(0.003)
                for i in indices:
                    if moments[i] == "completed_not_resumed":
                        scopes[i].cancel()
        for i in indices:
            if moments[i] == "after_done":
                scopes[i].cancel()
            if scopes[i].cancelled_caught:
                assert i not in results, (i, moments[i])
                assert moments[i] not in ("after_done", "never"), (i, moments[i])
                outcomes[moments[i], "cancelled"] += 1
            else:
                # A ready await is no checkpoint, and an abort that finds the result
                # arrived delivers it: a cancelled scope may still see the value.
                assert results[i] is values[i], (i, moments[i], results.get(i))
                outcomes[moments[i], "result"] += 1
    await wait_until(lambda: m.storm_drops()[0] == 0)
    assert m.storm_drops() == (0, count, 0)
    return {f"{moment}/{outcome}": n for (moment, outcome), n in sorted(outcomes.items())}


def test_a_cancellation_storm_gives_each_task_exactly_one_outcome(runtime):
    count = stress_size(5_000, 100_000)
    started = time.monotonic()
    outcomes = trio.run(cancellation_storm, runtime, count, 7)
    assert sum(outcomes.values()) == count
    assert sum(n for key, n in outcomes.items() if key.endswith("/cancelled")) > count // 10
    assert sum(n for key, n in outcomes.items() if key.endswith("/result")) > count // 10
    report(
        "test_stress_trio/cancellation_storm",
        runtime=runtime,
        loop="trio",
        tasks=count,
        outcomes=outcomes,
        seconds=round(time.monotonic() - started, 2),
    )


#: When the Rust side lets go of its future of a trio coroutine (a timer of random length
#: wins the race), or the scope around the await of the Rust side is cancelled (before the
#: task runs, while pending, at a random time); never.
REVERSE_MOMENTS = ("rust_timer", "outer_before_first_step", "outer_while_pending", "outer_racing", "never")


async def reverse_storm(runtime, count, seed):
    rng = random.Random(seed)
    m.storm_reset(count)
    values = [("value", i) for i in range(count)]
    started, finished = set(), set()
    inner = Counter()
    outcomes = Counter()

    def make_inner(i, delay):
        async def inner_coroutine():
            started.add(i)
            try:
                await trio.sleep(delay)
            except trio.Cancelled:
                inner["cancelled"] += 1
                raise
            finally:
                finished.add(i)
            inner["done"] += 1
            return values[i]

        return inner_coroutine

    for start in range(0, count, BATCH):
        indices = range(start, min(start + BATCH, count))
        moments = {i: rng.choice(REVERSE_MOMENTS) for i in indices}
        scopes = {i: trio.CancelScope() for i in indices}
        results = {}
        stepped = [0]

        async def one(i, delay, micros, from_runtime):
            with scopes[i]:
                stepped[0] += 1
                results[i] = await m.storm_await_py(runtime, i, make_inner(i, delay), micros, from_runtime)

        async def cancel_later(scope, seconds):
            await trio.sleep(seconds)
            scope.cancel()

        async with trio.open_nursery() as nursery:
            for i in indices:
                moment = moments[i]
                delay = rng.randrange(0, MAX_DELAY_US + 1) / 1e6
                micros = rng.randrange(0, MAX_DELAY_US + 1) if moment == "rust_timer" else None
                if moment == "outer_before_first_step":
                    scopes[i].cancel()
                elif moment == "outer_racing":
                    nursery.start_soon(cancel_later, scopes[i], delay * rng.uniform(0.5, 1.5))
                nursery.start_soon(one, i, delay, micros, rng.random() < 0.5)
            await until_each_took_its_first_step(stepped, len(indices))
            for i in indices:
                if moments[i] == "outer_while_pending":
                    scopes[i].cancel()
        for i in indices:
            if scopes[i].cancelled_caught:
                assert moments[i].startswith("outer_"), (i, moments[i])
                outcomes[moments[i], "cancelled"] += 1
            elif results[i][0] == "dropped":
                assert moments[i] == "rust_timer", (i, moments[i])
                outcomes[moments[i], "dropped"] += 1
            else:
                assert results[i] == ("done", values[i]), (i, moments[i], results[i])
                assert results[i][1] is values[i]
                outcomes[moments[i], "done"] += 1
    # Every trio coroutine that started ran its finally block (the ones the Rust side
    # dropped unwind as system tasks, soon after).
    await wait_until(lambda: started == finished)
    await wait_until(lambda: m.storm_drops()[0] == 0)
    assert m.storm_drops() == (0, count, 0)
    figures = {f"{moment}/{outcome}": n for (moment, outcome), n in sorted(outcomes.items())}
    return figures, dict(inner), len(started)


def test_rust_dropping_its_futures_of_trio_coroutines_at_random_moments(runtime):
    count = stress_size(2_000, 100_000)
    started = time.monotonic()
    outcomes, inner, inner_started = trio.run(reverse_storm, runtime, count, 11)
    assert sum(outcomes.values()) == count
    assert inner.get("cancelled", 0) > 0 and inner.get("done", 0) > 0, inner
    report(
        "test_stress_trio/reverse_storm",
        runtime=runtime,
        loop="trio",
        tasks=count,
        outcomes=outcomes,
        python_tasks_started=inner_started,
        python_tasks=inner,
        seconds=round(time.monotonic() - started, 2),
    )


def test_completions_land_while_the_run_thread_is_inside_detach(runtime):
    count = stress_size(200, 10_000)
    values = [("value", i) for i in range(count)]

    async def main():
        m.storm_reset(count)
        base = m.tracked_drops()
        results = {}

        async def one(i):
            # 20-30 ms: still pending when the run's thread gives up the GIL.
            results[i] = await m.storm_value(runtime, i, 20_000 + 1000 * (i % 10), values[i])

        async with trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(one, i)
            await trio.testing.wait_all_tasks_blocked()
            pending = count - len(results)
            assert pending > count // 2
            # The run's thread sits in Rust with the GIL released until every future has
            # finished on the runtime (then 50 ms more for their completions to be queued).
            assert m.detach_until_dropped(base + count, PATIENCE, 0.05)
            assert count - len(results) == pending
        return [results[i] for i in range(count)]

    results = trio.run(main)
    assert len(results) == count and all(got is want for got, want in zip(results, values))
    report(
        "test_stress_trio/completions_during_detach",
        runtime=runtime,
        loop="trio",
        completions=count,
    )
