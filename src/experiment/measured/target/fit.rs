//! `servesim calibrate --target`: a service calibrated from outside — one client, a short
//! ramp of closed-loop users, and the simulator fitted to the ramp.
//!
//! ```text
//!  a. one client: service-time samples T (mean T₁, cv), the health URL's round trip (rtt),
//!     each response's Server-Timing (queue, lock, held, free, loop) when it sends one
//!  b. ramp: closed loops of 1, 2, c, c + 1, 2c, 4c users (c = system.cores); and, when the
//!     target takes `{cpus}` and c > 1, 2 and 4 users on one core: there nothing runs in
//!     parallel, so what the lock costs beyond the work is its hand-offs alone, which sets
//!     `w` apart from `h` (on c cores a larger `h` and dearer hand-offs lower the plateau
//!     alike)
//!  c. fit: the scenario's structure (handler, threads, workers, lock, release points) as
//!     written, its costs from three unknowns —
//!        h  the share of the handler's work held under the lock
//!        ℓ  the share of a request's work on the event loop
//!        w  the lock's wake-up latency (µs; a vain wake-up costs w/5 of CPU)
//!     handler work W = (T₁ − rtt)(1 − ℓ), loop work L = (T₁ − rtt) ℓ
//!     minimizing Σ over the ramp of ln²(predicted/measured throughput)
//!                                   + ¼ ln²(predicted/measured p95)
//!     by a grid, then Nelder–Mead; 95% CIs from the residuals' Jacobian
//!  d. Server-Timing: held and free pin h = held / (held + free) and W = held + free;
//!     `loop` pins L (else L is the rest of T₁ − rtt − W); the fit keeps only w
//! ```
//!
//! Every simulation of the fit uses the same seed (common random numbers), so the
//! objective changes only with the parameters. Parameters the ramp cannot tell apart
//! (`w` when nothing contends, `h` when the handler runs on the loop) get no CI.

use super::super::measure::{MeasureError, MeasureOptions, MeasureReport};
use crate::scenario::{Handler, LockKind, Machine, Scenario, Scheduler};
use crate::server_timing::Stages;
use crate::workload::Dist;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Instant;

/// The calibration file's format tag.
pub const TARGET_CALIBRATION_FORMAT: &str = "servesim-target-calibration/1";

/// Why a target could not be calibrated.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    /// The scenario has no `[target]`.
    #[error("the scenario has no [target] section: add one (url, and start to let servesim run it)")]
    NoTarget,
    /// A measurement failed.
    #[error("{stage}: {source}")]
    Measure {
        /// Which stage.
        stage: String,
        /// Why.
        source: Box<MeasureError>,
    },
    /// The simulator refused the fitted scenario.
    #[error("simulate: {0}")]
    Sim(String),
    /// The measurements cannot be fitted.
    #[error("{0}")]
    Unfit(String),
}

/// How to calibrate a target.
#[derive(Debug, Clone, PartialEq)]
pub struct FitOptions {
    /// Time for the measurements (s); the fit's simulations come on top. By default, 60.
    pub budget_s: f64,
    /// Use the responses' `Server-Timing` headers where they pin a share. By default, true.
    pub use_server_timing: bool,
    /// Users at each step of the ramp; empty: 1, 2, c, c + 1, 2c, 4c.
    pub ramp: Vec<u32>,
    /// Requests per simulated ramp point. By default, 1200.
    pub sim_requests: u64,
    /// How to measure.
    pub measure: MeasureOptions,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            budget_s: 60.0,
            use_server_timing: true,
            ramp: Vec::new(),
            sim_requests: 1200,
            measure: MeasureOptions { max_wall_s: 120.0, ..MeasureOptions::default() },
        }
    }
}

/// The one-client stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OneClient {
    /// Requests measured.
    pub requests: u64,
    /// Mean latency (ms).
    pub mean_ms: f64,
    /// Coefficient of variation of the latency.
    pub cv: f64,
    /// Median round trip of the health URL (ms): the network and the server's least work.
    pub rtt_ms: f64,
    /// Mean stages from Server-Timing (ms), when the service sends them.
    pub stages: Option<Stages>,
    /// Every measured request's latency (ms), in order of completion.
    pub samples_ms: Vec<f64>,
}

/// One ramp step, measured and as the fit predicts it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RampPoint {
    /// Closed-loop users.
    pub users: u32,
    /// Cores the service had (`system.cores`).
    pub cores: u32,
    /// Measured throughput (req/s).
    pub throughput_rps: f64,
    /// Measured median latency (ms).
    pub p50_ms: f64,
    /// Measured p95 latency (ms).
    pub p95_ms: f64,
    /// Predicted throughput with the fitted costs (req/s).
    pub predicted_throughput_rps: f64,
    /// Predicted p95 with the fitted costs (ms).
    pub predicted_p95_ms: f64,
    /// (predicted − measured) / measured, throughput (%).
    pub throughput_error_pct: f64,
    /// (predicted − measured) / measured, p95 (%).
    pub p95_error_pct: f64,
}

/// One calibrated quantity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// Lower end of its 95% CI (none: fixed, or not identified by the ramp).
    pub ci95_lo: Option<f64>,
    /// Upper end of its 95% CI.
    pub ci95_hi: Option<f64>,
    /// Where it comes from: `fit`, `server-timing` or `measured`.
    pub source: String,
}

