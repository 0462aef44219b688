//! The concurrency core of pyo3-aio: everything two threads touch at once, free of Python.
//!
//! - [`cell`]: the completion cell, a one-shot handoff of one value with cancellation
//!   flowing back, one per conversion in either direction;
//! - [`wake_queue`]: the per-event-loop queue that turns a burst of completions into one
//!   wake-up of the Python loop;
//! - [`loop_queue`]: that queue with the loop's `closed` flag, so that nothing is left
//!   queued for a loop that closed;
//! - [`spawn`]: the object-safe [`Spawner`] trait runtimes implement;
//! - `scope` (with the `std` feature): task-local values that travel with a future.
//!
//! The crate is `no_std` with `alloc`. Atomics, `Arc` and `UnsafeCell` come from a private
//! `sync` shim that swaps in loom's types under `--cfg loom`; the models live in the
//! workspace's `loom-tests/` crate.
#![no_std]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(any(feature = "std", loom, test))]
extern crate std;

pub mod cell;
#[cfg(feature = "std")]
pub mod fork;
pub mod loop_queue;
#[cfg(feature = "std")]
pub mod scope;
pub mod spawn;
mod sync;
pub mod wake_queue;

pub use cell::{Closed, Consumer, Producer, completion};
pub use loop_queue::LoopQueue;
pub use spawn::{BoxFuture, SpawnError, Spawner};
pub use wake_queue::{Signal, WakeQueue};
