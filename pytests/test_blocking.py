"""Synchronous callers: `block_on` from a plain thread, from inside a running loop's
callback, from a thread pool, nested on a background loop, interrupted by Ctrl-C, from an
IPython session; `into_future` with no loop running anywhere; `spawn_task`'s RustTask as a
concurrent.futures.Future and as an awaitable on every loop kind; the background loops'
shutdown and fork. Every wait is bounded."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

import pyo3_aio_tests as m
from harness import PATIENCE, run_on, run_python

BACKGROUND = "pyo3-aio-background-loop"
VAR = contextvars.ContextVar("VAR", default="unset")


async def where(value):
    """Where a coroutine ran: its value, its loop, its thread's name, VAR."""
    await asyncio.sleep(0.001)
    return value, asyncio.get_running_loop(), threading.current_thread().name, VAR.get()


def in_thread(function, *args):
    """Runs `function(*args)` on a new thread; returns what it returned or raised."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(function, *args).result(PATIENCE * 4)


@pytest.mark.parametrize("what", ["ready", "sleep"])
def test_block_on_a_plain_thread(runtime, what):
    assert m.block(runtime, what, "value") == "value"
    assert in_thread(m.block, runtime, what, "value") == "value"


def test_block_on_errors_and_panics_cross(runtime):
    with pytest.raises(ValueError, match="from Rust"):
        m.block(runtime, "error", None)
    import pyo3_aio

    with pytest.raises(pyo3_aio.RustPanic, match="boom in a blocking call"):
        m.block(runtime, "panic", None)


@pytest.mark.parametrize("what", ["await", "await-inline"])
def test_block_on_awaits_python_with_no_loop_anywhere(runtime, what):
    # No loop runs in the process: the coroutine runs on a background loop.
    value, loop, thread, _ = in_thread(m.block, runtime, what, where("py"))
    assert value == "py"
    assert thread.startswith(BACKGROUND)


def test_block_on_inside_a_running_loop(runtime, loop_kind):
    """A sync function called by a coroutine blocks its own loop: the Python work of the
    future runs on a background loop, with the caller's context variables."""

    async def main():
        VAR.set("caller's")
        here = asyncio.get_running_loop()
        value, loop, thread, var = m.block(runtime, "await", where("py"))
        return value, loop is here, thread, var

    value, same_loop, thread, var = run_on(loop_kind, main)
    assert value == "py"
    assert not same_loop
    assert thread.startswith(BACKGROUND)
    assert var == "caller's"


def test_block_on_from_a_thread_pool_uses_the_free_loop(runtime, loop_kind):
    """From a worker thread while the application's loop runs (and has hosted a
    conversion): the coroutine runs on that loop, which is free."""

    async def main():
        here = asyncio.get_running_loop()
        assert await m.sleep(runtime, 0.001, "registered") == "registered"
        value, loop, thread, _ = await here.run_in_executor(
            None, m.block, runtime, "await", where("py")
        )
        return value, loop is here, thread

    value, on_app_loop, thread = run_on(loop_kind, main)
    assert value == "py"
    assert on_app_loop
    assert thread == threading.main_thread().name


def test_block_on_nested_on_a_background_loop(runtime):
    """A coroutine running on a background loop makes a blocking call whose future awaits
    Python again: that runs on the next background loop, never on the blocked one."""

    async def inner_blocks():
        value, loop, thread, _ = m.block(runtime, "await", where("innermost"))
        return value, loop is asyncio.get_running_loop(), thread, threading.current_thread().name

    value, same, thread, outer_thread = in_thread(m.block, runtime, "await", inner_blocks())
    assert value == "innermost"
    assert not same
    assert outer_thread.startswith(BACKGROUND)
    assert thread.startswith(BACKGROUND) and thread != outer_thread


CTRL_C = """
import os, signal, sys, threading, time
import pyo3_aio_tests as m

def interrupt_once_polled():
    # SIGINT once the Rust future has been polled (it is then in the blocking call, either
    # still in its inline poll or waiting): no guess at how long that takes.
    deadline = time.monotonic() + 30
    while m.blocking_started() == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=interrupt_once_polled, daemon=True).start()
try:
    m.block(sys.argv[1], "never", None)
except KeyboardInterrupt:
    print("interrupted", m.blocking_started(), m.blocking_dropped(), flush=True)
"""


def test_ctrl_c_interrupts_a_blocking_call_and_drops_the_future(runtime):
    done = run_python(CTRL_C, runtime, timeout=60)
    assert done.returncode == 0, done.stderr
    # The future was polled, then dropped before KeyboardInterrupt reached the caller.
    assert done.stdout.strip() == "interrupted 1 1", (done.stdout, done.stderr)


TASK_CTRL_C = """
import os, signal, sys, threading, time
import pyo3_aio_tests as m
task = m.spawn(sys.argv[1], "never", None)

def interrupt_once_polled():
    deadline = time.monotonic() + 30
    while m.blocking_started() == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(0.05)  # into result()'s wait (an earlier signal is raised just the same)
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=interrupt_once_polled, daemon=True).start()
try:
    task.result()
except KeyboardInterrupt:
    print("interrupted", task.done(), flush=True)
    print("cancelled", task.cancel(), m.blocking_dropped(), flush=True)
"""


def test_ctrl_c_interrupts_a_task_result_wait(runtime):
    done = run_python(TASK_CTRL_C, runtime, timeout=60)
    assert done.returncode == 0, done.stderr
    # result() without a timeout gave way to Ctrl-C; the task still runs until cancelled.
    assert done.stdout.split("\n")[:2] == ["interrupted False", "cancelled True 1"], (
        done.stdout,
        done.stderr,
    )


