//! What the models share: values that count their drops, wakers that count their wake-ups,
//! and a record of which outcomes a model reached.
//!
//! Every counter is a loom atomic, so reading it is part of the modelled execution. The
//! models read counters only after joining the threads that bump them, so `Relaxed` is
//! enough: the join orders every increment before the read.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Mutex;
use std::task::{Wake, Waker};

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};

/// A drop tally shared by the [`DropCounter`]s made from it (and by its clones, so that
/// values can be made on the thread that hands them over).
#[derive(Debug, Clone)]
pub struct Drops(Arc<AtomicUsize>);

impl Drops {
    /// A tally at zero. Call inside `loom::model`.
    pub fn new() -> Self {
        Self(Arc::new(AtomicUsize::new(0)))
    }

    /// A value that bumps this tally when dropped; `tag` tells values apart.
    pub fn value(&self, tag: usize) -> DropCounter {
        DropCounter {
            tag: UnsafeCell::new(tag),
            drops: self.0.clone(),
        }
    }

    /// How many values made from this tally have been dropped so far.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl Default for Drops {
    fn default() -> Self {
        Self::new()
    }
}

/// The value the models hand around: it counts its own drop, so a model can assert that it
/// was dropped exactly once whoever ends up owning it. It also holds a `loom::sync::Arc`,
/// so loom's leak check fails the model if the value is never dropped at all.
///
/// Its tag lives in a loom `UnsafeCell`, written on the thread that made the value and
/// read (by [`tag`](DropCounter::tag) and by the drop) on whichever thread ends up with
/// it. So loom checks that the value moved between threads with a happens-before edge:
/// a container that publishes values with too weak an ordering fails with a causality
/// violation, even where its own memory (a queue's raw nodes, say) is invisible to loom.
pub struct DropCounter {
    tag: UnsafeCell<usize>,
    drops: Arc<AtomicUsize>,
}

impl DropCounter {
    /// The tag given by [`Drops::value`].
    pub fn tag(&self) -> usize {
        // SAFETY: `&self` means no `&mut` access runs; loom checks the cross-thread part.
        self.tag.with(|tag| unsafe { *tag })
    }
}

impl Drop for DropCounter {
    fn drop(&mut self) {
        // A model that already failed is unwinding: touching loom state now would panic
        // again and abort the test binary, hiding loom's report.
        if std::thread::panicking() {
            return;
        }
        // An access on the dropping thread, so loom also checks the handover to it.
        self.tag.with_mut(|_| ());
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for DropCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DropCounter").field(&self.tag()).finish()
    }
}

/// The target of a waker that counts how often it was woken.
///
/// It lives in a `std::sync::Arc` because that is what `Waker::from` takes; the model checks
/// for leaked waker clones itself with [`WakeCounter::leaked_clones`].
#[derive(Debug)]
pub struct WakeCounter {
    wakes: AtomicUsize,
}

impl WakeCounter {
    /// A fresh counter and a waker for it. Call inside `loom::model`.
    pub fn new() -> (std::sync::Arc<Self>, Waker) {
        let counter = std::sync::Arc::new(Self {
            wakes: AtomicUsize::new(0),
        });
        let waker = Waker::from(counter.clone());
        (counter, waker)
    }

    /// How many times a waker for this counter was woken.
    pub fn wakes(&self) -> usize {
        self.wakes.load(Ordering::Relaxed)
    }

    /// Waker clones still alive besides `this` itself: 0 once the model dropped its own
    /// waker and every cell that stored a clone.
    pub fn leaked_clones(this: &std::sync::Arc<Self>) -> usize {
        std::sync::Arc::strong_count(this) - 1
    }
}

impl Wake for WakeCounter {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::Relaxed);
    }
}

/// The set of outcomes a model reached over all its interleavings.
///
/// A model names each way its race can end and records it; after `loom::model` returns,
/// [`Outcomes::assert_exactly`] checks that every allowed ending was reached and no other.
/// That shows both that the cell never does anything else and that loom really explored
/// every side of the race.
#[derive(Debug)]
pub struct Outcomes(Mutex<BTreeSet<String>>);

impl Outcomes {
    /// An empty record, for a `static` next to the model.
    pub const fn new() -> Self {
        Self(Mutex::new(BTreeSet::new()))
    }

    /// Notes that one interleaving ended as `outcome`.
    pub fn record(&self, outcome: impl Into<String>) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(outcome.into());
    }

    /// Panics unless the outcomes reached are exactly `expected`.
    pub fn assert_exactly(&self, expected: &[&str]) {
        let seen = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let expected: BTreeSet<String> = expected.iter().map(|&outcome| outcome.into()).collect();
        assert_eq!(
            *seen, expected,
            "outcomes reached (left) vs allowed (right)"
        );
    }
}

impl Default for Outcomes {
    fn default() -> Self {
        Self::new()
    }
}
