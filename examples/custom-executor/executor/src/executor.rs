//! The executor: worker threads, the run queue, the live tasks, shutdown.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use pyo3_aio_core::spawn::{BoxFuture, SpawnError, Spawner};

use crate::task::Task;
use crate::timer::Timer;

/// Configures and starts an [`Executor`].
#[derive(Debug, Clone)]
pub struct Builder {
    name: &'static str,
    workers: usize,
}

impl Builder {
    /// Two workers, named `"minipool"`.
    pub fn new() -> Self {
        Self {
            name: "minipool",
            workers: 2,
        }
    }

    /// The executor's name: its threads are called `NAME-worker-N` and `NAME-timer`, and
    /// errors (its own and the bridge's) say `NAME`. A `&'static str` because
    /// [`Spawner::name`] returns one.
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// How many worker threads poll tasks (at least one).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Starts the worker threads and the timer thread.
    ///
    /// # Errors
    ///
    /// When the operating system refuses a thread; the threads already started are stopped.
    pub fn build(self) -> io::Result<Executor> {
        let shared = Arc::new(Shared {
            name: self.name,
            state: Mutex::new(State {
                closed: false,
                queue: VecDeque::new(),
                live: HashMap::new(),
                next_id: 0,
                workers_running: 0,
                workers: Vec::new(),
            }),
            work: Condvar::new(),
            exited: Condvar::new(),
            timer: Timer::start(self.name)?,
        });
        let executor = Executor { shared };
        for index in 0..self.workers {
            let shared = executor.shared.clone();
            // Counted before the thread starts, so a shutdown racing with `build` waits for it.
            executor.shared.lock().workers_running += 1;
            let started = thread::Builder::new()
                .name(format!("{}-worker-{index}", self.name))
                .spawn(move || work(shared));
            match started {
                Ok(handle) => executor.shared.lock().workers.push(handle),
                Err(error) => {
                    executor.shared.lock().workers_running -= 1;
                    executor.shutdown(Duration::from_secs(1));
                    return Err(error);
                }
            }
        }
        Ok(executor)
    }
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

/// A handle to a running thread pool; cloning it is cheap, and every clone drives the same
/// workers.
///
/// The workers run until [`shutdown`](Self::shutdown); dropping the handles does not stop
/// them (an executor that carries a Python module usually lives as long as the process).
#[derive(Clone)]
pub struct Executor {
    pub(crate) shared: Arc<Shared>,
}

/// What the workers, the tasks and every handle share.
pub(crate) struct Shared {
    name: &'static str,
    state: Mutex<State>,
    /// Signalled when a task is queued and at shutdown; workers wait on it.
    work: Condvar,
    /// Signalled when a worker exits; `shutdown` waits on it.
    exited: Condvar,
    pub(crate) timer: Arc<Timer>,
}

struct State {
    /// Set once by `shutdown`; from then on nothing is queued or spawned.
    closed: bool,
    /// Tasks to poll, oldest first.
    queue: VecDeque<Arc<Task>>,
    /// Every task not finished yet, wherever it is (queued, polled, waiting for a wake-up),
    /// so that shutdown can drop the ones nobody will ever wake.
    live: HashMap<u64, Arc<Task>>,
    next_id: u64,
    workers_running: usize,
    workers: Vec<JoinHandle<()>>,
}

/// What [`Executor::shutdown`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Tasks dropped unfinished by `shutdown` itself.
    pub dropped: usize,
    /// Workers still inside a poll when the timeout ran out; each drops its task when that
    /// poll returns, then exits.
    pub busy_workers: usize,
}

thread_local! {
    /// The executor whose worker this thread is, or that [`Executor::enter`] entered.
    static CURRENT: RefCell<Option<Executor>> = const { RefCell::new(None) };
    /// The executor this thread works for (its `Shared`'s address), if it is a worker.
    static WORKER_OF: Cell<usize> = const { Cell::new(0) };
}

impl Executor {
    /// An executor with the [`Builder`]'s defaults.
    ///
    /// # Errors
    ///
    /// As [`Builder::build`].
    pub fn new() -> io::Result<Self> {
        Builder::new().build()
    }

    /// The executor running the current task, or entered with [`enter`](Self::enter).
    pub fn current() -> Option<Self> {
        CURRENT.with(|current| current.borrow().clone())
    }

