//! The supervisor's worker processes: starting them, reading their lines, restarting the ones
//! that die, killing the ones that stop beating, and stopping them all.
//!
//! Restart policy, per worker index:
//!
//! * a worker that exits on its own after serving for at least [`STABLE_AFTER`] is replaced
//!   at once;
//! * one that exits sooner — or never reports ready, or takes longer than the startup
//!   timeout — has failed to start: the next attempt waits [`backoff`] (0.25 s, doubling),
//!   and after [`MAX_START_FAILURES`] failures in a row the supervisor gives up and stops
//!   the server with an error naming the worker;
//! * one whose heartbeat is older than `limits.heartbeat_timeout_ms` is killed (SIGKILL) and
//!   then replaced as above.
//!
//! Each index owns one listening socket on the shared port for the server's life; every
//! process started for that index inherits it. Connections the kernel sends an index whose
//! process is dead, hung or not yet started wait in that socket's accept queue (up to its
//! backlog) for the next process to accept them.

use super::{RestartedLine, SupervisorStats, WorkerExit, WorkerInfo, print_line};
use crate::affinity::CpuList;
use crate::server::ServerError;
use crate::server::config::ServerConfig;
use crate::server::listener;
use crate::server::shutdown;
use crate::server::stats::RequestCounts;
use crate::server::worker::{WorkerEvent, WorkerSpec};
use socket2::Socket;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A worker that exits before it has served this long failed to start.
pub const STABLE_AFTER: Duration = Duration::from_secs(1);
/// Failures to start in a row, for one worker index, before the supervisor gives up.
pub const MAX_START_FAILURES: u32 = 5;

/// The wait before the next attempt after `failures` failures to start in a row: none after
/// a stable worker's exit, then 0.25 s, 0.5 s, 1 s, 2 s.
pub fn backoff(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => Duration::from_millis(250) * 2u32.saturating_pow(n - 1).min(64),
    }
}

/// A line a worker printed on stdout, with the worker's pid.
type Msg = (u32, String);

/// One running worker process.
struct Slot {
    child: Child,
    started: Instant,
    /// What it reported when ready, and when.
    ready: Option<(WorkerInfo, Instant)>,
    last_beat: Instant,
    /// Killed by the watchdog.
    hung: bool,
    /// From its stopped event: its counts and whether it drained.
    stopped: Option<(RequestCounts, bool)>,
}

/// A worker index waiting for its next process.
struct Pending {
    at: Instant,
    replaced: u32,
    cause: String,
}

/// Why supervision ended.
pub enum Ended {
    /// SIGTERM or SIGINT.
    Signal(&'static str),
    /// A worker failed to start [`MAX_START_FAILURES`] times in a row.
    GaveUp(ServerError),
}

/// Every worker, by index.
pub struct Workers {
    exe: PathBuf,
    config: ServerConfig,
    addr: SocketAddr,
    /// Each index's listening socket on `addr`, kept open until [`Workers::stop`].
    sockets: Vec<Socket>,
    cpus: CpuList,
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
    slots: Vec<Option<Slot>>,
    pending: Vec<Option<Pending>>,
    /// Failures to start in a row, by index.
    failures: Vec<u32>,
    /// What the admin address serves.
    stats: Arc<Mutex<SupervisorStats>>,
}

impl Workers {
    /// Starts every worker of `config`, pinned to `cpus`, worker `i` on `sockets[i]` (one
    /// per worker, each listening on `addr`).
    pub fn spawn_all(
        config: &ServerConfig,
        addr: SocketAddr,
        sockets: Vec<Socket>,
        cpus: &CpuList,
        stats: Arc<Mutex<SupervisorStats>>,
    ) -> Result<Workers, ServerError> {
        let exe = std::env::current_exe().map_err(|e| ServerError::io("find the servesim binary", e))?;
        let (tx, rx) = mpsc::channel();
        let n = config.workers as usize;
        assert_eq!(sockets.len(), n, "one listening socket per worker");
        let mut w = Workers {
            exe,
            config: config.clone(),
            addr,
            sockets,
            cpus: cpus.clone(),
            tx,
            rx,
            slots: (0..n).map(|_| None).collect(),
            pending: (0..n).map(|_| None).collect(),
            failures: vec![0; n],
            stats,
        };
        for i in 0..n {
            if let Err(e) = w.spawn(i) {
                w.stop(Duration::from_secs(2));
                return Err(e);
            }
        }
        Ok(w)
    }

