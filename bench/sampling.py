"""Running the side-by-side benchmarks (see `driver.py`): a fresh loop per cell, the
repeated runs and their median (`sample`, shared with `trio_driver.py`), and the peak-memory
measurement of scenario 2 in a subprocess."""

from __future__ import annotations

import asyncio
import gc
import json
import resource
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Optional

from contenders import ASYNCIO, Contender, rust_contenders
from scenarios import Scenario, now, s2_timers

#: The driver, which a memory measurement runs again as a child (`--child-memory`).
DRIVER = Path(__file__).resolve().parent / "driver.py"




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


async def sample(body: Callable[[int], Awaitable], n: int, runs: int, budget: float,
                 unit: str) -> Cell:
    """Awaits `body(k)` once with a small `k` (untimed warm-up), then `body(n)` until it has
    `runs` figures or has spent `budget` seconds (at least once); the cell holds their
    median, in `unit` ("ns": per item, else "ms" for the whole run). A body returns its
    elapsed seconds, or (seconds, dropped futures). Runs under asyncio or trio alike."""
    cell = Cell(n)
    await body(max(n // 10, 4))
    values, drops = [], []
    spent = 0.0
    while len(values) < runs and (not values or spent < budget):
        gc.collect()
        outcome = await body(n)
        elapsed, dropped = outcome if isinstance(outcome, tuple) else (outcome, None)
        spent += elapsed
        values.append(elapsed * 1e9 / n if unit == "ns" else elapsed * 1e3)
        if dropped is not None:
            drops.append(dropped)
    cell.value = statistics.median(values)
    cell.runs = len(values)
    if drops:
        cell.dropped = min(drops)
    return cell


def measure(s: Scenario, c: Contender, loop_kind: str, n: int, runs: int, budget: float) -> Cell:
    """Scenario `s` for contender `c` on a new loop of `loop_kind` (see `sample`); a contender
    that fails is reported in the cell, not fatal."""
    try:
        return run_on(loop_kind, lambda: sample(lambda k: s.body(c, k), n, runs, budget, s.unit))
    except Exception as error:
        return Cell(n, error=f"{type(error).__name__}: {error}")


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
    command = [sys.executable, str(DRIVER), "--child-memory",
               c.family, c.runtime or "-", loop_kind, str(n)]
    while len(values) < runs and (not values or spent < budget):
        start = now()
        done = subprocess.run(command, capture_output=True, text=True)
        spent += now() - start
        if done.returncode != 0:
            ended = f"killed by signal {-done.returncode}" if done.returncode < 0 else "failed"
            cell.error = (done.stderr.strip().splitlines() or [ended])[-1]
            return cell
        values.append(json.loads(done.stdout.strip().splitlines()[-1])["kib"])
    cell.value = statistics.median(values)
    cell.runs = len(values)
    return cell
