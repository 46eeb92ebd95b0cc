//! What handing the fair lock to a queued waiter costs on this machine: the OS waking a
//! parked thread to take it, its caches cold.
//!
//! Measured as the server's pool threads meet it under `fair-gil`: four threads each hold
//! the lock for a fixed spin, release it, spin a little more without it (a kernel's worth)
//! and queue again, so that every release hands it to a parked waiter. Four threads, not
//! two: with two threads on two CPUs each waiter parks alone on its own CPU and wakes faster
//! than in a real queue, where waiters outnumber the CPUs.

use super::Gil;
use crate::affinity::{self, AffinityError, CpuList};
use crate::server::busy::{NoSwitch, spin};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// Time each thread holds the lock per turn (ns).
const HOLD_NS: u64 = 20_000;
/// Time each thread spins without the lock between turns (ns).
const FREE_NS: u64 = 10_000;
/// Threads queueing for the lock.
const THREADS: u32 = 4;
/// Rounds timed; the least is kept.
const ROUNDS: u32 = 5;

/// The hand-off cost (µs): the wall time per hold beyond the held spin, over about
/// `handoffs` hand-offs in five rounds. The least of the rounds: another process on the
/// machine can only add to a round's time, so the least is the one it disturbed least.
pub fn measure(handoffs: u32) -> f64 {
    let per_thread = (handoffs / THREADS / ROUNDS).max(1);
    let mut rounds: Vec<f64> = (0..ROUNDS).map(|_| round_us(per_thread)).collect();
    rounds.sort_by(f64::total_cmp);
    rounds[0]
}

/// One round of `per_thread` holds by each thread: the wall time per hold beyond the held
/// spin (µs).
fn round_us(per_thread: u32) -> f64 {
    let gil = Arc::new(Gil::new(Some(Duration::from_millis(5))));
    let start = Arc::new(Barrier::new(THREADS as usize));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (gil, start) = (Arc::clone(&gil), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                let t0 = Instant::now();
                for _ in 0..per_thread {
                    gil.acquire();
                    spin(HOLD_NS, &mut NoSwitch);
                    gil.release();
                    spin(FREE_NS, &mut NoSwitch);
                }
                t0.elapsed()
            })
        })
        .collect();
    let wall = threads.into_iter().map(|t| t.join().unwrap_or_default()).max().unwrap_or_default();
    let holds = f64::from(THREADS * per_thread);
    ((wall.as_secs_f64() * 1e6 / holds) - HOLD_NS as f64 / 1e3).max(0.0)
}

/// Time each thread holds the lock per turn in [`switch_us`] (ns): short, so that the
/// hand-offs dominate the round.
const SWITCH_HOLD_NS: u64 = 2_000;

/// The CPU of one hand-off of the fair lock on a busy core (µs): two threads pinned to one
/// CPU take turns holding the server's lock for a short spin, so that every release hands
/// it to the other, parked, thread — the releaser's `unpark`, its own park when it asks
/// for the lock again, and the context switch between the two. With both threads on one
/// CPU that CPU is never idle, so the wall time per hold beyond the held spin is that CPU.
/// `handoffs` hand-offs in all (about 3 µs each on a 2-vCPU VM: a millisecond or so).
///
/// Errs when the threads cannot be pinned to one CPU.
pub fn switch_us(handoffs: u32) -> Result<f64, AffinityError> {
    let cpu = affinity::allowed()?.0.last().copied().unwrap_or(0);
    let one = CpuList(vec![cpu]);
    let per_thread = (handoffs / 2).max(1);
    let gil = Arc::new(Gil::new(None));
    let start = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (gil, start, one) = (Arc::clone(&gil), Arc::clone(&start), one.clone());
            thread::spawn(move || -> Result<Duration, AffinityError> {
                let pinned = affinity::pin(&one);
                // Both threads reach the barrier, pinned or not, so neither waits forever.
                start.wait();
                pinned?;
                let t0 = Instant::now();
                for _ in 0..per_thread {
                    gil.acquire();
                    spin(SWITCH_HOLD_NS, &mut NoSwitch);
                    gil.release();
                }
                Ok(t0.elapsed())
            })
        })
        .collect();
    let mut wall = Duration::ZERO;
    for t in threads {
        wall = wall.max(t.join().unwrap_or(Ok(Duration::ZERO))?);
    }
    let holds = f64::from(2 * per_thread);
    Ok(((wall.as_secs_f64() * 1e6 / holds) - SWITCH_HOLD_NS as f64 / 1e3).max(0.0))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_lock_hand_off_costs_something_finite() {
        let _alone = crate::server::gil::MACHINE_TIMING.lock().unwrap_or_else(|e| e.into_inner());
        let h = super::measure(200);
        assert!(h.is_finite() && h >= 0.0, "{h}");
    }

    #[test]
    fn a_hand_off_on_one_busy_cpu_costs_microseconds() {
        let _alone = crate::server::gil::MACHINE_TIMING.lock().unwrap_or_else(|e| e.into_inner());
        match super::switch_us(2000) {
            // A context switch and two futex calls: more than nothing, far less than a
            // millisecond on any machine this runs on.
            Ok(us) => assert!(us > 0.0 && us < 1000.0, "{us}"),
            // A machine that forbids pinning cannot measure it; it must say why.
            Err(e) => eprintln!("skipped: cannot pin two threads to one CPU: {e}"),
        }
    }
}
