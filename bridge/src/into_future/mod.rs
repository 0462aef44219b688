//! Python awaitable -> Rust future.
//!
//! The awaitable is scheduled on its event loop as a task (right away when called on the
//! loop's thread, through the loop's wake queue otherwise). The task's done-callback
//! completes a completion cell, which wakes the Rust future. Dropping the Rust future
//! cancels the cell, whose producer-side waker queues `task.cancel()` on the loop: no GIL
//! is needed on the dropping thread.

pub(crate) mod trio;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::task::Context;
use std::task::Poll;
use std::task::Waker;

use pyo3::exceptions::PyRuntimeError;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use crate::callables;

use crate::errors::closed_cell;

use crate::sync::lock;
use pyo3_aio_core::Consumer;
use pyo3_aio_core::Producer;
use pyo3_aio_core::completion;

use crate::asyncio::cancel_task;
use crate::asyncio::create_task;
use crate::asyncio::eager::create_task_here;
use crate::asyncio::is_interrupt;
use crate::asyncio::report;
use crate::asyncio::running::running_loop;
use crate::asyncio::running::runs_here;
use crate::event_loop::LoopItem;
use crate::event_loop::LoopRef;
use crate::event_loop::inline_drain::drain_after;
use crate::event_loop::registry::loop_shared;
use crate::event_loop::registry::running_loops;
use crate::event_loop::waker::KeptForLoop;
use crate::event_loop::waker::{LoopBound, LoopWaker};
use crate::locals::TaskLocals;
use crate::locals::scoped_locals;

/// The Rust future of a Python awaitable; see [`into_future`].
///
/// Resolves to the awaitable's result, or its exception as the very same `PyErr`.
/// Dropping it before it resolves cancels the Python task.
#[must_use = "futures do nothing unless awaited; dropping this cancels the Python task"]
pub struct PyFuture {
    outcome: Outcome,
    /// The thread of the loop the task was started on right away, if it was.
    loop_thread: Option<std::thread::ThreadId>,
}

/// Where a [`PyFuture`]'s result comes from.
enum Outcome {
    /// The task's done-callback completes the cell.
    Cell(Consumer<PyResult<Py<PyAny>>>),
    /// The task finished while it was created (an eager start): its result, until taken.
    Ready(Option<PyResult<Py<PyAny>>>),
}

impl std::fmt::Debug for PyFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.outcome {
            Outcome::Cell(consumer) => f
                .debug_struct("PyFuture")
                .field("consumer", consumer)
                .finish(),
            Outcome::Ready(result) => f
                .debug_struct("PyFuture")
                .field("ready", &result.is_some())
                .finish(),
        }
    }
}

impl PyFuture {
    /// The future of a cell whose producer runs elsewhere (a trio task), not on an asyncio
    /// loop's thread.
    pub(crate) fn from_consumer(consumer: Consumer<PyResult<Py<PyAny>>>) -> Self {
        Self {
            outcome: Outcome::Cell(consumer),
            loop_thread: None,
        }
    }
}

impl Future for PyFuture {
    type Output = PyResult<Py<PyAny>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let consumer = match &mut self.outcome {
            Outcome::Ready(result) => {
                return Poll::Ready(result.take().unwrap_or_else(|| {
                    Err(PyRuntimeError::new_err(
                        "a PyFuture was polled again after it completed",
                    ))
                }));
            }
            Outcome::Cell(consumer) => consumer,
        };
        let polled = consumer.poll_result(cx);
        if polled.is_pending() {
            if self
                .loop_thread
                .is_some_and(|thread| thread == std::thread::current().id())
            {
                crate::coroutine::note_python_wait();
            }
            if let Some(error) = crate::panic::blocking_with_the_gil("a PyFuture (into_future)") {
                return Poll::Ready(Err(error));
            }
        }
        polled.map(|outcome| match outcome {
            Ok(result) => result,
            Err(closed) => Err(closed_cell(closed, || {
                PyRuntimeError::new_err(
                    "the Python awaitable was dropped before it completed: its event loop \
                     closed or stopped before running it",
                )
            })),
        })
    }
}

