//! Operation sequences on a pool of completion cells, checked against a plain model after
//! every operation.
//!
//! The model keeps, per cell, the outcome (`Empty`, `Complete(value)`, `Taken`,
//! `Cancelled`, `ProducerDropped`), which handles are alive, and which waker each side
//! registered last. After every operation the harness checks that:
//!
//! - every `poll_result` / `try_take` / `cancel` / `complete` / `poll_cancelled` result is
//!   the model's prediction (including which value came back);
//! - each counting waker has been woken exactly as often as the model says: the latest
//!   registered waker, once, on completion or producer drop (consumer side) and on cancel
//!   or consumer drop (producer side), never an older one, never after the outcome is set;
//! - each waker's `Arc` strong count is 2 plus the number of live cells whose slot holds it
//!   (no waker leaked or freed early);
//! - `Consumer::is_complete` and `Producer::is_cancelled` agree with the model;
//! - the number of values dropped so far is the model's count; a value dropped twice panics
//!   in its `Drop`, and at the end every value created was dropped exactly once.
//!
//! `Race` moves the producer to a second thread (it may poll for cancellation, then
//! completes or drops) while the main thread runs one consumer operation. The observed
//! results must be those of one interleaving of the model's operations, where an
//! interleaving may also land the other side's operation inside a waker registration
//! (the registering side then sees the outcome, returns ready, and its waker is not woken).
//!
//! Input encoding (every byte string decodes; a truncated last operation is ignored):
//! `[op, cell, args...]` with `op % 9` selecting the operation and `cell % 8` the cell:
//! 0 create, 1 poll (waker), 2 try_take, 3 cancel, 4 drop consumer, 5 complete,
//! 6 poll_cancelled (waker), 7 drop producer, 8 race (script, wakers, spins). A waker byte
//! is taken `% 4`. Race script bits: 0 = producer polls cancellation first, 1 = producer
//! drops instead of completing, 2-3 = consumer op (cancel, poll, try_take, drop); wakers
//! byte: bits 0-1 producer waker, bits 2-3 consumer waker; spins byte: low nibble producer
//! delay, high nibble consumer delay.

#![no_main]

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use pyo3_aio_core::cell::{self, Closed, Consumer, Producer};

const CELLS: usize = 8;
const WAKERS: usize = 4;

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
    Create { cell: usize },
    Poll { cell: usize, waker: usize },
    TryTake { cell: usize },
    Cancel { cell: usize },
    DropConsumer { cell: usize },
    Complete { cell: usize },
    PollCancelled { cell: usize, waker: usize },
    DropProducer { cell: usize },
    Race { cell: usize, race: Race },
}

