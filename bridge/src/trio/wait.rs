//! Suspending a trio task on a Rust future that runs on its runtime's threads.
//!
//! The coroutine yields what `trio.lowlevel.wait_task_rescheduled(abort)` yields, with a
//! [`TrioWait`]'s `abort` as the abort function; the loop's drain (the run's drain task)
//! resumes the task with `trio.lowlevel.reschedule(task, outcome)`, and the coroutine
//! unwraps the outcome trio sends it.

use std::sync::Arc;
use std::task::Context;
use std::task::Waker;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::callables;
use crate::event_loop::LoopItem;
use crate::event_loop::LoopRef;
use crate::event_loop::LoopShared;
use crate::event_loop::queue_on;
use crate::event_loop::waker::{KeptForLoop, LoopBound, LoopWaker, tracked};
use crate::unwinding;
use crate::unwinding::Unwound;
use crate::waiter::Arrival;
use crate::waiter::source::Source;

/// Where a suspended task stands.
///
/// ```text
///            drain: result arrived -> reschedule(task, Value | Error)
///  Waiting -------------------------------------------------------------> Done
///     |  \                                                                 ^
///     |   `-- abort, future dropped at once -> Abort.SUCCEEDED ------------|
///     |                                                                    |
///     `-- abort, a runtime thread is polling it,  -> Aborting --(drain: gone,  -'
///         or the drop cancelled Python tasks            tasks unwound)
///                                                  reschedule(task, capture(raise_cancel))
/// ```
///
/// An abort that finds the result already arrived answers `Abort.FAILED` and stays
/// `Waiting`: the drain reschedules the task with the result, as trio's rules ask of an
/// operation that completed before it could be cancelled. The source is dropped on
/// leaving `Waiting`, which breaks the cycle wait -> cell -> waker -> wait.
enum WaitState {
    Waiting(Arc<dyn Source>),
    Aborting(Aborting),
    Done,
}

/// An aborted wait, until the task can see its cancellation: its future is gone (`stopped`
/// is the source of one a runtime thread was still polling, until then) and the Python
/// tasks the drop cancelled have unwound (see `unwinding.rs`).
struct Aborting {
    raise_cancel: Py<PyAny>,
    stopped: Option<Arc<dyn Source>>,
    unwound: Unwound,
}

/// Who waits for the result.
///
/// An eager future (`future_into_py_eager`) is started before any task awaits it, so its
/// wait begins with `NotYet`: a result that arrives then stays in its cell for the await to
/// find. Its coroutine dropped unawaited makes it `Never`: the future keeps running (fire
/// and forget) and its result is dropped when it arrives.
enum Awaiter {
    Task(Py<PyAny>),
    NotYet,
    Never,
}

/// A trio task suspended on a Rust future: its abort function and what the drain resumes.
#[pyclass(name = "_TrioWait", module = "pyo3_aio")]
pub struct TrioWait {
    awaiter: Awaiter,
    state: WaitState,
    /// The run's state, where an abort queues the rest of a dropped future's stop (a
    /// runtime future's; `None` for a loop-thread one, which is stopped on the spot).
    shared: Option<LoopRef>,
}

