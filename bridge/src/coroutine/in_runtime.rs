//! Polling inside a runtime's context: tokio's timers and I/O need it on a thread that is
//! not one of the runtime's, such as the loop thread.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::task::Poll;

use pyo3::prelude::*;
use pyo3_aio_core::Spawner;

/// Runs `work` inside `spawner`'s runtime context (tokio's timers and I/O need it on a
/// thread that is not one of the runtime's) and returns what it returned.
#[inline]
pub(crate) fn entered<R>(spawner: &(impl Spawner + ?Sized), work: impl FnOnce() -> R) -> R {
    let mut work = Some(work);
    let mut output = None;
    spawner.enter(&mut || {
        if let Some(work) = work.take() {
            output = Some(work());
        }
    });
    // A spawner that does not call the closure (it has no context to enter) still runs it.
    output.unwrap_or_else(|| work.take().map(|work| work()).expect("runs once"))
}

/// [`entered`] for a first poll: the runtime's `RuntimeError` instead of running `work` when
/// the runtime cannot run futures here (one step with entering, see
/// [`Spawner::enter_usable`]).
#[inline]
pub(crate) fn entered_if_usable<R>(
    spawner: &(impl Spawner + ?Sized),
    work: impl FnOnce() -> R,
) -> PyResult<R> {
    let mut work = Some(work);
    let mut output = None;
    spawner
        .enter_usable(&mut || {
            if let Some(work) = work.take() {
                output = Some(work());
            }
        })
        .map_err(crate::errors::refused)?;
    Ok(output.unwrap_or_else(|| work.take().map(|work| work()).expect("runs once")))
}

pin_project_lite::pin_project! {
    /// A future or stream polled inside its runtime's context: a `!Send` one lives on the
    /// loop thread, where tokio's timers and I/O would find no runtime otherwise.
    pub(crate) struct InRuntime<S, F> {
        spawner: S,
        #[pin]
        inner: F,
    }
}

impl<S, F> InRuntime<S, F> {
    pub(crate) fn new(spawner: S, inner: F) -> Self {
        Self { spawner, inner }
    }
}

/// A runtime that cannot run futures here (shut down, or inherited through `fork()`) as
/// the `RuntimeError` a conversion raises, rather than letting a poll outside any runtime
/// context fail with the runtime's own panic.
pub(crate) fn refuse_unusable(spawner: &impl Spawner) -> PyResult<()> {
    spawner.usable().map_err(crate::errors::refused)
}

impl<S: Spawner, F: Future<Output = PyResult<T>>, T> Future for InRuntime<S, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        refuse_unusable(this.spawner)?;
        entered(this.spawner, || this.inner.poll(cx))
    }
}

impl<S: Spawner, St: futures_core::Stream<Item = PyResult<T>>, T> futures_core::Stream
    for InRuntime<S, St>
{
    type Item = St::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<St::Item>> {
        let this = self.project();
        if let Err(error) = refuse_unusable(this.spawner) {
            return Poll::Ready(Some(Err(error)));
        }
        entered(this.spawner, || this.inner.poll_next(cx))
    }
}
