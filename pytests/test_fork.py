"""Fork: after os.fork() (through multiprocessing's fork start method) in a process whose
runtimes and loops were in use, the child works and the parent keeps working.

In the child the global tokio runtime is rebuilt; smol and async-std, which ran in the
parent, refuse with a RuntimeError naming fork() (their reactor is held by a parent thread
that does not exist in the child); a runtime of the test's own, made in the parent, refuses
the same way. Every wait is bounded: a child that hangs fails the test."""

from __future__ import annotations

import asyncio
import multiprocessing
import os

import pytest

import pyo3_aio_tests as m
from harness import run_on

FORK = multiprocessing.get_context("fork")
PATIENCE = 60.0

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded"),
]


async def use_everything(tag: str) -> dict:
    """Awaits Rust futures on every runtime, Rust awaiting Python, and a Rust stream; what
    a runtime refused is recorded as "fork" when its error names fork()."""
    out = {}
    for runtime in m.RUNTIMES:
        try:
            sleeps = await asyncio.wait_for(
                asyncio.gather(*(m.sleep(runtime, 0.01, i) for i in range(3))), 10
            )
            awaited = await asyncio.wait_for(m.await_py(runtime, asyncio.sleep(0.01, tag)), 10)
            streamed = [item async for item in m.count_stream(runtime, 5)]
            out[runtime] = (sleeps, awaited, streamed)
        except RuntimeError as error:
            out[runtime] = "fork" if "fork()" in str(error) else repr(error)
    return out


def expected(tag: str, forked: bool) -> dict:
    works = ([0, 1, 2], tag, [0, 1, 2, 3, 4])
    return {
        "tokio": works,
        "async-std": "fork" if forked else works,
        "smol": "fork" if forked else works,
    }


def child_work(loop_kind: str) -> dict:
    return run_on(loop_kind, use_everything, "child")


def test_pool_after_parent_used_everything(loop_kind):
    assert run_on(loop_kind, use_everything, "parent") == expected("parent", False)
    with FORK.Pool(4) as pool:
        results = pool.map_async(child_work, [loop_kind] * 8).get(timeout=PATIENCE)
    assert results == [expected("child", True)] * 8
    # The parent keeps working.
    assert run_on(loop_kind, use_everything, "parent") == expected("parent", False)


def report_child(loop_kind: str, conn) -> None:
    try:
        conn.send(run_on(loop_kind, use_everything, "child"))
    except BaseException as error:  # noqa: BLE001 - reported to the parent
        conn.send(repr(error))


def test_fork_with_conversions_in_flight(loop_kind):
    async def main():
        in_flight = [asyncio.ensure_future(m.sleep(rt, 0.3, rt)) for rt in m.RUNTIMES]
        in_flight.append(asyncio.ensure_future(m.await_py("tokio", asyncio.sleep(0.3, "py"))))
        in_flight.append(asyncio.ensure_future(m.local_sleep(0.3, "local")))
        await asyncio.sleep(0.05)
        receive, send = FORK.Pipe(duplex=False)
        child = FORK.Process(target=report_child, args=(loop_kind, send))
        child.start()
        send.close()
        # The parent's loop keeps running while the child works.
        results = await asyncio.wait_for(asyncio.gather(*in_flight), 10)
        loop = asyncio.get_running_loop()
        got = await loop.run_in_executor(None, lambda: receive.poll(PATIENCE) and receive.recv())
        await loop.run_in_executor(None, child.join, PATIENCE)
        if child.exitcode is None:
            child.kill()
        return results, got, child.exitcode

    results, got, exitcode = run_on(loop_kind, main)
    assert results == [*m.RUNTIMES, "py", "local"]
    assert got == expected("child", True)
    assert exitcode == 0


def own_runtime_child(own, conn) -> None:
    # Every kind of conversion on the runtime: a Send future, and for tokio a !Send one
    # polled on the loop thread inside the runtime's context.
    attempts = [lambda: own.sleep(0.01, "child")]
    if isinstance(own, m.OwnTokio):
        attempts.append(lambda: own.local_sleep(0.01))

    async def main():
        messages = []
        for attempt in attempts:
            try:
                await asyncio.wait_for(attempt(), 10)
                messages.append("worked")
            except RuntimeError as error:
                messages.append(str(error))
            except BaseException as error:  # e.g. RustPanic from a poll outside the runtime
                messages.append(repr(error))
        return messages

    conn.send(run_on("asyncio", main))


@pytest.mark.parametrize("kind", ["tokio", "smol"])
def test_own_runtime_in_child_names_fork(kind):
    own = m.OwnTokio("own-tokio", False) if kind == "tokio" else m.OwnSmol("own-smol")
    try:
        assert run_on("asyncio", own.sleep, 0.01, "parent")[0] == "parent"
        receive, send = FORK.Pipe(duplex=False)
        child = FORK.Process(target=own_runtime_child, args=(own, send))
        child.start()
        send.close()
        assert receive.poll(PATIENCE), "the child did not answer"
        messages = receive.recv()
        child.join(PATIENCE)
        assert len(messages) == (2 if kind == "tokio" else 1)
        for message in messages:
            assert "fork()" in message, message
        assert child.exitcode == 0
        assert run_on("asyncio", own.sleep, 0.01, "parent again")[0] == "parent again"
    finally:
        own.shutdown(1.0) if kind == "tokio" else own.drop_executor()
