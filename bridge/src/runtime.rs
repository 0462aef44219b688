//! The per-runtime modules: the generic bridge with a runtime's spawner filled in.

/// Defines the functions of one runtime module for `$spawner`.
macro_rules! runtime_module {
    ($spawner:expr, $runtime:literal) => {
        use std::future::Future;

        use pyo3::prelude::*;

        pub use crate::{
            TaskLocals, get_current_locals, get_current_loop, into_future,
            into_future_with_locals, into_stream, into_stream_with, scope, scope_local,
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
        /// Call it on the thread of the event loop that will await the coroutine, as a
        /// `#[pyfunction]` called from Python code running on that loop is. The future stays
        /// on that thread: it is polled there, with the GIL held, when first awaited and each
        /// time it is woken. Nothing else is needed (no `LocalSet`, no `spawn_local`), and
        /// the runtime is not involved.
        ///
        /// A coroutine made on any other thread, such as a runtime worker (where the bodies
        /// of `#[main]` and `#[test]` functions run) or a `spawn_blocking` thread, cannot be
        /// run by the loop: see Errors. Make it on the loop thread instead, for example by
        /// having Python call the function that makes it. The example on
        /// [`generic::local_future_into_py`](crate::generic::local_future_into_py) shows both
        /// cases.
        ///
        /// # Errors
        ///
        /// Only if the coroutine object cannot be allocated. Awaiting the coroutine on
        /// another thread than the one that called this function raises
        /// `RuntimeError: a !Send Rust future was awaited on another thread than the one
        /// that created it` at the `await`; the future is then never polled, and it is
        /// leaked rather than dropped, since its destructor may only run on its own thread.
        pub fn local_future_into_py<'py, F, T>(py: Python<'py>, future: F) -> PyResult<Bound<'py, PyAny>>
        where
            F: Future<Output = PyResult<T>> + 'static,
            T: for<'a> IntoPyObject<'a> + 'static,
        {
            crate::generic::local_future_into_py_in(py, $spawner, crate::FirstPoll::Inline, future)
        }

        /// [`local_future_into_py`] choosing whether the first poll happens inline
        /// ([`FirstPoll`](crate::FirstPoll)).
        ///
        /// # Errors
        ///
        /// As [`local_future_into_py`].
        pub fn local_future_into_py_with<'py, F, T>(
            py: Python<'py>,
            first_poll: crate::FirstPoll,
            future: F,
        ) -> PyResult<Bound<'py, PyAny>>
        where
            F: Future<Output = PyResult<T>> + 'static,
            T: for<'a> IntoPyObject<'a> + 'static,
        {
            crate::generic::local_future_into_py_in(py, $spawner, first_poll, future)
        }

        #[doc = concat!("Starts a `Send` Rust future on ", $runtime, " now and returns an `asyncio.Future` (eager semantics).")]
        ///
        /// The returned object is a real `asyncio.Future` of the loop, with `cancel`,
        /// `add_done_callback`, `result` and `done`; cancelling it drops the Rust future.
        /// Prefer [`future_into_py`] unless callers need those. Under trio (which has no
        /// futures) the Rust future starts at once too, and the object returned is a
        /// coroutine awaiting its result, once, from a task of that run; a cancelled await
        /// drops the Rust future, and the end of the run drops one never awaited.
        ///
        /// # Errors
        ///
        /// `RuntimeError` when neither task locals (inside a converted future or a
        /// [`scope`]) nor an event loop running on this thread say which loop to use. Unlike
        /// [`into_future`], it does not fall back to the one loop running in the process.
        /// `RuntimeError` too when the runtime refuses the future.
        pub fn future_into_py_eager<'py, F, T>(py: Python<'py>, future: F) -> PyResult<Bound<'py, PyAny>>
        where
            F: Future<Output = PyResult<T>> + Send + 'static,
            T: for<'a> IntoPyObject<'a> + Send + 'static,
        {
            crate::generic::future_into_py_eager(py, $spawner, future)
        }

        #[doc = concat!("Converts a `Send` Rust stream into a Python async iterator; the stream runs on ", $runtime, ".")]
        ///
        /// See [`generic::stream_into_py_with`](crate::generic::stream_into_py_with).
        ///
        /// # Errors
        ///
        /// `RuntimeError` when the runtime refuses the stream.
        pub fn stream_into_py<'py, St, T>(py: Python<'py>, stream: St) -> PyResult<Bound<'py, PyAny>>
        where
            St: futures_core::Stream<Item = PyResult<T>> + Send + 'static,
            T: for<'a> IntoPyObject<'a> + Send + 'static,
        {
            crate::generic::stream_into_py(py, $spawner, stream)
        }

        /// [`stream_into_py`] with [`StreamOptions`](crate::StreamOptions).
        ///
        /// # Errors
        ///
        /// As [`stream_into_py`].
        pub fn stream_into_py_with<'py, St, T>(
            py: Python<'py>,
            options: crate::StreamOptions,
            stream: St,
        ) -> PyResult<Bound<'py, PyAny>>
        where
            St: futures_core::Stream<Item = PyResult<T>> + Send + 'static,
            T: for<'a> IntoPyObject<'a> + Send + 'static,
        {
            crate::generic::stream_into_py_with(py, $spawner, options, stream)
        }

        /// Converts a `!Send` Rust stream into a Python async iterator polled on the loop
        /// thread.
        ///
        /// # Errors
        ///
        /// Only if the iterator object cannot be allocated.
        pub fn local_stream_into_py<'py, St, T>(py: Python<'py>, stream: St) -> PyResult<Bound<'py, PyAny>>
        where
            St: futures_core::Stream<Item = PyResult<T>> + 'static,
            T: for<'a> IntoPyObject<'a> + 'static,
        {
            crate::generic::local_stream_into_py_in(py, $spawner, stream)
        }

        #[doc = concat!("Runs a Rust future on ", $runtime, " to completion on a new asyncio event loop (like `asyncio.run`), returning its output.")]
        ///
        /// For programs that embed Python; call it on the main thread so Ctrl-C raises
        /// `KeyboardInterrupt` and drops the future.
        ///
        /// # Errors
        ///
        /// The future's error, `RustPanic` for a panic, or what the loop raised.
        pub fn run<F, T>(py: Python<'_>, future: F) -> PyResult<T>
        where
            F: Future<Output = PyResult<T>> + Send + 'static,
            T: Send + 'static,
        {
            crate::generic::run(py, $spawner, future)
        }

        /// [`run`] on a loop made by `factory` (for example `uvloop.new_event_loop`).
        ///
        /// # Errors
        ///
        /// `TypeError` when the factory does not return an asyncio event loop; otherwise
        /// as [`run`].
        pub fn run_with_loop_factory<'py, F, T>(
            py: Python<'py>,
            factory: impl FnOnce(Python<'py>) -> PyResult<Bound<'py, PyAny>>,
            future: F,
        ) -> PyResult<T>
        where
            F: Future<Output = PyResult<T>> + Send + 'static,
            T: Send + 'static,
        {
            crate::generic::run_with_loop_factory(py, $spawner, factory, future)
        }

        #[doc = concat!("Runs a Rust future on ", $runtime, " as the main task of a new `trio.run` (trio's counterpart of [`run`]), returning its output.")]
        ///
        /// # Errors
        ///
        /// The future's error, `RustPanic` for a panic, `ImportError` without trio, or
        /// what `trio.run` raised.
        pub fn run_trio<F, T>(py: Python<'_>, future: F) -> PyResult<T>
        where
            F: Future<Output = PyResult<T>> + Send + 'static,
            T: Send + 'static,
        {
            crate::generic::run_trio(py, $spawner, future)
        }

        /// Runs a Rust future to completion while `event_loop` (not yet running) runs on
        /// this thread.
        ///
        /// # Errors
        ///
        /// As [`run`].
        pub fn run_until_complete<F, T>(event_loop: Bound<'_, PyAny>, future: F) -> PyResult<T>
        where
            F: Future<Output = PyResult<T>> + Send + 'static,
            T: Send + 'static,
        {
            crate::generic::run_until_complete(event_loop, $spawner, future)
        }
    };
}

pub(crate) use runtime_module;
