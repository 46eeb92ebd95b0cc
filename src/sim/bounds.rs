//! Capacity bounds from service demands: the throughput no configuration can exceed, the
//! resource that sets it, and whether an open system is offered more (Lazowska et al.,
//! "Quantitative System Performance", §5.2, asymptotic bounds).

use super::request::StepCost;
use crate::scenario::{BatchingMode, ClientKind, Handler, LockKind, Scenario};
use serde::{Deserialize, Serialize};

/// The resource that bounds throughput.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bottleneck {
    /// The CPU cores.
    Cores,
    /// A worker's lock.
    Lock,
    /// A worker's threadpool.
    Threads,
    /// A worker's event-loop thread.
    EventLoop,
    /// A worker's batch scheduler (one thread running batched steps).
    Batcher,
    /// Nothing: requests cost no work.
    None,
}

/// Demands, the capacity bound and the offered load.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stability {
    /// Mean CPU work per request (ms).
    pub demand_ms: f64,
    /// Upper bound on throughput (requests/s) (infinite when requests cost nothing).
    pub capacity_rps: f64,
    /// The resource that sets it.
    pub bottleneck: Bottleneck,
    /// Offered rate for open and trace clients (requests/s), else 0.
    pub offered_rps: f64,
    /// Whether the offered rate reaches the capacity: queues then grow until
    /// `worker.queue_limit` refuses requests, and latencies depend on the run length.
    pub unstable: bool,
}

/// Capacity bound of a scenario: the least of workers / lock demand, workers / loop demand,
/// workers · threads / handler demand and cores / CPU demand. The lock demand is the work
/// done holding it: a hand-off (`cost.handoff_us`) costs nothing while every core is busy
/// and less when the waiter has not waited long (see `release_lock`), so counting it would
/// not bound the throughput.
pub fn stability(sc: &Scenario) -> Stability {
    let c = &sc.cost;
    let tokens = sc.workload.new_tokens.mean();
    let handler_locked = c.request_locked_ms.mean() + tokens * c.token_locked_ms.mean();
    let handler = handler_locked + c.request_free_ms.mean() + tokens * c.token_free_ms.mean();
    let loop_work = c.loop_in_ms.mean() + c.loop_out_ms.mean();
    let loop_free = c.loop_in_free_ms.mean() + c.loop_out_free_ms.mean();
    let demand_ms = handler + loop_work + loop_free;
    let workers = f64::from(sc.system.workers);
    let has_lock = sc.worker.lock != LockKind::None;
    let lock_ms = if has_lock { handler_locked + if c.loop_lock { loop_work } else { 0.0 } } else { 0.0 };
    let batching = sc.batching.mode != BatchingMode::None;
    let (loop_ms, pool_ms) = match sc.worker.handler {
        _ if batching => (loop_work + loop_free, 0.0),
        Handler::AsyncBlocking => (demand_ms, 0.0),
        Handler::Sync | Handler::AsyncOffload => (loop_work + loop_free, handler),
    };
    // Batching: the scheduler thread spends, per request, its prefill plus its share of
    // `tokens` full steps (a full batch is the most a step can share).
    let (batch_ms, lock_ms, demand_ms) = if batching {
        let b = sc.batching.max_batch;
        let (l, f) = StepCost::mean_ms(sc, b);
        let prefill = c.request_locked_ms.mean() + c.request_free_ms.mean();
        let per_req = prefill + tokens * (l + f) / f64::from(b);
        let locked = c.request_locked_ms.mean() + tokens * l / f64::from(b);
        let lock_ms = if has_lock { locked + if c.loop_lock { loop_work } else { 0.0 } } else { 0.0 };
        (per_req, lock_ms, per_req + loop_work + loop_free)
    } else {
        (0.0, lock_ms, demand_ms)
    };
    let bound = |servers: f64, d_ms: f64| if d_ms > 0.0 { servers * 1e3 / d_ms } else { f64::INFINITY };
    let candidates = [
        (Bottleneck::Cores, bound(f64::from(sc.system.cores), demand_ms)),
        (Bottleneck::Lock, bound(workers, lock_ms)),
        (Bottleneck::Threads, bound(workers * f64::from(sc.worker.threads), pool_ms)),
        (Bottleneck::EventLoop, bound(workers, loop_ms)),
        (Bottleneck::Batcher, bound(workers, batch_ms)),
    ];
    let (bottleneck, capacity_rps) = candidates
        .into_iter()
        .fold((Bottleneck::None, f64::INFINITY), |best, c| if c.1 < best.1 { c } else { best });
    let offered_rps = offered(sc);
    Stability { demand_ms, capacity_rps, bottleneck, offered_rps, unstable: offered_rps >= capacity_rps }
}

fn offered(sc: &Scenario) -> f64 {
    match sc.clients.kind {
        ClientKind::Open => sc.clients.rate_rps,
        ClientKind::Trace => match (sc.clients.trace_ms.first(), sc.clients.trace_ms.last()) {
            (Some(a), Some(b)) if b > a => (sc.clients.trace_ms.len() - 1) as f64 * 1e3 / (b - a),
            _ => 0.0,
        },
        ClientKind::Closed | ClientKind::Burst => 0.0,
    }
}
