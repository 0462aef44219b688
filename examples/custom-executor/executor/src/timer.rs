//! Timers: one thread per executor with a heap of deadlines; [`sleep`] and [`timeout`].

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::executor::Executor;

/// The timer of one executor: deadlines in a heap, served by one thread.
pub(crate) struct Timer {
    state: Mutex<TimerState>,
    /// Signalled when an earlier deadline arrives and at shutdown.
    changed: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct TimerState {
    closed: bool,
    heap: BinaryHeap<Reverse<Entry>>,
    next_seq: u64,
}

/// A deadline in the heap. `seq` keeps equal deadlines in registration order.
struct Entry {
    at: Instant,
    seq: u64,
    alarm: Arc<Alarm>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// What a [`Sleep`] and the timer thread share. `fired` and the waker sit under one lock:
/// the sleep stores its waker then reads `fired`, the timer sets `fired` then takes the
/// waker, so either the timer wakes the newest waker or the sleep sees `fired`.
struct Alarm(Mutex<AlarmState>);

struct AlarmState {
    fired: bool,
    waker: Option<Waker>,
}

impl Alarm {
    fn state(&self) -> MutexGuard<'_, AlarmState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fire(&self) {
        let waker = {
            let mut state = self.state();
            state.fired = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The timer has shut down.
struct Closed;

impl Timer {
    pub(crate) fn start(name: &str) -> io::Result<Arc<Self>> {
        let timer = Arc::new(Self {
            state: Mutex::new(TimerState {
                closed: false,
                heap: BinaryHeap::new(),
                next_seq: 0,
            }),
            changed: Condvar::new(),
            thread: Mutex::new(None),
        });
        let serving = timer.clone();
        let handle = thread::Builder::new()
            .name(format!("{name}-timer"))
            .spawn(move || serving.serve())?;
        *timer.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok(timer)
    }

    fn state(&self) -> MutexGuard<'_, TimerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(&self, at: Instant, waker: Waker) -> Result<Arc<Alarm>, Closed> {
        let alarm = Arc::new(Alarm(Mutex::new(AlarmState {
            fired: false,
            waker: Some(waker),
        })));
        let mut state = self.state();
        if state.closed {
            return Err(Closed);
        }
        let earliest = state.heap.peek().is_none_or(|Reverse(first)| at < first.at);
        let seq = state.next_seq;
        state.next_seq += 1;
        state.heap.push(Reverse(Entry {
            at,
            seq,
            alarm: alarm.clone(),
        }));
        drop(state);
        if earliest {
            self.changed.notify_one();
        }
        Ok(alarm)
    }

    /// The timer thread: fires due alarms (with no lock held), then sleeps until the
    /// earliest deadline or a change.
    fn serve(&self) {
        let mut due = Vec::new();
        let mut state = self.state();
        loop {
            if state.closed {
                return;
            }
            let now = Instant::now();
            while state
                .heap
                .peek()
                .is_some_and(|Reverse(first)| first.at <= now)
            {
                if let Some(Reverse(entry)) = state.heap.pop() {
                    due.push(entry.alarm);
                }
            }
            if !due.is_empty() {
                drop(state);
                due.drain(..).for_each(|alarm| alarm.fire());
                state = self.state();
                continue;
            }
            state = match state.heap.peek() {
                Some(Reverse(first)) => {
                    let wait = first.at - now;
                    self.changed
                        .wait_timeout(state, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.changed.wait(state).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }

    /// Stops the timer thread and drops every registered waker; sleeps polled later panic.
    pub(crate) fn shutdown(&self) {
        let heap = {
            let mut state = self.state();
            state.closed = true;
            std::mem::take(&mut state.heap)
        };
        self.changed.notify_all();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
        // The wakers hold tasks: dropped with no lock held.
        drop(heap);
    }
}

/// Waits until `duration` has passed, on the current executor's timer.
///
/// The executor is looked up at the first poll that has to wait: a worker's, or the one
/// entered with [`Executor::enter`].
///
/// # Panics
///
/// When polled outside any executor, or after the executor shut down: a sleep that no
/// timer serves would never end.
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        // An overflow is a deadline too far away to ever come.
        at: Instant::now().checked_add(duration),
        alarm: None,
    }
}

/// The future of [`sleep`].
#[must_use = "a sleep does nothing unless awaited"]
pub struct Sleep {
    /// `None`: never.
    at: Option<Instant>,
    alarm: Option<Arc<Alarm>>,
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep").field("at", &self.at).finish()
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.at.is_some_and(|at| Instant::now() >= at) {
            return Poll::Ready(());
        }
        if let Some(alarm) = &self.alarm {
            let mut state = alarm.state();
            if state.fired {
                return Poll::Ready(());
            }
            if !state
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                state.waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        let Some(executor) = Executor::current() else {
            panic!(
                "minipool::sleep was polled outside any minipool executor: spawn it on one, \
                 or poll it inside Executor::enter"
            );
        };
        // A deadline that never comes still registers, so that the executor's shutdown
        // drops the waker (and with it, a task no one else would wake).
        let at = self
            .at
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600));
        match executor.shared.timer.register(at, cx.waker().clone()) {
            Ok(alarm) => {
                self.alarm = Some(alarm);
                Poll::Pending
            }
            Err(Closed) => panic!(
                "minipool::sleep was polled after the {} executor shut down",
                executor.name()
            ),
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        // The entry stays in the heap until its deadline; without a waker it wakes no one.
        if let Some(alarm) = &self.alarm {
            alarm.state().waker = None;
        }
    }
}

/// Runs `future` for at most `duration`: `Err(Elapsed)` then, and `future` is dropped.
///
/// # Panics
///
/// As [`sleep`], once `future` is pending.
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future: Box::pin(future),
        sleep: sleep(duration),
    }
}

/// The future of [`timeout`].
#[must_use = "a timeout does nothing unless awaited"]
pub struct Timeout<F> {
    future: Pin<Box<F>>,
    sleep: Sleep,
}

impl<F> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("sleep", &self.sleep)
            .finish_non_exhaustive()
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(output) = self.future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        Pin::new(&mut self.sleep).poll(cx).map(|()| Err(Elapsed))
    }
}

