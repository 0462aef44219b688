# Type stubs for `pyo3_aio`, the module every extension built with pyo3-aio shares in one
# process (it appears in sys.modules once such an extension is imported). Put this file
# next to your extension's own stubs (or in a `pyo3_aio-stubs` package) for type checkers.

import concurrent.futures
from collections.abc import AsyncIterator, Coroutine, Generator
from typing import Any, TypeVar

_T = TypeVar("_T")

class RustPanic(Exception):
    """A Rust future or stream panicked. `args[0]` is the panic's message."""

    location: str
    """Where the panic happened, as "file:line:column" (absent when unknown)."""

class RustCoroutine(Coroutine[Any, None, _T]):
    """The coroutine a pyo3-aio extension returns for a Rust future (any extension's)."""

class RustStream(AsyncIterator[_T]):
    """The async iterator a pyo3-aio extension returns for a Rust stream."""

class RustTask(concurrent.futures.Future[_T]):
    """A Rust future running in the background (`spawn_task`): a concurrent.futures.Future
    that can also be awaited on any asyncio loop; cancel() drops the Rust future."""

    def __await__(self) -> Generator[Any, None, _T]: ...
