//! CPU cores as a time-sharing kernel runs them: a runnable thread holds a core for a
//! time slice at full speed, then goes to the back of the run queue if another thread
//! waits for a core.
//!
//! ```text
//!  start:    a thread that just finished on a core and goes straight on keeps the core and
//!            what is left of its slice; any other starts on an idle core, or queues
//!  queue:    threads that woke (they slept: a lock, a wake-up, new work) run before
//!            threads whose slice ran out, each kind first come first served — as EEVDF
//!            places a sleeper ahead of the threads that have been running
//!  slice:    at its end the thread goes to the back of the queue if any thread waits;
//!            else it gets a new slice. A running thread is never preempted mid-slice.
//! ```
//!
//! Under processor sharing a thread that holds a lock while N threads share C cores runs
//! at C/N speed, so its short critical section lasts N/C times longer in wall time. A
//! kernel does not do that: it runs the holder at full speed until its slice ends, and
//! once in a while that end falls inside the critical section, and every other thread that
//! needs the lock waits until the holder's turn comes back. That is what these cores
//! reproduce.

use crate::des::Nanos;

/// No thread.
const NONE: u32 = u32::MAX;

/// One core.
#[derive(Clone, Copy, Debug)]
struct Core {
    /// The thread it runs (`NONE`: idle).
    thread: u32,
    /// When that thread got the core (ns).
    since: Nanos,
    /// When its work ends, if it keeps the core (ns, rounded up).
    finish: Nanos,
    /// When its slice ends (ns).
    slice_end: Nanos,
}

const IDLE: Core = Core { thread: NONE, since: 0, finish: Nanos::MAX, slice_end: Nanos::MAX };

/// Where a thread is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    /// Not runnable.
    Off,
    /// Waiting for a core.
    Queued,
    /// On core `c`.
    Core(u32),
}

/// Time-sliced cores shared by a fixed set of threads (indexed `0..threads`).
pub(crate) struct SliceCpu {
    cores: Vec<Core>,
    slice: Nanos,
    now: Nanos,
    /// Per thread: work left in its current job when it last got or left a core (ns).
    left: Vec<f64>,
    /// Per thread: CPU received since the start, up to when it last got or left a core.
    clock: Vec<f64>,
    at: Vec<At>,
    /// Threads that woke, waiting for a core, first come first served.
    woken: std::collections::VecDeque<u32>,
    /// Threads whose slice ran out, waiting for a core.
    rotated: std::collections::VecDeque<u32>,
    /// The core whose thread [`SliceCpu::take_top`] took as finished, until
    /// [`SliceCpu::settle`].
    finishing: Option<u32>,
    busy_core_ns: u128,
    running: u32,
}

impl SliceCpu {
    /// `cores` cores with a slice of `slice` ns, and `threads` threads, all idle.
    pub(crate) fn new(cores: u32, threads: usize, slice: Nanos) -> Self {
        Self {
            cores: vec![IDLE; cores as usize],
            slice: slice.max(1),
            now: 0,
            left: vec![0.0; threads],
            clock: vec![0.0; threads],
            at: vec![At::Off; threads],
            woken: Default::default(),
            rotated: Default::default(),
            finishing: None,
            busy_core_ns: 0,
            running: 0,
        }
    }

    /// Moves the clock to `now`: slices that end by then rotate.
    pub(crate) fn advance(&mut self, now: Nanos) {
        if now > self.now {
            self.busy_core_ns += u128::from(now - self.now) * u128::from(self.running);
        }
        self.now = now;
        for c in 0..self.cores.len() {
            let core = self.cores[c];
            if core.thread != NONE && core.slice_end <= now && core.finish > now {
                self.rotate(c as u32);
            }
        }
    }

    /// The slice of the thread on core `c` has ended: it yields to a waiting thread, or
    /// gets a new slice.
    fn rotate(&mut self, c: u32) {
        if self.woken.is_empty() && self.rotated.is_empty() {
            self.cores[c as usize].slice_end = self.now.saturating_add(self.slice);
            return;
        }
        let th = self.leave(c);
        self.at[th as usize] = At::Queued;
        self.rotated.push_back(th);
        self.fill(c);
    }