/// What `servesim calibrate --target` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetCalibration {
    /// [`TARGET_CALIBRATION_FORMAT`].
    pub format: String,
    /// Where and when.
    pub machine: Machine,
    /// The scenario calibrated.
    pub scenario: String,
    /// The URL loaded.
    pub url: String,
    /// The service's knobs during the calibration (`path` → value): points of a later
    /// validation with these knobs and a ramp's number of users were used by the fit.
    pub knobs: BTreeMap<String, String>,
    /// Stage a.
    pub one_client: OneClient,
    /// Stage b, with the fit's predictions.
    pub ramp: Vec<RampPoint>,
    /// Stage c: the costs.
    pub params: Vec<Param>,
    /// Root mean square of the fit's residuals (natural log units ≈ relative error).
    pub residual_rms: f64,
    /// Simulations run by the fit.
    pub evaluations: usize,
    /// Wall time (s).
    pub wall_s: f64,
    /// What to know when reading it.
    pub notes: Vec<String>,
}

/// The costs a fit proposes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Costs {
    /// Handler work per request (ms).
    pub work_ms: f64,
    /// Share of it held under the lock.
    pub held_share: f64,
    /// Event-loop work per request, lock held (ms).
    pub loop_ms: f64,
    /// Time outside the service per request (ms).
    pub rtt_ms: f64,
    /// Coefficient of variation of a request's work.
    pub cv: f64,
    /// The lock's wake-up latency (µs).
    pub wake_us: f64,
    /// The rest of the OS's wake-up costs, where they were measured on this machine (the
    /// CPython GIL); `None`: they follow from `wake_us` (fitted).
    pub machine: Option<MachineWake>,
}

/// The OS's wake-up costs as `servesim calibrate` measures them (besides the mean latency,
/// `Costs::wake_us`), for a service whose lock is CPython's GIL.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MachineWake {
    /// The coefficient of variation of the wake-up latency onto an idle core.
    pub wake_cv: f64,
    /// The mean wake-up latency with every core busy (µs).
    pub busy_us: f64,
    /// What a signal costs its signaller (µs).
    pub signal_us: f64,
    /// The CPU of a vain wake-up (µs).
    pub vain_us: f64,
    /// The wake-up of a thread blocked on the GIL's mutex (µs).
    pub mutex_us: f64,
}

impl MachineWake {
    /// Measures them on this machine (about two seconds); with the idle-core latency. The
    /// latencies are their rounds' medians, and their spread a robust cv (the 10th–90th
    /// percentile range over that of a normal): a wake-up that waits for a time slice now
    /// and then would make a mean and a cv of a few samples, not of the wake-ups.
    pub fn measure() -> (f64, Self) {
        let w = crate::experiment::wake_costs();
        let (idle, busy) = (w.latency.median, w.busy_latency.median);
        let m = Self {
            wake_cv: robust_cv(&w.samples_us),
            busy_us: busy,
            signal_us: w.signal.median,
            vain_us: w.vain.median,
            mutex_us: w.mutex.median,
        };
        (idle, m)
    }
}

fn dist(mean: f64, cv: f64) -> Dist {
    if mean <= 0.0 || cv < 0.01 { Dist::Const(mean.max(0.0)) } else { Dist::Gamma { mean, cv: cv.min(3.0) } }
}

/// `sc` with its costs replaced by `c`: the handler's work spread over the request's
/// tokens (or on the request when it has none), the loop's held, the round trip outside.
pub fn apply(sc: &Scenario, c: &Costs) -> Scenario {
    let mut s = sc.clone();
    let k = &mut s.cost;
    let n = s.workload.new_tokens.mean();
    let (held, free) = (c.work_ms * c.held_share, c.work_ms * (1.0 - c.held_share));
    let zero = Dist::Const(0.0);
    if n >= 1.0 {
        // Independent draws per token: a token's cv √n gives the request's cv.
        let cv = c.cv * n.sqrt();
        (k.token_locked_ms, k.token_free_ms) = (dist(held / n, cv), dist(free / n, cv));
        (k.request_locked_ms, k.request_free_ms) = (zero.clone(), zero.clone());
    } else {
        (k.request_locked_ms, k.request_free_ms) = (dist(held, c.cv), dist(free, c.cv));
        (k.token_locked_ms, k.token_free_ms) = (zero.clone(), zero.clone());
    }
    k.loop_in_ms = Dist::Const(c.loop_ms);
    (k.loop_out_ms, k.loop_in_free_ms, k.loop_out_free_ms) = (zero.clone(), zero.clone(), zero);
    k.loop_lock = true;
    k.rtt_ms = Dist::Const(c.rtt_ms);
    match c.machine {
        Some(m) => {
            k.wake_us = dist(c.wake_us, m.wake_cv);
            k.wake_busy_us = Some(dist(m.busy_us, m.wake_cv));
            (k.signal_us, k.vain_wake_us, k.mutex_wake_us) = (m.signal_us, m.vain_us, m.mutex_us);
        }
        None => {
            k.wake_us = Dist::Gamma { mean: c.wake_us, cv: 0.5 };
            k.vain_wake_us = c.wake_us / 5.0;
        }
    }
    if s.worker.lock == LockKind::FairGil {
        k.handoff_us = c.wake_us;
    }
    (k.calibration, k.calibrated) = (None, None);
    s
}

/// The knobs that describe the service during the calibration.
pub fn knobs_of(sc: &Scenario) -> BTreeMap<String, String> {
    let h = serde_json::to_value(sc.worker.handler).ok().and_then(|v| v.as_str().map(str::to_owned));
    BTreeMap::from([
        ("worker.handler".into(), h.unwrap_or_default()),
        ("system.workers".into(), sc.system.workers.to_string()),
        ("worker.threads".into(), sc.worker.threads.to_string()),
        ("system.cores".into(), sc.system.cores.to_string()),
    ])
}

