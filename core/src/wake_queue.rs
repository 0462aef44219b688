//! The wake queue: how many producer threads tell one event loop that work is ready, at
//! the cost of one wake-up per burst rather than one per item.
//!
//! Each Python event loop owns one queue. Any thread [`push`](WakeQueue::push)es an item;
//! the push reports whether the loop must be signalled ([`Signal::Needed`]) or whether a
//! signal is already on its way ([`Signal::AlreadyPending`]). The loop thread, once
//! signalled, [`drain`](WakeQueue::drain)s everything at once and so re-arms the signal.
//!
//! The whole state is one word: the head of a lock-free singly linked list (a Treiber
//! stack) with the low bit `SIGNAL_PENDING` borrowed from the pointer's alignment. Push
//! and drain are each a single `AcqRel` read-modify-write of that word, which gives the
//! invariant the loom models check:
//!
//! > after a drain, every push is either seen by that drain or reports `Signal::Needed`.
//!
//! Because the drain takes the list and clears the bit in one atomic swap, there is no
//! window in which an item could be queued behind a consumer that already looked.
//!
//! ```
//! use pyo3_aio_core::wake_queue::{Signal, WakeQueue};
//!
//! let queue = WakeQueue::new();
//! assert_eq!(queue.push(1), Signal::Needed);
//! assert_eq!(queue.push(2), Signal::AlreadyPending);
//! assert_eq!(queue.drain().collect::<Vec<_>>(), [1, 2]);
//! assert_eq!(queue.push(3), Signal::Needed);
//! ```

use alloc::boxed::Box;
use core::fmt;
use core::ptr;

use crate::sync::{AtomicPtr, Ordering};

/// Low bit of the head word: a push has reported [`Signal::Needed`] and no drain has run
/// since. Set by the push that finds it clear; cleared only by `drain`.
pub(crate) const SIGNAL_PENDING: usize = 1;

/// What a [`WakeQueue::push`] asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a push that returns Signal::Needed must signal the consumer, or the item may never be drained"]
pub enum Signal {
    /// The consumer may be asleep and nobody has signalled it yet: the caller must.
    Needed,
    /// A signal is already on its way since the last drain; the item will be seen by the
    /// drain that signal triggers.
    AlreadyPending,
}

struct Node<T> {
    next: *mut Node<T>,
    value: T,
}

/// A lock-free multi-producer queue with a built-in "signal needed" flag.
///
/// Items come out of [`drain`](WakeQueue::drain) in the order their pushes took effect.
pub struct WakeQueue<T> {
    /// `*mut Node<T>` of the newest item, or null, with [`SIGNAL_PENDING`] in the low bit.
    head: AtomicPtr<Node<T>>,
}

// SAFETY: items are moved in by `push` on one thread and out by `drain` on another, so
// `T: Send` suffices; no `&T` is ever shared.
unsafe impl<T: Send> Send for WakeQueue<T> {}
// SAFETY: as above; `&WakeQueue` only allows pushing and draining, which move `T`s.
unsafe impl<T: Send> Sync for WakeQueue<T> {}

