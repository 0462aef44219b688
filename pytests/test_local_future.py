"""`local_future_into_py`: `!Send` Rust futures live on the loop thread and are polled
there; they return values, raise, panic, get cancelled and await Python like the others."""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest

import pyo3_aio_tests as m
from harness import run_on, wait_until


def test_a_local_future_returns_its_value(run_anywhere, runtime):
    value = object()

    async def main():
        return await m.local_sleep_on(runtime, 0.001, value)

    assert run_anywhere(main) is value


def test_the_original_local_sleep_works(run):
    async def main():
        return await asyncio.gather(*[m.local_sleep(0.001 * (i % 3), i) for i in range(20)])

    assert run(main) == list(range(20))


def test_a_local_future_is_only_polled_on_the_loop_thread(run, runtime):
    async def main():
        first, after, loop = await m.local_where_polled(runtime, 0.001)
        return first, after, threading.get_ident(), loop is asyncio.get_running_loop()

    first, after, loop_thread, same_loop = run(main)
    assert first == loop_thread
    assert after == loop_thread
    assert same_loop


def test_many_local_futures_interleave(run, runtime):
    async def main():
        return await asyncio.gather(
            *[m.local_sleep_on(runtime, 0.00005 * (199 - i), i) for i in range(200)]
        )

    assert run(main) == list(range(200))


def test_cancelling_a_local_future_drops_it(run):
    async def main():
        before = m.dropped()
        tasks = [asyncio.ensure_future(m.local_never()) for _ in range(100)]
        await asyncio.sleep(0)
        assert m.dropped() == before
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert all(task.cancelled() for task in tasks)
        assert await wait_until(lambda: m.dropped() >= before + 100)
        assert m.dropped() == before + 100

    run(main)


@pytest.mark.parametrize("seconds", [0, 0.001], ids=["inline", "after_sleep"])
def test_a_local_future_raises_the_same_exception_object(run_anywhere, runtime, seconds):
    error = KeyError("local")

    async def main():
        with pytest.raises(KeyError) as raised:
            await m.local_raise_after(runtime, seconds, error)
        return raised.value

    assert run_anywhere(main) is error


@pytest.mark.parametrize("seconds", [0, 0.001], ids=["inline", "after_sleep"])
def test_a_local_future_panic_becomes_rust_panic(run_anywhere, runtime, seconds):
    async def main():
        with pytest.raises(m.RustPanic, match="local kaput"):
            await m.local_panic_after(runtime, seconds, "local kaput")

    run_anywhere(main)


def test_a_local_future_awaits_python_coroutines(run):
    async def main():
        counter = iter(range(100))

        async def next_value():
            await asyncio.sleep(0)
            return next(counter)

        return await m.local_await_many(next_value, 100)

    assert run(main) == list(range(100))


def test_awaiting_a_local_future_on_another_thread_raises_runtime_error(run, loop_kind, runtime):
    async def make():
        return m.local_sleep_on(runtime, 0.001, "value")

    coroutine = run(make)  # created on this thread
    outcome = {}

    async def await_it():
        with pytest.raises(RuntimeError, match="awaited on another thread than the one that created it"):
            await coroutine
        return "raised"

    def other_thread():
        try:
            outcome["result"] = run_on(loop_kind, await_it)
        except BaseException as error:  # noqa: BLE001 - reported below
            outcome["result"] = error

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join(30)
    assert outcome == {"result": "raised"}


def test_a_never_awaited_local_coroutine_warns(run_anywhere, runtime):
    async def main():
        with pytest.warns(RuntimeWarning, match="was never awaited"):
            coroutine = m.local_sleep_on(runtime, 0.001, None)
            del coroutine
            gc.collect()

    run_anywhere(main)


def test_local_future_into_py_with_an_inline_first_poll_polls_inside_send(run, runtime):
    value = object()

    async def main():
        polls = []
        coroutine = m.local_ready_with(runtime, "inline", polls, value)
        assert polls == []
        with pytest.raises(StopIteration) as stop:
            coroutine.send(None)
        return polls, stop.value.value, threading.get_ident()

    polls, result, loop_thread = run(main)
    assert polls == [loop_thread]
    assert result is value


def test_local_future_into_py_with_a_deferred_first_poll_is_not_polled_inside_send(run, runtime):
    value = object()

    async def main():
        polls = []
        coroutine = m.local_ready_with(runtime, "deferred", polls, value)
        waiter = coroutine.send(None)
        polled_in_send = list(polls)
        coroutine.close()
        await asyncio.sleep(0.01)
        closed_polls = list(polls)
        awaited_polls = []
        result = await m.local_ready_with(runtime, "deferred", awaited_polls, value)
        return waiter, polled_in_send, closed_polls, awaited_polls, result, threading.get_ident()

    waiter, polled_in_send, closed_polls, awaited_polls, result, loop_thread = run(main)
    assert waiter is not None
    assert polled_in_send == []
    # Closed before its home polled it: never polled at all.
    assert closed_polls == []
    # Awaited, it is polled once, on the loop thread, and gives its value.
    assert awaited_polls == [loop_thread]
    assert result is value
