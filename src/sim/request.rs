//! A request's work as a sequence of CPU steps, each with or without the lock, drawn
//! lazily from the request's own random stream (so a request costs the same in every
//! configuration of a sweep: common random numbers).

use super::stages::StageClock;
use crate::des::{Nanos, StreamRng, round_ns};
use crate::scenario::{LockKind, Scenario};
use crate::workload::{Dist, Sampler};
use rand::RngExt;

/// Most tokens one request may generate: a bound on any draw of `workload.new_tokens`.
pub(crate) const MAX_TOKENS: f64 = 1_000_000.0;

/// The cost samplers of a scenario, built once per run.
pub(crate) struct CostModel {
    loop_in_free: Sampler,
    loop_in: Sampler,
    loop_out: Sampler,
    loop_out_free: Sampler,
    req_locked: Sampler,
    req_free: Sampler,
    tok_locked: Sampler,
    tok_free: Sampler,
    rtt: Sampler,
    /// CPython's GIL: a parked thread's wake-up latency (µs).
    wake: Sampler,
    /// The same when no core is idle (µs); `None`: as `wake`, and no preemption.
    wake_busy: Option<Sampler>,
    /// CPython's GIL: the signaller's CPU for a signal that wakes a sleeper (ns).
    pub(crate) signal_ns: f64,
    /// CPython's GIL: the wake-up of a thread blocked on the mutex (ns); 0: as a parked
    /// waiter's.
    pub(crate) mutex_wake_ns: f64,
    /// CPython's GIL: the CPU of a wake-up (ns).
    pub(crate) vain_wake_ns: f64,
    /// CPython's GIL: the share of a wake-up's CPU spent holding the GIL's mutex.
    pub(crate) mutex_share: f64,
    /// CPython's GIL: the extra CPU of a take after a long wait (ns); 0: none.
    pub(crate) cold_start_ns: f64,
    /// Its time constant (ns).
    pub(crate) cold_start_tau_ns: f64,
    /// Whether `rtt` is zero, so replies reach clients at once.
    pub(crate) no_rtt: bool,
    tokens: Sampler,
    /// The token count when `workload.new_tokens` is a constant: no draw to make (a constant
    /// consumes no random number), and no sampler call whose dispatch other fields share.
    const_tokens: Option<u32>,
    /// Batched steps.
    pub(crate) step: StepCost,
    /// Whether loop work holds the lock.
    loop_locks: bool,
    /// Whether handler work marked "locked" holds the lock.
    handler_locks: bool,
    slices: u32,
    /// Whether both per-token costs are the constant 0: the token loop is skipped whole
    /// (constants draw no random number), rather than walked slice by slice — up to
    /// 1e6 tokens × 1e4 release points of nothing per request.
    free_tokens: bool,
    /// Bit `p` set: the segment of phase `p` always costs 0, so it is skipped without a
    /// draw (a constant draws no random number, so skipping leaves every stream as is).
    zero: u16,
}

