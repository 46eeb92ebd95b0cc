//! The queue between the event loop and the scheduler thread, and the counters they share.
//!
//! Each queued request holds a [`Ticket`]: the scheduler starts it when the request joins a
//! batch; its deadline or its client leaving withdraws it; whichever comes first decides, so
//! a request either runs or is withdrawn. A withdrawn request leaves the queue at once.

use super::{BatchError, Batched};
use crate::server::api::CorrectRequest;
use crate::server::ticket::Ticket;
use crate::server::work::Work;
use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;
use tokio::sync::oneshot;

/// A request waiting to join a batch.
pub(super) struct Job {
    pub(super) req: CorrectRequest,
    pub(super) work: Work,
    pub(super) deadline: Instant,
    pub(super) submitted: Instant,
    pub(super) ticket: Ticket,
    pub(super) reply: oneshot::Sender<Result<Batched, BatchError>>,
}

#[derive(Default)]
pub(super) struct Queue {
    pub(super) jobs: VecDeque<Job>,
    pub(super) closed: bool,
}

#[derive(Default)]
pub(super) struct Shared {
    pub(super) queue: Mutex<Queue>,
    pub(super) ready: Condvar,
    pub(super) steps: AtomicU64,
    pub(super) sequences: AtomicU64,
    pub(super) peak: AtomicU64,
    pub(super) joined: AtomicU64,
    pub(super) running: AtomicU64,
    pub(super) busy_ns: AtomicU64,
    pub(super) cpu_ns: AtomicU64,
}

impl Shared {
    pub(super) fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a withdrawn request out of the queue (one that joined a batch is no longer
    /// there).
    pub(super) fn remove(&self, ticket: &Ticket) {
        self.queue().jobs.retain(|j| !j.ticket.is(ticket));
    }
}

/// Up to `n` queued requests that may still run, oldest first. A request past its deadline
/// is withdrawn (its handler answers 504); one withdrawn already is dropped.
pub(super) fn take(q: &mut Queue, n: usize) -> Vec<Job> {
    let mut out = Vec::with_capacity(n.min(q.jobs.len()));
    let now = Instant::now();
    while out.len() < n {
        let Some(job) = q.jobs.pop_front() else { break };
        if now >= job.deadline {
            let _ = job.ticket.withdraw();
        }
        if job.ticket.start() {
            out.push(job);
        }
    }
    out
}
