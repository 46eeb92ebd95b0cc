//! The typed scenario: every field with its unit and default.

use crate::workload::Dist;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One experiment: clients, serving system, workload, costs and run lengths.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// A short name for reports. By default, the file name.
    pub name: Option<String>,
    /// Free text: what the scenario models and where its numbers come from.
    pub description: Option<String>,
    /// Hardware and processes.
    pub system: System,
    /// One worker process: handler, threadpool, lock.
    pub worker: Worker,
    /// Who sends requests, and when.
    pub clients: Clients,
    /// What each request asks for.
    pub workload: Workload,
    /// What each request costs.
    pub cost: Cost,
    /// Batching of requests into one forward pass.
    pub batching: Batching,
    /// Run lengths, replications and the seed.
    pub run: Run,
    /// A service of your own to measure instead of servesim's server (see
    /// [`TargetSpec`](super::TargetSpec)). By default, none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<super::TargetSpec>,
    /// The directory relative paths in the file are resolved against (set by the loader).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[system]`: the machine and the processes on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct System {
    /// CPU cores shared by every thread of every worker (count), 1 to 1,000,000.
    /// By default, 1.
    pub cores: u32,
    /// Worker processes, each with its own event loop, threadpool, lock and copy of the
    /// weights (count), 1 to 1,000,000. By default, 1.
    ///
    /// Bounded with the threads in all: `workers × (worker.threads + 1)` (+ 1 more per
    /// worker when batching, its scheduler) ≤ 1,000,000 simulated threads, about 50 MB of
    /// simulator state allocated when a replication starts.
    pub workers: u32,
    /// How requests are spread over workers. By default, `round-robin`.
    pub balancer: Balancer,
    /// How the cores are shared among runnable threads. By default, `ps`.
    pub scheduler: Scheduler,
    /// With `scheduler = "slice"`: how long a thread runs before it yields its core to a
    /// waiting thread (ms), 0.001 to 1000. By default, 4 — a tick at `CONFIG_HZ=250`,
    /// where a Linux kernel enforces EEVDF's base slice (0.75 ms × (1 + log₂ cores)).
    pub slice_ms: f64,
    /// With `balancer = "hash"` and closed-loop clients: how many users' connections land on
    /// each worker (count per worker, in worker order; they must add up to `clients.users`).
    /// A given split replaces the hash's draw — to predict a measured run with the split it
    /// had (`servesim validate` does so with each worker's counted connections). By default,
    /// empty: each replication draws the hash's split.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub split: Vec<u32>,
    /// Resident memory of one worker process: its copy of the weights plus the runtime (MB).
    /// Capacity planning multiplies it by `workers`. By default, 16 (the Mini-GPT's
    /// 0.4 MB of weights in a ~16 MB process). At most 1e9 (a petabyte).
    pub worker_memory_mb: f64,
    /// Memory per sequence in a batch — its KV cache (MB). Capacity planning adds
    /// `workers × max_batch × seq_memory_mb` when batching. At most 1e9. By default, 0.
    pub seq_memory_mb: f64,
}

impl Default for System {
    fn default() -> Self {
        Self {
            cores: 1,
            workers: 1,
            balancer: Balancer::RoundRobin,
            scheduler: Scheduler::Ps,
            slice_ms: 4.0,
            split: Vec::new(),
            worker_memory_mb: 16.0,
            seq_memory_mb: 0.0,
        }
    }
}

/// How the simulated cores are shared among the threads that can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheduler {
    /// Processor sharing: every runnable thread progresses at `min(1, cores / runnable)`,
    /// as if the kernel's slices were infinitely short. Exact for the queueing formulas,
    /// and the fastest to simulate.
    Ps,
    /// Time slices, as a Linux kernel runs threads: a thread holds a core at full speed
    /// for `system.slice_ms`, then yields it to a waiting thread; threads that wake go
    /// before threads whose slice ran out. A lock holder is then not slowed by the other
    /// runnable threads — until its slice ends inside its critical section.
    Slice,
}

