"""pyo3-asyncio's README examples, run on pyo3-aio, on asyncio's default loop and on uvloop.

Build the module into a virtualenv, then run this file with that virtualenv's python:

    maturin develop --release && python demo.py     # in examples/extension/

`cargo xtask demo` (from the workspace root) does both. Each line says what a step shows;
the exit status is 1 if any result was wrong. Timings are printed, never checked.
"""

import asyncio
import os
import sys
import time

import rust_sleep_example
from rust_sleep_example import RustPanic, call_python_later, rust_panic, rust_sleep

try:
    import uvloop
except ImportError:  # the demo still runs, on asyncio's default loop only
    uvloop = None

SLEEPS = {
    "tokio": rust_sleep,
    "async-std": rust_sleep_example.rust_sleep_async_std,
    "smol": rust_sleep_example.rust_sleep_smol,
}
NAP = 0.02  # seconds per sleep
COUNT = 20  # sleeps in the concurrency steps
LABEL_WIDTH = 44

failures = []


def check(ok, what, problem, timings=""):
    """Print one result line, and what was wrong under it."""
    print(f"  {'ok  ' if ok else 'FAIL'}  {what:<{LABEL_WIDTH}}{timings}")
    if not ok:
        print(f"        {problem}")
        failures.append(what)


def run_on_uvloop(coro):
    """`asyncio.run(coro)` on a uvloop loop, with no wrapper coroutine around `coro`."""
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


async def loop_name():
    loop_type = type(asyncio.get_running_loop())
    return f"{loop_type.__module__}.{loop_type.__name__}"


async def main(sleep):
    """The README's form: rust_sleep() is called inside a coroutine, with the loop running."""
    return await sleep(NAP)


async def one_after_another(sleep):
    return [await sleep(NAP) for _ in range(COUNT)]


async def gathered(sleep):
    return await asyncio.gather(*(sleep(NAP) for _ in range(COUNT)))


async def py_double(x):
    await asyncio.sleep(NAP)
    return 2 * x


async def py_raise(error):
    await asyncio.sleep(0)
    raise error


async def panic_then_sleep():
    try:
        await rust_panic("boom")
    except RustPanic as error:
        caught = error
    else:
        caught = None
    await rust_sleep(0)  # the loop and the runtime carry on after a panic
    return caught


def on_each_runtime(run, what, make_coro, expected):
    """Run `make_coro(sleep)` on each runtime; one line with the three timings."""
    timings, wrong = [], set()
    for sleep in SLEEPS.values():
        started = time.perf_counter()
        result = run(make_coro(sleep))
        timings.append(f"{time.perf_counter() - started:>9.3f}")
        if result != expected:
            wrong.add(describe(result))
    check(
        not wrong,
        what,
        f"expected {describe(expected)}, got {' or '.join(sorted(wrong))}",
        " ".join(timings),
    )


def describe(value):
    """`repr`, shortened for a list of equal items: `[None] * 20`."""
    if isinstance(value, list) and value and all(item == value[0] for item in value):
        return f"[{value[0]!r}] * {len(value)}"
    return repr(value)


def show(run):
    """Every step, on the loop that `run` creates."""
    print(f"  {'':<{LABEL_WIDTH + 6}}" + " ".join(f"{name:>9}" for name in SLEEPS))
    on_each_runtime(run, f"run(rust_sleep({NAP})), no wrapper coroutine", lambda s: s(NAP), None)
    on_each_runtime(run, "run(main()), main awaits rust_sleep()", main, None)
    on_each_runtime(
        run, f"{COUNT} x rust_sleep({NAP}), one after another", one_after_another, [None] * COUNT
    )
    on_each_runtime(run, f"{COUNT} x rust_sleep({NAP}), asyncio.gather", gathered, [None] * COUNT)

    result = run(call_python_later(py_double(21), delay=NAP))
    check(
        result == 42,
        f"Rust awaited a Python coroutine: run(call_python_later(py_double(21))) -> {result!r}",
        "expected 42",
    )

    error = ValueError("raised in Python")
    try:
        run(call_python_later(py_raise(error)))
        caught = None
    except ValueError as raised:
        caught = raised
    check(
        caught is error,
        "a Python exception went through Rust and came back as the same object",
        f"expected {error!r} itself, got {caught!r}",
    )

    sys.stdout.flush()  # Rust's panic hook writes to stderr: keep the lines in order
    caught = run(panic_then_sleep())
    check(
        isinstance(caught, RustPanic) and str(caught) == "boom",
        f"a Rust panic became {type(caught).__name__}({str(caught)!r}), and the loop carried on",
        f"expected RustPanic('boom'), got {caught!r}",
    )


def demo():
    # The panic step panics on purpose: its one-line message is enough, without a backtrace.
    os.environ["RUST_BACKTRACE"] = "0"
    with_uvloop = f"uvloop {uvloop.__version__}" if uvloop else "no uvloop"
    print(f"rust_sleep_example on Python {sys.version.split()[0]} ({with_uvloop}); times in seconds.")
    print("`run(rust_sleep())` with no wrapper coroutine is what pyo3-asyncio rejects with")
    print("'RuntimeError: no running event loop'; here the coroutine binds to its loop when awaited.")

    print(f"\n== asyncio's default loop ({asyncio.run(loop_name())}): run = asyncio.run")
    show(asyncio.run)

    if uvloop is None:
        print("\n== uvloop: not installed, skipped (pip install uvloop)")
    else:
        name = run_on_uvloop(loop_name())
        print(f"\n== uvloop ({name}): run = asyncio.run with uvloop's loop")
        if name != "uvloop.Loop":
            check(False, "the loop is uvloop's", f"got {name}")
        show(run_on_uvloop)

    print()
    if failures:
        print(f"{len(failures)} result(s) wrong: see the FAIL lines above")
        return 1
    print("every result was right")
    return 0


if __name__ == "__main__":
    sys.exit(demo())
