//! The bridge for any runtime that implements [`Spawner`].
//!
//! The per-runtime modules (`pyo3_aio::tokio`, `async_std`, `smol`) are thin wrappers
//! around these functions with their runtime's spawner filled in. A custom executor only
//! needs a [`Spawner`] implementation:
//!
//! ```
//! use pyo3::prelude::*;
//! use pyo3_aio::generic::{self, BoxFuture, SpawnError, Spawner};
//!
//! #[derive(Clone)]
//! struct OnTokio(tokio::runtime::Handle);
//!
//! impl Spawner for OnTokio {
//!     fn spawn(&self, future: BoxFuture) -> Result<(), SpawnError> {
//!         self.0.spawn(future);
//!         Ok(())
//!     }
//!     fn enter(&self, f: &mut dyn FnMut()) {
//!         let _guard = self.0.enter();
//!         f()
//!     }
//!     fn name(&self) -> &'static str {
//!         "my-tokio"
//!     }
//! }
//!
//! let runtime = tokio::runtime::Runtime::new().unwrap();
//! let spawner = OnTokio(runtime.handle().clone());
//! Python::attach(|py| -> PyResult<()> {
//!     let coroutine = generic::future_into_py(py, spawner, async {
//!         tokio::time::sleep(std::time::Duration::from_millis(1)).await;
//!         Ok(42)
//!     })?;
//!     let result = py.import("asyncio")?.call_method1("run", (coroutine,))?;
//!     assert_eq!(result.extract::<i32>()?, 42);
//!     Ok(())
//! })
//! .unwrap();
//! ```

use std::future::Future;

use pyo3::prelude::*;

pub use pyo3_aio_core::spawn::{BoxFuture, SpawnError, Spawner};

use crate::coroutine::{InRuntime, LoopThreadStart, RustCoroutine, SendStart, future_name};
use crate::options::{FirstPoll, Options};

/// Converts a `Send` Rust future into a Python coroutine, run by `spawner` while pending.
///
/// The coroutine does nothing until awaited; see the crate docs for what happens then.
///
/// # Errors
///
/// Only if the coroutine object cannot be allocated; errors of the future itself are
/// raised where the coroutine is awaited.
pub fn future_into_py<'py, S, F, T>(
    py: Python<'py>,
    spawner: S,
    future: F,
) -> PyResult<Bound<'py, PyAny>>
where
    S: Spawner + Clone,
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    future_into_py_with(py, spawner, Options::default(), future)
}

/// [`future_into_py`] with per-call [`Options`] (where the pending future
/// lives and whether it is polled inline first).
///
/// # Errors
///
/// As [`future_into_py`].
pub fn future_into_py_with<'py, S, F, T>(
    py: Python<'py>,
    spawner: S,
    options: Options,
    future: F,
) -> PyResult<Bound<'py, PyAny>>
where
    S: Spawner + Clone,
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    crate::slots::install_am_send(py);
    let start = SendStart::new(future, spawner, options);
    let coroutine = RustCoroutine::new(Box::new(start), future_name::<F>());
    Ok(Bound::new(py, coroutine)?.into_any())
}

/// Converts a `!Send` Rust future into a Python coroutine. The future lives on the event
/// loop's thread and is polled there, with the GIL, whenever it is woken.
///
/// Call it on the thread of the loop that will await the coroutine (a `#[pyfunction]`
/// called from Python code on that loop runs there). A coroutine made on another thread,
/// such as a runtime worker, is refused where it is awaited; see Errors.
///
/// # Errors
///
/// As [`future_into_py`]. Awaiting the coroutine on another thread than the one that
/// created it raises `RuntimeError: a !Send Rust future was awaited on another thread than
/// the one that created it`; the future is then never polled, and it is leaked rather than
/// dropped off its thread.
///
/// ```
/// use std::rc::Rc;
///
/// use pyo3::exceptions::PyRuntimeError;
/// use pyo3::prelude::*;
///
/// Python::attach(|py| -> PyResult<()> {
///     let asyncio = py.import("asyncio")?;
///
///     // Made on this thread, which then runs the loop that awaits it: fine.
///     let shared = Rc::new(21);
///     let coroutine =
///         pyo3_aio::generic::local_future_into_py(py, async move { Ok(*shared * 2) })?;
///     assert_eq!(asyncio.call_method1("run", (coroutine,))?.extract::<i32>()?, 42);
///
///     // Made on another thread: refused when this thread's loop awaits it.
///     let elsewhere = py.detach(|| {
///         std::thread::spawn(|| {
///             Python::attach(|py| {
///                 let shared = Rc::new(());
///                 pyo3_aio::generic::local_future_into_py(py, async move { Ok(*shared) })
///                     .map(Bound::unbind)
///             })
///         })
///         .join()
///         .unwrap()
///     })?;
///     let error = asyncio.call_method1("run", (elsewhere,)).unwrap_err();
///     assert!(error.is_instance_of::<PyRuntimeError>(py));
///     assert_eq!(
///         error.value(py).to_string(),
///         "a !Send Rust future was awaited on another thread than the one that created it"
///     );
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn local_future_into_py<'py, F, T>(py: Python<'py>, future: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + 'static,
    T: for<'a> IntoPyObject<'a> + 'static,
{
    local_future_into_py_with(py, FirstPoll::Inline, future)
}

