//! `servesim serve`: the supervisor of `system.workers` worker processes on one port.
//!
//! ```text
//!  supervisor: pin CPUs ─ listen on 127.0.0.1:PORT: one SO_REUSEPORT socket per worker
//!             index, owned by the supervisor to the end
//!     ├─ servesim serve --worker  (spec on stdin, index i's socket inherited)
//!     │     ─ load weights ─ accept on it ─ {"event":"ready"}
//!     ├─ … one per worker                  then {"event":"heartbeat"} every beat
//!     └─ all ready: admin address up, print {"event":"ready","addr":…,"admin":…,"workers":[…]}
//!  a worker exits ─► a replacement on the same socket ─► {"event":"restarted","worker":…}
//!  a worker's heartbeat is late ─► SIGKILL ─► a replacement
//!  SIGTERM/SIGINT ─► forwarded to every worker, sockets closed ─► each drains
//!                 ─► {"event":"stopped",…}
//! ```
//!
//! Workers inherit the supervisor's CPU affinity and die with it. A worker that exits on its
//! own (a crash, `kill -9`) is replaced, as gunicorn's arbiter does: the supervisor owns
//! each worker index's listening socket and hands the replacement the same one, so the
//! connections the kernel's `SO_REUSEPORT` hash sent there while the index had no process
//! wait in its accept queue and are served; only the connections the dead worker had
//! accepted are lost with it. A worker whose event loop sends no
//! heartbeat for `limits.heartbeat_timeout_ms` (stopped, deadlocked, or stuck on one piece
//! of work) is killed and replaced the same way. A worker that keeps failing to start is
//! retried with a back-off and then given up on, stopping the server with an error (see
//! `workers` for the policy).
//!
//! The supervisor's admin address (`admin` on the ready line) serves its counters and every
//! worker's metrics in one place (see `admin`): `/metrics`, `/stats`, `/healthz`.

mod admin;
mod workers;

pub use workers::{MAX_START_FAILURES, STABLE_AFTER, backoff};

use super::ServerError;
use super::config::{self, ServerConfig};
use super::listener;
use super::shutdown;
use super::stats::RequestCounts;
use crate::affinity::{self, CpuList};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use workers::{Ended, Workers};

/// How the supervisor starts.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeOptions {
    /// Port on 127.0.0.1; 0 picks an ephemeral one. By default, 8000.
    pub port: u16,
    /// CPUs for every server process. By default, the first `system.cores` allowed CPUs.
    pub cpus: Option<CpuList>,
    /// Stop (SIGTERM) when the process that started the supervisor exits. By default, false.
    pub die_with_parent: bool,
    /// How long workers may take to load the model and listen. By default, 60 s.
    pub startup_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self { port: 8000, cpus: None, die_with_parent: false, startup_timeout: Duration::from_secs(60) }
    }
}

/// One worker, as the ready line reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Worker index.
    pub index: u32,
    /// Process id.
    pub pid: u32,
    /// Private address for `/stats`, `/metrics`, `/healthz`.
    pub admin: SocketAddr,
    /// Resident memory once the weights are loaded (kB).
    pub rss_kb: u64,
}

/// The line `servesim serve` prints on stdout when every worker listens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadyLine {
    /// Always `"ready"`.
    pub event: String,
    /// The shared address clients connect to.
    pub addr: SocketAddr,
    /// The supervisor's admin address: `/metrics` (every worker's, and the supervisor's
    /// restarts and watchdog kills), `/stats` ([`SupervisorStats`]), `/healthz`.
    #[serde(default)]
    pub admin: Option<SocketAddr>,
    /// The supervisor's pid.
    pub pid: u32,
    /// The CPUs the server runs on.
    pub cpus: CpuList,
    /// `worker.handler`, `worker.lock`, `worker.threads` as served.
    pub handler: String,
    /// `worker.lock`.
    pub lock: String,
    /// `worker.threads` (no threadpool is started with batching).
    pub threads: u32,
    /// `batching.mode`, and `batching.max_batch` after a colon unless it is `none`
    /// (`"continuous:8"`).
    #[serde(default)]
    pub batching: String,
    /// Every worker.
    pub workers: Vec<WorkerInfo>,
}

/// How one worker ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerExit {
    /// Worker index.
    pub index: u32,
    /// Process id.
    pub pid: u32,
    /// Requests by outcome, from its stopped event (absent if it never sent one).
    pub requests: Option<RequestCounts>,
    /// Whether it answered every in-flight request before the drain deadline.
    pub drained: bool,
    /// Its exit status (absent if killed by a signal).
    pub exit_code: Option<i32>,
}

/// The line `servesim serve` prints on stdout when it has stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoppedLine {
    /// Always `"stopped"`.
    pub event: String,
    /// What stopped it: `SIGTERM`, `SIGINT`, or `worker N failed to start`.
    pub reason: String,
    /// Every worker.
    pub workers: Vec<WorkerExit>,
    /// Every worker drained and exited 0.
    pub clean: bool,
    /// Replacement workers started over the server's life.
    #[serde(default)]
    pub restarts: u64,
    /// Workers killed for missing their heartbeat deadline.
    #[serde(default)]
    pub watchdog_kills: u64,
    /// Workers that exited before they had served for [`STABLE_AFTER`].
    #[serde(default)]
    pub start_failures: u64,
}

