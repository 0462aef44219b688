//! Per-event-loop state: the wake queue and the signal that wakes the Python loop.
//!
//! Every Python event loop that hosts a conversion gets one [`LoopShared`]. Producers on
//! any thread [`schedule`](LoopShared::schedule) items onto its lock-free wake queue without
//! the GIL; only the push that finds no signal pending writes one byte to an eventfd (a
//! pipe off Linux) that the loop watches with `loop.add_reader`. The loop thread then runs
//! [`LoopWakeup`], which drains the whole queue and resumes each item in one go. Loops
//! without `add_reader` (Windows' proactor) fall back to one `call_soon_threadsafe` per
//! burst, which needs the GIL on the signalling thread.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyNotImplementedError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;
use pyo3_aio_core::Signal;
use pyo3_aio_core::loop_queue::{LoopQueue, Push};
use pyo3_aio_core::wake_queue::Drain;

/// Work the loop thread does when it drains the queue.
pub(crate) trait Resume: Send + Sync {
    /// Runs on the loop thread, with the GIL, inside the drain.
    fn resume(self: Arc<Self>, py: Python<'_>);
    /// The loop closed with this wake-up still queued: nothing will resume it, so let go of
    /// what is kept for the loop (as when the loop refuses a wake-up). Any thread, no GIL.
    fn abandon(&self);
    /// The loop closed (or was collected) while this conversion was pending and
    /// [`tracked`](LoopShared::track): stop the Rust side, tell a Rust awaiter, and let go
    /// of everything kept for the loop. Runs where the loop's reader was released, with
    /// the GIL.
    fn loop_closed(&self, py: Python<'_>) {
        let _ = py;
        self.abandon();
    }
}

/// One item of a loop's wake queue.
pub(crate) enum LoopItem {
    /// Resume a waiting conversion (its result arrived, or its future was woken).
    Resume(Arc<dyn Resume>),
    /// Run a closure on the loop thread (schedule an awaitable from another thread). An
    /// error it returns is re-raised by the drain: only `KeyboardInterrupt`/`SystemExit`
    /// should be returned (see [`is_interrupt`]); report the others.
    Call(Box<dyn FnOnce(Python<'_>) -> PyResult<()> + Send>),
}

enum Wakeup {
    /// An eventfd (or the write end of a pipe) the loop reads through `add_reader`.
    Fd {
        write: libc::c_int,
        read: libc::c_int,
    },
    /// `loop.call_soon_threadsafe` and the drain callback, for loops without `add_reader`.
    Threadsafe {
        call_soon_threadsafe: Py<PyAny>,
        drain: Py<PyAny>,
    },
}

/// The shared state of one event loop; producers hold it through `Arc`, so the eventfd
/// outlives every producer that might still write to it.
pub(crate) struct LoopShared {
    /// The wake queue and the `closed` flag, set once the loop can no longer drain: later
    /// items are handed back at once.
    queue: LoopQueue<LoopItem>,
    wakeup: std::sync::OnceLock<Wakeup>,
    /// The loop's thread, a weak reference to the loop and a drain callback that does not
    /// keep this state alive: what `signal_from_loop_thread` needs. Set when the wake-up is
    /// installed (on the loop thread).
    soon: std::sync::OnceLock<(std::thread::ThreadId, Py<PyAny>, Py<DrainSoon>)>,
    /// Conversions bound to this loop that may still be pending, released when it closes.
    pending: Mutex<Pending>,
    /// The fork generation this state was made in. In a forked child the loop's eventfd is
    /// the parent's too, and the loop thread does not exist: nothing is queued or signalled
    /// there (see [`LoopShared::schedule`]).
    generation: usize,
}

/// The conversions a loop must release when it closes, held weakly: a finished one's
/// entry is dead and is swept out when the list has doubled since the last sweep.
struct Pending {
    targets: Vec<std::sync::Weak<dyn Resume>>,
    sweep_at: usize,
}

impl Pending {
    const FIRST_SWEEP: usize = 64;

    fn new() -> Self {
        Self {
            targets: Vec::new(),
            sweep_at: Self::FIRST_SWEEP,
        }
    }
}

impl LoopShared {
    /// Queues `item` for the loop thread, signalling the loop when the queue asks for it.
    ///
    /// Returns `false` when the loop closed: the item was dropped, and the caller should let
    /// go of the Python objects it keeps for the loop (nothing will resume it).
    pub(crate) fn schedule(&self, item: LoopItem) -> bool {
        if !self.is_current() {
            // Inherited through fork: acts as a closed loop, without touching the
            // descriptor the parent still reads.
            if let LoopItem::Resume(target) = item {
                target.abandon();
            }
            return false;
        }
        match self.queue.push(item) {
            Push::Queued(Signal::Needed) => self.signal(),
            Push::Queued(Signal::AlreadyPending) => {}
            Push::Closed(left) => {
                discard(left);
                return false;
            }
        }
        true
    }

    /// The loop closed (its reader callback was released): drop what is queued and refuse
    /// what comes, so that nothing waits forever on a loop that will not run again; every
    /// conversion still pending there is released (its Rust future dropped, a Rust
    /// awaiter told).
    fn close(&self) {
        discard(self.queue.close());
        let targets = std::mem::take(&mut lock(&self.pending).targets);
        if targets.is_empty() {
            return;
        }
        Python::attach(|py| {
            for target in targets {
                if let Some(target) = target.upgrade() {
                    target.loop_closed(py);
                }
            }
        });
    }

    /// Remembers a pending conversion bound to this loop, to release it if the loop closes
    /// first. On a loop already closed it is released at once.
    pub(crate) fn track(&self, py: Python<'_>, target: std::sync::Weak<dyn Resume>) {
        if self.queue.is_closed() {
            if let Some(target) = target.upgrade() {
                target.loop_closed(py);
            }
            return;
        }
        let mut pending = lock(&self.pending);
        if pending.targets.len() >= pending.sweep_at {
            pending.targets.retain(|target| target.strong_count() > 0);
            pending.sweep_at = (pending.targets.len() * 2).max(Pending::FIRST_SWEEP);
        }
        pending.targets.push(target);
    }

    fn signal(&self) {
        if self.signal_from_loop_thread() {
            return;
        }
        match self.wakeup.get() {
            Some(Wakeup::Fd { write, .. }) => {
                let one: u64 = 1;
                // SAFETY: `write` is an open descriptor owned by this LoopShared, which is
                // alive (we are borrowing it); the buffer is 8 valid bytes.
                let written = unsafe {
                    libc::write(
                        *write,
                        (&one as *const u64).cast(),
                        std::mem::size_of::<u64>(),
                    )
                };
                // EAGAIN means the counter/pipe is already full, so the loop is already
                // going to wake up; nothing else can be done without a Python thread.
                let _ = written;
            }
            Some(Wakeup::Threadsafe {
                call_soon_threadsafe,
                drain,
            }) => {
                let _ = Python::try_attach(|py| {
                    // A RuntimeError here means the loop is closed: nothing to wake.
                    let _ = call_soon_threadsafe.call1(py, (drain.clone_ref(py),));
                });
            }
            None => {}
        }
    }

    /// Empties the eventfd/pipe, so the loop's reader stops firing. The reader callback
    /// does this before draining: a push after the clear signals again.
    fn clear_fd(&self) {
        if let Some(Wakeup::Fd { read, .. }) = self.wakeup.get() {
            let mut buffer = [0u8; 64];
            // SAFETY: `read` is open for as long as `self` lives; the buffer is writable.
            // Non-blocking: an empty eventfd/pipe returns EAGAIN at once.
            let _ = unsafe { libc::read(*read, buffer.as_mut_ptr().cast(), buffer.len()) };
        }
    }

    /// On the loop's own thread with the GIL held (a Python task completed what a Rust
    /// future waits for), `loop.call_soon(drain)` wakes the loop for its next iteration
    /// without an eventfd write, a read and an extra trip through the selector.
    fn signal_from_loop_thread(&self) -> bool {
        let Some((_, event_loop, drain)) = self.soon.get() else {
            return false;
        };
        if !self.on_loop_thread() || !gil_held() {
            return false;
        }
        if INLINE_DRAIN.with(|inline| inline.claim(self)) {
            return true;
        }
        // SAFETY: PyGILState_Check just said this thread holds the GIL.
        let py = unsafe { Python::assume_attached() };
        let Ok(event_loop) = event_loop.bind(py).call0() else {
            return false;
        };
        !event_loop.is_none()
            && event_loop
                .call_method1(pyo3::intern!(py, "call_soon"), (drain.bind(py),))
                .is_ok()
    }

    /// Whether this state was made in this process (not inherited through fork).
    fn is_current(&self) -> bool {
        pyo3_aio_core::fork::is_current(self.generation)
    }

    /// Whether this is the loop's thread (known once its wake-up is installed).
    fn on_loop_thread(&self) -> bool {
        self.soon
            .get()
            .is_some_and(|(thread, _, _)| *thread == std::thread::current().id())
    }

    /// Takes every queued item and resumes it. Runs on the loop thread.
    ///
    /// # Errors
    ///
    /// The first `KeyboardInterrupt`/`SystemExit` an item ran into, after every item has
    /// run: asyncio re-raises those from a callback (`Handle._run`), which is how Ctrl-C
    /// stops `run_until_complete`; swallowing one would lose the Ctrl-C.
    pub(crate) fn drain(&self, py: Python<'_>) -> PyResult<()> {
        let mut interrupt = None;
        for item in self.queue.drain() {
            match item {
                LoopItem::Resume(target) => target.resume(py),
                LoopItem::Call(call) => {
                    if let Err(error) = call(py) {
                        interrupt.get_or_insert(error);
                    }
                }
            }
        }
        interrupt.map_or(Ok(()), Err)
    }
}

impl Drop for LoopShared {
    fn drop(&mut self) {
        if let Some(Wakeup::Fd { write, read }) = self.wakeup.get() {
            // No producer can write any more: they all held an `Arc` to this LoopShared.
            close_fds(*write, *read);
        }
    }
}

/// A producer's handle on a loop's shared state. It is weak so that items queued for a loop
/// that no longer drains (stopped and closed) do not keep that state, and through it
/// themselves, alive forever: the state lives as long as the loop's reader registration and
/// the registry entry, both tied to the loop.
pub(crate) type LoopRef = std::sync::Weak<LoopShared>;

/// Runs `work` right here if this is the loop's own thread and it holds the GIL (Python
/// work for the loop needs no trip through the queue then); returns `work` back otherwise.
pub(crate) fn run_if_attached_here<W: FnOnce(Python<'_>)>(shared: &LoopRef, work: W) -> Option<W> {
    if !is_loop_thread(shared) || !gil_held() {
        return Some(work);
    }
    // SAFETY: gil_held just said this thread holds the GIL.
    work(unsafe { Python::assume_attached() });
    None
}

/// Whether the loop of `shared` runs on this thread.
pub(crate) fn is_loop_thread(shared: &LoopRef) -> bool {
    shared
        .upgrade()
        .is_some_and(|shared| shared.on_loop_thread())
}

/// Whether this thread holds the GIL.
pub(crate) fn gil_held() -> bool {
    // SAFETY: PyGILState_Check only reads this thread's state.
    unsafe { pyo3::ffi::PyGILState_Check() == 1 }
}

/// Drops what was left queued on a closed loop; wake-ups let go of what they keep for it.
fn discard(left: Drain<LoopItem>) {
    for item in left {
        if let LoopItem::Resume(target) = item {
            target.abandon();
        }
    }
}

/// Queues `item` on the loop if its state still exists; otherwise the item is dropped here.
///
/// Returns `false` when the loop is gone or closed (see [`LoopShared::schedule`]).
pub(crate) fn schedule_on(shared: &LoopRef, item: LoopItem) -> bool {
    match shared.upgrade() {
        Some(shared) => shared.schedule(item),
        None => false,
    }
}

/// The loop whose queue a top-level callback on this thread will drain when it returns
/// (see [`drain_after`]), and whether something was queued for it meanwhile.
struct InlineDrain {
    armed: Cell<*const LoopShared>,
    pending: Cell<bool>,
}

impl InlineDrain {
    /// Takes a signal for `shared` if a callback armed for it runs on this thread.
    fn claim(&self, shared: &LoopShared) -> bool {
        let mine = std::ptr::eq(self.armed.get(), shared);
        if mine {
            self.pending.set(true);
        }
        mine
    }
}

thread_local! {
    static INLINE_DRAIN: InlineDrain = const {
        InlineDrain {
            armed: Cell::new(std::ptr::null()),
            pending: Cell::new(false),
        }
    };
}

/// Runs `body`, a callback the loop of `shared` called at the top level (not inside a task
/// step or a drain), and drains that loop's queue right after it if `body` queued
/// something there, instead of scheduling the drain for the next loop iteration.
///
/// This is for the done-callback of a Python task a Rust future waits for: the future's
/// task resumes in the same iteration, as an asyncio task awaiting a task does (asyncio
/// schedules the awaiting task's wake-up as the done-callback; here the done-callback is
/// ours and resumes it directly). Wakes that happen during the drain itself are not
/// drained inline: they take the usual `call_soon`, so one callback cannot run the loop's
/// work unboundedly.
pub(crate) fn drain_after(py: Python<'_>, shared: &LoopRef, body: impl FnOnce()) -> PyResult<()> {
    let Some(shared) = shared.upgrade() else {
        body();
        return Ok(());
    };
    let armed = INLINE_DRAIN.with(|inline| {
        if !inline.armed.get().is_null() {
            return false;
        }
        inline.armed.set(Arc::as_ptr(&shared));
        inline.pending.set(false);
        true
    });
    if !armed {
        body();
        return Ok(());
    }
    /// Disarms; if `body` unwound after claiming a signal, signals the usual way so the
    /// queued item is not stranded.
    struct Disarm<'a>(&'a LoopShared);
    impl Disarm<'_> {
        fn take_pending(&self) -> bool {
            INLINE_DRAIN.with(|inline| {
                inline.armed.set(std::ptr::null());
                inline.pending.replace(false)
            })
        }
    }
    impl Drop for Disarm<'_> {
        fn drop(&mut self) {
            if self.take_pending() {
                self.0.signal();
            }
        }
    }
    let disarm = Disarm(&shared);
    body();
    let pending = disarm.take_pending();
    drop(disarm);
    if pending {
        shared.drain(py)?;
    }
    Ok(())
}

