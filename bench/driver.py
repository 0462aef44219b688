#!/usr/bin/env python3
"""Side-by-side benchmarks: pyo3-aio, pyo3-async-runtimes and plain asyncio.

Every scenario runs for every contender on asyncio's default loop and on uvloop, in this
one process run, so the figures are comparable. Contenders:

- pyo3-aio on tokio, async-std and smol (module ``pyo3_aio_bench``), for the scenarios
  where it matters both with the pending Rust future on the runtime's workers
  with the default options (``home=default``: ``Home::Auto``), and where it matters also
  on the runtime's workers (``home=runtime``) and on the loop thread (``home=loop-thread``);
- pyo3-async-runtimes on tokio and async-std (module ``par_bench``);
- plain asyncio doing the same work in Python.

Both extension modules expose one protocol (see their ``src/lib.rs``), so each scenario
has one body for the two Rust contenders and one for plain asyncio.

Each figure is the median of up to ``--runs`` runs (default 5) of one size, after one
untimed warm-up run; a cell stops early once its runs took ``--budget`` seconds, and then
says how many runs it has. Every contender of a scenario runs the same size (the "n"
column): the issue's, or less where the slowest contender would not fit the time limit
at the issue's size (the scenario's note says so). Peak memory growth
(scenario 2) is the growth of the peak RSS (``VmHWM`` of ``/proc/self/status``) of a
fresh subprocess across the ``gather``, after a warm-up in the same subprocess: tracemalloc
would not see Rust's allocations.

Nothing here asserts on time: the "Targets" section reports met / missed.

    python bench/driver.py            # the full run, tables to stdout and bench/RESULTS.md
    python bench/driver.py --quick    # a smoke run with small sizes (not written to RESULTS.md)

`cargo xtask bench` builds both modules into target/venv and runs this.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOOPS = ("asyncio", "uvloop")
LOOP_TITLES = {"asyncio": "default loop", "uvloop": "uvloop"}
RUNTIME_ORDER = ("tokio", "async-std", "smol")

# ---------------------------------------------------------------------------------------
# Contenders


@dataclass(frozen=True)
class Contender:
    """One column of comparison: a module (None for plain asyncio), a runtime, a home."""

    family: str  # "asyncio", "pyo3-aio" or "pyo3-async-runtimes"
    runtime: str = ""
    home: str = "default"

    @property
    def label(self) -> str:
        if self.family == "asyncio":
            return EXTRA_LABELS.get(self.home, "plain asyncio")
        if self.family == "pyo3":
            return "PyO3 `async fn` (native coroutine)"
        text = f"{self.family} {self.runtime}"
        if self.home != "default":
            text += f" ({self.home})"
        return text

    def module(self):
        if self.family == "pyo3-aio":
            import pyo3_aio_bench

            return pyo3_aio_bench
        if self.family == "pyo3-async-runtimes":
            import par_bench

            return par_bench
        return None


ASYNCIO = Contender("asyncio")
#: plain asyncio's eager task (Python 3.12+): `await asyncio.Task(coro, eager_start=True)`
EAGER_TASK = Contender("asyncio", home="eager")
#: PyO3's own native coroutine (`experimental-async`), through pyo3_aio_bench
PYO3_NATIVE = Contender("pyo3", home="native")
EXTRA_LABELS = {"eager": "plain asyncio, eager task (3.12+)"}
HAS_EAGER_START = sys.version_info >= (3, 12)


def rust_contenders(homes: bool) -> list[Contender]:
    """The Rust contenders; with `homes`, pyo3-aio once per home."""
    import par_bench
    import pyo3_aio_bench

    found = []
    for module, family in ((pyo3_aio_bench, "pyo3-aio"), (par_bench, "pyo3-async-runtimes")):
        for home in module.HOMES if homes else ("default",):
            for runtime in module.RUNTIMES:
                found.append(Contender(family, runtime, home))
    return found


def counterpart(contender: Contender) -> Optional[Contender]:
    """The pyo3-async-runtimes contender on the same runtime, if there is one."""
    import par_bench

    if contender.family != "pyo3-aio" or contender.runtime not in par_bench.RUNTIMES:
        return None
    return Contender("pyo3-async-runtimes", contender.runtime)


# ---------------------------------------------------------------------------------------
# Scenario bodies. Each returns the elapsed seconds of the measured part (scenario 4 also
# the count of dropped futures).


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
        ready, runtime = m.ready, c.runtime
        for i in range(n):
            await ready(runtime, i)
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
        "(PyO3's `experimental-async` coroutine). "
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

# ---------------------------------------------------------------------------------------
# Running


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run_on(kind: str, main: Callable[[], Awaitable]):
    """`asyncio.run(main())` on a fresh loop of `kind` (works from Python 3.8 on)."""
    loop = new_loop(kind)
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main())
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


@dataclass
class Cell:
    """The outcome of one scenario for one contender on one loop."""

    n: int
    value: Optional[float] = None  # in the scenario's unit
    runs: int = 0
    dropped: Optional[int] = None  # scenario 4
    error: str = ""


def measure(s: Scenario, c: Contender, loop_kind: str, n: int, runs: int, budget: float) -> Cell:
    cell = Cell(n)

    async def main():
        warm = max(n // 10, 4)
        await s.body(c, warm)
        values, drops = [], []
        spent = 0.0
        while len(values) < runs and (not values or spent < budget):
            gc.collect()
            outcome = await s.body(c, n)
            elapsed, dropped = outcome if isinstance(outcome, tuple) else (outcome, None)
            spent += elapsed
            values.append(elapsed * 1e9 / n if s.unit == "ns" else elapsed * 1e3)
            if dropped is not None:
                drops.append(dropped)
        cell.value = statistics.median(values)
        cell.runs = len(values)
        if drops:
            cell.dropped = min(drops)

    try:
        run_on(loop_kind, main)
    except Exception as error:  # a contender that fails is reported, not fatal
        cell.error = f"{type(error).__name__}: {error}"
    return cell


def contenders_for(s: Scenario) -> list[Contender]:
    found = [ASYNCIO] if "asyncio" in s.families else []
    found += list(s.extras)
    for c in rust_contenders(homes=s.contenders == "homes"):
        if s.size(c) is not None:
            found.append(c)
    # Rust contenders the scenario has no size for are still listed, as n/a.
    for c in rust_contenders(homes=s.contenders == "homes"):
        if c not in found:
            found.append(c)
    return found


# ---------------------------------------------------------------------------------------
# Peak memory (scenario 2), in a fresh subprocess per measurement


def peak_rss_kib() -> int:
    """This process's peak resident set size in KiB: VmHWM of /proc/self/status.

    Not `getrusage().ru_maxrss`: Linux carries that over `exec` from the forking process, so
    a child of a large driver process would report the driver's peak, not its own.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child_memory(family: str, runtime: str, loop_kind: str, n: int) -> None:
    c = Contender(family, runtime)

    async def main():
        await s2_timers(c, 200)  # runtime threads, loop state, timer wheels exist now
        gc.collect()
        before = peak_rss_kib()
        await s2_timers(c, n)
        return peak_rss_kib() - before

    print(json.dumps({"kib": run_on(loop_kind, main)}))


