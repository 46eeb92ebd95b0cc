//! `servesim calibrate`: the real server's own costs on this machine, as a calibration file
//! that scenarios reference with `cost.calibration`.
//!
//! ```text
//!  1. server, 1 thread, GIL, 1 client ─► each response's timing, minus the nominal
//!     emulated work (what emulating it costs beyond nominal stays in):
//!       (matmul + busy_free) / tokens         → token_free_ms   (the GIL-free kernels)
//!       (compute − the above) / tokens        → token_locked_ms (model code outside kernels)
//!       client latency − compute − lock wait  → loop_in_ms + loop_out_ms (HTTP, JSON, dispatch)
//!  2. as many clients as cores to as many pool threads behind the GIL: the lock's held
//!     time per request beyond the single client's, per hand-off ─► handoff_us
//!  3. the batch scheduler's step at B = 1, 2, 4 …, with the GIL and emulated step work
//!     (nominal taken out) ─► batch_steps (locked = outside kernels, free = kernels);
//!     a joining sequence's prefill ─► prefill_locked_ms, prefill_free_ms
//! ```
//!
//! Every cost is kept as its samples (an empirical distribution), so the simulator draws
//! what the machine did, tails included. One calibration serves every point of a
//! validation: the emulated work a point adds (`cost.*`) is added on top in both backends.