/// `s` played by `users` closed-loop users who do not think.
fn closed_loop(s: &mut Scenario, users: u32) {
    s.clients.kind = crate::scenario::ClientKind::Closed;
    s.clients.users = users;
    s.clients.think_ms = Dist::Const(0.0);
}

fn measure_at(
    sc: &Scenario,
    users: u32,
    requests: u64,
    opts: &FitOptions,
    stage: &str,
) -> Result<MeasureReport, FitError> {
    let mut s = sc.clone();
    closed_loop(&mut s, users);
    s.run.requests = requests;
    s.run.warmup_requests = 5 + 2 * u64::from(users);
    // A run the host stole from measured the host: measured again (twice at most), the
    // least stolen kept.
    crate::experiment::least_stolen(
        2,
        |_| {
            super::super::measure::measure(&s, &opts.measure)
                .map_err(|source| FitError::Measure { stage: stage.into(), source: Box::new(source) })
        },
        |m| m.host_steal_pct / 100.0,
    )
}

/// The health URL's median round trip over `n` sequential GETs on one connection (ms).
fn health_rtt_ms(sc: &Scenario, opts: &FitOptions, n: u64) -> Result<f64, FitError> {
    let spec = sc.target.as_ref().ok_or(FitError::NoTarget)?;
    let mut probe = spec.clone();
    probe.url = spec.health_template();
    probe.method = "GET".into();
    probe.body = None;
    let mut s = sc.clone();
    s.target = Some(probe);
    let r = measure_at(&s, 1, n, opts, "round trip of the health URL")?;
    Ok(r.latency_ms.p50)
}

/// The ramp's users for `cores` cores.
pub fn default_ramp(cores: u32) -> Vec<u32> {
    let c = cores.max(1);
    let mut r = vec![1, 2, c, c + 1, 2 * c, 4 * c];
    r.sort_unstable();
    r.dedup();
    r
}

/// One parameter of the search: its value in the search's coordinates and back.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Free {
    /// h in 0..=1.
    Held,
    /// ℓ in 0..=0.6.
    Loop,
    /// ln w, w in 0.5..=2000 µs.
    Wake,
}

impl Free {
    fn clamp(self, x: f64) -> f64 {
        match self {
            Free::Held => x.clamp(0.0, 1.0),
            Free::Loop => x.clamp(0.0, 0.6),
            Free::Wake => x.clamp(0.5f64.ln(), 2000f64.ln()),
        }
    }
    fn step(self) -> f64 {
        match self {
            Free::Held | Free::Loop => 0.05,
            Free::Wake => 0.5,
        }
    }
}

/// What the fit holds fixed and what it searches.
struct Model<'a> {
    sc: &'a Scenario,
    work_total_ms: f64,
    rtt_ms: f64,
    cv: f64,
    /// h when Server-Timing pins it.
    held: Option<f64>,
    /// (W, L) when Server-Timing pins them (ms).
    work: Option<(f64, f64)>,
    /// T₁: the one-client latency (ms).
    one_ms: f64,
    free: Vec<Free>,
    /// (users, cores, throughput, p95) of each ramp step.
    ramp: Vec<(u32, u32, f64, f64)>,
    sim_requests: u64,
    /// The wake-up costs measured on this machine (mean latency, the rest), if measured.
    machine: Option<(f64, MachineWake)>,
}

impl Model<'_> {
    fn costs(&self, x: &[f64]) -> Costs {
        let get =
            |f: Free, default: f64| self.free.iter().position(|&g| g == f).map_or(default, |i| f.clamp(x[i]));
        let ell = get(Free::Loop, 0.0);
        let (work_ms, loop_ms, rtt_ms) = match self.work {
            // The rest of the one-client latency is outside the service's work.
            Some((w, l)) => (w, l, (self.one_ms - w - l).max(0.0)),
            None => (self.work_total_ms * (1.0 - ell), self.work_total_ms * ell, self.rtt_ms),
        };
        Costs {
            work_ms,
            held_share: self.held.unwrap_or_else(|| get(Free::Held, 0.5)),
            loop_ms,
            rtt_ms,
            cv: self.cv,
            wake_us: self
                .machine
                .map_or_else(|| get(Free::Wake, crate::scenario::types::DEFAULT_WAKE_US.ln()).exp(), |m| m.0),
            machine: self.machine.map(|m| m.1),
        }
    }

    /// Predicted (throughput, p95) at every ramp step.
    fn predict(&self, c: &Costs) -> Result<Vec<(f64, f64)>, FitError> {
        self.ramp
            .iter()
            .map(|&(users, cores, _, _)| {
                let mut s = apply(self.sc, c);
                s.system.cores = cores;
                s.target = None;
                closed_loop(&mut s, users);
                s.run.requests = self.sim_requests;
                s.run.warmup_requests = 200 + 4 * u64::from(users);
                s.run.replications = 1;
                s.validate().map_err(|e| FitError::Sim(e.to_string()))?;
                let r = crate::sim::simulate(&s).map_err(|e| FitError::Sim(e.to_string()))?;
                Ok((r.figures.throughput_rps, r.figures.latency_ms.p95))
            })
            .collect()
    }

    fn residuals(&self, x: &[f64]) -> Result<Vec<f64>, FitError> {
        let pred = self.predict(&self.costs(x))?;
        let mut r = Vec::with_capacity(2 * pred.len());
        for (&(_, _, thr, p95), &(pt, pp)) in self.ramp.iter().zip(&pred) {
            r.push((pt.max(1e-9) / thr).ln());
            r.push(0.5 * (pp.max(1e-9) / p95).ln());
        }
        Ok(r)
    }

    fn sse(&self, x: &[f64]) -> f64 {
        self.residuals(x).map_or(f64::INFINITY, |r| r.iter().map(|v| v * v).sum())
    }
}

