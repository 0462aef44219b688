//! The extension module the pytest suite imports: every bridge feature, on every runtime.
//!
//! Functions take the runtime's name (`"tokio"`, `"async-std"`, `"smol"`) so each test runs
//! unchanged on all three.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;

mod blocking;
mod homes;
mod lifecycle;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3_aio::generic::{BoxFuture as SpawnedFuture, SpawnError, Spawner};
use pyo3_aio::{FirstPoll, Home, Options, PyStream, StreamOptions};

mod badinput;
mod edges;
mod mutants;
mod stress;

pub(crate) type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

pub(crate) fn sleep_on(runtime: &str, seconds: f64) -> PyResult<BoxFuture<()>> {
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
    let guard = CountDrop;
    convert(py, runtime, async move {
        let _guard = guard;
        std::future::pending::<()>().await;
        Ok(())
    })
}

/// How many futures created by `never`, `sleep_counted`, `local_never`, `eager_never`,
/// `thread_never` or `dropped_by_runtime` were dropped so far.
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
        let outcome = pyo3_aio::tokio::handle()
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
        tokio_sleep_now(Duration::from_secs_f64(seconds)).await;
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

// ---------------------------------------------------------------------------------------
// Helpers shared by the functions below

/// A tokio timer created now, inside the global runtime's context (for futures polled on
/// the loop thread, where no tokio context is entered). The guard is not held across the
/// await: guards of interleaved futures on one thread would be dropped out of order.
fn tokio_sleep_now(duration: Duration) -> tokio::time::Sleep {
    let _guard = pyo3_aio::tokio::handle().enter();
    tokio::time::sleep(duration)
}

/// A timer on the runtime's own clock, created now (usable from `!Send` futures polled on
/// the loop thread).
fn sleep_now(runtime: &str, seconds: f64) -> PyResult<BoxFuture<()>> {
    let duration = Duration::from_secs_f64(seconds);
    Ok(match runtime {
        "tokio" => Box::pin(tokio_sleep_now(duration)),
        "async-std" | "smol" => sleep_on(runtime, seconds)?,
        other => return Err(unknown_runtime(other)),
    })
}

pub(crate) fn convert_with<'py, F, T>(
    py: Python<'py>,
    runtime: &str,
    options: Options,
    future: F,
) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    match runtime {
        "tokio" => pyo3_aio::tokio::future_into_py_with(py, options, future),
        "async-std" => pyo3_aio::async_std::future_into_py_with(py, options, future),
        "smol" => pyo3_aio::smol::future_into_py_with(py, options, future),
        other => Err(unknown_runtime(other)),
    }
}

fn eager<'py, F, T>(py: Python<'py>, runtime: &str, future: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    match runtime {
        "tokio" => pyo3_aio::tokio::future_into_py_eager(py, future),
        "async-std" => pyo3_aio::async_std::future_into_py_eager(py, future),
        "smol" => pyo3_aio::smol::future_into_py_eager(py, future),
        other => Err(unknown_runtime(other)),
    }
}

/// Runs `future` as a task of its own on the runtime (no task locals travel with it) and
/// waits for its output.
fn spawn_on<T: Send + 'static>(
    runtime: &str,
    future: impl Future<Output = PyResult<T>> + Send + 'static,
) -> PyResult<BoxFuture<PyResult<T>>> {
    Ok(match runtime {
        "tokio" => {
            let handle = pyo3_aio::tokio::handle().spawn(future);
            Box::pin(async move {
                handle
                    .await
                    .map_err(|error| PyRuntimeError::new_err(error.to_string()))?
            })
        }
        "async-std" => Box::pin(async_std::task::spawn(future)),
        "smol" => Box::pin(smol::spawn(future)),
        other => return Err(unknown_runtime(other)),
    })
}

/// `threading.get_ident()` of the calling thread.
pub(crate) fn thread_ident() -> PyResult<u64> {
    Python::attach(|py| {
        py.import("threading")?
            .call_method0("get_ident")?
            .extract::<u64>()
    })
}

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

// ---------------------------------------------------------------------------------------
// Rust futures awaited from Python

/// Like `sleep`, but counts the future's drop in `dropped()` whether it completes or is
/// cancelled.
#[pyfunction]
fn sleep_counted<'py>(
    py: Python<'py>,
    runtime: &str,
    seconds: f64,
    value: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let nap = sleep_on(runtime, seconds)?;
    let guard = CountDrop;
    convert(py, runtime, async move {
        let _guard = guard;
        nap.await;
        Ok(value)
    })
}

/// Returns, after `seconds` (0: on the inline first poll), the arguments, extracted into Rust
/// types and converted back on the way out (so both directions of conversion run).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn typed_values<'py>(
    py: Python<'py>,
    runtime: &str,
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
    let nap = sleep_on(runtime, seconds)?;
    convert(py, runtime, async move {
        if seconds > 0.0 {
            nap.await;
        }
        Ok((
            integer, big, float, flag, text, data, numbers, mapping, maybe,
        ))
    })
}

