//! Building a [`Waker`] from an `Arc` of anything that knows how to wake.
//!
//! The bridge plugs "resume this Python task" and "push this item onto the loop's wake
//! queue" into Rust's waker machinery through this module, without `core` knowing Python.
//! The wake target is `alloc::task::Wake`, re-exported as [`WakeTarget`]; a waker built
//! from it costs no allocation beyond the `Arc`, and two wakers built from the same `Arc`
//! compare equal under [`Waker::will_wake`], which is what lets the completion cell skip
//! re-registering the same task.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use pyo3_aio_core::waker::{waker, WakeTarget};
//!
//! struct Counter(AtomicUsize);
//! impl WakeTarget for Counter {
//!     fn wake(self: Arc<Self>) {
//!         self.0.fetch_add(1, Ordering::Relaxed);
//!     }
//! }
//!
//! let counter = Arc::new(Counter(AtomicUsize::new(0)));
//! let first = waker(counter.clone());
//! let second = waker(counter.clone());
//! assert!(first.will_wake(&second));
//! first.wake();
//! second.wake_by_ref();
//! assert_eq!(counter.0.load(Ordering::Relaxed), 2);
//! ```

use alloc::sync::Arc;
use core::task::Waker;

pub use alloc::task::Wake as WakeTarget;

/// Builds a waker that calls `target`'s [`WakeTarget`] methods.
pub fn waker<W: WakeTarget + Send + Sync + 'static>(target: Arc<W>) -> Waker {
    Waker::from(target)
}
