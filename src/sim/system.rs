//! The serving system on the event engine: clients, balancer, per-worker event loop,
//! threadpool and lock, and processor-sharing cores shared by every thread.

use super::batch::Batcher;
use super::clients::Clients;
use super::cores::Cores;
use super::cpu::Cpu;
use super::event::Ev;
use super::gil::{CpyGil, GilThread};
use super::loadgen::{self, LoadGen};
use super::lock::Lock;
use super::metrics::{Counts, Metrics, Snapshot};
use super::report::{Replication, Truncation, UNSTABLE_ARRIVALS_PER_REQUEST};
use super::request::{CostModel, Job, Request, WAIT_LOCK, WAIT_LOOP, WAIT_REPLY, WAIT_THREAD};
use super::slice::SliceCpu;
use crate::des::{EventQueue, Nanos, RngStreams, StreamRng, ms, s};
use crate::scenario::{Balancer, BatchingMode, ClientKind, Handler, LockKind, Scenario, Scheduler};
use rand::RngExt;
use std::collections::VecDeque;

/// No request.
pub(super) const NONE: u32 = u32::MAX;

/// What happens next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Next {
    Cpu,
    Event,
    GilDrop,
}

pub(super) struct Thread {
    pub(super) worker: u32,
    pub(super) req: u32,
    pub(super) holds_lock: bool,
    /// Work of the locked step waiting for the lock (ns).
    pub(super) pending_ns: f64,
    /// Whether this is the worker's batch scheduler.
    pub(super) batcher: bool,
    /// The CPU's virtual time at which this thread has paid the hand-off that gave it the
    /// lock (−∞ when there was none to pay): a GIL drop waits until then.
    pub(super) handoff_paid_v: f64,
    /// When this thread last queued for the lock.
    pub(super) lock_wait_since: Nanos,
    /// When this thread's hold on the fair lock began (after the hand-off it paid).
    pub(super) held_since: Nanos,
    /// CPython's GIL: this thread's side of it.
    pub(super) g: GilThread,
}

impl Thread {
    /// A thread of `worker` with nothing to do (`batcher`: its batch scheduler).
    fn idle(worker: u32, batcher: bool) -> Self {
        Self {
            worker,
            req: NONE,
            holds_lock: false,
            pending_ns: 0.0,
            batcher,
            handoff_paid_v: f64::NEG_INFINITY,
            lock_wait_since: 0,
            held_since: 0,
            g: GilThread::default(),
        }
    }
}

pub(super) struct Worker {
    loop_thread: u32,
    loop_busy: bool,
    loop_queue: VecDeque<(u32, Job)>,
    /// The last `unread` requests of `loop_queue` came while the loop ran its current job:
    /// the server reads them when that job ends.
    unread: usize,
    idle_pool: Vec<u32>,
    pool_queue: VecDeque<u32>,
    pub(super) lock: Lock,
    outstanding: u32,
    /// The batch scheduler, when batching is on.
    pub(super) batcher: Option<Batcher>,
    /// CPython's GIL (`worker.lock = "gil"`).
    pub(super) gil: CpyGil,
}

