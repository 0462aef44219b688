"""Running the side-by-side benchmarks (see `driver.py`): the contenders of a scenario
taking turns, round by round (`take_turns`, shared with `trio_driver.py`; `measure_rounds`
gives each a loop of its own), the ratio of two contenders as the median of their
per-round quotients (`ratio`), and the peak-memory measurement of scenario 2 in a
subprocess."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import resource
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
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
        return run_in(loop, main)
    finally:
        close_loop(loop)


def run_in(loop: asyncio.AbstractEventLoop, main: Callable[[], Awaitable]):
    """`main()` run to completion on `loop`, which is the current loop meanwhile."""
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main())
    finally:
        asyncio.set_event_loop(None)


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Closes `loop` as `asyncio.run` does: async generators and the executor first."""
    asyncio.set_event_loop(loop)
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
    #: Each run's figure by the round it ran in (`measure_rounds`): contenders of one
    #: scenario and loop that ran in the same round ran within moments of each other.
    rounds: dict[int, float] = field(default_factory=dict)


def ratio(cell: Optional[Cell], reference: Optional[Cell]) -> Optional[float]:
    """`cell`'s figure divided by `reference`'s: the median of the per-round quotients where
    the two ran in the same rounds (a machine whose speed drifts from one minute to the next
    slows both alike there), else the quotient of the two medians."""
    if cell is None or reference is None or cell.value is None or reference.value is None:
        return None
    shared = [r for r in cell.rounds if r in reference.rounds and reference.rounds[r] > 0]
    if shared:
        return statistics.median(cell.rounds[r] / reference.rounds[r] for r in shared)
    return cell.value / reference.value if reference.value else None


def figure(elapsed: float, n: int, unit: str) -> float:
    """A run's elapsed seconds in the scenario's unit: per item ("ns"), else the run ("ms")."""
    return elapsed * 1e9 / n if unit == "ns" else elapsed * 1e3


def measure_rounds(s: Scenario, sized: list[tuple[Contender, int]], loop_kind: str, runs: int,
                   budget: float) -> dict[Contender, Cell]:
    """Scenario `s` for every contender of `sized` (each with its size), each on a loop of
    `loop_kind` of its own, taking turns (`take_turns`) after one untimed warm-up per loop."""
    loops: dict[Contender, asyncio.AbstractEventLoop] = {}
    try:
        for c, _ in sized:
            loops[c] = new_loop(loop_kind)

        def run(c: Contender, n: int):
            return run_in(loops[c], lambda: s.body(c, n))

        return take_turns(sized, run, runs, budget, s.unit, warm_up=True)
    finally:
        for loop in loops.values():
            close_loop(loop)


def take_turns(sized: list, run: Callable, runs: int, budget: float, unit: str,
               warm_up: bool) -> dict:
    """Cells for every contender of `sized` (each with its size), measured in rounds:
    every round calls `run(contender, n)` (which returns its elapsed seconds, or (seconds,
    dropped futures)) once per contender, one after the other, the order reversed every
    other round. A figure is then only ever compared with figures taken moments apart
    (`ratio`); the speed of a shared machine drifts too much over the minutes that whole
    cells take. With `warm_up`, each contender first runs once untimed at a tenth of its
    size. A contender stops after `runs` figures or once its runs took `budget` seconds (at
    least one run); one that fails is reported in its cell, not fatal."""
    cells = {c: Cell(n) for c, n in sized}
    spent = {c: 0.0 for c, _ in sized}

    def attempt(c, n: int):
        try:
            return run(c, n)
        except Exception as error:
            cells[c].error = f"{type(error).__name__}: {error}"
            return None

    if warm_up:
        for c, n in sized:
            attempt(c, max(n // 10, 4))
    for round_ in itertools.count():
        due = [c for c, _ in sized
               if not cells[c].error and len(cells[c].rounds) < runs
               and (not cells[c].rounds or spent[c] < budget)]
        if not due:
            break
        for c in due if round_ % 2 == 0 else reversed(due):
            gc.collect()
            outcome = attempt(c, cells[c].n)
            if outcome is None:
                continue
            elapsed, dropped = outcome if isinstance(outcome, tuple) else (outcome, None)
            spent[c] += elapsed
            cells[c].rounds[round_] = figure(elapsed, cells[c].n, unit)
            if dropped is not None:
                known = cells[c].dropped
                cells[c].dropped = dropped if known is None else min(known, dropped)
    for cell in cells.values():
        if cell.rounds and not cell.error:
            cell.value = statistics.median(cell.rounds.values())
            cell.runs = len(cell.rounds)
    return cells


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
