//! Done-callbacks kept for reuse: a round trip to Python (`into_future` on the loop thread)
//! makes one `_IntoFutureDone` object and drops it once the task has called it. The ones
//! called are kept here, and a later round trip reuses one once nothing else refers to it
//! (its task and the loop's handle have let it go), instead of allocating, initializing and
//! deallocating a Python object each time.
//!
//! Only called callbacks are kept: one that was never called still holds the cell's
//! producer, and must be dropped with its task so that the Rust side learns the awaitable
//! is gone. A kept callback holds nothing. An object that only this list refers to cannot
//! be observed, so reusing it changes nothing a program can see (the type cannot be
//! weakly referenced, and the collector does not track it). GIL builds only: elsewhere a
//! reference count read gives no such guarantee, and every round trip makes its own.

use pyo3::prelude::*;

/// How many called callbacks are kept: a loop thread's round trip reuses the previous
/// trip's, whose loop handle is released only after the call that starts the next trip.
#[cfg(not(Py_GIL_DISABLED))]
const CAPACITY: usize = 4;

#[cfg(not(Py_GIL_DISABLED))]
static KEPT: crate::gil_cell::GilCell<[Option<Py<PyAny>>; CAPACITY]> =
    crate::gil_cell::GilCell::new([None, None, None, None]);

/// A kept callback that nothing else refers to any more, taken out of the list.
pub(super) fn take(py: Python<'_>) -> Option<Py<PyAny>> {
    #[cfg(not(Py_GIL_DISABLED))]
    {
        KEPT.update(py, |kept| {
            kept.iter_mut()
                .find(|slot| slot.as_ref().is_some_and(only_kept))
                .and_then(Option::take)
        })
    }
    #[cfg(Py_GIL_DISABLED)]
    {
        let _ = py;
        None
    }
}

/// Whether the list holds the only reference to `object`.
#[cfg(not(Py_GIL_DISABLED))]
fn only_kept(object: &Py<PyAny>) -> bool {
    // SAFETY: reading the reference count of a live object (the list holds a reference);
    // the caller holds the GIL, so no other thread changes it meanwhile.
    unsafe { pyo3::ffi::Py_REFCNT(object.as_ptr()) == 1 }
}

/// Keeps `callback`, which has been called and holds nothing now, if there is room.
pub(super) fn keep(callback: &Bound<'_, PyAny>) {
    #[cfg(not(Py_GIL_DISABLED))]
    {
        let py = callback.py();
        // The new reference is made before, and nothing is dropped inside, the update.
        let object = callback.clone().unbind();
        let refused = KEPT.update(py, |kept| {
            match kept.iter_mut().find(|slot| slot.is_none()) {
                Some(slot) => {
                    *slot = Some(object);
                    None
                }
                None => Some(object),
            }
        });
        drop(refused);
    }
    #[cfg(Py_GIL_DISABLED)]
    {
        let _ = callback;
    }
}
