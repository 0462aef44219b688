"""The scenarios of the side-by-side benchmarks (see `driver.py`): one body per scenario,
shared by every contender, and the table that describes each one (`SCENARIOS`).

Each body returns the elapsed seconds of its measured part (scenario 4 also the count of
dropped futures)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Optional

from contenders import EAGER_TASK, HAS_EAGER_START, PYO3_NATIVE, Contender


async def returns(value):
    return value


async def noop():
    return None


async def agen(n):
    for i in range(n):
        yield i


async def pending_agen(n):
    """`agen`, except that each item waits for one round of the loop first: a future that
    the loop resolves through `call_soon`, so whoever iterates suspends once per item."""
    loop = asyncio.get_running_loop()
    for i in range(n):
        ready = loop.create_future()
        loop.call_soon(ready.set_result, None)
        await ready
        yield i


def now() -> float:
    return time.perf_counter()


def ready_function(module, runtime: str):
    """Scenario 1's function of `module` for `runtime`: `ready_tokio`, `ready_async_std` or
    `ready_smol`, each taking only the value (no runtime name to match per call)."""
    return getattr(module, "ready_" + runtime.replace("-", "_"))


async def s1_ready(c: Contender, n: int) -> float:
    m = c.module()
    start = now()
    if c == PYO3_NATIVE:
        import pyo3_aio_bench

        native_ready = pyo3_aio_bench.native_ready
        for i in range(n):
            await native_ready(i)
    elif m is None:
        for i in range(n):
            await returns(i)
    else:
        ready = ready_function(m, c.runtime)
        for i in range(n):
            await ready(i)
    return now() - start


async def s1b_hop(c: Contender, n: int) -> float:
    m = c.module()
    loop = asyncio.get_running_loop()
    start = now()
    if m is None:
        for _ in range(n):
            await loop.run_in_executor(None, int)
    else:
        hop, runtime = m.hop, c.runtime
        for i in range(n):
            await hop(runtime, i)
    return now() - start


async def s2_timers(c: Contender, n: int) -> float:
    m = c.module()
    start = now()
    if m is None:
        await asyncio.gather(*[asyncio.sleep(0.001) for _ in range(n)])
    else:
        await asyncio.gather(*[m.sleep(c.runtime, 1.0) for _ in range(n)])
    return now() - start


async def s3_round_trips(c: Contender, n: int) -> float:
    m = c.module()
    loop = asyncio.get_running_loop()
    start = now()
    if c == EAGER_TASK:
        # What into_future does on the loop thread on 3.12+: the task starts eagerly.
        for _ in range(n):
            await asyncio.Task(noop(), loop=loop, eager_start=True)
    elif m is None:
        # What into_future does, in Python: each awaitable runs as its own task.
        for _ in range(n):
            await loop.create_task(noop())
    else:
        assert await m.await_many(c.runtime, noop, n, c.home) == n
    return now() - start


async def s4_cancel(c: Contender, n: int) -> tuple[float, int]:
    m = c.module()
    loop = asyncio.get_running_loop()
    counts = {"started": 0, "dropped": 0}
    if m is None:

        async def waiter():
            counts["started"] += 1
            try:
                await loop.create_future()
            finally:
                counts["dropped"] += 1

        def dropped():
            return counts["dropped"]

    else:
        never, runtime = m.never, c.runtime
        base = m.dropped()

        async def waiter():
            counts["started"] += 1
            await never(runtime)

        def dropped():
            return m.dropped() - base

    tasks = [loop.create_task(waiter()) for _ in range(n)]
    while counts["started"] < n:
        await asyncio.sleep(0)
    await asyncio.sleep(0)
    start = now()
    for task in tasks:
        task.cancel()
    deadline = start + 20.0
    while dropped() < n and now() < deadline:
        await asyncio.sleep(0)
    elapsed = now() - start
    count = dropped()
    await asyncio.gather(*tasks, return_exceptions=True)
    return elapsed, count


async def s5a_stream(c: Contender, n: int) -> float:
    m = c.module()
    seen = 0
    start = now()
    items = agen(n) if m is None else m.stream(c.runtime, n, c.home)
    async for _ in items:
        seen += 1
    elapsed = now() - start
    assert seen == n, (seen, n)
    return elapsed


async def s5a_pending_stream(c: Contender, n: int) -> float:
    m = c.module()
    seen = 0
    start = now()
    items = pending_agen(n) if m is None else m.pending_stream(c.runtime, n, c.home)
    async for _ in items:
        seen += 1
    elapsed = now() - start
    assert seen == n, (seen, n)
    return elapsed


async def s5b_consume(c: Contender, n: int) -> float:
    m = c.module()
    start = now()
    if m is None:
        seen = 0
        async for _ in agen(n):
            seen += 1
    else:
        seen = await m.consume(c.runtime, agen(n), c.home)
    elapsed = now() - start
    assert seen == n, (seen, n)
    return elapsed


TASKS = 4


async def s6a_hop_contention(c: Contender, n: int) -> float:
    m = c.module()
    loop = asyncio.get_running_loop()
    each = n // TASKS

    async def one():
        if m is None:
            for _ in range(each):
                await loop.run_in_executor(None, int)
        else:
            hop, runtime = m.hop, c.runtime
            for i in range(each):
                await hop(runtime, i)

    start = now()
    await asyncio.gather(*[one() for _ in range(TASKS)])
    return now() - start


async def s6b_await_contention(c: Contender, n: int) -> float:
    m = c.module()
    loop = asyncio.get_running_loop()
    each = n // TASKS

    async def one():
        for _ in range(each):
            await loop.create_task(noop())

    start = now()
    if m is None:
        await asyncio.gather(*[one() for _ in range(TASKS)])
    else:
        await asyncio.gather(*[m.await_many(c.runtime, noop, each, c.home) for _ in range(TASKS)])
    return now() - start


# ---------------------------------------------------------------------------------------
# Scenarios


ALL_FAMILIES = ("asyncio", "pyo3-aio", "pyo3-async-runtimes")


async def s7_block_ready(c: Contender, n: int) -> float:
    return await _off_loop(lambda: _block_calls(c, n, ready=True))


async def s7b_block_sleep(c: Contender, n: int) -> float:
    return await _off_loop(lambda: _block_calls(c, n, ready=False))


async def _off_loop(measure: Callable[[], float]) -> float:
    """Runs a synchronous measurement on a worker thread: a plain function calling into
    Rust (or `asyncio.run`, which refuses to run on a loop's thread)."""
    return await asyncio.get_running_loop().run_in_executor(None, measure)


def _block_calls(c: Contender, n: int, ready: bool) -> float:
    m = c.module()
    start = now()
    if m is None:
        if ready:
            for i in range(n):
                asyncio.run(returns(i))
        else:
            for _ in range(n):
                asyncio.run(asyncio.sleep(0.001))
    elif ready:
        block, runtime = m.block_ready, c.runtime
        for i in range(n):
            block(runtime, i)
    else:
        block, runtime = m.block_sleep, c.runtime
        for _ in range(n):
            block(runtime, 1.0)
    return now() - start


@dataclass
class Scenario:
    #: what `--only` selects; "5a-pending" is also selected by "5a"
    key: str
    title: str
    body: Callable[[Contender, int], Awaitable]
    #: the size every contender runs (one size, so that the figures compare)
    n: int
    #: "ns" (per item, from seconds / n) or "ms" (whole run)
    unit: str
    #: which contenders: "rust" (default home only), "homes" (pyo3-aio per home)
    contenders: str = "rust"
    note: str = ""
    #: the families that take part; the Rust ones left out are listed as n/a
    families: tuple = ALL_FAMILIES
    #: further rows right after plain asyncio's (its eager task, PyO3's native coroutine)
    extras: tuple = ()

    def size(self, c: Contender) -> Optional[int]:
        if c == EAGER_TASK and not HAS_EAGER_START:
            return None
        return self.n if c.family in self.families or c in self.extras else None

    def selected(self, only: set) -> bool:
        return not only or self.key in only or self.key.split("-", 1)[0] in only


SCENARIOS = [
    Scenario(
        "1",
        "1. await a Rust future that is ready at once (ns per await)",
        s1_ready,
        20_000,
        "ns",
        extras=(PYO3_NATIVE,),
        note="plain asyncio: `await f(i)` of an `async def f(v): return v`. PyO3 `async fn`: "
        "`await native_ready(i)`, a `#[pyfunction] async fn` returning its argument "
        "(PyO3's `experimental-async` coroutine). The Rust modules: `await ready_tokio(i)` "
        "(one function per runtime, taking only the value). "
        "pyo3-async-runtimes spawns even a ready future and answers through "
        "`call_soon_threadsafe` (about 150 µs an await), so every contender runs 20,000 "
        "awaits instead of the issue's 200,000.",
    ),
    Scenario(
        "1b",
        "1b. await a Rust future completed on a worker thread, in a row (ns per await)",
        s1b_hop,
        10_000,
        "ns",
        note="(extra) the Rust future is pending once, then completed by a runtime worker: "
        "one hop there and back per await. plain asyncio: `await loop.run_in_executor(None, int)`.",
    ),
    Scenario(
        "2",
        "2. `gather` of 10,000 Rust timers of 1 ms (wall time)",
        s2_timers,
        10_000,
        "ms",
        note="plain asyncio: `gather` of 10,000 `asyncio.sleep(0.001)`; "
        "the Rust timers are the runtime's own (tokio::time, async-std, smol::Timer).",
    ),
    Scenario(
        "3",
        "3. Rust awaits a trivial Python coroutine, in a row (ns per round trip)",
        s3_round_trips,
        10_000,
        "ns",
        contenders="homes",
        extras=(EAGER_TASK,),
        note="`into_future(noop())` awaited n times by one Rust future. plain asyncio: "
        "`await loop.create_task(noop())`, what into_future does before Python 3.12; "
        "eager task: `await asyncio.Task(noop(), loop=loop, eager_start=True)`, what it does "
        "on the loop thread on 3.12+ (n/a before). With the default options "
        "(`Home::Auto`) the Rust future, left pending on Python work of its loop by its first "
        "poll, stays on the loop thread. Futures living on a worker (\"(runtime)\") and "
        "pyo3-async-runtimes' pay two cross-thread wake-ups per round trip (200-300 µs), so "
        "every contender runs 10,000 round trips instead of the issue's 100,000.",
    ),
    Scenario(
        "4",
        "4. 10,000 tasks awaiting a never-ending Rust future, cancelled (ms until every "
        "Rust future is dropped; dropped / 10,000)",
        s4_cancel,
        10_000,
        "ms",
        note="from the first `task.cancel()` until the 10,000th drop of the Rust future "
        "(a drop counter in the future). plain asyncio: tasks awaiting a bare "
        "`asyncio.Future`, counted in a `finally`.",
    ),
    Scenario(
        "5a",
        "5a. Rust stream into `async for` (ns per item)",
        s5a_stream,
        100_000,
        "ns",
        contenders="homes",
        families=("asyncio", "pyo3-aio"),
        note="plain asyncio: `async for` over a Python async generator of 100,000 ints. "
        "pyo3-async-runtimes has no Rust stream -> Python conversion (n/a). "
        "home=loop-thread is `local_stream_into_py`. Every item is ready when asked for.",
    ),
    Scenario(
        "5a-pending",
        "5a (pending). Rust stream into `async for`, each item after a hop to a runtime "
        "worker (ns per item)",
        s5a_pending_stream,
        20_000,
        "ns",
        contenders="homes",
        families=("asyncio", "pyo3-aio"),
        note="(extra) the stream of 5a, except that each item waits for a task spawned on "
        "the runtime (through the spawner pyo3-aio uses) to have run: the item is not there "
        "when `__anext__` polls inline, so `async for` suspends until the worker's wake-up "
        "reaches the loop (through the pump; for home=loop-thread through the loop's queue). "
        "plain asyncio: an async generator that awaits, before each item, a future the loop "
        "resolves through `call_soon`. Both suspend about once per item. "
        "pyo3-async-runtimes: n/a, as in 5a.",
    ),
    Scenario(
        "5b",
        "5b. Python async generator into a Rust stream (ns per item)",
        s5b_consume,
        100_000,
        "ns",
        contenders="homes",
        note="Rust counts the items of `into_stream(agen(n))`; pyo3-async-runtimes uses "
        "`into_stream_v2` (feature `unstable-streams`). "
        "plain asyncio: `async for` over the same generator.",
    ),
    Scenario(
        "6a",
        "6a. contention: 4 Python tasks awaiting Rust futures completed on workers, "
        "20,000 round trips in all (ns per round trip)",
        s6a_hop_contention,
        20_000,
        "ns",
        note="4 tasks at once, each awaiting `hop()` (scenario 1b) in a row: the workers "
        "complete while the loop thread runs Python, which is where a completion path that "
        "takes the GIL waits. plain asyncio: `run_in_executor(None, int)`. Every round trip "
        "crosses threads twice, so every contender runs 20,000 instead of the issue's "
        "100,000 to fit the time limit.",
    ),
    Scenario(
        "6b",
        "6b. contention: 4 Rust futures awaiting Python coroutines at once, "
        "20,000 round trips in all (ns per round trip)",
        s6b_await_contention,
        20_000,
        "ns",
        contenders="homes",
        note="4 `await_many(noop, n/4)` gathered (scenario 3, four at once). plain asyncio: "
        "4 tasks doing `await loop.create_task(noop())`. Rows with futures on workers and "
        "pyo3-async-runtimes cross threads twice per round trip, so every contender runs "
        "20,000 instead of the issue's 100,000 to fit the time limit.",
    ),
    Scenario(
        "7",
        "7. a blocking call of a Rust future that is ready at once, from synchronous code "
        "(ns per call)",
        s7_block_ready,
        5_000,
        "ns",
        families=("asyncio", "pyo3-aio"),
        note="`block_on` from a plain function on a thread without a loop (the scenario "
        "runs on a worker thread of the loop's executor; the loop column only says which "
        "loop the process runs). plain asyncio: `asyncio.run(f(i))` per call, the usual "
        "way to call an `async def` from sync code (always asyncio's default loop). "
        "pyo3-async-runtimes has no blocking entry point for a pyfunction (n/a).",
    ),
    Scenario(
        "7b",
        "7b. a blocking call of a 1 ms Rust sleep, from synchronous code (ns per call)",
        s7b_block_sleep,
        1_000,
        "ns",
        families=("asyncio", "pyo3-aio"),
        note="as 7, with the runtime's own 1 ms timer; plain asyncio: "
        "`asyncio.run(asyncio.sleep(0.001))` per call.",
    ),
]
