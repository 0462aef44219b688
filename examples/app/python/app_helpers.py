"""The Python side of the application examples: coroutines the Rust programs await.

The programs put this directory on ``sys.path`` when they start
(``pyo3_aio_app_example::import_helpers``), the way an application ships its own Python
modules next to its binary.
"""

import asyncio


async def py_sleep(seconds):
    """pyo3-asyncio's README example coroutine: sleep, then say so."""
    await asyncio.sleep(seconds)
    return f"slept {seconds}s in Python"


async def add_later(a, b):
    """Return ``a + b`` after yielding to the loop once, so the result crosses a wake-up."""
    await asyncio.sleep(0.01)
    return a + b


async def running_loop_type():
    """The qualified name of the type of the loop this coroutine runs on."""
    running = type(asyncio.get_running_loop())
    return f"{running.__module__}.{running.__qualname__}"


async def fail(message):
    """Raise ``ValueError(message)`` from inside a coroutine (for the exit-status checks)."""
    await asyncio.sleep(0)
    raise ValueError(message)


async def trio_sleep(seconds):
    """``py_sleep`` for the trio program: sleeps in trio, and says which library runs it."""
    import sniffio
    import trio

    await trio.sleep(seconds)
    return f"slept {seconds}s in {sniffio.current_async_library()}"