/// [`local_future_into_py`] choosing whether the first poll happens inline.
///
/// # Errors
///
/// As [`local_future_into_py`].
pub fn local_future_into_py_with<'py, F, T>(
    py: Python<'py>,
    first_poll: FirstPoll,
    future: F,
) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + 'static,
    T: for<'a> IntoPyObject<'a> + 'static,
{
    loop_thread_coroutine(py, first_poll, future, future_name::<F>())
}

/// [`local_future_into_py`] for a future that needs `spawner`'s runtime around each poll
/// (tokio's timers and I/O do): the `local_future_into_py` of each runtime module.
///
/// # Errors
///
/// As [`local_future_into_py`].
pub fn local_future_into_py_in<'py, S, F, T>(
    py: Python<'py>,
    spawner: S,
    first_poll: FirstPoll,
    future: F,
) -> PyResult<Bound<'py, PyAny>>
where
    S: Spawner + 'static,
    F: Future<Output = PyResult<T>> + 'static,
    T: for<'a> IntoPyObject<'a> + 'static,
{
    let name = future_name::<F>();
    loop_thread_coroutine(py, first_poll, InRuntime::new(spawner, future), name)
}

fn loop_thread_coroutine<'py, F, T>(
    py: Python<'py>,
    first_poll: FirstPoll,
    future: F,
    name: &'static str,
) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + 'static,
    T: for<'a> IntoPyObject<'a> + 'static,
{
    crate::slots::install_am_send(py);
    let start = LoopThreadStart::new(future, first_poll);
    let coroutine = RustCoroutine::new(Box::new(start), name);
    Ok(Bound::new(py, coroutine)?.into_any())
}

/// Starts a `Send` Rust future on `spawner` now and returns an `asyncio.Future` for its
/// result (pyo3-asyncio's eager semantics, for fire-and-forget callers). Cancelling the
/// `asyncio.Future` drops the Rust future.
///
/// # Errors
///
/// `RuntimeError` when called outside a running event loop (and outside any
/// [`scope`](crate::scope)), or when the spawner refuses the future.
pub fn future_into_py_eager<'py, S, F, T>(
    py: Python<'py>,
    spawner: S,
    future: F,
) -> PyResult<Bound<'py, PyAny>>
where
    S: Spawner,
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    crate::eager::future_into_py_eager(py, spawner, future)
}

