//! What every request of a run shares: the target, the clock, the deadlines and the live
//! counters; and how one request is sent and recorded.

use super::conn::{Conn, OutRequest};
use super::{BodyTemplate, ErrorKind, LoadPlan, RequestRecord, Stop, Target};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::time::{Instant, timeout_at};

/// What a complete response left for its record: its body (if captured), its
/// `Server-Timing` (if captured) and the pid of the worker that answered (if named).
type Answer = (Option<Bytes>, Option<String>, Option<u32>);

/// Live counters, read by the progress line and the report.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests with an outcome.
    pub done: AtomicU64,
    /// Requests that failed.
    pub errors: AtomicU64,
    /// Requests sent and not yet answered.
    pub in_flight: AtomicU64,
    /// Most requests in flight at once.
    pub max_in_flight: AtomicU64,
    /// Connections opened.
    pub connections: AtomicU64,
}

/// The shared state of one run.
#[derive(Debug)]
pub struct Ctx {
    addr: SocketAddr,
    target: Target,
    method: Method,
    body: Option<BodyTemplate>,
    timeout: Duration,
    capture: bool,
    capture_timing: bool,
    /// Time zero of every record.
    pub start: Instant,
    /// When sending stops ([`Stop::Duration`] runs only).
    pub send_end: Option<Instant>,
    /// When every request still running is cancelled ([`Stop::Duration`] runs only).
    pub hard_stop: Option<Instant>,
    /// Live counters.
    pub counters: Counters,
}

impl Ctx {
    /// The context of `plan`, starting now.
    pub fn new(plan: &LoadPlan, target: Target, addr: SocketAddr) -> Self {
        let start = Instant::now();
        let send_end = match plan.stop {
            Stop::Duration(d) => Some(start + plan.warmup + d),
            Stop::Requests(_) => None,
        };
        Self {
            addr,
            target,
            method: plan.method.clone(),
            body: plan.body.clone(),
            timeout: plan.timeout,
            capture: plan.capture_bodies,
            capture_timing: plan.capture_timing,
            start,
            send_end,
            hard_stop: send_end.map(|e| e + plan.drain()),
            counters: Counters::default(),
        }
    }

    /// Microseconds from the start to `t`.
    pub fn us(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.start).as_micros()).unwrap_or(u64::MAX)
    }

    /// Whether the send window is over.
    pub fn sending_over(&self) -> bool {
        self.send_end.is_some_and(|e| Instant::now() >= e)
    }

    /// The earlier of `t` and the hard stop.
    fn bounded(&self, t: Instant) -> Instant {
        self.hard_stop.map_or(t, |h| t.min(h))
    }

    /// `now + d`, saturating far in the future instead of overflowing.
    pub fn after(d: Duration) -> Instant {
        let now = Instant::now();
        now.checked_add(d).unwrap_or_else(|| now + Duration::from_secs(super::plan::MAX_SECONDS))
    }

    /// Opens a connection, bounded by the timeout and the hard stop.
    pub async fn connect(&self) -> Result<Conn, ErrorKind> {
        let conn = Conn::open(self.addr, self.bounded(Self::after(self.timeout))).await;
        match conn {
            Ok(c) => {
                self.counters.connections.fetch_add(1, Relaxed);
                Ok(c)
            }
            Err(_) if self.past_hard_stop() => Err(ErrorKind::Cancelled),
            Err(k) => Err(k),
        }
    }

    fn past_hard_stop(&self) -> bool {
        self.hard_stop.is_some_and(|h| Instant::now() >= h)
    }

    fn request(&self, index: u64) -> OutRequest {
        let mut b = Request::builder()
            .method(self.method.clone())
            .uri(self.target.path_and_query.as_str())
            .header(HOST, self.target.authority.as_str());
        let body = match &self.body {
            Some(t) => {
                b = b.header(CONTENT_TYPE, "application/json");
                t.render(index)
            }
            None => Bytes::new(),
        };
        // Method, path and authority were validated with the plan.
        b.body(Full::new(body)).expect("a validated plan builds valid requests")
    }

    /// Sends request `index`, meant for `intended`, on `slot` (opening a connection if it
    /// is empty or closed), and records its outcome. A broken connection is dropped from
    /// `slot`; a non-2xx response keeps it.
    pub async fn send(&self, slot: &mut Option<Conn>, index: u64, intended: Instant) -> RequestRecord {
        let conn = match self.ready_conn(slot).await {
            Ok(c) => c,
            Err(kind) => return self.record(index, intended, None, None, Err(kind)),
        };
        let sent = Instant::now();
        self.enter();
        let deadline = self.bounded(sent + self.timeout);
        let outcome =
            timeout_at(deadline, conn.exchange(self.request(index), self.capture, self.capture_timing)).await;
        self.counters.in_flight.fetch_sub(1, Relaxed);
        let (status, result) = match outcome {
            Ok(Ok(resp)) => (Some(resp.status.as_u16()), Ok((resp.body, resp.timing, resp.worker_pid))),
            Ok(Err(f)) => (f.status.map(|s| s.as_u16()), Err(f.kind)),
            Err(_) if self.past_hard_stop() => (None, Err(ErrorKind::Cancelled)),
            Err(_) => (None, Err(ErrorKind::Timeout)),
        };
        if result.is_err() {
            *slot = None;
        }
        self.record(index, intended, Some(sent), status, result)
    }

    /// The connection in `slot` if usable, else a new one put there.
    async fn ready_conn<'a>(&self, slot: &'a mut Option<Conn>) -> Result<&'a mut Conn, ErrorKind> {
        if self.past_hard_stop() {
            return Err(ErrorKind::Cancelled);
        }
        if let Some(c) = slot {
            let check = timeout_at(self.bounded(Self::after(self.timeout)), c.is_usable());
            if !check.await.unwrap_or(false) {
                *slot = None;
            }
        }
        if slot.is_none() {
            *slot = Some(self.connect().await?);
        }
        Ok(slot.as_mut().expect("filled above"))
    }

    fn enter(&self) {
        let now = self.counters.in_flight.fetch_add(1, Relaxed) + 1;
        self.counters.max_in_flight.fetch_max(now, Relaxed);
    }

    /// A request that never went: the hard stop came first.
    pub fn cancelled(&self, index: u64, intended: Instant) -> RequestRecord {
        self.record(index, intended, None, None, Err(ErrorKind::Cancelled))
    }

    fn record(
        &self,
        index: u64,
        intended: Instant,
        sent: Option<Instant>,
        status: Option<u16>,
        result: Result<Answer, ErrorKind>,
    ) -> RequestRecord {
        let done_us = self.us(Instant::now());
        let (error, body, server_timing, worker_pid) = match result {
            Ok((body, timing, pid)) => (status.and_then(ErrorKind::of_status), body, timing, pid),
            Err(kind) => (Some(kind), None, None, None),
        };
        self.counters.done.fetch_add(1, Relaxed);
        if error.is_some() {
            self.counters.errors.fetch_add(1, Relaxed);
        }
        RequestRecord {
            index,
            intended_us: self.us(intended),
            sent_us: sent.map(|s| self.us(s)),
            done_us,
            status,
            error,
            body: body.map(|b| String::from_utf8_lossy(&b).into_owned()),
            server_timing,
            worker_pid,
        }
    }
}
