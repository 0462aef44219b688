//! The completion cell: a one-shot handoff of one value between two threads, with
//! cancellation flowing the other way.
//!
//! Every conversion in pyo3-aio, in either direction, owns one cell. The *producer* side
//! ([`Producer`]) is whoever computes the result: a Rust task finishing a future, or the
//! done-callback of a Python task. The *consumer* side ([`Consumer`]) is whoever waits for
//! it: the Python coroutine wrapper, or the Rust future returned by `into_future`.
//!
//! The guarantees, which the loom models in `loom-tests/` check for every pair of
//! operations that can race:
//!
//! - exactly one of {value delivered, cancelled} wins: [`Producer::complete`] after a
//!   successful [`Consumer::cancel`] hands the value back to the producer, and a
//!   [`Consumer::cancel`] after [`Producer::complete`] reports that it lost;
//! - a wake-up is never lost: a registered waker is woken by the operation that makes its
//!   poll ready (completion or producer drop for the consumer, cancellation or consumer drop
//!   for the producer);
//! - a waker is never used after it was freed: a waker slot is only read while its
//!   `*_WAKER_SET` bit is set, and only rewritten by its owner after clearing that bit;
//! - the value is dropped exactly once: it lives in the shared allocation and is dropped with
//!   it, on whichever thread drops the last handle, unless the consumer took it first.
//!
//! ```
//! use pyo3_aio_core::cell::{self, Closed};
//!
//! let (producer, mut consumer) = cell::completion::<u32>();
//! assert!(consumer.try_take().is_none());
//! producer.complete(7).unwrap();
//! assert_eq!(consumer.try_take(), Some(Ok(7)));
//! assert_eq!(consumer.try_take(), Some(Err(Closed::Taken)));
//! ```

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use crate::sync::{Arc, AtomicUsize, Ordering, UnsafeCell};

// The state word.
//
// Allowed transitions of the three outcome bits (the two waker bits come and go freely
// while none of the outcome bits that concern their owner is set):
//
//   EMPTY ──complete()──────────► COMPLETE ──cancel()──► COMPLETE|CANCELLED  (cancel lost)
//     │
//     ├──cancel() / drop(Consumer)──► CANCELLED ──drop(Producer)──► CANCELLED|PRODUCER_DROPPED
//     │                                  (a later complete() fails and returns the value)
//     │
//     └──drop(Producer)──► PRODUCER_DROPPED ──drop(Consumer)──► PRODUCER_DROPPED|CANCELLED
//
// COMPLETE and PRODUCER_DROPPED are never both set: a producer that completed does not
// report its own drop.

/// The producer stored the value. Set once, by the producer, with `Release` so the value
/// written before it is visible to whoever observes the bit with `Acquire`.
pub(crate) const COMPLETE: usize = 1 << 0;

/// The producer was dropped without completing (its task panicked or its runtime shut
/// down). Set by the producer's `Drop`.
pub(crate) const PRODUCER_DROPPED: usize = 1 << 1;

/// The consumer gave up: [`Consumer::cancel`] or the consumer's `Drop`. Set by the consumer.
pub(crate) const CANCELLED: usize = 1 << 2;

/// `consumer_waker` holds a waker that the producer may read (and wake) at any time. Set
/// and cleared only by the consumer.
pub(crate) const CONSUMER_WAKER_SET: usize = 1 << 3;

/// `producer_waker` holds a waker that the consumer may read (and wake) at any time. Set
/// and cleared only by the producer.
pub(crate) const PRODUCER_WAKER_SET: usize = 1 << 4;

/// A snapshot of the state word.
#[derive(Clone, Copy, PartialEq, Eq)]
struct State(usize);

impl State {
    fn is_complete(self) -> bool {
        self.0 & COMPLETE != 0
    }

    fn is_cancelled(self) -> bool {
        self.0 & CANCELLED != 0
    }

    fn is_producer_dropped(self) -> bool {
        self.0 & PRODUCER_DROPPED != 0
    }

    fn has_consumer_waker(self) -> bool {
        self.0 & CONSUMER_WAKER_SET != 0
    }

