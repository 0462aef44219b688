"""Bad input to the public Python-facing entry points: awaitables whose `__await__`
misbehaves, awaitables of another loop, re-awaited and shared coroutines, async iterators
whose `__anext__` misbehaves, protocol misuse of `RustCoroutine`, its waiter and
`RustStream`, explicit `TaskLocals` and the application entry points given the wrong
objects. Every case ends in a Python exception of the right type whose message names the
problem: never a crash, a hang, a `PanicException`, a loop exception-handler call or a
silently wrong value.

Cases already covered elsewhere are not repeated: non-awaitables of common types
(`test_into_future.py`), non-async-iterables and `__aiter__` misbehaving
(`test_into_stream.py`), `send` of a value before the start, `throw` of the very object,
awaiting twice, closing (`test_coroutine_protocol.py`), `__anext__` after `aclose`
(`test_stream_into_py.py`).
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import warnings

import pytest

import pyo3_aio_tests as m
from harness import loop_factory, run_directly, run_python, wait_until

# The Rust side calls into_future on the loop thread at once, or later from a runtime thread.
WHERE = pytest.mark.parametrize("where", ["loop_thread", "runtime_thread"])


def await_from(runtime, where, awaitable):
    if where == "loop_thread":
        return m.await_py(runtime, awaitable)
    return m.await_py_after(runtime, 0.001, lambda: awaitable)


async def value_later(value):
    await asyncio.sleep(0)
    return value


class AppError(Exception):
    pass


# Awaitables whose __await__ misbehaves ----------------------------------------------------


class AwaitReturns:
    """`__await__` returns `value` (not an iterator)."""

    def __init__(self, value):
        self.value = value

    def __await__(self):
        return self.value


class AwaitRaises:
    def __init__(self, error):
        self.error = error

    def __await__(self):
        raise self.error


class AwaitYields:
    """`__await__` yields `junk` to the Task, then returns 1."""

    def __init__(self, junk):
        self.junk = junk

    def __await__(self):
        yield self.junk
        return 1


class StopsWith:
    """`__await__` returns an iterator whose first `__next__` raises StopIteration(value)."""

    def __init__(self, value):
        self.value = value

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        raise StopIteration(self.value)


class AwaitIsNone:
    __await__ = None


@WHERE
@pytest.mark.parametrize("returned", [5, None, 1.5], ids=["int", "None", "float"])
def test_await_returning_a_non_iterator_raises_type_error(run, runtime, where, returned):
    async def main():
        with pytest.raises(TypeError, match="not iterable|non-iterator"):
            await await_from(runtime, where, AwaitReturns(returned))

    run(main)


@WHERE
def test_await_raising_gives_that_very_exception(run, runtime, where):
    error = AppError("__await__ refused")

    async def main():
        with pytest.raises(AppError) as raised:
            await await_from(runtime, where, AwaitRaises(error))
        assert raised.value is error

    run(main)


@WHERE
@pytest.mark.parametrize("junk", [7, "x", (1, 2), object()], ids=["int", "str", "tuple", "object"])
def test_await_yielding_junk_raises_runtime_error_naming_the_bad_yield(run, runtime, where, junk):
    async def main():
        with pytest.raises(RuntimeError, match="bad yield"):
            await await_from(runtime, where, AwaitYields(junk))

    run(main)


@WHERE
def test_await_yielding_a_future_of_another_loop_raises_runtime_error(run, runtime, where, loop_kind):
    other = loop_factory(loop_kind)()

    async def main():
        with pytest.raises(RuntimeError, match="attached to a different loop"):
            await await_from(runtime, where, AwaitYields(other.create_future()))

    try:
        run(main)
    finally:
        other.close()


@WHERE
@pytest.mark.parametrize(
    "value", [None, (1, 2), [3], ValueError("a value, not raised")], ids=["None", "tuple", "list", "exception"]
)
def test_stop_iteration_with_an_odd_value_returns_exactly_that_value(run, runtime, where, value):
    async def main():
        assert await await_from(runtime, where, StopsWith(value)) is value

    run(main)


def test_await_attribute_none_is_not_awaitable(run, runtime):
    async def main():
        with pytest.raises(TypeError, match="^expected an awaitable, got 'AwaitIsNone'$"):
            m.into_future_now(AwaitIsNone())
        with pytest.raises(TypeError, match="got 'AwaitIsNone'"):
            m.await_py(runtime, AwaitIsNone())

    run(main)


async def _an_async_generator():
    yield 1


NOT_AWAITABLE = [
    (None, "NoneType"),
    (1.5, "float"),
    (b"bytes", "bytes"),
    ([1], "list"),
    ({"a": 1}, "dict"),
    (int, "type"),
    (sys, "module"),
    (print, "builtin_function_or_method"),
]


@pytest.mark.parametrize("value, name", NOT_AWAITABLE, ids=[name for _, name in NOT_AWAITABLE])
def test_more_non_awaitables_raise_type_error_naming_the_type(run, value, name):
    async def main():
        with pytest.raises(TypeError, match=f"^expected an awaitable, got '{name}'$"):
            m.into_future_now(value)

    run(main)


def test_an_async_generator_and_a_rust_stream_are_not_awaitable(run, runtime):
    async def main():
        generator = _an_async_generator()
        with pytest.raises(TypeError, match="^expected an awaitable, got 'async_generator'$"):
            m.into_future_now(generator)
        stream = m.count_stream(runtime, 1)
        with pytest.raises(TypeError, match="^expected an awaitable, got 'RustStream'$"):
            m.into_future_now(stream)
        await stream.aclose()

    run(main)


# Awaitables of another loop, finished, shared --------------------------------------------


def test_a_future_of_another_loop_raises_value_error_at_the_call(run, runtime, loop_kind):
    other = loop_factory(loop_kind)()

    async def main():
        with pytest.raises(ValueError, match="different loop"):
            m.await_py(runtime, other.create_future())

    try:
        run(main)
    finally:
        other.close()


@pytest.mark.parametrize("how", ["runtime_thread", "plain_thread"])
def test_a_future_of_another_loop_from_off_the_loop_raises_value_error(run, runtime, loop_kind, how):
    other = loop_factory(loop_kind)()

    async def main():
        future = other.create_future()
        made = (
            m.await_py_after(runtime, 0.001, lambda: future)
            if how == "runtime_thread"
            else m.await_py_from_thread(runtime, future)
        )
        with pytest.raises(ValueError, match="different loop"):
            await made

    try:
        run(main)
    finally:
        other.close()


@WHERE
def test_a_finished_coroutine_raises_cannot_reuse(run, runtime, where):
    async def main():
        coroutine = value_later(1)
        assert await coroutine == 1
        with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
            await await_from(runtime, where, coroutine)

    run(main)


def test_a_closed_rust_coroutine_raises_cannot_reuse(run, runtime):
    async def main():
        coroutine = m.sleep(runtime, 0.001, 1)
        coroutine.close()
        with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
            await m.await_py(runtime, coroutine)

    run(main)


@WHERE
def test_a_coroutine_awaited_elsewhere_raises_and_its_awaiter_still_gets_the_value(run, runtime, where):
    async def main():
        gate = asyncio.get_running_loop().create_future()

        async def slow():
            await gate
            return 9

        shared = slow()

        async def holder():
            return await shared

        task = asyncio.ensure_future(holder())
        # The holder awaits `shared` first: `await_py` converts at once, and on 3.12+ the
        # task it makes for `shared` starts eagerly, which would take `shared` before the
        # holder's first step (as a native eager task would).
        assert await wait_until(lambda: task._fut_waiter is gate)
        second = asyncio.ensure_future(await_from(runtime, where, shared))
        # Release the gate only once both tasks wait on it, the holder's first: the holder
        # then finishes `shared` and the second finds it spent, as with two native awaits.
        # (Released by a timer instead, the second could step first under load and win.)
        assert await wait_until(
            lambda: sum(other._fut_waiter is gate for other in asyncio.all_tasks()) == 2
        )
        gate.set_result(None)
        with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
            await second
        assert await task == 9

    run(main)


@WHERE
def test_a_cancelled_future_raises_cancelled_error(run, runtime, where):
    async def main():
        future = asyncio.get_running_loop().create_future()
        future.cancel()
        with pytest.raises(asyncio.CancelledError):
            await await_from(runtime, where, future)

    run(main)


# RustCoroutine protocol misuse -----------------------------------------------------------


@pytest.mark.parametrize("junk", [5, "text", int, object()], ids=["int", "str", "class_int", "object"])
def test_throw_of_something_not_an_exception_raises_type_error(run, runtime, junk):
    async def main():
        before = m.dropped()
        coroutine = m.never(runtime)
        assert coroutine.send(None) is not None  # pending: yields its waiter
        with pytest.raises(TypeError, match="exceptions must derive from BaseException"):
            coroutine.throw(junk)
        # The Rust future is gone and the coroutine is finished, not left half-open.
        assert await wait_until(lambda: m.dropped() > before)
        with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
            coroutine.send(None)

    run(main)


def test_throw_with_a_junk_traceback_raises_type_error(run, runtime):
    async def main():
        coroutine = m.sleep(runtime, 0.001, 1)
        with pytest.raises(TypeError, match="traceback"):
            coroutine.throw(ValueError, None, "not a traceback")
        coroutine = m.sleep(runtime, 0.001, 1)
        with pytest.raises(TypeError, match="traceback"):
            coroutine.throw(ValueError, 5, 7)

    run(main)


def test_throw_with_a_real_traceback_keeps_it(run, runtime):
    async def main():
        try:
            raise KeyError("here")
        except KeyError as error:
            traceback = error.__traceback__
        coroutine = m.sleep(runtime, 0.001, 1)
        with pytest.raises(LookupError) as raised:
            coroutine.throw(LookupError, "msg", traceback)
        assert raised.value.args == ("msg",)
        frames = []
        tb = raised.value.__traceback__
        while tb is not None:
            frames.append(tb.tb_frame)
            tb = tb.tb_next
        assert traceback.tb_frame in frames

    run(main)


def test_throw_of_a_class_that_cannot_be_built_without_arguments_raises_its_type_error(run, runtime):
    async def main():
        coroutine = m.sleep(runtime, 0.001, 1)
        with pytest.raises(TypeError, match="argument"):
            coroutine.throw(UnicodeDecodeError)

    run(main)


def test_close_twice_then_send_and_throw(run, runtime):
    async def main():
        # Long: the sleep starts when the coroutine is made, and must still be pending at
        # the first send even on a loaded machine (1 ms was ready there now and then).
        coroutine = m.sleep(runtime, 3600, 1)
        coroutine.send(None)
        coroutine.close()
        coroutine.close()
        with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
            coroutine.send(None)
        with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
            coroutine.__next__()
        # As CPython's coroutines (3.9-3.13): a finished one refuses whatever is thrown in.
        with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
            coroutine.throw(AppError("after close"))

    run(main)


def test_awaiting_one_coroutine_from_two_tasks_gives_one_value_and_one_runtime_error(run, runtime):
    async def main():
        coroutine = m.sleep(runtime, 0.01, "once")

        async def wait(awaitable):
            return await awaitable

        outcomes = await asyncio.gather(wait(coroutine), wait(coroutine), return_exceptions=True)
        values = [outcome for outcome in outcomes if outcome == "once"]
        errors = [outcome for outcome in outcomes if isinstance(outcome, RuntimeError)]
        assert len(values) == 1 and len(errors) == 1, outcomes
        assert "already awaited" in str(errors[0]) or "already executing" in str(errors[0])

    run(main)


def test_next_of_a_pending_coroutine_outside_a_loop_then_it_is_finished(runtime):
    coroutine = m.sleep(runtime, 3600, 1)  # pending at the first poll, however loaded
    with pytest.raises(RuntimeError, match="no running event loop"):
        coroutine.__next__()
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        coroutine.send(None)


# The waiter (what a pending coroutine yields) ----------------------------------------------


def test_waiter_result_and_exception_before_done_raise_invalid_state_error(run, runtime):
    async def main():
        coroutine = m.sleep(runtime, 3600, 1)  # pending at the first send, however loaded
        waiter = coroutine.send(None)
        with pytest.raises(asyncio.InvalidStateError, match="Result is not set"):
            waiter.result()
        with pytest.raises(asyncio.InvalidStateError, match="Exception is not set"):
            waiter.exception()
        coroutine.close()

    run(main)


def test_waiter_cancel_twice_then_result_raises_cancelled_error(run, runtime):
    async def main():
        before = m.dropped()
        coroutine = m.never(runtime)
        waiter = coroutine.send(None)
        assert waiter.cancel() is True
        assert waiter.cancel() is False
        assert waiter.cancel(msg=object()) is False
        assert waiter.cancelled() and waiter.done()
        with pytest.raises(asyncio.CancelledError):
            waiter.result()
        with pytest.raises(asyncio.CancelledError):
            coroutine.send(None)
        assert await wait_until(lambda: m.dropped() > before)

    run(main)


@pytest.mark.parametrize("callback, context", [(5, None)], ids=["not_callable"])
def test_waiter_bad_done_callback_fails_like_an_asyncio_future_and_the_loop_goes_on(loop_kind, runtime, callback, context):
    """asyncio.Future.add_done_callback accepts a non-callable (or a non-Context) too; the
    failure shows when the callbacks are scheduled: as a TypeError from cancel() (uvloop's
    call_soon checks the context) or reported to the loop's exception handler."""
    reported = []

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: reported.append(context["exception"]))
        coroutine = m.never(runtime)
        waiter = coroutine.send(None)
        waiter.add_done_callback(callback, context=context)
        try:
            waiter.cancel()
        except TypeError as error:
            reported.append(error)
        assert await wait_until(lambda: reported)
        coroutine.close()
        return await value_later("loop still usable")

    assert run_directly(loop_kind, main()) == "loop still usable"
    assert len(reported) == 1 and isinstance(reported[0], (TypeError, AttributeError)), reported


