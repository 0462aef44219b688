//! The proof that the loom models have teeth.
//!
//! A model that never fails proves nothing until it has been seen failing on a bug. Three
//! bugs are planted here, each behind a loom-only constructor in the core, and each must
//! fail a story that the real code passes.
//!
//! # The cell's lost wake-up
//!
//! Under `--cfg loom`, `pyo3_aio_core::cell::completion_with_planted_bug` builds a cell whose
//! consumer publishes its waker with a plain load and a store instead of one
//! read-modify-write: a `COMPLETE` landing between the two is overwritten, the producer
//! never sees the waker, and the consumer is never woken (the classic lost wake-up).
//!
//! The race is `complete_vs_poll` from `tests/cell.rs`: the consumer polls while the
//! producer completes, and a consumer left `Pending` parks until it is woken. Run on the
//! planted cell, loom must find an interleaving that deadlocks (the consumer parked forever)
//! or where the consumer ends without its value; run on the real cell, the very same model
//! must pass.
//!
//! The consumer here polls once and then parks until `try_take` has the result, instead of
//! re-polling under `loom::future::block_on` as `tests/cell.rs` does. The planted consumer
//! rewrites its waker slot on every poll without the protocol (its `SAFETY` note restricts
//! it to a single registration), so after one of the spurious wake-ups that loom simulates
//! in `block_on`, the re-poll races with the producer reading that slot and loom reports
//! that data race before it reaches the lost wake-up. Polling once keeps the one planted
//! bug the only one in play, so the test can insist that loom failed on it.
//!
//! # The wake queue's late link
//!
//! `pyo3_aio_core::wake_queue::WakeQueue::with_planted_bug` builds a queue whose `push`
//! writes its node's `next` after the CAS that publishes the node, instead of before. A
//! drain that swaps the list out in between reads a `next` that is still being written.
//! Loom only sees that because each node keeps `next` in a loom `UnsafeCell`: the CAS and
//! the late write are one step of loom's schedule (a cell access is no scheduling point),
//! so without the cell the drain would always read the finished link and the model would
//! pass. With it, the drain's read is checked against the push's write, which the swap's
//! Acquire does not order before it, and loom reports a causality violation on the node.
//!
//! The race is `push_vs_drain` from `tests/wake_queue.rs`: a push onto a queue with one
//! item and a pending signal, against the drain. Run on the planted queue, loom must report
//! the violation on a cell created in `wake_queue.rs` (a node's, not an item's); run on the
//! real queue, the very same model must pass.
//!
//! # The loop queue's early look at `closed`
//!
//! `pyo3_aio_core::loop_queue::LoopQueue::with_planted_bug` builds a loop queue whose
//! `push` reads the `closed` flag before enqueueing its item instead of after. A close that
//! runs between the two sets the flag and drains a queue that does not hold the item yet;
//! the push, having read `false`, reports it queued, and it stays in the queue of a loop
//! that will never drain again (in the bridge: a conversion whose Python objects are never
//! released).
//!
//! The race is `push_vs_close` from `tests/loop_queue.rs`. Run on the planted queue, loom
//! must fail its check that nothing is left queued; run on the real queue, the very same
//! model must pass. The stranding needs one preemption (between the push's read and its
//! enqueue).
//!
//! # Running a model that must fail
//!
//! Loom reports a failing interleaving by panicking out of `loom::model`. An assertion
//! failure unwinds through `std::panic::catch_unwind` well enough, but a deadlock does not:
//! loom panics after tearing down the execution's thread state, and unwinding then drops
//! the model's loom objects (the cell's `Arc`, the value), whose destructors panic again, and
//! the process aborts. So each planted model is its own `#[ignore]`d test, and a companion
//! test runs it in a child process (this same test binary) and asserts that it failed, and
//! failed on the planted bug rather than on anything else.
//!
//! Preemption bound: run with `LOOM_MAX_PREEMPTIONS=3`, like the rest of the suite; the
//! planted lost wake-up needs one preemption (between the consumer's load and its store),
//! the late link none (any schedule where the drain follows the push shows it).
#![cfg(loom)]

use std::env;
use std::process::Command;
use std::task::{Context, Poll, Wake, Waker};

use loom::sync::Arc;
use loom::thread;
use pyo3_aio_core::cell::{self, Consumer, Producer};
use pyo3_aio_core::loop_queue::{LoopQueue, Push};
use pyo3_aio_core::wake_queue::{Signal, WakeQueue};
use pyo3_aio_loom_tests::support::{DropCounter, Drops};

type NewCell = fn() -> (Producer<DropCounter>, Consumer<DropCounter>);
type NewQueue = fn() -> WakeQueue<DropCounter>;
type NewLoopQueue = fn() -> LoopQueue<DropCounter>;

/// Runs the `#[ignore]`d test `name` of this binary in a child process (with loom's
/// locations on) and returns its stderr, after checking that it ran and failed.
fn run_planted(name: &str) -> String {
    let output = Command::new(env::current_exe().expect("the test binary's own path"))
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("LOOM_LOCATION", "1")
        .output()
        .expect("the test binary runs itself");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout.contains("running 1 test"),
        "the child did not run the planted model {name}:\n{stdout}\n{stderr}"
    );
    assert!(
        !output.status.success(),
        "loom passed the planted model {name}: the models have no teeth\n{stdout}\n{stderr}"
    );
    stderr.into_owned()
}

/// Wakes a parked loom thread.
struct Unpark(thread::Thread);

impl Wake for Unpark {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }
}

