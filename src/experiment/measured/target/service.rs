//! A target service's process: started with `sh -c` in a process group of its own, checked
//! for readiness on its health URL, and stopped as a group — SIGTERM, a deadline, SIGKILL —
//! on `stop`, on drop (errors and panics included), and on Ctrl-C.
//!
//! ```text
//!  start ─► sh -c START (own process group, env, cwd, stdout+stderr → a log file,
//!           unlinked at once: a service that gets ready leaves no file, even on Ctrl-C)
//!        ─► GET health_url every 100 ms until 2xx, the child exits (error + log tail),
//!           or ready_timeout_s (error + log tail; the group is stopped); on either error
//!           the log is written back to its path, which the error names
//!  stop  ─► killpg(SIGTERM) ─► wait ≤ stop_timeout_s ─► killpg(SIGKILL) ─► reap
//!  SIGINT/SIGTERM/SIGHUP to servesim ─► every live group gets SIGTERM, then SIGKILL ─► exit
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// Why a target service could not be started, reached or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A template could not be filled.
    #[error("{field}: {message}")]
    Template {
        /// The `[target]` field.
        field: String,
        /// Why.
        message: String,
    },
    /// `sh -c START` could not be spawned.
    #[error("target.start: cannot run {command:?}: {message}")]
    Spawn {
        /// The command.
        command: String,
        /// The OS error.
        message: String,
    },
    /// The service exited before it was ready.
    #[error(
        "target.start: {command:?} exited ({status}) before {health} answered; its output ({log}) ends:\n{tail}"
    )]
    Exited {
        /// The command.
        command: String,
        /// How it exited.
        status: String,
        /// The health URL.
        health: String,
        /// The log file.
        log: String,
        /// The log's last lines.
        tail: String,
    },
    /// The service did not answer its health URL in time.
    #[error(
        "target: {health} did not answer 2xx within target.ready_timeout_s = {timeout_s} s (last: {last}); \
         the service was stopped; its output ({log}) ends:\n{tail}"
    )]
    NotReady {
        /// The health URL.
        health: String,
        /// The deadline (s).
        timeout_s: f64,
        /// The last attempt's outcome.
        last: String,
        /// The log file.
        log: String,
        /// The log's last lines.
        tail: String,
    },
    /// A running service (no `start`) does not answer.
    #[error(
        "target: {health} is unreachable ({message}); start the service, fix target.health_url, or give \
         target.start so servesim starts it"
    )]
    Unreachable {
        /// The health URL.
        health: String,
        /// Why.
        message: String,
    },
    /// Files or the OS failed.
    #[error("target: cannot {what}: {message}")]
    Io {
        /// What was attempted.
        what: &'static str,
        /// Why.
        message: String,
    },
}

/// Process groups alive now, for the signal handler (0: an empty slot).
static GROUPS: [AtomicI32; 16] = [const { AtomicI32::new(0) }; 16];
static HANDLER: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    // Async-signal-safe only: kill, nanosleep, _exit.
    for g in &GROUPS {
        let pg = g.load(Ordering::SeqCst);
        if pg > 0 {
            // SAFETY: kill(2) with a negative pid signals a process group; always safe to call.
            unsafe { libc::kill(-pg, libc::SIGTERM) };
        }
    }
    for _ in 0..50 {
        // SAFETY: as above; signal 0 only checks whether the group still exists.
        let alive = GROUPS.iter().any(|g| {
            let pg = g.load(Ordering::SeqCst);
            pg > 0 && unsafe { libc::kill(-pg, 0) } == 0
        });
        if !alive {
            break;
        }
        let ts = libc::timespec { tv_sec: 0, tv_nsec: 100_000_000 };
        // SAFETY: a valid timespec; a null remainder is allowed.
        unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
    }
    for g in &GROUPS {
        let pg = g.load(Ordering::SeqCst);
        if pg > 0 {
            // SAFETY: as above.
            unsafe { libc::kill(-pg, libc::SIGKILL) };
        }
    }
    // SAFETY: _exit is async-signal-safe; 128 + the signal is the shell's convention.
    unsafe { libc::_exit(128 + sig) };
}

