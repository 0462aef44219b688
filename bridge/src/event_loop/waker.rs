//! Loop-bound wakers: a Rust waker whose wake queues work for the loop thread.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;

use pyo3::prelude::*;

use crate::sync::lock;

use crate::event_loop::LoopItem;
use crate::event_loop::LoopRef;
use crate::event_loop::Resume;
use crate::event_loop::schedule_on;

/// The body of every loop-bound waker's `wake_by_ref`: queues `target` for its loop unless
/// a wake-up is already queued (`queued`, cleared by the target's `resume`). When the loop
/// refuses it (closed or gone), the target abandons what it keeps for the loop.
pub(crate) fn wake_on_loop<T: Resume + 'static>(
    target: &Arc<T>,
    shared: &LoopRef,
    queued: &AtomicBool,
) {
    if claim(queued) && !schedule_on(shared, LoopItem::Resume(target.clone())) {
        target.abandon();
    }
}

/// A Python object a loop-bound waker keeps for the loop (the waiter to resolve, the task
/// to cancel), let go of when the loop refuses the wake-up: the object keeps the waker
/// alive (through a cell or a done-callback), so holding it for a loop that will never run
/// again would be a cycle nothing breaks.
pub(crate) struct Held<T>(Mutex<Option<Py<T>>>);

impl<T> Held<T> {
    pub(crate) fn new(object: Py<T>) -> Self {
        Self(Mutex::new(Some(object)))
    }

    /// A new reference to the object, unless it was released.
    pub(crate) fn get(&self, py: Python<'_>) -> Option<Py<T>> {
        let held = lock(&self.0);
        held.as_ref().map(|object| object.clone_ref(py))
    }

    /// Lets go of the object (without the GIL, PyO3 defers the decrement).
    pub(crate) fn release(&self) {
        drop(self.take());
    }

    /// Takes the object out, unless it was released.
    pub(crate) fn take(&self) -> Option<Py<T>> {
        lock(&self.0).take()
    }
}

/// Whether a wake-up is already queued for a target; cleared by the target's `resume`.
pub(crate) fn claim(queued: &AtomicBool) -> bool {
    // AcqRel: the target's resume clears the flag before polling (Release), so a wake
    // that finds it clear is ordered after that poll started and must queue again.
    !queued.swap(true, Ordering::AcqRel)
}
