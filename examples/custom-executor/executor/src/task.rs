//! A task: one spawned future, its stage, and its waker.
//!
//! ```text
//!            woken                a worker pops it
//!   Idle -------------> Queued ----------------------> Running
//!    ^                    ^                             |    |
//!    |                    |     poll Pending            |    | woken
//!    +--------------------|-----------------------------+    v
//!                         +------- poll Pending ------- Notified
//!
//!   Running/Notified --poll Ready or panic--> Done
//!   any stage --shutdown--> Done          (wakes of a Done task do nothing)
//! ```
//!
//! The stage and the future share one `Mutex`, held only to read or move them, never
//! across a poll: the worker takes the future out to poll it and puts it back after. So a
//! wake-up during a poll only marks the task `Notified` (the worker queues it again when
//! the poll returns, and no two workers ever poll one task), and shutdown, finding the
//! future gone, marks the task `Done` and leaves the drop to the worker that has it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use pyo3_aio_core::spawn::BoxFuture;

use crate::executor::Shared;

pub(crate) struct Task {
    id: u64,
    executor: Arc<Shared>,
    slot: Mutex<Slot>,
}

struct Slot {
    stage: Stage,
    /// `None` while a worker polls it, and once the task is `Done`.
    future: Option<BoxFuture>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for a wake-up; held by its wakers and the executor's list of live tasks.
    Idle,
    /// In the run queue (or about to be put there by the thread that woke it).
    Queued,
    /// A worker polls it.
    Running,
    /// A worker polls it, and it was woken meanwhile: it goes back to the queue after.
    Notified,
    /// Finished, panicked, or dropped by shutdown.
    Done,
}

impl Task {
    /// A new task, `Queued`: the caller queues it.
    pub(crate) fn new(id: u64, executor: Arc<Shared>, future: BoxFuture) -> Self {
        Self {
            id,
            executor,
            slot: Mutex::new(Slot {
                stage: Stage::Queued,
                future: Some(future),
            }),
        }
    }

    fn slot(&self) -> MutexGuard<'_, Slot> {
        // No code of the task runs while the lock is held, so it is never poisoned by one.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Polls the future once (called by the worker that popped the task from the queue).
    pub(crate) fn run(self: Arc<Self>) {
        let mut future = {
            let mut slot = self.slot();
            if slot.stage != Stage::Queued {
                // Shut down after it was queued.
                return;
            }
            let Some(future) = slot.future.take() else {
                return;
            };
            slot.stage = Stage::Running;
            future
        };
        let waker = Waker::from(self.clone());
        // A panic ends the task; the worker goes on (the panic hook has reported it).
        let polled = catch_unwind(AssertUnwindSafe(|| {
            future.as_mut().poll(&mut Context::from_waker(&waker))
        }));
        let mut slot = self.slot();
        let stage = match polled {
            Ok(Poll::Pending) => slot.stage,
            Ok(Poll::Ready(())) | Err(_) => Stage::Done,
        };
        match stage {
            Stage::Running => {
                slot.stage = Stage::Idle;
                slot.future = Some(future);
            }
            Stage::Notified => {
                slot.stage = Stage::Queued;
                slot.future = Some(future);
                drop(slot);
                self.executor.enqueue(self.clone());
            }
            Stage::Done => {
                // Finished, or shut down while polled: dropped here, with no lock held.
                let finished = slot.stage != Stage::Done;
                slot.stage = Stage::Done;
                drop(slot);
                drop(future);
                if finished {
                    self.executor.finished(self.id);
                }
            }
            Stage::Idle | Stage::Queued => {
                unreachable!("only this worker moves a Running task out of Running")
            }
        }
    }

    /// Marks the task `Done` and hands its future back to drop, unless a worker is polling
    /// it (that worker drops it when its poll returns).
    pub(crate) fn cancel(&self) -> Option<BoxFuture> {
        let mut slot = self.slot();
        slot.stage = Stage::Done;
        slot.future.take()
    }
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut slot = self.slot();
        match slot.stage {
            Stage::Idle => {
                slot.stage = Stage::Queued;
                drop(slot);
                self.executor.enqueue(self.clone());
            }
            Stage::Running => slot.stage = Stage::Notified,
            Stage::Queued | Stage::Notified | Stage::Done => {}
        }
    }
}