    fn has_producer_waker(self) -> bool {
        self.0 & PRODUCER_WAKER_SET != 0
    }

    /// The consumer's poll can return: a value is there or will never come.
    fn consumer_may_finish(self) -> bool {
        self.0 & (COMPLETE | PRODUCER_DROPPED) != 0
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("complete", &self.is_complete())
            .field("producer_dropped", &self.is_producer_dropped())
            .field("cancelled", &self.is_cancelled())
            .field("consumer_waker", &self.has_consumer_waker())
            .field("producer_waker", &self.has_producer_waker())
            .finish()
    }
}

/// Why a consumer gets no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The producer was dropped without completing: its task panicked, was dropped, or its
    /// runtime shut down.
    ProducerDropped,
    /// This consumer cancelled before the producer completed.
    Cancelled,
    /// The value was already taken by an earlier poll.
    Taken,
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Closed::ProducerDropped => "the producer was dropped before it completed",
            Closed::Cancelled => "the result was cancelled before it was produced",
            Closed::Taken => "the result was already taken",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Closed {}

struct Inner<T> {
    state: AtomicUsize,
    value: UnsafeCell<Option<T>>,
    consumer_waker: UnsafeCell<Option<Waker>>,
    producer_waker: UnsafeCell<Option<Waker>>,
    /// Loom builds only: makes the consumer publish its waker with a load and a store
    /// instead of one read-modify-write, the classic lost wake-up. The loom suite asserts
    /// that its models catch it, which shows they can fail.
    #[cfg(loom)]
    planted_bug: bool,
}

// SAFETY: the value crosses from the producer's thread to the consumer's (hence `T: Send`);
// it is never shared by reference between threads, so `T: Sync` is not needed. The waker
// slots are `Waker`s, which are `Send + Sync`. All access to the `UnsafeCell`s follows the
// protocol described on the state bits.
unsafe impl<T: Send> Send for Inner<T> {}
// SAFETY: as above; `&Inner` only lets a thread run the protocol, never reach `&T`.
unsafe impl<T: Send> Sync for Inner<T> {}

/// Creates a connected producer/consumer pair for one value.
///
/// ```
/// let (producer, consumer) = pyo3_aio_core::cell::completion::<String>();
/// std::thread::spawn(move || producer.complete("done".to_owned()).unwrap());
/// let value = futures_executor_block_on(consumer);
/// assert_eq!(value.unwrap(), "done");
/// # fn futures_executor_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     use std::task::{Context, Poll, Wake, Waker};
/// #     struct Unpark(std::thread::Thread);
/// #     impl Wake for Unpark { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
/// #     let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
/// #     let mut f = std::pin::pin!(f);
/// #     loop {
/// #         if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&waker)) { return v; }
/// #         std::thread::park();
/// #     }
/// # }
/// ```
pub fn completion<T>() -> (Producer<T>, Consumer<T>) {
    let inner = Arc::new(Inner {
        state: AtomicUsize::new(0),
        value: UnsafeCell::new(None),
        consumer_waker: UnsafeCell::new(None),
        producer_waker: UnsafeCell::new(None),
        #[cfg(loom)]
        planted_bug: false,
    });
    (
        Producer {
            inner: inner.clone(),
        },
        Consumer { inner },
    )
}

/// Loom builds only: a pair whose consumer registers its waker the wrong way (see
/// `Inner::planted_bug`). Exists so that the loom suite can prove its models catch bugs.
#[cfg(loom)]
#[doc(hidden)]
pub fn completion_with_planted_bug<T>() -> (Producer<T>, Consumer<T>) {
    let inner = Arc::new(Inner {
        state: AtomicUsize::new(0),
        value: UnsafeCell::new(None),
        consumer_waker: UnsafeCell::new(None),
        producer_waker: UnsafeCell::new(None),
        planted_bug: true,
    });
    (
        Producer {
            inner: inner.clone(),
        },
        Consumer { inner },
    )
}

