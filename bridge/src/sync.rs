//! Locks that recover from a panic elsewhere: nothing the bridge guards with a mutex is left
//! half-done by a panic (every critical section is a take, a store or a push), so a poisoned
//! lock is used as it is rather than turned into a second panic.

use std::sync::{Mutex, MutexGuard, TryLockError};

/// Locks `mutex`, recovering it from a panic elsewhere.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Locks `mutex` unless another thread holds it (`None` then), recovering it from a panic.
pub(crate) fn try_lock<T: ?Sized>(mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match mutex.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}