/// The `call_soon` callback of `signal_from_loop_thread`: drains the loop's queue if the
/// state still exists (it holds it weakly, so the state does not keep itself alive).
#[pyclass(frozen, name = "_DrainSoon", module = "pyo3_aio")]
pub(crate) struct DrainSoon {
    shared: std::sync::Weak<LoopShared>,
}

#[pymethods]
impl DrainSoon {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        match self.shared.upgrade() {
            Some(shared) => shared.drain(py),
            None => Ok(()),
        }
    }
}

/// The `add_reader` callback: drains the loop's queue.
#[pyclass(frozen, name = "_LoopWakeup", module = "pyo3_aio")]
pub(crate) struct LoopWakeup {
    shared: Arc<LoopShared>,
    /// This is the object registered with `add_reader`: when the loop releases it (it
    /// closed its selector), the loop will not drain again.
    reader: bool,
}

impl Drop for LoopWakeup {
    fn drop(&mut self) {
        if self.reader {
            self.shared.close();
        }
    }
}

#[pymethods]
impl LoopWakeup {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        self.shared.clear_fd();
        self.shared.drain(py)
    }
}

fn open_signal_fd() -> std::io::Result<(libc::c_int, libc::c_int)> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: plain syscall with constant flags.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((fd, fd))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let (read, write) = nonblocking_pipe()?;
        Ok((write, read))
    }
}

