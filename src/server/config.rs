//! The server's typed plan: the scenario's knobs that the real server honours, plus its own
//! limits, validated before any process starts.
//!
//! Knob for knob, the names are the scenario's (`worker.handler`, `worker.threads`,
//! `worker.lock`, `worker.switch_interval_ms`, `worker.queue_limit`, `system.workers`,
//! `system.cores`, `cost.*`, `batching.*`). Two scenario knobs describe the real server
//! rather than steer it, so the server ignores them: `cost.release_points` (its release
//! points are the model's matmul kernels, [`crate::gpt::Config::kernels_per_token`] per
//! token) and `cost.handoff_us` (its hand-offs cost what the OS makes them cost).
//!
//! A scenario with `cost.calibration` has had the calibrated costs added to its emulated
//! ones when it was loaded; the server takes the calibration back out, because it *is* what
//! the calibration measured and must emulate only the extra work the file asks for.

use crate::scenario::{Batching, BatchingMode, Calibration, Handler, LockKind, Scenario};
use crate::workload::Dist;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Most pool threads a worker may start.
pub const MAX_THREADS: u32 = 4_096;
/// Most worker processes.
pub const MAX_WORKERS: u32 = 256;
/// Largest batch a worker's scheduler may run.
pub const MAX_BATCH: u32 = 1_024;

/// Why a scenario cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A knob has a value the real server does not support.
    #[error("{field}: {message}")]
    Unsupported {
        /// The scenario field.
        field: &'static str,
        /// What is unsupported and what to do.
        message: String,
    },
}

fn unsupported(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Unsupported { field, message: message.into() }
}

/// The emulated interpreter work of each request (ms), drawn per request (see
/// [`crate::scenario::Cost`] for each field's meaning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmulatedCost {
    /// Loop work before dispatch, without the lock.
    pub loop_in_free_ms: Dist,
    /// Loop work before dispatch, holding the lock when `loop_lock`.
    pub loop_in_ms: Dist,
    /// Loop work after the handler, holding the lock when `loop_lock`.
    pub loop_out_ms: Dist,
    /// Loop work after the handler, without the lock.
    pub loop_out_free_ms: Dist,
    /// Whether `loop_in_ms` and `loop_out_ms` hold the lock.
    pub loop_lock: bool,
    /// Handler work per request holding the lock.
    pub request_locked_ms: Dist,
    /// Handler work per request without the lock.
    pub request_free_ms: Dist,
    /// Work per generated token holding the lock, split over the token's kernel exits.
    pub token_locked_ms: Dist,
    /// Work per generated token without the lock, split over the token's kernels.
    pub token_free_ms: Dist,
}

/// The server's own limits (not scenario knobs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Largest request body; larger ones get 413 (bytes). By default, 65536.
    pub body_limit_bytes: usize,
    /// Request timeout from arrival (ms): a request still queued (for the loop, a pool
    /// thread or a batch) at it gets 504 without running; a running generation stops at its
    /// next token boundary and gets 504. Work between two boundaries (per-request work, a
    /// prefill, one token, loop work) is not interrupted. By default, 60000.
    pub request_timeout_ms: f64,
    /// After SIGTERM/SIGINT, how long in-flight requests may take to finish (ms).
    /// By default, 10000.
    pub drain_timeout_ms: f64,
    /// How long a worker's event loop may go without a heartbeat before the supervisor
    /// takes it for hung, kills it (SIGKILL) and starts a replacement (ms), between
    /// [`HEARTBEAT_TIMEOUT_MS`]'s bounds. The loop beats whenever it is free and, in
    /// `async-blocking`, at every token boundary of the handler running on it; one piece of
    /// work that holds the loop longer (a large `cost.loop_*`, or `cost.request_*` in
    /// `async-blocking`) must stay under it. By default, 10000.
    pub heartbeat_timeout_ms: f64,
    /// Connections per worker with a request in progress (from its parsed head until its
    /// response is sent); a request beyond it waits for one to finish. A connection that is
    /// idle or still sending its head holds no slot (the timeouts below close it), and
    /// `GET /healthz` is answered without one, so slow or idle clients cannot starve health
    /// checks. By default, 0: twice `worker.queue_limit` plus 64.
    pub max_connections: u32,
    /// How long a client has to send a complete request head (ms), counted from when the
    /// connection is ready for it: opened, or its previous response sent. A connection that
    /// has not sent its head by then is closed without an answer. By default, 10000.
    pub header_read_timeout_ms: f64,
    /// How long a client has to send a request's whole body (ms), counted from when the
    /// handler starts reading it; past it the request gets a JSON 408 and the connection
    /// is closed. By default, 10000.
    pub body_read_timeout_ms: f64,
    /// How long a keep-alive connection may stay idle (ms): with no request in progress and
    /// no byte received for this long, the server closes it. By default, 5000 (uvicorn's
    /// `--timeout-keep-alive`).
    pub keep_alive_timeout_ms: f64,
    /// Date each request's arrival by its `x-request-start` header (µs since the UNIX
    /// epoch), when it is at most [`REQUEST_START_WINDOW`] old: for a server behind a proxy
    /// that sets it. By default, false: a client could otherwise age its own requests (a
    /// time in the past forced 504s and added up to an hour to the latency metrics).
    #[serde(default)]
    pub trust_request_start: bool,
}

