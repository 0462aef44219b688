//! Python awaitable -> Rust future on an asyncio loop: the awaitable runs as a task of its
//! loop, started right here on the loop's thread (eagerly where Python can), or through the
//! loop's wake queue from any other thread. The task's done-callback completes the cell the
//! [`PyFuture`] waits on; dropping the `PyFuture` queues `task.cancel()` on the loop.

use std::sync::Arc;
use std::sync::Mutex;
use std::task::Context;
use std::task::Waker;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3_aio_core::Producer;
use pyo3_aio_core::completion;

use crate::asyncio::cancel_task;
use crate::asyncio::create_task;
use crate::asyncio::eager::{create_task_here, eager_start_exists};
use crate::asyncio::is_interrupt;
use crate::asyncio::report;
use crate::asyncio::{add_done_callback, task_done, task_result};
use crate::event_loop::LoopItem;
use crate::event_loop::LoopRef;
use crate::event_loop::inline_drain::drain_after;
use crate::event_loop::registry::loop_shared;
use crate::event_loop::waker::KeptForLoop;
use crate::event_loop::waker::{LoopBound, LoopWaker};
use crate::gil_cell::GilCell;
use crate::into_future::spare_done;
use crate::into_future::{Outcome, PyFuture};
use crate::sync::lock;
use crate::unwinding;
use crate::unwinding::{CancelsTask, UnwindState, Unwinding};

/// Starts the awaitable on `event_loop`, an asyncio loop running on another thread (or not
/// running yet): the task is created there, in `context` (else a copy of the current one),
/// by a call queued on the loop.
pub(super) fn start_elsewhere(
    py: Python<'_>,
    awaitable: &Bound<'_, PyAny>,
    event_loop: &Bound<'_, PyAny>,
    context: Option<Bound<'_, PyAny>>,
) -> PyResult<PyFuture> {
    if event_loop.call_method0("is_closed")?.is_truthy()? {
        return Err(PyRuntimeError::new_err("the event loop is closed"));
    }
    let (producer, consumer) = completion::<PyResult<Py<PyAny>>>();
    let shared = loop_shared(py, event_loop)?;
    let awaitable = awaitable.clone().unbind();
    let context = match context {
        Some(context) => context,
        None => crate::asyncio::copy_current_context(py)?,
    }
    .unbind();
    let event_loop = event_loop.clone().unbind();
    let target = Arc::downgrade(&shared);
    shared.queue(LoopItem::Call(Box::new(move |py| {
        let event_loop = event_loop.bind(py);
        let producer = std::cell::Cell::new(Some(producer));
        if let Err(error) = start_task(
            py,
            &target,
            event_loop,
            awaitable.bind(py),
            context.bind(py),
            &producer,
        ) {
            if is_interrupt(py, &error) {
                return Err(error);
            }
            // The task could not be made (say, a future of another loop: ValueError):
            // the Rust side awaiting it gets the error, as it would on the loop thread.
            match producer.take() {
                Some(producer) => drop(producer.complete(Err(error))),
                None => report(
                    py,
                    event_loop,
                    "pyo3-aio could not schedule an awaitable",
                    error,
                ),
            }
        }
        Ok(())
    })));
    Ok(PyFuture {
        outcome: Outcome::Cell(consumer),
        loop_thread: None,
    })
}