/// How a request (or a connection) is assigned to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Balancer {
    /// Workers in turn, per request.
    RoundRobin,
    /// A uniformly random worker, per request.
    Random,
    /// The worker with the fewest requests in it (lowest index on ties).
    LeastOutstanding,
    /// What SO_REUSEPORT does: each connection is hashed to a worker, regardless of load.
    /// A closed-loop user keeps its connection; open-loop and burst requests each hash anew.
    Hash,
    /// What a listening socket the workers share does (`uvicorn --workers`, gunicorn's
    /// Uvicorn workers): every worker's event loop watches the one accept queue, the kernel
    /// wakes them all, and the first to run accepts every connection waiting (asyncio's
    /// accept loop drains the queue). Users that connect together (closed loop, burst) all
    /// land on one worker; a request of the open loop or a trace lands on a worker whose
    /// event loop is idle, drawn at random among them (any worker when none is).
    Accept,
}

/// `[worker]`: one worker process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Worker {
    /// How the handler runs. By default, `sync`.
    pub handler: Handler,
    /// Threadpool size (threads), 1 to 1,000,000 (see `system.workers` for the bound on
    /// threads in all). By default, 40 (anyio's default).
    pub threads: u32,
    /// The process-wide lock held during interpreter work. By default, `none`.
    pub lock: LockKind,
    /// `gil` and `fair-gil`: how long a waiter waits before it asks the holder to drop the
    /// lock (ms),
    /// 0.001 to 1e9. By default, 5 (CPython's `sys.getswitchinterval()`).
    ///
    /// CPython keeps the interval in whole microseconds and waits at least 1 µs
    /// (`take_gil` in `Python/ceval_gil.c`), so 0.001 ms is its shortest; 0 has no meaning
    /// (`sys.setswitchinterval(0)` is refused). A shorter interval would let drop requests
    /// repeat without simulated time advancing.
    pub switch_interval_ms: f64,
    /// Requests admitted into one worker at once (queued or in service); beyond it a request
    /// is refused (HTTP 503) (requests), 1 to 1,000,000. By default, 1024.
    pub queue_limit: u32,
}

impl Default for Worker {
    fn default() -> Self {
        Self {
            handler: Handler::Sync,
            threads: 40,
            lock: LockKind::None,
            switch_interval_ms: 5.0,
            queue_limit: 1024,
        }
    }
}

/// How a request's handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Handler {
    /// A `def` handler: the event loop hands the request to a threadpool thread (FIFO).
    Sync,
    /// An `async def` handler that blocks: the whole request runs on the event-loop thread,
    /// so the worker serves one request at a time whatever its threadpool size.
    AsyncBlocking,
    /// An `async def` handler that awaits a threadpool thread (`to_thread`).
    AsyncOffload,
}

/// The process-wide lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockKind {
    /// No lock: interpreter work runs in parallel, bounded by cores.
    None,
    /// A fair mutex: FIFO hand-off, a holder keeps it until it releases.
    Mutex,
    /// CPython's GIL as `Python/ceval_gil.c` implements it: a release point frees the lock
    /// and signals one waiter, the releaser re-takes a free lock first, a waiter whose
    /// timed wait of `switch_interval_ms` runs out with no switch asks the holder to drop
    /// it, and the holder then waits until another thread has taken it.
    Gil,
    /// A fair GIL (not CPython's): FIFO hand-off, and a waiter that has waited
    /// `switch_interval_ms` without any hand-off makes the holder drop it at its next
    /// switch point and queue again.
    FairGil,
}

