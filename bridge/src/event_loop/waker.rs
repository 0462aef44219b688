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
use crate::event_loop::queue_on;
use std::task::Wake;

/// What a [`LoopWaker`] does for its loop: the one part that differs between the bridge's
/// loop-bound wakers (resolve a waiter, set an `asyncio.Future`, cancel a task, poll a
/// loop-thread future).
pub(crate) trait LoopBound: Send + Sync + Sized + 'static {
    /// Called by every wake, on the waking thread without the GIL, before it queues;
    /// `waker` is the waker this target sits in.
    fn woken(&self, waker: &Arc<LoopWaker<Self>>) {
        let _ = waker;
    }
    /// Runs on the loop thread, with the GIL, inside the drain; `waker` is the waker this
    /// target sits in (a loop-thread future polls itself with it).
    fn run(&self, py: Python<'_>, waker: &Arc<LoopWaker<Self>>);
    /// The loop refused the wake-up (closed or gone): let go of what is kept for it.
    fn abandon(&self);
    /// See [`Resume::loop_closed`].
    fn loop_closed(&self, py: Python<'_>) {
        let _ = py;
        self.abandon();
    }
}

/// A Rust waker bound to one event loop: a wake queues the waker itself on the loop's wake
/// queue, at most once until the loop thread runs it.
///
/// The `queued` protocol: a wake swaps `queued` to `true` and queues only when it was
/// `false`; the loop thread clears it ([`LoopWaker::rearm`], Release) *before* running the
/// target (which polls or reads what the wake announced). The swap is AcqRel, so a wake
/// that finds the flag clear is ordered after that clear, hence after the run started, and
/// its effect is seen by the run it queues; a wake that finds it set happened before the
/// clear and is seen by the run already queued. So coalescing wakes loses none.
pub(crate) struct LoopWaker<T> {
    state: LoopRef,
    queued: AtomicBool,
    target: T,
}

impl<T: LoopBound> LoopWaker<T> {
    pub(crate) fn new(state: LoopRef, target: T) -> Arc<Self> {
        Arc::new(Self {
            state,
            queued: AtomicBool::new(false),
            target,
        })
    }

    pub(crate) fn target(&self) -> &T {
        &self.target
    }

    /// Lets the next wake queue again; called before each run of the target.
    pub(crate) fn rearm(&self) {
        self.queued.store(false, Ordering::Release);
    }
}

impl<T: LoopBound> Wake for LoopWaker<T> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.target.woken(self);
        // AcqRel: see the type's doc.
        let first = !self.queued.swap(true, Ordering::AcqRel);
        if first && !queue_on(&self.state, LoopItem::Resume(self.clone())) {
            self.target.abandon();
        }
    }
}

impl<T: LoopBound> Resume for LoopWaker<T> {
    fn resume(self: Arc<Self>, py: Python<'_>) {
        self.rearm();
        self.target.run(py, &self);
    }

    fn abandon(&self) {
        self.target.abandon();
    }

    fn loop_closed(&self, py: Python<'_>) {
        self.target.loop_closed(py);
    }
}

/// A loop-bound waker for `target`, tracked by its loop so that a loop that closes first
/// releases what the target keeps (see `LoopShared::track`).
pub(crate) fn tracked<T: LoopBound>(
    py: Python<'_>,
    shared: &Arc<crate::event_loop::LoopShared>,
    target: T,
) -> Arc<LoopWaker<T>> {
    let waker = LoopWaker::new(Arc::downgrade(shared), target);
    let weak: std::sync::Weak<dyn Resume> = Arc::downgrade(&waker) as _;
    shared.track(py, weak);
    waker
}

/// A Python object a loop-bound waker keeps for the loop (the waiter to resolve, the task
/// to cancel), let go of when the loop refuses the wake-up: the object keeps the waker
/// alive (through a cell or a done-callback), so holding it for a loop that will never run
/// again would be a cycle nothing breaks.
pub(crate) struct KeptForLoop<T>(Mutex<Option<Py<T>>>);

impl<T> KeptForLoop<T> {
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
