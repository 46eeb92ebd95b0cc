//! The per-worker lock: a fair lock with FIFO hand-off, and in `gil` mode CPython's drop
//! request: once a thread has waited a switch interval with no hand-off in between, the
//! holder releases at its next switch point and queues again.
//!
//! The interval runs from the later of the holder's acquisition and the arrival of the
//! first thread that waits during its tenure: the *drop deadline*. (CPython arms a timer
//! per waiter, so a waiter from an earlier tenure may fire up to one interval later; the
//! real server implements the same deadline rule as this simulator.)
//!
//! A tenure begins when the lock is handed over, but the new holder first pays the hand-off
//! (`cost.handoff_us`: being woken). A deadline that passes before it has paid is put off
//! to one interval after it will have ([`Lock::put_off`]): in CPython a thread only counts
//! as having switched once `take_gil` returns in the woken thread, which clears any drop
//! request made meanwhile, and a waiter asks only after a whole interval with no switch
//! (`Python/ceval_gil.c`). So every holder runs some bytecode in each tenure; dropping it
//! mid-hand-off would make a hand-off longer than the CPU a holder gets per interval
//! livelock the lock, every tenure paying the hand-off again and none doing work.

use super::request::{Step, WAIT_LOCK};
use super::system::{NONE, System};
use crate::des::Nanos;
use std::collections::VecDeque;

/// One worker's lock.
pub(crate) struct Lock {
    holder: Option<u32>,
    waiters: VecDeque<u32>,
    /// Hand-offs so far: a waiter asks for a drop only if none happened while it waited.
    switches: u64,
    held_since: Nanos,
    held_ns: u64,
    /// `gil`: the switch interval.
    interval: Option<Nanos>,
    /// When the holder must drop the lock (`Nanos::MAX`: no deadline).
    deadline: Nanos,
}

impl Lock {
    /// A free lock; `switch_interval` is `Some` for the GIL.
    pub(crate) fn new(switch_interval: Option<Nanos>) -> Self {
        Self {
            holder: None,
            waiters: VecDeque::new(),
            switches: 0,
            held_since: 0,
            held_ns: 0,
            interval: switch_interval,
            deadline: Nanos::MAX,
        }
    }

    /// Takes the lock if it is free.
    #[inline]
    pub(crate) fn try_take(&mut self, thread: u32, now: Nanos) -> bool {
        if self.holder.is_some() {
            return false;
        }
        self.holder = Some(thread);
        self.held_since = now;
        true
    }

    /// Queues `thread` behind the current waiters; the first waiter of a tenure starts the
    /// drop deadline.
    #[inline]
    pub(crate) fn wait(&mut self, thread: u32, now: Nanos) {
        if self.waiters.is_empty() {
            self.arm(now);
        }
        self.waiters.push_back(thread);
    }

    #[inline]
    fn arm(&mut self, now: Nanos) {
        self.deadline = self.interval.map_or(Nanos::MAX, |i| now.saturating_add(i));
    }

    /// Puts the drop deadline off to one switch interval after `paid`, when the holder will
    /// have paid its hand-off (see the module docs).
    #[inline]
    pub(crate) fn put_off(&mut self, paid: Nanos) {
        self.arm(paid);
    }

    /// When the holder must drop the lock, if it must.
    #[inline]
    pub(crate) fn deadline(&self) -> Nanos {
        self.deadline
    }

    /// Releases the lock; the first waiter, if any, becomes the holder and is returned.
    #[inline]
    pub(crate) fn release(&mut self, now: Nanos) -> Option<u32> {
        debug_assert!(self.holder.is_some(), "release of a free lock");
        match self.waiters.pop_front() {
            Some(next) => {
                self.holder = Some(next);
                self.switches += 1;
                if self.waiters.is_empty() {
                    self.deadline = Nanos::MAX;
                } else {
                    self.arm(now);
                }
                Some(next)
            }
            None => {
                self.holder = None;
                self.deadline = Nanos::MAX;
                self.held_ns += now - self.held_since;
                None
            }
        }
    }

    /// The holder, if any.
    pub(crate) fn holder(&self) -> Option<u32> {
        self.holder
    }

    /// Hand-offs so far.
    #[cfg(test)]
    pub(crate) fn switches(&self) -> u64 {
        self.switches
    }

    /// Total time the lock has been held up to `now` (ns).
    pub(crate) fn held_ns(&self, now: Nanos) -> u64 {
        match self.holder {
            Some(_) => self.held_ns + (now - self.held_since),
            None => self.held_ns,
        }
    }
}

