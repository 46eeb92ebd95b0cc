//! The batch scheduler (`batching.mode = static | continuous`): one OS thread per worker runs
//! batched forward passes of the Mini-GPT, fed by a bounded FIFO queue from the event loop.
//! The semantics are the simulator's (`sim::batch`).
//!
//! ```text
//!  event loop ── submit (queue full → 503) ──► queue ──► scheduler thread
//!   static:     idle until max_batch requests wait or the oldest has waited max_wait_ms;
//!               take ≤ max_batch, step until the longest is done (finished sequences stay,
//!               nobody joins), then answer them all
//!   continuous: at every step boundary take ≤ max_batch − running, step, answer the
//!               finished ones at once
//!
//!  one step: lock ─ joiners: request_locked ─ unlock ─ request_free ─ lock ─ prefill
//!            ─ step_batch (step work split over its kernels, the lock dropped around each
//!              matmul, as in the unbatched handler) ─ unlock
//! ```
//!
//! The step's emulated work is `batching.step_* + B·seq_*` for a batch of B (finished
//! sequences of a `static` batch count: they still occupy it). A joining sequence pays its
//! `cost.request_*` work and its prefill in the step it joins.
//!
//! Each answered request reports the times of the steps it was part of (the wall-clock view
//! of its life in the batch) and its share (1/B) of each step's CPU time.
//!
//! Deadlines: a request still queued at its deadline never joins (504); a sequence in the
//! batch whose deadline has passed leaves it at the next step boundary, answered 504 with
//! the tokens it had, and frees its slot. A step already running is not interrupted.

mod batcher;
mod queue;
mod scheduler;

pub use batcher::{Batcher, SchedulerParts};

use super::handler::HandlerOutput;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Why a batched request gave no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The scheduler's queue holds its limit of waiting requests.
    #[error("the batch queue holds its limit of {0} requests")]
    Full(usize),
    /// The request was still waiting to join a batch at its deadline; it never ran.
    #[error("the request waited to join a batch beyond its deadline")]
    TimedOut,
    /// The deadline passed while the sequence was in the batch: it left at a step boundary.
    #[error("stopped by the request timeout after {tokens} of {asked} tokens")]
    Stopped {
        /// Tokens generated before it left.
        tokens: u32,
        /// Tokens the request asked for.
        asked: u32,
    },
    /// The scheduler is shut down, or a step panicked.
    #[error("the batch scheduler is shut down or failed")]
    Closed,
    /// The model refused the request.
    #[error("{0}")]
    Model(String),
}

/// A batched request's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Batched {
    /// From submission to joining a batch.
    pub waited: Duration,
    /// The generated text, the tokens and where the time went.
    pub out: HandlerOutput,
}

/// The scheduler's counters (`/stats` → `batch`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BatchStats {
    /// `batching.mode`.
    pub mode: String,
    /// `batching.max_batch` (0 without batching).
    pub max_batch: u32,
    /// Batched steps run.
    pub steps: u64,
    /// Sum of the batch sizes over the steps.
    pub sequences: u64,
    /// Mean batch size per step: `sequences / steps` (0 before any step).
    pub mean_batch: f64,
    /// Largest batch so far.
    pub peak_batch: u64,
    /// Requests that joined a batch.
    pub joined: u64,
    /// Sequences in the batch now.
    pub running: u64,
    /// Requests waiting to join now.
    pub queued: u64,
    /// Wall time of the scheduler thread spent in steps (ms).
    pub busy_ms: f64,
    /// CPU time of the scheduler thread spent in steps (ms).
    pub cpu_ms: f64,
}