/// The line `servesim serve` prints on stdout when a replacement worker is ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartedLine {
    /// Always `"restarted"`.
    pub event: String,
    /// The replacement.
    pub worker: WorkerInfo,
    /// The process it replaces.
    pub replaced_pid: u32,
    /// What happened to that process.
    pub cause: String,
}

/// The supervisor's `/stats`: its counters and the workers listening now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SupervisorStats {
    /// The supervisor's pid.
    pub pid: u32,
    /// Workers listening now (a replacement appears once it is ready).
    pub workers: Vec<WorkerInfo>,
    /// Replacement workers started, after a worker exited or was killed by the watchdog.
    pub restarts: u64,
    /// Workers killed (SIGKILL) for missing their heartbeat deadline.
    pub watchdog_kills: u64,
    /// Workers that exited without being asked to (watchdog kills included).
    pub exits: u64,
    /// Workers that exited before they had served for [`STABLE_AFTER`].
    pub start_failures: u64,
    /// `limits.heartbeat_timeout_ms`.
    pub heartbeat_timeout_ms: f64,
}

fn print_line<T: Serialize>(v: &T) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", serde_json::to_string(v).expect("lines serialize"));
    let _ = out.flush();
}

/// Runs the server until SIGTERM/SIGINT, replacing workers that die or hang, and printing
/// the ready, restarted and stopped lines on stdout. A worker that keeps failing to start
/// stops the server: the stopped line is printed, then the error returned.
pub fn run(config: ServerConfig, opts: &ServeOptions) -> Result<StoppedLine, ServerError> {
    config::check_limits(&config.limits)?;
    shutdown::install_flag().map_err(|e| ServerError::io("install signal handlers", e))?;
    if opts.die_with_parent {
        shutdown::die_with_parent(std::os::unix::process::parent_id(), libc::SIGTERM);
    }
    let cpus = match &opts.cpus {
        Some(c) => c.clone(),
        None => affinity::CpuPlan::split(&affinity::allowed()?, config.cores as usize).server,
    };
    affinity::pin(&cpus)?;
    // Owned until the workers are stopped: a worker's socket outlives the worker.
    let (sockets, addr) = listener::listen_group(opts.port, config.workers as usize)
        .map_err(|e| ServerError::io("listen on the port", e))?;
    let heartbeat_timeout_ms = config.limits.heartbeat_timeout_ms;
    let shared = Arc::new(Mutex::new(SupervisorStats {
        pid: std::process::id(),
        heartbeat_timeout_ms,
        ..SupervisorStats::default()
    }));
    let mut w = Workers::spawn_all(&config, addr, sockets, &cpus, Arc::clone(&shared))?;
    let infos = match w.wait_ready(opts.startup_timeout) {
        Ok(infos) => infos,
        Err(e) => {
            w.stop(Duration::from_secs(2));
            return Err(e);
        }
    };
    let admin = match admin::Admin::start(Arc::clone(&shared)) {
        Ok(a) => a,
        Err(e) => {
            w.stop(Duration::from_secs(2));
            return Err(ServerError::io("listen on the supervisor's admin address", e));
        }
    };
    let ready = ReadyLine {
        event: "ready".into(),
        addr,
        admin: Some(admin.addr()),
        pid: std::process::id(),
        cpus,
        handler: kebab(&config.handler),
        lock: kebab(&config.lock),
        threads: config.threads,
        batching: if config.batched() {
            format!("{}:{}", kebab(&config.batching.mode), config.batching.max_batch)
        } else {
            "none".into()
        },
        workers: infos,
    };
    print_line(&ready);
    eprintln!(
        "servesim serve: {} worker(s) on http://{addr} — POST /correct; metrics of all at http://{}/metrics; \
         SIGTERM or Ctrl-C stops",
        config.workers,
        admin.addr()
    );
    let heartbeat = Duration::from_secs_f64(heartbeat_timeout_ms / 1e3);
    let ended = w.supervise(heartbeat, opts.startup_timeout);
    let drain = Duration::from_secs_f64(config.limits.drain_timeout_ms / 1e3) + Duration::from_secs(5);
    let exits = w.stop(drain);
    drop(admin);
    let (reason, failure) = match ended {
        Ended::Signal(sig) => (sig.to_string(), None),
        Ended::GaveUp(e) => {
            let index = if let ServerError::Worker { index, .. } = &e { *index } else { 0 };
            (format!("worker {index} failed to start"), Some(e))
        }
    };
    let counts = shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let clean = failure.is_none() && exits.iter().all(|e| e.drained && e.exit_code == Some(0));
    let stopped = StoppedLine {
        event: "stopped".into(),
        reason,
        workers: exits,
        clean,
        restarts: counts.restarts,
        watchdog_kills: counts.watchdog_kills,
        start_failures: counts.start_failures,
    };
    print_line(&stopped);
    match failure {
        Some(e) => Err(e),
        None => Ok(stopped),
    }
}

fn kebab<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}