#[derive(Debug, Clone, Copy)]
struct Race {
    /// The producer thread first polls for cancellation with this waker.
    poll_first: Option<usize>,
    finish: Finish,
    consumer: ConsumerOp,
    producer_spins: u32,
    consumer_spins: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finish {
    Complete,
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConsumerOp {
    Cancel,
    Poll(usize),
    TryTake,
    Drop,
}

/// The decoded operation sequence; its `Debug` is what `cargo fuzz fmt cell_ops` prints.
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
    while let (Some(code), Some(cell)) = (bytes.next(), bytes.next()) {
        let cell = cell % CELLS;
        let op = match code % 9 {
            0 => Op::Create { cell },
            1 => match bytes.next() {
                Some(waker) => Op::Poll {
                    cell,
                    waker: waker % WAKERS,
                },
                None => break,
            },
            2 => Op::TryTake { cell },
            3 => Op::Cancel { cell },
            4 => Op::DropConsumer { cell },
            5 => Op::Complete { cell },
            6 => match bytes.next() {
                Some(waker) => Op::PollCancelled {
                    cell,
                    waker: waker % WAKERS,
                },
                None => break,
            },
            7 => Op::DropProducer { cell },
            _ => match (bytes.next(), bytes.next(), bytes.next()) {
                (Some(script), Some(wakers), Some(spins)) => Op::Race {
                    cell,
                    race: Race {
                        poll_first: (script & 1 != 0).then_some(wakers & 3),
                        finish: if script & 2 == 0 {
                            Finish::Complete
                        } else {
                            Finish::Drop
                        },
                        consumer: match (script >> 2) & 3 {
                            0 => ConsumerOp::Cancel,
                            1 => ConsumerOp::Poll((wakers >> 2) & 3),
                            2 => ConsumerOp::TryTake,
                            _ => ConsumerOp::Drop,
                        },
                        producer_spins: (spins & 0xf) as u32 * 16,
                        consumer_spins: (spins >> 4) as u32 * 16,
                    },
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Neither side has finished.
    Empty,
    /// The producer completed with value `id`, which the consumer has not taken yet.
    Complete(u32),
    /// The consumer took the value.
    Taken,
    /// The consumer cancelled (or was dropped) before any value arrived.
    Cancelled,
    /// The producer was dropped without completing, and the consumer has not cancelled.
    ProducerDropped,
}

/// One side's waker slot: which waker it holds, and whether the other side will wake it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WakerSlot {
    waker: Option<usize>,
    armed: bool,
}

impl WakerSlot {
    const EMPTY: Self = Self {
        waker: None,
        armed: false,
    };

    fn holds(&self, k: usize) -> bool {
        self.waker == Some(k)
    }
}

#[derive(Debug, Clone, Copy)]
struct CellModel {
    outcome: Outcome,
    producer: bool,
    consumer: bool,
    consumer_waker: WakerSlot,
    producer_waker: WakerSlot,
}

type Taken = Result<u32, Closed>;

#[derive(Debug, Clone)]
struct Model {
    /// `None` once both handles are gone (the allocation is freed).
    cells: [Option<CellModel>; CELLS],
    wakes: [usize; WAKERS],
    /// Values dropped so far, by anyone.
    dropped: usize,
}

impl Model {
    fn new() -> Self {
        Self {
            cells: [None; CELLS],
            wakes: [0; WAKERS],
            dropped: 0,
        }
    }

    fn cell(&mut self, i: usize) -> &mut CellModel {
        self.cells[i]
            .as_mut()
            .expect("model: operation on a freed cell")
    }

    fn create(&mut self, i: usize) {
        self.cells[i] = Some(CellModel {
            outcome: Outcome::Empty,
            producer: true,
            consumer: true,
            consumer_waker: WakerSlot::EMPTY,
            producer_waker: WakerSlot::EMPTY,
        });
    }

    fn wake(&mut self, slot: WakerSlot) {
        if let (true, Some(k)) = (slot.armed, slot.waker) {
            self.wakes[k] += 1;
        }
    }

    /// Frees the cell once both handles are gone, dropping an untaken value with it.
    fn release(&mut self, i: usize) {
        let cell = self.cell(i);
        if !cell.producer && !cell.consumer {
            if let Outcome::Complete(_) = cell.outcome {
                self.dropped += 1;
            }
            self.cells[i] = None;
        }
    }

    /// `try_take`; a value handed out is dropped by the harness right away.
    fn try_take(&mut self, i: usize) -> Option<Taken> {
        let cell = self.cell(i);
        let taken = match cell.outcome {
            Outcome::Empty => return None,
            Outcome::Complete(id) => {
                cell.outcome = Outcome::Taken;
                self.dropped += 1;
                Ok(id)
            }
            Outcome::Taken => Err(Closed::Taken),
            Outcome::Cancelled => Err(Closed::Cancelled),
            Outcome::ProducerDropped => Err(Closed::ProducerDropped),
        };
        Some(taken)
    }

    fn poll(&mut self, i: usize, k: usize) -> Poll<Taken> {
        if let Some(taken) = self.try_take(i) {
            return Poll::Ready(taken);
        }
        self.cell(i).consumer_waker = WakerSlot {
            waker: Some(k),
            armed: true,
        };
        Poll::Pending
    }

    /// The first half of a poll that (re)registers a waker: the consumer has withdrawn its
    /// old waker. `false` when the poll finds the outcome at once (nothing to split).
    ///
    /// Also allowed when the slot already holds the same waker, where the real poll keeps it
    /// armed: `Waker::will_wake` may not recognise a clone, and the split only ever admits
    /// "ready, and the old waker not woken", which loses no wake-up.
    fn poll_begin(&mut self, i: usize) -> bool {
        let cell = self.cell(i);
        if cell.outcome != Outcome::Empty {
            return false;
        }
        cell.consumer_waker.armed = false;
        true
    }

    /// The second half: the slot now holds `k`, and the poll reports what it finds.
    fn poll_finish(&mut self, i: usize, k: usize) -> Poll<Taken> {
        self.cell(i).consumer_waker = WakerSlot {
            waker: Some(k),
            armed: true,
        };
        match self.try_take(i) {
            Some(taken) => Poll::Ready(taken),
            None => Poll::Pending,
        }
    }

    /// `Consumer::cancel`: `true` when this call cancelled, `false` when a value was
    /// delivered first or the consumer had already cancelled.
    fn cancel(&mut self, i: usize) -> bool {
        let cell = self.cell(i);
        match cell.outcome {
            Outcome::Empty => {
                cell.outcome = Outcome::Cancelled;
                let (alive, slot) = (cell.producer, cell.producer_waker);
                if alive {
                    self.wake(slot);
                }
                true
            }
            Outcome::ProducerDropped => {
                cell.outcome = Outcome::Cancelled;
                true
            }
            Outcome::Complete(_) | Outcome::Taken | Outcome::Cancelled => false,
        }
    }

    fn drop_consumer(&mut self, i: usize) {
        self.cancel(i);
        self.cell(i).consumer = false;
        self.release(i);
    }

    /// `Producer::complete`; a value handed back is dropped by the harness right away.
    fn complete(&mut self, i: usize, id: u32) -> Result<(), u32> {
        let cell = self.cell(i);
        cell.producer = false;
        let result = match cell.outcome {
            Outcome::Empty => {
                cell.outcome = Outcome::Complete(id);
                let slot = cell.consumer_waker;
                self.wake(slot);
                Ok(())
            }
            Outcome::Cancelled => {
                self.dropped += 1;
                Err(id)
            }
            other => unreachable!("model: a live producer in state {other:?}"),
        };
        self.release(i);
        result
    }

    fn poll_cancelled(&mut self, i: usize, k: usize) -> Poll<()> {
        let cell = self.cell(i);
        match cell.outcome {
            Outcome::Cancelled => Poll::Ready(()),
            Outcome::Empty => {
                cell.producer_waker = WakerSlot {
                    waker: Some(k),
                    armed: true,
                };
                Poll::Pending
            }
            other => unreachable!("model: a live producer in state {other:?}"),
        }
    }

    /// As [`Model::poll_begin`], for the producer's registration.
    fn poll_cancelled_begin(&mut self, i: usize) -> bool {
        let cell = self.cell(i);
        if cell.outcome != Outcome::Empty {
            return false;
        }
        cell.producer_waker.armed = false;
        true
    }

    fn poll_cancelled_finish(&mut self, i: usize, k: usize) -> Poll<()> {
        let cell = self.cell(i);
        cell.producer_waker = WakerSlot {
            waker: Some(k),
            armed: true,
        };
        if cell.outcome == Outcome::Cancelled {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn drop_producer(&mut self, i: usize) {
        let cell = self.cell(i);
        cell.producer = false;
        match cell.outcome {
            Outcome::Empty => {
                cell.outcome = Outcome::ProducerDropped;
                let slot = cell.consumer_waker;
                self.wake(slot);
            }
            Outcome::Cancelled => {}
            other => unreachable!("model: a live producer in state {other:?}"),
        }
        self.release(i);
    }

    /// Our `Arc` and our `Waker`, plus one clone per live cell slot holding waker `k`.
    fn strong_count(&self, k: usize) -> usize {
        2 + self
            .cells
            .iter()
            .flatten()
            .map(|c| {
                usize::from(c.consumer_waker.holds(k)) + usize::from(c.producer_waker.holds(k))
            })
            .sum::<usize>()
    }
}

// ---------------------------------------------------------------------------------------
// Race interleavings in the model.

/// One model step of a race: the producer thread's (`P*`) or the consumer's (`C*`).
#[derive(Debug, Clone, Copy)]
enum RaceStep {
    PPollCancelled(usize),
    PPollCancelledBegin,
    PPollCancelledFinish(usize),
    PFinish(Finish),
    COp(ConsumerOp),
    CPollBegin,
    CPollFinish(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConsumerObs {
    Cancel(bool),
    Poll(Poll<Taken>),
    TryTake(Option<Taken>),
    Dropped,
}

/// What a race shows: each side's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RaceObs {
    polled: Option<Poll<()>>,
    completed: Option<Result<(), u32>>,
    consumer: Option<ConsumerObs>,
}

/// What the whole pool shows between operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Observables {
    wakes: [usize; WAKERS],
    strong_counts: [usize; WAKERS],
    dropped: usize,
}

impl Model {
    fn observables(&self) -> Observables {
        Observables {
            wakes: self.wakes,
            strong_counts: std::array::from_fn(|k| self.strong_count(k)),
            dropped: self.dropped,
        }
    }

    /// Runs `steps` on a copy of the model; `None` when a split step does not apply.
    fn interleave(
        &self,
        i: usize,
        value: Option<u32>,
        steps: &[RaceStep],
    ) -> Option<(Model, RaceObs)> {
        let mut model = self.clone();
        let mut obs = RaceObs {
            polled: None,
            completed: None,
            consumer: None,
        };
        for step in steps {
            match *step {
                RaceStep::PPollCancelled(k) => obs.polled = Some(model.poll_cancelled(i, k)),
                RaceStep::PPollCancelledBegin => {
                    if !model.poll_cancelled_begin(i) {
                        return None;
                    }
                }
                RaceStep::PPollCancelledFinish(k) => {
                    obs.polled = Some(model.poll_cancelled_finish(i, k));
                }
                RaceStep::PFinish(Finish::Complete) => {
                    obs.completed =
                        Some(model.complete(i, value.expect("a value to complete with")));
                }
                RaceStep::PFinish(Finish::Drop) => model.drop_producer(i),
                RaceStep::COp(op) => {
                    obs.consumer = Some(match op {
                        ConsumerOp::Cancel => ConsumerObs::Cancel(model.cancel(i)),
                        ConsumerOp::Poll(k) => ConsumerObs::Poll(model.poll(i, k)),
                        ConsumerOp::TryTake => ConsumerObs::TryTake(model.try_take(i)),
                        ConsumerOp::Drop => {
                            model.drop_consumer(i);
                            ConsumerObs::Dropped
                        }
                    });
                }
                RaceStep::CPollBegin => {
                    if !model.poll_begin(i) {
                        return None;
                    }
                }
                RaceStep::CPollFinish(k) => {
                    obs.consumer = Some(ConsumerObs::Poll(model.poll_finish(i, k)));
                }
            }
        }
        Some((model, obs))
    }
}

/// Every interleaving of the producer's script with the consumer's one operation,
/// including those where one side's operation lands inside the other's registration.
fn interleavings(race: &Race) -> Vec<Vec<RaceStep>> {
    let mut producer = Vec::new();
    if let Some(k) = race.poll_first {
        producer.push(RaceStep::PPollCancelled(k));
    }
    producer.push(RaceStep::PFinish(race.finish));
    let consumer = RaceStep::COp(race.consumer);

    let mut all = Vec::new();
    for at in 0..=producer.len() {
        let mut steps = producer.clone();
        steps.insert(at, consumer);
        all.push(steps);
    }
    if let ConsumerOp::Poll(k) = race.consumer {
        for at in 0..producer.len() {
            let mut steps = producer[..at].to_vec();
            steps.extend([RaceStep::CPollBegin, producer[at], RaceStep::CPollFinish(k)]);
            steps.extend_from_slice(&producer[at + 1..]);
            all.push(steps);
        }
    }
    if let Some(k) = race.poll_first {
        all.push(vec![
            RaceStep::PPollCancelledBegin,
            consumer,
            RaceStep::PPollCancelledFinish(k),
            RaceStep::PFinish(race.finish),
        ]);
    }
    all
}

// ---------------------------------------------------------------------------------------
// The real cells.

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
    fn value(self: &Arc<Self>) -> Tracked {
        let mut drops = self.drops.lock().unwrap();
        let id = u32::try_from(drops.len()).expect("fewer than 2^32 values");
        drops.push(0);
        Tracked {
            id,
            ledger: self.clone(),
        }
    }
}

struct CountWakes(AtomicUsize);

impl Wake for CountWakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn id_of(taken: Result<Tracked, Closed>) -> Taken {
    taken.map(|value| value.id)
}

fn spin(n: u32) {
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

struct Harness {
    producers: [Option<Producer<Tracked>>; CELLS],
    consumers: [Option<Consumer<Tracked>>; CELLS],
    counters: [Arc<CountWakes>; WAKERS],
    wakers: [Waker; WAKERS],
    ledger: Arc<Ledger>,
    model: Model,
    step: usize,
    op: Option<Op>,
}

impl Harness {
    fn new() -> Self {
        let counters: [Arc<CountWakes>; WAKERS] =
            std::array::from_fn(|_| Arc::new(CountWakes(AtomicUsize::new(0))));
        let wakers = std::array::from_fn(|k| Waker::from(counters[k].clone()));
        Self {
            producers: std::array::from_fn(|_| None),
            consumers: std::array::from_fn(|_| None),
            counters,
            wakers,
            ledger: Arc::new(Ledger {
                drops: Mutex::new(Vec::new()),
                total: AtomicUsize::new(0),
            }),
            model: Model::new(),
            step: 0,
            op: None,
        }
    }

    fn run(&mut self, op: Op) {
        let (step, model) = (self.step, &mut self.model);
        match op {
            Op::Create { cell } => {
                if model.cells[cell].is_none() {
                    let (producer, consumer) = cell::completion();
                    self.producers[cell] = Some(producer);
                    self.consumers[cell] = Some(consumer);
                    model.create(cell);
                }
            }
            Op::Poll { cell, waker } => {
                if let Some(consumer) = self.consumers[cell].as_mut() {
                    let mut cx = Context::from_waker(&self.wakers[waker]);
                    let actual = consumer.poll_result(&mut cx).map(id_of);
                    let expected = model.poll(cell, waker);
                    assert_eq!(actual, expected, "step {step}: {op:?}: poll_result");
                }
            }
            Op::TryTake { cell } => {
                if let Some(consumer) = self.consumers[cell].as_mut() {
                    let actual = consumer.try_take().map(id_of);
                    let expected = model.try_take(cell);
                    assert_eq!(actual, expected, "step {step}: {op:?}: try_take");
                }
            }
            Op::Cancel { cell } => {
                if let Some(consumer) = self.consumers[cell].as_ref() {
                    let actual = consumer.cancel();
                    let expected = model.cancel(cell);
                    assert_eq!(actual, expected, "step {step}: {op:?}: cancel");
                }
            }
            Op::DropConsumer { cell } => {
                if self.consumers[cell].take().is_some() {
                    model.drop_consumer(cell);
                }
            }
            Op::Complete { cell } => {
                if let Some(producer) = self.producers[cell].take() {
                    let value = self.ledger.value();
                    let id = value.id;
                    let actual = producer.complete(value).map_err(|value| value.id);
                    let expected = model.complete(cell, id);
                    assert_eq!(actual, expected, "step {step}: {op:?}: complete(#{id})");
                }
            }
            Op::PollCancelled { cell, waker } => {
                if let Some(producer) = self.producers[cell].as_mut() {
                    let mut cx = Context::from_waker(&self.wakers[waker]);
                    let actual = producer.poll_cancelled(&mut cx);
                    let expected = model.poll_cancelled(cell, waker);
                    assert_eq!(actual, expected, "step {step}: {op:?}: poll_cancelled");
                }
            }
            Op::DropProducer { cell } => {
                if self.producers[cell].take().is_some() {
                    model.drop_producer(cell);
                }
            }
            Op::Race { cell, race } => self.race(cell, race),
        }
    }

    /// The producer goes to a second thread while this thread runs one consumer operation.
    fn race(&mut self, cell: usize, race: Race) {
        if self.producers[cell].is_none() || self.consumers[cell].is_none() {
            return;
        }
        let producer = self.producers[cell].take().expect("checked above");
        let value = (race.finish == Finish::Complete).then(|| self.ledger.value());
        let value_id = value.as_ref().map(|value| value.id);
        let producer_waker = race.poll_first.map(|k| self.wakers[k].clone());
        let (consumer, wakers) = (&mut self.consumers[cell], &self.wakers);
        let started = &AtomicBool::new(false);

        let actual = std::thread::scope(|s| {
            let thread = s.spawn(move || {
                let mut producer = producer;
                started.store(true, Ordering::Release);
                spin(race.producer_spins);
                let polled = producer_waker
                    .as_ref()
                    .map(|waker| producer.poll_cancelled(&mut Context::from_waker(waker)));
                let completed = match value {
                    Some(value) => Some(producer.complete(value).map_err(|value| value.id)),
                    None => {
                        drop(producer);
                        None
                    }
                };
                (polled, completed)
            });
            while !started.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
            spin(race.consumer_spins);
            let observed = match race.consumer {
                ConsumerOp::Cancel => {
                    ConsumerObs::Cancel(consumer.as_ref().expect("live").cancel())
                }
                ConsumerOp::Poll(k) => {
                    let mut cx = Context::from_waker(&wakers[k]);
                    ConsumerObs::Poll(
                        consumer
                            .as_mut()
                            .expect("live")
                            .poll_result(&mut cx)
                            .map(id_of),
                    )
                }
                ConsumerOp::TryTake => {
                    ConsumerObs::TryTake(consumer.as_mut().expect("live").try_take().map(id_of))
                }
                ConsumerOp::Drop => {
                    drop(consumer.take());
                    ConsumerObs::Dropped
                }
            };
            let (polled, completed) = thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            RaceObs {
                polled,
                completed,
                consumer: Some(observed),
            }
        });
        let observables = self.observables();

        let candidates: Vec<_> = interleavings(&race)
            .into_iter()
            .filter_map(|steps| {
                let (model, obs) = self.model.interleave(cell, value_id, &steps)?;
                Some((steps, model, obs))
            })
            .collect();
        let matching = candidates
            .iter()
            .find(|(_, model, obs)| *obs == actual && model.observables() == observables);
        match matching {
            Some((_, model, _)) => self.model = model.clone(),
            None => {
                let explained: Vec<String> = candidates
                    .iter()
                    .map(|(steps, model, obs)| {
                        format!(
                            "  {steps:?}\n    -> {obs:?}\n       {:?}",
                            model.observables()
                        )
                    })
                    .collect();
                panic!(
                    "step {}: {:?}: no interleaving explains the race\n  observed {actual:?}\n           {observables:?}\n  model before: {:?}\ncandidates:\n{}",
                    self.step,
                    self.op,
                    self.model.cells[cell],
                    explained.join("\n")
                );
            }
        }
    }

    fn observables(&self) -> Observables {
        Observables {
            wakes: std::array::from_fn(|k| self.counters[k].0.load(Ordering::SeqCst)),
            strong_counts: std::array::from_fn(|k| Arc::strong_count(&self.counters[k])),
            dropped: self.ledger.total.load(Ordering::SeqCst),
        }
    }

    /// The checks that hold between any two operations.
    fn check(&self) {
        let (step, op) = (self.step, self.op);
        let actual = self.observables();
        let expected = self.model.observables();
        for k in 0..WAKERS {
            assert_eq!(
                actual.wakes[k], expected.wakes[k],
                "step {step}: {op:?}: waker #{k} woken {} times, the model says {}",
                actual.wakes[k], expected.wakes[k]
            );
            assert_eq!(
                actual.strong_counts[k], expected.strong_counts[k],
                "step {step}: {op:?}: waker #{k} has {} references, the model says {} (leaked or freed early)",
                actual.strong_counts[k], expected.strong_counts[k]
            );
        }
        assert_eq!(
            actual.dropped, expected.dropped,
            "step {step}: {op:?}: {} values dropped, the model says {}",
            actual.dropped, expected.dropped
        );
        for i in 0..CELLS {
            let (producer, consumer) = (&self.producers[i], &self.consumers[i]);
            let Some(cell) = self.model.cells[i] else {
                assert!(
                    producer.is_none() && consumer.is_none(),
                    "harness: cell {i} has handles but no model"
                );
                continue;
            };
            assert_eq!(
                producer.is_some(),
                cell.producer,
                "harness: cell {i} producer presence"
            );
            assert_eq!(
                consumer.is_some(),
                cell.consumer,
                "harness: cell {i} consumer presence"
            );
            if let Some(producer) = producer {
                assert_eq!(
                    producer.is_cancelled(),
                    cell.outcome == Outcome::Cancelled,
                    "step {step}: {op:?}: cell {i}: is_cancelled in {:?}",
                    cell.outcome
                );
            }
            if let Some(consumer) = consumer {
                let complete = matches!(cell.outcome, Outcome::Complete(_) | Outcome::Taken);
                assert_eq!(
                    consumer.is_complete(),
                    complete,
                    "step {step}: {op:?}: cell {i}: is_complete in {:?}",
                    cell.outcome
                );
            }
        }
    }

    /// Drops every remaining handle, checking after each, then checks that every value was
    /// dropped exactly once and that no cell still holds a waker.
    fn finish(mut self) {
        for i in 0..CELLS {
            let order = if i % 2 == 0 {
                [Op::DropConsumer { cell: i }, Op::DropProducer { cell: i }]
            } else {
                [Op::DropProducer { cell: i }, Op::DropConsumer { cell: i }]
            };
            for op in order {
                self.step += 1;
                self.op = Some(op);
                self.run(op);
                self.check();
            }
        }
        assert!(
            self.model.cells.iter().all(Option::is_none),
            "model: cells left after dropping all handles"
        );
        let drops = self.ledger.drops.lock().unwrap();
        for (id, count) in drops.iter().enumerate() {
            assert_eq!(*count, 1, "value #{id} dropped {count} times at the end");
        }
        for k in 0..WAKERS {
            assert_eq!(
                Arc::strong_count(&self.counters[k]),
                2,
                "waker #{k} still referenced by a freed cell"
            );
        }
    }
}
