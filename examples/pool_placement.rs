//! Example: how the size of the threadpool changes what a contended fair lock costs, with no
//! HTTP in the way — the server's own lock (`fair-gil`) and a pool that hands jobs to its
//! threads through condition variables, as the server's pool does.
//!
//! `USERS` jobs are kept in flight (a closed loop). Each job takes the lock and does
//! `SEGMENTS` segments of `HOLD` µs holding it, then `FREE` µs without it (the suite's
//! Mini-GPT request is about 260 segments of 22 and 15 µs). The pool has `POOL` threads; a
//! new job goes to the thread idle longest (a FIFO of idle threads, as a futex wakes its
//! waiters) or, with `--lifo`, to the one idle least. For each configuration it prints the
//! jobs per second, the lock's hand-offs per job, how often a running segment shared its
//! CPU with another job's thread (`sched_getcpu`), and where a thread woken for a new job
//! starts it: on the CPU it ended its last job on or not, and, when that CPU is the one
//! where another job runs, how often it goes back there anyway.
//!
//! What it shows on a 2-vCPU VM (see the README, *Where it misses, and why*): two threads
//! that trade the lock at every release point run at about half the rate of one thread at a
//! time; with a pool of two threads they stay on different CPUs and trade it all the time,
//! while a thread of a larger pool, woken after a long idle, often lands on the CPU where
//! the other job runs — the CPU it last ran on — and the two then take turns by time slice
//! and trade no lock. The simulator puts a woken thread on any idle core, so it sees no
//! difference between pools.
//!
//! Run: `cargo run --release --example pool_placement -- [SEGMENTS HOLD FREE SECONDS]`
//! (defaults 260 22 15 1.5); three rounds of six configurations, about 30 s. Measure on an
//! otherwise idle machine: a busy CPU stacks the threads by itself.

