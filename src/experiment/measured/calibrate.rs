//! `servesim calibrate`: the real server's own costs on this machine, as a calibration file
//! that scenarios reference with `cost.calibration`.
//!
//! ```text
//!  1. server, 1 thread, GIL, 1 client ─► each response's timing, minus the nominal
//!     emulated work (what emulating it costs beyond nominal stays in):
//!       (matmul + busy_free) / tokens         → token_free_ms   (the GIL-free kernels)
//!       (compute − the above) / tokens        → token_locked_ms (model code outside kernels)
//!       client latency − compute − lock wait  → loop_in_ms + loop_out_ms (HTTP, JSON, dispatch)
//!  2. cores + 1 clients to the scenario's pool (at least as many threads) behind the lock:
//!     the hand-off cost at which the simulator holds its throughput ─► handoff_us
//!  3. the batch scheduler's step at B = 1, 2, 4 …, with the GIL and emulated step work
//!     (nominal taken out) ─► batch_steps (locked = outside kernels, free = kernels);
//!     a joining sequence's prefill ─► prefill_locked_ms, prefill_free_ms
//! ```
//!
//! Every cost is kept as its samples (an empirical distribution), so the simulator draws
//! what the machine did, tails included. One calibration serves every point of a
//! validation: the emulated work a point adds (`cost.*`) is added on top in both backends.

mod batched;
mod client;
mod contended;
mod file;
mod single;
mod wake;

pub use file::{calibration_at, write_calibration};
pub use wake::{Wake, wake_costs};

use crate::experiment::measured::measure::MeasureError;
use crate::experiment::{CpuTicks, least_stolen, machine, stolen_since};
use crate::gpt::Model;
use crate::scenario::{CALIBRATION_FORMAT, Calibration, LockKind, Override, Scenario, ScenarioError};
use crate::server::{self, CpuPlan, LaunchOptions, Limits, ServerConfig, ServerProcess};
use single::Nominal;
use std::path::PathBuf;
use std::time::Duration;

/// Why a calibration could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    /// The scenario to calibrate with is invalid.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
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

/// The load generator's CPU per request, when the single client's run went through.
type LoadCpu = Option<Result<f64, MeasureError>>;

/// The scenario the server is calibrated with: its CPUs, prompt, tokens and emulated work,
/// one worker with one thread and its lock, or the GIL if it has none (so lock operations
/// are paid), no batching.
fn bare(sc: &Scenario) -> Result<Scenario, ScenarioError> {
    let mut overrides = vec![
        Override::new("system.workers", 1),
        Override::new("worker.handler", "sync"),
        Override::new("worker.threads", 1),
        Override::new("batching.mode", "none"),
    ];
    // The scenario's own lock, so that the contended run and the hand-off fit see it; the GIL
    // when it has none.
    if sc.worker.lock == LockKind::None {
        overrides.push(Override::new("worker.lock", "gil"));
    }
    sc.with(&overrides)
}

/// The most single-client requests a calibration measures ([`CalibrateOptions::requests`]):
/// their samples are held in memory, and a million take hours.
pub const MAX_REQUESTS: u32 = 1_000_000;

