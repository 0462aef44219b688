"""Runtimes as values and explicit shutdown: a tokio runtime or smol executor the test owns
runs conversions (on every loop kind); several runtimes in one process keep to themselves;
pending conversions end with a clear error naming the runtime when it is shut down or
dropped; a later conversion on a shut-down global runtime gets a fresh one; interpreter exit
with conversions pending is quick and silent."""

from __future__ import annotations

import asyncio
import time

import pytest

import pyo3_aio_tests as m
from harness import run_python

DROPPED = "the Rust future was dropped by the {} runtime before it completed"


@pytest.mark.parametrize("current_thread", [False, True], ids=["multi-thread", "current-thread"])
def test_own_tokio_runs_conversions(run, current_thread):
    own = m.OwnTokio("own-tokio", current_thread)
    try:

        async def main():
            # The global runtime and two runtimes of our own, at once.
            other = m.OwnTokio("other-tokio", False)
            try:
                mine, theirs, global_ = await asyncio.gather(
                    own.sleep(0.01, "mine"),
                    other.sleep(0.01, "theirs"),
                    m.sleep("tokio", 0.01, "global"),
                )
                workers = await own.local_sleep(0.01)
            finally:
                other.shutdown(1.0)
            return mine, theirs, global_, workers

        mine, theirs, global_, workers = run(main)
        assert mine == ("mine", "own-tokio")
        assert theirs == ("theirs", "other-tokio")
        assert global_ == "global"
        # The loop-thread future entered the runtime the conversion named.
        assert workers == (1 if current_thread else 3)
    finally:
        own.shutdown(1.0)


def test_own_smol_runs_conversions(run):
    own = m.OwnSmol("own-smol")
    try:

        async def main():
            return await asyncio.gather(own.sleep(0.01, "mine"), m.sleep("smol", 0.01, "global"))

        assert run(main) == [("mine", "own-smol"), "global"]
    finally:
        own.drop_executor()


@pytest.mark.parametrize("current_thread", [False, True], ids=["multi-thread", "current-thread"])
def test_own_tokio_shut_down_with_pending(run, current_thread):
    own = m.OwnTokio("own-tokio", current_thread)

    async def main():
        task = asyncio.ensure_future(own.sleep(30, "never"))
        await asyncio.sleep(0.05)
        own.shutdown(1.0)
        with pytest.raises(RuntimeError, match=DROPPED.format("tokio")):
            await asyncio.wait_for(task, 5)

    run(main)


def test_own_smol_dropped_with_pending(run):
    own = m.OwnSmol("own-smol")

    async def main():
        task = asyncio.ensure_future(own.sleep(30, "never"))
        await asyncio.sleep(0.05)
        own.drop_executor()
        with pytest.raises(RuntimeError, match=DROPPED.format("smol")):
            await asyncio.wait_for(task, 5)
        # Later conversions are refused with the reason.
        with pytest.raises(RuntimeError, match="executor of this SmolSpawner was dropped"):
            await own.sleep(0.01, "late")

    run(main)


@pytest.mark.parametrize("runtime", ["tokio", "smol"])
def test_global_shutdown(run, runtime):
    async def main():
        task = asyncio.ensure_future(m.sleep(runtime, 30, "never"))
        stream = m.count_stream(runtime, 1_000_000, 1)
        assert await stream.__anext__() == 0
        await asyncio.sleep(0.05)
        started = time.monotonic()
        assert m.shutdown(runtime, 2.0) == "Stopped"
        assert time.monotonic() - started < 2.5
        with pytest.raises(RuntimeError, match=DROPPED.format(runtime)):
            await asyncio.wait_for(task, 5)
        # A later conversion starts a fresh runtime.
        assert await asyncio.wait_for(m.sleep(runtime, 0.01, "again"), 5) == "again"
        assert m.shutdown(runtime, 1.0) == "Stopped"
        assert m.shutdown(runtime, 1.0) == "NotRunning"
        assert await asyncio.wait_for(m.sleep(runtime, 0.01, "fresh"), 5) == "fresh"

    run(main)


def test_async_std_cannot_be_shut_down():
    with pytest.raises(NotImplementedError, match="async-std runtime cannot be shut down"):
        m.shutdown("async-std", 1.0)


EXIT_WITH_PENDING = """
import asyncio, sys
import pyo3_aio_tests as m
async def start():
    tasks = [asyncio.ensure_future(m.sleep(rt, 60, rt)) for rt in m.RUNTIMES]
    tasks.append(asyncio.ensure_future(m.await_py("tokio", asyncio.sleep(60))))
    await asyncio.sleep(0.1)
    return tasks
loop = asyncio.new_event_loop()
tasks = loop.run_until_complete(start())
if sys.argv[1] == "shutdown":
    print(m.shutdown("tokio", 1.0), m.shutdown("smol", 1.0))
"""


@pytest.mark.parametrize("how", ["exit", "shutdown"])
def test_exit_with_pending_is_quick_and_silent(how):
    started = time.monotonic()
    done = run_python(EXIT_WITH_PENDING, how, timeout=30)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 10
    # asyncio itself may say "Task was destroyed but it is pending!"; Rust says nothing.
    ours = [line for line in done.stderr.splitlines() if "Task" not in line and "task:" not in line]
    assert ours == [], done.stderr
    if how == "shutdown":
        assert done.stdout.split() == ["Stopped", "Stopped"]
