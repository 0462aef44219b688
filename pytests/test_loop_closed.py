"""A loop that closes while Rust work is pending, and an interpreter that exits with Rust
work in flight: no crash, no hang, a clear error where one is due, no leaked descriptors.
Anything that might crash runs in a fresh interpreter."""

from __future__ import annotations

import asyncio
import gc
import os
import textwrap

import pytest

import pyo3_aio_tests as m
from harness import loop_factory, run_on, run_python

PRELUDE = textwrap.dedent(
    """
    import asyncio, gc, sys, time
    import uvloop
    import pyo3_aio_tests as m

    runtime, loop_kind = sys.argv[1], sys.argv[2]
    new_loop = uvloop.new_event_loop if loop_kind == "uvloop" else asyncio.new_event_loop

    def wait_until(predicate, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                return predicate()
            time.sleep(0.001)
        return True
    """
)


def assert_clean_exit(process):
    assert process.returncode == 0, (process.returncode, process.stdout, process.stderr)
    assert "panicked" not in process.stderr, process.stderr
    assert "Fatal Python error" not in process.stderr, process.stderr


def test_rust_futures_completing_into_a_closed_loop_do_not_crash(loop_kind, runtime):
    code = PRELUDE + textwrap.dedent(
        """
        loop = new_loop()

        async def start():
            tasks = [asyncio.ensure_future(m.sleep_counted(runtime, 0.02, i)) for i in range(20)]
            tasks += [asyncio.ensure_future(m.local_sleep_on(runtime, 0.02, i)) for i in range(20)]
            eager = [m.eager_sleep(runtime, 0.02, i) for i in range(20)]
            await asyncio.sleep(0.001)  # all pending now
            return tasks, eager

        before = m.dropped()
        tasks, eager = loop.run_until_complete(start())
        loop.close()
        # The Rust futures finish after the loop closed (their drop shows they ran out).
        assert wait_until(lambda: m.dropped() >= before + 20), m.dropped() - before
        time.sleep(0.05)  # let the local and eager ones' timers fire too
        assert not any(task.done() for task in tasks)
        del tasks, eager
        gc.collect()

        async def again():  # a new loop works afterwards
            return await m.sleep(runtime, 0.001, "again"), await m.await_py(runtime, asyncio.sleep(0, "py"))

        print(asyncio.run(again()) if loop_kind == "asyncio" else new_loop().run_until_complete(again()))
        """
    )
    process = run_python(code, runtime, loop_kind)
    assert_clean_exit(process)
    assert process.stdout.strip().splitlines()[-1] == "('again', 'py')"


def test_a_rust_future_pending_when_its_loop_closes_is_dropped_not_left_waiting(
    loop_kind, runtime
):
    """A Rust future that would ask its loop to run a coroutine after the loop closed: the
    loop's close releases it (it is dropped, as the loop's own tasks are), so it never
    wakes into a closed loop and nothing waits forever."""
    code = PRELUDE + textwrap.dedent(
        """
        loop = new_loop()

        async def forever():
            await asyncio.sleep(3600)

        async def start():
            task = asyncio.ensure_future(m.record_await_py_after(runtime, 0.02, forever))
            await asyncio.sleep(0.001)  # pending on the runtime now
            return task

        async def start_guarded():
            asyncio.ensure_future(m.guarded_sleep(runtime, "guard", 0.02, 1, "runtime"))
            await asyncio.sleep(0.001)

        task = loop.run_until_complete(start())
        loop.run_until_complete(start_guarded())
        loop.close()
        print("guard alive:", wait_until(lambda: not m.alive("guard"), timeout=5.0) is False)
        # Had the first future woken, it would have recorded within milliseconds.
        time.sleep(0.1)
        print("recorded:", m.recorded())
        """
    )
    process = run_python(code, runtime, loop_kind)
    assert_clean_exit(process)
    lines = process.stdout.strip().splitlines()
    assert lines[-2:] == ["guard alive: False", "recorded: None"], lines


