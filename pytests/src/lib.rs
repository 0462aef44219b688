//! The extension module the pytest suite imports: every bridge feature, on every runtime.
//!
//! Functions take the runtime's name (`"tokio"`, `"async-std"`, `"smol"`) so each test runs
//! unchanged on all three.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

fn sleep_on(runtime: &str, seconds: f64) -> PyResult<BoxFuture<()>> {
    let duration = Duration::from_secs_f64(seconds);
    Ok(match runtime {
        "tokio" => Box::pin(async move { tokio::time::sleep(duration).await }),
        "async-std" => Box::pin(async_std::task::sleep(duration)),
        "smol" => Box::pin(async move {
            smol::Timer::after(duration).await;
        }),
        other => return Err(unknown_runtime(other)),
    })
}

fn unknown_runtime(name: &str) -> PyErr {
    PyValueError::new_err(format!(
        "unknown runtime '{name}': expected 'tokio', 'async-std' or 'smol'"
    ))
}

fn convert<'py, F, T>(py: Python<'py>, runtime: &str, future: F) -> PyResult<Bound<'py, PyAny>>
where
    F: std::future::Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    match runtime {
        "tokio" => pyo3_aio::tokio::future_into_py(py, future),
        "async-std" => pyo3_aio::async_std::future_into_py(py, future),
        "smol" => pyo3_aio::smol::future_into_py(py, future),
        other => Err(unknown_runtime(other)),
    }
}

/// Sleeps on the runtime's timer, then returns `value`.
#[pyfunction]
fn sleep<'py>(
    py: Python<'py>,
    runtime: &str,
    seconds: f64,
    value: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let nap = sleep_on(runtime, seconds)?;
    convert(py, runtime, async move {
        nap.await;
        Ok(value)
    })
}

/// Returns `value` at once (ready on the inline first poll).
#[pyfunction]
fn ready<'py>(py: Python<'py>, runtime: &str, value: Py<PyAny>) -> PyResult<Bound<'py, PyAny>> {
    convert(py, runtime, async move { Ok(value) })
}

/// Raises `error` (an exception instance) after `seconds`.
#[pyfunction]
fn raise_after<'py>(
    py: Python<'py>,
    runtime: &str,
    seconds: f64,
    error: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let nap = sleep_on(runtime, seconds)?;
    convert(py, runtime, async move {
        nap.await;
        Err::<(), _>(Python::attach(|py| PyErr::from_value(error.into_bound(py))))
    })
}

/// Panics with `message` after `seconds` (0 panics on the inline first poll).
#[pyfunction]
fn panic_after<'py>(
    py: Python<'py>,
    runtime: &str,
    seconds: f64,
    message: String,
) -> PyResult<Bound<'py, PyAny>> {
    let nap = sleep_on(runtime, seconds)?;
    convert(py, runtime, async move {
        if seconds > 0.0 {
            nap.await;
        }
        if !message.is_empty() {
            panic!("{message}");
        }
        Ok(())
    })
}

static DROPPED: AtomicUsize = AtomicUsize::new(0);

struct CountDrop;

impl Drop for CountDrop {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

/// A future that never completes; counts its drop in `dropped()`.
#[pyfunction]
fn never<'py>(py: Python<'py>, runtime: &str) -> PyResult<Bound<'py, PyAny>> {
    convert(py, runtime, async move {
        let _guard = CountDrop;
        std::future::pending::<()>().await;
        Ok(())
    })
}

/// How many futures created by `never` (or `sleep_counted`) were dropped so far.
#[pyfunction]
fn dropped() -> usize {
    DROPPED.load(Ordering::SeqCst)
}

/// Rust awaits the Python awaitable and returns its result.
#[pyfunction]
fn await_py<'py>(
    py: Python<'py>,
    runtime: &str,
    awaitable: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let future = pyo3_aio::into_future(awaitable)?;
    convert(py, runtime, future)
}

