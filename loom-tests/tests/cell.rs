//! Loom models of the completion cell: one `#[test]` per race, named for it.
//!
//! The producer side can `complete`, register for cancellation with `poll_cancelled`, or be
//! dropped; the consumer side can poll (through `loom::future::block_on` or by hand),
//! `try_take`, `cancel`, or be dropped. Every pair that can overlap is raced here:
//!
//! - `complete` against each consumer operation: `complete_vs_poll`,
//!   `complete_vs_try_take`, `complete_vs_cancel`, `complete_vs_consumer_drop`;
//! - the producer's drop against the same four: `producer_drop_vs_poll`,
//!   `producer_drop_vs_try_take`, `producer_drop_vs_cancel`,
//!   `producer_drop_vs_consumer_drop`;
//! - `poll_cancelled` against poll, cancel and drop: `poll_cancelled_vs_poll`,
//!   `cancel_vs_poll_cancelled`, `consumer_drop_vs_poll_cancelled` (against `try_take`, a
//!   plain load of the state word, there is nothing to race);
//! - waker replacement, a side re-polling with a new waker while the other side finishes:
//!   `consumer_waker_replacement_vs_complete`,
//!   `consumer_waker_replacement_vs_producer_drop`, `producer_waker_replacement_vs_cancel`;
//! - `cancel_vs_cancel`: two threads cancelling through a shared `&Consumer` (`Consumer`
//!   is `Sync`).
//!
//! Values are made on the producer's thread wherever the producer has a thread of its own,
//! so the only happens-before edge that carries them to the consumer is the cell's. Each
//! model checks the exact set of outcomes its race may end in (and that loom reached every
//! one of them), that a value is dropped exactly once whoever ends up with it, and, where
//! a model hands the cell its own wakers, that each is woken as promised and no clone of
//! it leaks. Loom itself fails a model on a deadlock (a lost wake-up leaves `block_on`
//! parked forever), a data race on the cell's `UnsafeCell`s, or a leaked `loom::sync::Arc`
//! (the cell's allocation or a value).
//!
//! Preemption bound: run with `LOOM_MAX_PREEMPTIONS=3` (see the crate docs for why). With
//! a lower bound or a `LOOM_MAX_PERMUTATIONS` cap some outcomes may go unexplored and the
//! `assert_exactly` checks fail: that is the point of them.
#![cfg(loom)]

use std::future::poll_fn;
use std::task::{Context, Poll};

use loom::future::block_on;
use loom::sync::Arc;
use loom::thread;
use pyo3_aio_core::cell::{self, Closed, Consumer, Producer};
use pyo3_aio_loom_tests::support::{DropCounter, Drops, Outcomes, WakeCounter};

/// Drives the consumer to its result with `block_on`, and tells whether it had to park.
fn wait_for_result<T>(consumer: &mut Consumer<T>) -> (Result<T, Closed>, &'static str) {
    let mut polls = 0;
    let result = block_on(poll_fn(|cx| {
        polls += 1;
        consumer.poll_result(cx)
    }));
    let how = if polls == 1 {
        "ready at first poll"
    } else {
        "ready after parking"
    };
    (result, how)
}

/// Drives the producer until the consumer cancels, and tells whether it had to park.
fn wait_for_cancel<T>(producer: &mut Producer<T>) -> &'static str {
    let mut polls = 0;
    block_on(poll_fn(|cx| {
        polls += 1;
        producer.poll_cancelled(cx)
    }));
    if polls == 1 {
        "cancelled at first poll"
    } else {
        "cancelled after parking"
    }
}

/// The consumer awaits while the producer completes: the value arrives, and a consumer
/// that parked is woken (a lost wake-up leaves it parked: a loom deadlock).
#[test]
fn complete_vs_poll() {
    static OUTCOMES: Outcomes = Outcomes::new();
    loom::model(|| {
        let drops = Drops::new();
        let (producer, mut consumer) = cell::completion();

        let producer_drops = drops.clone();
        let producing = thread::spawn(move || {
            producer
                .complete(producer_drops.value(1))
                .expect("nobody cancelled, so the value is delivered");
        });
        let (result, how) = wait_for_result(&mut consumer);
        let value = result.expect("the consumer gets the value");
        assert_eq!(value.tag(), 1);
        drop(value);
        drop(consumer);

        producing.join().unwrap();
        assert_eq!(drops.count(), 1);
        OUTCOMES.record(how);
    });
    OUTCOMES.assert_exactly(&["ready at first poll", "ready after parking"]);
}