/// Nelder–Mead from `x0` (J. Nelder, R. Mead, 1965; the standard coefficients), at most
/// `iters` iterations; returns the best point, its value and the evaluations used.
fn nelder_mead(
    f: &(dyn Fn(&[f64]) -> f64 + Sync),
    x0: Vec<f64>,
    steps: &[f64],
    iters: usize,
) -> (Vec<f64>, f64, usize) {
    let n = x0.len();
    let mut simplex: Vec<Vec<f64>> = vec![x0.clone()];
    for i in 0..n {
        let mut x = x0.clone();
        x[i] += steps[i];
        simplex.push(x);
    }
    let mut vals: Vec<f64> = simplex.par_iter().map(|x| f(x)).collect();
    let mut evals = n + 1;
    for _ in 0..iters {
        let mut order: Vec<usize> = (0..=n).collect();
        order.sort_by(|&a, &b| vals[a].total_cmp(&vals[b]));
        simplex = order.iter().map(|&i| simplex[i].clone()).collect();
        vals = order.iter().map(|&i| vals[i]).collect();
        if (vals[n] - vals[0]).abs() <= 1e-4 * (vals[0].abs() + 1e-6) {
            break;
        }
        let centroid: Vec<f64> =
            (0..n).map(|j| simplex[..n].iter().map(|x| x[j]).sum::<f64>() / n as f64).collect();
        let along = |t: f64| -> Vec<f64> {
            (0..n).map(|j| centroid[j] + t * (simplex[n][j] - centroid[j])).collect()
        };
        let xr = along(-1.0);
        let fr = f(&xr);
        evals += 1;
        if fr < vals[0] {
            let xe = along(-2.0);
            let fe = f(&xe);
            evals += 1;
            (simplex[n], vals[n]) = if fe < fr { (xe, fe) } else { (xr, fr) };
        } else if fr < vals[n - 1] {
            (simplex[n], vals[n]) = (xr, fr);
        } else {
            let xc = if fr < vals[n] { along(-0.5) } else { along(0.5) };
            let fc = f(&xc);
            evals += 1;
            if fc < vals[n].min(fr) {
                (simplex[n], vals[n]) = (xc, fc);
            } else {
                let best = simplex[0].clone();
                let shrunk: Vec<Vec<f64>> = simplex[1..]
                    .iter()
                    .map(|x| (0..n).map(|j| best[j] + 0.5 * (x[j] - best[j])).collect())
                    .collect();
                let fs: Vec<f64> = shrunk.par_iter().map(|x| f(x)).collect();
                evals += n;
                for (i, (x, v)) in shrunk.into_iter().zip(fs).enumerate() {
                    simplex[i + 1] = x;
                    vals[i + 1] = v;
                }
            }
        }
    }
    let best = (0..=n).min_by(|&a, &b| vals[a].total_cmp(&vals[b])).unwrap_or(0);
    (simplex[best].clone(), vals[best], evals)
}

/// Inverts a small symmetric positive-definite matrix (Gauss–Jordan with pivoting); none
/// if it is singular or nearly so.
fn invert(mut a: Vec<Vec<f64>>) -> Option<Vec<Vec<f64>>> {
    let n = a.len();
    let scale = (0..n).map(|i| a[i][i].abs()).fold(0.0, f64::max);
    let mut inv: Vec<Vec<f64>> =
        (0..n).map(|i| (0..n).map(|j| f64::from(u8::from(i == j))).collect()).collect();
    for c in 0..n {
        let p = (c..n).max_by(|&x, &y| a[x][c].abs().total_cmp(&a[y][c].abs()))?;
        if a[p][c].abs() <= 1e-9 * scale.max(1e-300) {
            return None;
        }
        a.swap(c, p);
        inv.swap(c, p);
        let d = a[c][c];
        for j in 0..n {
            a[c][j] /= d;
            inv[c][j] /= d;
        }
        for r in 0..n {
            if r != c {
                let f = a[r][c];
                for j in 0..n {
                    a[r][j] -= f * a[c][j];
                    inv[r][j] -= f * inv[c][j];
                }
            }
        }
    }
    Some(inv)
}