/// The range of [`Limits::heartbeat_timeout_ms`] (ms): from 100 ms to one hour.
pub const HEARTBEAT_TIMEOUT_MS: std::ops::RangeInclusive<f64> = 100.0..=3_600_000.0;

/// The oldest `x-request-start` trusted (with [`Limits::trust_request_start`]).
pub const REQUEST_START_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_limit_bytes: 64 * 1024,
            request_timeout_ms: 60_000.0,
            drain_timeout_ms: 10_000.0,
            heartbeat_timeout_ms: 10_000.0,
            max_connections: 0,
            header_read_timeout_ms: 10_000.0,
            body_read_timeout_ms: 10_000.0,
            keep_alive_timeout_ms: 5_000.0,
            trust_request_start: false,
        }
    }
}

/// Everything a worker process needs to serve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerConfig {
    /// A name for logs (the scenario's).
    pub name: String,
    /// `worker.handler`.
    pub handler: Handler,
    /// `worker.threads`.
    pub threads: u32,
    /// `worker.lock`.
    pub lock: LockKind,
    /// `worker.switch_interval_ms` (ms).
    pub switch_interval_ms: f64,
    /// `worker.queue_limit` (requests).
    pub queue_limit: u32,
    /// `system.workers` (processes).
    pub workers: u32,
    /// `system.cores` (CPUs).
    pub cores: u32,
    /// `cost.*`, without any calibration.
    pub cost: EmulatedCost,
    /// `batching.*`, with sample files inlined. With a mode other than `none` the event
    /// loop hands every request to the worker's batch scheduler; `handler` and `threads`
    /// are then unused (no threadpool is started), as in the simulator.
    pub batching: Batching,
    /// `workload.new_tokens`: drawn (and rounded) for a request that gives no
    /// `max_new_tokens`, then lowered to what the context leaves.
    pub new_tokens: Dist,
    /// Seed of the cost draws (`run.seed`); worker i draws from its own stream.
    pub seed: u64,
    /// The server's own limits.
    pub limits: Limits,
    /// The Mini-GPT directory (config.json + model.safetensors).
    pub model_dir: PathBuf,
}

impl ServerConfig {
    /// The server for a scenario, with the given limits and model directory.
    pub fn from_scenario(sc: &Scenario, limits: Limits, model_dir: PathBuf) -> Result<Self, ConfigError> {
        let (w, s, b) = (&sc.worker, &sc.system, &sc.batching);
        if w.threads > MAX_THREADS {
            return Err(unsupported("worker.threads", format!("must be ≤ {MAX_THREADS}, got {}", w.threads)));
        }
        if s.workers > MAX_WORKERS {
            return Err(unsupported("system.workers", format!("must be ≤ {MAX_WORKERS}, got {}", s.workers)));
        }
        if b.mode != BatchingMode::None && b.max_batch > MAX_BATCH {
            return Err(unsupported(
                "batching.max_batch",
                format!("must be ≤ {MAX_BATCH}, got {}", b.max_batch),
            ));
        }
        check_limits(&limits)?;
        Ok(ServerConfig {
            name: sc.display_name().to_owned(),
            handler: w.handler,
            threads: w.threads,
            lock: w.lock,
            switch_interval_ms: w.switch_interval_ms,
            queue_limit: w.queue_limit,
            workers: s.workers,
            cores: s.cores,
            cost: emulated(sc),
            batching: batching(b),
            new_tokens: inline(&sc.workload.new_tokens),
            seed: sc.run.seed,
            limits,
            model_dir,
        })
    }

