//! The queue between the event loop and the scheduler thread, and the counters they share.
//!
//! Each queued request holds a ticket: the scheduler moves it from `QUEUED` to `RUNNING`
//! when the request joins a batch, its handler from `QUEUED` to `CANCELLED` when it gives up
//! waiting; whichever moves it first decides, so a request either runs or times out.

use super::{BatchError, Batched};
use crate::server::api::CorrectRequest;
use crate::server::work::Work;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;
use tokio::sync::oneshot;

/// A request waiting to join a batch.
pub(super) struct Job {
    pub(super) req: CorrectRequest,
    pub(super) work: Work,
    pub(super) deadline: Instant,
    pub(super) submitted: Instant,
    pub(super) ticket: Arc<AtomicU8>,
    pub(super) reply: oneshot::Sender<Result<Batched, BatchError>>,
}

pub(super) const QUEUED: u8 = 0;
pub(super) const RUNNING: u8 = 1;
pub(super) const CANCELLED: u8 = 2;

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
}

/// Up to `n` queued requests that may still run, oldest first. A request past its deadline
/// is cancelled (its handler answers 504); one its handler cancelled is dropped.
pub(super) fn take(q: &mut Queue, n: usize) -> Vec<Job> {
    let mut out = Vec::with_capacity(n.min(q.jobs.len()));
    let now = Instant::now();
    while out.len() < n {
        let Some(job) = q.jobs.pop_front() else { break };
        if now >= job.deadline {
            let _ = job.ticket.compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire);
        }
        if job.ticket.compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            out.push(job);
        }
    }
    out
}