/// A pipe whose both ends are non-blocking and close-on-exec: `(read, write)`.
pub(crate) fn nonblocking_pipe() -> std::io::Result<(libc::c_int, libc::c_int)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe() writes.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    for fd in fds {
        // SAFETY: `fd` was just opened by pipe().
        unsafe {
            libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK);
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
    Ok((fds[0], fds[1]))
}

/// Closes both ends of a signal fd or pipe (one descriptor when they are the same).
pub(crate) fn close_fds(write: libc::c_int, read: libc::c_int) {
    // SAFETY: callers pass descriptors they opened (`open_signal_fd`, `nonblocking_pipe`)
    // and that nothing will use any more.
    unsafe {
        libc::close(write);
        if read != write {
            libc::close(read);
        }
    }
}

fn create(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> PyResult<Arc<LoopShared>> {
    let shared = Arc::new(LoopShared {
        queue: LoopQueue::new(),
        wakeup: std::sync::OnceLock::new(),
        soon: std::sync::OnceLock::new(),
        pending: Mutex::new(Pending::new()),
        generation: pyo3_aio_core::fork::generation(),
    });
    let drain = Bound::new(
        py,
        LoopWakeup {
            shared: shared.clone(),
            reader: true,
        },
    )?;
    let (write, read) = open_signal_fd()?;
    let on_loop_thread = runs_here(py, event_loop)?;
    if !on_loop_thread {
        let register = Bound::new(
            py,
            Register {
                shared: shared.clone(),
                event_loop: event_loop.clone().unbind(),
                drain: drain.unbind(),
                fds: (write, read),
            },
        )?;
        event_loop.call_method1(pyo3::intern!(py, "call_soon_threadsafe"), (register,))?;
        return Ok(shared);
    }
    install(py, &shared, event_loop, &drain, write, read)?;
    Ok(shared)
}

/// Sets up the wake-up of a loop first contacted from another thread, on the loop's own
/// thread (registering a reader is not thread-safe for every loop), then drains what was
/// queued meanwhile.
#[pyclass(frozen, name = "_RegisterWakeup", module = "pyo3_aio")]
struct Register {
    shared: Arc<LoopShared>,
    event_loop: Py<PyAny>,
    drain: Py<LoopWakeup>,
    fds: (libc::c_int, libc::c_int),
}

#[pymethods]
impl Register {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        install(
            py,
            &self.shared,
            self.event_loop.bind(py),
            self.drain.bind(py),
            self.fds.0,
            self.fds.1,
        )?;
        self.shared.drain(py)
    }
}