/// Fails after `seconds` with a `ValueError(message)` created in Rust, on the runtime's
/// thread, without the GIL (0 fails on the inline first poll).
#[pyfunction]
fn fail_after<'py>(
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
        Err::<(), _>(PyValueError::new_err(message))
    })
}

/// Panics with a non-string payload (`panic_any(42)`) after `seconds`.
#[pyfunction]
fn panic_any_after<'py>(
    py: Python<'py>,
    runtime: &str,
    seconds: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let nap = sleep_on(runtime, seconds)?;
    convert(py, runtime, async move {
        if seconds > 0.0 {
            nap.await;
        }
        std::panic::panic_any(42_u32);
        #[allow(unreachable_code)]
        Ok(())
    })
}

/// Returns Pending once (waking itself), then Ready: a deterministic suspension point.
pub(crate) async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

/// Reports where the future was polled: `(thread of the first poll, thread after sleeping
/// `seconds`)`, as `threading.get_ident()` values. `home` is `"runtime"` or `"loop"`,
/// `first_poll` is `"inline"` or `"deferred"` (`future_into_py_with` options).
#[pyfunction]
#[pyo3(signature = (runtime, seconds, home = "runtime", first_poll = "inline"))]
fn where_polled<'py>(
    py: Python<'py>,
    runtime: &str,
    seconds: f64,
    home: &str,
    first_poll: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let options = options_from(home, first_poll)?;
    let nap = sleep_on(runtime, seconds)?;
    convert_with(py, runtime, options, async move {
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

/// Returns the event loop seen from inside the Rust future after sleeping `seconds`
/// (0: on the inline first poll).
#[pyfunction]
fn current_loop_after<'py>(
    py: Python<'py>,
    runtime: &str,
    seconds: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let nap = sleep_on(runtime, seconds)?;
    convert(py, runtime, async move {
        if seconds > 0.0 {
            nap.await;
        }
        Python::attach(|py| pyo3_aio::get_current_loop(py).map(Bound::unbind))
    })
}

/// Returns `var`'s value in the context of `get_current_locals()` seen from inside the Rust
/// future after sleeping `seconds` (None when unset there).
#[pyfunction]
fn context_var_after<'py>(
    py: Python<'py>,
    runtime: &str,
    seconds: f64,
    var: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let nap = sleep_on(runtime, seconds)?;
    convert(py, runtime, async move {
        if seconds > 0.0 {
            nap.await;
        }
        Python::attach(|py| {
            let locals = pyo3_aio::get_current_locals(py)?;
            let context = locals.context(py).ok_or_else(|| {
                PyRuntimeError::new_err("the current task locals carry no context")
            })?;
            context
                .call_method1("get", (var.bind(py),))
                .map(Bound::unbind)
        })
    })
}

// ---------------------------------------------------------------------------------------
// Python awaitables awaited from Rust

/// Sleeps `seconds` on the runtime, then calls `factory()` and awaits the awaitable it
/// returns (from the runtime's thread, with the conversion's task locals).
#[pyfunction]
fn await_py_after<'py>(
    py: Python<'py>,
    runtime: &str,
    seconds: f64,
    factory: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let nap = sleep_on(runtime, seconds)?;
    convert(py, runtime, async move {
        if seconds > 0.0 {
            nap.await;
        }
        let future = Python::attach(|py| pyo3_aio::into_future(factory.bind(py).call0()?))?;
        future.await
    })
}

/// Rust spawns a task of its own on `runtime` (no scope, no task locals) that calls
/// into_future on `awaitable` and awaits it.
#[pyfunction]
fn await_py_from_task<'py>(
    py: Python<'py>,
    runtime: &str,
    awaitable: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let runtime_name = runtime.to_owned();
    convert(py, runtime, async move {
        let job = async move {
            let future = Python::attach(|py| pyo3_aio::into_future(awaitable.into_bound(py)))?;
            future.await
        };
        spawn_on(&runtime_name, job)?.await
    })
}

