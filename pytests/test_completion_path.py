"""How completions reach Python: the producing thread never takes the GIL (a completion or
a cancellation finishes while the loop thread holds the GIL), the loop is woken through
`loop.add_reader`, and through `call_soon_threadsafe` on loops without `add_reader`."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

import pyo3_aio_tests as m
from harness import PATIENCE, wait_until


def test_a_completion_finishes_while_the_loop_thread_holds_the_gil(run):
    count = 50

    async def main():
        before = m.driven()
        tasks = [asyncio.ensure_future(m.thread_sleep(0.001, f"value {i}")) for i in range(count)]
        await asyncio.sleep(0)  # each future is pending on a thread of its own now
        # The whole run of every future, completion path included, must finish while this
        # thread holds the GIL and never lets go of it.
        assert m.hold_gil_until_driven(before + count, PATIENCE)
        return await asyncio.gather(*tasks)

    assert run(main) == [f"value {i}" for i in range(count)]


def test_a_cancellation_finishes_while_the_loop_thread_holds_the_gil(run):
    count = 50

    async def main():
        before_driven, before_dropped = m.driven(), m.dropped()
        tasks = [asyncio.ensure_future(m.thread_never()) for _ in range(count)]
        await asyncio.sleep(0)
        for task in tasks:
            task.cancel()
        # The loop passes a burst of cancellations on in its next round, in one go.
        await asyncio.sleep(0)
        assert m.hold_gil_until_driven(before_driven + count, PATIENCE)
        assert m.dropped() == before_dropped + count
        await asyncio.gather(*tasks, return_exceptions=True)

    run(main)


def counting_loop_class(base):
    """A loop class that counts the calls of the callbacks given to `add_reader` and the
    calls of `call_soon_threadsafe`."""

    class Counting(base):
        reader_calls = 0
        threadsafe_calls = 0

        def add_reader(self, fd, callback, *args):
            def counted(*callback_args):
                type(self).reader_calls += 1
                return callback(*callback_args)

            return super().add_reader(fd, counted, *args)

        def call_soon_threadsafe(self, *args, **kwargs):
            type(self).threadsafe_calls += 1
            return super().call_soon_threadsafe(*args, **kwargs)

    return Counting


def without_add_reader(base):
    """A loop class whose `add_reader` is unsupported (as on Windows' proactor loop)."""

    class NoReader(counting_loop_class(base)):
        def add_reader(self, fd, callback, *args):
            raise NotImplementedError

    return NoReader


BASES = {"asyncio": asyncio.SelectorEventLoop, "uvloop": uvloop.Loop}


def run_on_class(loop_class, coro_factory):
    errors = []

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context))
        return await coro_factory()

    loop = loop_class()
    try:
        result = loop.run_until_complete(main())
    finally:
        loop.close()
    assert errors == []
    return result


async def exercise(runtime):
    """A bit of everything that needs a wake-up from another thread."""
    results = await asyncio.gather(*[m.sleep(runtime, 0.0001 * (i % 10), i) for i in range(200)])
    assert results == list(range(200))
    before = m.dropped()
    task = asyncio.ensure_future(m.never(runtime))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert await wait_until(lambda: m.dropped() >= before + 1)

    async def python_side():
        await asyncio.sleep(0.001)
        return "python"

    assert await m.await_py_after(runtime, 0.001, python_side) == "python"
    assert await m.await_py_from_task(runtime, python_side()) == "python"
    assert await m.eager_sleep(runtime, 0.001, "eager") == "eager"
    assert await m.local_sleep_on(runtime, 0.001, "local") == "local"


def test_completions_wake_the_loop_through_add_reader(loop_kind, runtime):
    loop_class = counting_loop_class(BASES[loop_kind])
    run_on_class(loop_class, lambda: exercise(runtime))
    assert loop_class.reader_calls > 0


def test_loops_without_add_reader_fall_back_to_call_soon_threadsafe(loop_kind, runtime):
    loop_class = without_add_reader(BASES[loop_kind])
    run_on_class(loop_class, lambda: exercise(runtime))
    assert loop_class.threadsafe_calls > 0


@pytest.mark.parametrize("add_reader", ["supported", "unsupported"])
def test_a_loop_first_used_from_another_thread_is_woken(loop_kind, add_reader):
    """into_future_with_locals from a new thread is the first thing that touches this loop,
    so the bridge sets up the loop's wake-up from that thread."""
    base = BASES[loop_kind]
    loop_class = counting_loop_class(base) if add_reader == "supported" else without_add_reader(base)

    async def main():
        loop = asyncio.get_running_loop()
        answer = loop.create_future()

        async def python_side():
            await asyncio.sleep(0.001)
            return 5

        m.await_py_on_new_thread(python_side(), answer.set_result)
        return await asyncio.wait_for(answer, PATIENCE)

    assert run_on_class(loop_class, main) == ("ok", 5)
