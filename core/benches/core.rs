//! Criterion benches of the completion cell and the wake queue, without Python.
//!
//! `cargo bench -p pyo3-aio-core --bench core` (or `cargo xtask bench`, which runs it with a
//! short measurement time). These are the two structures every conversion goes through, so
//! a regression here shows in every Python-side figure of `bench/`; measuring them alone
//! shows it without the noise of an interpreter.
//!
//! - `cell/complete_take`: one value through a fresh cell on one thread (allocation, one
//!   store, one read-modify-write, one load).
//! - `cell/register_complete_wake`: the real path: the consumer registers a waker, the
//!   producer completes and wakes it, the consumer takes the value.
//! - `cell/cross_thread_round_trip`: a ping-pong between two threads in which each message
//!   is a completion cell carrying the producer of the reply cell.
//! - `wake_queue/burst_drain/N`: N pushes (one reports `Needed`), then one drain.
//! - `wake_queue/four_producers`: four threads pushing at once while one drains.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use pyo3_aio_core::cell::{Closed, Consumer, Producer, completion};
use pyo3_aio_core::wake_queue::{Signal, WakeQueue};

/// A waker that counts its wake-ups, like the bridge's wakers it is cheap and never blocks.
struct CountWakes(AtomicUsize);

impl Wake for CountWakes {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Spins on `try_take` until the value is there; yields the CPU after a while so that the
/// other thread gets to run on a machine with fewer free cores than threads.
fn wait_for<T>(consumer: &mut Consumer<T>) -> Result<T, Closed> {
    let mut spins = 0u32;
    loop {
        if let Some(result) = consumer.try_take() {
            return result;
        }
        spins += 1;
        if spins < 200 {
            std::hint::spin_loop();
        } else {
            thread::yield_now();
        }
    }
}

fn cell(c: &mut Criterion) {
    let mut group = c.benchmark_group("cell");
    group.throughput(Throughput::Elements(1));

    group.bench_function("complete_take", |b| {
        b.iter(|| {
            let (producer, mut consumer) = completion::<u64>();
            producer.complete(black_box(7)).unwrap();
            black_box(consumer.try_take())
        });
    });

    let counter = Arc::new(CountWakes(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    group.bench_function("register_complete_wake", |b| {
        b.iter(|| {
            let (producer, mut consumer) = completion::<u64>();
            let mut cx = Context::from_waker(&waker);
            assert!(consumer.poll_result(&mut cx).is_pending());
            producer.complete(black_box(7)).unwrap();
            black_box(consumer.poll_result(&mut cx))
        });
    });
    black_box(counter.0.load(Ordering::Relaxed));

    group.bench_function("cross_thread_round_trip", |b| {
        b.iter_custom(cross_thread_round_trips);
    });
    group.finish();
}

/// The worker's inbox message: where to send the reply.
struct Ping {
    reply: Producer<Pong>,
}

/// The reply: where to send the next ping.
struct Pong {
    next: Producer<Ping>,
}

/// `iters` round trips between this thread and a worker, each message a fresh cell.
fn cross_thread_round_trips(iters: u64) -> Duration {
    let (mut to_worker, inbox) = completion::<Ping>();
    let worker = thread::spawn(move || {
        let mut inbox = inbox;
        // Ends when the main thread drops its producer (ProducerDropped).
        while let Ok(Ping { reply }) = wait_for(&mut inbox) {
            let (next, next_inbox) = completion::<Ping>();
            if reply.complete(Pong { next }).is_err() {
                break;
            }
            inbox = next_inbox;
        }
    });
    let start = Instant::now();
    for _ in 0..iters {
        let (reply, mut answer) = completion::<Pong>();
        if to_worker.complete(Ping { reply }).is_err() {
            panic!("the worker stopped early");
        }
        to_worker = wait_for(&mut answer).expect("the worker replies").next;
    }
    let elapsed = start.elapsed();
    drop(to_worker);
    worker.join().expect("the worker does not panic");
    elapsed
}

fn wake_queue(c: &mut Criterion) {
    let mut group = c.benchmark_group("wake_queue");
    for burst in [1u64, 64] {
        group.throughput(Throughput::Elements(burst));
        let queue = WakeQueue::new();
        group.bench_with_input(
            BenchmarkId::new("burst_drain", burst),
            &burst,
            |b, &burst| {
                b.iter(|| {
                    let mut needed = 0u32;
                    for i in 0..burst {
                        if queue.push(black_box(i)) == Signal::Needed {
                            needed += 1;
                        }
                    }
                    let drained: u64 = queue.drain().sum();
                    black_box((needed, drained))
                });
            },
        );
    }

    group.throughput(Throughput::Elements(1));
    group.bench_function("four_producers", |b| {
        b.iter_custom(|iters| four_producers(iters.max(4)));
    });
    group.finish();
}

/// Four threads push `iters` items in all while this thread drains them; the time until
/// the last item is drained.
fn four_producers(iters: u64) -> Duration {
    const PRODUCERS: u64 = 4;
    let queue = Arc::new(WakeQueue::new());
    let signals = Arc::new(AtomicUsize::new(0));
    let each = iters / PRODUCERS;
    let total = each * PRODUCERS;
    // Thread start-up is not what is measured: everyone starts pushing together.
    let ready = Arc::new(Barrier::new(PRODUCERS as usize + 1));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|_| {
            let queue = queue.clone();
            let signals = signals.clone();
            let ready = ready.clone();
            thread::spawn(move || {
                ready.wait();
                for i in 0..each {
                    if queue.push(i) == Signal::Needed {
                        signals.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    ready.wait();
    let start = Instant::now();
    let mut seen = 0u64;
    while seen < total {
        let before = seen;
        seen += queue.drain().count() as u64;
        if seen == before {
            thread::yield_now();
        }
    }
    let elapsed = start.elapsed();
    for producer in producers {
        producer.join().expect("a producer does not panic");
    }
    black_box(signals.load(Ordering::Relaxed));
    elapsed
}

// What `criterion_group!` / `criterion_main!` expand to, written out: the macros define an
// undocumented `pub fn`, which the workspace's `missing_docs` lint rejects.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    cell(&mut criterion);
    wake_queue(&mut criterion);
    criterion.final_summary();
}
