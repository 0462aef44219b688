//! Calling Rust futures from synchronous Python, and Python coroutines from Rust with no
//! loop running.
//!
//! - [`block_on`](crate::tokio::block_on) (in each runtime module, and
//!   [`generic::block_on`](crate::generic::block_on)) runs a future to completion from a
//!   plain `#[pyfunction]`, with the GIL released while it waits, whether or not the
//!   calling thread runs an event loop. Ctrl-C raises `KeyboardInterrupt` and drops the
//!   future.
//! - [`spawn_task`](crate::tokio::spawn_task) starts a future in the background and returns
//!   a `pyo3_aio.RustTask`, a `concurrent.futures.Future` that sync and async callers alike
//!   can wait on (`result(timeout)`, `await task`, `asyncio.wrap_future`), and whose
//!   `cancel()` drops the future.
//! - Python work such a future starts through [`into_future`](crate::into_future) runs on
//!   a loop that is free to run it: the calling thread's loop is blocked during
//!   `block_on`, so it runs on a background loop (see [`shutdown_background_loops`]).
//!   `into_future` with no loop running anywhere in the process uses one too.

mod background;
mod block_on;
mod task;

use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::Duration;

use std::future::Future;

use pyo3::prelude::*;
use pyo3_aio_core::Spawner;

pub use background::shutdown_background_loops;
pub(crate) use background::{first_loop, is_background};

use crate::coroutine::Discard;

/// Wakes a thread parked until something happens.
pub(crate) struct Unpark(pub(crate) std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Drops a running future now, or once the runtime thread polling it lets go, and returns
/// when it is gone; waits without the GIL.
pub(crate) fn drop_and_wait(py: Python<'_>, running: &dyn Discard) {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    while !running.discard() {
        if !running.when_gone(waker.clone()) {
            return;
        }
        // Woken when it is gone; the timeout only guards against a missed wake-up.
        py.detach(|| std::thread::park_timeout(Duration::from_millis(50)));
    }
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
///   started on first need; see [`shutdown_background_loops`]),
///   with a copy of the caller's context variables. Called on a thread without a loop,
///   they run on the one loop running in the process, or on a background loop when there
///   is none.
/// - Ctrl-C while it waits (on Python's main thread) raises `KeyboardInterrupt` within
///   about 20 ms, after the Rust future has been dropped.
/// - Errors and panics come back as with [`future_into_py`](crate::generic::future_into_py): the future's `PyErr`, or
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
    block_on::block_on(py, spawner, future)
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
    task::spawn_task(py, spawner, future)
}

/// The blocking functions of one runtime module, for `$spawner`.
#[cfg(any(
    feature = "tokio-runtime",
    feature = "async-std-runtime",
    feature = "smol-runtime"
))]
macro_rules! runtime_functions {
    ($spawner:expr, $runtime:literal) => {
        #[doc = concat!("Runs a `Send` Rust future to completion from synchronous code, on ", $runtime, " while pending, and returns its result.")]
        ///
        /// The GIL is released while it waits; Ctrl-C raises `KeyboardInterrupt` after
        /// dropping the future; Python coroutines the future awaits run on a loop that is
        /// free (a background loop when this thread's own loop is the one blocked). See
        /// [`generic::block_on`](crate::generic::block_on).
        ///
        /// # Errors
        ///
        /// As [`generic::block_on`](crate::generic::block_on).
        pub fn block_on<F, T>(py: Python<'_>, future: F) -> PyResult<T>
        where
            F: std::future::Future<Output = PyResult<T>> + Send + 'static,
            T: Send + 'static,
        {
            crate::blocking::block_on(py, $spawner, future)
        }

        #[doc = concat!("Starts a `Send` Rust future on ", $runtime, " now and returns a `pyo3_aio.RustTask` (a `concurrent.futures.Future` that can also be awaited).")]
        ///
        /// See [`generic::spawn_task`](crate::generic::spawn_task).
        ///
        /// # Errors
        ///
        /// As [`generic::spawn_task`](crate::generic::spawn_task).
        pub fn spawn_task<'py, F, T>(py: Python<'py>, future: F) -> PyResult<Bound<'py, PyAny>>
        where
            F: std::future::Future<Output = PyResult<T>> + Send + 'static,
            T: for<'a> IntoPyObject<'a> + Send + 'static,
        {
            crate::blocking::spawn_task(py, $spawner, future)
        }
    };
}
#[cfg(any(
    feature = "tokio-runtime",
    feature = "async-std-runtime",
    feature = "smol-runtime"
))]
pub(crate) use runtime_functions;
