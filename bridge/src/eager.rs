//! The eager variant: start the Rust future at once and return an `asyncio.Future`.
//!
//! This is pyo3-asyncio's semantics, for fire-and-forget callers that never await the
//! result or need a real `asyncio.Future` (`add_done_callback`, `asyncio.isfuture`).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Wake, Waker};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3_aio_core::{Spawner, completion};

use crate::coroutine::{SpawnedSource, drive};
use crate::event_loop::{LoopItem, LoopRef, Resume, claim, loop_shared, report, schedule_on};
use crate::locals::{LocalsSlot, fill, get_current_loop, scoped};
use crate::waiter::Source;

pub(crate) fn future_into_py_eager<'py, S, F, T>(
    py: Python<'py>,
    spawner: S,
    future: F,
) -> PyResult<Bound<'py, PyAny>>
where
    S: Spawner,
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let event_loop = get_current_loop(py)?;
    let slot: LocalsSlot = Arc::new(OnceLock::new());
    fill(py, &slot, &event_loop)?;
    let shared = loop_shared(py, &event_loop)?;
    let py_future = event_loop.call_method0(pyo3::intern!(py, "create_future"))?;
    let (producer, consumer) = completion::<PyResult<T>>();
    let source = Arc::new(SpawnedSource {
        consumer: Mutex::new(consumer),
        runtime: spawner.name(),
    });
    let notify = Arc::new(EagerNotify {
        shared: Arc::downgrade(&shared),
        future: Mutex::new(Some(py_future.clone().unbind())),
        source: source.clone(),
        queued: AtomicBool::new(false),
    });
    let waker = Waker::from(notify);
    let _ = source
        .consumer
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .poll_result(&mut Context::from_waker(&waker));
    py_future.call_method1(
        pyo3::intern!(py, "add_done_callback"),
        (Bound::new(py, CancelOnDone { source })?,),
    )?;
    spawner
        .spawn(Box::pin(drive(Box::pin(scoped(slot, future)), producer)))
        .map_err(|error| PyRuntimeError::new_err(error.to_string()))?;
    Ok(py_future)
}

struct EagerNotify<T> {
    shared: LoopRef,
    /// Released if the loop closed first (the future keeps this waker alive through its
    /// done-callback, so keeping the future here would be a cycle).
    future: Mutex<Option<Py<PyAny>>>,
    source: Arc<SpawnedSource<T>>,
    queued: AtomicBool,
}

impl<T> Wake for EagerNotify<T>
where
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if claim(&self.queued) && !schedule_on(&self.shared, LoopItem::Resume(self.clone())) {
            let future = self.future.lock().unwrap_or_else(|e| e.into_inner()).take();
            drop(future);
        }
    }
}

impl<T> Resume for EagerNotify<T>
where
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    fn resume(self: Arc<Self>, py: Python<'_>) {
        self.queued.store(false, Ordering::Release);
        let future = self
            .future
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|future| future.clone_ref(py));
        let Some(future) = future else {
            return;
        };
        let future = future.bind(py);
        let Some(result) = self.source.take(py) else {
            return;
        };
        // A cancelled future keeps its cancellation; the result is dropped.
        if future
            .call_method0("done")
            .and_then(|done| done.is_truthy())
            .unwrap_or(true)
        {
            return;
        }
        let set = match result {
            Ok(value) => future.call_method1(pyo3::intern!(py, "set_result"), (value,)),
            Err(error) => {
                future.call_method1(pyo3::intern!(py, "set_exception"), (error.value(py),))
            }
        };
        if let Err(error) = set {
            if let Ok(event_loop) = future.call_method0("get_loop") {
                report(
                    py,
                    &event_loop,
                    "pyo3-aio could not set a future's result",
                    error,
                );
            }
        }
    }
}

/// Cancels the Rust future when the `asyncio.Future` is cancelled.
#[pyclass(frozen, name = "_CancelOnDone", module = "pyo3_aio")]
struct CancelOnDone {
    source: Arc<dyn Source>,
}

#[pymethods]
impl CancelOnDone {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if future.call_method0("cancelled")?.is_truthy()? {
            self.source.cancel(future.py());
        }
        Ok(())
    }
}