/// Converts a Python awaitable into a Rust future that can be awaited on any runtime.
///
/// The awaitable runs on the event loop of the current task locals: those of the converted
/// future or [`scope`](crate::scope) we are inside, else the loop running on this thread,
/// else the one event loop running in the process (so a `tokio::spawn`ed task or a plain
/// thread needs no explicit scope in the common case). It runs in a copy of the locals'
/// context.
///
/// # Errors
///
/// `TypeError` when `awaitable` is not awaitable; `RuntimeError` when no loop can be found
/// or several loops run and none is in scope (use [`scope`](crate::scope) or
/// [`into_future_with_locals`]).
///
/// ```
/// use pyo3::prelude::*;
///
/// Python::attach(|py| {
///     let error = pyo3_aio::into_future(5i32.into_pyobject(py).unwrap().into_any()).unwrap_err();
///     assert_eq!(error.to_string(), "TypeError: expected an awaitable, got 'int'");
/// });
/// ```
pub fn into_future(awaitable: Bound<'_, PyAny>) -> PyResult<PyFuture> {
    let py = awaitable.py();
    check_awaitable(&awaitable)?;
    if let Some(locals) = scoped_locals() {
        return start_awaitable(&awaitable, &locals);
    }
    match running_loop(py)? {
        // The common case, without building locals: the loop running here.
        Some(event_loop) => start_here(&awaitable, &event_loop, None),
        // A trio run here, else the one loop running in the process.
        None => start_awaitable(&awaitable, &target_locals(py)?),
    }
}

/// The locals Python work started from Rust runs with: those of the current scope, else
/// the loop running on this thread, else the one running loop (see [`into_future`]).
pub(crate) fn target_locals(py: Python<'_>) -> PyResult<TaskLocals> {
    if let Some(locals) = scoped_locals() {
        return Ok(locals);
    }
    match crate::framework::Framework::running(py)? {
        Some(framework) => Ok(TaskLocals::new(framework.event_loop().clone())),
        None => only_running_loop(py),
    }
}

/// [`into_future`] on an explicit loop and context.
///
/// # Errors
///
/// `TypeError` when `awaitable` is not awaitable.
pub fn into_future_with_locals(
    locals: &TaskLocals,
    awaitable: Bound<'_, PyAny>,
) -> PyResult<PyFuture> {
    check_awaitable(&awaitable)?;
    start_awaitable(&awaitable, locals)
}

fn only_running_loop(py: Python<'_>) -> PyResult<TaskLocals> {
    let mut running = crate::trio::running_runs(py);
    for event_loop in running_loops(py)? {
        if !crate::blocking::is_background(&event_loop)? {
            running.push(event_loop);
        }
    }
    match running.len() {
        1 => Ok(TaskLocals::new(running.remove(0))),
        // No loop runs anywhere (a Rust program or thread that just calls async Python).
        0 => Ok(TaskLocals::new(crate::blocking::first_loop(py)?)),
        count => Err(PyRuntimeError::new_err(format!(
            "{count} event loops are running, so into_future cannot tell which one to use: \
             wrap the future in pyo3_aio::scope(locals, future) or call into_future_with_locals"
        ))),
    }
}

fn check_awaitable(awaitable: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = awaitable.py();
    // SAFETY: plain type check on a valid object pointer.
    if unsafe { pyo3::ffi::PyCoro_CheckExact(awaitable.as_ptr()) } != 0 {
        return Ok(());
    }
    if callables::is_awaitable(py)?
        .call1((awaitable,))?
        .is_truthy()?
    {
        Ok(())
    } else {
        Err(PyTypeError::new_err(format!(
            "expected an awaitable, got '{}'",
            awaitable.get_type().name()?
        )))
    }
}

