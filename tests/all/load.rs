//! The load generator against a tiny axum server on loopback that counts what it sees.
//!
//! The server's handlers are gates, not timers: `/gate` holds each request until `gate`
//! requests have arrived (a cyclic barrier), so "U users reach U concurrent requests" is
//! an event, not a race.

#![cfg(feature = "server")]

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{any, post};
use servesim::affinity::CpuList;
use servesim::load::{self, BodyTemplate, ErrorKind, LoadPlan, LoadReport, Mode, Stop};
use servesim::workload::Dist;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;
use tokio::sync::oneshot;

/// Longest a gated request waits for its group (only reached if the generator is broken).
const GATE_WAIT: Duration = Duration::from_secs(5);
/// How long `/stall` holds its first request.
const STALL: Duration = Duration::from_millis(300);

/// What the server saw.
#[derive(Debug, Default)]
struct Seen {
    /// Requests held by `/gate` until this many have arrived.
    gate: usize,
    arrivals: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Seen {
    fn enter(&self) -> usize {
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.max_in_flight.fetch_max(now, SeqCst);
        self.arrivals.fetch_add(1, SeqCst)
    }

    fn leave(&self) {
        self.in_flight.fetch_sub(1, SeqCst);
    }

    fn max(&self) -> usize {
        self.max_in_flight.load(SeqCst)
    }

    fn total(&self) -> usize {
        self.arrivals.load(SeqCst)
    }
}

/// Echoes the body.
async fn echo(State(s): State<Arc<Seen>>, body: Bytes) -> Bytes {
    s.enter();
    s.leave();
    body
}

/// Holds each request until its group of `gate` arrivals is complete.
async fn gate(State(s): State<Arc<Seen>>, body: Bytes) -> Bytes {
    let k = s.enter();
    let release_at = (k / s.gate.max(1) + 1) * s.gate.max(1);
    let deadline = tokio::time::Instant::now() + GATE_WAIT;
    while s.total() < release_at && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    s.leave();
    body
}

/// Holds the first request for [`STALL`]; answers the others at once.
async fn stall(State(s): State<Arc<Seen>>) -> &'static str {
    if s.enter() == 0 {
        tokio::time::sleep(STALL).await;
    }
    s.leave();
    "ok"
}

async fn status(State(s): State<Arc<Seen>>, Path(code): Path<u16>) -> StatusCode {
    s.enter();
    s.leave();
    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
}

/// Never answers.
async fn hang(State(s): State<Arc<Seen>>) -> &'static str {
    s.enter();
    std::future::pending::<()>().await;
    "never"
}

/// A server on 127.0.0.1 with its own runtime thread; stopped (and every pending handler
/// dropped) when the guard drops, even if the test failed.
struct TestServer {
    addr: SocketAddr,
    seen: Arc<Seen>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    fn start(gate_size: usize) -> Self {
        let seen = Arc::new(Seen { gate: gate_size, ..Seen::default() });
        let app = Router::new()
            .route("/echo", post(echo))
            .route("/gate", post(gate))
            .route("/stall", any(stall))
            .route("/status/{code}", any(status))
            .route("/hang", any(hang))
            .with_state(Arc::clone(&seen));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt =
                tokio::runtime::Builder::new_current_thread().enable_all().build().expect("server runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime drops every connection task, hung handlers included.
            drop(rt);
        });
        Self { addr, seen, stop: Some(stop), thread: Some(thread) }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn closed(users: u32) -> Mode {
    Mode::Closed { users, think_ms: Dist::Const(0.0) }
}

fn run(plan: &LoadPlan) -> LoadReport {
    load::run_blocking(plan, None).unwrap_or_else(|e| panic!("{e}"))
}

fn errors(r: &LoadReport, kind: ErrorKind) -> u64 {
    r.errors[&kind]
}

/// An address with nothing listening (bound, then released).
fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    format!("http://{addr}/")
}