    /// Takes the thread off core `c`, crediting its work; returns it.
    fn leave(&mut self, c: u32) -> u32 {
        let core = std::mem::replace(&mut self.cores[c as usize], IDLE);
        let th = core.thread;
        let ran = self.now.saturating_sub(core.since) as f64;
        self.left[th as usize] = (self.left[th as usize] - ran).max(0.0);
        self.clock[th as usize] += ran;
        self.at[th as usize] = At::Off;
        self.running -= 1;
        th
    }

    /// Puts `th` on core `c` until `slice_end`.
    fn run_on(&mut self, c: u32, th: u32, slice_end: Nanos) {
        let finish = self.now.saturating_add(ceil_ns(self.left[th as usize]));
        self.cores[c as usize] = Core { thread: th, since: self.now, finish, slice_end };
        self.at[th as usize] = At::Core(c);
        self.running += 1;
    }

    /// Gives idle core `c` to the first waiting thread, if any.
    fn fill(&mut self, c: u32) {
        if let Some(th) = self.woken.pop_front().or_else(|| self.rotated.pop_front()) {
            let end = self.now.saturating_add(self.slice);
            self.run_on(c, th, end);
        }
    }

    /// Makes `thread` runnable with `work` ns of CPU work. Call [`SliceCpu::advance`] first.
    pub(crate) fn start(&mut self, thread: u32, work: f64) {
        self.left[thread as usize] = work;
        if let Some(c) = self.finishing.take_if(|&mut c| self.cores[c as usize].thread == thread) {
            // Goes straight on: keeps its core and what is left of its slice.
            let end = self.cores[c as usize].slice_end;
            self.cores[c as usize].thread = NONE;
            self.running -= 1;
            return self.run_on(c, thread, end);
        }
        match self.cores.iter().position(|k| k.thread == NONE) {
            Some(c) => {
                let end = self.now.saturating_add(self.slice);
                self.run_on(c as u32, thread, end)
            }
            _ => {
                self.at[thread as usize] = At::Queued;
                self.woken.push_back(thread);
            }
        }
    }

    /// Makes `thread` runnable with `work` ns on `victim`'s core when no core is idle:
    /// `victim` leaves it and waits at the head of the queue of woken threads. Otherwise
    /// (a core idle, `victim` not running, or its work just done) as [`SliceCpu::start`].
    pub(crate) fn start_preempting(&mut self, thread: u32, work: f64, victim: u32) {
        let c = match self.at.get(victim as usize) {
            Some(&At::Core(c)) if self.finishing != Some(c) && self.running == self.cores.len() as u32 => c,
            _ => return self.start(thread, work),
        };
        self.leave(c);
        self.at[victim as usize] = At::Queued;
        self.woken.push_front(victim);
        self.left[thread as usize] = work;
        let end = self.now.saturating_add(self.slice);
        self.run_on(c, thread, end);
    }

    /// Stops `thread` before it finishes (it blocks); returns its remaining work (ns).
    pub(crate) fn preempt(&mut self, thread: u32) -> f64 {
        match self.at[thread as usize] {
            At::Core(c) => {
                self.leave(c);
                self.fill(c);
            }
            At::Queued => {
                self.woken.retain(|&t| t != thread);
                self.rotated.retain(|&t| t != thread);
                self.at[thread as usize] = At::Off;
            }
            At::Off => panic!("preempting a thread that does not run"),
        }
        self.left[thread as usize]
    }

    /// Replaces `thread`'s remaining work with `work`, where it is (on a core or queued);
    /// returns what was left.
    pub(crate) fn reset(&mut self, thread: u32, work: f64) -> f64 {
        match self.at[thread as usize] {
            At::Core(c) => {
                let core = self.cores[c as usize];
                let ran = self.now.saturating_sub(core.since) as f64;
                let left = (self.left[thread as usize] - ran).max(0.0);
                self.clock[thread as usize] += ran;
                self.left[thread as usize] = work;
                let k = &mut self.cores[c as usize];
                (k.since, k.finish) = (self.now, self.now.saturating_add(ceil_ns(work)));
                left
            }
            At::Queued => std::mem::replace(&mut self.left[thread as usize], work),
            At::Off => panic!("resetting a thread that does not run"),
        }
    }

