//! The small future-like object a converted Rust future yields to its `asyncio.Task`.
//!
//! Users never see it: they hold the coroutine (see `coroutine.rs`). While the Rust future
//! is pending, the coroutine yields a [`RustFutureWaiter`]; the Task reads `_asyncio_future_blocking`,
//! checks `get_loop()`, and registers its wake-up with `add_done_callback`. When the result
//! arrives, the loop thread calls that wake-up directly from the drain (in the callback's
//! own context), which skips the extra `call_soon` hop an `asyncio.Future` would take.
//! Only the loop thread touches a waiter.

pub(crate) mod cancel_batch;
pub(crate) mod source;

pub(crate) use source::ResolveWaiter;

pub(crate) use cancel_batch::{CancelMessage, cancel_message};
pub(crate) use source::{Arrival, Source};

use std::sync::Arc;
use std::task::Context;
use std::task::Waker;

use pyo3::prelude::*;

use crate::asyncio::cancelled_error;
use crate::asyncio::invalid_state;
use crate::event_loop::waker::{KeptForLoop, tracked};
use crate::unwinding;
use crate::unwinding::Unwound;
use crate::waiter::cancel_batch::defer_cancelled;
use crate::waiter::cancel_batch::with_cancel_message;

/// The waiter's outcome, with the two fields that go with it: `source` (the Rust side the
/// result comes from, `None` once nothing more is owed from it) and `blocking`
/// (`_asyncio_future_blocking`, set while the waiter is yielded to a Task, cleared by it).
///
/// ```text
///             resolve / resolve_with (drain)
///  Pending ------------------------------------> Done(value) | Failed(error)
///     |  \
///     |   `-- coroutine_finished (close/throw) --> Done(None)
///     `------ cancel(msg) -----------------------> Cancelled(msg)
/// ```
///
/// Every arrow leaves `Pending` once: the first one wins, later ones find the outcome
/// set and do nothing. On each arrow `source` is taken (`None` after), and the
/// done-callbacks run (resolve: inline from the drain; cancel: in the next batch, or parked
/// until a runtime thread polling the future lets go; coroutine_finished: `call_soon`).
/// `source` also goes, with `Outcome` left `Pending`, when the loop closes
/// (`loop_closed`). A cancel loses (returns `False`) while `source` reports
/// [`Arrival::Arrived`]. `blocking` is reset to `true` (`rearm`) when a stray resume
/// yields the same waiter again.
enum Outcome {
    Pending,
    Done(Py<PyAny>),
    Failed(PyErr),
    Cancelled(Option<Py<PyAny>>),
}

pub(crate) struct Callback {
    function: Py<PyAny>,
    context: Option<Py<PyAny>>,
}

/// The future-like object yielded to asyncio's Task while a Rust future is pending.
#[pyclass(name = "RustFutureWaiter", module = "pyo3_aio")]
pub struct RustFutureWaiter {
    event_loop: Py<PyAny>,
    outcome: Outcome,
    blocking: bool,
    callbacks: Vec<Callback>,
    /// Done-callbacks of a cancelled waiter whose Rust future a runtime thread was still
    /// polling when it was stopped: [`resolve`] runs them once that thread has dropped it.
    parked: Vec<Callback>,
    source: Option<Arc<dyn Source>>,
    /// The source of a cancelled waiter whose future a runtime thread was still polling:
    /// once it is gone, it tells which Python tasks its drop cancelled.
    stopped: Option<Arc<dyn Source>>,
    /// The Python tasks a cancelled waiter's future cancelled as it was dropped: the
    /// parked done-callbacks run once they have unwound (see `unwinding.rs`).
    unwound: Unwound,
}

impl RustFutureWaiter {
    pub(crate) fn new(event_loop: Py<PyAny>, source: Arc<dyn Source>) -> Self {
        Self {
            event_loop,
            outcome: Outcome::Pending,
            blocking: true,
            callbacks: Vec::new(),
            parked: Vec::new(),
            source: Some(source),
            stopped: None,
            unwound: Unwound::default(),
        }
    }

