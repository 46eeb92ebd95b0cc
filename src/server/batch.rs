//! The batch scheduler (`batching.mode = static | continuous`): one OS thread per worker runs
//! batched forward passes of the Mini-GPT, fed by a bounded FIFO queue from the event loop.
//! The semantics are the simulator's (`sim::batch`).
//!
//! ```text
//!  event loop ── submit (queue full → 503) ──► queue ──► scheduler thread
//!   static:     idle until max_batch requests wait or the oldest has waited max_wait_ms;
//!               take ≤ max_batch, step until the longest is done (finished sequences stay,
//!               nobody joins), then answer them all
//!   continuous: at every step boundary take ≤ max_batch − running, step, answer the
//!               finished ones at once
//!
//!  one step: lock ─ joiners: request_locked ─ unlock ─ request_free ─ lock ─ prefill
//!            ─ step_batch (step work split over its kernels, the lock dropped around each
//!              matmul, as in the unbatched handler) ─ unlock
//! ```
//!
//! The step's emulated work is `batching.step_* + B·seq_*` for a batch of B (finished
//! sequences of a `static` batch count: they still occupy it). A joining sequence pays its
//! `cost.request_*` work and its prefill in the step it joins.
//!
//! Each answered request reports the times of the steps it was part of (the wall-clock view
//! of its life in the batch) and its share (1/B) of each step's CPU time.
//!
//! Deadlines: a request still queued at its deadline never joins (504); a sequence in the
//! batch whose deadline has passed leaves it at the next step boundary, answered 504 with
//! the tokens it had, and frees its slot. A step already running is not interrupted.

use super::api::CorrectRequest;
use super::busy::thread_cpu_ns;
use super::gil::Gil;
use super::handler::{self, HandlerOutput, HandlerTimes, TokenHooks};
use super::session::LockSession;
use super::work::{StepSampler, Work};
use crate::gpt::{Model, Sequence, Workspace};
use crate::scenario::{Batching, BatchingMode};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Why a batched request gave no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The scheduler's queue holds its limit of waiting requests.
    #[error("the batch queue holds its limit of {0} requests")]
    Full(usize),
    /// The request was still waiting to join a batch at its deadline; it never ran.
    #[error("the request waited to join a batch beyond its deadline")]
    TimedOut,
    /// The deadline passed while the sequence was in the batch: it left at a step boundary.
    #[error("stopped by the request timeout after {tokens} of {asked} tokens")]
    Stopped {
        /// Tokens generated before it left.
        tokens: u32,
        /// Tokens the request asked for.
        asked: u32,
    },
    /// The scheduler is shut down, or a step panicked.
    #[error("the batch scheduler is shut down or failed")]
    Closed,
    /// The model refused the request.
    #[error("{0}")]
    Model(String),
}

/// A batched request's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Batched {
    /// From submission to joining a batch.
    pub waited: Duration,
    /// The generated text, the tokens and where the time went.
    pub out: HandlerOutput,
}

/// The scheduler's counters (`/stats` → `batch`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BatchStats {
    /// `batching.mode`.
    pub mode: String,
    /// `batching.max_batch` (0 without batching).
    pub max_batch: u32,
    /// Batched steps run.
    pub steps: u64,
    /// Sum of the batch sizes over the steps.
    pub sequences: u64,
    /// Mean batch size per step: `sequences / steps` (0 before any step).
    pub mean_batch: f64,
    /// Largest batch so far.
    pub peak_batch: u64,
    /// Requests that joined a batch.
    pub joined: u64,
    /// Sequences in the batch now.
    pub running: u64,
    /// Requests waiting to join now.
    pub queued: u64,
    /// Wall time of the scheduler thread spent in steps [ms].
    pub busy_ms: f64,
    /// CPU time of the scheduler thread spent in steps [ms].
    pub cpu_ms: f64,
}

