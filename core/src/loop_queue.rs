//! The loop queue: an event loop's [`WakeQueue`] together with the flag that says the loop
//! closed, and the hand-off between the producers and the close.
//!
//! A loop that closes will never drain again, so whatever sits in its queue then, or lands
//! there later, must be handed back to be dropped (and the Python objects it keeps for the
//! loop released) instead of waiting forever. [`close`](LoopQueue::close) sets the flag and
//! takes what is queued; a [`push`](LoopQueue::push) that finds the flag set takes what is
//! queued itself and reports [`Push::Closed`]. The race is a push landing just after the
//! close's last drain: it must see the flag. So the two sides do their two steps in
//! opposite orders:
//!
//! ```text
//! push:  enqueue (AcqRel RMW of the head)   then  read `closed` (Acquire)
//! close: set `closed` (Release)             then  drain (AcqRel swap of the head)
//! ```
//!
//! The enqueue and the drain are read-modify-writes of the one head word, so one of them
//! comes first. If the enqueue does, the close's drain takes the item. If the drain does,
//! the enqueue reads the value the drain wrote (or a later push's), so the drain's Release
//! synchronizes with the enqueue's Acquire, and the flag, set before the drain, is seen by
//! the read after the enqueue. Either way:
//!
//! > once `close` and a `push` have both returned, the pushed item is no longer in the
//! > queue: it was taken by exactly one drain (the loop's, the close's, or a refused push's).
//!
//! A push that read the flag before enqueueing would break it: read `false`, the close sets
//! the flag and drains an empty queue, the item lands and stays there for good. The loom
//! models in `loom-tests/tests/loop_queue.rs` check the invariant, and
//! `tests/planted_bug.rs` shows that they catch exactly that order.
//!
//! ```
//! use pyo3_aio_core::loop_queue::{LoopQueue, Push};
//! use pyo3_aio_core::Signal;
//!
//! let queue = LoopQueue::new();
//! assert!(matches!(queue.push(1), Push::Queued(Signal::Needed)));
//! assert_eq!(queue.drain().collect::<Vec<_>>(), [1]);
//! assert!(matches!(queue.push(2), Push::Queued(Signal::Needed)));
//! // The loop closes with 2 still queued: the close hands it back.
//! assert_eq!(queue.close().collect::<Vec<_>>(), [2]);
//! match queue.push(3) {
//!     Push::Closed(left) => assert_eq!(left.collect::<Vec<_>>(), [3]),
//!     Push::Queued(_) => unreachable!("the loop is closed"),
//! }
//! ```

use core::fmt;

use crate::sync::{AtomicBool, Ordering};
use crate::wake_queue::{Drain, Signal, WakeQueue};

/// What a [`LoopQueue::push`] did with its item.
#[must_use = "a Queued(Signal::Needed) must signal the loop, and a Closed's items must be released"]
pub enum Push<T> {
    /// The item is queued for the loop's next drain; signal the loop if the signal says
    /// [`Signal::Needed`].
    Queued(Signal),
    /// The loop closed: nothing will drain the queue again. These are the items that were
    /// still queued, this push's among them unless the close (or another refused push)
    /// took it first; the caller drops them, releasing what they keep for the loop.
    Closed(Drain<T>),
}

impl<T> fmt::Debug for Push<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Push::Queued(signal) => f.debug_tuple("Queued").field(signal).finish(),
            Push::Closed(left) => f.debug_tuple("Closed").field(left).finish(),
        }
    }
}

/// A [`WakeQueue`] that its loop can close: after [`close`](LoopQueue::close), every push is
/// refused and hands back what it finds queued.
pub struct LoopQueue<T> {
    queue: WakeQueue<T>,
    /// Set once by `close`; never cleared.
    closed: AtomicBool,
    /// Loom builds only: makes `push` read `closed` before enqueueing instead of after, so
    /// an item can land behind the close's last drain. The loom suite asserts that its
    /// models catch it.
    #[cfg(loom)]
    planted_bug: bool,
}

impl<T> LoopQueue<T> {
    /// An open, empty queue whose first push will report [`Signal::Needed`].
    pub fn new() -> Self {
        Self {
            queue: WakeQueue::new(),
            closed: AtomicBool::new(false),
            #[cfg(loom)]
            planted_bug: false,
        }
    }

