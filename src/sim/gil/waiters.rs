//! The waiting side of CPython's GIL: signals, wake-ups, the mutex a woken waiter holds
//! while it checks, timed waits and their drop requests, and the forced switch.

use super::GState;
use crate::des::{Nanos, round_ns};
use crate::sim::event::Ev;
use crate::sim::system::{NONE, System};

impl System<'_> {
    /// Releases worker `w`'s mutex, as glibc's `pthread_mutex_unlock` does: the mutex is
    /// free at once (a running thread that needs it takes it), and the first thread blocked
    /// on it is woken to try again.
    pub(super) fn cpy_mutex_release(&mut self, w: u32) {
        self.gil(w).mutex = NONE;
        if let Some(n) = self.gil(w).mutex_queue.pop_front() {
            self.cpy_set(n, GState::MutexWake);
            // It blocked a moment ago: its core has not halted, so it wakes in the measured
            // `cost.mutex_wake_us` where the scenario has one.
            let latency = match self.cost.mutex_wake_ns {
                ns if ns > 0.0 => round_ns(ns),
                _ => self.cpy_place_wake(NONE).1,
            };
            self.queue.push(self.now.saturating_add(latency), Ev::GilWake { thread: n });
        }
    }

    /// `signaller` signals the first sleeper of worker `w`'s GIL, if any: it wakes later.
    /// Returns the CPU the signal costs the signaller (ns): `cost.signal_us` when the
    /// sleeper is woken on an idle core, 0 when nobody sleeps or the sleeper takes the
    /// signaller's core (its wake-up's CPU is then the signaller's wait).
    pub(super) fn cpy_signal(&mut self, w: u32, signaller: u32) -> f64 {
        let Some(s) = self.gil(w).sleepers.pop_front() else { return 0.0 };
        self.trace(s, "signalled");
        let busy = self.cpy_wake_later(s, false, signaller);
        self.update_gil_next(w as usize);
        if busy && self.cost.wake_preempts() { 0.0 } else { self.cost.signal_ns }
    }

    /// Whether no core is idle for a wake-up, and its latency (ns): `cost.wake_us` onto an
    /// idle core, `cost.wake_busy_us` with every core busy. A `waker` that goes on
    /// running (a holder at a release point, off the cores between two chunks of its run)
    /// keeps its core.
    fn cpy_place_wake(&mut self, waker: u32) -> (bool, Nanos) {
        let waker_runs = waker != NONE && self.threads[waker as usize].g.state == GState::Run;
        let busy = self.cpu.idle_cores() <= u32::from(waker_runs);
        (busy, round_ns(self.cost.draw_wake_ns(&mut self.gil_rng, busy)))
    }

    /// `th` wakes after the OS's wake-up latency, woken by `waker` (`NONE`: its timer): onto
    /// an idle core if there is one; else onto the waker's core, which it takes from the
    /// waker once it runs (when the scenario measured wake-ups with every core busy).
    /// Returns whether no core was idle.
    pub(super) fn cpy_wake_later(&mut self, th: u32, timed_out: bool, waker: u32) -> bool {
        let (busy, latency) = self.cpy_place_wake(waker);
        let preempt = if busy && self.cost.wake_preempts() { waker } else { NONE };
        self.cpy_set(th, GState::Waking);
        let g = self.g(th);
        (g.timed_out, g.waker) = (timed_out, preempt);
        self.queue.push(self.now.saturating_add(latency), Ev::GilWake { thread: th });
        busy
    }

    /// The OS has woken `th`: it spends the wake-up's CPU, then checks the GIL.
    pub(in crate::sim) fn cpy_woken(&mut self, th: u32) {
        let w = self.threads[th as usize].worker;
        let g = self.threads[th as usize].g;
        if g.state == GState::MutexWake {
            if self.gil(w).mutex != NONE {
                // Taken again while it woke: it blocks again.
                return self.cpy_block_on_mutex(th, w);
            }
            self.trace(th, "takes the mutex");
            self.gil(w).mutex = th;
            if g.at_point {
                self.cpy_at_point(th);
                return self.cpy_mutex_release(w);
            }
            return self.cpy_hold_mutex(th);
        }
        self.trace(th, "woken");
        self.cpy_set(th, GState::WakeCpu);
        match self.cost.vain_wake_ns * (1.0 - self.cost.mutex_share) {
            c if c > 0.0 && g.waker != NONE => self.cpu.start_preempting(th, c, g.waker),
            c if c > 0.0 => self.cpu.start(th, c),
            _ => self.cpy_wants_mutex(th),
        }
    }

    /// A woken waiter, back in `take_gil`, takes the mutex to check — or blocks on it.
    pub(super) fn cpy_wants_mutex(&mut self, th: u32) {
        let w = self.threads[th as usize].worker;
        if self.gil(w).mutex != NONE {
            return self.cpy_block_on_mutex(th, w);
        }
        self.cpy_hold_mutex(th);
    }

    /// `th` blocks on worker `w`'s mutex, behind any thread already blocked on it (a sleep
    /// on the GIL, as the kernel counts them).
    pub(super) fn cpy_block_on_mutex(&mut self, th: u32, w: u32) {
        self.trace(th, "blocked on the mutex");
        self.gil_sleeps += 1;
        self.cpy_set(th, GState::MutexWait);
        self.gil(w).mutex_queue.push_back(th);
    }

    /// `th` holds the mutex while it checks the GIL.
    pub(super) fn cpy_hold_mutex(&mut self, th: u32) {
        let w = self.threads[th as usize].worker;
        self.gil(w).mutex = th;
        self.cpy_set(th, GState::WakeCheck);
        self.cpy_stop_owner(w);
        match self.cost.vain_wake_ns * self.cost.mutex_share {
            c if c > 0.0 => self.cpu.start(th, c),
            _ => self.cpy_check(th),
        }
    }

    /// A woken thread checks the GIL, as `take_gil`'s loop does.
    pub(super) fn cpy_check(&mut self, th: u32) {
        let w = self.threads[th as usize].worker;
        self.cpy_mutex_release(w);
        if self.cpy_free(w) {
            let cold = self.cpy_take(th);
            return self.cpy_run_chunk(th, cold);
        }
        let g = self.threads[th as usize].g;
        if g.timed_out && g.saved_switch == self.gil(w).switch_number {
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
            self.trace(th, "vain");
        }
        self.cpy_sleep(th);
    }

    /// `th` begins a timed wait.
    pub(super) fn cpy_sleep(&mut self, th: u32) {
        self.gil_sleeps += 1;
        let w = self.threads[th as usize].worker;
        let (switch, interval) = (self.gil(w).switch_number, self.gil(w).interval);
        let now = self.now;
        self.cpy_set(th, GState::Sleeping);
        let g = self.g(th);
        (g.saved_switch, g.deadline) = (switch, now.saturating_add(interval));
        if !std::mem::replace(&mut g.waiting, true) {
            let t = &mut self.threads[th as usize];
            t.lock_wait_since = now;
            if t.req != NONE {
                self.reqs[t.req as usize].wait_start = now;
            }
        }
        self.gil(w).sleepers.push_back(th);
        self.update_gil_next(w as usize);
        self.cpy_stop_owner(w);
    }

    /// A sleeper waits to be signalled, or another thread has the mutex: the owner's chunk
    /// must end where it will meet them.
    pub(super) fn cpy_stop_owner(&mut self, w: u32) {
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
    pub(in crate::sim) fn cpy_timeout(&mut self, w: u32) {
        let s = self.gil(w).sleepers.pop_front().expect("a deadline implies a sleeper");
        self.trace(s, "timed out");
        let _ = self.cpy_wake_later(s, true, NONE);
        self.update_gil_next(w as usize);
    }

    /// A drop request: the owner, in bytecode, drops the GIL at once, signals the first
    /// sleeper and waits until another thread has taken it.
    pub(super) fn cpy_forced_drop(&mut self, w: u32) {
        let o = self.gil(w).owner;
        let p = self.cpy_pos(o);
        let v = self.cpu.clock(o);
        let owed = self.cpy_owed(o, p);
        let rem = self.cpu.preempt(o);
        debug_assert!((self.threads[o as usize].g.stop - rem - p + owed).abs() <= 1e-9 * v.max(1.0));
        self.cpy_forced_drop_at(w, p);
    }

    /// The owner, off the cores at progress `p` (in bytecode), drops the GIL on request.
    pub(super) fn cpy_forced_drop_at(&mut self, w: u32, p: f64) {
        let o = self.gil(w).owner;
        self.cpy_account(w, p);
        self.gil(w).owner = NONE;
        self.threads[o as usize].holds_lock = false;
        let now = self.now;
        self.cpy_set(o, GState::SwitchWait);
        let g = self.g(o);
        g.pos = p;
        if !std::mem::replace(&mut g.waiting, true) {
            let t = &mut self.threads[o as usize];
            t.lock_wait_since = now;
            if t.req != NONE {
                self.reqs[t.req as usize].wait_start = now;
            }
        }
        self.gil(w).switch_waiters.push(o);
        self.trace(o, "forced drop");
        let _ = self.cpy_signal(w, o);
    }
}
