"""Errors and panics through four nested levels: Python awaits Rust awaits Python awaits
Rust (the Rust levels awaiting Python through into_future on the loop thread, or from the
runtime's thread). An error at the bottom (a Python exception, a PyErr made in Rust, a
Rust panic) reaches the top as the same object with the right type, and the traceback
keeps the frames of the Python levels. The Python levels are plain coroutines, so each
scenario runs on asyncio's loops and under trio (`run_anywhere`)."""

from __future__ import annotations

import traceback

import pytest

import pyo3_aio_tests as m
from harness import report, stress_size


class AppError(Exception):
    pass


def raise_app_error(message):
    raise AppError(message)


BOTTOMS = ("python_exception", "rust_pyerr", "rust_panic")


def bottom_awaitable(runtime, bottom, seconds, made):
    """The Rust future at level 4."""
    if bottom == "python_exception":
        try:
            raise_app_error("from the bottom")
        except AppError as error:
            made.append(error)
            return m.raise_after(runtime, max(seconds, 0.0001), error)
    if bottom == "rust_pyerr":
        return m.fail_after(runtime, seconds, "made in rust at the bottom")
    return m.panic_after(runtime, seconds, "panicked at the bottom")


@pytest.mark.parametrize("bottom", BOTTOMS)
@pytest.mark.parametrize("where", ["loop_thread", "runtime_thread"])
@pytest.mark.parametrize("seconds", [0, 0.0005], ids=["inline", "after_sleep"])
def test_an_error_at_the_bottom_of_four_levels_reaches_the_top(run_anywhere, runtime, bottom, where, seconds):
    made, seen_at_level_3 = [], []

    async def level_3():  # Python, awaited by Rust
        try:
            return await bottom_awaitable(runtime, bottom, seconds, made)
        except BaseException as error:
            seen_at_level_3.append(error)
            raise

    async def level_1():  # Python, the top
        if where == "loop_thread":
            return await m.await_py(runtime, level_3())  # level 2: Rust
        return await m.await_py_after(runtime, 0.0005, level_3)

    async def main():
        expected = {"python_exception": AppError, "rust_pyerr": ValueError, "rust_panic": m.RustPanic}
        with pytest.raises(expected[bottom]) as raised:
            await level_1()
        return raised.value

    error = run_anywhere(main)
    assert len(seen_at_level_3) == 1
    assert error is seen_at_level_3[0]  # the same object at every Python level
    if bottom == "python_exception":
        assert error is made[0]
    else:
        message = "made in rust at the bottom" if bottom == "rust_pyerr" else "panicked at the bottom"
        assert str(error) == message
    names = [frame.name for frame in traceback.extract_tb(error.__traceback__)]
    assert "level_1" in names and "level_3" in names, names
    assert names.index("level_1") < names.index("level_3"), names
    if bottom == "python_exception":
        assert names[-1] == "raise_app_error", names


def test_many_nested_errors_in_a_row_keep_their_identity(run_anywhere, runtime, request):
    count = stress_size(200, 10_000)

    async def level_3(error):
        await m.raise_after(runtime, 0.0001, error)

    async def main():
        for i in range(count):
            error = AppError(i)
            try:
                await m.await_py(runtime, level_3(error))
            except AppError as got:
                assert got is error
            else:
                raise AssertionError("no error")

    run_anywhere(main)
    loop = request.node.callspec.params["run_anywhere"]
    report("test_many_nested_errors_in_a_row_keep_their_identity", runtime=runtime, loop=loop, errors=count)
