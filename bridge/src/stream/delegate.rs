//! Delegating to an awaitable the way `await` does (`yield from`): what the stream pump
//! (`pump.rs`) does with each awaitable `__anext__()` returns, and with `aclose()`.

use pyo3::exceptions::{PyStopIteration, PyTypeError};
use pyo3::prelude::*;

/// What the Task resumes the pump with.
pub(crate) enum Input<'py> {
    Send(Bound<'py, PyAny>),
    Throw(PyErr),
}

/// What a delegated step produced.
pub(crate) enum Delegated {
    Yield(Py<PyAny>),
    Return(Py<PyAny>),
}

/// The iterator `await awaitable` steps: a coroutine itself, else what `__await__` returns.
pub(crate) fn awaitable_iter<'py>(awaitable: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = awaitable.py();
    if awaits_as_itself(awaitable) {
        // What `__anext__` of an async generator returns, on every item: no call needed.
        return Ok(awaitable.clone());
    }
    let is_coroutine = is_exactly(awaitable, &raw mut pyo3::ffi::PyCoro_Type);
    let is_generator = is_exactly(awaitable, &raw mut pyo3::ffi::PyGen_Type);
    if is_coroutine {
        return Ok(awaitable.clone());
    }
    if is_generator {
        // A generator-based coroutine (`types.coroutine`) is awaitable as it is.
        if crate::callables::is_awaitable(py)?
            .call1((awaitable,))?
            .is_truthy()?
        {
            return Ok(awaitable.clone());
        }
    } else if let Some(iterator) = call_await(awaitable)? {
        // An awaitable that is its own iterator (one `awaits_as_itself` cannot tell from its
        // type, e.g. under the limited API): no checks then.
        if iterator.is(awaitable) && is_iterator(&iterator) {
            return Ok(iterator);
        }
        let is_coroutine = is_exactly(&iterator, &raw mut pyo3::ffi::PyCoro_Type);
        let is_iterator = is_iterator(&iterator);
        if is_coroutine {
            return Err(PyTypeError::new_err("__await__() returned a coroutine"));
        }
        if !is_iterator {
            return Err(PyTypeError::new_err(format!(
                "__await__() returned non-iterator of type '{}'",
                iterator.get_type().name()?
            )));
        }
        return Ok(iterator);
    }
    Err(PyTypeError::new_err(format!(
        "'async for' received an invalid object from __anext__: {}",
        awaitable.get_type().name()?
    )))
}

/// Whether `awaitable.__await__()` is `awaitable` itself, seen from its type alone: an
/// iterator whose type's `__await__` slot is `PyObject_SelfIter` (as for the awaitable an
/// async generator's `__anext__` returns). Always `false` under the limited API.
fn awaits_as_itself(awaitable: &Bound<'_, PyAny>) -> bool {
    #[cfg(not(Py_LIMITED_API))]
    {
        // SAFETY: the object is valid, so its type and that type's `tp_as_async` table
        // (NULL or valid) can be read; the slot is only compared, not called.
        unsafe {
            let class = pyo3::ffi::Py_TYPE(awaitable.as_ptr());
            let methods = (*class).tp_as_async;
            // An exported function of libpython has one address; a miss here only takes
            // the general path.
            let self_iter: pyo3::ffi::unaryfunc = pyo3::ffi::PyObject_SelfIter;
            !methods.is_null()
                && (*methods)
                    .am_await
                    .is_some_and(|slot| std::ptr::fn_addr_eq(slot, self_iter))
                && (*class).tp_iternext.is_some()
        }
    }
    #[cfg(Py_LIMITED_API)]
    {
        let _ = awaitable;
        false
    }
}

/// Whether `object`'s type is `class` itself (pyo3-ffi's `PyCoro_CheckExact` and
/// `PyGen_CheckExact` also look at base classes, at a call per object that is neither).
fn is_exactly(object: &Bound<'_, PyAny>, class: *mut pyo3::ffi::PyTypeObject) -> bool {
    // SAFETY: the object is valid, so its type can be read; `class` is only compared.
    unsafe { pyo3::ffi::Py_TYPE(object.as_ptr()) == class }
}

