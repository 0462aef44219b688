//! The runtimes the suite runs on, and the one place a runtime's name becomes its functions.
//!
//! Tests pass the runtime's name (`"tokio"`, `"async-std"`, `"smol"`); every entry point
//! takes it as a [`Runtime`], which Python strings convert into. Each operation the
//! entry points need (convert a future, a stream, run a loop, sleep, spawn) is a method
//! here, and each method is one [`on_runtime!`] call: the only `match` on the runtime in
//! the crate. A fourth runtime is a variant, an arm of that macro and a module of its own
//! below.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3_aio::generic::Spawner;
use pyo3_aio::{Options, StreamOptions};

/// A boxed `Send` future, as the runtimes' timers and spawned tasks are handed around.
pub(crate) type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

/// One of the runtimes the bridge supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Runtime {
    Tokio,
    AsyncStd,
    Smol,
}

/// Runs `$body` with `$rt` naming the runtime's module below (which holds `aio`, the
/// runtime's module of pyo3-aio, and the runtime's own timer, spawn and spawner).
macro_rules! on_runtime {
    ($runtime:expr, $rt:ident => $body:expr) => {
        match $runtime {
            Runtime::Tokio => {
                use self::on_tokio as $rt;
                $body
            }
            Runtime::AsyncStd => {
                use self::on_async_std as $rt;
                $body
            }
            Runtime::Smol => {
                use self::on_smol as $rt;
                $body
            }
        }
    };
}

impl Runtime {
    /// Every runtime, in the order of the module's `RUNTIMES`.
    pub(crate) const ALL: [Runtime; 3] = [Runtime::Tokio, Runtime::AsyncStd, Runtime::Smol];

