"""The bridge under anyio, on both of its backends (asyncio and trio): task groups,
cancel scopes, `fail_after` and memory object streams around Rust futures and streams,
and anyio coroutines awaited from Rust. Code written once for both backends sees the same
outcome on each."""

from __future__ import annotations

import contextvars
from importlib.metadata import version

import pytest

anyio = pytest.importorskip("anyio")
pytest.importorskip("trio")

import pyo3_aio_tests as m  # noqa: E402
from harness import PATIENCE  # noqa: E402


@pytest.fixture(params=["asyncio", "trio"])
def backend(request) -> str:
    """The anyio backend the test runs on."""
    return request.param


def run(backend, function, *args):
    return anyio.run(function, *args, backend=backend)


#: anyio before 4.14 (the last releases for Python 3.9 among them) starts only native
#: coroutines in an asyncio task group (it checks `inspect.iscoroutine`, which no other
#: coroutine object passes); from 4.14 on, any coroutine object, the bridge's included.
NATIVE_ONLY_ON_ASYNCIO = tuple(int(part) for part in version("anyio").split(".")[:2]) < (4, 14)


def start_soon(backend, group, function, *args):
    """`group.start_soon(function, *args)` for a function of the bridge: its coroutine
    itself, or an `async def` awaiting it where anyio takes only native coroutines."""
    if backend == "asyncio" and NATIVE_ONLY_ON_ASYNCIO:

        async def awaiting():
            return await function(*args)

        group.start_soon(awaiting)
    else:
        group.start_soon(function, *args)


def test_task_group_gathers_rust_futures(backend, runtime):
    async def main():
        results = {}

        async def one(index):
            results[index] = await m.sleep(runtime, 0.001 * (index % 4), index)

        async with anyio.create_task_group() as group:
            for index in range(100):
                group.start_soon(one, index)
        return [results[index] for index in range(100)]

    assert run(backend, main) == list(range(100))


def test_move_on_after_drops_the_rust_future(backend, runtime):
    async def main():
        before = m.dropped()
        with anyio.move_on_after(0.01) as scope:
            await m.sleep_counted(runtime, 60, None)
        return scope.cancelled_caught, m.dropped() - before

    assert run(backend, main) == (True, 1)


def test_fail_after_raises_timeout_error(backend, runtime):
    async def main():
        with pytest.raises(TimeoutError):
            with anyio.fail_after(0.01):
                await m.sleep(runtime, 60, None)
        return await m.sleep(runtime, 0.001, "after")

    assert run(backend, main) == "after"


def test_cancel_scope_cancel_and_shield(backend, runtime):
    async def main():
        with anyio.CancelScope() as outer:
            outer.cancel()
            with anyio.CancelScope(shield=True):
                kept = await m.sleep(runtime, 0.005, "shielded")
            await m.sleep(runtime, 60, None)
        return kept, outer.cancelled_caught

    assert run(backend, main) == ("shielded", True)


def test_task_group_failure_drops_pending_futures(backend, runtime):
    error = ValueError("one failed")

    async def main():
        before = m.dropped()
        with pytest.raises(BaseException) as caught:
            async with anyio.create_task_group() as group:
                for _ in range(20):
                    start_soon(backend, group, m.sleep_counted, runtime, 60, None)
                start_soon(backend, group, m.raise_after, runtime, 0.005, error)
        leaves = list(getattr(caught.value, "exceptions", [caught.value]))
        return [leaf is error for leaf in leaves], m.dropped() - before

    assert run(backend, main) == ([True], 20)


def test_memory_stream_carries_rust_results(backend, runtime):
    async def main():
        send, receive = anyio.create_memory_object_stream(4)

        async def produce():
            async with send:
                for index in range(50):
                    await send.send(await m.sleep(runtime, 0.0002, index))

        async with anyio.create_task_group() as group:
            group.start_soon(produce)
            async with receive:
                return [item async for item in receive]

    assert run(backend, main) == list(range(50))


def test_rust_stream_into_a_memory_stream(backend, runtime):
    async def main():
        send, receive = anyio.create_memory_object_stream(0)

        async def forward():
            async with send:
                async for item in m.count_stream(runtime, 200, 8):
                    await send.send(item)

        async with anyio.create_task_group() as group:
            group.start_soon(forward)
            async with receive:
                return [item async for item in receive]

    assert run(backend, main) == list(range(200))


def test_rust_stream_closed_when_its_scope_is_cancelled(backend, runtime):
    async def main():
        stream, probe = m.probed_stream(runtime, None, delay=0.0005)
        seen = []
        with anyio.move_on_after(0.02):
            async for item in stream:
                seen.append(item)
        await stream.aclose()
        with anyio.fail_after(PATIENCE):
            while not probe.dropped():
                await anyio.sleep(0.001)
        return seen == list(range(len(seen)))

    assert run(backend, main) is True


def test_anyio_coroutine_awaited_from_rust(backend, runtime):
    var = contextvars.ContextVar("var")

    async def from_python(value):
        await anyio.sleep(0.001)
        return value, var.get("unset")

    async def main():
        var.set(backend)
        inline = await m.await_py(runtime, from_python("inline"))
        # From a runtime task of its own (no scope): the run is found, not the caller's
        # context, on either backend.
        spawned = await m.await_py_from_task(runtime, from_python("task"))
        return inline, spawned

    assert run(backend, main) == (("inline", backend), ("task", "unset"))


def test_dropping_the_rust_future_cancels_the_anyio_coroutine(backend, runtime):
    async def main():
        finished = anyio.Event()
        cancelled = []

        async def slow():
            try:
                await anyio.sleep(60)
            except anyio.get_cancelled_exc_class():
                cancelled.append(True)
                raise
            finally:
                finished.set()

        with anyio.move_on_after(0.01):
            await m.await_py(runtime, slow())
        with anyio.fail_after(PATIENCE):
            await finished.wait()
        return cancelled

    assert run(backend, main) == [True]


def test_rust_consumes_a_memory_stream(backend, runtime):
    async def main():
        send, receive = anyio.create_memory_object_stream(2)

        async def produce():
            async with send:
                for index in range(100):
                    await send.send(index)

        async with anyio.create_task_group() as group:
            group.start_soon(produce)
            async with receive:
                return await m.consume(runtime, receive, capacity=4)

    assert run(backend, main) == list(range(100))


def test_eager_futures_start_at_once_and_gather_in_a_task_group(backend, runtime):
    async def main():
        finished = []
        started = [m.eager_call_after(runtime, 0.001, lambda: finished.append(True)) for _ in range(20)]
        with anyio.fail_after(PATIENCE):
            while len(finished) < 20:
                await anyio.sleep(0.001)
        values = [m.eager_sleep(runtime, 0.001 * (index % 4), index) for index in range(50)]
        results = {}

        async def one(index):
            results[index] = await values[index]

        async with anyio.create_task_group() as group:
            for index in range(50):
                group.start_soon(one, index)
        return [await future for future in started], [results[index] for index in range(50)]

    assert run(backend, main) == ([None] * 20, list(range(50)))


def test_move_on_after_drops_an_awaited_eager_future(backend, runtime):
    async def main():
        before = m.dropped()
        future = m.eager_never(runtime)
        with anyio.move_on_after(0.01) as scope:
            await future
        # Under trio it is gone before the scope exits; asyncio drops it when the
        # cancelled future's done-callback runs, soon after.
        with anyio.fail_after(PATIENCE):
            while m.dropped() - before < 1:
                await anyio.sleep(0.001)
        return scope.cancelled_caught, m.dropped() - before

    assert run(backend, main) == (True, 1)
