//! An awaitable whose result is already known: what `__anext__` returns for a buffered item.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::slots::ready_am_send;

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
