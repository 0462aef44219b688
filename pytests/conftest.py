"""Fixtures: every test runs on asyncio's default loop and on uvloop (`loop_kind`), and on
tokio, async-std and smol (`runtime`).

Build the extension module first (from this directory):

    VIRTUAL_ENV=../target/venv CARGO_TARGET_DIR=../target ../target/venv/bin/maturin develop --release

`cargo xtask test` does that and then runs this suite.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import threading

import pytest

import pyo3_aio_tests as m
from harness import KNOWN_BUG_PATIENCE, KNOWN_BUG_PREFIX, LOOP_KINDS, PATIENCE, run_on


@pytest.fixture(params=LOOP_KINDS)
def loop_kind(request) -> str:
    """The event loop kind: "asyncio" (the default loop) or "uvloop"."""
    return request.param


@pytest.fixture(params=m.RUNTIMES)
def runtime(request) -> str:
    """The Rust runtime the test module's futures run on: "tokio", "async-std", "smol"."""
    return request.param


@pytest.fixture
def run(loop_kind):
    """`run(coro_factory, *args)`: runs `coro_factory(*args)` on a new loop of `loop_kind`
    and returns its result; fails when the loop's exception handler was called."""

    def run(coro_factory, *args):
        return run_on(loop_kind, coro_factory, *args)

    return run


@pytest.fixture(params=LOOP_KINDS + ("trio",))
def run_anywhere(request):
    """`run_anywhere(main)`: runs the framework-neutral coroutine function `main` (it awaits
    the bridge's coroutines and nothing asyncio- or trio-specific) on a new loop of each
    kind of `loop_kind`, and under `trio.run`; returns its result."""
    if request.param == "trio":
        import trio

        return trio.run

    def run(main):
        return run_on(request.param, main)

    return run


@pytest.fixture
def patience(request) -> float:
    """How long the test's bounded waits retry: `PATIENCE`, or `KNOWN_BUG_PATIENCE` for a
    test marked with `harness.known_bug` (it waits for what the bug keeps from happening)."""
    marker = request.node.get_closest_marker("xfail")
    if marker is not None and str(marker.kwargs.get("reason", "")).startswith(KNOWN_BUG_PREFIX):
        return KNOWN_BUG_PATIENCE
    return PATIENCE


#: The address-space ceiling of the test process (GiB; PYO3_AIO_TEST_MEMORY_GIB). A test
#: whose buffer grows without bound fails with MemoryError (Python) or an allocation
#: failure abort (Rust) instead of eating the machine until the kernel kills it.
MEMORY_CEILING_GIB = float(os.environ.get("PYO3_AIO_TEST_MEMORY_GIB", "8"))


def pytest_addoption(parser):
    # pytest.ini sets faulthandler_exit_on_timeout (pytest 9+); pytest 8.4, the last release
    # for Python 3.9, does not know it, and an unknown option is a warning, hence an error
    # here (filterwarnings = error). Declared for it, it is accepted and has no effect.
    if int(pytest.__version__.split(".")[0]) < 9:
        parser.addini(
            "faulthandler_exit_on_timeout",
            "pytest 9's option (exit after faulthandler_timeout); no effect before pytest 9",
            type="bool",
            default=False,
        )


def pytest_configure(config):
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    ceiling = int(MEMORY_CEILING_GIB * (1 << 30))
    if hard == resource.RLIM_INFINITY or hard > ceiling:
        resource.setrlimit(resource.RLIMIT_AS, (ceiling, hard))


@pytest.fixture(autouse=True)
def deadline_stops_the_running_loop():
    """Makes the test's deadline stop the event loop running on the main thread, before
    pytest-timeout's own handler raises its `Failed` there.

    asyncio lets that exception out of `run_until_complete`, but uvloop runs Python signal
    handlers inside a callback of its own and hands what one raises to the loop's exception
    handler: the loop would go on, and a hung test would only end when faulthandler ends
    the whole process. Stopped, `run_until_complete` returns ("Event loop stopped before
    Future completed." for a loop of the test's own; `run_on` raises the deadline itself)."""
    deadline = signal.getsignal(signal.SIGALRM)
    if not callable(deadline) or threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop_then_fail(signum, frame):
        try:
            asyncio.get_running_loop().stop()
        except RuntimeError:  # no loop runs here
            pass
        deadline(signum, frame)

    signal.signal(signal.SIGALRM, stop_then_fail)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGALRM) is stop_then_fail:
            signal.signal(signal.SIGALRM, deadline)
