//! What waking a parked thread costs on this machine — the constants of CPython's GIL that
//! the OS sets: how long a signalled thread takes to run, and the CPU a wake-up spends when
//! the woken thread finds its condition still false and sleeps again.
//!
//! Both are measured as the GIL meets them: a thread parked on a condition variable
//! (`pthread_cond_timedwait` under the hood, as CPython's `take_gil`), signalled by a
//! thread that has been computing and goes on computing, as a GIL holder does around a
//! release point. Where the signaller waits rather than computes, the kernel places the
//! woken thread differently, and the latency is a different number: on a 2-vCPU VM, a
//! signaller that slept before it signalled had the woken thread run on its own core in
//! about 5 µs, one that computed throughout had it woken on the idle core in 25–45 µs.
//! So the latency is measured twice:
//!
//! * `latency_us`: another core is idle — the signaller computes before and after the
//!   signal, and the woken thread is woken on the idle core (on a 2-vCPU VM, 30–45 µs: the
//!   idle vCPU has to be woken);
//! * `busy_latency_us`: every core is busy — threads that spin keep the other cores busy,
//!   and the kernel puts the woken thread on the signaller's core, where it preempts the
//!   signaller (on the same VM, 800 of 800 wake-ups on the signaller's core, 6–10 µs).
//!
//! The CPU of a vain wake-up is measured with every core busy: that is where it takes
//! time from other threads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// The measured costs of waking a parked thread.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WakeCosts {
    /// From the signal to the woken thread running, another core idle (µs).
    pub latency_us: Vec<f64>,
    /// From the signal to the woken thread running, every core busy (µs).
    pub busy_latency_us: Vec<f64>,
    /// What each signal of `latency_us` cost the signaller: the time its `notify_one` took
    /// (µs).
    pub signal_us: Vec<f64>,
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

/// What the signaller computes between two signals: long enough that the parked thread is
/// parked (and its core idle) when the next signal comes, as a GIL waiter is between a
/// holder's release points.
const GAP: Duration = Duration::from_micros(300);

/// Busy work until `done` (checked every microsecond or so) or `deadline`.
fn spin_until(deadline: Instant, done: impl Fn() -> bool) {
    while !done() && Instant::now() < deadline {
        super::super::busy::spin(1_000, &mut super::super::busy::NoSwitch);
    }
}

/// Measures `rounds` wake-ups of each kind (at least 10); takes about `rounds` × 1 ms.
pub fn measure(rounds: u32) -> WakeCosts {
    let rounds = rounds.max(10);
    let (latency_us, signal_us) = latencies(rounds);
    let busy = Spinners::start();
    let (busy_latency_us, _) = latencies(rounds);
    let vain_cpu_us = vain_cpu_us(rounds);
    drop(busy);
    WakeCosts { latency_us, busy_latency_us, signal_us, vain_cpu_us }
}

/// Threads that keep every core but one busy (spinning) until dropped; they stop within
/// about 100 µs.
struct Spinners {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Spinners {
    fn start() -> Self {
        let cores = thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (1..cores)
            .map(|_| {
                let stop = Arc::clone(&stop);
                thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        spin_until(Instant::now() + Duration::from_micros(100), || false);
                    }
                })
            })
            .collect();
        Self { stop, threads }
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Signal-to-run latencies: the waiter notes when it runs; the signaller, when it signalled
/// and how long signalling took it.
fn latencies(rounds: u32) -> (Vec<f64>, Vec<f64>) {
    let pair = Arc::new((Mutex::new(Shared::default()), Condvar::new()));
    let done = Arc::new(AtomicBool::new(false));
    let (p2, d2) = (Arc::clone(&pair), Arc::clone(&done));
    let waiter = thread::spawn(move || {
        let (m, c) = &*p2;
        let mut out = Vec::new();
        let mut st = m.lock().unwrap_or_else(PoisonError::into_inner);
        while !d2.load(Ordering::Acquire) {
            let (g, wait) =
                c.wait_timeout(st, Duration::from_millis(50)).unwrap_or_else(PoisonError::into_inner);
            st = g;
            if st.go {
                let woke = Instant::now();
                // A wait that ran out was not woken by the signal (a wake-up lost, or a
                // thread not run for the whole timeout): its time is the timeout's, not a
                // wake-up's, and is left out.
                if let Some(sent) = st.sent.take().filter(|_| !wait.timed_out()) {
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
    let mut signal_us = Vec::with_capacity(rounds as usize);
    for _ in 0..rounds {
        spin_until(Instant::now() + GAP, || false);
        let mut st = m.lock().unwrap_or_else(PoisonError::into_inner);
        st.go = true;
        let sent = Instant::now();
        st.sent = Some(sent);
        c.notify_one();
        signal_us.push(sent.elapsed().as_secs_f64() * 1e6);
        drop(st);
        // Compute until the waiter has run (bounded), without yielding the core.
        spin_until(deadline, || !m.lock().unwrap_or_else(PoisonError::into_inner).go);
    }
    done.store(true, Ordering::Release);
    c.notify_one();
    (waiter.join().unwrap_or_default(), signal_us)
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
        spin_until(Instant::now() + GAP, || false);
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
        assert!(w.busy_latency_us.len() >= 40, "{} samples", w.busy_latency_us.len());
        // A wake-up takes more than nothing and less than a scheduler tick's worth of
        // seconds; its CPU is microseconds, not nothing and not milliseconds.
        assert_eq!(w.signal_us.len(), 50);
        for l in [&w.latency_us, &w.busy_latency_us, &w.signal_us] {
            assert!(l.iter().all(|&l| l > 0.0 && l < 1e6), "{l:?}");
        }
        assert!(w.vain_cpu_us > 0.0 && w.vain_cpu_us < 1e3, "{}", w.vain_cpu_us);
    }
}
