//! CPU cores as processor sharing: every runnable thread progresses at
//! `min(1, cores / runnable)` (Kleinrock, vol. 2, §4.4).
//!
//! Implemented with a virtual clock: `v` counts the work each runnable thread has received
//! since the start, so a thread that starts `w` ns of work at virtual time `v0` finishes when
//! `v = v0 + w`, however often the rate changes in between. Changing the number of runnable
//! threads only changes the rate; nothing in the heap is touched, so every change is
//! O(log runnable) rather than a recomputation of every thread's completion.
//!
//! The runnable threads sit in a binary min-heap of (virtual finish, thread) pairs packed
//! into one `u128` each, so that every comparison is one integer comparison.

use crate::des::Nanos;

/// A runnable thread: the virtual finish as an order-preserving integer in the high 64
/// bits, the thread in the low 32. Integer order is the order of (finish, thread), the
/// finish compared as `f64::total_cmp` does, so ties between equal finishes go to the lower
/// thread, deterministically.
type Slot = u128;

#[inline]
fn slot(vfinish: f64, thread: u32) -> Slot {
    (u128::from(order_key(vfinish)) << 64) | u128::from(thread)
}

#[inline]
fn thread_of(s: Slot) -> u32 {
    s as u32
}

#[inline]
fn vfinish_of(s: Slot) -> f64 {
    from_key((s >> 64) as u64)
}

/// The slot of a thread that has just finished and is being given its next work: its key
/// is below every real one (`order_key` of a non-negative time is at least 2^63), so it
/// stays on top until [`Cpu::start`] replaces it or [`Cpu::settle`] removes it.
#[inline]
fn finishing(thread: u32) -> Slot {
    u128::from(thread)
}

/// Maps an `f64` to a `u64` whose unsigned order is `f64::total_cmp`'s.
#[inline]
fn order_key(x: f64) -> u64 {
    let b = x.to_bits();
    if b >> 63 == 1 { !b } else { b | (1 << 63) }
}

/// The inverse of [`order_key`].
#[inline]
fn from_key(k: u64) -> f64 {
    f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })
}

/// Rounds a non-negative duration (ns) up to a whole nanosecond, like
/// [`crate::des::ceil_ns`], but through a signed conversion (one instruction on x86-64)
/// when the value fits — it always does for spans a run can reach.
#[inline]
fn ceil_span(x: f64) -> Nanos {
    if x < 4.0e18 {
        let i = x as i64;
        (i + i64::from((i as f64) < x)) as Nanos
    } else {
        crate::des::ceil_ns(x)
    }
}

/// Processor-sharing cores shared by a fixed set of threads (indexed `0..threads`).
pub(crate) struct Cpu {
    cores: u32,
    runnable: u32,
    /// `min(1, cores / runnable)`, kept in step with `runnable`.
    rate: f64,
    v: f64,
    last: Nanos,
    heap: Vec<Slot>,
    /// ∫ min(runnable, cores) dt, exact in integers.
    busy_core_ns: u128,
}

impl Cpu {
    /// `cores` cores and `threads` threads, all idle.
    pub(crate) fn new(cores: u32, threads: usize) -> Self {
        Self {
            cores,
            runnable: 0,
            rate: 1.0,
            v: 0.0,
            last: 0,
            heap: Vec::with_capacity(threads),
            busy_core_ns: 0,
        }
    }

    #[inline]
    fn set_runnable(&mut self, n: u32) {
        self.runnable = n;
        self.rate = if n <= self.cores { 1.0 } else { f64::from(self.cores) / f64::from(n) };
    }

    /// Moves the clock to `now`, crediting work to every runnable thread.
    #[inline]
    pub(crate) fn advance(&mut self, now: Nanos) {
        if now > self.last && self.runnable > 0 {
            let dt = now - self.last;
            // Through i64: one instruction, and the same value (a span is below 2^63).
            self.v += dt as i64 as f64 * self.rate;
            self.busy_core_ns += u128::from(dt) * u128::from(self.runnable.min(self.cores));
        }
        self.last = now;
    }

    /// Makes `thread` runnable with `work` ns of CPU work. Call [`Cpu::advance`] first.
    #[inline(always)]
    pub(crate) fn start(&mut self, thread: u32, work: f64) {
        let s = slot(self.v + work, thread);
        self.set_runnable(self.runnable + 1);
        if self.heap.first() == Some(&finishing(thread)) {
            // The thread that just finished goes on: one sift instead of a pop and a push.
            sift_down(&mut self.heap, 0, s);
        } else {
            self.heap.push(s);
            let i = self.heap.len() - 1;
            sift_up(&mut self.heap, i, s);
        }
    }

