#!/usr/bin/env python3
"""The trio column of `cargo xtask bench`: pyo3-aio under trio, side by side with plain trio.

Scenarios (each the median of up to ``--runs`` runs after one untimed warm-up, all in this
one process):

- T1 ready await: ``await m.ready_<runtime>(i)`` against ``await returns(i)`` of a plain
  ``async def`` (per await);
- T1b one wake from another thread, in a row (extra): ``await m.hop(runtime, i)``, a Rust
  future completed by a runtime worker (its completion wakes the run through the eventfd
  its drain task waits on), against ``await trio.to_thread.run_sync(int)`` (trio's own
  cross-thread wake: ``TrioToken.run_sync_soon`` from the worker, which takes the GIL);
- T2 timers: 10,000 Rust 1 ms sleeps, one per task of a nursery, against 10,000
  ``trio.sleep(0.001)`` (whole batch);
- T4 cancellation: 10,000 tasks of a nursery waiting on a Rust future that never
  completes, cancelled by one cancel scope, against 10,000 ``trio.sleep_forever()``; the
  time from ``scope.cancel()`` until the nursery has exited, and how many Rust futures
  were dropped by then (all of them, or the row says so).

Targets (as on asyncio): T1 within 2x, T2 and T4 within 1.5x of plain trio, T4 with every
future dropped. Nothing here asserts on time: the table says met / missed.

    python bench/trio_driver.py [--quick] [--output FILE]   # writes its section into FILE
"""

from __future__ import annotations

import argparse
import sys

import trio

import pyo3_aio_bench as m
from sampling import ratio, take_turns
from scenarios import now, ready_function, returns

TARGETS = {"T1": 2.0, "T1b": None, "T2": 1.5, "T4": 1.5}


async def t1_ready(runtime, n):
    start = now()
    if runtime is None:
        for i in range(n):
            await returns(i)
    else:
        ready = ready_function(m, runtime)
        for i in range(n):
            await ready(i)
    return now() - start


async def t1b_hop(runtime, n):
    start = now()
    if runtime is None:
        # trio's own wake from another thread: a worker thread, then `run_sync_soon`.
        run_sync = trio.to_thread.run_sync
        for _ in range(n):
            await run_sync(int)
    else:
        hop = m.hop
        for i in range(n):
            await hop(runtime, i)
    return now() - start


async def t2_timers(runtime, n):
    start = now()
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            if runtime is None:
                nursery.start_soon(trio.sleep, 0.001)
            else:
                nursery.start_soon(m.sleep, runtime, 1.0)
    return now() - start


async def t4_cancel(runtime, n):
    counts = {"started": 0, "dropped": 0}
    if runtime is None:

        async def waiter():
            counts["started"] += 1
            try:
                await trio.sleep_forever()
            finally:
                counts["dropped"] += 1

        def dropped():
            return counts["dropped"]

    else:
        never = m.never
        base = m.dropped()

        async def waiter():
            counts["started"] += 1
            await never(runtime)

        def dropped():
            return m.dropped() - base

    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as scope:
            for _ in range(n):
                nursery.start_soon(waiter)
            while counts["started"] < n:
                await trio.sleep(0)
            await trio.sleep(0)
            start = now()
            scope.cancel()
            nursery.cancel_scope.cancel()
    return now() - start, dropped()


SCENARIOS = [
    ("T1", "ready await", "ns", t1_ready, 100_000, 2_000),
    ("T1b", "one wake from a runtime thread, in a row", "ns", t1b_hop, 10_000, 500),
    ("T2", "10,000 timers in a nursery", "ms", t2_timers, 10_000, 1_000),
    ("T4", "10,000 cancelled by one cancel scope", "ms", t4_cancel, 10_000, 1_000),
]


def measure(body, unit, n, runs, budget):
    """Cells for plain trio (key None) and pyo3-aio on each runtime, taking turns round by
    round (`sampling.take_turns`): each run is a `trio.run` of its own, an untimed run of a
    tenth of the size first, then the timed one."""
    async def warm_then_time(runtime, k):
        await body(runtime, max(k // 10, 4))
        return await body(runtime, k)

    contenders = [(None, n)] + [(runtime, n) for runtime in m.RUNTIMES]
    return take_turns(contenders, lambda runtime, k: trio.run(warm_then_time, runtime, k),
                      runs, budget, unit, warm_up=False)


def fmt(value, unit):
    if unit == "ns":
        return f"{value / 1000:.2f} µs" if value >= 1000 else f"{value:.0f} ns"
    return f"{value:.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--budget", type=float, default=10.0, help="seconds per cell")
    parser.add_argument("--output", help="Markdown file to append the section to")
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    lines = [
        "## trio",
        "",
        f"pyo3-aio under `trio.run` against plain trio (trio {trio.__version__}, Python "
        f"{sys.version.split()[0]}); `bench/trio_driver.py`, median of up to {runs} runs. The "
        "contenders take turns, one run each per round (each its own `trio.run`, after an "
        "untimed run of a tenth of the size), and \"÷ trio\" is the median of the "
        "per-round quotients, as in the asyncio tables.",
        "",
        "| scenario | contender | n | time | ÷ trio | target | met? |",
        "| --- | --- | ---: | ---: | ---: | ---: | :---: |",
    ]
    for key, title, unit, body, size, quick_size in SCENARIOS:
        n = quick_size if args.quick else size
        cells = measure(body, unit, n, runs, args.budget)
        base = cells[None]
        shown = base.error or fmt(base.value, unit)
        lines.append(f"| {key} {title} | plain trio | {n:,} | {shown} | — | — | — |")
        for runtime in m.RUNTIMES:
            cell = cells[runtime]
            if cell.error:
                lines.append(f"| {key} {title} | pyo3-aio {runtime} | {n:,} | error: {cell.error} | | | ✗ |")
                continue
            quotient = ratio(cell, base)
            text = fmt(cell.value, unit)
            if cell.dropped is not None:
                text += f" ({cell.dropped:,} dropped)"
            limit = TARGETS[key]
            if limit is None:
                target, met = "(extra)", "—"
            else:
                ok = (quotient is not None and quotient <= limit
                      and (cell.dropped is None or cell.dropped >= n))
                target, met = f"≤ {limit}×", "✓" if ok else "✗"
            lines.append(
                f"| {key} {title} | pyo3-aio {runtime} | {n:,} | {text} | "
                f"{'—' if quotient is None else f'{quotient:.2f}'} | {target} | {met} |"
            )
        print("\n".join(lines[-1 - len(m.RUNTIMES):]), flush=True)
    section = "\n".join(lines) + "\n"
    print(section)
    if args.output:
        write_section(args.output, section)
    return 0


def write_section(path: str, section: str) -> None:
    """Puts `section` (which starts with "## trio") in the file at `path`: in place of the
    trio section a previous run wrote, else at the end."""
    try:
        with open(path, encoding="utf-8") as existing:
            text = existing.read()
    except FileNotFoundError:
        text = ""
    start = text.find("\n## trio\n")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        tail = text[end:] if end >= 0 else ""
        text = text[:start].rstrip("\n") + "\n\n" + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)


if __name__ == "__main__":
    sys.exit(main())
