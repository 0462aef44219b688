"""`into_future`: Rust awaits Python awaitables, from the loop thread, from the runtime's
threads, from tasks it spawned and from plain threads; errors cross unchanged; bad input
gets a TypeError naming the type; contextvars behave as for a Python task."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

import pyo3_aio_tests as m
from harness import loop_factory, run_on, traceback_names, wait_until

request_id = contextvars.ContextVar("request_id")


async def double_later(x):
    await asyncio.sleep(0.001)
    return x * 2


class AppError(Exception):
    pass


async def fails_later(error):
    await asyncio.sleep(0.001)
    raise error


def test_python_rust_python_round_trip(run, runtime):
    async def main():
        assert await m.await_py(runtime, double_later(21)) == 42
        assert await m.await_py_after(runtime, 0.001, lambda: double_later(4)) == 8
        assert await m.await_py_after(runtime, 0, lambda: double_later(5)) == 10

    run(main)


def test_nested_round_trips(run_anywhere, runtime):
    async def level(depth):
        # Each level awaits a Rust timer, then lets Rust await the next level down.
        await m.sleep(runtime, 0.0005, None)
        if depth == 0:
            return ["bottom"]
        return [depth] + await m.await_py(runtime, level(depth - 1))

    async def main():
        return await level(8)

    assert run_anywhere(main) == [8, 7, 6, 5, 4, 3, 2, 1, "bottom"]


def test_many_awaits_in_a_row_from_rust(run_anywhere, runtime):
    async def main():
        counter = iter(range(200))

        async def next_value():
            return next(counter)

        assert await m.await_many(runtime, next_value, 200) == list(range(200))

    run_anywhere(main)


@pytest.mark.parametrize("where", ["loop_thread", "runtime_thread", "spawned_task", "plain_thread"])
def test_a_python_exception_arrives_as_the_same_object(run, runtime, where):
    error = AppError("from the python side")

    async def main():
        if where == "loop_thread":
            awaiting = m.await_py(runtime, fails_later(error))
        elif where == "runtime_thread":
            awaiting = m.await_py_after(runtime, 0.001, lambda: fails_later(error))
        elif where == "spawned_task":
            awaiting = m.await_py_from_task(runtime, fails_later(error))
        else:
            awaiting = m.await_py_from_thread(runtime, fails_later(error))
        with pytest.raises(AppError) as raised:
            await awaiting
        return raised.value

    got = run(main)
    assert got is error
    assert "fails_later" in traceback_names(got)


class Widget:
    pass


def not_a_coroutine():
    yield 1


@pytest.mark.parametrize(
    "value, type_name",
    [(5, "int"), ("text", "str"), (object(), "object"), (Widget(), "Widget"),
     (not_a_coroutine(), "generator"), (double_later, "function")],
)
def test_a_non_awaitable_raises_type_error_naming_the_type(run_anywhere, value, type_name):
    async def main():
        with pytest.raises(TypeError, match=f"^expected an awaitable, got '{type_name}'$"):
            m.into_future_now(value)
        with pytest.raises(TypeError, match=f"got '{type_name}'"):
            m.await_py("tokio", value)

    run_anywhere(main)


def test_into_future_outside_any_loop_runs_on_a_background_loop(runtime):
    """No loop runs anywhere (and no scope): the awaitable runs on a background loop, a
    loop of pyo3-aio's on a thread of its own, instead of failing."""

    async def thread_name():
        await asyncio.sleep(0)
        return threading.current_thread().name

    name = m.block(runtime, "await-inline", thread_name())
    assert name.startswith("pyo3-aio-background-loop")


@pytest.mark.parametrize("where", ["spawned_task", "plain_thread"])
def test_into_future_without_scope_works_off_the_loop_with_exactly_one_loop(run, runtime, where):
    """The first conversion on a fresh loop: the Rust side calls into_future from a task
    it spawned (or a plain thread) with no scope and no task locals."""

    async def main():
        if where == "spawned_task":
            first = await m.await_py_from_task(runtime, double_later(5))
        else:
            first = await m.await_py_from_thread(runtime, double_later(5))
        results = await asyncio.gather(
            *[m.await_py_from_task(runtime, double_later(i)) for i in range(20)],
            *[m.await_py_from_thread(runtime, double_later(i)) for i in range(5)],
        )
        return first, results

    first, results = run(main)
    assert first == 10
    assert results == [i * 2 for i in range(20)] + [i * 2 for i in range(5)]


