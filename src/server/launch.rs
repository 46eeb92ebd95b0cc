//! Starting the real server from another program (`servesim measure`, tests, benchmarks):
//! `servesim serve` as a child process on an ephemeral loopback port, stopped — always — by
//! [`ServerProcess::stop`] or, failing that, when the handle drops.

use super::client;
use super::config::ServerConfig;
use super::shutdown;
use super::stats::WorkerStats;
use super::supervisor::{ReadyLine, StoppedLine, SupervisorStats, WorkerInfo};
use crate::affinity::CpuList;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The environment variable naming the `servesim` binary to start.
pub const BIN_ENV: &str = "SERVESIM_BIN";

/// Lines of the server's stderr kept for error messages.
const STDERR_TAIL: usize = 40;

/// Why the server could not be started, queried or stopped.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// No `servesim` binary was found.
    #[error("cannot find the servesim binary: set {BIN_ENV} to its path")]
    NoBinary,
    /// The process could not be started or talked to.
    #[error("cannot {what}: {source}")]
    Io {
        /// What was attempted.
        what: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The server exited, or never became healthy in time.
    #[error("the server {what}; its last output:\n{stderr}")]
    Server {
        /// What happened.
        what: String,
        /// The end of its stderr.
        stderr: String,
    },
}

/// How to start the server.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchOptions {
    /// The `servesim` binary. By default, found by [`find_binary`].
    pub binary: Option<PathBuf>,
    /// CPUs for the server's processes. By default, the first `system.cores` allowed CPUs.
    pub cpus: Option<CpuList>,
    /// How long the server may take to become healthy. By default, 60 s.
    pub startup_timeout: Duration,
    /// Pass the server's stderr through instead of keeping its tail. By default, false.
    pub show_stderr: bool,
}

impl Default for LaunchOptions {
    fn default() -> Self {
        Self { binary: None, cpus: None, startup_timeout: Duration::from_secs(60), show_stderr: false }
    }
}

/// The `servesim` binary: the running executable when it is `servesim`, else
/// `$SERVESIM_BIN`, else a `servesim` next to the running executable or one directory above
/// it (where cargo puts it relative to tests and benchmarks).
pub fn find_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok();
    if let Some(e) = exe.as_ref().filter(|e| e.file_stem().is_some_and(|s| s == "servesim")) {
        return Some(e.clone());
    }
    if let Some(p) = std::env::var_os(BIN_ENV).map(PathBuf::from).filter(|p| p.is_file()) {
        return Some(p);
    }
    let dir = exe.as_deref().and_then(Path::parent)?;
    [dir.join("servesim"), dir.parent()?.join("servesim")].into_iter().find(|p| p.is_file())
}

/// A running `servesim serve`. Dropping it stops the server (SIGTERM, then SIGKILL).
pub struct ServerProcess {
    child: Child,
    ready: ReadyLine,
    lines: Receiver<String>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    done: bool,
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> LaunchError {
    move |source| LaunchError::Io { what, source }
}

impl ServerProcess {
    /// Starts `servesim serve` with `config` on an ephemeral port of 127.0.0.1 and returns
    /// once every worker listens and `/healthz` answers.
    pub fn start(config: &ServerConfig, opts: &LaunchOptions) -> Result<ServerProcess, LaunchError> {
        let bin = opts.binary.clone().or_else(find_binary).ok_or(LaunchError::NoBinary)?;
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--config", "-", "--port", "0", "--die-with-parent"]);
        if let Some(c) = &opts.cpus {
            cmd.args(["--cpus", &c.to_string()]);
        }
        let stderr_mode = if opts.show_stderr { Stdio::inherit() } else { Stdio::piped() };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr_mode)
            .spawn()
            .map_err(io("start servesim serve"))?;
        let json = serde_json::to_vec(config).expect("configs serialize");
        let mut stdin = child.stdin.take().expect("piped");
        let sent = stdin.write_all(&json);
        drop(stdin);
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(err) = child.stderr.take() {
            let tail = Arc::clone(&stderr);
            std::thread::spawn(move || keep_tail(err, &tail));
        }
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut p = ServerProcess { child, ready: placeholder(), lines, stderr, done: false };
        sent.map_err(io("send the server its configuration"))?;
        p.ready = p.wait_ready(opts.startup_timeout)?;
        p.wait_healthy(opts.startup_timeout)?;
        Ok(p)
    }