    /// The name tests use for it.
    pub(crate) fn name(self) -> &'static str {
        on_runtime!(self, rt => rt::NAME)
    }

    /// The runtime called `name`.
    ///
    /// # Errors
    ///
    /// `ValueError` naming the runtimes there are, for any other name.
    pub(crate) fn from_name(name: &str) -> PyResult<Self> {
        Self::ALL
            .into_iter()
            .find(|runtime| runtime.name() == name)
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "unknown runtime '{name}': expected 'tokio', 'async-std' or 'smol'"
                ))
            })
    }

    /// The runtime's `future_into_py`.
    pub(crate) fn convert<'py, F, T>(
        self,
        py: Python<'py>,
        future: F,
    ) -> PyResult<Bound<'py, PyAny>>
    where
        F: Future<Output = PyResult<T>> + Send + 'static,
        T: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        on_runtime!(self, rt => rt::aio::future_into_py(py, future))
    }

    /// The runtime's `block_on`.
    pub(crate) fn block_on<F, T>(self, py: Python<'_>, future: F) -> PyResult<T>
    where
        F: Future<Output = PyResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        on_runtime!(self, rt => rt::aio::block_on(py, future))
    }

    /// The runtime's `spawn_task`.
    pub(crate) fn spawn_task<'py, F, T>(
        self,
        py: Python<'py>,
        future: F,
    ) -> PyResult<Bound<'py, PyAny>>
    where
        F: Future<Output = PyResult<T>> + Send + 'static,
        T: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        on_runtime!(self, rt => rt::aio::spawn_task(py, future))
    }

    /// The runtime's `future_into_py_with`.
    pub(crate) fn convert_with<'py, F, T>(
        self,
        py: Python<'py>,
        options: Options,
        future: F,
    ) -> PyResult<Bound<'py, PyAny>>
    where
        F: Future<Output = PyResult<T>> + Send + 'static,
        T: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        on_runtime!(self, rt => rt::aio::future_into_py_with(py, options, future))
    }

    /// The runtime's `future_into_py_eager`.
    pub(crate) fn eager<'py, F, T>(self, py: Python<'py>, future: F) -> PyResult<Bound<'py, PyAny>>
    where
        F: Future<Output = PyResult<T>> + Send + 'static,
        T: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        on_runtime!(self, rt => rt::aio::future_into_py_eager(py, future))
    }

    /// The runtime's `stream_into_py` (`options` None) or `stream_into_py_with`.
    pub(crate) fn stream_into_py<'py, St, T>(
        self,
        py: Python<'py>,
        options: Option<StreamOptions>,
        stream: St,
    ) -> PyResult<Bound<'py, PyAny>>
    where
        St: Stream<Item = PyResult<T>> + Send + 'static,
        T: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        on_runtime!(self, rt => match options {
            None => rt::aio::stream_into_py(py, stream),
            Some(options) => rt::aio::stream_into_py_with(py, options, stream),
        })
    }

    /// The runtime's `local_stream_into_py`.
    pub(crate) fn local_stream_into_py<'py, St, T>(
        self,
        py: Python<'py>,
        stream: St,
    ) -> PyResult<Bound<'py, PyAny>>
    where
        St: Stream<Item = PyResult<T>> + 'static,
        T: for<'a> IntoPyObject<'a> + 'static,
    {
        on_runtime!(self, rt => rt::aio::local_stream_into_py(py, stream))
    }

    /// The runtime's `local_future_into_py_with`.
    pub(crate) fn local_convert_with<'py, F, T>(
        self,
        py: Python<'py>,
        first_poll: pyo3_aio::FirstPoll,
        future: F,
    ) -> PyResult<Bound<'py, PyAny>>
    where
        F: Future<Output = PyResult<T>> + 'static,
        T: for<'a> IntoPyObject<'a> + 'static,
    {
        on_runtime!(self, rt => rt::aio::local_future_into_py_with(py, first_poll, future))
    }

    /// The runtime's `run_until_complete`.
    pub(crate) fn run_until_complete<F, T>(
        self,
        event_loop: Bound<'_, PyAny>,
        future: F,
    ) -> PyResult<T>
    where
        F: Future<Output = PyResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        on_runtime!(self, rt => rt::aio::run_until_complete(event_loop, future))
    }

    /// The runtime's `run_with_loop_factory`.
    pub(crate) fn run_with_loop_factory<'py, F, T>(
        self,
        py: Python<'py>,
        factory: impl FnOnce(Python<'py>) -> PyResult<Bound<'py, PyAny>>,
        future: F,
    ) -> PyResult<T>
    where
        F: Future<Output = PyResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        on_runtime!(self, rt => rt::aio::run_with_loop_factory(py, factory, future))
    }

    /// Shuts the runtime's global instance down, waiting at most `timeout`; returns what
    /// happened (`"Stopped"`, ...).
    ///
    /// # Errors
    ///
    /// `NotImplementedError` for a runtime that cannot be shut down (async-std).
    pub(crate) fn shutdown(self, py: Python<'_>, timeout: Duration) -> PyResult<String> {
        on_runtime!(self, rt => rt::shutdown(py, timeout))
    }

    /// The runtime's global spawner.
    pub(crate) fn spawner(self) -> Arc<dyn Spawner> {
        on_runtime!(self, rt => rt::spawner())
    }

    /// The runtime's timer of `seconds`, made at its first poll: for futures that the
    /// runtime polls (or the inline first poll, inside the runtime's context).
    pub(crate) fn sleep(self, seconds: f64) -> BoxFuture<()> {
        let duration = Duration::from_secs_f64(seconds);
        on_runtime!(self, rt => rt::sleep(duration))
    }

    /// [`sleep`](Self::sleep), except that `seconds` 0 is ready at once, so a future that
    /// awaits it is ready on its inline first poll.
    pub(crate) fn delay(self, seconds: f64) -> BoxFuture<()> {
        if seconds > 0.0 {
            self.sleep(seconds)
        } else {
            Box::pin(std::future::ready(()))
        }
    }

    /// The runtime's timer of `duration`, made now inside the runtime's context, so it also
    /// works when polled on the loop thread outside any runtime (`!Send` futures, streams
    /// polled by `__anext__`).
    pub(crate) fn timer(self, duration: Duration) -> BoxFuture<()> {
        on_runtime!(self, rt => rt::timer(duration))
    }

    /// Runs `future` as a task of its own on the runtime (no task locals travel with it);
    /// the returned future waits for its output.
    pub(crate) fn spawn<T: Send + 'static>(
        self,
        future: impl Future<Output = PyResult<T>> + Send + 'static,
    ) -> BoxFuture<PyResult<T>> {
        on_runtime!(self, rt => rt::spawn(future))
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for Runtime {
    type Error = PyErr;

    fn extract(name: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Self::from_name(name.extract::<&str>()?)
    }
}

mod on_tokio {
    use super::*;

    pub(super) use pyo3_aio::tokio as aio;

    pub(super) const NAME: &str = "tokio";

    pub(super) fn sleep(duration: Duration) -> BoxFuture<()> {
        Box::pin(async move { tokio::time::sleep(duration).await })
    }

    /// The guard is not held across the await: guards of interleaved futures on one
    /// thread would be dropped out of order.
    pub(super) fn timer(duration: Duration) -> BoxFuture<()> {
        let _guard = aio::handle().enter();
        Box::pin(tokio::time::sleep(duration))
    }

    pub(super) fn spawn<T: Send + 'static>(
        future: impl Future<Output = PyResult<T>> + Send + 'static,
    ) -> BoxFuture<PyResult<T>> {
        let handle = aio::handle().spawn(future);
        Box::pin(async move {
            handle
                .await
                .map_err(|error| pyo3::exceptions::PyRuntimeError::new_err(error.to_string()))?
        })
    }

    pub(super) fn spawner() -> Arc<dyn Spawner> {
        Arc::new(aio::TokioSpawner::global())
    }

    pub(super) fn shutdown(py: Python<'_>, timeout: Duration) -> PyResult<String> {
        Ok(format!("{:?}", py.detach(|| aio::shutdown(timeout))))
    }
}

