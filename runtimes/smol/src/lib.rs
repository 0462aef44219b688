//! The smol runtime for pyo3-aio (smol is async-std's maintained successor).
//!
//! Pending Rust futures handed over from Python run on a [`smol::Executor`] named by a
//! [`SmolSpawner`]:
//!
//! - [`SmolSpawner::global()`] (what `pyo3_aio::smol`'s functions use): an executor of this
//!   crate's own (not smol's global one, which cannot be stopped), run by threads it starts
//!   on first use; their number is read from `SMOL_THREADS` (default 1), as smol does.
//!   [`shutdown`] stops it with a deadline; the next conversion starts a fresh one.
//! - [`SmolSpawner::from_executor`]: an executor the application owns and runs.
//!
//! After `fork()`, smol cannot work in the child if it ran in the parent: its I/O and timer
//! reactor (async-io's, one per process) is locked by a parent thread that does not exist
//! in the child, so every timer would wait forever. Conversions there raise a
//! `RuntimeError` naming `fork()` instead; a child whose parent never used smol uses it
//! normally.
//!
//! ```
//! use pyo3_aio_core::Spawner;
//!
//! let (tx, rx) = std::sync::mpsc::channel();
//! pyo3_aio_smol::SmolSpawner::global()
//!     .spawn(Box::pin(async move {
//!         smol::Timer::after(std::time::Duration::from_millis(1)).await;
//!         tx.send("slept").unwrap();
//!     }))
//!     .unwrap();
//! assert_eq!(rx.recv().unwrap(), "slept");
//! ```

use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use pyo3_aio_core::fork;
use pyo3_aio_core::spawn::{BoxFuture, SpawnError, Spawner};
use smol::Executor;

const FORKED: &str = "smol ran in the parent of this process, and its reactor (async-io's, \
     one per process) is held by a parent thread that does not exist after fork(): timers \
     and I/O cannot work here; use tokio in forked children, or use smol only after fork()";
const DROPPED: &str = "the executor of this SmolSpawner was dropped";

/// The global executor's owner side: only taken to start or shut it down.
struct Owned {
    executor: Arc<Executor<'static>>,
    /// Dropped to stop the executor's threads.
    stop: smol::channel::Sender<()>,
    /// Each thread sends once as it exits.
    exited: std::sync::mpsc::Receiver<()>,
    threads: usize,
}

struct State {
    owned: Option<Owned>,
}

static STATE: Mutex<State> = Mutex::new(State { owned: None });

/// The executor conversions use now (held weakly: [`shutdown`] drops it), and the fork
/// generation it was started in.
struct Current {
    generation: usize,
    executor: Weak<Executor<'static>>,
}

/// The published [`Current`]: null before the first start and after [`shutdown`]. Each
/// published value is leaked (a conversion may still be reading an unpublished one): one
/// small allocation per start.
static CURRENT: AtomicPtr<Current> = AtomicPtr::new(std::ptr::null_mut());

/// The fork generation of the last start, plus one (0: never started). Survives
/// [`shutdown`], since async-io's reactor outlives the executor.
static STARTED_IN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

fn current() -> Option<&'static Current> {
    let current = CURRENT.load(Ordering::Acquire);
    // SAFETY: a non-null pointer in CURRENT came from `Box::leak` in `start` and is never
    // freed; Acquire pairs with the Release store there.
    (!current.is_null()).then(|| unsafe { &*current })
}

/// Whether smol ran in a parent of this process (see the crate docs).
fn forked() -> bool {
    let started = STARTED_IN.load(Ordering::Relaxed);
    started != 0 && started - 1 != fork::generation()
}

/// The global executor, started if needed.
fn global() -> Result<Arc<Executor<'static>>, SpawnError> {
    let generation = fork::generation();
    if let Some(current) = current()
        && current.generation == generation
        && let Some(executor) = current.executor.upgrade()
    {
        return Ok(executor);
    }
    if forked() {
        return Err(SpawnError::new("smol", FORKED));
    }
    start(&mut state(), generation)
}

fn start(state: &mut State, generation: usize) -> Result<Arc<Executor<'static>>, SpawnError> {
    if let Some(owned) = &state.owned {
        return Ok(owned.executor.clone());
    }
    let threads = std::env::var("SMOL_THREADS")
        .ok()
        .and_then(|threads| threads.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    let executor = Arc::new(Executor::new());
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    let (exit, exited) = std::sync::mpsc::channel();
    for n in 1..=threads {
        let executor = executor.clone();
        let stopped = stopped.clone();
        let exit = exit.clone();
        std::thread::Builder::new()
            .name(format!("pyo3-aio-smol-{n}"))
            .spawn(move || {
                smol::block_on(executor.run(stopped.recv())).ok();
                // Let go of the executor before saying so: the last one out drops it.
                drop(executor);
                let _ = exit.send(());
            })
            .map_err(|_| SpawnError::new("smol", "could not start the executor's threads"))?;
    }
    STARTED_IN.store(generation + 1, Ordering::Relaxed);
    let current: &'static Current = Box::leak(Box::new(Current {
        generation,
        executor: Arc::downgrade(&executor),
    }));
    // Release pairs with the Acquire load in `current`.
    CURRENT.store((current as *const Current).cast_mut(), Ordering::Release);
    state.owned = Some(Owned {
        executor: executor.clone(),
        stop,
        exited,
        threads,
    });
    Ok(executor)
}

