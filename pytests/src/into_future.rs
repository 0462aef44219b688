//! Python awaitables awaited from Rust (`into_future`): from the loop thread, the runtime's
//! threads, tasks of the runtime's own, plain threads, with a timeout, in a scope.

use std::sync::Mutex;
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3_aio::PyFuture;

use crate::poll_fn::before_timer;
use crate::runtime::{BoxFuture, Runtime};

/// Calls `factory()` and converts the awaitable it returns (`into_future`), taking the GIL.
pub(crate) fn call_into_future(factory: &Py<PyAny>) -> PyResult<PyFuture> {
    Python::attach(|py| pyo3_aio::into_future(factory.bind(py).call0()?))
}

/// Converts `awaitable` (`into_future`, taking the GIL) and awaits it.
async fn await_object(awaitable: Py<PyAny>) -> PyResult<Py<PyAny>> {
    let future = Python::attach(|py| pyo3_aio::into_future(awaitable.into_bound(py)))?;
    future.await
}

/// Calls `factory()` `count` times in a row, awaiting each awaitable (`into_future`) and
/// handing its result to `each`.
pub(crate) async fn await_calls(
    factory: &Py<PyAny>,
    count: usize,
    mut each: impl FnMut(Py<PyAny>),
) -> PyResult<()> {
    for _ in 0..count {
        each(call_into_future(factory)?.await?);
    }
    Ok(())
}

/// After `nap`, calls `factory()` and awaits the awaitable it returns.
async fn call_after(nap: BoxFuture<()>, factory: Py<PyAny>) -> PyResult<Py<PyAny>> {
    nap.await;
    call_into_future(&factory)?.await
}

/// Rust awaits the Python awaitable and returns its result.
#[pyfunction]
fn await_py<'py>(
    py: Python<'py>,
    runtime: Runtime,
    awaitable: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let future = pyo3_aio::into_future(awaitable)?;
    runtime.convert(py, future)
}

/// Calls into_future synchronously (to check its errors).
#[pyfunction]
fn into_future_now(awaitable: Bound<'_, PyAny>) -> PyResult<()> {
    pyo3_aio::into_future(awaitable).map(drop)
}

/// Awaits each awaitable in turn from Rust, `count` times calling `factory()`.
#[pyfunction]
fn await_many<'py>(
    py: Python<'py>,
    runtime: Runtime,
    factory: Py<PyAny>,
    count: usize,
) -> PyResult<Bound<'py, PyAny>> {
    runtime.convert(py, async move {
        let mut results = Vec::with_capacity(count);
        await_calls(&factory, count, |value| results.push(value)).await?;
        Ok(results)
    })
}

/// Sleeps `seconds` on the runtime, then calls `factory()` and awaits the awaitable it
/// returns (from the runtime's thread, with the conversion's task locals).
#[pyfunction]
fn await_py_after<'py>(
    py: Python<'py>,
    runtime: Runtime,
    seconds: f64,
    factory: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    runtime.convert(py, named_here!(call_after(runtime.delay(seconds), factory)))
}

/// Rust calls into_future from a spawned tokio task (no scope) and awaits it.
#[pyfunction]
fn await_py_from_spawned<'py>(
    py: Python<'py>,
    awaitable: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    pyo3_aio::tokio::future_into_py(py, async move {
        let outcome = pyo3_aio::tokio::handle()
            .spawn(await_object(awaitable))
            .await;
        outcome.map_err(|error| PyValueError::new_err(error.to_string()))?
    })
}

/// Rust spawns a task of its own on `runtime` (no scope, no task locals) that calls
/// into_future on `awaitable` and awaits it.
#[pyfunction]
fn await_py_from_task<'py>(
    py: Python<'py>,
    runtime: Runtime,
    awaitable: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    runtime.convert(
        py,
        async move { runtime.spawn(await_object(awaitable)).await },
    )
}

/// Like `await_py_from_task`, but the first poll (inline, on the loop thread) releases the
/// GIL for `pause` seconds after spawning the task, as a future doing blocking work inside
/// `py.detach` would: the spawned task then calls into_future while the first poll is
/// still running.
#[pyfunction]
fn await_py_from_task_slow_first_poll<'py>(
    py: Python<'py>,
    runtime: Runtime,
    pause: f64,
    awaitable: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    runtime.convert(py, async move {
        let handle = runtime.spawn(await_object(awaitable));
        Python::attach(|py| py.detach(|| std::thread::sleep(Duration::from_secs_f64(pause))));
        handle.await
    })
}