/// Like `await_py_from_task`, but the first poll (inline, on the loop thread) releases the
/// GIL for `pause` seconds after spawning the task, as a future doing blocking work inside
/// `py.detach` would: the spawned task then calls into_future while the first poll is
/// still running.
#[pyfunction]
fn await_py_from_task_slow_first_poll<'py>(
    py: Python<'py>,
    runtime: &str,
    pause: f64,
    awaitable: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let runtime_name = runtime.to_owned();
    convert(py, runtime, async move {
        let job = async move {
            let future = Python::attach(|py| pyo3_aio::into_future(awaitable.into_bound(py)))?;
            future.await
        };
        let handle = spawn_on(&runtime_name, job)?;
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
    runtime: &str,
    awaitable: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let locals = pyo3_aio::TaskLocals::with_running_loop(py)?.copy_context(py)?;
    let runtime_name = runtime.to_owned();
    convert(py, runtime, async move {
        let job = pyo3_aio::scope(locals, async move {
            let future = Python::attach(|py| pyo3_aio::into_future(awaitable.into_bound(py)))?;
            future.await
        });
        spawn_on(&runtime_name, job)?.await
    })
}

/// A plain `std::thread` (started when the coroutine is first awaited) calls into_future
/// on `awaitable` with no scope and blocks on it; the converted future on `runtime` waits
/// for that thread's answer.
#[pyfunction]
fn await_py_from_thread<'py>(
    py: Python<'py>,
    runtime: &str,
    awaitable: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    convert(py, runtime, async move {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let outcome = Python::attach(|py| pyo3_aio::into_future(awaitable.into_bound(py)))
                .map(smol::block_on);
            let _ = sender.send(outcome.and_then(|result| result));
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
    runtime: &str,
    seconds: f64,
    awaitable: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let future = pyo3_aio::into_future(awaitable)?;
    let nap = sleep_on(runtime, seconds)?;
    convert(py, runtime, async move {
        let mut future = Box::pin(future);
        let mut nap = nap;
        let outcome = std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = future.as_mut().poll(cx) {
                return Poll::Ready(Some(result));
            }
            if nap.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await;
        drop(future);
        match outcome {
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
    runtime: &str,
    seconds: f64,
    factory: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let nap = sleep_on(runtime, seconds)?;
    convert(py, runtime, async move {
        if seconds > 0.0 {
            nap.await;
        }
        let future = Python::attach(|py| pyo3_aio::into_future(factory.bind(py).call0()?));
        let result = match future {
            Ok(future) => future.await,
            Err(error) => Err(error),
        };
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

// ---------------------------------------------------------------------------------------
// `!Send` futures (local_future_into_py)

/// A `!Send` future (holds an `Rc`) that sleeps on `runtime`'s timer, then returns `value`.
#[pyfunction]
fn local_sleep_on<'py>(
    py: Python<'py>,
    runtime: &str,
    seconds: f64,
    value: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let nap = sleep_now(runtime, seconds)?;
    let shared = Rc::new(value);
    pyo3_aio::generic::local_future_into_py(py, async move {
        nap.await;
        Ok(Python::attach(|py| shared.clone_ref(py)))
    })
}

/// A `!Send` future that never completes; counts its drop in `dropped()`.
#[pyfunction]
fn local_never(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let guard = Rc::new(CountDrop);
    pyo3_aio::generic::local_future_into_py(py, async move {
        let _guard = guard;
        std::future::pending::<()>().await;
        Ok(())
    })
}

/// A `!Send` future that raises `error` after `seconds` (0: on the inline first poll).
#[pyfunction]
fn local_raise_after<'py>(
    py: Python<'py>,
    runtime: &str,
    seconds: f64,
    error: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let nap = sleep_now(runtime, seconds)?;
    let error = Rc::new(error);
    pyo3_aio::generic::local_future_into_py(py, async move {
        if seconds > 0.0 {
            nap.await;
        }
        Err::<(), _>(Python::attach(|py| {
            PyErr::from_value(error.clone_ref(py).into_bound(py))
        }))
    })
}

/// A `!Send` future that panics with `message` after `seconds` (0: inline).
#[pyfunction]
fn local_panic_after<'py>(
    py: Python<'py>,
    runtime: &str,
    seconds: f64,
    message: String,
) -> PyResult<Bound<'py, PyAny>> {
    let nap = sleep_now(runtime, seconds)?;
    let message = Rc::new(message);
    pyo3_aio::generic::local_future_into_py(py, async move {
        if seconds > 0.0 {
            nap.await;
        }
        panic!("{message}");
        #[allow(unreachable_code)]
        Ok(())
    })
}

/// A `!Send` future reporting `(thread of the first poll, thread after sleeping, current
/// event loop)`.
#[pyfunction]
fn local_where_polled<'py>(
    py: Python<'py>,
    runtime: &str,
    seconds: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let nap = sleep_now(runtime, seconds)?;
    let marker = Rc::new(());
    pyo3_aio::generic::local_future_into_py(py, async move {
        let _marker = marker;
        let first = thread_ident()?;
        nap.await;
        let after = thread_ident()?;
        let event_loop = Python::attach(|py| pyo3_aio::get_current_loop(py).map(Bound::unbind))?;
        Ok((first, after, event_loop))
    })
}

/// A `!Send` future that awaits `factory()` `count` times in a row from the loop thread,
/// collecting the results in an `Rc<RefCell<Vec>>`.
#[pyfunction]
fn local_await_many(
    py: Python<'_>,
    factory: Py<PyAny>,
    count: usize,
) -> PyResult<Bound<'_, PyAny>> {
    let results = Rc::new(RefCell::new(Vec::with_capacity(count)));
    pyo3_aio::generic::local_future_into_py(py, async move {
        for _ in 0..count {
            let future = Python::attach(|py| pyo3_aio::into_future(factory.bind(py).call0()?))?;
            let value = future.await?;
            results.borrow_mut().push(value);
        }
        let results = results.take();
        Ok(results)
    })
}

// ---------------------------------------------------------------------------------------
// The eager variant (future_into_py_eager)

/// Eager: a future that never completes; counts its drop in `dropped()`.
#[pyfunction]
fn eager_never<'py>(py: Python<'py>, runtime: &str) -> PyResult<Bound<'py, PyAny>> {
    let guard = CountDrop;
    eager(py, runtime, async move {
        let _guard = guard;
        std::future::pending::<()>().await;
        Ok(())
    })
}