/// The side of a completion cell that delivers the value.
///
/// Dropping it without calling [`complete`](Producer::complete) tells the consumer that no
/// value will come ([`Closed::ProducerDropped`]).
pub struct Producer<T> {
    inner: Arc<Inner<T>>,
}

/// The side of a completion cell that waits for the value.
///
/// It is a [`Future`] resolving to `Result<T, Closed>`. Dropping it cancels, so the
/// producer learns through [`Producer::poll_cancelled`] that nobody waits any more.
pub struct Consumer<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Producer<T> {
    /// Delivers `value` and wakes the consumer.
    ///
    /// # Errors
    ///
    /// Returns the value back when the consumer cancelled (or was dropped) first; the
    /// caller then drops it on its own thread.
    pub fn complete(self, value: T) -> Result<(), T> {
        let inner = &*self.inner;
        // SAFETY: until COMPLETE is published nobody but the producer touches `value`, and
        // `self` is the only producer.
        inner.value.with_mut(|slot| unsafe { *slot = Some(value) });

        // AcqRel: Release publishes the value written above to the consumer's Acquire load;
        // Acquire makes the consumer's waker (written before it set CONSUMER_WAKER_SET with
        // Release) visible before we read it below.
        let mut current = inner.state.load(Ordering::Acquire);
        let previous = loop {
            if State(current).is_cancelled() {
                break State(current);
            }
            match inner.state.compare_exchange_weak(
                current,
                current | COMPLETE,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break State(current),
                Err(actual) => current = actual,
            }
        };

        if previous.is_cancelled() {
            // SAFETY: COMPLETE was never set, so the consumer never reads `value`.
            let value = inner.value.with_mut(|slot| unsafe { (*slot).take() });
            return Err(value.expect("the value stored above is still there"));
        }
        if previous.has_consumer_waker() {
            // SAFETY: CONSUMER_WAKER_SET was set when COMPLETE went in, and the consumer
            // only rewrites its slot after clearing the bit and seeing COMPLETE unset, which
            // can no longer happen. Both sides only read the slot from now on.
            inner
                .consumer_waker
                .with(|waker| unsafe { wake_slot(&*waker) });
        }
        Ok(())
    }

