"""The extension module the pytest suite imports: every bridge feature, on every runtime.

Functions returning `Coroutine` return the object `future_into_py` (or
`local_future_into_py`) makes: a real coroutine that starts when first awaited. Functions
returning `asyncio.Future` use `future_into_py_eager` and start at once.

`runtime` is one of `RUNTIMES`: "tokio", "async-std" or "smol".
"""

import asyncio
import concurrent.futures
import contextvars
from typing import (
    Any,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Dict,
    List,
    Literal,
    Optional,
    Tuple,
    TypeVar,
)

T = TypeVar("T")
U = TypeVar("U")

Runtime = Literal["tokio", "async-std", "smol"]

RUNTIMES: Tuple[str, str, str]

DEFAULT_CAPACITY: int
"""`pyo3_aio::DEFAULT_CAPACITY`: how many items a stream's producer may run ahead by default."""

class RustPanic(Exception):
    """A Rust future panicked; the message is the panic's message (`pyo3_aio.RustPanic`)."""

# Rust futures awaited from Python ---------------------------------------------------------

def sleep(runtime: Runtime, seconds: float, value: T) -> Coroutine[Any, Any, T]:
    """Sleeps on the runtime's timer, then returns `value`."""

def ready(runtime: Runtime, value: T) -> Coroutine[Any, Any, T]:
    """Returns `value` at once (ready on the inline first poll)."""

def raise_after(runtime: Runtime, seconds: float, error: BaseException) -> Coroutine[Any, Any, None]:
    """Raises `error` (the same object) after `seconds`."""

def panic_after(runtime: Runtime, seconds: float, message: str) -> Coroutine[Any, Any, None]:
    """Panics with `message` after `seconds` (0 panics on the inline first poll)."""

def panic_any_after(runtime: Runtime, seconds: float) -> Coroutine[Any, Any, None]:
    """Panics with a non-string payload after `seconds`."""

def fail_after(runtime: Runtime, seconds: float, message: str) -> Coroutine[Any, Any, None]:
    """Fails with a ValueError(message) created in Rust without the GIL (0: inline)."""

def unit_after(runtime: Runtime, seconds: float) -> Coroutine[Any, Any, None]:
    """A Rust future returning `()` after `seconds` (0: ready on the inline first poll)."""

def typed_values(
    runtime: Runtime,
    seconds: float,
    integer: int,
    big: int,
    float: float,
    flag: bool,
    text: str,
    data: bytes,
    numbers: List[int],
    mapping: Dict[str, int],
    maybe: Optional[int],
) -> Coroutine[Any, Any, Tuple[int, int, float, bool, str, bytes, List[int], Dict[str, int], Optional[int]]]:
    """Returns its arguments after `seconds`, extracted into Rust types and converted back."""

def never(runtime: Runtime) -> Coroutine[Any, Any, None]:
    """Never completes; its drop is counted in `dropped()`."""

def sleep_counted(runtime: Runtime, seconds: float, value: T) -> Coroutine[Any, Any, T]:
    """`sleep` whose drop (after completing or when cancelled) is counted in `dropped()`."""

def dropped() -> int:
    """How many futures with a drop counter were dropped so far (a process-wide count)."""

def current_loop(runtime: Runtime) -> Coroutine[Any, Any, asyncio.AbstractEventLoop]:
    """`get_current_loop()` seen from inside the Rust future, after a short sleep."""

def current_loop_after(runtime: Runtime, seconds: float) -> Coroutine[Any, Any, asyncio.AbstractEventLoop]:
    """`get_current_loop()` after sleeping `seconds` (0: on the inline first poll)."""

def context_var_after(runtime: Runtime, seconds: float, var: contextvars.ContextVar[T]) -> Coroutine[Any, Any, Optional[T]]:
    """`var`'s value in the context of `get_current_locals()` after sleeping `seconds`."""

