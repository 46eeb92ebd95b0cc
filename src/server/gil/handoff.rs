//! What handing the fair lock to a queued waiter costs on this machine: the OS waking a
//! parked thread to take it, its caches cold.
//!
//! Measured as the server's pool threads meet it under `fair-gil`: four threads each hold
//! the lock for a fixed spin, release it, spin a little more without it (a kernel's worth)
//! and queue again, so that every release hands it to a parked waiter. Four threads, not
//! two: with two threads on two CPUs each waiter parks alone on its own CPU and wakes faster
//! than in a real queue, where waiters outnumber the CPUs.
//!
//! [`switch_us`] times the part of a hand-off that is CPU whatever the cores do: one
//! thread passing the turn to a parked one on a busy CPU.

use super::Gil;
use crate::affinity::{self, AffinityError};
use crate::server::busy::{NoSwitch, spin};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Barrier, mpsc};
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

/// The CPU of one hand-off of the fair lock on a busy core (µs): what passing the turn from
/// one thread to a parked one costs when the CPU has no idle time to absorb it — the
/// `unpark` (a futex wake), the releaser's own `park` (a futex wait) and one context
/// switch. Two threads pinned to one CPU pass a turn back and forth through
/// `thread::park` / `unpark`, as the server's lock's waiters park; with both threads on one
/// CPU that CPU is never idle, so the wall time per pass is that CPU. (The lock's own
/// bookkeeping is left out: a thread that runs anyway does it, as part of its work.)
/// `handoffs` passes in all, the first tenth a warm-up left out (about 3 µs each on a
/// 2-vCPU VM).
///
/// Errs when the threads cannot be pinned to one CPU.
pub fn switch_us(handoffs: u32) -> Result<f64, AffinityError> {
    let one = affinity::one_cpu()?;
    let passes = (handoffs / 2).max(10);
    let warm = passes / 10;
    // Whose turn it is: thread 0 passes at even counts, thread 1 at odd ones.
    let turn = Arc::new(AtomicU32::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let spawn = |me: u32, rx: mpsc::Receiver<thread::Thread>| {
        let (turn, failed, one) = (Arc::clone(&turn), Arc::clone(&failed), one.clone());
        thread::spawn(move || -> Result<Duration, AffinityError> {
            let Ok(other) = rx.recv() else { return Ok(Duration::ZERO) };
            if let Err(e) = affinity::pin(&one) {
                failed.store(true, Ordering::Release);
                other.unpark();
                return Err(e);
            }
            let mut t0 = Instant::now();
            for i in 0..passes {
                if i == warm {
                    t0 = Instant::now();
                }
                let mine = 2 * i + me;
                while turn.load(Ordering::Acquire) != mine {
                    if failed.load(Ordering::Acquire) {
                        return Ok(Duration::ZERO);
                    }
                    // Woken by the other thread's pass; the timeout only guards a lost one.
                    thread::park_timeout(Duration::from_millis(100));
                }
                turn.store(mine + 1, Ordering::Release);
                other.unpark();
            }
            Ok(t0.elapsed())
        })
    };
    let (tx0, rx0) = mpsc::channel();
    let (tx1, rx1) = mpsc::channel();
    let (a, b) = (spawn(0, rx0), spawn(1, rx1));
    let _ = (tx0.send(b.thread().clone()), tx1.send(a.thread().clone()));
    let (a, b) = (a.join().unwrap_or(Ok(Duration::ZERO))?, b.join().unwrap_or(Ok(Duration::ZERO))?);
    // Both threads' timed passes alternate on the one CPU.
    Ok(a.max(b).as_secs_f64() * 1e6 / f64::from(2 * (passes - warm)))
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
