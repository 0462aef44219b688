//! A value that may only be touched on the thread that created it.

use std::cell::Cell;
use std::mem::ManuallyDrop;
use std::thread::{self, ThreadId};

/// The calling thread's id, as `current_thread_id()` gives it, read from a per-thread
/// copy: `thread::current()` takes and drops a reference on the thread's handle (atomic
/// operations), and hot paths compare thread ids on every wake-up and poll. Usable during
/// thread-local destruction too (the copy has no destructor).
pub(crate) fn current_thread_id() -> ThreadId {
    thread_local! {
        static ID: Cell<Option<ThreadId>> = const { Cell::new(None) };
    }
    ID.with(|id| {
        id.get().unwrap_or_else(|| {
            let current = thread::current().id();
            id.set(Some(current));
            current
        })
    })
}

/// Holds a `!Send` value (a local future) inside types that must be `Send` (pyclasses,
/// wake-queue items). Access is checked against the creating thread; a value whose holder
/// is dropped on another thread is leaked rather than dropped there, since running its
/// destructor off its thread would be unsound.
pub(crate) struct ThreadBound<T> {
    owner: ThreadId,
    /// Set only for a `Send` value ([`ThreadBound::new_send`]): it may be dropped anywhere.
    send: bool,
    value: ManuallyDrop<T>,
}

// SAFETY: the value is only reached through `get_mut`, which checks that the caller runs on
// `owner`, and is only dropped on `owner` unless it is `Send` (`send`, set only by
// `new_send`, which requires it); so a `!Send` value never actually crosses threads.
unsafe impl<T> Send for ThreadBound<T> {}
// SAFETY: `&ThreadBound` gives no access to the value at all.
unsafe impl<T> Sync for ThreadBound<T> {}

impl<T> ThreadBound<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            owner: current_thread_id(),
            send: false,
            value: ManuallyDrop::new(value),
        }
    }

    /// Like [`ThreadBound::new`] for a `Send` value, which its holder may drop on any
    /// thread (a `Send` future living on the loop thread, dropped when its loop is gone).
    pub(crate) fn new_send(value: T) -> Self
    where
        T: Send,
    {
        Self {
            owner: current_thread_id(),
            send: true,
            value: ManuallyDrop::new(value),
        }
    }

    /// The value, when called on its owner thread.
    pub(crate) fn get_mut(&mut self) -> Option<&mut T> {
        (current_thread_id() == self.owner).then(|| &mut *self.value)
    }
}

impl<T> Drop for ThreadBound<T> {
    fn drop(&mut self) {
        if self.send || current_thread_id() == self.owner {
            // SAFETY: dropped once, here, on the owner thread or (a `Send` value) anywhere.
            unsafe { ManuallyDrop::drop(&mut self.value) }
        }
    }
}