fn install(
    py: Python<'_>,
    shared: &Arc<LoopShared>,
    event_loop: &Bound<'_, PyAny>,
    drain: &Bound<'_, LoopWakeup>,
    write: libc::c_int,
    read: libc::c_int,
) -> PyResult<()> {
    let weak_loop = py.import("weakref")?.getattr("ref")?.call1((event_loop,))?;
    let drain_soon = Py::new(
        py,
        DrainSoon {
            shared: Arc::downgrade(shared),
        },
    )?;
    let _ = shared
        .soon
        .set((std::thread::current().id(), weak_loop.unbind(), drain_soon));
    match event_loop.call_method1(pyo3::intern!(py, "add_reader"), (read, drain)) {
        Ok(_) => {
            let _ = shared.wakeup.set(Wakeup::Fd { write, read });
        }
        Err(error) if error.is_instance_of::<PyNotImplementedError>(py) => {
            close_fds(write, read);
            let call_soon_threadsafe =
                event_loop.getattr(pyo3::intern!(py, "call_soon_threadsafe"))?;
            let _ = shared.wakeup.set(Wakeup::Threadsafe {
                call_soon_threadsafe: call_soon_threadsafe.unbind(),
                drain: drain.clone().into_any().unbind(),
            });
        }
        Err(error) => {
            close_fds(write, read);
            return Err(error);
        }
    }
    Ok(())
}