/// The error of a [`timeout`] that ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the deadline elapsed")
    }
}

impl std::error::Error for Elapsed {}

#[cfg(test)]
mod tests {
    use std::panic::AssertUnwindSafe;
    use std::sync::mpsc;

    use super::*;
    use crate::Builder;

    const PATIENCE: Duration = Duration::from_secs(10);

    #[test]
    fn sleep_waits_at_least_its_duration() {
        let executor = Builder::new().workers(1).build().unwrap();
        let (tx, rx) = mpsc::channel();
        executor
            .spawn(async move {
                let started = Instant::now();
                sleep(Duration::from_millis(30)).await;
                tx.send(started.elapsed()).unwrap();
            })
            .unwrap();
        assert!(rx.recv_timeout(PATIENCE).unwrap() >= Duration::from_millis(30));
        executor.shutdown(PATIENCE);
    }

    #[test]
    fn sleeps_end_in_deadline_order() {
        let executor = Builder::new().workers(2).build().unwrap();
        let (tx, rx) = mpsc::channel();
        for millis in [240, 60, 180, 120, 0] {
            let tx = tx.clone();
            executor
                .spawn(async move {
                    sleep(Duration::from_millis(millis)).await;
                    tx.send(millis).unwrap();
                })
                .unwrap();
        }
        let order: Vec<u64> = (0..5).map(|_| rx.recv_timeout(PATIENCE).unwrap()).collect();
        assert_eq!(order, [0, 60, 120, 180, 240]);
        executor.shutdown(PATIENCE);
    }

    #[test]
    fn timeout_returns_the_output_or_elapsed() {
        let executor = Builder::new().workers(1).build().unwrap();
        let (tx, rx) = mpsc::channel();
        executor
            .spawn(async move {
                let quick = timeout(Duration::from_secs(5), async { 7 }).await;
                let slow =
                    timeout(Duration::from_millis(5), sleep(Duration::from_secs(3600))).await;
                tx.send((quick, slow)).unwrap();
            })
            .unwrap();
        assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), (Ok(7), Err(Elapsed)));
        executor.shutdown(PATIENCE);
    }

    #[test]
    fn sleep_outside_an_executor_panics_with_a_clear_message() {
        let mut sleep = sleep(Duration::from_secs(1));
        let panic = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let _ = Pin::new(&mut sleep).poll(&mut Context::from_waker(Waker::noop()));
        }))
        .unwrap_err();
        assert!(
            message(&*panic)
                .starts_with("minipool::sleep was polled outside any minipool executor")
        );
    }

    #[test]
    fn sleep_inside_enter_uses_that_executor() {
        let executor = Builder::new().workers(1).build().unwrap();
        let mut sleep = sleep(Duration::from_millis(5));
        let (tx, rx) = mpsc::channel::<()>();
        let waker = Waker::from(Arc::new(Signal(Mutex::new(tx))));
        let first = executor.enter(|| Pin::new(&mut sleep).poll(&mut Context::from_waker(&waker)));
        assert!(first.is_pending());
        rx.recv_timeout(PATIENCE).unwrap();
        assert!(
            Pin::new(&mut sleep)
                .poll(&mut Context::from_waker(&waker))
                .is_ready()
        );
        executor.shutdown(PATIENCE);
    }

    #[test]
    fn sleep_after_shutdown_panics_naming_the_executor() {
        let executor = Builder::new().name("gone").workers(1).build().unwrap();
        executor.shutdown(PATIENCE);
        let mut sleep = sleep(Duration::from_secs(1));
        let panic = std::panic::catch_unwind(AssertUnwindSafe(|| {
            executor.enter(|| {
                let _ = Pin::new(&mut sleep).poll(&mut Context::from_waker(Waker::noop()));
            })
        }))
        .unwrap_err();
        assert_eq!(
            message(&*panic),
            "minipool::sleep was polled after the gone executor shut down"
        );
    }

    fn message(panic: &(dyn std::any::Any + Send)) -> &str {
        match panic.downcast_ref::<String>() {
            Some(message) => message,
            None => panic.downcast_ref::<&str>().copied().unwrap_or_default(),
        }
    }

    /// A waker that sends on a channel.
    struct Signal(Mutex<mpsc::Sender<()>>);
    impl std::task::Wake for Signal {
        fn wake(self: Arc<Self>) {
            let _ = self.0.lock().unwrap().send(());
        }
    }
}
