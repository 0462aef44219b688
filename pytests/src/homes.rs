//! Where a pending future lives: `Home::Auto`, the default, decided by the first poll.

use std::future::Future;
use std::task::{Context, Poll};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3_aio::generic::{BoxFuture, SpawnError, Spawner};
use pyo3_aio::{FirstPoll, Home, Options, StreamOptions};

use crate::Runtime;
use crate::into_future::call_into_future;
use crate::poll_fn::{PollFn, counting, yield_now};
use crate::probes::thread_ident;

/// `Options` from the names tests use: `home` is `"auto"`, `"runtime"` or `"loop"`,
/// `first_poll` is `"inline"` or `"deferred"`.
pub(crate) fn options_from(home: &str, first_poll: &str) -> PyResult<Options> {
    let home = match home {
        "auto" => Home::Auto,
        "runtime" => Home::Runtime,
        "loop" => Home::LoopThread,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown home '{other}': expected 'auto', 'runtime' or 'loop'"
            )));
        }
    };
    let first_poll = match first_poll {
        "inline" => FirstPoll::Inline,
        "deferred" => FirstPoll::Deferred,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown first_poll '{other}': expected 'inline' or 'deferred'"
            )));
        }
    };
    Ok(Options::default().home(home).first_poll(first_poll))
}

/// Awaits `factory()` through `into_future`, then sleeps `seconds` on the runtime's timer,
/// and reports the threads it was polled on: `(first poll, after the Python await, after
/// the sleep)`, as `threading.get_ident()` values. `home`/`first_poll` as for
/// `where_polled`.
#[pyfunction]
#[pyo3(signature = (runtime, factory, seconds, home = "auto", first_poll = "inline"))]
fn where_polled_after_python<'py>(
    py: Python<'py>,
    runtime: Runtime,
    factory: Py<PyAny>,
    seconds: f64,
    home: &str,
    first_poll: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let options = options_from(home, first_poll)?;
    let nap = runtime.sleep(seconds);
    runtime.convert_with(py, options, async move {
        let first = thread_ident()?;
        let value = call_into_future(&factory)?.await?;
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
    runtime: Runtime,
    factory: Py<PyAny>,
    home: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let options = options_from(home, "inline")?;
    runtime.convert_with(py, options, async move {
        let mut awaited = std::pin::pin!(call_into_future(&factory)?);
        let mut woke_self = false;
        std::future::poll_fn(|cx| {
            if !woke_self {
                woke_self = true;
                cx.waker().wake_by_ref();
                // Polled for the first time only to register its wait on Python.
                let _ = awaited.as_mut().poll(cx);
                return Poll::Pending;
            }
            awaited.as_mut().poll(cx)
        })
        .await
    })
}

/// A `Send` stream (`stream_into_py_with`) of `n` items, each the `threading.get_ident()`
/// of the thread that polled it for that item. Every `pending_every`-th poll (0: never)
/// first returns Pending and wakes itself, so the stream also goes through the runtime.
#[pyfunction]
#[pyo3(signature = (runtime, n, inline = true, pending_every = 0))]
fn where_stream_polled<'py>(
    py: Python<'py>,
    runtime: Runtime,
    n: u64,
    inline: bool,
    pending_every: u64,
) -> PyResult<Bound<'py, PyAny>> {
    let options = StreamOptions::default().inline(inline);
    let (mut produced, mut polls) = (0, 0u64);
    let stream = PollFn(move |cx: &mut Context<'_>| {
        if produced == n {
            return Poll::Ready(None);
        }
        polls += 1;
        if pending_every > 0 && polls % pending_every == 0 {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        produced += 1;
        Poll::Ready(Some(thread_ident()))
    });
    runtime.stream_into_py(py, Some(options), stream)
}

/// A runtime that takes every future and never runs it (until `release_parked`).
#[derive(Clone, Copy)]
struct Parked;

static PARKED: std::sync::Mutex<Vec<BoxFuture>> = std::sync::Mutex::new(Vec::new());

impl Spawner for Parked {
    fn spawn(&self, future: BoxFuture) -> Result<(), SpawnError> {
        PARKED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(future);
        Ok(())
    }

    fn name(&self) -> &'static str {
        "parked"
    }
}

/// The integers `0..n` as a `Send` stream on a runtime that never runs its pump: only
/// `__anext__`'s own polls on the loop thread can produce them.
#[pyfunction]
fn parked_stream(py: Python<'_>, n: u64) -> PyResult<Bound<'_, PyAny>> {
    pyo3_aio::generic::stream_into_py(py, Parked, counting(n))
}

/// Drops the futures `Parked` took; returns how many.
#[pyfunction]
fn release_parked() -> usize {
    let parked = std::mem::take(&mut *PARKED.lock().unwrap_or_else(|e| e.into_inner()));
    parked.len()
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    add_functions!(
        m,
        parked_stream,
        release_parked,
        where_stream_polled,
        where_polled_after_python,
        python_and_self_wake,
    );
    Ok(())
}
