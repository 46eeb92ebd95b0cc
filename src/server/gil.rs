//! The process-wide lock held during emulated interpreter work, in three kinds:
//!
//! * `gil` — CPython's GIL as `Python/ceval_gil.c` implements it (3.8–3.13, default build):
//!   a locked flag under a mutex, a condition variable that a release signals, a timed
//!   wait of one switch interval before a waiter asks for a drop, and a forced switch
//!   ([`cpython`]). A thread back from a release point re-takes a free GIL at once.
//! * `fair-gil` — a fair lock with FIFO hand-off and a drop deadline ([`fair`]): not
//!   CPython's algorithm, kept so that the difference can be measured;
//! * `mutex` — the same fair lock without a drop deadline.
//!
//! Every thread that believes it holds the lock counts itself in a gauge; its peak
//! ([`LockStats::max_holders`]) must be 1, and the tests assert it.

pub mod cpython;
pub mod fair;
pub mod handoff;
pub mod wake;

/// Tests that time this machine's threads — wake-ups measured with every core kept busy,
/// a releaser racing its waiter — hold this while they measure, so that no other such test
/// runs beside them in the same test binary and takes the CPUs they time.
#[cfg(test)]
pub(crate) static MACHINE_TIMING: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub use cpython::CpythonGil;
pub use fair::FairLock;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Counters of one lock since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct LockStats {
    /// Time the lock has been held (ms).
    pub held_ms: f64,
    /// Acquisitions (taken free, or handed over).
    pub acquisitions: u64,
    /// Acquisitions that had to wait.
    pub contended: u64,
    /// Times the lock went to another thread than the one that held it last (CPython's
    /// `switch_number`; for the fair lock, hand-offs to a waiter).
    pub handoffs: u64,
    /// Times a holder dropped the lock because a waiter asked (`gil`: forced switches;
    /// `fair-gil`: the drop deadline passed).
    pub forced_drops: u64,
    /// `gil`: drop requests made by a waiter whose timed wait ran out with no switch.
    pub drop_requests: u64,
    /// `gil`: wake-ups of a waiter that found the GIL taken again and went back to sleep.
    pub vain_wakeups: u64,
    /// Most threads that ever believed they held the lock at once (must be ≤ 1).
    pub max_holders: u32,
}

/// Who believes they hold a lock, and how often it was taken: the counters both locks
/// keep alike.
#[derive(Debug, Default)]
struct Holders {
    now: AtomicU32,
    max: AtomicU32,
    acquisitions: AtomicU64,
    contended: AtomicU64,
}

impl Holders {
    /// The calling thread now believes it holds the lock.
    fn enter(&self) {
        let n = self.now.fetch_add(1, Ordering::AcqRel) + 1;
        self.max.fetch_max(n, Ordering::AcqRel);
        self.acquisitions.fetch_add(1, Ordering::Relaxed);
    }

    /// The calling thread lets the lock go.
    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::AcqRel);
    }

    /// An acquisition had to wait.
    fn contended(&self) {
        self.contended.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters into `stats`.
    fn fill(&self, stats: LockStats) -> LockStats {
        LockStats {
            acquisitions: self.acquisitions.load(Ordering::Relaxed),
            contended: self.contended.load(Ordering::Relaxed),
            max_holders: self.max.load(Ordering::Acquire),
            ..stats
        }
    }
}

/// The lock of one worker process.
#[derive(Debug)]
pub enum Gil {
    /// A fair lock (`mutex`, `fair-gil`).
    Fair(FairLock),
    /// CPython's GIL (`gil`).
    Cpython(CpythonGil),
}

impl Gil {
    /// A fair lock: with `Some(interval)` the `fair-gil` drop deadline, with `None` a plain
    /// FIFO mutex.
    pub fn new(switch_interval: Option<Duration>) -> Gil {
        Gil::Fair(FairLock::new(switch_interval))
    }

    /// CPython's GIL with this switch interval.
    pub fn cpython(switch_interval: Duration) -> Gil {
        Gil::Cpython(CpythonGil::new(switch_interval))
    }

    /// Takes the lock; returns the time waited.
    #[inline]
    pub fn acquire(&self) -> Duration {
        match self {
            Gil::Fair(l) => l.acquire(),
            Gil::Cpython(g) => g.take(),
        }
    }

    /// Releases the lock, which the caller holds. For the GIL this is a release point
    /// (`Py_BEGIN_ALLOW_THREADS`): it signals one waiter and, when a drop was asked,
    /// waits until another thread has taken the GIL. Returns the time that wait took.
    #[inline]
    pub fn release(&self) -> Duration {
        match self {
            Gil::Fair(l) => {
                l.release();
                Duration::ZERO
            }
            Gil::Cpython(g) => g.drop_gil(),
        }
    }

    /// A switch point of the holder (CPython's eval-breaker check): drops and re-takes the
    /// lock when a waiter asked for it. Returns the time spent without it, or `None` when
    /// the holder kept it.
    #[inline]
    pub fn switch_point(&self) -> Option<Duration> {
        match self {
            Gil::Fair(l) => l.switch_point(),
            Gil::Cpython(g) => g.switch_point(),
        }
    }

    /// Threads waiting for the lock now.
    pub fn waiting(&self) -> usize {
        match self {
            Gil::Fair(l) => l.waiting(),
            Gil::Cpython(g) => g.waiting(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> LockStats {
        match self {
            Gil::Fair(l) => l.stats(),
            Gil::Cpython(g) => g.stats(),
        }
    }
}

/// Bounded wait for a condition another thread makes true (the locks' tests).
#[cfg(test)]
fn wait_until(what: &str, f: impl Fn() -> bool) {
    let t0 = std::time::Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}