/// One replication of one scenario.
pub(crate) struct System<'a> {
    pub(super) sc: &'a Scenario,
    pub(super) cost: CostModel,
    pub(super) now: Nanos,
    pub(super) queue: EventQueue<Ev>,
    pub(super) cpu: Cores,
    pub(super) threads: Vec<Thread>,
    pub(super) workers: Vec<Worker>,
    pub(super) reqs: Vec<Request>,
    free_reqs: Vec<u32>,
    clients: Clients,
    pub(super) metrics: Metrics,
    req_seed: u64,
    balancer_rng: StreamRng,
    round_robin: u32,
    pub(super) handoff_ns: f64,
    /// `cost.switch_us` (ns).
    pub(super) switch_ns: f64,
    /// Whether all loop work is zero, so requests bypass the (never busy) loop thread.
    pub(super) loop_idle: bool,
    /// Random stream of batched step costs.
    pub(super) batch_rng: StreamRng,
    /// Whether the locks have drop deadlines (`gil`, `fair-gil`).
    pub(super) gil: bool,
    /// Whether the locks are CPython's GIL.
    pub(super) cpy: bool,
    /// Random stream of CPython GIL wake-up latencies.
    pub(super) gil_rng: StreamRng,
    /// What the CPython GIL did, event by event (tests only).
    #[cfg(test)]
    pub(super) trace: Vec<(Nanos, u32, &'static str)>,
    /// The earliest GIL drop deadline of any worker, and that worker.
    pub(super) gil_next: (Nanos, u32),
    /// `lock = "gil"`: times a thread has gone to sleep on the GIL so far — in its timed
    /// wait, or blocked on its mutex.
    pub(super) gil_sleeps: u64,
    /// Switches of the GIL (a thread other than the last holder took it), and the time in
    /// tenures of [`super::gil::LONG_TENURE`] or more that they ended (ns).
    pub(super) gil_switches: u64,
    pub(super) gil_long_tenure_ns: Nanos,
    /// `lock = "gil"`: time the threads have spent in each GIL state so far, summed (ns),
    /// up to each thread's last change of state.
    pub(super) gil_state_ns: [Nanos; super::gil::GSTATES],
    events: u64,
    arrived: u64,
    /// Arrivals after which the run stops: an unstable open system's cap, else none.
    arrival_cap: u64,
    /// The load generator's CPU, when it has any (`clients.cpu_ms`).
    pub(super) loadgen: Option<LoadGen>,
    /// Its thread on the server's cores, or `NONE`.
    loadgen_thread: u32,
}

impl<'a> System<'a> {
    pub(crate) fn new(sc: &'a Scenario, replication: u32) -> Self {
        let streams = RngStreams::new(sc.run.seed, replication);
        let nworkers = sc.system.workers;
        let per_worker = 1 + sc.worker.threads;
        let batching = sc.batching.mode != BatchingMode::None;
        let mut threads = Vec::with_capacity((nworkers * per_worker) as usize);
        let cpy = sc.worker.lock == LockKind::Gil;
        let gil_interval = matches!(sc.worker.lock, LockKind::Gil | LockKind::FairGil)
            .then(|| ms(sc.worker.switch_interval_ms));
        let mut workers = Vec::with_capacity(nworkers as usize);
        for w in 0..nworkers {
            let first = threads.len() as u32;
            for _ in 0..per_worker {
                threads.push(Thread::idle(w, false));
            }
            let batcher = batching.then(|| {
                threads.push(Thread::idle(w, true));
                Batcher::new(threads.len() as u32 - 1)
            });
            workers.push(Worker {
                loop_thread: first,
                loop_busy: false,
                loop_queue: VecDeque::new(),
                unread: 0,
                idle_pool: (first + 1..first + per_worker).rev().collect(),
                pool_queue: VecDeque::new(),
                lock: Lock::new(gil_interval.filter(|_| !cpy)),
                gil: CpyGil::new(gil_interval.unwrap_or(Nanos::MAX)),
                outstanding: 0,
                batcher,
            });
        }
        // The load generator's thread, last, when it runs on the server's cores.
        let loadgen = LoadGen::new(sc, threads.len() as u32);
        let loadgen_thread = loadgen.as_ref().map_or(NONE, |g| g.thread);
        if loadgen_thread != NONE {
            threads.push(Thread::idle(0, false));
        }
        let mut balancer_rng = streams.stream("balancer");
        let clients = Clients::new(sc, &streams, &mut balancer_rng);
        Self {
            sc,
            cost: CostModel::new(sc),
            now: 0,
            queue: EventQueue::new(),
            cpu: match sc.system.scheduler {
                Scheduler::Ps => Cores::Ps(Cpu::new(sc.system.cores, threads.len())),
                Scheduler::Slice => Cores::Slice(SliceCpu::new(
                    sc.system.cores,
                    threads.len(),
                    crate::des::round_ns(sc.system.slice_ms * 1e6),
                )),
            },
            threads,
            workers,
            reqs: Vec::new(),
            free_reqs: Vec::new(),
            clients,
            metrics: Metrics::new(sc),
            req_seed: streams.seed_of("request"),
            batch_rng: streams.stream("batch"),
            balancer_rng,
            round_robin: 0,
            handoff_ns: sc.cost.handoff_us * 1e3,
            switch_ns: sc.cost.switch_us * 1e3,
            gil: gil_interval.is_some(),
            cpy,
            gil_rng: streams.stream("gil"),
            #[cfg(test)]
            trace: Vec::new(),
            gil_next: (Nanos::MAX, 0),
            gil_sleeps: 0,
            gil_switches: 0,
            gil_long_tenure_ns: 0,
            gil_state_ns: [0; super::gil::GSTATES],
            loop_idle: [
                &sc.cost.loop_in_ms,
                &sc.cost.loop_out_ms,
                &sc.cost.loop_in_free_ms,
                &sc.cost.loop_out_free_ms,
            ]
            .iter()
            .all(|d| d.is_zero()),
            events: 0,
            arrived: 0,
            arrival_cap: arrival_cap(sc),
            loadgen,
            loadgen_thread,
        }
    }

