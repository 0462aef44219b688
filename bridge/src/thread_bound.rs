//! A value that may only be touched on the thread that created it.

use std::mem::ManuallyDrop;
use std::thread::{self, ThreadId};

/// Holds a `!Send` value (a local future) inside types that must be `Send` (pyclasses,
/// wake-queue items). Access is checked against the creating thread; a value whose holder
/// is dropped on another thread is leaked rather than dropped there, since running its
/// destructor off its thread would be unsound.
pub(crate) struct ThreadBound<T> {
    owner: ThreadId,
    value: ManuallyDrop<T>,
}

// SAFETY: the value is only reached through `get_mut`, which checks that the caller runs on
// `owner`, and is only dropped on `owner`; so it never actually crosses threads.
unsafe impl<T> Send for ThreadBound<T> {}
// SAFETY: `&ThreadBound` gives no access to the value at all.
unsafe impl<T> Sync for ThreadBound<T> {}

impl<T> ThreadBound<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            owner: thread::current().id(),
            value: ManuallyDrop::new(value),
        }
    }

    /// The value, when called on its owner thread.
    pub(crate) fn get_mut(&mut self) -> Option<&mut T> {
        (thread::current().id() == self.owner).then(|| &mut *self.value)
    }

    /// The value itself, when called on its owner thread; `self` back otherwise.
    pub(crate) fn into_inner(self) -> Result<T, Self> {
        if thread::current().id() != self.owner {
            return Err(self);
        }
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped (ManuallyDrop), so the value is moved out once.
        Ok(unsafe { ManuallyDrop::take(&mut this.value) })
    }
}

impl<T> Drop for ThreadBound<T> {
    fn drop(&mut self) {
        if thread::current().id() == self.owner {
            // SAFETY: dropped once, here, on the owner thread.
            unsafe { ManuallyDrop::drop(&mut self.value) }
        }
    }
}
