//! `servesim serve`: the supervisor of `system.workers` worker processes on one port.
//!
//! ```text
//!  supervisor: pin CPUs ─ reserve 127.0.0.1:PORT (SO_REUSEPORT, no listen)
//!     ├─ servesim serve --worker  (spec on stdin) ─ load weights ─ listen ─ {"event":"ready"}
//!     ├─ … one per worker
//!     └─ all ready: close the reservation, print {"event":"ready","addr":…,"workers":[…]}
//!  SIGTERM/SIGINT ─► forwarded to every worker ─► each drains ─► {"event":"stopped",…}
//! ```
//!
//! Workers inherit the supervisor's CPU affinity and die with it. If a worker exits on its
//! own, the supervisor stops the others and reports it.

use super::ServerError;
use super::config::ServerConfig;
use super::listener;
use super::shutdown;
use super::stats::RequestCounts;
use super::worker::{WorkerEvent, WorkerSpec};
use crate::affinity::{self, CpuList};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

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
    /// What stopped it: `SIGTERM`, `SIGINT`, or `worker exited`.
    pub reason: String,
    /// Every worker.
    pub workers: Vec<WorkerExit>,
    /// Every worker drained and exited 0.
    pub clean: bool,
}

/// A line a worker printed on stdout.
type Msg = (usize, String);

struct Workers {
    children: Vec<Child>,
    rx: Receiver<Msg>,
    events: Vec<Vec<WorkerEvent>>,
}

fn print_line<T: Serialize>(v: &T) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", serde_json::to_string(v).expect("lines serialize"));
    let _ = out.flush();
}

/// Runs the server until SIGTERM/SIGINT (or a worker's unexpected exit), printing the
/// ready and stopped lines on stdout.
pub fn run(config: ServerConfig, opts: &ServeOptions) -> Result<StoppedLine, ServerError> {
    shutdown::install_flag().map_err(|e| ServerError::io("install signal handlers", e))?;
    if opts.die_with_parent {
        shutdown::die_with_parent(std::os::unix::process::parent_id(), libc::SIGTERM);
    }
    let cpus = match &opts.cpus {
        Some(c) => c.clone(),
        None => affinity::CpuPlan::split(&affinity::allowed()?, config.cores as usize).server,
    };
    affinity::pin(&cpus)?;
    let (reservation, addr) =
        listener::reserve(opts.port).map_err(|e| ServerError::io("reserve the port", e))?;
    let mut w = spawn_all(&config, addr, &cpus)?;
    let infos = match w.wait_ready(opts.startup_timeout) {
        Ok(infos) => infos,
        Err(e) => {
            w.stop(Duration::from_secs(2));
            return Err(e);
        }
    };
    drop(reservation);
    let ready = ReadyLine {
        event: "ready".into(),
        addr,
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
        "servesim serve: {} worker(s) on http://{addr} — POST /correct; SIGTERM or Ctrl-C stops",
        config.workers
    );
    let reason = w.wait_for_stop();
    let drain = Duration::from_secs_f64(config.limits.drain_timeout_ms / 1e3) + Duration::from_secs(5);
    let exits = w.stop(drain);
    let clean = exits.iter().all(|e| e.drained && e.exit_code == Some(0));
    let stopped = StoppedLine { event: "stopped".into(), reason, workers: exits, clean };
    print_line(&stopped);
    Ok(stopped)
}

fn kebab<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn spawn_all(config: &ServerConfig, addr: SocketAddr, cpus: &CpuList) -> Result<Workers, ServerError> {
    let exe = std::env::current_exe().map_err(|e| ServerError::io("find the servesim binary", e))?;
    let (tx, rx) = mpsc::channel();
    let mut w = Workers { children: Vec::new(), rx, events: vec![Vec::new(); config.workers as usize] };
    for index in 0..config.workers {
        let spec = WorkerSpec {
            config: config.clone(),
            index,
            addr,
            cpus: Some(cpus.clone()),
            parent_pid: std::process::id(),
        };
        match spawn_one(&exe, &spec, tx.clone()) {
            Ok(child) => w.children.push(child),
            Err(e) => {
                w.stop(Duration::from_secs(2));
                return Err(e);
            }
        }
    }
    Ok(w)
}