/// Calibrates `sc`'s `[target]` from outside; `progress(done, total, what)` after each
/// measurement.
pub fn calibrate_target(
    sc: &Scenario,
    opts: &FitOptions,
    mut progress: impl FnMut(usize, usize, &str),
) -> Result<TargetCalibration, FitError> {
    let t0 = Instant::now();
    let spec = sc.target.clone().ok_or(FitError::NoTarget)?;
    // Time-sliced cores run with the slice this kernel enforces, measured; where it cannot
    // be measured (no pinning), with the scenario's, saying so.
    let mut slice_note = None;
    let slice = match sc.system.scheduler {
        Scheduler::Slice => crate::experiment::slice::measure(std::time::Duration::from_millis(500))
            .map_err(|e| {
                slice_note = Some(format!(
                    "time slice not measured ({e}): the scenario's system.slice_ms = {} ms is used",
                    sc.system.slice_ms
                ))
            })
            .ok(),
        Scheduler::Ps => None,
    };
    let mut sliced = sc.clone();
    if let Some(s) = &slice {
        sliced.system.slice_ms = s.ms;
    }
    let sc = &sliced;
    // The service runs through every stage, and stops however this returns.
    let _guard = super::ServiceGuard;
    let users = if opts.ramp.is_empty() { default_ramp(sc.system.cores) } else { opts.ramp.clone() };
    let mut ramp_users: Vec<(u32, u32)> = users.iter().map(|&u| (u, sc.system.cores)).collect();
    let one_core = sc.system.cores > 1
        && matches!(sc.worker.lock, LockKind::Gil | LockKind::FairGil)
        && sc.worker.handler != Handler::AsyncBlocking
        && spec.knobs().iter().any(|k| k == "system.cores");
    if one_core {
        ramp_users.extend([(2, 1), (4, 1)]);
    }
    let total = ramp_users.len() + 3;
    let mut notes: Vec<String> = slice_note.into_iter().collect();

    // a. One client: a probe for the pace, then the samples.
    progress(0, total, "one client: probing");
    let probe = measure_at(sc, 1, 10, opts, "one client (probe)")?;
    let t_probe_s = (probe.latency_ms.mean / 1e3).max(1e-4);
    let one_n = ((0.15 * opts.budget_s / t_probe_s) as u64).clamp(30, 500);
    progress(1, total, &format!("one client: {one_n} requests"));
    let one = measure_at(sc, 1, one_n, opts, "one client")?;
    let rtt_ms = health_rtt_ms(sc, opts, 50)?;
    // What the fit takes from a one-client measurement: every request's latency, their mean
    // and cv, and the Server-Timing stages.
    let one_client = |one: &MeasureReport| -> Result<OneClient, FitError> {
        let samples_ms: Vec<f64> = one.window.latency_us.iter().map(|&u| u as f64 / 1e3).collect();
        let (mean_ms, cv) = mean_cv(&samples_ms);
        if mean_ms <= rtt_ms {
            return Err(FitError::Unfit(format!(
                "a request ({mean_ms:.3} ms) is no slower than the health URL ({rtt_ms:.3} ms): nothing \
                 to calibrate; point target.url at the model's route"
            )));
        }
        let stages = one_client_stages(one);
        Ok(OneClient { requests: samples_ms.len() as u64, mean_ms, cv, rtt_ms, stages, samples_ms })
    };
    let mut oc = one_client(&one)?;

    // b. The ramp.
    let per_s = 0.6 * opts.budget_s / (ramp_users.len() as f64 * oc.mean_ms / 1e3).max(1e-6);
    let requests = (per_s as u64).clamp(60, 3000);
    let mut ramp = Vec::new();
    for (i, &(u, cores)) in ramp_users.iter().enumerate() {
        let what = format!("ramp: {u} users on {cores} core(s)");
        progress(2 + i, total, &format!("{what}, {requests} requests"));
        let mut at = sc.clone();
        at.system.cores = cores;
        let m = measure_at(&at, u, requests, opts, &what)?;
        ramp.push((u, cores, m.throughput_rps, m.latency_ms.p95, m.latency_ms.p50));
    }

    // The machine's steadiness: the ramp's one user measures what the one-client phase
    // did. Where the two disagree the machine moved between them, and the fit would take
    // its work from one machine and its contention from another: the one client is
    // measured again, and the measurement nearer the ramp's is kept.
    if let Some(&(_, _, ramp_rps, _, _)) = ramp.iter().find(|r| r.0 == 1 && r.1 == sc.system.cores) {
        let first = one.throughput_rps;
        if moved(first, ramp_rps) > STEADY {
            progress(total - 1, total, "one client again: the machine moved since the first");
            let again = measure_at(sc, 1, one_n, opts, "one client (again)")?;
            let (keep_again, note) = unsteady(first, ramp_rps, again.throughput_rps);
            if keep_again {
                oc = one_client(&again)?;
            }
            notes.push(note);
        }
    }
    // The work: the mean less the round trip, and its cv.
    let work_total_ms = oc.mean_ms - rtt_ms;
    let work_cv = oc.cv * oc.mean_ms / work_total_ms;
    progress(total - 1, total, "fitting the simulator to the ramp");

    // c, d. The fit.
    let stages = oc.stages;
    let pinned_held = stages.filter(|_| opts.use_server_timing).and_then(|s| match (s.held, s.free) {
        (Some(h), Some(f)) if h + f > 0.0 => Some(h / (h + f)),
        _ => None,
    });
    let pinned_work = stages.filter(|_| opts.use_server_timing).and_then(|s| match (s.held, s.free) {
        (Some(h), Some(f)) if h + f > 0.0 => {
            let w = h + f;
            Some((w, s.event_loop.unwrap_or((work_total_ms - w).max(0.0))))
        }
        _ => None,
    });
    let locked = sc.worker.lock != LockKind::None;
    let mut free = Vec::new();
    if locked && pinned_held.is_none() {
        free.push(Free::Held);
    }
    if pinned_work.is_none() {
        free.push(Free::Loop);
    }
    // A wake-up cost only for the GILs: a plain mutex's hand-off is not modelled apart.
    // CPython's GIL meets the OS's wake-ups, which are this machine's: measured, as
    // `servesim calibrate` does, not fitted. The fair lock's hand-off is fitted.
    let wakes = matches!(sc.worker.lock, LockKind::Gil | LockKind::FairGil);
    let machine = (sc.worker.lock == LockKind::Gil).then(MachineWake::measure);
    if wakes && machine.is_none() {
        free.push(Free::Wake);
    }
    if let Some((w, m)) = machine {
        notes.push(format!(
            "CPython's GIL: the OS's wake-up costs measured on this machine, not fitted — a wake-up \
             {w:.1} µs onto an idle core, {:.1} µs with every core busy (preempting its waker), a \
             signal {:.1} µs of its signaller's time, a vain wake-up {:.2} µs of CPU, a thread \
             blocked on the GIL's mutex woken in {:.1} µs",
            m.busy_us, m.signal_us, m.vain_us, m.mutex_us
        ));
    }
    if pinned_held.is_some() {
        notes.push("h (the share held under the lock) is pinned by the responses' Server-Timing".into());
    } else if stages.is_some_and(|s| s.held.is_some()) && !opts.use_server_timing {
        notes.push("the responses' Server-Timing was ignored (--no-server-timing)".into());
    }
    if sc.worker.handler == Handler::AsyncBlocking && sc.system.workers == 1 {
        notes.push(
            "the ramp ran an async-blocking handler: one request at a time, so it cannot tell the \
             lock's share; calibrate on a threaded route for what-ifs on threads"
                .into(),
        );
    }
    let model = Model {
        sc,
        work_total_ms,
        rtt_ms,
        cv: work_cv,
        held: pinned_held,
        work: pinned_work,
        one_ms: oc.mean_ms,
        free: free.clone(),
        ramp: ramp.iter().map(|&(u, c, t, p, _)| (u, c, t, p)).collect(),
        sim_requests: opts.sim_requests,
        machine,
    };
    let f = |x: &[f64]| model.sse(x);
    // A grid over h and ℓ at the default wake-up, then Nelder–Mead over every unknown.
    let hs: Vec<f64> =
        if free.contains(&Free::Held) { (0..=10).map(|i| f64::from(i) / 10.0).collect() } else { vec![0.0] };
    let ls = [0.0, 0.05, 0.1, 0.2, 0.35];
    let starts: Vec<Vec<f64>> = hs
        .iter()
        .flat_map(|&h| ls.iter().map(move |&l| (h, l)))
        .map(|(h, l)| {
            free.iter()
                .map(|g| match g {
                    Free::Held => h,
                    Free::Loop => l,
                    Free::Wake => crate::scenario::types::DEFAULT_WAKE_US.ln(),
                })
                .collect()
        })
        .collect();
    // Unknowns held fixed make some starts the same point: simulate each once.
    let mut starts = starts;
    starts.dedup();
    let starts = if starts.is_empty() { vec![Vec::new()] } else { starts };
    let vals: Vec<f64> = starts.par_iter().map(|x| f(x)).collect();
    let best = (0..starts.len()).min_by(|&a, &b| vals[a].total_cmp(&vals[b])).unwrap_or(0);
    let steps: Vec<f64> = free.iter().map(|g| g.step()).collect();
    let (x, sse, nm_evals) = if free.is_empty() {
        (Vec::new(), vals[0], 0)
    } else {
        nelder_mead(&f, starts[best].clone(), &steps, 40)
    };
    if !sse.is_finite() {
        return Err(FitError::Unfit(
            "the simulator refused every candidate; see the scenario's costs".into(),
        ));
    }
    let x: Vec<f64> = x.iter().zip(&free).map(|(&v, g)| g.clamp(v)).collect();
    let costs = model.costs(&x);
    let resid = model.residuals(&x)?;
    let cis = confidence(&model, &x, &resid);
    let pred = model.predict(&costs)?;

    let ci_of = |g: Free| free.iter().position(|&h| h == g).and_then(|i| cis[i]);
    let timed = pinned_work.is_some();
    let mut params = vec![
        param(
            "held share h",
            costs.held_share,
            "share",
            ci_of(Free::Held),
            if pinned_held.is_some() {
                "server-timing"
            } else if locked {
                "fit"
            } else {
                "unused (no lock)"
            },
        ),
        param(
            "loop share ℓ",
            costs.loop_ms / (costs.work_ms + costs.loop_ms).max(1e-12),
            "share",
            ci_of(Free::Loop),
            if timed { "server-timing" } else { "fit" },
        ),
        param(
            "handler work W",
            costs.work_ms,
            "ms",
            None,
            if timed { "server-timing (held + free)" } else { "measured (T₁ − rtt)(1 − ℓ)" },
        ),
        param(
            "loop work L",
            costs.loop_ms,
            "ms",
            None,
            if timed {
                "server-timing (loop, else T₁ − rtt − W)"
            } else {
                "measured (T₁ − rtt) ℓ"
            },
        ),
        param(
            "round trip rtt",
            costs.rtt_ms,
            "ms",
            None,
            if timed { "measured (T₁ − W − L)" } else { "measured (health URL)" },
        ),
        param("work cv", work_cv, "", None, "measured"),
    ];
    match costs.machine {
        Some(m) => params.extend(machine_params(costs.wake_us, &m)),
        None if wakes => {
            let ci = ci_of(Free::Wake).map(|(lo, hi)| (lo.exp(), hi.exp()));
            params.push(param("wake-up w", costs.wake_us, "µs", ci, "fit"));
        }
        None => {}
    }
    if let Some(s) = &slice {
        params.push(param(SLICE_PARAM, s.ms, "ms", None, "measured"));
        notes.push(format!("time slice {:.2} ms ({})", s.ms, s.source));
    }
    let ramp_points = ramp
        .iter()
        .zip(&pred)
        .map(|(&(users, cores, thr, p95, p50), &(pt, pp))| RampPoint {
            users,
            cores,
            throughput_rps: thr,
            p50_ms: p50,
            p95_ms: p95,
            predicted_throughput_rps: pt,
            predicted_p95_ms: pp,
            throughput_error_pct: 100.0 * (pt - thr) / thr,
            p95_error_pct: 100.0 * (pp - p95) / p95,
        })
        .collect();
    progress(total, total, "done");
    Ok(TargetCalibration {
        format: TARGET_CALIBRATION_FORMAT.into(),
        machine: crate::experiment::machine(),
        scenario: sc.display_name().to_owned(),
        url: spec.url.clone(),
        knobs: knobs_of(sc),
        one_client: oc,
        ramp: ramp_points,
        params,
        residual_rms: (resid.iter().map(|r| r * r).sum::<f64>() / resid.len().max(1) as f64).sqrt(),
        evaluations: starts.len() + nm_evals + 1 + 2 * free.len(),
        wall_s: t0.elapsed().as_secs_f64(),
        notes,
    })
}

