//! Futures and streams written as closures: over `poll`, or run after a timer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use pyo3::prelude::*;

/// A stream from a closure (like `futures::stream::poll_fn`).
pub(crate) struct PollFn<F>(pub(crate) F);

impl<F, T> Stream for PollFn<F>
where
    F: FnMut(&mut Context<'_>) -> Poll<Option<T>> + Unpin,
{
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        (self.0)(cx)
    }
}

/// The integers `0..n`, every one ready at once.
pub(crate) fn counting(n: u64) -> impl Stream<Item = PyResult<u64>> + Send + 'static {
    let mut next = 0;
    PollFn(move |_: &mut Context<'_>| {
        if next == n {
            return Poll::Ready(None);
        }
        next += 1;
        Poll::Ready(Some(Ok::<_, PyErr>(next - 1)))
    })
}

/// Returns Pending once (waking itself), then Ready: a deterministic suspension point.
pub(crate) async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Polls `future` and then `timer` (None: no timer) until one is ready: `Some(output)`
/// when the future wins, None when the timer does. The future is dropped before this
/// returns, whichever won.
pub(crate) async fn before_timer<F: Future>(
    future: F,
    mut timer: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
) -> Option<F::Output> {
    let mut future = Box::pin(future);
    let outcome = std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        let timed_out = timer
            .as_mut()
            .is_some_and(|timer| timer.as_mut().poll(cx).is_ready());
        if timed_out {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    })
    .await;
    drop(future);
    outcome
}

/// Awaits `nap`, then returns what `then` returns: the shape of every "after `seconds`,
/// do this" test future. `then` (and what it holds) lives in the future until then.
pub(crate) async fn after<T>(
    nap: Pin<Box<dyn Future<Output = ()> + Send>>,
    then: impl FnOnce() -> PyResult<T>,
) -> PyResult<T> {
    nap.await;
    then()
}
