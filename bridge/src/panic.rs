//! Rust panics become `pyo3_aio.RustPanic` exceptions, never aborts.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use pyo3::PyErr;

/// A Rust future or stream panicked; the message is the panic's message, and `location`
/// (when known) says where, as `"file:line:column"`.
///
/// In Python it is `pyo3_aio.RustPanic`, one class for every extension built with pyo3-aio
/// in the process (see the `shared` module), so `except` catches the panics of them all.
#[repr(transparent)]
pub struct RustPanic(pyo3::PyAny);

pyo3::impl_exception_boilerplate!(RustPanic);
pyo3::pyobject_native_type_named!(RustPanic);

// SAFETY: `type_object_raw` returns a type object that lives for the rest of the process
// (held by the static below) and that is a subclass of `Exception`, whose instances have
// the layout `PyAny` describes, as `create_exception!` arranges for its own types.
unsafe impl pyo3::type_object::PyTypeInfo for RustPanic {
    fn type_object_raw(py: pyo3::Python<'_>) -> *mut pyo3::ffi::PyTypeObject {
        static TYPE_OBJECT: pyo3::sync::PyOnceLock<pyo3::Py<pyo3::types::PyType>> =
            pyo3::sync::PyOnceLock::new();
        TYPE_OBJECT
            .get_or_init(py, || crate::shared::panic_class(py))
            .as_ptr()
            .cast()
    }
}

/// Turns a panic payload into a `RustPanic` error carrying its message (its args) and,
/// when the panic happened inside one of pyo3-aio's polls, where (`location`,
/// `"file:line:column"`).
pub(crate) fn panic_to_pyerr(payload: Box<dyn Any + Send>) -> PyErr {
    let message = if let Some(text) = payload.downcast_ref::<&'static str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "Rust panic with a non-string payload".to_owned()
    };
    let error = RustPanic::new_err(message);
    if let Some(location) = LOCATION.with(std::cell::RefCell::take) {
        crate::forced_exit::attach(|py| {
            let _ =
                pyo3::types::PyAnyMethods::setattr(error.value(py).as_any(), "location", location);
        });
    }
    error
}

thread_local! {
    /// Where the last panic caught by pyo3-aio on this thread happened.
    static LOCATION: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// A panic that pyo3-aio catches becomes a `RustPanic` exception, so Rust's panic hook
/// should not also print it (and a whole backtrace under `RUST_BACKTRACE`) to stderr: the
/// exception carries the message and location, and printing it is the user's choice. This
/// hook, put in front of the one in place on the first catching poll, records the location
/// of a panic inside pyo3-aio's polls and passes every other panic to that hook.
fn install_quiet_hook() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if POLLING.with(std::cell::Cell::get) == 0 {
                return previous(info);
            }
            let location = info
                .location()
                .map(|at| format!("{}:{}:{}", at.file(), at.line(), at.column()));
            LOCATION.with(|last| *last.borrow_mut() = location);
        }));
    });
}

/// Polls `future`, turning a panic into `Ready(Err(RustPanic))`.
pub(crate) fn poll_catching<F, T>(
    future: Pin<&mut F>,
    cx: &mut Context<'_>,
) -> Poll<Result<T, PyErr>>
where
    F: Future<Output = Result<T, PyErr>> + ?Sized,
{
    install_quiet_hook();
    // One thread-local access for both the count's increment and its decrement (what
    // `Polling` does in two); the decrement runs after a panic too, as it is caught here.
    let polled = POLLING.with(|depth| {
        depth.set(depth.get() + 1);
        let polled = catch_unwind(AssertUnwindSafe(|| future.poll(cx)));
        depth.set(depth.get() - 1);
        polled
    });
    match polled {
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
    /// How deep this thread is inside pyo3-aio's own polls of converted futures (which
    /// catch panics).
    static POLLING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Marks the thread as inside one of pyo3-aio's own polls while it lives.
pub(crate) struct Polling;

impl Polling {
    /// Counted in every build: the panic hook reads it (and debug builds' GIL check).
    pub(crate) fn enter() -> Self {
        install_quiet_hook();
        POLLING.with(|depth| depth.set(depth.get() + 1));
        Polling
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        POLLING.with(|depth| depth.set(depth.get() - 1));
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