/// How far apart (relative) two measurements of one client may be before the machine counts
/// as having moved between them.
const STEADY: f64 = 0.10;

/// How far apart two throughputs are, relative to the smaller.
fn moved(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.min(b).max(1e-9)
}

/// One client ran at `first` req/s, the ramp's one user at `ramp`, one client again at
/// `second`: whether to keep the second, and the note that says what happened.
fn unsteady(first: f64, ramp: f64, second: f64) -> (bool, String) {
    let keep_again = moved(second, ramp) < moved(first, ramp);
    let kept = if keep_again { second } else { first };
    let advice = if moved(kept, ramp) > STEADY {
        format!(
            ", still {:.0}% from the ramp's: calibrate again on a quieter machine",
            100.0 * moved(kept, ramp)
        )
    } else {
        String::new()
    };
    let note = format!(
        "unsteady machine: one client ran at {first:.1} req/s, the ramp's one user at {ramp:.1} \
         ({:.0}% apart: the same measurement, a minute later); measured again at {second:.1} req/s, \
         and the calibration takes its work from the {} measurement{advice}",
        100.0 * moved(first, ramp),
        if keep_again { "second" } else { "first" },
    );
    (keep_again, note)
}

/// The name of the measured time slice among a calibration's parameters.
pub const SLICE_PARAM: &str = "time slice";
/// The measured wake-up costs' names among a calibration's parameters.
const WAKE_CV_PARAM: &str = "wake cv";
const BUSY_PARAM: &str = "busy-core wake-up";
const SIGNAL_PARAM: &str = "signal cost";
const VAIN_PARAM: &str = "vain wake-up CPU";
const MUTEX_PARAM: &str = "mutex wake-up";