/// Eager: raises `error` after `seconds`.
#[pyfunction]
fn eager_raise_after<'py>(
    py: Python<'py>,
    runtime: &str,
    seconds: f64,
    error: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let nap = sleep_on(runtime, seconds)?;
    eager(py, runtime, async move {
        nap.await;
        Err::<(), _>(Python::attach(|py| PyErr::from_value(error.into_bound(py))))
    })
}

/// Eager: panics with `message` after `seconds`.
#[pyfunction]
fn eager_panic_after<'py>(
    py: Python<'py>,
    runtime: &str,
    seconds: f64,
    message: String,
) -> PyResult<Bound<'py, PyAny>> {
    let nap = sleep_on(runtime, seconds)?;
    eager(py, runtime, async move {
        nap.await;
        panic!("{message}");
        #[allow(unreachable_code)]
        Ok(())
    })
}

/// Eager: returns the event loop seen from inside the future after a short sleep.
#[pyfunction]
fn eager_current_loop<'py>(py: Python<'py>, runtime: &str) -> PyResult<Bound<'py, PyAny>> {
    let nap = sleep_on(runtime, 0.001)?;
    eager(py, runtime, async move {
        nap.await;
        Python::attach(|py| pyo3_aio::get_current_loop(py).map(Bound::unbind))
    })
}

// ---------------------------------------------------------------------------------------
// Spawners of our own: counting spawns, a thread per task, and misbehaving runtimes

static SPAWNS: AtomicUsize = AtomicUsize::new(0);

/// Wraps a runtime's spawner and counts the futures handed to it.
#[derive(Clone)]
struct Counting<S>(S);

impl<S: Spawner> Spawner for Counting<S> {
    fn spawn(&self, future: SpawnedFuture) -> Result<(), SpawnError> {
        SPAWNS.fetch_add(1, Ordering::SeqCst);
        self.0.spawn(future)
    }
    fn enter(&self, f: &mut dyn FnMut()) {
        self.0.enter(f)
    }
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn usable(&self) -> Result<(), SpawnError> {
        self.0.usable()
    }
}

fn convert_counted<'py, F, T>(
    py: Python<'py>,
    runtime: &str,
    future: F,
) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    use pyo3_aio::generic::future_into_py;
    match runtime {
        "tokio" => future_into_py(
            py,
            Counting(pyo3_aio::tokio::TokioSpawner::global()),
            future,
        ),
        "async-std" => future_into_py(py, Counting(pyo3_aio::async_std::AsyncStdSpawner), future),
        "smol" => future_into_py(py, Counting(pyo3_aio::smol::SmolSpawner::global()), future),
        other => Err(unknown_runtime(other)),
    }
}

/// `ready` through a spawner that counts spawns (see `spawns()`).
#[pyfunction]
fn counted_ready<'py>(
    py: Python<'py>,
    runtime: &str,
    value: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    convert_counted(py, runtime, async move { Ok(value) })
}

/// `sleep` through a spawner that counts spawns (see `spawns()`).
#[pyfunction]
fn counted_sleep<'py>(
    py: Python<'py>,
    runtime: &str,
    seconds: f64,
    value: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let nap = sleep_on(runtime, seconds)?;
    convert_counted(py, runtime, async move {
        nap.await;
        Ok(value)
    })
}

/// How many futures the counting spawner was handed so far.
#[pyfunction]
fn spawns() -> usize {
    SPAWNS.load(Ordering::SeqCst)
}

static DRIVEN: AtomicUsize = AtomicUsize::new(0);

/// Runs each future on a fresh thread of its own (which never touches Python), and counts
/// in `driven()` the futures whose whole run, completion path included, has returned.
#[derive(Clone)]
struct ThreadPerTask;

impl Spawner for ThreadPerTask {
    fn spawn(&self, future: SpawnedFuture) -> Result<(), SpawnError> {
        std::thread::spawn(move || {
            smol::block_on(future);
            DRIVEN.fetch_add(1, Ordering::SeqCst);
        });
        Ok(())
    }
    fn name(&self) -> &'static str {
        "thread-per-task"
    }
}

