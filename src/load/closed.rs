//! Closed loop: each user has one keep-alive connection, sends, waits for the reply,
//! thinks, and sends again. Each user notes which worker answered it (see
//! [`workers`](super::workers)).

use super::ctx::Ctx;
use super::workers::{PidTally, UserSplit};
use super::{ErrorKind, RequestRecord, Stop};
use crate::workload::{Dist, Sampler};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};

/// Pause before a user retries after failing to connect, so a refused port is not
/// hammered in a tight loop.
pub const RECONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// Hands out request numbers, up to a limit.
#[derive(Debug)]
struct Claims {
    next: AtomicU64,
    limit: Option<u64>,
}

impl Claims {
    fn next(&self) -> Option<u64> {
        let i = self.next.fetch_add(1, Relaxed);
        self.limit.is_none_or(|n| i < n).then_some(i)
    }
}

/// Runs `users` users until the stop; returns every request they made, and how the users
/// fell on the server's workers.
pub async fn run(
    ctx: Arc<Ctx>,
    users: u32,
    think_ms: &Dist,
    stop: Stop,
    seed: u64,
) -> (Vec<RequestRecord>, UserSplit) {
    let limit = match stop {
        Stop::Requests(n) => Some(n),
        Stop::Duration(_) => None,
    };
    let claims = Arc::new(Claims { next: AtomicU64::new(0), limit });
    let mut set = JoinSet::new();
    for u in 0..users {
        let rng = Xoshiro256PlusPlus::seed_from_u64(seed.wrapping_add(u64::from(u)));
        set.spawn(user(Arc::clone(&ctx), Arc::clone(&claims), think_ms.sampler(), rng));
    }
    let mut records = Vec::new();
    let mut workers = Vec::with_capacity(users as usize);
    while let Some(done) = set.join_next().await {
        // A user task that panicked made no records and answers for no worker.
        let (recs, worker) = done.unwrap_or_default();
        records.extend(recs);
        workers.push(worker);
    }
    (records, UserSplit::of(workers))
}

/// One user's loop: bounded by the claims (count) and the send window (time). Returns
/// its requests and the worker it counts at ([`PidTally::worker`]).
async fn user(
    ctx: Arc<Ctx>,
    claims: Arc<Claims>,
    think: Sampler,
    mut rng: Xoshiro256PlusPlus,
) -> (Vec<RequestRecord>, Option<u32>) {
    let mut conn = None;
    let mut out = Vec::new();
    let mut answered_by = PidTally::default();
    while !ctx.sending_over() {
        let Some(index) = claims.next() else { break };
        let rec = ctx.send(&mut conn, index, Instant::now()).await;
        answered_by.add(rec.worker_pid);
        let backoff = if rec.error == Some(ErrorKind::Connect) { RECONNECT_BACKOFF } else { Duration::ZERO };
        out.push(rec);
        let pause = ms(think.sample(&mut rng)) + backoff;
        if !pause.is_zero() && !pause_within_window(&ctx, pause).await {
            break;
        }
    }
    (out, answered_by.worker())
}

/// Sleeps `d`, or until the send window closes; whether the window is still open.
async fn pause_within_window(ctx: &Ctx, d: Duration) -> bool {
    let wake = Ctx::after(d);
    match ctx.send_end {
        Some(end) if end <= wake => {
            sleep_until(end).await;
            false
        }
        _ => {
            sleep_until(wake).await;
            true
        }
    }
}

/// A think time (ms) as a duration (negative or non-finite draws count as 0).
fn ms(v: f64) -> Duration {
    if v.is_finite() && v > 0.0 {
        Duration::try_from_secs_f64(v / 1e3).unwrap_or(Duration::MAX)
    } else {
        Duration::ZERO
    }
}