# RustStream misuse -------------------------------------------------------------------------


def test_anext_outside_a_loop_gives_ready_items_and_a_clear_error_when_it_must_wait(runtime):
    stream = m.local_count_stream(2)
    with pytest.raises(StopIteration) as stop:
        stream.__anext__().send(None)
    assert stop.value.value == 0
    stalled, probe = m.probed_stream(runtime, None, stall_at=0)
    with pytest.raises(RuntimeError, match="no running event loop"):
        stalled.__anext__().send(None)
    # The failed __anext__ closed the stream, as a cancelled one does.
    with pytest.raises(StopAsyncIteration):
        stalled.__anext__().send(None)
    with pytest.raises(StopIteration):  # aclose needs no loop
        stalled.aclose().send(None)


def test_a_ready_anext_awaitable_cannot_be_reused_and_rejects_junk_throws(run, runtime):
    async def main():
        stream = m.local_count_stream(3)
        step = stream.__anext__()
        with pytest.raises(StopIteration) as stop:
            step.send(None)
        assert stop.value.value == 0
        with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
            step.send(None)
        step = stream.__anext__()
        with pytest.raises(TypeError, match="exceptions must derive from BaseException"):
            step.throw(5)
        await stream.aclose()

    run(main)


def test_concurrent_aclose_ends_every_waiting_anext(run, runtime):
    async def main():
        stream, probe = m.probed_stream(runtime, None, stall_at=0)
        waiting = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0)
        assert await asyncio.gather(stream.aclose(), stream.aclose(), stream.aclose()) == [None] * 3
        with pytest.raises(StopAsyncIteration):
            await waiting
        assert await wait_until(probe.dropped)

    run(main)