def test_the_original_tokio_spawned_helper_works(run):
    async def main():
        return await m.await_py_from_spawned(double_later(6))

    assert run(main) == 12


def test_with_several_running_loops_the_error_names_scope_and_scope_works(run, runtime, loop_kind):
    other_ready = threading.Event()
    holder = {}

    def other_thread():
        async def hold():
            holder["loop"] = asyncio.get_running_loop()
            holder["stop"] = asyncio.Event()
            await m.sleep(runtime, 0.001, None)  # this loop now hosts a conversion
            other_ready.set()
            await holder["stop"].wait()

        loop = loop_factory(loop_kind)()
        try:
            loop.run_until_complete(hold())
        finally:
            loop.close()

    thread = threading.Thread(target=other_thread)
    thread.start()

    async def main():
        await m.sleep(runtime, 0.001, None)  # this loop hosts a conversion too
        assert await wait_until(other_ready.is_set)
        coroutine = double_later(1)
        with pytest.raises(RuntimeError, match="2 event loops are running.*scope"):
            await m.await_py_from_task(runtime, coroutine)
        coroutine.close()
        request_id.set("scoped")

        async def read_request_id():
            await asyncio.sleep(0.001)
            return request_id.get(None), asyncio.get_running_loop()

        value, loop = await m.await_py_in_scope(runtime, read_request_id())
        assert value == "scoped"
        assert loop is asyncio.get_running_loop()

    try:
        run(main)
    finally:
        other_ready.wait(10)
        if "loop" in holder:
            holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(10)
    assert not thread.is_alive()


def test_an_asyncio_future_and_a_task_are_accepted(run, runtime):
    async def main():
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        loop.call_soon(future.set_result, "future")
        assert await m.await_py(runtime, future) == "future"
        later = loop.create_future()
        loop.call_later(0.001, later.set_result, "later")
        assert await m.await_py_after(runtime, 0.0005, lambda: later) == "later"
        task = asyncio.ensure_future(double_later(3))
        assert await m.await_py(runtime, task) == 6

    run(main)


class CustomAwaitable:
    """An awaitable that is neither a coroutine nor a future: only `__await__`."""

    def __init__(self, value):
        self.value = value

    def __await__(self):
        yield from asyncio.sleep(0.001).__await__()
        return self.value


def test_an_object_with_a_custom_await_is_accepted(run, runtime):
    async def main():
        assert await m.await_py(runtime, CustomAwaitable("custom")) == "custom"
        assert await m.await_py_after(runtime, 0.001, lambda: CustomAwaitable("later")) == "later"

    run(main)


def test_a_rust_coroutine_is_accepted(run_anywhere, runtime):
    async def main():
        assert await m.await_py(runtime, m.sleep(runtime, 0.001, "rust in rust")) == "rust in rust"
        assert await m.await_py(runtime, m.ready(runtime, "ready")) == "ready"

    run_anywhere(main)


@pytest.mark.parametrize("where", ["loop_thread", "runtime_thread", "inline_first_poll"])
def test_a_python_coroutine_awaited_from_rust_runs_in_the_awaiting_tasks_context(run, runtime, where):
    async def read_and_set():
        await asyncio.sleep(0.001)
        seen = request_id.get(None)
        request_id.set("changed inside")  # must not leak back to the awaiting task
        return seen

    async def one_task(i):
        request_id.set(f"request {i}")
        if where == "loop_thread":
            seen = await m.await_py(runtime, read_and_set())
        elif where == "runtime_thread":
            seen = await m.await_py_after(runtime, 0.001, read_and_set)
        else:
            seen = await m.await_py_after(runtime, 0, read_and_set)
        return seen, request_id.get()

    async def main():
        return await asyncio.gather(*[one_task(i) for i in range(20)])

    assert run(main) == [(f"request {i}", f"request {i}") for i in range(20)]


