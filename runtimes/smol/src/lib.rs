//! The smol runtime for pyo3-aio (smol is async-std's maintained successor).
//!
//! Pending Rust futures handed over from Python run on smol's global executor, whose
//! thread count smol reads from the `SMOL_THREADS` environment variable (default 1).
//!
//! ```
//! use pyo3_aio_core::Spawner;
//!
//! let (tx, rx) = std::sync::mpsc::channel();
//! pyo3_aio_smol::SmolSpawner
//!     .spawn(Box::pin(async move {
//!         smol::Timer::after(std::time::Duration::from_millis(1)).await;
//!         tx.send("slept").unwrap();
//!     }))
//!     .unwrap();
//! assert_eq!(rx.recv().unwrap(), "slept");
//! ```

use pyo3_aio_core::spawn::{BoxFuture, SpawnError, Spawner};

/// The [`Spawner`] that runs futures on smol's global executor.
#[derive(Debug, Clone, Copy, Default)]
pub struct SmolSpawner;

impl Spawner for SmolSpawner {
    fn spawn(&self, future: BoxFuture) -> Result<(), SpawnError> {
        smol::spawn(future).detach();
        Ok(())
    }

    fn name(&self) -> &'static str {
        "smol"
    }
}
