//! Rust panics become `pyo3_aio.RustPanic` exceptions, never aborts.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use pyo3::PyErr;
use pyo3::exceptions::PyException;

pyo3::create_exception!(
    pyo3_aio,
    RustPanic,
    PyException,
    "A Rust future or stream panicked; the message is the panic's message."
);

/// Turns a panic payload into a `RustPanic` error carrying its message.
pub(crate) fn panic_to_pyerr(payload: Box<dyn Any + Send>) -> PyErr {
    let message = if let Some(text) = payload.downcast_ref::<&'static str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "Rust panic with a non-string payload".to_owned()
    };
    RustPanic::new_err(message)
}

/// Polls `future`, turning a panic into `Ready(Err(RustPanic))`.
pub(crate) fn poll_catching<F, T>(
    future: Pin<&mut F>,
    cx: &mut Context<'_>,
) -> Poll<Result<T, PyErr>>
where
    F: Future<Output = Result<T, PyErr>> + ?Sized,
{
    match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
        Ok(poll) => poll,
        Err(payload) => Poll::Ready(Err(panic_to_pyerr(payload))),
    }
}
