//! Helpers for the synchronous entry points: `block_on`, `spawn_task` and the background
//! loops, on every runtime.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

/// How many `never` futures made here have been dropped.
static DROPPED: AtomicUsize = AtomicUsize::new(0);

/// Counts its drop.
struct CountDrop;

impl Drop for CountDrop {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

/// Sleeps `seconds` on the runtime's own timer.
async fn sleep_on(runtime: &str, seconds: f64) {
    let duration = Duration::from_secs_f64(seconds);
    match runtime {
        "tokio" => tokio::time::sleep(duration).await,
        "async-std" => async_std::task::sleep(duration).await,
        _ => drop(smol::Timer::after(duration).await),
    }
}

/// What the Rust future does, by name.
async fn work(runtime: String, what: String, argument: Py<PyAny>) -> PyResult<Py<PyAny>> {
    match what.as_str() {
        "ready" => Ok(argument),
        "sleep" => {
            sleep_on(&runtime, 0.01).await;
            Ok(argument)
        }
        // Awaits the Python awaitable `argument` (made into a Rust future at the first poll,
        // so it goes to the loop the bridge picks for this call).
        "await" => {
            sleep_on(&runtime, 0.001).await;
            let awaited = Python::attach(|py| pyo3_aio::into_future(argument.into_bound(py)))?;
            awaited.await
        }
        "await-inline" => {
            let awaited = Python::attach(|py| pyo3_aio::into_future(argument.into_bound(py)))?;
            awaited.await
        }
        "error" => {
            sleep_on(&runtime, 0.001).await;
            Err(PyValueError::new_err("from Rust"))
        }
        "panic" => {
            sleep_on(&runtime, 0.001).await;
            panic!("boom in a blocking call")
        }
        "never" => {
            let _guard = CountDrop;
            std::future::pending::<()>().await;
            unreachable!()
        }
        other => Err(PyValueError::new_err(format!("unknown work {other:?}"))),
    }
}

/// `block_on` of `work(what, argument)` on `runtime`.
#[pyfunction]
fn block(py: Python<'_>, runtime: &str, what: &str, argument: Py<PyAny>) -> PyResult<Py<PyAny>> {
    let future = work(runtime.to_owned(), what.to_owned(), argument);
    match runtime {
        "tokio" => pyo3_aio::tokio::block_on(py, future),
        "async-std" => pyo3_aio::async_std::block_on(py, future),
        "smol" => pyo3_aio::smol::block_on(py, future),
        other => Err(PyRuntimeError::new_err(format!(
            "unknown runtime {other:?}"
        ))),
    }
}

/// `spawn_task` of `work(what, argument)` on `runtime`.
#[pyfunction]
fn spawn<'py>(
    py: Python<'py>,
    runtime: &str,
    what: &str,
    argument: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let future = work(runtime.to_owned(), what.to_owned(), argument);
    match runtime {
        "tokio" => pyo3_aio::tokio::spawn_task(py, future),
        "async-std" => pyo3_aio::async_std::spawn_task(py, future),
        "smol" => pyo3_aio::smol::spawn_task(py, future),
        other => Err(PyRuntimeError::new_err(format!(
            "unknown runtime {other:?}"
        ))),
    }
}

/// How many `never` futures were dropped so far.
#[pyfunction]
fn blocking_dropped() -> usize {
    DROPPED.load(Ordering::SeqCst)
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
    m.add_function(wrap_pyfunction!(shutdown_background_loops, m)?)?;
    Ok(())
}
