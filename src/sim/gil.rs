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

use super::request::Work;
use super::system::{Ev, NONE, System};
use crate::des::{Nanos, round_ns};
use std::collections::VecDeque;

/// The share of a wake-up's CPU (`cost.vain_wake_us`) that the woken thread spends holding
/// the GIL's mutex. glibc's `pthread_cond_timedwait` takes the mutex back once the futex
/// returns and lets it go as the next wait begins, so only the user-space part between —
/// CPython's check and its loop — holds it; the kernel's wake and sleep paths, most of a
/// wake-up's CPU, run without it. A tenth is an estimate of that part, not a measurement:
/// the thread CPU clock cannot tell the two parts apart at these lengths.
pub(crate) const MUTEX_SHARE: f64 = 0.1;

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
    /// Given the mutex: the OS is waking it.
    MutexWake,
}

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
}

/// Counters of one GIL.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct GilCounts {
    /// The GIL went to another thread than its last holder.
    pub(crate) switches: u64,
    /// Sleepers signalled at a release.
    pub(crate) signals: u64,
    /// Woken by a signal, found it taken again.
    pub(crate) vain: u64,
    /// Drop requests.
    pub(crate) drop_requests: u64,
    /// Forced switches.
    pub(crate) forced: u64,
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
    pub(super) counts: GilCounts,
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
            counts: GilCounts::default(),
        }
    }

    /// When the first sleeper's timed wait runs out (`Nanos::MAX`: nobody sleeps).
    pub(super) fn deadline(&self, threads: &[super::system::Thread]) -> Nanos {
        self.sleepers.front().map_or(Nanos::MAX, |&s| threads[s as usize].g.deadline)
    }
}

/// Float rounding allowed on a position, relative to a pair's length: a run has at most
/// 1e4 pairs, so positions carry errors near 1e-12 of a pair.
const EPS: f64 = 1e-9;

/// The pair of a run (`a` locked, then `b` free) that progress `p` lies in, and the offset
/// within it; a position within rounding of a pair's end is the next pair's start.
fn pair_of(a: f64, b: f64, p: f64) -> (f64, f64) {
    let per = a + b;
    let k = (p / per).floor();
    let x = p - k * per;
    if x >= per * (1.0 - EPS) { (k + 1.0, 0.0) } else { (k, x.max(0.0)) }
}

/// Locked work in the first `p` ns of a run.
fn locked_upto(a: f64, b: f64, p: f64) -> f64 {
    if b == 0.0 {
        return p;
    }
    let (k, x) = pair_of(a, b, p);
    k * a + x.min(a)
}

/// The first release point of the run strictly after `p`: the end of a locked slice.
fn next_release(a: f64, b: f64, p: f64) -> f64 {
    let per = a + b;
    let (k, x) = pair_of(a, b, p);
    if x < a - per * EPS { k * per + a } else { (k + 1.0) * per + a }
}

/// Where the C call that `p` lies in (or the pair) ends.
fn call_end(a: f64, b: f64, p: f64) -> f64 {
    (pair_of(a, b, p).0 + 1.0) * (a + b)
}

/// The next point of the run strictly after `p` at which its thread takes `gil->mutex`: a
/// release point (to drop the GIL) or the end of a C call (to take it back).
fn next_mutex_point(a: f64, b: f64, p: f64) -> f64 {
    let rp = next_release(a, b, p);
    if b == 0.0 { rp } else { rp.min(call_end(a, b, p)) }
}

/// Whether progress `p` is the end of a C call (a pair's start after the first).
fn at_call_end(a: f64, b: f64, p: f64) -> bool {
    b > 0.0 && p > 0.0 && pair_of(a, b, p).1 == 0.0
}

/// Whether progress `p` lies in a C call (the lock free).
fn in_call(a: f64, b: f64, p: f64) -> bool {
    b > 0.0 && pair_of(a, b, p).1 >= a - (a + b) * EPS
}