impl CostModel {
    pub(crate) fn new(s: &Scenario) -> Self {
        let c = &s.cost;
        let has_lock = s.worker.lock != LockKind::None;
        Self {
            loop_in_free: c.loop_in_free_ms.sampler(),
            loop_in: c.loop_in_ms.sampler(),
            loop_out: c.loop_out_ms.sampler(),
            loop_out_free: c.loop_out_free_ms.sampler(),
            req_locked: c.request_locked_ms.sampler(),
            req_free: c.request_free_ms.sampler(),
            tok_locked: c.token_locked_ms.sampler(),
            tok_free: c.token_free_ms.sampler(),
            rtt: c.rtt_ms.sampler(),
            wake: c.wake_us.sampler(),
            wake_busy: c.wake_busy_us.as_ref().map(Dist::sampler),
            vain_wake_ns: c.vain_wake_us * 1e3,
            signal_ns: c.signal_us * 1e3,
            mutex_wake_ns: c.mutex_wake_us * 1e3,
            cold_start_ns: c.cold_start_us * 1e3,
            cold_start_tau_ns: c.cold_start_ms * 1e6,
            mutex_share: super::gil::MUTEX_SHARE,
            no_rtt: c.rtt_ms.is_zero(),
            tokens: s.workload.new_tokens.sampler(),
            const_tokens: match s.workload.new_tokens {
                Dist::Const(v) => Some(Self::tokens_of(v)),
                _ => None,
            },
            step: StepCost::new(s),
            loop_locks: has_lock && c.loop_lock,
            handler_locks: has_lock,
            slices: c.release_points,
            free_tokens: c.token_locked_ms.is_zero() && c.token_free_ms.is_zero(),
            zero: [
                (Phase::LoopInFree, &c.loop_in_free_ms),
                (Phase::LoopIn, &c.loop_in_ms),
                (Phase::ReqLocked, &c.request_locked_ms),
                (Phase::ReqFree, &c.request_free_ms),
                (Phase::LoopOut, &c.loop_out_ms),
                (Phase::LoopOutFree, &c.loop_out_free_ms),
            ]
            .iter()
            .filter(|(_, d)| d.is_zero())
            .fold(0, |m, (p, _)| m | 1 << *p as u16),
        }
    }

    /// Whether a thread woken while no core is idle preempts its signaller.
    pub(crate) fn wake_preempts(&self) -> bool {
        self.wake_busy.is_some()
    }

    /// A parked thread's wake-up latency (ns): onto an idle core, or (`busy`) with none
    /// idle.
    pub(crate) fn draw_wake_ns(&self, rng: &mut StreamRng, busy: bool) -> f64 {
        match &self.wake_busy {
            Some(w) if busy => w.sample(rng) * 1e3,
            _ => self.wake.sample(rng) * 1e3,
        }
    }

    /// Tokens for a new request.
    pub(crate) fn draw_tokens(&self, rng: &mut StreamRng) -> u32 {
        match self.const_tokens {
            Some(n) => n,
            None => Self::tokens_of(self.tokens.sample(rng)),
        }
    }

    /// A drawn token count, bounded and rounded.
    fn tokens_of(x: f64) -> u32 {
        round_ns(x.min(MAX_TOKENS)) as u32
    }
}

/// Calibrated step costs at one batch size: samples and their means (ms).
struct Measured {
    batch: f64,
    locked: Vec<f64>,
    free: Vec<f64>,
    mean: (f64, f64),
}

/// The cost of one batched step as a function of the batch size.
pub(crate) struct StepCost {
    step_locked: Sampler,
    step_free: Sampler,
    seq_locked: Sampler,
    seq_free: Sampler,
    /// Calibrated steps, by batch size.
    measured: Vec<Measured>,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

impl StepCost {
    fn new(s: &Scenario) -> Self {
        let b = &s.batching;
        let steps = s.cost.calibrated.as_ref().map(|c| c.batch_steps.as_slice()).unwrap_or_default();
        let mut measured: Vec<Measured> = steps
            .iter()
            .filter(|st| !st.locked_ms.is_empty() && st.locked_ms.len() == st.free_ms.len())
            .map(|st| Measured {
                batch: f64::from(st.batch),
                mean: (mean(&st.locked_ms), mean(&st.free_ms)),
                locked: st.locked_ms.clone(),
                free: st.free_ms.clone(),
            })
            .collect();
        measured.sort_by(|a, b| a.batch.total_cmp(&b.batch));
        Self {
            step_locked: b.step_locked_ms.sampler(),
            step_free: b.step_free_ms.sampler(),
            seq_locked: b.seq_locked_ms.sampler(),
            seq_free: b.seq_free_ms.sampler(),
            measured,
        }
    }

