//! Task-local values that travel with a future on any executor.
//!
//! [`scope`] wraps a future so that, for the duration of each of its polls, a thread-local
//! slot holds the given value; after the poll the slot gets back whatever it held before
//! (so scopes nest, and a worker thread that polls many tasks sees each one's own value).
//! This is how pyo3-aio's `TaskLocals` (event loop and contextvars context) follow a Rust
//! future onto tokio, async-std, smol or a user's executor without per-runtime task-local
//! support.
//!
//! ```
//! use std::cell::Cell;
//! use pyo3_aio_core::scope::{current, scope};
//!
//! thread_local! {
//!     static REQUEST_ID: Cell<Option<u64>> = const { Cell::new(None) };
//! }
//!
//! let future = scope(&REQUEST_ID, 7, async { current(&REQUEST_ID) });
//! assert_eq!(pollster_block_on(future), Some(7));
//! assert_eq!(current(&REQUEST_ID), None);
//! # fn pollster_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     let mut f = std::pin::pin!(f);
//! #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
//! #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
//! # }
//! ```

use core::cell::Cell;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::thread::LocalKey;

/// The thread-local slot a scope fills: `thread_local!(static X: Cell<Option<T>> = ...)`.
pub type Slot<T> = LocalKey<Cell<Option<T>>>;

pin_project_lite::pin_project! {
    /// A future that sets a thread-local slot while its inner future polls.
    ///
    /// Created by [`scope`].
    #[derive(Debug)]
    pub struct Scope<T: 'static, F> {
        slot: &'static Slot<T>,
        value: Option<T>,
        #[pin]
        future: F,
    }
}

/// Wraps `future` so that [`current`]`(slot)` returns `value` inside it.
pub fn scope<T, F: Future>(slot: &'static Slot<T>, value: T, future: F) -> Scope<T, F> {
    Scope {
        slot,
        value: Some(value),
        future,
    }
}

impl<T, F> Scope<T, F> {
    /// The value the scope sets, as its last poll left it (a poll may replace the slot's
    /// content, and the scope keeps what the slot held when the poll ended). `None` only
    /// while the inner future polls.
    pub fn value_mut(self: Pin<&mut Self>) -> Option<&mut T> {
        self.project().value.as_mut()
    }
}

/// Runs `f` with `slot` holding `value`, then restores the slot's previous content.
pub fn sync_scope<T, R>(slot: &'static Slot<T>, value: T, f: impl FnOnce() -> R) -> R {
    let mut value = Some(value);
    let _restore = Swapped::enter(slot, &mut value);
    f()
}

/// A clone of the value the innermost enclosing scope set, if any.
pub fn current<T: Clone>(slot: &'static Slot<T>) -> Option<T> {
    slot.with(|cell| {
        let value = cell.take();
        let copy = value.clone();
        cell.set(value);
        copy
    })
}

impl<T, F: Future> Future for Scope<T, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _restore = Swapped::enter(this.slot, this.value);
        this.future.poll(cx)
    }
}

/// Holds a scope's value in the slot and swaps it back out on drop, even when the inner
/// poll panics, so a worker thread never keeps another task's value.
struct Swapped<'a, T: 'static> {
    slot: &'static Slot<T>,
    value: &'a mut Option<T>,
}

impl<'a, T> Swapped<'a, T> {
    fn enter(slot: &'static Slot<T>, value: &'a mut Option<T>) -> Self {
        slot.with(|cell| {
            let outer = cell.replace(value.take());
            *value = outer;
        });
        Self { slot, value }
    }
}

impl<T> Drop for Swapped<'_, T> {
    fn drop(&mut self) {
        // The slot may have been destroyed already when a thread exits mid-poll; then there
        // is nothing to restore.
        let _ = self.slot.try_with(|cell| {
            let ours = cell.replace(self.value.take());
            *self.value = ours;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;
    use std::{assert_eq, panic};

    std::thread_local! {
        static NAME: Cell<Option<&'static str>> = const { Cell::new(None) };
    }

    fn poll_once<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn nested_scopes_restore_outer_value() {
        let inner = scope(&NAME, "inner", async { current(&NAME) });
        let outer = scope(&NAME, "outer", async move {
            let before = current(&NAME);
            let seen = inner.await;
            (before, seen, current(&NAME))
        });
        let mut outer = std::pin::pin!(outer);
        assert_eq!(
            poll_once(outer.as_mut()),
            Poll::Ready((Some("outer"), Some("inner"), Some("outer")))
        );
        assert_eq!(current(&NAME), None);
    }

    #[test]
    fn value_survives_pending_polls() {
        let mut yielded = false;
        let future = scope(
            &NAME,
            "task",
            std::future::poll_fn(move |cx| {
                if yielded {
                    Poll::Ready(current(&NAME))
                } else {
                    yielded = true;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            }),
        );
        let mut future = std::pin::pin!(future);
        assert!(poll_once(future.as_mut()).is_pending());
        assert_eq!(current(&NAME), None);
        assert_eq!(poll_once(future.as_mut()), Poll::Ready(Some("task")));
    }

    #[test]
    fn a_value_replaced_during_a_poll_is_kept_for_the_next() {
        let future = scope(
            &NAME,
            "first",
            std::future::poll_fn(|cx| {
                let seen = current(&NAME);
                if seen == Some("first") {
                    NAME.with(|cell| cell.set(Some("second")));
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Ready(seen)
            }),
        );
        let mut future = std::pin::pin!(future);
        assert!(poll_once(future.as_mut()).is_pending());
        assert_eq!(current(&NAME), None);
        assert_eq!(future.as_mut().value_mut().copied(), Some("second"));
        assert_eq!(poll_once(future.as_mut()), Poll::Ready(Some("second")));
    }

    #[test]
    fn panic_inside_poll_restores_slot() {
        let result = std::panic::catch_unwind(|| {
            sync_scope(&NAME, "doomed", || panic!("boom"));
        });
        assert!(result.is_err());
        assert_eq!(current(&NAME), None);
    }
}