/// Like `await_py_from_task`, with the spawned task wrapped in
/// `pyo3_aio::scope(locals, ...)` (locals of the awaiting task), as the RuntimeError for
/// several running loops advises.
#[pyfunction]
fn await_py_in_scope<'py>(
    py: Python<'py>,
    runtime: Runtime,
    awaitable: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let locals = pyo3_aio::TaskLocals::with_running_loop(py)?.copy_context(py)?;
    runtime.convert(py, async move {
        let job = pyo3_aio::scope(locals, await_object(awaitable));
        runtime.spawn(job).await
    })
}

/// A plain `std::thread` (started when the coroutine is first awaited) calls into_future
/// on `awaitable` with no scope and blocks on it; the converted future on `runtime` waits
/// for that thread's answer.
#[pyfunction]
fn await_py_from_thread<'py>(
    py: Python<'py>,
    runtime: Runtime,
    awaitable: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    runtime.convert(py, async move {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let _ = sender.send(smol::block_on(await_object(awaitable)));
        });
        receiver
            .await
            .map_err(|_| PyRuntimeError::new_err("the thread vanished"))?
    })
}

/// Called on a running loop that may never have hosted a conversion: a new thread calls
/// `into_future_with_locals` on `awaitable` (so the loop is first registered from that
/// thread), blocks on it, then hands `("ok", value)` or `("error", exception)` to
/// `callback` through `loop.call_soon_threadsafe`.
#[pyfunction]
fn await_py_on_new_thread(
    py: Python<'_>,
    awaitable: Py<PyAny>,
    callback: Py<PyAny>,
) -> PyResult<()> {
    let locals = pyo3_aio::TaskLocals::with_running_loop(py)?.copy_context(py)?;
    std::thread::spawn(move || {
        let future = Python::attach(|py| {
            pyo3_aio::into_future_with_locals(&locals, awaitable.into_bound(py))
        });
        let result = future.map(smol::block_on).and_then(|result| result);
        Python::attach(|py| {
            let outcome = match result {
                Ok(value) => ("ok", value),
                Err(error) => ("error", error.into_value(py).into_any()),
            };
            let event_loop = locals.event_loop(py);
            if let Err(error) = event_loop.call_method1("call_soon_threadsafe", (callback, outcome))
            {
                error.write_unraisable(py, None);
            }
        });
    });
    Ok(())
}

/// Races `into_future(awaitable)` against a `seconds` timer on `runtime`; when the timer
/// wins, the Rust future of the awaitable is dropped. Returns `("done", result)` or
/// `("timeout", None)`.
#[pyfunction]
fn await_py_with_timeout<'py>(
    py: Python<'py>,
    runtime: Runtime,
    seconds: f64,
    awaitable: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let future = pyo3_aio::into_future(awaitable)?;
    let nap = runtime.sleep(seconds);
    runtime.convert(py, async move {
        match before_timer(future, Some(nap)).await {
            Some(result) => Ok(("done", Some(result?))),
            None => Ok(("timeout", None)),
        }
    })
}

static RECORDED: Mutex<Option<String>> = Mutex::new(None);

/// Like `await_py_after`, but the outcome is recorded for `recorded()` (as `"ok: repr"` or
/// `"error: ExceptionType: message"`) instead of returned: for loops that close meanwhile.
#[pyfunction]
fn record_await_py_after<'py>(
    py: Python<'py>,
    runtime: Runtime,
    seconds: f64,
    factory: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let call = call_after(runtime.delay(seconds), factory);
    runtime.convert(py, async move {
        let result = call.await;
        let text = Python::attach(|py| match &result {
            Ok(value) => format!("ok: {}", value.bind(py)),
            Err(error) => format!("error: {error}"),
        });
        *RECORDED.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
        Ok(())
    })
}

/// What the last `record_await_py_after` recorded (None before any).
#[pyfunction]
fn recorded() -> Option<String> {
    RECORDED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    add_functions!(
        m,
        await_py,
        into_future_now,
        await_many,
        await_py_after,
        await_py_from_spawned,
        await_py_from_task,
        await_py_from_task_slow_first_poll,
        await_py_in_scope,
        await_py_from_thread,
        await_py_on_new_thread,
        await_py_with_timeout,
        record_await_py_after,
        recorded,
    );
    Ok(())
}
