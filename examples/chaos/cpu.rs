//! The CPU time other processes take during the run, so that a window degraded by a build
//! next to the server can be told from one degraded by its fault: the machine's busy time
//! (`/proc/stat`) less this process's and the server's — the supervisor with the workers
//! it has reaped, and its live workers; once this process has reaped the supervisor, all of
//! it is in this process's children's time — sampled every 100 ms.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One sample, in clock ticks since boot.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// From the start of the load.
    pub at: Duration,
    /// Every CPU's time.
    total: u64,
    /// Every CPU's time running processes, or stolen by the hypervisor.
    busy: u64,
    /// This process's and the server's.
    ours: u64,
}

/// Samples until dropped or [`Sampler::finish`]ed (at most 10 minutes).
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Sample>>>,
}

impl Sampler {
    /// Starts sampling; times are from `t0`; `server` is the supervisor's pid.
    pub fn start(t0: Instant, server: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut out = Vec::new();
            for _ in 0..6_000 {
                if flag.load(Relaxed) {
                    break;
                }
                if let Some((total, busy, ours)) = sample(server) {
                    out.push(Sample { at: t0.elapsed(), total, busy, ours });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            out
        });
        Sampler { stop, thread: Some(thread) }
    }

    /// Stops sampling; every sample taken.
    pub fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

/// The share of the machine's CPU time other processes took within `[from, to)` (0 to 1),
/// from the samples nearest its ends; `None` without two samples in it.
pub fn others_share(samples: &[Sample], from: Duration, to: Duration) -> Option<f64> {
    let a = samples.iter().find(|s| s.at >= from)?;
    let b = samples.iter().rev().find(|s| s.at <= to)?;
    let total = b.total.checked_sub(a.total).filter(|&t| t > 0)?;
    let others = (b.busy.saturating_sub(a.busy)).saturating_sub(b.ours.saturating_sub(a.ours));
    Some(others as f64 / total as f64)
}

/// The machine's total and busy time, and this process's and the server's.
fn sample(server: u32) -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    // user nice system idle iowait irq softirq steal (guest time is counted in user).
    // Interrupt time is left out of `busy`: most of it is this run's own loopback traffic,
    // which no process is charged for.
    let v: Vec<u64> =
        stat.lines().next()?.split_whitespace().skip(1).take(8).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().sum();
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(7)?;
    let mut ours = process("self", true)? + process(&server.to_string(), true).unwrap_or(0);
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else { continue };
        if parent(pid) == Some(server) {
            ours += process(pid, false).unwrap_or(0);
        }
    }
    Some((total, busy, ours))
}

/// The fields of `/proc/<pid>/stat` after the command name, from the state on.
fn fields(pid: &str) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // The state is a letter: it parses as nothing and keeps its place.
    Some(rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect())
}

fn parent(pid: &str) -> Option<u32> {
    fields(pid)?.get(1).map(|&p| p as u32)
}

/// A process's user and system time, with its reaped children's if `children`.
fn process(pid: &str, children: bool) -> Option<u64> {
    // utime, stime, cutime, cstime: fields 14 to 17 of stat(5), 11 to 14 from the state.
    let f = fields(pid)?;
    let own = f.get(11)? + f.get(12)?;
    Some(if children { own + f.get(13)? + f.get(14)? } else { own })
}