use super::machine;
use crate::gpt::Model;
use crate::scenario::BatchStep;
use crate::scenario::{BatchingMode, CALIBRATION_FORMAT, Calibration, Handler, LockKind, Scenario};
use crate::server::client::Connection;
use crate::server::{
    self, CorrectResponse, CpuPlan, Gil, LaunchOptions, Limits, ServerConfig, ServerProcess,
};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Why a calibration could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    /// The server refused the configuration.
    #[error(transparent)]
    Config(#[from] server::ConfigError),
    /// The server could not be started or stopped.
    #[error(transparent)]
    Launch(#[from] server::LaunchError),
    /// A request to the server failed.
    #[error("calibration request {index} failed: {message}")]
    Request {
        /// Which request.
        index: u32,
        /// What went wrong.
        message: String,
    },
    /// The model could not be loaded.
    #[error(transparent)]
    Model(#[from] crate::gpt::GptError),
    /// Bad options.
    #[error("{0}")]
    Options(String),
    /// A calibration file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// How to calibrate.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrateOptions {
    /// The `servesim` binary. By default, found by [`server::find_binary`].
    pub binary: Option<PathBuf>,
    /// The Mini-GPT directory. By default, [`server::resolve_model_dir`]`(None)`.
    pub model_dir: Option<PathBuf>,
    /// Requests measured from one client (after `warmup`).
    pub requests: u32,
    /// Requests sent first and not kept.
    pub warmup: u32,
    /// Lock hand-offs timed.
    pub handoffs: u32,
    /// Batch sizes whose step is timed (empty: none).
    pub batch_sizes: Vec<u32>,
    /// Steps timed per batch size.
    pub batch_samples: u32,
}

impl Default for CalibrateOptions {
    fn default() -> Self {
        Self {
            binary: None,
            model_dir: None,
            requests: 300,
            warmup: 30,
            handoffs: 2000,
            batch_sizes: vec![1, 2, 4, 8, 16, 32],
            batch_samples: 40,
        }
    }
}

/// The scenario the server is calibrated with: its CPUs, prompt, tokens and emulated work,
/// one worker with one thread and its lock, or the GIL if it has none (so lock operations
/// are paid), no batching.
fn bare(sc: &Scenario) -> Scenario {
    let mut s = sc.clone();
    s.system.workers = 1;
    s.worker.handler = Handler::Sync;
    s.worker.threads = 1;
    // The scenario's own lock, so that the contended run and the hand-off fit see it; the GIL
    // when it has none.
    if s.worker.lock == LockKind::None {
        s.worker.lock = LockKind::Gil;
    }
    s.batching.mode = BatchingMode::None;
    s
}

/// Means of the emulated work the server adds per request (ms): (loop, locked, free), where
/// locked and free are (per request, per token).
struct Nominal {
    loop_ms: f64,
    locked: (f64, f64),
    free: (f64, f64),
}

impl Nominal {
    fn of(c: &crate::server::EmulatedCost) -> Self {
        Self {
            loop_ms: c.loop_in_free_ms.mean()
                + c.loop_in_ms.mean()
                + c.loop_out_ms.mean()
                + c.loop_out_free_ms.mean(),
            locked: (c.request_locked_ms.mean(), c.token_locked_ms.mean()),
            free: (c.request_free_ms.mean(), c.token_free_ms.mean()),
        }
    }
}

/// Measures the real costs of the server that `sc` describes (its CPUs, prompt length and
/// tokens per request). `progress` is told each stage as it starts.
pub fn calibrate(
    sc: &Scenario,
    opts: &CalibrateOptions,
    mut progress: impl FnMut(&str),
) -> Result<Calibration, CalibrateError> {
    if opts.requests == 0 {
        return Err(CalibrateError::Options("--requests must be ≥ 1".into()));
    }
    let model_dir = server::resolve_model_dir(opts.model_dir.as_deref());
    let bare = bare(sc);
    let config = ServerConfig::from_scenario(&bare, Limits::default(), model_dir.clone())?;
    let allowed = server::affinity::allowed()
        .map_err(|e| CalibrateError::Options(format!("cannot read the CPU affinity: {e}")))?;
    let cpus = CpuPlan::split(&allowed, sc.system.cores as usize);
    let launch = LaunchOptions {
        binary: opts.binary.clone(),
        cpus: Some(cpus.server.clone()),
        ..LaunchOptions::default()
    };
    progress("single-client requests on the real server");
    let srv = ServerProcess::start(&config, &launch)?;
    let single = requests(&srv, sc, &Nominal::of(&config.cost), opts);
    let _ = srv.stop(Duration::from_secs(10));
    let Single { samples, loop_ms: loop_cpu_ms } = single?;
    // Under CPython's GIL a hand-off is a wake-up, measured below; the fair locks' hand-off
    // cost is fitted to a contended run of the real server.
    let fair_lock = matches!(sc.worker.lock, LockKind::Mutex | LockKind::FairGil);
    let contended = if fair_lock {
        progress("lock hand-offs on the real server");
        contended(&config, &launch, sc, opts)?
    } else {
        None
    };
    progress("wake-ups of a parked thread");
    let wake = wake_costs();
    progress("batched steps");
    let model = Model::load(&model_dir)?;
    let batch_steps = batch_steps(&model, sc, opts);
    let (prefill_locked_ms, prefill_free_ms) = prefill(&model, sc.workload.prompt_chars as usize, opts);
    let n = samples.len();
    let mut cal = Calibration {
        format: CALIBRATION_FORMAT,
        machine: machine(),
        method: format!(
            "{n} requests from one client after {} warm-up ({} prompt characters, tokens as \
             workload.new_tokens), server on CPUs {} with 1 thread, the GIL and the scenario's \
             emulated work (its nominal mean taken out); loop work: the event loop's CPU time per \
             request; rtt: the rest of each request's time outside the handler; \
             {} batched steps per batch size and prefills, on the batch scheduler's own code \
             path with the GIL and emulated step work (nominal taken out)",
            opts.warmup, sc.workload.prompt_chars, cpus.server, opts.batch_samples
        ),
        kernels_per_token: model.config().kernels_per_token() as u32,
        batch_steps,
        prefill_locked_ms,
        prefill_free_ms,
        ..Calibration::default()
    };
    // The event loop's CPU per request, half before and half after the handler; the rest of
    // each request's time outside the handler is spent off the server's threads.
    let loop_ms = loop_cpu_ms.min(samples.iter().map(|s| s.overhead_ms).sum::<f64>() / n.max(1) as f64);
    cal.loop_in_ms = vec![loop_ms / 2.0];
    cal.loop_out_ms = vec![loop_ms / 2.0];
    for s in samples {
        cal.rtt_ms.push((s.overhead_ms - loop_ms).max(0.0));
        cal.token_locked_ms.push(s.token_locked_ms);
        cal.token_free_ms.push(s.token_free_ms);
    }
    // The per-request part is folded into the tokens (the prefill is the first token's pass).
    cal.request_locked_ms = vec![0.0];
    cal.request_free_ms = vec![0.0];
    cal.wake_us = wake.samples_us;
    cal.vain_wake_us = wake.vain.median;
    cal.unstable = [("wake_us", &wake.latency), ("vain_wake_us", &wake.vain)]
        .iter()
        .filter(|(_, r)| !r.stable)
        .map(|(name, _)| name.to_string())
        .collect();
    let wake_note = format!(
        "wake-ups: {} rounds of {WAKE_PER_ROUND} signals to a parked thread, median latency {:.1} µs \
         (rounds' spread {:.0}%), CPU of a vain wake-up {:.2} µs (spread {:.0}%)",
        wake.latency.rounds.len(),
        wake.latency.median,
        wake.latency.spread * 100.0,
        wake.vain.median,
        wake.vain.spread * 100.0
    );
    (cal.wake_rounds, cal.vain_wake_rounds) = (Some(wake.latency), Some(wake.vain));
    if !fair_lock {
        cal.method =
            format!("{}; {wake_note}; no hand-off cost (CPython's GIL hands nothing over)", cal.method);
        return Ok(cal);
    }
    let n = contenders(sc);
    let fitted = contended.as_ref().and_then(|c| fit_handoff_us(sc, &cal, n, c.throughput_rps));
    let handoff = match (&contended, fitted) {
        (Some(c), Some(h)) => {
            cal.handoff_us = h;
            format!(
                "hand-off: the cost at which the simulator holds the {:.1} req/s that {n} clients \
                 to {n} pool threads behind the GIL held on the server ({:.0} hand-offs per request)",
                c.throughput_rps, c.handoffs_per_request
            )
        }
        _ => {
            cal.handoff_us = server::gil::handoff::measure(opts.handoffs.max(10));
            format!(
                "hand-off: {} lock hand-offs among four threads (the server run passed none)",
                opts.handoffs
            )
        }
    };
    cal.method = format!("{}; {wake_note}; {handoff}", cal.method);
    Ok(cal)
}

/// Wake-ups timed per round.
const WAKE_PER_ROUND: u32 = 200;
/// Rounds first measured, and the most measured when they disagree.
const WAKE_ROUNDS: (usize, usize) = (5, 9);
/// The relative interquartile spread of the rounds' medians that counts as agreement: a
/// wake-up's latency moves with the idle state its core is in, so rounds a few minutes
/// apart differ by some tens of percent on a shared machine; past a quarter they describe
/// different machines.
const WAKE_SPREAD: f64 = 0.25;

/// A parked thread's wake-up costs on this machine, from rounds that agree.
#[derive(Debug, Clone, PartialEq)]
pub struct Wake {
    /// Latency samples of the rounds that are not outliers (µs).
    pub samples_us: Vec<f64>,
    /// Each round's median latency (µs), judged.
    pub latency: crate::stats::Rounds,
    /// Each round's CPU per vain wake-up (µs), judged.
    pub vain: crate::stats::Rounds,
}

/// Measures wake-ups in rounds (what `calibrate` records as `wake_us` and `vain_wake_us`);
/// rounds that disagree beyond a quarter of their median are measured again, up to nine
/// rounds in all. About a second.
pub fn wake_costs() -> Wake {
    use crate::stats::Rounds;
    let median = |v: &[f64]| Rounds::judge(v, WAKE_SPREAD).map_or(0.0, |r| r.median);
    let mut rounds: Vec<(Vec<f64>, f64)> = Vec::new();
    loop {
        let w = server::gil::wake::measure(WAKE_PER_ROUND);
        rounds.push((w.latency_us, w.vain_cpu_us));
        if rounds.len() < WAKE_ROUNDS.0 {
            continue;
        }
        let medians: Vec<f64> = rounds.iter().map(|(l, _)| median(l)).collect();
        let vains: Vec<f64> = rounds.iter().map(|r| r.1).collect();
        let latency = Rounds::judge(&medians, WAKE_SPREAD).expect("rounds were measured");
        let vain = Rounds::judge(&vains, WAKE_SPREAD).expect("rounds were measured");
        if (latency.stable && vain.stable) || rounds.len() >= WAKE_ROUNDS.1 {
            let samples_us = rounds
                .iter()
                .zip(&medians)
                .filter(|(_, m)| !latency.outliers.contains(m))
                .flat_map(|((l, _), _)| l.iter().copied())
                .collect();
            return Wake { samples_us, latency, vain };
        }
    }
}

struct Sample {
    overhead_ms: f64,
    token_locked_ms: f64,
    token_free_ms: f64,
}

/// The request the calibration sends: the scenario's prompt length and its mean tokens.
fn body(sc: &Scenario) -> String {
    let tokens = match sc.workload.new_tokens {
        crate::workload::Dist::Const(n) => n.round().max(1.0) as u32,
        ref d => d.mean().round().max(1.0) as u32,
    };
    let sentence: String = "the quick brown fox jumps over the lazy dog "
        .chars()
        .cycle()
        .take(sc.workload.prompt_chars.max(1) as usize)
        .collect();
    serde_json::json!({ "sentence": sentence, "max_new_tokens": tokens }).to_string()
}

/// One request on `conn`, answered 200.
fn send(conn: &mut Connection, body: &str, index: u32) -> Result<CorrectResponse, CalibrateError> {
    let fail = |message: String| CalibrateError::Request { index, message };
    let resp = conn
        .request("POST", "/correct", Some(body.as_bytes()), &[("Content-Type", "application/json")])
        .map_err(|e| fail(e.to_string()))?;
    if resp.status != 200 {
        return Err(fail(format!("status {}: {}", resp.status, String::from_utf8_lossy(&resp.body))));
    }
    resp.json().map_err(|e| fail(e.to_string()))
}

/// What the single-client run measured.
struct Single {
    samples: Vec<Sample>,
    /// The event loop's CPU per request beyond its nominal emulated work (ms).
    loop_ms: f64,
}

/// Sends the scenario's request from one keep-alive client and splits each response's time;
/// also returns, from the server's own counters, the event loop's mean CPU time per measured
/// request (before its nominal emulated loop work).
///
/// The server does the scenario's emulated work too, so that what emulating it costs beyond
/// its nominal amount (timer reads, lock operations at every slice) is measured with the
/// real costs: each sample is the measured time minus the nominal emulated mean.
fn requests(
    srv: &ServerProcess,
    sc: &Scenario,
    nominal: &Nominal,
    opts: &CalibrateOptions,
) -> Result<Single, CalibrateError> {
    let body = body(sc);
    let mut conn = Connection::open(srv.addr(), Duration::from_secs(30))
        .map_err(|e| CalibrateError::Request { index: 0, message: e.to_string() })?;
    let mut out = Vec::with_capacity(opts.requests as usize);
    let mut before = if opts.warmup == 0 { Some(counters(srv)?) } else { None };
    for i in 0..opts.warmup + opts.requests {
        let t0 = Instant::now();
        let r = send(&mut conn, &body, i)?;
        let latency_ms = t0.elapsed().as_secs_f64() * 1e3;
        if i < opts.warmup {
            if i + 1 == opts.warmup {
                before = Some(counters(srv)?);
            }
            continue;
        }
        let t = &r.timing;
        let n = f64::from(t.tokens.max(1));
        let free = t.matmul_ms + t.busy_free_ms;
        let locked = t.compute_ms - free;
        out.push(Sample {
            overhead_ms: (latency_ms - t.compute_ms - t.lock_wait_ms - nominal.loop_ms).max(0.0),
            token_locked_ms: ((locked - nominal.locked.0) / n - nominal.locked.1).max(0.0),
            token_free_ms: ((free - nominal.free.0) / n - nominal.free.1).max(0.0),
        });
    }
    let used = counters(srv)?.since(&before.unwrap_or_default());
    let n = f64::from(opts.requests);
    Ok(Single { samples: out, loop_ms: (used.loop_cpu_ms / n - nominal.loop_ms).max(0.0) })
}

/// The server's cumulative counters that calibration reads, summed over workers.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    loop_cpu_ms: f64,
    held_ms: f64,
    handoffs: u64,
    completed: u64,
}

impl Counters {
    fn since(&self, before: &Counters) -> Counters {
        Counters {
            loop_cpu_ms: self.loop_cpu_ms - before.loop_cpu_ms,
            held_ms: self.held_ms - before.held_ms,
            handoffs: self.handoffs.saturating_sub(before.handoffs),
            completed: self.completed.saturating_sub(before.completed),
        }
    }
}

fn counters(srv: &ServerProcess) -> Result<Counters, CalibrateError> {
    let stats =
        srv.stats().map_err(|e| CalibrateError::Request { index: 0, message: format!("/stats: {e}") })?;
    Ok(stats.iter().fold(Counters::default(), |c, w| Counters {
        loop_cpu_ms: c.loop_cpu_ms + w.loop_cpu_ms,
        held_ms: c.held_ms + w.lock_stats.held_ms,
        handoffs: c.handoffs + w.lock_stats.handoffs,
        completed: c.completed + w.requests.completed,
    }))
}

/// Threads (and clients) of the contended run: one more than the scenario's cores (at
/// least three), so that waiters for the lock outnumber the cores as in a loaded pool — and
/// a configuration the validation suite does not measure.
fn contenders(sc: &Scenario) -> u32 {
    sc.system.cores.max(2) + 1
}

/// What the contended run measured.
struct Contended {
    /// Requests per second of the measured part.
    throughput_rps: f64,
    /// Lock hand-offs per request.
    handoffs_per_request: f64,
}

/// The scenario's request from [`contenders`] clients at once to as many pool threads
/// behind the GIL, so that releases around kernels hand the lock to parked waiters: the
/// throughput it holds and the hand-offs per request, from the server's own counters.
/// `None` when the run passed no hand-off.
fn contended(
    config: &ServerConfig,
    launch: &LaunchOptions,
    sc: &Scenario,
    opts: &CalibrateOptions,
) -> Result<Option<Contended>, CalibrateError> {
    let n = contenders(sc);
    let mut config = config.clone();
    config.threads = n;
    let srv = ServerProcess::start(&config, launch)?;
    let result = contended_run(&srv, sc, opts, n);
    let _ = srv.stop(Duration::from_secs(10));
    let (used, wall_s) = result?;
    if used.handoffs == 0 || used.completed == 0 || wall_s <= 0.0 {
        return Ok(None);
    }
    Ok(Some(Contended {
        throughput_rps: used.completed as f64 / wall_s,
        handoffs_per_request: used.handoffs as f64 / used.completed as f64,
    }))
}

/// The hand-off cost (µs) at which the simulator, given everything else this calibration
/// measured, holds the contended run's throughput: one number for a mechanism (waking a
/// parked thread to take the lock, its caches cold), taken from a run of its own and used
/// for every point. Bisection; the simulated throughput falls as the cost grows.
fn fit_handoff_us(sc: &Scenario, cal: &Calibration, n: u32, want_rps: f64) -> Option<f64> {
    let mut base = bare(sc);
    base.worker.threads = n;
    base.clients.kind = crate::scenario::ClientKind::Closed;
    base.clients.users = n;
    base.clients.think_ms = crate::workload::Dist::Const(0.0);
    base.run.requests = 3000;
    base.run.warmup_requests = 300;
    base.run.replications = 3;
    let rate = |h: f64| -> Option<f64> {
        let mut c = cal.clone();
        c.handoff_us = h;
        let mut s = base.clone();
        c.apply(&mut s, Path::new("calibration")).ok()?;
        crate::sim::simulate(&s).ok().map(|r| r.figures.throughput_rps)
    };
    let (mut lo, mut hi) = (0.0, 1000.0);
    if rate(lo)? <= want_rps {
        return Some(0.0);
    }
    if rate(hi)? >= want_rps {
        return Some(hi);
    }
    for _ in 0..14 {
        let mid = (lo + hi) / 2.0;
        if rate(mid)? > want_rps { lo = mid } else { hi = mid }
    }
    Some((lo + hi) / 2.0)
}

/// `n` clients sending at once: a warm-up, then half of `opts.requests` requests in all
/// (a throughput needs fewer than the single client's distributions); the server's
/// counters over the measured part and its wall time (s).
fn contended_run(
    srv: &ServerProcess,
    sc: &Scenario,
    opts: &CalibrateOptions,
    n: u32,
) -> Result<(Counters, f64), CalibrateError> {
    let body = body(sc);
    let per_client = (opts.requests / 2).div_ceil(n).max(1);
    let warmup = opts.warmup.div_ceil(n).max(1);
    let barrier = Barrier::new(n as usize + 1);
    let addr = srv.addr();
    std::thread::scope(|scope| {
        let clients: Vec<_> = (0..n)
            .map(|_| {
                let (body, barrier) = (&body, &barrier);
                scope.spawn(move || -> Result<(), CalibrateError> {
                    let conn = Connection::open(addr, Duration::from_secs(30))
                        .map_err(|e| CalibrateError::Request { index: 0, message: e.to_string() });
                    let mut conn = match conn {
                        Ok(c) => c,
                        Err(e) => {
                            barrier.wait();
                            barrier.wait();
                            return Err(e);
                        }
                    };
                    let warm = (0..warmup).try_for_each(|i| send(&mut conn, body, i).map(drop));
                    barrier.wait();
                    barrier.wait();
                    warm?;
                    (0..per_client).try_for_each(|i| send(&mut conn, body, warmup + i).map(drop))
                })
            })
            .collect();
        barrier.wait();
        let before = counters(srv);
        let t0 = Instant::now();
        barrier.wait();
        let outcomes: Vec<_> = clients.into_iter().map(|c| c.join()).collect();
        let wall_s = t0.elapsed().as_secs_f64();
        for o in outcomes {
            match o {
                Ok(r) => r?,
                Err(_) => return Err(CalibrateError::Options("a calibration client panicked".into())),
            }
        }
        Ok((counters(srv)?.since(&before?), wall_s))
    })
}

/// The calibration prompt: `prompt_chars` characters of a pangram, at most half the
/// model's context.
fn prompt(model: &Model, prompt_chars: usize) -> String {
    let chars = prompt_chars.clamp(1, model.config().context / 2);
    "the quick brown fox jumps over the lazy dog ".chars().cycle().take(chars).collect()
}

/// Milliseconds of a duration.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The prompt's forward pass as a request joining a batch pays it on the server (the GIL
/// dropped around every kernel), timed `batch_samples` times: (outside kernels, inside) (ms).
fn prefill(model: &Model, prompt_chars: usize, opts: &CalibrateOptions) -> (Vec<f64>, Vec<f64>) {
    if opts.batch_sizes.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let prompt = prompt(model, prompt_chars);
    let gil = Arc::new(Gil::new(Some(Duration::from_millis(5))));
    let (mut locked, mut free) = (Vec::new(), Vec::new());
    for i in 0..opts.batch_samples + 3 {
        let (started, t) = server::time_prefill(model, Some(Arc::clone(&gil)), &prompt, 1);
        if started.is_err() {
            break;
        }
        if i >= 3 {
            free.push(ms(t.matmul));
            locked.push(ms(t.compute.saturating_sub(t.matmul)));
        }
    }
    (locked, free)
}

/// The emulated (locked, free) work of one batched step of `b` sequences in `sc` (ns): its
/// `batching.step_*` and `seq_*` means, or, when those are all zero, one token's
/// (`cost.token_*`), so that the emulation's own overhead is measured with work to do.
fn nominal_step_ns(sc: &Scenario, b: u32) -> (u64, u64) {
    let (bt, bf) = (&sc.batching, f64::from(b));
    let mut locked = bt.step_locked_ms.mean() + bf * bt.seq_locked_ms.mean();
    let mut free = bt.step_free_ms.mean() + bf * bt.seq_free_ms.mean();
    if locked == 0.0 && free == 0.0 {
        (locked, free) = (sc.cost.token_locked_ms.mean(), sc.cost.token_free_ms.mean());
    }
    (server::busy::ms_to_ns(locked), server::busy::ms_to_ns(free))
}

/// One step's (locked, free) time at each batch size, on the server's own code path: the
/// batch scheduler's step with the GIL and `sc`'s emulated step work, less that work's
/// nominal amount (so that what emulating it costs beyond nominal — clock reads and lock
/// operations at every slice — stays in the measured cost, as it does for tokens).
fn batch_steps(model: &Model, sc: &Scenario, opts: &CalibrateOptions) -> Vec<BatchStep> {
    let context = model.config().context;
    let prompt = prompt(model, sc.workload.prompt_chars as usize);
    let room = context.saturating_sub(prompt.chars().count() + 2).max(2);
    let gil = Arc::new(Gil::new(Some(Duration::from_millis(5))));
    let mut ws = crate::gpt::Workspace::default();
    opts.batch_sizes
        .iter()
        .map(|&b| {
            let start = || {
                (0..b)
                    .map(|_| model.start(&prompt, room, false, &mut crate::gpt::NoHooks))
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap_or_default()
            };
            let nominal = nominal_step_ns(sc, b);
            let (nominal_locked, nominal_free) = (nominal.0 as f64 / 1e6, nominal.1 as f64 / 1e6);
            let mut seqs = start();
            let mut step = BatchStep { batch: b, locked_ms: Vec::new(), free_ms: Vec::new() };
            for i in 0..opts.batch_samples + 3 {
                if seqs.is_empty() || seqs.iter().any(|s| s.is_finished()) {
                    seqs = start();
                }
                let mut refs: Vec<_> = seqs.iter_mut().collect();
                let t = server::time_batched_step(model, &mut ws, Some(Arc::clone(&gil)), &mut refs, nominal);
                if i >= 3 {
                    let free = ms(t.matmul) + ms(t.busy_free);
                    let locked = ms(t.compute) - free;
                    step.free_ms.push((free - nominal_free).max(0.0));
                    step.locked_ms.push((locked - nominal_locked).max(0.0));
                }
            }
            step
        })
        .collect()
}

/// The calibration at `path` when it was taken on this machine (same host, CPU model and
/// CPU count); otherwise a new one, calibrated with `sc` and `opts` and written to `path`.
/// Examples and tests use it so that one calibration serves every run on a machine.
pub fn calibration_at(
    path: &Path,
    sc: &Scenario,
    opts: &CalibrateOptions,
    progress: impl FnMut(&str),
) -> Result<Calibration, CalibrateError> {
    let here = machine();
    if let Ok(cal) = Calibration::read(path) {
        let m = &cal.machine;
        if (m.hostname.as_str(), m.cpu_model.as_str(), m.cpus) == (&here.hostname, &here.cpu_model, here.cpus)
        {
            return Ok(cal);
        }
    }
    let cal = calibrate(sc, opts, progress)?;
    write_calibration(&cal, path)?;
    Ok(cal)
}

/// Writes a calibration as pretty JSON, creating its directory.
pub fn write_calibration(cal: &Calibration, path: &Path) -> Result<(), CalibrateError> {
    let fail = |e: &dyn std::fmt::Display| CalibrateError::File { path: path.into(), message: e.to_string() };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    }
    let json = serde_json::to_vec_pretty(cal).map_err(|e| fail(&e))?;
    std::fs::write(path, json).map_err(|e| fail(&e))
}