/// The consumer peeks once while the producer completes: it sees either nothing yet or the
/// whole value, never a torn or doubled one.
#[test]
fn complete_vs_try_take() {
    static OUTCOMES: Outcomes = Outcomes::new();
    loom::model(|| {
        let drops = Drops::new();
        let (producer, mut consumer) = cell::completion();
        let value = drops.value(1);

        // The peek runs on the spawned thread: loom 0.7's DPOR does not explore a spawned
        // thread's read-modify-write overtaking a main-thread load when the spawned thread
        // loads first (tokio-rs/loom#166, #392), and `complete` loads first.
        let peeking = thread::spawn(move || {
            let peeked = consumer.try_take();
            (consumer, peeked)
        });
        producer
            .complete(value)
            .expect("nobody cancelled, so the value is delivered");
        let (mut consumer, peeked) = peeking.join().unwrap();

        let value = match peeked {
            Some(result) => {
                OUTCOMES.record("taken while completing");
                result.expect("a finished cell that nobody cancelled holds the value")
            }
            None => {
                OUTCOMES.record("not there yet");
                consumer
                    .try_take()
                    .expect("the producer has finished")
                    .expect("a finished cell that nobody cancelled holds the value")
            }
        };
        assert_eq!(value.tag(), 1);
        assert_eq!(
            consumer.try_take().map(|r| r.err()),
            Some(Some(Closed::Taken))
        );
        drop(value);
        drop(consumer);
        assert_eq!(drops.count(), 1);
    });
    OUTCOMES.assert_exactly(&["not there yet", "taken while completing"]);
}

/// Complete and cancel race: exactly one wins. Either the value is delivered and the
/// cancel reports it lost, or the cancel wins and the producer gets its value back.
#[test]
fn complete_vs_cancel() {
    static OUTCOMES: Outcomes = Outcomes::new();
    loom::model(|| {
        let drops = Drops::new();
        let (producer, mut consumer) = cell::completion();

        let producer_drops = drops.clone();
        let producing = thread::spawn(move || producer.complete(producer_drops.value(1)));
        let cancel_won = consumer.cancel();
        let completed = producing.join().unwrap();

        match (completed, cancel_won) {
            (Ok(()), false) => {
                let value = consumer
                    .try_take()
                    .expect("a completed cell has a result")
                    .expect("the value was delivered before the cancel");
                assert_eq!(value.tag(), 1);
                OUTCOMES.record("delivered, cancel lost");
            }
            (Err(value), true) => {
                assert_eq!(value.tag(), 1);
                assert_eq!(
                    consumer.try_take().map(|r| r.err()),
                    Some(Some(Closed::Cancelled))
                );
                OUTCOMES.record("cancelled, value handed back");
            }
            (completed, cancel_won) => {
                panic!("both or neither won: complete {completed:?}, cancel won {cancel_won}")
            }
        }
        drop(consumer);
        assert_eq!(drops.count(), 1);
    });
    OUTCOMES.assert_exactly(&["cancelled, value handed back", "delivered, cancel lost"]);
}

/// A waiting consumer is dropped while the producer completes. Either the completion lands
/// first (the consumer's waker is woken and the value is freed with the cell, on whichever
/// thread lets go last) or the drop does (the producer gets the value back and drops it).
#[test]
fn complete_vs_consumer_drop() {
    static OUTCOMES: Outcomes = Outcomes::new();
    loom::model(|| {
        let drops = Drops::new();
        let (producer, mut consumer) = cell::completion();
        let (wakes, waker) = WakeCounter::new();
        assert!(
            consumer
                .poll_result(&mut Context::from_waker(&waker))
                .is_pending()
        );

        let producer_drops = drops.clone();
        let producing = thread::spawn(move || match producer.complete(producer_drops.value(1)) {
            Ok(()) => true,
            Err(value) => {
                assert_eq!(value.tag(), 1);
                false
            }
        });
        drop(consumer);
        let delivered = producing.join().unwrap();

        if delivered {
            assert_eq!(wakes.wakes(), 1, "the waiting consumer is woken");
            OUTCOMES.record("completed first, consumer woken");
        } else {
            assert_eq!(wakes.wakes(), 0, "nobody waits any more");
            OUTCOMES.record("dropped first, value handed back");
        }
        drop(waker);
        assert_eq!(WakeCounter::leaked_clones(&wakes), 0);
        assert_eq!(drops.count(), 1);
    });
    OUTCOMES.assert_exactly(&[
        "completed first, consumer woken",
        "dropped first, value handed back",
    ]);
}