# into_stream: async iterators whose __anext__ misbehaves ----------------------------------


class Iterator:
    """An async iterator whose `__anext__` is `anext(n)` for the n-th call (from 1)."""

    def __init__(self, anext):
        self.anext = anext
        self.calls = 0

    def __aiter__(self):
        return self

    def __anext__(self):
        self.calls += 1
        return self.anext(self.calls)


async def raising(error):
    raise error


class StopSubclass(StopAsyncIteration):
    pass


class NotAnException(BaseException):
    pass


def _raise(error):
    raise error


ANEXT_CASES = {
    # name: (anext, check of the items Rust received)
    "returns_int": (lambda n: 5, lambda items: isinstance(items[-1], TypeError) and "int" in str(items[-1])),
    "returns_none": (lambda n: None, lambda items: isinstance(items[-1], TypeError) and "NoneType" in str(items[-1])),
    "raises_at_call": (lambda n: _raise(AppError("anext")), lambda items: isinstance(items[-1], AppError)),
    "raises_stop_iteration": (
        lambda n: _raise(StopIteration(1)),
        lambda items: isinstance(items[-1], StopIteration) and items[-1].args == (1,),
    ),
    "stop_subclass_at_call": (
        lambda n: _raise(StopSubclass()) if n > 2 else value_later(n),
        lambda items: items == [1, 2],
    ),
    "stop_subclass_awaited": (
        lambda n: raising(StopSubclass()) if n > 2 else value_later(n),
        lambda items: items == [1, 2],
    ),
    "base_exception": (
        lambda n: raising(NotAnException("b")) if n > 1 else value_later(n),
        lambda items: items[0] == 1 and isinstance(items[1], NotAnException),
    ),
    "cancelled_error": (
        lambda n: raising(asyncio.CancelledError()) if n > 1 else value_later(n),
        lambda items: items[0] == 1 and isinstance(items[1], asyncio.CancelledError),
    ),
}


