//! The bounded threadpool: exactly `worker.threads` OS threads taking jobs from one FIFO
//! queue — anyio's worker threads, where FastAPI runs `def` handlers and `to_thread` calls.
//!
//! The event loop submits a job and awaits its result. A job carries a deadline and a
//! [`Ticket`]: one still queued when its deadline passes, or withdrawn because its client
//! left, leaves the queue and is never started. The pool cannot interrupt a job already
//! running — it is CPU work on another thread — so the handler checks the same deadline
//! itself at every token boundary and returns early.

use super::busy::thread_cpu_ns;
use super::ticket::{Ticket, Withdraw};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// Why a job gave no result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The job was still queued when its deadline passed; it never ran.
    #[error("the request waited for a thread beyond its deadline")]
    TimedOut,
    /// The pool is shut down, or the job panicked.
    #[error("the threadpool is shut down or the handler failed")]
    Closed,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<(Ticket, Job)>,
    closed: bool,
}

/// Cumulative counters of a pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PoolStats {
    /// Threads.
    pub threads: u32,
    /// Jobs run (a panicking one included; one withdrawn from the queue is not), each
    /// counted before its result is sent.
    pub jobs: u64,
    /// Wall time threads spent running jobs (ms).
    pub busy_ms: f64,
    /// CPU time threads spent running jobs (ms).
    pub cpu_ms: f64,
    /// Jobs queued for a thread now.
    pub queued: u64,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    jobs: AtomicU64,
    busy_ns: AtomicU64,
    cpu_ns: AtomicU64,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next job, or `None` once the pool is closed and drained.
    fn next(&self) -> Option<Job> {
        let mut q = self.queue();
        loop {
            if let Some((_, job)) = q.jobs.pop_front() {
                return Some(job);
            }
            if q.closed {
                return None;
            }
            q = self.ready.wait(q).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Takes a withdrawn job out of the queue (a job that started is no longer there).
    fn remove(&self, ticket: &Ticket) {
        self.queue().jobs.retain(|(t, _)| !t.is(ticket));
    }

    fn work(&self) {
        while let Some(job) = self.next() {
            // A panicking handler must not take the thread with it: its result channel is
            // dropped and the request fails with 500.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        }
    }
}

/// Counts one job's wall and CPU time when dropped — before its result is sent (so whoever
/// receives the result sees the job counted), or while a panic unwinds.
struct Accounting<'a> {
    shared: &'a Shared,
    t0: Instant,
    c0: u64,
}

impl<'a> Accounting<'a> {
    fn start(shared: &'a Shared) -> Self {
        Self { shared, t0: Instant::now(), c0: thread_cpu_ns() }
    }
}

impl Drop for Accounting<'_> {
    fn drop(&mut self) {
        let s = self.shared;
        s.cpu_ns.fetch_add(thread_cpu_ns().saturating_sub(self.c0), Ordering::Relaxed);
        s.busy_ns.fetch_add(self.t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        s.jobs.fetch_add(1, Ordering::Relaxed);
    }
}

/// A fixed set of threads serving one FIFO queue.
pub struct Pool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `threads` threads named `{name}-{i}`.
    pub fn new(threads: usize, name: &str) -> std::io::Result<Pool> {
        let shared = Arc::new(Shared::default());
        let threads = (0..threads)
            .map(|i| {
                let s = Arc::clone(&shared);
                std::thread::Builder::new().name(format!("{name}-{i}")).spawn(move || s.work())
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Pool { shared, threads })
    }

    fn submit(&self, ticket: Ticket, job: Job) -> Result<(), PoolError> {
        let mut q = self.shared.queue();
        if q.closed {
            return Err(PoolError::Closed);
        }
        q.jobs.push_back((ticket, job));
        drop(q);
        self.shared.ready.notify_one();
        Ok(())
    }

    /// Runs `f` on a pool thread after the jobs queued before it; `f` receives the time the
    /// job waited for a thread. A job still queued at `deadline` never runs
    /// ([`PoolError::TimedOut`]), nor does one whose `ticket` is withdrawn first (its
    /// client left) or whose future is dropped; once started, it runs until it returns (a
    /// handler returns at its next token boundary past the deadline), and its result is
    /// awaited.
    pub async fn run<R, F>(&self, ticket: Ticket, deadline: Option<Instant>, f: F) -> Result<R, PoolError>
    where
        R: Send + 'static,
        F: FnOnce(Duration) -> R + Send + 'static,
    {
        let (tx, mut rx) = oneshot::channel();
        let (t, queued_at, shared) = (ticket.clone(), Instant::now(), Arc::clone(&self.shared));
        self.submit(
            ticket.clone(),
            Box::new(move || {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    let _ = t.withdraw();
                }
                if t.start() {
                    let r = {
                        let _counted = Accounting::start(&shared);
                        f(queued_at.elapsed())
                    };
                    let _ = tx.send(r);
                }
            }),
        )?;
        let _queued = Withdraw::on_drop(&ticket, |t| self.shared.remove(t));
        let lost = |ticket: &Ticket| if ticket.withdrawn() { PoolError::TimedOut } else { PoolError::Closed };
        let Some(deadline) = deadline else {
            return (&mut rx).await.map_err(|_| lost(&ticket));
        };
        match tokio::time::timeout_at(deadline.into(), &mut rx).await {
            Ok(r) => r.map_err(|_| lost(&ticket)),
            Err(_) => {
                if ticket.withdraw() {
                    return Err(PoolError::TimedOut);
                }
                // Already running: a thread cannot be interrupted; the job checks the
                // deadline itself (the handler, at its next token boundary), so wait.
                rx.await.map_err(|_| lost(&ticket))
            }
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> PoolStats {
        let s = &self.shared;
        PoolStats {
            threads: self.threads.len() as u32,
            jobs: s.jobs.load(Ordering::Relaxed),
            busy_ms: s.busy_ns.load(Ordering::Relaxed) as f64 / 1e6,
            cpu_ms: s.cpu_ns.load(Ordering::Relaxed) as f64 / 1e6,
            queued: s.queue().jobs.len() as u64,
        }
    }
}

impl Drop for Pool {
    /// Runs the jobs still queued, then stops and joins the threads.
    fn drop(&mut self) {
        self.shared.queue().closed = true;
        self.shared.ready.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    /// Submits `n` jobs, each recording its index and sleeping `ms`; returns the order the
    /// jobs started in and the most that ran at once.
    fn run_jobs(threads: usize, n: usize, ms: u64) -> (Vec<usize>, usize) {
        let pool = Arc::new(Pool::new(threads, "t").unwrap());
        let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let order = Arc::new(Mutex::new(Vec::new()));
        rt().block_on(async {
            let mut tasks = Vec::new();
            for i in 0..n {
                let (p, r, k, o) = (Arc::clone(&pool), running.clone(), peak.clone(), order.clone());
                tasks.push(tokio::spawn(async move {
                    p.run(Ticket::new(), None, move |_| {
                        o.lock().unwrap().push(i);
                        k.fetch_max(r.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                        // Hold the thread until every thread is busy (or `ms` per job has
                        // passed), so the peak does not depend on how fast threads wake.
                        let until = Instant::now() + Duration::from_millis(ms * n as u64);
                        while k.load(Ordering::SeqCst) < threads && Instant::now() < until {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        std::thread::sleep(Duration::from_millis(ms));
                        r.fetch_sub(1, Ordering::SeqCst);
                        i
                    })
                    .await
                }));
                tokio::task::yield_now().await;
            }
            for (i, t) in tasks.into_iter().enumerate() {
                assert_eq!(t.await.unwrap(), Ok(i));
            }
        });
        assert_eq!(pool.stats().jobs, n as u64);
        let o = order.lock().unwrap().clone();
        (o, peak.load(Ordering::SeqCst))
    }

    #[test]
    fn one_thread_serves_jobs_in_fifo_order() {
        let (order, peak) = run_jobs(1, 6, 1);
        assert_eq!(order, [0, 1, 2, 3, 4, 5]);
        assert_eq!(peak, 1);
    }

    #[test]
    fn jobs_run_on_at_most_threads_threads_and_reach_that_many() {
        let (order, peak) = run_jobs(3, 9, 50);
        assert_eq!(order.len(), 9);
        assert_eq!(peak, 3);
    }

    #[test]
    fn a_job_queued_past_its_deadline_never_runs() {
        let pool = Pool::new(1, "t").unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        rt().block_on(async {
            let blocker = pool.run(Ticket::new(), None, |_| std::thread::sleep(Duration::from_millis(50)));
            let r2 = ran.clone();
            let late = pool.run(Ticket::new(), Some(Instant::now() + Duration::from_millis(5)), move |_| {
                r2.fetch_add(1, Ordering::SeqCst);
            });
            let (a, b) = tokio::join!(blocker, late);
            assert_eq!(a, Ok(()));
            assert_eq!(b, Err(PoolError::TimedOut));
        });
        assert_eq!(pool.stats().jobs, 1, "the cancelled job is not counted");
        drop(pool);
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }

    /// Polls `f` once.
    async fn poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        std::future::poll_fn(|cx| match std::pin::Pin::new(&mut *f).poll(cx) {
            std::task::Poll::Ready(v) => std::task::Poll::Ready(Some(v)),
            std::task::Poll::Pending => std::task::Poll::Ready(None),
        })
        .await
    }

    #[test]
    fn a_withdrawn_or_dropped_job_leaves_the_queue_and_never_runs() {
        let pool = Pool::new(1, "t").unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        rt().block_on(async {
            let mut blocker = Box::pin(pool.run(Ticket::new(), None, move |_| {
                let _ = started_tx.send(());
                let _ = wait.recv_timeout(Duration::from_secs(10));
            }));
            assert!(poll_once(&mut blocker).await.is_none());
            started.recv_timeout(Duration::from_secs(10)).expect("the blocker runs");
            let withdrawn = Ticket::new();
            let (r1, r2) = (ran.clone(), ran.clone());
            let mut a =
                Box::pin(pool.run(withdrawn.clone(), None, move |_| r1.fetch_add(1, Ordering::SeqCst)));
            let mut b = Box::pin(pool.run(Ticket::new(), None, move |_| r2.fetch_add(1, Ordering::SeqCst)));
            assert!(poll_once(&mut a).await.is_none() && poll_once(&mut b).await.is_none());
            assert_eq!(pool.stats().queued, 2);
            // The client of `a` leaves: its ticket is withdrawn, then its future dropped.
            assert!(withdrawn.withdraw());
            drop(a);
            // The connection of `b` breaks: its future is dropped.
            drop(b);
            assert_eq!(pool.stats().queued, 0, "withdrawn jobs leave the queue");
            go.send(()).unwrap();
            assert_eq!(blocker.await, Ok(()));
        });
        drop(pool);
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_panicking_job_fails_its_request_but_not_the_pool() {
        let pool = Pool::new(1, "t").unwrap();
        rt().block_on(async {
            let bad: Result<(), _> = pool.run(Ticket::new(), None, |_| panic!("handler bug")).await;
            assert_eq!(bad, Err(PoolError::Closed));
            assert_eq!(pool.run(Ticket::new(), None, |_| 7).await, Ok(7));
        });
    }
}