    /// The executor's name, as given to [`Builder::name`].
    pub fn name(&self) -> &'static str {
        self.shared.name
    }

    /// Runs `future` to completion on the workers.
    ///
    /// # Errors
    ///
    /// [`SpawnError`] naming the executor once it has shut down; the future is dropped.
    pub fn spawn<F>(&self, future: F) -> Result<(), SpawnError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn_boxed(Box::pin(future))
    }

    fn spawn_boxed(&self, future: BoxFuture) -> Result<(), SpawnError> {
        let mut state = self.shared.lock();
        if state.closed {
            drop(state);
            // Dropped with no lock held: its destructor may use the executor.
            drop(future);
            return Err(SpawnError::new(self.shared.name, "it has shut down"));
        }
        let id = state.next_id;
        state.next_id += 1;
        let task = Arc::new(Task::new(id, self.shared.clone(), future));
        state.live.insert(id, task.clone());
        state.queue.push_back(task);
        drop(state);
        self.shared.work.notify_one();
        Ok(())
    }

    /// Calls `f` with this executor as [`current`](Self::current), so that [`sleep`](crate::sleep)
    /// finds its timer on a thread that is not one of the workers (the bridge polls a
    /// future once on the event loop's thread before handing it over).
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        /// Puts the previous executor back, also when `f` panics.
        struct Restore(Option<Executor>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                CURRENT.with(|current| *current.borrow_mut() = previous);
            }
        }
        let previous = CURRENT.with(|current| current.borrow_mut().replace(self.clone()));
        let _restore = Restore(previous);
        f()
    }

    /// Stops the executor: refuses new tasks, stops the workers and the timer, and drops
    /// every task that has not finished, on this thread.
    ///
    /// Workers finish the poll they are in; `shutdown` waits up to `timeout` for them. A
    /// worker still polling after that drops its task itself when the poll returns. Called
    /// from a task, it does not wait for its own worker. A second call does nothing.
    ///
    /// Each pending future of the bridge dropped here ends its conversion: the Python side
    /// raises `RuntimeError: the Rust future was dropped by the NAME runtime ...`.
    pub fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let deadline = Instant::now() + timeout;
        let (tasks, workers) = {
            let mut state = self.shared.lock();
            if state.closed {
                return ShutdownReport::default();
            }
            state.closed = true;
            // Every queued task is also in `live`: clearing the queue drops no future here.
            state.queue.clear();
            (
                std::mem::take(&mut state.live),
                std::mem::take(&mut state.workers),
            )
        };
        self.shared.work.notify_all();

        let own = usize::from(WORKER_OF.with(Cell::get) == Arc::as_ptr(&self.shared) as usize);
        let mut state = self.shared.lock();
        while state.workers_running > own {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = self
                .shared
                .exited
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let busy_workers = state.workers_running.saturating_sub(own);
        drop(state);
        for worker in workers {
            // The others are still polling (or are this thread): they exit on their own.
            if worker.is_finished() {
                let _ = worker.join();
            }
        }
        // Only now: the polls the workers finished above may still have set timers.
        self.shared.timer.shutdown();

        // Inside `enter`, so that destructors that look for the executor find it.
        let dropped = self.enter(|| {
            tasks
                .into_values()
                .filter_map(|task| task.cancel())
                .map(drop)
                .count()
        });
        ShutdownReport {
            dropped,
            busy_workers,
        }
    }
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

/// What the bridge needs: spawn, enter, name.
impl Spawner for Executor {
    fn spawn(&self, future: BoxFuture) -> Result<(), SpawnError> {
        self.spawn_boxed(future)
    }

    fn enter(&self, f: &mut dyn FnMut()) {
        Executor::enter(self, f)
    }

    fn name(&self) -> &'static str {
        self.shared.name
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic never happens while the lock is held (no user code runs under it).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts a woken task at the back of the run queue; after shutdown the task is left
    /// alone (shutdown drops it).
    pub(crate) fn enqueue(&self, task: Arc<Task>) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        state.queue.push_back(task);
        drop(state);
        self.work.notify_one();
    }

    /// Forgets a task that finished.
    pub(crate) fn finished(&self, id: u64) {
        let task = self.lock().live.remove(&id);
        // The task holds an `Arc<Shared>`: let it go with no lock held.
        drop(task);
    }
}

