"""Values and errors crossing from Rust to Python: Python objects come back unchanged,
Rust values are converted on the loop thread, a PyErr arrives as the very same exception
object (traceback kept), and a panic becomes `pyo3_aio_tests.RustPanic`. The tests that
use nothing framework-specific run under trio too (`run_anywhere`)."""

from __future__ import annotations

import asyncio

import pytest

import pyo3_aio_tests as m
from harness import traceback_names, wait_until


class Widget:
    """A plain Python object: must come back as the same object."""


class AppError(Exception):
    """A user-defined exception class: its type must survive the trip."""


def raise_app_error(message):
    raise AppError(message)


def caught(function, *args):
    try:
        function(*args)
    except BaseException as error:  # noqa: BLE001 - we want the object itself
        return error
    raise AssertionError("did not raise")


@pytest.mark.parametrize("path", ["ready", "pending"])
def test_python_objects_cross_unchanged(run_anywhere, runtime, path):
    values = [None, 0, -1, 2**100, 1.5, float("inf"), "text", "ünïcödé", b"\x00\xff",
              [1, [2]], {"key": (1, 2)}, (1,), frozenset({3}), Widget(), Widget, print]

    async def main():
        for value in values:
            if path == "ready":
                got = await m.ready(runtime, value)
            else:
                got = await m.sleep(runtime, 0.0005, value)
            assert got is value

    run_anywhere(main)


@pytest.mark.parametrize("seconds", [0, 0.001], ids=["inline", "after_sleep"])
def test_rust_values_are_converted_to_python(run_anywhere, runtime, seconds):
    arguments = (-7, 2**64 - 1, 2.5, True, "ünï", b"\x00bytes", [3, 1, 2], {"a": 1, "b": -2}, None)

    async def main():
        return await m.typed_values(runtime, seconds, *arguments)

    result = run_anywhere(main)
    assert type(result) is tuple
    assert result == arguments
    assert [type(value) for value in result] == [type(value) for value in arguments]


@pytest.mark.parametrize("seconds", [0, 0.001], ids=["inline", "after_sleep"])
def test_a_python_exception_crosses_as_the_same_object_with_its_traceback(run_anywhere, runtime, seconds):
    cause = OSError("the cause")
    error = caught(raise_app_error, "from python")
    error.__cause__ = cause
    names_before = traceback_names(error)
    assert "raise_app_error" in names_before

    async def main():
        with pytest.raises(AppError) as raised:
            await m.raise_after(runtime, seconds, error)
        return raised.value

    got = run_anywhere(main)
    assert got is error
    assert got.__cause__ is cause
    names = traceback_names(got)
    # The original frames are kept; the await site is added in front, as Python does when
    # re-raising an exception object.
    assert names[-len(names_before):] == names_before
    assert "main" in names


@pytest.mark.parametrize("seconds", [0, 0.001], ids=["inline", "after_sleep"])
def test_an_error_made_in_rust_becomes_the_python_exception(run_anywhere, runtime, seconds):
    async def main():
        with pytest.raises(ValueError, match="^made in rust$"):
            await m.fail_after(runtime, seconds, "made in rust")

    run_anywhere(main)


@pytest.mark.parametrize("seconds", [0, 0.001], ids=["inline", "after_sleep"])
def test_a_panic_becomes_rust_panic_with_its_message(run_anywhere, runtime, seconds):
    async def main():
        with pytest.raises(m.RustPanic, match="kaput: the message") as raised:
            await m.panic_after(runtime, seconds, "kaput: the message")
        return raised.value

    error = run_anywhere(main)
    assert isinstance(error, Exception)
    assert m.RustPanic.__name__ == "RustPanic"


def test_a_panic_with_a_non_string_payload_becomes_rust_panic(run_anywhere, runtime):
    async def main():
        with pytest.raises(m.RustPanic, match="non-string payload"):
            await m.panic_any_after(runtime, 0.001)

    run_anywhere(main)


def test_the_runtime_keeps_working_after_panics(run, runtime):
    async def main():
        outcomes = await asyncio.gather(
            *[m.panic_after(runtime, 0.0005 * (i % 3), f"panic {i}") for i in range(20)],
            return_exceptions=True,
        )
        assert all(isinstance(outcome, m.RustPanic) for outcome in outcomes)
        assert [str(outcome) for outcome in outcomes] == [f"panic {i}" for i in range(20)]
        assert await asyncio.gather(*[m.sleep(runtime, 0.001, i) for i in range(20)]) == list(range(20))

    run(main)


def test_gather_of_1000_timers_returns_their_results_in_order(run, runtime):
    async def main():
        # Later timers are shorter, so they complete roughly in reverse order.
        return await asyncio.gather(
            *[m.sleep(runtime, 0.00002 * (999 - i), i) for i in range(1000)]
        )

    assert run(main) == list(range(1000))


def test_values_and_errors_mix_in_gather_with_return_exceptions(run, runtime):
    errors = [KeyError(i) for i in range(10)]

    async def main():
        coroutines = []
        for i in range(10):
            coroutines.append(m.sleep(runtime, 0.0005, i))
            coroutines.append(m.raise_after(runtime, 0.0005, errors[i]))
        return await asyncio.gather(*coroutines, return_exceptions=True)

    outcomes = run(main)
    assert outcomes[0::2] == list(range(10))
    assert all(got is error for got, error in zip(outcomes[1::2], errors))


def test_a_future_dropped_unfinished_by_its_runtime_raises_a_clear_error(run):
    async def main():
        before = m.dropped()
        with pytest.raises(RuntimeError, match="dropped by the drops-tasks runtime before it completed"):
            await m.dropped_by_runtime()
        assert await wait_until(lambda: m.dropped() >= before + 1)

    run(main)


def test_a_runtime_that_refuses_the_future_raises_a_clear_error(run_anywhere):
    async def main():
        with pytest.raises(RuntimeError, match="the refuses runtime could not run the future"):
            await m.refused_by_runtime()

    run_anywhere(main)


@pytest.mark.parametrize("seconds", [0, 0.001], ids=["inline", "after_sleep"])
def test_a_rust_future_returning_unit_resolves_to_none(run_anywhere, runtime, seconds):
    async def main():
        return "awaited", await m.unit_after(runtime, seconds)

    assert run_anywhere(main) == ("awaited", None)
