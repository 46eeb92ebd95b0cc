//! The fair lock: FIFO hand-off (`mutex`) and, in `fair-gil` mode, a drop request after a
//! switch interval. Not CPython's algorithm (see [`super::cpython`]); kept to show the
//! difference.
//!
//! ```text
//!  acquire: free → take it at once          release: waiters → the first one owns it now
//!           held → queue at the back, park            (woken by the OS: the hand-off cost)
//!                                                     none   → the lock is free
//!  fair-gil: drop deadline = switch interval after max(tenure start, first waiter's arrival);
//!       the holder checks it at every switch point and, once past, hands the lock to the
//!       first waiter, queues at the back and parks until its turn comes again.
//! ```
//!
//! The deadline rule is the simulator's (`sim::lock`): the interval runs from the later of
//! the holder's acquisition (when it took over from a queue that was not empty) and the
//! arrival of the first thread that waits during its tenure.
//!
//! Every thread that believes it holds the lock counts itself in a gauge; its peak
//! ([`LockStats::max_holders`]) must be 1, and the tests assert it.

use super::LockStats;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// No drop deadline.
const NO_DEADLINE: u64 = u64::MAX;

/// A thread waiting for the lock.
#[derive(Debug)]
struct Waiter {
    granted: AtomicBool,
    thread: Thread,
}

thread_local! {
    /// The calling thread's waiter record: a thread waits for one lock at a time.
    static WAITER: Arc<Waiter> =
        Arc::new(Waiter { granted: AtomicBool::new(false), thread: thread::current() });
}

#[derive(Debug, Default)]
struct State {
    held: bool,
    /// When the lock last went from free to held [ns since `epoch`].
    held_since: u64,
    /// Held time of the tenures that ended with the lock free (ns).
    held_ns: u64,
    waiters: VecDeque<Arc<Waiter>>,
}

/// A fair lock of one worker process.
#[derive(Debug)]
pub struct FairLock {
    /// `gil`: the switch interval (ns); `None` for a plain fair mutex.
    interval_ns: Option<u64>,
    epoch: Instant,
    state: Mutex<State>,
    /// The drop deadline [ns since `epoch`], readable without the state mutex.
    deadline: AtomicU64,
    holders: super::Holders,
    handoffs: AtomicU64,
    forced_drops: AtomicU64,
}

