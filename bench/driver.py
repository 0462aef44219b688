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
says how many runs it has. The contenders of a scenario take turns, round by round, and a
ratio is the median of the per-round quotients (see ``sampling.measure_rounds``). Every contender of a scenario runs the same size (the "n"
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
import datetime
import os
import platform
import shlex
import sys
from pathlib import Path

from contenders import LOOP_TITLES, LOOPS
from report import (
    HERE,
    ROOT,
    append_criterion,
    fmt_value,
    issue14_checks,
    load,
    machine,
    merge_version,
    table,
    target_lines,
)
from sampling import child_memory, contenders_for, measure_memory, measure_rounds
from scenarios import SCENARIOS, TASKS, now


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
            sized = [(c, max(s.size(c) // scale, TASKS * 2)) for c in rows
                     if s.size(c) is not None]
            t0 = now()
            measured = measure_rounds(s, sized, kind, runs, args.budget)
            for c, n in sized:
                cell = cells[(c, kind)] = measured[c]
                shown = cell.error or fmt_value(cell.value, s.unit)
                print(f"# {s.key:>3} {LOOP_TITLES[kind]:<12} {c.label:<42} n={n:<7} "
                      f"{shown} ({cell.runs} runs)", file=sys.stderr, flush=True)
            print(f"# {s.key:>3} {LOOP_TITLES[kind]}: {now() - t0:.1f} s",
                  file=sys.stderr, flush=True)
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
        f"{args.budget:.0f} s budget early says how many runs it has. The contenders of a "
        "table take turns on each loop: every round runs each of them once, one after the "
        "other (each on a loop of its own), the order reversed every other round. "
        "\"÷ asyncio\" and \"÷ p-a-r\" are this row's figure divided by plain asyncio's and by "
        "pyo3-async-runtimes' on the same loop and runtime, round by round, and the median of "
        "those quotients: both figures of a quotient were taken moments apart, which the "
        "speed of a shared machine needs (it drifts by up to 2× over minutes). Below 1 is "
        "faster (0.10 = 10× faster). n/a: the contender cannot do this. Rows without a suffix use the default "
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
