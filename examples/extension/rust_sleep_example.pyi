"""Type stubs for `rust_sleep_example` (maturin ships this file with the module)."""

from typing import Any, Awaitable, Coroutine, NoReturn, TypeVar

_T = TypeVar("_T")

class RustPanic(Exception):
    """A Rust future panicked; the message is the panic's message."""

def rust_sleep(seconds: float = 1.0) -> Coroutine[Any, Any, None]:
    """Sleeps for `seconds` on tokio."""

def rust_sleep_async_std(seconds: float = 1.0) -> Coroutine[Any, Any, None]:
    """Sleeps for `seconds` on async-std."""

def rust_sleep_smol(seconds: float = 1.0) -> Coroutine[Any, Any, None]:
    """Sleeps for `seconds` on smol."""

def call_python_later(coro: Awaitable[_T], delay: float = 0.0) -> Coroutine[Any, Any, _T]:
    """Sleeps for `delay` seconds on tokio, then awaits `coro` from Rust and returns its result."""

def rust_panic(message: str, seconds: float = 0.0) -> Coroutine[Any, Any, NoReturn]:
    """Panics with `message` after `seconds` on tokio: the awaiter sees `RustPanic`."""
