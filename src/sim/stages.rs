//! A request's clock by stage: the stages servesim's server reports in `Server-Timing`
//! (see [`super::StageTimes`] for what each holds on either side).
//!
//! ```text
//!  arrival ─ waits (thread, loop before and after the handler) ─┬─ done ─ network ─ reply
//!          └─ lock waits ──────────────────────────────────────┤
//!          └─ running: held (lock held) + free (not) ──────────┘
//!                      of which loop work
//! ```
//!
//! Every moment of a request up to the server's reply is a wait or running on a thread, so
//! most stages cost nothing to keep: the waits are the request's own counters, and the
//! running time is what the span to the reply leaves once they are taken out. Only what the
//! waits do not hold is kept here — the loop's share of the running time, the lock held,
//! hand-offs, batched steps' lock waits, and the wait `async-blocking`'s server sees.

use super::request::{WAIT_LOCK, WAIT_LOOP, WAIT_REPLY, WAIT_THREAD};
use crate::des::Nanos;

/// What a request's stages need beyond its waits.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct StageClock {
    /// `async-blocking`: the wait for the loop as the server sees it (ns).
    pub(crate) loop_queue_ns: Nanos,
    /// Lock waits that the request's lock-wait counter does not hold: hand-offs, and the
    /// waits of the batched steps it was in (ns).
    pub(crate) lock_extra_ns: Nanos,
    /// Running with the lock held (ns).
    pub(crate) held_ns: Nanos,
    /// Running loop work, lock waits excluded (ns; modulo 2⁶⁴ until the work is done, as
    /// its lock waits are taken out when they end).
    loop_ns: Nanos,
    /// Running loop work: when it began. Waiting for the loop (`async-blocking`): since
    /// when the server can see it wait — its arrival if the loop was idle, else the end of
    /// the job the loop was running.
    pub(crate) mark: Nanos,
    /// Whether the request is running loop work.
    on_loop: bool,
}

impl StageClock {
    /// A request arriving at `now`.
    pub(crate) fn new(now: Nanos) -> Self {
        Self { mark: now, ..Self::default() }
    }

    /// Loop work begins at `now`.
    #[inline]
    pub(crate) fn loop_starts(&mut self, now: Nanos) {
        self.mark = now;
        self.on_loop = true;
    }

    /// Loop work ends at `now`.
    #[inline]
    pub(crate) fn loop_ends(&mut self, now: Nanos) {
        if self.on_loop {
            self.loop_ns = self.loop_ns.wrapping_add(now - self.mark);
            self.on_loop = false;
        }
    }

    /// A lock wait of `waited` ns ended: not running time, if it came in loop work.
    #[inline]
    pub(crate) fn lock_waited(&mut self, waited: Nanos) {
        if self.on_loop {
            self.loop_ns = self.loop_ns.wrapping_sub(waited);
        }
    }

    /// A batched step in which the scheduler waited `waited` ns for the lock and held it
    /// `held`: a member of the batch counts the whole step, as the server's batch does.
    #[inline]
    pub(crate) fn add_step(&mut self, waited: Nanos, held: Nanos) {
        self.lock_extra_ns += waited;
        self.held_ns += held;
    }

    /// The stages in the order of [`super::StageTimes::NAMES`] (ns), of a request that
    /// arrived at `arrival`, was answered by the server at `done` and waited `waits`.
    #[inline]
    pub(crate) fn totals(&self, arrival: Nanos, done: Nanos, waits: &[Nanos; 4]) -> [Nanos; 5] {
        let lock = waits[WAIT_LOCK] + self.lock_extra_ns;
        let waited = waits[WAIT_THREAD] + waits[WAIT_LOOP] + waits[WAIT_REPLY] + lock;
        let run = (done - arrival).saturating_sub(waited);
        let held = self.held_ns.min(run);
        [waits[WAIT_THREAD] + self.loop_queue_ns, lock, held, run - held, self.loop_ns]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_time_is_what_the_waits_leave_and_loop_work_leaves_out_its_lock_waits() {
        // Arrives at 0; loop work 2..5 after a loop wait of 2; a thread wait 5..9; the
        // handler 9..30 with a lock wait of 4 and 10 held; loop work 30..34 with a lock wait
        // of 1 after a reply wait of 0; answered at 34.
        let mut c = StageClock::new(0);
        c.loop_starts(2);
        c.loop_ends(5);
        c.held_ns += 10;
        c.loop_starts(30);
        c.lock_waited(1);
        c.loop_ends(34);
        let waits = [4, 4 + 1, 2, 0];
        let run = 34 - 4 - 5 - 2;
        assert_eq!(c.totals(0, 34, &waits), [4, 5, 10, run - 10, 3 + 3]);
        c.add_step(3, 2);
        assert_eq!(c.totals(0, 34, &waits), [4, 8, 12, run - 3 - 12, 6]);
    }
}
