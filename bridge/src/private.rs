//! Support code for the `#[main]` / `#[test]` expansions. Not public API.

pub use pyo3::{PyErr, PyResult, Python};
#[cfg(feature = "tokio-runtime")]
pub use pyo3_aio_tokio::tokio;

use pyo3::exceptions::{PyKeyboardInterrupt, PySystemExit};
use pyo3::prelude::*;

/// Configures the global tokio runtime from the attribute's options (`pyo3_aio_tokio`
/// gives a current-thread runtime a thread of its own to drive it, since Python owns the
/// main thread).
#[cfg(feature = "tokio-runtime")]
pub fn init_tokio(builder: tokio::runtime::Builder) {
    if let Err(error) = pyo3_aio_tokio::init(builder) {
        eprintln!("pyo3-aio: {error}");
        std::process::exit(1);
    }
}

/// asyncio's default loop.
pub fn default_loop(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    py.import("asyncio")?.call_method0("new_event_loop")
}

/// Passes a Rust loop factory through unchanged; the higher-ranked bound lets closures
/// (`|py| ...`, `|py: Python<'_>| ...`) infer their signature from it.
pub fn loop_factory<F>(factory: F) -> F
where
    F: for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyAny>>,
{
    factory
}

/// Calls the factory named `module.attribute`, with errors that name it.
pub fn loop_from_path<'py>(py: Python<'py>, dotted: &str) -> PyResult<Bound<'py, PyAny>> {
    let (module, attribute) = dotted.rsplit_once('.').unwrap_or(("", dotted));
    let factory = py
        .import(module)
        .and_then(|module| module.getattr(attribute))
        .map_err(|error| {
            let message = format!("cannot load the event loop factory '{dotted}': {error}");
            let wrapped = pyo3::exceptions::PyImportError::new_err(message);
            wrapped.set_cause(py, Some(error));
            wrapped
        })?;
    let event_loop = factory.call0()?;
    if !crate::asyncio::is_event_loop(&event_loop)? {
        return Err(crate::errors::not_an_event_loop(
            &format!("the event loop factory '{dotted}' returned"),
            &event_loop,
        )?);
    }
    Ok(event_loop)
}

/// Runs the program's body with Python initialized, and turns its outcome into an exit
/// status: 0; the traceback and 1 for an exception; 130 for `KeyboardInterrupt`; the code
/// of `SystemExit`.
pub fn main(body: impl FnOnce(Python<'_>) -> PyResult<()>) {
    Python::initialize();
    let status = Python::attach(|py| match body(py) {
        Ok(()) => 0,
        Err(error) => exit_status(py, error),
    });
    // Exit without unwinding runtime threads that may still hold Python objects.
    std::process::exit(status)
}

fn exit_status(py: Python<'_>, error: PyErr) -> i32 {
    if error.is_instance_of::<PySystemExit>(py) {
        let code = error.value(py).getattr("code").ok();
        return match code {
            Some(code) if code.is_none() => 0,
            Some(code) => code.extract::<i32>().unwrap_or_else(|_| {
                eprintln!("{code}");
                1
            }),
            None => 1,
        };
    }
    let interrupted = error.is_instance_of::<PyKeyboardInterrupt>(py);
    error.print(py);
    if interrupted { 130 } else { 1 }
}