/// The consumer awaits while the producer is dropped without completing: the consumer
/// finishes with `ProducerDropped` instead of hanging.
#[test]
fn producer_drop_vs_poll() {
    static OUTCOMES: Outcomes = Outcomes::new();
    loom::model(|| {
        let (producer, mut consumer) = cell::completion::<DropCounter>();

        let dropping = thread::spawn(move || drop(producer));
        let (result, how) = wait_for_result(&mut consumer);
        assert_eq!(result.err(), Some(Closed::ProducerDropped));
        drop(consumer);

        dropping.join().unwrap();
        OUTCOMES.record(how);
    });
    OUTCOMES.assert_exactly(&["ready at first poll", "ready after parking"]);
}

/// The consumer peeks once while the producer is dropped: nothing yet, or `ProducerDropped`.
#[test]
fn producer_drop_vs_try_take() {
    static OUTCOMES: Outcomes = Outcomes::new();
    loom::model(|| {
        let (producer, mut consumer) = cell::completion::<DropCounter>();

        // The peek runs on the spawned thread, as in `complete_vs_try_take`.
        let peeking = thread::spawn(move || {
            let peeked = consumer.try_take();
            (consumer, peeked)
        });
        drop(producer);
        let (mut consumer, peeked) = peeking.join().unwrap();

        match peeked {
            Some(result) => {
                assert_eq!(result.err(), Some(Closed::ProducerDropped));
                OUTCOMES.record("saw the drop");
            }
            None => {
                assert_eq!(
                    consumer.try_take().map(|r| r.err()),
                    Some(Some(Closed::ProducerDropped))
                );
                OUTCOMES.record("not there yet");
            }
        }
    });
    OUTCOMES.assert_exactly(&["not there yet", "saw the drop"]);
}

/// Both sides wait (each with its waker registered); the producer is dropped while the
/// consumer cancels. Whoever goes first wakes the other side, and only that side: the
/// second finds the first gone and leaves its waker alone.
#[test]
fn producer_drop_vs_cancel() {
    static OUTCOMES: Outcomes = Outcomes::new();
    loom::model(|| {
        let (mut producer, mut consumer) = cell::completion::<DropCounter>();
        let (producer_wakes, producer_waker) = WakeCounter::new();
        let (consumer_wakes, consumer_waker) = WakeCounter::new();
        assert!(
            producer
                .poll_cancelled(&mut Context::from_waker(&producer_waker))
                .is_pending()
        );
        assert!(
            consumer
                .poll_result(&mut Context::from_waker(&consumer_waker))
                .is_pending()
        );

        let dropping = thread::spawn(move || drop(producer));
        assert!(consumer.cancel(), "nothing completed, so the cancel wins");
        dropping.join().unwrap();

        // Cancelled consumers report their own cancellation, whoever went first.
        assert_eq!(
            consumer.try_take().map(|r| r.err()),
            Some(Some(Closed::Cancelled))
        );
        match (producer_wakes.wakes(), consumer_wakes.wakes()) {
            (0, 1) => OUTCOMES.record("producer dropped first, consumer woken"),
            (1, 0) => OUTCOMES.record("cancelled first, producer woken"),
            wakes => panic!("(producer, consumer) wakes: {wakes:?}"),
        }
        drop(consumer);
        drop((producer_waker, consumer_waker));
        assert_eq!(WakeCounter::leaked_clones(&producer_wakes), 0);
        assert_eq!(WakeCounter::leaked_clones(&consumer_wakes), 0);
    });
    OUTCOMES.assert_exactly(&[
        "cancelled first, producer woken",
        "producer dropped first, consumer woken",
    ]);
}

