//! Applications under trio: a Rust future as the main task of a `trio.run`.

use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3_aio_core::Spawner;

use crate::sync::lock;

/// Runs `future` as the main task of a new `trio.run` on this thread and returns its
/// output; see [`generic::run_trio`](crate::generic::run_trio).
pub(crate) fn run<S, F, T>(py: Python<'_>, spawner: S, future: F) -> PyResult<T>
where
    S: Spawner + Clone,
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: Send + 'static,
{
    let output = Arc::new(Mutex::new(None));
    let slot = output.clone();
    let coroutine = crate::generic::future_into_py(py, spawner, async move {
        let value = future.await?;
        *lock(&slot) = Some(value);
        Ok(())
    })?;
    super::task_function(py, "run")?.call1((coroutine,))?;
    let value = lock(&output).take();
    value.ok_or_else(|| PyRuntimeError::new_err("the trio run ended without the future's output"))
}