    /// Mean calibrated (locked, free) step cost at batch size `b` (ms): piecewise linear
    /// between measured sizes, extended linearly beyond them.
    fn interpolated_ms(&self, b: f64) -> (f64, f64) {
        let m = &self.measured;
        match m.len() {
            0 => (0.0, 0.0),
            1 => m[0].mean,
            n => {
                let i = m.partition_point(|x| x.batch < b).clamp(1, n - 1);
                let (a, c) = (&m[i - 1], &m[i]);
                let t = (b - a.batch) / (c.batch - a.batch);
                let lerp = |x: f64, y: f64| (x + (y - x) * t).max(0.0);
                (lerp(a.mean.0, c.mean.0), lerp(a.mean.1, c.mean.1))
            }
        }
    }

    /// A calibrated draw at batch size `b` (ms): one measured step at the nearest size,
    /// scaled to the interpolated mean at `b`.
    fn measured_ms(&self, b: f64, rng: &mut StreamRng) -> (f64, f64) {
        let Some(near) =
            self.measured.iter().min_by(|x, y| (x.batch - b).abs().total_cmp(&(y.batch - b).abs()))
        else {
            return (0.0, 0.0);
        };
        let (il, if_) = self.interpolated_ms(b);
        let k = rng.random_range(0..near.locked.len());
        let scale = |x: f64, m: f64, want: f64| if m > 0.0 { x * want / m } else { want };
        (scale(near.locked[k], near.mean.0, il), scale(near.free[k], near.mean.1, if_))
    }

    /// Locked and free work of one step of `b` sequences (ns).
    pub(crate) fn draw_ns(&self, b: u32, rng: &mut StreamRng) -> (f64, f64) {
        let bf = f64::from(b);
        let (ml, mf) = self.measured_ms(bf, rng);
        let locked = self.step_locked.sample(rng) + bf * self.seq_locked.sample(rng) + ml;
        let free = self.step_free.sample(rng) + bf * self.seq_free.sample(rng) + mf;
        (locked * 1e6, free * 1e6)
    }

    /// Mean locked and free work of one step of `b` sequences (ms).
    pub(crate) fn mean_ms(s: &Scenario, b: u32) -> (f64, f64) {
        let (bf, bt) = (f64::from(b), &s.batching);
        let (ml, mf) = Self::new(s).interpolated_ms(bf);
        (
            bt.step_locked_ms.mean() + bf * bt.seq_locked_ms.mean() + ml,
            bt.step_free_ms.mean() + bf * bt.seq_free_ms.mean() + mf,
        )
    }
}

/// What a thread runs for a request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Job {
    /// Loop work before dispatch.
    LoopIn,
    /// The handler on a pool thread.
    Handler,
    /// Loop work after the handler.
    LoopOut,
    /// `async-blocking`: everything on the loop thread.
    Whole,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Phase {
    LoopInFree,
    LoopIn,
    ReqLocked,
    ReqFree,
    /// Draws the first token (the token loop itself is tracked by `Request::in_tokens`).
    TokenStart,
    LoopOut,
    LoopOutFree,
    End,
    /// `async-blocking`: the loop work in is done, the handler begins (a change of stage).
    ToHandler,
    /// `async-blocking`: the handler is done, the loop work out begins.
    ToLoopOut,
}

/// One CPU step: work (ns) and whether it holds the lock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Step {
    pub(crate) work_ns: f64,
    pub(crate) locked: bool,
}

/// What a thread runs next under CPython's GIL ([`Request::next_work`]).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Work {
    /// One step, as [`Request::next_step`] gives it.
    Step(Step),
    /// A whole token: `n` pairs of `a` ns holding the lock, then `b` ns without it — the
    /// bytecode between two C calls, then the C call.
    Run { a: f64, b: f64, n: u32 },
}