def measure_memory(c: Contender, loop_kind: str, n: int, runs: int, budget: float) -> Cell:
    cell = Cell(n)
    values = []
    spent = 0.0
    command = [sys.executable, str(Path(__file__).resolve()), "--child-memory",
               c.family, c.runtime or "-", loop_kind, str(n)]
    while len(values) < runs and (not values or spent < budget):
        start = now()
        done = subprocess.run(command, capture_output=True, text=True)
        spent += now() - start
        if done.returncode != 0:
            cell.error = (done.stderr.strip().splitlines() or ["failed"])[-1]
            return cell
        values.append(json.loads(done.stdout.strip().splitlines()[-1])["kib"])
    cell.value = statistics.median(values)
    cell.runs = len(values)
    return cell


# ---------------------------------------------------------------------------------------
# Reporting


def fmt_value(value: float, unit: str) -> str:
    if unit == "KiB":
        return f"{value / 1024:.1f} MiB" if value >= 10_240 else f"{value:.0f} KiB"
    if unit == "ns":
        if value >= 10_000:
            return f"{value / 1000:.1f} µs"
        return f"{value:.0f} ns"
    return f"{value:.1f} ms"


def fmt_ratio(value: Optional[float], reference: Optional[float]) -> str:
    if value is None or reference is None or reference == 0:
        return "—"
    return fmt_number(value / reference)