def where_polled(
    runtime: Runtime,
    seconds: float,
    home: Literal["auto", "runtime", "loop"] = "runtime",
    first_poll: Literal["inline", "deferred"] = "inline",
) -> Coroutine[Any, Any, Tuple[int, int]]:
    """`threading.get_ident()` of the first poll and of the poll after sleeping `seconds`,
    with the given `future_into_py_with` options."""

# Python awaitables awaited from Rust -----------------------------------------------------

def await_py(runtime: Runtime, awaitable: Awaitable[T]) -> Coroutine[Any, Any, T]:
    """Rust awaits `awaitable` (into_future called at once, on the loop thread)."""

def await_py_after(runtime: Runtime, seconds: float, factory: Callable[[], Awaitable[T]]) -> Coroutine[Any, Any, T]:
    """Sleeps `seconds`, then Rust awaits `factory()` (from the runtime's thread; 0: inline)."""

def await_many(runtime: Runtime, factory: Callable[[], Awaitable[T]], count: int) -> Coroutine[Any, Any, List[T]]:
    """Rust awaits `factory()` `count` times in a row."""

def await_py_from_spawned(awaitable: Awaitable[T]) -> Coroutine[Any, Any, T]:
    """Rust awaits `awaitable` from a task it spawned on tokio, with no scope."""

def await_py_from_task(runtime: Runtime, awaitable: Awaitable[T]) -> Coroutine[Any, Any, T]:
    """Rust awaits `awaitable` from a task it spawned on `runtime`, with no scope."""

def await_py_from_task_slow_first_poll(runtime: Runtime, pause: float, awaitable: Awaitable[T]) -> Coroutine[Any, Any, T]:
    """`await_py_from_task` whose inline first poll releases the GIL for `pause` seconds
    after spawning the task."""

def await_py_in_scope(runtime: Runtime, awaitable: Awaitable[T]) -> Coroutine[Any, Any, T]:
    """`await_py_from_task` with the task wrapped in `pyo3_aio::scope(locals, ...)`."""

def await_py_from_thread(runtime: Runtime, awaitable: Awaitable[T]) -> Coroutine[Any, Any, T]:
    """Rust awaits `awaitable` from a plain thread, with no scope."""

def await_py_on_new_thread(awaitable: Awaitable[Any], callback: Callable[[Tuple[str, Any]], object]) -> None:
    """A new thread awaits `awaitable` through `into_future_with_locals` (locals of the
    running loop) and passes `("ok", value)` or `("error", exception)` to `callback` on
    the loop (call_soon_threadsafe)."""

def await_py_with_timeout(
    runtime: Runtime, seconds: float, awaitable: Awaitable[T]
) -> Coroutine[Any, Any, Tuple[Literal["done", "timeout"], Optional[T]]]:
    """Races `awaitable` against a `seconds` timer in Rust; when the timer wins, the Rust
    future of the awaitable is dropped (which cancels the Python task)."""

def record_await_py_after(runtime: Runtime, seconds: float, factory: Callable[[], Awaitable[Any]]) -> Coroutine[Any, Any, None]:
    """`await_py_after`, recording the outcome for `recorded()` instead of returning it."""

def recorded() -> Optional[str]:
    """The last outcome recorded: "ok: <value>" or "error: <Type>: <message>"."""

def into_future_now(awaitable: Any) -> None:
    """Calls into_future synchronously and drops the result (to check its errors)."""

# !Send futures (local_future_into_py) ----------------------------------------------------

def local_sleep(seconds: float, value: T) -> Coroutine[Any, Any, T]:
    """A !Send future sleeping on tokio, then returning `value`."""

def local_sleep_on(runtime: Runtime, seconds: float, value: T) -> Coroutine[Any, Any, T]:
    """A !Send future sleeping on `runtime`'s timer, then returning `value`."""

def local_never() -> Coroutine[Any, Any, None]:
    """A !Send future that never completes; its drop is counted in `dropped()`."""

def local_raise_after(runtime: Runtime, seconds: float, error: BaseException) -> Coroutine[Any, Any, None]:
    """A !Send future raising `error` after `seconds` (0: inline)."""