impl System<'_> {
    fn gil(&mut self, w: u32) -> &mut CpyGil {
        &mut self.workers[w as usize].gil
    }

    fn g(&mut self, th: u32) -> &mut GilThread {
        &mut self.threads[th as usize].g
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
            match self.reqs[r as usize].next_work(&self.cost) {
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
        self.g(th).state = GState::Off;
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
        self.cpy_signal(w);
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
            self.cpy_take(th);
        }
        self.cpy_run_chunk(th);
    }

    /// Where `th`'s run is now.
    fn cpy_pos(&self, th: u32) -> f64 {
        let g = &self.threads[th as usize].g;
        (self.cpu.virtual_ns() - g.v0).clamp(g.pos, g.stop)
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
        if pos > p0 {
            gil.held_ns += dt * (locked_upto(a, b, pos) - locked_upto(a, b, p0)) / (pos - p0);
        }
        (gil.acct_t, gil.acct_pos) = (now, pos);
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
    /// call, and takes the GIL again (or waits) from there.
    fn cpy_take(&mut self, th: u32) {
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
            gil.counts.switches += 1;
            self.trace(th, "take (switch)");
            for sw in std::mem::take(&mut self.gil(w).switch_waiters) {
                self.cpy_wake_later(sw, false);
            }
        } else {
            self.trace(th, "take");
        }
        let g = self.g(th);
        if std::mem::take(&mut g.waiting) {
            let r = self.threads[th as usize].req;
            if r != NONE {
                let req = &mut self.reqs[r as usize];
                req.waits[super::request::WAIT_LOCK] += self.now - req.wait_start;
            }
        }
    }

    /// Restarts `th`'s run at progress `p`, its chunk ending at `stop`.
    fn cpy_restart(&mut self, th: u32, p: f64, stop: f64) {
        let rem = self.cpu.preempt(th);
        // The same progress two ways, up to the virtual clock's rounding.
        debug_assert!(
            (self.threads[th as usize].g.stop - rem - p).abs() <= 1e-9 * self.cpu.virtual_ns().max(1.0)
        );
        self.cpy_start_chunk(th, p, stop);
    }

    fn cpy_start_chunk(&mut self, th: u32, p: f64, stop: f64) {
        let v = self.cpu.virtual_ns();
        let g = self.g(th);
        (g.state, g.pos, g.stop, g.v0) = (GState::Run, p, stop, v - p);
        self.cpu.start(th, stop - p);
    }

    /// Runs the owner's run from its position: to its end, or to the next release point
    /// while a sleeper waits to be signalled there.
    fn cpy_run_chunk(&mut self, th: u32) {
        let w = self.threads[th as usize].worker;
        let g = self.threads[th as usize].g;
        let sleepers = !self.gil(w).sleepers.is_empty();
        if sleepers && g.a == 0.0 && in_call(g.a, g.b, g.pos) {
            // No bytecode before the call: a release point right here.
            self.trace(th, "release point");
            self.cpy_signal(w);
        }
        let stop = self.cpy_chunk_stop(th, g.pos);
        self.cpy_start_chunk(th, g.pos, stop);
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
            self.g(th).state = GState::Off;
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
            (g.state, g.at_point, g.at_call_end) = (GState::MutexWait, true, at_call_end(g.a, g.b, pos));
            self.gil(w).mutex_queue.push_back(th);
            self.trace(th, "blocked on the mutex");
            return;
        }
        self.cpy_at_point(th);
    }

    /// The thread, holding the mutex for an instant, at a point of its run: a release point
    /// (drops the GIL and signals a sleeper) or the end of a C call (takes the GIL back, or
    /// waits for it).
    fn cpy_at_point(&mut self, th: u32) {
        let w = self.threads[th as usize].worker;
        let g = self.g(th);
        (g.state, g.at_point, g.at_call_end) = (GState::Run, false, false);
        let pos = g.pos;
        if self.gil(w).owner != th {
            // Back from a C call during which another thread took the GIL.
            return self.cpy_acquire(th);
        }
        let g = self.threads[th as usize].g;
        if at_call_end(g.a, g.b, pos) {
            return self.cpy_run_chunk(th);
        }
        if std::mem::take(&mut self.gil(w).drop_request) {
            // A drop request came while it was blocked: it drops and waits for the switch.
            return self.cpy_forced_drop_at(w, pos);
        }
        self.trace(th, "release point");
        self.cpy_signal(w);
        self.cpy_run_chunk(th);
    }

    /// Releases worker `w`'s mutex: the first thread blocked on it gets it, once woken.
    fn cpy_mutex_release(&mut self, w: u32) {
        match self.gil(w).mutex_queue.pop_front() {
            Some(n) => {
                self.gil(w).mutex = n;
                self.g(n).state = GState::MutexWake;
                let latency = round_ns(self.cost.draw_wake_ns(&mut self.gil_rng));
                self.queue.push(self.now.saturating_add(latency), Ev::GilWake { thread: n });
            }
            None => self.gil(w).mutex = NONE,
        }
    }

    /// Signals the first sleeper of worker `w`'s GIL, if any: it wakes later.
    fn cpy_signal(&mut self, w: u32) {
        if let Some(s) = self.gil(w).sleepers.pop_front() {
            self.gil(w).counts.signals += 1;
            self.trace(s, "signalled");
            self.cpy_wake_later(s, false);
            self.update_gil_next(w as usize);
        }
    }

    /// `th` wakes after the OS's wake-up latency.
    fn cpy_wake_later(&mut self, th: u32, timed_out: bool) {
        let g = self.g(th);
        (g.state, g.timed_out) = (GState::Waking, timed_out);
        let latency = round_ns(self.cost.draw_wake_ns(&mut self.gil_rng));
        self.queue.push(self.now.saturating_add(latency), Ev::GilWake { thread: th });
    }

    /// The OS has woken `th`: it spends the wake-up's CPU, then checks the GIL.
    pub(super) fn cpy_woken(&mut self, th: u32) {
        let w = self.threads[th as usize].worker;
        let g = self.threads[th as usize].g;
        if g.state == GState::MutexWake {
            self.trace(th, "given the mutex");
            if g.at_point {
                self.cpy_at_point(th);
                return self.cpy_mutex_release(w);
            }
            return self.cpy_hold_mutex(th);
        }
        self.trace(th, "woken");
        self.g(th).state = GState::WakeCpu;
        match self.cost.vain_wake_ns * (1.0 - self.cost.mutex_share) {
            c if c > 0.0 => self.cpu.start(th, c),
            _ => self.cpy_wants_mutex(th),
        }
    }

    /// A woken waiter, back in `take_gil`, takes the mutex to check — or blocks on it.
    fn cpy_wants_mutex(&mut self, th: u32) {
        let w = self.threads[th as usize].worker;
        if self.gil(w).mutex != NONE {
            self.trace(th, "blocked on the mutex");
            self.g(th).state = GState::MutexWait;
            return self.gil(w).mutex_queue.push_back(th);
        }
        self.cpy_hold_mutex(th);
    }

    /// `th` holds the mutex while it checks the GIL.
    fn cpy_hold_mutex(&mut self, th: u32) {
        let w = self.threads[th as usize].worker;
        self.gil(w).mutex = th;
        self.g(th).state = GState::WakeCheck;
        self.cpy_stop_owner(w);
        match self.cost.vain_wake_ns * self.cost.mutex_share {
            c if c > 0.0 => self.cpu.start(th, c),
            _ => self.cpy_check(th),
        }
    }

    /// A woken thread checks the GIL, as `take_gil`'s loop does.
    fn cpy_check(&mut self, th: u32) {
        let w = self.threads[th as usize].worker;
        self.cpy_mutex_release(w);
        if self.cpy_free(w) {
            self.cpy_take(th);
            return self.cpy_run_chunk(th);
        }
        let g = self.threads[th as usize].g;
        if g.timed_out && g.saved_switch == self.gil(w).switch_number {
            self.gil(w).counts.drop_requests += 1;
            self.trace(th, "drop request");
            self.cpy_sleep(th);
            let o = self.gil(w).owner;
            if self.threads[o as usize].g.state == GState::Run {
                return self.cpy_forced_drop(w);
            }
            // Blocked on the mutex before its drop: it sees the request once it has it.
            self.gil(w).drop_request = true;
            return;
        }
        if !g.timed_out {
            self.gil(w).counts.vain += 1;
            self.trace(th, "vain");
        }
        self.cpy_sleep(th);
    }

    /// `th` begins a timed wait.
    fn cpy_sleep(&mut self, th: u32) {
        let w = self.threads[th as usize].worker;
        let (switch, interval) = (self.gil(w).switch_number, self.gil(w).interval);
        let now = self.now;
        let g = self.g(th);
        (g.state, g.saved_switch, g.deadline) = (GState::Sleeping, switch, now.saturating_add(interval));
        if !std::mem::replace(&mut g.waiting, true) {
            let r = self.threads[th as usize].req;
            if r != NONE {
                self.reqs[r as usize].wait_start = now;
            }
        }
        self.gil(w).sleepers.push_back(th);
        self.update_gil_next(w as usize);
        self.cpy_stop_owner(w);
    }

    /// A sleeper waits to be signalled, or another thread has the mutex: the owner's chunk
    /// must end where it will meet them.
    fn cpy_stop_owner(&mut self, w: u32) {
        let o = self.gil(w).owner;
        if o == NONE || self.threads[o as usize].g.state != GState::Run {
            return;
        }
        let p = self.cpy_pos(o);
        let stop = self.cpy_chunk_stop(o, p);
        if stop < self.threads[o as usize].g.stop {
            self.cpy_restart(o, p, stop);
        }
    }

    /// The first sleeper's timed wait of worker `w`'s GIL ran out: it wakes.
    pub(super) fn cpy_timeout(&mut self, w: u32) {
        let s = self.gil(w).sleepers.pop_front().expect("a deadline implies a sleeper");
        self.trace(s, "timed out");
        self.cpy_wake_later(s, true);
        self.update_gil_next(w as usize);
    }

    /// A drop request: the owner, in bytecode, drops the GIL at once, signals the first
    /// sleeper and waits until another thread has taken it.
    fn cpy_forced_drop(&mut self, w: u32) {
        let o = self.gil(w).owner;
        let p = self.cpy_pos(o);
        let rem = self.cpu.preempt(o);
        debug_assert!(
            (self.threads[o as usize].g.stop - rem - p).abs() <= 1e-9 * self.cpu.virtual_ns().max(1.0)
        );
        self.cpy_forced_drop_at(w, p);
    }

    /// The owner, off the cores at progress `p` (in bytecode), drops the GIL on request.
    fn cpy_forced_drop_at(&mut self, w: u32, p: f64) {
        let o = self.gil(w).owner;
        self.cpy_account(w, p);
        self.gil(w).owner = NONE;
        self.gil(w).counts.forced += 1;
        self.threads[o as usize].holds_lock = false;
        let now = self.now;
        let g = self.g(o);
        (g.state, g.pos) = (GState::SwitchWait, p);
        if !std::mem::replace(&mut g.waiting, true) {
            let r = self.threads[o as usize].req;
            if r != NONE {
                self.reqs[r as usize].wait_start = now;
            }
        }
        self.gil(w).switch_waiters.push(o);
        self.trace(o, "forced drop");
        self.cpy_signal(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_arithmetic() {
        // Pairs of 3 ns locked, 2 ns free.
        assert_eq!(locked_upto(3.0, 2.0, 0.0), 0.0);
        assert_eq!(locked_upto(3.0, 2.0, 4.0), 3.0);
        assert_eq!(locked_upto(3.0, 2.0, 6.0), 4.0);
        assert_eq!(locked_upto(3.0, 0.0, 6.0), 6.0);
        assert_eq!(next_release(3.0, 2.0, 0.0), 3.0);
        assert_eq!(next_release(3.0, 2.0, 3.0), 8.0, "strictly after");
        assert_eq!(next_release(3.0, 2.0, 4.0), 8.0);
        assert_eq!(next_release(0.0, 2.0, 0.0), 2.0, "no bytecode: the release at 0 is past");
        assert!(!in_call(3.0, 2.0, 2.9));
        assert!(in_call(3.0, 2.0, 3.0));
        assert!(in_call(3.0, 2.0, 4.9));
        assert!(!in_call(3.0, 2.0, 5.0));
        assert!(!in_call(3.0, 0.0, 3.0), "no C call time: never free");
        // A pair's end, however it was rounded, is the next pair's start: in bytecode.
        let per = 0.1 + 0.2;
        for k in [1.0, 3.0, 7.0, 9999.0] {
            let end = k * per;
            for p in [end, end * (1.0 - 1e-15), end * (1.0 + 1e-15)] {
                assert!(!in_call(0.1, 0.2, p), "{p}");
                assert_eq!(pair_of(0.1, 0.2, p).0, k, "{p}");
                assert!((call_end(0.1, 0.2, p) - (k + 1.0) * per).abs() < 1e-9);
            }
        }
    }
}

#[cfg(test)]
mod sequence_tests {
    use crate::scenario::Scenario;
    use std::path::Path;

    /// The GIL's trace of two requests on two threads (1 and 2) and two cores, each wake-up
    /// 30 µs and free of CPU: `(µs, thread, what)` for the first `n` entries.
    fn trace(cost: &str, interval_ms: f64, n: usize) -> Vec<(u64, u32, &'static str)> {
        let toml = format!(
            "[system]\ncores = 2\n[worker]\nthreads = 2\nlock = \"gil\"\nswitch_interval_ms = {interval_ms}\n\
             [clients]\nkind = \"burst\"\nburst = 2\n[workload]\nnew_tokens = 1\n\
             [cost]\nwake_us = 30\nvain_wake_us = 0\n{cost}"
        );
        let sc = Scenario::parse(&toml, Path::new("t"), Path::new("."), &[]).unwrap();
        let mut sys = super::super::system::System::new(&sc, 0);
        sys.run_loop_for_test(10_000);
        sys.trace.iter().take(n).map(|&(t, th, what)| (t / 1000, th, what)).collect()
    }

    #[test]
    fn the_releaser_barges_back_in_and_its_waiter_wakes_in_vain() {
        // One token: 3 slices of 100 µs of bytecode, each followed by a 20 µs C call.
        // Thread 2 is signalled at every release (100, 220, 340 µs) and woken 30 µs later;
        // twice it finds that thread 1, back from its 20 µs call, has taken the GIL again.
        let got = trace("token_locked_ms = 0.3\ntoken_free_ms = 0.06\nrelease_points = 3\n", 5.0, 14);
        let want = [
            (0, 1, "take (switch)"),
            (0, 2, "sleep"),
            (100, 1, "release point"),
            (100, 2, "signalled"),
            (130, 2, "woken"),
            (130, 2, "vain"),
            (220, 1, "release point"),
            (220, 2, "signalled"),
            (250, 2, "woken"),
            (250, 2, "vain"),
            (340, 1, "release point"),
            (340, 2, "signalled"),
            (370, 2, "woken"),
            (370, 2, "take (switch)"),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn a_timed_out_waiter_asks_and_the_holder_is_switched_out() {
        // 1 ms of bytecode with no release point, a 200 µs switch interval. Thread 2's wait
        // runs out at 200 µs; woken at 230 with no switch since, it asks for a drop and waits
        // again; thread 1 drops at once and signals it; thread 2 takes the GIL at 260, which
        // wakes thread 1 from its forced-switch wait at 290: it finds the GIL taken, and its
        // own wait runs out at 490 — and so on, 260 µs of work a turn.
        let got = trace("request_locked_ms = 1\n", 0.2, 16);
        let want = [
            (0, 1, "take (switch)"),
            (0, 2, "sleep"),
            (200, 2, "timed out"),
            (230, 2, "woken"),
            (230, 2, "drop request"),
            (230, 1, "forced drop"),
            (230, 2, "signalled"),
            (260, 2, "woken"),
            (260, 2, "take (switch)"),
            (290, 1, "woken"),
            (290, 1, "vain"),
            (490, 1, "timed out"),
            (520, 1, "woken"),
            (520, 1, "drop request"),
            (520, 2, "forced drop"),
            (520, 1, "signalled"),
        ];
        assert_eq!(got, want);
    }
}
