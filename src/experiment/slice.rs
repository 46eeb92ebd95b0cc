//! The time slice this machine's kernel gives a thread that shares a core with another
//! busy thread — `system.slice_ms` of `system.scheduler = "slice"`, measured.
//!
//! The kernel does not publish the slice it enforces: EEVDF's base slice
//! (`/sys/kernel/debug/sched/base_slice_ns`, 0.75 ms × (1 + log₂ CPUs) by default) is
//! checked at scheduler ticks (`CONFIG_HZ`), and debugfs is seldom mounted. So two
//! threads pinned to one CPU spin, each noting when it runs; a gap in a thread's clock is
//! the other thread's turn, and the median run between gaps is the slice.

use crate::affinity::{self, CpuList};
use std::thread;
use std::time::{Duration, Instant};

/// A gap in a spinning thread's clock longer than this was another thread's turn.
const GAP: Duration = Duration::from_micros(50);

/// The measured slice.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Slice {
    /// Median run of a thread between two turns of the other (ms).
    pub ms: f64,
    /// Runs seen (both threads).
    pub runs: usize,
    /// How it was obtained.
    pub source: String,
}

/// Why no slice could be measured.
#[derive(Debug, thiserror::Error)]
pub enum SliceError {
    /// The threads could not be pinned to one CPU.
    #[error("cannot pin two threads to one CPU to measure the time slice: {0}")]
    Pin(#[from] affinity::AffinityError),
    /// Too few turns were seen (a kernel that does not time-share a busy CPU this way, or
    /// a run too short).
    #[error("only {0} turns seen in {1} ms of two threads on one CPU; cannot tell the time slice")]
    TooFew(usize, u64),
}

/// Spins two threads on one CPU for `run` and returns the median run between turns.
/// Takes `run` (half a second is plenty: about a hundred slices at 4 ms).
pub fn measure(run: Duration) -> Result<Slice, SliceError> {
    let one = affinity::one_cpu()?;
    let cpu = one.0[0];
    let spin = |one: CpuList| {
        move || -> Result<Vec<f64>, affinity::AffinityError> {
            affinity::pin(&one)?;
            let t0 = Instant::now();
            let (mut start, mut last) = (t0, t0);
            let mut runs = Vec::new();
            while last.duration_since(t0) < run {
                let now = Instant::now();
                if now.duration_since(last) > GAP {
                    // Skip the first run: it began when the thread started, not at a turn.
                    if start != t0 {
                        runs.push(last.duration_since(start).as_secs_f64() * 1e3);
                    }
                    start = now;
                }
                last = now;
            }
            Ok(runs)
        }
    };
    let a = thread::spawn(spin(one.clone()));
    let b = thread::spawn(spin(one));
    let mut runs = a.join().unwrap_or(Ok(Vec::new()))?;
    runs.extend(b.join().unwrap_or(Ok(Vec::new()))?);
    if runs.len() < 10 {
        return Err(SliceError::TooFew(runs.len(), run.as_millis() as u64));
    }
    let n = runs.len();
    runs.sort_by(f64::total_cmp);
    let ms = runs[n / 2];
    Ok(Slice {
        ms,
        runs: n,
        source: format!("measured: two threads spinning on CPU {cpu}, median run of {n} turns"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_threads_on_one_cpu_take_turns_by_slices() {
        match measure(Duration::from_millis(400)) {
            // A slice lasts more than the gap that marks a turn, and less than a second.
            Ok(s) => assert!(s.ms > 0.05 && s.ms < 1000.0, "{s:?}"),
            // A machine that forbids pinning cannot measure it; it must say why.
            Err(e @ SliceError::Pin(_)) => eprintln!("skipped: {e}"),
            Err(e) => panic!("{e}"),
        }
    }
}
