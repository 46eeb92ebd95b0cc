//! CPU cores as processor sharing: every runnable thread progresses at
//! `min(1, cores / runnable)` (Kleinrock, vol. 2, §4.4).
//!
//! Implemented with a virtual clock: `v` counts the work each runnable thread has received
//! since the start, so a thread that starts `w` ns of work at virtual time `v0` finishes when
//! `v = v0 + w`, however often the rate changes in between. Changing the number of runnable
//! threads only changes the rate; nothing in the heap is touched.

use crate::des::{Nanos, ceil_ns};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Work within this much of its finish counts as finished (absorbs float rounding) [ns].
const FINISH_EPS: f64 = 1e-3;

#[derive(Clone, Copy)]
struct Slot {
    vfinish: f64,
    thread: u32,
    epoch: u32,
}

impl PartialEq for Slot {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Slot {}
impl PartialOrd for Slot {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Slot {
    // Min-heap on (vfinish, thread): reversed for BinaryHeap.
    fn cmp(&self, o: &Self) -> Ordering {
        o.vfinish.total_cmp(&self.vfinish).then(o.thread.cmp(&self.thread))
    }
}

/// Processor-sharing cores shared by a fixed set of threads (indexed `0..threads`).
pub(crate) struct Cpu {
    cores: f64,
    runnable: u32,
    v: f64,
    last: Nanos,
    heap: BinaryHeap<Slot>,
    epoch: Vec<u32>,
    vfinish: Vec<f64>,
    busy_core_ns: f64,
}

impl Cpu {
    /// `cores` cores and `threads` threads, all idle.
    pub(crate) fn new(cores: u32, threads: usize) -> Self {
        Self {
            cores: f64::from(cores),
            runnable: 0,
            v: 0.0,
            last: 0,
            heap: BinaryHeap::new(),
            epoch: vec![0; threads],
            vfinish: vec![0.0; threads],
            busy_core_ns: 0.0,
        }
    }

    #[inline]
    fn rate(&self) -> f64 {
        let n = f64::from(self.runnable);
        if n <= self.cores { 1.0 } else { self.cores / n }
    }

    /// Moves the clock to `now`, crediting work to every runnable thread.
    #[inline]
    pub(crate) fn advance(&mut self, now: Nanos) {
        if now > self.last && self.runnable > 0 {
            let dt = (now - self.last) as f64;
            self.v += dt * self.rate();
            self.busy_core_ns += dt * f64::from(self.runnable).min(self.cores);
        }
        self.last = now;
    }

    /// Makes `thread` runnable with `work` ns of CPU work. Call [`Cpu::advance`] first.
    #[inline]
    pub(crate) fn start(&mut self, thread: u32, work: f64) {
        let t = thread as usize;
        self.epoch[t] = self.epoch[t].wrapping_add(1);
        let vfinish = self.v + work;
        self.vfinish[t] = vfinish;
        self.heap.push(Slot { vfinish, thread, epoch: self.epoch[t] });
        self.runnable += 1;
    }

    /// Stops `thread` before it finishes; returns its remaining work [ns].
    pub(crate) fn preempt(&mut self, thread: u32) -> f64 {
        let t = thread as usize;
        self.epoch[t] = self.epoch[t].wrapping_add(1);
        self.runnable -= 1;
        (self.vfinish[t] - self.v).max(0.0)
    }

    fn drop_stale(&mut self) {
        while let Some(top) = self.heap.peek() {
            if top.epoch == self.epoch[top.thread as usize] {
                return;
            }
            self.heap.pop();
        }
    }

    /// When the next thread finishes, if any runs.
    #[inline]
    pub(crate) fn next_finish(&mut self) -> Option<Nanos> {
        self.drop_stale();
        let top = self.heap.peek()?;
        let left = (top.vfinish - self.v).max(0.0);
        Some(self.last + ceil_ns(left / self.rate()))
    }

    /// Removes and returns a thread whose work is done at the current time, if any. Call
    /// after [`Cpu::advance`] to the time [`Cpu::next_finish`] gave.
    #[inline]
    pub(crate) fn pop_finished(&mut self) -> Option<u32> {
        self.drop_stale();
        let top = *self.heap.peek()?;
        if top.vfinish > self.v + FINISH_EPS {
            return None;
        }
        self.heap.pop();
        let t = top.thread as usize;
        self.epoch[t] = self.epoch[t].wrapping_add(1);
        self.runnable -= 1;
        Some(top.thread)
    }

    /// Forces the earliest thread out as finished (used when rounding left it a hair short).
    pub(crate) fn pop_earliest(&mut self) -> Option<u32> {
        self.drop_stale();
        let top = self.heap.pop()?;
        let t = top.thread as usize;
        self.epoch[t] = self.epoch[t].wrapping_add(1);
        self.runnable -= 1;
        Some(top.thread)
    }

    /// Core-nanoseconds of work done so far (∫ min(runnable, cores) dt).
    pub(crate) fn busy_core_ns(&self) -> f64 {
        self.busy_core_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_core_shared_by_two_threads() {
        let mut cpu = Cpu::new(1, 2);
        cpu.start(0, 100.0);
        cpu.start(1, 300.0);
        // Both at rate 1/2: thread 0 finishes at 200.
        assert_eq!(cpu.next_finish(), Some(200));
        cpu.advance(200);
        assert_eq!(cpu.pop_finished(), Some(0));
        // Thread 1 has 200 left, now alone at rate 1.
        assert_eq!(cpu.next_finish(), Some(400));
        cpu.advance(400);
        assert_eq!(cpu.pop_finished(), Some(1));
        assert_eq!(cpu.busy_core_ns(), 400.0);
        assert_eq!(cpu.next_finish(), None);
    }

    #[test]
    fn preemption_keeps_remaining_work() {
        let mut cpu = Cpu::new(2, 3);
        cpu.start(0, 100.0);
        cpu.advance(40);
        assert!((cpu.preempt(0) - 60.0).abs() < 1e-9);
        assert_eq!(cpu.next_finish(), None);
        cpu.start(1, 10.0);
        assert_eq!(cpu.next_finish(), Some(50));
    }
}
