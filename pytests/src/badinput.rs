//! Entry points for the bad-input tests (`test_bad_input.py`) and the Python-side fuzz
//! harness (`fuzz/fuzz_bridge.py`): the bridge APIs that take Python objects the rest of
//! the module does not expose (explicit `TaskLocals`, `get_current_loop` and
//! `get_current_locals` called synchronously, `run_until_complete` and
//! `run_with_loop_factory` on a loop or factory given from Python).

use pyo3::prelude::*;
use pyo3::types::PyTuple;
use pyo3_aio::TaskLocals;

use crate::Runtime;

/// `TaskLocals::new(event_loop)` (with `context` when given), then Rust awaits `awaitable`
/// through `into_future_with_locals`.
#[pyfunction]
#[pyo3(signature = (runtime, event_loop, awaitable, context = None))]
fn await_py_with_locals<'py>(
    py: Python<'py>,
    runtime: Runtime,
    event_loop: Bound<'py, PyAny>,
    awaitable: Bound<'py, PyAny>,
    context: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut locals = TaskLocals::new(event_loop);
    if let Some(context) = context {
        locals = locals.with_context(context);
    }
    let future = pyo3_aio::into_future_with_locals(&locals, awaitable)?;
    runtime.convert(py, future)
}

/// `pyo3_aio::get_current_loop`, called synchronously.
#[pyfunction]
fn current_loop_now(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    pyo3_aio::get_current_loop(py)
}

/// `pyo3_aio::get_current_locals`, called synchronously: `(event_loop, context)`.
#[pyfunction]
fn current_locals_now(py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
    let locals = pyo3_aio::get_current_locals(py)?;
    PyTuple::new(
        py,
        [
            locals.event_loop(py),
            locals
                .context(py)
                .unwrap_or_else(|| py.None().into_bound(py)),
        ],
    )
}

/// `run_until_complete(event_loop, future returning value)` on `runtime`.
#[pyfunction]
fn run_until_complete_on(
    runtime: Runtime,
    event_loop: Bound<'_, PyAny>,
    value: Py<PyAny>,
) -> PyResult<Py<PyAny>> {
    runtime.run_until_complete(event_loop, async move { Ok(value) })
}

/// `run_with_loop_factory(factory, future returning value)` on `runtime`, with the
/// factory a Python callable.
#[pyfunction]
fn run_with_factory(
    py: Python<'_>,
    runtime: Runtime,
    factory: Bound<'_, PyAny>,
    value: Py<PyAny>,
) -> PyResult<Py<PyAny>> {
    let make = move |_py: Python<'_>| factory.call0();
    runtime.run_with_loop_factory(py, make, async move { Ok(value) })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    add_functions!(
        m,
        await_py_with_locals,
        current_loop_now,
        current_locals_now,
        run_until_complete_on,
        run_with_factory,
    );
    Ok(())
}
