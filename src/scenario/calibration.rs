//! Calibration files: the real server's own costs, measured on one machine by
//! `servesim calibrate`, that a scenario references with `cost.calibration = "…"`.
//!
//! The real server runs the real model plus the emulated work the scenario's `[cost]` table
//! asks for. A calibration holds only the real part — samples of each cost component, the
//! nominal emulated work taken out — so one calibration serves every point of a validation,
//! whatever emulated work each point adds. Loading a scenario with a calibration adds the
//! two: `token_locked_ms` becomes *calibrated + emulated*, and so on; the server's loop work
//! (native code, no lock) goes to `loop_in_free_ms` / `loop_out_free_ms`, the time a
//! request spends outside the server to `rtt_ms` (the load generator's CPU to
//! `clients.cpu_ms`, which the simulator runs as a thread of its own); `release_points` becomes the model's
//! kernels per token (the server releases the lock around each), `handoff_us` adds the
//! measured lock hand-off cost and `switch_us` its CPU on a busy core, and `wake_us` and
//! `vain_wake_us` become the measured wake-up
//! latency and CPU of a parked thread. With batching, the measured prefill is added to
//! `request_locked_ms` / `request_free_ms`, which a sequence pays when it joins a batch.

use super::{Scenario, ScenarioError};
use crate::workload::Dist;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// The format version this build reads and writes.
pub const CALIBRATION_FORMAT: u32 = 1;

/// Where a calibration was taken.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Host name.
    pub hostname: String,
    /// CPU model, from /proc/cpuinfo.
    pub cpu_model: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// Operating system and kernel.
    pub os: String,
    /// When it was taken (RFC 3339, UTC).
    pub date: String,
}

/// Samples of one cost component (ms).
pub type Samples = Vec<f64>;

/// Step cost of the batched model at one batch size.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchStep {
    /// Sequences in the batch.
    pub batch: u32,
    /// Work per step holding the lock (ms) (samples).
    pub locked_ms: Samples,
    /// Work per step without the lock — the batched matmuls (ms) (samples).
    pub free_ms: Samples,
}

