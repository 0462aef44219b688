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

use pyo3::prelude::*;

pub use background::shutdown_background_loops;
pub(crate) use background::{first_loop, is_background};
pub(crate) use block_on::block_on;
pub(crate) use task::spawn_task;

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

/// The blocking functions of one runtime module, for `$spawner`.
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
            crate::generic::block_on(py, $spawner, future)
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
            crate::generic::spawn_task(py, $spawner, future)
        }
    };
}
pub(crate) use runtime_functions;