def local_panic_after(runtime: Runtime, seconds: float, message: str) -> Coroutine[Any, Any, None]:
    """A !Send future panicking with `message` after `seconds` (0: inline)."""

def local_where_polled(runtime: Runtime, seconds: float) -> Coroutine[Any, Any, Tuple[int, int, asyncio.AbstractEventLoop]]:
    """Thread of the first poll, thread after sleeping, and `get_current_loop()`."""

def local_await_many(factory: Callable[[], Awaitable[T]], count: int) -> Coroutine[Any, Any, List[T]]:
    """A !Send future awaiting `factory()` `count` times in a row."""

# The eager variant (future_into_py_eager) ------------------------------------------------
# Under asyncio each returns an asyncio.Future; under trio, a coroutine awaiting the
# future that started at the call.

def eager_sleep(runtime: Runtime, seconds: float, value: T) -> "asyncio.Future[T]":
    """Starts at once; returns an asyncio.Future of `value`."""

def eager_never(runtime: Runtime) -> "asyncio.Future[None]":
    """Starts at once and never completes; its drop is counted in `dropped()`."""

def eager_raise_after(runtime: Runtime, seconds: float, error: BaseException) -> "asyncio.Future[None]":
    """Starts at once; raises `error` after `seconds`."""

def eager_panic_after(runtime: Runtime, seconds: float, message: str) -> "asyncio.Future[None]":
    """Starts at once; panics with `message` after `seconds`."""

def eager_current_loop(runtime: Runtime) -> "asyncio.Future[asyncio.AbstractEventLoop]":
    """Starts at once; `get_current_loop()` seen from inside after a short sleep."""

def eager_ready(runtime: Runtime, value: T) -> "asyncio.Future[T]":
    """Starts at once and is ready on its first poll."""

def eager_context_var_after(runtime: Runtime, seconds: float, var: contextvars.ContextVar[T]) -> "asyncio.Future[Optional[T]]":
    """Starts at once; `var` in the context of `get_current_locals()` after `seconds`."""

def eager_call_after(runtime: Runtime, seconds: float, callback: Callable[[], object]) -> "asyncio.Future[None]":
    """Starts at once; calls `callback()` when it finishes after `seconds`."""

# Spawners of the test module's own -------------------------------------------------------

def counted_ready(runtime: Runtime, value: T) -> Coroutine[Any, Any, T]:
    """`ready` through a spawner that counts spawns."""

def counted_sleep(runtime: Runtime, seconds: float, value: T) -> Coroutine[Any, Any, T]:
    """`sleep` through a spawner that counts spawns."""

def spawns() -> int:
    """How many futures the counting spawner was handed so far."""

def thread_sleep(seconds: float, value: str) -> Coroutine[Any, Any, str]:
    """Sleeps on a thread of its own that never touches Python, then returns `value`."""

def thread_never() -> Coroutine[Any, Any, None]:
    """Never completes, on a thread of its own; its drop is counted in `dropped()`."""

def driven() -> int:
    """How many `thread_sleep` / `thread_never` futures have returned from their thread,
    completion path included."""

def hold_gil_until_driven(target: int, timeout: float) -> bool:
    """Holds the GIL without ever releasing it until `driven()` reaches `target`; False
    when `timeout` seconds passed first."""

def dropped_by_runtime() -> Coroutine[Any, Any, None]:
    """A pending future whose runtime drops it unfinished; its drop is counted."""

def refused_by_runtime() -> Coroutine[Any, Any, None]:
    """A pending future whose runtime refuses to run it."""

# Rust streams iterated from Python (stream_into_py, local_stream_into_py) ----------------

class RustStream(AsyncIterator[T]):
    """`pyo3_aio.RustStream`, what `stream_into_py` and `local_stream_into_py` return (a type
    of the bridge, not an attribute of this module)."""

    def __aiter__(self) -> "RustStream[T]": ...
    def __anext__(self) -> Awaitable[T]: ...
    def aclose(self) -> Awaitable[None]:
        """Drops the Rust stream; later `__anext__` raises StopAsyncIteration."""