/// Both sides wait, then both are dropped at once, neither having completed: the cell is
/// freed exactly once on whichever thread lets go last (loom reports a leaked or doubly
/// freed `Arc`), the stored wakers go with it, and exactly one side was woken.
#[test]
fn producer_drop_vs_consumer_drop() {
    static OUTCOMES: Outcomes = Outcomes::new();
    loom::model(|| {
        let (mut producer, mut consumer) = cell::completion::<DropCounter>();
        let (producer_wakes, producer_waker) = WakeCounter::new();
        let (consumer_wakes, consumer_waker) = WakeCounter::new();
        assert!(
            producer
                .poll_cancelled(&mut Context::from_waker(&producer_waker))
                .is_pending()
        );
        assert!(
            consumer
                .poll_result(&mut Context::from_waker(&consumer_waker))
                .is_pending()
        );

        let dropping = thread::spawn(move || drop(producer));
        drop(consumer);
        dropping.join().unwrap();

        match (producer_wakes.wakes(), consumer_wakes.wakes()) {
            (0, 1) => OUTCOMES.record("producer dropped first, consumer woken"),
            (1, 0) => OUTCOMES.record("consumer dropped first, producer woken"),
            wakes => panic!("(producer, consumer) wakes: {wakes:?}"),
        }
        drop((producer_waker, consumer_waker));
        assert_eq!(WakeCounter::leaked_clones(&producer_wakes), 0);
        assert_eq!(WakeCounter::leaked_clones(&consumer_wakes), 0);
    });
    OUTCOMES.assert_exactly(&[
        "consumer dropped first, producer woken",
        "producer dropped first, consumer woken",
    ]);
}

/// Each side registers its own waker at the same time (both RMW the one state word), then
/// the producer completes: neither registration clobbers the other's bit, the consumer is
/// woken with the value, and the producer's waker is never woken (nobody cancelled; the
/// consumer's drop after taking the value is not a cancellation).
#[test]
fn poll_cancelled_vs_poll() {
    static OUTCOMES: Outcomes = Outcomes::new();
    loom::model(|| {
        let drops = Drops::new();
        let (mut producer, mut consumer) = cell::completion();
        let (producer_wakes, producer_waker) = WakeCounter::new();

        let producer_drops = drops.clone();
        let producing = thread::spawn(move || {
            assert!(
                producer
                    .poll_cancelled(&mut Context::from_waker(&producer_waker))
                    .is_pending()
            );
            producer
                .complete(producer_drops.value(1))
                .expect("nobody cancelled, so the value is delivered");
        });
        let (result, how) = wait_for_result(&mut consumer);
        assert_eq!(result.expect("the consumer gets the value").tag(), 1);
        drop(consumer);

        producing.join().unwrap();
        assert_eq!(producer_wakes.wakes(), 0);
        assert_eq!(WakeCounter::leaked_clones(&producer_wakes), 0);
        assert_eq!(drops.count(), 1);
        OUTCOMES.record(how);
    });
    OUTCOMES.assert_exactly(&["ready at first poll", "ready after parking"]);
}

/// The producer waits for cancellation while the consumer cancels: the producer wakes
/// (a lost wake-up is a loom deadlock), sees `is_cancelled`, and `complete` hands its value
/// back, to be dropped on the producer's thread.
#[test]
fn cancel_vs_poll_cancelled() {
    static OUTCOMES: Outcomes = Outcomes::new();
    loom::model(|| {
        let drops = Drops::new();
        let (mut producer, mut consumer) = cell::completion();

        let producer_drops = drops.clone();
        let producing = thread::spawn(move || {
            let how = wait_for_cancel(&mut producer);
            assert!(producer.is_cancelled());
            let value = producer
                .complete(producer_drops.value(1))
                .expect_err("a producer that saw the cancellation gets its value back");
            assert_eq!(value.tag(), 1);
            how
        });
        assert!(consumer.cancel(), "nothing completed, so the cancel wins");
        assert_eq!(
            consumer.try_take().map(|r| r.err()),
            Some(Some(Closed::Cancelled))
        );

        let how = producing.join().unwrap();
        drop(consumer);
        assert_eq!(drops.count(), 1);
        OUTCOMES.record(how);
    });
    OUTCOMES.assert_exactly(&["cancelled after parking", "cancelled at first poll"]);
}