    /// Reports (and, while not yet, registers `cx`'s waker for) the consumer's cancellation.
    ///
    /// A producer doing long work selects on this to stop early when nobody waits any more.
    pub fn poll_cancelled(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let inner = &*self.inner;
        let registered = register(
            &inner.state,
            &inner.producer_waker,
            PRODUCER_WAKER_SET,
            State::is_cancelled,
            cx.waker(),
        );
        if registered.is_cancelled() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Whether the consumer has cancelled (or was dropped).
    pub fn is_cancelled(&self) -> bool {
        State(self.inner.state.load(Ordering::Acquire)).is_cancelled()
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        let inner = &*self.inner;
        // Only this producer sets COMPLETE, so a relaxed load sees our own write.
        if State(inner.state.load(Ordering::Relaxed)).is_complete() {
            return;
        }
        // AcqRel: Acquire to see the consumer's waker, Release so the consumer's Acquire
        // load that sees PRODUCER_DROPPED also sees everything we did before dropping.
        let previous = State(inner.state.fetch_or(PRODUCER_DROPPED, Ordering::AcqRel));
        if previous.has_consumer_waker() && !previous.is_cancelled() {
            // SAFETY: as in `complete`: the bit was set when PRODUCER_DROPPED went in, so the
            // consumer will not rewrite the slot any more.
            inner
                .consumer_waker
                .with(|waker| unsafe { wake_slot(&*waker) });
        }
    }
}

impl<T> Consumer<T> {
    /// Polls for the value, registering `cx`'s waker while it is not there yet.
    ///
    /// Returns `Ready(Ok(value))` once, then `Ready(Err(Closed::Taken))`.
    pub fn poll_result(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, Closed>> {
        if let Some(result) = self.try_take() {
            return Poll::Ready(result);
        }
        #[cfg(loom)]
        if self.inner.planted_bug {
            return self.poll_result_with_planted_bug(cx);
        }
        let inner = &*self.inner;
        let registered = register(
            &inner.state,
            &inner.consumer_waker,
            CONSUMER_WAKER_SET,
            State::consumer_may_finish,
            cx.waker(),
        );
        if registered.consumer_may_finish() {
            Poll::Ready(self.take(registered))
        } else {
            Poll::Pending
        }
    }

    /// Takes the result if there is one, without registering a waker.
    ///
    /// Returns `None` while the producer may still complete.
    pub fn try_take(&mut self) -> Option<Result<T, Closed>> {
        // Acquire pairs with the producer's Release in `complete` / `drop`.
        let state = State(self.inner.state.load(Ordering::Acquire));
        if state.consumer_may_finish() || state.is_cancelled() {
            Some(self.take(state))
        } else {
            None
        }
    }

    /// Cancels: the producer's [`Producer::poll_cancelled`] becomes ready and a later
    /// [`Producer::complete`] returns its value back.
    ///
    /// Returns `true` when this call did the cancelling: the producer had not completed
    /// and nobody had cancelled before. Returns `false` when the value was already
    /// delivered (it can still be taken with [`try_take`](Consumer::try_take)) or when the
    /// cell was already cancelled. After a successful cancel, polls report
    /// [`Closed::Cancelled`] even if the producer was dropped too.
    pub fn cancel(&self) -> bool {
        cancel(&self.inner)
    }

    /// Whether the producer has completed (the value may have been taken since).
    pub fn is_complete(&self) -> bool {
        State(self.inner.state.load(Ordering::Acquire)).is_complete()
    }

    /// Reads the outcome for an observed state in which polling may finish.
    fn take(&mut self, state: State) -> Result<T, Closed> {
        if state.is_complete() {
            // SAFETY: COMPLETE was observed with Acquire, so the producer's write is visible
            // and the producer never touches `value` again; `&mut self` makes this consumer
            // the only other party.
            let value = self.inner.value.with_mut(|slot| unsafe { (*slot).take() });
            value.ok_or(Closed::Taken)
        } else if state.is_cancelled() {
            Err(Closed::Cancelled)
        } else {
            Err(Closed::ProducerDropped)
        }
    }

    #[cfg(loom)]
    fn poll_result_with_planted_bug(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, Closed>> {
        let inner = &*self.inner;
        // SAFETY (of the slot access, not of the protocol): single registration, the bit is
        // not set yet in the one-poll models that use this variant.
        inner
            .consumer_waker
            .with_mut(|slot| unsafe { *slot = Some(cx.waker().clone()) });
        // BUG, on purpose: a load and a store instead of one read-modify-write. A COMPLETE
        // stored in between is overwritten, and the waker set is never seen by the producer.
        let state = inner.state.load(Ordering::Acquire);
        inner
            .state
            .store(state | CONSUMER_WAKER_SET, Ordering::Release);
        if State(state).consumer_may_finish() {
            Poll::Ready(self.take(State(state)))
        } else {
            Poll::Pending
        }
    }
}

impl<T> Future for Consumer<T> {
    type Output = Result<T, Closed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().poll_result(cx)
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        cancel(&self.inner);
    }
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = State(self.inner.state.load(Ordering::Acquire));
        f.debug_struct("Producer").field("state", &state).finish()
    }
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = State(self.inner.state.load(Ordering::Acquire));
        f.debug_struct("Consumer").field("state", &state).finish()
    }
}

fn cancel<T>(inner: &Inner<T>) -> bool {
    // AcqRel: Acquire to see the producer's waker (published with Release when it set
    // PRODUCER_WAKER_SET); Release so the producer that observes CANCELLED with Acquire
    // sees everything the consumer did before.
    let previous = State(inner.state.fetch_or(CANCELLED, Ordering::AcqRel));
    if previous.is_complete() {
        return false;
    }
    if previous.has_producer_waker() && !previous.is_cancelled() && !previous.is_producer_dropped()
    {
        // SAFETY: PRODUCER_WAKER_SET was set when CANCELLED went in; the producer rewrites
        // its slot only after clearing the bit and seeing CANCELLED unset, which can no
        // longer happen. From now on both sides only read the slot.
        inner
            .producer_waker
            .with(|waker| unsafe { wake_slot(&*waker) });
    }
    !previous.is_cancelled()
}