fn install_handler() {
    if HANDLER.swap(true, Ordering::SeqCst) {
        return;
    }
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: installs a handler that only calls async-signal-safe functions.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

fn register(pg: i32) {
    install_handler();
    for g in &GROUPS {
        if g.compare_exchange(0, pg, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            return;
        }
    }
}

fn unregister(pg: i32) {
    for g in &GROUPS {
        let _ = g.compare_exchange(pg, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// A free port on 127.0.0.1, as the OS gives one to a listener bound to port 0.
pub fn free_port() -> Result<u16, ServiceError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| ServiceError::Io { what: "find a free loopback port", message: e.to_string() })?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| ServiceError::Io { what: "find a free loopback port", message: e.to_string() })
}

/// One `GET` of `url` (http only), within `timeout`: its status, or why it failed.
pub fn get_status(url: &str, timeout: Duration) -> Result<u16, String> {
    let t = crate::load::Target::parse(url).map_err(|e| e.to_string())?;
    let addr: SocketAddr = (t.host.as_str(), t.port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| format!("{} resolves to no address", t.host))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let req =
        format!("GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", t.path_and_query, t.authority);
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match s.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(e.to_string()),
        }
    }
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {:?}", line.trim()))
}

/// How much of the end of a service's log is read for the last lines an error shows (bytes).
const LOG_TAIL_BYTES: u64 = 64 << 10;

/// The last `n` lines of `text`, each marked as quoted output.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].iter().map(|l| format!("  | {l}")).collect::<Vec<_>>().join("\n")
}

/// How to start one service.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Launch {
    /// The shell command.
    pub command: String,
    /// Its working directory.
    pub cwd: PathBuf,
    /// Its extra environment.
    pub env: Vec<(String, String)>,
    /// The port `{port}` was filled with.
    pub port: u16,
    /// The health URL, filled.
    pub health: String,
}

/// A started service. Dropping it stops the process group.
#[derive(Debug)]
pub struct Service {
    child: Option<Child>,
    pgid: i32,
    /// How it was started.
    pub launch: Launch,
    /// Where its stdout and stderr are written back if it never gets ready (the error then
    /// names it). While it runs the file is unlinked, so nothing is left behind however
    /// servesim ends.
    pub log: PathBuf,
    /// The unlinked log, opened for reading.
    log_reader: std::fs::File,
    stop_timeout: Duration,
}

/// How a service stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// It exited on SIGTERM within the deadline (no SIGKILL was needed).
    pub clean: bool,
}