/// One request in the system.
pub(crate) struct Request {
    /// Closed-loop user (or 0).
    pub(crate) client: u32,
    /// Worker it was sent to.
    pub(crate) worker: u32,
    /// When it reached the server.
    pub(crate) arrival: Nanos,
    /// When its client sent it: its arrival, or earlier by the load generator's sending
    /// (`clients.cpu_ms`). Its latency runs from here.
    pub(crate) sent: Nanos,
    /// When its current wait began.
    pub(crate) wait_start: Nanos,
    /// Time spent waiting for a pool thread, the lock, the loop before the handler and the
    /// loop after it (ns).
    pub(crate) waits: [Nanos; 4],
    /// Its time by stage, as the server's `Server-Timing` reports it.
    pub(crate) stages: StageClock,
    rng: StreamRng,
    tokens_left: u32,
    slice: u32,
    slice_locked_ns: f64,
    slice_free_ns: f64,
    /// In the token loop (`phase` is then where the job goes after it). Kept apart from
    /// `phase` so that the loop's two steps are two-way branches, not a jump table that
    /// every phase shares and that predicts them poorly.
    in_tokens: bool,
    /// In the token loop: the next slice is the locked one.
    locked_next: bool,
    phase: Phase,
    job: Job,
}

/// Index of each wait in [`Request::waits`].
pub(crate) const WAIT_THREAD: usize = 0;
/// Lock wait.
pub(crate) const WAIT_LOCK: usize = 1;
/// Event-loop wait before the handler (for the loop work in, or the whole request).
pub(crate) const WAIT_LOOP: usize = 2;
/// Event-loop wait after the handler, to write the reply.
pub(crate) const WAIT_REPLY: usize = 3;

impl Request {
    pub(crate) fn new(
        client: u32,
        worker: u32,
        arrival: Nanos,
        mut rng: StreamRng,
        cost: &CostModel,
    ) -> Self {
        let tokens_left = cost.draw_tokens(&mut rng);
        Self {
            client,
            worker,
            arrival,
            sent: arrival,
            wait_start: arrival,
            waits: [0; 4],
            stages: StageClock::new(arrival),
            rng,
            tokens_left,
            slice: 0,
            slice_locked_ns: 0.0,
            slice_free_ns: 0.0,
            in_tokens: false,
            locked_next: false,
            phase: Phase::End,
            job: Job::LoopIn,
        }
    }

    /// Makes this slot a new request, as [`Request::new`] does, field by field: a whole new
    /// value would be built aside and copied in.
    pub(crate) fn renew(
        &mut self,
        client: u32,
        worker: u32,
        arrival: Nanos,
        mut rng: StreamRng,
        cost: &CostModel,
    ) {
        self.tokens_left = cost.draw_tokens(&mut rng);
        (self.client, self.worker, self.arrival, self.wait_start) = (client, worker, arrival, arrival);
        self.sent = arrival;
        self.waits = [0; 4];
        self.stages = StageClock::new(arrival);
        self.rng = rng;
        (self.slice, self.slice_locked_ns, self.slice_free_ns) = (0, 0.0, 0.0);
        (self.in_tokens, self.locked_next, self.phase, self.job) = (false, false, Phase::End, Job::LoopIn);
    }

    /// Begins `job` at `now`: the next [`Request::next_step`] calls walk through its steps.
    pub(crate) fn begin(&mut self, job: Job, now: Nanos) {
        self.job = job;
        if job != Job::Handler {
            self.stages.loop_starts(now);
        }
        self.in_tokens = false;
        self.phase = match job {
            Job::LoopIn | Job::Whole => Phase::LoopInFree,
            Job::Handler => Phase::ReqLocked,
            Job::LoopOut => Phase::LoopOut,
        };
    }

    /// The job in progress.
    pub(crate) fn job(&self) -> Job {
        self.job
    }

    /// Tokens still to generate.
    pub(crate) fn tokens_left(&self) -> u32 {
        self.tokens_left
    }

    /// One token generated (batched decoding).
    pub(crate) fn token_done(&mut self) {
        self.tokens_left = self.tokens_left.saturating_sub(1);
    }

    /// Time from the reply to the client seeing it (ns).
    pub(crate) fn draw_rtt_ns(&mut self, cost: &CostModel) -> Nanos {
        round_ns(cost.rtt.sample(&mut self.rng) * 1e6)
    }

