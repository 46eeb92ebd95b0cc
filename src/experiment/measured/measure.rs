//! `servesim measure`: the scenario on the real backend — the real server started with the
//! scenario's knobs, the load generator playing its clients over loopback — reported with
//! the same JSON contract as `simulate`.
//!
//! ```text
//!  scenario ─► ServerConfig ─► servesim serve (child, port 0, pinned) ─► /healthz
//!          └─► LoadPlan (clients.*, workload.*) ─► load generator (pinned apart) ─► records
//!  /stats before and after ─► utilizations, waits;  records ─► warm-up cut, window, latency
//! ```
//!
//! Run length and warm-up follow the simulator: closed and open clients send
//! `run.warmup_requests + run.requests` requests (closed users a few more, so the last
//! measured requests still see every user); the first `run.warmup_requests` completions are
//! dropped and the window runs from the last of them to the `run.requests`-th measured one.
//! Bursts and traces are measured whole. One run: no replications, so no CI.
//!
//! Utilizations and waits come from the workers' cumulative `/stats` taken just before and
//! just after the load, so they cover the whole run (warm-up included).

use crate::experiment::{CpuTicks, STEAL_LIMIT, stolen_since};
use crate::load::{self, LoadError, LoadPlan, Mode, RequestRecord, Stop};
use crate::scenario::{Arrivals, ClientKind, Handler, LockKind, Scenario};
use crate::server::{
    self, CpuPlan, LaunchError, LaunchOptions, Limits, ServerConfig, ServerProcess, WorkerStats,
};
use crate::server_timing::StageStats;
use crate::sim::{Utilization, Waits};
use crate::stats::{LatencyHistogram, LatencySummary};
use crate::workload::Dist;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Why a scenario could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// The scenario asks for something the real backend cannot play.
    #[error("{field}: {message}")]
    Unsupported {
        /// The scenario field.
        field: &'static str,
        /// What is unsupported and what to do instead.
        message: String,
    },
    /// The server refused the configuration.
    #[error(transparent)]
    Config(#[from] server::ConfigError),
    /// The server could not be started, queried or stopped.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// The load generator could not run.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A `[target]` service could not be started, reached or stopped.
    #[error(transparent)]
    Target(Box<super::target::ServiceError>),
    /// The run did not finish within the wall-time cap.
    #[error("the load run exceeded its wall-time cap of {0} s; lower run.requests or raise --max-wall-s")]
    WallCap(f64),
    /// The wall-time cap is not a duration the run can have.
    #[error(
        "--max-wall-s must be a number of seconds > 0 and ≤ {MAX_WALL_S} (a day), got {}",
        crate::scenario::show(*.0)
    )]
    BadWallCap(f64),
    /// CPUs or the runtime could not be set up.
    #[error("cannot {what}: {message}")]
    Setup {
        /// What was attempted.
        what: &'static str,
        /// Why it failed.
        message: String,
    },
}

impl From<super::target::ServiceError> for MeasureError {
    fn from(e: super::target::ServiceError) -> Self {
        MeasureError::Target(Box::new(e))
    }
}

fn unsupported(field: &'static str, message: impl Into<String>) -> MeasureError {
    MeasureError::Unsupported { field, message: message.into() }
}

/// The longest cap on a load run's wall time (s): one day.
pub const MAX_WALL_S: f64 = 86_400.0;

/// How to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasureOptions {
    /// The `servesim` binary. By default, found by [`server::find_binary`].
    pub binary: Option<PathBuf>,
    /// The Mini-GPT directory. By default, [`server::resolve_model_dir`]`(None)`.
    pub model_dir: Option<PathBuf>,
    /// The server's own limits. By default, [`Limits::default`].
    pub limits: Limits,
    /// Longest the load run may take (s), > 0 and at most [`MAX_WALL_S`]. By default, 600.
    pub max_wall_s: f64,
    /// Pass the server's stderr through. By default, false.
    pub show_server_stderr: bool,
}

impl Default for MeasureOptions {
    fn default() -> Self {
        Self {
            binary: None,
            model_dir: None,
            limits: Limits::default(),
            max_wall_s: 600.0,
            show_server_stderr: false,
        }
    }
}

/// One worker at the end of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerReport {
    /// Process id.
    pub pid: u32,
    /// Resident memory (kB).
    pub rss_kb: u64,
    /// Requests answered 200 during the run.
    pub completed: u64,
    /// servesim's own server: connections the worker accepted during the run, the share of
    /// the load generator's connections the kernel's `SO_REUSEPORT` hash gave it. A
    /// `[target]` service: closed-loop users whose responses this process answered, by
    /// their `x-worker-pid` header (each user once, where most of its replies came from);
    /// 0 for every process when the service does not send the header.
    #[serde(default)]
    pub connections: u64,
}