/// A request waiting to join a batch.
struct Job {
    req: CorrectRequest,
    work: Work,
    deadline: Instant,
    submitted: Instant,
    ticket: Arc<AtomicU8>,
    reply: oneshot::Sender<Result<Batched, BatchError>>,
}

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const CANCELLED: u8 = 2;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    steps: AtomicU64,
    sequences: AtomicU64,
    peak: AtomicU64,
    joined: AtomicU64,
    running: AtomicU64,
    busy_ns: AtomicU64,
    cpu_ns: AtomicU64,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The scheduler of one worker: a handle to its thread and its queue. Dropping it lets the
/// thread finish every queued request, then joins it.
pub struct Batcher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    mode: BatchingMode,
    max_batch: u32,
    /// Most requests waiting to join.
    bound: usize,
}

/// What the scheduler thread needs.
pub struct SchedulerParts {
    /// The worker's weights.
    pub model: Arc<Model>,
    /// The worker's lock (`None` for `worker.lock = "none"`).
    pub gil: Option<Arc<Gil>>,
    /// Draws each step's emulated work.
    pub steps: StepSampler,
    /// Records each step's batch size (`/metrics`).
    pub sizes: metrics::Histogram,
}

impl Batcher {
    /// Starts the scheduler thread for `batching` (whose mode must not be `none`), with a
    /// queue of at most `bound` waiting requests.
    pub fn start(batching: &Batching, bound: usize, parts: SchedulerParts) -> std::io::Result<Batcher> {
        let shared = Arc::new(Shared::default());
        let scheduler = Scheduler {
            shared: Arc::clone(&shared),
            lock: LockSession::new(parts.gil),
            model: parts.model,
            steps: parts.steps,
            sizes: parts.sizes,
            ws: Workspace::default(),
            mode: batching.mode,
            max_batch: batching.max_batch.max(1) as usize,
            max_wait: Duration::from_secs_f64(batching.max_wait_ms.max(0.0) / 1e3),
            active: Vec::new(),
        };
        let thread = std::thread::Builder::new().name("batcher".into()).spawn(move || scheduler.run())?;
        Ok(Batcher {
            shared,
            thread: Some(thread),
            mode: batching.mode,
            max_batch: batching.max_batch,
            bound: bound.max(1),
        })
    }

    fn submit(&self, job: Job) -> Result<(), BatchError> {
        let mut q = self.shared.queue();
        if q.closed {
            return Err(BatchError::Closed);
        }
        if q.jobs.len() >= self.bound {
            return Err(BatchError::Full(self.bound));
        }
        q.jobs.push_back(job);
        drop(q);
        self.shared.ready.notify_one();
        Ok(())
    }

