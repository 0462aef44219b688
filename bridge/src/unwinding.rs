//! A cancelled Rust future waits for the Python tasks its drop cancelled.
//!
//! A native coroutine cancelled inside `await slow()` has run `slow`'s `except` and
//! `finally` by the time its Task (or trio task) sees the cancellation. A Rust future that
//! awaits `slow` through [`into_future`](crate::into_future) holds a `PyFuture`; dropping
//! it only asks `slow`'s task to stop. So the waiter of the awaiting task notes, while it
//! drops the Rust future, every `PyFuture` that cancels a task that has not finished, and
//! resumes the awaiting task with its cancellation only once those tasks are done.
//!
//! The noting goes through a thread-local [`collect`]: a `PyFuture`'s drop wakes the
//! producer-side waker of its cell (on the dropping thread, which may be a runtime's), and
//! that waker's [`woken`](crate::event_loop::waker::LoopBound::woken) calls [`note`] with
//! itself as the [`Unwinding`] to wait for. Its task's end calls [`UnwindState::finish`].
//! Nothing is allocated unless a task is cancelled while a waiter collects.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::Weak;
use std::task::Context;
use std::task::Poll;
use std::task::Waker;

use pyo3::prelude::*;

use crate::event_loop::waker::{LoopBound, LoopWaker};
use crate::sync::lock;