def fmt_number(ratio: float) -> str:
    """Two significant figures for small ratios, two decimals up to 10, none beyond."""
    if ratio < 0.1:
        return f"{ratio:.2g}"
    return f"{ratio:.2f}" if ratio < 10 else f"{ratio:.0f}"


def table(title: str, unit: str, rows: list[Contender], cells: dict, runs: int,
          note: str = "") -> str:
    out = [f"### {title}", ""]
    if note:
        out += [note, ""]
    out.append("| contender | n | default loop | ÷ asyncio | ÷ p-a-r | uvloop | ÷ asyncio | ÷ p-a-r |")
    out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c in rows:
        line = [c.label]
        ns = {cells[(c, k)].n for k in LOOPS if (c, k) in cells}
        line.append(", ".join(f"{n:,}" for n in sorted(ns)) if ns else "—")
        for kind in LOOPS:
            cell = cells.get((c, kind))
            if cell is None:
                line += ["n/a", "—", "—"]
                continue
            if cell.error:
                line += [f"error: {cell.error[:60]}", "—", "—"]
                continue
            text = fmt_value(cell.value, unit)
            if cell.dropped is not None:
                text += f" ({cell.dropped:,} dropped)"
            if cell.runs < runs:
                text += f" ({cell.runs} run{'s' if cell.runs > 1 else ''})"
            base = cells.get((ASYNCIO, kind))
            other = counterpart(c)
            par = cells.get((other, kind)) if other else None
            line.append(text)
            line.append("—" if c == ASYNCIO else fmt_ratio(cell.value, base and base.value))
            line.append(fmt_ratio(cell.value, par and par.value) if par else "—")
        out.append("| " + " | ".join(line) + " |")
    out.append("")
    return "\n".join(out)


def issue14_checks() -> list:
    """The targets against Python's own equivalents: a plain coroutine, an eager task (or
    `create_task` before 3.12), plain `async for`, and PyO3's native coroutine."""
    if HAS_EAGER_START:
        s3 = ("3", EAGER_TASK, 1.5, "scenario 3 within 1.5× of an eager task (3.12+)")
    else:
        s3 = ("3", "asyncio", 1.0, "scenario 3 no slower than `create_task` (before 3.12)")
    return [
        ("1", "asyncio", 1.5, "scenario 1 within 1.5× of plain asyncio"),
        ("1", PYO3_NATIVE, 1.0, "scenario 1 ahead of PyO3's native `async fn`"),
        s3,
        ("5b", "asyncio", 1.3, "scenario 5b within 1.3× of plain `async for`"),
    ]


