//! The per-worker lock: a fair lock with FIFO hand-off. In `gil` mode the simulator adds
//! CPython's drop request on top (see `system.rs`): a waiter that has waited a switch
//! interval with no hand-off in between makes the holder release it.

use crate::des::Nanos;
use std::collections::VecDeque;

/// One worker's lock.
#[derive(Default)]
pub(crate) struct Lock {
    holder: Option<u32>,
    waiters: VecDeque<u32>,
    /// Hand-offs so far: a waiter asks for a drop only if none happened while it waited.
    switches: u64,
    held_since: Nanos,
    held_ns: u64,
}

impl Lock {
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

    /// Queues `thread` behind the current waiters.
    pub(crate) fn wait(&mut self, thread: u32) {
        self.waiters.push_back(thread);
    }

    /// Releases the lock; the first waiter, if any, becomes the holder and is returned.
    #[inline]
    pub(crate) fn release(&mut self, now: Nanos) -> Option<u32> {
        debug_assert!(self.holder.is_some(), "release of a free lock");
        match self.waiters.pop_front() {
            Some(next) => {
                self.holder = Some(next);
                self.switches += 1;
                Some(next)
            }
            None => {
                self.holder = None;
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
    pub(crate) fn switches(&self) -> u64 {
        self.switches
    }

    /// Total time the lock has been held up to `now` [ns].
    pub(crate) fn held_ns(&self, now: Nanos) -> u64 {
        match self.holder {
            Some(_) => self.held_ns + (now - self.held_since),
            None => self.held_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_hand_off_and_held_time() {
        let mut l = Lock::default();
        assert!(l.try_take(1, 0));
        assert!(!l.try_take(2, 5));
        l.wait(2);
        l.wait(3);
        assert_eq!(l.release(10), Some(2));
        assert_eq!(l.release(20), Some(3));
        assert_eq!(l.switches(), 2);
        assert_eq!(l.release(30), None);
        assert_eq!(l.held_ns(100), 30);
        assert!(l.try_take(4, 100));
        assert_eq!(l.held_ns(110), 40);
    }
}