/// A Python task cancelled by the drop of the `PyFuture` that awaited it.
pub(crate) trait Unwinding: Send + Sync {
    /// Ready once the task has finished unwinding (or will never run again).
    fn poll_unwound(&self, cx: &mut Context<'_>) -> Poll<()>;
    /// The task has finished (or will never run again): wakes the waiter.
    fn finish(&self);
}

/// The state behind an [`Unwinding`]: whether the task is done, who waits for it, and
/// whether anyone collected it (a task nobody waits for needs no watching).
#[derive(Default)]
pub(crate) struct UnwindState(Mutex<Inner>);

#[derive(Default)]
struct Inner {
    finished: bool,
    watched: bool,
    waker: Option<Waker>,
}

impl UnwindState {
    /// Marks the task done and wakes its waiter.
    pub(crate) fn finish(&self) {
        let waker = {
            let mut inner = lock(&self.0);
            inner.finished = true;
            inner.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether a waiter collected this task (then its end must be reported).
    pub(crate) fn is_watched(&self) -> bool {
        lock(&self.0).watched
    }

    fn watch(&self) {
        lock(&self.0).watched = true;
    }

    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = lock(&self.0);
        if inner.finished {
            return Poll::Ready(());
        }
        inner.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// A loop-bound waker target that cancels a Python task when the `PyFuture` awaiting it is
/// dropped: its waker is the [`Unwinding`] a waiter waits on.
pub(crate) trait CancelsTask {
    fn unwind_state(&self) -> &UnwindState;
}

impl<T: LoopBound + CancelsTask> Unwinding for LoopWaker<T> {
    fn poll_unwound(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.target().unwind_state().poll(cx)
    }

    fn finish(&self) {
        self.target().unwind_state().finish();
    }
}

/// The tasks one cancellation waits for.
#[derive(Default)]
pub(crate) struct Unwound(Vec<Arc<dyn Unwinding>>);

impl Unwound {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn extend(&mut self, other: Unwound) {
        self.0.extend(other.0);
    }

    /// Ready once every task has finished; drops those that have, and registers `cx` with
    /// one that has not (its end polls again).
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while let Some(first) = self.0.last() {
            if first.poll_unwound(cx).is_pending() {
                return Poll::Pending;
            }
            self.0.pop();
        }
        Poll::Ready(())
    }
}

thread_local! {
    static COLLECTING: RefCell<Option<Unwound>> = const { RefCell::new(None) };
}

/// Runs `drop` (which drops a cancelled Rust future) and returns, with its result, the
/// tasks the drop cancelled that have not finished. Nested calls each get their own.
pub(crate) fn collect<R>(drop: impl FnOnce() -> R) -> (R, Unwound) {
    /// The outer collector, put back when `drop` returns or panics (else every later drop
    /// on this thread would be noted for nobody).
    struct Outer(Option<Option<Unwound>>);
    impl Outer {
        /// Puts the outer collector back and returns this call's.
        fn put_back(&mut self) -> Option<Unwound> {
            let outer = self.0.take()?;
            COLLECTING.with(|current| current.replace(outer))
        }
    }
    impl Drop for Outer {
        fn drop(&mut self) {
            self.put_back();
        }
    }
    let outer = COLLECTING.with(|current| current.replace(Some(Unwound::default())));
    let mut outer = Outer(Some(outer));
    let result = drop();
    let collected = outer.put_back();
    (result, collected.unwrap_or_default())
}

/// Whether a waiter collects on this thread now (a drop that would allocate to be noted
/// asks first).
pub(crate) fn collecting() -> bool {
    COLLECTING.with(|current| current.borrow().is_some())
}

/// Notes `task` (whose `PyFuture` is being dropped on this thread) for the waiter
/// collecting here, if one is.
pub(crate) fn note(task: Arc<dyn Unwinding>, state: &UnwindState) {
    COLLECTING.with(|current| {
        if let Some(collected) = current.borrow_mut().as_mut() {
            state.watch();
            collected.0.push(task);
        }
    });
}

/// Reports `task`'s end to the waiter that collected it: now if it is done, else from its
/// done-callback (the cancellation it was just sent needs a loop iteration or more). `task`
/// is an asyncio task, or anything with `done()` and `add_done_callback(fn)` (the stream
/// pump's task under trio).
pub(crate) fn finish_when_done(task: &Bound<'_, PyAny>, unwinding: Weak<dyn Unwinding>) {
    let py = task.py();
    let done = task
        .call_method0(pyo3::intern!(py, "done"))
        .and_then(|done| done.is_truthy());
    if !matches!(done, Ok(false)) {
        if let Some(unwinding) = unwinding.upgrade() {
            unwinding.finish();
        }
        return;
    }
    let added = Bound::new(py, DoneCallback(unwinding.clone())).and_then(|callback| {
        task.call_method1(pyo3::intern!(py, "add_done_callback"), (callback,))
    });
    if added.is_err() {
        // No callback will come: the waiter goes on rather than wait forever.
        if let Some(unwinding) = unwinding.upgrade() {
            unwinding.finish();
        }
    }
}

/// The done-callback of a task a dropped Rust future cancelled, which a waiter waits for.
/// Holds it weakly: a waiter that went away waits for nothing.
#[pyclass(frozen, name = "_Unwound", module = "pyo3_aio")]
struct DoneCallback(Weak<dyn Unwinding>);

#[pymethods]
impl DoneCallback {
    fn __call__(&self, _task: &Bound<'_, PyAny>) {
        if let Some(unwinding) = self.0.upgrade() {
            unwinding.finish();
        }
    }
}

/// A task noted for the waiter collecting on this thread by a drop that has no waker of
/// its own to stand for it (a stream's pump task, cancelled from the loop's queue). It
/// counts as finished when dropped, unless handed to [`Noted::finish_when_done`].
pub(crate) struct Noted(Option<Arc<Standalone>>);

struct Standalone(UnwindState);

impl Unwinding for Standalone {
    fn poll_unwound(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.0.poll(cx)
    }

    fn finish(&self) {
        self.0.finish();
    }
}

impl Noted {
    /// Notes a task for the waiter collecting here; nothing (and no allocation) when none
    /// is.
    pub(crate) fn here() -> Self {
        if !collecting() {
            return Self(None);
        }
        let task = Arc::new(Standalone(UnwindState::default()));
        note(task.clone(), &task.0);
        Self(Some(task))
    }

    /// `task` (just cancelled) reports its end when it is done.
    pub(crate) fn finish_when_done(mut self, task: &Bound<'_, PyAny>) {
        if let Some(noted) = self.0.take() {
            let weak: Weak<dyn Unwinding> = Arc::downgrade(&noted) as _;
            finish_when_done(task, weak);
        }
    }
}

impl Drop for Noted {
    fn drop(&mut self) {
        if let Some(noted) = self.0.take() {
            noted.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Task(UnwindState);

    impl Unwinding for Task {
        fn poll_unwound(&self, cx: &mut Context<'_>) -> Poll<()> {
            self.0.poll(cx)
        }

        fn finish(&self) {
            self.0.finish();
        }
    }

    #[test]
    fn only_a_drop_inside_collect_is_noted_and_waited_for_until_finished() {
        let task = Arc::new(Task(UnwindState::default()));
        note(task.clone(), &task.0);
        assert!(!task.0.is_watched(), "nobody collects outside collect()");
        let ((), mut unwound) = collect(|| {
            let ((), inner) = collect(|| {});
            assert!(inner.is_empty());
            note(task.clone(), &task.0);
        });
        assert!(task.0.is_watched());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(unwound.poll(&mut cx).is_pending());
        task.0.finish();
        assert!(unwound.poll(&mut cx).is_ready());
        assert!(unwound.is_empty());
        let panicked = std::panic::catch_unwind(|| collect(|| panic!("a destructor")));
        assert!(panicked.is_err());
        assert!(!collecting(), "a panicking drop leaves no collector behind");
    }
}
