//! Per-replication accounting: warm-up deletion, the measurement window, latency and wait
//! statistics, and time-averaged occupancy for utilizations and Little's law.

use super::clients::Clients;
use super::report::{Figures, GilThreads, Replication, Stage, StageTimes, Truncation, Utilization, Waits};
use crate::des::{Nanos, ns_to_ms, ns_to_s};
use crate::scenario::{Handler, Scenario};
use crate::stats::{LatencyCounts, StageHistogram};

/// Cumulative counters read at the window's start and end.
#[derive(Clone, Copy, Default)]
pub(crate) struct Snapshot {
    pub(crate) t: Nanos,
    pub(crate) busy_core_ns: f64,
    pub(crate) lock_held_ns: f64,
    pub(crate) gil_sleeps: u64,
    pub(crate) gil_switches: u64,
    pub(crate) gil_long_tenure_ns: Nanos,
    pub(crate) gil_state_ns: [f64; super::gil::GSTATES],
}

/// Counts kept by the system itself, independently of [`Metrics`], so conservation of
/// requests can be checked.
pub(crate) struct Counts {
    pub(crate) events: u64,
    /// Batched steps run and the sum of their sizes.
    pub(crate) batch_steps: (u64, u64),
    pub(crate) arrived: u64,
    pub(crate) live: u64,
}

/// A count that changes over time and its integral `∫ count dt` (ns), kept exactly in
/// integers and brought up to date only when the count changes (not at every event).
#[derive(Default)]
pub(crate) struct Occupancy {
    count: u64,
    since: Nanos,
    area: u128,
}

impl Occupancy {
    #[inline]
    fn settle(&mut self, now: Nanos) {
        self.area += u128::from(now - self.since) * u128::from(self.count);
        self.since = now;
    }

    /// The count goes up by one at `now`.
    #[inline]
    pub(crate) fn inc(&mut self, now: Nanos) {
        self.settle(now);
        self.count += 1;
    }

    /// The count goes down by one at `now`.
    #[inline]
    pub(crate) fn dec(&mut self, now: Nanos) {
        self.settle(now);
        self.count -= 1;
    }

    /// Forgets the integral so far: it runs from `now` on.
    fn restart(&mut self, now: Nanos) {
        self.area = 0;
        self.since = now;
    }

    /// The integral up to `now` (ns).
    fn area(&self, now: Nanos) -> f64 {
        (self.area + u128::from(now - self.since) * u128::from(self.count)) as f64
    }
}

pub(crate) struct Metrics {
    warmup: u64,
    target: u64,
    total: Option<u64>,
    completed: u64,
    rejected: u64,
    measured: u64,
    /// Requests in the system.
    in_system: Occupancy,
    /// Busy threadpool threads.
    pub(crate) pool: Occupancy,
    /// Busy event-loop threads.
    pub(crate) loops: Occupancy,
    hist: LatencyCounts,
    wait_sums: [u128; 3],
    /// Each stage of [`StageTimes::NAMES`], per measured request.
    stages: [StageHistogram; 5],
    /// Whether the loop has work: without, the loop's stage is not recorded (it is 0), as
    /// the lock's two are not without a lock (`locked`).
    looped: bool,
    window: Option<Snapshot>,
    cores: f64,
    workers: f64,
    pool_threads: f64,
    locked: bool,
    blocking: bool,
}

impl Metrics {
    pub(crate) fn new(sc: &Scenario) -> Self {
        let total = Clients::total(sc);
        // Finite processes are measured whole: no warm-up, every request counts.
        let (warmup, target) = match total {
            Some(n) => (0, n),
            None => (sc.run.warmup_requests, sc.run.requests),
        };
        Self {
            warmup,
            target,
            total,
            completed: 0,
            rejected: 0,
            measured: 0,
            in_system: Occupancy::default(),
            pool: Occupancy::default(),
            loops: Occupancy::default(),
            hist: LatencyCounts::new(),
            wait_sums: [0; 3],
            stages: Default::default(),
            looped: {
                let c = &sc.cost;
                let loop_work = [&c.loop_in_ms, &c.loop_out_ms, &c.loop_in_free_ms, &c.loop_out_free_ms];
                !loop_work.iter().all(|d| d.is_zero())
            },
            window: (warmup == 0).then(Snapshot::default),
            cores: f64::from(sc.system.cores),
            workers: f64::from(sc.system.workers),
            pool_threads: f64::from(sc.system.workers * sc.worker.threads),
            locked: sc.worker.lock != crate::scenario::LockKind::None,
            blocking: sc.worker.handler == Handler::AsyncBlocking,
        }
    }

    /// A request enters the system at `now`.
    pub(crate) fn admit(&mut self, now: Nanos) {
        self.in_system.inc(now);
    }

    pub(crate) fn reject(&mut self) {
        self.rejected += 1;
    }

