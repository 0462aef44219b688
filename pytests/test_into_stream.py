"""`into_stream`: Rust consumes Python async iterables as a `Stream`, called on the loop
thread or from the runtime's threads; every item arrives once and in order; an exception
raised by the iterator arrives as that same object and ends the stream; dropping the Rust
stream early (or cancelling its consumer) closes the Python generator, whose `finally`
runs; bad input gets a TypeError naming the type; the Python side runs at most `capacity`
items ahead of Rust.

The consumer is `pyo3_aio_tests.consume`: a Rust future draining the stream, which returns
the items as a list, an exception included as the object at its position.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

import pyo3_aio_tests as m
from harness import sleep_anywhere, traceback_names, wait_until

WHERE = pytest.mark.parametrize(
    "from_runtime", [False, True], ids=["on_loop_thread", "from_runtime_thread"]
)

request_id = contextvars.ContextVar("request_id")


class AppError(Exception):
    pass


async def numbers(count, every=None):
    """0..count-1, yielding to the loop every `every` items."""
    for i in range(count):
        if every and i % every == 0:
            await asyncio.sleep(0)
        yield i


class BareCountdown:
    """An iterator with `__anext__` only (no `__aiter__` of its own): `async for` could not
    step it, so the pump calls `__anext__` itself. n-1 down to 0."""

    def __init__(self, n):
        self.n = n

    async def __anext__(self):
        await asyncio.sleep(0)
        if self.n == 0:
            raise StopAsyncIteration
        self.n -= 1
        return self.n


class Countdown(BareCountdown):
    """An async iterator that is not a generator (no `aclose`): n-1 down to 0."""

    def __aiter__(self):
        return self


class Bag:
    """An async iterable whose `__aiter__` returns a new iterator each time."""

    iterator = Countdown

    def __init__(self, n):
        self.n = n

    def __aiter__(self):
        return self.iterator(self.n)


class BareBag(Bag):
    """An async iterable whose iterator has no `__aiter__`."""

    iterator = BareCountdown


# Items ---------------------------------------------------------------------------------


@WHERE
def test_rust_receives_every_item_of_an_async_generator(run, runtime, from_runtime):
    async def main():
        return await m.consume(runtime, numbers(50, every=7), from_runtime=from_runtime)

    assert run(main) == list(range(50))


@WHERE
def test_items_arrive_as_the_very_same_objects(run, runtime, from_runtime):
    values = [object(), None, "text", 2**100, [1], {"a": 1}, AppError("an item, not raised")]

    async def generator():
        for value in values:
            yield value

    async def main():
        return await m.consume(runtime, generator(), from_runtime=from_runtime)

    got = run(main)
    assert len(got) == len(values)
    assert all(a is b for a, b in zip(got, values))


def test_an_empty_async_generator(run, runtime):
    async def main():
        assert await m.consume(runtime, numbers(0)) == []
        assert await m.consume(runtime, numbers(0), from_runtime=True) == []

    run(main)


@WHERE
def test_an_async_iterator_that_is_not_a_generator(run, runtime, from_runtime):
    async def main():
        assert await m.consume(runtime, Countdown(5), from_runtime=from_runtime) == [4, 3, 2, 1, 0]
        assert await m.consume(runtime, Bag(3), from_runtime=from_runtime) == [2, 1, 0]
        assert await m.consume(runtime, BareBag(3), from_runtime=from_runtime) == [2, 1, 0]

    run(main)


def test_an_iterator_without_aiter_runs_at_most_capacity_items_ahead_and_stops_when_dropped(
    run, runtime
):
    pulled = []

    class Counting:
        def __aiter__(self):
            return self.Iterator()

        class Iterator:
            async def __anext__(self):
                pulled.append(len(pulled))
                return pulled[-1]

    async def main():
        # consume_first takes one item, then drops the stream (which never ends by itself).
        first = await m.consume_first(runtime, Counting(), 1)
        for _ in range(50):
            await asyncio.sleep(0)
        return first, len(pulled)

    first, count = run(main)
    assert first == [0]
    # The pump pulled at most a buffer's worth (and the one being pushed) before stopping.
    assert 1 <= count <= m.DEFAULT_CAPACITY + 1, count


def test_a_generator_that_awaits_rust_futures_between_items(run, runtime):
    async def generator():
        for i in range(20):
            yield await m.sleep(runtime, 0.0002, i)

    async def main():
        return await m.consume(runtime, generator())

    assert run(main) == list(range(20))


@WHERE
def test_the_generator_runs_in_the_context_of_the_task_that_asked(run, runtime, from_runtime):
    async def generator():
        yield request_id.get("unset")

    async def main():
        request_id.set("req-42")
        return await m.consume(runtime, generator(), from_runtime=from_runtime)

    assert run(main) == ["req-42"]


@WHERE
def test_100_000_items_cross_with_nothing_lost_duplicated_or_reordered(run, runtime, from_runtime):
    count = 100_000

    async def main():
        return await m.consume(runtime, numbers(count, every=1000), from_runtime=from_runtime)

    assert run(main) == list(range(count))


# Errors -------------------------------------------------------------------------------


@WHERE
@pytest.mark.parametrize("position", [0, 3])
def test_an_exception_in_the_generator_arrives_as_the_same_object_and_ends_the_stream(
    run, runtime, from_runtime, position
):
    error = AppError("from the generator")
    finally_ran = []

    async def failing():
        try:
            for i in range(position):
                yield i
                await asyncio.sleep(0)
            raise error
            yield  # pragma: no cover - makes this an async generator with position 0
        finally:
            finally_ran.append(True)

    async def main():
        return await m.consume(runtime, failing(), from_runtime=from_runtime)

    items = run(main)
    # The error is the last item: nothing follows it.
    assert items[:-1] == list(range(position))
    assert items[-1] is error
    assert "failing" in traceback_names(error)
    assert finally_ran == [True]


def test_an_exception_from_anext_of_an_iterator_class(run, runtime):
    error = AppError("from __anext__")

    class Failing:
        def __init__(self):
            self.calls = 0

        def __aiter__(self):
            return self

        async def __anext__(self):
            self.calls += 1
            if self.calls == 3:
                raise error
            return self.calls

    async def main():
        iterator = Failing()
        items = await m.consume(runtime, iterator)
        assert items[:2] == [1, 2]
        assert items[2] is error
        assert len(items) == 3
        assert iterator.calls == 3  # not called again after it raised

    run(main)


# Early drop and cancellation ------------------------------------------------------------


@pytest.mark.parametrize("state", ["waiting_for_room", "suspended_in_the_generator"])
def test_dropping_the_rust_stream_early_closes_the_generator(run, runtime, state):
    """`waiting_for_room`: a generator that never awaits filled the buffer and waits at a
    `yield`; `suspended...`: the generator waits on something of its own after three
    items (Rust holds on to the third item until it does)."""

    async def main():
        events = []

        async def generator():
            try:
                i = 0
                while True:
                    yield i
                    i += 1
                    if state == "suspended_in_the_generator" and i == 3:
                        events.append("waiting")
                        await asyncio.sleep(3600)
            except BaseException as error:  # noqa: BLE001 - recording how it ended
                events.append(type(error).__name__)
                raise
            finally:
                events.append("finally")

        async def after_each(item):
            if state == "suspended_in_the_generator" and item == 2:
                assert await wait_until(lambda: "waiting" in events)

        agen = generator()
        items = await m.consume(runtime, agen, limit=3, after_each=after_each)
        assert items == [0, 1, 2]
        assert await wait_until(lambda: "finally" in events)
        if state == "waiting_for_room":
            assert events == ["GeneratorExit", "finally"]  # closed at its yield (aclose)
        else:
            assert events == ["waiting", "CancelledError", "finally"]
        assert agen.ag_frame is None  # closed
        assert agen.ag_running is False

    run(main)


def test_consume_first_closes_the_generator(run, runtime):
    async def main():
        events = []

        async def generator():
            try:
                for i in range(1000):
                    yield i
            finally:
                events.append("finally")

        assert await m.consume_first(runtime, generator(), 3) == [0, 1, 2]
        assert await wait_until(lambda: events == ["finally"])

    run(main)


def test_dropping_the_rust_stream_early_calls_aclose_of_an_iterator_class(run, runtime):
    class Closable(Countdown):
        closed = 0

        async def aclose(self):
            type(self).closed += 1

    async def main():
        iterator = Closable(1000)
        assert await m.consume(runtime, iterator, limit=2) == [999, 998]
        assert await wait_until(lambda: Closable.closed == 1)

    run(main)


def test_dropping_the_rust_stream_early_is_fine_without_aclose(run, runtime):
    async def main():
        iterator = Countdown(1000)
        assert await m.consume(runtime, iterator, limit=2) == [999, 998]
        # Nothing to close: the loop's exception handler stays silent (checked by `run`),
        # and with nobody taking items the iterator is pulled at most `capacity` further.
        for _ in range(5):
            await asyncio.sleep(0.001)
        assert iterator.n >= 1000 - 2 - m.DEFAULT_CAPACITY - 1  # taken, buffered, in flight

    run(main)


def test_a_stream_dropped_before_any_item_leaves_nothing_running(run, runtime):
    """Dropped before the pump ran: the generator is never started (so it has nothing to
    close); or, if it did start, it is closed. Either way nothing is reported."""

    async def main():
        first, second = [], []

        async def generator(events):
            try:
                events.append("started")
                yield 1
                await asyncio.sleep(3600)
            finally:
                events.append("finally")

        assert await m.consume(runtime, generator(first), limit=0) == []
        m.into_stream_now(generator(second))
        for _ in range(5):
            await asyncio.sleep(0.001)
        assert first in ([], ["started", "finally"])
        assert second in ([], ["started", "finally"])

    run(main)


@WHERE
def test_cancelling_the_rust_consumer_closes_the_generator(run, runtime, from_runtime):
    async def main():
        events = []
        release = asyncio.Event()

        async def generator():
            try:
                yield 0
                events.append("waiting")
                await release.wait()
                yield 1
            except BaseException as error:  # noqa: BLE001 - recording how it ended
                events.append(type(error).__name__)
                raise
            finally:
                events.append("finally")

        task = asyncio.ensure_future(m.consume(runtime, generator(), from_runtime=from_runtime))
        assert await wait_until(lambda: "waiting" in events)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await wait_until(lambda: "finally" in events)
        assert events == ["waiting", "CancelledError", "finally"]

    run(main)


def test_normal_exhaustion_runs_finally_once(run, runtime):
    async def main():
        events = []

        async def generator():
            try:
                yield 1
                yield 2
            finally:
                events.append("finally")

        assert await m.consume(runtime, generator()) == [1, 2]
        for _ in range(5):
            await asyncio.sleep(0.001)
        assert events == ["finally"]

    run(main)


# Bad input --------------------------------------------------------------------------------


def _sync_generator():
    yield 1


async def _async_generator():
    yield 1


class Widget:
    pass


NOT_ASYNC_ITERABLE = [
    (42, "int"),
    ("text", "str"),
    ([1, 2], "list"),
    (iter([1]), "list_iterator"),
    (_sync_generator(), "generator"),
    (None, "NoneType"),
    (Widget(), "Widget"),
    (_async_generator, "function"),  # the function, not called
]


@pytest.mark.parametrize(
    "value, name", NOT_ASYNC_ITERABLE, ids=[name for _, name in NOT_ASYNC_ITERABLE]
)
def test_into_stream_of_a_non_async_iterable_raises_type_error_naming_the_type(value, name):
    with pytest.raises(TypeError) as raised:
        m.into_stream_now(value)
    assert str(raised.value) == f"expected an async iterable, got '{name}'"
    with pytest.raises(TypeError, match=f"got '{name}'"):
        m.into_stream_now(value, 4)


def test_into_stream_of_a_coroutine_raises_type_error(run):
    async def coroutine_function():
        return 1

    async def main():
        coroutine = coroutine_function()
        try:
            with pytest.raises(TypeError, match="expected an async iterable, got 'coroutine'"):
                m.into_stream_now(coroutine)
        finally:
            coroutine.close()

    run(main)


def test_bad_input_raises_at_the_call_or_from_the_runtime_thread(run, runtime):
    async def main():
        with pytest.raises(TypeError, match="expected an async iterable, got 'list'"):
            m.consume(runtime, [1, 2])
        with pytest.raises(TypeError, match="expected an async iterable, got 'list'"):
            await m.consume(runtime, [1, 2], from_runtime=True)

    run(main)


def test_aiter_returning_something_without_anext_raises_type_error():
    class Broken:
        def __aiter__(self):
            return 42

    with pytest.raises(TypeError) as raised:
        m.into_stream_now(Broken())
    assert str(raised.value) == "__aiter__ of 'Broken' returned 'int', which has no __anext__"


def test_an_exception_from_aiter_propagates_unchanged():
    error = AppError("no iterating today")

    class Refuses:
        def __aiter__(self):
            raise error

    with pytest.raises(AppError) as raised:
        m.into_stream_now(Refuses())
    assert raised.value is error


def test_into_stream_outside_any_event_loop_runs_on_a_background_loop(runtime):
    """No loop runs anywhere: the async iterable is pumped on a background loop."""

    async def names():
        for i in range(3):
            await asyncio.sleep(0)
            yield i, threading.current_thread().name

    items = m.block(runtime, "stream", names())
    assert [i for i, _ in items] == [0, 1, 2]
    assert all(name.startswith("pyo3-aio-background-loop") for _, name in items)


# Back-pressure ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "capacity", [0, 1, 5, None], ids=["capacity_0", "capacity_1", "capacity_5", "default"]
)
def test_the_generator_runs_at_most_capacity_items_ahead(run_anywhere, runtime, capacity):
    """Rust awaits a Python check after each item, without pulling the next one meanwhile:
    the generator gets exactly `capacity` items ahead (0 counts as 1) and stays there, on
    asyncio's loops and under trio."""
    bound = m.DEFAULT_CAPACITY if capacity is None else max(1, capacity)
    count = 2 * bound + 2

    async def main():
        started = []  # the items the generator has started to produce

        async def generator():
            for i in range(count):
                started.append(i)
                yield i

        async def after_each(item):
            received = item + 1
            assert len(started) <= received + bound
            expected = min(count, received + bound)
            assert await wait_until(lambda: len(started) >= expected, sleep=sleep_anywhere)
            await sleep_anywhere(0.001)
            assert len(started) == expected

        items = await m.consume(runtime, generator(), capacity=capacity, after_each=after_each)
        assert items == list(range(count))

    run_anywhere(main)
