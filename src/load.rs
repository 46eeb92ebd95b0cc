//! The HTTP load generator: plays clients against any HTTP/1.1 server and measures what
//! they see.
//!
//! ```text
//!  LoadPlan ──validate──► run ──► closed: U users, one keep-alive connection each
//!                          │      open:   sends at start + t_i, pooled connections
//!                          │      burst:  N connections, N requests at t = 0
//!                          ▼
//!               RequestRecord per request (intended, sent, done, status, error)
//!                          │
//!                          ▼
//!  LoadReport: throughput, latency from the intended time, service time from the send,
//!              errors by kind, late sends — JSON, table, CSV
//! ```
//!
//! Latency is measured from the **intended** send time. In the open loop the send times
//! are fixed in advance from an absolute start, so when the server stalls the requests
//! that should have gone meanwhile carry the stall in their latency instead of being
//! quietly postponed (no coordinated omission); the time from the actual send is reported
//! apart as the service time. A failed request is a record with an [`ErrorKind`], never an
//! error of the run. Every run is bounded: by its count or its send window plus a drain
//! deadline, and each request by the timeout.
//!
//! ```no_run
//! use servesim::load::{LoadPlan, Mode, Stop, run_blocking};
//! use std::time::Duration;
//!
//! let mode = Mode::Open { rate_rps: 50.0, poisson: true };
//! let mut plan = LoadPlan::new("http://127.0.0.1:8000/correct", mode, Stop::Duration(Duration::from_secs(10)));
//! plan.warmup = Duration::from_secs(2);
//! let report = run_blocking(&plan, None)?;
//! println!("{:.1} req/s, p99 {:.1} ms", report.throughput_rps, report.latency_ms.p99);
//! # Ok::<(), servesim::load::LoadError>(())
//! ```

mod body;
mod burst;
mod closed;
mod conn;
mod ctx;
mod error;
mod open;
mod pin;
mod plan;
mod pool;
mod progress;
mod record;
mod report;
mod runtime;
mod schedule;
mod target;
mod workers;

pub use body::{BodyTemplate, DEFAULT_BODY, INDEX_PLACEHOLDER};
pub use closed::RECONNECT_BACKOFF;
pub use error::LoadError;
/// HTTP methods, for [`LoadPlan::method`].
pub use hyper::Method;
pub use plan::{LoadPlan, MAX_CONNECTIONS, MAX_RATE_RPS, MAX_REQUESTS, MAX_SECONDS, MAX_THREADS, Mode, Stop};
pub use progress::progress_bar;
pub use record::{CSV_HEADER, ErrorKind, RequestRecord, write_csv};
pub use report::{LATE_SEND_US, LoadReport, RunInfo};
pub use runtime::run_blocking;
pub use schedule::Schedule;
pub use target::Target;
pub use workers::{PID_HEADER, PidTally, UserSplit, pid_of};

use ctx::Ctx;
use indicatif::ProgressBar;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

/// Runs `plan` on the current tokio runtime and reports what it measured. `progress`, if
/// given, is advanced while the run goes and cleared at its end.
pub async fn run(plan: &LoadPlan, progress: Option<ProgressBar>) -> Result<LoadReport, LoadError> {
    plan.validate()?;
    let target = Target::parse(&plan.url)?;
    let addr = target.resolve().await?;
    let wall = Instant::now();
    let conns = match plan.mode {
        Mode::Burst { n } => burst::preconnect(addr, n, plan.timeout).await,
        _ => Vec::new(),
    };
    let ctx = Arc::new(Ctx::new(plan, target, addr));
    ctx.counters.connections.fetch_add(conns.iter().flatten().count() as u64, Relaxed);
    let ticker = progress
        .clone()
        .map(|pb| progress::spawn_ticker(pb, Arc::clone(&ctx), plan.expected_requests().is_some()));
    let (records, users) = drive(plan, Arc::clone(&ctx), conns).await;
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    let info = RunInfo {
        max_in_flight: ctx.counters.max_in_flight.load(Relaxed),
        connections: ctx.counters.connections.load(Relaxed),
        wall_s: wall.elapsed().as_secs_f64(),
    };
    let mut report = LoadReport::build(plan, records, info);
    report.users_by_worker = users;
    Ok(report)
}

/// The records, and for a closed loop how its users fell on the workers.
async fn drive(
    plan: &LoadPlan,
    ctx: Arc<Ctx>,
    conns: Vec<Option<conn::Conn>>,
) -> (Vec<RequestRecord>, Option<UserSplit>) {
    match &plan.mode {
        Mode::Closed { users, think_ms } => {
            let (records, split) = closed::run(ctx, *users, think_ms, plan.stop, plan.seed).await;
            (records, Some(split))
        }
        Mode::Burst { .. } => (burst::run(ctx, conns).await, None),
        Mode::Open { .. } | Mode::Trace { .. } => {
            let schedule = Schedule::new(&plan.mode, plan.stop, plan.warmup, plan.seed)
                .expect("open modes have a schedule");
            (open::run(ctx, schedule, plan.max_connections).await, None)
        }
    }
}
