//! CPython's GIL in the simulator, event for event as `Python/ceval_gil.c` runs it
//! (`take_gil`, `drop_gil`; 3.8–3.13, default build, `FORCE_SWITCHING` on).
//!
//! ```text
//!  take:   free (nobody holds it, or its holder is in a C call) → take it; a different
//!          thread than the last holder → a switch (wakes the forced-switch waiter)
//!          taken → sleep in a timed wait of one interval (FIFO behind earlier sleepers)
//!  drop:   at a release point (the end of a locked slice) → free it, signal the first
//!          sleeper: it wakes `cost.wake_us` later, spends `cost.vain_wake_us` of CPU, and
//!          takes the GIL only if it is still free then — the releaser, back from its C
//!          call, re-takes a free GIL first (barging), and a waiter that finds it taken
//!          sleeps again for a whole new interval
//!  timer:  a sleeper whose wait runs out wakes the same way; still taken and no switch
//!          since it slept → drop request: it sleeps again, and the holder (in bytecode)
//!          drops at once, signals the first sleeper and waits until another thread has
//!          taken the GIL (the forced switch), then queues for it
//!  mutex:  `gil->mutex` is held by a woken waiter while it spends its wake-up CPU and
//!          checks; a holder that reaches a release point or the end of a C call meanwhile
//!          blocks on it, and is woken (`cost.wake_us`) once it is free
//! ```
//!
//! A token's `release_points` slices (locked bytecode, then a C call without the lock) are
//! one *run*: the holder runs it as one piece of CPU work, and the simulator splits it only
//! where another thread can tell: at the next release point while a sleeper waits to be
//! signalled, at the next point it needs the mutex while a woken waiter holds it, and at the
//! end of a C call during which another thread took the GIL. Where
//! a holder's run lies at a given time follows from its progress on the virtual CPU clock,
//! so release points that no waiter can win cost no event: the run is exact, however many
//! release points it spans.

mod run;
#[cfg(test)]
mod tests;
mod waiters;

use super::request::Work;
use super::system::{NONE, System};
use crate::des::Nanos;
use run::{at_call_end, call_end, in_call, locked_upto, next_mutex_point, next_release};
use std::collections::VecDeque;

/// The share of a wake-up's CPU (`cost.vain_wake_us`) that the woken thread spends holding
/// the GIL's mutex. glibc's `pthread_cond_timedwait` takes the mutex back once the futex
/// returns and lets it go as the next wait begins, so only the user-space part between —
/// CPython's check and its loop — holds it; the kernel's wake and sleep paths, most of a
/// wake-up's CPU, run without it. A tenth is an estimate of that part, not a measurement:
/// the thread CPU clock cannot tell the two parts apart at these lengths.
pub(crate) const MUTEX_SHARE: f64 = 0.1;

/// A tenure — one thread's takes of the GIL from the switch that gave it the GIL to the
/// switch that takes it away — this long or longer counts as long (`gil_long_tenure_share`).
pub(super) const LONG_TENURE: Nanos = 1_000_000;

/// What a thread is doing with the GIL.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(super) enum GState {
    /// Not waiting for it: running lock-free work, or idle.
    #[default]
    Off,
    /// Running its run (holding the GIL, or in one of the run's C calls).
    Run,
    /// In the timed wait.
    Sleeping,
    /// Signalled or timed out: the OS is waking it.
    Waking,
    /// Awake, spending the wake-up's CPU before it takes the mutex.
    WakeCpu,
    /// Holding the mutex, checking the GIL.
    WakeCheck,
    /// Dropped the GIL on request; waits until another thread has taken it.
    SwitchWait,
    /// Blocked on the GIL's mutex, which a woken waiter holds while it checks.
    MutexWait,
    /// The mutex was let go: the OS is waking it to try again.
    MutexWake,
}

/// How many states a thread's side of the GIL has.
pub(super) const GSTATES: usize = GState::MutexWake as usize + 1;