def target_lines(results: dict, memory: dict, checks: Optional[list] = None) -> list[str]:
    """One line per target and pyo3-aio row: the measured ratio on each loop, met or not."""
    checks = checks or [
        ("1", "asyncio", 2.0, "scenario 1 within 2× of plain asyncio"),
        ("2", "asyncio", 1.5, "scenario 2 within 1.5× of plain asyncio's gather"),
        ("2-mem", "asyncio", 1.0, "scenario 2 peak memory growth no larger than plain asyncio's"),
        ("3", "par", 0.1, "scenario 3 at least 10× faster than pyo3-async-runtimes"),
        ("4", "asyncio", 1.5, "scenario 4 all dropped, within 1.5× of plain asyncio"),
        ("5a", "asyncio", 2.0, "scenario 5 (Rust stream) within 2× of a Python async generator"),
        ("5b", "asyncio", 2.0, "scenario 5 (into Rust stream) within 2× of a Python async generator"),
        ("6a", "par", 0.1, "scenario 6a at least 10× faster than pyo3-async-runtimes"),
        ("6b", "par", 0.1, "scenario 6b at least 10× faster than pyo3-async-runtimes"),
    ]
    lines = ["| target | pyo3-aio row | default loop | uvloop | met? |", "| --- | --- | ---: | ---: | :---: |"]
    for key, against, limit, text in checks:
        cells = memory if key == "2-mem" else results.get(key)
        if not cells:
            continue
        rows = sorted({c for (c, _) in cells if c.family == "pyo3-aio"},
                      key=lambda c: (c.home != "default", RUNTIME_ORDER.index(c.runtime)))
        for c in rows:
            ratios, ok = [], True
            for kind in LOOPS:
                cell = cells.get((c, kind))
                ref_c = {"asyncio": ASYNCIO, "par": counterpart(c)}.get(against, against)
                ref = cells.get((ref_c, kind)) if ref_c else None
                if cell is None or cell.value is None or ref is None or ref.value is None:
                    ratios.append("—")
                    continue
                if key == "4" and cell.dropped is not None and cell.dropped < cell.n:
                    ok = False
                if key == "2-mem":
                    # Growth is page-granular and noisy: within 512 KiB counts as equal.
                    ok &= cell.value <= max(ref.value, 0) + 512
                    ratios.append(f"{fmt_value(cell.value, 'KiB')} vs {fmt_value(ref.value, 'KiB')}")
                    continue
                ratio = cell.value / ref.value if ref.value else float("inf")
                ok &= ratio <= limit
                ratios.append(fmt_number(ratio))
            if all(r == "—" for r in ratios):
                continue
            mark = "met" if ok and "—" not in ratios else ("missed" if not ok else "partly n/a")
            lines.append(f"| {text} | {c.label} | {ratios[0]} | {ratios[1]} | {mark} |")
    return lines


def machine() -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import uvloop

        uv = uvloop.__version__
    except ImportError:
        uv = "not installed"
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    par = "?"
    lock = HERE / "par_bench" / "Cargo.lock"
    if lock.exists():
        text = lock.read_text()
        marker = 'name = "pyo3-async-runtimes"\nversion = "'
        if marker in text:
            par = text.split(marker, 1)[1].split('"', 1)[0]
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                             capture_output=True, text=True).stdout.strip() or "?"
    except OSError:
        rev = "?"
    return [
        f"- cores (nproc): {nproc}; CPU: {cpu}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}), "
        f"uvloop {uv}, {platform.system()} {platform.release()}",
        f"- pyo3-aio at `{rev}`; pyo3-async-runtimes {par} (crates.io)",
    ]


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


CRITERION_HEADING = "## Core, without Python (criterion)"
TITLE = "# pyo3-aio benchmarks: side by side with pyo3-async-runtimes and plain asyncio"
PREFACE = (
    "One section per CPython version: `cargo xtask bench` runs on target/venv's Python, "
    "`cargo xtask bench --python 3.12` on that version (a venv of its own under "
    "target/bench-py3.12); a run replaces its version's section only. The criterion "
    "medians of the core (no Python) come last."
)


def merge_version(existing: str, section: str) -> str:
    """`existing` (a RESULTS.md) with this Python version's section replaced by `section`
    (or added), the versions in order and the criterion section kept last."""
    criterion = ""
    if CRITERION_HEADING in existing:
        existing, tail = existing.split(CRITERION_HEADING, 1)
        criterion = CRITERION_HEADING + tail
    blocks = {}
    for chunk in existing.split("<!-- python ")[1:]:
        version, _, body = chunk.partition(" -->")
        blocks[version] = body.split("<!-- end python", 1)[0].strip("\n")
    version = "{}.{}".format(*sys.version_info[:2])
    blocks[version] = section.strip("\n")
    parts = [TITLE, "", PREFACE, ""]
    for key in sorted(blocks, key=lambda v: tuple(int(x) for x in v.split("."))):
        parts += [f"<!-- python {key} -->", blocks[key], f"<!-- end python {key} -->", ""]
    if criterion:
        parts.append(criterion.rstrip("\n") + "\n")
    return "\n".join(parts)


