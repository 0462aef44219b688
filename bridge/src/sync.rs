//! Locks that recover from a panic elsewhere.

use std::sync::Mutex;

/// Locks a mutex, recovering it from a panic elsewhere (nothing it guards is left half-done).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