class StreamProbe:
    """Watches one stream made by `probed_stream`."""

    def polls(self) -> int:
        """How many times the Rust stream's `poll_next` was called so far."""
    def produced(self) -> int:
        """How many items the Rust stream has produced so far."""
    def dropped(self) -> bool:
        """Whether the Rust stream has been dropped."""

def count_stream(runtime: Runtime, n: int, capacity: Optional[int] = None) -> RustStream[int]:
    """0..n-1 produced on the runtime; `capacity` None: `stream_into_py` (the default
    capacity), otherwise `stream_into_py_with`."""

def probed_stream(
    runtime: Runtime,
    n: Optional[int] = None,
    *,
    capacity: Optional[int] = None,
    error_at: Optional[int] = None,
    error: Optional[BaseException] = None,
    panic_at: Optional[int] = None,
    stall_at: Optional[int] = None,
    delay: float = 0.0,
    local: bool = False,
    inline: bool = True,
) -> Tuple[RustStream[int], StreamProbe]:
    """0..n-1 (endless when `n` is None) and a probe watching the Rust stream. Instead of
    the number `error_at`: an `Err` item (`error`, the same object, or a ValueError made in
    Rust without the GIL); instead of `panic_at`: a panic; instead of `stall_at`: Pending
    forever (never woken). `delay`: a sleep on the runtime's timer before each number.
    `local`: `local_stream_into_py` with the stream made `!Send` (no `capacity` then)."""

def local_count_stream(n: int) -> RustStream[int]:
    """A `!Send` stream of 0..n-1 polled on the loop thread."""

def loop_stream(runtime: Runtime, n: int) -> RustStream[asyncio.AbstractEventLoop]:
    """`n` items: `get_current_loop()` as seen by the stream on the runtime."""

# Python async iterables consumed from Rust (into_stream) --------------------------------

def consume(
    runtime: Runtime,
    iterable: AsyncIterable[T],
    *,
    capacity: Optional[int] = None,
    limit: Optional[int] = None,
    after_each: Optional[Callable[[T], Awaitable[Any]]] = None,
    from_runtime: bool = False,
) -> Coroutine[Any, Any, List[Any]]:
    """Rust drains `iterable` through `into_stream` (`into_stream_with` when `capacity` is
    given) and returns its items; an exception the iterator raised is the last item, as
    the object. `limit`: drop the Rust stream after that many items. `after_each`: Rust
    awaits `after_each(item)` after each item before pulling the next. `from_runtime`:
    `into_stream` is called from the runtime's thread (otherwise at once: bad input raises
    at the call)."""

def consume_first(runtime: Runtime, iterable: AsyncIterable[T], k: int) -> Coroutine[Any, Any, List[T]]:
    """Rust takes the first `k` items, then drops the stream."""

def into_stream_now(iterable: Any, capacity: Optional[int] = None) -> None:
    """Calls `into_stream` synchronously and drops the stream at once (to check errors)."""

def where_polled_after_python(
    runtime: Runtime,
    factory: Callable[[], Awaitable[Any]],
    seconds: float,
    home: Literal["auto", "runtime", "loop"] = "auto",
    first_poll: Literal["inline", "deferred"] = "inline",
) -> Coroutine[Any, Any, Tuple[int, int, int, Any]]:
    """Awaits `factory()` through into_future, then sleeps `seconds`: `threading.get_ident()`
    of the first poll, of the poll after the Python await and of the poll after the sleep,
    and the Python result."""

def python_and_self_wake(
    runtime: Runtime,
    factory: Callable[[], Awaitable[Any]],
    home: Literal["auto", "runtime", "loop"] = "auto",
) -> Coroutine[Any, Any, Any]:
    """Waits for `factory()` and for a wake it gave itself on its first poll, at once."""
# Stress and fault helpers (src/stress.rs)

