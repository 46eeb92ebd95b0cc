//! The cores a run uses: processor sharing ([`Cpu`]) or time slices ([`SliceCpu`]), as
//! `system.scheduler` says. Both keep the same books; the system asks them through this.

use super::cpu::Cpu;
use super::slice::SliceCpu;
use crate::des::Nanos;

/// The scenario's cores.
pub(crate) enum Cores {
    /// Every runnable thread progresses at `min(1, cores / runnable)`.
    Ps(Cpu),
    /// A thread holds a core for a slice at full speed.
    Slice(SliceCpu),
}

impl Cores {
    #[inline(always)]
    pub(crate) fn advance(&mut self, now: Nanos) {
        match self {
            Cores::Ps(c) => c.advance(now),
            Cores::Slice(c) => c.advance(now),
        }
    }

    /// Makes `thread` runnable with `work` ns of CPU work. Call [`Cores::advance`] first.
    #[inline(always)]
    pub(crate) fn start(&mut self, thread: u32, work: f64) {
        match self {
            Cores::Ps(c) => c.start(thread, work),
            Cores::Slice(c) => c.start(thread, work),
        }
    }

    /// Makes `thread` runnable with `work` ns of CPU work on the core `victim` runs on, if
    /// no core is idle: `victim` waits for a core again, ahead of the others (a wake-up
    /// preempting its waker). Under processor sharing, or when `victim` is not on a core or
    /// a core is idle, as [`Cores::start`].
    pub(crate) fn start_preempting(&mut self, thread: u32, work: f64, victim: u32) {
        match self {
            Cores::Ps(c) => c.start(thread, work),
            Cores::Slice(c) => c.start_preempting(thread, work, victim),
        }
    }

    /// Stops `thread` before it finishes (it blocks); returns its remaining work (ns).
    pub(crate) fn preempt(&mut self, thread: u32) -> f64 {
        match self {
            Cores::Ps(c) => c.preempt(thread),
            Cores::Slice(c) => c.preempt(thread),
        }
    }

    /// Replaces the remaining work of a runnable `thread` with `work`, leaving it where it
    /// is (on its core, or in the queue); returns what was left.
    pub(crate) fn reset(&mut self, thread: u32, work: f64) -> f64 {
        match self {
            Cores::Ps(c) => {
                let left = c.preempt(thread);
                c.start(thread, work);
                left
            }
            Cores::Slice(c) => c.reset(thread, work),
        }
    }

    /// When the next thread finishes (or, with slices, a slice ends).
    #[inline(always)]
    pub(crate) fn next_finish(&self) -> Nanos {
        match self {
            Cores::Ps(c) => c.next_finish(),
            Cores::Slice(c) => c.next_finish(),
        }
    }

    /// A clock of the CPU work `thread` receives, that moves only while it is runnable:
    /// how much work it did between two readings while it ran. Processor sharing gives every
    /// runnable thread the same (the virtual clock).
    #[inline(always)]
    pub(crate) fn clock(&self, thread: u32) -> f64 {
        match self {
            Cores::Ps(c) => c.virtual_ns(),
            Cores::Slice(c) => c.clock(thread),
        }
    }

    /// How long a runnable thread takes to receive `work` ns of CPU from now (ns): at the
    /// current rate under processor sharing; with slices, `work` (a thread on a core runs
    /// at full speed; the slices ahead are not foreseen).
    pub(crate) fn span_of(&self, work: f64) -> Nanos {
        match self {
            Cores::Ps(c) => c.span_of(work),
            Cores::Slice(_) => crate::des::ceil_ns(work.max(0.0)),
        }
    }

    /// A thread whose work is done, taken off the cores; `None` if the time
    /// [`Cores::next_finish`] gave was only a slice's end.
    #[inline(always)]
    pub(crate) fn take_top(&mut self) -> Option<u32> {
        match self {
            Cores::Ps(c) => Some(c.take_top()),
            Cores::Slice(c) => c.take_top(),
        }
    }

    /// Call once the thread [`Cores::take_top`] gave has been given its next work, if any.
    #[inline(always)]
    pub(crate) fn settle(&mut self) {
        match self {
            Cores::Ps(c) => c.settle(),
            Cores::Slice(c) => c.settle(),
        }
    }

    /// Cores with no thread to run.
    #[inline(always)]
    pub(crate) fn idle_cores(&self) -> u32 {
        match self {
            Cores::Ps(c) => c.idle_cores(),
            Cores::Slice(c) => c.idle_cores(),
        }
    }

    /// Core-nanoseconds of work done so far.
    pub(crate) fn busy_core_ns(&self) -> f64 {
        match self {
            Cores::Ps(c) => c.busy_core_ns(),
            Cores::Slice(c) => c.busy_core_ns(),
        }
    }
}
