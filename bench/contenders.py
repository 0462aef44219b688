"""The contenders of the side-by-side benchmarks (see `driver.py`): who runs each scenario,
and the loops they run on."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Optional

LOOPS = ("asyncio", "uvloop")
LOOP_TITLES = {"asyncio": "default loop", "uvloop": "uvloop"}
RUNTIME_ORDER = ("tokio", "async-std", "smol")

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