/// What `servesim measure --json` prints: the figures `simulate` prints, measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureReport {
    /// The scenario's name.
    pub scenario: String,
    /// Always `"measure"`.
    pub backend: String,
    /// 2xx responses per second in the measurement window.
    pub throughput_rps: f64,
    /// Latency from the intended send time to the reply, measured requests (ms).
    pub latency_ms: LatencySummary,
    /// Mean waits per completed request, from the server's counters (ms).
    pub waits_ms: Waits,
    /// Utilizations over the run, from the server's counters.
    pub utilization: Utilization,
    /// Time-averaged requests inside the server (Σ response times / run time).
    pub mean_in_system: f64,
    /// Requests measured (after the warm-up).
    pub completed: u64,
    /// Requests that failed, whole run (503s included).
    pub errors: u64,
    /// Requests refused with 503 (admission queue full), whole run.
    pub rejected: u64,
    /// Failures by kind, whole run.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Requests sent, warm-up included.
    pub sent: u64,
    /// The measurement window (s).
    pub window_s: f64,
    /// Wall time of the load run (s).
    pub wall_s: f64,
    /// Service time from the actual send, every 2xx response (ms).
    pub service_ms: LatencySummary,
    /// Resident memory of all workers (MB).
    pub memory_mb: f64,
    /// Every worker.
    pub workers: Vec<WorkerReport>,
    /// CPUs of the server and of the load generator.
    pub cpus: CpuPlan,
    /// CPU time of the measuring process (the load generator) per request sent (ms).
    pub load_cpu_ms_per_request: f64,
    /// What to know when reading the figures (shared CPUs, fewer CPUs than cores, a host
    /// that stole CPU time…).
    pub notes: Vec<String>,
    /// The share of the CPUs' ready time that a virtual machine's host took for something
    /// else during the load run (%, `/proc/stat`'s steal): above
    /// [`STEAL_LIMIT`](crate::experiment::STEAL_LIMIT) the run measured the host as much as the
    /// service. 0 (and left out of the JSON) on bare metal, where it cannot be read, or with
    /// no steal.
    #[serde(default, skip_serializing_if = "crate::experiment::no_steal")]
    pub host_steal_pct: f64,
    /// The stages of the measured requests' `Server-Timing` headers, mean and p95 of each
    /// (ms), when the server sends them (servesim's own always does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_timing: Option<StageStats>,
    /// The measured requests in order of completion, for statistics beyond the summary
    /// (batch means, confidence intervals of percentiles). Not serialized.
    #[serde(skip)]
    pub window: Window,
}

/// The measured requests of a run, in order of completion.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// When the window opens: the last warm-up completion, or the start [µs since start].
    pub start_us: u64,
    /// Each measured request's completion time [µs since start], ascending.
    pub done_us: Vec<u64>,
    /// Each measured request's latency from its intended send time (µs), same order.
    pub latency_us: Vec<u64>,
}

/// The body every request sends: a sentence of `workload.prompt_chars` characters and, when
/// `workload.new_tokens` is constant, its value (else the server draws it per request).
fn body(sc: &Scenario, context: usize) -> Result<String, MeasureError> {
    let w = &sc.workload;
    let chars = w.prompt_chars as usize;
    if chars == 0 || chars + 2 > context {
        return Err(unsupported(
            "workload.prompt_chars",
            format!(
                "must be in 1..={} for the Mini-GPT's context of {context} tokens, got {chars}",
                context - 2
            ),
        ));
    }
    let sentence: String =
        "the quick brown fox jumps over the lazy dog ".chars().cycle().take(chars).collect();
    let mut req = serde_json::json!({ "sentence": sentence });
    if let Dist::Const(n) = w.new_tokens {
        let n = n.round().max(0.0) as usize;
        if chars + 2 + n > context {
            return Err(unsupported(
                "workload.new_tokens",
                format!("{n} tokens after a {chars}-character prompt exceed the context of {context} tokens"),
            ));
        }
        req["max_new_tokens"] = n.into();
    }
    Ok(req.to_string())
}

