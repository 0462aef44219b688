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

use crate::sync::{AtomicPtr, Ordering, UnsafeCell};

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
    /// The next older node, or null. Written by the pushing thread before its CAS
    /// publishes the node, then only by the drain that owns the node; a loom `UnsafeCell`
    /// under `--cfg loom`, so the models check that every access is ordered after the
    /// write it reads.
    next: UnsafeCell<*mut Node<T>>,
    value: T,
}

impl<T> Node<T> {
    /// # Safety
    ///
    /// No other thread accesses this node's `next` at the same time: the node is not
    /// published yet, or the caller's drain owns it.
    unsafe fn set_next(&self, next: *mut Node<T>) {
        // SAFETY: the caller has exclusive access, as this function's contract says.
        self.next.with_mut(|slot| unsafe { *slot = next });
    }

    /// # Safety
    ///
    /// As for [`set_next`](Node::set_next): nobody writes `next` at the same time.
    unsafe fn next(&self) -> *mut Node<T> {
        // SAFETY: no concurrent write, as this function's contract says.
        self.next.with(|slot| unsafe { *slot })
    }
}

/// The pointer part of a head word.
fn untagged<T>(head: *mut Node<T>) -> *mut Node<T> {
    head.map_addr(|addr| addr & !SIGNAL_PENDING)
}

/// What a push that replaced the head word `previous` tells its caller.
fn signal_after<T>(previous: *mut Node<T>) -> Signal {
    if previous.addr() & SIGNAL_PENDING == 0 {
        Signal::Needed
    } else {
        Signal::AlreadyPending
    }
}