/// One thread's side of the GIL.
#[derive(Clone, Copy, Default, Debug)]
pub(super) struct GilThread {
    pub(super) state: GState,
    /// The run: `a` ns holding the lock, then `b` without, `len` in all.
    a: f64,
    b: f64,
    len: f64,
    /// Progress through the run when the current chunk started (or where it stopped).
    pos: f64,
    /// Where the current chunk of CPU work ends.
    stop: f64,
    /// The CPU's virtual time at which the run's progress would have been 0.
    v0: f64,
    /// The wake in progress came from the timed wait running out.
    timed_out: bool,
    /// The thread whose core it takes once woken (`NONE`: it waits for a core as usual).
    waker: u32,
    /// `switch_number` when it last went to sleep.
    saved_switch: u64,
    /// When its timed wait runs out.
    deadline: Nanos,
    /// Waiting for the GIL (its request's lock wait is running).
    waiting: bool,
    /// Blocked on the mutex at a point of its run (a release point, or the end of a C call)
    /// rather than as a woken waiter about to check.
    at_point: bool,
    /// That point is the end of a C call (the GIL dropped) rather than a release point.
    at_call_end: bool,
    /// When it entered its state.
    since: Nanos,
}

/// One worker's GIL.
pub(super) struct CpyGil {
    /// The thread whose run holds it (in bytecode) or left it for a C call; `NONE` if
    /// nobody's run does.
    owner: u32,
    last_holder: u32,
    switch_number: u64,
    /// Threads in the timed wait, in the order they began it (so also of their deadlines).
    sleepers: VecDeque<u32>,
    /// Threads in the forced switch's wait.
    switch_waiters: Vec<u32>,
    /// `gil->mutex`: the thread that holds it (or is being woken to), `NONE` if free.
    mutex: u32,
    /// Threads blocked on the mutex, first come first served.
    mutex_queue: VecDeque<u32>,
    /// A drop request the holder has not seen yet: it was blocked on the mutex at a
    /// release point when the request came.
    drop_request: bool,
    interval: Nanos,
    /// Time held, up to `acct_t` (ns).
    held_ns: f64,
    acct_t: Nanos,
    /// The owner's progress at `acct_t`.
    acct_pos: f64,
    /// When the current tenure began: the last switch (`Nanos::MAX` before the first take).
    switched_at: Nanos,
}

impl CpyGil {
    pub(super) fn new(interval: Nanos) -> Self {
        Self {
            owner: NONE,
            last_holder: NONE,
            switch_number: 0,
            sleepers: VecDeque::new(),
            switch_waiters: Vec::new(),
            mutex: NONE,
            mutex_queue: VecDeque::new(),
            drop_request: false,
            interval,
            held_ns: 0.0,
            acct_t: 0,
            acct_pos: 0.0,
            switched_at: Nanos::MAX,
        }
    }

    /// When the first sleeper's timed wait runs out (`Nanos::MAX`: nobody sleeps).
    pub(super) fn deadline(&self, threads: &[super::system::Thread]) -> Nanos {
        self.sleepers.front().map_or(Nanos::MAX, |&s| threads[s as usize].g.deadline)
    }
}

