//! Python awaitable -> Rust future.
//!
//! The awaitable is scheduled on its event loop as a task (right away when called on the
//! loop's thread, through the loop's wake queue otherwise; `asyncio.rs`), or as a system
//! task of a trio run (`trio.rs`). The task's done-callback completes a completion cell,
//! which wakes the Rust future. Dropping the Rust future cancels the cell, whose
//! producer-side waker queues the task's cancellation on the loop: no GIL is needed on the
//! dropping thread.

mod asyncio;
mod spare_done;
pub(crate) mod trio;

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::task::Poll;

use pyo3::exceptions::PyRuntimeError;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3_aio_core::Consumer;

use crate::asyncio::running::running_loop;
use crate::asyncio::running::runs_here;
use crate::callables;
use crate::errors::closed_cell;
use crate::event_loop::registry::running_loops;
use crate::locals::TaskLocals;
use crate::locals::scoped_locals;
use asyncio::start_here;

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
    /// Cancels the Python task and waits until it has finished, as `asyncio.wait_for`
    /// waits for the awaitable it cancelled on timeout: its `except` and `finally` have run
    /// when this returns (dropping a `PyFuture` cancels the task without waiting, unless the
    /// drop comes from cancelling the Python task that awaits the Rust future: that task
    /// sees its cancellation only once this one has unwound).
    ///
    /// Returns at once when the task had already finished or never started. Its outcome is
    /// dropped: use it after a `select!` or a timeout chose to give up on the result.
    ///
    /// ```
    /// # use pyo3::prelude::*;
    /// # Python::attach(|py| -> PyResult<()> {
    /// let asyncio = py.import("asyncio")?;
    /// let event_loop = asyncio.call_method0("new_event_loop")?;
    /// let locals = pyo3_aio::TaskLocals::new(event_loop.clone());
    /// let sleep = asyncio.call_method1("sleep", (3600,))?;
    /// let future = pyo3_aio::into_future_with_locals(&locals, sleep)?;
    /// // The loop never ran the task: there is nothing to wait for.
    /// futures_lite_block_on(future.cancel());
    /// # event_loop.call_method0("close")?;
    /// # Ok(())
    /// # }).unwrap();
    /// # fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
    /// # }
    /// ```
    pub async fn cancel(self) {
        let ((), mut unwound) = crate::unwinding::collect(|| drop(self));
        std::future::poll_fn(|cx| unwound.poll(cx)).await;
    }

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
                .is_some_and(|thread| thread == crate::thread_bound::current_thread_id())
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
    // Off the loop's thread, often a runtime's worker: the calls below run Python code.
    crate::forced_exit::park_on_forced_exit();
    crate::locals::check_locals(py, locals)?;
    if crate::trio::is_token(&event_loop) {
        return trio::start(py, awaitable, locals);
    }
    asyncio::start_elsewhere(py, awaitable, &event_loop, context)
}
