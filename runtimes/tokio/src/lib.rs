//! The tokio runtime for pyo3-aio.
//!
//! Pending Rust futures handed over from Python run on one process-wide tokio runtime. It
//! is built lazily, on first use, as a multi-thread runtime with all drivers enabled,
//! unless the application configures it first with [`init`] (a custom
//! [`tokio::runtime::Builder`]) or [`init_with_runtime`] (a runtime it built itself).
//!
//! ```
//! use pyo3_aio_core::Spawner;
//!
//! let mut builder = tokio::runtime::Builder::new_multi_thread();
//! builder.worker_threads(2).enable_all();
//! // Succeeds only before the runtime was first used.
//! pyo3_aio_tokio::init(builder).unwrap();
//!
//! let (tx, rx) = std::sync::mpsc::channel();
//! pyo3_aio_tokio::TokioSpawner
//!     .spawn(Box::pin(async move { tx.send(tokio::runtime::Handle::current().metrics().num_workers()).unwrap() }))
//!     .unwrap();
//! assert_eq!(rx.recv().unwrap(), 2);
//! ```

use std::fmt;
use std::sync::{Mutex, OnceLock};

use pyo3_aio_core::spawn::{BoxFuture, SpawnError, Spawner};
use tokio::runtime::{Builder, Runtime};

enum Configured {
    Builder(Box<Builder>),
    Runtime(&'static Runtime),
}

static CONFIGURED: Mutex<Option<Configured>> = Mutex::new(None);
static RUNTIME: OnceLock<&'static Runtime> = OnceLock::new();

/// Configuring the runtime failed.
#[derive(Debug)]
pub enum InitError {
    /// The runtime was already built (something used it before `init` ran).
    AlreadyStarted,
    /// tokio could not build the runtime from the given builder.
    Build(std::io::Error),
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::AlreadyStarted => f.write_str(
                "the pyo3-aio tokio runtime is already running: call pyo3_aio_tokio::init before the first conversion",
            ),
            InitError::Build(error) => write!(f, "could not build the tokio runtime: {error}"),
        }
    }
}

impl std::error::Error for InitError {}

/// Sets the builder the global runtime will be built from on first use.
///
/// # Errors
///
/// [`InitError::AlreadyStarted`] when the runtime already exists.
pub fn init(builder: Builder) -> Result<(), InitError> {
    configure(Configured::Builder(Box::new(builder)))
}

/// Uses `runtime` as the global runtime.
///
/// # Errors
///
/// [`InitError::AlreadyStarted`] when the runtime already exists.
pub fn init_with_runtime(runtime: &'static Runtime) -> Result<(), InitError> {
    configure(Configured::Runtime(runtime))?;
    // Build it now, so that a later `init` is refused rather than silently ignored.
    try_runtime().map(drop)
}

fn configure(configured: Configured) -> Result<(), InitError> {
    if RUNTIME.get().is_some() {
        return Err(InitError::AlreadyStarted);
    }
    *CONFIGURED.lock().unwrap_or_else(|e| e.into_inner()) = Some(configured);
    Ok(())
}

/// The global runtime, built on first call.
///
/// # Errors
///
/// [`InitError::Build`] when tokio cannot build it (for example, no threads can be spawned).
pub fn try_runtime() -> Result<&'static Runtime, InitError> {
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let mut configured = CONFIGURED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let runtime: &'static Runtime = match configured.take() {
        Some(Configured::Runtime(runtime)) => runtime,
        Some(Configured::Builder(mut builder)) => {
            Box::leak(Box::new(builder.build().map_err(InitError::Build)?))
        }
        None => Box::leak(Box::new(
            Builder::new_multi_thread()
                .enable_all()
                .thread_name("pyo3-aio-tokio")
                .build()
                .map_err(InitError::Build)?,
        )),
    };
    Ok(RUNTIME.get_or_init(|| runtime))
}

/// The global runtime, built on first call.
///
/// # Panics
///
/// When tokio cannot build the runtime; [`try_runtime`] returns that as an error instead.
pub fn get_runtime() -> &'static Runtime {
    try_runtime().unwrap_or_else(|error| panic!("{error}"))
}

/// The [`Spawner`] that runs futures on the global tokio runtime.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSpawner;

impl Spawner for TokioSpawner {
    fn spawn(&self, future: BoxFuture) -> Result<(), SpawnError> {
        let runtime = try_runtime()
            .map_err(|_| SpawnError::new("tokio", "the runtime could not be built"))?;
        // A runtime that is shutting down drops the future at once, which the completion
        // cell reports to the waiting side as "producer dropped".
        drop(runtime.spawn(future));
        Ok(())
    }

    fn enter(&self, f: &mut dyn FnMut()) {
        match try_runtime() {
            Ok(runtime) => {
                let _guard = runtime.enter();
                f()
            }
            Err(_) => f(),
        }
    }

    fn name(&self) -> &'static str {
        "tokio"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enter_gives_tokio_context() {
        let mut inside = false;
        TokioSpawner.enter(&mut || inside = tokio::runtime::Handle::try_current().is_ok());
        assert!(inside);
        assert!(matches!(
            init(Builder::new_current_thread()),
            Err(InitError::AlreadyStarted)
        ));
    }

    #[test]
    fn spawned_future_runs_with_timers() {
        let (tx, rx) = std::sync::mpsc::channel();
        TokioSpawner
            .spawn(Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                tx.send(()).unwrap();
            }))
            .unwrap();
        rx.recv().unwrap();
    }
}
