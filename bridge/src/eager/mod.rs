//! The eager variant: start the Rust future at once and return an `asyncio.Future`.
//!
//! This is pyo3-asyncio's semantics, for fire-and-forget callers that never await the
//! result or need a real `asyncio.Future` (`add_done_callback`, `asyncio.isfuture`). Under
//! trio, which has no futures, the future starts at once too and the call returns a
//! coroutine that awaits its result (`trio.rs`).

mod trio;

use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::task::Context;
use std::task::Waker;

use pyo3::prelude::*;

use crate::sync::lock;
use pyo3_aio_core::Spawner;
use pyo3_aio_core::completion;

use crate::asyncio::report;
use crate::asyncio::set_unless_done;
use crate::coroutine::on_runtime::Running;
use crate::coroutine::on_runtime::SpawnedSource;
use crate::coroutine::on_runtime::drive;
use crate::event_loop::registry::loop_shared;
use crate::event_loop::waker::KeptForLoop;
use crate::event_loop::waker::{LoopBound, LoopWaker};
use crate::locals::LocalsSlot;
use crate::locals::fill;
use crate::locals::get_current_loop;
use crate::locals::scoped;
use crate::waiter::source::Source;

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
    if crate::trio::is_token(&event_loop) {
        return trio::future_into_py_eager(py, spawner, &event_loop, future);
    }
    let slot: LocalsSlot = Arc::new(OnceLock::new());
    fill(py, &slot, &event_loop)?;
    let py_future = event_loop.call_method0(pyo3::intern!(py, "create_future"))?;
    start(py, spawner, slot, &event_loop, &py_future, future)?;
    Ok(py_future)
}

/// Starts `future` on `spawner` now, with `slot` as its task locals. Its outcome is set on
/// `py_future` (an `asyncio.Future`, or anything with `done`, `set_result`,
/// `set_exception`, `cancelled` and `add_done_callback`, such as a
/// `concurrent.futures.Future`) from `event_loop`'s thread, without the GIL on the
/// runtime's side; cancelling `py_future` drops the future.
pub(crate) fn start<S, F, T>(
    py: Python<'_>,
    spawner: S,
    slot: LocalsSlot,
    event_loop: &Bound<'_, PyAny>,
    py_future: &Bound<'_, PyAny>,
    future: F,
) -> PyResult<Arc<SpawnedSource<T>>>
where
    S: Spawner,
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let shared = loop_shared(py, event_loop)?;
    let (producer, consumer) = completion::<PyResult<T>>();
    let running = Running::new(Box::pin(scoped(slot, future)));
    let source = Arc::new(SpawnedSource {
        consumer: Mutex::new(consumer),
        runtime: spawner.name(),
        running: Some(running.clone()),
        waker: std::sync::OnceLock::new(),
    });
    let notify = LoopWaker::new(
        Arc::downgrade(&shared),
        SetFuture {
            future: KeptForLoop::new(py_future.clone().unbind()),
            source: Arc::downgrade(&source),
        },
    );
    let waker = Waker::from(notify);
    let _ = lock(&source.consumer).poll_result(&mut Context::from_waker(&waker));
    py_future.call_method1(
        pyo3::intern!(py, "add_done_callback"),
        (Bound::new(
            py,
            CancelOnDone {
                source: source.clone(),
            },
        )?,),
    )?;
    spawner
        .spawn(Box::pin(drive(running, producer)))
        .map_err(crate::errors::refused)?;
    Ok(source)
}

/// What the waker of an eager future's consumer does: set the `asyncio.Future`.
struct SetFuture<T> {
    future: KeptForLoop<PyAny>,
    /// Weak: the source owns the cell that holds this waker, so a strong reference would
    /// be a cycle keeping the result alive once the loop is gone. The future's done-callback
    /// keeps the source while the future lives.
    source: std::sync::Weak<SpawnedSource<T>>,
}

impl<T> LoopBound for SetFuture<T>
where
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    fn run(&self, py: Python<'_>, _waker: &Arc<LoopWaker<Self>>) {
        let Some(future) = self.future.get(py) else {
            return;
        };
        let future = future.bind(py);
        let Some(result) = self.source.upgrade().and_then(|source| source.take(py)) else {
            return;
        };
        // asyncio refuses StopIteration as a future's exception (it would read as a return).
        let result = result.map_err(|error| crate::errors::no_stop_iteration(py, error));
        if let Err(error) = set_unless_done(future, result) {
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

    fn abandon(&self) {
        self.future.release();
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
