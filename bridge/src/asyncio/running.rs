//! Which asyncio loop runs on this thread, asked cheaply on the hot path.

use std::cell::Cell;
use std::cell::RefCell;

use pyo3::prelude::*;

use crate::callables;

/// What this thread knows of its running loop. One thread-local for all of it: the hot
/// path (`runs_here`, on every `into_future` on the loop thread) reads it once.
struct Known {
    /// The loop this thread last registered as its running loop, and how to ask it cheaply
    /// whether it still runs.
    registered: RefCell<Option<Registered>>,
    /// The thread state dict as `register_running_loop` last left it settled: this thread's
    /// running asyncio loop registered, or none running.
    settled: Cell<Option<Settled>>,
    /// Whether a loop ran when `settled` was recorded (`registered`'s).
    settled_running: Cell<bool>,
}

thread_local! {
    static KNOWN: Known = const {
        Known {
            registered: RefCell::new(None),
            settled: Cell::new(None),
            settled_running: Cell::new(false),
        }
    };
}

/// The thread state dict's address and version, and the fork generation. asyncio's C
/// accelerator keeps the running loop in that dict up to 3.12 (3.13 keeps it in the thread
/// state itself, where no version shows a change), and CPython gives a dict a
/// new, process-unique version on every change, so while this triple is unchanged no loop
/// was started or stopped on this thread, and a settled registration still holds. One field
/// read instead of the dict look-up of the marker (about 110 instructions per ready await on
/// 3.11), and under trio it also skips `asyncio._get_running_loop` (a `getpid` on 3.11).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Settled {
    dict: usize,
    version: u64,
    generation: usize,
}

impl Settled {
    /// Now's triple, where the dict's version can be read and the running loop lives in
    /// the dict (`None` elsewhere: the slow path then runs every time).
    #[inline]
    fn now(py: Python<'_>) -> Option<Self> {
        #[cfg(not(any(Py_LIMITED_API, PyPy, GraalPy, Py_3_13)))]
        {
            if !loop_in_thread_dict(py) {
                return None;
            }
            // SAFETY: the GIL is held (`py`). PyThreadState_GetDict returns the thread
            // state's dict, borrowed, or NULL; a non-NULL one is a `dict`, whose layout
            // `PyDictObject` describes on these versions, and we only read one field.
            unsafe {
                let dict = pyo3::ffi::PyThreadState_GetDict();
                if dict.is_null() {
                    return None;
                }
                #[allow(deprecated)]
                let version = (*dict.cast::<pyo3::ffi::PyDictObject>()).ma_version_tag;
                Some(Self {
                    dict: dict as usize,
                    version,
                    generation: pyo3_aio_core::fork::generation(),
                })
            }
        }
        #[cfg(any(Py_LIMITED_API, PyPy, GraalPy, Py_3_13))]
        {
            let _ = py;
            None
        }
    }
}

/// Whether asyncio's `_get_running_loop` is the C accelerator's, which keeps the running
/// loop in the thread state dict (the pure-Python fallback keeps it in a `threading.local`,
/// whose changes the dict's version does not show).
#[cfg(not(any(Py_LIMITED_API, PyPy, GraalPy, Py_3_13)))]
fn loop_in_thread_dict(py: Python<'_>) -> bool {
    static IN_DICT: pyo3::sync::PyOnceLock<bool> = pyo3::sync::PyOnceLock::new();
    *IN_DICT.get_or_init(py, || {
        callables::get_running_loop(py).is_ok_and(|function| {
            // SAFETY: plain type check on a valid object pointer.
            unsafe { pyo3::ffi::PyCFunction_Check(function.as_ptr()) != 0 }
        })
    })
}

/// What `register_running_loop` remembers of the loop it last registered on this thread.
struct Registered {
    event_loop: Py<PyAny>,
    still_running: StillRunning,
    /// What asyncio's C accelerator kept in the thread state's dict for the running loop
    /// when it was registered (a holder object made by each `_set_running_loop` on 3.9 to
    /// 3.11, the loop itself on 3.12), held so its address cannot be reused. While the
    /// dict still holds this very object, the running loop is the registered one.
    marker: Option<Py<PyAny>>,
    /// The fork generation of the registration: a forked child registers afresh (the
    /// parent's loop may still look running there, its `_thread_id` copied).
    generation: usize,
}