/// Wakes the waker in a slot, if any, without consuming it.
fn wake_slot(slot: &Option<Waker>) {
    if let Some(waker) = slot {
        waker.wake_by_ref();
    }
}

/// Registers `waker` in `slot`, owned by one side, unless `done` already holds for the state.
///
/// `bit` is that side's `*_WAKER_SET`. Returns the state observed after registering (or
/// when giving up); the caller checks `done` on it.
///
/// The protocol, which is what makes wake-ups impossible to lose:
/// 1. if the bit is set and the stored waker would wake the same task, nothing to do;
/// 2. otherwise clear the bit (AcqRel RMW); if `done` now holds, the other side may be
///    reading the old waker, so leave the slot alone and return;
/// 3. with the bit clear the other side never reads the slot: replace the waker;
/// 4. set the bit (AcqRel RMW); if `done` holds in the value it returns, the other side
///    finished before seeing our waker, so the caller must not wait for a wake-up.
fn register(
    state: &AtomicUsize,
    slot: &UnsafeCell<Option<Waker>>,
    bit: usize,
    done: fn(State) -> bool,
    waker: &Waker,
) -> State {
    let current = State(state.load(Ordering::Acquire));
    if done(current) {
        return current;
    }
    if current.0 & bit != 0 {
        // SAFETY: the bit is set, so the other side may read the slot concurrently, but
        // nobody writes it: this side only writes after clearing the bit, below.
        let same = slot.with(|stored| unsafe {
            (*stored)
                .as_ref()
                .is_some_and(|stored| stored.will_wake(waker))
        });
        if same {
            return current;
        }
        // AcqRel: Acquire so that if `done` is now set we see the value; Release is not
        // needed for correctness here but the RMW is the same word the other side uses.
        let cleared = State(state.fetch_and(!bit, Ordering::AcqRel));
        if done(cleared) {
            return cleared;
        }
    }
    // SAFETY: the bit is clear and `done` did not hold when we cleared it (or it was never
    // set), so the other side, which only reads the slot after seeing the bit together with
    // its own transition, will not read it until we set the bit again.
    slot.with_mut(|stored| unsafe { *stored = Some(waker.clone()) });
    // AcqRel: Release publishes the waker written above; Acquire sees what the other side
    // published if it finished in the meantime.
    let previous = State(state.fetch_or(bit, Ordering::AcqRel));
    State(previous.0 | bit)
}

#[cfg(all(test, not(loom)))]
mod tests {
    extern crate std;

    use super::*;
    use std::sync::Arc as StdArc;
    use std::sync::atomic::AtomicUsize as StdAtomicUsize;
    use std::task::Wake;
    use std::thread;
    use std::vec::Vec;

    struct CountWakes(StdAtomicUsize);