mod on_async_std {
    use super::*;

    pub(super) use pyo3_aio::async_std as aio;

    pub(super) const NAME: &str = "async-std";

    pub(super) fn sleep(duration: Duration) -> BoxFuture<()> {
        Box::pin(async_std::task::sleep(duration))
    }

    /// async-std's timers need no context.
    pub(super) fn timer(duration: Duration) -> BoxFuture<()> {
        sleep(duration)
    }

    pub(super) fn spawn<T: Send + 'static>(
        future: impl Future<Output = PyResult<T>> + Send + 'static,
    ) -> BoxFuture<PyResult<T>> {
        Box::pin(async_std::task::spawn(future))
    }

    pub(super) fn spawner() -> Arc<dyn Spawner> {
        Arc::new(aio::AsyncStdSpawner)
    }

    pub(super) fn shutdown(_py: Python<'_>, _timeout: Duration) -> PyResult<String> {
        Err(pyo3::exceptions::PyNotImplementedError::new_err(format!(
            "the {NAME} runtime cannot be shut down"
        )))
    }
}

mod on_smol {
    use super::*;

    pub(super) use pyo3_aio::smol as aio;

    pub(super) const NAME: &str = "smol";

    pub(super) fn sleep(duration: Duration) -> BoxFuture<()> {
        Box::pin(async move {
            smol::Timer::after(duration).await;
        })
    }

    /// smol's timers need no context.
    pub(super) fn timer(duration: Duration) -> BoxFuture<()> {
        sleep(duration)
    }

    pub(super) fn spawn<T: Send + 'static>(
        future: impl Future<Output = PyResult<T>> + Send + 'static,
    ) -> BoxFuture<PyResult<T>> {
        Box::pin(smol::spawn(future))
    }

    pub(super) fn spawner() -> Arc<dyn Spawner> {
        Arc::new(aio::SmolSpawner::global())
    }

    pub(super) fn shutdown(py: Python<'_>, timeout: Duration) -> PyResult<String> {
        Ok(format!("{:?}", py.detach(|| aio::shutdown(timeout))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for runtime in Runtime::ALL {
            assert_eq!(Runtime::from_name(runtime.name()).ok(), Some(runtime));
        }
    }
}
