"""The bridge under trio: Rust futures awaited in `trio.run`, nurseries and cancel scopes;
Python awaitables awaited from Rust while a trio run is active.

Each scenario that has a native counterpart runs twice, once with a plain trio coroutine
and once with the bridge's, and asserts the same observable outcome (`differential`).
"""

from __future__ import annotations

import contextvars
import os
import signal
import threading

import pytest

trio = pytest.importorskip("trio")
import trio.testing  # noqa: E402

import pyo3_aio_tests as m  # noqa: E402
from harness import PATIENCE  # noqa: E402


async def native_sleep(seconds, value):
    await trio.sleep(seconds)
    return value


async def native_ready(value):
    return value


async def native_raise_after(seconds, error):
    await trio.sleep(seconds)
    raise error


async def native_pending(value):
    await trio.lowlevel.checkpoint()
    return value


def bridged(runtime):
    """The bridge's versions of the native coroutines above, on `runtime`."""
    return {
        "sleep": lambda seconds, value: m.sleep(runtime, seconds, value),
        "ready": lambda value: m.ready(runtime, value),
        "raise_after": lambda seconds, error: m.raise_after(runtime, seconds, error),
        # Pending on its first poll whatever the machine's load: the trio task it awaits
        # cannot run before the awaiting task yields (a short sleep can have expired).
        "pending": lambda value: m.await_py(runtime, native_pending(value)),
    }


NATIVE = {
    "sleep": native_sleep,
    "ready": native_ready,
    "raise_after": native_raise_after,
    "pending": native_pending,
}


@pytest.fixture(params=["native", "bridge"])
def differential(request, runtime):
    """The same scenario's coroutines: plain trio ones, or the bridge's on `runtime`."""
    return NATIVE if request.param == "native" else bridged(runtime)


# pytest-trio runs these as trio tests.


@pytest.mark.trio
async def test_ready_await_is_no_checkpoint(differential):
    with trio.testing.assert_no_checkpoints():
        assert await differential["ready"](5) == 5


@pytest.mark.trio
async def test_pending_await_is_a_checkpoint(differential):
    with trio.testing.assert_checkpoints():
        assert await differential["pending"]("x") == "x"


@pytest.mark.trio
async def test_an_already_cancelled_scope_stops_a_pending_await_at_once(differential):
    with trio.CancelScope() as scope:
        scope.cancel()
        await differential["sleep"](60, None)
        pytest.fail("the await must raise Cancelled")
    assert scope.cancelled_caught


def test_the_same_coroutine_object_is_awaited(runtime):
    async def main():
        coroutine = m.sleep(runtime, 0.001, 7)
        assert type(coroutine).__name__ == "RustCoroutine"
        return await coroutine

    assert trio.run(main) == 7


def test_nursery_gathers_results(differential):
    async def main():
        results = []

        async def one(index):
            results.append(await differential["sleep"](0.001 * (index % 5), index))

        async with trio.open_nursery() as nursery:
            for index in range(200):
                nursery.start_soon(one, index)
        return sorted(results)

    assert trio.run(main) == list(range(200))


def test_exception_crosses_as_the_same_object(differential):
    error = ValueError("boom")

    async def main():
        try:
            await differential["raise_after"](0.001, error)
        except ValueError as raised:
            return raised

    assert trio.run(main) is error


def test_move_on_after_drops_the_future_before_the_scope_exits(runtime):
    async def main():
        before = m.dropped()
        with trio.move_on_after(0.01) as scope:
            await m.sleep_counted(runtime, 60, None)
        # The Rust future's destructor ran before the scope's exit was observed.
        return scope.cancelled_caught, m.dropped() - before

    assert trio.run(main) == (True, 1)


def test_cancel_scope_outcomes_match(differential):
    async def main():
        with trio.move_on_after(0.005) as short:
            await differential["sleep"](60, None)
        with trio.move_on_after(60) as long:
            value = await differential["sleep"](0.001, "kept")
        with trio.CancelScope() as already:
            already.cancel()
            await differential["sleep"](60, None)
        return short.cancelled_caught, long.cancelled_caught, value, already.cancelled_caught

    assert trio.run(main) == (True, False, "kept", True)