thread_local! {
    /// The last loop this thread looked up, held strongly so its address cannot be reused
    /// by another loop while cached.
    static LAST: RefCell<Option<(Py<PyAny>, Arc<LoopShared>)>> = const { RefCell::new(None) };
}

/// Per-process state kept with the GIL: made again in a forked child, where the
/// parent's entries (loops that do not run there, their eventfds) must not be found.
///
/// Its lock is only taken with the GIL held, never across a Python call, so no other thread
/// holds it when `os.fork()` (which holds the GIL) forks.
struct PerProcess<T>(Mutex<Option<(usize, Py<T>)>>);

impl<T> PerProcess<T> {
    const fn new() -> Self {
        Self(Mutex::new(None))
    }

    fn get_or_try_init<'py>(
        &self,
        py: Python<'py>,
        init: impl FnOnce() -> PyResult<Py<T>>,
    ) -> PyResult<Bound<'py, T>> {
        let generation = pyo3_aio_core::fork::generation();
        let mut slot = lock(&self.0);
        if let Some((made_in, value)) = slot.as_ref()
            && *made_in == generation
        {
            return Ok(value.bind(py).clone());
        }
        let value = init()?;
        let bound = value.bind(py).clone();
        // The parent's value (if any) is only this process's copy of it: dropping it here
        // releases the child's references, nothing of the parent's.
        let old = slot.replace((generation, value));
        drop(slot);
        drop(old);
        Ok(bound)
    }
}