impl<T> WakeQueue<T> {
    /// An empty queue whose first push will report [`Signal::Needed`].
    pub fn new() -> Self {
        Self {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Adds `value` and reports whether the caller must signal the consumer.
    pub fn push(&self, value: T) -> Signal {
        let node = Box::into_raw(Box::new(Node {
            next: ptr::null_mut(),
            value,
        }));
        // Relaxed first read: the CAS below validates it.
        let mut current = self.head.load(Ordering::Relaxed);
        loop {
            let next = current.map_addr(|addr| addr & !SIGNAL_PENDING);
            // SAFETY: `node` came from `Box::into_raw` above and is not shared until the
            // CAS below publishes it.
            unsafe { (*node).next = next };
            let new_head = node.map_addr(|addr| addr | SIGNAL_PENDING);
            // AcqRel on success: Release publishes the node (and its value) to the drain
            // that swaps it out with Acquire; Acquire orders us after the previous drain,
            // so the bit we read is that drain's reset or a later push's set.
            match self.head.compare_exchange_weak(
                current,
                new_head,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return if current.addr() & SIGNAL_PENDING == 0 {
                        Signal::Needed
                    } else {
                        Signal::AlreadyPending
                    };
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Takes every item pushed so far, oldest first, and re-arms the signal: the next push
    /// reports [`Signal::Needed`].
    pub fn drain(&self) -> Drain<T> {
        // AcqRel: Acquire to see the nodes published by the pushes' Release; Release so a
        // push that reads our null sees a clean list. One swap takes the list and clears
        // SIGNAL_PENDING together, which is the whole point.
        let head = self.head.swap(ptr::null_mut(), Ordering::AcqRel);
        let mut newest = head.map_addr(|addr| addr & !SIGNAL_PENDING);
        // Reverse the newest-first list into push order.
        let mut oldest: *mut Node<T> = ptr::null_mut();
        while !newest.is_null() {
            // SAFETY: every node in the swapped-out list is owned by this drain alone now.
            let next = unsafe { (*newest).next };
            // SAFETY: as above.
            unsafe { (*newest).next = oldest };
            oldest = newest;
            newest = next;
        }
        Drain { next: oldest }
    }

    /// Whether the queue holds no items right now (another thread may push at any time).
    pub fn is_empty(&self) -> bool {
        self.head.load(Ordering::Acquire).addr() & !SIGNAL_PENDING == 0
    }
}

impl<T> Default for WakeQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Drop for WakeQueue<T> {
    fn drop(&mut self) {
        drop(self.drain());
    }
}

impl<T> fmt::Debug for WakeQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = self.head.load(Ordering::Acquire);
        f.debug_struct("WakeQueue")
            .field("empty", &(head.addr() & !SIGNAL_PENDING == 0))
            .field("signal_pending", &(head.addr() & SIGNAL_PENDING != 0))
            .finish()
    }
}

/// The items taken by one [`WakeQueue::drain`], oldest first. Items not iterated are
/// dropped with it.
pub struct Drain<T> {
    next: *mut Node<T>,
}

// SAFETY: the drain owns its nodes outright; moving it moves `T`s.
unsafe impl<T: Send> Send for Drain<T> {}

impl<T> Iterator for Drain<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.next.is_null() {
            return None;
        }
        // SAFETY: the node came from `Box::into_raw` in `push` and this drain owns it.
        let node = unsafe { Box::from_raw(self.next) };
        self.next = node.next;
        Some(node.value)
    }
}

impl<T> Drop for Drain<T> {
    fn drop(&mut self) {
        for _ in self.by_ref() {}
    }
}

impl<T> fmt::Debug for Drain<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("empty", &self.next.is_null())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    extern crate std;

    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::thread;
    use std::vec::Vec;

    #[test]
    fn burst_costs_one_signal() {
        let queue = WakeQueue::new();
        let signals = (0..100)
            .filter(|i| queue.push(*i) == Signal::Needed)
            .count();
        assert_eq!(signals, 1);
        assert_eq!(
            queue.drain().collect::<Vec<_>>(),
            (0..100).collect::<Vec<_>>()
        );
        assert!(queue.is_empty());
    }

    #[test]
    fn empty_drain_rearms() {
        let queue = WakeQueue::<u8>::new();
        assert_eq!(queue.drain().count(), 0);
        assert_eq!(queue.push(1), Signal::Needed);
    }

    #[test]
    fn undrained_items_are_dropped() {
        let value = Arc::new(());
        let queue = WakeQueue::new();
        let _ = queue.push(value.clone());
        let _ = queue.push(value.clone());
        let mut drain = queue.drain();
        drop(drain.next());
        drop(drain);
        let _ = queue.push(value.clone());
        drop(queue);
        assert_eq!(Arc::strong_count(&value), 1);
    }

    /// Four producers push while a consumer drains whenever signalled: every item is seen
    /// exactly once, in per-producer order, and signals stay far below the item count.
    #[test]
    fn stress_producers_and_signalled_drains() {
        const PRODUCERS: usize = 4;
        const PER_PRODUCER: usize = 50_000;
        let queue = Arc::new(WakeQueue::new());
        let signals = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..PRODUCERS)
            .map(|producer| {
                let queue = queue.clone();
                let signals = signals.clone();
                thread::spawn(move || {
                    for index in 0..PER_PRODUCER {
                        if queue.push((producer, index)) == Signal::Needed {
                            signals.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        let consumer = {
            let queue = queue.clone();
            let done = done.clone();
            thread::spawn(move || {
                let mut next_expected = [0usize; PRODUCERS];
                let mut seen = 0;
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    for (producer, index) in queue.drain() {
                        assert_eq!(index, next_expected[producer]);
                        next_expected[producer] += 1;
                        seen += 1;
                    }
                    if finished {
                        break seen;
                    }
                    thread::yield_now();
                }
            })
        };
        for handle in handles {
            handle.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
        let seen = consumer.join().unwrap();
        assert_eq!(seen, PRODUCERS * PER_PRODUCER);
        assert!(signals.load(Ordering::SeqCst) >= 1);
    }
}