    /// Whether requests go to a batch scheduler (`batching.mode` is not `none`).
    pub fn batched(&self) -> bool {
        self.batching.mode != BatchingMode::None
    }

    /// Requests in progress at once per worker, `GET /healthz` aside (see
    /// [`Limits::max_connections`]).
    pub fn max_connections(&self) -> u32 {
        match self.limits.max_connections {
            0 => self.queue_limit.saturating_mul(2).saturating_add(64),
            n => n,
        }
    }
}

/// Checks the server's own limits (also for a configuration that did not come from a
/// scenario, such as one read as JSON).
pub(crate) fn check_limits(l: &Limits) -> Result<(), ConfigError> {
    // A body is held whole before it is parsed: the bound caps what one request may make a
    // worker allocate.
    if !(64..=MAX_BODY_LIMIT_BYTES).contains(&l.body_limit_bytes) {
        return Err(unsupported(
            "limits.body_limit_bytes",
            format!(
                "must be between 64 and {MAX_BODY_LIMIT_BYTES} bytes (64 MiB), got {}; set it with serve \
                 --body-limit",
                l.body_limit_bytes
            ),
        ));
    }
    for (field, flag, ms) in [
        ("limits.request_timeout_ms", "--timeout-ms", l.request_timeout_ms),
        ("limits.drain_timeout_ms", "--drain-ms", l.drain_timeout_ms),
        ("limits.header_read_timeout_ms", "--header-timeout-ms", l.header_read_timeout_ms),
        ("limits.body_read_timeout_ms", "--body-timeout-ms", l.body_read_timeout_ms),
        ("limits.keep_alive_timeout_ms", "--keep-alive-ms", l.keep_alive_timeout_ms),
    ] {
        // Above a day a timeout no longer protects anything; it also keeps the value a
        // valid `Duration`.
        if !(ms.is_finite() && ms > 0.0 && ms <= MAX_TIMEOUT_MS) {
            return Err(unsupported(
                field,
                format!("must be > 0 and ≤ {MAX_TIMEOUT_MS} ms, got {ms}; set it with serve {flag}"),
            ));
        }
    }
    if !HEARTBEAT_TIMEOUT_MS.contains(&l.heartbeat_timeout_ms) {
        let (lo, hi) = (HEARTBEAT_TIMEOUT_MS.start(), HEARTBEAT_TIMEOUT_MS.end());
        return Err(unsupported(
            "limits.heartbeat_timeout_ms",
            format!(
                "must be between {lo} and {hi} ms, got {}; set it (serve --heartbeat-ms) above the longest \
                 a worker's event loop may be busy without a break",
                l.heartbeat_timeout_ms
            ),
        ));
    }
    Ok(())
}

/// The longest timeout a limit may have (ms): one day.
pub const MAX_TIMEOUT_MS: f64 = 86_400_000.0;

/// The largest [`Limits::body_limit_bytes`]: 64 MiB, a thousand times what a request for
/// the Mini-GPT's context needs.
pub const MAX_BODY_LIMIT_BYTES: usize = 64 << 20;

/// The scenario's emulated costs: its `cost.*` minus any calibration, with sample files
/// inlined so the plan can travel to worker processes.
fn emulated(sc: &Scenario) -> EmulatedCost {
    let c = &sc.cost;
    let cal = c.calibrated.as_deref();
    let strip = |d: &Dist, part: fn(&Calibration) -> &Vec<f64>| {
        inline(&cal.map_or_else(|| d.clone(), |cal| without(d, part(cal))))
    };
    EmulatedCost {
        loop_in_free_ms: strip(&c.loop_in_free_ms, |k| &k.loop_in_ms),
        loop_in_ms: inline(&c.loop_in_ms),
        loop_out_ms: inline(&c.loop_out_ms),
        loop_out_free_ms: strip(&c.loop_out_free_ms, |k| &k.loop_out_ms),
        loop_lock: c.loop_lock,
        request_locked_ms: strip(&c.request_locked_ms, |k| &k.request_locked_ms),
        request_free_ms: strip(&c.request_free_ms, |k| &k.request_free_ms),
        token_locked_ms: strip(&c.token_locked_ms, |k| &k.token_locked_ms),
        token_free_ms: strip(&c.token_free_ms, |k| &k.token_free_ms),
    }
}