/// The load generator's mode and stop, and the warm-up completions to drop.
pub(super) fn clients(sc: &Scenario) -> (Mode, Stop, u64) {
    let (c, r) = (&sc.clients, &sc.run);
    match c.kind {
        ClientKind::Closed => (
            Mode::Closed { users: c.users, think_ms: c.think_ms.clone() },
            Stop::Requests(r.warmup_requests + r.requests + u64::from(c.users)),
            r.warmup_requests,
        ),
        ClientKind::Open => (
            Mode::Open { rate_rps: c.rate_rps, poisson: c.arrivals == Arrivals::Poisson },
            Stop::Requests(r.warmup_requests + r.requests),
            r.warmup_requests,
        ),
        ClientKind::Burst => (Mode::Burst { n: c.burst }, Stop::Requests(c.burst.into()), 0),
        ClientKind::Trace => {
            (Mode::Trace { at_ms: c.trace_ms.clone() }, Stop::Requests(c.trace_ms.len() as u64), 0)
        }
    }
}

fn model_context(dir: &std::path::Path) -> Result<usize, MeasureError> {
    let path = dir.join("config.json");
    let text = crate::input::read_text(&path).map_err(|e| MeasureError::Setup {
        what: "read the model configuration",
        message: format!(
            "{}: {e}; create it with `servesim model init --dir {}`",
            path.display(),
            dir.display()
        ),
    })?;
    let c: crate::gpt::Config = serde_json::from_str(&text).map_err(|e| MeasureError::Setup {
        what: "read the model configuration",
        message: format!("{}: not a model config: {e}", path.display()),
    })?;
    Ok(c.context)
}

/// Measures a scenario on the real backend: its `[target]` service if it has one, else
/// servesim's own server.
pub fn measure(sc: &Scenario, opts: &MeasureOptions) -> Result<MeasureReport, MeasureError> {
    let cap = opts.max_wall_s;
    if !(cap.is_finite() && cap > 0.0 && cap <= MAX_WALL_S) {
        return Err(MeasureError::BadWallCap(cap));
    }
    if let Some(spec) = &sc.target {
        return super::target::measure(sc, spec, opts);
    }
    let model_dir = server::resolve_model_dir(opts.model_dir.as_deref());
    let config = ServerConfig::from_scenario(sc, opts.limits.clone(), model_dir.clone())?;
    let body = body(sc, model_context(&model_dir)?)?;
    let allowed = crate::affinity::allowed().map_err(|e| setup("read the CPU affinity", e))?;
    let cpus = CpuPlan::split(&allowed, sc.system.cores as usize);
    let (mode, stop, warmup) = clients(sc);
    let mut plan = LoadPlan::new("", mode, stop);
    plan.body = Some(load::BodyTemplate::new(&body));
    plan.seed = sc.run.seed;
    // Each reply's stages, for the validation's comparison stage by stage.
    plan.capture_timing = true;
    plan.timeout = Duration::from_secs_f64(opts.max_wall_s.max(1.0));
    let launch = LaunchOptions {
        binary: opts.binary.clone(),
        cpus: Some(cpus.server.clone()),
        show_stderr: opts.show_server_stderr,
        ..LaunchOptions::default()
    };
    let srv = ServerProcess::start(&config, &launch)?;
    plan.url = format!("http://{}/correct", srv.addr());
    plan.validate()?;
    let before = srv.stats()?;
    let (t0, cpu0, ticks) = (Instant::now(), process_cpu_ms(), CpuTicks::now());
    let records = run_load(&plan, &cpus, opts.max_wall_s)?.records;
    let (wall, load_cpu, steal) = (t0.elapsed().as_secs_f64(), process_cpu_ms() - cpu0, stolen_since(ticks));
    let after = srv.stats()?;
    let stopped = srv.stop(Duration::from_secs_f64(opts.limits.drain_timeout_ms / 1e3 + 10.0))?;
    let run = Run { records, warmup, before, after, wall_s: wall, cpus, steal };
    let mut report = summarize(sc, &run);
    report.load_cpu_ms_per_request = load_cpu / (run.records.len().max(1) as f64);
    report.notes.splice(0..0, notes(sc, &run.cpus, stopped.clean));
    Ok(report)
}