/// `[clients]`: the arrival process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Clients {
    /// `closed`, `open`, `burst` or `trace`. By default, `closed`.
    pub kind: ClientKind,
    /// `closed`: concurrent users, each waiting for its reply before thinking and sending
    /// again (users), 1 to 1,000,000 and at most `worker.queue_limit`. By default, 1.
    pub users: u32,
    /// `closed`: think time between a reply and the next request (ms). Like every
    /// duration distribution, its mean (and largest value, when it has one) is at most 1e9
    /// ms — 11.6 days, 1e15 ns, four orders of magnitude below where the simulator's u64
    /// nanosecond clock wraps (see [`Dist::MAX_VALUE`]). By default, 0.
    pub think_ms: Dist,
    /// `open`: offered rate (requests/s), 1e-6 to 1e6. At 1e6 the mean gap is 1000 ns, so
    /// rounding gaps to the 1 ns clock moves the rate by < 0.1% (and a faster rate would
    /// let arrivals repeat without simulated time advancing); at 1e-6 it is 1e9 ms, the
    /// bound on every duration. By default, 1.
    pub rate_rps: f64,
    /// `open`: `poisson` (exponential gaps) or `constant` (equal gaps). By default, `poisson`.
    pub arrivals: Arrivals,
    /// `burst`: requests sent at t = 0 (requests), 1 to 1,000,000. By default, 50.
    pub burst: u32,
    /// `trace`: a CSV file of arrival times (ms) in its first column (header optional),
    /// relative to the scenario file. Times must not decrease, and be finite, ≥ 0 and
    /// ≤ 1e9 ms (the bound on every duration); at most 1e9 arrivals.
    pub trace: Option<PathBuf>,
    /// `trace`: the arrival times read from `trace` (ms) (filled by the loader).
    #[serde(skip)]
    pub trace_ms: Vec<f64>,
    /// The load generator's CPU per request (ms), 0 to 1e3: sending the request (half) and
    /// reading its reply (half), on one thread that serves requests in turn, as servesim's
    /// load generator does on its one-thread runtime. It is part of each request's latency
    /// (a load generator times a request from before it sends to after it has read the
    /// reply). `servesim calibrate` measures it (`load_cpu_ms` in the calibration). By
    /// default, 0: the load generator costs nothing.
    pub cpu_ms: f64,
    /// Whether the load generator runs on the server's cores — a thread among the server's,
    /// as on a machine with no CPU to spare for it — rather than on a CPU of its own. By
    /// default, false.
    pub shares_cores: bool,
}

impl Default for Clients {
    fn default() -> Self {
        Self {
            kind: ClientKind::Closed,
            users: 1,
            think_ms: Dist::Const(0.0),
            rate_rps: 1.0,
            arrivals: Arrivals::Poisson,
            burst: 50,
            trace: None,
            trace_ms: Vec::new(),
            cpu_ms: 0.0,
            shares_cores: false,
        }
    }
}

/// Kinds of client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientKind {
    /// Users that wait for their reply.
    Closed,
    /// Arrivals that do not wait; latency counts from the intended send time.
    Open,
    /// N requests at t = 0.
    Burst,
    /// Arrival times from a file.
    Trace,
}

/// Gaps between open-loop arrivals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arrivals {
    /// Exponential gaps (a Poisson process).
    Poisson,
    /// Equal gaps of 1 / rate.
    Constant,
}

/// `[workload]`: what each request asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Workload {
    /// Tokens generated per request (draws are rounded to whole tokens) (tokens). Its mean
    /// (and largest value, when it has one) is at most 1e6, the most tokens the simulator
    /// draws for one request. By default, 20.
    pub new_tokens: Dist,
    /// Length of the prompt the real load generator sends (characters), 0 to 1,000,000.
    /// By default, 40.
    pub prompt_chars: u32,
}

impl Default for Workload {
    fn default() -> Self {
        Self { new_tokens: Dist::Const(20.0), prompt_chars: 40 }
    }
}