    /// When the next thread finishes or a slice ends (`Nanos::MAX` if nothing runs).
    pub(crate) fn next_finish(&self) -> Nanos {
        self.cores.iter().map(|k| k.finish.min(k.slice_end)).min().unwrap_or(Nanos::MAX)
    }

    /// CPU work `thread` has received since the start (ns), as of now.
    pub(crate) fn clock(&self, thread: u32) -> f64 {
        let base = self.clock[thread as usize];
        match self.at[thread as usize] {
            At::Core(c) => base + self.now.saturating_sub(self.cores[c as usize].since) as f64,
            _ => base,
        }
    }

    /// Takes a thread whose work is done off its core (the core stays its own until
    /// [`SliceCpu::settle`]) and returns it; `None` if the event was only a slice's end.
    pub(crate) fn take_top(&mut self) -> Option<u32> {
        let now = self.now;
        let c = self.cores.iter().position(|k| k.thread != NONE && k.finish <= now)?;
        let th = self.cores[c].thread;
        self.clock[th as usize] += now.saturating_sub(self.cores[c].since) as f64;
        self.left[th as usize] = 0.0;
        self.cores[c].finish = Nanos::MAX;
        self.at[th as usize] = At::Off;
        self.finishing = Some(c as u32);
        Some(th)
    }

    /// Frees the core of the thread [`SliceCpu::take_top`] took, if it did not go on.
    pub(crate) fn settle(&mut self) {
        if let Some(c) = self.finishing.take() {
            let core = self.cores[c as usize];
            if core.thread != NONE && self.at[core.thread as usize] == At::Off {
                self.cores[c as usize] = IDLE;
                self.running -= 1;
                self.fill(c);
            }
        }
    }

    /// Cores with no thread to run: a core whose thread has just finished (between
    /// [`SliceCpu::take_top`] and its next start or [`SliceCpu::settle`]) counts as idle, as
    /// it does under processor sharing.
    pub(crate) fn idle_cores(&self) -> u32 {
        let finished = self.finishing.is_some_and(|c| {
            let t = self.cores[c as usize].thread;
            t != NONE && self.at[t as usize] == At::Off
        });
        self.cores.len() as u32 - self.running + u32::from(finished)
    }

    /// Core-nanoseconds of work done so far.
    pub(crate) fn busy_core_ns(&self) -> f64 {
        self.busy_core_ns as f64
    }
}

