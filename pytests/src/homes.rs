//! Where a pending future lives: `Home::Auto`, the default, decided by the first poll.

use std::future::Future;

use pyo3::prelude::*;

use crate::{convert_with, options_from, sleep_on, thread_ident, yield_now};

/// Awaits `factory()` through `into_future`, then sleeps `seconds` on the runtime's timer,
/// and reports the threads it was polled on: `(first poll, after the Python await, after
/// the sleep)`, as `threading.get_ident()` values. `home`/`first_poll` as for
/// `where_polled`.
#[pyfunction]
#[pyo3(signature = (runtime, factory, seconds, home = "auto", first_poll = "inline"))]
fn where_polled_after_python<'py>(
    py: Python<'py>,
    runtime: &str,
    factory: Py<PyAny>,
    seconds: f64,
    home: &str,
    first_poll: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let options = options_from(home, first_poll)?;
    let nap = sleep_on(runtime, seconds)?;
    convert_with(py, runtime, options, async move {
        let first = thread_ident()?;
        let awaited = Python::attach(|py| pyo3_aio::into_future(factory.bind(py).call0()?))?;
        let value = awaited.await?;
        let after_python = thread_ident()?;
        yield_now().await;
        nap.await;
        let after_sleep = thread_ident()?;
        Ok((first, after_python, after_sleep, value))
    })
}

/// Waits for `factory()` (through `into_future`) and for a wake the future gives itself on
/// its first poll, both at once: with `Home::Auto` that wake arrives before the future has
/// settled on the loop thread, and must still reach it. Returns the Python result.
#[pyfunction]
#[pyo3(signature = (runtime, factory, home = "auto"))]
fn python_and_self_wake<'py>(
    py: Python<'py>,
    runtime: &str,
    factory: Py<PyAny>,
    home: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let options = options_from(home, "inline")?;
    convert_with(py, runtime, options, async move {
        let awaited = Python::attach(|py| pyo3_aio::into_future(factory.bind(py).call0()?))?;
        let mut awaited = std::pin::pin!(awaited);
        let mut woke_self = false;
        std::future::poll_fn(|cx| {
            if !woke_self {
                woke_self = true;
                cx.waker().wake_by_ref();
                // Polled for the first time only to register its wait on Python.
                let _ = awaited.as_mut().poll(cx);
                return std::task::Poll::Pending;
            }
            awaited.as_mut().poll(cx)
        })
        .await
    })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(where_polled_after_python, m)?)?;
    m.add_function(wrap_pyfunction!(python_and_self_wake, m)?)?;
    Ok(())
}
