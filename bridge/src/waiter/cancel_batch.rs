//! Batched cancellation: what cancelled waiters owe (a runtime future to stop, done-callbacks
//! to run) is left for the loop's next round, one batch per round.

use std::sync::Arc;

use pyo3::prelude::*;

use crate::sync::lock;

use crate::unwinding;
use crate::waiter::Callback;
use crate::waiter::RustFutureWaiter;
use crate::waiter::release_callbacks;
use crate::waiter::source::Source;

/// What cancelled waiters leave for the loop's next round; see [`defer_cancelled`].
#[derive(Default)]
struct Batch(Vec<Cancelled>);

/// One cancelled waiter's debt: its runtime-side future to stop (with the message of the
/// cancel, passed on to Python tasks the future awaits) and its done-callbacks.
pub(crate) struct Cancelled {
    waiter: Py<RustFutureWaiter>,
    source: Option<Arc<dyn Source>>,
    message: Option<CancelMessage>,
    callbacks: Vec<Callback>,
}

/// The `msg` of a `cancel(msg)`, shareable without the GIL.
pub(crate) type CancelMessage = Arc<Py<PyAny>>;

thread_local! {
    /// The message of the cancel whose Rust future is being dropped on this thread.
    static CANCEL_MESSAGE: std::cell::RefCell<Option<CancelMessage>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `stop` (which drops a cancelled Rust future) with `message` in effect, so that a
/// Python task the future awaits is cancelled with the same message, as a chain of native
/// coroutines passes `Task.cancel(msg)` down.
pub(crate) fn with_cancel_message<R>(
    message: Option<CancelMessage>,
    stop: impl FnOnce() -> R,
) -> R {
    if message.is_none() {
        return stop();
    }
    let outer = CANCEL_MESSAGE.with(|current| current.replace(message));
    let result = stop();
    CANCEL_MESSAGE.with(|current| current.replace(outer));
    result
}

/// The message of the cancel dropping a Rust future on this thread right now, if any.
pub(crate) fn cancel_message() -> Option<CancelMessage> {
    CANCEL_MESSAGE.with(|current| current.borrow().clone())
}

/// The batch a loop callback will pass on; `None` inside once it has (later work then
/// starts a new batch).
struct OpenBatch(std::sync::Mutex<Option<Batch>>);

impl OpenBatch {
    fn take(&self) -> Option<Batch> {
        lock(&self.0).take()
    }
}

thread_local! {
    static OPEN_BATCH: std::cell::RefCell<Option<Arc<OpenBatch>>> =
        const { std::cell::RefCell::new(None) };
}

/// The loop callback that passes a batch on. Dropped without running (its loop closed
/// first), it still stops the futures; the callbacks are dropped, as the loop's own are.
#[pyclass(frozen, name = "_CancelledWaiters", module = "pyo3_aio")]
struct CancelledWaiters(Arc<OpenBatch>);

#[pymethods]
impl CancelledWaiters {
    fn __call__(&self, py: Python<'_>) {
        let Some(batch) = self.0.take() else {
            return;
        };
        // Stop every future first, then run the callbacks of those that are gone: a Task
        // must not see its cancellation before its Rust future was dropped. A future a
        // runtime thread is polling right now parks its callbacks in the waiter instead;
        // the drain runs them once that thread has dropped it.
        // Drop the idle futures before any stop wakes a runtime thread, which on few cores
        // would take the CPU from this burst.
        for entry in &batch.0 {
            if let Some(source) = &entry.source {
                with_cancel_message(entry.message.clone(), || source.discard());
            }
        }
        let mut ready = Vec::with_capacity(batch.0.len());
        for entry in batch.0 {
            let Some(source) = entry.source else {
                ready.push((entry.waiter, entry.callbacks));
                continue;
            };
            entry.waiter.borrow_mut(py).parked = entry.callbacks;
            let (gone, unwound) =
                unwinding::collect(|| with_cancel_message(entry.message, || source.stop(py)));
            let mut waiter = entry.waiter.borrow_mut(py);
            waiter.unwound.extend(unwound);
            // What the drop cancelled is known once the future is gone: now, or when the
            // runtime thread polling it lets go (and resolves the waiter).
            waiter.stopped = Some(source);
            if gone {
                let callbacks = std::mem::take(&mut waiter.parked);
                drop(waiter);
                ready.push((entry.waiter, callbacks));
            }
        }
        for (waiter, callbacks) in ready {
            release_callbacks(py, waiter.bind(py), callbacks);
        }
    }
}

impl Drop for CancelledWaiters {
    fn drop(&mut self) {
        if let Some(batch) = self.0.take() {
            crate::forced_exit::attach(|py| {
                for entry in batch.0 {
                    if let Some(source) = entry.source {
                        with_cancel_message(entry.message, || source.stop(py));
                    }
                }
            });
        }
    }
}

/// Leaves what a cancelled waiter owes for the loop's next round, in one batch per round:
/// `source` (a future on a runtime's threads) to stop, and the waiter's done-callbacks to
/// run, as `asyncio.Future.cancel` schedules them.
///
/// Stopping a runtime-side future wakes a runtime thread to drop it. In a burst (a task
/// group failing, a server shutting down, `gather` cancelled) the loop thread would wake
/// one per cancel while still busy cancelling, and on few cores the woken threads take the
/// CPU from it; batched, the burst runs first and the wakes follow in one go. The
/// callbacks take one `call_soon` per batch instead of one each.
pub(crate) fn defer_cancelled(
    py: Python<'_>,
    event_loop: &Bound<'_, PyAny>,
    waiter: &Bound<'_, RustFutureWaiter>,
    source: Option<Arc<dyn Source>>,
    message: Option<CancelMessage>,
    callbacks: Vec<Callback>,
) -> PyResult<()> {
    if source.is_none() && callbacks.is_empty() {
        return Ok(());
    }
    let mut entry = Some(Cancelled {
        waiter: waiter.clone().unbind(),
        source,
        message,
        callbacks,
    });
    let mut add = |batch: &mut Batch| batch.0.extend(entry.take());
    let open = OPEN_BATCH.with(|open| open.borrow().clone());
    if let Some(open) = open {
        let mut guard = lock(&open.0);
        if let Some(batch) = guard.as_mut() {
            add(batch);
            return Ok(());
        }
    }
    let mut batch = Batch::default();
    add(&mut batch);
    let shared = Arc::new(OpenBatch(std::sync::Mutex::new(Some(batch))));
    let scheduled = Bound::new(py, CancelledWaiters(shared.clone()))
        .and_then(|soon| event_loop.call_method1(pyo3::intern!(py, "call_soon"), (soon,)));
    // On error (the loop is closed) the futures are stopped as the `CancelledWaiters` object is
    // dropped, and the error is the caller's, as `asyncio.Future.cancel`'s would be.
    scheduled?;
    OPEN_BATCH.with(|open| *open.borrow_mut() = Some(shared));
    Ok(())
}
