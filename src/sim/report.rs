//! What a simulation reports: each replication's figures, and their means and 95%
//! confidence intervals over replications.

use super::{Stability, stability};
use crate::scenario::Scenario;
use crate::stats::{LatencySummary, mean_ci95_fields};
use serde::{Deserialize, Serialize};

/// Mean time waiting per request, by stage (ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Waits {
    /// Waiting for a threadpool thread.
    pub thread: f64,
    /// Waiting for the lock (all acquisitions).
    pub lock: f64,
    /// Waiting for the event-loop thread.
    pub event_loop: f64,
}

/// One stage's time per request: mean and 95th percentile (ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// Mean over the measured requests (ms).
    pub mean: f64,
    /// 95th percentile over the measured requests (ms).
    pub p95: f64,
}

/// A request's time by stage, as servesim's server reports it in its `Server-Timing`
/// header ([`crate::server_timing`]) — so a prediction can be checked stage by stage.
///
/// * `queue`: before the handler starts. The server counts from when its loop reads the
///   request: a pool thread's wait, the loop's turn in `async-blocking`, the wait to join a
///   batch. The simulator counts the same waits; in `async-blocking`, from the end of the
///   loop job that was running when the request came (the server reads requests between
///   two handlers).
/// * `lock`: waiting for the lock, every acquisition. In the simulator, a fair lock's
///   hand-off (`cost.handoff_us`, at its CPU length: a core was idle) is waiting too, as
///   the woken thread's is on the server; a batched request counts the waits of every step
///   it was in, as the server's batch does.
/// * `held`, `free`: running with the lock held and without it (wall time, the handler's
///   work and the loop's). Under CPython's GIL the simulator takes `held` as the locked
///   share of each run's progress (a run's release points are not events of their own).
/// * `loop`: the event loop's work on the request (wall time; a part of `held` + `free`).
///
/// Neither side puts in any stage the time a request waits unread while its loop is busy
/// (outside `async-blocking`), its loop's turn to write the reply, or the network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimes {
    /// Waiting before the handler started.
    pub queue: Stage,
    /// Waiting for the lock.
    pub lock: Stage,
    /// Working with the lock held.
    pub held: Stage,
    /// Working without the lock.
    pub free: Stage,
    /// The event loop's work.
    #[serde(rename = "loop")]
    pub event_loop: Stage,
}

impl StageTimes {
    /// The stages' names, in the order of [`StageTimes::get`].
    pub const NAMES: [&'static str; 5] = ["queue", "lock", "held", "free", "loop"];

    /// Stage `i` of [`StageTimes::NAMES`].
    pub fn get(&self, i: usize) -> Stage {
        [self.queue, self.lock, self.held, self.free, self.event_loop][i]
    }
}

/// Busy fraction of each resource, time-averaged over the measurement window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Utilization {
    /// Core-time used / core-time available.
    pub cores: f64,
    /// Fraction of time each worker's lock is held (mean over workers; 0 without a lock).
    pub lock: f64,
    /// Busy threadpool threads / threads (0 for `async-blocking`, which uses none).
    pub threads: f64,
    /// Fraction of time each event-loop thread is busy (mean over workers).
    pub event_loop: f64,
}

/// The figures of one run — and, over replications, their means or CI half-widths.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Completed requests per second in the measurement window.
    pub throughput_rps: f64,
    /// Latency from the intended send time to the reply (ms).
    pub latency_ms: LatencySummary,
    /// Mean waits per request by stage (ms).
    pub waits_ms: Waits,
    /// Mean and p95 of each stage of a request, as the server's `Server-Timing` has them.
    #[serde(default)]
    pub stages_ms: StageTimes,
    /// Utilization of each resource.
    pub utilization: Utilization,
    /// Time-averaged number of requests in the system.
    pub mean_in_system: f64,
    /// `|L − X·R| / L`: how far the run is from Little's law (edge effects only).
    pub little_residual: f64,
    /// `lock = "gil"`: times a thread went to sleep on the GIL per request completed in the
    /// window — in its timed wait (the first, or again after a wake-up in vain) or blocked
    /// on the GIL's mutex; each is a voluntary context switch, as the kernel counts them
    /// (`/proc/<pid>/status`). 0 with any other lock.
    #[serde(default)]
    pub gil_sleeps_per_request: f64,
    /// `lock = "gil"`: switches of the GIL per request completed in the window — takes by a
    /// thread other than the last holder, each ending a *tenure* (the run of takes one
    /// thread makes, barging back in after its C calls, until another thread gets in). 0 with
    /// any other lock.
    #[serde(default)]
    pub gil_switches_per_request: f64,
    /// `lock = "gil"`: the share of the window (per worker) spent in tenures of 1 ms or more:
    /// one thread keeping the GIL, from the switch that gave it to the next, while the other
    /// threads' requests wait — where a convoy's long latencies come from. Each tenure is
    /// counted whole when it ends, so one at each edge of the window may be counted in full
    /// or not at all. 0 with any other lock.
    #[serde(default)]
    pub gil_long_tenure_share: f64,
    /// `lock = "gil"`: where the threads were on the GIL, as mean numbers of threads over
    /// the window (all 0 with any other lock).
    #[serde(default)]
    pub gil_threads: GilThreads,
    /// Mean sequences per batched step (0 without batching).
    pub mean_batch: f64,
}

