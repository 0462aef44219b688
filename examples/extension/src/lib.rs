//! `rust_sleep_example`: the extension-module examples of pyo3-asyncio's README, on pyo3-aio.
//!
//! Built with maturin (`maturin develop --release` in this directory, or
//! `cargo xtask demo` from the workspace root), it is imported from Python as
//! `rust_sleep_example`:
//!
//! - `rust_sleep`, `rust_sleep_async_std` and `rust_sleep_smol`: the README's
//!   `rust_sleep`, on tokio, async-std and smol. Each returns a coroutine, so
//!   `asyncio.run(rust_sleep())` works directly, without the `async def main()` wrapper
//!   that pyo3-asyncio needs.
//! - `call_python_later`: Rust awaiting a Python coroutine, through
//!   [`pyo3_aio::into_future`].
//! - `rust_panic` and the `RustPanic` exception class: a panicking Rust future raises an
//!   exception in Python instead of aborting the interpreter.
//!
//! ```python
//! import asyncio
//! from rust_sleep_example import rust_sleep
//!
//! async def main():
//!     await rust_sleep()
//!
//! asyncio.run(main())        # sleeps for 1s, as in pyo3-asyncio's README
//! asyncio.run(rust_sleep())  # also fine here; pyo3-asyncio raises "no running event loop"
//! ```
//!
//! `demo.py` next to this crate runs all of it, on asyncio's default loop and on uvloop.

use std::time::Duration;

use pyo3::prelude::*;

/// Sleeps for `seconds` (default 1) on tokio.
///
/// Returns a coroutine that resolves to `None`. The sleep starts when the coroutine is
/// first awaited, not when `rust_sleep` is called.
///
/// ```python
/// await rust_sleep(0.5)
/// ```
#[pyfunction]
#[pyo3(signature = (seconds = 1.0))]
fn rust_sleep(py: Python<'_>, seconds: f64) -> PyResult<Bound<'_, PyAny>> {
    let duration = duration_from(seconds)?;
    pyo3_aio::tokio::future_into_py(py, async move {
        tokio::time::sleep(duration).await;
        Ok(())
    })
}

/// Sleeps for `seconds` (default 1) on async-std; otherwise as `rust_sleep`.
#[pyfunction]
#[pyo3(signature = (seconds = 1.0))]
fn rust_sleep_async_std(py: Python<'_>, seconds: f64) -> PyResult<Bound<'_, PyAny>> {
    let duration = duration_from(seconds)?;
    pyo3_aio::async_std::future_into_py(py, async move {
        async_std::task::sleep(duration).await;
        Ok(())
    })
}

/// Sleeps for `seconds` (default 1) on smol; otherwise as `rust_sleep`.
#[pyfunction]
#[pyo3(signature = (seconds = 1.0))]
fn rust_sleep_smol(py: Python<'_>, seconds: f64) -> PyResult<Bound<'_, PyAny>> {
    let duration = duration_from(seconds)?;
    pyo3_aio::smol::future_into_py(py, async move {
        smol::Timer::after(duration).await;
        Ok(())
    })
}

/// Sleeps for `delay` seconds on tokio, then awaits the Python awaitable `coro` from Rust
/// and returns its result.
///
/// The awaitable is converted with `pyo3_aio::into_future` on a tokio worker thread, after
/// the sleep: it still runs on the event loop that awaits `call_python_later`, in that
/// task's `contextvars` context. Its exception, if it raises one, reaches the caller
/// unchanged.
///
/// ```python
/// async def py_double(x):
///     await asyncio.sleep(0.1)
///     return 2 * x
///
/// assert await call_python_later(py_double(21)) == 42
/// ```
#[pyfunction]
#[pyo3(signature = (coro, delay = 0.0))]
fn call_python_later(py: Python<'_>, coro: Py<PyAny>, delay: f64) -> PyResult<Bound<'_, PyAny>> {
    let delay = duration_from(delay)?;
    pyo3_aio::tokio::future_into_py(py, async move {
        tokio::time::sleep(delay).await;
        let future = Python::attach(|py| pyo3_aio::into_future(coro.into_bound(py)))?;
        future.await
    })
}

/// Panics with `message` after `seconds` (default 0) on tokio: the awaiting Python code sees
/// a `RustPanic` exception carrying the message, and the event loop carries on.
///
/// ```python
/// try:
///     await rust_panic("boom")
/// except RustPanic as error:
///     assert str(error) == "boom"
/// ```
#[pyfunction]
#[pyo3(signature = (message, seconds = 0.0))]
fn rust_panic(py: Python<'_>, message: String, seconds: f64) -> PyResult<Bound<'_, PyAny>> {
    let duration = duration_from(seconds)?;
    pyo3_aio::tokio::future_into_py::<_, ()>(py, async move {
        tokio::time::sleep(duration).await;
        panic!("{message}")
    })
}

/// `seconds` as a `Duration`, or `ValueError` for a negative, infinite or NaN number.
fn duration_from(seconds: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        pyo3::exceptions::PyValueError::new_err(format!(
            "expected a finite, non-negative number of seconds, got {seconds}"
        ))
    })
}

/// The `rust_sleep_example` Python module.
#[pymodule]
fn rust_sleep_example(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rust_sleep, m)?)?;
    m.add_function(wrap_pyfunction!(rust_sleep_async_std, m)?)?;
    m.add_function(wrap_pyfunction!(rust_sleep_smol, m)?)?;
    m.add_function(wrap_pyfunction!(call_python_later, m)?)?;
    m.add_function(wrap_pyfunction!(rust_panic, m)?)?;
    m.add("RustPanic", m.py().get_type::<pyo3_aio::RustPanic>())?;
    Ok(())
}
