"""`future_into_py_eager`: starts the Rust future at once and returns an asyncio future
(pyo3-asyncio's semantics, for fire-and-forget callers)."""

from __future__ import annotations

import asyncio

import pytest

import pyo3_aio_tests as m
from harness import wait_until


def test_it_returns_an_asyncio_future_of_the_running_loop(run, runtime):
    async def main():
        future = m.eager_sleep(runtime, 0.001, "value")
        assert asyncio.isfuture(future)
        assert not asyncio.iscoroutine(future)
        assert future.get_loop() is asyncio.get_running_loop()
        assert await future == "value"

    run(main)


def test_it_starts_at_once_without_being_awaited(run, runtime):
    async def main():
        futures = [m.eager_sleep(runtime, 0.001, i) for i in range(50)]
        # Never awaited: only yield to the loop until they are done.
        assert await wait_until(lambda: all(future.done() for future in futures))
        assert [future.result() for future in futures] == list(range(50))

    run(main)


def test_done_callbacks_run(run, runtime):
    async def main():
        future = m.eager_sleep(runtime, 0.001, "called back")
        called = []
        future.add_done_callback(lambda done: called.append(done.result()))
        await future
        assert await wait_until(lambda: called == ["called back"])

    run(main)


def test_cancelling_it_drops_the_rust_future(run, runtime):
    async def main():
        before = m.dropped()
        futures = [m.eager_never(runtime) for _ in range(100)]
        await asyncio.sleep(0)
        for future in futures:
            assert future.cancel()
        results = await asyncio.gather(*futures, return_exceptions=True)
        assert all(isinstance(result, asyncio.CancelledError) for result in results)
        assert await wait_until(lambda: m.dropped() >= before + 100)
        assert m.dropped() == before + 100

    run(main)


def test_cancelling_the_task_awaiting_it_drops_the_rust_future(run, runtime):
    async def main():
        before = m.dropped()

        async def awaiting():
            await m.eager_never(runtime)

        task = asyncio.ensure_future(awaiting())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await wait_until(lambda: m.dropped() >= before + 1)

    run(main)


def test_errors_cross_as_the_same_object(run, runtime):
    error = LookupError("eager")

    async def main():
        with pytest.raises(LookupError) as raised:
            await m.eager_raise_after(runtime, 0.001, error)
        assert raised.value is error
        with pytest.raises(m.RustPanic, match="eager kaput"):
            await m.eager_panic_after(runtime, 0.001, "eager kaput")

    run(main)


def test_get_current_loop_inside_it_is_the_running_loop(run, runtime):
    async def main():
        return await m.eager_current_loop(runtime) is asyncio.get_running_loop()

    assert run(main)


def test_gather_accepts_it(run, runtime):
    async def main():
        return await asyncio.gather(*[m.eager_sleep(runtime, 0.0001 * (9 - i), i) for i in range(10)])

    assert run(main) == list(range(10))


def test_outside_a_loop_it_raises_runtime_error_saying_what_to_do(runtime):
    with pytest.raises(RuntimeError, match="no running event loop.*scope"):
        m.eager_sleep(runtime, 0.001, None)