def storm_reset(n: int) -> None:
    """Starts a storm of `n` tracked futures: every drop count back to zero."""

def storm_drops() -> Tuple[int, int, int]:
    """(never dropped, dropped once, dropped more than once) over the storm's futures."""

def tracked_drops() -> int:
    """How many tracked futures were dropped since the process started."""

def storm_value(runtime: Runtime, index: int, micros: int, value: T) -> Coroutine[Any, Any, T]:
    """Tracked (slot `index`): sleeps `micros` us on the runtime (0: ready inline), returns `value`."""

def storm_await_py(
    runtime: Runtime,
    index: int,
    factory: Callable[[], Awaitable[T]],
    micros: Optional[int] = None,
    from_runtime: bool = False,
) -> Coroutine[Any, Any, Tuple[str, Optional[T]]]:
    """Tracked: Rust awaits `factory()` raced against a `micros` timer; ("done", v) or ("dropped", None)."""

def hop(runtime: Runtime, value: T) -> Coroutine[Any, Any, T]:
    """Returns `value` after one suspension (completes from a runtime worker)."""

def await_py_times(runtime: Runtime, factory: Callable[[], Awaitable[Any]], count: int) -> Coroutine[Any, Any, int]:
    """Rust awaits `factory()` `count` times from the runtime, dropping each result; returns `count`."""

def hold_and_tick(runtime: Runtime, micros: int, value: Any) -> Coroutine[Any, Any, None]:
    """Holds `value` and wakes every `micros` us on the runtime, forever."""

def detach_for(seconds: float) -> None:
    """Blocks for `seconds` with the GIL released."""

def detach_until_dropped(target: int, timeout: float, linger: float) -> bool:
    """GIL released: waits until tracked_drops() >= target (then `linger` s); whether reached."""

def hold_gil_until_dropped(target: int, timeout: float, linger: float) -> bool:
    """GIL held: waits until tracked_drops() >= target (then `linger` s); whether reached."""

def holds() -> int:
    """How many hold_gil_until_dropped calls have finished."""
# Bad input (badinput.rs) -----------------------------------------------------------------

def await_py_with_locals(
    runtime: Runtime, event_loop: Any, awaitable: Awaitable[T], context: Optional[contextvars.Context] = None
) -> Coroutine[Any, Any, T]:
    """`TaskLocals::new(event_loop)` (`.with_context(context)` when given), then Rust awaits
    `awaitable` through `into_future_with_locals`."""

def current_loop_now() -> asyncio.AbstractEventLoop:
    """`pyo3_aio::get_current_loop`, called synchronously."""

def current_locals_now() -> Tuple[asyncio.AbstractEventLoop, Optional[contextvars.Context]]:
    """`pyo3_aio::get_current_locals`, called synchronously: `(event_loop, context)`."""

def run_until_complete_on(runtime: Runtime, event_loop: Any, value: T) -> T:
    """`run_until_complete(event_loop, future returning value)` on `runtime`."""

def run_with_factory(runtime: Runtime, factory: Callable[[], Any], value: T) -> T:
    """`run_with_loop_factory(factory, future returning value)` on `runtime`."""

def where_stream_polled(
    runtime: Runtime, n: int, inline: bool = True, pending_every: int = 0
) -> AsyncIterator[int]:
    """A Send stream of `n` items: each the `threading.get_ident()` of the thread that
    polled it; every `pending_every`-th poll is Pending first (0: never)."""

def parked_stream(n: int) -> AsyncIterator[int]:
    """`0..n` as a Send stream whose runtime never runs its pump."""

def release_parked() -> int:
    """Drops the futures the never-running runtime took; how many."""

# Races stepped by hand (src/mutants.rs, for test_mutants.py)

class Gate:
    """A future waits on it until a test opens it from a fresh thread."""

    def __init__(self) -> None: ...
    def wait(self, runtime: Runtime, home: Literal["auto", "runtime", "loop"] = "loop") -> Coroutine[Any, Any, None]:
        """A coroutine living on `home` that returns None once the gate is open."""
    def open_from_thread(self) -> None:
        """Opens the gate on a new thread (not the loop's, no GIL); returns once that thread
        has woken the waiting future."""