/// The time slice a calibration measured (ms), if its scenario's cores were time-sliced.
pub fn slice_of(cal: &TargetCalibration) -> Option<f64> {
    cal.params.iter().find(|p| p.name == SLICE_PARAM).map(|p| p.value)
}

/// One parameter of a calibration.
fn param(name: &str, value: f64, unit: &str, ci: Option<(f64, f64)>, source: &str) -> Param {
    Param {
        name: name.into(),
        value,
        unit: unit.into(),
        ci95_lo: ci.map(|c| c.0),
        ci95_hi: ci.map(|c| c.1),
        source: source.into(),
    }
}

/// The measured wake-up costs as a calibration's parameters.
fn machine_params(wake_us: f64, m: &MachineWake) -> Vec<Param> {
    let how = "measured (servesim calibrate's wake-ups)";
    vec![
        param("wake-up w", wake_us, "µs", None, how),
        param(WAKE_CV_PARAM, m.wake_cv, "", None, how),
        param(BUSY_PARAM, m.busy_us, "µs", None, how),
        param(SIGNAL_PARAM, m.signal_us, "µs", None, how),
        param(VAIN_PARAM, m.vain_us, "µs", None, how),
        param(MUTEX_PARAM, m.mutex_us, "µs", None, how),
    ]
}

/// The fitted costs of a calibration, to apply to a scenario.
pub fn costs_of(cal: &TargetCalibration) -> Costs {
    costs_from(&cal.params)
}

/// The costs a calibration's parameters give.
fn costs_from(params: &[Param]) -> Costs {
    let get = |prefix: &str, default: f64| {
        params.iter().find(|p| p.name.starts_with(prefix)).map_or(default, |p| p.value)
    };
    Costs {
        work_ms: get("handler work", 0.0),
        held_share: get("held share", 0.0),
        loop_ms: get("loop work", 0.0),
        rtt_ms: get("round trip", 0.0),
        cv: get("work cv", 0.0),
        wake_us: get("wake-up", crate::scenario::types::DEFAULT_WAKE_US),
        machine: params.iter().any(|p| p.name == SIGNAL_PARAM).then(|| MachineWake {
            wake_cv: get(WAKE_CV_PARAM, 0.5),
            busy_us: get(BUSY_PARAM, 0.0),
            signal_us: get(SIGNAL_PARAM, 0.0),
            vain_us: get(VAIN_PARAM, 0.0),
            mutex_us: get(MUTEX_PARAM, 0.0),
        }),
    }
}

/// (p90 − p10) / 2.563 over the median: the cv of a normal with the same central spread.
fn robust_cv(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.len() < 3 {
        return 0.5;
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    let median = q(0.5);
    if median > 0.0 { ((q(0.9) - q(0.1)) / 2.563 / median).clamp(0.05, 3.0) } else { 0.5 }
}

fn mean_cv(xs: &[f64]) -> (f64, f64) {
    let n = xs.len().max(1) as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, if mean > 0.0 { var.sqrt() / mean } else { 0.0 })
}

fn one_client_stages(one: &MeasureReport) -> Option<Stages> {
    one.server_timing.map(|s| s.mean).filter(|s| s.held.is_some() || s.free.is_some() || s.queue.is_some())
}