/// The thread state dict's entry for the running loop, where asyncio's C accelerator keeps
/// it (`None` where it does not: pure-Python asyncio, later CPythons).
fn running_loop_marker(py: Python<'_>) -> Option<Bound<'_, PyAny>> {
    #[cfg(not(Py_LIMITED_API))]
    {
        let key = pyo3::intern!(py, "__asyncio_running_event_loop__");
        // SAFETY: the GIL is held (`py`); PyThreadState_GetDict returns a borrowed dict (or
        // NULL), and PyDict_GetItemWithError a borrowed value (or NULL), which we turn into
        // a new reference before anything else runs.
        unsafe {
            let dict = pyo3::ffi::PyThreadState_GetDict();
            if dict.is_null() {
                return None;
            }
            let value = pyo3::ffi::PyDict_GetItemWithError(dict, key.as_ptr());
            if value.is_null() {
                pyo3::ffi::PyErr_Clear();
                return None;
            }
            Some(Bound::from_borrowed_ptr(py, value))
        }
    }
    #[cfg(Py_LIMITED_API)]
    {
        let _ = py;
        None
    }
}

/// How `register_running_loop` asks a cached loop whether it still runs.
#[derive(Clone, Copy)]
enum StillRunning {
    /// An asyncio `BaseEventLoop` whose `is_running` is the stock one (`_thread_id is not
    /// None`): read the attribute, without a Python-level call.
    ThreadId,
    /// Any other loop (uvloop's is a C method): call `is_running()`.
    Method,
}

impl StillRunning {
    fn of(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> Self {
        let is_stock = callables::stock_is_running(py).is_ok_and(|stock| {
            event_loop
                .get_type()
                .getattr(pyo3::intern!(py, "is_running"))
                .is_ok_and(|method| method.is(stock))
        });
        if is_stock {
            StillRunning::ThreadId
        } else {
            StillRunning::Method
        }
    }

    fn check(self, py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> PyResult<bool> {
        match self {
            StillRunning::ThreadId => Ok(!event_loop
                .getattr(pyo3::intern!(py, "_thread_id"))?
                .is_none()),
            StillRunning::Method => event_loop
                .call_method0(pyo3::intern!(py, "is_running"))?
                .is_truthy(),
        }
    }
}

/// Calls `register` with the loop running on this thread unless this thread already did
/// so for a loop that still runs (the event-loop registry passes its registration, so
/// that `into_future` called from other threads finds the loop), cheaply on that path.
///
/// `asyncio._get_running_loop` costs a `getpid` system call on Python 3.11, more than a
/// whole ready await; asking the cached loop whether it still runs avoids it on the fast
/// path (and for asyncio's own loops, without a Python-level call). A thread runs one loop
/// at a time, so a still-running cached loop is this thread's (unless the loop moved to
/// another thread, which then only skips this registration).
#[inline]
pub(crate) fn register_running_loop(
    py: Python<'_>,
    register: impl FnOnce(&Bound<'_, PyAny>) -> PyResult<()>,
) -> PyResult<()> {
    let settled = Settled::now(py);
    if settled.is_some() && KNOWN.try_with(|known| known.settled.get()).ok().flatten() == settled {
        return Ok(());
    }
    let running = registered_running_loop(py, register)?;
    // Recorded only after success, with the triple from before: had anything changed the
    // dict meanwhile, the next call finds another version and checks again.
    // A thread ending (its thread-locals being dropped) records nothing.
    let _ = KNOWN.try_with(|known| {
        known.settled.set(settled);
        known.settled_running.set(running);
    });
    Ok(())
}

/// [`register_running_loop`] without the thread-state-dict shortcut; whether a loop runs
/// here (then the one registered).
fn registered_running_loop(
    py: Python<'_>,
    register: impl FnOnce(&Bound<'_, PyAny>) -> PyResult<()>,
) -> PyResult<bool> {
    let marker = running_loop_marker(py);
    // `Some(None)`: the marker shows the registered loop still runs; `Some(Some(..))`: ask it.
    let cached = KNOWN.with(|known| {
        let cached = known.registered.borrow();
        let registered = cached
            .as_ref()
            .filter(|registered| pyo3_aio_core::fork::is_current(registered.generation))?;
        if let (Some(now), Some(then)) = (&marker, &registered.marker)
            && now.is(then)
        {
            return Some(None);
        }
        Some(Some((
            registered.event_loop.clone_ref(py),
            registered.still_running,
        )))
    });
    match cached {
        Some(None) => return Ok(true),
        Some(Some((cached, still_running))) if still_running.check(py, cached.bind(py))? => {
            return Ok(true);
        }
        _ => {}
    }
    let running = running_loop(py)?;
    let runs = running.is_some();
    if let Some(event_loop) = running {
        register(&event_loop)?;
        let registered = Registered {
            still_running: StillRunning::of(py, &event_loop),
            event_loop: event_loop.unbind(),
            marker: marker.map(Bound::unbind),
            generation: pyo3_aio_core::fork::generation(),
        };
        let old = KNOWN.with(|known| known.registered.borrow_mut().replace(registered));
        drop(old);
    }
    Ok(runs)
}

/// Whether `event_loop` is the loop running on this thread: while the thread state dict is
/// as `register_running_loop` left it with a loop running, that registered loop (no
/// `getpid`, which `asyncio._get_running_loop` makes on 3.11), else asked.
pub(crate) fn runs_here(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> PyResult<bool> {
    let settled = Settled::now(py);
    if settled.is_some() {
        let known = KNOWN.try_with(|known| {
            if known.settled.get() != settled || !known.settled_running.get() {
                return None;
            }
            known
                .registered
                .borrow()
                .as_ref()
                .map(|registered| registered.event_loop.bind(py).is(event_loop))
        });
        if let Ok(Some(known)) = known {
            return Ok(known);
        }
    }
    Ok(running_loop(py)?.is_some_and(|running| running.is(event_loop)))
}

/// `asyncio`'s C-level `_get_running_loop`, cached.
pub(crate) fn running_loop(py: Python<'_>) -> PyResult<Option<Bound<'_, PyAny>>> {
    let event_loop = callables::get_running_loop(py)?.call0()?;
    Ok((!event_loop.is_none()).then_some(event_loop))
}