impl TrioWait {
    /// The result arrived, or the aborted future is gone: reschedule the task. Runs in the
    /// drain, on the run's thread.
    fn resume(slf: &Bound<'_, Self>) {
        let py = slf.py();
        if matches!(slf.borrow().awaiter, Awaiter::NotYet) {
            // The result stays in its cell until a task awaits it.
            return;
        }
        let state = std::mem::replace(&mut slf.borrow_mut().state, WaitState::Done);
        let outcome = match state {
            WaitState::Waiting(source) => match source.take(py) {
                // Nobody will ever await it: the result goes with the source.
                Some(_) if matches!(slf.borrow().awaiter, Awaiter::Never) => return,
                Some(result) => outcome_of(py, result),
                None => {
                    // A wake with nothing to deliver yet.
                    slf.borrow_mut().state = WaitState::Waiting(source);
                    return;
                }
            },
            WaitState::Aborting(mut aborting) => {
                if let Some(source) = aborting.stopped.take() {
                    aborting.unwound.extend(source.take_unwound());
                }
                if Self::still_unwinding(slf, &mut aborting.unwound) {
                    slf.borrow_mut().state = WaitState::Aborting(aborting);
                    return;
                }
                callables::outcome_capture(py)
                    .and_then(|capture| capture.call1((aborting.raise_cancel,)))
            }
            WaitState::Done => return,
        };
        let Some(task) = slf.borrow().task(py) else {
            return;
        };
        let rescheduled = outcome.and_then(|outcome| {
            callables::trio_reschedule(py)?.call1((task, outcome))?;
            Ok(())
        });
        if let Err(error) = rescheduled {
            error.write_unraisable(py, Some(slf));
        }
    }

    /// Whether some of the Python tasks its future's drop cancelled are still unwinding;
    /// the last to finish resumes this wait again (from the drain).
    fn still_unwinding(slf: &Bound<'_, Self>, unwound: &mut Unwound) -> bool {
        if unwound.is_empty() {
            return false;
        }
        let py = slf.py();
        let run = match slf.borrow().shared.clone() {
            Some(shared) => shared.upgrade(),
            // A loop-thread future's wait: its run is the one running here.
            None => crate::trio::current_token(py)
                .and_then(|token| crate::trio::run_shared(py, &token).ok()),
        };
        let Some(run) = run.filter(|run| !run.is_closed()) else {
            // The run's drain has ended: nothing would resume the task later.
            return false;
        };
        let notify = tracked(
            py,
            &run,
            RescheduleTask {
                wait: KeptForLoop::new(slf.clone().unbind()),
            },
        );
        unwound
            .poll(&mut Context::from_waker(&Waker::from(notify)))
            .is_pending()
    }

    /// Resumes the task with a result computed on the loop thread (a loop-thread future
    /// finished), unless it was aborted.
    pub(crate) fn resolve_with(slf: &Bound<'_, Self>, result: PyResult<Py<PyAny>>) {
        let py = slf.py();
        let state = std::mem::replace(&mut slf.borrow_mut().state, WaitState::Done);
        if !matches!(state, WaitState::Waiting(_)) {
            slf.borrow_mut().state = state;
            return;
        }
        drop(state);
        let Some(task) = slf.borrow().task(py) else {
            return;
        };
        let rescheduled = outcome_of(py, result).and_then(|outcome| {
            callables::trio_reschedule(py)?.call1((task, outcome))?;
            Ok(())
        });
        if let Err(error) = rescheduled {
            error.write_unraisable(py, Some(slf));
        }
    }

    /// The task that awaits, if one does.
    fn task(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        match &self.awaiter {
            Awaiter::Task(task) => Some(task.clone_ref(py)),
            Awaiter::NotYet | Awaiter::Never => None,
        }
    }

    /// An eager future's result, if it arrived before any task awaited it (the wait is
    /// done then).
    pub(crate) fn take_arrived(slf: &Bound<'_, Self>) -> Option<PyResult<Py<PyAny>>> {
        let taken = match &slf.borrow().state {
            WaitState::Waiting(source) => source.take(slf.py())?,
            _ => return None,
        };
        slf.borrow_mut().state = WaitState::Done;
        Some(taken)
    }

    /// The current trio task awaits an eager future's result, which has not arrived: the
    /// message that suspends it (the drain reschedules it, as for any wait).
    pub(crate) fn claim(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let task = callables::trio_current_task(py)?.call0()?.unbind();
        slf.borrow_mut().awaiter = Awaiter::Task(task);
        message(slf)
    }

    /// An eager future's coroutine was dropped unawaited: the future runs on, and its
    /// result, once it arrives, is dropped.
    pub(crate) fn abandon(slf: &Bound<'_, Self>) {
        slf.borrow_mut().awaiter = Awaiter::Never;
        drop(Self::take_arrived(slf));
    }