/// What [`shutdown`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Every thread of the executor stopped, and its tasks were dropped.
    Stopped,
    /// The deadline passed with a thread still busy in a task's poll: the rest stopped, the
    /// executor and its tasks are dropped when that thread lets go of it.
    TimedOut,
    /// No executor was running.
    NotRunning,
}

/// Stops the global executor, waiting at most `timeout` for its threads.
///
/// Conversions still pending on it end with `RuntimeError: the Rust future was dropped by
/// the smol runtime before it completed (the runtime shut down, or dropped the task)`
/// where they are awaited. A later conversion starts a fresh executor.
///
/// ```
/// use std::time::Duration;
/// use pyo3_aio_core::Spawner;
/// use pyo3_aio_smol::{SmolSpawner, Shutdown};
///
/// SmolSpawner::global().spawn(Box::pin(std::future::pending())).unwrap();
/// assert_eq!(pyo3_aio_smol::shutdown(Duration::from_secs(1)), Shutdown::Stopped);
/// assert_eq!(pyo3_aio_smol::shutdown(Duration::from_secs(1)), Shutdown::NotRunning);
/// ```
pub fn shutdown(timeout: Duration) -> Shutdown {
    let deadline = Instant::now() + timeout;
    let owned = {
        let mut state = state();
        CURRENT.store(std::ptr::null_mut(), Ordering::Release);
        state.owned.take()
    };
    let Some(owned) = owned else {
        return Shutdown::NotRunning;
    };
    if forked() {
        std::mem::forget(owned);
        return Shutdown::NotRunning;
    }
    drop(owned.stop);
    drop(owned.executor);
    for _ in 0..owned.threads {
        let left = deadline.saturating_duration_since(Instant::now());
        if owned.exited.recv_timeout(left).is_err() {
            return Shutdown::TimedOut;
        }
    }
    Shutdown::Stopped
}

/// The [`Spawner`] for a smol executor: the global one ([`SmolSpawner::global`], the
/// default), or one the application owns and runs ([`SmolSpawner::from_executor`]).
///
/// ```
/// use std::sync::Arc;
/// use pyo3_aio_core::Spawner;
/// use pyo3_aio_smol::SmolSpawner;
///
/// let executor = Arc::new(smol::Executor::new());
/// let spawner = SmolSpawner::from_executor(&executor);
/// let (tx, rx) = smol::channel::bounded(1);
/// spawner.spawn(Box::pin(async move { tx.send("on my executor").await.unwrap() })).unwrap();
/// // The application runs its executor; here, on this thread until the answer arrives.
/// assert_eq!(smol::block_on(executor.run(rx.recv())).unwrap(), "on my executor");
/// ```
#[derive(Debug, Clone, Default)]
pub struct SmolSpawner {
    own: Option<Own>,
}

#[derive(Debug, Clone)]
struct Own {
    executor: Weak<Executor<'static>>,
    generation: usize,
}

impl SmolSpawner {
    /// The global executor (started lazily; see the crate docs).
    pub const fn global() -> Self {
        Self { own: None }
    }

    /// An executor the application owns and runs (on threads of its own, with
    /// `executor.run(...)`).
    ///
    /// The spawner holds it weakly: conversions pending when the application drops it end
    /// with a `RuntimeError` naming smol, later ones are refused. In a process forked after
    /// the spawner was made, conversions on it raise a `RuntimeError` naming `fork()`.
    pub fn from_executor(executor: &Arc<Executor<'static>>) -> Self {
        Self {
            own: Some(Own {
                executor: Arc::downgrade(executor),
                generation: fork::generation(),
            }),
        }
    }

    fn resolve(&self) -> Result<Arc<Executor<'static>>, SpawnError> {
        match &self.own {
            None => global(),
            Some(own) if !fork::is_current(own.generation) => Err(SpawnError::new("smol", FORKED)),
            Some(own) => own
                .executor
                .upgrade()
                .ok_or(SpawnError::new("smol", DROPPED)),
        }
    }
}

impl Spawner for SmolSpawner {
    fn spawn(&self, future: BoxFuture) -> Result<(), SpawnError> {
        self.resolve()?.spawn(future).detach();
        Ok(())
    }

    fn name(&self) -> &'static str {
        "smol"
    }

    fn usable(&self) -> Result<(), SpawnError> {
        match &self.own {
            // Cheap: no executor is started for a future that may be ready at once.
            None if forked() => Err(SpawnError::new("smol", FORKED)),
            None => Ok(()),
            Some(_) => self.resolve().map(drop),
        }
    }
}
