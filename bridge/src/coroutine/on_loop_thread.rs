//! The loop-thread home: a future (every `!Send` one, and `Send` ones by choice) kept on
//! the event loop's thread and re-polled there, from the loop's drain, when woken.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::task::Context;
use std::task::Poll;
use std::task::Wake;
use std::task::Waker;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::sync::lock;

use crate::coroutine::Start;
use crate::coroutine::Started;
use crate::coroutine::to_python;
use crate::event_loop::Resume;
use crate::event_loop::waker::{LoopBound, LoopWaker};
use crate::framework::Framework;
use crate::framework::Suspended;
use crate::locals::LocalsSlot;
use crate::locals::fill;
use crate::locals::scoped;
use crate::options::FirstPoll;
use crate::panic::poll_catching;
use crate::thread_bound::ThreadBound;
use crate::waiter::source::Source;

pub(crate) struct LoopThreadStart<F> {
    future: ThreadBound<Pin<Box<crate::locals::Scoped<F>>>>,
    slot: LocalsSlot,
    first_poll: FirstPoll,
}

impl<F: Future> LoopThreadStart<F> {
    pub(crate) fn new(future: F, first_poll: FirstPoll) -> Self {
        let slot: LocalsSlot = Arc::new(OnceLock::new());
        Self {
            future: ThreadBound::new(Box::pin(scoped(slot.clone(), future))),
            slot,
            first_poll,
        }
    }
}

impl<F, T> Start for LoopThreadStart<F>
where
    F: Future<Output = PyResult<T>> + 'static,
    T: for<'py> IntoPyObject<'py> + 'static,
{
    fn start(self: Box<Self>, py: Python<'_>) -> PyResult<Started> {
        let mut this = *self;
        if this.future.get_mut().is_none() {
            return Err(PyRuntimeError::new_err(
                "a !Send Rust future was awaited on another thread than the one that created it",
            ));
        }
        start_on_loop_thread(py, this.future, this.slot, this.first_poll)
    }
}

pub(crate) fn start_on_loop_thread<F, T>(
    py: Python<'_>,
    future: ThreadBound<Pin<Box<F>>>,
    slot: LocalsSlot,
    first_poll: FirstPoll,
) -> PyResult<Started>
where
    F: Future<Output = PyResult<T>> + 'static,
    T: for<'py> IntoPyObject<'py> + 'static,
{
    let framework = Framework::require(py)?;
    let shared = framework.shared(py)?;
    let task = LoopWaker::new(
        Arc::downgrade(&shared),
        LoopThreadTask {
            state: Mutex::new(LoopThreadState {
                future: Some(future),
                waiter: None,
                cancelled: false,
            }),
            _output: std::marker::PhantomData,
        },
    );
    match first_poll {
        FirstPoll::Inline => {
            if let Poll::Ready(result) = LoopThreadTask::poll(&task, py) {
                return Ok(Started::Ready(result));
            }
        }
        // Polled by the next drain.
        FirstPoll::Deferred => task.wake_by_ref(),
    }
    let tracked: std::sync::Weak<dyn Resume> = Arc::downgrade(&task) as _;
    shared.track(py, tracked);
    fill(py, &slot, framework.event_loop())?;
    let (started, waiter) = framework.suspend_here(py, task.clone())?;
    task.target().lock().waiter = Some(waiter);
    Ok(started)
}

/// A loop-thread future's state, behind the task's lock (held for a take or a store, never
/// across a poll, so the future may cancel its own waiter).
///
/// ```text
///                 poll: Pending (not cancelled)
///               .--------------------------.
///               v                          |
///  future: Some(f) -- poll (taken out) --> polling --- Ready ---> future: None, waiter resolved
///      |                                   |
///      |                                   `-- Pending, cancelled meanwhile --> None (dropped)
///      `-- cancel / loop closed ---> future: None, waiter: None, (cancelled = true)
/// ```
///
/// `waiter` is set once, after a first poll left the future pending; it is taken when the
/// future finishes (to resolve it), is cancelled, or its loop closes. `cancelled` tells a
/// poll in progress not to put the future back.
pub(crate) struct LoopThreadState<F: ?Sized> {
    future: Option<ThreadBound<Pin<Box<F>>>>,
    waiter: Option<Suspended>,
    cancelled: bool,
}

pub(crate) struct LoopThreadTask<F: ?Sized, T> {
    state: Mutex<LoopThreadState<F>>,
    _output: std::marker::PhantomData<fn() -> T>,
}

