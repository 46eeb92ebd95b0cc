//! One worker process: its own copy of the weights, one event-loop thread (a tokio
//! `current_thread` runtime doing accept, I/O, parsing and dispatch), its threadpool and its
//! lock; its share of the server's port, and a private admin port for `/stats`.
//!
//! The supervisor starts it as `servesim serve --worker` with a [`WorkerSpec`] on stdin and
//! its slot's listening socket on the shared port inherited as a descriptor
//! ([`WorkerSpec::listen_fd`]): the socket belongs to the slot, not to the process, so a
//! replacement accepts what arrived while its predecessor was dead.
//! It reports on stdout, one JSON line each: [`WorkerEvent::Ready`] once it listens,
//! [`WorkerEvent::Heartbeat`] every beat interval while its event loop makes progress, and
//! [`WorkerEvent::Stopped`] after a SIGTERM/SIGINT, when its in-flight requests have been
//! answered (or the drain deadline passed: then it exits 1 without waiting further).

use super::app::App;
use super::config::ServerConfig;
use super::conn::{self, ConnLimits};
use super::listener;
use super::shutdown::{self, Signals};
use super::stats::RequestCounts;
use super::{ServerError, heartbeat, metrics, procfs, routes};
use crate::affinity::{self, CpuList};
use crate::gpt::Model;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Requests in progress at once on a worker's admin port (`/healthz` aside).
const ADMIN_SLOTS: u32 = 64;

/// What a worker process is told on stdin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerSpec {
    /// The plan.
    pub config: ServerConfig,
    /// This worker's index (0-based).
    pub index: u32,
    /// The shared address (`SO_REUSEPORT`) its inherited socket listens on.
    pub addr: SocketAddr,
    /// The descriptor of the listening socket on `addr` it inherits from the supervisor.
    pub listen_fd: i32,
    /// CPUs to pin to, if any.
    pub cpus: Option<CpuList>,
    /// The supervisor's pid: the worker dies with it.
    pub parent_pid: u32,
}

/// A worker's report on stdout, one JSON object per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum WorkerEvent {
    /// Listening.
    Ready {
        /// Worker index.
        index: u32,
        /// Process id.
        pid: u32,
        /// Its private address for `/stats`, `/metrics`, `/healthz`.
        admin: SocketAddr,
        /// Resident memory with the weights loaded (kB).
        rss_kb: u64,
    },
    /// Its event loop is making progress; sent every beat interval while it does (see
    /// `limits.heartbeat_timeout_ms`).
    Heartbeat {
        /// Worker index.
        index: u32,
        /// Process id.
        pid: u32,
    },
    /// Stopped after a signal.
    Stopped {
        /// Worker index.
        index: u32,
        /// Process id.
        pid: u32,
        /// Requests by outcome over its life.
        requests: RequestCounts,
        /// Whether every in-flight request was answered before the drain deadline.
        drained: bool,
    },
}

fn emit(event: &WorkerEvent) {
    let line = serde_json::to_string(event).expect("events serialize");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Reads a [`WorkerSpec`] from stdin and serves until a signal; returns whether it drained.
pub fn main_stdin() -> Result<bool, ServerError> {
    let text =
        crate::input::read_stdin_text().map_err(|e| ServerError::io("read the worker spec on stdin", e))?;
    let spec: WorkerSpec =
        serde_json::from_str(&text).map_err(|e| ServerError::Spec(format!("worker spec on stdin: {e}")))?;
    run(spec)
}

/// Serves `spec` until SIGTERM/SIGINT; returns whether every in-flight request was answered
/// within the drain deadline (when not, the process exits with status 1 at once).
pub fn run(spec: WorkerSpec) -> Result<bool, ServerError> {
    shutdown::die_with_parent(spec.parent_pid, libc::SIGKILL);
    if let Some(cpus) = &spec.cpus {
        affinity::pin(cpus)?;
    }
    // Slow or idle clients each hold a descriptor until a timeout closes them.
    listener::raise_fd_limit();
    let model = Model::load(&spec.config.model_dir)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ServerError::io("start the event loop", e))?;
    let app = Arc::new(
        App::new(spec.config.clone(), spec.index, model, metrics::install())
            .map_err(|e| ServerError::io("start the threadpool", e))?,
    );
    let drained = rt.block_on(serve(Arc::clone(&app), &spec))?;
    let pid = std::process::id();
    emit(&WorkerEvent::Stopped { index: spec.index, pid, requests: app.counters.counts(), drained });
    if !drained {
        // Handlers still run on pool threads; joining them would wait past the deadline.
        std::process::exit(1);
    }
    Ok(drained)
}

async fn serve(app: Arc<App>, spec: &WorkerSpec) -> Result<bool, ServerError> {
    let mut signals = Signals::install().map_err(|e| ServerError::io("listen for signals", e))?;
    let bind = |what: &'static str, l: std::io::Result<std::net::TcpListener>| {
        l.and_then(TcpListener::from_std).map_err(|e| ServerError::io(what, e))
    };
    let main = bind("take the shared port's socket", listener::inherit(spec.listen_fd, spec.addr))?;
    let admin = bind("listen on the admin port", listener::listen_private())?;
    let admin_addr = admin.local_addr().map_err(|e| ServerError::io("read the admin address", e))?;
    let router = routes::router(Arc::clone(&app));
    let (stop_tx, stop_rx) = watch::channel(false);
    // Each connection is read through its Peer (a half-closed client, or one that left),
    // which each request carries as ConnectInfo<Peer>.
    let limits = &app.config.limits;
    let main_limits = ConnLimits::new(limits, app.config.max_connections());
    let main = tokio::spawn(conn::serve(
        main,
        router.clone(),
        main_limits,
        Arc::clone(&app.counters.connections),
        stop_rx.clone(),
    ));
    let admin = tokio::spawn(conn::serve(
        admin,
        router,
        ConnLimits::new(limits, ADMIN_SLOTS),
        Arc::default(),
        stop_rx,
    ));
    let pid = std::process::id();
    emit(&WorkerEvent::Ready {
        index: spec.index,
        pid,
        admin: admin_addr,
        rss_kb: procfs::rss_kb(pid).unwrap_or(0),
    });
    let (index, timeout) =
        (spec.index, Duration::from_secs_f64(app.config.limits.heartbeat_timeout_ms / 1e3));
    heartbeat::start(heartbeat::interval(timeout), move || emit(&WorkerEvent::Heartbeat { index, pid }))
        .map_err(|e| ServerError::io("start the heartbeat", e))?;
    let signal = signals.recv().await;
    eprintln!("servesim worker {} (pid {pid}): {signal}, draining in-flight requests", spec.index);
    let _ = stop_tx.send(true);
    let deadline = Duration::from_secs_f64(app.config.limits.drain_timeout_ms / 1e3);
    let drain = async {
        let _ = main.await;
        let _ = admin.await;
    };
    Ok(tokio::time::timeout(deadline, drain).await.is_ok())
}