    /// The outcome for the coroutine once the Task resumes it: `None` while pending.
    pub(crate) fn outcome(&self, py: Python<'_>) -> Option<PyResult<Py<PyAny>>> {
        match &self.outcome {
            Outcome::Pending => None,
            Outcome::Done(value) => Some(Ok(value.clone_ref(py))),
            Outcome::Failed(error) => Some(Err(error.clone_ref(py))),
            Outcome::Cancelled(message) => Some(Err(cancelled_error(py, message.as_ref()))),
        }
    }

    /// Marks the waiter blocking again before it is yielded a second time.
    pub(crate) fn rearm(&mut self) {
        self.blocking = true;
    }

    /// The coroutine was closed, or had an exception thrown in, while it waited here: the
    /// Rust future is dropped now (or as soon as a runtime thread polling it lets go), and
    /// a Task waiting on this waiter is woken, as the future it waits on would wake it
    /// under a closed native coroutine. The Task then resumes the finished coroutine and
    /// gets what a native one gives: `RuntimeError: cannot reuse already awaited
    /// coroutine`, or the CancelledError it throws in.
    pub(crate) fn coroutine_finished(slf: &Bound<'_, Self>) {
        let py = slf.py();
        let (source, callbacks) = {
            let mut this = slf.borrow_mut();
            if !matches!(this.outcome, Outcome::Pending) {
                return;
            }
            this.outcome = Outcome::Done(py.None());
            (this.source.take(), std::mem::take(&mut this.callbacks))
        };
        if let Some(source) = source {
            source.stop(py);
        }
        if callbacks.is_empty() {
            return;
        }
        let event_loop = slf.borrow().event_loop.clone_ref(py);
        let event_loop = event_loop.bind(py);
        // `close()` may come from any thread.
        let method = match crate::asyncio::runs_here(py, event_loop) {
            Ok(true) => pyo3::intern!(py, "call_soon"),
            _ => pyo3::intern!(py, "call_soon_threadsafe"),
        };
        for callback in callbacks {
            // Err: the loop closed; its callbacks are dropped, as asyncio drops its handles.
            let _ = schedule_callback(py, event_loop, method, slf, callback);
        }
    }

    /// Its loop closed while it waited: the Rust future is dropped. The waiter itself
    /// stays pending with the Task's wake-up, as an asyncio future on a closed loop does
    /// (so `Task.cancel()` then raises "Event loop is closed" as it does there); nothing
    /// kept from Rust holds it any more, so the Task, its coroutine and this waiter are
    /// left to the garbage collector together.
    pub(crate) fn loop_closed(slf: &Bound<'_, Self>) {
        let (source, unwound) = {
            let mut this = slf.borrow_mut();
            this.stopped = None;
            (this.source.take(), std::mem::take(&mut this.unwound))
        };
        drop(unwound);
        if let Some(source) = source {
            source.stop(slf.py());
        }
    }
}

/// Delivers the source's result to `waiter` and runs its done-callbacks inline. Called from
/// the loop's drain (never from inside a Task step).
pub(crate) fn resolve(py: Python<'_>, waiter: &Bound<'_, RustFutureWaiter>) {
    let result = {
        let mut this = waiter.borrow_mut();
        if !matches!(this.outcome, Outcome::Pending) {
            // Cancelled earlier, and its runtime thread has now dropped the future, or the
            // Python tasks that drop cancelled have unwound.
            let parked = std::mem::take(&mut this.parked);
            drop(this);
            release_callbacks(py, waiter, parked);
            return;
        }
        this.source.as_ref().and_then(|source| source.take(py))
    };
    if let Some(result) = result {
        resolve_with(py, waiter, result);
    }
}

/// Resolves `waiter` with a result computed on the loop thread (loop-thread futures).
pub(crate) fn resolve_with(
    py: Python<'_>,
    waiter: &Bound<'_, RustFutureWaiter>,
    result: PyResult<Py<PyAny>>,
) {
    let callbacks = {
        let mut this = waiter.borrow_mut();
        if !matches!(this.outcome, Outcome::Pending) {
            return;
        }
        this.source = None;
        this.outcome = match result {
            Ok(value) => Outcome::Done(value),
            Err(error) => Outcome::Failed(crate::errors::no_stop_iteration(py, error)),
        };
        std::mem::take(&mut this.callbacks)
    };
    run_callbacks(py, waiter, callbacks);
}