    /// The coroutine ended from outside (`close`, `throw`) while waiting: the Rust future
    /// is dropped.
    pub(crate) fn coroutine_finished(slf: &Bound<'_, Self>) {
        let state = std::mem::replace(&mut slf.borrow_mut().state, WaitState::Done);
        if let WaitState::Waiting(source) = state {
            source.stop(slf.py());
        }
    }
}

/// `outcome.Value(value)` or `outcome.Error(exception)`.
fn outcome_of<'py>(py: Python<'py>, result: PyResult<Py<PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    match result {
        Ok(value) => callables::outcome_value(py)?.call1((value,)),
        Err(error) => callables::outcome_error(py)?.call1((error.value(py),)),
    }
}

#[pymethods]
impl TrioWait {
    /// trio's abort function: the task's cancel scope was cancelled (or Ctrl-C arrived).
    /// The Rust future is dropped here unless a runtime thread is polling it at this
    /// instant; then the task is rescheduled with the cancellation once that thread has
    /// dropped it. So the future is gone before the cancellation is seen.
    fn abort(slf: &Bound<'_, Self>, raise_cancel: Py<PyAny>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let source = match &slf.borrow().state {
            WaitState::Waiting(source) if source.arrival() != Arrival::Arrived => source.clone(),
            // Arrived: the drain reschedules the task with the result. Not waiting: trio
            // asks once per wait, so this is not reached.
            _ => return Ok(callables::trio_abort_failed(py)?.clone().unbind()),
        };
        slf.borrow_mut().state = WaitState::Done;
        let shared = slf.borrow().shared.clone();
        let (gone, mut unwound) = unwinding::collect(|| {
            if !source.discard_now() {
                return source.stop(py);
            }
            // Dropped here; cancelling its cell wakes its runtime task, which is left to the
            // next drain so that one cancel scope aborting 10,000 tasks wakes the runtime's
            // threads in one burst, not once per abort (a closed run drops the item, and
            // with it the cell's consumer: a cancel too).
            if let Some(shared) = shared {
                let source = source.clone();
                queue_on(
                    &shared,
                    LoopItem::Call(Box::new(move |py| {
                        source.cancel(py);
                        Ok(())
                    })),
                );
            }
            true
        });
        let stopped = if gone {
            unwound.extend(source.take_unwound());
            if !Self::still_unwinding(slf, &mut unwound) {
                return Ok(callables::trio_abort_succeeded(py)?.clone().unbind());
            }
            None
        } else {
            Some(source)
        };
        slf.borrow_mut().state = WaitState::Aborting(Aborting {
            raise_cancel,
            stopped,
            unwound,
        });
        Ok(callables::trio_abort_failed(py)?.clone().unbind())
    }

    fn __repr__(&self) -> &'static str {
        match self.state {
            WaitState::Waiting(_) => "<pyo3_aio trio wait: waiting>",
            WaitState::Aborting(_) => "<pyo3_aio trio wait: aborting>",
            WaitState::Done => "<pyo3_aio trio wait: done>",
        }
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        if let Awaiter::Task(task) = &self.awaiter {
            visit.call(task)?;
        }
        if let WaitState::Aborting(aborting) = &self.state {
            visit.call(&aborting.raise_cancel)?;
        }
        Ok(())
    }
}

impl Drop for TrioWait {
    fn drop(&mut self) {
        // Dropped while waiting (its task was collected): stop the future.
        if let WaitState::Waiting(source) = std::mem::replace(&mut self.state, WaitState::Done) {
            crate::forced_exit::attach(|py| {
                source.stop(py);
            });
        }
    }
}

/// What the waker of a Rust future a trio task waits on does: resume the task.
struct RescheduleTask {
    wait: KeptForLoop<TrioWait>,
}

