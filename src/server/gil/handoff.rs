//! What handing the fair lock to a queued waiter costs on this machine: the OS waking a
//! parked thread to take it, its caches cold.
//!
//! Measured as the server's pool threads meet it under `fair-gil`: four threads each hold
//! the lock for a fixed spin, release it, spin a little more without it (a kernel's worth)
//! and queue again, so that every release hands it to a parked waiter. Four threads, not
//! two: with two threads on two CPUs each waiter parks alone on its own CPU and wakes faster
//! than in a real queue, where waiters outnumber the CPUs.

use super::Gil;
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_lock_hand_off_costs_something_finite() {
        let _alone = crate::server::gil::MACHINE_TIMING.lock().unwrap_or_else(|e| e.into_inner());
        let h = super::measure(200);
        assert!(h.is_finite() && h >= 0.0, "{h}");
    }
}
