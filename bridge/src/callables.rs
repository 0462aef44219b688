//! The Python objects the bridge calls often, looked up once per process and cached (each
//! lookup is an import and attribute reads; the hot paths call them per await).

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyString, PyTuple};

/// Defines one accessor per cached object: `name = "module", ["attribute", ...]`.
macro_rules! cached {
    ($($(#[$doc:meta])* $name:ident = $module:literal, [$($attribute:literal),+];)*) => {$(
        $(#[$doc])*
        #[inline]
        pub(crate) fn $name(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
            static CACHED: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
            CACHED
                .get_or_try_init(py, || {
                    let object = py.import($module)?.into_any();
                    $(let object = object.getattr($attribute)?;)+
                    Ok::<_, PyErr>(object.unbind())
                })
                .map(|object| object.bind(py))
        }
    )*};
}

cached! {
    /// `asyncio._get_running_loop` (C-level in CPython).
    get_running_loop = "asyncio", ["_get_running_loop"];
    /// `asyncio.BaseEventLoop.is_running`, to tell asyncio's own loops from others.
    stock_is_running = "asyncio", ["BaseEventLoop", "is_running"];
    /// `asyncio.BaseEventLoop.create_task`, to tell loops that build plain Tasks.
    stock_create_task = "asyncio", ["BaseEventLoop", "create_task"];
    /// `asyncio.Task`.
    task = "asyncio", ["Task"];
    /// `asyncio.Task.result`, called with the task (see `asyncio::task_result`).
    task_result = "asyncio", ["Task", "result"];
    /// `asyncio.Task.done`, called with the task.
    task_done = "asyncio", ["Task", "done"];
    /// `asyncio.Task.add_done_callback`, called with the task.
    task_add_done_callback = "asyncio", ["Task", "add_done_callback"];
    /// uvloop's `Loop.get_task_factory`, called with the loop: it reads the factory field
    /// that uvloop's `create_task` reads, whatever a subclass overrides.
    uvloop_get_task_factory = "uvloop.loop", ["Loop", "get_task_factory"];
    /// `asyncio.AbstractEventLoop`.
    abstract_event_loop = "asyncio", ["AbstractEventLoop"];
    /// `asyncio.ensure_future`.
    ensure_future = "asyncio", ["ensure_future"];
    /// `asyncio.CancelledError`.
    cancelled_error = "asyncio", ["CancelledError"];
    /// `asyncio.InvalidStateError`.
    invalid_state_error = "asyncio", ["InvalidStateError"];
    /// `inspect.isawaitable`.
    is_awaitable = "inspect", ["isawaitable"];
    /// `weakref.WeakKeyDictionary`.
    weak_key_dictionary = "weakref", ["WeakKeyDictionary"];
}

// trio's, looked up only once a trio run was found (trio is already imported then).
cached! {
    /// `trio.lowlevel.current_trio_token`.
    trio_current_token = "trio.lowlevel", ["current_trio_token"];
    /// `trio.lowlevel.TrioToken`.
    trio_token = "trio.lowlevel", ["TrioToken"];
    /// `trio.lowlevel.current_task`.
    trio_current_task = "trio.lowlevel", ["current_task"];
    /// `trio.lowlevel.reschedule`.
    trio_reschedule = "trio.lowlevel", ["reschedule"];
    /// `trio.lowlevel.spawn_system_task`.
    trio_spawn_system_task = "trio.lowlevel", ["spawn_system_task"];
    /// `trio.lowlevel.RunVar`.
    trio_run_var = "trio.lowlevel", ["RunVar"];
    /// `trio.lowlevel.Abort.SUCCEEDED`.
    trio_abort_succeeded = "trio.lowlevel", ["Abort", "SUCCEEDED"];
    /// `trio.lowlevel.Abort.FAILED`.
    trio_abort_failed = "trio.lowlevel", ["Abort", "FAILED"];
    /// `outcome.Value`.
    outcome_value = "outcome", ["Value"];
    /// `outcome.Error`.
    outcome_error = "outcome", ["Error"];
    /// `outcome.capture`.
    outcome_capture = "outcome", ["capture"];
}

/// Keyword names for [`call_with_keywords`] and [`call_method_with_keywords`], made once
/// into a tuple of interned strings, so a call makes no string and no dict, and the callee
/// matches each name by identity.
pub(crate) struct Keywords {
    names: &'static [&'static str],
    tuple: PyOnceLock<Py<PyTuple>>,
}

impl Keywords {
    pub(crate) const fn new(names: &'static [&'static str]) -> Self {
        Self {
            names,
            tuple: PyOnceLock::new(),
        }
    }

    fn tuple<'py>(&self, py: Python<'py>) -> PyResult<&Bound<'py, PyTuple>> {
        self.tuple
            .get_or_try_init(py, || {
                let names = self.names.iter().map(|name| PyString::intern(py, name));
                Ok::<_, PyErr>(PyTuple::new(py, names)?.unbind())
            })
            .map(|tuple| tuple.bind(py))
    }
}