@pytest.mark.parametrize("case", list(ANEXT_CASES))
@pytest.mark.parametrize("from_runtime", [False, True], ids=["on_loop_thread", "from_runtime_thread"])
def test_anext_misbehaving_ends_the_stream_with_a_python_error(run, runtime, case, from_runtime):
    anext, check = ANEXT_CASES[case]

    async def main():
        items = await m.consume(runtime, Iterator(anext), limit=10, from_runtime=from_runtime)
        assert len(items) <= 3 and check(items), items

    run(main)


def test_anext_returning_a_future_of_another_loop(run, runtime, loop_kind):
    other = loop_factory(loop_kind)()

    async def main():
        items = await m.consume(runtime, Iterator(lambda n: other.create_future()), limit=10)
        assert len(items) == 1 and isinstance(items[0], RuntimeError), items
        assert "different loop" in str(items[0])

    try:
        run(main)
    finally:
        other.close()


def test_anext_attribute_none_ends_the_stream_with_type_error(run, runtime):
    class AnextIsNone:
        __anext__ = None

        def __aiter__(self):
            return self

    async def main():
        items = await m.consume(runtime, AnextIsNone())
        assert len(items) == 1 and isinstance(items[0], TypeError), items

    run(main)


@pytest.mark.parametrize("seconds", [0, 0.001], ids=["inline", "on_runtime"])
def test_a_rust_future_failing_with_stop_iteration_raises_runtime_error(run, runtime, seconds):
    async def main():
        with pytest.raises(RuntimeError, match="StopIteration"):
            await m.raise_after(runtime, seconds, StopIteration("not a return value"))

    run(main)


