//! The per-runtime modules: the generic bridge with a runtime's spawner filled in.

/// Defines the functions of one runtime module for `$spawner`.
macro_rules! runtime_module {
    ($spawner:expr, $runtime:literal) => {
        use std::future::Future;

        use pyo3::prelude::*;

        pub use crate::{
            TaskLocals, get_current_locals, get_current_loop, into_future,
            into_future_with_locals, scope, scope_local,
        };

        #[doc = concat!("Converts a `Send` Rust future into a Python coroutine; while pending it runs on ", $runtime, ".")]
        ///
        /// The returned object is a coroutine: `await` it, pass it to `asyncio.run`,
        /// `create_task`, `gather` or `wait_for`. It binds to the running loop when first
        /// awaited, polls the future once inline there, and only then, if the future is
        /// still pending, hands it to the runtime. Cancelling the awaiting task drops the
        /// Rust future; a panic becomes `pyo3_aio.RustPanic`.
        ///
        /// # Errors
        ///
        /// Only if the coroutine object cannot be allocated.
        pub fn future_into_py<'py, F, T>(py: Python<'py>, future: F) -> PyResult<Bound<'py, PyAny>>
        where
            F: Future<Output = PyResult<T>> + Send + 'static,
            T: for<'a> IntoPyObject<'a> + Send + 'static,
        {
            crate::generic::future_into_py(py, $spawner, future)
        }

        /// [`future_into_py`] with per-call [`Options`](crate::Options).
        ///
        /// # Errors
        ///
        /// As [`future_into_py`].
        pub fn future_into_py_with<'py, F, T>(
            py: Python<'py>,
            options: crate::Options,
            future: F,
        ) -> PyResult<Bound<'py, PyAny>>
        where
            F: Future<Output = PyResult<T>> + Send + 'static,
            T: for<'a> IntoPyObject<'a> + Send + 'static,
        {
            crate::generic::future_into_py_with(py, $spawner, options, future)
        }

        /// Converts a `!Send` Rust future into a Python coroutine polled on the loop thread.
        ///
        /// # Errors
        ///
        /// As [`future_into_py`].
        pub fn local_future_into_py<'py, F, T>(py: Python<'py>, future: F) -> PyResult<Bound<'py, PyAny>>
        where
            F: Future<Output = PyResult<T>> + 'static,
            T: for<'a> IntoPyObject<'a> + 'static,
        {
            crate::generic::local_future_into_py(py, future)
        }

        #[doc = concat!("Starts a `Send` Rust future on ", $runtime, " now and returns an `asyncio.Future` (eager semantics).")]
        ///
        /// # Errors
        ///
        /// `RuntimeError` outside a running event loop.
        pub fn future_into_py_eager<'py, F, T>(py: Python<'py>, future: F) -> PyResult<Bound<'py, PyAny>>
        where
            F: Future<Output = PyResult<T>> + Send + 'static,
            T: for<'a> IntoPyObject<'a> + Send + 'static,
        {
            crate::generic::future_into_py_eager(py, $spawner, future)
        }
    };
}

pub(crate) use runtime_module;