    /// Stops `thread` before it finishes; returns its remaining work (ns).
    pub(crate) fn preempt(&mut self, thread: u32) -> f64 {
        // A linear search: preemption (a GIL drop) is rare next to starts and finishes,
        // which would all pay to keep an index of positions.
        let i = self.heap.iter().position(|&s| thread_of(s) == thread);
        let i = i.expect("preempting a thread that does not run");
        let vfinish = vfinish_of(self.heap[i]);
        self.remove_at(i);
        self.set_runnable(self.runnable - 1);
        (vfinish - self.v).max(0.0)
    }

    /// When the next thread finishes (`Nanos::MAX` if none runs, or if it would finish
    /// beyond the clock's end: one draw of a heavy-tailed cost can exceed 2⁶⁴ ns).
    #[inline]
    pub(crate) fn next_finish(&self) -> Nanos {
        match self.heap.first() {
            Some(&top) => {
                let left = (vfinish_of(top) - self.v).max(0.0);
                // `left / 1.0` is `left`: the division (the loop's longest latency) is
                // skipped at rate 1, bit for bit the same — by a branch, not a select that
                // would divide anyway.
                let span =
                    if self.runnable <= self.cores { left } else { super::divide_cold(left, self.rate) };
                self.last.saturating_add(ceil_span(span))
            }
            None => Nanos::MAX,
        }
    }

    /// Work every runnable thread has received since the start (ns) (the virtual clock).
    #[inline]
    pub(crate) fn virtual_ns(&self) -> f64 {
        self.v
    }

    /// How long a runnable thread takes to receive `work` ns of CPU at the current rate
    /// (ns), rounded up and saturating.
    pub(crate) fn span_of(&self, work: f64) -> Nanos {
        ceil_span(work.max(0.0) / self.rate)
    }

    /// Takes the thread that finishes first off the cores and returns it. Call after
    /// [`Cpu::advance`] to the time [`Cpu::next_finish`] gave: it is then done (up to float
    /// rounding, which the rounding of that time up to a whole nanosecond absorbs); then
    /// [`Cpu::settle`] once the thread has been given its next work, if any.
    #[inline]
    pub(crate) fn take_top(&mut self) -> u32 {
        let thread = thread_of(self.heap[0]);
        self.heap[0] = finishing(thread);
        self.set_runnable(self.runnable - 1);
        thread
    }

    /// Removes the slot [`Cpu::take_top`] left if its thread did not start again.
    #[inline]
    pub(crate) fn settle(&mut self) {
        if self.heap.first().is_some_and(|&top| top >> 64 == 0) {
            self.remove_at(0);
        }
    }

    /// Cores with no thread to run.
    #[inline]
    pub(crate) fn idle_cores(&self) -> u32 {
        self.cores.saturating_sub(self.runnable)
    }

    /// Core-nanoseconds of work done so far (∫ min(runnable, cores) dt).
    pub(crate) fn busy_core_ns(&self) -> f64 {
        self.busy_core_ns as f64
    }

    /// Removes the slot at `i`, filling the hole with the last slot.
    #[inline(always)]
    fn remove_at(&mut self, i: usize) {
        let last = self.heap.pop().expect("a slot to remove");
        if i < self.heap.len() {
            if i > 0 && last < self.heap[(i - 1) / 2] {
                sift_up(&mut self.heap, i, last);
            } else {
                sift_down(&mut self.heap, i, last);
            }
        }
    }
}

/// Puts `s` at hole `i` or above it, moving larger parents down.
#[inline(always)]
fn sift_up(heap: &mut [Slot], mut i: usize, s: Slot) {
    while i > 0 {
        let parent = (i - 1) / 2;
        let p = heap[parent];
        if s >= p {
            break;
        }
        heap[i] = p;
        i = parent;
    }
    heap[i] = s;
}