/// The serving system's use of the locks: steps that need one, waits, releases and the
/// fair GIL's drop requests (CPython's GIL has its own, in `gil`).
impl System<'_> {
    #[inline(always)]
    pub(super) fn start_step(&mut self, th: u32, step: Step) {
        if self.cpy {
            return self.cpy_start_step(th, step.work_ns, step.locked);
        }
        let t = &mut self.threads[th as usize];
        if t.holds_lock == step.locked {
            self.cpu.start(th, step.work_ns);
        } else if !step.locked {
            self.release_lock(th, true);
            self.cpu.start(th, step.work_ns);
        } else if self.workers[t.worker as usize].lock.try_take(th, self.now) {
            t.holds_lock = true;
            t.held_since = self.now;
            self.cpu.start(th, step.work_ns);
        } else {
            self.wait_for_lock(th, step.work_ns);
        }
    }

    #[inline]
    pub(super) fn wait_for_lock(&mut self, th: u32, work_ns: f64) {
        let t = &mut self.threads[th as usize];
        t.pending_ns = work_ns;
        t.lock_wait_since = self.now;
        let (w, r) = (t.worker as usize, t.req);
        if r != NONE {
            self.reqs[r as usize].wait_start = self.now;
        }
        self.workers[w].lock.wait(th, self.now);
        self.update_gil_next(w);
    }

    /// Keeps `gil_next` the earliest drop deadline after worker `w`'s lock changed.
    #[inline]
    pub(super) fn update_gil_next(&mut self, w: usize) {
        if !self.gil {
            return;
        }
        let d = self.lock_deadline(w);
        if self.workers.len() == 1 {
            self.gil_next = (d, 0);
        } else if d <= self.gil_next.0 {
            self.gil_next = (d, w as u32);
        } else if self.gil_next.1 as usize == w {
            self.gil_next = (Nanos::MAX, 0);
            for i in 0..self.workers.len() {
                let d = self.lock_deadline(i);
                if d < self.gil_next.0 {
                    self.gil_next = (d, i as u32);
                }
            }
        }
    }

    /// Releases `th`'s lock; the first waiter, if any, gets it and starts its step after
    /// paying the hand-off.
    ///
    /// The hand-off is the waiter's wake-up, `cost.handoff_us` being what waking a parked
    /// thread on an idle core costs (the core must leave its idle state first). So it is
    /// paid only while a core is idle: with every core busy, the woken thread joins a busy
    /// core's run queue and shares it at once, as processor sharing has it. What the
    /// hand-off costs the cores themselves — the releaser's wake-up call, the waiter's park
    /// and the context switch between them, `cost.switch_us` — is CPU the waiter spends,
    /// holding the lock, idle cores or not. And a waiter that queued moments ago has not
    /// gone to sleep yet: it pays no more than it has waited, `min(cost.handoff_us,
    /// waited)` and `min(cost.switch_us, waited)`. (Without the cap, a hand-off dearer than
    /// a thread's lock-free slice turns every acquisition into a hand-off — a convoy the
    /// real lock does not form when its holds are short.)
    ///
    /// `continues`: the releaser goes straight on to lock-free work (it is off the cores
    /// only for this instant), so it does not leave a core idle.
    #[inline]
    pub(super) fn release_lock(&mut self, th: u32, continues: bool) {
        if self.cpy {
            return self.cpy_release(th);
        }
        let t = &mut self.threads[th as usize];
        t.holds_lock = false;
        let (w, r, held) = (t.worker as usize, t.req, self.now.saturating_sub(t.held_since));
        self.add_held(th, r, held);
        let handed = self.workers[w].lock.release(self.now);
        self.update_gil_next(w);
        if let Some(next) = handed {
            let t = &mut self.threads[next as usize];
            t.holds_lock = true;
            let waited = self.now.saturating_sub(t.lock_wait_since) as f64;
            let wake_ns = if self.handoff_ns > 0.0 && self.cpu.idle_cores() > u32::from(continues) {
                self.handoff_ns.min(waited)
            } else {
                0.0
            };
            // The context switch's CPU, idle cores or not.
            let handoff_ns = wake_ns + self.switch_ns.min(waited);
            if handoff_ns > 0.0 {
                t.handoff_paid_v = self.cpu.clock(next) + handoff_ns;
            }
            // The hold begins once the hand-off is paid: until then the waiter is being woken,
            // which the server counts as waiting (at its CPU length: a core was idle).
            let handoff = crate::des::round_ns(handoff_ns);
            t.held_since = self.now + handoff;
            let (r, work, since) = (t.req, t.pending_ns + handoff_ns, t.lock_wait_since);
            if r != NONE {
                let req = &mut self.reqs[r as usize];
                let waited = self.now - req.wait_start;
                req.waits[WAIT_LOCK] += waited;
                req.stages.lock_extra_ns += handoff;
                req.stages.lock_waited(waited + handoff);
            } else {
                self.add_batch_lock_wait(next, self.now - since + handoff);
            }
            self.cpu.start(next, work);
        }
    }

    /// Thread `th`, running request `r` (or a batch), held its lock for `ns` more.
    #[inline]
    pub(super) fn add_held(&mut self, th: u32, r: u32, ns: Nanos) {
        if r != NONE {
            self.reqs[r as usize].stages.held_ns += ns;
        } else if let Some(b) = self.batcher_of(th) {
            b.step_held_ns += ns;
        }
    }

    /// Thread `th`, a batch scheduler, waited `ns` for its lock in the current step.
    #[inline]
    pub(super) fn add_batch_lock_wait(&mut self, th: u32, ns: Nanos) {
        if let Some(b) = self.batcher_of(th) {
            b.step_lock_ns += ns;
        }
    }

    /// The batch scheduler that thread `th` is, if it is one.
    fn batcher_of(&mut self, th: u32) -> Option<&mut super::batch::Batcher> {
        let t = &self.threads[th as usize];
        if !t.batcher {
            return None;
        }
        self.workers[t.worker as usize].batcher.as_mut()
    }

    /// When worker `w`'s lock must be dropped, or its first GIL sleeper's wait runs out.
    #[inline]
    pub(super) fn lock_deadline(&self, w: usize) -> Nanos {
        if self.cpy { self.workers[w].gil.deadline(&self.threads) } else { self.workers[w].lock.deadline() }
    }

    /// The fair GIL's drop request: the deadline passed, so the holder of worker `w`'s lock
    /// releases at its next switch point (here: at once) and queues again — unless it has
    /// not yet paid the hand-off that gave it the lock (or has done nothing since): then the
    /// deadline moves to one interval after it will have, so every tenure does some work
    /// (see [`Lock::put_off`]).
    pub(super) fn gil_drop(&mut self, w: u32) {
        let holder = self.workers[w as usize].lock.holder().expect("a deadline implies a holder");
        let unpaid = self.threads[holder as usize].handoff_paid_v - self.cpu.clock(holder);
        if unpaid >= 0.0 {
            let paid = self.now.saturating_add(self.cpu.span_of(unpaid));
            self.workers[w as usize].lock.put_off(paid);
            self.update_gil_next(w as usize);
            return;
        }
        let remaining = self.cpu.preempt(holder);
        self.release_lock(holder, false);
        self.wait_for_lock(holder, remaining);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_hand_off_and_held_time() {
        let mut l = Lock::new(None);
        assert!(l.try_take(1, 0));
        assert!(!l.try_take(2, 5));
        l.wait(2, 5);
        l.wait(3, 6);
        assert_eq!(l.deadline(), Nanos::MAX);
        assert_eq!(l.release(10), Some(2));
        assert_eq!(l.release(20), Some(3));
        assert_eq!(l.switches(), 2);
        assert_eq!(l.release(30), None);
        assert_eq!(l.held_ns(100), 30);
        assert!(l.try_take(4, 100));
        assert_eq!(l.held_ns(110), 40);
    }

    #[test]
    fn gil_deadline_runs_from_first_waiter_or_tenure_start() {
        let mut l = Lock::new(Some(100));
        assert!(l.try_take(1, 0));
        assert_eq!(l.deadline(), Nanos::MAX, "no waiter, no deadline");
        l.wait(2, 30);
        l.wait(3, 50);
        assert_eq!(l.deadline(), 130, "first waiter of the tenure");
        assert_eq!(l.release(60), Some(2));
        assert_eq!(l.deadline(), 160, "waiters left: the new tenure's start");
        assert_eq!(l.release(70), Some(3));
        assert_eq!(l.deadline(), Nanos::MAX, "nobody waits");
        l.wait(1, 80);
        assert_eq!(l.deadline(), 180);
        l.put_off(150);
        assert_eq!(l.deadline(), 250, "an interval after the hand-off is paid");
        assert!(Lock::new(None).deadline() == Nanos::MAX);
        let mut late = Lock::new(Some(100));
        late.put_off(Nanos::MAX - 10);
        assert_eq!(late.deadline(), Nanos::MAX, "saturates");
    }
}
