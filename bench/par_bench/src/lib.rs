//! `par_bench`: the protocol `bench/driver.py` measures, on pyo3-async-runtimes (the
//! newest on crates.io), for comparison with `pyo3_aio_bench`.
//!
//! Same function names and arguments as `bench/pyo3_aio_bench` (scenario 1's
//! `ready_<runtime>(v)` for its two runtimes). pyo3-async-runtimes has no Rust stream ->
//! Python async iterator conversion (`STREAM = False`) and no choice of where a pending
//! future lives (`HOMES = ("default",)`: it always spawns on the runtime);
//! Python async iterator -> Rust stream is its `unstable-streams` `into_stream_v2`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use pyo3::exceptions::{PyNotImplementedError, PyValueError};
use pyo3::prelude::*;

const RUNTIMES: [&str; 2] = ["tokio", "async-std"];

fn unknown_runtime(name: &str) -> PyErr {
    PyValueError::new_err(format!(
        "unknown runtime '{name}': expected one of {RUNTIMES:?}"
    ))
}

fn check_home(home: &str) -> PyResult<()> {
    match home {
        "default" => Ok(()),
        other => Err(PyNotImplementedError::new_err(format!(
            "pyo3-async-runtimes has no home '{other}': its futures always run on the runtime"
        ))),
    }
}

/// `future_into_py` on the named runtime.
fn convert<'py, F, T>(py: Python<'py>, runtime: &str, future: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    match runtime {
        "tokio" => pyo3_async_runtimes::tokio::future_into_py(py, future),
        "async-std" => pyo3_async_runtimes::async_std::future_into_py(py, future),
        other => Err(unknown_runtime(other)),
    }
}

/// A Python awaitable's Rust future, whichever runtime made it.
type PyFuture = Pin<Box<dyn Future<Output = PyResult<Py<PyAny>>> + Send>>;

/// `into_future` of the named runtime (its task locals come from the runtime's task-local
/// scope that `future_into_py` set up).
fn into_future(runtime: &str, awaitable: Bound<'_, PyAny>) -> PyResult<PyFuture> {
    Ok(match runtime {
        "tokio" => Box::pin(pyo3_async_runtimes::tokio::into_future(awaitable)?),
        "async-std" => Box::pin(pyo3_async_runtimes::async_std::into_future(awaitable)?),
        other => return Err(unknown_runtime(other)),
    })
}

/// A future that is pending once (waking itself) and then ready.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// Returns `value` at once on tokio: ready on the first poll (one function per runtime, as
/// in `pyo3_aio_bench`).
#[pyfunction]
fn ready_tokio(py: Python<'_>, value: Py<PyAny>) -> PyResult<Bound<'_, PyAny>> {
    pyo3_async_runtimes::tokio::future_into_py(py, async move { Ok(value) })
}

/// [`ready_tokio`] on async-std.
#[pyfunction]
fn ready_async_std(py: Python<'_>, value: Py<PyAny>) -> PyResult<Bound<'_, PyAny>> {
    pyo3_async_runtimes::async_std::future_into_py(py, async move { Ok(value) })
}

/// Returns `value` after being pending once on the runtime.
#[pyfunction]
fn hop<'py>(py: Python<'py>, runtime: &str, value: Py<PyAny>) -> PyResult<Bound<'py, PyAny>> {
    convert(py, runtime, async move {
        YieldOnce(false).await;
        Ok(value)
    })
}

/// Sleeps `ms` milliseconds on the runtime's own timer.
#[pyfunction]
fn sleep<'py>(py: Python<'py>, runtime: &str, ms: f64) -> PyResult<Bound<'py, PyAny>> {
    let duration = Duration::from_secs_f64(ms / 1000.0);
    match runtime {
        "tokio" => convert(py, runtime, async move {
            tokio::time::sleep(duration).await;
            Ok(())
        }),
        "async-std" => convert(py, runtime, async move {
            async_std::task::sleep(duration).await;
            Ok(())
        }),
        other => Err(unknown_runtime(other)),
    }
}

static DROPPED: AtomicUsize = AtomicUsize::new(0);

/// Counts its own drop in [`dropped`].
struct CountDrop;