/// Runs a cancelled waiter's done-callbacks once its future is gone (the caller knows)
/// and the Python tasks the drop cancelled have unwound; until then they stay parked, and
/// the last task to finish resolves the waiter again.
pub(crate) fn release_callbacks(
    py: Python<'_>,
    waiter: &Bound<'_, RustFutureWaiter>,
    callbacks: Vec<Callback>,
) {
    let mut unwound = {
        let mut this = waiter.borrow_mut();
        if let Some(source) = this.stopped.take() {
            let stopped = source.take_unwound();
            this.unwound.extend(stopped);
        }
        if this.unwound.is_empty() {
            drop(this);
            run_callbacks(py, waiter, callbacks);
            return;
        }
        this.parked.extend(callbacks);
        std::mem::take(&mut this.unwound)
    };
    if let Some(waker) = resolve_later(py, waiter)
        && unwound.poll(&mut Context::from_waker(&waker)).is_pending()
    {
        waiter.borrow_mut().unwound = unwound;
        return;
    }
    let parked = std::mem::take(&mut waiter.borrow_mut().parked);
    run_callbacks(py, waiter, parked);
}

/// A waker that resolves `waiter` from its loop's drain, tracked so that a loop that closes
/// first releases the waiter; `None` when its loop has closed (nothing would run it).
fn resolve_later(py: Python<'_>, waiter: &Bound<'_, RustFutureWaiter>) -> Option<Waker> {
    let event_loop = waiter.borrow().event_loop.clone_ref(py);
    let shared = crate::event_loop::registry::loop_shared(py, event_loop.bind(py)).ok()?;
    if shared.is_closed() {
        return None;
    }
    let notify = tracked(
        py,
        &shared,
        ResolveWaiter {
            waiter: KeptForLoop::new(waiter.clone().unbind()),
        },
    );
    Some(Waker::from(notify))
}

fn run_callbacks(py: Python<'_>, waiter: &Bound<'_, RustFutureWaiter>, callbacks: Vec<Callback>) {
    for callback in callbacks {
        let called = match &callback.context {
            Some(context) => context
                .bind(py)
                .call_method1(pyo3::intern!(py, "run"), (&callback.function, waiter)),
            None => callback.function.bind(py).call1((waiter,)),
        };
        if let Err(error) = called {
            let event_loop = waiter.borrow().event_loop.clone_ref(py);
            crate::asyncio::report(
                py,
                event_loop.bind(py),
                "Exception in callback of a pyo3-aio waiter",
                error,
            );
        }
    }
}

#[pymethods]
impl RustFutureWaiter {
    #[getter(_asyncio_future_blocking)]
    fn get_blocking(&self) -> bool {
        self.blocking
    }

    #[setter(_asyncio_future_blocking)]
    fn set_blocking(&mut self, value: bool) {
        self.blocking = value;
    }

    fn get_loop(&self, py: Python<'_>) -> Py<PyAny> {
        self.event_loop.clone_ref(py)
    }

    fn done(&self) -> bool {
        !matches!(self.outcome, Outcome::Pending)
    }

    fn cancelled(&self) -> bool {
        matches!(self.outcome, Outcome::Cancelled(_))
    }

    fn result(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.outcome(py)
            .unwrap_or_else(|| Err(invalid_state(py, "Result is not set.")))
    }

    fn exception(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match &self.outcome {
            Outcome::Pending => Err(invalid_state(py, "Exception is not set.")),
            Outcome::Done(_) => Ok(None),
            Outcome::Failed(error) => Ok(Some(error.value(py).clone().into_any().unbind())),
            Outcome::Cancelled(message) => Err(cancelled_error(py, message.as_ref())),
        }
    }

    #[pyo3(signature = (function, *, context = None))]
    fn add_done_callback(
        slf: &Bound<'_, Self>,
        function: Py<PyAny>,
        context: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let mut this = slf.borrow_mut();
        if matches!(this.outcome, Outcome::Pending) {
            this.callbacks.push(Callback { function, context });
            return Ok(());
        }
        // Already done: schedule like asyncio.Future does, never run inline.
        let event_loop = this.event_loop.clone_ref(py);
        drop(this);
        call_soon(py, event_loop.bind(py), slf, Callback { function, context })
    }

