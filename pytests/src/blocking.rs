//! Helpers for the synchronous entry points: `block_on`, `spawn_task` and the background
//! loops, on every runtime.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_core::Stream;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::runtime::Runtime;

/// How many `never` futures made here have been dropped.
static DROPPED: AtomicUsize = AtomicUsize::new(0);

/// How many `never` futures made here have been polled.
static STARTED: AtomicUsize = AtomicUsize::new(0);

/// Counts its drop.
struct CountDrop;

impl Drop for CountDrop {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

/// What the Rust future does, by name.
async fn work(runtime: Runtime, what: String, argument: Py<PyAny>) -> PyResult<Py<PyAny>> {
    match what.as_str() {
        "ready" => Ok(argument),
        "sleep" => {
            runtime.sleep(0.01).await;
            Ok(argument)
        }
        // Awaits the Python awaitable `argument` (made into a Rust future at the first poll,
        // so it goes to the loop the bridge picks for this call).
        "await" => {
            runtime.sleep(0.001).await;
            let awaited = Python::attach(|py| pyo3_aio::into_future(argument.into_bound(py)))?;
            awaited.await
        }
        "await-inline" => {
            let awaited = Python::attach(|py| pyo3_aio::into_future(argument.into_bound(py)))?;
            awaited.await
        }
        // Collects the Python async iterable `argument` through into_stream.
        "stream" => {
            let mut stream = Python::attach(|py| pyo3_aio::into_stream(argument.into_bound(py)))?;
            let mut items = Vec::new();
            while let Some(item) =
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_next(cx)).await
            {
                items.push(item?);
            }
            Python::attach(|py| Ok(pyo3::types::PyList::new(py, items)?.into_any().unbind()))
        }
        "error" => {
            runtime.sleep(0.001).await;
            Err(PyValueError::new_err("from Rust"))
        }
        "panic" => {
            runtime.sleep(0.001).await;
            panic!("boom in a blocking call")
        }
        "never" => {
            let _guard = CountDrop;
            STARTED.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>().await;
            unreachable!()
        }
        other => Err(PyValueError::new_err(format!("unknown work {other:?}"))),
    }
}

/// `block_on` of `work(what, argument)` on `runtime`.
#[pyfunction]
fn block(py: Python<'_>, runtime: Runtime, what: &str, argument: Py<PyAny>) -> PyResult<Py<PyAny>> {
    runtime.block_on(py, work(runtime, what.to_owned(), argument))
}

/// `spawn_task` of `work(what, argument)` on `runtime`.
#[pyfunction]
fn spawn<'py>(
    py: Python<'py>,
    runtime: Runtime,
    what: &str,
    argument: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    runtime.spawn_task(py, work(runtime, what.to_owned(), argument))
}

/// How many `never` futures were dropped so far.
#[pyfunction]
fn blocking_dropped() -> usize {
    DROPPED.load(Ordering::SeqCst)
}

/// How many `never` futures were polled so far.
#[pyfunction]
fn blocking_started() -> usize {
    STARTED.load(Ordering::SeqCst)
}

/// `pyo3_aio::blocking::shutdown_background_loops`.
#[pyfunction]
fn shutdown_background_loops(py: Python<'_>, timeout: f64) -> PyResult<bool> {
    pyo3_aio::blocking::shutdown_background_loops(py, Duration::from_secs_f64(timeout))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(block, m)?)?;
    m.add_function(wrap_pyfunction!(spawn, m)?)?;
    m.add_function(wrap_pyfunction!(blocking_dropped, m)?)?;
    m.add_function(wrap_pyfunction!(blocking_started, m)?)?;
    m.add_function(wrap_pyfunction!(shutdown_background_loops, m)?)?;
    Ok(())
}
