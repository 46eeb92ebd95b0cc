//! Cumulative per-worker counters, and the `/stats` snapshot that calibration and
//! validation read to compare utilizations.

use super::batch::BatchStats;
use super::gil::LockStats;
use super::pool::PoolStats;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A level with its peak (requests in flight, handlers running).
#[derive(Debug, Default)]
pub struct Gauge {
    now: AtomicU64,
    peak: AtomicU64,
}

/// One unit of a [`Gauge`], given back on drop.
#[derive(Debug)]
pub struct Entered<'a>(&'a Gauge);

impl Gauge {
    /// Adds one until the returned guard drops.
    pub fn enter(&self) -> Entered<'_> {
        let n = self.now.fetch_add(1, Ordering::AcqRel) + 1;
        self.peak.fetch_max(n, Ordering::AcqRel);
        Entered(self)
    }

    /// Adds one if the level is below `limit`, until the returned guard drops.
    pub fn try_enter(&self, limit: u64) -> Option<Entered<'_>> {
        let mut cur = self.now.load(Ordering::Acquire);
        loop {
            if cur >= limit {
                return None;
            }
            match self.now.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    self.peak.fetch_max(cur + 1, Ordering::AcqRel);
                    return Some(Entered(self));
                }
                Err(now) => cur = now,
            }
        }
    }

    /// The level now.
    pub fn get(&self) -> u64 {
        self.now.load(Ordering::Acquire)
    }

    /// The highest level so far.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Acquire)
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How requests ended, by kind.
///
/// Every admitted request is answered, cancelled or still in flight:
/// `accepted = completed + timed_out + failed + cancelled + in flight`. Refusals (`rejected`,
/// `invalid`) happen before admission.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// Admitted (past validation and the admission queue).
    pub accepted: u64,
    /// Answered 200.
    pub completed: u64,
    /// Refused with 503: the admission queue was full.
    pub rejected: u64,
    /// Answered 504: still queued at the request timeout.
    pub timed_out: u64,
    /// Answered 4xx: bad input.
    pub invalid: u64,
    /// Answered 500: the handler failed.
    pub failed: u64,
    /// Admitted, then never answered: the client reset the connection, or closed it while
    /// the request still waited (for a thread, the loop or a batch). A request cancelled
    /// before it started never ran.
    #[serde(default)]
    pub cancelled: u64,
}

/// Sums over completed requests (ms): divide by `completed` for means.
///
/// With batching, `thread_wait_ms` sums the waits to join a batch (the simulator's thread
/// wait) and `queue_wait_ms` stays the wait for the event loop, whereas a response's
/// `timing.queue_wait_ms` covers both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sums {
    /// Waiting for the event loop.
    pub queue_wait_ms: f64,
    /// Waiting for a pool thread, or to join a batch.
    pub thread_wait_ms: f64,
    /// Waiting for the lock.
    pub lock_wait_ms: f64,
    /// Holding the lock.
    pub lock_held_ms: f64,
    /// Handler compute.
    pub compute_ms: f64,
    /// Arrival to response.
    pub total_ms: f64,
    /// CPU time of the handler threads.
    pub handler_cpu_ms: f64,
    /// Tokens generated.
    pub tokens: u64,
}

/// One completed request's figures, for [`Counters::complete`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Completed {
    /// Waiting for the event loop.
    pub queue_wait: Duration,
    /// Waiting for a pool thread, or to join a batch.
    pub thread_wait: Duration,
    /// Waiting for the lock.
    pub lock_wait: Duration,
    /// Holding the lock.
    pub lock_held: Duration,
    /// Handler compute.
    pub compute: Duration,
    /// Arrival to response.
    pub total: Duration,
    /// Handler CPU (ns).
    pub handler_cpu_ns: u64,
    /// Tokens generated.
    pub tokens: u64,
}

/// The live counters of a worker.
#[derive(Debug, Default)]
pub struct Counters {
    accepted: AtomicU64,
    completed: AtomicU64,
    rejected: AtomicU64,
    timed_out: AtomicU64,
    invalid: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
    /// Admitted requests not yet answered.
    pub in_flight: Gauge,
    /// Handlers running (inference in progress).
    pub inference: Gauge,
    /// Connections accepted on the shared port.
    pub connections: Arc<AtomicU64>,
    sums_ns: [AtomicU64; 7],
    tokens: AtomicU64,
}

