//! Loom models of the loop queue: the wake queue of one event loop and its `closed` flag,
//! one `#[test]` per race, named for it.
//!
//! - `push_vs_close`: a producer pushes while the loop closes; the item is taken by the
//!   close or handed back by the refused push, and never left queued;
//! - `pushes_vs_last_drain_and_close`: the loop's last drain and its close, against a
//!   producer pushing twice: each item is resumed by the drain or handed back for
//!   release, exactly once, and nothing is left queued for a loop that will never drain.
//!
//! The invariant under both, from the queue's docs: once `close` and a push have both
//! returned, the pushed item is no longer queued; exactly one drain (the loop's, the
//! close's, or a refused push's) took it. A push that read the flag before enqueueing
//! breaks it (`tests/planted_bug.rs` shows `push_vs_close` failing on that order).
//!
//! Items are `DropCounter`s made on the pushing thread, so loom also checks that each one
//! crosses to the thread that takes it with a happens-before edge. Every model checks that
//! each item is dropped exactly once and the exact set of outcomes its race may end in
//! (and that loom reached each one).
//!
//! Preemption bound: run with `LOOM_MAX_PREEMPTIONS=3` (see the crate docs for why).
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use pyo3_aio_core::loop_queue::{LoopQueue, Push};
use pyo3_aio_core::wake_queue::{Drain, Signal};
use pyo3_aio_loom_tests::support::{DropCounter, Drops, Outcomes};

/// The tags of the items a drain took, oldest first; the items are dropped on the way.
fn tags(drained: Drain<DropCounter>) -> Vec<usize> {
    drained.map(|item| item.tag()).collect()
}

/// What one push reported: queued with its signal, or refused with the tags of the items
/// it was handed back.
#[derive(Debug, PartialEq, Eq)]
enum Pushed {
    Queued(Signal),
    Refused(Vec<usize>),
}

fn push(queue: &LoopQueue<DropCounter>, item: DropCounter) -> Pushed {
    match queue.push(item) {
        Push::Queued(signal) => Pushed::Queued(signal),
        Push::Closed(left) => Pushed::Refused(tags(left)),
    }
}

/// A producer pushes item 1 while the loop closes. The push lands before the close's
/// drain (queued, and the close takes it) or after it (refused, and the push takes it
/// back), or in between the close's two steps (refused, and the close takes it). Never
/// queued with nobody to take it.
#[test]
fn push_vs_close() {
    static OUTCOMES: Outcomes = Outcomes::new();
    loom::model(|| {
        let drops = Drops::new();
        let queue = Arc::new(LoopQueue::new());

        let pushing = {
            let (queue, drops) = (queue.clone(), drops.clone());
            thread::spawn(move || push(&queue, drops.value(1)))
        };
        let closed = tags(queue.close());
        let pushed = pushing.join().unwrap();

        assert_eq!(
            tags(queue.drain()),
            [],
            "an item was left in a closed loop's queue"
        );
        assert_eq!(drops.count(), 1);
        let outcome = match (&pushed, closed.as_slice()) {
            // A fresh queue: the first push always asks for the signal.
            (Pushed::Queued(Signal::Needed), [1]) => "queued, the close took it",
            (Pushed::Refused(took), [1]) if took.is_empty() => "refused, the close took it",
            (Pushed::Refused(took), []) if took == &[1] => "refused, the push took it back",
            other => panic!("(push, close took) = {other:?}"),
        };
        OUTCOMES.record(outcome);
    });
    OUTCOMES.assert_exactly(&[
        "queued, the close took it",
        "refused, the close took it",
        "refused, the push took it back",
    ]);
}

/// The loop's last drain, then its close, against a producer pushing items 1 and 2. Each
/// item is resumed by the drain, or taken for release by the close or by a refused push
/// (the second push's refusal can take item 1 too, when the first push was queued but the
/// close had not drained yet), exactly once; the drain sees them in push order; a queued
/// second push rides on the first one's signal exactly when one drain took both.
#[test]
fn pushes_vs_last_drain_and_close() {
    static OUTCOMES: Outcomes = Outcomes::new();
    loom::model(|| {
        let drops = Drops::new();
        let queue = Arc::new(LoopQueue::new());

        let pushing = {
            let (queue, drops) = (queue.clone(), drops.clone());
            thread::spawn(move || {
                let first = push(&queue, drops.value(1));
                let second = push(&queue, drops.value(2));
                [first, second]
            })
        };
        let resumed = tags(queue.drain());
        let closed = tags(queue.close());
        let pushed = pushing.join().unwrap();

        assert_eq!(
            tags(queue.drain()),
            [],
            "an item was left in a closed loop's queue"
        );
        assert_eq!(drops.count(), 2);
        let taker = |item: usize| {
            let mut takers = Vec::new();
            if resumed.contains(&item) {
                takers.push("the loop");
            }
            if closed.contains(&item) {
                takers.push("the close");
            }
            for (number, pushed) in pushed.iter().enumerate() {
                if matches!(pushed, Pushed::Refused(took) if took.contains(&item)) {
                    takers.push(["push 1", "push 2"][number]);
                }
            }
            assert_eq!(takers.len(), 1, "item {item} taken by {takers:?}");
            takers[0]
        };
        let (first, second) = (taker(1), taker(2));
        assert!(
            resumed.windows(2).all(|pair| pair[0] < pair[1]),
            "{resumed:?}"
        );
        if let Pushed::Queued(signal) = pushed[0] {
            assert_eq!(
                signal,
                Signal::Needed,
                "the first push onto a fresh queue asks for the signal"
            );
        }
        if let Pushed::Queued(signal) = pushed[1] {
            let same_drain = first == second;
            assert_eq!(
                signal == Signal::AlreadyPending,
                same_drain,
                "push 2 said {signal:?}, item 1 taken by {first}, item 2 by {second}"
            );
        }
        OUTCOMES.record(format!("1 by {first}, 2 by {second}"));
    });
    OUTCOMES.assert_exactly(&[
        "1 by the close, 2 by push 2",
        "1 by the close, 2 by the close",
        "1 by push 1, 2 by push 2",
        "1 by push 1, 2 by the close",
        "1 by push 2, 2 by push 2",
        "1 by the loop, 2 by push 2",
        "1 by the loop, 2 by the close",
        "1 by the loop, 2 by the loop",
    ]);
}
