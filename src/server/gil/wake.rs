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
//!
//! A third wake-up is of a thread blocked on the GIL's mutex (`gil->mutex`, a glibc
//! `pthread_mutex_t` without spinning), which a woken waiter holds for a microsecond or so
//! while it checks: `mutex_us`, from the unlock to the blocked thread holding the mutex.
//! Its core went idle only that long before, and has not halted yet, so the wake-up is far
//! cheaper than one onto a core that has (on the same VM: 12 µs for a 1 µs hold, 20–35 µs
//! from 3 µs on).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// From a brief hold's unlock to the thread blocked on the mutex holding it (µs).
    pub mutex_us: Vec<f64>,
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
    let mutex_us = mutex_wakes(rounds);
    WakeCosts { latency_us, busy_latency_us, signal_us, vain_cpu_us, mutex_us }
}

/// How long a woken GIL waiter holds `gil->mutex` in the mutex benchmark: glibc's return
/// from the wait, CPython's check of the GIL, and the next wait's start (µs).
pub const MUTEX_HOLD_US: u64 = 1;

/// A glibc `pthread_mutex_t` of the default kind, as CPython's `gil->mutex` is: a thread
/// that finds it locked sleeps on a futex at once (no spinning, unlike `std`'s mutex).
struct PthreadMutex(std::cell::UnsafeCell<libc::pthread_mutex_t>);

// SAFETY: a pthread mutex is made to be locked and unlocked from several threads; it is
// only ever used through `lock` and `unlock`, and never moved once shared (it lives in an
// `Arc`).
unsafe impl Sync for PthreadMutex {}
// SAFETY: as above; no thread owns it when it moves.
unsafe impl Send for PthreadMutex {}

impl PthreadMutex {
    fn new() -> Self {
        Self(std::cell::UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER))
    }
    fn lock(&self) {
        // SAFETY: the mutex was initialised by `new` and has not moved since it was shared.
        let rc = unsafe { libc::pthread_mutex_lock(self.0.get()) };
        debug_assert_eq!(rc, 0);
    }
    fn unlock(&self) {
        // SAFETY: as in `lock`; the calling thread holds it (every unlock follows its lock).
        let rc = unsafe { libc::pthread_mutex_unlock(self.0.get()) };
        debug_assert_eq!(rc, 0);
    }
}

/// Wake-ups of a thread blocked on a mutex held briefly: the holder takes it, says so,
/// holds it `MUTEX_HOLD_US`, notes the time and unlocks; the other thread, computing until
/// then, locks it at once (and blocks) and notes when it holds it. Rounds whose lock came
/// after the unlock (no wake-up) are left out.
fn mutex_wakes(rounds: u32) -> Vec<f64> {
    #[derive(Default)]
    struct Shared {
        go: AtomicU64,
        held: AtomicU64,
        done: AtomicU64,
        unlocked_ns: AtomicU64,
        stop: AtomicBool,
    }
    let m = Arc::new(PthreadMutex::new());
    let sh = Arc::new(Shared::default());
    let epoch = Instant::now();
    let ns = move || epoch.elapsed().as_nanos() as u64;
    let (m2, sh2) = (Arc::clone(&m), Arc::clone(&sh));
    let holder = thread::spawn(move || {
        for i in 1..=u64::from(rounds) {
            // Wait (computing, bounded) for round `i`.
            let deadline = Instant::now() + Duration::from_secs(5);
            spin_until(deadline, || sh2.go.load(Ordering::Acquire) >= i || sh2.stop.load(Ordering::Acquire));
            if sh2.stop.load(Ordering::Acquire) || sh2.go.load(Ordering::Acquire) < i {
                return;
            }
            m2.lock();
            sh2.held.store(i, Ordering::Release);
            let until = Instant::now() + Duration::from_micros(MUTEX_HOLD_US);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            sh2.unlocked_ns.store(ns(), Ordering::Release);
            m2.unlock();
            sh2.done.store(i, Ordering::Release);
        }
    });
    let mut out = Vec::with_capacity(rounds as usize);
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 1..=u64::from(rounds) {
        if Instant::now() > deadline {
            break;
        }
        spin_until(Instant::now() + GAP, || false);
        sh.go.store(i, Ordering::Release);
        spin_until(deadline, || sh.held.load(Ordering::Acquire) >= i || sh.done.load(Ordering::Acquire) >= i);
        let called = ns();
        m.lock();
        let got = ns();
        m.unlock();
        spin_until(deadline, || sh.done.load(Ordering::Acquire) >= i);
        let unlocked = sh.unlocked_ns.load(Ordering::Acquire);
        // Only locks that met the hold and blocked: called before the unlock.
        if sh.done.load(Ordering::Acquire) >= i && called < unlocked && got >= unlocked {
            out.push((got - unlocked) as f64 / 1e3);
        }
    }
    sh.stop.store(true, Ordering::Release);
    let _ = holder.join();
    out
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
        let _alone = crate::server::gil::MACHINE_TIMING.lock().unwrap_or_else(|e| e.into_inner());
        // The mutex's wake-ups need the two threads on two cores at once: with the other
        // tests of this binary busy on the CPUs, a round can find them taking turns on one
        // (no lock meets the hold). Measured again, up to three times in all.
        let mut w = measure(50);
        for _ in 0..2 {
            if w.mutex_us.len() >= 10 {
                break;
            }
            w = measure(50);
        }
        assert!(w.latency_us.len() >= 40, "{} samples", w.latency_us.len());
        assert!(w.busy_latency_us.len() >= 40, "{} samples", w.busy_latency_us.len());
        // A wake-up takes more than nothing and less than a scheduler tick's worth of
        // seconds; its CPU is microseconds, not nothing and not milliseconds.
        assert_eq!(w.signal_us.len(), 50);
        for l in [&w.latency_us, &w.busy_latency_us, &w.signal_us] {
            assert!(l.iter().all(|&l| l > 0.0 && l < 1e6), "{l:?}");
        }
        assert!(w.vain_cpu_us > 0.0 && w.vain_cpu_us < 1e3, "{}", w.vain_cpu_us);
        // Most locks of the mutex meet its brief hold and block.
        assert!(w.mutex_us.len() >= 10, "{} of 50 locks blocked", w.mutex_us.len());
        assert!(w.mutex_us.iter().all(|&l| l > 0.0 && l < 1e6), "{:?}", w.mutex_us);
    }
}
