//! The open loop's connections: reused when idle, opened when none is, never more than
//! `max_connections` at once.

use super::conn::Conn;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A bounded pool. A connection exists only while it holds a permit (in use) or sits idle,
/// and an idle one is only left when its permit is free, so at most `max` ever exist.
#[derive(Debug)]
pub struct Pool {
    idle: Mutex<VecDeque<Conn>>,
    slots: Arc<Semaphore>,
}

/// The right to send one request, with an idle connection if there was one (else the
/// request opens one).
#[derive(Debug)]
pub struct Lease {
    /// The connection to use; `None` means "open one".
    pub conn: Option<Conn>,
    _permit: OwnedSemaphorePermit,
}

impl Pool {
    /// A pool of at most `max` connections.
    pub fn new(max: u32) -> Self {
        Self { idle: Mutex::new(VecDeque::new()), slots: Arc::new(Semaphore::new(max as usize)) }
    }

    /// Waits for a free slot and takes the longest-idle connection, if any.
    ///
    /// Oldest first, so that every open connection keeps carrying requests: a server whose
    /// workers share a port balances connections, not requests.
    pub async fn acquire(&self) -> Lease {
        let permit =
            Arc::clone(&self.slots).acquire_owned().await.expect("the pool never closes its semaphore");
        let conn = self.idle().pop_front();
        Lease { conn, _permit: permit }
    }

    /// Returns a lease; its connection, if still there, becomes idle before the slot frees.
    pub fn release(&self, mut lease: Lease) {
        if let Some(c) = lease.conn.take() {
            self.idle().push_back(c);
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, VecDeque<Conn>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
