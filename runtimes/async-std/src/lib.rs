//! The async-std runtime for pyo3-aio.
//!
//! Pending Rust futures handed over from Python run on async-std's global executor, which
//! starts its threads on first use (configure it with async-std's `ASYNC_STD_THREAD_COUNT`
//! environment variable).
//!
//! async-std's runtime is global and cannot be stopped or restarted: there is no
//! `shutdown`, and in a process forked after async-std ran in its parent, conversions raise
//! a `RuntimeError` naming `fork()` (its threads are gone and its reactor is locked by one
//! of them). A child whose parent never used async-std uses it normally.
//!
//! ```
//! use pyo3_aio_core::Spawner;
//!
//! let (tx, rx) = std::sync::mpsc::channel();
//! pyo3_aio_async_std::AsyncStdSpawner
//!     .spawn(Box::pin(async move {
//!         async_std::task::sleep(std::time::Duration::from_millis(1)).await;
//!         tx.send("slept").unwrap();
//!     }))
//!     .unwrap();
//! assert_eq!(rx.recv().unwrap(), "slept");
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};

use pyo3_aio_core::fork;
use pyo3_aio_core::spawn::{BoxFuture, SpawnError, Spawner};

const FORKED: &str = "async-std ran in the parent of this process, and its global runtime \
     cannot be restarted after fork() (its threads are gone, its reactor is held by one of \
     them); use tokio in forked children, or use async-std only after fork()";

/// The fork generation in which this crate first spawned, plus one (0: never).
static STARTED_IN: AtomicUsize = AtomicUsize::new(0);

fn forked() -> bool {
    let started = STARTED_IN.load(Ordering::Relaxed);
    started != 0 && started - 1 != fork::generation()
}

/// The [`Spawner`] that runs futures on async-std's global executor.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStdSpawner;

impl Spawner for AsyncStdSpawner {
    fn spawn(&self, future: BoxFuture) -> Result<(), SpawnError> {
        if forked() {
            return Err(SpawnError::new("async-std", FORKED));
        }
        if STARTED_IN.load(Ordering::Relaxed) == 0 {
            STARTED_IN.store(fork::generation() + 1, Ordering::Relaxed);
        }
        // Dropping the JoinHandle detaches the task; the result travels through the cell.
        drop(async_std::task::spawn(future));
        Ok(())
    }

    fn name(&self) -> &'static str {
        "async-std"
    }

    fn usable(&self) -> Result<(), SpawnError> {
        if forked() {
            return Err(SpawnError::new("async-std", FORKED));
        }
        Ok(())
    }
}
