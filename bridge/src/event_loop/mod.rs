//! Per-event-loop state: the wake queue and the signal that wakes the Python loop.
//!
//! Every Python event loop that hosts a conversion gets one [`LoopShared`]. Producers on
//! any thread [`queue`](LoopShared::queue) items onto its lock-free wake queue without
//! the GIL; only the push that finds no signal pending writes one byte to an eventfd (a
//! pipe off Linux) that the loop watches with `loop.add_reader`. The loop thread then runs
//! [`LoopWakeup`], which drains the whole queue and resumes each item in one go. Loops
//! without `add_reader` (Windows' proactor) fall back to one `call_soon_threadsafe` per
//! burst, which needs the GIL on the signalling thread.

pub(crate) mod inline_drain;
pub(crate) mod registry;
pub(crate) mod signal;
pub(crate) mod waker;

use std::sync::Arc;
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3_aio_core::Signal;
use pyo3_aio_core::loop_queue::{LoopQueue, Push};
use pyo3_aio_core::wake_queue::Drain;

use crate::sync::lock;

use crate::event_loop::inline_drain::INLINE_DRAIN;
use crate::event_loop::registry::DrainSoon;
use crate::event_loop::signal::Wakeup;

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

/// The shared state of one event loop; producers hold it through `Arc`, so the eventfd
/// outlives every producer that might still write to it.
pub(crate) struct LoopShared {
    /// The wake queue and the `closed` flag, set once the loop can no longer drain: later
    /// items are handed back at once.
    queue: LoopQueue<LoopItem>,
    wakeup: std::sync::OnceLock<Wakeup>,
    /// The loop's thread, and for an asyncio loop what `signal_from_loop_thread` needs. Set
    /// when the wake-up is installed (on the loop thread).
    loop_thread: std::sync::OnceLock<LoopThread>,
    /// Conversions bound to this loop that may still be pending, released when it closes.
    pending: Mutex<Pending>,
    /// The fork generation this state was made in. In a forked child the loop's eventfd is
    /// the parent's too, and the loop thread does not exist: nothing is queued or signalled
    /// there (see [`LoopShared::queue`]).
    generation: usize,
}

/// The loop's thread, as [`LoopShared`] knows it once the wake-up is installed.
pub(crate) struct LoopThread {
    id: std::thread::ThreadId,
    /// An asyncio loop's: a weak reference to the loop and a drain callback that does not
    /// keep the state alive, for a `call_soon` from the loop thread. `None` for a framework
    /// that is woken through the descriptor alone (trio).
    call_soon: Option<(Py<PyAny>, Py<DrainSoon>)>,
}

/// The conversions a loop must release when it closes, held weakly: a finished one's
/// entry is dead and is swept out when the list has doubled since the last sweep.
pub(crate) struct Pending {
    targets: Vec<std::sync::Weak<dyn Resume>>,
    sweep_at: usize,
}

impl Pending {
    const FIRST_SWEEP: usize = 64;

