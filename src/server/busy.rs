//! Emulated interpreter work: real arithmetic that consumes a fixed amount of the calling
//! thread's own CPU time.
//!
//! The work is measured on `CLOCK_THREAD_CPUTIME_ID`, never on the wall clock: a thread that
//! shares its core with others, or is descheduled, takes longer in wall time to finish the
//! same work — as real bytecode does. Between two clock reads the thread does a chunk of
//! about 1 µs of arithmetic, and after each chunk it passes a *switch point*, where the
//! interpreter lock may ask it to drop the lock ([`SwitchPoint`]).

use std::hint::black_box;
use std::sync::OnceLock;

/// CPU time consumed so far by the calling thread (ns).
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec and the clock id is a constant Linux knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    debug_assert_eq!(rc, 0, "CLOCK_THREAD_CPUTIME_ID is always available on Linux");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A check made between chunks of busy work (every ~1 µs of CPU).
pub trait SwitchPoint {
    /// Called at every switch point; may block (a GIL holder yielding the lock).
    fn switch_point(&mut self);
}

/// No switch points: work done without any lock.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSwitch;

impl SwitchPoint for NoSwitch {
    fn switch_point(&mut self) {}
}

/// Arithmetic rounds per nanosecond of CPU, measured once per process.
fn rounds_per_ns() -> f64 {
    static RATE: OnceLock<f64> = OnceLock::new();
    *RATE.get_or_init(|| {
        // The fastest of a few trials: the others were interrupted.
        const TRIAL: u32 = 20_000;
        let best = (0..5)
            .map(|_| {
                let t0 = thread_cpu_ns();
                black_box(chunk(TRIAL, t0 | 1));
                thread_cpu_ns().saturating_sub(t0).max(1)
            })
            .min()
            .unwrap_or(1);
        f64::from(TRIAL) / best as f64
    })
}

/// Target CPU time of one chunk between switch points (ns).
const CHUNK_NS: f64 = 1_000.0;

/// `rounds` steps of xorshift64*: real, dependent arithmetic the optimizer cannot remove.
#[inline(never)]
fn chunk(rounds: u32, mut x: u64) -> u64 {
    for _ in 0..rounds {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x = black_box(x.wrapping_mul(0x2545_F491_4F6C_DD1D));
    }
    x
}

/// Spends `cpu_ns` of the calling thread's CPU time on arithmetic, passing `sp` about every
/// microsecond. Returns the CPU time actually consumed (ns) (at least `cpu_ns`, exceeding it
/// by well under a microsecond plus the last switch point's own cost).
pub fn spin(cpu_ns: u64, sp: &mut impl SwitchPoint) -> u64 {
    if cpu_ns == 0 {
        return 0;
    }
    let rate = rounds_per_ns();
    let full = ((CHUNK_NS * rate) as u32).max(1);
    let start = thread_cpu_ns();
    let target = start + cpu_ns;
    let mut x = start | 1;
    let mut now = start;
    while now < target {
        let left = (target - now) as f64;
        let rounds = ((left * rate) as u32).clamp(1, full);
        x = chunk(rounds, x);
        sp.switch_point();
        now = thread_cpu_ns();
    }
    black_box(x);
    now - start
}

/// Nanoseconds from milliseconds, for busy work drawn from a distribution (ms). Negative or
/// non-finite draws give 0; huge draws saturate.
pub fn ms_to_ns(ms: f64) -> u64 {
    if ms.is_finite() && ms > 0.0 { (ms * 1e6).min(u64::MAX as f64) as u64 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Count(u64);
    impl SwitchPoint for Count {
        fn switch_point(&mut self) {
            self.0 += 1;
        }
    }

    #[test]
    fn spin_consumes_at_least_the_cpu_asked_and_passes_switch_points() {
        let mut sp = Count(0);
        let t0 = thread_cpu_ns();
        let used = spin(2_000_000, &mut sp);
        let measured = thread_cpu_ns() - t0;
        assert!(used >= 2_000_000, "{used}");
        assert!(measured >= used, "{measured} < {used}");
        // ~1 µs chunks: hundreds of switch points in 2 ms of work.
        assert!(sp.0 >= 100, "{} switch points", sp.0);
    }

    #[test]
    fn zero_work_is_free_and_bad_draws_are_zero() {
        let mut sp = Count(0);
        assert_eq!(spin(0, &mut sp), 0);
        assert_eq!(sp.0, 0);
        for (ms, ns) in [(1.5, 1_500_000), (0.0, 0), (-1.0, 0), (f64::NAN, 0), (f64::INFINITY, 0)] {
            assert_eq!(ms_to_ns(ms), ns, "{ms}");
        }
    }
}
