//! The spawner trait: the one thing a runtime must provide to carry the bridge.
//!
//! It is object-safe and Python-free. The runtime crates (`pyo3-aio-tokio`,
//! `pyo3-aio-async-std`, `pyo3-aio-smol`) implement it; so can anyone with their own
//! executor, and `pyo3_aio::generic` then gives them the whole bridge.
//!
//! ```
//! use std::future::Future;
//! use std::pin::Pin;
//! use pyo3_aio_core::spawn::{BoxFuture, SpawnError, Spawner};
//!
//! /// Runs every future to completion on a fresh thread (a toy executor).
//! struct ThreadPerTask;
//!
//! impl Spawner for ThreadPerTask {
//!     fn spawn(&self, future: BoxFuture) -> Result<(), SpawnError> {
//!         std::thread::spawn(move || block_on(future));
//!         Ok(())
//!     }
//!     fn name(&self) -> &'static str {
//!         "thread-per-task"
//!     }
//! }
//! # fn block_on(f: BoxFuture) {
//! #     use std::task::{Context, Poll, Wake, Waker};
//! #     struct Unpark(std::thread::Thread);
//! #     impl Wake for Unpark { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
//! #     let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
//! #     let mut f = f;
//! #     while f.as_mut().poll(&mut Context::from_waker(&waker)).is_pending() { std::thread::park(); }
//! # }
//!
//! let (tx, rx) = std::sync::mpsc::channel();
//! ThreadPerTask.spawn(Box::pin(async move { tx.send(42).unwrap() })).unwrap();
//! assert_eq!(rx.recv().unwrap(), 42);
//! ```

use alloc::boxed::Box;
use core::fmt;
use core::future::Future;
use core::pin::Pin;

/// A heap-allocated future the spawner runs to completion.
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// An executor the bridge can hand pending Rust futures to.
pub trait Spawner: Send + Sync + 'static {
    /// Runs `future` to completion on the executor.
    ///
    /// The future reports its result through a completion cell, so no join handle is
    /// needed. If the executor drops it unfinished (at shutdown), the cell tells the waiting
    /// side that the runtime went away.
    ///
    /// # Errors
    ///
    /// [`SpawnError`] when the executor cannot accept work (it has shut down).
    fn spawn(&self, future: BoxFuture) -> Result<(), SpawnError>;

    /// Calls `f` inside the runtime's context, for polls done outside the runtime's own
    /// threads (tokio's timers and I/O need `Handle::enter`). The default just calls `f`.
    fn enter(&self, f: &mut dyn FnMut()) {
        f()
    }

    /// A short name for messages ("tokio", "async-std", "smol").
    fn name(&self) -> &'static str;

    /// Whether the executor can run futures in this process now. The bridge asks before
    /// it first polls a converted future, so that an executor that cannot work (shut
    /// down, or inherited through `fork()` without its threads) is reported with its own
    /// reason instead of the future hanging or failing obscurely. The default says yes.
    ///
    /// # Errors
    ///
    /// [`SpawnError`] saying why the executor cannot run futures here.
    fn usable(&self) -> Result<(), SpawnError> {
        Ok(())
    }

    /// [`usable`](Self::usable) and [`enter`](Self::enter) in one step: calls `f` inside
    /// the runtime's context when the executor can run futures here, and otherwise says why
    /// without calling it. The bridge makes the first poll of each conversion through it.
    /// The default asks `usable` and then calls `enter`; an executor whose two answers share
    /// work (tokio finds its runtime for both) can do that work once.
    ///
    /// # Errors
    ///
    /// What [`usable`](Self::usable) returns; `f` was not called.
    fn enter_usable(&self, f: &mut dyn FnMut()) -> Result<(), SpawnError> {
        self.usable()?;
        self.enter(f);
        Ok(())
    }
}

/// The executor refused a future.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnError {
    runtime: &'static str,
    reason: &'static str,
}

impl SpawnError {
    /// An error saying that `runtime` refused the future, and why.
    pub fn new(runtime: &'static str, reason: &'static str) -> Self {
        Self { runtime, reason }
    }

    /// The runtime's name.
    pub fn runtime(&self) -> &'static str {
        self.runtime
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the {} runtime could not run the future: {}",
            self.runtime, self.reason
        )
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SpawnError {}

impl<S: Spawner + ?Sized> Spawner for alloc::sync::Arc<S> {
    fn spawn(&self, future: BoxFuture) -> Result<(), SpawnError> {
        (**self).spawn(future)
    }
    fn enter(&self, f: &mut dyn FnMut()) {
        (**self).enter(f)
    }
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn usable(&self) -> Result<(), SpawnError> {
        (**self).usable()
    }
    fn enter_usable(&self, f: &mut dyn FnMut()) -> Result<(), SpawnError> {
        (**self).enter_usable(f)
    }
}

impl<S: Spawner + ?Sized> Spawner for &'static S {
    fn spawn(&self, future: BoxFuture) -> Result<(), SpawnError> {
        (**self).spawn(future)
    }
    fn enter(&self, f: &mut dyn FnMut()) {
        (**self).enter(f)
    }
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn usable(&self) -> Result<(), SpawnError> {
        (**self).usable()
    }
    fn enter_usable(&self, f: &mut dyn FnMut()) -> Result<(), SpawnError> {
        (**self).enter_usable(f)
    }
}

// The bridge stores spawners as `dyn Spawner`: keep the trait object-safe.
const _: Option<&dyn Spawner> = None;