    /// Loom builds only: a queue whose `push` checks the flag before enqueueing (see
    /// `LoopQueue::planted_bug`). Exists so that the loom suite can prove its models catch
    /// an item stranded in a closed loop's queue.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn with_planted_bug() -> Self {
        Self {
            planted_bug: true,
            ..Self::new()
        }
    }

    /// Queues `item` for the loop, or, on a closed loop, hands back what is left queued.
    pub fn push(&self, item: T) -> Push<T> {
        #[cfg(loom)]
        if self.planted_bug {
            // BUG, on purpose: the flag is read before the item is queued, so a close
            // between the two drains without it and the item stays queued for good.
            let closed = self.closed.load(Ordering::Acquire);
            let signal = self.queue.push(item);
            if closed {
                return Push::Closed(self.queue.drain());
            }
            return Push::Queued(signal);
        }
        let signal = self.queue.push(item);
        // Acquire, after the push's AcqRel: if `close`'s drain came before our push in the
        // head's order, our push read what that drain's Release wrote, which orders the
        // flag's store (made before the drain) before this load.
        if self.closed.load(Ordering::Acquire) {
            return Push::Closed(self.queue.drain());
        }
        Push::Queued(signal)
    }

    /// Takes every item queued so far, oldest first, and re-arms the signal (see
    /// [`WakeQueue::drain`]). The loop runs this when signalled.
    pub fn drain(&self) -> Drain<T> {
        self.queue.drain()
    }

    /// Marks the queue closed and takes what is queued, for the caller to drop. Every later
    /// push is refused; an item whose push raced this close is taken by one of the two.
    pub fn close(&self) -> Drain<T> {
        // Release, before the drain's AcqRel swap: a push whose enqueue comes after that
        // swap synchronizes with it and so sees the flag (see `push`).
        self.closed.store(true, Ordering::Release);
        self.queue.drain()
    }

    /// Whether [`close`](LoopQueue::close) has run (or is running on another thread).
    pub fn is_closed(&self) -> bool {
        // Acquire pairs with `close`'s Release, for a caller that reads state set before it.
        self.closed.load(Ordering::Acquire)
    }
}

impl<T> Default for LoopQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for LoopQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopQueue")
            .field("queue", &self.queue)
            .field("closed", &self.is_closed())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    extern crate std;

    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::{Arc, Barrier};
    use std::thread;
    use std::vec::Vec;

    #[test]
    fn an_open_queue_queues_and_signals_once_per_burst() {
        let queue = LoopQueue::new();
        assert!(matches!(queue.push(1), Push::Queued(Signal::Needed)));
        assert!(matches!(
            queue.push(2),
            Push::Queued(Signal::AlreadyPending)
        ));
        assert!(!queue.is_closed());
        assert_eq!(queue.drain().collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn a_closed_queue_refuses_and_hands_back_every_item() {
        let queue = LoopQueue::new();
        assert!(matches!(queue.push(1), Push::Queued(_)));
        assert_eq!(queue.close().collect::<Vec<_>>(), [1]);
        assert!(queue.is_closed());
        for item in 2..5 {
            match queue.push(item) {
                Push::Closed(left) => assert_eq!(left.collect::<Vec<_>>(), [item]),
                Push::Queued(_) => panic!("item {item} was queued on a closed loop"),
            }
        }
        assert_eq!(queue.drain().count(), 0);
    }

    /// Drops counted per value, to show that every item is dropped exactly once.
    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Producers push while the loop drains and then closes: afterwards the queue is
    /// empty (nothing stranded behind the close) and every item was taken exactly once.
    /// Real threads only sample the race; the loom models explore it.
    #[test]
    fn pushes_racing_a_close_leave_nothing_queued() {
        const PRODUCERS: usize = 3;
        const PER_PRODUCER: usize = 2_000;
        for _ in 0..20 {
            let queue = Arc::new(LoopQueue::new());
            let drops = Arc::new(AtomicUsize::new(0));
            let start = Arc::new(Barrier::new(PRODUCERS + 1));
            let producers: Vec<_> = (0..PRODUCERS)
                .map(|_| {
                    let (queue, drops, start) = (queue.clone(), drops.clone(), start.clone());
                    thread::spawn(move || {
                        start.wait();
                        for _ in 0..PER_PRODUCER {
                            if let Push::Closed(left) = queue.push(Counted(drops.clone())) {
                                drop(left);
                            }
                        }
                    })
                })
                .collect();
            start.wait();
            drop(queue.drain());
            drop(queue.close());
            for producer in producers {
                producer.join().unwrap();
            }
            assert_eq!(
                queue.drain().count(),
                0,
                "an item was stranded after the close"
            );
            assert_eq!(drops.load(Ordering::Relaxed), PRODUCERS * PER_PRODUCER);
        }
    }
}
