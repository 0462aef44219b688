"""Python awaiting Rust futures that run on minipool, and Rust futures on minipool awaiting
Python: results and errors, on asyncio's default loop and uvloop."""

from __future__ import annotations

import asyncio

import pytest

from custom_executor_example import RustPanic
from harness import double_later, raise_later, run_directly


def test_sleep_returns_its_result(run, executor):
    assert run(lambda: executor.sleep(0.01, "done")) == "done"


def test_a_coroutine_runs_without_a_wrapper(loop_kind, executor):
    assert run_directly(loop_kind, executor.sleep(0.001, 5)) == 5


def test_the_computation_runs_on_a_worker(run, executor):
    async def main():
        return await executor.sum_of_squares(1000), await executor.thread_name()

    total, thread = run(main)
    assert total == sum(i * i for i in range(1000))
    assert thread.startswith("minipool-worker-")


def test_gathered_sleeps_all_return(run, executor):
    async def main():
        return await asyncio.gather(*(executor.sleep(0.01, i) for i in range(100)))

    assert run(main) == list(range(100))


def test_rust_awaits_a_python_coroutine(run, executor):
    assert run(lambda: executor.await_python(double_later(21), delay=0.01)) == 42


def test_a_rust_error_is_raised(run, executor):
    with pytest.raises(ValueError, match="^bad input$"):
        run(lambda: executor.fail("bad input"))


def test_a_panic_raises_rust_panic(run, executor):
    with pytest.raises(RustPanic, match="^on purpose$"):
        run(lambda: executor.panic("on purpose"))


def test_a_python_exception_crosses_rust_unchanged(run, executor):
    error = KeyError("raised in Python")
    with pytest.raises(KeyError) as raised:
        run(lambda: executor.await_python(raise_later(error), delay=0.001))
    assert raised.value is error


def test_a_bad_duration_is_refused(executor):
    with pytest.raises(ValueError, match="expected a finite, non-negative number of seconds"):
        executor.sleep(-1)
