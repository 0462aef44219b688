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


# Fork while a trio run exists. trio refuses a run inside a run on one thread, and a child
# forked from inside a trio task is still inside that (copied) run on its main thread, so
# the child starts its own run on a fresh thread; forked beside a run (which runs on
# another thread of the parent), the child runs trio on its main thread. Either way the
# child never resumes the parent's run, and reports through a pipe and its exit code.


async def use_everything_under_trio(tag: str) -> dict:
    """`use_everything` under trio: Rust futures pending then completing, Rust awaiting a
    trio coroutine, a Rust stream, an eager future; per runtime, or "fork" if refused."""
    import trio

    out = {}
    for runtime in m.RUNTIMES:
        try:
            with trio.fail_after(10):
                sleeps = [None] * 3

                async def one(index, runtime=runtime):
                    sleeps[index] = await m.sleep(runtime, 0.01, index)

                async with trio.open_nursery() as nursery:
                    for index in range(3):
                        nursery.start_soon(one, index)

                async def from_trio():
                    await trio.sleep(0.01)
                    return tag

                awaited = await m.await_py(runtime, from_trio())
                # From a runtime task of its own: the one run found must be this one,
                # not the parent's copied into this process.
                spawned = await m.await_py_from_task(runtime, from_trio())
                streamed = [item async for item in m.count_stream(runtime, 5)]
                eager = await m.eager_sleep(runtime, 0.01, "eager")
            out[runtime] = (sleeps, awaited, spawned, streamed, eager)
        except Exception as error:  # noqa: BLE001 - a nursery's errors come as a group
            leaves = getattr(error, "exceptions", [error])
            refused = all(isinstance(leaf, RuntimeError) and "fork()" in str(leaf) for leaf in leaves)
            out[runtime] = "fork" if refused else repr(error)
    return out


def expected_under_trio(tag: str, forked: bool) -> dict:
    works = ([0, 1, 2], tag, tag, [0, 1, 2, 3, 4], "eager")
    return {
        "tokio": works,
        "async-std": "fork" if forked else works,
        "smol": "fork" if forked else works,
    }


def child_runs_trio(write_fd: int, on_fresh_thread: bool, inherited=()) -> None:
    """The forked child: closes the `inherited` coroutines (the parent's, pending at the
    fork: their Rust futures are dropped here, and nothing reaches the parent's run), then
    runs a new trio run using the bridge and pickles its result to `write_fd`; exits with 0
    when it ran, 1 when anything raised. Never returns."""
    import pickle
    import threading

    import trio

    code = 1
    try:
        for coroutine in inherited:
            coroutine.close()
        got = []

        def run():
            try:
                got.append(trio.run(use_everything_under_trio, "child"))
            except BaseException as error:  # noqa: BLE001 - reported to the parent
                got.append(repr(error))

        if on_fresh_thread:
            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            thread.join(PATIENCE)
        else:
            run()
        result = got[0] if got else "the child's trio run did not finish"
        os.write(write_fd, pickle.dumps(result))
        code = 0
    finally:
        os.close(write_fd)
        os._exit(code)


async def reap_under_trio(pid: int, read_fd: int):
    """The child's pickled report and exit code, waiting (bounded) without blocking the run."""
    import pickle

    import trio

    data = b""
    with trio.fail_after(PATIENCE):
        while True:
            await trio.lowlevel.wait_readable(read_fd)
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            data += chunk
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            await trio.sleep(0.01)
    os.close(read_fd)
    return pickle.loads(data) if data else None, os.waitstatus_to_exitcode(status)


def fork_child(on_fresh_thread: bool, inherited=()):
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        child_runs_trio(write_fd, on_fresh_thread, inherited)
    os.close(write_fd)
    return pid, read_fd


def pending_in_the_parent():
    """Conversions of every kind, each taking 0.3 s (started shortly before the fork, they
    are pending when it happens), and what awaits them all in a nursery."""
    import trio

    coroutines = {runtime: m.sleep(runtime, 0.3, runtime) for runtime in m.RUNTIMES}
    coroutines["py"] = m.await_py("tokio", trio_value_after(0.3, "py"))
    coroutines["local"] = m.local_sleep(0.3, "local")
    coroutines["eager"] = m.eager_sleep("tokio", 0.3, "eager")
    results = {}

    async def keep(key, awaitable):
        results[key] = await awaitable

    async def everything():
        async with trio.open_nursery() as nursery:
            for key, coroutine in coroutines.items():
                nursery.start_soon(keep, key, coroutine)
        return results

    return coroutines, everything


async def trio_value_after(seconds, value):
    import trio

    await trio.sleep(seconds)
    return value


PARENT_RESULTS = {**{runtime: runtime for runtime in m.RUNTIMES}, "py": "py", "local": "local", "eager": "eager"}


@pytest.mark.parametrize("close_inherited", [False, True])
def test_fork_inside_a_trio_run_with_conversions_pending(close_inherited):
    trio = pytest.importorskip("trio")

    async def main():
        coroutines, everything = pending_in_the_parent()
        async with trio.open_nursery() as nursery:
            done = {}

            async def wait_all():
                done.update(await everything())

            nursery.start_soon(wait_all)
            await trio.sleep(0.05)
            inherited = list(coroutines.values()) if close_inherited else []
            pid, read_fd = fork_child(on_fresh_thread=True, inherited=inherited)
            report = await reap_under_trio(pid, read_fd)
        # The parent's run keeps working, before and after the child ends.
        after = await use_everything_under_trio("parent")
        return done, report, after

    done, (got, exitcode), after = trio.run(main)
    assert done == PARENT_RESULTS
    assert (got, exitcode) == (expected_under_trio("child", True), 0)
    assert after == expected_under_trio("parent", False)


def test_fork_beside_a_trio_run_with_conversions_pending():
    trio = pytest.importorskip("trio")
    import threading

    started = threading.Event()
    forked = threading.Event()
    parent = {}

    async def run_beside():
        _, everything = pending_in_the_parent()
        async with trio.open_nursery() as nursery:

            async def wait_all():
                parent["done"] = await everything()

            nursery.start_soon(wait_all)
            await trio.sleep(0.05)
            started.set()
            # The main thread forks now, while this run waits on the conversions.
            await trio.to_thread.run_sync(forked.wait, PATIENCE)

    def run():
        try:
            trio.run(run_beside)
        except BaseException as error:  # noqa: BLE001 - asserted below
            parent["error"] = repr(error)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert started.wait(PATIENCE), "the trio run did not start its conversions"
        pid, read_fd = fork_child(on_fresh_thread=False)
    finally:
        forked.set()
    got, exitcode = trio.run(reap_under_trio, pid, read_fd)
    thread.join(PATIENCE)
    assert not thread.is_alive()
    assert parent == {"done": PARENT_RESULTS}
    assert (got, exitcode) == (expected_under_trio("child", True), 0)
