//! The tokio runtime for pyo3-aio.
//!
//! Pending Rust futures handed over from Python run on a tokio runtime named by a
//! [`TokioSpawner`]:
//!
//! - [`TokioSpawner::global()`] (what `pyo3_aio::tokio`'s functions use): one process-wide
//!   runtime, built lazily on first use as a multi-thread runtime with all drivers enabled,
//!   unless the application configures it first with [`init`] (a custom
//!   [`tokio::runtime::Builder`]) or [`init_with_runtime`] (a runtime it built itself).
//!   [`shutdown`] stops it with a deadline; the next conversion builds a fresh one. After
//!   `fork()` the child builds its own on first use (the parent's threads do not exist
//!   there).
//! - [`TokioSpawner::from_handle`] / [`TokioSpawner::current`]: a runtime the application
//!   owns, per call, through the `pyo3_aio::generic` functions.
//!
//! ```
//! use pyo3_aio_core::Spawner;
//! use pyo3_aio_tokio::TokioSpawner;
//!
//! let mut builder = tokio::runtime::Builder::new_multi_thread();
//! builder.worker_threads(2).enable_all();
//! // Succeeds only before the runtime was first used.
//! pyo3_aio_tokio::init(builder).unwrap();
//!
//! let (tx, rx) = std::sync::mpsc::channel();
//! TokioSpawner::global()
//!     .spawn(Box::pin(async move { tx.send(tokio::runtime::Handle::current().metrics().num_workers()).unwrap() }))
//!     .unwrap();
//! assert_eq!(rx.recv().unwrap(), 2);
//! ```

/// The tokio crate this runtime is built on, for its [`Builder`] and handles (and for
/// `#[pyo3_aio::tokio::main]`, which configures the runtime through it).
pub use tokio;

use std::fmt;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pyo3_aio_core::fork;
use pyo3_aio_core::spawn::{BoxFuture, SpawnError, Spawner};
use tokio::runtime::{Builder, Handle, Runtime, RuntimeFlavor};

/// What the application asked the global runtime to be built from. Kept after the first
/// build, so that a runtime shut down, or lost to `fork()`, can be built again.
enum Configured {
    Builder(Box<Builder>),
    Runtime(&'static Runtime),
}

/// The global runtime's owner side; taken only to build, shut down or configure (never on
/// the path of a conversion, which reads [`CURRENT`]).
struct State {
    configured: Option<Configured>,
    /// The runtime we built, shared with the thread that drives it when it is a
    /// current-thread runtime. `None` for one given to [`init_with_runtime`].
    owned: Option<Owned>,
    /// Set once the runtime was first built: [`init`] is refused from then on.
    started: bool,
}

struct Owned {
    runtime: Arc<Runtime>,
    generation: usize,
    /// Stops the thread that drives a current-thread runtime.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    driver: Option<std::thread::JoinHandle<()>>,
}

static STATE: Mutex<State> = Mutex::new(State {
    configured: None,
    owned: None,
    started: false,
});

/// The runtime conversions use now, and the fork generation it was built in.
struct Current {
    generation: usize,
    handle: Handle,
}

/// The published [`Current`] (null before the first build and after [`shutdown`]).
///
/// Each published value is leaked, never freed: a conversion may still be reading the one
/// a shutdown unpublished. One is published per build (first use, after each shutdown,
/// after each fork), so what leaks is one `Handle` per build.
static CURRENT: AtomicPtr<Current> = AtomicPtr::new(std::ptr::null_mut());

fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Configuring or building the runtime failed.
#[derive(Debug)]
pub enum InitError {
    /// The runtime was already built (something used it before `init` ran).
    AlreadyStarted,
    /// tokio could not build the runtime from the given builder.
    Build(std::io::Error),
    /// The runtime given to [`init_with_runtime`] was built before this process was forked
    /// from its parent: its threads do not exist here.
    Forked,
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::AlreadyStarted => f.write_str(
                "the pyo3-aio tokio runtime is already running: call pyo3_aio_tokio::init before the first conversion",
            ),
            InitError::Build(error) => write!(f, "could not build the tokio runtime: {error}"),
            InitError::Forked => f.write_str(FORKED_STATIC),
        }
    }
}

impl std::error::Error for InitError {}

const FORKED_STATIC: &str = "the runtime given to init_with_runtime was built before fork() \
     and its threads do not exist in this process; call init_with_runtime again in the child";