/// Sleeps `seconds` on a thread of its own, then returns `value` (a Rust string, so nothing
/// on that thread needs Python).
#[pyfunction]
fn thread_sleep(py: Python<'_>, seconds: f64, value: String) -> PyResult<Bound<'_, PyAny>> {
    let duration = Duration::from_secs_f64(seconds);
    pyo3_aio::generic::future_into_py(py, ThreadPerTask, async move {
        smol::Timer::after(duration).await;
        Ok(value)
    })
}

/// Never completes, on a thread of its own; counts its drop in `dropped()`.
#[pyfunction]
fn thread_never(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let guard = CountDrop;
    pyo3_aio::generic::future_into_py(py, ThreadPerTask, async move {
        let _guard = guard;
        std::future::pending::<()>().await;
        Ok(())
    })
}

/// How many futures run by `thread_sleep` / `thread_never` have returned from their thread.
#[pyfunction]
fn driven() -> usize {
    DRIVEN.load(Ordering::SeqCst)
}

/// Holds the GIL (never releasing it) until `driven()` reaches `target`; returns whether it
/// did before `timeout` seconds passed. A completion path that needed the GIL would stall
/// here until the timeout.
#[pyfunction]
fn hold_gil_until_driven(_py: Python<'_>, target: usize, timeout: f64) -> bool {
    let deadline = Instant::now() + Duration::from_secs_f64(timeout);
    while DRIVEN.load(Ordering::SeqCst) < target {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

/// A runtime that drops every future it is handed, unfinished, shortly after (as a runtime
/// shutting down does).
#[derive(Clone)]
struct DropsTasks;

impl Spawner for DropsTasks {
    fn spawn(&self, future: SpawnedFuture) -> Result<(), SpawnError> {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1));
            drop(future);
        });
        Ok(())
    }
    fn name(&self) -> &'static str {
        "drops-tasks"
    }
}

/// A runtime that refuses every future.
#[derive(Clone)]
struct Refuses;

impl Spawner for Refuses {
    fn spawn(&self, _future: SpawnedFuture) -> Result<(), SpawnError> {
        Err(SpawnError::new("refuses", "it has shut down"))
    }
    fn name(&self) -> &'static str {
        "refuses"
    }
}

/// A pending future handed to a runtime that drops it unfinished; counts its drop.
#[pyfunction]
fn dropped_by_runtime(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let guard = CountDrop;
    pyo3_aio::generic::future_into_py(py, DropsTasks, async move {
        let _guard = guard;
        std::future::pending::<()>().await;
        Ok(())
    })
}

/// A pending future handed to a runtime that refuses it.
#[pyfunction]
fn refused_by_runtime(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    pyo3_aio::generic::future_into_py(py, Refuses, async move {
        std::future::pending::<()>().await;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// Streams: Rust streams iterated from Python (stream_into_py, local_stream_into_py)

/// A timer on a runtime's clock, created now (so usable from the runtime's threads and, for
/// `!Send` streams, from the loop thread).
type Timer = fn(Duration) -> BoxFuture<()>;

fn timer(runtime: &str) -> PyResult<Timer> {
    Ok(match runtime {
        "tokio" => (|duration| Box::pin(tokio_sleep_now(duration))) as Timer,
        "async-std" => |duration| Box::pin(async_std::task::sleep(duration)),
        "smol" => |duration| {
            Box::pin(async move {
                smol::Timer::after(duration).await;
            })
        },
        other => return Err(unknown_runtime(other)),
    })
}

/// What a test stream records: how often it was polled, how many items it produced, and
/// whether it was dropped.
#[derive(Default)]
struct ProbeState {
    polls: AtomicUsize,
    produced: AtomicUsize,
    dropped: AtomicBool,
}

/// Watches one test stream from Python.
#[pyclass(frozen, name = "StreamProbe", module = "pyo3_aio_tests")]
struct StreamProbe {
    state: Arc<ProbeState>,
}

#[pymethods]
impl StreamProbe {
    /// How many times the Rust stream's `poll_next` was called so far.
    fn polls(&self) -> usize {
        self.state.polls.load(Ordering::SeqCst)
    }

    /// How many items the Rust stream has produced so far (handed to the bridge).
    fn produced(&self) -> usize {
        self.state.produced.load(Ordering::SeqCst)
    }

    /// Whether the Rust stream has been dropped.
    fn dropped(&self) -> bool {
        self.state.dropped.load(Ordering::SeqCst)
    }
}

/// The numbers `0..end` (endless without `end`), with the behaviours the tests need: an
/// `Err` item instead of the number `error_at`, a panic instead of the number `panic_at`,
/// `Pending` forever (never waking) instead of the number `stall_at`, and a sleep of
/// `delay` on the runtime's timer before each number.
struct TestStream {
    next: u64,
    end: Option<u64>,
    error_at: Option<u64>,
    error: Option<Py<PyAny>>,
    panic_at: Option<u64>,
    stall_at: Option<u64>,
    delay: Option<(Timer, Duration)>,
    nap: Option<BoxFuture<()>>,
    state: Arc<ProbeState>,
}

impl Stream for TestStream {
    type Item = PyResult<u64>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.state.polls.fetch_add(1, Ordering::SeqCst);
        let i = this.next;
        if this.end == Some(i) {
            return Poll::Ready(None);
        }
        if this.stall_at == Some(i) {
            return Poll::Pending;
        }
        if let Some((timer, delay)) = this.delay {
            let nap = this.nap.get_or_insert_with(|| timer(delay));
            if nap.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.nap = None;
        }
        if this.panic_at == Some(i) {
            panic!("the stream panicked at item {i}");
        }
        this.next += 1;
        this.state.produced.fetch_add(1, Ordering::SeqCst);
        if this.error_at == Some(i) {
            let error = match &this.error {
                Some(error) => Python::attach(|py| PyErr::from_value(error.bind(py).clone())),
                None => PyValueError::new_err(format!("item {i} failed")),
            };
            return Poll::Ready(Some(Err(error)));
        }
        Poll::Ready(Some(Ok(i)))
    }
}

impl Drop for TestStream {
    fn drop(&mut self) {
        self.state.dropped.store(true, Ordering::SeqCst);
    }
}

/// `S`, made `!Send` (for `local_stream_into_py`).
struct LocalOnly<S> {
    stream: S,
    _not_send: PhantomData<Rc<()>>,
}

impl<S: Stream + Unpin> Stream for LocalOnly<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        Pin::new(&mut self.stream).poll_next(cx)
    }
}