def test_fail_after_raises_too_slow(differential):
    async def main():
        with pytest.raises(trio.TooSlowError):
            with trio.fail_after(0.005):
                await differential["sleep"](60, None)
        return "ok"

    assert trio.run(main) == "ok"


def test_nursery_failure_cancels_pending_siblings(differential, runtime):
    error = KeyError("first")

    async def main():
        cancelled = []

        async def sibling():
            try:
                await differential["sleep"](60, None)
            except trio.Cancelled:
                cancelled.append(True)
                raise

        with pytest.raises(BaseException) as caught:
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(sibling)
                nursery.start_soon(differential["raise_after"], 0.005, error)
        leaves = list(getattr(caught.value, "exceptions", [caught.value]))
        return [leaf is error for leaf in leaves], cancelled

    assert trio.run(main) == ([True], [True, True, True])


def test_nursery_failure_drops_every_rust_future(runtime):
    async def main():
        before = m.dropped()
        with pytest.raises(BaseException):
            async with trio.open_nursery() as nursery:
                for _ in range(50):
                    nursery.start_soon(m.sleep_counted, runtime, 60, None)
                nursery.start_soon(m.raise_after, runtime, 0.005, ValueError("x"))
        return m.dropped() - before

    assert trio.run(main) == 50


def test_shielded_scope_keeps_the_future(differential):
    async def main():
        with trio.move_on_after(0.001):
            with trio.CancelScope(shield=True):
                value = await differential["sleep"](0.02, "shielded")
        return value

    assert trio.run(main) == "shielded"