/// `weakref.WeakKeyDictionary` from loop to its `_LoopWakeup`: an entry lives as long as
/// its loop does.
static REGISTRY: PerProcess<PyAny> = PerProcess::new();

fn registry(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    REGISTRY.get_or_try_init(py, || {
        Ok(py
            .import("weakref")?
            .getattr("WeakKeyDictionary")?
            .call0()?
            .unbind())
    })
}

/// The shared state of `event_loop`, created (and registered with the loop) on first use.
/// Must be called on the loop's own thread.
pub(crate) fn loop_shared(
    py: Python<'_>,
    event_loop: &Bound<'_, PyAny>,
) -> PyResult<Arc<LoopShared>> {
    let cached = LAST.with(|last| {
        last.borrow()
            .as_ref()
            .filter(|(cached, shared)| {
                cached.as_ptr() == event_loop.as_ptr() && shared.is_current()
            })
            .map(|(_, shared)| shared.clone())
    });
    if let Some(shared) = cached {
        return Ok(shared);
    }
    let registry = registry(py)?;
    let known = match registry.get_item(event_loop) {
        Ok(wakeup) => Some(wakeup),
        Err(_) => fallback_registry(py)?.get_item(event_loop)?,
    };
    let shared = match known {
        Some(wakeup) => wakeup.cast_into::<LoopWakeup>()?.get().shared.clone(),
        None => {
            let shared = create(py, event_loop)?;
            let wakeup = Bound::new(
                py,
                LoopWakeup {
                    shared: shared.clone(),
                    reader: false,
                },
            )?;
            if registry.set_item(event_loop, &wakeup).is_err() {
                // A loop that cannot be weakly referenced: keep it in a plain dict.
                fallback_registry(py)?.set_item(event_loop, wakeup)?;
            }
            shared
        }
    };
    let old = LAST.with(|last| {
        last.borrow_mut()
            .replace((event_loop.clone().unbind(), shared.clone()))
    });
    drop(old);
    Ok(shared)
}

static FALLBACK: PerProcess<PyDict> = PerProcess::new();

fn fallback_registry(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    FALLBACK.get_or_try_init(py, || Ok(PyDict::new(py).unbind()))
}

/// Every loop that hosted a conversion and is running now (for `into_future` called from a
/// thread that has no loop of its own).
pub(crate) fn running_loops<'py>(py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let mut running = Vec::new();
    for event_loop in registry(py)?.try_iter()? {
        let event_loop = event_loop?;
        if event_loop.call_method0("is_running")?.is_truthy()? {
            running.push(event_loop);
        }
    }
    for event_loop in fallback_registry(py)?.keys() {
        if event_loop.call_method0("is_running")?.is_truthy()? {
            running.push(event_loop);
        }
    }
    Ok(running)
}

thread_local! {
    /// The loop this thread last registered as its running loop, and how to ask it cheaply
    /// whether it still runs.
    static REGISTERED: RefCell<Option<Registered>> = const { RefCell::new(None) };
}

/// What `register_running_loop` remembers of the loop it last registered on this thread.
struct Registered {
    event_loop: Py<PyAny>,
    still_running: StillRunning,
    /// What asyncio's C accelerator kept in the thread state's dict for the running loop
    /// when it was registered (a holder object made by each `_set_running_loop` on 3.9 to
    /// 3.11, the loop itself on 3.12), held so its address cannot be reused. While the
    /// dict still holds this very object, the running loop is the registered one.
    marker: Option<Py<PyAny>>,
    /// The fork generation of the registration: a forked child registers afresh (the
    /// parent's loop may still look running there, its `_thread_id` copied).
    generation: usize,
}