/// A calibration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Format version ([`CALIBRATION_FORMAT`]).
    pub format: u32,
    /// The machine.
    pub machine: Machine,
    /// How it was taken (free text: requests, prompt, CPUs pinned…).
    pub method: String,
    /// Matmul kernels per generated token: the lock release points per token.
    pub kernels_per_token: u32,
    /// Event-loop work per request before dispatch, without the lock (ms).
    pub loop_in_ms: Samples,
    /// Event-loop work per request after the handler, without the lock (ms).
    pub loop_out_ms: Samples,
    /// Handler work per request holding the lock (tokenize, prefill outside kernels) (ms).
    pub request_locked_ms: Samples,
    /// Handler work per request inside kernels (prefill matmuls) (ms).
    pub request_free_ms: Samples,
    /// Work per generated token holding the lock (model code outside kernels) (ms).
    pub token_locked_ms: Samples,
    /// Work per generated token inside kernels (matmuls) (ms).
    pub token_free_ms: Samples,
    /// Time per request outside the server's threads: client, loopback, wake-ups (ms)
    /// (empty in files from before it was measured).
    #[serde(default)]
    pub rtt_ms: Samples,
    /// CPU cost of one lock hand-off to a waiting thread (µs).
    pub handoff_us: f64,
    /// The CPU of one hand-off of the fair lock on a busy core: two threads on one CPU
    /// passing a turn back and forth through park and unpark, as the server's lock's
    /// waiters park (µs; the median of the rounds; 0 in files from before it was measured).
    #[serde(default)]
    pub switch_us: f64,
    /// The rounds `switch_us` was measured in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch_rounds: Option<crate::stats::Rounds>,
    /// A parked thread's wake-up latency, from the signal to it running (µs; samples pooled
    /// over the rounds that agree; empty in files from before it was measured).
    #[serde(default)]
    pub wake_us: Samples,
    /// A parked thread's wake-up latency with every core busy (µs; samples pooled over the
    /// rounds that agree; empty in files from before it was measured).
    #[serde(default)]
    pub wake_busy_us: Samples,
    /// CPU of a wake-up that finds its condition false and sleeps again (µs; the median of
    /// the rounds).
    #[serde(default)]
    pub vain_wake_us: f64,
    /// The rounds `wake_us` was measured in: each round's median, their spread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_rounds: Option<crate::stats::Rounds>,
    /// What signalling a parked thread costs the signaller, another core idle (µs; the
    /// median of the rounds; 0 in files from before it was measured).
    #[serde(default)]
    pub signal_us: f64,
    /// The rounds `signal_us` was measured in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal_rounds: Option<crate::stats::Rounds>,
    /// The wake-up of a thread blocked on a mutex held briefly, from the unlock to it
    /// holding the mutex (µs; the median of the rounds; 0 in files from before it was
    /// measured).
    #[serde(default)]
    pub mutex_wake_us: f64,
    /// The rounds `mutex_wake_us` was measured in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutex_wake_rounds: Option<crate::stats::Rounds>,
    /// The rounds `wake_busy_us` was measured in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_busy_rounds: Option<crate::stats::Rounds>,
    /// The rounds `vain_wake_us` was measured in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vain_wake_rounds: Option<crate::stats::Rounds>,
    /// The rounds `handoff_us` was fitted in (one contended run each), when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff_rounds: Option<crate::stats::Rounds>,
    /// The most a virtual machine's host stole of the CPUs' ready time during the runs the
    /// costs came from — the single client's, the wake-up rounds and the contended rounds
    /// `handoff_us` was fitted to (%; `/proc/stat`'s steal). Runs stolen beyond
    /// `servesim::experiment::STEAL_LIMIT` are measured again, or set aside, while others can
    /// be measured. Left out of the file when 0 (none measured).
    #[serde(default, skip_serializing_if = "crate::experiment::no_steal")]
    pub host_steal_pct: f64,
    /// The constants whose rounds disagreed beyond their bound even after re-measuring
    /// (empty: every constant is stable). A verdict resting on them says so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unstable: Vec<String>,
    /// The time slice this machine's kernel enforces (ms), measured
    /// (`servesim::experiment::slice`); a scenario whose `system.scheduler` is `slice` runs
    /// with it. Absent from calibrations older than the measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice_ms: Option<f64>,
    /// The load generator's CPU per request (ms): sending it and reading its reply, one
    /// user, measured on `servesim measure`'s own load generator. A scenario gets it as
    /// `clients.cpu_ms`; absent from calibrations older than the measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_cpu_ms: Option<f64>,
    /// Batched-step costs by batch size (empty when not measured).
    #[serde(default)]
    pub batch_steps: Vec<BatchStep>,
    /// A sequence's prefill (its prompt's forward pass) outside kernels, paid when it joins
    /// a batch (ms) (empty when not measured). Unbatched, the prefill is in the token costs.
    #[serde(default)]
    pub prefill_locked_ms: Samples,
    /// A sequence's prefill inside kernels (ms) (empty when not measured).
    #[serde(default)]
    pub prefill_free_ms: Samples,
}

fn samples(path: &Path, field: &str, s: &Samples) -> Result<Dist, ScenarioError> {
    let bad =
        |m: String| ScenarioError::invalid("cost.calibration", format!(": {}: {field} {m}", path.display()));
    if s.is_empty() {
        return Err(bad("has no samples; run servesim calibrate again".into()));
    }
    if let Some(x) = s.iter().find(|x| !(x.is_finite() && **x >= 0.0)) {
        return Err(bad(format!("has a sample {x}; samples must be finite and ≥ 0")));
    }
    Ok(Dist::Empirical { file: None, samples: s.clone().into() })
}

