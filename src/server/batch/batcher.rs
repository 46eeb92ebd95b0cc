//! The handle the event loop holds: it starts the scheduler thread, queues requests and
//! awaits their answers, reads the counters, and stops the thread when dropped.

use super::queue::{Job, Shared};
use super::scheduler::Scheduler;
use super::{BatchError, BatchStats, Batched};
use crate::gpt::Model;
use crate::scenario::{Batching, BatchingMode};
use crate::server::api::CorrectRequest;
use crate::server::gil::Gil;
use crate::server::ticket::{Ticket, Withdraw};
use crate::server::work::{StepSampler, Work};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::oneshot;

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
        let scheduler = Scheduler::new(Arc::clone(&shared), batching, parts);
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
    /// join at `deadline` never runs ([`BatchError::TimedOut`]), nor does one whose
    /// `ticket` is withdrawn first (its client left) or whose future is dropped: it leaves
    /// the queue. Once in a batch, it leaves at the first step boundary past `deadline`
    /// ([`BatchError::Stopped`]).
    pub async fn run(
        &self,
        ticket: Ticket,
        req: CorrectRequest,
        work: Work,
        deadline: Instant,
    ) -> Result<Batched, BatchError> {
        let (reply, mut rx) = oneshot::channel();
        let submitted = Instant::now();
        self.submit(Job { req, work, deadline, submitted, ticket: ticket.clone(), reply })?;
        let _queued = Withdraw::on_drop(&ticket, |t| self.shared.remove(t));
        let lost =
            |ticket: &Ticket| if ticket.withdrawn() { BatchError::TimedOut } else { BatchError::Closed };
        match tokio::time::timeout_at(deadline.into(), &mut rx).await {
            Ok(r) => r.map_err(|_| lost(&ticket))?,
            Err(_) => {
                if ticket.withdraw() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpt::Config;
    use crate::server::handler;
    use std::time::Duration;

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
                    tokio::spawn(async move { b.run(Ticket::new(), r, Work::default(), far()).await })
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
        let alone = rt().block_on(b.run(Ticket::new(), request("alone", 2), Work::default(), far())).unwrap();
        assert!(alone.waited >= Duration::from_millis(30), "{:?}", alone.waited);
        assert_eq!(alone.out.tokens, 2);
    }

    #[test]
    fn a_full_queue_refuses_and_a_late_request_times_out() {
        let (_, b) = batcher(BatchingMode::Static, 8, 300.0, 2);
        rt().block_on(async {
            let soon = Instant::now() + Duration::from_millis(50);
            let (a, late, full) = tokio::join!(
                b.run(Ticket::new(), request("one", 1), Work::default(), far()),
                b.run(Ticket::new(), request("two", 1), Work::default(), soon),
                b.run(Ticket::new(), request("three", 1), Work::default(), far()),
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
                batcher.run(Ticket::new(), request("long", 100), Work::default(), soon),
                batcher.run(Ticket::new(), request("short", 3), Work::default(), far()),
            );
            match late {
                Err(BatchError::Stopped { tokens, asked: 100 }) => assert!(tokens < 100, "{tokens}"),
                other => panic!("expected a stop, got {other:?}"),
            }
            assert_eq!(ok.unwrap().out.tokens, 3);
            // The batch goes on without it.
            let after = batcher.run(Ticket::new(), request("after", 2), Work::default(), far()).await;
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
        let out = rt().block_on(batcher.run(Ticket::new(), request("busy", 4), work, far())).unwrap().out;
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