/// The producer waits for cancellation while the consumer is dropped: same story as
/// `cancel_vs_poll_cancelled`, with the drop as the cancellation and the cell freed on
/// whichever thread lets go last.
#[test]
fn consumer_drop_vs_poll_cancelled() {
    static OUTCOMES: Outcomes = Outcomes::new();
    loom::model(|| {
        let drops = Drops::new();
        let (mut producer, consumer) = cell::completion();

        let producer_drops = drops.clone();
        let producing = thread::spawn(move || {
            let how = wait_for_cancel(&mut producer);
            let value = producer
                .complete(producer_drops.value(1))
                .expect_err("a producer that saw the cancellation gets its value back");
            assert_eq!(value.tag(), 1);
            how
        });
        drop(consumer);

        let how = producing.join().unwrap();
        assert_eq!(drops.count(), 1);
        OUTCOMES.record(how);
    });
    OUTCOMES.assert_exactly(&["cancelled after parking", "cancelled at first poll"]);
}

/// Two threads cancel the same consumer (shared by reference; `Consumer` is `Sync`) while
/// the producer waits: exactly one cancel reports the win, and the producer is woken once.
#[test]
fn cancel_vs_cancel() {
    static OUTCOMES: Outcomes = Outcomes::new();
    loom::model(|| {
        let drops = Drops::new();
        let (mut producer, consumer) = cell::completion();
        let (producer_wakes, producer_waker) = WakeCounter::new();
        let mut cx = Context::from_waker(&producer_waker);
        assert!(producer.poll_cancelled(&mut cx).is_pending());
        let consumer = Arc::new(consumer);

        let other = consumer.clone();
        let cancelling = thread::spawn(move || other.cancel());
        let this_won = consumer.cancel();
        let other_won = cancelling.join().unwrap();

        match (this_won, other_won) {
            (true, false) => OUTCOMES.record("this thread's cancel won"),
            (false, true) => OUTCOMES.record("the other thread's cancel won"),
            won => panic!("(this, other) won: {won:?}"),
        }
        assert_eq!(producer_wakes.wakes(), 1);
        assert!(producer.poll_cancelled(&mut cx).is_ready());
        let value = producer
            .complete(drops.value(1))
            .expect_err("the consumer cancelled, so the value comes back");
        drop(value);
        drop(consumer);
        drop(producer_waker);
        assert_eq!(WakeCounter::leaked_clones(&producer_wakes), 0);
        assert_eq!(drops.count(), 1);
    });
    OUTCOMES.assert_exactly(&["the other thread's cancel won", "this thread's cancel won"]);
}

/// The consumer, waiting with waker `first`, moves to another task and re-polls with
/// waker `second` while the producer completes. Either the re-poll returns the value, or
/// it returns `Pending` and then `second` (the latest waker) is woken, never `first`.
#[test]
fn consumer_waker_replacement_vs_complete() {
    static OUTCOMES: Outcomes = Outcomes::new();
    loom::model(|| {
        let drops = Drops::new();
        let (producer, mut consumer) = cell::completion();
        let (first_wakes, first) = WakeCounter::new();
        let (second_wakes, second) = WakeCounter::new();
        assert!(
            consumer
                .poll_result(&mut Context::from_waker(&first))
                .is_pending()
        );

        let producer_drops = drops.clone();
        let producing = thread::spawn(move || {
            producer
                .complete(producer_drops.value(1))
                .expect("nobody cancelled, so the value is delivered");
        });
        let repoll = consumer.poll_result(&mut Context::from_waker(&second));
        producing.join().unwrap();

        let value = match repoll {
            Poll::Ready(result) => {
                assert_eq!(second_wakes.wakes(), 0);
                match first_wakes.wakes() {
                    0 => OUTCOMES.record("ready, completed while the waker was swapped"),
                    1 => OUTCOMES.record("ready, completed before the swap, first woken"),
                    n => panic!("first waker woken {n} times"),
                }
                result.expect("the value was delivered")
            }
            Poll::Pending => {
                assert_eq!(first_wakes.wakes(), 0, "the replaced waker is not woken");
                assert_eq!(second_wakes.wakes(), 1, "the latest waker is woken");
                OUTCOMES.record("pending, second woken");
                consumer
                    .try_take()
                    .expect("the producer has finished")
                    .expect("the value was delivered")
            }
        };
        assert_eq!(value.tag(), 1);
        drop(value);
        drop(consumer);
        drop((first, second));
        assert_eq!(WakeCounter::leaked_clones(&first_wakes), 0);
        assert_eq!(WakeCounter::leaked_clones(&second_wakes), 0);
        assert_eq!(drops.count(), 1);
    });
    OUTCOMES.assert_exactly(&[
        "pending, second woken",
        "ready, completed before the swap, first woken",
        "ready, completed while the waker was swapped",
    ]);
}