use servesim::server::Gil;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Busy-waits `us` microseconds.
fn spin(us: f64) {
    let t = Instant::now();
    let d = Duration::from_nanos((us * 1e3) as u64);
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// The CPU the calling thread runs on.
fn cpu() -> u64 {
    // SAFETY: `sched_getcpu` takes no arguments and only reads the calling thread's state.
    let c = unsafe { libc::sched_getcpu() };
    u64::try_from(c).unwrap_or(u64::MAX)
}

/// One pool thread's mailbox: the job handed to it, and the condition variable it sleeps on.
#[derive(Default)]
struct Slot {
    job: Mutex<bool>,
    cv: Condvar,
    /// The CPU this thread ended its last job on (`u64::MAX`: none yet).
    last_cpu: AtomicU64,
}

/// What one configuration measured.
struct Outcome {
    jobs_per_s: f64,
    handoffs_per_job: f64,
    shared_cpu: f64,
    /// Of the jobs started while another ran: the share whose thread started on the CPU it
    /// ended its last job on, the share whose last CPU was the other job's, and of those the
    /// share that started there (on the other job's CPU).
    start_on_last: f64,
    last_was_other: f64,
    then_stacked: f64,
}

/// The work of every job: segments of held and free time (µs).
#[derive(Clone, Copy)]
struct Job {
    segments: usize,
    hold_us: f64,
    free_us: f64,
}

/// Shared state of one run.
struct Pool {
    gil: Gil,
    slots: Vec<Slot>,
    idle: Mutex<VecDeque<usize>>,
    done: (Mutex<u64>, Condvar),
    stop: AtomicBool,
    /// Each thread's CPU while it runs a job (`u64::MAX` between jobs).
    cpus: Vec<AtomicU64>,
    same: AtomicU64,
    apart: AtomicU64,
    /// Jobs started while another ran: all, on the thread's last CPU, with that CPU the
    /// other job's, and then on it.
    starts: [AtomicU64; 4],
}

impl Pool {
    /// The loop of pool thread `i`: wait for a job, run it, report it done.
    fn serve(&self, i: usize, job: Job) {
        loop {
            self.idle.lock().unwrap().push_back(i);
            {
                let mut has = self.slots[i].job.lock().unwrap();
                while !*has {
                    if self.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    has = self.slots[i].cv.wait_timeout(has, Duration::from_secs(5)).unwrap().0;
                }
                *has = false;
            }
            self.note_start(i);
            self.gil.acquire();
            for _ in 0..job.segments {
                let me = cpu();
                self.cpus[i].store(me, Ordering::Relaxed);
                let running: Vec<u64> = (self.cpus.iter().enumerate())
                    .filter(|&(j, _)| j != i)
                    .map(|(_, c)| c.load(Ordering::Relaxed))
                    .filter(|&c| c != u64::MAX)
                    .collect();
                if running.contains(&me) {
                    self.same.fetch_add(1, Ordering::Relaxed);
                } else if !running.is_empty() {
                    self.apart.fetch_add(1, Ordering::Relaxed);
                }
                spin(job.hold_us);
                self.gil.release();
                spin(job.free_us);
                self.gil.acquire();
            }
            self.gil.release();
            self.slots[i].last_cpu.store(cpu(), Ordering::Relaxed);
            self.cpus[i].store(u64::MAX, Ordering::Relaxed);
            *self.done.0.lock().unwrap() += 1;
            self.done.1.notify_one();
        }
    }

    /// Notes where pool thread `i`, woken for a new job, starts it: on the CPU it ended its
    /// last job on or not, and on the CPU of another job's thread or not.
    fn note_start(&self, i: usize) {
        let (me, last) = (cpu(), self.slots[i].last_cpu.load(Ordering::Relaxed));
        let others: Vec<u64> = (self.cpus.iter().enumerate())
            .filter(|&(j, _)| j != i)
            .map(|(_, c)| c.load(Ordering::Relaxed))
            .filter(|&c| c != u64::MAX)
            .collect();
        if others.is_empty() || last == u64::MAX {
            return;
        }
        let counts = [true, me == last, others.contains(&last), others.contains(&last) && me == last];
        for (n, hit) in self.starts.iter().zip(counts) {
            n.fetch_add(u64::from(hit), Ordering::Relaxed);
        }
    }

    /// Hands `k` new jobs to idle threads: the one idle longest first, or with `lifo` the
    /// one idle least.
    fn dispatch(&self, k: u64, lifo: bool) {
        for _ in 0..k {
            let t = loop {
                let next = {
                    let mut q = self.idle.lock().unwrap();
                    if lifo { q.pop_back() } else { q.pop_front() }
                };
                match next {
                    Some(t) => break t,
                    None => std::thread::yield_now(),
                }
            };
            *self.slots[t].job.lock().unwrap() = true;
            self.slots[t].cv.notify_one();
        }
    }
}

/// Runs `users` jobs at a time on a pool of `threads` for `secs` seconds.
fn run(threads: usize, users: u64, lifo: bool, job: Job, secs: f64) -> Outcome {
    let pool = Arc::new(Pool {
        gil: Gil::new(Some(Duration::from_millis(5))),
        slots: (0..threads).map(|_| Slot::default()).collect(),
        idle: Mutex::new(VecDeque::new()),
        done: (Mutex::new(0), Condvar::new()),
        stop: AtomicBool::new(false),
        cpus: (0..threads).map(|_| AtomicU64::new(u64::MAX)).collect(),
        same: AtomicU64::new(0),
        apart: AtomicU64::new(0),
        starts: Default::default(),
    });
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let p = Arc::clone(&pool);
            std::thread::spawn(move || p.serve(i, job))
        })
        .collect();
    while pool.idle.lock().unwrap().len() < threads {
        std::thread::sleep(Duration::from_millis(1));
    }
    pool.dispatch(users, lifo);
    let t0 = Instant::now();
    let (mut seen, mut warm, mut since) = (0u64, None, t0);
    while t0.elapsed().as_secs_f64() < secs {
        let mut n = pool.done.0.lock().unwrap();
        while *n == seen && t0.elapsed().as_secs_f64() < secs {
            n = pool.done.1.wait_timeout(n, Duration::from_millis(50)).unwrap().0;
        }
        let k = *n - seen;
        seen = *n;
        drop(n);
        // The first 20 jobs are a warm-up.
        if warm.is_none() && seen >= 20 {
            warm = Some(seen);
            since = Instant::now();
        }
        pool.dispatch(k, lifo);
    }
    pool.stop.store(true, Ordering::Relaxed);
    for s in &pool.slots {
        s.cv.notify_all();
    }
    for h in handles {
        h.join().expect("a pool thread");
    }
    let counted = seen - warm.unwrap_or(seen);
    let (same, apart) = (pool.same.load(Ordering::Relaxed) as f64, pool.apart.load(Ordering::Relaxed) as f64);
    let [all, on_last, last_other, stacked] =
        pool.starts.each_ref().map(|n| n.load(Ordering::Relaxed) as f64);
    Outcome {
        jobs_per_s: counted as f64 / since.elapsed().as_secs_f64(),
        handoffs_per_job: pool.gil.stats().handoffs as f64 / seen.max(1) as f64,
        shared_cpu: same / (same + apart).max(1.0),
        start_on_last: on_last / all.max(1.0),
        last_was_other: last_other / all.max(1.0),
        then_stacked: stacked / last_other.max(1.0),
    }
}

fn main() {
    let args: Vec<f64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let arg = |i: usize, default: f64| args.get(i).copied().unwrap_or(default);
    let job = Job { segments: arg(0, 260.0) as usize, hold_us: arg(1, 22.0), free_us: arg(2, 15.0) };
    let secs = arg(3, 1.5);
    println!(
        "jobs of {} segments of {} µs holding the lock and {} µs without; {secs} s a configuration",
        job.segments, job.hold_us, job.free_us
    );
    let configs = [(2, 2, false), (8, 2, false), (8, 2, true), (3, 3, false), (8, 3, false), (8, 3, true)];
    for round in 1..=3 {
        for &(threads, users, lifo) in &configs {
            let o = run(threads, users, lifo, job, secs);
            println!(
                "round {round}  pool {threads}  jobs in flight {users}  next job to the thread idle {}: \
                 {:6.1} jobs/s  {:4.0} hand-offs/job  CPU shared with another job {:3.0}% of segments; \
                 a job starts on its thread's last CPU {:3.0}%, that CPU another job's {:3.0}% (then \
                 back on it {:3.0}%)",
                if lifo { "least" } else { "longest" },
                o.jobs_per_s,
                o.handoffs_per_job,
                o.shared_cpu * 100.0,
                o.start_on_last * 100.0,
                o.last_was_other * 100.0,
                o.then_stacked * 100.0
            );
        }
    }
}