/// A stream from a closure (like `futures::stream::poll_fn`).
pub(crate) struct PollFn<F>(pub(crate) F);

impl<F, T> Stream for PollFn<F>
where
    F: FnMut(&mut Context<'_>) -> Poll<Option<T>> + Unpin,
{
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        (self.0)(cx)
    }
}

/// `stream_into_py` (no capacity) or `stream_into_py_with` on the named runtime.
pub(crate) fn stream_to_py<'py, St, T>(
    py: Python<'py>,
    runtime: &str,
    capacity: Option<usize>,
    stream: St,
) -> PyResult<Bound<'py, PyAny>>
where
    St: Stream<Item = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let options = capacity.map(|capacity| StreamOptions::default().capacity(capacity));
    match (runtime, options) {
        ("tokio", None) => pyo3_aio::tokio::stream_into_py(py, stream),
        ("tokio", Some(options)) => pyo3_aio::tokio::stream_into_py_with(py, options, stream),
        ("async-std", None) => pyo3_aio::async_std::stream_into_py(py, stream),
        ("async-std", Some(options)) => {
            pyo3_aio::async_std::stream_into_py_with(py, options, stream)
        }
        ("smol", None) => pyo3_aio::smol::stream_into_py(py, stream),
        ("smol", Some(options)) => pyo3_aio::smol::stream_into_py_with(py, options, stream),
        (other, _) => Err(unknown_runtime(other)),
    }
}

/// `local_stream_into_py` of the named runtime's module.
fn local_stream_to_py<'py, St, T>(
    py: Python<'py>,
    runtime: &str,
    stream: St,
) -> PyResult<Bound<'py, PyAny>>
where
    St: Stream<Item = PyResult<T>> + 'static,
    T: for<'a> IntoPyObject<'a> + 'static,
{
    match runtime {
        "tokio" => pyo3_aio::tokio::local_stream_into_py(py, stream),
        "async-std" => pyo3_aio::async_std::local_stream_into_py(py, stream),
        "smol" => pyo3_aio::smol::local_stream_into_py(py, stream),
        other => Err(unknown_runtime(other)),
    }
}

/// The numbers `0..n` as a Python async iterator, produced on the runtime; `capacity`
/// None uses `stream_into_py` (the default capacity), otherwise `stream_into_py_with`.
#[pyfunction]
#[pyo3(signature = (runtime, n, capacity = None))]
fn count_stream<'py>(
    py: Python<'py>,
    runtime: &str,
    n: u64,
    capacity: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    stream_to_py(py, runtime, capacity, counting(n))
}

/// The integers `0..n`, every one ready at once.
pub(crate) fn counting(n: u64) -> impl Stream<Item = PyResult<u64>> + Send + 'static {
    let mut next = 0;
    PollFn(move |_: &mut Context<'_>| {
        if next == n {
            return Poll::Ready(None);
        }
        next += 1;
        Poll::Ready(Some(Ok::<_, PyErr>(next - 1)))
    })
}

/// A `TestStream` (see there; `n` None: endless) as a Python async iterator, with a
/// `StreamProbe` watching it. `local` uses `local_stream_into_py` with the stream made
/// `!Send` (then `capacity` must be None).
#[pyfunction]
#[pyo3(signature = (
    runtime, n = None, *, capacity = None, error_at = None, error = None, panic_at = None,
    stall_at = None, delay = 0.0, local = false, inline = true
))]
#[allow(clippy::too_many_arguments)]
fn probed_stream<'py>(
    py: Python<'py>,
    runtime: &str,
    n: Option<u64>,
    capacity: Option<usize>,
    error_at: Option<u64>,
    error: Option<Py<PyAny>>,
    panic_at: Option<u64>,
    stall_at: Option<u64>,
    delay: f64,
    local: bool,
    inline: bool,
) -> PyResult<(Bound<'py, PyAny>, StreamProbe)> {
    let state = Arc::new(ProbeState::default());
    let stream = TestStream {
        next: 0,
        end: n,
        error_at,
        error,
        panic_at,
        stall_at,
        delay: if delay > 0.0 {
            Some((timer(runtime)?, Duration::from_secs_f64(delay)))
        } else {
            None
        },
        nap: None,
        state: state.clone(),
    };
    let iterator = if local {
        if capacity.is_some() {
            return Err(PyValueError::new_err("a local stream has no capacity"));
        }
        let stream = LocalOnly {
            stream,
            _not_send: PhantomData,
        };
        local_stream_to_py(py, runtime, stream)?
    } else if inline {
        stream_to_py(py, runtime, capacity, stream)?
    } else {
        let options = StreamOptions::default()
            .capacity(capacity.unwrap_or(pyo3_aio::DEFAULT_CAPACITY))
            .inline(false);
        match runtime {
            "tokio" => pyo3_aio::tokio::stream_into_py_with(py, options, stream)?,
            "async-std" => pyo3_aio::async_std::stream_into_py_with(py, options, stream)?,
            "smol" => pyo3_aio::smol::stream_into_py_with(py, options, stream)?,
            other => return Err(unknown_runtime(other)),
        }
    };
    Ok((iterator, StreamProbe { state }))
}

