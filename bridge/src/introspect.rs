//! What `inspect` and asyncio's debugging helpers read from a coroutine: a stand-in frame
//! for the Rust future, so `inspect.getcoroutinestate`, `Task.get_stack()` and
//! `Task.print_stack()` work as they do for an `async def` coroutine.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{IntoPyDict, PyDict};

/// The frame a converted coroutine shows while it has not finished (`cr_frame`): it stands
/// for the Rust future, which has no Python frame. It is the only frame of the coroutine's
/// stack (`f_back` is `None`); its code is named after the future and lives in the file
/// `<rust>`, line 0. `f_lasti` is -1 until the coroutine first runs, as CPython's is (3.9
/// and 3.10 tell a created coroutine by it).
#[pyclass(frozen, name = "RustFrame", module = "pyo3_aio")]
pub(crate) struct RustFrame {
    code: Py<PyAny>,
    started: bool,
}

impl RustFrame {
    pub(crate) fn new(py: Python<'_>, name: &'static str, started: bool) -> PyResult<Self> {
        Ok(Self {
            code: code_named(py, name)?,
            started,
        })
    }
}

#[pymethods]
impl RustFrame {
    #[getter]
    fn f_code(&self, py: Python<'_>) -> Py<PyAny> {
        self.code.clone_ref(py)
    }

    #[getter]
    fn f_back(&self) -> Option<Py<PyAny>> {
        None
    }

    #[getter]
    fn f_lineno(&self) -> u32 {
        0
    }

    #[getter]
    fn f_lasti(&self) -> i32 {
        if self.started { 0 } else { -1 }
    }

    #[getter]
    fn f_globals<'py>(&self, py: Python<'py>) -> Bound<'py, PyDict> {
        PyDict::new(py)
    }

    #[getter]
    fn f_locals<'py>(&self, py: Python<'py>) -> Bound<'py, PyDict> {
        PyDict::new(py)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let name = self.code.bind(py).getattr("co_name")?;
        Ok(format!("<pyo3_aio.RustFrame of Rust future {name}>"))
    }
}

/// An empty code object named `name`, in the file `<rust>` (one per name, made on first
/// use: only introspection asks for it).
fn code_named(py: Python<'_>, name: &'static str) -> PyResult<Py<PyAny>> {
    static CODES: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
    let codes = CODES.get_or_init(py, || PyDict::new(py).unbind()).bind(py);
    if let Some(code) = codes.get_item(name)? {
        return Ok(code.unbind());
    }
    let builtins = py.import("builtins")?;
    let code = builtins
        .call_method1("compile", ("", "<rust>", "exec"))?
        .call_method("replace", (), Some(&[("co_name", name)].into_py_dict(py)?))?;
    codes.set_item(name, &code)?;
    Ok(code.unbind())
}
