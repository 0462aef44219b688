//! The Rust side a waiter's result comes from.

use std::sync::Arc;

use pyo3::prelude::*;

use crate::event_loop::waker::{KeptForLoop, LoopBound, LoopWaker};

/// Where a source's result stands, as a cancel sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// A source cancelled on the spot ([`Source::cancel`]), whose result is not tracked
    /// apart from it (a loop-thread future).
    Untracked,
    /// A runtime future whose result has not arrived: it is stopped in the next batch
    /// (`defer_cancelled`).
    Pending,
    /// A runtime future whose result has arrived: the cancel loses, the drain delivers it.
    Arrived,
}

/// The Rust side a waiter's result comes from.
pub(crate) trait Source: Send + Sync {
    /// Takes the result once it has arrived; `None` while it has not.
    fn take(&self, py: Python<'_>) -> Option<PyResult<Py<PyAny>>>;
    /// Stops the Rust future. Returns `false` when its result has already arrived (the
    /// cancellation lost and the result will be delivered).
    fn cancel(&self, py: Python<'_>) -> bool;
    /// How a cancel of this source proceeds: on the spot, or (a future on a runtime's
    /// threads, whose cancellation wakes one of them) in a batch unless its result arrived.
    fn arrival(&self) -> Arrival {
        Arrival::Untracked
    }
    /// Cancels and drops the Rust future right here when no other thread is polling it.
    /// Returns `false` when its drop is still to come (a runtime thread is polling it at
    /// this instant): that thread drops it when the poll returns and then queues the
    /// waiter, whose [`resolve`] runs the callbacks parked until then. A cancelled future
    /// is gone before anyone sees the cancellation, as a coroutine's `finally` has run by
    /// the time its Task is done.
    fn stop(&self, py: Python<'_>) -> bool {
        self.cancel(py);
        true
    }
    /// The first half of [`stop`](Source::stop) for a batch: drops the future here if no
    /// thread is polling it, waking no one. `stop` follows and wakes what must finish.
    fn discard(&self) {}
    /// [`discard`](Source::discard), telling whether the future is gone now (`false`: a
    /// runtime thread is polling it, or this source has no future of its own to drop; use
    /// [`stop`](Source::stop) then). After `true`, a [`cancel`](Source::cancel) later
    /// still has to let the runtime task end.
    fn discard_now(&self) -> bool {
        false
    }
    /// The Python tasks that the drop of this source's future (on a runtime's thread, or
    /// in [`discard`](Source::discard)) cancelled and that have not finished: a cancelled
    /// waiter resumes its task once they have (see `unwinding.rs`). Empty until the future
    /// is gone.
    fn take_unwound(&self) -> crate::unwinding::Unwound {
        crate::unwinding::Unwound::default()
    }
}

/// What the waker of a spawned future's consumer does: resolve the waiter on the loop thread.
pub(crate) struct ResolveWaiter {
    pub(crate) waiter: KeptForLoop<crate::waiter::RustFutureWaiter>,
}

impl LoopBound for ResolveWaiter {
    fn run(&self, py: Python<'_>, _waker: &Arc<LoopWaker<Self>>) {
        if let Some(waiter) = self.waiter.get(py) {
            crate::waiter::resolve(py, waiter.bind(py));
        }
    }

    fn abandon(&self) {
        self.waiter.release();
    }

    fn loop_closed(&self, py: Python<'_>) {
        if let Some(waiter) = self.waiter.take() {
            crate::waiter::RustFutureWaiter::loop_closed(waiter.bind(py));
        }
    }
}
