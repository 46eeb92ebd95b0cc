//! What waking a parked thread costs on this machine — the two constants of CPython's GIL
//! that the OS sets: how long a signalled thread takes to run, and the CPU a wake-up
//! spends when the woken thread finds its condition still false and sleeps again.
//!
//! Both are measured as the GIL meets them: a thread parked on a condition variable
//! (`pthread_cond_timedwait` under the hood, as CPython's `take_gil`), signalled by a
//! thread that goes on computing, as a GIL holder goes on with its bytecode after a release
//! point. The signaller never yields: where the OS places the woken thread on the
//! signaller's busy core rather than an idle one, the woken thread waits for that core,
//! and the measured latency includes the wait — as it does for a GIL waiter. (A signaller
//! that yielded would hand its core to the woken thread at once and hide it.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// The measured costs of waking a parked thread.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WakeCosts {
    /// From the signal to the woken thread running, one sample per round (µs).
    pub latency_us: Vec<f64>,
    /// CPU the woken thread spends per wake-up that finds its condition false (µs).
    pub vain_cpu_us: f64,
}

#[derive(Default)]
struct Shared {
    /// The signal's time, set by the signaller.
    sent: Option<Instant>,
    /// The condition the waiter waits for.
    go: bool,
    /// Rounds the waiter has seen.
    seen: u64,
}

/// Time for the parked thread to go back to sleep between two rounds: long enough that it
/// is parked (and its core idle) when the next signal comes.
const GAP: Duration = Duration::from_micros(300);

/// Busy work until `done` (checked every microsecond or so) or `deadline`.
fn spin_until(deadline: Instant, done: impl Fn() -> bool) {
    while !done() && Instant::now() < deadline {
        super::super::busy::spin(1_000, &mut super::super::busy::NoSwitch);
    }
}

/// Measures `rounds` wake-ups of each kind (at least 10); takes about `rounds` × 0.7 ms.
pub fn measure(rounds: u32) -> WakeCosts {
    let rounds = rounds.max(10);
    WakeCosts { latency_us: latencies(rounds), vain_cpu_us: vain_cpu_us(rounds) }
}

/// Signal-to-run latencies: the waiter notes when it runs; the signaller, when it signalled.
fn latencies(rounds: u32) -> Vec<f64> {
    let pair = Arc::new((Mutex::new(Shared::default()), Condvar::new()));
    let done = Arc::new(AtomicBool::new(false));
    let (p2, d2) = (Arc::clone(&pair), Arc::clone(&done));
    let waiter = thread::spawn(move || {
        let (m, c) = &*p2;
        let mut out = Vec::new();
        let mut st = m.lock().unwrap_or_else(PoisonError::into_inner);
        while !d2.load(Ordering::Acquire) {
            let (g, _) =
                c.wait_timeout(st, Duration::from_millis(50)).unwrap_or_else(PoisonError::into_inner);
            st = g;
            if st.go {
                let woke = Instant::now();
                if let Some(sent) = st.sent.take() {
                    out.push(woke.saturating_duration_since(sent).as_secs_f64() * 1e6);
                }
                st.go = false;
                st.seen += 1;
            }
        }
        out
    });
    let (m, c) = &*pair;
    let deadline = Instant::now() + Duration::from_secs(30);
    for _ in 0..rounds {
        thread::sleep(GAP);
        let mut st = m.lock().unwrap_or_else(PoisonError::into_inner);
        st.go = true;
        st.sent = Some(Instant::now());
        c.notify_one();
        drop(st);
        // Compute until the waiter has run (bounded), without yielding the core.
        spin_until(deadline, || !m.lock().unwrap_or_else(PoisonError::into_inner).go);
    }
    done.store(true, Ordering::Release);
    c.notify_one();
    waiter.join().unwrap_or_default()
}

/// CPU per vain wake-up: the waiter is signalled `rounds` times with its condition false,
/// and its own CPU clock says what the wake-ups and the sleeps again cost it.
fn vain_cpu_us(rounds: u32) -> f64 {
    let pair = Arc::new((Mutex::new(Shared::default()), Condvar::new()));
    let (p2,) = (Arc::clone(&pair),);
    let waiter = thread::spawn(move || {
        let (m, c) = &*p2;
        let cpu0 = super::super::busy::thread_cpu_ns();
        let mut wakes = 0u64;
        let mut st = m.lock().unwrap_or_else(PoisonError::into_inner);
        // `go` is the stop flag here: every other signal is in vain.
        while !st.go {
            let (g, _) =
                c.wait_timeout(st, Duration::from_millis(50)).unwrap_or_else(PoisonError::into_inner);
            st = g;
            wakes += 1;
            st.seen += 1;
        }
        let cpu = super::super::busy::thread_cpu_ns().saturating_sub(cpu0);
        (cpu as f64 / 1e3, wakes)
    });
    let (m, c) = &*pair;
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..u64::from(rounds) {
        thread::sleep(GAP);
        c.notify_one();
        spin_until(deadline, || m.lock().unwrap_or_else(PoisonError::into_inner).seen > i);
    }
    m.lock().unwrap_or_else(PoisonError::into_inner).go = true;
    c.notify_one();
    let (cpu_us, wakes) = waiter.join().unwrap_or((0.0, 1));
    cpu_us / wakes.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_costs_are_measured_and_plausible() {
        let w = measure(50);
        assert!(w.latency_us.len() >= 40, "{} samples", w.latency_us.len());
        // A wake-up takes more than nothing and less than a scheduler tick's worth of
        // seconds; its CPU is microseconds, not nothing and not milliseconds.
        assert!(w.latency_us.iter().all(|&l| l > 0.0 && l < 1e6), "{:?}", w.latency_us);
        assert!(w.vain_cpu_us > 0.0 && w.vain_cpu_us < 1e3, "{}", w.vain_cpu_us);
    }
}