IPYTHON = """
import asyncio, threading
import pyo3_aio_tests as m
async def where():
    await asyncio.sleep(0.001)
    return threading.current_thread().name
await asyncio.sleep(0)  # a cell with top-level await runs on IPython's loop
here = asyncio.get_running_loop()
print("RESULT", m.block("tokio", "sleep", "ready"), m.block("tokio", "await", where()))
"""


def test_block_on_in_ipython_with_a_running_loop(tmp_path):
    """In IPython, a cell with top-level await runs on a loop on the main thread; a
    blocking call made there completes, its coroutine on a background loop."""
    ipython = shutil.which("ipython", path=os.path.dirname(sys.executable))
    assert ipython, "IPython is part of the test venv"
    script = tmp_path / "cell.ipy"
    script.write_text(IPYTHON)
    done = subprocess.run(
        [ipython, "--no-banner", "--quick", "--colors=NoColor", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
    assert lines == [f"RESULT ready {BACKGROUND}"], (done.stdout, done.stderr)


def test_task_from_sync_code(runtime):
    task = m.spawn(runtime, "sleep", "value")
    import pyo3_aio

    assert isinstance(task, concurrent.futures.Future)
    assert isinstance(task, pyo3_aio.RustTask)
    called = threading.Event()
    task.add_done_callback(lambda done: called.set())
    assert task.result(timeout=PATIENCE) == "value"
    assert task.done() and not task.cancelled()
    assert called.wait(PATIENCE)
    assert task.cancel() is False
    with pytest.raises(ValueError, match="from Rust"):
        m.spawn(runtime, "error", None).result(timeout=PATIENCE)
    assert isinstance(
        m.spawn(runtime, "panic", None).exception(timeout=PATIENCE), pyo3_aio.RustPanic
    )


def test_task_result_timeout_and_cancel_drops_the_future(runtime):
    before = m.blocking_dropped()
    task = m.spawn(runtime, "never", None)
    with pytest.raises(concurrent.futures.TimeoutError):
        task.result(timeout=0.05)
    assert task.cancel() is True
    # cancel() returns once the Rust future is gone.
    assert m.blocking_dropped() == before + 1
    assert task.cancelled()
    with pytest.raises(concurrent.futures.CancelledError):
        task.result(timeout=PATIENCE)


def test_task_awaited_on_every_loop(runtime, loop_kind):
    async def main():
        VAR.set("spawner's")
        task = m.spawn(runtime, "await", where("py"))
        plain = await m.spawn(runtime, "sleep", "slept")
        wrapped = await asyncio.wrap_future(m.spawn(runtime, "ready", "ready"))
        value, loop, thread, var = await task
        return plain, wrapped, value, thread, var

    plain, wrapped, value, thread, var = run_on(loop_kind, main)
    assert (plain, wrapped, value) == ("slept", "ready", "py")
    assert thread.startswith(BACKGROUND)
    assert var == "spawner's"


def test_cancelling_the_awaiting_task_cancels_the_rust_task(runtime, loop_kind):
    async def main():
        before = m.blocking_dropped()
        rust_task = m.spawn(runtime, "never", None)
        waiter = asyncio.ensure_future(asyncio.wait_for(rust_task, 0.05))
        with pytest.raises(asyncio.TimeoutError):
            await waiter
        deadline = time.monotonic() + PATIENCE
        while m.blocking_dropped() == before and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return m.blocking_dropped() - before, rust_task.cancelled()

    assert run_on(loop_kind, main) == (1, True)


def test_tasks_with_concurrent_futures_helpers(runtime):
    tasks = [m.spawn(runtime, "sleep", i) for i in range(20)]
    done, pending = concurrent.futures.wait(tasks, timeout=PATIENCE * 2)
    assert not pending
    assert sorted(task.result() for task in done) == list(range(20))


def test_background_loops_shut_down_and_restart(runtime):
    assert in_thread(m.block, runtime, "await", where("before"))[0] == "before"
    assert any(t.name.startswith(BACKGROUND) for t in threading.enumerate())
    assert m.shutdown_background_loops(2.0) is True
    assert not any(t.name.startswith(BACKGROUND) for t in threading.enumerate())
    # The next call that needs one starts a fresh loop.
    assert in_thread(m.block, runtime, "await", where("after"))[0] == "after"


def _child_blocks(runtime, conn):
    conn.send(m.block(runtime, "await", where("child"))[::2])


def test_background_loop_after_fork():
    # tokio: smol and async-std refuse in a forked child whose parent used them (test_fork).
    runtime = "tokio"
    assert in_thread(m.block, runtime, "await", where("parent"))[0] == "parent"
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child_blocks, args=(runtime, send))
    child.start()
    send.close()
    assert receive.poll(PATIENCE * 4), "the child did not answer"
    value, thread = receive.recv()
    child.join(PATIENCE)
    assert (value, thread.startswith(BACKGROUND)) == ("child", True)
    assert child.exitcode == 0


def test_exit_with_background_loops_is_quick_and_silent():
    code = """
import asyncio, pyo3_aio_tests as m
async def forever():
    await asyncio.sleep(3600)
task = m.spawn("tokio", "await", forever())
print(m.block("tokio", "await", asyncio.sleep(0.01, "slept")))
"""
    # Bounded by the subprocess timeout: the atexit shutdown must not hang on the pending
    # task, and nothing may be printed.
    done = run_python(code, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "slept"
    assert done.stderr == ""
