//! The handler's work for one request, on whichever thread runs it (a pool thread, or the
//! event loop in `async-blocking`): emulated per-request work, then the Mini-GPT — prefill
//! and exactly `max_new_tokens` steps — with the lock handled as CPython and NumPy do.
//!
//! ```text
//!  lock ─ request_locked ─ unlock ─ request_free ─ lock ─ model ────────────────── unlock
//!  model, per token:  token_start ─ [ unlock · free/k · MATMUL · lock · locked/k ] × k kernels
//! ```
//!
//! The model's own compute outside the kernels (embedding, LayerNorm, softmax, GELU,
//! bookkeeping) runs holding the lock: it is the interpreter work of a NumPy model. The
//! kernels run without it, as NumPy releases the GIL inside its matmuls. A token's emulated
//! work is split evenly over its k kernels; the last token, whose logits came from the
//! previous forward pass, has no kernels of its own and does its work in one piece.
//!
//! The request's deadline is checked at every token boundary: before the prefill and before
//! each step. Once it has passed, the handler stops there — releasing the lock, leaving its
//! thread free — and the request gets 504 ([`HandlerError::TimedOut`]). What runs between
//! two checks cannot be interrupted: the per-request work (`cost.request_*`), the prefill
//! (one forward pass over the whole prompt), and one token's step with its `cost.token_*`
//! work. A request stops at most one of those late.

use super::api::CorrectRequest;
use super::busy::{NoSwitch, spin, thread_cpu_ns};
use super::gil::Gil;
use super::session::LockSession;
use super::work::Work;
use crate::gpt::{GptError, KernelHooks, Model, Sequence, Workspace};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why the handler gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The model refused the request.
    #[error(transparent)]
    Model(#[from] GptError),
    /// The deadline passed at a token boundary: the handler stopped there.
    #[error("stopped by the request timeout after {tokens} of {asked} tokens")]
    TimedOut {
        /// Tokens generated before it stopped.
        tokens: u32,
        /// Tokens the request asked for.
        asked: u32,
    },
}

/// Where the handler's time went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HandlerTimes {
    /// Wall time of the handler, lock waits excluded.
    pub compute: Duration,
    /// Inside matmul kernels, attention's q·Kᵀ and p·V included.
    pub matmul: Duration,
    /// The model's compute outside kernels (and the lock operations around them).
    pub model_other: Duration,
    /// Emulated work holding the lock.
    pub busy_locked: Duration,
    /// Emulated work without the lock.
    pub busy_free: Duration,
    /// Waiting for the lock.
    pub lock_wait: Duration,
    /// Holding the lock.
    pub lock_held: Duration,
    /// CPU time of the thread that ran the handler (ns).
    pub cpu_ns: u64,
    /// Matmul kernels run.
    pub kernels: u64,
}

/// The handler's result.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerOutput {
    /// The generated text.
    pub text: String,
    /// Tokens generated.
    pub tokens: u32,
    /// Where the time went.
    pub times: HandlerTimes,
}

fn timed(d: &mut Duration, f: impl FnOnce()) {
    let t = Instant::now();
    f();
    *d += t.elapsed();
}

/// Kernel hooks that drop the lock around every matmul and do each token's emulated work:
/// at each `token_start` the next (locked, free) pair of `costs` is split evenly over the
/// token's k kernels. The batch scheduler uses them too, one pair per batched step.
pub(super) struct TokenHooks<'a> {
    lock: &'a mut LockSession,
    costs: &'a [(u64, u64)],
    next: usize,
    /// Kernels per token.
    k: u64,
    /// Kernel slices of the current token's work still to do.
    left: u64,
    slice: (u64, u64),
    entered: Option<Instant>,
    /// Where the time went so far.
    pub(super) t: HandlerTimes,
}

impl<'a> TokenHooks<'a> {
    /// Hooks on `lock` doing `costs` (ns), one pair per token, for a model of `model`'s
    /// kernels per token, adding to `t`.
    pub(super) fn new(
        lock: &'a mut LockSession,
        costs: &'a [(u64, u64)],
        model: &Model,
        t: HandlerTimes,
    ) -> Self {
        let k = model.config().kernels_per_token().max(1) as u64;
        Self { lock, costs, next: 0, k, left: 0, slice: (0, 0), entered: None, t }
    }

    /// Does whatever work of the current token its kernels did not absorb (the last token
    /// of a sequence has no kernels of its own); the lock is held before and after.
    pub(super) fn finish_token(&mut self) {
        let n = std::mem::take(&mut self.left);
        if n == 0 {
            return;
        }
        let (locked, free) = (n * self.slice.0, n * self.slice.1);
        timed(&mut self.t.busy_locked, || {
            spin(locked, self.lock);
        });
        self.lock.release();
        timed(&mut self.t.busy_free, || {
            spin(free, &mut NoSwitch);
        });
        self.lock.acquire();
    }
}

