//! The `pyo3_aio` module that every extension built with pyo3-aio shares in one process.
//!
//! Each extension module links its own copy of pyo3-aio, so its own Rust-side classes. Had
//! each its own `RustPanic`, `except one_module.RustPanic` would miss another module's
//! panics. So the first extension to need them puts a module named `pyo3_aio` into
//! `sys.modules` with the classes every copy then uses: `RustPanic` itself (each copy's
//! [`RustPanic`](crate::RustPanic) type is this very class), and `RustCoroutine` and
//! `RustStream`, abstract classes with each copy's concrete types registered, for
//! `isinstance` checks and type hints (stubs: `bridge/pyo3_aio.pyi`).
//!
//! ```python
//! import pyo3_aio                      # after any pyo3-aio extension was imported
//! try:
//!     await some_extension.rust_fn()
//! except pyo3_aio.RustPanic as panic:  # whichever extension panicked
//!     print(panic.args[0], panic.location)
//! ```

use std::ffi::CStr;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule, PyType};

/// The name in `sys.modules`.
const NAME: &str = "pyo3_aio";

/// What the shared module defines, the first time an extension makes it.
const DEFINITIONS: &CStr = c"
import collections.abc


class RustPanic(Exception):
    '''A Rust future or stream panicked; args[0] is the panic's message and `location`
    (when known) is where it happened, as \"file:line:column\".'''


class RustCoroutine(collections.abc.Coroutine):
    '''The coroutine a pyo3-aio extension returns for a Rust future (any extension's).'''

    __slots__ = ()


class RustStream(collections.abc.AsyncIterator):
    '''The async iterator a pyo3-aio extension returns for a Rust stream (any extension's).'''

    __slots__ = ()


for _class in (RustPanic, RustCoroutine, RustStream):
    _class.__module__ = 'pyo3_aio'
del _class
";

/// The shared module, made and put into `sys.modules` if no extension did yet.
pub(crate) fn module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    let modules = py.import("sys")?.getattr("modules")?;
    if let Ok(existing) = modules.get_item(NAME) {
        return Ok(existing.cast_into::<PyModule>()?);
    }
    let module = PyModule::new(py, NAME)?;
    let namespace: Bound<'_, PyDict> = module.dict();
    py.run(DEFINITIONS, Some(&namespace), None)?;
    modules.set_item(NAME, &module)?;
    Ok(module)
}

/// The shared `RustPanic` class (a fresh one, not shared, should the module be unusable).
pub(crate) fn panic_class(py: Python<'_>) -> Py<PyType> {
    let shared = module(py)
        .and_then(|module| module.getattr("RustPanic"))
        .and_then(|class| Ok(class.cast_into::<PyType>()?.unbind()));
    shared.unwrap_or_else(|_| {
        PyErr::new_type(
            py,
            c"pyo3_aio.RustPanic",
            Some(c"A Rust future or stream panicked; the message is the panic's message."),
            Some(&py.get_type::<pyo3::exceptions::PyException>()),
            None,
        )
        .expect("a new exception type")
    })
}

/// Registers this copy's coroutine and stream classes with the shared abstract ones, once.
pub(crate) fn register_types(py: Python<'_>) {
    static REGISTERED: PyOnceLock<()> = PyOnceLock::new();
    REGISTERED.get_or_init(py, || {
        let registered = module(py).and_then(|module| {
            module
                .getattr("RustCoroutine")?
                .call_method1("register", (py.get_type::<crate::RustCoroutine>(),))?;
            module
                .getattr("RustStream")?
                .call_method1("register", (py.get_type::<crate::RustStream>(),))?;
            Ok(())
        });
        if let Err(error) = registered {
            error.write_unraisable(py, None);
        }
    });
}