/// Rust calls into_future from a spawned tokio task (no scope) and awaits it.
#[pyfunction]
fn await_py_from_spawned<'py>(
    py: Python<'py>,
    awaitable: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    pyo3_aio::tokio::future_into_py(py, async move {
        let outcome = pyo3_aio::tokio::get_runtime()
            .spawn(async move {
                let future = Python::attach(|py| pyo3_aio::into_future(awaitable.into_bound(py)))?;
                future.await
            })
            .await;
        outcome.map_err(|error| PyValueError::new_err(error.to_string()))?
    })
}

/// A `!Send` future: sleeps on tokio holding an `Rc`, then returns `value`.
#[pyfunction]
fn local_sleep<'py>(
    py: Python<'py>,
    seconds: f64,
    value: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let shared = std::rc::Rc::new(value);
    pyo3_aio::tokio::local_future_into_py(py, async move {
        let handle = pyo3_aio::tokio::get_runtime().handle().clone();
        let _guard = handle.enter();
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        Ok(Python::attach(|py| shared.clone_ref(py)))
    })
}

/// Starts at once; returns an asyncio.Future.
#[pyfunction]
fn eager_sleep<'py>(
    py: Python<'py>,
    runtime: &str,
    seconds: f64,
    value: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let nap = sleep_on(runtime, seconds)?;
    let future = async move {
        nap.await;
        Ok(value)
    };
    match runtime {
        "tokio" => pyo3_aio::tokio::future_into_py_eager(py, future),
        "async-std" => pyo3_aio::async_std::future_into_py_eager(py, future),
        "smol" => pyo3_aio::smol::future_into_py_eager(py, future),
        other => Err(unknown_runtime(other)),
    }
}

/// Returns the event loop seen from inside the Rust future, after a sleep (so on the
/// runtime's thread).
#[pyfunction]
fn current_loop<'py>(py: Python<'py>, runtime: &str) -> PyResult<Bound<'py, PyAny>> {
    let nap = sleep_on(runtime, 0.001)?;
    convert(py, runtime, async move {
        nap.await;
        Python::attach(|py| pyo3_aio::get_current_loop(py).map(Bound::unbind))
    })
}

/// Awaits each awaitable in turn from Rust, `count` times calling `factory()`.
#[pyfunction]
fn await_many<'py>(
    py: Python<'py>,
    runtime: &str,
    factory: Py<PyAny>,
    count: usize,
) -> PyResult<Bound<'py, PyAny>> {
    convert(py, runtime, async move {
        let mut results = Vec::with_capacity(count);
        for _ in 0..count {
            let future = Python::attach(|py| pyo3_aio::into_future(factory.bind(py).call0()?))?;
            results.push(future.await?);
        }
        Ok(results)
    })
}

/// Calls into_future synchronously (to check its errors).
#[pyfunction]
fn into_future_now(awaitable: Bound<'_, PyAny>) -> PyResult<()> {
    pyo3_aio::into_future(awaitable).map(drop)
}

#[pymodule]
fn pyo3_aio_tests(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sleep, m)?)?;
    m.add_function(wrap_pyfunction!(ready, m)?)?;
    m.add_function(wrap_pyfunction!(raise_after, m)?)?;
    m.add_function(wrap_pyfunction!(panic_after, m)?)?;
    m.add_function(wrap_pyfunction!(never, m)?)?;
    m.add_function(wrap_pyfunction!(dropped, m)?)?;
    m.add_function(wrap_pyfunction!(await_py, m)?)?;
    m.add_function(wrap_pyfunction!(await_py_from_spawned, m)?)?;
    m.add_function(wrap_pyfunction!(local_sleep, m)?)?;
    m.add_function(wrap_pyfunction!(eager_sleep, m)?)?;
    m.add_function(wrap_pyfunction!(current_loop, m)?)?;
    m.add_function(wrap_pyfunction!(await_many, m)?)?;
    m.add_function(wrap_pyfunction!(into_future_now, m)?)?;
    m.add("RustPanic", m.py().get_type::<pyo3_aio::RustPanic>())?;
    m.add("RUNTIMES", ("tokio", "async-std", "smol"))?;
    Ok(())
}
