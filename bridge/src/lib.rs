//! Rust futures and Python asyncio coroutines, awaiting each other.
//!
//! - **Rust -> Python**: [`tokio::future_into_py`] (and the `async_std`, `smol` and
//!   [`generic`] counterparts) turns a Rust future into a Python *coroutine*. It binds to
//!   the event loop where it is first awaited, so `asyncio.run(my_module.fetch())` works
//!   with no wrapper. A future that is ready at once costs no thread hop.
//! - **Python -> Rust**: [`into_future`] turns any awaitable into a `Send` Rust future that
//!   can be awaited on any runtime; dropping it cancels the Python task.
//!
//! Results travel back to Python without the producing thread ever taking the GIL: a
//! lock-free completion cell and a per-loop wake queue (from `pyo3-aio-core`) carry them,
//! and one eventfd write wakes the loop for a whole burst.
//!
//! ```no_run
//! // An extension module exporting an async function (built with maturin).
//! use pyo3::prelude::*;
//!
//! #[pyfunction]
//! fn rust_sleep(py: Python<'_>, seconds: f64) -> PyResult<Bound<'_, PyAny>> {
//!     pyo3_aio::tokio::future_into_py(py, async move {
//!         tokio::time::sleep(std::time::Duration::from_secs_f64(seconds)).await;
//!         Ok(())
//!     })
//! }
//!
//! #[pymodule]
//! fn my_async_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
//!     m.add_function(wrap_pyfunction!(rust_sleep, m)?)?;
//!     m.add("RustPanic", m.py().get_type::<pyo3_aio::RustPanic>())?;
//!     Ok(())
//! }
//! ```
//! (`no_run`: an extension module is loaded by Python, not run by rustdoc.)
//!
//! ```python
//! import asyncio, my_async_module
//! asyncio.run(my_async_module.rust_sleep(0.1))
//! ```

mod asyncio;
pub mod blocking;
mod callables;
mod coroutine;
mod eager;
mod errors;
mod event_loop;
mod forced_exit;
mod framework;
pub mod generic;
mod gil_cell;
mod into_future;
mod introspect;
mod locals;
mod options;
mod panic;
// Exported once, under the name the `#[main]` / `#[test]` expansions use.
#[cfg(feature = "attributes")]
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
mod run;
// The per-runtime modules' macro, used only by the runtime features.
#[cfg(any(
    feature = "tokio-runtime",
    feature = "async-std-runtime",
    feature = "smol-runtime"
))]
mod runtime;
mod shared;
mod slots;
mod stream;
mod sync;
#[cfg(feature = "attributes")]
pub mod testing;
mod thread_bound;
mod trio;
mod unwinding;
mod waiter;

pub use coroutine::RustCoroutine;
pub use into_future::{PyFuture, into_future, into_future_with_locals};
pub use locals::{TaskLocals, get_current_locals, get_current_loop, scope, scope_local};
pub use options::{FirstPoll, Home, Options, StreamOptions};
pub use panic::RustPanic;
pub use stream::{PyStream, RustStream, into_stream, into_stream_with};

/// The bridge on tokio (feature `tokio-runtime`); the runtime is [`pyo3_aio_tokio`]'s
/// lazily built global one.
#[cfg(feature = "tokio-runtime")]
pub mod tokio {
    crate::runtime::runtime_module!(pyo3_aio_tokio::TokioSpawner::global(), "tokio");
    crate::blocking::runtime_functions!(pyo3_aio_tokio::TokioSpawner::global(), "tokio");
    /// Runs `async fn main` on tokio with Python's loop on the main thread; see the
    /// crate-level docs of `pyo3-aio-macros` for options.
    #[cfg(feature = "attributes")]
    pub use pyo3_aio_macros::tokio_main as main;
    /// A test for [`crate::testing::main`], run on tokio.
    #[cfg(feature = "attributes")]
    pub use pyo3_aio_macros::tokio_test as test;
    pub use pyo3_aio_tokio::{
        InitError, Shutdown, TokioSpawner, handle, init, init_with_runtime, shutdown, try_handle,
    };
}

/// The bridge on async-std (feature `async-std-runtime`).
#[cfg(feature = "async-std-runtime")]
pub mod async_std {
    crate::runtime::runtime_module!(pyo3_aio_async_std::AsyncStdSpawner, "async-std");
    crate::blocking::runtime_functions!(pyo3_aio_async_std::AsyncStdSpawner, "async-std");
    pub use pyo3_aio_async_std::AsyncStdSpawner;
    /// Runs `async fn main` on async-std with Python's loop on the main thread.
    #[cfg(feature = "attributes")]
    pub use pyo3_aio_macros::async_std_main as main;
    /// A test for [`crate::testing::main`], run on async-std.
    #[cfg(feature = "attributes")]
    pub use pyo3_aio_macros::async_std_test as test;
}

/// The bridge on smol (feature `smol-runtime`).
#[cfg(feature = "smol-runtime")]
pub mod smol {
    crate::runtime::runtime_module!(pyo3_aio_smol::SmolSpawner::global(), "smol");
    crate::blocking::runtime_functions!(pyo3_aio_smol::SmolSpawner::global(), "smol");
    /// Runs `async fn main` on smol with Python's loop on the main thread.
    #[cfg(feature = "attributes")]
    pub use pyo3_aio_macros::smol_main as main;
    /// A test for [`crate::testing::main`], run on smol.
    #[cfg(feature = "attributes")]
    pub use pyo3_aio_macros::smol_test as test;
    pub use pyo3_aio_smol::{Shutdown, SmolSpawner, shutdown};
}