const FORKED_HANDLE: &str = "the runtime of this TokioSpawner was built before fork() and \
     its threads do not exist in this process; build a runtime in the child";

/// Sets the builder the global runtime will be built from on first use (and rebuilt from
/// after [`shutdown`] or in a forked child).
///
/// A current-thread builder is fine: pyo3-aio then starts a thread that drives it.
///
/// # Errors
///
/// [`InitError::AlreadyStarted`] when the runtime already exists.
pub fn init(builder: Builder) -> Result<(), InitError> {
    configure(Configured::Builder(Box::new(builder)))
}

/// Uses `runtime` as the global runtime.
///
/// pyo3-aio cannot shut it down ([`shutdown`] leaves it running and in use); in a forked
/// child it gives [`InitError::Forked`] until `init_with_runtime` is called there again.
///
/// # Errors
///
/// [`InitError::AlreadyStarted`] when the runtime already exists (in this process).
pub fn init_with_runtime(runtime: &'static Runtime) -> Result<(), InitError> {
    let generation = fork::generation();
    let mut state = state();
    let forked = current().is_some_and(|current| current.generation != generation);
    if state.started && !forked {
        return Err(InitError::AlreadyStarted);
    }
    state.configured = Some(Configured::Runtime(runtime));
    state.started = false;
    // Build it now, so that a later `init` is refused rather than silently ignored.
    build(&mut state, generation).map(drop)
}

fn configure(configured: Configured) -> Result<(), InitError> {
    let mut state = state();
    if state.started {
        return Err(InitError::AlreadyStarted);
    }
    state.configured = Some(configured);
    Ok(())
}

#[inline]
fn current() -> Option<&'static Current> {
    let current = CURRENT.load(Ordering::Acquire);
    // SAFETY: a non-null pointer in CURRENT came from `Box::leak` in `build` and is never
    // freed; Acquire pairs with the Release store there, so its fields are initialised.
    (!current.is_null()).then(|| unsafe { &*current })
}

/// The handle of the global runtime, building it first if needed: on first use, after
/// [`shutdown`], and in a forked child.
#[inline]
fn global() -> Result<&'static Handle, InitError> {
    let generation = fork::generation();
    if let Some(current) = current()
        && current.generation == generation
    {
        return Ok(&current.handle);
    }
    build(&mut state(), generation)
}

fn build(state: &mut State, generation: usize) -> Result<&'static Handle, InitError> {
    if let Some(current) = current()
        && current.generation == generation
    {
        return Ok(&current.handle);
    }
    if let Some(owned) = state.owned.take() {
        // Built in the parent: its threads are gone, and dropping it would wait for them.
        std::mem::forget(owned);
    }
    let handle = match &mut state.configured {
        Some(Configured::Runtime(runtime)) if state.started => {
            // `started` in this process's memory but published in another generation: the
            // runtime came from the parent.
            let _ = runtime;
            return Err(InitError::Forked);
        }
        Some(Configured::Runtime(runtime)) => runtime.handle().clone(),
        configured => {
            let runtime = match configured {
                Some(Configured::Builder(builder)) => builder.build(),
                _ => Builder::new_multi_thread()
                    .enable_all()
                    .thread_name("pyo3-aio-tokio")
                    .build(),
            }
            .map_err(InitError::Build)?;
            let owned = drive(Arc::new(runtime), generation)?;
            let handle = owned.runtime.handle().clone();
            state.owned = Some(owned);
            handle
        }
    };
    state.started = true;
    let current: &'static Current = Box::leak(Box::new(Current { generation, handle }));
    // Release pairs with the Acquire load in `current`.
    CURRENT.store((current as *const Current).cast_mut(), Ordering::Release);
    Ok(&current.handle)
}