    /// The per-request handler work — the prefill of a sequence joining a batch — as
    /// (locked, free) (ns).
    pub(crate) fn draw_prefill_ns(&mut self, cost: &CostModel) -> (f64, f64) {
        let locked = cost.req_locked.sample(&mut self.rng) * 1e6;
        (locked, cost.req_free.sample(&mut self.rng) * 1e6)
    }

    /// The next step of non-zero work of the current job, or `None` when the job is done;
    /// `now` is when the previous step ended (where an `async-blocking` job changes stage).
    #[inline]
    pub(crate) fn next_step(&mut self, cost: &CostModel, now: Nanos) -> Option<Step> {
        loop {
            // The token loop makes most of a request's steps: tested first.
            let (work_ns, locked) = if self.in_tokens {
                if self.locked_next {
                    self.locked_next = false;
                    (self.slice_locked_ns, cost.handler_locks)
                } else {
                    let work_ns = self.slice_free_ns;
                    self.slice += 1;
                    if self.slice == cost.slices {
                        self.tokens_left -= 1;
                        // Draws the next token's costs now rather than when this slice
                        // ends: nothing else draws from the request's stream in between, so
                        // the draws and their order are the same.
                        self.start_token(cost);
                    } else {
                        self.locked_next = true;
                    }
                    (work_ns, false)
                }
            } else {
                match self.phase {
                    Phase::TokenStart => {
                        if cost.free_tokens {
                            // What `start_token` does then, without the call.
                            self.tokens_left = 0;
                            self.tokens_done();
                        } else {
                            self.start_token(cost);
                        }
                        continue;
                    }
                    Phase::End => return None,
                    Phase::ToHandler | Phase::ToLoopOut => {
                        self.change_stage(now);
                        continue;
                    }
                    phase => match self.draw_fixed(phase, cost) {
                        Some(step) => step,
                        None => continue,
                    },
                }
            };
            if work_ns > 0.0 {
                return Some(Step { work_ns, locked });
            }
        }
    }

    /// The next work of the current job with each token whole ([`Work::Run`]) rather than
    /// slice by slice: the same draws in the same order as [`Request::next_step`].
    #[inline]
    pub(crate) fn next_work(&mut self, cost: &CostModel, now: Nanos) -> Option<Work> {
        loop {
            if self.in_tokens {
                debug_assert!(self.locked_next && self.slice == 0, "tokens are taken whole");
                let (a, b, n) = (self.slice_locked_ns, self.slice_free_ns, cost.slices);
                self.tokens_left -= 1;
                self.start_token(cost);
                return Some(Work::Run { a, b, n });
            }
            match self.phase {
                Phase::TokenStart => self.start_token(cost),
                Phase::End => return None,
                Phase::ToHandler | Phase::ToLoopOut => self.change_stage(now),
                phase => {
                    if let Some((work_ns, locked)) = self.draw_fixed(phase, cost)
                        && work_ns > 0.0
                    {
                        return Some(Work::Step(Step { work_ns, locked }));
                    }
                }
            }
        }
    }

    /// `async-blocking`, at `now`: the whole request's job crosses from loop work to the
    /// handler ([`Phase::ToHandler`]) or back ([`Phase::ToLoopOut`]).
    #[cold]
    fn change_stage(&mut self, now: Nanos) {
        if self.phase == Phase::ToHandler {
            self.stages.loop_ends(now);
            self.phase = Phase::ReqLocked;
        } else {
            self.stages.loop_starts(now);
            self.phase = Phase::LoopOut;
        }
    }

    /// Draws the work of fixed phase `phase` (ns) and whether it holds the lock, moving on to
    /// the phase after it; `None` for a phase that always costs nothing, skipped without a
    /// draw.
    #[inline(always)]
    fn draw_fixed(&mut self, phase: Phase, cost: &CostModel) -> Option<(f64, bool)> {
        let (next, sampler, locked) = self.fixed_phase(phase, cost);
        self.phase = next;
        if cost.zero & (1 << phase as u16) != 0 {
            return None;
        }
        Some((sampler.sample(&mut self.rng) * 1e6, locked))
    }

