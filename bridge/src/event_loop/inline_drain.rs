//! The inline drain: a wake caused by a top-level loop callback is drained right after it
//! returns, in the same loop iteration.

use std::cell::Cell;
use std::sync::Arc;

use pyo3::prelude::*;

use crate::event_loop::LoopRef;
use crate::event_loop::LoopShared;

/// The loop whose queue a top-level callback on this thread will drain when it returns
/// (see [`drain_after`]), and whether something was queued for it meanwhile.
pub(crate) struct InlineDrain {
    armed: Cell<*const LoopShared>,
    pending: Cell<bool>,
}

impl InlineDrain {
    /// Takes a signal for `shared` if a callback armed for it runs on this thread.
    pub(crate) fn take_signal(&self, shared: &LoopShared) -> bool {
        let mine = std::ptr::eq(self.armed.get(), shared);
        if mine {
            self.pending.set(true);
        }
        mine
    }
}

thread_local! {
    pub(crate) static INLINE_DRAIN: InlineDrain = const {
        InlineDrain {
            armed: Cell::new(std::ptr::null()),
            pending: Cell::new(false),
        }
    };
}

/// Runs `body`, a callback the loop of `shared` called at the top level (not inside a task
/// step or a drain), and drains that loop's queue right after it if `body` queued
/// something there, instead of scheduling the drain for the next loop iteration.
///
/// This is for the done-callback of a Python task a Rust future waits for: the future's
/// task resumes in the same iteration, as an asyncio task awaiting a task does (asyncio
/// schedules the awaiting task's wake-up as the done-callback; here the done-callback is
/// ours and resumes it directly). Wakes that happen during the drain itself are not
/// drained inline: they take the usual `call_soon`, so one callback cannot run the loop's
/// work unboundedly.
pub(crate) fn drain_after(py: Python<'_>, shared: &LoopRef, body: impl FnOnce()) -> PyResult<()> {
    let Some(shared) = shared.upgrade() else {
        body();
        return Ok(());
    };
    let armed = INLINE_DRAIN.with(|inline| {
        if !inline.armed.get().is_null() {
            return false;
        }
        inline.armed.set(Arc::as_ptr(&shared));
        inline.pending.set(false);
        true
    });
    if !armed {
        body();
        return Ok(());
    }
    /// Disarms; if `body` unwound after claiming a signal, signals the usual way so the
    /// queued item is not stranded.
    struct Disarm<'a>(&'a LoopShared);
    impl Disarm<'_> {
        fn take_pending(&self) -> bool {
            INLINE_DRAIN.with(|inline| {
                inline.armed.set(std::ptr::null());
                inline.pending.replace(false)
            })
        }
    }
    impl Drop for Disarm<'_> {
        fn drop(&mut self) {
            if self.take_pending() {
                self.0.signal();
            }
        }
    }
    let disarm = Disarm(&shared);
    body();
    let pending = disarm.take_pending();
    drop(disarm);
    if pending {
        shared.drain(py)?;
    }
    Ok(())
}