/// Starts the awaitable on `event_loop`, which runs on this thread: a coroutine starts
/// eagerly where Python can (`asyncio/eager.rs`), and one that finished meanwhile gives a
/// `PyFuture` that is ready at once. Without a context, the task copies the current one by
/// itself: that of the Python task this Rust future runs in.
pub(super) fn start_here(
    awaitable: &Bound<'_, PyAny>,
    event_loop: &Bound<'_, PyAny>,
    context: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyFuture> {
    let py = awaitable.py();
    // SAFETY: plain type check on a valid object pointer.
    let is_coroutine = unsafe { pyo3::ffi::PyCoro_CheckExact(awaitable.as_ptr()) } != 0;
    let task = create_task_here(py, event_loop, awaitable, context)?;
    // Only a coroutine's task can be done already (an eager start, Python 3.12+); other
    // awaitables may come back as objects of their own, which need not answer `done()`.
    // (A done one that a task factory returns on an older Python is still right: its
    // done-callback then comes one loop iteration later.)
    if is_coroutine && eager_start_exists(py) && task_done(&task)? {
        let result = task_result(&task).map(Bound::unbind);
        return Ok(PyFuture {
            outcome: Outcome::Ready(Some(result)),
            loop_thread: None,
        });
    }
    let (producer, consumer) = completion::<PyResult<Py<PyAny>>>();
    let shared = loop_shared(py, event_loop)?;
    watch_task(py, &Arc::downgrade(&shared), &task, producer)?;
    Ok(PyFuture {
        outcome: Outcome::Cell(consumer),
        loop_thread: Some(crate::thread_bound::current_thread_id()),
    })
}

/// Creates the task from the loop's queue (the awaitable came from another thread).
fn start_task(
    py: Python<'_>,
    shared: &LoopRef,
    event_loop: &Bound<'_, PyAny>,
    awaitable: &Bound<'_, PyAny>,
    context: &Bound<'_, PyAny>,
    producer: &std::cell::Cell<Option<Producer<PyResult<Py<PyAny>>>>>,
) -> PyResult<()> {
    // The producer stays with the caller until the task exists, so that a failure before
    // then can complete the cell with the error.
    let Some(unstarted) = producer.take() else {
        return Ok(());
    };
    if unstarted.is_cancelled() {
        // The Rust side gave up before the task started: close a coroutine so Python does
        // not warn that it was never awaited.
        if awaitable.hasattr("close")? {
            let _ = awaitable.call_method0("close");
        }
        return Ok(());
    }
    let task = match create_task(py, event_loop, awaitable, Some(context)) {
        Ok(task) => task,
        Err(error) => {
            producer.set(Some(unstarted));
            return Err(error);
        }
    };
    watch_task(py, shared, &task, unstarted)
}

/// Completes the cell when `task` is done, and cancels `task` when the cell is cancelled.
fn watch_task(
    py: Python<'_>,
    shared: &LoopRef,
    task: &Bound<'_, PyAny>,
    producer: Producer<PyResult<Py<PyAny>>>,
) -> PyResult<()> {
    // Register the cancellation path before anyone can complete the cell.
    let canceller = LoopWaker::new(
        shared.clone(),
        CancelTask {
            task: KeptForLoop::new(task.clone().unbind()),
            message: Mutex::new(None),
            unwound: UnwindState::default(),
        },
    );
    let waker = Waker::from(canceller);
    let mut producer = producer;
    let already_cancelled = producer
        .poll_cancelled(&mut Context::from_waker(&waker))
        .is_ready();
    let watch = Watch {
        producer,
        shared: shared.clone(),
    };
    let callback = match spare_done::take(py) {
        Some(spare) => {
            let spare = spare.into_bound(py).cast_into::<IntoFutureDone>()?;
            // A kept callback holds nothing (it was called): nothing to drop.
            spare.get().watch.replace(py, Some(watch));
            spare
        }
        None => Bound::new(
            py,
            IntoFutureDone {
                watch: GilCell::new(Some(watch)),
            },
        )?,
    };
    add_done_callback(task, callback.as_any())?;
    if already_cancelled {
        task.call_method0(pyo3::intern!(py, "cancel"))?;
    }
    Ok(())
}

/// Completes the cell from the task's result.
#[pyclass(frozen, name = "_IntoFutureDone", module = "pyo3_aio")]
struct IntoFutureDone {
    /// Until called (then `None`, and the object may be reused: `spare_done.rs`).
    watch: GilCell<Option<Watch>>,
}

/// What a done-callback completes, and where.
struct Watch {
    producer: Producer<PyResult<Py<PyAny>>>,
    /// The task's loop: a Rust future waiting there is resumed before the callback returns.
    shared: LoopRef,
}

#[pymethods]
impl IntoFutureDone {
    fn __call__(slf: &Bound<'_, Self>, task: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = task.py();
        let result = task_result(task).map(Bound::unbind);
        let Some(Watch { producer, shared }) = slf.get().watch.replace(py, None) else {
            return Ok(());
        };
        spare_done::keep(slf.as_any());
        // The loop calls this at the top level of an iteration, like the wake-up of a
        // Python task awaiting `task`: a Rust future on this loop's thread that waits for
        // the result resumes right here rather than one iteration later.
        drain_after(py, &shared, || {
            // Err: the Rust future was dropped meanwhile; the result is dropped here.
            let _ = producer.complete(result);
        })
    }
}

/// The producer-side waker: the Rust future was dropped, so cancel the Python task.
struct CancelTask {
    task: KeptForLoop<PyAny>,
    /// The message of the `cancel(msg)` that dropped the Rust future, if any.
    message: Mutex<Option<crate::waiter::CancelMessage>>,
    /// The task's end, for a cancelled Rust future's waiter (see `unwinding.rs`).
    unwound: UnwindState,
}

impl CancelsTask for CancelTask {
    fn unwind_state(&self) -> &UnwindState {
        &self.unwound
    }
}

impl LoopBound for CancelTask {
    /// Woken by the drop of the Rust future: when a `cancel(msg)` dropped it, the task is
    /// cancelled with that message too.
    fn woken(&self, waker: &Arc<LoopWaker<Self>>) {
        if let Some(msg) = crate::waiter::cancel_message() {
            *lock(&self.message) = Some(msg);
        }
        unwinding::note(waker.clone(), &self.unwound);
    }

    fn run(&self, py: Python<'_>, waker: &Arc<LoopWaker<Self>>) {
        let Some(task) = self.task.get(py) else {
            self.unwound.finish();
            return;
        };
        let msg = crate::sync::lock(&self.message).take();
        let msg = msg.as_deref();
        let task = task.bind(py);
        cancel_task(py, task, msg, "pyo3-aio could not cancel a task");
        if self.unwound.is_watched() {
            let weak: std::sync::Weak<dyn Unwinding> = Arc::downgrade(waker) as _;
            unwinding::finish_when_done(task, weak);
        }
    }

    fn abandon(&self) {
        self.task.release();
        self.unwound.finish();
    }
}
