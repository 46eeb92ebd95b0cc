//! Batch schedulers: one scheduler thread per worker runs batched forward steps.
//!
//! * `static` (Triton's dynamic batching): a full batch goes at once; otherwise the batch
//!   goes when its oldest request has waited `max_wait_ms`; it then runs until its longest
//!   sequence is done, and every reply leaves at the end.
//! * `continuous` (Orca / vLLM iteration-level scheduling): at every step boundary finished
//!   sequences leave at once and waiting ones join, up to `max_batch`.
//!
//! A step that costs nothing is over as soon as it starts, and a million of them may follow
//! one another (a million tokens): the functions that start a step return whether it is
//! already over, and [`System::batch_steps_done`] loops rather than recursing.

use super::event::Ev;
use super::request::Step;
use super::system::System;
use crate::des::Nanos;
use crate::scenario::{BatchingMode, LockKind};
use std::collections::VecDeque;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing to run.
    Idle,
    /// `static`: a partial batch waits for more requests or its deadline.
    Waiting,
    /// Running the locked part of a step.
    Locked,
    /// Running the lock-free part of a step.
    Free,
}

/// One worker's scheduler.
pub(crate) struct Batcher {
    thread: u32,
    queue: VecDeque<u32>,
    active: Vec<u32>,
    phase: Phase,
    free_ns: f64,
    stamp: u32,
    /// Steps run.
    pub(crate) steps: u64,
    /// Sum of batch sizes over steps.
    pub(crate) batch_sum: u64,
    /// The current step's wait for the lock (ns).
    pub(crate) step_lock_ns: Nanos,
    /// The current step's time holding the lock (ns).
    pub(crate) step_held_ns: Nanos,
}

impl Batcher {
    pub(crate) fn new(thread: u32) -> Self {
        Self {
            thread,
            queue: VecDeque::new(),
            active: Vec::new(),
            phase: Phase::Idle,
            free_ns: 0.0,
            stamp: 0,
            steps: 0,
            batch_sum: 0,
            step_lock_ns: 0,
            step_held_ns: 0,
        }
    }
}

