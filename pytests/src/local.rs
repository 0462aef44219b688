//! `!Send` futures (`local_future_into_py`), which live on the loop thread.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::Runtime;
use crate::into_future::await_calls;
use crate::probes::{CountDrop, current_loop, thread_ident};

/// A `!Send` future: sleeps on tokio holding an `Rc`, then returns `value`.
#[pyfunction]
fn local_sleep<'py>(
    py: Python<'py>,
    seconds: f64,
    value: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let shared = Rc::new(value);
    pyo3_aio::tokio::local_future_into_py(py, async move {
        Runtime::Tokio.timer(Duration::from_secs_f64(seconds)).await;
        Ok(Python::attach(|py| shared.clone_ref(py)))
    })
}

/// A `!Send` future (holds an `Rc`) that sleeps on `runtime`'s timer, then returns `value`.
#[pyfunction]
fn local_sleep_on<'py>(
    py: Python<'py>,
    runtime: Runtime,
    seconds: f64,
    value: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let nap = runtime.timer(Duration::from_secs_f64(seconds));
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
    runtime: Runtime,
    seconds: f64,
    error: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let nap = runtime.timer(Duration::from_secs_f64(seconds));
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
    runtime: Runtime,
    seconds: f64,
    message: String,
) -> PyResult<Bound<'py, PyAny>> {
    let nap = runtime.timer(Duration::from_secs_f64(seconds));
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
    runtime: Runtime,
    seconds: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let nap = runtime.timer(Duration::from_secs_f64(seconds));
    let marker = Rc::new(());
    pyo3_aio::generic::local_future_into_py(py, async move {
        let _marker = marker;
        let first = thread_ident()?;
        nap.await;
        let after = thread_ident()?;
        Ok((first, after, current_loop()?))
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
        await_calls(&factory, count, |value| results.borrow_mut().push(value)).await?;
        let results = results.take();
        Ok(results)
    })
}

/// A `!Send` future made by `runtime`'s `local_future_into_py_with` (`first_poll` is
/// `"inline"` or `"deferred"`): each poll appends the polling thread's ident to `polls`;
/// it is ready at once with `value`.
#[pyfunction]
fn local_ready_with<'py>(
    py: Python<'py>,
    runtime: Runtime,
    first_poll: &str,
    polls: Py<PyList>,
    value: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let first_poll = crate::options_from("auto", first_poll)?.first_poll;
    let held = Rc::new((polls, value));
    runtime.local_convert_with(
        py,
        first_poll,
        std::future::poll_fn(move |_| {
            let (polls, value) = &*held;
            std::task::Poll::Ready(Python::attach(|py| {
                polls.bind(py).append(thread_ident()?)?;
                Ok(value.clone_ref(py))
            }))
        }),
    )
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    add_functions!(
        m,
        local_sleep,
        local_sleep_on,
        local_never,
        local_raise_after,
        local_panic_after,
        local_where_polled,
        local_await_many,
        local_ready_with,
    );
    Ok(())
}