/// The scenario's batching, with sample files inlined. A calibration's batched-step costs
/// are not in these distributions (the simulator adds them itself), so nothing is taken out.
fn batching(b: &Batching) -> Batching {
    Batching {
        step_locked_ms: inline(&b.step_locked_ms),
        step_free_ms: inline(&b.step_free_ms),
        seq_locked_ms: inline(&b.seq_locked_ms),
        seq_free_ms: inline(&b.seq_free_ms),
        ..b.clone()
    }
}

/// `d` without the calibrated part `samples` that loading added in front of it
/// (`Calibration::apply` builds `calibrated.plus(emulated)`).
fn without(d: &Dist, samples: &[f64]) -> Dist {
    let is_cal = |p: &Dist| matches!(p, Dist::Empirical { samples: s, .. } if s[..] == *samples);
    match d {
        p if is_cal(p) => Dist::Const(0.0),
        Dist::Sum(parts) if parts.len() == 2 && is_cal(&parts[0]) => parts[1].clone(),
        other => other.clone(),
    }
}

/// `d` with every empirical distribution's samples inline (no file reference).
fn inline(d: &Dist) -> Dist {
    match d {
        Dist::Empirical { samples, .. } => Dist::Empirical { file: None, samples: samples.clone() },
        Dist::Sum(parts) => Dist::Sum(parts.iter().map(inline).collect()),
        other => other.clone(),
    }
}

