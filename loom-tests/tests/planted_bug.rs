//! The proof that the loom models have teeth.
//!
//! A model that never fails proves nothing until it has been seen failing on a bug. Under
//! `--cfg loom`, `pyo3_aio_core::cell::completion_with_planted_bug` builds a cell whose
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
//! Loom reports a failing interleaving by panicking out of `loom::model`. An assertion
//! failure unwinds through `std::panic::catch_unwind` well enough, but a deadlock does not:
//! loom panics after tearing down the execution's thread state, and unwinding then drops
//! the model's loom objects (the cell's `Arc`, the value), whose destructors panic again, and
//! the process aborts. So the planted model is its own `#[ignore]`d test, and
//! `complete_vs_poll_catches_the_planted_lost_wake_up` runs it in a child process (this
//! same test binary) and asserts that it failed, and failed on the lost wake-up (loom's
//! deadlock report, or the consumer's "gets the value" assertion) rather than on anything
//! else.
//!
//! Preemption bound: run with `LOOM_MAX_PREEMPTIONS=3`, like the rest of the suite; the
//! planted bug needs one preemption (between the consumer's load and its store).
#![cfg(loom)]

use std::env;
use std::process::Command;
use std::task::{Context, Poll, Wake, Waker};

use loom::thread;
use pyo3_aio_core::cell::{self, Consumer, Producer};
use pyo3_aio_loom_tests::support::{DropCounter, Drops};

type NewCell = fn() -> (Producer<DropCounter>, Consumer<DropCounter>);

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
    let output = Command::new(env::current_exe().expect("the test binary's own path"))
        .args([
            "planted_cell_complete_vs_poll",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .expect("the test binary runs itself");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout.contains("running 1 test"),
        "the child did not run the planted model:\n{stdout}\n{stderr}"
    );
    assert!(
        !output.status.success(),
        "loom passed the planted lost wake-up: the models have no teeth\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("deadlock") || stderr.contains("the consumer gets the value"),
        "loom failed, but not on the lost wake-up:\n{stderr}"
    );
}

#[test]
fn complete_vs_poll_passes_on_the_real_cell() {
    complete_vs_poll(cell::completion);
}