impl Service {
    /// Starts `launch` and waits until its health URL answers 2xx.
    pub fn start(
        launch: Launch,
        ready_timeout: Duration,
        stop_timeout: Duration,
    ) -> Result<Self, ServiceError> {
        let log =
            std::env::temp_dir().join(format!("servesim-target-{}-{}.log", std::process::id(), launch.port));
        let io = |what, e: std::io::Error| ServiceError::Io { what, message: e.to_string() };
        let out = std::fs::File::create(&log).map_err(|e| io("create the service's log file", e))?;
        let err = out.try_clone().map_err(|e| io("create the service's log file", e))?;
        let log_reader = std::fs::File::open(&log).map_err(|e| io("open the service's log file", e))?;
        let _ = std::fs::remove_file(&log);
        let child = Command::new("sh")
            .arg("-c")
            .arg(&launch.command)
            .current_dir(&launch.cwd)
            .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| ServiceError::Spawn {
                command: launch.command.clone(),
                message: if launch.cwd.is_dir() {
                    format!("{e} (in {})", launch.cwd.display())
                } else {
                    format!(
                        "its directory {} does not exist; fix target.cwd (relative to the scenario file)",
                        launch.cwd.display()
                    )
                },
            })?;
        let pgid = child.id() as i32;
        register(pgid);
        let mut svc = Self { child: Some(child), pgid, launch, log, log_reader, stop_timeout };
        svc.wait_ready(ready_timeout)?;
        Ok(svc)
    }

    /// Writes the service's output so far back to [`Service::log`], for an error to name,
    /// and returns its last lines.
    fn keep_log(&mut self) -> String {
        use std::io::{Seek, SeekFrom};
        // Copied back as bytes, not text, so that output that is not UTF-8 is kept whole;
        // and streamed, not read into memory, for a service that never got ready may have
        // written a great deal in the meantime.
        let _ = self.log_reader.rewind();
        if let Ok(mut kept) = std::fs::File::create(&self.log) {
            let _ = std::io::copy(&mut self.log_reader, &mut kept);
        }
        // The last lines, from the log's last LOG_TAIL_BYTES only.
        let len = self.log_reader.seek(SeekFrom::End(0)).unwrap_or(0);
        let from = len.saturating_sub(LOG_TAIL_BYTES);
        let mut bytes = Vec::new();
        if self.log_reader.seek(SeekFrom::Start(from)).is_ok() {
            let _ = (&mut self.log_reader).take(LOG_TAIL_BYTES).read_to_end(&mut bytes);
        }
        // Started inside a line: that line's end is not a line of its own.
        if from > 0 {
            let cut = bytes.iter().position(|&b| b == b'\n').map_or(bytes.len(), |i| i + 1);
            bytes.drain(..cut);
        }
        tail(&String::from_utf8_lossy(&bytes), 15)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), ServiceError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let _ = self.stop();
                return Err(ServiceError::Exited {
                    command: self.launch.command.clone(),
                    status: status.to_string(),
                    health: self.launch.health.clone(),
                    log: self.log.display().to_string(),
                    tail: self.keep_log(),
                });
            }
            let last = match get_status(&self.launch.health, Duration::from_millis(500)) {
                Ok(code) if (200..300).contains(&code) => return Ok(()),
                Ok(code) => format!("HTTP {code}"),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                let _ = self.stop();
                return Err(ServiceError::NotReady {
                    health: self.launch.health.clone(),
                    timeout_s: timeout.as_secs_f64(),
                    last,
                    log: self.log.display().to_string(),
                    tail: self.keep_log(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Its process group (the shell's pid).
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// Resident memory of every process of the group (pid, kB), read from `/proc`.
    pub fn rss_kb(&self) -> Vec<(u32, u64)> {
        group_rss_kb(self.pgid)
    }

    /// Stops the whole group: SIGTERM, then SIGKILL after the stop deadline; reaps the
    /// shell. Stopping twice is a no-op.
    pub fn stop(&mut self) -> Result<Stopped, ServiceError> {
        let Some(mut child) = self.child.take() else { return Ok(Stopped { clean: true }) };
        // SAFETY: signal 0 to the service's own group only checks that it exists.
        let group_alive = || unsafe { libc::kill(-self.pgid, 0) } == 0;
        // SAFETY: signals this service's own process group.
        unsafe { libc::kill(-self.pgid, libc::SIGTERM) };
        let deadline = Instant::now() + self.stop_timeout;
        let mut clean = true;
        loop {
            let _ = child.try_wait();
            if !group_alive() {
                break;
            }
            if Instant::now() >= deadline {
                // SAFETY: as above.
                unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
                clean = false;
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.wait();
        unregister(self.pgid);
        Ok(Stopped { clean })
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Resident memory of every process in group `pgid` (pid, kB).
pub fn group_rss_kb(pgid: i32) -> Vec<(u32, u64)> {
    let page_kb = {
        // SAFETY: sysconf is always safe to call.
        let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if p > 0 { p as u64 / 1024 } else { 4 }
    };
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut out = Vec::new();
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // Fields after the command (which may hold spaces) start past its closing ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // state ppid pgrp …: pgrp is the third.
        if fields.get(2).and_then(|g| g.parse::<i32>().ok()) != Some(pgid) {
            continue;
        }
        let rss_pages = std::fs::read_to_string(format!("/proc/{pid}/statm"))
            .ok()
            .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
            .unwrap_or(0);
        out.push((pid, rss_pages * page_kb));
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback port that answers one HTTP request with `status` (e.g. "200 OK"), and the
    /// thread answering it.
    fn answer_once(status: &'static str) -> (u16, std::thread::JoinHandle<()>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            s.write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes()).unwrap();
        });
        (port, server)
    }

    fn launch(command: &str, health: String, port: u16) -> Launch {
        Launch { command: command.into(), cwd: std::env::temp_dir(), env: Vec::new(), port, health }
    }

    /// `command` launched with a free port whose health URL nobody answers.
    fn launch_unanswered(command: &str) -> Launch {
        let port = free_port().unwrap();
        launch(command, format!("http://127.0.0.1:{port}/health"), port)
    }

    #[test]
    fn a_command_that_exits_early_is_reported_with_its_output() {
        let l = launch_unanswered("echo starting; echo boom >&2; printf '\\377\\n'; exit 3");
        let e = Service::start(l, Duration::from_secs(20), Duration::from_secs(2)).unwrap_err();
        let ServiceError::Exited { log, .. } = &e else { panic!("{e}") };
        // The error names the log, and the log is there to read, whole, bytes that are not UTF-8 included.
        assert_eq!(std::fs::read(log).unwrap(), b"starting\nboom\n\xff\n");
        std::fs::remove_file(log).unwrap();
        let e = e.to_string();
        assert!(e.contains("exited") && e.contains("boom"), "{e}");
    }

    /// A service that writes more than the tail an error reads: the log is kept whole, and
    /// the error shows its last lines, not a line cut in two.
    #[test]
    fn a_long_log_is_kept_whole_and_its_last_lines_shown() {
        let l = launch_unanswered(
            "yes 'a line of output the service repeats' | head -n 40000; echo the last line >&2; exit 3",
        );
        let e = Service::start(l, Duration::from_secs(20), Duration::from_secs(2)).unwrap_err();
        let ServiceError::Exited { log, tail, .. } = &e else { panic!("{e}") };
        let kept = std::fs::read(log).unwrap();
        std::fs::remove_file(log).unwrap();
        assert_eq!(
            kept.len(),
            40000 * "a line of output the service repeats\n".len() + "the last line\n".len()
        );
        assert!(kept.len() as u64 > 2 * LOG_TAIL_BYTES);
        let lines: Vec<&str> = tail.lines().collect();
        assert_eq!(lines.len(), 15, "{tail}");
        assert_eq!(lines[14], "  | the last line");
        assert!(lines[..14].iter().all(|l| *l == "  | a line of output the service repeats"), "{tail}");
    }

    #[test]
    fn a_service_that_got_ready_leaves_no_log_behind() {
        // The health URL is answered here, so `sleep` is ready at once.
        let (port, server) = answer_once("200 OK");
        let l = launch("echo up; exec sleep 300", format!("http://127.0.0.1:{port}/health"), port);
        let mut svc = Service::start(l, Duration::from_secs(20), Duration::from_secs(2)).unwrap();
        server.join().unwrap();
        // Unlinked while it runs: a Ctrl-C (which ends servesim without unwinding) leaves none.
        assert!(!svc.log.exists(), "{} exists while the service runs", svc.log.display());
        let pgid = svc.pgid();
        assert!(svc.stop().unwrap().clean);
        assert!(!svc.log.exists());
        // SAFETY: signal 0 only checks for existence.
        assert_ne!(unsafe { libc::kill(-pgid, 0) }, 0, "the group outlived stop");
    }

    #[test]
    fn a_service_that_never_gets_ready_is_stopped_with_its_whole_group() {
        // A shell whose child sleeps: both are in the group and both must go.
        let l = launch_unanswered("sleep 300 & echo child $! ; wait");
        let t0 = Instant::now();
        let e = Service::start(l, Duration::from_millis(600), Duration::from_secs(2)).unwrap_err();
        let ServiceError::NotReady { log, .. } = &e else { panic!("{e}") };
        assert!(t0.elapsed() < Duration::from_secs(30));
        let text = std::fs::read_to_string(log).unwrap();
        std::fs::remove_file(log).unwrap();
        let pid: i32 = text.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("the child's pid");
        // SAFETY: signal 0 only checks for existence.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive, "the group's sleeping child was left running");
    }

    #[test]
    fn the_health_check_reads_the_status_line() {
        let (port, server) = answer_once("503 Service Unavailable");
        assert_eq!(get_status(&format!("http://127.0.0.1:{port}/health"), Duration::from_secs(5)), Ok(503));
        server.join().unwrap();
        let closed = free_port().unwrap();
        assert!(get_status(&format!("http://127.0.0.1:{closed}/"), Duration::from_secs(2)).is_err());
    }
}
