"""Scenario 1 (the ready await) outside the driver, for instruction counts and a quick
wall-clock check; needs the pyo3_aio_bench module built into the venv.

    python bench/ready_probe.py count N KIND [asyncio|trio]   # KIND: rust, native, floor or py
    python bench/ready_probe.py wall [asyncio|uvloop|trio]

`count` awaits N times after 50 awaits of each kind to warm up; run it under
`PYTHONHASHSEED=0 valgrind --tool=callgrind` at N=0 and N=5000 and divide the difference
by 5000. `wall` prints the best of 7 interleaved runs of 200,000 awaits of each kind (tokio,
`time.perf_counter`), in ns per await, and the ratios to the `async def`.

Kinds: `rust` is pyo3-aio's `ready_tokio(i)`; `native` PyO3's own `async fn`; `floor` the
cheapest awaitable an extension can return for a value it has (`floor(i)`, no Rust future:
see `bench/pyo3_aio_bench/src/floor.rs`); `py` an `async def` returning its argument.
"""

import sys
import time

import pyo3_aio_bench as m


async def returns(v):
    return v


async def awaits(kind, n):
    ready, native, floor = m.ready_tokio, m.native_ready, m.floor
    if kind == "rust":
        for i in range(n):
            await ready(i)
    elif kind == "native":
        for i in range(n):
            await native(i)
    elif kind == "floor":
        for i in range(n):
            await floor(i)
    else:
        for i in range(n):
            await returns(i)


async def count(n, kind):
    for warm in ("rust", "native", "floor", "py"):
        await awaits(warm, 50)
    await awaits(kind, n)


async def wall():
    best = dict.fromkeys(("py", "rust", "native", "floor"), float("inf"))
    for _ in range(7):
        for kind in best:
            start = time.perf_counter()
            await awaits(kind, 200_000)
            best[kind] = min(best[kind], (time.perf_counter() - start) / 200_000 * 1e9)
    return best


def run(framework, main):
    if framework == "trio":
        import trio

        return trio.run(lambda: main)
    if framework == "uvloop":
        import uvloop

        return uvloop.run(main)
    import asyncio

    return asyncio.run(main)


if __name__ == "__main__":
    if sys.argv[1] == "count":
        run(sys.argv[4] if len(sys.argv) > 4 else "asyncio", count(int(sys.argv[2]), sys.argv[3]))
    else:
        framework = sys.argv[2] if len(sys.argv) > 2 else "asyncio"
        best = run(framework, wall())
        print(
            sys.version.split()[0],
            framework,
            {kind: round(ns) for kind, ns in best.items()},
            " ".join(f"{kind}/py {best[kind] / best['py']:.2f}" for kind in ("rust", "native", "floor")),
        )
