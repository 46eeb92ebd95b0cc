//! The scheduler thread: it waits for requests as the mode says, runs one batched step at
//! a time, and answers the sequences that finish or run past their deadline.

use super::batcher::SchedulerParts;
use super::queue::{Job, Shared, take};
use super::{BatchError, Batched};
use crate::gpt::{Model, Sequence, Workspace};
use crate::scenario::{Batching, BatchingMode};
use crate::server::busy::thread_cpu_ns;
use crate::server::handler::{self, HandlerOutput, HandlerTimes, TokenHooks};
use crate::server::session::LockSession;
use crate::server::work::StepSampler;
use std::sync::Arc;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

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
pub(super) struct Scheduler {
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
    /// The state of a scheduler thread for `batching`, fed from `shared`.
    pub(super) fn new(shared: Arc<Shared>, batching: &Batching, parts: SchedulerParts) -> Scheduler {
        Scheduler {
            shared,
            lock: LockSession::new(parts.gil),
            model: parts.model,
            steps: parts.steps,
            sizes: parts.sizes,
            ws: Workspace::default(),
            mode: batching.mode,
            max_batch: batching.max_batch.max(1) as usize,
            max_wait: Duration::from_secs_f64(batching.max_wait_ms.max(0.0) / 1e3),
            active: Vec::new(),
        }
    }

    pub(super) fn run(mut self) {
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
