"""`future_into_py` returns a real coroutine: asyncio's own APIs accept it, and send,
throw and close behave as they do for an `async def` coroutine."""

from __future__ import annotations

import asyncio
import collections.abc
import gc
import inspect
import sys
import warnings

import pytest

import pyo3_aio_tests as m
from harness import run_directly, run_on, wait_until

needs_311 = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="asyncio.timeout and TaskGroup are new in Python 3.11"
)


def test_it_is_a_coroutine_and_not_a_future(run, runtime):
    async def main():
        for coroutine in (m.sleep(runtime, 0.001, 1), m.ready(runtime, 1)):
            assert asyncio.iscoroutine(coroutine)
            assert isinstance(coroutine, collections.abc.Coroutine)
            assert inspect.isawaitable(coroutine)
            assert not asyncio.isfuture(coroutine)
            assert coroutine.__name__ in ("sleep", "ready")
            assert await coroutine == 1

    run(main)


def test_asyncio_run_accepts_it_directly(loop_kind, runtime):
    # Created before any loop exists, handed to asyncio.run with no wrapper.
    pending = m.sleep(runtime, 0.001, "pending")
    ready = m.ready(runtime, "ready")
    assert run_directly(loop_kind, pending) == "pending"
    assert run_directly(loop_kind, ready) == "ready"


def test_create_task_and_ensure_future_accept_it(run, runtime):
    async def main():
        task = asyncio.create_task(m.sleep(runtime, 0.001, "task"))
        other = asyncio.ensure_future(m.ready(runtime, "ensured"))
        assert isinstance(task, asyncio.Task) and isinstance(other, asyncio.Task)
        assert await task == "task"
        assert await other == "ensured"
        assert task.result() == "task"

    run(main)


def test_gather_accepts_it_among_python_coroutines(run, runtime):
    async def python_value(value):
        await asyncio.sleep(0.001)
        return value

    async def main():
        results = await asyncio.gather(
            m.sleep(runtime, 0.002, "slow rust"),
            python_value("python"),
            m.ready(runtime, "ready rust"),
            m.sleep(runtime, 0.0, "fast rust"),
        )
        assert results == ["slow rust", "python", "ready rust", "fast rust"]

    run(main)


def test_wait_for_accepts_it(run, runtime):
    async def main():
        assert await asyncio.wait_for(m.sleep(runtime, 0.001, "in time"), timeout=30) == "in time"
        assert await asyncio.wait_for(m.ready(runtime, "ready"), timeout=30) == "ready"
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(m.never(runtime), timeout=0.01)

    run(main)


@needs_311
def test_asyncio_timeout_accepts_it(run, runtime):
    async def main():
        async with asyncio.timeout(30):
            assert await m.sleep(runtime, 0.001, "in time") == "in time"
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await m.never(runtime)

    run(main)


@needs_311
def test_task_group_accepts_it(run, runtime):
    async def main():
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(m.sleep(runtime, 0.001, i)) for i in range(10)]
        assert [task.result() for task in tasks] == list(range(10))

    run(main)


def test_wait_as_completed_and_shield_accept_it(run, runtime):
    async def main():
        done, pending = await asyncio.wait(
            {asyncio.ensure_future(m.sleep(runtime, 0.001, i)) for i in range(5)}
        )
        assert not pending and {task.result() for task in done} == set(range(5))
        seen = {await next_done for next_done in asyncio.as_completed(
            [m.sleep(runtime, 0.001 * i, i) for i in range(5)]
        )}
        assert seen == set(range(5))
        assert await asyncio.shield(m.sleep(runtime, 0.001, "shielded")) == "shielded"

    run(main)


def test_send_drives_a_ready_coroutine_even_without_a_loop(runtime):
    coroutine = m.ready(runtime, "value")
    with pytest.raises(StopIteration) as stop:
        coroutine.send(None)
    assert stop.value.value == "value"


async def returns(value):
    return value


def stop_of(step):
    """The StopIteration that `step()` raises, as (value, args, __context__)."""
    with pytest.raises(StopIteration) as stop:
        step()
    return stop.value.value, stop.value.args, stop.value.__context__


@pytest.mark.parametrize("value", [7, "text", None, (1, 2), ValueError("as a value")])
def test_a_step_that_returns_raises_the_stop_iteration_a_python_coroutine_does(runtime, value):
    # `next()` calls the type's iteration slot, which `await` uses on 3.12+; `send` is the
    # Python-level method.
    steps = (lambda: next(m.ready(runtime, value)), lambda: m.ready(runtime, value).send(None))
    python = stop_of(lambda: returns(value).send(None))
    for step in steps:
        assert stop_of(step) == python
    try:
        raise KeyError("being handled")
    except KeyError as handled:
        python = stop_of(lambda: returns(value).send(None))
        assert python[2] is handled
        for step in steps:
            assert stop_of(step) == python