impl System<'_> {
    fn batcher(&mut self, w: u32) -> &mut Batcher {
        self.workers[w as usize].batcher.as_mut().expect("batching is on")
    }

    fn is_static(&self) -> bool {
        self.sc.batching.mode == BatchingMode::Static
    }

    fn max_batch(&self) -> usize {
        self.sc.batching.max_batch as usize
    }

    /// A parsed request reaches the scheduler of worker `w`.
    pub(super) fn batch_submit(&mut self, w: u32, r: u32) {
        self.reqs[r as usize].wait_start = self.now;
        let full = {
            let max = self.max_batch();
            let b = self.batcher(w);
            b.queue.push_back(r);
            b.queue.len() >= max
        };
        let over = match self.batcher(w).phase {
            Phase::Idle => self.batch_try_start(w),
            Phase::Waiting if full => self.batch_form(w),
            _ => false,
        };
        if over {
            self.batch_steps_done(w);
        }
    }

    /// With the scheduler idle: start a batch, or wait for one. Returns whether a step
    /// started and is already over.
    fn batch_try_start(&mut self, w: u32) -> bool {
        if !self.is_static() {
            let joining = self.batch_admit(w);
            if self.batcher(w).active.is_empty() {
                self.batcher(w).phase = Phase::Idle;
                return false;
            }
            return self.batch_step(w, joining);
        }
        let (max, wait) = (self.max_batch(), crate::des::ms(self.sc.batching.max_wait_ms));
        let b = self.workers[w as usize].batcher.as_ref().expect("batching is on");
        let Some(&oldest) = b.queue.front() else {
            self.batcher(w).phase = Phase::Idle;
            return false;
        };
        let deadline = self.reqs[oldest as usize].wait_start.saturating_add(wait);
        if b.queue.len() >= max || self.now >= deadline {
            return self.batch_form(w);
        }
        let b = self.batcher(w);
        b.phase = Phase::Waiting;
        b.stamp = b.stamp.wrapping_add(1);
        let stamp = b.stamp;
        self.queue.push(deadline, Ev::BatchTimeout { worker: w, stamp });
        false
    }

    /// `static`: the oldest request's wait is over.
    pub(super) fn batch_timeout(&mut self, w: u32, stamp: u32) {
        let b = self.batcher(w);
        if b.phase == Phase::Waiting && b.stamp == stamp && self.batch_form(w) {
            self.batch_steps_done(w);
        }
    }

    /// `static`: takes up to `max_batch` waiting requests as the batch and starts it.
    /// Returns whether its first step is already over.
    fn batch_form(&mut self, w: u32) -> bool {
        let b = self.batcher(w);
        b.stamp = b.stamp.wrapping_add(1);
        let joining = self.batch_admit(w);
        self.batch_step(w, joining)
    }

    /// Moves waiting requests into the batch, up to `max_batch`; returns them.
    fn batch_admit(&mut self, w: u32) -> Vec<u32> {
        let max = self.max_batch();
        let b = self.batcher(w);
        let n = max.saturating_sub(b.active.len()).min(b.queue.len());
        let joining: Vec<u32> = b.queue.drain(..n).collect();
        b.active.extend_from_slice(&joining);
        joining
    }

    /// Starts one step of the current batch; joining sequences pay their prefill in it.
    /// Returns whether the step cost nothing and is already over.
    fn batch_step(&mut self, w: u32, joining: Vec<u32>) -> bool {
        let size = self.batcher(w).active.len() as u32;
        let (mut locked, mut free) = self.cost.step.draw_ns(size, &mut self.batch_rng);
        for r in joining {
            let req = &mut self.reqs[r as usize];
            req.waits[super::request::WAIT_THREAD] += self.now - req.wait_start;
            let (l, f) = req.draw_prefill_ns(&self.cost);
            locked += l;
            free += f;
        }
        let b = self.batcher(w);
        b.steps += 1;
        b.batch_sum += u64::from(size);
        b.free_ns = free;
        b.phase = Phase::Locked;
        (b.step_lock_ns, b.step_held_ns) = (0, 0);
        let th = b.thread;
        if locked > 0.0 {
            let has_lock = self.sc.worker.lock != LockKind::None;
            self.start_step(th, Step { work_ns: locked, locked: has_lock });
            false
        } else {
            self.batch_phase_done(w)
        }
    }

    /// The scheduler's CPU work is done: go on to the free part, or end the step.
    pub(super) fn batch_cpu_done(&mut self, w: u32) {
        if self.batch_phase_done(w) {
            self.batch_steps_done(w);
        }
    }

    /// The current part of a step is done: starts the free part after the locked one, if it
    /// costs anything. Returns whether the step is over.
    fn batch_phase_done(&mut self, w: u32) -> bool {
        let b = self.batcher(w);
        let (th, free) = (b.thread, b.free_ns);
        if b.phase == Phase::Locked {
            b.phase = Phase::Free;
            if free > 0.0 {
                self.start_step(th, Step { work_ns: free, locked: false });
                return false;
            }
        }
        if self.threads[th as usize].holds_lock {
            self.release_lock(th, false);
        }
        true
    }

    /// The current step is over: ends it and every following step that is over as soon as
    /// it starts, until one needs the CPU or the scheduler waits or idles.
    fn batch_steps_done(&mut self, w: u32) {
        while self.batch_step_done(w) {}
    }

    /// Every sequence of the batch has one more token. Returns whether the next step
    /// started and is already over.
    fn batch_step_done(&mut self, w: u32) -> bool {
        let b = self.batcher(w);
        let active = std::mem::take(&mut b.active);
        let (waited, held) = (b.step_lock_ns, b.step_held_ns);
        for &r in &active {
            let req = &mut self.reqs[r as usize];
            req.token_done();
            // Every member counts the whole step, as the server's batch does.
            req.stages.add_step(waited, held);
        }
        let done = |s: &Self, r: u32| s.reqs[r as usize].tokens_left() == 0;
        if self.is_static() {
            if !active.iter().all(|&r| done(self, r)) {
                self.batcher(w).active = active;
                return self.batch_step(w, Vec::new());
            }
            for r in active {
                self.reply(w, r);
            }
        } else {
            let (finished, running): (Vec<u32>, Vec<u32>) = active.into_iter().partition(|&r| done(self, r));
            self.batcher(w).active = running;
            for r in finished {
                self.reply(w, r);
            }
        }
        self.batcher(w).phase = Phase::Idle;
        self.batch_try_start(w)
    }
}