impl LoopBound for RescheduleTask {
    fn run(&self, py: Python<'_>, _waker: &Arc<LoopWaker<Self>>) {
        if let Some(wait) = self.wait.get(py) {
            TrioWait::resume(wait.bind(py));
        }
    }

    fn abandon(&self) {
        self.wait.release();
    }

    fn loop_closed(&self, py: Python<'_>) {
        if let Some(wait) = self.wait.take() {
            TrioWait::coroutine_finished(wait.bind(py));
        }
    }
}

/// Suspends the current trio task on `source` (see [`Framework::suspend`]): its wait, the
/// message to yield to trio's run loop, and the waker that reschedules it.
///
/// [`Framework::suspend`]: crate::framework::Framework::suspend
pub(crate) fn suspend(
    py: Python<'_>,
    shared: &Arc<LoopShared>,
    source: Arc<dyn Source>,
) -> PyResult<(Py<TrioWait>, Py<PyAny>, Waker)> {
    let task = callables::trio_current_task(py)?.call0()?.unbind();
    let (wait, waker) = tracked_wait(py, shared, source, Awaiter::Task(task))?;
    let message = message(wait.bind(py))?;
    Ok((wait, message, waker))
}

/// The wait of an eager future started under trio, before any task awaits it (see
/// [`TrioWait::claim`]), and the waker that resumes it. Callable from any thread.
pub(crate) fn unclaimed(
    py: Python<'_>,
    shared: &Arc<LoopShared>,
    source: Arc<dyn Source>,
) -> PyResult<(Py<TrioWait>, Waker)> {
    tracked_wait(py, shared, source, Awaiter::NotYet)
}

/// A wait on a runtime future's `source`, with the waker that resumes it from the run's
/// drain; tracked, so a run that ends first releases the future.
fn tracked_wait(
    py: Python<'_>,
    shared: &Arc<LoopShared>,
    source: Arc<dyn Source>,
    awaiter: Awaiter,
) -> PyResult<(Py<TrioWait>, Waker)> {
    let wait = Py::new(
        py,
        TrioWait {
            awaiter,
            state: WaitState::Waiting(source),
            shared: Some(Arc::downgrade(shared)),
        },
    )?;
    let notify = tracked(
        py,
        shared,
        RescheduleTask {
            wait: KeptForLoop::new(wait.clone_ref(py)),
        },
    );
    Ok((wait, Waker::from(notify)))
}

/// A wait of the current trio task on `source` (a loop-thread future, stopped on the spot
/// when aborted), and the message that suspends the task.
pub(crate) fn wait(py: Python<'_>, source: Arc<dyn Source>) -> PyResult<(Py<TrioWait>, Py<PyAny>)> {
    let task = callables::trio_current_task(py)?.call0()?.unbind();
    let wait = Py::new(
        py,
        TrioWait {
            awaiter: Awaiter::Task(task),
            state: WaitState::Waiting(source),
            shared: None,
        },
    )?;
    let message = message(wait.bind(py))?;
    Ok((wait, message))
}

/// What the awaiting task yields to trio's run loop: `wait_task_rescheduled`'s message
/// with `wait`'s abort function.
fn message(wait: &Bound<'_, TrioWait>) -> PyResult<Py<PyAny>> {
    let py = wait.py();
    let abort = wait.getattr(pyo3::intern!(py, "abort"))?;
    Ok(wait_message(py)?.call1((abort,))?.unbind())
}

/// The class of what `trio.lowlevel.wait_task_rescheduled(abort)` yields to trio's run
/// loop, found once through that public function (the class itself is private).
fn wait_message(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static CLASS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    CLASS
        .get_or_try_init(py, || {
            let coroutine = py
                .import("trio.lowlevel")?
                .call_method1("wait_task_rescheduled", (py.None(),))?;
            let message = coroutine.call_method1("send", (py.None(),));
            coroutine.call_method0("close")?;
            Ok::<_, PyErr>(message?.get_type().into_any().unbind())
        })
        .map(|class| class.bind(py))
}