fn start_awaitable(awaitable: &Bound<'_, PyAny>, locals: &TaskLocals) -> PyResult<PyFuture> {
    let py = awaitable.py();
    let event_loop = locals.event_loop(py);
    let context = locals.context(py);
    // A loop running on this thread is an event loop and not closed; only other loops need
    // checking.
    if runs_here(py, &event_loop)? {
        crate::locals::check_context(context.as_ref())?;
        return start_here(awaitable, &event_loop, context.as_ref());
    }
    crate::locals::check_locals(py, locals)?;
    if crate::trio::is_token(&event_loop) {
        return trio::start(py, awaitable, locals);
    }
    if event_loop.call_method0("is_closed")?.is_truthy()? {
        return Err(PyRuntimeError::new_err("the event loop is closed"));
    }
    let (producer, consumer) = completion::<PyResult<Py<PyAny>>>();
    let shared = loop_shared(py, &event_loop)?;
    let awaitable = awaitable.clone().unbind();
    let context = match context {
        Some(context) => context,
        None => crate::asyncio::copy_current_context(py)?,
    }
    .unbind();
    let event_loop = event_loop.unbind();
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
fn start_here(
    awaitable: &Bound<'_, PyAny>,
    event_loop: &Bound<'_, PyAny>,
    context: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyFuture> {
    let py = awaitable.py();
    // SAFETY: plain type check on a valid object pointer.
    let is_coroutine = unsafe { pyo3::ffi::PyCoro_CheckExact(awaitable.as_ptr()) } != 0;
    let task = create_task_here(py, event_loop, awaitable, context)?;
    // Only a coroutine's task can be done already (an eager start); other awaitables may
    // come back as objects of their own, which need not answer `done()`.
    if is_coroutine && task.call_method0(pyo3::intern!(py, "done"))?.is_truthy()? {
        let result = task
            .call_method0(pyo3::intern!(py, "result"))
            .map(Bound::unbind);
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
        loop_thread: Some(std::thread::current().id()),
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
    let callback = Bound::new(
        py,
        IntoFutureDone {
            producer: Mutex::new(Some(producer)),
            shared: shared.clone(),
        },
    )?;
    // Register the cancellation path before anyone can complete the cell.
    let canceller = LoopWaker::new(
        shared.clone(),
        CancelTask {
            task: KeptForLoop::new(task.clone().unbind()),
            message: Mutex::new(None),
        },
    );
    let waker = Waker::from(canceller);
    let already_cancelled = lock(&callback.get().producer)
        .as_mut()
        .is_some_and(|producer| {
            producer
                .poll_cancelled(&mut Context::from_waker(&waker))
                .is_ready()
        });
    task.call_method1(pyo3::intern!(py, "add_done_callback"), (callback,))?;
    if already_cancelled {
        task.call_method0(pyo3::intern!(py, "cancel"))?;
    }
    Ok(())
}

/// Completes the cell from the task's result.
#[pyclass(frozen, name = "_IntoFutureDone", module = "pyo3_aio")]
struct IntoFutureDone {
    producer: Mutex<Option<Producer<PyResult<Py<PyAny>>>>>,
    /// The task's loop: a Rust future waiting there is resumed before this callback returns.
    shared: LoopRef,
}

#[pymethods]
impl IntoFutureDone {
    fn __call__(&self, task: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = task.py();
        let result = task
            .call_method0(pyo3::intern!(py, "result"))
            .map(Bound::unbind);
        let producer = lock(&self.producer).take();
        let Some(producer) = producer else {
            return Ok(());
        };
        // The loop calls this at the top level of an iteration, like the wake-up of a
        // Python task awaiting `task`: a Rust future on this loop's thread that waits for
        // the result resumes right here rather than one iteration later.
        drain_after(py, &self.shared, || {
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
}

impl LoopBound for CancelTask {
    /// Woken by the drop of the Rust future: when a `cancel(msg)` dropped it, the task is
    /// cancelled with that message too.
    fn woken(&self) {
        if let Some(msg) = crate::waiter::cancel_message() {
            *lock(&self.message) = Some(msg);
        }
    }

    fn run(&self, py: Python<'_>, _waker: &Arc<LoopWaker<Self>>) {
        if let Some(task) = self.task.get(py) {
            let msg = crate::sync::lock(&self.message).take();
            let msg = msg.as_deref();
            cancel_task(py, task.bind(py), msg, "pyo3-aio could not cancel a task");
        }
    }

    fn abandon(&self) {
        self.task.release();
    }
}