/// The Mini-GPT directory to use: `dir` if given, else `models/mini-gpt` under the current
/// directory, else the one in this crate's source tree. Returned absolute.
pub fn resolve_model_dir(dir: Option<&Path>) -> PathBuf {
    let candidates: Vec<PathBuf> = match dir {
        Some(d) => vec![d.to_owned()],
        None => vec![
            PathBuf::from("models/mini-gpt"),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mini-gpt"),
        ],
    };
    let found = candidates.iter().find(|d| d.join("config.json").exists()).unwrap_or(&candidates[0]);
    std::path::absolute(found).unwrap_or_else(|_| found.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(toml: &str) -> Scenario {
        Scenario::parse(toml, Path::new("t"), Path::new("."), &[]).unwrap()
    }

    #[test]
    fn knobs_carry_over_under_their_names() {
        let sc = scenario(
            "[worker]\nhandler = \"async-offload\"\nthreads = 3\nlock = \"gil\"\nswitch_interval_ms = 2\n\
             queue_limit = 9\n[system]\nworkers = 2\ncores = 1\n[cost]\ntoken_locked_ms = 0.5\n",
        );
        let c = ServerConfig::from_scenario(&sc, Limits::default(), "m".into()).unwrap();
        assert_eq!(
            (c.handler, c.threads, c.lock, c.queue_limit),
            (Handler::AsyncOffload, 3, LockKind::Gil, 9)
        );
        assert_eq!((c.switch_interval_ms, c.workers, c.cores), (2.0, 2, 1));
        assert_eq!(c.cost.token_locked_ms, Dist::Const(0.5));
        assert_eq!(c.max_connections(), 82);
    }

    #[test]
    fn absurd_sizes_are_refused_with_the_field() {
        for (toml, field) in [
            ("[batching]\nmode = \"continuous\"\nmax_batch = 5000", "batching.max_batch"),
            ("[worker]\nthreads = 100000", "worker.threads"),
            ("[system]\nworkers = 1000", "system.workers"),
        ] {
            let err =
                ServerConfig::from_scenario(&scenario(toml), Limits::default(), "m".into()).unwrap_err();
            assert!(err.to_string().starts_with(field), "{err}");
        }
    }

    #[test]
    fn bad_limits_are_refused_with_the_field() {
        let sc = scenario("");
        type Spoil = fn(&mut Limits);
        let cases: [(Spoil, &str); 8] = [
            (|l| l.body_limit_bytes = 10, "limits.body_limit_bytes"),
            // Accepted once: any client could then make a worker hold a body of any size.
            (|l| l.body_limit_bytes = usize::MAX, "limits.body_limit_bytes: must be between 64 and 67108864"),
            (|l| l.request_timeout_ms = 0.0, "limits.request_timeout_ms"),
            (|l| l.drain_timeout_ms = f64::NAN, "limits.drain_timeout_ms"),
            (|l| l.header_read_timeout_ms = -1.0, "limits.header_read_timeout_ms"),
            (|l| l.body_read_timeout_ms = f64::INFINITY, "limits.body_read_timeout_ms"),
            (|l| l.keep_alive_timeout_ms = 1e12, "limits.keep_alive_timeout_ms"),
            (|l| l.heartbeat_timeout_ms = 0.0, "limits.heartbeat_timeout_ms"),
        ];
        for (spoil, field) in cases {
            let mut limits = Limits::default();
            spoil(&mut limits);
            let err = ServerConfig::from_scenario(&sc, limits, "m".into()).unwrap_err();
            assert!(err.to_string().starts_with(field), "{err}");
            assert!(err.to_string().contains("serve --"), "{err}");
        }
        assert!(ServerConfig::from_scenario(&sc, Limits::default(), "m".into()).is_ok());
    }

    #[test]
    fn a_heartbeat_timeout_out_of_range_is_refused_with_the_field_and_the_fix() {
        for bad in [0.0, 50.0, -1.0, f64::NAN, f64::INFINITY, 4e6] {
            let limits = Limits { heartbeat_timeout_ms: bad, ..Limits::default() };
            let err = ServerConfig::from_scenario(&scenario(""), limits, "m".into()).unwrap_err().to_string();
            assert!(
                err.starts_with("limits.heartbeat_timeout_ms: must be between 100 and 3600000 ms"),
                "{err}"
            );
            assert!(err.contains("--heartbeat-ms"), "{err}");
        }
        let ok = Limits { heartbeat_timeout_ms: 100.0, ..Limits::default() };
        assert!(ServerConfig::from_scenario(&scenario(""), ok, "m".into()).is_ok());
        // A configuration without the fields (an older client's) gets the defaults.
        let json = serde_json::json!({"body_limit_bytes": 100});
        let l: Limits = serde_json::from_value(json).unwrap();
        assert_eq!(l.heartbeat_timeout_ms, 10_000.0);
        assert_eq!((l.header_read_timeout_ms, l.keep_alive_timeout_ms), (10_000.0, 5_000.0));
    }

    #[test]
    fn batching_carries_over() {
        for (mode, batched) in
            [(BatchingMode::None, false), (BatchingMode::Static, true), (BatchingMode::Continuous, true)]
        {
            let name = serde_json::to_value(mode).unwrap();
            let sc = scenario(&format!(
                "[batching]\nmode = {name}\nmax_batch = 16\nmax_wait_ms = 3\nseq_free_ms = 0.25\n"
            ));
            let c = ServerConfig::from_scenario(&sc, Limits::default(), "m".into()).unwrap();
            assert_eq!((c.batching.mode, c.batched()), (mode, batched));
            assert_eq!((c.batching.max_batch, c.batching.max_wait_ms), (16, 3.0));
            assert_eq!(c.batching.seq_free_ms, Dist::Const(0.25));
        }
    }

    #[test]
    fn calibration_is_taken_back_out() {
        let cal = vec![1.0, 2.0];
        let emp = || Dist::Empirical { file: None, samples: cal.clone().into() };
        assert_eq!(without(&emp(), &cal), Dist::Const(0.0));
        let sum = emp().plus(Dist::Const(0.3));
        assert_eq!(without(&sum, &cal), Dist::Const(0.3));
        assert_eq!(without(&Dist::Const(0.7), &cal), Dist::Const(0.7));
        let other = Dist::Empirical { file: Some("x.csv".into()), samples: vec![5.0].into() };
        assert_eq!(inline(&other), Dist::Empirical { file: None, samples: vec![5.0].into() });
    }
}