/// A current-thread runtime runs its tasks only while a thread blocks on it: give it one.
fn drive(runtime: Arc<Runtime>, generation: usize) -> Result<Owned, InitError> {
    if runtime.handle().runtime_flavor() != RuntimeFlavor::CurrentThread {
        return Ok(Owned {
            runtime,
            generation,
            stop: None,
            driver: None,
        });
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let driven = runtime.clone();
    let driver = std::thread::Builder::new()
        .name("pyo3-aio-tokio-current-thread".into())
        // Runs the runtime's tasks until `stop` is sent or dropped.
        .spawn(move || drop(driven.block_on(stopped)))
        .map_err(InitError::Build)?;
    Ok(Owned {
        runtime,
        generation,
        stop: Some(stop),
        driver: Some(driver),
    })
}

/// The handle of the global runtime, built on first call (and again after [`shutdown`],
/// or in a forked child).
///
/// # Errors
///
/// [`InitError::Build`] when tokio cannot build it (for example, no threads can be
/// spawned); [`InitError::Forked`] in a forked child whose runtime came from
/// [`init_with_runtime`] in the parent.
pub fn try_handle() -> Result<Handle, InitError> {
    global().cloned()
}

/// The handle of the global runtime, built on first call.
///
/// # Panics
///
/// When the runtime cannot be built; [`try_handle`] returns that as an error instead.
pub fn handle() -> Handle {
    try_handle().unwrap_or_else(|error| panic!("{error}"))
}

/// What [`shutdown`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// The runtime pyo3-aio built was shut down; its tasks were dropped, and threads still
    /// busy at the deadline (a blocking task) were left to finish on their own.
    Stopped,
    /// No runtime was running (never used, already shut down, or built in the parent of
    /// this forked process, which has nothing to stop here).
    NotRunning,
    /// The runtime came from [`init_with_runtime`]: it is the application's to stop. It
    /// stays the global runtime.
    NotOwned,
    /// Something else still holds the runtime (a [`Handle`] does not count): it was
    /// unpublished, and the next conversion builds a fresh one, but it was not stopped.
    InUse,
}

/// Shuts the global runtime down, waiting at most `timeout` for its threads.
///
/// Conversions still pending on it end with `RuntimeError: the Rust future was dropped by
/// the tokio runtime before it completed (the runtime shut down, or dropped the task)`
/// where they are awaited. A later conversion builds a fresh runtime from the same
/// configuration ([`init`]'s builder, or the default). Call it from a thread that is not
/// one of the runtime's own.
///
/// ```
/// use std::time::Duration;
///
/// use pyo3_aio_tokio::Shutdown;
///
/// drop(pyo3_aio_tokio::handle());
/// assert_eq!(pyo3_aio_tokio::shutdown(Duration::from_secs(1)), Shutdown::Stopped);
/// assert_eq!(pyo3_aio_tokio::shutdown(Duration::from_secs(1)), Shutdown::NotRunning);
/// // The next use builds a fresh runtime.
/// let (tx, rx) = std::sync::mpsc::channel();
/// pyo3_aio_tokio::handle().spawn(async move { tx.send(()).unwrap() });
/// rx.recv().unwrap();
/// ```
pub fn shutdown(timeout: Duration) -> Shutdown {
    let deadline = Instant::now() + timeout;
    let owned = {
        let mut state = state();
        if let Some(Configured::Runtime(_)) = state.configured {
            return Shutdown::NotOwned;
        }
        state.started = false;
        CURRENT.store(std::ptr::null_mut(), Ordering::Release);
        state.owned.take()
    };
    let Some(mut owned) = owned else {
        return Shutdown::NotRunning;
    };
    if !fork::is_current(owned.generation) {
        std::mem::forget(owned);
        return Shutdown::NotRunning;
    }
    drop(owned.stop.take());
    if let Some(driver) = owned.driver.take() {
        // The driver returns as soon as it sees the channel closed.
        let _ = driver.join();
    }
    match Arc::try_unwrap(owned.runtime) {
        Ok(runtime) => {
            runtime.shutdown_timeout(deadline.saturating_duration_since(Instant::now()));
            Shutdown::Stopped
        }
        Err(_) => Shutdown::InUse,
    }
}

/// The [`Spawner`] for a tokio runtime: the global one ([`TokioSpawner::global`], the
/// default), or one the application owns ([`TokioSpawner::from_handle`]).
///
/// Cloning is cheap (a `Handle` clone at most).
///
/// A runtime of your own, here a current-thread runtime driven by a thread of yours, runs
/// conversions made with the `pyo3_aio::generic` functions and this spawner:
///
/// ```
/// use pyo3_aio_core::Spawner;
/// use pyo3_aio_tokio::TokioSpawner;
///
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// let spawner = TokioSpawner::from_handle(runtime.handle().clone());
/// let (tx, rx) = tokio::sync::oneshot::channel();
/// spawner
///     .spawn(Box::pin(async move {
///         tokio::time::sleep(std::time::Duration::from_millis(1)).await;
///         tx.send("on my runtime").unwrap();
///     }))
///     .unwrap();
/// // The current-thread runtime runs its tasks while this thread blocks on it.
/// assert_eq!(runtime.block_on(rx).unwrap(), "on my runtime");
/// ```
#[derive(Debug, Clone, Default)]
pub struct TokioSpawner {
    own: Option<OwnHandle>,
}