    /// Starts worker `i`'s process, handing it index `i`'s socket. Must run on the
    /// supervisor's main thread: a worker dies with the thread that started it.
    fn spawn(&mut self, i: usize) -> Result<(), ServerError> {
        let mut cmd = Command::new(&self.exe);
        let listen_fd = listener::pass_to(&mut cmd, &self.sockets[i]);
        let spec = WorkerSpec {
            config: self.config.clone(),
            index: i as u32,
            addr: self.addr,
            listen_fd,
            cpus: Some(self.cpus.clone()),
            parent_pid: std::process::id(),
        };
        let mut child = cmd
            .args(["serve", "--worker"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| ServerError::io("start a worker process", e))?;
        let json = serde_json::to_vec(&spec).expect("specs serialize");
        let mut stdin = child.stdin.take().expect("piped");
        let sent = stdin.write_all(&json);
        drop(stdin);
        let stdout = child.stdout.take().expect("piped");
        let (pid, tx) = (child.id(), self.tx.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send((pid, line));
            }
        });
        let now = Instant::now();
        self.slots[i] =
            Some(Slot { child, started: now, ready: None, last_beat: now, hung: false, stopped: None });
        sent.map_err(|e| ServerError::io("send a worker its spec", e))
    }

    fn absorb(&mut self, (pid, line): Msg) {
        let Ok(event) = serde_json::from_str::<WorkerEvent>(&line) else {
            eprintln!("worker (pid {pid}): {line}");
            return;
        };
        let Some((i, slot)) = self
            .slots
            .iter_mut()
            .enumerate()
            .find_map(|(i, s)| s.as_mut().filter(|s| s.child.id() == pid).map(|s| (i, s)))
        else {
            return;
        };
        match event {
            WorkerEvent::Ready { index, pid, admin, rss_kb } => {
                slot.ready = Some((WorkerInfo { index, pid, admin, rss_kb }, Instant::now()));
                slot.last_beat = Instant::now();
                if let Some(p) = self.pending[i].take() {
                    let worker = WorkerInfo { index, pid, admin, rss_kb };
                    eprintln!(
                        "servesim serve: worker {i} restarted (pid {pid}, replacing pid {})",
                        p.replaced
                    );
                    print_line(&RestartedLine {
                        event: "restarted".into(),
                        worker,
                        replaced_pid: p.replaced,
                        cause: p.cause,
                    });
                }
            }
            WorkerEvent::Heartbeat { .. } => slot.last_beat = Instant::now(),
            WorkerEvent::Stopped { requests, drained, .. } => slot.stopped = Some((requests, drained)),
        }
    }

    fn receive(&mut self, wait: Duration) {
        if let Ok(msg) = self.rx.recv_timeout(wait) {
            self.absorb(msg);
        }
        while let Ok(msg) = self.rx.try_recv() {
            self.absorb(msg);
        }
    }