def interrupt_soon():
    """Sends SIGINT to this process from another thread shortly, as Ctrl-C would: trio's
    handler finds the main task waiting and delivers KeyboardInterrupt through its abort."""
    timer = threading.Timer(0.01, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    return timer


def test_keyboard_interrupt_reaches_a_waiting_main_task(differential):
    async def main():
        interrupt_soon()
        await differential["sleep"](60, None)

    with pytest.raises(KeyboardInterrupt):
        trio.run(main)


def test_keyboard_interrupt_drops_the_rust_future(runtime):
    async def main():
        interrupt_soon()
        await m.sleep_counted(runtime, 60, None)

    before = m.dropped()
    with pytest.raises(KeyboardInterrupt):
        trio.run(main)
    assert m.dropped() - before == 1


def test_the_awaiting_tasks_context_is_seen(runtime):
    var = contextvars.ContextVar("var")

    async def main():
        var.set("trio task")
        inline = await m.context_var_after(runtime, 0, var)
        later = await m.context_var_after(runtime, 0.001, var)
        return inline, later

    assert trio.run(main) == ("trio task", "trio task")


def test_current_loop_is_the_runs_token(runtime):
    async def main():
        token = trio.lowlevel.current_trio_token()
        inline = await m.current_loop_after(runtime, 0)
        later = await m.current_loop_after(runtime, 0.001)
        return inline is token, later is token

    assert trio.run(main) == (True, True)


def test_runs_one_after_another(runtime):
    for index in range(3):
        assert trio.run(m.sleep, runtime, 0.001, index) == index


@pytest.mark.parametrize("home", ["loop", "runtime", "auto"])
def test_every_home_runs_under_trio(runtime, home):
    async def main():
        gate = m.Gate()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(gate.wait, runtime, home)
            await trio.sleep(0.001)
            gate.open_from_thread()
        return "opened"

    assert trio.run(main) == "opened"


def test_a_local_future_runs_on_the_trio_thread(differential, runtime):
    async def main():
        with trio.move_on_after(0.005) as scope:
            await m.local_never()
        return await m.local_sleep_on(runtime, 0.001, "local"), scope.cancelled_caught

    assert trio.run(main) == ("local", True)


# Rust streams as async iterators under trio.


async def native_count(n):
    for i in range(n):
        await trio.lowlevel.checkpoint()
        yield i


@pytest.fixture(params=["native", "bridge"])
def counting(request, runtime):
    """An async iterator of 0..n-1: a trio async generator, or a Rust stream."""
    if request.param == "native":
        return native_count
    return lambda n: m.count_stream(runtime, n)


def test_async_for_over_a_stream(counting):
    async def main():
        return [item async for item in counting(1000)]

    assert trio.run(main) == list(range(1000))


def test_stream_items_with_delays_in_a_nursery(runtime):
    async def main():
        results = {}

        async def drain(index):
            stream, _ = m.probed_stream(runtime, 20, delay=0.0005)
            results[index] = [item async for item in stream]

        async with trio.open_nursery() as nursery:
            for index in range(10):
                nursery.start_soon(drain, index)
        return results

    assert trio.run(main) == {index: list(range(20)) for index in range(10)}


def test_aclose_drops_the_rust_stream(runtime):
    async def main():
        stream, probe = m.probed_stream(runtime, None)
        seen = []
        async for item in stream:
            seen.append(item)
            if item == 4:
                break
        await stream.aclose()
        with trio.fail_after(PATIENCE):
            while not probe.dropped():
                await trio.sleep(0.001)
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()
        return seen

    assert trio.run(main) == [0, 1, 2, 3, 4]


def test_cancelling_a_waiting_anext(runtime):
    async def main():
        stream, probe = m.probed_stream(runtime, None, stall_at=3)
        seen = []
        with trio.move_on_after(0.01) as scope:
            async for item in stream:
                seen.append(item)
        await stream.aclose()
        with trio.fail_after(PATIENCE):
            while not probe.dropped():
                await trio.sleep(0.001)
        return seen, scope.cancelled_caught

    assert trio.run(main) == ([0, 1, 2], True)


def test_stream_error_crosses_as_the_same_object(runtime):
    error = OSError("stream side")

    async def main():
        stream, _ = m.probed_stream(runtime, 10, error_at=2, error=error)
        seen = []
        try:
            async for item in stream:
                seen.append(item)
        except OSError as raised:
            return seen, raised

    seen, raised = trio.run(main)
    assert seen == [0, 1] and raised is error


# Python async iterators consumed from Rust (into_stream) under trio.


@pytest.mark.parametrize("capacity", [None, 1, 3])
def test_rust_consumes_a_trio_async_generator(runtime, capacity):
    async def main():
        return await m.consume(runtime, native_count(200), capacity=capacity)

    assert trio.run(main) == list(range(200))


def test_into_stream_called_from_a_runtime_thread(runtime):
    async def main():
        await m.sleep(runtime, 0.001, None)
        return await m.consume(runtime, native_count(50), from_runtime=True)

    assert trio.run(main) == list(range(50))


def test_an_iterator_error_crosses_as_the_same_object(runtime):
    error = KeyError("from the generator")

    async def failing():
        yield 1
        await trio.sleep(0.001)
        raise error

    async def main():
        return await m.consume(runtime, failing())

    items = trio.run(main)
    assert items[0] == 1 and items[1] is error


def test_dropping_the_rust_stream_closes_the_generator(runtime):
    async def main():
        closed = trio.Event()

        async def endless():
            try:
                index = 0
                while True:
                    await trio.lowlevel.checkpoint()
                    yield index
                    index += 1
            finally:
                closed.set()

        first = await m.consume_first(runtime, endless(), 3)
        with trio.fail_after(PATIENCE):
            await closed.wait()
        return first

    assert trio.run(main) == [0, 1, 2]


def test_rust_awaits_trio_work_between_items(runtime):
    async def main():
        seen = []

        async def after_each(item):
            await trio.sleep(0.0001)
            seen.append(item)

        items = await m.consume(runtime, native_count(20), capacity=2, after_each=after_each)
        return items, seen

    assert trio.run(main) == (list(range(20)), list(range(20)))


# Python awaitable -> Rust future, while a trio run is active.


async def trio_value(value):
    await trio.sleep(0.001)
    return value


@pytest.mark.parametrize("where", ["inline", "task", "thread"])
def test_into_future_runs_a_trio_coroutine(runtime, where):
    convert = {"inline": m.await_py, "task": m.await_py_from_task, "thread": m.await_py_from_thread}

    async def main():
        # A conversion that waited makes the run known to threads without a scope.
        await m.sleep(runtime, 0.001, None)
        return await convert[where](runtime, trio_value("from trio"))

    assert trio.run(main) == "from trio"


@pytest.mark.parametrize("where", ["inline", "task"])
def test_into_future_error_is_the_same_object(runtime, where):
    convert = {"inline": m.await_py, "task": m.await_py_from_task}
    error = LookupError("trio side")

    async def fails():
        await trio.sleep(0.001)
        raise error

    async def main():
        await m.sleep(runtime, 0.001, None)
        try:
            await convert[where](runtime, fails())
        except LookupError as raised:
            return raised

    assert trio.run(main) is error


def test_into_future_runs_in_the_callers_context(runtime):
    var = contextvars.ContextVar("var")

    async def read():
        await trio.sleep(0.001)
        return var.get("unset")

    async def main():
        var.set("caller")
        return await m.await_py(runtime, read())

    assert trio.run(main) == "caller"


async def sleep_until_cancelled(events, on_exit):
    """Sleeps for a minute; records "cancelled" when a cancel scope stops it, and calls
    `on_exit` in its `finally`."""
    try:
        await trio.sleep(60)
    except trio.Cancelled:
        events.append("cancelled")
        raise
    finally:
        on_exit()


def test_dropping_the_rust_future_cancels_the_trio_task(runtime):
    async def main():
        events = []
        finished = trio.Event()

        with trio.move_on_after(0.01):
            await m.await_py(runtime, sleep_until_cancelled(events, finished.set))
        with trio.fail_after(PATIENCE):
            await finished.wait()
        return events

    assert trio.run(main) == ["cancelled"]


@pytest.mark.parametrize("awaited", ["native", "bridge"])
def test_a_cancelled_awaitable_has_unwound_when_the_scope_exits(runtime, awaited):
    """Differential: `await slow()` cancelled by a cancel scope has run its `except` and
    `finally` by the time the scope exits; awaited through a Rust future (`into_future`)
    too: the cancellation reaches the awaiting task once the awaitable's task has unwound
    (test_unwinding.py has the other ways to cancel and to hold the awaitable)."""

    async def main():
        events = []
        slow = sleep_until_cancelled(events, lambda: events.append("unwound"))
        with trio.move_on_after(0.01):
            if awaited == "native":
                await slow
            else:
                await m.await_py(runtime, slow)
        at_exit = list(events)
        with trio.fail_after(PATIENCE):
            while len(events) < 2:
                await trio.sleep(0.001)
        return at_exit

    assert trio.run(main) == ["cancelled", "unwound"]


def test_into_future_many_from_one_rust_future(runtime):
    async def main():
        return await m.await_many(runtime, lambda: trio_value(1), 100)

    assert trio.run(main) == [1] * 100


def test_outside_any_framework_the_error_names_both(runtime):
    coroutine = m.sleep(runtime, 0.01, None)
    with pytest.raises(RuntimeError, match="asyncio.*trio"):
        coroutine.send(None)


def test_the_framework_is_found_without_sniffio(run_anywhere, runtime, monkeypatch):
    """trio imports sniffio; the bridge must not ask it which framework runs."""
    sniffio = pytest.importorskip("sniffio")

    def refuse():
        raise AssertionError("the bridge asked sniffio which framework runs")

    monkeypatch.setattr(sniffio, "current_async_library", refuse)

    async def main():
        return await m.sleep(runtime, 0.01, "value")

    assert run_anywhere(main) == "value"


def test_a_completion_reaches_trio_while_the_run_thread_holds_the_gil():
    """Runtime threads complete their futures, the run's wake-up included, without the GIL:
    the run's thread holds it throughout, and every task still gets its value."""
    count = 50

    async def main():
        before = m.driven()
        results = [None] * count

        async def one(i):
            results[i] = await m.thread_sleep(0.05, f"value {i}")

        async with trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(one, i)
            await trio.testing.wait_all_tasks_blocked()
            assert m.hold_gil_until_driven(before + count, PATIENCE)
        return results

    assert trio.run(main) == [f"value {i}" for i in range(count)]


def test_a_burst_of_completions_wakes_the_run_once(monkeypatch):
    """The same burst, counted: 50 futures complete on their threads while the run's thread
    holds the GIL; the completions reach trio through the run's wake descriptor (no call
    into trio per completion), and one wake of the run's drain reschedules all 50 tasks in
    one pass (a spurious second wake is tolerated)."""
    count = 50
    wakes = []
    wait_readable = trio.lowlevel.wait_readable

    async def counted(fd):
        await wait_readable(fd)
        wakes.append(fd)

    # The drain task looks the function up when it starts, at the run's first conversion.
    monkeypatch.setattr(trio.lowlevel, "wait_readable", counted)

    async def main():
        results = [None] * count

        async def one(i):
            results[i] = await m.thread_sleep(0.05, str(i))

        async with trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(one, i)
            await trio.testing.wait_all_tasks_blocked()
            before = len(wakes)
            assert m.hold_gil_until_driven(m.driven() + count, PATIENCE)
        return results, len(wakes) - before

    results, burst_wakes = trio.run(main)
    assert results == [str(i) for i in range(count)]
    assert 1 <= burst_wakes <= 2, burst_wakes


# A cancel while a runtime thread is inside the Rust future's poll: the future cannot be
# dropped at once, so the abort answers FAILED and the task is rescheduled with the
# cancellation only once that thread has dropped it.


async def wait_until(condition):
    with trio.fail_after(PATIENCE):
        while not condition():
            await trio.sleep(0.001)


def cancel_while_the_runtime_polls(awaitable_of):
    """Awaits `awaitable_of(latch)` (made inside the run) in a cancel scope cancelled while
    a runtime thread is inside the Rust future's poll: (the waiter still waits and the
    future is not dropped while the poll runs, the scope caught the cancellation, the
    future was dropped in the end)."""

    async def main():
        latch = m.Latch(block="poll")
        awaitable = awaitable_of(latch)
        scope = trio.CancelScope()
        done = trio.Event()

        async def waiter():
            with scope:
                await awaitable
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            try:
                await wait_until(latch.polling)
                scope.cancel()
                for _ in range(50):
                    await trio.sleep(0)
                alive = not done.is_set() and not latch.dropped()
            finally:
                latch.release()
            with trio.fail_after(PATIENCE):
                await done.wait()
        return alive, scope.cancelled_caught, latch.dropped()

    return trio.run(main)


def test_a_cancel_while_the_runtime_polls_waits_for_the_drop():
    assert cancel_while_the_runtime_polls(lambda latch: latch.future()) == (True, True, True)


def test_a_cancel_whose_future_goes_while_it_is_being_stopped_completes():
    async def main():
        latch = m.Latch(block="poll", release_on_wake=True)
        scope = trio.CancelScope()
        done = trio.Event()

        async def waiter():
            with scope:
                await latch.future()
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            try:
                await wait_until(latch.polling)
                scope.cancel()
                with trio.fail_after(PATIENCE):
                    await done.wait()
            finally:
                latch.release()
        return scope.cancelled_caught, latch.finished(), latch.dropped()

    assert trio.run(main) == (True, True, True)


def test_synchronous_lookups_find_the_run(runtime):
    var = contextvars.ContextVar("var")

    async def main():
        var.set("here")
        token = trio.lowlevel.current_trio_token()
        current = m.current_loop_now()
        event_loop, context = m.current_locals_now()
        return current is token, event_loop is token, context.get(var)

    assert trio.run(main) == (True, True, "here")


def test_explicit_locals_of_the_run_reach_python(runtime):
    var = contextvars.ContextVar("var")

    async def read():
        await trio.sleep(0.001)
        return var.get("unset")

    async def main():
        var.set("scoped")
        # TaskLocals::with_running_loop (the run's token) carried by pyo3_aio::scope into a
        # task the Rust future spawns.
        return await m.await_py_in_scope(runtime, read())

    assert trio.run(main) == "scoped"
