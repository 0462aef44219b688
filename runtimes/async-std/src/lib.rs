//! The async-std runtime for pyo3-aio.
//!
//! Pending Rust futures handed over from Python run on async-std's global executor, which
//! starts its threads on first use (configure it with async-std's `ASYNC_STD_THREAD_COUNT`
//! environment variable).
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

use pyo3_aio_core::spawn::{BoxFuture, SpawnError, Spawner};

/// The [`Spawner`] that runs futures on async-std's global executor.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStdSpawner;

impl Spawner for AsyncStdSpawner {
    fn spawn(&self, future: BoxFuture) -> Result<(), SpawnError> {
        // Dropping the JoinHandle detaches the task; the result travels through the cell.
        drop(async_std::task::spawn(future));
        Ok(())
    }

    fn name(&self) -> &'static str {
        "async-std"
    }
}