    fn remove_done_callback(
        &mut self,
        py: Python<'_>,
        function: &Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        let before = self.callbacks.len();
        let mut kept = Vec::with_capacity(before);
        for callback in self.callbacks.drain(..) {
            if !callback.function.bind(py).eq(function)? {
                kept.push(callback);
            }
        }
        self.callbacks = kept;
        Ok(before - self.callbacks.len())
    }

    /// Cancels the Rust future: it is dropped (on its runtime's thread) and the done
    /// callbacks are scheduled, as `asyncio.Future.cancel` does.
    #[pyo3(signature = (msg = None))]
    fn cancel(slf: &Bound<'_, Self>, msg: Option<Py<PyAny>>) -> PyResult<bool> {
        let py = slf.py();
        let mut this = slf.borrow_mut();
        if !matches!(this.outcome, Outcome::Pending) {
            return Ok(false);
        }
        let mut stop = None;
        if let Some(source) = this.source.clone() {
            match source.arrival() {
                // The result is already on its way: the drain will deliver it.
                Arrival::Arrived => return Ok(false),
                Arrival::Pending => stop = Some(source),
                Arrival::Untracked => {
                    let message = msg.as_ref().map(|msg| Arc::new(msg.clone_ref(py)));
                    let (cancelled, unwound) =
                        unwinding::collect(|| with_cancel_message(message, || source.cancel(py)));
                    this.unwound.extend(unwound);
                    if !cancelled {
                        return Ok(false);
                    }
                }
            }
        }
        this.source = None;
        let message = stop
            .as_ref()
            .and(msg.as_ref())
            .map(|msg| Arc::new(msg.clone_ref(py)));
        this.outcome = Outcome::Cancelled(msg);
        let callbacks = std::mem::take(&mut this.callbacks);
        let event_loop = this.event_loop.clone_ref(py);
        drop(this);
        defer_cancelled(py, event_loop.bind(py), slf, stop, message, callbacks)?;
        Ok(true)
    }

    fn __repr__(&self) -> &'static str {
        match self.outcome {
            Outcome::Pending => "<RustFutureWaiter pending>",
            Outcome::Done(_) => "<RustFutureWaiter finished>",
            Outcome::Failed(_) => "<RustFutureWaiter exception>",
            Outcome::Cancelled(_) => "<RustFutureWaiter cancelled>",
        }
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.event_loop)?;
        for callback in self.callbacks.iter().chain(&self.parked) {
            visit.call(&callback.function)?;
            if let Some(context) = &callback.context {
                visit.call(context)?;
            }
        }
        if let Outcome::Done(value) = &self.outcome {
            visit.call(value)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.callbacks.clear();
        self.parked.clear();
    }
}

fn call_soon(
    py: Python<'_>,
    event_loop: &Bound<'_, PyAny>,
    waiter: &Bound<'_, RustFutureWaiter>,
    callback: Callback,
) -> PyResult<()> {
    let call_soon = pyo3::intern!(py, "call_soon");
    schedule_callback(py, event_loop, call_soon, waiter, callback)
}

/// `event_loop.<method>(callback, waiter, context=...)`.
fn schedule_callback(
    py: Python<'_>,
    event_loop: &Bound<'_, PyAny>,
    method: &Bound<'_, pyo3::types::PyString>,
    waiter: &Bound<'_, RustFutureWaiter>,
    callback: Callback,
) -> PyResult<()> {
    let kwargs = pyo3::types::PyDict::new(py);
    if let Some(context) = callback.context {
        kwargs.set_item("context", context)?;
    }
    event_loop.call_method(method, (callback.function, waiter), Some(&kwargs))?;
    Ok(())
}

impl Drop for RustFutureWaiter {
    fn drop(&mut self) {
        // A waiter dropped while pending (its Task was garbage-collected) stops its future.
        if let Some(source) = self.source.take() {
            crate::forced_exit::attach(|py| {
                source.stop(py);
            });
        }
    }
}
