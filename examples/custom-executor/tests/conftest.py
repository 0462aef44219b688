"""Fixtures: every test runs on asyncio's default loop and on uvloop (`loop_kind`), with a
fresh minipool executor (`executor`) that is shut down afterwards.

Build the extension module first (from examples/custom-executor/module):

    VIRTUAL_ENV=../../../target/venv CARGO_TARGET_DIR=../../../target \
        ../../../target/venv/bin/maturin develop --release

`cargo xtask test` does that and then runs this suite.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, List

import pytest

from custom_executor_example import Executor
from harness import LOOP_KINDS, run_directly


@pytest.fixture(params=LOOP_KINDS)
def loop_kind(request) -> str:
    """The event loop kind: "asyncio" (the default loop) or "uvloop"."""
    return request.param


@pytest.fixture
def run(loop_kind):
    """`run(coro_factory, *args)`: runs `coro_factory(*args)` on a new loop of `loop_kind`
    and returns its result; fails when the loop's exception handler was called."""

    def run(coro_factory: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        errors: List[dict] = []

        def collect(_loop, context):
            errors.append(context)

        async def main():
            asyncio.get_running_loop().set_exception_handler(collect)
            return await coro_factory(*args)

        result = run_directly(loop_kind, main())
        assert not errors, f"the event loop reported errors: {errors!r}"
        return result

    return run


@pytest.fixture
def executor():
    """A minipool executor with two workers, shut down when the test ends."""
    executor = Executor(workers=2)
    yield executor
    executor.shutdown()