def test_an_eager_future_failing_with_stop_iteration_raises_runtime_error(run, runtime):
    async def main():
        with pytest.raises(RuntimeError, match="StopIteration") as raised:
            await m.eager_raise_after(runtime, 0.001, StopIteration("not a return value"))
        assert isinstance(raised.value.__cause__, StopIteration)

    run(main)


# TaskLocals and the locals functions ------------------------------------------------------


def test_current_loop_and_locals_outside_any_loop_raise_runtime_error():
    with pytest.raises(RuntimeError, match="no running event loop and no task locals"):
        m.current_loop_now()
    with pytest.raises(RuntimeError, match="no running event loop and no task locals"):
        m.current_locals_now()


def test_current_loop_and_locals_inside_a_loop_are_that_loop(run):
    async def main():
        loop = asyncio.get_running_loop()
        assert m.current_loop_now() is loop
        event_loop, context = m.current_locals_now()
        assert event_loop is loop
        assert type(context).__name__ == "Context"

    run(main)


def test_locals_of_a_closed_loop_raise_runtime_error(run, runtime, loop_kind):
    closed = loop_factory(loop_kind)()
    closed.close()

    async def main():
        coroutine = value_later(1)
        try:
            with pytest.raises(RuntimeError, match="the event loop is closed"):
                m.await_py_with_locals(runtime, closed, coroutine)
        finally:
            coroutine.close()

    run(main)