/// Puts `s` at hole `i` or below it, moving smaller children up.
#[inline(always)]
fn sift_down(heap: &mut [Slot], mut i: usize, s: Slot) {
    let n = heap.len();
    loop {
        let l = 2 * i + 1;
        if l >= n {
            break;
        }
        let c = if l + 1 < n && heap[l + 1] < heap[l] { l + 1 } else { l };
        let child = heap[c];
        if child >= s {
            break;
        }
        heap[i] = child;
        i = c;
    }
    heap[i] = s;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    impl Cpu {
        /// Takes the top thread off for good.
        fn pop(&mut self) -> u32 {
            let th = self.take_top();
            self.settle();
            th
        }
    }

    #[test]
    fn one_core_shared_by_two_threads() {
        let mut cpu = Cpu::new(1, 2);
        cpu.start(0, 100.0);
        cpu.start(1, 300.0);
        // Both at rate 1/2: thread 0 finishes at 200.
        assert_eq!(cpu.next_finish(), 200);
        cpu.advance(200);
        assert_eq!(cpu.pop(), 0);
        // Thread 1 has 200 left, now alone at rate 1.
        assert_eq!(cpu.next_finish(), 400);
        cpu.advance(400);
        assert_eq!(cpu.pop(), 1);
        assert_eq!(cpu.busy_core_ns(), 400.0);
        assert_eq!(cpu.next_finish(), Nanos::MAX);
    }

    #[test]
    fn finishes_beyond_the_clock_saturate_instead_of_wrapping() {
        let mut cpu = Cpu::new(1, 3);
        cpu.start(0, 10.0);
        cpu.advance(10);
        assert_eq!(cpu.pop(), 0);
        // 1e20 ns is past 2⁶⁴ ns: the finish is the clock's end, not a time before now.
        cpu.start(1, 1e20);
        assert_eq!(cpu.next_finish(), Nanos::MAX);
        // Work that fits alone but not at a shared rate (1e19 ns at rate 1/2).
        let mut cpu = Cpu::new(1, 3);
        cpu.advance(5);
        cpu.start(1, 1e19);
        cpu.start(2, 1e19);
        assert_eq!(cpu.next_finish(), Nanos::MAX);
        assert_eq!(cpu.span_of(10.0), 20);
    }

    #[test]
    fn preemption_keeps_remaining_work() {
        let mut cpu = Cpu::new(2, 3);
        cpu.start(0, 100.0);
        cpu.advance(40);
        assert!((cpu.preempt(0) - 60.0).abs() < 1e-9);
        assert_eq!(cpu.next_finish(), Nanos::MAX);
        cpu.start(1, 10.0);
        assert_eq!(cpu.next_finish(), 50);
    }

    #[test]
    fn order_key_is_total_cmp() {
        let xs = [-1e300, -2.5, -0.0, 0.0, 1e-300, 0.5, 1.0, 3.0e12, f64::INFINITY];
        for a in xs {
            for b in xs {
                assert_eq!(order_key(a).cmp(&order_key(b)), a.total_cmp(&b), "{a} {b}");
                assert_eq!(from_key(order_key(a)).to_bits(), a.to_bits());
            }
        }
    }

    #[test]
    fn ceil_span_matches_ceil_ns() {
        for x in [0.0, 0.2, 1.0, 1.5, 2.0 - 1e-12, 123456.0, 1e17 + 0.5, 5e18, 1e300] {
            assert_eq!(ceil_span(x), crate::des::ceil_ns(x), "{x}");
        }
    }

    /// The heap pops threads in (finish, thread) order through random starts and
    /// preemptions, like a sorted list would.
    #[test]
    fn heap_matches_a_sorted_model() {
        let mut rng = crate::des::StreamRng::seed_from_u64(5);
        let n = 24;
        let mut cpu = Cpu::new(64, n);
        let mut model: Vec<(f64, u32)> = Vec::new();
        for _ in 0..20_000 {
            let t = rng.random_range(0..n as u32);
            let running = model.iter().position(|&(_, th)| th == t);
            match running {
                None => {
                    // Few distinct amounts, so equal finishes (ties) are common.
                    let w = f64::from(rng.random_range(0..6u32));
                    cpu.start(t, w);
                    model.push((w, t));
                }
                Some(i) if rng.random_range(0..3) == 0 => {
                    cpu.preempt(t);
                    model.remove(i);
                }
                Some(_) => {
                    model.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                    let want = model.remove(0).1;
                    let got = cpu.take_top();
                    assert_eq!(got, want);
                    // Sometimes the finished thread goes on at once, sometimes another
                    // starts before it does.
                    match rng.random_range(0..3) {
                        0 => {
                            let w = f64::from(rng.random_range(0..6u32));
                            cpu.start(got, w);
                            model.push((w, got));
                        }
                        1 if model.len() + 1 < n => {
                            let other = (0..n as u32).find(|&t| t != got && !model.iter().any(|m| m.1 == t));
                            if let Some(o) = other {
                                cpu.start(o, 0.0);
                                model.push((0.0, o));
                            }
                        }
                        _ => {}
                    }
                    cpu.settle();
                }
            }
        }
    }
}