/// `complete_vs_poll` against the cell that `new_cell` builds.
fn complete_vs_poll(new_cell: NewCell) {
    loom::model(move || {
        let drops = Drops::new();
        let (producer, mut consumer) = new_cell();
        let waker = Waker::from(std::sync::Arc::new(Unpark(thread::current())));

        let producer_drops = drops.clone();
        let producing = thread::spawn(move || {
            producer
                .complete(producer_drops.value(1))
                .expect("nobody cancelled, so the value is delivered");
        });
        let result = match consumer.poll_result(&mut Context::from_waker(&waker)) {
            Poll::Ready(result) => result,
            // Parked until woken; a lost wake-up leaves it parked, which loom reports as a
            // deadlock. Loom's `park` only returns after an `unpark`.
            Poll::Pending => loop {
                if let Some(result) = consumer.try_take() {
                    break result;
                }
                thread::park();
            },
        };
        let value = result.expect("the consumer gets the value");
        assert_eq!(value.tag(), 1);
        drop(value);
        drop(consumer);

        producing.join().unwrap();
        assert_eq!(drops.count(), 1);
    });
}

/// The planted cell under the `complete_vs_poll` model. Fails by design: loom finds the
/// lost wake-up and reports a deadlock, which aborts the process.
#[test]
#[ignore = "fails by design; run in a child process by the test below"]
fn planted_cell_complete_vs_poll() {
    complete_vs_poll(cell::completion_with_planted_bug);
}

#[test]
fn complete_vs_poll_catches_the_planted_lost_wake_up() {
    let stderr = run_planted("planted_cell_complete_vs_poll");
    assert!(
        stderr.contains("deadlock") || stderr.contains("the consumer gets the value"),
        "loom failed, but not on the lost wake-up:\n{stderr}"
    );
}

#[test]
fn complete_vs_poll_passes_on_the_real_cell() {
    complete_vs_poll(cell::completion);
}

/// `push_vs_drain` against the queue that `new_queue` builds: item 0 is queued with its
/// signal pending, and a push of item 1 races the drain. Either the drain takes both and
/// the push rode on the pending signal, or it takes item 0 and the push signals again.
fn push_vs_drain(new_queue: NewQueue) {
    loom::model(move || {
        let drops = Drops::new();
        let queue = Arc::new(new_queue());
        assert_eq!(queue.push(drops.value(0)), Signal::Needed);

        let pushing = {
            let (queue, drops) = (queue.clone(), drops.clone());
            thread::spawn(move || queue.push(drops.value(1)))
        };
        let drained: Vec<usize> = queue.drain().map(|item| item.tag()).collect();
        let signal = pushing.join().unwrap();
        let rest: Vec<usize> = queue.drain().map(|item| item.tag()).collect();

        match (drained.as_slice(), signal, rest.as_slice()) {
            ([0, 1], Signal::AlreadyPending, []) | ([0], Signal::Needed, [1]) => {}
            outcome => panic!("(drained, push, left) = {outcome:?}"),
        }
        drop(queue);
        assert_eq!(drops.count(), 2);
    });
}

/// The planted queue under the `push_vs_drain` model. Fails by design: loom reports the
/// drain's read of a node's `next` as concurrent with the push's late write.
#[test]
#[ignore = "fails by design; run in a child process by the test below"]
fn planted_queue_push_vs_drain() {
    push_vs_drain(WakeQueue::with_planted_bug);
}

#[test]
fn push_vs_drain_catches_the_planted_late_link() {
    let stderr = run_planted("planted_queue_push_vs_drain");
    assert!(
        stderr.contains("Causality violation") && stderr.contains("wake_queue.rs"),
        "loom failed, but not on the race over a node's `next`:\n{stderr}"
    );
}

#[test]
fn push_vs_drain_passes_on_the_real_queue() {
    push_vs_drain(WakeQueue::new);
}

/// `push_vs_close` against the loop queue that `new_queue` builds: a push of item 1 races
/// the close. However they interleave, the item must not be left queued once both return.
fn push_vs_close(new_queue: NewLoopQueue) {
    loom::model(move || {
        let drops = Drops::new();
        let queue = Arc::new(new_queue());

        let pushing = {
            let (queue, drops) = (queue.clone(), drops.clone());
            thread::spawn(move || match queue.push(drops.value(1)) {
                Push::Queued(_) => Vec::new(),
                Push::Closed(left) => left.map(|item| item.tag()).collect(),
            })
        };
        let closed: Vec<usize> = queue.close().map(|item| item.tag()).collect();
        let refused: Vec<usize> = pushing.join().unwrap();
        let stranded: Vec<usize> = queue.drain().map(|item| item.tag()).collect();

        assert_eq!(stranded, [], "an item was left in a closed loop's queue");
        assert_eq!(closed.len() + refused.len(), 1, "{closed:?} {refused:?}");
        drop(queue);
        assert_eq!(drops.count(), 1);
    });
}

/// The planted loop queue under the `push_vs_close` model. Fails by design: loom finds the
/// close that slips between the push's look at the flag and its enqueue.
#[test]
#[ignore = "fails by design; run in a child process by the test below"]
fn planted_loop_queue_push_vs_close() {
    push_vs_close(LoopQueue::with_planted_bug);
}

#[test]
fn push_vs_close_catches_the_planted_early_look() {
    let stderr = run_planted("planted_loop_queue_push_vs_close");
    assert!(
        stderr.contains("an item was left in a closed loop's queue"),
        "loom failed, but not on the item stranded behind the close:\n{stderr}"
    );
}

#[test]
fn push_vs_close_passes_on_the_real_loop_queue() {
    push_vs_close(LoopQueue::new);
}
