//! CPython's GIL, as `Python/ceval_gil.c` implements it (`take_gil`, `drop_gil`; 3.8–3.13,
//! default build, `FORCE_SWITCHING` on).
//!
//! ```text
//!  take:  mutex ─ locked? ─ no ──────────────────────────────► ready
//!                   │ yes                                         │
//!                   └► timed wait on `cond`, one interval ◄┐      │ locked = 1
//!                        timed out, still locked and no    │      │ last_holder ≠ me →
//!                        switch since → drop request ──────┘      │   switch_number += 1
//!                        signalled, taken again → wait again ─┘   │ signal `switch_cond`
//!                                                                 │ clear any drop request
//!  drop:  mutex ─ locked = 0, signal one waiter on `cond`
//!         a drop was asked and nobody took the GIL since → wait on `switch_cond`
//!  switch point (eval breaker): a drop was asked → drop, then take
//! ```
//!
//! Nothing is handed over: a release frees the GIL and wakes one waiter, and the releasing
//! thread, back from a short C call, takes the free GIL again before the woken waiter runs
//! (it finds the GIL taken and waits a whole new interval). Only a waiter whose timed wait
//! runs out with no switch in between makes the holder drop it, and the holder then waits
//! until another thread has taken it.

use super::LockStats;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Thread identities for `last_holder` (0: nobody yet).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static ME: u64 = NEXT_ID.fetch_add(1, Ordering::Relaxed);
}

fn me() -> u64 {
    ME.with(|id| *id)
}

/// What `gil->mutex` protects.
#[derive(Debug, Default)]
struct State {
    /// `gil->locked`.
    locked: bool,
    /// `gil->switch_number`: times the GIL went to another thread than its last holder.
    switch_number: u64,
    /// Threads in the timed wait.
    waiting: usize,
    /// When the GIL was last taken (ns since `epoch`).
    held_since: u64,
    /// Held time of the tenures that ended (ns).
    held_ns: u64,
}

/// CPython's GIL of one worker process.
#[derive(Debug)]
pub struct CpythonGil {
    interval: Duration,
    epoch: Instant,
    mutex: Mutex<State>,
    cond: Condvar,
    switch_mutex: Mutex<()>,
    switch_cond: Condvar,
    /// `gil_drop_request`, read by the holder at every switch point without a lock.
    drop_request: AtomicBool,
    /// `gil->last_holder`: written under both mutexes, read under `switch_mutex`.
    last_holder: AtomicU64,
    holders: super::Holders,
    forced: AtomicU64,
    drop_requests: AtomicU64,
    vain: AtomicU64,
}