impl Calibration {
    /// Reads and checks a calibration file.
    pub fn read(path: &Path) -> Result<Calibration, ScenarioError> {
        let err =
            |m: String| ScenarioError::invalid("cost.calibration", format!(": {}: {m}", path.display()));
        let text = crate::input::read_text(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                err(format!("{e}; run `servesim calibrate --out {}` first", path.display()))
            }
            std::io::ErrorKind::FileTooLarge => {
                err(format!("{e}; give the calibration.json that `servesim calibrate` writes"))
            }
            _ => err(e.to_string()),
        })?;
        let cal: Calibration =
            serde_json::from_str(&text).map_err(|e| err(format!("not a calibration file: {e}")))?;
        if cal.format != CALIBRATION_FORMAT {
            return Err(err(format!(
                "format {} is not the format {CALIBRATION_FORMAT} this version reads; calibrate again",
                cal.format
            )));
        }
        if cal.kernels_per_token == 0 || !(cal.handoff_us.is_finite() && cal.handoff_us >= 0.0) {
            return Err(err("kernels_per_token must be ≥ 1 and handoff_us ≥ 0".into()));
        }
        for (name, us) in [
            ("vain_wake_us", cal.vain_wake_us),
            ("signal_us", cal.signal_us),
            ("mutex_wake_us", cal.mutex_wake_us),
            ("switch_us", cal.switch_us),
        ] {
            if !(us.is_finite() && (0.0..=1e6).contains(&us)) {
                return Err(err(format!("{name} must be in [0, 1e6] µs, got {us}")));
            }
        }
        if let Some(ms) = cal.load_cpu_ms.filter(|ms| !(ms.is_finite() && (0.0..=1000.0).contains(ms))) {
            return Err(err(format!("load_cpu_ms must be in [0, 1000] ms, got {ms}")));
        }
        if let Some(ms) = cal.slice_ms.filter(|ms| !(ms.is_finite() && (0.001..=1000.0).contains(ms))) {
            return Err(err(format!("slice_ms must be in [0.001, 1000] ms, got {ms}")));
        }
        Ok(cal)
    }

    /// Adds the calibrated costs to the scenario's emulated ones (see the module docs).
    pub fn apply(self, sc: &mut Scenario, path: &Path) -> Result<(), ScenarioError> {
        let c = &mut sc.cost;
        let add = |d: &mut Dist, field: &str, s: &Samples| -> Result<(), ScenarioError> {
            *d = samples(path, field, s)?.plus(std::mem::replace(d, Dist::Const(0.0)));
            Ok(())
        };
        add(&mut c.loop_in_free_ms, "loop_in_ms", &self.loop_in_ms)?;
        add(&mut c.loop_out_free_ms, "loop_out_ms", &self.loop_out_ms)?;
        add(&mut c.request_locked_ms, "request_locked_ms", &self.request_locked_ms)?;
        add(&mut c.request_free_ms, "request_free_ms", &self.request_free_ms)?;
        add(&mut c.token_locked_ms, "token_locked_ms", &self.token_locked_ms)?;
        add(&mut c.token_free_ms, "token_free_ms", &self.token_free_ms)?;
        if sc.batching.mode != super::BatchingMode::None && !self.prefill_locked_ms.is_empty() {
            add(&mut c.request_locked_ms, "prefill_locked_ms", &self.prefill_locked_ms)?;
            add(&mut c.request_free_ms, "prefill_free_ms", &self.prefill_free_ms)?;
        }
        if !self.rtt_ms.is_empty() {
            add(&mut c.rtt_ms, "rtt_ms", &self.rtt_ms)?;
        }
        if !self.wake_us.is_empty() {
            c.wake_us = samples(path, "wake_us", &self.wake_us)?;
            c.vain_wake_us = self.vain_wake_us;
            c.signal_us = self.signal_us;
            c.mutex_wake_us = self.mutex_wake_us;
            c.wake_busy_us = None;
        }
        if !self.wake_busy_us.is_empty() {
            c.wake_busy_us = Some(samples(path, "wake_busy_us", &self.wake_busy_us)?);
        }
        c.release_points = self.kernels_per_token;
        c.handoff_us += self.handoff_us;
        c.switch_us += self.switch_us;
        if let Some(ms) = self.slice_ms.filter(|_| sc.system.scheduler == super::Scheduler::Slice) {
            sc.system.slice_ms = ms;
        }
        if let Some(ms) = self.load_cpu_ms {
            sc.clients.cpu_ms = ms;
        }
        sc.cost.calibrated = Some(Arc::new(self));
        Ok(())
    }
}

