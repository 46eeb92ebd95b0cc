//! Arrival processes: closed-loop users, open-loop Poisson or constant arrivals, a burst at
//! t = 0, or a trace of arrival times. Each draws from its own random stream.

use super::event::Ev;
use crate::des::{EventQueue, Nanos, RngStreams, StreamRng, ms, round_ns};
use crate::scenario::{Arrivals, Balancer, ClientKind, Scenario};
use crate::workload::{Dist, Sampler};
use rand::RngExt;
use rand_distr::{Distribution, Exp1};

/// The arrival process of one replication.
pub(crate) struct Clients {
    kind: ClientKind,
    /// Closed: think-time sampler and one stream per user.
    think: Sampler,
    /// The think time when it is a constant (ns): no draw (a constant consumes no random
    /// number) and no sampler call.
    const_think_ns: Option<Nanos>,
    think_rngs: Vec<StreamRng>,
    /// Requests admitted so far, per client (closed) or in all (others, in slot 0): 64 bits,
    /// as an open or trace process may admit more than 2³² requests in one run.
    sent: Vec<u64>,
    /// `hash` balancing of closed users, `accept` of closed users and of a burst: the
    /// worker each user's connection lands on.
    conn_worker: Vec<u32>,
    /// Open: mean gap (ns) and whether gaps are exponential.
    gap_ns: f64,
    poisson: bool,
    arrivals_rng: StreamRng,
    /// Open: time of the last arrival, kept in f64 so constant gaps do not drift.
    last_arrival: f64,
    burst: u32,
    trace: Vec<Nanos>,
    /// Trace: index of the arrival scheduled last.
    trace_next: usize,
}

impl Clients {
    pub(crate) fn new(sc: &Scenario, streams: &RngStreams, balancer_rng: &mut StreamRng) -> Self {
        let c = &sc.clients;
        let users = if c.kind == ClientKind::Closed { c.users } else { 1 };
        let think_seed = streams.seed_of("think");
        let hashed = c.kind == ClientKind::Closed && sc.system.balancer == Balancer::Hash;
        let workers = sc.system.workers;
        Self {
            kind: c.kind,
            think: c.think_ms.sampler(),
            const_think_ns: match c.think_ms {
                Dist::Const(v) => Some(ms(v)),
                _ => None,
            },
            think_rngs: (0..users).map(|u| RngStreams::keyed_from(think_seed, u.into())).collect(),
            sent: vec![0; users as usize],
            conn_worker: if hashed && !sc.system.split.is_empty() {
                // A given split: the first users on worker 0, and so on.
                sc.system
                    .split
                    .iter()
                    .enumerate()
                    .flat_map(|(w, &n)| std::iter::repeat_n(w as u32, n as usize))
                    .collect()
            } else if hashed {
                (0..users).map(|_| balancer_rng.random_range(0..workers)).collect()
            } else if sc.system.balancer == Balancer::Accept
                && matches!(c.kind, ClientKind::Closed | ClientKind::Burst)
            {
                // Connections opened together wait in the shared accept queue, and the first
                // worker to wake accepts them all; the workers are alike, so call it worker 0.
                vec![0; users as usize]
            } else {
                Vec::new()
            },
            gap_ns: 1e9 / c.rate_rps,
            poisson: c.arrivals == Arrivals::Poisson,
            arrivals_rng: streams.stream("arrivals"),
            last_arrival: 0.0,
            burst: c.burst,
            trace: c.trace_ms.iter().map(|&t| ms(t)).collect(),
            trace_next: 0,
        }
    }

    /// Requests this process sends in all, if finite (burst, trace).
    pub(crate) fn total(sc: &Scenario) -> Option<u64> {
        match sc.clients.kind {
            ClientKind::Burst => Some(sc.clients.burst.into()),
            ClientKind::Trace => Some(sc.clients.trace_ms.len() as u64),
            ClientKind::Closed | ClientKind::Open => None,
        }
    }