/// 95% CIs of the free parameters (in search coordinates) from the Jacobian of the
/// residuals: cov = s² (JᵀJ)⁻¹, s² = SSE / (m − k), Student t with m − k degrees of freedom.
fn confidence(model: &Model<'_>, x: &[f64], r0: &[f64]) -> Vec<Option<(f64, f64)>> {
    let k = x.len();
    let m = r0.len();
    if m <= k {
        return vec![None; k];
    }
    let cols: Vec<Option<Vec<f64>>> = (0..k)
        .into_par_iter()
        .map(|i| {
            let g = model.free[i];
            let h = g.step() * 0.5;
            let (mut lo, mut hi) = (x.to_vec(), x.to_vec());
            lo[i] = g.clamp(x[i] - h);
            hi[i] = g.clamp(x[i] + h);
            let d = hi[i] - lo[i];
            if d <= 0.0 {
                return None;
            }
            let (a, b) = (model.residuals(&lo).ok()?, model.residuals(&hi).ok()?);
            Some(a.iter().zip(&b).map(|(p, q)| (q - p) / d).collect())
        })
        .collect();
    let Some(cols) = cols.into_iter().collect::<Option<Vec<Vec<f64>>>>() else { return vec![None; k] };
    let jtj: Vec<Vec<f64>> =
        (0..k).map(|a| (0..k).map(|b| (0..m).map(|i| cols[a][i] * cols[b][i]).sum()).collect()).collect();
    let Some(inv) = invert(jtj) else { return vec![None; k] };
    let s2 = r0.iter().map(|v| v * v).sum::<f64>() / (m - k) as f64;
    let t = statrs::distribution::StudentsT::new(0.0, 1.0, (m - k) as f64)
        .map(|d| statrs::distribution::ContinuousCDF::inverse_cdf(&d, 0.975))
        .unwrap_or(1.96);
    (0..k)
        .map(|i| {
            let half = t * (s2 * inv[i][i]).sqrt();
            let g = model.free[i];
            // An interval wider than the parameter's whole range says the ramp cannot tell it.
            let range = match g {
                Free::Held => 1.0,
                Free::Loop => 0.6,
                Free::Wake => 2000f64.ln() - 0.5f64.ln(),
            };
            (half.is_finite() && 2.0 * half < range).then(|| (g.clamp(x[i] - half), g.clamp(x[i] + half)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsteady_one_client_phase_is_measured_again_and_the_nearer_kept() {
        // 131 req/s alone, 165 in the ramp: the second measurement (160) is kept.
        let (again, note) = unsteady(131.0, 165.0, 160.0);
        assert!(again && note.contains("from the second measurement"), "{note}");
        assert!(!note.contains("calibrate again"), "{note}");
        // Both far from the ramp's, the first nearer: the first is kept, and the note says
        // to calibrate again.
        let (again, note) = unsteady(140.0, 165.0, 120.0);
        assert!(!again && note.contains("from the first measurement"), "{note}");
        assert!(note.contains("calibrate again on a quieter machine"), "{note}");
    }

    #[test]
    fn nelder_mead_finds_a_bowls_bottom() {
        let f = |x: &[f64]| (x[0] - 0.3).powi(2) + 4.0 * (x[1] + 1.0).powi(2);
        let (x, v, _) = nelder_mead(&f, vec![0.0, 0.0], &[0.1, 0.1], 200);
        assert!((x[0] - 0.3).abs() < 1e-2 && (x[1] + 1.0).abs() < 1e-2 && v < 1e-3, "{x:?}");
    }

    #[test]
    fn inverts_and_refuses_singular_matrices() {
        let inv = invert(vec![vec![4.0, 1.0], vec![1.0, 3.0]]).unwrap();
        let det = 11.0;
        assert!((inv[0][0] - 3.0 / det).abs() < 1e-12 && (inv[0][1] + 1.0 / det).abs() < 1e-12);
        assert!(invert(vec![vec![1.0, 2.0], vec![2.0, 4.0]]).is_none());
    }

    #[test]
    fn applied_costs_keep_the_request_work_and_its_split() {
        let sc = Scenario::parse(
            "[workload]\nnew_tokens = 8\n[worker]\nlock = \"gil\"",
            std::path::Path::new("t"),
            std::path::Path::new("."),
            &[],
        )
        .unwrap();
        let mut c = Costs {
            work_ms: 8.0,
            held_share: 0.75,
            loop_ms: 0.5,
            rtt_ms: 0.2,
            cv: 0.1,
            wake_us: 20.0,
            machine: None,
        };
        let s = apply(&sc, &c);
        assert!((s.cost.token_locked_ms.mean() * 8.0 - 6.0).abs() < 1e-9);
        assert!((s.cost.token_free_ms.mean() * 8.0 - 2.0).abs() < 1e-9);
        assert_eq!(s.cost.loop_in_ms, Dist::Const(0.5));
        assert!((s.cost.vain_wake_us - 4.0).abs() < 1e-12);
        s.validate().unwrap();
        // Measured wake-up costs are applied as measured.
        c.machine =
            Some(MachineWake { wake_cv: 0.2, busy_us: 6.0, signal_us: 10.0, vain_us: 2.0, mutex_us: 12.0 });
        let s = apply(&sc, &c);
        assert_eq!(s.cost.wake_us, Dist::Gamma { mean: 20.0, cv: 0.2 });
        assert_eq!(s.cost.wake_busy_us, Some(Dist::Gamma { mean: 6.0, cv: 0.2 }));
        assert_eq!((s.cost.signal_us, s.cost.vain_wake_us, s.cost.mutex_wake_us), (10.0, 2.0, 12.0));
        s.validate().unwrap();
        // And they come back from the calibration file's parameters.
        let back = costs_from(&machine_params(20.0, &c.machine.unwrap()));
        assert_eq!((back.wake_us, back.machine), (20.0, c.machine));
        // A robust cv: a tail of slow wake-ups does not make it.
        let mut xs: Vec<f64> = (0..100).map(|i| 30.0 + f64::from(i % 11) - 5.0).collect();
        xs.extend([4000.0, 9000.0]);
        let cv = robust_cv(&xs);
        assert!((0.05..0.2).contains(&cv), "{cv}");
    }
}
