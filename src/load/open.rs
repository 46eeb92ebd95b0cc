//! Open loop: each request goes at its scheduled time on an idle pooled connection or a new
//! one. When none can be had the request waits — and the wait is in its latency, measured
//! from the schedule.

use super::ctx::Ctx;
use super::pool::Pool;
use super::{RequestRecord, Schedule};
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, timeout_at};

/// Sends every request of `schedule`; returns their records.
///
/// A pacing thread sleeps until each send time and passes the request on: an OS sleep is
/// accurate to tens of microseconds, where the runtime's timer rounds every deadline up to
/// its next millisecond tick and would make each request up to a millisecond late.
pub async fn run(ctx: Arc<Ctx>, schedule: Schedule, max_connections: u32) -> Vec<RequestRecord> {
    let pool = Arc::new(Pool::new(max_connections));
    let mut tasks = JoinSet::new();
    let mut records = Vec::new();
    let (tx, mut due) = tokio::sync::mpsc::unbounded_channel();
    let start = ctx.start.into_std();
    let pacer = std::thread::Builder::new().name("servesim-pacer".into()).spawn(move || {
        for (index, offset) in (0u64..).zip(schedule) {
            let at = start + offset;
            let now = std::time::Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if tx.send((index, offset)).is_err() {
                break;
            }
        }
    });
    if pacer.is_err() {
        return records;
    }
    while let Some((index, offset)) = due.recv().await {
        let intended = ctx.start + offset;
        // Never before its time (the pacer's sleep cannot end early; this is a safeguard).
        if tokio::time::Instant::now() < intended {
            sleep_until(intended).await;
        }
        let acquire = pool.acquire();
        let lease = match ctx.hard_stop {
            Some(h) => timeout_at(h, acquire).await.ok(),
            None => Some(acquire.await),
        };
        let Some(mut lease) = lease else {
            records.push(ctx.cancelled(index, intended));
            continue;
        };
        let (ctx, pool) = (Arc::clone(&ctx), Arc::clone(&pool));
        tasks.spawn(async move {
            let rec = ctx.send(&mut lease.conn, index, intended).await;
            pool.release(lease);
            rec
        });
        while let Some(done) = tasks.try_join_next() {
            records.extend(done.ok());
        }
    }
    while let Some(done) = tasks.join_next().await {
        records.extend(done.ok());
    }
    records
}
