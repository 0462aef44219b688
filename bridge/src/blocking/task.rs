//! `RustTask`: a Rust future running in the background, as a `concurrent.futures.Future`.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use pyo3::prelude::*;
use pyo3_aio_core::Spawner;

use crate::coroutine::{Discard, future_name, short_name};
use crate::locals::LocalsSlot;
use crate::waiter::Source;

/// What `RustTask.cancel()` calls to drop the Rust future.
#[pyclass(frozen, name = "_RustTaskControl", module = "pyo3_aio")]
pub(crate) struct Control {
    source: OnceLock<Arc<dyn Source>>,
    running: OnceLock<Arc<dyn Discard>>,
}

#[pymethods]
impl Control {
    /// Drops the Rust future, waiting (without the GIL) while a runtime thread polls it.
    fn abort(&self, py: Python<'_>) {
        if let Some(source) = self.source.get() {
            source.cancel(py);
        }
        if let Some(running) = self.running.get() {
            super::drop_and_wait(py, &**running);
        }
    }
}

pub(crate) fn spawn_task<'py, S, F, T>(
    py: Python<'py>,
    spawner: S,
    future: F,
) -> PyResult<Bound<'py, PyAny>>
where
    S: Spawner,
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    // Every outcome goes through the first background loop: a caller blocked in
    // `result()` on its own loop's thread still gets it, and so does Python work the future
    // starts, with a copy of the caller's context.
    let background = super::background::first_loop(py)?;
    let slot: LocalsSlot = Arc::new(OnceLock::from(
        crate::TaskLocals::new(background.clone()).copy_context(py)?,
    ));
    let control = Bound::new(
        py,
        Control {
            source: OnceLock::new(),
            running: OnceLock::new(),
        },
    )?;
    let task = super::background::module(py)?
        .getattr("RustTask")?
        .call1((&control, short_name(future_name::<F>())))?;
    let source = crate::eager::start(py, spawner, slot, &background, &task, future)?;
    let control = control.get();
    if let Some(running) = &source.running {
        let _ = control.running.set(running.clone());
    }
    let _ = control.source.set(source);
    Ok(task)
}
