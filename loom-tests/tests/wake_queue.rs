//! Loom models of the wake queue: one `#[test]` per race, named for it.
//!
//! - `push_vs_push`: two producers on a fresh queue; exactly one push asks for a signal,
//!   and a later drain sees every item, each producer's in its order;
//! - `push_vs_drain`: a push races the drain of a queue whose signal is already pending;
//!   the drain sees the push, or the push asks for a new signal;
//! - `two_pushes_vs_drain`: the same with two producers: whatever the drain missed is
//!   covered by exactly one new signal;
//! - `drain_vs_drain`: two drains race each other and a push; no item is seen twice or lost;
//! - `push_vs_queue_drop`: the queue is dropped by whichever thread lets go last, with the
//!   items still in it;
//! - `signalled_drains_see_every_item`: the protocol the event loop runs: producers signal
//!   when a push asks them to, the consumer drains once per wake-up, and no item is left
//!   behind (a lost signal leaves the consumer waiting forever: a loom deadlock).
//!
//! The invariant under all of them, from the queue's docs: after a drain, every push is
//! either seen by that drain or reports `Signal::Needed`. Read precisely: of the pushes a
//! drain misses, the first to take effect reports `Needed` and the others
//! `AlreadyPending` (they ride on that one's signal); the models check it in that form.
//!
//! Items are `DropCounter`s with distinct tags (`10 * producer + index` where two
//! producers push several each), made on the thread that pushes them. Both the queue's
//! links and its items are visible to loom: each node keeps its `next` in a loom
//! `UnsafeCell` (through the core's `sync` shim), and each item carries one that the
//! drainer reads, so a push or drain whose ordering fails to carry a link or an item
//! across threads shows up as a loom causality violation (`tests/planted_bug.rs` proves it
//! for a link written after its node was published). Every model checks that each item is
//! dropped exactly once, and the exact set of outcomes its race may end in (and that loom
//! reached each one).
//!
//! Preemption bound: run with `LOOM_MAX_PREEMPTIONS=3` (see the crate docs for why).
#![cfg(loom)]

use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use pyo3_aio_core::wake_queue::{Signal, WakeQueue};
use pyo3_aio_loom_tests::support::{DropCounter, Drops, Outcomes};

/// The tags of the items a drain took, oldest first; the items are dropped on the way.
fn tags(drained: impl Iterator<Item = DropCounter>) -> Vec<usize> {
    drained.map(|item| item.tag()).collect()
}

/// Whether `a` comes before `b` in `order` (both present).
fn before(order: &[usize], a: usize, b: usize) -> bool {
    let position = |tag| order.iter().position(|&t| t == tag).expect("tag present");
    position(a) < position(b)
}

/// Two producers push two items each onto a fresh queue. Exactly one of the four pushes
/// reports `Needed` (no drain runs, so the first signal covers everything), and the final
/// drain returns all four, each producer's items in the order it pushed them.
#[test]
fn push_vs_push() {
    static OUTCOMES: Outcomes = Outcomes::new();
    loom::model(|| {
        let drops = Drops::new();
        let queue = Arc::new(WakeQueue::new());

        let other = {
            let (queue, drops) = (queue.clone(), drops.clone());
            thread::spawn(move || [queue.push(drops.value(20)), queue.push(drops.value(21))])
        };
        let this = [queue.push(drops.value(10)), queue.push(drops.value(11))];
        let other = other.join().unwrap();

        let needed = |signals: &[Signal]| signals.iter().filter(|&&s| s == Signal::Needed).count();
        let order = tags(queue.drain());
        assert_eq!(
            needed(&this) + needed(&other),
            1,
            "one signal for the burst"
        );
        assert_eq!(order.len(), 4);
        assert!(
            before(&order, 10, 11) && before(&order, 20, 21),
            "{order:?}"
        );
        // The first push to take effect is the one that signals.
        let signalled_first = if this[0] == Signal::Needed { 10 } else { 20 };
        assert_eq!(order[0], signalled_first, "{order:?}");

        drop(queue);
        assert_eq!(drops.count(), 4);
        OUTCOMES.record(format!("{order:?}"));
    });
    // Every merge of the two producers' sequences.
    OUTCOMES.assert_exactly(&[
        "[10, 11, 20, 21]",
        "[10, 20, 11, 21]",
        "[10, 20, 21, 11]",
        "[20, 10, 11, 21]",
        "[20, 10, 21, 11]",
        "[20, 21, 10, 11]",
    ]);
}