#[test]
fn closed_loop_never_has_more_requests_in_flight_than_users() {
    const USERS: u32 = 4;
    let server = TestServer::start(USERS as usize);
    let plan = LoadPlan::new(server.url("/gate"), closed(USERS), Stop::Requests(5 * u64::from(USERS)));
    let r = run(&plan);
    assert_eq!(server.seen.max(), USERS as usize, "the server saw at most, and at least, U at once");
    assert_eq!(server.seen.total(), 20);
    assert_eq!(r.completed, 20);
    assert!(r.max_in_flight <= u64::from(USERS));
    assert_eq!(r.connections, u64::from(USERS), "one keep-alive connection per user");
}

#[test]
fn burst_reaches_n_concurrent_requests() {
    const N: u32 = 16;
    let server = TestServer::start(N as usize);
    let plan = LoadPlan::new(server.url("/gate"), Mode::Burst { n: N }, Stop::Requests(u64::from(N)));
    let r = run(&plan);
    assert_eq!(server.seen.max(), N as usize);
    assert_eq!((r.completed, r.connections, r.requests), (16, 16, 16));
    assert!(r.records.iter().all(|rec| rec.intended_us == 0), "every request is meant for t = 0");
}

#[test]
fn requests_n_sends_exactly_n_with_the_body_template() {
    let server = TestServer::start(1);
    let mut plan = LoadPlan::new(server.url("/echo"), closed(3), Stop::Requests(10));
    plan.body = Some(BodyTemplate::new(r#"{"n": {i}}"#));
    plan.capture_bodies = true;
    let r = run(&plan);
    assert_eq!((r.requests, r.completed, server.seen.total()), (10, 10, 10));
    for (i, rec) in r.records.iter().enumerate() {
        assert_eq!(rec.index, i as u64);
        assert_eq!(rec.body.as_deref(), Some(format!(r#"{{"n": {i}}}"#).as_str()));
        assert_eq!(rec.status, Some(200));
    }
}

#[test]
fn open_loop_latency_includes_a_stall_from_the_intended_time() {
    // One connection, a request every 5 ms, and the first one held for 300 ms: the
    // requests due meanwhile cannot go before 300 ms. Measured from their intended times
    // they carry the stall; measured from their sends (service time) they would hide it.
    let server = TestServer::start(1);
    let mode = Mode::Open { rate_rps: 200.0, poisson: false };
    let mut plan = LoadPlan::new(server.url("/stall"), mode, Stop::Requests(40));
    plan.max_connections = 1;
    plan.body = None;
    plan.method = load::Method::GET;
    let r = run(&plan);
    assert_eq!(r.completed, 40);
    let half_stall_us = (STALL / 2).as_micros() as u64;
    // Due at 5..=145 ms, sent after 300 ms: at least 150 ms late, by causality alone.
    let stalled: Vec<_> = r.records.iter().filter(|x| (1..=29).contains(&x.index)).collect();
    assert!(stalled.iter().all(|x| x.latency_us() >= half_stall_us), "{stalled:?}");
    assert!(stalled.iter().all(|x| x.send_lag_us().unwrap() >= half_stall_us));
    assert!(r.late_sends.unwrap() >= 29);
    assert!(r.latency_ms.p50 >= (STALL / 2).as_secs_f64() * 1e3, "{:?}", r.latency_ms);
    assert!(r.records.iter().all(|x| x.latency_us() >= x.service_us().unwrap()));
    assert_eq!(r.target_rps, Some(200.0));
}

#[test]
fn poisson_open_loop_sends_every_scheduled_request() {
    let server = TestServer::start(1);
    let mode = Mode::Open { rate_rps: 500.0, poisson: true };
    let r = run(&LoadPlan::new(server.url("/echo"), mode, Stop::Requests(25)));
    assert_eq!((r.requests, r.completed, server.seen.total()), (25, 25, 25));
    assert!(r.achieved_send_rps.unwrap() > 0.0);
    let intended: Vec<u64> = r.records.iter().map(|x| x.intended_us).collect();
    assert!(intended.windows(2).all(|w| w[0] <= w[1]), "send times ascend with the index");
}

#[test]
fn refused_connections_are_counted_and_the_run_completes() {
    let r = run(&LoadPlan::new(closed_port_url(), closed(2), Stop::Requests(6)));
    assert_eq!((r.requests, r.completed, errors(&r, ErrorKind::Connect)), (6, 0, 6));
    assert!(r.records.iter().all(|x| x.sent_us.is_none() && x.status.is_none()));
    // Nothing succeeded: the report says so and what it usually means, and its table shows
    // no latency rather than a latency of zero.
    let why = r.nothing_succeeded(Duration::from_secs(30)).expect("a run with no success is named");
    assert!(why.contains("6 failed (connect 6)") && why.contains("is the service running"), "{why}");
    let table = r.table(&LoadPlan::new(closed_port_url(), closed(2), Stop::Requests(6)));
    assert!(table.contains("latency p95") && !table.contains("0.000  ms"), "{table}");
}

#[test]
fn the_cli_fails_a_run_in_which_nothing_succeeded_after_printing_it() {
    let url = closed_port_url();
    let out = crate::cli::servesim(&["load", "--url", &url, "--closed", "1", "--requests", "3"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "a run with no success exits non-zero: {stdout}");
    assert!(stdout.contains("errors connect") && stdout.contains('3'), "the report is printed: {stdout}");
    assert!(stderr.contains(&format!("no request to {url} succeeded")), "{stderr}");
    // One success is enough for the run to count.
    let server = TestServer::start(1);
    let out =
        crate::cli::servesim(&["load", "--url", &server.url("/echo"), "--closed", "1", "--requests", "3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn error_statuses_are_counted_by_class_but_still_timed() {
    let server = TestServer::start(1);
    for (code, kind) in [(500, ErrorKind::Status5xx), (404, ErrorKind::Status4xx)] {
        let mode = Mode::Open { rate_rps: 500.0, poisson: false };
        let mut plan = LoadPlan::new(server.url(&format!("/status/{code}")), mode, Stop::Requests(5));
        plan.max_connections = 1;
        let r = run(&plan);
        assert_eq!((r.completed, errors(&r, kind)), (0, 5), "status {code}");
        let why = r.nothing_succeeded(plan.timeout).expect("no success");
        let hint = if code == 404 { "check --url's path" } else { "see its log" };
        assert!(why.contains(hint), "{why}");
        assert!(r.records.iter().all(|x| x.status == Some(code) && x.sent_us.is_some()));
        assert_eq!(r.connections, 1, "an error status keeps the connection");
    }
}

#[test]
fn timeouts_are_counted_and_the_run_completes() {
    let server = TestServer::start(1);
    let mut plan = LoadPlan::new(server.url("/hang"), closed(1), Stop::Requests(2));
    plan.timeout = Duration::from_millis(100);
    let r = run(&plan);
    assert_eq!((r.completed, errors(&r, ErrorKind::Timeout)), (0, 2));
    let why = r.nothing_succeeded(plan.timeout).expect("no success");
    assert!(why.contains("--timeout 0.1 s"), "{why}");
    assert_eq!(r.connections, 2, "a timed-out connection is replaced");
    assert!(r.records.iter().all(|x| x.sent_us.is_some() && x.status.is_none()));
}

#[test]
fn a_hung_server_is_cut_off_at_the_hard_stop() {
    let server = TestServer::start(1);
    let mut plan = LoadPlan::new(server.url("/hang"), closed(2), Stop::Duration(Duration::from_millis(200)));
    plan.timeout = Duration::from_secs(600);
    plan.drain = Some(Duration::from_millis(100));
    let r = run(&plan);
    assert_eq!((r.requests, r.completed, errors(&r, ErrorKind::Cancelled)), (2, 0, 2));
}

#[test]
fn csv_has_one_row_per_request() {
    let server = TestServer::start(1);
    let r = run(&LoadPlan::new(server.url("/echo"), closed(2), Stop::Requests(7)));
    let mut buf = Vec::new();
    load::write_csv(&r.records, &mut buf).unwrap();
    let mut rd = csv::Reader::from_reader(buf.as_slice());
    assert_eq!(rd.headers().unwrap(), &csv::StringRecord::from(load::CSV_HEADER.to_vec()));
    let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 7);
    for row in &rows {
        let us = |i: usize| row[i].parse::<u64>().unwrap();
        assert!(us(0) <= us(1) && us(1) <= us(2), "{row:?}");
        assert_eq!((&row[3], &row[4]), ("200", ""));
    }
}

#[test]
fn json_has_the_contract_keys() {
    let server = TestServer::start(1);
    let mode = Mode::Open { rate_rps: 1000.0, poisson: false };
    let r = run(&LoadPlan::new(server.url("/echo"), mode, Stop::Requests(5)));
    let v = serde_json::to_value(&r).unwrap();
    let keys = [
        "throughput_rps",
        "latency_ms",
        "service_ms",
        "completed",
        "errors",
        "target_rps",
        "achieved_send_rps",
        "late_sends",
        "duration_s",
        "warmup_completed",
        "mode",
    ];
    for key in keys {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    for q in ["mean", "p50", "p95", "p99"] {
        assert!(v["latency_ms"][q].as_f64().is_some_and(|x| x > 0.0), "latency_ms.{q}");
    }
    for kind in ["connect", "timeout", "status_4xx", "status_5xx", "io"] {
        assert_eq!(v["errors"][kind], 0, "errors.{kind}");
    }
    assert_eq!((v["completed"].as_u64(), v["mode"].as_str()), (Some(5), Some("open")));
    assert!(v.get("records").is_none(), "records go to CSV, not JSON");
}

#[test]
fn bad_plans_fail_before_anything_is_sent() {
    let server = TestServer::start(1);
    let url = server.url("/echo");
    let mut bad_body = LoadPlan::new(url.clone(), closed(1), Stop::Requests(1));
    bad_body.body = Some(BodyTemplate::new("{\"n\": {i"));
    let cases = [
        (LoadPlan::new(url.clone(), closed(0), Stop::Requests(1)), "--closed"),
        (
            LoadPlan::new(url.clone(), Mode::Open { rate_rps: -3.0, poisson: false }, Stop::Requests(1)),
            "--open",
        ),
        (LoadPlan::new(url.replace("http", "https"), closed(1), Stop::Requests(1)), "--url"),
        (LoadPlan::new(url.clone(), Mode::Burst { n: 3 }, Stop::Requests(4)), "--requests"),
        (bad_body, "--body"),
    ];
    for (plan, flag) in cases {
        let err = load::run_blocking(&plan, None).expect_err(flag).to_string();
        assert!(err.starts_with(flag), "{flag}: {err}");
    }
    assert_eq!(server.seen.total(), 0);
}

#[cfg(target_os = "linux")]
#[test]
fn pinned_runtime_runs_the_plan() {
    let server = TestServer::start(1);
    let mut plan = LoadPlan::new(server.url("/echo"), closed(2), Stop::Requests(6));
    plan.cpus = Some(CpuList(vec![servesim::affinity::allowed().unwrap().0[0]]));
    plan.threads = 2;
    assert_eq!(run(&plan).completed, 6);
    plan.cpus = Some(CpuList(vec![1 << 20]));
    let err = load::run_blocking(&plan, None).unwrap_err().to_string();
    assert!(err.starts_with("--cpus"), "{err}");
}

#[tokio::test]
async fn runs_inside_a_callers_runtime() {
    let server = TestServer::start(1);
    let plan = LoadPlan::new(server.url("/echo"), closed(1), Stop::Requests(3));
    let r = load::run(&plan, None).await.unwrap();
    assert_eq!(r.completed, 3);
    assert_eq!(r.connections, 1, "keep-alive: one connection for three requests");
}