impl FairLock {
    /// A free lock. `switch_interval` is `Some` for CPython's GIL (drop requests), `None`
    /// for a fair mutex.
    pub fn new(switch_interval: Option<Duration>) -> FairLock {
        FairLock {
            interval_ns: switch_interval.map(|d| d.as_nanos().min(u128::from(u64::MAX - 1)) as u64),
            epoch: Instant::now(),
            state: Mutex::new(State::default()),
            deadline: AtomicU64::new(NO_DEADLINE),
            holders: super::Holders::default(),
            handoffs: AtomicU64::new(0),
            forced_drops: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the drop interval at `now` (GIL only).
    fn arm(&self, now: u64) {
        let d = self.interval_ns.map_or(NO_DEADLINE, |i| now.saturating_add(i).min(NO_DEADLINE - 1));
        self.deadline.store(d, Ordering::Release);
    }

    fn disarm(&self) {
        self.deadline.store(NO_DEADLINE, Ordering::Release);
    }

    /// The calling thread now believes it holds the lock.
    fn enter(&self) {
        self.holders.enter();
    }

    /// Queues the calling thread (the state mutex held) and returns its waiter record.
    fn enqueue(&self, st: &mut State, now: u64) -> Arc<Waiter> {
        let me = WAITER.with(Arc::clone);
        me.granted.store(false, Ordering::Relaxed);
        if st.waiters.is_empty() {
            self.arm(now);
        }
        st.waiters.push_back(Arc::clone(&me));
        me
    }

    /// Parks until `me` is granted the lock; returns the time waited.
    fn park_until_granted(&self, me: &Waiter, since: Instant) -> Duration {
        while !me.granted.load(Ordering::Acquire) {
            thread::park();
        }
        self.enter();
        since.elapsed()
    }

    /// Passes the lock to the first waiter (the state mutex held) and returns it to wake,
    /// or frees the lock when nobody waits.
    fn pass_on(&self, st: &mut State, now: u64) -> Option<Arc<Waiter>> {
        match st.waiters.pop_front() {
            Some(next) => {
                self.handoffs.fetch_add(1, Ordering::Relaxed);
                if st.waiters.is_empty() {
                    self.disarm()
                } else {
                    self.arm(now)
                }
                Some(next)
            }
            None => {
                st.held = false;
                st.held_ns += now.saturating_sub(st.held_since);
                self.disarm();
                None
            }
        }
    }

    fn wake(next: Arc<Waiter>) {
        next.granted.store(true, Ordering::Release);
        next.thread.unpark();
    }

    /// Takes the lock, waiting FIFO behind earlier waiters; returns the time waited.
    pub fn acquire(&self) -> Duration {
        let mut st = self.state();
        if !st.held {
            st.held = true;
            st.held_since = self.now();
            drop(st);
            self.enter();
            return Duration::ZERO;
        }
        let since = Instant::now();
        let me = self.enqueue(&mut st, self.now());
        drop(st);
        self.holders.contended();
        self.park_until_granted(&me, since)
    }

    /// Releases the lock, which the caller must hold: the first waiter, if any, owns it now.
    pub fn release(&self) {
        self.holders.leave();
        let mut st = self.state();
        debug_assert!(st.held, "release of a free lock");
        let next = self.pass_on(&mut st, self.now());
        drop(st);
        if let Some(next) = next {
            Self::wake(next);
        }
    }

    /// Whether the holder must drop the lock now (`gil` only: the drop deadline passed).
    /// Cheap: one atomic load while nobody waits.
    #[inline]
    pub fn drop_due(&self) -> bool {
        let d = self.deadline.load(Ordering::Acquire);
        d != NO_DEADLINE && self.now() >= d
    }

    /// A switch point of the holder: when the drop deadline has passed, hands the lock to the
    /// first waiter, queues at the back and parks until the lock comes back. Returns the time
    /// spent waiting, or `None` when the holder kept the lock.
    pub fn switch_point(&self) -> Option<Duration> {
        if !self.drop_due() {
            return None;
        }
        let mut st = self.state();
        let now = self.now();
        let due = self.deadline.load(Ordering::Acquire);
        if st.waiters.is_empty() || due == NO_DEADLINE || now < due {
            return None;
        }
        self.forced_drops.fetch_add(1, Ordering::Relaxed);
        self.holders.leave();
        let next = self.pass_on(&mut st, now).expect("a waiter was queued");
        let since = Instant::now();
        let me = self.enqueue(&mut st, now);
        drop(st);
        Self::wake(next);
        self.holders.contended();
        Some(self.park_until_granted(&me, since))
    }

    /// Threads waiting for the lock now.
    pub fn waiting(&self) -> usize {
        self.state().waiters.len()
    }

    /// The counters so far.
    pub fn stats(&self) -> LockStats {
        let held_ns = {
            let st = self.state();
            st.held_ns + if st.held { self.now().saturating_sub(st.held_since) } else { 0 }
        };
        self.holders.fill(LockStats {
            held_ms: held_ns as f64 / 1e6,
            handoffs: self.handoffs.load(Ordering::Relaxed),
            forced_drops: self.forced_drops.load(Ordering::Relaxed),
            ..LockStats::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::wait_until;
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn free_lock_is_taken_at_once_and_held_time_accumulates() {
        let g = FairLock::new(None);
        assert_eq!(g.acquire(), Duration::ZERO);
        thread::sleep(Duration::from_millis(2));
        g.release();
        let s = g.stats();
        assert!(s.held_ms >= 2.0, "{s:?}");
        assert_eq!((s.acquisitions, s.contended, s.handoffs, s.max_holders), (1, 0, 0, 1));
        assert!(!g.drop_due());
    }

    #[test]
    fn waiters_get_the_lock_in_fifo_order() {
        let g = Arc::new(FairLock::new(None));
        let order = Arc::new(Mutex::new(Vec::new()));
        g.acquire();
        let mut handles = Vec::new();
        for i in 0..4 {
            let (g2, o2) = (Arc::clone(&g), Arc::clone(&order));
            handles.push(thread::spawn(move || {
                g2.acquire();
                o2.lock().unwrap().push(i);
                g2.release();
            }));
            wait_until("the waiter to queue", || g.waiting() == i + 1);
        }
        g.release();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3]);
        let s = g.stats();
        assert_eq!((s.handoffs, s.contended, s.max_holders), (4, 4, 1));
    }

    #[test]
    fn never_two_holders_under_contention() {
        let g = Arc::new(FairLock::new(Some(Duration::from_micros(50))));
        let inside = Arc::new(AtomicUsize::new(0));
        let total = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let (g, inside, total) = (Arc::clone(&g), Arc::clone(&inside), Arc::clone(&total));
                thread::spawn(move || {
                    for _ in 0..300 {
                        g.acquire();
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                        // A non-atomic read-modify-write: lost updates if exclusion fails.
                        let v = total.load(Ordering::Relaxed);
                        std::hint::black_box(super::super::super::busy::spin(
                            2_000,
                            &mut super::super::super::busy::NoSwitch,
                        ));
                        total.store(v + 1, Ordering::Relaxed);
                        inside.fetch_sub(1, Ordering::SeqCst);
                        g.release();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(total.load(Ordering::SeqCst), 1_800);
        let s = g.stats();
        assert_eq!(s.max_holders, 1);
        assert_eq!(s.acquisitions, 1_800);
        assert!(s.handoffs > 0, "no contention: the test proves nothing");
    }

    #[test]
    fn gil_holder_drops_at_a_switch_point_after_the_interval() {
        let g = Arc::new(FairLock::new(Some(Duration::from_millis(1))));
        g.acquire();
        assert!(g.switch_point().is_none(), "nobody waits: no deadline");
        let got = Arc::new(AtomicBool::new(false));
        let (g2, got2) = (Arc::clone(&g), Arc::clone(&got));
        let waiter = thread::spawn(move || {
            g2.acquire();
            got2.store(true, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(1));
            g2.release();
        });
        wait_until("the waiter to queue", || g.waiting() == 1);
        wait_until("the drop deadline", || g.drop_due());
        let waited = g.switch_point().expect("the holder drops the lock");
        // The waiter ran while we were parked, and handed the lock back.
        assert!(got.load(Ordering::SeqCst));
        assert!(waited >= Duration::from_millis(1));
        g.release();
        waiter.join().unwrap();
        let s = g.stats();
        assert_eq!((s.forced_drops, s.handoffs, s.max_holders), (1, 2, 1));
    }

    #[test]
    fn mutex_never_asks_for_a_drop() {
        let g = Arc::new(FairLock::new(None));
        g.acquire();
        let g2 = Arc::clone(&g);
        let waiter = thread::spawn(move || {
            g2.acquire();
            g2.release();
        });
        wait_until("the waiter to queue", || g.waiting() == 1);
        thread::sleep(Duration::from_millis(2));
        assert!(!g.drop_due());
        assert!(g.switch_point().is_none());
        g.release();
        waiter.join().unwrap();
        assert_eq!(g.stats().forced_drops, 0);
    }
}
