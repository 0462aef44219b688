"""minipool, an executor written with nothing but std and pyo3-aio-core, carrying the
bridge: Python awaits Rust futures that run on it, and Rust futures on it await Python.

Build the module into a virtualenv, then run this file with that virtualenv's python:

    (cd module && maturin develop --release) && python demo.py   # in examples/custom-executor/

`cargo xtask demo` (from the workspace root) does both. The exit status is 1 if any result
was wrong.
"""

import asyncio
import sys

from custom_executor_example import DropProbe, Executor

try:
    import uvloop
except ImportError:  # the demo still runs, on asyncio's default loop only
    uvloop = None

failures = []


def check(ok, what, problem=""):
    print(f"  {'ok  ' if ok else 'FAIL'}  {what}")
    if not ok:
        print(f"        {problem}")
        failures.append(what)


async def double_later(x):
    await asyncio.sleep(0.01)
    return 2 * x


async def sleep_forever(events):
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        events.append("cancelled")
        raise


async def eventually(predicate):
    for _ in range(5000):
        if predicate():
            return True
        await asyncio.sleep(0.001)
    return predicate()


async def show(executor):
    # Python awaits Rust.
    result = await executor.sleep(0.02, "slept")
    check(result == "slept", f"Python awaited minipool's sleep -> {result!r}", "expected 'slept'")
    total, thread = await executor.sum_of_squares(1000), await executor.thread_name()
    check(
        total == 332833500 and thread.startswith("minipool-worker-"),
        f"Python awaited a computation run on thread {thread!r} -> {total}",
        "expected 332833500 from a minipool worker",
    )
    items = [item async for item in executor.count(5, 0.005)]
    check(items == [0, 1, 2, 3, 4], f"async for over a Rust stream on minipool -> {items}")

    # Rust awaits Python.
    result = await executor.await_python(double_later(21), delay=0.01)
    check(result == 42, f"a Rust future on minipool awaited a Python coroutine -> {result!r}")

    # Cancellation, both ways.
    probe = DropProbe()
    task = asyncio.ensure_future(executor.pending_forever(probe))
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    check(await eventually(lambda: probe.dropped), "cancelling the Python task dropped the Rust future")
    events = []
    try:
        await executor.wait_for(sleep_forever(events), 0.02)
    except TimeoutError as error:
        check(
            await eventually(lambda: events == ["cancelled"]),
            f"dropping the Rust future cancelled the Python task ({error})",
        )
    else:
        check(False, "wait_for timed out", "expected TimeoutError")

    # Shutdown with a conversion pending: a clear error, not a hang.
    pending = asyncio.ensure_future(executor.sleep(3600))
    await asyncio.sleep(0.01)
    report = executor.shutdown()
    try:
        await asyncio.wait_for(pending, 5)
        check(False, "shutdown ended the pending sleep", "it completed instead")
    except RuntimeError as error:
        check("minipool" in str(error), f"shutdown {report}: the pending await raised {error}")


def run_on_uvloop(coro):
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def demo():
    print(f"custom_executor_example on Python {sys.version.split()[0]}: minipool, a custom executor")
    print("\n== asyncio's default loop")
    asyncio.run(show(Executor(workers=2)))
    if uvloop is None:
        print("\n== uvloop: not installed, skipped (pip install uvloop)")
    else:
        print(f"\n== uvloop {uvloop.__version__}")
        run_on_uvloop(show(Executor(workers=2)))
    print()
    if failures:
        print(f"{len(failures)} result(s) wrong: see the FAIL lines above")
        return 1
    print("every result was right")
    return 0


if __name__ == "__main__":
    sys.exit(demo())