/// Whether `object` is an iterator (`PyIter_Check`, read inline where the type is visible).
fn is_iterator(object: &Bound<'_, PyAny>) -> bool {
    #[cfg(not(Py_LIMITED_API))]
    {
        // SAFETY: the object is valid, so its type can be read.
        unsafe { (*pyo3::ffi::Py_TYPE(object.as_ptr())).tp_iternext.is_some() }
    }
    #[cfg(Py_LIMITED_API)]
    {
        // SAFETY: plain type check on a valid object pointer.
        unsafe { pyo3::ffi::PyIter_Check(object.as_ptr()) != 0 }
    }
}

/// What `awaitable.__await__()` returns, through the type's slot where there is one;
/// `None` when the type has no `__await__`.
fn call_await<'py>(awaitable: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = awaitable.py();
    #[cfg(not(Py_LIMITED_API))]
    {
        // SAFETY: the GIL is held; the object is valid, so its type and that type's
        // `tp_as_async` table (NULL or valid) can be read; `am_await` returns a new
        // reference or NULL with an exception set.
        unsafe {
            let methods = (*pyo3::ffi::Py_TYPE(awaitable.as_ptr())).tp_as_async;
            if methods.is_null() {
                return Ok(None);
            }
            match (*methods).am_await {
                Some(am_await) => {
                    Bound::from_owned_ptr_or_err(py, am_await(awaitable.as_ptr())).map(Some)
                }
                None => Ok(None),
            }
        }
    }
    #[cfg(Py_LIMITED_API)]
    match awaitable.get_type().getattr(pyo3::intern!(py, "__await__")) {
        Ok(method) if !method.is_none() => method.call1((awaitable,)).map(Some),
        _ => Ok(None),
    }
}

/// One step of `inner` as `await` delegates it: `send` (through `am_send` where there is
/// one) or `throw` (raised right here when `inner` has no `throw`).
pub(crate) fn delegate(inner: &Bound<'_, PyAny>, input: Input<'_>) -> PyResult<Delegated> {
    let py = inner.py();
    match input {
        Input::Send(value) => send(inner, &value),
        Input::Throw(error) => match inner.getattr(pyo3::intern!(py, "throw")) {
            Ok(throw) => returned(py, throw.call1((error.value(py),))),
            Err(_) => Err(error),
        },
    }
}

/// `inner.send(value)`, the value it returns told apart from what it yields.
fn send(inner: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<Delegated> {
    let py = inner.py();
    #[cfg(all(Py_3_10, not(Py_LIMITED_API)))]
    {
        let mut result: *mut pyo3::ffi::PyObject = std::ptr::null_mut();
        // SAFETY: the GIL is held; `inner` and `value` are valid borrowed references and
        // `result` a valid out-pointer. PyIter_Send stores a new reference for NEXT and
        // RETURN and NULL (with an exception set) for ERROR.
        let status = unsafe { pyo3::ffi::PyIter_Send(inner.as_ptr(), value.as_ptr(), &mut result) };
        match status {
            pyo3::ffi::PySendResult::PYGEN_NEXT => {
                // SAFETY: a new, non-NULL reference (see above).
                Ok(Delegated::Yield(
                    unsafe { Bound::from_owned_ptr(py, result) }.unbind(),
                ))
            }
            pyo3::ffi::PySendResult::PYGEN_RETURN => {
                // SAFETY: as above.
                Ok(Delegated::Return(
                    unsafe { Bound::from_owned_ptr(py, result) }.unbind(),
                ))
            }
            pyo3::ffi::PySendResult::PYGEN_ERROR => Err(PyErr::fetch(py)),
        }
    }
    #[cfg(not(all(Py_3_10, not(Py_LIMITED_API))))]
    {
        let stepped = if value.is_none() && !inner.hasattr(pyo3::intern!(py, "send"))? {
            inner.call_method0(pyo3::intern!(py, "__next__"))
        } else {
            inner.call_method1(pyo3::intern!(py, "send"), (value,))
        };
        returned(py, stepped)
    }
}

/// A Python-level step's outcome: a value yielded, or `StopIteration`'s value returned.
fn returned(py: Python<'_>, stepped: PyResult<Bound<'_, PyAny>>) -> PyResult<Delegated> {
    match stepped {
        Ok(value) => Ok(Delegated::Yield(value.unbind())),
        Err(error) if error.is_instance_of::<PyStopIteration>(py) => {
            let value = error.value(py).getattr(pyo3::intern!(py, "value"))?;
            Ok(Delegated::Return(value.unbind()))
        }
        Err(error) => Err(error),
    }
}