/// As `consumer_waker_replacement_vs_complete`, with the producer dropped instead of
/// completing: the re-poll ends with `ProducerDropped`, or the latest waker is woken.
#[test]
fn consumer_waker_replacement_vs_producer_drop() {
    static OUTCOMES: Outcomes = Outcomes::new();
    loom::model(|| {
        let (producer, mut consumer) = cell::completion::<DropCounter>();
        let (first_wakes, first) = WakeCounter::new();
        let (second_wakes, second) = WakeCounter::new();
        assert!(
            consumer
                .poll_result(&mut Context::from_waker(&first))
                .is_pending()
        );

        let dropping = thread::spawn(move || drop(producer));
        let repoll = consumer.poll_result(&mut Context::from_waker(&second));
        dropping.join().unwrap();

        let result = match repoll {
            Poll::Ready(result) => {
                assert_eq!(second_wakes.wakes(), 0);
                match first_wakes.wakes() {
                    0 => OUTCOMES.record("ready, dropped while the waker was swapped"),
                    1 => OUTCOMES.record("ready, dropped before the swap, first woken"),
                    n => panic!("first waker woken {n} times"),
                }
                result
            }
            Poll::Pending => {
                assert_eq!(first_wakes.wakes(), 0, "the replaced waker is not woken");
                assert_eq!(second_wakes.wakes(), 1, "the latest waker is woken");
                OUTCOMES.record("pending, second woken");
                consumer.try_take().expect("the producer is gone")
            }
        };
        assert_eq!(result.err(), Some(Closed::ProducerDropped));
        drop(consumer);
        drop((first, second));
        assert_eq!(WakeCounter::leaked_clones(&first_wakes), 0);
        assert_eq!(WakeCounter::leaked_clones(&second_wakes), 0);
    });
    OUTCOMES.assert_exactly(&[
        "pending, second woken",
        "ready, dropped before the swap, first woken",
        "ready, dropped while the waker was swapped",
    ]);
}

/// The producer, waiting for cancellation with waker `first`, re-polls with waker `second`
/// while the consumer cancels: the re-poll sees the cancellation, or `second` is woken,
/// never `first`. The value the producer then offers comes back to it.
#[test]
fn producer_waker_replacement_vs_cancel() {
    static OUTCOMES: Outcomes = Outcomes::new();
    loom::model(|| {
        let drops = Drops::new();
        let (mut producer, consumer) = cell::completion();
        let (first_wakes, first) = WakeCounter::new();
        let (second_wakes, second) = WakeCounter::new();
        assert!(
            producer
                .poll_cancelled(&mut Context::from_waker(&first))
                .is_pending()
        );

        let producing = thread::spawn(move || {
            let repoll = producer.poll_cancelled(&mut Context::from_waker(&second));
            (producer, repoll, second)
        });
        assert!(consumer.cancel(), "nothing completed, so the cancel wins");
        let (producer, repoll, second) = producing.join().unwrap();

        if repoll.is_ready() {
            assert_eq!(second_wakes.wakes(), 0);
            match first_wakes.wakes() {
                0 => OUTCOMES.record("ready, cancelled while the waker was swapped"),
                1 => OUTCOMES.record("ready, cancelled before the swap, first woken"),
                n => panic!("first waker woken {n} times"),
            }
        } else {
            assert_eq!(first_wakes.wakes(), 0, "the replaced waker is not woken");
            assert_eq!(second_wakes.wakes(), 1, "the latest waker is woken");
            OUTCOMES.record("pending, second woken");
        }
        let value = producer
            .complete(drops.value(1))
            .expect_err("the consumer cancelled, so the value comes back");
        drop(value);
        drop(consumer);
        drop((first, second));
        assert_eq!(WakeCounter::leaked_clones(&first_wakes), 0);
        assert_eq!(WakeCounter::leaked_clones(&second_wakes), 0);
        assert_eq!(drops.count(), 1);
    });
    OUTCOMES.assert_exactly(&[
        "pending, second woken",
        "ready, cancelled before the swap, first woken",
        "ready, cancelled while the waker was swapped",
    ]);
}