/// A signal is pending (item 0 asked for it); a producer pushes item 1 while the loop
/// drains. Either the drain takes item 1 (and the push rode on the pending signal), or it
/// misses it and the push reports `Needed`, so the loop will be signalled again.
#[test]
fn push_vs_drain() {
    static OUTCOMES: Outcomes = Outcomes::new();
    loom::model(|| {
        let drops = Drops::new();
        let queue = Arc::new(WakeQueue::new());
        assert_eq!(queue.push(drops.value(0)), Signal::Needed);

        let pushing = {
            let (queue, drops) = (queue.clone(), drops.clone());
            thread::spawn(move || queue.push(drops.value(1)))
        };
        let drained = tags(queue.drain());
        let signal = pushing.join().unwrap();
        let rest = tags(queue.drain());

        match (drained.as_slice(), signal, rest.as_slice()) {
            ([0, 1], Signal::AlreadyPending, []) => OUTCOMES.record("drain saw the push"),
            ([0], Signal::Needed, [1]) => OUTCOMES.record("push signalled again"),
            outcome => panic!("(drained, push, left) = {outcome:?}"),
        }
        drop(queue);
        assert_eq!(drops.count(), 2);
    });
    OUTCOMES.assert_exactly(&["drain saw the push", "push signalled again"]);
}

/// A signal is pending (item 0); two producers push items 1 and 2 while the loop drains.
/// Whatever the drain missed is still queued, and exactly one of the missed pushes (the
/// first to land after the drain) reported `Needed`; the pushes the drain saw rode on the
/// pending signal.
#[test]
fn two_pushes_vs_drain() {
    static OUTCOMES: Outcomes = Outcomes::new();
    loom::model(|| {
        let drops = Drops::new();
        let queue = Arc::new(WakeQueue::new());
        assert_eq!(queue.push(drops.value(0)), Signal::Needed);

        let pushers: Vec<_> = [1, 2]
            .into_iter()
            .map(|tag| {
                let (queue, drops) = (queue.clone(), drops.clone());
                thread::spawn(move || (tag, queue.push(drops.value(tag))))
            })
            .collect();
        let drained = tags(queue.drain());
        let signals: Vec<(usize, Signal)> =
            pushers.into_iter().map(|p| p.join().unwrap()).collect();
        let rest = tags(queue.drain());

        assert_eq!(drained[0], 0, "the backlog comes first");
        for (tag, signal) in signals {
            if drained.contains(&tag) {
                assert_eq!(signal, Signal::AlreadyPending, "item {tag} was drained");
            } else {
                let first_missed = rest[0] == tag;
                let expected = if first_missed {
                    Signal::Needed
                } else {
                    Signal::AlreadyPending
                };
                assert_eq!(signal, expected, "item {tag} was missed; left {rest:?}");
            }
        }
        let mut all = [drained.as_slice(), rest.as_slice()].concat();
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2], "every item exactly once");

        drop(queue);
        assert_eq!(drops.count(), 3);
        OUTCOMES.record(format!("drained {drained:?}, left {rest:?}"));
    });
    OUTCOMES.assert_exactly(&[
        "drained [0, 1, 2], left []",
        "drained [0, 1], left [2]",
        "drained [0, 2, 1], left []",
        "drained [0, 2], left [1]",
        "drained [0], left [1, 2]",
        "drained [0], left [2, 1]",
    ]);
}