    /// Schedules the first arrivals.
    pub(crate) fn start(&mut self, queue: &mut EventQueue<Ev>) {
        match self.kind {
            ClientKind::Closed => {
                for client in 0..self.sent.len() as u32 {
                    queue.push(0, Ev::Arrive { client });
                }
            }
            ClientKind::Open => queue.push(self.open_gap(), Ev::Arrive { client: 0 }),
            ClientKind::Burst => {
                for _ in 0..self.burst {
                    queue.push(0, Ev::Arrive { client: 0 });
                }
            }
            ClientKind::Trace => {
                if let Some(&t) = self.trace.first() {
                    queue.push(t, Ev::Arrive { client: 0 });
                }
            }
        }
    }

    #[inline(always)]
    fn open_gap(&mut self) -> Nanos {
        let gap = if self.poisson {
            let e: f64 = Exp1.sample(&mut self.arrivals_rng);
            e * self.gap_ns
        } else {
            self.gap_ns
        };
        self.last_arrival += gap;
        round_ns(self.last_arrival)
    }

    /// Called as `client` sends: the time of the process's next arrival, for processes
    /// that do not wait for replies.
    pub(crate) fn next_arrival(&mut self) -> Option<Nanos> {
        match self.kind {
            ClientKind::Open => Some(self.open_gap()),
            ClientKind::Trace => {
                self.trace_next += 1;
                self.trace.get(self.trace_next).copied()
            }
            ClientKind::Closed | ClientKind::Burst => None,
        }
    }

    /// Called when `client` gets its reply: a closed-loop user sends again after thinking.
    pub(crate) fn after_reply(&mut self, client: u32, now: Nanos) -> Option<Nanos> {
        if self.kind != ClientKind::Closed {
            return None;
        }
        let think_ns = match self.const_think_ns {
            Some(t) => t,
            None => ms(self.think.sample(&mut self.think_rngs[client as usize])),
        };
        // Saturating: a think time can be drawn past the clock's end, which ends the run.
        Some(now.saturating_add(think_ns))
    }

    /// A key for the request `client` is sending now: (client, its sequence number), so a
    /// request's random demands do not depend on how other clients interleave.
    ///
    /// The key is `client << 32 | seq`, unique because either `client` is 0 — the only
    /// client of open, burst and trace processes, whose `seq` may use all 64 bits — or
    /// `client` is a closed-loop user, which has at most one request in the system, so its
    /// `seq` is at most `run.requests + run.warmup_requests` ≤ 1e9 < 2³² (validation's
    /// bound). Below 2³² the key is the same as with a 32-bit counter.
    pub(crate) fn request_key(&mut self, client: u32) -> u64 {
        let seq = &mut self.sent[client as usize];
        let key = (u64::from(client) << 32) | *seq;
        *seq += 1;
        key
    }

    /// `hash` balancing: the worker a closed-loop user's connection is bound to.
    pub(crate) fn connection_worker(&self, client: u32) -> Option<u32> {
        self.conn_worker.get(client as usize).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn clients(kind: ClientKind, users: u32) -> Clients {
        let mut sc = Scenario::defaults();
        sc.clients.kind = kind;
        sc.clients.users = users;
        let streams = RngStreams::new(1, 0);
        Clients::new(&sc, &streams, &mut streams.stream("balancer"))
    }

    #[test]
    fn request_keys_stay_unique_past_two_to_the_32_requests() {
        let mut open = clients(ClientKind::Open, 1);
        assert_eq!((open.request_key(0), open.request_key(0)), (0, 1));
        open.sent[0] = u64::from(u32::MAX);
        let keys = [open.request_key(0), open.request_key(0), open.request_key(0)];
        assert_eq!(keys, [u64::from(u32::MAX), 1 << 32, (1 << 32) + 1]);
        // Closed users: (user, seq), as with a 32-bit counter.
        let mut closed = clients(ClientKind::Closed, 3);
        closed.request_key(2);
        assert_eq!((closed.request_key(2), closed.request_key(1)), ((2 << 32) | 1, 1 << 32));
    }

    #[test]
    fn a_think_time_past_the_clock_saturates() {
        let mut closed = clients(ClientKind::Closed, 1);
        closed.const_think_ns = Some(Nanos::MAX - 1);
        assert_eq!(closed.after_reply(0, 10), Some(Nanos::MAX));
    }
}
