//! Loom models of `pyo3-aio-core`: every race of the completion cell, the wake queue and
//! the loop queue (the wake queue with its loop's `closed` flag).
//!
//! [loom] runs a closure over and over, once per interleaving of its threads' atomic
//! operations (and per allowed value of each relaxed load), and fails on a panic, a
//! deadlock, a data race on an `UnsafeCell`, or a leaked `loom::sync::Arc`. Under
//! `--cfg loom` the core crate takes its atomics, `Arc` and `UnsafeCell` from loom (see its
//! private `sync` shim), so the models check the very code that ships.
//!
//! The models live in `tests/`, one file per concept, one `#[test]` per race:
//!
//! - `tests/cell.rs`: every pair of completion-cell operations that can overlap
//!   (complete, producer drop, `poll_cancelled` on one side; poll, `try_take`, cancel,
//!   consumer drop on the other), plus waker replacement on both sides;
//! - `tests/wake_queue.rs`: push against push, push against drain, drain against drain,
//!   push against the queue's drop, and the signal protocol the event loop runs;
//! - `tests/loop_queue.rs`: a push against the loop's close, and pushes against the loop's
//!   last drain and its close;
//! - `tests/planted_bug.rs`: the proof that the models have teeth: a cell with a planted
//!   lost wake-up must fail the `complete_vs_poll` story that the real cell passes, a
//!   wake queue that links a node after publishing it must fail `push_vs_drain`, and a
//!   loop queue whose push reads `closed` before enqueueing must fail `push_vs_close`.
//!
//! # Running
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 CARGO_TARGET_DIR=target/loom \
//!     cargo test -p pyo3-aio-loom-tests --release
//! ```
//!
//! `--cfg loom` swaps the primitives (every test file starts with `#![cfg(loom)]`, so a
//! plain `cargo test --workspace` compiles them to nothing); the separate target directory
//! keeps the loom build from invalidating the normal one; `--release` because loom runs
//! each model thousands of times. `LOOM_LOG=trace LOOM_LOCATION=1` prints the operations
//! of a failing interleaving.
//!
//! # Preemption bound: 3
//!
//! Every race here is between two or three threads that each do a handful of atomic
//! operations. The classic bugs of such handshakes (a lost wake-up, a value taken twice, a
//! waker read while it is rewritten) need one or two preemptions to show: the planted
//! lost wake-up needs one. A bound of 3 leaves a spare and keeps the whole suite to about
//! a second of model checking on a 2-core machine, plus the build. Unbounded, the same
//! models reach the same outcome sets, but the three-thread wake-queue models take
//! seconds each and `signalled_drains_see_every_item` (three threads, a mutex and a
//! condvar) takes minutes.
//!
//! # Reading a failure
//!
//! A model that fails an assertion or hits a data race makes its `#[test]` fail as usual.
//! A model that deadlocks (a lost wake-up) aborts the whole test binary instead: loom
//! panics after tearing down the execution, and the unwinding drops loom objects whose
//! destructors panic again. Rerun the binary with one test name (and `--nocapture`) to see
//! which; `LOOM_LOG=trace LOOM_LOCATION=1` prints the interleaving.
//!
//! # What loom does not explore
//!
//! Loom 0.7's partial-order reduction misses some interleavings in which a spawned thread
//! first loads an atomic and then writes it, racing a plain load on another thread
//! (tokio-rs/loom#166 and #392). `complete_vs_try_take` written with the peek on the main
//! thread explores one interleaving only. Two defences are in place: each model records
//! which outcomes it reached and asserts the exact expected set (so a race loom skipped
//! fails the test), and the peeking models put the pure load on the spawned thread, where
//! loom does explore it. When the suite was written, a scratch run against fifteen
//! mutants of the core (weakened orderings, missing wake-ups, load-then-store instead of
//! an RMW, a drain that keeps the signal armed) failed on every one of them.
//!
//! # Helpers
//!
//! Under `--cfg loom` this crate exports a `support` module: values that count their drops
//! (and let loom check every handover of them), wakers that count their wake-ups, and a
//! record of which outcomes a model reached.
//!
//! [loom]: https://docs.rs/loom/0.7

#[cfg(loom)]
pub mod support;
