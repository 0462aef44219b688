//! Streams both ways: a Rust `Stream` as a Python async iterator, and a Python async
//! iterable as a Rust `Stream`.
//!
//! Both directions use one bounded buffer shared by the two sides, so the producer is never
//! more than `capacity` items ahead, and both wake the other side at most once per batch:
//! the waiting side registers one waker, the producing side takes it when it adds the first
//! item and adds the rest without waking anyone.

pub(crate) mod channel;
pub(crate) mod delegate;
pub(crate) mod from_python;
pub(crate) mod local;
pub(crate) mod pump;
pub(crate) mod pump_slot;
pub(crate) mod pump_step;
pub(crate) mod ready;
pub(crate) mod send;
pub(crate) mod to_python;

#[cfg(test)]
mod counted;

pub use from_python::{PyStream, into_stream, into_stream_with};
pub use to_python::RustStream;
pub(crate) use to_python::{local_stream_into_py, stream_into_py};

use std::task::{Poll, Waker};

use pyo3::prelude::*;

/// Converts the item at the front, if any, on the loop thread.
trait ItemSource: Send + Sync {
    /// `Some(Ok(item))`, `Some(Err(error))` (error items and the end, as
    /// `StopAsyncIteration`), or `None` when nothing is there yet (registers `waker`).
    fn next_item(&self, py: Python<'_>, waker: Option<&Waker>) -> Option<PyResult<Py<PyAny>>>;
    /// Ends the stream: drops the Rust stream here unless a runtime thread is polling it,
    /// which then drops it when its poll returns.
    fn close(&self);
    /// After [`close`](ItemSource::close): `Ready` once the Rust stream is dropped, else
    /// `Pending` (registering `waker`, woken when it is).
    fn poll_dropped(&self, waker: Option<&Waker>) -> Poll<()> {
        let _ = waker;
        Poll::Ready(())
    }
}