fn spawn_one(exe: &std::path::Path, spec: &WorkerSpec, tx: Sender<Msg>) -> Result<Child, ServerError> {
    let mut child = Command::new(exe)
        .args(["serve", "--worker"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| ServerError::io("start a worker process", e))?;
    let json = serde_json::to_vec(spec).expect("specs serialize");
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(&json).map_err(|e| ServerError::io("send a worker its spec", e))?;
    drop(stdin);
    let stdout = child.stdout.take().expect("piped");
    let i = spec.index as usize;
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send((i, line));
        }
    });
    Ok(child)
}

impl Workers {
    fn absorb(&mut self, (i, line): Msg) {
        match serde_json::from_str::<WorkerEvent>(&line) {
            Ok(ev) => self.events[i].push(ev),
            Err(_) => eprintln!("worker {i}: {line}"),
        }
    }

    fn ready_info(&self, i: usize) -> Option<WorkerInfo> {
        self.events[i].iter().find_map(|e| match *e {
            WorkerEvent::Ready { index, pid, admin, rss_kb } => {
                Some(WorkerInfo { index, pid, admin, rss_kb })
            }
            _ => None,
        })
    }

    fn exited(&mut self) -> Option<(usize, std::process::ExitStatus)> {
        self.children.iter_mut().enumerate().find_map(|(i, c)| c.try_wait().ok().flatten().map(|s| (i, s)))
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<Vec<WorkerInfo>, ServerError> {
        let t0 = Instant::now();
        loop {
            let infos: Vec<WorkerInfo> =
                (0..self.children.len()).filter_map(|i| self.ready_info(i)).collect();
            if infos.len() == self.children.len() {
                return Ok(infos);
            }
            if let Some((i, status)) = self.exited() {
                return Err(ServerError::Worker {
                    index: i as u32,
                    message: format!("exited during startup ({status})"),
                });
            }
            if shutdown::received().is_some() || t0.elapsed() > timeout {
                let why =
                    if t0.elapsed() > timeout { "did not start in time" } else { "startup interrupted" };
                return Err(ServerError::Worker { index: infos.len() as u32, message: why.into() });
            }
            match self.rx.recv_timeout(Duration::from_millis(20)) {
                Ok(msg) => self.absorb(msg),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
            }
        }
    }

    /// Blocks until a signal arrives or a worker exits; returns why.
    fn wait_for_stop(&mut self) -> String {
        loop {
            if let Some(sig) = shutdown::received() {
                return sig.into();
            }
            if let Some((i, status)) = self.exited() {
                eprintln!("servesim serve: worker {i} exited unexpectedly ({status}); stopping");
                return "worker exited".into();
            }
            if let Ok(msg) = self.rx.recv_timeout(Duration::from_millis(20)) {
                self.absorb(msg);
            }
        }
    }

    /// Sends SIGTERM to every worker, waits up to `deadline` for all to exit, kills the
    /// rest, and reports each.
    fn stop(&mut self, deadline: Duration) -> Vec<WorkerExit> {
        for c in &self.children {
            shutdown::send(c.id(), false);
        }
        let t0 = Instant::now();
        let mut status = vec![None; self.children.len()];
        while status.iter().any(Option::is_none) && t0.elapsed() < deadline {
            for (i, c) in self.children.iter_mut().enumerate() {
                if status[i].is_none() {
                    status[i] = c.try_wait().ok().flatten();
                }
            }
            if let Ok(msg) = self.rx.recv_timeout(Duration::from_millis(10)) {
                self.absorb(msg);
            }
        }
        for (i, c) in self.children.iter_mut().enumerate() {
            if status[i].is_none() {
                let _ = c.kill();
                status[i] = c.wait().ok();
            }
        }
        while let Ok(msg) = self.rx.recv_timeout(Duration::from_millis(50)) {
            self.absorb(msg);
        }
        (0..self.children.len()).map(|i| self.exit_of(i, status[i])).collect()
    }

    fn exit_of(&self, i: usize, status: Option<std::process::ExitStatus>) -> WorkerExit {
        let pid = self.children[i].id();
        let stopped = self.events[i].iter().find_map(|e| match e {
            WorkerEvent::Stopped { requests, drained, .. } => Some((*requests, *drained)),
            _ => None,
        });
        WorkerExit {
            index: i as u32,
            pid,
            requests: stopped.map(|s| s.0),
            drained: stopped.is_some_and(|s| s.1),
            exit_code: status.and_then(|s| s.code()),
        }
    }
}