/// Where the threads were on CPython's GIL: the mean number of threads in each state over
/// the measurement window — the states a kernel trace tells apart (`python/sched_states.py`:
/// asleep on the condition variable, asleep on `gil->mutex`, woken and not yet running).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct GilThreads {
    /// In their run: holding the GIL in bytecode, or in one of the run's C calls (running,
    /// or waiting for a core).
    pub in_run: f64,
    /// Asleep in the timed wait (`take_gil`'s condition variable).
    pub asleep_in_timed_wait: f64,
    /// Blocked on the GIL's mutex.
    pub blocked_on_mutex: f64,
    /// Signalled, timed out or let in by the mutex's unlock: the OS is waking them.
    pub being_woken: f64,
    /// Awake: spending the wake-up's CPU, or holding the mutex to check the GIL.
    pub woken_checking: f64,
    /// Dropped the GIL on request, waiting until another thread has taken it.
    pub waiting_for_switch: f64,
}

/// Why a replication stopped before it measured what it should.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Truncation {
    /// The next event lay beyond `run.max_sim_s`, or beyond the end of the u64 nanosecond
    /// clock (a heavy-tailed draw of a cost or a think time can exceed 584 years).
    MaxSimTime,
    /// `run.max_events` events were processed.
    MaxEvents,
    /// An open system offered more than its capacity bound ([`Stability::unstable`])
    /// received [`UNSTABLE_ARRIVALS_PER_REQUEST`] × (`run.requests` +
    /// `run.warmup_requests`) arrivals: its queues only grow, so simulating more arrivals
    /// adds refusals, not information.
    ArrivalCap,
}

impl std::fmt::Display for Truncation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Truncation::MaxSimTime => f.write_str("run.max_sim_s passed (or the clock's end)"),
            Truncation::MaxEvents => f.write_str("run.max_events events were processed"),
            Truncation::ArrivalCap => write!(
                f,
                "the unstable open system had {UNSTABLE_ARRIVALS_PER_REQUEST} × (run.requests + \
                 run.warmup_requests) arrivals"
            ),
        }
    }
}

/// An unstable open system stops after this many arrivals per request it must complete
/// (`run.requests + run.warmup_requests`). One offered up to about this multiple of what it
/// completes still measures every request, so a sweep past saturation (where the plotted
/// throughput is the saturated one) runs as it would without a cap; one offered more stops
/// early, truncated: at 1e6 req/s and the default 11,000 requests, after 110,000 arrivals.
pub const UNSTABLE_ARRIVALS_PER_REQUEST: u64 = 10;

/// The result of one replication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replication {
    /// Its figures.
    pub figures: Figures,
    /// Requests measured (after warm-up).
    pub completed: u64,
    /// Requests sent by clients, warm-up included.
    pub arrived: u64,
    /// Requests completed, warm-up included.
    pub finished: u64,
    /// Requests still in the system at the end.
    pub in_system: u64,
    /// Requests refused because a worker held `worker.queue_limit` requests.
    pub rejected: u64,
    /// Events processed.
    pub events: u64,
    /// Simulated time at the end (s).
    pub sim_time_s: f64,
    /// Whether the run stopped before it measured enough (see `truncation`).
    pub truncated: bool,
    /// What stopped it, when it was truncated.
    pub truncation: Option<Truncation>,
}

/// The result of all replications: means with 95% confidence intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimReport {
    /// Mean over replications.
    #[serde(flatten)]
    pub figures: Figures,
    /// Half-width of the 95% CI of every figure (Student t over replications).
    pub ci95: Figures,
    /// Requests measured, summed over replications.
    pub completed: u64,
    /// Requests refused, summed over replications.
    pub rejected: u64,
    /// Events processed, summed over replications.
    pub events: u64,
    /// Whether any replication stopped before it measured enough.
    pub truncated: bool,
    /// What stopped the truncated replications, each reason once, in [`Truncation`]'s
    /// order (empty, and absent from JSON, when none was).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub truncated_by: Vec<Truncation>,
    /// Capacity bound, bottleneck and whether the offered load exceeds it.
    pub stability: Stability,
    /// Replications run.
    pub replications: u32,
    /// Base seed.
    pub seed: u64,
}

/// Means and CI half-widths of replications' figures.
pub fn aggregate(sc: &Scenario, reps: &[Replication]) -> SimReport {
    let figures: Vec<Figures> = reps.iter().map(|r| r.figures).collect();
    let (mean, ci95) = mean_ci95_fields(&figures);
    SimReport {
        figures: mean,
        ci95,
        completed: reps.iter().map(|r| r.completed).sum(),
        rejected: reps.iter().map(|r| r.rejected).sum(),
        events: reps.iter().map(|r| r.events).sum(),
        truncated: reps.iter().any(|r| r.truncated),
        truncated_by: reps
            .iter()
            .filter_map(|r| r.truncation)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
        stability: stability(sc),
        replications: reps.len() as u32,
        seed: sc.run.seed,
    }
}
