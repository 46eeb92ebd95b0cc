//! One thread's use of the worker's lock while it works on one request: acquire, release
//! and switch points, with the time waited and held.

use super::busy::SwitchPoint;
use super::gil::Gil;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A thread's hold on the worker lock for one piece of work. With no lock (`worker.lock =
/// "none"`) every operation does nothing. Dropping a session releases a lock it still holds.
#[derive(Debug)]
pub struct LockSession {
    gil: Option<Arc<Gil>>,
    holding: bool,
    since: Instant,
    /// Time spent waiting for the lock (acquisitions and drops at switch points).
    pub wait: Duration,
    /// Time the lock was held.
    pub held: Duration,
}

impl LockSession {
    /// A session on `gil` (`None`: no lock), not holding it.
    pub fn new(gil: Option<Arc<Gil>>) -> Self {
        Self { gil, holding: false, since: Instant::now(), wait: Duration::ZERO, held: Duration::ZERO }
    }

    /// Whether the lock exists and this session holds it.
    #[cfg(test)]
    pub fn holding(&self) -> bool {
        self.holding
    }

    /// Takes the lock (no-op without a lock or when already held).
    pub fn acquire(&mut self) {
        if let (Some(g), false) = (&self.gil, self.holding) {
            self.wait += g.acquire();
            self.holding = true;
            self.since = Instant::now();
        }
    }

    /// Releases the lock (no-op without a lock or when not held).
    pub fn release(&mut self) {
        if let (Some(g), true) = (&self.gil, self.holding) {
            self.held += self.since.elapsed();
            self.holding = false;
            // A release point may wait for a forced switch (CPython's GIL).
            self.wait += g.release();
        }
    }
}

impl SwitchPoint for LockSession {
    #[inline]
    fn switch_point(&mut self) {
        let Some(g) = self.gil.as_deref().filter(|_| self.holding) else { return };
        if let Some(waited) = g.switch_point() {
            let now = Instant::now();
            self.held += now.saturating_duration_since(self.since).saturating_sub(waited);
            self.wait += waited;
            self.since = now;
        }
    }
}

impl Drop for LockSession {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_without_lock_does_nothing() {
        let mut s = LockSession::new(None);
        s.acquire();
        assert!(!s.holding());
        s.switch_point();
        s.release();
        assert_eq!((s.wait, s.held), (Duration::ZERO, Duration::ZERO));
    }

    #[test]
    fn dropping_a_session_releases_its_lock() {
        let g = Arc::new(Gil::new(None));
        {
            let mut s = LockSession::new(Some(Arc::clone(&g)));
            s.acquire();
            s.acquire(); // idempotent
            assert!(s.holding());
        }
        assert_eq!(g.acquire(), Duration::ZERO, "the lock is free again");
        g.release();
        assert_eq!(g.stats().acquisitions, 2);
    }
}