/// `[cost]`: CPU work per request, split by whether it holds the lock. Each is a
/// distribution (see [`Dist`]); all default to 0. Each distribution's mean (and largest
/// value, when it has one) is at most 1e9 ms ([`Dist::MAX_VALUE`]: 11.6 days, far below where
/// the simulator's u64 nanosecond clock wraps), and `lognormal`/`gamma` take a cv in
/// [1e-6, 1e3].
///
/// A request's life: the event loop reads and parses it (`loop_in_free_ms`, then
/// `loop_in_ms`), a handler thread runs `request_locked_ms` then `request_free_ms`, then for
/// every token `token_locked_ms` and `token_free_ms` in `release_points` alternating
/// slices, and the loop writes the reply (`loop_out_ms`, then `loop_out_free_ms`); the
/// client sees it `rtt_ms` later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cost {
    /// Event-loop work before dispatch: accept, read, parse (ms).
    pub loop_in_ms: Dist,
    /// Event-loop work after the handler: serialize, write (ms).
    pub loop_out_ms: Dist,
    /// Whether `loop_in_ms` and `loop_out_ms` need the lock (true for a Python server).
    /// By default, true.
    pub loop_lock: bool,
    /// Event-loop work before dispatch that never holds the lock — native code such as an
    /// HTTP parser in C or Rust (ms).
    pub loop_in_free_ms: Dist,
    /// Event-loop work after the handler that never holds the lock (ms).
    pub loop_out_free_ms: Dist,
    /// Handler work per request holding the lock (tokenize, orchestration) (ms).
    pub request_locked_ms: Dist,
    /// Handler work per request without the lock (prompt prefill matmuls) (ms).
    pub request_free_ms: Dist,
    /// Work per generated token holding the lock (interpreter work) (ms).
    pub token_locked_ms: Dist,
    /// Work per generated token without the lock (the matmuls) (ms).
    pub token_free_ms: Dist,
    /// Time each request spends outside the server's threads — the client's send and
    /// receive, the loopback, the wake-ups between — added to its latency after the reply
    /// (ms). It takes no core, thread or lock of the server. By default, 0.
    pub rtt_ms: Dist,
    /// Lock release points per token: the token's locked and free work alternate in this
    /// many slices (count), 1 to 10,000. By default, 1.
    ///
    /// Each slice is simulated, so this bounds the steps per token; 10,000 is a 100-layer
    /// model releasing the lock around a hundred kernels per layer.
    pub release_points: u32,
    /// CPU cost of handing the lock to a waiting thread — the wake-up and context switch the
    /// receiving thread pays before it runs (µs), 0 to 1e6. A context switch costs
    /// microseconds; 1e6 µs (1 s) is far beyond any. By default, 0.
    ///
    /// Paid only while a core is idle (waking a core out of its idle state); the CPU a
    /// hand-off costs on busy cores is `switch_us`.
    pub handoff_us: f64,
    /// Fair locks (`fair-gil`, `mutex`): the CPU of one hand-off to a parked waiter when
    /// no core is idle — the releaser's wake-up call, the waiter's park and the context
    /// switch between them, on one busy core (µs), 0 to 1e6. The receiving thread spends it
    /// before its work, holding the lock, idle cores or not (a waiter that queued less than
    /// that long ago has not parked: it spends no more than it has waited). By default, 0;
    /// `servesim calibrate` measures it on the machine (two threads on one CPU passing a
    /// turn back and forth through park and unpark, as the server's lock's waiters park).
    pub switch_us: f64,
    /// `gil` (CPython's): how long a parked thread takes to run once it is signalled or
    /// its timed wait runs out — the OS waking it and a core taking it (µs; a
    /// distribution, like the costs). A signalled waiter takes the GIL only if it is still
    /// free by then. By default, a gamma of mean 10 µs and cv 0.5 (a wake-up onto an idle
    /// core of a current x86 server); `servesim calibrate` measures it on the machine.
    pub wake_us: Dist,
    /// `gil` (CPython's): the same latency when no core is idle as the signal is sent. The
    /// kernel then wakes the thread on its signaller's core, where it preempts the
    /// signaller at once (`wake_us` is the wake-up on an idle core, which on a VM has to
    /// wake the idle vCPU first); with `system.scheduler = "slice"` the simulator does the
    /// same: the woken thread takes its signaller's core, and the signaller waits for a core
    /// again (µs; a distribution). By default, `wake_us`, and no preemption; `servesim
    /// calibrate` measures it on the machine.
    pub wake_busy_us: Option<Dist>,
    /// `gil` (CPython's): CPU a woken thread spends before it can check the GIL — the
    /// futex return and the mutex — whether it then takes the GIL or finds it taken and
    /// sleeps again (µs), 0 to 1e6. It is work on the cores, shared like any other. By
    /// default, 2 µs; `servesim calibrate` measures it on the machine.
    pub vain_wake_us: f64,
    /// `gil` (CPython's): what signalling a sleeping waiter costs the signaller — the
    /// `futex` wake and, when the waiter is woken on an idle core, waking that core (on a
    /// VM, an exit to the host) — spent by the GIL's holder at its release point before its
    /// C call goes on (µs), 0 to 1e6. By default, 0; `servesim calibrate` measures it on the
    /// machine.
    pub signal_us: f64,
    /// `gil` (CPython's): the wake-up of a thread blocked on the GIL's mutex, from the
    /// unlock to it holding the mutex (µs), 0 to 1e6. The mutex is held only while a woken
    /// waiter checks the GIL, a microsecond or so, so the blocked thread's core has not
    /// halted yet and wakes faster than a parked waiter's. 0 (the default): as a parked
    /// waiter's wake-up (`wake_us`); `servesim calibrate` measures it on the machine.
    pub mutex_wake_us: f64,
    /// `gil` (CPython's): extra CPU a thread spends, holding the GIL, when it takes the GIL
    /// after waiting for it — its caches went cold while it waited (other threads ran on
    /// its core, or, on a VM, the host ran others' work there while the core idled), so its
    /// first microseconds of bytecode run slower than they do back to back (µs), 0 to 1e6.
    /// After a wait of `t` it is `cold_start_us × (1 − e^(−t / cold_start_ms))`, and at
    /// most the held slice that follows (cold caches slow it at most to half its speed). By
    /// default, 0: none; `python/cold_start.py` measures it for CPython on the machine.
    pub cold_start_us: f64,
    /// `gil` (CPython's): the wait over which caches go cold, the time constant of
    /// `cold_start_us` (ms), 0.001 to 1e6. By default, 5.
    pub cold_start_ms: f64,
    /// A calibration file (JSON, from `servesim calibrate`), relative to the scenario file:
    /// the real server's own measured costs, added to the emulated work this table sets
    /// (see [`crate::scenario::Calibration`]). By default, none.
    pub calibration: Option<PathBuf>,
    /// The calibration read from `calibration` (filled by the loader).
    #[serde(skip)]
    pub calibrated: Option<std::sync::Arc<super::Calibration>>,
}