    /// Queues `req` with its drawn `work` and awaits its answer. A request still waiting to
    /// join at `deadline` never runs ([`BatchError::TimedOut`]); once in a batch, it leaves
    /// at the first step boundary past `deadline` ([`BatchError::Stopped`]).
    pub async fn run(
        &self,
        req: CorrectRequest,
        work: Work,
        deadline: Instant,
    ) -> Result<Batched, BatchError> {
        let ticket = Arc::new(AtomicU8::new(QUEUED));
        let (reply, mut rx) = oneshot::channel();
        let submitted = Instant::now();
        self.submit(Job { req, work, deadline, submitted, ticket: Arc::clone(&ticket), reply })?;
        let lost = |ticket: &AtomicU8| match ticket.load(Ordering::Acquire) {
            CANCELLED => BatchError::TimedOut,
            _ => BatchError::Closed,
        };
        match tokio::time::timeout_at(deadline.into(), &mut rx).await {
            Ok(r) => r.map_err(|_| lost(&ticket))?,
            Err(_) => {
                if ticket.compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                    return Err(BatchError::TimedOut);
                }
                // Already in a batch: it leaves at its next step boundary; wait for that.
                rx.await.map_err(|_| lost(&ticket))?
            }
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> BatchStats {
        let s = &self.shared;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (steps, sequences) = (l(&s.steps), l(&s.sequences));
        BatchStats {
            mode: serde_json::to_value(self.mode)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            max_batch: self.max_batch,
            steps,
            sequences,
            mean_batch: if steps == 0 { 0.0 } else { sequences as f64 / steps as f64 },
            peak_batch: l(&s.peak),
            joined: l(&s.joined),
            running: l(&s.running),
            queued: s.queue().jobs.len() as u64,
            busy_ms: l(&s.busy_ns) as f64 / 1e6,
            cpu_ms: l(&s.cpu_ns) as f64 / 1e6,
        }
    }
}

impl Drop for Batcher {
    /// Lets the scheduler answer every queued request, then stops and joins it.
    fn drop(&mut self) {
        self.shared.queue().closed = true;
        self.shared.ready.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A sequence in the batch.
struct Member {
    seq: Sequence,
    reply: oneshot::Sender<Result<Batched, BatchError>>,
    deadline: Instant,
    asked: u32,
    waited: Duration,
    /// The steps it was part of.
    t: HandlerTimes,
}

/// The scheduler thread's state.
struct Scheduler {
    shared: Arc<Shared>,
    model: Arc<Model>,
    lock: LockSession,
    steps: StepSampler,
    sizes: metrics::Histogram,
    ws: Workspace,
    mode: BatchingMode,
    max_batch: usize,
    max_wait: Duration,
    active: Vec<Member>,
}

impl Scheduler {
    fn run(mut self) {
        while let Some(joining) = self.next_joining() {
            let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.step(joining)));
            if step.is_err() {
                // A bug in a step must not take the worker with it: the batch's requests
                // fail with 500 (their reply channels drop) and the scheduler goes on.
                self.lock.release();
                self.active.clear();
                self.shared.running.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Blocks until there is a step to run; returns the requests that join in it (none
    /// when only the running batch goes on), or `None` once shut down with nothing left.
    fn next_joining(&mut self) -> Option<Vec<Job>> {
        let busy = !self.active.is_empty();
        if busy && self.mode == BatchingMode::Static {
            return Some(Vec::new());
        }
        let shared = Arc::clone(&self.shared);
        let mut q = shared.queue();
        if busy {
            return Some(take(&mut q, self.max_batch - self.active.len()));
        }
        loop {
            if q.jobs.is_empty() {
                if q.closed {
                    return None;
                }
                q = shared.ready.wait(q).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            if self.mode == BatchingMode::Static && !q.closed && q.jobs.len() < self.max_batch {
                let due = q.jobs[0].submitted + self.max_wait;
                let now = Instant::now();
                if now < due {
                    q = shared.ready.wait_timeout(q, due - now).unwrap_or_else(PoisonError::into_inner).0;
                    continue;
                }
            }
            return Some(take(&mut q, self.max_batch));
        }
    }

    /// One step: `joining` join (their work and prefill), then every sequence of the batch
    /// advances one token; the finished ones leave as the mode says.
    fn step(&mut self, joining: Vec<Job>) {
        self.expire(Instant::now());
        if joining.is_empty() && self.active.is_empty() {
            return; // every request taken had been cancelled, or every member expired
        }
        let (t0, c0) = (Instant::now(), thread_cpu_ns());
        let (wait0, held0) = (self.lock.wait, self.lock.held);
        let mut t = HandlerTimes::default();
        self.lock.acquire();
        for job in joining {
            self.join(job, &mut t);
        }
        let size = self.active.len();
        let sh = &self.shared;
        sh.running.store(size as u64, Ordering::Relaxed);
        sh.peak.fetch_max(size as u64, Ordering::Relaxed);
        if self.active.iter().any(|m| !m.seq.is_finished()) {
            let cost = self.steps.draw(size as u32);
            let mut seqs: Vec<&mut Sequence> = self.active.iter_mut().map(|m| &mut m.seq).collect();
            t = handler::batched_step(&self.model, &mut self.ws, &mut self.lock, &mut seqs, cost, t);
            sh.steps.fetch_add(1, Ordering::Relaxed);
            sh.sequences.fetch_add(size as u64, Ordering::Relaxed);
            self.sizes.record(size as f64);
        }
        self.lock.release();
        let wall = t0.elapsed();
        t.lock_wait = self.lock.wait.saturating_sub(wait0);
        t.lock_held = self.lock.held.saturating_sub(held0);
        t.compute = wall.saturating_sub(t.lock_wait);
        t.cpu_ns = thread_cpu_ns().saturating_sub(c0);
        sh.busy_ns.fetch_add(wall.as_nanos() as u64, Ordering::Relaxed);
        sh.cpu_ns.fetch_add(t.cpu_ns, Ordering::Relaxed);
        for m in &mut self.active {
            add_step(&mut m.t, &t, size);
        }
        self.retire();
    }

    /// `job` joins the batch: its emulated request work, then its prefill (the lock held
    /// before and after, dropped around the prefill's kernels).
    fn join(&mut self, job: Job, t: &mut HandlerTimes) {
        let waited = job.submitted.elapsed();
        self.shared.joined.fetch_add(1, Ordering::Relaxed);
        handler::request_work(&mut self.lock, &job.work, t);
        let mut hooks = TokenHooks::new(&mut self.lock, &[], &self.model, *t);
        let req = &job.req;
        let seq = self.model.start(&req.sentence, req.max_new_tokens as usize, req.stop_at_eos, &mut hooks);
        *t = hooks.t;
        match seq {
            Ok(seq) => self.active.push(Member {
                seq,
                reply: job.reply,
                deadline: job.deadline,
                asked: req.max_new_tokens,
                waited,
                t: HandlerTimes::default(),
            }),
            Err(e) => {
                let _ = job.reply.send(Err(BatchError::Model(e.to_string())));
            }
        }
    }

    /// Answers 504 to the unfinished members whose deadline has passed, at this step
    /// boundary, and takes them out of the batch (a finished one is answered as usual).
    fn expire(&mut self, now: Instant) {
        if !self.active.iter().any(|m| now >= m.deadline && !m.seq.is_finished()) {
            return;
        }
        let (late, keep): (Vec<Member>, Vec<Member>) = std::mem::take(&mut self.active)
            .into_iter()
            .partition(|m| now >= m.deadline && !m.seq.is_finished());
        self.active = keep;
        self.shared.running.store(self.active.len() as u64, Ordering::Relaxed);
        for m in late {
            let tokens = m.seq.new_tokens() as u32;
            let _ = m.reply.send(Err(BatchError::Stopped { tokens, asked: m.asked }));
        }
    }

    /// Answers the sequences that leave: `continuous`, every finished one; `static`, the
    /// whole batch once all are finished.
    fn retire(&mut self) {
        let leave = match self.mode {
            BatchingMode::Static => self.active.iter().all(|m| m.seq.is_finished()),
            _ => self.active.iter().any(|m| m.seq.is_finished()),
        };
        if !leave {
            return;
        }
        let (done, running): (Vec<Member>, Vec<Member>) =
            std::mem::take(&mut self.active).into_iter().partition(|m| m.seq.is_finished());
        self.active = running;
        self.shared.running.store(self.active.len() as u64, Ordering::Relaxed);
        for m in done {
            let mut times = m.t;
            times.model_other =
                times.compute.saturating_sub(times.matmul + times.busy_locked + times.busy_free);
            let out = HandlerOutput { text: m.seq.text(), tokens: m.seq.new_tokens() as u32, times };
            let _ = m.reply.send(Ok(Batched { waited: m.waited, out }));
        }
    }
}

/// Up to `n` queued requests that may still run, oldest first. A request past its deadline
/// is cancelled (its handler answers 504); one its handler cancelled is dropped.
fn take(q: &mut Queue, n: usize) -> Vec<Job> {
    let mut out = Vec::with_capacity(n.min(q.jobs.len()));
    let now = Instant::now();
    while out.len() < n {
        let Some(job) = q.jobs.pop_front() else { break };
        if now >= job.deadline {
            let _ = job.ticket.compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire);
        }
        if job.ticket.compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            out.push(job);
        }
    }
    out
}

/// Adds a step's times to a member's: wall-clock figures whole, CPU time as a 1/`batch`
/// share.
fn add_step(into: &mut HandlerTimes, step: &HandlerTimes, batch: usize) {
    into.compute += step.compute;
    into.matmul += step.matmul;
    into.busy_locked += step.busy_locked;
    into.busy_free += step.busy_free;
    into.lock_wait += step.lock_wait;
    into.lock_held += step.lock_held;
    into.cpu_ns += step.cpu_ns / batch.max(1) as u64;
    into.kernels += step.kernels;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpt::Config;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    fn batcher(
        mode: BatchingMode,
        max_batch: u32,
        max_wait_ms: f64,
        bound: usize,
    ) -> (Arc<Model>, Arc<Batcher>) {
        let model = Arc::new(Model::init(&Config::default(), 7));
        let b = Batching { mode, max_batch, max_wait_ms, ..Batching::default() };
        let parts = SchedulerParts {
            model: Arc::clone(&model),
            gil: Some(Arc::new(Gil::new(None))),
            steps: StepSampler::new(&b, 1, 0),
            sizes: metrics::Histogram::noop(),
        };
        (model, Arc::new(Batcher::start(&b, bound, parts).unwrap()))
    }

    fn request(sentence: &str, n: u32) -> CorrectRequest {
        CorrectRequest { sentence: sentence.into(), max_new_tokens: n, stop_at_eos: false }
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    /// Submits every request at once (in order) and collects the answers in order.
    fn run_all(b: &Arc<Batcher>, reqs: &[(&str, u32)]) -> Vec<Batched> {
        rt().block_on(async {
            let tasks: Vec<_> = reqs
                .iter()
                .map(|&(s, n)| {
                    let (b, r) = (Arc::clone(b), request(s, n));
                    tokio::spawn(async move { b.run(r, Work::default(), far()).await })
                })
                .collect();
            let mut outs = Vec::new();
            for t in tasks {
                outs.push(t.await.unwrap().unwrap());
            }
            outs
        })
    }

    #[test]
    fn continuous_batches_give_each_sequence_its_own_tokens_and_the_unbatched_text() {
        let (model, b) = batcher(BatchingMode::Continuous, 4, 0.0, 64);
        let asks = [("the quick brown fox", 3), ("hello", 9), ("a b c", 0), ("jumps over", 5), ("x", 12)];
        let outs = run_all(&b, &asks);
        for ((s, n), got) in asks.iter().zip(&outs) {
            let alone = handler::run(&model, None, &request(s, *n), &Work::default(), None).unwrap();
            assert_eq!((got.out.tokens, &got.out.text), (*n, &alone.text), "{s}");
        }
        let st = b.stats();
        assert_eq!((st.mode.as_str(), st.joined, st.running, st.queued), ("continuous", 5, 0, 0));
        assert!(st.steps > 0 && st.peak_batch <= 4, "{st:?}");
        assert!(st.mean_batch >= 1.0 && st.mean_batch <= 4.0, "{st:?}");
    }

    #[test]
    fn a_static_batch_goes_full_at_once_or_partial_after_max_wait() {
        let (_, b) = batcher(BatchingMode::Static, 3, 10_000.0, 64);
        let full = run_all(&b, &[("full", 1), ("full", 2), ("full", 3)]);
        assert!(full.iter().all(|o| o.waited < Duration::from_secs(5)), "a full batch waited");
        // The longest sequence sets the batch's steps; the others stay in until it is done.
        assert_eq!(b.stats().steps, 3);
        assert_eq!(b.stats().sequences, 9);
        let (_, b) = batcher(BatchingMode::Static, 8, 30.0, 64);
        let alone = rt().block_on(b.run(request("alone", 2), Work::default(), far())).unwrap();
        assert!(alone.waited >= Duration::from_millis(30), "{:?}", alone.waited);
        assert_eq!(alone.out.tokens, 2);
    }

    #[test]
    fn a_full_queue_refuses_and_a_late_request_times_out() {
        let (_, b) = batcher(BatchingMode::Static, 8, 300.0, 2);
        rt().block_on(async {
            let soon = Instant::now() + Duration::from_millis(50);
            let (a, late, full) = tokio::join!(
                b.run(request("one", 1), Work::default(), far()),
                b.run(request("two", 1), Work::default(), soon),
                b.run(request("three", 1), Work::default(), far()),
            );
            assert_eq!(a.unwrap().out.tokens, 1);
            assert_eq!(late, Err(BatchError::TimedOut));
            assert_eq!(full, Err(BatchError::Full(2)));
        });
        assert_eq!(b.stats().joined, 1, "the timed-out request never ran");
    }

    #[test]
    fn a_sequence_past_its_deadline_leaves_the_batch_at_a_step_boundary() {
        let model = Arc::new(Model::init(&Config::default(), 7));
        let gil = Arc::new(Gil::new(None));
        // 2 ms of CPU per step: 100 tokens take ≥ 200 ms, far beyond a 30 ms deadline.
        let b = Batching {
            mode: BatchingMode::Continuous,
            max_batch: 4,
            step_free_ms: crate::workload::Dist::Const(2.0),
            ..Batching::default()
        };
        let parts = SchedulerParts {
            model,
            gil: Some(Arc::clone(&gil)),
            steps: StepSampler::new(&b, 1, 0),
            sizes: metrics::Histogram::noop(),
        };
        let batcher = Batcher::start(&b, 8, parts).unwrap();
        rt().block_on(async {
            let soon = Instant::now() + Duration::from_millis(30);
            let (late, ok) = tokio::join!(
                batcher.run(request("long", 100), Work::default(), soon),
                batcher.run(request("short", 3), Work::default(), far()),
            );
            match late {
                Err(BatchError::Stopped { tokens, asked: 100 }) => assert!(tokens < 100, "{tokens}"),
                other => panic!("expected a stop, got {other:?}"),
            }
            assert_eq!(ok.unwrap().out.tokens, 3);
            // The batch goes on without it.
            let after = batcher.run(request("after", 2), Work::default(), far()).await;
            assert_eq!(after.unwrap().out.tokens, 2);
        });
        assert_eq!(batcher.stats().running, 0);
        drop(batcher);
        assert_eq!(gil.acquire(), Duration::ZERO, "the lock is free");
        gil.release();
    }

    #[test]
    fn emulated_step_work_is_done_with_the_lock_left_free() {
        let model = Arc::new(Model::init(&Config::default(), 7));
        let gil = Arc::new(Gil::new(None));
        let b = Batching {
            mode: BatchingMode::Continuous,
            step_locked_ms: crate::workload::Dist::Const(0.5),
            seq_free_ms: crate::workload::Dist::Const(0.25),
            ..Batching::default()
        };
        let parts = SchedulerParts {
            model,
            gil: Some(Arc::clone(&gil)),
            steps: StepSampler::new(&b, 1, 0),
            sizes: metrics::Histogram::noop(),
        };
        let batcher = Batcher::start(&b, 8, parts).unwrap();
        let work = Work { request_locked_ns: 1_000_000, ..Work::default() };
        let out = rt().block_on(batcher.run(request("busy", 4), work, far())).unwrap().out;
        let t = out.times;
        // 4 steps of 0.5 ms locked and 0.25 ms free (one sequence), plus 1 ms locked to join.
        assert!(t.busy_locked >= Duration::from_micros(2_900), "{t:?}");
        assert!(t.busy_free >= Duration::from_micros(950), "{t:?}");
        assert!(t.lock_held >= t.busy_locked && t.cpu_ns >= 3_900_000, "{t:?}");
        drop(batcher);
        assert_eq!(gil.acquire(), Duration::ZERO, "the lock is free");
        gil.release();
        assert_eq!(gil.stats().max_holders, 1);
    }
}