/// The thread state dict's entry for the running loop, where asyncio's C accelerator keeps
/// it (`None` where it does not: pure-Python asyncio, later CPythons).
fn running_loop_marker(py: Python<'_>) -> Option<Bound<'_, PyAny>> {
    #[cfg(not(Py_LIMITED_API))]
    {
        let key = pyo3::intern!(py, "__asyncio_running_event_loop__");
        // SAFETY: the GIL is held (`py`); PyThreadState_GetDict returns a borrowed dict (or
        // NULL), and PyDict_GetItemWithError a borrowed value (or NULL), which we turn into
        // a new reference before anything else runs.
        unsafe {
            let dict = pyo3::ffi::PyThreadState_GetDict();
            if dict.is_null() {
                return None;
            }
            let value = pyo3::ffi::PyDict_GetItemWithError(dict, key.as_ptr());
            if value.is_null() {
                pyo3::ffi::PyErr_Clear();
                return None;
            }
            Some(Bound::from_borrowed_ptr(py, value))
        }
    }
    #[cfg(Py_LIMITED_API)]
    {
        let _ = py;
        None
    }
}

/// How `register_running_loop` asks a cached loop whether it still runs.
#[derive(Clone, Copy)]
enum StillRunning {
    /// An asyncio `BaseEventLoop` whose `is_running` is the stock one (`_thread_id is not
    /// None`): read the attribute, without a Python-level call.
    ThreadId,
    /// Any other loop (uvloop's is a C method): call `is_running()`.
    Method,
}

impl StillRunning {
    fn of(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> Self {
        static STOCK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let stock = STOCK.get_or_try_init(py, || {
            Ok::<_, PyErr>(
                py.import("asyncio")?
                    .getattr("BaseEventLoop")?
                    .getattr("is_running")?
                    .unbind(),
            )
        });
        let is_stock = stock.is_ok_and(|stock| {
            event_loop
                .get_type()
                .getattr(pyo3::intern!(py, "is_running"))
                .is_ok_and(|method| method.is(stock.bind(py)))
        });
        if is_stock {
            StillRunning::ThreadId
        } else {
            StillRunning::Method
        }
    }

    fn check(self, py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> PyResult<bool> {
        match self {
            StillRunning::ThreadId => Ok(!event_loop
                .getattr(pyo3::intern!(py, "_thread_id"))?
                .is_none()),
            StillRunning::Method => event_loop
                .call_method0(pyo3::intern!(py, "is_running"))?
                .is_truthy(),
        }
    }
}

/// Registers the loop running on this thread (so that `into_future` called from other
/// threads finds it), cheaply when this thread already did so for a loop that still runs.
///
/// `asyncio._get_running_loop` costs a `getpid` system call on Python 3.11, more than a
/// whole ready await; asking the cached loop whether it still runs avoids it on the fast
/// path (and for asyncio's own loops, without a Python-level call). A thread runs one loop
/// at a time, so a still-running cached loop is this thread's (unless the loop moved to
/// another thread, which then only skips this registration).
pub(crate) fn register_running_loop(py: Python<'_>) -> PyResult<()> {
    let marker = running_loop_marker(py);
    // `Some(None)`: the marker shows the registered loop still runs; `Some(Some(..))`: ask it.
    let cached = REGISTERED.with(|cached| {
        let cached = cached.borrow();
        let registered = cached
            .as_ref()
            .filter(|registered| pyo3_aio_core::fork::is_current(registered.generation))?;
        if let (Some(now), Some(then)) = (&marker, &registered.marker)
            && now.is(then)
        {
            return Some(None);
        }
        Some(Some((
            registered.event_loop.clone_ref(py),
            registered.still_running,
        )))
    });
    match cached {
        Some(None) => return Ok(()),
        Some(Some((cached, still_running))) if still_running.check(py, cached.bind(py))? => {
            return Ok(());
        }
        _ => {}
    }
    if let Some(event_loop) = running_loop(py)? {
        loop_shared(py, &event_loop)?;
        let registered = Registered {
            still_running: StillRunning::of(py, &event_loop),
            event_loop: event_loop.unbind(),
            marker: marker.map(Bound::unbind),
            generation: pyo3_aio_core::fork::generation(),
        };
        let old = REGISTERED.with(|cached| cached.borrow_mut().replace(registered));
        drop(old);
    }
    Ok(())
}

/// Whether `event_loop` is the loop running on this thread.
pub(crate) fn runs_here(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(running_loop(py)?.is_some_and(|running| running.is(event_loop)))
}

/// `asyncio`'s C-level `_get_running_loop`, cached.
pub(crate) fn running_loop(py: Python<'_>) -> PyResult<Option<Bound<'_, PyAny>>> {
    static GET: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let get = GET.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("asyncio")?.getattr("_get_running_loop")?.unbind())
    })?;
    let event_loop = get.bind(py).call0()?;
    Ok((!event_loop.is_none()).then_some(event_loop))
}

/// Whether `error` must travel up to the loop instead of being reported: asyncio lets
/// `KeyboardInterrupt` and `SystemExit` escape callbacks and stop the loop.
pub(crate) fn is_interrupt(py: Python<'_>, error: &PyErr) -> bool {
    error.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py)
        || error.is_instance_of::<pyo3::exceptions::PySystemExit>(py)
}