    /// Waits until every worker reports ready; a worker exiting first, a signal or the
    /// timeout is an error.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<Vec<WorkerInfo>, ServerError> {
        let t0 = Instant::now();
        loop {
            let infos: Vec<WorkerInfo> =
                self.slots.iter().filter_map(|s| s.as_ref()?.ready.as_ref().map(|r| r.0.clone())).collect();
            if infos.len() == self.slots.len() {
                self.publish();
                return Ok(infos);
            }
            for (i, s) in self.slots.iter_mut().enumerate() {
                if let Some(status) = s.as_mut().and_then(|s| s.child.try_wait().ok().flatten()) {
                    let message = format!("exited during startup ({status})");
                    return Err(ServerError::Worker { index: i as u32, message });
                }
            }
            if shutdown::received().is_some() || t0.elapsed() > timeout {
                let why =
                    if t0.elapsed() > timeout { "did not start in time" } else { "startup interrupted" };
                return Err(ServerError::Worker { index: infos.len() as u32, message: why.into() });
            }
            self.receive(Duration::from_millis(20));
        }
    }

    /// Supervises until a signal arrives or a worker keeps failing to start: restarts the
    /// workers that exit, kills those whose heartbeat is older than `heartbeat_timeout`, and
    /// kills replacements that take longer than `startup_timeout` to be ready.
    pub fn supervise(&mut self, heartbeat_timeout: Duration, startup_timeout: Duration) -> Ended {
        loop {
            if let Some(sig) = shutdown::received() {
                return Ended::Signal(sig);
            }
            self.receive(Duration::from_millis(20));
            for i in 0..self.slots.len() {
                if let Err(e) = self.check(i, heartbeat_timeout, startup_timeout) {
                    return Ended::GaveUp(e);
                }
            }
            self.publish();
        }
    }

    /// One look at worker `i`: reaps it if it exited, kills it if it is hung or slow to
    /// start, starts its replacement when due.
    fn check(
        &mut self,
        i: usize,
        heartbeat_timeout: Duration,
        startup_timeout: Duration,
    ) -> Result<(), ServerError> {
        let now = Instant::now();
        if let Some(slot) = self.slots[i].as_mut() {
            if let Ok(Some(status)) = slot.child.try_wait() {
                return self.exited(i, status);
            }
            let silent = now.saturating_duration_since(slot.last_beat);
            let hung = slot.ready.is_some() && silent > heartbeat_timeout;
            let slow = slot.ready.is_none() && now.saturating_duration_since(slot.started) > startup_timeout;
            if (hung || slow) && !slot.hung {
                slot.hung = true;
                let pid = slot.child.id();
                if hung {
                    eprintln!(
                        "servesim serve: worker {i} (pid {pid}) sent no heartbeat for {silent:.1?} \
                         (limit {heartbeat_timeout:?}); killing it"
                    );
                    count(&self.stats, |s| s.watchdog_kills += 1);
                } else {
                    eprintln!(
                        "servesim serve: worker {i} (pid {pid}) not ready after {startup_timeout:?}; killing it"
                    );
                }
                let _ = slot.child.kill();
            }
            return Ok(());
        }
        if self.pending[i].as_ref().is_some_and(|p| now >= p.at) {
            count(&self.stats, |s| s.restarts += 1);
            if let Err(e) = self.spawn(i) {
                // Starting the process itself failed: a failure to start like any other.
                eprintln!("servesim serve: worker {i}: {e}");
                return self.failed(i, e.to_string());
            }
        }
        Ok(())
    }

    /// Worker `i` exited without being asked to: schedule its replacement, or give up.
    fn exited(&mut self, i: usize, status: ExitStatus) -> Result<(), ServerError> {
        let Some(slot) = self.slots[i].take() else { return Ok(()) };
        let pid = slot.child.id();
        count(&self.stats, |s| s.exits += 1);
        let cause = match (slot.hung, slot.ready.is_some()) {
            (true, true) => "missed its heartbeat deadline and was killed".to_string(),
            (true, false) => "was not ready in time and was killed".to_string(),
            (false, _) => format!("exited ({status})"),
        };
        let served = slot.ready.as_ref().map(|r| r.1.elapsed());
        let replaced = self.pending[i].as_ref().map_or(pid, |p| p.replaced);
        if served.is_some_and(|t| t >= STABLE_AFTER) {
            eprintln!("servesim serve: worker {i} (pid {pid}) {cause}; restarting it");
            self.failures[i] = 0;
            self.pending[i] = Some(Pending { at: Instant::now(), replaced: pid, cause });
            return Ok(());
        }
        self.pending[i] = Some(Pending { at: Instant::now(), replaced, cause: cause.clone() });
        self.failed(i, format!("worker (pid {pid}) {cause}"))
    }

    /// Worker `i` failed to start: back off, or give up after too many failures in a row.
    fn failed(&mut self, i: usize, what: String) -> Result<(), ServerError> {
        count(&self.stats, |s| s.start_failures += 1);
        self.failures[i] += 1;
        let n = self.failures[i];
        if n >= MAX_START_FAILURES {
            return Err(ServerError::Worker {
                index: i as u32,
                message: format!(
                    "failed to start {n} times in a row (the last: {what}); not restarting it again — \
                     its own error is above on stderr"
                ),
            });
        }
        let wait = backoff(n);
        eprintln!("servesim serve: worker {i} failed to start ({what}); next attempt in {wait:?}");
        if let Some(p) = self.pending[i].as_mut() {
            p.at = Instant::now() + wait;
        }
        Ok(())
    }

    /// Shows the workers listening now on the admin address.
    fn publish(&self) {
        let ready: Vec<WorkerInfo> =
            self.slots.iter().filter_map(|s| s.as_ref()?.ready.as_ref().map(|r| r.0.clone())).collect();
        count(&self.stats, |s| s.workers = ready);
    }

    /// Sends SIGTERM to every worker, closes the supervisor's copies of the listening
    /// sockets, waits up to `deadline` for all workers to exit, kills the rest, and reports
    /// each.
    pub fn stop(&mut self, deadline: Duration) -> Vec<WorkerExit> {
        for s in self.slots.iter().flatten() {
            shutdown::send(s.child.id(), false);
        }
        // A worker's copy keeps its socket listening until it stops accepting; the socket
        // of an index with no process closes now, resetting what waits in it.
        self.sockets.clear();
        let mut status: Vec<Option<ExitStatus>> = vec![None; self.slots.len()];
        let running = |slots: &[Option<Slot>], status: &[Option<ExitStatus>]| {
            slots.iter().zip(status).any(|(s, st)| s.is_some() && st.is_none())
        };
        let t0 = Instant::now();
        while running(&self.slots, &status) && t0.elapsed() < deadline {
            for (s, st) in self.slots.iter_mut().zip(status.iter_mut()) {
                if let (Some(s), None) = (s.as_mut(), &st) {
                    *st = s.child.try_wait().ok().flatten();
                }
            }
            self.receive(Duration::from_millis(10));
        }
        for (s, st) in self.slots.iter_mut().zip(status.iter_mut()) {
            if let (Some(s), None) = (s.as_mut(), &st) {
                let _ = s.child.kill();
                *st = s.child.wait().ok();
            }
        }
        while let Ok(msg) = self.rx.recv_timeout(Duration::from_millis(50)) {
            self.absorb(msg);
        }
        let slots = self.slots.iter().enumerate();
        slots.filter_map(|(i, s)| s.as_ref().map(|s| exit_of(i, s, status[i]))).collect()
    }
}

fn count(stats: &Mutex<SupervisorStats>, f: impl FnOnce(&mut SupervisorStats)) {
    f(&mut stats.lock().unwrap_or_else(PoisonError::into_inner));
}

fn exit_of(i: usize, slot: &Slot, status: Option<ExitStatus>) -> WorkerExit {
    WorkerExit {
        index: i as u32,
        pid: slot.child.id(),
        requests: slot.stopped.map(|s| s.0),
        drained: slot.stopped.is_some_and(|s| s.1),
        exit_code: status.and_then(|s| s.code()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_only_after_failures_to_start() {
        let ms = |n| Duration::from_millis(n);
        let waits: Vec<Duration> = (0..MAX_START_FAILURES).map(backoff).collect();
        assert_eq!(waits, [ms(0), ms(250), ms(500), ms(1000), ms(2000)]);
        assert_eq!(backoff(100), ms(250 * 64), "capped");
    }
}