    /// A phase with one draw of its own: the phase after it, its sampler and whether it
    /// holds the lock.
    #[inline]
    fn fixed_phase<'c>(&self, phase: Phase, cost: &'c CostModel) -> (Phase, &'c Sampler, bool) {
        match phase {
            Phase::LoopInFree => (Phase::LoopIn, &cost.loop_in_free, false),
            Phase::LoopIn => {
                let next = if self.job == Job::Whole { Phase::ToHandler } else { Phase::End };
                (next, &cost.loop_in, cost.loop_locks)
            }
            Phase::ReqLocked => (Phase::ReqFree, &cost.req_locked, cost.handler_locks),
            Phase::ReqFree => (Phase::TokenStart, &cost.req_free, false),
            Phase::LoopOut => (Phase::LoopOutFree, &cost.loop_out, cost.loop_locks),
            Phase::LoopOutFree => (Phase::End, &cost.loop_out_free, false),
            Phase::TokenStart | Phase::End | Phase::ToHandler | Phase::ToLoopOut => {
                unreachable!("{phase:?} draws no cost of its own")
            }
        }
    }

    /// Draws the next token's costs, or ends the handler when no token is left. A token
    /// drawn as costing nothing is skipped at once: walking its slices would draw nothing
    /// more and return no step.
    fn start_token(&mut self, cost: &CostModel) {
        if cost.free_tokens {
            self.tokens_left = 0;
        }
        let k = f64::from(cost.slices);
        // The cost of each slice in ms, then ns; `x / 1.0` is `x`, so one slice skips the
        // division (the same value, bit for bit), by a branch rather than a select.
        let slice_ns = |x: f64| if cost.slices == 1 { x * 1e6 } else { super::divide_cold(x, k) * 1e6 };
        while self.tokens_left > 0 {
            self.slice_locked_ns = slice_ns(cost.tok_locked.sample(&mut self.rng));
            self.slice_free_ns = slice_ns(cost.tok_free.sample(&mut self.rng));
            if self.slice_locked_ns > 0.0 || self.slice_free_ns > 0.0 {
                self.slice = 0;
                self.in_tokens = true;
                self.locked_next = true;
                return;
            }
            self.tokens_left -= 1;
        }
        self.tokens_done();
    }

    /// No token is left: the handler ends.
    #[inline(always)]
    fn tokens_done(&mut self) {
        self.in_tokens = false;
        self.phase = if self.job == Job::Whole { Phase::ToLoopOut } else { Phase::End };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::des::RngStreams;
    use crate::workload::Dist;

    /// The steps of a handler job.
    fn handler_steps(sc: &Scenario) -> Vec<(f64, bool)> {
        let cost = CostModel::new(sc);
        let mut req = Request::new(0, 0, 0, RngStreams::new(1, 0).keyed("request", 0), &cost);
        req.begin(Job::Handler, 0);
        std::iter::from_fn(|| req.next_step(&cost, 0)).map(|s| (s.work_ns, s.locked)).collect()
    }

    #[test]
    fn tokens_that_cost_nothing_are_skipped_not_walked() {
        let mut sc = Scenario::defaults();
        sc.workload.new_tokens = Dist::Const(1e6);
        sc.cost.release_points = 10_000;
        sc.cost.request_free_ms = Dist::Const(2.0);
        // Constant zeros, then zeros drawn (an empirical distribution draws an index).
        assert_eq!(handler_steps(&sc), [(2e6, false)]);
        sc.cost.token_free_ms = Dist::Empirical { samples: vec![0.0].into(), file: None };
        assert_eq!(handler_steps(&sc), [(2e6, false)]);
        // A token that costs something still runs slice by slice.
        sc.workload.new_tokens = Dist::Const(2.0);
        sc.cost.release_points = 2;
        sc.cost.token_locked_ms = Dist::Const(1.0);
        let steps = handler_steps(&sc);
        assert_eq!(steps, [(2e6, false), (5e5, false), (5e5, false), (5e5, false), (5e5, false)]);
    }
}