impl<F, T> LoopThreadTask<F, T>
where
    F: Future<Output = PyResult<T>> + 'static,
    T: for<'py> IntoPyObject<'py> + 'static,
{
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, LoopThreadState<F>> {
        lock(&self.state)
    }

    /// Polls the future on the loop thread. The lock is not held while polling, so the
    /// future may cancel its own waiter.
    fn poll(task: &Arc<LoopWaker<Self>>, py: Python<'_>) -> Poll<PyResult<Py<PyAny>>> {
        task.rearm();
        let this = task.target();
        let Some(mut bound) = this.lock().future.take() else {
            return Poll::Pending;
        };
        let Some(future) = bound.get_mut() else {
            // Not the owner thread: cannot happen for items drained by the loop thread.
            this.lock().future = Some(bound);
            return Poll::Pending;
        };
        let waker = Waker::from(task.clone());
        let polled = poll_catching(future.as_mut(), &mut Context::from_waker(&waker));
        match polled {
            Poll::Ready(result) => {
                drop(bound);
                Poll::Ready(to_python(py, result))
            }
            Poll::Pending => {
                let mut state = this.lock();
                if !state.cancelled {
                    state.future = Some(bound);
                }
                Poll::Pending
            }
        }
    }
}

impl<F, T> LoopBound for LoopThreadTask<F, T>
where
    F: Future<Output = PyResult<T>> + 'static,
    T: for<'py> IntoPyObject<'py> + 'static,
{
    fn run(&self, py: Python<'_>, waker: &Arc<LoopWaker<Self>>) {
        if let Poll::Ready(result) = Self::poll(waker, py) {
            let waiter = self.lock().waiter.take();
            if let Some(waiter) = waiter {
                waiter.resolve_with(py, result);
            }
        }
    }

    /// The loop closed and its Task will never run again: drop the future and free the
    /// waiter of the Task's wake-up, so the Task, its coroutine and the loop can go.
    fn loop_closed(&self, py: Python<'_>) {
        let waiter = self
            .lock()
            .waiter
            .as_ref()
            .map(|waiter| waiter.clone_ref(py));
        self.abandon();
        if let Some(waiter) = waiter {
            waiter.loop_closed(py);
        }
    }

    /// The loop closed: nothing will poll this future again. Let go of the waiter (a
    /// cycle through this waker otherwise) and of the future: a `Send` one is dropped
    /// here, a `!Send` one only on its own thread (else leaked; see `ThreadBound`).
    fn abandon(&self) {
        let (future, waiter) = {
            let mut state = self.lock();
            (state.future.take(), state.waiter.take())
        };
        drop(future);
        drop(waiter);
    }
}

impl<F, T> Source for LoopWaker<LoopThreadTask<F, T>>
where
    F: Future<Output = PyResult<T>> + 'static,
    T: for<'py> IntoPyObject<'py> + 'static,
{
    fn take(&self, _py: Python<'_>) -> Option<PyResult<Py<PyAny>>> {
        None
    }

    fn cancel(&self, _py: Python<'_>) -> bool {
        let (future, waiter) = {
            let mut state = self.target().lock();
            state.cancelled = true;
            (state.future.take(), state.waiter.take())
        };
        // Dropped outside the lock: a future's destructor may run arbitrary code.
        drop(future);
        drop(waiter);
        true
    }
}

/// A coroutine for a future that lives on the loop thread (`!Send`, or a `Send` one made
/// to run there), named `name`.
pub(crate) fn loop_thread_coroutine<'py, F, T>(
    py: Python<'py>,
    first_poll: FirstPoll,
    future: F,
    name: &'static str,
) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + 'static,
    T: for<'a> IntoPyObject<'a> + 'static,
{
    let coroutine = loop_thread_object(py, first_poll, future, name);
    Ok(Bound::new(py, coroutine)?.into_any())
}

/// The object of [`loop_thread_coroutine`], not yet handed to Python.
pub(crate) fn loop_thread_object<F, T>(
    py: Python<'_>,
    first_poll: FirstPoll,
    future: F,
    name: &'static str,
) -> crate::coroutine::RustCoroutine
where
    F: Future<Output = PyResult<T>> + 'static,
    T: for<'a> IntoPyObject<'a> + 'static,
{
    crate::coroutine::install_am_send(py);
    let start = LoopThreadStart::new(future, first_poll);
    crate::coroutine::RustCoroutine::new(Box::new(start), name)
}

/// [`local_future_into_py`](crate::generic::local_future_into_py) choosing whether the
/// first poll happens inline.
///
/// # Errors
///
/// As [`local_future_into_py`](crate::generic::local_future_into_py).
pub fn local_future_into_py_with<'py, F, T>(
    py: Python<'py>,
    first_poll: FirstPoll,
    future: F,
) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + 'static,
    T: for<'a> IntoPyObject<'a> + 'static,
{
    loop_thread_coroutine(py, first_poll, future, crate::coroutine::future_name::<F>())
}