/// The mean of `cost.wake_us` when the scenario does not say (µs).
pub const DEFAULT_WAKE_US: f64 = 10.0;
/// `cost.vain_wake_us` when the scenario does not say (µs).
pub const DEFAULT_VAIN_WAKE_US: f64 = 2.0;

impl Default for Cost {
    fn default() -> Self {
        let zero = Dist::Const(0.0);
        Self {
            loop_in_ms: zero.clone(),
            loop_out_ms: zero.clone(),
            loop_lock: true,
            loop_in_free_ms: zero.clone(),
            loop_out_free_ms: zero.clone(),
            request_locked_ms: zero.clone(),
            request_free_ms: zero.clone(),
            token_locked_ms: zero.clone(),
            token_free_ms: zero.clone(),
            rtt_ms: zero,
            release_points: 1,
            handoff_us: 0.0,
            switch_us: 0.0,
            wake_us: Dist::Gamma { mean: DEFAULT_WAKE_US, cv: 0.5 },
            wake_busy_us: None,
            vain_wake_us: DEFAULT_VAIN_WAKE_US,
            signal_us: 0.0,
            mutex_wake_us: 0.0,
            cold_start_us: 0.0,
            cold_start_ms: 5.0,
            calibration: None,
            calibrated: None,
        }
    }
}