/// A lock-free multi-producer queue with a built-in "signal needed" flag.
///
/// Items come out of [`drain`](WakeQueue::drain) in the order their pushes took effect.
pub struct WakeQueue<T> {
    /// `*mut Node<T>` of the newest item, or null, with [`SIGNAL_PENDING`] in the low bit.
    head: AtomicPtr<Node<T>>,
    /// Loom builds only: makes `push` link the node after the CAS that publishes it, so a
    /// drain can read `next` before it is written. The loom suite asserts that its models
    /// catch it, which shows they see the nodes' memory.
    #[cfg(loom)]
    planted_bug: bool,
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
            #[cfg(loom)]
            planted_bug: false,
        }
    }

    /// Loom builds only: a queue whose `push` links its node the wrong way (see
    /// `WakeQueue::planted_bug`). Exists so that the loom suite can prove its models catch
    /// bugs in the nodes' memory.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn with_planted_bug() -> Self {
        Self {
            head: AtomicPtr::new(ptr::null_mut()),
            planted_bug: true,
        }
    }

    /// Adds `value` and reports whether the caller must signal the consumer.
    pub fn push(&self, value: T) -> Signal {
        let node = Box::into_raw(Box::new(Node {
            next: UnsafeCell::new(ptr::null_mut()),
            value,
        }));
        #[cfg(loom)]
        if self.planted_bug {
            return self.push_with_planted_bug(node);
        }
        // Relaxed first read: the CAS below validates it.
        let mut current = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: `node` came from `Box::into_raw` above and is not shared until the
            // CAS below publishes it, so this thread alone touches its `next`.
            unsafe { (*node).set_next(untagged(current)) };
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
                Ok(_) => return signal_after(current),
                Err(actual) => current = actual,
            }
        }
    }

    #[cfg(loom)]
    fn push_with_planted_bug(&self, node: *mut Node<T>) -> Signal {
        let mut current = self.head.load(Ordering::Relaxed);
        loop {
            let new_head = node.map_addr(|addr| addr | SIGNAL_PENDING);
            match self.head.compare_exchange_weak(
                current,
                new_head,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    // BUG, on purpose: the node is linked after the CAS published it, so a
                    // drain that already swapped it out reads `next` while it is written.
                    // SAFETY: none, and that is the planted bug: the node is shared by now.
                    unsafe { (*node).set_next(untagged(current)) };
                    return signal_after(current);
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
        let mut newest = untagged(head);
        // Reverse the newest-first list into push order.
        let mut oldest: *mut Node<T> = ptr::null_mut();
        while !newest.is_null() {
            // SAFETY: every node in the swapped-out list is owned by this drain alone now,
            // and its push wrote `next` before the Release that our Acquire swap read.
            let next = unsafe { (*newest).next() };
            // SAFETY: as above.
            unsafe { (*newest).set_next(oldest) };
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
        // SAFETY: as above; the node is ours alone.
        self.next = unsafe { node.next() };
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
    use std::panic::resume_unwind;
    use std::sync::{Arc, Condvar, Mutex};
    use std::thread;
    use std::time::Duration;
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

    /// Signals sent and not yet consumed, standing in for the event loop's eventfd: a
    /// producer posts one exactly when its push returns `Signal::Needed`, and the consumer
    /// takes one before each drain.
    struct Wakeup {
        pending: Mutex<usize>,
        posted: Condvar,
    }

    impl Wakeup {
        fn post(&self) {
            *self.pending.lock().unwrap() += 1;
            self.posted.notify_one();
        }

        /// Takes one signal, waiting for it; panics if none comes within `LOST_WAKE_UP`,
        /// which means an item sits in the queue with no signal on its way.
        fn take(&self, seen: usize, total: usize) {
            let pending = self.pending.lock().unwrap();
            let (mut pending, timeout) = self
                .posted
                .wait_timeout_while(pending, LOST_WAKE_UP, |pending| *pending == 0)
                .unwrap();
            assert!(
                !timeout.timed_out(),
                "lost wake-up: the consumer has seen {seen} of {total} items and no signal \
                 came for {LOST_WAKE_UP:?}"
            );
            *pending -= 1;
        }
    }

    /// How long the consumer waits for a signal before declaring it lost. Not a
    /// performance limit: a signal is normally microseconds away, and this only stops a
    /// test that would otherwise hang.
    const LOST_WAKE_UP: Duration = Duration::from_secs(10);

    /// The event loop's protocol under load: four producers push, each posting a signal
    /// exactly when its push says `Needed`, and the consumer drains once per signal it
    /// takes. Every item comes out exactly once, in per-producer order; in each drain that
    /// took anything, exactly the first item's push said `Needed` (the invariant: after a
    /// drain, every push is seen by it or signals again); the consumer never waits for a
    /// signal in vain; and afterwards the queue is empty and re-armed.
    #[test]
    fn stress_producers_and_signalled_drains() {
        const PRODUCERS: usize = 4;
        const PER_PRODUCER: usize = 50_000;
        const TOTAL: usize = PRODUCERS * PER_PRODUCER;
        // A short pause after each push spreads the pushes over thousands of drains (about
        // 20,000 here, against 3 without it), so pushes keep racing drains, which is where
        // a lost signal hides.
        const PAUSE_SPINS: usize = 50;
        let queue = Arc::new(WakeQueue::new());
        let wakeup = Arc::new(Wakeup {
            pending: Mutex::new(0),
            posted: Condvar::new(),
        });
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|producer| {
                let (queue, wakeup) = (queue.clone(), wakeup.clone());
                thread::spawn(move || {
                    (0..PER_PRODUCER)
                        .map(|index| {
                            let signal = queue.push((producer, index));
                            if signal == Signal::Needed {
                                wakeup.post();
                            }
                            for _ in 0..PAUSE_SPINS {
                                core::hint::spin_loop();
                            }
                            signal
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let consumer = {
            let (queue, wakeup) = (queue.clone(), wakeup.clone());
            thread::spawn(move || {
                let mut batches: Vec<Vec<(usize, usize)>> = Vec::new();
                let mut seen = 0;
                while seen < TOTAL {
                    wakeup.take(seen, TOTAL);
                    let batch: Vec<_> = queue.drain().collect();
                    seen += batch.len();
                    if !batch.is_empty() {
                        batches.push(batch);
                    }
                }
                batches
            })
        };
        let signals: Vec<Vec<Signal>> = producers
            .into_iter()
            .map(|producer| producer.join().unwrap_or_else(|panic| resume_unwind(panic)))
            .collect();
        // The consumer's own panic (a lost wake-up) is the test's failure message.
        let batches = consumer.join().unwrap_or_else(|panic| resume_unwind(panic));

        let mut next_expected = [0usize; PRODUCERS];
        for (number, batch) in batches.iter().enumerate() {
            for (position, &(producer, index)) in batch.iter().enumerate() {
                assert_eq!(
                    index, next_expected[producer],
                    "producer {producer}'s items out of order or repeated in drain {number}"
                );
                next_expected[producer] += 1;
                let expected = if position == 0 {
                    Signal::Needed
                } else {
                    Signal::AlreadyPending
                };
                assert_eq!(
                    signals[producer][index], expected,
                    "item {index} of producer {producer} is at position {position} of drain \
                     {number}, but its push said {:?}",
                    signals[producer][index]
                );
            }
        }
        assert_eq!(next_expected, [PER_PRODUCER; PRODUCERS], "items lost");
        let needed = signals.iter().flatten().filter(|&&s| s == Signal::Needed);
        assert_eq!(
            needed.count(),
            batches.len(),
            "one signal per drain that took items"
        );
        assert!(queue.is_empty());
        assert_eq!(
            queue.push((0, 0)),
            Signal::Needed,
            "the last drain re-armed the signal"
        );
    }
}
