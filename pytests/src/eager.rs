//! The eager variant (`future_into_py_eager`): started at once, returns an `asyncio.Future`
//! (under trio, a coroutine awaiting the started future). The futures are those of
//! `futures.rs`, handed over the eager way.

use pyo3::prelude::*;

use crate::Runtime;
use crate::futures::{panicking, raising};
use crate::poll_fn::after;
use crate::probes::{context_var, current_loop, never_counted};

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

/// Eager: returns `value` at once (ready on the inline poll under trio).
#[pyfunction]
fn eager_ready<'py>(
    py: Python<'py>,
    runtime: Runtime,
    value: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    runtime.eager(py, async move { Ok(value) })
}

/// Eager: returns `var`'s value in the context of `get_current_locals()` seen from inside
/// the future after `seconds` (0: on its first poll).
#[pyfunction]
fn eager_context_var_after<'py>(
    py: Python<'py>,
    runtime: Runtime,
    seconds: f64,
    var: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    runtime.eager(py, after(runtime.delay(seconds), move || context_var(&var)))
}

/// Eager: calls `callback()` (taking the GIL) when it finishes after `seconds`, then
/// returns None: shows that it ran to its end.
#[pyfunction]
fn eager_call_after<'py>(
    py: Python<'py>,
    runtime: Runtime,
    seconds: f64,
    callback: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let call = move || Python::attach(|py| callback.call0(py).map(drop));
    runtime.eager(py, after(runtime.sleep(seconds), call))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    add_functions!(
        m,
        eager_sleep,
        eager_never,
        eager_raise_after,
        eager_panic_after,
        eager_current_loop,
        eager_ready,
        eager_context_var_after,
        eager_call_after,
    );
    Ok(())
}
