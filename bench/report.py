"""The report of the side-by-side benchmarks (see `driver.py`): the Markdown tables, the
targets met or missed, the machine, and RESULTS.md's one section per CPython version."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Optional

from contenders import (
    ASYNCIO,
    EAGER_TASK,
    HAS_EAGER_START,
    LOOPS,
    PYO3_NATIVE,
    RUNTIME_ORDER,
    Contender,
    counterpart,
)
from sampling import ratio

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent




def fmt_value(value: float, unit: str) -> str:
    if unit == "KiB":
        return f"{value / 1024:.1f} MiB" if value >= 10_240 else f"{value:.0f} KiB"
    if unit == "ns":
        if value >= 10_000:
            return f"{value / 1000:.1f} µs"
        return f"{value:.0f} ns"
    return f"{value:.1f} ms"


def fmt_ratio(cell, reference) -> str:
    """`cell` ÷ `reference` (two `sampling.Cell`s, see `sampling.ratio`), or "—"."""
    quotient = ratio(cell, reference)
    return "—" if quotient is None else fmt_number(quotient)


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
            line.append("—" if c == ASYNCIO else fmt_ratio(cell, base))
            line.append(fmt_ratio(cell, par) if par else "—")
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
                quotient = ratio(cell, ref)
                quotient = float("inf") if quotient is None else quotient
                ok &= quotient <= limit
                ratios.append(fmt_number(quotient))
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
    """Puts the criterion section in the file at `output`, in place of the old one; the
    sections after it (trio's, written by `trio_driver.py`) stay."""
    text = output.read_text() if output.exists() else ""
    after = ""
    if CRITERION_HEADING in text:
        text, old = text.split(CRITERION_HEADING, 1)
        text = text.rstrip("\n") + "\n\n"
        following = old.find("\n## ")
        if following >= 0:
            after = "\n" + old[following:].lstrip("\n")
    elif text and not text.endswith("\n\n"):
        text = text.rstrip("\n") + "\n\n"
    section = criterion_section(directory)
    output.write_text(text + section.rstrip("\n") + "\n" + after)
    print(section)
    print(f"wrote {output}", file=sys.stderr)
