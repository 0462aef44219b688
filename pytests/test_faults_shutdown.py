"""The interpreter shuts down while Rust futures on the runtime's workers hold Python
objects and keep completing: the process returns from its main, calls `sys.exit(3)`, or
dies of an unhandled exception, with the loop in the main thread (left unclosed) or in a
daemon thread. Finalization is slowed down (objects with `__del__`) so that Rust futures,
some of which take the GIL to call `into_future`, complete during it. The exit status is the one Python owes (0, 3, 1; never a signal, never
134/139), stderr holds no fatal error or panic, and nothing hangs (the subprocess timeout
is a hang detector, not a speed limit)."""

from __future__ import annotations

import textwrap

import pytest

from harness import report, run_python, stress_size

CHILD = textwrap.dedent(
    """
    import asyncio, sys, threading
    import uvloop
    import pyo3_aio_tests as m

    runtime, loop_kind, where, how = sys.argv[1:5]
    new_loop = uvloop.new_event_loop if loop_kind == "uvloop" else asyncio.new_event_loop

    class Held:
        "A Python object a Rust future holds."

    async def forever():
        await asyncio.sleep(3600)

    in_flight = threading.Event()

    async def main():
        tasks = []
        # Completing over the next ~100 ms, each returning the Python object it holds.
        tasks += [asyncio.ensure_future(m.sleep(runtime, 0.0002 * i, Held())) for i in range(500)]
        tasks += [asyncio.ensure_future(m.hop(runtime, Held())) for _ in range(200)]
        tasks += [m.eager_sleep(runtime, 0.0002 * i, Held()) for i in range(100)]
        tasks += [asyncio.ensure_future(m.local_sleep_on(runtime, 0.0002 * i, Held())) for i in range(100)]
        # Never completing, but waking on the runtime every 100 us while holding an object.
        tasks += [asyncio.ensure_future(m.hold_and_tick(runtime, 100, Held())) for _ in range(50)]
        # Rust awaiting Python: into_future called from the runtime later, during shutdown.
        tasks += [asyncio.ensure_future(m.await_py_after(runtime, 0.001 * i, forever)) for i in range(100)]
        tasks += [asyncio.ensure_future(m.await_py(runtime, forever())) for _ in range(50)]
        await asyncio.sleep(0.005)  # some completed, most in flight
        in_flight.set()
        if where == "daemon_thread":
            await asyncio.gather(*tasks)
        elif how == "exit":
            sys.exit(3)
        elif how == "raise":
            raise RuntimeError("unhandled, on purpose")

    def finish():
        if how == "exit":
            sys.exit(3)
        if how == "raise":
            raise RuntimeError("unhandled, on purpose")

    class Slow:
        "Makes finalization take a while (tens of ms), while Rust futures still complete."
        def __del__(self):
            sum(range(200))

    garbage = [Slow() for _ in range(100_000)]

    if where == "main_thread":
        loop = new_loop()
        loop.run_until_complete(main())  # the loop is left open, tasks pending
    else:
        threading.Thread(target=lambda: new_loop().run_until_complete(main()), daemon=True).start()
        in_flight.wait()
        finish()
    """
)

EXPECTED_STATUS = {"return": 0, "exit": 3, "raise": 1}


@pytest.mark.parametrize("how", ["return", "exit", "raise"])
@pytest.mark.parametrize("where", ["main_thread", "daemon_thread"])
def test_interpreter_shutdown_with_rust_futures_holding_python_objects(loop_kind, runtime, where, how):
    repeats = stress_size(1, 10)
    for _ in range(repeats):  # the timing differs from run to run
        process = run_python(CHILD, runtime, loop_kind, where, how, timeout=120)
        assert process.returncode == EXPECTED_STATUS[how], (process.returncode, process.stderr)
        for sign in ("Fatal Python error", "panicked", "Segmentation fault", "Aborted"):
            assert sign not in process.stderr, process.stderr
        if how == "raise":
            assert "RuntimeError: unhandled, on purpose" in process.stderr, process.stderr
    report(
        "test_interpreter_shutdown_with_rust_futures_holding_python_objects",
        runtime=runtime,
        loop=loop_kind,
        where=where,
        how=how,
        processes=repeats,
    )


# A daemon thread's loop resumes a task from Rust frames (our drain calls the Task's wake-up
# inline) and the task's step drops the GIL (a blocking lock acquire) until finalization has
# started: the step can only take the GIL back after the runtime is marked finalizing, when
# CPython 3.9-3.13 make the thread exit (`pthread_exit`, a forced unwind of its stack) and
# 3.14 parks it. No clock decides the order: the gate opens from the `__del__` of an object
# in a reference cycle with the collector disabled, which only finalization's last
# collection frees (after it marked the runtime finalizing; `__del__` checks).
FORCED_EXIT_CHILD = textwrap.dedent(
    """
    import asyncio, gc, os, sys, threading
    import uvloop
    import pyo3_aio_tests as m

    runtime, loop_kind, resumed_by = sys.argv[1:4]
    new_loop = uvloop.new_event_loop if loop_kind == "uvloop" else asyncio.new_event_loop

    class OpensAtFinalization:
        "Opens the gate when collected (keeps what it needs: globals are gone by then)."
        def __init__(self, gate):
            self.gate, self.write, self.finalizing = gate, os.write, sys.is_finalizing
            self.cycle = self
        def __del__(self):
            when = b"during" if self.finalizing() else b"before"
            self.write(2, b"gate opened " + when + b" finalization\\n")
            self.gate.release()

    gc.disable()
    gate = threading.Lock()
    gate.acquire()
    OpensAtFinalization(gate)
    stepping = threading.Event()

    async def step_that_blocks(resumed):
        await resumed
        stepping.set()
        gate.acquire()  # the GIL is dropped inside the resumed step

    async def main():
        if resumed_by == "rust":
            rust_gate = m.Gate()  # a future on the runtime: the drain resumes its awaiter
            task = asyncio.ensure_future(step_that_blocks(rust_gate.wait(runtime, "runtime")))
            await asyncio.sleep(0)  # the task ran up to its await
            rust_gate.open_from_thread()
        else:
            future = asyncio.get_running_loop().create_future()  # resumed by the loop itself
            task = asyncio.ensure_future(step_that_blocks(future))
            await asyncio.sleep(0)
            future.set_result(None)
        await task

    threading.Thread(target=lambda: new_loop().run_until_complete(main()), daemon=True).start()
    stepping.wait()
    """
)


@pytest.mark.parametrize("resumed_by", ["rust", "asyncio"])
def test_daemon_thread_forced_to_exit_inside_a_step_resumed_from_rust(loop_kind, runtime, resumed_by):
    """The process exits with status 0 and no fatal error, as it does when asyncio resumed
    the step itself: a thread CPython makes exit with Rust frames on its stack is parked
    before any of them unwinds (unwinding them aborts, and their destructors would touch
    Python objects without the GIL)."""
    process = run_python(FORCED_EXIT_CHILD, runtime, loop_kind, resumed_by, timeout=120)
    assert process.returncode == 0, (process.returncode, process.stderr)
    assert "gate opened during finalization" in process.stderr, process.stderr
    for sign in ("Fatal", "FATAL", "panicked", "Segmentation fault", "Aborted"):
        assert sign not in process.stderr, process.stderr