/// Runs a `Send` Rust future to completion from synchronous code and returns its result;
/// `spawner` runs it while it is pending.
///
/// For plain `#[pyfunction]`s called by synchronous Python: a library function, a callback,
/// a Jupyter cell that does not `await`, a thread-pool worker. The future is polled once
/// inline; if it is pending the GIL is released until it completes, so other Python threads
/// (and the loop the future's Python work runs on) keep going. It works whether or not the
/// calling thread runs an event loop:
///
/// - Python coroutines the future awaits through [`into_future`](crate::into_future) need
///   a loop that is free. Called on a thread that runs a loop, that loop is blocked by this
///   very call, so they run on a background loop (a loop on a thread of pyo3-aio's,
///   started on first need; see [`shutdown_background_loops`](crate::blocking::shutdown_background_loops)),
///   with a copy of the caller's context variables. Called on a thread without a loop,
///   they run on the one loop running in the process, or on a background loop when there
///   is none.
/// - Ctrl-C while it waits (on Python's main thread) raises `KeyboardInterrupt` within
///   about 20 ms, after the Rust future has been dropped.
/// - Errors and panics come back as with [`future_into_py`]: the future's `PyErr`, or
///   `pyo3_aio.RustPanic`.
///
/// ```
/// use pyo3::prelude::*;
/// use pyo3_aio::generic::{self, BoxFuture, SpawnError, Spawner};
///
/// #[derive(Clone)]
/// struct OnTokio(tokio::runtime::Handle);
///
/// impl Spawner for OnTokio {
///     fn spawn(&self, future: BoxFuture) -> Result<(), SpawnError> {
///         self.0.spawn(future);
///         Ok(())
///     }
///     fn enter(&self, f: &mut dyn FnMut()) {
///         let _guard = self.0.enter();
///         f()
///     }
///     fn name(&self) -> &'static str {
///         "my-tokio"
///     }
/// }
///
/// let runtime = tokio::runtime::Runtime::new().unwrap();
/// let spawner = OnTokio(runtime.handle().clone());
/// Python::attach(|py| -> PyResult<()> {
///     // A Python coroutine awaited by a Rust future, all from synchronous code.
///     let module = PyModule::from_code(
///         py,
///         c"async def double(x):\n    return 2 * x\n",
///         c"double.py",
///         c"double",
///     )?;
///     let coroutine = module.getattr("double")?.call1((21,))?;
///     let awaited = pyo3_aio::into_future(coroutine)?;
///     let value = generic::block_on(py, spawner, async move {
///         tokio::time::sleep(std::time::Duration::from_millis(1)).await;
///         let value = awaited.await?;
///         Python::attach(|py| value.extract::<i32>(py))
///     })?;
///     assert_eq!(value, 42);
///     Ok(())
/// })
/// .unwrap();
/// ```
///
/// # Errors
///
/// What the future returns; `KeyboardInterrupt` (or what another signal handler raised)
/// when interrupted; `RuntimeError` when the runtime refuses the future or drops it
/// unfinished (shutdown).
pub fn block_on<S, F, T>(py: Python<'_>, spawner: S, future: F) -> PyResult<T>
where
    S: Spawner + Clone,
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: Send + 'static,
{
    crate::blocking::block_on(py, spawner, future)
}

/// Starts a `Send` Rust future on `spawner` now and returns a `pyo3_aio.RustTask` that any
/// caller can wait on.
///
/// The task is a `concurrent.futures.Future`: `result(timeout=None)` and
/// `exception(timeout=None)` block (Ctrl-C interrupts them; `TimeoutError` on expiry),
/// `done()`, `cancelled()`, `add_done_callback()` and `asyncio.wrap_future()` work as for
/// any other, and `await task` works on any asyncio loop. `cancel()` drops the Rust future
/// (it returns once the future is gone) unless it has finished. Outcomes are delivered
/// through a background loop (see [`block_on`]), without the GIL on the runtime's side, and
/// Python work the future starts through [`into_future`](crate::into_future) runs there too,
/// with a copy of the caller's context variables.
///
/// # Errors
///
/// `RuntimeError` when the runtime refuses the future, or when the background loop cannot
/// be started.
pub fn spawn_task<'py, S, F, T>(
    py: Python<'py>,
    spawner: S,
    future: F,
) -> PyResult<Bound<'py, PyAny>>
where
    S: Spawner,
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    crate::blocking::spawn_task(py, spawner, future)
}

pub use crate::run::{run, run_until_complete, run_with_loop_factory};

/// Converts a `Send` Rust stream into a Python async iterator; `spawner` runs the stream,
/// pulling up to `options.capacity` items ahead of the Python consumer.
///
/// The object supports `async for`, `anext()` and `aclose()`. An `Err` item is raised
/// where it occurs; a panic raises `RustPanic` and ends the iteration. The Rust stream is
/// dropped when the iterator is closed, garbage-collected, or its consumer is cancelled.
///
/// # Errors
///
/// `RuntimeError` when the spawner refuses the stream.
pub fn stream_into_py_with<'py, S, St, T>(
    py: Python<'py>,
    spawner: S,
    options: crate::StreamOptions,
    stream: St,
) -> PyResult<Bound<'py, PyAny>>
where
    S: Spawner,
    St: futures_core::Stream<Item = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    crate::stream::stream_into_py(py, spawner, options, stream)
}

/// [`stream_into_py_with`] with the default [`StreamOptions`](crate::StreamOptions).
///
/// # Errors
///
/// As [`stream_into_py_with`].
pub fn stream_into_py<'py, S, St, T>(
    py: Python<'py>,
    spawner: S,
    stream: St,
) -> PyResult<Bound<'py, PyAny>>
where
    S: Spawner,
    St: futures_core::Stream<Item = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    crate::stream::stream_into_py(py, spawner, crate::StreamOptions::default(), stream)
}

/// Converts a `!Send` Rust stream into a Python async iterator polled on the loop thread.
///
/// # Errors
///
/// Only if the iterator object cannot be allocated.
pub fn local_stream_into_py<'py, St, T>(py: Python<'py>, stream: St) -> PyResult<Bound<'py, PyAny>>
where
    St: futures_core::Stream<Item = PyResult<T>> + 'static,
    T: for<'a> IntoPyObject<'a> + 'static,
{
    crate::stream::local_stream_into_py(py, stream)
}

/// [`local_stream_into_py`] for a stream that needs `spawner`'s runtime around each poll:
/// the `local_stream_into_py` of each runtime module.
///
/// # Errors
///
/// As [`local_stream_into_py`].
pub fn local_stream_into_py_in<'py, S, St, T>(
    py: Python<'py>,
    spawner: S,
    stream: St,
) -> PyResult<Bound<'py, PyAny>>
where
    S: Spawner + 'static,
    St: futures_core::Stream<Item = PyResult<T>> + 'static,
    T: for<'a> IntoPyObject<'a> + 'static,
{
    crate::stream::local_stream_into_py(py, InRuntime::new(spawner, stream))
}
