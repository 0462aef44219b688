//! An awaitable whose result is already known: what `__anext__` returns for a buffered item.

use pyo3::prelude::*;
#[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
use pyo3::sync::PyOnceLock;

#[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
use crate::slots::{Step, send_result};

pub(crate) fn ready<'py>(
    py: Python<'py>,
    item: PyResult<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    #[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
    {
        static INSTALLED: PyOnceLock<()> = PyOnceLock::new();
        crate::slots::install_send_slot::<Ready>(py, &INSTALLED, ready_am_send);
    }
    Ok(Bound::new(py, Ready(Some(item)))?.into_any())
}

/// An awaitable whose result is already known.
#[pyclass(name = "_Ready", module = "pyo3_aio")]
pub(crate) struct Ready(pub(crate) Option<PyResult<Py<PyAny>>>);

#[pymethods]
impl Ready {
    fn __await__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&mut self) -> PyResult<Py<PyAny>> {
        match self.0.take() {
            Some(Ok(value)) => Err(pyo3::exceptions::PyStopIteration::new_err((value,))),
            Some(Err(error)) => Err(error),
            None => Err(crate::errors::already_awaited()),
        }
    }

    fn send(&mut self, _value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.__next__()
    }

    #[pyo3(signature = (typ, val = None, _tb = None))]
    fn throw(
        &mut self,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.0 = None;
        Err(crate::errors::thrown(typ, val, None)?)
    }

    fn close(&mut self) {
        self.0 = None;
    }
}

/// `am_send` for [`Ready`]: hands the value back without raising `StopIteration`.
#[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
unsafe extern "C" fn ready_am_send(
    slf: *mut pyo3::ffi::PyObject,
    _arg: *mut pyo3::ffi::PyObject,
    result: *mut *mut pyo3::ffi::PyObject,
) -> pyo3::ffi::PySendResult {
    // SAFETY: CPython calls type slots with the thread attached to the interpreter.
    let py = unsafe { Python::assume_attached() };
    // SAFETY: CPython passes a valid borrowed reference to the object whose slot this is.
    let this = unsafe { Bound::from_borrowed_ptr(py, slf) };
    let taken = match this.cast::<Ready>() {
        Ok(ready) => match ready.try_borrow_mut() {
            Ok(mut ready) => ready
                .0
                .take()
                .unwrap_or_else(|| Err(crate::errors::already_awaited())),
            Err(error) => Err(error.into()),
        },
        Err(error) => Err(error.into()),
    };
    // SAFETY: `result` is the out-pointer CPython passed to this slot.
    unsafe { send_result(py, taken.map(Step::Return), result) }
}
