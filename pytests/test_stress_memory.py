"""Memory over many conversions each way, in a fresh interpreter (so the rest of the suite
does not pollute the figures): Rust -> Python (a Rust future ready at once, and one that
hops to the runtime and completes from a worker thread, both returning a Python object)
and Python -> Rust (Rust awaiting a Python coroutine through `into_future`).

Measured after a warm-up and after the run: RSS (VmRSS), Python's allocated blocks, and
the reference counts of the objects that crossed (the value returned, the factory passed).

The bounds, and why:
- Python objects: `sys.getallocatedblocks()` counts every live block of Python's
  allocator exactly. Growth must stay below one block per 100 conversions: one leaked
  Python object (at least one block) per conversion, or even per 100, exceeds it.
- RSS: a leaked Rust allocation costs at least 32 bytes of heap (glibc's smallest chunk,
  64-bit), so a leak of one allocation per conversion grows RSS by 32 MB per million.
  The bound is 16 bytes per conversion (48 MB for a million of each of the three kinds),
  with a floor of 4 MB for the bounded size, where RSS moves by up to a few hundred KB
  just from the allocator keeping freed arenas and the runtimes' thread caches (measured
  0.1-0.3 MB at 50,000 of each kind). A leak of one 32-byte allocation per conversion
  exceeds the bound at both sizes (4.8 MB at the bounded size).
- Reference counts: exactly back to their starting value. PyO3 defers the releases that
  runtime threads make without the GIL to its next entry, so the child calls into the
  extension once (`m.dropped()`) before `gc.collect()` and counting.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from harness import report, run_python, stress_size

CHILD = textwrap.dedent(
    """
    import asyncio, gc, json, sys, time
    import uvloop
    import pyo3_aio_tests as m

    runtime, loop_kind, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    new_loop = uvloop.new_event_loop if loop_kind == "uvloop" else asyncio.new_event_loop
    BATCH = 1000       # hops gathered at once
    CHAINS = 20        # Rust futures awaiting Python coroutines side by side

    def rss():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024

    value = object()
    async def returns_value():
        return value
    def factory():
        return returns_value()

    async def ready(n):
        for _ in range(n):
            assert await m.ready(runtime, value) is value

    async def hop(n):
        for start in range(0, n, BATCH):
            size = min(BATCH, n - start)
            results = await asyncio.gather(*[m.hop(runtime, value) for _ in range(size)])
            assert len(results) == size and all(result is value for result in results)
            del results

    async def into_future(n):
        per_chain = n // CHAINS
        done = await asyncio.gather(
            *[m.await_py_times(runtime, factory, per_chain) for _ in range(CHAINS)])
        assert done == [per_chain] * CHAINS

    async def run_all(n):
        timings = {}
        for name, phase in (("ready", ready), ("hop", hop), ("into_future", into_future)):
            started = time.monotonic()
            await phase(n)
            timings[name] = round(time.monotonic() - started, 2)
        return timings

    def settle():
        m.dropped()  # applies the releases PyO3 deferred on threads without the GIL
        gc.collect()
        m.dropped()
        gc.collect()

    loop = new_loop()
    asyncio.set_event_loop(loop)
    settle()
    refs_value, refs_factory = sys.getrefcount(value), sys.getrefcount(factory)
    loop.run_until_complete(run_all(max(count // 5, 20_000)))   # warm-up
    settle()
    rss_before, blocks_before = rss(), sys.getallocatedblocks()
    timings = loop.run_until_complete(run_all(count))
    settle()
    rss_after, blocks_after = rss(), sys.getallocatedblocks()
    print(json.dumps({
        "conversions_each": count,
        "rss_before": rss_before, "rss_after": rss_after,
        "blocks_before": blocks_before, "blocks_after": blocks_after,
        "refs_value": [refs_value, sys.getrefcount(value)],
        "refs_factory": [refs_factory, sys.getrefcount(factory)],
        "seconds": timings,
    }))
    loop.close()
    """
)


def test_many_conversions_each_way_leak_nothing(loop_kind, runtime):
    count = stress_size(50_000, 1_000_000)
    process = run_python(CHILD, runtime, loop_kind, str(count), timeout=1200)
    assert process.returncode == 0, (process.returncode, process.stdout, process.stderr)
    figures = json.loads(process.stdout.strip().splitlines()[-1])
    report("test_many_conversions_each_way_leak_nothing", runtime=runtime, loop=loop_kind, **figures)
    # Three kinds of conversion, `count` each.
    conversions = 3 * count
    assert figures["refs_value"][0] == figures["refs_value"][1], figures
    assert figures["refs_factory"][0] == figures["refs_factory"][1], figures
    assert figures["blocks_after"] - figures["blocks_before"] < conversions // 100, figures
    rss_bound = max(16 * conversions, 4 * 2**20)
    assert figures["rss_after"] - figures["rss_before"] < rss_bound, (figures, rss_bound)


@pytest.mark.parametrize("leak_per_conversion", [48])
def test_the_rss_bound_would_see_a_leak(leak_per_conversion):
    """The RSS bound is not vacuous: a planted leak of `leak_per_conversion` bytes per
    conversion (kept Python bytes objects, each its own heap allocation) exceeds it at
    the bounded size as at the full one."""
    count = stress_size(50_000, 1_000_000)
    code = textwrap.dedent(
        """
        import gc, sys
        def rss():
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        n, size = int(sys.argv[1]), int(sys.argv[2])
        gc.collect()
        before = rss()
        kept = [bytes(size) for _ in range(n)]
        print(rss() - before)
        """
    )
    conversions = 3 * count
    # bytes(n) carries a 33-byte header: ask for the payload that makes the total the leak.
    process = run_python(code, str(conversions), str(leak_per_conversion - 33))
    assert process.returncode == 0, process.stderr
    growth = int(process.stdout.strip())
    assert growth >= max(16 * conversions, 4 * 2**20), growth