def criterion_section(directory: Path) -> str:
    """The medians of `cargo bench -p pyo3-aio-core --bench core`, from criterion's files."""
    rows = []
    for estimates in sorted(directory.glob("**/new/estimates.json")):
        info_path = estimates.with_name("benchmark.json")
        if not info_path.exists():
            continue
        info = json.loads(info_path.read_text())
        if info.get("group_id") not in ("cell", "wake_queue"):
            continue
        median = json.loads(estimates.read_text())["median"]
        per = ""
        elements = (info.get("throughput") or {}).get("Elements")
        if elements and elements > 1:
            per = f"{median['point_estimate'] / elements:.1f} ns"
        rows.append(f"| `{info['full_id']}` | {median['point_estimate']:.1f} ns | "
                    f"{median['confidence_interval']['lower_bound']:.1f} – "
                    f"{median['confidence_interval']['upper_bound']:.1f} ns | {per or '—'} |")
    return "\n".join([
        CRITERION_HEADING, "",
        "`cargo bench -p pyo3-aio-core --bench core` (short measurement time): the "
        "completion cell and the wake queue alone. Median time per iteration, its 95% "
        "confidence interval, and per item for bursts. `cross_thread_round_trip` and "
        "`four_producers` spin on 2 cores shared with the rest of the machine, so they "
        "mostly show scheduling.", "",
        "| bench | median | 95% CI | per item |",
        "| --- | ---: | ---: | ---: |",
        *rows, ""])


def append_criterion(directory: Path, output: Path) -> None:
    text = output.read_text() if output.exists() else ""
    if CRITERION_HEADING in text:
        text = text.split(CRITERION_HEADING, 1)[0].rstrip("\n") + "\n\n"
    elif text and not text.endswith("\n\n"):
        text = text.rstrip("\n") + "\n\n"
    section = criterion_section(directory)
    output.write_text(text + section)
    print(section)
    print(f"wrote {output}", file=sys.stderr)


# ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: sizes / 50, one run per cell; written to --output "
                        "(default target/bench/RESULTS-quick.md), not bench/RESULTS.md")
    parser.add_argument("--runs", type=int, default=5, help="runs per cell (median), default 5")
    parser.add_argument("--budget", type=float, default=3.0,
                        help="seconds after which a cell stops repeating (default 3)")
    parser.add_argument("--only", default="",
                        help="comma-separated scenario keys, e.g. 1,3,6a (5a also runs 5a-pending)")
    parser.add_argument("--output", default=None, help="where the Markdown goes")
    parser.add_argument("--append-criterion", metavar="DIR", default=None,
                        help="only append the medians of the core's criterion benches "
                        "(criterion's output directory, e.g. target/criterion) to --output")
    parser.add_argument("--child-memory", nargs=4, metavar=("FAMILY", "RUNTIME", "LOOP", "N"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child_memory:
        family, runtime, loop_kind, n = args.child_memory
        child_memory(family, "" if runtime == "-" else runtime, loop_kind, int(n))
        return 0

    runs = 1 if args.quick else args.runs
    scale = 50 if args.quick else 1
    output = Path(args.output) if args.output else (
        ROOT / "target" / "bench" / "RESULTS-quick.md" if args.quick else HERE / "RESULTS.md")
    if args.append_criterion:
        append_criterion(Path(args.append_criterion), output)
        return 0
    only = {key.strip() for key in args.only.split(",") if key.strip()}
    command = os.environ.get("PYO3_AIO_BENCH_COMMAND") or " ".join(
        shlex.quote(a) for a in [os.path.relpath(sys.executable, ROOT),
                                 os.path.relpath(__file__, ROOT), *sys.argv[1:]])

    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = load()
    clock = now()
    results: dict = {}
    sections = []
    memory: dict = {}
    for s in SCENARIOS:
        if not s.selected(only):
            continue
        rows = contenders_for(s)
        cells: dict = {}
        for kind in LOOPS:
            for c in rows:
                n = s.size(c)
                if n is None:
                    continue
                n = max(n // scale, TASKS * 2)
                t0 = now()
                cells[(c, kind)] = measure(s, c, kind, n, runs, args.budget)
                cell = cells[(c, kind)]
                shown = cell.error or fmt_value(cell.value, s.unit)
                print(f"# {s.key:>3} {LOOP_TITLES[kind]:<12} {c.label:<42} n={n:<7} "
                      f"{shown} ({now() - t0:.1f} s)", file=sys.stderr, flush=True)
        results[s.key] = cells
        sections.append(table(s.title, s.unit, rows, cells, runs, s.note))
        if s.key == "2":
            mem_rows = [c for c in rows if c.home == "default"]
            for kind in LOOPS:
                for c in mem_rows:
                    n = max(s.size(c) // scale, TASKS * 2)
                    memory[(c, kind)] = measure_memory(c, kind, n, min(runs, 3), args.budget)
                    cell = memory[(c, kind)]
                    print(f"# 2-mem {LOOP_TITLES[kind]:<12} {c.label:<42} "
                          f"{cell.error or fmt_value(cell.value, 'KiB')}",
                          file=sys.stderr, flush=True)
            sections.append(table(
                "2. (memory) peak RSS growth during the `gather` of 10,000 timers",
                "KiB", mem_rows, memory, min(runs, 3),
                "Growth of the peak resident set size (VmHWM in `/proc/self/status`; "
                "not `getrusage`'s `ru_maxrss`, which Linux carries over `exec` from the "
                "parent) across the `gather`, each in a fresh subprocess "
                "after a warm-up `gather` of 200; median of 3 subprocesses. Includes Rust "
                "allocations, which tracemalloc would miss; page-granular, so differences "
                "below ~0.5 MiB are noise."))
    elapsed = now() - clock
    load_after = load()

    header = [
        f"## CPython {platform.python_version()}",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC; the driver took {elapsed:.0f} s",
        *machine(),
        f"- load average (1, 5, 15 min) before: {load_before}, after: {load_after}"
        " (other builds share this machine; figures on a loaded machine are noisier and slower)",
        f"- command: `{command}`" + (" (quick smoke run: small sizes, 1 run)" if args.quick else ""),
        "",
        f"Medians of up to {runs} runs after one warm-up; a cell that used its "
        f"{args.budget:.0f} s budget early says how many runs it has. "
        "\"÷ asyncio\" and \"÷ p-a-r\" are this row's figure divided by plain asyncio's and by "
        "pyo3-async-runtimes' on the same loop and runtime: below 1 is faster (0.10 = 10× "
        "faster). n/a: the contender cannot do this. Rows without a suffix use the default "
        "options (`Home::Auto`: a future left pending on Python work of its loop by its inline "
        "first poll stays on the loop thread, any other goes to the runtime's workers); rows "
        "with \"(runtime)\" or \"(loop-thread)\" ask for `Home::Runtime` or `Home::LoopThread`.",
        "",
    ]
    targets = [
        "### Targets (issue 14)", "", *target_lines(results, memory, issue14_checks()), "",
        "### Targets (issue 6)", "", *target_lines(results, memory), "",
    ]
    sections = [section.replace("\n### ", "\n#### ").replace("### ", "#### ", 1)
                for section in sections]
    text = "\n".join([*header, *targets, "### Tables", "", *sections])
    print(text)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(merge_version(output.read_text() if output.exists() else "", text))
    print(f"wrote {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