impl Drop for CountDrop {
    fn drop(&mut self) {
        // Relaxed: a plain counter, read by the driver, ordering nothing else.
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// A future that never completes; its drop is counted by `dropped()`.
#[pyfunction]
fn never<'py>(py: Python<'py>, runtime: &str) -> PyResult<Bound<'py, PyAny>> {
    let guard = CountDrop;
    convert(py, runtime, async move {
        let _guard = guard;
        std::future::pending::<()>().await;
        Ok(())
    })
}

/// How many `never()` futures were dropped so far.
#[pyfunction]
fn dropped() -> usize {
    DROPPED.load(Ordering::Relaxed)
}

/// Rust awaits `factory()` (through `into_future`) `n` times in a row; returns `n`.
#[pyfunction]
#[pyo3(signature = (runtime, factory, n, home = "default"))]
fn await_many<'py>(
    py: Python<'py>,
    runtime: &str,
    factory: Py<PyAny>,
    n: usize,
    home: &str,
) -> PyResult<Bound<'py, PyAny>> {
    check_home(home)?;
    let name = runtime.to_owned();
    convert(py, runtime, async move {
        for _ in 0..n {
            let future = Python::attach(|py| into_future(&name, factory.bind(py).call0()?))?;
            future.await?;
        }
        Ok(n)
    })
}

/// Not available: pyo3-async-runtimes cannot turn a Rust stream into a Python async
/// iterator.
#[pyfunction]
#[pyo3(signature = (runtime, n, home = "default"))]
fn stream(runtime: &str, n: usize, home: &str) -> PyResult<()> {
    let _ = (runtime, n, home);
    Err(PyNotImplementedError::new_err(
        "pyo3-async-runtimes has no Rust stream -> Python async iterator conversion",
    ))
}

/// Not available, as for `stream`: the protocol's stream whose every item is pending once.
#[pyfunction]
#[pyo3(signature = (runtime, n, home = "default"))]
fn pending_stream(runtime: &str, n: usize, home: &str) -> PyResult<()> {
    stream(runtime, n, home)
}

/// Rust consumes the Python async generator `aiter` (through `into_stream_v2`, feature
/// `unstable-streams`); returns how many items it saw.
#[pyfunction]
#[pyo3(signature = (runtime, aiter, home = "default"))]
fn consume<'py>(
    py: Python<'py>,
    runtime: &str,
    aiter: Bound<'py, PyAny>,
    home: &str,
) -> PyResult<Bound<'py, PyAny>> {
    check_home(home)?;
    let mut items: Pin<Box<dyn Stream<Item = Py<PyAny>> + Send>> = match runtime {
        "tokio" => Box::pin(pyo3_async_runtimes::tokio::into_stream_v2(aiter)?),
        "async-std" => Box::pin(pyo3_async_runtimes::async_std::into_stream_v2(aiter)?),
        other => return Err(unknown_runtime(other)),
    };
    convert(py, runtime, async move {
        let mut count = 0usize;
        while std::future::poll_fn(|cx| items.as_mut().poll_next(cx))
            .await
            .is_some()
        {
            count += 1;
        }
        Ok(count)
    })
}

/// The driver's protocol on pyo3-async-runtimes.
#[pymodule]
fn par_bench(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("NAME", "pyo3-async-runtimes")?;
    m.add("RUNTIMES", RUNTIMES.to_vec())?;
    m.add("HOMES", vec!["default"])?;
    m.add("STREAM", false)?;
    m.add("CONSUME", true)?;
    m.add_function(wrap_pyfunction!(ready_tokio, m)?)?;
    m.add_function(wrap_pyfunction!(ready_async_std, m)?)?;
    m.add_function(wrap_pyfunction!(hop, m)?)?;
    m.add_function(wrap_pyfunction!(sleep, m)?)?;
    m.add_function(wrap_pyfunction!(never, m)?)?;
    m.add_function(wrap_pyfunction!(dropped, m)?)?;
    m.add_function(wrap_pyfunction!(await_many, m)?)?;
    m.add_function(wrap_pyfunction!(stream, m)?)?;
    m.add_function(wrap_pyfunction!(pending_stream, m)?)?;
    m.add_function(wrap_pyfunction!(consume, m)?)?;
    Ok(())
}