    /// Runs until enough requests are measured or every request of a finite arrival process
    /// is done — or, truncated, until `run.max_sim_s` passes, `run.max_events` events are
    /// processed or an unstable open system has its arrival cap.
    pub(crate) fn run(mut self) -> Replication {
        self.clients.start(&mut self.queue);
        let limit = s(self.sc.run.max_sim_s);
        let max_events = self.sc.run.max_events;
        let mut truncation = None;
        while !self.metrics.done() {
            if self.events >= max_events {
                truncation = Some(Truncation::MaxEvents);
                break;
            }
            if self.arrived >= self.arrival_cap {
                truncation = Some(Truncation::ArrivalCap);
                break;
            }
            let (t, kind) = self.next();
            // Also when nothing can happen before the clock's end (`Nanos::MAX`: a time that
            // saturated): the limit is far below it.
            if t > limit {
                truncation = Some(Truncation::MaxSimTime);
                break;
            }
            self.advance(t);
            self.events += 1;
            self.handle(kind);
        }
        let end = self.snapshot();
        // Inside: the server's requests, and those the load generator has yet to send.
        let live = (self.reqs.len() - self.free_reqs.len()) as u64
            + self.loadgen.as_ref().map_or(0, LoadGen::unsent);
        let batch_steps = self
            .workers
            .iter()
            .filter_map(|w| w.batcher.as_ref())
            .fold((0, 0), |(n, sum), b| (n + b.steps, sum + b.batch_sum));
        let counts = Counts { events: self.events, batch_steps, arrived: self.arrived, live };
        self.metrics.finish(end, counts, truncation)
    }

    /// Runs at most `events` events (tests only).
    #[cfg(test)]
    pub(super) fn run_loop_for_test(&mut self, events: u64) {
        self.clients.start(&mut self.queue);
        for _ in 0..events {
            let (t, kind) = self.next();
            if t == Nanos::MAX {
                return;
            }
            self.advance(t);
            self.handle(kind);
        }
    }

    /// What happens next, and when. Ties go to CPU completions, then queued events, then GIL
    /// drop deadlines (or CPython GIL timeouts).
    #[inline(always)]
    fn next(&self) -> (Nanos, Next) {
        let tc = self.cpu.next_finish();
        let te = self.queue.peek_time().unwrap_or(Nanos::MAX);
        let tg = self.gil_next.0;
        if tc <= te && tc <= tg {
            (tc, Next::Cpu)
        } else if te <= tg {
            (te, Next::Event)
        } else {
            (tg, Next::GilDrop)
        }
    }

