//! GilCell: a value inside a pyclass, replaced or read with the GIL held, without PyO3's
//! borrow flag.
//!
//! A mutable pyclass pays for `borrow`/`borrow_mut` with an atomic compare-exchange each
//! (and an atomic decrement to end a shared borrow), because PyO3 must also be sound
//! without a GIL. A `frozen` pyclass holding its changing part in a `GilCell` pays
//! nothing: every access takes a `Python` token, and on a GIL build the token means this
//! thread holds the GIL. Accesses never span Python code (the closure given to
//! [`GilCell::inspect`] must not run any, and [`GilCell::replace`] hands the old value
//! back to be dropped after), so no access can re-enter another. On a free-threaded
//! build (`Py_GIL_DISABLED`) a token excludes no one, and the cell is a mutex.

use pyo3::Python;

#[cfg(not(Py_GIL_DISABLED))]
pub(crate) struct GilCell<T>(std::cell::UnsafeCell<T>);

// SAFETY: the value is only reached through `replace` and `inspect`, which take a `Python`
// token: on a GIL build the caller holds the GIL, so one thread at a time; neither lets
// Python code run while the value is borrowed, so no second access overlaps on the same
// thread either. Moving the cell moves a `T`, hence `T: Send`.
#[cfg(not(Py_GIL_DISABLED))]
unsafe impl<T: Send> Sync for GilCell<T> {}

#[cfg(not(Py_GIL_DISABLED))]
impl<T> GilCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    /// Changes the value in place. `f` must not run Python code, as for
    /// [`inspect`](Self::inspect), nor drop anything that could.
    #[inline]
    pub(crate) fn update<R>(&self, _py: Python<'_>, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: see the `Sync` impl: the GIL is held, and `f` runs no Python code that
        // could reach this cell while this exclusive borrow is live.
        f(unsafe { &mut *self.0.get() })
    }

    /// Puts `value` in and returns what was there, for the caller to drop (dropping may
    /// run Python code, which could reach this cell again).
    #[inline]
    pub(crate) fn replace(&self, _py: Python<'_>, value: T) -> T {
        // SAFETY: see the `Sync` impl: the GIL is held and no other borrow is live.
        unsafe { std::mem::replace(&mut *self.0.get(), value) }
    }

    /// Reads the value. `f` must not run Python code: no calls, no allocation of Python
    /// objects (which may start the garbage collector), no drop of a Python reference.
    /// Taking a new reference (`clone_ref`) is fine.
    #[inline]
    pub(crate) fn inspect<R>(&self, _py: Python<'_>, f: impl FnOnce(&T) -> R) -> R {
        // SAFETY: see the `Sync` impl: the GIL is held, and `f` runs no Python code that
        // could reach `replace` while this shared borrow is live.
        f(unsafe { &*self.0.get() })
    }

    /// The value, through the one reference to the cell.
    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.0.get_mut()
    }

    /// Reads the value from the garbage collector's traversal, which runs with the GIL
    /// held and calls no code of ours that could be inside `replace`.
    #[inline]
    pub(crate) fn inspect_for_gc<E>(&self, f: impl FnOnce(&T) -> Result<(), E>) -> Result<(), E> {
        // SAFETY: `__traverse__` runs with the GIL held, at an allocation: never inside
        // `replace` or `inspect` (neither allocates Python objects).
        f(unsafe { &*self.0.get() })
    }
}

#[cfg(Py_GIL_DISABLED)]
pub(crate) struct GilCell<T>(std::sync::Mutex<T>);

#[cfg(Py_GIL_DISABLED)]
impl<T> GilCell<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(std::sync::Mutex::new(value))
    }

    pub(crate) fn replace(&self, _py: Python<'_>, value: T) -> T {
        std::mem::replace(&mut *crate::sync::lock(&self.0), value)
    }

    pub(crate) fn inspect<R>(&self, _py: Python<'_>, f: impl FnOnce(&T) -> R) -> R {
        f(&crate::sync::lock(&self.0))
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.0
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The collector stops the world: a thread stopped while holding the lock makes this
    /// skip the value (its edge is not reported this time) rather than wait for ever.
    pub(crate) fn inspect_for_gc<E>(&self, f: impl FnOnce(&T) -> Result<(), E>) -> Result<(), E> {
        match self.0.try_lock() {
            Ok(value) => f(&value),
            Err(_) => Ok(()),
        }
    }
}