impl Calibration {
    /// One line per component — mean and p95 of its samples — then the lock's constants
    /// with their rounds and whether they were stable, and the batched steps.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let (cal, mut s) = (self, String::new());
        let stat = |s: &[f64]| {
            let mut v = s.to_vec();
            v.sort_by(f64::total_cmp);
            let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
            (mean, v.get((v.len() * 95 / 100).min(v.len().saturating_sub(1))).copied().unwrap_or(0.0))
        };
        for (name, v) in [
            ("loop_in_ms", &cal.loop_in_ms),
            ("loop_out_ms", &cal.loop_out_ms),
            ("token_locked_ms", &cal.token_locked_ms),
            ("token_free_ms", &cal.token_free_ms),
            ("rtt_ms", &cal.rtt_ms),
            ("prefill_locked_ms", &cal.prefill_locked_ms),
            ("prefill_free_ms", &cal.prefill_free_ms),
        ] {
            let (m, p95) = stat(v);
            let _ = writeln!(s, "  {name:<18} mean {m:>8.4} ms   p95 {p95:>8.4} ms   ({} samples)", v.len());
        }
        let _ = writeln!(s, "  kernels_per_token  {}", cal.kernels_per_token);
        let rounds = |r: &Option<crate::stats::Rounds>| {
            r.as_ref().map_or(String::new(), |r| {
                format!(
                    "  ({} rounds, spread {:.0}%{})",
                    r.rounds.len(),
                    r.spread * 100.0,
                    if r.stable { "" } else { ", UNSTABLE" }
                )
            })
        };
        let _ = writeln!(s, "  handoff_us         {:.1} µs{}", cal.handoff_us, rounds(&cal.handoff_rounds));
        if cal.switch_us > 0.0 {
            let _ = writeln!(s, "  switch_us          {:.2} µs{}", cal.switch_us, rounds(&cal.switch_rounds));
        }
        if cal.host_steal_pct > 0.0 {
            let _ = writeln!(
                s,
                "  host steal         up to {:.1}% of the CPUs' time in the runs above{}",
                cal.host_steal_pct,
                if cal.host_steal_pct > crate::experiment::STEAL_LIMIT * 100.0 {
                    " (a busy host: calibrate again when it is quieter)"
                } else {
                    ""
                }
            );
        }
        let (wake, _) = stat(&cal.wake_us);
        let _ = writeln!(s, "  wake_us            mean {wake:.1} µs{}", rounds(&cal.wake_rounds));
        if !cal.wake_busy_us.is_empty() {
            let (w, _) = stat(&cal.wake_busy_us);
            let _ = writeln!(s, "  wake_busy_us       mean {w:.1} µs{}", rounds(&cal.wake_busy_rounds));
            let _ = writeln!(s, "  signal_us          {:.1} µs{}", cal.signal_us, rounds(&cal.signal_rounds));
        }
        if cal.mutex_wake_us > 0.0 {
            let _ = writeln!(
                s,
                "  mutex_wake_us      {:.1} µs{}",
                cal.mutex_wake_us,
                rounds(&cal.mutex_wake_rounds)
            );
        }
        let _ =
            writeln!(s, "  vain_wake_us       {:.2} µs{}", cal.vain_wake_us, rounds(&cal.vain_wake_rounds));
        if let Some(ms) = cal.slice_ms {
            let _ = writeln!(
                s,
                "  slice_ms           {ms:.2} ms (the kernel's time slice, for system.scheduler = \"slice\")"
            );
        }
        if let Some(ms) = cal.load_cpu_ms {
            let _ = writeln!(s, "  load_cpu_ms        {ms:.4} ms (the load generator's CPU per request)");
        }
        if !cal.unstable.is_empty() {
            let _ = writeln!(
                s,
                "  UNSTABLE: the rounds of {} disagree beyond their bound after re-measuring; predictions \
                 resting on them carry that spread",
                cal.unstable.join(", ")
            );
        }
        for b in &cal.batch_steps {
            let (l, _) = stat(&b.locked_ms);
            let (f, _) = stat(&b.free_ms);
            let _ =
                writeln!(s, "  batch {:>3}: step {:>7.3} ms (locked {l:.3}, free {f:.3})", b.batch, l + f);
        }
        s
    }
}