impl KernelHooks for TokenHooks<'_> {
    fn token_start(&mut self) {
        self.finish_token();
        super::busy::SwitchPoint::switch_point(self.lock);
        if let Some(&(locked, free)) = self.costs.get(self.next) {
            self.next += 1;
            self.slice = (locked / self.k, free / self.k);
            self.left = self.k;
        }
    }

    fn kernel_enter(&mut self) {
        self.lock.release();
        if self.left > 0 {
            let free = self.slice.1;
            timed(&mut self.t.busy_free, || {
                spin(free, &mut NoSwitch);
            });
        }
        self.entered = Some(Instant::now());
    }

    fn kernel_exit(&mut self) {
        if let Some(t) = self.entered.take() {
            self.t.matmul += t.elapsed();
        }
        self.t.kernels += 1;
        self.lock.acquire();
        if self.left > 0 {
            let locked = self.slice.0;
            timed(&mut self.t.busy_locked, || {
                spin(locked, self.lock);
            });
            self.left -= 1;
        }
    }
}

/// Advances `seqs` by one token in one batched step, as the batch scheduler runs it:
/// `cost` (ns) of emulated (locked, free) work split over the step's kernels, the lock
/// dropped around each kernel. The lock is held before and after; adds to `t`.
pub(super) fn batched_step(
    model: &Model,
    ws: &mut Workspace,
    lock: &mut LockSession,
    seqs: &mut [&mut Sequence],
    cost: (u64, u64),
    t: HandlerTimes,
) -> HandlerTimes {
    let costs = [cost];
    let mut hooks = TokenHooks::new(lock, &costs, model, t);
    model.step_batch_in(ws, seqs, &mut hooks);
    hooks.finish_token();
    hooks.t
}

/// Where one batched step's time goes on the server's own code path: `batched_step` on a
/// fresh lock session of `gil`, timed like the scheduler times it (compute is the step's
/// wall time less any lock wait). For calibration, which must measure what the server
/// runs — the lock operations around every kernel and the emulated work's own overhead
/// included.
pub fn time_batched_step(
    model: &Model,
    ws: &mut Workspace,
    gil: Option<Arc<Gil>>,
    seqs: &mut [&mut Sequence],
    cost_ns: (u64, u64),
) -> HandlerTimes {
    let mut lock = LockSession::new(gil);
    let t0 = Instant::now();
    lock.acquire();
    let mut t = batched_step(model, ws, &mut lock, seqs, cost_ns, HandlerTimes::default());
    lock.release();
    t.lock_wait = lock.wait;
    t.lock_held = lock.held;
    t.compute = t0.elapsed().saturating_sub(lock.wait);
    t
}

/// A sequence's start (its prompt's forward pass) on the server's own code path, as a
/// request joining a batch pays it: the lock held around it and dropped around every
/// kernel. Returns the sequence and the times (compute as in [`time_batched_step`]).
pub fn time_prefill(
    model: &Model,
    gil: Option<Arc<Gil>>,
    prompt: &str,
    max_new_tokens: usize,
) -> (Result<Sequence, GptError>, HandlerTimes) {
    let mut lock = LockSession::new(gil);
    let t0 = Instant::now();
    lock.acquire();
    let mut hooks = TokenHooks::new(&mut lock, &[], model, HandlerTimes::default());
    let seq = model.start(prompt, max_new_tokens, false, &mut hooks);
    let mut t = hooks.t;
    lock.release();
    t.lock_wait = lock.wait;
    t.lock_held = lock.held;
    t.compute = t0.elapsed().saturating_sub(lock.wait);
    (seq, t)
}

/// The request's emulated work before the model: `request_locked` holding the lock, then
/// `request_free` without it. Ends holding the lock, as the model code starts.
pub(super) fn request_work(lock: &mut LockSession, work: &Work, t: &mut HandlerTimes) {
    // Zero work is no step at all: no lock round trip for it.
    if work.request_locked_ns > 0 {
        lock.acquire();
        timed(&mut t.busy_locked, || {
            spin(work.request_locked_ns, lock);
        });
    }
    if work.request_free_ns > 0 {
        lock.release();
        timed(&mut t.busy_free, || {
            spin(work.request_free_ns, &mut NoSwitch);
        });
    }
    lock.acquire();
}