    pub(crate) fn new() -> Self {
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
    pub(crate) fn queue(&self, item: LoopItem) -> bool {
        if !self.is_current() {
            // Inherited through fork: acts as a closed loop, without touching the
            // descriptor the parent still reads.
            if let LoopItem::Resume(target) = item {
                target.abandon();
            }
            return false;
        }
        // A round trip's wake-up from a callback that drains right after it: held for that
        // drain, off the queue (see `inline_drain`).
        let item = if self.queue.is_closed() {
            item
        } else {
            match INLINE_DRAIN.with(|inline| inline.hold(self, item)) {
                Some(item) => item,
                None => return true,
            }
        };
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
    pub(crate) fn close(&self) {
        discard(self.queue.close());
        let targets = std::mem::take(&mut lock(&self.pending).targets);
        if targets.is_empty() {
            return;
        }
        crate::forced_exit::attach(|py| {
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

    /// The state of a loop that watches the descriptor by itself (trio's drain task waits
    /// until it is readable), made on the loop's thread: `(state, descriptor to watch)`.
    /// Every wake from another thread writes the descriptor once per burst, without the
    /// GIL; the watcher calls [`clear_fd`](Self::clear_fd) then [`drain`](Self::drain).
    pub(crate) fn watched_fd() -> std::io::Result<(Arc<Self>, libc::c_int)> {
        let fd = signal::SignalFd::open()?;
        let read = fd.read_fd();
        let shared = Arc::new(Self::new());
        let _ = shared.wakeup.set(Wakeup::Fd(fd));
        crate::forced_exit::park_on_forced_exit();
        let _ = shared.loop_thread.set(LoopThread {
            id: crate::thread_bound::current_thread_id(),
            call_soon: None,
        });
        Ok((shared, read))
    }

    /// A state with no wake-up installed yet.
    pub(crate) fn new() -> Self {
        Self {
            queue: LoopQueue::new(),
            wakeup: std::sync::OnceLock::new(),
            loop_thread: std::sync::OnceLock::new(),
            pending: Mutex::new(Pending::new()),
            generation: pyo3_aio_core::fork::generation(),
        }
    }

    /// Whether the loop closed (nothing it was asked to run will run).
    pub(crate) fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Whether this state was made in this process (not inherited through fork).
    pub(crate) fn is_current(&self) -> bool {
        pyo3_aio_core::fork::is_current(self.generation)
    }

    /// Whether this is the loop's thread (known once its wake-up is installed).
    pub(crate) fn on_loop_thread(&self) -> bool {
        self.loop_thread
            .get()
            .is_some_and(|thread| thread.id == crate::thread_bound::current_thread_id())
    }

    /// Takes every queued item and resumes it. Runs on the loop thread.
    ///
    /// # Errors
    ///
    /// The first `KeyboardInterrupt`/`SystemExit` an item ran into, after every item has
    /// run: asyncio re-raises those from a callback (`Handle._run`), which is how Ctrl-C
    /// stops `run_until_complete`; swallowing one would lose the Ctrl-C.
    pub(crate) fn drain(&self, py: Python<'_>) -> PyResult<()> {
        self.drain_after_held(py, None, true)
    }

    /// Resumes `held`, the item an inline drain held back (see `inline_drain`), then, if
    /// `queued`, every queued item, as [`drain`](Self::drain) does. On a loop that closed
    /// meanwhile the held item is let go of, as the close does with queued ones.
    pub(crate) fn drain_after_held(
        &self,
        py: Python<'_>,
        held: Option<LoopItem>,
        queued: bool,
    ) -> PyResult<()> {
        let mut interrupt = None;
        if let Some(item) = held {
            if self.queue.is_closed() {
                discard_one(item);
            } else {
                resume_item(py, item, &mut interrupt);
            }
        }
        if queued {
            for item in self.queue.drain() {
                resume_item(py, item, &mut interrupt);
            }
        }
        interrupt.map_or(Ok(()), Err)
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

/// Queues `item` on the loop if its state still exists; otherwise the item is dropped here.
///
/// Returns `false` when the loop is gone or closed (see [`LoopShared::queue`]).
pub(crate) fn queue_on(shared: &LoopRef, item: LoopItem) -> bool {
    match shared.upgrade() {
        Some(shared) => shared.queue(item),
        None => false,
    }
}

/// Resumes one drained item; the first `KeyboardInterrupt`/`SystemExit` a call ran into is
/// kept in `interrupt` (see [`LoopShared::drain`]).
fn resume_item(py: Python<'_>, item: LoopItem, interrupt: &mut Option<PyErr>) {
    match item {
        LoopItem::Resume(target) => target.resume(py),
        LoopItem::Call(call) => {
            if let Err(error) = call(py) {
                interrupt.get_or_insert(error);
            }
        }
    }
}

/// Drops what was left queued on a closed loop; wake-ups let go of what they keep for it.
fn discard(left: Drain<LoopItem>) {
    left.for_each(discard_one);
}

/// Drops one item meant for a closed loop, as [`discard`] does.
fn discard_one(item: LoopItem) {
    if let LoopItem::Resume(target) = item {
        target.abandon();
    }
}
