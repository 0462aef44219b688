//! The inline drain: a wake caused by a top-level loop callback is drained right after it
//! returns, in the same loop iteration.
//!
//! The first item such a callback queues for its loop is not pushed onto the wake queue at
//! all: it is held here and resumed by the drain that follows, first. A round trip to
//! Python (a task's done-callback waking the Rust future that awaits the task) then makes
//! no queue node and takes none of the queue's atomic operations and no signal. Later items
//! of the same callback go through the queue, and its signal arms the drain of the queue.

use std::cell::Cell;
use std::sync::Arc;

use pyo3::prelude::*;

use crate::event_loop::LoopItem;
use crate::event_loop::LoopRef;
use crate::event_loop::LoopShared;

/// The loop whose queue a top-level callback on this thread will drain when it returns
/// (see [`drain_after`]), whether something was queued for it meanwhile, and the first
/// item meant for it, held back from the queue.
pub(crate) struct InlineDrain {
    armed: Cell<*const LoopShared>,
    pending: Cell<bool>,
    held: Cell<Option<LoopItem>>,
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

    /// Holds `item` for the drain that follows the callback armed for `shared` on this
    /// thread, if there is one and it holds nothing yet; hands `item` back otherwise.
    pub(crate) fn hold(&self, shared: &LoopShared, item: LoopItem) -> Option<LoopItem> {
        if !std::ptr::eq(self.armed.get(), shared) {
            return Some(item);
        }
        match self.held.replace(Some(item)) {
            None => None,
            // Already holding one: that one stays, this one is handed back.
            earlier => self.held.replace(earlier),
        }
    }
}

thread_local! {
    pub(crate) static INLINE_DRAIN: InlineDrain = const {
        InlineDrain {
            armed: Cell::new(std::ptr::null()),
            pending: Cell::new(false),
            held: Cell::new(None),
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
    /// Disarms; if `body` unwound after holding an item or claiming a signal, queues and
    /// signals the usual way so that nothing is stranded.
    struct Disarm<'a>(&'a LoopShared);
    impl Disarm<'_> {
        fn take(&self) -> (Option<LoopItem>, bool) {
            INLINE_DRAIN.with(|inline| {
                inline.armed.set(std::ptr::null());
                (inline.held.take(), inline.pending.replace(false))
            })
        }
    }
    impl Drop for Disarm<'_> {
        fn drop(&mut self) {
            let (held, pending) = self.take();
            // Disarmed now, so this goes onto the queue and signals if it must.
            if let Some(item) = held {
                self.0.queue(item);
            }
            if pending {
                self.0.signal();
            }
        }
    }
    let disarm = Disarm(&shared);
    body();
    let (held, pending) = disarm.take();
    drop(disarm);
    if held.is_some() || pending {
        shared.drain_after_held(py, held, pending)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::Mutex;

    use pyo3::prelude::*;

    use super::drain_after;
    use crate::event_loop::LoopItem;
    use crate::event_loop::LoopShared;

    type Log = Arc<Mutex<Vec<&'static str>>>;

    /// A call item that records `name` when the loop runs it.
    fn call(log: &Log, name: &'static str) -> LoopItem {
        let log = log.clone();
        LoopItem::Call(Box::new(move |_| {
            log.lock().unwrap().push(name);
            Ok(())
        }))
    }

    /// A loop state whose loop thread is this one (no Python loop needed).
    fn shared_here() -> Arc<LoopShared> {
        LoopShared::watched_fd().expect("an eventfd").0
    }

    #[test]
    fn a_callback_s_items_run_right_after_it_the_held_one_first() {
        Python::attach(|py| {
            let shared = shared_here();
            let log = Log::default();
            drain_after(py, &Arc::downgrade(&shared), || {
                assert!(shared.queue(call(&log, "first")));
                assert!(shared.queue(call(&log, "second")));
                assert!(
                    log.lock().unwrap().is_empty(),
                    "nothing runs inside the callback"
                );
            })
            .unwrap();
            assert_eq!(*log.lock().unwrap(), ["first", "second"]);
            // Outside a callback an item waits in the queue for the loop's drain.
            assert!(shared.queue(call(&log, "later")));
            assert_eq!(log.lock().unwrap().len(), 2);
            shared.drain(py).unwrap();
            assert_eq!(*log.lock().unwrap(), ["first", "second", "later"]);
        });
    }

    #[test]
    fn a_held_item_is_queued_when_the_callback_unwinds() {
        Python::attach(|py| {
            let shared = shared_here();
            let log = Log::default();
            let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _ = drain_after(py, &Arc::downgrade(&shared), || {
                    shared.queue(call(&log, "held"));
                    panic!("the callback fails");
                });
            }));
            assert!(unwound.is_err());
            assert!(log.lock().unwrap().is_empty());
            shared.drain(py).unwrap();
            assert_eq!(*log.lock().unwrap(), ["held"]);
        });
    }

    #[test]
    fn a_held_item_of_a_loop_closed_meanwhile_is_dropped_unrun() {
        Python::attach(|py| {
            let shared = shared_here();
            let log = Log::default();
            drain_after(py, &Arc::downgrade(&shared), || {
                assert!(shared.queue(call(&log, "held")));
                shared.close();
            })
            .unwrap();
            assert!(log.lock().unwrap().is_empty());
            assert_eq!(Arc::strong_count(&log), 1, "the item was dropped");
        });
    }
}