impl CpythonGil {
    /// A free GIL with this switch interval (`sys.setswitchinterval`; CPython waits at
    /// least 1 µs).
    pub fn new(interval: Duration) -> CpythonGil {
        CpythonGil {
            interval: interval.max(Duration::from_micros(1)),
            epoch: Instant::now(),
            mutex: Mutex::new(State::default()),
            cond: Condvar::new(),
            switch_mutex: Mutex::new(()),
            switch_cond: Condvar::new(),
            drop_request: AtomicBool::new(false),
            last_holder: AtomicU64::new(0),
            holders: super::Holders::default(),
            forced: AtomicU64::new(0),
            drop_requests: AtomicU64::new(0),
            vain: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.mutex.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `take_gil`: takes the GIL, waiting as CPython waits; returns the time waited.
    pub fn take(&self) -> Duration {
        let me = me();
        let t0 = Instant::now();
        let mut st = self.state();
        let waited = st.locked;
        if waited {
            self.holders.contended();
            st.waiting += 1;
            while st.locked {
                let saved = st.switch_number;
                let (guard, r) =
                    self.cond.wait_timeout(st, self.interval).unwrap_or_else(PoisonError::into_inner);
                st = guard;
                if r.timed_out() && st.locked && st.switch_number == saved {
                    self.drop_request.store(true, Ordering::Release);
                    self.drop_requests.fetch_add(1, Ordering::Relaxed);
                } else if !r.timed_out() && st.locked {
                    self.vain.fetch_add(1, Ordering::Relaxed);
                }
            }
            st.waiting -= 1;
        }
        {
            // FORCE_SWITCHING: `last_holder` changes under `switch_mutex` (see `drop_gil`).
            let _switch = self.switch_mutex.lock().unwrap_or_else(PoisonError::into_inner);
            st.locked = true;
            if self.last_holder.load(Ordering::Relaxed) != me {
                self.last_holder.store(me, Ordering::Relaxed);
                st.switch_number += 1;
            }
            self.switch_cond.notify_one();
        }
        // Whoever takes the GIL clears a drop request.
        if self.drop_request.load(Ordering::Relaxed) {
            self.drop_request.store(false, Ordering::Release);
        }
        st.held_since = self.now();
        drop(st);
        self.holders.enter();
        if waited { t0.elapsed() } else { Duration::ZERO }
    }

    /// `drop_gil`: frees the GIL and signals one waiter; when a drop was asked and no other
    /// thread has taken the GIL since, waits until one has. Returns the time that wait took.
    pub fn drop_gil(&self) -> Duration {
        let me = me();
        self.holders.leave();
        {
            let mut st = self.state();
            debug_assert!(st.locked, "drop of a free GIL");
            st.locked = false;
            st.held_ns += self.now().saturating_sub(st.held_since);
            self.cond.notify_one();
        }
        if !self.drop_request.load(Ordering::Acquire) {
            return Duration::ZERO;
        }
        let t0 = Instant::now();
        let switch = self.switch_mutex.lock().unwrap_or_else(PoisonError::into_inner);
        if self.last_holder.load(Ordering::Relaxed) != me {
            return Duration::ZERO;
        }
        self.drop_request.store(false, Ordering::Release);
        self.forced.fetch_add(1, Ordering::Relaxed);
        // One wait, as CPython's: `take` signals `switch_cond` under `switch_mutex`, which
        // this thread holds until it waits, so the signal cannot come before the wait.
        drop(self.switch_cond.wait(switch).unwrap_or_else(PoisonError::into_inner));
        t0.elapsed()
    }

    /// The eval breaker: when a drop was asked, drops the GIL and takes it again. Returns
    /// the time spent without it, or `None` when nobody asked. One atomic load otherwise.
    #[inline]
    pub fn switch_point(&self) -> Option<Duration> {
        if !self.drop_request.load(Ordering::Relaxed) {
            return None;
        }
        let t0 = Instant::now();
        self.drop_gil();
        self.take();
        Some(t0.elapsed())
    }

    /// Threads in the timed wait now.
    pub fn waiting(&self) -> usize {
        self.state().waiting
    }

    /// The counters so far.
    pub fn stats(&self) -> LockStats {
        let (held_ns, switches) = {
            let st = self.state();
            let held = st.held_ns + if st.locked { self.now().saturating_sub(st.held_since) } else { 0 };
            (held, st.switch_number)
        };
        self.holders.fill(LockStats {
            held_ms: held_ns as f64 / 1e6,
            // The first holder is a switch from nobody, not a hand-off.
            handoffs: switches.saturating_sub(1),
            forced_drops: self.forced.load(Ordering::Relaxed),
            drop_requests: self.drop_requests.load(Ordering::Relaxed),
            vain_wakeups: self.vain.load(Ordering::Relaxed),
            ..LockStats::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::wait_until;
    use super::*;
    use crate::server::busy::{NoSwitch, spin};
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::thread;

    #[test]
    fn never_two_holders_with_release_and_switch_points() {
        let g = Arc::new(CpythonGil::new(Duration::from_micros(100)));
        let inside = Arc::new(AtomicUsize::new(0));
        let total = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let (g, inside, total) = (Arc::clone(&g), Arc::clone(&inside), Arc::clone(&total));
                thread::spawn(move || {
                    g.take();
                    for i in 0..400 {
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                        // A non-atomic read-modify-write: lost updates if exclusion fails.
                        let v = total.load(Ordering::Relaxed);
                        spin(2_000, &mut NoSwitch);
                        total.store(v + 1, Ordering::Relaxed);
                        inside.fetch_sub(1, Ordering::SeqCst);
                        if i % 2 == 0 {
                            // A release point: a short C call without the GIL.
                            g.drop_gil();
                            spin(1_000, &mut NoSwitch);
                            g.take();
                        } else {
                            g.switch_point();
                        }
                    }
                    g.drop_gil();
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(total.load(Ordering::SeqCst), 2_400);
        let s = g.stats();
        assert_eq!(s.max_holders, 1, "{s:?}");
        assert!(s.contended > 0 && s.handoffs > 0, "no contention: the test proves nothing: {s:?}");
    }

    #[test]
    fn a_waiter_gets_the_gil_within_two_intervals_of_asking() {
        // The holder never releases the GIL except when asked at a switch point: only the
        // waiter's timed wait and the forced switch can get it the GIL.
        let interval = Duration::from_millis(25);
        let g = Arc::new(CpythonGil::new(interval));
        for _ in 0..3 {
            let stop = Arc::new(AtomicBool::new(false));
            let held = Arc::new(AtomicBool::new(false));
            let (g2, stop2, held2) = (Arc::clone(&g), Arc::clone(&stop), Arc::clone(&held));
            let holder = thread::spawn(move || {
                g2.take();
                held2.store(true, Ordering::Release);
                let deadline = Instant::now() + Duration::from_secs(10);
                while !stop2.load(Ordering::Acquire) && Instant::now() < deadline {
                    spin(20_000, &mut NoSwitch);
                    g2.switch_point();
                }
                g2.drop_gil();
            });
            wait_until("the holder to take the GIL", || held.load(Ordering::Acquire));
            let waited = g.take();
            stop.store(true, Ordering::Release);
            g.drop_gil();
            holder.join().unwrap();
            assert!(waited >= interval, "got it before its timed wait ran out: {waited:?}");
            assert!(waited < 2 * interval, "waited {waited:?}, more than two intervals of {interval:?}");
        }
        // Each time, only the drop request got it the GIL. (Whether the holder then also
        // waits for the switch depends on whether the waiter, taking the GIL, has cleared
        // the request before the holder looks: a race the OS decides.)
        let s = g.stats();
        assert!(s.drop_requests >= 3, "{s:?}");
        assert_eq!(s.max_holders, 1);
    }

    /// One try: a holder with release points 50 µs apart and a waiter; returns the releases
    /// at which the releaser took the free GIL back, without waiting, while the waiter it had
    /// signalled still waited.
    fn barged_releases() -> u32 {
        let g = Arc::new(CpythonGil::new(Duration::from_millis(20)));
        g.take();
        let g2 = Arc::clone(&g);
        let waiter = thread::spawn(move || {
            g2.take();
            g2.drop_gil();
        });
        wait_until("the waiter to wait", || g.waiting() == 1);
        let (mut barged, mut releases) = (0, 0);
        let t0 = Instant::now();
        while releases < 20 && t0.elapsed() < Duration::from_secs(10) {
            spin(50_000, &mut NoSwitch);
            if g.waiting() == 0 || g.switch_point().is_some() {
                break;
            }
            releases += 1;
            g.drop_gil();
            if g.take() == Duration::ZERO && g.waiting() == 1 {
                barged += 1;
            }
        }
        g.drop_gil();
        waiter.join().unwrap();
        let s = g.stats();
        assert!(s.handoffs >= 1 && s.max_holders == 1, "{s:?}");
        barged
    }

    #[test]
    fn the_releaser_may_take_the_free_gil_again_before_the_waiter_it_signalled() {
        let _alone = crate::server::gil::MACHINE_TIMING.lock().unwrap_or_else(|e| e.into_inner());
        // Each release frees the GIL and signals the waiter; the releaser, taking it again
        // at once, finds it free and does not wait — it barges past the waiter, which a fair
        // lock would have handed the GIL to at the first release. The waiter can also win a
        // release, when the OS runs it at once (on this machine about one try in twelve wins
        // the first); so up to five tries, of which one must show the barging.
        let tries: Vec<u32> = (0..5).map(|_| barged_releases()).take_while(|&b| b == 0).collect();
        assert!(tries.len() < 5, "the releaser never took the free GIL back past its waiter in 5 tries");
    }
}
