//! Burst: `n` connections opened first, then `n` requests at t = 0, one on each.

use super::RequestRecord;
use super::conn::Conn;
use super::ctx::Ctx;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// Opens `n` connections concurrently, each within `timeout`. A failed one is `None`: its
/// request will try again at t = 0 and record the failure.
pub async fn preconnect(addr: SocketAddr, n: u32, timeout: Duration) -> Vec<Option<Conn>> {
    let deadline = Ctx::after(timeout);
    let mut set = JoinSet::new();
    for _ in 0..n {
        set.spawn(async move { Conn::open(addr, deadline).await.ok() });
    }
    let mut conns = Vec::with_capacity(n as usize);
    while let Some(c) = set.join_next().await {
        conns.push(c.ok().flatten());
    }
    conns
}

/// Sends one request on each connection, all meant for t = 0.
pub async fn run(ctx: Arc<Ctx>, conns: Vec<Option<Conn>>) -> Vec<RequestRecord> {
    let mut set = JoinSet::new();
    for (index, mut conn) in (0u64..).zip(conns) {
        let ctx = Arc::clone(&ctx);
        set.spawn(async move { ctx.send(&mut conn, index, ctx.start).await });
    }
    let mut records = Vec::new();
    while let Some(done) = set.join_next().await {
        records.extend(done.ok());
    }
    records
}
