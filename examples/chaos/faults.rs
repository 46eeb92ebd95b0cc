//! The faults: idle and slow sockets, and signals to worker processes.

use super::load::{BODY, Load};
use super::{Result, TIMEOUT, ms};
use servesim::server::ServerProcess;
use servesim::server::client;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub const SLOW_SOCKETS: usize = 1_000;
pub const SLOW_HOLD: Duration = Duration::from_secs(4);

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill has no memory-safety preconditions; a stale pid is reported as ESRCH.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// Whether process `pid` has exited — a zombie not yet reaped, or gone — and so closed its
/// descriptors.
fn has_exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

/// Continues a stopped process when dropped, unless it has exited.
struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        if !has_exited(self.0) {
            signal(self.0, libc::SIGCONT);
        }
    }
}

/// What `/healthz` and `/correct` probes on new connections saw.
#[derive(Default)]
pub struct Probes {
    pub healthz_ms: Vec<f64>,
    pub healthz_failed: usize,
    pub correct_ok: usize,
    pub correct_failed: usize,
}

fn probe(addr: SocketAddr, until: Instant) -> Probes {
    let mut p = Probes::default();
    for i in 0..10_000 {
        if Instant::now() >= until {
            break;
        }
        let t = Instant::now();
        match client::get(addr, "/healthz", TIMEOUT) {
            Ok(r) if r.status == 200 => p.healthz_ms.push(ms(t.elapsed())),
            _ => p.healthz_failed += 1,
        }
        if i % 10 == 0 {
            match client::post_json(addr, "/correct", BODY, TIMEOUT) {
                Ok(r) if r.status == 200 => p.correct_ok += 1,
                _ => p.correct_failed += 1,
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    p
}

/// Fault 1: opens the sockets, trickles the slow ones' heads and probes until `SLOW_HOLD`
/// has passed, then closes them. Returns the window and the probes.
pub fn slow_sockets(load: &Load, addr: SocketAddr) -> Result<((Duration, Duration), Probes)> {
    let start = load.now();
    let until = Instant::now() + SLOW_HOLD;
    let mut socks = Vec::with_capacity(SLOW_SOCKETS);
    for i in 0..SLOW_SOCKETS {
        let mut s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        s.set_write_timeout(Some(Duration::from_millis(100)))?;
        if i % 2 == 1 {
            s.write_all(b"POST /correct HTTP/1.1\r\nHost: x\r\n")?;
        }
        socks.push(s);
    }
    let prober = std::thread::spawn(move || probe(addr, until));
    for _ in 0..1_000 {
        if Instant::now() >= until {
            break;
        }
        for s in socks.iter_mut().skip(1).step_by(2) {
            let _ = s.write_all(b"X-Slow: 1\r\n");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let probes = prober.join().map_err(|_| "the prober panicked")?;
    drop(socks);
    Ok(((start, load.now()), probes))
}

/// A worker faulted with a signal, and its replacement.
pub struct Replaced {
    pub victim: u32,
    /// When the signal was sent, when the process had exited, when its replacement was
    /// listed ready by the supervisor (from the start of the load).
    pub at: Duration,
    pub exited: Duration,
    pub listed: Duration,
    pub replacement: u32,
}

/// Faults 2 and 3: sends `sig` to worker `index` and waits until it has exited and the
/// supervisor lists a ready replacement (at most 15 s).
pub fn fault_worker(server: &ServerProcess, load: &Load, index: u32, sig: libc::c_int) -> Result<Replaced> {
    let victim = server.workers()?.iter().find(|w| w.index == index).ok_or("no such worker")?.pid;
    let _resume = (sig == libc::SIGSTOP).then(|| Resume(victim));
    let at = load.now();
    signal(victim, sig);
    let bound = at + Duration::from_secs(15);
    while !has_exited(victim) {
        if load.now() > bound {
            return Err(format!("worker {index} (pid {victim}) still runs 15 s after signal {sig}").into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let exited = load.now();
    loop {
        let now = server.workers()?;
        if let Some(w) = now.iter().find(|w| w.index == index && w.pid != victim) {
            return Ok(Replaced { victim, at, exited, listed: load.now(), replacement: w.pid });
        }
        if load.now() > bound {
            return Err(format!("no replacement for worker {index} within 15 s").into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn sleep_until(load: &Load, t: Duration) {
    std::thread::sleep(t.saturating_sub(load.now()));
}
