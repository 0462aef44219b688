//! The eager variant (`future_into_py_eager`): started at once, returns an `asyncio.Future`.
//! The futures are those of `futures.rs`, handed over the eager way.

use pyo3::prelude::*;

use crate::Runtime;
use crate::futures::{panicking, raising};
use crate::poll_fn::after;
use crate::probes::{current_loop, never_counted};

/// Starts at once; returns an asyncio.Future.
#[pyfunction]
fn eager_sleep<'py>(
    py: Python<'py>,
    runtime: Runtime,
    seconds: f64,
    value: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    runtime.eager(py, after(runtime.sleep(seconds), move || Ok(value)))
}

/// Eager: a future that never completes; counts its drop in `dropped()`.
#[pyfunction]
fn eager_never<'py>(py: Python<'py>, runtime: Runtime) -> PyResult<Bound<'py, PyAny>> {
    runtime.eager(py, never_counted())
}

/// Eager: raises `error` after `seconds`.
#[pyfunction]
fn eager_raise_after<'py>(
    py: Python<'py>,
    runtime: Runtime,
    seconds: f64,
    error: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    runtime.eager(py, raising(runtime.sleep(seconds), error))
}

/// Eager: panics with `message` after `seconds`.
#[pyfunction]
fn eager_panic_after<'py>(
    py: Python<'py>,
    runtime: Runtime,
    seconds: f64,
    message: String,
) -> PyResult<Bound<'py, PyAny>> {
    runtime.eager(py, panicking(runtime.sleep(seconds), message))
}

/// Eager: returns the event loop seen from inside the future after a short sleep.
#[pyfunction]
fn eager_current_loop<'py>(py: Python<'py>, runtime: Runtime) -> PyResult<Bound<'py, PyAny>> {
    runtime.eager(py, after(runtime.sleep(0.001), current_loop))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    add_functions!(
        m,
        eager_sleep,
        eager_never,
        eager_raise_after,
        eager_panic_after,
        eager_current_loop,
    );
    Ok(())
}