@pytest.mark.parametrize("junk", [5, None, "loop"], ids=["int", "None", "str"])
def test_locals_with_a_junk_loop_raise_type_error_naming_it(run, runtime, junk):
    async def main():
        future = asyncio.get_running_loop().create_future()
        future.set_result(1)
        with pytest.raises(TypeError, match=f"event loop.*'{type(junk).__name__}'"):
            m.await_py_with_locals(runtime, junk, future)

    run(main)


def test_locals_with_a_junk_context_raise_type_error_naming_it(loop_kind, runtime):
    # In a subprocess that exits at once: with the bug, the task made with the junk context
    # can neither run nor be cancelled, so the loop could never be shut down.
    code = f"""
import asyncio, os, sys
sys.path.insert(0, {os.path.dirname(__file__)!r})
import pyo3_aio_tests as m
from harness import loop_factory

async def value():
    return 1

async def main():
    coroutine = value()
    try:
        made = m.await_py_with_locals({runtime!r}, asyncio.get_running_loop(), coroutine, 5)
    except TypeError as error:
        print("TypeError:", error, flush=True)
    else:
        print("accepted", flush=True)
    os._exit(0)

loop = loop_factory({loop_kind!r})()
loop.run_until_complete(main())
"""
    completed = run_python(code)
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert out.startswith("TypeError:") and "Context" in out and "'int'" in out, out


# The application entry points -------------------------------------------------------------


def test_run_with_a_factory_returning_junk_raises_type_error_naming_it(runtime):
    with pytest.raises(TypeError, match="the event loop factory returned 'int', which is not an asyncio event loop"):
        m.run_with_factory(runtime, lambda: 5, "value")


def test_run_with_a_raising_factory_raises_that_error(runtime):
    error = AppError("no loop for you")

    def factory():
        raise error

    with pytest.raises(AppError) as raised:
        m.run_with_factory(runtime, factory, "value")
    assert raised.value is error


def test_run_with_a_good_factory_returns_the_value(runtime, loop_kind):
    assert m.run_with_factory(runtime, loop_factory(loop_kind), "value") == "value"


@pytest.mark.parametrize("bad", ["int", "closed_loop"])
def test_run_until_complete_on_a_bad_loop_raises_a_clear_error_without_warning(runtime, loop_kind, bad):
    if bad == "int":
        event_loop, expected = 5, (TypeError, "'int'.*not an asyncio event loop")
    else:
        event_loop = loop_factory(loop_kind)()
        event_loop.close()
        expected = (RuntimeError, "closed")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(expected[0], match=expected[1]):
            m.run_until_complete_on(runtime, event_loop, "value")
        gc.collect()
    assert [str(w.message) for w in caught] == []


def test_run_until_complete_on_the_running_loop_raises_at_once_leaving_nothing(run):
    async def main():
        loop = asyncio.get_running_loop()
        before = asyncio.all_tasks(loop)
        with pytest.raises(RuntimeError, match="already running"):
            m.run_until_complete_on("tokio", loop, "value")
        assert asyncio.all_tasks(loop) == before

    run(main)