/// The load generator's CPU per request (ms), measured: one closed-loop user sends `requests`
/// of the scenario's requests to `srv` (after `warmup`), from the runtime `measure` uses,
/// pinned as `measure` pins it; the process's CPU time over the requests sent. One user
/// pays the whole of each request's sending and reading, which more users share in part
/// (one wake-up may then serve several replies).
pub(crate) fn load_cpu_ms(
    srv: &ServerProcess,
    sc: &Scenario,
    model_dir: &std::path::Path,
    cpus: &CpuPlan,
    requests: u64,
) -> Result<f64, MeasureError> {
    let body = body(sc, model_context(model_dir)?)?;
    let mut plan = LoadPlan::new(
        format!("http://{}/correct", srv.addr()),
        Mode::Closed { users: 1, think_ms: Dist::Const(0.0) },
        Stop::Requests(requests.max(1)),
    );
    plan.body = Some(load::BodyTemplate::new(&body));
    plan.seed = sc.run.seed;
    plan.validate()?;
    let cpu0 = process_cpu_ms();
    let records = run_load(&plan, cpus, 120.0)?.records;
    Ok((process_cpu_ms() - cpu0) / records.len().max(1) as f64)
}

fn setup(what: &'static str, e: impl std::fmt::Display) -> MeasureError {
    MeasureError::Setup { what, message: e.to_string() }
}

/// CPU time of this process so far (ms).
fn process_cpu_ms() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec; the clock id is a Linux constant.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

/// Runs the load on a one-thread runtime pinned to the load generator's CPUs, within the cap.
pub(super) fn run_load(
    plan: &LoadPlan,
    cpus: &CpuPlan,
    cap_s: f64,
) -> Result<load::LoadReport, MeasureError> {
    let pin = cpus.load.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("servesim-measure")
        .enable_all()
        .on_thread_start(move || {
            let _ = crate::affinity::pin(&pin);
        })
        .build()
        .map_err(|e| setup("start the load generator's runtime", e))?;
    let plan = plan.clone();
    let cap = Duration::from_secs_f64(cap_s.max(0.001));
    let run = rt.spawn(async move { tokio::time::timeout(cap, load::run(&plan, None)).await });
    let out = rt.block_on(run).map_err(|e| setup("run the load generator", e));
    rt.shutdown_background();
    match out? {
        Ok(report) => Ok(report?),
        Err(_) => Err(MeasureError::WallCap(cap_s)),
    }
}

