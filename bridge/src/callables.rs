//! The Python objects the bridge calls often, looked up once per process and cached (each
//! lookup is an import and attribute reads; the hot paths call them per await).

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

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