/// `task.cancel()` from the drain; a failure goes to the task's loop's exception handler.
pub(crate) fn cancel_task(
    py: Python<'_>,
    task: &Bound<'_, PyAny>,
    msg: Option<&Py<PyAny>>,
    message: &str,
) {
    let cancel = pyo3::intern!(py, "cancel");
    let cancelled = match msg {
        Some(msg) => task.call_method1(cancel, (msg,)),
        None => task.call_method0(cancel),
    };
    if let Err(error) = cancelled {
        if let Ok(event_loop) = task.call_method0("get_loop") {
            report(py, &event_loop, message, error);
        }
    }
}

/// Reports an exception raised by a callback run from the drain, as asyncio reports
/// exceptions of callbacks (`loop.call_exception_handler`).
pub(crate) fn report(py: Python<'_>, event_loop: &Bound<'_, PyAny>, message: &str, error: PyErr) {
    let context = PyDict::new(py);
    let reported = context
        .set_item("message", message)
        .and_then(|()| context.set_item("exception", error.value(py)))
        .and_then(|()| event_loop.call_method1("call_exception_handler", (context,)));
    if let Err(error) = reported {
        error.write_unraisable(py, Some(event_loop));
    }
}

/// The body of every loop-bound waker's `wake_by_ref`: queues `target` for its loop unless
/// a wake-up is already queued (`queued`, cleared by the target's `resume`). When the loop
/// refuses it (closed or gone), the target abandons what it keeps for the loop.
pub(crate) fn wake_on_loop<T: Resume + 'static>(
    target: &Arc<T>,
    shared: &LoopRef,
    queued: &AtomicBool,
) {
    if claim(queued) && !schedule_on(shared, LoopItem::Resume(target.clone())) {
        target.abandon();
    }
}

/// A Python object a loop-bound waker keeps for the loop (the waiter to resolve, the task
/// to cancel), let go of when the loop refuses the wake-up: the object keeps the waker
/// alive (through a cell or a done-callback), so holding it for a loop that will never run
/// again would be a cycle nothing breaks.
pub(crate) struct Held<T>(Mutex<Option<Py<T>>>);

impl<T> Held<T> {
    pub(crate) fn new(object: Py<T>) -> Self {
        Self(Mutex::new(Some(object)))
    }

    /// A new reference to the object, unless it was released.
    pub(crate) fn get(&self, py: Python<'_>) -> Option<Py<T>> {
        let held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        held.as_ref().map(|object| object.clone_ref(py))
    }

    /// Lets go of the object (without the GIL, PyO3 defers the decrement).
    pub(crate) fn release(&self) {
        drop(self.take());
    }

    /// Takes the object out, unless it was released.
    pub(crate) fn take(&self) -> Option<Py<T>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Locks a mutex, recovering it from a panic elsewhere (nothing it guards is left half-done).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether a wake-up is already queued for a target; cleared by the target's `resume`.
fn claim(queued: &AtomicBool) -> bool {
    // AcqRel: the target's resume clears the flag before polling (Release), so a wake
    // that finds it clear is ordered after that poll started and must queue again.
    !queued.swap(true, Ordering::AcqRel)
}