/// A non-negative duration rounded up to a whole nanosecond.
fn ceil_ns(x: f64) -> Nanos {
    crate::des::ceil_ns(x.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the cores to the next finish; returns (time, thread).
    fn finish(cpu: &mut SliceCpu) -> (Nanos, u32) {
        loop {
            let t = cpu.next_finish();
            assert!(t < Nanos::MAX, "nothing runs");
            cpu.advance(t);
            if let Some(th) = cpu.take_top() {
                cpu.settle();
                return (t, th);
            }
        }
    }

    #[test]
    fn one_core_runs_threads_in_turn_by_slices() {
        // Two threads of 25 ns on one core with a slice of 10: A 0–10, B 10–20, A 20–30,
        // B 30–40, A 40–45 (done), B 45–50 (done).
        let mut cpu = SliceCpu::new(1, 2, 10);
        cpu.start(0, 25.0);
        cpu.start(1, 25.0);
        assert_eq!(finish(&mut cpu), (45, 0));
        assert_eq!(finish(&mut cpu), (50, 1));
        assert_eq!(cpu.busy_core_ns(), 50.0);
        assert_eq!(cpu.clock(0), 25.0);
    }

    #[test]
    fn a_thread_alone_keeps_its_core_past_its_slice() {
        let mut cpu = SliceCpu::new(1, 1, 10);
        cpu.start(0, 35.0);
        assert_eq!(finish(&mut cpu), (35, 0));
    }

    #[test]
    fn a_woken_thread_waits_for_the_slice_end_then_goes_before_rotated_ones() {
        // One core: A runs 0–10, B 10–20 while A waits with its slice spent; C wakes at 15
        // and runs at B's slice end (20–23), ahead of A.
        let mut cpu = SliceCpu::new(1, 3, 10);
        cpu.start(0, 100.0);
        cpu.start(1, 100.0);
        assert_eq!(cpu.next_finish(), 10);
        cpu.advance(10);
        assert_eq!(cpu.take_top(), None, "a slice's end, not a finish");
        cpu.advance(15);
        assert_eq!(cpu.next_finish(), 20);
        cpu.start(2, 3.0);
        assert_eq!(finish(&mut cpu), (23, 2));
        assert_eq!(cpu.clock(0), 10.0);
        assert_eq!(cpu.clock(1), 10.0);
    }

    #[test]
    fn a_thread_that_goes_straight_on_keeps_its_core() {
        let mut cpu = SliceCpu::new(1, 2, 10);
        cpu.start(0, 4.0);
        cpu.start(1, 4.0);
        let t = cpu.next_finish();
        cpu.advance(t);
        assert_eq!(cpu.take_top(), Some(0));
        cpu.start(0, 4.0);
        cpu.settle();
        // Thread 0 goes on in its slice (4–8), then B's turn.
        assert_eq!(finish(&mut cpu), (8, 0));
        assert_eq!(finish(&mut cpu), (12, 1));
    }

    #[test]
    fn a_core_whose_thread_just_finished_counts_as_idle() {
        let mut cpu = SliceCpu::new(2, 2, 100);
        cpu.start(0, 5.0);
        cpu.start(1, 50.0);
        assert_eq!(cpu.idle_cores(), 0);
        let t = cpu.next_finish();
        cpu.advance(t);
        assert_eq!(cpu.take_top(), Some(0));
        assert_eq!(cpu.idle_cores(), 1, "as under processor sharing, before the thread goes on");
        cpu.start(0, 5.0);
        assert_eq!(cpu.idle_cores(), 0);
        cpu.settle();
    }

    #[test]
    fn preempt_and_reset_keep_the_books() {
        let mut cpu = SliceCpu::new(2, 3, 100);
        cpu.start(0, 50.0);
        cpu.start(1, 50.0);
        cpu.start(2, 50.0);
        assert_eq!(cpu.idle_cores(), 0);
        cpu.advance(20);
        assert_eq!(cpu.preempt(0), 30.0);
        // Thread 2 got the freed core.
        assert_eq!(cpu.clock(2), 0.0);
        cpu.advance(30);
        assert_eq!(cpu.clock(2), 10.0);
        assert_eq!(cpu.reset(1, 5.0), 20.0);
        assert_eq!(finish(&mut cpu), (35, 1));
        assert_eq!(finish(&mut cpu), (70, 2));
    }

    #[test]
    fn a_woken_thread_preempts_its_waker_only_when_no_core_is_idle() {
        // Two cores, both busy: C, woken by A at 20, takes A's core at once (20–25); A
        // waits at the head of the queue and gets the core back when C is done.
        let mut cpu = SliceCpu::new(2, 3, 100);
        cpu.start(0, 50.0);
        cpu.start(1, 500.0);
        cpu.advance(20);
        cpu.start_preempting(2, 5.0, 0);
        assert_eq!(cpu.clock(0), 20.0, "A stopped at 20");
        assert_eq!(finish(&mut cpu), (25, 2));
        assert_eq!(finish(&mut cpu), (55, 0), "A's 30 ns left, from 25");
        // One core idle: a woken thread takes it, and nobody is preempted.
        let mut cpu = SliceCpu::new(2, 3, 100);
        cpu.start(0, 50.0);
        cpu.advance(20);
        cpu.start_preempting(2, 5.0, 0);
        assert_eq!(finish(&mut cpu), (25, 2));
        assert_eq!(finish(&mut cpu), (50, 0));
    }
}
