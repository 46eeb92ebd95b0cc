//! The load generator's CPU (`clients.cpu_ms`): one thread that sends each request and reads
//! each reply in turn — on the server's cores as a thread among theirs
//! (`clients.shares_cores`), or on a CPU of its own.
//!
//! ```text
//!  a client sends at t ─► [send: cpu_ms / 2] ─► the request reaches the server
//!  the reply comes back ─► [read: cpu_ms / 2] ─► the client has it (latency from t)
//! ```
//!
//! Both halves queue, first come first served, behind whatever the thread is doing.

use super::event::Ev;
use super::system::{NONE, System};
use crate::des::{Nanos, round_ns};
use crate::scenario::Scenario;
use std::collections::VecDeque;

/// A piece of the load generator's work.
#[derive(Clone, Copy, Debug)]
pub(super) enum Job {
    /// Send `client`'s request, which it meant to send at `at`.
    Send { client: u32, at: Nanos },
    /// Read request `req`'s reply.
    Read { req: u32 },
}

/// The load generator's thread.
pub(super) struct LoadGen {
    send_ns: f64,
    read_ns: f64,
    /// Its thread on the server's cores, or [`NONE`] on a CPU of its own.
    pub(super) thread: u32,
    /// The job it is doing.
    current: Option<Job>,
    queue: VecDeque<Job>,
}

impl LoadGen {
    /// The scenario's load generator, if it spends any CPU; `thread` is its id on the
    /// server's cores when it shares them.
    pub(super) fn new(sc: &Scenario, thread: u32) -> Option<Self> {
        let ns = sc.clients.cpu_ms * 1e6;
        (ns > 0.0).then(|| Self {
            send_ns: ns / 2.0,
            read_ns: ns / 2.0,
            thread: if sc.clients.shares_cores { thread } else { NONE },
            current: None,
            queue: VecDeque::new(),
        })
    }
}

impl LoadGen {
    /// Requests it has yet to send: arrived, not yet at the server.
    pub(super) fn unsent(&self) -> u64 {
        self.current.iter().chain(&self.queue).filter(|j| matches!(j, Job::Send { .. })).count() as u64
    }
}

impl System<'_> {
    /// Gives `job` to the load generator: it starts now if the thread is free, else queues.
    pub(super) fn loadgen_push(&mut self, job: Job) {
        let Some(g) = self.loadgen.as_mut() else { return };
        if g.current.is_some() {
            g.queue.push_back(job);
            return;
        }
        self.loadgen_start(job);
    }

    fn loadgen_start(&mut self, job: Job) {
        let Some(g) = self.loadgen.as_mut() else { return };
        g.current = Some(job);
        let work = match job {
            Job::Send { .. } => g.send_ns,
            Job::Read { .. } => g.read_ns,
        };
        if g.thread == NONE {
            // Its own CPU: nothing else runs there, so the work takes its length.
            let done = self.now.saturating_add(round_ns(work).max(1));
            self.queue.push(done, Ev::LoadGenDone);
        } else {
            let th = g.thread;
            self.cpu.start(th, work);
        }
    }

    /// The load generator's current job is done: the request goes out, or the client has its
    /// reply; then the next job.
    pub(super) fn loadgen_done(&mut self) {
        let Some(job) = self.loadgen.as_mut().and_then(|g| g.current.take()) else { return };
        match job {
            Job::Send { client, at } => self.admit(client, at),
            Job::Read { req } => self.received(req),
        }
        let next =
            self.loadgen.as_mut().and_then(|g| if g.current.is_none() { g.queue.pop_front() } else { None });
        if let Some(next) = next {
            self.loadgen_start(next);
        }
    }
}