def test_an_await_inside_an_except_block_returns_the_value(run_anywhere, runtime):
    async def main():
        try:
            raise KeyError("being handled")
        except KeyError:
            return await m.ready(runtime, 5), await m.ready(runtime, (1, 2))

    assert run_anywhere(main) == (5, (1, 2))


def test_send_of_a_value_to_a_just_started_coroutine_raises_type_error(run_anywhere, runtime):
    async def main():
        coroutine = m.sleep(runtime, 0.001, 1)
        with pytest.raises(TypeError, match="can't send non-None value to a just-started"):
            coroutine.send("not None")
        assert await coroutine == 1  # still usable, as for a Python coroutine

    run_anywhere(main)


def test_a_pending_coroutine_yields_a_future_like_waiter(run, runtime):
    async def main():
        coroutine = m.never(runtime)
        waiter = coroutine.send(None)
        assert asyncio.isfuture(waiter)  # only this internal object looks like a future
        assert waiter.get_loop() is asyncio.get_running_loop()
        assert not waiter.done()
        assert coroutine.cr_await is waiter
        # A stray resume before the result arrived yields the same waiter again.
        assert coroutine.send(None) is waiter
        coroutine.close()
        assert coroutine.cr_await is None

    run(main)


def test_throw_reraises_the_very_exception_object_and_drops_the_future(run, runtime):
    async def main():
        before = m.dropped()
        coroutine = m.never(runtime)
        coroutine.send(None)  # pending on the runtime now
        error = KeyError("thrown in")
        with pytest.raises(KeyError) as raised:
            coroutine.throw(error)
        assert raised.value is error
        assert await wait_until(lambda: m.dropped() >= before + 1)
        with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
            coroutine.send(None)

    run(main)


def test_throw_of_an_exception_class_raises_an_instance(run_anywhere, runtime):
    async def main():
        coroutine = m.never(runtime)
        coroutine.send(None)
        with pytest.raises(LookupError) as raised:
            coroutine.throw(LookupError)
        assert type(raised.value) is LookupError

    run_anywhere(main)


def test_throw_before_the_first_await_drops_the_future_without_warning(run, runtime):
    async def main():
        before = m.dropped()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            coroutine = m.never(runtime)
            error = ValueError("early")
            with pytest.raises(ValueError) as raised:
                coroutine.throw(error)
            assert raised.value is error
            del coroutine
            gc.collect()
        assert [w for w in caught if issubclass(w.category, RuntimeWarning)] == []
        assert await wait_until(lambda: m.dropped() >= before + 1)

    run(main)


def test_close_drops_the_rust_future(run, runtime):
    async def main():
        before = m.dropped()
        coroutine = m.never(runtime)
        coroutine.send(None)  # pending on the runtime now
        coroutine.close()
        assert await wait_until(lambda: m.dropped() >= before + 1)
        coroutine.close()  # closing again is a no-op, as for Python coroutines
        with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
            coroutine.send(None)
        assert m.dropped() == before + 1

    run(main)


def test_awaiting_twice_raises_runtime_error(run_anywhere, runtime):
    async def main():
        for coroutine in (m.ready(runtime, 1), m.sleep(runtime, 0.001, 1)):
            assert await coroutine == 1
            with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
                await coroutine

    run_anywhere(main)


def test_a_never_awaited_coroutine_warns_with_the_function_name(run_anywhere, runtime):
    async def main():
        with pytest.warns(RuntimeWarning, match="coroutine 'sleep' was never awaited"):
            coroutine = m.sleep(runtime, 0.001, 1)
            del coroutine
            gc.collect()
        with pytest.warns(RuntimeWarning, match="coroutine 'ready' was never awaited"):
            m.ready(runtime, 1)
            gc.collect()

    run_anywhere(main)


def test_a_coroutine_closed_before_being_awaited_does_not_warn(run_anywhere, runtime):
    async def main():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            coroutine = m.sleep(runtime, 0.001, 1)
            coroutine.close()
            del coroutine
            gc.collect()
        assert [str(w.message) for w in caught] == []

    run_anywhere(main)


def test_a_pending_coroutine_outside_a_loop_raises_runtime_error_saying_what_to_do(runtime):
    before = m.dropped()
    coroutine = m.never(runtime)
    with pytest.raises(RuntimeError, match="no running event loop: await this coroutine from asyncio"):
        coroutine.send(None)
    assert m.dropped() == before + 1  # dropped at once, on this thread


def test_it_binds_to_the_loop_where_first_awaited(loop_kind, runtime):
    async def make():
        return m.current_loop(runtime)  # created inside this loop, not awaited here

    async def await_it(coroutine):
        return await coroutine, asyncio.get_running_loop()

    coroutine = run_on(loop_kind, make)
    seen, second_loop = run_on(loop_kind, await_it, coroutine)
    assert seen is second_loop