/// `[batching]`: requests batched into one forward pass by a scheduler thread per worker.
///
/// With batching on, the event loop hands each parsed request to the worker's scheduler
/// (instead of the threadpool). Each step advances every sequence of the batch by one
/// token and costs `step_locked_ms + B·seq_locked_ms` holding the lock, then
/// `step_free_ms + B·seq_free_ms` without it, for a batch of B; a sequence joining pays its
/// `request_locked_ms` / `request_free_ms` (prefill) in the step it joins. The per-token
/// `token_*` costs are not used. With a calibration, the measured step costs are added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Batching {
    /// `none`, `static` or `continuous`. By default, `none`.
    pub mode: BatchingMode,
    /// Largest batch (requests), 1 to 1,000,000. By default, 8.
    pub max_batch: u32,
    /// `static`: a partial batch goes when its oldest request has waited this long (ms),
    /// 0 to 1e9. By default, 5.
    pub max_wait_ms: f64,
    /// Work per step holding the lock, whatever the batch size (ms). By default, 0.
    pub step_locked_ms: Dist,
    /// Work per step without the lock, whatever the batch size (ms). By default, 0.
    pub step_free_ms: Dist,
    /// Work per step and per sequence holding the lock (ms). A full batch's mean step,
    /// `step_locked_ms + max_batch × seq_locked_ms`, is at most 1e9 ms, the bound on every
    /// duration. By default, 0.
    pub seq_locked_ms: Dist,
    /// Work per step and per sequence without the lock (ms). A full batch's mean step,
    /// `step_free_ms + max_batch × seq_free_ms`, is at most 1e9 ms. By default, 0.
    pub seq_free_ms: Dist,
}

impl Default for Batching {
    fn default() -> Self {
        let zero = Dist::Const(0.0);
        Self {
            mode: BatchingMode::None,
            max_batch: 8,
            max_wait_ms: 5.0,
            step_locked_ms: zero.clone(),
            step_free_ms: zero.clone(),
            seq_locked_ms: zero.clone(),
            seq_free_ms: zero,
        }
    }
}

/// Batching schedulers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BatchingMode {
    /// One request per forward pass.
    None,
    /// Dynamic batching: a full batch goes at once, a partial one after `max_wait_ms`.
    Static,
    /// Iteration-level: sequences join and leave at token-step boundaries.
    Continuous,
}

/// `[run]`: how long, how often, from which seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Run {
    /// Completed requests measured per replication, after warm-up (`burst`: every
    /// request) (requests), 1 to 1e9 together with `warmup_requests`: a client's request
    /// counter stays far below 2³², and a billion requests already take minutes to
    /// simulate. By default, 10000.
    pub requests: u64,
    /// Completed requests discarded at the start of each replication (requests)
    /// (see `requests` for the bound on both). By default, 1000.
    pub warmup_requests: u64,
    /// Independent replications; confidence intervals come from their spread (count),
    /// 1 to 1,000,000. By default, 5.
    pub replications: u32,
    /// Base seed; replication r uses streams derived from (seed, r). By default, 1.
    pub seed: u64,
    /// Bound on simulated time per replication, so an overloaded system still stops (s),
    /// above 0 and at most 1e9 (31.7 years): 1e18 ns, 18× below where the u64 nanosecond clock
    /// wraps, leaving room for events scheduled past the end. By default, 86400.
    pub max_sim_s: f64,
    /// Bound on events processed per replication, so that no scenario runs for hours (a
    /// 1 µs GIL switch interval over a day of simulated time is 10¹¹ drop requests)
    /// (events), 1 to 1e12. A replication that reaches it stops and is reported truncated.
    /// By default, 1e9: a minute or two of simulation, room for about 2e7 requests of the
    /// lesson's scenarios (~45 events each: a few per CPU step); raise it for longer runs.
    pub max_events: u64,
}

impl Default for Run {
    fn default() -> Self {
        Self {
            requests: 10_000,
            warmup_requests: 1_000,
            replications: 5,
            seed: 1,
            max_sim_s: 86_400.0,
            max_events: 1_000_000_000,
        }
    }
}

impl Scenario {
    /// The name for reports: `name`, or else "scenario".
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or("scenario")
    }
}
