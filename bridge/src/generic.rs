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

use crate::coroutine::{InRuntime, future_name, loop_thread_coroutine};
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

pub use crate::coroutine::future_into_py_with;

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

pub use crate::coroutine::local_future_into_py_with;

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

/// Starts a `Send` Rust future on `spawner` now and returns an `asyncio.Future` for its
/// result (pyo3-asyncio's eager semantics, for fire-and-forget callers). Cancelling the
/// `asyncio.Future` drops the Rust future.
///
/// Under trio the future starts at once as well (polled inline, spawned if pending), and
/// the object returned is a coroutine awaiting its result: once, by a task of that run,
/// without a checkpoint if the result is already there; a cancel scope (or Ctrl-C) that
/// cancels the await drops the Rust future. Never awaited, the future runs to its end,
/// or until the run ends, which drops it.
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

pub use crate::blocking::{block_on, spawn_task};
pub use crate::run::{run, run_until_complete, run_with_loop_factory};

/// Runs a Rust future as the main task of a new `trio.run` on this thread (trio's
/// counterpart of [`run`]), returning its output.
///
/// For programs that embed Python and run a trio application: inside the future,
/// `into_future` runs Python awaitables as tasks of that run. Python's SIGINT handler is
/// installed for the run if none is, so Ctrl-C raises `KeyboardInterrupt` and drops the
/// future (call it on the main thread).
///
/// # Errors
///
/// The future's error, `RustPanic` for a panic, `ImportError` without trio, or what
/// `trio.run` raised.
pub fn run_trio<S, F, T>(py: Python<'_>, spawner: S, future: F) -> PyResult<T>
where
    S: Spawner + Clone,
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: Send + 'static,
{
    crate::run::run_trio(py, spawner, future)
}

/// Converts a `Send` Rust stream into a Python async iterator; `spawner` runs the stream,
/// pulling up to `options.capacity` items ahead of the Python consumer.
///
/// The object supports `async for`, `anext()` and `aclose()`. An `Err` item is raised
/// where it occurs; a panic raises `RustPanic` and ends the iteration. The Rust stream is
/// dropped when the iterator is closed, garbage-collected, or its consumer is cancelled.
///
/// Unlike an async generator, whose body first runs at its first `__anext__`, the stream
/// is handed to `spawner` here and polled from now on, to fill the buffer ahead of the
/// consumer. Its task locals are taken here too: Python work it starts (`into_future`)
/// runs on the loop running now, in a copy of the current context, even if another task
/// iterates it or the context changes later. A `!Send` stream
/// ([`local_stream_into_py`]) is polled only when asked, in the asking task's context, as
/// an async generator is.
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