/// Measures the real costs of the server that `sc` describes (its CPUs, prompt length and
/// tokens per request). `progress` is told each stage as it starts.
pub fn calibrate(
    sc: &Scenario,
    opts: &CalibrateOptions,
    mut progress: impl FnMut(&str),
) -> Result<Calibration, CalibrateError> {
    if !(1..=MAX_REQUESTS).contains(&opts.requests) {
        return Err(CalibrateError::Options(format!(
            "--requests must be between 1 and {MAX_REQUESTS} (a million single-client requests take hours), \
             got {}",
            opts.requests
        )));
    }
    let model_dir = server::resolve_model_dir(opts.model_dir.as_deref());
    let bare = bare(sc)?;
    let config = ServerConfig::from_scenario(&bare, Limits::default(), model_dir.clone())?;
    let allowed = server::affinity::allowed()
        .map_err(|e| CalibrateError::Options(format!("cannot read the CPU affinity: {e}")))?;
    let cpus = CpuPlan::split(&allowed, sc.system.cores as usize);
    let launch = LaunchOptions {
        binary: opts.binary.clone(),
        cpus: Some(cpus.server.clone()),
        ..LaunchOptions::default()
    };
    // The single client's run, measured again (twice at most) while a virtual machine's host
    // steals beyond STEAL_LIMIT of the CPUs' time from it; the least stolen kept.
    let (single, single_steal, load_cpu) = least_stolen(
        2,
        |again| -> Result<(single::Single, f64, LoadCpu), CalibrateError> {
            if let Some(stolen) = again {
                progress(&format!(
                    "single-client requests: the host stole {:.1}% of the CPUs' time; measuring again",
                    stolen * 100.0
                ));
            }
            progress("single-client requests on the real server");
            let srv = ServerProcess::start(&config, &launch)?;
            let ticks = CpuTicks::now();
            let single = single::requests(&srv, sc, &Nominal::of(&config.cost), opts);
            let steal = stolen_since(ticks);
            let load_cpu = single.is_ok().then(|| {
                progress("the load generator's CPU per request");
                crate::experiment::measured::measure::load_cpu_ms(
                    &srv,
                    sc,
                    &model_dir,
                    &cpus,
                    opts.requests.into(),
                )
            });
            let _ = srv.stop(Duration::from_secs(10));
            Ok((single?, steal, load_cpu))
        },
        |run| run.1,
    )?;
    let load_cpu_ms = load_cpu
        .transpose()
        .map_err(|e| CalibrateError::Request { index: 0, message: format!("the load generator: {e}") })?;
    // Under CPython's GIL a hand-off is a wake-up, measured below; the fair locks' hand-off
    // cost is fitted to a contended run of the real server (`None`: not a fair lock).
    let fair_lock = matches!(sc.worker.lock, LockKind::Mutex | LockKind::FairGil);
    let run = if fair_lock {
        progress("lock hand-offs on the real server");
        Some(contended::rounds(&config, &launch, sc, opts, &mut progress)?)
    } else {
        None
    };
    progress("wake-ups of a parked thread");
    let wake = wake_costs();
    progress("the kernel's time slice");
    // A machine that forbids pinning has no measured slice; the scenario's stays.
    let slice = crate::experiment::slice::measure(Duration::from_millis(500));
    progress("batched steps");
    let model = Model::load(&model_dir)?;
    let batch_steps = batched::batch_steps(&model, sc, opts);
    let (prefill_locked_ms, prefill_free_ms) =
        batched::prefill(&model, sc.workload.prompt_chars as usize, opts);
    let n = single.samples.len();
    let mut cal = Calibration {
        format: CALIBRATION_FORMAT,
        machine: machine(),
        method: format!(
            "{n} requests from one client after {} warm-up ({} prompt characters, tokens as \
             workload.new_tokens), server on CPUs {} with 1 thread, the GIL and the scenario's \
             emulated work (its nominal mean taken out); loop work: the event loop's CPU time per \
             request; rtt: the rest of each request's time outside the handler, the client's own CPU \
             taken out; load_cpu_ms: the load generator's CPU per request, one user; \
             {} batched steps per batch size and prefills, on the batch scheduler's own code \
             path with the GIL and emulated step work (nominal taken out)",
            opts.warmup, sc.workload.prompt_chars, cpus.server, opts.batch_samples
        ),
        kernels_per_token: model.config().kernels_per_token() as u32,
        batch_steps,
        prefill_locked_ms,
        prefill_free_ms,
        load_cpu_ms,
        ..Calibration::default()
    };
    single.record(&mut cal);
    cal.host_steal_pct = single_steal * 100.0;
    let wake_note = wake::record(wake, &mut cal);
    // The slice and the hand-off's CPU first: the hand-off is fitted given everything else
    // measured.
    let slice_note = match slice {
        Ok(s) => {
            cal.slice_ms = Some(s.ms);
            format!("time slice {:.2} ms ({})", s.ms, s.source)
        }
        Err(e) => format!("no time slice: {e}"),
    };
    let handoff = match run {
        Some(run) => {
            progress("the CPU of a hand-off on a busy core");
            let switch = contended::switch(&mut cal);
            format!("{switch}; {}", contended::handoff(sc, &mut cal, run, opts))
        }
        None => "no hand-off cost (CPython's GIL hands nothing over)".to_owned(),
    };
    cal.method = format!("{}; {wake_note}; {handoff}; {slice_note}", cal.method);
    Ok(cal)
}
