"""Fixtures: every test runs on asyncio's default loop and on uvloop (`loop_kind`), and on
tokio, async-std and smol (`runtime`).

Build the extension module first (from this directory):

    VIRTUAL_ENV=../target/venv CARGO_TARGET_DIR=../target ../target/venv/bin/maturin develop --release

`cargo xtask test` does that and then runs this suite.
"""

from __future__ import annotations

import os
import resource

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


def pytest_configure(config):
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    ceiling = int(MEMORY_CEILING_GIB * (1 << 30))
    if hard == resource.RLIM_INFINITY or hard > ceiling:
        resource.setrlimit(resource.RLIMIT_AS, (ceiling, hard))
