//! Operation sequences on one wake queue, checked against a `VecDeque` model and a
//! "signal pending" flag after every operation.
//!
//! After every operation the harness checks that:
//!
//! - `push` returns `Signal::Needed` exactly when no push has signalled since the last drain
//!   (or since the queue was created), `AlreadyPending` otherwise;
//! - a drain yields exactly the model's items, oldest first, and then `None`; items not
//!   iterated are dropped with the `Drain`; a `Drain` held across later pushes, drains and
//!   even the queue's own drop keeps exactly its items;
//! - `is_empty` agrees with the model;
//! - the number of values dropped so far is the model's count; a value dropped twice panics
//!   in its `Drop`, and at the end every value created was dropped exactly once.
//!
//! `Burst` has two threads push concurrently while this thread drains a few times, then
//! drains the rest after joining. Checked: every pushed item comes out exactly once, each
//! producer's items in its push order, items queued before the burst come first, and in
//! each drain exactly the first item was pushed with `Signal::Needed` (none, if it was queued
//! before the burst) while all others got `AlreadyPending`, which is the invariant "after a
//! drain, every push is seen by that drain or signals again".
//!
//! Input encoding (every byte string decodes; a truncated last operation is ignored):
//! `op % 7` selects the operation: 0 push, 1 drain (take `n`, then drop the drain),
//! 2 hold a drain (replacing a held one), 3 take `n` from the held drain, 4 drop the held
//! drain, 5 drop the queue and make a new one, 6 burst (first, second, drains). `n` is the
//! next byte; burst takes three bytes: items per producer `% 64` each, and a byte whose
//! low 2 bits are the number of concurrent drains and whose high bits are a spin delay.

#![no_main]

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use pyo3_aio_core::wake_queue::{Drain, Signal, WakeQueue};

const PRODUCERS: usize = 2;

fuzz_target!(|ops: Ops| {
    let mut harness = Harness::new();
    for (index, op) in ops.0.iter().enumerate() {
        harness.step = index;
        harness.op = Some(*op);
        harness.run(*op);
        harness.check();
    }
    harness.finish();
});

// ---------------------------------------------------------------------------------------
// Operations and their decoding.

#[derive(Debug, Clone, Copy)]
enum Op {
    Push,
    Drain {
        take: usize,
    },
    Hold,
    TakeHeld {
        take: usize,
    },
    DropHeld,
    Recreate,
    Burst {
        counts: [usize; PRODUCERS],
        drains: usize,
        spins: u32,
    },
}

/// The decoded operation sequence; its `Debug` is what `cargo fuzz fmt wake_queue_ops`
/// prints.
struct Ops(Vec<Op>);

impl fmt::Debug for Ops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

impl<'a> Arbitrary<'a> for Ops {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Ops(decode(u.bytes(u.len())?)))
    }
}

fn decode(bytes: &[u8]) -> Vec<Op> {
    let mut bytes = bytes.iter().map(|&b| usize::from(b));
    let mut ops = Vec::new();
    while let Some(code) = bytes.next() {
        let op = match code % 7 {
            0 => Op::Push,
            1 => match bytes.next() {
                Some(take) => Op::Drain { take },
                None => break,
            },
            2 => Op::Hold,
            3 => match bytes.next() {
                Some(take) => Op::TakeHeld { take },
                None => break,
            },
            4 => Op::DropHeld,
            5 => Op::Recreate,
            _ => match (bytes.next(), bytes.next(), bytes.next()) {
                (Some(first), Some(second), Some(drains)) => Op::Burst {
                    counts: [first % 64, second % 64],
                    drains: drains & 3,
                    spins: (drains >> 2) as u32 * 8,
                },
                _ => break,
            },
        };
        ops.push(op);
    }
    ops
}

// ---------------------------------------------------------------------------------------
// The model.

#[derive(Debug, Default)]
struct Model {
    /// Ids of the queued values, oldest first.
    queue: VecDeque<u32>,
    /// A push has returned `Signal::Needed` since the last drain.
    signal_pending: bool,
    /// Ids still in the held drain, if one is held.
    held: Option<VecDeque<u32>>,
    /// Values dropped so far, by anyone.
    dropped: usize,
}

impl Model {
    fn push(&mut self, id: u32) -> Signal {
        self.queue.push_back(id);
        if std::mem::replace(&mut self.signal_pending, true) {
            Signal::AlreadyPending
        } else {
            Signal::Needed
        }
    }

    fn drain(&mut self) -> VecDeque<u32> {
        self.signal_pending = false;
        std::mem::take(&mut self.queue)
    }

