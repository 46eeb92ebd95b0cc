//! A queued request's ticket: whoever would start it (a pool thread, the batch scheduler, the
//! event loop) and whoever would withdraw it (its deadline, its client leaving) race to move
//! it out of `QUEUED`, and the first to move it decides — so a request either runs or is
//! withdrawn, never both.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const WITHDRAWN: u8 = 2;

/// One request's place in a queue, shared by the queue and the request's handler.
#[derive(Debug, Clone, Default)]
pub struct Ticket(Arc<AtomicU8>);

impl Ticket {
    /// A ticket for a request that has not started.
    pub fn new() -> Self {
        Self::default()
    }

    fn move_from_queued(&self, to: u8) -> bool {
        self.0.compare_exchange(QUEUED, to, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Starts the request; false if it was withdrawn first.
    pub fn start(&self) -> bool {
        self.move_from_queued(RUNNING)
    }

    /// Withdraws the request; false if it had already started (or been withdrawn).
    pub fn withdraw(&self) -> bool {
        self.move_from_queued(WITHDRAWN)
    }

    /// Whether the request was withdrawn before it started.
    pub fn withdrawn(&self) -> bool {
        self.0.load(Ordering::Acquire) == WITHDRAWN
    }

    /// Whether `other` is this same ticket.
    pub fn is(&self, other: &Ticket) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Withdraws a queued request when its waiting future ends — its deadline passed, or the
/// future was dropped because the client left — and, if it was withdrawn (not started),
/// takes it out of its queue with `remove`, so a queue holds only requests that may still
/// run.
pub struct Withdraw<'a, F: Fn(&Ticket)> {
    ticket: &'a Ticket,
    remove: F,
}

impl<'a, F: Fn(&Ticket)> Withdraw<'a, F> {
    /// Guards `ticket`, whose queue drops it with `remove`.
    pub fn on_drop(ticket: &'a Ticket, remove: F) -> Self {
        Self { ticket, remove }
    }
}

impl<F: Fn(&Ticket)> Drop for Withdraw<'_, F> {
    fn drop(&mut self) {
        let _ = self.ticket.withdraw();
        if self.ticket.withdrawn() {
            (self.remove)(self.ticket);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_move_out_of_the_queue_decides() {
        let t = Ticket::new();
        assert!(t.start() && !t.withdraw() && !t.withdrawn());
        let t = Ticket::new();
        assert!(t.withdraw() && !t.start() && t.withdrawn());
        assert!(t.is(&t.clone()) && !t.is(&Ticket::new()));
    }
}