    impl Wake for CountWakes {
        fn wake(self: StdArc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn wake_by_ref(self: &StdArc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting_waker() -> (StdArc<CountWakes>, Waker) {
        let counter = StdArc::new(CountWakes(StdAtomicUsize::new(0)));
        (counter.clone(), Waker::from(counter))
    }

    struct DropCounter(StdArc<StdAtomicUsize>);

    impl Drop for DropCounter {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn complete_wakes_registered_consumer() {
        let (producer, mut consumer) = completion::<u8>();
        let (wakes, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(consumer.poll_result(&mut cx).is_pending());
        producer.complete(3).unwrap();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert_eq!(consumer.poll_result(&mut cx), Poll::Ready(Ok(3)));
        assert_eq!(
            consumer.poll_result(&mut cx),
            Poll::Ready(Err(Closed::Taken))
        );
    }

    #[test]
    fn repoll_with_other_waker_replaces_it() {
        let (producer, mut consumer) = completion::<u8>();
        let (first_wakes, first) = counting_waker();
        let (second_wakes, second) = counting_waker();
        assert!(
            consumer
                .poll_result(&mut Context::from_waker(&first))
                .is_pending()
        );
        assert!(
            consumer
                .poll_result(&mut Context::from_waker(&second))
                .is_pending()
        );
        producer.complete(1).unwrap();
        assert_eq!(first_wakes.0.load(Ordering::SeqCst), 0);
        assert_eq!(second_wakes.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn cancel_before_complete_returns_value_to_producer() {
        let (producer, consumer) = completion::<u8>();
        assert!(consumer.cancel());
        assert!(producer.is_cancelled());
        assert_eq!(producer.complete(9), Err(9));
    }

    #[test]
    fn cancel_after_complete_loses_and_value_stays() {
        let (producer, mut consumer) = completion::<u8>();
        producer.complete(4).unwrap();
        assert!(!consumer.cancel());
        assert_eq!(consumer.try_take(), Some(Ok(4)));
    }

    #[test]
    fn producer_drop_wakes_consumer_with_error() {
        let (producer, mut consumer) = completion::<u8>();
        let (wakes, waker) = counting_waker();
        assert!(
            consumer
                .poll_result(&mut Context::from_waker(&waker))
                .is_pending()
        );
        drop(producer);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert_eq!(consumer.try_take(), Some(Err(Closed::ProducerDropped)));
    }

    #[test]
    fn consumer_drop_wakes_producer() {
        let (mut producer, consumer) = completion::<u8>();
        let (wakes, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(producer.poll_cancelled(&mut cx).is_pending());
        drop(consumer);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert!(producer.poll_cancelled(&mut cx).is_ready());
    }

    #[test]
    fn cancelled_consumer_polls_to_cancelled() {
        let (_producer, mut consumer) = completion::<u8>();
        consumer.cancel();
        assert_eq!(consumer.try_take(), Some(Err(Closed::Cancelled)));
    }

    #[test]
    fn untaken_value_is_dropped_once_with_last_handle() {
        let drops = StdArc::new(StdAtomicUsize::new(0));
        let (producer, consumer) = completion::<DropCounter>();
        producer.complete(DropCounter(drops.clone())).ok().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(consumer);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    /// Many pairs raced across threads: every value is delivered or handed back, exactly
    /// once, and every consumer that waited was woken.
    #[test]
    fn stress_complete_cancel_across_threads() {
        const PAIRS: usize = 20_000;
        let drops = StdArc::new(StdAtomicUsize::new(0));
        let mut producers = Vec::with_capacity(PAIRS);
        let mut consumers = Vec::with_capacity(PAIRS);
        for _ in 0..PAIRS {
            let (producer, consumer) = completion::<DropCounter>();
            producers.push(producer);
            consumers.push(consumer);
        }
        let producer_drops = drops.clone();
        let producer_thread = thread::spawn(move || {
            let mut handed_back = 0;
            for producer in producers {
                if producer
                    .complete(DropCounter(producer_drops.clone()))
                    .is_err()
                {
                    handed_back += 1;
                }
            }
            handed_back
        });
        let (wakes, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let mut delivered = 0;
        let mut cancelled = 0;
        let mut pending = Vec::new();
        for (index, mut consumer) in consumers.into_iter().enumerate() {
            if index % 3 == 0 {
                if consumer.cancel() {
                    cancelled += 1;
                } else {
                    assert!(matches!(consumer.try_take(), Some(Ok(_))));
                    delivered += 1;
                }
            } else {
                match consumer.poll_result(&mut cx) {
                    Poll::Ready(Ok(_)) => delivered += 1,
                    Poll::Ready(Err(closed)) => panic!("unexpected {closed:?}"),
                    Poll::Pending => pending.push(consumer),
                }
            }
        }
        let handed_back = producer_thread.join().unwrap();
        let waited = pending.len();
        for mut consumer in pending {
            assert!(matches!(consumer.try_take(), Some(Ok(_))));
            delivered += 1;
        }
        assert_eq!(handed_back, cancelled);
        assert_eq!(delivered + cancelled, PAIRS);
        assert_eq!(drops.load(Ordering::SeqCst), PAIRS);
        assert!(wakes.0.load(Ordering::SeqCst) >= waited);
    }
}