/// A `!Send` stream of the numbers `0..n`, polled on the loop thread.
#[pyfunction]
fn local_count_stream(py: Python<'_>, n: u64) -> PyResult<Bound<'_, PyAny>> {
    let next = Rc::new(std::cell::Cell::new(0));
    let stream = PollFn(move |_: &mut Context<'_>| {
        let i = next.get();
        if i == n {
            return Poll::Ready(None);
        }
        next.set(i + 1);
        Poll::Ready(Some(Ok::<_, PyErr>(i)))
    });
    pyo3_aio::generic::local_stream_into_py(py, stream)
}

/// `n` items, each `get_current_loop()` as seen by the stream when it is polled (on the
/// runtime, after a short sleep on its timer before each item).
#[pyfunction]
fn loop_stream<'py>(py: Python<'py>, runtime: &str, n: usize) -> PyResult<Bound<'py, PyAny>> {
    let timer = timer(runtime)?;
    let mut produced = 0;
    let mut nap: Option<BoxFuture<()>> = None;
    let stream = PollFn(move |cx: &mut Context<'_>| {
        if produced == n {
            return Poll::Ready(None);
        }
        let sleeping = nap.get_or_insert_with(|| timer(Duration::from_micros(200)));
        if sleeping.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        nap = None;
        produced += 1;
        Poll::Ready(Some(Python::attach(|py| {
            pyo3_aio::get_current_loop(py).map(Bound::unbind)
        })))
    });
    stream_to_py(py, runtime, None, stream)
}

// ---------------------------------------------------------------------------------------
// Streams: Python async iterables consumed from Rust (into_stream)

async fn next_item<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

fn open_stream(iterable: Bound<'_, PyAny>, capacity: Option<usize>) -> PyResult<PyStream> {
    match capacity {
        None => pyo3_aio::into_stream(iterable),
        Some(capacity) => {
            pyo3_aio::into_stream_with(iterable, StreamOptions::default().capacity(capacity))
        }
    }
}

/// Drains `stream` (at most `limit` items), awaiting `after_each(item)` after each item;
/// an `Err` item is kept as its exception object. The stream is dropped before returning.
async fn drain(
    mut stream: PyStream,
    limit: Option<usize>,
    after_each: Option<Py<PyAny>>,
) -> PyResult<Vec<Py<PyAny>>> {
    let mut items = Vec::new();
    while limit.is_none_or(|limit| items.len() < limit) {
        let Some(item) = next_item(&mut stream).await else {
            break;
        };
        match item {
            Ok(value) => {
                if let Some(after_each) = &after_each {
                    let awaited = Python::attach(|py| {
                        pyo3_aio::into_future(after_each.bind(py).call1((value.clone_ref(py),))?)
                    })?;
                    awaited.await?;
                }
                items.push(value);
            }
            Err(error) => {
                items.push(Python::attach(|py| error.into_value(py).into_any()));
            }
        }
    }
    drop(stream);
    Ok(items)
}

/// Rust drains the Python async iterable through `into_stream` (`into_stream_with` when
/// `capacity` is given) and returns the list of its items, an exception it raised included
/// as the exception object at its position. `limit`: drop the Rust stream after that many
/// items. `after_each`: an async function Rust awaits after each item before pulling the
/// next. `from_runtime`: call `into_stream` from the runtime's thread after a short sleep
/// (otherwise at once, on the loop thread, where bad input raises synchronously).
#[pyfunction]
#[pyo3(signature = (runtime, iterable, *, capacity = None, limit = None, after_each = None, from_runtime = false))]
fn consume<'py>(
    py: Python<'py>,
    runtime: &str,
    iterable: Bound<'py, PyAny>,
    capacity: Option<usize>,
    limit: Option<usize>,
    after_each: Option<Py<PyAny>>,
    from_runtime: bool,
) -> PyResult<Bound<'py, PyAny>> {
    if from_runtime {
        let iterable = iterable.unbind();
        let nap = sleep_on(runtime, 0.001)?;
        convert(py, runtime, async move {
            nap.await;
            let stream = Python::attach(|py| open_stream(iterable.into_bound(py), capacity))?;
            drain(stream, limit, after_each).await
        })
    } else {
        let stream = open_stream(iterable, capacity)?;
        convert(py, runtime, drain(stream, limit, after_each))
    }
}

