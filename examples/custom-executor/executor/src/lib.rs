//! minipool: a small thread-pool executor, written as a runtime author would write one to
//! carry pyo3-aio.
//!
//! It depends on nothing but `std` and `pyo3-aio-core` (no PyO3, no async runtime crate):
//!
//! - [`Executor`]: worker threads sharing one run queue (a `Mutex` + `Condvar`); tasks are
//!   `Arc`s woken through [`std::task::Wake`]. It implements
//!   [`pyo3_aio_core::spawn::Spawner`], so `pyo3_aio::generic` gives it the whole bridge.
//! - [`sleep`] and [`timeout`], served by a timer thread with a heap of deadlines.
//! - [`yield_now`], to give the worker back once.
//! - [`Executor::shutdown`]: stops the workers and drops every task still pending, so the
//!   bridge's waiting coroutines end with an error naming the executor instead of hanging.
//!
//! ```
//! use std::sync::mpsc;
//! use std::time::Duration;
//!
//! let executor = minipool::Builder::new().workers(2).build().unwrap();
//! let (tx, rx) = mpsc::channel();
//! executor
//!     .spawn(async move {
//!         minipool::sleep(Duration::from_millis(5)).await;
//!         tx.send(42).unwrap();
//!     })
//!     .unwrap();
//! assert_eq!(rx.recv().unwrap(), 42);
//! executor.shutdown(Duration::from_secs(1));
//! ```

mod executor;
mod task;
mod timer;
mod yield_now;

pub use executor::{Builder, Executor, ShutdownReport};
pub use timer::{Elapsed, Sleep, Timeout, sleep, timeout};
pub use yield_now::{YieldNow, yield_now};