class StreamControl:
    """What a test sees of a `controlled_stream` and its pump."""

    def polls(self) -> int: ...
    def produced(self) -> int: ...
    def dropped(self) -> bool: ...
    def pump_ended(self) -> bool:
        """The pump returned or was dropped."""
    def pump_parked(self) -> bool:
        """The pump's last poll returned Pending."""
    def start(self) -> int:
        """Hands a held pump to tokio; how many futures were held."""

def controlled_stream(
    n: Optional[int] = None,
    *,
    capacity: int = 64,
    inline: bool = True,
    close_at: Optional[int] = None,
    stall_at: Optional[int] = None,
    hold_pump: bool = False,
) -> Tuple[RustStream[int], StreamControl]:
    """`0..n` (endless without `n`) as a Send stream on tokio. `close_at`: the stream calls
    `aclose()` on its own iterator while producing that item; `stall_at`: Pending for good
    from that item on; `hold_pump`: the pump waits for `StreamControl.start()`."""

class HeldFuture:
    """The Rust future of an `into_future`, kept for the test to drop."""

    def drop_future(self) -> bool:
        """Drops it (cancelling its Python task); whether it was still held."""

def into_future_from_thread(awaitable: Awaitable[Any]) -> HeldFuture:
    """`into_future_with_locals` (the running loop's locals) called on a new thread, so the
    loop creates the task later, from its wake queue."""

class Latch:
    """A runtime-side future on a thread of its own whose runtime-side poll
    (`block="poll"`: then Pending for good) or destructor (`block="drop"`: it returns its
    value at once) waits for `release()`. `release_on_wake`: a wake of its task from another
    thread releases it and returns once the task has finished."""

    def __init__(self, block: Literal["poll", "drop"] = "poll", release_on_wake: bool = False) -> None: ...
    def future(self, value: Optional[T] = None) -> Coroutine[Any, Any, T]: ...
    def eager(self, value: Optional[T] = None) -> Awaitable[T]:
        """The latched future started at once (future_into_py_eager)."""
    def release(self) -> None: ...
    def polling(self) -> bool: ...
    def dropping(self) -> bool: ...
    def dropped(self) -> bool: ...
    def finished(self) -> bool:
        """The spawned task returned."""

# Synchronous entry points (blocking.rs). `what` names the Rust future's work: "ready",
# "sleep", "await" / "await-inline" (awaits `argument` through into_future), "error",
# "panic", "never" (pending forever; its drop is counted).
def block(runtime: str, what: str, argument: Any) -> Any: ...
def spawn(runtime: str, what: str, argument: Any) -> concurrent.futures.Future[Any]: ...
def blocking_dropped() -> int: ...
def shutdown_background_loops(timeout: float) -> bool: ...
def blocking_started() -> int: ...

# Rust futures that hold Python awaitables when cancelled (unwinding.rs); into_future is
# called at once, on the loop's thread.
def await_py_at(runtime: Runtime, home: Literal["auto", "runtime", "loop"], awaitable: Awaitable[T]) -> Coroutine[Any, Any, T]: ...
def await_py_both(
    runtime: Runtime, home: Literal["auto", "runtime", "loop"], first: Awaitable[T], second: Awaitable[U]
) -> Coroutine[Any, Any, Tuple[T, U]]:
    """Awaits both at the same time."""
def await_py_busy(runtime: Runtime, awaitable: Awaitable[T]) -> Coroutine[Any, Any, T]:
    """On the runtime; once pending there, its next poll blocks until `release_busy()`."""
def await_py_or_cancel(runtime: Runtime, seconds: float, awaitable: Awaitable[T]) -> Coroutine[Any, Any, Optional[T]]:
    """At most `seconds` on the runtime's timer, then `PyFuture::cancel` (waits) and None."""