/// The simulator's window: drop `warmup` completions, measure up to `run.requests` more
/// (all of them for bursts and traces).
fn window<'a>(sc: &Scenario, ok: &'a [&'a RequestRecord], warmup: u64) -> (u64, &'a [&'a RequestRecord]) {
    let w = (warmup as usize).min(ok.len());
    let start_us = if w == 0 { 0 } else { ok[w - 1].done_us };
    let rest = &ok[w..];
    let n = match sc.clients.kind {
        ClientKind::Closed | ClientKind::Open => rest.len().min(sc.run.requests as usize),
        ClientKind::Burst | ClientKind::Trace => rest.len(),
    };
    (start_us, &rest[..n])
}

/// What one load run produced.
pub(super) struct Run {
    pub(super) records: Vec<RequestRecord>,
    pub(super) warmup: u64,
    pub(super) before: Vec<WorkerStats>,
    pub(super) after: Vec<WorkerStats>,
    pub(super) wall_s: f64,
    pub(super) cpus: CpuPlan,
    /// The host's steal during the run (0–1).
    pub(super) steal: f64,
}

pub(super) fn summarize(sc: &Scenario, run: &Run) -> MeasureReport {
    let (records, after) = (&run.records, &run.after);
    let mut ok: Vec<&RequestRecord> = records.iter().filter(|r| r.is_ok()).collect();
    ok.sort_by_key(|r| r.done_us);
    let (start_us, measured) = window(sc, &ok, run.warmup);
    let span_s = measured.last().map_or(0.0, |r| r.done_us.saturating_sub(start_us) as f64 / 1e6);
    let (mut latency, mut service) = (LatencyHistogram::new(), LatencyHistogram::new());
    measured.iter().for_each(|r| latency.record(r.latency_us() * 1_000));
    ok.iter().filter_map(|r| r.service_us()).for_each(|s| service.record(s * 1_000));
    let mut errors_by_kind = BTreeMap::new();
    for r in records {
        if let Some(k) = r.error {
            *errors_by_kind.entry(k.name().to_owned()).or_insert(0) += 1;
        }
    }
    let (utilization, waits_ms, mean_in_system) = server_figures(sc, run);
    let (server_timing, malformed) =
        StageStats::of(measured.iter().filter_map(|r| r.server_timing.as_deref()));
    MeasureReport {
        scenario: sc.display_name().to_owned(),
        backend: "measure".into(),
        throughput_rps: if span_s > 0.0 { measured.len() as f64 / span_s } else { 0.0 },
        latency_ms: latency.summary(),
        waits_ms,
        utilization,
        mean_in_system,
        completed: measured.len() as u64,
        errors: errors_by_kind.values().sum(),
        rejected: records.iter().filter(|r| r.status == Some(503)).count() as u64,
        errors_by_kind,
        sent: records.len() as u64,
        window_s: span_s,
        wall_s: run.wall_s,
        service_ms: service.summary(),
        memory_mb: after.iter().map(|w| w.rss_kb as f64 / 1024.0).sum(),
        workers: after
            .iter()
            .zip(&run.before)
            .map(|(a, b)| WorkerReport {
                pid: a.pid,
                rss_kb: a.rss_kb,
                completed: a.requests.completed.saturating_sub(b.requests.completed),
                connections: a.connections.saturating_sub(b.connections),
            })
            .collect(),
        cpus: run.cpus.clone(),
        load_cpu_ms_per_request: 0.0,
        notes: malformed
            .map(|m| format!("{m}; its stages were left out"))
            .into_iter()
            .chain(steal_note(run.steal))
            .collect(),
        host_steal_pct: run.steal * 100.0,
        server_timing,
        window: Window {
            start_us,
            done_us: measured.iter().map(|r| r.done_us).collect(),
            latency_us: measured.iter().map(|r| r.latency_us()).collect(),
        },
    }
}

/// What a run the host stole from must say.
fn steal_note(steal: f64) -> Option<String> {
    (steal > STEAL_LIMIT).then(|| {
        format!(
            "the host (this machine is a virtual one) kept its CPUs from it {:.1}% of the time they \
             were ready to run (steal, /proc/stat): above {:.0}%, these figures are the host's as much as \
             the service's; measure again when it is quieter",
            steal * 100.0,
            STEAL_LIMIT * 100.0
        )
    })
}

/// Utilizations, mean waits and the mean number in the server, from `/stats` deltas.
fn server_figures(sc: &Scenario, run: &Run) -> (Utilization, Waits, f64) {
    let wall_ms = (run.wall_s * 1e3).max(1e-9);
    let d =
        |f: fn(&WorkerStats) -> f64| run.after.iter().zip(&run.before).map(|(a, b)| f(a) - f(b)).sum::<f64>();
    let workers = run.after.len().max(1) as f64;
    // The CPUs the server actually had (system.cores, or fewer on a small machine).
    let cores = run.cpus.server.0.len().max(1) as f64;
    let threads = workers * f64::from(sc.worker.threads);
    let utilization = Utilization {
        cores: d(|s| s.process_cpu_ms) / (wall_ms * cores),
        lock: if sc.worker.lock == LockKind::None {
            0.0
        } else {
            d(|s| s.lock_stats.held_ms) / (wall_ms * workers)
        },
        threads: match sc.worker.handler {
            Handler::AsyncBlocking => 0.0,
            _ => d(|s| s.pool.busy_ms) / (wall_ms * threads),
        },
        event_loop: d(|s| s.loop_cpu_ms) / (wall_ms * workers),
    };
    let n = d(|s| s.requests.completed as f64).max(1.0);
    let waits = Waits {
        thread: d(|s| s.sums.thread_wait_ms) / n,
        lock: d(|s| s.sums.lock_wait_ms) / n,
        event_loop: d(|s| s.sums.queue_wait_ms) / n,
    };
    (utilization, waits, d(|s| s.sums.total_ms) / wall_ms)
}

fn notes(sc: &Scenario, cpus: &CpuPlan, clean: bool) -> Vec<String> {
    let mut out = Vec::new();
    if cpus.shared {
        out.push(format!(
            "the server (CPUs {}) and the load generator share CPUs: its CPU per request is reported \
             (load_cpu_ms_per_request) for calibration to account for",
            cpus.server
        ));
    } else {
        out.push(format!("server on CPUs {}, load generator on CPUs {}", cpus.server, cpus.load));
    }
    if (sc.system.cores as usize) > cpus.server.0.len() {
        out.push(format!(
            "system.cores = {} but only {} CPUs are available: the server ran on {}",
            sc.system.cores,
            cpus.server.0.len(),
            cpus.server
        ));
    }
    if sc.cost.release_points > 1 || sc.cost.handoff_us > 0.0 {
        out.push(
            "cost.release_points and cost.handoff_us describe the real server; it releases the lock \
             around each matmul kernel and pays real hand-offs"
                .into(),
        );
    }
    if !clean {
        out.push("the server did not stop cleanly (see its stderr)".into());
    }
    out
}

impl MeasureReport {
    /// A readable table of the figures.
    pub fn table(&self, sc: &Scenario) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} — measured, {} requests sent, {} measured",
            self.scenario, self.sent, self.completed
        );
        let _ = writeln!(out, "  {}\n", crate::experiment::simulate::describe(sc));
        let mut row = |name: &str, v: f64, unit: &str| {
            let _ = writeln!(out, "  {name:<22} {v:>12.3}  {unit}");
        };
        row("throughput", self.throughput_rps, "req/s");
        let l = &self.latency_ms;
        for (q, v) in [("mean", l.mean), ("p50", l.p50), ("p95", l.p95), ("p99", l.p99), ("max", l.max)] {
            row(&format!("latency {q}"), v, "ms");
        }
        row("wait for a thread", self.waits_ms.thread, "ms");
        row("wait for the lock", self.waits_ms.lock, "ms");
        row("wait for the loop", self.waits_ms.event_loop, "ms");
        if let Some(t) = &self.server_timing {
            let names = ["queue", "lock", "held", "free", "loop"];
            for (name, (mean, p95)) in names.iter().zip(t.mean.values().into_iter().zip(t.p95.values())) {
                if let (Some(mean), Some(p95)) = (mean, p95) {
                    row(&format!("stage {name} mean"), mean, "ms");
                    row(&format!("stage {name} p95"), p95, "ms");
                }
            }
        }
        let u = &self.utilization;
        for (name, v) in
            [("cores", u.cores), ("lock", u.lock), ("threads", u.threads), ("loop", u.event_loop)]
        {
            row(&format!("utilization {name}"), 100.0 * v, "%");
        }
        row("mean in system", self.mean_in_system, "requests");
        row("errors", self.errors as f64, "requests");
        row("memory (all workers)", self.memory_mb, "MB");
        for n in &self.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn scenario(toml: &str) -> Scenario {
        Scenario::parse(toml, Path::new("t"), Path::new("."), &[]).unwrap()
    }

    #[test]
    fn bodies_carry_the_prompt_length_and_constant_tokens() {
        let b: serde_json::Value = serde_json::from_str(&body(&scenario(""), 128).unwrap()).unwrap();
        assert_eq!(b["sentence"].as_str().unwrap().chars().count(), 40);
        assert_eq!(b["max_new_tokens"], 20);
        let sc = scenario("[workload]\nnew_tokens = { dist = \"uniform\", min = 5, max = 9 }\n");
        let b: serde_json::Value = serde_json::from_str(&body(&sc, 128).unwrap()).unwrap();
        assert!(b.get("max_new_tokens").is_none(), "the server draws it");
        for bad in
            ["[workload]\nprompt_chars = 0", "[workload]\nprompt_chars = 127", "[workload]\nnew_tokens = 100"]
        {
            assert!(matches!(body(&scenario(bad), 128), Err(MeasureError::Unsupported { .. })), "{bad}");
        }
    }

    #[test]
    fn clients_map_onto_the_load_generator() {
        let (m, s, w) =
            clients(&scenario("[clients]\nusers = 4\n[run]\nrequests = 100\nwarmup_requests = 10"));
        assert_eq!((m.name(), s, w), ("closed", Stop::Requests(114), 10));
        let (m, s, _) =
            clients(&scenario("[clients]\nkind = \"open\"\nrate_rps = 5\narrivals = \"constant\""));
        assert_eq!((m, s), (Mode::Open { rate_rps: 5.0, poisson: false }, Stop::Requests(11_000)));
        let (m, s, w) = clients(&scenario("[clients]\nkind = \"burst\"\nburst = 7"));
        assert_eq!((m, s, w), (Mode::Burst { n: 7 }, Stop::Requests(7), 0));
    }

    #[test]
    fn the_window_drops_the_warm_up_and_stops_at_run_requests() {
        let rec = |i: u64| RequestRecord {
            index: i,
            intended_us: i * 10,
            sent_us: Some(i * 10),
            done_us: i * 10 + 5,
            status: Some(200),
            error: None,
            body: None,
            server_timing: None,
            worker_pid: None,
        };
        let records: Vec<RequestRecord> = (0..20).map(rec).collect();
        let ok: Vec<&RequestRecord> = records.iter().collect();
        let sc = scenario("[run]\nrequests = 10\nwarmup_requests = 3");
        let (start, measured) = window(&sc, &ok, 3);
        assert_eq!((start, measured.len(), measured[0].index), (25, 10, 3));
    }
}