/// Two threads drain (say, a loop woken twice, or a drain from a shutdown path) while a
/// producer pushes item 2 onto a backlog of items 0 and 1. Whichever drain swaps first
/// gets the backlog; item 2 goes to exactly one of the drains or stays for the final one;
/// no item is seen twice. The push rode on the backlog's signal exactly when it was drained
/// with the backlog.
#[test]
fn drain_vs_drain() {
    static OUTCOMES: Outcomes = Outcomes::new();
    loom::model(|| {
        let drops = Drops::new();
        let queue = Arc::new(WakeQueue::new());
        assert_eq!(queue.push(drops.value(0)), Signal::Needed);
        assert_eq!(queue.push(drops.value(1)), Signal::AlreadyPending);

        let draining = {
            let queue = queue.clone();
            thread::spawn(move || tags(queue.drain()))
        };
        let pushing = {
            let (queue, drops) = (queue.clone(), drops.clone());
            thread::spawn(move || queue.push(drops.value(2)))
        };
        let main_drained = tags(queue.drain());
        let thread_drained = draining.join().unwrap();
        let signal = pushing.join().unwrap();
        let rest = tags(queue.drain());

        let mut all = [&main_drained[..], &thread_drained[..], &rest[..]].concat();
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2], "every item exactly once");

        let (backlog_to, with_backlog) = if main_drained.starts_with(&[0, 1]) {
            ("main", &main_drained)
        } else {
            assert!(
                thread_drained.starts_with(&[0, 1]),
                "the backlog stays together"
            );
            ("thread", &thread_drained)
        };
        let rode_along = with_backlog.contains(&2);
        assert_eq!(signal == Signal::AlreadyPending, rode_along);
        let item_2_to = if main_drained.contains(&2) {
            "main"
        } else if thread_drained.contains(&2) {
            "thread"
        } else {
            "final"
        };

        drop(queue);
        assert_eq!(drops.count(), 3);
        OUTCOMES.record(format!("backlog to {backlog_to}, 2 to {item_2_to}"));
    });
    OUTCOMES.assert_exactly(&[
        "backlog to main, 2 to final",
        "backlog to main, 2 to main",
        "backlog to main, 2 to thread",
        "backlog to thread, 2 to final",
        "backlog to thread, 2 to main",
        "backlog to thread, 2 to thread",
    ]);
}

/// A producer pushes item 1 and lets go of the queue while the loop (holding item 0 in
/// it) lets go too: the queue is dropped on whichever thread is last, and its drop drops
/// both undrained items, once each.
#[test]
fn push_vs_queue_drop() {
    loom::model(|| {
        let drops = Drops::new();
        let queue = Arc::new(WakeQueue::new());
        assert_eq!(queue.push(drops.value(0)), Signal::Needed);

        let pushing = {
            let (queue, drops) = (queue.clone(), drops.clone());
            thread::spawn(move || {
                let signal = queue.push(drops.value(1));
                drop(queue);
                signal
            })
        };
        drop(queue);
        assert_eq!(pushing.join().unwrap(), Signal::AlreadyPending);
        assert_eq!(drops.count(), 2);
    });
}

/// How producers wake the loop: a count of signals sent and not yet consumed, standing in
/// for an eventfd (a read takes every pending signal at once).
struct Wakeup {
    pending: Mutex<usize>,
    signalled: Condvar,
}

/// The whole protocol. Two producers push one item each and, when the push says
/// `Needed`, signal the loop. The loop sleeps until signalled, takes every pending signal,
/// drains once, and repeats until it has seen both items. A push that neither lands in a
/// drain nor signals would leave the loop asleep forever, which loom reports as a
/// deadlock. A burst costs one signal and one drain; a push that lands after the drain
/// costs a second of each.
#[test]
fn signalled_drains_see_every_item() {
    static OUTCOMES: Outcomes = Outcomes::new();
    loom::model(|| {
        let drops = Drops::new();
        let queue = Arc::new(WakeQueue::new());
        let wakeup = Arc::new(Wakeup {
            pending: Mutex::new(0),
            signalled: Condvar::new(),
        });

        let producers: Vec<_> = [10, 20]
            .into_iter()
            .map(|tag| {
                let (queue, wakeup, drops) = (queue.clone(), wakeup.clone(), drops.clone());
                thread::spawn(move || {
                    let signal = queue.push(drops.value(tag));
                    if signal == Signal::Needed {
                        *wakeup.pending.lock().unwrap() += 1;
                        wakeup.signalled.notify_one();
                    }
                    signal
                })
            })
            .collect();

        let mut seen = Vec::new();
        let mut drains = 0;
        while seen.len() < 2 {
            let mut pending = wakeup.pending.lock().unwrap();
            while *pending == 0 {
                pending = wakeup.signalled.wait(pending).unwrap();
            }
            *pending = 0;
            drop(pending);
            drains += 1;
            seen.extend(tags(queue.drain()));
        }

        let signals = producers
            .into_iter()
            .map(|p| p.join().unwrap())
            .filter(|&s| s == Signal::Needed)
            .count();
        seen.sort_unstable();
        assert_eq!(seen, [10, 20], "every item exactly once");
        assert!(queue.is_empty());
        drop(queue);
        assert_eq!(drops.count(), 2);
        OUTCOMES.record(format!("signals: {signals}, drains: {drains}"));
    });
    OUTCOMES.assert_exactly(&["signals: 1, drains: 1", "signals: 2, drains: 2"]);
}