    fn drop_held(&mut self) {
        if let Some(held) = self.held.take() {
            self.dropped += held.len();
        }
    }
}

// ---------------------------------------------------------------------------------------
// The real queue.

struct Ledger {
    /// How often each value (by id) was dropped.
    drops: Mutex<Vec<u8>>,
    total: AtomicUsize,
}

/// A value that records its drop in the ledger.
struct Tracked {
    id: u32,
    ledger: Arc<Ledger>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let mut drops = self.ledger.drops.lock().unwrap_or_else(|e| e.into_inner());
        let count = &mut drops[self.id as usize];
        *count += 1;
        assert_eq!(*count, 1, "value #{} dropped twice", self.id);
        self.ledger.total.fetch_add(1, Ordering::SeqCst);
    }
}

impl Ledger {
    /// `n` new values with consecutive ids.
    fn values(self: &Arc<Self>, n: usize) -> Vec<Tracked> {
        let mut drops = self.drops.lock().unwrap();
        let first = drops.len();
        drops.resize(first + n, 0);
        (first..first + n)
            .map(|id| Tracked {
                id: u32::try_from(id).expect("fewer than 2^32 values"),
                ledger: self.clone(),
            })
            .collect()
    }
}

fn spin(n: u32) {
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

struct Harness {
    queue: WakeQueue<Tracked>,
    held: Option<Drain<Tracked>>,
    ledger: Arc<Ledger>,
    model: Model,
    step: usize,
    op: Option<Op>,
}

impl Harness {
    fn new() -> Self {
        Self {
            queue: WakeQueue::new(),
            held: None,
            ledger: Arc::new(Ledger {
                drops: Mutex::new(Vec::new()),
                total: AtomicUsize::new(0),
            }),
            model: Model::default(),
            step: 0,
            op: None,
        }
    }

    fn run(&mut self, op: Op) {
        let (step, model) = (self.step, &mut self.model);
        match op {
            Op::Push => {
                let value = self.ledger.values(1).pop().expect("one value");
                let id = value.id;
                let actual = self.queue.push(value);
                let expected = model.push(id);
                assert_eq!(actual, expected, "step {step}: {op:?}: push(#{id})");
            }
            Op::Drain { take } => {
                let mut drain = self.queue.drain();
                let mut expected = model.drain();
                assert!(
                    self.queue.is_empty(),
                    "step {step}: {op:?}: queue not empty right after a drain"
                );
                take_from(&mut drain, &mut expected, take, model, step, op);
                drop(drain);
                model.dropped += expected.len();
            }
            Op::Hold => {
                drop(self.held.take());
                model.drop_held();
                self.held = Some(self.queue.drain());
                model.held = Some(model.drain());
            }
            Op::TakeHeld { take } => {
                if let (Some(drain), Some(expected)) = (self.held.as_mut(), model.held.as_mut()) {
                    let mut remaining = std::mem::take(expected);
                    take_from(drain, &mut remaining, take, model, step, op);
                    model.held = Some(remaining);
                }
            }
            Op::DropHeld => {
                drop(self.held.take());
                model.drop_held();
            }
            Op::Recreate => {
                self.queue = WakeQueue::new();
                model.dropped += model.queue.len();
                model.queue.clear();
                model.signal_pending = false;
            }
            Op::Burst {
                counts,
                drains,
                spins,
            } => self.burst(counts, drains, spins),
        }
    }

    /// Two threads push `counts[p]` values each while this thread drains `drains` times;
    /// then one last drain after joining.
    fn burst(&mut self, counts: [usize; PRODUCERS], drains: usize, spins: u32) {
        let (step, op) = (self.step, self.op);
        let values: [Vec<Tracked>; PRODUCERS] =
            std::array::from_fn(|p| self.ledger.values(counts[p]));
        // Which producer pushed each id, and at which position.
        let mut origin = std::collections::HashMap::new();
        for (p, values) in values.iter().enumerate() {
            for (seq, value) in values.iter().enumerate() {
                origin.insert(value.id, (p, seq));
            }
        }
        let queue = &self.queue;
        let started = &AtomicUsize::new(0);
        let go = &AtomicBool::new(false);

        let (signals, mut drained) = std::thread::scope(|s| {
            let threads: Vec<_> = values
                .into_iter()
                .map(|values| {
                    s.spawn(move || {
                        started.fetch_add(1, Ordering::AcqRel);
                        // Yield rather than spin: on a busy machine a spinning producer
                        // can keep this thread from ever setting `go`.
                        while !go.load(Ordering::Acquire) {
                            std::thread::yield_now();
                        }
                        values
                            .into_iter()
                            .map(|value| queue.push(value))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            while started.load(Ordering::Acquire) < PRODUCERS {
                std::thread::yield_now();
            }
            go.store(true, Ordering::Release);
            let mut drained: Vec<Vec<u32>> = Vec::new();
            for _ in 0..drains {
                spin(spins);
                drained.push(queue.drain().map(|value| value.id).collect());
            }
            let signals: Vec<Vec<Signal>> = threads
                .into_iter()
                .map(|thread| {
                    thread
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect();
            (signals, drained)
        });
        drained.push(self.queue.drain().map(|value| value.id).collect());

        // Items queued before the burst come out first, in order, from the first drains.
        let before = self.model.drain();
        let mut flat = drained.iter().flatten();
        for &id in &before {
            assert_eq!(
                flat.next(),
                Some(&id),
                "step {step}: {op:?}: item #{id}, queued before the burst, missing or out of order in {drained:?}"
            );
        }
        // Then every burst item exactly once, each producer's in push order.
        let mut next_seq = [0usize; PRODUCERS];
        for id in flat {
            let Some(&(p, seq)) = origin.get(id) else {
                panic!("step {step}: {op:?}: drained unknown or repeated item #{id}: {drained:?}");
            };
            assert_eq!(
                seq, next_seq[p],
                "step {step}: {op:?}: producer {p}'s item {seq} came out when {} was due: {drained:?}",
                next_seq[p]
            );
            next_seq[p] += 1;
        }
        assert_eq!(
            next_seq, counts,
            "step {step}: {op:?}: items lost: {drained:?}"
        );

        // Exactly the first push of each drain's epoch signalled.
        let mut signalled = 0;
        for (index, items) in drained.iter().enumerate() {
            for (position, id) in items.iter().enumerate() {
                let Some(&(p, seq)) = origin.get(id) else {
                    continue; // queued before the burst
                };
                let expected = if position == 0 {
                    Signal::Needed
                } else {
                    Signal::AlreadyPending
                };
                assert_eq!(
                    signals[p][seq], expected,
                    "step {step}: {op:?}: item #{id} (producer {p}, push {seq}) is at position {position} of drain {index} but its push said {:?}: {drained:?}",
                    signals[p][seq]
                );
                signalled += usize::from(position == 0);
            }
        }
        let needed = signals
            .iter()
            .flatten()
            .filter(|s| **s == Signal::Needed)
            .count();
        assert_eq!(
            needed, signalled,
            "step {step}: {op:?}: signals {signals:?} for drains {drained:?}"
        );

        self.model.dropped += before.len() + counts.iter().sum::<usize>();
    }

    /// The checks that hold between any two operations.
    fn check(&self) {
        let (step, op) = (self.step, self.op);
        assert_eq!(
            self.queue.is_empty(),
            self.model.queue.is_empty(),
            "step {step}: {op:?}: is_empty with {} items in the model",
            self.model.queue.len()
        );
        assert_eq!(
            self.held.is_some(),
            self.model.held.is_some(),
            "harness: held drain presence"
        );
        let dropped = self.ledger.total.load(Ordering::SeqCst);
        assert_eq!(
            dropped, self.model.dropped,
            "step {step}: {op:?}: {dropped} values dropped, the model says {}",
            self.model.dropped
        );
    }

    /// Drops the held drain and the queue, then checks that every value was dropped once.
    fn finish(mut self) {
        self.step += 1;
        self.op = Some(Op::DropHeld);
        self.run(Op::DropHeld);
        self.check();
        self.step += 1;
        self.op = Some(Op::Recreate);
        self.run(Op::Recreate);
        self.check();
        let drops = self.ledger.drops.lock().unwrap();
        for (id, count) in drops.iter().enumerate() {
            assert_eq!(*count, 1, "value #{id} dropped {count} times at the end");
        }
    }
}

/// Takes up to `take` items from `drain`, each of which must be the model's next, and
/// checks that the drain ends when the model's items do. Taken items are dropped.
fn take_from(
    drain: &mut Drain<Tracked>,
    expected: &mut VecDeque<u32>,
    take: usize,
    model: &mut Model,
    step: usize,
    op: Op,
) {
    for _ in 0..take {
        let actual = drain.next().map(|value| value.id);
        let want = expected.pop_front();
        assert_eq!(actual, want, "step {step}: {op:?}: drained item");
        match want {
            Some(_) => model.dropped += 1,
            None => break,
        }
    }
}
