"""Every extension built with pyo3-aio in one process shares the `pyo3_aio` module: one
`RustPanic` class that catches the panics of all of them, and abstract `RustCoroutine` /
`RustStream` classes every extension's objects are instances of. Two extensions are in the
venv: this suite's module and the custom-executor example."""

from __future__ import annotations

import asyncio
import inspect
import io
import sys

import pytest

import custom_executor_example as other
import pyo3_aio_tests as m


def test_one_rust_panic_class_for_every_extension():
    import pyo3_aio

    assert sys.modules["pyo3_aio"] is pyo3_aio
    assert m.RustPanic is pyo3_aio.RustPanic
    assert other.RustPanic is pyo3_aio.RustPanic
    assert issubclass(pyo3_aio.RustPanic, Exception)
    assert pyo3_aio.RustPanic.__module__ == "pyo3_aio"


def test_a_panic_of_one_extension_is_caught_by_the_other_s_class(runtime):
    async def main():
        try:
            await m.panic_after(runtime, 0.001, "from the test module")
        except other.RustPanic as panic:
            return panic.args

    assert asyncio.run(main()) == ("from the test module",)


def test_coroutines_and_streams_of_every_extension_are_instances_of_the_shared_classes(runtime):
    import pyo3_aio

    coroutine = m.sleep(runtime, 0, 1)
    stream = m.count_stream(runtime, 1)
    executor = other.Executor(1)
    try:
        their_coroutine = executor.sleep(0)
        assert isinstance(coroutine, pyo3_aio.RustCoroutine)
        assert isinstance(their_coroutine, pyo3_aio.RustCoroutine)
        assert isinstance(stream, pyo3_aio.RustStream)
        assert not isinstance(stream, pyo3_aio.RustCoroutine)
        assert asyncio.run(coroutine) == 1
        their_coroutine.close()
    finally:
        executor.shutdown()


def test_inspect_states_match_a_native_coroutine(runtime):
    """inspect.getcoroutinestate walks the same states as for an `async def` coroutine."""

    async def native():
        await asyncio.sleep(0.01)

    def states(make):
        seen = []

        async def main():
            coroutine = make()
            seen.append(inspect.getcoroutinestate(coroutine))
            task = asyncio.ensure_future(coroutine)
            await asyncio.sleep(0)
            seen.append(inspect.getcoroutinestate(coroutine))
            await task
            seen.append(inspect.getcoroutinestate(coroutine))
            task = asyncio.ensure_future(make())
            await asyncio.sleep(0)
            seen.append(len(task.get_stack()))
            with io.StringIO() as printed:
                task.print_stack(file=printed)
                seen.append(printed.getvalue().count("\n") > 0)
            await task

        asyncio.run(main())
        return seen

    assert states(lambda: m.sleep(runtime, 0.01, None)) == states(native)
    coroutine = m.sleep(runtime, 0, None)
    frame = coroutine.cr_frame
    coroutine.close()
    assert frame.f_code.co_name == "sleep" and frame.f_back is None
    assert coroutine.cr_frame is None
