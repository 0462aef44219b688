//! What a test future reports about itself: that it was dropped, the thread polling it,
//! the event loop it sees.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use pyo3::prelude::*;

static DROPPED: AtomicUsize = AtomicUsize::new(0);

/// Counts its drop in `dropped()`: held by a future, it counts the future's drop, whether
/// the future completed or was cancelled.
pub(crate) struct CountDrop;

impl Drop for CountDrop {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

/// A future that never completes, holding a [`CountDrop`] from now on (so a coroutine
/// dropped unawaited counts too).
pub(crate) fn never_counted() -> impl Future<Output = PyResult<()>> + Send + 'static {
    let guard = CountDrop;
    async move {
        let _guard = guard;
        std::future::pending::<()>().await;
        Ok(())
    }
}

/// How many futures holding a [`CountDrop`] (`never`, `sleep_counted`, `local_never`,
/// `eager_never`, `thread_never`, `dropped_by_runtime`) were dropped so far.
#[pyfunction]
fn dropped() -> usize {
    DROPPED.load(Ordering::SeqCst)
}

/// `threading.get_ident()` of the calling thread.
pub(crate) fn thread_ident() -> PyResult<u64> {
    Python::attach(|py| {
        py.import("threading")?
            .call_method0("get_ident")?
            .extract::<u64>()
    })
}

/// `pyo3_aio::get_current_loop`, from a Rust future (taking the GIL).
pub(crate) fn current_loop() -> PyResult<Py<PyAny>> {
    Python::attach(|py| pyo3_aio::get_current_loop(py).map(Bound::unbind))
}

/// `var`'s value in the context of `pyo3_aio::get_current_locals`, from a Rust future
/// (taking the GIL; None when unset there).
pub(crate) fn context_var(var: &Py<PyAny>) -> PyResult<Py<PyAny>> {
    Python::attach(|py| {
        let locals = pyo3_aio::get_current_locals(py)?;
        let context = locals.context(py).ok_or_else(|| {
            pyo3::exceptions::PyRuntimeError::new_err("the current task locals carry no context")
        })?;
        context
            .call_method1("get", (var.bind(py),))
            .map(Bound::unbind)
    })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    add_functions!(m, dropped);
    Ok(())
}