    fn failure(&mut self, what: impl Into<String>) -> LaunchError {
        // Let the stderr reader catch up with a process that just exited.
        std::thread::sleep(Duration::from_millis(50));
        let tail = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
        LaunchError::Server { what: what.into(), stderr: tail.iter().cloned().collect::<Vec<_>>().join("\n") }
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<ReadyLine, LaunchError> {
        let t0 = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.failure(format!("exited during startup ({status})")));
            }
            if t0.elapsed() > timeout {
                return Err(self.failure(format!("did not report ready within {timeout:?}")));
            }
            match self.lines.recv_timeout(Duration::from_millis(20)) {
                Ok(line) => {
                    if let Ok(r) = serde_json::from_str::<ReadyLine>(&line) {
                        return Ok(r);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
            }
        }
    }

    fn wait_healthy(&mut self, timeout: Duration) -> Result<(), LaunchError> {
        let t0 = Instant::now();
        loop {
            match client::get(self.addr(), "/healthz", Duration::from_secs(2)) {
                Ok(r) if r.status == 200 => return Ok(()),
                _ if t0.elapsed() > timeout => {
                    return Err(self.failure(format!("did not answer /healthz within {timeout:?}")));
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.ready.addr
    }

    /// What the server reported when it became ready: its workers' pids, admin addresses
    /// and memory.
    pub fn ready(&self) -> &ReadyLine {
        &self.ready
    }

    /// The supervisor's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The supervisor's `/stats`: its restarts and watchdog kills, and the workers
    /// listening now.
    pub fn supervisor_stats(&self) -> Result<SupervisorStats, LaunchError> {
        let admin = self.ready.admin.ok_or_else(|| LaunchError::Io {
            what: "read the supervisor's /stats",
            source: std::io::Error::other("the server reported no supervisor admin address"),
        })?;
        let r = client::get(admin, "/stats", Duration::from_secs(30))
            .map_err(io("read the supervisor's /stats"))?;
        r.json().map_err(io("parse the supervisor's /stats"))
    }

    /// The workers listening now: the supervisor's current list (replacements included),
    /// or the ready line's when it has none.
    pub fn workers(&self) -> Result<Vec<WorkerInfo>, LaunchError> {
        match self.ready.admin {
            Some(_) => Ok(self.supervisor_stats()?.workers),
            None => Ok(self.ready.workers.clone()),
        }
    }

    /// Every worker's `/stats`, read from its admin address (the workers listening now).
    pub fn stats(&self) -> Result<Vec<WorkerStats>, LaunchError> {
        self.workers()?
            .iter()
            .map(|w| {
                let r = client::get(w.admin, "/stats", Duration::from_secs(30)).map_err(io("read /stats"))?;
                r.json().map_err(io("parse /stats"))
            })
            .collect()
    }

    /// Sends SIGTERM: the server stops accepting, drains and exits; see [`Self::wait`].
    pub fn terminate(&self) {
        shutdown::send(self.child.id(), false);
    }

    /// Waits up to `timeout` for the server to exit after [`Self::terminate`] and returns
    /// its stopped line. A server still running then is killed.
    pub fn wait(mut self, timeout: Duration) -> Result<StoppedLine, LaunchError> {
        let t0 = Instant::now();
        let mut stopped = None;
        while stopped.is_none() && t0.elapsed() < timeout {
            match self.lines.recv_timeout(Duration::from_millis(20)) {
                Ok(line) => stopped = serde_json::from_str::<StoppedLine>(&line).ok(),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        let status = self.reap(timeout.saturating_sub(t0.elapsed()));
        match stopped {
            Some(s) => Ok(s),
            None => Err(self.failure(format!("stopped without its stopped line ({status})"))),
        }
    }

    /// SIGTERM, then [`Self::wait`].
    pub fn stop(self, timeout: Duration) -> Result<StoppedLine, LaunchError> {
        self.terminate();
        self.wait(timeout)
    }

    /// Waits for the process up to `grace`, then kills it; describes how it ended.
    fn reap(&mut self, grace: Duration) -> String {
        self.done = true;
        let t0 = Instant::now();
        while t0.elapsed() < grace {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.to_string();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        self.child.wait().map_or_else(|e| e.to_string(), |s| format!("killed: {s}"))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if !self.done {
            self.terminate();
            self.reap(Duration::from_secs(5));
        }
    }
}

fn keep_tail(err: std::process::ChildStderr, tail: &Mutex<VecDeque<String>>) {
    for line in BufReader::new(err).lines().map_while(Result::ok) {
        let mut t = tail.lock().unwrap_or_else(PoisonError::into_inner);
        if t.len() == STDERR_TAIL {
            t.pop_front();
        }
        t.push_back(line);
    }
}

fn placeholder() -> ReadyLine {
    ReadyLine {
        event: String::new(),
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        admin: None,
        pid: 0,
        cpus: CpuList::default(),
        handler: String::new(),
        lock: String::new(),
        threads: 0,
        batching: String::new(),
        workers: Vec::new(),
    }
}
