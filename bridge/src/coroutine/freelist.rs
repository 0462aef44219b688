//! A free list of `RustCoroutine` objects: a ready await creates one and drops it at once,
//! so the memory of the last few dropped is kept (with the GIL, no atomics) and handed to
//! the next ones instead of going through the object allocator and the collector's
//! allocation count both ways.
//!
//! It is the type's own `tp_alloc` and `tp_free`, installed once with its other slots.
//! PyO3's `#[pyclass(freelist = N)]` is not used: it locks a mutex on every allocation and
//! free (two atomic read-modify-writes each), which costs more than it saves here.
//! GIL builds only: on a free-threaded build the type keeps CPython's own.

use pyo3::ffi;
use pyo3::prelude::*;

use crate::gil_cell::GilCell;

/// How many freed objects are kept.
const CAPACITY: usize = 16;

/// Freed objects' memory: untracked by the collector, contents dropped, type released.
struct Kept {
    objects: [*mut ffi::PyObject; CAPACITY],
    len: usize,
}

// SAFETY: the pointers are to memory this list alone owns (objects whose last reference
// is gone), only reached with the GIL held, through the `GilCell` below.
unsafe impl Send for Kept {}

static KEPT: GilCell<Kept> = GilCell::new(Kept {
    objects: [std::ptr::null_mut(); CAPACITY],
    len: 0,
});

/// `tp_alloc`: a kept object made new, as `PyType_GenericAlloc` leaves one (zero-filled,
/// one reference, the type referenced, tracked by the collector), else that function's.
unsafe extern "C" fn alloc(
    subtype: *mut ffi::PyTypeObject,
    nitems: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls type slots with the thread attached.
    let py = unsafe { Python::assume_attached() };
    let kept = (nitems == 0)
        .then(|| {
            KEPT.update(py, |kept| {
                kept.len = kept.len.checked_sub(1)?;
                Some(kept.objects[kept.len])
            })
        })
        .flatten();
    let Some(object) = kept else {
        // SAFETY: the default allocation of the type, with the arguments CPython gave.
        return unsafe { ffi::PyType_GenericAlloc(subtype, nitems) };
    };
    // SAFETY: `object` is memory of an instance of this very type (the type cannot be
    // subclassed, and only its instances are freed into the list), `tp_basicsize` bytes
    // long; its collector header was left untracked by the dealloc. Zeroing it and
    // `PyObject_Init` (type, reference count, the heap type's reference) then tracking
    // it is what `PyType_GenericAlloc` does to fresh memory.
    unsafe {
        let size = usize::try_from((*subtype).tp_basicsize).unwrap_or(0);
        std::ptr::write_bytes(object.cast::<u8>(), 0, size);
        ffi::PyObject_Init(object, subtype);
        ffi::PyObject_GC_Track(object.cast());
    }
    object
}

/// `tp_free`: keeps the object's memory when there is room, else frees it as the type's
/// default (`PyObject_GC_Del`) does.
unsafe extern "C" fn free(object: *mut std::ffi::c_void) {
    // SAFETY: CPython calls type slots with the thread attached.
    let py = unsafe { Python::assume_attached() };
    let object = object.cast::<ffi::PyObject>();
    let kept = KEPT.update(py, |kept| {
        if kept.len == CAPACITY {
            return false;
        }
        kept.objects[kept.len] = object;
        kept.len += 1;
        true
    });
    if !kept {
        // SAFETY: the object's memory, from `PyType_GenericAlloc` (directly, or through
        // this list), untracked by PyO3's dealloc before this call.
        unsafe { ffi::PyObject_GC_Del(object.cast()) };
    }
}

/// Makes the free list `RustCoroutine`'s allocator (once, from `install_am_send`).
pub(crate) fn install(type_object: *mut ffi::PyTypeObject) {
    // SAFETY: `type_object` is the heap type PyO3 created for `RustCoroutine`, which has no
    // instances yet that `PyType_GenericAlloc` did not make (either allocator's memory is
    // freed by either free: both are `PyObject_GC_Del`'s in the end). The caller holds the
    // GIL and calls `PyType_Modified` after.
    unsafe {
        (*type_object).tp_alloc = Some(alloc);
        (*type_object).tp_free = Some(free);
    }
}