/// Runs the handler of `req` with its drawn `work` on the calling thread. Once `deadline`
/// (if any) has passed, it stops at the next token boundary with
/// [`HandlerError::TimedOut`]; the lock is released whatever the outcome.
pub fn run(
    model: &Model,
    gil: Option<Arc<Gil>>,
    req: &CorrectRequest,
    work: &Work,
    deadline: Option<Instant>,
) -> Result<HandlerOutput, HandlerError> {
    let (t0, c0) = (Instant::now(), thread_cpu_ns());
    // A token boundary is progress of the event loop when the handler runs on it.
    let late = || {
        super::heartbeat::loop_progress();
        deadline.is_some_and(|d| Instant::now() >= d)
    };
    let timed_out =
        |tokens: usize| HandlerError::TimedOut { tokens: tokens as u32, asked: req.max_new_tokens };
    // Dropping the session (on every return) releases the lock.
    let mut lock = LockSession::new(gil);
    let mut t = HandlerTimes::default();
    request_work(&mut lock, work, &mut t);
    if late() {
        return Err(timed_out(0));
    }
    let mut hooks = TokenHooks::new(&mut lock, &work.tokens, model, t);
    let mut seq = model.start(&req.sentence, req.max_new_tokens as usize, req.stop_at_eos, &mut hooks)?;
    while !seq.is_finished() {
        if late() {
            return Err(timed_out(seq.new_tokens()));
        }
        model.step(&mut seq, &mut hooks);
    }
    hooks.finish_token();
    let mut t = hooks.t;
    lock.release();
    let total = t0.elapsed();
    t.lock_wait = lock.wait;
    t.lock_held = lock.held;
    t.compute = total.saturating_sub(lock.wait);
    t.model_other = t.compute.saturating_sub(t.matmul + t.busy_locked + t.busy_free);
    t.cpu_ns = thread_cpu_ns().saturating_sub(c0);
    Ok(HandlerOutput { text: seq.text(), tokens: seq.new_tokens() as u32, times: t })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpt::Config;

    fn request(n: u32) -> CorrectRequest {
        CorrectRequest { sentence: "the quick brown fox".into(), max_new_tokens: n, stop_at_eos: false }
    }

    #[test]
    fn generates_exactly_the_tokens_asked_and_runs_every_kernel() {
        let model = Model::init(&Config::default(), 7);
        let k = model.config().kernels_per_token() as u64;
        for n in [0, 1, 5] {
            let work = Work { tokens: vec![(0, 0); n as usize], ..Work::default() };
            let out = run(&model, Some(Arc::new(Gil::new(None))), &request(n), &work, None).unwrap();
            assert_eq!(out.tokens, n);
            // The prefill (none for 0 tokens), then one forward pass per token but the last.
            assert_eq!(out.times.kernels, k * u64::from(n), "n = {n}");
        }
    }

    #[test]
    fn emulated_work_is_done_in_full_and_the_lock_is_left_free() {
        let model = Model::init(&Config::default(), 7);
        let gil = Arc::new(Gil::new(Some(Duration::from_millis(5))));
        let work = Work {
            request_locked_ns: 1_000_000,
            request_free_ns: 500_000,
            tokens: vec![(260_000, 130_000); 3],
            ..Work::default()
        };
        let out = run(&model, Some(Arc::clone(&gil)), &request(3), &work, None).unwrap();
        let t = out.times;
        // Busy work is CPU time; wall time can only be longer.
        assert!(t.busy_locked >= Duration::from_micros(1_780), "{t:?}");
        assert!(t.busy_free >= Duration::from_micros(890), "{t:?}");
        assert!(t.cpu_ns >= 2_670_000, "{t:?}");
        assert!(t.lock_held >= t.busy_locked, "{t:?}");
        assert_eq!(gil.acquire(), Duration::ZERO, "the lock is free");
        gil.release();
        assert_eq!(gil.stats().max_holders, 1);
    }

    #[test]
    fn stop_at_eos_may_stop_early_but_never_exceeds() {
        let model = Model::init(&Config::default(), 7);
        let req = CorrectRequest { stop_at_eos: true, ..request(30) };
        let work = Work { tokens: vec![(0, 0); 30], ..Work::default() };
        let out = run(&model, None, &req, &work, None).unwrap();
        assert!(out.tokens <= 30);
    }

    #[test]
    fn a_passed_deadline_stops_at_a_token_boundary_and_frees_the_lock() {
        let model = Model::init(&Config::default(), 7);
        let gil = Arc::new(Gil::new(Some(Duration::from_millis(5))));
        // 2 ms of CPU per token: 100 tokens take ≥ 200 ms, far beyond a 20 ms deadline.
        let work = Work { tokens: vec![(1_000_000, 1_000_000); 100], ..Work::default() };
        let deadline = Some(Instant::now() + Duration::from_millis(20));
        match run(&model, Some(Arc::clone(&gil)), &request(100), &work, deadline) {
            Err(HandlerError::TimedOut { tokens, asked }) => {
                assert_eq!(asked, 100);
                assert!(tokens < 100, "stopped after {tokens} tokens");
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        // Already past: stops before the prefill.
        let past = Some(Instant::now());
        let e = run(&model, Some(Arc::clone(&gil)), &request(5), &work, past).unwrap_err();
        assert!(matches!(e, HandlerError::TimedOut { tokens: 0, asked: 5 }), "{e:?}");
        assert_eq!(gil.acquire(), Duration::ZERO, "the lock is free");
        gil.release();
        assert_eq!(gil.stats().max_holders, 1);
    }
}
