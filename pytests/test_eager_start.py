"""Eager start of the coroutines Rust awaits on the loop thread (`into_future`), compared
with what Python itself does for the same job.

On Python 3.12+ with no task factory set, `into_future` on the loop thread starts the
coroutine as `asyncio.Task(coro, eager_start=True)` would; with a task factory set (or on a
loop class with a `create_task` of its own) it goes through `loop.create_task`, so the
factory decides; before 3.12 it is `create_task`. Each test runs one scenario twice on a
fresh loop, once awaiting the coroutine natively the way Python would (`await
asyncio.Task(coro, eager_start=True)` or `await loop.create_task(coro)`) and once through
Rust (`into_future` called by a pyfunction, or inside the Rust future's first poll), and
requires the same observations: `current_task()`, contextvars, exceptions, cancellation,
and the order of the coroutine's side effects relative to the caller and to callbacks.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys

import pytest

import pyo3_aio_tests as m
from harness import (
    UVLOOP_EAGER_FACTORY_BUG,
    eager_task_factory_failure,
    skip_if_uvloop_breaks_eager_task_factory,
)

EAGER = sys.version_info >= (3, 12)

var = contextvars.ContextVar("var", default="unset")


class AppError(Exception):
    pass


def native_await(coro):
    """What `into_future` on the loop thread amounts to, written in Python."""
    loop = asyncio.get_running_loop()
    if EAGER and loop.get_task_factory() is None:
        return asyncio.Task(coro, loop=loop, eager_start=True)
    return loop.create_task(coro)


AWAITERS = {
    "native": lambda runtime: native_await,
    # into_future called by the pyfunction itself, before the Rust future exists
    "bridge_call": lambda runtime: lambda coro: m.await_py(runtime, coro),
    # into_future called inside the Rust future's first poll
    "bridge_poll": lambda runtime: lambda coro: m.await_py_after(runtime, 0, lambda: coro),
}


def same_everywhere(run, runtime, scenario, setup=None):
    """Runs `scenario(awaiter)` natively and through both bridge paths, each on a fresh loop
    (after `setup(loop)`), and checks the observations agree; returns them."""
    seen = {}
    for name, make in AWAITERS.items():

        async def main():
            if setup is not None:
                setup(asyncio.get_running_loop())
            return await scenario(make(runtime))

        seen[name] = run(main)
    assert seen["bridge_call"] == seen["native"], seen
    assert seen["bridge_poll"] == seen["native"], seen
    return seen["native"]


def counting_factory(calls):
    def factory(loop, coro, **kwargs):
        calls.append(getattr(coro, "__name__", "?"))
        return asyncio.Task(coro, loop=loop, **kwargs)

    return factory


FACTORIES = {
    "no_factory": lambda calls: None,
    "user_factory": counting_factory,
}
if EAGER:
    FACTORIES["eager_task_factory"] = lambda calls: asyncio.eager_task_factory


@pytest.fixture(params=list(FACTORIES))
def factory(request, loop_kind):
    """A task factory installed on the loop before the scenario (or none), and the names of
    the coroutines a counting factory was called for."""
    if request.param == "eager_task_factory":
        skip_if_uvloop_breaks_eager_task_factory(loop_kind)
    calls = []
    made = FACTORIES[request.param](calls)

    def setup(loop):
        calls.clear()
        if made is not None:
            loop.set_task_factory(made)

    return setup, calls, request.param


@pytest.mark.skipif(not EAGER, reason="asyncio.eager_task_factory is 3.12+")
def test_eager_task_factory_without_the_bridge(loop_kind):
    """What the `eager_task_factory` cases below match, on plain asyncio: a task made
    through the factory starts at once. uvloop on 3.13 cannot make one at all, a bug of its
    own; that case is an expected failure carrying the error, and only that case."""
    failure = eager_task_factory_failure(loop_kind)
    if failure is not None:
        pytest.xfail(UVLOOP_EAGER_FACTORY_BUG + failure)


async def finishes_at_once(log):
    log.append("coroutine runs")
    return "value"


async def suspends_once(log):
    log.append("coroutine starts")
    await asyncio.sleep(0)
    log.append("coroutine ends")
    return "later"


@pytest.mark.parametrize("body", [finishes_at_once, suspends_once], ids=["at_once", "suspends"])
def test_side_effects_keep_their_order(run, runtime, factory, body):
    setup, calls, kind = factory

    async def scenario(awaiter):
        log = []
        loop = asyncio.get_running_loop()
        loop.call_soon(log.append, "callback scheduled before")
        log.append("caller before")
        result = await awaiter(body(log))
        log.append(f"caller after: {result}")
        await asyncio.sleep(0)
        return log

    log = same_everywhere(run, runtime, scenario, setup)
    eager = EAGER and kind != "user_factory"
    assert (log.index("callback scheduled before") > 1) == eager, log
    if kind == "user_factory":
        # The factory made every task: the bridge went through it as create_task does.
        # (asyncio.run's own shutdown tasks come after.)
        assert calls.count(body.__name__) == 1, calls


def test_current_task_is_the_coroutine_own(run, runtime, factory):
    setup, _, _ = factory

    async def scenario(awaiter):
        outer = asyncio.current_task()

        async def body():
            inner = asyncio.current_task()
            return inner is not None, inner is not outer, inner.get_coro().__name__

        seen = await awaiter(body())
        return seen, asyncio.current_task() is outer

    assert same_everywhere(run, runtime, scenario, setup) == ((True, True, "body"), True)


def test_the_coroutine_runs_in_a_copy_of_the_callers_context(run, runtime, factory):
    setup, _, _ = factory

    async def scenario(awaiter):
        var.set("caller")

        async def body():
            seen = var.get()
            var.set("coroutine")
            return seen, var.get()

        inside = await awaiter(body())
        return inside, var.get()

    assert same_everywhere(run, runtime, scenario, setup) == (("caller", "coroutine"), "caller")


def test_the_task_is_the_one_create_task_builds(run, runtime, factory):
    """The coroutine's task has the class and the kind of name `create_task` gives, and in
    debug mode a creation traceback that ends where it does (asyncio's own `create_task`
    drops its frame from it)."""
    setup, _, name = factory

    def debug_setup(loop):
        loop.set_debug(True)
        setup(loop)

    async def scenario(awaiter):
        async def body():
            task = asyncio.current_task()
            last = task._source_traceback[-1]
            in_asyncio = "asyncio" in last.filename.replace("\\", "/").split("/")
            return type(task).__name__, task.get_name().startswith("Task-"), in_asyncio

        return await awaiter(body())

    seen = same_everywhere(run, runtime, scenario, debug_setup)
    if name == "no_factory":
        assert seen == ("Task", True, False)
    elif name == "user_factory":
        # The name is whatever Python's own `create_task` gives (the bridge's was compared
        # with it above): CPython 3.13.0 names a factory's task "None".
        assert (seen[0], seen[2]) == ("Task", False)


@pytest.mark.parametrize("suspends", [False, True], ids=["at_once", "suspends"])
def test_an_exception_arrives_as_the_same_object(run, runtime, factory, suspends):
    setup, _, _ = factory

    async def scenario(awaiter):
        raised = AppError("boom")

        async def body():
            if suspends:
                await asyncio.sleep(0)
            raise raised

        try:
            await awaiter(body())
        except AppError as error:
            return error is raised, str(error), error.__traceback__ is not None
        return "no error"

    assert same_everywhere(run, runtime, scenario, setup) == (True, "boom", True)


def test_a_coroutine_cancelling_itself_at_once_cancels_the_caller(run, runtime, factory):
    setup, _, _ = factory

    async def scenario(awaiter):
        async def body():
            raise asyncio.CancelledError("inner")

        try:
            await awaiter(body())
        except asyncio.CancelledError as error:
            return "cancelled", error.args
        return "not cancelled"

    outcome = same_everywhere(run, runtime, scenario, setup)
    assert outcome[0] == "cancelled", outcome


def test_cancelling_the_caller_cancels_the_coroutine(run, runtime, factory):
    setup, _, _ = factory

    async def scenario(awaiter):
        log = []
        started = asyncio.Event()

        async def body():
            log.append("started")
            started.set()
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                log.append("coroutine cancelled")
                raise

        async def caller():
            try:
                await awaiter(body())
            except asyncio.CancelledError:
                log.append("caller cancelled")
                raise

        task = asyncio.ensure_future(caller())
        await started.wait()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            log.append("task cancelled")
        for _ in range(5):
            await asyncio.sleep(0)
        return sorted(log)

    assert same_everywhere(run, runtime, scenario, setup) == [
        "caller cancelled",
        "coroutine cancelled",
        "started",
        "task cancelled",
    ]


def test_a_loop_class_with_its_own_create_task_is_asked(runtime):
    """A loop subclass overriding `create_task` gets the call (no eager shortcut past it)."""
    calls = []

    class Loop(asyncio.SelectorEventLoop):
        def create_task(self, coro, **kwargs):
            calls.append(coro.__name__)
            return super().create_task(coro, **kwargs)

    async def body():
        return 7

    async def main():
        return await m.await_py(runtime, body())

    loop = Loop()
    try:
        assert loop.run_until_complete(main()) == 7
    finally:
        loop.close()
    assert calls.count("body") == 1, calls


@pytest.mark.skipif(not EAGER, reason="eager start is Python 3.12+")
def test_a_coroutine_that_finishes_at_once_is_done_before_into_future_returns(run, runtime):
    async def main():
        log = []
        awaitable = m.await_py(runtime, finishes_at_once(log))
        # The coroutine ran inside the call, as an eager task's first step does.
        assert log == ["coroutine runs"]
        return await awaitable

    assert run(main) == "value"