fn add(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    /// A request was admitted.
    pub fn accept(&self) {
        add(&self.accepted);
    }
    /// A request was refused: the admission queue was full.
    pub fn reject(&self) {
        add(&self.rejected);
    }
    /// A request timed out in a queue.
    pub fn time_out(&self) {
        add(&self.timed_out);
    }
    /// A request was invalid.
    pub fn invalid(&self) {
        add(&self.invalid);
    }
    /// A handler failed.
    pub fn fail(&self) {
        add(&self.failed);
    }
    /// An admitted request was abandoned by its client before it was answered.
    pub fn cancel(&self) {
        add(&self.cancelled);
    }

    /// A request completed with these figures.
    pub fn complete(&self, c: &Completed) {
        add(&self.completed);
        let d = [c.queue_wait, c.thread_wait, c.lock_wait, c.lock_held, c.compute, c.total];
        for (sum, d) in self.sums_ns.iter().zip(d) {
            sum.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
        }
        self.sums_ns[6].fetch_add(c.handler_cpu_ns, Ordering::Relaxed);
        self.tokens.fetch_add(c.tokens, Ordering::Relaxed);
    }

    /// Requests by outcome.
    pub fn counts(&self) -> RequestCounts {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RequestCounts {
            accepted: l(&self.accepted),
            completed: l(&self.completed),
            rejected: l(&self.rejected),
            timed_out: l(&self.timed_out),
            invalid: l(&self.invalid),
            failed: l(&self.failed),
            cancelled: l(&self.cancelled),
        }
    }

    /// Sums over completed requests.
    pub fn sums(&self) -> Sums {
        let ms = |i: usize| self.sums_ns[i].load(Ordering::Relaxed) as f64 / 1e6;
        Sums {
            queue_wait_ms: ms(0),
            thread_wait_ms: ms(1),
            lock_wait_ms: ms(2),
            lock_held_ms: ms(3),
            compute_ms: ms(4),
            total_ms: ms(5),
            handler_cpu_ms: ms(6),
            tokens: self.tokens.load(Ordering::Relaxed),
        }
    }
}

/// `GET /stats`: one worker's cumulative counters. Take two snapshots and difference them
/// for a window's figures (utilization = busy time / wall time).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerStats {
    /// Worker process id.
    pub pid: u32,
    /// Worker index (0-based).
    pub index: u32,
    /// Time since the worker started serving (ms).
    pub uptime_ms: f64,
    /// Resident memory (kB).
    pub rss_kb: u64,
    /// CPU time of the whole process, all threads (ms).
    pub process_cpu_ms: f64,
    /// CPU time of the event-loop thread (ms).
    pub loop_cpu_ms: f64,
    /// `worker.handler`.
    pub handler: String,
    /// `worker.lock`.
    pub lock: String,
    /// Requests by outcome.
    pub requests: RequestCounts,
    /// Connections accepted on the shared port since the worker started: with
    /// `SO_REUSEPORT`, the kernel's hash of each connection to a worker.
    #[serde(default)]
    pub connections: u64,
    /// Admitted requests not yet answered, now.
    pub in_flight: u64,
    /// Most admitted requests at once.
    pub peak_in_flight: u64,
    /// Handlers running now (with batching: sequences in the batch).
    pub inference_running: u64,
    /// Most handlers running at once (1 in `async-blocking`; min(threads, clients) in `sync`;
    /// with batching, the largest batch).
    pub peak_inference: u64,
    /// The threadpool (zeros in `async-blocking`, which has none).
    pub pool: PoolStats,
    /// The lock (zeros with `worker.lock = "none"`).
    pub lock_stats: LockStats,
    /// Sums over completed requests.
    pub sums: Sums,
    /// The batch scheduler (zeros and mode `none` without batching).
    #[serde(default)]
    pub batch: BatchStats,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_track_level_and_peak() {
        let g = Gauge::default();
        {
            let _a = g.enter();
            let _b = g.enter();
            assert_eq!(g.get(), 2);
        }
        let _c = g.enter();
        assert_eq!((g.get(), g.peak()), (1, 2));
        let _d = g.try_enter(2).expect("below the limit");
        assert!(g.try_enter(2).is_none(), "at the limit");
        assert_eq!(g.get(), 2);
    }

    #[test]
    fn completions_add_up() {
        let c = Counters::default();
        c.accept();
        c.accept();
        let ms = Duration::from_millis;
        c.complete(&Completed {
            total: ms(3),
            lock_wait: ms(1),
            tokens: 5,
            handler_cpu_ns: 2_000_000,
            ..Default::default()
        });
        c.complete(&Completed { total: ms(5), tokens: 5, ..Default::default() });
        let (n, s) = (c.counts(), c.sums());
        assert_eq!((n.accepted, n.completed), (2, 2));
        assert_eq!((s.total_ms, s.lock_wait_ms, s.handler_cpu_ms, s.tokens), (8.0, 1.0, 2.0, 10));
    }
}