    /// Records a completion, its waits (thread, lock, loop) and its stages; returns true
    /// when it ends the warm-up (the caller then opens the window with a snapshot).
    #[inline(always)]
    pub(crate) fn complete(
        &mut self,
        now: Nanos,
        latency: Nanos,
        waits: [Nanos; 3],
        stages: &[Nanos; 5],
    ) -> bool {
        self.in_system.dec(now);
        self.completed += 1;
        if self.window.is_none() {
            return self.completed == self.warmup;
        }
        self.measured += 1;
        self.hist.record(latency);
        for (sum, w) in self.wait_sums.iter_mut().zip(waits) {
            *sum += u128::from(w);
        }
        let [queue, lock, held, free, event_loop] = &mut self.stages;
        queue.record(stages[0]);
        free.record(stages[3]);
        if self.locked {
            lock.record(stages[1]);
            held.record(stages[2]);
        }
        if self.looped {
            event_loop.record(stages[4]);
        }
        false
    }

    pub(crate) fn start_window(&mut self, at: Snapshot) {
        for o in [&mut self.in_system, &mut self.pool, &mut self.loops] {
            o.restart(at.t);
        }
        self.window = Some(at);
    }

    /// Whether the run has measured what it needs.
    pub(crate) fn done(&self) -> bool {
        match self.total {
            Some(n) => self.completed + self.rejected >= n,
            None => self.measured >= self.target,
        }
    }

    /// Mean and p95 of each stage over the measured requests (ms).
    fn stage_times(&self) -> StageTimes {
        let s = |i: usize| {
            let h: &StageHistogram = &self.stages[i];
            Stage { mean: h.mean_ns() / 1e6, p95: h.quantile_ns(0.95) as f64 / 1e6 }
        };
        StageTimes { queue: s(0), lock: s(1), held: s(2), free: s(3), event_loop: s(4) }
    }

    pub(crate) fn finish(self, end: Snapshot, count: Counts, truncation: Option<Truncation>) -> Replication {
        let start = self.window.unwrap_or(end);
        let span = end.t.saturating_sub(start.t) as f64;
        let per_span = |x: f64| if span > 0.0 { x / span } else { 0.0 };
        let n = self.measured.max(1) as f64;
        let wait_ms = |i: usize| ns_to_ms((self.wait_sums[i] as f64 / n) as Nanos);
        let throughput_rps = per_span(self.measured as f64) * 1e9;
        let latency_ms = self.hist.histogram().summary();
        let mean_in_system = per_span(self.in_system.area(end.t));
        let little = throughput_rps * latency_ms.mean / 1e3;
        let little_residual =
            if mean_in_system > 0.0 { (mean_in_system - little).abs() / mean_in_system } else { 0.0 };
        let figures = Figures {
            throughput_rps,
            latency_ms,
            waits_ms: Waits { thread: wait_ms(0), lock: wait_ms(1), event_loop: wait_ms(2) },
            stages_ms: self.stage_times(),
            utilization: Utilization {
                cores: per_span(end.busy_core_ns - start.busy_core_ns) / self.cores,
                lock: if self.locked {
                    per_span(end.lock_held_ns - start.lock_held_ns) / self.workers
                } else {
                    0.0
                },
                threads: if self.blocking {
                    0.0
                } else {
                    per_span(self.pool.area(end.t)) / self.pool_threads
                },
                event_loop: per_span(self.loops.area(end.t)) / self.workers,
            },
            mean_in_system,
            little_residual,
            gil_sleeps_per_request: (end.gil_sleeps - start.gil_sleeps) as f64 / n,
            gil_switches_per_request: (end.gil_switches - start.gil_switches) as f64 / n,
            gil_long_tenure_share: per_span((end.gil_long_tenure_ns - start.gil_long_tenure_ns) as f64)
                / self.workers,
            gil_threads: {
                use super::gil::GState as G;
                let mean = |states: &[G]| {
                    states
                        .iter()
                        .map(|&s| per_span(end.gil_state_ns[s as usize] - start.gil_state_ns[s as usize]))
                        .sum::<f64>()
                };
                GilThreads {
                    in_run: mean(&[G::Run]),
                    asleep_in_timed_wait: mean(&[G::Sleeping]),
                    blocked_on_mutex: mean(&[G::MutexWait]),
                    being_woken: mean(&[G::Waking, G::MutexWake]),
                    woken_checking: mean(&[G::WakeCpu, G::WakeCheck]),
                    waiting_for_switch: mean(&[G::SwitchWait]),
                }
            },
            mean_batch: match count.batch_steps {
                (0, _) => 0.0,
                (n, sum) => sum as f64 / n as f64,
            },
        };
        Replication {
            figures,
            completed: self.measured,
            arrived: count.arrived,
            finished: self.completed,
            in_system: count.live,
            rejected: self.rejected,
            events: count.events,
            sim_time_s: ns_to_s(end.t),
            truncated: truncation.is_some(),
            truncation,
        }
    }
}
