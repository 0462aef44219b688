"""Scenario 3 (Rust awaits a trivial Python coroutine) outside the driver, for instruction
counts; needs the pyo3_aio_bench module built into the venv.

    python bench/round_trip_probe.py N KIND [asyncio|uvloop] [tokio|async-std|smol]

KIND: `rust` is pyo3-aio's `await_many(runtime, noop, N)` (a Rust future on the loop
thread awaiting `into_future(noop())` N times in a row); `create_task` is what Python pays
for the same before 3.12, `await loop.create_task(noop())` N times; `eager` (3.12+) is
`await asyncio.Task(noop(), loop=loop, eager_start=True)`. Every kind runs 200 times
first, on the same loop, to warm up: so the runtime's threads exist whichever kind is
counted, as they do in the driver's process, and glibc takes its multi-threaded paths
(system calls, malloc) for Python's own kinds too. Run it under
`PYTHONHASHSEED=0 valgrind --tool=callgrind` at N=200 and N=2200 and divide the
difference by 2000.
"""

import asyncio
import sys

import pyo3_aio_bench as m


async def noop():
    return None


async def round_trips(kind, n, runtime):
    loop = asyncio.get_running_loop()
    if kind == "rust":
        assert await m.await_many(runtime, noop, n) == n
    elif kind == "create_task":
        for _ in range(n):
            await loop.create_task(noop())
    elif kind == "eager":
        for _ in range(n):
            await asyncio.Task(noop(), loop=loop, eager_start=True)
    else:
        raise SystemExit(f"unknown kind {kind!r}: rust, create_task or eager")


async def count(n, kind, runtime):
    kinds = ["rust", "create_task"] + (["eager"] if sys.version_info >= (3, 12) else [])
    for warm in kinds:
        await round_trips(warm, 200, runtime)
    await round_trips(kind, n, runtime)


def main():
    n, kind = int(sys.argv[1]), sys.argv[2]
    loop_kind = sys.argv[3] if len(sys.argv) > 3 else "asyncio"
    runtime = sys.argv[4] if len(sys.argv) > 4 else "tokio"
    if loop_kind == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(count(n, kind, runtime))
    finally:
        loop.close()


if __name__ == "__main__":
    main()