    /// Makes `kind` happen, now.
    #[inline(always)]
    fn handle(&mut self, kind: Next) {
        match kind {
            Next::Cpu => {
                if let Some(th) = self.cpu.take_top() {
                    self.run_thread(th);
                    self.cpu.settle();
                }
            }
            Next::Event => match self.queue.pop().expect("peeked").1 {
                Ev::Arrive { client } => self.arrive(client),
                Ev::BatchTimeout { worker, stamp } => self.batch_timeout(worker, stamp),
                Ev::Deliver { req } => self.deliver(req),
                Ev::GilWake { thread } => self.cpy_woken(thread),
                Ev::LoadGenDone => self.loadgen_done(),
            },
            Next::GilDrop if self.cpy => self.cpy_timeout(self.gil_next.1),
            Next::GilDrop => self.gil_drop(self.gil_next.1),
        }
    }

    fn advance(&mut self, t: Nanos) {
        self.now = t;
        self.cpu.advance(t);
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            t: self.now,
            busy_core_ns: self.cpu.busy_core_ns(),
            lock_held_ns: if self.cpy {
                (0..self.workers.len() as u32).map(|w| self.cpy_held_ns(w)).sum()
            } else {
                self.workers.iter().map(|w| w.lock.held_ns(self.now) as f64).sum()
            },
            gil_sleeps: self.gil_sleeps,
            gil_switches: self.gil_switches,
            gil_long_tenure_ns: self.gil_long_tenure_ns,
            gil_state_ns: self.cpy_state_ns(),
        }
    }

    fn arrive(&mut self, client: u32) {
        self.arrived += 1;
        if let Some(next) = self.clients.next_arrival() {
            self.queue.push(next, Ev::Arrive { client });
        }
        if self.loadgen.is_some() {
            self.loadgen_push(loadgen::Job::Send { client, at: self.now });
        } else {
            self.admit(client, self.now);
        }
    }

    /// `client`'s request, sent at `sent` (its latency runs from then), reaches the server.
    #[inline(always)]
    pub(super) fn admit(&mut self, client: u32, sent: Nanos) {
        let w = self.pick_worker(client);
        if self.workers[w as usize].outstanding >= self.sc.worker.queue_limit {
            self.metrics.reject();
            return;
        }
        let key = self.clients.request_key(client);
        let rng = RngStreams::keyed_from(self.req_seed, key);
        let r = match self.free_reqs.pop() {
            Some(r) => {
                self.reqs[r as usize].renew(client, w, self.now, rng, &self.cost);
                r
            }
            None => {
                self.reqs.push(Request::new(client, w, self.now, rng, &self.cost));
                (self.reqs.len() - 1) as u32
            }
        };
        // Its latency runs from when the client sent it; its stages, from when it arrived.
        self.reqs[r as usize].sent = sent;
        self.workers[w as usize].outstanding += 1;
        self.metrics.admit(self.now);
        match self.sc.worker.handler {
            _ if self.workers[w as usize].batcher.is_some() => {
                if self.loop_idle {
                    self.batch_submit(w, r);
                } else {
                    self.enqueue_loop(w, r, Job::LoopIn);
                }
            }
            Handler::AsyncBlocking => self.enqueue_loop(w, r, Job::Whole),
            Handler::Sync | Handler::AsyncOffload if self.loop_idle => self.dispatch(w, r),
            Handler::Sync | Handler::AsyncOffload => self.enqueue_loop(w, r, Job::LoopIn),
        }
    }

    /// The worker `client`'s request goes to: the only one, without a call, or as the
    /// balancer picks.
    #[inline(always)]
    fn pick_worker(&mut self, client: u32) -> u32 {
        if self.sc.system.workers == 1 { 0 } else { self.balance(client) }
    }

    /// The balancer's pick among two workers or more.
    fn balance(&mut self, client: u32) -> u32 {
        let n = self.sc.system.workers;
        match self.sc.system.balancer {
            Balancer::RoundRobin => {
                self.round_robin = (self.round_robin + 1) % n;
                self.round_robin
            }
            Balancer::Random => self.balancer_rng.random_range(0..n),
            Balancer::LeastOutstanding => {
                (0..n).min_by_key(|&w| self.workers[w as usize].outstanding).unwrap_or(0)
            }
            Balancer::Hash => match self.clients.connection_worker(client) {
                Some(w) => w,
                None => self.balancer_rng.random_range(0..n),
            },
            Balancer::Accept => match self.clients.connection_worker(client) {
                Some(w) => w,
                None => {
                    // A connection of its own: a worker whose event loop waits in epoll takes
                    // it; with every loop busy, the first to come back to it (any).
                    let idle = self.workers.iter().filter(|w| !w.loop_busy).count() as u32;
                    if idle == 0 {
                        self.balancer_rng.random_range(0..n)
                    } else {
                        let k = self.balancer_rng.random_range(0..idle) as usize;
                        self.workers
                            .iter()
                            .enumerate()
                            .filter(|(_, w)| !w.loop_busy)
                            .nth(k)
                            .map_or(0, |(i, _)| i as u32)
                    }
                }
            },
        }
    }

    fn enqueue_loop(&mut self, w: u32, r: u32, job: Job) {
        self.reqs[r as usize].wait_start = self.now;
        let worker = &mut self.workers[w as usize];
        if worker.loop_busy {
            worker.loop_queue.push_back((r, job));
            worker.unread += 1;
            return;
        }
        worker.loop_busy = true;
        self.metrics.loops.inc(self.now);
        let th = worker.loop_thread;
        self.assign(th, r, job, if job == Job::LoopOut { WAIT_REPLY } else { WAIT_LOOP });
        self.run_thread(th);
    }

    /// Gives request `r` to thread `th` as `job`, closing the request's current wait.
    fn assign(&mut self, th: u32, r: u32, job: Job, wait: usize) {
        let now = self.now;
        let req = &mut self.reqs[r as usize];
        req.waits[wait] += now - req.wait_start;
        if job == Job::Whole {
            // The wait for the loop as the server sees it (see `StageTimes`).
            req.stages.loop_queue_ns += now.saturating_sub(req.stages.mark);
        }
        req.begin(job, now);
        self.threads[th as usize].req = r;
    }

    /// Moves thread `th` forward: starts its next step, or finishes its job and takes the
    /// next one, until it has CPU work, waits for the lock, or is idle.
    pub(super) fn run_thread(&mut self, th: u32) {
        if th == self.loadgen_thread {
            return self.loadgen_done();
        }
        if self.cpy {
            return self.cpy_cpu_done(th);
        }
        let t = &self.threads[th as usize];
        if t.batcher {
            self.batch_cpu_done(t.worker);
            return;
        }
        let mut r = t.req;
        loop {
            if let Some(step) = self.reqs[r as usize].next_step(&self.cost, self.now) {
                self.start_step(th, step);
                return;
            }
            if self.threads[th as usize].holds_lock {
                self.release_lock(th, false);
            }
            if !self.job_done(th) {
                return;
            }
            r = self.threads[th as usize].req;
        }
    }

    /// The job on `th` is done. Returns whether `th` took another job.
    #[inline(always)]
    pub(super) fn job_done(&mut self, th: u32) -> bool {
        let r = self.threads[th as usize].req;
        self.reqs[r as usize].stages.loop_ends(self.now);
        let w = self.reqs[r as usize].worker;
        match self.reqs[r as usize].job() {
            Job::LoopIn => {
                if self.workers[w as usize].batcher.is_some() {
                    self.batch_submit(w, r);
                } else {
                    self.dispatch(w, r);
                }
                self.next_loop_job(w)
            }
            Job::Handler => {
                self.reply(w, r);
                self.next_pool_job(w, th)
            }
            Job::LoopOut | Job::Whole => {
                self.complete(r);
                self.next_loop_job(w)
            }
        }
    }

    /// The handler of `r` is done: the loop writes the reply.
    #[inline(always)]
    pub(super) fn reply(&mut self, w: u32, r: u32) {
        if self.loop_idle {
            self.complete(r);
        } else {
            self.enqueue_loop(w, r, Job::LoopOut);
        }
    }

    fn dispatch(&mut self, w: u32, r: u32) {
        // The wait for a thread starts now, not where the loop work before it did.
        self.reqs[r as usize].wait_start = self.now;
        let worker = &mut self.workers[w as usize];
        match worker.idle_pool.pop() {
            Some(th) => {
                self.metrics.pool.inc(self.now);
                self.assign(th, r, Job::Handler, WAIT_THREAD);
                self.run_thread(th);
            }
            None => worker.pool_queue.push_back(r),
        }
    }

    #[inline(always)]
    fn next_pool_job(&mut self, w: u32, th: u32) -> bool {
        let worker = &mut self.workers[w as usize];
        match worker.pool_queue.pop_front() {
            Some(r) => {
                self.assign(th, r, Job::Handler, WAIT_THREAD);
                true
            }
            None => {
                worker.idle_pool.push(th);
                self.threads[th as usize].req = NONE;
                self.metrics.pool.dec(self.now);
                false
            }
        }
    }

    fn next_loop_job(&mut self, w: u32) -> bool {
        let worker = &mut self.workers[w as usize];
        if worker.unread > 0 {
            let n = worker.loop_queue.len();
            for &(r, _) in worker.loop_queue.range(n - worker.unread..) {
                self.reqs[r as usize].stages.mark = self.now;
            }
            worker.unread = 0;
        }
        let th = worker.loop_thread;
        match worker.loop_queue.pop_front() {
            Some((r, job)) => {
                self.assign(th, r, job, if job == Job::LoopOut { WAIT_REPLY } else { WAIT_LOOP });
                true
            }
            None => {
                worker.loop_busy = false;
                self.threads[th as usize].req = NONE;
                self.metrics.loops.dec(self.now);
                false
            }
        }
    }

    /// The server is done with `r`: the client sees the reply now, or `cost.rtt_ms` later.
    #[inline(always)]
    fn complete(&mut self, r: u32) {
        let req = &mut self.reqs[r as usize];
        // From now it waits for the network: `deliver` reads when the server was done here.
        req.wait_start = self.now;
        let w = req.worker;
        self.workers[w as usize].outstanding -= 1;
        if self.cost.no_rtt {
            self.deliver(r);
        } else {
            let delay = self.reqs[r as usize].draw_rtt_ns(&self.cost);
            // Saturating: a delay drawn past the clock's end ends the run.
            self.queue.push(self.now.saturating_add(delay), Ev::Deliver { req: r });
        }
    }

    /// `r`'s reply reaches its client: it has it once the load generator has read it.
    #[inline(always)]
    fn deliver(&mut self, r: u32) {
        if self.loadgen.is_some() {
            self.loadgen_push(loadgen::Job::Read { req: r });
        } else {
            self.received(r);
        }
    }

    /// `r`'s client has its reply.
    #[inline(always)]
    pub(super) fn received(&mut self, r: u32) {
        let req = &self.reqs[r as usize];
        let client = req.client;
        let latency = self.now - req.sent;
        let w = req.waits;
        let waits = [w[WAIT_THREAD], w[WAIT_LOCK], w[WAIT_LOOP] + w[WAIT_REPLY]];
        let stages = req.stages.totals(req.arrival, req.wait_start, &w);
        self.free_reqs.push(r);
        if self.metrics.complete(self.now, latency, waits, &stages) {
            let snap = self.snapshot();
            self.metrics.start_window(snap);
        }
        if let Some(next) = self.clients.after_reply(client, self.now) {
            self.queue.push(next, Ev::Arrive { client });
        }
    }
}

/// The arrivals after which a replication stops: [`UNSTABLE_ARRIVALS_PER_REQUEST`] × the
/// requests it must complete for an open system offered at least its capacity bound (its
/// queues only grow, so more arrivals only add refusals), else no cap.
fn arrival_cap(sc: &Scenario) -> u64 {
    if sc.clients.kind == ClientKind::Open && super::stability(sc).unstable {
        UNSTABLE_ARRIVALS_PER_REQUEST.saturating_mul(sc.run.requests + sc.run.warmup_requests)
    } else {
        u64::MAX
    }
}