#[derive(Debug, Clone)]
struct OwnHandle {
    handle: Handle,
    generation: usize,
}

impl TokioSpawner {
    /// The global runtime (built lazily; see the crate docs).
    pub const fn global() -> Self {
        Self { own: None }
    }

    /// The runtime of `handle` (from `runtime.handle().clone()`, or an `Arc<Runtime>`'s).
    ///
    /// The application keeps the runtime alive: conversions still pending when it is
    /// dropped or shut down end with a `RuntimeError` naming tokio, as with [`shutdown`].
    /// In a process forked after `handle` was made, conversions on it raise a
    /// `RuntimeError` that names `fork()`.
    pub fn from_handle(handle: Handle) -> Self {
        Self {
            own: Some(OwnHandle {
                handle,
                generation: fork::generation(),
            }),
        }
    }

    /// The runtime whose context the caller runs in (inside a runtime's task or
    /// `block_on`, or under `Handle::enter`), if any.
    pub fn current() -> Option<Self> {
        Handle::try_current().ok().map(Self::from_handle)
    }

    /// The handle of the runtime this spawner names (building the global one if needed).
    ///
    /// # Errors
    ///
    /// As [`try_handle`] for the global runtime; a [`SpawnError`] naming `fork()` for a
    /// handle made before this process was forked.
    pub fn handle(&self) -> Result<Handle, SpawnError> {
        self.resolve().cloned()
    }

    fn resolve(&self) -> Result<&Handle, SpawnError> {
        match &self.own {
            None => global().map_err(|error| match error {
                InitError::Forked => SpawnError::new("tokio", FORKED_STATIC),
                _ => SpawnError::new("tokio", "the runtime could not be built"),
            }),
            Some(own) if fork::is_current(own.generation) => Ok(&own.handle),
            Some(_) => Err(SpawnError::new("tokio", FORKED_HANDLE)),
        }
    }
}

impl Spawner for TokioSpawner {
    fn spawn(&self, future: BoxFuture) -> Result<(), SpawnError> {
        // A runtime that is shutting down drops the future at once, which the completion
        // cell reports to the waiting side as "producer dropped".
        drop(self.resolve()?.spawn(future));
        Ok(())
    }

    fn enter(&self, f: &mut dyn FnMut()) {
        match self.resolve() {
            Ok(handle) => {
                let _guard = handle.enter();
                f()
            }
            Err(_) => f(),
        }
    }

    fn name(&self) -> &'static str {
        "tokio"
    }

    fn usable(&self) -> Result<(), SpawnError> {
        self.resolve().map(drop)
    }

    fn enter_usable(&self, f: &mut dyn FnMut()) -> Result<(), SpawnError> {
        let _guard = self.resolve()?.enter();
        f();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enter_gives_tokio_context() {
        let mut inside = false;
        TokioSpawner::global()
            .enter(&mut || inside = tokio::runtime::Handle::try_current().is_ok());
        assert!(inside);
        assert!(matches!(
            init(Builder::new_current_thread()),
            Err(InitError::AlreadyStarted)
        ));
    }

    #[test]
    fn spawned_future_runs_with_timers() {
        let (tx, rx) = std::sync::mpsc::channel();
        TokioSpawner::global()
            .spawn(Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                tx.send(()).unwrap();
            }))
            .unwrap();
        rx.recv().unwrap();
    }

    #[test]
    fn own_runtimes_do_not_mix() {
        let runtime = |workers| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .build()
                .unwrap()
        };
        let (one, three) = (runtime(1), runtime(3));
        for (runtime, workers) in [(&one, 1), (&three, 3)] {
            let (tx, rx) = std::sync::mpsc::channel();
            TokioSpawner::from_handle(runtime.handle().clone())
                .spawn(Box::pin(async move {
                    tx.send(Handle::current().metrics().num_workers()).unwrap()
                }))
                .unwrap();
            assert_eq!(rx.recv().unwrap(), workers);
        }
    }
}