/// The most keyword arguments these calls pass.
const MOST_KEYWORDS: usize = 3;

/// `callable(first, name=value, ...)`, one value per name of `keywords`.
pub(crate) fn call_with_keywords<'py>(
    callable: &Bound<'py, PyAny>,
    first: &Bound<'py, PyAny>,
    keywords: &Keywords,
    values: &[&Bound<'py, PyAny>],
) -> PyResult<Bound<'py, PyAny>> {
    vectorcall(None, callable, first, keywords, values)
}

/// `receiver.name(first, keyword=value, ...)`, one value per name of `keywords`, without
/// making the bound method.
pub(crate) fn call_method_with_keywords<'py>(
    receiver: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
    first: &Bound<'py, PyAny>,
    keywords: &Keywords,
    values: &[&Bound<'py, PyAny>],
) -> PyResult<Bound<'py, PyAny>> {
    vectorcall(Some(receiver), name.as_any(), first, keywords, values)
}

/// A call of `target` (with `receiver`: the method of that name), by vectorcall.
fn vectorcall<'py>(
    receiver: Option<&Bound<'py, PyAny>>,
    target: &Bound<'py, PyAny>,
    first: &Bound<'py, PyAny>,
    keywords: &Keywords,
    values: &[&Bound<'py, PyAny>],
) -> PyResult<Bound<'py, PyAny>> {
    let py = target.py();
    if values.len() != keywords.names.len() || values.len() > MOST_KEYWORDS {
        return Err(pyo3::exceptions::PySystemError::new_err(
            "pyo3-aio: a keyword call with a value missing for one of its names",
        ));
    }
    let names = keywords.tuple(py)?;
    // Slot 0 is scratch space the callee may use (PY_VECTORCALL_ARGUMENTS_OFFSET); then
    // the receiver if any, the positional argument, the keyword values in order.
    let mut args = [std::ptr::null_mut(); 3 + MOST_KEYWORDS];
    let mut positional = 0;
    for argument in receiver.into_iter().chain([first]) {
        positional += 1;
        args[positional] = argument.as_ptr();
    }
    for (slot, value) in args[positional + 1..].iter_mut().zip(values) {
        *slot = value.as_ptr();
    }
    let nargsf = positional | pyo3::ffi::PY_VECTORCALL_ARGUMENTS_OFFSET;
    // SAFETY: the GIL is held (`py`). `args[1..]` holds `positional` valid borrowed
    // references followed by one per name of `names` (checked above), all alive for
    // the call; slot 0 exists, as PY_VECTORCALL_ARGUMENTS_OFFSET lets the callee
    // overwrite it; `names` is a tuple of strings; `target` is a callable, or with a
    // receiver the method's name (a string). The call returns a new reference, or NULL
    // with an exception set, which `from_owned_ptr_or_err` turns into the error.
    unsafe {
        let argv = args.as_ptr().add(1);
        let result = if receiver.is_some() {
            pyo3::ffi::PyObject_VectorcallMethod(target.as_ptr(), argv, nargsf, names.as_ptr())
        } else {
            pyo3::ffi::PyObject_Vectorcall(target.as_ptr(), argv, nargsf, names.as_ptr())
        };
        Bound::from_owned_ptr_or_err(py, result)
    }
}
