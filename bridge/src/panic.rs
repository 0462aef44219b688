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
    let _inside = Polling::enter();
    match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
        Ok(poll) => poll,
        Err(payload) => Poll::Ready(Err(panic_to_pyerr(payload))),
    }
}

/// Polls `stream` for its next item, catching a panic (its payload comes back as `Err`).
pub(crate) fn poll_next_catching<S: futures_core::Stream + ?Sized>(
    stream: Pin<&mut S>,
    cx: &mut Context<'_>,
) -> Result<Poll<Option<S::Item>>, Box<dyn Any + Send>> {
    let _inside = Polling::enter();
    catch_unwind(AssertUnwindSafe(|| stream.poll_next(cx)))
}

thread_local! {
    /// How deep this thread is inside pyo3-aio's own polls of converted futures.
    static POLLING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Marks the thread as inside one of pyo3-aio's own polls while it lives.
pub(crate) struct Polling;

impl Polling {
    /// Only debug builds keep count (only they check); release builds pay nothing.
    pub(crate) fn enter() -> Self {
        if cfg!(debug_assertions) {
            POLLING.with(|depth| depth.set(depth.get() + 1));
        }
        Polling
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        if cfg!(debug_assertions) {
            POLLING.with(|depth| depth.set(depth.get() - 1));
        }
    }
}

/// In debug builds: the error for a Python-backed future polled, and left pending, by a
/// thread that holds the GIL outside pyo3-aio's own polling (a `block_on` inside
/// `Python::attach` or a `#[pyfunction]`). If that thread now blocks until the future is
/// done, it deadlocks: the event loop needs the GIL to run the awaitable. `None` when the
/// poll is fine (release builds never check).
pub(crate) fn blocking_with_the_gil(what: &str) -> Option<PyErr> {
    if !cfg!(debug_assertions) || POLLING.with(std::cell::Cell::get) > 0 {
        return None;
    }
    if !crate::event_loop::gil_held() {
        return None;
    }
    Some(pyo3::exceptions::PyRuntimeError::new_err(format!(
        "{what} was polled while this thread holds the GIL, outside a future converted by \
         pyo3-aio: blocking on it here (block_on inside Python::attach or a #[pyfunction]) \
         would deadlock, because the event loop needs the GIL to run it. Release the GIL \
         first (py.detach(|| ...)) or await it inside future_into_py. (Checked in debug \
         builds only.)"
    )))
}
