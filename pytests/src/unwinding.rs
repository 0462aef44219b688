//! Rust futures that hold Python awaitables (`into_future`) when they are cancelled: the
//! awaiting task must see its cancellation only after those awaitables have unwound, as
//! with a native `await`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pyo3::prelude::*;

use crate::edges::{block_until_released, reset_busy};
use crate::options_from;
use crate::runtime::Runtime;

/// Rust awaits `awaitable` (into_future, called right here) in a future that lives at
/// `home` ("auto", "runtime" or "loop").
#[pyfunction]
fn await_py_at<'py>(
    py: Python<'py>,
    runtime: Runtime,
    home: &str,
    awaitable: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let future = pyo3_aio::into_future(awaitable)?;
    runtime.convert_with(py, options_from(home, "inline")?, future)
}

/// Rust awaits `first` and `second` (into_future, called right here) at the same time and
/// returns both results, in a future that lives at `home`.
#[pyfunction]
fn await_py_both<'py>(
    py: Python<'py>,
    runtime: Runtime,
    home: &str,
    first: Bound<'py, PyAny>,
    second: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut first = Some(pyo3_aio::into_future(first)?);
    let mut second = Some(pyo3_aio::into_future(second)?);
    let mut results: [Option<Py<PyAny>>; 2] = [None, None];
    let both = std::future::poll_fn(move |cx| {
        for (index, future) in [&mut first, &mut second].into_iter().enumerate() {
            if let Some(pending) = future.as_mut()
                && let Poll::Ready(result) = Pin::new(pending).poll(cx)
            {
                results[index] = Some(result?);
                *future = None;
            }
        }
        match std::mem::take(&mut results) {
            [Some(a), Some(b)] => Poll::Ready(Ok((a, b))),
            unfinished => {
                results = unfinished;
                Poll::Pending
            }
        }
    });
    runtime.convert_with(py, options_from(home, "inline")?, both)
}

/// Rust awaits `awaitable` (into_future, called right here) for at most `seconds` on the
/// runtime's timer; then it gives up with `PyFuture::cancel`, which returns once the
/// awaitable's task has finished, and returns None.
#[pyfunction]
fn await_py_or_cancel<'py>(
    py: Python<'py>,
    runtime: Runtime,
    seconds: f64,
    awaitable: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut future = pyo3_aio::into_future(awaitable)?;
    runtime.convert(py, async move {
        let mut timer = runtime.delay(seconds);
        let first = std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = Pin::new(&mut future).poll(cx) {
                return Poll::Ready(Some(result));
            }
            timer.as_mut().poll(cx).map(|()| None)
        })
        .await;
        match first {
            Some(result) => result.map(Some),
            None => {
                future.cancel().await;
                Ok(None)
            }
        }
    })
}

/// Rust awaits `awaitable` (into_future, called right here) on the runtime; once it is
/// pending there, the future's next poll on a runtime thread blocks (`busy_polling()` is
/// true) until `release_busy()`. A cancel meanwhile finds the future being polled: it
/// is dropped when that poll returns.
#[pyfunction]
fn await_py_busy<'py>(
    py: Python<'py>,
    runtime: Runtime,
    awaitable: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    reset_busy();
    let mut future = pyo3_aio::into_future(awaitable)?;
    let mut blocked = false;
    let busy = std::future::poll_fn(move |cx: &mut Context<'_>| {
        if let Poll::Ready(result) = Pin::new(&mut future).poll(cx) {
            return Poll::Ready(result);
        }
        // SAFETY: a plain query of this thread's state, allowed with or without the GIL.
        let on_the_loop_thread = unsafe { pyo3::ffi::PyGILState_Check() } == 1;
        if on_the_loop_thread || blocked {
            // The first poll is inline; the runtime polls it once more when it is spawned.
            return Poll::Pending;
        }
        blocked = true;
        block_until_released();
        Poll::Pending
    });
    runtime.convert_with(py, options_from("runtime", "inline")?, busy)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    add_functions!(
        m,
        await_py_at,
        await_py_both,
        await_py_busy,
        await_py_or_cancel
    );
    Ok(())
}