/// Rust takes the first `k` items of the Python async iterable, then drops the stream.
#[pyfunction]
fn consume_first<'py>(
    py: Python<'py>,
    runtime: &str,
    iterable: Bound<'py, PyAny>,
    k: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let stream = pyo3_aio::into_stream(iterable)?;
    convert(py, runtime, drain(stream, Some(k), None))
}

/// Calls `into_stream` (or `into_stream_with`) synchronously and drops the stream at once.
#[pyfunction]
#[pyo3(signature = (iterable, capacity = None))]
fn into_stream_now(iterable: Bound<'_, PyAny>, capacity: Option<usize>) -> PyResult<()> {
    open_stream(iterable, capacity).map(drop)
}

/// A Rust future returning `()` after `seconds` (0: ready on the inline first poll).
#[pyfunction]
fn unit_after<'py>(py: Python<'py>, runtime: &str, seconds: f64) -> PyResult<Bound<'py, PyAny>> {
    let nap = sleep_on(runtime, seconds)?;
    convert(py, runtime, async move {
        if seconds > 0.0 {
            nap.await;
        }
        Ok(())
    })
}

#[pymodule]
fn pyo3_aio_tests(m: &Bound<'_, PyModule>) -> PyResult<()> {
    blocking::register(m)?;
    homes::register(m)?;
    lifecycle::register(m)?;
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
    m.add_function(wrap_pyfunction!(sleep_counted, m)?)?;
    m.add_function(wrap_pyfunction!(typed_values, m)?)?;
    m.add_function(wrap_pyfunction!(fail_after, m)?)?;
    m.add_function(wrap_pyfunction!(panic_any_after, m)?)?;
    m.add_function(wrap_pyfunction!(where_polled, m)?)?;
    m.add_function(wrap_pyfunction!(current_loop_after, m)?)?;
    m.add_function(wrap_pyfunction!(context_var_after, m)?)?;
    m.add_function(wrap_pyfunction!(await_py_after, m)?)?;
    m.add_function(wrap_pyfunction!(await_py_from_task, m)?)?;
    m.add_function(wrap_pyfunction!(await_py_in_scope, m)?)?;
    m.add_function(wrap_pyfunction!(await_py_from_task_slow_first_poll, m)?)?;
    m.add_function(wrap_pyfunction!(await_py_from_thread, m)?)?;
    m.add_function(wrap_pyfunction!(await_py_on_new_thread, m)?)?;
    m.add_function(wrap_pyfunction!(await_py_with_timeout, m)?)?;
    m.add_function(wrap_pyfunction!(record_await_py_after, m)?)?;
    m.add_function(wrap_pyfunction!(recorded, m)?)?;
    m.add_function(wrap_pyfunction!(local_sleep_on, m)?)?;
    m.add_function(wrap_pyfunction!(local_never, m)?)?;
    m.add_function(wrap_pyfunction!(local_raise_after, m)?)?;
    m.add_function(wrap_pyfunction!(local_panic_after, m)?)?;
    m.add_function(wrap_pyfunction!(local_where_polled, m)?)?;
    m.add_function(wrap_pyfunction!(local_await_many, m)?)?;
    m.add_function(wrap_pyfunction!(eager_never, m)?)?;
    m.add_function(wrap_pyfunction!(eager_raise_after, m)?)?;
    m.add_function(wrap_pyfunction!(eager_panic_after, m)?)?;
    m.add_function(wrap_pyfunction!(eager_current_loop, m)?)?;
    m.add_function(wrap_pyfunction!(counted_ready, m)?)?;
    m.add_function(wrap_pyfunction!(counted_sleep, m)?)?;
    m.add_function(wrap_pyfunction!(spawns, m)?)?;
    m.add_function(wrap_pyfunction!(thread_sleep, m)?)?;
    m.add_function(wrap_pyfunction!(thread_never, m)?)?;
    m.add_function(wrap_pyfunction!(driven, m)?)?;
    m.add_function(wrap_pyfunction!(hold_gil_until_driven, m)?)?;
    m.add_function(wrap_pyfunction!(dropped_by_runtime, m)?)?;
    m.add_function(wrap_pyfunction!(refused_by_runtime, m)?)?;
    m.add_function(wrap_pyfunction!(count_stream, m)?)?;
    m.add_function(wrap_pyfunction!(probed_stream, m)?)?;
    m.add_function(wrap_pyfunction!(local_count_stream, m)?)?;
    m.add_function(wrap_pyfunction!(loop_stream, m)?)?;
    m.add_function(wrap_pyfunction!(consume, m)?)?;
    m.add_function(wrap_pyfunction!(consume_first, m)?)?;
    m.add_function(wrap_pyfunction!(into_stream_now, m)?)?;
    m.add_function(wrap_pyfunction!(unit_after, m)?)?;
    m.add_class::<StreamProbe>()?;
    stress::register(m)?;
    m.add("DEFAULT_CAPACITY", pyo3_aio::DEFAULT_CAPACITY)?;
    m.add("RustPanic", m.py().get_type::<pyo3_aio::RustPanic>())?;
    m.add("RUNTIMES", ("tokio", "async-std", "smol"))?;
    badinput::register(m)?;
    edges::register(m)?;
    mutants::register(m)?;
    Ok(())
}