impl System<'_> {
    fn gil(&mut self, w: u32) -> &mut CpyGil {
        &mut self.workers[w as usize].gil
    }

    fn g(&mut self, th: u32) -> &mut GilThread {
        &mut self.threads[th as usize].g
    }

    /// `th` enters state `s`: the time it spent in its last state is added to that state's
    /// total, which the report turns into the mean number of threads in each state.
    #[inline(always)]
    fn cpy_set(&mut self, th: u32, s: GState) {
        let g = &mut self.threads[th as usize].g;
        self.gil_state_ns[g.state as usize] += self.now - g.since;
        (g.state, g.since) = (s, self.now);
    }

    /// Time every thread has spent in each GIL state up to now (ns), its current state's
    /// time so far included.
    pub(super) fn cpy_state_ns(&self) -> [f64; GSTATES] {
        let mut t = self.gil_state_ns;
        if self.cpy {
            for th in &self.threads {
                t[th.g.state as usize] += self.now - th.g.since;
            }
        }
        t.map(|ns| ns as f64)
    }

    #[cfg(test)]
    fn trace(&mut self, th: u32, what: &'static str) {
        self.trace.push((self.now, th, what));
    }

    #[cfg(not(test))]
    #[inline(always)]
    fn trace(&mut self, _th: u32, _what: &'static str) {}

    /// A thread's CPU work is done.
    pub(super) fn cpy_cpu_done(&mut self, th: u32) {
        match self.threads[th as usize].g.state {
            GState::WakeCpu => self.cpy_wants_mutex(th),
            GState::WakeCheck => self.cpy_check(th),
            GState::Run => self.cpy_chunk_done(th),
            _ => self.cpy_continue(th),
        }
    }

    /// `th` goes on with its job.
    pub(super) fn cpy_continue(&mut self, th: u32) {
        let t = &self.threads[th as usize];
        if t.batcher {
            self.batch_cpu_done(t.worker);
            return;
        }
        let mut r = t.req;
        loop {
            match self.reqs[r as usize].next_work(&self.cost, self.now) {
                Some(Work::Run { a, b, n }) => return self.cpy_begin_run(th, a, b, n),
                Some(Work::Step(s)) if s.locked => return self.cpy_begin_run(th, s.work_ns, 0.0, 1),
                Some(Work::Step(s)) => return self.cpy_start_free(th, s.work_ns),
                None => {
                    self.cpy_release(th);
                    if !self.job_done(th) {
                        return;
                    }
                    r = self.threads[th as usize].req;
                }
            }
        }
    }

    /// A step of the batch scheduler (or any caller of `start_step`).
    pub(super) fn cpy_start_step(&mut self, th: u32, work_ns: f64, locked: bool) {
        if locked {
            self.cpy_begin_run(th, work_ns, 0.0, 1);
        } else {
            self.cpy_start_free(th, work_ns);
        }
    }

    /// Lock-free work: a thread that holds the GIL drops it first (a release point).
    fn cpy_start_free(&mut self, th: u32, work_ns: f64) {
        self.cpy_release(th);
        self.cpy_set(th, GState::Off);
        self.cpu.start(th, work_ns);
    }

    /// Drops the GIL if `th` holds it: frees it and signals the first sleeper.
    pub(super) fn cpy_release(&mut self, th: u32) {
        let w = self.threads[th as usize].worker;
        if self.gil(w).owner != th {
            return;
        }
        let pos = self.threads[th as usize].g.pos;
        self.cpy_account(w, pos);
        self.gil(w).owner = NONE;
        self.threads[th as usize].holds_lock = false;
        self.trace(th, "release");
        // The signal's CPU is left out here: the thread leaves the run for other work.
        self.cpy_signal(w, th);
    }

    fn cpy_begin_run(&mut self, th: u32, a: f64, b: f64, n: u32) {
        let g = self.g(th);
        (g.a, g.b, g.len, g.pos) = (a, b, f64::from(n) * (a + b), 0.0);
        self.cpy_acquire(th);
    }

    /// `take_gil` at the run's current position (in bytecode).
    fn cpy_acquire(&mut self, th: u32) {
        let w = self.threads[th as usize].worker;
        if self.gil(w).owner != th {
            if !self.cpy_free(w) {
                self.trace(th, "sleep");
                return self.cpy_sleep(th);
            }
            let cold = self.cpy_take(th);
            return self.cpy_run_chunk(th, cold);
        }
        self.cpy_run_chunk(th, 0.0);
    }

    /// Where `th`'s run is now.
    fn cpy_pos(&self, th: u32) -> f64 {
        let g = &self.threads[th as usize].g;
        (self.cpu.clock(th) - g.v0).clamp(g.pos, g.stop)
    }

    /// Whether worker `w`'s GIL is free now: nobody's run holds it, or its holder is in a
    /// C call.
    fn cpy_free(&self, w: u32) -> bool {
        let o = self.workers[w as usize].gil.owner;
        if o == NONE {
            return true;
        }
        let g = &self.threads[o as usize].g;
        match g.state {
            GState::Run => in_call(g.a, g.b, self.cpy_pos(o)),
            // Blocked on the mutex: it dropped the GIL before its C call, or has not yet.
            _ => g.at_call_end,
        }
    }

    /// Adds the time held since the last account; `pos` is the owner's progress now.
    fn cpy_account(&mut self, w: u32, pos: f64) {
        let now = self.now;
        let o = self.workers[w as usize].gil.owner;
        if o == NONE {
            return;
        }
        let (a, b) = (self.threads[o as usize].g.a, self.threads[o as usize].g.b);
        let gil = self.gil(w);
        let (p0, dt) = (gil.acct_pos, now.saturating_sub(gil.acct_t) as f64);
        (gil.acct_t, gil.acct_pos) = (now, pos);
        if pos > p0 {
            let held = dt * (locked_upto(a, b, pos) - locked_upto(a, b, p0)) / (pos - p0);
            self.gil(w).held_ns += held;
            let r = self.threads[o as usize].req;
            self.add_held(o, r, crate::des::round_ns(held));
        }
    }

    /// Time worker `w`'s GIL has been held up to now (ns).
    pub(super) fn cpy_held_ns(&self, w: u32) -> f64 {
        let gil = &self.workers[w as usize].gil;
        if gil.owner == NONE {
            return gil.held_ns;
        }
        let g = &self.threads[gil.owner as usize].g;
        let (p0, p) = (gil.acct_pos, self.cpy_pos(gil.owner));
        let dt = self.now.saturating_sub(gil.acct_t) as f64;
        let part =
            if p > p0 { dt * (locked_upto(g.a, g.b, p) - locked_upto(g.a, g.b, p0)) / (p - p0) } else { 0.0 };
        gil.held_ns + part
    }

    /// `th` takes the free GIL. A holder in a C call loses it: it stops at the end of its
    /// call, and takes the GIL again (or waits) from there. Returns the CPU `th` spends on
    /// its cold caches before its bytecode goes on (ns): `cost.cold_start_us` after a wait
    /// (see [`crate::scenario::Cost::cold_start_us`]), 0 when it did not wait.
    fn cpy_take(&mut self, th: u32) -> f64 {
        let w = self.threads[th as usize].worker;
        let o = self.gil(w).owner;
        if o != NONE {
            let p = self.cpy_pos(o);
            self.cpy_account(w, p);
            let g = self.threads[o as usize].g;
            if g.state == GState::Run {
                self.cpy_restart(o, p, call_end(g.a, g.b, p).min(g.len));
            }
            self.threads[o as usize].holds_lock = false;
        }
        self.gil(w).drop_request = false;
        let (pos, now) = (self.threads[th as usize].g.pos, self.now);
        let gil = self.gil(w);
        (gil.owner, gil.acct_t, gil.acct_pos) = (th, now, pos);
        self.threads[th as usize].holds_lock = true;
        let gil = self.gil(w);
        if gil.last_holder != th {
            gil.last_holder = th;
            gil.switch_number += 1;
            let began = std::mem::replace(&mut gil.switched_at, now);
            if began != Nanos::MAX {
                // The tenure that ends here (the first take ends none).
                let tenure = now - began;
                self.gil_switches += 1;
                if tenure >= LONG_TENURE {
                    self.gil_long_tenure_ns += tenure;
                }
            }
            self.trace(th, "take (switch)");
            for sw in std::mem::take(&mut self.gil(w).switch_waiters) {
                let _ = self.cpy_wake_later(sw, false, th);
            }
        } else {
            self.trace(th, "take");
        }
        let g = self.g(th);
        if !std::mem::take(&mut g.waiting) {
            return 0.0;
        }
        let t = &self.threads[th as usize];
        let (r, since) = (t.req, t.lock_wait_since);
        if r != NONE {
            let req = &mut self.reqs[r as usize];
            let waited = self.now - req.wait_start;
            req.waits[super::request::WAIT_LOCK] += waited;
            req.stages.lock_waited(waited);
        } else {
            self.add_batch_lock_wait(th, self.now - since);
        }
        match self.cost.cold_start_ns {
            0.0 => 0.0,
            // Cold caches slow the bytecode that follows, at most to half its speed.
            c => {
                let cold = c * -(-((self.now - since) as f64) / self.cost.cold_start_tau_ns).exp_m1();
                cold.min(self.threads[th as usize].g.a)
            }
        }
    }

    /// Restarts `th`'s run at progress `p`, its chunk ending at `stop`.
    /// The CPU a signal at `th`'s position still owes (ns): the run's progress stands at
    /// `p` until it is spent.
    fn cpy_owed(&self, th: u32, p: f64) -> f64 {
        let g = &self.threads[th as usize].g;
        (p - (self.cpu.clock(th) - g.v0)).max(0.0)
    }

    /// Restarts `th`'s run at progress `p`, its chunk ending at `stop`; what a signal still
    /// owes is kept.
    fn cpy_restart(&mut self, th: u32, p: f64, stop: f64) {
        let v = self.cpu.clock(th);
        let owed = self.cpy_owed(th, p);
        let rem = self.cpu.reset(th, stop - p + owed);
        // The same progress two ways, up to the clock's rounding.
        debug_assert!((self.threads[th as usize].g.stop - rem - p + owed).abs() <= 1e-9 * v.max(1.0));
        self.cpy_set(th, GState::Run);
        let g = self.g(th);
        (g.pos, g.stop, g.v0) = (p, stop, v - p + owed);
    }

    /// Starts `th`'s chunk from `p` to `stop`, after `signal` ns of CPU spent signalling a
    /// sleeper (the run's progress stands still meanwhile).
    fn cpy_start_chunk(&mut self, th: u32, p: f64, stop: f64, signal: f64) {
        let v = self.cpu.clock(th);
        self.cpy_set(th, GState::Run);
        let g = self.g(th);
        (g.pos, g.stop, g.v0) = (p, stop, v - p + signal);
        self.cpu.start(th, stop - p + signal);
    }

    /// Runs the owner's run from its position: to its end, or to the next release point
    /// while a sleeper waits to be signalled there; first `signal` ns of CPU spent
    /// signalling at the point it stands on.
    fn cpy_run_chunk(&mut self, th: u32, mut signal: f64) {
        let w = self.threads[th as usize].worker;
        let g = self.threads[th as usize].g;
        let sleepers = !self.gil(w).sleepers.is_empty();
        if sleepers && g.a == 0.0 && in_call(g.a, g.b, g.pos) {
            // No bytecode before the call: a release point right here.
            self.trace(th, "release point");
            signal += self.cpy_signal(w, th);
        }
        let stop = self.cpy_chunk_stop(th, g.pos);
        self.cpy_start_chunk(th, g.pos, stop, signal);
    }

    /// Where the owner's chunk from `p` must stop: the run's end, or the next release point
    /// while a sleeper waits to be signalled, or the next point it needs the mutex while
    /// another thread has it.
    fn cpy_chunk_stop(&self, th: u32, p: f64) -> f64 {
        let t = &self.threads[th as usize];
        let (g, gil) = (&t.g, &self.workers[t.worker as usize].gil);
        let mut stop = g.len;
        if !gil.sleepers.is_empty() {
            stop = stop.min(next_release(g.a, g.b, p));
        }
        if gil.mutex != NONE && gil.mutex != th {
            stop = stop.min(next_mutex_point(g.a, g.b, p));
        }
        stop
    }

    /// The owner's chunk ended: at a release point, at the end of a C call in which it lost
    /// the GIL, or at the end of its run.
    fn cpy_chunk_done(&mut self, th: u32) {
        let w = self.threads[th as usize].worker;
        let g = self.g(th);
        g.pos = g.stop;
        let (pos, len, b) = (g.pos, g.len, g.b);
        let owner = self.gil(w).owner == th;
        if owner {
            self.cpy_account(w, pos);
        }
        if pos >= len {
            self.cpy_set(th, GState::Off);
            if owner && b > 0.0 {
                // The run ended in a C call: the GIL was dropped at its last release point.
                self.gil(w).owner = NONE;
                self.threads[th as usize].holds_lock = false;
            }
            return self.cpy_continue(th);
        }
        let mutex = self.gil(w).mutex;
        if mutex != NONE && mutex != th {
            // The mutex is taken: block on it, at the release point or at the call's end.
            let g = self.g(th);
            (g.at_point, g.at_call_end) = (true, at_call_end(g.a, g.b, pos));
            return self.cpy_block_on_mutex(th, w);
        }
        self.cpy_at_point(th);
    }

    /// The thread, holding the mutex for an instant, at a point of its run: a release point
    /// (drops the GIL and signals a sleeper) or the end of a C call (takes the GIL back, or
    /// waits for it).
    fn cpy_at_point(&mut self, th: u32) {
        let w = self.threads[th as usize].worker;
        self.cpy_set(th, GState::Run);
        let g = self.g(th);
        (g.at_point, g.at_call_end) = (false, false);
        let pos = g.pos;
        if self.gil(w).owner != th {
            // Back from a C call during which another thread took the GIL.
            return self.cpy_acquire(th);
        }
        let g = self.threads[th as usize].g;
        if at_call_end(g.a, g.b, pos) {
            return self.cpy_run_chunk(th, 0.0);
        }
        if std::mem::take(&mut self.gil(w).drop_request) {
            // A drop request came while it was blocked: it drops and waits for the switch.
            return self.cpy_forced_drop_at(w, pos);
        }
        self.trace(th, "release point");
        let signal = self.cpy_signal(w, th);
        self.cpy_run_chunk(th, signal);
    }
}