/// A worker thread: polls queued tasks until shutdown.
fn work(shared: Arc<Shared>) {
    /// Counts the worker out even if a task's destructor panics.
    struct Exit<'a>(&'a Shared);
    impl Drop for Exit<'_> {
        fn drop(&mut self) {
            CURRENT.with(|current| current.borrow_mut().take());
            self.0.lock().workers_running -= 1;
            self.0.exited.notify_all();
        }
    }
    let _exit = Exit(&shared);
    WORKER_OF.with(|worker_of| worker_of.set(Arc::as_ptr(&shared) as usize));
    CURRENT.with(|current| {
        *current.borrow_mut() = Some(Executor {
            shared: shared.clone(),
        })
    });
    loop {
        let task = {
            let mut state = shared.lock();
            loop {
                if state.closed {
                    return;
                }
                if let Some(task) = state.queue.pop_front() {
                    break task;
                }
                state = shared.work.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        };
        task.run();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::mpsc;

    use super::*;
    use crate::{sleep, yield_now};

    const PATIENCE: Duration = Duration::from_secs(10);

    /// Sets its flag when dropped.
    struct DropFlag(Arc<AtomicBool>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn executor(workers: usize) -> Executor {
        Builder::new()
            .name("test-pool")
            .workers(workers)
            .build()
            .unwrap()
    }

    #[test]
    fn runs_futures_on_its_workers() {
        let executor = executor(2);
        let (tx, rx) = mpsc::channel();
        for i in 0..10 {
            let tx = tx.clone();
            executor
                .spawn(async move {
                    yield_now().await;
                    let thread = thread::current().name().unwrap().to_owned();
                    tx.send((i, thread)).unwrap();
                })
                .unwrap();
        }
        let mut seen: Vec<_> = (0..10)
            .map(|_| rx.recv_timeout(PATIENCE).unwrap())
            .collect();
        seen.sort();
        assert_eq!(
            seen.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        assert!(
            seen.iter()
                .all(|(_, thread)| thread.starts_with("test-pool-worker-"))
        );
        assert_eq!(executor.shutdown(PATIENCE), ShutdownReport::default());
    }

    #[test]
    fn a_task_woken_while_polled_is_polled_again() {
        // `yield_now` wakes the task from inside its own poll: the worker sees the wake-up
        // after the poll and queues the task again. One worker, so nothing else polls it.
        let executor = executor(1);
        let (tx, rx) = mpsc::channel();
        executor
            .spawn(async move {
                for _ in 0..1000 {
                    yield_now().await;
                }
                tx.send(()).unwrap();
            })
            .unwrap();
        rx.recv_timeout(PATIENCE).unwrap();
        executor.shutdown(PATIENCE);
    }

    #[test]
    fn wakes_from_other_threads_reach_the_task() {
        let executor = executor(2);
        let (tx, rx) = mpsc::channel();
        let count = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            let (tx, count) = (tx.clone(), count.clone());
            executor
                .spawn(async move {
                    sleep(Duration::from_millis(1)).await;
                    if count.fetch_add(1, Ordering::SeqCst) == 99 {
                        tx.send(()).unwrap();
                    }
                })
                .unwrap();
        }
        rx.recv_timeout(PATIENCE).unwrap();
        executor.shutdown(PATIENCE);
    }

    #[test]
    fn a_panicking_task_leaves_the_worker_running() {
        let executor = executor(1);
        let (tx, rx) = mpsc::channel();
        executor
            .spawn(async { panic!("a task panicked on purpose") })
            .unwrap();
        executor.spawn(async move { tx.send(()).unwrap() }).unwrap();
        rx.recv_timeout(PATIENCE).unwrap();
        executor.shutdown(PATIENCE);
    }

    #[test]
    fn shutdown_drops_pending_tasks_and_refuses_new_ones() {
        let executor = executor(2);
        let flags: Vec<_> = (0..3).map(|_| Arc::new(AtomicBool::new(false))).collect();
        let (polled_tx, polled_rx) = mpsc::channel();
        for flag in &flags {
            let guard = DropFlag(flag.clone());
            let polled_tx = polled_tx.clone();
            executor
                .spawn(async move {
                    let _guard = guard;
                    polled_tx.send(()).unwrap();
                    std::future::pending::<()>().await;
                })
                .unwrap();
        }
        for _ in &flags {
            polled_rx.recv_timeout(PATIENCE).unwrap();
        }
        assert!(flags.iter().all(|flag| !flag.load(Ordering::SeqCst)));

        let report = executor.shutdown(PATIENCE);
        assert_eq!(
            report,
            ShutdownReport {
                dropped: 3,
                busy_workers: 0
            }
        );
        assert!(flags.iter().all(|flag| flag.load(Ordering::SeqCst)));

        let refused = DropFlag(Arc::new(AtomicBool::new(false)));
        let refused_flag = refused.0.clone();
        let error = executor.spawn(async move { drop(refused) }).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the test-pool runtime could not run the future: it has shut down"
        );
        assert!(
            refused_flag.load(Ordering::SeqCst),
            "a refused future is dropped"
        );
        assert_eq!(executor.shutdown(PATIENCE), ShutdownReport::default());
    }

    #[test]
    fn shutdown_drops_sleeping_tasks() {
        let executor = executor(1);
        let flag = Arc::new(AtomicBool::new(false));
        let guard = DropFlag(flag.clone());
        let (tx, rx) = mpsc::channel();
        executor
            .spawn(async move {
                let _guard = guard;
                tx.send(()).unwrap();
                sleep(Duration::from_secs(3600)).await;
            })
            .unwrap();
        rx.recv_timeout(PATIENCE).unwrap();
        let started = Instant::now();
        assert_eq!(executor.shutdown(PATIENCE).dropped, 1);
        assert!(started.elapsed() < PATIENCE);
        assert!(flag.load(Ordering::SeqCst));
    }

    #[test]
    fn a_worker_busy_past_the_timeout_drops_its_task_when_the_poll_returns() {
        let executor = executor(1);
        let flag = Arc::new(AtomicBool::new(false));
        let guard = DropFlag(flag.clone());
        let (tx, rx) = mpsc::channel();
        executor
            .spawn(async move {
                let _guard = guard;
                tx.send(()).unwrap();
                // Blocks its worker: a poll that takes long.
                thread::sleep(Duration::from_millis(300));
                std::future::pending::<()>().await;
            })
            .unwrap();
        rx.recv_timeout(PATIENCE).unwrap();
        let report = executor.shutdown(Duration::from_millis(10));
        assert_eq!(
            report,
            ShutdownReport {
                dropped: 0,
                busy_workers: 1
            }
        );
        let deadline = Instant::now() + PATIENCE;
        while !flag.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "the worker never dropped its task"
            );
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn shutdown_from_a_task_does_not_wait_for_its_own_worker() {
        let executor = executor(1);
        let (tx, rx) = mpsc::channel();
        let handle = executor.clone();
        executor
            .spawn(async move {
                let started = Instant::now();
                let report = handle.shutdown(PATIENCE);
                tx.send((report, started.elapsed())).unwrap();
            })
            .unwrap();
        let (report, took) = rx.recv_timeout(PATIENCE).unwrap();
        assert_eq!(report.busy_workers, 0);
        assert!(took < PATIENCE);
    }

    #[test]
    fn enter_sets_the_current_executor_and_restores_the_previous_one() {
        let outer = executor(1);
        let inner = Builder::new().name("inner").workers(1).build().unwrap();
        assert!(Executor::current().is_none());
        outer.enter(|| {
            assert_eq!(Executor::current().unwrap().name(), "test-pool");
            inner.enter(|| assert_eq!(Executor::current().unwrap().name(), "inner"));
            assert_eq!(Executor::current().unwrap().name(), "test-pool");
        });
        assert!(Executor::current().is_none());
        outer.shutdown(PATIENCE);
        inner.shutdown(PATIENCE);
    }

    #[test]
    fn is_a_spawner() {
        let executor = executor(1);
        let spawner: &dyn Spawner = &executor;
        assert_eq!(spawner.name(), "test-pool");
        let (tx, rx) = mpsc::channel();
        spawner
            .spawn(Box::pin(async move { tx.send(7).unwrap() }))
            .unwrap();
        assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), 7);
        let mut entered = None;
        spawner.enter(&mut || entered = Executor::current().map(|e| e.name()));
        assert_eq!(entered, Some("test-pool"));
        executor.shutdown(PATIENCE);
        let error = spawner.spawn(Box::pin(async {})).unwrap_err();
        assert_eq!(error.runtime(), "test-pool");
    }
}