@pytest.mark.parametrize("before", ["asyncio", "uvloop", "trio"])
def test_a_new_loop_on_the_thread_is_registered_after_ready_awaits_on_an_earlier_run(
    loop_kind, runtime, before
):
    """Ready awaits skip registering the running loop while this thread's state shows no loop
    started or stopped since the last check. Ready awaits under an earlier run on the same
    thread (another loop, or trio with none) must not hide the next loop: into_future from
    a task spawned by a later conversion (no scope) finds the loop now running."""

    async def ready_awaits():
        for i in range(3):
            assert await m.ready(runtime, i) == i

    if before == "trio":
        import trio

        trio.run(ready_awaits)
    else:
        run_on(before, ready_awaits)

    async def main():
        here = asyncio.get_running_loop()

        async def on_which_loop():
            return asyncio.get_running_loop() is here

        await ready_awaits()
        coroutine = on_which_loop()
        try:
            return await m.await_py_from_task_slow_first_poll(runtime, 0.02, coroutine)
        finally:
            coroutine.close()  # in case into_future never took it

    assert run_on(loop_kind, main) is True


def test_into_future_from_a_task_spawned_while_the_first_poll_releases_the_gil(run, runtime):
    """The first conversion on a fresh loop spawns a task that calls into_future (no scope)
    while the inline first poll is still running with the GIL released: exactly one loop
    is running, so into_future must find it."""

    async def main():
        coroutine = double_later(7)
        try:
            return await m.await_py_from_task_slow_first_poll(runtime, 0.02, coroutine)
        finally:
            coroutine.close()  # in case into_future never took it

    assert run(main) == 14


class RecordingTask(asyncio.Task):
    """A Task whose `result` and `add_done_callback` note that they were called."""

    calls: list[tuple[str, str]] = []

    def result(self):
        RecordingTask.calls.append((self.get_coro().__name__, "result"))
        return super().result()

    def add_done_callback(self, fn, *, context=None):
        RecordingTask.calls.append((self.get_coro().__name__, "add_done_callback"))
        return super().add_done_callback(fn, context=context)


def test_a_task_subclass_s_own_methods_are_called(run, runtime):
    """The task's methods are called as methods of the task: a factory's Task subclass gets
    the calls to its overrides."""

    async def suspends():
        await asyncio.sleep(0)
        return "value"

    async def main():
        asyncio.get_running_loop().set_task_factory(
            lambda loop, coro, **kwargs: RecordingTask(coro, loop=loop, **kwargs)
        )
        RecordingTask.calls.clear()
        value = await m.await_py(runtime, suspends())
        return value, [call for coro, call in RecordingTask.calls if coro == "suspends"]

    assert run(main) == ("value", ["add_done_callback", "result"])


def test_a_task_with_attributes_of_its_own_still_resolves(run, runtime):
    """A coroutine that gives its own task an attribute (so the task has a `__dict__`)
    delivers its result and its exception as any other."""

    async def tags_its_task(fail):
        asyncio.current_task().tag = "mine"
        await asyncio.sleep(0)
        if fail:
            raise AppError("failed")
        return asyncio.current_task().tag

    async def main():
        value = await m.await_py(runtime, tags_its_task(False))
        with pytest.raises(AppError, match="failed"):
            await m.await_py(runtime, tags_its_task(True))
        return value

    assert run(main) == "mine"


def test_a_done_callback_held_elsewhere_is_not_reused(run, runtime):
    """The done-callback of a finished round trip, still referenced by Python code, stays
    that trip's: calling it again later does nothing, and later round trips get their own
    results."""

    async def main():
        held = []

        async def first():
            # After a suspension: on 3.12+ the task starts eagerly, before the bridge adds
            # its done-callback.
            await asyncio.sleep(0)
            task = asyncio.current_task()
            held.extend((callback, task) for callback, _ in task._callbacks)
            return "first"

        async def later(value):
            await asyncio.sleep(0)
            for callback, task in held:
                assert callback(task) is None
            return value

        results = [await m.await_py(runtime, first())]
        assert held, "the task had a done-callback"
        for value in ("second", "third", "fourth"):
            results.append(await m.await_py(runtime, later(value)))
        return results

    assert run(main) == ["first", "second", "third", "fourth"]
