//! Rust futures awaited from Python (`future_into_py`, `future_into_py_with`): values,
//! errors, panics, drops, and what the future sees from inside.

use std::collections::HashMap;
use std::future::Future;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::homes::options_from;
use crate::poll_fn::{after, yield_now};
use crate::probes::{CountDrop, context_var, current_loop, never_counted, thread_ident};
use crate::runtime::{BoxFuture, Runtime};

/// After `nap`, raises `error` (an exception instance).
pub(crate) fn raising(
    nap: BoxFuture<()>,
    error: Py<PyAny>,
) -> impl Future<Output = PyResult<()>> + Send + 'static {
    after(nap, move || {
        Err(Python::attach(|py| PyErr::from_value(error.into_bound(py))))
    })
}

/// After `nap`, panics with `message` (an empty one: returns instead).
pub(crate) fn panicking(
    nap: BoxFuture<()>,
    message: String,
) -> impl Future<Output = PyResult<()>> + Send + 'static {
    after(nap, move || {
        if !message.is_empty() {
            panic!("{message}");
        }
        Ok(())
    })
}

/// Sleeps on the runtime's timer, then returns `value`.
#[pyfunction]
fn sleep<'py>(
    py: Python<'py>,
    runtime: Runtime,
    seconds: f64,
    value: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    runtime.convert(
        py,
        named_here!(after(runtime.sleep(seconds), move || Ok(value))),
    )
}

/// Like `sleep`, but counts the future's drop in `dropped()` whether it completes or is
/// cancelled.
#[pyfunction]
fn sleep_counted<'py>(
    py: Python<'py>,
    runtime: Runtime,
    seconds: f64,
    value: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let guard = CountDrop;
    let returning = move || {
        drop(guard);
        Ok(value)
    };
    runtime.convert(py, named_here!(after(runtime.sleep(seconds), returning)))
}

/// Returns `value` at once (ready on the inline first poll).
#[pyfunction]
fn ready<'py>(py: Python<'py>, runtime: Runtime, value: Py<PyAny>) -> PyResult<Bound<'py, PyAny>> {
    runtime.convert(py, async move { Ok(value) })
}

/// A Rust future returning `()` after `seconds` (0: ready on the inline first poll).
#[pyfunction]
fn unit_after<'py>(py: Python<'py>, runtime: Runtime, seconds: f64) -> PyResult<Bound<'py, PyAny>> {
    runtime.convert(py, named_here!(after(runtime.delay(seconds), || Ok(()))))
}

/// Raises `error` (an exception instance) after `seconds`.
#[pyfunction]
fn raise_after<'py>(
    py: Python<'py>,
    runtime: Runtime,
    seconds: f64,
    error: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    runtime.convert(py, named_here!(raising(runtime.sleep(seconds), error)))
}

/// Fails after `seconds` with a `ValueError(message)` created in Rust, on the runtime's
/// thread, without the GIL (0 fails on the inline first poll).
#[pyfunction]
fn fail_after<'py>(
    py: Python<'py>,
    runtime: Runtime,
    seconds: f64,
    message: String,
) -> PyResult<Bound<'py, PyAny>> {
    let failing = move || Err::<(), _>(PyValueError::new_err(message));
    runtime.convert(py, named_here!(after(runtime.delay(seconds), failing)))
}

/// Panics with `message` after `seconds` (0 panics on the inline first poll).
#[pyfunction]
fn panic_after<'py>(
    py: Python<'py>,
    runtime: Runtime,
    seconds: f64,
    message: String,
) -> PyResult<Bound<'py, PyAny>> {
    runtime.convert(py, named_here!(panicking(runtime.delay(seconds), message)))
}

/// Panics with a non-string payload (`panic_any(42)`) after `seconds`.
#[pyfunction]
fn panic_any_after<'py>(
    py: Python<'py>,
    runtime: Runtime,
    seconds: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let panicking = || -> PyResult<()> { std::panic::panic_any(42_u32) };
    runtime.convert(py, named_here!(after(runtime.delay(seconds), panicking)))
}

/// A future that never completes; counts its drop in `dropped()`.
#[pyfunction]
fn never<'py>(py: Python<'py>, runtime: Runtime) -> PyResult<Bound<'py, PyAny>> {
    runtime.convert(py, named_here!(never_counted()))
}

/// Returns, after `seconds` (0: on the inline first poll), the arguments, extracted into Rust
/// types and converted back on the way out (so both directions of conversion run).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn typed_values<'py>(
    py: Python<'py>,
    runtime: Runtime,
    seconds: f64,
    integer: i64,
    big: u64,
    float: f64,
    flag: bool,
    text: String,
    data: Vec<u8>,
    numbers: Vec<i64>,
    mapping: HashMap<String, i64>,
    maybe: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let values = (
        integer, big, float, flag, text, data, numbers, mapping, maybe,
    );
    runtime.convert(
        py,
        named_here!(after(runtime.delay(seconds), move || Ok(values))),
    )
}

/// Returns the event loop seen from inside the Rust future, after a sleep (so on the
/// runtime's thread).
#[pyfunction]
#[pyo3(name = "current_loop")]
fn current_loop_after_sleep<'py>(py: Python<'py>, runtime: Runtime) -> PyResult<Bound<'py, PyAny>> {
    runtime.convert(py, named_here!(after(runtime.sleep(0.001), current_loop)))
}

/// Returns the event loop seen from inside the Rust future after sleeping `seconds`
/// (0: on the inline first poll).
#[pyfunction]
fn current_loop_after<'py>(
    py: Python<'py>,
    runtime: Runtime,
    seconds: f64,
) -> PyResult<Bound<'py, PyAny>> {
    runtime.convert(py, named_here!(after(runtime.delay(seconds), current_loop)))
}

/// Returns `var`'s value in the context of `get_current_locals()` seen from inside the Rust
/// future after sleeping `seconds` (None when unset there).
#[pyfunction]
fn context_var_after<'py>(
    py: Python<'py>,
    runtime: Runtime,
    seconds: f64,
    var: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let lookup = move || context_var(&var);
    runtime.convert(py, named_here!(after(runtime.delay(seconds), lookup)))
}

/// Reports where the future was polled: `(thread of the first poll, thread after sleeping
/// `seconds`)`, as `threading.get_ident()` values. `home` is `"runtime"` or `"loop"`,
/// `first_poll` is `"inline"` or `"deferred"` (`future_into_py_with` options).
#[pyfunction]
#[pyo3(signature = (runtime, seconds, home = "runtime", first_poll = "inline"))]
fn where_polled<'py>(
    py: Python<'py>,
    runtime: Runtime,
    seconds: f64,
    home: &str,
    first_poll: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let options = options_from(home, first_poll)?;
    let nap = runtime.sleep(seconds);
    runtime.convert_with(py, options, async move {
        let first = thread_ident()?;
        if seconds > 0.0 {
            // Pending at least once, whatever the timer does: the first poll's thread and
            // the later one are then always two different polls.
            yield_now().await;
            nap.await;
        }
        let after = thread_ident()?;
        Ok((first, after))
    })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    add_functions!(
        m,
        sleep,
        sleep_counted,
        ready,
        unit_after,
        raise_after,
        fail_after,
        panic_after,
        panic_any_after,
        never,
        typed_values,
        current_loop_after_sleep,
        current_loop_after,
        context_var_after,
        where_polled,
    );
    Ok(())
}
