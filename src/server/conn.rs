//! Serving HTTP/1.1 connections with hyper: the read timeouts, the request-slot limit, and
//! shutdown that closes idle connections at once.
//!
//! ```text
//!  accept ─► connection task: hyper http1, TokioTimer
//!    opened / previous response sent ──(limits.header_read_timeout_ms)──► head parsed
//!       │ no byte and no request for limits.keep_alive_timeout_ms: closed
//!    head parsed ─► take a request slot (limits.max_connections; not for GET /healthz)
//!       ─► router ─► the /correct handler reads the body (limits.body_read_timeout_ms → 408)
//!       ─► response sent ─► slot freed, connection idle again
//!  stop: stop accepting; idle connections (no request held, nothing unflushed — a
//!        partial head included) close at once; the rest finish their request and close
//! ```
//!
//! Each connection is read through its [`Peer`] (see `io`): a client that half-closes after
//! its request still gets the answer, and one that leaves while its request waits has it
//! withdrawn. hyper's `half_close` stays off: it is by reading on during a request that hyper
//! notices a client leaving, and the `Peer` decides which end of file it gets to see.
//!
//! Slots count requests, not connections: a connection that is idle or still sending its
//! head holds none, so any number of slow clients (up to the descriptor limit, which the
//! worker raises to its hard limit) cannot keep a request or a health check from being
//! read — the timeouts close them instead. `GET /healthz` takes no slot at all, so health
//! checks are answered even when every slot is busy.
//!
//! What hyper refuses itself, before any service runs, it answers with an empty body (it
//! has no hook for one): a request line or header it cannot parse (400), more than 100
//! header fields or a head over [`MAX_HEAD_BUFFER`] bytes (431). Below those, a target over
//! [`MAX_TARGET_BYTES`] gets a JSON 414 and a head over [`MAX_HEAD_BYTES`] a JSON 431.

mod io;
mod service;

pub use service::{MAX_HEAD_BYTES, MAX_TARGET_BYTES};

use super::config::Limits;
use super::peer::Peer;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use io::{ConnState, Peered, Watched};
use service::ConnService;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// Largest request head hyper reads (bytes): its read buffer's cap; a head that does not
/// fit gets hyper's own 431, with an empty body.
pub const MAX_HEAD_BUFFER: usize = 64 * 1024;

/// How connections on one listener are served.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnLimits {
    /// From a connection being ready for a request to its head being parsed.
    pub header_read: Duration,
    /// An idle connection's life.
    pub keep_alive: Duration,
    /// Requests in progress at once (`GET /healthz` aside); more wait for a slot.
    pub slots: u32,
}

impl ConnLimits {
    /// The server's limits, with `slots` request slots.
    pub fn new(limits: &Limits, slots: u32) -> Self {
        let ms = |v: f64| Duration::from_secs_f64(v / 1e3);
        Self {
            header_read: ms(limits.header_read_timeout_ms),
            keep_alive: ms(limits.keep_alive_timeout_ms),
            slots: slots.max(1),
        }
    }
}

/// Serves `listener` with `router` until `stop` turns true, then stops accepting and
/// returns once every connection has closed: idle ones at once, busy ones after their
/// request. Counts each connection it accepts in `connections`. Runs on the current tokio
/// runtime.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    connections: Arc<AtomicU64>,
    stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.slots as usize));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .keep_alive(true)
        .max_buf_size(MAX_HEAD_BUFFER);
    let mut conns = JoinSet::new();
    let mut stopping = stop.clone();
    loop {
        tokio::select! {
            _ = stopped(&mut stopping) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.fetch_add(1, Ordering::Relaxed);
                    let svc = ConnService {
                        router: router.clone(),
                        slots: Arc::clone(&slots),
                        state: Arc::new(ConnState::new()),
                        peer: Peer::default(),
                    };
                    conns.spawn(connection(stream, http.clone(), svc, limits.keep_alive, stop.clone()));
                }
                // Out of descriptors, or a connection reset before accept: back off briefly.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The borrow `wait_for` returns must not live across an await.
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

async fn connection(
    stream: TcpStream,
    http: http1::Builder,
    svc: ConnService,
    keep_alive: Duration,
    mut stop: watch::Receiver<bool>,
) {
    // Small responses are not held back by Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    let state = Arc::clone(&svc.state);
    let io = Watched::new(Peered::new(stream, svc.peer.clone()), Arc::clone(&state), keep_alive);
    let conn = http.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stopped(&mut stop) => {}
    }
    // An idle connection (a partial head included) ends at its next read; a busy one
    // finishes its request and closes.
    state.close_when_idle();
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}
