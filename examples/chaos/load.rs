//! The load: closed-loop clients on keep-alive connections, each request recorded as its
//! client saw it.

use super::{Result, TIMEOUT, ms};
use servesim::server::client::Connection;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const CLIENTS: usize = 8;
pub const BODY: &[u8] = servesim::load::DEFAULT_BODY.as_bytes();
/// The longest the load may run, and the most requests (or pauses) a client makes.
pub const RUN_BOUND: Duration = Duration::from_secs(120);
pub const MAX_STEPS: usize = 1_000_000;
pub const RECONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// One request as its client saw it; times from the start of the load.
#[derive(Debug, Clone, Copy)]
pub struct Rec {
    pub sent: Duration,
    pub done: Duration,
    /// `None`: lost.
    pub status: Option<u16>,
    /// The worker that answered the previous request on its connection (0: a new one).
    pub conn_pid: u32,
    /// The worker that answered it (0: none).
    pub pid: u32,
}

impl Rec {
    pub fn latency_ms(&self) -> f64 {
        ms(self.done.saturating_sub(self.sent))
    }
}

/// The closed-loop clients. Dropping it stops them, whatever happened.
pub struct Load {
    /// When the load started: the origin of every time recorded.
    pub t0: Instant,
    stop: Arc<AtomicBool>,
    pub quiet: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<Rec>>>,
}

impl Load {
    pub fn start(addr: SocketAddr) -> Load {
        let (t0, stop, quiet) =
            (Instant::now(), Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let threads = (0..CLIENTS)
            .map(|_| {
                let (stop, quiet) = (Arc::clone(&stop), Arc::clone(&quiet));
                std::thread::spawn(move || client_loop(addr, t0, &stop, &quiet))
            })
            .collect();
        Load { t0, stop, quiet, threads }
    }

    pub fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    /// Stops the clients and returns every request they made.
    pub fn finish(mut self) -> Result<Vec<Rec>> {
        self.stop.store(true, Relaxed);
        let mut all = Vec::new();
        for t in std::mem::take(&mut self.threads) {
            all.extend(t.join().map_err(|_| "a client panicked")?);
        }
        Ok(all)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

/// One client: a request, its answer, the next at once; a new connection after a failure
/// or a `Connection: close`. From `quiet` on it sends nothing new.
fn client_loop(addr: SocketAddr, t0: Instant, stop: &AtomicBool, quiet: &AtomicBool) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut conn: Option<(Connection, u32)> = None;
    for _ in 0..MAX_STEPS {
        if stop.load(Relaxed) || t0.elapsed() > RUN_BOUND {
            break;
        }
        if quiet.load(Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let sent = t0.elapsed();
        let (c, conn_pid) = match conn.as_mut() {
            Some((c, pid)) => (c, *pid),
            None => match Connection::open(addr, TIMEOUT) {
                // Every request the server loses is counted: none is sent again.
                Ok(c) => (&mut conn.insert((c.resend_unanswered(false), 0)).0, 0),
                Err(_) => {
                    out.push(Rec { sent, done: t0.elapsed(), status: None, conn_pid: 0, pid: 0 });
                    std::thread::sleep(RECONNECT_BACKOFF);
                    continue;
                }
            },
        };
        let r = c.request("POST", "/correct", Some(BODY), &[]);
        let done = t0.elapsed();
        match r {
            Ok(r) => {
                let pid = r.header("x-worker-pid").and_then(|p| p.parse().ok()).unwrap_or(0);
                out.push(Rec { sent, done, status: Some(r.status), conn_pid, pid });
                let closing = r.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
                if closing {
                    conn = None;
                } else if let Some(c) = conn.as_mut() {
                    c.1 = pid;
                }
            }
            Err(_) => {
                out.push(Rec { sent, done, status: None, conn_pid, pid: 0 });
                conn = None;
            }
        }
    }
    out
}