def test_interpreter_exit_with_rust_work_in_flight_does_not_crash(loop_kind, runtime):
    code = PRELUDE + textwrap.dedent(
        """
        import threading

        started = threading.Event()

        async def forever():
            await asyncio.sleep(3600)

        async def main():
            tasks = [asyncio.ensure_future(m.sleep(runtime, 0.0001 * i, i)) for i in range(200)]
            tasks += [asyncio.ensure_future(m.never(runtime)) for _ in range(50)]
            tasks += [asyncio.ensure_future(m.local_sleep_on(runtime, 0.0001 * i, i)) for i in range(50)]
            tasks += [asyncio.ensure_future(m.await_py(runtime, forever())) for _ in range(50)]
            tasks += [m.eager_sleep(runtime, 0.0001 * i, i) for i in range(50)]
            await asyncio.sleep(0)
            started.set()
            await asyncio.gather(*tasks)

        # The loop runs in a daemon thread; the main thread exits while completions land.
        threading.Thread(target=lambda: new_loop().run_until_complete(main()), daemon=True).start()
        started.wait()
        print("exiting")
        """
    )
    for _ in range(3):  # the timing differs from run to run
        process = run_python(code, runtime, loop_kind)
        assert_clean_exit(process)
        assert process.stdout.strip() == "exiting"


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd to count descriptors")
def test_closed_loops_leak_no_descriptors(loop_kind, runtime):
    def open_descriptors():
        return len(os.listdir("/proc/self/fd"))

    async def main():
        await m.sleep(runtime, 0.001, None)  # sets up the loop's wake-up descriptor
        await m.await_py(runtime, asyncio.sleep(0.001))

    run_on(loop_kind, main)
    gc.collect()
    before = open_descriptors()
    for _ in range(20):
        run_on(loop_kind, main)
        gc.collect()
    # One loop may stay cached; twenty may not.
    assert open_descriptors() - before <= 2


def test_loops_closed_with_completions_in_flight_leak_no_descriptors(loop_kind, runtime):
    """Rust futures (awaited and eager) that complete after their loop closed: the loop's
    wake-up state is released, the wakers let go of the waiting Python objects, and the
    abandoned tasks are collected, so the loops' descriptors are closed.

    `m.dropped()` before `gc.collect()` is any call into the extension: PyO3 applies the
    reference releases that runtime threads deferred (they hold no GIL) at its next entry.
    Local (loop-thread) futures are left out: a `!Send` future woken after its loop closed
    is leaked rather than dropped on a foreign thread (docs/ARCHITECTURE.md)."""
    code = PRELUDE + textwrap.dedent(
        """
        import os
        def open_descriptors():
            return len(os.listdir("/proc/self/fd"))

        def one():
            loop = new_loop()
            async def start():
                tasks = [asyncio.ensure_future(m.sleep(runtime, 0.02, i)) for i in range(5)]
                eager = [m.eager_sleep(runtime, 0.02, i) for i in range(5)]
                await asyncio.sleep(0.001)
                return tasks, eager
            tasks, eager = loop.run_until_complete(start())
            loop.close()
            del tasks, eager

        def settle():
            time.sleep(0.1)  # every Rust future has completed into its closed loop
            m.dropped()
            gc.collect()

        one()
        settle()
        before = open_descriptors()
        for _ in range(20):
            one()
        settle()
        print("descriptors", before, open_descriptors())
        """
    )
    process = run_python(code, runtime, loop_kind)
    assert process.returncode == 0, (process.returncode, process.stdout, process.stderr)
    assert "panicked" not in process.stderr, process.stderr
    before, after = map(int, process.stdout.split()[-2:])
    # The last loop may stay cached on the thread; twenty may not.
    assert after - before <= 2, (before, after)


def test_a_new_loop_works_after_one_closed_with_work_pending(loop_kind, runtime):
    loop = loop_factory(loop_kind)()

    async def start():
        task = asyncio.ensure_future(m.never(runtime))
        await asyncio.sleep(0)
        return task

    task = loop.run_until_complete(start())
    task.cancel()
    loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
    loop.close()

    async def main():
        return await asyncio.gather(*[m.sleep(runtime, 0.001, i) for i in range(10)])

    assert run_on(loop_kind, main) == list(range(10))
